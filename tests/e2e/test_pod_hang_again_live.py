"""End to end, a hung pod whose replacement hangs again: `setpoint sim serve` of a scenario whose
sticky pod-hang fault (a poison node or volume) makes one of web's 4 pods hang, and every pod
created in its place hang as its start-up ends; a real Prometheus scraping it; `setpoint run` (the
real kubernetes client) with the shipped healing policy (policies/setpoint-healing.yaml), its
times shortened to the test's (5 s cycles, hung-pod check notReadyFor 10s past a 5s start-up, every
check's `for` 5s, restartsPerHour 2); the real kubectl. Separate processes on loopback; every wait is bounded.

Timeline (wall s since sim serve started, speed 1: sim serve's --speed speeds the simulated pods
up, not Setpoint's cycles and windows, which are wall time: the policy's shortened times set the
story's length): 180 rps on 4 pods of 150 (under the policy's 70 a pod: no scaling); one pod
hangs at 10 s; the check fires 10 s later and Setpoint deletes it (RestartHungPod); its
replacement hangs as its 3 s start-up ends (never Ready); the verification window (start-up 5 s +
notReadyFor 10 s + a 5 s cycle = 20 s) ends with the replacement firing: HungPodHungAgain, and it
is deleted again (the 2nd restart of the hour); the next window fails the same way with
restartsPerHour spent: HungPodRestartsExhausted, the target held (a HealingHeld Event, `setpoint
status`, `setpoint explain`), never a rolling restart or a rollback. The test took 88 s of wall time at load average 14.
"""

from __future__ import annotations

import pytest

from tests.support.cli_inproc import run_cli
from tests.e2e.kube_reads import kube_get
from tests.e2e.test_live_loop import running_world, start_scenario_clock, wait_until
from tests.e2e.test_pod_hang_live import HEALING, SCENARIO, SHIPPED_HUNG, pods_kubectl_shows
from tests.e2e.test_statefulset_heal_live import health_records, kubectl_get
from tests.adapters.test_kubectl import KUBECTL

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")

SHORTENED = {SHIPPED_HUNG: "hung: {notReadyFor: 10s, startup: 5s}", "interval: 15s": "interval: 5s",
             "restartsPerHour: 6": "restartsPerHour: 2"}
POLICY = HEALING
for shipped, short in SHORTENED.items():
    POLICY = POLICY.replace(shipped, short, 1)
# every check's `for` at 5 s: the verification window is the longer of twice the longest `for` (2m
# as shipped) and the hung-pod check's start-up + notReadyFor + a cycle (20 s here)
FORS = ("for: 30s", "for: 1m")
for shipped in FORS:
    POLICY = POLICY.replace(shipped, "for: 5s")

STICKY = SCENARIO.replace("metadata: {name: e2e-pod-hang}", "metadata: {name: e2e-pod-hang-again}").replace(
    "kind: pod-hang, at: 10s, services: [web]}", "kind: pod-hang, at: 10s, services: [web], sticky: true}")


def held_messages(items: list[dict]) -> list[str]:
    """The messages of the HealingHeld Events among Events' JSON."""
    return [e["message"] for e in items if e.get("reason") == "HealingHeld"]


def held_events(kc) -> list[str]:
    """The HealingHeld Events' messages, read through the Python client (a cheap poll)."""
    return held_messages(kube_get(kc, "events")["items"])


def test_a_pod_that_hangs_again_is_restarted_within_its_budget_then_held(tmp_path):
    assert all(POLICY.count(short) == 1 for short in SHORTENED.values()) and STICKY.count("sticky: true") == 1
    assert not any(shipped in POLICY for shipped in FORS) and POLICY.count("for: 5s") == 8
    # its 4 pods seen Ready before the hang: while the clock holds at t=0 (as test_pod_hang_live's)
    with running_world(tmp_path, STICKY, POLICY, start_clock=False) as w:
        kc, run = w["kubeconfig"], w["run"]
        before = pods_kubectl_shows(kc, tmp_path)
        assert len(before) == 4 and all(before.values()), before
        start_scenario_clock(kc)
        wait_until(lambda: held_events(kc), 120, every_s=1, what="the HealingHeld Event")
        # what the operator sees, through the real kubectl
        [held] = held_messages(kubectl_get(kc, tmp_path, "events")["items"])
        now = pods_kubectl_shows(kc, tmp_path)
        assert run.alive(), run.tail()
        told = run_cli("status", "--server", w["status"], cwd=tmp_path, env={"COLUMNS": "200"})  # cells unfolded
    assert told.returncode == 0, told.stderr
    # 3 of the 4 pods served all along; the 4th (a replacement of the hung one) hangs, deleted no more
    [hanging] = [n for n, ready in now.items() if not ready]
    assert len(now) == 4 and hanging not in before and set(now) - {hanging} <= set(before), (before, now)
    assert "self-healing stopped (HungPodRestartsExhausted)" in held and f"finds {hanging} hung" in held, held
    assert "restartsPerHour 2 allows no more (2 in the last hour): its restarts did not cure it" in held, held
    records = health_records(tmp_path)
    acted = [(h["action"], h["reason"], h.get("outcome")) for h in records if h["action"]]
    assert acted == [("restart-pod", "RestartHungPod", None), ("restart-pod", "RestartHungPod", "HungPodHungAgain")]
    [exhausted] = [h for h in records if h["reason"] == "HungPodRestartsExhausted"]
    assert exhausted["outcome"] == "HungPodHungAgain" and exhausted["trigger"] == "hung-pod"
    assert not [h for h in records if h["action"] in ("rolling-restart", "rollback")]
    assert "HELD" in told.stdout and "HungPodRestartsExhausted" in told.stdout, told.stdout
    explained = run_cli("explain", tmp_path / "decisions.jsonl", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "the hung pod's restart did not cure it (it hangs again) [HungPodHungAgain]" in explained.stdout
    assert "held: restartsPerHour allows no more restarts of pods the hung-pod check finds hung" in explained.stdout
