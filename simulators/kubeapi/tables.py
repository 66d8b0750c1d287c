"""Server-side printing: the ``meta.k8s.io/v1`` Table responses kubectl asks for.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
the server returns; a real apiserver's columns for each kind are reproduced here (names, types,
priorities: priority 1 columns show with ``-o wide``). Pure functions of the objects and of
``now_s`` (epoch seconds, for the AGE and LAST SEEN columns).
"""

from __future__ import annotations

from simulators.kubeapi.hpa_v1 import to_v2
from simulators.kubeapi.objects import parse_rfc3339

TABLE_API_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")

#: kind -> [(column name, type, format, priority)]; format "name" marks the NAME column.
COLUMNS: dict[str, list[tuple[str, str, str, int]]] = {
    "Deployment": [("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Up-to-date", "integer", "", 0),
                   ("Available", "integer", "", 0), ("Age", "string", "", 0), ("Containers", "string", "", 1),
                   ("Images", "string", "", 1), ("Selector", "string", "", 1)],
    "ReplicaSet": [("Name", "string", "name", 0), ("Desired", "integer", "", 0), ("Current", "integer", "", 0),
                   ("Ready", "integer", "", 0), ("Age", "string", "", 0), ("Containers", "string", "", 1),
                   ("Images", "string", "", 1), ("Selector", "string", "", 1)],
    "StatefulSet": [("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Age", "string", "", 0),
                    ("Containers", "string", "", 1), ("Images", "string", "", 1)],
    "ControllerRevision": [("Name", "string", "name", 0), ("Controller", "string", "", 0),
                           ("Revision", "integer", "", 0), ("Age", "string", "", 0)],
    "Pod": [("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Status", "string", "", 0),
            ("Restarts", "string", "", 0), ("Age", "string", "", 0), ("IP", "string", "", 1),
            ("Node", "string", "", 1), ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1)],
    "Event": [("Last Seen", "string", "", 0), ("Type", "string", "", 0), ("Reason", "string", "", 0),
              ("Object", "string", "", 0), ("Subobject", "string", "", 1), ("Source", "string", "", 1),
              ("Message", "string", "", 0), ("First Seen", "string", "", 1), ("Count", "string", "", 1),
              ("Name", "string", "name", 1)],
    "Lease": [("Name", "string", "name", 0), ("Holder", "string", "", 0), ("Age", "string", "", 0)],
    "ConfigMap": [("Name", "string", "name", 0), ("Data", "string", "", 0), ("Age", "string", "", 0)],
    "Namespace": [("Name", "string", "name", 0), ("Status", "string", "", 0), ("Age", "string", "", 0)],
    "HorizontalPodAutoscaler": [("Name", "string", "name", 0), ("Reference", "string", "", 0),
                                ("Targets", "string", "", 0), ("MinPods", "string", "", 0),
                                ("MaxPods", "integer", "", 0), ("Replicas", "integer", "", 0), ("Age", "string", "", 0)],
}


def wants_table(accept: str | None) -> str | None:
    """The Table apiVersion an Accept header asks for (v1 preferred), or None when it asks for
    plain objects."""
    offered = []
    for media in (accept or "").split(","):
        params = dict(p.strip().partition("=")[::2] for p in media.split(";")[1:])
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            offered.append(f"meta.k8s.io/{params.get('v', 'v1')}")
    return next((v for v in TABLE_API_VERSIONS if v in offered), None)


def human_duration(seconds: float) -> str:
    """An age as kubectl prints it (apimachinery's HumanDuration): 45s, 3m12s, 2d5h, 3y12d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _age(timestamp: str | None, now_s: float) -> str:
    """The age of an object's time as kubectl prints it; "<unknown>" when absent or unreadable
    (stored objects are checked on write, but a table must never fail on one)."""
    if not timestamp:
        return "<unknown>"
    try:
        return human_duration(now_s - parse_rfc3339(timestamp))
    except (TypeError, ValueError, OverflowError, OSError, AttributeError):
        return "<unknown>"


def _containers(obj: dict) -> tuple[str, str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(obj: dict) -> str:
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _pod_status(pod: dict) -> str:
    """The STATUS column: a waiting container's reason (CrashLoopBackOff), Terminating, or the phase."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return waiting["reason"]
    return status.get("phase") or "Unknown"


def _cells(kind: str, obj: dict, now_s: float) -> list:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    name, age = meta["name"], _age(meta.get("creationTimestamp"), now_s)
    if kind == "Deployment":
        return [name, f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", status.get("updatedReplicas", 0),
                status.get("availableReplicas", 0), age, *_containers(obj), _selector(obj)]
    if kind == "ReplicaSet":
        return [name, spec.get("replicas", 0), status.get("replicas", 0), status.get("readyReplicas", 0), age,
                *_containers(obj), _selector(obj)]
    if kind == "StatefulSet":
        return [name, f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", age, *_containers(obj)]
    if kind == "ControllerRevision":
        owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
        controller = f"{owner['kind'].lower()}.{owner['apiVersion'].split('/')[0]}/{owner['name']}" if owner else "<none>"
        return [name, controller, obj.get("revision", 0), age]
    if kind == "Pod":
        containers = status.get("containerStatuses") or []
        ready = sum(1 for c in containers if c.get("ready"))
        restarts = sum(int(c.get("restartCount", 0)) for c in containers)
        return [name, f"{ready}/{len(spec.get('containers') or [])}", _pod_status(obj), str(restarts), age,
                status.get("podIP") or "<none>", spec.get("nodeName") or "<none>", "<none>", "<none>"]
    if kind == "Event":
        involved = obj.get("involvedObject") or {}
        source = obj.get("source") or {}
        last = obj.get("lastTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp")
        first = obj.get("firstTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp")
        return [_age(last, now_s), obj.get("type", ""), obj.get("reason", ""),
                f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
                involved.get("fieldPath", ""), ", ".join(v for v in (source.get("component"), source.get("host")) if v),
                str(obj.get("message", "")).strip(), _age(first, now_s), str(obj.get("count", 1)), name]
    if kind == "Lease":
        return [name, spec.get("holderIdentity") or "<none>", age]
    if kind == "ConfigMap":
        return [name, str(len(obj.get("data") or {}) + len(obj.get("binaryData") or {})), age]
    if kind == "Namespace":
        return [name, status.get("phase", "Active"), age]
    if kind == "HorizontalPodAutoscaler":
        if obj.get("apiVersion") == "autoscaling/v1":  # the same columns as through v2
            v2 = to_v2(obj)
            spec, status = v2.get("spec") or {}, v2.get("status") or {}
        ref = spec.get("scaleTargetRef") or {}
        targets = _hpa_targets(spec.get("metrics") or [], status.get("currentMetrics") or [])
        return [name, f"{ref.get('kind', '')}/{ref.get('name', '')}", targets,
                str(spec.get("minReplicas", 1)), spec.get("maxReplicas", 0), status.get("currentReplicas", 0), age]
    return [name, age]


def _hpa_targets(metrics: list, current: list) -> str:
    """kubectl's TARGETS of an autoscaling/v2 HPA: per metric, its current value (status.currentMetrics
    at the same index, as kubectl's printer pairs them; <unknown> until the HPA controller wrote it)
    over its target."""
    if not metrics:
        return "<none>"
    cells = []
    for i, m in enumerate(metrics):
        source = (m or {}).get("resource") or (m or {}).get("containerResource") or {}
        target = source.get("target") or next((v.get("target") for v in (m or {}).values()
                                               if isinstance(v, dict) and v.get("target")), {}) or {}
        goal = (f"{target['averageUtilization']}%" if "averageUtilization" in target
                else target.get("averageValue") or target.get("value") or "?")
        now = _current_value(current[i] if i < len(current) else None)
        cells.append(f"{source['name']}: {now}/{goal}" if source.get("name") else f"{now}/{goal}")
    return ", ".join(cells)


def _current_value(metric: dict | None) -> str:
    """One entry of status.currentMetrics as kubectl prints it: ``75%``, a quantity, or <unknown>."""
    values = [v.get("current") for v in (metric or {}).values() if isinstance(v, dict)]
    value = next((v for v in values if isinstance(v, dict)), None) or {}
    if "averageUtilization" in value:
        return f"{value['averageUtilization']}%"
    return str(value.get("averageValue") or value.get("value") or "<unknown>")


def _row_object(obj: dict, include: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(kind: str, items: list[dict], resource_version: str, now_s: float, api_version: str = "meta.k8s.io/v1",
          include_object: str = "Metadata", columns: bool = True) -> dict:
    """A Table of ``items`` (objects of ``kind``): one row per item, with the object as
    ``include_object`` says (Metadata, Object or None); ``columns=False`` leaves the column
    definitions out (watch events after the first)."""
    definitions = COLUMNS.get(kind, [("Name", "string", "name", 0), ("Age", "string", "", 0)])
    rows = []
    for obj in items:
        row: dict = {"cells": _cells(kind, obj, now_s)}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": api_version, "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [{"name": n, "type": t, "format": f, "description": n, "priority": p}
                                  for n, t, f, p in definitions] if columns else [],
            "rows": rows}

