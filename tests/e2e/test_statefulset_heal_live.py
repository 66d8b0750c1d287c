"""End to end, the StatefulSet self-healing drill of a crash-looping release, as an operator runs
it: `setpoint sim serve` of a StatefulSet, a real Prometheus scraping it, `setpoint run` with a
health-only policy (a per-pod not-Ready check, restart-pod), and the real kubectl's
``rollout undo``; separate processes on loopback.

A release whose pods crash (crash-loop at 15 s) replaces web-3 first; the StatefulSet controller
(OrderedReady) then waits for it. Setpoint restarts nothing during the rollout (RolloutInProgress):
restarting a pod of the release brings it back on the release. The operator undoes the release;
the StatefulSet still waits for web-3, broken and now off the update revision (Kubernetes' "forced
rollback": it must be deleted). Setpoint restarts it; it comes back on the restored revision and
the rollout completes.

Before: the crash-looping web-3, short of Ready, read as "pods still starting", the overload that
gets a scale-up instead of restarts (for a policy that does not scale: AtMaxReplicas every cycle, now
RestartWaitsForStartingPods);
and after the undo every restart waited for a rollout that waited for the restart.
Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.adapters.test_kubectl import KUBECTL, KUBECTL_REQUEST_S, PROCESS_TIMEOUT_S
from tests.e2e.kube_reads import kube_get
from tests.e2e.test_live_loop import running_world, wait_until

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-sts-crash-loop}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      kind: StatefulSet
      capacityPerPod: 150
      startupDelay: 3s
      schedulingDelay: 0s
      initialReplicas: 4
      maxPods: 20
      load: [{constant: {rps: 300}}]
  faults:
    - {name: release, kind: crash-loop, at: 15s, services: [web]}
"""

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: e2e-sts-heal}
spec:
  targets: {kind: StatefulSet, namespace: default, names: [web]}
  interval: 2s
  health:
    checks:
      - name: not-ready
        query: max by (namespace, pod) (kube_pod_status_ready{condition="false"})
        scope: pod
        unhealthy: {above: 0.5, for: 10s}
        recovered: {below: 0.5, for: 4s}
        action: restart-pod
    budgets: {restartsPerHour: 6, maxUnavailable: 25%}
"""


def kubectl(kubeconfig, home, *args: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(home)}
    proc = subprocess.run([KUBECTL, f"--request-timeout={KUBECTL_REQUEST_S}s", *args], env=env, capture_output=True,
                          text=True, timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def kubectl_get(kubeconfig, home, *what: str) -> dict:
    """The real kubectl's ``get WHAT -o json``, decoded."""
    return json.loads(kubectl(kubeconfig, home, "get", *what, "-o", "json"))


def health_records(tmp_path) -> list[dict]:
    path = tmp_path / "decisions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["health"] for line in path.read_text().splitlines() if line.strip()]


def test_a_statefulset_crash_loop_release_undone_gets_its_broken_pod_restarted(tmp_path):
    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]

        def waiting_for_the_release():
            # the check fires on web-3 of the release, and the restart waits for the rollout
            return any(h["reason"] == "RolloutInProgress" and h["checks"]["not-ready"]["phase"] == "firing"
                       for h in health_records(tmp_path))

        wait_until(waiting_for_the_release, 60, every_s=1, what="web-3 of the release firing, its restart waiting")
        records = health_records(tmp_path)
        assert not [h for h in records if h["action"]], records  # nothing restarted during the release
        # a crash loop is not overload (health-only: the restart waiting for starting pods)
        assert not {"AtMaxReplicas", "RestartWaitsForStartingPods"} & {h["reason"] for h in records}, records
        release = kubectl_get(kc, tmp_path, "sts", "web")["status"]  # as kubectl shows it
        assert release["updateRevision"] != release["currentRevision"], release

        assert "rolled back" in kubectl(kc, tmp_path, "rollout", "undo", "statefulset/web")

        def healed(st: dict) -> bool:
            return (st.get("readyReplicas") == 4 and st["updateRevision"] == st["currentRevision"]
                    == release["currentRevision"])

        wait_until(lambda: healed(kube_get(kc, "sts", "web")["status"]), 60,
                   what="web-3 restarted and back on the restored revision, the rollout complete")
        shown = kubectl_get(kc, tmp_path, "sts", "web")["status"]
        assert healed(shown), shown  # as the real kubectl shows it
        assert run.alive(), run.tail()
    restarts = [h for h in health_records(tmp_path) if h["action"]]
    assert [(h["action"], h["reason"], h["restart_pods"]) for h in restarts] == [
        ("restart-pod", "RestartFiringPods", ["default/web-3"])], restarts
    assert "action failed" not in (tmp_path / "run.log").read_text()
