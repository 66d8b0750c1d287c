"""What a simulated cluster reports each tick: the truth, and what a metrics source would see.

:class:`TickSignals` is the ground truth of one tick (for scores and plots).
:class:`ObservedSignals` is the same data through the metric faults (outage, stale, NaN), with
the masks a ``MetricsSource`` needs: a controller must only ever read this one.
Every array has one row per service, shape ``(S,)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Fields of :class:`TickSignals` a metrics source serves (float copies in ObservedSignals).
METRIC_SIGNALS: tuple[str, ...] = (
    "offered_rps", "served_rps", "dropped_rps", "queue_length", "utilization_pct",
    "latency_p50_s", "latency_p95_s", "latency_p99_s", "errors_rps", "error_ratio",
    "memory_mib", "ready_replicas", "restarts_total",
)


@dataclass(slots=True)
class TickSignals:
    """Ground truth of one tick at ``at_s`` (epoch seconds). Every field is an (S,) array.

    Treat it as read-only (not frozen only because a frozen init costs microseconds per tick).

    offered_rps, served_rps, dropped_rps, errors_rps: request rates (requests/s) over the tick.
    queue_length: backlog at the end of the tick (requests; 0 in drop mode).
    capacity_rps: ready capacity (requests/s) the service could serve.
    utilization_pct: mean per-pod CPU utilization, percent of request (NaN with no ready pod).
    latency_p50_s / _p95_s / _p99_s: latency percentiles (s) from :mod:`simulators.queueing`.
    error_ratio: (errors + drops) / (served + dropped), in [0, 1].
    memory_mib: mean working set of running (starting or ready) pods, MiB (0 with none).
    ready_replicas, spec_replicas, pods: ready pods, desired replicas, existing pods (int).
    restarts_total: cumulative restarts of the workload's pods (container restarts and
        pods deleted by the controller) (int).
    revision: current revision number (int); rollout_in_progress: bool.
    """

    at_s: float
    offered_rps: np.ndarray
    served_rps: np.ndarray
    dropped_rps: np.ndarray
    queue_length: np.ndarray
    capacity_rps: np.ndarray
    utilization_pct: np.ndarray
    latency_p50_s: np.ndarray
    latency_p95_s: np.ndarray
    latency_p99_s: np.ndarray
    errors_rps: np.ndarray
    error_ratio: np.ndarray
    memory_mib: np.ndarray
    ready_replicas: np.ndarray
    spec_replicas: np.ndarray
    pods: np.ndarray
    restarts_total: np.ndarray
    revision: np.ndarray
    rollout_in_progress: np.ndarray

    def row(self, i: int) -> dict[str, float]:
        """One service's values as plain Python numbers (for tests, logs and reports)."""
        return {f.name: (self.at_s if f.name == "at_s" else getattr(self, f.name)[i].item()) for f in fields(self)}


@dataclass(frozen=True)
class ObservedSignals:
    """Signals as a metrics source sees them at ``at_s``.

    values: name -> (S,) float64 for each name in METRIC_SIGNALS; NaN where unavailable or
        under a NaN fault, frozen where stale. Read-only: they may share memory with the truth.
    unavailable: (S,) bool, no series at all (metrics outage).
    stale: (S,) bool, the value is old (``sample_age_s`` says how old, seconds).
    nonfinite: (S,) bool, the series reads NaN.
    """

    at_s: float
    values: dict[str, np.ndarray]
    unavailable: np.ndarray
    stale: np.ndarray
    nonfinite: np.ndarray
    sample_age_s: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    @property
    def missing(self) -> np.ndarray:
        """(S,) bool: anything that should keep a controller from trusting the value."""
        return self.unavailable | self.stale | self.nonfinite


def snapshot_metrics(source: TickSignals, rows: np.ndarray, frozen: dict[str, np.ndarray]) -> None:
    """Copy the metric values of ``rows`` from ``source`` into ``frozen`` (name -> (S,))."""
    for name in METRIC_SIGNALS:
        frozen[name][rows] = getattr(source, name)[rows]


def observed(truth: TickSignals, unavailable: np.ndarray, stale: np.ndarray, nonfinite: np.ndarray,
             frozen: dict[str, np.ndarray], stale_since_s: np.ndarray) -> ObservedSignals:
    """Apply the metric-fault masks to the truth. Outage wins over stale, stale over NaN."""
    stale = stale & ~unavailable
    nonfinite = nonfinite & ~unavailable & ~stale
    blank = unavailable | nonfinite
    any_stale, any_blank = bool(stale.any()), bool(blank.any())
    values = {}
    for name in METRIC_SIGNALS:
        v = np.asarray(getattr(truth, name), dtype=np.float64).copy()
        if any_stale:
            v[stale] = frozen[name][stale]
        if any_blank:
            v[blank] = np.nan
        values[name] = v
    age = np.where(stale, truth.at_s - stale_since_s, 0.0)
    return ObservedSignals(truth.at_s, values, unavailable.copy(), stale, nonfinite, age)


#: The integer fields of :data:`METRIC_SIGNALS` (float copies in ObservedSignals).
COUNT_SIGNALS: tuple[str, ...] = ("ready_replicas", "restarts_total")


def observed_unfaulted(truth: TickSignals, no: np.ndarray, zero_age: np.ndarray,
                       count_floats: dict[str, np.ndarray] | None = None) -> ObservedSignals:
    """:func:`observed` when no metric fault is active: the truth's float arrays are shared,
    not copied (read-only, like the truth); ``no`` / ``zero_age`` are shared (S,) masks;
    ``count_floats``: float64 copies of the truth's :data:`COUNT_SIGNALS` the caller already
    holds (shared too), else they are converted here."""
    values = {name: getattr(truth, name) for name in METRIC_SIGNALS}
    for name in COUNT_SIGNALS:
        values[name] = count_floats[name] if count_floats is not None else values[name].astype(np.float64)
    return ObservedSignals(truth.at_s, values, no, no, no, zero_age)


def empty_frozen(n_services: int) -> dict[str, np.ndarray]:
    """Frozen-value store for stale metrics: name -> (S,) NaN."""
    return {name: np.full(n_services, np.nan) for name in METRIC_SIGNALS}
