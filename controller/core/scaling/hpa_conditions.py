"""HPA status conditions (AbleToScale, ScalingActive, ScalingLimited) from a normalization result.

Spec: ``hpa-spec.md`` section 13 (and sections 2, 9, 11, 12 for when each is set). Only the
conditions one reconcile sets are returned; a condition the reconcile leaves alone is absent.
The rescale is assumed to succeed (AbleToScale=True / SucceededRescale whenever desired != current).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from controller.core.scaling.limit import NOT_LIMITED
from controller.core.scaling.normalize import NormResult
from controller.core.scaling.params import HpaSource, MetricParams
from controller.model import Reason

#: The three condition types, in the order ``kubectl describe hpa`` lists them.
CONDITION_TYPES = ("AbleToScale", "ScalingActive", "ScalingLimited")

#: The status each reason sets (section 13): "True" or "False".
CONDITION_STATUS: dict[str, str] = {
    "FailedGetScale": "False", "SucceededGetScale": "True", "ReadyForNewScale": "True",
    "ScaleDownStabilized": "True", "ScaleUpStabilized": "True", "SucceededRescale": "True",
    "FailedUpdateScale": "False",
    "ValidMetricFound": "True", "InvalidSelector": "False", "AmbiguousSelector": "False",
    "FailedGetResourceMetric": "False", "FailedGetContainerResourceMetric": "False", "FailedGetPodsMetric": "False",
    "FailedGetObjectMetric": "False", "FailedGetExternalMetric": "False", "InvalidMetricSourceType": "False",
    "ScalingDisabled": "False",
    # Setpoint's own: no pod of the target is Ready, a scale-down is held (normalize._missing_data)
    "TargetNotReady": "False",
    # Setpoint's own: a reading just after its metric's gap covers part of its window, a scale-down is held
    "MetricsRecovering": "False",
    # Setpoint's own: someone else set the replicas, left as they set them for onExternalScale.handsOff
    "ExternalOverride": "False",
    "DesiredWithinRange": "False", "TooFewReplicas": "True", "TooManyReplicas": "True", "ScaleUpLimit": "True",
    "ScaleDownLimit": "True",
}

#: ScalingActive reason when a metric has no usable sample, by the HPA metric source it stands for
#: (horizontal.go's computeStatusFor*Metric): a utilization metric is HPA's Resource metric, an
#: averagePerReplica one with a resource and a by-pod query Resource AverageValue, the other kinds
#: Prometheus series, as HPA reads External metrics.
FAILED_METRIC_REASONS: dict[int, str] = {
    HpaSource.RESOURCE: "FailedGetResourceMetric",
    HpaSource.CONTAINER_RESOURCE: "FailedGetContainerResourceMetric",
    HpaSource.PODS: "FailedGetPodsMetric",
    HpaSource.OBJECT: "FailedGetObjectMetric",
    HpaSource.EXTERNAL: "FailedGetExternalMetric",
}


def condition_status(reason: str) -> str:
    """"True", "False", or "Unknown" for a reason this table does not know."""
    return CONDITION_STATUS.get(reason, "Unknown")


def metric_failure_reasons(metrics: Sequence[MetricParams], valid: np.ndarray) -> np.ndarray:
    """(N, M) ScalingActive reasons of the metrics that were not valid ('' where valid).

    metrics: the M metrics (their effective HPA source names the reason); valid: (N, M) bool, the
    metric gave a usable proposal.
    """
    names = np.array([FAILED_METRIC_REASONS[int(m.hpa_source)] for m in metrics], dtype=object).reshape(1, -1)
    return np.where(np.asarray(valid, bool), "", np.broadcast_to(names, np.shape(valid)))

LIMIT_CONDITION_REASONS: dict[int, str] = {
    NOT_LIMITED: "DesiredWithinRange",
    Reason.CLAMPED_TO_MIN: "TooFewReplicas",
    Reason.CLAMPED_TO_MAX: "TooManyReplicas",
    Reason.RATE_LIMITED_UP: "ScaleUpLimit",
    Reason.RATE_LIMITED_DOWN: "ScaleDownLimit",
}


def limit_condition_reason(limit_reason: int) -> str:
    """The ScalingLimited reason for a limit-stage code (``NOT_LIMITED`` -> DesiredWithinRange)."""
    return LIMIT_CONDITION_REASONS[int(limit_reason)]


def stabilization_reason(current: float, proposal: float, stabilized: float, legacy: bool) -> str:
    """AbleToScale reason after stabilization: ReadyForNewScale, ScaleUpStabilized or ScaleDownStabilized."""
    if stabilized == proposal:
        return "ReadyForNewScale"
    if legacy or proposal < current:
        return "ScaleDownStabilized"
    return "ScaleUpStabilized"


def first_failure(reasons) -> str:
    """The ScalingActive reason of the first failing metric (upstream keeps the first error)."""
    return next((r for r in reasons if r), "")


def hpa_conditions(result: NormResult, current: np.ndarray, failure_reasons, legacy: bool) -> list[dict[str, str]]:
    """Per target, ``{condition type: reason}`` for the conditions this reconcile sets.

    current: spec replicas (N,). failure_reasons: (N, M) strings, the ScalingActive reason of
    each metric that failed (``FailedGetResourceMetric``, ...; empty where the metric was valid).
    legacy: the HPA has no ``behavior``.
    """
    out = []
    for i, cur in enumerate(np.asarray(current, dtype=np.float64)):
        reason = int(result.reason[i])
        if reason == Reason.SCALING_DISABLED:
            out.append({"AbleToScale": "SucceededGetScale", "ScalingActive": "ScalingDisabled"})
        elif reason in (Reason.ABOVE_MAX, Reason.BELOW_MIN):
            out.append({"AbleToScale": "SucceededRescale"})  # straight to the bound, no metrics read
        elif reason == Reason.TARGET_NOT_READY:  # every metric read: what they read is not the demand
            out.append({"AbleToScale": "SucceededGetScale", "ScalingActive": "TargetNotReady"})
        elif reason == Reason.METRICS_RECOVERING:  # every metric read, one of them over part of its window
            out.append({"AbleToScale": "SucceededGetScale", "ScalingActive": "MetricsRecovering"})
        elif reason == Reason.EXTERNAL_OVERRIDE:  # someone else set the replicas: left alone for a while
            out.append({"AbleToScale": "SucceededGetScale", "ScalingActive": "ExternalOverride"})
        elif not result.scaling_active[i]:
            out.append({"AbleToScale": "SucceededGetScale", "ScalingActive": first_failure(failure_reasons[i])})
        else:
            desired = float(result.desired[i])
            able = "SucceededRescale" if desired != cur else stabilization_reason(
                cur, float(result.proposal[i]), float(result.stabilized[i]), legacy)
            out.append({"AbleToScale": able, "ScalingActive": "ValidMetricFound",
                        "ScalingLimited": limit_condition_reason(result.limit_reason[i])})
    return out
