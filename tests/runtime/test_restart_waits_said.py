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
    # it read "or that is paused ... rollout resume", which a StatefulSet has not: its canary is held at a partition
    pytest.param(STATEFUL, STATEFUL_RESTART, partitioned_rollout,
                 "is held at a partition (pods below it stay on the old revision until spec.updateStrategy.rollingUpdate"
                 ".partition is lowered) does not end by itself: lower the partition, `kubectl rollout undo "
                 "statefulset/web -n shop`", id="a-statefulset-held-at-a-partition"),
])
def test_a_restart_waiting_on_a_rollout_that_does_not_end_is_said_once(tmp_path, scenario, policy_text, start_rollout,
                                                                      remedy):
    world = served(scenario, tmp_path)
    server, apps, core = next(world)
    try:
        _run(server, apps, core, tmp_path, policy_text, start_rollout, remedy)
    finally:
        next(world, None)


def _run(server, apps, core, tmp_path, policy_text, start_rollout, remedy):
    engine = server.world.engine
    policy, metrics, cluster, rec = live_controller(server, tmp_path, policy_text)
    results = []
    for k in range(CYCLES):
        if k == 1:
            start_rollout(apps)
        for _ in range(TICKS_PER_CYCLE):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
    cluster.events.flush()
    cluster.close()
    records = [r.healing.record(0, policy.name, "shop/web") for r in results]
    waiting = [k for k, r in enumerate(records) if r.reason == "RolloutInProgress"]
    assert waiting and waiting == list(range(waiting[0], CYCLES)), "the restart waits from the firing on"
    notices = [e for e in core.list_namespaced_event(NS).items if e.reason == "RestartWaitsForRollout"]
    assert len(notices) == 1 and (notices[0].type, notices[0].count) == ("Warning", 1)
    message = notices[0].message
    assert rec.policy.health.rollout_wait_s == 600 and "it has waited 10 min" in message  # said then, not before
    revision = "2" if "kind: Deployment" in policy_text else "web-"  # a ControllerRevision's name
    assert "error-ratio calls for a restart" in message and f"rollout of revision {revision}" in message
    assert remedy in message, message
