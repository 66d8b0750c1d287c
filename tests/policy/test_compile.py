"""Compiling policies: defaults, the hpa preset's two paths, and the typed health checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.core.scaling.params import MetricKind, RuleType, Select, Smoothing
from controller.model import TargetRef
from controller.policy import Comparison, HealthAction, Threshold
from controller.runtime.reconciler import RuntimePolicy
from tests.policy.helpers import load_one, policy_with

PODS, PERCENT = RuleType.PODS, RuleType.PERCENT
HPA_UP = (0.0, Select.MAX, [(PODS, 4.0, 15.0), (PERCENT, 100.0, 15.0)])
HPA_DOWN = (300.0, Select.MAX, [(PERCENT, 100.0, 15.0)])


def rules(r):
    """ScalingRules as (window_s, select, [(type, value, period_s)]) for readable comparisons."""
    return (r.window_s, r.select, [(RuleType(t), v, p) for t, v, p in zip(r.types, r.values, r.periods_s)])


def params_of(scaling: str, preset: str = ""):
    spec = (f"  preset: {preset}\n" if preset else "") + (
        "  targets: {namespace: shop, name: web}\n  replicas: {min: 2, max: 20}\n  scaling:\n"
        "    metrics: [{name: cpu, query: x, target: {utilization: 70%}}]\n" + scaling)
    return load_one(policy_with(spec)).params


@pytest.mark.parametrize("preset, scaling, expected", [
    pytest.param("hpa", "", dict(legacy=True, hpa_semantics=True, tolerance_up=0.1, tolerance_down=0.1,
                                 smoothing=Smoothing.NONE, scale_up=HPA_UP, scale_down=HPA_DOWN,
                                 missing_hold_s=math.inf, fallback_replicas=None),
                 id="hpa-without-behavior-takes-legacy-path"),
    pytest.param("hpa", "    behavior: {}\n",
                 dict(legacy=False, hpa_semantics=True, scale_up=HPA_UP, scale_down=HPA_DOWN),
                 id="hpa-empty-behavior-gets-defaults"),
    pytest.param("hpa", "    behavior: {scaleDown: {stabilizationWindow: 10m}}\n",
                 dict(legacy=False, scale_up=HPA_UP, scale_down=(600.0, Select.MAX, [(PERCENT, 100.0, 15.0)])),
                 id="hpa-behavior-defaults-field-by-field"),
    pytest.param("hpa", "    behavior: {scaleUp: {policies: [{type: Pods, value: 1, period: 1m}]}}\n",
                 dict(scale_up=(0.0, Select.MAX, [(PODS, 1.0, 60.0)]), scale_down=HPA_DOWN),
                 id="hpa-user-policies-replace-the-default-list"),
    pytest.param("hpa", "    behavior: {scaleDown: {selectPolicy: Disabled}}\n",
                 dict(scale_down=(300.0, Select.DISABLED, [(PERCENT, 100.0, 15.0)])),
                 id="hpa-select-disabled"),
    pytest.param("hpa", "    tolerance: {up: 0.05, down: 0.2}\n",
                 dict(legacy=True, tolerance_up=0.05, tolerance_down=0.2),
                 id="hpa-per-direction-tolerance"),
    pytest.param("", "", dict(legacy=False, hpa_semantics=False, tolerance_up=0.1, tolerance_down=0.1,
                              smoothing=Smoothing.NONE, scale_up=HPA_UP, scale_down=HPA_DOWN, interval_s=15.0,
                              stale_after_s=120.0, missing_hold_s=math.inf, fallback_replicas=None),
                 id="setpoint-defaults"),
    pytest.param("", "    tolerance: 0.2\n", dict(tolerance_up=0.2, tolerance_down=0.2), id="tolerance-one-number"),
    pytest.param("", "    smoothing: {ewma: {halfLife: 45s}}\n", dict(smoothing=Smoothing.EWMA, half_life_s=45.0),
                 id="ewma"),
    pytest.param("", "    smoothing: {window: {length: 2m}}\n", dict(smoothing=Smoothing.MEAN, window_s=120.0),
                 id="window-mean-by-default"),
    pytest.param("", "    smoothing: {window: {length: 90s, aggregate: median}}\n",
                 dict(smoothing=Smoothing.MEDIAN, window_s=90.0), id="window-median"),
    pytest.param("", "    smoothing: {window: {length: 1m, aggregate: max}}\n", dict(smoothing=Smoothing.MAX),
                 id="window-max"),
    pytest.param("", "    smoothing: {window: {length: 5m, aggregate: percentile, percentile: 90}}\n",
                 dict(smoothing=Smoothing.PERCENTILE, window_s=300.0, percentile=90.0), id="window-percentile"),
    pytest.param("", "    onMissingMetrics: {hold: 2m, then: {fallbackReplicas: 6}}\n",
                 dict(missing_hold_s=120.0, fallback_replicas=6), id="hold-then-fallback"),
    pytest.param("", "    onMissingMetrics: {hold: 2m, then: hold}\n",
                 dict(missing_hold_s=math.inf, fallback_replicas=None),
                 id="hold-then-hold-is-forever"),
    pytest.param("", "    onMissingMetrics: {hold: 2m}\n", dict(missing_hold_s=math.inf, fallback_replicas=None),
                 id="hold-alone-is-forever"),
    pytest.param("", "    staleAfter: 45s\n", dict(stale_after_s=45.0), id="stale-after"),
    pytest.param("", "    behavior:\n      scaleUp: {stabilizationWindow: 1m, selectPolicy: Min}\n"
                     "      scaleDown: {policies: [{type: Pods, value: 2, period: 30s},"
                     " {type: Percent, value: 10, period: 5m}]}\n",
                 dict(scale_up=(60.0, Select.MIN, HPA_UP[2]),
                      scale_down=(300.0, Select.MAX, [(PODS, 2.0, 30.0), (PERCENT, 10.0, 300.0)])),
                 id="setpoint-behavior"),
])
def test_compile_scaling(preset, scaling, expected):
    params = params_of(scaling, preset)
    actual = {k: rules(getattr(params, k)) if k.startswith("scale_") else getattr(params, k) for k in expected}
    assert actual == expected


@pytest.mark.parametrize("target, kind, value", [
    pytest.param("{value: 0.25}", MetricKind.VALUE, 0.25, id="value"),
    pytest.param("{averagePerReplica: 80}", MetricKind.AVERAGE_PER_REPLICA, 80.0, id="average-per-replica"),
    pytest.param("{utilization: 70%}", MetricKind.UTILIZATION, 70.0, id="utilization-percent"),
    pytest.param("{utilization: 65}", MetricKind.UTILIZATION, 65.0, id="utilization-number"),
])
def test_metric_kinds(target, kind, value):
    spec = ("  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 5}\n  interval: 30s\n"
            f"  scaling:\n    metrics: [{{name: m, query: x, target: {target}}}]\n")
    params = load_one(policy_with(spec)).params
    assert [(m.name, m.kind, m.target) for m in params.metrics] == [("m", kind, value)]
    assert (params.min_replicas, params.max_replicas, params.interval_s) == (1, 5, 30.0)


@pytest.mark.parametrize("targets, names, labels, refs", [
    pytest.param("{namespace: shop, name: web}", ("web",), {}, (TargetRef("shop", "web"),), id="name"),
    pytest.param("{kind: StatefulSet, namespace: db, names: [pg, redis]}", ("pg", "redis"), {},
                 (TargetRef("db", "pg", "StatefulSet"), TargetRef("db", "redis", "StatefulSet")), id="names"),
    pytest.param("{namespace: jobs, selector: {matchLabels: {tier: worker, app: q}}}", (),
                 {"app": "q", "tier": "worker"}, (), id="selector"),
])
def test_target_selection(targets, names, labels, refs):
    spec = (f"  targets: {targets}\n  replicas: {{min: 1, max: 5}}\n"
            "  scaling:\n    metrics: [{name: m, query: x, target: {value: 1}}]\n")
    selector = load_one(policy_with(spec)).targets
    assert (selector.names, selector.labels, selector.refs()) == (names, labels, refs)
    if labels:
        assert selector.label_selector == "app=q,tier=worker"


HEALTH = """\
  targets: {namespace: shop, name: web}
  replicas: {min: 2, max: 8}
  health:
    checks:
      - name: errors
        query: x
        smoothing: {window: {length: 1m, aggregate: median}}
        unhealthy: {above: 0.05, for: 1m}
        recovered: {below: 0.02, for: 2m}
        action: rollback
      - name: probes
        query: y
        scope: pod
        unhealthy: {below: 0.5}
        action: restart-pod
        onMissing: fire
"""


def test_health_checks_compile_to_seconds_and_ratios():
    policy = load_one(policy_with(HEALTH + "    budgets: {restartsPerHour: 3, maxUnavailable: 50%}\n"
                                  "    rollbackWindow: 1h\n    escalation: [restart-pod, rollback]\n"))
    health = policy.health
    errors, probes = health.checks
    assert errors.unhealthy == Threshold(Comparison.ABOVE, 0.05, 60.0)
    assert errors.recovered == Threshold(Comparison.BELOW, 0.02, 120.0)
    assert (errors.action, errors.scope, errors.fire_on_missing) == (HealthAction.ROLLBACK, "workload", False)
    assert (errors.smoothing.kind, errors.smoothing.window_s) == (Smoothing.MEDIAN, 60.0)
    # Without `recovered`, recovery is the opposite comparison on the same threshold, at once.
    assert probes.recovered == Threshold(Comparison.ABOVE, 0.5, 0.0)
    assert (probes.action, probes.scope, probes.fire_on_missing) == (HealthAction.RESTART_POD, "pod", True)
    assert (health.budgets.restarts_per_hour, health.budgets.rollbacks_per_day) == (3, 2)
    assert (health.budgets.max_unavailable_ratio, health.budgets.max_unavailable_pods) == (0.5, None)
    assert health.rollback_window_s == 3600.0
    assert health.escalation == (HealthAction.RESTART_POD, HealthAction.ROLLBACK)


@pytest.mark.parametrize("action, error", [
    pytest.param("rollback", None, id="never-scales-needs-no-bounds"),
    pytest.param("scale-up", "spec.replicas: required field is missing: a policy that scales (scaling, or a health "
                 "check's scale-up) needs replicas", id="a-scale-up-needs-bounds"),
])
def test_replica_bounds_are_required_only_to_scale(action, error):
    from controller.policy.load import check_policy_texts

    text = ("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: h}\nspec:\n"
            "  targets: {namespace: shop, names: [web]}\n  health:\n    checks:\n      - name: errors\n"
            "        query: sum by (namespace, deployment) (rate(http_errors_total[1m]))\n"
            f"        unhealthy: {{above: 5, for: 2m}}\n        action: {action}\n")
    check = check_policy_texts([(text, "h.yaml")])
    if error is None:
        assert check.errors == [] and check.policies[0].health_params.max_replicas > 10**6
    else:
        assert [str(e) for e in check.errors] == [f"h.yaml:4: {error}: {{min: N, max: M}}"]


def test_health_only_policy_has_no_metrics_and_does_not_scale():
    policy = load_one(policy_with(HEALTH))
    assert not policy.scales
    assert policy.params.metrics == ()
    assert (policy.params.min_replicas, policy.params.max_replicas) == (2, 8)
    assert (policy.health.budgets.max_unavailable_ratio, policy.health.rollback_window_s) == (0.25, 1800.0)


@pytest.mark.parametrize("budget, replicas, allowed", [
    pytest.param("25%", 8, 2, id="quarter-of-8"),
    pytest.param("25%", 3, 1, id="at-least-one-pod"),
    pytest.param("0%", 10, 0, id="zero-percent"),
    pytest.param("2", 10, 2, id="pod-count"),
    pytest.param("29%", 100, 29, id="no-float-drift"),  # 0.29 * 100 = 28.999999999999996
    pytest.param("57%", 100, 57, id="no-float-drift-57"),
])
def test_max_unavailable(budget, replicas, allowed):
    """The policy's budget and the core's parameters give the same count (they once rounded apart)."""
    policy = load_one(policy_with(HEALTH + f"    budgets: {{maxUnavailable: {budget}}}\n"))
    assert policy.health.budgets.max_unavailable(replicas) == allowed
    assert policy.health_params.budgets.max_unavailable(np.array([replicas])).tolist() == [allowed]


def test_health_is_compiled_once_when_loaded():
    """The reconciler runs the parameters compiled at load time, not a second compilation."""
    policy = load_one(policy_with(HEALTH))
    assert RuntimePolicy.of(policy).health is policy.health_params


def test_threshold_comparisons_are_strict():
    checks = load_one(policy_with(HEALTH)).health.checks
    assert (checks[0].unhealthy.is_met(0.06), checks[0].unhealthy.is_met(0.05)) == (True, False)
    assert (checks[1].unhealthy.is_met(0.4), checks[1].unhealthy.is_met(0.5)) == (True, False)
