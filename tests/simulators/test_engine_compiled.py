"""The engine's compiled tick (simulators/engine_compiled.py) gives the numpy engine's trajectories.

Both run the same scenario (configuration, seed, load, faults, actions), one with the compiled
kernels and one forced to numpy (SETPOINT_COMPILED=0). Integers, booleans and pod states are
equal; floats to 1e-12 relative (numpy's vectorized ``log`` and the C library's may differ in
the last bit), against the 1e-9 the vectorized engine allows itself against the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators.cluster import SimCluster
from simulators.workload import ClusterConfig
from tests.simulators.helpers import assert_same_ticks, run
from tests.simulators.test_equivalence import SCENARIOS, SERVICES, action, actions, fault_lists, wave

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
RTOL = 1e-12


def run_engine(monkeypatch, use_compiled: bool, config, faults, script, until_s=180.0, seed=3):
    monkeypatch.setenv(compiled.ENV_SWITCH, "1" if use_compiled else "0")
    cluster = SimCluster(config, np.random.default_rng(seed), faults)
    ticks = run(cluster, until_s, 5.0, load=wave, script=script)
    observed = cluster.signals()
    monkeypatch.delenv(compiled.ENV_SWITCH)
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
        calls.append(self._lat_p95_base if hasattr(self, "_lat_p95_base") else None)
        return original(self, now, dt_s, lam)

    from simulators import engine_compiled  # noqa: PLC0415

    kernel_calls = []
    kernel = engine_compiled._signals_kernel
    monkeypatch.setattr(engine_compiled, "_signals_kernel", lambda *a: kernel_calls.append(1) or kernel(*a))
    monkeypatch.setattr(SimCluster, "_compute_signals", spy)
    cluster = SimCluster(SERVICES, np.random.default_rng(1))
    run(cluster, 20.0, 5.0, load=wave)
    assert len(calls) == 5 and len(kernel_calls) == 5
    assert compiled.available(), "a kernel failed to compile, and every kernel fell back to numpy"


FRESH_PROCESS_TICK = """
import warnings
warnings.simplefilter("error")  # a kernel that fails warns once and switches every kernel off
import numpy as np
from simulators.cluster import SimCluster  # imports the engine kernels before numba has loaded
from tests.simulators.helpers import run
from tests.simulators.test_equivalence import SERVICES, wave
from controller.core.scaling import compiled
run(SimCluster(SERVICES, np.random.default_rng(1)), 20.0, 5.0, load=wave)
assert compiled.available()
"""


def test_engine_kernels_compile_when_imported_before_numba_loads(tmp_path):
    """The bench and the CLI import the engine before anything loads numba; the kernels' shared
    helpers must still be dispatchers when they compile (a fresh process, since this test module
    has loaded numba already, and an empty numba cache, so that the kernels really compile)."""
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS_TICK], capture_output=True, text=True, timeout=300,
                          env={**os.environ, compiled.ENV_SWITCH: "1", "NUMBA_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=actions, faults=fault_lists, capacity=st.sampled_from([None, 8, 12]), seed=st.integers(0, 1000))
def test_compiled_engine_equals_numpy_on_random_scenarios(monkeypatch, script, faults, capacity, seed):
    steps = [(t, action(kind, service, value)) for t, kind, service, value in script]
    assert_same_runs(monkeypatch, ClusterConfig(SERVICES, max_pods_total=capacity), faults, steps, until_s=200.0,
                     seed=seed)
