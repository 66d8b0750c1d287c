"""JSON shapes of the Kubernetes objects the simulated API server serves, and its errors.

Pure functions from plain values to the dicts the real apiserver would send (apps/v1
Deployment, ReplicaSet and StatefulSet, autoscaling/v1 Scale, core/v1 Pod, meta/v1 Status and
lists). Nothing here knows about the engine or HTTP.

Times are epoch seconds (float) in, RFC 3339 strings out.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
TEMPLATE_HASH_LABEL = "pod-template-hash"
#: The label of a ControllerRevision with its hash (a StatefulSet's revision).
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
AUTOSCALE_LABEL = "setpoint.io/autoscale"

#: The reason string the apiserver puts in a Status for each HTTP code it uses.
STATUS_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


class KubeApiError(Exception):
    """An error the simulated apiserver answers with: an HTTP code and a meta/v1 Status body."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict | None = None,
                 metadata: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or STATUS_REASONS.get(code, "Unknown")
        self.details = details
        self.metadata = metadata or {}  # the Status's ListMeta (a 410 continue's token to go on with)
        #: Warnings for the client sent with the error (fieldValidation=Warn's unknown fields of a
        #: request refused later, e.g. as invalid: the apiserver's recorder has written them already).
        self.warnings: list[str] = []

    def status(self) -> dict:
        return {**status_body(self.code, self.reason, self.message, self.details), "metadata": dict(self.metadata)}


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A meta/v1 Status with ``status: Failure``, as every apiserver error body is."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


# --------------------------------------------------------------------------- errors worded like the apiserver
def _details(resource: str, group: str, name: str) -> dict:
    out = {"name": name, "kind": resource}
    if group:
        out["group"] = group
    return out


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> KubeApiError:
    """``deployments.apps "web" not found`` (404)."""
    return KubeApiError(404, f'{_qualified(resource, group)} "{name}" not found', "NotFound",
                        _details(resource, group, name))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def conflict(resource: str, group: str, name: str, why: str = STALE) -> KubeApiError:
    """A failed precondition of an update (409): by default a stale resourceVersion."""
    return KubeApiError(409, f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                        "Conflict", _details(resource, group, name))


def precondition_failed(resource: str, group: str, namespace: str, name: str, field: str, sent: str,
                        current: str) -> KubeApiError:
    """A delete whose ``preconditions`` (uid or resourceVersion) do not match the stored object
    (409), worded as the apiserver's storage layer words it (storage.NewInvalidObjError, turned
    into a Conflict by InterpretDeleteError)."""
    key = f"/registry/{f'{group}/' if group else ''}{resource}/{namespace}/{name}"
    return conflict(resource, group, name, f"StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, "
                                           f"AdditionalErrorMsg: Precondition failed: {field} in precondition: {sent}, "
                                           f"{field} in object meta: {current}")


def deleted_status(resource: str, group: str, name: str, uid: str) -> dict:
    """What a delete answers for a resource whose registry does not return the deleted object
    (ConfigMaps, Events, Leases, HPAs: the generic registry's finalizeDelete): a Success Status
    whose details name the resource (as ``kind``, sic) and the deleted object's uid."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {**_details(resource, group, name), "uid": uid}}


def already_exists(resource: str, group: str, name: str) -> KubeApiError:
    return KubeApiError(409, f'{_qualified(resource, group)} "{name}" already exists', "AlreadyExists",
                        _details(resource, group, name))


def invalid(kind: str, group: str, name: str, field: str, value: Any, detail: str) -> KubeApiError:
    """``Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be ...`` (422)."""
    shown = f'"{value}"' if isinstance(value, str) else ("null" if value is None else str(value).lower()
                                                          if isinstance(value, bool) else str(value))
    return field_error(kind, group, name, field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def required(kind: str, group: str, name: str, field: str) -> KubeApiError:
    """``... is invalid: spec.template.spec.containers: Required value`` (422)."""
    return field_error(kind, group, name, field, "FieldValueRequired", "Required value")


def too_long(kind: str, group: str, name: str, field: str, limit: int) -> KubeApiError:
    return field_error(kind, group, name, field, "FieldValueTooLong", f"Too long: must have at most {limit} bytes")


def field_error(kind: str, group: str, name: str, field: str, reason: str, cause: str) -> KubeApiError:
    """A 422 Invalid naming one field, with the cause the apiserver lists in its details."""
    details = {"name": name, "group": group, "kind": kind} if group else {"name": name, "kind": kind}
    details["causes"] = [{"reason": reason, "message": cause, "field": field}]
    return KubeApiError(422, f'{_qualified(kind, group)} "{name}" is invalid: {field}: {cause}', "Invalid", details)


def bad_request(message: str) -> KubeApiError:
    return KubeApiError(400, message, "BadRequest")


def method_not_allowed() -> KubeApiError:
    return KubeApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")


PATCH_MEDIA_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                     "application/strategic-merge-patch+json")


def unsupported_media_type(content_type: str, accepted: tuple[str, ...] = PATCH_MEDIA_TYPES) -> KubeApiError:
    return KubeApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                             f"{', '.join(accepted)} (got {content_type or 'none'})",
                        "UnsupportedMediaType")


def no_such_route() -> KubeApiError:
    return KubeApiError(404, "the server could not find the requested resource", "NotFound",
                        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


# --------------------------------------------------------------------------- values
def rfc3339(epoch_s: float | None) -> str | None:
    """``2026-01-05T00:00:00Z`` (metav1.Time has second precision)."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(int(epoch_s), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (``Z`` or an offset, optional fraction)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def uid_for(*parts: str) -> str:
    """A stable UID for an object (same names, same UID across runs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "setpoint-sim/" + "/".join(parts)))


def pod_uid(namespace: str, name: str, created_s: float) -> str:
    """The UID of the pod ``name`` created at ``created_s`` (simulation s): a pod recreated under
    its old name (a StatefulSet's) is a new object with a new UID, as the apiserver gives it."""
    return uid_for("Pod", namespace, name, repr(float(created_s)))


def node_name(pod: str) -> str:
    """The simulated node a running pod is on (``spec.nodeName``; the source host of its kubelet's Events)."""
    return f"sim-node-{sum(map(ord, pod)) % 8}"


def millicores(cores: float) -> str:
    return f"{int(round(cores * 1000))}m"


def compact(value: Any) -> Any:
    """Drop None, empty dicts and empty lists recursively: two templates that only differ by
    absent-vs-empty fields (as a client's round trip produces) compare equal."""
    if isinstance(value, dict):
        out = {k: compact(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def without_hash_label(template: dict) -> dict:
    """A pod template minus its pod-template-hash label (what ``kubectl rollout undo`` copies)."""
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels") or {}
    labels.pop(TEMPLATE_HASH_LABEL, None)
    return out


# --------------------------------------------------------------------------- objects
def object_meta(name: str, namespace: str, uid: str, resource_version: int, created_s: float, *,
                labels: dict | None = None, annotations: dict | None = None, generation: int | None = None,
                owner: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": str(resource_version),
            "creationTimestamp": rfc3339(created_s)}
    if generation is not None:
        meta["generation"] = generation
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [owner]
    return meta


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def replica_status(*, observed_generation: int, replicas: int, updated: int, ready: int, available: int,
                   spec: int) -> dict:
    """Deployment status counters; zero counts are omitted, as the apiserver's omitempty does."""
    status = {"observedGeneration": observed_generation, "replicas": replicas, "updatedReplicas": updated,
              "readyReplicas": ready, "availableReplicas": available,
              "unavailableReplicas": max(spec - available, 0)}
    return {k: v for k, v in status.items() if v or k == "observedGeneration"}


def deployment_conditions(available_ok: bool, rolling: bool, name: str, rs_name: str, at: str | None,
                          paused: bool = False, progressing_at: str | None = None) -> list[dict]:
    """``Available`` (minimum availability) and ``Progressing`` (``NewReplicaSetAvailable`` once
    the newest ReplicaSet is rolled out, ``ReplicaSetUpdated`` while it is rolling out,
    ``DeploymentPaused`` with status Unknown while spec.paused). Times are RFC 3339; the
    Progressing condition's lastUpdateTime is ``progressing_at`` (when its reason was last set), ``at``
    if None."""
    pat = at if progressing_at is None else progressing_at
    if paused:
        progressing = {"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused",
                       "message": "Deployment is paused", "lastUpdateTime": pat, "lastTransitionTime": pat}
        return deployment_conditions(available_ok, rolling, name, rs_name, at)[:1] + [progressing]
    return [
        {"type": "Available", "status": "True" if available_ok else "False",
         "reason": "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
         "message": "Deployment has minimum availability." if available_ok
         else "Deployment does not have minimum availability.", "lastUpdateTime": at, "lastTransitionTime": at},
        {"type": "Progressing", "status": "True",
         "reason": "ReplicaSetUpdated" if rolling else "NewReplicaSetAvailable",
         "message": f'ReplicaSet "{rs_name}" is progressing.' if rolling
         else f'ReplicaSet "{rs_name}" has successfully progressed.', "lastUpdateTime": pat, "lastTransitionTime": at},
    ]


def scale_object(meta: dict, spec_replicas: int, status_replicas: int, selector: str) -> dict:
    """autoscaling/v1 Scale of a workload; it carries the workload's resourceVersion."""
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": spec_replicas}, "status": {"replicas": status_replicas, "selector": selector}}


def list_object(kind: str, api_version: str, items: list[dict], resource_version: int) -> dict:
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": str(resource_version)},
            "items": items}


# --------------------------------------------------------------------------- lists
def selector_string(match_labels: dict) -> str:
    """``app=web,tier=front`` from matchLabels (the Scale's status.selector)."""
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def sorted_items(items: Iterable[dict]) -> list[dict]:
    """Items in the apiserver's list order: by namespace, then name."""
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
