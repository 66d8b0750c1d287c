"""Compiled policy parameters: what the core needs, as plain numbers and small arrays.

The policy layer turns a validated policy file into a :class:`PolicyParams`; the core never
sees YAML or pydantic objects. Every target of a policy shares these parameters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


class MetricKind(enum.IntEnum):
    """How a metric's value turns into a replica proposal."""

    VALUE = 0  # the workload should hold value at target: rec = ceil(base * value / target)
    AVERAGE_PER_REPLICA = 1  # value is a total: rec = ceil(value / target)
    UTILIZATION = 2  # value is the mean utilization of ready pods (percent): HPA Resource rules


#: Kinds whose samples can never be negative (a negative sample is invalid, like NaN). Every
#: kind today: targets are > 0 and each kind measures a rate, a count or a share. A future kind
#: that may go below zero (e.g. a signed error signal) must be left out of this set.
NONNEGATIVE_KINDS = frozenset({MetricKind.VALUE, MetricKind.AVERAGE_PER_REPLICA, MetricKind.UTILIZATION})

#: A sample is implausible when, sized from a single replica, it would ask for more than this many
#: times the policy's replicas.max (value / target > IMPLAUSIBLE_FACTOR x max): see core/scaling/signal.py
#: for why 1000 and why from one replica. A metric's ``implausibleAbove`` replaces the bound.
IMPLAUSIBLE_FACTOR = 1000.0


class Smoothing(enum.IntEnum):
    NONE = 0
    EWMA = 1
    MEAN = 2
    MEDIAN = 3
    MAX = 4
    PERCENTILE = 5


class Select(enum.IntEnum):
    """HPA selectPolicy."""

    MAX = 0
    MIN = 1
    DISABLED = 2


class RuleType(enum.IntEnum):
    PODS = 0
    PERCENT = 1


def _f64(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only array: the per-policy arrays below are built once and shared by every cycle."""
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class ScalingRules:
    """One direction of HPA ``behavior``: a stabilization window and rate policies.

    ``types``, ``values`` and ``periods_s`` have shape (P,); P may be 0 (no rate limit).
    """

    window_s: float
    select: Select = Select.MAX
    types: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    periods_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def of(cls, window_s: float, select: Select, policies: list[tuple[RuleType, float, float]]) -> "ScalingRules":
        """Build from ``[(type, value, period_s), ...]``."""
        return cls(
            window_s=float(window_s),
            select=Select(select),
            types=np.asarray([int(p[0]) for p in policies], dtype=np.int64),
            values=_f64([p[1] for p in policies]),
            periods_s=_f64([p[2] for p in policies]),
        )

    @property
    def longest_period_s(self) -> float:
        return float(self.periods_s.max()) if self.periods_s.size else 0.0


#: HPA's --horizontal-pod-autoscaler-tolerance default, and Setpoint's: the one place it is stated.
DEFAULT_TOLERANCE = 0.1


def hpa_default_scale_up() -> ScalingRules:
    """autoscaling/v2 default: no stabilization; max(4 pods, 100 %) per 15 s."""
    return ScalingRules.of(0.0, Select.MAX, [(RuleType.PODS, 4, 15), (RuleType.PERCENT, 100, 15)])


def hpa_default_scale_down(window_s: float = 300.0) -> ScalingRules:
    """autoscaling/v2 default: 300 s stabilization; 100 % per 15 s."""
    return ScalingRules.of(window_s, Select.MAX, [(RuleType.PERCENT, 100, 15)])


#: The most seasonal periods a forecast metric may have (the policy schema's limit; the compiled
#: forecast kernel takes that many profile arrays, whatever the count: forecast_compiled.py).
MAX_SEASONAL_PERIODS = 4


@dataclass(frozen=True)
class ForecastParams:
    """One metric's forecast stage (core/scaling/forecast.py). Durations in seconds.

    horizon_s: how far ahead (start-up delay + interval + half the metric window by default);
    periods_s: candidate seasonal periods; min_history_s: history needed before a period is
    judged; margin: multiplier of the error quantile added to the point forecast; quantile:
    of the recent absolute errors (0..1); error_bound: the forecast is ignored while its
    recent error over persistence's (MASE) exceeds this. The rest derive from the horizon.
    observed (horizon: auto with startupDelay: observed): a target's horizon is its observed
    start-up delay + lag_s where one is known (Observation.startup_s), at most max_horizon_s;
    horizon_s (from the initial delay) elsewhere.
    """

    horizon_s: float
    interval_s: float = 15.0
    periods_s: tuple[float, ...] = (86_400.0, 604_800.0)
    min_history_s: float = 86_400.0
    margin: float = 1.0
    quantile: float = 0.8
    error_bound: float = 1.25
    observed: bool = False
    lag_s: float = 0.0

    @property
    def max_horizon_s(self) -> float:
        """The longest horizon a target can have: the history layout (pending forecasts) is sized
        for it. Observed horizons stop at the one whose error window (10 horizons) is still the
        30-minute minimum, or at the initial horizon if that is longer."""
        if not self.observed:
            return self.horizon_s
        return max(self.horizon_s, MIN_ERROR_WINDOW_S / ERROR_WINDOW_HORIZONS)

    def horizons(self, startup_s: np.ndarray | None, n: int) -> np.ndarray:
        """(N,) horizon per target from the observed start-up delays (N,) (NaN: not known)."""
        if not self.observed or startup_s is None:
            return np.full(n, self.horizon_s)
        startup_s = np.asarray(startup_s, np.float64)
        return np.where(np.isfinite(startup_s), np.minimum(self.lag_s + startup_s, self.max_horizon_s), self.horizon_s)

    @property
    def bucket_s(self) -> float:
        """Seasonal profile resolution: 1/288 of the shortest period (5 min for a day)."""
        shortest = min(self.periods_s) if self.periods_s else 86_400.0
        return max(self.interval_s, shortest / 288.0)

    @property
    def buckets(self) -> tuple[int, ...]:
        return tuple(max(1, int(round(p / self.bucket_s))) for p in self.periods_s)

    @property
    def level_half_life_s(self) -> float:
        """The level follows the newest value: the metric is already a window average, and on
        bursty traffic any further smoothing forecasts worse than persistence (bench/forecast.py)."""
        return 0.1 * self.interval_s

    @property
    def trend_half_life_s(self) -> float:
        """A trend is a sustained slope: estimated over several horizons, not one burst."""
        return self.trend_half_life(self.horizon_s)

    @staticmethod
    def trend_half_life(horizon_s):
        """trend_half_life_s for horizon(s) ``horizon_s`` (a float or (N,))."""
        return 4.0 * horizon_s

    @property
    def damping_s(self) -> float:
        """Time constant of the trend's decay: a trend carries about half a horizon."""
        return self.damping(self.horizon_s)

    def damping(self, horizon_s):
        """damping_s for horizon(s) ``horizon_s`` (a float or (N,))."""
        return np.maximum(self.interval_s, 0.5 * horizon_s)

    @property
    def error_window_s(self) -> float:
        """Recent window of the error statistics (the layout's: of the longest horizon)."""
        return self.error_window(self.max_horizon_s)

    @staticmethod
    def error_window(horizon_s):
        """The recent error window for horizon(s) ``horizon_s`` (a float or (N,))."""
        return np.maximum(MIN_ERROR_WINDOW_S, ERROR_WINDOW_HORIZONS * horizon_s)

    @property
    def pending_slots(self) -> int:
        return int(np.ceil(self.max_horizon_s / max(self.interval_s, 1.0))) + 2

    @property
    def error_slots(self) -> int:
        return int(np.ceil(self.error_window_s / max(self.interval_s, 1.0))) + 1


#: The forecast's recent error window: at least 30 minutes, else this many horizons.
MIN_ERROR_WINDOW_S = 1800.0
ERROR_WINDOW_HORIZONS = 10.0


class HpaSource(enum.IntEnum):
    """Which HPA metric source a metric stands for under ``preset: hpa`` (hpa-spec sections 3 to 7).

    DEFAULT: by kind (utilization -> Resource cpu; value and averagePerReplica -> External).
    """

    DEFAULT = -1
    RESOURCE = 0
    CONTAINER_RESOURCE = 1
    PODS = 2
    OBJECT = 3
    EXTERNAL = 4


@dataclass(frozen=True)
class RampParams:
    """One metric's ramp stage (core/scaling/ramp.py): the slope over ``window_s`` carried ``lead_s``
    ahead. Durations in seconds; lead_s: start-up delay + interval + half the metric window
    by default (how late new pods serve after the sample that asked for them)."""

    lead_s: float
    window_s: float = 60.0
    interval_s: float = 15.0
    # lead: auto with startupDelay: observed: the lead is the target's observed start-up delay
    # + lag_s where one is known (Observation.startup_s), lead_s (from the initial delay) elsewhere
    observed: bool = False
    #: ``latest:``: the range window (s) of a second, shorter reading of the same rate
    #: (Observation.latest); 0: none. The slope is then the one the two readings imply
    #: (see implied_slope), not the window's
    latest_window_s: float = 0.0
    # ramp.minStep: tolerance: a scale-up only this metric's look-ahead asks for (no metric's
    # reactive proposal above current) must add at least max(1, ceil(current * min_step)) pods,
    # the down tolerance (0: any step; core/scaling/ramp.py hold_small_look_ahead)
    min_step: float = 0.0

    @property
    def gap_s(self) -> float:
        """How much later the latest reading is centred than the window's: half the difference
        of the two range windows (a rate over a range window is centred half a window back)."""
        return 0.5 * (self.window_s - self.latest_window_s)

    @property
    def lag_s(self) -> float:
        """The lead beyond the start-up delay: one interval plus half the metric window."""
        return self.interval_s + 0.5 * self.window_s

    def leads(self, startup_s: np.ndarray | None, n: int) -> np.ndarray:
        """(N,) lead per target from the observed start-up delays (N,) (NaN: not known)."""
        if not self.observed or startup_s is None:
            return np.full(n, self.lead_s)
        startup_s = np.asarray(startup_s, np.float64)
        return np.where(np.isfinite(startup_s), self.lag_s + startup_s, self.lead_s)

    @property
    def keep_s(self) -> float:
        """Samples older than this are not needed (one window plus a cycle of slack)."""
        return self.window_s + 2.0 * self.interval_s

    @property
    def dark_s(self) -> float:
        """How long after a cycle at which the target had no Ready pod its slope is not used (s):
        the reading's window and the one a window before may both hold that time, and the pods
        got Ready at most an interval after it (core/scaling/ramp.py)."""
        return 2.0 * self.window_s + self.interval_s

    @property
    def slots(self) -> int:
        return int(np.ceil(self.keep_s / max(self.interval_s, 1.0))) + 2


@dataclass(frozen=True)
class MetricParams:
    """One scaling metric. ``source``, ``resource`` and ``container`` only matter under
    ``preset: hpa``: which of HPA's calculators runs (see controller/core/scaling/hpa_propose.py)."""

    name: str
    kind: MetricKind
    target: float
    forecast: ForecastParams | None = None
    source: HpaSource = HpaSource.DEFAULT
    resource: str = "cpu"
    container: str = ""
    ramp: RampParams | None = None
    #: ``headroom: pooled``: what one replica serves (target's unit; 0: per-replica headroom,
    #: the target alone; core/scaling/headroom.py)
    capacity: float = 0.0
    #: ``capacityPerReplica`` of an averagePerReplica target with per-replica headroom: a reading at
    #: what the Ready pods serve is a lower bound on demand (0: none; core/scaling/saturation.py).
    #: Pooled headroom has its own rule for a saturated reading (headroom.py), and runs its pods
    #: nearer capacity by design: this floor would put back the headroom it removes
    saturation_capacity: float = 0.0
    #: how long a reading of this metric still averages what came before it (s): its query's
    #: longest range selector (``rate(x[40s])``: 40; 0: none, no recovery hold). A reading taken
    #: less than this after the metric was missing covers only part of its range and may read
    #: low: it may not lower replicas (core/scaling/recovering.py)
    read_window_s: float = 0.0
    #: ``implausibleAbove``: a sample above this is implausible (core/scaling/signal.py); None: the
    #: default, IMPLAUSIBLE_FACTOR x replicas.max x target; +inf: no bound
    implausible_above: float | None = None

    @property
    def hpa_source(self) -> HpaSource:
        """The effective source: DEFAULT resolved by kind."""
        if self.source != HpaSource.DEFAULT:
            return self.source
        return HpaSource.RESOURCE if self.kind == MetricKind.UTILIZATION else HpaSource.EXTERNAL

    @property
    def per_pod(self) -> bool:
        """HPA computes this metric from per-pod samples (Resource, ContainerResource, Pods)."""
        return self.hpa_source in (HpaSource.RESOURCE, HpaSource.CONTAINER_RESOURCE, HpaSource.PODS)


@dataclass(frozen=True)
class PolicyParams:
    """Everything the decision core needs to decide for the targets of one policy.

    ``legacy`` selects the HPA path without ``behavior`` (max-window stabilization, then a
    per-cycle scale-up cap of ``max(factor * current, minimum)``). ``hpa_semantics`` selects
    HPA's exact proposal rules (ready-pod counts, no smoothing, no missing-data hold).
    """

    name: str
    metrics: tuple[MetricParams, ...]
    min_replicas: int
    max_replicas: int
    interval_s: float = 15.0
    tolerance_up: float = DEFAULT_TOLERANCE
    tolerance_down: float = DEFAULT_TOLERANCE
    smoothing: Smoothing = Smoothing.NONE
    half_life_s: float = 0.0
    window_s: float = 0.0
    percentile: float = 50.0
    stale_after_s: float = 120.0
    scale_up: ScalingRules = field(default_factory=hpa_default_scale_up)
    scale_down: ScalingRules = field(default_factory=hpa_default_scale_down)
    #: a scale-down must remove at least this share of the current replicas (floor; 0: any
    #: step; ``scaleDown.minStep: tolerance`` sets it to tolerance_down; core/scaling/min_step.py)
    scale_down_min_step: float = 0.0
    #: ``scaleDown.release: linear``: the window releases a held recommendation's excess over
    #: its age instead of all at once when it expires (core/scaling/stabilize.py)
    scale_down_linear_release: bool = False
    legacy: bool = False
    scale_up_limit_factor: float = 2.0
    scale_up_limit_minimum: float = 4.0
    missing_hold_s: float = float("inf")
    fallback_replicas: int | None = None
    hpa_semantics: bool = False
    # HPA controller flags (--horizontal-pod-autoscaler-cpu-initialization-period, -initial-readiness-delay)
    cpu_initialization_period_s: float = 300.0
    initial_readiness_delay_s: float = 30.0
    #: the pod start-up delay (s) the policy states (its first ramp's or forecast's ``startupDelay``,
    #: the ``initial`` of an observed one); used where none is observed (core/scaling/withheld.py)
    stated_startup_s: float = 30.0
    #: ``scaling.replaceUnready``: withheld replicas are sized on top of the proposals (withheld.py)
    replace_unready: bool = True
    #: how long a reading still averages what came before it (s): the longest range window of the
    #: scaling metrics' queries (``rate(x[1m])``: 60; 0 when none has one). After a target had no
    #: Ready pod for at least this long, its readings hold the outage for this long plus an
    #: interval once it is Ready again (normalize._missing_data)
    read_window_s: float = 0.0

    @property
    def pod_metrics(self) -> tuple[int, ...]:
        """Indices of the metrics the ``hpa`` preset reads per pod (none outside the preset)."""
        return tuple(j for j, m in enumerate(self.metrics) if m.per_pod) if self.hpa_semantics else ()

    # The decision core reads these every cycle: computed once per (frozen) PolicyParams.
    @cached_property
    def metric_kinds(self) -> np.ndarray:
        return _frozen(np.asarray([int(m.kind) for m in self.metrics], dtype=np.int64))

    @cached_property
    def metric_nonnegative(self) -> np.ndarray:
        """(M,) bool: the metric's samples cannot be negative."""
        return _frozen(np.asarray([m.kind in NONNEGATIVE_KINDS for m in self.metrics], dtype=bool))

    @cached_property
    def metric_implausible_above(self) -> np.ndarray:
        """(M,) the sample above which a metric's reading is implausible (core/scaling/signal.py):
        its ``implausible_above``, else IMPLAUSIBLE_FACTOR x max_replicas x target; +inf (no bound)
        under the ``hpa`` preset, which scales as HPA does."""
        if self.hpa_semantics:
            return _frozen(np.full(len(self.metrics), np.inf))
        most = IMPLAUSIBLE_FACTOR * max(self.max_replicas, 1)
        return _frozen(_f64([most * m.target if m.implausible_above is None else m.implausible_above
                             for m in self.metrics]))

    @cached_property
    def metric_targets(self) -> np.ndarray:
        return _frozen(_f64([m.target for m in self.metrics]))

    @cached_property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @cached_property
    def forecast_metrics(self) -> tuple[int, ...]:
        """Indices of the metrics with a forecast stage."""
        return tuple(j for j, m in enumerate(self.metrics) if m.forecast is not None)

    @cached_property
    def pooled_metrics(self) -> tuple[int, ...]:
        """Indices of the averagePerReplica metrics with pooled headroom (a capacity)."""
        return tuple(j for j, m in enumerate(self.metrics)
                     if m.capacity > 0 and m.kind == MetricKind.AVERAGE_PER_REPLICA)

    @cached_property
    def metric_capacities(self) -> np.ndarray:
        """(M,) each metric's pooled-headroom capacity per replica (0: per-replica headroom)."""
        return _frozen(_f64([m.capacity if j in self.pooled_metrics else 0.0 for j, m in enumerate(self.metrics)]))

    @cached_property
    def metric_read_windows(self) -> np.ndarray:
        """(M,) each metric's read window (s, MetricParams.read_window_s): the recovery hold's
        (core/scaling/recovering.py); all 0 under the ``hpa`` preset, which scales as HPA does."""
        return _frozen(_f64([0.0 if self.hpa_semantics else m.read_window_s for m in self.metrics]))

    @cached_property
    def metric_saturation(self) -> np.ndarray:
        """(M,) each metric's capacity per replica for the saturation floor (0: none stated)."""
        return _frozen(_f64([m.saturation_capacity for m in self.metrics]))

    @cached_property
    def saturation_metrics(self) -> tuple[int, ...]:
        """Indices of the metrics with a saturation floor (core/scaling/saturation.py)."""
        return tuple(j for j, m in enumerate(self.metrics) if m.saturation_capacity > 0)

    @cached_property
    def ramp_metrics(self) -> tuple[int, ...]:
        """Indices of the metrics with a ramp stage."""
        return tuple(j for j, m in enumerate(self.metrics) if m.ramp is not None)

    @property
    def history_slots(self) -> int:
        """Recommendation-history length H that covers both stabilization windows."""
        window = max(self.scale_up.window_s, self.scale_down.window_s)
        return int(np.ceil(window / max(self.interval_s, 1.0))) + 2

    @property
    def event_slots(self) -> int:
        """Scale-event history length E that covers the longest rate-policy period."""
        period = max(self.scale_up.longest_period_s, self.scale_down.longest_period_s)
        return int(np.ceil(period / max(self.interval_s, 1.0))) + 2

    @property
    def sample_slots(self) -> int:
        """Raw-sample history length W for window smoothing (0 when not needed)."""
        if self.smoothing in (Smoothing.NONE, Smoothing.EWMA):
            return 0
        return int(np.ceil(self.window_s / max(self.interval_s, 1.0))) + 1
