"""scaling_conditions works out each distinct situation once; the result is the per-target one.

The reference below is the straightforward per-target construction (hpa_conditions for every
target, then the message and the rescale); random decisions with missing targets, applied and
failed scales must give equal condition dicts for every target.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.hpa_conditions import hpa_conditions, metric_failure_reasons
from controller.core.scaling.params import HpaSource, MetricKind, MetricParams, PolicyParams
from controller.model import REASON_CODES, Action, ActionKind, Reason, ScaleActions, TargetRef
from controller.runtime.conditions import _metrics_message, _rescale, condition, scaling_conditions
from controller.runtime.reconciler import FailedAction
from tests.core.helpers import T0


def reference(params, decision, targets, exists, applied, failed):
    failures = metric_failure_reasons(params.metrics, decision.valid)
    reasons = hpa_conditions(decision.norm, decision.current, failures, params.legacy)
    scaled = {a.target: a.replicas for a in applied if a.kind == ActionKind.SCALE}  # _rescale: target -> count set
    failed_by = {f.target: f.why for f in failed if f.kind == "scale"}
    out = []
    for i, (target, found) in enumerate(zip(targets, exists)):
        if not found:
            out.append({"AbleToScale": condition("FailedGetScale", "the controller was unable to get the target's "
                                                                   "current scale: not found")})
            continue
        conds = {}
        for kind, reason in reasons[i].items():
            message = _metrics_message(reason, params.metric_names, decision.valid[i], decision.signal.implausible[i]) \
                if kind == "ScalingActive" and reason != "ScalingDisabled" else ""
            conds[kind] = condition(reason, message)
        if reasons[i].get("AbleToScale") == "SucceededRescale":
            conds["AbleToScale"] = _rescale(target, int(decision.desired[i]), scaled, failed_by)
        out.append(conds)
    return out


POLICY = PolicyParams("p", (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),
                            MetricParams("cpu", MetricKind.UTILIZATION, 70.0)), min_replicas=2, max_replicas=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(1, 12), legacy=st.booleans())
def test_shared_conditions_equal_the_per_target_ones(data, n, legacy):
    params = PolicyParams(**{**POLICY.__dict__, "legacy": legacy})
    sample = st.one_of(st.floats(0, 3000), st.just(float("nan")), st.just(1e300))  # 1e300: implausible
    values = np.array(data.draw(st.lists(sample, min_size=2 * n, max_size=2 * n))).reshape(n, 2)
    current = np.array(data.draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)), dtype=float)
    d = decide(params, Observation.of(current, current, values, present=~np.isnan(values)),
               ScalingState.empty(n, params), T0)
    targets = [TargetRef("default", f"t{i}") for i in range(n)]
    exists = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    moved = [i for i in range(n) if d.changed[i]]
    applied = [Action(ActionKind.SCALE, targets[i], "ScaleUp", replicas=int(d.desired[i])) for i in moved[::2]]
    failed = [FailedAction(targets[i], "conflict", "scale") for i in moved[1::3]]
    got = scaling_conditions(params, d, targets, np.array(exists, bool), applied, failed)
    assert got == reference(params, d, targets, exists, applied, failed)
    # the same scales as arrays (a simulated cycle's ScaleActions): the same conditions, no Action made
    rows = moved[::2]
    arrays = ScaleActions.of(targets, rows, [int(d.desired[i]) for i in rows], [int(current[i]) for i in rows],
                             [REASON_CODES.index("ScaleUp")] * len(rows))
    assert scaling_conditions(params, d, targets, np.array(exists, bool), arrays, failed) == got
    assert arrays._actions is None


def test_a_scale_down_held_without_a_ready_pod_says_so():
    """No Ready pod: every metric read, the scale-down held (TargetNotReady). ScalingActive says
    why (it read Unknown with an empty reason and "no usable sample for ;" before)."""
    params = PolicyParams("p", (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),), 2, 12)
    current, values = np.array([10.0, 10.0]), np.array([[0.0], [0.0]])
    d = decide(params, Observation.of(current, np.array([0.0, 10.0]), values), ScalingState.empty(2, params), T0)
    targets = [TargetRef("default", "dark"), TargetRef("default", "lit")]
    dark, lit = scaling_conditions(params, d, targets, np.array([True, True]), [], [])
    assert d.desired.tolist() == [10, 10] and int(d.norm.reason[0]) == Reason.TARGET_NOT_READY
    assert dark["ScalingActive"] == {"status": "False", "reason": "TargetNotReady", "message": (
        "no pod of the target is Ready (or none was for a whole metric window, which its readings still average), "
        "so its metrics do not read its demand; a scale-down waits until they do, and so does a scale-up once it "
        "had Ready pods (new ones would not get Ready either)")}
    assert dark["AbleToScale"]["reason"] == "SucceededGetScale" and "ScalingLimited" not in dark
    assert lit["ScalingActive"]["reason"] == "ValidMetricFound"


def test_an_implausible_sample_is_named_in_scaling_active():
    params = PolicyParams("p", (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),
                                MetricParams("cpu", MetricKind.UTILIZATION, 70.0)), 2, 12)
    current, values = np.array([4.0, 4.0]), np.array([[1e300, 50.0], [float("nan"), 50.0]])
    d = decide(params, Observation.of(current, current, values, present=np.ones((2, 2), bool)),
               ScalingState.empty(2, params), T0)
    wild, nan = scaling_conditions(params, d, [TargetRef("default", "wild"), TargetRef("default", "nan")],
                                   np.array([True, True]), [], [])
    assert d.desired.tolist() == [4, 4]  # cpu proposes fewer: held by the unusable rps either way
    assert wild["ScalingActive"]["message"] == (
        "the controller was unable to compute the replica count: no usable sample for rps (an implausible sample, "
        "far above what replicas.max could serve); a scale-down waits until every metric has one")
    assert nan["ScalingActive"]["message"] == (
        "the controller was unable to compute the replica count: no usable sample for rps; a scale-down waits "
        "until every metric has one")


# (source, kind) -> the ScalingActive reason HPA's horizontal.go gives a metric it cannot read
FAILED_READS = [
    ("utilization-is-resource", MetricParams("cpu", MetricKind.UTILIZATION, 70.0), "FailedGetResourceMetric"),
    ("average-is-external", MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0), "FailedGetExternalMetric"),
    ("value-is-external", MetricParams("depth", MetricKind.VALUE, 30.0), "FailedGetExternalMetric"),
    ("resource-average-value", MetricParams("memory", MetricKind.AVERAGE_PER_REPLICA, 2**29, source=HpaSource.RESOURCE,
                                            resource="memory"), "FailedGetResourceMetric"),
    ("container-resource", MetricParams("app-cpu", MetricKind.UTILIZATION, 70.0, source=HpaSource.CONTAINER_RESOURCE,
                                        container="app"), "FailedGetContainerResourceMetric"),
    ("pods", MetricParams("qps", MetricKind.AVERAGE_PER_REPLICA, 10.0, source=HpaSource.PODS), "FailedGetPodsMetric"),
    ("object", MetricParams("hits", MetricKind.VALUE, 10.0, source=HpaSource.OBJECT), "FailedGetObjectMetric"),
]


@pytest.mark.parametrize("metric, reason", [pytest.param(m, r, id=name) for name, m, r in FAILED_READS])
def test_a_metric_that_reads_nothing_is_named_by_its_hpa_source(metric, reason):
    """ScalingActive's reason for a metric without a usable sample follows the HPA source it stands
    for (a Resource AverageValue said FailedGetExternalMetric when looked up by kind)."""
    assert metric_failure_reasons((metric,), np.array([[False], [True]])).tolist() == [[reason], [""]]
