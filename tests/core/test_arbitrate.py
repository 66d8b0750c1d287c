"""Arbitration as a table: one row per rule, then properties over random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.arbitrate import ArbitrationInput, arbitrate
from controller.core.health.params import Act, HealthReason, Remedy

R = HealthReason
RB, RP, RR, UP, REC = Remedy.ROLLBACK, Remedy.RESTART_POD, Remedy.ROLLING_RESTART, Remedy.SCALE_UP, Remedy.RECORD

# An OrderedReady StatefulSet at spec.replicas 4 with 3 pods created (WALK): its controller creates
# web-3 once web-0..2 are all Ready. The replicas not created yet are no starting pods a scale-up
# would add to (its pods would come after them), and a broken pod not Ready stops the walk for
# good: the restart goes on to the restart rules (it was ScaleUpOverloaded, a step per cooldown up
# to replicas.max, AtMaxReplicas there, RestartWaitsForStartingPods for a health-only policy). A
# Deployment and a Parallel StatefulSet (ordered False: their pods are created at once), and an
# OrderedReady StatefulSet with every pod created (its last one starting), are as before.
WALK = dict(ordered=True, created=3, reached=3)
RECREATING = dict(ordered=True, created=3, reached=4)
ORDERED_ROWS = [
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, **WALK), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="ordered-walk-up-overloaded-restart-is-not-a-scale-up"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, cooldown=True, **WALK),
                 (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="ordered-walk-up-overloaded-restart-does-not-wait-for-a-cooldown"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=4, **WALK), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="ordered-walk-up-overloaded-restart-at-max-replicas-goes-ahead"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=4, never_scales=True, **WALK),
                 (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="ordered-walk-up-health-only-restart-does-not-wait-for-the-walk"),
    pytest.param(dict(want=RR, overloaded=True, scale_up_to=6, **WALK), (Act.ROLLING_RESTART, R.ROLLING_RESTART, 4, 1, False),
                 id="ordered-walk-up-overloaded-rolling-restart-is-not-a-scale-up"),
    # a Ready pod's restart still needs max-unavailable room (the pods not created count as unavailable,
    # as a PodDisruptionBudget counts them): it waits for the walk, said so; a pod not Ready has room
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, restart_room=0, **WALK),
                 (Act.NONE, R.MAX_UNAVAILABLE, 4, 0, False), id="ordered-walk-up-ready-pod-restart-waits-for-room"),
    pytest.param(dict(want=RP, overloaded=True, rollout=True, **WALK), (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="ordered-walk-up-restart-still-waits-for-a-rollout"),
    pytest.param(dict(want=RP, overloaded=True, systemic=True, **WALK), (Act.ROLLING_RESTART, R.SYSTEMIC_NO_RESTART, 4, 1, False),
                 id="ordered-walk-up-systemic-restart-is-a-rolling-restart"),
    pytest.param(dict(want=UP, scale_up_to=5, **WALK), (Act.NONE, R.ORDERED_SCALE_UP_PENDING, 4, 0, False),
                 id="ordered-walk-up-scale-up-check-adds-nothing"),
    pytest.param(dict(want=UP, scale_up_to=5, desired=6, **WALK), (Act.SCALE, R.ORDERED_SCALE_UP_PENDING, 6, 0, False),
                 id="ordered-walk-up-scale-up-check-waits-the-scaling-sides-count-goes"),
    pytest.param(dict(want=UP, escalated=True, scale_up_to=5, **WALK), (Act.NONE, R.ORDERED_SCALE_UP_PENDING, 4, 0, False),
                 id="ordered-walk-up-escalated-scale-up-adds-nothing"),
    pytest.param(dict(want=RP, new_revision=True, overloaded=True, **WALK), (Act.ROLLBACK, R.ROLLBACK_NEW_REVISION, 4, 0, False),
                 id="ordered-walk-up-rollback-rules-unchanged"),
    pytest.param(dict(desired=6, **WALK), (Act.SCALE, R.SCALING, 6, 0, False),
                 id="ordered-walk-up-scaling-side-scale-up-passes"),
    # walked up: every pod created, the last one starting: a starting pod as any
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, ordered=True, created=4),
                 (Act.SCALE, R.SCALE_UP_OVERLOADED, 5, 0, False), id="ordered-every-pod-created-overloaded-restart-scales-up"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, ordered=True, created=6),
                 (Act.SCALE, R.SCALE_UP_OVERLOADED, 5, 0, False), id="ordered-walking-down-overloaded-restart-scales-up"),
    pytest.param(dict(want=UP, scale_up_to=5, ordered=True, created=4), (Act.SCALE, R.SCALE_UP_CHECK, 5, 0, False),
                 id="ordered-every-pod-created-scale-up-check-scales-up"),
    # a pod deleted below the top (web-1 restarted, not yet recreated): status.replicas 3 of 4, the
    # pods reach web-3 (RECREATING). No walk up: a scale-up check scales (it was OrderedScaleUpPending);
    # its pods are still to create before any a scale-up adds, so overload still does not take a restart
    pytest.param(dict(want=UP, scale_up_to=5, **RECREATING), (Act.SCALE, R.SCALE_UP_CHECK, 5, 0, False),
                 id="ordered-pod-recreated-below-the-top-scale-up-check-scales-up"),
    pytest.param(dict(want=UP, escalated=True, scale_up_to=5, **RECREATING), (Act.SCALE, R.ESCALATED, 5, 0, False),
                 id="ordered-pod-recreated-below-the-top-escalated-scale-up-scales-up"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, **RECREATING),
                 (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="ordered-pod-recreated-below-the-top-overloaded-restart-is-not-a-scale-up"),
    pytest.param(dict(want=UP, scale_up_to=5, ordered=True, created=3, reached=3), (Act.NONE, R.ORDERED_SCALE_UP_PENDING, 4, 0, False),
                 id="ordered-walk-up-reached-below-spec-scale-up-check-adds-nothing"),
    pytest.param(dict(want=UP, scale_up_to=5, ordered=True, created=4, reached=3), (Act.SCALE, R.SCALE_UP_CHECK, 5, 0, False),
                 id="ordered-reached-read-below-status-replicas-is-no-walk"),
    # Deployments and Parallel StatefulSets: unchanged, pods not created yet or not
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, created=3), (Act.SCALE, R.SCALE_UP_OVERLOADED, 5, 0, False),
                 id="deployment-pods-not-created-overloaded-restart-scales-up-as-before"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=4, never_scales=True, created=3),
                 (Act.NONE, R.RESTART_WAITS_FOR_STARTING_PODS, 4, 0, False),
                 id="deployment-health-only-restart-waits-for-starting-pods-as-before"),
    pytest.param(dict(want=UP, scale_up_to=5, created=3), (Act.SCALE, R.SCALE_UP_CHECK, 5, 0, False),
                 id="deployment-scale-up-check-while-pods-are-created-as-before"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5, ordered=False, created=3),
                 (Act.SCALE, R.SCALE_UP_OVERLOADED, 5, 0, False), id="parallel-statefulset-overloaded-restart-scales-up"),
    pytest.param(dict(want=UP, scale_up_to=5, ordered=False, created=3), (Act.SCALE, R.SCALE_UP_CHECK, 5, 0, False),
                 id="parallel-statefulset-scale-up-check-scales-up"),
    # the reverse: a StatefulSet's scale-down removes its highest ordinals (OrderedReady: one at a
    # time; Parallel: at once), never recreated; restarting only those would be their removal
    pytest.param(dict(want=RP, condemned=True, ordered=True, created=6), (Act.NONE, R.CONDEMNED_POD_NOT_RESTARTED, 4, 0, False),
                 id="restart-of-only-condemned-pods-not-sent"),
    pytest.param(dict(want=RP, condemned=True, ordered=True, created=6, desired=3),
                 (Act.SCALE, R.CONDEMNED_POD_NOT_RESTARTED, 3, 0, False),
                 id="restart-of-only-condemned-pods-not-sent-scaling-passes"),
    pytest.param(dict(want=RP, condemned=True, overloaded=True, scale_up_to=5, created=6),
                 (Act.NONE, R.CONDEMNED_POD_NOT_RESTARTED, 4, 0, False),
                 id="restart-of-only-condemned-pods-not-a-scale-up-either"),
    pytest.param(dict(want=RP, condemned=True, escalated=True, created=6), (Act.NONE, R.CONDEMNED_POD_NOT_RESTARTED, 4, 0, False),
                 id="escalated-restart-of-only-condemned-pods-not-sent"),
    pytest.param(dict(want=RR, condemned=True, created=6), (Act.ROLLING_RESTART, R.ROLLING_RESTART, 4, 1, False),
                 id="rolling-restart-with-condemned-pods-goes-ahead"),
    pytest.param(dict(want=RP, ordered=True, created=6), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="ordered-walking-down-restart-of-a-kept-pod-goes-ahead"),
]

# (inputs, expected (action, reason, replicas, restart, hold)); current is 4 unless given.
ROWS = [
    pytest.param({}, (Act.NONE, R.NO_ACTION, 4, 0, False), id="nothing-wanted-nothing-to-do"),
    pytest.param(dict(desired=6), (Act.SCALE, R.SCALING, 6, 0, False), id="scale-up-passes"),
    pytest.param(dict(desired=2), (Act.SCALE, R.SCALING, 2, 0, False), id="scale-down-passes"),
    pytest.param(dict(desired=2, rollout=True), (Act.NONE, R.SCALE_DOWN_BLOCKED_BY_ROLLOUT, 4, 0, False),
                 id="no-scale-down-during-a-rollout-or-rollback"),
    pytest.param(dict(desired=6, rollout=True), (Act.SCALE, R.SCALING, 6, 0, False),
                 id="scale-up-during-a-rollout-is-allowed"),
    pytest.param(dict(desired=2, floor=3), (Act.SCALE, R.SCALING, 3, 0, False),
                 id="scale-down-clipped-at-the-health-floor"),
    pytest.param(dict(desired=2, floor=5), (Act.NONE, R.SCALE_DOWN_BLOCKED_BY_FLOOR, 4, 0, False),
                 id="scale-down-blocked-by-the-health-floor"),
    pytest.param(dict(want=RP, new_revision=True), (Act.ROLLBACK, R.ROLLBACK_NEW_REVISION, 4, 0, False),
                 id="rollback-beats-restart-when-a-new-revision-explains-it"),
    pytest.param(dict(want=RB, desired=8), (Act.ROLLBACK, R.ROLLBACK_CHECK, 4, 0, False),
                 id="rollback-beats-scale"),
    pytest.param(dict(want=RP, desired=2, restart_room=1), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="restart-beats-scale"),
    pytest.param(dict(want=RB, revision_worse=True, desired=8), (Act.ROLLBACK, R.ROLLBACK_REVISION_WORSE, 4, 0, False),
                 id="revision-comparison-rollback-beats-scale"),
    pytest.param(dict(want=RB, revision_worse=True, new_revision=True),
                 (Act.ROLLBACK, R.ROLLBACK_REVISION_WORSE, 4, 0, False), id="revision-comparison-named-first"),
    pytest.param(dict(want=RB, revision_worse=True, can_rollback=False),
                 (Act.NONE, R.NO_HEALTHY_REVISION, 4, 0, False), id="worse-revision-with-nowhere-to-go-records"),
    pytest.param(dict(want=RB, revision_worse=True, rollback_budget=0),
                 (Act.NONE, R.ROLLBACK_BUDGET_EXHAUSTED, 4, 0, True), id="worse-revision-budget-exhausted-holds"),
    pytest.param(dict(want=RB, excused=True, desired=6), (Act.SCALE, R.OVERLOAD_NOT_RELEASE, 6, 0, False),
                 id="rollback-check-excused-while-the-comparison-finds-no-worse-scaling-passes"),
    pytest.param(dict(want=RB, excused=True, escalated=True), (Act.ROLLBACK, R.ESCALATED, 4, 0, False),
                 id="an-escalated-rollback-is-not-excused"),
    pytest.param(dict(want=RB, suspect=False), (Act.NONE, R.CURRENT_REVISION_HEALTHY, 4, 0, False),
                 id="rollback-check-on-a-known-healthy-revision-does-not-roll-back"),
    pytest.param(dict(want=RB, can_rollback=False, desired=6), (Act.SCALE, R.NO_HEALTHY_REVISION, 6, 0, False),
                 id="rollback-with-nowhere-to-go-records-and-scaling-passes"),
    # someone else paused the Deployment: the rollback would not progress (nor kubectl rollout undo)
    pytest.param(dict(want=RB, revision_worse=True, paused=True), (Act.NONE, R.ROLLBACK_BLOCKED_BY_PAUSE, 4, 0, False),
                 id="worse-revision-of-a-paused-deployment-waits-for-the-resume"),
    pytest.param(dict(want=RP, new_revision=True, paused=True, desired=6),
                 (Act.SCALE, R.ROLLBACK_BLOCKED_BY_PAUSE, 6, 0, False),
                 id="a-paused-deployment-still-scales-while-its-rollback-waits"),
    pytest.param(dict(want=RB, escalated=True, paused=True), (Act.NONE, R.ROLLBACK_BLOCKED_BY_PAUSE, 4, 0, False),
                 id="an-escalated-rollback-of-a-paused-deployment-waits-unheld"),
    pytest.param(dict(want=RB, revision_worse=True, paused=True, rollback_budget=0),
                 (Act.NONE, R.ROLLBACK_BUDGET_EXHAUSTED, 4, 0, True), id="paused-with-no-budget-left-holds"),
    pytest.param(dict(want=RP, new_revision=True, can_rollback=False),
                 (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="new-revision-without-a-healthy-revision-falls-back-to-restart"),
    # the known-healthy revision's ReplicaSet was trimmed (revisionHistoryLimit): no rollback is sent
    pytest.param(dict(want=RB, can_rollback=False, target_gone=True, desired=6),
                 (Act.SCALE, R.ROLLBACK_TARGET_GONE, 6, 0, False), id="rollback-to-a-trimmed-revision-records-and-scaling-passes"),
    pytest.param(dict(want=RB, revision_worse=True, can_rollback=False, target_gone=True),
                 (Act.NONE, R.ROLLBACK_TARGET_GONE, 4, 0, False), id="worse-revision-with-its-target-trimmed-records"),
    pytest.param(dict(want=RB, escalated=True, can_rollback=False, target_gone=True),
                 (Act.NONE, R.ROLLBACK_TARGET_GONE, 4, 0, True), id="escalated-rollback-to-a-trimmed-revision-holds"),
    pytest.param(dict(want=RP, new_revision=True, can_rollback=False, target_gone=True),
                 (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="new-revision-with-its-target-trimmed-falls-back-to-restart"),
    pytest.param(dict(want=RR, after_rollout=True), (Act.ROLLBACK, R.ROLLBACK_AFTER_ROLLOUT, 4, 0, False),
                 id="guard-after-rollout-rolls-back"),
    pytest.param(dict(want=RB, rollback_budget=0), (Act.NONE, R.ROLLBACK_BUDGET_EXHAUSTED, 4, 0, True),
                 id="rollbacks-per-day-exhausted-holds"),
    pytest.param(dict(want=RB, rollback_budget=0, desired=6), (Act.SCALE, R.ROLLBACK_BUDGET_EXHAUSTED, 6, 0, True),
                 id="held-by-budget-scaling-still-passes"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=5), (Act.SCALE, R.SCALE_UP_OVERLOADED, 5, 0, False),
                 id="overloaded-scale-up-instead-of-restart"),
    pytest.param(dict(want=RR, overloaded=True, desired=7, scale_up_to=7),
                 (Act.SCALE, R.SCALE_UP_OVERLOADED, 7, 0, False), id="overloaded-rolling-restart-becomes-scale-up"),
    # a policy that never scales (health-only): no scale-up to give, the restart waits for the
    # starting pods and says so (it read AtMaxReplicas, as if at replicas.max)
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=4, never_scales=True),
                 (Act.NONE, R.RESTART_WAITS_FOR_STARTING_PODS, 4, 0, False),
                 id="health-only-restart-waits-for-starting-pods"),
    pytest.param(dict(want=RR, overloaded=True, scale_up_to=4, never_scales=True),
                 (Act.NONE, R.RESTART_WAITS_FOR_STARTING_PODS, 4, 0, False),
                 id="health-only-rolling-restart-waits-for-starting-pods"),
    pytest.param(dict(want=RP, never_scales=True), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="health-only-restart-when-no-pod-starts"),
    pytest.param(dict(want=UP, scale_up_to=4, never_scales=True), (Act.NONE, R.AT_MAX_REPLICAS, 4, 0, False),
                 id="health-only-scale-up-check-still-at-max"),
    pytest.param(dict(want=RP, overloaded=True, scale_up_to=4), (Act.NONE, R.AT_MAX_REPLICAS, 4, 0, False),
                 id="overloaded-at-max-replicas-no-restart-either"),
    pytest.param(dict(want=RP, overloaded=True, cooldown=True), (Act.NONE, R.SCALE_UP_COOLDOWN, 4, 0, False),
                 id="overloaded-within-scale-up-cooldown-waits"),
    pytest.param(dict(want=RP, overloaded=True, new_revision=True),
                 (Act.ROLLBACK, R.ROLLBACK_NEW_REVISION, 4, 0, False),
                 id="new-revision-rollback-beats-overload"),
    pytest.param(dict(want=RP, systemic=True, desired=3), (Act.ROLLING_RESTART, R.SYSTEMIC_NO_RESTART, 4, 1, False),
                 id="systemic-no-pod-by-pod-restarts-but-a-rolling-restart"),
    pytest.param(dict(want=RP, systemic=True, rollout=True), (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="systemic-rolling-restart-waits-for-the-rollout"),
    pytest.param(dict(want=RP, systemic=True, overloaded=True, scale_up_to=6),
                 (Act.SCALE, R.SCALE_UP_OVERLOADED, 6, 0, False), id="systemic-and-overloaded-scales-up"),
    pytest.param(dict(want=RP, systemic=True, new_revision=True), (Act.ROLLBACK, R.ROLLBACK_NEW_REVISION, 4, 0, False),
                 id="systemic-explained-by-new-revision-rolls-back"),
    pytest.param(dict(want=RR, systemic=True), (Act.ROLLING_RESTART, R.ROLLING_RESTART, 4, 1, False),
                 id="systemic-does-not-block-a-rolling-restart"),
    pytest.param(dict(want=RP, rollout=True), (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="restart-waits-for-a-rollout"),
    pytest.param(dict(want=RR, rollout=True), (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="rolling-restart-waits-for-a-rollout"),
    pytest.param(dict(want=RP, rollout=True, rollout_waits_for_pods=True),
                 (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="restart-of-the-pods-a-statefulset-rollout-waits-for-goes-ahead"),
    pytest.param(dict(want=RP, rollout=True, rollout_waits_for_pods=True, systemic=True),
                 (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="a-rolling-restart-still-waits-for-the-rollout-that-waits-for-pods"),
    pytest.param(dict(want=RR, rollout=True, rollout_waits_for_pods=True), (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="rolling-restart-waits-even-for-a-rollout-that-waits-for-pods"),
    pytest.param(dict(want=RP, restart_budget=0, restart_room=0), (Act.NONE, R.RESTART_BUDGET_EXHAUSTED, 4, 0, True),
                 id="restarts-per-hour-exhausted-holds"),
    pytest.param(dict(want=RR, restart_budget=0), (Act.NONE, R.RESTART_BUDGET_EXHAUSTED, 4, 0, True),
                 id="rolling-restart-needs-restart-budget"),
    pytest.param(dict(want=RP, restart_room=0), (Act.NONE, R.MAX_UNAVAILABLE, 4, 0, False),
                 id="max-unavailable-reached-restart-waits"),
    pytest.param(dict(want=RP, restart_room=2, restart_budget=5), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 2, False),
                 id="restart-as-many-pods-as-there-is-room-for"),
    pytest.param(dict(want=RR), (Act.ROLLING_RESTART, R.ROLLING_RESTART, 4, 1, False), id="rolling-restart"),
    pytest.param(dict(want=RR, escalated=True), (Act.ROLLING_RESTART, R.ESCALATED, 4, 1, False),
                 id="escalated-rolling-restart"),
    # a StatefulSet held at a partition (a canary), its partitioned rollout complete: a pod restart
    # comes back on its ordinal's revision; a rolling restart would be a new revision for the pods
    # at or above the partition only, the canary's release replaced by it
    pytest.param(dict(want=RP, partitioned=True), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="restart-pod-of-a-partitioned-statefulset-goes-ahead"),
    pytest.param(dict(want=RR, partitioned=True), (Act.NONE, R.ROLLING_RESTART_PARTITIONED, 4, 0, False),
                 id="rolling-restart-of-a-partitioned-statefulset-refused"),
    pytest.param(dict(want=RR, escalated=True, partitioned=True), (Act.NONE, R.ROLLING_RESTART_PARTITIONED, 4, 0, False),
                 id="escalated-rolling-restart-of-a-partitioned-statefulset-refused"),
    pytest.param(dict(want=RP, systemic=True, partitioned=True),
                 (Act.NONE, R.ROLLING_RESTART_PARTITIONED, 4, 0, False),
                 id="systemic-restart-of-a-partitioned-statefulset-refused"),
    pytest.param(dict(want=RR, rollout=True, partitioned=True), (Act.NONE, R.ROLLOUT_IN_PROGRESS, 4, 0, False),
                 id="rolling-restart-of-a-partitioned-statefulset-mid-rollout-waits"),
    pytest.param(dict(want=RB, escalated=True, suspect=False), (Act.ROLLBACK, R.ESCALATED, 4, 0, False),
                 id="escalated-rollback-even-on-a-known-healthy-revision"),
    pytest.param(dict(want=RB, escalated=True, can_rollback=False), (Act.NONE, R.NO_HEALTHY_REVISION, 4, 0, True),
                 id="escalated-rollback-with-nowhere-to-go-holds"),
    pytest.param(dict(want=RB, held=True, desired=6), (Act.SCALE, R.HELD, 6, 0, False),
                 id="held-no-health-action-scaling-passes"),
    pytest.param(dict(want=RP, held=True, desired=2, rollout=True), (Act.NONE, R.HELD, 4, 0, False),
                 id="held-and-rollout-no-scale-down"),
    pytest.param(dict(want=RB, verifying=True), (Act.NONE, R.VERIFYING, 4, 0, False),
                 id="verifying-no-new-health-action"),
    pytest.param(dict(verifying=True, desired=2), (Act.SCALE, R.VERIFYING, 2, 0, False),
                 id="verifying-with-nothing-firing-says-so-scaling-passes"),
    pytest.param(dict(held=True), (Act.NONE, R.HELD, 4, 0, False), id="held-with-nothing-firing-says-so"),
    pytest.param(dict(want=UP, scale_up_to=5), (Act.SCALE, R.SCALE_UP_CHECK, 5, 0, False), id="scale-up-check"),
    pytest.param(dict(want=UP, scale_up_to=5, desired=9), (Act.SCALE, R.SCALE_UP_CHECK, 9, 0, False),
                 id="scale-up-check-takes-the-scaling-sides-larger-count"),
    pytest.param(dict(want=UP, cooldown=True, desired=6), (Act.SCALE, R.SCALE_UP_COOLDOWN, 6, 0, False),
                 id="scale-up-check-in-cooldown-scaling-passes"),
    pytest.param(dict(want=UP, scale_up_to=4), (Act.NONE, R.AT_MAX_REPLICAS, 4, 0, False),
                 id="scale-up-check-at-max"),
    pytest.param(dict(want=REC, desired=2), (Act.SCALE, R.RECORD_ONLY, 2, 0, False), id="record-only-scaling-passes"),
    # a record revision check judges a StatefulSet's canary worse: said; a restart of only its pods
    # (they come back on the same revision) is not sent; a restart of stable pods goes ahead
    pytest.param(dict(release_worse=True), (Act.NONE, R.REVISION_WORSE_RECORDED, 4, 0, False),
                 id="canary-worse-nothing-else-said"),
    pytest.param(dict(release_worse=True, desired=6), (Act.SCALE, R.REVISION_WORSE_RECORDED, 6, 0, False),
                 id="canary-worse-scaling-passes"),
    pytest.param(dict(release_worse=True, want=REC), (Act.NONE, R.REVISION_WORSE_RECORDED, 4, 0, False),
                 id="canary-worse-beats-a-record-check"),
    pytest.param(dict(release_worse=True, release_explains=True, want=RP),
                 (Act.NONE, R.REVISION_WORSE_RECORDED, 4, 0, False), id="canary-worse-its-pods-not-restarted"),
    pytest.param(dict(release_worse=True, release_explains=True, want=RR, partitioned=True),
                 (Act.NONE, R.REVISION_WORSE_RECORDED, 4, 0, False), id="canary-worse-no-rolling-restart"),
    pytest.param(dict(release_worse=True, want=RP), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="canary-worse-a-stable-pod-is-restarted"),
    pytest.param(dict(release_worse=True, want=RB, verifying=True), (Act.NONE, R.VERIFYING, 4, 0, False),
                 id="canary-worse-while-verifying-waits"),
    # a record revision check still comparing the canary (no verdict yet): a restart of only its pods
    # waits for the verdict; a stable pod's goes ahead; an overloaded one does not turn into a scale-up
    pytest.param(dict(release_waits=True, want=RP), (Act.NONE, R.RESTART_WAITS_FOR_REVISION_VERDICT, 4, 0, False),
                 id="canary-not-judged-yet-its-pods-wait-for-the-verdict"),
    pytest.param(dict(release_waits=True, want=RP, desired=6),
                 (Act.SCALE, R.RESTART_WAITS_FOR_REVISION_VERDICT, 6, 0, False),
                 id="canary-not-judged-yet-scaling-passes"),
    pytest.param(dict(release_waits=True, want=RP, overloaded=True, scale_up_to=5),
                 (Act.NONE, R.RESTART_WAITS_FOR_REVISION_VERDICT, 4, 0, False),
                 id="canary-not-judged-yet-overloaded-no-scale-up-for-its-pods"),
    pytest.param(dict(want=RP), (Act.RESTART_POD, R.RESTART_FIRING_PODS, 4, 1, False),
                 id="canary-not-judged-yet-a-stable-pod-is-restarted"),
    pytest.param(dict(release_waits=True, want=RP, held=True), (Act.NONE, R.HELD, 4, 0, False),
                 id="canary-not-judged-yet-held-stays-held"),
    *ORDERED_ROWS,
]


@pytest.mark.parametrize("fields,expect", ROWS)
def test_arbitration_table(fields, expect):
    fields = dict(fields)
    current = fields.pop("current", 4)
    out = arbitrate(ArbitrationInput.of([current], **fields))
    got = (Act(int(out.action[0])), R(int(out.reason[0])), int(out.replicas[0]), int(out.restart[0]),
           bool(out.hold[0]))
    assert got == expect
    if expect[4]:
        assert out.hold_reason[0] == expect[1]


def test_the_table_runs_as_one_batch():
    """Every row above at once gives the same answers as one by one."""
    rows = [dict(p.values[0]) for p in ROWS]
    keys = sorted({k for r in rows for k in r})
    defaults = ArbitrationInput.of([4])
    cols = {k: [r.get(k, getattr(defaults, k)[0]) for r in rows] for k in keys}
    out = arbitrate(ArbitrationInput.of([4] * len(rows), **cols))
    for i, p in enumerate(ROWS):
        assert (Act(int(out.action[i])), R(int(out.reason[i]))) == p.values[1][:2], p.id


# --- properties ------------------------------------------------------------------------------

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def inputs(draw, n: int = 6) -> ArbitrationInput:
    b = lambda: st.lists(st.booleans(), min_size=n, max_size=n)  # noqa: E731
    current = np.asarray(draw(st.lists(st.integers(0, 10), min_size=n, max_size=n)))
    return ArbitrationInput.of(
        current, desired=draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)),
        scale_up_to=current + np.asarray(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))),
        floor=draw(st.lists(st.integers(0, 10), min_size=n, max_size=n)),
        want=draw(st.lists(st.sampled_from(list(Remedy)), min_size=n, max_size=n)),
        restart_budget=draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
        restart_room=draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)),
        rollback_budget=draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)),
        created=np.maximum(0, current + np.asarray(draw(st.lists(st.integers(-3, 2), min_size=n, max_size=n)))),
        reached=np.maximum(0, current + np.asarray(draw(st.lists(st.integers(-3, 2), min_size=n, max_size=n)))),
        **{k: draw(b()) for k in ("rollout", "overloaded", "escalated", "systemic", "suspect", "new_revision",
                                  "after_rollout", "can_rollback", "held", "verifying", "cooldown",
                                  "target_gone", "paused", "ordered", "condemned", "never_scales")})


@SETTINGS
@given(inputs())
def test_arbitration_invariants(inp):
    out = arbitrate(inp)
    act = out.action
    scale = act == Act.SCALE
    # one action per target, and a SCALE always changes the count
    assert act.shape == inp.current.shape and np.all(out.replicas[scale] != inp.current[scale])
    assert np.all(out.replicas[~scale] == inp.current[~scale])
    # no scale-down while a rollout or rollback is in progress
    assert not np.any(scale & inp.rollout & (out.replicas < inp.current))
    # held or verifying targets get no health action; holds come only from budgets or the ladder
    assert not np.any(out.health & (inp.held | inp.verifying))
    # budgets and room are never exceeded
    restarts = act == Act.RESTART_POD
    assert np.all(out.restart[restarts] <= np.minimum(inp.restart_room, inp.restart_budget)[restarts])
    assert np.all(out.restart[restarts] > 0)
    assert not np.any(((act == Act.RESTART_POD) | (act == Act.ROLLING_RESTART)) & (inp.restart_budget <= 0))
    assert not np.any((act == Act.ROLLBACK) & ((inp.rollback_budget <= 0) | ~inp.can_rollback))
    # no rollback of a Deployment someone else paused
    assert not np.any((act == Act.ROLLBACK) & inp.paused)
    # a trimmed target is named only where no rollback goes out
    assert not np.any((out.reason == R.ROLLBACK_TARGET_GONE) & ((act == Act.ROLLBACK) | ~inp.target_gone))
    # no restart of an overloaded service (but for an OrderedReady StatefulSet still walking up to
    # its count: a scale-up would add pods after the ones it waits for), no pod-by-pod restart of a
    # systemic problem, none of a StatefulSet's pods its scale-down removes
    pending = inp.ordered & (inp.created < inp.current)
    assert not np.any(restarts & ((inp.overloaded & ~pending) | inp.systemic | inp.condemned))
    # nor a health scale-up while an OrderedReady StatefulSet walks up (its pods reach below its
    # count; a pod deleted below the top and recreated is no walk)
    walking_up = inp.ordered & (np.maximum(inp.reached, inp.created) < inp.current)
    assert not np.any(out.health & scale & walking_up)
    assert not np.any(((act == Act.RESTART_POD) | (act == Act.ROLLING_RESTART)) & inp.rollout)
    # a health scale never scales down
    assert not np.any(out.health & scale & (out.replicas < inp.current))


@SETTINGS
@given(inputs())
def test_arbitration_batched_equals_row_by_row(inp):
    out = arbitrate(inp)
    for i in range(inp.current.size):
        one = arbitrate(ArbitrationInput(**{k: getattr(inp, k)[i:i + 1] for k in inp.__dataclass_fields__}))
        for k in out.__dataclass_fields__:
            assert getattr(out, k)[i] == getattr(one, k)[0], k
