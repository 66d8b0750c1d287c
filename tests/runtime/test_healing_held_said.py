"""A held target is said with its cause and what re-arms it, in a Warning Event and a log line.

Found by the self-healing walkthrough: HealingHeld said only a code, "crashy: self-healing
stopped (RollbackBudgetExhausted); `setpoint resume shop/cl` re-arms it", as an Event and not in
the log. That target had a policy whose one check restarts pods and rollbacksPerDay 0: a new
release's crash loop calls for a rollback, which a budget of 0 never allows, so it was held at
once without a rollback ever made ("exhausted"), and the resume the Event advised was held again
in the same cycle, silently. A successful rollback whose check was still clearing read
"(VerifyFailedHeld)" with nothing on which action or check.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, stepped
by hand; the resume is the annotation `setpoint resume` writes.
"""

from __future__ import annotations

import logging

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import RESUME_ANNOTATION
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.ports import MemoryStateStore, SimMetrics
from tests.adapters.kube_helpers import official_client, start_server
from tests.runtime.test_resume import POLICY as MEMORY_POLICY
from tests.runtime.test_rollback_target_gone import NS, POLICY as ERROR_POLICY, SCENARIO, labelled_server

# a release's errors call for a rollback (the check began with the new revision), never allowed
NO_ROLLBACKS = ERROR_POLICY.replace("action: rollback", "action: restart-pod").replace("rollbacksPerDay: 2",
                                                                                       "rollbacksPerDay: 0")


def run(server, folder, policy_text: str, bindings: dict, cycles: int, resume_at: int | None = None):
    """Drive a controller ``cycles`` cycles (15 s each); ``resume_at``: the cycle before which
    `setpoint resume shop/web` is written. Returns (results, HealingHeld Events, held log lines)."""
    [policy] = load_policy_text(policy_text, "heal.yaml")
    engine = server.world.engine
    metrics = SimMetrics(engine, bindings, window_s=15, tick_s=server.world.tick_s)
    metrics.push(engine.signals())
    cluster = KubernetesCluster(official_client(server, folder), qps=0, retry_backoff_s=0.01)
    apps = client.AppsV1Api(official_client(server, folder))
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster, state_store=MemoryStateStore())
    results = []
    for k in range(cycles):
        if k == resume_at:
            apps.patch_namespaced_deployment("web", NS, {"metadata": {"annotations": {
                RESUME_ANNOTATION: "2026-12-05T15:26:00Z"}}})
        for _ in range(3):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
    cluster.events.flush()
    events = sorted((e for e in client.CoreV1Api(official_client(server, folder)).list_namespaced_event(NS).items
                     if e.reason == "HealingHeld"), key=lambda e: e.metadata.creation_timestamp)
    cluster.close()
    return results, events


@pytest.fixture
def error_server():
    server = labelled_server(SCENARIO)
    yield server
    server.stop()


@pytest.fixture
def memory_server():
    server = start_server()
    yield server
    server.stop()


@pytest.mark.parametrize("setup, policy, bindings, cycles, resume_at, said", [
    pytest.param("error_server", NO_ROLLBACKS, {"err": "error_ratio"}, 52, 50, [
        "web-heal: self-healing stopped (RollbackBudgetExhausted): error-ratio calls for a rollback of revision 2, "
        "but rollbacksPerDay is 0: none is allowed; a `setpoint resume shop/web` cannot help: roll back by hand "
        "(kubectl rollout undo deployment/web -n shop), or raise rollbacksPerDay",
        "web-heal: resumed, but held again at once (RollbackBudgetExhausted): error-ratio calls for a rollback of "
        "revision 2, but rollbacksPerDay is 0: none is allowed; a `setpoint resume shop/web` cannot help: roll back "
        "by hand (kubectl rollout undo deployment/web -n shop), or raise rollbacksPerDay"],
                 id="rollback-called-for-a-budget-of-0-never-allows-and-resume-cannot-help"),
    pytest.param("memory_server", MEMORY_POLICY, {"mem": "memory_mib"}, 16, None, [
        "web-heal: self-healing stopped (VerifyFailedHeld): the rolling-restart at HH:MM UTC did not cure it: memory "
        "still fires at the end of its verification window, and no escalation step follows rolling-restart; fix the "
        "cause, then `setpoint resume shop/web` re-arms it"],
                 id="verification-failed-names-the-action-and-the-check"),
])
def test_a_held_target_is_said_with_its_cause(request, tmp_path, caplog, setup, policy, bindings, cycles, resume_at,
                                              said):
    server = request.getfixturevalue(setup)
    with caplog.at_level(logging.WARNING, logger="setpoint.runtime"):
        results, events = run(server, tmp_path, policy, bindings, cycles, resume_at)
    held = [r.healing.held[0] for r in results]
    assert any(held)
    logged = [r.getMessage() for r in caplog.records if "self-healing stopped" in r.getMessage()
              or "held again at once" in r.getMessage()]

    def clock(text: str) -> str:  # the action's local wall-clock time, as the message writes it
        import re
        return re.sub(r"at \d\d:\d\d \w+ did", "at HH:MM UTC did", text)

    assert [clock(m) for m in logged] == said
    assert [(e.type, clock(e.message)) for e in events] == [("Warning", m) for m in said]


@pytest.mark.parametrize("values, times, budget, expect", [
    pytest.param([1, 1], [100.0, 200.0], 2, 3700.0, id="two-of-two-room-when-the-oldest-leaves"),
    pytest.param([1, 0], [100.0, float("nan")], 2, 1000.0, id="room-now"),
    pytest.param([3, 1], [100.0, 200.0], 3, 3700.0, id="a-rolling-restart-of-3-pods-leaving-frees-it"),
    pytest.param([1, 1, 1], [100.0, 200.0, 300.0], 1, 3900.0, id="every-counted-one-must-leave"),
    pytest.param([], [], 0, None, id="a-budget-of-0-never"),
])
def test_when_a_spent_budget_has_room_again(values, times, budget, expect):
    """The time a HealingHeld notice gives for a resume to help (an hour's window, now 1000 s)."""
    import numpy as np
    from controller.runtime.healing import _room_at

    assert _room_at(np.asarray(values, float), np.asarray(times, float), budget, 3600.0, 1000.0) == expect
