"""Compiling a policy's health section into the health core's HealthParams."""

from __future__ import annotations

import math

import pytest

from controller.core.health.params import Direction, Remedy, Scope
from controller.core.scaling.params import Smoothing
from controller.policy.compile import compile_health_params
from tests.policy.helpers import load_one, policy_with

HEALTH = """\
  targets: {namespace: shop, name: web}
  replicas: {min: 2, max: 8}
  health:
    checks:
      - name: errors
        query: x
        smoothing: {ewma: {halfLife: 30s}}
        unhealthy: {above: 0.05, for: 1m}
        recovered: {below: 0.02, for: 2m}
        action: rollback
      - name: probes
        query: y
        scope: pod
        unhealthy: {below: 0.5, for: 30s}
        action: restart-pod
        onMissing: fire
"""


def compiled(extra: str = ""):
    loaded = load_one(policy_with(HEALTH + extra))
    return compile_health_params(loaded.health, interval_s=loaded.params.interval_s,
                                 max_replicas=loaded.params.max_replicas, name=loaded.name)


def test_checks_compile_to_core_parameters():
    p = compiled()
    errors, probes = p.checks
    assert (errors.scope, errors.direction, errors.unhealthy, errors.unhealthy_for_s) == \
           (Scope.WORKLOAD, Direction.ABOVE, 0.05, 60.0)
    assert (errors.recovered, errors.recovered_for_s, errors.action) == (0.02, 120.0, Remedy.ROLLBACK)
    assert (errors.smoothing, errors.half_life_s, errors.fire_on_missing) == (Smoothing.EWMA, 30.0, False)
    assert (probes.scope, probes.direction, probes.unhealthy, probes.recovered) == \
           (Scope.POD, Direction.BELOW, 0.5, 0.5)
    assert (probes.recovered_for_s, probes.action, probes.fire_on_missing) == (0.0, Remedy.RESTART_POD, True)
    assert p.workload_columns.tolist() == [0] and p.pod_columns.tolist() == [1]
    assert p.max_replicas == 8


def test_defaults_for_fields_the_format_does_not_have():
    p = compiled()
    assert p.verify_window_s == 240.0  # twice the longest `for` (recovered: 2m)
    assert p.systemic_share == 0.5
    assert p.rollback_window_s == p.new_revision_window_s == 1800.0
    assert p.escalation == ()
    assert (p.budgets.restarts_per_hour, p.budgets.rollbacks_per_day) == (6, 2)
    assert (p.budgets.max_unavailable_ratio, p.budgets.max_unavailable_pods) == (0.25, None)


@pytest.mark.parametrize("extra,expect", [
    pytest.param("    budgets: {restartsPerHour: 3, rollbacksPerDay: 1, maxUnavailable: 2}\n",
                 (3, 1, 2, None), id="pod-count"),
    pytest.param("    budgets: {maxUnavailable: 50%}\n", (6, 2, None, 0.5), id="percentage"),
])
def test_budgets(extra, expect):
    b = compiled(extra).budgets
    assert (b.restarts_per_hour, b.rollbacks_per_day, b.max_unavailable_pods, b.max_unavailable_ratio) == expect


def test_escalation_ladder_and_windows():
    p = compiled("    rollbackWindow: 1h\n    escalation: [restart-pod, rolling-restart, rollback]\n")
    assert p.escalation == (Remedy.RESTART_POD, Remedy.ROLLING_RESTART, Remedy.ROLLBACK)
    assert p.rollback_window_s == p.new_revision_window_s == 3600.0
    nxt = p.escalation_next
    assert (nxt[Remedy.RESTART_POD], nxt[Remedy.ROLLING_RESTART], nxt[Remedy.ROLLBACK]) == \
           (Remedy.ROLLING_RESTART, Remedy.ROLLBACK, Remedy.NONE)
    assert nxt[Remedy.SCALE_UP] == Remedy.RESTART_POD  # off the ladder: the first step above it


def test_verify_window_without_any_for_is_120s():
    text = HEALTH.replace("{above: 0.05, for: 1m}", "{above: 0.05}").replace("{below: 0.02, for: 2m}", "{below: 0.02}")
    text = text.replace("{below: 0.5, for: 30s}", "{below: 0.5}")
    loaded = load_one(policy_with(text))
    p = compile_health_params(loaded.health)
    assert p.verify_window_s == 120.0 and p.max_replicas > 10**6 and math.isinf(p.overload.utilization_above)


# --- scope: revision --------------------------------------------------------------------------

from controller.core.health.revision_test import Measure  # noqa: E402
from tests.policy.helpers import error_lines  # noqa: E402

REVISION = """\
      - name: release-errors
        scope: revision
        errors: sum by (namespace, pod) (rate(http_request_errors_total[1m]))
        requests: sum by (namespace, pod) (rate(http_requests_total[1m]))
        compare: {worseBy: 2x, falseRollbackRate: 0.5%, minRequests: 500}
        action: rollback
      - name: release-latency
        scope: revision
        query: histogram_quantile(0.95, sum by (namespace, pod, le) (rate(x_bucket[1m])))
        action: record
"""


def with_revision(checks: str = REVISION) -> str:
    return policy_with(HEALTH.replace("    checks:\n", "    checks:\n" + checks))


def test_revision_checks_compile_apart_from_the_threshold_checks():
    loaded = load_one(with_revision())
    p = compile_health_params(loaded.health, interval_s=15.0)
    assert [c.name for c in p.checks] == ["errors", "probes"]  # the columns of the alert state machines
    errors, latency = p.revision_checks
    assert (errors.measure, errors.worse_by, errors.false_rate, errors.min_requests, errors.rollback) == \
           (Measure.RATIO, 2.0, 0.005, 500, True)
    assert (latency.measure, latency.worse_by, latency.false_rate, latency.rollback) == (Measure.LATENCY, 2.0, 0.01, False)
    assert latency.least_requests == math.ceil(math.log(100) / math.log(2))


def test_a_revision_check_holds_the_rollout_only_when_asked():
    held = REVISION.replace("minRequests: 500}\n", "minRequests: 500}\n        hold: {maxDuration: 5m}\n")
    errors, latency = compile_health_params(load_one(with_revision(held)).health, interval_s=15.0).revision_checks
    assert errors.hold_max_s == 300.0 and latency.hold_max_s is None
    default = REVISION.replace("minRequests: 500}\n", "minRequests: 500}\n        hold: {}\n")
    errors, _ = compile_health_params(load_one(with_revision(default)).health, interval_s=15.0).revision_checks
    assert errors.hold_max_s == 600.0  # opt-in; maxDuration defaults to 10 minutes
    plain, _ = compile_health_params(load_one(with_revision()).health, interval_s=15.0).revision_checks
    assert plain.hold_max_s is None


def test_runtime_policy_queries_revision_checks_per_pod():
    from controller.runtime.reconciler import RuntimePolicy
    rp = RuntimePolicy.of(load_one(with_revision()))
    assert rp.health_queries == ("x", "y")
    assert rp.revision_queries[0][0].startswith("sum by (namespace, pod) (rate(http_request_errors_total")
    assert len(rp.revision_queries[1]) == 1


@pytest.mark.parametrize("checks,expect", [
    pytest.param("      - {name: r, scope: revision, errors: e, action: rollback}\n",
                 "spec.health.checks[0].requests: expected requests too", id="errors-without-requests"),
    pytest.param("      - {name: r, scope: revision, errors: e, requests: q, query: l, action: rollback}\n",
                 "spec.health.checks[0].query: expected either errors and requests", id="ratio-and-latency"),
    pytest.param("      - {name: r, scope: revision, action: rollback}\n",
                 "spec.health.checks[0]: expected errors and requests", id="neither"),
    pytest.param("      - {name: r, scope: revision, query: l, action: restart-pod}\n",
                 "spec.health.checks[0].action: must be rollback or record", id="restart-action"),
    pytest.param("      - {name: r, scope: revision, query: l, unhealthy: {above: 1}, action: rollback}\n",
                 "spec.health.checks[0].unhealthy: not used by scope revision", id="threshold-on-revision"),
    pytest.param("      - {name: r, scope: revision, query: l, compare: {worseBy: 1x}, action: rollback}\n",
                 "spec.health.checks[0].compare.worseBy: must be > 1x", id="no-effect-size"),
    pytest.param("      - {name: r, scope: revision, query: l, compare: {worseBy: twice}, action: rollback}\n",
                 "spec.health.checks[0].compare.worseBy: expected a factor like 2x", id="bad-factor"),
    pytest.param("      - {name: r, scope: revision, query: l, compare: {falseRollbackRate: 0%}, action: rollback}\n",
                 "spec.health.checks[0].compare.falseRollbackRate: must be > 0%", id="zero-false-rate"),
    pytest.param("      - {name: r, query: l, errors: e, unhealthy: {above: 1}, action: rollback}\n",
                 "spec.health.checks[0].errors: only for scope revision", id="errors-on-workload"),
    pytest.param("      - {name: r, action: rollback, unhealthy: {above: 1}}\n",
                 "spec.health.checks[0].query: expected a query", id="workload-without-query"),
    pytest.param("      - {name: r, query: l, unhealthy: {above: 1}, hold: {maxDuration: 5m}, action: rollback}\n",
                 "spec.health.checks[0].hold: only for scope revision", id="hold-on-workload"),
    pytest.param("      - {name: r, scope: revision, query: l, hold: {maxDuration: 5m}, action: record}\n",
                 "spec.health.checks[0].hold: only with action rollback", id="hold-without-rollback"),
    pytest.param("      - {name: r, scope: revision, query: l, hold: {maxDuration: 0s}, action: rollback}\n",
                 "spec.health.checks[0].hold.maxDuration", id="hold-zero"),
    pytest.param("      - {name: r, scope: revision, query: l, hold: {maxDuration: soon}, action: rollback}\n",
                 "spec.health.checks[0].hold.maxDuration", id="hold-not-a-duration"),
    pytest.param("      - {name: r, scope: revision, query: l, hold: {max: 5m}, action: rollback}\n",
                 "spec.health.checks[0].hold.max", id="hold-unknown-field"),
])
def test_revision_check_mistakes_name_the_field(checks, expect):
    lines = error_lines(with_revision(checks))
    assert any(expect in line for line in lines), lines
