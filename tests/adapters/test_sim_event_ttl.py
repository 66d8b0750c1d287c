"""sim serve over a long run: Events expire ``--event-ttl`` after their last write, as
kube-apiserver deletes them (an etcd lease per write), and the rest of its state that grew with
churn stays bounded (pod fingerprints, the watch history's marks, the request log).

Times are the world's: the server is not driven (``drive=False``), each ``advance`` moves the
simulated clock one tick (5 s; at speed 1, 5 s of the wall time objects show).
"""

from __future__ import annotations

import datetime
import queue
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from typer.testing import CliRunner

from controller.cli import app
from simulators.kubeapi.server import RequestLog
from simulators.kubeapi.store import EVENT_TTL_S, StoredObjects
from tests.adapters.kube_helpers import official_client, start_server

NS = "shop"
TTL_S = 60.0
TICK_S = 5.0  # kube_helpers' scenario


@pytest.fixture
def server():
    srv = start_server(event_ttl_s=TTL_S)
    yield srv
    srv.stop()


@pytest.fixture
def core(server, tmp_path):
    c = official_client(server, tmp_path)
    yield client.CoreV1Api(c)
    c.close()


def make_event(core, name: str) -> client.CoreV1Event:
    now = datetime.datetime.now(datetime.timezone.utc)
    body = client.CoreV1Event(metadata=client.V1ObjectMeta(name=name),
                              involved_object=client.V1ObjectReference(kind="Deployment", name="web", namespace=NS),
                              reason="ScaledUp", message="web: 2 -> 4", type="Normal", count=1,
                              first_timestamp=now, last_timestamp=now)
    return core.create_namespaced_event(NS, body)


def names(core) -> set[str]:
    return {e.metadata.name for e in core.list_namespaced_event(NS).items}


def advance_s(server, seconds: float) -> None:
    server.world.advance(round(seconds / TICK_S))


def test_the_default_ttl_is_the_apiservers_hour():
    assert EVENT_TTL_S == 3600.0


def test_an_event_expires_after_the_ttl_and_a_watcher_sees_it_deleted(server, core):
    make_event(core, "web.1")
    make_event(core, "web.2")
    events: queue.Queue = queue.Queue()

    def follow():
        for e in watch.Watch().stream(core.list_namespaced_event, NS, timeout_seconds=10):
            events.put((e["type"], e["object"].metadata.name))

    threading.Thread(target=follow, daemon=True).start()
    assert {events.get(timeout=5), events.get(timeout=5)} == {("ADDED", "web.1"), ("ADDED", "web.2")}
    advance_s(server, TTL_S - TICK_S)
    assert names(core) == {"web.1", "web.2"}
    before = core.list_namespaced_event(NS).metadata.resource_version
    advance_s(server, TICK_S)  # TTL_S after the write: gone, as a deletion
    assert names(core) == set()
    with pytest.raises(ApiException) as err:
        core.read_namespaced_event("web.1", NS)
    assert err.value.status == 404
    after = core.list_namespaced_event(NS).metadata.resource_version
    assert int(after) > int(before)  # a deletion is a change: the list's resourceVersion moves on
    assert {events.get(timeout=5), events.get(timeout=5)} == {("DELETED", "web.1"), ("DELETED", "web.2")}


def test_an_update_restarts_the_ttl_and_a_no_op_update_does_not(server, core):
    make_event(core, "patched")
    make_event(core, "same")
    advance_s(server, 40)
    core.patch_namespaced_event("patched", NS, {"count": 2})  # written: its TTL starts again
    same = core.read_namespaced_event("same", NS)
    kept = core.replace_namespaced_event("same", NS, same)  # nothing changes: not written (etcd3)
    assert kept.metadata.resource_version == same.metadata.resource_version
    advance_s(server, TTL_S - 40)
    assert names(core) == {"patched"}  # the created TTL ran out for "same" only
    advance_s(server, 40 - TICK_S)
    assert names(core) == {"patched"}
    advance_s(server, TICK_S)  # TTL_S after the patch
    assert names(core) == set()


def test_an_event_recreated_after_its_expiry_is_a_new_object(server, core):
    first = make_event(core, "again")
    advance_s(server, TTL_S)
    second = make_event(core, "again")
    assert second.metadata.uid != first.metadata.uid
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    advance_s(server, TTL_S - TICK_S)
    assert names(core) == {"again"}


def test_the_event_cap_deletes_the_one_closest_to_expiry(server):
    table = server.world.store.events
    table.limit = 3
    for name in ("a", "b", "c"):
        table.create(NS, {"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": "p"}})
    server.world.advance(1)
    table.update(NS, "a", {**table.get(NS, "a"), "message": "again"})  # renewed: b expires first now
    rv = server.world.store.resource_version
    table.create(NS, {"metadata": {"name": "d"}, "involvedObject": {"kind": "Pod", "name": "p"}})
    assert [name for _, name in table.items] == ["a", "c", "d"]
    assert server.world.store.resource_version == rv + 2  # the create, and the deletion


def test_the_clusters_own_events_never_push_out_a_clients(server, core):
    """At the cap, the simulated cluster's own Events (a busy 1,000-service cluster reached 10,000
    in 11 minutes) delete their own oldest, not the controller's Event; a client's Event over
    the cap deletes the clients' oldest."""
    table = server.world.store.events
    table.limit = 3
    make_event(core, "setpoint-a")
    for k in range(5):  # the cluster's, many a tick
        table.create(NS, {"metadata": {"name": f"cluster-{k}"}, "involvedObject": {"kind": "Pod", "name": "p"}},
                     owned=True)
    assert names(core) == {"setpoint-a", "cluster-2", "cluster-3", "cluster-4"}
    for name in ("setpoint-b", "setpoint-c", "setpoint-d"):
        make_event(core, name)
    assert names(core) == {"setpoint-b", "setpoint-c", "setpoint-d", "cluster-2", "cluster-3", "cluster-4"}


def test_a_ttl_must_be_positive(server):
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="TTL must be above 0"):
            StoredObjects(server.world.store, "events", "", "Event", "v1", ttl_s=bad)


@pytest.mark.parametrize("value, message", [
    pytest.param("0s", "--event-ttl: expected a duration above 0, got 0s", id="zero"),
    pytest.param("90", "--event-ttl: expected a duration such as 30s", id="a-bare-number"),
    pytest.param("-5m", "a duration is never negative", id="negative"),
    pytest.param("soon", "--event-ttl: expected a duration such as 30s", id="not-a-duration"),
])
def test_event_ttl_option_is_validated_before_anything_starts(value, message, tmp_path):
    result = CliRunner().invoke(app, ["sim", "serve", "--event-ttl", value, "--kube-listen", "127.0.0.1:0",
                                      "--kubeconfig-out", str(tmp_path / "kc.yaml")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "kc.yaml").exists()


def test_event_ttl_option_reaches_the_store(monkeypatch):
    from simulators.kubeapi import server as server_module
    seen = {}
    monkeypatch.setattr(server_module, "serve", lambda *a, **kw: seen.update(kw))
    result = CliRunner().invoke(app, ["sim", "serve", "--event-ttl", "90m"])
    assert result.exit_code == 0, result.output
    assert seen["event_ttl_s"] == 5400.0
    CliRunner().invoke(app, ["sim", "serve"])
    assert seen["event_ttl_s"] == 3600.0


# --------------------------------------------------------------------------- other state, bounded
def test_fingerprints_of_pods_gone_are_forgotten(server, core, tmp_path):
    """Every pod served was fingerprinted (its lazy resourceVersion) and kept forever: a long run
    that deletes and scales pods held one per pod it ever served."""
    apps = client.AppsV1Api(official_client(server, tmp_path))
    store = server.world.store
    for round_ in range(4):
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 6 if round_ % 2 == 0 else 2}})
        server.world.advance(4)
        for pod in core.list_namespaced_pod(NS, label_selector="app=web").items[:2]:
            core.delete_namespaced_pod(pod.metadata.name, NS)
        server.world.advance(4)
    live = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    served = {key[2] for key in store._fingerprints if key[0] == "Pod"}
    assert served == live
    apps.api_client.close()


class FakeMonotonic:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_watch_history_marks_stay_within_the_window_without_watches(server):
    store = server.world.store
    clock = store.monotonic = FakeMonotonic()
    store.watch_history_s = 10.0
    store._rv_marks.clear()
    for _ in range(3600):  # an hour of changes, one a second, and no watch asking
        clock.t += 1.0
        store.next_rv()
    assert len(store._rv_marks) <= 12
    rv = store.resource_version
    clock.t += 10.0  # the window is past the last change: a watch from before it gets 410
    assert store.oldest_watchable_rv() == rv - 1


def test_the_request_log_is_bounded():
    log = RequestLog(keep=0, max_paths=3)
    for i in range(5):
        log.add("GET", f"/api/v1/namespaces/shop/pods/web-{i}")
    log.add("DELETE", "/api/v1/namespaces/shop/pods/web-4")
    assert log.count() == 6 and log.count("GET") == 5 and log.by_method() == {"GET": 5, "DELETE": 1}
    assert log.count("GET", "/pods/") == 2  # the paths counted: the 3 most recently requested
    assert log.count(None, "web-4$") == 2
    assert len(log.recent) == 0
    log.reset()
    assert log.count() == 0 and log.by_method() == {}


def test_sim_serve_keeps_no_recent_requests(monkeypatch):
    from simulators.kubeapi import server as server_module
    made = {}
    real = server_module.SimKubeServer

    class Spy(real):
        def __init__(self, *a, **kw):
            made.update(kw)
            raise ValueError("stop here")

    monkeypatch.setattr(server_module, "SimKubeServer", Spy)
    with pytest.raises(ValueError, match="stop here"):
        server_module.serve("flash-crowd", "127.0.0.1:0")
    assert made["request_history"] == 0 and made["event_ttl_s"] == EVENT_TTL_S
