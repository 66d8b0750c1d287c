"""The three PATCH formats the apiserver accepts for built-in objects, on plain JSON values.

- ``application/merge-patch+json``: RFC 7386 (maps merge, ``null`` deletes, lists replace).
- ``application/strategic-merge-patch+json``: a merge patch where lists of maps that carry a
  ``name`` (containers, env, ports of a container...) merge item by item, as the apiserver's
  patch strategy for those fields does; ``$patch: replace`` / ``$patch: delete`` directives in
  a map are honoured and ``$setElementOrder``/``$retainKeys`` directives are ignored (they only
  order or prune what this simplified merge already produces).
- ``application/json-patch+json``: RFC 6902 (add, remove, replace, move, copy, test).

A patch that cannot be applied is a KubeApiError: 422 for JSON Patch failures and malformed
operations (as the apiserver answers), 400 for a body that is not a JSON list of objects (JSON
Patch) or an object (merge patches), 413 for more than :data:`MAX_JSON_PATCH_OPERATIONS`
operations, 415 for any other content type.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from simulators.kubeapi.objects import KubeApiError, bad_request, unsupported_media_type

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (MERGE, STRATEGIC, JSON_PATCH)
#: The apiserver's limit on the operations of one JSON Patch.
MAX_JSON_PATCH_OPERATIONS = 10_000
_OPS = ("add", "remove", "replace", "move", "copy", "test")
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")  # an array index: ASCII, no leading zero, bounded


def apply_patch(content_type: str, target: dict, patch: Any) -> dict:
    """The patched copy of ``target`` (never modified in place)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == JSON_PATCH:
        if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if len(patch) > MAX_JSON_PATCH_OPERATIONS:
            raise KubeApiError(413, f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
                                    f"got {len(patch)}", "RequestEntityTooLarge")
        return json_patch(target, patch)
    if kind not in (MERGE, STRATEGIC):
        raise unsupported_media_type(kind)
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    return strategic_merge(target, patch) if kind == STRATEGIC else merge_patch(target, patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _named_list(items: Any) -> bool:
    """A list merged item by item: maps each with a string ``name`` (the merge key)."""
    return isinstance(items, list) and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, simplified as the module docstring says."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and _named_list(value) and _named_list(out.get(key)):
            out[key] = _merge_named_lists(out[key], value)
        else:
            merged = strategic_merge(out.get(key), value)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
    return out


def _merge_named_lists(current: list[dict], patch: list[dict]) -> list[dict]:
    """Merge a list of maps by their ``name``: patched items merge, new ones append, items with
    ``$patch: delete`` go."""
    out = [copy.deepcopy(i) for i in current]
    index = {item["name"]: k for k, item in enumerate(out)}
    for item in patch:
        k = index.get(item["name"])
        if item.get("$patch") == "delete":
            if k is not None:
                out[k] = None
            continue
        if k is None:
            out.append(strategic_merge({}, item))
            index[item["name"]] = len(out) - 1
        else:
            out[k] = strategic_merge(out[k], item)
    return [i for i in out if i is not None]


# --------------------------------------------------------------------------- RFC 6902
def _tokens(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise _patch_failed(f"invalid JSON pointer {str(pointer)[:80]!r}: must be a string")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _patch_failed(f"invalid JSON pointer {pointer[:80]!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(token: str) -> int | None:
    """The array index a pointer token names, or None (not an ASCII number, or absurdly large)."""
    return int(token) if _INDEX.fullmatch(token) else None


def _patch_failed(message: str) -> KubeApiError:
    return KubeApiError(422, message, "Invalid")


def _parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    node = doc
    for t in tokens[:-1]:
        node = _child(node, t)
        if node is _MISSING:
            raise _patch_failed(f"doc is missing path: /{'/'.join(tokens)[:200]}: missing value")
    return node, tokens[-1]


_MISSING = object()


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    i = _index(token) if isinstance(node, list) else None
    return node[i] if i is not None and i < len(node) else _MISSING


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for t in _tokens(pointer):
        node = _child(node, t)
        if node is _MISSING:
            raise _patch_failed(f"doc is missing path: {pointer[:200]}: missing value")
    return node


def _remove(doc: Any, pointer: str) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        raise _patch_failed("unable to remove the whole document: invalid path")
    parent, key = _parent(doc, tokens)
    if isinstance(parent, dict) and key in parent:
        return parent.pop(key)
    i = _index(key) if isinstance(parent, list) else None
    if i is not None and i < len(parent):
        return parent.pop(i)
    raise _patch_failed(f"unable to remove nonexistent key: {key[:200]}: missing value")


def _add(doc: Any, pointer: str, value: Any, replace: bool = False) -> Any:
    tokens = _tokens(pointer)
    if not tokens:
        return value
    parent, key = _parent(doc, tokens)
    if isinstance(parent, dict):
        if replace and key not in parent:
            raise _patch_failed(f"replace operation does not apply: doc is missing key: {pointer}: missing value")
        parent[key] = value
    elif isinstance(parent, list):
        i = _index(key)
        if key == "-" and not replace:
            parent.append(value)
        elif i is not None and i <= len(parent) - (1 if replace else 0):
            if replace:
                parent[i] = value
            else:
                parent.insert(i, value)
        else:
            raise _patch_failed(f"unable to access invalid index: {key[:200]}: invalid index referenced")
    else:
        raise _patch_failed(f"doc is missing path: {pointer[:200]}: missing value")
    return doc


def json_patch(target: dict, operations: list) -> dict:
    """RFC 6902 on a copy of ``target``."""
    doc = copy.deepcopy(target)
    for op in operations:
        _check_operation(op)
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            doc = _add(doc, path, _remove(doc, op["from"]))
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _patch_failed(f"testing value {path} failed: test failed")
    return doc


def _check_operation(op: dict) -> None:
    """422 for an operation the apiserver's JSON Patch library refuses: an unknown op, a missing
    or non-string path, a move or copy without ``from``."""
    kind = op.get("op")
    if kind not in _OPS:
        raise _patch_failed(f"Unexpected kind: {str(kind)[:80]}")
    if not isinstance(op.get("path"), str):
        raise _patch_failed(f"{kind} operation: invalid path: {str(op.get('path'))[:80]}")
    if kind in ("move", "copy") and not isinstance(op.get("from"), str):
        raise _patch_failed(f"{kind} operation: missing or invalid from: {str(op.get('from'))[:80]}")
