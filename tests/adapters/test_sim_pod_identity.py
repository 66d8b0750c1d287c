"""A pod's identity through the official client against sim serve, as the real API gives it: a
StatefulSet's pod recreated under its old name is a new object, with a new metadata.uid and a new
creationTimestamp (the apiserver's uid is per object, never per name); a pod keeps its uid while
it lives and while it terminates; the kubelet's Events name the uid of the pod they are about.

What reads it: the adapter carries metadata.uid (PodStatus.uid) and the StartupObserver keys a
pod by it, so a StatefulSet's recreated pod gives a start-up of its own (keyed by name, it was
taken for the old pod and its start-up never counted). The health checks key pods by name and
creation time (checks.PodState.reindex): a recreated pod is new to them either way.

The engine is stepped by hand: ticks of 5 s, start-up 10 s; web a StatefulSet of 2 (web-0, web-1).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from controller.model import TargetRef
from controller.policy import load_policy_text
from controller.runtime.startup_observer import StartupObserver
from tests.adapters.kube_helpers import official_client
from tests.adapters.test_startup_observed import POLICY as STARTUP_POLICY
from tests.adapters.test_statefulset_contract import make_cluster, serve_sts

NS = "shop"
WEB = TargetRef(NS, "web", "StatefulSet")
#: test_startup_observed's policy (ramp on observed start-ups) over the StatefulSet web
POLICY = STARTUP_POLICY.replace("targets: {namespace: shop, names: [web, api]}",
                                "targets: {kind: StatefulSet, namespace: shop, names: [web]}")
assert "kind: StatefulSet" in POLICY


@pytest.fixture
def server():
    yield from serve_sts()


@pytest.fixture
def core(server, tmp_path):
    c = official_client(server, tmp_path)
    yield client.CoreV1Api(c)
    c.close()


def identity(core, name: str) -> tuple[str, object, bool]:
    """(uid, creationTimestamp, terminating) of pod ``name`` as listed."""
    pod = next(p for p in core.list_namespaced_pod(NS).items if p.metadata.name == name)
    return pod.metadata.uid, pod.metadata.creation_timestamp, pod.metadata.deletion_timestamp is not None


def recreated_web_0(server, core, grace_s: int) -> None:
    """web-0 deleted with ``grace_s`` and stepped until its successor under the name is listed."""
    core.delete_namespaced_pod("web-0", NS, grace_period_seconds=grace_s)
    for _ in range(20):
        if not identity(core, "web-0")[2]:
            return
        server.world.advance(1)
    raise AssertionError("web-0 was not recreated")


@pytest.mark.parametrize("grace_s", [
    pytest.param(0, id="force-deleted-recreated-at-once"),
    pytest.param(10, id="recreated-once-its-10s-grace-passed"),
])
def test_a_statefulset_pod_recreated_under_its_name_is_a_new_object(server, core, grace_s):
    server.world.advance(2)  # the old pod's creation is 10 s before the recreation at the earliest
    uid, created, _ = identity(core, "web-0")
    recreated_web_0(server, core, grace_s)
    new_uid, new_created, _ = identity(core, "web-0")
    assert new_uid != uid and new_created > created
    assert identity(core, "web-1")[0] != new_uid


def test_a_pod_keeps_its_uid_while_it_lives_and_terminates(server, core):
    uid = identity(core, "web-1")[0]
    server.world.advance(2)
    assert identity(core, "web-1")[0] == uid
    core.delete_namespaced_pod("web-1", NS, grace_period_seconds=30)
    assert identity(core, "web-1")[::2] == (uid, True)
    server.world.advance(1)
    assert identity(core, "web-1")[::2] == (uid, True)


def test_the_kubelet_s_events_name_the_pod_s_uid(server, core):
    """``Killing`` on the deleted web-0 names its uid, not its successor's."""
    uid = identity(core, "web-0")[0]
    recreated_web_0(server, core, 0)
    server.world.advance(1)
    killing = [e for e in core.list_namespaced_event(NS).items
               if e.reason == "Killing" and e.involved_object.name == "web-0"]
    assert [e.involved_object.uid for e in killing] == [uid]
    assert identity(core, "web-0")[0] != uid


def test_the_observer_learns_a_recreated_statefulset_pod_s_start_up(server, core, tmp_path):
    """web-0 recreated under its name after 2 minutes: its start-up (10 s) is a third one, beside
    web-0's and web-1's first ones; keyed by name it was taken for the old web-0 (2 start-ups)."""
    cluster = make_cluster(server, tmp_path, with_pods=False)
    params = load_policy_text(POLICY, "shop.yaml")[0].params
    observer, errors = StartupObserver(), []

    def cycle():
        view = cluster.observe([WEB])
        return observer.observe(params, cluster, [WEB], view, server.world.store.wall_now(), errors, False)

    assert cycle().estimate.pods.tolist() == [2]
    server.world.advance(24)
    recreated_web_0(server, core, 0)
    cycle()  # web-0 starting: one Ready pod
    server.world.advance(3)
    info = cycle()  # Ready again: the pods are read again
    cluster.close()
    assert errors == []
    assert info.estimate.pods.tolist() == [3]
    assert 9.0 <= info.estimate.low_s[0] <= info.estimate.high_s[0] <= 11.0
