"""The checks' history: a warm start of the workload-scope health checks from Prometheus.

Check phases are not durable (core/health/state_codec.py): they are re-derived from metrics. Without
history, a check at a controller's start (or a leader's take-over, or a workload's first sight)
begins at OK: a condition holding for ten minutes must hold its ``for`` once more before the
check fires, and a check that fired and recovered before the controller first saw the revision
is never seen at all, so a release that failed an hour's check just before a restart is marked
known-healthy from its rollout's completion, and a later bad release is rolled back to it.

Prometheus restores its own alerts' ``for`` state after a restart (ALERTS_FOR_STATE); this does
the same from the checks' own queries: one range query per workload-scope check over the window
the check state depends on (``history_window_s``: healthyAfter, the longest ``for`` and
smoothing window, one interval), on the interval's grid, replayed through the same state
machines (core/health/checks.replay). The table at the last replayed tick seeds the targets'
check rows; the last time a check fired there is the revision's ``fired_until`` on first sight
(core/health/remediate.update_revisions: clean only from then on).

Pod-scope and revision checks are not replayed: their rows are pods, and the pods of an hour ago
are not the ones listed now. A failed history query leaves the checks to start at OK as before,
and makes every first-sight revision clean only from now (the history is unknown: it proves
itself for healthyAfter before it is a rollback target); it is said once in the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from controller.core.health.checks import CheckTable, replay
from controller.core.health.params import HealthParams
from controller.errors import MetricsUnavailable
from controller.model import TargetRef
from controller.runtime.backtest import grid_values, range_answers, target_labels_of, time_grid
from controller.runtime.warm_start import EWMA_HALF_LIVES


def history_window_s(params: HealthParams) -> float:
    """Seconds of history a workload check's phase now and the revision's clean time depend on:
    a check firing ``healthyAfter`` ago fired after its ``for`` on values smoothed over its window."""
    wchecks = [params.checks[j] for j in params.workload_columns]
    longest = max((c.unhealthy_for_s + c.recovered_for_s + max(c.window_s, c.half_life_s * EWMA_HALF_LIVES)
                   for c in wchecks), default=0.0)
    return params.healthy_after_s + longest + params.interval_s


@dataclass(frozen=True)
class CheckHistory:
    """The replayed workload checks of K targets: ``table`` (K rows, the checks at the last
    replayed tick), ``fired_until`` (K,) the last time any fired (NaN none; +inf: the history
    could not be read, then ``table`` is None and ``error`` says why); ``ticks`` replayed."""

    table: CheckTable | None
    fired_until: np.ndarray
    ticks: int
    window_s: float
    error: str | None = None

    def record(self, row: int) -> dict:
        """The decision record's ``checkHistory`` of one target: the window replayed and the last
        time a check fired in it, or why no history was read."""
        if self.table is None:
            return {"windowS": self.window_s, "error": self.error}
        fired = float(self.fired_until[row])
        return {"windowS": self.window_s, "ticks": self.ticks, "firedUntil": None if np.isnan(fired) else fired}


def check_history(params: HealthParams, exprs: Sequence[str], source, targets: Sequence[TargetRef],
                  now: float) -> CheckHistory:
    """Replay the workload checks of ``targets`` (K) from ``source`` (``query_range`` as
    PrometheusSource's) up to one interval before ``now``, from empty rows (as HealthState.empty's).
    ``exprs``: one per check of ``params``. One range query per workload check, together where the
    source can (backtest.range_answers). Never raises for a Prometheus failure."""
    k = len(targets)
    interval = max(params.interval_s, 1.0)
    ticks = int(np.ceil(history_window_s(params) / interval))
    lo, hi = now - ticks * interval, now - interval
    wcols = params.workload_columns
    checks = tuple(params.checks[j] for j in wcols)
    labels = target_labels_of(source)
    t_s = time_grid(lo, hi, interval)
    values = np.full((t_s.size, k, len(checks)), np.nan)
    try:
        answers = range_answers(source, [exprs[j] for j in wcols], lo, hi, interval)
        for c, answer in enumerate(answers):
            values[:, :, c] = grid_values(answer, targets, t_s, interval, labels)
    except (MetricsUnavailable, ValueError) as exc:  # ValueError: an interval of a fraction of a second
        return CheckHistory(None, np.full(k, np.inf), 0, ticks * interval, f"{exc}")
    fresh = CheckTable.empty(k, checks, params.shortest_interval_s)
    table, fired_until = replay(checks, values, np.isfinite(values), t_s, fresh)
    return CheckHistory(table, fired_until, t_s.size, ticks * interval)
