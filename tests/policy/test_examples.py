"""Every example in policies/ loads, and says what its comments claim."""

from __future__ import annotations

import math
import re

import pytest
import yaml

from controller.core.scaling.params import MetricKind, Select, Smoothing
from controller.policy import HealthAction, load_policies
from controller.policy.promql import label_replaces
from tests.policy.helpers import POLICIES

EXAMPLES = sorted(p.name for p in POLICIES.glob("*.yaml"))


def test_the_expected_examples_exist():
    assert EXAMPLES == ["checkout-health.yaml", "hpa-behavior.yaml", "hpa-cpu.yaml", "latency-slo.yaml",
                        "queue-worker.yaml", "setpoint-default.yaml", "setpoint-healing.yaml", "statefulset-healing.yaml",
                        "web-forecast.yaml", "web-pooled.yaml", "web-rps.yaml"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads(name):
    policies = load_policies([POLICIES / name])
    assert policies and all(p.file == str(POLICIES / name) for p in policies)


def test_all_examples_load_together():
    names = [p.name for p in load_policies([POLICIES])]
    assert names == ["checkout", "payments-health", "hpa-behavior", "hpa-cpu", "latency-slo", "queue-worker",
                     "setpoint-default", "setpoint-healing", "statefulset-healing", "web-forecast", "web-pooled",
                     "web-rps"]


def by_name():
    return {p.name: p for p in load_policies([POLICIES])}


def test_web_rps():
    p = by_name()["web-rps"]
    assert [(m.name, m.kind, m.target) for m in p.params.metrics] == [("rps", MetricKind.AVERAGE_PER_REPLICA, 80.0)]
    assert p.targets.names == ("web", "web-canary")
    assert (p.params.smoothing, p.params.half_life_s) == (Smoothing.EWMA, 45.0)
    assert (p.params.tolerance_up, p.params.tolerance_down) == (0.05, 0.15)


def test_queue_worker():
    p = by_name()["queue-worker"]
    assert p.targets.labels == {"app.kubernetes.io/component": "queue-worker"} and not p.targets.by_name
    assert p.params.metrics[0].kind is MetricKind.AVERAGE_PER_REPLICA
    assert (p.params.smoothing, p.params.window_s) == (Smoothing.MAX, 120.0)
    assert (p.params.missing_hold_s, p.params.fallback_replicas) == (300.0, 8)


def test_latency_slo():
    p = by_name()["latency-slo"]
    assert [(m.name, m.kind) for m in p.params.metrics] == [
        ("p95-latency", MetricKind.VALUE), ("rps", MetricKind.AVERAGE_PER_REPLICA)]
    assert p.params.scale_down.select is Select.MIN
    assert p.params.missing_hold_s == math.inf


def test_hpa_cpu_is_legacy_hpa():
    p = by_name()["hpa-cpu"].params
    assert (p.hpa_semantics, p.legacy, p.tolerance_up, p.smoothing) == (True, True, 0.1, Smoothing.NONE)
    assert [(m.kind, m.target) for m in p.metrics] == [(MetricKind.UTILIZATION, 70.0)]


def test_hpa_behavior_uses_behavior_path():
    p = by_name()["hpa-behavior"]
    assert (p.params.hpa_semantics, p.params.legacy) == (True, False)
    assert p.targets.kind == "StatefulSet"
    assert p.params.scale_down.window_s == 600.0 and p.params.scale_up.values.tolist() == [4.0, 100.0]


def test_checkout_health():
    policies = by_name()
    checkout, payments = policies["checkout"], policies["payments-health"]
    assert checkout.scales and not payments.scales
    assert [c.action for c in checkout.health.checks] == [HealthAction.ROLLBACK, HealthAction.RESTART_POD]
    assert checkout.health.budgets.rollbacks_per_day == 2
    assert payments.health.budgets.max_unavailable_pods == 1
    # its HPA owns the count: a saturated pool is recorded, not scaled (a scale-up would be set back)
    assert [c.action for c in payments.health.checks] == [HealthAction.RESTART_POD, HealthAction.RECORD]
    assert (checkout.document, payments.document) == (1, 2)


def test_web_forecast():
    p = by_name()["web-forecast"]
    (m,) = p.params.metrics
    assert m.kind == MetricKind.AVERAGE_PER_REPLICA and m.forecast is not None
    assert m.forecast.horizon_s == 75.0  # auto: 30 s start-up + 15 s interval + half of [1m]
    assert m.forecast.periods_s == (86400.0, 604800.0) and m.forecast.error_bound == 1.25


def test_web_pooled_is_the_default_policy_with_pooled_headroom_without_the_ramps_latest_and_min_step():
    policies = by_name()
    pooled, default = policies["web-pooled"].params, policies["setpoint-default"].params
    (m,) = pooled.metrics
    assert (m.kind, m.target, m.capacity, pooled.pooled_metrics) == (MetricKind.AVERAGE_PER_REPLICA, 85.0, 100.0, (0,))
    assert m.capacity > m.target * (1 + pooled.tolerance_up)  # the comment's 5% reaction margin stays per replica
    assert default.pooled_metrics == ()
    pooled_spec, default_spec = (yaml.safe_load((POLICIES / f).read_text())["spec"]
                                 for f in ("web-pooled.yaml", "setpoint-default.yaml"))
    assert pooled_spec["scaling"]["metrics"][0].pop("target") == {"averagePerReplica": 85, "headroom": "pooled",
                                                                   "capacityPerReplica": 100}
    default_spec["scaling"]["metrics"][0].pop("target")
    # without the ramp's latest reading and minStep (with them pooled headroom loses WC98; see its comments)
    ramp = default_spec["scaling"]["metrics"][0]["ramp"]
    assert ramp.pop("minStep") == "tolerance" and ramp.pop("latest").endswith("[30s]))")
    assert pooled_spec == default_spec  # everything else is the default policy's


def test_setpoint_default_sizes_ramps_ahead_at_85_percent():
    p = by_name()["setpoint-default"]
    (m,) = p.params.metrics
    assert (m.kind, m.target, m.forecast) == (MetricKind.AVERAGE_PER_REPLICA, 85.0, None)
    assert (m.ramp.lead_s, m.ramp.window_s) == (75.0, 60.0)  # auto: 30 s start-up + 15 s interval + half of [1m]
    assert (p.params.tolerance_up, p.params.tolerance_down) == (0.05, 0.2)
    assert 85.0 * (1 + p.params.tolerance_up) < 92.0  # the comment's margin under the SLO at min replicas
    down = p.params.scale_down
    # 15 minutes: the policy comment says why (scale-downs undone within minutes under 5m)
    assert down.window_s == 900.0 and down.values.tolist() == [100.0] and down.periods_s.tolist() == [15.0]
    # released linearly over the window, in steps of at least the down tolerance (the comment's why)
    assert p.params.scale_down_linear_release and p.params.scale_down_min_step == 0.2


def _pod_pattern(name: str, check: str) -> tuple[str, str]:
    """(label, pattern) of the label_replace a shipped policy's check reads its workload with."""
    [(dst, replacement, src, regex)] = label_replaces(next(c for c in by_name()[name].health.checks
                                                          if c.name == check).query)
    assert (replacement, src) == ("$1", "pod")
    return dst, regex


@pytest.mark.parametrize("policy, kind, pod", [
    pytest.param("setpoint-healing", "deployment", "web-5d9c7b8f6-x2k4q", id="deployment-pod-hash-suffix"),
    pytest.param("statefulset-healing", "statefulset", "web-0", id="statefulset-pod-ordinal"),
    pytest.param("statefulset-healing", "statefulset", "kafka-broker-12", id="statefulset-dashed-name-two-digits"),
])
def test_a_restarts_check_reads_its_kinds_pod_names_back_to_the_workload(policy, kind, pod):
    """The restarts check is blind where its label_replace does not match the kind's pod names
    (a Deployment's pattern never matches a StatefulSet's web-0)."""
    dst, regex = _pod_pattern(policy, "restarts")
    workload = pod.rsplit("-", 2 if kind == "deployment" else 1)[0]
    assert dst == kind and re.fullmatch(regex, pod).group(1) == workload
    assert by_name()[policy].targets.kind == kind.replace("deployment", "Deployment").replace(
        "statefulset", "StatefulSet")


def test_statefulset_healing_never_rolls_back():
    p = by_name()["statefulset-healing"]
    assert [(c.name, str(c.scope).rsplit(".", 1)[-1].lower(), c.action.name) for c in p.health.checks] == [
        ("restarts", "workload", "RECORD"), ("not-ready", "pod", "RESTART_POD"), ("memory", "pod", "RESTART_POD")]
    assert [a.name for a in p.health.escalation] == ["RESTART_POD", "ROLLING_RESTART"]
    # its canary is judged against the stable pods and said, not rolled back
    assert [(c.name, c.action.name) for c in p.health.revision_checks] == [("canary-errors", "RECORD")]
