"""autoscaling/v1 HorizontalPodAutoscalers over the store's autoscaling/v2 ones.

The apiserver serves one stored HPA through both versions: ``kubectl autoscale`` (kubectl 1.32)
creates it through v1, Setpoint's HPA guard lists it through v2. v1 has one metric, CPU
utilization (``spec.targetCPUUtilizationPercentage``); what v2 has beyond it travels in
annotations, as Kubernetes' own conversion (pkg/apis/autoscaling/v1/conversion.go) keeps it:
the other metrics, the behavior, the current metrics and the conditions as JSON of their v2 form.
A v1 object without a CPU target and without other metrics gets v2's default, 80% CPU.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from simulators.kubeapi import objects as K

KIND, GROUP = "HorizontalPodAutoscaler", "autoscaling"
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
ROUND_TRIP = (METRICS_ANNOTATION, BEHAVIOR_ANNOTATION, CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION)
DEFAULT_CPU_UTILIZATION = 80


def _is_cpu_utilization(metric: Any) -> bool:
    resource = (metric or {}).get("resource") or {}
    return ((metric or {}).get("type") == "Resource" and resource.get("name") == "cpu"
            and (resource.get("target") or {}).get("type") == "Utilization")


def _cpu_metric(percent: int) -> dict:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                       "averageUtilization": percent}}}


def to_v1(hpa: dict) -> dict:
    """The autoscaling/v1 form of a stored (v2) HPA."""
    out = copy.deepcopy(hpa)
    out["apiVersion"] = f"{GROUP}/v1"
    spec, status = out.get("spec") or {}, out.get("status") or {}
    metrics = spec.pop("metrics", None) or []
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    annotations = dict((out.get("metadata") or {}).get("annotations") or {})
    others = [m for m in metrics if m is not cpu]
    _annotate(annotations, METRICS_ANNOTATION, others)
    _annotate(annotations, BEHAVIOR_ANNOTATION, spec.pop("behavior", None))
    if cpu is not None:
        spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"].get("averageUtilization")
    current = status.pop("currentMetrics", None) or []
    _annotate(annotations, CURRENT_METRICS_ANNOTATION, current)
    _annotate(annotations, CONDITIONS_ANNOTATION, status.pop("conditions", None))
    for m in current:
        resource = (m or {}).get("resource") or {}
        if m.get("type") == "Resource" and resource.get("name") == "cpu":
            used = (resource.get("current") or {}).get("averageUtilization")
            if used is not None:
                status["currentCPUUtilizationPercentage"] = used
    if annotations:
        out.setdefault("metadata", {})["annotations"] = annotations
    if status:
        out["status"] = status
    return out


def _annotate(annotations: dict, key: str, value: Any) -> None:
    if value:
        annotations[key] = json.dumps(value, separators=(",", ":"))


def to_v2(hpa: dict, name: str = "") -> dict:
    """The stored (v2) form of an autoscaling/v1 HPA a client sent: 400 when a round-trip
    annotation is not the JSON it must be, 422 for a CPU target that is not a percentage >= 1."""
    out = copy.deepcopy(hpa)
    out["apiVersion"] = f"{GROUP}/v2"
    meta = out.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    carried = {key: _decoded(annotations.pop(key), key, name) for key in ROUND_TRIP if key in annotations}
    name = name or meta.get("name") or meta.get("generateName") or ""
    if meta:
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
    spec = out.get("spec")
    if isinstance(spec, dict):
        percent = spec.pop("targetCPUUtilizationPercentage", None)
        if percent is not None and (not isinstance(percent, int) or isinstance(percent, bool) or percent < 1):
            raise K.invalid(KIND, GROUP, name, "spec.targetCPUUtilizationPercentage", percent,
                            "must be greater than 0")
        metrics = ([_cpu_metric(percent)] if percent is not None else []) + list(carried.get(METRICS_ANNOTATION) or [])
        spec["metrics"] = metrics or [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
        if carried.get(BEHAVIOR_ANNOTATION):
            spec["behavior"] = carried[BEHAVIOR_ANNOTATION]
    status = out.get("status")
    if isinstance(status, dict):
        used = status.pop("currentCPUUtilizationPercentage", None)
        current = carried.get(CURRENT_METRICS_ANNOTATION)
        if current is None and used is not None:
            current = [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": used}}}]
        if current:
            status["currentMetrics"] = current
        if carried.get(CONDITIONS_ANNOTATION):
            status["conditions"] = carried[CONDITIONS_ANNOTATION]
    return out


#: What each round-trip annotation holds: a list of objects, or one object (the behavior).
_HOLDS = {METRICS_ANNOTATION: list, CURRENT_METRICS_ANNOTATION: list, CONDITIONS_ANNOTATION: list,
          BEHAVIOR_ANNOTATION: dict}


def _decoded(text: str, key: str, name: str) -> Any:
    """A round-trip annotation's value; 400 (as a failed conversion) unless it is JSON of its type."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise K.bad_request(f'HorizontalPodAutoscaler "{name}": annotation {key}: {exc}') from None
    holds = _HOLDS[key]
    if not isinstance(value, holds) or holds is list and not all(isinstance(v, dict) for v in value):
        what = "a JSON list of objects" if holds is list else "a JSON object"
        raise K.bad_request(f'HorizontalPodAutoscaler "{name}": annotation {key}: must be {what}')
    return value
