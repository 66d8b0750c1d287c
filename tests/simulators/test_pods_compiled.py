"""Compiled scaling, lifecycles and aggregates (simulators/simcluster/pods_compiled.py) leave the cluster in
exactly the state numpy leaves it in: every pod slot array and every per-service aggregate, bit
for bit, after each tick of a scripted or random run (the whole-run comparisons of signals are in
test_engine_compiled.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.simcluster import pods_compiled
from simulators.simcluster.slots import live_end_of
from simulators.workload import ClusterConfig, ServiceConfig
from tests.simulators.test_equivalence import SERVICES

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

STATE = ("_pod_phase", "_pod_phase_end_s", "_pod_memory_threshold_s", "_pod_created_s", "_pod_started_s",
         "_pod_ready_transition_s", "_pod_serial", "_pod_restarts", "_pod_revision_seq", "_pod_degraded",
         "_pod_crash_loops", "_pod_error_ratio", "_pod_extra_latency_s", "_next_serial", "_n_pods", "_n_ready",
         "_n_scheduled", "_n_running", "_ready_capacity_rps", "_error_weight", "_next_event_s", "_spec_replicas",
         "_restarts_total", "_n_parked_pods", "_next_event_min_s", "_row_mixed", "_live_end")


def state(cluster: SimCluster) -> dict:
    cluster._flush()
    # the bound the pod scans stop at is exact: one past each row's last pod, on either path
    np.testing.assert_array_equal(cluster._live_end, live_end_of(cluster._pod_phase))
    return {name: np.array(getattr(cluster, name)).tobytes() for name in STATE}


def run_script(monkeypatch, use_compiled: bool, config, script, faults=(), ticks=40, seed=2) -> list[dict]:
    """The state after every tick; ``script``: {tick: [(service, replicas), ...]}."""
    monkeypatch.setattr(compiled, "switch", "1" if use_compiled else "0")
    cluster = SimCluster(config, np.random.default_rng(seed), faults)
    load = np.full(cluster.n_services, 150.0)
    states = []
    for k in range(ticks):
        for service, replicas in script.get(k, ()):
            cluster.set_replicas(service, replicas)
        cluster.step(5.0 * k, 5.0, load)
        states.append(state(cluster))
    assert compiled.available(), "a pod kernel failed: the run fell back to numpy"
    return states


def assert_same_states(monkeypatch, config, script, **kw) -> None:
    fast = run_script(monkeypatch, True, config, script, **kw)
    ref = run_script(monkeypatch, False, config, script, **kw)
    for k, (a, b) in enumerate(zip(fast, ref)):
        differ = [name for name in STATE if a[name] != b[name]]
        assert not differ, f"tick {k}: {differ}"


WIDE = tuple(ServiceConfig(f"s{i}", initial_replicas=1 + i % 4, startup_delay_s=5.0 + 3 * i, scheduling_delay_s=i % 3,
                           max_pods=12, base_error_ratio=0.002 * i) for i in range(8))


@pytest.mark.parametrize("config, script, faults", [
    pytest.param(SERVICES, {0: [(0, 6)], 4: [(1, 1)], 8: [(0, 2)], 9: [(2, 5)], 18: [(1, 7)], 19: [(1, 3)]}, (),
                 id="up-and-down"),
    pytest.param(WIDE, {0: [(i, 12) for i in range(8)], 3: [(i, i % 3) for i in range(8)],
                        6: [(i, 30) for i in range(8)], 7: [(i, 0) for i in range(0, 8, 2)]}, (),
                 id="to-max-to-zero-and-past-max"),
    pytest.param(ClusterConfig(WIDE, max_pods_total=20),
                 {0: [(i, 6) for i in range(8)], 10: [(i, 1) for i in range(8)]}, (),
                 id="node-capacity-parks-and-unparks"),
    pytest.param(SERVICES, {0: [(0, 6)], 10: [(0, 2)], 20: [(0, 8)]},
                 (F.CrashLoopRollout(30.0, services=("api",)),), id="crash-loop-backoff-counted"),
])
def test_compiled_scaling_leaves_the_numpy_state(monkeypatch, config, script, faults):
    assert_same_states(monkeypatch, config, script, faults=faults)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.dictionaries(st.integers(0, 39), st.lists(st.tuples(st.integers(0, 7), st.integers(0, 14)),
                                                           max_size=6), max_size=12),
       capacity=st.sampled_from([None, 16, 30]), seed=st.integers(0, 100))
def test_random_scaling_compiled_equals_numpy(monkeypatch, script, capacity, seed):
    assert_same_states(monkeypatch, ClusterConfig(WIDE, max_pods_total=capacity), script, seed=seed)


def test_the_scaling_path_runs_the_kernels(monkeypatch):
    """The dispatch takes the compiled loops (else the comparisons above compare numpy with itself)."""
    calls = []
    for name in ("_create_kernel", "_remove_kernel", "_refresh_kernel", "_simple_round_kernel"):
        kernel = getattr(pods_compiled, name)
        monkeypatch.setattr(pods_compiled, name, lambda *a, _k=kernel, _n=name: calls.append(_n) or _k(*a))
    run_script(monkeypatch, True, WIDE, {0: [(0, 6)], 5: [(0, 1)]}, ticks=10)
    assert {"_create_kernel", "_remove_kernel", "_refresh_kernel", "_simple_round_kernel"} <= set(calls)
