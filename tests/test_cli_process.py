"""tests/support/cli_process.py's CliProcess against the real thing: a command run in it says what
its own subprocess says; one that kills the process or outlives its timeout fails as that
subprocess would, and the next command runs in a new process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_process import CliProcess

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def commands():
    cli = CliProcess()
    yield cli
    cli.close()


def test_commands_say_what_their_subprocesses_say(commands, tmp_path):
    for args in (["validate", REPO / "policies" / "web-rps.yaml"], ["validate", "nope.yaml"],
                 ["simulate", "--max-memory", "lots"]):
        real = subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        shared = commands.run(*args, cwd=tmp_path)
        assert (shared.returncode, shared.stdout, shared.stderr) == (real.returncode, real.stdout, real.stderr)
        assert real.stdout or real.stderr


def test_a_command_that_kills_the_process_fails_and_the_next_runs_in_a_new_one(tmp_path):
    """A limit the interpreter cannot start under: its death is the command's exit status."""
    starved = CliProcess(limit_bytes=8 * 2**20)
    try:
        proc = starved.run("--version", cwd=tmp_path, timeout_s=60)
        assert proc.returncode != 0
        starved.limit_bytes = None
        assert starved.run("--version", cwd=tmp_path).stdout.startswith("setpoint ")
    finally:
        starved.close()


def test_a_command_past_its_timeout_is_killed_and_the_next_runs_in_a_new_one(commands, tmp_path):
    (tmp_path / "tiny.yaml").write_text((REPO / "simulators" / "scenarios" / "steady.yaml").read_text())
    with pytest.raises(subprocess.TimeoutExpired):  # sim serve serves until stopped
        commands.run("sim", "serve", "tiny.yaml", "--kube-listen", "127.0.0.1:0", "--no-auth", cwd=tmp_path,
                     timeout_s=15)
    assert commands.run("--version", cwd=tmp_path).stdout.startswith("setpoint ")
