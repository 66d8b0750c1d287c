"""Stage 1, signal: raw values per target and metric, with the reasons they cannot be used.

Missing, stale and non-finite samples are marked, never turned into zero.
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
    usable: np.ndarray


def read_signal(values: np.ndarray, present: np.ndarray, sample_age_s: np.ndarray, stale_after_s: float) -> Signal:
    """Mark each (target, metric) sample.

    values: (N, M) as returned by the source; present: (N, M) bool, a series existed;
    sample_age_s: (N, M) seconds between the sample's timestamp and ``now`` (0 for fresh).
    """
    missing = ~present
    stale = present & (sample_age_s > stale_after_s)
    nonfinite = present & ~np.isfinite(values)
    usable = ~(missing | stale | nonfinite)
    return Signal(np.where(usable, values, np.nan), missing, stale, nonfinite, usable)
