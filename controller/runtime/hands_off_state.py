"""The hands-offs in force, and the reverts that make fights, kept on the cluster so a restart
or failover does not end them.

During an incident the on-call scales a workload by hand (``kubectl edit``, ``kubectl scale``);
the controller leaves it alone for ``onExternalScale.handsOff`` (controller/runtime/external_scale.py).
Kept in memory only, a restart in that half hour (a node drained with the controller on it, an
OOM kill, a new leader) would end it: the new process sees 30 replicas, takes them for the
workload's own, and scales them down at its next decision. managedFields date a count only when
the writer's entry owns spec.replicas alone (``kubectl scale``), not after a ``kubectl edit`` of
anything else. Likewise a fight (another writer reverting this controller's writes) would be
forgotten at each restart, its alert resolved and raised again three reverts later. So each
change of either is written to the policy's durable state (the ``StateStore`` port: a ConfigMap
``setpoint-state-<policy>.hands-off`` beside the health state's) and read back at start-up and
on becoming leader.

The payload (JSON, version 1)::

    {"version": 1, "policy": "web", "savedAt": 1765000000.0,
     "handsOff": {"shop/Deployment/web": {"by": "kubectl-edit", "replicas": 30, "from": 6,
                                         "at": 1765000000.0, "floor": true}},
     "reverts": {"shop/Deployment/api": {"at": [1764990000.0, 1764995000.0], "fight": "argocd-controller"}}}

``until`` is not stored: it is the change's time plus the policy's ``handsOff`` when read (an
edited policy applies, as on a reload); reverts are kept while they are inside the fight window.
A payload that cannot be read is ignored with a problem named (never an exception: a hostile or
truncated ConfigMap must not stop scaling); an entry that cannot be read is skipped with its key
named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.health.state_codec import target_key
from controller.runtime.state_payload import MAX_TEXT, first, read_payload, text

__all__ = ["PART", "StoredHandsOff", "StoredReverts", "WatchState", "decode", "encode", "target_key"]

#: The StateStore part (ConfigMap name suffix) of the hands-offs.
PART = "hands-off"
VERSION = 1
#: At most this many entries are read (a policy governs at most this many workloads in practice;
#: a hostile payload must not cost memory or time).
MAX_ENTRIES = 10_000
#: At most this many hands-offs, and targets' reverts, are written, the newest (a ConfigMap holds at
#: most 1 MiB: both at their bounds with the longest names fit; more at once than that is a mass
#: event the ones kept in memory still cover until a restart).
MAX_SAVED = 1_200
MAX_SAVED_REVERTS = 200


@dataclass(frozen=True)
class StoredHandsOff:
    """One hands-off as stored: who set the count, to what, from what, when, and whether it is a floor."""

    by: str
    replicas: int
    before: int
    at: float  # epoch s
    floor: bool


@dataclass(frozen=True)
class StoredReverts:
    """A target's recent reverts of this controller's writes (epoch s, oldest first) and, while
    they make a fight, the other writer ('' otherwise)."""

    times: tuple[float, ...]
    fight: str = ""


@dataclass
class WatchState:
    """What an ExternalScaleWatch keeps on the cluster, by target key (``target_key``)."""

    hands_off: dict[str, StoredHandsOff] = field(default_factory=dict)
    reverts: dict[str, StoredReverts] = field(default_factory=dict)


#: At most this many reverts are kept per target (a fight needs 3 inside its window).
MAX_REVERTS = 16


def encode(policy: str, state: WatchState, saved_at: float) -> dict:
    """The payload for ``state``: its newest MAX_SAVED hands-offs and MAX_SAVED_REVERTS targets' reverts."""
    kept = sorted(state.hands_off.items(), key=lambda kv: (-kv[1].at, kv[0]))[:MAX_SAVED]
    reverts = sorted(state.reverts.items(), key=lambda kv: (-max(kv[1].times, default=0.0), kv[0]))[:MAX_SAVED_REVERTS]
    return {"version": VERSION, "policy": policy, "savedAt": saved_at,
            "handsOff": {k: {"by": e.by, "replicas": e.replicas, "from": e.before, "at": e.at, "floor": e.floor}
                         for k, e in sorted(kept)},
            "reverts": {k: {"at": list(r.times[-MAX_REVERTS:]), **({"fight": r.fight} if r.fight else {})}
                        for k, r in sorted(reverts)}}


def decode(raw: bytes | str | Mapping | None) -> tuple[WatchState, list[str]]:
    """(the state, problems) of a stored payload; nothing stored: (an empty state, [])."""
    doc, problems = read_payload(raw, "hands-off state", VERSION, ("handsOff",), optional=("reverts",))
    state = WatchState()
    if doc is None:
        return state, problems
    for part, read, out in (("handsOff", _entry, state.hands_off), ("reverts", _reverts, state.reverts)):
        for key, record in first(doc.get(part, {}).items(), MAX_ENTRIES):
            try:
                out[text(key, "key")] = read(record)
            except ValueError as exc:
                problems.append(f"hands-off state {part} of {str(key)[:MAX_TEXT]!r}: {exc}; ignored")
    return state, problems


def _entry(record: Any) -> StoredHandsOff:
    if not isinstance(record, Mapping):
        raise ValueError("not an object")
    floor = record.get("floor", False)
    if not isinstance(floor, bool):
        raise ValueError("floor: not true or false")
    return StoredHandsOff(text(record.get("by"), "by"), _count(record.get("replicas"), "replicas"),
                          _count(record.get("from"), "from"), _time(record.get("at"), "at"), floor)


def _reverts(record: Any) -> StoredReverts:
    if not isinstance(record, Mapping):
        raise ValueError("not an object")
    times = record.get("at")
    if not isinstance(times, list) or not times or len(times) > MAX_REVERTS:
        raise ValueError(f"at: not a list of 1 to {MAX_REVERTS} times")
    fight = record.get("fight", "")
    return StoredReverts(tuple(sorted(_time(t, "at") for t in times)), "" if fight == "" else text(fight, "fight"))


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise ValueError(f"{name}: not a replica count")
    return value


def _time(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: not a time")
    return float(value)
