"""The health half of a reconcile cycle: query the checks, build the health observation from
the observed statuses, run ``heal`` after ``decide``, and say which actions to apply.

Workload-scope checks are queried like scaling metrics (one request per check, series matched
to targets). Pod-scope checks are queried once per check for all pods of the policy, matched
by (namespace, pod) labels, so only the bad pods are acted on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from controller.core.decide import Decision
from controller.core.heal import HealingDecision, HealthObservation
from controller.core.health import PodTable
from controller.core.health_params import HealthParams, Scope
from controller.errors import MetricsUnavailable
from controller.model import Action, TargetRef
from controller.ports import ClusterView, MetricsSource

POD_LABELS = ("namespace", "pod")


@dataclass(frozen=True)
class HealthQueries:
    """One PromQL expression per check, in the order of ``HealthParams.checks``."""

    params: HealthParams
    exprs: tuple[str, ...]


def _query(metrics: MetricsSource, expr: str, refs: Sequence[TargetRef], now: float, labels, errors: list[str],
           name: str):
    """(values (R,), present (R,)) for one check; a failed query is all-missing (never fires)."""
    try:
        s = metrics.query(expr, refs, now, labels=labels) if labels else metrics.query(expr, refs, now)
    except MetricsUnavailable as exc:
        errors.append(f"health check {name}: {exc}")
        return np.full(len(refs), np.nan), np.zeros(len(refs), bool)
    return s.values, s.present & ~s.conflict


def pod_table(view: ClusterView, targets: Sequence[TargetRef]) -> tuple[np.ndarray, list[TargetRef], np.ndarray]:
    """(pod target rows (P,), pod refs (namespace, pod name), ready (P,)) from the statuses."""
    index = {t: i for i, t in enumerate(targets)}
    rows, refs, ready = [], [], []
    for status in view.statuses:
        i = index.get(status.ref)
        if i is None:
            continue
        for pod in status.pods:
            rows.append(i)
            refs.append(TargetRef(status.ref.namespace, pod.name, "Pod"))
            ready.append(bool(pod.ready))
    return np.asarray(rows, dtype=np.int64), refs, np.asarray(ready, dtype=bool)


def overload_signal(view: ClusterView, decision: Decision | None) -> np.ndarray:
    """(N,) bool: the service is overloaded, so slow or unready pods call for capacity, not restarts:
    pods are still starting after a scale-up, or a scaling metric asks for more replicas than
    current (before stabilization, rate limits and max replicas hold it back)."""
    starting = view.ready < view.spec
    if decision is None or decision.proposals.shape[1] == 0:
        return starting
    with np.errstate(invalid="ignore"):
        wants_more = (np.where(decision.valid, decision.proposals, -np.inf).max(axis=1) > view.spec)
    return starting | wants_more


def observe_health(hq: HealthQueries, metrics: MetricsSource, targets: Sequence[TargetRef], view: ClusterView,
                   now: float, errors: list[str], decision: Decision | None = None) -> HealthObservation:
    """Query every check and assemble the observation ``heal`` needs."""
    params, n = hq.params, len(targets)
    c = len(params.checks)
    values, present = np.full((n, c), np.nan), np.zeros((n, c), bool)
    rows, pod_refs, pod_ready = pod_table(view, targets)
    pod_values, pod_present = np.full((len(pod_refs), c), np.nan), np.zeros((len(pod_refs), c), bool)
    for j, (check, expr) in enumerate(zip(params.checks, hq.exprs)):
        if check.scope == Scope.POD:
            if pod_refs:
                pod_values[:, j], pod_present[:, j] = _query(metrics, expr, pod_refs, now, POD_LABELS, errors, check.name)
        else:
            values[:, j], present[:, j] = _query(metrics, expr, targets, now, None, errors, check.name)
    by_ref = {s.ref: s for s in view.statuses}
    revision = [by_ref[t].revision if t in by_ref else "" for t in targets]
    pods = PodTable.of(rows, [f"{r.namespace}/{r.name}" for r in pod_refs], pod_values, pod_present, pod_ready,
                       checks=c)
    return HealthObservation.of(view.spec.astype(np.int64), view.ready.astype(np.int64), values, checks=c,
                                present=present, revision=revision, rollout=view.rollout, pods=pods,
                                overloaded=overload_signal(view, decision))


def health_actions(healing: HealingDecision, targets: Sequence[TargetRef], exists: np.ndarray,
                   policy: str) -> list[Action]:
    """Every action the arbitrated decision asks for (at most one kind per target)."""
    out: list[Action] = []
    for i in np.flatnonzero(healing.changed & exists):
        pods = healing.actions(int(i), targets[i], policy)
        out += [_pod_name_only(a) for a in pods]
    return out


def _pod_name_only(action: Action) -> Action:
    """Pod keys are ``namespace/name``; the cluster wants the pod's name."""
    if action.pod and "/" in action.pod:
        return replace(action, pod=action.pod.split("/", 1)[1])
    return action

