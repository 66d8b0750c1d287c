"""What a run keeps for its report, in memory that does not grow with the simulated time.

A :class:`Timeline` is fed the run's (C, S) signals chunk by chunk (C ticks, S services) and
keeps, for the aggregate of all services (sums of load, capacity and replicas; the worst
latency and error ratio) and, with at most :data:`MAX_SERVICE_MULTIPLES` services, for each
service:

- per bucket of :func:`bucket_ticks` ticks, the minimum and the maximum with the time of
  each (the first tick reaching it) and the mean: the points the report draws, the same as
  :func:`envelope` of the whole series (up to :data:`MAX_POINTS` ticks, every tick exactly);
- the violation spans (a tick holds until the next one), exact to the tick, with spans closer
  than 1/(2 :data:`MAX_POINTS`) of the run merged as the report draws them (so at most about
  4,000 spans).

Memory: O(buckets x series + spans), independent of the number of ticks; the (C, S) chunk is
the caller's. Scores are computed online by :class:`simulators.score.OnlineScores`.
:class:`ActionBudget` bounds the action list the same way (every action up to
:data:`ACTIONS_IN_FULL`, then the first of each kind per service and time bucket, which is
what the report draws).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from simulators.result import ActionEvent

#: Points per plotted line at most (a min/max envelope keeps spikes): 2 per bucket.
MAX_POINTS = 2000
#: Per-service series are kept (and drawn) for at most this many services.
MAX_SERVICE_MULTIPLES = 6
#: Actions kept one by one; beyond, only the first of each kind per service and time bucket.
ACTIONS_IN_FULL = 20_000
#: A run keeps its whole (T, S) trajectory (for tests and scripts that read it) up to this many
#: tick x service cells (about 65 MB); longer runs keep only the timeline.
FULL_TRAJECTORY_CELLS = 1_000_000
#: Decision records a simulation's CycleLog holds in memory (about 400 B each) before it spills
#: them to a file; a cycle's own objects count as :data:`CYCLE_RECORDS` records (about 9.6 KiB:
#: measured 8.3 KiB a policy cycle, 9.3 KiB beside a fixed-max run, with tracemalloc over 3 h
#: against 6 h of 2 and 20 services, December 5; it was 10, and a 6-hour run of 2 services
#: peaked 20% above the estimate simulators/memory.py made of it).
RECORDS_IN_MEMORY = 100_000
CYCLE_RECORDS = 24
#: Ticks the simulation runner records before it scores and downsamples them: a (fields,
#: ticks, services) block of about RECORD_CELLS ticks x services (8 fields: 4 MiB), at least
#: RECORD_TICKS ticks (:func:`record_ticks`). Each scoring and downsampling call costs ~150 us
#: of numpy calls whatever its size: for 1,000 services, 6.1 us a tick recorded 32 ticks at a
#: time, 4.6 at 64, 3.9 at 128 (CPU, December 5), with cache to spare for the block. But the
#: runs of ticks write the block (SimCluster.step_ticks) and a smaller one stays in cache between
#: its flushes: at 64 ticks the steps cost ~5% less, more than the flushes add (a run's advance,
#: 1,000 services: x0.99-0.995; at 128, 8 MiB, x1; December 7).
RECORD_TICKS = 32
RECORD_CELLS = 64 * 1024


def record_ticks(n_services: int) -> int:
    """Ticks the runner records at a time for ``n_services`` services (at most a load chunk)."""
    return max(RECORD_TICKS, RECORD_CELLS // max(n_services, 1))


#: Signals of a view: the (C, S) arrays :meth:`Timeline.add` takes, by name.
SIGNALS = ("offered_rps", "capacity_rps", "spec_replicas", "ready_replicas", "latency_s", "error_ratio")
_SUMMED = ("offered_rps", "capacity_rps", "spec_replicas", "ready_replicas")


def bucket_ticks(n_ticks: int, max_points: int = MAX_POINTS) -> int:
    """Ticks per bucket: 1 (every tick) up to ``max_points`` ticks, else ``ceil(T / (max_points / 2))``."""
    return 1 if n_ticks <= max_points else math.ceil(n_ticks / (max_points // 2))


def envelope(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Downsample (t, y) to at most ``max_points`` points keeping each bucket's min and max.

    Both extremes of each bucket are kept in time order, so a one-tick spike or dip survives.
    NaN values are ignored unless a whole bucket is NaN (then a gap).
    """
    b = _Buckets(bucket_ticks(t.size, max_points))
    b.add(np.asarray(t, dtype=float), np.asarray(y, dtype=float))
    return b.finish().points()


@dataclass(frozen=True)
class Line:
    """The points of one plotted line: ``t`` (N,) seconds since the start, ``y`` (N,)."""

    t: np.ndarray
    y: np.ndarray


class _Buckets:
    """Streaming min / max (with their times) and mean per bucket of ``per`` ticks of one series
    (``series`` None: ``add`` takes ``y`` (C,); read ``line`` and ``mean``) or of ``series`` K
    series that share their times (``y`` (C, K); read ``lines`` and ``means``), reduced together."""

    def __init__(self, per: int, series: int | None = None):
        self.per, self.series = per, series
        self._t: list[np.ndarray] = []  # ticks not yet in a complete bucket
        self._y: list[np.ndarray] = []  # (C, K) each
        self._held = 0
        self._out: list[tuple[np.ndarray, ...]] = []  # (t_first, y_first, t_second, y_second, mean) per chunk
        self._lines: list[Line] = []
        self._means: list[np.ndarray] = []

    #: Pieces of output held before they are joined into one (each costs ~100 B of array header:
    #: with short chunks they would add up to more than the points themselves).
    MAX_PIECES = 32

    def _keep(self, piece: tuple[np.ndarray, ...]) -> None:
        self._out.append(piece)
        if len(self._out) >= self.MAX_PIECES:
            self._out = [tuple(np.concatenate(parts) for parts in zip(*self._out))]

    def add(self, t: np.ndarray, y: np.ndarray) -> None:
        y = y if self.series is not None else y[:, None]
        if self.per == 1:
            self._keep((t.copy(), y.astype(float, copy=True)))
            return
        # copies: the caller may reuse its arrays (the runner's recorder does) while a bucket is incomplete
        self._t.append(np.array(t, dtype=float))
        self._y.append(np.array(y, dtype=float))
        self._held += t.size
        if self._held >= self.per:
            tt, yy = np.concatenate(self._t), np.concatenate(self._y)
            n = (tt.size // self.per) * self.per
            self._reduce(tt[:n], yy[:n])
            self._t, self._y, self._held = [tt[n:]], [yy[n:]], tt.size - n

    def _reduce(self, t: np.ndarray, y: np.ndarray) -> None:
        """Complete buckets (the last may be shorter) of ``y`` (n, K): the extremes in time order,
        NaN ignored; each (B, K)."""
        per = min(self.per, t.size)
        tb = t.reshape(-1, per)
        # (B, K, per): each series' bucket contiguous, so that numpy sums it as one series' (pairwise)
        yb = np.ascontiguousarray(y.reshape(tb.shape[0], per, -1).transpose(0, 2, 1))
        nan = np.isnan(yb)
        i_max = np.argmax(np.where(nan, -np.inf, yb), axis=2)
        i_min = np.argmin(np.where(nan, np.inf, yb), axis=2)
        first, second = np.minimum(i_min, i_max), np.maximum(i_min, i_max)
        rows, columns = np.arange(tb.shape[0])[:, None], np.arange(yb.shape[1])
        count = (~nan).sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, np.where(nan, 0.0, yb).sum(axis=2) / count, np.nan)
        self._keep((tb[rows, first], yb[rows, columns, first], tb[rows, second], yb[rows, columns, second], mean))

    def finish(self) -> "_Buckets":
        if self.per > 1 and self._held:
            self._reduce(np.concatenate(self._t), np.concatenate(self._y))
            self._t, self._y, self._held = [], [], 0
        k = self.series or 1
        if self.per == 1:
            t = np.concatenate([o[0] for o in self._out]) if self._out else np.zeros(0)
            y = np.concatenate([o[1] for o in self._out]) if self._out else np.zeros((0, k))
            self._lines = [Line(t, np.ascontiguousarray(y[:, j])) for j in range(k)]
            self._means = [line.y for line in self._lines]
        else:
            t1, y1, t2, y2, mean = ([np.concatenate([o[i] for o in self._out]) if self._out else np.zeros((0, k))
                                     for i in range(5)])
            self._lines = [Line(np.column_stack([t1[:, j], t2[:, j]]).ravel(),
                                np.column_stack([y1[:, j], y2[:, j]]).ravel()) for j in range(k)]
            self._means = [np.ascontiguousarray(mean[:, j]) for j in range(k)]
        self._out = []
        return self

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        return self.line.t, self.line.y

    @property
    def line(self) -> Line:
        return self._lines[0]

    @property
    def mean(self) -> np.ndarray:
        """(B,) mean of each bucket (NaN ignored; NaN when all are)."""
        return self._means[0]

    @property
    def lines(self) -> list[Line]:
        """Each series' points (after :meth:`finish`)."""
        return self._lines

    @property
    def means(self) -> list[np.ndarray]:
        """Each series' (B,) bucket means (after :meth:`finish`)."""
        return self._means


class _Spans:
    """Spans (start, end) in seconds where a (T,) mask holds, a tick holding until the next one
    and the last until the run's end; a span starting less than ``min_gap_s`` after the
    previous one's end is merged into it (as :func:`merge_spans`)."""

    def __init__(self, min_gap_s: float):
        self.min_gap_s = min_gap_s
        self.spans: list[list[float]] = []
        self._open: float | None = None  # start of the span holding at the last tick

    def add(self, t: np.ndarray, mask: np.ndarray) -> None:
        prev = np.concatenate([[self._open is not None], mask[:-1]])
        starts, ends = t[mask & ~prev], t[~mask & prev]
        if self._open is not None:
            starts = np.concatenate([[self._open], starts])
        for s, e in zip(starts.tolist(), ends.tolist()):
            self._close(s, e)
        self._open = float(starts[-1]) if mask[-1] else None

    def _close(self, s: float, e: float) -> None:
        if self.spans and s - self.spans[-1][1] < self.min_gap_s:
            self.spans[-1][1] = e
        else:
            self.spans.append([s, e])

    def finish(self, end_s: float) -> np.ndarray:
        if self._open is not None:
            self._close(self._open, end_s)
            self._open = None
        return np.array(self.spans, dtype=float).reshape(-1, 2)


def merge_spans(spans: np.ndarray, min_gap_s: float) -> list[tuple[float, float]]:
    """(start, width) of ``spans`` (n, 2) (start, end) with those starting less than
    ``min_gap_s`` after the previous end merged into it, so that a flapping signal draws as few
    rectangles as the picture can show. Merging at a larger gap after a smaller one is the same
    as merging at the larger gap once."""
    if spans.size == 0:
        return []
    starts, ends = spans[:, 0], spans[:, 1]
    if min_gap_s > 0 and starts.size > 1:
        keep = np.concatenate([[True], starts[1:] - ends[:-1] >= min_gap_s])
        starts = starts[keep]
        ends = np.maximum.reduceat(ends, np.flatnonzero(keep))
    return [(float(s), float(e - s)) for s, e in zip(starts, ends)]


@dataclass(frozen=True)
class View:
    """What one panel set draws: one service or the aggregate of several. Each signal is a
    :class:`Line` (already downsampled); ``violation_spans`` (n, 2) start and end (s)."""

    start_s: float
    end_s: float
    offered_rps: Line
    capacity_rps: Line
    spec_replicas: Line
    ready_replicas: Line
    latency_s: Line
    error_ratio: Line  # the worst service's (NaN: no traffic)
    violation_spans: np.ndarray
    means: dict = field(default_factory=dict)  # signal -> (B,) mean per bucket


class _ViewRecorder:
    def __init__(self, per: int, min_gap_s: float):
        self.series = _Buckets(per, len(SIGNALS))  # the SIGNALS, reduced together
        self.violation = _Spans(min_gap_s)

    def add(self, t: np.ndarray, values: dict[str, np.ndarray], violation: np.ndarray) -> None:
        self.series.add(t, np.column_stack([values[name] for name in SIGNALS]))
        self.violation.add(t, violation)

    def finish(self, start_s: float, end_s: float) -> View:
        b = self.series.finish()
        return View(start_s=start_s, end_s=end_s, violation_spans=self.violation.finish(end_s),
                    means=dict(zip(SIGNALS, b.means)), **dict(zip(SIGNALS, b.lines)))


def _worst(a: np.ndarray) -> np.ndarray:
    """(C,) the largest of each row, NaN ignored unless the whole row is NaN."""
    with np.errstate(invalid="ignore"):
        return np.fmax.reduce(a, axis=1) if a.shape[1] else np.full(a.shape[0], np.nan)


def aggregate(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The aggregate view's (C,) :data:`SIGNALS` of the (C, S) ``values`` (float64): those of
    ``_SUMMED`` summed over services, the latency and error ratio the worst service's."""
    out = {n: values[n].sum(axis=1) for n in _SUMMED}
    out["latency_s"], out["error_ratio"] = _worst(values["latency_s"]), _worst(values["error_ratio"])
    return out


class Timeline:
    """The downsampled record of one run (see the module docstring).

    ``Timeline(n_ticks, n_services, run_s)``: ``run_s`` the run's length (s), for the span
    merging gap. Feed ``add(t_s (C,), signals, violation (C, S))`` in time order with
    ``signals`` the :data:`SIGNALS` (C, S) arrays, then ``finish(end_s)``; read ``view()`` (the
    aggregate) and ``view(j)`` (service ``j``, kept with at most :data:`MAX_SERVICE_MULTIPLES`
    services)."""

    def __init__(self, n_ticks: int, n_services: int, run_s: float):
        self.per = bucket_ticks(n_ticks)
        self.columns = list(range(n_services)) if n_services <= MAX_SERVICE_MULTIPLES else []
        gap = run_s / (2 * MAX_POINTS)
        self._aggregate = _ViewRecorder(self.per, gap)
        self._services = {j: _ViewRecorder(self.per, gap) for j in self.columns}
        self._start: float | None = None
        self._views: dict[int | None, View] = {}

    def add(self, t_s: np.ndarray, signals: dict[str, np.ndarray], violation: np.ndarray,
            totals: dict[str, np.ndarray] | None = None, any_violation: np.ndarray | None = None) -> None:
        """``totals``: :func:`aggregate` of ``signals``, and ``any_violation`` (C,) whether any
        service violates, when the caller has them (the runner's recorder: it scores the same
        sums, and its violation kernel says which ticks violate); None: computed here."""
        t = np.asarray(t_s, dtype=float)
        if t.size == 0:
            return
        if self._start is None:
            self._start = float(t[0])
        values = {n: np.asarray(signals[n]).astype(float, copy=False) for n in SIGNALS}
        self._aggregate.add(t, aggregate(values) if totals is None else totals,
                            violation.any(axis=1) if any_violation is None else any_violation)
        for j, rec in self._services.items():
            rec.add(t, {n: values[n][:, j] for n in SIGNALS}, violation[:, j])

    def finish(self, end_s: float) -> "Timeline":
        start = self._start if self._start is not None else 0.0
        self._views[None] = self._aggregate.finish(start, end_s)
        for j, rec in self._services.items():
            self._views[j] = rec.finish(start, end_s)
        self._aggregate, self._services = None, {}
        return self

    def view(self, column: int | None = None) -> View:
        if column not in self._views:
            raise KeyError(f"service column {column} is not kept (only with at most {MAX_SERVICE_MULTIPLES} services)")
        return self._views[column]


def timeline_of(trajectory, violation: np.ndarray, end_s: float, chunk_ticks: int | None = None) -> Timeline:
    """The Timeline of a whole :class:`~simulators.result.Trajectory` (``violation`` its (T, S)
    mask), fed in chunks of ``chunk_ticks`` (default: all at once)."""
    from simulators.score import as_ticks_by_services

    t = np.asarray(trajectory.t_s, dtype=float)
    signals = {n: as_ticks_by_services(getattr(trajectory, n)) for n in SIGNALS}
    violation = as_ticks_by_services(violation)
    S = signals["offered_rps"].shape[1]
    tl = Timeline(t.size, S, end_s - (float(t[0]) if t.size else 0.0))
    step = chunk_ticks or max(t.size, 1)
    for a in range(0, t.size, step):
        tl.add(t[a:a + step], {n: v[a:a + step] for n, v in signals.items()}, violation[a:a + step])
    return tl.finish(end_s)


# --- actions ---------------------------------------------------------------------------------


#: The category of a scale by the sign of its change, plus one (action_category, admit_scales:
#: the index controller.model.first_by_direction uses)
_SCALE_CATEGORIES = ("scale down", "other", "scale up")


def action_category(action: ActionEvent) -> str:
    """Which marker an action gets: scale up / down, restart, rollback or other."""
    if action.kind == "scale":
        to, was = action.to_replicas, action.from_replicas
        if to is None or was is None:
            return "other"
        return _SCALE_CATEGORIES[(to > was) - (to < was) + 1]
    if "restart" in action.kind:
        return "restart"
    if action.kind == "rollback":
        return "rollback"
    return "other"


class ActionBudget:
    """Which actions a long run keeps: all of the first :data:`ACTIONS_IN_FULL`, then only the
    first of each category per time bucket (1/:data:`MAX_POINTS` of the run), per service when
    per-service plots are drawn: the markers the report draws. ``dropped`` counts the others."""

    def __init__(self, duration_s: float, n_services: int, in_full: int = ACTIONS_IN_FULL):
        self.resolution_s = max(duration_s, 1.0) / MAX_POINTS
        self.per_service = n_services <= MAX_SERVICE_MULTIPLES
        self.in_full = in_full
        self.kept = 0
        self.dropped = 0
        self._seen: set[tuple] = set()
        self._spent_bucket: int | None = None  # a time bucket whose every scale category's key is seen (admit_scales)

    def admit(self, action: ActionEvent) -> bool:
        category = action_category(action)
        bucket = math.floor(action.t_s / self.resolution_s)
        key = (None, category, bucket)
        if self.per_service:
            keys = [key, (action.service, category, bucket)]
            fresh = any(k not in self._seen for k in keys)
            self._seen.update(keys)
        else:  # one key (the common case for wide runs: one action per target and cycle goes through here)
            fresh = key not in self._seen
            self._seen.add(key)
        if self.kept < self.in_full or fresh:
            self.kept += 1
            return True
        self.dropped += 1
        return False

    def admit_scales(self, t_s: float, count: int, first: Sequence[int]) -> list[int]:
        """The positions (ascending) of a cycle's ``count`` scales at ``t_s`` (s since the start)
        whose events :meth:`admit` of each in order keeps, counted as it counts them: their events
        need be made for those alone. ``first``: the position of the first scale down, to the same
        count, up, -1 for none (controller.model.first_by_direction): what the keys seen depend on,
        so that a cycle's admission does not grow with its scales. Not per service (``per_service``
        False: one key per category and time bucket)."""
        full = min(count, max(0, self.in_full - self.kept))  # the budget's first ones: kept whatever they are
        bucket = math.floor(t_s / self.resolution_s)
        if not full and bucket == self._spent_bucket:  # most cycles of a long run: none kept, no key to look up
            self.dropped += count
            return []
        fresh, seen, spent = [], self._seen, True
        for category, i in zip(_SCALE_CATEGORIES, first):  # one key lookup per category
            key = (None, category, bucket)
            if key in seen:
                continue
            if i >= 0:
                seen.add(key)
                fresh.append(int(i))
            else:
                spent = False
        if not full and spent:
            self._spent_bucket = bucket  # every category's key of the bucket seen: later scales in it add none
        at = [*range(full), *sorted(i for i in fresh if i >= full)]  # then a new key's first scale, past the first ones
        self.kept += len(at)
        self.dropped += count - len(at)
        return at

    def admit_all(self, actions: list[ActionEvent]) -> list[ActionEvent]:
        """The ``actions`` that :meth:`admit` of each in order keeps, in order. Actions of one
        time (a cycle's) that all fit in the first :data:`ACTIONS_IN_FULL` are kept at once,
        their keys seen (one bucket for all)."""
        if not actions or self.per_service or self.kept + len(actions) > self.in_full or \
                any(a.t_s != actions[0].t_s for a in actions):
            return [a for a in actions if self.admit(a)]
        bucket = math.floor(actions[0].t_s / self.resolution_s)
        self._seen.update({(None, action_category(a), bucket) for a in actions})
        self.kept += len(actions)
        return actions


__all__ = ["ActionBudget", "Line", "MAX_POINTS", "MAX_SERVICE_MULTIPLES", "RECORD_CELLS", "RECORD_TICKS", "Timeline", "View",
           "action_category", "aggregate", "record_ticks",
           "bucket_ticks", "envelope", "merge_spans", "timeline_of"]
