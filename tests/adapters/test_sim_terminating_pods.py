"""Pods that terminate, through the official client against sim serve, as on a real cluster: a pod
deleted by a client, or removed by its controller (a scale-down, a rollout), stays listed with
metadata.deletionTimestamp (its deletion plus its grace) and deletionGracePeriodSeconds (the
template's terminationGracePeriodSeconds, else 30 s) for its grace period in simulated seconds, not
Ready, then is gone; a DELETE of it meanwhile returns it (200) and does nothing again. What the
controller reads of such a pod (controller/adapters/kubernetes.py ``deleted``): never Ready, never
checked for health (so never hung, crashing or restarted), not a ready replica, and HPA's calculator
leaves it out. (Watch events: tests/adapters/test_kube_tables_watch.py, test_sim_watch_resume.py.)"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import TargetRef
from controller.runtime.healing import crashing_pods, health_pods
from controller.runtime.pod_samples import pod_table
from tests.adapters.kube_helpers import official_client, server  # noqa: F401

NS = "shop"
WEB = TargetRef(NS, "web")
TICK_S = 5.0  # kube_helpers' scenario


@pytest.fixture
def apis(server, tmp_path):
    c = official_client(server, tmp_path)
    yield client.CoreV1Api(c), client.AppsV1Api(c)
    c.close()


def listed(core) -> dict:
    """web's pods by name."""
    return {p.metadata.name: p for p in core.list_namespaced_pod(NS, label_selector="app=web").items}


def running(core) -> list[str]:
    return sorted(n for n, p in listed(core).items() if p.metadata.deletion_timestamp is None)


def set_grace(server, apps, grace_s: int) -> None:
    """A release whose pods have ``grace_s`` of grace, rolled out to the end (its old pods gone too)."""
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {
        "terminationGracePeriodSeconds": grace_s}}}})
    server.world.advance(24)


def deleted_by_a_client(server, core, apps) -> list[str]:
    victim = running(core)[0]
    core.delete_namespaced_pod(victim, NS)
    return [victim]


def removed_by_a_scale_down(server, core, apps) -> list[str]:
    before = running(core)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 1}})
    return sorted(set(before) - set(running(core)))


def replaced_by_a_rollout(server, core, apps) -> list[str]:
    """Both old pods, each removed once its replacement is Ready (at different ticks)."""
    before = running(core)
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {"r": "2"}}}}})
    return before


def deleted_with_its_templates_grace(grace_s: int):
    def leave(server, core, apps) -> list[str]:
        set_grace(server, apps, grace_s)
        return deleted_by_a_client(server, core, apps)
    return leave


@pytest.mark.parametrize("leave, grace_s", [
    pytest.param(deleted_by_a_client, 30, id="deleted-by-a-client-30s-default"),
    pytest.param(removed_by_a_scale_down, 30, id="removed-by-a-scale-down"),
    pytest.param(replaced_by_a_rollout, 30, id="replaced-by-a-rollout"),
    pytest.param(deleted_with_its_templates_grace(10), 10, id="deleted-with-the-templates-10s-grace"),
    pytest.param(deleted_with_its_templates_grace(0), 0, id="deleted-with-a-grace-of-0-gone-at-once"),
])
def test_a_pod_that_leaves_is_listed_terminating_for_its_grace_then_gone(server, apis, leave, grace_s):
    """Looked at after the change and after each tick: every pod that left is seen terminating at
    grace/tick looks in a row (its deletion's tick through the last before its grace ends), not
    Ready, with the deletion's fields, then never again."""
    core, apps = apis
    leaving = leave(server, core, apps)
    assert leaving
    seen: dict[str, list[int]] = {name: [] for name in leaving}
    for look in range(40):
        pods = listed(core)
        now_wall_s = server.world.store.wall_now()
        for name in leaving:
            pod = pods.get(name)
            if pod is None or pod.metadata.deletion_timestamp is None:
                continue
            if not seen[name]:  # its first look terminating: deleted at this simulated time
                deadline = pod.metadata.deletion_timestamp.timestamp()
                assert abs(deadline - (now_wall_s + grace_s)) <= 1.0, (name, deadline, now_wall_s)
            assert pod.metadata.deletion_grace_period_seconds == grace_s
            ready = next(c for c in pod.status.conditions if c.type == "Ready")
            assert ready.status == "False" and not pod.status.container_statuses[0].ready
            seen[name].append(look)
        server.world.advance(1)
    for name, looks in seen.items():
        n = int(grace_s / TICK_S)
        assert looks == list(range(looks[0], looks[0] + n)) if n else looks == [], (name, looks)
    assert not set(leaving) & set(listed(core))  # gone for good


def test_a_delete_of_a_terminating_pod_returns_it_and_does_nothing_again(server, apis):
    core, _ = apis
    victim = running(core)[0]
    first = core.delete_namespaced_pod(victim, NS)
    after_first = running(core)
    again = core.delete_namespaced_pod(victim, NS)  # 200: the pod as it terminates
    assert again.metadata.name == victim and again.metadata.deletion_timestamp == first.metadata.deletion_timestamp
    assert again.metadata.resource_version == first.metadata.resource_version  # not changed by the second
    assert running(core) == after_first  # no second replacement
    assert first.metadata.deletion_grace_period_seconds == 30


def test_the_controller_reads_a_terminating_pod_as_leaving_not_as_unhealthy(server, apis, tmp_path):
    """The adapter reads deletionTimestamp as ``deleted``: the pod is not Ready, not a ready replica,
    not among the pods health checks look at (the hung-pod check, crash counts, restarts), and
    HPA's calculator leaves it out (its deleted flag)."""
    core, _ = apis
    (tmp_path / "kc").mkdir()
    kc = KubernetesCluster(official_client(server, tmp_path / "kc"), qps=0)
    try:
        victim = running(core)[0]
        core.delete_namespaced_pod(victim, NS)
        view = kc.observe([WEB], with_pods=True)
        status = view.statuses[0]
        pods = {p.name: p for p in status.pods}
        assert pods[victim].deleted and pods[victim].ready is False
        assert [p.name for p in status.pods if p.deleted] == [victim]
        assert view.ready.tolist() == [1] and status.ready_replicas == 1  # the other pod; the replacement starts
        assert victim not in {pod.name for _, _, pod in health_pods(view, [WEB])}
        assert crashing_pods(view, [WEB]).tolist() == [0]
        table, _ = pod_table([WEB], view, kc.clock())
        assert np.asarray(table.deleted).tolist() == [p.deleted for p in status.pods]
    finally:
        kc.close()


def test_deletion_time_is_wall_time_of_the_simulated_deletion(server, apis):
    """deletionTimestamp is a wall-clock time (what kubectl's ages and a live controller compare
    with their clock): at the deletion's simulated time, plus the grace."""
    core, _ = apis
    server.world.advance(3)
    deleted_at = datetime.fromtimestamp(server.world.store.wall_now(), timezone.utc).replace(microsecond=0)
    pod = core.delete_namespaced_pod(running(core)[0], NS)
    assert (pod.metadata.deletion_timestamp - deleted_at).total_seconds() in (29.0, 30.0, 31.0)
