"""The fault scenarios under the healing policy: the fault is mitigated, budgets hold, and the
wrong action is never taken (no restarts under overload, no rollback of a healthy release)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from controller.policy import load_policies
from simulators.runner import simulate, standard_controllers
from simulators.scenario import load_scenario
from tests.simulators.conftest_paths import POLICIES

# The tests share the cached simulations (healed): on one pytest-xdist worker each is computed once.
pytestmark = pytest.mark.xdist_group("tests/simulators/test_healing_scenarios.py")

HOUR, DAY = 3600.0, 86400.0


@lru_cache(maxsize=None)
def healed(name: str):
    policy = load_policies([POLICIES / "setpoint-healing.yaml"])[0]
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    result, _ = simulate(load_scenario(name), standard_controllers(policy, ["hpa"], hpa, 20), keep_records=False)
    return result


def actions(result, kind: str) -> list:
    return [a for a in result.runs["policy"].actions if a.kind == kind]


def test_bad_rollout_is_rolled_back_and_the_slo_recovers():
    r = healed("bad-rollout")
    [rollback] = actions(r, "rollback")
    assert 20 * 60 < rollback.t_s < 20 * 60 + 180
    assert r.runs["policy"].scores["mitigation_seconds"]["release-42"] is not None
    assert r.runs["hpa"].scores["mitigation_seconds"]["release-42"] is None  # scaling alone cannot fix it
    assert r.runs["policy"].scores["slo_violation_minutes"] < r.runs["hpa"].scores["slo_violation_minutes"] / 4


@pytest.mark.parametrize("name,fault,within_s", [
    pytest.param("bad-rollout", "release-42", 60, id="10x-errors-within-a-cycle-of-the-new-pods-serving"),
    pytest.param("latency-regression", "release-44", 60, id="latency-only"),
    pytest.param("bad-rollout-flash-crowd", "release-45", 60, id="during-a-flash-crowd"),
    pytest.param("subtle-bad-rollout", "release-43", 900, id="1.5x-errors"),
])
def test_a_worse_release_is_rolled_back_by_the_revision_comparison(name, fault, within_s):
    r = healed(name)
    [rollback] = actions(r, "rollback")
    assert rollback.reason.startswith("RollbackRevisionWorse")
    assert 20 * 60 < rollback.t_s <= 20 * 60 + within_s
    assert not actions(r, "restart-pod") and not actions(r, "rolling-restart")


def test_a_flash_crowd_during_a_bad_release_is_still_met_by_scaling():
    r = healed("bad-rollout-flash-crowd")
    ups = [a for a in actions(r, "scale") if a.to_replicas > a.from_replicas]
    assert ups and ups[0].t_s < 20 * 60 + 180


def test_crash_looping_release_is_rolled_back():
    r = healed("crash-loop")
    assert len(actions(r, "rollback")) == 1 and not actions(r, "restart-pod")


def test_memory_leak_restarts_before_the_slo_breaks_within_budget():
    r = healed("memory-leak")
    restarts = actions(r, "restart-pod") + actions(r, "rolling-restart")
    assert restarts and r.runs["policy"].scores["slo_violation_minutes"] == 0
    assert r.runs["hpa"].scores["slo_violation_minutes"] > 0  # the leak does break the SLO unhealed


def test_systemic_overload_gets_a_scale_up_and_no_restart():
    r = healed("systemic-overload")
    assert not actions(r, "restart-pod") and not actions(r, "rolling-restart") and not actions(r, "rollback")
    spec = r.runs["policy"].trajectory.spec_replicas[:, 0]
    assert spec.max() > spec[0]


@pytest.mark.parametrize("name", ["transient-crash", "steady", "step", "flash-crowd"])
def test_healthy_or_self_correcting_runs_get_no_health_action(name):
    r = healed(name)
    assert not [a for a in r.runs["policy"].actions if a.kind != "scale"]


@pytest.mark.parametrize("name", ["bad-rollout", "crash-loop", "memory-leak", "systemic-overload", "transient-crash",
                                  "node-loss", "bad-rollout-flash-crowd"])
def test_budgets_are_never_exceeded(name):
    """6 restarts per hour (a rolling restart counts one, a pod restart one per pod), 2
    rollbacks per day, checked over every sliding window of the run."""
    r = healed(name)
    restarts = np.array([a.t_s for a in r.runs["policy"].actions if a.kind in ("restart-pod", "rolling-restart")])
    rollbacks = np.array([a.t_s for a in actions(r, "rollback")])
    for t in restarts:
        assert ((restarts > t - HOUR) & (restarts <= t)).sum() <= 6
    for t in rollbacks:
        assert ((rollbacks > t - DAY) & (rollbacks <= t)).sum() <= 2
