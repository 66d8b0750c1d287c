"""A restart that waits for a rollout that does not end is said once (RestartWaitsForRollout).

Found by the self-healing walkthrough: a restart policy on a workload whose rollout never ends
(a crash-looping release; a StatefulSet's stuck update; a paused Deployment) decided
RolloutInProgress at every cycle, with no Event and no log line, for as long as it lasted:
the on-call saw a firing check and a controller doing nothing.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, stepped
by hand (5 s ticks, a cycle every 15 s). The bad release comes at 10 min; the rollout is paused
as soon as it starts (as kubectl writes it) and never resumed, so it never ends.
"""

from __future__ import annotations

import pytest

from tests.runtime.test_rollback_paused import live_controller, paused, served
from tests.runtime.test_rollback_target_gone import NS, POLICY, SCENARIO, TICKS_PER_CYCLE

RESTART = POLICY.replace("action: rollback", "action: rolling-restart")
#: errors above the check's 1% from the start, no release: the check calls for a restart
SICK = SCENARIO.replace("errorRatio: 0.002", "errorRatio: 0.05").split("  faults:")[0]
assert RESTART != POLICY and "errorRatio: 0.05" in SICK and "faults" not in SICK
CYCLES = 64  # 16 min


STATEFUL = SICK.replace("    - name: web\n", "    - name: web\n      kind: StatefulSet\n")
STATEFUL_RESTART = RESTART.replace("kind: Deployment", "kind: StatefulSet")
assert STATEFUL != SICK and STATEFUL_RESTART != RESTART
RESTARTED = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-05T00:00:30Z"}}}}}


def paused_rollout(apps) -> None:
    """A rollout someone started and paused (kubectl rollout restart, then pause)."""
    paused(apps, True)
    apps.patch_namespaced_deployment("web", NS, RESTARTED)


def partitioned_rollout(apps) -> None:
    """A StatefulSet's canary held at a partition: every pod below it stays on the old revision."""
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
        "partition": 1}}, **RESTARTED["spec"]}})


@pytest.mark.parametrize("scenario, policy_text, start_rollout, remedy", [
    pytest.param(SICK, RESTART, paused_rollout, "kubectl rollout undo deployment/web -n shop` (or `rollout resume`)",
                 id="a-paused-deployment"),
])
def test_a_restart_waiting_on_a_rollout_that_does_not_end_is_said_once(tmp_path, scenario, policy_text, start_rollout,
                                                                      remedy):
    world = served(scenario, tmp_path)
    server, apps, core = next(world)
    try:
        _run(server, apps, core, tmp_path, policy_text, start_rollout, remedy)
    finally:
        next(world, None)


def _cycles(server, apps, tmp_path, policy_text, start_rollout, cycles: int):
    """(the policy, the health record of shop/web at each of ``cycles`` cycles of a live controller
    on ``server``; ``start_rollout(apps)`` before the second)."""
    engine = server.world.engine
    policy, metrics, cluster, rec = live_controller(server, tmp_path, policy_text)
    results = []
    for k in range(cycles):
        if k == 1:
            start_rollout(apps)
        for _ in range(TICKS_PER_CYCLE):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
    cluster.events.flush()
    cluster.close()
    return rec, [r.healing.record(0, policy.name, "shop/web") for r in results]


def _run(server, apps, core, tmp_path, policy_text, start_rollout, remedy):
    rec, records = _cycles(server, apps, tmp_path, policy_text, start_rollout, CYCLES)
    waiting = [k for k, r in enumerate(records) if r.reason == "RolloutInProgress"]
    assert waiting and waiting == list(range(waiting[0], CYCLES)), "the restart waits from the firing on"
    notices = [e for e in core.list_namespaced_event(NS).items if e.reason == "RestartWaitsForRollout"]
    assert len(notices) == 1 and (notices[0].type, notices[0].count) == ("Warning", 1)
    message = notices[0].message
    assert rec.policy.health.rollout_wait_s == 600 and "it has waited 10 min" in message  # said then, not before
    revision = "2" if "kind: Deployment" in policy_text else "web-"  # a ControllerRevision's name
    assert "error-ratio calls for a restart" in message and f"rollout of revision {revision}" in message
    assert remedy in message, message


def test_a_rolling_restart_of_a_statefulset_held_at_a_partition_is_refused_not_waited_for(tmp_path):
    """A canary held at a partition whose partitioned rollout is complete (as kubectl judges it) is
    no rollout in progress: nothing waits for it (it read RolloutInProgress for as long as the
    partition held, and RestartWaitsForRollout after 10 min). A rolling restart would be a new
    revision for the pods at or above the partition only, replacing the canary's release: it is
    refused (RollingRestartPartitioned), and the StatefulSet keeps its two revisions."""
    world = served(STATEFUL, tmp_path)
    server, apps, core = next(world)
    try:
        _, records = _cycles(server, apps, tmp_path, STATEFUL_RESTART, partitioned_rollout, 12)
        reasons = [r.reason for r in records]
        assert "RolloutInProgress" not in reasons[4:], reasons  # the canary's pods are up by the 4th cycle
        assert reasons[-4:] == ["RollingRestartPartitioned"] * 4, reasons
        assert not [r.action for r in records if r.action], records  # nothing sent
        events = core.list_namespaced_event(NS).items
        assert not [e for e in events if e.reason == "RestartWaitsForRollout"]
        sts = apps.read_namespaced_stateful_set("web", NS).status
        # the refusal is said once for the episode (4 refused cycles here), as an on-call sees it
        refused = [e for e in events if e.reason == "RollingRestartPartitioned"]
        assert [(e.type, e.count, e.involved_object.kind, e.involved_object.name) for e in refused] == [
            ("Warning", 1, "StatefulSet", "web")], refused
        assert refused[0].message == (
            f"web-heal: error-ratio calls for a rolling restart, but the StatefulSet is held at partition 1 "
            f"(spec.updateStrategy.rollingUpdate.partition): a rolling restart would be a new revision for the pods "
            f"at or above it only, replacing the canary's revision {sts.update_revision}, so none is sent (a "
            f"restart-pod still goes ahead: a pod comes back on its ordinal's revision); end the canary with "
            f"`kubectl rollout undo statefulset/web -n shop`")
        assert sts.update_revision != sts.current_revision  # the canary's revision, not a restart's
        assert (sts.updated_replicas, sts.ready_replicas) == (1, 2), sts  # web-1 the canary, web-0 below
    finally:
        next(world, None)
