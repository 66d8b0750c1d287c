"""A cycle's records as JSON lines from its arrays (record_lines.cycle_lines) are, byte for byte,
the per-record path's (cycle_records, to_dict, jsonable, json.dumps): on simulated runs of several
policies and faults (ramp, start-ups, forecast, the hpa preset, missing metrics, saturated pods,
healing and health-only cycles, restarts) and on decisions over NaN, inf, implausible and -0.0
samples; and a simulation's spilled records are written without a record object per target."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from controller.cli import simulation

from controller.core.scaling import compiled
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide
from controller.model import TargetRef, jsonable
from controller.policy import load_policies
from controller.runtime.reconciler import CycleResult, FailedAction, cycle_records
from controller.runtime.record_lines import cycle_lines, float_texts, json_text
from simulators.output import tagged, write_decisions
from simulators.runner import ControllerSpec, run_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.test_lockstep import SCENARIO

POLICIES = Path(__file__).resolve().parents[2] / "policies"
T0 = 1_700_000_000.0


def per_record_lines(result: CycleResult, names: tuple[str, ...], start_s: float) -> list[str]:
    """The lines as CycleLog wrote them before cycle_lines: one DecisionRecord per target."""
    return [json.dumps(jsonable(r.to_dict()), separators=(",", ":")) for r in cycle_records(result, names, start_s)]


def loaded(name: str):
    return load_policies([POLICIES / name])[0]


def spec(name: str, healer: str | None = None, restart_every_s: float | None = None) -> ControllerSpec:
    return ControllerSpec(name, "policy", "", policy=loaded(name), restart_every_s=restart_every_s,
                          healer=loaded(healer) if healer else None)


# each run, and what its records must hold somewhere (so that each part is compared at least once)
RUNS = [
    pytest.param(lambda: spec("setpoint-default.yaml"),
                 ['"ramp":', '"startup":', '"conditions":', '"saturated":', '"missing":true', '"action":"scale"'],
                 id="default-policy-ramp-startup-saturated-missing"),
    pytest.param(lambda: spec("web-forecast.yaml"), ['"forecast":', '"trusted":', '"predictive":'],
                 id="forecast-policy"),
    pytest.param(lambda: spec("hpa-cpu.yaml"), ['"conditions":', '"reason":"ScaleUp"'], id="hpa-preset"),
    pytest.param(lambda: spec("setpoint-healing.yaml"), ['"health":', '"checks":', '"since":'], id="healing-policy"),
    pytest.param(lambda: spec("setpoint-default.yaml", healer="setpoint-healing.yaml"),
                 ['"reason":"HealthOnly"', '"health":'], id="scaler-and-healer-health-only-cycles"),
    pytest.param(lambda: spec("setpoint-default.yaml", restart_every_s=600.0), ['"startup":'],
                 id="restarted-every-10m"),
]


@pytest.mark.parametrize("switch", [pytest.param("1", id="compiled"), pytest.param("0", id="numpy")])
@pytest.mark.parametrize("make, holds", RUNS)
def test_a_runs_lines_are_the_per_record_paths(monkeypatch, switch, make, holds):
    monkeypatch.setattr(compiled, "switch", switch)
    sc = load_scenario_text(SCENARIO.format(duration="20m"))
    (_, log), = run_controllers(sc, [make()], keep_records=True)
    assert log.cycles and not log.spilled
    seen = []
    for cycle in log.cycles:
        lines = cycle_lines(cycle, log.metric_names, log.start_s)
        assert lines == per_record_lines(cycle, log.metric_names, log.start_s)
        seen += lines
    text = "\n".join(seen)
    assert [h for h in holds if h not in text] == []
    assert list(log.lines()) == seen  # what decisions.jsonl gets


def odd_values() -> np.ndarray:
    """(9, 1) samples: NaN, +inf, -inf, implausible (far above any replicas.max could serve), -0.0,
    0.0, a repeated value and two ordinary ones."""
    return np.array([[math.nan], [math.inf], [-math.inf], [1e15], [-0.0], [0.0], [250.0], [250.0], [123.456]])


def decided(name: str, now: float) -> tuple[Decision, list[TargetRef]]:
    """A decision of policy ``name`` over odd_values, as its second cycle (the first 15 s before)."""
    params = loaded(name).params
    n = odd_values().shape[0]
    current = np.array([3, 3, 3, 3, 0, 2, 4, 4, 5], dtype=np.float64)
    ready = np.array([3, 2, 3, 0, 0, 2, 4, 3, 5], dtype=np.float64)
    state = ScalingState.empty(n, params)
    first = decide(params, Observation.of(current, ready, np.full((n, 1), 200.0)), state, now - 15)
    obs = Observation.of(current, ready, odd_values(), latest=np.full((n, 1), 260.0),
                         withheld=np.array([0, 1, 0, 0, 0, 0, 2, 0, 0], dtype=np.float64))
    targets = [TargetRef("shop", f"web-{i}") for i in range(n)]
    return decide(params, obs, first.state, now), targets


@pytest.mark.parametrize("start_s", [pytest.param(0.0, id="absolute-times"),
                                     pytest.param(T0 - 600, id="relative-times")])
@pytest.mark.parametrize("name", [pytest.param("setpoint-default.yaml", id="default-policy"),
                                  pytest.param("web-forecast.yaml", id="forecast-policy"),
                                  pytest.param("hpa-cpu.yaml", id="hpa-preset")])
@pytest.mark.parametrize("now", [pytest.param(T0, id="float-now"), pytest.param(1_700_000_000, id="int-now")])
def test_nan_inf_implausible_and_negative_zero_samples_give_the_same_lines(name, start_s, now):
    d, targets = decided(name, now)
    result = CycleResult(loaded(name).name, now, targets, None, d, withheld=np.array([0, 1, 0, 0, 0, 0, 2, 0, 0]),
                         failed=[FailedAction(targets[6], "scale", "conflict: the object has been modified")],
                         conditions=[{}, {"AbleToScale": {"status": "True", "reason": "x%s"}}] + [{}] * 7)
    names = d.params.metric_names
    lines = cycle_lines(result, names, start_s)
    assert lines == per_record_lines(result, names, start_s)
    text = "\n".join(lines)
    assert '"raw":null' in text and '"withheld":2' in text and '"actionFailed":' in text
    assert name == "hpa-cpu.yaml" or '"implausible":' in text  # HPA has no implausible bound


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-0.0, 0.0, 1.5, 1e16])),
                max_size=40))
def test_a_float_column_is_written_as_json_dumps_writes_each_value(values):
    assert float_texts(np.array(values, dtype=np.float64)) == [json_text(v) for v in values]


def test_a_spilled_log_writes_its_lines_without_a_record_object_per_target(monkeypatch):
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    (_, kept), = run_controllers(sc, [spec("setpoint-default.yaml")], keep_records=True)
    expected = [line for c in kept.cycles for line in per_record_lines(c, kept.metric_names, kept.start_s)]

    def refuse(*args, **kwargs):
        raise AssertionError("a DecisionRecord was made for a line")

    monkeypatch.setattr(Decision, "record", refuse)
    kept.in_memory_records = 0
    spilled = type(kept)(kept.policy, kept.metric_names, start_s=kept.start_s, in_memory_records=0)
    for cycle in kept.cycles:
        spilled.add(cycle)
    assert spilled.spilled == len(expected)
    assert list(spilled.lines()) == expected


@pytest.mark.parametrize("block, expected", [
    pytest.param("", "", id="nothing"),
    pytest.param('{"a":1}\n{"b":2}\n', '{"controller":"p","a":1}\n{"controller":"p","b":2}\n', id="two-lines"),
    pytest.param("{}\n", '{"controller":"p"}\n', id="an-empty-object"),
    pytest.param('{"m":"x\\n{y"}\n', '{"controller":"p","m":"x\\n{y"}\n', id="an-escaped-newline-and-brace"),
])
def test_a_block_of_lines_is_tagged_with_its_controller(block, expected):
    assert tagged(block, '{"controller":"p",') == expected


def test_decisions_jsonl_holds_each_controllers_lines_tagged_spilled_or_not(tmp_path):
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    runs = run_controllers(sc, [spec("setpoint-default.yaml"), spec("web-forecast.yaml")], keep_records=True)
    logs = {"policy": runs[0][1], "forecast": runs[1][1]}
    expected = [f'{{"controller":"{name}",' + line[1:] for name, log in logs.items()
                for c in log.cycles for line in per_record_lines(c, log.metric_names, log.start_s)]
    spilled = type(logs["policy"])(logs["policy"].policy, logs["policy"].metric_names, start_s=sc.start_s,
                                   in_memory_records=0)
    for cycle in logs["policy"].cycles:
        spilled.add(cycle)
    path = write_decisions({"policy": spilled, "forecast": logs["forecast"]}, tmp_path / "decisions.jsonl", sc.start_s)
    assert spilled.spilled and path.read_text().split("\n") == expected + [""]


@pytest.mark.parametrize("least, said", [
    pytest.param(10**9, "", id="a-small-file-unsaid"),
    pytest.param(1, "writing 3 decision records to out/decisions.jsonl", id="a-large-file-said"),
])
def test_simulate_says_it_writes_a_large_decisions_file(monkeypatch, least, said):
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    (_, log), = run_controllers(sc, [spec("setpoint-default.yaml")], keep_records=True)
    log.cycles = log.cycles[:1]
    monkeypatch.setattr(simulation, "SAY_WRITING_FROM_RECORDS", least)
    console = Console(file=io.StringIO(), width=200)
    simulation._say_writing(console, {"policy": log}, Path("out"))
    assert console.file.getvalue().strip() == said


def test_the_live_loop_writes_and_shows_the_lines_as_it_did_the_records(tmp_path):
    """`setpoint run` writes a cycle's lines (RecordWriter.write_lines) and gives the status view
    each line read back: the same file and the same dicts as the records' own path (write,
    jsonable(to_dict())) gave; live records keep epoch times (no start_s)."""
    from controller.runtime.records import RecordWriter

    sc = load_scenario_text(SCENARIO.format(duration="20m"))
    (_, log), = run_controllers(sc, [spec("setpoint-default.yaml")], keep_records=True)
    by_records, by_lines = RecordWriter(tmp_path / "records.jsonl"), RecordWriter(tmp_path / "lines.jsonl")
    for cycle in log.cycles:
        records = cycle_records(cycle, log.metric_names)
        lines = cycle_lines(cycle, log.metric_names)
        by_records.write(records)
        by_lines.write_lines(lines)
        assert [json.loads(line) for line in lines] == [jsonable(r.to_dict()) for r in records]
    by_records.close(), by_lines.close()
    assert (tmp_path / "lines.jsonl").read_bytes() == (tmp_path / "records.jsonl").read_bytes()
    assert (tmp_path / "lines.jsonl").stat().st_size > 0
