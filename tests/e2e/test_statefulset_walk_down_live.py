"""End to end, a StatefulSet's scale-down with a hung pod at a condemned ordinal and one below the
new count, as an operator runs it: `setpoint sim serve` of a StatefulSet (OrderedReady), a real
Prometheus scraping it, `setpoint run` with a health-only policy (a per-pod not-Ready check,
restart-pod), and the real kubectl's ``scale``; separate processes on loopback.

Timeline (wall s since the scenario clock started, speed 1): web has 6 pods; web-5 hangs at 4 s, web-1 at
30 s (pod-hang faults naming them); once web-1 is hung the operator scales web to 4: web-4 and web-5
are condemned, and the StatefulSet controller removes them only once every pod it keeps is Ready,
so web-1 holds the walk down. web-5's check fires first (30 s not Ready, Setpoint running since
before the clock started: by about 36 s, after the scale): it is not restarted
(CondemnedPodNotRestarted: its restart would be its removal, charged to the budget); web-1's fires
at about 60 s: it is restarted (it comes back under its name, Ready 3 s later); then the controller
removes web-5 and web-4, and web-0..3 serve. web-1 hangs that late so that Setpoint sees web-5
firing alone first (with both hung from its first cycle, both fire together: web-1 is restarted,
web-5 left out, and nothing says CondemnedPodNotRestarted). Every wait is bounded.
"""

from __future__ import annotations


import pytest

from tests.adapters.test_kubectl import KUBECTL
from tests.e2e.test_live_loop import running_world, wait_until
from tests.e2e.test_pod_hang_live import pods, pods_kubectl_shows
from tests.e2e.test_statefulset_heal_live import health_records, kubectl, kubectl_get

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-sts-walk-down-hang}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      kind: StatefulSet
      terminationGracePeriod: 2s   # its pods exit at once: the StatefulSet waits out no 30 s a pod
      capacityPerPod: 150
      startupDelay: 3s
      schedulingDelay: 0s
      initialReplicas: 6
      maxPods: 20
      load: [{constant: {rps: 300}}]
  faults:
    - {name: condemned-hangs, kind: pod-hang, at: 4s, pod: web-5}
    - {name: kept-hangs, kind: pod-hang, at: 30s, pod: web-1}
"""

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: e2e-sts-walk-down}
spec:
  targets: {kind: StatefulSet, namespace: default, names: [web]}
  interval: 2s
  health:
    checks:
      - name: not-ready
        query: max by (namespace, pod) (kube_pod_status_ready{condition="false"})
        scope: pod
        unhealthy: {above: 0.5, for: 30s}
        recovered: {below: 0.5, for: 4s}
        action: restart-pod
    budgets: {restartsPerHour: 6, maxUnavailable: 25%}
"""


def test_a_hung_pod_the_scale_down_removes_is_not_restarted_a_kept_one_is(tmp_path):
    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]
        wait_until(lambda: not (p := pods(kc)).get("web-1", True) and not p["web-5"], 45,
                   what="web-5 and web-1 hung")
        assert "scaled" in kubectl(kc, tmp_path, "scale", "statefulset/web", "--replicas=4")

        def condemned_said():
            return any(h["reason"] == "CondemnedPodNotRestarted" for h in health_records(tmp_path))

        wait_until(condemned_said, 45, what="web-5's check firing, its restart not sent")
        assert "web-5" in pods_kubectl_shows(kc, tmp_path)  # still there: web-1 holds the walk down

        def walked_down():
            now = pods(kc)
            return sorted(now) == [f"web-{k}" for k in range(4)] and all(now.values()) and now

        walked = wait_until(walked_down, 60, what="web-1 restarted and Ready, web-5 and web-4 removed")
        assert pods_kubectl_shows(kc, tmp_path) == walked
        assert run.alive(), run.tail()
        events = kubectl_get(kc, tmp_path, "events")["items"]
        said = [e["message"] for e in events if e.get("reason") == "PodRestarted"]
        assert len(said) == 1 and "Deleted pod web-1 " in said[0], said
    records = health_records(tmp_path)
    # the ordinals web keeps, said on the record (setpoint explain: "it keeps 0..3")
    assert {tuple(h["ordinals"]) for h in records if h["reason"] == "CondemnedPodNotRestarted"} == {(0, 4)}, records
    restarts = [h for h in records if h["action"]]
    assert [(h["action"], h["reason"], h["restart_pods"]) for h in restarts] == [
        ("restart-pod", "RestartFiringPods", ["default/web-1"])], restarts
    assert "action failed" not in (tmp_path / "run.log").read_text()
