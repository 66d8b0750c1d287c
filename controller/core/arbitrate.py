"""Arbitration: the scaling decision and the health proposals -> at most one action per target.

Written down once, here, and tested as a table (tests/core/test_arbitrate.py). For each target,
in order, the first rule that applies decides the health side:

1. held (circuit open) -> no health action (Held), whether or not a check fires
2. a verification window is open -> no health action (Verifying), idem; but for a pod restart
   beside a pod-restart verification (``beside_verification``: another pod-scope check's, on pods
   the open windows do not judge, a window free), which the rules below decide as without a
   window, unless it would turn target-wide (systemic, escalated, or blamed on the revision)
2b. a record revision check judges the new revision worse (a StatefulSet's canary, a Deployment's
   new ReplicaSet) and nothing but a record is asked -> RevisionWorseRecorded (said, not acted on;
   a rollback check's verdict asks for a rollback, so it is not here)
3. rollback: a revision check judged the new revision worse than the stable one
   (RollbackRevisionWorse), a firing check is explained by a new revision (NewRevision), by the
   guard after a rollout (AfterRollout), or its action is rollback on a revision not known healthy (Check), or
   the ladder escalated to rollback -> Rollback if a known-healthy revision exists on the cluster
   and the rollbacks-per-day budget allows, else held (budget) or NoHealthyRevision
   (RollbackTargetGone when the known-healthy revision's ReplicaSet is gone); but a check asking
   for a rollback while the revision checks find the new revision no worse (or have not decided
   and the service is overloaded) is excused (OverloadNotRelease)
3b. a restart of only the pods of a revision judged worse by a record check (2b; a rolling
   restart, or restart-pod firing on none of the stable pods) -> RevisionWorseRecorded, not sent:
   they would come back on the same revision
3b'. the same restart while a record revision check still compares that revision with the stable
   pods beside it and has no verdict yet (its pods have served) -> RestartWaitsForRevisionVerdict,
   not sent: 3b once judged worse, the restart rules below once judged no worse
3c. restart-pod firing only on pods a StatefulSet's scale-down removes (condemned: ordinal at or
   above spec.replicas) -> CondemnedPodNotRestarted, not sent: their restart would be their removal
4. a restart is wanted but the service is overloaded -> scale-up instead (ScaleUpOverloaded);
   at replicas.max it waits (AtMaxReplicas); for a policy that never scales (health-only) it
   waits for the pods still starting (RestartWaitsForStartingPods). Not while an OrderedReady
   StatefulSet has pods to create (fewer than spec.replicas: a walk up's, or one deleted and not
   yet recreated): its controller creates them one
   at a time, each once every lower pod is Ready, so a scale-up adds pods after those (nothing
   now), and waiting may never end (a broken pod not Ready stops the walk for good): the restart
   goes on to rule 5
5. a pod-by-pod restart is wanted but the check fires on most pods (systemic) -> no restart
6. restart-pod / rolling-restart: wait while a rollout is in progress (but restart-pod not for
   a rollout that waits for the very pods it restarts: a StatefulSet's broken pods off its update
   revision); a rolling restart of a StatefulSet held at a partition is refused
   (RollingRestartPartitioned: it would restart only the pods at or above it, on a new revision);
   held when the restart budget is spent (heal names a hung-pod check's HungPodRestartsExhausted);
   restart-pod waits when max-unavailable leaves no room;
   else restart
7. scale-up wanted by a check -> scale up (cooldown and max replicas permitting); not while an
   OrderedReady StatefulSet walks up (OrderedScaleUpPending: the count asked for is not reached yet:
   its highest pod is below it; a pod deleted below the top and being recreated is no walk up)
8. record -> RecordOnly

Rollback beats restart beats scale. Whenever the health side takes no action, the scaling
decision goes through, except a scale-down while a rollout or rollback is in progress (blocked)
or below a recent health scale-up's replica floor (clipped). A rule that holds a target or
defers a health action keeps its reason code even when the scaling action goes through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.core.health.params import Act, HealthReason, Remedy

R = HealthReason


@dataclass(frozen=True)
class ArbitrationInput:
    """Everything arbitration looks at, each (N,).

    current: spec replicas; desired: the scaling side's desired replicas (= current without
    scaling); scale_up_to: the replicas a health scale-up would set (= current at max);
    floor: an active health replica floor (0 for none); rollout: a rollout, or a rollback the
    health side issued, is in progress; overloaded: unready or slow pods are blamed on load.
    want: the Remedy the firing checks (or the escalation ladder) propose, NONE if none;
    escalated: want comes from the ladder after a failed verification; systemic: want is a
    pod-by-pod restart for a check firing on most pods; suspect: the current revision is not
    known healthy; new_revision / after_rollout: a firing check is explained by the current
    revision (see remediate.py); can_rollback: a known-healthy revision other than the current
    one exists on the cluster; target_gone: none does, because the one remembered is no longer
    listed (its ReplicaSet trimmed); paused: someone else paused the Deployment (spec.paused, not
    this controller's rollout hold), so a rollback would not progress. held, verifying, cooldown (a health scale-up happened within the verify
    window): bool. restart_budget: pods that may still be restarted this hour; restart_room:
    pods restart-pod may restart now (budget and max-unavailable applied); rollback_budget:
    rollbacks left today.
    """

    current: np.ndarray
    desired: np.ndarray
    scale_up_to: np.ndarray
    floor: np.ndarray
    rollout: np.ndarray
    overloaded: np.ndarray
    want: np.ndarray
    escalated: np.ndarray
    systemic: np.ndarray
    suspect: np.ndarray
    new_revision: np.ndarray
    after_rollout: np.ndarray
    can_rollback: np.ndarray
    held: np.ndarray
    verifying: np.ndarray
    cooldown: np.ndarray
    restart_budget: np.ndarray
    restart_room: np.ndarray
    rollback_budget: np.ndarray
    revision_worse: np.ndarray | None = None  # (N,) bool: a revision check judged the new revision worse
    excused: np.ndarray | None = None  # (N,) bool: the revision checks find the new revision no worse (or overload)
    target_gone: np.ndarray | None = None  # (N,) bool: the known-healthy revision is no longer on the cluster
    paused: np.ndarray | None = None  # (N,) bool: paused by someone else: no rollback until it is resumed
    # (N,) bool: the rollout waits for the very pods restart-pod would restart (a StatefulSet's, not
    # Ready and off its update revision: its controller recreates them on it), so it does not end
    # without their restart: restart-pod goes ahead (a rolling restart still waits)
    rollout_waits_for_pods: np.ndarray | None = None
    # (N,) bool: a StatefulSet held at a rollingUpdate.partition (a canary): a rolling restart (a new
    # template revision) would replace the canary's release and restart the pods at or above the
    # partition only: refused (RollingRestartPartitioned); restart-pod is not (a pod comes back on
    # its ordinal's revision)
    partitioned: np.ndarray | None = None
    # (N,) bool: the policy never writes a replica count (health-only, no replicas bounds): an
    # overloaded target's restart waits for its starting pods (RestartWaitsForStartingPods), as
    # there is no scale-up to give it instead
    never_scales: np.ndarray | None = None
    # (N,) bool: a record revision check judges the new revision worse (a StatefulSet's canary, a
    # Deployment's new ReplicaSet): said (RevisionWorseRecorded) where nothing else acts
    release_worse: np.ndarray | None = None
    # (N,) bool: the restart wanted would restart only that revision's pods (they would come back
    # on it): not sent (RevisionWorseRecorded)
    release_explains: np.ndarray | None = None
    # (N,) bool: the restart-pod wanted would restart only the pods of a new revision that a record
    # revision check still compares with the stable pods beside it, no verdict yet: it waits for the
    # verdict (RestartWaitsForRevisionVerdict), not sent
    release_waits: np.ndarray | None = None
    # (N,) bool: an OrderedReady StatefulSet (podManagementPolicy's default): its controller creates
    # a scale-up's pods one at a time, lowest ordinal first, each once every lower pod is Ready, and
    # removes a scale-down's highest first. False for a Deployment and a Parallel StatefulSet
    # (their pods are created at once)
    ordered: np.ndarray | None = None
    # (N,) int: the pods the workload's controller has created (status.replicas); with ``ordered``
    # and below ``current``, the StatefulSet is still walking up to spec.replicas
    created: np.ndarray | None = None
    # (N,) int: the ordinals the StatefulSet's pods reach (the highest listed, counted from
    # ordinals.start); with ``ordered`` and below ``current``, it walks up to spec.replicas (a
    # scale-up not reached yet). Not ``created``: a pod deleted below the top (restarted) and not
    # yet recreated lowers status.replicas, though nothing walks. None: ``created``
    reached: np.ndarray | None = None
    # (N,) bool: the restart-pod wanted may go ahead while ``verifying`` (remediate.beside_verification:
    # every open window verifies another pod-scope check's pod restart, one window is free, and the
    # check fires on pods no window judges); a rolling restart or rollback never does
    beside_verification: np.ndarray | None = None
    # (N,) bool: every pod restart-pod would restart is condemned: at or above its StatefulSet's
    # spec.replicas, removed by the scale-down (not recreated): not restarted (CondemnedPodNotRestarted)
    condemned: np.ndarray | None = None

    @classmethod
    def of(cls, current, desired=None, **fields) -> "ArbitrationInput":
        """Build with neutral defaults (nothing wanted, nothing blocked, budgets ample)."""
        current = np.asarray(current, dtype=np.int64).reshape(-1)
        n = current.size

        def arr(name: str, default, dtype):
            v = fields.pop(name, default)
            return np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy()

        out = cls(
            current=current,
            desired=arr("desired", current if desired is None else desired, np.int64),
            scale_up_to=arr("scale_up_to", current + 1, np.int64),
            floor=arr("floor", 0, np.int64),
            rollout=arr("rollout", False, bool),
            overloaded=arr("overloaded", False, bool),
            want=arr("want", int(Remedy.NONE), np.int64),
            escalated=arr("escalated", False, bool),
            systemic=arr("systemic", False, bool),
            suspect=arr("suspect", True, bool),
            new_revision=arr("new_revision", False, bool),
            after_rollout=arr("after_rollout", False, bool),
            can_rollback=arr("can_rollback", True, bool),
            held=arr("held", False, bool),
            verifying=arr("verifying", False, bool),
            cooldown=arr("cooldown", False, bool),
            restart_budget=arr("restart_budget", 6, np.int64),
            restart_room=arr("restart_room", 1, np.int64),
            rollback_budget=arr("rollback_budget", 2, np.int64),
            revision_worse=arr("revision_worse", False, bool),
            excused=arr("excused", False, bool),
            target_gone=arr("target_gone", False, bool),
            paused=arr("paused", False, bool),
            rollout_waits_for_pods=arr("rollout_waits_for_pods", False, bool),
            partitioned=arr("partitioned", False, bool),
            never_scales=arr("never_scales", False, bool),
            release_worse=arr("release_worse", False, bool),
            release_explains=arr("release_explains", False, bool),
            release_waits=arr("release_waits", False, bool),
            ordered=arr("ordered", False, bool),
            reached=arr("reached", fields.get("created", current), np.int64),  # before created is taken
            created=arr("created", current, np.int64),
            condemned=arr("condemned", False, bool),
            beside_verification=arr("beside_verification", False, bool),
        )
        if fields:
            raise TypeError(f"unknown arbitration inputs: {sorted(fields)}")
        return out


@dataclass(frozen=True)
class Arbitration:
    """The outcome, each (N,): one Act per target with its reason code.

    replicas: the new replica count for SCALE, else current; restart: pods to restart for
    RESTART_POD (1 for ROLLING_RESTART, as the restart budget counts it), else 0; hold: the
    target is held from now on (a budget ran out, or an escalated rollback has nowhere to go),
    with hold_reason.
    """

    action: np.ndarray
    reason: np.ndarray
    replicas: np.ndarray
    restart: np.ndarray
    hold: np.ndarray
    hold_reason: np.ndarray
    health: np.ndarray  # (N,) bool: the action comes from the health side, not the scaling pass-through


class _Rules:
    """First matching rule wins: each ``decide`` only touches rows not decided yet."""

    def __init__(self, n: int, current: np.ndarray):
        self.open = np.ones(n, bool)
        self.action = np.full(n, int(Act.NONE), np.int64)
        self.reason = np.full(n, int(R.NO_ACTION), np.int64)
        self.replicas = current.copy()
        self.restart = np.zeros(n, np.int64)
        self.hold = np.zeros(n, bool)
        self.health = np.zeros(n, bool)

    def decide(self, mask: np.ndarray, reason, action: Act = Act.NONE, replicas=None, restart=None,
               hold: bool = False) -> None:
        m = mask & self.open
        if replicas is not None:
            self.replicas = np.where(m, replicas, self.replicas)
        if restart is not None:
            self.restart = np.where(m, restart, self.restart)
        if not m.any():  # most rules match no row: nothing to write (reason and action stay int64)
            return
        self.reason = np.where(m, reason, self.reason)
        self.action = np.where(m, int(action), self.action)
        if hold:
            self.hold |= m
        if action is not Act.NONE:
            self.health |= m
        self.open &= ~m


def arbitrate(inp: ArbitrationInput) -> Arbitration:
    """At most one action per target; see the module docstring for the rules, in order."""
    n = inp.current.size
    t = _Rules(n, inp.current)
    want = inp.want
    wants = want != Remedy.NONE
    t.decide(inp.held, R.HELD)
    t.decide(inp.verifying & ~_beside_verification(inp), R.VERIFYING)
    release_worse = inp.release_worse if inp.release_worse is not None else np.zeros(n, bool)
    t.decide(release_worse & (~wants | (want == Remedy.RECORD)), R.REVISION_WORSE_RECORDED)
    t.decide(~wants, R.NO_ACTION)
    if t.open.any():  # the common cycle wants nothing: no rule below can match, only scaling passes
        _health_rules(t, inp, release_worse)
    _pass_scaling(t, inp)
    hold_reason = np.where(t.hold, t.reason, -1)
    return Arbitration(t.action.astype(np.int8), t.reason, t.replicas, t.restart, t.hold, hold_reason, t.health)


def _health_rules(t: _Rules, inp: ArbitrationInput, release_worse: np.ndarray) -> None:
    """Rules 3 on, for the targets that want a remedy (``arbitrate``)."""
    want, esc = inp.want, inp.escalated
    _rollback_rules(t, inp)
    restart = (want == Remedy.RESTART_POD) | (want == Remedy.ROLLING_RESTART)
    if inp.release_explains is not None:
        t.decide(restart & release_worse & inp.release_explains, R.REVISION_WORSE_RECORDED)
    if inp.release_waits is not None:
        t.decide(restart & inp.release_waits, R.RESTART_WAITS_FOR_REVISION_VERDICT)
    if inp.condemned is not None:
        t.decide((want == Remedy.RESTART_POD) & ~inp.systemic & inp.condemned, R.CONDEMNED_POD_NOT_RESTARTED)
    scale_to = np.maximum(inp.scale_up_to, inp.desired)
    can_scale = scale_to > inp.current
    walking_up = ordered_walk_up(inp)
    # while an OrderedReady StatefulSet has pods to create (a walk up's, or one deleted and not yet
    # recreated), overload is no reason to trade a restart for replicas (module docstring, rule 4):
    # they would come after those; the restart rules below decide
    overloaded = inp.overloaded & ~ordered_pods_pending(inp)
    t.decide(restart & overloaded & inp.cooldown, R.SCALE_UP_COOLDOWN)
    t.decide(restart & overloaded & can_scale, R.SCALE_UP_OVERLOADED, Act.SCALE, replicas=scale_to)
    if inp.never_scales is not None:
        t.decide(restart & overloaded & inp.never_scales, R.RESTART_WAITS_FOR_STARTING_PODS)
    t.decide(restart & overloaded, R.AT_MAX_REPLICAS)
    # Systemic and not overloaded (handled above): no pod-by-pod restarts; the workload is
    # restarted as a whole, paced by its own rollout budget (e.g. a leak every pod shares).
    systemic_restart = (want == Remedy.RESTART_POD) & inp.systemic
    want = np.where(systemic_restart, Remedy.ROLLING_RESTART, want)
    waits_for_pods = (want == Remedy.RESTART_POD) & (inp.rollout_waits_for_pods if inp.rollout_waits_for_pods
                                                    is not None else False)
    t.decide(restart & inp.rollout & ~waits_for_pods, R.ROLLOUT_IN_PROGRESS)
    if inp.partitioned is not None:
        t.decide((want == Remedy.ROLLING_RESTART) & inp.partitioned, R.ROLLING_RESTART_PARTITIONED)
    t.decide(restart & (inp.restart_budget <= 0), R.RESTART_BUDGET_EXHAUSTED, hold=True)
    pods = want == Remedy.RESTART_POD
    t.decide(pods & (inp.restart_room <= 0), R.MAX_UNAVAILABLE)
    t.decide(pods, np.where(esc, R.ESCALATED, R.RESTART_FIRING_PODS), Act.RESTART_POD,
             restart=np.minimum(inp.restart_room, inp.restart_budget))
    t.decide(want == Remedy.ROLLING_RESTART,
             np.where(esc, R.ESCALATED, np.where(systemic_restart, R.SYSTEMIC_NO_RESTART, R.ROLLING_RESTART)),
             Act.ROLLING_RESTART, restart=1)
    up = want == Remedy.SCALE_UP
    t.decide(up & walking_up, R.ORDERED_SCALE_UP_PENDING)
    t.decide(up & inp.cooldown, R.SCALE_UP_COOLDOWN)
    t.decide(up & can_scale, np.where(esc, R.ESCALATED, R.SCALE_UP_CHECK), Act.SCALE, replicas=scale_to)
    t.decide(up, R.AT_MAX_REPLICAS)
    t.decide(want == Remedy.RECORD, R.RECORD_ONLY)


def _beside_verification(inp: ArbitrationInput) -> np.ndarray:
    """(N,) bool: rule 2 lets the wanted pod restart through (``beside_verification``) and the rules
    after it keep it a pod restart: not escalated, not systemic (a rolling restart), not explained by
    the revision where there is a revision to roll back to (a rollback, rule 3; without one it falls
    through to the restart rules)."""
    if inp.beside_verification is None:
        return np.zeros(inp.current.size, bool)
    worse = inp.revision_worse if inp.revision_worse is not None else False
    rollback = (inp.new_revision | inp.after_rollout | worse) & inp.can_rollback
    return inp.beside_verification & (inp.want == Remedy.RESTART_POD) & ~inp.escalated & ~inp.systemic & ~rollback


def ordered_pods_pending(inp: ArbitrationInput) -> np.ndarray:
    """(N,) bool: an OrderedReady StatefulSet whose controller has created fewer pods than its spec
    replicas (a walk up's, or a pod deleted and not yet recreated): it creates them one at a time,
    each once every lower one is Ready, before any a scale-up would add."""
    if inp.ordered is None or inp.created is None:
        return np.zeros(inp.current.size, bool)
    return inp.ordered & (inp.created < inp.current)


def ordered_walk_up(inp: ArbitrationInput) -> np.ndarray:
    """(N,) bool: an OrderedReady StatefulSet walking up: its pods do not reach its spec replicas
    yet (``reached``, else ``created``), a scale-up's not all created. A pod deleted below the top
    and being recreated under its name is not a walk up."""
    if inp.ordered is None or inp.created is None:
        return np.zeros(inp.current.size, bool)
    reached = inp.created if inp.reached is None else np.maximum(inp.reached, inp.created)
    return inp.ordered & (reached < inp.current)


def _rollback_rules(t: _Rules, inp: ArbitrationInput) -> None:
    """Rule 3: rollback when the current revision is to blame, budget and history permitting."""
    asked = inp.want == Remedy.ROLLBACK
    worse = inp.revision_worse if inp.revision_worse is not None else np.zeros(inp.current.size, bool)
    explained = inp.new_revision | inp.after_rollout | worse
    rollback = explained | (asked & (inp.suspect | inp.escalated))
    reason = np.where(worse, R.ROLLBACK_REVISION_WORSE, np.where(inp.new_revision, R.ROLLBACK_NEW_REVISION,
                      np.where(inp.after_rollout, R.ROLLBACK_AFTER_ROLLOUT,
                               np.where(inp.escalated, R.ESCALATED, R.ROLLBACK_CHECK))))
    # overload, not the release: a workload-wide check asking for a rollback while the revision
    # comparison runs and finds the new revision no worse (both revisions serve the same load),
    # or has not decided yet while the service is overloaded
    if inp.excused is not None:
        t.decide(asked & inp.excused & ~worse & ~inp.escalated, R.OVERLOAD_NOT_RELEASE)
    doable = rollback & inp.can_rollback
    t.decide(doable & (inp.rollback_budget <= 0), R.ROLLBACK_BUDGET_EXHAUSTED, hold=True)
    # a Deployment someone else paused does not roll back (the cluster would refuse the write at
    # every step): nothing is sent nor charged, and the rollback goes out once it is resumed
    if inp.paused is not None:
        t.decide(doable & inp.paused, R.ROLLBACK_BLOCKED_BY_PAUSE)
    t.decide(doable, reason, Act.ROLLBACK)
    # nowhere to roll back to: an escalated rollback stops (held); an asked one only records;
    # a restart explained by the revision falls through to the restart rules. Gone: the revision
    # it would go to was trimmed from the cluster, said apart so the operator knows why.
    gone = inp.target_gone if inp.target_gone is not None else np.zeros(inp.current.size, bool)
    nowhere = np.where(gone, R.ROLLBACK_TARGET_GONE, R.NO_HEALTHY_REVISION)
    t.decide(asked & inp.escalated, nowhere, hold=True)
    t.decide(asked & inp.suspect, nowhere)
    t.decide(asked, R.CURRENT_REVISION_HEALTHY)


def _pass_scaling(t: _Rules, inp: ArbitrationInput) -> None:
    """Where the health side took no action, the scaling decision goes through (rules above)."""
    free = t.action == Act.NONE
    quiet = t.reason == R.NO_ACTION
    cur, desired = inp.current, inp.desired
    floored = np.where(desired < cur, np.minimum(cur, np.maximum(desired, inp.floor)), desired)
    up = free & (floored > cur)
    down = free & (floored < cur)
    blocked_rollout = down & inp.rollout
    blocked_floor = free & (desired < cur) & (floored >= cur)
    go = up | (down & ~inp.rollout)
    t.action = np.where(go, int(Act.SCALE), t.action)
    t.replicas = np.where(go, floored, t.replicas)
    t.reason = np.where(go & quiet, R.SCALING, t.reason)
    t.reason = np.where(blocked_rollout & quiet, R.SCALE_DOWN_BLOCKED_BY_ROLLOUT, t.reason)
    t.reason = np.where(blocked_floor & quiet, R.SCALE_DOWN_BLOCKED_BY_FLOOR, t.reason)
