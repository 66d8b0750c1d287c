"""Compiled health parameters and the integer codes the health core stores in its arrays.

The policy layer builds a :class:`HealthParams` from a validated ``HealthSpec``
(``controller.policy.compile.compile_health_params``); the core never imports the policy
layer. Durations end in ``_s`` (seconds), ratios in ``_ratio`` or ``_share`` (0..1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from controller.core.scaling.params import Smoothing
from controller.model import ActionKind, CodeEnum
from controller.core.health.revision_test import RevisionTestParams


class Scope(CodeEnum):
    """Where a check's signal lives: one value per workload, or one series per pod."""

    WORKLOAD = 0
    POD = 1


class Direction(CodeEnum):
    """Which side of the unhealthy threshold is bad."""

    ABOVE = 0  # unhealthy when value > unhealthy; recovered when value < recovered
    BELOW = 1  # unhealthy when value < unhealthy; recovered when value > recovered


#: What a firing check proposes (``Remedy``) and the action chosen for a target (``Act``) are one
#: type, ``controller.model.ActionKind``, whose value is the arbitration rank (higher wins); the
#: two names say which role an array plays in the health core.
Remedy = Act = ActionKind


class Phase(CodeEnum):
    """A check's alert state, as Prometheus names them."""

    OK = 0
    PENDING = 1
    FIRING = 2


class HealthReason(CodeEnum):
    """Why a target got the action it got from the health side (and arbitration).

    Stored as int codes in the core's arrays; ``.code`` is the CamelCase name used in records,
    Events and metrics. New members go at the end so stored codes keep their meaning.
    """

    NO_ACTION = 0  # nothing firing, the scaling side wants no change
    SCALING = 1  # nothing firing: the scaling decision goes through
    SCALE_DOWN_BLOCKED_BY_ROLLOUT = 2  # a rollout or a rollback is in progress
    SCALE_DOWN_BLOCKED_BY_FLOOR = 3  # a recent health scale-up holds a replica floor
    RESTART_FIRING_PODS = 4
    ROLLING_RESTART = 5
    ROLLBACK_CHECK = 6  # a check whose action is rollback fired on a suspect revision
    ROLLBACK_NEW_REVISION = 7  # a check started firing within the new-revision window
    ROLLBACK_AFTER_ROLLOUT = 8  # the guard: within the rollback window after the rollout completed
    SCALE_UP_OVERLOADED = 9  # overloaded: a scale-up instead of a restart
    SCALE_UP_CHECK = 10  # a check whose action is scale-up fired
    SYSTEMIC_NO_RESTART = 11  # firing on most pods at once: no pod-by-pod restarts
    RECORD_ONLY = 12  # a check whose action is record fired
    NO_HEALTHY_REVISION = 13  # a rollback is called for but no known-healthy revision exists
    ROLLOUT_IN_PROGRESS = 14  # a restart waits for the rollout to finish
    MAX_UNAVAILABLE = 15  # a restart waits: too many pods unavailable already
    RESTART_BUDGET_EXHAUSTED = 16  # held
    ROLLBACK_BUDGET_EXHAUSTED = 17  # held
    HELD = 18  # the circuit breaker is open: no health action until re-armed
    VERIFYING = 19  # the last action's verification window is open: wait
    VERIFIED = 20  # outcome: the triggering check cleared after the action
    ESCALATED = 21  # the action is the next step of the ladder after a failed verification
    VERIFY_FAILED_HELD = 22  # outcome: verification failed at the top of the ladder: held
    REARMED = 23  # outcome: an operator re-armed the target
    SCALE_UP_COOLDOWN = 24  # a health scale-up happened within the verify window: wait
    AT_MAX_REPLICAS = 25  # a scale-up is called for but the workload is at max replicas
    CURRENT_REVISION_HEALTHY = 26  # a rollback check fired but the current revision is known healthy
    VERIFY_FAILED_ESCALATING = 27  # outcome: verification failed, the next ladder step follows
    ROLLBACK_REVISION_WORSE = 28  # a revision check: the new revision is worse than the stable one
    OVERLOAD_NOT_RELEASE = 29  # a rollback check fired but the revision checks find the new revision no worse
    ROLLOUT_PAUSED_FOR_EVIDENCE = 30  # the rollout is held (spec.paused) while its revision test is undecided
    ROLLOUT_RESUMED_GOOD = 31  # our hold ends: the revision test found the new revision no worse
    ROLLOUT_RESUMED_MAX_HOLD = 32  # our hold ends: the check's hold.maxDuration passed (the test goes on)
    ROLLOUT_RESUMED_NOT_TESTED = 33  # our hold ends: the revision is no longer under test
    # a rollback is called for but the known-healthy revision is no longer on the cluster (its
    # ReplicaSet was deleted, e.g. trimmed by the Deployment's spec.revisionHistoryLimit)
    ROLLBACK_TARGET_GONE = 34
    # a rollback is called for but someone else paused the Deployment (spec.paused): it would not
    # progress (kubectl rollout undo refuses it too); sent once it is resumed
    ROLLBACK_BLOCKED_BY_PAUSE = 35
    # outcome: the verification window closed unjudged: someone else changed the revision under it
    # (a deploy, a kubectl rollout undo); the new revision is judged as a release
    VERIFY_SUPERSEDED = 36
    # a rolling restart is called for but the StatefulSet is held at a rollingUpdate.partition (a
    # canary): it would make a new revision for the pods at or above the partition only (the
    # canary's release replaced by it, the pods below never restarted): not sent
    ROLLING_RESTART_PARTITIONED = 37
    # a restart is called for while pods are still starting (fewer Ready than spec.replicas, the
    # crash-looping ones aside: another's scale-up; not an OrderedReady StatefulSet still creating
    # pods one at a time: ORDERED_SCALE_UP_PENDING's comment) and the policy never scales
    # (health-only, no replicas bounds): it waits for them, where a policy that scales would scale
    # up instead (AtMaxReplicas only at replicas.max)
    RESTART_WAITS_FOR_STARTING_PODS = 38
    # a revision check whose action is record judged the new revision worse than the stable one (a
    # StatefulSet: a canary held at a partition, or its rolling update; a Deployment: its new
    # ReplicaSet against the old): said (a Warning Event, the records), not acted on; a restart of
    # that revision's pods for it is not sent either (they would come back on the same revision)
    REVISION_WORSE_RECORDED = 39
    # a hung-pod check fired: pods not Ready past their start-up for longer than its notReadyFor
    # while most pods of their revision are Ready (a stuck process, not a dependency down): restarted
    RESTART_HUNG_POD = 40
    # a health scale-up (a scale-up check, or one in place of a restart) is called for while an
    # OrderedReady StatefulSet still creates the pods of its last scale-up one at a time, each once
    # every lower ordinal is Ready: more replicas would be created after those, adding nothing now
    # (and nothing while a broken pod stops the walk): not sent; the scaling side's count still goes
    ORDERED_SCALE_UP_PENDING = 41
    # restart-pod fires only on pods a StatefulSet's scale-down removes (ordinal at or above
    # spec.replicas, condemned: deleted highest first, never recreated): their restart would be
    # their removal, charged to the restart budget: not sent
    CONDEMNED_POD_NOT_RESTARTED = 42
    # outcome: a hung-pod restart's verification failed (the pod hangs again, or its replacement
    # does): one pod's fault still, so it is restarted again while restartsPerHour allows, never
    # escalated up the ladder (a rolling restart, a rollback: the hung check never blames a release)
    HUNG_POD_HUNG_AGAIN = 43
    # held: a hung-pod check calls for a pod restart and restartsPerHour allows no more: restarts do
    # not cure that pod; nothing stronger follows (no rolling restart, no rollback)
    HUNG_POD_RESTARTS_EXHAUSTED = 44
    # outcome: a hung-pod restart's replacement was never seen running (stuck Pending: unschedulable,
    # an image pull) within rollout_wait_s past the window: it could not be judged, so the window
    # closes with no verdict (not a cure); a hang once it runs is a new RestartHungPod
    HUNG_REPLACEMENT_NOT_JUDGED = 45
    # a restart of only the pods of a new revision that a record revision check still compares with
    # the stable pods serving beside it (a StatefulSet's canary; no verdict yet, its pods have served)
    # waits for the verdict: judged worse they are not restarted (REVISION_WORSE_RECORDED: they would
    # come back on the same revision, and a bad release's pods fire one by one, so restarting the
    # first would fail its verification and hold the target); judged no worse they are, as any pod
    RESTART_WAITS_FOR_REVISION_VERDICT = 46

    @property
    def code(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


HEALTH_REASON_CODES: tuple[str, ...] = tuple(r.code for r in HealthReason)


@dataclass(frozen=True)
class CheckParams:
    """One health check, compiled.

    The check is unhealthy while ``value`` is strictly beyond ``unhealthy`` (above or below,
    per ``direction``) and recovered while strictly beyond ``recovered`` on the healthy side.
    Values between the two thresholds (the hysteresis band) keep the current state.
    """

    name: str
    scope: Scope
    direction: Direction
    unhealthy: float
    unhealthy_for_s: float
    recovered: float
    recovered_for_s: float
    action: Remedy
    fire_on_missing: bool = False
    smoothing: Smoothing = Smoothing.NONE
    half_life_s: float = 0.0
    window_s: float = 0.0
    percentile: float = 50.0
    #: a hung-pod check (controller/core/health/hung.py): no query; its per-pod value is the seconds
    #: the pod has been not Ready past this start-up allowance while most of its revision's peers are
    #: Ready (0 otherwise), unhealthy above ``unhealthy`` seconds. None: a query's check.
    hung_startup_s: float | None = None

    @property
    def is_hung(self) -> bool:
        """A hung-pod check: its signal is the pods' readiness, not a query."""
        return self.hung_startup_s is not None

    def sample_slots(self, interval_s: float) -> int:
        """Raw-sample ring length for window smoothing (0 for none/EWMA)."""
        if self.smoothing in (Smoothing.NONE, Smoothing.EWMA):
            return 0
        return int(np.ceil(self.window_s / max(interval_s, 1.0))) + 1


@dataclass(frozen=True)
class BudgetParams:
    """Limits on disruptive actions, per target.

    restarts_per_hour counts pods restarted (a rolling restart counts as one);
    rollbacks_per_day counts rollbacks; at most ``max_unavailable`` pods unavailable at once
    (a count, or a ratio of the replicas), not-ready pods included.
    """

    restarts_per_hour: int = 6
    rollbacks_per_day: int = 2
    max_unavailable_pods: int | None = None
    max_unavailable_ratio: float | None = 0.25

    def max_unavailable(self, replicas: np.ndarray) -> np.ndarray:
        """(N,) pods that may be unavailable at once out of ``replicas`` (N,).

        A ratio rounds down like Kubernetes' maxUnavailable, but never below one pod when it is
        positive: otherwise a small workload could never be healed.
        """
        replicas = np.asarray(replicas, dtype=np.float64)
        if self.max_unavailable_pods is not None:
            return np.full(replicas.shape, int(self.max_unavailable_pods), dtype=np.int64)
        ratio = self.max_unavailable_ratio or 0.0
        if ratio <= 0:
            return np.zeros(replicas.shape, dtype=np.int64)
        return np.maximum(1, np.floor(ratio * replicas + 1e-9)).astype(np.int64)


@dataclass(frozen=True)
class OverloadParams:
    """When pods that are unready or slow are blamed on load rather than on the pods.

    Overloaded when the observation says so, or utilization (a ratio, 1.0 = 100 %) is above
    ``utilization_above``, or (``when_scaling_wants_more``) the scaling side wants more
    replicas than there are.
    """

    utilization_above: float = math.inf
    when_scaling_wants_more: bool = True


def _longest_for(checks: tuple[CheckParams, ...]) -> float:
    return max((max(c.unhealthy_for_s, c.recovered_for_s) for c in checks), default=0.0)


def default_verify_window_s(checks: tuple[CheckParams, ...]) -> float:
    """Twice the longest ``for`` (unhealthy or recovered) of the checks, or 120 s when none is set."""
    longest = _longest_for(checks)
    return 2.0 * longest if longest > 0 else 120.0


def hung_verify_window_s(check: CheckParams, interval_s: float) -> float:
    """Seconds a restart a hung-pod check triggered must be verified for (0 for another check): a
    replacement pod is judged hung only once its start-up and notReadyFor have passed (and the
    check's ``for``, 0 as compiled), seen the cycle after; a shorter window passes every restart
    before its replacement could be judged, and a pod that hangs again is a fresh RestartHungPod."""
    if not check.is_hung:
        return 0.0
    return float(check.hung_startup_s) + check.unhealthy + check.unhealthy_for_s + interval_s


@dataclass(frozen=True)
class HealthParams:
    """Everything the health core needs for the targets of one policy.

    verify_window_s: after a restart or rollback, the triggering check must clear within this
    window (extended while a rollout is in progress), else the ladder escalates; a hung-pod check's
    own window is longer when its start-up + notReadyFor + a cycle is (``verify_windows_s``).
    escalation: the ladder, lowest step first; empty means no escalation (a failed
    verification holds the target).
    systemic_share: a pod-scope check firing on at least this share of a target's pods (and
    on at least ``systemic_min_pods`` pods) is systemic: no pod-by-pod restarts.
    new_revision_window_s: a check whose episode began within this long after the current
    revision became current blames the revision (rollback).
    rollback_window_s: the guard: a check that begins while the rollout of a revision has
    been complete for less than this still rolls back (even if the revision has meanwhile
    become known-healthy: the rollback then goes to the previous healthy revision).
    healthy_after_s: a revision becomes known-healthy once its rollout is complete and no
    check has been pending or firing for this long.
    scale_up_step_ratio: a health scale-up adds max(1, ceil(ratio * current)) replicas unless
    the scaling side wants more; the new count is a floor for ``scale_up_hold_s``.
    rollout_wait_s: how long past its deadline a verification waits for a rollout to finish
    before it is judged anyway (a stuck rollout must not block healing forever).
    interval_s: the seconds one health step covers (the policy's interval; the reconciler passes
    the time since the previous step): per-pod rates times it are a step's requests.
    rollout_interval_s: while a rollout is in progress the health side also runs this often,
    between the full cycles (None: only with them); the smoothing rings are sized for it.
    revision_checks: ``scope: revision`` checks, a sequential comparison of the new revision's
    pods with the stable revision's while a rollout is in progress and for ``rollback_window_s``
    after it (controller/core/health/revision_test.py); kept apart from ``checks``.
    """

    checks: tuple[CheckParams, ...]
    budgets: BudgetParams = field(default_factory=BudgetParams)
    rollback_window_s: float = 1800.0
    escalation: tuple[Remedy, ...] = ()
    verify_window_s: float = 120.0
    systemic_share: float = 0.5
    systemic_min_pods: int = 2
    new_revision_window_s: float = 1800.0
    healthy_after_s: float = 300.0
    overload: OverloadParams = field(default_factory=OverloadParams)
    interval_s: float = 15.0
    rollout_interval_s: float | None = None
    max_replicas: int = 2**31 - 1
    #: False for a policy without replicas bounds (health-only, no scale-up check or step): it never
    #: writes a replica count, so where an overloaded service (pods still starting) would get a
    #: scale-up instead of a restart, the restart waits for them (RestartWaitsForStartingPods)
    scales: bool = True
    scale_up_step_ratio: float = 0.25
    scale_up_hold_s: float = 300.0
    rollout_wait_s: float = 600.0
    name: str = ""
    revision_checks: tuple[RevisionTestParams, ...] = ()

    @classmethod
    def of(cls, checks: tuple[CheckParams, ...], **overrides) -> "HealthParams":
        """With the documented defaults derived from the checks (verify window)."""
        overrides.setdefault("verify_window_s", default_verify_window_s(checks))
        return cls(checks=tuple(checks), **overrides)

    @property
    def shortest_interval_s(self) -> float:
        """The shortest time between two health steps (sizes the smoothing rings)."""
        return min(self.interval_s, self.rollout_interval_s or self.interval_s)

    # --- per-check columns, (C,) arrays -----------------------------------------------------

    @cached_property
    def check_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks)

    @cached_property
    def scopes(self) -> np.ndarray:
        return np.asarray([int(c.scope) for c in self.checks], dtype=np.int64)

    @cached_property
    def workload_columns(self) -> np.ndarray:
        """Indices of the workload-scope checks, in check order."""
        return np.flatnonzero(self.scopes == Scope.WORKLOAD)

    @cached_property
    def pod_columns(self) -> np.ndarray:
        """Indices of the pod-scope checks, in check order."""
        return np.flatnonzero(self.scopes == Scope.POD)

    @cached_property
    def hung(self) -> np.ndarray:
        """(C,) bool: the hung-pod checks (their signal computed from the pods, no query)."""
        return np.asarray([c.is_hung for c in self.checks], dtype=bool)

    @cached_property
    def verify_windows_s(self) -> np.ndarray:
        """(C,) seconds the verification of an action each check triggered stays open: ``verify_window_s``,
        or for a hung-pod check at least its startup + notReadyFor (+ its ``for``) + one cycle."""
        return np.asarray([max(self.verify_window_s, hung_verify_window_s(c, self.interval_s)) for c in self.checks],
                          dtype=float)

    @property
    def longest_verify_window_s(self) -> float:
        """The longest a verification window can stay open before any rollout wait (s)."""
        return max([self.verify_window_s, *self.verify_windows_s.tolist()])

    @property
    def longest_verify_open_s(self) -> float:
        """The longest a verification window can stay open (s): its window and the wait for a rollout in
        progress past it; for a hung-pod restart, before that, the wait for its replacement to run
        (remediate.verify) and that replacement's start-up + notReadyFor + for once it runs at its end."""
        hung = [self.rollout_wait_s + hung_verify_window_s(c, 0.0) for c in self.checks if c.is_hung]
        return self.longest_verify_window_s + max(hung, default=0.0) + self.rollout_wait_s

    @cached_property
    def actions(self) -> np.ndarray:
        return np.asarray([int(c.action) for c in self.checks], dtype=np.int64)

    @cached_property
    def effective_actions(self) -> np.ndarray:
        """(C,) the Remedy each check proposes: restart-pod on a workload-scope check, which
        names no pod, becomes a rolling restart."""
        restart_pod = (self.actions == Remedy.RESTART_POD) & (self.scopes == Scope.WORKLOAD)
        return np.where(restart_pod, int(Remedy.ROLLING_RESTART), self.actions)

    @cached_property
    def rollback_sources(self) -> tuple[str, ...]:
        """What can ask this policy for a rollback: the checks whose action is rollback, the
        revision checks that roll back, and "escalation" when the ladder has a rollback step."""
        names = [c.name for c in self.checks if c.action == Remedy.ROLLBACK]
        names += [c.name for c in self.revision_checks if c.rollback]
        return tuple(names) + (("escalation",) if Remedy.ROLLBACK in self.escalation else ())

    @cached_property
    def escalation_next(self) -> np.ndarray:
        """(len(Remedy),): the ladder step after each remedy, Remedy.NONE at the top.

        A remedy on the ladder escalates to the step after it; a remedy not on the ladder
        escalates to the first step that ranks above it.
        """
        ladder = [int(r) for r in self.escalation]
        out = np.zeros(len(Remedy), dtype=np.int64)
        for r in Remedy:
            if int(r) in ladder:
                pos = ladder.index(int(r))
                out[r] = ladder[pos + 1] if pos + 1 < len(ladder) else Remedy.NONE
            else:
                out[r] = next((s for s in ladder if s > r), Remedy.NONE)
        out[Remedy.NONE] = Remedy.NONE
        return out

    @property
    def restart_slots(self) -> int:
        return max(int(self.budgets.restarts_per_hour), 0) + 2

    @property
    def rollback_slots(self) -> int:
        return max(int(self.budgets.rollbacks_per_day), 0) + 2
