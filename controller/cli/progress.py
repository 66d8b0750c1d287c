"""Progress bars of the commands that run many simulations (sweep, tune), on a terminal.

Redrawn from the loop that collects the cells, at most every PROGRESS_REDRAW_S, never by rich's
refresh thread: local worker processes are forked only from a process without other threads
(simulators/sweep.py, LocalPool)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator, Sequence

#: Seconds between redraws of a progress bar.
PROGRESS_REDRAW_S = 0.1
#: A command says it is compiling kernels once they have compiled this long (and checks this often).
COMPILE_NOTICE_S = 3.0
COMPILE_POLL_S = 0.5


def kernel_cache_misses() -> int:
    """The cache misses of this process's loaded kernels so far (numba counts one before it compiles);
    -1 when they cannot be read now (a module imported meanwhile: the next look)."""
    from controller.core.scaling import compiled

    try:
        return sum(sum(d.stats.cache_misses.values()) for _, _, d in compiled.loaded_kernels())
    except RuntimeError:  # dictionary changed size
        return -1


def kernels_compiling(since: int = 0) -> bool:
    """Some kernel of this process was compiled, or is compiling now, after ``since`` cache misses
    were counted: False when the kernels are off, not yet loaded, or all came from the cache since."""
    misses = kernel_cache_misses()
    return misses > max(since, 0)


@contextlib.contextmanager
def compile_notice(console, what: str) -> Iterator[None]:
    """One line on ``console`` when kernels compile inside for :data:`COMPILE_NOTICE_S` or more (a
    machine's first run, or the first after an upgrade, spends ~40 s there, which a bar alone
    shows as a stalled first step): ``compiling WHAT: ...``. Watched from a thread: the kernels
    compile lazily, at their first call somewhere inside."""
    stop = threading.Event()
    # only this command's compiles: a kernel compiled earlier in the process (an earlier command of
    # the same process, in-process callers and tests) is no reason to say so now
    before = kernel_cache_misses()

    def watch() -> None:
        first = None
        while not stop.wait(COMPILE_POLL_S):
            if first is None and kernels_compiling(before):
                first = time.monotonic()
            if first is not None and time.monotonic() - first >= COMPILE_NOTICE_S - COMPILE_POLL_S:
                console.print(f"compiling {what}: about 40 s on a machine's first run or after an upgrade; cached "
                              f"for the next runs (`setpoint warm` does it ahead; SETPOINT_COMPILED=0 runs without them)")
                return

    watcher = threading.Thread(target=watch, name="compile-notice", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def bars_wanted(console) -> bool:
    """Progress bars on a terminal; plain lines in CI and when stderr is a file or a pipe."""
    return console.is_terminal and not os.environ.get("CI")


class GridBar:
    """One bar over a grid's cells, counted in ticks (simulators.sweep.GridProgress): a long cell
    moves it while it runs. ``grid(cells)`` starts a grid (the bar restarts for each one) and
    gives run_grid's ``on_cell`` and ``on_progress``."""

    def __init__(self, console, transient: bool = False):
        from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(TextColumn("{task.fields[label]}cells {task.fields[cells]}"), BarColumn(),
                                 TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.description}"), console=console, auto_refresh=False,
                                 transient=transient)
        self.task = None

    def __enter__(self) -> "GridBar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def grid(self, cells: Sequence, label: str = ""):
        """(on_cell, on_progress) for run_grid over ``cells``; ``label`` prefixes the bar."""
        from rich.markup import escape

        from simulators.sweep import GridProgress

        state, progress, drawn = GridProgress(cells), self.progress, [0.0]
        fields = dict(total=state.total, completed=0, cells=f"0/{len(cells)}", label=escape(label))
        if self.task is None:
            self.task = progress.add_task("", **fields)
        else:
            progress.reset(self.task, description="", **fields)
        progress.refresh()

        def redraw(force: bool) -> None:
            if force or time.monotonic() - drawn[0] >= PROGRESS_REDRAW_S:
                drawn[0] = time.monotonic()
                progress.update(self.task, completed=state.completed, cells=f"{state.done_cells}/{len(cells)}",
                                description=escape(state.running()), refresh=True)

        def on_cell(cell, done: int, total: int, cached: bool) -> None:
            state.cell_done(cell, done, total, cached)
            redraw(done == total)

        def on_progress(cell, fraction: float) -> None:
            state.cell_progress(cell, fraction)
            redraw(False)

        return on_cell, on_progress

    def print(self, line: str) -> None:
        """A line above the bar (plain text, no markup)."""
        self.progress.console.print(line, markup=False, highlight=False)
