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


@pytest.fixture
def world(tmp_path):
    yield from served(SICK, tmp_path)


def test_a_restart_waiting_on_a_rollout_that_does_not_end_is_said_once(world, tmp_path):
    server, apps, core = world
    engine = server.world.engine
    policy, metrics, cluster, rec = live_controller(server, tmp_path, RESTART)
    results = []
    for k in range(CYCLES):
        if k == 1:  # a rollout someone started and paused (kubectl rollout restart, then pause)
            paused(apps, True)
            apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-01-05T00:00:30Z"}}}}})
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
    assert "error-ratio calls for a restart" in message and "rollout of revision 2" in message
    assert "kubectl rollout undo deployment/web -n shop" in message
