"""End to end, a leak on a StatefulSet held at a canary's partition, as an operator runs it:
`setpoint sim serve` of a StatefulSet (5 pods, every pod's working set growing 5 MiB/s), a real
Prometheus scraping it, `setpoint run` with a health-only policy (a per-pod memory check,
restart-pod), and the real kubectl; separate processes on loopback.

The operator puts a canary out: ``rollingUpdate.partition: 2`` and ``kubectl rollout restart``:
web-4, web-3 and web-2 are recreated on the new revision, web-0 and web-1 stay on the old one for
good (currentRevision never catches up). kubectl then says "partitioned roll out complete". The
old pods, the oldest, cross the memory threshold first (2 of 5: not systemic). Setpoint restarts
one of them; it comes back on its ordinal's revision (the old one), and no rolling restart is sent
(the canary's update revision stays).

Before: the partitioned StatefulSet read as mid-rollout for as long as the partition held
(RolloutInProgress every cycle, RestartWaitsForRollout after 10 minutes) and the leaking pods
were never restarted. Every wait is bounded.
"""

from __future__ import annotations


import pytest

from tests.adapters.test_kubectl import KUBECTL
from tests.e2e.kube_reads import kube_get
from tests.e2e.test_live_loop import running_world, wait_until
from tests.e2e.test_statefulset_heal_live import health_records, kubectl, kubectl_get

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-sts-canary-leak}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      kind: StatefulSet
      terminationGracePeriod: 2s   # its pods exit at once: the StatefulSet waits out no 30 s a pod
      capacityPerPod: 150
      startupDelay: 2s
      schedulingDelay: 0s
      initialReplicas: 5
      maxPods: 20
      load: [{constant: {rps: 300}}]
  faults:
    - {name: leak, kind: memory-leak, at: 0s, services: [web], mibPerSecond: 5}
"""

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: e2e-sts-canary}
spec:
  targets: {kind: StatefulSet, namespace: default, names: [web]}
  interval: 2s
  health:
    checks:
      - name: memory
        query: max by (namespace, pod) (container_memory_working_set_bytes{container!=""}) / 2^20
        scope: pod
        unhealthy: {above: 480, for: 4s}
        recovered: {below: 350, for: 4s}
        action: restart-pod
    budgets: {restartsPerHour: 6, maxUnavailable: 25%}
    escalation: [restart-pod, rolling-restart]
"""


def test_a_leaking_pod_below_a_canary_partition_is_restarted_on_its_old_revision(tmp_path):
    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]

        def memory_at_least(mib: float):
            return any((h["checks"]["memory"]["raw"] or 0) >= mib for h in health_records(tmp_path))

        # the canary goes out well before the old pods cross 480 MiB (~45 s in), so that its new
        # pods (reborn at ~20 s) cross it ~20 s after the old ones
        wait_until(lambda: memory_at_least(350), 60, what="the working sets at 350 MiB")
        kubectl(kc, tmp_path, "patch", "statefulset", "web", "-p",
                '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}')
        assert "restarted" in kubectl(kc, tmp_path, "rollout", "restart", "statefulset/web")
        out = kubectl(kc, tmp_path, "rollout", "status", "statefulset/web", "--timeout=40s")
        assert "partitioned roll out complete" in out, out
        canary = kubectl_get(kc, tmp_path, "sts", "web")["status"]
        assert canary["updateRevision"] != canary["currentRevision"], canary

        def restarted():
            return [h for h in health_records(tmp_path) if h["action"]]

        first = wait_until(restarted, 60, what="a leaking pod below the partition restarted")[0]
        assert (first["action"], first["reason"]) == ("restart-pod", "RestartFiringPods"), first
        assert len(first["restart_pods"]) == 1 and first["restart_pods"][0] in ("default/web-0", "default/web-1"), first
        pod = first["restart_pods"][0].split("/")[1]

        def back_on_its_revision():
            p = kube_get(kc, "pod", pod)
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            return ready and p["metadata"]["labels"]["controller-revision-hash"]

        assert wait_until(back_on_its_revision, 30, what=f"{pod} back and Ready") == canary["currentRevision"]
        after = kube_get(kc, "sts", "web")["status"]
        # no rolling restart: the canary's release is still the update revision
        assert (after["updateRevision"], after["currentRevision"]) == (canary["updateRevision"],
                                                                      canary["currentRevision"]), after
        assert run.alive(), run.tail()
    records = health_records(tmp_path)
    assert "RollingRestartPartitioned" not in {h["reason"] for h in records}, records
    assert "action failed" not in (tmp_path / "run.log").read_text()
