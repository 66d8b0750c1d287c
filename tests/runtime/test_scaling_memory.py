"""Deciding in place (Reconciler.in_place, the default) changes nothing but the cost:
the same records, actions and state as the pure path, cycle after cycle, through failed writes
(scale events only for the applied rows) and target lists that change (state carried over)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.core.scaling import compiled
from controller.errors import PermanentError
from controller.model import jsonable
from controller.policy import load_policies, load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import policy_bindings
from simulators.scenario import load_scenario, load_scenario_text

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba unavailable: nothing is decided in place")


class FlakyTargets(SimTargets):
    """Every second write fails (permanently): that row's change is not applied."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes = 0

    def apply(self, action) -> None:
        self.writes += 1
        if self.writes % 2 == 0:
            raise PermanentError("refused")
        super().apply(action)


#: Eight services: a flash crowd on a diurnal base, with noise (scale-ups and scale-downs).
CROWD = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: crowd, description: "eight services, a flash crowd"}
spec:
  duration: 1h
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: svc
      count: 8
      capacityPerPod: 100
      startupDelay: 30s
      initialReplicas: 4
      maxPods: 30
      load:
        - diurnal: {mean: 500, amplitude: 0.6, peakHour: 2}
        - flashCrowd: {at: 15m, peak: 900, rise: 2m, decay: 10m}
        - noise: {sigma: 0.1}
"""


def run(policy_file: str, scenario_name: str, in_place: bool, ticks: int = 600, in_place_from: int = 0):
    """(per cycle: its records as JSON, its actions and failed writes; the final scaling state)
    of one Reconciler over its own simulated cluster; from tick 100 to 160 it drives only every
    other service. ``in_place`` from tick ``in_place_from`` on (pure before)."""
    scenario = load_scenario_text(CROWD, "crowd.yaml") if scenario_name == "crowd" else load_scenario(scenario_name)
    (policy,) = load_policies([bundled_policy(policy_file)]) if policy_file != FORECAST else [default_with_forecast()]
    rp = RuntimePolicy.of(policy)
    cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
    every, some = FlakyTargets(cluster, scenario.services), FlakyTargets(cluster, scenario.services[::2])
    metrics = SimMetrics(cluster, policy_bindings(scenario, rp), scenario.metrics_window_s, scenario.tick_s)
    metrics.attach(every)
    rec = Reconciler(rp, metrics, every)
    rec.in_place = in_place and in_place_from == 0
    offered, times = scenario.offered(), scenario.times()
    results = []
    for k in range(min(ticks, times.size)):
        cluster.step(times[k], scenario.tick_s, offered[k])
        metrics.push(cluster.signals())
        if k == 100 or k == 160:
            rec.cluster = some if k == 100 else every
        if in_place and k == in_place_from:
            rec.in_place = True
        if k % 3 == 0:
            results.append(rec.cycle(float(times[k])))
    # records made at the end, as the decision log does: each cycle's decision outlives the next cycles
    return [([json.dumps(jsonable(r.to_dict()), sort_keys=True) for r in cycle_records(result, rp.params.metric_names)],
             [(a.target.name, a.replicas) for a in result.actions], result.failed) for result in results], rec._state


FORECAST = "setpoint-default.yaml + forecast"


def default_with_forecast():
    """The default policy with a forecast one observed start-up ahead on its rate (issue #9's candidate)."""
    text = bundled_policy("setpoint-default.yaml").read_text()
    anchor = "        target: {averagePerReplica: 85, capacityPerReplica: 100}\n"
    assert anchor in text
    forecast = "        forecast: {startupDelay: observed, seasonality: [10m], minHistory: 20m}\n"  # learnt within the run
    return load_policy_text(text.replace(anchor, anchor + forecast))[0]


def assert_same_state(a, b) -> None:
    for part in ("smooth", "norm"):
        for name, x in vars(getattr(a, part)).items():
            np.testing.assert_array_equal(x, getattr(getattr(b, part), name), err_msg=f"{part}.{name}")
    for x, y in zip(a.ramp, b.ramp, strict=True):
        np.testing.assert_array_equal(x.values, y.values)
        np.testing.assert_array_equal(x.times, y.times)
    for x, y in zip(a.forecast, b.forecast, strict=True):
        for name, u in vars(x).items():
            for k, (p, q) in enumerate(zip(u, getattr(y, name)) if isinstance(u, tuple) else [(u, getattr(y, name))]):
                np.testing.assert_array_equal(p, q, err_msg=f"forecast.{name}[{k}]")


@pytest.mark.parametrize("policy_file, scenario", [
    pytest.param("setpoint-default.yaml", "crowd", id="default-policy-ramp-eight-services"),
    pytest.param("web-rps.yaml", "crowd", id="ewma-policy-eight-services"),
    pytest.param("setpoint-default.yaml", "flash-crowd", id="default-policy-ramp-flash-crowd"),
    pytest.param(FORECAST, "crowd", id="default-policy-with-a-forecast-eight-services"),
])
def test_in_place_decisions_equal_the_pure_path(policy_file, scenario):
    pure, pure_state = run(policy_file, scenario, in_place=False)
    fast, fast_state = run(policy_file, scenario, in_place=True)
    assert any(actions for _, actions, _ in pure) and any(failed for _, _, failed in pure)  # the run exercised both
    if policy_file == FORECAST:  # and forecasts that counted
        assert any('"trusted": true' in r for records, _, _ in pure for r in records)
    assert len(fast) == len(pure)
    for k, (a, b) in enumerate(zip(pure, fast)):
        assert a == b, f"cycle {k}"
    assert_same_state(pure_state, fast_state)


def test_live_reconciler_decides_in_place_by_default():
    (policy,) = load_policies([bundled_policy("setpoint-default.yaml")])
    scenario = load_scenario("step")
    cluster = SimCluster(scenario.cluster, np.random.default_rng(0))
    rp = RuntimePolicy.of(policy)
    rec = Reconciler(rp, SimMetrics(cluster, policy_bindings(scenario, rp), 60.0, 5.0), SimTargets(cluster, ["web"]))
    assert rec.in_place is True


def test_a_kernel_failing_to_compile_on_the_first_cycle_leaves_the_state_to_numpy(monkeypatch):
    """The fused kernel fails to compile (a fault numba cannot be made to produce on demand: a
    stand-in raises its error) on a forecast policy's first in-place cycle, 40 minutes into the
    run (trusted forecasts), after the forecast kernel has stepped the workspace's copy of the
    state: numpy decides from the untouched state, so the run is the pure path's, cycle for cycle."""
    import numba

    from controller.core.scaling import fused

    pure, pure_state = run(FORECAST, "crowd", in_place=False)
    monkeypatch.setattr(compiled, "_broken", None)  # restored after the test: the kernels work again
    monkeypatch.setattr(compiled, "_warned", False)

    def fails_to_compile(*args):
        raise numba.core.errors.TypingError("stand-in: the kernel does not type")

    monkeypatch.setattr(fused, "fused_kernel", fails_to_compile)
    with pytest.warns(RuntimeWarning, match="compiled kernel failed"):
        fast, fast_state = run(FORECAST, "crowd", in_place=True, in_place_from=480)
    assert compiled._broken is not None
    assert any('"trusted": true' in r for records, _, _ in pure[:160] for r in records)
    assert len(fast) == len(pure)
    for k, (a, b) in enumerate(zip(pure, fast)):
        assert a == b, f"cycle {k}"
    assert_same_state(pure_state, fast_state)


@pytest.mark.parametrize("held_rows", [pytest.param([], id="no-row-held"), pytest.param([1, 4], id="two-rows-held"),
                                       pytest.param(list(range(6)), id="every-row-held")])
def test_committing_every_change_of_a_hands_off_decision_commits_its_own_counts(held_rows):
    """ScalingMemory.commit(decision, True, None), every change to desired, of a decision derived
    from the one decided in place (core/scaling/external.hands_off keeps held rows as someone set
    them): the scale events are those of its own desired counts, not the workspace's, as on the
    pure path; cycle after cycle on a load that scales up and down."""
    from controller.core.scaling.decide import Observation, ScalingState
    from controller.core.scaling.external import hands_off
    from controller.runtime.scaling_memory import ScalingMemory

    (policy,) = load_policies([bundled_policy("web-rps.yaml")])
    params = RuntimePolicy.of(policy).params
    n = 6
    fast, pure = ScalingMemory(ScalingState.empty(n, params)), ScalingMemory(ScalingState.empty(n, params), False)
    held = np.isin(np.arange(n), held_rows)
    current = np.full(n, 4.0)
    load = 300 + 250 * np.sin(np.arange(40) / 4)[:, None] * np.linspace(0.5, 1.5, n)
    for k, rps in enumerate(load):
        obs = Observation.of(current, current, rps[:, None])
        now = 1_700_000_000.0 + 15 * k
        a, b = (hands_off(m.decide(params, obs, now), held) for m in (fast, pure))
        np.testing.assert_array_equal(a.norm.desired, b.norm.desired)
        fast.commit(a, True, None)
        pure.commit(b, True, None)
        current = np.asarray(a.norm.desired, np.float64).copy()
    assert fast.keeper is not None and pure.keeper is None
    assert_same_state(fast.state, pure.state)
