"""The observed start-up estimator (core/scaling/startup.py) and the ramp lead that follows it:
tables with fixed times, properties, and the compiled kernel against the numpy stage."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling import startup as su
from controller.core.scaling.decide import Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, RampParams
from tests.core.helpers import T0, no_limits

NAN = np.nan
SP = su.StartupParams(pods=5, quantile=0.9)


def learn(pods: list[tuple[int, float, float, bool]], n: int = 1, now: float = T0 + 10_000.0,
          sp: su.StartupParams = SP, memory: su.StartupMemory | None = None, keys=None) -> su.StartupMemory:
    """Remember pods given as (target, created, ready time, ready) with times relative to T0,
    each pod its own (keys: their identities, default 0, 1, 2, ...)."""
    memory = su.StartupMemory.empty(n, sp) if memory is None else memory
    if not pods:
        return memory
    t, c, r, ok = (np.array(x) for x in zip(*pods))
    c, r = T0 + c.astype(float), T0 + r.astype(float)
    counted = su.observed_startups(c, r, ok.astype(bool), now, sp)
    key = np.arange(len(pods), dtype=np.int64) if keys is None else np.asarray(keys, np.int64)
    return su.remember(memory, t.astype(np.int64), key, c, r, counted)


ESTIMATES = [
    pytest.param([], NAN, 0, id="nothing-observed-is-unknown"),
    pytest.param([(0, 0, 92, True)], 92.0, 1, id="one-start-up"),
    pytest.param([(0, 0, 90, True), (0, 10, 100, True), (0, 20, 115, True)], 94.0, 3,
                 id="three-start-ups-90th-percentile-interpolated"),
    pytest.param([(0, 0, 0, True), (0, 0, 90, True)], 90.0, 1, id="ready-at-creation-is-no-start-up"),
    pytest.param([(0, 0, 90, False), (0, 0, 30, True)], 30.0, 1, id="not-ready-is-skipped"),
    pytest.param([(0, 0, 2000, True), (0, 0, 60, True)], 60.0, 1, id="implausibly-long-is-a-restart-not-a-start-up"),
    pytest.param([(0, 0, 20_000, True)], NAN, 0, id="ready-after-now-is-clock-skew"),
    pytest.param([(0, 0, 60, True), (0, 0, 60, True)], 60.0, 2, id="two-pods-with-the-same-times-count-twice"),
    pytest.param([(0, k * 1000, k * 1000 + (300 if k < 3 else 40), True) for k in range(8)], 40.0, 5,
                 id="only-the-last-five-by-ready-time"),
]


@pytest.mark.parametrize("pods,delay,count", ESTIMATES)
def test_estimate(pods, delay, count):
    e = su.estimate(learn(pods), SP)
    assert e.pods.tolist() == [count]
    assert e.delay_s[0] == pytest.approx(delay, nan_ok=True)


def test_targets_are_estimated_apart():
    e = su.estimate(learn([(0, 0, 30, True), (2, 0, 120, True), (2, 5, 130, True)], n=3), SP)
    assert e.delay_s[0] == 30.0 and np.isnan(e.delay_s[1]) and e.delay_s[2] == pytest.approx(124.5)
    assert e.pods.tolist() == [1, 0, 2] and (e.low_s[2], e.high_s[2]) == (120.0, 125.0)


def test_a_pod_seen_again_counts_once_with_its_first_ready_time():
    memory = learn([(0, 0, 60, True), (0, 0, 60, True)], keys=[7, 7])
    assert su.estimate(memory, SP).pods.tolist() == [1]
    later = learn([(0, 0, 500, True)], memory=memory, keys=[7])  # Ready again after a restart
    e = su.estimate(later, SP)
    assert e.pods.tolist() == [1] and e.delay_s[0] == 60.0


def test_min_pods_keeps_the_fallback_until_enough_are_seen():
    sp = dataclasses.replace(SP, min_pods=3)
    memory = learn([(0, 0, 90, True), (0, 0, 95, True)], sp=sp)
    assert np.isnan(su.estimate(memory, sp).delay_s[0])
    more = learn([(0, 10, 100, True)], sp=sp, memory=memory, keys=[9])
    assert su.estimate(more, sp).delay_s[0] == pytest.approx(94.0)


def test_memory_follows_the_target_list():
    memory = learn([(0, 0, 30, True), (1, 0, 90, True)], n=2)
    moved = memory.take(np.array([1, -1, 0]))
    e = su.estimate(moved, SP)
    assert e.delay_s[0] == 90.0 and np.isnan(e.delay_s[1]) and e.delay_s[2] == 30.0


starts = st.lists(st.tuples(st.integers(0, 2), st.floats(0, 5000), st.floats(0.5, 899), st.booleans()),
                  max_size=40)


@settings(max_examples=150, deadline=None)
@given(pods=starts, quantile=st.floats(0.0, 1.0), keep=st.integers(1, 8))
def test_estimate_within_the_observed_start_ups_and_unknown_without_any(pods, quantile, keep):
    sp = su.StartupParams(pods=keep, quantile=quantile)
    memory = learn([(t, c, c + d, ok) for t, c, d, ok in pods], n=3, now=T0 + 1e6, sp=sp)
    e = su.estimate(memory, sp)
    for i in range(3):
        seen = [(T0 + (c + d)) - (T0 + c) for t, c, d, ok in pods if t == i and ok]  # as the pods' times give them
        if not seen:
            assert np.isnan(e.delay_s[i]) and e.pods[i] == 0
            continue
        assert min(seen) <= e.delay_s[i] <= max(seen)
        assert 1 <= e.pods[i] <= keep


def assert_same_estimate(got: su.StartupEstimate, want: su.StartupEstimate) -> None:
    for field in ("delay_s", "pods", "low_s", "high_s"):
        a, b = getattr(got, field), getattr(want, field)
        assert a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)


@settings(max_examples=150, deadline=None)
@given(rounds=st.lists(starts, min_size=1, max_size=4), quantile=st.floats(0.0, 1.0), keep=st.integers(1, 8))
def test_updating_the_changed_rows_equals_estimating_every_row(rounds, quantile, keep):
    """Start-ups learned round after round: the estimate updated on the rows remember_rows
    recomputed equals the estimate of the whole memory, array for array."""
    sp = su.StartupParams(pods=keep, quantile=quantile)
    memory = su.StartupMemory.empty(3, sp)
    estimated = su.estimate(memory, sp)
    key = 0
    for k, pods in enumerate(rounds):
        if pods:
            t, c, d, ok = (np.array(x) for x in zip(*pods))
            created = T0 + 1000.0 * k + c.astype(float)
            ready = created + d.astype(float)
            counted = su.observed_startups(created, ready, ok.astype(bool), T0 + 1e6, sp)
            keys = np.arange(key, key + len(pods), dtype=np.int64) % 7  # some pods seen again
            key += len(pods)
            memory, rows = su.remember_rows(memory, t.astype(np.int64), keys, created, ready, counted)
            assert set(rows.tolist()) <= set(t[counted].tolist())
        else:
            rows = np.zeros(0, np.int64)
        estimated = su.update_estimate(estimated, memory, rows, sp)
        assert_same_estimate(estimated, su.estimate(memory, sp))


@settings(max_examples=100, deadline=None)
@given(rounds=st.lists(starts, min_size=1, max_size=4), keep=st.integers(1, 8), switch=st.sampled_from(["1", "0"]))
def test_remembering_in_place_equals_remembering_into_copies(rounds, keep, switch):
    """in_place=True (the observer's) writes the rows into the memory's own arrays: the same
    memory and rows as the copying call, which leaves the memory it is given as it was."""
    sp = su.StartupParams(pods=keep)
    copied, in_place = su.StartupMemory.empty(3, sp), su.StartupMemory.empty(3, sp)
    saved, compiled.switch = compiled.switch, switch
    try:
        for k, pods in enumerate(rounds):
            if not pods:
                continue
            t, c, d, ok = (np.array(x) for x in zip(*pods))
            created = T0 + 1000.0 * k + c.astype(float)
            ready = created + d.astype(float)
            counted = su.observed_startups(created, ready, ok.astype(bool), T0 + 1e6, sp)
            keys = np.arange(len(pods), dtype=np.int64) % 5  # some pods seen again
            given_before = [a.copy() for a in (copied.key, copied.created_s, copied.ready_s)]
            after_copy, rows = su.remember_rows(copied, t.astype(np.int64), keys, created, ready, counted)
            after, rows_in_place = su.remember_rows(in_place, t.astype(np.int64), keys, created, ready, counted,
                                                    in_place=True)
            assert rows_in_place.tolist() == rows.tolist()
            for field, before in zip(("key", "created_s", "ready_s"), given_before):
                np.testing.assert_array_equal(getattr(after, field), getattr(after_copy, field), err_msg=field)
                np.testing.assert_array_equal(getattr(copied, field), before, err_msg=field)  # untouched
                assert getattr(after, field) is getattr(in_place, field)  # written in place
            assert (after is in_place) == (rows.size == 0)  # a new object when rows changed
            copied, in_place = after_copy, after
    finally:
        compiled.switch = saved


@pytest.mark.parametrize("first, then, rows", [
    pytest.param([(0, 0, 90, True)], [(1, 100, 130, True)], [1], id="another-target-learns"),
    pytest.param([(0, 0, 90, True)], [(0, 100, 130, True), (2, 0, 50, True)], [0, 2], id="two-targets-learn"),
    pytest.param([(0, 0, 90, True)], [(1, 100, 130, False)], [], id="nothing-counted-nothing-recomputed"),
])
def test_remember_rows_names_the_rows_it_changed(first, then, rows):
    memory = learn(first, n=3)
    later, changed = su.remember_rows(memory, *_pods(then))
    assert changed.tolist() == rows
    assert_same_estimate(su.update_estimate(su.estimate(memory, SP), later, changed, SP), su.estimate(later, SP))
    if not rows:
        assert later is memory


def _rounds_under(switch: str, rounds, sp: su.StartupParams, n: int = 3):
    """The memory and estimate after each round of (target, created, span, ready, key) start-ups
    (times relative to T0; ``None`` span: a NaN creation time) with the kernels on ("1") or off."""
    saved = compiled.switch
    compiled.switch = switch
    try:
        memory = su.StartupMemory.empty(n, sp)
        estimated = su.estimate(memory, sp)
        out = []
        for pods in rounds:
            rows = np.zeros(0, np.int64)
            if pods:
                t, c, d, ok, key = (np.array(x) for x in zip(*pods))
                created = T0 + c.astype(float)
                ready = created + d.astype(float)
                created = np.where(c < 0, np.nan, created)  # a creation the source did not give
                counted = su.observed_startups(created, ready, ok.astype(bool), T0 + 1e6, sp)
                counted |= (c < 0) & ok.astype(bool)  # counted anyway: the merge must still order it
                memory, rows = su.remember_rows(memory, t.astype(np.int64), key.astype(np.int64), created, ready,
                                                counted)
            estimated = su.update_estimate(estimated, memory, rows, sp)
            out.append((memory, rows, estimated))
        return out
    finally:
        compiled.switch = saved


def assert_same_rounds(rounds, sp: su.StartupParams, n: int = 3) -> None:
    for k, ((m1, r1, e1), (m0, r0, e0)) in enumerate(zip(_rounds_under("1", rounds, sp, n),
                                                         _rounds_under("0", rounds, sp, n))):
        assert r1.tolist() == r0.tolist(), f"round {k}: rows"
        for field in ("key", "created_s", "ready_s"):
            a, b = getattr(m1, field), getattr(m0, field)
            assert a.dtype == b.dtype, field
            np.testing.assert_array_equal(a, b, err_msg=f"round {k}: {field}")
        assert_same_estimate(e1, e0)


pod_rounds = st.lists(st.lists(st.tuples(st.integers(-1, 3), st.sampled_from([-1.0, 0.0, 10.0, 500.0]),
                                         st.sampled_from([0.5, 30.0, 30.0, 90.0, 899.0]), st.booleans(),
                                         st.integers(0, 5)), max_size=12), min_size=1, max_size=5)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@settings(max_examples=200, deadline=None)
@given(rounds=pod_rounds, quantile=st.floats(0.0, 1.0), keep=st.integers(1, 6), min_pods=st.integers(0, 3))
def test_compiled_memory_and_estimate_equal_numpy(rounds, quantile, keep, min_pods):
    """Rows -1 and 3 are outside the 3 targets; keys repeat (a pod seen again, maybe with
    another creation time); equal Ready times tie on creation, then key."""
    assert_same_rounds(rounds, su.StartupParams(pods=keep, quantile=quantile, min_pods=min_pods))


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("rounds", [
    pytest.param([[(0, 0.0, 30.0, True, 1), (0, 0.0, 30.0, True, 2), (0, 10.0, 20.0, True, 3)]],
                 id="equal-ready-times-by-creation-then-key"),
    pytest.param([[(0, 0.0, 30.0, True, 1)], [(0, 5.0, 25.0, True, 1)], [(0, 0.0, 90.0, True, 1)]],
                 id="a-pod-seen-again-keeps-its-earliest-ready"),
    pytest.param([[(0, 0.0, 30.0, True, 1), (0, 10.0, 20.0, True, 1)]], id="same-pod-same-ready-first-kept"),
    pytest.param([[(1, float(c), 30.0 + c, True, c) for c in range(6)]], id="more-than-k-keeps-the-newest"),
    pytest.param([[(0, -1.0, 30.0, True, 1), (0, 0.0, 30.0, True, 2), (0, -1.0, 30.0, True, 0)]],
                 id="nan-creation-sorts-last"),
    pytest.param([[(-1, 0.0, 30.0, True, 1), (3, 0.0, 30.0, True, 2)]], id="rows-outside-are-skipped"),
    pytest.param([[(2, 0.0, 30.0, False, 1)], []], id="nothing-counted"),
])
def test_compiled_memory_named_rows(rounds):
    assert_same_rounds(rounds, su.StartupParams(pods=4, quantile=0.9))


def _pods(pods):
    t, c, r, ok = (np.array(x) for x in zip(*pods))
    c, r = T0 + c.astype(float), T0 + r.astype(float)
    counted = su.observed_startups(c, r, ok.astype(bool), T0 + 10_000.0, SP)
    return t.astype(np.int64), np.arange(100, 100 + len(pods), dtype=np.int64), c, r, counted


# ----------------------------------------------------------------------------- the ramp's lead
OBSERVED = RampParams(lead_s=75.0, window_s=60.0, interval_s=15.0, observed=True)


@pytest.mark.parametrize("rp,startup,lead", [
    pytest.param(OBSERVED, None, [75.0, 75.0], id="nothing-observed-initial-lead"),
    pytest.param(OBSERVED, [92.0, NAN], [137.0, 75.0], id="observed-92s-plus-interval-and-half-window"),
    pytest.param(dataclasses.replace(OBSERVED, observed=False), [92.0, 10.0], [75.0, 75.0],
                 id="a-fixed-start-up-ignores-observations"),
])
def test_lead_follows_the_observed_start_up(rp, startup, lead):
    assert rp.leads(None if startup is None else np.array(startup), 2).tolist() == lead


def policy_with(rp: RampParams) -> PolicyParams:
    return PolicyParams(name="r", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, ramp=rp),),
                        tolerance_up=0.0, min_replicas=1, max_replicas=1000, **no_limits())


def run(params: PolicyParams, startup: np.ndarray | None, step=decide, cycles: int = 8):
    """A rate rising 10/s per target for ``cycles`` cycles; the last Decision."""
    n = 3
    state, current = ScalingState.empty(n, params), np.full(n, 5.0)
    for k in range(cycles):
        obs = Observation.of(current, current, np.full((n, 1), 400.0 + 150.0 * k))
        obs = dataclasses.replace(obs, startup_s=startup)
        d = step(params, obs, state, T0 + 15.0 * k)
        state, current = d.state, d.desired.astype(float)
    return d


def test_a_slow_start_up_sizes_further_ahead():
    d = run(policy_with(OBSERVED), np.array([92.0, 10.0, NAN]))
    ahead = d.ramps.ahead[:, 0]
    y = d.signal.values[:, 0]
    assert ahead.tolist() == pytest.approx((y + 10.0 * np.array([137.0, 55.0, 75.0])).tolist())
    assert d.desired[0] > d.desired[2] > d.desired[1]


@pytest.mark.skipif(not compiled.available(), reason="numba unavailable")
@pytest.mark.parametrize("startup", [None, np.array([92.0, 10.0, NAN]), np.array([NAN, NAN, 600.0])])
def test_compiled_kernel_equals_the_numpy_stage(startup):
    p = policy_with(OBSERVED)
    a, b = run(p, startup, decide), run(p, startup, decide_numpy)
    assert np.array_equal(a.ramps.ahead, b.ramps.ahead, equal_nan=True)
    assert a.desired.tolist() == b.desired.tolist()
