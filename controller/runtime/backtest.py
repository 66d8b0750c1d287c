"""Backtests: replay past metrics through the same Reconciler, tick by tick, with a replay clock.

DESIGN section 11: replay is a MetricsSource over range-query results driving the same
Reconciler; there is no second decision path. Here:

- :class:`ReplayData` holds the range-query results on one time grid: per query a (T, N) array
  (T grid times, N targets; NaN where no single series matched) and the replicas that actually
  ran, (T, N) (NaN where unknown, e.g. without kube-state-metrics).
- :class:`ReplayCluster` is a tiny in-memory Cluster: the counterfactual spec replicas, applied
  at once (every pod ready at once: the replay has no start-up delay).
- :class:`ReplayMetrics` answers the Reconciler's queries from the grid. Assumption, stated in
  every report (``LOAD_ASSUMPTION``): load is shared evenly across replicas, so a per-replica
  signal (``utilization`` and ``value`` targets, whose proposal is ``replicas x value / target``)
  observed with ``a`` replicas running reads ``value x a / c`` under ``c`` counterfactual
  replicas. ``averagePerReplica`` metrics are totals (``value / target``) and are not rescaled.
- :func:`run_backtest` runs one policy over the grid and returns its replica timeline; each
  target from its first sample on (a workload younger than the window joins as it would live).

Health checks are not replayed (they act on pods, which a backtest does not have).
"""

from __future__ import annotations

import logging
import math
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

import numpy as np

from controller.core.scaling.params import MetricKind, PolicyParams
from controller.core.scaling.signal import read_signal
from controller.model import (DEFAULT_TARGET_LABELS, Action, ActionKind, TargetIndex, TargetLabels, TargetRef,
                              TargetSelector)
from controller.policy.durations import format_duration
from controller.policy.summary import plural
from controller.ports import ClusterView, Samples
from controller.runtime.claims import TargetClaims
from controller.runtime.reconciler import Reconciler, RuntimePolicy

LOAD_ASSUMPTION = ("load shared evenly: a per-replica signal (utilization and value targets) observed with A "
                   "replicas running is replayed as value x A / C under C counterfactual replicas; "
                   "averagePerReplica metrics are totals and replay unchanged. Counterfactual replicas are "
                   "ready at once.")
#: Metric kinds whose value is per replica (the proposal scales the current replica count).
PER_REPLICA_KINDS = (MetricKind.UTILIZATION, MetricKind.VALUE)
#: Replicas series of kube-state-metrics, by workload kind.
REPLICAS_QUERIES = {"Deployment": 'max by (namespace, deployment) (kube_deployment_spec_replicas{namespace="%s"})',
                    "StatefulSet": 'max by (namespace, statefulset) (kube_statefulset_replicas{namespace="%s"})'}


# --- time ---------------------------------------------------------------------------------------

#: Largest epoch time (the end of year 9999, what ISO 8601 and Python datetimes hold).
MAX_EPOCH_S = 253402300799.0
#: Longest backtest window: longer than any Prometheus retention in use, and a bound on the range
#: queries planned (a window of 1e18 s planned billions of them: 7.8 GB before a MemoryError).
MAX_WINDOW_S = 400 * 86400.0

_RELATIVE = re.compile(r"^now(?:-(?P<ago>[0-9a-z.]+))?$")


def parse_time(text: str, now_s: float, parse_duration: Callable[[str], float]) -> float:
    """``2026-11-30T12:00:00Z`` (ISO 8601, UTC unless an offset is given), epoch seconds,
    ``now`` or ``now-6h`` -> epoch seconds."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        ago = match.group("ago")
        return now_s - (parse_duration(ago) if ago else 0.0)
    try:
        epoch = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= epoch <= MAX_EPOCH_S:  # nan, inf, 1e400, or beyond what a datetime holds
            raise ValueError(f"expected epoch seconds between 0 and {MAX_EPOCH_S:.0f} (year 9999), got {text!r}")
        return epoch
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a time such as 2026-11-30T12:00:00Z, 1764504000 or now-6h, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def time_grid(start_s: float, end_s: float, step_s: float) -> np.ndarray:
    """start, start + step, ... <= end (T,)."""
    return start_s + step_s * np.arange(int((end_s - start_s) // step_s) + 1)


# --- the data -------------------------------------------------------------------------------------

def target_labels_of(source) -> TargetLabels:
    """The labels ``source`` matches series to workloads by (a PrometheusSource's
    ``config.target_labels``), else the default: what the warm start and the checks' history
    read their range queries by, as the live queries of the same source do."""
    return TargetLabels.of(getattr(getattr(source, "config", None), "target_labels", DEFAULT_TARGET_LABELS))


def range_answers(source, exprs: Sequence[str], lo: float, hi: float, step_s: float) -> list:
    """``source.query_range`` of each expression on the grid lo..hi, in order: together where the
    source's class can (``query_range_many``: PrometheusSource, up to its ``max_concurrency`` in
    flight), else one after another. Raises the first failure in ``exprs`` order."""
    if callable(getattr(type(source), "query_range_many", None)):
        return source.query_range_many(list(exprs), lo, hi, step_s)
    return [source.query_range(e, lo, hi, step_s) for e in exprs]


def discover_targets(selector: TargetSelector, series_lists: Iterable[Sequence],
                     label_names: TargetLabels | tuple[str, str]) -> list[TargetRef]:
    """The policy's targets: its names, or (a label selector) every workload of its namespace
    seen in the series, by the labels of the selector's kind, sorted."""
    if selector.by_name:
        return sorted(selector.refs())
    labels = TargetLabels.of(label_names)
    seen = set()
    for series in series_lists:
        for s in series:
            key = labels.key(s.labels, selector.kind)
            if key is not None and key[0] == selector.namespace:
                seen.add(TargetRef(key[0], key[1], selector.kind))
    return sorted(seen)


#: Longest step of the pass that finds a label selector's targets over the whole window. Prometheus
#: reads a series up to 5 minutes old (its default lookback delta), so at this step (or finer) every
#: workload whose series last 5 minutes answers at least once (one that lived less, between two
#: points, may be missed: it is not replayed). About 2,000 points a week: one request.
DISCOVERY_STEP_S = 300.0
#: Grid points per request of that pass (Prometheus refuses more than 11,000 per series).
DISCOVERY_POINTS = 10_000


def discovery_grid(start_s: float, end_s: float, step_s: float) -> tuple[float, float, float]:
    """(first, last, step) of the discovery pass: a multiple of ``step_s`` of at most
    ``DISCOVERY_STEP_S`` (``step_s`` if coarser), ending on the replay grid's last point, so its
    points are replay grid points and the first lies within one discovery step of ``start_s``."""
    coarse = step_s * max(1, int(DISCOVERY_STEP_S // step_s))
    last = time_grid(start_s, end_s, step_s)[-1]
    return last - coarse * int((last - start_s) // coarse), last, coarse


def discover_window(source, selector: TargetSelector, queries: Sequence[str], start_s: float, end_s: float,
                    step_s: float, labels: TargetLabels | tuple[str, str], timeout_s: float | None = None
                    ) -> list[TargetRef]:
    """The policy's targets over the whole window, as ``discover_targets``. A label selector costs one
    range query (``query_range``) per ``DISCOVERY_POINTS`` points of ``discovery_grid``: every query
    grouped by the target labels, joined with ``or``, so each answer holds one series per workload
    of value 1, and is reduced to its workloads before the next (memory bounded by one answer)."""
    if selector.by_name or not queries:
        return discover_targets(selector, [], labels)
    by = ", ".join(TargetLabels.of(labels).names([selector.kind]))
    expr = " or ".join(f"group by ({by}) ({q})" for q in queries)
    first, last, coarse = discovery_grid(start_s, end_s, step_s)
    seen: dict[tuple, object] = {}
    for lo, hi in segment_windows(first, last, coarse, DISCOVERY_POINTS):
        for s in source.query_range(expr, lo, hi, coarse, timeout_s=timeout_s):
            seen.setdefault(tuple(sorted(s.labels.items())), s)
    return discover_targets(selector, [list(seen.values())], labels)


@dataclass
class Gridded:
    """One range query's series on the grid, per target: ``values`` (T, N), NaN where not exactly
    one series had a sample; ``count`` (T, N) series with a sample at that time; ``outside`` (N,)
    samples dropped for a time off the window (or no time at all: inf, NaN); ``differing`` (N,)
    the label names whose values differ between the target's series (empty for one series)."""

    values: np.ndarray
    count: np.ndarray
    outside: np.ndarray
    differing: list[frozenset]


def grid_series(series: Sequence, targets: Sequence[TargetRef], t_s: np.ndarray, step_s: float,
                label_names: TargetLabels | tuple[str, str], lone: Sequence[int] = ()) -> Gridded:
    """Range-query series (``.labels``, ``.times`` (K,), ``.values`` (K,)) on the grid. Where several
    series of one target have a sample at the same time the value is NaN (a conflict is never
    averaged); series that follow each other (an exporter restarted with a new ``instance``) fill
    their own times. One series without the target labels belongs to a single-target policy only:
    the targets' columns ``lone`` (``lone_columns``), or the one target of a one-target grid.
    A series is a target's as the live adapter's (``TargetIndex``: by its kind's labels)."""
    n = len(targets)
    out = np.full((t_s.size, n), np.nan)
    count = np.zeros((t_s.size, n), np.int32)
    outside = np.zeros(n, np.int64)
    labels_of: list[list[dict]] = [[] for _ in range(n)]
    index = TargetIndex(targets, label_names)
    for s in series:
        if len(series) == 1 and index.unlabelled(s.labels):
            columns = tuple(lone) or ((0,) if n == 1 else ())
        else:
            columns = index.rows(s.labels)
        if not columns:
            continue
        rows = grid_rows(s.times, t_s, step_s)
        on = rows >= 0
        for i in columns:
            out[rows[on], i] = np.asarray(s.values)[on]
            count[rows[on], i] += 1
            outside[i] += int(on.size - np.count_nonzero(on))
            labels_of[i].append(s.labels)
    out[count > 1] = np.nan
    return Gridded(out, count, outside, [differing_labels(ls) for ls in labels_of])


def grid_values(series: Sequence, targets: Sequence[TargetRef], t_s: np.ndarray, step_s: float,
                label_names: TargetLabels | tuple[str, str]) -> np.ndarray:
    """``grid_series(...).values``: (T, N), NaN where not exactly one series had a sample."""
    return grid_series(series, targets, t_s, step_s, label_names).values


def grid_rows(times, t_s: np.ndarray, step_s: float) -> np.ndarray:
    """The grid row (nearest grid time) of each sample time (K,); -1 where it is off the window
    or not a time (1e300, inf, NaN: dropped, never cast to a row)."""
    pos = np.rint((np.asarray(times, np.float64) - t_s[0]) / step_s) if t_s.size else np.full(len(times), -1.0)
    with np.errstate(invalid="ignore"):
        on = (pos >= 0) & (pos < t_s.size)
    return np.where(on, pos, -1).astype(np.int64)


def differing_labels(labels: Sequence[dict]) -> frozenset:
    """The label names whose values are not the same in all of ``labels`` (absent counts as a value)."""
    if len(labels) < 2:
        return frozenset()
    names = set().union(*labels)
    return frozenset(k for k in names if len({ls.get(k) for ls in labels}) > 1)


@dataclass
class SampleCounts:
    """What one query gave each target, summed over the window's segments: (N,) numbers of grid
    times with a usable sample, with none (``missing``), with several series (``conflicting``;
    at most ``series`` at once, differing in the ``differing`` labels), with a NaN or infinite
    value, with a negative one and with an implausible one; and samples dropped for a time off
    the window (``outside``). The classes are the live path's: ``Samples``' present and conflict,
    then ``read_signal``. ``leading`` (N,): the missing times before the query's first sample at
    each target (all of them without one), which a late start may explain (``after_late_start``);
    ``covered`` (N,), set by it: the times each target's notes count over (None: all ``times``).

    What is implausible depends on the metric that reads the query (core/scaling/signal.py), and
    policies that share a query may bound it differently: ``above`` holds the B distinct bounds
    (in the order the policies read the query), and ``usable`` and ``implausible`` are (B, N), one
    row per bound."""

    times: int
    usable: np.ndarray
    missing: np.ndarray
    conflicting: np.ndarray
    nonfinite: np.ndarray
    negative: np.ndarray
    implausible: np.ndarray
    outside: np.ndarray
    series: np.ndarray
    differing: list[set]
    above: tuple[float, ...] = (math.inf,)
    leading: np.ndarray | None = None
    covered: np.ndarray | None = None

    @classmethod
    def none(cls, n: int, above: Sequence[float] = (math.inf,)) -> "SampleCounts":
        above = tuple(above) or (math.inf,)
        per_bound, per_target = np.zeros((2, len(above), n), np.int64), np.zeros((7, n), np.int64)
        return cls(0, usable=per_bound[0], missing=per_target[0], conflicting=per_target[1],
                   nonfinite=per_target[2], negative=per_target[3], implausible=per_bound[1],
                   outside=per_target[4], series=per_target[5], differing=[set() for _ in range(n)], above=above,
                   leading=per_target[6])

    def subset(self, cols: np.ndarray) -> "SampleCounts":
        """These counts for the targets ``cols`` (indexes) only."""
        def of(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[cols]

        return replace(self, usable=self.usable[:, cols], missing=self.missing[cols],
                       conflicting=self.conflicting[cols], nonfinite=self.nonfinite[cols],
                       negative=self.negative[cols], implausible=self.implausible[:, cols],
                       outside=self.outside[cols], series=self.series[cols],
                       differing=[self.differing[i] for i in cols], leading=of(self.leading), covered=of(self.covered))

    def after_late_start(self, late: np.ndarray) -> "SampleCounts":
        """These counts without the first ``late[i]`` times of each target where the query had no
        sample yet (``late_start_times``: a start that its own note states once): ``missing`` less
        them, ``covered`` the times left. A query whose first sample came later still keeps that gap."""
        skipped = np.minimum(np.asarray(late, np.int64), self.leading)
        return replace(self, missing=self.missing - skipped, covered=self.times - skipped)

    def row(self, above: float) -> int:
        """The row of ``usable`` and ``implausible`` for the bound ``above``."""
        return self.above.index(above)

    def add(self, grid: Gridded, block: int = 512) -> None:
        """Count one segment's grid (``block`` rows at a time: read_signal copies what it reads)."""
        waiting = self.leading == self.times  # no sample at the target in the segments before
        sampled = grid.count > 0
        first = np.where(sampled.any(axis=0), sampled.argmax(axis=0), grid.count.shape[0])
        self.leading[waiting] += first[waiting]
        self.times += grid.values.shape[0]
        for lo in range(0, grid.values.shape[0], block):
            values, count = grid.values[lo:lo + block], grid.count[lo:lo + block]
            for b, above in enumerate(self.above):
                signal = read_signal(values, count == 1, np.zeros(values.shape), math.inf,
                                     implausible_above=np.full(values.shape[1], above))
                self.usable[b] += signal.usable.sum(axis=0)
                self.implausible[b] += signal.implausible.sum(axis=0)
            self.nonfinite += signal.nonfinite.sum(axis=0)
            self.negative += signal.negative.sum(axis=0)
            self.missing += (count == 0).sum(axis=0)
            self.conflicting += (count > 1).sum(axis=0)
        if grid.count.size:
            np.maximum(self.series, grid.count.max(axis=0), out=self.series)
        self.outside += grid.outside
        for seen, new in zip(self.differing, grid.differing):
            seen |= new

    def notes(self, what: str, targets: Sequence[TargetRef], labels: TargetLabels | tuple[str, str],
              whose: Sequence[str] = ()) -> list[str]:
        """One line per kind of problem, naming the targets it hit and how often. ``whose[b]``:
        who bounds the query at ``above[b]`` (e.g. `` for policy web``), where policies differ."""
        lines, times = [], self.times if self.covered is None else self.covered
        by = ", ".join(TargetLabels.of(labels).names(list(dict.fromkeys(t.kind for t in targets)) or ["Deployment"]))
        for (size, differ), rows in self._conflicts().items():
            differing = f" differing in {', '.join(sorted(differ))}" if differ else ""
            lines.append(f"{what}: {size} conflicting series{differing} for "
                         f"{_named(targets, rows, self.conflicting, times)}: a conflict is never averaged; "
                         f"aggregate them, e.g. sum by ({by}) (...)")
        whose = list(whose) + [""] * (len(self.above) - len(whose))
        implausible = [(f"implausible values above {above:g}{who}", counts)
                       for above, who, counts in zip(self.above, whose, self.implausible)]
        for kind, counts in (("NaN or infinite values", self.nonfinite), ("negative values", self.negative),
                             *implausible):
            if counts.any():
                lines.append(f"{what}: {kind} (not usable) for "
                             f"{_named(targets, np.flatnonzero(counts), counts, times)}")
        if self.outside.any():
            lines.append(f"{what}: samples stamped outside the window (dropped) for "
                         f"{_named(targets, np.flatnonzero(self.outside), self.outside, None)}")
        if self.missing.any():
            lines.append(f"{what}: no sample for "
                         f"{_named(targets, np.flatnonzero(self.missing), self.missing, times)}")
        return lines

    def _conflicts(self) -> dict[tuple[int, frozenset], list[int]]:
        groups: dict[tuple[int, frozenset], list[int]] = {}
        for i in np.flatnonzero(self.conflicting):
            groups.setdefault((int(self.series[i]), frozenset(self.differing[i])), []).append(int(i))
        return groups


def _named(targets: Sequence[TargetRef], rows, counts: np.ndarray, times: int | np.ndarray | None,
           most: int = 5) -> str:
    """``shop/web (240 of 241 times), shop/api (3 of 241 times) and 4 more`` (``times`` None: samples;
    (N,): each target's own)."""
    rows = list(rows)
    of = np.broadcast_to(times, counts.shape) if times is not None else None
    shown = [f"{targets[i].key} ({counts[i]} of {of[i]} times)" if of is not None
             else f"{targets[i].key} ({counts[i]} samples)" for i in rows[:most]]
    more = f" and {len(rows) - most} more" if len(rows) > most else ""
    return f"{plural(len(rows), 'target')}: " + ", ".join(shown) + more


@dataclass
class ReplayData:
    """Range-query results on one grid: ``t_s`` (T,), ``metrics`` {query: (T, N)}, ``actual`` (T, N).

    ``counts`` {query: (T, N)} series with a sample at each time (0, 1, 2: several), as the live
    source's present and conflict (without it, a finite value is a sample); ``samples`` {query:
    SampleCounts} over the whole window (``stream_backtest``, ``fetch_replay_data``); ``since_s``
    (N,) each target's first grid time with a sample (NaN: none), set by the same two."""

    targets: list[TargetRef]
    t_s: np.ndarray
    step_s: float
    metrics: dict[str, np.ndarray]
    actual: np.ndarray
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, SampleCounts] = field(default_factory=dict)
    since_s: np.ndarray | None = None

    @property
    def has_actual(self) -> np.ndarray:
        """(N,) the replicas that ran are known for the target (at some point)."""
        return np.isfinite(self.actual).any(axis=0)

    @property
    def present(self) -> np.ndarray:
        """(T, N) the target has a sample of some query (even an unusable one) or its replicas
        that ran are known: it exists at that time."""
        out = np.isfinite(self.actual)
        for expr, values in self.metrics.items():
            count = self.counts.get(expr)
            out |= count > 0 if count is not None else np.isfinite(values)
        return out


def first_times(present: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """(N,) the first time of ``t_s`` (T,) at which each column of ``present`` (T, N) is true; NaN
    where none is."""
    return np.where(present.any(axis=0), t_s[np.argmax(present, axis=0)] if t_s.size else np.nan, np.nan)


# --- the ports ------------------------------------------------------------------------------------

class ReplayCluster:
    """An in-memory Cluster of the counterfactual replicas: ``apply`` sets them at once. It holds
    the ``live`` targets only (all unless told otherwise): a target joins with ``add``, as a
    Deployment created live, and the Reconciler gives it a fresh state as it would live."""

    def __init__(self, targets: Sequence[TargetRef], initial: np.ndarray, live: np.ndarray | None = None):
        self.targets = list(targets)
        self.row = {t: i for i, t in enumerate(self.targets)}
        self.spec = np.asarray(initial, dtype=np.float64).copy()
        self.live = np.ones(len(self.targets), bool) if live is None else np.asarray(live, bool).copy()
        self.version = 0  # counts the joins: a PolicyView re-reads ``live`` when it changed
        self._resolved()

    def _resolved(self) -> None:
        # one list object while nothing joins: the Reconciler tells an unchanged list by identity
        self.version += 1
        self.rows = np.flatnonzero(self.live)
        self.resolved = self.targets if self.live.all() else [self.targets[i] for i in self.rows]
        self._ones = np.ones(self.rows.size, bool)
        self._zeros = np.zeros(self.rows.size, bool)

    def add(self, rows: np.ndarray, replicas: np.ndarray) -> None:
        """Targets ``rows`` (boolean (N,)) join with ``replicas`` (their number of them)."""
        self.spec[rows] = replicas
        self.live |= rows
        self._resolved()

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        return self.resolved

    def observe(self, targets: Sequence[TargetRef], with_pods: bool | None = None) -> ClusterView:
        spec = self.spec.copy() if len(targets) == len(self.targets) else self.spec[[self.row[t] for t in targets]]
        ones, zeros = (self._ones, self._zeros) if len(targets) == self.rows.size else (
            np.ones(len(targets), bool), np.zeros(len(targets), bool))
        return ClusterView(spec=spec, status=spec, ready=spec, rollout=zeros, exists=ones)

    def apply(self, action: Action) -> None:
        if action.kind is ActionKind.SCALE and action.replicas is not None:
            self.spec[self.row[action.target]] = action.replicas


class PolicyView:
    """One policy's part of a ReplayCluster shared by a set of policies (as ``setpoint run``'s
    reconcilers share one cluster): ``resolve`` gives the live targets the policy ``selects``
    ((N,) of the cluster's targets); the rest (``observe``, ``apply``, ``spec``, ``row``) is the
    cluster's. A view selecting every target resolves to the cluster's own list (its identity)."""

    def __init__(self, cluster: ReplayCluster, selects: np.ndarray):
        self.cluster = cluster
        self.selects = np.asarray(selects, bool)
        self._every = bool(self.selects.all())
        self._version = -1
        self._refresh()

    def __getattr__(self, name: str):
        return getattr(self.cluster, name)  # spec, row, targets, live, observe, apply, add

    def _refresh(self) -> None:
        """Re-read the live targets it selects when one joined since."""
        if self._version == self.cluster.version:
            return
        self._version = self.cluster.version
        if self._every:
            self.rows, self.resolved = self.cluster.rows, self.cluster.resolved
        else:
            self.rows = np.flatnonzero(self.cluster.live & self.selects)
            self.resolved = [self.cluster.targets[i] for i in self.rows]

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        self._refresh()
        return self.resolved

    def rows_of(self, targets: Sequence[TargetRef]) -> np.ndarray | list[int]:
        """The cluster rows of ``targets`` (the resolved list at once, else one look-up each)."""
        return self.rows if targets is self.resolved else [self.cluster.row[t] for t in targets]


class ReplayMetrics:
    """A MetricsSource over ReplayData at the grid index ``index`` (set by the runner each tick)."""

    def __init__(self, data: ReplayData, cluster: ReplayCluster, per_replica: set[str]):
        self.data = data
        self.cluster = cluster
        self.per_replica = per_replica
        self.index = 0
        n = len(data.targets)
        self._zeros = np.zeros(n)
        self._no = np.zeros(n, bool)

    def query(self, expr: str, targets: Sequence[TargetRef], at: float, *, labels=None) -> Samples:
        """The grid's row as the live source answers: present where exactly one series had a
        sample (NaN and +/-Inf included: the core masks them), conflict where several had."""
        every = len(targets) == len(self.data.targets)
        cols = slice(None) if every else (  # the live targets only
            self.cluster.rows if targets is self.cluster.resolved else [self.cluster.row[t] for t in targets])
        values = self.data.metrics[expr][self.index, cols].copy()
        zeros, no = (self._zeros, self._no) if every else (np.zeros(len(targets)), np.zeros(len(targets), bool))
        if expr in self.per_replica:
            values = rescaled(values, self.data.actual[self.index, cols], self.cluster.spec[cols])
        count = self.data.counts.get(expr)
        if count is None:  # data without counts (built by hand, warm start): a finite value is a sample
            return Samples(values=values, present=np.isfinite(values), age_s=zeros, conflict=no)
        return Samples(values=values, present=count[self.index, cols] == 1, age_s=zeros,
                       conflict=count[self.index, cols] > 1)


def rescaled(values: np.ndarray, actual: np.ndarray, counterfactual: np.ndarray) -> np.ndarray:
    """``values x actual / counterfactual`` where both counts are known and positive, else as
    observed (N,)."""
    ok = np.isfinite(actual) & (actual > 0) & (counterfactual > 0)
    factor = np.where(ok, actual / np.where(ok, counterfactual, 1.0), 1.0)
    return values * factor


# --- the runner -----------------------------------------------------------------------------------

@dataclass
class BacktestRun:
    """One policy replayed: ``t_s`` (K,) tick times, ``replicas`` (K, N) spec replicas after each
    tick's decision, ``reasons`` (K, N) reason codes (-1: no decision), ``required`` (K, N) replicas
    the observed load needs at the policy's targets (NaN unknown)."""

    name: str
    description: str
    t_s: np.ndarray
    replicas: np.ndarray
    reasons: np.ndarray
    required: np.ndarray
    errors: list[str] = field(default_factory=list)
    #: the policies replayed together (one for a single policy), in the set's order
    policies: tuple[str, ...] = ()
    #: (N,) the index in ``policies`` of the policy that governed each target (-1: none did: it never
    #: had a sample, or no policy selects it)
    owners: np.ndarray | None = None
    #: (P, N) the targets each policy selects (before claims: two may select one)
    selects: np.ndarray | None = None
    #: {policy: {target key: why it left the target alone}}: another policy governed it
    left_alone: dict[str, dict[str, str]] = field(default_factory=dict)

    def split(self) -> dict[str, "BacktestRun"]:
        """{policy: this run over the targets it governed} (``owners``); the whole run for one policy."""
        if self.owners is None or len(self.policies) < 2:
            return {self.policies[0] if self.policies else self.name: self}
        return {name: self.columns(self.owners == i) for i, name in enumerate(self.policies)}

    def columns(self, keep: np.ndarray) -> "BacktestRun":
        """This run over the targets ``keep`` (N,) only."""
        return replace(self, replicas=self.replicas[:, keep], reasons=self.reasons[:, keep],
                       required=self.required[:, keep], owners=None, selects=None)


def backtest_policy(policy: RuntimePolicy) -> RuntimePolicy:
    """The policy without its health checks: a backtest replays scaling only."""
    return replace(policy, health=None, health_queries=(), source="")  # no longer the document it was compiled from


def tick_indexes(data: ReplayData, interval_s: float) -> np.ndarray:
    """Grid indexes at which the policy runs: every ``interval_s`` (at least every sample)."""
    every = max(1, int(round(interval_s / data.step_s)))
    return np.arange(0, data.t_s.size, every)


def first_known(a: np.ndarray) -> np.ndarray:
    """(N,) the first finite value of each column of (T, N) ``a``; NaN where there is none."""
    ok = np.isfinite(a)
    rows = np.argmax(ok, axis=0)
    return np.where(ok.any(axis=0), a[rows, np.arange(a.shape[1])], np.nan) if a.size else np.full(a.shape[1], np.nan)


def required_replicas(params: PolicyParams, queries: Sequence[str], data: ReplayData, rows: np.ndarray) -> np.ndarray:
    """(K, N) replicas the observed load needs to sit at each metric's target (the largest over
    metrics): per-replica metrics ``actual x value / target``, totals ``value / target``. NaN
    where unknown (no sample, or a per-replica metric without the actual replicas)."""
    out = np.full((rows.size, len(data.targets)), np.nan)
    for metric, expr in zip(params.metrics, queries):
        values = data.metrics[expr][rows]
        if metric.kind in PER_REPLICA_KINDS:
            need = data.actual[rows] * values / metric.target
        else:
            need = values / metric.target
        out = np.fmax(out, need)  # fmax: NaN only where every metric is NaN
    return out


class Replayer:
    """Policies replayed through the Reconciler, fed consecutive segments of one grid (so fetching
    the next window can overlap replaying this one). One cycle per policy interval.

    Several policies replay together as ``setpoint run`` runs them: one reconciler each over a
    cluster they share (``PolicyView``), each resolving the targets it ``selects`` ((P, N); default:
    all of them), and one ``TargetClaims`` between them, so a target two policies select is
    governed by the first to select it and the other leaves it alone (controller/runtime/claims.py).
    Where the cycles of several policies fall at one grid time they run in the set's order: at the
    start, the first policy of the set that selects a target governs it.

    Each target is replayed from its first tick at or after its first sample (``ReplayData.present``:
    a Deployment created mid-window, or history younger than the window); before it, its replicas
    are NaN (it did not exist: nothing to score). Its counterfactual starts from the first replicas
    known to have run from then on in that segment (clamped to the bounds of the policy that starts
    it; that policy's min where unknown)."""

    def __init__(self, policy: RuntimePolicy | Sequence[RuntimePolicy], *, name: str = "policy",
                 description: str = "", selects: np.ndarray | None = None):
        given = [policy] if isinstance(policy, RuntimePolicy) else list(policy)
        self.policies = [backtest_policy(p) for p in given]
        self.policy = self.policies[0]
        self.name, self.description = name, description
        self.selects = None if selects is None else np.asarray(selects, bool)
        self.reconcilers: list[Reconciler] = []
        self.views: list[PolicyView] = []
        self.metrics: list[ReplayMetrics] = []
        self.cluster: ReplayCluster | None = None
        self.every: list[int] = []
        self.next_tick = [0] * len(self.policies)  # grid index (over all segments) of each policy's next cycle
        self.offset = 0  # grid index of the current segment's first sample
        self._t: list[np.ndarray] = []
        self._replicas: list[np.ndarray] = []
        self._reasons: list[np.ndarray] = []
        self._required: list[np.ndarray] = []
        self.errors: list[str] = []
        self.owners = np.zeros(0, np.int64)
        self.left_alone: dict[str, dict[str, str]] = {}

    @property
    def reconciler(self) -> Reconciler | None:
        """The first policy's reconciler (None before the first segment)."""
        return self.reconcilers[0] if self.reconcilers else None

    def _start(self, segment: ReplayData) -> None:
        n = len(segment.targets)
        if self.selects is None:
            self.selects = np.ones((len(self.policies), n), bool)
        self.seen = np.zeros(n, bool)  # (N,) a sample before the current segment
        # who governs each target: its first selecting policy until a cycle says (-1: none selects it)
        self.owners = np.where(self.selects.any(axis=0), np.argmax(self.selects, axis=0), -1)
        self.cluster = ReplayCluster(segment.targets, np.full(n, float(self.policy.params.min_replicas)),
                                     np.zeros(n, bool))
        claims = TargetClaims() if len(self.policies) > 1 else None  # one policy: nothing to share
        for policy, selects in zip(self.policies, self.selects):
            view = PolicyView(self.cluster, selects)
            per_replica = {q for q, m in zip(policy.queries, policy.params.metrics) if m.kind in PER_REPLICA_KINDS}
            metrics = ReplayMetrics(segment, view, per_replica)
            reconciler = Reconciler(policy, metrics, view, claims=claims)
            reconciler.with_conditions = False  # per-target Python; a backtest reports none
            self.views.append(view)
            self.metrics.append(metrics)
            self.reconcilers.append(reconciler)
            self.every.append(max(1, int(round(policy.params.interval_s / segment.step_s))))

    def feed(self, segment: ReplayData, on_tick: Callable[[int], None] | None = None,
             progress_every: int = 500) -> None:
        """Run every cycle that falls in ``segment`` (the grid's next samples)."""
        if not self.reconcilers:
            self._start(segment)
        for metrics in self.metrics:
            metrics.data = segment
        due = [np.arange(first - self.offset, segment.t_s.size, every)
               for first, every in zip(self.next_tick, self.every)]
        rows = due[0] if len(due) == 1 else np.unique(np.concatenate(due))
        cycles = [np.isin(rows, d) for d in due]  # (K,) per policy: it cycles at that row
        n = len(segment.targets)
        replicas = np.empty((rows.size, n))
        reasons = np.full((rows.size, n), -1, dtype=np.int64)
        # seen[k]: a sample at or before row k (this segment or an earlier one)
        seen = np.logical_or.accumulate(segment.present, axis=0) | self.seen
        for j, k in enumerate(rows):
            for i in range(len(self.policies)):
                if cycles[i][j] and self._ready(i, segment, int(k), seen[k]):
                    self._cycle(i, segment, int(k), reasons[j])
            live = self.cluster.live
            replicas[j] = np.where(live, self.cluster.spec, np.nan)
            if on_tick and (j % progress_every == 0 or j == rows.size - 1):
                on_tick(j + 1)
        self._t.append(segment.t_s[rows])
        self._replicas.append(replicas)
        self._reasons.append(reasons)
        self._required.append(self._required_by_owner(segment, rows))
        for i, d in enumerate(due):
            if d.size:
                self.next_tick[i] = self.offset + int(d[-1]) + self.every[i]
        if segment.t_s.size:  # a first sample after this segment's last tick: started at the next one's first
            self.seen = seen[-1]
        self.offset += segment.t_s.size

    def _ready(self, i: int, segment: ReplayData, k: int, seen: np.ndarray) -> bool:
        """Start the targets policy ``i`` selects that have a sample by row ``k``; whether any of
        them is live (else the policy has nothing to cycle on)."""
        live, selects = self.cluster.live, self.selects[i]
        waiting = selects & ~live
        if waiting.any():
            self._start_targets(segment, k, seen & waiting, self.policies[i].params)
            live = self.cluster.live
        return bool((live & selects).any())

    def _cycle(self, i: int, segment: ReplayData, k: int, reasons: np.ndarray) -> None:
        """Policy ``i``'s cycle at row ``k``: its decision's reasons, who governs what, its errors."""
        self.metrics[i].index = k
        result = self.reconcilers[i].cycle(float(segment.t_s[k]))
        governed = self.views[i].rows_of(result.targets)
        self.owners[governed] = i
        if result.decision is not None:
            reasons[governed] = result.decision.reason
        if result.left_alone:
            self.left_alone.setdefault(self.policies[i].name, {}).update(result.left_alone)
        if result.errors and len(self.errors) < 20:
            prefix = f"policy {self.policies[i].name}: " if len(self.policies) > 1 else ""
            self.errors += [prefix + e for e in result.errors]

    def _required_by_owner(self, segment: ReplayData, rows: np.ndarray) -> np.ndarray:
        """(K, N) the replicas the observed load needs at the targets of the policy governing each
        target (``required_replicas``); NaN for a target no policy selects."""
        out = np.full((rows.size, len(segment.targets)), np.nan)
        for i, policy in enumerate(self.policies):
            mine = self.owners == i
            if mine.all():
                return required_replicas(policy.params, policy.queries, segment, rows)
            if mine.any():
                out[:, mine] = required_replicas(policy.params, policy.queries, segment, rows)[:, mine]
        return out

    def result(self) -> BacktestRun:
        def joined(parts: list[np.ndarray], shape_tail: tuple) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, *shape_tail))

        n = self._replicas[0].shape[1] if self._replicas else 0
        return BacktestRun(self.name, self.description, joined(self._t, ()), joined(self._replicas, (n,)),
                           joined(self._reasons, (n,)).astype(np.int64), joined(self._required, (n,)), self.errors,
                           tuple(p.name for p in self.policies), self.owners.copy(), self.selects,
                           self.left_alone)

    def _start_targets(self, segment: ReplayData, k: int, fresh: np.ndarray, params: PolicyParams) -> None:
        """Start the ``fresh`` (N,) targets at row ``k``: their counterfactual replicas become the
        first known to have run from row ``k`` on in ``segment`` (clamped to ``params``' bounds),
        else ``params``' min."""
        if not fresh.any():
            return
        first = first_known(segment.actual[k:, fresh])
        self.cluster.add(fresh, np.where(np.isfinite(first), np.clip(first, params.min_replicas, params.max_replicas),
                                         params.min_replicas))


def run_backtest(policy: RuntimePolicy, data: ReplayData, *, name: str = "policy", description: str = "",
                 on_tick: Callable[[int, int], None] | None = None) -> BacktestRun:
    """Replay ``policy`` over ``data`` (one segment) with the Reconciler; see :class:`Replayer`."""
    replayer = Replayer(policy, name=name, description=description)
    total = tick_indexes(data, policy.params.interval_s).size
    replayer.feed(data, (lambda done: on_tick(done, total)) if on_tick else None)
    return replayer.result()


# --- scores that need the observed load (the others are the simulator's) ------------------------

def capacity_risk_minutes(t_s: np.ndarray, replicas: np.ndarray, required: np.ndarray, tick_s: float) -> float:
    """Minutes (summed over targets) in which the replicas were below what the observed load
    needs at the policy's target. ``t_s`` (K,), ``replicas`` and ``required`` (K, N); each tick
    holds until the next, the last for ``tick_s``. Unknown need (NaN) is never a risk."""
    if t_s.size == 0:
        return 0.0
    dt = np.diff(t_s, append=t_s[-1] + tick_s)
    below = np.nan_to_num(required, nan=-math.inf) > replicas * (1 + 1e-9)
    return float(dt @ below.sum(axis=1)) / 60.0


# --- fetching -------------------------------------------------------------------------------------

def fetch_replay_data(source, policies: Sequence[RuntimePolicy], start_s: float, end_s: float, step_s: float,
                      labels: TargetLabels | tuple[str, str] = DEFAULT_TARGET_LABELS,
                      on_query: Callable[[str, int, int], None] | None = None,
                      max_concurrency: int = 4) -> ReplayData:
    """Range-query every metric of ``policies`` and the replicas that ran, onto one grid.

    ``source`` has ``query_range(expr, start_s, end_s, step_s, on_chunk=...)`` returning series
    with ``.labels``, ``.times``, ``.values`` (controller.adapters.prometheus.PrometheusSource).
    The targets are the first policy's (its names, or the workloads its label selector's
    namespace shows in the series). ``on_query(what, done, total)`` reports chunks.
    """
    first = policies[0]
    plan = plan_queries(policies, labels)
    queries, replicas_expr, _ = plan
    exprs = queries + [replicas_expr]

    def fetch(i: int):
        what = "replicas" if i == len(queries) else f"metric {i + 1}/{len(queries)}"
        return source.query_range(exprs[i], start_s, end_s, step_s, on_chunk=(
            lambda done, total: on_query(what, done, total)) if on_query else None)

    # Concurrently: Prometheus evaluates one query while this process parses another's answer.
    with ThreadPoolExecutor(max(1, min(max_concurrency, len(exprs))), thread_name_prefix="range-query") as pool:
        fetched = dict(zip(exprs, pool.map(fetch, range(len(exprs)))))
    targets = discover_targets(first.selector, [fetched[q] for q in queries], labels)
    data = replay_segment(fetched, plan, labels, targets, time_grid(start_s, end_s, step_s), step_s, {},
                          distinct_bounds(query_bounds(policies)))
    data.since_s = first_times(data.present, data.t_s)
    return data


def replay_segment(fetched: dict, plan: tuple[list[str], str, TargetLabels], labels: TargetLabels | tuple[str, str],
                   targets: Sequence[TargetRef], t_s: np.ndarray, step_s: float,
                   samples: dict[str, SampleCounts], bounds: dict[str, tuple[float, ...]] | None = None,
                   lone: dict[str, tuple[int, ...]] | None = None) -> ReplayData:
    """The range-query answers ``fetched`` {expr: series} of one segment on its grid ``t_s``, for
    the queries of ``plan`` (``plan_queries``); each query's samples are counted into ``samples``
    (added to across segments, and kept as the result's ``samples``), implausible above its
    ``bounds`` (each query's distinct bounds, ``distinct_bounds``; none: no bound). ``lone``:
    where each query's series without target labels goes (``lone_columns``; default: the one
    target of a one-target grid)."""
    queries, replicas_expr, replica_labels = plan
    grids = {e: grid_series(fetched[e], targets, t_s, step_s, replica_labels if e == replicas_expr else labels,
                            (lone or {}).get(e, ())) for e in (*queries, replicas_expr)}
    for expr, grid in grids.items():
        samples.setdefault(expr, SampleCounts.none(len(targets), (bounds or {}).get(expr, (math.inf,)))).add(grid)
    metrics = {q: grids[q].values for q in queries}
    counts = {q: np.minimum(grids[q].count, 2).astype(np.int8) for q in queries}
    return ReplayData(list(targets), t_s, step_s, metrics, grids[replicas_expr].values, counts, samples)


def plan_queries(policies: Sequence[RuntimePolicy], labels: TargetLabels | tuple[str, str],
                 owners: Sequence[RuntimePolicy] | None = None) -> tuple[list[str], str, TargetLabels]:
    """The distinct metric queries of ``policies`` (each once, however many policies read it),
    the query for the replicas that ran (of the workloads of ``owners``, the policies whose
    targets are replayed; default the first policy: its kind and namespace, from
    kube-state-metrics) and the labels that key it."""
    queries = list(dict.fromkeys([q for p in policies for q in p.queries]
                                 + [q for p in policies for q in p.latest_queries if q is not None]))
    replicas_expr, replica_labels = replicas_query([p.selector for p in (owners or policies[:1])], labels)
    return queries, replicas_expr, replica_labels


def replicas_query(selectors: Sequence[TargetSelector], labels: TargetLabels | tuple[str, str]
                   ) -> tuple[str, TargetLabels]:
    """The query for the replicas that ran of the workloads ``selectors`` select, and the labels
    that key its series (kube-state-metrics': ``deployment`` or ``statefulset`` by kind, beside
    each kind's namespace label of ``labels``). One kind in one namespace: ``REPLICAS_QUERIES``'
    query. Several namespaces: one matcher ``namespace=~"a|b"``. Deployments and StatefulSets
    together: both families joined with ``or``, each series matched by its own kind's label."""
    labels = TargetLabels.of(labels)
    keyed = TargetLabels(tuple((kind, (labels.for_kind(kind)[0], kind.lower())) for kind, _ in labels.pairs))
    kinds = list(dict.fromkeys(s.kind for s in selectors))
    namespaces = list(dict.fromkeys(s.namespace for s in selectors))
    if len(kinds) == 1 and len(namespaces) == 1:
        kind = kinds[0]
        return (REPLICAS_QUERIES.get(kind, REPLICAS_QUERIES["Deployment"]) % namespaces[0],
                keyed if kind in REPLICAS_QUERIES else labels)
    # namespaces are DNS labels (policy/schema.py): nothing in them a regex or a PromQL string escapes
    matcher = f'namespace="{namespaces[0]}"' if len(namespaces) == 1 else f'namespace=~"{"|".join(namespaces)}"'
    deployments = f"max by (namespace, deployment) (kube_deployment_spec_replicas{{{matcher}}})"
    statefulsets = f"max by (namespace, statefulset) (kube_statefulset_replicas{{{matcher}}})"
    if kinds == ["StatefulSet"]:
        return statefulsets, keyed
    if "StatefulSet" not in kinds:
        return deployments, keyed
    return f"{deployments} or {statefulsets}", keyed


def query_names(policies: Sequence[RuntimePolicy]) -> dict[str, str]:
    """{query: how notes name it}: ``metric rps`` (the first policy's name for a shared query),
    ``metric rps (ramp latest)``."""
    names: dict[str, str] = {}
    for p in policies:
        for name, query, latest in zip(p.params.metric_names, p.queries, p.latest_queries or [None] * len(p.queries)):
            names.setdefault(query, f"metric {name}")
            if latest is not None:
                names.setdefault(latest, f"metric {name} (ramp latest)")
    return names


def query_bounds(policies: Sequence[RuntimePolicy]) -> dict[str, list[tuple[float, int]]]:
    """{query: [(the sample above which it is implausible, index of the policy)]}, one pair per
    policy and metric that reads it (core/scaling/signal.py's bound; a ramp's latest reading has
    its metric's), in the order of ``policies``."""
    bounds: dict[str, list[tuple[float, int]]] = {}
    for i, p in enumerate(policies):
        above = p.params.metric_implausible_above.tolist()
        for j, (query, latest) in enumerate(zip(p.queries, p.latest_queries or [None] * len(p.queries))):
            for q in (query, latest):
                if q is not None:
                    bounds.setdefault(q, []).append((above[j], i))
    return bounds


def distinct_bounds(bounds: dict[str, list[tuple[float, int]]]) -> dict[str, tuple[float, ...]]:
    """{query: its distinct bounds, in order} for SampleCounts."""
    return {q: tuple(dict.fromkeys(b for b, _ in pairs)) for q, pairs in bounds.items()}


def sample_notes(policies: Sequence[RuntimePolicy], data: ReplayData, labels: TargetLabels | tuple[str, str],
                 names: Sequence[str] | None = None, selects: Sequence[np.ndarray | None] | None = None,
                 owners: Sequence[RuntimePolicy] | None = None, replicas_of_selected: bool = False) -> list[str]:
    """What was wrong with the samples of each query of ``policies`` (``data.samples``), one line
    per query and kind of problem, naming the targets; the replicas that ran last (queried for the
    workloads of ``owners``, ``plan_queries``'). A query that policies bound differently gets one
    implausible line per bound, naming the policies (``names``, else theirs). ``selects[i]``: (N,)
    the targets policy ``i`` replays on (None: all): a query is judged on the targets of the
    policies that read it only (a set's policies read their own workloads' series).
    ``replicas_of_selected``: the replicas line too names only the targets of ``policies`` (for
    some policies of a set, e.g. those that saw nothing: not the other policies' workloads).
    Times before a target's late start (``late_start_times``) are not counted: ``start_notes`` say so once."""
    names = list(names) if names is not None else [p.name for p in policies]
    queries, replicas_expr, replica_labels = plan_queries(policies, labels, owners)
    what = query_names(policies)
    bounds = query_bounds(policies)
    late = late_start_times(data)
    lines = []
    for expr in queries:
        if expr in data.samples:
            counts, targets = _read_by(expr, data.samples[expr].after_late_start(late), policies, data, selects)
            whose = [""] * len(counts.above)
            if len(counts.above) > 1:
                whose = [" for " + ", ".join(dict.fromkeys(f"policy {names[i]}" for b, i in bounds.get(expr, ())
                                                          if b == above))
                         for above in counts.above]
            lines += counts.notes(what.get(expr, "metric"), targets, labels, whose)
    if replicas_expr in data.samples:
        counts, targets = data.samples[replicas_expr].after_late_start(late), data.targets
        if replicas_of_selected and selects and all(chosen is not None for chosen in selects):
            cols = np.flatnonzero(np.any([np.asarray(chosen, bool) for chosen in selects], axis=0))
            counts, targets = counts.subset(cols), [data.targets[i] for i in cols]
        lines += counts.notes("the replicas that ran (kube-state-metrics)", targets, replica_labels)
    return lines


def _read_by(expr: str, counts: SampleCounts, policies: Sequence[RuntimePolicy], data: ReplayData,
             selects: Sequence[np.ndarray | None] | None) -> tuple[SampleCounts, list[TargetRef]]:
    """(``counts``, those of ``expr``, the targets) over the targets of the policies that read it."""
    if not selects:
        return counts, data.targets
    mask = np.zeros(len(data.targets), bool)
    for p, chosen in zip(policies, selects):
        if expr in p.queries or expr in p.latest_queries:
            mask |= True if chosen is None else np.asarray(chosen, bool)
    if mask.all():
        return counts, data.targets
    cols = np.flatnonzero(mask)
    return counts.subset(cols), [data.targets[i] for i in cols]


def blind_policies(policies: Sequence[RuntimePolicy], data: ReplayData,
                   selects: Sequence[np.ndarray | None] | None = None) -> list[RuntimePolicy]:
    """The policies that saw no usable sample of any of their metrics (as counted in
    ``data.samples``, under the policy's own bounds) over the whole window, at the targets
    ``selects[i]`` (N,) policy ``i`` replays on (None: all): their replay decided on nothing."""
    out = []
    for i, p in enumerate(policies):
        chosen = selects[i] if selects else None
        if chosen is not None and not np.any(chosen):
            continue  # it selects no target: nothing to see (said on its own)
        cols = slice(None) if chosen is None else np.asarray(chosen, bool)
        above = p.params.metric_implausible_above.tolist()
        counted = [data.samples[q].usable[data.samples[q].row(above[j])][cols]
                   for j, q in enumerate(p.queries) if q in data.samples and above[j] in data.samples[q].above]
        if counted and not any(c.any() for c in counted):
            out.append(p)
    return out


def segment_windows(start_s: float, end_s: float, step_s: float, points: int) -> list[tuple[float, float]]:
    """[(lo, hi)] consecutive windows of the grid start, start + step, ... <= end, ``points`` grid
    points each at most."""
    total = int((end_s - start_s) // step_s) + 1
    return [(start_s + i * step_s, start_s + (min(i + points, total) - 1) * step_s) for i in range(0, total, points)]


def stream_backtest(source, policies: Sequence[RuntimePolicy | Sequence[RuntimePolicy]], names: Sequence[str],
                    descriptions: Sequence[str], start_s: float, end_s: float, step_s: float,
                    labels: TargetLabels | tuple[str, str] = DEFAULT_TARGET_LABELS, *, segment_points: int = 2880,
                    max_concurrency: int = 4, timeout_s: float | None = None,
                    on_progress: Callable[[int, int], None] | None = None) -> tuple[ReplayData, list[BacktestRun]]:
    """Fetch the window segment by segment (``segment_points`` grid points each, one range query
    per distinct metric query of all the runs and one for the replicas that ran, each within
    ``timeout_s``: ``query_range``'s) and replay every run over each segment while the next one is
    fetched. Returns the replicas that ran on the whole grid (``metrics`` left empty: the segments
    are dropped once replayed; ``samples`` counts what each query gave over the window;
    ``since_s`` each target's first sample) and one BacktestRun per run.

    A run is one policy, or a set of policies replayed together (``Replayer``). The targets are the
    first run's (``set_targets``); a later run of several policies selects among them by each
    policy's names or namespace (``selections``), a later run of one policy replays on all of them.
    None: no run. ``on_progress(segments done, segments)``.
    """
    sets = [[p] if isinstance(p, RuntimePolicy) else list(p) for p in policies]
    flat = [p for one in sets for p in one]
    plan = plan_queries(flat, labels, owners=sets[0])
    queries, replicas_expr, _ = plan
    exprs = queries + [replicas_expr]
    windows = segment_windows(start_s, end_s, step_s, segment_points)
    samples: dict[str, SampleCounts] = {}
    bounds = distinct_bounds(query_bounds(flat))

    def fetch(window: tuple[float, float]) -> dict:
        lo, hi = window
        return dict(zip(exprs, queries_pool.map(lambda e: source.query_range(e, lo, hi, step_s, timeout_s=timeout_s),
                                                exprs)))

    actual: list[np.ndarray] = []
    since: list[np.ndarray] = []
    with ThreadPoolExecutor(max(1, min(max_concurrency, len(exprs))), thread_name_prefix="range-query") as queries_pool, \
            ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch, conflicts_unlogged():
        pending = prefetch.submit(fetch, windows[0])
        # the whole window's targets before the replay: the first segment may predate a workload
        targets, first_selects = set_targets(source, sets[0], queries, start_s, end_s, step_s, labels, timeout_s)
        replayers = [Replayer(one, name=n, description=d,
                              selects=first_selects if r == 0 else selections(one, targets))
                     for r, (one, n, d) in enumerate(zip(sets, names, descriptions))]
        lone = lone_columns(flat, targets)
        for i, window in enumerate(windows if targets else ()):
            fetched = pending.result()
            if i + 1 < len(windows):  # Prometheus works on the next window while this one replays
                pending = prefetch.submit(fetch, windows[i + 1])
            data = replay_segment(fetched, plan, labels, targets, time_grid(*window, step_s), step_s, samples,
                                  bounds, lone)
            for replayer in replayers:
                replayer.feed(data)
            actual.append(data.actual)
            since.append(first_times(data.present, data.t_s))
            if on_progress:
                on_progress(i + 1, len(windows))
    t_s = time_grid(start_s, end_s, step_s)
    whole = np.concatenate(actual) if actual else np.zeros((t_s.size, 0))
    first_s = np.fmin.reduce(since) if since else np.zeros(0)  # fmin: the earliest segment with a sample
    return (ReplayData(targets, t_s, step_s, {}, whole, samples=samples, since_s=first_s),
            on_common_ticks([r.result() for r in replayers]))


def on_common_ticks(runs: list[BacktestRun]) -> list[BacktestRun]:
    """``runs`` on one time axis: the union of their tick times, each run's replicas and need held
    from its own last tick (a step function: nothing changes between a policy's cycles), NaN
    before its first, reason -1 (no decision) where it did not cycle. Runs of policies with other
    intervals (``--compare`` a 30 s policy with a 15 s one) ticked at other times: the timeline,
    the plots and the actual's figures read every run on the first one's ticks. Unchanged when
    all tick alike."""
    if len(runs) < 2 or all(np.array_equal(r.t_s, runs[0].t_s) for r in runs[1:]):
        return runs
    t = np.unique(np.concatenate([r.t_s for r in runs]))
    return [_held_on(r, t) for r in runs]


def _held_on(run: BacktestRun, t: np.ndarray) -> BacktestRun:
    """``run`` on the ticks ``t`` ((K,) a superset of its own): see :func:`on_common_ticks`."""
    at = np.searchsorted(run.t_s, t, side="right") - 1  # the run's last tick at or before each of t
    before = at < 0
    at = np.maximum(at, 0)
    cycled = ~before & (run.t_s[at] == t) if run.t_s.size else np.zeros(t.size, bool)

    def held(a: np.ndarray, fill: float) -> np.ndarray:
        if not run.t_s.size:
            return np.full((t.size, *a.shape[1:]), fill, dtype=a.dtype)
        out = a[at]
        out[before] = fill
        return out

    reasons = held(run.reasons, -1)
    reasons[~cycled] = -1
    return replace(run, t_s=t, replicas=held(run.replicas, np.nan), reasons=reasons,
                   required=held(run.required, np.nan))


class _Unclaimed(logging.Filter):
    """Drops the reconciler's warning that another policy governs a workload (``governed_by``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "governed_by")


@contextmanager
def conflicts_unlogged():
    """While a set replays, the reconcilers' PolicyConflict warnings stay out of the log: a
    replay says each conflict once, in its notes (``conflict_notes``), not once per run."""
    logger, quiet = logging.getLogger("setpoint.runtime"), _Unclaimed()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def set_targets(source, policies: Sequence[RuntimePolicy], queries: Sequence[str], start_s: float, end_s: float,
                step_s: float, labels: TargetLabels | tuple[str, str], timeout_s: float | None = None
                ) -> tuple[list[TargetRef], np.ndarray | None]:
    """(the targets of a set of policies, sorted; (P, N) the ones each policy selects, None for one
    policy: all of them). Each policy's are found as for one (``discover_window``): its names,
    or the workloads of its namespace seen in its queries (one policy alone: in ``queries``, every
    run's, as before sets). The label selectors of several policies share one discovery pass."""
    if len(policies) == 1:
        return discover_window(source, policies[0].selector, queries, start_s, end_s, step_s, labels, timeout_s), None
    found = discover_each(source, [p for p in policies if not p.selector.by_name], start_s, end_s, step_s, labels,
                          timeout_s)
    each = [discover_targets(p.selector, [], labels) if p.selector.by_name else found[p.name] for p in policies]
    targets = sorted(set().union(*each))
    chosen = [set(mine) for mine in each]
    return targets, np.array([[t in mine for t in targets] for mine in chosen], bool).reshape(len(each), -1)


#: The label that tells, in the one discovery query of several label selectors, which query a
#: workload was seen in (``discover_each``).
QUERY_TAG = "setpoint_query"


def discover_each(source, policies: Sequence[RuntimePolicy], start_s: float, end_s: float, step_s: float,
                  labels: TargetLabels | tuple[str, str], timeout_s: float | None = None) -> dict[str, list[TargetRef]]:
    """{policy: its targets} of label-selector ``policies``, each the workloads of its namespace
    seen in its own queries, in one pass (``discover_window``'s grid): each distinct query grouped
    by the target labels and tagged with its index (``QUERY_TAG``, by ``label_replace``), joined
    with ``or``."""
    if not policies:
        return {}
    own = {p.name: list(dict.fromkeys((*p.queries, *(q for q in p.latest_queries if q is not None))))
           for p in policies}
    queries = list(dict.fromkeys(q for qs in own.values() for q in qs))
    labels = TargetLabels.of(labels)
    kinds = list(dict.fromkeys(p.selector.kind for p in policies))
    by = ", ".join(labels.names(kinds))
    expr = " or ".join(f'label_replace(group by ({by}) ({q}), "{QUERY_TAG}", "{i}", "__name__", ".*")'
                       for i, q in enumerate(queries))
    first, last, coarse = discovery_grid(start_s, end_s, step_s)
    # per query and kind: the (namespace, name) its series give a workload of that kind
    seen: dict[tuple[int, str], set[tuple[str, str]]] = {(i, k): set() for i in range(len(queries)) for k in kinds}
    for lo, hi in segment_windows(first, last, coarse, DISCOVERY_POINTS):
        for s in source.query_range(expr, lo, hi, coarse, timeout_s=timeout_s):
            tag = s.labels.get(QUERY_TAG, "")
            if not (tag.isdigit() and int(tag) < len(queries)):
                continue
            for kind in kinds:
                key = labels.key(s.labels, kind)
                if key is not None:
                    seen[(int(tag), kind)].add(key)
    out = {}
    for p in policies:
        kind = p.selector.kind
        keys = set().union(*(seen[(queries.index(q), kind)] for q in own[p.name]))
        out[p.name] = sorted(TargetRef(ns, name, kind) for ns, name in keys if ns == p.selector.namespace)
    return out


def selections(policies: Sequence[RuntimePolicy], targets: Sequence[TargetRef]) -> np.ndarray | None:
    """(P, N) the ``targets`` (another run's) each of ``policies`` selects: its names, or (a label
    selector) every target of its kind in its namespace. One policy: None (all of them, whatever
    it selects: a policy compared with one other replays on the first one's targets)."""
    if len(policies) == 1:
        return None
    return np.array([_selected(p, targets) for p in policies], bool).reshape(len(policies), len(targets))


def _selected(policy: RuntimePolicy, targets: Sequence[TargetRef]) -> list[bool]:
    """(N,) whether ``policy`` selects each of ``targets``: its names, or (a label selector) every
    target of its kind in its namespace."""
    sel = policy.selector
    named = {(r.namespace, r.name) for r in sel.refs()} if sel.by_name else None
    return [(t.namespace, t.name) in named if named is not None
            else t.namespace == sel.namespace and t.kind == sel.kind for t in targets]


def lone_columns(policies: Sequence[RuntimePolicy], targets: Sequence[TargetRef]) -> dict[str, tuple[int, ...]]:
    """{query: the columns of ``targets`` its one series without target labels belongs to}: the
    target of each policy that reads it and selects one target, as the live adapter reads such a
    series for a single-target policy (an External metric's sum(...) of an imported HPA). In a
    set of several policies the grid has several targets, and that series was read as nobody's:
    the policy was 'blind' and stopped the backtest."""
    out: dict[str, set[int]] = {}
    for policy in policies:
        columns = np.flatnonzero(_selected(policy, targets))
        if columns.size != 1:
            continue
        for query in (*policy.queries, *(q for q in policy.latest_queries if q is not None)):
            out.setdefault(query, set()).add(int(columns[0]))
    return {query: tuple(sorted(columns)) for query, columns in out.items()}


def conflict_notes(run: BacktestRun, targets: Sequence[TargetRef], prefix: str = "", most: int = 5) -> list[str]:
    """One note per pair of policies of ``run`` that selected the same workloads: which one governed
    them and which left them alone (``setpoint run`` does the same, with a PolicyConflict Event);
    each begins with ``prefix``."""
    pairs: dict[tuple[str, str], list[str]] = {}
    row = {t.key: j for j, t in enumerate(targets)}
    for policy, alone in run.left_alone.items():
        for key in alone:
            j = row.get(key)
            owner = run.policies[run.owners[j]] if j is not None and run.owners is not None and run.owners[j] >= 0 \
                else "another policy"
            pairs.setdefault((owner, policy), []).append(key)
    lines = []
    for (owner, other), keys in pairs.items():
        shown = ", ".join(sorted(keys)[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")
        lines.append(f"{prefix}conflict: {plural(len(keys), 'workload')} selected by policies {owner} and {other} ({shown}): "
                     f"{owner} governs them, {other} leaves them alone, as setpoint run does (the first policy to "
                     f"select a workload keeps it; at the first tick, the set's order: files sorted, documents in "
                     f"order; live, a PolicyConflict Event); narrow one of the selectors")
    return lines


def unselected_notes(run: BacktestRun, targets: Sequence[TargetRef], most: int = 5) -> list[str]:
    """The targets (the first run's) that no policy of the set ``run`` selects: not replayed in it."""
    if run.selects is None:
        return []
    none = np.flatnonzero(~run.selects.any(axis=0))
    if not none.size:
        return []
    shown = ", ".join(targets[j].key for j in none[:most]) + (f" and {none.size - most} more" if none.size > most else "")
    return [f"{run.name}: {plural(int(none.size), 'target')} no policy of it selects, not replayed in it: {shown}"]


def history_start(data: ReplayData) -> float:
    """The first grid time at which any target has a sample (``data.since_s``); NaN: none has, or
    not known."""
    known = data.since_s[np.isfinite(data.since_s)] if data.since_s is not None else np.zeros(0)
    return float(known.min()) if known.size else math.nan


def late_start_times(data: ReplayData) -> np.ndarray:
    """(N,) the grid times at the start of the window that a late start explains, per target:
    those before its first sample, or before the history's start for a target without any. The
    notes of each query leave them out: ``start_notes`` state the late start once, not once per
    query and per policy."""
    n = len(data.targets)
    history = history_start(data)
    if math.isnan(history) or not data.t_s.size:
        return np.zeros(n, np.int64)
    first = np.where(np.isfinite(data.since_s), data.since_s, history)
    return np.rint((first - data.t_s[0]) / data.step_s).astype(np.int64)


def start_notes(data: ReplayData) -> list[str]:
    """Where the replay starts later than the window (``data.since_s``): the history's start when
    no target has a sample before it (Prometheus' retention, or workloads younger than the window),
    the targets whose series start later still, and those with no sample at all."""
    since, t_s = data.since_s, data.t_s
    if since is None or not t_s.size:
        return []
    lines, known = history_notes(data), np.isfinite(since)
    later = np.flatnonzero(known & (since > history_start(data)))
    if later.size:
        shown = ", ".join(f"{data.targets[i].key} from {iso(since[i])}" for i in later[:5])
        more = f" and {later.size - 5} more" if later.size > 5 else ""
        lines.append(f"{plural(int(later.size), 'target')} replayed from their first sample (no data before it: no replicas "
                     f"counted, no missing sample noted): {shown}{more}")
    never = np.flatnonzero(~known)
    if never.size:
        lines.append(f"{plural(int(never.size), 'target')} without any sample in the window, not replayed: "
                     + ", ".join(data.targets[i].key for i in never[:5]) + (" ..." if never.size > 5 else ""))
    return lines


def history_notes(data: ReplayData, most: int = 5) -> list[str]:
    """The note on a history that starts later than the window, once for every query and target:
    when, how much of the window it leaves out, and the targets (all: none has a sample before it)."""
    history, t_s = history_start(data), data.t_s
    if not history > t_s[0]:  # NaN too: no sample at all
        return []
    skipped = int(round((history - t_s[0]) / data.step_s))
    n = len(data.targets)
    shown = ", ".join(t.key for t in data.targets[:most]) + (f" and {n - most} more" if n > most else "")
    return [f"history starts at {iso(history)}, {format_duration(history - t_s[0], days=True)} into the window: no sample of "
            f"the queries or of the replicas that ran before it at any of the {plural(n, 'target')} ({shown}; Prometheus' "
            f"retention, or workloads younger than the window); the replay starts there, leaving out the window's "
            f"first {skipped} of {t_s.size} times ({100 * skipped / t_s.size:.1f}%), which the notes of each query "
            f"do not count as missing"]


def iso(t_s: float) -> str:
    """``2026-11-01T00:00:00Z``."""
    return datetime.fromtimestamp(t_s, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
