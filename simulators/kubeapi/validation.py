"""Request bodies checked as the apiserver checks them, so that nothing stored can break a later
request.

Two stages, as in the real server:

- **decoding** (:func:`check_shape`): the JSON must fit the object's Go types (an object where
  a struct goes, a string where a string goes, an int32 in range, a parseable time). A body
  that does not is a :class:`DecodeError`: the route answers 400 for a create or update and
  422 (field ``patch``) for the result of a patch. Unknown and duplicate fields are
  :mod:`simulators.kubeapi.field_validation`'s (the ``fieldValidation`` query parameter).
- **validation** (:func:`validate_meta`, :func:`validate_pod_template`, :func:`check_identity`):
  ObjectMeta names, labels and annotations, the pod template of a workload, and the body's
  name/namespace/uid/resourceVersion against the URL and the stored object (422, 400, 409).
"""

from __future__ import annotations

import json
import re
from typing import Any

from simulators.kubeapi import objects as K

STR, BOOL, INT32, TIME = "string", "bool", "int32", "time"
STR_MAP = "map[string]string"
INT32_MAX = 2**31 - 1

_META = {"name": STR, "generateName": STR, "namespace": STR, "uid": STR, "resourceVersion": STR,
         "labels": STR_MAP, "annotations": STR_MAP, "creationTimestamp": TIME}
_POD_TEMPLATE = {"metadata": _META, "spec": {"containers": [{"name": STR, "image": STR}], "nodeName": STR}}
_WORKLOAD = {"kind": STR, "apiVersion": STR, "metadata": _META, "status": {},
             "spec": {"replicas": INT32, "paused": BOOL, "selector": {"matchLabels": STR_MAP},
                      "template": _POD_TEMPLATE}}
#: kind -> the typed fields the store reads (a dict is a struct, a one-item list a list of it).
#: ConfigMap ``data`` is left to the store's own check (422, as it always answered).
SCHEMAS: dict[str, dict] = {
    "Deployment": _WORKLOAD,
    "StatefulSet": _WORKLOAD,
    "Scale": {"kind": STR, "apiVersion": STR, "metadata": _META, "spec": {"replicas": INT32}, "status": {}},
    "Lease": {"kind": STR, "apiVersion": STR, "metadata": _META,
              "spec": {"holderIdentity": STR, "leaseDurationSeconds": INT32, "acquireTime": TIME, "renewTime": TIME,
                       "leaseTransitions": INT32}},
    "ConfigMap": {"kind": STR, "apiVersion": STR, "metadata": _META, "immutable": BOOL},
    # both versions' fields (v2's metrics and behavior, v1's CPU percentages): what the conversion reads
    "HorizontalPodAutoscaler": {
        "kind": STR, "apiVersion": STR, "metadata": _META,
        "spec": {"scaleTargetRef": {"kind": STR, "name": STR, "apiVersion": STR}, "minReplicas": INT32,
                 "maxReplicas": INT32, "targetCPUUtilizationPercentage": INT32, "behavior": {},
                 "metrics": [{"type": STR, "resource": {"name": STR, "target": {"type": STR,
                                                                               "averageUtilization": INT32}}}]},
        "status": {"currentReplicas": INT32, "desiredReplicas": INT32, "currentCPUUtilizationPercentage": INT32,
                   "currentMetrics": [{"type": STR, "resource": {"name": STR, "current": {}}}], "conditions": [{}]}},
    "Event": {"kind": STR, "apiVersion": STR, "metadata": _META, "reason": STR, "message": STR, "type": STR,
              "count": INT32, "firstTimestamp": TIME, "lastTimestamp": TIME, "eventTime": TIME, "action": STR,
              "reportingComponent": STR, "reportingInstance": STR, "source": {"component": STR, "host": STR},
              "involvedObject": {"kind": STR, "name": STR, "namespace": STR, "apiVersion": STR, "uid": STR,
                                 "fieldPath": STR, "resourceVersion": STR}},
}

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
#: A namespace's name: a DNS-1123 label of at most 63 characters.
DNS_LABEL_NAME = re.compile(r"(?=.{1,63}$)" + _DNS_LABEL)
DNS_LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                     "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                     "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
SUBDOMAIN_MESSAGE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                     "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                     "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_NAME_PART_MESSAGE = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                      "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                      "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
_LABEL_VALUE_MESSAGE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                        "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
                        "'my_value',  or '12345', regex used for validation is "
                        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
#: The apiserver's limit on the total size of an object's annotations (bytes).
ANNOTATIONS_MAX_BYTES = 256 * 1024


# --------------------------------------------------------------------------- decoding
class DecodeError(ValueError):
    """A JSON value that does not decode into the object's Go type; ``value``: the offending
    value, shortened for a message."""

    def __init__(self, message: str, value: Any = None):
        super().__init__(message)
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
        self.value = text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), "value")


def check_shape(kind: str, obj: Any) -> None:
    """DecodeError unless ``obj`` decodes as a ``kind`` (see :data:`SCHEMAS`; any kind must at
    least be a JSON object with an object ``metadata``)."""
    _check(kind, "", SCHEMAS.get(kind, {"metadata": _META}), obj)
    sent = obj.get("kind")
    if sent not in (None, "", kind):
        raise DecodeError(f"the kind of the object ({sent}) does not match the kind of the request ({kind})", sent)


def _check(kind: str, path: str, schema: Any, value: Any) -> None:
    if value is None:
        return  # Go's decoder leaves a null field at its zero value
    where = f"{kind}.{path}" if path else kind
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _mismatch(where, "object", value)
        for name, sub in schema.items():
            _check(kind, f"{path}.{name}" if path else name, sub, value.get(name))
    elif isinstance(schema, list):
        if not isinstance(value, list):
            raise _mismatch(where, "array", value)
        for i, item in enumerate(value):
            _check(kind, f"{path}[{i}]", schema[0], item)
    elif schema == STR_MAP:
        if not isinstance(value, dict):
            raise _mismatch(where, STR_MAP, value)
        for key, item in value.items():
            if not isinstance(item, str):
                raise _mismatch(f"{where}[{key}]", "string", item)
    else:
        _check_scalar(where, schema, value)


def _check_scalar(where: str, schema: str, value: Any) -> None:
    if schema == STR and not isinstance(value, str):
        raise _mismatch(where, "string", value)
    if schema == BOOL and not isinstance(value, bool):
        raise _mismatch(where, "bool", value)
    if schema == INT32 and (isinstance(value, bool) or not isinstance(value, int)
                               or not -INT32_MAX - 1 <= value <= INT32_MAX):
        raise _mismatch(where, "int32", value)
    if schema == TIME:
        if not isinstance(value, str):
            raise _mismatch(where, "Time", value)
        try:
            K.parse_rfc3339(value)
        except (ValueError, OverflowError, OSError):
            raise DecodeError(f'parsing time "{value[:64]}" as "2006-01-02T15:04:05Z07:00": cannot parse '
                              f"{where} as RFC 3339", value) from None


def _mismatch(where: str, expected: str, value: Any) -> DecodeError:
    shown = _json_type(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else f"number {value}"
    return DecodeError(f"json: cannot unmarshal {shown} into Go struct field {where} of type {expected}", value)


def body_error(kind: str, api_version: str, exc: DecodeError) -> K.KubeApiError:
    """The 400 of a create or update whose body does not decode."""
    version = api_version.rsplit("/", 1)[-1]
    return K.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {exc}')


def patch_error(kind: str, group: str, name: str, exc: DecodeError) -> K.KubeApiError:
    """The 422 of a patch whose result does not decode (field ``patch``, as the apiserver says)."""
    return K.invalid(kind, group, name, "patch", exc.value, str(exc))


# --------------------------------------------------------------------------- ObjectMeta
def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid object name (a DNS-1123 subdomain, at most 253 characters), or None."""
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not _DNS_SUBDOMAIN.fullmatch(name):
        return SUBDOMAIN_MESSAGE
    return None


def validate_meta(kind: str, group: str, meta: dict) -> None:
    """422 unless ``meta``'s name, labels and annotations are valid (``meta`` decoded already)."""
    name = meta.get("name") or ""
    problem = name_problem(name)
    if problem:
        raise K.invalid(kind, group, name, "metadata.name", name, problem)
    validate_labels(kind, group, name, meta.get("labels"), "metadata.labels")
    validate_annotations(kind, group, name, meta.get("annotations"), "metadata.annotations")


def key_problem(key: Any) -> str | None:
    """Why ``key`` is not a qualified name (``[prefix/]name``, as label and annotation keys), or None."""
    if not isinstance(key, str):
        return "must be a string"
    prefix, slash, part = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"prefix part {SUBDOMAIN_MESSAGE}"
    if not part:
        return "name part must be non-empty"
    if len(part) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.fullmatch(part):
        return _NAME_PART_MESSAGE
    return None


def validate_labels(kind: str, group: str, name: str, labels: Any, field: str) -> None:
    """422 unless ``labels`` (None or a map) has valid label keys and values."""
    if labels is None:
        return
    if not isinstance(labels, dict):
        raise K.invalid(kind, group, name, field, str(labels)[:80], "must be a map of strings")
    for key, value in labels.items():
        problem = key_problem(key)
        if problem:
            raise K.invalid(kind, group, name, field, key, problem)
        if not isinstance(value, str):
            raise K.invalid(kind, group, name, field, str(value)[:80], "must be a string")
        if len(value) > 63:
            raise K.invalid(kind, group, name, field, value[:80], "must be no more than 63 characters")
        if not LABEL_VALUE.fullmatch(value):
            raise K.invalid(kind, group, name, field, value, _LABEL_VALUE_MESSAGE)


def validate_annotations(kind: str, group: str, name: str, annotations: Any, field: str) -> None:
    """422 unless ``annotations`` (None or a map) has qualified keys, string values and at most
    :data:`ANNOTATIONS_MAX_BYTES` in all."""
    if annotations is None:
        return
    if not isinstance(annotations, dict):
        raise K.invalid(kind, group, name, field, str(annotations)[:80], "must be a map of strings")
    for key, value in annotations.items():
        problem = key_problem(key) or (None if isinstance(value, str) else "must be a string")
        if problem:
            raise K.invalid(kind, group, name, field, str(key), problem)
    if sum(len(k) + len(v) for k, v in annotations.items()) > ANNOTATIONS_MAX_BYTES:
        raise K.too_long(kind, group, name, field, ANNOTATIONS_MAX_BYTES)


def validate_pod_template(kind: str, group: str, name: str, template: Any) -> None:
    """422 unless ``template`` is a pod template the store can run: metadata labels and
    annotations valid, ``spec.containers`` a non-empty list of containers with distinct
    DNS-label names (as the apiserver's ValidatePodTemplateSpec)."""
    if not isinstance(template, dict):
        raise K.required(kind, group, name, "spec.template")
    meta = template.get("metadata") or {}
    if not isinstance(meta, dict):
        raise K.invalid(kind, group, name, "spec.template.metadata", str(meta)[:80], "must be an object")
    validate_labels(kind, group, name, meta.get("labels"), "spec.template.metadata.labels")
    validate_annotations(kind, group, name, meta.get("annotations"), "spec.template.metadata.annotations")
    spec = template.get("spec")
    if not isinstance(spec, dict):
        raise K.required(kind, group, name, "spec.template.spec")
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        raise K.required(kind, group, name, "spec.template.spec.containers")
    seen: set[str] = set()
    for i, container in enumerate(containers):
        field = f"spec.template.spec.containers[{i}]"
        if not isinstance(container, dict):
            raise K.invalid(kind, group, name, field, str(container)[:80], "must be an object")
        cname = container.get("name")
        if not cname:
            raise K.required(kind, group, name, f"{field}.name")
        if not isinstance(cname, str) or len(cname) > 63 or not _DNS_LABEL_RE.fullmatch(cname):
            raise K.invalid(kind, group, name, f"{field}.name", str(cname)[:80],
                            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
                            "'-', and must start and end with an alphanumeric character")
        if cname in seen:
            raise K.field_error(kind, group, name, f"{field}.name", "FieldValueDuplicate",
                                f'Duplicate value: "{cname}"')
        seen.add(cname)
        if not isinstance(container.get("image", ""), str):
            raise K.invalid(kind, group, name, f"{field}.image", str(container["image"])[:80], "must be a string")


# --------------------------------------------------------------------------- identity of an update
def check_identity(meta: dict, current: dict, resource: str, group: str, name: str, namespace: str | None) -> None:
    """The checks of an update against the URL and the stored object ``current``: name (400),
    namespace (400), uid precondition (409), resourceVersion precondition (409 Conflict)."""
    if meta.get("name") not in (None, name):
        raise K.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
    if meta.get("namespace") not in (None, "", namespace):
        raise K.bad_request("the namespace of the provided object does not match the namespace sent on the request")
    current_meta = current.get("metadata") or {}
    uid = meta.get("uid")
    if uid and uid != current_meta.get("uid"):
        raise K.conflict(resource, group, name, f"Precondition failed: UID in precondition: "
                                                f"{current_meta.get('uid')}, UID in object meta: {uid}")
    sent = meta.get("resourceVersion")
    if sent and sent != current_meta.get("resourceVersion"):
        raise K.conflict(resource, group, name)
