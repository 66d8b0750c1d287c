"""A hung pod and a memory leak on another pod of the same Deployment, simulated: the leaking pod's
restart goes ahead while the hung pod's restart is verified (435 s with the shipped numbers), where it
waited for that window to close.

web: 5 pods created at t=0, 200 rps; one pod hangs at 1m (restarted at 195 s: past its 5m start-up
and 2m notReadyFor); every pod leaks 1.27 MiB/s from its container start (600 MiB at 270 s of age);
three pods crash at 2m (their containers restart: their leak starts over), so the one pod neither
hung nor crashed crosses 600 MiB first, at 270 s, alone. Seed 2: the crash does not hit the hung pod.
"""

from __future__ import annotations

from controller.policy import load_policy_text
from simulators.runner import simulate, standard_controllers
from simulators.scenario import load_scenario_text

POLICY = """apiVersion: setpoint/v1
kind: Policy
metadata: {name: heal}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 15s
  replicas: {min: 5, max: 5}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 70}
  health:
    checks:  # as policies/setpoint-healing.yaml's
      - name: memory
        query: max by (namespace, pod) (container_memory_working_set_bytes{container!=""}) / 2^20
        scope: pod
        unhealthy: {above: 600, for: 30s}
        recovered: {below: 400, for: 30s}
        action: restart-pod
      - name: hung-pod
        hung: {notReadyFor: 2m, startup: 5m}
        action: restart-pod
    budgets: {restartsPerHour: 6, maxUnavailable: 25%}
"""

SCENARIO = """apiVersion: setpoint/v1
kind: Scenario
metadata: {name: hang-and-leak}
spec:
  duration: 7m
  tick: 5s
  seed: 2
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 5
      startupDelay: 10s
      load: [{constant: {rps: 200}}]
  faults:
    - {name: stuck, kind: pod-hang, at: 1m}
    - {name: leak, kind: memory-leak, at: 0s, services: [web], mibPerSecond: 1.27}
    - {name: crash, kind: pod-crash, at: 2m, count: 3}
"""

HUNG_WINDOW_S = 300.0 + 120.0 + 15.0  # startup + notReadyFor + a cycle


def test_the_leaking_pod_is_restarted_while_the_hung_pods_restart_is_verified():
    [policy] = load_policy_text(POLICY, "heal.yaml")
    result, logs = simulate(load_scenario_text(SCENARIO, "hang-and-leak.yaml"),
                            standard_controllers(policy, [], None, 20), keep_records=True)
    actions = [a for a in result.runs["policy"].actions if a.kind != "scale"]
    said = [(a.t_s, a.kind, a.reason.split(" ")[0]) for a in actions]
    # the leak's at 315 s (past 600 MiB at 270 s, 30 s of `for`, the next cycle), inside the hung
    # pod's window (to 630 s); before, it waited for that window and came after this run's end
    assert said[:2] == [(195.0, "restart-pod", "RestartHungPod"), (315.0, "restart-pod", "RestartFiringPods")], said
    hung, leak = actions[:2]
    assert leak.t_s < hung.t_s + HUNG_WINDOW_S
    assert leak.reason.split(" ")[1] != hung.reason.split(" ")[1]  # another pod
    assert not [a for a in actions if a.kind in ("rolling-restart", "rollback")]
    [record] = [r.to_dict()["health"] for r in logs["policy"].records() if r.to_dict()["at"] == leak.t_s]
    assert [w["check"] for w in record["verifying"]] == ["hung-pod", "memory"]  # both windows said
