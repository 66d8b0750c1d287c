"""A simulation drives every service it scores: a policy naming only some services of a scenario
is applied to all of them with a note, never half-applied; the score table and result.json say
which services each controller drove."""

from __future__ import annotations

import json

import pytest

from controller.policy import load_policy_text
from simulators.runner import ControllerSpec, driven_services, simulate
from simulators.score import driven_lines, result_json, score_table
from simulators.scenario import load_scenario_text

SERVICES = ["api", "search", "web"]


def policy(targets: str, name: str = "p"):
    (loaded,) = load_policy_text(f"""
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  targets: {targets}
  replicas: {{min: 1, max: 20}}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {{averagePerReplica: 80}}
""", f"{name}.yaml")
    return loaded


@pytest.mark.parametrize("targets, note", [
    pytest.param("{kind: Deployment, namespace: default, names: [api, search, web]}", "",
                 id="names-every-service-no-note"),
    pytest.param("{kind: Deployment, namespace: default, name: search}",
                 "policy p names search; applied to every service of the scenario (api, search, web)",
                 id="names-one-of-three-applied-to-all-with-a-note"),
    pytest.param("{kind: Deployment, namespace: shop, names: [search, cart]}",
                 "policy p names search, cart (cart not in the scenario); applied to every service of the scenario "
                 "(api, search, web)", id="names-one-absent-service"),
    pytest.param("{kind: Deployment, namespace: shop, selector: {matchLabels: {tier: front}}}",
                 "policy p selects its targets by tier=front; applied to every service of the scenario "
                 "(api, search, web)", id="label-selector-applied-to-all"),
])
def test_a_policy_drives_every_service_and_says_why(targets, note):
    assert driven_services(policy(targets), SERVICES) == (SERVICES, note)


SCENARIO = """
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: three}
spec:
  duration: 10m
  tick: 15s
  seed: 1
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - {name: api, capacityPerPod: 100, initialReplicas: 2, maxPods: 20, load: [{constant: {rps: 600}}]}
    - {name: search, capacityPerPod: 100, initialReplicas: 2, maxPods: 20, load: [{constant: {rps: 600}}]}
    - {name: web, capacityPerPod: 100, initialReplicas: 2, maxPods: 20, load: [{constant: {rps: 600}}]}
"""


def test_a_policy_naming_one_service_scales_all_and_the_outputs_say_so():
    scenario = load_scenario_text(SCENARIO, "three.yaml")
    one = policy("{kind: Deployment, namespace: default, name: search}", "search-only")
    result, _ = simulate(scenario, [ControllerSpec("policy", "policy", "search only", policy=one),
                                    ControllerSpec("fixed", "fixed", "fixed", replicas=2)], keep_records=False)
    spec = result.runs["policy"].trajectory.spec_replicas
    assert (spec[-1] > 2).all(), "every service was scaled up, not only the one the policy names"
    controllers = json.loads(json.dumps(result_json(result)))["controllers"]
    assert controllers["policy"]["services"] == controllers["fixed"]["services"] == SERVICES
    assert "names search; applied to every service" in controllers["policy"]["note"]
    assert controllers["fixed"]["note"] == ""
    assert driven_lines(score_table(result), SERVICES) == [
        "Driven services: api, search, web (by policy, fixed).",
        "note: policy: policy search-only names search; applied to every service of the scenario (api, search, web)."]


def _capacities(api: float, search: float, web: float, bindings: str = "") -> str:
    text = SCENARIO
    for name, capacity in (("api", api), ("search", search), ("web", web)):
        text = text.replace(f"{{name: {name}, capacityPerPod: 100,", f"{{name: {name}, capacityPerPod: {capacity},")
    return text + bindings


@pytest.mark.parametrize("scenario, metric_target, note", [
    # the bundled default policy (85 rps per replica) on a scenario whose pods serve 50: it lost to
    # HPA by 2x with no word that its pods saturate before it scales
    pytest.param(_capacities(100, 50, 100), "{averagePerReplica: 80}",
                 "policy p: metric rps targets 80 requests/s per replica, more than one pod serves (capacityPerPod) "
                 "in search (50): its pods saturate before it scales up; lower the target or raise capacityPerPod",
                 id="one-service-below-the-target"),
    pytest.param(_capacities(40, 50, 60), "{averagePerReplica: 80}",
                 "more than one pod serves (capacityPerPod) in api (40), search (50), web (60): its pods",
                 id="every-service-below-the-target"),
    pytest.param(_capacities(100, 80, 100), "{averagePerReplica: 80}", "", id="target-at-capacity"),
    pytest.param(_capacities(40, 50, 60, "  metrics: {rps: served_per_second}\n"), "{averagePerReplica: 80}",
                 "metric rps targets 80 requests/s per replica", id="served-rate"),
    pytest.param(_capacities(40, 50, 60, "  metrics: {rps: queue_length}\n"), "{averagePerReplica: 80}", "",
                 id="not-a-request-rate"),
    pytest.param(_capacities(40, 50, 60), "{value: 80}", "", id="value-target"),
])
def test_a_target_above_what_a_pod_serves_is_noted(scenario, metric_target, note):
    from simulators.runner import capacity_note

    (one,) = load_policy_text(f"""
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: p}}
spec:
  targets: {{kind: Deployment, namespace: default, names: [api, search, web]}}
  replicas: {{min: 1, max: 20}}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {metric_target}
""", "p.yaml")
    got = capacity_note(one, load_scenario_text(scenario, "three.yaml"))
    assert (note in got) if note else got == "", got


def test_the_capacity_note_reaches_the_score_table():
    scenario = load_scenario_text(_capacities(100, 50, 100), "three.yaml")
    every = policy("{kind: Deployment, namespace: default, names: [api, search, web]}")
    result, _ = simulate(scenario, [ControllerSpec("policy", "policy", "p", policy=every)], keep_records=False)
    assert result.runs["policy"].note.startswith("policy p: metric rps targets 80 requests/s per replica")
