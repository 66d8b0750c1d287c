"""The ``hpa`` preset's decision in one compiled call (core/scaling/hpa_decide.py) gives the numpy
stages' Decision (decide_numpy with the kernels off: signal.read_signal, HPA's calculator on the
pods' table in hpa_replicas, normalize.normalize, the reference): every signal, proposal,
calculator and normalize array and every state array, cycle after cycle, on generated pods
(missing, pending and unready pods, pods inside the CPU initialization period, targets that do
not exist), NaN, stale and negative readings, tolerance edges and scale-down windows; and it
is one call: decide calls none of the stage kernels itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, hpa_compiled, hpa_decide, hpa_normalize, hpa_propose, signal_compiled
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.hpa_propose import JoinedPodSamples
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, RuleType, ScalingRules, Select
from tests.core.helpers import T0
from tests.runtime.test_listed_pod_samples import random_padded, table_samples

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

CPU = MetricParams("cpu", MetricKind.UTILIZATION, 70.0)
N = 30


def hpa(window_s: float = 300.0, **overrides) -> PolicyParams:
    """The hpa preset without behavior (legacy): one cpu Utilization metric, replicas in [2, 20]."""
    base = dict(name="hpa", metrics=(CPU,), min_replicas=2, max_replicas=20, legacy=True, hpa_semantics=True)
    base.update(overrides)
    params = PolicyParams(**base)
    return PolicyParams(**{**base, "scale_down": type(params.scale_down).of(window_s, params.scale_down.select, [])})


def observation(rng, now: float, nan_share: float = 0.1, m: int = 1) -> Observation:
    """N targets' pods in the cluster's padded layout (tests/runtime's random_padded; metric 0
    read per pod) with m metrics' workload readings: some NaN, infinite, negative, stale or
    absent; current counts 0..24."""
    padded, listed = random_padded(rng, N, now)
    pods = table_samples(listed)
    joined = JoinedPodSamples(padded, m, lambda: (pods.pods, pods.usage_milli[:, 0], pods.has_sample[:, 0]))
    values = rng.choice([0.0, 35.0, 69.9, 70.0, 77.0, 150.0, -5.0, np.inf], (N, m))
    values[rng.random((N, m)) < nan_share] = np.nan
    current = rng.integers(0, 25, N).astype(np.float64)
    return Observation(current=current, ready=np.minimum(current, rng.integers(0, 25, N)), status=current,
                       values=values, present=rng.random((N, m)) < 0.9,
                       sample_age_s=rng.choice([0.0, 30.0, 119.0, 121.0, 600.0], (N, m)), pods=joined)


def reference(monkeypatch, params, obs, state, now) -> Decision:
    """decide_numpy with the kernels off: every stage numpy."""
    monkeypatch.setattr(compiled, "switch", "0")
    try:
        return decide_numpy(params, obs, state, now)
    finally:
        monkeypatch.setattr(compiled, "switch", "1")


def assert_same_arrays(got, want, name: str) -> None:
    for field, w in want.__dict__.items():
        g = getattr(got, field)
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.shape == w.shape, f"{name}.{field}"
            np.testing.assert_array_equal(g, w, err_msg=f"{name}.{field}")
        else:
            assert g == w, f"{name}.{field}"


def assert_same_decision(got: Decision, want: Decision) -> None:
    assert_same_arrays(got.signal, want.signal, "signal")
    assert_same_arrays(got.norm, want.norm, "norm")
    assert_same_arrays(got.hpa, want.hpa, "hpa")
    assert_same_arrays(got.kept.norm, want.kept.norm, "kept.norm")
    for name in ("smoothed", "proposals", "valid", "current", "ready", "observed"):
        g, w = getattr(got, name), getattr(want, name)
        assert g.dtype == w.dtype and g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=name)
    assert got.kept.smooth is want.kept.smooth or all(
        np.array_equal(a, b, equal_nan=True) for a, b in zip(got.kept.smooth.__dict__.values(),
                                                            want.kept.smooth.__dict__.values()))
    assert (got.forecasts, got.ramps, got.latest, got.now) == (want.forecasts, want.ramps, want.latest, want.now)


def run_cycles(monkeypatch, params, seed: int, cycles: int, own_state: bool, nan_share: float = 0.1,
               outputs: hpa_decide.OneCallOutputs | None = None) -> int:
    """Cycles of decide (one call where it covers the cycle) beside the reference, each on its own
    copy of the state, every Decision compared; returns the cycles the one call decided.
    ``outputs``: the one call's output arrays, kept from cycle to cycle (decide's ``outputs``)."""
    monkeypatch.setattr(compiled, "switch", "1")
    rng = np.random.default_rng(seed)
    fast_state = ScalingState.empty(N, params)
    ref_state = copy.deepcopy(fast_state)
    one_calls = 0
    for k in range(cycles):
        now = T0 + 15.0 * k
        obs = observation(rng, now, nan_share, len(params.metrics))
        one_calls += hpa_decide.covers(params, obs)
        got = decide(params, obs, fast_state, now, own_state=own_state, outputs=outputs)
        want = reference(monkeypatch, params, obs, ref_state, now)
        assert_same_decision(got, want)
        if outputs is not None and outputs.n == N:  # decided in the kept arrays
            assert got.signal is outputs.signal and got.norm is outputs.result and got.valid is outputs.valid
        applied = rng.random(N) < 0.8
        fast_state, ref_state = got.state_after(applied), want.state_after(applied)
    return one_calls


@pytest.mark.parametrize("params", [
    pytest.param(hpa(), id="default-300s-window"),
    pytest.param(hpa(window_s=0.0), id="no-window"),
    pytest.param(hpa(window_s=45.0, tolerance_up=0.0, tolerance_down=0.0), id="zero-tolerance"),
    pytest.param(hpa(tolerance_up=0.3, tolerance_down=0.05, cpu_initialization_period_s=0.0,
                     initial_readiness_delay_s=0.0), id="wide-up-tolerance-no-cpu-period"),
    pytest.param(hpa(scale_up_limit_factor=1.5, scale_up_limit_minimum=1.0, min_replicas=1, max_replicas=8),
                 id="tight-scale-up-cap"),
    pytest.param(hpa(metrics=(MetricParams("cpu", MetricKind.UTILIZATION, 100.0, resource="memory"),)),
                 id="memory-no-cpu-rules"),
])
@pytest.mark.parametrize("own_state", [True, False], ids=["in-place", "copied"])
def test_one_call_equals_numpy_stages(monkeypatch, params, own_state):
    assert run_cycles(monkeypatch, params, seed=7, cycles=12, own_state=own_state) == 12


@pytest.mark.parametrize("params", [
    pytest.param(hpa(), id="default-300s-window"),
    pytest.param(hpa(window_s=0.0, tolerance_up=0.0, tolerance_down=0.0), id="no-window-zero-tolerance"),
])
def test_outputs_kept_from_cycle_to_cycle_give_each_cycle_s_decision(monkeypatch, params):
    """decide(own_state=True, outputs=...), as ScalingMemory without copies calls it: the one call
    writes the same arrays every cycle, and each cycle's Decision is the numpy stages'."""
    outputs = hpa_decide.OneCallOutputs()
    assert run_cycles(monkeypatch, params, seed=11, cycles=10, own_state=True, outputs=outputs) == 10
    assert outputs.n == N


@pytest.mark.parametrize("first, second", [
    pytest.param(hpa(), hpa(metrics=(MetricParams("cpu", MetricKind.UTILIZATION, 40.0),)), id="other-target"),
    pytest.param(hpa(), hpa(tolerance_up=0.0, tolerance_down=0.0, cpu_initialization_period_s=0.0,
                            initial_readiness_delay_s=0.0), id="other-tolerance-and-cpu-period"),
    pytest.param(hpa(), hpa(min_replicas=1, max_replicas=6, scale_up_limit_factor=1.5, window_s=45.0),
                 id="other-bounds-cap-and-window"),
    pytest.param(hpa(), hpa(), id="equal-policies-apart"),
])
def test_two_policies_taking_turns_each_decide_as_the_numpy_stages(monkeypatch, first, second):
    """Two ``hpa`` policies deciding in turn over the same cycles (two controllers in one process):
    each cycle reads its own policy's terms (hpa_decide._policy_terms keeps them per PolicyParams),
    never the other's, with the reference's Decision."""
    monkeypatch.setattr(compiled, "switch", "1")
    rng = np.random.default_rng(13)
    states = {id(p): (ScalingState.empty(N, p), ScalingState.empty(N, p)) for p in (first, second)}
    for k in range(8):
        now = T0 + 15.0 * k
        obs = observation(rng, now)
        for params in (first, second) if k % 2 == 0 else (second, first):
            fast, ref = states[id(params)]
            got = decide(params, obs, fast, now, own_state=True)
            want = reference(monkeypatch, params, obs, ref, now)
            assert_same_decision(got, want)
            states[id(params)] = (got.state_after(True), want.state_after(True))


@pytest.mark.parametrize("params", [
    pytest.param(PolicyParams("hpa", (CPU,), 2, 20, hpa_semantics=True,
                              scale_up=ScalingRules.of(0.0, Select.MAX, [(RuleType.PODS, 4.0, 15.0),
                                                                        (RuleType.PERCENT, 100.0, 15.0)]),
                              scale_down=ScalingRules.of(60.0, Select.MAX, [(RuleType.PERCENT, 50.0, 30.0)])),
                 id="behavior-policies-and-windows"),
    pytest.param(hpa(metrics=(CPU, MetricParams("mem", MetricKind.UTILIZATION, 80.0, resource="memory"))),
                 id="two-metrics"),
    pytest.param(hpa(metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 50.0),)),
                 id="external-average"),
])
def test_other_policies_run_the_stages_with_the_same_result(monkeypatch, params):
    """Outside the common case the stages run (never the one call), with the reference's result."""
    assert run_cycles(monkeypatch, params, seed=3, cycles=4, own_state=True) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), window_s=st.sampled_from([0.0, 15.0, 60.0, 300.0]),
       tolerance=st.sampled_from([(0.1, 0.1), (0.0, 0.0), (0.05, 0.2), (0.5, 0.0)]),
       target=st.sampled_from([1.0, 50.0, 70.0, 80.0, 100.0, 150.0]),
       bounds=st.sampled_from([(2, 20), (1, 5), (0, 30), (5, 5)]),
       cap=st.sampled_from([(2.0, 4.0), (1.0, 0.0), (3.0, 1.0)]),
       cpu=st.sampled_from(["cpu", "memory"]), period_s=st.sampled_from([0.0, 120.0, 300.0]),
       nan_share=st.sampled_from([0.0, 0.3, 1.0]), own_state=st.booleans())
def test_one_call_equals_numpy_stages_on_generated_cycles(monkeypatch, seed, window_s, tolerance, target, bounds,
                                                          cap, cpu, period_s, nan_share, own_state):
    params = hpa(window_s=window_s, tolerance_down=tolerance[0], tolerance_up=tolerance[1],
                 metrics=(MetricParams("cpu", MetricKind.UTILIZATION, target, resource=cpu),),
                 min_replicas=bounds[0], max_replicas=bounds[1], scale_up_limit_factor=cap[0],
                 scale_up_limit_minimum=cap[1], cpu_initialization_period_s=period_s)
    assert run_cycles(monkeypatch, params, seed, cycles=5, own_state=own_state, nan_share=nan_share) == 5


def test_decide_calls_no_stage_kernel_itself(monkeypatch):
    """In the common case decide makes one kernel call: the signal, calculator and normalize
    kernels run inside it, never from Python (the staged path calls each from Python)."""
    monkeypatch.setattr(compiled, "switch", "1")
    params = hpa()
    state = ScalingState.empty(N, params)
    decide(params, observation(np.random.default_rng(1), T0), state, T0)  # compiled (or loaded) first
    called = []

    def counted(name, kernel):
        return lambda *args: called.append(name) or kernel(*args)

    for module, name in ((signal_compiled, "_signal_kernel"), (hpa_compiled, "_padded_utilization_kernel"),
                         (hpa_normalize, "_normalize_legacy_kernel")):
        monkeypatch.setattr(module, name, counted(name, getattr(module, name)))
    got = decide(params, observation(np.random.default_rng(2), T0 + 15.0), state, T0 + 15.0, own_state=True)
    assert called == [] and got.hpa is not None


def test_declines_before_writing_the_state_when_sums_could_leave_int64(monkeypatch):
    """Huge samples: the calculator's sums could leave int64. The one call declines before the
    normalize stage touches the in-place state; the stages then give the reference's result."""
    monkeypatch.setattr(compiled, "switch", "1")
    params = hpa()
    rng = np.random.default_rng(5)
    obs = observation(rng, T0)
    padded = obs.pods.listed
    huge = type(padded)(padded.slots, np.where(np.isfinite(padded.values), 1e17, padded.values), padded.ages,
                        padded.now, padded.request_milli, padded.window_s, padded.column)
    obs = Observation(**{**obs.__dict__, "pods": JoinedPodSamples(huge, 1, obs.pods._build)})
    state = ScalingState.empty(N, params)
    before = copy.deepcopy(state.norm)
    assert hpa_decide.try_decide(params, obs, state.norm, T0, own_state=True) is None
    assert_same_arrays(state.norm, before, "norm state")


def test_kernels_off_runs_numpy(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    obs = observation(np.random.default_rng(4), T0)  # its padded layout made with the kernels
    monkeypatch.setattr(compiled, "switch", "0")
    assert not hpa_decide.covers(hpa(), obs)
    assert hpa_decide.try_decide(hpa(), obs, ScalingState.empty(N, hpa()).norm, T0) is None


def test_a_kernel_that_fails_to_compile_gives_the_numpy_stages_with_a_warning(monkeypatch):
    """A compiler failure (numba's error, which no real input produces on demand: raised here)
    marks the kernels broken with one warning; that cycle and the next run on numpy, with the
    reference's Decision and the state untouched by the failed call."""
    monkeypatch.setattr(compiled, "switch", "1")
    monkeypatch.setattr(compiled, "_broken", None)
    monkeypatch.setattr(compiled, "_warned", False)
    params = hpa()
    obs = observation(np.random.default_rng(6), T0)  # made with the kernels: its padded layout
    state = ScalingState.empty(N, params)
    want = reference(monkeypatch, params, obs, copy.deepcopy(state), T0)

    def fails_to_compile(*args):
        raise compiled.KERNEL_ERRORS[0]("no compiler for this target")

    monkeypatch.setattr(hpa_decide, "_decide_padded_kernel", fails_to_compile)
    with pytest.warns(RuntimeWarning, match="compiled kernel failed"):
        got = decide(params, obs, state, T0, own_state=True)
    assert_same_decision(got, want)
    assert not compiled.enabled()


@pytest.mark.parametrize("replicas, utilization, usage", [
    pytest.param([3, 7, 2], [65, 90, 10], [650, 900, 100], id="three-targets"),
    pytest.param([], [], [], id="no-target"),
])
def test_error_free_proposals_are_proposals_of_the_pass(replicas, utilization, usage):
    """A one-call cycle with no target in error takes its HpaProposals from the kernel's arrays
    (hpa_propose.error_free): those proposals_of gives of the pass's ReplicaProposal."""
    arrays = [np.asarray(a, np.int64) for a in (replicas, utilization, usage, np.zeros(len(replicas)))]
    got = hpa_propose.error_free(tuple(a.reshape(-1, 1) for a in arrays))
    want = hpa_propose.proposals_of([hpa_compiled.pass_proposal(*arrays, 0, "cpu", "")], len(replicas))
    assert_same_arrays(got, want, "hpa")
    assert got.messages is want.messages  # the shared empty texts


@pytest.mark.parametrize("read_only, in_place", [
    pytest.param(False, True, id="same-writeable-arrays-updated-where-they-are"),
    pytest.param(True, False, id="arrays-made-read-only-copied"),
])
def test_kept_outputs_reuse_the_in_place_history_only_while_it_may_be_written(monkeypatch, read_only, in_place):
    """OneCallOutputs keeps the last cycle's in-place history (history_of): a state holding the same
    arrays the next cycle, still writeable, is updated where it is; arrays made read-only between
    the cycles are copied, as kernel_history copies them, and stay as they were. Either way the
    cycle's Decision is the reference's."""
    params = hpa()
    monkeypatch.setattr(compiled, "switch", "1")
    rng = np.random.default_rng(5)
    outputs = hpa_decide.OneCallOutputs()
    state = ScalingState.empty(N, params)
    first = decide(params, observation(rng, T0), state, T0, own_state=True, outputs=outputs)
    kept = first.state_after(True)
    assert kept.norm.rec_values is state.norm.rec_values  # the first cycle updated the history in place
    norm = kept.norm
    if read_only:
        for a in (norm.rec_values, norm.rec_times, norm.missing_since):
            a.flags.writeable = False
    before = copy.deepcopy(norm)
    obs, now = observation(rng, T0 + 15.0), T0 + 15.0
    want = reference(monkeypatch, params, obs, copy.deepcopy(kept), now)
    got = decide(params, obs, kept, now, own_state=True, outputs=outputs)
    assert_same_decision(got, want)
    assert (got.kept.norm.rec_values is norm.rec_values) is in_place
    if not in_place:
        assert_same_arrays(norm, before, "state before the cycle")
