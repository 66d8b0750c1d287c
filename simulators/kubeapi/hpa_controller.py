"""kube-controller-manager's HPA controller inside ``setpoint sim serve``: every stored
HorizontalPodAutoscaler scales its workload, as in a real cluster.

Every :data:`SYNC_PERIOD_S` of simulated time (HPA's ``--horizontal-pod-autoscaler-sync-period``),
each HPA in the store is

1. converted to a ``preset: hpa`` policy by the importer (:func:`controller.policy.importer.convert`
   then the policy loader: the code path of ``setpoint import``); an HPA it refuses is skipped with
   one log line and a ``ScalingActive: False`` condition (reason ``FailedImport``) in its status;
2. decided by the Reconciler, as the simulator's ``hpa`` baseline runs it (simulators/runner.py):
   no second HPA implementation. Its metrics are the engine's signals, bound by the scenario as
   the baseline binds them (``cpu`` -> the engine's utilization); its cluster is the engine, whose
   writes go through the store's scale subresource with field manager ``kube-controller-manager``
   (:class:`StoreScaleTargets`), so Setpoint's HPA guard and external-scale watch see the HPA's writes;
3. shown in the HPA's status (currentReplicas, desiredReplicas, lastScaleTime, currentMetrics,
   conditions: ``kubectl get hpa`` shows it) and a ``SuccessfulRescale`` Event per scale, in
   kube-controller-manager's words ("New size: 6; reason: cpu resource utilization (percentage of
   request) above target": simulators/kubeapi/hpa_wording.py), written before the Deployment
   controller's Events of that scale, as the HPA records its own before the Deployment controller
   acts on the change;
4. told in Warning Events when it cannot do its job, as kube-controller-manager tells it, once per
   sync (the recorder counts the repeats): ``FailedGetResourceMetric`` (and the other types')
   for each metric it could not read, ``FailedComputeMetricsReplicas`` when it read none (a
   ``metrics-outage`` of the workload; a utilization whose pods lack the resource's request, which
   the real controller cannot compute and this one does not either: its query reads nothing for
   the HPA), ``FailedGetScale`` when its target is not there, ``FailedRescale`` when the scale
   update failed; with the conditions that go with them (hpa_wording.py has the words).

An HPA created, edited or deleted takes effect at the next sync; deleting it stops it (the cut-over).
As kube-controller-manager keys an HPA's recommendations and scale events by the HPA's namespace
and name, an edit (a new spec, labels) keeps them: the scale-down stabilization window and the
rate-limit periods go on across it (:meth:`HpaRun.continue_from`). They are dropped at a sync
that finds no HPA of that name: an HPA deleted and created again starts afresh (its window seeded
with the replicas at its first sync) when a sync ran in between, and goes on, as in
kube-controller-manager, when it came back before the next sync.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass

import numpy as np

from controller.core.scaling.params import MetricKind
from controller.errors import MetricsUnavailable, NotFound, PermanentError, PolicyError, TemporaryError
from controller.model import Action, ActionKind, Reason, TargetRef, TargetSelector
from controller.policy.importer import ConversionProblem, convert
from controller.policy.load import load_policy_text
from controller.runtime.reconciler import CycleResult, Reconciler, RuntimePolicy
from simulators.kubeapi import objects as K
from simulators.kubeapi.event_recorder import Source
from simulators.kubeapi.hpa_wording import (DEFAULT_METRICS, compute_failure, failed_rescale_message, in_hpa_words,
                                           largest_proposal, metric_failure, missing_request, rescale_message,
                                           rescale_reason, scale_not_found, source_spec, unable_to_compute)
from simulators.kubeapi.managed_fields import FieldWriter
from simulators.kubeapi.store import KubeStore
from simulators.ports import SimMetrics, SimTargets
from simulators.scenario import SIGNALS, Scenario
from simulators.signals import METRIC_SIGNALS

log = logging.getLogger("setpoint.sim.hpa")

#: kube-controller-manager's default HPA sync period (s of simulated time).
SYNC_PERIOD_S = 15.0
#: The field manager of HPA's writes to the scale subresource (what a real cluster's managedFields show).
HPA_WRITER = FieldWriter("kube-controller-manager", "Update")
#: Condition reason of an HPA the importer (or the policy loader) refuses.
REFUSED_REASON = "FailedImport"
#: Why an HPA is not run, at the head of its ScalingActive message: the importer refused it, or the
#: scenario binds no simulated signal to one of its metrics (an HPA setpoint import converts well).
IMPORT_REFUSES = "setpoint import refuses this HPA"
UNBOUND = "the scenario does not simulate its metrics"


class StoreScaleTargets(SimTargets):
    """The ``Cluster`` port of one HPA: reads from the engine (as SimTargets), resolves the
    HPA's scaleTargetRef through the store (Deployments and StatefulSets alike), and writes
    replicas through :meth:`KubeStore.update_scale` as ``writer``: the store path of API writes."""

    def __init__(self, store: KubeStore, writer: FieldWriter = HPA_WRITER):
        super().__init__(store.engine, [w.name for w in store.workloads], match_selectors=True)
        self.store = store
        self.writer = writer
        self.errors: dict[TargetRef, str] = {}  # the apiserver's error of the last failed scale, per target

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        """The workloads of the store of this kind and namespace named by the selector (the importer
        names one); none when it is not there (an HPA of a missing workload scales nothing)."""
        found = [self.store.by_key.get((selector.kind, selector.namespace, name)) for name in selector.names]
        return sorted(self.cluster.ref(w.index) for w in found if w is not None)

    def apply(self, action: Action) -> None:
        if action.kind is not ActionKind.SCALE:
            raise PermanentError(f"the HPA controller only scales, not {action.kind.value}", target=action.target.key)
        w = self.store.workloads[self.cluster.index(action.target)]
        try:
            self.store.update_scale(w.kind, w.namespace, w.name, {"spec": {"replicas": int(action.replicas)}},
                                    self.writer)
        except K.KubeApiError as exc:
            self.errors[action.target] = exc.message  # FailedRescale quotes it as the apiserver said it
            kind = NotFound if exc.code == 404 else TemporaryError if exc.code >= 500 else PermanentError
            raise kind(str(exc), target=action.target.key, status=exc.code) from None


def shared_metrics(scenario: Scenario, store: KubeStore) -> SimMetrics:
    """One SimMetrics for every HPA: rings for every workload signal over the scenario's metrics
    window (HPAs come and go, the rings stay); each HPA's queries are bound as it is converted."""
    fields = {f.split(":")[0] for f in SIGNALS.values()} & set(METRIC_SIGNALS)
    return SimMetrics(store.engine, {f"<ring {f}>": f for f in sorted(fields)}, scenario.metrics_window_s,
                      scenario.tick_s, seed=scenario.seed)


class BlindedMetrics:
    """One HPA's view of the shared SimMetrics: the queries in ``blind`` (expr -> why) read nothing,
    as the real controller cannot compute a utilization of pods without that request."""

    def __init__(self, metrics: SimMetrics):
        self.metrics = metrics
        self.blind: dict[str, str] = {}

    def _check(self, expr: str) -> None:
        if expr in self.blind:
            raise MetricsUnavailable(self.blind[expr])

    def query(self, expr: str, targets, at: float, labels: tuple[str, str] | None = None):
        self._check(expr)
        return self.metrics.query(expr, targets, at, labels)

    def query_pods(self, expr: str, targets, at: float):
        self._check(expr)
        return self.metrics.query_pods(expr, targets, at)

    def query_listed_pods(self, expr: str, targets, at: float):  # HPA reads its utilization per pod
        self._check(expr)
        return self.metrics.query_listed_pods(expr, targets, at)

    def __getattr__(self, name: str):
        return getattr(self.metrics, name)


@dataclass
class HpaRun:
    """One stored HPA as run: the spec it was converted from, and its Reconciler (None: refused,
    ``why``) with the metrics and cluster ports it reads and writes through."""

    fingerprint: str
    reconciler: Reconciler | None
    why: str = ""
    last_scale_wall_s: float | None = None
    metrics: BlindedMetrics | None = None
    targets: StoreScaleTargets | None = None

    def continue_from(self, previous: "HpaRun") -> None:
        """Go on from the previous run of the same namespace and name: its recommendation history
        and scale events (Reconciler.continue_scaling), as kube-controller-manager keeps them (a
        refused run on either side has none to keep), and its last scale time when it is the same
        object (status.lastScaleTime is the object's: a new one has none)."""
        if json.loads(previous.fingerprint)[0] == json.loads(self.fingerprint)[0]:  # the same uid
            self.last_scale_wall_s = previous.last_scale_wall_s
        if self.reconciler is not None and previous.reconciler is not None:
            self.reconciler.continue_scaling(previous.reconciler)


def spec_fingerprint(hpa: dict) -> str:
    """What makes an HPA a new one to convert: its uid, apiVersion and spec."""
    return json.dumps([hpa["metadata"].get("uid"), hpa.get("apiVersion"), hpa.get("spec")], sort_keys=True)


#: The source of the HPA controller's Events, as kube-controller-manager's recorder names it.
HPA_SOURCE = Source("horizontal-pod-autoscaler")


class HpaController:
    """Runs every HPA of ``store`` on the simulated clock (call :meth:`tick` after every engine step)."""

    def __init__(self, scenario: Scenario, store: KubeStore, sync_period_s: float = SYNC_PERIOD_S):
        self.scenario = scenario
        self.store = store
        self.sync_period_s = sync_period_s
        self.metrics = shared_metrics(scenario, store)
        self.runs: dict[tuple[str, str], HpaRun] = {}
        self.next_sync_s: float | None = None
        self.syncs = 0
        # kube-controller-manager's recorder (the store's): names, repeats counted on one Event
        self.recorder = store.event_recorder
        self.observed = None  # the last tick's ObservedSignals (which workloads' metrics are out)

    def tick(self, observed) -> None:
        """After one engine step: record its signals (ObservedSignals), then sync when due."""
        self.metrics.push(observed)
        self.observed = observed
        now = float(self.store.engine.now)
        if self.next_sync_s is None:
            self.next_sync_s = now
        if now >= self.next_sync_s - 1e-9:
            self.sync(now)
            while self.next_sync_s <= now + 1e-9:
                self.next_sync_s += self.sync_period_s

    def sync(self, now: float) -> None:
        """One sync at simulated time ``now``: every stored HPA converted (when new or edited),
        decided, its status written; runs of deleted HPAs dropped."""
        with self.store.lock:
            hpas = {key: copy.deepcopy(obj) for key, obj in self.store.hpas.items.items()}
            for key in set(self.runs) - set(hpas):
                del self.runs[key]
                log.info("HPA %s/%s deleted: it scales no more", *key)
            for key, hpa in hpas.items():
                run = self._run_of(key, hpa)
                if run.metrics is not None:
                    run.metrics.blind = self._unrequested(hpa, run)
                with self.store.cluster_events_after():  # the HPA's Event first, then the controllers'
                    result = self._cycle(key, run, now)
                    conditions = self._record_warnings(hpa, run, result)
                    self._record_rescales(hpa, result)
                self._write_status(key, hpa, run, result, now, conditions)
            self.syncs += 1

    def _run_of(self, key: tuple[str, str], hpa: dict) -> HpaRun:
        """The run of an HPA as stored now: kept while its spec is the same, else converted anew,
        going on from the previous run of that namespace and name (see the module docstring)."""
        fingerprint = spec_fingerprint(hpa)
        previous = self.runs.get(key)
        run = previous
        if run is None or run.fingerprint != fingerprint:
            run = self._convert(key, hpa, fingerprint)
            if previous is not None:
                run.continue_from(previous)
            self.runs[key] = run
        return run

    def _convert(self, key: tuple[str, str], hpa: dict, fingerprint: str) -> HpaRun:
        """An HPA through `setpoint import`'s path to a Reconciler, or a refused run (logged once)."""
        try:
            converted = convert(hpa, kedas=True)  # kube-controller-manager runs KEDA's HPAs too
            [policy] = load_policy_text(converted.text, f"<HorizontalPodAutoscaler {key[0]}/{key[1]}>")
            runtime = RuntimePolicy.of(policy)
        except ConversionProblem as exc:
            return self._refused(key, fingerprint, "; ".join(f"{'.'.join(map(str, p.path))}: {p.message}"
                                                             for p in exc.problems))  # every one, as import says them
        except (PolicyError, ValueError) as exc:
            return self._refused(key, fingerprint, str(exc))
        try:
            self._bind(runtime)
        except ValueError as exc:  # the scenario's doing, not the importer's: said so
            return self._refused(key, fingerprint, str(exc), UNBOUND)
        metrics, targets = BlindedMetrics(self.metrics), StoreScaleTargets(self.store)
        reconciler = Reconciler(runtime, metrics, targets)
        log.info("HPA %s/%s runs as policy %s (preset: hpa)", *key, runtime.name)
        return HpaRun(fingerprint, reconciler, metrics=metrics, targets=targets)

    def _bind(self, runtime: RuntimePolicy) -> None:
        """Bind the policy's queries to the engine's signals, as the hpa baseline binds them
        (ValueError for a metric the scenario does not bind, or bound otherwise already)."""
        from simulators.runner import policy_bindings  # the runner's rule; imported late: a heavy module

        bindings = policy_bindings(self.scenario, runtime, one_run=False)
        for expr, signal in bindings.items():
            if self.metrics.bindings.get(expr, signal) != signal:
                raise ValueError(f"its query {expr!r} is bound to {self.metrics.bindings[expr]} already")
            if signal.split(":")[0] not in self.metrics.fields and signal.split(":")[0] not in SimMetrics.INSTANT:
                raise ValueError(f"signal {signal} is not recorded for HPAs")
        self.metrics.bindings.update(bindings)

    @staticmethod
    def _refused(key: tuple[str, str], fingerprint: str, why: str, by: str = IMPORT_REFUSES) -> HpaRun:
        log.warning("HPA %s/%s skipped: %s: %s", *key, by, why)
        return HpaRun(fingerprint, None, f"{by}: {why}")

    def _cycle(self, key: tuple[str, str], run: HpaRun, now: float) -> CycleResult | None:
        """One Reconciler cycle of the HPA (None when refused or failed: logged, others go on)."""
        if run.reconciler is None:
            return None
        try:
            result = run.reconciler.cycle(now)
        except Exception:  # one HPA's failure never stops the others, nor the engine
            log.exception("HPA %s/%s: sync failed", *key)
            return None
        if any(a.kind is ActionKind.SCALE for a in result.actions):
            run.last_scale_wall_s = self.store.clock.wall(now)
        return result

    def _requests(self, result: CycleResult | None) -> dict[str, float]:
        """A pod's requests of the HPA's workload by resource, {"cpu": cores, "memory": bytes};
        {} when there is no workload."""
        if result is None or not result.targets:
            return {}
        config = self.store.workloads[self.store.engine.index(result.targets[0])].config
        return {"cpu": float(config.cpu_request_cores), "memory": float(config.memory_request_bytes)}

    def _unrequested(self, hpa: dict, run: HpaRun) -> dict[str, str]:
        """The queries of the HPA's utilization metrics (Resource, ContainerResource) whose resource
        a pod of its target does not request: query -> calculatePodRequests' error (the first pod
        by name, its first such container), as the real controller fails to compute them."""
        sources = (hpa.get("spec") or {}).get("metrics")
        queries = run.reconciler.policy.queries
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        w = self.store.by_key.get((ref.get("kind"), hpa["metadata"]["namespace"], ref.get("name")))
        if w is None or not isinstance(sources, list) or len(sources) != len(queries):
            return {}
        pods = self.store.pod_templates(w)
        blind = {}
        for source, query in zip(sources, queries):
            kind, spec = source_spec(source)
            target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
            if kind not in ("Resource", "ContainerResource") or target.get("averageValue") is not None:
                continue  # only a utilization divides by the request
            only = spec.get("container", "") if kind == "ContainerResource" else ""
            why = _missing_request(pods, str(spec.get("name", "")), only)
            if why:
                blind[query] = why
        return blind

    def _record_warnings(self, hpa: dict, run: HpaRun, result: CycleResult | None) -> dict[str, dict]:
        """kube-controller-manager's Warning Events of this sync (hpa_wording.py): the target not
        found, the metrics it could not read, a failed scale. Returns the conditions they set
        ({type: {status, reason, message}}) over the reconciler's."""
        if run.reconciler is None or result is None:
            return {}
        spec = hpa.get("spec") or {}
        if not result.targets:
            target = spec.get("scaleTargetRef") or {}
            error = scale_not_found(str(target.get("kind", "")), str(target.get("name", "")))
            self._warn(hpa, "FailedGetScale", error)
            return {"AbleToScale": {"status": "False", "reason": "FailedGetScale",
                                    "message": f"the HPA controller was unable to get the target's current scale: {error}"}}
        decision = result.decision
        if decision is None or int(decision.norm.reason[0]) in (Reason.ABOVE_MAX, Reason.BELOW_MIN,
                                                                 Reason.SCALING_DISABLED):
            return {}  # the metrics were not read
        conditions = {}
        failures = self._metric_failures(hpa, run, result)
        for reason, error, _ in failures:
            self._warn(hpa, reason, error)
        if failures and len(failures) == len(decision.valid[0]):
            self._warn(hpa, "FailedComputeMetricsReplicas", compute_failure(len(failures), len(failures),
                                                                             failures[0][2]))
            conditions["ScalingActive"] = {"status": "False", "reason": failures[0][0],
                                           "message": unable_to_compute(failures[0][1])}
        for failed in result.failed:
            if failed.kind == "scale":
                error = run.targets.errors.pop(failed.target, failed.why)
                reason = _reason_for(hpa, result, failed.target, "")
                self._warn(hpa, "FailedRescale",
                           failed_rescale_message(int(decision.norm.desired[0]), reason, error))
                conditions["AbleToScale"] = {"status": "False", "reason": "FailedUpdateScale", "message":
                                             f"the HPA controller was unable to update the target scale: {error}"}
        return conditions

    def _metric_failures(self, hpa: dict, run: HpaRun, result: CycleResult) -> list[tuple[str, str, str]]:
        """(reason, error, returned error) of each metric of the decision that could not be read, in
        spec.metrics' order: no metrics returned while the workload's metrics are out (what the
        real controller reads first), else the missing request that blinded it."""
        valid = result.decision.valid[0]
        sources = (hpa.get("spec") or {}).get("metrics")
        if not isinstance(sources, list) or len(sources) != len(valid):
            sources = DEFAULT_METRICS * len(valid)
        row = self.store.engine.index(result.targets[0])
        out_now = self.observed is not None and bool(self.observed.unavailable[row])
        queries = run.reconciler.policy.queries
        return [metric_failure(source, hpa["metadata"]["namespace"],
                               "" if out_now else run.metrics.blind.get(query, ""))
                for source, query, ok in zip(sources, queries, valid) if not ok]

    def _warn(self, hpa: dict, reason: str, message: str) -> None:
        self.recorder.record(_hpa_ref(hpa), "Warning", reason, message, HPA_SOURCE)

    def _record_rescales(self, hpa: dict, result: CycleResult | None) -> None:
        """A ``SuccessfulRescale`` Event on the HPA per scale it made, as kube-controller-manager
        records one through client-go's recorder, in its words (simulators/kubeapi/hpa_wording.py;
        ``kubectl describe hpa`` lists them; the same size for the same reason again counts on the
        same Event)."""
        for action in (result.actions if result is not None else ()):
            if action.kind is ActionKind.SCALE:
                reason = _reason_for(hpa, result, action.target, action.reason)
                self.recorder.record(_hpa_ref(hpa), "Normal", "SuccessfulRescale",
                                     rescale_message(int(action.replicas), reason), HPA_SOURCE)

    def _write_status(self, key: tuple[str, str], hpa: dict, run: HpaRun, result: CycleResult | None,
                      now: float, conditions: dict[str, dict] | None = None) -> None:
        """The HPA's status from the cycle (``conditions``: those its Warnings set, over the
        reconciler's), written to the store when it changed."""
        wall = self.store.clock.wall(now)
        old = hpa.get("status") or {}
        status = hpa_status(run, result, old, wall, self._requests(result), (hpa.get("spec") or {}).get("metrics"),
                            conditions)
        if status == old:
            return
        hpa["status"] = status
        self.store.hpas.update(*key, hpa)


def _hpa_ref(hpa: dict) -> dict:
    """The HPA's ObjectReference as its Events carry it (the object read at the sync's start)."""
    meta = hpa["metadata"]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "namespace": meta["namespace"],
            "name": meta["name"], "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}


def _reason_for(hpa: dict, result: CycleResult, target: TargetRef, fallback: str) -> str:
    """kube-controller-manager's reason for a scale of ``target`` by ``result``'s decision (one
    target: the HPA's); ``fallback`` (the policy's reason code) when there is no decision to read."""
    decision = result.decision
    if decision is None or not result.targets or result.targets[0] != target:
        return fallback
    return rescale_reason(int(decision.norm.reason[0]), float(decision.current[0]), decision.proposals[0],
                          decision.valid[0], (hpa.get("spec") or {}).get("metrics"))


def _missing_request(pods: list[tuple[str, dict]], resource: str, only: str = "") -> str:
    """calculatePodRequests' error for the first of ``pods`` ((name, pod template), by name) with a
    container (``only`` that one, when named) that does not request ``resource``; '' when all do."""
    for name, template in pods:
        for c in (template.get("spec") or {}).get("containers") or []:
            if only in ("", c.get("name")) and resource not in ((c.get("resources") or {}).get("requests") or {}):
                return missing_request(resource, c.get("name", ""), name)
    return ""


def hpa_status(run: HpaRun, result: CycleResult | None, old: dict, wall_s: float,
               requests: dict[str, float] | None = None, sources: list | None = None,
               overrides: dict[str, dict] | None = None) -> dict:
    """An HPA's status as kube-controller-manager writes it: currentReplicas (observed),
    desiredReplicas (decided), lastScaleTime, currentMetrics (the values read, per metric) and
    conditions (their lastTransitionTime kept while their status holds). ``wall_s``: epoch s;
    ``requests``: a pod's requests, {"cpu": cores, "memory": bytes}, for a utilization's
    averageValue; ``sources``: the HPA's spec.metrics, whose forms currentMetrics takes;
    ``overrides``: conditions set over the reconciler's (those of the Warnings of the sync)."""
    # desiredReplicas is required in autoscaling/v2 (0 until a count was decided, as the real controller starts)
    status = {"desiredReplicas": 0, **{k: old[k] for k in ("currentReplicas", "desiredReplicas") if k in old}}
    if run.last_scale_wall_s is not None:
        status["lastScaleTime"] = K.rfc3339(run.last_scale_wall_s)
    if run.reconciler is None:
        conditions = {"AbleToScale": {"status": "True", "reason": "SucceededGetScale",
                                      "message": "the HPA controller was able to get the target's current scale"},
                      "ScalingActive": {"status": "False", "reason": REFUSED_REASON,
                                        "message": run.why[:1024]}}
    elif result is None or result.decision is None or not result.targets:
        why = "; ".join(result.errors)[:1024] if result is not None and result.errors else "no workload to scale"
        conditions = {"AbleToScale": {"status": "False", "reason": "FailedGetScale",
                                      "message": f"the HPA controller was unable to get the target's current scale: "
                                                 f"{why}"}}
    else:
        decision = result.decision
        status["currentReplicas"] = int(result.view.status[0]) if result.view.status is not None else \
            int(decision.current[0])
        status["desiredReplicas"] = int(decision.norm.desired[0])
        status["currentMetrics"] = current_metrics(run.reconciler.policy, decision.signal.values[0],
                                                   requests, sources, status["currentReplicas"])
        _, metric = largest_proposal(decision.proposals[0], decision.valid[0], sources)
        conditions = in_hpa_words(result.conditions[0] if result.conditions else {}, metric)
    conditions.update(overrides or {})
    status["conditions"] = _conditions(conditions, old.get("conditions") or [], wall_s)
    if "currentMetrics" not in status and old.get("currentMetrics"):
        status["currentMetrics"] = old["currentMetrics"]
    return status


def current_metrics(policy: RuntimePolicy, values: np.ndarray, requests: dict[str, float] | None = None,
                    sources: list | None = None, replicas: int | None = None) -> list[dict]:
    """status.currentMetrics from (M,) values read per metric (NaN: not shown), each in the form
    of its source in the HPA's spec.metrics (``sources``, in the policy's order, as the importer
    converts them; without them, utilization as Resource and the others as Pods): a utilization
    in averageUtilization, % (with the pod's request of its resource in ``requests``, {"cpu":
    cores, "memory": bytes}, the averageValue too, as kubectl describe shows it: CPU in
    millicores, memory in bytes), a value target's metric as its value, an averagePerReplica one
    as the average per pod HPA shows: the total read over the ``replicas`` running (kubectl get hpa
    compared the workload's total with the per-pod target: 1138/80 at 13 pods, where HPA says 87/80)."""
    if not isinstance(sources, list) or len(sources) != len(policy.params.metrics):
        sources = [None] * len(policy.params.metrics)
    requests = requests or {}
    out = []
    for metric, value, source in zip(policy.params.metrics, values, sources):
        if not np.isfinite(value):
            continue
        value = float(value)
        resource = _resource_of(source) or metric.resource
        if metric.kind is MetricKind.UTILIZATION:
            current = {"averageUtilization": int(round(value))}
            if requests.get(resource):
                current["averageValue"] = _quantity(resource, value / 100.0 * requests[resource])
            source = source or {"type": "Resource", "resource": {"name": metric.resource or metric.name}}
        elif metric.kind is MetricKind.VALUE:
            current = {"value": K.millicores(value)}
        else:
            current = {"averageValue": _quantity(resource, value / replicas if replicas else value)}
        out.append(_current_in_form_of(source, metric.name, current))
    return out


def _resource_of(source: dict | None) -> str | None:
    """The resource (cpu, memory) of an HPA Resource or ContainerResource metric source, else None."""
    kind, spec = source_spec(source)
    return spec.get("name") if kind in ("Resource", "ContainerResource") else None


def _quantity(resource: str | None, value: float) -> str:
    """A current value as HPA writes it (resource.NewMilliQuantity): memory in whole bytes
    (``268435456``), anything else in thousandths (``250m``, as CPU shows in millicores)."""
    if resource == "memory":
        return str(int(round(value)))
    return K.millicores(value)


#: An HPA metric source's type -> its field, and the fields of the spec's source its status repeats.
_STATUS_FORM = {"Resource": ("resource", ("name",)), "ContainerResource": ("containerResource", ("name", "container")),
                "Pods": ("pods", ("metric",)), "Object": ("object", ("metric", "describedObject")),
                "External": ("external", ("metric",))}


def _current_in_form_of(source: dict | None, name: str, current: dict) -> dict:
    """One currentMetrics entry: ``current`` under the spec source's type and identifying fields
    (a Pods metric of ``name`` when there is no source to follow)."""
    stype = source.get("type") if isinstance(source, dict) else None
    if stype not in _STATUS_FORM or not isinstance(source.get(_STATUS_FORM[stype][0]), dict):
        return {"type": "Pods", "pods": {"metric": {"name": name}, "current": current}}
    key, kept = _STATUS_FORM[stype]
    spec = source[key]
    return {"type": stype, key: {**{k: copy.deepcopy(spec[k]) for k in kept if k in spec}, "current": current}}


def _conditions(now: dict[str, dict], before: list[dict], wall_s: float) -> list[dict]:
    """Conditions as a list, each with the lastTransitionTime it had while its status is the same."""
    since = {c.get("type"): c for c in before if isinstance(c, dict)}
    out = []
    for ctype, c in now.items():
        prior = since.get(ctype)
        changed = prior is None or prior.get("status") != c.get("status")
        out.append({"type": ctype, "status": c.get("status", "Unknown"), "reason": c.get("reason", ""),
                    "message": c.get("message", ""),
                    "lastTransitionTime": K.rfc3339(wall_s) if changed else prior.get("lastTransitionTime")})
    return out
