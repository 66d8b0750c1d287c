"""No rollback of a Deployment someone else paused, one notice, and the rollback once it is resumed.

Found by the self-healing walkthrough: an on-call ran `kubectl rollout pause` on a bad release
(to look at it) before Setpoint acted. The revision check found the release worse, and the
controller sent a rollback at every health step (every 5 s of the paused rollout, which never
completes), each refused by its own adapter ("the Deployment is paused ... resume it"): an
"action failed" error line each time (87 in 6 minutes), setpoint_action_failures_total rising
(SetpointActuationErrors, whose runbook points at RBAC), while `setpoint status` showed the target
"ok" with no action.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, stepped
by hand (5 s ticks, a cycle every 15 s); the pause and the resume are written as kubectl writes
them (a patch of spec.paused).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.ports import MemoryStateStore, SimMetrics
from tests.adapters.kube_helpers import official_client
from tests.runtime.test_rollback_target_gone import NS, POLICY, SCENARIO, TICKS_PER_CYCLE, labelled_server

# 30x: with the rollout paused at its first new pod (1 of 3 pods) the workload's error ratio is
# still above the check's 1%
PAUSED_SCENARIO = SCENARIO.replace("errorRatioMultiplier: 10", "errorRatioMultiplier: 30")
CYCLES = 64  # 16 min: the release at 10 min


def served(text: str, tmp_path):
    """sim serve of the scenario ``text`` and the official client's apps and core APIs on it
    (a fixture's body: stopped after the test)."""
    server = labelled_server(text)
    api = official_client(server, tmp_path)
    yield server, client.AppsV1Api(api), client.CoreV1Api(api)
    api.close()
    server.stop()


def live_controller(server, tmp_path, policy_text: str):
    """(policy, its metrics (the engine's error ratio as ``err``), the Kubernetes adapter, a
    Reconciler with an in-memory state store) for a controller against ``server``."""
    [policy] = load_policy_text(policy_text, "heal.yaml")
    engine = server.world.engine
    metrics = SimMetrics(engine, {"err": "error_ratio"}, window_s=15, tick_s=server.world.tick_s)
    metrics.push(engine.signals())
    (tmp_path / "controller").mkdir()
    cluster = KubernetesCluster(official_client(server, tmp_path / "controller"), qps=0, retry_backoff_s=0.01)
    return policy, metrics, cluster, Reconciler(RuntimePolicy.of(policy), metrics, cluster,
                                                state_store=MemoryStateStore())


@pytest.fixture
def world(tmp_path):
    yield from served(PAUSED_SCENARIO, tmp_path)


def paused(apps, value: bool) -> None:
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": value}})


@pytest.mark.parametrize("pause, resume_at_s, blocked", [
    pytest.param(True, 780, True, id="paused-by-someone-else-waits-then-rolls-back-after-the-resume"),
    pytest.param(False, None, False, id="not-paused-rolls-back-at-once"),
])
def test_a_paused_deployment_is_not_rolled_back_until_resumed(world, tmp_path, pause, resume_at_s, blocked):
    server, apps, core = world
    engine = server.world.engine
    policy, metrics, cluster, rec = live_controller(server, tmp_path, POLICY)
    start, results, resumed_at = engine.now, [], None
    for k in range(CYCLES):
        if pause and engine.current_revision(0).number > 1 and not engine.paused[0] and resumed_at is None:
            paused(apps, True)  # the on-call pauses the release as soon as it starts
        if resume_at_s is not None and engine.now - start >= resume_at_s and resumed_at is None:
            paused(apps, False)
            resumed_at = k
        for _ in range(TICKS_PER_CYCLE):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
    cluster.events.flush()
    cluster.close()
    records = [r.healing.record(0, policy.name, "shop/web") for r in results]
    sent = [(k, a.revision) for k, r in enumerate(results) for a in r.actions if a.kind.word == "rollback"]
    assert [f.why for r in results for f in r.failed] == []  # nothing refused: nothing sent that could not go
    assert [revision for _, revision in sent] == ["1"]  # one rollback, to the known-healthy revision
    events = {e.reason: e for e in core.list_namespaced_event(NS).items}
    assert "ActionRefused" not in events
    waited = [k for k, r in enumerate(records) if r.reason == "RollbackBlockedByPause"]
    if not blocked:
        assert waited == [] and "RollbackBlockedByPause" not in events
        return
    # every cycle from the firing to the resume waits, with no action; the rollback goes at the first after it
    assert waited and waited == list(range(waited[0], resumed_at)) and sent[0][0] == resumed_at
    assert {(r.action, r.rollback_to) for r in records[waited[0]:resumed_at]} == {(None, None)}
    notice = events["RollbackBlockedByPause"]  # said once, with what to do
    assert (notice.type, notice.count) == ("Warning", 1)
    assert "error-ratio calls for a rollback of revision 2 to revision 1" in notice.message
    assert "kubectl rollout resume deployment/web -n shop" in notice.message
    # no budget spent and no verification opened while it waited
    state = results[waited[-1]].healing.state
    assert state.budgets.rollbacks_used(results[waited[-1]].now).tolist() == [0]
    assert state.remedy.verify_action.tolist() == [0]


@pytest.mark.parametrize("health, line", [
    pytest.param({"reason": "RollbackBlockedByPause", "action": None, "trigger": "error-ratio", "revision": "2"},
                 "    no rollback: the Deployment is paused (spec.paused, not by setpoint) and would not roll back; it "
                 "goes out once the Deployment is resumed", id="explain-says-why"),
])
def test_explain_and_status_say_the_rollback_waits_for_a_resume(health, line):
    from controller.cli.records import _format_record, _health_cell

    record = {"target": "shop/web", "at": 705.0, "current": 2, "ready": 2, "metrics": {}, "combined": 2,
              "stabilized": 2, "limited": 2, "desired": 2, "reason": "NoAction", "health": health}
    assert _format_record(record).splitlines()[-1] == line
    assert "NO ROLLBACK: PAUSED" in _health_cell({**health, "checks": [{"name": "error-ratio", "phase": "firing",
                                                                         "value": 0.02}]}).splitlines()
