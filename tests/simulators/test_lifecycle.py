"""Pod lifecycle: pending -> starting -> ready timing, scaling, deletion, names, node capacity.

Every test runs on both engines (vectorized and reference) unless it reads internals.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from controller.errors import NotFound, ScenarioError
from controller.model import Action, ActionKind, TargetRef
from simulators.cluster import SimCluster
from simulators.simcluster.slots import INITIAL_PODS_AGE_S
from tests.support.reference_cluster import ReferenceCluster
from simulators.workload import ClusterConfig, ServiceConfig
from tests.simulators.helpers import at, column, run

ENGINES = [pytest.param(SimCluster, id="vectorized"), pytest.param(ReferenceCluster, id="reference")]
NAME_RE = re.compile(r"^web-[bcdfghjklmnpqrstvwxz2456789]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$")


def svc(**kw) -> ServiceConfig:
    return ServiceConfig(**{"name": "web", "initial_replicas": 1, **kw})


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sched_s, startup_s, dt_s, ready_at_s, first_ready_tick_s", [
    pytest.param(2.0, 10.0, 5.0, 12.0, 15.0, id="2s-sched-10s-startup-5s-tick"),
    pytest.param(2.0, 30.0, 5.0, 32.0, 35.0, id="30s-startup"),
    pytest.param(5.0, 10.0, 5.0, 15.0, 15.0, id="delays-on-tick-boundaries"),
    pytest.param(0.0, 0.0, 5.0, 0.0, 5.0, id="no-delays-ready-at-next-tick"),
    pytest.param(2.0, 10.0, 1.0, 12.0, 12.0, id="1s-tick"),
])
def test_pod_becomes_ready_after_scheduling_and_startup_delays(engine, sched_s, startup_s, dt_s, ready_at_s,
                                                               first_ready_tick_s):
    cluster = engine([svc(scheduling_delay_s=sched_s, startup_delay_s=startup_s)], 1)
    ticks = run(cluster, 60.0, dt_s, script=[(0.0, lambda c: c.set_replicas(0, 2))])
    ready = column(ticks, "ready_replicas")
    times = np.array([s.at_s for s in ticks])
    assert ready[times < first_ready_tick_s].max() == 1
    assert (ready[times >= first_ready_tick_s] == 2).all()
    new_pod = cluster.statuses()[0].pods[1]
    assert new_pod.ready and new_pod.ready_transition_time == ready_at_s and new_pod.start_time == 0.0


@pytest.mark.parametrize("engine", ENGINES)
def test_new_pod_is_pending_then_running_not_ready_then_ready(engine):
    cluster = engine([svc(scheduling_delay_s=10.0, startup_delay_s=20.0)], 1)
    phases = {}
    run(cluster, 40.0, 5.0, script=[(0.0, lambda c: c.set_replicas(0, 2))] + [
        (t, lambda c, t=t: phases.__setitem__(t, (c.statuses()[0].pods[1].phase, c.statuses()[0].pods[1].ready)))
        for t in (5.0, 15.0, 30.0)])
    assert phases == {5.0: ("Pending", False), 15.0: ("Running", False), 30.0: ("Running", True)}


@pytest.mark.parametrize("engine", ENGINES)
def test_initial_pods_are_ready_at_start_with_revision_1(engine):
    cluster = engine(ClusterConfig((svc(initial_replicas=3),), start_s=1000.0), 1)
    status = cluster.statuses()[0]
    assert (status.spec_replicas, status.status_replicas, status.ready_replicas) == (3, 3, 3)
    assert status.revision == "1" and status.revisions == ("1",) and not status.rollout_in_progress
    # they have run a while: Ready an hour before the start, created one start-up (2 s + 30 s) before that
    ready_at = 1000.0 - INITIAL_PODS_AGE_S
    assert all(p.ready and p.revision == "1" and p.ready_transition_time == ready_at and p.start_time == ready_at - 32.0
               for p in status.pods)


@pytest.mark.parametrize("engine", ENGINES)
def test_scale_down_removes_not_ready_pods_first_then_newest_ready(engine):
    cluster = engine([svc(initial_replicas=3, startup_delay_s=30.0)], 1)
    names = {}

    def remember(c, key):
        names[key] = c.pod_names(0)

    run(cluster, 60.0, 5.0, script=[
        (0.0, lambda c: c.set_replicas(0, 5)),  # serials 3, 4 pending
        (0.0, lambda c: remember(c, "five")),
        (5.0, lambda c: c.set_replicas(0, 4)),  # a not-ready pod goes: the newest, serial 4
        (5.0, lambda c: remember(c, "four")),
        (40.0, lambda c: c.set_replicas(0, 2)),  # all ready: the newest go, serials 3 and 2
        (40.0, lambda c: remember(c, "two")),
    ])
    assert names["four"] == names["five"][:4]
    assert names["two"] == names["five"][:2]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("asked, expected", [
    pytest.param(50, 8, id="clamped-to-max-pods"),
    pytest.param(-3, 0, id="clamped-to-zero"),
    pytest.param(0, 0, id="scale-to-zero"),
])
def test_set_replicas_clamps_to_zero_and_max_pods(engine, asked, expected):
    cluster = engine([svc(max_pods=8)], 1)
    ticks = run(cluster, 60.0, 5.0, script=[(0.0, lambda c: c.set_replicas(0, asked))])
    assert column(ticks, "spec_replicas")[-1] == expected
    assert column(ticks, "ready_replicas")[-1] == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_deleted_pod_is_recreated_pending_with_a_new_name_and_counts_a_restart(engine):
    cluster = engine([svc(initial_replicas=3, scheduling_delay_s=2.0, startup_delay_s=10.0)], 1)
    before = cluster.pod_names(0)
    ticks = run(cluster, 30.0, 5.0, script=[(0.0, lambda c: c.delete_pod(0, before[1]))])
    after = cluster.pod_names(0)
    assert before[1] not in after and after[:1] == before[:1] and after[1] == before[2] and len(after) == 3
    assert list(column(ticks, "restarts_total")) == [0, 1, 1, 1, 1, 1, 1]
    assert list(column(ticks, "ready_replicas")) == [3, 2, 2, 3, 3, 3, 3]  # back at 12 s
    with pytest.raises(NotFound):
        cluster.delete_pod(0, "web-nosuchpod-xxxxx")


@pytest.mark.parametrize("engine", ENGINES)
def test_pod_names_follow_kubernetes_format_and_depend_only_on_the_seed(engine):
    names = lambda seed: engine([svc(initial_replicas=3)], seed).pod_names(0)  # noqa: E731
    assert all(NAME_RE.match(n) for n in names(1))
    assert names(1) == names(1) != names(2)
    assert len({n.rsplit("-", 1)[0] for n in names(1)}) == 1  # one revision hash


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("capacity", [
    pytest.param(dict(max_pods_total=5), id="cluster-pod-limit"),
    pytest.param(dict(nodes=1, pods_per_node=5), id="nodes-times-pods-per-node"),
])
def test_pods_beyond_node_capacity_stay_pending_until_capacity_frees(engine, capacity):
    config = ClusterConfig((svc(name="a", initial_replicas=2, startup_delay_s=30.0),
                            svc(name="b", initial_replicas=2, startup_delay_s=30.0)), **capacity)
    cluster = engine(config, 1)
    seen = {}
    ticks = run(cluster, 200.0, 5.0, script=[
        (0.0, lambda c: c.set_replicas(0, 4)),
        (100.0, lambda c: seen.__setitem__("pending", [p.phase for p in c.statuses()[0].pods])),
        (100.0, lambda c: c.set_replicas(1, 1)),  # frees one pod of capacity at t=100
    ])
    assert seen["pending"].count("Pending") == 1
    ready_a = column(ticks, "ready_replicas", 0)
    assert ready_a[[s.at_s == 35.0 for s in ticks]][0] == 3  # scheduled at 2 s, ready at 32 s
    assert at(ticks, 125.0).ready_replicas[0] == 3 and at(ticks, 130.0).ready_replicas[0] == 4  # 100 + 30 s


def test_scale_is_vectorized_over_services_and_ignores_unchanged_rows():
    cluster = SimCluster([svc(name=f"s{i}", initial_replicas=2) for i in range(4)], 1)
    cluster.scale(np.array([0, 1, 3]), np.array([5, 2, 0]))
    assert list(cluster.spec_replicas) == [5, 2, 2, 0]
    assert list(cluster.pod_count) == [5, 2, 2, 0]
    assert list(cluster.ready_replicas) == [2, 2, 2, 0]


def test_apply_maps_controller_actions_and_rejects_unknown_targets():
    cluster = SimCluster([svc(initial_replicas=2)], 1)
    ref = TargetRef("default", "web")
    cluster.apply(Action(ActionKind.SCALE, ref, "ScaleUp", replicas=4))
    cluster.apply(Action(ActionKind.RESTART_POD, ref, "Unhealthy", pod=cluster.pod_names(0)[0]))
    cluster.apply(Action(ActionKind.ROLLING_RESTART, ref, "Unhealthy"))
    cluster.apply(Action(ActionKind.RECORD, ref, "Noted"))
    status = cluster.statuses([ref])[0]
    assert status.spec_replicas == 4 and status.revision == "2" and status.rollout_in_progress
    view = cluster.view([ref])
    assert list(view.spec) == [4.0] and list(view.exists) == [True]
    with pytest.raises(NotFound):
        cluster.apply(Action(ActionKind.SCALE, TargetRef("other", "web"), "ScaleUp", replicas=1))


@pytest.mark.parametrize("config, field", [
    pytest.param([svc(capacity_rps=0.0)], "web.capacity_rps", id="zero-capacity"),
    pytest.param([svc(initial_replicas=40, max_pods=8)], "web.initial_replicas", id="initial-above-max"),
    pytest.param([svc(max_surge="x%")], "web.max_surge", id="bad-surge"),
    pytest.param([svc(), svc()], "web.name", id="duplicate-names"),
    pytest.param([svc(memory_limit_mib=100.0)], "web.memory_limit_mib", id="limit-below-base"),
])
def test_invalid_service_config_is_rejected_naming_the_field(config, field):
    with pytest.raises(ScenarioError) as err:
        SimCluster(config, 1)
    assert any(e.path == field for e in err.value.errors), str(err.value)


def test_a_copied_cluster_evolves_like_the_original():
    import copy

    original = SimCluster([svc(initial_replicas=2)], 1)
    original.set_replicas(0, 4)
    twin = copy.deepcopy(original)
    a = run(original, 60.0, 5.0)
    b = run(twin, 60.0, 5.0)
    assert list(column(a, "ready_replicas")) == list(column(b, "ready_replicas"))
    assert original.pod_names(0) == twin.pod_names(0)
