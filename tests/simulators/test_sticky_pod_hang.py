"""A sticky pod hang (scenario ``sticky: true``, simulators/faults.py PodHang.sticky): the cause stays
with the victim (a poison node or volume), so its restarted container, or the pod created in its
place when it is deleted (a ReplicaSet's newest pod; a StatefulSet's pod at the same ordinal),
hangs again as its start-up ends, until the fault ends; a scale-down that removes it ends it.
Before, a restart or a deletion always cured a hang, and the scenario refused the field.

Vectorized engine (the reference engine, tests/support/reference_cluster.py, does not model pod
hangs), 5 s ticks from t=0, web: 4 pods of 100 rps at 200 rps, start-up 2 + 10 s. Times are fixed.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.errors import ScenarioError
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.scenario import load_scenario_text
from tests.simulators.helpers import column, run
from tests.simulators.test_named_victim import SCENARIO as TWO_SERVICES
from tests.simulators.test_pod_hang import SCENARIO, delete_the_hung_pod, not_ready, web


def scale_to(n: int):
    return lambda cluster: cluster.scale(np.array([0]), np.array([n]))


def restarts(cluster) -> int:
    return sum(p.restarts for p in cluster.statuses()[0].pods)


# (faults, StatefulSet row, script, ready pods per tick from 0 to 120 s, not-Ready pods at 120 s,
# container restarts at 120 s)
CASES = [
    # its container restarted at 50 s (a crash of the hung pod, the third created): starting until
    # 60 s, then hung again
    pytest.param([F.PodHang(20.0, ordinal=2, sticky=True), F.PodCrash(50.0, ordinal=2)], False, [],
                 [4] * 4 + [3] * 21, 1, 1, id="its-restarted-container-hangs-again"),
    pytest.param([F.PodHang(20.0, ordinal=2), F.PodCrash(50.0, ordinal=2)], False, [],
                 [4] * 4 + [3] * 8 + [4] * 13, 0, 1, id="not-sticky-a-restart-cures-it"),
    # a StatefulSet: web-2 deleted at 50 s is recreated at its ordinal, and hangs again
    pytest.param([F.PodHang(20.0, ordinal=2, sticky=True)], True, [(50.0, delete_the_hung_pod)],
                 [4] * 4 + [3] * 21, 1, 0, id="a-statefulsets-recreated-ordinal-hangs-again"),
    # scaled down to 3 at 40 s (the hung pod goes first), up to 4 at 60 s: the new pod (Ready at
    # 72 s) is no replacement of the victim
    pytest.param([F.PodHang(20.0, sticky=True)], False, [(40.0, scale_to(3)), (60.0, scale_to(4))],
                 [4] * 4 + [3] * 11 + [4] * 10, 0, 0, id="a-scale-down-that-removes-it-ends-it"),
]


@pytest.mark.parametrize("faults, statefulset, script, ready, hung_at_end, restarted", CASES)
def test_a_sticky_hang_follows_its_victim_through_restarts_and_replacements(faults, statefulset, script, ready,
                                                                           hung_at_end, restarted):
    cluster = SimCluster([web()], 1, faults)
    if statefulset:
        cluster.make_statefulset(0)
    ticks = run(cluster, 120.0, 5.0, load=200.0, script=script)
    assert list(column(ticks, "ready_replicas")) == ready
    assert (len(not_ready(cluster)), restarts(cluster)) == (hung_at_end, restarted)


def test_a_statefulsets_sticky_victim_keeps_its_name():
    cluster = SimCluster([web()], 1, [F.PodHang(20.0, ordinal=2, sticky=True)])
    cluster.make_statefulset(0)
    run(cluster, 120.0, 5.0, load=200.0, script=[(50.0, delete_the_hung_pod), (80.0, delete_the_hung_pod)])
    assert not_ready(cluster) == ["web-2"]


@pytest.mark.parametrize("fault, sticky", [
    pytest.param("{kind: pod-hang, at: 1m, sticky: true}", True, id="sticky"),
    pytest.param("{kind: pod-hang, at: 1m, sticky: false}", False, id="not-sticky"),
    pytest.param("{kind: pod-hang, at: 1m}", False, id="omitted-a-restart-cures-it"),
])
def test_sticky_from_a_scenario_file(fault, sticky):
    [f] = load_scenario_text(SCENARIO.format(fault=fault), "hang.yaml").faults
    assert (type(f), f.sticky) == (F.PodHang, sticky)


def test_a_named_sticky_victim_from_a_scenario_file():
    [f] = load_scenario_text(TWO_SERVICES.format(fault="{kind: pod-hang, at: 1m, pod: web-2, sticky: true}"),
                             "victim.yaml").faults
    assert (f.services, f.ordinal, f.sticky) == (("web",), 2, True)


@pytest.mark.parametrize("fault, problem", [
    pytest.param("{kind: pod-hang, at: 1m, sticky: yes please}", "expected true or false, got 'yes please'", id="not-a-boolean"),
    pytest.param("{kind: pod-hang, at: 1m, sticky: 1}", "expected true or false, got 1", id="a-number"),
    pytest.param("{kind: pod-crash, at: 1m, sticky: true}", "unknown field", id="not-for-a-crash"),
])
def test_a_bad_sticky_is_refused_naming_file_line_and_field(fault, problem):
    with pytest.raises(ScenarioError) as err:
        load_scenario_text(SCENARIO.format(fault=fault), "hang.yaml")
    text = str(err.value)
    assert "hang.yaml:14: spec.faults[0].sticky" in text and problem in text, text
