"""A workload a HorizontalPodAutoscaler also scales is left alone by a scaling policy, and said once.

The real ``kubernetes`` client talks to the simulated API server, which stores HPAs as the real
one does (no HPA controller acts on them there); its fault hooks make the HPA list fail.
"""

from __future__ import annotations

import logging

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.dryrun import DryRunCluster
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import POLICY, scale_writes

HPA_PATH = r"/horizontalpodautoscalers$"
HEALTH_ONLY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web-health}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  health:
    checks:
      - name: overloaded
        query: offered
        unhealthy: {above: 1000000000, for: 30s}
        action: rollback
"""


def hpa(name: str, kind: str = "Deployment", target: str = "web", owner: str | None = None) -> dict:
    """An HPA; ``owner``: the name of the KEDA ScaledObject that controls it, as KEDA makes one."""
    metadata: dict = {"name": name}
    if owner is not None:
        metadata["ownerReferences"] = [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": owner,
                                        "uid": "0d6c1a4e-3b1f-4d2c-9a57-4f1c2a9e8b11", "controller": True,
                                        "blockOwnerDeletion": True}]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata,
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                     "minReplicas": 1, "maxReplicas": 10}}


def reconciler(server, tmp_path, text=POLICY, rehearse=False):
    [policy] = load_policy_text(text, "web.yaml")
    world = server.world
    world.advance(3)
    metrics = SimMetrics(world.engine, {"offered": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    api_client = official_client(server, tmp_path)
    cluster = KubernetesCluster(api_client, qps=0, max_retries=1, retry_backoff_s=0.01, request_timeout_s=1.0)
    rec = Reconciler(RuntimePolicy.of(policy), metrics, DryRunCluster(cluster) if rehearse else cluster)
    return rec, cluster, client.AutoscalingV2Api(api_client)


def events(server, reason: str) -> list[str]:
    return [e["message"] for e in server.world.store.events.items.values() if e.get("reason") == reason]


def spec_of(server, name: str = "web") -> int:
    engine = server.world.engine
    return int(engine.spec_replicas[engine.index(name)])


DELETE_THE_HPA = "delete the HPA"


@pytest.mark.parametrize("hpas, left_alone, hand_over", [
    pytest.param([("web-hpa", "Deployment", "web", None)], True, DELETE_THE_HPA, id="an-hpa-on-the-deployment"),
    pytest.param([("keda-hpa-web", "Deployment", "web", None), ("web-hpa", "Deployment", "web", None)], True,
                 DELETE_THE_HPA, id="two-hpas-the-first-named"),
    # KEDA re-creates the HPA it owns at once: 'delete the HPA' handed nothing over
    pytest.param([("keda-hpa-orders", "Deployment", "web", "orders")], True,
                 "delete the ScaledObject (kubectl delete scaledobject orders -n shop), not the HPA: its owner "
                 "re-creates it", id="the-hpa-of-a-keda-scaledobject"),
    pytest.param([("web-hpa", "StatefulSet", "web", None)], False, None, id="an-hpa-on-a-statefulset-of-that-name"),
    pytest.param([("api-hpa", "Deployment", "api", None)], False, None, id="an-hpa-on-another-deployment"),
    pytest.param([], False, None, id="no-hpa"),
])
def test_a_workload_an_hpa_scales_is_left_alone(server, tmp_path, caplog, hpas, left_alone, hand_over):
    rec, cluster, autoscaling = reconciler(server, tmp_path)
    for name, kind, target, owner in hpas:
        autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", hpa(name, kind, target, owner))
    caplog.set_level(logging.WARNING, logger="setpoint.runtime")
    before = scale_writes(server)
    result = rec.cycle(server.world.engine.now)  # 150 rps at 30 per replica: 2 -> 5 wanted
    assert result.hpa_scaled == int(left_alone)
    assert [t.name for t in result.targets] == ([] if left_alone else ["web"])
    assert scale_writes(server) - before == (0 if left_alone else 1)
    assert spec_of(server) == (2 if left_alone else 5)
    cluster.close()
    said = [r.getMessage() for r in caplog.records if "also scales" in r.getMessage()]
    if left_alone:
        owned = f" (the HPA of ScaledObject {hpas[0][3]})" if hpas[0][3] else ""
        assert said == ["HorizontalPodAutoscaler shop/" + hpas[0][0] + " also scales Deployment shop/web" + owned +
                        ": policy web leaves it alone while the HPA exists (two autoscalers would scale it against each "
                        "other); to move it to Setpoint, compare the two with setpoint run --shadow, then " + hand_over]
        assert events(server, "ScaledByHPA") == said
    else:
        assert said == [] and events(server, "ScaledByHPA") == []


def test_said_once_then_taken_over_when_the_hpa_is_deleted(server, tmp_path, caplog):
    rec, cluster, autoscaling = reconciler(server, tmp_path)
    autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", hpa("web-hpa"))
    telemetry = Telemetry()
    rec.on_cycle = telemetry.observe_cycle
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    now = server.world.engine.now
    for k in range(3):
        assert rec.cycle(now + 15 * k).targets == []
    assert telemetry.registry.get_sample_value("setpoint_hpa_scaled_targets", {"policy": "web"}) == 1
    assert spec_of(server) == 2
    autoscaling.delete_namespaced_horizontal_pod_autoscaler("web-hpa", "shop")
    result = rec.cycle(now + 45)
    assert [a.replicas for a in result.actions] == [5] and spec_of(server) == 5
    assert telemetry.registry.get_sample_value("setpoint_hpa_scaled_targets", {"policy": "web"}) == 0
    cluster.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("also scales" in m for m in messages) == 1 and len(events(server, "ScaledByHPA")) == 1
    assert "the HorizontalPodAutoscaler of Deployment shop/web is gone: policy web scales it from now on" in messages


def test_a_rehearsal_goes_on_deciding_and_says_what_a_real_run_would_do(server, tmp_path, caplog):
    rec, cluster, autoscaling = reconciler(server, tmp_path, rehearse=True)
    autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", hpa("web-hpa"))
    telemetry = Telemetry()
    rec.on_cycle = telemetry.observe_cycle
    caplog.set_level(logging.WARNING, logger="setpoint.runtime")
    before = scale_writes(server)
    result = rec.cycle(server.world.engine.now)
    assert [a.replicas for a in result.actions] == [5] and result.hpa_scaled == 1  # would scale, for the comparison
    # none left alone: a shadow run beside its HPA (days, by design) raised SetpointWorkloadScaledByHPA
    assert telemetry.registry.get_sample_value("setpoint_hpa_scaled_targets", {"policy": "web"}) == 0
    assert scale_writes(server) == before and spec_of(server) == 2
    cluster.close()
    [said] = [r.getMessage() for r in caplog.records if "also scales" in r.getMessage()]
    assert "a real run of policy web would leave it alone while the HPA exists" in said


def test_when_hpas_cannot_be_listed_the_last_list_stands_and_it_is_said_once(server, tmp_path, caplog):
    rec, cluster, autoscaling = reconciler(server, tmp_path)
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    now = server.world.engine.now
    server.api.faults.inject(HPA_PATH, status=403, times=4, method="GET")  # RBAC without the new rule
    result = rec.cycle(now)
    assert [a.replicas for a in result.actions] == [5], "a failed check must not stop scaling"
    autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", hpa("web-hpa"))
    server.api.faults.clear()
    assert rec.cycle(now + 15).targets == []  # listed again: seen
    server.api.faults.inject(HPA_PATH, status=503, times=4, method="GET")  # retried once, then failing
    assert rec.cycle(now + 30).targets == [] and rec.cycle(now + 45).targets == []  # still known
    cluster.close()
    failures = [r.getMessage() for r in caplog.records if "cannot check for HorizontalPodAutoscalers" in r.getMessage()]
    assert len(failures) == 2, failures  # once per kind of failure, not every cycle
    assert "HTTP 403" in failures[0] and "grant list on horizontalpodautoscalers.autoscaling" in failures[0]
    assert "HTTP 503" in failures[1] and "1 known from before" in failures[1]


@pytest.mark.parametrize("text", [
    pytest.param(HEALTH_ONLY, id="with-replica-bounds"),
    # a health-only policy that never scales needs no bounds (spec.replicas was required)
    pytest.param(HEALTH_ONLY.replace("  replicas: {min: 2, max: 20}\n", ""), id="without-replica-bounds"),
])
def test_a_health_only_policy_never_lists_hpas(server, tmp_path, text):
    rec, cluster, autoscaling = reconciler(server, tmp_path, text=text)
    autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", hpa("web-hpa"))
    before = server.api.requests.count("GET", HPA_PATH)
    result = rec.cycle(server.world.engine.now)
    assert [t.name for t in result.targets] == ["web"] and result.hpa_scaled == 0
    assert server.api.requests.count("GET", HPA_PATH) == before
    cluster.close()


def test_an_hpa_that_cannot_be_listed_is_told_by_its_writes_and_left_alone(server, tmp_path, caplog):
    """RBAC without list on HPAs from the first cycle on: nothing was known, so the policy scaled web
    beside its HPA (max 3) and the HPA's writes were taken as a take-over's: 5, 3, 5, 3, ... every
    15 s with one 'cannot check' line. Now the HPA's revert of a write tells it: one more write in
    that cycle, then web is left alone, said once; a list that works again says whether it still is."""
    rec, cluster, autoscaling = reconciler(server, tmp_path)
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    server.api.faults.inject(HPA_PATH, status=403, times=1000, method="GET")
    autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", {**hpa("web-hpa"), "spec": {
        **hpa("web-hpa")["spec"], "maxReplicas": 3}})
    before, now, seen = scale_writes(server), server.world.engine.now, []
    for k in range(5):
        result = rec.cycle(now + 15 * k)
        seen.append((spec_of(server), [t.name for t in result.targets]))
        server.world.advance(3)  # one HPA sync (15 s): kube-controller-manager sets 3
    assert scale_writes(server) - before == 2, seen
    assert seen == [(5, ["web"]), (5, ["web"]), (3, []), (3, []), (3, [])]
    said = [r.getMessage() for r in caplog.records if "a HorizontalPodAutoscaler's writer" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(
        "kube-controller-manager (a HorizontalPodAutoscaler's writer) changed spec.replicas of Deployment shop/web "
        "after policy web wrote it, and the HPAs of shop cannot be listed (list HorizontalPodAutoscalers in shop: "
        "HTTP 403") and said[0].endswith(
        "policy web leaves it alone until they can (two autoscalers would scale it against each other); grant list "
        "on horizontalpodautoscalers.autoscaling (as deploy/ does), or delete the HPA"), said
    assert events(server, "ScaledByHPA") == said
    server.api.faults.clear()  # listed again: the HPA itself, by name
    assert rec.cycle(now + 75).targets == [] and [h.name for h in rec.hpa_guard.scaled_by.values()] == ["web-hpa"]
    autoscaling.delete_namespaced_horizontal_pod_autoscaler("web-hpa", "shop")
    assert [t.name for t in rec.cycle(now + 90).targets] == ["web"]  # taken over once the list shows it gone
    cluster.close()
