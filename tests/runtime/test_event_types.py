"""Events that ask someone to act are Warnings, as Kubernetes' own controllers send them.

Found in a day-2 drill: a rejected policy reload (PolicyReloadFailed) and a target whose healing
stopped (HealingHeld) came as Normal Events, so `kubectl get events --field-selector type=Warning`,
the first look of an on-call and what event exporters alert on, showed neither; each has a
warning-severity alert. Each row makes its Event happen through the simulated Kubernetes API
(sim serve's server, the official client) and reads it back from the API.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.claims import TargetClaims
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_hpa_guard import hpa
from tests.runtime.test_kube_faults import POLICY as SCALING
from tests.runtime.test_resume import POLICY as HEALING


def metrics(world) -> SimMetrics:
    world.advance(3)
    m = SimMetrics(world.engine, {"offered": "offered_rps", "mem": "memory_mib"}, window_s=15, tick_s=world.tick_s)
    m.push(world.engine.signals())
    return m


def reconciler(text: str, server, cluster, **options) -> Reconciler:  # noqa: F811
    [policy] = load_policy_text(text, "p.yaml")
    return Reconciler(RuntimePolicy.of(policy), metrics(server.world), cluster, **options)


def reload_rejected(server, cluster, tmp_path) -> None:  # noqa: F811
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(SCALING)
    service = ControllerService([folder], metrics(server.world), cluster, Telemetry(),
                                ServiceOptions(reload_settle_s=0))
    try:
        (folder / "web.yaml").write_text(SCALING.replace("max: 20", "max: -1"))
        assert service.reload_if_changed() is False
    finally:
        service.stop()


def healing_held(server, cluster, tmp_path) -> None:  # noqa: F811
    rec = reconciler(HEALING, server, cluster)
    m = rec.metrics
    for _ in range(40):  # every pod over the limit: one rolling restart (the budget), not cured: held
        server.world.advance(3)
        m.push(server.world.engine.signals())
        if rec.cycle(server.world.engine.now).healing.held[0]:
            return
    raise AssertionError("never held")


def scaled_by_hpa(server, cluster, tmp_path) -> None:  # noqa: F811
    client.AutoscalingV2Api(official_client(server, tmp_path)).create_namespaced_horizontal_pod_autoscaler(
        "shop", hpa("web-hpa"))
    reconciler(SCALING, server, cluster).cycle(server.world.engine.now)


def policy_conflict(server, cluster, tmp_path) -> None:  # noqa: F811
    claims = TargetClaims()
    first = reconciler(SCALING, server, cluster, claims=claims)
    second = reconciler(SCALING.replace("name: web}", "name: web-too}"), server, cluster, claims=claims)
    first.cycle(server.world.engine.now)
    assert second.cycle(server.world.engine.now).contested == 1


@pytest.mark.parametrize("make, reason", [
    pytest.param(reload_rejected, "PolicyReloadFailed", id="a-rejected-policy-reload"),
    pytest.param(healing_held, "HealingHeld", id="healing-held-budget-spent"),
    pytest.param(scaled_by_hpa, "ScaledByHPA", id="a-workload-an-hpa-scales"),
    pytest.param(policy_conflict, "PolicyConflict", id="two-policies-select-one-workload"),
])
def test_events_asking_for_action_are_warnings(make, reason, server, tmp_path):  # noqa: F811
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    try:
        make(server, cluster, tmp_path)
        cluster.events.flush()
    finally:
        cluster.close()
    events = [e for e in client.CoreV1Api(official_client(server, tmp_path)).list_namespaced_event("shop").items
              if e.reason == reason]
    assert [(e.involved_object.name, e.type) for e in events] == [("web", "Warning")]
