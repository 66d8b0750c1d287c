"""sim serve refuses an HPA the apiserver refuses (pkg/apis/autoscaling/validation): a 422 naming
the field with the apiserver's cause. It stored a Utilization target without averageUtilization
(a typo'd `averageUtilizaton` accepted under --validate=warn), which `kubectl get hpa` then
showed as `cpu: <unknown>/?`; a missing maxReplicas read `Invalid value: null` where the
apiserver says 0 (found by a walkthrough). Through the official client's transport."""

from __future__ import annotations

import copy

import pytest

from tests.adapters.test_field_validation import NS, send, sim  # noqa: F401 (fixture)

PATH = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
GOOD = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 2, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 60}}}]}}
TARGET = "spec.metrics[0].resource.target"


def changed(edit) -> dict:
    body = copy.deepcopy(GOOD)
    edit(body["spec"])
    return body


def target(**fields):
    return lambda spec: spec["metrics"][0]["resource"].update(target=fields)


@pytest.mark.parametrize("body, field, cause", [
    pytest.param(GOOD, None, None, id="valid"),
    pytest.param(changed(target(type="Utilization")), f"{TARGET}.averageUtilization",
                 "Required value: must set either a target raw value or a target utilization",
                 id="utilization-without-its-value"),
    pytest.param(changed(target(type="Utilization", averageUtilization=60, averageValue="500m")),
                 f"{TARGET}.averageValue", "Forbidden: may not set both a target raw value and a target utilization",
                 id="both-values"),
    pytest.param(changed(target(averageUtilization=60)), f"{TARGET}.type",
                 "Required value: must specify a metric target type", id="no-target-type"),
    pytest.param(changed(target(type="Percent", averageUtilization=60)), f"{TARGET}.type",
                 'Invalid value: "Percent": must be either Utilization, Value, or AverageValue', id="a-wrong-target-type"),
    pytest.param(changed(target(type="Utilization", averageUtilization=0)), f"{TARGET}.averageUtilization",
                 "Invalid value: 0: must be greater than 0", id="zero-utilization"),
    pytest.param(changed(lambda spec: spec.pop("maxReplicas")), "spec.maxReplicas",
                 "Invalid value: 0: must be greater than or equal to 1", id="no-max-replicas-reads-as-0"),
    pytest.param(changed(lambda spec: spec["metrics"][0].pop("resource")), "spec.metrics[0].resource",
                 "Required value: must populate information for the given metric source", id="no-source"),
    pytest.param(changed(lambda spec: spec["metrics"][0].update(type="Custom")), "spec.metrics[0].type",
                 'Unsupported value: "Custom": supported values: "Resource", "ContainerResource", "Pods", "Object", '
                 '"External"', id="an-unknown-source"),
])
def test_an_hpa_the_apiserver_refuses_is_refused(sim, body, field, cause):  # noqa: F811
    srv, api_client = sim
    status, answer, _ = send(api_client, "POST", PATH, body)
    if field is None:
        assert status == 201, answer
        return
    assert status == 422 and answer["reason"] == "Invalid", answer
    assert answer["message"] == f'HorizontalPodAutoscaler.autoscaling "web" is invalid: {field}: {cause}'
    assert answer["details"]["causes"][0]["field"] == field
    status, _, _ = send(api_client, "GET", f"{PATH}/web", None)
    assert status == 404  # nothing stored
