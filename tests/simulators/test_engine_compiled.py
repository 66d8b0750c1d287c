"""The engine's compiled tick (simulators/engine_compiled.py) gives the numpy engine's trajectories.

Both run the same scenario (configuration, seed, load, faults, actions), one with the compiled
kernels and one forced to numpy (SETPOINT_COMPILED=0). Integers, booleans and pod states are
equal; floats to 1e-12 relative (numpy's vectorized ``log`` and the C library's may differ in
the last bit), against the 1e-9 the vectorized engine allows itself against the reference.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators import engine_compiled
from simulators import faults as F
from simulators import queueing as Q
from simulators.cluster import SimCluster
from simulators.workload import ClusterConfig
from tests.simulators.helpers import assert_same_ticks, run
from tests.simulators.test_equivalence import SCENARIOS, SERVICES, action, actions, fault_lists, wave

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
RTOL = 1e-12
REPO = Path(__file__).resolve().parents[2]


def run_engine(monkeypatch, use_compiled: bool, config, faults, script, until_s=180.0, seed=3):
    monkeypatch.setattr(compiled, "switch", "1" if use_compiled else "0")
    cluster = SimCluster(config, np.random.default_rng(seed), faults)
    ticks = run(cluster, until_s, 5.0, load=wave, script=script)
    observed = cluster.signals()
    # a kernel that fails to compile falls back to numpy (with a warning): that would compare numpy with itself
    assert compiled.available() or not use_compiled, "the compiled engine failed to compile or run"
    return cluster, ticks, observed


def assert_same_runs(monkeypatch, config, faults, script, **kw) -> None:
    fast, fast_ticks, fast_obs = run_engine(monkeypatch, True, config, faults, script, **kw)
    ref, ref_ticks, ref_obs = run_engine(monkeypatch, False, config, faults, script, **kw)
    assert_same_ticks(fast_ticks, ref_ticks, rtol=RTOL)
    assert fast.statuses() == ref.statuses()
    for name in fast_obs.values:
        np.testing.assert_allclose(fast_obs[name], ref_obs[name], rtol=RTOL, atol=1e-15, equal_nan=True, err_msg=name)
    for mask in ("unavailable", "stale", "nonfinite", "sample_age_s"):
        np.testing.assert_array_equal(getattr(fast_obs, mask), getattr(ref_obs, mask), err_msg=mask)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_compiled_engine_equals_numpy_on_scripted_scenarios(monkeypatch, name):
    spec = SCENARIOS[name]
    assert_same_runs(monkeypatch, spec.get("config", SERVICES), spec.get("faults", ()), spec.get("script", ()))


def test_compiled_tick_runs_the_kernel(monkeypatch):
    """The dispatch really takes the compiled loop (else the equivalence above compares numpy with itself)."""
    calls = []
    original = SimCluster._compute_signals

    def spy(self, now, dt_s, lam):
        calls.append(self._p95_without_bad_pods_s)
        return original(self, now, dt_s, lam)

    from simulators import engine_compiled  # noqa: PLC0415

    kernel_calls = []
    kernel = engine_compiled._signals_kernel
    monkeypatch.setattr(engine_compiled, "_signals_kernel", lambda *a: kernel_calls.append(1) or kernel(*a))
    monkeypatch.setattr(SimCluster, "_compute_signals", spy)
    cluster = SimCluster(SERVICES, np.random.default_rng(1))
    run(cluster, 20.0, 5.0, load=wave)
    assert len(calls) == 5 and len(kernel_calls) == 5
    assert compiled.available(), "the kernel was called but failed: the tick fell back to numpy"


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=actions, faults=fault_lists, capacity=st.sampled_from([None, 8, 12]), seed=st.integers(0, 1000))
def test_compiled_engine_equals_numpy_on_random_scenarios(monkeypatch, script, faults, capacity, seed):
    steps = [(t, action(kind, service, value)) for t, kind, service, value in script]
    assert_same_runs(monkeypatch, ClusterConfig(SERVICES, max_pods_total=capacity), faults, steps, until_s=200.0,
                     seed=seed)


#: pod hangs (sticky or not) beside the other faults: the reference engine does not model them
#: (test_equivalence's lists leave them out), so the compiled engine is held to numpy's here
hang_lists = st.lists(st.builds(F.PodHang, st.integers(0, 30).map(lambda k: 5.0 * k), count=st.integers(1, 2),
                                duration_s=st.sampled_from([None, 30.0, 90.0]), sticky=st.booleans(),
                                services=st.sampled_from([None, ("api",), ("batch",)])), min_size=1, max_size=2)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=actions, hangs=hang_lists, faults=fault_lists, seed=st.integers(0, 1000))
def test_compiled_engine_equals_numpy_with_pod_hangs(monkeypatch, script, hangs, faults, seed):
    steps = [(t, action(kind, service, value)) for t, kind, service, value in script]
    assert_same_runs(monkeypatch, SERVICES, hangs + faults, steps, until_s=200.0, seed=seed)


def test_compiled_engine_equals_numpy_on_a_sticky_hang_deleted_and_scaled_away(monkeypatch):
    """The sticky victim deleted twice (its replacements hang again), then scaled down and up."""
    def delete_hung(c):
        hung = [p.name for p in c.statuses()[0].pods if not p.ready]
        if hung:
            c.delete_pod(0, hung[0])

    script = [(40.0, delete_hung), (80.0, delete_hung), (120.0, lambda c: c.set_replicas(0, 2)),
              (140.0, lambda c: c.set_replicas(0, 4))]
    assert_same_runs(monkeypatch, SERVICES, [F.PodHang(10.0, services=("api",), sticky=True)], script)


FRESH_PROCESS_TICK = """
import warnings
import numpy as np
from simulators.cluster import SimCluster  # imports the engine's kernels before numba is loaded, as the CLI does
from simulators.workload import ServiceConfig
from controller.core.scaling import compiled
warnings.simplefilter("error", RuntimeWarning)
assert compiled.available()
compiled.nan_max(1.0, 2.0)  # the decision kernel's helpers compiled first, as when a controller decides
cluster = SimCluster([ServiceConfig("web")], np.random.default_rng(1))
cluster.step(60.0, 5.0, np.array([10.0]))
assert compiled.available(), "the compiled engine fell back to numpy"
"""


def test_compiled_engine_compiles_in_a_fresh_process(tmp_path):
    """The kernels' shared helpers (compiled.nan_max, ...) resolve when the engine is imported before
    numba loads and the decision kernel compiled them first (the CLI's order; this test process may
    have loaded numba earlier): a fresh interpreter."""
    # an empty numba cache: a kernel cached by an earlier process would hide a typing failure
    env = {**os.environ, "PYTHONPATH": str(REPO), compiled.ENV_SWITCH: "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS_TICK], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def waits_with_every_log(served: float, safe: float, exponent: float) -> list[float]:
    """p50 / p95 / p99 waiting times of one service, its log always taken (math.log: the C
    library's, as the kernel's): the kernel's formula, value by value."""
    rho = max(min(served / safe, Q.RHO_CAP), Q.RHO_FLOOR)
    log_p_wait, inv_rate = math.log(rho) * exponent, 1.0 / ((1.0 - rho) * safe)
    return [max(log_p_wait - ln_tail, 0.0) * inv_rate + 0.0 for ln_tail in Q.LN_TAIL]


@settings(max_examples=300, deadline=None)
@given(exponent=st.floats(1.0, 400.0), nudge=st.floats(-1e-6, 1e-6), safe=st.floats(0.5, 1e5),
       wanted=st.sampled_from([(True, True, True), (False, True, False), (True, False, False), (False, False, True)]))
def test_waits_skip_the_log_only_where_it_cannot_matter(exponent, nudge, safe, wanted):
    """The tick kernel skips the log where a bound shows every waiting time asked for is 0: at
    utilizations on both sides of each percentile's threshold (rho = (1 - q) ** (1 / exponent),
    nudged) and of the bound's (2 (rho - 1) / (rho + 1) = ln(1 - q) / exponent), the percentiles
    asked for equal those with the log always taken, bit for bit."""
    assert hasattr(engine_compiled._tick_kernel, "py_func"), "the kernel is not compiled"
    exact = [(1.0 - q) ** (1.0 / exponent) for q in Q.QUANTILES]
    bound = [(2.0 + t / exponent) / (2.0 - t / exponent) for t in Q.LN_TAIL]
    rho = np.array([r * (1.0 + nudge) for r in exact + bound] + [1e-12, 0.3, 0.999])
    served, cap = rho * safe, np.full(rho.size, safe)
    n = rho.size
    out = np.full((engine_compiled._O_ROWS, n), -1.0)
    engine_compiled._tick_kernel(served, cap, cap, np.zeros(n), 5.0, np.zeros(n), False, np.full(n, exponent),
                                 np.zeros((3, n)), np.zeros((3, n)), False, np.full(n, np.inf), np.zeros(n, bool),
                                 False, np.zeros(n), np.zeros(n), out, np.array(wanted))
    for s in range(n):
        expected = waits_with_every_log(float(served[s]), safe, exponent)
        for q in range(3):
            got = out[engine_compiled._O_P50 + q, s]
            assert got == (expected[q] if wanted[q] else -1.0), (s, q, rho[s])
