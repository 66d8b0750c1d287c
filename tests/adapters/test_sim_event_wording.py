"""sim serve's Events when replicas change read as kube-controller-manager 1.32's: reason, message,
type, involvedObject and source of the Deployment controller (pkg/controller/deployment/sync.go),
the ReplicaSet controller (controller_utils.go's RealPodControl), the StatefulSet controller
(stateful_pod_control.go) and the HPA controller (podautoscaler/horizontal.go), read back through
the official client as ``kubectl describe`` and ``kubectl get events`` read them.

Before: "Scaled up replica set web-x from 2 to 4" (upstream: "to 4 from 2"; a new ReplicaSet "to 1"),
and an HPA's "New size: 4; reason: RateLimitedUp" (Setpoint's reason code; upstream: "cpu resource
utilization (percentage of request) above target").

The engine is stepped by hand (``drive=False``): web 2 pods at 150 rps (CPU 75 % of 500m), api 3
pods at 100 rps; ticks of 5 s, one HPA sync every 3 ticks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from kubernetes import client

from simulators.kubeapi.hpa_wording import go_label_selector, metric_words, rescale_reason
from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import SCENARIO_YAML, SERVICE_LABELS, TOKEN, official_client

NS = "shop"
TICKS_PER_SYNC = 3
SCENARIO = SCENARIO_YAML.replace(  # db: a StatefulSet of 2; the HPAs' custom metrics read the requests per second
    "  services:", "  metrics: {http_requests_per_second: requests_per_second, ingress_rps: requests_per_second,\n"
                   "            queue_messages: requests_per_second}\n  services:", 1) + """\
    - name: db
      namespace: shop
      kind: StatefulSet
      capacityPerPod: 100
      startupDelay: 10s
      schedulingDelay: 0s
      initialReplicas: 2
      maxPods: 20
      load: [{constant: {rps: 100}}]
"""


@dataclasses.dataclass
class World:
    server: SimKubeServer
    core: client.CoreV1Api
    apps: client.AppsV1Api
    autoscaling: client.AutoscalingV2Api

    def advance(self, ticks: int) -> None:
        self.server.world.advance(ticks)

    def replicasets(self, app: str) -> dict[str, str]:
        """Revision -> ReplicaSet name."""
        return {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs.metadata.name
                for rs in self.apps.list_namespaced_replica_set(NS, label_selector=f"app={app}").items}

    def pods(self, app: str) -> set[str]:
        """``app``'s pods but those terminating."""
        return {p.metadata.name for p in self.core.list_namespaced_pod(NS, label_selector=f"app={app}").items
                if p.metadata.deletion_timestamp is None}

    def events(self, kind: str, name: str) -> list[tuple]:
        """(type, reason, source, message, count) of the Events on one object, in the order written."""
        items = self.core.list_namespaced_event(
            NS, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}").items
        return [(e.type, e.reason, e.source.component, e.message, e.count)
                for e in sorted(items, key=lambda e: int(e.metadata.resource_version))]


@pytest.fixture
def world(tmp_path):
    sc = load_scenario_text(SCENARIO, "wording.yaml")
    services = tuple(dataclasses.replace(s, labels=(("app", s.name), ("setpoint.io/autoscale", "true"))
                                         + SERVICE_LABELS.get(s.name, ())) for s in sc.cluster.services)
    sc = dataclasses.replace(sc, cluster=dataclasses.replace(sc.cluster, services=services))
    srv = SimKubeServer(sc, drive=False, token=TOKEN, max_connections=64).start()
    c = official_client(srv, tmp_path)
    yield World(srv, client.CoreV1Api(c), client.AppsV1Api(c), client.AutoscalingV2Api(c))
    c.close()
    srv.stop()


def scale(w: World, kind: str, name: str, replicas: int) -> None:
    patch = {"spec": {"replicas": replicas}}
    if kind == "Deployment":
        w.apps.patch_namespaced_deployment_scale(name, NS, patch)
    else:
        w.apps.patch_namespaced_stateful_set_scale(name, NS, patch)


def restart(w: World, app: str, stamp: str) -> None:
    """kubectl rollout restart's patch: a new revision."""
    w.apps.patch_namespaced_deployment(app, NS, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp}}}}})


def undo(w: World, app: str) -> None:
    """kubectl rollout undo's write: the template of revision 1 back (no annotation)."""
    w.apps.patch_namespaced_deployment(app, NS, [{"op": "remove", "path": "/spec/template/metadata/annotations"}])


# ------------------------------------------------------------------ the workload controllers

def test_a_deployment_scaled_up_says_to_then_from(world):
    world.advance(1)
    before = world.pods("web")
    scale(world, "Deployment", "web", 4)
    [rs] = world.replicasets("web").values()
    created = sorted(world.pods("web") - before)
    assert world.events("Deployment", "web") == [
        ("Normal", "ScalingReplicaSet", "deployment-controller", f"Scaled up replica set {rs} to 4 from 2", 1)]
    assert world.events("ReplicaSet", rs) == [
        ("Normal", "SuccessfulCreate", "replicaset-controller", f"Created pod: {p}", 1) for p in created]


def test_a_deployment_scaled_down_says_to_then_from(world):
    world.advance(1)
    before = world.pods("api")
    scale(world, "Deployment", "api", 1)
    world.advance(1)
    [rs] = world.replicasets("api").values()
    deleted = sorted(before - world.pods("api"))
    assert world.events("Deployment", "api") == [
        ("Normal", "ScalingReplicaSet", "deployment-controller", f"Scaled down replica set {rs} to 1 from 3", 1)]
    assert sorted(world.events("ReplicaSet", rs)) == [
        ("Normal", "SuccessfulDelete", "replicaset-controller", f"Deleted pod: {p}", 1) for p in deleted]


def test_a_rollout_creates_its_replicaset_without_from_and_a_rollback_scales_the_old_one_up_from_0(world):
    world.advance(1)
    restart(world, "api", "2026-01-01T00:00:05Z")
    world.advance(40)  # the rollout done: the old ReplicaSet at 0, kept in the history
    old, new = world.replicasets("api")["1"], world.replicasets("api")["2"]
    said = [m for _, _, _, m, _ in world.events("Deployment", "api")]
    assert said[0] == f"Scaled up replica set {new} to 1", said  # getNewReplicaSet: created with 1 (maxSurge)
    assert said[-1] == f"Scaled down replica set {old} to 0 from 1", said
    undo(world, "api")
    world.advance(40)
    again = [m for _, _, _, m, _ in world.events("Deployment", "api")][len(said):]
    # the old ReplicaSet exists: scaleReplicaSet's words, "from 0", not a creation's
    assert f"Scaled up replica set {old} to 1 from 0" in again, again
    assert not any(m == f"Scaled up replica set {old} to 1" for m in again), again


def test_a_statefulset_scaled_says_create_and_delete_pod_in_statefulset(world):
    world.advance(1)
    scale(world, "StatefulSet", "db", 3)
    world.advance(3)
    scale(world, "StatefulSet", "db", 2)
    world.advance(1)
    assert world.events("StatefulSet", "db") == [
        ("Normal", "SuccessfulCreate", "statefulset-controller", "create Pod db-2 in StatefulSet db successful", 1),
        ("Normal", "SuccessfulDelete", "statefulset-controller", "delete Pod db-2 in StatefulSet db successful", 1)]


# ------------------------------------------------------------------ the HPA controller

def hpa(target: str, metric: dict, min_replicas: int = 2, max_replicas: int = 10, down_window_s: int | None = None):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": min_replicas, "maxReplicas": max_replicas, "metrics": [metric]}
    if down_window_s is not None:
        spec["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": down_window_s}}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": target},
            "spec": spec}


def cpu(utilization: int | None = None, average: str | None = None, container: str | None = None) -> dict:
    target = {"type": "Utilization", "averageUtilization": utilization} if average is None else \
        {"type": "AverageValue", "averageValue": average}
    if container:
        return {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": container,
                                                                    "target": target}}
    return {"type": "Resource", "resource": {"name": "cpu", "target": target}}


PODS = {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                                 "target": {"type": "AverageValue", "averageValue": "50"}}}
OBJECT = {"type": "Object", "object": {"metric": {"name": "ingress_rps"}, "target": {"type": "Value", "value": "100"},
                                       "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                                           "name": "main"}}}
EXTERNAL = {"type": "External", "external": {
    "metric": {"name": "queue_messages", "selector": {"matchLabels": {"queue": "jobs", "app": "web"}}},
    "target": {"type": "AverageValue", "averageValue": "50"}}}
EXTERNAL_SELECTOR = ("&LabelSelector{MatchLabels:map[string]string{app: web,queue: jobs,},"
                     "MatchExpressions:[]LabelSelectorRequirement{},}")


# (the HPA, the replicas set before its first sync (None: as the scenario has them), its Event)
# web: 2 pods of 75 rps each (CPU 75 % of their 500m request: 375m each)
HPA_ROWS = [
    pytest.param(hpa("web", cpu(utilization=30)), None,
                 "New size: 4; reason: cpu resource utilization (percentage of request) above target",
                 id="resource-utilization-above-target"),  # 5 wanted, the legacy scale-up limit max(2x, 4)
    pytest.param(hpa("web", cpu(average="250m")), None, "New size: 3; reason: cpu resource above target",
                 id="resource-average-value-above-target"),  # 2 x 375m / 250m (read in cores, not percent)
    pytest.param(hpa("web", PODS), None, "New size: 3; reason: pods metric http_requests_per_second above target",
                 id="pods-metric-above-target"),
    pytest.param(hpa("web", OBJECT), None, "New size: 3; reason: Ingress metric ingress_rps above target",
                 id="object-metric-above-target"),
    pytest.param(hpa("web", EXTERNAL), None,
                 f"New size: 3; reason: external metric queue_messages({EXTERNAL_SELECTOR}) above target",
                 id="external-metric-above-target"),
    pytest.param(hpa("web", cpu(utilization=90), min_replicas=1, down_window_s=0), 6,
                 "New size: 1; reason: All metrics below target", id="all-metrics-below-target"),
    pytest.param(hpa("web", cpu(utilization=75), min_replicas=3), None,
                 "New size: 3; reason: Current number of replicas below Spec.MinReplicas", id="below-min-replicas"),
    pytest.param(hpa("web", cpu(utilization=75), max_replicas=4), 6,
                 "New size: 4; reason: Current number of replicas above Spec.MaxReplicas", id="above-max-replicas"),
]


@pytest.mark.parametrize("manifest, replicas, message", HPA_ROWS)
def test_an_hpas_rescale_event_reads_as_kube_controller_managers(world, manifest, replicas, message):
    if replicas is not None:
        scale(world, "Deployment", "web", replicas)
        world.advance(3)  # the pods Ready: what the HPA reads is their steady state
    written = len(world.core.list_namespaced_event(NS).items)
    world.autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, manifest)
    world.advance(TICKS_PER_SYNC)
    said = world.events("HorizontalPodAutoscaler", "web")
    assert said[:1] == [("Normal", "SuccessfulRescale", "horizontal-pod-autoscaler", message, 1)], said
    [event] = [e for e in world.core.list_namespaced_event(NS, field_selector="reason=SuccessfulRescale").items]
    ref = event.involved_object
    assert (ref.kind, ref.api_version, ref.name, ref.namespace) == ("HorizontalPodAutoscaler", "autoscaling/v2",
                                                                     "web", NS)
    assert ref.uid == world.autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS).metadata.uid
    # written as the scale returns, before the Deployment controller's Event of that scale
    after = sorted(world.core.list_namespaced_event(NS).items, key=lambda e: int(e.metadata.resource_version))
    reasons = [e.reason for e in after[written:]]
    assert reasons.index("SuccessfulRescale") < reasons.index("ScalingReplicaSet"), reasons


# ------------------------------------------------------------------ the words alone

@pytest.mark.parametrize("source, words", [
    pytest.param(cpu(utilization=50), "cpu resource utilization (percentage of request)", id="resource-utilization"),
    pytest.param(cpu(average="200m"), "cpu resource", id="resource-average-value"),
    pytest.param(cpu(utilization=50, container="app"), "cpu container resource utilization (percentage of request)",
                 id="container-resource-utilization"),
    pytest.param(cpu(average="200m", container="app"), "cpu resource", id="container-resource-average-value"),
    pytest.param(PODS, "pods metric http_requests_per_second", id="pods"),
    pytest.param(OBJECT, "Ingress metric ingress_rps", id="object-value"),
    # upstream's words for an Object metric with an AverageValue target (sic: "external")
    pytest.param({"type": "Object", "object": {"metric": {"name": "ingress_rps"}, "target": {
        "type": "AverageValue", "averageValue": "10"}, "describedObject": {"kind": "Ingress", "name": "main"}}},
        "external metric ingress_rps(nil)", id="object-average-value"),
    pytest.param(EXTERNAL, f"external metric queue_messages({EXTERNAL_SELECTOR})", id="external-with-selector"),
    pytest.param({"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "5"}}},
                 "external metric q(nil)", id="external-without-selector"),
])
def test_a_metric_in_the_hpa_controllers_words(source, words):
    assert metric_words(source) == words


@pytest.mark.parametrize("selector, text", [
    pytest.param(None, "nil", id="none"),
    pytest.param({}, "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}",
                 id="empty"),
    pytest.param({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                       {"key": "canary", "operator": "DoesNotExist"}]},
                 "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{"
                 "LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},"
                 "LabelSelectorRequirement{Key:canary,Operator:DoesNotExist,Values:[],},},}", id="expressions"),
])
def test_a_selector_as_go_prints_it(selector, text):
    assert go_label_selector(selector) == text


@pytest.mark.parametrize("proposals, valid, current, reason", [
    # computeReplicasForMetrics keeps a later metric only when strictly larger: the first of equals names it
    pytest.param([5.0, 5.0], [True, True], 2.0, "pods metric http_requests_per_second above target",
                 id="equal-proposals-the-first-names-it"),
    pytest.param([3.0, 5.0], [True, True], 2.0, "Ingress metric ingress_rps above target", id="the-largest-names-it"),
    pytest.param([9.0, 3.0], [False, True], 2.0, "Ingress metric ingress_rps above target",
                 id="an-invalid-metric-never-names-it"),
    # the proposal equals the current count, the stabilization window moved it: upstream's empty reason
    pytest.param([4.0, 1.0], [True, True], 4.0, "", id="proposal-at-current-empty-reason"),
])
def test_which_metric_a_rescale_names(proposals, valid, current, reason):
    assert rescale_reason(1, current, np.array(proposals), np.array(valid), [PODS, OBJECT]) == reason


@pytest.mark.parametrize("manifest, conditions", [
    pytest.param(hpa("web", cpu(utilization=30)), {
        "AbleToScale": ("True", "SucceededRescale", "the HPA controller was able to update the target scale to 4"),
        "ScalingActive": ("True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count "
                          "from cpu resource utilization (percentage of request)"),
        "ScalingLimited": ("True", "ScaleUpLimit",
                           "the desired replica count is increasing faster than the maximum scale rate")},
        id="cpu-scaled-up-at-its-limit"),
    pytest.param(hpa("web", PODS), {
        "AbleToScale": ("True", "SucceededRescale", "the HPA controller was able to update the target scale to 3"),
        "ScalingActive": ("True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count "
                          "from pods metric http_requests_per_second"),
        "ScalingLimited": ("False", "DesiredWithinRange", "the desired count is within the acceptable range")},
        id="pods-metric-scaled-up"),
])
def test_kubectl_describe_hpas_conditions_read_as_kube_controller_managers(world, manifest, conditions):
    """Before: "the controller was able to update the target scale to 4", "... calculate a replica count from cpu"."""
    world.autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, manifest)
    world.advance(TICKS_PER_SYNC)
    status = world.autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS).status
    assert {c.type: (c.status, c.reason, c.message) for c in status.conditions} == conditions
