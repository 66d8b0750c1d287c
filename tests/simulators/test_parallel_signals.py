"""Stopping a simulation whose controllers run in worker processes (simulators/parallel.py): Ctrl-C
or SIGTERM at any moment, the workers' start included, ends the command with its "interrupted"
line and 130 / 143, nothing written, no traceback, no worker left; a worker has its own handlers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators import parallel
from simulators.runner import run_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.sweep_fixtures import SIGNAL_AT_FORK, write_scenarios
from tests.simulators.test_lockstep import SCENARIO, run_view, specs

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="workers fork on Linux only; needs /proc")


def _left_in_group(pgid: int) -> list[str]:
    """The processes alive (not zombies) in process group ``pgid``: 'PID NAME' each."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().rsplit(")", 1)
        except OSError:  # ended meanwhile
            continue
        state, _, group = fields.split()[:3]
        if int(group) == pgid and state != "Z":
            left.append(f"{stat.parent.name} {name.split('(', 1)[1]}")
    return left


def _simulate(tmp_path: Path, harness: str, *harness_args: str) -> tuple[subprocess.CompletedProcess, Path, int]:
    """``setpoint simulate --jobs 2`` of a 3-hour scenario (long enough to fork a worker) through
    ``harness`` (python -c), in a session of its own as a terminal's foreground job: what it did,
    its --out folder, its process group (the command's and its workers')."""
    (path,) = write_scenarios(tmp_path, {"three-hours": (1, 700)}, duration="3h")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", harness, *harness_args, "simulate", path, "--jobs", "2",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "CI": "true"}, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), out, proc.pid


def _assert_stopped_cleanly(done: subprocess.CompletedProcess, code: int, out: Path, pgid: int) -> None:
    assert done.returncode == code, done.stderr
    assert "interrupted: nothing written to" in done.stderr, done.stderr
    for said in ("Traceback", "Exception ignored", "KeyboardInterrupt", "Process setpoint-sim"):
        assert said not in done.stderr, done.stderr
    assert not (out / "result.json").exists() and not (out / "decisions.jsonl").exists()
    assert _left_in_group(pgid) == []  # the command reaps its workers before it exits: none orphaned


@linux_only
@pytest.mark.parametrize("sig, code", [
    pytest.param(signal.SIGTERM, 143, id="sigterm"),
    pytest.param(signal.SIGINT, 130, id="ctrl-c"),
])
def test_a_signal_while_a_simulation_forks_its_worker_stops_it_without_a_traceback(tmp_path, sig, code):
    """The simulation process has native threads (numba's, BLAS') here, so the signal may reach one
    of them: the handler then ran inside logging's after-fork hook, its raise lost, and the
    simulation ran on to its end (exit 0, result.json written) under a traceback. SIGTERM's was
    fixed first; SIGINT kept Python's own handler, so Ctrl-C there was still lost so."""
    done, out, pgid = _simulate(tmp_path, SIGNAL_AT_FORK, str(int(sig)), "1")
    _assert_stopped_cleanly(done, code, out, pgid)


#: ``python -c CTRL_C_AT_WORKER_START setpoint-args...``: the command, with a Ctrl-C (SIGINT to its
#: whole process group, as a terminal sends it) from each worker it forks, first thing after the
#: fork, by kill(2) through ctypes (no Python frame of its own: the handlers run in the worker's
#: bootstrap and wherever the command is then).
CTRL_C_AT_WORKER_START = """
import ctypes, functools, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal, even if inherited ignored
os.register_at_fork(after_in_child=functools.partial(ctypes.CDLL(None).kill, 0, signal.SIGINT))
sys.argv[0] = "setpoint"
from controller.cli import main
main()
"""


@linux_only
def test_ctrl_c_while_a_worker_starts_stops_the_simulation_and_the_worker_quietly(tmp_path):
    """The worker kept Python's SIGINT handler: its KeyboardInterrupt came out of multiprocessing's
    bootstrap as "Process setpoint-sim-1:" and a traceback, under the command's own."""
    done, out, pgid = _simulate(tmp_path, CTRL_C_AT_WORKER_START)
    _assert_stopped_cleanly(done, 130, out, pgid)


#: ``python -c STOPPED_WITH_SIGTERM_IGNORED``: run_controllers over two processes in a program that
#: ignores SIGTERM (a worker forked from it inherited that), stopped by Ctrl-C (a real SIGINT) at
#: its first tick; prints how long it took to stop from there and the worker processes left alive.
STOPPED_WITH_SIGTERM_IGNORED = """
import multiprocessing, os, signal, sys, time
from simulators import parallel
from simulators.scenario import load_scenario_text
from simulators.runner import run_controllers
from tests.simulators.test_lockstep import SCENARIO, specs
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.default_int_handler)
parallel.MIN_PARALLEL_TICKS = 0
workers, sent = [], []
def first_tick(k):
    if not workers:
        workers.extend(p.pid for p in multiprocessing.active_children())
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)
sc = load_scenario_text(SCENARIO.format(duration="3h"), "lockstep.yaml")
try:
    run_controllers(sc, specs()[:2], keep_records=[True, False], on_ticks=[first_tick, None], jobs=2)
    print("ran to its end")
except KeyboardInterrupt:
    print("stopped in", round(time.monotonic() - sent[0], 1), "s")
alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" != open(f"/proc/{w}/stat").read().rsplit(")", 1)[1].split()[0]]
print("workers", len(workers), "alive", len(alive), flush=True)
"""


@linux_only
def test_a_stopped_simulation_ends_its_workers_whatever_sigterm_handler_they_were_forked_with():
    """A worker kept the SIGTERM handler of the process that forked it: there SIG_IGN, so the stop's
    terminate() did nothing and join() waited for ever (here: the timeout)."""
    done = subprocess.run([sys.executable, "-c", STOPPED_WITH_SIGTERM_IGNORED], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stopped in") and float(lines[0].split()[2]) < parallel.STOP_GRACE_S, done.stdout
    assert lines[1] == "workers 1 alive 0", done.stdout + done.stderr


@linux_only
def test_a_ctrl_c_that_reaches_a_worker_alone_is_left_to_the_command(monkeypatch):
    """A worker kept Python's SIGINT handler: its KeyboardInterrupt failed its group, and the
    command raised it as its own though nobody had interrupted the command."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_TICKS", 0)
    sc = load_scenario_text(SCENARIO.format(duration="30m"), "lockstep.yaml")
    sent: list[int] = []
    ticks = 30 * 60 // 5

    def worker_ticked(k: int) -> None:
        # the worker's progress, relayed here: it has set its own handlers by its first tick
        # (take_worker_signals runs first) and is still running until its last (``ticks``)
        if not sent and k < ticks:
            (worker,) = [p for p in multiprocessing.active_children() if p.name == "setpoint-sim-1"]
            os.kill(worker.pid, signal.SIGINT)
            sent.append(worker.pid)

    try:
        shared = run_controllers(sc, specs()[:2], keep_records=[True, False],
                                 on_ticks=[None, worker_ticked], jobs=2)
    except KeyboardInterrupt:  # not left to reach pytest: it would end the whole session
        pytest.fail("the worker's Ctrl-C was raised here")
    assert sent
    assert [run_view(r) for r, _ in shared] == [run_view(r) for r, _ in run_controllers(sc, specs()[:2],
                                                                                        keep_records=False)]


def _sleep_as_a_worker(ready) -> None:
    """A worker that ends at SIGTERM (its own default handler, as take_worker_signals sets it: the
    test process may hold another, e.g. Ray's from a ray.init in an earlier test, which exits 15)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ready.set()
    time.sleep(60)


def _ignore_sigterm_then_wait(ready) -> None:
    """A worker stuck past SIGTERM (a real process ignoring it, as one in a C call that blocks it)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(60)


@linux_only
@pytest.mark.parametrize("target, exitcode", [
    pytest.param("sleep", -signal.SIGTERM, id="ends-at-sigterm"),
    pytest.param("ignore-sigterm", -signal.SIGKILL, id="stuck-killed-after-the-grace"),
])
def test_stop_workers_ends_each_within_its_grace(target, exitcode):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_ignore_sigterm_then_wait if target == "ignore-sigterm" else _sleep_as_a_worker,
                       args=(ready,), daemon=True)
    proc.start()
    assert ready.wait(30)
    started = time.monotonic()
    parallel.stop_workers([proc, ctx.Process(target=time.sleep, args=(0,))], grace_s=0.5)  # one never started
    assert time.monotonic() - started < 2.0
    assert proc.exitcode == exitcode


#: A command's process (main()'s SIGTERM handler set, as `setpoint simulate` has it) forks a worker
#: that is sent SIGTERM before it sets its own handler: the command ends its workers so as it stops.
WORKER_TERMINATED_AT_START = """
import multiprocessing, os, signal, sys
from controller.cli import root
root._options["pid"] = os.getpid()
signal.signal(signal.SIGTERM, root._terminated)
def first_thing():
    os.kill(os.getpid(), signal.SIGTERM)
    print("worker went on", flush=True)
p = multiprocessing.get_context("fork").Process(target=first_thing, name="setpoint-sim-1")
p.start(); p.join(60)
print("exitcode", p.exitcode, flush=True)
"""


@linux_only
def test_a_worker_sigtermed_before_its_own_handler_dies_quietly_as_by_default():
    """The race behind a rare traceback in the test above: the command stops a worker still in
    multiprocessing's bootstrap, whose inherited handler raised Terminated there ("Process
    setpoint-sim-1: Traceback ... Terminated" under the command's "interrupted" line)."""
    done = subprocess.run([sys.executable, "-c", WORKER_TERMINATED_AT_START], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["exitcode", str(-signal.SIGTERM)], done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


#: ``python -c POOL_WORKER_SLEEPING METHOD``: a sweep's pool of one local worker started by METHOD
#: ("fork" or "forkserver", as parallel.start_method() picks when the command has other threads),
#: given a cell that sleeps; prints the worker's pid and sleeps (the test kills it meanwhile).
POOL_WORKER_SLEEPING = """
import sys, time
from simulators.sweep import local_pool
pool = local_pool(1, sys.argv[1])
pool.start().submit(time.sleep, 60)
while not pool.executor._processes:
    time.sleep(0.05)
print(*pool.executor._processes, flush=True)
time.sleep(60)
"""


def _signal_bits(pid: int) -> dict[str, set[int]]:
    """SigBlk / SigIgn / SigCgt of ``pid`` (/proc/PID/status) as sets of signal numbers."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: {s for s in range(1, 65) if int(fields[k], 16) >> (s - 1) & 1} for k in ("SigBlk", "SigIgn", "SigCgt")}


def _signals_taken(bits: dict[str, set[int]]) -> bool:
    """take_worker_signals has run to its end: SIGINT ignored, and neither stop signal held any more."""
    return signal.SIGINT in bits["SigIgn"] and not {signal.SIGINT, signal.SIGTERM} & bits["SigBlk"]


def _where_it_waits(pid: int) -> str:
    """What process ``pid`` and each of its threads is doing, for a failure's message: state, parent,
    age, and per thread its wait channel, system call (/proc/PID/task/TID/syscall: number, then
    arguments) and the top of its kernel stack (root only). Session 36 saw a forkserver worker
    that had not run its initializer 30 s after it started, once in six CI runs, cause unknown."""
    def read(path: Path) -> str:
        try:
            return path.read_text().strip()
        except OSError as exc:
            return f"<{exc.strerror}>"

    proc = Path(f"/proc/{pid}")
    status = dict(line.split(":", 1) for line in read(proc / "status").splitlines() if ":" in line)
    fields = read(proc / "stat").rsplit(")", 1)[-1].split()
    ticks, uptime = os.sysconf("SC_CLK_TCK"), float(read(Path("/proc/uptime")).split()[0])
    age = uptime - int(fields[19]) / ticks if len(fields) > 19 else float("nan")
    lines = [f"pid {pid} {status.get('State', '?').strip()} ppid {status.get('PPid', '?').strip()} "
             f"age {age:.1f}s cpu {(int(fields[11]) + int(fields[12])) / ticks if len(fields) > 12 else 0:.2f}s"]
    for task in sorted((proc / "task").glob("*")) if (proc / "task").exists() else []:
        stack = read(task / "stack").splitlines()[:3]
        lines.append(f"  tid {task.name} {read(task / 'comm')}: wchan {read(task / 'wchan')} "
                     f"syscall {read(task / 'syscall')} stack {' < '.join(f.split()[-1] for f in stack if f)}")
    return "\n".join(lines)


def _live(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@linux_only
@pytest.mark.parametrize("method", [pytest.param("fork", id="forked"), pytest.param("forkserver", id="forkserver")])
def test_a_pool_worker_takes_its_own_signals_and_ends_with_a_killed_command(method):
    """A worker ignores Ctrl-C (the command stops it), ends at SIGTERM (default action) and ends with
    the command however that ends. forkserver: the worker's parent is the forkserver, which lives on
    while any of its workers does (they hold its "alive" pipe): the parent-death signal never came,
    and a SIGKILLed command (OOM killer, kill -9) left its workers running their cells."""
    proc = subprocess.Popen([sys.executable, "-c", POOL_WORKER_SLEEPING, method], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, start_new_session=True)
    try:
        worker = int(proc.stdout.readline())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _signals_taken(_signal_bits(worker)):
            time.sleep(0.05)  # its initializer has not taken its own signals yet
        bits = _signal_bits(worker)
        waits = "" if _signals_taken(bits) else "\n" + _where_it_waits(worker)
        if waits:
            parent = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
            waits += "\nits parent:\n" + _where_it_waits(parent)
        assert signal.SIGINT in bits["SigIgn"] and signal.SIGTERM not in bits["SigIgn"] | bits["SigCgt"], f"{bits}{waits}"
        assert not {signal.SIGINT, signal.SIGTERM} & bits["SigBlk"], f"{bits}{waits}"
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _live(worker):
            time.sleep(0.1)
        assert not _live(worker), "the worker outlived the killed command"
    finally:
        proc.kill()
        proc.wait()
        for pid in _left(proc.pid):
            os.kill(pid, signal.SIGKILL)


def _left(pgid: int) -> list[int]:
    return [int(line.split()[0]) for line in _left_in_group(pgid)]


#: ``python -c CTRL_C_WHILE_A_FORKSERVER_WORKER_STARTS``: run_groups with one worker group, started
#: by a forkserver (this process has another thread), that gets a Ctrl-C to the whole process group
#: while it unpickles its specs; this process stands for the command (its handler ignores it).
CTRL_C_WHILE_A_FORKSERVER_WORKER_STARTS = """
import signal, threading
signal.signal(signal.SIGINT, lambda signum, frame: None)
threading.Thread(target=threading.Event().wait, daemon=True).start()
from simulators import parallel
from tests.simulators.sweep_fixtures import CtrlCWhenLoaded, done_at_once
assert parallel.start_method() == "forkserver"
print("runs", parallel.run_groups([[], [0]], [CtrlCWhenLoaded()], lambda indexes, on_ticks: [], done_at_once, (),
                                  [None]), flush=True)
"""


@linux_only
def test_ctrl_c_while_a_forkserver_worker_starts_is_left_to_the_command():
    """A worker from a forkserver started with Python's own SIGINT handler (the forkserver's child
    puts it back): a Ctrl-C in its bootstrap printed "Process ForkServerProcess-1:" and a
    KeyboardInterrupt traceback, and the run failed (WorkerFailed). Now the forkserver starts with
    the stop signals held, and so does each worker until it has its own handlers."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_A_FORKSERVER_WORKER_STARTS], capture_output=True,
                          text=True, cwd=REPO, timeout=60, start_new_session=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "runs [None]\n", done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
