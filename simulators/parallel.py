"""A simulation's controllers on several cores: groups of them in forked worker processes.

Each controller runs over its own simulated cluster built from the same scenario and seed
(:mod:`simulators.runner`), so where it runs changes none of its numbers. A worker gets a group
of controller specs, generates the scenario's load itself (chunk by chunk, as the runner does),
runs its group in lockstep and sends the finished runs back; this process runs the group that
holds every controller whose decision log it keeps (a long log spills to an anonymous file,
which stays with the process that wrote it). Progress comes back through the same queue as the
results. A run too short to repay starting processes stays in this process.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import queue as queue_module
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from controller.errors import STOPS_DEFERRED, raise_if_terminated
from controller.policy.summary import plural

#: A controller's cost per tick by kind, relative to a policy's (a Reconciler cycle every
#: interval dominates; the oracle steps its cluster to a precomputed plan, fixed only steps).
#: Measured on trace-nasa-july (one service, 17,280 ticks): policy and hpa ~2.3 s each, the
#: oracle ~0.9 s. Only the balance between groups depends on these.
KIND_COST = {"policy": 1.0, "oracle": 0.4, "fixed": 0.25}
#: A run with fewer controller-ticks than this stays in one process. A controller's tick costs
#: ~0.1-0.4 ms whatever the services (its cycles' Python dominates), forking and sending the runs
#: back a few tens of ms (measured: flash-crowd's 7 runs of 1,080 ticks, 1.1 s in one process,
#: 0.65 s in two).
MIN_PARALLEL_TICKS = 2_000
#: Seconds between checks that the workers are alive while waiting for their results.
POLL_S = 0.5
#: Seconds a stopped worker gets to end at SIGTERM before it is killed (SIGKILL), and then again to
#: be reaped: a worker ends at SIGTERM at once (its own default handler), so only a stuck one waits.
STOP_GRACE_S = 5.0
#: Seconds a stop waits for its workers before it says so (``say``, :func:`stop_workers`): a worker
#: ends at SIGTERM at once, even on a loaded machine, so only a stuck one outlasts this.
STOP_NOTICE_S = 1.0


def start_method() -> str:
    """How worker processes start now: forked (warm, nothing imported twice) when this process
    runs no other thread, else from a forkserver (a lock another thread held at the fork would
    stay held in the child). Linux only forks: on macOS system libraries are not fork-safe."""
    forkable = sys.platform.startswith("linux") and threading.active_count() == 1
    return "fork" if forkable else "forkserver"


#: The signals whose handlers raise wherever the main thread is: SIGINT (KeyboardInterrupt) and
#: SIGTERM (the command's Terminated, controller/cli/root.py).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def heap_frozen_for_forks() -> Iterator[None]:
    """``gc.freeze()`` while worker processes are forked: their collector then skips what they
    inherit (else its first full pass writes to every inherited object: copy-on-write faults).
    Unfrozen after, unless the heap was frozen already by whoever runs this (the test suite
    freezes what its collection made): ``gc.unfreeze`` cannot release only our part."""
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


@contextmanager
def stop_signals_held(held: bool = True) -> Iterator[None]:
    """Stops deferred inside the block, for code that starts worker processes: the command's
    SIGINT and SIGTERM handlers (controller/cli/root.py) only record the stop (STOPS_DEFERRED), the
    caller raises it after (raise_if_terminated), once every worker it started is known and can
    be stopped; and, ``held``, both signals held back too (pthread_sigmask), delivered as the block
    ends.

    os.fork runs Python's at-fork hooks, logging's among them (its module lock, taken before the
    fork and released after it in the parent). A signal that arrives during the fork is handled in
    the first of them to run Python, and a handler's raise there is lost: "Exception ignored in:
    <function _releaseLock>" and a traceback on stderr, the logging lock left held; raised just
    after a fork, it leaves a child nobody stops. The mask alone does not do: a native thread
    (numba's, BLAS') takes the signal and the main thread still runs the handler. Children forked
    inside start with both held, and so does a forkserver started inside (the mask outlives its
    exec) and every worker it forks, whose bootstrap a Ctrl-C reached under Python's own handler
    there: they call :func:`release_stop_signals` once their own handlers are set
    (:func:`take_worker_signals`)."""
    masked = held and hasattr(signal, "pthread_sigmask")  # Windows: no fork, no mask
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if masked else None
    STOPS_DEFERRED.append(True)
    try:
        yield
    finally:
        STOPS_DEFERRED.pop()
        if masked:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # one that came meanwhile raises here


def release_stop_signals() -> None:
    """In a worker started inside :func:`stop_signals_held`: take SIGINT and SIGTERM again (one
    sent meanwhile, as by a terminate(), is delivered now, to the worker's own handlers)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def take_worker_signals() -> None:
    """A worker process's own signal handling, first thing in it: ends at SIGTERM (as by default,
    not through a handler inherited from the command), ignores SIGINT, and ends with the command
    that started it, however that one ends (it would run on orphaned); then takes the signals held
    at its start (:func:`release_stop_signals`).

    Ctrl-C at a terminal sends SIGINT to the whole process group: the command decides, and stops
    its workers (SIGTERM). A worker's own KeyboardInterrupt printed multiprocessing's "Process
    ...:" and a traceback on stderr; a worker with the command's SIGTERM handler (or one that
    ignored it) could outlive terminate(), and join() then waited for ever."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards one held since the start
    _end_with_the_command()
    release_stop_signals()  # a SIGTERM sent before now (the command's stop) ends it here


def _end_with_the_command() -> None:
    """SIGTERM to this worker when the command that started it ends. Forked by the command: the
    parent-death signal (Linux prctl). Started by a forkserver, the parent is the forkserver, which
    lives on while any of its workers does (they hold its "alive" pipe), so that signal never came
    and a killed command (kill -9, the OOM killer) left its workers running: a thread waits on the
    command's sentinel (multiprocessing.parent_process(), ready once the command is gone) instead."""
    if sys.platform == "linux":
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # no libc symbol: the worker outlives a killed parent, as before
            pass
    command = multiprocessing.parent_process()
    if command is not None and command.pid != os.getppid():  # not forked by the command (or it is gone already)
        threading.Thread(target=_end_after, args=(command,), name="setpoint-command-watch", daemon=True).start()


def _end_after(command) -> None:
    command.join()  # returns once the command's end of the sentinel pipe is closed: it ended
    os.kill(os.getpid(), signal.SIGTERM)


#: prctl(2) option: the signal a process gets when its parent ends.
_PR_SET_PDEATHSIG = 1


def stop_workers(procs: Sequence, grace_s: float = STOP_GRACE_S, say: Callable[[str], None] | None = None) -> None:
    """End every started process of ``procs`` (multiprocessing.Process) still alive: SIGTERM,
    then SIGKILL to those still alive ``grace_s`` seconds later; each reaped, so none outlives the
    command, within about 2 x ``grace_s`` whatever they do. A Ctrl-C or SIGTERM meanwhile (a user
    pressing Ctrl-C again during the grace) is only recorded (STOPS_DEFERRED; raised by the stop
    this serves): raised here, it skipped the kill and left a worker stuck past SIGTERM running.
    ``say`` (one line each, the command's stderr) is told when the wait outlasts STOP_NOTICE_S
    ("stopping 1 worker (waiting up to 5 s) ...") and when it had to kill: a stuck worker otherwise
    kept the command silent for the whole grace."""
    alive = [p for p in procs if p.pid is not None and _running(p)]
    if not alive:  # the common end: every worker joined already (nothing deferred then)
        return
    STOPS_DEFERRED.append(True)
    try:
        for p in alive:
            p.terminate()
        deadline = time.monotonic() + grace_s
        _join_all(alive, min(STOP_NOTICE_S, grace_s))
        waiting = [p for p in alive if _running(p)]
        if waiting and say is not None:
            say(f"stopping {plural(len(waiting), 'worker')} (waiting up to {grace_s:g} s) ...")
        _join_all(waiting, deadline - time.monotonic())
        stuck = [p for p in waiting if _running(p)]
        for p in stuck:
            p.kill()
        _join_all(stuck, grace_s)
        if stuck and say is not None:
            say(f"killed {plural(len(stuck), 'worker')} still running {grace_s:g} s after SIGTERM")
    finally:
        STOPS_DEFERRED.pop()


def _running(p) -> bool:
    """Whether the started process ``p`` runs still: its sentinel not ready (the process ends, its end
    of the pipe closes). Not ``p.is_alive()``: that reaps through waitpid, and when another thread
    reaped the process first (a ProcessPoolExecutor's manager thread joins all its workers once one
    ends), waitpid fails with ECHILD, which multiprocessing reads as "still running" until that
    thread records the exit code. Read so under load, a worker that ended at once at SIGTERM was
    taken for one stuck past it: "stopping 1 worker ... killed 1 worker still running 5 s after
    SIGTERM", both said at once, and a SIGKILL sent to a pid already reaped (one the system may have
    given to another process)."""
    return p.exitcode is None and not multiprocessing.connection.wait([p.sentinel], 0)


def _join_all(procs: Sequence, within_s: float) -> None:
    """Join ``procs``, all within ``within_s`` seconds together (those still alive then are left)."""
    deadline = time.monotonic() + within_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))


def _worker(run_there: Callable[..., None], *args) -> None:
    """A simulation worker process: its own signal handling, then ``run_there(*args)``."""
    take_worker_signals()
    run_there(*args)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(ticks: int, kinds: Sequence[str], jobs: int) -> int:
    """Processes to use (this one included) for ``kinds`` controllers over ``ticks`` ticks: at
    most ``jobs`` and one per controller; 1 when the run is too short to repay the start."""
    if jobs <= 1 or len(kinds) <= 1 or ticks * len(kinds) < MIN_PARALLEL_TICKS:
        return 1
    return min(jobs, len(kinds))


def plan_groups(costs: Sequence[float], groups: int, pinned: Sequence[bool]) -> list[list[int]]:
    """Spec indexes per group, group 0 being this process's: the ``pinned`` specs in group 0,
    the others costliest first onto the least loaded group (ties: the lowest group). Each
    group's indexes ascend (the runner's order); empty groups are dropped, group 0 is kept."""
    load = [0.0] * max(1, groups)
    out: list[list[int]] = [[] for _ in load]
    for i, c in enumerate(costs):
        if pinned[i]:
            out[0].append(i)
            load[0] += c
    for i in sorted((i for i in range(len(costs)) if not pinned[i]), key=lambda i: (-costs[i], i)):
        g = min(range(len(load)), key=lambda g: (load[g], g))
        out[g].append(i)
        load[g] += costs[i]
    return [sorted(out[0])] + [sorted(g) for g in out[1:] if g]


class Unavailable(RuntimeError):
    """This platform cannot start worker processes here (nothing was started)."""


class WorkerFailed(RuntimeError):
    """A worker process ended without sending its runs back (killed, out of memory)."""


def run_groups(groups: list[list[int]], specs: Sequence, run_here: Callable[[list[int], list], list],
               run_there: Callable[..., None], there_args: tuple,
               on_ticks: Sequence[Callable[[int], None] | None]) -> list:
    """Every spec's run, in spec order: ``groups[1:]`` each in a worker process that sets its own
    signal handling (:func:`take_worker_signals`) and calls
    ``run_there(queue, group_index, indexes, [specs], *there_args)``, which puts ("tick", spec
    index, ticks done) as it goes and ("done", group_index, runs) or ("failed", group_index,
    exception) at the end; ``groups[0]`` here through ``run_here(indexes, on_ticks)`` meanwhile,
    relaying the workers' progress to ``on_ticks`` between its own ticks. However this ends (a
    stop, a failure), no worker is left running (:func:`stop_workers`)."""
    try:
        ctx = multiprocessing.get_context(start_method())
        queue = ctx.Queue()  # a semaphore: needs a writable /dev/shm, which some sandboxes lack
    except (OSError, ImportError, ValueError) as exc:
        raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["simulators.runner"])
    results: dict[int, list] = {}
    procs = {}
    try:
        # a Ctrl-C or SIGTERM while the workers start is raised after (controller/cli/root.py), the
        # workers then stopped: raised amid a start, it left a worker running on that nobody stopped
        with heap_frozen_for_forks(), stop_signals_held():
            for g, indexes in enumerate(groups[1:], 1):
                p = ctx.Process(target=_worker, args=(run_there, queue, g, indexes, [specs[i] for i in indexes],
                                                      *there_args), daemon=True, name=f"setpoint-sim-{g}")
                p.start()
                procs[g] = p
        raise_if_terminated()
    except BaseException:
        stop_workers(list(procs.values()))
        raise

    def take(message) -> None:
        kind, key, value = message
        if kind == "tick":
            if on_ticks[key] is not None:
                on_ticks[key](value)
        elif kind == "failed":
            raise value
        else:
            results[key] = value

    def relay() -> None:
        while True:
            try:
                take(queue.get_nowait())
            except queue_module.Empty:
                return

    def relaying(i: int) -> Callable[[int], None] | None:
        own = on_ticks[i]
        if own is None and not any(on_ticks):
            return None

        def tick(k: int) -> None:
            if own is not None:
                own(k)
            relay()
        return tick

    try:
        here = run_here(groups[0], [relaying(i) for i in groups[0]]) if groups[0] else []
        while len(results) < len(procs):
            try:
                take(queue.get(timeout=POLL_S))
            except queue_module.Empty:
                raise_if_terminated()  # a stop whose raise was lost (in a __del__, controller.errors)
                for g, p in procs.items():
                    if g not in results and not p.is_alive() and queue.empty():
                        raise WorkerFailed(f"simulation worker {g} ended (exit code {p.exitcode}) without its runs; "
                                           "out of memory? run again with --jobs 1") from None
        for p in procs.values():
            p.join()
    finally:
        stop_workers(list(procs.values()))  # stopped (Ctrl-C, SIGTERM, a failure): none left running
        queue.close()
    out: list = [None] * len(specs)
    for i, run in zip(groups[0], here):
        out[i] = run
    for g, indexes in enumerate(groups[1:], 1):
        for i, run in zip(indexes, results[g]):
            out[i] = run
    return out


__all__ = ["KIND_COST", "MIN_PARALLEL_TICKS", "STOP_SIGNALS", "Unavailable", "WorkerFailed", "heap_frozen_for_forks", "plan_groups",
           "STOP_GRACE_S", "STOP_NOTICE_S", "release_stop_signals", "run_groups", "start_method", "stop_signals_held", "stop_workers",
           "take_worker_signals", "usable_cpus", "worker_count"]
