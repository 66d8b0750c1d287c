"""Progress bars of the commands that run many simulations (sweep, tune), on a terminal.

Redrawn from the loop that collects the cells, at most every PROGRESS_REDRAW_S, never by rich's
refresh thread: local worker processes are forked only from a process without other threads
(simulators/sweep.py, LocalPool)."""

from __future__ import annotations

import os
import time
from typing import Sequence

#: Seconds between redraws of a progress bar.
PROGRESS_REDRAW_S = 0.1


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
