"""A health-only policy simulated beside what scales its workload (simulators.runner.healing_controllers):
the hpa preset or fixed replicas scale, the health policy's Reconciler heals, over one simulated
cluster, and the run is compared with the same scaler alone."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.policy import health_side, load_policies, load_policy_text
from simulators.runner import ControllerSpec, healing_controllers, run_controllers, simulate
from simulators.scenario import load_scenario, resolve_scenario_path

HEADER = """apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  targets: {{kind: Deployment, namespace: default, names: [web]}}
  interval: 15s
{replicas}  health:
    checks:
{checks}    budgets: {{restartsPerHour: 60, maxUnavailable: 25%}}
"""

#: restarts the pods whose memory nears their limit (memory binds to pod_memory by default)
MEMORY = """      - name: memory
        query: max by (namespace, pod) (container_memory_working_set_bytes{container!=""}) / 2^20
        scope: pod
        unhealthy: {above: 600, for: 30s}
        recovered: {below: 400, for: 30s}
        action: restart-pod
"""
#: restarts crash-looping pods (restarts binds to pod_restarts by default)
RESTARTS = """      - name: restarts
        query: sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total[5m]))
        scope: pod
        unhealthy: {above: 2, for: 0s}
        recovered: {below: 1, for: 5m}
        action: restart-pod
"""
#: scales up on a saturated service's latency (latency binds to the SLO's percentile by default)
SATURATION = """      - name: latency
        query: histogram_quantile(0.95, sum by (namespace, deployment, le) (rate(http_request_duration_seconds_bucket[1m])))
        unhealthy: {above: 0.2, for: 30s}
        recovered: {below: 0.1, for: 2m}
        action: scale-up
"""


def healer(name: str, checks: str, replicas: str = ""):
    """A health-only policy of ``checks`` (no scaling section)."""
    [policy] = load_policy_text(HEADER.format(name=name, checks=checks, replicas=replicas), f"{name}.yaml")
    assert not policy.scales
    return policy


def scenario(name: str, **service):
    sc = load_scenario(resolve_scenario_path(name))
    if service:
        cluster = replace(sc.cluster, services=tuple(replace(s, **service) for s in sc.cluster.services))
        sc = replace(sc, cluster=cluster)
    return sc


def hpa():
    [policy] = load_policies([bundled_policy("hpa-cpu.yaml")])
    return policy


def run(sc, heals, scaler: str):
    """The healed run, the scaler alone, by name; and the decision logs."""
    result, logs = simulate(sc, healing_controllers(heals, scaler, [], hpa(), None))
    return result.runs, logs


@pytest.mark.parametrize("scenario_name, service, checks, scaler, alone, healed_kinds", [
    # every pod leaks alike: the memory check fires on most pods at once, so arbitration answers with
    # rolling restarts (systemic), not pod-by-pod ones; HPA alone loses minutes as the pods slow down
    pytest.param("memory-leak", {}, MEMORY, "hpa", "hpa", {"rolling-restart"}, id="memory-leak-beside-hpa"),
    # seven pods for 600 rps: the stalled rollout's missing pod breaks the SLO; the restart check fires
    # soon after the new revision, so arbitration rolls back instead of restarting (rollback beats restart)
    pytest.param("crash-loop", {"initial_replicas": 7}, RESTARTS, "fixed", "fixed", {"rollback"},
                 id="crash-loop-beside-fixed-replicas"),
])
def test_healing_beside_a_scaler_acts_and_saves_violation_minutes(scenario_name, service, checks, scaler, alone,
                                                                   healed_kinds):
    heals = healer("web-heal", checks)
    runs, logs = run(scenario(scenario_name, **service), heals, scaler)
    assert list(runs) == ["policy", alone]
    health = [a for a in runs["policy"].actions if a.policy == heals.name]
    assert health and {a.kind for a in health} == healed_kinds
    assert not any(a.policy == heals.name for a in runs[alone].actions)  # the scaler alone never heals
    assert runs[alone].scores["slo_violation_minutes"] > 0
    assert runs["policy"].scores["slo_violation_minutes"] < runs[alone].scores["slo_violation_minutes"]
    # the run's records are the health policy's, one per target per cycle
    records = list(logs["policy"].records())
    assert records and {r.policy for r in records} == {heals.name}
    assert {(r.to_dict().get("health") or {}).get("action") for r in records} >= healed_kinds


def bundled_healing():
    """policies/setpoint-healing.yaml's health checks alone (controller.policy.health_side, what
    ``setpoint simulate -p setpoint-healing.yaml --scaler hpa`` runs), as a team whose HPA scales."""
    [full] = load_policies([bundled_policy("setpoint-healing.yaml")])
    policy = health_side(full)
    assert full.scales and not policy.scales
    assert (policy.name, policy.targets, policy.health) == (full.name, full.targets, full.health)
    kept, whole = policy.model.model_dump(by_alias=True), full.model.model_dump(by_alias=True)
    assert kept["spec"].pop("scaling") is None and whole["spec"].pop("scaling") is not None
    assert kept == whole  # the scaling section set aside, nothing else
    return policy


@pytest.mark.parametrize("scenario_name, alone_minutes, healed_at_most, healed_kinds, reason", [
    # the rollout stalls with 7 of 9 pods Ready; HPA counts the 5 crash-looping ones at 0% CPU
    # (58% on average) and never scales while the load outgrows the 7 pods: a rollback in ~65 s
    pytest.param("crash-loop-ramp", (60, None), 2, {"rollback"}, "RollbackNewRevision", id="crash-loop-ramp"),
    # the same release at a steady load: 7 Ready pods carry 600 rps, so it costs nothing either way
    pytest.param("crash-loop", (0, 0), 0, {"rollback"}, "RollbackNewRevision", id="crash-loop-costs-nothing"),
    pytest.param("bad-rollout", (20, None), 2, {"rollback"}, "RollbackRevisionWorse", id="bad-rollout"),
    pytest.param("memory-leak", (5, None), 2, {"rolling-restart"}, "SystemicNoRestart", id="memory-leak"),
])
def test_the_bundled_healing_beside_hpa_removes_most_of_a_fault_s_violation_minutes(
        scenario_name, alone_minutes, healed_at_most, healed_kinds, reason):
    """The bundled healing policy's checks beside the hpa preset, against the hpa preset alone, on
    the scenario's own seed: docs/simulation.md's table."""
    heals = bundled_healing()
    runs, _ = run(scenario(scenario_name), heals, "hpa")
    alone, healed = runs["hpa"].scores["slo_violation_minutes"], runs["policy"].scores["slo_violation_minutes"]
    low, high = alone_minutes
    assert low <= alone and (high is None or alone <= high), alone
    assert healed <= healed_at_most and (healed < alone or alone == 0), (healed, alone)
    health = [a for a in runs["policy"].actions if a.policy == heals.name]
    assert {a.kind for a in health} == healed_kinds
    assert all(a.reason.startswith(reason) for a in health), [a.reason for a in health]
    assert not any(a.policy == heals.name for a in runs["hpa"].actions)


def test_fixed_replicas_change_only_by_the_health_policy_s_own_scale_ups():
    heals = healer("web-saturation", SATURATION, replicas="  replicas: {min: 2, max: 30}\n")
    sc = scenario("flash-crowd")
    runs, _ = run(sc, heals, "fixed")
    scales = [a for a in runs["policy"].actions if a.kind == "scale"]
    assert scales and all(a.policy == heals.name and a.to_replicas > a.from_replicas for a in scales)
    spec = runs["policy"].trajectory.spec_replicas[:, 0]
    initial = sc.cluster.services[0].initial_replicas
    assert spec[0] == initial
    changed_at = runs["policy"].trajectory.t_s[1:][np.diff(spec) != 0]
    assert changed_at.size == len(scales)  # no change but the policy's own
    assert sorted({int(v) for v in spec}) == sorted({initial, *(a.to_replicas for a in scales)})
    np.testing.assert_array_equal(runs["fixed"].trajectory.spec_replicas, initial)  # the scaler alone never moves


@pytest.mark.parametrize("scaler", [pytest.param("hpa", id="beside-hpa"), pytest.param("fixed", id="beside-fixed")])
def test_a_health_policy_that_never_fires_changes_nothing_of_the_scaler_s_run(scaler):
    """Steady load, healthy pods: the healer's Reconciler runs every cycle yet acts never, so the
    run is the scaler's alone, tick for tick (the two share the cluster and the metrics, and the
    healer reads nothing the scaler's decisions depend on)."""
    heals = healer("web-memory", MEMORY)
    runs, logs = run(scenario("steady"), heals, scaler)
    alone = "hpa" if scaler == "hpa" else "fixed"
    assert not [a for a in runs["policy"].actions if a.policy == heals.name]
    assert runs["policy"].scores == runs[alone].scores
    np.testing.assert_array_equal(runs["policy"].trajectory.spec_replicas, runs[alone].trajectory.spec_replicas)
    assert len(list(logs["policy"].records())) > 0  # it did run


def test_a_healed_run_gives_the_same_numbers_in_a_worker_process():
    """The healed run may go to a worker process (jobs > 1) when it keeps no records: the same scores."""
    heals = healer("web-memory", MEMORY)
    sc = scenario("memory-leak")
    specs = healing_controllers(heals, "hpa", ["oracle"], hpa(), None)
    here = run_controllers(sc, specs, keep_records=False, jobs=1)
    there = run_controllers(sc, specs, keep_records=False, jobs=2)
    assert [r.scores for r, _ in here] == [r.scores for r, _ in there]


def test_healing_controllers_refuse_an_unknown_scaler():
    with pytest.raises(ValueError, match="unknown scaler 'keda': expected hpa or fixed"):
        healing_controllers(healer("web-memory", MEMORY), "keda", [], hpa(), None)


def test_a_spec_with_a_healer_runs_its_reconcilers_scaler_first():
    heals = healer("web-memory", MEMORY)
    seen = []
    spec = ControllerSpec("policy", "policy", "", policy=hpa(), healer=heals)
    assert [p.name for p in spec.policies] == ["hpa-cpu", "web-memory"] and spec.cost_kind == "policy"
    fixed = ControllerSpec("policy", "fixed", "", healer=heals)
    assert [p.name for p in fixed.policies] == ["web-memory"] and fixed.cost_kind == "policy"
    short = replace(scenario("steady"), duration_s=60.0)
    run_controllers(short, [spec], on_cycle=lambda r: seen.append((r.now, r.policy)))
    first = [p for t, p in seen if t == seen[0][0]]
    assert first == ["hpa-cpu", "web-memory"]
