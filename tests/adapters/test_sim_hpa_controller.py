"""`setpoint sim serve` runs the HPAs it stores, as kube-controller-manager does
(simulators/kubeapi/hpa_controller.py): the rehearsal of a migration from HPA (import, then
`setpoint run --shadow` beside the incumbent HPA, then cut over) has an incumbent that scales.

Through the official Python client (and kubectl when installed) against sim serve in-process,
the engine stepped by hand: scenario kube-test (tick 5 s), so one HPA sync is 3 ticks.
web: 2 pods of 100 rps at 150 rps (CPU 75 %); api: 3 pods of 50 rps at 100 rps (CPU 67 %).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from kubernetes import client

from controller.policy.load import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.shadow import ShadowCluster, ShadowTelemetry
from simulators.kubeapi.hpa_controller import REFUSED_REASON, SYNC_PERIOD_S
from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import SCENARIO_YAML, TOKEN, controller_inputs, official_client, start_server

NS = "shop"
TICKS_PER_SYNC = 3  # SYNC_PERIOD_S / the scenario's 5 s tick
KUBECTL = shutil.which("kubectl")


def hpa(name: str, target: str = "web", max_replicas: int = 10, metric: dict | None = None,
        target_kind: str = "Deployment") -> dict:
    """An autoscaling/v2 HPA of ``target`` at 30 % CPU (or ``metric``), min 2."""
    metric = metric or {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 30}}}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target},
                     "minReplicas": 2, "maxReplicas": max_replicas, "metrics": [metric]}}


@pytest.fixture
def sim(tmp_path):
    """sim serve (engine still) and the official client's autoscaling/v2 and apps/v1 APIs on it."""
    srv = start_server()
    api_client = official_client(srv, tmp_path)
    yield srv, client.AutoscalingV2Api(api_client), client.AppsV1Api(api_client)
    api_client.close()
    srv.stop()


def syncs(srv, n: int) -> None:
    srv.world.advance(n * TICKS_PER_SYNC)


def replicas(apps: client.AppsV1Api, name: str = "web") -> int:
    return apps.read_namespaced_deployment(name, NS).spec.replicas


def set_replicas(apps: client.AppsV1Api, count: int, name: str = "web") -> None:
    apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": count}})


def test_an_hpa_with_a_cpu_target_scales_its_deployment_as_kube_controller_manager(sim):
    srv, autoscaling, apps = sim
    assert srv.world.hpa_controller.sync_period_s == SYNC_PERIOD_S == 15.0
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
    assert replicas(apps) == 2
    syncs(srv, 1)
    first = replicas(apps)
    assert first > 2  # 75 % CPU against 30 %: HPA's legacy scale-up limit, max(2x, 4)
    syncs(srv, 2)
    assert first <= replicas(apps) <= 10
    writers = [(e.manager, e.operation, e.subresource)
               for e in apps.read_namespaced_deployment("web", NS).metadata.managed_fields
               if "f:replicas" in json.dumps(e.fields_v1)]
    assert writers == [("kube-controller-manager", "Update", "scale")]
    status = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS).status
    assert status.desired_replicas == replicas(apps) and status.current_replicas >= first
    assert status.last_scale_time is not None
    [cpu] = status.current_metrics
    assert cpu.type == "Resource" and cpu.resource.name == "cpu" and cpu.resource.current.average_utilization > 30
    assert cpu.resource.current.average_value.endswith("m")  # cores per pod, as kubectl describe shows it
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions["AbleToScale"][0] == "True" and conditions["ScalingActive"] == ("True", "ValidMetricFound")
    events = client.CoreV1Api(apps.api_client).list_namespaced_event(
        NS, field_selector="involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=web").items
    # one per scale (the API lists them by name, not by time)
    assert {e.reason for e in events} == {"SuccessfulRescale"}
    assert any(e.message.startswith(f"New size: {first};") for e in events), [e.message for e in events]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")
def test_kubectl_get_hpa_shows_what_the_hpa_did(sim, tmp_path):
    srv, autoscaling, apps = sim
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
    syncs(srv, 2)
    kubeconfig = srv.write_kubeconfig(tmp_path / "kubectl-config", namespace=NS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(tmp_path)}
    out = subprocess.run([KUBECTL, "--request-timeout=5s", "get", "hpa", "web", "--no-headers"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    cells = out.stdout.split()
    assert cells[:2] == ["web", "Deployment/web"] and cells[3].endswith("/30%") and cells[3] != "<unknown>/30%"
    shown = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS).status
    assert int(cells[6]) == shown.current_replicas > 2  # REPLICAS: the count the last sync observed
    assert cells[3] == f"{shown.current_metrics[0].resource.current.average_utilization}%/30%"


@pytest.mark.parametrize("change, expected", [
    pytest.param("delete", 2, id="deleted-hpa-scales-no-more"),
    pytest.param("lower-max", 3, id="edited-max-takes-effect-at-the-next-sync"),
    pytest.param("none", None, id="kept-hpa-scales-back-up"),
])
def test_created_edited_and_deleted_hpas_take_effect_at_the_next_sync(sim, change, expected):
    srv, autoscaling, apps = sim
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
    syncs(srv, 2)
    assert replicas(apps) > 3
    if change == "delete":  # the cut-over: the HPA goes, someone sets a count, nobody changes it again
        autoscaling.delete_namespaced_horizontal_pod_autoscaler("web", NS)
        set_replicas(apps, 2)
    elif change == "lower-max":
        autoscaling.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"spec": {"maxReplicas": 3}})
    else:
        set_replicas(apps, 2)
    syncs(srv, 2)
    if expected is None:
        assert replicas(apps) > 2  # the HPA is still there: it takes the count back up
    else:
        assert replicas(apps) == expected


def test_with_no_hpa_controller_an_hpa_is_only_stored(tmp_path):
    srv = start_server(hpa_controller=False)
    api_client = official_client(srv, tmp_path)
    try:
        client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
        syncs(srv, 3)
        assert client.AppsV1Api(api_client).read_namespaced_deployment("web", NS).spec.replicas == 2
        status = client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler("web", NS).status
        assert status is None or (status.current_replicas in (None, 0) and not status.conditions)
    finally:
        api_client.close()
        srv.stop()


# a Pods metric no default binds (an HPA's memory metric binds by default: the next tests)
_UNBOUND = {"type": "Pods", "pods": {"metric": {"name": "queue_depth"},
                                    "target": {"type": "AverageValue", "averageValue": "10"}}}


@pytest.mark.parametrize("refused, why", [
    pytest.param(hpa("bad", "api", metric={"type": "Object", "object": {
        "metric": {"name": "hits"}, "describedObject": {"kind": "Ingress", "name": "main"},
        "target": {"type": "Utilization", "averageUtilization": 50}}}),
        "expected Value or AverageValue", id="importer-refuses-a-utilization-target-of-an-object-metric"),
    pytest.param(hpa("bad", "api", metric=_UNBOUND),
        # said as the importer's refusal, with --scenario-set to bind it: sim serve has no such option
        "the scenario does not simulate its metrics: policy bad: metric 'queue_depth' is not bound to a simulated "
        "signal (", id="a-metric-the-scenario-does-not-bind"),
    pytest.param(hpa("bad", "api", metric=_UNBOUND),
        "; bind it under spec.metrics of scenario kube-test (queue_depth: SIGNAL) and start sim serve again",
        id="how-to-bind-it-in-sim-serve"),
    pytest.param(hpa("bad", "api-rs", target_kind="ReplicaSet"), "Setpoint scales Deployment or StatefulSet",
                 id="importer-refuses-a-replicaset-target"),
])
def test_an_hpa_the_importer_refuses_is_skipped_and_says_why_without_breaking_others(sim, refused, why, caplog):
    srv, autoscaling, apps = sim
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, refused)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
    with caplog.at_level("WARNING", logger="setpoint.sim.hpa"):
        syncs(srv, 3)
    assert replicas(apps) > 2 and replicas(apps, "api") == 3
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "shop/bad" in skipped[0] and why in skipped[0]  # once, not at every sync
    conditions = {c.type: c for c in autoscaling.read_namespaced_horizontal_pod_autoscaler("bad", NS).status.conditions}
    assert conditions["ScalingActive"].status == "False" and conditions["ScalingActive"].reason == REFUSED_REASON
    assert why in conditions["ScalingActive"].message and "--scenario-set" not in conditions["ScalingActive"].message


def test_an_hpa_the_importer_refuses_for_two_fields_says_both(sim, caplog):
    """Every problem of a refused HPA is said, as `setpoint import` says them (it said the first)."""
    srv, autoscaling, apps = sim
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("bad", "api-rs", target_kind="ReplicaSet", metric={
        "type": "Object", "object": {"metric": {"name": "hits"}, "describedObject": {"kind": "Ingress", "name": "main"},
                                     "target": {"type": "Utilization", "averageUtilization": 50}}}))
    with caplog.at_level("WARNING", logger="setpoint.sim.hpa"):
        syncs(srv, 2)
    [skipped] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "Setpoint scales Deployment or StatefulSet" in skipped and "expected Value or AverageValue" in skipped
    message = {c.type: c for c in autoscaling.read_namespaced_horizontal_pod_autoscaler("bad", NS).status.conditions}[
        "ScalingActive"].message
    assert "Setpoint scales Deployment or StatefulSet" in message and "expected Value or AverageValue" in message


SHADOW_POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: rps_query
        target: {averagePerReplica: 50}
"""


def test_a_shadow_run_beside_the_hpa_sees_its_writes_as_the_incumbents(sim, tmp_path):
    srv, autoscaling, apps = sim
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
    metrics, cluster = controller_inputs(srv, tmp_path, {"rps_query": "offered_rps"}, advance=1)
    [policy] = load_policy_text(SHADOW_POLICY, "web.yaml")
    telemetry = ShadowTelemetry()
    shadow = Reconciler(RuntimePolicy.of(policy), metrics, ShadowCluster(cluster))
    try:
        seen = []
        for _ in range(4):  # a shadow cycle after each HPA sync
            result = shadow.cycle(srv.world.store.wall_now())
            telemetry.observe_cycle(result)
            seen.append(int(result.view.spec[0]))
            assert result.hpa_scaled == 1 and result.targets  # the HPA's workload, decided for all the same
            assert not result.hands_off and not result.external_changes  # the HPA's counts: no hands-off
            incumbent = telemetry.registry.get_sample_value("setpoint_shadow_incumbent_replicas",
                                                            {"policy": "web", "target": "shop/web"})
            assert incumbent == seen[-1]
            syncs(srv, 1)
            metrics.push(srv.world.engine.signals())
        assert seen[0] == 2 and seen[-1] > 2  # the incumbent scaled between the shadow's cycles
        assert replicas(apps) > 2
    finally:
        cluster.close()


def dropping_load_server() -> SimKubeServer:
    """sim serve on kube-test (engine still) with web's load dropping from 150 to 30 rps 2 min in."""
    text = SCENARIO_YAML.replace("load: [{constant: {rps: 150}}]",
                                 "load: [{constant: {rps: 150}}, {step: {at: 2m, from: 0, to: -120}}]", 1)
    assert text != SCENARIO_YAML
    return SimKubeServer(load_scenario_text(text, "kube-test-drop.yaml"), drive=False, token=TOKEN).start()


#: The timeline in syncs (15 s each; ``seen[i]``: web's replicas after sync i + 1): the HPA at 30 % CPU
#: holds web at 5 from its second sync; the load drops to 30 rps at 2 min (sync 8), from when it
#: recommends 2 (its minimum); scale-down stabilization (300 s, HPA's default) holds 5 until the last
#: recommendation of 5 leaves the window: down at seen[28]. The edit comes before sync 12, within the
#: window; an HPA whose history was dropped at sync 12 starts a window of its own at sync 13 (seeded
#: with its 5 replicas, as kube-controller-manager seeds a new HPA's): down at seen[32].
EDIT_AT_SYNC, WINDOW_ENDS_AT, RESTARTED_WINDOW_ENDS_AT = 12, 28, 32


@pytest.mark.parametrize("change, down_at", [
    pytest.param("min-replicas", WINDOW_ENDS_AT, id="spec-edit-keeps-the-history"),
    pytest.param("label", WINDOW_ENDS_AT, id="label-edit-keeps-the-history"),
    pytest.param("delete-and-create-between-syncs", WINDOW_ENDS_AT,
                 id="back-before-the-next-sync-keeps-the-history-as-kube-controller-manager"),
    pytest.param("delete-sync-create", RESTARTED_WINDOW_ENDS_AT, id="deleted-at-a-sync-starts-afresh"),
])
def test_an_edit_within_the_stabilization_window_keeps_the_hpas_history(tmp_path, change, down_at):
    # kube-controller-manager keys recommendations and scale events by the HPA's namespace/name and
    # drops them only at a sync that finds it gone; before, an edit restarted the window (5 held to seen[33])
    srv = dropping_load_server()
    api_client = official_client(srv, tmp_path)
    autoscaling, apps = client.AutoscalingV2Api(api_client), client.AppsV1Api(api_client)
    try:
        autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))
        seen = []
        for sync in range(1, 37):
            if sync == EDIT_AT_SYNC:
                edit_hpa(srv, autoscaling, change)
            syncs(srv, 1)
            seen.append(replicas(apps))
        assert seen[1:down_at] == [5] * (down_at - 1), seen  # held at 5 until the window of the last 5 ends
        assert seen[down_at] < 5 and seen[-1] <= 2, seen  # then down (to minReplicas: 1 or 2)
    finally:
        api_client.close()
        srv.stop()


def edit_hpa(srv, autoscaling: client.AutoscalingV2Api, change: str) -> None:
    """Change the web HPA as ``change`` says (min-replicas, label, delete-and-create-between-syncs,
    delete-sync-create: deleted, one sync without it, created again)."""
    if change == "min-replicas":
        autoscaling.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"spec": {"minReplicas": 1}})
    elif change == "label":
        autoscaling.patch_namespaced_horizontal_pod_autoscaler("web", NS, {"metadata": {"labels": {"team": "shop"}}})
    else:
        autoscaling.delete_namespaced_horizontal_pod_autoscaler("web", NS)
        if change == "delete-sync-create":
            syncs(srv, 1)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web"))


def test_the_hpa_controllers_events_go_through_the_clusters_recorder(sim):
    """A rescale's Event is named and correlated as kube-controller-manager's recorder does: the
    same size for the same reason again counts on one Event (before: a new random-named Event
    each time); and it never takes the name of the Deployment's Event of the same instant (both
    objects are "web")."""
    from types import SimpleNamespace

    from controller.model import Action, ActionKind, TargetRef

    srv, _, apps = sim
    hpa = {"metadata": {"namespace": NS, "name": "web", "uid": "hpa-uid"}}
    scale = Action(ActionKind.SCALE, TargetRef(NS, "Deployment", "web"), "cpu above target", replicas=4)
    for _ in range(2):  # the engine is still (not driven): nothing else writes meanwhile
        srv.world.hpa_controller._record_rescales(hpa, SimpleNamespace(actions=[scale], decision=None,
                                                                              targets=[]))
    events = client.CoreV1Api(apps.api_client).list_namespaced_event(
        NS, field_selector="involvedObject.kind=HorizontalPodAutoscaler").items
    assert [(e.reason, e.message, e.count, e.source.component) for e in events] == [
        ("SuccessfulRescale", "New size: 4; reason: cpu above target", 2, "horizontal-pod-autoscaler")]
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 7}})  # the Deployment's Event, same instant
    names = [e.metadata.name for e in client.CoreV1Api(apps.api_client).list_namespaced_event(NS).items]
    assert len(names) == len(set(names)) >= 2


METRICS_SCENARIO = SCENARIO_YAML.replace(
    "  services:", "  metrics: {http_requests_per_second: requests_per_second, ingress_rps: requests_per_second,\n"
                   "            queue_messages: queue_length}\n  services:", 1)
_PODS = {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                                  "target": {"type": "AverageValue", "averageValue": "1k"}}}
_OBJECT = {"type": "Object", "object": {"metric": {"name": "ingress_rps"}, "target": {"type": "Value", "value": "10k"},
                                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                                            "name": "main"}}}
_EXTERNAL = {"type": "External", "external": {"metric": {"name": "queue_messages", "selector": {"matchLabels": {
    "queue": "jobs"}}}, "target": {"type": "AverageValue", "averageValue": "1k"}}}


# web: 2 pods at 150 rps, none of these targets scales it. kubectl get hpa showed a Pods metric as
# the workload's total against the per-pod target (1138/80 at 13 pods: HPA says 87/80), and every
# other source as a Pods metric.
@pytest.mark.parametrize("metric, shown", [
    pytest.param(_PODS, {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                                                  "current": {"averageValue": "75000m"}}}, id="pods-average-per-pod"),
    pytest.param(_OBJECT, {"type": "Object", "object": {
        "metric": {"name": "ingress_rps"}, "current": {"value": "150000m"},
        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"}}},
        id="object-value"),
    pytest.param(_EXTERNAL, {"type": "External", "external": {
        "metric": {"name": "queue_messages", "selector": {"matchLabels": {"queue": "jobs"}}},
        "current": {"averageValue": "0m"}}}, id="external-average-value"),
    # each pod's working set, 256 MiB, of its 512 MiB request: in the HPA's units (HPA read memory as the
    # scenario bound it, and only when bound: a per-pod mean in MiB)
    pytest.param({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 80}}},
        {"type": "Resource", "resource": {"name": "memory", "current": {
            "averageUtilization": 50, "averageValue": str(256 * 2 ** 20)}}}, id="memory-utilization-with-bytes"),
    pytest.param({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "400Mi"}}},
        {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": str(256 * 2 ** 20)}}},
        id="memory-average-value-in-bytes-per-pod"),
])
def test_current_metrics_take_the_form_of_the_hpas_metric_source(tmp_path, metric, shown):
    srv = SimKubeServer(load_scenario_text(METRICS_SCENARIO, "kube-test.yaml"), drive=False, token=TOKEN).start()
    api_client = official_client(srv, tmp_path)
    try:
        autoscaling = client.AutoscalingV2Api(api_client)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web", metric=metric))
        syncs(srv, 1)
        status = srv.world.store.hpas.get(NS, "web")["status"]
        assert status["currentReplicas"] == 2 and status["currentMetrics"] == [shown]
    finally:
        api_client.close()
        srv.stop()


@pytest.mark.parametrize("target", [
    pytest.param({"type": "Utilization", "averageUtilization": 40}, id="utilization-50-of-40-percent"),
    pytest.param({"type": "AverageValue", "averageValue": "200Mi"}, id="average-value-512Mi-over-200Mi"),
])
def test_an_hpa_on_memory_scales_on_the_pods_working_set(sim, target):
    """web's 2 pods each hold 256 MiB of their 512 MiB request: memory alone takes it to 3, as
    kube-controller-manager would (the scenario binds no memory: the default by target; an
    HPA on memory was refused: "the scenario does not simulate its metrics")."""
    srv, autoscaling, apps = sim
    memory = {"type": "Resource", "resource": {"name": "memory", "target": target}}
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa("web", metric=memory))
    syncs(srv, 1)
    assert replicas(apps) == 3
    conditions = {c.type: c for c in autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS).status.conditions}
    assert conditions["ScalingActive"].status == "True"


def test_an_hpa_keda_made_scales_as_any_other(sim):
    """setpoint import refuses an HPA KEDA made (import the ScaledObject instead); kube-controller-
    manager runs it as any HPA, and so does sim serve."""
    srv, autoscaling, apps = sim
    owned = hpa("keda-hpa-web")
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "web",
                                             "uid": "6c1f0b8e-1d9a-4a4e-9a3c-2f1e5b7d9c01", "controller": True}]
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, owned)
    syncs(srv, 1)
    assert replicas(apps) > 2
