"""sim serve's own Events refer to their objects as client-go's recorder does (tools/reference,
GetReference): kind, apiVersion, namespace, name, uid and the object's resourceVersion at the
time of the Event (the version the controller held), a container's fieldPath for the kubelet's.

Read with the real kubectl (``kubectl get events -o json``); the object's versions through the
official client: its resourceVersion in a list before the action, then every change a watch from
that list replays. The engine is still (``drive=False``), stepped by hand (5 s ticks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from kubernetes import client, watch

from tests.adapters.kube_helpers import official_client, start_server

NS = "shop"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")
KUBECTL_REQUEST_S = 5
PROCESS_TIMEOUT_S = 30
WATCH_S = 1  # the watch replays the recorded changes at once; it ends after this


@pytest.fixture
def cluster(tmp_path):
    """sim serve (still), the official client on it, and kubectl's environment (namespace shop)."""
    srv = start_server()
    kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(tmp_path)}
    api_client = official_client(srv, tmp_path)
    yield srv, api_client, env
    api_client.close()
    srv.stop()


def kubectl_events(env: dict) -> list[dict]:
    proc = subprocess.run([KUBECTL, f"--request-timeout={KUBECTL_REQUEST_S}s", "get", "events", "-o", "json"],
                          env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["items"]


def listers(api_client) -> dict:
    """kind -> the official client's namespaced list call of that kind."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    return {"Deployment": apps.list_namespaced_deployment, "ReplicaSet": apps.list_namespaced_replica_set,
            "Pod": core.list_namespaced_pod,
            "HorizontalPodAutoscaler": client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler}


def versions(list_call, since: str, first: dict) -> dict[str, set[tuple[int, str]]]:
    """name -> {(resourceVersion, uid)} each object of a kind had: as listed at ``since``
    (``first``), then every change a watch from ``since`` replays."""
    out = {name: {v} for name, v in first.items()}
    for change in watch.Watch().stream(list_call, NS, resource_version=since, timeout_seconds=WATCH_S,
                                       _request_timeout=WATCH_S + 5):
        meta = change["object"].metadata
        out.setdefault(meta.name, set()).add((int(meta.resource_version), meta.uid))
    return out


def scale_web(srv, api_client) -> None:
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    srv.world.advance(1)


def delete_a_web_pod(srv, api_client) -> None:
    core = client.CoreV1Api(api_client)
    pod = sorted(p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=web").items)[0]
    core.delete_namespaced_pod(pod, NS)
    srv.world.advance(1)


def hpa_rescales_web(srv, api_client) -> None:
    body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 30}}}]}}
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(NS, body)
    srv.world.advance(3)  # one HPA sync (15 s): web at 75 % CPU of a 30 % target scales up


# (action, the Events it causes: (kind, reason, apiVersion, fieldPath or None))
CASES = [
    pytest.param(scale_web, [("Deployment", "ScalingReplicaSet", "apps/v1", None),
                             ("ReplicaSet", "SuccessfulCreate", "apps/v1", None)], id="scale-deployment-and-replicaset"),
    pytest.param(delete_a_web_pod, [("Pod", "Killing", "v1", "spec.containers{web}"),
                                    ("ReplicaSet", "SuccessfulCreate", "apps/v1", None)], id="kubelet-container-ref"),
    pytest.param(hpa_rescales_web, [("HorizontalPodAutoscaler", "SuccessfulRescale", "autoscaling/v2", None),
                                    ("Deployment", "ScalingReplicaSet", "apps/v1", None)], id="hpa-rescale"),
]


@pytest.mark.parametrize("act, expected", CASES)
def test_an_events_involved_object_carries_the_objects_version_at_the_time(cluster, act, expected):
    srv, api_client, env = cluster
    srv.world.advance(3)  # the initial pods run
    calls = listers(api_client)
    first = {}
    for kind, call in calls.items():
        listed = call(NS)
        first[kind] = ({o.metadata.name: (int(o.metadata.resource_version), o.metadata.uid) for o in listed.items},
                       listed.metadata.resource_version)
    act(srv, api_client)

    got = {(e["involvedObject"]["kind"], e["reason"]): e for e in kubectl_events(env)}
    for kind, reason, api_version, field_path in expected:
        event = got[(kind, reason)]
        ref = event["involvedObject"]
        had = versions(calls[kind], first[kind][1], first[kind][0])[ref["name"]]
        assert (ref["apiVersion"], ref["namespace"], ref.get("fieldPath")) == (api_version, NS, field_path), event
        assert ref["uid"] == {uid for _, uid in had}.pop()
        # the version the object had when the Event was written: its newest at or before the Event's own
        at_event = max(rv for rv, _ in had if rv <= int(event["metadata"]["resourceVersion"]))
        assert ref.get("resourceVersion") == str(at_event), (kind, reason, sorted(had))
