"""Property-based fuzz of scenario loading: every bundled scenario mutated structurally
(tests/support/structural.py: a key deleted, a value of another type, huge, negative, nan/inf, a
duration where a number goes and back, a duplicated list item, swapped siblings, a wrong enum, a
misspelt or unknown key) and its trace terms pointed at other paths (next to the scenario, up
from it, absolute, a folder, /, ., a bad CSV, a name no file can have ...), read from a file in a
folder of its own as `setpoint simulate` reads one.

Properties: load_scenario returns a scenario or raises ScenarioError, nothing else; every error
names the file, a line of it and a field path that is in the file (or whose parent is), at that
field's line, never in pydantic's words; the errors are the same whatever the order of the keys;
a rewrite that changes nothing (keys reordered, a duration in other units, a default left out)
loads the same scenario; and `setpoint simulate` on an invalid one exits 1 with the same lines.

Budgets: see tests/policy/test_structural_fuzz.py (SETPOINT_FUZZ_EXAMPLES=N to hunt).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from controller.cli import app
from controller.errors import ScenarioError
from simulators.load import traces_dir
from simulators.scenario import load_scenario
from tests.support import structural as S

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "simulators" / "scenarios").glob("*.yaml"))
SOURCES = {p.name: S.documents(p) for p in SCENARIOS}
TRACES = traces_dir().is_dir()
#: What a trace term's file: may become, beside the mutations of every field (the folder: FOLDER).
TRACE_FILES = ["local.csv", "local", "./local.csv", "sub/deep.csv", "sub/deep", "../x/local.csv", "{folder}/local.csv",
               "bad.csv", "folder.csv", "sub", "sub/", ".", "..", "/", "/dev/null", "missing.csv", " ",
               "nasa_http_1995_07_requests_1min", "../../etc/passwd", "~/x.csv", "*.csv", "x" * 300,
               "/" + "/".join(["abcdefgh"] * 600), "README.md", "/proc/self/status", "a\0b.csv", "é.csv"]
ROWS = ["timestamp,value"] + [f"2020-01-01T00:{m:02d}:00Z,{60 * (m + 1)}" for m in range(30)]

FUZZ = {"deadline": None, "derandomize": S.DERANDOMIZE,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
sources = st.sampled_from(sorted(SOURCES))
changes = st.lists(st.tuples(st.sampled_from(S.KINDS), st.integers(0, 10**6), st.integers(0, 10**6)),
                   min_size=1, max_size=4)
trace_files = st.none() | st.sampled_from(TRACE_FILES)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """x/ for the scenario file, with traces beside it and under it, a bad one and a folder named .csv."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "x" / "sub").mkdir(parents=True)
    for rel in ("x/local.csv", "x/sub/deep.csv"):
        (root / rel).write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    (root / "x" / "bad.csv").write_text("timestamp,value\n2020-01-01T00:00:00Z,1\n2020-01-01T00:00:00Z,2\n")
    (root / "x" / "folder.csv").mkdir()
    return root / "x"


def with_trace_file(documents: list, file: str | None, folder: Path) -> list:
    """``documents`` with every trace term's file: set to ``file`` (None: as they are)."""
    if file is not None:
        for value in S.walk_values(documents):
            if isinstance(value, dict) and isinstance(value.get("trace"), dict):
                value["trace"]["file"] = file.format(folder=folder)
    return documents


def load(path: Path, text: str):
    """(the scenario, []) or (None, its errors, each checked to name the file, line and field)."""
    path.write_text(text, encoding="utf-8")
    try:
        return load_scenario(path), []
    except ScenarioError as exc:
        assert exc.errors
        S.assert_placed(text, str(path), exc.errors)
        return None, exc.errors


@settings(max_examples=S.budget(300), **FUZZ)
@given(source=sources, changes=changes, trace=trace_files, flow=st.sampled_from([False, None]),
       order=st.integers(0, 2**32))
def test_a_mutated_scenario_loads_or_is_rejected_at_its_fields_whatever_its_key_order(folder, source, changes, trace,
                                                                                     flow, order):
    documents = with_trace_file(S.mutated(SOURCES[source], changes), trace, folder)
    path = folder / "scenario.yaml"
    _, errors = load(path, S.dump(documents, flow))
    if errors:
        _, reordered = load(path, S.dump(S.shuffled(documents, order), flow))
        assert S.comparable(reordered) == S.comparable(errors)


@settings(max_examples=S.budget(80), **FUZZ)
@given(source=sources, rewrites=st.lists(st.tuples(st.sampled_from(("order", "duration", "default")),
                                                   st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=6),
       flow=st.sampled_from([False, None]))
def test_a_rewrite_that_changes_nothing_loads_the_same_scenario(folder, source, rewrites, flow):
    if source.startswith("trace-") and not TRACES:
        return  # the shared traces folder is absent: these do not load as written either
    documents = SOURCES[source]
    for kind, at, choice in rewrites:
        documents = S.equivalent(documents, kind, at, choice)
    scenario, errors = load(folder / "rewritten.yaml", S.dump(documents, flow))
    assert not errors, [str(e) for e in errors]
    expected, _ = load(folder / "rewritten.yaml", S.dump(SOURCES[source]))
    assert repr(scenario) == repr(expected)


@settings(max_examples=S.budget(50), **FUZZ)
@given(source=sources, changes=changes, trace=trace_files)
def test_simulate_on_an_invalid_scenario_exits_1_with_its_errors(folder, source, changes, trace):
    path = folder / "simulated.yaml"
    scenario, errors = load(path, S.dump(with_trace_file(S.mutated(SOURCES[source], changes), trace, folder)))
    if scenario is not None:
        return  # a valid one would be simulated: tests/simulators/test_cli_simulate.py
    result = CliRunner().invoke(app, ["simulate", str(path), "--no-report", "--no-frontier", "-b", "hpa",
                                      "-o", str(folder / "out")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.splitlines() == [str(e) for e in errors]
