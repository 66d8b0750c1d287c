"""The simulated apiserver, through the official ``kubernetes`` client on 127.0.0.1.

What the client surfaces (ApiException.status, the Status body's reason and message) must be
what a real apiserver would give for the same request.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import TargetRef
from simulators import faults as F
from simulators.kubeapi.metrics import LATENCY_BUCKETS_S
from simulators.kubeapi.server import SimKubeServer
from simulators.workload import ReadinessProbe
from tests.adapters.kube_helpers import (REQUEST_TIMEOUT_S, TOKEN, api_client, kube_scenario,  # noqa: F401
                                         official_client, server, start_server, with_default_timeout)

NS = "shop"


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


@pytest.fixture
def apps(api_client):
    return client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


# --------------------------------------------------------------------------- discovery and auth
def test_discovery_endpoints_answer_the_client(api_client):
    assert client.VersionApi(api_client).get_code().git_version.startswith("v1.")
    assert client.CoreApi(api_client).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "coordination.k8s.io"} <= groups
    resources = {r.name for r in client.AppsV1Api(api_client).get_api_resources().resources}
    assert {"deployments", "deployments/scale", "replicasets", "statefulsets"} <= resources


def test_request_without_the_token_is_401(server):
    req = urllib.request.Request(f"{server.url}/apis/apps/v1/namespaces/shop/deployments")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S, context=server.client_ssl_context())
    assert err.value.code == 401
    assert json.loads(err.value.read())["reason"] == "Unauthorized"


# --------------------------------------------------------------------------- error statuses
def test_unknown_deployment_is_404_with_a_status_body(apps):
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("nope", NS)
    assert err.value.status == 404
    body = status_of(err.value)
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'deployments.apps "nope" not found', "reason": "NotFound", "code": 404,
                    "details": {"name": "nope", "group": "apps", "kind": "deployments"}}


def test_unknown_pod_is_404_without_a_group(core):
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", NS)
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'pods "nope" not found'


def test_stale_replace_is_409_conflict(apps):
    stale = apps.read_namespaced_deployment("web", NS)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    stale.spec.replicas = 7
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("web", NS, stale)
    assert err.value.status == 409
    body = status_of(err.value)
    assert body["reason"] == "Conflict" and body["code"] == 409 and body["status"] == "Failure"
    assert body["message"] == ('Operation cannot be fulfilled on deployments.apps "web": the object has been '
                               "modified; please apply your changes to the latest version and try again")
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4


def test_fresh_replace_succeeds_and_bumps_generation(apps):
    d = apps.read_namespaced_deployment("web", NS)
    d.spec.replicas = 5
    out = apps.replace_namespaced_deployment("web", NS, d)
    assert out.spec.replicas == 5
    assert out.metadata.generation == d.metadata.generation + 1
    assert out.metadata.annotations["deployment.kubernetes.io/revision"] == "1"  # same template: no rollout
    assert int(out.metadata.resource_version) > int(d.metadata.resource_version)


def test_patch_carrying_a_stale_resource_version_is_409(apps, server):
    rv = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 9}})
    assert err.value.status == 409
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 3


@pytest.mark.parametrize("call", [
    pytest.param(lambda apps: apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}}), id="scale"),
    pytest.param(lambda apps: apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": -1}}), id="deployment"),
])
def test_negative_replicas_are_422_invalid(apps, call):
    with pytest.raises(ApiException) as err:
        call(apps)
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["reason"] == "Invalid"
    assert body["message"].endswith("spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    assert body["details"]["causes"][0]["field"] == "spec.replicas"


def test_selector_is_immutable_422(apps):
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"spec": {"selector": {"matchLabels": {"app": "other"}}}})
    assert err.value.status == 422
    assert "spec.selector" in status_of(err.value)["message"]


def test_deleting_a_deployment_is_405(apps):
    with pytest.raises(ApiException) as err:
        apps.delete_namespaced_deployment("web", NS)
    assert err.value.status == 405
    assert status_of(err.value)["reason"] == "MethodNotAllowed"


def test_apply_patch_content_type_is_415(apps):
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}}, _content_type="application/apply-patch+yaml")
    assert err.value.status == 415
    assert status_of(err.value)["reason"] == "UnsupportedMediaType"


def test_failed_json_patch_test_is_422(apps):
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 99}])
    assert err.value.status == 422


# --------------------------------------------------------------------------- resourceVersion and the scale subresource
def test_resource_version_is_stable_until_something_changes(apps, server):
    first = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    assert apps.read_namespaced_deployment("web", NS).metadata.resource_version == first
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 6}})
    changed = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    assert int(changed) > int(first)
    server.world.advance(4)  # pods get ready: status changes, so does the resourceVersion
    assert int(apps.read_namespaced_deployment("web", NS).metadata.resource_version) > int(changed)


def test_scale_subresource_get_patch_replace(apps, server):
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=web")
    assert scale.metadata.resource_version == apps.read_namespaced_deployment("web", NS).metadata.resource_version
    out = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert out.spec.replicas == 5
    d = apps.read_namespaced_deployment("web", NS)
    assert d.spec.replicas == 5 and d.metadata.generation == 2 and d.status.observed_generation == 2
    server.world.advance(3)
    d = apps.read_namespaced_deployment("web", NS)
    assert (d.status.replicas, d.status.ready_replicas, d.status.updated_replicas) == (5, 5, 5)
    scale.spec.replicas = 1  # carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("web", NS, scale)
    assert err.value.status == 409
    fresh = apps.read_namespaced_deployment_scale("web", NS)
    fresh.spec.replicas = 1
    assert apps.replace_namespaced_deployment_scale("web", NS, fresh).spec.replicas == 1


def test_merge_patch_and_json_patch_change_replicas(apps):
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}}, _content_type="application/merge-patch+json")
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 3
    apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 4


# --------------------------------------------------------------------------- lists and objects
def test_label_selector_lists(apps, core):
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["api", "web"]
    assert [d.metadata.name for d in apps.list_namespaced_deployment(NS, label_selector="tier=front").items] == ["web"]
    assert [d.metadata.name for d in apps.list_namespaced_deployment(
        NS, label_selector="setpoint.io/autoscale=true,tier in (back)").items] == ["api"]
    assert apps.list_namespaced_deployment("elsewhere").items == []
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert len(pods) == 2 and all(p.metadata.labels["app"] == "web" for p in pods)
    assert len(core.list_pod_for_all_namespaces(label_selector="app=api").items) == 3


def test_deployment_carries_labels_revision_and_conditions(apps):
    d = apps.read_namespaced_deployment("web", NS)
    assert d.metadata.labels == {"app": "web", "setpoint.io/autoscale": "true", "tier": "front"}
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    conditions = {c.type: c.reason for c in d.status.conditions}
    assert conditions == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}


def test_pods_have_status_labels_and_owner(core, apps):
    rs = apps.list_namespaced_replica_set(NS, label_selector="app=web").items[0]
    pod = core.list_namespaced_pod(NS, label_selector="app=web").items[0]
    assert pod.status.phase == "Running" and pod.status.start_time is not None
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "True" and ready.last_transition_time is not None
    assert pod.status.container_statuses[0].restart_count == 0
    assert pod.metadata.labels["pod-template-hash"] == rs.metadata.labels["pod-template-hash"]
    assert pod.metadata.owner_references[0].kind == "ReplicaSet"
    assert pod.metadata.owner_references[0].uid == rs.metadata.uid
    assert core.read_namespaced_pod(pod.metadata.name, NS).metadata.uid == pod.metadata.uid


def test_pods_of_a_service_dark_on_its_overload_probe_are_running_not_ready(tmp_path):
    """A readiness probe that fails under load (the overload spiral): web at 150 rps on 2 pods of
    50 fails its probes at 10 and 20 s, its pods stay Running with Ready False, no restart; idle,
    it passes the probe at 30 s and its pods are Ready again."""
    sc = kube_scenario()
    probe = ReadinessProbe(period_s=10.0, failure_threshold=2, success_threshold=1)
    services = tuple(dataclasses.replace(s, capacity_rps=50.0, readiness_probe=probe) if s.name == "web" else s
                     for s in sc.cluster.services)
    sc = dataclasses.replace(sc, cluster=dataclasses.replace(sc.cluster, services=services))
    srv = SimKubeServer(sc, drive=False, token=TOKEN).start()
    c = official_client(srv, tmp_path)
    try:
        core, apps = client.CoreV1Api(c), client.AppsV1Api(c)

        def ready(app: str) -> list[str]:
            pods = core.list_namespaced_pod(NS, label_selector=f"app={app}").items
            assert all(p.status.phase == "Running" and p.status.container_statuses[0].restart_count == 0 for p in pods)
            return [next(x for x in p.status.conditions if x.type == "Ready").status for p in pods]

        srv.world.advance(2)  # t = 5, 10 s: the first probe fails
        assert ready("web") == ["True", "True"]
        srv.world.advance(2)  # t = 15, 20 s: the second fails: dark
        assert ready("web") == ["False", "False"]
        assert not apps.read_namespaced_deployment("web", NS).status.ready_replicas
        assert ready("api") == ["True"] * 3  # another service's pods serve on
        srv.world.advance(2)  # t = 25, 30 s: idle, the probe passes
        assert ready("web") == ["True", "True"]
        assert apps.read_namespaced_deployment("web", NS).status.ready_replicas == 2
    finally:
        c.close()
        srv.stop()


def test_pods_failing_their_readiness_probe_are_running_not_ready(tmp_path):
    """A readiness outage (a dependency down): the pods stay Running, their Ready and
    ContainersReady conditions False from the fault's start, no restart; Ready again at its end."""
    sc = kube_scenario()
    sc = dataclasses.replace(sc, faults=(F.ReadinessOutage(sc.start_s + 10.0, duration_s=30.0, services=("web",)),),
                             fault_names=("db-down",))
    srv = SimKubeServer(sc, drive=False, token=TOKEN).start()
    c = official_client(srv, tmp_path)
    try:
        core, apps = client.CoreV1Api(c), client.AppsV1Api(c)

        def pods(app: str) -> list:
            return core.list_namespaced_pod(NS, label_selector=f"app={app}").items

        def condition(pod, kind: str):
            return next(x for x in pod.status.conditions if x.type == kind)

        srv.world.advance(2)  # t = 5 s, 10 s: the outage starts
        web = pods("web")
        assert len(web) == 2 and all(p.status.phase == "Running" for p in web)
        assert all(condition(p, "Ready").status == "False" and condition(p, "ContainersReady").status == "False"
                   for p in web)
        assert all(p.status.container_statuses[0].restart_count == 0 and not p.status.container_statuses[0].ready
                   for p in web)
        assert not apps.read_namespaced_deployment("web", NS).status.ready_replicas
        assert all(condition(p, "Ready").status == "True" for p in pods("api"))  # another service's pods serve
        srv.world.advance(6)  # t = 40 s: the outage ends
        assert all(condition(p, "Ready").status == "True" for p in pods("web"))
        assert apps.read_namespaced_deployment("web", NS).status.ready_replicas == 2
    finally:
        c.close()
        srv.stop()


def test_a_crash_looping_pod_waits_in_back_off_and_a_pod_not_ready_after_a_restart_runs(tmp_path):
    """The container state the client reads: a crash-looping release's pods are waiting
    (CrashLoopBackOff) only while in back-off; a pod that crashed once, restarted, and then
    fails its readiness probe (a dependency down) is running, not in back-off (it read
    CrashLoopBackOff for any not-Ready pod with a restart). The adapter reads the reason back."""
    sc = kube_scenario()
    sc = dataclasses.replace(sc, faults=(F.PodCrash(sc.start_s + 5.0, services=("web",), count=2),
                                         F.ReadinessOutage(sc.start_s + 60.0, duration_s=30.0, services=("web",)),
                                         F.CrashLoopRollout(sc.start_s + 5.0, services=("api",))),
                             fault_names=("crash", "db-down", "release"))
    srv = SimKubeServer(sc, drive=False, token=TOKEN).start()
    c = official_client(srv, tmp_path)
    try:
        core = client.CoreV1Api(c)

        def states(app: str) -> list[tuple[bool, int, str]]:
            out = []
            for p in core.list_namespaced_pod(NS, label_selector=f"app={app}").items:
                cs = p.status.container_statuses[0] if p.status.container_statuses else None
                if cs is not None:
                    out.append((cs.ready, cs.restart_count, cs.state.waiting.reason if cs.state.waiting else "running"))
            return out

        srv.world.advance(14)  # t = 70 s: web's pods crashed once, restarted, Ready, then not Ready since 60 s
        web = states("web")
        assert web and all(not ready and restarts == 1 and state == "running" for ready, restarts, state in web), web
        api = states("api")  # the crash-looping revision's pods: waiting while in back-off, else starting
        assert any(state == "CrashLoopBackOff" for _, _, state in api), api
        assert all(state in ("CrashLoopBackOff", "running") for _, _, state in api)
        view = KubernetesCluster(c, qps=0).observe([TargetRef(NS, "api")], with_pods=True).statuses[0]
        assert {p.waiting for p in view.pods} >= {"CrashLoopBackOff"}
    finally:
        c.close()
        srv.stop()


def test_pod_delete_is_recreated_by_its_replicaset(core, server):
    """The deleted pod terminates for its 30 s grace (tests/adapters/test_sim_terminating_pods.py)
    while its replacement is created at once; once gone, a DELETE of it is 404."""
    before = [p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=web").items]
    core.delete_namespaced_pod(before[0], NS)
    after = {p.metadata.name: p for p in core.list_namespaced_pod(NS, label_selector="app=web").items
             if p.metadata.deletion_timestamp is None}
    assert before[0] not in after and len(after) == len(before)
    new = next(p for n, p in after.items() if n not in before)
    assert new.status.phase == "Running" or new.status.phase == "Pending"
    server.world.advance(6)  # 30 s: the grace is over
    listed = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert before[0] not in {p.metadata.name for p in listed}
    assert all(p.status.phase == "Running" for p in listed)
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_pod(before[0], NS)
    assert err.value.status == 404


def test_rolling_restart_then_kubectl_style_rollback(apps, server, api_client):
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-05T00:10:00Z"}}}}})
    rss = {r.metadata.annotations["deployment.kubernetes.io/revision"]: r
           for r in apps.list_namespaced_replica_set(NS, label_selector="app=web").items}
    assert sorted(rss) == ["1", "2"]
    d = apps.read_namespaced_deployment("web", NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert next(c for c in d.status.conditions if c.type == "Progressing").reason == "ReplicaSetUpdated"
    server.world.advance(12)
    d = apps.read_namespaced_deployment("web", NS)
    assert (d.status.updated_replicas, d.status.replicas) == (2, 2)
    # kubectl rollout undo: the old ReplicaSet's template minus pod-template-hash, as a JSON patch
    template = api_client.sanitize_for_serialization(rss["1"].spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]
    apps.patch_namespaced_deployment("web", NS, [{"op": "replace", "path": "/spec/template", "value": template}])
    rss_after = {r.metadata.labels["pod-template-hash"]: r.metadata.annotations["deployment.kubernetes.io/revision"]
                 for r in apps.list_namespaced_replica_set(NS, label_selector="app=web").items}
    assert rss_after[rss["1"].metadata.labels["pod-template-hash"]] == "3"  # the old ReplicaSet, renumbered
    assert len(rss_after) == 2
    d = apps.read_namespaced_deployment("web", NS)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert "annotations" not in template["metadata"] and not (d.spec.template.metadata.annotations or {})


def test_statefulsets_list_empty_and_get_404(apps):
    assert apps.list_namespaced_stateful_set(NS).items == []
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_stateful_set_scale("web", NS)
    assert err.value.status == 404


def test_statefulset_served_with_scale(tmp_path):
    srv = start_server(statefulsets=frozenset({"api"}))
    try:
        c = official_client(srv, tmp_path)
        apps = client.AppsV1Api(c)
        assert [s.metadata.name for s in apps.list_namespaced_stateful_set(NS).items] == ["api"]
        assert apps.patch_namespaced_stateful_set_scale("api", NS, {"spec": {"replicas": 4}}).spec.replicas == 4
        assert apps.read_namespaced_stateful_set("api", NS).spec.replicas == 4
        assert [d.metadata.name for d in apps.list_namespaced_deployment(NS).items] == ["web"]
        c.close()
    finally:
        srv.stop()


# --------------------------------------------------------------------------- leases and events
def test_lease_create_update_and_conflict(api_client):
    leases = client.CoordinationV1Api(api_client)
    body = client.V1Lease(metadata=client.V1ObjectMeta(name="setpoint-leader"),
                          spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15))
    created = leases.create_namespaced_lease(NS, body)
    assert created.metadata.resource_version and created.spec.holder_identity == "a"
    with pytest.raises(ApiException) as err:
        leases.create_namespaced_lease(NS, body)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "AlreadyExists"
    got = leases.read_namespaced_lease("setpoint-leader", NS)
    got.spec.holder_identity = "b"
    updated = leases.replace_namespaced_lease("setpoint-leader", NS, got)
    assert updated.spec.holder_identity == "b"
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    got.spec.holder_identity = "c"  # still carries the resourceVersion before the update
    with pytest.raises(ApiException) as err:
        leases.replace_namespaced_lease("setpoint-leader", NS, got)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"
    assert leases.read_namespaced_lease("setpoint-leader", NS).spec.holder_identity == "b"
    with pytest.raises(ApiException) as err:
        leases.read_namespaced_lease("other", NS)
    assert err.value.status == 404


def test_lease_with_zero_duration_is_422(api_client):
    body = {"metadata": {"name": "bad"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 0}}
    with pytest.raises(ApiException) as err:
        client.CoordinationV1Api(api_client).create_namespaced_lease(NS, body)
    assert err.value.status == 422


def test_config_map_create_read_replace_conflict_and_404(core):
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("setpoint-state-web", NS)
    assert err.value.status == 404 and status_of(err.value)["reason"] == "NotFound"
    assert status_of(err.value)["message"] == 'configmaps "setpoint-state-web" not found'
    assert status_of(err.value)["details"]["kind"] == "configmaps"
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="setpoint-state-web"), data={"state.json": "{}"})
    created = core.create_namespaced_config_map(NS, body)
    assert (created.kind, created.api_version, created.data) == ("ConfigMap", "v1", {"state.json": "{}"})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, body)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "AlreadyExists"
    got = core.read_namespaced_config_map("setpoint-state-web", NS)
    got.data = {"state.json": '{"a": 1}'}
    updated = core.replace_namespaced_config_map("setpoint-state-web", NS, got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    assert updated.metadata.uid == created.metadata.uid
    got.data = {"state.json": '{"a": 2}'}  # still carries the resourceVersion before the update
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("setpoint-state-web", NS, got)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("setpoint-state-web", NS).data == {"state.json": '{"a": 1}'}
    assert [c.metadata.name for c in core.list_namespaced_config_map(NS).items] == ["setpoint-state-web"]
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("other", NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other")))
    assert err.value.status == 404


@pytest.mark.parametrize("data", [
    pytest.param({"k": 1}, id="number-value"),
    pytest.param({"k": {"nested": "x"}}, id="object-value"),
    pytest.param({"k": "x" * (1024 * 1024 + 1)}, id="over-1MiB"),
])
def test_config_map_with_bad_data_is_422(server, data):
    """Sent raw: the official client refuses non-string values before sending them."""
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"}, "data": data}).encode()
    req = urllib.request.Request(f"{server.url}/api/v1/namespaces/{NS}/configmaps", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S, context=server.client_ssl_context())
    assert err.value.code == 422 and json.loads(err.value.read())["reason"] == "Invalid"


def test_events_create_and_list(core):
    for reason in ("SuccessfulRescale", "PodRestarted"):
        core.create_namespaced_event(NS, client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="web."), reason=reason, message="m", type="Normal",
            involved_object=client.V1ObjectReference(api_version="apps/v1", kind="Deployment", name="web", namespace=NS)))
    events = core.list_namespaced_event(NS).items
    assert [e.reason for e in events] and {e.reason for e in events} == {"SuccessfulRescale", "PodRestarted"}
    only = core.list_namespaced_event(NS, field_selector="reason=PodRestarted").items
    assert [e.reason for e in only] == ["PodRestarted"]


# --------------------------------------------------------------------------- test hooks
def test_injected_faults_fail_the_next_requests_then_clear(apps, server):
    server.api.faults.inject(r"/deployments/web$", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            apps.read_namespaced_deployment("web", NS)
        assert err.value.status == 503 and status_of(err.value)["reason"] == "ServiceUnavailable"
    assert apps.read_namespaced_deployment("web", NS).metadata.name == "web"
    assert server.api.requests.count("GET", r"/deployments/web$") == 3


def test_http_fault_hook_only_with_the_flag(server, tmp_path):
    req = urllib.request.Request(f"{server.url}/_sim/faults", method="POST",
                                 data=json.dumps({"path": "/pods", "status": 500}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:  # off: the path is just an unknown API path (401 first)
        urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S, context=server.client_ssl_context())
    assert err.value.code in (401, 404)
    srv = start_server(test_hooks=True)
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{srv.url}/_sim/faults", method="POST", data=json.dumps(
                {"path": "/pods", "status": 500, "times": 1}).encode(), headers={"Authorization": f"Bearer {TOKEN}"}),
                timeout=REQUEST_TIMEOUT_S, context=srv.client_ssl_context()) as resp:
            assert resp.status == 201
        core = client.CoreV1Api(official_client(srv, tmp_path))
        with pytest.raises(ApiException) as err:
            core.list_namespaced_pod(NS)
        assert err.value.status == 500
        assert len(core.list_namespaced_pod(NS).items) == 5
    finally:
        srv.stop()


def test_driver_steps_the_engine_on_wall_time():
    srv = start_server(drive=True, speed=100.0)  # 5 s ticks every 50 ms
    try:
        start = srv.world.ticks
        deadline = time.monotonic() + 5
        while srv.world.ticks < start + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.world.ticks >= start + 5
    finally:
        srv.stop()


# --------------------------------------------------------------------------- metrics
def scrape(server) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=REQUEST_TIMEOUT_S) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return resp.read().decode()


def samples(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


@pytest.fixture
def metrics_server():
    srv = start_server(metrics_port=0)
    yield srv
    srv.stop()


def test_promtool_check_metrics_passes(metrics_server):
    metrics_server.world.advance(5)
    text = scrape(metrics_server)
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for family in ("http_requests_total", "http_request_errors_total", "http_request_duration_seconds_bucket",
                   "kube_deployment_spec_replicas", "kube_deployment_status_replicas_ready",
                   "kube_deployment_status_replicas", "kube_pod_container_status_restarts_total",
                   "kube_pod_status_ready", "container_cpu_usage_seconds_total",
                   "kube_pod_container_resource_requests", "setpoint_sim_cpu_utilization_ratio",
                   "container_memory_working_set_bytes"):
        assert samples(text, family), family
    assert not samples(text, "http_pod_requests_total") and not samples(text, "http_pod_request_errors_total")


def test_each_running_pods_memory_is_its_working_set_in_bytes(metrics_server):
    """container_memory_working_set_bytes, what the bundled healing policy's memory check reads
    (max by (namespace, pod) (...) / 2^20): the engine's memory of each running pod (a day-2 drill
    found no such series, so that check never fired against sim serve)."""
    world = metrics_server.world
    world.advance(3)
    text = scrape(metrics_server)
    memory = samples(text, "container_memory_working_set_bytes")
    pods = world.engine.pod_signals()
    running = {name: mib for name, mib, up in zip(pods["name"], pods["memory_mib"], pods["running"]) if up}
    shown = {k.split('pod="')[1].split('"')[0]: v / 2**20 for k, v in memory.items()}
    assert running and shown == pytest.approx(running)


def web_pods(series: dict[str, float], family: str) -> dict[str, float]:
    """web's per-pod series of ``family`` by pod name: labelled with namespace, deployment and pod,
    as relabeling from a pod's owner labels an instrumented app's series."""
    start = family + '{namespace="shop",deployment="web",pod="'
    return {k[len(start):].split('"')[0]: v for k, v in series.items() if k.startswith(start)}


def test_per_pod_counters_share_the_offered_requests_by_pod(metrics_server):
    """What a revision-scoped check queries: each Ready pod receives an even share of the
    workload's offered requests (they add up to it) and fails its share at its error ratio."""
    world = metrics_server.world
    first = web_pods(samples(scrape(metrics_server), "http_requests_total"), "http_requests_total")
    world.advance(12)
    text = scrape(metrics_server)
    second = web_pods(samples(text, "http_requests_total"), "http_requests_total")
    assert second.keys() == first.keys() and len(second) == 2
    gained = [second[k] - first[k] for k in second]
    assert sum(gained) == pytest.approx(150 * 60) and gained[0] == pytest.approx(gained[1])
    errors = web_pods(samples(text, "http_request_errors_total"), "http_request_errors_total")
    ratio = world.engine.pod_signals()["error_ratio"][0]
    assert all(errors[k] == pytest.approx(second[k] * ratio) for k in second)


def test_counters_integrate_the_load_and_state_series_follow_the_api(metrics_server, tmp_path):
    world = metrics_server.world
    before = samples(scrape(metrics_server), "http_requests_total")
    world.advance(12)  # 60 s at 150 rps for web
    after = samples(scrape(metrics_server), "http_requests_total")
    key = '{namespace="shop",deployment="web"}'
    gained = web_pods(after, "http_requests_total")
    assert sum(gained.values()) - sum(web_pods(before, "http_requests_total").values()) == pytest.approx(150 * 60)
    client.AppsV1Api(official_client(metrics_server, tmp_path)).patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 7}})
    text = scrape(metrics_server)
    assert samples(text, "kube_deployment_spec_replicas")["kube_deployment_spec_replicas" + key] == 7


def test_cpu_query_of_the_hpa_policy_matches_the_engine(metrics_server):
    """rate(container_cpu_usage_seconds_total) / requests == the engine's utilization (all pods ready)."""
    world = metrics_server.world
    first = samples(scrape(metrics_server), "container_cpu_usage_seconds_total")
    world.advance(12)
    text = scrape(metrics_server)
    second = samples(text, "container_cpu_usage_seconds_total")
    web = [k for k in second if 'pod="web-' in k]
    used_cores = sum(second[k] - first.get(k, 0.0) for k in web) / 60.0
    requested = sum(v for k, v in samples(text, "kube_pod_container_resource_requests").items()
                    if 'pod="web-' in k and 'resource="cpu"' in k)
    engine = world.engine.signals().values["utilization_pct"][world.engine.index("web")]
    assert 100 * used_cores / requested == pytest.approx(engine, rel=1e-6)
    ratio = samples(text, "setpoint_sim_cpu_utilization_ratio")
    assert ratio['setpoint_sim_cpu_utilization_ratio{namespace="shop",deployment="web"}'] == pytest.approx(engine / 100)


@pytest.mark.parametrize("signal, mode", [pytest.param("memory_utilization", "utilization", id="utilization-percent"),
                                          pytest.param("memory_bytes", "total", id="average-value-bytes")])
def test_memory_queries_of_an_imported_hpa_read_what_simulate_binds_them_to(metrics_server, signal, mode):
    """`setpoint import`'s memory queries over the scrape, 100 * sum(working set) / sum(memory
    requests) and sum(working set) by workload, read what `simulate` binds an imported memory
    metric to (SimMetrics' memory_utilization and memory_bytes): one quantity in one unit."""
    from simulators.ports import SimMetrics
    from simulators.scenario import SIGNALS

    world = metrics_server.world
    world.advance(3)
    text = scrape(metrics_server)
    used = sum(v for k, v in samples(text, "container_memory_working_set_bytes").items() if 'pod="web-' in k)
    requests = samples(text, "kube_pod_container_resource_requests")
    requested = sum(v for k, v in requests.items() if 'pod="web-' in k and 'resource="memory",unit="byte"' in k)
    assert requested == 2 * 512 * 2 ** 20 and used == 2 * 256 * 2 ** 20  # two pods: their request, their base
    metrics = SimMetrics(world.engine, {"q": SIGNALS[signal]}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    web = world.engine.ref(world.engine.index("web"))
    [read] = metrics.query("q", [web], world.engine.now).values
    assert read == pytest.approx(100 * used / requested if mode == "utilization" else used, rel=1e-12)


def test_cpu_cores_of_an_imported_average_value_read_what_simulate_binds_them_to(metrics_server):
    """sum(rate(container_cpu_usage_seconds_total)) by workload, what `setpoint import` writes for a CPU
    AverageValue, reads the cores `simulate` binds it to (SimMetrics' cpu_cores), not a percent."""
    from simulators.ports import SimMetrics
    from simulators.scenario import SIGNALS

    world = metrics_server.world
    first = samples(scrape(metrics_server), "container_cpu_usage_seconds_total")
    world.advance(12)
    second = samples(scrape(metrics_server), "container_cpu_usage_seconds_total")
    used_cores = sum(second[k] - first.get(k, 0.0) for k in second if 'pod="web-' in k) / 60.0
    metrics = SimMetrics(world.engine, {"q": SIGNALS["cpu_cores"]}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    [read] = metrics.query("q", [world.engine.ref(world.engine.index("web"))], world.engine.now).values
    assert read == pytest.approx(used_cores, rel=1e-6) and 0.5 < read < 1.0  # 2 pods of 0.5 cores at 75 %


def histogram_quantile(q: float, bounds: list[float], cumulative: list[float]) -> float:
    """PromQL's histogram_quantile over one series' cumulative bucket increases (+Inf last)."""
    total = cumulative[-1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative):
        if count >= rank:
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_bound, lower_count = bound, count
    return bounds[-1]


@pytest.mark.parametrize("rps", [pytest.param(150, id="light-load"), pytest.param(390, id="heavy-load")])
def test_histogram_quantile_lands_near_the_engine_p95(rps, tmp_path):
    srv = start_server(metrics_port=0)
    try:
        world = srv.world
        i = world.engine.index("web")
        world.offered = lambda t: np.array([rps if k == i else 100.0 for k in range(world.engine.n_services)])
        before = samples(scrape(srv), "http_request_duration_seconds_bucket")
        world.advance(12)
        after = samples(scrape(srv), "http_request_duration_seconds_bucket")
        les = [str(b) for b in LATENCY_BUCKETS_S] + ["+Inf"]
        # sum by (le) over web's pods, as a workload-scope latency check reads them
        by_le = lambda text, le: sum(v for k, v in text.items()  # noqa: E731
                                     if k.startswith('http_request_duration_seconds_bucket{namespace="shop",'
                                                     'deployment="web",pod=') and k.endswith(f'le="{le}"}}'))
        cumulative = [by_le(after, le) - by_le(before, le) for le in les]
        estimate = histogram_quantile(0.95, list(LATENCY_BUCKETS_S) + [float("inf")], cumulative)
        engine_p95 = world.engine.signals().values["latency_p95_s"][i]
        assert estimate == pytest.approx(engine_p95, rel=0.1)
    finally:
        srv.stop()


# --------------------------------------------------------------------------- the command
def test_setpoint_sim_serve_command(tmp_path):
    kubeconfig = tmp_path / "kubeconfig.yaml"
    scenario = tmp_path / "scenario.yaml"
    from tests.adapters.kube_helpers import SCENARIO_YAML
    scenario.write_text(SCENARIO_YAML)
    cmd = [sys.executable, "-m", "controller.cli", "sim", "serve", str(scenario), "--kube-listen", "127.0.0.1:0",
           "--metrics-listen", "127.0.0.1:0", "--kubeconfig-out", str(kubeconfig), "--speed", "10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not kubeconfig.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert kubeconfig.exists(), proc.stderr.read() if proc.poll() is not None else "no kubeconfig in 20 s"
        from kubernetes import config
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        api = with_default_timeout(client.ApiClient(configuration))
        names = [d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(NS).items]
        assert names == ["api", "web"]
        api.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        err = proc.stderr.read()
        assert "Kubernetes API: https://127.0.0.1:" in err and "metrics: http://127.0.0.1:" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def _ns_patch(core, name: str, body: dict):
    return core.patch_namespace(name, body)


@pytest.mark.parametrize("call, code, check", [
    pytest.param(lambda core: _ns_patch(core, "shop", {"metadata": {"labels": {"team": "storefront"},
                                                                    "annotations": {"owner": "sre"}}}),
                 None, lambda ns: (ns.metadata.labels == {"kubernetes.io/metadata.name": "shop", "team": "storefront"}
                                   and ns.metadata.annotations == {"owner": "sre"}),
                 id="patch-labels-and-annotations-of-a-scenario-namespace"),
    pytest.param(lambda core: _ns_patch(core, "shop", {"metadata": {"labels": {"kubernetes.io/metadata.name": "x"}}}),
                 None, lambda ns: ns.metadata.labels["kubernetes.io/metadata.name"] == "shop",
                 id="the-name-label-stays-the-name"),
    pytest.param(lambda core: core.create_namespace({"metadata": {"name": "payments"}}), None,
                 lambda ns: ns.metadata.name == "payments" and ns.status.phase == "Active",
                 id="create-a-new-namespace"),
    pytest.param(lambda core: core.create_namespace({"metadata": {"name": "shop"}}), 409, None,
                 id="create-an-existing-namespace-is-409"),
    pytest.param(lambda core: core.create_namespace({"metadata": {"name": "Bad.Name"}}), 422, None,
                 id="create-an-invalid-name-is-422"),
    pytest.param(lambda core: core.replace_namespace("shop", {"metadata": {"name": "shop", "resourceVersion": "999"}}),
                 409, None, id="replace-with-a-stale-resource-version-is-409"),
    pytest.param(lambda core: _ns_patch(core, "nowhere", {"metadata": {"labels": {"a": "b"}}}), 404, None,
                 id="patch-a-missing-namespace-is-404"),
])
def test_namespaces_take_labels_and_annotations_and_can_be_created(core, call, code, check):
    # kubectl apply of a manifest file that starts with its Namespace patches it (last-applied annotation)
    if code is not None:
        with pytest.raises(ApiException) as err:
            call(core)
        assert err.value.status == code
        return
    assert check(call(core))


def test_a_created_namespace_holds_objects_and_is_listed_by_its_labels(core):
    core.create_namespace({"metadata": {"name": "payments", "labels": {"team": "pay"}}})
    core.create_namespaced_config_map("payments", {"metadata": {"name": "c"}, "data": {"k": "v"}})
    assert [n.metadata.name for n in core.list_namespace(label_selector="team=pay").items] == ["payments"]
    assert core.read_namespaced_config_map("c", "payments").data == {"k": "v"}
