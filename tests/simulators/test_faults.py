"""Each fault's effect, its timing, and its end; on both engines."""

from __future__ import annotations

import numpy as np
import pytest

from controller.errors import ScenarioError
from simulators import faults as F
from simulators.cluster import SimCluster
from tests.support.reference_cluster import ReferenceCluster
from simulators.workload import ClusterConfig, ServiceConfig
from tests.simulators.helpers import at, column, run

ENGINES = [pytest.param(SimCluster, id="vectorized"), pytest.param(ReferenceCluster, id="reference")]

#: On one pytest-xdist worker: with a warm numba cache the module takes ~0.2 s of CPU, but the
#: fault paths of the engine's kernels are not among those the suite's warm-up compiles, and on
#: a cold cache (CI's fresh checkout) each worker that got a vectorized row compiled them at once
#: (the last CI: 18 s of CPU over six workers).
pytestmark = pytest.mark.xdist_group("tests/simulators/test_faults.py")


def web(**kw) -> ServiceConfig:
    return ServiceConfig(**{"name": "web", "initial_replicas": 4, "capacity_rps": 100.0, "scheduling_delay_s": 2.0,
                            "startup_delay_s": 10.0, "base_error_ratio": 0.01, **kw})


def pod_restarts(cluster, i=0) -> list[int]:
    return [p.restarts for p in cluster.statuses()[i].pods]


@pytest.mark.parametrize("engine", ENGINES)
def test_pod_crash_restarts_containers_which_come_back_after_the_startup_delay(engine):
    cluster = engine([web()], 1, [F.PodCrash(20.0, count=2)])
    ticks = run(cluster, 40.0, 5.0, load=200.0)
    assert list(column(ticks, "ready_replicas")) == [4, 4, 4, 4, 2, 2, 4, 4, 4]  # restarted at 20, ready at 30
    assert list(column(ticks, "restarts_total")) == [0, 0, 0, 0, 2, 2, 2, 2, 2]
    assert sorted(pod_restarts(cluster)) == [0, 0, 1, 1]
    assert at(ticks, 20.0).dropped_rps[0] == 0.0  # 200 rps still fit in 2 pods


@pytest.mark.parametrize("engine", ENGINES)
def test_crash_looping_rollout_stalls_within_budget_backs_off_and_a_rollback_cures_it(engine):
    cluster = engine([web()], 1, [F.CrashLoopRollout(20.0)])
    names_before = cluster.pod_names(0)
    seen = {}
    ticks = run(cluster, 300.0, 5.0, load=200.0, script=[
        (t, lambda c, t=t: seen.__setitem__(t, max(pod_restarts(c)))) for t in (30.0, 35.0, 55.0, 85.0, 135.0)] + [
        (200.0, lambda c: seen.__setitem__("rollback", c.rollback(0)))])
    during = [s for s in ticks if 20.0 <= s.at_s < 200.0]
    assert all(s.ready_replicas[0] >= 3 and s.pods[0] <= 5 for s in during)  # maxUnavailable 1, maxSurge 1
    assert all(s.rollout_in_progress[0] and s.revision[0] == 2 for s in during)
    # first new pod: ready never; crashes at 32, 52, 82, 132 (10 s startup, backoff 10, 20, 40 s)
    assert [seen[t] for t in (30.0, 35.0, 55.0, 85.0, 135.0)] == [0, 1, 2, 3, 4]
    assert seen["rollback"] == 3
    end = ticks[-1]
    assert (end.ready_replicas[0], end.pods[0], end.revision[0], end.rollout_in_progress[0]) == (4, 4, 3, False)
    assert {n.rsplit("-", 1)[0] for n in cluster.pod_names(0)} == {names_before[0].rsplit("-", 1)[0]}


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_rollout_raises_errors_and_latency_until_rolled_back(engine):
    fault = F.BadRollout(20.0, error_ratio_multiplier=5.0, extra_latency_s=0.5)
    cluster = engine([web()], 1, [fault])
    ticks = run(cluster, 400.0, 5.0, load=200.0, script=[(200.0, lambda c: c.rollback(0))])
    before, bad, after = at(ticks, 15.0), at(ticks, 190.0), ticks[-1]
    assert before.error_ratio[0] == pytest.approx(0.01) and bad.error_ratio[0] == pytest.approx(0.05)
    assert bad.latency_p50_s[0] - before.latency_p50_s[0] == pytest.approx(0.5)
    assert bad.revision[0] == 2 and not bad.rollout_in_progress[0]
    assert after.error_ratio[0] == pytest.approx(0.01) and after.latency_p50_s[0] == pytest.approx(before.latency_p50_s[0])
    assert after.revision[0] == 3 and cluster.statuses()[0].revisions == ("2", "3")


@pytest.mark.parametrize("engine", ENGINES)
def test_node_loss_removes_pods_and_capacity_until_the_nodes_return(engine):
    config = ClusterConfig((web(name="a", initial_replicas=3), web(name="b", initial_replicas=3)),
                           nodes=4, pods_per_node=2)
    cluster = engine(config, 1, [F.NodeLoss(20.0, duration_s=100.0, share_ratio=0.5)])
    ticks = run(cluster, 140.0, 5.0, load=100.0)
    ready = lambda t: int(at(ticks, t).ready_replicas.sum())  # noqa: E731
    pods = lambda t: int(at(ticks, t).pods.sum())  # noqa: E731
    # 3 of 6 pods vanish and are recreated; 2 of 4 nodes gone: room for 4 pods, 3 still run
    assert (ready(15.0), ready(20.0), ready(30.0), ready(35.0)) == (6, 3, 3, 4)  # one rescheduled at 22 s
    assert pods(20.0) == pods(115.0) == 6 and ready(115.0) == 4
    assert (ready(125.0), ready(130.0)) == (4, 6)  # nodes back at 120 s, parked pods ready at 130 s


@pytest.mark.parametrize("engine", ENGINES)
def test_memory_leak_degrades_then_oom_restarts_pods_which_resets_memory(engine):
    cluster = engine([web()], 1, [F.MemoryLeak(20.0, rate_mib_per_s=10.0)])
    ticks = run(cluster, 120.0, 5.0, load=200.0)
    # base 256 MiB, soft limit 768 (reached 51.2 s after the leak start), limit 1024 (76.8 s)
    assert at(ticks, 15.0).memory_mib[0] == 256.0
    assert at(ticks, 70.0).memory_mib[0] == pytest.approx(256.0 + 10.0 * 50.0)
    assert at(ticks, 70.0).capacity_rps[0] == 400.0
    degraded = at(ticks, 75.0)
    assert degraded.capacity_rps[0] == pytest.approx(4 * 100.0 * 0.7)
    assert degraded.latency_p50_s[0] - at(ticks, 70.0).latency_p50_s[0] > 0.1 - 1e-9
    oom = at(ticks, 100.0)  # OOM-killed at 96.8 s
    assert (oom.ready_replicas[0], oom.restarts_total[0]) == (0, 4)
    assert oom.memory_mib[0] == pytest.approx(256.0 + 10.0 * (100.0 - 96.8))
    back = at(ticks, 110.0)  # ready at 106.8 s, memory low again
    assert back.ready_replicas[0] == 4 and back.capacity_rps[0] == 400.0


@pytest.mark.parametrize("engine", ENGINES)
def test_memory_leak_end_returns_memory_to_base_and_undegrades(engine):
    cluster = engine([web()], 1, [F.MemoryLeak(20.0, duration_s=60.0, rate_mib_per_s=10.0)])
    ticks = run(cluster, 120.0, 5.0, load=200.0)
    assert at(ticks, 75.0).capacity_rps[0] < 400.0
    end = at(ticks, 80.0)
    assert (end.memory_mib[0], end.capacity_rps[0], end.restarts_total[0]) == (256.0, 400.0, 0)
    assert ticks[-1].restarts_total[0] == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_restarting_a_leaking_pod_resets_its_memory(engine):
    cluster = engine([web(initial_replicas=1)], 1, [F.MemoryLeak(0.0, rate_mib_per_s=5.0)])
    ticks = run(cluster, 60.0, 5.0, load=10.0, script=[(40.0, lambda c: c.delete_pod(0, c.pod_names(0)[0]))])
    assert at(ticks, 40.0).memory_mib[0] == pytest.approx(256.0 + 5.0 * 40.0)
    assert at(ticks, 55.0).memory_mib[0] == pytest.approx(256.0 + 5.0 * (55.0 - 42.0))  # new pod started at 42 s


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fault, mask", [
    pytest.param(F.MetricsOutage(20.0, duration_s=30.0, services=("a",)), "unavailable", id="outage"),
    pytest.param(F.NaNMetrics(20.0, duration_s=30.0, services=("a",)), "nonfinite", id="nan"),
])
def test_metrics_outage_and_nan_blank_the_signals_during_the_window_only(engine, fault, mask):
    cluster = engine([web(name="a"), web(name="b")], 1, [fault])
    seen = {}
    run(cluster, 60.0, 5.0, load=100.0, script=[(t, lambda c, t=t: seen.__setitem__(t, c.signals(t)))
                                                for t in (15.0, 20.0, 45.0, 50.0)])
    for t in (20.0, 45.0):
        obs = seen[t]
        assert list(getattr(obs, mask)) == [True, False] and list(obs.missing) == [True, False]
        assert np.isnan(obs["served_rps"][0]) and obs["served_rps"][1] == 100.0
    for t in (15.0, 50.0):
        assert not seen[t].missing.any() and seen[t]["served_rps"][0] == 100.0


@pytest.mark.parametrize("engine", ENGINES)
def test_stale_metrics_freeze_at_the_last_value_and_report_their_age(engine):
    cluster = engine([web()], 1, [F.StaleMetrics(20.0, duration_s=30.0)])
    seen = {}
    run(cluster, 60.0, 5.0, load=lambda t: np.array([10.0 * t]),
        script=[(t, lambda c, t=t: seen.__setitem__(t, c.signals(t))) for t in (15.0, 30.0, 50.0)])
    assert seen[30.0]["offered_rps"][0] == 150.0 and seen[30.0].stale[0]
    assert seen[30.0].sample_age_s[0] == 15.0
    assert seen[50.0]["offered_rps"][0] == 500.0 and not seen[50.0].stale[0]


@pytest.mark.parametrize("faults, path", [
    pytest.param([F.PodCrash(10.0, services=("nope",))], "faults[0].services", id="unknown-service"),
    pytest.param([F.MetricsOutage(10.0, duration_s=-5.0)], "faults[0].duration_s", id="negative-duration"),
    pytest.param([F.NodeLoss(10.0, share_ratio=1.5)], "faults[0].share_ratio", id="share-above-one"),
    pytest.param([F.MemoryLeak(10.0, rate_mib_per_s=0.0)], "faults[0].rate_mib_per_s", id="no-leak-rate"),
    pytest.param([F.PodCrash(5.0), F.ReadinessOutage(10.0, duration_s=-60.0)], "faults[1].duration_s",
                 id="readiness-outage-negative-duration"),
    pytest.param([F.ReadinessOutage(10.0, duration_s=60.0, services=("web", "db"))], "faults[0].services",
                 id="readiness-outage-unknown-service"),
])
def test_invalid_faults_are_rejected_naming_the_field(faults, path):
    with pytest.raises(ScenarioError) as err:
        SimCluster([web()], 1, faults)
    assert any(e.path == path for e in err.value.errors), str(err.value)


def test_timeline_applies_ends_before_starts_at_the_same_instant():
    first = F.MetricsOutage(0.0, duration_s=10.0)
    second = F.MetricsOutage(10.0, duration_s=10.0)
    timeline = F.FaultTimeline([second, first])
    events = [(e.at_s, e.starts, e.fault is first) for e in timeline.pop_due(100.0)]
    assert events == [(0.0, True, True), (10.0, False, True), (10.0, True, False), (20.0, False, False)]
    assert timeline.next_s == float("inf")


def test_only_victim_choice_draws_from_the_generator():
    rng = np.random.default_rng(5)
    assert list(F.choose_victims(rng, 3, 3)) == [0, 1, 2]  # no choice, no draw
    state = rng.bit_generator.state
    picked = F.choose_victims(rng, 10, 3)
    assert len(set(picked)) == 3 and list(picked) == sorted(picked) and rng.bit_generator.state != state


# --------------------------------------------------------------------------- readiness outage
TICKS_S = [5.0 * k for k in range(19)]  # 0 .. 90 s


def ready_by_tick(ticks) -> dict[float, int]:
    return {float(s.at_s): int(s.ready_replicas[0]) for s in ticks}


def expect(*spans: tuple[float, float, int]) -> dict[float, int]:
    """Ready pods per tick of TICKS_S from (from_s, to_s exclusive, count) spans."""
    return {t: next(n for a, b, n in spans if a <= t < b) for t in TICKS_S}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("faults, ready", [
    pytest.param([F.ReadinessOutage(20.0, duration_s=40.0)], expect((0, 20, 4), (20, 60, 0), (60, 99, 4)),
                 id="ready-drops-to-0-at-the-start-and-returns-at-the-end"),
    pytest.param([F.ReadinessOutage(22.0, duration_s=40.0)], expect((0, 25, 4), (25, 65, 0), (65, 99, 4)),
                 id="between-ticks-applies-at-the-next-tick"),
    pytest.param([F.ReadinessOutage(20.0)], expect((0, 20, 4), (20, 99, 0)), id="until-the-end-of-the-run"),
    pytest.param([F.ReadinessOutage(20.0, duration_s=30.0), F.ReadinessOutage(40.0, duration_s=30.0)],
                 expect((0, 20, 4), (20, 70, 0), (70, 99, 4)), id="overlapping-outages-end-with-the-last"),
    pytest.param([F.ReadinessOutage(20.0, duration_s=40.0, services=("other",))], expect((0, 99, 4)),
                 id="an-outage-of-another-service-leaves-this-one-serving"),
])
def test_readiness_outage_takes_every_pod_out_of_service_for_its_window(engine, faults, ready):
    cluster = engine([web(), web(name="other")], 1, faults)
    ticks = run(cluster, 90.0, 5.0, load=200.0)
    assert ready_by_tick(ticks) == ready
    for s in ticks:  # with no Ready pod nothing is served: the offered load is dropped
        n = int(s.ready_replicas[0])
        assert s.served_rps[0] == (200.0 if n else 0.0) and s.dropped_rps[0] == (0.0 if n else 200.0), s.at_s
        assert s.capacity_rps[0] == 100.0 * n and (s.error_ratio[0] == 1.0) == (n == 0), s.at_s
        assert s.pods[0] == 4 and s.restarts_total[0] == 0  # no pod restarted, none replaced


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("scale_at_s, ready, new_pods_ready_at_s", [
    pytest.param(15.0, expect((0, 20, 4), (20, 60, 0), (60, 99, 6)), 60.0,
                 id="starting-at-the-start-ready-at-the-end"),  # through its start-up at 27 s
    pytest.param(30.0, expect((0, 20, 4), (20, 60, 0), (60, 99, 6)), 60.0,
                 id="created-mid-outage-ready-at-the-end-not-before"),  # through its start-up at 42 s
    pytest.param(55.0, expect((0, 20, 4), (20, 60, 0), (60, 70, 4), (70, 99, 6)), 67.0,
                 id="still-starting-at-the-end-ready-when-its-start-up-completes"),  # created 55 s + 2 s + 10 s
])
def test_pods_created_during_a_readiness_outage(engine, scale_at_s, ready, new_pods_ready_at_s):
    cluster = engine([web()], 1, [F.ReadinessOutage(20.0, duration_s=40.0)])
    ticks = run(cluster, 90.0, 5.0, load=200.0, script=[(scale_at_s, lambda c: c.set_replicas(0, 6))])
    assert ready_by_tick(ticks) == ready
    pods = cluster.statuses()[0].pods
    assert [p.ready_transition_time for p in pods] == [60.0] * 4 + [new_pods_ready_at_s] * 2
    assert [p.start_time for p in pods[4:]] == [scale_at_s] * 2 and all(p.restarts == 0 for p in pods)


@pytest.mark.parametrize("engine", ENGINES)
def test_pods_under_a_readiness_outage_keep_running_not_ready(engine):
    """Running, not Ready, no restart; the containers run on (a leak's memory keeps growing)."""
    cluster = engine([web()], 1, [F.ReadinessOutage(20.0, duration_s=40.0), F.MemoryLeak(0.0, rate_mib_per_s=1.0)])
    seen = {}
    ticks = run(cluster, 70.0, 5.0, load=200.0, script=[(t, lambda c, t=t: seen.__setitem__(t, c.statuses()[0]))
                                                        for t in (15.0, 40.0, 60.0)])
    during = seen[40.0]
    assert (during.spec_replicas, during.status_replicas, during.ready_replicas) == (4, 4, 0)
    assert all((p.phase, p.ready, p.restarts, p.ready_transition_time) == ("Running", False, 0, 20.0)
               for p in during.pods)
    assert all(p.ready and p.ready_transition_time == 60.0 for p in seen[60.0].pods)
    assert at(ticks, 40.0).memory_mib[0] == pytest.approx(256.0 + 40.0)  # started at 0 s, never restarted
    assert np.isnan(at(ticks, 40.0).utilization_pct[0]) and at(ticks, 15.0).utilization_pct[0] > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_queueing_service_without_ready_pods_queues_to_its_limit_and_times_out(engine):
    cluster = engine([web(overload="queue", queue_limit=400.0, timeout_s=5.0)], 1,
                     [F.ReadinessOutage(20.0, duration_s=40.0)])
    ticks = run(cluster, 90.0, 5.0, load=200.0)
    first, later = at(ticks, 20.0), at(ticks, 40.0)
    assert first.served_rps[0] == 0.0 and first.queue_length[0] == 400.0 and first.dropped_rps[0] == 120.0
    assert later.served_rps[0] == 0.0 and later.dropped_rps[0] == 200.0 and later.latency_p95_s[0] == 5.0
    assert at(ticks, 60.0).served_rps[0] > 200.0  # Ready again: the backlog drains
