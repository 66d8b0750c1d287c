"""sim serve's HPA controller tells its troubles in Warning Events, as kube-controller-manager 1.32
does (pkg/controller/podautoscaler/horizontal.go; words in simulators/kubeapi/hpa_wording.py):
metrics it cannot read, a target that is not there, a scale update that failed; one per sync,
counted on one Event by the recorder; with the conditions that go with them.

Through the official Python client against sim serve in-process, the engine stepped by hand:
scenario kube-test (tick 5 s), so one HPA sync is 3 ticks. web: 2 pods at 75 % CPU.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from simulators.kubeapi import objects as K
from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import SCENARIO_YAML, TOKEN, official_client

NS = "shop"
TICKS_PER_SYNC = 3
NO_CPU = "unable to get metrics for resource cpu: no metrics returned from resource metrics API"
CONFLICT = ('Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply '
            'your changes to the latest version and try again')


def hpa(target: str = "web", kind: str = "Deployment") -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                     "minReplicas": 2, "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 30}}}]}}


def serve(faults: str = "") -> SimKubeServer:
    text = SCENARIO_YAML + (f"  faults:\n    - {faults}\n" if faults else "")
    return SimKubeServer(load_scenario_text(text, "kube-test.yaml"), drive=False, token=TOKEN).start()


def warnings(core: client.CoreV1Api) -> dict[str, tuple[str, int]]:
    """The HPA's Warning Events: reason -> (message, count)."""
    items = core.list_namespaced_event(NS, field_selector="involvedObject.kind=HorizontalPodAutoscaler,"
                                                          "involvedObject.name=web,type=Warning").items
    return {e.reason: (e.message, e.count) for e in items}


def conditions(autoscaling: client.AutoscalingV2Api) -> dict[str, tuple[str, str, str]]:
    status = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", NS).status
    return {c.type: (c.status, c.reason, c.message) for c in status.conditions}


def drop_cpu_request(srv, apps: client.AppsV1Api) -> None:
    """A new revision of web whose container requests no CPU (its pods come with the rollout)."""
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "resources": {"requests": {"cpu": None}}}]}}}})
    srv.world.advance(24)  # the rollout is done: every pod is one of those


def first_pod_without_cpu_request(core: client.CoreV1Api) -> str:
    pods = sorted(core.list_namespaced_pod(NS, label_selector="app=web").items, key=lambda p: p.metadata.name)
    return next(p.metadata.name for p in pods if "cpu" not in (p.spec.containers[0].resources.requests or {}))


# (scenario fault, what happens before the HPA is created, its target, the Warnings, the condition they set)
CASES = [
    pytest.param("{name: m, kind: metrics-outage, at: 0s, duration: 30m, services: [web]}", None, "web", {
        "FailedGetResourceMetric": f"failed to get cpu utilization: {NO_CPU}",
        "FailedComputeMetricsReplicas": "invalid metrics (1 invalid out of 1), first error is: failed to get cpu "
                                        f"resource metric value: failed to get cpu utilization: {NO_CPU}"},
        ("ScalingActive", "False", "FailedGetResourceMetric",
         f"the HPA was unable to compute the replica count: failed to get cpu utilization: {NO_CPU}"),
        id="metrics-outage"),
    pytest.param("", drop_cpu_request, "web", {
        "FailedGetResourceMetric": "failed to get cpu utilization: missing request for cpu in container web of "
                                   "Pod {pod}",
        "FailedComputeMetricsReplicas": "invalid metrics (1 invalid out of 1), first error is: failed to get cpu "
                                        "resource metric value: failed to get cpu utilization: missing request for "
                                        "cpu in container web of Pod {pod}"},
        ("ScalingActive", "False", "FailedGetResourceMetric",
         "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu "
         "in container web of Pod {pod}"),
        id="pod-without-cpu-request"),
    pytest.param("", None, "nope", {"FailedGetScale": 'deployments.apps "nope" not found'},
                 ("AbleToScale", "False", "FailedGetScale",
                  'the HPA controller was unable to get the target\'s current scale: deployments.apps "nope" not found'),
                 id="target-not-found"),
]


@pytest.mark.parametrize("fault, before, target, expected, condition", CASES)
def test_the_hpa_warns_once_a_sync_of_what_it_cannot_do(tmp_path, fault, before, target, expected, condition):
    srv = serve(fault)
    api_client = official_client(srv, tmp_path)
    try:
        core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
        autoscaling = client.AutoscalingV2Api(api_client)
        if before is not None:
            before(srv, apps)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa(target))
        srv.world.advance(TICKS_PER_SYNC)
        pod = first_pod_without_cpu_request(core) if before is drop_cpu_request else ""
        want = {reason: message.format(pod=pod) for reason, message in expected.items()}
        assert {r: m for r, (m, _) in warnings(core).items()} == want
        ctype, *rest = condition
        assert conditions(autoscaling)[ctype] == tuple(x.format(pod=pod) for x in rest)
        assert apps.read_namespaced_deployment("web", NS).spec.replicas == 2  # nothing scaled
        srv.world.advance(2 * TICKS_PER_SYNC)
        assert {r: c for r, (_, c) in warnings(core).items()} == dict.fromkeys(want, 3)  # one a sync, counted
    finally:
        api_client.close()
        srv.stop()


def test_a_failed_scale_update_is_a_failed_rescale_event(tmp_path, monkeypatch):
    """The apiserver refusing the scale (a conflict: a fault the store does not make on demand,
    hence the stand-in) is a FailedRescale in kube-controller-manager's words, AbleToScale False."""
    srv = serve()
    api_client = official_client(srv, tmp_path)
    try:
        def refuse(*args, **kwargs):
            raise K.KubeApiError(409, CONFLICT)

        monkeypatch.setattr(srv.world.store, "update_scale", refuse)
        autoscaling = client.AutoscalingV2Api(api_client)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa())
        srv.world.advance(TICKS_PER_SYNC)
        [(message, count)] = [v for r, v in warnings(client.CoreV1Api(api_client)).items() if r == "FailedRescale"]
        # 75 % against 30 %: 5 pods, capped by the legacy scale-up limit at 4
        assert message == ("New size: 4; reason: cpu resource utilization (percentage of request) above target; "
                           f"error: {CONFLICT}") and count == 1
        assert conditions(autoscaling)["AbleToScale"] == (
            "False", "FailedUpdateScale", f"the HPA controller was unable to update the target scale: {CONFLICT}")
    finally:
        api_client.close()
        srv.stop()
