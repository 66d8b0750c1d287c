"""`setpoint simulate` with the shipped healing policy (policies/setpoint-healing.yaml: hung-pod check
notReadyFor 2m past a 5m start-up, restartsPerHour 6) on a sticky pod hang (a poison node or volume:
the pod created in place of the hung one hangs too), then `setpoint explain`, as a user runs them.

Timeline (scenario clock, 15 s cycles): web, 4 pods of 150 rps at 180 rps (no scaling); one pod
hangs at 5m and fires the check 2m later: RestartHungPod at 7m15s; each replacement hangs as its
start-up ends, so each verification (7m15s: the replacement's start-up + notReadyFor + a cycle)
fails as HungPodHungAgain and the pod is restarted again, 6 times in all (the budget), then the
target is held (HungPodRestartsExhausted, the HealingHeld notice on stderr), never a rolling
restart or a rollback. Before the pod-hang fault's sticky field the scenario was refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

POLICY = Path(__file__).resolve().parents[2] / "policies" / "setpoint-healing.yaml"
WINDOW_S = 435.0  # 5m start-up + 2m notReadyFor + a 15 s cycle

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: hang-again}
spec:
  duration: 60m
  tick: 5s
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: web
      capacityPerPod: 150
      initialReplicas: 4
      load: [{constant: {rps: 180}}]
  faults:
    - {name: poisoned, kind: pod-hang, at: 5m, services: [web], sticky: true}
"""


def setpoint(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("hang-again")
    (cwd / "hang-again.yaml").write_text(SCENARIO)
    proc = setpoint("simulate", "hang-again.yaml", "-p", str(POLICY), "--baseline", "hpa", "--no-frontier",
                    "--no-report", "--out", "out", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (cwd / "out" / "decisions.jsonl").read_text().splitlines()]
    health = [(r["at"], r["health"]) for r in records if r.get("controller", "policy") == "policy" and "health" in r]
    return cwd, proc, health


def test_each_restart_hangs_again_until_restarts_per_hour_is_spent_then_the_target_is_held(simulated):
    _, proc, health = simulated
    acted = [(at, h["action"], h["reason"], h.get("outcome")) for at, h in health if h.get("action")]
    first = 7 * 60 + 15.0
    assert acted == [(first + k * WINDOW_S, "restart-pod", "RestartHungPod", None if k == 0 else "HungPodHungAgain")
                     for k in range(6)], acted
    held_at = first + 6 * WINDOW_S
    [(at, outcome)] = [(at, h.get("outcome")) for at, h in health if h["reason"] == "HungPodRestartsExhausted"]
    assert (at, outcome) == (held_at, "HungPodHungAgain")
    assert {h["reason"] for at, h in health if at > held_at} == {"Held"}
    assert not [h for _, h in health if h.get("action") in ("rolling-restart", "rollback")]
    assert "self-healing stopped (HungPodRestartsExhausted)" in proc.stderr
    assert "restartsPerHour 6 allows no more (6 in the last hour): its restarts did not cure it" in proc.stderr


@pytest.mark.parametrize("at, said", [
    pytest.param("14m30s", ["health: restart-pod [RestartHungPod] trigger hung-pod",
                            "verification: judged 7m15s on at the earliest, the replacement's start-up + notReadyFor + a "
                            "cycle counted from when it is first seen running",
                            "the hung pod's restart did not cure it (it hangs again) [HungPodHungAgain]"],
                 id="restarted-again"),
    pytest.param("50m45s", ["health: no action [HungPodRestartsExhausted] trigger hung-pod",
                            "held: restartsPerHour allows no more restarts of pods the hung-pod check finds hung"],
                 id="held"),
])
def test_explain_says_it_hung_again_and_was_held(simulated, at, said):
    cwd, _, _ = simulated
    proc = setpoint("explain", "out", "--at", at, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    for line in said:
        assert line in proc.stdout, proc.stdout
