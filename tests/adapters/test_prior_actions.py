"""KubernetesCluster.prior_actions: the applied actions read back from Setpoint's own Events (a
new leader's status shows its predecessor's last action), through the official client against
sim serve's Kubernetes API. Events this adapter writes round-trip; those of older versions
(restarts without "(policy NAME)") read too; anything that is not an applied action of Setpoint's
is not one: a refusal, a rollout hold, the HPA's rescale, a message of another shape."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from kubernetes import client

from controller.model import Action, ActionKind, TargetRef
from controller.ports import PriorAction
from tests.adapters.kube_helpers import api_client, official_client, server  # noqa: F401 (fixtures)
from tests.adapters.test_kubernetes_adapter import WEB, make_cluster

AT = datetime(2026, 5, 28, 20, 26, 40, tzinfo=timezone.utc)
API = TargetRef("shop", "api")


def event(reason: str, message: str, *, kind: str = "Deployment", name: str = "web", event_type: str = "Normal",
          source: str = "setpoint") -> dict:
    """An Event as the adapter's recorder writes one (reportingInstance: the writer's host)."""
    stamp = AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"generateName": f"{name}."}, "involvedObject": {"apiVersion": "apps/v1", "kind": kind,
                                                                         "name": name, "namespace": "shop"},
            "reason": reason, "message": message, "type": event_type, "source": {"component": source},
            "reportingComponent": source, "reportingInstance": "setpoint-7d9f-x2k", "firstTimestamp": stamp,
            "lastTimestamp": stamp, "count": 1}


def prior(action: str, reason: str, steps=(None, None), policy: str = "", target: TargetRef = WEB) -> PriorAction:
    return PriorAction(target, action, reason, AT.timestamp(), *steps, policy=policy, by="setpoint-7d9f-x2k")


@pytest.mark.parametrize("written, read", [
    pytest.param(event("SuccessfulRescale", "New size: 5; reason: ScaleUp; replicas 3 -> 5 (policy web)"),
                 prior("scale", "ScaleUp", (3, 5), "web"), id="scale"),
    pytest.param(event("SuccessfulRescale", "New size: 2; reason: RateLimitedDown; replicas 3 -> 2"),
                 prior("scale", "RateLimitedDown", (3, 2)), id="scale-without-its-policy"),
    pytest.param(event("PodRestarted", "Deleted pod web-1 so that it is recreated; reason: memory"),
                 prior("restart-pod", "memory"), id="an-older-versions-restart"),
    pytest.param(event("RolloutRestarted", "Rolling restart (restartedAt 2026-05-28T20:26:40Z); reason: "
                                           "errors (policy heal)"),
                 prior("rolling-restart", "errors", policy="heal"), id="rolling-restart"),
    pytest.param(event("RolledBack", "Rolled back from revision 4 to revision 3; reason: error-ratio (policy heal)",
                       name="api"), prior("rollback", "error-ratio", policy="heal", target=API), id="rollback"),
    pytest.param(event("SuccessfulRescale", "New size: 3; reason: ScaleUp; replicas 2 -> 3", kind="StatefulSet"),
                 prior("scale", "ScaleUp", (2, 3), target=TargetRef("shop", "web", "StatefulSet")),
                 id="a-statefulset"),
    pytest.param(event("ActionRefused", "scale refused (forbidden)", event_type="Warning"), None,
                 id="a-refusal-is-no-action"),
    pytest.param(event("RolloutPaused", "Paused the rollout; reason: canary"), None, id="a-rollout-hold-is-not"),
    pytest.param(event("SuccessfulRescale", "New size: 4; reason: cpu above target", kind="HorizontalPodAutoscaler",
                       source="horizontal-pod-autoscaler"), None, id="the-hpas-rescale-is-not-setpoints"),
    pytest.param(event("SuccessfulRescale", "New size: 4; reason: ScaleUp; replicas 3 -> 5"), None,
                 id="a-message-that-contradicts-itself"),
    pytest.param(event("SuccessfulRescale", "scaled"), None, id="a-message-of-another-shape"),
])
def test_events_read_back_as_applied_actions(written, read, server, api_client, tmp_path):  # noqa: F811
    client.CoreV1Api(api_client).create_namespaced_event("shop", written)
    kc = make_cluster(server, tmp_path)
    try:
        found = kc.prior_actions(["shop"])
    finally:
        kc.close()
    assert (found.actions, found.problems) == (() if read is None else (read,), ())


def test_the_events_it_writes_read_back(server, tmp_path):  # noqa: F811
    """Writer and reader agree: each action the adapter applies comes back, with this host as the
    writer; one list request per namespace (an empty one included)."""
    kc = make_cluster(server, tmp_path)
    try:
        pod = kc.observe([WEB]).statuses[0].pods[0].name
        kc.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=4, from_replicas=2, policy="web"))
        kc.apply(Action(ActionKind.RESTART_POD, WEB, "memory", pod=pod, policy="heal"))
        kc.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck", policy="heal"))
        kc.apply(Action(ActionKind.ROLLBACK, WEB, "ErrorRatioHigh", policy="heal"))
        kc.events.flush()
        server.api.requests.reset()
        found = kc.prior_actions(["shop", "empty"])
    finally:
        kc.close()
    assert sorted((a.target, a.action, a.from_replicas, a.to_replicas, a.reason, a.policy) for a in found.actions) == [
        (WEB, "restart-pod", None, None, "memory", "heal"), (WEB, "rollback", None, None, "ErrorRatioHigh", "heal"),
        (WEB, "rolling-restart", None, None, "Stuck", "heal"), (WEB, "scale", 2, 4, "ScaleUp", "web")]
    assert all(a.by == kc.events.instance for a in found.actions), found.actions
    assert server.api.requests.count("GET", r"/events$") == 2 and found.problems == ()


def test_a_namespace_it_cannot_list_is_a_problem_not_an_error(server, tmp_path):  # noqa: F811
    kc = make_cluster(server, tmp_path)
    client.CoreV1Api(official_client(server, tmp_path)).create_namespaced_event(
        "shop", event("SuccessfulRescale", "New size: 3; reason: ScaleUp; replicas 2 -> 3 (policy web)"))
    server.api.faults.inject(r"/namespaces/other/events$", status=403, method="GET", message="events is forbidden")
    try:
        found = kc.prior_actions(["other", "shop"])
    finally:
        kc.close()
    assert [a.target for a in found.actions] == [WEB]
    assert found.problems == ("list Events in other: HTTP 403: events is forbidden",), found.problems


@pytest.mark.parametrize("events, problem", [
    pytest.param(6, False, id="three-pages-read-whole"),
    pytest.param(7, True, id="more-than-the-pages-read-the-rest-said"),
])
def test_the_read_follows_continue_tokens_up_to_its_page_cap(server, api_client, tmp_path, monkeypatch, events,
                                                              problem):  # noqa: F811
    """Pages of 2, at most 3 of them (the caps made small): sim serve chunks the list as the
    apiserver does, and the read follows its tokens; a namespace with more says so."""
    from controller.adapters import kubernetes as adapter

    monkeypatch.setattr(adapter, "PRIOR_EVENT_PAGE", 2)
    monkeypatch.setattr(adapter, "PRIOR_EVENT_PAGES", 3)
    core = client.CoreV1Api(api_client)
    for k in range(events):
        core.create_namespaced_event("shop", event("SuccessfulRescale", f"New size: {k + 3}; reason: ScaleUp; "
                                                                         f"replicas {k + 2} -> {k + 3} (policy web)"))
    kc = make_cluster(server, tmp_path)
    server.api.requests.reset()
    try:
        found = kc.prior_actions(["shop"])
    finally:
        kc.close()
    assert server.api.requests.count("GET", r"/events$") == 3
    assert len(found.actions) == 6
    assert found.problems == (("list Events in shop: more than 6 Events of setpoint; the rest not read",) if problem
                              else ())
