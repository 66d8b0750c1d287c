"""End to end, the restart of one hung pod: `setpoint sim serve` of a scenario whose pod-hang fault
makes one of web's 4 pods hang (not Ready, serving nothing, no restart) while the others serve, a
real Prometheus scraping it, `setpoint run` with the shipped healing policy
(policies/setpoint-healing.yaml) plus a per-pod not-Ready check (as statefulset-healing.yaml has:
the shipped Deployment policy has none, so alone it leaves the hung pod be), and the real kubectl.
Separate processes on loopback; every wait is bounded.

Timeline (wall s since sim serve started, speed 1): 180 rps on 4 pods of 150 (45 a pod, 60 on the 3 that serve: under the
policy's 70: no scaling); one pod hangs at 10 s; the check fires after 10 s not Ready; Setpoint
deletes that pod; its ReplicaSet's replacement is Ready 3 s later; the other 3 pods are untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_live_loop import running_world, wait_until
from tests.e2e.test_statefulset_heal_live import health_records, kubectl
from tests.adapters.test_kubectl import KUBECTL

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

HEALING = (Path(__file__).resolve().parents[2] / "policies" / "setpoint-healing.yaml").read_text()
NOT_READY_CHECK = """\
      - name: not-ready
        query: max by (namespace, pod) (kube_pod_status_ready{condition="false"})
        scope: pod
        unhealthy: {above: 0.5, for: 10s}
        recovered: {below: 0.5, for: 4s}
        action: restart-pod
"""
POLICY = HEALING.replace("    budgets:", NOT_READY_CHECK + "    budgets:", 1)

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-pod-hang}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: web
      capacityPerPod: 150
      startupDelay: 3s
      schedulingDelay: 0s
      initialReplicas: 4
      maxPods: 20
      load: [{constant: {rps: 180}}]
  faults:
    - {name: stuck, kind: pod-hang, at: 10s, services: [web]}
"""


def pods(kc, home) -> dict[str, bool]:
    """web's pods: name -> Ready."""
    items = json.loads(kubectl(kc, home, "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    return {p["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in p["status"].get("conditions", [])) for p in items}


def test_the_healing_policy_restarts_the_hung_pod_and_only_it(tmp_path):
    assert POLICY != HEALING and "action: restart-pod" in HEALING
    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]
        before = wait_until(lambda: len(p := pods(kc, tmp_path)) == 4 and all(p.values()) and p, 20,
                            what="web's 4 pods Ready")

        def hung() -> list[str]:
            now = pods(kc, tmp_path)
            return [n for n, ready in now.items() if not ready and n in before]

        [stuck] = wait_until(hung, 30, what="one pod hung")
        assert sorted(n for n, ready in pods(kc, tmp_path).items() if ready) == sorted(set(before) - {stuck})

        def healed():
            now = pods(kc, tmp_path)
            return stuck not in now and len(now) == 4 and all(now.values()) and now

        after = wait_until(healed, 90, what="the hung pod restarted and its replacement Ready")
        assert set(before) - {stuck} <= set(after)  # the pods that served are the same pods
        assert run.alive(), run.tail()
    restarts = [h for h in health_records(tmp_path) if h["action"]]
    assert [(h["action"], h["restart_pods"]) for h in restarts] == [("restart-pod", [f"default/{stuck}"])], restarts
    assert "action failed" not in (tmp_path / "run.log").read_text()
