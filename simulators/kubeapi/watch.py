"""Watches on the simulated apiserver's list endpoints (``?watch=1``).

The store's resourceVersions are lazy (bumped when an object is read and found changed, see
:mod:`simulators.kubeapi.store`), so a watch polls: every ``poll_s`` wall seconds it lists the
collection (with the request's selectors), which records what changed in the store's history
(:mod:`simulators.kubeapi.history`), and sends the changes after the last resourceVersion it
sent as watch events, ``{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}``, one JSON
document a line, in resourceVersion order, as the apiserver's watch cache does: ADDED when an
object starts to match the selectors (created, or changed into them), MODIFIED while it matches,
DELETED when it stops (deleted, or changed out of them), carrying its last matching state with
the resourceVersion of the change that ended it.

Start: without ``resourceVersion`` (or with "0") the current objects come first as ADDED
events, as the apiserver's "any" semantics, then the changes after that list; with a
resourceVersion, the changes after it, deletions included (an object deleted between a list and
the watch from its resourceVersion, or while a watch was broken, comes as DELETED). A
resourceVersion older than the store's watch history (see KubeStore.oldest_watchable_rv) gets
one ERROR event carrying a 410 Expired Status, as from the apiserver's watch cache: clients
(client-go's reflector, the Python client's Watch) then list again; so does a watch that falls
behind the history's limit. The watch ends after ``timeoutSeconds`` (or client-go's ``timeout``;
0 or absent: :data:`MAX_WATCH_S`; negative: at once), at most :data:`MAX_WATCH_S`, or when the
server stops; then the chunked stream ends cleanly.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Callable, Iterator

from simulators.kubeapi import objects as K
from simulators.kubeapi.history import Change

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


def expired_status(since: int | str, oldest: int) -> dict:
    """The 410 Expired Status of a watch from a resourceVersion older than the history kept,
    worded as the apiserver's watch cache words it."""
    return K.status_body(410, "Expired", f"too old resource version: {since} ({oldest})")


def expired_event(since: str, oldest: int) -> bytes:
    """The one event of a watch from a resourceVersion older than the history kept: ERROR with
    a 410 Expired Status."""
    return encode_event("ERROR", expired_status(since, oldest))


def too_large_resource_version(since: int, current: int) -> K.KubeApiError:
    """The 504 of a watch from a resourceVersion the store has not reached (after waiting)."""
    return K.KubeApiError(504, f"Too large resource version: {since}, current: {current}", "Timeout",
                          {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                           "retryAfterSeconds": 1})


def _key(obj: dict) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


#: What a watch reads at once, under the store's lock, given the resourceVersion it is at (None
#: at the start of a watch without one): the objects that match its selectors now, the store's
#: resourceVersion, and the changes since to objects of its kind in its namespace (None when
#: forgotten: 410).
Read = Callable[[int | None], tuple[list[dict], int, list[Change] | None]]


def watch_events(read: Read, matches: Callable[[dict], bool], since_rv: str | None, duration_s: float,
                 stop: threading.Event, poll_s: float = POLL_S,
                 shown: Callable[[dict], dict] = lambda o: o) -> Iterator[tuple[str, dict]]:
    """(event type, object) pairs of a watch, for ``duration_s`` wall seconds or until ``stop``
    is set (see the module docstring). ``matches(state)``: whether an object's state from the
    history matches the watch's selectors; ``shown``: that state as the watched
    version shows it (HPAs through autoscaling/v1)."""
    deadline = time.monotonic() + duration_s
    if not since_rv or since_rv == "0":
        items, rv, _ = read(None)
        for obj in items:
            yield "ADDED", obj
    else:
        rv = int(since_rv)
        rv = yield from _follow(read, rv, matches, shown)
    while rv is not None and not stop.wait(max(0.0, min(poll_s, deadline - time.monotonic()))) \
            and time.monotonic() < deadline:
        rv = yield from _follow(read, rv, matches, shown)


def _follow(read: Read, since: int, matches: Callable[[dict], bool],
            shown: Callable[[dict], dict]) -> Iterator[tuple[str, dict]]:
    """The events of the changes after ``since``; returns the resourceVersion they bring the
    watch to, or None after a 410 ERROR (the changes are forgotten: the client lists again)."""
    items, rv, changes = read(since)
    if changes is None:
        yield "ERROR", expired_status(since, rv)
        return None
    yield from replay(changes, {_key(o): o for o in items}, matches, shown)
    return rv


def replay(changes: list[Change], current: dict[tuple[str, str], dict], matches: Callable[[dict], bool],
           shown: Callable[[dict], dict] = lambda o: o) -> list[tuple[str, dict]]:
    """The watch events of ``changes`` (one kind's, oldest first), as the cacher's
    convertToWatchEvent makes them from each change's states before and after: ADDED when only
    the after matches, MODIFIED when both do, DELETED (the before, at the change's
    resourceVersion) when only the before does. ``current``: the objects matching now, by key
    (the state after an object's last change, unless it is not there)."""
    events: list[tuple[str, dict]] = []
    later: dict[tuple[str, str], dict | None] = {}  # walking back: the state after the change at hand
    for change in reversed(changes):
        before = change.state_before()
        if change.key in later:
            after = later[change.key]
            shown_after = None if after is None or not matches(after) else _at(after, change.rv, shown)
        else:  # its last change: the object as listed now (when it matches), or none
            shown_after = None if change.deleted else current.get(change.key)
        before_matches = before is not None and matches(before)
        if shown_after is not None:
            events.append(("MODIFIED" if before_matches else "ADDED", shown_after))
        elif before_matches:
            events.append(("DELETED", _at(before, change.rv, shown)))
        later[change.key] = before
    events.reverse()
    return events


def _at(state: dict, rv: int, shown: Callable[[dict], dict]) -> dict:
    """A state from the history as the watch shows it, at resourceVersion ``rv``."""
    obj = shown(state)
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}


def encode_event(event_type: str, obj: dict) -> bytes:
    """One watch event as the apiserver streams it: a JSON document and a newline."""
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
