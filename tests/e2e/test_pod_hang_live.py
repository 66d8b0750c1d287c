"""End to end, the restart of one hung pod: `setpoint sim serve` of a scenario whose pod-hang fault
makes one of web's 4 pods hang (not Ready, serving nothing, no restart) while the others serve, a
real Prometheus scraping it, `setpoint run` (the real kubernetes client) with the shipped healing
policy (policies/setpoint-healing.yaml), its hung-pod check's times shortened to the test's
(notReadyFor 10s past a 5s start-up, for 2m past 5m), and the real kubectl. Separate processes on
loopback; every wait is bounded.

Timeline (wall s since the scenario clock started, once setpoint had run a cycle; speed 1): 180 rps on 4 pods of 150 (45 a pod, 60 on the 3 that serve: under the
policy's 70: no scaling); one pod hangs at 10 s; the hung-pod check fires once it has been not Ready
10 s (its Ready condition's lastTransitionTime) while the other 3 are Ready; Setpoint deletes that
pod (RestartHungPod); its ReplicaSet's replacement is Ready 3 s later; the other 3 pods are untouched.
Without the hung check (main before it) nothing restarts the pod: it stays hung for the whole run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli_inproc import run_cli
from tests.e2e.kube_reads import kube_get
from tests.e2e.test_live_loop import running_world, start_scenario_clock, wait_until
from tests.e2e.test_statefulset_heal_live import health_records, kubectl_get
from tests.adapters.test_kubectl import KUBECTL

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

HEALING = (Path(__file__).resolve().parents[2] / "policies" / "setpoint-healing.yaml").read_text()
SHIPPED_HUNG = "hung: {notReadyFor: 2m, startup: 5m}"
POLICY = HEALING.replace(SHIPPED_HUNG, "hung: {notReadyFor: 10s, startup: 5s}", 1)

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


def ready_by_name(items: list[dict]) -> dict[str, bool]:
    """Of pods' JSON, those not terminating: name -> Ready (a deleted pod stays listed, terminating,
    for its grace period: kubectl's "Terminating")."""
    return {p["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in p["status"].get("conditions", []))
            for p in items if not p["metadata"].get("deletionTimestamp")}


def pods(kc) -> dict[str, bool]:
    """web's pods not terminating, name -> Ready, read through the Python client (a cheap poll)."""
    return ready_by_name(kube_get(kc, "pods", "app=web")["items"])


def pods_kubectl_shows(kc, home) -> dict[str, bool]:
    """As ``pods``, from the real kubectl's ``get pods -l app=web -o json``."""
    return ready_by_name(kubectl_get(kc, home, "pods", "-l", "app=web")["items"])


def test_the_healing_policy_restarts_the_hung_pod_and_only_it(tmp_path):
    assert HEALING.count(SHIPPED_HUNG) == 1 and POLICY != HEALING
    # its 4 pods seen Ready before the hang at 10 s: while the clock holds at t=0
    with running_world(tmp_path, SCENARIO, POLICY, start_clock=False) as w:
        kc, run = w["kubeconfig"], w["run"]
        before = pods_kubectl_shows(kc, tmp_path)
        assert len(before) == 4 and all(before.values()), before
        start_scenario_clock(kc)

        def hung() -> list[str]:
            now = pods(kc)
            return [n for n, ready in now.items() if not ready and n in before]

        [stuck] = wait_until(hung, 30, what="one pod hung")
        assert sorted(n for n, ready in pods(kc).items() if ready) == sorted(set(before) - {stuck})

        def healed():
            now = pods(kc)
            return stuck not in now and len(now) == 4 and all(now.values()) and now

        after = wait_until(healed, 90, what="the hung pod restarted and its replacement Ready")
        assert pods_kubectl_shows(kc, tmp_path) == after
        assert set(before) - {stuck} <= set(after)  # the pods that served are the same pods
        assert run.alive(), run.tail()
        events = kubectl_get(kc, tmp_path, "events")["items"]
        said = [e["message"] for e in events if e.get("reason") == "PodRestarted"]
        assert len(said) == 1 and f"Deleted pod {stuck} " in said[0] and "reason: RestartHungPod" in said[0], said
    restarts = [h for h in health_records(tmp_path) if h["action"]]
    assert [(h["action"], h["reason"], h["trigger"], h["restart_pods"]) for h in restarts] == [
        ("restart-pod", "RestartHungPod", "hung-pod", [f"default/{stuck}"])], restarts
    assert "action failed" not in (tmp_path / "run.log").read_text()


OUTAGE = SCENARIO.replace("metadata: {name: e2e-pod-hang}", "metadata: {name: e2e-readiness-outage}").replace(
    "    - {name: stuck, kind: pod-hang, at: 10s, services: [web]}",
    "    - {name: dependency-down, kind: readiness-outage, at: 10s, duration: 60s, services: [web]}")


def outage_cycles(home) -> int:
    """The decision records of cycles that saw no pod Ready."""
    path = home / "decisions.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if line.strip() and json.loads(line).get("ready") == 0)


def test_a_readiness_outage_restarts_no_pod(tmp_path):
    """The same world, every pod not Ready at once for 60 s (a dependency down): the hung-pod check,
    which would fire 10 s into a single pod's hang, never fires; no pod is deleted for it, and no
    rolling restart is made of "most pods firing" (as a per-pod not-Ready query check does)."""
    assert OUTAGE != SCENARIO and "readiness-outage" in OUTAGE
    with running_world(tmp_path, OUTAGE, POLICY, start_clock=False) as w:  # as above
        kc, run = w["kubeconfig"], w["run"]
        before = pods(kc)
        assert len(before) == 4 and all(before.values()), before
        start_scenario_clock(kc)
        wait_until(lambda: not any(pods(kc).values()), 30, what="every pod not Ready")
        # well past notReadyFor + startup (15 s), and past two 15 s cycles of the policy
        wait_until(lambda: outage_cycles(tmp_path) >= 3, 60, every_s=2, what="three cycles with none of the 4 pods Ready")
        assert set(pods_kubectl_shows(kc, tmp_path)) == set(before)  # nothing deleted
        assert run.alive(), run.tail()
    records = health_records(tmp_path)
    assert {h["checks"]["hung-pod"]["phase"] for h in records} == {"ok"}, records
    assert not [h for h in records if h["trigger"] == "hung-pod" or h["action"] in ("restart-pod", "rolling-restart")]
    # the records say why it stayed quiet: every pod past notReadyFor, all held back by the peer rule
    # (the cycles with fewer past it, or none: no counts, say as much)
    said = [(h["checks"]["hung-pod"].get("hung"), h["revision"]) for h in records]
    assert any(s == {"past": 4, "not_ready_for": 10.0, "held_back": 4, "revision": rev} for s, rev in said), said
    assert all(s is None or s["held_back"] == s["past"] for s, _ in said), said
    explained = run_cli("explain", tmp_path / "decisions.jsonl", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "hung check 'hung-pod': 4 of 4 pods not Ready past 10s, held back: most of revision " in explained.stdout
    assert "pods are not Ready (an outage, not a hung pod)" in explained.stdout
