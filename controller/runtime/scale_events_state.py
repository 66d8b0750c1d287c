"""The scale events the leader applied, kept on the cluster so the rate limits hold across a
restart or a failover.

A policy's rate limits (``behavior.scaleUp/scaleDown.policies``: "1 pod a minute down") are
computed from the scale events of their longest period, kept in memory. A new process or a new
leader rebuilt them only from the warm start's replay of Prometheus, which misses the steps the
old leader took after the replay's last tick (its grid ends one interval before the new leader's
first cycle, and the replicas come from kube-state-metrics scrapes) and all of them without
kube-state-metrics or with ``--no-warm-start``: a whole period's budget was available again at
once (a day-2 drill saw a rate limit exceeded right after a failover). So each target's events
within the period are written to the policy's durable state (the ``StateStore`` port: a ConfigMap
``setpoint-state-<policy>.scale-events`` beside the health state's), read back at start-up and on
becoming leader, and merged with the warm start's history (controller/core/scaling/event_merge.py:
the union, a change seen in both counted once, events a period old dropped).

When it is written (Reconciler._act, _commit): **before** the cycle's scale actions go out, with
their events in it (write-ahead), and again after them only if what was applied differs (a scale
refused: its event taken back) or an earlier write failed. Write-ahead because a crash between the
scale and a save after it would lose that step, and the next leader could take it again: with the
record written first, a crash anywhere costs nothing (a step saved but never applied only makes
the next leader more careful for one period). A failed write never holds a scale back (a store
that keeps failing must not stop scaling forever): the scale goes out, the error is reported
(``state: scale events: ...``) and the write is tried again each cycle; only a crash before it
succeeds can lose steps, the ones made meanwhile. Nothing is read or written under a rehearsal
(dry-run, shadow: no event is applied); a record that could not be read is not written over
until it is (read again each cycle; scaling goes on with the warm start's history).

The payload (JSON, version 1)::

    {"version": 1, "policy": "web", "savedAt": 1765000000.0,
     "targets": {"shop/Deployment/web": {"up": [[1764999950.0, 2]], "down": []}}}

Each event is ``[time (epoch s), replicas added or removed]``, oldest first. A payload that
cannot be read is ignored with a problem named, an entry that cannot be read is skipped with its
key named (never an exception: a hostile or truncated ConfigMap must not stop scaling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller.core.health.state_codec import target_key
from controller.runtime.state_payload import MAX_TEXT, first, read_payload, text

__all__ = ["PART", "StoredEvents", "as_arrays", "decode", "encode", "events_of", "target_key"]

#: The StateStore part (ConfigMap name suffix) of the scale events.
PART = "scale-events"
VERSION = 1
#: At most this many targets are read, and events per target and direction (a policy's history
#: holds ceil(period / interval) + 2: 1,802 for a 30-minute period at a 1 s interval).
MAX_TARGETS = 10_000
MAX_EVENTS = 4_096
#: At most this many events are written in all, the targets with the newest first (a ConfigMap
#: holds at most 1 MiB; an event is about 20 bytes: a mass rescale beyond it is still limited by
#: the events kept in memory until a restart).
MAX_SAVED_EVENTS = 25_000

Event = tuple[float, int]  # (time epoch s, replicas added or removed: > 0)


@dataclass(frozen=True)
class StoredEvents:
    """One target's scale events as stored, oldest first."""

    up: tuple[Event, ...] = ()
    down: tuple[Event, ...] = ()


def events_of(changes: np.ndarray, times: np.ndarray, since: float) -> list[list[Event]]:
    """Per row of (N, E) ``changes``/``times`` (a NormState history), its events after ``since``
    (time, whole replicas), oldest first; rows without one: []."""
    with np.errstate(invalid="ignore"):
        live = (np.asarray(times) > since) & (np.asarray(changes) > 0)
    out: list[list] = [[] for _ in range(live.shape[0])]
    rows, cols = np.nonzero(live)
    for i, j in zip(rows.tolist(), cols.tolist()):
        out[i].append((float(times[i, j]), int(round(float(changes[i, j])))))
    return [sorted(e) for e in out]


def encode(policy: str, targets: Mapping[str, StoredEvents], saved_at: float) -> dict:
    """The payload for ``targets`` (key -> events), at most MAX_SAVED_EVENTS events: the targets
    whose newest event is newest first."""
    def newest(item) -> float:
        return max((t for t, _ in item[1].up + item[1].down), default=0.0)

    kept, count = {}, 0
    for key, events in sorted(targets.items(), key=lambda kv: (-newest(kv), kv[0])):
        size = len(events.up) + len(events.down)
        if not size or count + size > MAX_SAVED_EVENTS:
            continue
        kept[key], count = events, count + size
    return {"version": VERSION, "policy": policy, "savedAt": saved_at,
            "targets": {k: {"up": [list(e) for e in v.up], "down": [list(e) for e in v.down]}
                        for k, v in sorted(kept.items())}}


def decode(raw: bytes | str | Mapping | None) -> tuple[dict[str, StoredEvents], list[str]]:
    """(key -> events, problems) of a stored payload; nothing stored: ({}, [])."""
    doc, problems = read_payload(raw, "scale-event state", VERSION, ("targets",))
    out: dict[str, StoredEvents] = {}
    if doc is None:
        return out, problems
    entries = first(doc["targets"].items(), MAX_TARGETS + 1)
    for key, record in entries[:MAX_TARGETS]:
        try:
            out[text(key, "key")] = _entry(record)
        except ValueError as exc:
            problems.append(f"scale-event state of {str(key)[:MAX_TEXT]!r}: {exc}; ignored")
    if len(entries) > MAX_TARGETS:
        problems.append(f"scale-event state has more than {MAX_TARGETS} targets; the rest ignored")
    return out, problems


def as_arrays(entries: Sequence[Sequence[Event]]) -> tuple[np.ndarray, np.ndarray]:
    """(changes, times), (N, K) with K the most events of an entry, for N entries (one per row);
    empty slots: change 0, time NaN."""
    k = max((len(e) for e in entries), default=0)
    changes, times = np.zeros((len(entries), k)), np.full((len(entries), k), np.nan)
    for i, events in enumerate(entries):
        for j, (t, c) in enumerate(events):
            times[i, j], changes[i, j] = t, c
    return changes, times


def _entry(record: Any) -> StoredEvents:
    if not isinstance(record, Mapping):
        raise ValueError("not an object")
    return StoredEvents(_events(record.get("up", []), "up"), _events(record.get("down", []), "down"))


def _events(value: Any, name: str) -> tuple[Event, ...]:
    if not isinstance(value, list) or len(value) > MAX_EVENTS:
        raise ValueError(f"{name}: not a list of at most {MAX_EVENTS} [time, replicas] pairs")
    out = []
    for e in value:
        if not isinstance(e, list) or len(e) != 2:
            raise ValueError(f"{name}: {str(e)[:40]} is not a [time, replicas] pair")
        t, c = e
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ValueError(f"{name}: {str(t)[:40]} is not a time")
        if isinstance(c, bool) or not isinstance(c, int) or not 0 < c <= 2**31 - 1:
            raise ValueError(f"{name}: {str(c)[:40]} is not a number of replicas")
        out.append((float(t), c))
    return tuple(sorted(out))
