"""A scenario's relative trace paths are read next to the scenario file, wherever setpoint runs
(as kustomize and docker compose read theirs), else in the traces folder; a trace found only from
the working directory is refused with the path to write instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.errors import ScenarioError
from simulators.scenario import load_scenario, load_scenario_text

#: A scenario in x/ naming its trace as TRACE; its line 15 holds the trace term.
SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: rel-trace}}
spec:
  duration: 10m
  tick: 5s
  seed: 3
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 2
      maxPods: 20
      load:
        - trace: {{file: {trace}, start: 0s}}
  metrics: {{rps: requests_per_second}}
"""
TRACE_LINE = 15
TRACE_FIELD = "spec.services[0].load[0].trace.file"


def trace_csv(path: Path, per_minute: float) -> Path:
    """A 30-minute trace of ``per_minute`` requests each minute (``per_minute`` / 60 rps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["timestamp,value"] + [f"2020-01-01T00:{m:02d}:00Z,{per_minute:g}" for m in range(30)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def rps(scenario) -> float:
    return float(scenario.shapes[0](scenario.start_s + 60.0))


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """tmp/x/ holds the scenarios, tmp/y/ is the working directory, tmp/traces/ the traces folder."""
    for folder in ("x", "y", "traces"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("SETPOINT_TRACES_DIR", str(tmp_path / "traces"))
    monkeypatch.chdir(tmp_path / "y")
    return tmp_path


def scenario_file(root: Path, trace: str, name: str = "scenario.yaml") -> Path:
    path = root / "x" / name
    path.write_text(SCENARIO.format(trace=trace), encoding="utf-8")
    return path


# (trace files to write: path under tmp -> requests per minute, the `file:` the scenario names,
#  the rps the scenario must replay: which file was read)
FOUND = [
    pytest.param({"x/data/load.csv": 600}, "data/load.csv", 10.0, id="next-to-the-scenario"),
    pytest.param({"shared/load.csv": 1200}, "../shared/load.csv", 20.0, id="up-from-the-scenario"),
    pytest.param({"x/data/load.csv": 600}, "data/load", 10.0, id="next-to-the-scenario-without-csv"),
    pytest.param({"traces/nasa.csv": 1800}, "nasa.csv", 30.0, id="bare-name-in-the-traces-folder"),
    pytest.param({"traces/nasa.csv": 1800}, "nasa", 30.0, id="bare-name-without-csv-in-the-traces-folder"),
    pytest.param({"x/nasa.csv": 600, "traces/nasa.csv": 1800}, "nasa.csv", 10.0,
                 id="next-to-the-scenario-before-the-traces-folder"),
    pytest.param({"x/load.csv": 600, "y/load.csv": 2400}, "load.csv", 10.0,
                 id="next-to-the-scenario-not-the-working-directory"),
    pytest.param({"elsewhere/load.csv": 3000}, "{root}/elsewhere/load.csv", 50.0, id="absolute-path"),
]


@pytest.mark.parametrize("files, named, expected_rps", FOUND)
def test_a_relative_trace_path_is_read_next_to_the_scenario_file(layout, files, named, expected_rps):
    for rel, per_minute in files.items():
        trace_csv(layout / rel, per_minute)
    path = scenario_file(layout, named.format(root=layout))
    relative = Path(os.path.relpath(path, Path.cwd()))  # ../x/scenario.yaml, as a user types it
    assert rps(load_scenario(relative)) == pytest.approx(expected_rps)
    assert rps(load_scenario(path)) == pytest.approx(expected_rps)


# (trace files to write, the `file:` named, words the one error must hold besides file:line: field)
NOT_FOUND = [
    pytest.param({}, "data/missing.csv", ["trace not found: ../x/data/missing.csv (next to the scenario file), nor "
                                          "{root}/traces/data/missing.csv (the traces folder: $SETPOINT_TRACES_DIR"],
                 id="names-the-resolved-path-and-the-traces-folder"),
    # only the working directory has it: where scenarios' trace paths were read before; refused, with the fix
    pytest.param({"y/data/load.csv": 600}, "data/load.csv",
                 ["trace not found: ../x/data/load.csv", "data/load.csv is a file relative to the working directory "
                  "({root}/y)", "write file: ../y/data/load.csv"], id="only-from-the-working-directory-says-the-fix"),
    pytest.param({"y/load.csv": 600}, "load", ["trace not found: ../x/load (next to the scenario file)",
                                              "write file: ../y/load.csv"],
                 id="only-from-the-working-directory-without-csv"),
    pytest.param({}, "{root}/nowhere/load.csv", ["trace not found: {root}/nowhere/load.csv"], id="absolute-path-missing"),
]


@pytest.mark.parametrize("files, named, words", NOT_FOUND)
def test_a_missing_trace_names_the_scenario_file_line_field_and_where_it_looked(layout, files, named, words):
    for rel, per_minute in files.items():
        trace_csv(layout / rel, per_minute)
    path = scenario_file(layout, named.format(root=layout))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(Path("../x/scenario.yaml"))
    (error,) = caught.value.errors
    assert (error.file, error.line, error.path) == ("../x/scenario.yaml", TRACE_LINE, TRACE_FIELD)
    for w in words:
        assert w.format(root=layout) in error.message, error.message
    assert path.is_file()


@pytest.mark.parametrize("named, scenario_at, shown", [
    pytest.param("/", "../x/scenario.yaml", "/", id="root"),
    pytest.param(".", "../x/scenario.yaml", "../x", id="dot-in-another-folder"),
    pytest.param(".", "scenario.yaml", ".", id="dot-in-the-working-directory"),
    pytest.param("..", "../x/scenario.yaml", "../x/..", id="dot-dot"),
])
def test_a_trace_path_that_names_no_file_is_refused_as_a_folder(layout, monkeypatch, named, scenario_at, shown):
    """There is no name to add .csv to: it was a ValueError ("PosixPath('/') has an empty name"),
    `setpoint simulate` exit 70 (found by tests/simulators/test_scenario_fuzz.py)."""
    scenario_file(layout, named)
    if scenario_at == "scenario.yaml":
        monkeypatch.chdir(layout / "x")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(Path(scenario_at))
    (error,) = caught.value.errors
    assert (error.file, error.line, error.path) == (scenario_at, TRACE_LINE, "spec.services[0].load[0].trace")
    assert error.message == f"{shown}: is a folder, not a CSV file 'timestamp,value'"


@pytest.mark.parametrize("named, why", [
    pytest.param("x" * 300 + ".csv", "File name too long", id="a-name-over-255-bytes"),
    pytest.param("/" + "/".join(["abcdefgh"] * 600) + ".csv", "File name too long", id="a-path-over-4096-bytes"),
])
def test_a_trace_path_no_file_can_have_is_not_found_at_its_field(layout, named, why):
    """The lookup's OSError escaped load_scenario (`setpoint simulate`: 'setpoint: xxx...: File name
    too long: check the path and its permissions', no file, line or field; found by
    tests/simulators/test_scenario_fuzz.py)."""
    scenario_file(layout, named)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(Path("../x/scenario.yaml"))
    (error,) = caught.value.errors
    assert (error.file, error.line, error.path) == ("../x/scenario.yaml", TRACE_LINE, TRACE_FIELD)
    assert error.message.startswith("trace not found: ") and error.message.endswith(f": {why}"), error.message
    assert len(error.message) < 200


def test_a_scenario_given_as_text_reads_relative_to_its_folder_else_the_working_directory(layout):
    """A scenario that is no file's (tests, benches) has no folder of its own: the working directory."""
    trace_csv(layout / "y" / "load.csv", 600)
    trace_csv(layout / "x" / "load.csv", 1200)
    text = SCENARIO.format(trace="load.csv")
    assert rps(load_scenario_text(text, "<text>")) == pytest.approx(10.0)
    assert rps(load_scenario_text(text, "mine.yaml", folder=layout / "x")) == pytest.approx(20.0)


def test_a_bundled_trace_scenario_reads_its_bare_name_from_the_traces_folder(layout):
    """The bundled scenarios name the shared traces bare; their own folder is the package's."""
    trace_csv(layout / "traces" / "nasa_http_1995_07_requests_1min.csv", 600)
    with pytest.raises(ScenarioError) as caught:  # the fake trace is 30 minutes; the scenario starts 3 days in
        load_scenario("trace-nasa-july")
    assert "trace not found" not in str(caught.value) and "trace.start" in str(caught.value)


def test_sweep_cells_and_scenario_variants_read_traces_next_to_the_scenario(layout, monkeypatch):
    """A sweep's cell runs in a worker (or on a Ray node) from the scenario's text: the folder the
    scenario was read from travels with it (outside the cell's key), and --scenario-set variants
    keep it."""
    from simulators.scenario_set import parse_scenario_settings, scenario_variants, varied_scenario
    from simulators.sweep import Cell, Variant, cell_payload, read_scenario_input, run_cell
    from tests.simulators.sweep_fixtures import DEFAULT_POLICY

    trace_csv(layout / "x" / "data" / "load.csv", 600)
    scenario_file(layout, "data/load.csv")
    given = read_scenario_input("../x/scenario.yaml")
    (variant,) = scenario_variants([given], parse_scenario_settings(["spec.services[*].initialReplicas=3"]))
    assert rps(varied_scenario("../x/scenario.yaml", ["spec.services[*].initialReplicas=3"])) == pytest.approx(10.0)
    policy = Variant("p", "policy", str(DEFAULT_POLICY), Path(DEFAULT_POLICY).read_text(encoding="utf-8"))
    payload = cell_payload(variant, policy, 3)
    monkeypatch.chdir(layout / "traces")  # a worker elsewhere
    assert run_cell(payload)["scores"]["replica_hours"] > 0
    # where it was read is not what it computes: the same cell from another copy of the folder
    moved = dict(payload, scenario_folder="/somewhere/else")
    assert Cell("s", "p", 3, moved).key == Cell("s", "p", 3, payload).key


@pytest.mark.parametrize("trace_at, code, said", [
    pytest.param("x/data/load.csv", 0, "result: ", id="found-next-to-the-scenario"),
    pytest.param("y/data/load.csv", 1, "../x/scenario.yaml:15: spec.services[0].load[0].trace.file: trace not found: "
                                       "../x/data/load.csv (next to the scenario file)", id="refused-from-the-cwd"),
])
def test_cli_simulate_a_scenario_in_another_folder(layout, trace_at, code, said):
    """`setpoint simulate ../x/scenario.yaml` from y/, as the defect was reported."""
    trace_csv(layout / trace_at, 600)
    scenario_file(layout, "data/load.csv")
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "simulate", "../x/scenario.yaml", "--no-frontier",
                           "--no-report", "--jobs", "1", "-b", "hpa", "-o", "out"], cwd=layout / "y",
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == code, proc.stderr[-2000:]
    assert said in (proc.stdout + proc.stderr) and "Traceback" not in proc.stderr
