"""A readiness outage end to end: what the controllers do while no pod of a service is Ready.

A dependency every pod checks (a database, a downstream API) is down for 20 minutes: the 10 pods
of ``web`` keep running but fail their readiness probe, so the service serves nothing while its
load stays constant. The bundled default policy must neither scale down during the window (what
its request rate reads is not the demand: core/scaling/normalize.py's TargetNotReady hold) nor
replace the stuck pods round after round up to replicas.max (core/scaling/withheld.py: no
withheld replica without a Ready pod), and the service must serve again once the dependency is
back. The ``hpa`` preset (policies/hpa-cpu.yaml) runs beside it: its CPU utilization has no
sample without a Ready pod, and it holds as HPA does.

The request rate is read in two places, one row each: at the load balancer (the scenario's
default binding of ``rps``, ``requests_per_second``: the offered load, as the simulated
apiserver's ``http_requests_total``), which still reads the demand; and at the pods
(``served_per_second``), which reads 0 while no pod is Ready.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from controller.policy import load_policies
from simulators.runner import simulate, standard_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.conftest_paths import POLICIES

START_S, END_S = 20 * 60.0, 40 * 60.0  # the outage, s since the start
LOAD_RPS, SPEC_BEFORE = 700.0, 10
#: scheduling (2 s) + start-up (30 s), the scenario's defaults
STARTUP_S = 32.0

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: readiness-outage-e2e}}
spec:
  duration: 60m
  tick: 5s
  seed: 1
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: {spec}
      maxPods: 40
      load:
        - constant: {{rps: {load:g}}}{extra}
  faults:
    - {{name: db-down, kind: readiness-outage, at: 20m, duration: 20m, services: [web]}}
  metrics: {{rps: {binding}}}
"""

BINDINGS = [pytest.param("requests_per_second", id="rate-read-at-the-load-balancer"),
            pytest.param("served_per_second", id="rate-read-at-the-pods")]


@lru_cache(maxsize=None)
def outcome(binding: str, extra_load: str = ""):
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    text = SCENARIO.format(spec=SPEC_BEFORE, load=LOAD_RPS, binding=binding, extra=extra_load)
    sc = load_scenario_text(text, "readiness-outage.yaml")
    result, logs = simulate(sc, standard_controllers(policy, ["hpa"], hpa, policy.params.max_replicas))
    return result, logs, policy


def spans(result, controller: str) -> dict[str, np.ndarray]:
    traj = result.runs[controller].trajectory
    t, spec = traj.t_s, traj.spec_replicas[:, 0]
    return {"before": spec[t < START_S], "during": spec[(t >= START_S) & (t < END_S)], "after": spec[t >= END_S]}


def window_records(logs, controller: str) -> list[dict]:
    return [r for r in (rec.to_dict() for rec in logs[controller].records()) if START_S <= r["at"] < END_S]


@pytest.mark.parametrize("binding", BINDINGS)
def test_the_default_policy_neither_scales_down_nor_runs_to_max_during_the_outage(binding):
    result, logs, policy = outcome(binding)
    spec = spans(result, "policy")
    assert (spec["before"] == SPEC_BEFORE).all()
    # no scale-down; and no withheld replica without a Ready pod: spec stays at the pre-outage count
    assert spec["during"].min() == SPEC_BEFORE and spec["during"].max() == SPEC_BEFORE
    records = window_records(logs, "policy")
    assert len(records) == (END_S - START_S) / policy.params.interval_s
    assert all(r["ready"] == 0 and not r.get("withheld") for r in records)
    # wherever the rate proposed fewer pods, the scale-down was held as TargetNotReady
    assert all(r["reason"] == "TargetNotReady" for r in records if r["combined"] < r["current"])
    assert not any(r["reason"] in ("ScaleDown", "ScaleUp", "ClampedToMax") for r in records)


@pytest.mark.parametrize("binding, reads_rps, reasons", [
    pytest.param("requests_per_second", LOAD_RPS, {"WithinTolerance"}, id="rate-read-at-the-load-balancer"),
    pytest.param("served_per_second", 0.0, {"TargetNotReady"}, id="rate-read-at-the-pods"),
])
def test_what_the_request_rate_reads_while_no_pod_is_ready(binding, reads_rps, reasons):
    """At the balancer the rate still reads the demand (nothing to hold); at the pods it reads
    0 once the rate's 1-minute window has no served request left, and every cycle holds."""
    _, logs, _ = outcome(binding)
    records = window_records(logs, "policy")
    settled = [r for r in records if r["at"] >= START_S + 60.0]
    assert {r["metrics"]["rps"]["raw"] for r in settled} == {reads_rps}
    assert {r["reason"] for r in records} == reasons


@pytest.mark.parametrize("binding", BINDINGS)
def test_the_hpa_preset_holds_without_a_cpu_sample(binding):
    """No Ready pod, no CPU utilization sample: the hpa preset keeps its replicas (MetricsMissing)."""
    result, logs, _ = outcome(binding)
    spec = spans(result, "hpa")
    assert (spec["before"] == SPEC_BEFORE).all() and (spec["during"] == SPEC_BEFORE).all()
    reasons = [r["reason"] for r in window_records(logs, "hpa") if r["at"] >= START_S + 60.0]
    assert reasons and set(reasons) == {"MetricsMissing"}


@pytest.mark.parametrize("controller", ["policy", "hpa"])
@pytest.mark.parametrize("binding", BINDINGS)
def test_service_serves_again_within_a_few_start_ups_after_the_outage(binding, controller):
    result, _, _ = outcome(binding)
    run = result.runs[controller]
    traj = run.trajectory
    t, served, offered = traj.t_s, traj.served_rps[:, 0], traj.offered_rps[:, 0]
    during = (t >= START_S) & (t < END_S)
    assert (served[during] == 0.0).all() and (offered[during] == LOAD_RPS).all()
    back = t >= END_S + 2 * STARTUP_S
    assert (served[back] == offered[back]).all() and (traj.ready_replicas[back, 0] > 0).all()
    assert run.scores["mitigation_seconds"]["db-down"] <= END_S - START_S + 2 * STARTUP_S
    assert run.scores["slo_violation_minutes"] <= (END_S - START_S) / 60 + 2


@pytest.mark.parametrize("binding", BINDINGS)
def test_the_default_policy_does_not_overshoot_when_the_pods_get_ready_again(binding):
    """Read at the pods, the rate's window refills from 0 to the load in a minute when they are
    Ready again; the ramp took that for a rising load (10 -> 17 -> 20, replicas.max, for a load
    that needs 9) until it ignored slopes for two windows after a cycle with no Ready pod."""
    result, _, policy = outcome(binding)
    after = spans(result, "policy")["after"]
    assert after.max() <= SPEC_BEFORE < policy.params.max_replicas


def test_pods_held_by_the_outage_do_not_count_as_slow_start_ups():
    """The load steps up mid-outage (700 -> 1100 rps at 30m, read at the balancer): the policy
    scales up, its new pods start but are Ready only when the dependency is back."""
    _, logs, _ = outcome("requests_per_second", "\n        - step: {at: 30m, from: 0, to: 400}")
    after = [r for r in (rec.to_dict() for rec in logs["policy"].records()) if r["at"] >= END_S + 60.0]
    assert after and max(r["startup"]["delay_s"] for r in after) <= 2 * STARTUP_S


# --------------------------------------------------------------------------- a flapping dependency
FLAP_EVERY_S, FLAPS = 60.0, 20  # a spell every minute from 20m, twenty of them


@lru_cache(maxsize=None)
def flapping(binding: str, spell_s: float):
    """The default policy alone on ``web`` at a constant 700 rps (70 per pod, under its 85 target)
    while a dependency every pod checks is down for ``spell_s`` of every minute from 20m to 40m."""
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    faults = "".join(f"    - {{name: flap{k}, kind: readiness-outage, at: {START_S + k * FLAP_EVERY_S:g}s, "
                     f"duration: {spell_s:g}s, services: [web]}}\n" for k in range(FLAPS))
    text = SCENARIO.format(spec=SPEC_BEFORE, load=LOAD_RPS, binding=binding, extra="")
    text = text.replace("  faults:\n    - {name: db-down, kind: readiness-outage, at: 20m, duration: 20m, services: [web]}\n",
                        "  faults:\n" + faults)
    assert "flap0" in text and "db-down" not in text
    result, _ = simulate(load_scenario_text(text, "flapping.yaml"), standard_controllers(policy, [], None, 20))
    return result.runs["policy"].trajectory


@pytest.mark.parametrize("spell_s", [pytest.param(10.0, id="10s-spells"), pytest.param(20.0, id="20s-spells"),
                                     pytest.param(45.0, id="45s-spells-shorter-than-the-rate-window")])
@pytest.mark.parametrize("binding", BINDINGS)
def test_a_flapping_dependency_does_not_scale_the_workload(binding, spell_s):
    """Spells shorter than the rate's [1m] window: read at the pods, each dips the rate and it
    refills over the next minute. Taken as a rising load, that refill makes the ramp ask for
    more pods after every spell, in every workload that checks the dependency: with the ramp's
    pause after a cycle with no Ready pod (ramp.py, dark_s) taken out, 10 -> 14 replicas with
    10 s spells and 10 -> 20 (replicas.max) with 20 s and 45 s ones. The load is constant: the
    replicas must stay where they were, and the service must be dark at some cycles (the
    spells are seen) and serve between them."""
    traj = flapping(binding, spell_s)
    t, spec, ready = traj.t_s, traj.spec_replicas[:, 0], traj.ready_replicas[:, 0]
    flaps = (t >= START_S) & (t < START_S + FLAPS * FLAP_EVERY_S)
    assert (ready[flaps] == 0).any() and (ready[flaps] > 0).any()
    assert (spec == SPEC_BEFORE).all()
