"""A SimCluster row made a StatefulSet behaves as the StatefulSet controller (OrderedReady,
RollingUpdate): ordinal pod names, one pod at a time in ordinal order, updates from the highest
ordinal down to the partition, currentRevision once the update is complete.

Each row drives one StatefulSet ``db`` (start-up 10 s: 1 s scheduling + 9 s start) with ticks of
5 s from t=0 and reads its pods after each tick: (name, revision number, Ready).
"""

from __future__ import annotations

import numpy as np
import pytest

from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.workload import ClusterConfig, ServiceConfig

TICK_S = 5.0


def statefulset(replicas: int = 2) -> SimCluster:
    c = SimCluster([ServiceConfig("db", initial_replicas=replicas, scheduling_delay_s=1, startup_delay_s=9),
                    ServiceConfig("web", initial_replicas=2)], 1)
    c.make_statefulset(0)
    return c


def pods(c: SimCluster) -> list[tuple[str, str, bool]]:
    """db's pods by ordinal: (name, revision number, ready)."""
    st = c.statuses()[0]
    return sorted(((p.name, p.revision, p.ready) for p in st.pods), key=lambda p: int(p[0].rsplit("-", 1)[1]))


def run(c: SimCluster, ticks: int, t0: float = 0.0) -> tuple[float, list]:
    """Step ``ticks`` ticks from ``t0``; (time reached, db's pods after each tick)."""
    seen, t = [], t0
    for _ in range(ticks):
        t += TICK_S
        c.step(t, TICK_S, np.array([10.0, 10.0]))
        seen.append(pods(c))
    return t, seen


def test_initial_pods_are_named_by_ordinal():
    assert pods(statefulset(3)) == [("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", True)]
    assert SimCluster([ServiceConfig("db", initial_replicas=1)], 1).pod_names(0)[0].count("-") == 2  # a Deployment's


@pytest.mark.parametrize("start, to, expected", [
    # OrderedReady: db-2 first, db-3 only once db-2 is Ready (10 s), and so on
    pytest.param(2, 4, [[("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", False)],
                        [("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", True), ("db-3", "1", False)],
                        [("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", True), ("db-3", "1", False)],
                        [("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", True), ("db-3", "1", True)]],
                 id="scale-up-one-at-a-time-in-ordinal-order"),
    # the highest ordinal goes first: db-3, then db-2 (one a sync: at the write, then at each tick)
    pytest.param(4, 1, [[("db-0", "1", True), ("db-1", "1", True)], [("db-0", "1", True)], [("db-0", "1", True)],
                        [("db-0", "1", True)]],
                 id="scale-down-from-the-highest-ordinal"),
])
def test_scaling_goes_in_ordinal_order(start, to, expected):
    c = statefulset(start)
    c.set_replicas(0, to)
    _, seen = run(c, 4)
    assert seen == expected


def test_a_deleted_pod_comes_back_under_its_name_on_the_same_revision():
    c = statefulset(3)
    c.delete_pod(0, "db-1")
    assert pods(c) == [("db-0", "1", True), ("db-1", "1", False), ("db-2", "1", True)]
    _, seen = run(c, 2)
    assert seen[-1] == [("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", True)]


@pytest.mark.parametrize("partition, expected_last, current_seq, rolling", [
    pytest.param(0, [("db-0", "2", True), ("db-1", "2", True), ("db-2", "2", True)], 1, False,
                 id="whole-update-makes-the-revision-current"),
    pytest.param(2, [("db-0", "1", True), ("db-1", "1", True), ("db-2", "2", True)], 0, True,
                 id="partition-2-updates-db-2-only"),
])
def test_rolling_update_goes_from_the_highest_ordinal_down_to_the_partition(partition, expected_last, current_seq,
                                                                           rolling):
    c = statefulset(3)
    c.set_partition(0, partition)
    c.rollout(0)
    _, seen = run(c, 9)
    # one pod at a time: never two pods down, and db-2 first
    assert all(sum(not ready for _, _, ready in tick) <= 1 for tick in seen)
    assert seen[0] == [("db-0", "1", True), ("db-1", "1", True), ("db-2", "2", False)]
    assert seen[-1] == expected_last
    assert c.statefulset_current_seq(0) == current_seq and bool(c.rollout_in_progress[0]) is rolling


def test_order_of_the_update_is_2_then_1_then_0():
    c = statefulset(3)
    c.rollout(0)
    _, seen = run(c, 9)
    updated_first = []
    for tick in seen:
        for name, revision, _ in tick:
            if revision == "2" and name not in updated_first:
                updated_first.append(name)
    assert updated_first == ["db-2", "db-1", "db-0"]


def test_a_crash_looping_pod_holds_the_scale_up():
    """OrderedReady: db-2 of a crash-looping release is never Ready, so db-3 is never created."""
    from simulators.workload import RevisionProps
    c = statefulset(2)
    c.rollout(0, RevisionProps(crash_loop=True))
    c.set_partition(0, 2)  # db-0 and db-1 stay on the good revision
    c.set_replicas(0, 4)
    _, seen = run(c, 12)
    assert [name for name, _, _ in seen[-1]] == ["db-0", "db-1", "db-2"]
    assert seen[-1][2][1:] == ("2", False)


def test_a_deployment_row_is_unchanged_by_a_statefulset_beside_it():
    plain = SimCluster([ServiceConfig("db", initial_replicas=2), ServiceConfig("web", initial_replicas=2)], 1)
    mixed = statefulset(2)
    for c in (plain, mixed):
        c.set_replicas(1, 5)
        c.rollout(1)
    for k in range(1, 10):
        for c in (plain, mixed):
            c.step(k * TICK_S, TICK_S, np.array([10.0, 10.0]))
        assert plain.pod_names(1) == mixed.pod_names(1)


@pytest.mark.parametrize("start, to, expected", [
    pytest.param(2, 4, [("db-0", "1", True), ("db-1", "1", True), ("db-2", "1", False), ("db-3", "1", False)],
                 id="scale-up-all-at-once"),
    pytest.param(4, 1, [("db-0", "1", True)], id="scale-down-all-at-once"),
])
def test_parallel_pod_management_creates_and_removes_at_once(start, to, expected):
    c = SimCluster([ServiceConfig("db", initial_replicas=start, scheduling_delay_s=1, startup_delay_s=9)], 1)
    c.make_statefulset(0, parallel=True)
    c.set_replicas(0, to)
    assert pods(c) == expected


def test_parallel_pod_management_still_updates_one_pod_at_a_time():
    c = SimCluster([ServiceConfig("db", initial_replicas=3, scheduling_delay_s=1, startup_delay_s=9),
                    ServiceConfig("web", initial_replicas=2)], 1)
    c.make_statefulset(0, parallel=True)
    c.rollout(0)
    _, seen = run(c, 9)
    assert all(sum(not ready for _, _, ready in tick) <= 1 for tick in seen)
    assert seen[-1] == [("db-0", "2", True), ("db-1", "2", True), ("db-2", "2", True)]


def brief(c: SimCluster) -> str:
    """db's pods by ordinal in one line: ``db-1~`` not Ready, ``db-2@2`` on revision 2; then the
    ordinals terminating, ``| 3``."""
    shown = " ".join(name + ("" if ready else "~") + ("" if revision == "1" else f"@{revision}")
                     for name, revision, ready in pods(c))
    leaving = sorted(c.terminating_ordinals(0))
    return shown + (" | " + " ".join(map(str, leaving)) if leaving else "")


def delete_db_1(c: SimCluster) -> None:
    c.delete_pod(0, "db-1")


def update(c: SimCluster) -> None:
    c.rollout(0)


def scale_to(replicas: int):
    return lambda c: c.set_replicas(0, replicas)


def delete_pending_db_2(c: SimCluster) -> None:
    c.set_replicas(0, 3)  # db-2, Pending for its 1 s of scheduling
    c.delete_pod(0, "db-2")


@pytest.mark.parametrize("replicas, parallel, grace_s, act, expected", [
    # the replacement (same name) only once the old pod is gone: 12 s of grace, seen at the tick of 15 s
    pytest.param(3, False, 12.0, delete_db_1,
                 ["db-0 db-2 | 1", "db-0 db-2 | 1", "db-0 db-1~ db-2", "db-0 db-1~ db-2", "db-0 db-1 db-2"],
                 id="deleted-pod-recreated-under-its-name-once-gone"),
    pytest.param(3, False, 0.0, delete_db_1,
                 ["db-0 db-1~ db-2", "db-0 db-1 db-2", "db-0 db-1 db-2", "db-0 db-1 db-2", "db-0 db-1 db-2"],
                 id="no-grace-recreated-at-once"),
    pytest.param(3, True, 12.0, delete_db_1,
                 ["db-0 db-2 | 1", "db-0 db-2 | 1", "db-0 db-1~ db-2", "db-0 db-1~ db-2", "db-0 db-1 db-2"],
                 id="parallel-recreated-once-gone-too"),
    # OrderedReady: db-3 at the write, db-2 once db-3 is gone (15 s), db-1 once db-2 is (27 s: the tick of 30 s)
    pytest.param(4, False, 12.0, scale_to(1),
                 ["db-0 db-1 db-2 | 3", "db-0 db-1 db-2 | 3", "db-0 db-1 | 2", "db-0 db-1 | 2", "db-0 db-1 | 2",
                  "db-0 | 1"],
                 id="ordered-scale-down-waits-for-each-pod-to-be-gone"),
    pytest.param(4, True, 12.0, scale_to(1),
                 ["db-0 | 1 2 3", "db-0 | 1 2 3", "db-0", "db-0", "db-0", "db-0"],
                 id="parallel-scale-down-all-at-once"),
    # the update deletes db-2 at the tick of 5 s; its new-revision self comes at 20 s (gone at 17),
    # Ready at 30 s, when db-1 goes
    pytest.param(3, False, 12.0, update,
                 ["db-0 db-1 | 2", "db-0 db-1 | 2", "db-0 db-1 | 2", "db-0 db-1 db-2~@2", "db-0 db-1 db-2~@2",
                  "db-0 db-2@2 | 1"],
                 id="update-recreates-the-pod-once-gone"),
    pytest.param(2, False, 12.0, delete_pending_db_2,
                 ["db-0 db-1 db-2~", "db-0 db-1 db-2", "db-0 db-1 db-2"],
                 id="a-pending-pod-is-gone-at-once"),
])
def test_a_terminating_pod_holds_its_ordinal_until_it_is_gone(replicas, parallel, grace_s, act, expected):
    """As stateful_set_control.go: a terminating pod keeps its name (no replacement before it is
    gone), and OrderedReady waits on it (processReplica, processCondemned)."""
    c = SimCluster([ServiceConfig("db", initial_replicas=replicas, scheduling_delay_s=1, startup_delay_s=9),
                    ServiceConfig("web", initial_replicas=2)], 1)
    c.make_statefulset(0, parallel=parallel)
    c.set_termination_grace(0, 0, grace_s)
    c.set_termination_grace(0, 1, grace_s)  # the update's revision (seq 1)
    act(c)
    seen = []
    for k in range(1, len(expected) + 1):
        c.step(k * TICK_S, TICK_S, np.array([10.0, 10.0]))
        seen.append(brief(c))
    assert seen == expected


def test_the_update_revision_is_current_only_once_no_pod_terminates():
    """completeRollingUpdate: status.replicas counts a terminating pod; it is not updated."""
    c = statefulset(1)
    c.set_termination_grace(0, 0, 12.0)
    c.rollout(0)
    c.step(TICK_S, TICK_S, np.array([10.0, 10.0]))  # db-0 deleted, terminating until 17 s
    assert brief(c) == " | 0" and c.statefulset_current_seq(0) == 0 and bool(c.rollout_in_progress[0])
    t, _ = run(c, 5, TICK_S)
    assert brief(c) == "db-0@2" and c.statefulset_current_seq(0) == 1 and not c.rollout_in_progress[0]


def test_a_shorter_grace_ends_the_termination_and_the_pod_is_recreated_at_once():
    c = statefulset(3)
    c.set_termination_grace(0, 0, 30.0)
    c.delete_pod(0, "db-1")
    c.end_termination_at(0, 1, 100.0)  # longer: kept as it was
    assert c.terminating_ordinals(0) == {1: 30.0}
    c.end_termination_at(0, 1, 0.0)  # now: gone, and the controller recreates it
    assert brief(c) == "db-0 db-1~ db-2"


def node_loss_cluster(parallel: bool, duration_s: float | None) -> SimCluster:
    """db (a StatefulSet of 3) and web (a Deployment of 3) on 4 nodes of 2 pods: a node-loss of a
    quarter of them at 10 s takes 2 pods (seed 11: db-1 and one of web's)."""
    config = ClusterConfig((ServiceConfig("db", initial_replicas=3, scheduling_delay_s=1, startup_delay_s=9),
                            ServiceConfig("web", initial_replicas=3, scheduling_delay_s=1, startup_delay_s=9)),
                           nodes=4, pods_per_node=2)
    c = SimCluster(config, 11, [F.NodeLoss(10.0, duration_s=duration_s, share_ratio=0.25)])
    c.make_statefulset(0, parallel=parallel)
    return c


@pytest.mark.parametrize("parallel, duration_s, expected", [
    # db-1 lost at 10 s: its name held (no replacement, OrderedReady waits on it) until the node is
    # back at 40 s, recreated then, Ready 10 s later (at the tick of 50 s)
    pytest.param(False, 30.0, ["db-0 db-1 db-2"] + ["db-0 db-2 | 1"] * 6 + ["db-0 db-1~ db-2"] * 2 + ["db-0 db-1 db-2"],
                 id="replaced-once-the-node-is-back"),
    pytest.param(True, 30.0, ["db-0 db-1 db-2"] + ["db-0 db-2 | 1"] * 6 + ["db-0 db-1~ db-2"] * 2 + ["db-0 db-1 db-2"],
                 id="parallel-too"),
    pytest.param(False, None, ["db-0 db-1 db-2"] + ["db-0 db-2 | 1"] * 9, id="never-while-the-node-is-gone"),
])
def test_a_pod_on_a_lost_node_holds_its_name_until_the_node_is_back(parallel, duration_s, expected):
    """The StatefulSet controller makes no pod under a name whose object exists, and a pod of an
    unreachable node stays until its kubelet confirms it stopped (or a force delete); the
    Deployment beside it gets its replacement at once (its ReplicaSet counts the lost pod out)."""
    c = node_loss_cluster(parallel, duration_s)
    seen, web = [], []
    for k in range(1, len(expected) + 1):
        c.step(k * TICK_S, TICK_S, np.array([10.0, 10.0]))
        seen.append(brief(c))
        web.append(len(c.statuses()[1].pods))
    assert seen == expected
    assert web == [3] * len(expected)


def test_a_force_delete_frees_a_lost_pod_s_name_at_once():
    """``kubectl delete pod db-1 --grace-period=0 --force`` while its node is gone: recreated now."""
    c = node_loss_cluster(False, None)
    for k in (1, 2, 3):
        c.step(k * TICK_S, TICK_S, np.array([10.0, 10.0]))
    assert c.terminating_ordinals(0) == {1: np.inf}
    c.end_termination_at(0, 1, 15.0)
    assert brief(c) == "db-0 db-1~ db-2"
