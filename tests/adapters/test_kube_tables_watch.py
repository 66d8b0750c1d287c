"""Tables and watches of the simulated apiserver, through HTTP and the official Python client
(kubectl's view of them is in test_kubectl.py)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from kubernetes import client, watch

from simulators.kubeapi.tables import human_duration, wants_table
from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, TOKEN, api_client, server  # noqa: F401

NS = "shop"
KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
                  "g=meta.k8s.io,application/json")


@pytest.mark.parametrize("seconds,shown", [
    pytest.param(-5, "<invalid>", id="future"), pytest.param(-0.5, "0s", id="clock-skew"),
    pytest.param(45, "45s", id="seconds"), pytest.param(119, "119s", id="under-2m"),
    pytest.param(192, "3m12s", id="minutes-seconds"), pytest.param(300, "5m", id="whole-minutes"),
    pytest.param(3000, "50m", id="minutes"), pytest.param(5 * 3600 + 120, "5h2m", id="hours-minutes"),
    pytest.param(30 * 3600, "30h", id="hours"), pytest.param(3 * 86400 + 3600, "3d1h", id="days-hours"),
    pytest.param(40 * 86400, "40d", id="days"), pytest.param(3 * 365 * 86400 + 86400 * 12, "3y12d", id="years"),
])
def test_age_reads_as_kubectl_prints_it(seconds, shown):
    assert human_duration(seconds) == shown


@pytest.mark.parametrize("accept,version", [
    pytest.param(KUBECTL_ACCEPT, "meta.k8s.io/v1", id="kubectl"),
    pytest.param("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "meta.k8s.io/v1beta1", id="v1beta1-only"),
    pytest.param("application/json", None, id="plain-json"),
    pytest.param(None, None, id="no-accept"),
    pytest.param("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", None, id="not-a-table"),
])
def test_table_is_served_only_when_asked(accept, version):
    assert wants_table(accept) == version


def get(server, path: str, accept: str | None = None):
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Accept": accept} if accept else {})}
    req = urllib.request.Request(server.url + path, headers=headers)
    with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S, context=server.client_ssl_context()) as resp:
        return resp.headers, resp.read()


def test_list_as_table_has_the_columns_and_one_row_per_object(server):
    server.world.advance(4)
    _, body = get(server, f"/apis/apps/v1/namespaces/{NS}/deployments", KUBECTL_ACCEPT)
    t = json.loads(body)
    assert (t["kind"], t["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert [c["name"] for c in t["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Up-to-date", "Available", "Age"]
    assert [r["cells"][:4] for r in t["rows"]] == [["api", "3/3", 3, 3], ["web", "2/2", 2, 2]]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert t["rows"][0]["object"]["metadata"]["name"] == "api"


def test_get_one_object_as_table_with_the_whole_object(server):
    _, body = get(server, f"/api/v1/namespaces/{NS}/pods?includeObject=Object", KUBECTL_ACCEPT)
    t = json.loads(body)
    assert [c["name"] for c in t["columnDefinitions"][:5]] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert all(r["object"]["kind"] == "Pod" for r in t["rows"]) and len(t["rows"]) == 5


def test_discovery_carries_short_names_and_categories(api_client):
    apps = {r.name: r for r in client.AppsV1Api(api_client).get_api_resources().resources}
    core = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert (apps["deployments"].short_names, apps["deployments"].categories) == (["deploy"], ["all"])
    assert (apps["replicasets"].short_names, core["pods"].short_names, core["events"].short_names) == (
        ["rs"], ["po"], ["ev"])
    assert "watch" in apps["deployments"].verbs and "all" in core["pods"].categories


def test_watch_from_a_list_sends_the_change_then_ends_at_its_timeout(server, api_client):
    apps = client.AppsV1Api(api_client)
    listed = apps.list_namespaced_deployment(NS)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    events = [(e["type"], e["object"].metadata.name, e["object"].spec.replicas) for e in watch.Watch().stream(
        apps.list_namespaced_deployment, NS, resource_version=listed.metadata.resource_version, timeout_seconds=1)]
    assert events == [("MODIFIED", "web", 5)]


def test_watch_without_a_version_starts_with_every_object_then_follows_pods(server, api_client):
    core = client.CoreV1Api(api_client)
    seen: list[tuple[str, str]] = []
    victim = sorted(p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=web").items)[0]
    stream = watch.Watch().stream(core.list_namespaced_pod, NS, label_selector="app=web", timeout_seconds=3)
    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:  # both ADDED: delete one; its ReplicaSet makes a new one; its grace ends
            core.delete_namespaced_pod(victim, NS)
            server.world.advance(6)
    types = [t for t, _ in seen]
    assert types[:2] == ["ADDED", "ADDED"]
    assert [t for t, name in seen if name == victim] == ["ADDED", "MODIFIED", "DELETED"]  # terminating, gone
    assert types.count("ADDED") == 3


@pytest.mark.parametrize("query", [
    pytest.param("watch=1&timeoutSeconds=soon", id="bad-timeoutSeconds"),
    pytest.param("watch=1&timeout=5 minutes", id="bad-timeout"),
    pytest.param("watch=1&resourceVersion=abc", id="bad-resourceVersion"),
])
def test_bad_watch_parameters_are_400(server, query):
    with pytest.raises(urllib.error.HTTPError) as err:
        get(server, f"/apis/apps/v1/namespaces/{NS}/deployments?{query.replace(' ', '%20')}")
    assert err.value.code == 400 and json.loads(err.value.read())["reason"] == "BadRequest"


def test_stopping_the_server_ends_its_watches(server):
    """A watch asked for 60 s ends (its stream closes) when the server stops."""
    ended = threading.Event()

    def watch_long() -> None:
        try:
            get(server, f"/api/v1/namespaces/{NS}/events?watch=1&timeoutSeconds=60")
        except OSError:
            pass
        ended.set()

    thread = threading.Thread(target=watch_long, daemon=True)
    thread.start()
    assert not ended.wait(0.5)  # the watch is open
    server.stop()
    assert ended.wait(10)
