"""sim serve keeps metadata.managedFields of the workloads as the real apiserver does for Update
requests, and the adapter reads the writer of spec.replicas from them (the real ``kubernetes``
client on both sides; kubectl where installed)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kubernetes import FIELD_MANAGER, KubernetesCluster, replicas_writer
from controller.model import Action, ActionKind, TargetRef
from simulators.kubeapi.store import CREATOR
from tests.adapters.kube_helpers import api_client, server  # noqa: F401 -- the shared fixtures

NS = "shop"
WEB = TargetRef(NS, "web")
REPLICAS = {"f:spec": {"f:replicas": {}}}
CREATED = {"f:metadata": {"f:labels": {"f:app": {}, "f:setpoint.io/autoscale": {}, "f:tier": {}}},
           "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {}}}
CREATED_WITHOUT_REPLICAS = {"f:metadata": CREATED["f:metadata"], "f:spec": {"f:selector": {}, "f:template": {}}}


def managed(api_client) -> list[dict]:
    """managedFields as served, times left out (the entries' shape is what is compared)."""
    raw = api_client.sanitize_for_serialization(
        client.AppsV1Api(api_client).read_namespaced_deployment("web", NS).metadata.managed_fields)
    for entry in raw:
        assert entry.pop("time").endswith(("Z", "+00:00"))
    return raw


def entry(manager: str, fields: dict, subresource: str | None = None) -> dict:
    e = {"manager": manager, "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
         "fieldsV1": fields}
    return {**e, "subresource": subresource} if subresource else e


def scale(manager):
    return lambda apps: apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 7}},
                                                               **({"field_manager": manager} if manager else {}))


def patch(body, manager):
    return lambda apps: apps.patch_namespaced_deployment("web", NS, body,
                                                         **({"field_manager": manager} if manager else {}))


@pytest.mark.parametrize("write, expected", [
    pytest.param(None, [entry(CREATOR, CREATED)], id="as-created"),
    pytest.param(scale("kubectl-scale"), [entry(CREATOR, CREATED_WITHOUT_REPLICAS),
                                          entry("kubectl-scale", REPLICAS, "scale")], id="scale-subresource"),
    pytest.param(patch({"spec": {"replicas": 7}}, "argocd-controller"),
                 [entry(CREATOR, CREATED_WITHOUT_REPLICAS), entry("argocd-controller", REPLICAS)],
                 id="deployment-patch"),
    pytest.param(scale(None), [entry(CREATOR, CREATED_WITHOUT_REPLICAS), entry("OpenAPI-Generator", REPLICAS,
                                                                                 "scale")],
                 id="no-field-manager-the-user-agent-names-it"),
    pytest.param(patch({"spec": {"replicas": 2}}, "argocd-controller"), [entry(CREATOR, CREATED)],
                 id="an-unchanged-value-takes-nothing"),
    pytest.param(patch({"metadata": {"annotations": {"team": "shop"}}}, "kubectl-annotate"),
                 [entry(CREATOR, CREATED), entry("kubectl-annotate", {"f:metadata": {"f:annotations": {"f:team": {}}}})],
                 id="another-field-keeps-the-replicas-owner"),
    pytest.param(patch({"metadata": {"labels": {"app": "web", "setpoint.io/autoscale": "true", "tier": "front",
                                                "team": "x"}}, "spec": {"replicas": 4}}, "helm"),
                 [entry(CREATOR, CREATED_WITHOUT_REPLICAS),
                  entry("helm", {"f:metadata": {"f:labels": {"f:team": {}}}, "f:spec": {"f:replicas": {}}})],
                 id="only-the-changed-fields"),
])
def test_managed_fields_as_the_apiserver_keeps_them(server, api_client, write, expected):
    apps = client.AppsV1Api(api_client)
    before = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    if write is not None:
        write(apps)
    assert managed(api_client) == expected
    after = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    assert (after == before) == (expected == [entry(CREATOR, CREATED)])  # a no-op write keeps the resourceVersion


def test_a_second_write_by_the_same_manager_updates_its_entry(server, api_client):
    apps = client.AppsV1Api(api_client)
    for replicas in (4, 6):
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": replicas}}, field_manager="kubectl")
    assert managed(api_client) == [entry(CREATOR, CREATED_WITHOUT_REPLICAS), entry("kubectl", REPLICAS, "scale")]
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 5}}, field_manager="kubectl")  # not the scale
    assert managed(api_client) == [entry(CREATOR, CREATED_WITHOUT_REPLICAS), entry("kubectl", REPLICAS)]


def test_a_field_manager_over_128_characters_is_refused(server, api_client):
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(api_client).patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}},
                                                                       field_manager="x" * 129)
    assert err.value.status == 400


def test_the_adapter_writes_as_setpoint_and_reads_the_writer(server, api_client):
    cluster = KubernetesCluster(api_client, qps=0)
    try:
        [status] = cluster.observe([WEB]).statuses
        assert (status.replicas_manager, status.spec_replicas) == (CREATOR, 2)
        assert status.replicas_set_at is not None
        cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=4, from_replicas=2))
        [status] = cluster.observe([WEB]).statuses
        assert (status.replicas_manager, status.spec_replicas) == (FIELD_MANAGER, 4)
        assert managed(api_client)[-1] == entry("setpoint", REPLICAS, "scale")
    finally:
        cluster.close()


def test_replicas_writer_without_managed_fields():
    unknown = ("", None, False, False, False, True)  # whether the writer could have changed the template: not known
    assert replicas_writer(None) == unknown
    assert replicas_writer([client.V1ManagedFieldsEntry(manager="x", fields_v1={"f:metadata": {}})]) == unknown


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")
def test_kubectl_scale_is_recorded_as_kubectl_through_the_scale_subresource(server, api_client, tmp_path):
    kubeconfig = server.write_kubeconfig(tmp_path / "kubectl-config", namespace=NS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(tmp_path)}
    proc = subprocess.run([shutil.which("kubectl"), "--request-timeout=5s", "scale", "deploy/web", "--replicas=7"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert managed(api_client)[-1] == entry("kubectl", REPLICAS, "scale")  # kubectl 1.32 sends no fieldManager


def test_replicas_writer_is_the_latest_of_shared_owners():
    from datetime import datetime, timezone

    def owner(manager, second):
        return client.V1ManagedFieldsEntry(manager=manager, operation="Apply", fields_v1=REPLICAS,
                                           time=datetime(2026, 12, 4, 15, 0, second, tzinfo=timezone.utc))
    assert replicas_writer([owner("argocd-controller", 30), owner("flux", 10)])[0] == "argocd-controller"
    assert replicas_writer([owner("flux", 10), owner("argocd-controller", 30)])[0] == "argocd-controller"


@pytest.mark.parametrize("write, manager, by_scale, alone, template", [
    pytest.param(scale("kubectl"), "kubectl", True, True, False, id="kubectl-scale"),
    pytest.param(patch({"spec": {"replicas": 7}}, "kubectl-edit"), "kubectl-edit", False, True, False,
                 id="an-edit-of-the-replicas-alone"),
    pytest.param(patch({"metadata": {"labels": {"app": "web", "setpoint.io/autoscale": "true", "tier": "front",
                                                "team": "x"}}, "spec": {"replicas": 4}}, "helm"), "helm", False, False,
                 False, id="a-deploy-that-changed-more"),
    pytest.param(patch({"metadata": {"annotations": {"oncall": "paged"}}, "spec": {"replicas": 7}}, "kubectl-edit"),
                 "kubectl-edit", False, False, False, id="an-edit-of-the-replicas-and-an-annotation"),
    pytest.param(patch({"spec": {"replicas": 7, "template": {"metadata": {"annotations": {"v": "2"}}}}},
                       "my-deployer"), "my-deployer", False, False, True, id="a-write-of-replicas-and-template"),
    pytest.param(None, CREATOR, False, False, True, id="as-created"),
])
def test_the_adapter_tells_whether_the_writers_entry_dates_the_replicas(server, api_client, write, manager, by_scale,
                                                                       alone, template):
    # a restart resumes a hands-off only from an entry that owns nothing but spec.replicas: its time
    # is when they were set (an entry owning more moves its time with any of its fields); a count
    # is a release's only from an entry that owns pod-template fields too
    if write is not None:
        write(client.AppsV1Api(api_client))
    cluster = KubernetesCluster(api_client, qps=0)
    try:
        [status] = cluster.observe([WEB]).statuses
        assert (status.replicas_manager, status.replicas_by_scale, status.replicas_alone,
                status.replicas_template) == (manager, by_scale, alone, template)
    finally:
        cluster.close()
