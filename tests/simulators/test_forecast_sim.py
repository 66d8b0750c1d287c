"""Forecasting in simulation: a scenario's history, the runner's warm start, and explain."""

from __future__ import annotations

import numpy as np
import pytest

from controller.errors import ScenarioError
from controller.policy import load_policies
from simulators.load import TraceReplay, load_trace
from simulators.runner import ControllerSpec, run_controller
from simulators.scenario import SCENARIO_FOLDER, load_scenario_text
from tests.support.cli_inproc import run_cli
from tests.simulators.conftest_paths import POLICIES
from tests.simulators.test_load import write_csv


@pytest.fixture
def minute_trace(tmp_path):
    rows = [(f"2020-01-01T00:0{i}:00Z", v) for i, v in enumerate([60, 120, 180, 240, 600, 60])]
    return load_trace(write_csv(tmp_path / "minutes.csv", rows))


def test_trace_history_replays_the_trace_before_the_window(minute_trace):
    replay = TraceReplay(minute_trace, interpolation="step", start_offset_s=120.0, duration_s=120.0, history_s=120.0,
                         peak_rps=8.0)
    # the window's peak (4 rps -> 8) sets the scale; the history keeps it (1, 2 rps -> 2, 4)
    np.testing.assert_allclose(replay(np.array([-120.0, -60.0, 0.0, 60.0])), [2.0, 4.0, 6.0, 8.0])
    without = TraceReplay(minute_trace, interpolation="step", start_offset_s=120.0, duration_s=120.0)
    np.testing.assert_allclose(without(np.array([-120.0, 0.0])), [3.0, 3.0])  # holds the first value


def test_trace_history_cannot_reach_before_the_trace(minute_trace):
    with pytest.raises(ScenarioError) as err:
        TraceReplay(minute_trace, start_offset_s=60.0, history_s=120.0)
    assert err.value.errors[0].path == "history_s"


def scenario_text(history: str) -> str:
    text = (SCENARIO_FOLDER / "flash-crowd.yaml").read_text()
    assert "  history: 1d\n" in text
    return text.replace("  history: 1d\n", f"  history: {history}\n")


@pytest.mark.parametrize("history,expected_s", [pytest.param("1d", 86400.0, id="one-day"),
                                                pytest.param("0s", 0.0, id="none")])
def test_scenario_history_field(history, expected_s):
    s = load_scenario_text(scenario_text(history), "flash.yaml")
    assert s.history_s == expected_s
    times = s.history_times()
    assert times.size == int(expected_s / s.tick_s) and (times < s.start_s).all()


def test_scenario_history_is_validated_with_file_and_line():
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(scenario_text("-1h"), "flash.yaml")
    (e,) = err.value.errors
    assert (e.file, e.path) == ("flash.yaml", "spec.history") and e.line == 12


def first_forecast_record(history: str) -> dict:
    s = load_scenario_text(scenario_text(history), "flash.yaml")
    s = type(s)(**{**s.__dict__, "duration_s": 120.0})
    (policy,) = load_policies([POLICIES / "web-forecast.yaml"])
    _, log = run_controller(s, ControllerSpec("policy", "policy", "", policy=policy), s.offered())
    return next(iter(log.records())).to_dict()["forecast"]["rps"]


def test_the_runner_warms_the_forecast_from_the_scenario_history():
    warm, cold = first_forecast_record("1d"), first_forecast_record("0s")
    assert warm["trusted"] and warm["error"] is not None and warm["forecast"] == pytest.approx(300, rel=0.2)
    assert not cold["trusted"] and cold["error"] is None


def test_explain_prints_the_forecast(tmp_path):
    sim = run_cli("simulate", "step", "--policy", POLICIES / "web-forecast.yaml", "-b", "hpa", "--no-report",
                  "--out", "out", cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    proc = run_cli("explain", "out", "--controller", "policy", "--at", "16m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()
    assert "rps: forecast" in line and "reactive" in line and "predictive" in line and "error" in line
