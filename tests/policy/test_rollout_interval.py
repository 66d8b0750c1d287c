"""``spec.health.rolloutInterval``: how often the health side runs while a rollout is in progress."""

from __future__ import annotations

import pytest

from controller.policy.compile import compile_health_params
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from tests.policy.helpers import error_lines, load_one, policy_with

HEALTH = """\
  targets: {namespace: shop, name: web}
  replicas: {min: 2, max: 8}
  interval: 15s
  health:
    checks:
      - name: errors
        query: x
        smoothing: {window: {length: 2m}}
        unhealthy: {above: 0.05, for: 1m}
        action: rollback
"""


def loaded(extra: str = ""):
    return load_one(policy_with(HEALTH + extra))


@pytest.mark.parametrize("extra,expected_s,health_only_s", [
    pytest.param("", 5.0, 5.0, id="default-5s"),
    pytest.param("    rolloutInterval: 2s\n", 2.0, 2.0, id="set"),
    pytest.param("    rolloutInterval: 15s\n", 15.0, None, id="equal-to-the-interval-no-health-only-cycles"),
    pytest.param("    rolloutInterval: 1m\n", 60.0, None, id="longer-than-the-interval-no-health-only-cycles"),
])
def test_rollout_interval_compiles_and_decides_whether_health_only_cycles_run(extra, expected_s, health_only_s):
    policy = loaded(extra)
    params = compile_health_params(policy.health, interval_s=policy.params.interval_s)
    assert params.rollout_interval_s == expected_s
    assert params.shortest_interval_s == min(15.0, expected_s)
    assert Reconciler.rollout_interval_of(RuntimePolicy.of(policy)) == health_only_s


def test_smoothing_rings_are_sized_for_the_rollout_interval():
    from controller.core.health.heal import HealthState

    params = loaded().health_params
    state = HealthState.empty(1, params)
    assert state.workload.smooth[0].sample_at.shape[-1] == 2 * 60 // 5 + 1  # one slot per 5 s step of a 2 m window


@pytest.mark.parametrize("value,needle", [
    pytest.param("0.5s", "rolloutInterval", id="below-1s"),
    pytest.param("2d", "rolloutInterval", id="above-a-day"),
    pytest.param("5", "rolloutInterval", id="no-unit"),
])
def test_bad_rollout_interval_is_an_error_naming_the_field(value, needle):
    lines = error_lines(policy_with(HEALTH + f"    rolloutInterval: {value}\n"))
    assert any(f":15: spec.health.{needle}:" in line for line in lines), lines  # file, line and field
