"""End to end, a StatefulSet policy rehearsed as a user would: `setpoint sim serve` of a scenario
whose service says ``kind: StatefulSet``, a real Prometheus scraping it, `setpoint run` with a
policy targeting ``kind: StatefulSet`` whose query selects and groups by the ``statefulset`` label
(kube-state-metrics' convention, matched per kind by default), all separate processes on loopback.

Timeline (simulated seconds = wall seconds since the scenario clock started): 100 rps until 15 s, 800
rps until 60 s, then 100 rps. The controller scales the StatefulSet up through its scale
subresource; its pods come one at a time, web-2, web-3, ... in ordinal order; once the load drops
it scales down and the highest ordinals go, leaving web-0 and web-1. Every wait is bounded.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.kube_reads import api_client
from tests.e2e.test_live_loop import POLICY as LIVE_POLICY
from tests.e2e.test_live_loop import SCENARIO, running_world, wait_until

# its pods exit at once (2 s of grace): the StatefulSet waits out no 30 s a pod of its scale-down
STS_SCENARIO = SCENARIO.replace("    - name: web\n", "    - name: web\n      kind: StatefulSet\n      terminationGracePeriod: 2s\n")
# Written as for a cluster with kube-state-metrics' labels: the StatefulSet's series carry its name in
# `statefulset` (sim serve's pods' too), the label `setpoint run` matches a StatefulSet by by default.
POLICY = LIVE_POLICY.replace("name: e2e-web", "name: e2e-sts").replace("kind: Deployment", "kind: StatefulSet").replace(
    'sum by (namespace, deployment) (rate(http_requests_total{namespace="default"}[10s]))',
    'sum by (namespace, statefulset) (rate(http_requests_total{namespace="default", statefulset="web"}[10s]))')
assert "kind: StatefulSet" in POLICY and "e2e-sts" in POLICY and 'statefulset="web"' in POLICY
assert "deployment" not in POLICY


def statefulset(kubeconfig: Path):
    from kubernetes import client

    api = api_client(kubeconfig)
    sts = client.AppsV1Api(api).read_namespaced_stateful_set("web", "default", _request_timeout=5)
    pods = client.CoreV1Api(api).list_namespaced_pod("default", label_selector="app=web", _request_timeout=5).items
    # the pods not terminating (a removed pod stays listed, terminating, for its grace period)
    return sts, sorted(p.metadata.name for p in pods if p.metadata.deletion_timestamp is None)


def test_a_statefulset_policy_scales_the_simulated_statefulset_in_ordinal_order(tmp_path):
    assert STS_SCENARIO != SCENARIO
    with running_world(tmp_path, STS_SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]
        seen = []

        def scaled_up():
            sts, pods = statefulset(kc)
            seen.append(pods)
            return sts.spec.replicas >= 7 and sts.status.ready_replicas == sts.spec.replicas and sts

        sts = wait_until(scaled_up, 60, what="the StatefulSet scaled up to ~8 and every pod Ready")
        assert run.alive(), run.tail()
        assert seen[-1] == sorted(f"web-{k}" for k in range(sts.spec.replicas))
        # pods came one at a time: never a gap in the ordinals, never more than one pod not listed yet
        assert all(pods == sorted(f"web-{k}" for k in range(len(pods))) for pods in seen), seen

        def scaled_down():
            sts, pods = statefulset(kc)
            return sts.spec.replicas <= 3 and pods == sorted(f"web-{k}" for k in range(sts.spec.replicas)) and pods

        assert wait_until(scaled_down, 60, what="the scale-down, highest ordinals first")[:2] == ["web-0", "web-1"]
        assert run.stop() == 0, run.tail()
        assert "e2e-sts" in (tmp_path / "decisions.jsonl").read_text()
