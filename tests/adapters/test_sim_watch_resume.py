"""sim serve's watches resumed from a resourceVersion (a list's, or a broken watch's last event's,
as client-go's reflector and the Python client's Watch resume), through the official client:
they replay what changed after it, as the apiserver's watch cache does, deletions included
(by a request, by the simulated cluster, by an Event's TTL; made while no watch was connected)
and DELETED for an object that stopped matching a label selector. The history they replay is
bounded (a time window and a count; older resourceVersions get 410).

The server is not driven (``drive=False``): ``advance`` steps the simulated cluster.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from simulators.kubeapi.history import ChangeHistory
from tests.adapters.kube_helpers import official_client
from tests.adapters.test_sim_event_ttl import TICK_S, TTL_S, server  # noqa: F401 (fixture: Events' TTL TTL_S)

NS = "shop"
WATCH_S = 1  # each watch below ends after this (timeoutSeconds)
NEW = "<a pod not listed>"  # in an expected event: the replacement a ReplicaSet made


@dataclass
class Apis:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    coord: client.CoordinationV1Api
    hpa: client.AutoscalingV1Api


@pytest.fixture
def apis(server, tmp_path):
    c = official_client(server, tmp_path)
    yield Apis(client.CoreV1Api(c), client.AppsV1Api(c), client.CoordinationV1Api(c), client.AutoscalingV1Api(c))
    c.close()


def config_map(apis: Apis, name: str, **labels: str) -> None:
    apis.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name,
                                                                                              labels=labels)))


def event(apis: Apis, name: str) -> None:
    apis.core.create_namespaced_event(NS, client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name), reason="ScaledUp", message="web: 2 -> 4", type="Normal",
        involved_object=client.V1ObjectReference(kind="Deployment", name="web", namespace=NS)))


def pod_names(server, app: str) -> set[str]:
    """The pods of ``app`` in the engine, read without serving them (nothing is stamped)."""
    return {p.name for w, st in server.world.store.pod_statuses() if w.name == app for p in st.pods}


def pods_changed(server, app: str, change) -> list[tuple[str, str]]:
    """Run ``change``, list ``app``'s pods (a reader sees those gone terminating), then let their
    30 s grace pass (6 ticks); the events a watch of them should then get: its pods gone as
    MODIFIED (terminating), its new ones as ADDED (named NEW: a watch's list never had them), then
    those gone as DELETED."""
    before = pod_names(server, app)
    change()
    server.world.store.list_pods(NS, lambda labels: labels.get("app") == app)
    after = pod_names(server, app)
    server.world.advance(6)
    gone = sorted(before - after)
    return [("MODIFIED", n) for n in gone] + [("ADDED", NEW)] * len(after - before) + [("DELETED", n) for n in gone]


def scale_down(server, apis):
    def change():
        apis.apps.patch_namespaced_deployment_scale("api", NS, {"spec": {"replicas": 1}})
        server.world.advance(2)
    return pods_changed(server, "api", change)


def delete_a_pod(server, apis):
    victim = sorted(pod_names(server, "web"))[0]

    def change():
        apis.core.delete_namespaced_pod(victim, NS)
        server.world.advance(2)  # its replacement Ready (10 s): it does not change after
    return pods_changed(server, "web", change)


def relabel(apis: Apis, name: str, **labels: str) -> None:
    apis.core.patch_namespaced_config_map(name, NS, {"metadata": {"labels": labels}})


def lease(server, apis):
    apis.coord.create_namespaced_lease(NS, client.V1Lease(metadata=client.V1ObjectMeta(name="leader"),
                                                          spec=client.V1LeaseSpec(holder_identity="x")))


def hpa(server, apis):
    apis.hpa.create_namespaced_horizontal_pod_autoscaler(NS, HPA)


def nothing(server, apis):
    pass


def delete_config_map(server, apis):
    apis.core.delete_namespaced_config_map("gone", NS)
    return [("DELETED", "gone")]


def delete_and_create_again(server, apis):
    apis.core.delete_namespaced_config_map("again", NS)
    config_map(apis, "again")
    return [("DELETED", "again"), ("ADDED", "again")]


def relabel_out(server, apis):
    relabel(apis, "moved", team="b")
    return [("DELETED", "moved")]


def relabel_in(server, apis):
    relabel(apis, "joined", team="a")
    return [("ADDED", "joined")]


def relabel_out_and_back(server, apis):
    relabel(apis, "flip", team="b")
    relabel(apis, "flip", team="a")
    return [("DELETED", "flip"), ("ADDED", "flip")]


def delete_lease(server, apis):
    apis.coord.delete_namespaced_lease("leader", NS)
    return [("DELETED", "leader")]


def delete_event(server, apis):
    apis.core.delete_namespaced_event("web.1", NS)
    return [("DELETED", "web.1")]


def expire_event(server, apis):
    server.world.advance(round(TTL_S / TICK_S))
    return [("DELETED", "web.1")]


def delete_hpa(server, apis):
    apis.hpa.delete_namespaced_horizontal_pod_autoscaler("web", NS)
    return [("DELETED", "web")]


@dataclass(frozen=True)
class Row:
    api: str  # the Apis attribute
    lister: str  # its list method, watched
    before: Callable  # (server, apis): the objects there before the list
    change: Callable  # (server, apis) -> the events expected, (type, name), after the list
    selector: str | None = None  # label selector of the list and the watch


CM = ("core", "list_namespaced_config_map")
ROWS = [
    pytest.param(Row(*CM, lambda s, a: config_map(a, "gone"), delete_config_map), id="configmap-deleted"),
    pytest.param(Row(*CM, lambda s, a: config_map(a, "again"), delete_and_create_again),
                 id="configmap-deleted-then-created-again"),
    pytest.param(Row(*CM, lambda s, a: config_map(a, "moved", team="a"), relabel_out, "team=a"),
                 id="configmap-relabelled-out-of-the-selector"),
    pytest.param(Row(*CM, lambda s, a: config_map(a, "joined", team="b"), relabel_in, "team=a"),
                 id="configmap-relabelled-into-the-selector"),
    pytest.param(Row(*CM, lambda s, a: config_map(a, "flip", team="a"), relabel_out_and_back, "team=a"),
                 id="configmap-relabelled-out-and-back"),
    pytest.param(Row("coord", "list_namespaced_lease", lease, delete_lease), id="lease-deleted"),
    pytest.param(Row("core", "list_namespaced_event", lambda s, a: event(a, "web.1"), delete_event),
                 id="event-deleted"),
    pytest.param(Row("core", "list_namespaced_event", lambda s, a: event(a, "web.1"), expire_event),
                 id="event-expired-by-its-ttl"),
    pytest.param(Row("core", "list_namespaced_pod", nothing, delete_a_pod, "app=web"), id="pod-deleted-by-a-request"),
    pytest.param(Row("core", "list_namespaced_pod", nothing, scale_down, "app=api"), id="pods-removed-by-a-scale-down"),
    pytest.param(Row("hpa", "list_namespaced_horizontal_pod_autoscaler", hpa, delete_hpa),
                 id="hpa-deleted-autoscaling-v1"),
]

HPA = {"metadata": {"name": "web"},
       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}}


def listed(apis: Apis, api: str, lister: str, selector: str | None = None):
    return getattr(getattr(apis, api), lister)(NS, **({"label_selector": selector} if selector else {}))


def watched(apis: Apis, api: str, lister: str, rv: str, selector: str | None = None) -> list[dict]:
    """The events of a watch from ``rv``, read to its end (WATCH_S)."""
    return list(watch.Watch().stream(getattr(getattr(apis, api), lister), NS, resource_version=rv,
                                     timeout_seconds=WATCH_S, **({"label_selector": selector} if selector else {})))


@pytest.mark.parametrize("row", ROWS)
def test_a_watch_from_a_lists_resource_version_gets_what_changed_after_it(server, apis, row):
    """Changed after the list and before the watch (no watch connected): every event after the
    list's resourceVersion, deletions included, in resourceVersion order, up to the store's."""
    row.before(server, apis)
    before = listed(apis, row.api, row.lister, row.selector)
    expected = row.change(server, apis)
    events = watched(apis, row.api, row.lister, before.metadata.resource_version, row.selector)
    named = {name for _, name in expected}
    assert [(e["type"], e["object"].metadata.name if e["object"].metadata.name in named else NEW)
            for e in events] == expected
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(set(versions)) and versions[0] > int(before.metadata.resource_version)
    assert versions[-1] <= int(listed(apis, row.api, row.lister).metadata.resource_version)


def test_a_deleted_object_comes_in_its_last_state_and_a_v1_hpa_as_v1(server, apis):
    hpa(server, apis)
    rv = listed(apis, "hpa", "list_namespaced_horizontal_pod_autoscaler").metadata.resource_version
    apis.hpa.delete_namespaced_horizontal_pod_autoscaler("web", NS)
    [deleted] = watched(apis, "hpa", "list_namespaced_horizontal_pod_autoscaler", rv)
    assert deleted["type"] == "DELETED"
    assert (deleted["object"].spec.target_cpu_utilization_percentage, deleted["object"].spec.max_replicas) == (70, 5)


def test_a_relabelled_object_leaves_a_selector_in_its_last_matching_state(server, apis):
    config_map(apis, "moved", team="a")
    rv = listed(apis, *CM, "team=a").metadata.resource_version
    relabel(apis, "moved", team="b", tier="x")
    relabel(apis, "moved", team="c")
    [deleted] = watched(apis, *CM, rv, "team=a")
    assert deleted["type"] == "DELETED" and deleted["object"].metadata.labels == {"team": "a"}


def test_a_watch_resumed_from_its_last_event_gets_the_deletion_it_missed(server, apis):
    """As the Python client and client-go's reflector resume a broken watch: from the
    resourceVersion of the last event they got; the deletion made while no watch was connected
    comes first, then the watch goes on."""
    config_map(apis, "kept")
    config_map(apis, "gone")
    rv = listed(apis, *CM).metadata.resource_version
    relabel(apis, "kept", seen="1")
    first = watch.Watch()
    assert [e["type"] for e in first.stream(apis.core.list_namespaced_config_map, NS, resource_version=rv,
                                            timeout_seconds=WATCH_S)] == ["MODIFIED"]
    apis.core.delete_namespaced_config_map("gone", NS)  # while no watch is connected
    resumed = watch.Watch()
    events = [(e["type"], e["object"].metadata.name) for e in resumed.stream(
        apis.core.list_namespaced_config_map, NS, resource_version=first.resource_version, timeout_seconds=WATCH_S)]
    assert events == [("DELETED", "gone")]
    assert int(resumed.resource_version) > int(first.resource_version)


def test_a_following_watch_gets_a_deletion_at_its_own_resource_version(server, apis):
    """A DELETED carries the deletion's resourceVersion, not the object's last one: a watch
    resumed from it does not get the deletion twice."""
    config_map(apis, "gone")
    rv = listed(apis, *CM).metadata.resource_version
    events: queue.Queue = queue.Queue()

    def follow():
        for e in watch.Watch().stream(apis.core.list_namespaced_config_map, NS, resource_version=rv,
                                      timeout_seconds=3):
            events.put(e)
    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)  # the watch is connected (it polls every 0.25 s)
    apis.core.delete_namespaced_config_map("gone", NS)
    deleted = events.get(timeout=5)
    after = listed(apis, *CM).metadata.resource_version
    assert deleted["type"] == "DELETED"
    assert int(rv) < int(deleted["object"].metadata.resource_version) == int(after)
    assert watched(apis, *CM, deleted["object"].metadata.resource_version) == []


class FakeMonotonic:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_history_keeps_the_window_only(server, apis):
    """An hour of changes, one a second, with no watch asking: the history holds the window's."""
    store = server.world.store
    clock = store.monotonic = FakeMonotonic()
    store.watch_history_s = 10.0
    config_map(apis, "busy")
    for i in range(3600):
        clock.t += 1.0
        body = store.configmaps.get(NS, "busy")
        store.configmaps.update(NS, "busy", {**body, "data": {"n": str(i)}})
    assert len(store.history.changes) <= 12
    assert store.oldest_watchable_rv() >= store.resource_version - 12


def test_past_the_historys_limit_a_watch_gets_410_and_a_fresh_list_watches(server, apis):
    """At most ``limit`` changes are kept: a watch from before the oldest kept gets 410 Expired
    (the Python client raises it) instead of missing events."""
    server.world.store.history = ChangeHistory(limit=5)
    config_map(apis, "busy")
    rv = listed(apis, *CM).metadata.resource_version
    for i in range(6):
        relabel(apis, "busy", n=str(i))
    assert len(server.world.store.history.changes) == 5
    with pytest.raises(ApiException) as err:
        watched(apis, *CM, rv)
    assert err.value.status == 410
    fresh = listed(apis, *CM).metadata.resource_version
    assert watched(apis, *CM, fresh) == []
