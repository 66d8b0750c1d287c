"""The vectorized engine and the per-object reference give the same trajectories.

Same configuration, seed, load, faults and actions; every field of every tick is compared
(integers exactly, floats to 1e-9 relative: the two sum pod capacities in different orders),
and so are the pods (names, phases, restarts, revisions) and the observed signals.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators import faults as F
from simulators.cluster import SimCluster
from tests.support.reference_cluster import ReferenceCluster
from dataclasses import replace

from simulators.workload import ClusterConfig, ReadinessProbe, RevisionProps, ServiceConfig
from tests.simulators.helpers import assert_same_ticks, run

SERVICES = (
    ServiceConfig("api", initial_replicas=3, capacity_rps=100.0, startup_delay_s=12.0, base_error_ratio=0.01),
    ServiceConfig("queue", initial_replicas=2, capacity_rps=80.0, startup_delay_s=7.0, overload="queue",
                  queue_limit=400.0, base_latency_s=0.2, max_pods=10),
    ServiceConfig("batch", initial_replicas=1, capacity_rps=33.3, scheduling_delay_s=0.0, startup_delay_s=3.0,
                  max_surge=0, max_unavailable=1, cpu_at_capacity_cores=0.8),
)


def with_retries(*ratios: float, **changes) -> tuple[ServiceConfig, ...]:
    """SERVICES with these client retry ratios (and other changes to the first service)."""
    return tuple(replace(s, retry_ratio=r, **(changes if i == 0 else {})) for i, (s, r) in enumerate(zip(SERVICES, ratios)))


def with_probes(*probes: ReadinessProbe | None, retries=(0.0, 0.0, 0.0)) -> tuple[ServiceConfig, ...]:
    """SERVICES with these readiness probes (None: none) and client retry ratios."""
    return tuple(replace(s, readiness_probe=p, retry_ratio=r) for s, p, r in zip(SERVICES, probes, retries))


PROBE = ReadinessProbe(period_s=10.0, failure_threshold=3, success_threshold=1)
SLOW_PROBE = ReadinessProbe(period_s=15.0, failure_threshold=2, success_threshold=2)
#: a probe whose period is not a multiple of the 5 s tick: evaluated at the first tick after
ODD_PROBE = ReadinessProbe(period_s=7.0, failure_threshold=1, success_threshold=3)


def wave(t: float) -> np.ndarray:
    return np.array([250.0 + 150.0 * np.sin(t / 60.0), 150.0 + 100.0 * np.cos(t / 45.0), 40.0 + 0.1 * t])


def delete_oldest(i: int):
    return lambda c: c.delete_pod(i, c.pod_names(i)[0])


SCENARIOS = {
    "scaling": dict(script=[(0.0, lambda c: c.set_replicas(0, 6)), (20.0, lambda c: c.set_replicas(1, 1)),
                            (40.0, lambda c: c.set_replicas(0, 2)), (45.0, lambda c: c.set_replicas(2, 5)),
                            (90.0, lambda c: c.set_replicas(1, 7)), (95.0, lambda c: c.set_replicas(1, 3))]),
    "faults": dict(faults=[F.PodCrash(10.0, count=2), F.CrashLoopRollout(30.0, services=("api",)),
                           F.BadRollout(25.0, services=("queue",), error_ratio_multiplier=3.0, extra_latency_s=0.4),
                           F.MemoryLeak(5.0, rate_mib_per_s=12.0, services=("batch", "queue")),
                           F.MetricsOutage(50.0, duration_s=20.0, services=("api",)),
                           F.StaleMetrics(60.0, duration_s=30.0), F.NaNMetrics(100.0, duration_s=10.0)],
                   script=[(120.0, lambda c: c.rollback(0)), (70.0, lambda c: c.set_replicas(2, 4))]),
    "node-loss-with-capacity": dict(
        config=ClusterConfig(SERVICES, nodes=3, pods_per_node=3),
        faults=[F.NodeLoss(30.0, duration_s=60.0, share_ratio=0.34)],
        script=[(0.0, lambda c: c.set_replicas(0, 5)), (50.0, lambda c: c.set_replicas(1, 1)),
                (60.0, lambda c: c.set_replicas(2, 3))]),
    "rollouts-and-deletes": dict(script=[
        (0.0, lambda c: c.rolling_restart(0)), (5.0, lambda c: c.set_replicas(0, 5)),
        (10.0, delete_oldest(1)), (15.0, lambda c: c.rollout(2, RevisionProps(extra_error_ratio=0.2))),
        (60.0, lambda c: c.rollback(2)), (65.0, delete_oldest(0)), (80.0, lambda c: c.set_replicas(0, 2))]),
    "fast-rollback-mid-rollout": dict(script=[
        (0.0, lambda c: c.rollout(0, RevisionProps(error_ratio_multiplier=10.0))), (0.0, lambda c: c.set_replicas(1, 6)),
        (5.0, lambda c: c.rollout(1, RevisionProps(extra_latency_s=0.2))), (25.0, lambda c: c.rollback(0, fast=True)),
        (40.0, lambda c: c.rollback(1, fast=True))]),
    # readiness outages (a dependency every pod checks is down): pods stay running, not Ready
    "readiness-outage-all-services": dict(faults=[F.ReadinessOutage(20.0, duration_s=60.0)]),
    "readiness-outage-one-service": dict(faults=[F.ReadinessOutage(20.0, duration_s=60.0, services=("queue",))]),
    "readiness-outage-while-scaling-up": dict(
        faults=[F.ReadinessOutage(20.0, duration_s=65.0, services=("api", "batch"))],
        script=[(15.0, lambda c: c.set_replicas(0, 6)),  # starting at the fault's start: through it at 29 s, held
                (40.0, lambda c: c.set_replicas(0, 8)),  # created mid-outage: held at 54 s
                (80.0, lambda c: c.set_replicas(0, 9)),  # still starting at the end (85 s): Ready at 94 s
                (50.0, lambda c: c.set_replicas(2, 4)), (60.0, lambda c: c.set_replicas(2, 2))]),
    "readiness-outage-overlapping-node-loss": dict(
        config=ClusterConfig(SERVICES, nodes=3, pods_per_node=3),
        faults=[F.ReadinessOutage(20.0, duration_s=60.0), F.NodeLoss(30.0, duration_s=60.0, share_ratio=0.34)],
        script=[(0.0, lambda c: c.set_replicas(0, 5)), (50.0, lambda c: c.set_replicas(1, 1))]),
    "readiness-outage-overlapping-crashes-and-a-leak": dict(
        faults=[F.ReadinessOutage(20.0, duration_s=70.0, services=("api", "queue")), F.PodCrash(40.0, count=2),
                F.MemoryLeak(10.0, rate_mib_per_s=12.0, services=("queue",)),
                F.CrashLoopRollout(30.0, services=("api",))],
        script=[(60.0, delete_oldest(1)), (120.0, lambda c: c.rollback(0))]),
    "readiness-outages-overlapping-each-other": dict(
        faults=[F.ReadinessOutage(20.0, duration_s=40.0, services=("api",)), F.ReadinessOutage(40.0, duration_s=50.0),
                F.MetricsOutage(30.0, duration_s=20.0, services=("api",))],
        script=[(45.0, lambda c: c.rolling_restart(2))]),
    "readiness-outage-until-the-end-of-the-run": dict(
        faults=[F.ReadinessOutage(60.0, services=("api", "batch"))],
        script=[(50.0, lambda c: c.set_replicas(0, 5)), (100.0, lambda c: c.set_replicas(2, 3))]),
    # client retries: part of the last tick's drops come back on top of the load
    "retries-overloaded-service": dict(config=with_retries(0.5, 0.0, 0.0, initial_replicas=1)),  # 100 rps vs 100-400
    "retries-during-readiness-outage": dict(config=with_retries(0.5, 0.9, 0.5),
                                            faults=[F.ReadinessOutage(20.0, duration_s=100.0)]),
    "retries-mixed-with-no-retries": dict(
        config=with_retries(0.9, 0.0, 0.3, initial_replicas=2),
        faults=[F.ReadinessOutage(60.0, duration_s=30.0, services=("batch",)), F.PodCrash(30.0, count=1)],
        script=[(50.0, lambda c: c.set_replicas(0, 4)), (100.0, lambda c: c.set_replicas(2, 3))]),
    # load-sensitive readiness probes (the overload spiral): api saturates at the wave's peaks
    # (300 rps of capacity), queue queues, batch (33.3 rps for 40+ rps) is always saturated
    "probe-overloaded-services": dict(config=with_probes(PROBE, PROBE, PROBE)),
    "probe-odd-and-slow-periods-with-retries": dict(config=with_probes(ODD_PROBE, SLOW_PROBE, None,
                                                                       retries=(0.5, 0.0, 0.9))),
    "probe-while-scaling": dict(
        config=with_probes(PROBE, None, SLOW_PROBE, retries=(0.3, 0.0, 0.0)),
        script=[(25.0, lambda c: c.set_replicas(0, 5)), (40.0, lambda c: c.set_replicas(2, 3)),
                (70.0, lambda c: c.set_replicas(0, 2)), (95.0, lambda c: c.set_replicas(2, 1)),
                (130.0, delete_oldest(0))]),
    "probe-overlapping-readiness-outage": dict(
        config=with_probes(PROBE, SLOW_PROBE, PROBE),
        faults=[F.ReadinessOutage(25.0, duration_s=40.0, services=("api", "batch")),
                F.ReadinessOutage(100.0, duration_s=12.0)]),
    "probe-with-rollouts-crashes-and-node-loss": dict(
        config=ClusterConfig(with_probes(PROBE, PROBE, ODD_PROBE), nodes=3, pods_per_node=3),
        faults=[F.PodCrash(10.0, count=2), F.CrashLoopRollout(60.0, services=("batch",)),
                F.NodeLoss(30.0, duration_s=60.0, share_ratio=0.34),
                F.MemoryLeak(5.0, rate_mib_per_s=12.0, services=("queue",))],
        script=[(0.0, lambda c: c.rolling_restart(0)), (20.0, lambda c: c.set_replicas(1, 4)),
                (50.0, lambda c: c.rollout(0, RevisionProps(extra_latency_s=0.2))), (120.0, lambda c: c.rollback(2))]),
}


def run_both(config, faults=(), script=(), until_s=180.0, dt_s=5.0, seed=3):
    results = []
    for engine in (SimCluster, ReferenceCluster):
        cluster = engine(config, np.random.default_rng(seed), faults)
        results.append((cluster, run(cluster, until_s, dt_s, load=wave, script=script)))
    return results


def assert_same_clusters(fast, ref) -> None:
    assert fast.statuses() == ref.statuses()
    a, b = fast.signals(), ref.signals()
    for name in a.values:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, equal_nan=True, err_msg=name)
    for mask in ("unavailable", "stale", "nonfinite", "sample_age_s"):
        np.testing.assert_array_equal(getattr(a, mask), getattr(b, mask), err_msg=mask)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_vectorized_equals_reference_on_scripted_scenarios(name):
    spec = SCENARIOS[name]
    (fast, fast_ticks), (ref, ref_ticks) = run_both(spec.get("config", SERVICES), spec.get("faults", ()),
                                                    spec.get("script", ()))
    assert_same_ticks(fast_ticks, ref_ticks)
    assert_same_clusters(fast, ref)


def action(kind: str, service: int, value: int):
    if kind == "scale":
        return lambda c: c.set_replicas(service, value)
    if kind == "delete":
        return lambda c: c.delete_pod(service, c.pod_names(service)[value % len(c.pod_names(service))]) \
            if c.pod_names(service) else None
    if kind == "restart":
        return lambda c: c.rolling_restart(service)
    if kind == "bad":
        return lambda c: c.rollout(service, RevisionProps(error_ratio_multiplier=2.0, extra_latency_s=0.05 * value))
    return lambda c: c.rollback(service) if c.statuses()[service].revision != "1" else None


actions = st.lists(st.tuples(st.integers(0, 30).map(lambda k: 5.0 * k),
                             st.sampled_from(["scale", "scale", "scale", "delete", "restart", "bad", "rollback"]),
                             st.integers(0, 2), st.integers(0, 12)), max_size=12)
fault_lists = st.lists(st.one_of(
    st.builds(F.PodCrash, st.integers(0, 30).map(float), count=st.integers(0, 3)),
    st.builds(F.NodeLoss, st.integers(0, 30).map(float), duration_s=st.sampled_from([20.0, 60.0]),
              share_ratio=st.sampled_from([0.2, 0.5])),
    st.builds(F.MemoryLeak, st.integers(0, 30).map(float), rate_mib_per_s=st.sampled_from([5.0, 30.0])),
    st.builds(F.CrashLoopRollout, st.integers(0, 30).map(float), services=st.just(("batch",))),
    st.builds(F.ReadinessOutage, st.integers(0, 30).map(lambda k: 5.0 * k),
              duration_s=st.sampled_from([None, 15.0, 60.0]),
              services=st.sampled_from([None, ("api",), ("queue", "batch")])),
), max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=actions, faults=fault_lists, capacity=st.sampled_from([None, 8, 12]), seed=st.integers(0, 1000),
       retries=st.tuples(*[st.sampled_from([0.0, 0.0, 0.5, 0.9])] * 3),
       probes=st.tuples(*[st.sampled_from([None, None, PROBE, SLOW_PROBE, ODD_PROBE])] * 3))
def test_vectorized_equals_reference_on_random_scenarios(script, faults, capacity, seed, retries, probes):
    config = ClusterConfig(with_probes(*probes, retries=retries), max_pods_total=capacity)
    steps = [(t, action(kind, service, value)) for t, kind, service, value in script]
    (fast, fast_ticks), (ref, ref_ticks) = run_both(config, faults, steps, until_s=200.0, seed=seed)
    assert_same_ticks(fast_ticks, ref_ticks)
    assert_same_clusters(fast, ref)


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n.startswith("probe-")])
def test_probe_rows_flap(name):
    """The probe rows exercise the probe: some service with a probe goes dark (Ready 0 with pods
    running) and comes back (Ready again) within the run."""
    spec = SCENARIOS[name]
    (_, ticks), _ = run_both(spec.get("config", SERVICES), spec.get("faults", ()), spec.get("script", ()))
    ready = np.array([t.ready_replicas for t in ticks])
    dark = (ready == 0) & (np.array([t.pods for t in ticks]) > 0)
    assert any(dark[:, i].any() and (ready[1:, i][dark[:-1, i]] > 0).any() for i in range(ready.shape[1]))


def test_retry_rows_inflate_the_offered_load():
    """The retry rows exercise retries: offered = load + ratio * the previous tick's drops, and
    under a readiness outage (everything dropped) it climbs towards load / (1 - ratio)."""
    spec = SCENARIOS["retries-during-readiness-outage"]
    ratios = np.array([0.5, 0.9, 0.5])
    (_, ticks), _ = run_both(spec["config"], spec["faults"])
    np.testing.assert_allclose(ticks[0].offered_rps, wave(0.0))
    for prev, t in zip(ticks, ticks[1:]):
        np.testing.assert_allclose(t.offered_rps, wave(t.at_s) + ratios * prev.dropped_rps, rtol=1e-12)
    end = next(t for t in ticks if t.at_s == 115.0)  # 19 ticks into the outage
    inflation = end.offered_rps / wave(115.0)
    assert 1.8 < inflation[0] < 2.2 and 1.8 < inflation[2] < 2.2 and inflation[1] > 7.0
