"""The last good policy files, kept on the cluster beside the durable state.

A hot reload that fails keeps the last good policies in memory; a restart (a node drained, an
OOM kill, a rollout of the controller) used to lose them: with the policies ConfigMap broken
meanwhile, every replica refused to start and crash-looped, and no workload was scaled or
healed until someone fixed the files. The leader now keeps a copy of the files as they last
loaded whole, and a start-up whose files are invalid runs that copy instead, reporting the
files as a rejected reload (setpoint_policy_reload_ok 0, the PolicyReloadFailed Event and
alert). A first start with no copy still refuses to start: there is nothing good to run.

The copy is one StateStore payload per controller, named after its Lease (a ConfigMap
``setpoint-state-<lease name>.last-good-policies`` on the cluster, ``setpoint-state-setpoint.last-good-policies``
with the default Lease; no policy's state has that part). Two controllers sharing a state
namespace (each with its own --lease-name) keep two copies: with one, a controller whose files
were broken at a restart would have run the other's policies.
``{"version": 1, "savedAt": RFC 3339, "digest": sha256 hex, "files": [{"name", "text"}]}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone

from controller.errors import StateStoreError
from controller.policy.summary import plural
from controller.ports import StateStore, controller_state_name

log = logging.getLogger("setpoint.runtime")

#: The StateStore part that keeps the copy; its name is the controller's (its Lease's name).
PART = "last-good-policies"
VERSION = 1
#: A ConfigMap holds at most 1 MiB; beyond this the copy is not kept (and the log says so once).
MAX_PAYLOAD_BYTES = 900_000


@dataclass(frozen=True)
class PolicyTexts:
    """Policy files as they were read: (text, file name) pairs, in load order."""

    files: tuple[tuple[str, str], ...]

    @cached_property  # asked at every reload poll (10 s) while the files stay the same
    def digest(self) -> str:
        h = hashlib.sha256()
        for text, name in self.files:
            h.update(json.dumps([name, text]).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class LastGood:
    """A copy read back: the files, and when the leader that saved them had loaded them."""

    texts: PolicyTexts
    saved_at: str

    def where(self) -> str:
        return f"the last good policy files, loaded at {self.saved_at} ({plural(len(self.texts.files), 'file')})"


def payload(texts: PolicyTexts, now: float) -> dict:
    saved = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"version": VERSION, "savedAt": saved, "digest": texts.digest,
            "files": [{"name": name, "text": text} for text, name in texts.files]}


def parse(raw) -> LastGood:
    """The copy in a stored payload; ValueError naming what is wrong with it."""
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"not a version {VERSION} copy of the policy files")
    files = data.get("files")
    if not isinstance(files, list) or not files or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("text"), str) for f in files):
        raise ValueError("its files are not a list of {name, text}")
    texts = PolicyTexts(tuple((f["text"], f["name"]) for f in files))
    if texts.digest != data.get("digest"):
        raise ValueError("its digest does not match its files (edited by hand, or cut short)")
    return LastGood(texts, str(data.get("savedAt", "an unknown time")))


class LastGoodCopy:
    """Reads and keeps the copy in ``store``: ``recall`` at start-up, ``keep`` after each load.
    ``controller``: this controller's Lease (``NAMESPACE/NAME`` or ``NAME``), whose name names the copy."""

    def __init__(self, store: StateStore, controller: str = "setpoint"):
        self.store = store
        self.name = controller_state_name(controller)
        self._kept: str | None = None  # digest of the copy known to be stored
        self._too_large_said = False

    def recall(self) -> LastGood | None:
        """The stored copy, None when there is none; raises StateStoreError when it cannot be
        read or is not a sound copy."""
        raw = self.store.load(self.name, PART)
        if raw is None:
            return None
        try:
            copy = parse(raw)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise StateStoreError(f"the stored copy of the last good policy files is unusable: {exc}") from exc
        self._kept = copy.texts.digest
        return copy

    def keep(self, texts: PolicyTexts, now: float) -> bool:
        """Store ``texts`` unless the store holds them already; True when written. Failures are
        logged (the next call tries again), never raised: the policies run either way."""
        digest = texts.digest
        if digest == self._kept:
            return False
        body = payload(texts, now)
        size = len(json.dumps(body, separators=(",", ":")))
        if size > MAX_PAYLOAD_BYTES:
            if not self._too_large_said:
                log.warning("policy files too large to keep a last good copy on the cluster (%d bytes > %d): a "
                            "restart with invalid files will refuse to start", size, MAX_PAYLOAD_BYTES)
                self._too_large_said = True
            return False
        try:
            self.store.save(self.name, body, PART)
        except StateStoreError as exc:
            log.warning("could not keep the last good policy files on the cluster (tried again at the next "
                        "reload poll): %s", exc)
            return False
        self._kept = digest
        # debug: a dry run's store writes nothing, so "kept" would not be true there
        log.debug("kept the policy files as the last good copy", extra={"files": [n for _, n in texts.files]})
        return True
