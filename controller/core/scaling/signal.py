"""Stage 1, signal: raw values per target and metric, with the reasons they cannot be used.

Missing, stale, non-finite, negative and implausible samples are marked, never turned into zero;
each is unusable: it may block a scale-down but never cause one (normalize: MetricsMissing).

Negative: every metric kind a policy can declare (value, averagePerReplica, utilization; all with
targets > 0) measures a non-negative quantity (a rate, a count, a share), so a negative sample is a
broken exporter or query, not load.

Implausible: a finite sample that, sized from a single replica, would ask for more than 1000 x the
policy's replicas.max: value / target > 1000 x max (params.IMPLAUSIBLE_FACTOR; the bound per metric
is PolicyParams.metric_implausible_above). One reading of 1e300 rps (a broken exporter, a counter
reset read as a rate, a unit mix-up) sent every target to replicas.max in one or two cycles, while
+Inf was refused: they are equally broken. Why this bound:

- derived from the policy, not from load seen: value / target is what a total (averagePerReplica)
  proposes whatever the replicas, and what a per-replica value or a utilization proposes from one
  Ready replica (ready x value / target from more): the least the reading could ask for. It does
  not depend on the replica count on purpose: a bound that shrank as replicas grew would start
  refusing a genuine overload's readings once the controller had scaled towards it.
- 1000 x max: the answer saturates at replicas.max for any reading that asks for max or more, so
  the bound only changes what happens to readings that ask for 1000 times what the whole fleet at
  max serves: a rate, a utilization or a latency that far above capacity is not load (a 50x surge
  asks for 50 x current, at most 50 x max), while the broken readings land far beyond it (1e300;
  2^64 from a wrapped counter; a reset counter's total read as a rate, ~1e7/s; bytes for gigabytes
  or nanoseconds for seconds, 1e9). Between the two, a milliseconds-for-seconds mix-up (1000x)
  can pass: the bound errs towards acting.
- the exception is a metric that accumulates without bound, a backlog (queue length, consumer
  lag) after a long outage: its policy raises the bound or turns it off per metric
  (``implausibleAbove``).
- none under the ``hpa`` preset (+inf): HPA has no such rule, and the preset scales as HPA does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.model import direct_init


@direct_init
@dataclass(frozen=True)
class Signal:
    """(N, M) arrays. ``values`` is NaN wherever ``usable`` is False."""

    values: np.ndarray
    missing: np.ndarray  # no series for this target
    stale: np.ndarray  # the newest sample is older than the policy's bound
    nonfinite: np.ndarray  # NaN or +-Inf
    negative: np.ndarray  # below zero, for a metric that cannot be negative
    implausible: np.ndarray  # finite and above the metric's bound (PolicyParams.metric_implausible_above)
    usable: np.ndarray


def read_signal(values: np.ndarray, present: np.ndarray, sample_age_s: np.ndarray, stale_after_s: float,
                nonnegative: np.ndarray | None = None, implausible_above: np.ndarray | None = None) -> Signal:
    """Mark each (target, metric) sample.

    values: (N, M) as returned by the source; present: (N, M) bool, a series existed;
    sample_age_s: (N, M) seconds between the sample's timestamp and ``now`` (0 for fresh);
    nonnegative: (M,) bool, the metric cannot be negative (default: every metric);
    implausible_above: (M,) a finite sample above this is implausible (default: no bound; +inf: none).
    """
    missing = ~present
    stale = present & (sample_age_s > stale_after_s)
    nonfinite = present & ~np.isfinite(values)
    checked = np.ones(values.shape[-1], bool) if nonnegative is None else np.asarray(nonnegative, bool)
    with np.errstate(invalid="ignore"):  # NaN < 0 is False; so is -0.0 < 0: zero is a value
        negative = present & ~nonfinite & (values < 0) & checked  # -Inf is non-finite, not negative
        if implausible_above is None:
            implausible = np.zeros(values.shape, bool)
        else:  # +Inf is non-finite, not implausible
            implausible = present & ~nonfinite & (values > np.asarray(implausible_above, np.float64))
    usable = ~(missing | stale | nonfinite | negative | implausible)
    clean = np.array(values, dtype=np.float64)  # a copy; a masked write is cheaper than np.where
    np.putmask(clean, ~usable, np.nan)
    return Signal(clean, missing, stale, nonfinite, negative, implausible, usable)
