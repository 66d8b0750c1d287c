"""Stopping ``setpoint sweep --ray local`` (simulators/sweep_ray.py): a Ctrl-C or SIGTERM while a cell
runs ends the command with its "interrupted" line and 130 / 143 within a bound, the finished cells
kept, and no process of the local Ray instance it started left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from tests.simulators.sweep_fixtures import TARGET, kill_group, stop_command, write_scenarios  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

#: ``python -c RAY_SLOW_CELL MARKER HANG setpoint-args...``: the command, whose cells of a scenario
#: file named ``slow*.yaml`` ignore SIGTERM, touch MARKER and sleep (at most 120 s) on their Ray worker,
#: as one blocked in native code (the patched run_cell, defined here, travels to the worker by value).
#: HANG "1": the stop's ray.shutdown never returns (a fault Ray cannot be made to show on demand).
RAY_SLOW_CELL = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal, even if inherited ignored
marker, hang = sys.argv.pop(1), sys.argv.pop(1) == "1"
from simulators import sweep, sweep_ray
sweep_ray.RAY_STOP_S = 3.0
real_run_cell = sweep.run_cell
def run_cell(payload, on_fraction=None, marker=marker):
    if os.path.basename(payload["scenario_path"]).startswith("slow"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(marker, "w").close()
        time.sleep(120)
    return real_run_cell(payload, on_fraction)
sweep_ray.run_cell = run_cell
if hang:
    import ray
    def shutdown(*args, **kwargs):
        time.sleep(600)
    ray.shutdown = shutdown
sys.argv[0] = "setpoint"
from controller.cli import main
main()
"""


def _family(pid: int) -> set[tuple[int, str]]:
    """``pid``'s live descendants, each as (pid, start time): Ray's GCS, raylet and workers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(stat.parent.name)
        if fields:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if (fields := _stat(child)) and fields[0] != "Z":
                out.add((child, fields[19]))
            todo.append(child)
    return out


def _stat(pid) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _still_alive(family: set[tuple[int, str]]) -> list[int]:
    return [pid for pid, start in family if (fields := _stat(pid)) and fields[0] != "Z" and fields[19] == start]


#: Seconds the stop may take: the cancel, Ray's shutdown (or RAY_STOP_S = 3 s of it, then the kill),
#: the exit, on a loaded 2-core machine.
STOP_BOUND_S = 15.0


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig, code, hang", [
    pytest.param(signal.SIGTERM, 143, False, id="sigterm"),
    pytest.param(signal.SIGINT, 130, False, id="ctrl-c"),
    pytest.param(signal.SIGINT, 130, True, id="ctrl-c-ray-shutdown-hangs"),
])
def test_a_stopped_ray_sweep_ends_within_its_bound_keeps_the_finished_cells_and_leaves_no_ray_process(
        tmp_path, sig, code, hang):
    """sigterm: ray.init put Ray's SIGTERM handler in place of the command's: "*** SIGTERM received",
    exit -6 (or 1), no "interrupted" line. ctrl-c and ctrl-c-ray-shutdown-hangs (the stop's
    ray.shutdown bounded: the instance's processes killed after RAY_STOP_S) passed before too."""
    files = write_scenarios(tmp_path, {"a": (1, 700), "slow": (3, 700)}, duration="4m")
    out, marker = tmp_path / "out", tmp_path / "slow-cell-running"
    proc = subprocess.Popen([sys.executable, "-c", RAY_SLOW_CELL, str(marker), "1" if hang else "0", "sweep", *files,
                             "--set", f"{TARGET}=60", "--no-hpa", "--ray", "local", "--jobs", "2", "-o", str(out),
                             "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "CI": "true"}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    family: set[tuple[int, str]] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not (
                marker.exists() and len(list(out.glob("cells/*.json"))) == 1):
            family |= _family(proc.pid)
            time.sleep(0.2)
        family |= _family(proc.pid)
        assert proc.poll() is None and marker.exists(), "the slow cell never started"
        assert len(list(out.glob("cells/*.json"))) == 1, "the other cell did not finish"
        err, took = stop_command(proc, sig, STOP_BOUND_S + 30)
    finally:
        kill_group(proc)
        left = _still_alive(family)
        for pid in left:  # nothing of a failed run lingers on the machine
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert "interrupted: the finished cells are kept in" in err, err
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    assert took < STOP_BOUND_S, f"stopped in {took:.1f} s"
    assert left == [], f"{len(left)} of the {len(family)} Ray processes outlived the command"
    assert len(list(out.glob("cells/*.json"))) == 1  # what finished is kept: the same command resumes there
