"""No rollback to a revision whose ReplicaSet the cluster no longer has, and one notice about it.

Found once sim serve trimmed old ReplicaSets beyond spec.revisionHistoryLimit as the Deployment
controller does: with a limit of 0 (or 1 after two rollouts) the last known-healthy revision's
ReplicaSet is deleted as soon as the bad release's rollout completes, before its error check
fires. The controller then proposed a rollback to it every cycle (RollbackNewRevision, 55 of 100
cycles in a row, for as long as the check fired), each refused by the API (``permanent: rollback
Deployment/shop/web: no revision '1' (have [2])``), logged as an error every 15 s, with no Event,
the durable state written twice a cycle (reserved, then released) and the scaling decision
starved (one action per target). No budget was spent, as no rollback went out.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, stepped
by hand at fixed times (5 s ticks, a cycle every 15 s).
"""

from __future__ import annotations

import dataclasses

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.kubeapi.server import SimKubeServer
from simulators.ports import MemoryStateStore, SimMetrics
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import TOKEN, official_client

NS = "shop"
#: The bad release comes at 10 min; revision 1 is known healthy by then (healthyAfter 2m).
SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: trimmed-history}
spec:
  duration: 1h
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      namespace: shop
      capacityPerPod: 100
      startupDelay: 10s
      schedulingDelay: 0s
      initialReplicas: 2
      maxPods: 20
      errorRatio: 0.002
      load: [{constant: {rps: 150}}]
  faults:
    - {name: release, kind: bad-rollout, at: 10m, services: [web], errorRatioMultiplier: 10}
"""
# `for: 1m`: the check fires after the release's 2 pods have rolled out (when the limit trims)
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web-heal}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  health:
    checks:
      - name: error-ratio
        query: err
        unhealthy: {above: 0.01, for: 1m}
        recovered: {below: 0.005, for: 1m}
        action: rollback
    budgets: {restartsPerHour: 6, rollbacksPerDay: 2, maxUnavailable: 25%}
    healthyAfter: 2m
"""
CYCLES = 60  # 15 min: the release at 10 min, its check firing at 11.5 min, then 5 min of it
TICKS_PER_CYCLE = 3
RESTART_AT_S = 480  # limit 1: a good rollout (revision 2) before the bad one, so revision 1 is trimmed


def labelled_server(text: str, clock_at_start: bool = False) -> SimKubeServer:
    """sim serve of the scenario ``text``, its services labelled app=<name>, stepped by the test
    (not driven); with ``clock_at_start`` its wall clock is the scenario's (the controller's too)."""
    scenario = load_scenario_text(text, "scenario.yaml")
    services = tuple(dataclasses.replace(s, labels=(("app", s.name),)) for s in scenario.cluster.services)
    scenario = dataclasses.replace(scenario, cluster=dataclasses.replace(scenario.cluster, services=services))
    options = {"wall_start_s": scenario.start_s} if clock_at_start else {}
    return SimKubeServer(scenario, drive=False, token=TOKEN, max_connections=32, **options).start()


@pytest.fixture
def world(tmp_path):
    server = labelled_server(SCENARIO)
    api = official_client(server, tmp_path)
    yield server, client.AppsV1Api(api), client.CoreV1Api(api)
    api.close()
    server.stop()


def run(server, apps, folder, limit: int | None, restart_first: bool, policy_text: str = POLICY):
    """Drive the controller for CYCLES cycles; returns (cycle results, health records, state writes
    so far after each cycle, the reconciler)."""
    if limit is not None:
        apps.patch_namespaced_deployment("web", NS, {"spec": {"revisionHistoryLimit": limit}})
    [policy] = load_policy_text(policy_text, "heal.yaml")
    engine = server.world.engine
    metrics = SimMetrics(engine, {"err": "error_ratio"}, window_s=15, tick_s=server.world.tick_s)
    metrics.push(engine.signals())
    (folder / "controller").mkdir()
    cluster = KubernetesCluster(official_client(server, folder / "controller"), qps=0, retry_backoff_s=0.01)
    store = MemoryStateStore()
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster, state_store=store)
    start, results, saves = engine.now, [], []
    for _ in range(CYCLES):
        if restart_first and engine.now - start == RESTART_AT_S:
            apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-01-05T00:08:00Z"}}}}})
        for _ in range(TICKS_PER_CYCLE):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
        saves.append(store.saves.get(policy.name, 0))
    cluster.events.flush()
    cluster.close()
    records = [r.healing.record(0, policy.name, "shop/web") for r in results]
    return results, records, saves, rec


@pytest.mark.parametrize("limit, restart_first, listed, rollbacks", [
    pytest.param(0, False, ("2",), [], id="limit-0-revision-1-trimmed-as-the-release-completes"),
    pytest.param(1, True, ("2", "3"), [], id="limit-1-revision-1-trimmed-after-two-rollouts"),
    pytest.param(None, False, ("1", "2"), ["1"], id="default-limit-keeps-it-and-rolls-back-once"),
])
def test_no_rollback_to_a_trimmed_revision_and_one_notice(world, tmp_path, limit, restart_first, listed, rollbacks):
    server, apps, core = world
    results, records, saves, rec = run(server, apps, tmp_path, limit, restart_first)
    sent = [a.revision for r in results for a in r.actions if a.kind.word == "rollback"]
    assert sent == rollbacks
    assert [f.why for r in results for f in r.failed] == []  # nothing refused by the API
    notices = [e for e in core.list_namespaced_event(NS).items if e.reason == "RollbackTargetGone"]
    if rollbacks:
        assert notices == [] and "RollbackTargetGone" not in {r.reason for r in records}
        return
    fired = [i for i, r in enumerate(records) if r.reason == "RollbackTargetGone"]
    assert fired and fired == list(range(fired[0], CYCLES))  # every cycle from the firing on, no action
    assert results[fired[0]].view.statuses[0].revisions == listed
    assert {(r.action, r.rollback_to, r.rollback_gone) for r in records[fired[0]:]} == {(None, None, "1")}
    # said once: one Event (count 1) naming the revision and why it is gone
    assert [(e.type, e.count) for e in notices] == [("Warning", 1)]
    assert "revision 1, the last known healthy, is no longer on the cluster" in notices[0].message
    assert "revisionHistoryLimit" in notices[0].message
    # no budget spent, no verification opened, not held; the durable state is not rewritten each cycle
    state = rec._health_state
    assert state.budgets.rollbacks_used(results[-1].now).tolist() == [0]
    assert state.remedy.verify_action.tolist() == [0] and not state.remedy.held[0]
    assert saves[-1] == saves[fired[0]], saves  # before: two writes a cycle (reserved, released)


@pytest.mark.parametrize("health, lines", [
    pytest.param({"reason": "RollbackTargetGone", "action": None, "trigger": "error-ratio", "rollback_gone": "1",
                  "revision": "2"},
                 ["    health: no action [RollbackTargetGone] trigger error-ratio",
                  "    no rollback: revision 1, the last known healthy, is no longer on the cluster (its ReplicaSet "
                  "was deleted; spec.revisionHistoryLimit trims old ones)"], id="trimmed-rollback-target-named"),
    pytest.param({"reason": "NoHealthyRevision", "action": None, "trigger": "error-ratio", "revision": "2"},
                 ["    health: no action [NoHealthyRevision] trigger error-ratio"], id="no-healthy-revision-as-before"),
])
def test_explain_says_why_no_rollback(health, lines):
    from controller.cli.records import _format_record

    record = {"target": "shop/web", "at": 705.0, "current": 2, "ready": 2, "metrics": {}, "combined": 2,
              "stabilized": 2, "limited": 2, "desired": 2, "reason": "NoAction", "health": health}
    assert _format_record(record).splitlines()[1:] == lines


@pytest.mark.parametrize("limit, action, said", [
    pytest.param(0, "rollback", 1, id="limit-0-under-a-rollback-policy-said-once-at-first-sight"),
    pytest.param(None, "rollback", 0, id="default-limit-nothing-to-say"),
    pytest.param(0, "record", 0, id="limit-0-under-a-policy-that-never-rolls-back-nothing-to-say"),
])
def test_a_deployment_without_history_is_named_when_first_seen(world, tmp_path, limit, action, said):
    """A rollback policy over a Deployment that keeps no old ReplicaSet is told at once (one
    Warning Event RollbackUnavailable, at the first cycle), not only when a bad release needs it."""
    server, apps, core = world
    results, _, _, _ = run(server, apps, tmp_path, limit, False, POLICY.replace("action: rollback", f"action: {action}"))
    notices = [e for e in core.list_namespaced_event(NS).items if e.reason == "RollbackUnavailable"]
    assert [(e.type, e.count, e.involved_object.name) for e in notices] == [("Warning", 1, "web")] * said
    if said:
        assert results[0].view.statuses[0].revision_history_limit == 0
        assert "spec.revisionHistoryLimit is 0" in notices[0].message and "error-ratio" in notices[0].message
