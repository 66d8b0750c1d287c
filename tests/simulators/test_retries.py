"""Client retries (a service's ``retryRatio``): the share of the requests dropped in one tick
that clients send again in the next, on top of the load. The load balancer's rate (the recorded
``offered_rps``, ``requests_per_second``, ``http_requests_total``) includes them; under a
readiness outage (everything dropped) it settles at load / (1 - ratio)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from simulators.runner import ControllerSpec, simulate
from simulators.scenario import load_scenario_text


def outage_scenario(retry_ratio: float, rps_signal: str = "requests_per_second") -> str:
    """10 replicas of 100 rps at 700 rps; every pod unready from 10m to 20m."""
    return textwrap.dedent(f"""\
        apiVersion: setpoint/v1
        kind: Scenario
        metadata: {{name: retries-during-outage}}
        spec:
          duration: 40m
          tick: 5s
          seed: 5
          slo:
            latency: {{percentile: 95, below: 250ms}}
            errorRatio: 0.01
          services:
            - name: checkout
              capacityPerPod: 100
              initialReplicas: 10
              maxPods: 40
              retryRatio: {retry_ratio}
              load:
                - constant: {{rps: 700}}
          faults:
            - {{name: database-down, kind: readiness-outage, at: 10m, duration: 10m}}
          metrics: {{rps: {rps_signal}}}
        """)


def offered_with_fixed_replicas(retry_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    scenario = load_scenario_text(outage_scenario(retry_ratio), "retries.yaml")
    result, _ = simulate(scenario, [ControllerSpec("fixed", "fixed", "fixed at 10", replicas=10)], keep_records=False)
    traj = result.runs["fixed"].trajectory
    return traj.t_s, traj.offered_rps[:, 0]


def test_retry_ratio_reaches_the_service_config():
    scenario = load_scenario_text(outage_scenario(0.5), "retries.yaml")
    assert scenario.cluster.services[0].retry_ratio == 0.5
    assert load_scenario_text(outage_scenario(0.0), "r.yaml").cluster.services[0].retry_ratio == 0.0
    assert scenario.signal_for("rps") == "offered_rps"  # the load balancer's rate: retries included


@pytest.mark.parametrize("retry_ratio, during_outage", [
    pytest.param(0.5, 1400.0, id="half-retried-doubles-the-offered-load"),
    pytest.param(0.0, 700.0, id="no-retries-offered-stays-at-the-load"),
])
def test_offered_load_settles_at_load_over_one_minus_ratio_during_a_readiness_outage(retry_ratio, during_outage):
    t_s, offered = offered_with_fixed_replicas(retry_ratio)
    before = offered[t_s < 600.0]
    settled = offered[(t_s >= 660.0) & (t_s < 1200.0)]  # a minute into the outage: 0.5 ** 12 left to converge
    after = offered[t_s >= 1260.0]  # a minute after: the retries of the outage's drops are served
    np.testing.assert_allclose(before, 700.0, rtol=1e-12)
    np.testing.assert_allclose(settled, during_outage, rtol=0.01)
    np.testing.assert_allclose(after, 700.0, rtol=1e-12)
    assert offered.max() <= during_outage * (1 + 1e-9)  # geometric: bounded by load / (1 - ratio)


def spec_replicas(rps_signal: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from controller.policy import load_policies
    from tests.simulators.sweep_fixtures import DEFAULT_POLICY, HPA_POLICY
    default, hpa = load_policies([DEFAULT_POLICY])[0], load_policies([HPA_POLICY])[0]
    scenario = load_scenario_text(outage_scenario(0.5, rps_signal), "retries.yaml")
    result, _ = simulate(scenario, [ControllerSpec("default", "policy", "", policy=default),
                                    ControllerSpec("hpa", "policy", "", policy=hpa)], keep_records=False)
    return {name: (run.trajectory.t_s, run.trajectory.spec_replicas[:, 0]) for name, run in result.runs.items()}


def test_a_target_that_lost_every_ready_pod_is_not_scaled_up_on_its_clients_retries():
    """The TargetNotReady rule (normalize._missing_data, README): a target that had Ready pods
    and has none scales neither down nor up, and after a spell at least a metric window long it
    holds for that window and an interval once Ready again (its readings still average the spell).
    Before, with rps bound to the load balancer's rate, the clients' retries (1400 rps at 10 unready
    pods) took the default policy to 16 pods mid-outage, pods that could not get Ready either (8.65
    replica-hours); with the hold during the spell alone, the 1-minute rate still swollen by the
    outage's retries took it 10 -> 17 when the pods got Ready (7.86). Now it stays at 10 under both
    bindings (6.67). HPA on CPU holds during the outage (no pod serves) and scales up on the retry
    burst after it."""
    lb, pods = spec_replicas("requests_per_second"), spec_replicas("served_per_second")
    for runs in (lb, pods):
        t, spec = runs["default"]
        assert spec.min() == spec.max() == 10
        t, spec = runs["hpa"]  # HPA reads CPU: the rps binding does not matter
        assert spec[t < 1200.0].max() == 10 and spec[t >= 1200.0].max() > 10
