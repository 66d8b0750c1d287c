"""The HPA controller's words in its ``SuccessfulRescale`` Events, as kube-controller-manager 1.32
writes them (pkg/controller/podautoscaler/horizontal.go): "New size: N; reason: R", where R is

- "Current number of replicas above Spec.MaxReplicas" / "... below Spec.MinReplicas" when the
  workload is outside the HPA's range (reconcileAutoscaler, before any metric is read);
- "<metric> above target" when the metrics' proposal is above the current replicas, <metric>
  being the metric whose proposal is the largest (the first of equals: computeReplicasForMetrics
  keeps a later one only when strictly larger), in the words of its source type (below);
- "All metrics below target" when the proposal is below;
- "" (upstream's empty reason) when the proposal equals the current count but the stabilization
  or the rate limits still moved it.

A metric's words (the ``metricNameProposal`` of each computeStatusFor*Metric):

=====================================  ==========================================================
Resource, Utilization                  ``cpu resource utilization (percentage of request)``
Resource, AverageValue                 ``cpu resource``
ContainerResource, Utilization         ``cpu container resource utilization (percentage of request)``
ContainerResource, AverageValue        ``cpu resource``
Pods                                   ``pods metric NAME``
Object, Value                          ``KIND metric NAME`` (the described object's kind)
Object, AverageValue                   ``external metric NAME(SELECTOR)`` (upstream's words, sic)
External                               ``external metric NAME(SELECTOR)``
=====================================  ==========================================================

SELECTOR is Go's ``%+v`` of the metric's ``*metav1.LabelSelector`` (its generated String()):
``nil`` without one, else ``&LabelSelector{MatchLabels:map[string]string{k: v,},MatchExpressions:
[]LabelSelectorRequirement{LabelSelectorRequirement{Key:k,Operator:In,Values:[a b],},},}``.

Its Warning Events (one per sync while the trouble lasts; the recorder counts repeats on one Event):

- ``FailedGet<Type>Metric`` (``FailedGetResourceMetric``, ``FailedGetContainerResourceMetric``,
  ``FailedGetPodsMetric``, ``FailedGetObjectMetric``, ``FailedGetExternalMetric``) for each metric
  it could not read, in the order of spec.metrics (getUnableComputeReplicaCountCondition), the
  error of its computeStatusFor*Metric: "failed to get cpu utilization: unable to get metrics for
  resource cpu: no metrics returned from resource metrics API" (no metrics for the pods: a
  ``metrics-outage``), "failed to get cpu utilization: missing request for cpu in container web of
  Pod web-0" (a pod without the request; replica_calculator.go's calculatePodRequests), "unable to
  get metric NAME: no metrics returned from custom metrics API" (Pods), "unable to get external
  metric NS/NAME/SELECTOR: no metrics returned from external metrics API" (External); an Object
  metric says what a Pods one says (upstream's depends on the adapter's 404: not simulated);
- ``FailedComputeMetricsReplicas`` when none could be read: "invalid metrics (1 invalid out of 1),
  first error is: failed to get cpu resource metric value: failed to get cpu utilization: ...",
  with ScalingActive False, the first failing metric's reason, "the HPA was unable to compute the
  replica count: <its error>";
- ``FailedGetScale`` when its target is not there: ``deployments.apps "web" not found`` (the
  scale subresource's 404), with AbleToScale False "the HPA controller was unable to get the
  target's current scale: <the same>";
- ``FailedRescale`` "New size: N; reason: R; error: E" when the scale update failed.

The status conditions (``kubectl describe hpa``) in the same words (:func:`in_hpa_words`): the
reconciler's messages say "the controller", the HPA controller's "the HPA controller was able to
update the target scale to 6" (AbleToScale) and "the HPA was able to successfully calculate a
replica count from cpu resource utilization (percentage of request)" (ScalingActive, naming the
metric of the largest proposal); the other messages are upstream's already.
"""

from __future__ import annotations

import numpy as np

from controller.model import Reason

ABOVE_MAX = "Current number of replicas above Spec.MaxReplicas"
BELOW_MIN = "Current number of replicas below Spec.MinReplicas"
ALL_BELOW = "All metrics below target"
#: spec.metrics of an HPA that has none (autoscaling/v2's default: 80 % CPU).
DEFAULT_METRICS = [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                               "averageUtilization": 80}}}]


def rescale_message(replicas: int, reason: str) -> str:
    """A ``SuccessfulRescale`` Event's message."""
    return f"New size: {replicas}; reason: {reason}"


def rescale_reason(code: int, current: float, proposals: np.ndarray, valid: np.ndarray, sources: list | None) -> str:
    """Why kube-controller-manager says an HPA rescaled: ``code`` the decision's Reason code,
    ``current`` the replicas before, ``proposals``/``valid`` (M,) the replicas each metric
    proposed and whether it could, ``sources`` the HPA's spec.metrics (the policy's metrics, in
    its order; None or another length: the default CPU metric's words for each)."""
    if code == Reason.ABOVE_MAX:
        return ABOVE_MAX
    if code == Reason.BELOW_MIN:
        return BELOW_MIN
    desired, metric = largest_proposal(proposals, valid, sources)
    if desired > current:
        return f"{metric} above target"
    if desired < current:
        return ALL_BELOW
    return ""


def largest_proposal(proposals: np.ndarray, valid: np.ndarray, sources: list | None) -> tuple[float, str]:
    """computeReplicasForMetrics' choice: the largest valid proposal (0 without one) and its
    metric's words (the first of equals, as upstream's strict '>'); ``sources`` as rescale_reason's."""
    if not isinstance(sources, list) or len(sources) != len(proposals):
        sources = DEFAULT_METRICS * len(proposals)
    desired, metric = None, ""
    for proposal, ok, source in zip(proposals, valid, sources):
        if ok and (desired is None or proposal > desired):
            desired, metric = float(proposal), metric_words(source)
    return desired or 0.0, metric


def in_hpa_words(conditions: dict[str, dict], metric: str) -> dict[str, dict]:
    """The reconciler's conditions ({type: {status, reason, message}}) with the HPA controller's
    messages; ``metric``: the words of the metric ValidMetricFound names ('' keeps its message)."""
    out = {}
    for ctype, c in conditions.items():
        message = c.get("message", "")
        if c.get("reason") == "ValidMetricFound" and metric:
            message = f"the HPA was able to successfully calculate a replica count from {metric}"
        elif message.startswith(OURS):
            message = (HPA_CONTROLLER if ctype == "AbleToScale" else HPA) + message[len(OURS):]
        out[ctype] = {**c, "message": message}
    return out


#: Who the messages name: the reconciler's words, upstream's for AbleToScale and for the others.
OURS, HPA_CONTROLLER, HPA = "the controller was ", "the HPA controller was ", "the HPA was "


#: An HPA metric source's type -> the field that holds its spec (autoscaling/v2 MetricSpec).
SOURCE_FIELDS = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
                 "Object": "object", "External": "external"}


def source_spec(source: object) -> tuple[str | None, dict]:
    """(type, the spec under its type's field) of one spec.metrics entry; {} where it has none."""
    kind = source.get("type") if isinstance(source, dict) else None
    spec = source.get(SOURCE_FIELDS.get(kind, "")) if isinstance(source, dict) else None
    return kind, spec if isinstance(spec, dict) else {}


def metric_words(source: object) -> str:
    """One spec.metrics entry in the HPA controller's words (the module docstring's table)."""
    kind, spec = source_spec(source)
    target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
    metric = spec.get("metric") if isinstance(spec.get("metric"), dict) else {}
    if kind in ("Resource", "ContainerResource"):
        name = spec.get("name", "")
        if target.get("averageValue") is not None:  # checked first upstream, whatever the type says
            return f"{name} resource"
        return f"{name} {'container ' if kind == 'ContainerResource' else ''}resource utilization (percentage of request)"
    if kind == "Pods":
        return f"pods metric {metric.get('name', '')}"
    if kind == "Object" and target.get("type") == "Value" and target.get("value") is not None:
        described = spec.get("describedObject") if isinstance(spec.get("describedObject"), dict) else {}
        return f"{described.get('kind', '')} metric {metric.get('name', '')}"
    return f"external metric {metric.get('name', '')}({go_label_selector(metric.get('selector'))})"


def go_label_selector(selector: object) -> str:
    """Go's ``%+v`` of a ``*metav1.LabelSelector`` (apimachinery's generated String()): ``nil``
    for none; labels sorted by key."""
    if not isinstance(selector, dict):
        return "nil"
    labels = selector.get("matchLabels") if isinstance(selector.get("matchLabels"), dict) else {}
    expressions = selector.get("matchExpressions") if isinstance(selector.get("matchExpressions"), list) else []
    labels_text = "".join(f"{k}: {labels[k]}," for k in sorted(labels))
    requirements = "".join(
        f"LabelSelectorRequirement{{Key:{r.get('key', '')},Operator:{r.get('operator', '')},"
        f"Values:[{' '.join(str(v) for v in (r.get('values') or []))}],}},"
        for r in expressions if isinstance(r, dict))
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{labels_text}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{requirements}}},}}")


# ------------------------------------------------------------------ Warning Events
#: The Warning (and ScalingActive) reason of a metric that could not be read, by its source type.
FAILED_GET_REASONS = {"Resource": "FailedGetResourceMetric", "ContainerResource": "FailedGetContainerResourceMetric",
                      "Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
                      "External": "FailedGetExternalMetric"}
NO_RESOURCE_METRICS = "no metrics returned from resource metrics API"
NO_CUSTOM_METRICS = "no metrics returned from custom metrics API"
NO_EXTERNAL_METRICS = "no metrics returned from external metrics API"


def missing_request(resource: str, container: str, pod: str) -> str:
    """calculatePodRequests' error for a pod whose container has no request of ``resource``."""
    return f"missing request for {resource} in container {container} of Pod {pod}"


def metric_failure(source: object, namespace: str, cause: str = "") -> tuple[str, str, str]:
    """One spec.metrics entry the HPA controller could not read: (its Warning reason, the error
    its Event and ScalingActive say, the error computeReplicasForMetrics returns for it, which
    FailedComputeMetricsReplicas quotes). ``cause``: a utilization's missing request
    (:func:`missing_request`); '' for no metrics returned (an outage)."""
    kind, spec = source_spec(source)
    target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
    metric = spec.get("metric") if isinstance(spec.get("metric"), dict) else {}
    name = metric.get("name", "")
    reason = FAILED_GET_REASONS.get(kind, "FailedGetResourceMetric")
    if kind in ("Resource", "ContainerResource") or kind not in FAILED_GET_REASONS:
        resource = spec.get("name", "cpu")
        fetch = f"unable to get metrics for resource {resource}: {NO_RESOURCE_METRICS}"
        if target.get("averageValue") is not None:  # usage, no request needed
            error = f"failed to get {resource} usage: {fetch}"
        else:
            error = f"failed to get {resource} utilization: {cause or fetch}"
        if kind == "ContainerResource":
            return reason, error, f"failed to get {spec.get('container', '')} container metric value: {error}"
        return reason, error, f"failed to get {resource} resource metric value: {error}"
    if kind == "External":
        error = (f"unable to get external metric {namespace}/{name}/{go_label_selector(metric.get('selector'))}: "
                 f"{NO_EXTERNAL_METRICS}")
        wrapped = (f"failed to get {name} external metric: {error}" if target.get("averageValue") is not None
                   else f"failed to get external metric {name}: {error}")
        return reason, error, f"failed to get {name} external metric value: {wrapped}"
    error = f"unable to get metric {name}: {NO_CUSTOM_METRICS}"
    return reason, error, f"failed to get {'pods' if kind == 'Pods' else 'object'} metric value: {error}"


def compute_failure(failed: int, total: int, first_error: str) -> str:
    """FailedComputeMetricsReplicas' message when all ``total`` metrics failed (``first_error``:
    the first one's computeReplicasForMetrics error)."""
    return f"invalid metrics ({failed} invalid out of {total}), first error is: {first_error}"


def unable_to_compute(error: str) -> str:
    """ScalingActive's message for a metric that could not be read."""
    return f"the HPA was unable to compute the replica count: {error}"


def scale_not_found(kind: str, name: str) -> str:
    """The scale subresource's 404 as the HPA controller quotes it (FailedGetScale)."""
    plural = {"Deployment": "deployments.apps", "StatefulSet": "statefulsets.apps",
              "ReplicaSet": "replicasets.apps"}.get(kind)
    if plural is None:  # RESTMappings found no such kind
        return f'no matches for kind "{kind}" in group "apps"'
    return f'{plural} "{name}" not found'


def failed_rescale_message(replicas: int, reason: str, error: str) -> str:
    """A ``FailedRescale`` Event's message."""
    return f"New size: {replicas}; reason: {reason}; error: {error}"
