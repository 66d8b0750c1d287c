"""What a sweep trusts and what it writes: a stored cell is reused only for the same computation
(the traces it replays included, wherever the command runs from), a cell file that is not that
cell's is set aside, outputs of an earlier run never stand beside a new one's, and an
interrupted sweep stops its workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators import output as output_module
from simulators import sweep as sweep_module
from simulators.sweep import CellStore, build_grid, record_problem, run_cell, run_grid
from simulators.parallel import STOP_GRACE_S, STOP_NOTICE_S, stop_workers
from tests.simulators.sweep_fixtures import (DEFAULT_POLICY, SIGNAL_AT_FORK, STUCK_CELL, TARGET, kill_group, stop_command,
                                             write_scenarios)
from tests.simulators.test_parallel_signals import _left_in_group

REPO = Path(__file__).resolve().parents[2]

TRACE_SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: replay}
spec:
  duration: 20m
  tick: 5s
  seed: 1
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 30
      load:
        - trace: {file: TRACE}
"""


def write_trace(path: Path, per_minute: list[float]) -> Path:
    rows = [f"2020-01-01T00:{m:02d}:00Z,{v}" for m, v in enumerate(per_minute)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def trace_grid(tmp_path: Path):
    scenario = tmp_path / "replay.yaml"
    scenario.write_text(TRACE_SCENARIO.replace("TRACE", str(tmp_path / "load.csv")), encoding="utf-8")
    return build_grid([str(scenario)], [str(DEFAULT_POLICY)], [], seeds=1)


def test_an_edited_trace_makes_its_cells_run_again_with_the_new_load(tmp_path):
    write_trace(tmp_path / "load.csv", [15000.0] * 25)
    store = CellStore(tmp_path / "cells")
    first = trace_grid(tmp_path).cells()
    before = run_grid(first, store)[first[0].key]["scores"]["replica_hours"]
    write_trace(tmp_path / "load.csv", [45000.0] * 25)  # three times the load, the same scenario text
    again = trace_grid(tmp_path).cells()
    assert again[0].key != first[0].key
    cached = []
    after = run_grid(again, store, on_cell=lambda c, done, total, stored: cached.append(stored))
    assert cached == [False] and after[again[0].key]["scores"]["replica_hours"] > 2 * before


def test_a_cell_whose_trace_changed_since_the_grid_was_built_refuses_to_run(tmp_path):
    write_trace(tmp_path / "load.csv", [15000.0] * 25)
    (cell,) = trace_grid(tmp_path).cells()
    write_trace(tmp_path / "load.csv", [15000.0] * 24 + [15001.0])  # as on a node with another copy
    with pytest.raises(RuntimeError, match="a trace it replays is not the one the sweep started with"):
        run_cell(cell.payload)


def test_a_cells_key_does_not_depend_on_the_folder_the_command_runs_from(tmp_path, monkeypatch):
    (tmp_path / "scenarios").mkdir()
    write_scenarios(tmp_path / "scenarios", {"tiny": (1, 700)})
    monkeypatch.chdir(tmp_path)
    here = build_grid(["scenarios/tiny.yaml"], [str(DEFAULT_POLICY)], [f"{TARGET}=60"], seeds=1).cells()
    monkeypatch.chdir(tmp_path / "scenarios")  # the same files, shown by other relative paths
    there = build_grid(["tiny.yaml"], [os.path.relpath(DEFAULT_POLICY)], [f"{TARGET}=60"], seeds=1).cells()
    assert here[0].payload["scenario_path"] != there[0].payload["scenario_path"]
    assert [c.key for c in here] == [c.key for c in there]


GOOD = {"slo_violation_minutes": 1.0, "replica_hours": 2.5, "replica_changes": 3, "reversals": 0,
        "mitigation_seconds": {}}


@pytest.mark.parametrize("record, problem", [
    pytest.param({"key": "k", "scores": GOOD}, None, id="its-own"),
    pytest.param({"key": "other", "scores": GOOD}, "another cell", id="another-cells-file-copied-over"),
    pytest.param({"scores": GOOD}, "another cell", id="no-key"),
    pytest.param({"key": "k", "scores": GOOD | {"replica_hours": -1.0}}, "replica_hours: expected a number >= 0",
                 id="negative-hours"),
    pytest.param({"key": "k", "scores": GOOD | {"replica_changes": 2.5}}, "replica_changes: expected a whole number",
                 id="fractional-count"),
    pytest.param({"key": "k", "scores": GOOD | {"mitigation_seconds": {"f": -3}}}, "mitigation_seconds",
                 id="negative-mitigation"),
])
def test_a_stored_record_is_used_only_when_it_is_that_cells_and_its_scores_can_be(record, problem):
    found = record_problem(record, "k")
    assert (found is None) if problem is None else (problem in found), found


class Broken(Exception):
    pass


def test_a_simulation_killed_while_writing_leaves_no_result_beside_an_earlier_runs_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in output_module.OUTPUT_FILES:
        (out / name).write_text("an earlier run's\n")

    def fail(*_):
        raise Broken

    monkeypatch.setattr(output_module, "write_decisions", fail)  # dies after the earlier files went
    with pytest.raises(Broken):
        output_module.write_outputs(None, {}, out, 0.0)
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_run_without_a_report_removes_the_earlier_runs_report(tmp_path, monkeypatch):
    from simulators.sweep_result import write_result

    (tmp_path / "report.html").write_text("the 60/80 sweep's plots")
    monkeypatch.setattr("simulators.sweep_result.result_json", lambda r: {"scenarios": []})
    paths = write_result({}, tmp_path, report=False)
    assert list(paths) == ["result"] and not (tmp_path / "report.html").exists()


def test_no_more_workers_than_cells(tmp_path, monkeypatch):
    (path,) = write_scenarios(tmp_path, {"tiny": (1, 700)}, duration="4m")
    cells = build_grid([path], [str(DEFAULT_POLICY)], [f"{TARGET}=60,90"], seeds=1).cells()
    asked = []
    real = sweep_module.local_pool
    monkeypatch.setattr(sweep_module, "local_pool", lambda jobs, *a, **kw: asked.append(jobs) or real(jobs, *a, **kw))
    run_grid(cells, CellStore(tmp_path / "cells"), jobs=64)
    assert asked == [2]


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found = []
    for task in tasks.iterdir() if tasks.exists() else []:
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(x) for x in text.split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_sigterm_stops_a_sweep_and_its_workers_and_says_how_to_resume(tmp_path):
    # cells that last: the first runs in the command (4 minutes), the workers' sleep (STUCK_CELL's slow*.yaml:
    # long cells without the CPU; they were 3-day simulations)
    slow = write_scenarios(tmp_path, {"slow": (1, 700)}, duration="4m")
    cmd = [sys.executable, "-c", STUCK_CELL, str(tmp_path / "slow-cell-started"), "sweep", *slow, "--set",
           f"{TARGET}=60,70,80,90", "--no-hpa", "--jobs", "2", "-o", str(tmp_path / "out"), "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "CI": "true"})
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        workers = _children(proc.pid)
    assert len(workers) >= 2, "the workers never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "interrupted: the finished cells are kept in" in err and "Traceback" not in err
    time.sleep(1)
    assert [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in
            Path(f"/proc/{w}/status").read_text().lower()] == []




@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork on Linux only")
@pytest.mark.parametrize("sig, code", [
    pytest.param(signal.SIGTERM, 143, id="sigterm"),
    pytest.param(signal.SIGINT, 130, id="ctrl-c"),
])
def test_a_signal_while_the_workers_fork_stops_the_sweep_after_the_forks_without_a_traceback(tmp_path, sig, code):
    (path,) = write_scenarios(tmp_path, {"short": (1, 700)}, duration="1h")
    cmd = [sys.executable, "-c", SIGNAL_AT_FORK, str(int(sig)), "2", "sweep", path, "--set", f"{TARGET}=60,70,80,90",
           "--no-hpa", "--jobs", "2", "-o", str(tmp_path / "out"), "--no-report"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "CI": "true"}, timeout=120)
    assert done.returncode == code, done.stderr
    assert "interrupted: the finished cells are kept in" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    # at the second fork (the last worker's), as under load when the test above saw the last worker and
    # signalled before the command was back from forking it; stopped as the forks ended: only the cell
    # this process ran before forking is stored (the workers' are lost)
    assert len(list((tmp_path / "out" / "cells").glob("*.json"))) == 1


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_at_a_terminal_stops_a_sweep_without_its_idle_workers_speaking(tmp_path):
    """Ctrl-C at a terminal sends SIGINT to the whole process group: the workers too. A worker
    idle between cells (a tune's between trials, one done while another runs a long cell) then
    died of a KeyboardInterrupt outside any cell, printing multiprocessing's "Process
    ForkProcess-2:" and its traceback under "interrupted: ..."; the command alone stops them."""
    # the costliest cell first, in this process (it warms the kernels the workers fork with); then one
    # worker runs the long cell (the next costliest) while the other runs the tiny ones and waits,
    # idle. The long cell sleeps in its worker (STUCK_CELL's slow*.yaml): long however late the other
    # worker starts on a loaded machine, without the CPU of a 30-day simulation (22 s of the suite's)
    first = write_scenarios(tmp_path, {"first": (8, 700)}, duration="8m")
    slow = write_scenarios(tmp_path, {"slow": (9, 700)}, duration="6m")
    tiny = write_scenarios(tmp_path, {f"tiny{i}": (i, 700) for i in range(1, 4)}, duration="4m")
    out, marker = tmp_path / "out", tmp_path / "slow-cell-started"
    cmd = [sys.executable, "-c", STUCK_CELL, str(marker), "sweep", *first, *slow, *tiny, "--set", f"{TARGET}=60",
           "--no-hpa", "--jobs", "2", "-o", str(out), "--no-report"]
    # as at a terminal: SIGINT's default action (a test run in the background, as CI's may be,
    # inherits it ignored, and so would the sweep: it would run to its end)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "CI": "true"}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("cells/*.json"))) < 4:
        time.sleep(0.1)
    assert proc.poll() is None and len(list(out.glob("cells/*.json"))) == 4, "not one long cell left running"
    assert marker.exists(), "the long cell is not the one left running"
    time.sleep(0.5)  # the worker that ran them waits for another
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted: the finished cells are kept in" in err
    assert "Traceback" not in err and "ForkProcess" not in err and "KeyboardInterrupt" not in err, err
    assert "stopping" not in err, err  # workers that end at SIGTERM are not waited for: nothing to say


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers fork on Linux only")
def test_a_worker_reaped_by_the_pools_own_thread_is_not_taken_for_one_stuck_past_sigterm():
    """The pool's executor has a thread that joins every worker once one ends, racing the command's
    stop for their exit statuses: the stop's waitpid then failed (ECHILD), multiprocessing read that
    as "still running", and a worker that had ended at once at SIGTERM was reported stuck and killed
    ("stopping 1 worker ... killed 1 worker still running 5 s after SIGTERM", both at once: the rare
    failure of the Ctrl-C test above under load). Here that thread's join is the test's waitpid."""
    proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,), daemon=True)
    proc.start()
    os.kill(proc.pid, signal.SIGTERM)
    os.waitpid(proc.pid, 0)  # reaped elsewhere: its exit code is unknown to ``proc``
    said: list[str] = []
    started = time.monotonic()
    stop_workers([proc], say=said.append)
    assert said == [] and time.monotonic() - started < STOP_NOTICE_S


#: Seconds a stopped command may take beyond the stuck worker's grace (its kill, reaping, the exit).
STOP_MARGIN_S = 4.0


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="workers fork on Linux only; needs /proc")
@pytest.mark.parametrize("command, sig, code, twice", [
    pytest.param("sweep", signal.SIGTERM, 143, False, id="sweep-sigterm"),
    pytest.param("sweep", signal.SIGINT, 130, False, id="sweep-ctrl-c"),
    pytest.param("sweep", signal.SIGINT, 130, True, id="sweep-ctrl-c-twice"),
    pytest.param("tune", signal.SIGTERM, 143, False, id="tune-sigterm"),
])
def test_a_stopped_sweep_kills_a_worker_stuck_past_sigterm_and_keeps_the_finished_cells(tmp_path, command, sig, code,
                                                                                        twice):
    """A worker that does not end at SIGTERM (blocked in native code; here one that ignores it, the
    STUCK_CELL hook) outlived the pool's terminate(), and the executor's shutdown waited for it:
    the command hung for ever after its "interrupted" line. Now killed STOP_GRACE_S after.
    ``twice``: a second Ctrl-C during that grace (an impatient user) raised inside the stop and
    skipped the kill, leaving the stuck worker behind the command."""
    files = write_scenarios(tmp_path, {name: (i, 700) for i, name in enumerate(("a", "b", "c", "stuck"), 1)},
                            duration="4m")
    out, marker = tmp_path / "out", tmp_path / "stuck-worker-ready"
    args = (["sweep", *files, "--set", f"{TARGET}=60", "--no-hpa", "-o", str(out), "--no-report"] if command == "sweep"
            else ["tune", str(DEFAULT_POLICY), "--scenarios", ",".join(files), "--set", f"{TARGET}=60,90", "--trials", "2",
                  "--max-violation-minutes", "100", "--work", str(out), "-o", str(tmp_path / "tuned.yaml")])
    # a session of its own, as a terminal's foreground job: Ctrl-C reaches the whole group, the
    # workers too (they ignore it); SIGTERM the command alone, as kill(1) or a service manager sends it
    proc = subprocess.Popen([sys.executable, "-c", STUCK_CELL, str(marker), *args, "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "CI": "true"}, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # the first cell runs in the command (it warms the workers' fork), then a, b and stuck on two workers
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not (
                marker.exists() and len(list(out.glob("cells/*.json"))) == 3):
            time.sleep(0.1)
        assert proc.poll() is None and marker.exists(), "the stuck worker never started"
        assert len(list(out.glob("cells/*.json"))) == 3, "the other cells did not finish"
        # twice: the second inside the grace, the stuck worker got SIGTERM and is waited for
        err, took = stop_command(proc, sig, STOP_GRACE_S + 30, again_after_s=1.0 if twice else None)
    finally:
        kill_group(proc)
    assert proc.returncode == code, err
    assert "interrupted: the finished cells are kept in" in err and "Traceback" not in err, err
    # what the stop waits for, said once as it starts waiting (it was silent for the grace), then the kill
    said = [line for line in err.splitlines() if line.startswith(("stopping", "killed"))]
    assert said == [f"stopping 1 worker (waiting up to {STOP_GRACE_S:g} s) ...",
                    f"killed 1 worker still running {STOP_GRACE_S:g} s after SIGTERM"], err
    assert took < STOP_GRACE_S + STOP_MARGIN_S, f"stopped in {took:.1f} s"
    assert _left_in_group(proc.pid) == []  # the stuck worker killed and reaped before the command exited
    assert len(list(out.glob("cells/*.json"))) == 3  # what finished is kept: the same command resumes there
