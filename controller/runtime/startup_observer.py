"""Observed pod start-up delays for ``startupDelay: observed`` (the ramp's lead follows them).

The Reconciler asks ``StartupObserver.observe`` once per cycle; it reads the pods of the
targets that may show a new start-up and keeps, per target, the last start-ups (creation ->
Ready; core/scaling/startup.py does the arithmetic). Which targets are read: every target the
observer has not read yet (the first cycle, a new target, a controller restart: the start-ups
are re-learned from the pods that exist, nothing needs persisting), and those whose ready count
rose since the previous cycle (a pod just became Ready). Pods come from the Cluster's
PodStartLister capability (the columns read here, for rows of the target list; the simulator),
else its PodLister capability (arrays), else from the view's full statuses when the cycle
listed pods anyway (health checks), else from one ``observe(..., with_pods=True)`` of those
targets (the Kubernetes adapter: creationTimestamp and the Ready condition's
lastTransitionTime). A failed read leaves the memory as it was (the error goes in the cycle's).

From the statuses path, pods with container restarts are skipped: their Ready time is the
last restart's, not the start-up's (the array path has no restart counts; the estimator's
plausibility bound and quantile cover it).

Nor does a pod count whose start-up spans a cycle at which its target had lost every Ready pod
(it had some, then none: a dependency all pods check is down, not a start-up taking long): such
a pod gets Ready when the dependency is back, and its creation -> Ready span measures the
outage. Counted, one 10-minute outage made the lead 10 minutes for the next 20 start-ups. A
target that has not had a Ready pod yet (new, scaled up from 0) is not such a target.

The same pods give the withheld replicas (core/scaling/withheld.py: spec replicas whose pods
run but stay not Ready past twice the start-up), read each cycle for the targets that have had
fewer Ready pods than spec for longer than that, and once for a target first seen short (a
controller that starts during a stuck rollout counts its pods at once); a failed read keeps the
last count of those targets. Pending pods are not counted: a pod the cluster has no room for
is not helped by asking for more pods (each would wait too, up to ``replicas.max``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from controller.core.history import take_rows
from controller.core.scaling.params import PolicyParams
from controller.core.scaling.startup import (DEFAULT_STARTUP, StartupEstimate, StartupMemory, StartupParams, cycle_due,
                                             estimate, learn_estimate, learn_rows, update_estimate)
from controller.core.scaling.withheld import short_due, withheld_after_s, withheld_replicas
from controller.errors import SetpointError
from controller.model import TargetRef, direct_init
from controller.ports import Cluster, ClusterView, PodLister, PodStartLister

#: How this module's errors begin (reads of the cluster's pods): telemetry counts them as source="cluster"
STARTUP_UNREAD, WITHHELD_UNREAD = "start-up delays: pods not read", "withheld replicas: pods not read"

OBSERVED, POLICY = "observed", "policy"


def wants_observed_startup(params: PolicyParams) -> bool:
    """Some ramp or forecast of the policy has ``startupDelay: observed`` (with lead / horizon: auto)."""
    return (any(params.metrics[j].ramp.observed for j in params.ramp_metrics)
            or any(params.metrics[j].forecast.observed for j in params.forecast_metrics))


@direct_init
@dataclass(frozen=True)
class StartupInfo:
    """One cycle's start-up delays for the decision records: the estimate (N,) arrays and the
    policy's ramps (their leads follow the estimate where it is known)."""

    estimate: StartupEstimate
    params: PolicyParams

    @property
    def observed_ramps(self) -> list:
        """(metric name, RampParams) of the ramps whose lead follows the observed start-up, in metric order."""
        return [(self.params.metrics[j].name, self.params.metrics[j].ramp) for j in self.params.ramp_metrics
                if self.params.metrics[j].ramp.observed]

    @property
    def observed_forecasts(self) -> list:
        """(metric name, ForecastParams) of the forecasts whose horizon follows the observed start-up."""
        return [(self.params.metrics[j].name, self.params.metrics[j].forecast) for j in self.params.forecast_metrics
                if self.params.metrics[j].forecast.observed]

    @property
    def initial_s(self) -> float:
        """The delay (s) the policy assumes before any start-up is observed (NaN: none assumed)."""
        return next((p.lead_s - p.lag_s for _, p in self.observed_ramps),
                    next((p.horizon_s - p.lag_s for _, p in self.observed_forecasts), math.nan))

    def record(self, i: int) -> dict:
        """Target i: the delay used, where it came from, how many start-ups it rests on, and each
        observed ramp's lead and observed forecast's horizon (s). (record_lines.startup_pieces
        writes the same for every target in one pass.)"""
        e = self.estimate
        known = bool(np.isfinite(e.delay_s[i]))
        out = {"delay_s": float(e.delay_s[i]) if known else self.initial_s, "source": OBSERVED if known else POLICY,
               "pods": int(e.pods[i])}
        if int(e.pods[i]):
            out["range_s"] = [float(e.low_s[i]), float(e.high_s[i])]
        startup = e.delay_s[i:i + 1]
        out["lead_s"] = {name: float(rp.leads(startup, 1)[0]) for name, rp in self.observed_ramps}
        horizons = {name: float(fp.horizons(startup, 1)[0]) for name, fp in self.observed_forecasts}
        if horizons:
            out["horizon_s"] = horizons
        return out


class StartupObserver:
    """The per-target memory of observed start-ups of one Reconciler (see the module docstring)."""

    def __init__(self, sp: StartupParams = DEFAULT_STARTUP):
        self.sp = sp
        self._targets: list[TargetRef] = []
        self._memory = StartupMemory.empty(0, sp)
        self._read = np.zeros(0, bool)  # the target's pods were read at least once
        self._all_read = True  # every row of _read is True (most cycles: then only a rise in Ready makes a row due)
        self._ready = np.zeros(0)  # ready counts at the previous cycle
        self._estimated: tuple[StartupMemory, StartupEstimate] | None = None  # the estimate of that memory
        self._changed: np.ndarray | None = None  # rows of the memory changed since that estimate (None: all)
        self._lister: tuple[object, bool, bool] | None = None  # (cluster, it is a PodLister, a PodStartLister): checked once per cluster
        self._withheld = np.zeros(0)  # the last withheld replicas (kept for targets whose pods were not read)
        self._short_since = np.zeros(0)  # since when each target has had fewer Ready pods than spec (NaN: not)
        self._seen = np.zeros(0, bool)  # the target was observed before (a cycle of this observer)
        self._all_seen = True  # every row of _seen is True (after the first cycle: no target first seen short)
        self._dark_at = np.full(0, np.nan)  # the last cycle at which the target had lost every Ready pod
        self._last_cycle_s = math.nan  # the previous cycle's time
        self._wanted: tuple[PolicyParams, bool] | None = None  # (params, wants_observed_startup of them)
        self._after: tuple[np.ndarray, float, np.ndarray] | None = None  # see _withheld_after
        self._info: StartupInfo | None = None  # the last cycle's, kept while its estimate and params are the same

    def observe(self, params: PolicyParams, cluster: Cluster, targets: list[TargetRef], view: ClusterView,
                now: float, errors: list[str], listed_pods: bool) -> StartupInfo | None:
        """This cycle's estimates, None when no ramp of ``params`` follows observed start-ups.
        ``listed_pods``: the view carries the targets' pods (observe(with_pods=True))."""
        if not self._wants(params):
            return None
        self._align(targets)
        due = cycle_due(np.asarray(view.ready, np.float64), np.asarray(view.exists, bool), self._ready, self._dark_at,
                        self._last_cycle_s, self._read, self._all_read, now)
        self._last_cycle_s = now
        if due.size:
            try:
                self._learn(cluster, targets, due, view, now, listed_pods)
                self._read[due] = True
                self._all_read = self._all_read or bool(self._read.all())
            except SetpointError as exc:
                errors.append(f"{STARTUP_UNREAD} ({exc}); the last estimates are kept")
        if self._estimated is None or self._estimated[0] is not self._memory:  # recomputed when the memory changed
            if self._estimated is None or self._changed is None:
                now_estimate = estimate(self._memory, self.sp)
            else:  # only the rows that learned start-ups
                now_estimate = update_estimate(self._estimated[1], self._memory, self._changed, self.sp)
            self._estimated, self._changed = (self._memory, now_estimate), np.zeros(0, np.int64)
        if self._info is None or self._info.estimate is not self._estimated[1] or self._info.params is not params:
            self._info = StartupInfo(self._estimated[1], params)  # frozen, over arrays never changed in place
        return self._info

    def _wants(self, params: PolicyParams) -> bool:
        """``wants_observed_startup(params)``, asked once per params object."""
        if self._wanted is None or self._wanted[0] is not params:
            self._wanted = (params, wants_observed_startup(params))
        return self._wanted[1]

    def _align(self, targets: list[TargetRef]) -> None:
        """Rows follow the target list (new targets start unread and empty). The list is kept
        as given and taken as a value, as the Reconciler keeps it (never changed in place): the
        same list object is the same targets, without comparing them one by one each cycle."""
        if targets is self._targets or targets == self._targets:
            return
        old = {t: i for i, t in enumerate(self._targets)}
        rows = np.array([old.get(t, -1) for t in targets], dtype=np.int64)
        self._memory = self._memory.take(rows)
        self._changed = None  # rows moved: estimate every target again
        self._read = take_rows(self._read, rows, False)
        self._all_read = bool(self._read.all())
        self._ready = take_rows(self._ready, rows, 0.0)
        self._withheld = take_rows(self._withheld, rows, 0.0)
        self._short_since = take_rows(self._short_since, rows, np.nan)
        self._seen = take_rows(self._seen, rows, False)
        self._all_seen = bool(self._seen.all())
        self._dark_at = take_rows(self._dark_at, rows, np.nan)
        self._targets = targets

    def withheld(self, params: PolicyParams, cluster: Cluster, targets: list[TargetRef], view: ClusterView,
                 now: float, errors: list[str], listed_pods: bool, startup_s: np.ndarray | None) -> np.ndarray | None:
        """(N,) this cycle's withheld replicas (core/scaling/withheld.py), None when there are none
        or the policy does not size on them (no scaling metrics; ``replaceUnready: false``; the
        ``hpa`` preset, which is HPA). ``startup_s``: (N,) the observed start-up delays (NaN:
        unknown; None: not observed)."""
        if params.hpa_semantics or not params.metrics or not params.replace_unready:
            return None
        self._align(targets)
        spec, ready = np.asarray(view.spec, np.float64), np.asarray(view.ready, np.float64)
        since = self._short_since
        # a pod withheld now has held a spec slot without being Ready for longer than its
        # withheld age, so its target has been short all that time: a scale-up's start-ups need
        # no pod read. A target first seen short (a new target; this controller just started,
        # during a stuck rollout perhaps) has an unknown past: its pods are read once
        due = short_due(spec, ready, np.asarray(view.exists, bool), since, self._seen, self._all_seen, startup_s,
                        params.stated_startup_s, now)
        self._all_seen = True
        if not due.size:  # no pod to read: none withheld
            self._withheld = np.zeros(len(targets))
            return None
        is_short = view.exists & (ready < spec)
        after = self._withheld_after(startup_s, params.stated_startup_s, len(targets))
        out = np.zeros(len(targets))
        try:
            rows, _, created, _, _, not_serving = self._pods(cluster, targets, due, view, listed_pods)
        except SetpointError as exc:
            errors.append(f"{WITHHELD_UNREAD} ({exc}); the last counts are kept")
            out[due] = self._withheld[due]
            self._seen[due] = False  # a target first seen short is read again next cycle
            self._all_seen = False
        else:
            out[due] = withheld_replicas(rows, created, not_serving, after, spec, ready, now)[due]
            # an unready pod that holds a spec slot has kept its target short since it was
            # created: a target first seen short stays due while its oldest one is there
            oldest = np.full(len(targets), np.inf)
            np.minimum.at(oldest, rows[not_serving], np.nan_to_num(created[not_serving], nan=np.inf))
            np.fmin(since, np.where(is_short, oldest, np.nan), out=since)
        self._withheld = out
        return out if out.any() else None

    def _withheld_after(self, startup_s: np.ndarray | None, stated_s: float, n: int) -> np.ndarray:
        """``withheld_after_s``, kept while ``startup_s`` is this observer's own estimate (never
        changed in place: a new estimate is a new array) and ``stated_s`` the same."""
        own = self._estimated is not None and startup_s is self._estimated[1].delay_s
        if own and self._after is not None and self._after[0] is startup_s and self._after[1] == stated_s:
            return self._after[2]
        after = withheld_after_s(startup_s, stated_s, n)
        self._after = (startup_s, stated_s, after) if own else None
        return after

    def _learn(self, cluster: Cluster, targets: list[TargetRef], due: np.ndarray, view: ClusterView, now: float,
               listed_pods: bool) -> None:
        rows, keys, created, ready_s, ready, _ = self._pods(cluster, targets, due, view, listed_pods)
        self._add(rows, keys, created, ready_s, ready, now)

    def _pods(self, cluster: Cluster, targets: list[TargetRef], due: np.ndarray, view: ClusterView,
              listed_pods: bool) -> tuple[np.ndarray, ...]:
        """The pods of the targets in rows ``due`` as pod_facts gives them, from the Cluster's
        PodStartLister, else its PodLister, else the view's statuses (``listed_pods``), else one
        observe of those targets."""
        if self._lister is None or self._lister[0] is not cluster:  # a runtime Protocol check costs ~30 us
            # PodStartLister declared by the cluster's class: a wrapper that forwards what it lacks
            # (__getattr__) and lists pods its own way must not be read around
            self._lister = (cluster, isinstance(cluster, PodLister), issubclass(type(cluster), PodStartLister))
        if self._lister[2]:  # the columns read here, without a target list for ``due`` nor the listing's objects
            starts = cluster.pod_starts(targets, due)
            if starts is not None:
                return starts
        if self._lister[1]:
            pods = cluster.list_pods([targets[i] for i in due])
            created = pods.start_time if pods.created_time is None else pods.created_time
            rows = due[np.asarray(pods.target, np.int64)]
            keys = pod_keys(pods.names) if pods.uid is None else np.asarray(pods.uid, np.int64)
            ready = np.asarray(pods.ready, bool)
            not_serving = ~ready & ~np.asarray(pods.pending, bool)
            return rows, keys, np.asarray(created, np.float64), pods.ready_transition_time, ready, not_serving
        statuses = view.statuses if listed_pods else cluster.observe([targets[i] for i in due], with_pods=True).statuses
        return pod_facts(statuses, {t: i for i, t in enumerate(targets)})

    def _add(self, rows, keys, created, ready_s, ready, now: float) -> None:
        # not a pod Ready late because its target went dark; in place: the observer alone holds its
        # memory (a new object all the same when a start-up counted: the estimate is redone)
        if self._estimated is not None and self._estimated[0] is self._memory and self._changed is not None:
            # the estimate is of this memory: the rows learned estimated in the same pass
            self._memory, now_estimate = learn_estimate(self._memory, self._estimated[1], rows, keys, created, ready_s,
                                                        ready, now, self._dark_at, self.sp)
            self._estimated = (self._memory, now_estimate)
            return
        self._memory, learned = learn_rows(self._memory, rows, keys, created, ready_s, ready, now, self._dark_at, self.sp)
        if self._changed is not None:  # learned: ascending, unique (the union's own form, without its sort)
            self._changed = learned if self._changed.size == 0 else np.union1d(self._changed, learned)


def pod_keys(names) -> np.ndarray:
    """(P,) int64 identities of pod names (CRC-32: stable across processes, unlike hash())."""
    return np.fromiter((zlib.crc32(str(name).encode()) for name in names), np.int64, len(names))


def pod_facts(statuses, row_of: dict[TargetRef, int]) -> tuple[np.ndarray, ...]:
    """(row, key, created, ready time, ready, not serving) (P,) arrays of the pods in
    ``statuses`` (TargetStatus) of the targets in ``row_of``. key: of the pod's uid, else of its
    name (a StatefulSet's pod recreated under its name is keyed apart by its uid). ready: for start-ups, so pods with
    container restarts read as not Ready (their Ready time is a restart's); not serving: the pod
    runs (not Pending, not being deleted) and its Ready condition is False (withheld.py's count)."""
    rows, names, created, ready_s, ready, not_serving = [], [], [], [], [], []
    for status in statuses:
        i = row_of.get(status.ref)
        if i is None:
            continue
        for pod in status.pods:
            c = pod.created_time if pod.created_time is not None else pod.start_time
            rows.append(i)
            names.append(pod.uid or pod.name)
            created.append(math.nan if c is None else c)
            ready_s.append(math.nan if pod.ready_transition_time is None else pod.ready_transition_time)
            ready.append(bool(pod.ready) and not pod.deleted and pod.restarts == 0)
            not_serving.append(not pod.ready and not pod.deleted and pod.phase == "Running")
    return (np.asarray(rows, np.int64), pod_keys(names), np.asarray(created, np.float64),
            np.asarray(ready_s, np.float64), np.asarray(ready, bool), np.asarray(not_serving, bool))


def startup_records(info: StartupInfo | None, n: int) -> list[dict] | None:
    """Per target the ``startup`` record (StartupInfo.record), None without observed start-ups."""
    return None if info is None else [info.record(i) for i in range(n)]
