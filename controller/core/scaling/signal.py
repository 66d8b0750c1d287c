"""Stage 1, signal: raw values per target and metric, with the reasons they cannot be used.

Missing, stale, non-finite and negative samples are marked, never turned into zero. Every
metric kind a policy can declare (value, averagePerReplica, utilization; all with targets > 0)
measures a non-negative quantity (a rate, a count, a share), so a negative sample is a broken
exporter or query, not load: it is invalid like NaN, so it may block a scale-down but never
cause one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Signal:
    """(N, M) arrays. ``values`` is NaN wherever ``usable`` is False."""

    values: np.ndarray
    missing: np.ndarray  # no series for this target
    stale: np.ndarray  # the newest sample is older than the policy's bound
    nonfinite: np.ndarray  # NaN or +-Inf
    negative: np.ndarray  # below zero, for a metric that cannot be negative
    usable: np.ndarray


def read_signal(values: np.ndarray, present: np.ndarray, sample_age_s: np.ndarray, stale_after_s: float,
                nonnegative: np.ndarray | None = None) -> Signal:
    """Mark each (target, metric) sample.

    values: (N, M) as returned by the source; present: (N, M) bool, a series existed;
    sample_age_s: (N, M) seconds between the sample's timestamp and ``now`` (0 for fresh);
    nonnegative: (M,) bool, the metric cannot be negative (default: every metric).
    """
    missing = ~present
    stale = present & (sample_age_s > stale_after_s)
    nonfinite = present & ~np.isfinite(values)
    checked = np.ones(values.shape[-1], bool) if nonnegative is None else np.asarray(nonnegative, bool)
    with np.errstate(invalid="ignore"):  # NaN < 0 is False; so is -0.0 < 0: zero is a value
        negative = present & ~nonfinite & (values < 0) & checked  # -Inf is non-finite, not negative
    usable = ~(missing | stale | nonfinite | negative)
    clean = np.array(values, dtype=np.float64)  # a copy; a masked write is cheaper than np.where
    np.putmask(clean, ~usable, np.nan)
    return Signal(clean, missing, stale, nonfinite, negative, usable)
