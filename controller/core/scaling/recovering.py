"""Readings at the edge of a gap: a metric that comes back reads low for a window.

A range query (``rate(x[40s])``) answered right after its series returns (an exporter gap,
Prometheus restarted, the controller's own start) covers only the seconds since: 1000 rps read
as 217. While the metric is missing the decision holds (normalize._missing_data); without this
stage it scaled down on the first readings after the gap whenever the scale-down window was
shorter than the query's range (11 -> 3 replicas with a 0 s window). So a reading taken less than
its metric's read window (PolicyParams.metric_read_windows: the query's range) after that
target's metric came back (its first usable reading after it was missing, stale or non-finite;
or the controller's first reading of it) is *partial*: it may hold or raise replicas, never lower them (normalize holds a
scale-down proposed on one, reason MetricsRecovering). Not under the ``hpa`` preset: HPA has no
such rule (its windows are all 0 there).

The window counts from the first usable reading, not from the last cycle that found the metric
missing: the data came back somewhere between the two, so a window from the missing cycle could
end before the range is full (a Prometheus restart read 863 of 1000 rps 39 s after it); from the
first reading the hold is at most one interval longer than needed, never shorter.

State: usable_since (N, M), NormState.usable_since: the time of the first usable reading since the
metric was last unusable (NaN: unusable now, or never read). In memory only: a restarted
controller starts "just recovered". Pure numpy; the fused kernel (fused.py) does the same per value.
"""

from __future__ import annotations

import numpy as np


def recovering(usable: np.ndarray, usable_since: np.ndarray | None, windows: np.ndarray, now: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(partial (N, M) bool, the new usable_since (N, M)) from this cycle's usable (N, M) readings, the
    state usable_since (N, M; NaN: unusable or never read; None or another shape: a new state) and
    the metrics' read windows (M,) in seconds. partial: usable, and its first usable reading since
    the gap was less than its window ago (this one included)."""
    if usable_since is None or usable_since.shape != usable.shape:
        usable_since = np.full(usable.shape, np.nan)
    usable_since = np.where(usable, np.where(np.isnan(usable_since), now, usable_since), np.nan)
    return usable & (now - usable_since < windows), usable_since
