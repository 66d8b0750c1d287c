"""A sweep's cells on Ray (``setpoint sweep --ray``), and a bounded stop of them.

A Ctrl-C or SIGTERM ends the command as with local workers: the finished cells are stored (as each
finishes), the running ones are cancelled (forced: a task stuck in native code ends too), and a
local instance this process started is shut down within RAY_STOP_S, its processes killed if Ray's
own shutdown does not end by then. ``ray.init`` replaces the command's SIGTERM handler with Ray's
(which printed "*** SIGTERM received" and aborted: exit -6, no "interrupted" line): the command's
handlers are put back after it.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from pathlib import Path
from typing import Callable, Sequence

from controller.errors import TERMINATION, FieldError, raise_if_terminated
from simulators.parallel import STOP_SIGNALS, stop_signals_held
from simulators.sweep import PROGRESS_POLL_S, Cell, SweepError, _cell_failed, run_cell

#: Seconds a stopped sweep waits for ray.shutdown() of the local instance it started before it kills
#: that instance's processes (its GCS, raylet, workers) itself.
RAY_STOP_S = 10.0
#: True while the local instance that Ray runs in this process is one :func:`run_on_ray` started
#: (``--ray local``): a stop shuts it down; one the caller started (a test's, a notebook's) is left.
_started_here: list[bool] = []


def run_on_ray(cells: Sequence[Cell], address: str, jobs: int, finished: Callable[[Cell, dict], None]) -> None:
    """``cells`` on a Ray cluster: ``address`` as ``ray.init`` takes it (``auto``, ``ray://HOST:10001``),
    or ``local`` for a new local instance with ``jobs`` CPUs. An already initialized Ray is used as it
    is. Each cell is one task of one CPU; ``finished(cell, outcome)`` as each comes back. Stopped (a
    Ctrl-C, SIGTERM, a failed cell), the cells left are cancelled and a local instance started by
    this process is shut down (:func:`stop_local_ray`) before the exception goes on."""
    ray = _import_ray()
    if not ray.is_initialized():
        _connect(ray, address, jobs)
    refs: dict = {}
    try:
        raise_if_terminated()  # a stop that came while Ray started (held until its handlers were ours again)
        remote = ray.remote(num_cpus=1, max_retries=2)(run_cell)
        refs.update((remote.remote(c.payload), c) for c in cells)
        _collect(ray, refs, finished)
    except BaseException:
        with stop_signals_held(False):  # a second Ctrl-C meanwhile does not cut the stop short
            _cancel(ray, refs)
            stop_local_ray(ray)
        raise


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError([FieldError("--ray", None, "", "Ray is not installed: pip install 'setpoint[ray]'")]) from None
    return ray


def _connect(ray, address: str, jobs: int) -> None:
    """``ray.init`` for ``address``, the command's SIGINT and SIGTERM handlers kept: a stop meanwhile
    is held and raised after (:func:`run_on_ray`)."""
    kept = _stop_handlers()
    try:
        with stop_signals_held():  # threads Ray starts inherit the mask: the main thread takes the stop
            try:
                if address == "local":  # "local": a new instance, never one a `ray start` left running
                    ray.init(address="local", num_cpus=max(1, jobs), include_dashboard=False, log_to_driver=False)
                    _started_here[:] = [True]
                else:
                    ray.init(address=address, log_to_driver=False)
            finally:
                _restore_handlers(kept)
    except Exception as exc:  # ConnectionError, ValueError for a malformed address, ...
        raise SweepError([FieldError("--ray", None, "", f"cannot connect to the Ray cluster at {address!r}: "
                                                        f"{type(exc).__name__}: {exc}; check the address "
                                                        "(auto, ray://HOST:10001 or local)")]) from None


def _stop_handlers() -> dict:
    """The SIGINT and SIGTERM handlers now (none outside the main thread, where none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in STOP_SIGNALS}


def _restore_handlers(kept: dict) -> None:
    for s, handler in kept.items():
        if handler is not None:  # None: set outside Python, left as it is
            signal.signal(s, handler)


def _collect(ray, refs: dict, finished: Callable[[Cell, dict], None]) -> None:
    """Wait for ``refs`` (object ref -> cell), ``finished`` for each as it comes back; a failed cell
    raises SweepError. Waits at most PROGRESS_POLL_S at a time, so a stop whose raise was lost (in a
    __del__, controller.errors) is read."""
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=PROGRESS_POLL_S)
        for ref in ready:
            cell = refs.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as exc:
                raise _cell_failed(cell, exc) from exc
            finished(cell, outcome)
        if TERMINATION.is_set():
            raise_if_terminated()


def _cancel(ray, refs: dict) -> None:
    """Cancel the cells still in ``refs``, the running ones forced (their worker process killed: a
    cell stuck in native code ignores the KeyboardInterrupt of a plain cancel)."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # finished meanwhile, or the cluster is gone: nothing to cancel
            pass


def stop_local_ray(ray, within_s: float | None = None) -> None:
    """Shut down the local Ray instance :func:`run_on_ray` started (nothing when it connected to a
    cluster or found Ray initialized): ray.shutdown() for at most ``within_s`` seconds (default
    RAY_STOP_S), then, if it has not ended, SIGKILL to the instance's processes (GCS, raylet, the
    workers under them), so none outlives the command."""
    started = _local_ray_pids(ray) if _started_here else []
    if not started:
        return
    _started_here.clear()
    tree = _started_at(started + _descendants(started))  # read now: the workers lose their parent with the raylet
    shutdown = threading.Thread(target=ray.shutdown, name="setpoint-ray-shutdown", daemon=True)
    shutdown.start()
    shutdown.join(RAY_STOP_S if within_s is None else within_s)
    if not shutdown.is_alive():
        return
    # it still holds Ray's shutdown lock: the shutdown registered for the exit would wait for it for ever
    atexit.unregister(ray.shutdown)
    for pid, start in tree.items():
        if _start_time(pid) == start:  # the same process, not one that took its pid since
            _kill(pid)


def _local_ray_pids(ray) -> list[int]:
    """The live processes of the local instance Ray runs in this process: its GCS server, raylet,
    monitors; none when it connected to a running cluster."""
    node = getattr(getattr(getattr(ray, "_private", None), "worker", None), "_global_node", None)
    infos = getattr(node, "all_processes", None) or {}
    return [info.process.pid for group in infos.values() for info in group if info.process.poll() is None]


def _proc_stat(pid: int | str) -> list[str]:
    """/proc/PID/stat's fields after the command name (state first); [] when gone or not Linux."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), None when it is gone."""
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else None


def _started_at(pids: Sequence[int]) -> dict[int, str]:
    return {pid: start for pid in pids if (start := _start_time(pid)) is not None}


def _descendants(pids: Sequence[int]) -> list[int]:
    """Every live descendant of ``pids`` (Linux /proc; elsewhere none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _proc_stat(stat.parent.name)
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = list(pids)
    while todo:
        for child in children.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:  # ended meanwhile
        pass


__all__ = ["RAY_STOP_S", "run_on_ray", "stop_local_ray"]
