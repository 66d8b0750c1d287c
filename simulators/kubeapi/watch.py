"""Watches on the simulated apiserver's list endpoints (``?watch=1``).

The store's resourceVersions are lazy (bumped when an object is read and found changed, see
:mod:`simulators.kubeapi.store`), so a watch polls: every ``poll_s`` wall seconds it lists the
collection (with the request's selectors) and sends what changed since the last poll as watch
events, ``{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}``, one JSON document a line.

Start: without ``resourceVersion`` (or with "0") the current objects come first as ADDED
events, as the apiserver's "any" semantics; with a resourceVersion, objects newer than it come
as MODIFIED (the store keeps no history to say which were created since). A resourceVersion
older than the store's watch history (see KubeStore.oldest_watchable_rv) gets one ERROR event
carrying a 410 Expired Status, as from the apiserver's watch cache: clients (client-go's
reflector, the Python client's Watch) then list again. The watch ends after ``timeoutSeconds``
(or client-go's ``timeout``; 0 or absent: :data:`MAX_WATCH_S`; negative: at once), at most
:data:`MAX_WATCH_S`, or when the server stops; then the chunked stream ends cleanly.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Callable, Iterator

from simulators.kubeapi import objects as K

#: Longest watch (s): the apiserver's --min-request-timeout default.
MAX_WATCH_S = 1800.0
#: Wall seconds between two looks at the collection.
POLL_S = 0.25

_DURATION = re.compile(r"([0-9]{1,19}(?:\.[0-9]{1,19})?)(ms|h|m|s)")
_RESOURCE_VERSION = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes '²'
_SECONDS = re.compile(r"-?[0-9]{1,19}")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def watch_timeout_s(query: dict[str, str]) -> float:
    """The watch's duration (s): ``timeoutSeconds``, else ``timeout`` (a Go duration as client-go
    sends, e.g. ``1m30s``), else :data:`MAX_WATCH_S`; capped at it; 0 means the default and a
    negative value ends the watch at once, as on the apiserver. 400 when unparseable."""
    if query.get("timeoutSeconds"):
        if not _SECONDS.fullmatch(query["timeoutSeconds"]):
            raise K.bad_request(f"invalid timeoutSeconds {query['timeoutSeconds'][:40]!r}: expected whole seconds")
        seconds = int(query["timeoutSeconds"])
        if seconds != 0:
            return min(max(float(seconds), 0.0), MAX_WATCH_S)
    text = query.get("timeout", "")
    if text:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise K.bad_request(f"invalid timeout {text[:40]!r}: expected a duration such as 30s or 1m0s")
        return min(sum(float(n) * _UNIT_S[u] for n, u in parts), MAX_WATCH_S)
    return MAX_WATCH_S


def check_resource_version(value: str | None) -> None:
    """400 unless a watch's resourceVersion is absent or a whole number (checked before streaming)."""
    if value and not _RESOURCE_VERSION.fullmatch(value):
        raise K.bad_request(f"invalid resourceVersion {value[:40]!r}: expected a whole number")


def expired_event(since: str, oldest: int) -> bytes:
    """The one event of a watch from a resourceVersion older than the history kept: ERROR with
    a 410 Expired Status, worded as the apiserver's watch cache words it."""
    status = K.status_body(410, "Expired", f"too old resource version: {since} ({oldest})")
    return encode_event("ERROR", status)


def too_large_resource_version(since: int, current: int) -> K.KubeApiError:
    """The 504 of a watch from a resourceVersion the store has not reached (after waiting)."""
    return K.KubeApiError(504, f"Too large resource version: {since}, current: {current}", "Timeout",
                          {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                           "retryAfterSeconds": 1})


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _rv(obj: dict) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


def watch_events(list_items: Callable[[], list[dict]], since_rv: str | None, duration_s: float,
                 stop: threading.Event, poll_s: float = POLL_S) -> Iterator[tuple[str, dict]]:
    """(event type, object) pairs for a collection listed by ``list_items``, for ``duration_s``
    wall seconds or until ``stop`` is set (see the module docstring)."""
    deadline = time.monotonic() + duration_s
    seen = {_key(o): o for o in list_items()}
    if not since_rv or since_rv == "0":
        for obj in seen.values():
            yield "ADDED", obj
    else:
        for obj in seen.values():
            if _rv(obj) > int(since_rv):
                yield "MODIFIED", obj
    while not stop.wait(max(0.0, min(poll_s, deadline - time.monotonic()))) and time.monotonic() < deadline:
        now = {_key(o): o for o in list_items()}
        for key, obj in now.items():
            old = seen.get(key)
            if old is None:
                yield "ADDED", obj
            elif _rv(obj) != _rv(old):
                yield "MODIFIED", obj
        for key, obj in seen.items():
            if key not in now:
                yield "DELETED", obj
        seen = now


def encode_event(event_type: str, obj: dict) -> bytes:
    """One watch event as the apiserver streams it: a JSON document and a newline."""
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
