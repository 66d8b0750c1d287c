"""autoscaling/v1 HPAs in sim serve: converted to and from the stored v2 form as the apiserver's
conversion does (pkg/apis/autoscaling/v1/conversion.go), and served through the real client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from simulators.kubeapi import hpa_v1
from simulators.kubeapi.objects import KubeApiError
from tests.adapters.kube_helpers import api_client, server  # noqa: F401

REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
CPU70 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
RPS = {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "50"}}}
BEHAVIOR = {"scaleDown": {"stabilizationWindowSeconds": 600}}


def v2(metrics=None, behavior=None, status=None, annotations=None) -> dict:
    spec = {"scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 9}
    if metrics is not None:
        spec["metrics"] = metrics
    if behavior:
        spec["behavior"] = behavior
    obj = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
           "metadata": {"name": "web", **({"annotations": annotations} if annotations else {})}, "spec": spec}
    if status:
        obj["status"] = status
    return obj


# (name, stored v2 object, what its v1 form must hold)
ROUND_TRIPS = [
    ("a CPU target", v2([CPU70]), {"targetCPUUtilizationPercentage": 70}),
    ("a pods metric beside CPU", v2([CPU70, RPS]), {"targetCPUUtilizationPercentage": 70,
                                                    hpa_v1.METRICS_ANNOTATION: [RPS]}),
    ("no CPU metric", v2([RPS]), {hpa_v1.METRICS_ANNOTATION: [RPS]}),
    ("a behavior", v2([CPU70], BEHAVIOR), {hpa_v1.BEHAVIOR_ANNOTATION: BEHAVIOR}),
    ("a user's own annotation", v2([CPU70], annotations={"team": "shop"}), {"team": "shop"}),
    ("a status with CPU in use", v2([CPU70], status={
        "currentReplicas": 3, "desiredReplicas": 4,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 91}}}],
        "conditions": [{"type": "AbleToScale", "status": "True"}]}),
     {"currentCPUUtilizationPercentage": 91, hpa_v1.CONDITIONS_ANNOTATION: [{"type": "AbleToScale", "status": "True"}]}),
]


def _v1_fields(obj: dict) -> dict:
    """The v1 spec/status fields and annotations a row checks (annotations decoded)."""
    out = {k: v for part in ("spec", "status") for k, v in (obj.get(part) or {}).items()}
    for key, value in ((obj.get("metadata") or {}).get("annotations") or {}).items():
        out[key] = json.loads(value) if key in hpa_v1.ROUND_TRIP else value
    return out


@pytest.mark.parametrize("name, stored, expect", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_v2_to_v1_and_back_loses_nothing(name, stored, expect):
    as_v1 = hpa_v1.to_v1(stored)
    assert as_v1["apiVersion"] == "autoscaling/v1" and "metrics" not in as_v1["spec"]
    fields = _v1_fields(as_v1)
    assert {k: fields.get(k) for k in expect} == expect
    assert hpa_v1.to_v2(as_v1) == stored  # the round trip restores the stored object exactly


def test_a_v1_hpa_without_a_cpu_target_gets_the_default_80_percent():
    sent = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": REF, "maxReplicas": 5}}
    assert hpa_v1.to_v2(sent)["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


# (name, v1 object sent, status code, words of the message)
REFUSED = [
    ("CPU target 0", {"spec": {"scaleTargetRef": REF, "maxReplicas": 5, "targetCPUUtilizationPercentage": 0}},
     422, "spec.targetCPUUtilizationPercentage"),
    ("CPU target a string", {"spec": {"scaleTargetRef": REF, "maxReplicas": 5, "targetCPUUtilizationPercentage": "70"}},
     422, "spec.targetCPUUtilizationPercentage"),
    ("metrics annotation not JSON", {"metadata": {"annotations": {hpa_v1.METRICS_ANNOTATION: "[{"}},
                                     "spec": {"scaleTargetRef": REF, "maxReplicas": 5}}, 400, hpa_v1.METRICS_ANNOTATION),
    ("metrics annotation a number", {"metadata": {"annotations": {hpa_v1.METRICS_ANNOTATION: "5"}},
                                     "spec": {"scaleTargetRef": REF, "maxReplicas": 5}}, 400, "a JSON list of objects"),
    ("behavior annotation a list", {"metadata": {"annotations": {hpa_v1.BEHAVIOR_ANNOTATION: "[]"}},
                                    "spec": {"scaleTargetRef": REF, "maxReplicas": 5}}, 400, "a JSON object"),
]


@pytest.mark.parametrize("name, sent, code, words", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_v1_hpa_that_cannot_be_converted_is_refused(name, sent, code, words):
    with pytest.raises(KubeApiError) as err:
        hpa_v1.to_v2({"metadata": {"name": "web"}, **sent} if "metadata" not in sent else sent, "web")
    assert err.value.code == code and words in json.dumps(err.value.status())


def test_one_hpa_through_both_versions_of_the_real_client(api_client):
    v1 = client.AutoscalingV1Api(api_client)
    body = {"metadata": {"name": "web-hpa"}, "spec": {"scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 9,
                                                      "targetCPUUtilizationPercentage": 65}}
    created = v1.create_namespaced_horizontal_pod_autoscaler("shop", body)
    assert created.spec.target_cpu_utilization_percentage == 65
    [seen] = client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler("shop").items
    assert seen.spec.metrics[0].resource.target.average_utilization == 65
    patched = v1.patch_namespaced_horizontal_pod_autoscaler("web-hpa", "shop", {"spec": {"maxReplicas": 12}})
    assert patched.spec.max_replicas == 12 and patched.spec.target_cpu_utilization_percentage == 65
    stale = {**body, "metadata": {"name": "web-hpa", "resourceVersion": created.metadata.resource_version}}
    with pytest.raises(ApiException) as err:  # the precondition holds across versions
        v1.replace_namespaced_horizontal_pod_autoscaler("web-hpa", "shop", stale)
    assert err.value.status == 409
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    assert [v.version for v in groups["autoscaling"].versions] == ["v2", "v1"]
    assert groups["autoscaling"].preferred_version.version == "v2"
    v1.delete_namespaced_horizontal_pod_autoscaler("web-hpa", "shop")
    assert client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler("shop").items == []

