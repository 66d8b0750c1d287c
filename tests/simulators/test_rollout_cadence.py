"""Health-only cycles at ``spec.health.rolloutInterval`` run only while a rollout is in
progress, between the full cycles, and leave scaling as it was (simulated cluster, fixed times)."""

from __future__ import annotations

from functools import lru_cache

import pytest

from controller.policy import load_policies, load_policy_text
from simulators.runner import ControllerSpec, run_controller
from simulators.scenario import load_scenario_text
from tests.simulators.conftest_paths import POLICIES

# The tests share the cached simulations (simulated): on one pytest-xdist worker each is computed once.
pytestmark = pytest.mark.xdist_group("tests/simulators/test_rollout_cadence.py")

RELEASE_S, INTERVAL_S, DURATION_S = 600.0, 15.0, 1020.0  # the stable revision is known healthy after 5 m
SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: cadence}}
spec:
  duration: 17m
  tick: 5s
  seed: 3
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 10
      maxPods: 40
      errorRatio: 0.002
      load:
        - constant: {{rps: 600}}
        - noise: {{sigma: 0.05, every: 30s}}
{faults}"""
RELEASE = "  faults:\n    - {{name: release, kind: bad-rollout, at: 10m, services: [web], errorRatioMultiplier: {x}}}\n"


def healing(rollout_interval: str | None = None):
    text = (POLICIES / "setpoint-healing.yaml").read_text()
    if rollout_interval is not None:
        text = text.replace("    rolloutInterval: 5s", f"    rolloutInterval: {rollout_interval}")
    return load_policy_text(text, "setpoint-healing.yaml")[0]


POLICY = {"healing": lambda: healing(), "healing-15s": lambda: healing("15s"),
          "scaling-only": lambda: load_policies([POLICIES / "setpoint-default.yaml"])[0]}


@lru_cache(maxsize=None)
def simulated(policy: str, multiplier: float | None):
    """(run, [(t since start, full cycle?, rollout in progress seen)]) of one 17-minute run."""
    sc = load_scenario_text(SCENARIO.format(faults="" if multiplier is None else RELEASE.format(x=multiplier)),
                            "cadence.yaml")
    cycles = []
    on_cycle = lambda r: cycles.append((r.now - sc.start_s, r.decision is not None,  # noqa: E731
                                        bool(r.view.rollout.any())))
    run, _ = run_controller(sc, ControllerSpec("policy", "policy", "", policy=POLICY[policy]()), sc.offered(),
                            keep_records=False, on_cycle=on_cycle)
    return run, cycles


@pytest.mark.parametrize("policy,multiplier,expect_health_only", [
    pytest.param("healing", 1.0, True, id="healthy-release-health-only-cycles-during-the-rollout"),
    pytest.param("healing", None, False, id="no-release-none"),
    pytest.param("healing-15s", 1.0, False, id="rollout-interval-not-shorter-than-the-interval-none"),
    pytest.param("scaling-only", 1.0, False, id="no-health-section-none"),
])
def test_health_only_cycles_run_only_while_a_rollout_is_in_progress(policy, multiplier, expect_health_only):
    _, cycles = simulated(policy, multiplier)
    full = [t for t, is_full, _ in cycles if is_full]
    assert full == [INTERVAL_S * k for k in range(len(full))] and len(full) == DURATION_S // INTERVAL_S
    health_only = [t for t, is_full, _ in cycles if not is_full]
    assert bool(health_only) == expect_health_only
    if health_only:
        # each one follows a cycle that saw the rollout in progress, 5 s after the previous cycle
        seen = {t: rolling for t, _, rolling in cycles}
        times = sorted(seen)
        for t in health_only:
            before = times[times.index(t) - 1]
            assert t - before == 5.0 and seen[before] and t > RELEASE_S
        assert all(t % INTERVAL_S != 0 for t in health_only)


def test_health_only_cycles_leave_scaling_as_it_was():
    with_fast, _ = simulated("healing", 1.0)
    without, _ = simulated("healing-15s", 1.0)
    scale = lambda r: [(a.t_s, a.from_replicas, a.to_replicas) for a in r.actions if a.kind == "scale"]  # noqa: E731
    assert scale(with_fast) == scale(without)
    # a healthy release stays: no remedy, only held for evidence (paused) and resumed
    assert all(a.kind in ("scale", "pause", "resume") for a in with_fast.actions)
    assert [a.kind for a in with_fast.actions if a.kind != "scale"] in ([], ["pause", "resume"])


def test_a_bad_release_is_rolled_back_in_a_health_only_cycle_before_the_next_full_one():
    run, cycles = simulated("healing", 10.0)
    [rollback] = [a for a in run.actions if a.kind == "rollback"]
    assert rollback.t_s % INTERVAL_S != 0  # not on the 15 s grid of the full cycles
    at = {t: is_full for t, is_full, _ in cycles}
    assert not at[rollback.t_s]  # a health-only cycle sent it
    [slow] = [a for a in simulated("healing-15s", 10.0)[0].actions if a.kind == "rollback"]
    assert RELEASE_S < rollback.t_s < slow.t_s
