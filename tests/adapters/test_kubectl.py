"""The real kubectl against ``sim serve`` over TLS with the token kubeconfig the server writes:
short names, server-side printing columns, watches, describe, scale, rollout history and undo,
events. Every kubectl call is bounded by --request-timeout and a subprocess timeout.

The engine does not run on its own (``drive=False``): the tests change state through kubectl
or the Python client and step the engine by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import TargetRef
from controller.ports import HpaRef
from tests.adapters.kube_helpers import official_client, start_server

NS = "shop"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl); "
                                                        "these tests need the real client")
#: Seconds: kubectl's own per-request bound, and the subprocess's.
KUBECTL_REQUEST_S = 5
PROCESS_TIMEOUT_S = 30


@pytest.fixture
def cluster(tmp_path):
    """A TLS sim serve and the environment that points kubectl at its kubeconfig (namespace shop)."""
    srv = start_server()
    assert srv.url.startswith("https://")
    kubeconfig = srv.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(tmp_path)}  # a fresh discovery cache per test
    yield srv, env
    srv.stop()


def python_client(srv, env: dict) -> client.ApiClient:
    """The official Python client on the same server (its kubeconfig goes to the test's folder)."""
    return official_client(srv, Path(env["HOME"]))


def kubectl(env: dict, *args: str) -> str:
    proc = subprocess.run([KUBECTL, f"--request-timeout={KUBECTL_REQUEST_S}s", *args], env=env, capture_output=True,
                          text=True, timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def table(text: str) -> list[list[str]]:
    """kubectl's printed table as rows of cells (columns split on runs of 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("args,header,first", [
    pytest.param(("deploy",), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["api", "3/3", "3", "3"],
                 id="deploy"),
    pytest.param(("deployments",), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["api", "3/3", "3", "3"],
                 id="deployments"),
    pytest.param(("deploy", "web"), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["web", "2/2", "2", "2"],
                 id="one-deployment"),
    pytest.param(("deploy", "-o", "wide"), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                                            "SELECTOR"], ["api", "3/3", "3", "3"], id="deploy-wide"),
    pytest.param(("rs",), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["api-", "3", "3", "3"], id="rs"),
    pytest.param(("po",), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["api-", "1/1", "Running", "0"], id="po"),
    pytest.param(("ns",), ["NAME", "STATUS", "AGE"], ["default", "Active"], id="ns"),
])
def test_get_prints_the_server_side_columns(cluster, args, header, first):
    srv, env = cluster
    srv.world.advance(4)  # 20 s: every pod started and ready
    rows = table(kubectl(env, "get", *args))
    assert rows[0] == header
    assert rows[1][0].startswith(first[0]) and rows[1][1:len(first)] == first[1:]


def test_get_all_lists_the_all_category(cluster):
    srv, env = cluster
    out = kubectl(env, "get", "all")
    for name in ("deployment.apps/web", "deployment.apps/api", "replicaset.apps/web-", "pod/web-", "pod/api-"):
        assert name in out


def test_get_watch_prints_a_change_then_ends_at_the_request_timeout(cluster):
    srv, env = cluster
    proc = subprocess.Popen([KUBECTL, "--request-timeout=3s", "get", "deploy", "-w"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        listed = [proc.stdout.readline() for _ in range(3)]  # header, api, web: the list before the watch
        assert listed[0].split()[:2] == ["NAME", "READY"] and listed[2].split()[:2] == ["web", "2/2"]
        client.AppsV1Api(python_client(srv, env)).patch_namespaced_deployment_scale(
            "web", NS, {"spec": {"replicas": 5}})
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    watched = [line.split() for line in out.splitlines() if line.strip()]
    assert ["web", "2/5"] in [row[:2] for row in watched], out + err


def test_describe_deployment_shows_replicas_replicasets_and_events(cluster):
    srv, env = cluster
    client.CoreV1Api(python_client(srv, env)).create_namespaced_event(NS, client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="web."), reason="SuccessfulRescale", type="Normal",
        message="setpoint scaled web from 2 to 3", involved_object=client.V1ObjectReference(
            api_version="apps/v1", kind="Deployment", name="web", namespace=NS,
            uid=srv.world.store.get_workload("Deployment", NS, "web")["metadata"]["uid"])))
    out = kubectl(env, "describe", "deployment", "web")
    assert "Replicas:               2 desired | 2 updated | 2 total" in out
    assert "NewReplicaSet:   web-" in out
    assert "SuccessfulRescale" in out and "setpoint scaled web from 2 to 3" in out


def test_describe_and_get_events_show_what_the_clusters_controllers_did(cluster):
    """kubectl describe finds Events by a field selector on the involved object (kind, name,
    namespace, uid): those of the simulated Deployment, ReplicaSet controllers and kubelets show."""
    srv, env = cluster
    srv.world.advance(2)
    kubectl(env, "scale", "deployment", "web", "--replicas=4")
    srv.world.advance(1)
    [rs] = [r[0] for r in table(kubectl(env, "get", "rs", "-l", "app=web"))[1:]]
    scaled = f"Scaled up replica set {rs} to 4 from 2"

    def event_rows(text: str) -> list[list[str]]:  # describe's Events: Type, Reason, Age, From, Message
        return [row for row in table(text.split("Events:", 1)[1]) if row[0] in ("Normal", "Warning")]

    assert [(r[0], r[1], r[3], r[4]) for r in event_rows(kubectl(env, "describe", "deployment", "web"))] == [
        ("Normal", "ScalingReplicaSet", "deployment-controller", scaled)]
    created = event_rows(kubectl(env, "describe", "rs", rs))
    assert [(r[1], r[3]) for r in created] == [("SuccessfulCreate", "replicaset-controller")] * 2
    assert all(r[4].startswith(f"Created pod: {rs}-") for r in created)
    rows = table(kubectl(env, "get", "events", "--field-selector", "involvedObject.kind=Deployment"))
    assert [row[1:] for row in rows[1:]] == [["Normal", "ScalingReplicaSet", "deployment/web", scaled]]


def test_scale_changes_the_engine_replicas(cluster):
    srv, env = cluster
    assert "deployment.apps/web scaled" in kubectl(env, "scale", "deployment", "web", "--replicas=5")
    assert int(srv.world.engine.spec_replicas[srv.world.engine.index("web")]) == 5
    srv.world.advance(4)
    assert table(kubectl(env, "get", "deploy", "web"))[1][:2] == ["web", "5/5"]


def test_rollout_restart_history_and_undo(cluster):
    srv, env = cluster
    engine, i = srv.world.engine, srv.world.engine.index("web")
    original = srv.world.store.get_workload("Deployment", NS, "web")["spec"]["template"]
    assert [r[0] for r in table(kubectl(env, "rollout", "history", "deployment/web"))[2:]] == ["1"]
    kubectl(env, "rollout", "restart", "deployment/web")
    srv.world.advance(6)
    assert [r[0] for r in table(kubectl(env, "rollout", "history", "deployment/web"))[2:]] == ["1", "2"]
    assert "rolled back" in kubectl(env, "rollout", "undo", "deployment/web")
    # as the real controller: the old ReplicaSet's template comes back under the next revision number
    assert [r[0] for r in table(kubectl(env, "rollout", "history", "deployment/web"))[2:]] == ["2", "3"]
    assert srv.world.store.get_workload("Deployment", NS, "web")["spec"]["template"] == original
    assert engine.current_revision(i).seq == 0


def test_get_events_prints_the_event_columns(cluster):
    srv, env = cluster
    client.CoreV1Api(python_client(srv, env)).create_namespaced_event(NS, client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="web."), reason="HealingHeld", type="Warning",
        message="held: run setpoint resume shop/web", involved_object=client.V1ObjectReference(
            api_version="apps/v1", kind="Deployment", name="web", namespace=NS)))
    rows = table(kubectl(env, "get", "events"))
    assert rows[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows[1][1:] == ["Warning", "HealingHeld", "deployment/web", "held: run setpoint resume shop/web"]


def test_get_leases_shows_the_holder(cluster):
    srv, env = cluster
    client.CoordinationV1Api(python_client(srv, env)).create_namespaced_lease(NS, client.V1Lease(
        metadata=client.V1ObjectMeta(name="setpoint-leader"), spec=client.V1LeaseSpec(
            holder_identity="pod-a", lease_duration_seconds=15)))
    rows = table(kubectl(env, "get", "leases"))
    assert rows[0] == ["NAME", "HOLDER", "AGE"] and rows[1][:2] == ["setpoint-leader", "pod-a"]


def readme_kubectl_commands() -> list[list[str]]:
    """The kubectl lines of the sim serve walk-through (docs/operations.md), as argument lists
    (comments and a trailing ``&`` dropped; ``a && b`` split in two)."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    block = readme[readme.index("```sh\nsetpoint sim serve flash-crowd"):]
    block = block[:block.index("```", 5)]
    commands = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip().removesuffix("&").strip()
        for part in line.split("&&"):
            if part.strip().startswith("kubectl "):
                commands.append(part.split()[1:])
    return commands


def test_the_sim_serve_walk_through_works_word_for_word(tmp_path):
    """Each kubectl command of the walk-through, in order, against `setpoint sim serve flash-crowd`
    (the command itself, on a free port), with its kubeconfig; watches shortened to 2 s."""
    commands = readme_kubectl_commands()
    assert len(commands) >= 8 and ["get", "deploy"] in commands
    kubeconfig = tmp_path / "sim.kubeconfig"
    serve = subprocess.Popen([sys.executable, "-m", "controller.cli", "sim", "serve", "flash-crowd", "--kube-listen",
                              "127.0.0.1:0", "--kubeconfig-out", str(kubeconfig), "--token-file",
                              str(tmp_path / "sim.token")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not kubeconfig.exists() and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(0.05)
        assert kubeconfig.exists(), serve.stderr.read() if serve.poll() is not None else "no kubeconfig in 20 s"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
               "HOME": str(tmp_path)}
        outputs = {}
        for args in commands:
            args = [re.sub(r"^--request-timeout=\d+s$", "--request-timeout=2s", a) for a in args]
            proc = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
            outputs[" ".join(args[:2])] = proc.stdout
        assert table(outputs["get deploy"])[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert "deployment.apps/web scaled" in outputs["scale deployment"]
        assert "rolled back" in outputs["rollout undo"]
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(timeout=5)


HPA_V2 = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: %s}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: %d
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}]
"""


def test_an_hpa_is_stored_for_the_controller_to_see_and_a_bad_one_is_refused(cluster, tmp_path):
    # stored as the real API server stores it (nothing acts on it here): `setpoint run` lists them to
    # leave alone the workloads they scale (controller/runtime/hpa_guard.py).
    srv, env = cluster
    (tmp_path / "hpa.yaml").write_text(HPA_V2 % ("web-hpa", 9))
    assert "horizontalpodautoscaler.autoscaling/web-hpa created" in kubectl(env, "create", "-f", str(tmp_path / "hpa.yaml"))
    header, row = table(kubectl(env, "get", "hpa"))
    assert header == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert row[:6] == ["web-hpa", "Deployment/web", "cpu: <unknown>/70%", "2", "9", "0"]  # AGE: 0s, or 1s on a busy machine
    seen = KubernetesCluster(python_client(srv, env), qps=0, max_retries=0, request_timeout_s=KUBECTL_REQUEST_S)
    assert seen.hpa_targets(NS) == {TargetRef(NS, "web", "Deployment"): HpaRef("web-hpa")}
    seen.close()
    (tmp_path / "bad.yaml").write_text(HPA_V2 % ("bad", 0))
    proc = subprocess.run([KUBECTL, f"--request-timeout={KUBECTL_REQUEST_S}s", "create", "-f", str(tmp_path / "bad.yaml")],
                          env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 1 and 'The HorizontalPodAutoscaler "bad" is invalid: spec.maxReplicas' in proc.stderr


def test_kubectl_autoscale_makes_an_hpa_the_controller_sees_through_v2(cluster):
    # kubectl 1.32's autoscale posts autoscaling/v1; the guard lists autoscaling/v2: one stored
    # object served through both, CPU target converted as the API server converts it.
    srv, env = cluster
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in kubectl(
        env, "autoscale", "deployment/web", "--min=2", "--max=8", "--cpu-percent=60")
    for resource in ("hpa", "horizontalpodautoscalers.v1.autoscaling"):  # the same columns through v2 and v1
        assert table(kubectl(env, "get", resource))[1][:5] == ["web", "Deployment/web", "cpu: <unknown>/60%", "2", "8"]
    v1 = json.loads(kubectl(env, "get", "--raw", f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers/web"))
    assert (v1["apiVersion"], v1["spec"]["targetCPUUtilizationPercentage"]) == ("autoscaling/v1", 60)
    seen = KubernetesCluster(python_client(srv, env), qps=0, max_retries=0, request_timeout_s=KUBECTL_REQUEST_S)
    assert seen.hpa_targets(NS) == {TargetRef(NS, "web", "Deployment"): HpaRef("web")}
    [hpa] = seen.autoscaling.list_namespaced_horizontal_pod_autoscaler(NS).items
    assert hpa.spec.metrics[0].resource.target.average_utilization == 60
    seen.close()
    assert 'horizontalpodautoscaler.autoscaling "web" deleted' in kubectl(env, "delete", "hpa", "web")


NAMESPACE_AND_HPAS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: storefront}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: %d
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}]
  behavior: {scaleDown: {stabilizationWindowSeconds: 300, policies: [{type: Percent, value: 10, periodSeconds: 60}]}}
"""


def in_namespace(manifest: str, namespace: str) -> str:
    return manifest.replace("name: shop,", f"name: {namespace},").replace("namespace: shop", f"namespace: {namespace}")


@pytest.mark.parametrize("steps, namespace, max_replicas", [
    # a team's HPA manifests start with their namespace, which exists: kubectl checks the kinds against
    # /openapi/v3 (else it refused: "failed to download openapi"), then PATCHes the namespace's
    # last-applied annotation (else 405 MethodNotAllowed and exit 1)
    pytest.param([(NAMESPACE_AND_HPAS % 9, ["namespace/shop configured",
                                           "horizontalpodautoscaler.autoscaling/web created"])], NS, 9,
                 id="first-apply-of-a-namespace-and-its-hpa"),
    pytest.param([(NAMESPACE_AND_HPAS % 9, ["horizontalpodautoscaler.autoscaling/web created"]),
                  (NAMESPACE_AND_HPAS % 9, ["namespace/shop unchanged",
                                           "horizontalpodautoscaler.autoscaling/web unchanged"])], NS, 9,
                 id="apply-again-changes-nothing"),
    pytest.param([(NAMESPACE_AND_HPAS % 9, ["horizontalpodautoscaler.autoscaling/web created"]),
                  (NAMESPACE_AND_HPAS % 12, ["namespace/shop unchanged",
                                            "horizontalpodautoscaler.autoscaling/web configured"])], NS, 12,
                 id="apply-of-a-change-patches-the-hpa"),
    pytest.param([(in_namespace(NAMESPACE_AND_HPAS, "payments") % 9,
                   ["namespace/payments created", "horizontalpodautoscaler.autoscaling/web created"])], "payments", 9,
                 id="a-new-namespace-is-created-then-holds-the-hpa"),
])
def test_kubectl_apply_of_hpa_manifests_with_their_namespace_validates_and_applies(cluster, tmp_path, steps,
                                                                                  namespace, max_replicas):
    srv, env = cluster
    for i, (manifest, said) in enumerate(steps):
        (tmp_path / f"m{i}.yaml").write_text(manifest)
        out = kubectl(env, "apply", "-f", str(tmp_path / f"m{i}.yaml"))  # validation on, as by default
        for line in said:
            assert line in out, out
    assert kubectl(env, "get", "ns", "-l", "team=storefront", "-o", "name").split() == [f"namespace/{namespace}"]
    hpa = json.loads(kubectl(env, "get", "hpa", "web", "-n", namespace, "-o", "json"))
    assert hpa["spec"]["maxReplicas"] == max_replicas
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"] == [{"type": "Percent", "value": 10, "periodSeconds": 60}]
