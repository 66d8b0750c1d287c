"""The health half of a reconcile cycle: query the checks, build the health observation from
the observed statuses, run ``heal`` after ``decide``, and say which actions to apply.

Workload-scope checks are queried like scaling metrics (one request per check, series matched
to targets). Pod-scope checks are queried once per check for all pods of the policy, matched
by (namespace, pod) labels, so only the bad pods are acted on. Revision-scope checks are
queried the same way (one series per pod) and summed by revision: the pods of the workload's
current revision against the pods of every older one (the stable revision during a rollout).
A ratio check's per-pod rates (requests/s) times the interval are the requests and errors of
the cycle; a pod without a series adds nothing (missing data never fires).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import numpy as np

from controller.core.scaling.decide import Decision
from controller.core.health.heal import HealingDecision, HealthObservation, HealthState
from controller.core.health.checks import PodTable
from controller.core.health.hung import pods_starting
from controller.core.health.params import HealthParams, HealthReason, Remedy, Scope
from controller.core.health.remediate import Window
from controller.core.health.revision_test import Measure, latency_stats, ratio_stats
from controller.errors import MetricsUnavailable
from controller.model import ACCEPT_REVISION_ANNOTATION, Action, PodStatus, TargetRef, TargetStatus
from controller.runtime.health_columns import HealthPods, StatusColumns
from controller.ports import ClusterView, ConcurrentMetricsSource, MetricsSource

POD_LABELS = ("namespace", "pod")


@dataclass(frozen=True)
class HealthQueries:
    """One PromQL expression per check, in the order of ``HealthParams.checks``."""

    params: HealthParams
    exprs: tuple[str, ...]
    revision_exprs: tuple[tuple[str, ...], ...] = ()  # per revision check: (errors, requests) or (latency,)


class _Job(NamedTuple):
    """One health query of a cycle: its expression, the refs it reads (targets, or pods with
    POD_LABELS), the check it is for, and where its answer goes (a key of observe_health's)."""

    expr: str
    refs: Sequence[TargetRef]
    labels: tuple[str, str] | None
    name: str
    slot: tuple


def _query_all(metrics: MetricsSource, jobs: list[_Job], now: float, errors: list[str],
               sent: list[str] | None = None, outcomes: dict | None = None) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    """Each job's (values (R,), present (R,)) by its slot; a failed query is all-missing (never
    fires). Sent together where the source can (ConcurrentMetricsSource: one query_many for the
    targets' checks, one for the pods'), else one at a time, as a slow Prometheus made a cycle
    wait for each check in turn; what is said of them follows the jobs' order either way.
    ``sent`` collects the expressions sent (setpoint_prometheus_requests_total counts them beside
    the scaling metrics' queries: their failures count in setpoint_errors_total{source="metrics"});
    ``outcomes``: ``health check NAME`` -> (expr, the error line, or None if it answered); a
    check's failure stands over its other queries' answers in the same cycle."""
    got: dict[int, object] = {}
    if isinstance(metrics, ConcurrentMetricsSource):
        groups: dict[tuple, list[int]] = {}
        for k, job in enumerate(jobs):
            groups.setdefault((id(job.refs), job.labels), []).append(k)
        for ks in groups.values():
            first = jobs[ks[0]]
            answers = metrics.query_many([jobs[k].expr for k in ks], first.refs, now, labels=first.labels,
                                         return_exceptions=True)
            got.update(zip(ks, answers))
    out = {}
    for k, job in enumerate(jobs):
        if k not in got:
            try:
                got[k] = metrics.query(job.expr, job.refs, now, labels=job.labels)
            except MetricsUnavailable as exc:
                got[k] = exc
        out[job.slot] = _answer(job, got[k], errors, sent, outcomes)
    return out


def _answer(job: _Job, got, errors: list[str], sent: list[str] | None, outcomes: dict | None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of one job's answer (Samples, or the MetricsUnavailable it failed with),
    its query counted and its failure or answer said as :func:`_query_all` describes."""
    if sent is not None:
        sent.append(job.expr)
    key = f"health check {job.name}"
    if isinstance(got, MetricsUnavailable):
        errors.append(f"{key}: {got}")
        if outcomes is not None and (outcomes.get(key) or (None, None))[1] is None:  # the first failure is said
            outcomes[key] = (job.expr, errors[-1])
        return np.full(len(job.refs), np.nan), np.zeros(len(job.refs), bool)
    if outcomes is not None:
        outcomes.setdefault(key, (job.expr, None))
    return got.values, got.present & ~got.conflict


def pod_table(view: ClusterView, targets: Sequence[TargetRef]) -> tuple[np.ndarray, list[TargetRef], np.ndarray]:
    """(pod target rows (P,), pod refs (namespace, pod name), ready (P,)) from the statuses."""
    rows, refs, ready, _ = pod_revisions(view, targets)
    return rows, refs, ready


def health_pods(view: ClusterView, targets: Sequence[TargetRef]) -> list[tuple[int, TargetStatus, PodStatus]]:
    """(target row, its status, pod) for each pod the health checks look at: the targets' pods but
    those terminating (deletionTimestamp set). A pod restarted (deleted) stays listed through its
    grace period, its series still the sick pod's: checked, it would fail the verification of its
    own restart (it counts as the restarted pod), or be restarted again; its replacement (a new
    pod, or a StatefulSet's under the same name) is checked afresh."""
    index = {t: i for i, t in enumerate(targets)}
    return [(index[status.ref], status, pod) for status in view.statuses if status.ref in index
            for pod in status.pods if not pod.deleted]


def health_pod_columns(view: ClusterView, targets: Sequence[TargetRef]) -> HealthPods:
    """Every column the health checks read of the targets' pods (those of ``health_pods``)."""
    return StatusColumns().read(view, targets).pods


def pod_revisions(view: ClusterView, targets: Sequence[TargetRef]
                  ) -> tuple[np.ndarray, list[TargetRef], np.ndarray, np.ndarray]:
    """pod_table plus (P,) bool: the pod runs its workload's current revision (the pods of
    ``health_pods``)."""
    pods = health_pod_columns(view, targets)
    return pods.rows, pods.refs, pods.ready, pods.current


def revision_statistics(params: HealthParams, n: int, rows: np.ndarray, current: np.ndarray,
                        columns: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(new, old), each (N, Cr, 3), for ``heal``: per revision check, the per-pod samples
    ``columns[k]`` = (values (P, q), present (P, q)) (q = 2: error and request rates; q = 1: a
    latency) summed over the pods of the current revision (new) and of older ones (old).

    Every check's (P, 3) statistics in one (P, Cr * 3) table, a pod without a usable sample adding
    zeros (each sum as the pods with one alone add up: x + 0.0 is x, and a sum from 0.0 is never
    -0.0), summed in one bincount."""
    cr = len(params.revision_checks)
    stats = np.zeros((rows.size, cr, 3))
    for k, (check, (values, present)) in enumerate(zip(params.revision_checks, columns)):
        ok = _usable(values, present)
        if check.measure == Measure.RATIO:
            errors, requests = values[:, 0], values[:, 1]
            ok &= (requests >= 0) & (errors >= 0)
            per_pod = ratio_stats(requests * params.interval_s, np.minimum(errors, requests) * params.interval_s)
            stats[:, k] = np.where(ok[:, None], per_pod, 0.0)
        else:  # a pod without a usable sample: latency_stats' zeros
            ok &= values[:, 0] > 0
            stats[:, k] = latency_stats(values[:, :1], ok[:, None])
    sums = _sums_by_target_and_side(n, rows, current, stats.reshape(rows.size, cr * 3)).reshape(n, 2, cr, 3)
    return np.ascontiguousarray(sums[:, 0]), np.ascontiguousarray(sums[:, 1])


def _usable(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(P,) bool: every one of a pod's q samples (``values``, ``present`` (P, q)) present and finite."""
    return _every_column(present) & _every_column(np.isfinite(values))


def _every_column(mask: np.ndarray) -> np.ndarray:
    """(P,) bool: ``mask`` (P, q) holds in every column; ``mask.all(axis=1)`` column by column (a
    reduction along a short axis of 2 costs ~15 times more: ~135 us for 9k pods)."""
    out = np.ones(mask.shape[0], bool)
    for j in range(mask.shape[1]):
        out &= mask[:, j]
    return out


def _sums_by_target_and_side(n: int, rows: np.ndarray, current: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """(n, 2, W): ``stats`` (P, W) summed over the pods of each target (``rows`` (P,)), those on its
    current revision (``current`` (P,)) in [:, 0], the others in [:, 1]: one bincount (each sum in
    pod order, as one per target, side and column would add them)."""
    w = stats.shape[1]
    bins = ((rows * 2 + ~current) * w)[:, None] + np.arange(w)
    return np.bincount(bins.ravel(), weights=stats.ravel(), minlength=2 * w * n)[:2 * w * n].reshape(n, 2, w)


def overload_signal(view: ClusterView, decision: Decision | None,
                    targets: Sequence[TargetRef] = (), withheld: np.ndarray | None = None,
                    hung: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the service is overloaded, so slow or unready pods call for capacity, not restarts:
    pods are still starting after a scale-up, or a scaling metric asks for more replicas than
    current (before stabilization, rate limits and max replicas hold it back).

    Starting: fewer pods Ready than spec.replicas, not counting the pods stuck for another cause
    (:func:`stuck_pods`), nor those a hung-pod check of the policy judges hung (``hung`` (N,): such
    pods per target; most of their revision's pods are Ready, so the load does not explain them).
    ``observe_health`` hands the two parts to the core instead (``HealthObservation.stuck`` beside
    :func:`scaling_wants_more`), which adds the hung pods from its own evaluation of the check."""
    stuck = stuck_pods(view, decision, targets, withheld)
    return pods_starting(view.ready, stuck, view.spec, None if hung is None else np.asarray(hung, np.int64)) | \
        scaling_wants_more(view, decision)


def stuck_pods(view: ClusterView, decision: Decision | None, targets: Sequence[TargetRef] = (),
               withheld: np.ndarray | None = None) -> np.ndarray:
    """(N,) pods not Ready for a cause other than load, which the overload signal does not count as
    starting: the pods that crash (``crashing_pods``: a restart-pod check's usual target, for their
    restart); where a scaling metric reads the demand, the larger of those and its ``withheld`` (N,)
    (the pods not Ready long past their start-up, core/scaling/withheld.py: a hung process the load
    does not explain is for a restart; a crash-looping pod is often withheld too). Without such a
    metric (a health-only policy), a pod failing its readiness probe is taken for load."""
    return _stuck(crashing_pods(view, targets), decision, withheld)


def _stuck(crashing: np.ndarray, decision: Decision | None, withheld: np.ndarray | None) -> np.ndarray:
    """:func:`stuck_pods` from the crashing pods (N,)."""
    if decision is None or decision.proposals.shape[1] == 0 or withheld is None:
        return crashing
    read = decision.valid.any(axis=1)  # a metric read the demand: what is not Ready beyond it is stuck
    return np.maximum(crashing, np.where(read, np.asarray(withheld, np.float64), 0.0))


def scaling_wants_more(view: ClusterView, decision: Decision | None) -> np.ndarray:
    """(N,) bool: a scaling metric asks for more replicas than spec.replicas (before stabilization,
    rate limits and max replicas hold it back); False without one."""
    if decision is None or decision.proposals.shape[1] == 0:
        return np.zeros(view.spec.size, bool)
    with np.errstate(invalid="ignore"):
        return np.where(decision.valid, decision.proposals, -np.inf).max(axis=1) > view.spec


def crashing_pods(view: ClusterView, targets: Sequence[TargetRef]) -> np.ndarray:
    """(N,) per target, its pods that are not Ready because they crash, not because they start:
    a container waiting to run again (CrashLoopBackOff, or an image or config it cannot start
    with), or one restarted before (between two crashes it runs, not Ready yet). A pod of a
    scale-up, or one failing its readiness probe under load, has neither (0 where the source
    lists no pods)."""
    return StatusColumns().read(view, targets).facts.crashing


def observe_health(hq: HealthQueries, metrics: MetricsSource, targets: Sequence[TargetRef], view: ClusterView,
                   now: float, errors: list[str], decision: Decision | None = None,
                   sent: list[str] | None = None, outcomes: dict | None = None,
                   missing: dict | None = None, withheld: np.ndarray | None = None,
                   statuses: StatusColumns | None = None) -> HealthObservation:
    """Query every check and assemble the observation ``heal`` needs; each query sent is appended
    to ``sent`` (a pod or revision check sends none for targets without pods); ``outcomes`` as
    ``_query``'s; ``missing``: per check whose queries answered, ``health check NAME`` -> (its
    queries, targets with no usable sample (a pod or revision check: for none of their pods),
    targets looked at (with pods, for those), whether it reads pods); ``withheld``: (N,) the
    decision's withheld replicas (see :func:`overload_signal`); ``statuses``: what was read of
    the statuses of earlier cycles, kept (None: read afresh)."""
    params, n = hq.params, len(targets)
    c = len(params.checks)
    values, present = np.full((n, c), np.nan), np.zeros((n, c), bool)
    read = (StatusColumns() if statuses is None else statuses).read(view, targets)
    listed, facts = read.pods, read.facts
    rows, pod_refs, pod_ready, pod_current = listed.rows, listed.refs, listed.ready, listed.current
    pod_values, pod_present = np.full((len(pod_refs), c), np.nan), np.zeros((len(pod_refs), c), bool)
    jobs = []
    for j, (check, expr) in enumerate(zip(params.checks, hq.exprs)):
        if check.is_hung:  # no query: the core reads the pods' readiness (core/health/hung.py)
            continue
        if check.scope == Scope.POD:
            if pod_refs:
                jobs.append(_Job(expr, pod_refs, POD_LABELS, check.name, ("pod", j)))
        else:
            jobs.append(_Job(expr, targets, None, check.name, ("target", j)))
    if pod_refs:
        jobs += [_Job(expr, pod_refs, POD_LABELS, check.name, ("revision", r, q))
                 for r, (check, exprs) in enumerate(zip(params.revision_checks, hq.revision_exprs))
                 for q, expr in enumerate(exprs)]
    answered = _query_all(metrics, jobs, now, errors, sent, outcomes)
    columns = []
    for slot, (vals, pres) in answered.items():
        if slot[0] == "pod":
            pod_values[:, slot[1]], pod_present[:, slot[1]] = vals, pres
        elif slot[0] == "target":
            values[:, slot[1]], present[:, slot[1]] = vals, pres
    for r, (_check, exprs) in enumerate(zip(params.revision_checks, hq.revision_exprs)):
        vals = np.full((len(pod_refs), len(exprs)), np.nan)
        pres = np.zeros((len(pod_refs), len(exprs)), bool)
        for q in range(len(exprs)):
            if ("revision", r, q) in answered:
                vals[:, q], pres[:, q] = answered["revision", r, q]
        columns.append((vals, pres))
    if missing is not None:
        _count_missing(params, hq, targets, view, rows, present, pod_present, columns, outcomes or {}, missing)
    new, old = revision_statistics(params, n, rows, pod_current, columns)
    pods = PodTable.of(rows, read.keys, pod_values, pod_present, pod_ready,
                       checks=c, born=listed.born, blocks_rollout=listed.blocks_rollout, new_revision=pod_current,
                       not_ready_since=listed.not_ready_since, running=listed.running, condemned=listed.condemned)
    # revisions: the ReplicaSets the cluster still has (a rollback goes only to one of them; none
    # listed: unknown); revision_since: since when the current revision has been complete (a lower
    # bound; the core reads it on a target's first sight only, so a revision current for hours
    # counts as known healthy at once)
    return HealthObservation.of(view.spec.astype(np.int64), view.ready.astype(np.int64), values, checks=c,
                                present=present, revision=facts.revision, rollout=view.rollout, pods=pods,
                                overloaded=scaling_wants_more(view, decision),
                                stuck=_stuck(facts.crashing, decision, withheld),
                                revision_new=new, revision_old=old,
                                paused=view.paused, revisions=facts.revisions, revision_since=facts.since,
                                rollback_supported=read.deployments, partitioned=facts.partitioned,
                                ordered=facts.ordered, created=view.status.astype(np.int64), reached=facts.reached,
                                ordinal_start=facts.ordinal_start, accepted=facts.accepted)


def _count_missing(params: HealthParams, hq: HealthQueries, targets: Sequence[TargetRef], view: ClusterView,
                   rows: np.ndarray, present: np.ndarray, pod_present: np.ndarray, columns: list, outcomes: dict,
                   missing: dict) -> None:
    """``observe_health``'s ``missing``: a check whose query answers, but with nothing for a target
    (a metric renamed, a label relabeled away, a per-pod series under another name) can never fire
    there, with no error to log. A failing query is said as an outage instead (``outcomes``)."""
    n = len(targets)
    exists = np.asarray(view.exists, bool) if len(view.exists) == n else np.ones(n, bool)
    with_pods = np.bincount(rows, minlength=n)[:n] > 0 if rows.size else np.zeros(n, bool)

    def count(name: str, exprs, seen: np.ndarray, among: np.ndarray, per_pod: bool = True) -> None:
        key = f"health check {name}"
        if (outcomes.get(key) or (None, None))[1] is None:  # answered (a failure is an outage)
            missing[key] = ("; ".join(exprs), int(np.count_nonzero(among & ~seen)), int(np.count_nonzero(among)),
                            per_pod)

    def any_pod(ok: np.ndarray) -> np.ndarray:
        return np.bincount(rows[ok], minlength=n)[:n] > 0 if rows.size else np.zeros(n, bool)

    for j, (check, expr) in enumerate(zip(params.checks, hq.exprs)):
        if check.is_hung:  # the pod list is its signal: never blind
            continue
        if check.scope == Scope.POD:
            count(check.name, (expr,), any_pod(pod_present[:, j]), exists & with_pods)
        else:
            count(check.name, (expr,), present[:, j], exists, per_pod=False)
    for check, exprs, (_, pres) in zip(params.revision_checks, hq.revision_exprs, columns):
        count(check.name, exprs, any_pod(_every_column(pres)), exists & with_pods)


def health_actions(healing: HealingDecision, targets: Sequence[TargetRef], exists: np.ndarray,
                   policy: str) -> list[Action]:
    """Every action the arbitrated decision asks for (at most one kind per target), then the
    rollout holds (a pause or resume goes along with a target's action)."""
    out: list[Action] = []
    for i in np.flatnonzero(healing.changed & exists):
        pods = healing.actions(int(i), targets[i], policy)
        out += [_pod_name_only(a) for a in pods]
    if healing.hold_action is not None:
        for i in np.flatnonzero((healing.hold_action != 0) & exists):
            out += healing.hold_actions(int(i), targets[i], policy)
    return out


def _pod_name_only(action: Action) -> Action:
    """Pod keys are ``namespace/name``; the cluster wants the pod's name."""
    if action.pod and "/" in action.pod:
        return replace(action, pod=action.pod.split("/", 1)[1])
    return action


def _room_at(values: np.ndarray, times: np.ndarray, budget: int, window_s: float, now: float) -> float | None:
    """When a budget of ``budget`` per ``window_s`` has room for one more, given one target's
    history (values, times): as the oldest counted actions leave the window; None: never (0)."""
    if budget <= 0:
        return None
    live = sorted((t, v) for t, v in zip(times.tolist(), values.tolist()) if np.isfinite(t) and now - t < window_s)
    used = sum(v for _, v in live)
    for t, v in [(now - window_s, 0.0)] + live:
        used -= v
        if used < budget:
            return max(t + window_s, now)
    return None


def _failed_window(before: HealthState, healing: HealingDecision, i: int) -> Window:
    """The verification window of row ``i`` open ``before`` this cycle that closed in it (the first
    window when both did, or neither: a window this cycle's verdict held the target for)."""
    first, second = before.remedy.windows()
    still = healing.state.remedy.windows()[0]
    first_closed = first.open[i] and not (still.open[i] and still.started[i] == first.started[i])
    return second if second.open[i] and not first_closed else first


def held_notice(params: HealthParams, healing: HealingDecision, before: HealthState | None, i: int,
                target: TargetRef, policy: str, again: bool = False) -> str:
    """What a HealingHeld Event and log line say of row ``i``: why self-healing stopped (which
    check asked for what, the budget and what it allows, or the action whose verification failed),
    and what re-arms it; ``again``: a `setpoint resume` re-armed it and it was held again at once.
    ``before``: the health state before this cycle (the verification that failed)."""
    from controller.runtime.external_scale import clock_time

    now, reason = healing.now, HealthReason(int(healing.held_reason[i])) if healing.held_reason[i] >= 0 else None
    record = healing.record(i, policy, target.key)
    trigger = record.trigger or "the escalation ladder"
    resume = f"`setpoint resume {target.namespace}/{target.name}`"
    budgets, spent = params.budgets, healing.state.budgets
    undo = f"kubectl rollout undo deployment/{target.name} -n {target.namespace}"
    if reason is HealthReason.VERIFY_FAILED_HELD and before is not None and i < before.remedy.verify_action.size:
        w = _failed_window(before, healing, i)
        act = Remedy(int(w.action[i])).policy_word or "action"
        chk = params.check_names[int(w.check[i])] if 0 <= w.check[i] < len(params.checks) else None
        what = f"{chk} still fires" if chk else "it did not pass"
        why = (f"the {act} at {clock_time(float(w.started[i]))} did not cure it: {what} at the end of its "
               f"verification window, and no escalation step follows {act}")
        todo = f"fix the cause, then {resume} re-arms it"
    elif reason in (HealthReason.RESTART_BUDGET_EXHAUSTED, HealthReason.ROLLBACK_BUDGET_EXHAUSTED,
                    HealthReason.HUNG_POD_RESTARTS_EXHAUSTED):
        restart = reason is not HealthReason.ROLLBACK_BUDGET_EXHAUSTED
        name, budget = ("restartsPerHour", budgets.restarts_per_hour) if restart else ("rollbacksPerDay",
                                                                                          budgets.rollbacks_per_day)
        used = int((spent.restarts_used if restart else spent.rollbacks_used)(now)[i])
        values, times = (spent.restarts, spent.restart_at) if restart else (spent.rollbacks, spent.rollback_at)
        room = _room_at(values[i], times[i], int(budget), 3600.0 if restart else 86400.0, now)
        asked = "a pod restart" if restart else f"a rollback of revision {record.revision}"
        allows = (f"{name} is 0: none is allowed" if budget <= 0 else
                  f"{name} {budget} allows no more ({used} in the last {'hour' if restart else 'day'})")
        why = f"{trigger} calls for {asked}, but {allows}"
        todo = (f"{resume} re-arms it once the budget has room, at {clock_time(room)}" if room is not None and room > now
                else f"a {resume} cannot help: {'restart by hand' if restart else 'roll back by hand (' + undo + ')'}, "
                     f"or raise {name}")
        if reason is HealthReason.HUNG_POD_RESTARTS_EXHAUSTED:
            # its failed verifications restart the pod again rather than escalate: this is where it stops
            firing = healing.firing_pods(i, record.trigger) if record.trigger else ()
            pods = ", ".join(p.split("/", 1)[-1] for p in firing) or "its pods"
            why = (f"hung-pod check {record.trigger} finds {pods} hung (not Ready past start-up while most pods of "
                   f"their revision are Ready), but {allows}{': its restarts did not cure it' if used else ''}; "
                   f"nothing stronger follows (no rolling restart, no rollback: one pod's fault, not the release's)")
            todo = f"see why the pod hangs (kubectl describe pod, its logs); {todo}"
    elif reason in (HealthReason.NO_HEALTHY_REVISION, HealthReason.ROLLBACK_TARGET_GONE):
        why = (f"the escalation ladder calls for a rollback of revision {record.revision}, but there is no "
               f"known-healthy revision on the cluster to go back to")
        todo = f"fix forward or roll back by hand ({undo}), then {resume} re-arms it"
    else:
        why, todo = (reason.code if reason is not None else "held"), f"{resume} re-arms it"
    lead = f"{policy}: resumed, but held again at once" if again else f"{policy}: self-healing stopped"
    return f"{lead} ({reason.code if reason is not None else 'Held'}): {why}; {todo}"


def revision_worse_notice(params: HealthParams, healing: HealingDecision, i: int, status: TargetStatus | None,
                          target: TargetRef, policy: str) -> str:
    """What a RevisionWorseRecorded Event and log line say of row ``i``: which revision a record
    revision check judges worse than which (a StatefulSet's canary against its pods below the
    partition; a Deployment's new ReplicaSet against the old one) and by which checks, that it is
    recorded only and what to run, until when; then each check's comparison and what setpoint does
    not do about it. The key facts come first: an Event's message is cut to 1 KB at its end
    (controller/adapters/kubernetes.fit_event_message), the details stay in records and explain."""
    record = healing.record(i, policy, target.key)
    new = record.revision
    stable = _stable_revision(status, new) or "-"
    partition = status.partition if status is not None else 0
    pods = [p for p in (status.pods if status is not None else ()) if not p.deleted]
    on_new = sum(1 for p in pods if p.revision == new)
    bad = [c for c in record.revision_checks if c.verdict == "bad" and c.name in _record_check_names(params)]
    by = ", ".join(c.name for c in bad) or "-"
    said = "; ".join(_comparison_words(params, c) for c in bad)
    ref = f"{target.kind.lower()}/{target.name} -n {target.namespace}"
    until = _SAID_UNTIL.format(new=new)
    if target.kind == "Deployment":
        # setpoint could roll it back: it does not because the check says record (watched before trusted)
        return (f"{policy}: the new ReplicaSet's revision {new} ({on_new} of {len(pods)} pods) of Deployment "
                f"{target.name} is worse than the old ReplicaSet's revision {stable} by {by}; recorded only (the "
                f"check's action is record): `kubectl rollout undo {ref}` goes back to revision {stable}; {until}. "
                f"{said}. Setpoint does not roll back for it, nor restart that revision's pods {_NOT_RESTARTED}")
    what = (f"canary revision {new} ({on_new} of {len(pods)} pods, partition {partition})" if partition > 0
            else f"new revision {new} ({on_new} of {len(pods)} pods)")
    return (f"{policy}: {what} of {target.kind} {target.name} is worse than the stable revision {stable} by {by}; "
            f"recorded only: `kubectl rollout undo {ref}` puts them back on {stable}; {until}. {said}. Setpoint "
            f"does not roll back a {target.kind}, nor restart that revision's pods {_NOT_RESTARTED}")


def revision_accepted_notice(params: HealthParams, healing: HealingDecision, i: int, target: TargetRef,
                             policy: str) -> str:
    """What a RevisionWorseAccepted Event and log line say of row ``i``: the revision judged worse
    (by which record checks) that the target's accept-revision annotation accepts, and what that
    changes, until when."""
    record = healing.record(i, policy, target.key)
    rev = record.revision
    by = ", ".join(c.name for c in record.revision_checks
                   if c.verdict == "bad" and c.name in _record_check_names(params)) or "a record check"
    return (f"{policy}: revision {rev} of {target.kind} {target.name}, judged worse by {by}, is accepted by "
            f"annotation {ACCEPT_REVISION_ANNOTATION}={rev}: setpoint_revision_worse 0, its pods restarted as any "
            f"revision's; until revision {rev} is replaced or the annotation removed")


# the restart hold, plainly: while the stable pods serve beside the revision (they would come back on
# it), never a rolling restart of it; alone, nothing else to run, so a failing pod is restarted
_NOT_RESTARTED = ("while the stable revision's pods serve beside them (they come back on it), nor roll-restart "
                  "it (a new revision of the same code); running alone, a failing pod of it is restarted as on any "
                  "revision")
_SAID_UNTIL = "setpoint_revision_worse stays 1 until revision {new} is rolled back or replaced"


def _record_check_names(params: HealthParams) -> set[str]:
    return {c.name for c in params.revision_checks if not c.rollback}


def _stable_revision(status: TargetStatus | None, new: str) -> str:
    """The revision most of ``status``'s other pods run (a StatefulSet's pods below its partition, a
    Deployment's old ReplicaSet's pods), not counting pods terminating (leaving: an earlier
    rollout's or scale-down's, no longer their workload's); none left (a Deployment's rollout
    done): the newest of its ReplicaSets' revisions before ``new`` (where `kubectl rollout undo`
    goes), ''."""
    others = [p.revision for p in (status.pods if status is not None else ())
              if p.revision and p.revision != new and not p.deleted]
    if others:
        return max(set(others), key=others.count)
    older = [r for r in (status.revisions if status is not None else ()) if r.isdigit() and new.isdigit()
             and int(r) < int(new)]
    return max(older, key=int) if older else ""


def _comparison_words(params: HealthParams, c) -> str:
    """One revision check's comparison (a RevisionCheckRecord) in words: both revisions' values,
    their traffic, and the test against its threshold."""
    check = next(rc for rc in params.revision_checks if rc.name == c.name)

    def value(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v:.2%}" if c.measure == "ratio" else f"{v * 1000:.0f}ms"

    unit, what = ("requests", "error ratio") if c.measure == "ratio" else ("pod samples", "latency")
    return (f"{c.name}: {what} {value(c.new_value)} over {c.new_requests:.0f} {unit} against {value(c.stable_value)} "
            f"over {c.stable_requests:.0f}, worse by {c.worse_by:g}x at a {check.false_rate:.2%} false rate "
            f"(statistic {c.statistic:.2f} >= {c.bad_at:.2f})")
