"""The compiled normalize stage of the ``hpa`` preset without behavior (core/scaling/hpa_normalize.py)
gives the reference's arrays (core/scaling/normalize.py, numpy): every NormResult output and
every NormState array, with their dtypes, on named cases and on generated runs of cycles; and
``decide`` (which uses it for the preset) gives decide_numpy's Decision."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, hpa_normalize
from controller.core.scaling.decide import Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.normalize import NormResult, NormState, normalize
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.model import Reason
from tests.core.helpers import T0

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

CPU = MetricParams("cpu", MetricKind.UTILIZATION, 70.0)
MEM = MetricParams("memory", MetricKind.UTILIZATION, 80.0, resource="memory")


def hpa(**overrides) -> PolicyParams:
    """The hpa preset without behavior (legacy), two metrics, replicas in [2, 20], 60 s window."""
    base = dict(name="hpa", metrics=(CPU, MEM), min_replicas=2, max_replicas=20, legacy=True, hpa_semantics=True)
    base.update(overrides)
    params = PolicyParams(**base)
    return PolicyParams(**{**base, "scale_down": type(params.scale_down).of(60, params.scale_down.select, [])})


def both(monkeypatch, params, current, proposals, valid, state, now):
    monkeypatch.setattr(compiled, "switch", "1")
    before = [a.copy() for a in state.__dict__.values()]
    fast = hpa_normalize.try_normalize(params, np.asarray(current, float), np.asarray(proposals, float),
                                       np.asarray(valid, bool), state, now)
    assert fast is not None, "the kernel declined: the comparison would be numpy with itself"
    for a, b in zip(before, state.__dict__.values()):
        np.testing.assert_array_equal(a, b, err_msg="the input state was changed")
    ref = normalize(params, np.asarray(current, float), np.asarray(proposals, float), np.asarray(valid, bool),
                    state, now)
    return fast, ref


def assert_same(fast: tuple[NormResult, NormState], ref: tuple[NormResult, NormState]) -> None:
    for got_obj, want_obj in zip(fast, ref):
        for name, want in want_obj.__dict__.items():
            got = getattr(got_obj, name)
            assert got.dtype == want.dtype, name
            assert got.shape == want.shape, name
            np.testing.assert_array_equal(got, want, err_msg=name)
            assert got.flags.f_contiguous == want.flags.f_contiguous or got.ndim == 1, name


def history(values: list[list[float]], ages_s: list[list[float]], now: float, slots: int) -> tuple:
    """(N, slots) history from per-row values and ages (NaN age: empty slot), Fortran-ordered."""
    v, t = np.zeros((len(values), slots), order="F"), np.full((len(values), slots), np.nan, order="F")
    for i, (row_v, row_a) in enumerate(zip(values, ages_s)):
        v[i, :len(row_v)], t[i, :len(row_a)] = row_v, now - np.asarray(row_a, float)
    return v, t


NOW = T0 + 3600.0


def state_of(params, n, rec=None, missing_since=None) -> NormState:
    s = NormState.empty(n, params)
    if rec is not None:
        v, t = history(*rec, NOW, params.history_slots)
        s = dataclasses.replace(s, rec_values=v, rec_times=t)
    if missing_since is not None:
        s = dataclasses.replace(s, missing_since=np.asarray(missing_since, float))
    return s


# (params, current (N,), proposals (N, M), valid (N, M), rec (values, ages) or None, missing_since, reason of row 0)
CASES = [
    pytest.param(hpa(), [5], [[8, 3]], [[True, True]], None, None, Reason.SCALE_UP, id="first-sight-seeds-history"),
    pytest.param(hpa(), [5], [[3, 2]], [[True, True]], ([[5]], [[10]]), None, Reason.STABILIZED_DOWN,
                 id="down-held-by-window"),
    pytest.param(hpa(), [5], [[3, 2]], [[True, True]], ([[5]], [[61]]), None, Reason.SCALE_DOWN,
                 id="down-after-window"),
    pytest.param(hpa(), [5], [[3, 2]], [[True, True]], ([[5]], [[60]]), None, Reason.STABILIZED_DOWN,
                 id="window-inclusive"),
    pytest.param(hpa(), [3], [[19, 2]], [[True, True]], ([[3]], [[15]]), None, Reason.RATE_LIMITED_UP,
                 id="scale-up-cap"),
    pytest.param(hpa(max_replicas=6), [3], [[19, 2]], [[True, True]], ([[3]], [[15]]), None, Reason.CLAMPED_TO_MAX,
                 id="clamped-to-max"),
    pytest.param(hpa(), [3], [[1, 1]], [[True, True]], ([[3]], [[200]]), None, Reason.CLAMPED_TO_MIN,
                 id="clamped-to-min"),
    pytest.param(hpa(), [1], [[8, 3]], [[True, True]], ([[1]], [[15]]), None, Reason.BELOW_MIN, id="below-min"),
    pytest.param(hpa(), [25], [[8, 3]], [[True, True]], ([[25]], [[15]]), None, Reason.ABOVE_MAX, id="above-max"),
    pytest.param(hpa(), [0], [[8, 3]], [[True, True]], ([[0]], [[15]]), None, Reason.SCALING_DISABLED,
                 id="disabled-at-zero"),
    pytest.param(hpa(), [5], [[3, np.nan]], [[True, False]], ([[5]], [[200]]), None, Reason.METRICS_MISSING,
                 id="missing-metric-blocks-down"),
    pytest.param(hpa(), [5], [[9, np.nan]], [[True, False]], ([[5]], [[200]]), None, Reason.SCALE_UP,
                 id="missing-metric-allows-up"),
    pytest.param(hpa(), [5], [[np.nan, np.nan]], [[False, False]], ([[5]], [[200]]), [NOW - 30],
                 Reason.METRICS_MISSING, id="none-valid-keeps-missing-since"),
    pytest.param(hpa(), [5, 7], [[np.nan, np.nan], [6, 7]], [[False, False], [True, True]],
                 ([[5], [7, 9]], [[15], [15, 75]]), [np.nan, NOW - 30], Reason.METRICS_MISSING,
                 id="none-valid-starts-missing-since"),
    pytest.param(hpa(), [5], [[np.nan, 4]], [[True, True]], ([[5]], [[15]]), None, Reason.STABILIZED_DOWN,
                 id="nan-proposal-propagates"),  # as np.maximum: NaN stabilized differs from itself
    pytest.param(hpa(), [5], [[4, 4]], [[True, True]], ([[9, 8, 7, 6, 5, 4]], [[1, 2, 3, 4, 5, 6]]), None,
                 Reason.STABILIZED_DOWN, id="history-full-oldest-slot-reused"),
    pytest.param(hpa(), [5], [[4, 4]], [[True, True]], ([[9, 8, 7, 6, 5, 4]], [[90, 2, 80, 4, 5, 6]]), None,
                 Reason.STABILIZED_DOWN, id="outdated-slot-reused"),
    pytest.param(hpa(metrics=(CPU,)), [4, 6, 8], [[4], [12], [2]], [[True], [True], [True]], None, None,
                 Reason.WITHIN_TOLERANCE, id="one-metric-three-targets"),
]


@pytest.mark.parametrize("params, current, proposals, valid, rec, missing_since, reason", CASES)
def test_same_as_reference_on_cases(monkeypatch, params, current, proposals, valid, rec, missing_since, reason):
    state = state_of(params, len(current), rec, missing_since)
    fast, ref = both(monkeypatch, params, current, proposals, valid, state, NOW)
    assert_same(fast, ref)
    assert fast[0].reason[0] == reason  # the row exercises the rule it is named after


def test_declines_without_kernels_or_outside_the_preset(monkeypatch):
    state = state_of(hpa(), 1)
    args = (np.array([5.0]), np.array([[8.0, 3.0]]), np.ones((1, 2), bool), state, NOW)
    monkeypatch.setattr(compiled, "switch", "0")
    assert hpa_normalize.try_normalize(hpa(), *args) is None
    monkeypatch.setattr(compiled, "switch", "1")
    assert hpa_normalize.try_normalize(hpa(legacy=False), *args) is None
    assert hpa_normalize.try_normalize(hpa(hpa_semantics=False), *args) is None


PROPOSAL = st.one_of(st.integers(0, 40).map(float), st.just(np.nan))


@st.composite
def runs(draw):
    """(params, steps): 1-4 targets, 1-2 metrics, 1-30 cycles of (dt_s, current (N,), proposals (N, M),
    valid (N, M)); currents in [0, max + 3], steps of 1-120 s (windows expire, slots fill)."""
    n, m, cycles = draw(st.integers(1, 4)), draw(st.integers(1, 2)), draw(st.integers(1, 30))
    lo = draw(st.integers(0, 3))
    params = hpa(metrics=(CPU, MEM)[:m], min_replicas=lo, max_replicas=lo + draw(st.integers(0, 25)),
                 scale_up_limit_factor=draw(st.sampled_from([1.0, 2.0, 1.5])),
                 scale_up_limit_minimum=draw(st.sampled_from([0.0, 4.0])))
    steps = []
    for _ in range(cycles):
        dt = draw(st.sampled_from([1.0, 15.0, 15.0, 15.0, 45.0, 120.0]))
        current = draw(st.lists(st.integers(0, params.max_replicas + 3), min_size=n, max_size=n))
        proposals = draw(st.lists(st.lists(PROPOSAL, min_size=m, max_size=m), min_size=n, max_size=n))
        valid = draw(st.lists(st.lists(st.booleans(), min_size=m, max_size=m), min_size=n, max_size=n))
        steps.append((dt, np.array(current, float), np.array(proposals, float), np.array(valid, bool)))
    return params, steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_same_as_reference_on_generated_runs(run):
    params, steps = run
    state, now = NormState.empty(steps[0][1].size, params), NOW
    with pytest.MonkeyPatch.context() as mp:
        for dt, current, proposals, valid in steps:
            now += dt
            fast, ref = both(mp, params, current, proposals, valid, state, now)
            assert_same(fast, ref)
            state = ref[1]


def hpa_observations(draw_seed: int, n: int, cycles: int):
    rng = np.random.default_rng(draw_seed)
    current = np.full(n, 4.0)
    for k in range(cycles):
        values = rng.uniform(10, 150, (n, 2))
        present = rng.random((n, 2)) > 0.1
        ready = np.minimum(current, rng.integers(0, 8, n))
        yield T0 + 15.0 * k, Observation.of(current.copy(), ready, values, present=present)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in (1, 2, 3)])
def test_decide_of_the_preset_is_decide_numpy(monkeypatch, seed):
    """decide runs the compiled normalize for the preset: the same Decision as the numpy stages,
    cycle after cycle (pods known by counts; the desired count applied each cycle)."""
    monkeypatch.setattr(compiled, "switch", "1")
    params, n = hpa(), 5
    state = ScalingState.empty(n, params)
    for now, obs in hpa_observations(seed, n, 40):
        got, want = decide(params, obs, state, now), decide_numpy(params, obs, state, now)
        assert_same((got.norm, got.state.norm), (want.norm, want.state.norm))
        np.testing.assert_array_equal(got.proposals, want.proposals)
        state = want.state


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_in_place_same_as_reference_on_generated_runs(run):
    """With ``in_place`` (the caller gives the state up) the kernel updates the state it is given,
    history and missing_since where they are, and returns it: the reference's outputs and arrays,
    cycle after cycle, without a copy of the history."""
    params, steps = run
    n = steps[0][1].size
    state, kept, now = NormState.empty(n, params), NormState.empty(n, params), NOW
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiled, "switch", "1")
        for dt, current, proposals, valid in steps:
            now += dt
            ref = normalize(params, current, proposals, valid, state, now)
            fast = hpa_normalize.try_normalize(params, current, proposals, valid, kept, now, in_place=True)
            assert fast is not None and fast[1] is kept, "a new state: the history was copied"
            assert_same(fast, ref)
            state = ref[1]


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in (1, 2, 3)])
def test_decide_owning_the_state_is_decide_numpy_without_copies(monkeypatch, seed):
    """decide(own_state=True), as a loop that keeps only the decision's state calls it: the same
    Decision and state as the numpy stages, cycle after cycle, the recommendation history kept in
    the same arrays from the first cycle on (updated in place, never copied)."""
    monkeypatch.setattr(compiled, "switch", "1")
    params, n = hpa(), 5
    state, owned = ScalingState.empty(n, params), ScalingState.empty(n, params)
    arrays = owned.norm.rec_values, owned.norm.rec_times
    for now, obs in hpa_observations(seed, n, 40):
        got, want = decide(params, obs, owned, now, own_state=True), decide_numpy(params, obs, state, now)
        assert_same((got.norm, got.state.norm), (want.norm, want.state.norm))
        owned, state = got.state, want.state
        assert owned.norm.rec_values is arrays[0] and owned.norm.rec_times is arrays[1]
