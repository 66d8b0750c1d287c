"""The ``hpa`` preset's per-pod reads: pod states from the Cluster port, per-pod series from a
metrics source with the PodMetricsSource capability, joined into the core's PodSamples.

Wired once per Reconciler (the capability is checked then, never in the cycle). Series are
joined to pods by (namespace, pod name); a series for a pod no target lists is not used (it
names no workload). A per-pod metric whose expression aggregates the pods away, or a metrics
source without the capability, gives one value per workload: the core then lets every pod of
the workload stand for that value (see controller/core/scaling/hpa_propose.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Sequence

import numpy as np

from controller.core.scaling import compiled, hpa_compiled
from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.hpa_propose import (PERCENT_REQUEST_MILLI, JoinedPodSamples, ListedPods, PaddedPods,
                                                 PodSamples, to_milli)
from controller.core.scaling.params import PolicyParams
from controller.errors import MetricsUnavailable
from controller.model import TargetRef
from controller.ports import (Cluster, ClusterView, ListedPodMetricsSource, ListedPodSamples, MetricsSource,
                              PaddedPodSamples, PodLister, PodMetricsSource, PodSeries, PodView, Samples, ScalingReads)

PHASES = {"Pending": hr.Phase.PENDING, "Running": hr.Phase.RUNNING, "Succeeded": hr.Phase.SUCCEEDED,
          "Failed": hr.Phase.FAILED}
#: The span of a per-pod sample when the source does not say (metrics-server's default resolution).
DEFAULT_WINDOW_S = 60.0
READINESS = {True: hr.Readiness.TRUE, False: hr.Readiness.FALSE, None: hr.Readiness.NONE}


def pod_table(targets: Sequence[TargetRef], view: ClusterView, now: float) -> tuple[hr.PodTable, "PodIndex"]:
    """The pods every target lists, from the view's statuses, as HPA's calculator reads them;
    and {(namespace, pod name): row}. See ``table_of``."""
    row_of = {t: i for i, t in enumerate(targets)}
    target, phase, ready, deleted, start, transition, names = [], [], [], [], [], [], []
    for status in view.statuses:
        i = row_of.get(status.ref)
        if i is None:
            continue
        for pod in status.pods:
            target.append(i)
            phase.append(PHASES.get(pod.phase, hr.Phase.UNKNOWN))
            ready.append(READINESS[pod.ready])
            deleted.append(pod.deleted)
            start.append(math.nan if pod.start_time is None else pod.start_time)
            transition.append(math.nan if pod.ready_transition_time is None else pod.ready_transition_time)
            names.append(pod.name)
    return table_of(targets, np.asarray(target, dtype=np.int64), names, now, phase=phase, ready=ready,
                    deleted=deleted, start_time=np.asarray(start, float), transition_time=np.asarray(transition, float))


def pod_table_from_view(targets: Sequence[TargetRef], pods: PodView, now: float) -> tuple[hr.PodTable, "PodIndex"]:
    """``pod_table`` from a PodLister's arrays (one compiled pass, else ``table_of``)."""
    target = np.asarray(pods.target, np.int64)
    fast = hpa_compiled.try_listed_pod_table(target, pods.names, pods.pending, pods.ready, pods.start_time,
                                             pods.ready_transition_time, now, PERCENT_REQUEST_MILLI, DEFAULT_WINDOW_S)
    if fast is not None:
        return fast, PodIndex(targets, target, pods.names, pods.uid)
    return table_of(targets, target, pods.names, now,
                    phase=np.where(pods.pending, hr.Phase.PENDING, hr.Phase.RUNNING),
                    ready=np.where(pods.ready, hr.Readiness.TRUE, hr.Readiness.FALSE), deleted=None,
                    start_time=pods.start_time, transition_time=pods.ready_transition_time, uid=pods.uid)


def sampled_pod_table(targets: Sequence[TargetRef], got: ListedPodSamples,
                      now: float) -> tuple[hr.PodTable, np.ndarray, np.ndarray]:
    """(the pod table of ``got.pods`` with the samples' ages and window, the samples' usage in
    milli-units (P,) int64 (0: none), has a sample (P,) bool): one compiled pass, else the
    listed table joined with numpy, as ``PodReader.read`` joins a PodSeries."""
    pods = got.pods
    target = np.asarray(pods.target, np.int64)
    fast = hpa_compiled.try_sampled_pod_table(target, pods.names, pods.pending, pods.ready, pods.start_time,
                                              pods.ready_transition_time, got.values, got.age_s, now,
                                              PERCENT_REQUEST_MILLI, float(got.window_s))
    if fast is not None:
        return fast
    table, _ = pod_table_from_view(targets, pods, now)
    values = np.asarray(got.values, np.float64)
    found = np.isfinite(values)
    usage, has = np.zeros(table.size, np.int64), found.copy()
    usage[found] = to_milli(values[found])
    age = table.metric_age_s.copy()
    age[found] = np.asarray(got.age_s, np.float64)[found]
    table = hr.PodTable(**{**table.__dict__, "metric_age_s": age,
                           "metric_window_s": np.full(table.size, float(got.window_s))})
    return table, usage, has


def table_of(targets: Sequence[TargetRef], target: np.ndarray, names: Sequence[str], now: float, *, phase, ready,
             deleted, start_time: np.ndarray, transition_time: np.ndarray,
             uid: np.ndarray | None = None) -> tuple[hr.PodTable, "PodIndex"]:
    """(PodTable, its PodIndex: {(namespace, pod name): row}). Times are epoch seconds (NaN unset)
    turned into ages at ``now``; an unset readiness change is Go's zero time. Requests are 100 %
    (samples are percents of them); a sample is taken at ``now`` over DEFAULT_WINDOW_S until a
    per-pod series says otherwise."""
    p = target.size
    transition_age = np.where(np.isnan(transition_time), hr.ZERO_TIME_AGE_S, now - transition_time)
    table = hr.PodTable.of(target, phase=phase, ready=ready, deleted=deleted, start_age_s=now - start_time,
                           ready_transition_age_s=transition_age, request_milli=np.full(p, PERCENT_REQUEST_MILLI),
                           metric_age_s=np.zeros(p), metric_window_s=np.full(p, DEFAULT_WINDOW_S), names=names)
    return table, PodIndex(targets, target, names, uid)


class PodIndex(Mapping):
    """{(namespace, pod name): row} of a pod table, built on first use; ``rows`` joins a
    PodSeries by uid instead when both sides carry uids (no strings on the simulator's path)."""

    def __init__(self, targets: Sequence[TargetRef], target: np.ndarray, names: Sequence[str],
                 uid: np.ndarray | None = None):
        self._targets, self._target, self._names, self._uid = targets, target, names, uid
        self._by_name: dict | None = None

    def _dict(self) -> dict:
        if self._by_name is None:
            namespaces = [t.namespace for t in self._targets]
            self._by_name = {(namespaces[i], name): k
                             for k, (i, name) in enumerate(zip(self._target.tolist(), self._names))}
        return self._by_name

    def __getitem__(self, key):
        return self._dict()[key]

    def __iter__(self):
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def rows(self, series: PodSeries) -> np.ndarray:
        """The table row of each series, -1 for a pod the table does not list, (K,) int64."""
        if self._uid is not None and series.uid is not None:
            uid, want = np.asarray(self._uid, np.int64), np.asarray(series.uid, np.int64)
            if uid.size == 0:
                return np.full(want.size, -1, dtype=np.int64)
            in_order = hpa_compiled.try_subsequence_rows(uid, want)  # samples in the pods' order (the simulator's)
            if in_order is not None:
                return in_order
            if uid.size < 2 or bool(np.all(uid[1:] > uid[:-1])):  # already sorted
                pos = np.minimum(np.searchsorted(uid, want), uid.size - 1)
                return np.where(uid[pos] == want, pos, -1).astype(np.int64)
            order = np.argsort(uid, kind="stable")
            pos = np.minimum(np.searchsorted(uid, want, sorter=order), uid.size - 1)
            return np.where(uid[order[pos]] == want, order[pos], -1).astype(np.int64)
        index = self._dict()
        return np.array([index.get(key, -1) for key in zip(series.namespaces, series.pods)], dtype=np.int64)


def workload_summary(pods: PodSamples, j: int, n: int) -> Samples:
    """Metric j as one value per target for the decision records: the mean of its pods' samples."""
    t, has = pods.pods.target, pods.has_sample[:, j]
    fast = hpa_compiled.try_pod_means(t, pods.usage_milli[:, j], has, n)  # None: kernels off
    if fast is not None:
        values, present = fast
    else:
        count = np.bincount(t[has], minlength=n)
        total = np.bincount(t[has], weights=pods.usage_milli[has, j] / 1000.0, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        present = count > 0
    return Samples(values=values, present=present, age_s=np.zeros(n), conflict=np.zeros(n, bool))


class PodReader:
    """Which metrics of one policy are read per pod, and from what; built when a Reconciler is wired.

    ``columns``: the policy's per-pod metrics (the ``hpa`` preset's Resource metrics), which
    need the pods' states; ``source``: the metrics source when it has the PodMetricsSource
    capability, else None (those metrics are then queried like any other, one value per workload).
    """

    def __init__(self, params: PolicyParams, queries: Sequence[str], metrics: MetricsSource, cluster: Cluster):
        self.columns = params.pod_metrics
        self.queries = tuple(queries)
        self.n_metrics = len(params.metrics)
        self.source = metrics if self.columns and isinstance(metrics, PodMetricsSource) else None
        self.lister = cluster if self.columns and isinstance(cluster, PodLister) else None
        # the metric columns this reader queries (the Reconciler's workload query skips them), made once
        self.read_here: frozenset[int] = frozenset(self.columns) if self.source is not None else frozenset()
        # the pods and one per-pod metric's samples in one read, when the source lists the cluster's pods
        self.joined = (metrics if self.lister is not None and self.source is not None and len(self.read_here) == 1
                       and isinstance(metrics, ListedPodMetricsSource) and metrics.lists_pods_of(cluster) else None)
        # read_stacked's answer when it gave no arrays: (targets, now, what the joined read gave), for read
        self._held: tuple | None = None

    @property
    def wants_statuses(self) -> bool:
        """The cycle must observe the targets' full statuses (pods) for this reader: it reads
        per-pod metrics and the cluster cannot list pods as arrays."""
        return bool(self.columns) and self.lister is None

    def read(self, targets: Sequence[TargetRef], view: ClusterView, now: float, errors: list[str],
             names: Sequence[str]) -> tuple[PodSamples | None, dict[int, Samples]]:
        """(the pods and their samples, {column: workload Samples} for the columns read here).

        One query per per-pod metric. A failed query leaves that metric without samples (its
        proposal is invalid, which may block a scale-down and never causes one)."""
        if not self.columns:
            return None, {}
        n = len(targets)
        prefetched: dict[int, PodSeries | Samples | MetricsUnavailable] = {}
        if self.joined is not None:
            j = next(iter(self.read_here))
            got = self._query_joined(targets, now)
            if isinstance(got, MetricsUnavailable):
                prefetched[j] = got
            if isinstance(got, PaddedPodSamples):  # the pods where the cluster keeps them: read in place
                if compiled.enabled():
                    return self._padded(targets, got, j, now)
                got = got.listed()
            if isinstance(got, ListedPodSamples):
                return self._joined(targets, got, j, now)
            if isinstance(got, Samples):
                prefetched[j] = got
        if self.lister is not None:
            table, index = pod_table_from_view(targets, self.lister.list_pods(targets), now)
        elif n and not view.statuses:  # a Cluster without pod lists (a replay): pods known by count
            return None, {j: self._unjoinable(j, targets, now, errors, names) for j in self.read_here}
        else:
            table, index = pod_table(targets, view, now)
        p = table.size
        usage, has = np.zeros((p, self.n_metrics), np.int64), np.zeros((p, self.n_metrics), bool)
        per_pod = np.zeros(self.n_metrics, bool)
        age, window = table.metric_age_s, table.metric_window_s
        summaries: dict[int, Samples] = {}
        for j in sorted(self.read_here):
            try:
                got = prefetched[j] if j in prefetched else self.source.query_pods(self.queries[j], targets, now)
                if isinstance(got, MetricsUnavailable):
                    raise got
            except MetricsUnavailable as exc:
                errors.append(f"metric {names[j]}: {exc}")
                got = PodSeries((), (), np.zeros(0), np.zeros(0))
            if isinstance(got, Samples):  # the expression aggregates pods away: one value per workload
                summaries[j] = got
                continue
            rows = index.rows(got)
            age = age.copy()
            if not hpa_compiled.try_join_samples(rows, got.values, got.age_s, usage[:, j], has[:, j], age):
                found = (rows >= 0) & np.isfinite(got.values)
                usage[rows[found], j], has[rows[found], j] = to_milli(got.values[found]), True
                age[rows[found]] = np.asarray(got.age_s, np.float64)[found]
            window = np.full(p, float(got.window_s))
            per_pod[j] = True
        table = hr.PodTable(**{**table.__dict__, "metric_age_s": age, "metric_window_s": window})
        pods = PodSamples(table, usage, has, per_pod)
        for j in np.flatnonzero(per_pod):
            summaries[int(j)] = workload_summary(pods, int(j), n)
        return pods, summaries

    def read_stacked(self, targets: Sequence[TargetRef], now: float) -> ScalingReads | None:
        """``read``'s pods with the policy's one metric as the (N, 1) arrays the Reconciler stacks
        of ``read``'s Samples (values, present, age_s), in one read, where that metric is read here
        from pods in the cluster's padded layout, kernels on: no Samples made, the source's workload
        means as they came (fresh arrays). None otherwise; then ``read`` (it uses this read's answer)."""
        if self.joined is None or self.n_metrics != 1 or not compiled.enabled():
            return None
        got = self._query_joined(targets, now)
        if not isinstance(got, PaddedPodSamples):
            self._held = (targets, now, got)
            return None
        n = len(targets)
        pods = self._padded_pods(targets, got, 0, now)
        values, present = got.means
        return ScalingReads(np.asarray(values, np.float64).reshape(n, 1), np.asarray(present, np.bool_).reshape(n, 1),
                            np.zeros((n, 1)), None, pods)

    def _query_joined(self, targets: Sequence[TargetRef], now: float):
        """The joined read of the one metric read here (``query_listed_pods``), or the exception it
        raised (MetricsUnavailable); what ``read_stacked`` held of these targets at ``now``, if any."""
        held, self._held = self._held, None
        if held is not None and held[0] is targets and held[1] == now:
            return held[2]
        try:
            return self.joined.query_listed_pods(self.queries[next(iter(self.read_here))], targets, now)
        except MetricsUnavailable as exc:
            return exc

    def _padded(self, targets: Sequence[TargetRef], got: PaddedPodSamples, j: int,
                now: float) -> tuple[PodSamples, dict[int, Samples]]:
        """``read``'s result from pods in the cluster's own layout with metric j's samples (the
        kernels on): ``_padded_pods`` and the source's means, what ``_joined`` gives of their listing."""
        return self._padded_pods(targets, got, j, now), {j: self._mean_samples(got.means, len(targets))}

    def _padded_pods(self, targets: Sequence[TargetRef], got: PaddedPodSamples, j: int, now: float) -> PodSamples:
        """The pods as they sit (JoinedPodSamples of PaddedPods: the calculator reads them in place;
        their table is built from their listing only if something else reads it)."""
        padded = PaddedPods(got.slots, got.values, got.age_s, float(now), PERCENT_REQUEST_MILLI, float(got.window_s), j)
        return JoinedPodSamples(padded, self.n_metrics, lambda: sampled_pod_table(targets, got.listed(), now))

    @staticmethod
    def _mean_samples(means: tuple[np.ndarray, np.ndarray], n: int) -> Samples:
        """The workload Samples of a source's means (mean (N,), has one (N,)): fresh, no conflict."""
        values, present = means
        return Samples(values=values, present=present, age_s=np.zeros(n), conflict=np.zeros(n, bool))

    def _joined(self, targets: Sequence[TargetRef], got: ListedPodSamples, j: int,
                now: float) -> tuple[PodSamples, dict[int, Samples]]:
        """``read``'s result from the pods with metric j's samples joined (``ListedPodMetricsSource``),
        the same arrays as listing, querying and joining by uid give. With the kernels and the
        source's workload means (``got.means``, made in its listing pass), the pods as listed
        (JoinedPodSamples: the calculator reads them in one pass; their table is built only if
        something else reads it) and those means; else the table, and its summary."""
        n = len(targets)
        means = got.means
        if means is not None and compiled.enabled():
            pods = got.pods
            listed = ListedPods(np.asarray(pods.target, np.int64), np.asarray(pods.pending, np.bool_),
                                np.asarray(pods.ready, np.bool_), np.asarray(pods.start_time, np.float64),
                                np.asarray(pods.ready_transition_time, np.float64), np.asarray(got.values, np.float64),
                                np.asarray(got.age_s, np.float64), pods.names, float(now), PERCENT_REQUEST_MILLI,
                                float(got.window_s), j)
            joined = JoinedPodSamples(listed, self.n_metrics, lambda: sampled_pod_table(targets, got, now))
            return joined, {j: self._mean_samples(means, n)}
        table, usage_j, has_j = sampled_pod_table(targets, got, now)
        p = table.size
        if self.n_metrics == 1:  # the one column, copied once (not zeros, then the copy)
            usage = np.array(usage_j, np.int64).reshape(p, 1)
            has = np.array(has_j, bool).reshape(p, 1)
        else:
            usage, has = np.zeros((p, self.n_metrics), np.int64), np.zeros((p, self.n_metrics), bool)
            usage[:, j], has[:, j] = usage_j, has_j
        per_pod = np.zeros(self.n_metrics, bool)
        per_pod[j] = True
        pods = PodSamples(table, usage, has, per_pod)
        return pods, {j: workload_summary(pods, j, n)}

    def _unjoinable(self, j: int, targets: Sequence[TargetRef], now: float, errors: list[str],
                    names: Sequence[str]) -> Samples:
        """Metric j when the pods are not listed: workload values if the expression gives them;
        per-pod series cannot be joined to a workload, so the metric is missing."""
        try:
            got = self.source.query_pods(self.queries[j], targets, now)
        except MetricsUnavailable as exc:
            errors.append(f"metric {names[j]}: {exc}")
            return Samples.missing(len(targets))
        if isinstance(got, Samples):
            return got
        errors.append(f"metric {names[j]}: per-pod series, but the cluster did not list the pods")
        return Samples.missing(len(targets))
