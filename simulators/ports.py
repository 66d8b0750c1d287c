"""The simulated cluster and its signals behind the controller's ports (Cluster, MetricsSource).

The same Reconciler that runs live talks to these, so a simulation exercises the real
decision path. Arrays are built straight from the engine's (S,) arrays: no per-target objects.
"""

from __future__ import annotations

import json
from itertools import repeat
from operator import attrgetter
from typing import Callable, Sequence

import numpy as np

from controller.core.scaling import compiled, signal_compiled
from controller.errors import MetricsUnavailable, NotFound
from controller.model import Action, ActionKind, ScaleActions, TargetRef, TargetSelector
from controller.ports import (ClusterView, ListedPodSamples, PaddedPodSamples, PodSeries, PodView, Samples, ScalingReads,
                              StateDeletion, state_name)
from simulators import metrics_compiled, pod_reads, pod_samples_compiled, scaling_reads, streams
from simulators.cluster import SimCluster
from simulators.lazy_names import LazyStrings
from simulators.signals import METRIC_SIGNALS, ObservedSignals
from simulators.workload import MIB


class SimTargets:
    """``Cluster`` port over a SimCluster, restricted to the services named in ``services``.

    With ``match_selectors`` (the contract behaviour, as the Kubernetes adapter) a selector
    resolves to the services it matches by namespace, names and labels; without it (the
    simulation runner's choice, so any policy can be tried on any scenario) every selector
    resolves to all of ``services``. Results are sorted and cached (the simulated cluster's
    workloads never change).
    """

    def __init__(self, cluster: SimCluster, services: Sequence[str], match_selectors: bool = False,
                 with_statuses: bool = False):
        self.cluster = cluster
        self.services = set(services)
        self.match_selectors = match_selectors
        self.with_statuses = with_statuses  # full pod statuses: needed by health checks, slower
        self._resolved: dict[TargetSelector, list[TargetRef]] = {}
        self._last_resolved: tuple[TargetSelector, list[TargetRef]] | None = None  # the last selector asked, its list
        # the last target list object asked about (the Reconciler's of a cycle, never changed in
        # place) and what was found of it: its "rows", "selection" and "rows_of", each made once
        self._listed: tuple[Sequence[TargetRef], dict] | None = None
        self._index_of: dict[TargetRef, int] = {}  # _index's rows, of the targets found

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        last = self._last_resolved
        if last is not None and last[0] is selector:  # a policy's own selector, every cycle: not hashed again
            return last[1]
        if selector not in self._resolved:
            refs = (self.cluster.resolve(selector) if self.match_selectors
                    else [self.cluster.ref(i) for i in range(self.cluster.n_services)])
            self._resolved[selector] = sorted(r for r in refs if r.name in self.services)
        self._last_resolved = (selector, self._resolved[selector])
        return self._last_resolved[1]

    def rows(self, targets: Sequence[TargetRef]) -> np.ndarray:
        """Service indices of ``targets`` (cached for the same list object: the cache holds the
        list itself, so a new list can never pass for a freed one that had the same ``id``)."""
        found = self._found(targets)
        if "rows" not in found:
            rows = np.array([self.cluster.index(t) for t in targets], dtype=np.int64)
            every = rows.size == self.cluster.n_services and bool(np.array_equal(rows, np.arange(rows.size)))
            found["rows"], found["selection"] = rows, slice(None) if every else rows
        return found["rows"]

    def selection(self, targets: Sequence[TargetRef]) -> np.ndarray | slice:
        """``rows(targets)``, or ``slice(None)`` when they are every service in order (a view, not a copy)."""
        self.rows(targets)
        return self._found(targets)["selection"]

    def _found(self, targets: Sequence[TargetRef]) -> dict:
        """What was found of ``targets``, kept while it is the last list object asked about (the
        cache holds the list itself, so a new list can never pass for a freed one of the same ``id``)."""
        if self._listed is None or self._listed[0] is not targets:
            self._listed = (targets, {})
        return self._listed[1]

    def observe(self, targets: Sequence[TargetRef], with_pods: bool | None = None) -> ClusterView:
        """Arrays straight from the engine; unknown targets have ``exists`` False. Full statuses
        (pods, revisions) with ``with_pods`` (default: the constructor's ``with_statuses``)."""
        return self.cluster.view(targets, with_statuses=self.with_statuses if with_pods is None else with_pods,
                                 with_paused=True, rows=self._rows_of(targets))

    def apply(self, action: Action) -> None:
        self.cluster.apply(action)

    def apply_scales(self, actions: Sequence[Action]) -> list[Action]:
        """The ``BatchScaler`` capability: each SCALE action's count queued (SimCluster.set_replicas,
        as ``apply`` of each in order queues it), all or none: a subclass that writes its own way
        (``apply`` overridden: sim serve's store, a test's refusals), an action of another kind or
        a workload the cluster does not have hands them all back, for ``apply`` one by one."""
        if type(self).apply is not SimTargets.apply:
            return list(actions)
        if isinstance(actions, ScaleActions):  # the cycle's arrays: no Action made, no lookup per target
            return self._apply_scale_rows(actions)
        if any(a.kind is not ActionKind.SCALE for a in actions):
            return list(actions)
        try:
            rows = [self._index(a.target) for a in actions]
        except NotFound:
            return list(actions)
        set_replicas = self.cluster.set_replicas
        for i, a in zip(rows, actions):
            set_replicas(i, int(a.replicas))
        return []

    def _apply_scale_rows(self, actions: ScaleActions) -> list[Action]:
        """``apply_scales`` of a ScaleActions: its counts queued at its targets' rows in one call
        (SimCluster.queue_distinct_rows: checked, gathered and queued in one compiled pass, else
        set_replicas_rows); all handed back when one of its targets is unknown."""
        rows, exists = self._rows_of(actions.targets)
        if self.cluster.queue_distinct_rows(rows, exists, actions.rows, actions.replicas):
            return []
        if not exists[actions.rows].all():
            return list(actions)
        self.cluster.set_replicas_rows(rows[actions.rows], actions.replicas)
        return []

    def _index(self, target: TargetRef) -> int:
        """The cluster's row of ``target`` (SimCluster.index: NotFound when unknown), kept once
        found: the simulated cluster's workloads never change, and a cycle's scales look up a few
        of the same targets every cycle."""
        row = self._index_of.get(target)
        if row is None:
            row = self._index_of[target] = self.cluster.index(target)
        return row

    def pod_starts(self, targets: Sequence[TargetRef], due: np.ndarray) -> tuple | None:
        """The ``PodStartLister`` capability: the pods of ``targets`` at ``due`` (D,) int64 as the
        start-up observer reads them, straight from the engine's slots (SimCluster.pod_starts),
        without a target list of their own. None when the kernels are off, or when a subclass
        lists its own way (``list_pods`` overridden: a test's failing read): then ``list_pods``."""
        if type(self).list_pods is not SimTargets.list_pods:
            return None
        rows, exists = self._rows_of(targets)
        return self.cluster.pod_starts(rows[due], exists[due], due)

    def _rows_of(self, targets: Sequence[TargetRef]) -> tuple[np.ndarray, np.ndarray]:
        """SimCluster.rows_of(targets), kept for the last list object asked about (the Reconciler's
        list of a cycle, never changed in place: as ``rows`` keeps it), without comparing its targets."""
        found = self._found(targets)
        if "rows_of" not in found:
            found["rows_of"] = self.cluster.rows_of(targets)
        return found["rows_of"]

    def known_rows(self, targets: Sequence[TargetRef]) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """(``_rows_of(targets)``'s rows and exists, whether they are every service in order), kept
        as it keeps them; None when some target is not a workload of the cluster."""
        found = self._found(targets)
        if "known_rows" not in found:
            rows, exists = self._rows_of(targets)
            found["known_rows"] = (rows, exists, isinstance(self.selection(targets), slice)) if exists.all() else None
        return found["known_rows"]

    def list_pods(self, targets: Sequence[TargetRef]) -> PodView:
        """The ``PodLister`` capability: the targets' pods straight from the engine's arrays."""
        pods = self.cluster.pod_arrays(targets)
        return PodView(target=np.asarray(pods["at"], dtype=np.int64), names=pods["name"], pending=pods["pending"],
                       ready=pods["ready"], start_time=pods["start_time"],
                       ready_transition_time=pods["ready_transition_time"], uid=pods["uid"],
                       created_time=pods["start_time"])  # the simulated pods' start_time is their creation


def _same_ask(kept: tuple, asked: tuple) -> bool:
    """Whether ``asked`` (queries, latest queries, then objects) is what ``kept`` was made for: the
    two query tuples equal, every later item the very same object (a policy's bounds and target
    list, the bindings: never changed in place; an identity test is what a per-cycle cache affords)."""
    return kept[:2] == asked[:2] and all(a is b for a, b in zip(kept[2:], asked[2:]))


class SimMetrics:
    """``MetricsSource`` port: each policy query is bound to one simulated signal.

    Like PromQL's ``rate(...[1m])``, a query returns the mean of the signal over the last
    ``window_s`` (the ticks whose series were present); gauges of state (ready replicas,
    restarts) are instant. A metrics outage on every bound service raises MetricsUnavailable,
    as an unreachable Prometheus would; per-service outages are missing series.
    """

    INSTANT = {"ready_replicas", "restarts_total"}
    #: Modes of ``memory_mib`` read at the last tick (PromQL reads a gauge without a range so): see _memory.
    MEMORY_MODES = ("percent_of_request", "total_bytes", "pod_bytes")
    #: Workload signals the ``hpa`` preset reads per pod (``query_pods``).
    PER_POD = {"utilization_pct"}
    #: Spread of a pod's measured p95 around its true value (log-normal sigma), per cycle.
    POD_LATENCY_SIGMA = 0.1
    #: Per-pod fields sampled per cycle (``_sample``), not kept in the per-service ring.
    SAMPLED = ("requests_rps", "errors_rps", "latency_s")

    def __init__(self, cluster: SimCluster, bindings: dict[str, str], window_s: float, tick_s: float,
                 seed: int = 0, windows: dict[str, float] | None = None):
        self.cluster = cluster
        self.bindings = bindings  # query expression -> TickSignals field
        self.slots = max(1, int(round(window_s / tick_s)))
        # queries read over a window of their own (a ramp's latest reading): the mean of the last
        # round(window / tick) ticks, at least one, at most the scenario's window
        self.ticks = {q: min(self.slots, max(1, int(round(w / tick_s)))) for q, w in (windows or {}).items()}
        self.tick_s = tick_s
        # the per-service signals only: a pod check's field (pod_restarts' "restarts", pod_extra_latency's
        # "extra_latency_s") is read from the pods' snapshot (_query_pods), and no tick has it per service
        bound = {f.split(":")[0] for f in bindings.values()}
        if any(f.endswith(":total_cores") for f in bindings.values()):
            bound.add("ready_replicas")  # total cores: each tick's utilization x its Ready pods (_total_cores)
        fields = sorted((bound & set(METRIC_SIGNALS)) - set(self.SAMPLED))
        n = cluster.n_services
        # one (F, W, S) block, a (W, S) ring per field: SimCluster.step_ticks writes it in one call
        self._rings = np.full((len(fields), self.slots, n), np.nan)
        self._ring = {f: self._rings[i] for i, f in enumerate(fields)}
        self._k = 0
        self._observed: ObservedSignals | None = None  # the last tick's (_last), once made
        self._observe: Callable[[], ObservedSignals] | None = None  # or what makes it, not called yet
        self._pods: tuple[dict, dict[str, int], dict[str, np.ndarray]] | None = None
        self._pod_pick: tuple | None = None  # _pod_rows' last answer, with the pod list and snapshot it is for
        # across snapshots, while no pod came, went or was renamed (the port hands the same name list):
        # (names, each name's row) of _pod_index; (a copy of the pod list, names, each pod's row) of _picked
        self._pod_index: tuple[list[str], dict[str, int]] | None = None
        self._pod_names_pick: tuple[list[TargetRef], list[str], np.ndarray] | None = None
        self._targets: SimTargets | None = None
        self._rngs = streams.ServiceStreams(int(seed), streams.Purpose.POD_SAMPLES)  # one per service, by name
        self._typed_streams = None  # _rngs' generators of every service for the compiled draws (_streams)
        self._sampled_at: float | None = None
        self._per_service: dict[str, np.ndarray] = {}  # (S,) ServiceConfig fields read once (_service_field)
        self._plan: tuple[tuple, scaling_reads.ReadPlan | None] | None = None  # the last read_scaling's (_read_plan)
        # the last read_scaling's arguments and its reader (_reader_of); the last outage check (_outage)
        self._reader: tuple[tuple, scaling_reads.ScalingReader] | None = None
        self._outage_kept: tuple[np.ndarray, np.ndarray | slice, bool] | None = None

    def attach(self, targets: SimTargets) -> None:
        self._targets = targets

    def push(self, observed: ObservedSignals) -> None:
        """Record one tick's observed signals (call after every engine step)."""
        slot = self._k % self.slots
        for f, ring in self._ring.items():
            ring[slot] = observed.values[f]
        self.pushed(1, observed)

    @property
    def fields(self) -> list[str]:
        """The signals kept in the rings, in the order of :meth:`sink`'s block."""
        return list(self._ring)

    def sink(self) -> tuple[np.ndarray, int]:
        """Where the next ticks' signals go, for an engine that writes them itself
        (SimCluster.step_ticks): the (F, W, S) rings of :attr:`fields` and the next slot (then
        on modulo W); the writer then calls :meth:`pushed`."""
        return self._rings, self._k % self.slots

    def pushed(self, ticks: int, observed: ObservedSignals | Callable[[], ObservedSignals]) -> None:
        """``ticks`` more ticks are in the rings (the last one's signals: ``observed``, or a
        function that makes them, called on first read: the cluster's ``signals`` after a run of
        ticks, whose cycle's compiled reads take only the masks, :meth:`_masks`)."""
        self._k += ticks
        if isinstance(observed, ObservedSignals):
            self._observed, self._observe = observed, None
        else:
            self._observed, self._observe = None, observed
        self._pods = None  # per-pod signals of this tick, built on the first pod query

    @property
    def _last(self) -> ObservedSignals | None:
        """The last tick's observed signals (None before the first)."""
        if self._observe is not None:
            self._observed, self._observe = self._observe(), None
        return self._observed

    @_last.setter
    def _last(self, observed: ObservedSignals | None) -> None:
        self._observed, self._observe = observed, None

    def _ticked(self) -> bool:
        """A tick is in the rings (:attr:`_last` is not None), without making its signals."""
        return self._observe is not None or self._observed is not None

    def _masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unavailable, nonfinite, sample_age_s) of :attr:`_last`, without making its values when
        they are not made yet (the cluster's masks: the same until its next tick)."""
        if self._observe is not None:
            return self.cluster.observed_masks()
        obs = self._observed
        return obs.unavailable, obs.nonfinite, obs.sample_age_s

    def query(self, expr: str, targets: Sequence[TargetRef], at: float, labels: tuple[str, str] | None = None
              ) -> Samples:
        """``labels=("namespace", "pod")``: ``targets`` are pods and ``expr`` must be bound to a
        per-pod signal (see SimCluster.pod_signals); otherwise targets are workloads."""
        if self._last is None:
            raise MetricsUnavailable("no samples yet")
        field = self.bindings.get(expr)
        if field is None:
            raise MetricsUnavailable(f"query is not bound to a simulated signal: {expr!r}")
        if labels is not None and labels[1] == "pod":
            return self._query_pods(field, targets)
        field, _, mode = field.partition(":")
        rows = (self._targets.selection(targets) if self._targets
                else np.asarray([self.cluster.index(t) for t in targets], dtype=np.intp))
        obs = self._last
        unavailable = obs.unavailable[rows]
        if len(targets) and unavailable.all():
            raise MetricsUnavailable("metrics outage: no series for any target")
        view = isinstance(rows, slice)  # basic indexing: views of the tick's arrays (a gather makes fresh ones)
        if mode in self.MEMORY_MODES:
            values = self._memory(mode, obs.values[field][rows], rows)
        elif mode == "total_cores":
            values = self._total_cores(expr, rows, obs.nonfinite)
        elif mode == "pod_cores":  # one pod's CPU in cores: its utilization (the window's mean) x its request
            filled = min(self._k, self.slots)
            values = (metrics_compiled.window_means(self._ring[field], filled, rows, obs.nonfinite)
                      * (self._service_field("cpu_request_cores")[rows] / 100.0))
        elif mode == "rate":  # per minute over the window, like increase(x[window]) scaled to 1 m
            filled = min(self._k, self.slots)
            oldest = self._ring[field][(self._k - filled) % self.slots, rows]
            values = (obs.values[field][rows] - oldest) * 60.0 / max(filled * self.tick_s, self.tick_s)
        elif field in self.INSTANT:
            values = obs.values[field][rows].astype(np.float64, copy=view)
        elif expr in self.ticks:  # a shorter window than the scenario's: the mean of its last ticks
            k = min(self.ticks[expr], self._k)
            values = metrics_compiled.recent_means(self._ring[field], (self._k - 1 - np.arange(k)) % self.slots, rows)
        else:
            filled = min(self._k, self.slots)
            values = metrics_compiled.window_means(self._ring[field], filled, rows, obs.nonfinite)
        # fresh float64 arrays, copied only where they would be views of the tick's
        return Samples(values=values.astype(np.float64, copy=False), present=~unavailable,
                       age_s=obs.sample_age_s[rows].astype(np.float64, copy=view), conflict=np.zeros(len(targets), bool))

    def read_scaling(self, queries: Sequence[str], latest: Sequence[str | None], targets: Sequence[TargetRef],
                     at: float, stale_after_s: float, nonnegative: np.ndarray,
                     implausible_above: np.ndarray) -> ScalingReads | None:
        """The ``ArrayMetricsSource`` capability: ``query`` of each of ``queries`` and of the
        ramps' ``latest`` queries, stacked, in one compiled read of the rings
        (simulators/scaling_reads.py). None where ``query`` would do more than a window mean (an
        instant gauge, a rate, memory or cores, a query over its own window) or raise (no tick
        yet, an unbound query, an outage), or where the kernels decline: then query one by one."""
        if not self._ticked() or not len(targets) or not compiled.enabled():
            return None
        reader = self._reader_of(queries, latest, targets, nonnegative, implausible_above)
        if reader is None:
            return None
        unavailable, nonfinite, age_s = self._masks()
        if self._outage(unavailable, reader.rows):  # query raises MetricsUnavailable: said per query
            return None
        return reader.read(self._rings, self._k, nonfinite, unavailable, np.asarray(age_s, np.float64), stale_after_s)

    def _reader_of(self, queries: Sequence[str], latest: Sequence[str | None], targets: Sequence[TargetRef],
                   nonnegative: np.ndarray, implausible_above: np.ndarray) -> scaling_reads.ScalingReader | None:
        """The ScalingReader of ``_read_plan`` over ``targets``' rows; None where it declines. Kept
        while the queries are the same and every other argument the same object as last asked (a
        policy's every cycle: its bounds, the Reconciler's target list, never changed in place;
        the port attached) and the plan the same: read again without a look at any of them."""
        asked = (queries, latest, targets, nonnegative, implausible_above, self._targets)
        kept = self._reader
        if kept is not None and _same_ask(kept[0], asked) and kept[1].plan is self._plan_kept():
            return kept[1]
        plan = self._read_plan(tuple(queries), tuple(latest), nonnegative, implausible_above)
        if plan is None:
            self._reader = None
            return None
        rows = (self._targets.selection(targets) if self._targets
                else np.asarray([self.cluster.index(t) for t in targets], dtype=np.int64))
        self._reader = (asked, scaling_reads.ScalingReader(plan, rows, self._rings.shape))
        return self._reader[1]

    def _plan_kept(self) -> scaling_reads.ReadPlan | None:
        """The last plan :meth:`_read_plan` made, while the bindings and windows it was made
        of are the same objects (a caller that rebinds them gets a new plan)."""
        kept = self._plan
        if kept is None or kept[0][4] is not self.bindings or kept[0][5] is not self.ticks:
            return None
        return kept[1]

    def _outage(self, unavailable: np.ndarray, rows: np.ndarray | slice) -> bool:
        """Every one of ``rows`` unavailable (a metrics outage on them all); kept for a read-only
        mask (the engine's shared all-False one, between metric faults), asked every cycle."""
        kept = self._outage_kept
        if kept is not None and kept[0] is unavailable and kept[1] is rows:
            return kept[2]
        out = bool(unavailable[rows].all())
        self._outage_kept = (unavailable, rows, out) if not unavailable.flags.writeable else None
        return out

    def _read_plan(self, queries: tuple[str, ...], latest: tuple[str | None, ...], nonnegative: np.ndarray,
                   implausible_above: np.ndarray) -> scaling_reads.ReadPlan | None:
        """The ReadPlan of ``queries`` and their ``latest`` queries (none: ``()``), kept for the
        last ones asked (the same policy's every cycle) while the bindings and windows are the
        same objects (a caller that rebinds them, as a test stopping every query does, gets a new
        plan); None when ``query`` reads one of them other than as the mean of its ring over the
        metrics window (a latest query: over its own)."""
        key = (queries, latest, nonnegative, implausible_above, self.bindings, self.ticks)
        kept = self._plan
        if kept is not None and _same_ask(kept[0], key):
            return kept[1]
        latest = latest or (None,) * len(queries)  # a policy without ramps' latest queries
        fields, latest_fields = self._ring_indexes(queries, windowed=False), self._ring_indexes(latest, windowed=True)
        bounds = signal_compiled.signal_bounds(len(queries), nonnegative, implausible_above)
        plan = None
        if fields is not None and latest_fields is not None and bounds is not None and len(latest) == len(queries):
            ticks = np.array([self.ticks[q] if q is not None else 0 for q in latest], np.int64)
            plan = scaling_reads.ReadPlan(fields, latest_fields, ticks, *bounds)
        self._plan = (key, plan)
        return plan

    def _ring_indexes(self, queries: Sequence[str | None], windowed: bool) -> np.ndarray | None:
        """(Q,) int64 the ring of each query's signal (-1 for None), when ``query`` reads each
        as a mean of its ring: over the metrics window (``windowed`` False) or over a window of
        its own (True: a ramp's latest query); None when one is read otherwise."""
        out = np.full(len(queries), -1, np.int64)
        names = list(self._ring)
        for j, expr in enumerate(queries):
            if expr is None:
                continue
            field = self.bindings.get(expr)
            if (field is None or field not in self._ring or field in self.INSTANT
                    or (expr in self.ticks) is not windowed):
                return None
            out[j] = names.index(field)
        return out

    def _service_field(self, name: str) -> np.ndarray:
        """(S,) a ServiceConfig field per workload (a pod's requests: ``cpu_request_cores``,
        ``memory_request_mib``), read from the cluster once."""
        if name not in self._per_service:
            self._per_service[name] = np.array([getattr(s, name) for s in self.cluster.config.services], np.float64)
        return self._per_service[name]

    def _total_cores(self, expr: str, rows: np.ndarray | slice, nonfinite: np.ndarray) -> np.ndarray:
        """The Ready pods' CPU in cores, (n,), as sum(rate(container_cpu_usage_seconds_total[w])) reads
        it: the mean over the query's window of each tick's utilization (percent of a pod's request)
        x Ready pods x a pod's request (cores). PromQL averages the total, so pods that started or
        went inside the window count for the ticks they ran (a mean utilization times the last
        tick's Ready pods counted them for the whole window). A tick without a Ready pod used no
        CPU (0); a tick whose series read NaN is left out; a window without a Ready pod reads NaN
        (no container, no series)."""
        k = min(self.ticks.get(expr, self.slots), self._k)
        slots = (self._k - 1 - np.arange(k)) % self.slots
        utilization = self._ring["utilization_pct"][slots][:, rows]
        ready = self._ring["ready_replicas"][slots][:, rows]
        with np.errstate(invalid="ignore"):
            cores = np.where(ready == 0, 0.0, utilization * ready) * (self._service_field("cpu_request_cores")[rows] / 100.0)
            counts = np.sum(~np.isnan(cores), axis=0)
            mean = np.where(counts > 0, np.nansum(cores, axis=0) / np.maximum(counts, 1), np.nan)
        ran = np.nansum(ready, axis=0) > 0
        return np.where(nonfinite[rows] | ~ran, np.nan, mean)

    def _memory(self, mode: str, mean_mib: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
        """What an imported HPA memory query reads from the last tick's (n,) mean working set of
        running pods (MiB): ``percent_of_request``, sum(working set) / sum(requests) in percent
        (every pod of a workload requests the same); ``total_bytes``, sum(working set) in bytes;
        ``pod_bytes``, one pod's working set in bytes (a query by (namespace, pod), which every
        running pod reads alike). NaN with no running pod: cAdvisor has no series then, and a sum
        over none has none."""
        running = self.cluster.running_pods[rows]
        if mode == "percent_of_request":
            values = mean_mib * (100.0 / self._service_field("memory_request_mib")[rows])
        elif mode == "pod_bytes":
            values = mean_mib * float(MIB)
        else:
            values = mean_mib * running * float(MIB)
        return np.where(running > 0, values, np.nan)

    def query_pods(self, expr: str, targets: Sequence[TargetRef], at: float) -> PodSeries | Samples:
        """The ``PodMetricsSource`` capability: per-pod series of a signal HPA reads per pod
        (PER_POD: CPU utilization, as metrics-server reports it for every running pod); other
        signals come back as one value per workload, like ``query``. Load is shared evenly by
        a service's ready pods, so each running pod reports its service's value over the
        metrics window; pending pods and services in an outage or a NaN fault report nothing."""
        workload = self.query(expr, targets, at)
        if self.bindings[expr].split(":")[0] not in self.PER_POD:
            return workload
        pods = self.cluster.running_pod_samples(targets, workload.present, workload.values, workload.age_s)
        rows = pods["at"]  # names made on access: the controller joins by uid
        namespaces = LazyStrings(lambda j: targets[int(rows[j])].namespace, rows.size)
        return PodSeries(namespaces=namespaces, pods=pods["name"], values=pods["values"], age_s=pods["age_s"],
                         window_s=self.slots * self.tick_s, uid=pods["uid"])

    def lists_pods_of(self, cluster: object) -> bool:
        """The ``ListedPodMetricsSource`` capability holds for a SimTargets over this source's cluster."""
        return isinstance(cluster, SimTargets) and cluster.cluster is self.cluster

    def query_listed_pods(self, expr: str, targets: Sequence[TargetRef], at: float
                          ) -> PaddedPodSamples | Samples | None:
        """``SimTargets.list_pods(targets)`` with ``query_pods(expr, targets, at)``'s series joined
        to its pods, where the cluster keeps them (SimCluster.padded_pod_samples: the slot arrays,
        with the workload means of the samples made in one compiled pass over the slots); their
        ``listed()``: the same pods listed (SimCluster.listed_pod_samples). None when the kernels
        are off."""
        if not compiled.enabled():  # the listing would decline: list_pods and query_pods will query once
            return None
        fused = self._padded_reads(expr, targets)
        if fused is not None:
            return fused
        workload = self.query(expr, targets, at)
        if self.bindings[expr].split(":")[0] not in self.PER_POD:
            return workload
        got = self.cluster.padded_pod_samples(targets, workload.present, workload.values)
        if got is None:
            return None
        window_s = self.slots * self.tick_s
        return PaddedPodSamples(got["slots"], got["values"], workload.age_s, window_s, (got["means"], got["has_mean"]),
                                lambda: self._listed(targets, workload, window_s))

    def _padded_reads(self, expr: str, targets: Sequence[TargetRef]) -> PaddedPodSamples | None:
        """``query_listed_pods``' answer in one compiled call (simulators/pod_reads.py) where it
        covers the read: samples in the rings, ``expr`` bound to a window mean of a per-pod signal,
        every target a workload of this cluster (their rows kept by the attached SimTargets).
        None otherwise: then ``query`` and ``padded_pod_samples``, as before. Raises
        MetricsUnavailable as ``query`` on a metrics outage."""
        field = self.bindings.get(expr)
        if (not self._ticked() or field not in self.PER_POD or expr in self.ticks
                or self._targets is None or self._targets.cluster is not self.cluster):
            return None
        known = self._targets.known_rows(targets)
        if known is None:
            return None
        rows, exists, every = known
        slots = self.cluster.padded_slots(rows, exists)
        unavailable, nonfinite, age_s = self._masks()
        got = pod_reads.try_padded_reads(self._ring[field], min(self._k, self.slots), rows, exists, every,
                                         nonfinite, unavailable, age_s, slots.ends, slots.phase)
        if got is None:
            return None
        if got.outage:
            raise MetricsUnavailable("metrics outage: no series for any target")
        window_s = self.slots * self.tick_s
        workload = lambda: Samples(values=got.values, present=got.present, age_s=got.age_s,  # noqa: E731
                                   conflict=np.zeros(len(targets), bool))
        return PaddedPodSamples(slots, got.samples, got.age_s, window_s, (got.means, got.has_mean),
                                lambda: self._listed(targets, workload(), window_s))

    def _listed(self, targets: Sequence[TargetRef], workload: Samples, window_s: float) -> ListedPodSamples:
        """The pods of ``targets`` listed with ``workload``'s samples joined (SimCluster.listed_pod_samples)."""
        got = self.cluster.listed_pod_samples(targets, workload.present, workload.values, workload.age_s)
        view = PodView(target=got["at"], names=got["name"], pending=got["pending"], ready=got["ready"],
                       start_time=got["start_time"], ready_transition_time=got["ready_transition_time"],
                       uid=got["uid"], created_time=got["start_time"])
        return ListedPodSamples(view, got["values"], got["age_s"], window_s, (got["means"], got["has_mean"]))

    def _sample(self, signals: dict) -> dict:
        """Add what a per-pod PromQL rate over the time since the last snapshot would read:
        requests_rps (Poisson counts of the pod's served requests), errors_rps (binomial among
        them at the pod's error ratio) and latency_s (the pod's p95, log-normal noise)."""
        now = self._last.at_s
        dt = now - self._sampled_at if self._sampled_at is not None and now > self._sampled_at else self.tick_s
        self._sampled_at = now
        served = np.nan_to_num(np.asarray(signals["served_rps"], np.float64))
        ratio = np.clip(np.nan_to_num(np.asarray(signals["error_ratio"], np.float64)), 0.0, 1.0)
        rows = np.asarray(signals["row"], dtype=np.int64)
        if _ascending(rows):  # pod_signals lists the pods by slot, row by row: each service's a run already
            requests, errors, z = (pod_samples_compiled.try_draw_pod_samples(self._streams(), rows, served * dt, ratio)
                                   or self._draw_pod_samples(rows, served * dt, ratio))
        else:  # each service draws its pods, by slot, from its own stream
            order = np.argsort(rows, kind="stable")
            drawn = self._draw_pod_samples(rows[order], (served * dt)[order], ratio[order])
            requests, errors, z = (np.empty_like(d) for d in drawn)
            requests[order], errors[order], z[order] = drawn
        noise = np.exp(self.POD_LATENCY_SIGMA * z)
        return {**signals, "requests_rps": requests / dt, "errors_rps": errors / dt,
                "latency_s": np.asarray(signals["latency_p95_s"], np.float64) * noise}

    def _streams(self):
        """Every service's pod-sample Generator (the same objects as ``_rngs``'), as the compiled
        draws take them (pod_samples_compiled.streams_of), made once; None when the kernels are off."""
        if self._typed_streams is None and compiled.enabled():
            self._typed_streams = pod_samples_compiled.streams_of([self._rngs(name) for name in self.cluster.names])
        return self._typed_streams

    def _draw_pod_samples(self, rows: np.ndarray, lam: np.ndarray, ratio: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(requests, errors, z), each (P,): per pod, its Poisson count at mean ``lam``, the
        binomial errors among them at ``ratio`` and a standard normal, the pods of a service (a
        run of equal ``rows`` (P,), ascending) drawn from its own stream in three calls (slices
        of the run: no gathers), by slot as they come (the reference of simulators/pod_samples_compiled.py's
        kernel, and the draws with the kernels off). A service none of whose pods fails requests
        (``ratio`` 0 for each) skips its binomial call: numpy's binomial returns 0 at p = 0 without a draw
        (distributions.c random_binomial), so its stream is where the call would leave it."""
        requests, errors, z = np.zeros(rows.size, np.int64), np.zeros(rows.size, np.int64), np.zeros(rows.size)
        if rows.size == 0:
            return requests, errors, z
        firsts = np.flatnonzero(np.diff(rows, prepend=-1))  # where each service's run starts
        bounds = np.append(firsts, rows.size).tolist()
        failing = np.logical_or.reduceat(ratio > 0, firsts).tolist()
        names = self.cluster.names
        for k, row in enumerate(rows[firsts].tolist()):
            start, end = bounds[k], bounds[k + 1]
            rng = self._rngs(names[row])
            drawn = requests[start:end] = rng.poisson(lam[start:end])
            if failing[k]:
                errors[start:end] = rng.binomial(drawn, ratio[start:end])
            z[start:end] = rng.standard_normal(end - start)
        return requests, errors, z

    def _query_pods(self, field: str, pods: Sequence[TargetRef]) -> Samples:
        """Instant per-pod values; a metrics outage or NaN fault on the pod's service hides them."""
        if self._pods is None:  # several pod-scope checks in a cycle share one snapshot
            signals = self._sample(self.cluster.pod_signals())
            self._pods = signals, self._name_index(signals["name"]), {}
        signals, index, columns = self._pods
        field_values = columns.get(field)
        if field_values is None:
            field_values = columns[field] = np.asarray(signals[field], dtype=np.float64)
        pick, found, nonfinite, present = self._pod_rows(pods, signals, index)
        values = np.where(found, field_values[np.maximum(pick, 0)], np.nan)
        values = np.where(nonfinite, np.nan, values)
        n = len(pods)
        return Samples(values=values, present=present, age_s=np.zeros(n), conflict=np.zeros(n, bool))

    def _pod_rows(self, pods: Sequence[TargetRef], signals: dict, index: dict[str, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pick, found, nonfinite, present), each (P,), of ``pods`` in this tick's snapshot: each
        pod's row (-1: not listed), whether its service's samples are NaN (a fault), and whether it
        has a series (listed, its service's metrics not out). A cycle's pod queries ask for the
        same list: found once for the snapshot (the list kept, so its id is not another's)."""
        cached = self._pod_pick
        if cached is not None and cached[0] is pods and cached[1] is signals:
            return cached[2]
        pick = self._picked(pods, signals["name"], index)
        found = pick >= 0
        obs = self._last
        service = np.asarray(signals["row"], dtype=np.int64)[np.maximum(pick, 0)]
        hidden = found & (obs.unavailable[service] | obs.nonfinite[service])
        rows = (pick, found, obs.nonfinite[service] & found, found & ~(hidden & obs.unavailable[service]))
        self._pod_pick = (pods, signals, rows)
        return rows

    def _name_index(self, names: list[str]) -> dict[str, int]:
        """Each pod name's row in a snapshot listing ``names`` (P,): the last one's while the port
        hands the same list (SimCluster.pod_signals keeps it while no pod came, went or was renamed)."""
        kept = self._pod_index
        if kept is None or kept[0] is not names:
            kept = self._pod_index = (names, {name: k for k, name in enumerate(names)})
        return kept[1]

    def _picked(self, pods: Sequence[TargetRef], names: list[str], index: dict[str, int]) -> np.ndarray:
        """(P,) int64, read-only: each of ``pods``' row in a snapshot listing ``names`` (-1: not
        listed), ``index`` its name -> row. The last answer while the pods are equal (refs in the
        same order: a compare by identity first, ~20 us for 10k pods, against ~1 ms of lookups)
        and ``names`` the same list (no pod came, went or was renamed since); else looked up."""
        kept = self._pod_names_pick
        # (a list only: an array's == is elementwise)
        if kept is not None and kept[1] is names and isinstance(pods, list) and kept[0] == pods:
            return kept[2]
        pick = np.fromiter(map(index.get, map(_POD_NAME, pods), repeat(-1)), np.int64, len(pods))
        pick.flags.writeable = False
        self._pod_names_pick = (list(pods), names, pick)  # a copy: the caller's list may change
        return pick


_POD_NAME = attrgetter("name")


def _ascending(a: np.ndarray) -> bool:
    """``a`` (P,) never decreases."""
    return a.size < 2 or bool((a[1:] >= a[:-1]).all())


class MemoryStateStore:
    """``StateStore`` port in memory, for simulations (a controller restarted mid-run keeps its
    budgets). Payloads go through JSON text both ways, as on the cluster, so what survives
    here is exactly what survives a ConfigMap. ``saves`` counts the writes per policy.

    Each payload carries a version (a counter, as a ConfigMap's resourceVersion) and the owner
    of the store that saved it; ``sharing(owner)`` is another process's handle on the same
    payloads, remembering its own last reads, so ``delete`` behaves as on the cluster."""

    def __init__(self, owner: str = ""):
        self.owner = owner
        self._texts: dict[str, str] = {}  # policy, or policy.part -> payload
        self._stamps: dict[str, tuple[int, str]] = {}  # the same keys -> (version, owner) of the last save
        self._counter = [0]  # shared by the handles: versions are never reused
        self.saves: dict[str, int] = {}
        self._seen: dict[str, tuple[int, str] | None] = {}  # key -> stamp this handle last read or wrote

    def sharing(self, owner: str = "") -> "MemoryStateStore":
        """Another handle on the same payloads (another controller process), with ``owner``."""
        other = MemoryStateStore(owner)
        other._texts, other._stamps, other._counter, other.saves = self._texts, self._stamps, self._counter, self.saves
        return other

    def load(self, policy: str, part: str = "") -> str | None:
        key = state_name(policy, part)
        self._seen[key] = self._stamps.get(key)
        return self._texts.get(key)

    def save(self, policy: str, payload: dict, part: str = "") -> None:
        key = state_name(policy, part)
        self._texts[key] = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        self._counter[0] += 1
        self._stamps[key] = self._seen[key] = (self._counter[0], self.owner)
        self.saves[key] = self.saves.get(key, 0) + 1

    def foreign(self, policy: str, part: str = "") -> bool:
        key = state_name(policy, part)
        if key not in self._seen:
            self.load(policy, part)
        seen = self._seen[key]
        return seen is not None and seen[1] not in ("", self.owner)

    def delete(self, policy: str, part: str = "") -> StateDeletion:
        key = state_name(policy, part)
        foreign = self.foreign(policy, part)
        seen = self._seen.pop(key)
        if seen is None or key not in self._texts:
            return StateDeletion.ABSENT
        if foreign:
            return StateDeletion.FOREIGN
        if self._stamps[key] != seen:
            return StateDeletion.CHANGED
        del self._texts[key], self._stamps[key]
        return StateDeletion.DELETED
