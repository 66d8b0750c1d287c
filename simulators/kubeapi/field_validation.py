"""Unknown and duplicate fields in request bodies, and the ``fieldValidation`` query parameter, as
the apiserver (1.27+) handles them.

What the apiserver does with a create (POST), update (PUT) or patch (PATCH) of a built-in kind:

- it decodes the body into the kind's Go type with a strict JSON decoder (sigs.k8s.io/json) that
  collects *strict errors* in document order, deduplicated, at most 100: ``unknown field "P"`` for
  a key the type does not have (its value is skipped, nothing inside it is checked) and
  ``duplicate field "P"`` for a key seen twice in one object (a struct or a map). ``P`` is the
  field's path: JSON names joined by ``.``, list items as ``[i]`` (``spec.template.spec.containers[0].foo``);
- ``fieldValidation`` says what those errors do: ``Strict``: the request fails with every one of
  them (``strict decoding error: unknown field "spec.foo", ...``: a 400 for a create or update, a
  422 Invalid on field ``patch`` for a patch); ``Warn`` (the default when the parameter is absent):
  the request goes through and each error comes back as a ``Warning: 299 - "..."`` response
  header (kubectl prints ``Warning: unknown field "spec.foo"``); ``Ignore``: nothing is said. In
  every case an unknown field is dropped (never stored) and the last of duplicate keys wins. Any
  other value is a 422 (``CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value``);
- a patch's own duplicate keys count (``json patch duplicate field "[0].path"`` in a JSON patch),
  then the unknown fields of the patched object.

The fields each kind has come from the official Python client's model classes (``openapi_types``
and ``attribute_map``), generated into :data:`KNOWN_FIELDS_FILE` by tests/support/kube_known_fields.py
(the simulator may not import ``kubernetes``). Types the client calls ``object`` (IntOrString,
RawExtension, FieldsV1) are opaque: nothing inside them is checked, as their Go types decode
themselves. The client may be newer than the Kubernetes version this server reports: a field
added since is accepted here where that version would call it unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from simulators.kubeapi import objects as K

KNOWN_FIELDS_FILE = Path(__file__).with_name("known_fields.json")
STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
#: The values the apiserver accepts, sorted as its error message lists them ("" is the default, Warn).
SUPPORTED = ("", IGNORE, STRICT, WARN)
#: The strict decoder keeps at most this many errors.
MAX_STRICT_ERRORS = 100
#: A type whose inside is checked for duplicate keys only (Go's interface{}: a patch's values).
ANY = "any"
#: What a JSON patch body decodes into (the apiserver's jsonPatchOp: ``value`` is an interface{}).
JSON_PATCH_OPERATIONS = "List[jsonPatchOp]"
_JSON_PATCH_OP = {"op": "str", "path": "str", "from": "str", "value": ANY}

_LIST = re.compile(r"List\[(.*)\]")
_MAP = re.compile(r"Dict\[str, (.*)\]")


class Pairs(list):
    """A JSON object as decoded with ``object_pairs_hook=Pairs``: its (key, value) pairs in order,
    duplicates kept (a dict would keep only the last)."""


@lru_cache(maxsize=1)
def known_fields() -> dict:
    """known_fields.json: ``kinds`` ("apiVersion/Kind" -> model) and ``models`` (model -> {field: type})."""
    return json.loads(KNOWN_FIELDS_FILE.read_text())


def model_of(api_version: str, kind: str) -> str:
    """The model (type name) of a kind: ``object`` (nothing checked) for a kind the file does not have."""
    return known_fields()["kinds"].get(f"{api_version}/{kind}", "object")


def directive(query: dict[str, str], options_kind: str) -> str:
    """The request's ``fieldValidation`` (Warn when absent or empty); 422 for any other value than
    Strict, Warn or Ignore, as the apiserver validates ``options_kind`` (CreateOptions,
    UpdateOptions, PatchOptions) before it reads the body."""
    value = query.get("fieldValidation", "")
    if value not in SUPPORTED:
        supported = ", ".join(f'"{v}"' for v in SUPPORTED)
        raise K.field_error(options_kind, "meta.k8s.io", "", "fieldValidation", "FieldValueNotSupported",
                            f"Unsupported value: {go_quote(value[:64])}: supported values: {supported}")
    return value or WARN


@dataclass
class StrictErrors:
    """The strict errors of one request, in the order found, each once, at most MAX_STRICT_ERRORS."""

    messages: list[str] = field(default_factory=list)
    prefix: str = ""  #: before each message (``json patch `` while a JSON patch's own body is decoded)

    def add(self, kind: str, path: str) -> None:
        """Record ``unknown field "path"`` or ``duplicate field "path"`` (``kind``: unknown, duplicate)."""
        message = f"{self.prefix}{kind} field {go_quote(path)}"
        if len(self.messages) < MAX_STRICT_ERRORS and message not in self.messages:
            self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def text(self) -> str:
        """``strict decoding error: unknown field "spec.foo", duplicate field "spec.replicas"``."""
        return "strict decoding error: " + ", ".join(self.messages)


def strict_patch_error(shown: str, errors: StrictErrors) -> K.KubeApiError:
    """The 422 of a patch refused under fieldValidation=Strict, worded as the apiserver words it,
    with no kind nor name: ``"" is invalid: patch: Invalid value: "<shown>": strict decoding error:
    ...`` (``shown``: the patch, or the patched object, as the apiserver prints them)."""
    cause = f"Invalid value: {go_quote(shown)}: {errors.text()}"
    return K.KubeApiError(422, f' "" is invalid: patch: {cause}', "Invalid",
                          {"causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}]})


def decode(value: Any, type_name: str, errors: StrictErrors) -> Any:
    """``value`` (plain JSON, or with :class:`Pairs` for objects) as the Go type ``type_name`` would
    keep it: unknown fields dropped, the last of duplicate keys kept, and each one recorded in
    ``errors``. A value of another JSON type than the field's is returned as it is (the type check,
    validation.check_shape, says what is wrong with it)."""
    return _decode(value, type_name, "", errors)


def _decode(value: Any, type_name: str, path: str, errors: StrictErrors) -> Any:
    if type_name == "object":
        return plain(value)
    listed = _LIST.fullmatch(type_name)
    if isinstance(value, list) and not isinstance(value, Pairs):
        item_type = listed.group(1) if listed else (ANY if type_name == ANY else "object")
        return [_decode(item, item_type, f"{path}[{i}]", errors) for i, item in enumerate(value)]
    if not isinstance(value, (dict, Pairs)):
        return value
    fields = _fields_of(type_name)
    mapped = _MAP.fullmatch(type_name)
    if fields is None and mapped is None and type_name != ANY:
        return plain(value)  # an object where a scalar or a list goes: the type check refuses it
    out: dict[str, Any] = {}
    for key, item in (value if isinstance(value, Pairs) else value.items()):
        where = f"{path}.{key}" if path else key
        if key in out:
            errors.add("duplicate", where)
        if fields is not None and key not in fields:
            errors.add("unknown", where)
            continue
        item_type = fields[key] if fields is not None else (mapped.group(1) if mapped else ANY)
        out[key] = _decode(item, item_type, where, errors)
    return out


def _fields_of(type_name: str) -> dict[str, str] | None:
    """The fields of a model type (None: not a model)."""
    if type_name == "jsonPatchOp":
        return _JSON_PATCH_OP
    return known_fields()["models"].get(type_name)


def plain(value: Any) -> Any:
    """``value`` with every :class:`Pairs` turned into a dict (the last of duplicate keys kept)."""
    if isinstance(value, Pairs):
        return {k: plain(v) for k, v in value}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def go_quote(text: str) -> str:
    """``text`` as Go's strconv.Quote writes it: in double quotes, ``"`` and ``\\`` escaped, control
    and non-printable characters as escape sequences."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def go_value(value: Any) -> str:
    """A decoded JSON value as Go's ``fmt.Sprintf("%+v")`` prints a map[string]interface{}: maps as
    ``map[k:v ...]`` with sorted keys, lists as ``[a b]``, null as ``<nil>`` (what the apiserver
    shows of a strategic merge patch it refuses)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
