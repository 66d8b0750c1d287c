"""Controllers run in lockstep (runner.run_controllers: one generated load, each controller over
its own cluster) give the same runs and decision records as each run alone (run_controller)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.core.scaling import compiled
from controller.policy import load_policies
from simulators.runner import ControllerSpec, run_controller, run_controllers, simulate, standard_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.helpers import run_view

POLICIES = Path(__file__).resolve().parents[2] / "policies"

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: lockstep, description: "three services, faults"}}
spec:
  duration: {duration}
  tick: 5s
  seed: 9
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      count: 3
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 20
      errorRatio: 0.002
      load:
        - diurnal: {{mean: 500, amplitude: 0.6, peakHour: 1}}
        - flashCrowd: {{at: 5m, peak: 700, rise: 1m, decay: 10m}}
        - noise: {{sigma: 0.1}}
  faults:
    - {{name: blip, kind: pod-crash, at: 4m, services: [web], count: 2}}
    - {{name: release-2, kind: bad-rollout, at: 6m, services: [web], errorRatioMultiplier: 10}}
    - {{name: outage, kind: metrics-outage, at: 8m, duration: 1m}}
"""


def policy(name: str):
    return load_policies([POLICIES / name])[0]


def specs() -> list[ControllerSpec]:
    return standard_controllers(policy("setpoint-default.yaml"), ["hpa", "fixed-max", "oracle"],
                                policy("hpa-cpu.yaml"), 12) + [
        ControllerSpec("restarting", "policy", "", policy=policy("setpoint-default.yaml"), restart_every_s=600.0)]


@pytest.mark.parametrize("switch", [pytest.param("1", id="compiled"), pytest.param("0", id="numpy")])
@pytest.mark.parametrize("chunk", [pytest.param(100, id="chunk-100"), pytest.param(512, id="chunk-512")])
def test_lockstep_runs_equal_the_runs_one_at_a_time(monkeypatch, switch, chunk):
    monkeypatch.setattr(compiled, "switch", switch)
    sc = load_scenario_text(SCENARIO.format(duration="40m"))
    together = run_controllers(sc, specs(), chunk_ticks=chunk, keep_trajectory=True)
    for spec, (run, log) in zip(specs(), together):
        alone, alone_log = run_controller(sc, spec, chunk_ticks=chunk, keep_trajectory=True)
        assert run.name == spec.name
        assert run_view(run) == run_view(alone), spec.name
        assert (log is None) == (alone_log is None)
        if log is not None:
            assert list(log.lines()) == list(alone_log.lines()), spec.name
    assert sum(len(run.actions) for run, _ in together) > 20  # something to compare


def test_lockstep_runs_on_a_given_load_equal_the_generated_one():
    sc = load_scenario_text(SCENARIO.format(duration="30m"))
    generated = run_controllers(sc, specs()[:2], keep_records=False)
    given = run_controllers(sc, specs()[:2], sc.offered(), keep_records=False)
    assert [run_view(r) for r, _ in generated] == [run_view(r) for r, _ in given]


def test_each_lockstep_run_reports_its_own_progress():
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    seen: dict[str, list[int]] = {"policy": [], "hpa": []}
    run_controllers(sc, specs()[:2], on_ticks=[seen["policy"].append, seen["hpa"].append], chunk_ticks=50,
                    keep_records=False)
    every = max(1, sc.tick_count // 200)
    for calls in seen.values():  # each at the first tick of its own run at or past each mark
        assert calls[0] == 1 and calls[-1] == sc.tick_count
        assert (np.diff(calls[:-1]) >= every).all() and len(calls) >= sc.tick_count // (every + 3)


def test_simulate_runs_its_controllers_in_lockstep_over_one_load(monkeypatch):
    """Each chunk of load is generated once, whatever the number of controllers."""
    sc = load_scenario_text(SCENARIO.format(duration="30m"))
    calls = []
    offered_chunks = type(sc).offered_chunks

    def counted(self, *args, **kwargs):
        for chunk in offered_chunks(self, *args, **kwargs):
            calls.append(chunk[0])
            yield chunk

    monkeypatch.setattr(type(sc), "offered_chunks", counted)
    result, logs = simulate(sc, specs()[:3])
    assert calls == [0]  # 360 ticks: one chunk, generated once for the three controllers
    assert list(result.runs) == ["policy", "hpa", "fixed-max"] and set(logs) == {"policy", "hpa"}


def test_offered_load_of_the_wrong_shape_is_refused():
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    with pytest.raises(ValueError, match="offered load is"):
        run_controllers(sc, specs()[:1], np.zeros((3, 3)))


def test_progress_callbacks_must_match_the_controllers():
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    with pytest.raises(ValueError, match="1 on_ticks for 2 controllers"):
        run_controllers(sc, specs()[:2], on_ticks=[None])
