"""A controller started on a cluster whose Deployment has run the same revision for an hour rolls
back a bad release that comes within healthyAfter of its start.

Found by a walkthrough (sim serve bad-rollout, the release 2 min after the controller's start):
the error-ratio check fired but the decision was ``no action [NoHealthyRevision]``: revision 1,
complete for hours, was first seen at the start and counted as clean only from then, and the
release came before healthyAfter (5 min) was up. The Deployment's Progressing condition says
since when its rollout has been complete (lastUpdateTime of NewReplicaSetAvailable): a revision
complete for longer than healthyAfter when first seen, with no check firing, is known healthy.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, stepped
by hand at fixed times (5 s ticks, a cycle every 15 s), the apiserver's clock on simulated time.
"""

from __future__ import annotations

import dataclasses

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.kubeapi.server import SimKubeServer
from simulators.ports import SimMetrics
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import TOKEN, official_client

NS = "shop"
#: The bad release comes 2 min after the start (the controller's first cycle); revision 1's pods
#: have been Ready for an hour by then.
SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: early-release}
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
    - {name: release, kind: bad-rollout, at: 2m, services: [web], errorRatioMultiplier: 10}
"""
# healthyAfter: the default, 5 min
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
"""
CYCLES = 24  # 6 min: the release at 2 min, its check firing by about 3.5 min
TICKS_PER_CYCLE = 3


@pytest.fixture
def server():
    scenario = load_scenario_text(SCENARIO, "early.yaml")
    services = tuple(dataclasses.replace(s, labels=(("app", s.name),)) for s in scenario.cluster.services)
    scenario = dataclasses.replace(scenario, cluster=dataclasses.replace(scenario.cluster, services=services))
    srv = SimKubeServer(scenario, drive=False, token=TOKEN, max_connections=32, wall_start_s=scenario.start_s).start()
    yield srv
    srv.stop()


def test_a_release_within_healthy_after_of_the_start_is_rolled_back(server, tmp_path):
    [policy] = load_policy_text(POLICY, "heal.yaml")
    engine = server.world.engine
    metrics = SimMetrics(engine, {"err": "error_ratio"}, window_s=15, tick_s=server.world.tick_s)
    metrics.push(engine.signals())
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster)
    results = [rec.cycle(engine.now)]  # first sight, at the start: revision 1 complete for an hour
    for _ in range(CYCLES):
        for _ in range(TICKS_PER_CYCLE):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
    cluster.close()
    records = [r.healing.record(0, policy.name, "shop/web") for r in results]
    assert results[0].view.statuses[0].revision == "1"
    assert results[0].healing.params.healthy_after_s == 300.0
    assert results[0].healing.state.revisions.healthy.tolist() == ["1"]  # known healthy at once, not 5 min later
    assert "NoHealthyRevision" not in {r.reason for r in records}
    sent = [(round(r.now - results[0].now), a.revision)
            for r in results for a in r.actions if a.kind.word == "rollback"]
    assert [revision for _, revision in sent] == ["1"] and sent[0][0] < 300, sent
    assert [f.why for r in results for f in r.failed] == []
