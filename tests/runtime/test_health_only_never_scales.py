"""A health-only policy without replicas bounds never writes a replica count.

Found in a day-2 drill: a health-only policy with a restart-pod check and no `replicas` (which
`setpoint validate` allows "to a policy that never scales up") scaled its workload 4 -> 5 when
the check fired while pods were restarting (ready < spec reads as overload: arbitration turns
the restart into a scale-up, ScaleUpOverloaded), with a ceiling of 2**31 - 1, and no scaling side
ever brings it down. Without bounds the restart now waits for the pods still starting
(RestartWaitsForStartingPods; it read AtMaxReplicas, as if the workload were at replicas.max);
with bounds the scale-up is made as before.

Through the simulated Kubernetes API (sim serve's server, the official client): the test raises
the Deployment's replicas itself so that new pods are starting (ready < spec) when the check fires.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.core.health.params import HealthReason
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_resume import POLICY as BOUNDED

UNBOUNDED = BOUNDED.replace("  replicas: {min: 2, max: 20}\n", "")
assert UNBOUNDED != BOUNDED


@pytest.mark.parametrize("text, starting, replicas, reason, restarted", [
    pytest.param(UNBOUNDED, True, 4, HealthReason.RESTART_WAITS_FOR_STARTING_PODS, False,
                 id="no-bounds-overloaded-restart-waits-for-starting-pods-no-scale-up"),
    pytest.param(BOUNDED, True, 5, HealthReason.SCALE_UP_OVERLOADED, False,
                 id="bounds-overloaded-scale-up-instead-as-before"),
    pytest.param(UNBOUNDED, False, 2, HealthReason.SYSTEMIC_NO_RESTART, True,
                 id="no-bounds-not-overloaded-rolling-restart"),
])
def test_a_policy_without_bounds_never_scales(text, starting, replicas, reason, restarted, server,  # noqa: F811
                                              tmp_path):
    [policy] = load_policy_text(text, "heal.yaml")
    world = server.world
    world.advance(2)
    api = official_client(server, tmp_path)
    if starting:  # someone adds two pods: they start for 10 s (ready 2 of 4)
        client.AppsV1Api(api).patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 4}})
    world.advance(1)
    metrics = SimMetrics(world.engine, {"mem": "memory_mib"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    cluster = KubernetesCluster(api, qps=0, retry_backoff_s=0.01)
    try:
        result = Reconciler(RuntimePolicy.of(policy), metrics, cluster).cycle(world.engine.now)
    finally:
        cluster.close()
    spec = client.AppsV1Api(official_client(server, tmp_path)).read_namespaced_deployment_scale("web", "shop").spec
    assert (spec.replicas, HealthReason(int(result.healing.reason[0]))) == (replicas, reason)
    assert any(a.kind.word == "rolling-restart" for a in result.actions) == restarted
