"""The index of the policies whose durable state this controller keeps, stored beside that state.

Knowing which removed policies left state behind would otherwise need a ``list`` of the state
namespace's ConfigMaps (RBAC this controller does not have, and one that would show other
controllers' state too). So the leader keeps the names it runs in one StateStore payload of its
own, named after its Lease (``setpoint-state-<lease name>.policy-index``: two controllers sharing a
state namespace have two Leases, hence two indexes), and deletes only what that index proves it
ran, as the removal time plus the policy's keep (controller/runtime/state_expiry.py) passes.

The payload (JSON, version 1)::

    {"version": 1, "controller": "setpoint/setpoint", "writer": "3f9c0a1b2c4d", "savedAt": 1765000000.0,
     "policies": {"web": {"seenAt": 1765000000.0, "keepS": 86400.0, "why": "budgets.rollbacksPerDay's window"},
                  "old": {"seenAt": 1764990000.0, "keepS": 3600.0, "why": "...", "removedAt": 1764995000.0}}}

``controller``: the Lease (``NAMESPACE/NAME``) of the controller it belongs to; ``writer``: a token
of the process that wrote it (another process's write in between tells of a second writer);
``seenAt``: when the policy was last recorded loaded (refreshed every ``INDEX_REFRESH_S``);
``keepS``/``why``: how long its state matters after its last cycle, and what sets that;
``removedAt``: when it stopped running (absent while it runs).

Read without ever raising: an unreadable payload is ignored with a problem named, an unreadable
entry is skipped with its name (which is then never deleted: what the index does not prove is
never deleted), a name that is not a policy name (a DNS-1123 label: no dot, so never another
policy's part) is skipped, and at most ``MAX_ENTRIES`` are read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.policy.fields import DNS_LABEL_PATTERN
from controller.runtime.state_payload import MAX_TEXT, first, read_payload, text, time_value

__all__ = ["PART", "IndexEntry", "ReadIndex", "Stamp", "decode", "encode"]

#: The StateStore part of the index (``setpoint-state-<lease name>.policy-index``).
PART = "policy-index"
VERSION = 1
#: At most this many policies are read and written (a ConfigMap holds at most 1 MiB; an entry takes
#: at most ~400 bytes with the longest name and reason). Loaded policies are written first, then the
#: removed ones soonest due; one left out is never deleted (said in the log).
MAX_ENTRIES = 2_000
#: A keep above this (ten years, in s) is not a policy's: the entry is skipped.
MAX_KEEP_S = 10 * 365 * 86_400.0
_POLICY_NAME = re.compile(DNS_LABEL_PATTERN)

Stamp = tuple[str, float]  # (writer token, savedAt): tells one stored index from another


@dataclass(frozen=True)
class IndexEntry:
    """One policy whose state this controller keeps: when it was last recorded loaded (epoch s),
    how long (s) its state matters after its last cycle and what sets that, and when it was
    removed (epoch s; None while it is loaded)."""

    seen_at: float
    keep_s: float
    why: str = ""
    removed_at: float | None = None

    def due(self) -> float | None:
        """When its state may be deleted (epoch s; None while loaded). Never before it was last
        seen: a removal time before that is not a time it stopped running."""
        return None if self.removed_at is None else max(self.removed_at, self.seen_at) + self.keep_s


@dataclass(frozen=True)
class ReadIndex:
    """A stored index as read: its entries by policy name, its stamp (None: nothing readable was
    stored), the controller it names ('' when unreadable), and the problems met (for the log)."""

    entries: dict[str, IndexEntry]
    stamp: Stamp | None
    controller: str
    problems: list[str]


def encode(controller: str, writer: str, entries: Mapping[str, IndexEntry], saved_at: float) -> dict:
    """The payload for ``entries``: at most MAX_ENTRIES, the loaded policies first, then the removed
    ones soonest due."""
    order = sorted(entries.items(), key=lambda kv: (kv[1].removed_at is not None, kv[1].due() or 0.0, kv[0]))
    return {"version": VERSION, "controller": controller, "writer": writer, "savedAt": saved_at,
            "policies": {name: _entry_doc(e) for name, e in sorted(order[:MAX_ENTRIES])}}


def _entry_doc(entry: IndexEntry) -> dict:
    doc = {"seenAt": entry.seen_at, "keepS": entry.keep_s, "why": entry.why}
    if entry.removed_at is not None:
        doc["removedAt"] = entry.removed_at
    return doc


def decode(raw: bytes | str | Mapping | None) -> ReadIndex:
    """The index in a stored payload, never raising; nothing stored: an empty index, no problem."""
    doc, problems = read_payload(raw, "policy index", VERSION, ("policies",))
    if doc is None:
        return ReadIndex({}, None, "", problems)
    try:
        controller, writer = text(doc.get("controller"), "controller"), text(doc.get("writer"), "writer")
        stamp = (writer, time_value(doc.get("savedAt"), "savedAt"))
    except ValueError as exc:
        return ReadIndex({}, None, "", [f"policy index: {exc}; ignored"])
    entries: dict[str, IndexEntry] = {}
    items = first(doc["policies"].items(), MAX_ENTRIES + 1)
    for name, record in items[:MAX_ENTRIES]:
        try:
            entries[_policy_name(name)] = _entry(record)
        except ValueError as exc:
            problems.append(f"policy index entry {str(name)[:MAX_TEXT]!r}: {exc}; ignored (its state is never deleted)")
    if len(items) > MAX_ENTRIES:
        problems.append(f"policy index has more than {MAX_ENTRIES} policies; the rest ignored")
    return ReadIndex(entries, stamp, controller, problems)


def _policy_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > 63 or not _POLICY_NAME.fullmatch(name):
        raise ValueError("not a policy name (a DNS-1123 label)")
    return name


def _entry(record: Any) -> IndexEntry:
    if not isinstance(record, Mapping):
        raise ValueError("not an object")
    keep = record.get("keepS")
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not math.isfinite(keep) \
            or not 0 <= keep <= MAX_KEEP_S:
        raise ValueError(f"keepS: not a duration of 0 to {MAX_KEEP_S:.0f} s")
    why = record.get("why", "")
    removed = record.get("removedAt")
    return IndexEntry(time_value(record.get("seenAt"), "seenAt"), float(keep), "" if why == "" else text(why, "why"),
                      None if removed is None else time_value(removed, "removedAt"))
