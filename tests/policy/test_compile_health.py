"""Compiling a policy's health section into the health core's HealthParams."""

from __future__ import annotations

import math

import pytest

from controller.core.health_params import Direction, Remedy, Scope
from controller.core.params import Smoothing
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
