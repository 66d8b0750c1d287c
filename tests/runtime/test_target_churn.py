"""A controller left running for months sees workloads come and go (preview environments, a label
moved from one Deployment to another): what it keeps per target must follow the workloads it
selects now, not every workload it ever selected.

Real components: the real ``kubernetes`` client against the simulated API server, one reconciler
with a label selector and a health check, its telemetry; the selected set slides over 16
Deployments by relabelling them, one cycle at a time, until every one has been selected and
deselected at least once. The adapter keeps what it observed of a workload for ``SEEN_FOR_S`` of
its clock (the simulated one here) after its last observe.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.shadow import ShadowCluster, ShadowTelemetry
from controller.runtime.telemetry import Telemetry
from simulators.kubeapi.server import SimKubeServer
from simulators.ports import SimMetrics
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import TOKEN, official_client

SERVICES, WINDOW = 16, 3

SCENARIO = f"""\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: churn}}
spec:
  duration: 1h
  tick: 5s
  slo: {{latency: {{percentile: 95, below: 250ms}}}}
  services:
    - name: pr
      count: {SERVICES}
      namespace: shop
      capacityPerPod: 100
      startupDelay: 5s
      schedulingDelay: 0s
      initialReplicas: 2
      maxPods: 20
      load: [{{constant: {{rps: 250}}}}]
"""

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: previews}
spec:
  targets: {kind: Deployment, namespace: shop, selector: {matchLabels: {wave: "on"}}}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: offered
        target: {averagePerReplica: 100}
  health:
    checks:
      - name: errors
        query: errors
        scope: workload
        unhealthy: {above: 0.5, for: 30s}
        action: restart-pod
"""

#: simulated seconds between two cycles, and how long the adapter keeps what it saw of a workload
STEP_S, SEEN_FOR_S = 3, 6.0


def rows(state) -> int:
    """The most rows any (N, ...) array of a (nested) state dataclass has."""
    if isinstance(state, np.ndarray):
        return state.shape[0] if state.ndim else 0
    if dataclasses.is_dataclass(state):
        return max((rows(getattr(state, f.name)) for f in dataclasses.fields(state)), default=0)
    return 0


def per_target_sizes(rec: Reconciler, telemetry: Telemetry, cluster: KubernetesCluster) -> dict[str, int]:
    """How many targets each per-target structure of the reconciler, its telemetry and the
    Kubernetes adapter holds."""
    external = rec.external
    series = {s.labels.get("target") for m in telemetry.registry.collect() for s in m.samples
              if s.labels.get("target")}
    return {"targets": len(rec._targets), "scaling state rows": rows(rec._state),
            "health state rows": max(rows(getattr(rec._health_state, f.name))  # pods: per pod, not target
                                     for f in dataclasses.fields(rec._health_state) if f.name != "pods"),
            "reconciler resume seen": len(rec._resume_seen),
            "adapter seen": cluster.seen_count(),
            "expected": len(external._expected), "resume seen": len(external._resume_seen),
            "reverts": len(external._reverts), "hpa said": len(rec.hpa_guard._said),
            "telemetry targets": len(series), "taken said": len(rec._taken_said),
            "shadow agreement counts": len(getattr(telemetry, "_counts", ()))}


@pytest.mark.parametrize("wrap, telemetry_kind", [
    pytest.param(lambda c: c, Telemetry, id="live"),
    # --shadow runs beside the incumbent for weeks: its setpoint_shadow_* series and agreement counts too
    pytest.param(ShadowCluster, ShadowTelemetry, id="shadow"),
])
def test_what_it_keeps_per_target_follows_the_selected_workloads(wrap, telemetry_kind, tmp_path):
    sc = load_scenario_text(SCENARIO, "churn.yaml")
    services = tuple(dataclasses.replace(s, labels=(("app", s.name),)) for s in sc.cluster.services)
    server = SimKubeServer(dataclasses.replace(sc, cluster=dataclasses.replace(sc.cluster, services=services)),
                           drive=False, token=TOKEN).start()
    api_client = official_client(server, tmp_path)
    world = server.world
    cluster = KubernetesCluster(api_client, qps=0, retry_backoff_s=0.01, clock=lambda: world.engine.now,
                                seen_for_s=SEEN_FOR_S)
    try:
        world.advance(3)
        metrics = SimMetrics(world.engine, {"offered": "offered_rps", "errors": "error_ratio"}, window_s=15,
                             tick_s=world.tick_s)
        metrics.push(world.engine.signals())
        telemetry = telemetry_kind()
        [policy] = load_policy_text(POLICY, "previews.yaml")
        rec = Reconciler(RuntimePolicy.of(policy), metrics, wrap(cluster), on_cycle=telemetry.observe_cycle)
        apps = client.AppsV1Api(api_client)
        names = [f"pr-{i}" for i in range(SERVICES)]
        selected_counts, largest = [], {}
        for step in range(SERVICES + WINDOW):
            on = {names[(step + k) % SERVICES] for k in range(WINDOW)} if step < SERVICES else set()
            for name in names:
                apps.patch_namespaced_deployment(name, "shop", {"metadata": {"labels": {"wave": "on" if name in on
                                                                                        else None}}})
            result = rec.cycle(world.engine.now)
            assert not result.errors, result.errors
            selected_counts.append(len(rec._targets))
            for key, size in per_target_sizes(rec, telemetry, cluster).items():
                largest[key] = max(largest.get(key, 0), size)
            for _ in range(STEP_S):
                world.advance(1)
                metrics.push(world.engine.signals())
        assert selected_counts[:SERVICES] == [WINDOW] * SERVICES and selected_counts[-1] == 0
        # every workload was selected and left; nothing holds more than the selected ones (+ the
        # ones that left this cycle, for structures updated before the list is read; the adapter:
        # + those it observed within SEEN_FOR_S)
        assert all(size <= 2 * WINDOW for size in largest.values()), {k: v for k, v in largest.items() if v > 2 * WINDOW}
        sizes = per_target_sizes(rec, telemetry, cluster)
        assert sizes == {key: 0 for key in largest}, sizes
    finally:
        cluster.close()
        server.stop()
