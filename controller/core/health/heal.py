"""The self-healing decision: ``heal(params, observation, state, now, scaling) -> HealingDecision``.

Pure, like ``decide``, and meant to run right after it in the same cycle: checks -> revisions
-> re-arm -> verification -> proposals -> budgets -> arbitration (with the scaling decision)
-> memory. One call covers every target of one policy; the result holds at most one action
per target (a restart of several pods is one action), a reason code for each, and the state
to pass to the next call.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from controller.core.arbitrate import Arbitration, ArbitrationInput, arbitrate
from controller.core.scaling.decide import Decision
from controller.core.health.checks import (CheckTable, CheckView, PodState, PodTable, check_view, evaluate,
                                           firing_pod_mask, pod_view)
from controller.core.health.hung import HungPods, evaluate_hung, pods_starting
from controller.core.health.params import (HEALTH_REASON_CODES, Act, HealthParams, HealthReason, Phase, Remedy,
                                           Scope)
from controller.core.health.revision_test import Measure, RevisionTestState, Verdict, step_tests, summary_values
from controller.core.health.rollout_hold import HoldState, HoldStep, step_hold
from controller.core.health.remediate import (BudgetState, RemedyState, RevisionState, as_strings,
                                              beside_verification, pick_pods, propose, rearm, remember,
                                              replaced_revisions, restart_room, update_revisions, verify)
from controller.model import Action, TargetRef


@dataclass(frozen=True)
class HealthObservation:
    """What the shell observed for N targets (and their P pods) at ``now``.

    current: (N,) spec replicas; ready: (N,) ready pods; revision: (N,) str, the current
    (newest) revision, stable across rollbacks if possible (pod-template hash), '' if unknown;
    rollout: (N,) bool, a rollout is in progress; values, present: (N, C) one column per check
    of the policy in check order (only workload-scope columns are read); pods: the pod table
    (only pod-scope columns are read); revision_since: (N,) epoch s since when the revision
    has been current with its rollout complete (a lower bound: the Deployment's Progressing
    condition), NaN if unknown, read on a target's first sight only (see ``update_revisions``);
    utilization: (N,) ratio (1.0 = 100 %), NaN if unknown;
    overloaded: (N,) bool, the shell's own overload signal. stuck: (N,) pods not Ready for a cause
    other than load, as the shell counts them (crash-looping, withheld past their start-up:
    runtime/healing.stuck_pods); given, ``heal`` adds the signal's "pods still starting" part itself:
    fewer Ready than ``current`` beyond the larger of ``stuck`` and the pods a hung-pod check judges
    hung (its own evaluation of the check, hung.py); None: ``overloaded`` is the whole signal. revision_new, revision_old: (N, Cr, 3)
    this cycle's statistics of the revision checks for the new revision's pods and the stable
    revision's (see controller/core/health/revision_test.py; zeros: no data). paused: (N,) bool,
    the Deployment's spec.paused (None: unknown; then no rollout is held). revisions: (N, K) str,
    the revisions the cluster still lists per target (its ReplicaSets), '' padding; None, or a
    row listing none, is unknown: a rollback is only proposed to a listed revision.
    fired_until: (N,) epoch s, the last time a check was seen firing in the history replayed
    before the target's first sight (runtime/check_history.py), NaN if none was, +inf if the
    history could not be read; read on first sight only, with ``revision_since``.
    rollback_supported: (N,) bool, the target can be rolled back (a Deployment; a StatefulSet
    cannot: kubectl rollout undo by hand); None: every target can.
    partitioned: (N,) bool, a StatefulSet held at a ``rollingUpdate.partition`` (a canary): a
    rolling restart would make a new revision for the pods at or above it only; None: none is.
    accepted: (N,) str, the revision an SRE accepts although a record revision check judges it
    worse (the target's ``setpoint.io/accept-revision`` annotation), '' none; None: none is.
    ordered: (N,) bool, an OrderedReady StatefulSet (pods created one at a time, each once every
    lower one is Ready); created: (N,) the pods its controller has created (status.replicas);
    reached: (N,) the ordinals its pods reach (the highest listed, less ordinals.start, plus one:
    a pod deleted below it and not yet recreated does not lower it; None: ``created``);
    ordinal_start: (N,) a StatefulSet's spec.ordinals.start (0 for none and other kinds), said
    with CondemnedPodNotRestarted (the ordinals kept); None: 0;
    None: no target is one (arbitration's walk-up rule never applies).
    """

    current: np.ndarray
    ready: np.ndarray
    revision: np.ndarray
    rollout: np.ndarray
    values: np.ndarray
    present: np.ndarray
    pods: PodTable
    revision_since: np.ndarray
    utilization: np.ndarray
    overloaded: np.ndarray
    revision_new: np.ndarray | None = None
    revision_old: np.ndarray | None = None
    paused: np.ndarray | None = None
    revisions: np.ndarray | None = None
    fired_until: np.ndarray | None = None
    rollback_supported: np.ndarray | None = None
    partitioned: np.ndarray | None = None
    ordered: np.ndarray | None = None
    created: np.ndarray | None = None
    reached: np.ndarray | None = None
    ordinal_start: np.ndarray | None = None
    accepted: np.ndarray | None = None
    stuck: np.ndarray | None = None

    @classmethod
    def of(cls, current, ready=None, values=None, *, checks: int, present=None, revision=None, rollout=None,
           pods: PodTable | None = None, revision_since=None, utilization=None, overloaded=None,
           revision_new=None, revision_old=None, paused=None, revisions=None,
           fired_until=None, rollback_supported=None, partitioned=None, ordered=None,
           created=None, reached=None, ordinal_start=None, accepted=None, stuck=None) -> "HealthObservation":
        """Build with defaults: all ready, no values, revision '', no rollout, no pods, the listed
        revisions unknown (``revisions``: one sequence of str per target, or None)."""
        current = np.asarray(current, dtype=np.int64).reshape(-1)
        n = current.size
        values = np.full((n, checks), np.nan) if values is None else np.asarray(values, np.float64).reshape(n, checks)
        present = np.isfinite(values) if present is None else np.asarray(present, bool).reshape(n, checks)

        def vec(v, fill, dtype):
            return np.full(n, fill, dtype=dtype) if v is None else np.asarray(v, dtype=dtype).reshape(n)

        return cls(current=current, ready=current.copy() if ready is None else vec(ready, 0, np.int64),
                   revision=as_strings(revision, n), rollout=vec(rollout, False, bool), values=values, present=present,
                   pods=PodTable.empty(checks) if pods is None else pods,
                   revision_since=vec(revision_since, np.nan, np.float64),
                   utilization=vec(utilization, np.nan, np.float64), overloaded=vec(overloaded, False, bool),
                   revision_new=_stats(revision_new, n), revision_old=_stats(revision_old, n),
                   paused=None if paused is None else vec(paused, False, bool),
                   revisions=None if revisions is None else padded(revisions, n),
                   fired_until=None if fired_until is None else vec(fired_until, np.nan, np.float64),
                   rollback_supported=None if rollback_supported is None else vec(rollback_supported, True, bool),
                   partitioned=None if partitioned is None else vec(partitioned, False, bool),
                   ordered=None if ordered is None else vec(ordered, False, bool),
                   created=None if created is None else vec(created, 0, np.int64),
                   reached=None if reached is None else vec(reached, 0, np.int64),
                   ordinal_start=None if ordinal_start is None else vec(ordinal_start, 0, np.int64),
                   accepted=None if accepted is None else as_strings(accepted, n),
                   stuck=None if stuck is None else vec(stuck, 0, np.int64))

    def revision_stats(self, cr: int) -> tuple[np.ndarray, np.ndarray]:
        """(new, old), each (N, Cr, 3): zeros where the shell gave none."""
        n = self.current.size
        pick = lambda a: np.zeros((n, cr, 3)) if a is None or a.shape[1] != cr else a  # noqa: E731
        return pick(self.revision_new), pick(self.revision_old)


def revision_strings(values) -> list[str]:
    """One target's ReplicaSet revisions as ``padded`` reads them: str, None as ''."""
    return ["" if v is None else str(v) for v in values]


def padded(rows, n: int) -> np.ndarray:
    """(n, K) object array of str from ``n`` sequences of str (K their longest), '' padding; an
    (n, K) object array is taken as this function made it (a shell keeps it while its rows stay)."""
    if isinstance(rows, np.ndarray) and rows.dtype == object and rows.ndim == 2 and rows.shape[0] == n:
        return rows
    rows = [revision_strings(r) for r in rows]
    if len(rows) != n:
        raise ValueError(f"revisions: expected one sequence per target ({n}), got {len(rows)}")
    out = np.full((n, max((len(r) for r in rows), default=0)), "", dtype=object)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _stats(a, n: int) -> np.ndarray | None:
    """(N, Cr, 3) revision statistics from (N, Cr, 3) or (N, 3) (one check), or None."""
    if a is None:
        return None
    a = np.asarray(a, np.float64)
    return a if a.ndim == 3 else a.reshape(n, 1, 3)


@dataclass(frozen=True)
class HealthState:
    """Everything ``heal`` remembers between cycles: workload checks (N, Cw), pod checks keyed by
    pod, revisions, verification/escalation/hold, budget histories, and the revision checks'
    sequential tests (N, Cr; None is the same as empty), and the rollout holds (N,; None: empty)."""

    workload: CheckTable
    pods: PodState
    revisions: RevisionState
    remedy: RemedyState
    budgets: BudgetState
    revision_tests: RevisionTestState | None = None
    hold: HoldState | None = None

    @classmethod
    def empty(cls, n: int, params: HealthParams) -> "HealthState":
        wchecks = tuple(params.checks[j] for j in params.workload_columns)
        pchecks = tuple(params.checks[j] for j in params.pod_columns)
        slots_for = params.shortest_interval_s
        return cls(CheckTable.empty(n, wchecks, slots_for), PodState.empty(pchecks, slots_for),
                   RevisionState.empty(n), RemedyState.empty(n), BudgetState.empty(n, params),
                   RevisionTestState.empty(n, len(params.revision_checks)), HoldState.empty(n))

    def take(self, rows: np.ndarray) -> "HealthState":
        """Reorder to a new target list: rows[i] is the old row of new target i, -1 if new.
        Pod state is keyed by pod and follows the pod table of the next observation."""
        return HealthState(self.workload.take(rows), self.pods, self.revisions.take(rows), self.remedy.take(rows),
                           self.budgets.take(rows),
                           None if self.revision_tests is None else self.revision_tests.take(rows),
                           None if self.hold is None else self.hold.take(rows))

    @property
    def size(self) -> int:
        return self.workload.rows


@dataclass(frozen=True)
class CheckRecord:
    """One check on one target. Pod-scope values are the worst pod's; ``since`` is when the
    current phase began (for pods: the earliest pod in it; ok: since every pod has been, the
    latest pod's last change or, with none, its first observation)."""

    name: str
    scope: str
    raw: float | None
    smoothed: float | None
    phase: str
    since: float | None
    firing_pods: int
    pods: int
    # a hung-pod check with pods not Ready past its notReadyFor (none: None, left out of the record):
    # {"past": pods, "not_ready_for": s, "held_back": of those, the pods the peer rule holds back
    # (most of their revision's pods are not Ready: an outage), "revision": theirs when it is the
    # current one}
    hung: dict | None = None

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        if self.hung is None:
            del out["hung"]
        return out


@dataclass(frozen=True)
class RevisionCheckRecord:
    """One revision check on one target: both revisions' values so far (error ratio, or
    geometric-mean latency in s), the traffic behind them (requests, or pod samples), the test
    statistic (log likelihood ratio) with its thresholds, and the verdict."""

    name: str
    measure: str  # "ratio" (values are error ratios, traffic in requests) or "latency" (s, pod samples)
    new_revision: str
    stable_revision: str | None
    new_value: float | None
    stable_value: float | None
    new_requests: float
    stable_requests: float
    statistic: float
    bad_at: float
    good_at: float
    worse_by: float
    verdict: str
    active: bool
    # "baseline": the stable revision's recorded baseline plus its pods beside the new ones;
    # "side-by-side": those pods alone (latency, or the stable pods drifted from their baseline)
    compared_with: str = "side-by-side"

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "name"}


@dataclass(frozen=True)
class HealthRecord:
    """Everything the health side decided for one target in one cycle."""

    policy: str
    target: str
    at: float
    action: str | None
    reason: str
    outcome: str | None
    trigger: str | None
    held: bool
    held_reason: str | None
    revision: str
    rollback_to: str | None
    replicas: int
    restart_pods: tuple[str, ...]
    overloaded: bool
    systemic: bool
    checks: tuple[CheckRecord, ...] = field(default=())
    revision_checks: tuple[RevisionCheckRecord, ...] = field(default=())
    rollout: str | None = None  # "pause" / "resume": a rollout hold this cycle (see rollout_reason)
    rollout_reason: str | None = None
    rollout_held: bool = False  # this controller holds the rollout (spec.paused) after this cycle
    rollback_gone: str | None = None  # the known-healthy revision no longer on the cluster (RollbackTargetGone)
    # a record revision check has judged the current revision worse (setpoint_revision_worse): true
    # until it is rolled back or replaced, whatever the action or reason of the cycle; false once
    # accepted (revision_accepted)
    revision_worse: bool = False
    # the ordinals a StatefulSet keeps, [first, end) (spec.ordinals.start, plus spec.replicas), on a
    # CondemnedPodNotRestarted record: the pods out of it are the ones its scale-down removes
    ordinals: tuple[int, int] | None = None
    # the target's setpoint.io/accept-revision annotation, when set ('' not recorded)
    accept_revision: str = ""
    # the current revision, judged worse, is the one that annotation accepts: not held, not alerted
    revision_accepted: bool = False
    # epoch s the verification this cycle's restart / rolling restart / rollback opened ends (a hung-pod
    # check's: its replacement's startup + notReadyFor + a cycle on); None on other records
    verify_until: float | None = None
    # the verification windows open after this cycle, each {"action", "check" (None: none), "started",
    # "until", and for a hung-pod restart "seen": when its replacement was first seen running (None:
    # not yet, so not judged)}; () when none is (left out of the record)
    verifying: tuple[dict, ...] = ()

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("checks", "revision_checks")}
        if self.rollback_gone is None:  # only on the records it explains
            del out["rollback_gone"]
        for key in ("revision_worse", "accept_revision", "revision_accepted"):  # only where set
            if not out[key]:
                del out[key]
        if self.verify_until is None:  # only on the records that opened a verification
            del out["verify_until"]
        if self.verifying:
            out["verifying"] = [dict(w) for w in self.verifying]
        else:
            del out["verifying"]
        if self.ordinals is None:
            del out["ordinals"]
        else:
            out["ordinals"] = list(self.ordinals)
        out["restart_pods"] = list(self.restart_pods)
        out["checks"] = {c.name: {k: v for k, v in c.to_dict().items() if k != "name"} for c in self.checks}
        if self.revision_checks:
            out["revision_checks"] = {c.name: c.to_dict() for c in self.revision_checks}
        return out


@dataclass(frozen=True)
class _Unapplied:
    """The memory before this cycle's actions (see ``HealingDecision.state_after``)."""

    remedy: RemedyState
    revisions: RevisionState
    budgets: BudgetState
    pods_restarted_at: np.ndarray  # (P,)
    hold: np.ndarray  # (N,) bool: arbitration holds the target (kept whether or not anything is applied)
    hold_reason: np.ndarray
    rollout_hold: HoldState | None = None  # the rollout holds without this cycle's pause / resume


_PHASES = tuple(p.name.lower() for p in Phase)


@dataclass(frozen=True)
class HealingDecision:
    """The outcome for N targets (and P pods); one action per target at most.

    action: (N,) Act; reason: (N,) HealthReason; outcome: (N,) HealthReason of a verification
    or re-arm this cycle, -1 for none; replicas: (N,) for SCALE (else current); restart: (P,)
    bool pods to restart; rollback_to: (N,) str ('' unless ROLLBACK); trigger: (N,) check index
    behind the action or the deferral, -1; held / held_reason: (N,) the circuit breaker after
    this cycle; overloaded, systemic: (N,) bool; from_health: (N,) the action is a health
    action (not the scaling decision passing through); view: every check per target (N, C).
    """

    now: float
    params: HealthParams
    current: np.ndarray
    action: np.ndarray
    reason: np.ndarray
    outcome: np.ndarray
    replicas: np.ndarray
    restart: np.ndarray
    rollback_to: np.ndarray
    trigger: np.ndarray
    held: np.ndarray
    held_reason: np.ndarray
    overloaded: np.ndarray
    systemic: np.ndarray
    from_health: np.ndarray
    view: CheckView
    pod_row: np.ndarray
    pod_keys: np.ndarray
    state: HealthState
    revision_active: np.ndarray | None = None  # (N,) bool: the revision checks ran this cycle
    revision_trigger: np.ndarray | None = None  # (N,) index of the revision check behind a rollback, -1
    unapplied: "_Unapplied | None" = None  # what ``state_after`` needs to leave actions out
    # the rollout hold (controller/core/health/rollout_hold.py): (N,) ActionKind PAUSE / RESUME /
    # NONE, sent along with ``action``; its HealthReason (-1); a ROLLBACK that resumes our hold
    hold_action: np.ndarray | None = None
    hold_reason_code: np.ndarray | None = None
    rollback_resumes: np.ndarray | None = None
    # (N,) str: the known-healthy revision a rollback would have gone to, no longer on the cluster
    # (reason ROLLBACK_TARGET_GONE), '' otherwise; None: not computed
    rollback_gone: np.ndarray | None = None
    # (N,) bool: a record revision check has judged the current revision worse (a StatefulSet's
    # canary, a Deployment's new ReplicaSet), whatever the action or reason this cycle, until that
    # revision is rolled back or replaced (not only while it is compared); None: not computed
    revision_recorded: np.ndarray | None = None
    # (N,) a StatefulSet's spec.ordinals.start (HealthObservation.ordinal_start); None: 0
    ordinal_start: np.ndarray | None = None
    # (N,) bool: judged worse by a record check, but the revision the target's accept-revision
    # annotation names (``revision_recorded`` false there); (N,) str: that annotation ('' none)
    revision_accepted: np.ndarray | None = None
    accept_revision: np.ndarray | None = None
    hung: HungPods | None = None  # this cycle's evaluation of the hung-pod checks (None: none in the policy)

    def state_after(self, applied: np.ndarray | bool = True, restarted: np.ndarray | None = None,
                    hold_applied: np.ndarray | bool | None = None) -> HealthState:
        """The state for the next cycle once the actions of the ``applied`` rows ((N,) bool, or one
        bool for all) took effect: only they spend budgets, open verification windows, set floors
        and revision memory. ``restarted``: (P,) bool, the pods actually restarted (default: the
        chosen pods of the applied rows). ``hold_applied``: (N,) the pause / resume went out
        (default: ``applied``). Holds and verdicts are kept either way. ``state`` is
        ``state_after(True)``."""
        applied = np.broadcast_to(np.asarray(applied, bool), self.action.shape)
        restart = self.restart & applied[self.pod_row] if restarted is None else self.restart & restarted
        hold_applied = applied if hold_applied is None else np.broadcast_to(np.asarray(hold_applied, bool),
                                                                            self.action.shape)
        hold = self._hold_after(applied, hold_applied)
        if self.unapplied is None or ((applied | ~self.changed).all() and (restart == self.restart).all()):
            return self.state if hold is self.state.hold else replace(self.state, hold=hold)
        u, n = self.unapplied, self.action.size
        count = np.bincount(self.pod_row[restart], minlength=n)[:n] if restart.any() else np.zeros(n, np.int64)
        action = np.where(applied, self.action, int(Act.NONE)).astype(self.action.dtype)
        # a pod restart counts as applied when at least one of its pods went
        action = np.where((action == Act.RESTART_POD) & (count == 0), int(Act.NONE), action).astype(action.dtype)
        done = action != Act.NONE
        rem, rev, budgets = remember(self.params, u.remedy, u.revisions, u.budgets, action, self.from_health & done,
                                     u.hold, u.hold_reason, self.replicas, count, self.trigger, self.rollback_to,
                                     self.now)
        pods = replace(self.state.pods, restarted_at=np.where(restart, self.now, u.pods_restarted_at))
        return replace(self.state, pods=pods, revisions=rev, remedy=rem, budgets=budgets, hold=hold)

    def _hold_after(self, applied: np.ndarray, hold_applied: np.ndarray) -> HoldState | None:
        """The rollout holds once the pause / resume (``hold_applied``) and the rollbacks that resume
        our hold (``applied``) went out; the others keep the hold as it was."""
        new, u = self.state.hold, self.unapplied
        if new is None or u is None or u.rollout_hold is None or self.hold_action is None:
            return new
        took = np.where(self.hold_action != Act.NONE, hold_applied, np.where(self.rollback_resumes, applied, True))
        if took.all():
            return new
        old = u.rollout_hold
        return HoldState(new.revision, np.where(took, new.since, old.since), np.where(took, new.over, old.over))

    def hold_actions(self, i: int, target: TargetRef, policy: str = "") -> tuple[Action, ...]:
        """The PAUSE or RESUME of target ``i``'s rollout this cycle (sent with ``actions``)."""
        if self.hold_action is None or int(self.hold_action[i]) == Act.NONE:
            return ()
        return (Action(Act(int(self.hold_action[i])), target, HEALTH_REASON_CODES[int(self.hold_reason_code[i])],
                       policy=policy),)

    @property
    def changed(self) -> np.ndarray:
        """(N,) bool: the shell must act on the target."""
        return self.action != Act.NONE

    def restart_pods(self, i: int) -> tuple[str, ...]:
        """The pods of target ``i`` to restart this cycle."""
        if self.action[i] != Act.RESTART_POD:
            return ()
        return tuple(str(k) for k in self.pod_keys[self.restart & (self.pod_row == i)])

    def firing_pods(self, i: int, check: int | str) -> tuple[str, ...]:
        """The pods of target ``i`` on which pod-scope ``check`` (index or name) fires."""
        c = self.params.check_names.index(check) if isinstance(check, str) else int(check)
        j = np.flatnonzero(self.params.pod_columns == c)
        if not j.size:
            return ()
        mask = (self.pod_row == i) & (self.state.pods.table.phase[:, j[0]] == Phase.FIRING)
        return tuple(str(k) for k in self.pod_keys[mask])

    def actions(self, i: int, target: TargetRef, policy: str = "") -> tuple[Action, ...]:
        """model.Action objects for target ``i``: one, or one per pod for a pod restart."""
        act = Act(int(self.action[i]))
        if act is Act.NONE:
            return ()
        reason = HEALTH_REASON_CODES[int(self.reason[i])]
        kind = act
        if act is Act.RESTART_POD:
            return tuple(Action(kind, target, reason, pod=p, policy=policy) for p in self.restart_pods(i))
        if act is Act.SCALE:
            return (Action(kind, target, reason, replicas=int(self.replicas[i]), from_replicas=int(self.current[i]),
                           policy=policy),)
        if act is Act.ROLLBACK:
            fast = int(self.reason[i]) == HealthReason.ROLLBACK_REVISION_WORSE
            resume = self.rollback_resumes is not None and bool(self.rollback_resumes[i])
            return (Action(kind, target, reason, revision=str(self.rollback_to[i]) or None, policy=policy, fast=fast,
                           resume=resume),)
        return (Action(kind, target, reason, policy=policy),)

    def record(self, i: int, policy: str, target: str) -> HealthRecord:
        def opt(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        p, v = self.params, self.view
        checks = []
        for c, chk in enumerate(p.checks):
            ph = int(v.phase[i, c])
            since = v.fired_at[i, c] if ph == Phase.FIRING else (
                v.active_since[i, c] if ph == Phase.PENDING else v.changed_at[i, c])
            checks.append(CheckRecord(chk.name, "pod" if chk.scope == Scope.POD else "workload", opt(v.raw[i, c]),
                                      opt(v.smoothed[i, c]), _PHASES[ph], opt(since), int(v.firing[i, c]),
                                      int(v.pods[i, c]), self._hung_record(i, c)))
        act = Act(int(self.action[i]))
        trig = int(self.trigger[i])
        rtrig = -1 if self.revision_trigger is None else int(self.revision_trigger[i])
        trigger = p.revision_checks[rtrig].name if rtrig >= 0 else (p.check_names[trig] if trig >= 0 else None)
        return HealthRecord(
            policy=policy, target=target, at=self.now, action=act.word or None,
            reason=HEALTH_REASON_CODES[int(self.reason[i])],
            outcome=HEALTH_REASON_CODES[int(self.outcome[i])] if self.outcome[i] >= 0 else None,
            trigger=trigger, held=bool(self.held[i]),
            held_reason=HEALTH_REASON_CODES[int(self.held_reason[i])] if self.held[i] and self.held_reason[i] >= 0
            else None,
            revision=str(self.state.revisions.current[i]), rollback_to=str(self.rollback_to[i]) or None,
            rollback_gone=None if self.rollback_gone is None else str(self.rollback_gone[i]) or None,
            replicas=int(self.replicas[i]), restart_pods=self.restart_pods(i), overloaded=bool(self.overloaded[i]),
            systemic=bool(self.systemic[i]), checks=tuple(checks), revision_checks=self._revision_records(i, opt),
            revision_worse=self.revision_recorded is not None and bool(self.revision_recorded[i]),
            accept_revision="" if self.accept_revision is None else str(self.accept_revision[i]),
            revision_accepted=self.revision_accepted is not None and bool(self.revision_accepted[i]),
            ordinals=self._ordinals_kept(i), verify_until=self._verify_opened(i, act),
            verifying=self._windows_open(i), **self._hold_record(i))

    def _verify_opened(self, i: int, act: Act) -> float | None:
        """When the verification target ``i``'s action opened this cycle ends (epoch s), None when it
        opened none."""
        if act not in (Act.RESTART_POD, Act.ROLLING_RESTART, Act.ROLLBACK):
            return None
        opened = [w for w in self.state.remedy.windows() if w.open[i] and w.started[i] == self.now]
        until = float(opened[0].until[i]) if opened else float("nan")
        return until if np.isfinite(until) else None

    def _windows_open(self, i: int) -> tuple[dict, ...]:
        """The verification windows of target ``i`` open after this cycle (``HealthRecord.verifying``)."""
        out = []
        for w in self.state.remedy.windows():
            if not w.open[i]:
                continue
            c = int(w.check[i])
            window = {"action": Remedy(int(w.action[i])).policy_word, "check": self.params.check_names[c] if c >= 0
                      else None, "started": float(w.started[i]), "until": float(w.until[i])}
            if c >= 0 and self.params.hung[c] and w.action[i] == Remedy.RESTART_POD:
                window["seen"] = float(w.seen[i]) if np.isfinite(w.seen[i]) else None
            out.append(window)
        return tuple(out)

    def _ordinals_kept(self, i: int) -> tuple[int, int] | None:
        """[first, end) of the ordinals target ``i`` keeps, on a CondemnedPodNotRestarted record only."""
        if int(self.reason[i]) != HealthReason.CONDEMNED_POD_NOT_RESTARTED:
            return None
        start = 0 if self.ordinal_start is None else int(self.ordinal_start[i])
        return start, start + int(self.current[i])

    def _hung_record(self, i: int, c: int) -> dict | None:
        """Check ``c``'s hung-pod counts on target ``i`` (``CheckRecord.hung``), None unless it is a
        hung-pod check with pods not Ready past its notReadyFor."""
        if self.hung is None or not self.params.checks[c].is_hung:
            return None
        k = int(self.params.hung[:c].sum())  # its column among the hung checks
        past = int(self.hung.past[i, k])
        if past == 0:
            return None
        out = dict(past=past, not_ready_for=float(self.params.checks[c].unhealthy),
                   held_back=int(self.hung.held_back[i, k]))
        revision = str(self.state.revisions.current[i])
        if out["held_back"] and not self.hung.held_back_old[i, k] and revision:
            out["revision"] = revision
        return out

    def _hold_record(self, i: int) -> dict:
        hold = self.state.hold
        if self.hold_action is None or hold is None:
            return {}
        act = Act(int(self.hold_action[i]))
        if self.rollback_resumes is not None and self.rollback_resumes[i]:
            act = Act.RESUME  # the rollback resumes our hold in the same write
        code = int(self.hold_reason_code[i])
        if code < 0 and act is Act.RESUME:
            code = int(self.reason[i])  # the rollback's reason
        return dict(rollout=act.word or None, rollout_reason=HEALTH_REASON_CODES[code] if code >= 0 else None,
                    rollout_held=bool(hold.ours[i]))

    def _revision_records(self, i: int, opt) -> tuple[RevisionCheckRecord, ...]:
        checks, rt = self.params.revision_checks, self.state.revision_tests
        if not checks or rt is None:
            return ()
        new, old = summary_values(checks, rt)
        stable = str(self.state.revisions.rollback_target[i]) or None
        active = bool(self.revision_active[i]) if self.revision_active is not None else False
        return tuple(RevisionCheckRecord(
            c.name, c.measure.name.lower(), str(rt.revision[i]), stable, opt(new[i, j]), opt(old[i, j]), float(rt.new[i, j, 0]),
            float(rt.old[i, j, 0]), float(rt.llr[i, j]), c.bad_at, c.good_at, c.worse_by,
            Verdict(int(rt.verdict[i, j])).name.lower(), active,
            "baseline" if c.measure == Measure.RATIO and not rt.drifted[i, j] and rt.old[i, j, 0] > rt.stable[i, j, 0]
            else "side-by-side")
            for j, c in enumerate(checks))

    def records(self, policy: str, targets: Sequence[str]) -> list[HealthRecord]:
        return [self.record(i, policy, t) for i, t in enumerate(targets)]


def _evaluate_checks(params: HealthParams, obs: HealthObservation, state: HealthState, now: float
                     ) -> tuple[CheckTable, PodState, CheckView, HungPods | None]:
    n = obs.current.size
    wc, pc = params.workload_columns, params.pod_columns
    wchecks = tuple(params.checks[j] for j in wc)
    pchecks = tuple(params.checks[j] for j in pc)
    wraw, wsm, wtable = evaluate(wchecks, obs.values[:, wc], obs.present[:, wc], state.workload, now)
    pods = state.pods.reindex(obs.pods.keys, now, obs.pods.born)
    table = obs.pods
    pvalues, ppresent, hung = _pod_signals(pchecks, pc, table, pods.first_seen, now, n)
    praw, psm, ptable = evaluate(pchecks, pvalues, ppresent, pods.table, now)
    pods = replace(pods, table=ptable)
    view = check_view(params, n, wtable, wraw, wsm, pod_view(pchecks, n, table.row, ptable, praw, psm,
                                                                  pods.first_seen))
    return wtable, pods, view, hung


def _pod_signals(pchecks: tuple, columns: np.ndarray, table: PodTable, first_seen: np.ndarray, now: float, n: int
                 ) -> tuple[np.ndarray, np.ndarray, HungPods | None]:
    """(values, present), each (P, Cp), of the pod-scope checks ``pchecks`` (the policy's check
    ``columns`` (Cp,)): their queries' samples, and for a hung-pod check the seconds each pod has been
    hung (hung.py), computed here from the pod list (``first_seen`` (P,) epoch s); and that one
    evaluation of the hung checks for N = ``n`` targets (None: no hung check), which the overload
    signal and the records read too."""
    values, present = table.values[:, columns], table.present[:, columns]
    hung = [j for j, c in enumerate(pchecks) if c.is_hung]
    if not hung:
        return values, present, None
    found = evaluate_hung(table, first_seen, [pchecks[j].hung_startup_s for j in hung],
                          [pchecks[j].unhealthy for j in hung], now, n)
    values[:, hung] = found.seconds
    present[:, hung] = True  # the pod list is the signal: never missing for a listed pod
    return values, present, found


def heal(params: HealthParams, obs: HealthObservation, state: HealthState, now: float,
         scaling: Decision | None = None, rearm_rows=None) -> HealingDecision:
    """Decide the health side for every target of one policy and merge it with ``scaling``.

    scaling: this cycle's Decision from ``decide`` (its desired replicas), or None for a
    health-only policy. rearm_rows: targets to re-arm (resume), as an (N,) bool mask or row
    indices. Pure: same inputs, same HealingDecision.

    ``state`` assumes the chosen actions are applied (budgets are charged, verification windows
    open); ``state_after(applied)`` charges only the actions that were.
    """
    n = obs.current.size
    current = obs.current.astype(np.int64)
    desired = current if scaling is None else np.asarray(scaling.desired, dtype=np.int64)
    wtable, pods, view, hung = _evaluate_checks(params, obs, state, now)
    pod_row, pod_ready = obs.pods.row, obs.pods.ready

    replaced = replaced_revisions(state.revisions, obs.revision)
    any_firing = (view.phase == Phase.FIRING).any(axis=1)
    any_breaching = (view.phase != Phase.OK).any(axis=1)
    # a revision a record check has judged worse is never known healthy (nor clean) either, unless
    # accepted: what an SRE keeps on purpose is what a later release's rollback goes back to
    unhealthy = any_firing | (_judged_worse(params, state.revision_tests, obs.revision)[0] &
                              ~_accepts(obs, obs.revision))
    rev = update_revisions(params, state.revisions, obs.revision, obs.revision_since, obs.rollout, unhealthy, now,
                           any_breaching, obs.fired_until)
    rem, outcome = rearm(state.remedy, _mask(rearm_rows, n))
    rem, rev, verified = verify(params, rem, rev, view, pods, pod_row, obs.rollout, now, replaced, obs.pods.running)
    outcome = np.where(verified >= 0, verified, outcome)
    prop, rem = propose(params, view, pods, pod_row, rem, rev)
    tests, rev_active, worse, rev_trigger = _revision_tests(params, obs, state, rev, now)
    rollback_checks = np.asarray([c.rollback for c in params.revision_checks], bool)
    cleared = ((tests.verdict == Verdict.GOOD) & rollback_checks[None, :]).any(axis=1) if params.revision_checks \
        else np.zeros(n, bool)
    least = np.asarray([c.least_requests if c.measure == Measure.RATIO else 1.0 for c in params.revision_checks])
    served = ((tests.new[..., 0] >= least[None, :]) & rollback_checks[None, :]).any(axis=1) if params.revision_checks \
        else np.zeros(n, bool)
    raise_to_rollback = worse & (prop.want < Remedy.ROLLBACK)
    want = np.where(raise_to_rollback, int(Remedy.ROLLBACK), prop.want)
    trigger = np.where(raise_to_rollback, -1, prop.trigger)
    # Where the revisions are compared, the comparison replaces the timing heuristics (a check
    # that begins soon after a release blames it): a surge during a rollout is not the release.
    # Only once the new revision's pods have served: a release whose pods never serve (a crash
    # loop) gives the comparison no evidence, and the timing is then the only evidence there is.
    compared = rev_active & served
    new_revision, after_rollout = prop.new_revision & ~compared, prop.after_rollout & ~compared

    restart_left = params.budgets.restarts_per_hour - state.budgets.restarts_used(now)
    trig_pods = np.where(prop.want == Remedy.RESTART_POD, prop.trigger, -1)
    waits_for_pods, eligible = _rollout_waits_for_pods(params, obs, pods, trig_pods, _hung_new_pods(params, obs))
    # a new revision judged worse by a record check (a StatefulSet's canary, a Deployment's new
    # ReplicaSet) stays so for as long as it runs, not only while its comparison does: the verdict
    # is final for the pair, and the revision is as bad after rollbackWindow as before; it ends when
    # the revision is rolled back or replaced. While the stable revision's pods serve beside its
    # pods, its firing pods are not restarted (they come back on the same revision; the stable pods
    # still are); once it runs alone they are, as any revision's (nothing else to run, no evidence)
    judged, recorded_by = _judged_worse(params, tests, obs.revision)
    # accepted on purpose (the target's accept-revision annotation names this revision): nothing is
    # held for it and it is not said worse; an acceptance of another revision changes nothing
    accepted = judged & _accepts(obs, obs.revision)
    recorded = judged & ~accepted
    # a record check still comparing the revision (no verdict yet, its pods have served): its pods
    # wait for the verdict as they are held once it is judged worse (while the stable pods serve beside)
    # (not for a hung-pod check: one pod's stuck process, which never blames a release)
    hung_trigger = _hung_triggered(params, trigger)
    pending = (_verdict_pending(params, tests, rev_active, obs.revision) & ~judged & ~_accepts(obs, obs.revision)
               & ~hung_trigger)
    release_pods, beside = _release_pods(obs, recorded | pending)
    held_pods = release_pods & beside[obs.pods.row] if release_pods.size else release_pods
    eligible = ~held_pods if eligible is None else eligible & ~held_pods
    beside_window, unjudged = beside_verification(params, rem, pods, pod_row, trig_pods)
    eligible &= unjudged  # a window's replacements are left to it
    condemned = _condemned_only(params, obs, pods, trig_pods)
    if obs.pods.condemned is not None:  # a StatefulSet's pods its scale-down removes are not restarted
        eligible &= ~obs.pods.condemned
    release_explains, release_waits, systemic = np.zeros(n, bool), np.zeros(n, bool), prop.systemic
    if (recorded | pending).any():  # the pods firing for the trigger, read once for all
        firing = firing_pod_mask(params, pods, obs.pods.row, trig_pods)
        systemic = _systemic_beside_release(params, obs.pods.row, firing, release_pods, beside, prop.systemic)
        release_explains = _release_explains(obs.pods.row, firing, want, release_pods, recorded, beside, systemic)
        # only a pod restart, and only beside the stable pods (a revision alone is restarted as any)
        pod_restart = np.where(want == Remedy.RESTART_POD, want, int(Remedy.NONE))
        release_waits = _release_explains(obs.pods.row, firing, pod_restart, release_pods, pending & beside, beside,
                                          systemic)
    room = restart_room(params, pods, pod_row, pod_ready, trig_pods, current, obs.ready, restart_left, eligible)
    overloaded, scale_up_to = _overload(params, obs, current, desired, hung)
    # a workload-wide rollback check is excused while the comparison finds the new revision no
    # worse: it said so (a GOOD verdict), or the service is overloaded and the new revision's pods
    # have served traffic without being found worse (pods that never serve, e.g. crash-looping,
    # are no evidence: the check's rollback goes ahead)
    excused = compared & ~worse & (cleared | (overloaded & served))
    # only a revision the cluster still lists: a rollback to a trimmed one fails every cycle
    target_rev, gone = rev.rollback_choice(obs.revisions)
    if obs.rollback_supported is not None:
        # a target that cannot be rolled back (a StatefulSet) has nothing to roll back to: a check
        # the release explains falls through to the restart rules (waiting for its rollout), where
        # a rollback was sent every cycle and refused by the cluster, and nothing else was done
        target_rev = np.where(obs.rollback_supported, target_rev, "").astype(object)
        gone = np.where(obs.rollback_supported, gone, "").astype(object)
    # paused by someone else: a Deployment this controller paused (its rollout hold) is resumed by
    # the rollback's own write
    ours = state.hold.ours if state.hold is not None and state.hold.since.shape == (n,) else np.zeros(n, bool)
    paused = np.zeros(n, bool) if obs.paused is None else obs.paused & ~ours
    arb = arbitrate(ArbitrationInput(
        current=current, desired=desired, scale_up_to=scale_up_to, floor=np.where(now < rem.floor_until, rem.floor, 0),
        rollout=obs.rollout | (rem.verify_action == Remedy.ROLLBACK), overloaded=overloaded, want=want,
        escalated=prop.escalated, systemic=systemic, suspect=rev.suspect, new_revision=new_revision,
        after_rollout=after_rollout, can_rollback=target_rev != "", target_gone=gone != "", held=rem.held,
        verifying=rem.verifying, beside_verification=beside_window, cooldown=now < rem.cooldown_until,
        restart_budget=restart_left,
        restart_room=room, rollback_budget=params.budgets.rollbacks_per_day - state.budgets.rollbacks_used(now),
        revision_worse=worse, excused=excused, paused=paused, rollout_waits_for_pods=waits_for_pods,
        partitioned=obs.partitioned, never_scales=np.full(n, not params.scales), release_worse=recorded,
        release_explains=release_explains, release_waits=release_waits, ordered=obs.ordered, created=obs.created,
        reached=obs.reached, condemned=condemned))

    arb = _hung_reasons(arb, hung_trigger)
    restart = pick_pods(params, pods, pod_row, pod_ready, trig_pods,
                        np.where(arb.action == Act.RESTART_POD, arb.restart, 0), eligible)
    restarted = np.bincount(pod_row[restart], minlength=n)[:n] if restart.any() else np.zeros(n, np.int64)
    rollback_to = np.where(arb.action == Act.ROLLBACK, target_rev, "").astype(object)
    rollback_gone = np.where(arb.reason == HealthReason.ROLLBACK_TARGET_GONE, gone, "").astype(object)
    # what calls for the rollback: sent, or waiting for someone's resume (named in its notice)
    blocked = arb.reason == HealthReason.ROLLBACK_BLOCKED_BY_PAUSE
    rolls = (arb.action == Act.ROLLBACK) | blocked
    check = np.where(rolls & (prop.blamed_check >= 0), prop.blamed_check, trigger)
    rev_trigger = np.where(rolls & ((arb.reason == HealthReason.ROLLBACK_REVISION_WORSE) | (blocked & worse)),
                           rev_trigger, -1)
    rev_trigger = np.where(arb.reason == HealthReason.REVISION_WORSE_RECORDED, recorded_by, rev_trigger)
    hold = _rollout_hold(params, obs, state, tests, rev, rev_active, now)
    # a rollback resumes our hold in the same write (a paused Deployment would not roll back), and
    # no pause or resume goes with it (a pause after it would hold the rollback)
    rollback = arb.action == Act.ROLLBACK
    rollback_resumes = rollback & hold.kept.ours
    hold_action = np.where(rollback, int(Act.NONE), hold.action)
    hold_reason = np.where(rollback, -1, hold.reason)
    undone = hold.kept.released(rollback_resumes)
    new_hold = HoldState(hold.state.revision, np.where(rollback, undone.since, hold.state.since),
                         np.where(rollback, undone.over, hold.state.over))
    unapplied = _Unapplied(rem, rev, state.budgets, pods.restarted_at, arb.hold, arb.hold_reason, hold.kept)
    rem, rev, budgets = remember(params, rem, rev, state.budgets, arb.action, arb.health, arb.hold, arb.hold_reason,
                                 arb.replicas, restarted, check, rollback_to, now)
    pods = replace(pods, restarted_at=np.where(restart, now, pods.restarted_at))
    new_state = HealthState(wtable, pods, rev, rem, budgets, tests, new_hold)
    return HealingDecision(
        now=now, params=params, current=current, action=arb.action, reason=arb.reason, outcome=outcome,
        replicas=arb.replicas, restart=restart, rollback_to=rollback_to, trigger=check, held=rem.held,
        held_reason=rem.held_reason, overloaded=overloaded, systemic=systemic, from_health=arb.health,
        view=view, pod_row=pod_row, pod_keys=pods.keys, state=new_state, revision_active=rev_active,
        revision_trigger=rev_trigger, unapplied=unapplied, hold_action=hold_action.astype(np.int64),
        hold_reason_code=hold_reason.astype(np.int64), rollback_resumes=rollback_resumes,
        rollback_gone=rollback_gone, revision_recorded=recorded, revision_accepted=accepted,
        accept_revision=obs.accepted, ordinal_start=obs.ordinal_start, hung=hung)


def _accepts(obs: HealthObservation, revision: np.ndarray) -> np.ndarray:
    """(N,) bool: the target's accept-revision annotation names ``revision`` (N,) str, a known one."""
    if obs.accepted is None:
        return np.zeros(revision.size, bool)
    return (obs.accepted == revision) & (revision != "")


def _hung_triggered(params: HealthParams, trigger: np.ndarray) -> np.ndarray:
    """(N,) bool: the check behind each target's want (``trigger`` (N,), -1 none) is a hung-pod check."""
    if not params.checks:
        return np.zeros(trigger.size, bool)
    return params.hung[np.maximum(trigger, 0)] & (trigger >= 0)


def _hung_reasons(arb: Arbitration, hung: np.ndarray) -> Arbitration:
    """The restart of pods a hung-pod check fires on says so (RestartHungPod: an Event, the records,
    explain), and so does its hold once restartsPerHour allows no more (HungPodRestartsExhausted: its
    failed verifications restart it again rather than escalate, so the budget is where it stops).
    ``hung``: (N,) a hung-pod check is behind the target's want (``_hung_triggered``)."""
    if not hung.any():  # no hung-pod check behind any want
        return arb
    restart = hung & (arb.reason == HealthReason.RESTART_FIRING_PODS)
    spent = hung & (arb.reason == HealthReason.RESTART_BUDGET_EXHAUSTED)
    reason = np.where(restart, int(HealthReason.RESTART_HUNG_POD),
                      np.where(spent, int(HealthReason.HUNG_POD_RESTARTS_EXHAUSTED), arb.reason))
    return replace(arb, reason=reason,
                   hold_reason=np.where(spent & arb.hold, int(HealthReason.HUNG_POD_RESTARTS_EXHAUSTED),
                                        arb.hold_reason))


def _record_checks_bad(params: HealthParams, verdict: np.ndarray) -> np.ndarray:
    """(N, Cr) bool: a revision check whose action is record has judged BAD (``verdict`` (N, Cr))."""
    record = np.asarray([not c.rollback for c in params.revision_checks], bool)
    return (verdict == Verdict.BAD) & record[None, :]


def _judged_worse(params: HealthParams, tests: RevisionTestState | None, revision: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(worse (N,) bool, check (N,) int): a revision check whose action is record has judged
    ``revision`` (N,), the target's current revision, worse than the stable one (BAD), and the first
    such check, -1. Any kind of target: a StatefulSet's canary or rolling update (which setpoint
    cannot roll back), or a Deployment's new ReplicaSet (a check put on record to watch what it
    would do before trusting it).

    Not only while the comparison runs: the verdict is final for the pair of revisions, so it holds
    for as long as that revision is current, past rollbackWindow; it ends when the revision is
    replaced (a rollback, a new release: the test starts over). Such a revision is never known
    healthy either (``heal``): it would be a rollback target (a Deployment), or, undone and put out
    again under the same name (a StatefulSet's ControllerRevision), trusted and never compared."""
    n = revision.size
    checks = params.revision_checks
    if all(c.rollback for c in checks) or tests is None or tests.verdict.shape != (n, len(checks)):
        return np.zeros(n, bool), np.full(n, -1, np.int64)  # no record check (none at all), or no test state
    bad = _record_checks_bad(params, tests.verdict) & ((tests.revision == revision) & (revision != ""))[:, None]
    return bad.any(axis=1), np.where(bad.any(axis=1), bad.argmax(axis=1), -1).astype(np.int64)


def _verdict_pending(params: HealthParams, tests: RevisionTestState, active: np.ndarray, revision: np.ndarray
                     ) -> np.ndarray:
    """(N,) bool: a revision check whose action is record compares ``revision`` (N,), the target's
    current revision, this cycle (``active`` (N,)) and has no verdict yet (UNDECIDED) although the
    new revision's pods have served what it needs to decide (its least requests; a latency check:
    a sample). Before they have served (a crash loop never gets Ready) there is no evidence to wait
    for: nothing is pending."""
    n, checks = revision.size, params.revision_checks
    record = np.asarray([not c.rollback for c in checks], bool)
    if not record.any() or tests is None or tests.verdict.shape != (n, len(checks)):
        return np.zeros(n, bool)
    least = np.asarray([c.least_requests if c.measure == Measure.RATIO else 1.0 for c in checks])
    waiting = (tests.verdict == Verdict.UNDECIDED) & (tests.new[..., 0] >= least[None, :]) & record[None, :]
    return waiting.any(axis=1) & active & (tests.revision == revision) & (revision != "")


def _release_pods(obs: HealthObservation, worse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pods (P,) bool, beside (N,) bool): the pods on the new revision of a target whose new
    revision is judged worse (``worse`` (N,)), every pod of it when the pods' revisions are unknown;
    and whether pods of another revision (the stable one's) are listed beside them: a canary, a
    rollout in progress, but not a revision that runs alone (a Deployment's rollout done)."""
    table, n = obs.pods, worse.size
    if not worse.any():  # the common cycle: nothing judged worse, no pass over the pods
        return np.zeros(table.size, bool), np.zeros(n, bool)
    on_new = np.ones(table.size, bool) if table.new_revision is None else table.new_revision
    others = np.bincount(table.row[~on_new], minlength=n)[:n] > 0 if (~on_new).any() else np.zeros(n, bool)
    return worse[table.row] & on_new, worse & others


def _release_explains(row: np.ndarray, firing: np.ndarray, want: np.ndarray, release_pods: np.ndarray,
                      worse: np.ndarray, beside: np.ndarray, systemic: np.ndarray) -> np.ndarray:
    """(N,) bool: the restart ``want`` (N,) asks for is one of a revision judged worse (``worse``
    (N,), its pods ``release_pods`` (P,)) that is not sent: a rolling restart (a new revision of the
    same code: the judgement would start over against the worse revision's own traffic, find it no
    worse and let it become known healthy); a restart-pod, while the stable pods serve ``beside``
    (N,), whose trigger fires (``firing`` (P,), firing_pod_mask) on none of them (the release
    explains it: its pods come back on it); or, the revision alone, a restart-pod ``systemic`` (N,)
    (most of its pods: a rolling restart)."""
    n = want.size
    others = firing & ~release_pods
    stable_firing = np.bincount(row[others], minlength=n)[:n] > 0 if others.any() else np.zeros(n, bool)
    pods = want == Remedy.RESTART_POD
    return worse & ((want == Remedy.ROLLING_RESTART) | (pods & beside & ~stable_firing) | (pods & ~beside & systemic))


def _systemic_beside_release(params: HealthParams, row: np.ndarray, firing: np.ndarray, release_pods: np.ndarray,
                             worse: np.ndarray, systemic: np.ndarray) -> np.ndarray:
    """(N,) bool: ``systemic`` (N,), but judged among the other pods where a revision is judged
    worse and the stable pods serve beside it (``worse`` (N,), its pods ``release_pods`` (P,);
    ``firing`` (P,) the pods the trigger fires on): the release explains its own pods' firing, so a stable pod leaking beside a bad
    canary is one pod to restart, not most of the workload."""
    n = worse.size
    others = ~release_pods
    fired = np.bincount(row[firing & others], minlength=n)[:n]
    total = np.bincount(row[others], minlength=n)[:n]
    with np.errstate(divide="ignore", invalid="ignore"):
        among = (fired >= params.systemic_min_pods) & (fired / total >= params.systemic_share)
    return np.where(worse, among, systemic)


def _hung_new_pods(params: HealthParams, obs: HealthObservation) -> np.ndarray | None:
    """(P,) bool: pods on their workload's new revision, not Ready, while a hung-pod check is in the
    policy (None: no such check, or the pods' revisions unknown). Where one fires on such a pod during
    a rollout, the rollout may be waiting for it (a Deployment's new pods must become available) and
    its replacement comes back on the same new revision: it is restarted then, not after the rollout."""
    table = obs.pods
    if not params.hung.any() or table.new_revision is None:
        return None
    return table.new_revision & ~table.ready


def _condemned_only(params: HealthParams, obs: HealthObservation, pods: PodState, trigger: np.ndarray
                    ) -> np.ndarray:
    """(N,) bool: the restart check ``trigger`` (N,) (-1: none) fires on pods and every one of them
    is condemned (``PodTable.condemned``: its StatefulSet's scale-down removes it)."""
    n, table = obs.current.size, obs.pods
    if table.condemned is None or not table.condemned.any():
        return np.zeros(n, bool)
    firing = firing_pod_mask(params, pods, table.row, trigger)
    fired = np.bincount(table.row[firing], minlength=n)[:n]
    kept = np.bincount(table.row[firing & ~table.condemned], minlength=n)[:n]
    return (fired > 0) & (kept == 0)


def _rollout_waits_for_pods(params: HealthParams, obs: HealthObservation, pods: PodState, trigger: np.ndarray,
                            hung_new: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(waits (N,) bool, eligible (P,) bool or None): a target whose rollout waits for pods the
    restart check fires on (``PodTable.blocks_rollout``: a StatefulSet's broken pods left on the old
    revision, e.g. after a ``kubectl rollout undo``, which its controller replaces only once they
    are Ready; ``hung_new`` (P,): a hung-pod check's pods on the new revision, ``_hung_new_pods``), and
    the pods restart-pod may then restart: only those (the others wait for the rollout as anywhere
    else); every pod elsewhere. ``trigger``: (N,) the restart check, -1."""
    n, table = obs.current.size, obs.pods
    blocks = table.blocks_rollout
    if hung_new is not None and table.size:
        by_hung = hung_new & _hung_triggered(params, trigger)[table.row]
        blocks = by_hung if blocks is None else blocks | by_hung
    if blocks is None or not blocks.any():
        return np.zeros(n, bool), None
    blocking = firing_pod_mask(params, pods, table.row, trigger) & blocks
    waits = obs.rollout & (np.bincount(table.row[blocking], minlength=n)[:n] > 0)
    return waits, ~waits[table.row] | blocking


def _rollout_hold(params: HealthParams, obs: HealthObservation, state: HealthState, tests: RevisionTestState,
                  rev: RevisionState, active: np.ndarray, now: float) -> HoldStep:
    """Step the rollout holds (controller/core/health/rollout_hold.py) after the revision tests."""
    n = obs.current.size
    hold = state.hold if state.hold is not None and state.hold.since.shape == (n,) else HoldState.empty(n)
    new, old = obs.revision_stats(len(params.revision_checks))
    return step_hold(params.revision_checks, hold, tests, rev.current, obs.rollout, obs.paused, active, new, old,
                     params.interval_s, now)


def _revision_tests(params: HealthParams, obs: HealthObservation, state: HealthState, rev: RevisionState,
                    now: float) -> tuple[RevisionTestState, np.ndarray, np.ndarray, np.ndarray]:
    """Step the revision checks. Returns (state, active (N,), worse (N,) bool: a rollback check
    judged the new revision BAD, trigger (N,) the first such check or -1).

    The comparison runs while a rollout is in progress and for the rollback window after it (and
    while a StatefulSet is held at a partition: a canary), on a revision that was not already known
    healthy when it became current (a rollback target is never tested)."""
    n, checks = obs.current.size, params.revision_checks
    cr = len(checks)
    tests = state.revision_tests
    if tests is None or tests.llr.shape != (n, cr):
        tests = RevisionTestState.empty(n, cr)
    with np.errstate(invalid="ignore"):
        window = obs.rollout | (now - rev.rollout_done_at < params.rollback_window_s)
    if obs.partitioned is not None:
        # a canary held at a partition serves beside the stable pods for as long as it is held: it
        # is judged for as long (the test's false rate holds however long it is watched)
        window = window | obs.partitioned
    active = window & ~rev.trusted & (rev.current != "")
    new, old = obs.revision_stats(cr)
    tests = step_tests(checks, tests, rev.current, active, new, old, now, params.interval_s)
    rollback = np.asarray([c.rollback for c in checks], bool)
    bad = active[:, None] & (tests.verdict == Verdict.BAD) & rollback[None, :]
    first = np.where(bad.any(axis=1), bad.argmax(axis=1), -1) if cr else np.full(n, -1, np.int64)
    return tests, active, bad.any(axis=1), first.astype(np.int64)


def _overload(params: HealthParams, obs: HealthObservation, current: np.ndarray, desired: np.ndarray,
              hung: HungPods | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(overloaded (N,) bool, scale_up_to (N,)): the overload signal and the replicas a health
    scale-up would set (the scaling side's count when it wants more, else a step up; capped;
    the current count for a policy that does not scale, ``params.scales`` False). ``hung``: this
    cycle's evaluation of the hung-pod checks: where the shell counts its stuck pods
    (``obs.stuck``), a hung pod is not a pod still starting either."""
    ov = params.overload
    with np.errstate(invalid="ignore"):
        overloaded = obs.overloaded | (obs.utilization > ov.utilization_above) | (
            ov.when_scaling_wants_more & (desired > current))
    if obs.stuck is not None:
        overloaded = overloaded | pods_starting(obs.ready, obs.stuck, current, None if hung is None else hung.hung)
    if not params.scales:  # no replicas bounds: never a scale-up (a ceiling of 2**31 - 1 let it grow unbounded)
        return overloaded, np.asarray(current, dtype=np.int64).copy()
    step = np.maximum(1, np.ceil(current * params.scale_up_step_ratio)).astype(np.int64)
    return overloaded, np.minimum(params.max_replicas, np.where(desired > current, desired, current + step))


def _mask(rows, n: int) -> np.ndarray:
    """(N,) bool from None, a bool mask or row indices."""
    if rows is None:
        return np.zeros(n, bool)
    rows = np.asarray(rows)
    if rows.dtype == bool:
        return rows.reshape(n)
    out = np.zeros(n, bool)
    out[rows.astype(np.int64)] = True
    return out
