"""Rolling updates and rollbacks: maxSurge / maxUnavailable budgets, revision history."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.errors import NotFound
from simulators.cluster import SimCluster
from tests.support.reference_cluster import ReferenceCluster
from simulators.workload import RevisionProps, ServiceConfig, proportional_sizes, rollout_budget
from tests.simulators.helpers import column, run

ENGINES = [pytest.param(SimCluster, id="vectorized"), pytest.param(ReferenceCluster, id="reference")]


def web(**kw) -> ServiceConfig:
    return ServiceConfig(**{"name": "web", "scheduling_delay_s": 2.0, "startup_delay_s": 10.0, **kw})


def hashes(cluster) -> set[str]:
    return {name.rsplit("-", 2)[1] for name in cluster.pod_names(0)}


@pytest.mark.parametrize("spec, surge, unavailable, expected", [
    pytest.param(10, "25%", "25%", (3, 2), id="percent-surge-rounds-up-unavailable-down"),
    pytest.param(4, "25%", "25%", (1, 1), id="kubernetes-defaults-at-4"),
    pytest.param(1, "25%", "25%", (1, 0), id="one-replica-surges"),
    pytest.param(3, 0, 0, (0, 1), id="both-zero-means-one-unavailable"),
    pytest.param(10, "0%", "0%", (0, 1), id="both-zero-percent"),
    pytest.param(5, 2, "50%", (2, 2), id="int-and-percent"),
])
def test_rollout_budget_rounds_like_kubernetes(spec, surge, unavailable, expected):
    assert rollout_budget(spec, surge, unavailable) == expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("replicas, surge, unavailable", [
    pytest.param(4, "25%", "25%", id="defaults"),
    pytest.param(10, "25%", "25%", id="ten-replicas"),
    pytest.param(4, 1, 0, id="surge-only-never-below-spec"),
    pytest.param(4, 0, 1, id="unavailable-only-never-above-spec"),
    pytest.param(6, "50%", "0%", id="half-surge"),
    pytest.param(3, 3, 0, id="all-at-once"),
])
def test_rolling_restart_respects_surge_and_unavailable_and_completes(engine, replicas, surge, unavailable):
    cluster = engine([web(initial_replicas=replicas, max_pods=20, max_surge=surge, max_unavailable=unavailable)], 1)
    old = hashes(cluster)
    max_surge, max_unavailable = rollout_budget(replicas, surge, unavailable)
    ticks = run(cluster, 300.0, 5.0, script=[(0.0, lambda c: c.rolling_restart(0))])
    assert all(s.pods[0] <= replicas + max_surge for s in ticks)
    assert all(s.ready_replicas[0] >= replicas - max_unavailable for s in ticks)
    assert column(ticks, "rollout_in_progress")[1] and not ticks[-1].rollout_in_progress[0]
    assert ticks[-1].ready_replicas[0] == ticks[-1].pods[0] == replicas
    assert len(hashes(cluster)) == 1 and hashes(cluster) != old
    assert cluster.statuses()[0].revision == "2"


@pytest.mark.parametrize("engine", ENGINES)
def test_rollback_renumbers_the_target_revision_and_returns_to_its_template(engine):
    cluster = engine([web(initial_replicas=2)], 1)
    first = hashes(cluster)
    numbers = {}
    run(cluster, 400.0, 5.0, script=[
        (0.0, lambda c: c.rollout(0, RevisionProps(extra_latency_s=0.1))),
        (100.0, lambda c: c.rollout(0, RevisionProps(extra_error_ratio=0.1))),
        (200.0, lambda c: numbers.__setitem__("previous", c.rollback(0))),
        (300.0, lambda c: numbers.__setitem__("first", c.rollback(0, 1))),
    ])
    assert numbers == {"previous": 4, "first": 5}
    status = cluster.statuses()[0]
    assert status.revisions == ("3", "4", "5") and status.revision == "5"
    assert hashes(cluster) == first and all(p.revision == "5" for p in status.pods)


@pytest.mark.parametrize("engine", ENGINES)
def test_rollback_to_an_unknown_revision_or_without_history_is_not_found(engine):
    cluster = engine([web()], 1)
    with pytest.raises(NotFound):
        cluster.rollback(0)
    cluster.rolling_restart(0)
    with pytest.raises(NotFound):
        cluster.rollback(0, 7)


def test_a_forgotten_revision_is_no_longer_listed_nor_rolled_back_to_and_its_hash_is_not_reused():
    # sim serve trims ReplicaSets beyond revisionHistoryLimit through forget_revisions
    cluster = SimCluster([web(initial_replicas=2)], 1)
    run(cluster, 200.0, 5.0, script=[(0.0, lambda c: c.rolling_restart(0)), (100.0, lambda c: c.rolling_restart(0))])
    first, second, current = cluster.revisions(0)
    with pytest.raises(ValueError):
        cluster.forget_revisions(0, [current.seq])  # the current one has pods: never
    cluster.forget_revisions(0, [first.seq])
    assert [r.number for r in cluster.revisions(0)] == [2, 3] and cluster.statuses()[0].revisions == ("2", "3")
    with pytest.raises(NotFound):
        cluster.rollback(0, 1)
    cluster.rolling_restart(0)
    assert cluster.revisions(0)[-1].hash not in {first.hash, second.hash, current.hash}
    cluster.set_replicas(0, 4)  # mid-rollout: spread over the revisions left, the gap skipped
    end = run(cluster, 200.0, 5.0)[-1]
    assert (end.pods[0], end.ready_replicas[0], end.rollout_in_progress[0]) == (4, 4, False)
    assert {p.revision for p in cluster.statuses()[0].pods} == {"4"}
    assert cluster.rollback(0) == 5 and [r.number for r in cluster.revisions(0)] == [2, 5, 4]


@pytest.mark.parametrize("engine", ENGINES)
def test_scaling_during_a_rollout_still_converges_on_the_new_spec(engine):
    cluster = engine([web(initial_replicas=4, max_pods=20)], 1)
    ticks = run(cluster, 300.0, 5.0, script=[
        (0.0, lambda c: c.rolling_restart(0)),
        (5.0, lambda c: c.set_replicas(0, 8)),
        (15.0, lambda c: c.set_replicas(0, 3)),
    ])
    end = ticks[-1]
    assert (end.spec_replicas[0], end.pods[0], end.ready_replicas[0], end.rollout_in_progress[0]) == (3, 3, 3, False)
    assert len(hashes(cluster)) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_rolling_restart_keeps_the_revision_properties(engine):
    cluster = engine([web(initial_replicas=2, base_error_ratio=0.02)], 1)
    ticks = run(cluster, 100.0, 5.0, script=[(0.0, lambda c: c.rolling_restart(0))])
    assert ticks[0].error_ratio[0] == pytest.approx(0.02) and ticks[-1].error_ratio[0] == pytest.approx(0.02)
    assert ticks[-1].revision[0] == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_fast_rollback_mid_rollout_frees_the_unready_pods_and_recreates_the_stable_ones_at_once(engine):
    """A bad release caught during its rollout: its pods that serve nothing yet go at once and the
    stable revision's pods are created in the same sync (within the surge); the ready bad pods
    go as the stable ones become ready, never below maxUnavailable."""
    replicas = 10
    cluster = engine([web(initial_replicas=replicas, max_pods=20)], 1)
    surge, unavailable = rollout_budget(replicas, "25%", "25%")
    seen = {}

    def rollback(c):
        before = c.statuses()[0]
        seen["bad_unready"] = sum(p.revision == "2" and not p.ready for p in before.pods)
        c.rollback(0, "1", fast=True)
        after = c.statuses()[0]
        seen["bad_after"] = sum(p.revision == "2" for p in after.pods)
        seen["bad_ready_before"] = sum(p.revision == "2" and p.ready for p in before.pods)
        seen["stable_created"] = sum(p.revision == "3" and p.phase == "Pending" for p in after.pods)
        seen["pods_after"] = len(after.pods)

    ticks = run(cluster, 200.0, 5.0, script=[(0.0, lambda c: c.rollout(0, RevisionProps(error_ratio_multiplier=10.0))),
                                            (15.0, rollback)])
    assert seen["bad_unready"] > 0 and seen["bad_after"] == seen["bad_ready_before"]
    assert seen["stable_created"] > 0 and seen["pods_after"] <= replicas + surge
    assert all(s.ready_replicas[0] >= replicas - unavailable for s in ticks)
    status = cluster.statuses()[0]
    assert not ticks[-1].rollout_in_progress[0] and {p.revision for p in status.pods} == {"3"}
    assert len(status.pods) == replicas


@settings(max_examples=25, deadline=None)
@given(replicas=st.integers(2, 16), surge=st.sampled_from(["25%", "50%", 1, 0]),
       unavailable=st.sampled_from(["25%", "0%", 1, 2]), caught_at=st.sampled_from([0.0, 5.0, 15.0, 25.0, 35.0, 45.0]))
def test_a_fast_rollback_never_shrinks_the_stable_revision_nor_grows_the_abandoned_one(replicas, surge, unavailable,
                                                                                       caught_at):
    """Whenever the bad release is caught: from then on the stable revision's pods only grow
    (none is removed to make room), no pod of the abandoned revision is created (no further
    wave), the ready pods never fall below spec - maxUnavailable, and the rollback completes."""
    cluster = SimCluster([web(initial_replicas=replicas, max_pods=40, max_surge=surge, max_unavailable=unavailable)],
                         np.random.default_rng(0))
    _, max_unavailable = rollout_budget(replicas, surge, unavailable)
    counts = []

    def count(c):
        pods = c.statuses()[0].pods
        return (sum(p.revision in ("1", "3") for p in pods), sum(p.revision == "2" for p in pods))

    for t in np.arange(0.0, 241.0, 5.0):
        tick = cluster.step(float(t), 5.0, np.array([10.0 * replicas]))
        if t == 0.0:
            cluster.rollout(0, RevisionProps(error_ratio_multiplier=10.0))
        if t == caught_at:
            cluster.rollback(0, "1", fast=True)
        if t >= caught_at:
            counts.append(count(cluster))
            if t > caught_at:
                assert tick.ready_replicas[0] >= replicas - max_unavailable
    stable, bad = np.array(counts).T
    assert (np.diff(stable) >= 0).all() and (np.diff(bad) <= 0).all()
    assert bad[-1] == 0 and stable[-1] == replicas and not cluster.rollout_in_progress[0]


@pytest.mark.parametrize("sizes, old_spec, new_spec, expected", [
    # spec 8 (allowed 10) -> 10 (allowed 13): +3 spread 6:4 -> round(7.8)=8, then 1 left for 4
    pytest.param([6, 4], 8, 10, [8, 5], id="up-spread-over-old-and-new"),
    # spec 8 -> 6 (allowed 10 -> 8): -2, largest first: round(6 * 0.8) = 5, round(4 * 0.8) = 3
    pytest.param([6, 4], 8, 6, [5, 3], id="down-spread-over-old-and-new"),
    pytest.param([5, 5], 8, 10, [6, 7], id="up-tie-newer-first"),
    pytest.param([5, 5], 8, 6, [4, 4], id="down-tie-older-first"),
    pytest.param([0, 8], 8, 12, [0, 12], id="one-active-replicaset-gets-the-spec"),
    pytest.param([8, 0], 8, 4, [4, 0], id="only-the-old-one-active-paused-rollout"),
    pytest.param([0, 0], 0, 3, [0, 3], id="none-active-the-newest"),
    pytest.param([6, 4], 8, 0, [0, 0], id="to-zero"),
    # allowed 5 -> 10, 6 pods: +4, largest first: 3 -> 6 (+3), 2 -> min(4, 1 left) = 3, 1 unchanged
    pytest.param([2, 1, 3], 4, 8, [3, 1, 6], id="three-revisions-largest-first-within-the-allowed"),
    # allowed 10 -> 8 (6 + surge 2), 13 pods: -5; 8 -> round(6.4) = 6, 5 -> 4, leftover -2 to the largest
    pytest.param([8, 5], 8, 6, [4, 4], id="down-leftover-to-the-largest"),
])
def test_proportional_sizes_follow_the_deployment_controller(sizes, old_spec, new_spec, expected):
    assert proportional_sizes(sizes, old_spec, new_spec, "25%", "25%") == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_scaling_up_during_a_stuck_rollout_grows_the_old_revision_too(engine):
    """A real Deployment spreads a scale-up over its ReplicaSets in proportion to their sizes; a
    stuck (crash-looping) rollout must not swallow every new replica."""
    cluster = engine([web(initial_replicas=8, max_pods=40)], 1)
    ticks = run(cluster, 300.0, 5.0, script=[
        (0.0, lambda c: c.rollout(0, RevisionProps(crash_loop=True))),
        (150.0, lambda c: c.set_replicas(0, 16))])
    before = [s for s in ticks if s.at_s < 150.0][-1]
    assert before.ready_replicas[0] == 6  # 8 - 25% unavailable: the rollout is stuck
    # 16 + 4 surge = 20 pods: the 6 old pods (of 10) become 12, the 4 new ones 8
    assert ticks[-1].ready_replicas[0] == 12
    assert ticks[-1].pods[0] == 20
