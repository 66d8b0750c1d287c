"""A pod-scope health check runs in a simulation whatever per-pod signal it is bound to
(simulators/scenario.py POD_SIGNALS). SimMetrics kept a per-service ring for every bound
field, pod fields included: pod_restarts ("restarts") and pod_extra_latency ("extra_latency_s")
have no per-service value, so a policy with such a check (among them the default binding of a
pod check named "restarts") ended the run with `KeyError: 'restarts'`, reported as a bug."""

from __future__ import annotations

import pytest

from controller.policy import load_policy_text
from simulators.runner import simulate, standard_controllers
from simulators.scenario import POD_SIGNALS, load_scenario_text

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: pod-check}}
spec:
  duration: 3m
  tick: 5s
  seed: 1
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 4
      maxPods: 10
      load:
        - constant: {{rps: 200}}
  faults:
    - {{name: crashes, kind: crash-loop, at: 30s, services: [web]}}
  metrics: {{{bindings}}}
"""

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: healer}}
spec:
  targets: {{kind: Deployment, namespace: default, name: web}}
  interval: 15s
  replicas: {{min: 2, max: 10}}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {{averagePerReplica: 80}}
  health:
    checks:
      - name: {check}
        query: sum by (namespace, pod) (probe_signal)
        scope: pod
        unhealthy: {{above: 1000000, for: 30s}}
        action: restart-pod
"""


@pytest.mark.parametrize("check, bindings", [
    pytest.param("probe", f"probe: {signal}", id=signal) for signal in sorted(POD_SIGNALS)
] + [
    pytest.param("restarts", "", id="default-binding-of-a-pod-check-named-restarts"),
    pytest.param("latency", "", id="default-binding-of-a-pod-check-named-latency"),
])
def test_a_pod_check_runs_on_every_pod_signal(check, bindings):
    scenario = load_scenario_text(SCENARIO.format(bindings=bindings))
    policy = load_policy_text(POLICY.format(check=check))[0]
    result, logs = simulate(scenario, standard_controllers(policy, [], None, 20), keep_records=True)
    health = [r.to_dict()["health"] for r in logs["policy"].records()]
    assert health and health[-1]["checks"][check]["pods"] > 0  # the check read its pods' series
    assert result.runs["policy"].scores["replica_hours"] > 0
