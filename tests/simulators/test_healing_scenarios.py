"""The fault scenarios under the healing policy: the fault is mitigated, budgets hold, and the
wrong action is never taken (no restarts under overload, no rollback of a healthy release)."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import yaml

from controller.policy import load_policies
from simulators.runner import simulate, standard_controllers
from simulators.scenario import load_scenario
from simulators.score import violation_mask
from tests.simulators.conftest_paths import POLICIES

# The tests share the cached simulations (healed): on one pytest-xdist worker each is computed once.
pytestmark = pytest.mark.xdist_group("tests/simulators/test_healing_scenarios.py")

HOUR, DAY = 3600.0, 86400.0


#: The scenarios whose healed run a test reads the decision records of (kept for these only)
RECORDED = {"crash-loop"}


@lru_cache(maxsize=None)
def healed_run(name: str):
    """(result, decision logs) of the healing policy beside HPA on scenario ``name``; logs only for
    RECORDED scenarios (each controller's run is its own: the policy's is the same beside HPA)."""
    policy = load_policies([POLICIES / "setpoint-healing.yaml"])[0]
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    return simulate(load_scenario(name), standard_controllers(policy, ["hpa"], hpa, 20),
                    keep_records=name in RECORDED)


def healed(name: str):
    return healed_run(name)[0]


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
])
def test_a_worse_release_is_rolled_back_by_the_revision_comparison(name, fault, within_s):
    r = healed(name)
    [rollback] = actions(r, "rollback")
    assert rollback.reason.startswith("RollbackRevisionWorse")
    assert 20 * 60 < rollback.t_s <= 20 * 60 + within_s
    assert not actions(r, "restart-pod") and not actions(r, "rolling-restart")


def test_a_subtly_worse_release_is_rolled_back_in_most_seeds():
    """1.5x errors (0.2% -> 0.3%) is near the test's power: issue 11 asks for a rollback before the
    rollout completes in at least 80% of seeds, not in every one, so the claim is over five seeds
    (one missed verdict allowed), each rollback from the revision comparison within 15 minutes."""
    policy = load_policies([POLICIES / "setpoint-healing.yaml"])[0]
    caught = 0
    for seed in range(5):
        result, _ = simulate(load_scenario("subtle-bad-rollout", seed=seed), standard_controllers(policy, [], None, 20),
                             keep_records=False)
        remedies = [a for a in result.runs["policy"].actions if a.kind in ("rollback", "restart-pod", "rolling-restart")]
        assert all(a.kind == "rollback" and a.reason.startswith("RollbackRevisionWorse") for a in remedies), remedies
        caught += any(20 * 60 < a.t_s <= 20 * 60 + 900 for a in remedies)
    assert caught >= 4


def test_a_flash_crowd_during_a_bad_release_is_still_met_by_scaling():
    r = healed("bad-rollout-flash-crowd")
    ups = [a for a in actions(r, "scale") if a.to_replicas > a.from_replicas]
    assert ups and ups[0].t_s < 20 * 60 + 180


def test_crash_looping_release_is_rolled_back():
    r = healed("crash-loop")
    assert len(actions(r, "rollback")) == 1 and not actions(r, "restart-pod")


def test_crash_looping_release_is_rolled_back_when_a_pod_restart_check_sees_it(tmp_path):
    """The restarts read per pod with restart-pod (the ladder's first step), as teams often write
    it, beside the revision comparison: the new pods never serve, so the comparison has no
    evidence and the timing blames the release (it had scaled up instead, 11 -> 14 -> 18, the
    not-Ready pods read as overload, and never rolled back)."""
    doc = yaml.safe_load((POLICIES / "setpoint-healing.yaml").read_text())
    checks = doc["spec"]["health"]["checks"]
    [i] = [k for k, c in enumerate(checks) if c["name"] == "restarts"]
    checks[i] = {"name": "restarts", "scope": "pod", "action": "restart-pod",
                 "query": "sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[10m]))",
                 "unhealthy": {"above": 3, "for": "0s"}, "recovered": {"below": 1, "for": "10m"}}
    path = tmp_path / "pod-restarts.yaml"
    path.write_text(yaml.safe_dump(doc))
    policy = load_policies([path])[0]
    assert policy.health_params.revision_checks
    r, _ = simulate(load_scenario("crash-loop"), standard_controllers(policy, [], None, 20), keep_records=False)
    [rollback] = actions(r, "rollback")
    assert rollback.reason.startswith("RollbackNewRevision") and 20 * 60 < rollback.t_s < 20 * 60 + 300
    spec = r.runs["policy"].trajectory.spec_replicas[:, 0]
    assert spec.max() <= 12


def test_a_simulations_records_give_each_checks_phase_time_in_seconds_since_its_start():
    """As the records' own times (status printed 2026-01-05 00:23 (333d ago) for a check's since)."""
    _, logs = healed_run("crash-loop")
    records = [json.loads(line) for line in logs["policy"].lines()]
    since = [c["since"] for r in records for c in r["health"]["checks"].values() if c.get("since") is not None]
    last = records[-1]["at"]
    assert since and all(0 <= s <= last for s in since)
    fired = [(r["at"], c["since"]) for r in records for c in r["health"]["checks"].values() if c["phase"] == "firing"]
    assert fired and all(s <= at for at, s in fired)  # fired before the record that shows it firing


@lru_cache(maxsize=None)
def healed_seed(name: str, seed: int):
    """``healed`` with the scenario's seed replaced by ``seed``."""
    policy = load_policies([POLICIES / "setpoint-healing.yaml"])[0]
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    scenario = load_scenario(name, seed=seed)
    result, _ = simulate(scenario, standard_controllers(policy, ["hpa"], hpa, 20), keep_records=False)
    return scenario, result, policy


@pytest.mark.parametrize("seed", range(5))
def test_memory_leak_restarts_keep_the_slo_until_the_restart_budget_runs_out(seed):
    """The leak (1 MiB/s from 256 MiB; slow past 768, OOM at 1024) breaks the SLO unhealed. The
    healing policy restarts before the slow-down and breaks no SLO minute while its restart
    budget has room: every violating tick has restartsPerHour restarts in the hour before it.
    That does happen near the end of the hour: restarting at 600 MiB (30 s) costs a rolling
    restart every ~6.5 min (~9 per hour) against a budget of 6, so the 7th is refused at ~55 min
    and the pods run slowed (70% capacity) from ~57 min; on noisy seeds p95 crosses 250 ms for 1-2
    minutes. So the claim is weaker than "no violation": none within budget, and at most 1/4 of the
    unhealed (HPA-only) run's violation minutes."""
    scenario, r, policy = healed_seed("memory-leak", seed)
    restarts = actions(r, "restart-pod") + actions(r, "rolling-restart")
    assert restarts
    run, unhealed = r.runs["policy"], r.runs["hpa"]
    assert unhealed.scores["slo_violation_minutes"] > 0  # the leak does break the SLO unhealed
    assert run.scores["slo_violation_minutes"] <= unhealed.scores["slo_violation_minutes"] / 4
    restart_times = np.array([a.t_s for a in restarts])
    budget = policy.health_params.budgets.restarts_per_hour
    for t in run.trajectory.t_s[violation_mask(run.trajectory, scenario.slo)[:, 0]]:
        assert ((restart_times > t - HOUR) & (restart_times <= t)).sum() >= budget, t


def test_systemic_overload_gets_a_scale_up_and_no_restart():
    r = healed("systemic-overload")
    assert not actions(r, "restart-pod") and not actions(r, "rolling-restart") and not actions(r, "rollback")
    spec = r.runs["policy"].trajectory.spec_replicas[:, 0]
    assert spec.max() > spec[0]


@pytest.mark.parametrize("name", ["transient-crash", "steady", "step", "flash-crowd"])
def test_healthy_or_self_correcting_runs_get_no_health_action(name):
    r = healed(name)
    assert not [a for a in r.runs["policy"].actions if a.kind != "scale"]


@pytest.mark.parametrize("name", ["bad-rollout", "crash-loop", "crash-loop-ramp", "memory-leak", "systemic-overload",
                                  "transient-crash", "node-loss", "bad-rollout-flash-crowd"])
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
