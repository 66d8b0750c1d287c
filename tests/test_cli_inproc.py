"""tests/support/cli_inproc.py's run_cli against the real thing: the same command as a subprocess
gives the same exit code, stdout and stderr, and the test's process is left as it was."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from controller.core.scaling import compiled
from tests.support.cli_inproc import run_cli

REPO = Path(__file__).resolve().parents[1]
MORE_THAN_CPUS = (os.cpu_count() or 1) + 1  # `--jobs` above it: a Python warning
BAD_SCENARIO = "apiVersion: setpoint/v1\nkind: Scenario\nmetadata: {name: x}\nspec:\n  duration: 5\n"


def subprocess_run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args", [
    pytest.param(["--version"], id="version"),
    pytest.param(["validate", REPO / "policies" / "web-rps.yaml"], id="valid-policy"),
    pytest.param(["validate", "nope.yaml"], id="usage-error-exit-2"),
    pytest.param(["simulate", "bad.yaml"], id="bad-input-exit-1-file-line-field"),
    pytest.param(["simulate", "step", "--no-report", "--no-frontier", "-o", "o", "-b", "hpa",
                  "--scenario-set", "spec.duration=5m"], id="a-score-table-and-progress"),
    pytest.param(["sweep", "step", "--set", "spec.interval=15s,30s", "--jobs", str(MORE_THAN_CPUS), "--no-report",
                  "--no-hpa", "--scenario-set", "spec.duration=5m", "-o", "sw"], id="a-python-warning-and-workers"),
    pytest.param(["explain", "o", "--changes"], id="records-after-a-run"),
])
def test_in_process_says_what_the_subprocess_says(tmp_path, args):
    for side in ("sub", "inproc"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "bad.yaml").write_text(BAD_SCENARIO)
    if args[0] == "explain":  # records to explain
        for side in ("sub", "inproc"):
            assert run_cli("simulate", "step", "--no-report", "--no-frontier", "-o", "o", "--scenario-set",
                           "spec.duration=5m", cwd=tmp_path / side).returncode == 0
    real = subprocess_run(*args, cwd=tmp_path / "sub")
    inproc = run_cli(*args, cwd=tmp_path / "inproc")
    assert (inproc.returncode, inproc.stdout) == (real.returncode, real.stdout)
    assert said_lines(inproc.stderr) == said_lines(real.stderr)
    assert real.stdout or real.stderr  # the row compares something


def said_lines(stderr: str) -> list[str]:
    """``stderr``'s lines sorted, a sweep's "cell K/N: " counts left out: it says its cells as its
    workers finish them, counted in that order (which two processes finish first is a race)."""
    return sorted(re.sub(r"^cell \d+/\d+: ", "cell: ", line) for line in stderr.splitlines())


def test_the_process_is_left_as_it_was(tmp_path):
    cwd, environ, switch = os.getcwd(), dict(os.environ), compiled.switch
    filters = list(warnings.filters)
    # simulate sets the compiled switch (process-wide, and in os.environ for its workers)
    proc = run_cli("simulate", "step", "--no-report", "--no-frontier", "-o", "o", "--scenario-set",
                   "spec.duration=5m", cwd=tmp_path, env={"SETPOINT_TEST_MARK": "1"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "result.json").exists()  # it ran in tmp_path
    assert (os.getcwd(), dict(os.environ), compiled.switch, list(warnings.filters)) == (cwd, environ, switch, filters)


def test_a_warning_shown_by_an_earlier_command_is_shown_again(tmp_path):
    """In one process Python shows a warning once per place; a fresh process would show it again."""
    said = []
    for folder in ("a", "b"):
        proc = run_cli("sweep", "step", "--set", "spec.interval=15s,30s", "--jobs", str(MORE_THAN_CPUS),
                       "--no-report", "--no-hpa", "--scenario-set", "spec.duration=5m", "-o", folder, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        said.append(f"--jobs {MORE_THAN_CPUS}: more worker processes" in proc.stderr)
    assert said == [True, True]


def test_a_root_handler_left_on_a_closed_stream_is_not_the_commands(tmp_path):
    """An earlier in-process `run` (logging.basicConfig) or test left a root handler on a stream
    since closed: the simulation's notices, which propagate to the root, printed "--- Logging error
    ---" tracebacks where a fresh process prints only the notices."""
    closed = io.StringIO()
    left = logging.StreamHandler(closed)
    closed.close()
    logging.getLogger().addHandler(left)
    try:
        proc = run_cli("simulate", "memory-leak", "-p", REPO / "policies" / "setpoint-healing.yaml", "--no-frontier",
                       "--no-report", "--jobs", "1", "-o", "out", cwd=tmp_path)
        assert left in logging.getLogger().handlers  # put back
    finally:
        logging.getLogger().removeHandler(left)
    assert proc.returncode == 0, proc.stderr
    assert "Logging error" not in proc.stderr, proc.stderr
    assert "setpoint: in the simulation (times on the scenario's clock" in proc.stderr
