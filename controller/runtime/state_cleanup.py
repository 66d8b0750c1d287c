"""Deleting the durable state of removed policies once none of it matters any more.

Each policy's state lives in ConfigMaps ``setpoint-state-<policy>`` (and ``.hands-off``,
``.scale-events``) that nothing deleted: with GitOps renames and short-lived policies they grew
with every policy ever run. The leader now keeps an index of the policies it runs
(controller/runtime/state_index.py), notes when one stops running (a reload without it, or a
restart whose files lack it: then from when it was last seen), and deletes its state once the
longest period any of it is in force has passed since (controller/runtime/state_expiry.py). A
policy added back sooner keeps its state, as before.

Never deleted: the state of a policy that is loaded; anything the index does not prove this
controller ran (an unreadable entry, an index another controller wrote); a payload saved after the
removal (by a cycle still running, or another process of this controller that still ran it)
before its own keep has passed since that save; any part of a policy's state when another
controller wrote one of its ConfigMaps last (the store's owner check, made on every part before
the first delete), or one written since it was read (the delete carries the resourceVersion
read: a 409 leaves it, tried again later). A ConfigMap with no owner recorded (written by a
setpoint older than the owner annotation) is deleted like this controller's own: the index proves
this controller ran the policy since its upgrade. A second writer of this controller's index (two
controllers with the same Lease in one state namespace, a hand edit) stops all deletions until
this process next becomes leader (or restarts, without leader election): its index could list
the other's policies.

Only the leader tends the index (the service asks ``is_leader`` first, and the Kubernetes
adapter's fence re-checks leadership before each write and delete); a dry run or a shadow gets no
cleanup (and its state store deletes nothing anyway). Times are epoch seconds, passed in.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from controller.errors import StateStoreError
from controller.policy.durations import format_duration
from controller.ports import StateDeletion, StateStore, controller_state_name, state_name
from controller.runtime import hands_off_state, scale_events_state
from controller.runtime.state_expiry import cleanup_due, state_keep
from controller.runtime.state_index import PART, IndexEntry, ReadIndex, Stamp, decode, encode
from controller.runtime.state_payload import saved_time

if TYPE_CHECKING:
    from controller.runtime.reconciler import RuntimePolicy

log = logging.getLogger("setpoint.runtime")

#: The StateStore parts a policy's state may have ("" : its health state).
STATE_PARTS = ("", hands_off_state.PART, scale_events_state.PART)
#: The leader rewrites the index at least this often (s), refreshing its loaded policies' seenAt.
INDEX_REFRESH_S = 900.0
#: A policy the index lists but the files at a start no longer have ran until at most this long
#: (s) after it was last seen: the refresh period, twice over (a refresh late by a poll or failed
#: once); and any other writer of the index writes within it, before a deletion that bound allows.
LAST_SEEN_MARGIN_S = 2 * INDEX_REFRESH_S
#: A deletion left (a conflict, a store error) is tried again after this long (s).
RETRY_S = 300.0
#: At most this many policies' state are deleted per call of ``tend`` (each costs up to 6 requests;
#: the service calls it every reload poll, 10 s, beside the cycles' requests).
MAX_DELETIONS_PER_TEND = 2


def utc(epoch_s: float) -> str:
    """``2026-01-02T03:04:05Z``."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class TendResult:
    """What one ``tend`` did: policies whose state was deleted, left because it changed since read
    (tried again), left because another controller wrote it last, whose deletion failed (the store
    refused or failed: tried again after RETRY_S); and removed policies pending."""

    deleted: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    pending: int = 0


class RemovedStateCleanup:
    """The leader's index of the policies with state, and the deletion of removed ones' state.

    ``controller``: the Lease (``NAMESPACE/NAME``) of this controller; the index is kept under the
    Lease's name. ``writer``: this process's token (random by default).
    """

    def __init__(self, store: StateStore, controller: str = "setpoint", writer: str | None = None):
        self.store, self.controller = store, controller
        self.key = controller_state_name(controller)  # the index's StateStore name
        self.writer = writer or secrets.token_hex(6)
        self.entries: dict[str, IndexEntry] = {}
        self.doubt = ""  # why this process deletes nothing until it reads the index afresh ('': none)
        self._term: int | None = None  # the leadership term in which the index was last read (None: never)
        self._known: Stamp | None = None  # the stored index's stamp as this process last read or wrote it
        self._written_at = -math.inf
        self._dirty = False
        self._retry_at: dict[str, float] = {}
        self._failing = False  # a read or write of the index failed last time (said once)

    # ------------------------------------------------------------------ the one entry point
    def tend(self, policies: Mapping[str, "RuntimePolicy"], now: float, term: int = 0) -> TendResult:
        """Bring the index in line with the loaded ``policies`` (at ``now``, in leadership ``term``),
        delete the state of removed policies now due, and write the index when it changed or is
        due for a refresh. Store failures are logged and retried at the next call, never raised."""
        result = TendResult()
        adopted = self._term != term
        if adopted and not self._adopt(term):
            return result
        self._note_loaded(policies, now, adopted)
        self._delete_due(set(policies), now, result)
        if self._dirty or now - self._written_at >= INDEX_REFRESH_S:
            self._write(now)
        result.pending = sum(e.removed_at is not None for e in self.entries.values())
        return result

    # ------------------------------------------------------------------ the index
    def _read(self) -> ReadIndex | None:
        """The stored index, None when it cannot be read (logged once per run of failures)."""
        try:
            raw = self.store.load(self.key, PART)
        except StateStoreError as exc:
            if not self._failing:
                log.warning("the index of policies with state cannot be read (tried again at the next poll; "
                            "nothing is deleted meanwhile): %s", exc)
            self._failing = True
            return None
        return decode(raw)

    def _adopt(self, term: int) -> bool:
        """Read the stored index at the start of a leadership term; False when it cannot be read
        (then nothing is written over it or deleted)."""
        read = self._read()
        if read is None:
            return False
        for problem in read.problems:
            log.warning("%s", problem, extra={"index": state_name(self.key, PART)})
        self.doubt, self._term, self._known = "", term, read.stamp
        self.entries = read.entries if read.controller in ("", self.controller) else {}
        if read.controller not in ("", self.controller):
            self._distrust(f"it was written by controller {read.controller}")
        self._retry_at.clear()
        self._dirty = True  # written once per term: its stamp becomes this process's
        return True

    def _write(self, now: float) -> None:
        """Write the index, its loaded policies seen ``now``; first check that nobody else wrote it
        since this process last read or wrote it (else: no more deletions, see the module docstring)."""
        self._stored_unchanged()
        self.entries = {n: replace(e, seen_at=now) if e.removed_at is None else e for n, e in self.entries.items()}
        try:
            self.store.save(self.key, encode(self.controller, self.writer, self.entries, now), PART)
        except StateStoreError as exc:
            if not self._failing:
                log.warning("the index of policies with state cannot be written (tried again at the next poll): %s",
                            exc)
            self._failing = True
            return
        self._known, self._written_at, self._dirty, self._failing = (self.writer, now), now, False, False

    def _stored_unchanged(self) -> bool:
        """Whether the stored index is still the one this process last read or wrote; if another
        wrote it since, this process deletes nothing more (said once)."""
        if self.doubt:
            return False
        read = self._read()
        if read is None:
            return False
        if read.stamp != self._known:
            writer = f"controller {read.controller} (process {read.stamp[0]})" if read.stamp else "someone"
            self._distrust(f"{writer} wrote it since this process last did")
            return False
        return True

    def _distrust(self, why: str) -> None:
        self.doubt = why
        log.error("the index of policies with state %s is not only this controller's (%s): no removed policy's "
                  "state is deleted until this process next becomes leader (or restarts). Two controllers sharing "
                  "a state namespace need their own --lease-name each", state_name(self.key, PART), why,
                  extra={"controller": self.controller})

    # ------------------------------------------------------------------ loaded and removed policies
    def _note_loaded(self, policies: Mapping[str, "RuntimePolicy"], now: float, adopted: bool) -> None:
        """Loaded policies get (or update) their entry; entries of policies no longer loaded are
        marked removed: ``now`` when this process ran them until now, else (just read from the
        index at a start or a new term) from when they were last seen plus LAST_SEEN_MARGIN_S."""
        for name, policy in policies.items():
            keep_s, why = state_keep(policy)
            entry = self.entries.get(name)
            if entry is not None and entry.removed_at is None and (entry.keep_s, entry.why) == (keep_s, why):
                continue
            if entry is not None and entry.removed_at is not None:
                log.info("policy %s is loaded again: its durable state is kept", name, extra={"policy": name})
            self.entries[name] = IndexEntry(now, keep_s, why)
            self._retry_at.pop(name, None)
            self._dirty = True
        for name, entry in list(self.entries.items()):
            if name in policies or entry.removed_at is not None:
                continue
            removed = entry.seen_at + LAST_SEEN_MARGIN_S if adopted else now
            self._schedule(name, replace(entry, removed_at=removed), "no longer loaded")

    def _schedule(self, name: str, entry: IndexEntry, what: str) -> None:
        self.entries[name], self._dirty = entry, True
        due = entry.due()
        log.info("policy %s %s: its durable state (setpoint-state-%s*) is deleted at %s, %s after it stopped "
                 "running (%s), unless it is loaded again by then", name, what, name, utc(due),
                 format_duration(entry.keep_s), entry.why or "it keeps nothing in force",
                 extra={"policy": name, "delete_at": utc(due), "keep_s": entry.keep_s})

    # ------------------------------------------------------------------ deletion
    def _delete_due(self, loaded: set[str], now: float, result: TendResult) -> None:
        due = sorted(n for n, e in self.entries.items() if n not in loaded and e.removed_at is not None
                     and e.due() <= now and self._retry_at.get(n, -math.inf) <= now)
        if not due or not self._stored_unchanged():
            return
        for name in due[:MAX_DELETIONS_PER_TEND]:
            self._delete_policy_state(name, now, result)

    def _delete_policy_state(self, name: str, now: float, result: TendResult) -> None:
        """Read each part of ``name``'s state, reschedule if one was saved after the removal, else
        delete them in turn (stopping at the first one left)."""
        entry = self.entries[name]
        try:
            newest = max((t for t in (saved_time(self.store.load(name, p)) for p in STATE_PARTS) if t is not None),
                         default=None)
            if cleanup_due(max(entry.removed_at, entry.seen_at), entry.keep_s, newest) > now:
                self._schedule(name, replace(entry, removed_at=newest), "was saved after it stopped running")
                return
            outcomes = self._delete_parts(name)
        except StateStoreError as exc:
            log.warning("the durable state of removed policy %s could not be deleted (tried again in %s): %s",
                        name, format_duration(RETRY_S), exc, extra={"policy": name})
            self._retry_at[name] = now + RETRY_S
            result.failed.append(name)
            return
        self._settle(name, outcomes, now, result)

    def _delete_parts(self, name: str) -> dict[str, StateDeletion]:
        """Delete every part of a policy's state, or none when another controller wrote any of
        them last: a state half deleted would be neither this controller's nor the other's."""
        foreign = [part for part in STATE_PARTS if self.store.foreign(name, part)]
        if foreign:
            return {state_name(name, foreign[0]): StateDeletion.FOREIGN}
        outcomes: dict[str, StateDeletion] = {}
        for part in STATE_PARTS:
            outcomes[state_name(name, part)] = outcome = self.store.delete(name, part)
            if outcome not in (StateDeletion.DELETED, StateDeletion.ABSENT):
                break
        return outcomes

    def _settle(self, name: str, outcomes: dict[str, StateDeletion], now: float, result: TendResult) -> None:
        """Act on the outcomes of a deletion: done (the entry goes), left for another controller (the
        entry goes too: the name is not ours any more), or left to try again."""
        deleted = [key for key, o in outcomes.items() if o is StateDeletion.DELETED]
        last = list(outcomes.values())[-1]
        if last in (StateDeletion.DELETED, StateDeletion.ABSENT):
            del self.entries[name]
            self._dirty = True
            result.deleted.append(name)
            log.info("deleted the durable state of removed policy %s (%s)", name,
                     ", ".join(f"setpoint-state-{k}" for k in deleted) or "it had none",
                     extra={"policy": name, "deleted": deleted})
        elif last is StateDeletion.FOREIGN:
            del self.entries[name]
            self._dirty = True
            result.foreign.append(name)
            left = " ".join(f"setpoint-state-{state_name(name, p)}" for p in STATE_PARTS)
            namespace = getattr(self.store, "namespace", None)  # the Kubernetes store's; kubectl's default else
            log.warning("the durable state of removed policy %s is left: another controller wrote it last; if no "
                        "controller runs a policy %s, delete it by "
                        "hand: kubectl%s delete configmap --ignore-not-found %s", name, name,
                        f" -n {namespace}" if namespace else "", left,
                        extra={"policy": name, "deleted": deleted})
        else:
            self._retry_at[name] = now + RETRY_S
            if last is StateDeletion.CHANGED:
                result.changed.append(name)
            log.info("the durable state of removed policy %s was %s; tried again at %s", name,
                     "written since it was read" if last is StateDeletion.CHANGED else "not deleted (a dry run)",
                     utc(now + RETRY_S), extra={"policy": name, "deleted": deleted})
