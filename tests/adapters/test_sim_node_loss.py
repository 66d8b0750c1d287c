"""Pods on a lost node through the official client against sim serve, as a real cluster keeps them:
the pod object stays (evicted: Terminating, not Ready) while its node is unreachable, since no
kubelet confirms its containers stopped; it is gone once the node is back, or at once when
force-deleted (``--grace-period=0 --force``); a DELETE with a grace does not end it. A StatefulSet
creates no pod under a name whose object exists (stateful_set_control.go), so web-1 is replaced
only then, and its status counts it (replicas, not ready); a Deployment's ReplicaSet counts a
terminating pod out and replaces it at once, the lost pod listed beside its replacement.

Scenario: kube_helpers' web (a StatefulSet of 2) and api (a Deployment of 3) on 5 nodes of 2
pods; 40% of the nodes lost at 10 s (seed 11: web-1 and one of api's pods). Ticks of 5 s,
start-up 10 s, stepped by hand.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from simulators.kubeapi.server import SimKubeServer
from tests.adapters.kube_helpers import TOKEN, official_client
from tests.adapters.test_statefulset_contract import STS_YAML, sts_scenario

NS = "shop"


def node_loss_yaml(duration: str | None) -> str:
    fault = "{name: zone-a-down, kind: node-loss, at: 10s, share: 40%" + (f", duration: {duration}}}" if duration
                                                                          else "}")
    return STS_YAML.replace("  seed: 3\n", "  seed: 11\n").replace(
        "  services:\n", f"  nodes: {{count: 5, podsPerNode: 2}}\n  faults:\n    - {fault}\n  services:\n", 1)


def serve(duration: str | None):
    srv = SimKubeServer(sts_scenario(node_loss_yaml(duration)), drive=False, token=TOKEN).start()
    yield srv
    srv.stop()


@pytest.fixture
def node_back_at_40s():
    yield from serve("30s")


@pytest.fixture
def node_never_back():
    yield from serve(None)


def apis(srv, tmp_path):
    c = official_client(srv, tmp_path)
    return client.CoreV1Api(c), client.AppsV1Api(c)


def web(core, apps) -> tuple[str, tuple]:
    """web's pods ("web-1:T" terminating, ":R" Ready, ":-" not) and status (replicas, ready)."""
    shown = []
    for p in sorted(core.list_namespaced_pod(NS, label_selector="app=web").items, key=lambda p: p.metadata.name):
        ready = next((c.status for c in p.status.conditions or () if c.type == "Ready"), "False")
        shown.append(p.metadata.name + (":T" if p.metadata.deletion_timestamp else ":R" if ready == "True" else ":-"))
    st = apps.read_namespaced_stateful_set("web", NS).status
    return " ".join(shown), (st.replicas, st.ready_replicas or 0)


def api_pods(core) -> tuple[int, int]:
    """(api's pods not terminating, those terminating)."""
    items = core.list_namespaced_pod(NS, label_selector="app=api").items
    terminating = sum(1 for p in items if p.metadata.deletion_timestamp is not None)
    return len(items) - terminating, terminating


def test_a_statefulset_pod_on_a_lost_node_is_replaced_once_the_node_is_back(node_back_at_40s, tmp_path):
    srv = node_back_at_40s
    core, apps = apis(srv, tmp_path)
    looks = []
    for _ in range(11):  # 0 .. 50 s
        looks.append(web(core, apps))
        srv.world.advance(1)
    held = ("web-0:R web-1:T", (2, 1))
    assert looks == [("web-0:R web-1:R", (2, 2))] * 2 + [held] * 6 + [("web-0:R web-1:-", (2, 1))] * 2 + [
        ("web-0:R web-1:R", (2, 2))], looks


def test_a_pod_on_a_node_that_never_comes_back_stays_until_force_deleted(node_never_back, tmp_path):
    srv = node_never_back
    core, apps = apis(srv, tmp_path)
    srv.world.advance(3)
    uid = core.read_namespaced_pod("web-1", NS).metadata.uid
    srv.world.advance(60)  # 5 minutes
    assert web(core, apps) == ("web-0:R web-1:T", (2, 1))
    core.delete_namespaced_pod("web-1", NS, grace_period_seconds=10)  # no kubelet to end it: still there
    srv.world.advance(3)
    assert web(core, apps) == ("web-0:R web-1:T", (2, 1))
    core.delete_namespaced_pod("web-1", NS, grace_period_seconds=0)  # --force: gone, recreated at once
    assert web(core, apps) == ("web-0:R web-1:-", (2, 1))
    assert core.read_namespaced_pod("web-1", NS).metadata.uid != uid
    srv.world.advance(2)
    assert web(core, apps) == ("web-0:R web-1:R", (2, 2))


def test_a_deployment_s_pod_on_a_lost_node_is_replaced_at_once_and_stays_till_force_deleted(node_never_back,
                                                                                            tmp_path):
    """Its ReplicaSet counts the lost pod (terminating) out: three pods serve beside it, which is
    listed until its node is back (5 minutes on: still) or it is force-deleted."""
    srv = node_never_back
    core, _ = apis(srv, tmp_path)
    srv.world.advance(2)
    assert api_pods(core) == (3, 1)
    srv.world.advance(60)
    assert api_pods(core) == (3, 1)
    lost = next(p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=api").items
                if p.metadata.deletion_timestamp is not None)
    core.delete_namespaced_pod(lost, NS, grace_period_seconds=0)
    assert api_pods(core) == (3, 0)


def test_a_deployment_s_lost_pod_is_gone_once_its_node_is_back(node_back_at_40s, tmp_path):
    srv = node_back_at_40s
    core, _ = apis(srv, tmp_path)
    looks = []
    for _ in range(11):
        looks.append(api_pods(core))
        srv.world.advance(1)
    assert looks == [(3, 0)] * 2 + [(3, 1)] * 6 + [(3, 0)] * 3
