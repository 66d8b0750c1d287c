"""Where a reconcile cycle's wall time goes: one stopwatch whose laps are named after the phases.

The live service asks for it (``Reconciler.times_phases``) to say what a long first cycle spent
its time on (listing workloads, the warm start's range queries, the metric queries, the checks'
history...); a simulation does not: its results carry no phases.
"""

from __future__ import annotations

import time
from typing import Callable


class CyclePhases:
    """Laps of one stopwatch: ``lap(phase)`` adds the wall time since the previous lap (or the
    start) to ``phase``'s total. ``spent``: phase -> seconds, in the order first lapped."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._last = clock()
        self.spent: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = self._clock()
        self.spent[phase] = self.spent.get(phase, 0.0) + (now - self._last)
        self._last = now


class NoPhases:
    """The stopwatch of a cycle nobody times (a simulation): laps cost nothing and say nothing."""

    spent = None

    def lap(self, phase: str) -> None:
        pass


NO_PHASES = NoPhases()


def phases_words(spent: dict[str, float], total_s: float, share: float = 0.05) -> str:
    """``spent`` (phase -> s) as log words, the longest first, leaving out phases under ``share``
    of ``total_s``: 'warm start 3.1s, metric queries 1.2s, workloads 0.4s'."""
    shown = sorted(((s, p) for p, s in spent.items() if s >= share * total_s), reverse=True)
    return ", ".join(f"{p} {s:.1f}s" for s, p in shown)
