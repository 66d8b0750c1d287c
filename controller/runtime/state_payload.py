"""What the durable-state codecs of the runtime share (hands_off_state, scale_events_state,
state_index): a stored JSON payload read without ever raising (a hostile or truncated ConfigMap
must not stop scaling), its keys read as bounded texts, and the time it says it was saved."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Longest text (a target key, a writer's name) a payload may hold.
MAX_TEXT = 256


def read_payload(raw: bytes | str | Mapping | None, what: str, version: int, objects: tuple[str, ...],
                 optional: tuple[str, ...] = ()) -> tuple[Mapping | None, list[str]]:
    """(the payload, []) when ``raw`` is a ``version`` payload whose ``objects`` are JSON objects
    (and ``optional`` ones too when present); (None, [the problem, naming ``what``]) otherwise;
    nothing stored: (None, [])."""
    if raw is None:
        return None, []
    try:
        doc = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    except (ValueError, RecursionError) as exc:
        return None, [f"{what} is not JSON ({type(exc).__name__}); ignored"]
    if not isinstance(doc, Mapping) or doc.get("version") != version \
            or not all(isinstance(doc.get(k), Mapping) for k in objects) \
            or not all(isinstance(doc.get(k, {}), Mapping) for k in optional):
        return None, [f"{what} is not a version {version} payload with a {objects[0]} object; ignored"]
    return doc, []


def first(items: Iterable, n: int) -> list:
    """The first ``n`` of ``items`` (a hostile payload's object may be huge)."""
    out = []
    for item in items:
        if len(out) == n:
            break
        out.append(item)
    return out


def text(value: Any, name: str) -> str:
    """``value`` when a text of 1 to MAX_TEXT characters, else a ValueError naming ``name``."""
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ValueError(f"{name}: not a text of 1 to {MAX_TEXT} characters")
    return value


def time_value(value: Any, name: str) -> float:
    """``value`` as epoch seconds when a finite number >= 0 (not a boolean), else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: not a time")
    return float(value)


def saved_time(raw: bytes | str | Mapping | None) -> float | None:
    """When a stored payload says it was saved (epoch s: its ``savedAt``, or the health state's
    ``saved_at``); None when there is no payload, it is not a JSON object, or it says no time."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, Mapping):
        return None
    for key in ("savedAt", "saved_at"):
        try:
            return time_value(doc.get(key), key)
        except ValueError:
            continue
    return None
