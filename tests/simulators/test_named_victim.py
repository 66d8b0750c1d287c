"""A pod-hang or pod-crash fault that names its victim (scenario ``pod``: an ordinal, or a
StatefulSet's pod name), for scenarios that need a given pod hit: a StatefulSet's condemned
ordinal (at or above its new replicas) against one it keeps. Before, the victims were drawn at
random (``count`` of them); a named victim draws nothing.

Vectorized engine, 5 s ticks from t=0, web: 5 pods of 100 rps at 200 rps, start-up 2 + 10 s.
"""

from __future__ import annotations

import pytest

from controller.errors import ScenarioError
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.scenario import load_scenario_text
from tests.simulators.helpers import run
from tests.simulators.test_pod_hang import not_ready, web


def restarted(cluster) -> list[str]:
    return sorted(p.name for p in cluster.statuses()[0].pods if p.restarts)


# name: (fault, StatefulSet row, (not-Ready pods, pods with a container restart) at 30 s; "third":
# the third pod created)
ROWS = {
    "hang web-3 of a StatefulSet": (F.PodHang(20.0, ordinal=3), True, (["web-3"], [])),
    "hang web-0 of a StatefulSet": (F.PodHang(20.0, ordinal=0), True, (["web-0"], [])),
    "crash web-4 of a StatefulSet (Ready again 10 s later)": (F.PodCrash(20.0, ordinal=4), True, ([], ["web-4"])),
    "no web-7: nothing hangs": (F.PodHang(20.0, ordinal=7), True, ([], [])),
    "a Deployment (offline runs): its pod of that creation rank": (F.PodHang(20.0, ordinal=2), False, (["third"], [])),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_the_named_pod_is_the_victim(name):
    fault, statefulset, (hung, crashed) = ROWS[name]
    cluster = SimCluster([web(initial_replicas=5)], 1, [fault])
    if statefulset:
        cluster.make_statefulset(0)
    third = cluster.statuses()[0].pods[2].name  # in creation order
    run(cluster, 30.0, 5.0, load=200.0)
    assert (not_ready(cluster), restarted(cluster)) == ([third] if hung == ["third"] else hung, crashed)


SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: victim}}
spec:
  duration: 10m
  tick: 5s
  slo: {{latency: {{percentile: 95, below: 250ms}}}}
  services:
    - name: web
      kind: StatefulSet
      capacityPerPod: 100
      initialReplicas: 4
      maxPods: 8
      load: [{{constant: {{rps: 200}}}}]
    - name: api
      capacityPerPod: 100
      load: [{{constant: {{rps: 200}}}}]
  faults:
    - {fault}
"""


@pytest.mark.parametrize("fault, expected", [
    pytest.param("{kind: pod-hang, at: 1m, pod: web-2}", (F.PodHang, ("web",), 2), id="by-name-hits-its-service"),
    pytest.param("{kind: pod-hang, at: 1m, pod: 3, services: [web]}", (F.PodHang, ("web",), 3), id="by-ordinal"),
    pytest.param("{kind: pod-crash, at: 1m, pod: web-0}", (F.PodCrash, ("web",), 0), id="a-crash-by-name"),
])
def test_a_named_victim_from_a_scenario_file(fault, expected):
    [f] = load_scenario_text(SCENARIO.format(fault=fault), "victim.yaml").faults
    assert (type(f), f.services, f.ordinal, f.count) == (*expected, 1)


@pytest.mark.parametrize("fault, field, problem", [
    pytest.param("{kind: pod-hang, at: 1m, pod: 2}", "pod", "api is a Deployment", id="ordinal-hits-a-deployment"),
    pytest.param("{kind: pod-hang, at: 1m, pod: api-0}", "pod", "api is a Deployment", id="a-deployments-pod"),
    pytest.param("{kind: pod-hang, at: 1m, pod: db-2}", "pod", "StatefulSet's pod name SERVICE-ORDINAL (web-0), got 'db-2'",
                 id="no-such-service"),
    pytest.param("{kind: pod-hang, at: 1m, pod: web-x}", "pod", "got 'web-x'", id="no-ordinal-in-the-name"),
    pytest.param("{kind: pod-crash, at: 1m, pod: web-8}", "pod", "beyond web's maxPods (8)", id="beyond-max-pods"),
    pytest.param("{kind: pod-hang, at: 1m, pod: web-2, count: 2}", "count", "must be 1 (or omitted) with pod",
                 id="a-count-beside-it"),
    pytest.param("{kind: pod-hang, at: 1m, pod: web-2, services: [api]}", "pod", "which services (api) leaves out",
                 id="services-leave-it-out"),
    pytest.param("{kind: pod-hang, at: 1m, pod: -1, services: [web]}", "pod", "must be an ordinal (0 to 999)",
                 id="negative"),
    pytest.param("{kind: pod-hang, at: 1m, pod: [1], services: [web]}", "pod", "or a pod name (web-3), got [1]",
                 id="a-list"),
    pytest.param("{kind: crash-loop, at: 1m, pod: 1}", "pod", "unknown field", id="not-for-other-faults"),
])
def test_a_bad_named_victim_is_refused_naming_file_line_and_field(fault, field, problem):
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(SCENARIO.format(fault=fault), "victim.yaml")
    text = str(err.value)
    assert f"victim.yaml:19: spec.faults[0].{field}" in text and problem in text, text
