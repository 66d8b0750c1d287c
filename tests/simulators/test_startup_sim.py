"""The default policy (``startupDelay: observed``) in a simulation: a service whose pods take
90 s to start (plus 2 s scheduling) is sized with a ~137 s lead (92 s + interval 15 s + half the
1m window), a 10 s service with a ~57 s lead, from the first cycle on: the scenario's initial
pods have run a while and show their start-ups (creation -> Ready), as a live cluster's pods do
when a controller starts. The default runs with an observed-horizon forecast added
(``forecast: {startupDelay: observed}``), whose horizon follows the same lead."""

from __future__ import annotations

import pytest

from controller.policy import load_policies
from simulators.runner import simulate, standard_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.conftest_paths import POLICIES

SCENARIO = """
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: start-ups}
spec:
  duration: 40m
  tick: 5s
  seed: 1
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - {name: slow, capacityPerPod: 100, initialReplicas: 3, maxPods: 40, startupDelay: 90s, schedulingDelay: 2s,
       load: [{ramp: {from: 200, to: 1500, start: 5m, end: 25m}}]}
    - {name: quick, capacityPerPod: 100, initialReplicas: 3, maxPods: 40, startupDelay: 10s, schedulingDelay: 2s,
       load: [{ramp: {from: 200, to: 1500, start: 5m, end: 25m}}]}
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    text = (POLICIES / "setpoint-default.yaml").read_text(encoding="utf-8")
    ramp = "target: {averagePerReplica: 85, capacityPerReplica: 100}\n"
    assert ramp in text
    path = tmp_path_factory.mktemp("policy") / "default-forecast.yaml"
    path.write_text(text.replace(ramp, ramp + "        forecast: {startupDelay: observed}\n"), encoding="utf-8")
    policy = load_policies([path])[0]
    [spec] = standard_controllers(policy, [], None, 40)
    _, logs = simulate(load_scenario_text(SCENARIO, "start-ups.yaml"), [spec])
    return [r.to_dict() for r in logs["policy"].records()]


@pytest.mark.parametrize("service,delay_s", [pytest.param("slow", 92.0, id="90s-start-up-gets-a-137s-lead"),
                                             pytest.param("quick", 12.0, id="10s-start-up-gets-a-57s-lead")])
def test_the_lead_follows_the_observed_start_up(records, service, delay_s):
    mine = [r for r in records if r["target"].endswith("/" + service)]
    first = mine[0]["startup"]
    assert first["source"] == "observed" and first["pods"] == 3  # the initial pods' start-ups
    assert first["delay_s"] == pytest.approx(delay_s, abs=5.0)
    last = mine[-1]["startup"]
    assert last["delay_s"] == pytest.approx(delay_s, abs=5.0) and last["pods"] >= 3
    assert last["lead_s"]["rps"] == pytest.approx(delay_s + 45.0, abs=5.0)
    assert last["horizon_s"]["rps"] == last["lead_s"]["rps"]  # the forecast looks as far ahead (under its 3 m cap)
    # from the first observation on, every cycle uses it (the estimate never drops back)
    at = next(i for i, r in enumerate(mine) if r["startup"]["source"] == "observed")
    assert all(r["startup"]["source"] == "observed" for r in mine[at:])


def test_explain_prints_the_start_up_delay_and_where_it_came_from(records):
    from controller.cli.records import _format_record

    slow = [r for r in records if r["target"].endswith("/slow")]
    unseen = dict(slow[0], startup={"delay_s": 30.0, "source": "policy", "pods": 0, "lead_s": {"rps": 75.0}})
    assert "| start-up 30s (policy's initial value, 0 start-ups observed); lead rps 75s" in _format_record(unseen)
    line = _format_record(slow[-1])
    assert "| start-up 92s (observed over" in line and "lead rps 137s" in line
