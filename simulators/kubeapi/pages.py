"""Chunked lists (``limit`` and ``continue``), as the apiserver serves them.

A list with ``limit=N`` (N > 0) returns at most N items, in the list's order (namespace, name); when
more remain, its metadata carries ``continue``, a token for the next chunk, and, when the list has
no label or field selector, ``remainingItemCount`` (the apiserver counts only an unfiltered rest).
The token is the apiserver's: URL-safe base64 (no padding) of ``{"v": "meta.k8s.io/v1", "rv": RV,
"start": "NAMESPACE/NAME\\u0000"}``, the first chunk's resourceVersion and the key after the last
item sent. kubectl (``--chunk-size``, 500 by default) and client-go's pager follow it.

Errors as the apiserver's: a token that does not decode, or names no resourceVersion, is 400
``invalid continue token: continue key is not valid: ...``; a token with a ``resourceVersion``
other than 0 beside it is 400; a token whose
resourceVersion is older than the history this server keeps (its watch window) is 410 Expired
with the apiserver's words, and the Status carries a token to go on inconsistently.

One difference, stated: the apiserver serves every chunk from the first chunk's snapshot; this
server serves a later chunk from the current objects after the token's key (what was created,
changed or deleted meanwhile shows, as after the apiserver's 410). Setpoint reads Events this way,
newest per workload; nothing it does depends on the snapshot.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from simulators.kubeapi import objects as K

TOO_OLD = ("The provided continue parameter is too old to display a consistent list result. You can start a new "
           "list without the continue parameter, or use the continue token in this response to retrieve the "
           "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
           "that were created, modified, or deleted between the time the first chunk was returned and now may show "
           "up in the list.")


def encode_continue(rv: int, last: dict) -> str:
    """The token of the chunk after item ``last``, in the list at resourceVersion ``rv``."""
    meta = last["metadata"]
    key = f"{meta.get('namespace', '')}/{meta['name']}" if meta.get("namespace") else meta["name"]
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": key + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    """(resourceVersion, (namespace, name) the next chunk starts after); 400 when not a token."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, start = raw["rv"], raw["start"]
        if raw.get("v") != "meta.k8s.io/v1":
            raise ValueError(f"server does not recognize this encoded version {str(raw.get('v'))[:40]!r}")
        if not isinstance(rv, int) or not isinstance(start, str):
            raise ValueError("not a continue token of meta.k8s.io/v1")
        if rv <= 0:
            raise ValueError("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise K.bad_request(f"invalid continue token: continue key is not valid: {exc}"[:300]) from None
    key = start.rstrip("\x00")
    namespace, _, name = key.rpartition("/")
    return rv, (namespace, name)


def limit_of(query: dict[str, str]) -> int:
    """The list's ``limit`` (0: none; a negative limit is none, as the apiserver reads it)."""
    text = query.get("limit", "")
    return max(int(text), 0) if re.fullmatch(r"-?[0-9]{1,18}", text) else 0


def chunk(items: list[dict], rv: int, query: dict[str, str], oldest_rv: int, filtered: bool
          ) -> tuple[list[dict], dict]:
    """The chunk of ``items`` (sorted, the list's current objects at ``rv``) the request's ``limit``
    and ``continue`` ask for, and the list metadata to send with it (resourceVersion, continue,
    remainingItemCount)."""
    token = query.get("continue")
    if token:
        if query.get("resourceVersion", "0") != "0":
            raise K.bad_request("specifying resource version is not allowed when using continue")
        rv, after = decode_continue(token)
        if rv < oldest_rv:
            go_on = encode_continue(oldest_rv, {"metadata": {"namespace": after[0], "name": after[1]}})
            raise K.KubeApiError(410, TOO_OLD, "Expired", metadata={"continue": go_on})
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
    meta: dict = {"resourceVersion": str(rv)}
    limit = limit_of(query)
    if limit and len(items) > limit:
        items, rest = items[:limit], len(items) - limit
        meta["continue"] = encode_continue(rv, items[-1])
        if not filtered:
            meta["remainingItemCount"] = rest
    return items, meta
