"""The ``hpa`` preset's propose stage: Kubernetes HPA's replica calculator (core/scaling/hpa_replicas.py)
run on what the shell observed, for N targets and M metrics at once. Pure.

Per metric, the calculator upstream runs for the metric's source (``MetricParams.hpa_source``):
Resource, ContainerResource and Pods metrics read per-pod samples together with the pods'
phase, readiness and start times (missing pods, unready pods, the CPU initialization period);
Object and External metrics read one value per workload. A per-pod metric observed as one
value per workload (a metrics source without the per-pod capability) is the thin case of the
same calculator: every pod the workload lists gets that value as its sample.

Units: the calculator works in milli-units (``hpa_replicas``); values here are in the metric's
own unit and turned into milli-units once. A Utilization metric's per-pod samples are percents
of the pod's request, so the shell gives its pods a request of 100 % (``PERCENT_REQUEST_MILLI``)
unless it knows the real requests.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from controller.core.scaling import hpa_compiled
from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.params import HpaSource, MetricKind, MetricParams, PolicyParams
from controller.model import direct_init

#: The request of a pod whose samples are percents of it: utilization = trunc(mean percent).
PERCENT_REQUEST_MILLI = 100_000

_INT64_EDGE = 9.2e18  # below 2**63: the largest milli value that converts without wrapping
_NO_ERROR = int(hr.HpaError.NONE)  # a plain int: numpy compares an array with an IntEnum member ~10x slower


def _no_strays() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def to_milli(values: np.ndarray) -> np.ndarray:
    """Values in the metric's unit -> int64 milli-units (NaN -> 0; callers mask it)."""
    with np.errstate(invalid="ignore", over="ignore"):
        milli = np.nan_to_num(np.asarray(values, dtype=np.float64) * 1000.0, nan=0.0, posinf=_INT64_EDGE,
                              neginf=-_INT64_EDGE)
    return np.rint(np.clip(milli, -_INT64_EDGE, _INT64_EDGE)).astype(np.int64)


@dataclass(frozen=True)
class PodSamples:
    """Per-pod observations of N targets: P pods in one flat table, M metrics.

    pods: every pod each target lists (``hr.PodTable``; its usage columns are not used).
    usage_milli: (P, M) int64, the pod's sample of metric j in milli-units; has_sample: (P, M).
    per_pod: (M,) bool, metric j was read per pod; where False, the workload's value stands
    for every pod. stray_target, stray_metric, stray_usage_milli: (S,) samples of pods that no
    target lists (they take part in HPA's averages).
    """

    pods: hr.PodTable
    usage_milli: np.ndarray
    has_sample: np.ndarray
    per_pod: np.ndarray
    stray_target: np.ndarray = field(default_factory=_no_strays)
    stray_metric: np.ndarray = field(default_factory=_no_strays)
    stray_usage_milli: np.ndarray = field(default_factory=_no_strays)

    @classmethod
    def from_counts(cls, ready: np.ndarray, status: np.ndarray, n_metrics: int) -> "PodSamples":
        """Pods known only by count, (N,) each: ``ready`` Running and Ready pods, then
        ``status - ready`` Pending ones; no per-pod samples."""
        ready_n = np.maximum(np.nan_to_num(np.asarray(ready, dtype=np.float64)), 0).astype(np.int64)
        total = np.maximum(np.nan_to_num(np.asarray(status, dtype=np.float64)).astype(np.int64), ready_n)
        target = np.repeat(np.arange(total.size), total)
        rank = np.arange(target.size) - np.repeat(np.cumsum(total) - total, total)  # pod index within its target
        is_ready = rank < ready_n[target]
        table = hr.PodTable.of(target, phase=np.where(is_ready, hr.Phase.RUNNING, hr.Phase.PENDING),
                               ready=np.where(is_ready, hr.Readiness.TRUE, hr.Readiness.FALSE),
                               request_milli=np.full(target.size, PERCENT_REQUEST_MILLI))
        p = target.size
        return cls(table, np.zeros((p, n_metrics), np.int64), np.zeros((p, n_metrics), bool),
                   np.zeros(n_metrics, bool))


@direct_init
@dataclass(frozen=True)
class ListedPods:
    """Pods as a pod lister lists them, with one per-pod metric's samples joined: (P,) each, by
    target. target: the pod's target row; pending, ready: its phase is Pending, its Ready
    condition True; start_time, transition_time: epoch s (NaN unset); values: its sample in the
    metric's unit (NaN: none), ages: the sample's age (s); names: pod names (only for messages).
    Every pod requests ``request_milli``; samples span ``window_s``, read at ``now``; ``column``:
    the metric."""

    target: np.ndarray
    pending: np.ndarray
    ready: np.ndarray
    start_time: np.ndarray
    transition_time: np.ndarray
    values: np.ndarray
    ages: np.ndarray
    names: object
    now: float
    request_milli: int
    window_s: float
    column: int


@direct_init
@dataclass(frozen=True)
class PodSlots:
    """Where a cluster keeps the pods of N targets: a padded per-row layout. Target i's pods are
    the slots of row ``rows[i]`` of the (R, K) arrays before ``ends[row]`` (R,) whose ``phase`` is
    not ``empty`` (targets where ``exists`` (N,) is False have none); a pod is Pending where its
    phase is ``pending_code``, its Ready condition True where ``ready_code``; start_time,
    transition_time (R, K): epoch s (NaN unset). The arrays may be the cluster's own: read them
    before it changes (the cycle's decision does)."""

    rows: np.ndarray
    exists: np.ndarray
    ends: np.ndarray
    phase: np.ndarray
    start_time: np.ndarray
    transition_time: np.ndarray
    empty: int
    pending_code: int
    ready_code: int


@direct_init
@dataclass(frozen=True)
class PaddedPods:
    """The pods of N targets where the cluster keeps them (``slots``) with one per-pod metric's
    samples: what ``ListedPods`` lists, unlisted. Every running pod of target i has the sample
    ``values[i]`` (NaN: none) of age ``ages[i]`` (N,). Every pod requests ``request_milli``;
    samples span ``window_s``, read at ``now``; ``column``: the metric."""

    slots: PodSlots
    values: np.ndarray
    ages: np.ndarray
    now: float
    request_milli: int
    window_s: float
    column: int


class JoinedPodSamples(PodSamples):
    """PodSamples of ``ListedPods`` or ``PaddedPods``: metric ``listed.column`` read per pod, no
    stray sample. The calculator reads a Utilization metric from ``listed`` in one pass
    (hpa_compiled.try_listed_utilization_replicas, try_padded_utilization_replicas); the pod
    table and the (P, M) sample columns, which cost more to build than that pass, are built by
    ``build`` (() -> (table, usage (P,) int64, has (P,) bool)) on first access, for any other
    reader."""

    def __init__(self, listed: ListedPods | PaddedPods, n_metrics: int, build):
        per_pod = np.zeros(n_metrics, bool)
        per_pod[listed.column] = True
        # straight into the instance's dict (as model.direct_init does): made every cycle, and the
        # frozen dataclass's object.__setattr__ per field cost about half of it
        self.__dict__.update(listed=listed, per_pod=per_pod, stray_target=_no_strays(), stray_metric=_no_strays(),
                             stray_usage_milli=_no_strays(), _build=build, _n_metrics=n_metrics, _built=None)

    def _columns(self) -> tuple[hr.PodTable, np.ndarray, np.ndarray]:
        if self._built is None:
            table, usage_j, has_j = self._build()
            usage = np.zeros((table.size, self._n_metrics), np.int64)
            has = np.zeros((table.size, self._n_metrics), bool)
            usage[:, self.listed.column], has[:, self.listed.column] = usage_j, has_j
            object.__setattr__(self, "_built", (table, usage, has))
        return self._built

    @property
    def pods(self) -> hr.PodTable:
        return self._columns()[0]

    @property
    def usage_milli(self) -> np.ndarray:
        return self._columns()[1]

    @property
    def has_sample(self) -> np.ndarray:
        return self._columns()[2]


@direct_init
@dataclass(frozen=True)
class HpaProposals:
    """The calculator's result per target and metric, (N, M) arrays (zeros where ``error`` is set).

    replicas: the proposal; utilization: percent (Utilization metrics); usage_milli: what HPA
    reports in the metric status; error: ``hr.HpaError`` codes; messages[i][j]: upstream's text.
    """

    replicas: np.ndarray
    utilization: np.ndarray
    usage_milli: np.ndarray
    error: np.ndarray
    messages: tuple[tuple[str, ...], ...]

    @property
    def valid(self) -> np.ndarray:
        return self.error == _NO_ERROR


def _pod_columns(pods: PodSamples, j: int, values: np.ndarray, usable: np.ndarray) -> hr.PodTable:
    """The pod table with metric j's samples: read per pod, or the workload value for each pod."""
    t = pods.pods.target
    if pods.per_pod[j]:
        usage, has = pods.usage_milli[:, j], pods.has_sample[:, j]
    else:
        usage, has = to_milli(values[:, j])[t], usable[t, j]
    return hr.PodTable(**{**pods.pods.__dict__, "usage_milli": np.asarray(usage, np.int64),
                          "has_sample": np.asarray(has, bool)})


def _strays(pods: PodSamples, j: int) -> hr.StraySamples:
    pick = pods.stray_metric == j
    return hr.StraySamples.of(pods.stray_target[pick], pods.stray_usage_milli[pick])


def _per_pod_metric(params: PolicyParams, m: MetricParams, pods: hr.PodTable, strays: hr.StraySamples,
                    current: np.ndarray) -> hr.ReplicaProposal:
    """Resource / ContainerResource (Utilization or AverageValue) and Pods (AverageValue)."""
    source = m.hpa_source
    cpu = source != HpaSource.PODS and m.resource == "cpu"
    readiness = dict(cpu_initialization_period_s=params.cpu_initialization_period_s,
                     initial_readiness_delay_s=params.initial_readiness_delay_s)
    down, up = params.tolerance_down, params.tolerance_up
    if m.kind == MetricKind.UTILIZATION:
        container = m.container if source == HpaSource.CONTAINER_RESOURCE else ""
        args = (pods, strays, current, max(int(round(m.target)), 1), down, up)
        kw = dict(cpu_rules=cpu, resource=m.resource, container=container, **readiness)
        fast = hpa_compiled.try_resource_utilization_replicas(*args, **kw)  # None: kernels off, use numpy
        return fast if fast is not None else hr.resource_utilization_replicas(*args, **kw)
    return hr.average_value_replicas(pods, strays, current, int(to_milli(m.target)), down, up, cpu_rules=cpu,
                                     source="pods" if source == HpaSource.PODS else "resource",
                                     resource=m.resource, metric_name=m.name, **readiness)


def _listed_metric(params: PolicyParams, m: MetricParams, pods: JoinedPodSamples, j: int,
                   current: np.ndarray) -> hr.ReplicaProposal | None:
    """A Utilization metric read from listed (or padded) pods in one compiled pass, without their pod table
    (the same result as :func:`_per_pod_metric` on it); None for another metric or kind, or
    when the kernels decline: then build the table."""
    if m.kind != MetricKind.UTILIZATION or pods.listed.column != j:
        return None
    one_pass = (hpa_compiled.try_padded_utilization_replicas if isinstance(pods.listed, PaddedPods)
                else hpa_compiled.try_listed_utilization_replicas)
    return one_pass(pods.listed, current, **utilization_terms(params, m))


def utilization_terms(params: PolicyParams, m: MetricParams) -> dict:
    """The calculator's terms for Utilization metric ``m`` of ``params``, as the listed passes
    (hpa_compiled.try_listed_utilization_replicas ...) take them by name: target utilization
    (integer percent, at least 1), tolerances, whether the cpu rules apply, resource, container
    (ContainerResource only), the cpu initialization period and readiness delay (s)."""
    source = m.hpa_source
    return dict(target_utilization=max(int(round(m.target)), 1), tolerance_down=params.tolerance_down,
                tolerance_up=params.tolerance_up, cpu_rules=source != HpaSource.PODS and m.resource == "cpu",
                resource=m.resource, container=m.container if source == HpaSource.CONTAINER_RESOURCE else "",
                cpu_initialization_period_s=params.cpu_initialization_period_s,
                initial_readiness_delay_s=params.initial_readiness_delay_s)


def _workload_metric(params: PolicyParams, m: MetricParams, value: np.ndarray, present: np.ndarray,
                     pods: hr.PodTable, current: np.ndarray, status: np.ndarray) -> hr.ReplicaProposal:
    """Object and External metrics: one value per workload (an External value may be a sum of series)."""
    down, up = params.tolerance_down, params.tolerance_up
    milli, target = to_milli(value), int(to_milli(m.target))
    average = m.kind == MetricKind.AVERAGE_PER_REPLICA
    if m.hpa_source == HpaSource.OBJECT:
        if average:
            return hr.object_average_value_replicas(milli, status, target, down, up, has_value=present,
                                                    metric_name=m.name)
        return hr.object_value_replicas(milli, current, target, down, up, pods, has_value=present, metric_name=m.name)
    rows = np.flatnonzero(present)
    series = hr.ExternalSeries.of(rows, milli[rows])
    if average:
        return hr.external_average_value_replicas(series, status, target, down, up, metric_name=m.name)
    return hr.external_value_replicas(series, current, target, down, up, pods, metric_name=m.name)


def hpa_propose(params: PolicyParams, current: np.ndarray, ready: np.ndarray, status: np.ndarray,
                values: np.ndarray, usable: np.ndarray, pods: PodSamples | None) -> HpaProposals:
    """HPA's proposal for every target and metric.

    current, ready, status: spec replicas, ready pods and existing pods (N,); values, usable:
    (N, M) workload values in the metric's unit and whether each is usable; pods: the per-pod
    observations, or None when the pods are known only by the counts (``PodSamples.from_counts``).
    """
    n, m_count = values.shape
    pods = pods if pods is not None else PodSamples.from_counts(ready, status, m_count)
    cur = np.asarray(current, dtype=np.int64)
    stat = np.asarray(status, dtype=np.int64)
    results = [_metric_proposal(params, m, j, pods, values, usable, cur, stat) for j, m in enumerate(params.metrics)]
    return proposals_of(results, n)


def proposals_of(results: list[hr.ReplicaProposal], n: int) -> HpaProposals:
    """The HpaProposals of the M metrics' proposals for N targets, their error texts by target."""
    m_count = len(results)
    replicas, utilization, usage, error = _columns(results, n)
    texts: dict[int, list[str]] = {}  # the rows with an error in some metric (most cycles: none)
    for j, r in enumerate(results):
        if r.error_message is hr._no_messages(n):  # the shared empty texts: no error in this metric
            continue
        for i in np.flatnonzero(r.error != _NO_ERROR).tolist():
            texts.setdefault(i, [""] * m_count)[j] = r.error_message[i]
    if not texts:  # most cycles: no error anywhere (one shared tuple)
        return HpaProposals(replicas, utilization, usage, error, _no_messages(n, m_count))
    messages = [("",) * m_count] * n
    for i, row in texts.items():
        messages[i] = tuple(row)
    return HpaProposals(replicas, utilization, usage, error, tuple(messages))


def _metric_proposal(params: PolicyParams, m: MetricParams, j: int, pods: PodSamples, values: np.ndarray,
                     usable: np.ndarray, cur: np.ndarray, stat: np.ndarray) -> hr.ReplicaProposal:
    """HPA's proposal for metric j (``hpa_propose``'s arguments, counts as int64)."""
    if not m.per_pod:
        return _workload_metric(params, m, values[:, j], usable[:, j], pods.pods, cur, stat)
    # from listed pods without their table when it can, else from the table
    r = _listed_metric(params, m, pods, j, cur) if isinstance(pods, JoinedPodSamples) else None
    if r is None:
        r = _per_pod_metric(params, m, _pod_columns(pods, j, values, usable), _strays(pods, j), cur)
    return r


def error_free(columns: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> HpaProposals:
    """``proposals_of`` of one metric's results without an error in any target, given as its
    (N, 1) int64 ``columns`` (replicas, utilization, usage_milli, error): those arrays themselves
    and the shared empty texts (no ReplicaProposal made)."""
    return HpaProposals(*columns, _no_messages(columns[0].shape[0], 1))


def _columns(results: list[hr.ReplicaProposal], n: int) -> tuple[np.ndarray, ...]:
    """(replicas, utilization, usage_milli, error) (N, M) int64 of the M metrics' proposals; with one
    metric, its own (N,) arrays as the column (int64 already: no zeros and copies per cycle)."""
    if len(results) == 1:
        r = results[0]
        return tuple(np.asarray(a, np.int64).reshape(n, 1) for a in (r.replicas, r.utilization, r.usage_milli, r.error))
    out = tuple(np.zeros((n, len(results)), np.int64) for _ in range(4))
    for j, r in enumerate(results):
        out[0][:, j], out[1][:, j], out[2][:, j], out[3][:, j] = r.replicas, r.utilization, r.usage_milli, r.error
    return out


@functools.lru_cache(maxsize=8)
def _no_messages(n: int, m: int) -> tuple[tuple[str, ...], ...]:
    """n targets' messages of m metrics, all empty."""
    return (("",) * m,) * n
