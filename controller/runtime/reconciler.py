"""One reconcile cycle for one policy: observe, query, decide, act, remember.

The same Reconciler runs live (on APScheduler, wall clock) and in simulation (tick by tick,
simulation clock): only the Cluster and MetricsSource behind it differ. It never reads the
clock itself; ``cycle(now)`` gets the time.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from operator import attrgetter
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple, Sequence

import numpy as np

from controller.core.scaling.decide import Decision, Observation, ScalingState, warm
from controller.core.scaling.event_merge import merge_histories
from controller.core.scaling.external import hands_off
from controller.core.health.heal import HealingDecision, HealthState, heal
from controller.core.health.state_codec import (Parsed, durable_arrays, encode, parse, restore, same_arrays,
                                                still_relevant, target_key)
from controller.core.health.params import HealthParams, HealthReason
from controller.core.scaling.params import PolicyParams
from controller.core.scaling.scale_rows import scale_rows_fast
from controller.core.scaling.signal_compiled import read_signal_fast
from controller.errors import MetricsUnavailable, StateStoreError
from controller.policy.summary import plural
from controller.model import RESUME_ANNOTATION, Action, ActionKind, DecisionRecord, ScaleActions, TargetRef
from controller.policy.schema import DEFAULT_HANDS_OFF_S
from controller.ports import (ArrayMetricsSource, BatchScaler, Cluster, ClusterView, ConcurrentMetricsSource,
                              EventRecorder, FieldManaged, HpaLister, MetricsSource, Rehearsal, Samples, ScalingReads,
                              StateStore, TargetSelector)
from controller.runtime.actuate import RetryPolicy, apply_with_retries
from controller.runtime.claims import HEAL, SCALE, TargetClaims
from controller.runtime import hands_off_state, scale_events_state
from controller.runtime.external_scale import ExternalChange, ExternalScaleWatch
from controller.runtime.hpa_guard import HpaGuard
from controller.runtime.conditions import scaling_conditions
from controller.runtime.cycle_phases import NO_PHASES, CyclePhases
from controller.runtime.health_columns import StatusColumns
from controller.runtime.healing import (HealthQueries, health_actions, held_notice, observe_health,
                                       revision_accepted_notice, revision_worse_notice)
from controller.runtime.pod_samples import PodReader
from controller.runtime.scaling_memory import ScalingMemory
from controller.runtime.startup_observer import StartupInfo, StartupObserver

log = logging.getLogger("setpoint.runtime")


#: What the resume annotations' read reads of a status.
_ANNOTATED = attrgetter("ref", "annotations")


def _restarted(pod_keys: np.ndarray, pods: set[str]) -> np.ndarray:
    """(P,) bool: the pod of each key (``namespace/name``) is among ``pods`` (those restarted)."""
    if not pods:  # the common cycle: no pod restarted, no pass over the keys
        return np.zeros(len(pod_keys), bool)
    return np.fromiter((str(k) in pods for k in pod_keys), bool, len(pod_keys))

#: Actions that spend a healing budget: the durable state charging them is saved before they go out.
DISRUPTIVE = frozenset({ActionKind.RESTART_POD, ActionKind.ROLLING_RESTART, ActionKind.ROLLBACK})
#: Actions sent only once the durable state is saved: the disruptive ones, and a pause (the record
#: that this controller paused the Deployment is what lets it, or its successor, resume it).
WRITE_AHEAD = DISRUPTIVE | {ActionKind.PAUSE}
#: A rollout hold: goes along with a target's one action, committed on its own (``_commit``).
HOLD = frozenset({ActionKind.PAUSE, ActionKind.RESUME})


@dataclass(frozen=True, eq=False)
class RuntimePolicy:
    """What a reconciler needs from a policy file: compiled parameters, targets and queries.

    ``health`` is None for a scaling-only policy; a health-only policy has no metrics.
    Two are equal when compiled from the same document (``source``, a digest of it): the
    compiled parameters hold numpy arrays, which a field-by-field comparison cannot compare.
    """

    name: str
    params: PolicyParams
    selector: TargetSelector
    queries: tuple[str, ...]  # one PromQL expression per metric, in the order of params.metrics
    health: HealthParams | None = None
    health_queries: tuple[str, ...] = ()  # one per health check, in the order of health.checks
    revision_queries: tuple[tuple[str, ...], ...] = ()  # per revision check: (errors, requests) or (latency,)
    #: per metric, its ramp's ``latest`` query (the same rate over a shorter window), None without
    latest_queries: tuple[str | None, ...] = ()
    source: str = ""  # sha256 of the validated document; empty when built by hand (equal only to itself)
    #: ``scaling.onExternalScale.handsOff`` (s): how long a target someone else scaled is left alone
    hands_off_s: float = DEFAULT_HANDS_OFF_S
    #: ``scaling.onExternalScale.deployManagers``: the team's own deploy pipelines' field managers
    deploy_managers: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuntimePolicy):
            return NotImplemented
        return self is other or bool(self.source) and self.source == other.source

    def __hash__(self) -> int:
        return hash(self.source) if self.source else id(self)

    @classmethod
    def of(cls, loaded) -> "RuntimePolicy":
        """From a controller.policy.LoadedPolicy (its parameters as compiled when it was loaded)."""
        spec = loaded.model.spec
        queries = tuple(m.query for m in spec.scaling.metrics) if loaded.scales else ()
        health = loaded.health_params
        checks = spec.health.checks if health is not None else []
        # a hung-pod check has no query (it reads the pod list): ''
        health_queries = tuple(c.query or "" for c in checks if c.scope != "revision")
        revision_queries = tuple((c.query,) if c.query is not None else (c.errors, c.requests)
                                 for c in checks if c.scope == "revision")
        latest = tuple(m.ramp.latest if m.ramp is not None else None
                       for m in spec.scaling.metrics) if loaded.scales else ()
        source = hashlib.sha256(loaded.model.model_dump_json().encode()).hexdigest()
        external = spec.scaling.on_external_scale if loaded.scales else None
        return cls(loaded.name, loaded.params, loaded.targets, queries, health, health_queries, revision_queries,
                   latest if any(q is not None for q in latest) else (), source,
                   DEFAULT_HANDS_OFF_S if external is None else external.hands_off_s,
                   () if external is None else tuple(external.deploy_managers))


class FailedAction(NamedTuple):
    """An action of the cycle that did not go out: its target, why, and its kind's word (scale,
    rollback, ...: the setpoint_action_failures_total label, and what the conditions read)."""

    target: TargetRef
    why: str
    kind: str


@dataclass(slots=True)  # made every cycle, and a simulation that keeps results keeps thousands: no per-result dict
class CycleResult:
    """What one cycle saw and did. ``decision`` is None when nothing could be decided."""

    policy: str
    now: float
    targets: list[TargetRef]
    view: ClusterView | None
    decision: Decision | None
    #: accepted by the cluster (under a rehearsal: would be); a cycle that only scaled, every scale
    #: accepted at once (BatchScaler), keeps its ScaleActions here: a Sequence of Action, not a list
    actions: list[Action] | ScaleActions = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queries: int = 0
    failed: list[FailedAction] = field(default_factory=list)
    duration_s: float = 0.0
    healing: HealingDecision | None = None
    metric_names: tuple[str, ...] = ()  # the policy's scaling metrics, in the decision's column order
    state_problems: list[str] = field(default_factory=list)  # durable state unreadable: restored conservatively
    state_saved: bool = False  # the durable health state was written this cycle
    # per target, the HPA-style conditions this cycle set: {type: {status, reason, message}}
    conditions: list[dict[str, dict]] = field(default_factory=list)
    #: a controller.runtime.warm_start.WarmStart: this cycle rebuilt the state (of every target at a
    #: start or leadership; of the targets that joined the running policy, ``joined``, at a take-over)
    warm_start: object | None = None
    #: per target key whose health checks were replayed from their history this cycle: what the
    #: record says (controller/runtime/check_history.CheckHistory.record)
    check_history: dict[str, dict] = field(default_factory=dict)
    rehearsal: bool = False  # dry-run or shadow: ``actions`` were recorded, not applied
    #: phase -> wall seconds of this cycle (controller/runtime/cycle_phases.py), when timed (the live service)
    phases: dict[str, float] | None = None
    startup: StartupInfo | None = None  # observed start-up delays (startupDelay: observed), for the records
    withheld: np.ndarray | None = None  # (N,) replicas withheld by pods not Ready (core/scaling/withheld.py)
    scaling_committed: bool = False  # the decision's scale events joined the scaling state (Reconciler._commit_scaling)
    contested: int = 0  # workloads the policy selects that another policy governs (not in ``targets``)
    hpa_scaled: int = 0  # workloads the policy selects that an HPA scales (left alone unless a rehearsal)
    left_alone: dict[str, str] = field(default_factory=dict)  # target key -> why the policy leaves it alone
    #: per scaling metric whose query answered (not one read per pod): (its query, how many of the
    #: existing targets got no sample from it: a renamed metric, a relabeling, an exporter gone)
    missing: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: the same for the existing targets whose sample was implausible (core/scaling/signal.py: a
    #: broken exporter, a unit mix-up), for the scaling metrics in ``missing``
    implausible: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: per health check whose queries answered ("health check NAME"): (its queries, how many of the
    #: targets it looked at got no usable sample (a pod or revision check: for none of their pods),
    #: how many it looked at, whether it reads pods): such a check is blind there (missing data
    #: never fires one)
    health_missing: dict[str, tuple[str, int, int, bool]] = field(default_factory=dict)
    #: per query that failed (MetricsUnavailable: Prometheus down, slow, erroring), by what sends it
    #: ("metric rps", "metric rps (ramp latest)", "health check errors"): (its query, the line of
    #: ``errors`` that says so); ``answered``: the same keys for those that answered
    unavailable: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: (a list: a simulation keeps thousands of results, and an empty set is four times a list's size)
    answered: list[str] = field(default_factory=list)
    #: targets whose replicas someone else set, left alone this cycle (under a rehearsal: that a
    #: real run would leave alone) -> the change (controller/runtime/external_scale.py)
    hands_off: dict[TargetRef, ExternalChange] = field(default_factory=dict)
    external_changes: list[ExternalChange] = field(default_factory=list)  # seen by this cycle
    fights: dict[TargetRef, str] = field(default_factory=dict)  # targets another writer fights over -> the writer
    #: held targets the policy would scale above the count kept -> the count it would set
    short_of_demand: dict[TargetRef, int] = field(default_factory=dict)
    watches_external: bool = False  # the cluster names the writer of spec.replicas: the above were looked for

    @property
    def selected(self) -> int:
        """The workloads the policy's targets selected this cycle: governed, or left alone."""
        return len(self.targets) + len(self.left_alone)


def _implausible_counts(queried: dict[str, tuple[str, int]], decision: Decision, exists: np.ndarray
                        ) -> dict[str, tuple[str, int]]:
    """Per metric of ``queried`` (CycleResult.missing: the scaling metrics whose query answered),
    (its query, how many existing targets (``exists`` (N,)) read an implausible sample)."""
    implausible = decision.signal.implausible
    if not implausible.any():  # the common cycle: a count per metric of zero, without the (N, M) mask and sums
        counts = [0] * implausible.shape[1]
    else:
        counts = np.count_nonzero(implausible & np.asarray(exists, bool)[:, None], axis=0).tolist()
    return {name: (queried[name][0], counts[j]) for j, name in enumerate(decision.params.metric_names)
            if name in queried}


def claim_roles(policy: RuntimePolicy) -> tuple[str, ...]:
    """What ``policy`` governs a workload for (controller/runtime/claims.py): scaling it when it
    has metrics, healing it when it has health checks."""
    return tuple(role for role, has in ((SCALE, bool(policy.params.metrics)), (HEAL, policy.health is not None)) if has)


def cycle_records(result: CycleResult, metric_names: tuple[str, ...], start_s: float = 0.0) -> list:
    """One DecisionRecord per target of a cycle, with the health record under ``extra["health"]``
    when the policy has health checks and the conditions the cycle set under
    ``extra["conditions"]``; ``at`` is relative to ``start_s``. (A simulation's decisions.jsonl
    gets the same records as JSON lines from controller/runtime/record_lines.py, without these objects.)"""
    d = result.decision
    if d is None and (result.healing is None or result.view is None):
        return []
    keys = [t.key for t in result.targets]
    records = d.records(result.policy, keys, metric_names) if d is not None else health_only_records(result, keys)
    for part, values in shell_extras(result, keys, start_s):
        if part == "startup":  # values: the StartupInfo, a record per target
            values = [values.record(i) for i in range(len(keys))]
        records = [replace(r, extra={**r.extra, part: v}) if v is not ABSENT else r for r, v in zip(records, values)]
    if start_s:
        records = [replace(r, at=r.at - start_s) for r in records]
    return records


#: A record without that part (shell_extras)
ABSENT = object()


def shell_extras(result: CycleResult, keys: list[str], start_s: float = 0.0) -> list[tuple[str, object]]:
    """What the shell adds to a cycle's records after the decision's own, in the records' order:
    (name in ``extra``, per target (``keys``) its value, ABSENT where a record has none), times
    relative to ``start_s``; for ``startup``, the StartupInfo itself (a value per target: its
    ``record(i)``), left to the caller to make per target or in one pass."""
    d = result.decision
    parts: list[tuple[str, object]] = []
    if result.conditions:
        parts.append(("conditions", [c if c else ABSENT for c in result.conditions]))
    if result.failed:  # an action decided but not applied (refused, conflicted, timed out): say so
        failed: dict[str, dict] = {}
        for f in result.failed:
            failed.setdefault(f.target.key, {"action": f.kind, "error": f.why})
        parts.append(("actionFailed", [failed.get(k, ABSENT) for k in keys]))
    if result.warm_start is not None:  # every target at a start; the joiners only at a take-over
        started = result.warm_start.keys()
        parts.append(("warm_start", [result.warm_start.for_target(k) if k in started else ABSENT for k in keys]))
    if result.check_history:
        parts.append(("checkHistory", [result.check_history.get(k, ABSENT) for k in keys]))
    if result.startup is not None and d is not None:
        parts.append(("startup", result.startup))
    if result.withheld is not None and d is not None:
        parts.append(("withheld", [int(w) if w else ABSENT for w in result.withheld]))
    by_key = {t.key: {**c.record(result.rehearsal), **({"wanted": result.short_of_demand[t]}
                                                       if t in result.short_of_demand else {})}
              for t, c in result.hands_off.items()}
    by_key.update({c.target.key: c.record(result.rehearsal) for c in result.external_changes if c.deploy})
    if by_key:  # held (hands-off), or reset by a deploy this cycle
        parts.append(("externalScale", [_relative("externalScale", by_key[k], start_s) if k in by_key else ABSENT
                                        for k in keys]))
    if result.healing is not None:
        health = [h.to_dict() for h in result.healing.records(result.policy, keys)]
        if result.hands_off and not result.rehearsal:  # a health scale-up was held: not the action taken
            kept = {t.key: c for t, c in result.hands_off.items()}
            health = [{**h, "action": None, "replicas": None, "heldByHandsOff": {"action": h["action"],
                                                                                 "replicas": h.get("replicas")}}
                      if h.get("action") == "scale" and k in kept and kept[k].holds(h.get("replicas")) else h
                      for h, k in zip(health, keys)]
        parts.append(("health", [_relative("health", h, start_s) for h in health]))
    return parts


#: The times nested in a record's extra, made relative with its ``at`` (epoch s in a live run's)
_NESTED_TIMES = {"health": ("at", "verify_until"), "externalScale": ("at", "until")}


def _relative(part: str, entry: object, start_s: float) -> object:
    """The ``part`` of a record's extra with the times of _NESTED_TIMES in seconds since
    ``start_s``, as the record's ``at`` (``entry`` itself when none changes)."""
    if not start_s or not isinstance(entry, dict):
        return entry
    times = {k: entry[k] - start_s for k in _NESTED_TIMES[part] if isinstance(entry.get(k), (int, float))}
    if part == "health" and isinstance(entry.get("checks"), dict):
        checks = {name: {**c, "since": c["since"] - start_s} if isinstance(c, dict) and isinstance(
            c.get("since"), (int, float)) else c for name, c in entry["checks"].items()}
        times = {**times, "checks": checks}  # when each check's phase began
    return {**entry, **times} if times else entry


#: The reason of a health-only cycle's records: scaling was not evaluated (its replicas held).
HEALTH_ONLY = "HealthOnly"


def health_only_records(result: CycleResult, keys: list[str]) -> list[DecisionRecord]:
    """Records of a health-only cycle (``Reconciler.health_cycle``): no metric read, the scaling
    side holding the current replicas; the health record goes under ``extra`` as usual."""
    view = result.view
    records = []
    for i, key in enumerate(keys):
        n = int(view.spec[i])
        records.append(DecisionRecord(result.policy, key, result.now, n, int(view.ready[i]), (), (), (), (), (),
                                      n, n, n, n, HEALTH_ONLY))
    return records


def event_recorder(cluster: Cluster) -> EventRecorder | None:
    """The cluster as an EventRecorder when it declares the capability (asked once, when wiring)."""
    return cluster if isinstance(cluster, EventRecorder) else None


def emit_event(events: EventRecorder | None, target: TargetRef, reason: str, message: str,
               warning: bool = False) -> None:
    """A Kubernetes Event on ``target`` when the cluster can record one (``event_recorder``; best
    effort: an Event that fails never fails the cycle or the reload); a Warning when ``warning``."""
    if events is None:
        return
    try:
        if warning:
            events.record_event(target, reason, message, warning=True)
        else:
            events.record_event(target, reason, message)
    except Exception:
        logging.getLogger("setpoint.runtime").debug("could not record a %s Event", reason, exc_info=True)


def _stack(samples: Sequence[Samples], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, M) values, present and age arrays from one Samples per metric."""
    if not samples:
        return np.zeros((n, 0)), np.zeros((n, 0), bool), np.zeros((n, 0))
    if len(samples) == 1:  # np.stack's arrays, without its per-call checks (most policies have one metric)
        s = samples[0]
        return (np.asarray(s.values)[:, None].copy(), np.asarray(s.present & ~s.conflict)[:, None],
                np.asarray(s.age_s)[:, None].copy())
    values = np.stack([s.values for s in samples], axis=1)
    present = np.stack([s.present & ~s.conflict for s in samples], axis=1)
    age = np.stack([s.age_s for s in samples], axis=1)
    return values, present, age


def _latest_columns(got: dict[int, Samples], n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, M) values, present (and not in conflict) and age of the ramps' latest readings
    ``got`` (metric column -> Samples); a column without one: NaN, absent, age 0."""
    if m == 1 and 0 in got:  # the one metric's own arrays as a column (views: read_signal writes none)
        s = got[0]
        return (np.asarray(s.values, np.float64)[:, None], np.asarray(s.present & ~s.conflict)[:, None],
                np.asarray(s.age_s, np.float64)[:, None])
    values, present, age = np.full((n, m), np.nan), np.zeros((n, m), bool), np.zeros((n, m))
    for j, s in got.items():
        values[:, j], present[:, j], age[:, j] = s.values, s.present & ~s.conflict, s.age_s
    return values, present, age


def keeps_scale_events(params: PolicyParams) -> bool:
    """The policy's rate limits count scale events (a scaling policy with ``behavior``; not the
    legacy per-cycle cap): they are kept on the cluster too."""
    return bool(params.metrics) and not params.legacy and max(params.scale_up.longest_period_s,
                                                              params.scale_down.longest_period_s) > 0


class LastSaid:
    """What a notice last said of each target (a key: the target, or the target and an action
    kind), so that a notice that comes back at every cycle is said once per change (an Event a
    cycle would bury the others). Keys of targets no longer there are forgotten, as their other
    state is."""

    def __init__(self):
        self._said: dict = {}

    def __bool__(self) -> bool:
        """Something is remembered (a key to forget)."""
        return bool(self._said)

    def news(self, key, what: str) -> bool:
        """True, and ``what`` remembered, when it is not what was last said of ``key``."""
        if self._said.get(key) == what:
            return False
        self._said[key] = what
        return True

    def forget(self, key) -> None:
        """What comes next of ``key`` is news again (the condition ended)."""
        self._said.pop(key, None)

    def retain(self, keys: set) -> None:
        """Forget every key but ``keys`` (the condition ended for the others)."""
        if any(k not in keys for k in self._said):
            self._said = {k: v for k, v in self._said.items() if k in keys}

    def keep(self, targets: Sequence[TargetRef]) -> None:
        """Forget the keys of targets not in ``targets`` (checked once the keys outnumber them)."""
        if len(self._said) > len(targets):
            present = set(targets)
            self._said = {k: v for k, v in self._said.items() if (k if isinstance(k, TargetRef) else k[0]) in present}


class Reconciler:
    """Runs cycles for one policy and keeps its state between them: in memory, and with a
    ``state_store``, the durable part of the health state on the cluster too (budgets, breaker,
    revision memory; see controller/core/health_state_codec), restored when the reconciler is
    created and on ``restore()`` (becoming leader), saved in the cycle that changes it, before
    that cycle's actions go out (a disruptive action only once its budget is saved). The
    hands-offs and the rate limits' scale events are kept there too, for any policy that scales
    (controller/runtime/hands_off_state.py, scale_events_state.py: the events written ahead of
    the scales, never holding one back)."""

    def __init__(self, policy: RuntimePolicy, metrics: MetricsSource, cluster: Cluster,
                 on_cycle: Callable[[CycleResult], None] | None = None, retry: RetryPolicy = RetryPolicy(),
                 state_store: StateStore | None = None, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, warm_from=None, claims: TargetClaims | None = None,
                 warm_cause: str = "start"):
        self.policy = policy
        # shared by the live service's reconcilers: a workload two policies select is governed by
        # one (controller/runtime/claims.py); None in a simulation or replay (one policy per run)
        self.claims = claims
        self._taken_said: dict[TargetRef, str] = {}  # targets another policy governs, as last said
        self.contested = 0  # how many of the selected workloads another policy governs (last cycle)
        self.left_alone: dict[str, str] = {}  # selected workloads left alone (last cycle): key -> why
        # a source with ``query_range`` (PrometheusSource): the scaling state is rebuilt from its
        # history at the first cycle and after ``restore()`` (controller/runtime/warm_start.py)
        self.warm_from = warm_from
        self._warm_due = True
        # why the next warm start rebuilds the whole state (warm_start.START, RELOAD, LEADER): the
        # service builds a policy's reconciler at its start or at a reload, restore() is a leadership
        self._warm_cause = warm_cause
        # targets that joined after the warm start (an HPA deleted, a label added): their rows alone
        # are rebuilt from the same history at the next full cycle (:meth:`_warm_joiners`)
        self._joining: set[TargetRef] = set()
        self.with_conditions = True  # False: no HPA-style conditions (a replay has nobody to show them to)
        # False: a cycle's result is read before the next cycle only, by a caller that shows and
        # counts nothing (the simulation runner without records): its decision's arrays are the
        # scaling workspace's own (the next cycle overwrites them) and the telemetry's counts of
        # unusable samples (``missing``, ``implausible``) are not made
        self.keeps_results = True
        # True (the live service): each cycle's result says where its wall time went (``phases``)
        self.times_phases = False
        self._laps = NO_PHASES  # the running cycle's stopwatch
        self.metrics = metrics
        self.cluster = cluster  # optional capabilities of both ports are checked when they are set (below)
        self.on_cycle = on_cycle
        self.retry, self._monotonic, self._sleep = retry, monotonic, sleep  # writes only: see runtime/actuate.py
        self._targets: list[TargetRef] = []
        self._scaling = ScalingMemory(ScalingState.empty(0, policy.params))
        self._health_state = HealthState.empty(0, policy.health) if policy.health else None
        self.rearm: set[TargetRef] = set()  # targets to resume (setpoint resume, an annotation)
        self._resume_seen: dict[TargetRef, str] = {}
        self._resume_read: tuple | None = None  # see _resume_unread
        self._held: set[TargetRef] = set()
        self._gone_said = LastSaid()  # per target, the trimmed rollback target last announced
        self._paused_said = LastSaid()  # per target, the revision whose rollback a pause by someone else blocks
        self._worse_said = LastSaid()  # per target, the revision a record revision check judged worse
        self._accepted_said = LastSaid()  # per target, the revision judged worse its annotation accepts
        self._rollout_wait_said = LastSaid()  # per target, the revision whose rollout a restart waited long for
        self._partitioned_said = LastSaid()  # per target, the revision whose rolling restart a partition refused
        self._restart_waits_since: dict[TargetRef, float] = {}  # since when a restart waits for a rollout
        self._refused_said = LastSaid()  # per (target, action kind), the permanent refusal last announced
        self._history_said = LastSaid()  # per target, a revisionHistoryLimit of 0 under a rollback policy
        # the keys of CycleResult.unavailable / answered, made once (a string a cycle adds up in a simulation)
        self._query_keys = [f"metric {name}" for name in policy.params.metric_names]
        self._latest_keys = [f"metric {name} (ramp latest)" for name in policy.params.metric_names]
        # those of the ramps' latest queries the policy has (one read answers them all: _latest_read)
        self._latest_answered = [key for key, expr in zip(self._latest_keys, policy.latest_queries) if expr is not None]
        self.state_store = state_store if policy.health is not None else None
        # the hands-offs in force are kept there too, for any policy that scales (controller/runtime/hands_off_state.py)
        self.hands_off_store = state_store
        self._hands_off_due = False  # read them at the next cycle (set by restore())
        self._hands_off_saved: hands_off_state.WatchState | None = None  # as last read or saved
        # and the scale events of the rate limits' periods (controller/runtime/scale_events_state.py)
        self.events_store = state_store if keeps_scale_events(policy.params) else None
        self._events_due = False  # read them at the next cycle (set by restore())
        self._events_unread = False  # a read failed: what was applied meanwhile is written once one succeeds
        self._events_retry = False  # what is stored may differ from memory: compare (and write) after the commit
        self._events_failed_at: float | None = None  # the cycle of the last failed write (one try per cycle)
        self._events_saved: dict[str, scale_events_state.StoredEvents] | None = None  # as last read or saved
        self._pending: Parsed | None = None  # a payload read, applied at the next cycle (it needs ``now``)
        self._load_error: str | None = None  # the last read failed: no health action until one succeeds
        self._saved: tuple[np.ndarray, ...] | None = None  # durable arrays as last saved or restored
        self._saved_resume: dict[str, str] = {}
        self._before_heal: tuple[HealthState | None, set[TargetRef]] = (self._health_state, set())
        self._last_health_at: float | None = None  # time of the last health step (full or health-only cycle)
        self._rows_cache: tuple[tuple, dict[TargetRef, int]] = ((), {})  # see _row_of
        self._statuses_read = StatusColumns()  # what the health side read of the statuses, per status object
        self._proposed: tuple[Decision, list[Action]] | None = None  # see _proposed_all
        self.rollout_in_progress = False  # the last cycle saw a target of this policy mid-rollout
        self.lock = threading.Lock()  # held by the live service's jobs: full and health-only cycles never overlap
        self.startups = StartupObserver()  # re-learned from the pods after a restart (nothing persisted)
        self.restore(warm_cause)

    @property
    def _state(self) -> ScalingState:
        return self._scaling.state

    @_state.setter
    def _state(self, state: ScalingState) -> None:
        self._scaling.state = state

    @property
    def in_place(self) -> bool:
        """Decide in place (controller/runtime/scaling_memory.py): True by default, live and in
        simulations; False: the pure ``decide`` each cycle (same decisions and state, a copy of
        the state per cycle)."""
        return self._scaling.in_place

    @in_place.setter
    def in_place(self, on: bool) -> None:
        self._scaling.in_place = on

    @property
    def metrics(self) -> MetricsSource:
        return self._metrics

    @metrics.setter
    def metrics(self, source: MetricsSource) -> None:
        self._metrics = source
        self._concurrent = source if isinstance(source, ConcurrentMetricsSource) else None
        # declared by the source's class: a wrapper that forwards what it lacks (__getattr__) to a
        # source it intercepts queries of (faults, blinded queries) must not be read around
        self._arrays = source if issubclass(type(source), ArrayMetricsSource) else None
        self._wire_pods()

    @property
    def cluster(self) -> Cluster:
        return self._cluster

    @cluster.setter
    def cluster(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._events = event_recorder(cluster)
        self.rehearsal = isinstance(cluster, Rehearsal)  # dry-run / shadow: nothing is applied, nothing committed
        self._batch = cluster if issubclass(type(cluster), BatchScaler) else None  # a cycle's scales in one call
        # a scaling policy leaves alone what an HPA scales (controller/runtime/hpa_guard.py); not in a
        # simulation or replay, whose clusters have no HPAs (nor the capability)
        self.hpa_guard = HpaGuard(cluster, self.policy.name, self.rehearsal) \
            if isinstance(cluster, HpaLister) and self.policy.params.metrics else None
        # replicas someone else set are left alone a while (controller/runtime/external_scale.py); only
        # where the writer of spec.replicas can be told (not a simulation or replay: nobody else writes)
        self.external = ExternalScaleWatch(self.policy.name, cluster.field_manager, self.policy.hands_off_s,
                                           self.rehearsal, self.policy.deploy_managers) \
            if isinstance(cluster, FieldManaged) and self.policy.params.metrics else None
        self._wire_pods()

    def _wire_pods(self) -> None:
        """The hpa preset's per-pod metric reader, for the ports as now wired (either can be replaced)."""
        if hasattr(self, "_metrics") and hasattr(self, "_cluster"):
            self.pods = PodReader(self.policy.params, self.policy.queries, self._metrics, self._cluster)
            # a cycle observes the pods for the health checks, or for a reader that cannot list them
            self._with_pods = self.policy.health is not None or self.pods.wants_statuses

    # ------------------------------------------------------------------ durable state
    def restore(self, cause: str = "leader") -> None:
        """Read the durable health state (at start-up, and on becoming leader: another replica may
        have acted meanwhile); it replaces the in-memory rows of the targets it holds at the next
        cycle. A failed read is retried every cycle, and until one succeeds the cycle takes no
        health action (acting on unknown budgets could exceed them). The scaling state is
        rebuilt from the metrics' history at the next cycle (with ``warm_from``), and the
        hands-offs and scale events kept on the cluster are read then too (:meth:`_read_hands_offs`,
        :meth:`_read_scale_events`). ``cause``: why, as the warm start tells it (warm_start.LEADER:
        this replica became the leader; the constructor's, START or RELOAD)."""
        self._warm_due = True
        self._warm_cause = cause
        # a cycle ran since with no target to govern (its one workload under an HPA): the warm start
        # that comes with the first target is then a take-over, not the start (or leadership) itself
        self._ran_without_targets = False
        self._checks_replayed: set[TargetRef] = set()  # their checks' history is read (_with_check_history)
        self._hands_off_due = self.hands_off_store is not None
        self._events_due = self.events_store is not None
        self._read_health_state()

    def _read_health_state(self) -> None:
        """Read the durable health state (its records wait in ``_pending`` for the next cycle's
        targets); ``_load_error`` says why when the read fails."""
        if self.state_store is None:
            return
        try:
            self._pending = parse(self.state_store.load(self.policy.name))
            self._load_error = None
        except StateStoreError as exc:
            self._pending, self._load_error = None, str(exc)

    def _apply_restored(self, targets: list[TargetRef], now: float, result: CycleResult) -> None:
        keys = [target_key(t.namespace, t.kind, t.name) for t in targets]
        pending = self._pending
        if pending.records is not None and not any(k in pending.records for k in keys):
            return  # nothing for these targets (yet): keep the records for targets that show up later
        restored = restore(self.policy.health, self._health_state, keys, pending, now)
        # records of targets not resolved now stay pending (a workload briefly missing from a
        # list); an unreadable payload is charged once, for the targets present now
        rest = {} if pending.records is None else {k: v for k, v in pending.records.items() if k not in set(keys)}
        self._pending = Parsed(rest) if rest else None
        self._health_state = restored.state
        # held before this process (a restart, a new leader): announced then, not again
        self._held |= {t for t, h in zip(targets, self._health_state.remedy.held.tolist()) if h}
        by_key = dict(zip(keys, targets))
        for key, value in restored.resume_seen.items():
            self._resume_seen[by_key[key]] = value  # a resume written while we were away re-arms
        self._resume_read = None  # (values written: the next read reads every status)
        result.state_problems.extend(restored.problems)
        # what was read is what is stored, unless it had to be repaired (then write the repair)
        self._saved = None if restored.problems else durable_arrays(self._health_state)
        self._saved_resume = {} if restored.problems else self._resume_values(targets)

    def _resume_values(self, targets: list[TargetRef]) -> dict[str, str]:
        return {target_key(t.namespace, t.kind, t.name): self._resume_seen[t] for t in targets if t in self._resume_seen}

    def _save_if_changed(self, targets: list[TargetRef], now: float, result: CycleResult) -> bool:
        """Write the durable state when it changed (an action, a verdict, a hold, a re-arm, a new
        revision), not every cycle. A failed write is retried next cycle (the state stays dirty).
        False when the write failed."""
        arrays, resume = durable_arrays(self._health_state), self._resume_values(targets)
        if same_arrays(self._saved, arrays) and resume == self._saved_resume:
            return True
        keys = [target_key(t.namespace, t.kind, t.name) for t in targets]
        payload = encode(self.policy.name, self.policy.health, self._health_state, keys, resume, saved_at=now)
        if self._pending is not None and self._pending.records:  # targets missing from this cycle's list
            payload["targets"].update({k: v for k, v in self._pending.records.items()
                                       if k not in payload["targets"] and still_relevant(v, now)})
        try:
            self.state_store.save(self.policy.name, payload)
        except StateStoreError as exc:
            result.errors.append(f"state: {exc}; retried next cycle")
            return False
        self._saved, self._saved_resume = arrays, resume
        result.state_saved = True
        return True

    def _save_before_acting(self, targets: list[TargetRef], now: float, actions: list[Action],
                            result: CycleResult) -> list[Action]:
        """Save the durable state before the actions go out (write-ahead): a disruptive action
        is sent only once the budget it spends is on the cluster, else a crash or a failover
        right after it would re-arm the budget. When the save fails, the disruptive actions are
        not sent and the health state goes back to before this cycle's decision (decided
        again next cycle); the other actions go out."""
        if self._save_if_changed(targets, now, result) or not any(a.kind in WRITE_AHEAD for a in actions):
            return actions
        self._health_state, self.rearm = self._before_heal
        for a in actions:
            if a.kind in WRITE_AHEAD:
                what = "the hold" if a.kind is ActionKind.PAUSE else "its budget"
                result.failed.append(FailedAction(a.target, f"state: {a.kind.word} not sent, {what} could not be saved",
                                                  a.kind.word))
        return [a for a in actions if a.kind not in WRITE_AHEAD]

    def warm(self, targets: list[TargetRef], history: np.ndarray, times: np.ndarray) -> None:
        """Start the forecasts of ``targets`` from history: (N, T, M) metric values (NaN where
        unknown) at times (T,), epoch seconds, before the first cycle (e.g. Prometheus range
        queries at start-up, or a scenario's load before its start)."""
        self._carry_state_over(list(targets))
        self._state = warm(self.policy.params, self._state, history, times)

    def _warm_start(self, targets: list[TargetRef], now: float, result: CycleResult) -> None:
        """Rebuild the scaling state from ``warm_from``'s history (once per start or leadership)."""
        from controller.runtime.warm_start import warm_start

        self._carry_state_over(targets)  # while still due: the start's targets are not joiners
        self._warm_due = False
        self._joining.clear()  # rebuilt here with the others
        state, info = warm_start(self.policy, self.warm_from, targets, now)
        info.cause = self._warm_cause
        info.joined = self._ran_without_targets  # said as a take-over: the policy was running, governing nothing
        if state is not None:
            self._state = state
        result.warm_start = info

    def _warm_joiners(self, targets: list[TargetRef], view: ClusterView, now: float, result: CycleResult) -> None:
        """Rebuild from ``warm_from``'s history the scaling state of the targets that joined the
        policy since its warm start (an HPA deleted for a migration, a selector that now matches),
        as the warm start does for all of them, and write their rows alone into the policy's state
        (core/scaling/rows.py: the other targets' rows are untouched). A joiner without history
        (no kube-state-metrics, a workload younger than the window, Prometheus down) stays cold:
        its scale-down waits one stabilization window, and the records and log say why. Called
        after the state was carried over to ``targets`` (the joiners' rows are empty)."""
        from controller.core.scaling.rows import with_rows
        from controller.runtime.warm_start import events_since_replay, warm_start

        joining, self._joining = self._joining, set()
        rows = [i for i, t in enumerate(targets) if t in joining]
        if not rows or self.warm_from is None:
            return
        rows_a = np.array(rows, dtype=np.int64)
        state, info = warm_start(self.policy, self.warm_from, [targets[i] for i in rows], now)
        info.joined = True
        result.warm_start = info
        if state is None:
            return
        # the other writer's last step kube-state-metrics had not shown yet (its HPA, before it was deleted)
        norm = events_since_replay(state.norm, self.policy.params, info, view.spec[rows_a], now)
        self._state = with_rows(self._state, rows_a, replace(state, norm=norm))

    def _events_since_replay(self, targets: list[TargetRef], view: ClusterView, now: float, info) -> None:
        """The change of replicas between the warm start's last replayed tick and this first cycle
        as a scale event (warm_start.events_since_replay): the old leader's last step, which
        kube-state-metrics had not shown yet. Without a state store only: with one, the record
        written ahead of that step has it (counted twice, it would loosen the other direction's limit)."""
        from controller.runtime.warm_start import events_since_replay

        if info.last_replicas is None or len(info.last_replicas) != len(targets):
            return
        norm = events_since_replay(self._state.norm, self.policy.params, info, view.spec, now)
        if norm is not self._state.norm:
            self._state = replace(self._state, norm=norm)

    def continue_scaling(self, previous: "Reconciler") -> None:
        """Go on from ``previous``'s scaling memory (its targets, recommendation history, scale
        events: ScalingState.refit to this policy's parameters), as kube-controller-manager keeps
        an HPA's history across edits of the HPA (sim serve's HPA controller). Setpoint's own hot
        reload starts a changed policy afresh and does not call this."""
        self._targets = list(previous._targets)
        self._state = previous._state.refit(self.policy.params)

    def _rows_for(self, targets: list[TargetRef]) -> np.ndarray | None:
        """Old row of each new target (-1 if new), or None when the list is unchanged."""
        if targets is self._targets or targets == self._targets:  # the same list: equal, without the compare
            return None
        old = {t: i for i, t in enumerate(self._targets)}
        return np.array([old.get(t, -1) for t in targets], dtype=np.int64)

    def _carry_state_over(self, targets: list[TargetRef]) -> None:
        """Reorder the scaling and health state to a new target list (new targets start empty;
        after the warm start, they are joiners: :meth:`_warm_joiners`)."""
        rows = self._rows_for(targets)
        if rows is not None:
            if not self._warm_due and self.warm_from is not None:
                self._joining.update(t for t, r in zip(targets, rows.tolist()) if r < 0)
            self._state = self._state.take(rows)
            if self._health_state is not None:
                self._health_state = self._health_state.take(rows)
            self._targets = targets

    def _fetch(self, targets: list[TargetRef], now: float) -> list[Samples | Exception | None]:
        """One request per metric; concurrently when the source can (ConcurrentMetricsSource).
        Metrics read per pod (``self.pods``) are not queried here: their slots hold None."""
        skip = self.pods.read_here
        exprs = [q for j, q in enumerate(self.policy.queries) if j not in skip]
        if self._concurrent is not None:
            got = self._concurrent.query_many(exprs, targets, now, return_exceptions=True)
        else:
            got = []
            for expr in exprs:
                try:
                    got.append(self.metrics.query(expr, targets, now))
                except MetricsUnavailable as exc:
                    got.append(exc)
        it = iter(got)
        return [None if j in skip else next(it) for j in range(len(self.policy.queries))]

    def _query_all(self, targets: list[TargetRef], now: float, result: CycleResult) -> list[Samples | None]:
        """The Samples of each scaling metric (None: read per pod, by ``self.pods``), the cycle's
        counts and errors kept."""
        out = []
        result.queries += len(self.policy.queries)
        exists = result.view.exists if result.view is not None else np.ones(len(targets), bool)
        fetched = self._fetch(targets, now)
        for j, (name, expr, s) in enumerate(zip(self.policy.params.metric_names, self.policy.queries, fetched)):
            if s is None:  # read per pod: its samples come from the pods' read
                result.answered.append(self._query_keys[j])
                out.append(None)
                continue
            if isinstance(s, Exception):  # the whole metric is unknown: it votes against change
                if not isinstance(s, MetricsUnavailable):
                    raise s
                result.errors.append(f"metric {name}: {s}")
                result.unavailable[self._query_keys[j]] = (expr, result.errors[-1])
                s = Samples.missing(len(targets))
            else:
                result.answered.append(self._query_keys[j])
                if self.keeps_results:
                    result.missing[name] = (expr, int(np.count_nonzero(~s.present & ~s.conflict & exists)))
            if s.conflict.any():
                bad = [str(t) for t, c in zip(targets, s.conflict) if c]
                result.errors.append(f"metric {name}: several series for {', '.join(bad[:5])}")
            out.append(s)
        return out

    def _read_scaling(self, targets: list[TargetRef], now: float, result: CycleResult) -> ScalingReads | None:
        """The scaling metrics and the ramps' latest readings in one read, where the source holds
        them as arrays (ArrayMetricsSource: the simulator) and no metric is read per pod; the
        cycle's counts as ``_query_all`` keeps them for queries that all answered. None: query
        one by one (``_query_all``, ``_query_latest``), as the live path always does."""
        policy = self.policy
        if self.pods.columns and not policy.latest_queries:  # the hpa preset: its metric read per pod
            return self._read_pods(targets, now, result)
        if self._arrays is None or self.pods.columns or not policy.queries:
            return None
        params = policy.params
        reads = self._arrays.read_scaling(policy.queries, policy.latest_queries, targets, now, params.stale_after_s,
                                          params.metric_nonnegative, params.metric_implausible_above)
        if reads is None:
            return None
        result.queries += len(policy.queries)
        result.answered.extend(self._query_keys)
        if self.keeps_results:
            missing = np.count_nonzero(~reads.present & result.view.exists[:, None], axis=0).tolist()
            result.missing.update((name, (expr, count)) for name, expr, count in
                                  zip(params.metric_names, policy.queries, missing))
        return reads

    def _read_pods(self, targets: list[TargetRef], now: float, result: CycleResult) -> ScalingReads | None:
        """The ``hpa`` preset's one metric and its pods in one read (PodReader.read_stacked: the
        pods where the simulated cluster keeps them), the cycle's counts as ``_query_all`` keeps
        them for a metric read per pod. None: query and read as before (``_query_all``, PodReader.read)."""
        reads = self.pods.read_stacked(targets, now)
        if reads is not None:
            result.queries += len(self.policy.queries)
            result.answered.extend(self._query_keys)
        return reads

    def _latest_read(self, reads: ScalingReads, result: CycleResult) -> np.ndarray | None:
        """``_query_latest``'s (N, M) readings from ``reads``, its counts kept as it keeps them."""
        result.queries += len(self._latest_answered)
        result.answered.extend(self._latest_answered)
        return reads.latest

    def _query_latest(self, targets: list[TargetRef], now: float, result: CycleResult) -> np.ndarray | None:
        """(N, M) the ramps' latest readings (``ramp.latest``), NaN where a metric has none or its
        sample is not usable (missing, stale, non-finite, negative, implausible); None when no ramp has one.
        A failed query leaves its column NaN: that ramp uses its window's slope this cycle."""
        exprs = self.policy.latest_queries
        if not exprs:
            return None
        n, m = len(targets), len(exprs)
        got = {}
        for j, (name, expr) in enumerate(zip(self.policy.params.metric_names, exprs)):
            if expr is None:
                continue
            result.queries += 1
            try:
                got[j] = self.metrics.query(expr, targets, now)
            except MetricsUnavailable as exc:
                result.errors.append(f"metric {name} (ramp latest): {exc}")
                result.unavailable[self._latest_keys[j]] = (expr, result.errors[-1])
                continue
            result.answered.append(self._latest_keys[j])
        params = self.policy.params
        return read_signal_fast(*_latest_columns(got, n, m), params.stale_after_s, params.metric_nonnegative,
                                params.metric_implausible_above).values

    def _apply(self, action: Action, result: CycleResult) -> None:
        error, _ = apply_with_retries(self.cluster.apply, action, self.retry, self._monotonic, self._sleep)
        if error is None:
            result.actions.append(action)
            if self._refused_said:  # a refusal was said: a later one of this action is news again
                self._refused_said.forget((action.target, action.kind.word))
            return
        key = (action.target, action.kind.word)
        result.failed.append(FailedAction(action.target, f"{error.kind}: {error}", action.kind.word))
        if error.kind == "permanent":
            self._refused_said.keep(result.targets)
            if self._refused_said.news(key, str(error)):
                self._say_refused(action, error)

    def _apply_scales(self, actions: list[Action], result: CycleResult) -> None:
        """Send scale ``actions`` in one call (BatchScaler): those applied join the cycle's, as
        ``_apply`` of each adds them; those handed back go through ``_apply`` one by one, after."""
        left = self._batch.apply_scales(actions)
        if not left and not result.actions:  # the common cycle: the cycle's actions are these, as they came
            result.actions = actions
            applied = actions
        else:
            applied = actions if not left else [a for a in actions if all(a is not b for b in left)]
            result.actions.extend(applied)
        if self._refused_said:  # a refusal was said: a later one of these actions is news again
            for a in applied:
                self._refused_said.forget((a.target, a.kind.word))
        for action in left:
            self._apply(action, result)

    def _say_refused(self, action: Action, error: Exception) -> None:
        """A Warning Event ActionRefused on the target, once per action kind and refusal: a 403, 404
        or 422 comes back at every cycle that decides the action again (each also counted in
        setpoint_action_failures_total and logged)."""
        emit_event(self._events, action.target, "ActionRefused",
                   f"{self.policy.name}: {action.kind.word} refused by the cluster: {error}; decided again at each "
                   "cycle, this Event not repeated until the refusal changes", warning=True)

    def _commit(self, targets: list[TargetRef], decision: Decision | None, now: float, result: CycleResult) -> None:
        """Remember what happened, not what was decided: scale events, budget use, verification
        windows and revision memory only for the actions that were applied (none under a
        rehearsal). The durable health state was saved with every action charged before they
        went out (the reservation); when one did not go out, the state without it is written
        now (the release), else the next cycle's save does it."""
        applied = [] if self.rehearsal else result.actions
        if self.external is not None:
            for a in applied:
                if a.kind is ActionKind.SCALE and a.replicas is not None:
                    self.external.wrote(a.target, a.replicas)
                elif a.kind in (ActionKind.ROLLING_RESTART, ActionKind.ROLLBACK):  # a revision of its own
                    self.external.released(a.target)
        if decision is not None:  # a health-only cycle leaves the scaling state as it is
            self._commit_scaling(targets, decision, result)
            if self._events_retry and self._saves_events and self._events_failed_at != now:
                self._save_scale_events(targets, now, result)  # a scale refused (its event taken back), a failed write
        healing = result.healing
        if healing is None or self._health_state is not healing.state:  # a failed reservation reverted it
            return
        done, held, pods = self._applied_rows(targets, applied)
        restarted = _restarted(healing.pod_keys, pods)
        self._health_state = healing.state_after(done, restarted, held)
        if self.state_store is not None and self._health_state is not healing.state:
            self._save_if_changed(targets, now, result)

    def _applied_rows(self, targets: list[TargetRef], applied: list[Action]
                      ) -> tuple[np.ndarray, np.ndarray, set[str]]:
        """For the health state: (N,) bool the targets an ``applied`` action other than a hold
        went to, (N,) bool those a pause or resume went to, and the pods restarted ("ns/pod")."""
        row = self._row_of(targets) if applied else {}
        done = np.zeros(len(targets), bool)
        held = np.zeros(len(targets), bool)  # a pause / resume went out
        pods: set[str] = set()
        for a in applied:
            i = row[a.target]
            if a.kind in HOLD:
                held[i] = True
                continue
            done[i] = True
            if a.kind is ActionKind.RESTART_POD:
                pods.add(f"{a.target.namespace}/{a.pod}")
        return done, held, pods

    def _commit_scaling(self, targets: list[TargetRef], decision: Decision, result: CycleResult) -> None:
        """The scaling state after ``decision``: its scale events for the scale actions applied
        so far (none under a rehearsal), at the counts they set. Once per cycle."""
        if result.scaling_committed:
            return
        result.scaling_committed = True
        applied = [] if self.rehearsal else result.actions
        if not isinstance(applied, ScaleActions):  # (a ScaleActions holds scales only)
            applied = [a for a in applied if a.kind is ActionKind.SCALE]
        if self._proposed_all(decision, applied):  # the common cycle: the decision's own actions, each applied
            self._scaling.commit(decision, True, None)
            return
        scaled = np.zeros(len(targets), bool)
        replicas = np.asarray(decision.desired, dtype=np.float64).copy()
        if isinstance(applied, ScaleActions) and applied.targets is targets:  # rows of ``targets`` already
            scaled[applied.rows], replicas[applied.rows] = True, applied.replicas
        else:
            row = self._row_of(targets) if applied else {}
            for a in applied:
                scaled[row[a.target]], replicas[row[a.target]] = True, a.replicas
        self._scaling.commit(decision, scaled, replicas)

    def _proposed_all(self, decision: Decision, applied: list[Action]) -> bool:
        """``applied`` are the scale actions ``_scaling_actions`` made of ``decision``, every one
        of them, and they cover every row whose desired count changed: committing every change
        to desired records the same scale events, without the per-action row lookups (and in
        place, without a commit kernel call of its own: DecisionWorkspace.commit)."""
        proposed = self._proposed
        if proposed is None or proposed[0] is not decision:
            return False
        return applied is proposed[1] or (len(applied) == len(proposed[1])  # as proposed, or the same objects
                                          and all(a is b for a, b in zip(applied, proposed[1])))

    def _row_of(self, targets: list[TargetRef]) -> dict[TargetRef, int]:
        """{target: row}, kept while the target list is the same (a cycle's commit looks up only
        its actions' targets; hashing every target each cycle was a large part of a big cycle)."""
        key = tuple(targets)
        if self._rows_cache[0] != key:
            self._rows_cache = (key, {t: i for i, t in enumerate(key)})
        return self._rows_cache[1]

    def _read_resume_annotations(self, view: ClusterView, targets: list[TargetRef]) -> None:
        """A new value of the resume annotation (``setpoint resume``) re-arms that target. The values
        of workloads no longer among ``targets`` are dropped, as their health state is (a workload
        that comes back is a first sight); kept, every workload ever selected stayed.

        Statuses of the same workloads with the same annotations as last time, the values as that
        read left them and none re-armed by it, read the same (each value what is remembered): skipped."""
        annotated = list(map(_ANNOTATED, view.statuses))
        if not self._resume_unread(annotated):
            rearmed = False
            for status in view.statuses:
                value = dict(status.annotations).get(RESUME_ANNOTATION, "")
                seen = self._resume_seen.get(status.ref)  # None: first sight (an old value re-arms nothing)
                if seen is not None and seen != value:
                    self.rearm.add(status.ref)
                    rearmed = True
                self._resume_seen[status.ref] = value
            self._resume_read = None if rearmed else (annotated, self._resume_seen, len(self._resume_seen))
        if len(self._resume_seen) > len(targets):  # some left (the common cycle: none)
            present = set(targets)
            self._resume_seen = {t: v for t, v in self._resume_seen.items() if t in present}

    def _resume_unread(self, annotated: list[tuple]) -> bool:
        """The statuses' (ref, annotations) ``annotated`` are those of the last read of the resume
        annotations, which re-armed none, and the values remembered are as it left them
        (``_resume_read``): reading them again would change nothing."""
        last = self._resume_read
        return (last is not None and last[1] is self._resume_seen and last[2] == len(self._resume_seen)
                and last[0] == annotated)

    def _warn(self, target: TargetRef, reason: str, message: str, **extra) -> None:
        """A notice on ``target``: a warning in the log and a Warning Event ``reason``."""
        log.warning(message, extra={"policy": self.policy.name, "target": str(target), **extra})
        emit_event(self._events, target, reason, message, warning=True)

    def _announce_holds(self, healing: HealingDecision, targets: list[TargetRef]) -> None:
        """A Warning Event and a log line when a target stops being healed (a budget spent, a
        verification failed), saying why and what re-arms it; again when a `setpoint resume`
        re-armed it and it was held at once (a budget still spent: the resume did nothing)."""
        rows = np.flatnonzero(healing.held)
        held = {targets[i] for i in rows}
        rearmed = healing.outcome == HealthReason.REARMED
        for i in rows:  # (a target not held now has nothing to say)
            t = targets[i]
            again = bool(rearmed[i]) and t in self._held
            if t not in self._held or again:
                message = held_notice(self.policy.health, healing, self._before_heal[0], i, t, self.policy.name, again)
                self._warn(t, "HealingHeld", message)
        self._held = held

    def _announce_gone(self, healing: HealingDecision, targets: list[TargetRef], view: ClusterView) -> None:
        """A Warning Event and a log line, once per target and revision, when a rollback is called
        for but the known-healthy revision is no longer on the cluster (RollbackTargetGone): said
        each cycle it would flood the Events and logs for as long as the check fires."""
        gone = healing.rollback_gone
        if gone is None:
            return
        rows = np.flatnonzero(gone != "")
        statuses = {s.ref: s for s in view.statuses} if rows.size else {}
        for i in rows:
            t, rev = targets[i], str(gone[i])
            if not self._gone_said.news(t, rev):
                continue
            have = ", ".join(statuses[t].revisions) if t in statuses else "?"
            message = (f"{self.policy.name}: no rollback: revision {rev}, the last known healthy, is no longer on the "
                       f"cluster (its ReplicaSet was deleted, as spec.revisionHistoryLimit trims old ones; revisions "
                       f"left: {have}); revision {healing.state.revisions.current[i]} keeps running: fix forward or roll back by hand")
            self._warn(t, "RollbackTargetGone", message, revision=rev)
        self._gone_said.keep(targets)

    def _say_once_per_episode(self, said: LastSaid, targets: list[TargetRef], healing: HealingDecision,
                              ongoing: np.ndarray, due: np.ndarray, reason: str, message) -> None:
        """The path every per-episode notice takes: a Warning Event ``reason`` and a log line
        (``_warn``) on each target of the rows ``due`` once per episode and revision (``said``
        remembers the revision said), ``message(i, target, revision)`` saying it. An episode lasts
        while its target's row is among ``ongoing`` (rows, ``due`` among them): one that ends and
        comes back is said again. Said each cycle it would flood the Events and logs."""
        for i in due:
            t, rev = targets[i], str(healing.state.revisions.current[i])
            if said.news(t, rev):
                self._warn(t, reason, message(int(i), t, rev), revision=rev)
        said.retain({targets[i] for i in ongoing})

    def _announce_blocked_by_pause(self, healing: HealingDecision, targets: list[TargetRef]) -> None:
        """A Warning Event and a log line, once per target and revision, when a rollback is called
        for but someone else paused the Deployment (RollbackBlockedByPause): the rollback waits for
        the resume. Sent anyway, the cluster refused it at every step (an error log line and an
        action failure every 5 s of a rollout, and SetpointActuationErrors)."""
        def message(i: int, t: TargetRef, rev: str) -> str:
            trigger = healing.record(i, self.policy.name, t.key).trigger or "the escalation ladder"
            to = str(healing.state.revisions.rollback_target[i])
            return (f"{self.policy.name}: {trigger} calls for a rollback of revision {rev}"
                    f"{f' to revision {to}' if to else ''}, but the Deployment is paused (spec.paused, not by "
                    f"setpoint): a rollback would not progress, so none is sent; `kubectl rollout resume "
                    f"deployment/{t.name} -n {t.namespace}` and setpoint rolls it back at its next cycle")

        blocked = np.flatnonzero(healing.reason == HealthReason.ROLLBACK_BLOCKED_BY_PAUSE)
        # said again if it comes back (paused anew)
        self._say_once_per_episode(self._paused_said, targets, healing, blocked, blocked, "RollbackBlockedByPause",
                                   message)

    def _announce_restart_waits(self, healing: HealingDecision, targets: list[TargetRef], now: float) -> None:
        """A Warning Event and a log line, once per target and revision, when a restart has waited
        for a rollout for ``rollout_wait_s`` (RestartWaitsForRollout). A rollout whose new pods never
        become Ready (a crash-looping release, a StatefulSet's stuck update, a canary's pod at or
        above a StatefulSet's partition) or that someone paused does not end by itself, and keeps
        every restart off: the target waited with no word. (A partitioned rollout whose pods are
        all updated is no rollout: its restarts go ahead.)"""
        waiting = np.flatnonzero(healing.reason == HealthReason.ROLLOUT_IN_PROGRESS)
        since = self._restart_waits_since
        self._restart_waits_since = {targets[i]: since.get(targets[i], now) for i in waiting}
        waited = np.array([now - self._restart_waits_since[targets[i]] for i in waiting], dtype=np.float64)
        due = waiting[waited >= self.policy.health.rollout_wait_s]

        def message(i: int, t: TargetRef, rev: str) -> str:
            trigger = healing.record(i, self.policy.name, t.key).trigger or "a check"
            ref = f"{t.kind.lower()}/{t.name} -n {t.namespace}"
            held = (f"is held at a partition whose pods at or above it are not all updated does not end by itself: "
                    f"`kubectl rollout undo {ref}` (the StatefulSet then waits for the release's pods that are not "
                    f"Ready, which setpoint restarts: they come back on the restored revision)"
                    if t.kind == "StatefulSet" else
                    f"is paused does not end by itself: `kubectl rollout undo {ref}` (or `rollout resume`)")
            return (f"{self.policy.name}: {trigger} calls for a restart, but it has waited "
                    f"{(now - self._restart_waits_since[t]) / 60:.0f} min for the rollout of revision {rev} to end: "
                    f"setpoint restarts nothing while a rollout runs, and one whose new pods never become Ready (a "
                    f"crash-looping release) or that {held}, or fix the release")

        # said again if a restart waits anew
        self._say_once_per_episode(self._rollout_wait_said, targets, healing, waiting, due, "RestartWaitsForRollout",
                                   message)

    def _announce_partitioned_refusal(self, healing: HealingDecision, targets: list[TargetRef],
                                      view: ClusterView) -> None:
        """A Warning Event and a log line, once per target and revision, when a rolling restart of a
        StatefulSet held at a partition is refused (RollingRestartPartitioned): it would be a new
        revision for the pods at or above the partition only, replacing the canary's release. The
        refusal holds for as long as the partition does; records and status said it, the Events
        (what an on-call watches) did not."""
        def message(i: int, t: TargetRef, rev: str) -> str:
            trigger = healing.record(i, self.policy.name, t.key).trigger or "the escalation ladder"
            ref = f"statefulset/{t.name} -n {t.namespace}"
            held_at = next((s.partition for s in view.statuses if s.ref == t), 0)  # 0: a source without statuses
            at = f"partition {held_at}" if held_at else "a partition"
            return (f"{self.policy.name}: {trigger} calls for a rolling restart, but the StatefulSet is held at "
                    f"{at} (spec.updateStrategy.rollingUpdate.partition): a rolling restart would be a new "
                    f"revision for the pods at or above it only, replacing the canary's revision {rev}, so none is "
                    f"sent (a restart-pod still goes ahead: a pod comes back on its ordinal's revision); end the "
                    f"canary with `kubectl rollout undo {ref}`")

        refused = np.flatnonzero(healing.reason == HealthReason.ROLLING_RESTART_PARTITIONED)
        # said again if it comes back (a new refusal after the check cleared, or another revision)
        self._say_once_per_episode(self._partitioned_said, targets, healing, refused, refused,
                                   "RollingRestartPartitioned", message)

    def _announce_revision_worse(self, healing: HealingDecision, targets: list[TargetRef], view: ClusterView) -> None:
        """A Warning Event RevisionWorseRecorded and a log line, once per target and revision, when a
        record revision check judges the new revision worse (a StatefulSet's canary, a Deployment's
        new ReplicaSet): the verdict is the news, nothing is done about it; said again if it comes
        back (a new revision judged worse)."""
        worse = healing.revision_recorded
        if worse is None:
            return
        rows = np.flatnonzero(worse)
        if rows.size == 0:  # the common cycle: nothing to say, no statuses map to build
            self._worse_said.retain(set())
            return
        statuses = {s.ref: s for s in view.statuses}
        self._say_once_per_episode(
            self._worse_said, targets, healing, rows, rows, "RevisionWorseRecorded",
            lambda i, t, rev: revision_worse_notice(self.policy.health, healing, i, statuses.get(t), t,
                                                    self.policy.name))

    def _announce_revision_accepted(self, healing: HealingDecision, targets: list[TargetRef]) -> None:
        """A Normal Event RevisionWorseAccepted and a log line, once per target and revision, when the
        target's setpoint.io/accept-revision annotation accepts the revision a record check judged
        worse: from then on it is neither said worse nor held (the SRE's decision, on the record)."""
        accepted = healing.revision_accepted
        rows = np.flatnonzero(accepted) if accepted is not None else ()
        for i in rows:
            t, rev = targets[i], str(healing.state.revisions.current[i])
            if self._accepted_said.news(t, rev):
                message = revision_accepted_notice(self.policy.health, healing, int(i), t, self.policy.name)
                log.info(message, extra={"policy": self.policy.name, "target": str(t), "revision": rev})
                emit_event(self._events, t, "RevisionWorseAccepted", message)
        self._accepted_said.retain({targets[i] for i in rows})

    def _announce_no_history(self, view: ClusterView, targets: list[TargetRef]) -> None:
        """A Warning Event and a log line, once per target (again if it changes back), when a
        policy that can roll back governs a Deployment that keeps no old ReplicaSet
        (``spec.revisionHistoryLimit: 0``): said when the controller first sees it, not first
        when a bad release needs the rollback (RollbackTargetGone)."""
        sources = self.policy.health.rollback_sources
        if not sources:
            return
        if not self._history_said and all(s.revision_history_limit != 0 for s in view.statuses):
            return  # the common cycle: nothing to say, nothing said to forget or keep
        for status in view.statuses:
            t = status.ref
            if status.revision_history_limit != 0:
                self._history_said.forget(t)
            elif self._history_said.news(t, "0"):
                message = (f"{self.policy.name}: spec.revisionHistoryLimit is 0: the cluster keeps no old ReplicaSet, "
                           f"so a rollback ({', '.join(sources)}) has no revision to go back to and will not be sent; "
                           f"set revisionHistoryLimit to 1 or more (the default is 10)")
                self._warn(t, "RollbackUnavailable", message)
        self._history_said.keep(targets)

    def _scaling_actions(self, targets: list[TargetRef], view: ClusterView, decision: Decision) -> list[Action] | ScaleActions:
        """A scale action per changed row of an existing target; remembered with ``decision``
        when they are every change it makes (``_proposed_all``)."""
        # one pass over the decision's arrays (Decision.desired and .changed convert or compare the whole array)
        found = scale_rows_fast(decision.norm.desired, decision.current, view.exists, view.spec, decision.reason)
        if not found.scales.shape[1] and found.every:  # no change (most cycles of a steady load): no actions
            self._proposed = (decision, [])
            return []
        # as arrays (the Action objects made only where read: ScaleActions)
        actions = ScaleActions(targets, found.scales, self.policy.name, found.first)
        # remembered when they are every change it makes (each to a whole desired count: a fractional
        # one would be a change the commit records otherwise)
        self._proposed = (decision, actions) if found.every else None
        return actions

    @property
    def rollout_interval_s(self) -> float | None:
        """How often health-only cycles run while a rollout is in progress (``rollout_interval_of``)."""
        return self.rollout_interval_of(self.policy)

    @staticmethod
    def rollout_interval_of(policy: RuntimePolicy) -> float | None:
        """None: never; only a health policy whose rollout interval is shorter than its interval
        has health-only cycles."""
        h = policy.health
        if h is None or h.rollout_interval_s is None or h.rollout_interval_s >= policy.params.interval_s:
            return None
        return h.rollout_interval_s

    def _health_step(self, now: float) -> HealthParams:
        """The health parameters for a step at ``now``: ``interval_s`` is the time since the
        previous health step (at most the interval), so that a revision check counts each
        second's requests once whether cycles come at the interval or faster during a rollout."""
        params = self.policy.health
        step = params.interval_s if self._last_health_at is None else \
            min(max(now - self._last_health_at, 0.0), params.interval_s)
        self._last_health_at = now
        return params if step == params.interval_s else replace(params, interval_s=step)

    def _heal(self, targets: list[TargetRef], view: ClusterView, decision: Decision | None, now: float,
              result: CycleResult) -> list[Action]:
        """The health half of the cycle (``decision`` None: a health-only cycle, scaling holds);
        only the scaling decision while the durable state is unreadable."""
        if self._load_error is not None:
            # the health state's read alone again: not a restart (no warm start, no re-read of the
            # hands-offs and scale events, no checks' history replayed each cycle while it fails)
            self._read_health_state()
        if self._load_error is not None:
            result.errors.append(f"state: {self._load_error}; no health action until it can be read")
            has_scaling = decision is not None and self.policy.params.metrics
            return self._scaling_actions(targets, view, decision) if has_scaling else []
        if self._pending is not None:
            self._apply_restored(targets, now, result)
        self._read_resume_annotations(view, targets)
        params = self._health_step(now)
        hq = HealthQueries(params, self.policy.health_queries, self.policy.revision_queries)
        sent: list[str] = []
        outcomes: dict[str, tuple[str, str | None]] = {}
        self._laps.lap("decide")
        hobs = observe_health(hq, self.metrics, targets, view, now, result.errors, decision, sent, outcomes,
                              result.health_missing, result.withheld, self._statuses_read)
        self._laps.lap("health queries")
        hobs = self._with_check_history(targets, hobs, now, result)
        self._laps.lap("checks' history")
        for key, (expr, line) in outcomes.items():
            if line is None:
                result.answered.append(key)
            else:
                result.unavailable[key] = (expr, line)
        result.queries += len(sent)  # beside the metrics': their failures are counted as metrics errors too
        # (the common cycle: no target to re-arm, no pass over the targets)
        rearm = np.array([t in self.rearm for t in targets], dtype=bool) if self.rearm else np.zeros(len(targets), bool)
        self._before_heal = (self._health_state, set(self.rearm))
        healing = heal(params, hobs, self._health_state, now,
                       scaling=decision if self.policy.params.metrics else None, rearm_rows=rearm)
        if self.rearm:
            self.rearm -= set(targets)
        result.healing = healing
        self._health_state = healing.state
        self._announce_holds(healing, targets)
        self._announce_gone(healing, targets, view)
        self._announce_blocked_by_pause(healing, targets)
        self._announce_restart_waits(healing, targets, now)
        self._announce_partitioned_refusal(healing, targets, view)
        self._announce_revision_worse(healing, targets, view)
        self._announce_revision_accepted(healing, targets)
        self._announce_no_history(view, targets)
        return health_actions(healing, targets, view.exists, self.policy.name)

    def _with_check_history(self, targets: list[TargetRef], hobs, now: float, result: CycleResult):
        """``hobs`` with the checks' history of the targets not seen since the start (or the last
        ``restore()``): their workload checks' rows replayed from ``warm_from`` (their ``for``
        already held, as Prometheus restores its alerts'), and when a check last fired there, for
        a revision's clean time on first sight (controller/runtime/check_history.py)."""
        params = self.policy.health
        if self.warm_from is None or not len(params.workload_columns):
            return hobs
        replayed = self._checks_replayed
        todo = [i for i, t in enumerate(targets) if t not in replayed]
        if len(replayed) + len(todo) != len(targets):  # some left: one that comes back is seen afresh
            replayed = {t for t in targets if t in replayed}
        self._checks_replayed = replayed | {targets[i] for i in todo}
        if not todo:
            return hobs
        from controller.runtime.check_history import check_history

        rows = np.asarray(todo, dtype=np.int64)
        history = check_history(params, self.policy.health_queries, self.warm_from, [targets[i] for i in todo], now)
        extra = {"policy": self.policy.name, "targets": len(rows)}
        if history.table is None:
            log.warning(checks_history_unavailable_line(history.error, len(rows)), extra=extra)
        else:
            self._health_state = replace(self._health_state,
                                         workload=self._health_state.workload.put(rows, history.table))
            log.info(checks_history_line(len(rows), history.window_s, history.ticks), extra=extra)
        for i, k in enumerate(todo):
            result.check_history[targets[k].key] = history.record(i)
        fired = np.full(len(targets), np.nan)
        fired[rows] = history.fired_until
        return replace(hobs, fired_until=fired)

    def _resolve(self, now: float) -> list[TargetRef]:
        """The workloads this policy selects and governs: those another policy governs already
        are skipped, said once each (a warning, and a PolicyConflict Event on the workload)."""
        targets = self.cluster.resolve(self.policy.selector)
        if self.hpa_guard is None and self.claims is None:  # a simulation or replay: every target governed
            if self.left_alone:
                self.left_alone = {}
            return targets
        self.left_alone = {}
        if self.hpa_guard is not None:
            targets = self.hpa_guard.filter(targets, self.policy.selector.namespace,
                                            lambda t, reason, message: emit_event(self._events, t, reason, message,
                                                                                 warning=True))
            if not self.rehearsal:
                self.left_alone = {t.key: f"HorizontalPodAutoscaler {t.namespace}/{hpa} scales it" if hpa.name else
                                   f"an HPA the failing list does not show scales it ({hpa.writer} undid a write)"
                                   for t, hpa in self.hpa_guard.scaled_by.items()}
        if self.claims is None:
            return targets
        roles = claim_roles(self.policy)
        targets, taken = self.claims.claim(self.policy.name, targets, now, self.policy.params.interval_s, roles)
        for target, owner in taken.items():
            if self._taken_said.get(target) != owner:
                both = set(roles) & set(self.claims.roles_of(owner, target))
                why = ("two policies would scale it against each other" if SCALE in both
                       else "two policies would heal it twice: restarts and rollbacks over each other's budgets")
                message = (f"{self.policy.name} selects {target.kind} {target.key}, which policy {owner} already "
                           f"governs: {self.policy.name} leaves it alone ({why}); narrow one of the two selectors")
                self._warn(target, "PolicyConflict", message, governed_by=owner)
        self._taken_said = taken
        self.contested = len(taken)
        self.left_alone.update({t.key: f"policy {owner} governs it" for t, owner in taken.items()})
        return targets

    def cycle(self, now: float) -> CycleResult:
        """One reconcile at ``now`` (UTC epoch seconds). A failing target never stops the others."""
        started = time.perf_counter()
        laps = self._laps = CyclePhases() if self.times_phases else NO_PHASES
        targets = self._resolve(now)
        laps.lap("workloads")
        result = CycleResult(self.policy.name, now, targets, None, None,
                             metric_names=self.policy.params.metric_names)
        result.contested = self.contested
        result.hpa_scaled = self.hpa_guard.scaled if self.hpa_guard is not None else 0
        if self.left_alone:  # (the result's own empty dict otherwise)
            result.left_alone = dict(self.left_alone)
        if self._warm_due and self.warm_from is not None and self.policy.params.metrics:
            if targets:
                self._warm_start(targets, now, result)
            else:
                self._ran_without_targets = True
            laps.lap("warm start")
        with_pods = self._with_pods
        view = self.cluster.observe(targets, with_pods=with_pods).check_rows(len(targets))
        result.view = view
        laps.lap("pods")
        if result.warm_start is not None and self.events_store is None:  # a store keeps the old leader's steps
            self._events_since_replay(targets, view, now, result.warm_start)
        held = self._watch_external(targets, view, now, result)
        if self.hpa_guard is not None and self.external is not None and self.external.autoscaled:
            self.hpa_guard.reverted(self.external.autoscaled)
        laps.lap("state")
        reads = self._read_scaling(targets, now, result)
        if reads is None:  # a query at a time (Samples), with the metrics read per pod
            samples = self._query_all(targets, now, result)
            pods, per_pod = self.pods.read(targets, view, now, result.errors, self.policy.params.metric_names)
            samples = [per_pod[j] if j in per_pod else s if s is not None else Samples.missing(len(targets))
                       for j, s in enumerate(samples)]
            values, present, age = _stack(samples, len(targets))
        else:
            pods, values, present, age = reads.pods, reads.values, reads.present, reads.age_s
        laps.lap("metric queries")
        result.startup = self.startups.observe(self.policy.params, self.cluster, targets, view, now, result.errors,
                                               with_pods)
        startup_s = None if result.startup is None else result.startup.estimate.delay_s
        result.withheld = self.startups.withheld(self.policy.params, self.cluster, targets, view, now, result.errors,
                                                 with_pods, startup_s)
        laps.lap("pod start-ups")
        obs = Observation(current=view.spec, ready=view.ready, status=view.status, values=values,
                          present=present, sample_age_s=age, pods=pods, startup_s=startup_s,
                          latest=self._query_latest(targets, now, result) if reads is None else self._latest_read(reads, result),
                          withheld=result.withheld)
        laps.lap("metric queries")
        self._carry_state_over(targets)
        if self._joining:  # targets new since the warm start: their rows from the history too
            self._warm_joiners(targets, view, now, result)
            laps.lap("warm start")
        if self._events_due and targets and not self.rehearsal:  # after the warm start: merged with what it rebuilt
            self._read_scale_events(targets, now, result)
            laps.lap("state")
        decision = self._scaling.decide(self.policy.params, obs, now, copy=self.keeps_results)
        laps.lap("decide")
        if held is not None and held.any():  # someone else set their replicas: kept as set, or as a floor
            wanted = decision.norm.desired
            decision = hands_off(decision, held, self.external.floors(self._row_of(targets), len(targets)))
            self._below_demand(targets, held, wanted, decision.norm.desired, result)
        result.decision = decision
        if self.keeps_results:
            result.implausible = _implausible_counts(result.missing, decision, view.exists)
        try:
            self._act(targets, view, decision, now, result)
        except Exception:  # the decision was made: remember it, with the changes that went out before the failure
            self._commit_scaling(targets, decision, result)  # (in place, the state has moved with it: same either way)
            raise
        laps.lap("act")
        result.phases = laps.spent
        return self._finish(result, started)

    def _act(self, targets: list[TargetRef], view: ClusterView, decision: Decision, now: float,
             result: CycleResult) -> None:
        """The cycle after its scaling decision: health, actions, conditions, commit."""
        if self.policy.health is None:
            actions = self._scaling_actions(targets, view, decision)
        else:  # arbitration merges the scaling decision with the health proposals: one action per target
            actions = self._without_held_scales(self._heal(targets, view, decision, now, result), result)
        if self.state_store is not None and result.healing is not None:
            actions = self._save_before_acting(targets, now, actions, result)
        self._save_scale_events_ahead(targets, view, now, actions, result)
        self._laps.lap("state")
        if self.policy.health is None and self._batch is not None and actions:  # scales only
            self._apply_scales(actions, result)
        else:
            for action in actions:
                self._apply(action, result)
        result.rehearsal = self.rehearsal
        if self.with_conditions:
            failed_queries = {name: line.split(": ", 1)[-1]  # the error, without "metric rps: "
                              for name, key in zip(self.policy.params.metric_names, self._query_keys)
                              if (line := result.unavailable.get(key, (None, None))[1])}
            result.conditions = scaling_conditions(self.policy.params, decision, targets, view.exists,
                                                   result.actions, result.failed, failed_queries)
        self._commit(targets, decision, now, result)

    def _watch_external(self, targets: list[TargetRef], view: ClusterView, now: float,
                        result: CycleResult) -> np.ndarray | None:
        """(N,) bool, the targets whose replicas someone else set and that are left alone this
        cycle (controller/runtime/external_scale.py); None when the cluster cannot tell."""
        if self.external is None:
            return None
        if self._hands_off_due and not self.rehearsal:
            self._read_hands_offs(result)
        held = self.external.observe(
            targets, view, now, lambda t, reason, message, warning: emit_event(self._events, t, reason, message, warning))
        if self.hands_off_store is not None and not self._hands_off_due and not self.rehearsal:
            self._save_hands_offs(now, result)
        result.watches_external = True
        present = set(targets)
        result.hands_off = {t: c for t, c in self.external.hands_off.items() if t in present}
        result.external_changes = list(self.external.changes)
        result.fights = {t: by for t, by in self.external.fights.items() if t in present}
        return held

    def _below_demand(self, targets: list[TargetRef], held: np.ndarray, wanted: np.ndarray, kept: np.ndarray,
                      result: CycleResult) -> None:
        """The held targets the policy would scale above the count kept ((N,) arrays of replicas):
        ``result.short_of_demand`` target -> the count it would set, said once per hands-off."""
        for i in np.flatnonzero(held & (np.asarray(wanted) > np.asarray(kept))).tolist():
            result.short_of_demand[targets[i]] = int(wanted[i])
            self.external.below_demand(targets[i], int(wanted[i]), lambda t, reason, message, warning: emit_event(
                self._events, t, reason, message, warning))

    def _read_hands_offs(self, result: CycleResult) -> None:
        """Read the hands-offs kept on the cluster (once per start or leadership; a failed read is
        retried next cycle, and nothing is saved over them until one succeeds)."""
        try:
            raw = self.hands_off_store.load(self.policy.name, hands_off_state.PART)
        except StateStoreError as exc:
            result.errors.append(f"state: hands-offs: {exc}; read again next cycle")
            return
        state, problems = hands_off_state.decode(raw)
        result.state_problems.extend(problems)
        self.external.stored(state)
        self._hands_off_due = False
        self._hands_off_saved = None if problems else state  # a repaired payload is written back

    def _save_hands_offs(self, now: float, result: CycleResult) -> None:
        """Write the hands-offs and reverts when they changed (a hands-off started, ended or was handed
        back; a revert); a failed write is retried next cycle."""
        state = self.external.durable(now)
        if state == self._hands_off_saved:
            return
        payload = hands_off_state.encode(self.policy.name, state, now)
        if self._save_part(self.hands_off_store, hands_off_state.PART, payload, "hands-offs", result):
            self._hands_off_saved = state

    def _save_part(self, store: StateStore, part: str, payload: dict, what: str, result: CycleResult) -> bool:
        """Save one durable ``part`` of the policy's state; a failure is reported in the cycle's
        errors (``state: WHAT: ...; retried next cycle``) and False returned, never raised."""
        try:
            store.save(self.policy.name, payload, part)
        except StateStoreError as exc:
            result.errors.append(f"state: {what}: {exc}; retried next cycle")
            return False
        return True

    @property
    def _saves_events(self) -> bool:
        """The scale events are written: a store, not a rehearsal, and what it holds was read."""
        return self.events_store is not None and not self.rehearsal and not self._events_due

    def _read_scale_events(self, targets: list[TargetRef], now: float, result: CycleResult) -> None:
        """Read the scale events kept on the cluster and merge them into the rate limits' history
        (once per start or leadership, after the warm start). A failed read is retried next cycle
        (scaling goes on with the history in memory; nothing is written over the unread record); an
        unreadable payload or entry is ignored and named."""
        try:
            raw = self.events_store.load(self.policy.name, scale_events_state.PART)
        except StateStoreError as exc:
            result.errors.append(f"state: scale events: {exc}; read again next cycle")
            self._events_unread = True
            return
        stored, problems = scale_events_state.decode(raw)
        result.state_problems.extend(problems)
        self._events_due = False
        self._merge_scale_events(targets, stored, now)
        self._events_saved = None if problems else stored  # a repaired payload is written at the next save
        # events applied while the record could not be read are in memory only: written now
        self._events_retry, self._events_unread = self._events_unread, False

    def _merge_scale_events(self, targets: list[TargetRef], stored: dict[str, scale_events_state.StoredEvents],
                            now: float) -> None:
        """The rate limits' history of ``targets`` as the union of what is in memory (the warm
        start's, or this process's own) and ``stored`` (core/scaling/event_merge.py)."""
        keys = [scale_events_state.target_key(t.namespace, t.kind, t.name) for t in targets]
        if not any(k in stored for k in keys):
            return
        params, state = self.policy.params, self._state
        norm, tolerance_s = state.norm, max(params.interval_s, 1.0)
        merged = {}
        for side, rules in (("up", params.scale_up), ("down", params.scale_down)):
            changes, times = getattr(norm, f"{side}_changes"), getattr(norm, f"{side}_times")
            kept_changes, kept_times = scale_events_state.as_arrays(
                [getattr(stored[k], side) if k in stored else () for k in keys])
            if rules.longest_period_s > 0 and kept_times.size:
                changes, times = merge_histories(changes, times, kept_changes, kept_times, now,
                                                 rules.longest_period_s, tolerance_s)
            merged[f"{side}_changes"], merged[f"{side}_times"] = changes, times
        self._state = replace(state, norm=replace(norm, **merged))

    def _scale_events_now(self, targets: list[TargetRef], now: float,
                          planned: dict[int, float] | None = None) -> dict[str, scale_events_state.StoredEvents]:
        """The events of each target inside its direction's longest period, as stored, with the
        ``planned`` changes (row -> replicas added, negative: removed) at ``now``."""
        params = self.policy.params
        up_c, up_t, down_c, down_t = self._scaling.events()
        ups = scale_events_state.events_of(up_c, up_t, now - params.scale_up.longest_period_s)
        downs = scale_events_state.events_of(down_c, down_t, now - params.scale_down.longest_period_s)
        for i, change in (planned or {}).items():
            (ups if change > 0 else downs)[i].append((now, int(round(abs(change)))))
        return {scale_events_state.target_key(t.namespace, t.kind, t.name): scale_events_state.StoredEvents(
                    tuple(sorted(ups[i])), tuple(sorted(downs[i])))
                for i, t in enumerate(targets) if ups[i] or downs[i]}

    def _save_scale_events(self, targets: list[TargetRef], now: float, result: CycleResult,
                           planned: dict[int, float] | None = None) -> None:
        """Write the scale events (with ``planned``) when they differ from what is stored; a
        failed write is reported and tried again after the next cycle's commit, never holds a scale."""
        events = self._scale_events_now(targets, now, planned)
        if events == self._events_saved:
            self._events_retry = bool(planned)  # compared again after the commit (a scale may be refused)
            return
        if not self._save_part(self.events_store, scale_events_state.PART,
                               scale_events_state.encode(self.policy.name, events, now), "scale events", result):
            self._events_retry, self._events_failed_at = True, now
            return
        self._events_saved, self._events_retry = events, bool(planned)

    def _save_scale_events_ahead(self, targets: list[TargetRef], view: ClusterView, now: float,
                                 actions: list[Action], result: CycleResult) -> None:
        """Write the scale events with the changes ``actions`` are about to make, before they go out
        (write-ahead: a crash right after a scale must not let the next leader take that step
        again). A failed write is reported and the scales go out anyway."""
        if not self._saves_events:
            return
        row, spec = self._row_of(targets), view.spec
        planned = {row[a.target]: a.replicas - float(spec[row[a.target]]) for a in actions
                   if a.kind is ActionKind.SCALE and a.replicas is not None}
        planned = {i: c for i, c in planned.items() if c}
        if planned:
            self._save_scale_events(targets, now, result, planned)

    def _without_held_scales(self, actions: list[Action], result: CycleResult) -> list[Action]:
        """The actions without a scale of a target under hands-off (a health scale-up writes spec.replicas
        too) that would leave it other than kept: any, or one below its floor; a rehearsal holds nothing."""
        if not result.hands_off or self.rehearsal:
            return actions
        return [a for a in actions if not (a.kind is ActionKind.SCALE and a.target in result.hands_off
                                           and result.hands_off[a.target].holds(a.replicas))]

    def _finish(self, result: CycleResult, started: float) -> CycleResult:
        view = result.view
        self.rollout_in_progress = self.policy.health is not None and bool(np.any(view.rollout & view.exists))
        result.duration_s = time.perf_counter() - started
        self._laps = NO_PHASES  # a health-only cycle's laps go nowhere (not into this result's phases)
        if self.on_cycle:
            self.on_cycle(result)
        return result

    def health_cycle(self, now: float) -> CycleResult:
        """The health side alone at ``now``, between full cycles while a rollout is in progress
        (``rollout_interval_s``): revision checks, rollbacks and the other health actions, with
        the scaling side holding (no scaling decision, the scaling state untouched: scaling
        behaves as if this cycle had not happened). ``decision`` is None in the result."""
        started = time.perf_counter()
        targets = self._resolve(now)
        result = CycleResult(self.policy.name, now, targets, None, None, metric_names=self.policy.params.metric_names)
        result.contested = self.contested
        view = self.cluster.observe(targets, with_pods=True).check_rows(len(targets))
        result.view = view
        self._watch_external(targets, view, now, result)
        self._carry_state_over(targets)
        actions = self._without_held_scales(self._heal(targets, view, None, now, result), result)
        if self.state_store is not None and result.healing is not None:
            actions = self._save_before_acting(targets, now, actions, result)
        for action in actions:
            self._apply(action, result)
        result.rehearsal = self.rehearsal
        self._commit(targets, None, now, result)
        return self._finish(result, started)


def checks_history_line(targets: int, window_s: float, ticks: int) -> str:
    """The log line of a warm start's checks' history replayed for ``targets`` over ``window_s`` (s)."""
    return f"checks' history: {plural(targets, 'target')} replayed over {window_s:.0f}s ({plural(ticks, 'tick')})"


def checks_history_unavailable_line(error: str, targets: int) -> str:
    """The log line when the checks' history of ``targets`` could not be read (``error``: why)."""
    return (f"checks' history unavailable ({error}): the checks of {plural(targets, 'target')} start at OK and a "
            "revision first seen now is not a rollback target before healthyAfter")
