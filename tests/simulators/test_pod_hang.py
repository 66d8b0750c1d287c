"""The pod-hang fault (simulators/faults.py PodHang): a given number of Ready pods of a service hang
(a stuck process): running, not Ready, serving nothing, while the others serve; a restart of the
pod, its deletion or the fault's end cures it, not the end of a readiness outage.

Vectorized engine (the reference engine, tests/support/reference_cluster.py, does not model it),
5 s ticks from t=0, web: 4 pods of 100 rps at 200 rps, start-up 2 + 10 s. Times are fixed.
"""

from __future__ import annotations

import pytest

from controller.errors import ScenarioError
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.scenario import load_scenario_text
from tests.simulators.helpers import column, run


def web(**kw):
    from simulators.workload import ServiceConfig
    return ServiceConfig(**{"name": "web", "initial_replicas": 4, "capacity_rps": 100.0, "scheduling_delay_s": 2.0,
                            "startup_delay_s": 10.0, **kw})


def not_ready(cluster) -> list[str]:
    return sorted(p.name for p in cluster.statuses()[0].pods if not p.ready)


def delete_the_hung_pod(cluster) -> None:
    [hung] = not_ready(cluster)
    cluster.delete_pod(0, hung)


# (faults, script, ready pods per tick from 0 to 120 s, not-Ready pods at 120 s)
CASES = [
    pytest.param([F.PodHang(20.0)], [], [4] * 4 + [3] * 21, 1, id="one-pod-hangs-until-restarted"),
    pytest.param([F.PodHang(20.0, count=2)], [], [4] * 4 + [2] * 21, 2, id="two-pods-hang"),
    pytest.param([F.PodHang(20.0, count=9)], [], [4] * 4 + [0] * 21, 4, id="more-than-there-are-hangs-all"),
    pytest.param([F.PodHang(20.0, duration_s=60.0)], [], [4] * 4 + [3] * 12 + [4] * 9, 0, id="its-end-cures-it"),
    # deleted at 50 s: its replacement is scheduled (2 s) and started (10 s), Ready at 62 s
    pytest.param([F.PodHang(20.0)], [(50.0, delete_the_hung_pod)], [4] * 4 + [3] * 9 + [4] * 12, 0,
                 id="deleting-it-cures-it"),
    # a readiness outage 30-60 s: every pod not Ready, then all but the hung one Ready again
    pytest.param([F.PodHang(20.0), F.ReadinessOutage(30.0, duration_s=30.0)], [],
                 [4] * 4 + [3] * 2 + [0] * 6 + [3] * 13, 1, id="a-readiness-outages-end-does-not-cure-it"),
    # sticky (a poison node or volume): the replacement made at 50 s hangs as its start-up ends
    # (62 s), never Ready; deleted again at 80 s, so does the next one
    pytest.param([F.PodHang(20.0, sticky=True)], [(50.0, delete_the_hung_pod)], [4] * 4 + [3] * 21, 1,
                 id="sticky-its-replacement-hangs-too"),
    pytest.param([F.PodHang(20.0, sticky=True)], [(50.0, delete_the_hung_pod), (80.0, delete_the_hung_pod)],
                 [4] * 4 + [3] * 21, 1, id="sticky-every-replacement-hangs"),
    # the fault's end (90 s) cures the replacement that hangs in its place: Ready at once
    pytest.param([F.PodHang(20.0, duration_s=70.0, sticky=True)], [(50.0, delete_the_hung_pod)],
                 [4] * 4 + [3] * 14 + [4] * 7, 0, id="sticky-ends-with-the-fault-its-replacement-ready"),
    # a replacement still starting at the fault's end (made at 85 s, end 90 s) is Ready at 97 s
    pytest.param([F.PodHang(20.0, duration_s=70.0, sticky=True)], [(50.0, delete_the_hung_pod),
                                                                   (85.0, delete_the_hung_pod)],
                 [4] * 4 + [3] * 16 + [4] * 5, 0, id="sticky-ends-with-the-fault-a-starting-replacement-gets-ready"),
]


@pytest.mark.parametrize("faults, script, ready, hung_at_end", CASES)
def test_hung_pods_are_not_ready_and_serve_nothing_while_the_others_serve(faults, script, ready, hung_at_end):
    cluster = SimCluster([web()], 1, faults)
    ticks = run(cluster, 120.0, 5.0, load=200.0, script=script)
    assert list(column(ticks, "ready_replicas")) == ready
    assert len(not_ready(cluster)) == hung_at_end
    assert sum(p.restarts for p in cluster.statuses()[0].pods) == 0  # no container restarted: a hang, not a crash
    hung_ticks = [s for s in ticks if s.at_s >= 20.0 and s.ready_replicas[0] == 3]
    assert all(s.served_rps[0] == 200.0 and s.capacity_rps[0] == 300.0 for s in hung_ticks)  # the others carry the load


def test_a_hung_pod_is_running_with_no_waiting_reason_and_same_age():
    cluster = SimCluster([web()], 1, [F.PodHang(20.0)])
    before = {p.name: p.start_time for p in cluster.statuses()[0].pods}
    run(cluster, 60.0, 5.0, load=200.0)
    [hung] = [p for p in cluster.statuses()[0].pods if not p.ready]
    assert (hung.phase, hung.waiting, hung.restarts, hung.start_time) == ("Running", "", 0, before[hung.name])
    assert hung.ready_transition_time == 20.0  # not Ready since the hang


def test_its_victims_are_drawn_from_its_own_stream():
    """The same seed hangs the same pod; a pod-crash beside it draws from its own stream."""
    def hung_with(faults) -> list[str]:
        cluster = SimCluster([web()], 7, faults)
        run(cluster, 30.0, 5.0, load=200.0)
        return not_ready(cluster)

    alone = hung_with([F.PodHang(20.0)])
    assert hung_with([F.PodHang(20.0)]) == alone
    assert hung_with([F.PodCrash(5.0), F.PodHang(20.0)]) == alone


SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: hang}}
spec:
  duration: 10m
  tick: 5s
  slo: {{latency: {{percentile: 95, below: 250ms}}}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 4
      load: [{{constant: {{rps: 200}}}}]
  faults:
    - {fault}
"""


@pytest.mark.parametrize("fault, field, problem", [
    pytest.param("{kind: pod-hang, at: 1m, count: 0}", "count", "must be >= 1", id="no-pod"),
    pytest.param("{kind: pod-hang, at: 1m, duration: 0s}", "duration", "longer than 0s", id="zero-duration"),
    pytest.param("{kind: pod-hang, at: 1m, pods: 2}", "pods", "unknown field", id="unknown-field"),
    pytest.param("{kind: pod-hang, at: 1m, services: [db]}", "services", "db", id="unknown-service"),
])
def test_a_bad_pod_hang_is_refused_naming_file_line_and_field(fault, field, problem):
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(SCENARIO.format(fault=fault), "hang.yaml")
    text = str(err.value)
    assert "hang.yaml" in text and ":14" in text and field in text and problem in text, text


def test_a_pod_hang_from_a_scenario_file():
    sc = load_scenario_text(SCENARIO.format(fault="{name: stuck, kind: pod-hang, at: 1m, count: 2, duration: 5m}"),
                            "hang.yaml")
    [fault] = sc.faults
    assert (type(fault), fault.count, fault.duration_s, fault.services) == (F.PodHang, 2, 300.0, None)
