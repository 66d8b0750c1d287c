"""The hands-offs in force, kept on the cluster so a restart or failover does not end them.

During an incident the on-call scales a workload by hand (``kubectl edit``, ``kubectl scale``);
the controller leaves it alone for ``onExternalScale.handsOff`` (controller/runtime/external_scale.py).
Kept in memory only, a restart in that half hour (a node drained with the controller on it, an
OOM kill, a new leader) would end it: the new process sees 30 replicas, takes them for the
workload's own, and scales them down at its next decision. managedFields date a count only when
the writer's entry owns spec.replicas alone (``kubectl scale``), not after a ``kubectl edit`` of
anything else. So each change of the hands-offs in force is written to the policy's durable
state (the ``StateStore`` port: a ConfigMap ``setpoint-state-<policy>.hands-off`` beside the
health state's) and read back at start-up and on becoming leader.

The payload (JSON, version 1)::

    {"version": 1, "policy": "web", "savedAt": 1765000000.0,
     "handsOff": {"shop/Deployment/web": {"by": "kubectl-edit", "replicas": 30, "from": 6,
                                         "at": 1765000000.0, "floor": true}}}

``until`` is not stored: it is the change's time plus the policy's ``handsOff`` when read (an
edited policy applies, as on a reload). A payload that cannot be read is ignored with a problem
named (never an exception: a hostile or truncated ConfigMap must not stop scaling); an entry
that cannot be read is skipped with its key named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.health.state_codec import target_key

__all__ = ["PART", "StoredHandsOff", "decode", "encode", "target_key"]

#: The StateStore part (ConfigMap name suffix) of the hands-offs.
PART = "hands-off"
VERSION = 1
#: At most this many entries are read (a policy governs at most this many workloads in practice;
#: a hostile payload must not cost memory or time).
MAX_ENTRIES = 10_000
MAX_TEXT = 256
#: At most this many entries are written, the newest (a ConfigMap holds at most 1 MiB: 1,500
#: entries of the longest keys and writers fit; more hands-offs at once than that is a mass event
#: the ones kept in memory still cover until a restart).
MAX_SAVED = 1_500


@dataclass(frozen=True)
class StoredHandsOff:
    """One hands-off as stored: who set the count, to what, from what, when, and whether it is a floor."""

    by: str
    replicas: int
    before: int
    at: float  # epoch s
    floor: bool


def encode(policy: str, entries: Mapping[str, StoredHandsOff], saved_at: float) -> dict:
    """The payload for ``entries`` (target key -> hands-off): the newest MAX_SAVED of them."""
    kept = sorted(entries.items(), key=lambda kv: (-kv[1].at, kv[0]))[:MAX_SAVED]
    return {"version": VERSION, "policy": policy, "savedAt": saved_at,
            "handsOff": {k: {"by": e.by, "replicas": e.replicas, "from": e.before, "at": e.at, "floor": e.floor}
                         for k, e in sorted(kept)}}


def decode(raw: bytes | str | Mapping | None) -> tuple[dict[str, StoredHandsOff], list[str]]:
    """(entries by target key, problems) of a stored payload; nothing stored: ({}, [])."""
    if raw is None:
        return {}, []
    try:
        doc = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    except (ValueError, RecursionError) as exc:
        return {}, [f"hands-off state is not JSON ({type(exc).__name__}); ignored"]
    if not isinstance(doc, Mapping) or doc.get("version") != VERSION or not isinstance(doc.get("handsOff"), Mapping):
        return {}, [f"hands-off state is not a version {VERSION} payload with a handsOff object; ignored"]
    entries, problems = {}, []
    for key, record in _first(doc["handsOff"].items(), MAX_ENTRIES):
        try:
            entries[_text(key, "key")] = _entry(record)
        except ValueError as exc:
            problems.append(f"hands-off state of {str(key)[:MAX_TEXT]!r}: {exc}; ignored")
    return entries, problems


def _first(items: Iterable, n: int) -> list:
    out = []
    for item in items:
        if len(out) == n:
            break
        out.append(item)
    return out


def _entry(record: Any) -> StoredHandsOff:
    if not isinstance(record, Mapping):
        raise ValueError("not an object")
    floor = record.get("floor", False)
    if not isinstance(floor, bool):
        raise ValueError("floor: not true or false")
    return StoredHandsOff(_text(record.get("by"), "by"), _count(record.get("replicas"), "replicas"),
                          _count(record.get("from"), "from"), _time(record.get("at"), "at"), floor)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ValueError(f"{field}: not a text of 1 to {MAX_TEXT} characters")
    return value


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31 - 1:
        raise ValueError(f"{field}: not a replica count")
    return value


def _time(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{field}: not a time")
    return float(value)
