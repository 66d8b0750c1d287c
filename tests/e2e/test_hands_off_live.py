"""End to end: `setpoint sim serve` + a real Prometheus + `setpoint run`, separate processes on
loopback, and the real kubectl: a `kubectl scale` during the live loop is left alone for the
policy's handsOff (an ExternalScaleChange Event naming kubectl, `setpoint status` saying until
when), then the controller scales from that count again. Every wait is bounded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.support.cli_inproc import run_cli
from tests.e2e.kube_reads import kube_get, names, reasons
from tests.e2e.test_live_loop import SETPOINT, Proc, running_world, spec_replicas, wait_until

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-hands-off}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      capacityPerPod: 100
      startupDelay: 2s
      schedulingDelay: 0s
      initialReplicas: 2
      maxPods: 20
      load: [{constant: {rps: 250}}]
"""
# 250 rps: 3 replicas of 100 (ceil 2.5) for any reading from 201 to 300. At 300 a rate read a
# hair high (Prometheus' scrapes late on a loaded machine) asks for 4, and from 4 (ratio 0.75, out
# of tolerance) ceil(3.0x) is 4 again: the waits for 3 would time out.

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: e2e-web}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 2s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total{namespace="default"}[10s]))
        target: {averagePerReplica: 100}
    behavior:
      scaleDown: {stabilizationWindow: 0s}
    onExternalScale: {handsOff: 20s}
"""


def kubectl(w, *args: str) -> str:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(w["kubeconfig"]),
           "HOME": str(w["tmp"])}
    proc = subprocess.run([KUBECTL, "--request-timeout=5s", *args], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_kubectl_scale_is_left_alone_for_hands_off_then_scaled_from_there(tmp_path):
    with running_world(tmp_path, SCENARIO, POLICY) as w:
        wait_until(lambda: spec_replicas(w["kubeconfig"]) == 3, 60, what="the scale-up to 3 (250 rps)")
        kubectl(w, "scale", "deploy/web", "--replicas=8")
        changed = time.monotonic()
        wait_until(lambda: "ExternalScaleChange" in reasons(kube_get(w["kubeconfig"], "events")), 20,
                   what="the Event")
        assert "ExternalScaleChange" in kubectl(w, "get", "events")  # as the real kubectl shows it
        assert spec_replicas(w["kubeconfig"]) == 8  # left alone
        def web_status() -> dict:
            with urllib.request.urlopen(w["status"] + "/status", timeout=5) as response:
                return json.loads(response.read())["policies"]["e2e-web"]["targets"]["default/web"]

        # the Event is sent during the cycle, the status when it ends: read it once that cycle is in
        wait_until(lambda: web_status()["hands_off"] is not None, 20, what="the status of the hands-off cycle")
        web = web_status()
        assert (web["reason"], web["hands_off"]["by"], web["hands_off"]["replicas"]) == ("ExternalOverride", "kubectl", 8)
        proc = run_cli("status", "--server", w["status"], cwd=w["tmp"], env={"COLUMNS": "200"})
        assert "default/web: hands off until " in proc.stdout and "(replicas set to 8 by kubectl)" in proc.stdout
        held = []
        while time.monotonic() - changed < 15:  # well inside the 20 s hands-off
            held.append(spec_replicas(w["kubeconfig"]))
            time.sleep(1)
        assert set(held) == {8}
        wait_until(lambda: spec_replicas(w["kubeconfig"]) == 3, 40, what="the scale-down from 8 after the hands-off")
        assert time.monotonic() - changed >= 18
        assert w["run"].alive(), w["run"].tail()
        log = (w["tmp"] / "run.log").read_text()
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        [said] = [r for r in lines if "set to 8 by kubectl" in r["message"]]
        assert said["level"] == "warning" and said["by"] == "kubectl" and said["from"] == 3


@pytest.mark.parametrize("change", [
    pytest.param(("scale", "deploy/web", "--replicas=8"), id="kubectl-scale"),
    pytest.param(("patch", "deploy/web", "--type=merge", "-p",
                  '{"metadata": {"annotations": {"incident": "INC-7"}}, "spec": {"replicas": 8}}'),
                 id="kubectl-patch-of-more-than-the-replicas"),
])
def test_a_restart_inside_a_hands_off_keeps_it_until_its_end(tmp_path, change):
    # The node with the controller on it is lost during the incident the on-call scaled for: the
    # new process must not take the count back at its first cycle. The hands-off is kept in a
    # ConfigMap (setpoint-state-e2e-web.hands-off); the new process reads it and holds until the
    # change's time + handsOff, whatever managedFields can tell of the change (a patch that
    # carries an annotation too does not date the count).
    with running_world(tmp_path, SCENARIO, POLICY.replace("handsOff: 20s", "handsOff: 40s")) as w:
        wait_until(lambda: spec_replicas(w["kubeconfig"]) == 3, 60, what="the scale-up to 3 (250 rps)")
        kubectl(w, *change)
        changed = time.monotonic()
        wait_until(lambda: "ExternalScaleChange" in reasons(kube_get(w["kubeconfig"], "events")), 20,
                   what="the Event")
        assert "ExternalScaleChange" in kubectl(w, "get", "events")  # as the real kubectl shows it
        wait_until(lambda: "setpoint-state-e2e-web.hands-off" in names(kube_get(w["kubeconfig"], "configmaps")), 20,
                   what="the hands-off kept on the cluster")
        assert "setpoint-state-e2e-web.hands-off" in kubectl(w, "get", "configmaps", "-A")
        assert w["run"].stop() == 0, w["run"].tail()
        run = Proc([*SETPOINT, "run", "--policies", "policies", "--prometheus", w["prom"].url, "--kubeconfig",
                    str(w["kubeconfig"]), "--listen", "127.0.0.1:" + w["status"].rsplit(":", 1)[1], "--records",
                    "decisions.jsonl"], tmp_path / "run2.log", tmp_path)
        try:
            wait_until(lambda: "kept on the cluster across a restart" in (tmp_path / "run2.log").read_text(), 40,
                       what="the new process taking the hands-off back")
            held = []
            while time.monotonic() - changed < 34:  # well inside the 40 s from the change
                held.append(spec_replicas(w["kubeconfig"]))
                time.sleep(1)
            assert set(held) == {8}, held
            wait_until(lambda: spec_replicas(w["kubeconfig"]) == 3, 40, what="the scale-down after the hands-off")
            assert time.monotonic() - changed >= 38
        finally:
            run.stop()
