"""sim serve's own Events, as a real cluster's controllers and kubelets record them
(simulators/kubeapi/cluster_events.py, event_recorder.py): read through the official client over
loopback HTTP, as ``kubectl describe`` and ``kubectl get events`` read them.

The server is not driven (``drive=False``): each ``advance`` is one 5 s tick, and objects show
wall times from WALL_START (speed 1), so every time below is fixed.
"""

from __future__ import annotations

import dataclasses
import queue
import re
import threading

import pytest
from kubernetes import client, watch

from simulators.kubeapi.event_recorder import SPAM_BURST, Source
from simulators.kubeapi.objects import rfc3339
from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import SCENARIO_YAML, TOKEN, official_client, start_server

NS = "shop"
TICK_S = 5.0
WALL_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the wall time of the world's first tick


@dataclasses.dataclass
class Apis:
    core: client.CoreV1Api
    apps: client.AppsV1Api


def serve(**options) -> SimKubeServer:
    return start_server(wall_start_s=WALL_START, **options)


@pytest.fixture
def server():
    srv = serve()
    yield srv
    srv.stop()


@pytest.fixture
def apis(server, tmp_path):
    c = official_client(server, tmp_path)
    yield Apis(client.CoreV1Api(c), client.AppsV1Api(c))
    c.close()


def at(ticks: int) -> str:
    """The time objects show after ``ticks`` advances (RFC 3339)."""
    return rfc3339(WALL_START + ticks * TICK_S)


def events(apis: Apis, selector: str = "") -> list:
    """The Events in the namespace matching a field selector, in the order they were written."""
    items = apis.core.list_namespaced_event(NS, field_selector=selector or None).items
    return sorted(items, key=lambda e: int(e.metadata.resource_version))


def seen(items) -> list[tuple]:
    return [(e.involved_object.kind, e.involved_object.name, e.type, e.reason, e.source.component, e.message)
            for e in items]


def pods(apis: Apis, app: str) -> dict[str, str]:
    """Pod name -> its node, of ``app``'s pods not terminating."""
    return {p.metadata.name: p.spec.node_name for p in apis.core.list_namespaced_pod(NS, label_selector=f"app={app}").items
            if p.metadata.deletion_timestamp is None}  # not those terminating


def replicasets(apis: Apis, app: str) -> dict[str, str]:
    """Revision -> ReplicaSet name, of ``app``."""
    return {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs.metadata.name
            for rs in apis.apps.list_namespaced_replica_set(NS, label_selector=f"app={app}").items}


def scale(apis: Apis, name: str, replicas: int) -> None:
    apis.apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": replicas}})


# --------------------------------------------------------------------------- what each controller records
@pytest.mark.parametrize("app, replicas, verb", [
    pytest.param("web", 5, "up", id="scale-up-creates-pods"),
    pytest.param("api", 1, "down", id="scale-down-deletes-and-stops-pods"),
])
def test_a_scale_is_told_by_the_deployment_replicaset_controllers_and_kubelets(server, apis, app, replicas, verb):
    server.world.advance(3)  # the initial pods run
    before, old = pods(apis, app), apis.apps.read_namespaced_deployment(app, NS).spec.replicas
    [rs] = replicasets(apis, app).values()
    scale(apis, app, replicas)
    server.world.advance(1)
    after = pods(apis, app)
    created, deleted = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    assert len(created) + len(deleted) == abs(replicas - old)

    deployment = apis.apps.read_namespaced_deployment(app, NS)
    [scaled] = events(apis, f"involvedObject.kind=Deployment,involvedObject.name={app}")
    assert seen([scaled]) == [("Deployment", app, "Normal", "ScalingReplicaSet", "deployment-controller",
                               f"Scaled {verb} replica set {rs} to {replicas} from {old}")]
    assert (scaled.involved_object.uid, scaled.involved_object.api_version) == (deployment.metadata.uid, "apps/v1")
    assert (scaled.count, scaled.first_timestamp, scaled.last_timestamp) == (1, scaled.last_timestamp, scaled.last_timestamp)
    assert rfc3339(scaled.last_timestamp.timestamp()) == at(3)  # the scale's time (the last tick's)
    assert scaled.reporting_component == "deployment-controller"
    assert re.fullmatch(rf"{app}\.[0-9a-f]{{16}}", scaled.metadata.name)

    on_rs = events(apis, f"involvedObject.kind=ReplicaSet,involvedObject.name={rs}")
    assert sorted(seen(on_rs)) == sorted(
        [("ReplicaSet", rs, "Normal", "SuccessfulCreate", "replicaset-controller", f"Created pod: {p}") for p in created]
        + [("ReplicaSet", rs, "Normal", "SuccessfulDelete", "replicaset-controller", f"Deleted pod: {p}")
           for p in deleted])
    assert {e.involved_object.uid for e in on_rs} == {apis.apps.read_namespaced_replica_set(rs, NS).metadata.uid}

    stopped = events(apis, "involvedObject.kind=Pod")
    assert sorted((e.involved_object.name, e.involved_object.field_path, e.reason, e.message, e.source.component,
                   e.source.host, e.reporting_instance) for e in stopped) == [
        (p, f"spec.containers{{{app}}}", "Killing", f"Stopping container {app}", "kubelet", before[p], before[p])
        for p in deleted]


def test_a_rollout_scales_the_new_replicaset_up_and_the_old_one_down_at_each_step(server, apis):
    server.world.advance(3)
    deployment = apis.apps.read_namespaced_deployment("api", NS)  # 3 replicas, maxSurge 25% (1), maxUnavailable 25% (0)
    template = deployment.spec.template
    template.metadata.annotations = {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:15Z"}
    apis.apps.patch_namespaced_deployment("api", NS, {"spec": {"template": template}})
    server.world.advance(40)
    rs = replicasets(apis, "api")
    old, new = rs["1"], rs["2"]
    scaled = [e.message for e in events(apis, "involvedObject.kind=Deployment,involvedObject.name=api")]
    # the new ReplicaSet created with its first pod (getNewReplicaSet: no "from"), then scaleReplicaSet's words
    assert scaled == [f"Scaled up replica set {new} to 1", f"Scaled down replica set {old} to 2 from 3",
                      f"Scaled up replica set {new} to 2 from 1", f"Scaled down replica set {old} to 1 from 2",
                      f"Scaled up replica set {new} to 3 from 2", f"Scaled down replica set {old} to 0 from 1"]
    assert [e.reason for e in events(apis, f"involvedObject.name={new}")] == ["SuccessfulCreate"] * 3
    assert [e.reason for e in events(apis, f"involvedObject.name={old}")] == ["SuccessfulDelete"] * 3
    assert [e.reason for e in events(apis, "involvedObject.kind=Pod")] == ["Killing"] * 3


def test_a_pod_deleted_by_a_client_is_stopped_and_replaced_not_deleted_by_its_replicaset(server, apis):
    server.world.advance(3)
    before = pods(apis, "web")
    victim = sorted(before)[0]
    apis.core.delete_namespaced_pod(victim, NS)
    [replacement] = set(pods(apis, "web")) - set(before)
    assert seen(events(apis)) == [
        ("ReplicaSet", replicasets(apis, "web")["1"], "Normal", "SuccessfulCreate", "replicaset-controller",
         f"Created pod: {replacement}"),
        ("Pod", victim, "Normal", "Killing", "kubelet", "Stopping container web")]
    assert events(apis, "involvedObject.kind=Pod")[0].source.host == before[victim]


def test_a_statefulset_is_told_by_the_statefulset_controller(tmp_path):
    srv = serve(statefulsets=frozenset({"web"}))
    c = official_client(srv, tmp_path)
    try:
        apis = Apis(client.CoreV1Api(c), client.AppsV1Api(c))
        srv.world.advance(3)
        before = pods(apis, "web")
        apis.apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 3}})
        srv.world.advance(3)
        [created] = set(pods(apis, "web")) - set(before)
        apis.apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 1}})
        srv.world.advance(6)  # the highest at the write, the next once it is gone (its 30 s of grace)
        deleted = sorted((set(before) | {created}) - set(pods(apis, "web")))
        assert len(deleted) == 2
        on_set = events(apis, "involvedObject.kind=StatefulSet,involvedObject.name=web")
        assert seen(on_set[:1]) == [("StatefulSet", "web", "Normal", "SuccessfulCreate", "statefulset-controller",
                                     f"create Pod {created} in StatefulSet web successful")]
        assert sorted(seen(on_set[1:])) == [("StatefulSet", "web", "Normal", "SuccessfulDelete", "statefulset-controller",
                                             f"delete Pod {p} in StatefulSet web successful") for p in deleted]
        assert sorted(e.involved_object.name for e in events(apis, "reason=Killing")) == deleted
        assert events(apis, "reason=ScalingReplicaSet") == []  # no ReplicaSets
    finally:
        c.close()
        srv.stop()


def faulty_server(fault: str, nodes: str = "") -> SimKubeServer:
    text = SCENARIO_YAML.replace("  services:", nodes + "  services:") + "  faults:\n    - " + fault + "\n"
    return SimKubeServer(load_scenario_text(text, "faults.yaml"), drive=False, token=TOKEN,
                         wall_start_s=WALL_START).start()


def test_a_crash_looping_pod_backs_off_on_one_event_whose_count_grows():
    srv = faulty_server("{name: release-2, kind: crash-loop, at: 30s, services: [web]}")
    try:
        srv.world.advance(240)  # 20 minutes: back-offs of 10, 20, 40, 80, 160, 300 s
        [backoff] = [e for e in srv.world.store.events.items.values() if e["reason"] == "BackOff"]
        pod = backoff["involvedObject"]["name"]
        assert (backoff["type"], backoff["source"]["component"]) == ("Warning", "kubelet")
        assert backoff["involvedObject"]["fieldPath"] == "spec.containers{web}"
        assert backoff["message"] == (f"Back-off restarting failed container web in pod {pod}_{NS}"
                                      f"({backoff['involvedObject']['uid']})")
        restarts = srv.world.store.get_pod(NS, pod)["status"]["containerStatuses"][0]["restartCount"]
        assert backoff["count"] == restarts >= 5
        assert backoff["firstTimestamp"] < backoff["lastTimestamp"]
    finally:
        srv.stop()


def test_pods_lost_with_their_node_are_replaced_not_deleted_nor_stopped():
    srv = faulty_server("{name: zone-down, kind: node-loss, at: 30s, duration: 5m, share: 50%}",
                        "  nodes: {count: 8, podsPerNode: 4}\n")
    try:
        before = {p.name for _, st in srv.world.store.pod_statuses() for p in st.pods}
        srv.world.advance(7)
        now = {p.name for _, st in srv.world.store.pod_statuses() for p in st.pods}
        got = [(e["reason"], e["message"]) for e in srv.world.store.events.items.values()]
        assert before - now and sorted(got) == sorted(("SuccessfulCreate", f"Created pod: {p}") for p in now - before)
    finally:
        srv.stop()


def test_without_cluster_events_only_clients_events_are_stored():
    srv = serve(cluster_events=False)
    try:
        srv.world.store.update_scale("Deployment", NS, "web", {"spec": {"replicas": 5}})
        srv.world.advance(3)
        assert srv.world.store.events.items == {}
    finally:
        srv.stop()


# --------------------------------------------------------------------------- correlation, as client-go's recorder
def follow(apis: Apis, seconds: float = 10, **options) -> queue.Queue:
    """A watch on the namespace's Events in the background: (type, name, count, message) as they come."""
    got: queue.Queue = queue.Queue()

    def run():
        for e in watch.Watch().stream(apis.core.list_namespaced_event, NS, timeout_seconds=seconds, **options):
            got.put((e["type"], e["object"].metadata.name, e["object"].count, e["object"].message))

    threading.Thread(target=run, daemon=True).start()
    return got


def received(got: queue.Queue, expected: list[tuple], key=lambda change: change) -> list[tuple]:
    """The watch's changes as ``key`` shows them, read until every one of ``expected`` came (5 s
    at most), those only, in the order they came."""
    seen_keys: list[tuple] = []
    while not set(expected) <= set(seen_keys):
        try:
            seen_keys.append(key(got.get(timeout=5)))
        except queue.Empty:
            break
    return [k for k in seen_keys if k in expected]


def test_a_repeated_event_counts_on_one_object_within_and_past_ten_minutes(server, apis):
    """client-go's eventObserve: the same event (source, object, type, reason, message) again
    updates the one Event, count + 1 (a watch sees MODIFIED), with no time limit (the 10-minute
    window is the aggregator's, for alike events: next test)."""
    [rs] = replicasets(apis, "web").values()
    up = f"Scaled up replica set {rs} to 3 from 2"
    scale(apis, "web", 3)
    [first] = events(apis, "reason=ScalingReplicaSet")
    got = follow(apis, resource_version=first.metadata.resource_version)
    for ticks in (1, 12, 120):  # 5 s, a minute, 10 minutes after the last time
        server.world.advance(ticks)
        scale(apis, "web", 2)
        scale(apis, "web", 3)
    [again] = [e for e in events(apis, "reason=ScalingReplicaSet") if e.message == up]
    assert (again.metadata.name, again.count) == (first.metadata.name, 4)
    assert (rfc3339(again.first_timestamp.timestamp()), rfc3339(again.last_timestamp.timestamp())) == (at(0), at(133))
    assert int(again.metadata.resource_version) > int(first.metadata.resource_version)
    expected = [("MODIFIED", first.metadata.name, n, up) for n in (2, 3, 4)]
    assert received(got, expected) == expected


def test_alike_events_with_ten_messages_in_ten_minutes_are_combined(server, apis):
    """client-go's EventAggregator: the 10th distinct message of alike events (same object,
    reason, source) within 10 minutes of the last is written as one "(combined from similar
    events)" Event, counted on from then; 10 minutes after the last one they count afresh."""
    [rs] = replicasets(apis, "web").values()
    for replicas in range(3, 14):  # 11 scale-ups, one a tick: 2 -> 3, ..., 12 -> 13
        scale(apis, "web", replicas)
        server.world.advance(1)
    scaled = events(apis, "reason=ScalingReplicaSet")
    assert [(e.message, e.count) for e in scaled] == [
        (f"Scaled up replica set {rs} to {n + 1} from {n}", 1) for n in range(2, 11)] + [
        (f"(combined from similar events): Scaled up replica set {rs} to 13 from 12", 2)]
    created = events(apis, f"involvedObject.name={rs}")  # 11 pods: 9 told alone, then the combined one
    assert [e.count for e in created] == [1] * 9 + [2]
    assert created[-1].message.startswith("(combined from similar events): Created pod: web-")
    server.world.advance(121)  # more than 10 minutes since the last
    scale(apis, "web", 14)
    assert events(apis, "reason=ScalingReplicaSet")[-1].message == f"Scaled up replica set {rs} to 14 from 13"


def test_cluster_events_expire_with_the_ttl_and_a_repeat_creates_the_event_again(tmp_path):
    """--event-ttl applies to them as to any Event (DELETED); the same event once its Event is gone
    creates it again under its name, its count going on (client-go's create after a 404)."""
    srv = serve(event_ttl_s=60.0)
    c = official_client(srv, tmp_path)
    try:
        apis = Apis(client.CoreV1Api(c), client.AppsV1Api(c))
        scale(apis, "web", 3)
        [up] = events(apis, "reason=ScalingReplicaSet")
        names = {e.metadata.name for e in events(apis)}
        got = follow(apis, resource_version=up.metadata.resource_version)
        srv.world.advance(12)  # 60 s
        assert events(apis) == []
        expected = sorted(("DELETED", n) for n in names)
        assert sorted(received(got, expected, key=lambda change: change[:2])) == expected
        scale(apis, "web", 2)
        scale(apis, "web", 3)
        again = [e for e in events(apis, "reason=ScalingReplicaSet") if e.message == up.message]
        assert [(e.metadata.name, e.count) for e in again] == [(up.metadata.name, 2)]
        assert again[0].metadata.uid != up.metadata.uid
    finally:
        c.close()
        srv.stop()


def test_a_watch_resumed_from_a_lists_resource_version_and_a_field_selector_gets_them(server, apis):
    """As kubectl describe reads them: a field selector on the involved object; as a reflector
    resumes: a watch from the list's resourceVersion replays what was written after it."""
    listed = apis.core.list_namespaced_event(NS)
    scale(apis, "api", 5)
    server.world.advance(1)
    selector = "involvedObject.kind=Deployment,involvedObject.name=api"
    replayed = list(watch.Watch().stream(apis.core.list_namespaced_event, NS, field_selector=selector,
                                         resource_version=listed.metadata.resource_version, timeout_seconds=1))
    assert [(e["type"], e["object"].reason, e["object"].message) for e in replayed] == [
        ("ADDED", "ScalingReplicaSet", f"Scaled up replica set {replicasets(apis, 'api')['1']} to 5 from 3")]


def test_the_spam_filter_lets_a_source_write_25_events_of_a_type_about_an_object_then_one_per_5_minutes(server):
    store = server.world.store
    recorder = store.cluster_events.recorder
    now = [WALL_START]
    recorder.now = lambda: now[0]
    ref = {"kind": "Pod", "namespace": NS, "name": "web-x", "uid": "u", "apiVersion": "v1"}
    kubelet = Source("kubelet", "sim-node-1")
    written = [recorder.record(ref, "Warning", "BackOff", "Back-off", kubelet) for _ in range(SPAM_BURST + 2)]
    assert [w is not None for w in written] == [True] * SPAM_BURST + [False, False]
    assert store.events.get(NS, written[0]["metadata"]["name"])["count"] == SPAM_BURST
    now[0] += 300.0
    assert recorder.record(ref, "Warning", "BackOff", "Back-off", kubelet)["count"] == SPAM_BURST + 3  # drops counted
    assert recorder.record(ref, "Warning", "BackOff", "Back-off", kubelet) is None  # the Warnings' bucket is empty
    # client-go 1.31+ keys the bucket by type too: the same kubelet's Normal Events about the pod have their own
    assert recorder.record(ref, "Normal", "Killing", "Stopping container web", kubelet) is not None
    assert recorder.record(ref, "Normal", "Killing", "Stopping container web", Source("kubelet", "sim-node-2"))
