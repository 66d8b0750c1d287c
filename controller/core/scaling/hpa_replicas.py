"""Kubernetes HPA's per-metric replica calculator (``replica_calculator.go``), vectorized over targets.

Spec: ``hpa-spec.md`` sections 3 to 8, 10, 14 and 15. Each public function computes, for N
targets at once, what upstream computes for one HPA metric of one target.

Shapes and units
----------------
* N targets. Per-target inputs and outputs are (N,) arrays.
* P pods, as one flat :class:`PodTable`: every row is one pod listed by a target's selector and
  carries the index of its target in ``target``. Pods of one target keep their list order (it
  decides which pod an error message names, as upstream's loop does).
* S stray samples (:class:`StraySamples`): metric samples for pod names the selector does not list.
* E external series (:class:`ExternalSeries`): the values the external metrics API returned.
* Quantities are milli-units (``Quantity.MilliValue()``) held as int64; sums are exact (Python
  integers where int64 would overflow, like upstream's big-int paths). Utilization is an integer
  percent. Times are ages in seconds before the observation (the caller's ``now``); nothing here
  reads a clock. Go's zero ``time.Time`` is a large finite age (:data:`ZERO_TIME_AGE_S`).
* Replica counts are int64 holding int32 values (upstream clamps to the int32 range).

Every function returns a :class:`ReplicaProposal` whose ``error`` column holds an
:class:`HpaError` code per target (``NONE`` where the metric produced a proposal) and whose
``error_message`` repeats upstream's error text, so callers can map a failed metric to HPA's
``ScalingActive=False / FailedGet*Metric`` condition.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from controller.core.scaling.propose import within_tolerance  # ``Tolerances.isWithin``: one copy, (ratio, up, down)
from controller.model import direct_init

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
INT64_MAX = 2**63 - 1
ZERO_TIME_AGE_S = 1e11  # Go's zero time.Time, as an age: older than any window or period


class Phase(enum.IntEnum):
    """Pod ``status.phase``."""

    PENDING = 0
    RUNNING = 1
    SUCCEEDED = 2
    FAILED = 3
    UNKNOWN = 4


class Readiness(enum.IntEnum):
    """Status of the pod's Ready condition; NONE when the pod has no Ready condition."""

    NONE = -1
    FALSE = 0
    TRUE = 1
    UNKNOWN = 2


class PodClass(enum.IntEnum):
    """``groupPods``: each pod falls in exactly one class."""

    IGNORED = 0  # deleted or Failed: dropped entirely
    UNREADY = 1  # Pending, or (cpu only) not ready / still initializing: sample removed
    MISSING = 2  # no sample
    READY = 3  # sample used; counts toward readyPodCount


class HpaError(enum.IntEnum):
    """Why a metric produced no proposal for a target (upstream returns an error)."""

    NONE = 0
    NO_RESOURCE_METRICS = 1
    NO_POD_METRICS = 2
    NO_EXTERNAL_METRICS = 3
    NO_OBJECT_METRIC = 4
    NO_PODS = 5
    NO_USABLE_SAMPLES = 6
    CONTAINER_NOT_FOUND = 7
    MISSING_REQUEST = 8
    NO_MATCHED_REQUESTS = 9
    NO_READY_POD_COUNT = 10


#: HpaError.NONE as a plain int: numpy compares an array with an IntEnum member ~10x slower
#: (attribute probing on every call), and these comparisons run every cycle.
_NO_ERROR = int(HpaError.NONE)


_MESSAGES = {
    HpaError.NO_RESOURCE_METRICS: "unable to get metrics for resource {resource}: "
                                  "no metrics returned from resource metrics API",
    HpaError.NO_POD_METRICS: "unable to get metric {metric}: no metrics returned from custom metrics API",
    HpaError.NO_EXTERNAL_METRICS: "unable to get external metric {metric}: no metrics returned from external metrics API",
    HpaError.NO_OBJECT_METRIC: "unable to get metric {metric}: unable to fetch metrics from custom metrics API",
    HpaError.NO_PODS: "no pods returned by selector while calculating replica count",
    HpaError.NO_USABLE_SAMPLES: "did not receive metrics for targeted pods (pods might be unready)",
    HpaError.CONTAINER_NOT_FOUND: "container {container} not found in Pod {pod}",
    HpaError.MISSING_REQUEST: "missing request for {resource} in container {container} of Pod {pod}",
    HpaError.NO_MATCHED_REQUESTS: "no metrics returned matched known pods",
    HpaError.NO_READY_POD_COUNT: "unable to calculate ready pods: "
                                 "no pods returned by selector while calculating replica count",
}


def _i64(values, size: int, default: int = 0) -> np.ndarray:
    return np.full(size, default, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64).reshape(-1)


def _f64(values, size: int, default: float) -> np.ndarray:
    return np.full(size, default) if values is None else np.asarray(values, dtype=np.float64).reshape(-1)


def _flags(values, size: int, default: bool) -> np.ndarray:
    return np.full(size, default) if values is None else np.asarray(values, dtype=bool).reshape(-1)


def table_names(names) -> Sequence[str]:
    """A pod table's names: a sequence as given (it may make names on access), a list as a tuple."""
    return names if isinstance(names, Sequence) and not isinstance(names, list) else tuple(names)


@dataclass(frozen=True)
class PodTable:
    """The pods listed by each target's selector, flattened: every array has shape (P,).

    target: index of the pod's target. phase: :class:`Phase`. ready: :class:`Readiness`.
    deleted: has a deletion timestamp. start_age_s: age of ``status.startTime`` (NaN: unset).
    ready_transition_age_s: age of the Ready condition's lastTransitionTime (NaN: Go zero time).
    request_milli / has_request: the pod's effective request for the metric's resource (the
    sum over its containers and sidecars, the named container's, or the pod-level request);
    has_request False when a container in scope has none. has_container: the container a
    ContainerResource metric names exists in the pod (ignored when no container is named). usage_milli / has_sample: the metrics API sample.
    metric_age_s / metric_window_s: the sample's timestamp age and window (NaN age: zero time).
    names: pod names, only used in error messages.
    """

    target: np.ndarray
    phase: np.ndarray
    ready: np.ndarray
    deleted: np.ndarray
    start_age_s: np.ndarray
    ready_transition_age_s: np.ndarray
    request_milli: np.ndarray
    has_request: np.ndarray
    has_container: np.ndarray
    usage_milli: np.ndarray
    has_sample: np.ndarray
    metric_age_s: np.ndarray
    metric_window_s: np.ndarray
    names: Sequence[str] = ()  # a tuple, or a sequence that makes names on access

    @classmethod
    def of(cls, target, *, phase=None, ready=None, deleted=None, start_age_s=None, ready_transition_age_s=None,
           request_milli=None, has_request=None, has_container=None, usage_milli=None, has_sample=None,
           metric_age_s=None, metric_window_s=None, names=()) -> "PodTable":
        """Build a table; omitted columns default to a long-running, ready pod with no request and no sample."""
        target = np.asarray(target, dtype=np.int64).reshape(-1)
        p = target.size
        return cls(
            target=target,
            phase=_i64(phase, p, Phase.RUNNING),
            ready=_i64(ready, p, Readiness.TRUE),
            deleted=_flags(deleted, p, False),
            start_age_s=_f64(start_age_s, p, ZERO_TIME_AGE_S),
            ready_transition_age_s=_f64(ready_transition_age_s, p, ZERO_TIME_AGE_S),
            request_milli=_i64(request_milli, p),
            has_request=_flags(has_request, p, request_milli is not None),
            has_container=_flags(has_container, p, True),
            usage_milli=_i64(usage_milli, p),
            has_sample=_flags(has_sample, p, usage_milli is not None),
            metric_age_s=_f64(metric_age_s, p, ZERO_TIME_AGE_S),
            metric_window_s=_f64(metric_window_s, p, 60.0),
            names=table_names(names),
        )

    @property
    def size(self) -> int:
        return int(self.target.size)

    def name(self, i: int) -> str:
        return self.names[i] if i < len(self.names) else f"#{i}"


@dataclass(frozen=True)
class StraySamples:
    """Samples returned for pod names the selector does not list, (S,) each."""

    target: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    usage_milli: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, target, usage_milli) -> "StraySamples":
        return cls(np.asarray(target, dtype=np.int64).reshape(-1), np.asarray(usage_milli, dtype=np.int64).reshape(-1))


@dataclass(frozen=True)
class ExternalSeries:
    """Values returned by the external metrics API, (E,) each, in API order within a target."""

    target: np.ndarray
    value_milli: np.ndarray

    @classmethod
    def of(cls, target, value_milli) -> "ExternalSeries":
        return cls(np.asarray(target, dtype=np.int64).reshape(-1), np.asarray(value_milli, dtype=np.int64).reshape(-1))


@direct_init
@dataclass(frozen=True)
class ReplicaProposal:
    """One metric's result per target, (N,) arrays; zeros where ``error`` is set.

    replicas: the proposal. utilization: integer percent (Utilization targets; else 0).
    usage_milli: what HPA reports in the metric status: the raw per-pod average (Resource and
    Pods), the value (Object/External ``Value``) or the per-pod value (``AverageValue``).
    error: :class:`HpaError` codes. error_message: upstream's error text ('' without error).
    """

    replicas: np.ndarray
    utilization: np.ndarray
    usage_milli: np.ndarray
    error: np.ndarray
    error_message: tuple[str, ...]

    @property
    def valid(self) -> np.ndarray:
        return self.error == _NO_ERROR


# --- exact integer helpers -----------------------------------------------------------------


def count_by_target(mask: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    """Number of selected rows per target, int64 (n,)."""
    return np.bincount(target[mask], minlength=n).astype(np.int64)


def sum_by_target(values: np.ndarray, target: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact per-target sums of int64 ``values`` (rows selected by ``mask``), (n,).

    int64 when every sum fits, otherwise an object array of Python ints (upstream's big-int sums).
    """
    if mask is not None:
        values, target = values[mask], target[mask]
    values = np.asarray(values, dtype=np.int64)
    counts = np.bincount(target, minlength=n)
    if values.size == 0:
        return np.zeros(n, dtype=np.int64)
    order = np.argsort(target, kind="stable")
    starts = np.cumsum(counts) - counts
    sums = np.zeros(n, dtype=np.int64)
    sums[counts > 0] = np.add.reduceat(values[order], starts[counts > 0])  # one segment per non-empty target
    approx = np.bincount(target, weights=values.astype(np.float64), minlength=n)
    risky = np.abs(approx) >= 2.0**62  # int64 sum may have wrapped: redo those rows exactly
    if not risky.any():
        return sums
    exact = sums.astype(object)
    for t in np.flatnonzero(risky):
        exact[t] = sum(int(v) for v in values[target == t])
    return exact


def _exact(a: np.ndarray, limit: int) -> np.ndarray:
    """``a`` as int64 if every |value| <= limit, else as Python ints."""
    if a.dtype != object and (a.size == 0 or int(np.abs(a).max()) <= limit):
        return a
    return a.astype(object)


def exact_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b without int64 wrap-around (Python ints where needed)."""
    return _exact(np.asarray(a), INT64_MAX // 2) + _exact(np.asarray(b), INT64_MAX // 2)


def exact_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b without int64 wrap-around (Python ints where needed)."""
    return _exact(np.asarray(a), INT32_MAX) * _exact(np.asarray(b), INT32_MAX)


def trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Go's integer division (truncates toward zero); ``b`` must be non-zero where used."""
    b = np.where(b == 0, 1, b)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _clamp_to_int64(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.asarray(np.where(a > hi, hi, np.where(a < lo, lo, a)), dtype=np.int64)


def ceil_to_int32(x: np.ndarray) -> np.ndarray:
    """``int32(math.Ceil(x))`` with out-of-range values clamped to the int32 range (NaN -> 0)."""
    with np.errstate(invalid="ignore"):
        c = np.ceil(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0))
    return np.clip(c, INT32_MIN, INT32_MAX).astype(np.int64)


def _ratio(num: np.ndarray, den) -> np.ndarray:
    """float64(num) / float64(den), IEEE (x/0 gives +-Inf or NaN as in Go)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num).astype(np.float64) / np.asarray(den, dtype=np.float64)


# --- shared rules --------------------------------------------------------------------------


def hpa_tolerances(cluster_tolerance: float, scale_down_tolerance: float = np.nan,
                   scale_up_tolerance: float = np.nan, configurable: bool = True) -> tuple[float, float]:
    """``tolerancesForHpa``: (down, up). A per-HPA tolerance (NaN = unset) replaces the
    cluster value for its own direction, only when the HPAConfigurableTolerance gate is on."""
    down = scale_down_tolerance if configurable and not np.isnan(scale_down_tolerance) else cluster_tolerance
    up = scale_up_tolerance if configurable and not np.isnan(scale_up_tolerance) else cluster_tolerance
    return float(down), float(up)


def _per_pod(values, pods: PodTable) -> np.ndarray:
    """Broadcast a scalar or per-target (N,) array onto the pod rows, (P,)."""
    values = np.asarray(values)
    return values[pods.target] if values.ndim else np.broadcast_to(values, pods.target.shape)


def _cpu_unready(pods: PodTable, cpu_initialization_period_s: float, initial_readiness_delay_s: float) -> np.ndarray:
    """The cpu-only readiness rules of ``groupPods`` for pods that have a sample, (P,) bool."""
    transition_age = np.nan_to_num(pods.ready_transition_age_s, nan=ZERO_TIME_AGE_S)
    metric_age = np.nan_to_num(pods.metric_age_s, nan=ZERO_TIME_AGE_S)
    no_condition = (pods.ready == Readiness.NONE) | np.isnan(pods.start_age_s)
    is_false = pods.ready == Readiness.FALSE
    initializing = pods.start_age_s < cpu_initialization_period_s  # startTime + period is after now
    # nan_to_num made infinite ages the largest floats: their differences overflow to +-inf,
    # which compare as the infinite ages would (no warning on a live controller's stderr)
    with np.errstate(over="ignore"):
        # the sample's window did not start after the last readiness change
        sample_predates_readiness = transition_age - metric_age < pods.metric_window_s
        # the Ready condition last changed less than the delay after the pod started
        never_became_ready = pods.start_age_s - transition_age < initial_readiness_delay_s
    return no_condition | np.where(initializing, is_false | sample_predates_readiness, is_false & never_became_ready)


def classify_pods(pods: PodTable, cpu_rules, cpu_initialization_period_s: float = 300.0,
                  initial_readiness_delay_s: float = 30.0, *, succeeded_is_terminal: bool = False) -> np.ndarray:
    """``groupPods``: the :class:`PodClass` of every pod, (P,) int64.

    cpu_rules: bool, scalar or per target (N,): apply the readiness / initialization rules
    (only when the metric's resource is cpu). The spec ignores only Failed pods; the newest
    upstream (``IsPodTerminal``) also ignores Succeeded ones: ``succeeded_is_terminal=True``.
    """
    terminal = pods.phase == Phase.FAILED
    if succeeded_is_terminal:
        terminal |= pods.phase == Phase.SUCCEEDED
    ignored = pods.deleted | terminal
    pending = pods.phase == Phase.PENDING
    missing = ~pods.has_sample
    cpu = _per_pod(cpu_rules, pods).astype(bool)
    unready = cpu & _cpu_unready(pods, cpu_initialization_period_s, initial_readiness_delay_s)
    return np.select([ignored, pending, missing, unready],
                     [PodClass.IGNORED, PodClass.UNREADY, PodClass.MISSING, PodClass.UNREADY],
                     PodClass.READY).astype(np.int64)


def running_ready_counts(pods: PodTable, n: int) -> np.ndarray:
    """``getReadyPodsCount``: listed pods with phase Running and Ready=True, (n,)."""
    return count_by_target((pods.phase == Phase.RUNNING) & (pods.ready == Readiness.TRUE), pods.target, n)


def _first_error(n: int, checks: list[tuple[np.ndarray, HpaError]]) -> np.ndarray:
    """The first failing check per target, in upstream's order, (n,) HpaError codes."""
    error = np.full(n, HpaError.NONE, dtype=np.int64)
    for failed, code in checks:
        error = np.where((error == _NO_ERROR) & failed, code, error)
    return error


def _messages(error: np.ndarray, **context) -> tuple[str, ...]:
    """Upstream's error text per target; context values are str or a function of the target
    row (called only for the targets with an error: most cycles have none, and a pod's name
    may be costly to make)."""
    bad = np.flatnonzero(np.asarray(error) != _NO_ERROR).tolist()
    if not bad:
        return _no_messages(len(error))
    out = [""] * len(error)
    for i in bad:
        fields = {k: (v if isinstance(v, str) else v(i)) for k, v in context.items()}
        out[i] = _MESSAGES[HpaError(int(error[i]))].format(**fields)
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _no_messages(n: int) -> tuple[str, ...]:
    """n empty messages (a tuple: shared by every cycle without an error)."""
    return ("",) * n


def _result(replicas, utilization, usage, error, messages) -> ReplicaProposal:
    ok = error == _NO_ERROR
    return ReplicaProposal(
        replicas=np.where(ok, replicas, 0).astype(np.int64),
        utilization=np.where(ok, utilization, 0).astype(np.int64),
        usage_milli=np.where(ok, usage, 0).astype(np.int64),
        error=error, error_message=messages)


def _fast_path_replicas(current, ratio_, ready_count, tol_down, tol_up) -> np.ndarray:
    """No missing pods and no unready pods on a scale-up: current inside the band, else ceil(ratio * ready)."""
    return np.where(within_tolerance(ratio_, tol_up, tol_down), current, ceil_to_int32(ratio_ * ready_count))


def _rebalanced_replicas(current, ratio_, new_ratio, sample_count, tol_down, tol_up) -> np.ndarray:
    """The slow path after missing / unready pods were added, with both "keep current" guards."""
    flipped = ((ratio_ < 1.0) & (new_ratio > 1.0)) | ((ratio_ > 1.0) & (new_ratio < 1.0))
    proposal = ceil_to_int32(new_ratio * sample_count)
    wrong_way = ((new_ratio < 1.0) & (proposal > current)) | ((new_ratio > 1.0) & (proposal < current))
    keep = within_tolerance(new_ratio, tol_up, tol_down) | flipped | wrong_way
    return np.where(keep, current, proposal)


def _request_errors(pods: PodTable, n: int, container: str) -> tuple[np.ndarray, np.ndarray]:
    """``calculateRequests`` over all listed pods: (error code (n,), index of the failing pod (n,)).

    A missing container is an error only when the metric names a container.
    """
    per_pod = np.where(~pods.has_container & bool(container), HpaError.CONTAINER_NOT_FOUND,
                       np.where(~pods.has_request, HpaError.MISSING_REQUEST, HpaError.NONE))
    bad = np.flatnonzero(per_pod != _NO_ERROR)
    first = np.full(n, pods.size, dtype=np.int64)
    np.minimum.at(first, pods.target[bad], bad)
    found = first < pods.size
    code = np.where(found, per_pod[np.minimum(first, max(pods.size - 1, 0))] if pods.size else 0, HpaError.NONE)
    return code.astype(np.int64), first


def utilization_percent(usage_sum: np.ndarray, request_sum: np.ndarray) -> np.ndarray:
    """``GetResourceUtilizationRatio``'s percentage: trunc(100 * usage / request) clamped to int32, (N,)."""
    pct = trunc_div(exact_mul(usage_sum, 100), request_sum)
    return _clamp_to_int64(pct, INT32_MIN, INT32_MAX)


# --- Resource / ContainerResource, target type Utilization ------------------------------------


def _grouped_pods(pods: PodTable, strays: StraySamples, n: int, cpu_rules: bool, cpu_initialization_period_s: float,
                  initial_readiness_delay_s: float, succeeded_is_terminal: bool):
    """Pod classes and per-target counts shared by the Resource and Pods calculators:
    (pod target (P,), ready (P,), missing (P,), unready (P,), ready count (N,), stray sample count (N,))."""
    cls = classify_pods(pods, cpu_rules, cpu_initialization_period_s, initial_readiness_delay_s,
                        succeeded_is_terminal=succeeded_is_terminal)
    t = pods.target
    ready, missing, unready = cls == PodClass.READY, cls == PodClass.MISSING, cls == PodClass.UNREADY
    return t, ready, missing, unready, count_by_target(ready, t, n), np.bincount(strays.target, minlength=n).astype(np.int64)


def resource_utilization_replicas(pods: PodTable, strays: StraySamples, current, target_utilization,
                                  tolerance_down, tolerance_up, *, cpu_rules=True,
                                  cpu_initialization_period_s: float = 300.0,
                                  initial_readiness_delay_s: float = 30.0, resource: str = "cpu",
                                  container: str = "", succeeded_is_terminal: bool = False) -> ReplicaProposal:
    """``GetResourceReplicas`` for N targets (spec section 4).

    current: spec replicas (N,). target_utilization: integer percent (N,) or scalar.
    tolerance_down / tolerance_up: (N,) or scalar. cpu_rules: whether the resource is cpu.
    Returns replicas, utilization (first pass, percent) and usage_milli (first-pass raw average).
    """
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    n = current.size
    target_utilization = np.broadcast_to(np.asarray(target_utilization, dtype=np.int64), (n,))
    t, ready, missing, unready, n_ready, n_stray = _grouped_pods(
        pods, strays, n, cpu_rules, cpu_initialization_period_s, initial_readiness_delay_s, succeeded_is_terminal)
    request_error, request_pod = _request_errors(pods, n, container)
    usage_sum = sum_by_target(pods.usage_milli, t, n, ready)
    request_sum = sum_by_target(pods.request_milli, t, n, ready)
    error = _first_error(n, [
        (count_by_target(pods.has_sample, t, n) + n_stray == 0, HpaError.NO_RESOURCE_METRICS),
        (np.bincount(t, minlength=n) == 0, HpaError.NO_PODS),
        (n_ready + n_stray == 0, HpaError.NO_USABLE_SAMPLES),
        (request_error != _NO_ERROR, request_error),
        (request_sum == 0, HpaError.NO_MATCHED_REQUESTS),
    ])

    utilization = utilization_percent(usage_sum, request_sum)
    raw_average = _clamp_to_int64(trunc_div(usage_sum, n_ready), -INT64_MAX - 1, INT64_MAX)
    ratio_ = _ratio(utilization, target_utilization)
    scale_up_with_unready = (count_by_target(unready, t, n) > 0) & (ratio_ > 1.0)
    fast = ~scale_up_with_unready & (count_by_target(missing, t, n) == 0)
    replicas = _fast_path_replicas(current, ratio_, n_ready, tolerance_down, tolerance_up)

    # slow path: missing pods at max(100, target) % of their request on a scale-down, 0 on a
    # scale-up, not added at ratio 1; unready pods at 0 on a scale-up.
    pod_ratio = ratio_[t]
    add_missing = missing & (pod_ratio != 1.0)
    add_unready = unready & scale_up_with_unready[t]
    fallback_pct = np.maximum(100, target_utilization)[t]
    missing_usage = np.where(pod_ratio < 1.0, trunc_div(pods.request_milli * fallback_pct, 100), 0)
    new_usage = exact_add(usage_sum, sum_by_target(missing_usage, t, n, add_missing))
    new_request = exact_add(request_sum, sum_by_target(pods.request_milli, t, n, add_missing | add_unready))
    new_ratio = _ratio(utilization_percent(new_usage, new_request), target_utilization)
    samples = n_ready + n_stray + count_by_target(add_missing | add_unready, t, n)
    slow = _rebalanced_replicas(current, ratio_, new_ratio, samples, tolerance_down, tolerance_up)
    replicas = np.where(fast, replicas, slow)

    def pod_name(i: int) -> str:
        return pods.name(int(request_pod[i])) if request_pod[i] < pods.size else ""

    messages = _messages(error, resource=resource, container=container or "(all)", pod=pod_name)
    return _result(replicas, utilization, raw_average, error, messages)


# --- Resource AverageValue and Pods AverageValue (plain averages) ------------------------------


def average_value_replicas(pods: PodTable, strays: StraySamples, current, target_average_milli,
                           tolerance_down, tolerance_up, *, cpu_rules=False,
                           cpu_initialization_period_s: float = 300.0, initial_readiness_delay_s: float = 30.0,
                           source: str = "pods", resource: str = "cpu", metric_name: str = "",
                           succeeded_is_terminal: bool = False) -> ReplicaProposal:
    """``calcPlainMetricReplicas`` for N targets (spec section 5): Resource and Pods ``AverageValue``.

    source: "resource" (``GetRawResourceReplicas``) or "pods" (``GetMetricReplicas``); it only
    selects the error text. cpu_rules: True only for the cpu resource (never for Pods metrics).
    Stray samples take part in the average. usage_milli is the first-pass average.
    """
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    n = current.size
    target_value = np.broadcast_to(np.asarray(target_average_milli, dtype=np.int64), (n,))
    t, ready, missing, unready, n_ready, n_stray = _grouped_pods(
        pods, strays, n, cpu_rules, cpu_initialization_period_s, initial_readiness_delay_s, succeeded_is_terminal)
    no_metrics = HpaError.NO_RESOURCE_METRICS if source == "resource" else HpaError.NO_POD_METRICS
    error = _first_error(n, [
        (count_by_target(pods.has_sample, t, n) + n_stray == 0, no_metrics),
        (np.bincount(t, minlength=n) == 0, HpaError.NO_PODS),
        (n_ready + n_stray == 0, HpaError.NO_USABLE_SAMPLES),
    ])

    total = exact_add(sum_by_target(pods.usage_milli, t, n, ready),
                      sum_by_target(strays.usage_milli, strays.target, n))
    count = n_ready + n_stray
    usage = _clamp_to_int64(trunc_div(total, count), -INT64_MAX - 1, INT64_MAX)
    ratio_ = _ratio(usage, target_value)
    scale_up_with_unready = (count_by_target(unready, t, n) > 0) & (ratio_ > 1.0)
    fast = ~scale_up_with_unready & (count_by_target(missing, t, n) == 0)
    replicas = _fast_path_replicas(current, ratio_, n_ready, tolerance_down, tolerance_up)

    # slow path: missing pods exactly at target on a scale-down, 0 on a scale-up, not added at
    # ratio 1; unready pods at 0 on a scale-up.
    n_missing_down = count_by_target(missing & (ratio_[t] < 1.0), t, n)
    n_added = count_by_target((missing & (ratio_[t] != 1.0)) | (unready & scale_up_with_unready[t]), t, n)
    new_total = exact_add(total, exact_mul(n_missing_down, target_value))
    new_usage = _clamp_to_int64(trunc_div(new_total, count + n_added), -INT64_MAX - 1, INT64_MAX)
    new_ratio = _ratio(new_usage, target_value)
    slow = _rebalanced_replicas(current, ratio_, new_ratio, count + n_added, tolerance_down, tolerance_up)
    replicas = np.where(fast, replicas, slow)

    messages = _messages(error, resource=resource, metric=metric_name)
    return _result(replicas, 0, usage, error, messages)


# --- Object and External metrics ------------------------------------------------------------


def _value_target_replicas(value_milli, current, target_value_milli, tolerance_down, tolerance_up,
                           ready_count) -> np.ndarray:
    """``getUsageRatioReplicaCount``: ratio = value / target, times the Running+Ready pod count.

    From zero replicas: ceil(ratio), with no tolerance and no pod count.
    """
    ratio_ = _ratio(value_milli, target_value_milli)
    scaled = ratio_ * ready_count
    with np.errstate(invalid="ignore"):
        capped = np.where(scaled > INT32_MAX, INT32_MAX, ceil_to_int32(scaled))
    active = np.where(within_tolerance(ratio_, tolerance_up, tolerance_down), current, capped)
    return np.where(current == 0, ceil_to_int32(ratio_), active)


def _value_pod_errors(value_milli, current, target_value_milli, tolerance_down, tolerance_up, pod_count):
    """Upstream counts pods only off zero and outside the band; no pods there is an error."""
    ratio_ = _ratio(value_milli, target_value_milli)
    needs_pods = (current != 0) & ~within_tolerance(ratio_, tolerance_up, tolerance_down)
    return needs_pods & (pod_count == 0)


def object_value_replicas(value_milli, current, target_value_milli, tolerance_down, tolerance_up,
                          pods: PodTable, *, has_value=None, metric_name: str = "") -> ReplicaProposal:
    """``GetObjectMetricReplicas`` (Object ``Value``) for N targets (spec section 6).

    value_milli: the described object's metric (N,); has_value False: the metrics API failed.
    usage_milli reports the value.
    """
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    n = current.size
    value = np.broadcast_to(np.asarray(value_milli, dtype=np.int64), (n,))
    has_value = np.ones(n, dtype=bool) if has_value is None else np.asarray(has_value, dtype=bool)
    ready = running_ready_counts(pods, n)
    no_pods = _value_pod_errors(value, current, target_value_milli, tolerance_down, tolerance_up,
                                np.bincount(pods.target, minlength=n))
    error = _first_error(n, [(~has_value, HpaError.NO_OBJECT_METRIC), (no_pods, HpaError.NO_READY_POD_COUNT)])
    replicas = _value_target_replicas(value, current, target_value_milli, tolerance_down, tolerance_up, ready)
    return _result(replicas, 0, value, error, _messages(error, metric=metric_name))


def per_pod_usage(total_milli: np.ndarray, status_replicas: np.ndarray) -> np.ndarray:
    """``getPerPodUsage``: ceil(total / S); int64 max when the total is at the int64 rail; 0 when S = 0."""
    total_f = np.asarray(total_milli).astype(np.float64)
    s = np.asarray(status_replicas, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        each = np.ceil(total_f / np.where(s == 0, 1.0, s))
    each = np.clip(np.nan_to_num(each), -(2.0**63), 2.0**63 - 1024)
    out = np.where(s == 0, 0, each.astype(np.int64))
    return np.where(total_f >= 2.0**63, INT64_MAX, out).astype(np.int64)


def _average_target_replicas(total_milli, status_replicas, target_average_milli, tolerance_down,
                             tolerance_up) -> np.ndarray:
    """Object / External ``AverageValue``: S inside the band, else ceil(total / target) clamped to int32."""
    s = np.asarray(status_replicas, dtype=np.int64)
    target = np.asarray(target_average_milli, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_ = np.asarray(total_milli).astype(np.float64) / (target * s.astype(np.float64))
    moved = ceil_to_int32(_ratio(total_milli, target))
    return np.where(within_tolerance(ratio_, tolerance_up, tolerance_down), s, moved)


def object_average_value_replicas(value_milli, status_replicas, target_average_milli, tolerance_down,
                                  tolerance_up, *, has_value=None, metric_name: str = "") -> ReplicaProposal:
    """``GetObjectPerPodMetricReplicas`` (Object ``AverageValue``) for N targets (spec section 6).

    Uses status replicas S (N,), not spec replicas; usage_milli reports ceil(value / S).
    """
    s = np.asarray(status_replicas, dtype=np.int64).reshape(-1)
    n = s.size
    value = np.broadcast_to(np.asarray(value_milli, dtype=np.int64), (n,))
    has_value = np.ones(n, dtype=bool) if has_value is None else np.asarray(has_value, dtype=bool)
    error = _first_error(n, [(~has_value, HpaError.NO_OBJECT_METRIC)])
    replicas = _average_target_replicas(value, s, target_average_milli, tolerance_down, tolerance_up)
    return _result(replicas, 0, per_pod_usage(value, s), error, _messages(error, metric=metric_name))


def external_totals(series: ExternalSeries, n: int, *, per_pod: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sum of each target's external series with upstream's int64 caps: (total (n,), has_series (n,)).

    ``Value`` (per_pod False): a positive value that would overflow caps the sum at int64 max.
    ``AverageValue`` (per_pod True): a running sum that turns negative (wrapped) becomes int64 max.
    """
    values = series.value_milli.astype(np.int64)
    counts = np.bincount(series.target, minlength=n)
    order = np.argsort(series.target, kind="stable")
    v, tgt = values[order], series.target[order]
    running = np.cumsum(v)  # int64, wraps like Go
    base = np.concatenate(([0], running))[np.concatenate(([0], np.cumsum(counts)[:-1]))]
    prefix = running - base[tgt]  # per-target running sums (mod 2**64)
    if per_pod:
        capped = prefix < 0
    else:
        capped = (v > 0) & (prefix - v > np.int64(INT64_MAX) - v)
    total = np.zeros(n, dtype=np.int64)
    if v.size:
        last = np.cumsum(counts) - 1
        total = np.where(counts > 0, prefix[np.maximum(last, 0)], 0)
    cap = np.bincount(tgt[capped], minlength=n) > 0
    return np.where(cap, INT64_MAX, total).astype(np.int64), counts > 0


def external_value_replicas(series: ExternalSeries, current, target_value_milli, tolerance_down, tolerance_up,
                            pods: PodTable, *, metric_name: str = "") -> ReplicaProposal:
    """``GetExternalMetricReplicas`` (External ``Value``) for N targets (spec section 7).

    The value is the sum of the target's series; the rest is Object ``Value``. usage_milli is the sum.
    """
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    n = current.size
    total, has_series = external_totals(series, n)
    no_pods = _value_pod_errors(total, current, target_value_milli, tolerance_down, tolerance_up,
                                np.bincount(pods.target, minlength=n))
    error = _first_error(n, [(~has_series, HpaError.NO_EXTERNAL_METRICS), (no_pods, HpaError.NO_READY_POD_COUNT)])
    replicas = _value_target_replicas(total, current, target_value_milli, tolerance_down, tolerance_up,
                                      running_ready_counts(pods, n))
    return _result(replicas, 0, total, error, _messages(error, metric=metric_name))


def external_average_value_replicas(series: ExternalSeries, status_replicas, target_average_milli,
                                    tolerance_down, tolerance_up, *, metric_name: str = "") -> ReplicaProposal:
    """``GetExternalPerPodMetricReplicas`` (External ``AverageValue``) for N targets (spec section 7).

    Uses status replicas S (N,); usage_milli reports ceil(sum / S) (int64 max when the sum was capped).
    """
    s = np.asarray(status_replicas, dtype=np.int64).reshape(-1)
    n = s.size
    total, has_series = external_totals(series, n, per_pod=True)
    error = _first_error(n, [(~has_series, HpaError.NO_EXTERNAL_METRICS)])
    replicas = _average_target_replicas(total, s, target_average_milli, tolerance_down, tolerance_up)
    return _result(replicas, 0, per_pod_usage(total, s), error, _messages(error, metric=metric_name))
