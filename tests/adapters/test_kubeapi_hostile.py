"""The simulated apiserver against hostile request bodies, selectors, watch parameters and test
hook rules: each gets the status (and Status reason) the real apiserver gives, never a 500, a
hang or a stored object that breaks later requests.

Every row checks that nothing was stored or applied and that normal requests (gets, lists,
Tables, label-selected lists) still work afterwards. Plain HTTP on 127.0.0.1, every socket with
a timeout.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from simulators.kubeapi import routes
from simulators.kubeapi.server import SimKubeServer
from simulators.kubeapi.tables import _age
from tests.adapters import kube_helpers
from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, TOKEN, official_client

NS = "shop"
DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
SCALE = DEPLOY + "/scale"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
EVENTS = f"/api/v1/namespaces/{NS}/events"
PODS = f"/api/v1/namespaces/{NS}/pods"
HPAS_V2 = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
HPAS_V1 = f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers"
HPA_REF = {"kind": "Deployment", "name": "web"}
JSON, MERGE, SMP, JSON_PATCH = ("application/json", "application/merge-patch+json",
                                "application/strategic-merge-patch+json", "application/json-patch+json")
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture
def server():
    srv = kube_helpers.start_server(tls=False, test_hooks=True)
    assert call(srv, "POST", LEASES, {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "a"}}, JSON)[0] == 201
    yield srv
    srv.stop()


def call(srv: SimKubeServer, method: str, path: str, body=None, content_type: str | None = None,
         accept: str | None = None) -> tuple[int, dict | None]:
    """(status, JSON body or None) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http.port, timeout=REQUEST_TIMEOUT_S)
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Content-Type": content_type} if content_type else {}),
               **({"Accept": accept} if accept else {})}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, None


def snapshot(srv: SimKubeServer) -> dict:
    """What a rejected request must not change: the workload, the pods' spec, the stored objects."""
    store = srv.world.store
    web = store.get_workload("Deployment", NS, "web")
    return {"replicas": web["spec"]["replicas"], "template": web["spec"]["template"],
            "labels": web["metadata"].get("labels"), "annotations": web["metadata"].get("annotations"),
            "leases": sorted(store.leases.items), "events": sorted(store.events.items),
            "configmaps": sorted(store.configmaps.items), "hpas": sorted(store.hpas.items),
            "namespaces": store.namespaces()}


def assert_healthy(srv: SimKubeServer) -> None:
    """The requests hostile input used to break: gets, lists, Tables, selectors."""
    srv.world.advance(3)  # pods of any new revision would be running now
    for path, accept in [(DEPLOY, None), (PODS, None), ("/api/v1/pods", TABLE), (EVENTS, TABLE),
                         ("/apis/apps/v1/replicasets", None), (LEASES + "?labelSelector=app%3Dx", None),
                         ("/api/v1/namespaces", None), (LEASES + "/lock", None), (HPAS_V1, None), (HPAS_V1, TABLE),
                         (HPAS_V2, TABLE)]:
        status, body = call(srv, "GET", path, accept=accept)
        assert status == 200, (path, body)


def assert_status(body: dict | None, code: int, reason: str) -> None:
    assert body is not None, "expected a Status body"
    assert (body["kind"], body["status"], body["code"], body["reason"]) == ("Status", "Failure", code, reason), body
    assert body["message"]


def json_patch_ops(n: int) -> list[dict]:
    return [{"op": "test", "path": "/kind", "value": "Deployment"}] * n


def template_patch(**spec) -> dict:
    return {"spec": {"template": {"spec": spec}}}


# --------------------------------------------------------------------------- rejected bodies and queries
REJECTED = [
    # 1: pod templates the pods are made from
    pytest.param("PATCH", DEPLOY, template_patch(containers=[]), MERGE, 422, "Invalid", id="template-no-containers"),
    pytest.param("PATCH", DEPLOY, template_patch(containers="x"), MERGE, 422, "Invalid", id="template-containers-str"),
    pytest.param("PATCH", DEPLOY, {"spec": {"template": {"spec": []}}}, MERGE, 422, "Invalid",
                 id="template-spec-list"),
    pytest.param("PATCH", DEPLOY, {"spec": {"template": {"metadata": {"annotations": "x"}}}}, MERGE, 422, "Invalid",
                 id="template-annotations-str"),
    pytest.param("PATCH", DEPLOY, {"spec": {"template": {"metadata": "x"}}}, MERGE, 422, "Invalid",
                 id="template-metadata-str"),
    pytest.param("PATCH", DEPLOY, template_patch(containers=[{"image": "x"}]), MERGE, 422, "Invalid",
                 id="container-without-name"),
    pytest.param("PATCH", DEPLOY, template_patch(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
                 MERGE, 422, "Invalid", id="container-names-duplicate"),
    pytest.param("PATCH", DEPLOY, template_patch(containers=[{"name": ["a"], "image": "x"}]), SMP, 422, "Invalid",
                 id="smp-container-name-list"),
    # 2, 3, 17: stored objects' metadata and times
    pytest.param("POST", EVENTS, {"metadata": {"name": "bad"}, "involvedObject": {"kind": "Pod", "name": "x"},
                                  "lastTimestamp": "garbage"}, JSON, 400, "BadRequest", id="event-time-garbage"),
    pytest.param("POST", EVENTS, {"metadata": {"name": "bad"}, "involvedObject": {"kind": "Pod"}, "count": "many"},
                 JSON, 400, "BadRequest", id="event-count-str"),
    pytest.param("POST", LEASES, {"metadata": {"name": "bad", "labels": ["a"]}}, JSON, 400, "BadRequest",
                 id="lease-labels-list"),
    pytest.param("POST", LEASES, {"metadata": {"name": "bad", "labels": {"a": 1}}}, JSON, 400, "BadRequest",
                 id="lease-label-value-number"),
    pytest.param("POST", LEASES, {"metadata": {"name": "bad", "labels": {"bad key!": "v"}}}, JSON, 422, "Invalid",
                 id="lease-label-key-invalid"),
    pytest.param("POST", LEASES, {"metadata": {"name": "bad", "labels": {"a": "v" * 64}}}, JSON, 422, "Invalid",
                 id="lease-label-value-too-long"),
    pytest.param("POST", LEASES, {"metadata": {"name": "bad", "annotations": {"a": "x" * 300_000}}}, JSON, 422,
                 "Invalid", id="lease-annotations-over-256KiB"),
    pytest.param("POST", LEASES, {"metadata": {"name": "a/b"}}, JSON, 422, "Invalid", id="name-with-slash"),
    pytest.param("POST", LEASES, {"metadata": {"name": "Bad_Name!"}}, JSON, 422, "Invalid", id="name-not-dns"),
    pytest.param("POST", LEASES, {"metadata": {"name": ".."}}, JSON, 422, "Invalid", id="name-dot-dot"),
    pytest.param("POST", LEASES, {"metadata": {"name": "a" * 254}}, JSON, 422, "Invalid", id="name-254-chars"),
    pytest.param("POST", LEASES, {"metadata": {"generateName": "Bad_"}}, JSON, 422, "Invalid",
                 id="generate-name-not-dns"),
    pytest.param("POST", "/apis/coordination.k8s.io/v1/namespaces/ghost/leases", {"metadata": {"name": "x"}}, JSON,
                 404, "NotFound", id="namespace-missing"),
    pytest.param("POST", "/apis/coordination.k8s.io/v1/namespaces/BAD%20NS/leases", {"metadata": {"name": "x"}},
                 JSON, 404, "NotFound", id="namespace-percent-encoded-invalid"),
    pytest.param("POST", LEASES, {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": True}}, JSON, 400,
                 "BadRequest", id="lease-duration-bool"),
    pytest.param("POST", LEASES, {"metadata": {"name": "l"}, "spec": {"holderIdentity": 5}}, JSON, 400,
                 "BadRequest", id="lease-holder-number"),
    pytest.param("POST", LEASES, {"metadata": {"name": "l"}, "spec": {"renewTime": "yesterday"}}, JSON, 400,
                 "BadRequest", id="lease-renew-time-garbage"),
    # 5: non-objects where objects go (PUT/POST: 400 decode error; PATCH: 422 on the result)
    pytest.param("PATCH", DEPLOY, {"metadata": "x"}, MERGE, 422, "Invalid", id="patch-metadata-str"),
    pytest.param("PATCH", DEPLOY, {"metadata": []}, MERGE, 422, "Invalid", id="patch-metadata-list"),
    pytest.param("PATCH", DEPLOY, {"metadata": {"labels": ["a"]}}, MERGE, 422, "Invalid", id="patch-labels-list"),
    pytest.param("PATCH", DEPLOY, {"metadata": {"annotations": ["a"]}}, MERGE, 422, "Invalid",
                 id="patch-annotations-list"),
    pytest.param("PATCH", DEPLOY, {"metadata": {"labels": {"a": 1}}}, MERGE, 422, "Invalid",
                 id="patch-label-value-number"),
    pytest.param("PUT", DEPLOY, {"metadata": "x", "spec": {}}, JSON, 400, "BadRequest", id="put-metadata-str"),
    pytest.param("PUT", DEPLOY, {"metadata": {"name": "web"}, "spec": "x"}, JSON, 400, "BadRequest",
                 id="put-spec-str"),
    pytest.param("PATCH", SCALE, {"spec": "x"}, MERGE, 422, "Invalid", id="patch-scale-spec-str"),
    pytest.param("PATCH", SCALE, {"metadata": "x"}, MERGE, 422, "Invalid", id="patch-scale-metadata-str"),
    pytest.param("PUT", SCALE, {"spec": "x"}, JSON, 400, "BadRequest", id="put-scale-spec-str"),
    pytest.param("POST", LEASES, {"metadata": "x"}, JSON, 400, "BadRequest", id="post-lease-metadata-str"),
    pytest.param("POST", LEASES, {"metadata": {"name": 5}}, JSON, 400, "BadRequest", id="post-lease-name-number"),
    pytest.param("POST", LEASES, {"metadata": {"generateName": 5}}, JSON, 400, "BadRequest",
                 id="post-lease-generate-name-number"),
    pytest.param("POST", LEASES, {"metadata": {"name": "ls"}, "spec": "x"}, JSON, 400, "BadRequest",
                 id="post-lease-spec-str"),
    pytest.param("PUT", LEASES + "/lock", {"metadata": "x"}, JSON, 400, "BadRequest", id="put-lease-metadata-str"),
    pytest.param("PATCH", LEASES + "/lock", {"metadata": "x"}, MERGE, 422, "Invalid", id="patch-lease-metadata-str"),
    # 6: replicas beyond int32
    pytest.param("PATCH", DEPLOY, {"spec": {"replicas": 2**63}}, MERGE, 422, "Invalid", id="replicas-2^63"),
    pytest.param("PATCH", SCALE, {"spec": {"replicas": 2**31}}, MERGE, 422, "Invalid", id="replicas-2^31"),
    pytest.param("PATCH", SCALE, b'{"spec":{"replicas":99999999999999999999999}}', MERGE, 422, "Invalid",
                 id="replicas-23-digits"),
    # 7: JSON patch operations
    pytest.param("PATCH", DEPLOY, [{"op": "replace", "path": 5, "value": 1}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-path-number"),
    pytest.param("PATCH", DEPLOY, [{"op": "replace", "path": None, "value": 1}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-path-null"),
    pytest.param("PATCH", DEPLOY, [{"op": "test", "path": ["a"], "value": 1}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-path-list"),
    pytest.param("PATCH", DEPLOY, [{"op": "move", "path": "/a"}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-move-without-from"),
    pytest.param("PATCH", DEPLOY, [{"op": "copy", "path": "/a"}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-copy-without-from"),
    pytest.param("PATCH", DEPLOY, [{"op": "remove", "path": ""}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-remove-root"),
    pytest.param("PATCH", DEPLOY, [{"op": "replace", "path": "", "value": 5}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-replace-root-by-number"),
    pytest.param("PATCH", DEPLOY, [{"op": "replace", "path": "/spec/template/spec/containers/" + "9" * 5000 + "/name",
                                    "value": "x"}], JSON_PATCH, 422, "Invalid", id="json-patch-index-5000-digits"),
    pytest.param("PATCH", DEPLOY, [{"op": "replace", "path": "/spec/template/spec/containers/\u00b2/name",
                                    "value": "x"}], JSON_PATCH, 422, "Invalid", id="json-patch-index-superscript"),
    pytest.param("PATCH", DEPLOY, [{"op": "frob", "path": "/a"}], JSON_PATCH, 422, "Invalid",
                 id="json-patch-unknown-op"),
    pytest.param("PATCH", DEPLOY, [1, 2], JSON_PATCH, 400, "BadRequest", id="json-patch-not-objects"),
    pytest.param("PATCH", DEPLOY, json_patch_ops(10_001), JSON_PATCH, 413, "RequestEntityTooLarge",
                 id="json-patch-10001-ops"),
    # 14: body against the URL and the stored object
    pytest.param("PATCH", DEPLOY, {"metadata": {"namespace": "other"}}, MERGE, 400, "BadRequest",
                 id="patch-namespace-mismatch"),
    pytest.param("PATCH", DEPLOY, {"metadata": {"uid": "bogus"}}, MERGE, 409, "Conflict", id="patch-uid-mismatch"),
    pytest.param("PATCH", LEASES + "/lock", {"metadata": {"namespace": "other"}}, MERGE, 400, "BadRequest",
                 id="patch-lease-namespace-mismatch"),
    pytest.param("PUT", SCALE, {"kind": "Pod", "spec": {"replicas": 3}}, JSON, 400, "BadRequest", id="put-wrong-kind"),
    # HPAs: what the v1 conversion walks (metrics, statuses, round-trip annotations) must decode
    *[pytest.param("POST", HPAS_V2, {"metadata": {"name": "odd"}, "spec": {"scaleTargetRef": HPA_REF, "maxReplicas": 5,
                                                                         **spec}}, JSON, 400, "BadRequest",
                   id=f"hpa-{name}")
      for name, spec in [("metrics-str", {"metrics": "abc"}), ("metric-list", {"metrics": [["cpu"]]}),
                         ("utilization-str", {"metrics": [{"type": "Resource", "resource": {
                             "name": "cpu", "target": {"type": "Utilization", "averageUtilization": "70"}}}]}),
                         ("behavior-list", {"behavior": []})]],
    pytest.param("POST", HPAS_V1, {"metadata": {"name": "odd"}, "spec": {"scaleTargetRef": HPA_REF, "maxReplicas": 5,
                                                                       "targetCPUUtilizationPercentage": 0}},
                 JSON, 422, "Invalid", id="hpa-v1-cpu-zero"),
    pytest.param("POST", HPAS_V1, {"metadata": {"name": "odd", "annotations": {
        "autoscaling.alpha.kubernetes.io/metrics": "{not json"}}, "spec": {"scaleTargetRef": HPA_REF, "maxReplicas": 5}},
                 JSON, 400, "BadRequest", id="hpa-v1-metrics-annotation-not-json"),
    # 9, 16, 18: selectors and list options
    pytest.param("GET", "/apis/apps/v1/deployments?fieldSelector=abc", None, None, 400, "BadRequest",
                 id="field-selector-no-operator"),
    pytest.param("GET", "/api/v1/pods?fieldSelector=metadata.name+in+(a)", None, None, 400, "BadRequest",
                 id="field-selector-in"),
    pytest.param("GET", "/apis/apps/v1/deployments?watch=1&fieldSelector=abc", None, None, 400, "BadRequest",
                 id="watch-field-selector-no-operator"),
    pytest.param("GET", "/apis/apps/v1/deployments?fieldSelector=spec.foo%3Dbar", None, None, 400, "BadRequest",
                 id="field-selector-unsupported-field"),
    *[pytest.param("GET", f"/apis/apps/v1/deployments?labelSelector={sel}", None, None, 400, "BadRequest",
                   id=f"label-selector-{name}")
      for name, sel in [("triple-equals", "%3D%3D%3D"), ("bang-alone", "!"), ("no-key", "%3Dweb"),
                        ("space-in-key", "a%20b%3Dc"), ("empty-set", "app+in+()"), ("key-100-chars", "a" * 100),
                        ("value-invalid", "app%3D-web-"), ("unclosed-set", "app+in+(a")]],
    *[pytest.param("GET", f"/apis/apps/v1/deployments?{query}", None, None, 400, "BadRequest", id=f"list-{name}")
      for name, query in [("limit-abc", "limit=abc"), ("continue-garbage", "continue=garbage"),
                          ("watch-abc", "watch=abc"), ("rv-abc", "resourceVersion=abc"),
                          ("rv-match-bogus", "resourceVersionMatch=Bogus")]],
    # 10: watch parameters, checked before streaming
    *[pytest.param("GET", f"/apis/apps/v1/deployments?watch=1&{query}", None, None, 400, "BadRequest",
                   id=f"watch-{name}")
      for name, query in [("timeout-seconds-superscript", "timeoutSeconds=%C2%B2"),
                          ("rv-superscript", "resourceVersion=%C2%B2"), ("rv-5000-digits", "resourceVersion=" + "9" * 5000),
                          ("timeout-superscript", "timeout=%C2%B2s")]],
]


@pytest.mark.parametrize("method,path,body,content_type,code,reason", REJECTED)
def test_hostile_request_is_refused_and_changes_nothing(server, method, path, body, content_type, code, reason):
    before = snapshot(server)
    status, answer = call(server, method, path, body, content_type)
    assert status == code, answer
    assert_status(answer, code, reason)
    assert snapshot(server) == before
    assert_healthy(server)


def test_truncated_body_is_400_and_not_applied(server):
    """A client that closes after part of its body: the partial body is never acted on."""
    body = b'{"spec":{"replicas":3}}'
    head = (f"PATCH {SCALE} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: {MERGE}\r\nContent-Length: {len(body) + 50}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.http.port), timeout=REQUEST_TIMEOUT_S) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = json.loads(response.read())
    assert response.status == 400
    assert_status(answer, 400, "BadRequest")
    assert snapshot(server)["replicas"] == 2
    assert_healthy(server)


# --------------------------------------------------------------------------- accepted input still works
@pytest.mark.parametrize("method,path,body,content_type,code", [
    pytest.param("POST", "/apis/coordination.k8s.io/v1/namespaces/setpoint-system/leases",
                 {"metadata": {"name": "setpoint-leader", "labels": {"app.kubernetes.io/name": "setpoint"}}}, JSON, 201,
                 id="lease-in-the-controller-namespace"),
    pytest.param("POST", "/api/v1/namespaces/kube-system/configmaps", {"metadata": {"name": "c"}, "data": {"a": "b"}},
                 JSON, 201, id="configmap-in-kube-system"),
    pytest.param("POST", EVENTS, {"metadata": {"generateName": "web."}, "involvedObject": {"kind": "Deployment"},
                                  "lastTimestamp": "2026-01-05T00:00:00Z", "count": 2}, JSON, 201, id="event"),
    pytest.param("PATCH", DEPLOY, {"metadata": {"labels": {"team": "a-b_c.d"}, "annotations": {"note": "x y"}}},
                 MERGE, 200, id="deployment-labels-and-annotations"),
    pytest.param("GET", "/apis/apps/v1/namespaces/sh%6fp/deployments/w%65b", None, None, 200,
                 id="percent-encoded-path"),
    pytest.param("GET", LEASES + "/a%2Fb", None, None, 404, id="percent-encoded-slash-is-in-the-name"),
    pytest.param("PATCH", SCALE, {"spec": {"replicas": 2**31 - 1}}, MERGE, 200, id="replicas-int32-max"),
    pytest.param("PATCH", DEPLOY, json_patch_ops(10_000), JSON_PATCH, 200, id="json-patch-10000-ops"),
    pytest.param("GET", "/apis/apps/v1/deployments?limit=500&watch=false&resourceVersion=0", None, None, 200,
                 id="list-options"),
])
def test_valid_request_is_still_served(server, method, path, body, content_type, code):
    status, answer = call(server, method, path, body, content_type)
    assert status == code, answer
    assert_healthy(server)


@pytest.mark.parametrize("selector,names", [
    pytest.param("app in (web)", ["web"], id="in"),
    pytest.param("app notin (web)", ["api"], id="notin"),
    pytest.param("tier!=back", ["web"], id="not-equal"),
    pytest.param("tier==front", ["web"], id="double-equal"),
    pytest.param("!legacy,app", ["api", "web"], id="not-exists-and-exists"),
    pytest.param("app=web, tier = front", ["web"], id="spaces"),
    pytest.param("setpoint.io/autoscale=true,app in (api, web)", ["api", "web"], id="prefixed-key-and-set"),
    pytest.param("app=", [], id="empty-value"),
])
def test_label_selectors_the_apiserver_accepts_still_select(server, selector, names):
    status, answer = call(server, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments?labelSelector="
                          + selector.replace(" ", "%20").replace("!", "%21").replace("=", "%3D"))
    assert status == 200, answer
    assert [d["metadata"]["name"] for d in answer["items"]] == names


@pytest.mark.parametrize("path,count", [
    pytest.param(PODS + "?fieldSelector=status.phase%3DRunning", 5, id="pod-phase"),
    pytest.param(PODS + "?fieldSelector=metadata.name%3Dnope", 0, id="metadata-name"),
    pytest.param("/apis/apps/v1/replicasets?fieldSelector=status.replicas%21%3D0", 2, id="replicaset-replicas"),
])
def test_supported_field_selectors_still_select(server, path, count):
    server.world.advance(4)
    status, answer = call(server, "GET", path)
    assert status == 200 and len(answer["items"]) == count


# --------------------------------------------------------------------------- watches
def read_stream(srv: SimKubeServer, path: str, timeout_s: float = REQUEST_TIMEOUT_S) -> tuple[int, list[dict]]:
    """(status, events) of a watch read to its end (a clean chunked end, else IncompleteRead)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http.port, timeout=timeout_s)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, [json.loads(line) for line in data.splitlines() if line.strip()]


def test_watch_from_a_too_old_resource_version_gets_410_expired(server, tmp_path):
    """Past the store's watch history: one ERROR event with a 410 Expired Status, as the watch
    cache sends; the Python client raises it as ApiException(410) (clients then list again)."""
    server.world.store.watch_history_s = 0.2
    time.sleep(1.1)  # the store marks its resourceVersion once a second
    assert call(server, "PATCH", SCALE, {"spec": {"replicas": 4}}, MERGE)[0] == 200
    time.sleep(0.3)
    status, events = read_stream(server, f"/apis/apps/v1/namespaces/{NS}/deployments?watch=1&resourceVersion=1")
    assert status == 200 and [e["type"] for e in events] == ["ERROR"]
    assert_status(events[0]["object"], 410, "Expired")
    assert events[0]["object"]["message"].startswith("too old resource version: 1 (")
    api = client.AppsV1Api(official_client(server, tmp_path))
    try:
        with pytest.raises(ApiException) as err:
            list(watch.Watch().stream(api.list_namespaced_deployment, NS, resource_version="1", timeout_seconds=2))
        assert err.value.status == 410
        current = api.list_namespaced_deployment(NS).metadata.resource_version  # a fresh list watches fine
        assert list(watch.Watch().stream(api.list_namespaced_deployment, NS, resource_version=current,
                                         timeout_seconds=1)) == []
    finally:
        api.api_client.close()


def test_watch_from_a_future_resource_version_is_504_after_waiting(server, monkeypatch):
    monkeypatch.setattr(routes, "FUTURE_RV_WAIT_S", 0.3)
    started = time.monotonic()
    status, answer = call(server, "GET", f"/apis/apps/v1/deployments?watch=1&resourceVersion={10**15}")
    assert status == 504 and time.monotonic() - started < 3
    assert_status(answer, 504, "Timeout")
    assert answer["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"


@pytest.mark.parametrize("timeout_seconds,ends_at_once", [
    pytest.param("0", False, id="zero-is-the-default"),
    pytest.param("-1", True, id="negative-ends-at-once"),
])
def test_watch_timeout_seconds_zero_and_negative(server, timeout_seconds, ends_at_once):
    path = f"/apis/apps/v1/namespaces/{NS}/deployments?watch=1&timeoutSeconds={timeout_seconds}"
    if ends_at_once:
        status, events = read_stream(server, path)
        assert status == 200 and [e["type"] for e in events] == ["ADDED", "ADDED"]
        return
    with pytest.raises(TimeoutError):  # still open after a second
        read_stream(server, path, timeout_s=1.0)


def test_error_while_streaming_is_logged_and_ends_the_stream_cleanly(server, monkeypatch, caplog):
    def broken(*args, **kwargs):
        yield "ADDED", {"metadata": {"name": "x", "resourceVersion": "1"}}
        raise RuntimeError("boom")

    monkeypatch.setattr(routes, "watch_events", broken)
    with caplog.at_level(logging.ERROR, logger="setpoint.sim.kubeapi"):
        status, events = read_stream(server, f"/apis/apps/v1/namespaces/{NS}/deployments?watch=1")
    assert status == 200 and [e["type"] for e in events] == ["ADDED"]
    assert any("ending the stream" in r.getMessage() for r in caplog.records)
    assert_healthy(server)


def test_table_age_of_an_unreadable_time_is_unknown():
    assert _age("garbage", time.time()) == "<unknown>"
    assert _age(None, time.time()) == "<unknown>"


# --------------------------------------------------------------------------- test hooks
@pytest.mark.parametrize("rule", [
    pytest.param(b'{"path": "^/version$", "status": "abc"}', id="status-str"),
    pytest.param(b'{"path": "^/version$", "status": 99}', id="status-99"),
    pytest.param(b'{"path": "^/version$", "status": 600}', id="status-600"),
    pytest.param(b'{"path": "^/version$", "status": true}', id="status-bool"),
    pytest.param(b'{"path": "^/version$", "delaySeconds": -1}', id="delay-negative"),
    pytest.param(b'{"path": "^/version$", "delaySeconds": 1e9}', id="delay-huge"),
    pytest.param(b'{"path": "^/version$", "delaySeconds": NaN}', id="delay-nan"),
    pytest.param(b'{"path": "^/version$", "delaySeconds": "1"}', id="delay-str"),
    pytest.param(b'{"path": "^/version$", "times": 0}', id="times-zero"),
    pytest.param(b'{"path": "(a+)+$"}', id="path-nested-repeat"),
    pytest.param(b'{"path": "(a|aa)*$"}', id="path-alternation-in-repeat"),
    pytest.param(b'{"path": "(a)\\\\1"}', id="path-back-reference"),
    pytest.param(b'{"path": ".*a.*b.*c$"}', id="path-three-wildcards"),
    pytest.param(json.dumps({"path": "a" * 1001}).encode(), id="path-too-long"),
    pytest.param(b'{"path": 5}', id="path-number"),
])
def test_fault_rule_that_could_break_the_server_is_400(server, rule):
    status, answer = call(server, "POST", "/_sim/faults", rule, JSON)
    assert status == 400
    assert_status(answer, 400, "BadRequest")
    assert server.api.faults.describe() == []
    assert call(server, "GET", "/version")[0] == 200
    assert call(server, "GET", "/" + "a" * 40 + "!")[0] == 404


def test_fault_rules_match_quickly_and_long_paths_are_never_matched(server):
    assert call(server, "POST", "/_sim/faults", {"path": ".*.*x$", "status": 503, "times": 5}, JSON)[0] == 201
    started = time.monotonic()
    assert call(server, "GET", "/" + "a" * 1000 + "!")[0] == 404  # matched, no match: served normally
    assert call(server, "GET", "/" + "a" * 5000 + "x")[0] == 404  # longer than any API path: not matched
    assert time.monotonic() - started < 2.0
    assert call(server, "GET", "/version/x")[0] == 503
    assert server.api.faults.describe()[0]["times"] == 4


def test_stopping_the_server_cuts_a_fault_delay_short():
    srv = kube_helpers.start_server(tls=False, test_hooks=True)
    srv.api.faults.inject("^/version$", delay_s=60)
    conn = http.client.HTTPConnection("127.0.0.1", srv.http.port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("GET", "/version", headers={"Authorization": f"Bearer {TOKEN}"})
        time.sleep(0.2)
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 5
    finally:
        conn.close()
