"""One reconcile cycle for one policy: observe, query, decide, act, remember.

The same Reconciler runs live (on APScheduler, wall clock) and in simulation (tick by tick,
simulation clock): only the Cluster and MetricsSource behind it differ. It never reads the
clock itself; ``cycle(now)`` gets the time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from controller.core.decide import Decision, Observation, ScalingState, decide
from controller.core.heal import HealingDecision, HealthState, heal
from controller.core.health_params import HEALTH_REASON_CODES, HealthParams
from controller.core.params import PolicyParams
from controller.errors import ActuationError, ConflictError, MetricsUnavailable
from controller.model import REASON_CODES, RESUME_ANNOTATION, Action, ActionKind, TargetRef
from controller.policy.compile import compile_policy_health
from controller.ports import Cluster, ClusterView, MetricsSource, Samples, TargetSelector
from controller.runtime.healing import HealthQueries, health_actions, observe_health


@dataclass(frozen=True)
class RuntimePolicy:
    """What a reconciler needs from a policy file: compiled parameters, targets and queries.

    ``health`` is None for a scaling-only policy; a health-only policy has no metrics.
    """

    name: str
    params: PolicyParams
    selector: TargetSelector
    queries: tuple[str, ...]  # one PromQL expression per metric, in the order of params.metrics
    health: HealthParams | None = None
    health_queries: tuple[str, ...] = ()  # one per health check, in the order of health.checks
    revision_queries: tuple[tuple[str, ...], ...] = ()  # per revision check: (errors, requests) or (latency,)

    @classmethod
    def of(cls, loaded) -> "RuntimePolicy":
        """From a controller.policy.LoadedPolicy."""
        spec = loaded.model.spec
        queries = tuple(m.query for m in spec.scaling.metrics) if loaded.scales else ()
        health = compile_policy_health(loaded.model)
        checks = spec.health.checks if health is not None else []
        health_queries = tuple(c.query for c in checks if c.scope != "revision")
        revision_queries = tuple((c.query,) if c.query is not None else (c.errors, c.requests)
                                 for c in checks if c.scope == "revision")
        return cls(loaded.name, loaded.params, loaded.targets, queries, health, health_queries, revision_queries)


@dataclass
class CycleResult:
    """What one cycle saw and did. ``decision`` is None when nothing could be decided."""

    policy: str
    now: float
    targets: list[TargetRef]
    view: ClusterView | None
    decision: Decision | None
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queries: int = 0
    failed: list[tuple[TargetRef, str]] = field(default_factory=list)
    duration_s: float = 0.0
    healing: HealingDecision | None = None


def cycle_records(result: CycleResult, metric_names: tuple[str, ...], start_s: float = 0.0) -> list:
    """One DecisionRecord per target of a cycle, with the health record under ``extra["health"]``
    when the policy has health checks; ``at`` is relative to ``start_s``."""
    d = result.decision
    if d is None:
        return []
    keys = [t.key for t in result.targets]
    records = d.records(result.policy, keys, metric_names)
    if result.healing is not None:
        health = result.healing.records(result.policy, keys)
        records = [replace(r, extra={"health": h.to_dict()}) for r, h in zip(records, health)]
    if start_s:
        records = [replace(r, at=r.at - start_s) for r in records]
    return records


def _stack(samples: Sequence[Samples], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, M) values, present and age arrays from one Samples per metric."""
    if not samples:
        return np.zeros((n, 0)), np.zeros((n, 0), bool), np.zeros((n, 0))
    values = np.stack([s.values for s in samples], axis=1)
    present = np.stack([s.present & ~s.conflict for s in samples], axis=1)
    age = np.stack([s.age_s for s in samples], axis=1)
    return values, present, age


class Reconciler:
    """Runs cycles for one policy and keeps its state between them (in memory)."""

    def __init__(self, policy: RuntimePolicy, metrics: MetricsSource, cluster: Cluster,
                 on_cycle: Callable[[CycleResult], None] | None = None, max_conflict_retries: int = 2):
        self.policy = policy
        self.metrics = metrics
        self.cluster = cluster
        self.on_cycle = on_cycle
        self.max_conflict_retries = max_conflict_retries
        self._targets: list[TargetRef] = []
        self._state = ScalingState.empty(0, policy.params)
        self._health_state = HealthState.empty(0, policy.health) if policy.health else None
        self.rearm: set[TargetRef] = set()  # targets to resume (setpoint resume, an annotation)
        self._resume_seen: dict[TargetRef, str] = {}
        self._held: set[TargetRef] = set()

    def _rows_for(self, targets: list[TargetRef]) -> np.ndarray | None:
        """Old row of each new target (-1 if new), or None when the list is unchanged."""
        if targets == self._targets:
            return None
        old = {t: i for i, t in enumerate(self._targets)}
        return np.array([old.get(t, -1) for t in targets], dtype=np.int64)

    def _carry_state_over(self, targets: list[TargetRef]) -> None:
        """Reorder the scaling and health state to a new target list (new targets start empty)."""
        rows = self._rows_for(targets)
        if rows is not None:
            self._state = self._state.take(rows)
            if self._health_state is not None:
                self._health_state = self._health_state.take(rows)
            self._targets = targets

    def _fetch(self, targets: list[TargetRef], now: float) -> list[Samples | Exception]:
        """One request per metric; concurrently when the source can (``query_many``)."""
        exprs = list(self.policy.queries)
        if hasattr(self.metrics, "query_many"):
            return self.metrics.query_many(exprs, targets, now, return_exceptions=True)
        out: list[Samples | Exception] = []
        for expr in exprs:
            try:
                out.append(self.metrics.query(expr, targets, now))
            except MetricsUnavailable as exc:
                out.append(exc)
        return out

    def _query_all(self, targets: list[TargetRef], now: float, result: CycleResult) -> list[Samples]:
        out = []
        result.queries += len(self.policy.queries)
        for name, s in zip(self.policy.params.metric_names, self._fetch(targets, now)):
            if isinstance(s, Exception):  # the whole metric is unknown: it votes against change
                if not isinstance(s, MetricsUnavailable):
                    raise s
                result.errors.append(f"metric {name}: {s}")
                s = Samples.missing(len(targets))
            if s.conflict.any():
                bad = [str(t) for t, c in zip(targets, s.conflict) if c]
                result.errors.append(f"metric {name}: several series for {', '.join(bad[:5])}")
            out.append(s)
        return out

    def _apply(self, action: Action, result: CycleResult) -> None:
        for attempt in range(self.max_conflict_retries + 1):
            try:
                self.cluster.apply(action)
                result.actions.append(action)
                return
            except ConflictError as exc:
                if attempt == self.max_conflict_retries:
                    result.failed.append((action.target, f"conflict: {exc}"))
            except ActuationError as exc:
                result.failed.append((action.target, f"{exc.kind}: {exc}"))
                return

    def _read_resume_annotations(self, view: ClusterView) -> None:
        """A new value of the resume annotation (``setpoint resume``) re-arms that target."""
        for status in view.statuses:
            value = dict(status.annotations).get(RESUME_ANNOTATION, "")
            seen = self._resume_seen.get(status.ref)  # None: first sight (an old value re-arms nothing)
            if seen is not None and seen != value:
                self.rearm.add(status.ref)
            self._resume_seen[status.ref] = value

    def _announce_holds(self, healing: HealingDecision, targets: list[TargetRef]) -> None:
        """An Event when a target stops being healed (budget exhausted, verification failed)."""
        held = {t for t, h in zip(targets, healing.held.tolist()) if h}
        record = getattr(self.cluster, "record_event", None)
        for i, t in enumerate(targets):
            if t in held and t not in self._held and record is not None:
                why = HEALTH_REASON_CODES[int(healing.held_reason[i])] if healing.held_reason[i] >= 0 else "Held"
                try:
                    record(t, "HealingHeld", f"{self.policy.name}: self-healing stopped ({why}); "
                                             f"`setpoint resume {t.namespace}/{t.name}` re-arms it")
                except Exception:  # an Event is best effort
                    pass
        self._held = held

    def cycle(self, now: float) -> CycleResult:
        """One reconcile at ``now`` (UTC epoch seconds). A failing target never stops the others."""
        started = time.perf_counter()
        targets = self.cluster.resolve(self.policy.selector)
        result = CycleResult(self.policy.name, now, targets, None, None)
        view = self.cluster.observe(targets, with_pods=self.policy.health is not None)
        result.view = view
        values, present, age = _stack(self._query_all(targets, now, result), len(targets))
        obs = Observation(current=view.spec, ready=view.ready, status=view.status, values=values,
                          present=present, sample_age_s=age)
        self._carry_state_over(targets)
        decision = decide(self.policy.params, obs, self._state, now)
        result.decision = decision
        if self.policy.health is None:
            actions = [Action(ActionKind.SCALE, targets[i], REASON_CODES[int(decision.reason[i])],
                              replicas=int(decision.desired[i]), from_replicas=int(view.spec[i]),
                              policy=self.policy.name)
                       for i in np.flatnonzero(decision.changed & view.exists)]
        else:  # arbitration merges the scaling decision with the health proposals: one action per target
            self._read_resume_annotations(view)
            hq = HealthQueries(self.policy.health, self.policy.health_queries, self.policy.revision_queries)
            hobs = observe_health(hq, self.metrics, targets, view, now, result.errors, decision)
            rearm = np.array([t in self.rearm for t in targets], dtype=bool)
            healing = heal(self.policy.health, hobs, self._health_state, now,
                           scaling=decision if self.policy.params.metrics else None, rearm_rows=rearm)
            self.rearm -= set(targets)
            result.healing = healing
            self._health_state = healing.state
            self._announce_holds(healing, targets)
            actions = health_actions(healing, targets, view.exists, self.policy.name)
        for action in actions:
            self._apply(action, result)
        self._state = decision.state
        result.duration_s = time.perf_counter() - started
        if self.on_cycle:
            self.on_cycle(result)
        return result
