"""Every bundled scenario runs under the default policy and the baselines, with assertions on
properties of the outcome (bounds, mitigation, the oracle as the floor), not on exact traces."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from controller.policy import load_policies
from simulators.load import traces_dir
from simulators.runner import simulate, standard_controllers
from simulators.scenario import bundled_scenarios, load_scenario
from tests.simulators.conftest_paths import POLICIES

TRACES = traces_dir().is_dir()
FAULT_FREE = {"steady", "diurnal", "flash-crowd", "step"}


@lru_cache(maxsize=None)
def outcome(name: str):
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    sc = load_scenario(name)
    controllers = standard_controllers(policy, ["hpa", "fixed-max", "oracle"], hpa, policy.params.max_replicas)
    result, logs = simulate(sc, controllers, keep_records=False)
    return sc, result, policy


def same_worker(name: str) -> pytest.MarkDecorator:
    """The tests of one scenario share its cached outcome: on one pytest-xdist worker, it runs once."""
    return pytest.mark.xdist_group(f"bundled-scenario-{name}")


def scenario_names():
    for p in bundled_scenarios():
        marks = [pytest.mark.skipif(not TRACES, reason="shared traces absent")] if p.stem.startswith("trace-") else []
        yield pytest.param(p.stem, id=p.stem, marks=[*marks, same_worker(p.stem)])


@pytest.mark.parametrize("name", scenario_names())
def test_replicas_stay_within_the_policy_bounds(name):
    sc, result, policy = outcome(name)
    for controller in ("policy", "hpa"):
        spec = result.runs[controller].trajectory.spec_replicas
        lo = np.minimum(policy.params.min_replicas, spec[0])  # the first cycle may start outside
        assert (spec[1:] >= lo).all() and (spec <= policy.params.max_replicas).all(), controller


@pytest.mark.parametrize("name", scenario_names())
def test_the_oracle_is_the_floor(name):
    """The oracle needs the fewest replica-hours, and breaks no SLO where scaling can avoid it."""
    sc, result, _ = outcome(name)
    oracle = result.runs["oracle"].scores
    for controller in ("policy", "hpa", "fixed-max"):
        assert oracle["replica_hours"] <= result.runs[controller].scores["replica_hours"] + 1e-9, controller
    if name in FAULT_FREE or name.startswith("trace-"):
        assert oracle["slo_violation_minutes"] == 0


@pytest.mark.parametrize("name", scenario_names())
def test_scores_are_consistent(name):
    sc, result, _ = outcome(name)
    for run in result.runs.values():
        s = run.scores
        assert s["slo_violation_minutes"] <= sc.duration_s / 60 * len(sc.services)
        assert s["reversals"] <= s["replica_changes"]
        assert set(s["mitigation_seconds"]) == set(sc.fault_names)
    assert result.runs["fixed-max"].scores["replica_changes"] == 0


@same_worker("metrics-outage")
def test_metrics_outage_never_causes_a_scale_down():
    """While the metrics are out, stale or NaN, replicas never go down (load is falling)."""
    sc, result, _ = outcome("metrics-outage")
    t = result.runs["policy"].trajectory.t_s
    for f in result.faults:
        during = (t >= f.start_s) & (t < f.end_s)
        for controller in ("policy", "hpa"):
            spec = result.runs[controller].trajectory.spec_replicas[during, 0]
            assert (np.diff(spec) >= 0).all(), (controller, f.name)
    # and the policy does scale down once the metrics are back (the load fell by half)
    spec = result.runs["policy"].trajectory.spec_replicas[:, 0]
    assert spec[-1] < spec[t.searchsorted(result.faults[0].start_s)]


def test_node_loss_is_mitigated():
    sc, result, _ = outcome("node-loss")
    assert result.runs["policy"].scores["mitigation_seconds"]["zone-a-down"] is not None


SEEDS = range(5)


@lru_cache(maxsize=None)
def policy_run(name: str, seed: int):
    """The default policy alone on scenario ``name`` with ``seed``."""
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    result, _ = simulate(load_scenario(name, seed=seed), standard_controllers(policy, [], None, 20), keep_records=False)
    return result.runs["policy"]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_crash_looping_rollout_withholds_only_max_unavailable(seed):
    """The stuck rollout keeps the old pods: from the release on, once spec has been steady for a
    minute (pods start in 30 s), ready replicas are at least spec - maxUnavailable (25%, rounded
    down), also after the policy scales up (the Deployment spreads new replicas over the old and
    the new revision, so the old one grows); and the rollout does stall with pods missing."""
    traj = policy_run("crash-loop", seed).trajectory
    after = traj.t_s >= 20 * 60
    spec, ready = traj.spec_replicas[:, 0], traj.ready_replicas[:, 0]
    settle = int(round(60.0 / (traj.t_s[1] - traj.t_s[0])))
    steady = np.zeros_like(after)
    steady[settle:] = np.array([(spec[k - settle:k + 1] == spec[k]).all() for k in range(settle, spec.size)])
    spec, ready = spec[after & steady], ready[after & steady]
    assert (ready >= spec - np.floor(0.25 * spec)).all()
    assert (ready < spec).any()  # the rollout does stall with pods missing


@pytest.mark.xfail(strict=True, reason=(
    "The default policy sizes spec replicas on the request rate (averagePerReplica) and does not "
    "replace the maxUnavailable pods a stuck rollout withholds: 600 rps on 8 replicas leaves 6 "
    "ready pods at 100%. Over seeds 0-4 it loses 10-39 SLO minutes (0 only on lucky seeds under "
    "the old seeding) and on some seeds scales down during the stall (600 rps < 0.8 x 85 x 9)."))
def test_crash_loop_costs_no_capacity_the_policy_can_replace():
    """Wanted: a stuck rollout costs no SLO minutes, on every seed, and the policy never scales
    down from the release on. Not met (see the xfail reason); strict, so a policy that does
    compensate unavailable replicas will flag it."""
    for seed in SEEDS:
        run = policy_run("crash-loop", seed)
        spec = run.trajectory.spec_replicas[run.trajectory.t_s >= 20 * 60, 0]
        assert (np.diff(spec) >= 0).all(), seed
        assert run.scores["slo_violation_minutes"] == 0, seed


def test_flash_crowd_policy_scales_up_fast_and_back_down():
    sc, result, _ = outcome("flash-crowd")
    run = result.runs["policy"]
    spec, t = run.trajectory.spec_replicas[:, 0], run.trajectory.t_s
    peak_at = t[np.argmax(spec)]
    assert 20 * 60 <= peak_at <= 30 * 60
    assert spec[-1] < spec.max()
    assert run.scores["slo_violation_minutes"] <= result.runs["hpa"].scores["slo_violation_minutes"]


def test_simulation_is_deterministic_for_a_seed():
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    runs = []
    for _ in range(2):
        sc = load_scenario("step", seed=5)
        result, _ = simulate(sc, standard_controllers(policy, [], None, 20), keep_records=False)
        runs.append(result.runs["policy"].trajectory)
    for field in ("spec_replicas", "ready_replicas", "served_rps", "latency_s"):
        np.testing.assert_array_equal(getattr(runs[0], field), getattr(runs[1], field))
    other, _ = simulate(load_scenario("step", seed=6), standard_controllers(policy, [], None, 20), keep_records=False)
    assert not np.array_equal(other.runs["policy"].trajectory.offered_rps, runs[0].offered_rps)
