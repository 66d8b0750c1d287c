"""The ramp's latest reading (``ramp.latest``, core/scaling/ramp.py implied_slope): tables and properties."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given

from controller.core.scaling import ramp as rm
from controller.core.scaling.decide import Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.params import RampParams
from tests.core.helpers import T0
from tests.core.test_ramp import INTERVAL, SETTINGS, policy_with, ramp_runs

# a 60 s query window and a 20 s latest reading: the latest is centred 20 s later
RPL = RampParams(lead_s=75.0, window_s=60.0, interval_s=INTERVAL, latest_window_s=20.0)


def feed_latest(rp: RampParams, ys, latest):
    """ramp_step every interval over ys (T,) with latest readings (T,) (NaN: none); the results."""
    state = rm.RampState.empty(1, rp)
    out = []
    for k, (y, z) in enumerate(zip(ys, latest)):
        ok = np.array([np.isfinite(y)])
        res, state = rm.ramp_step(rp, state, np.array([y]), ok, T0 + k * INTERVAL, None, np.array([z]))
        out.append(res)
    return out


def test_gap_is_half_the_difference_of_the_windows():
    assert RPL.gap_s == 20.0
    assert dataclasses.replace(RPL, latest_window_s=30.0).gap_s == 15.0


# (window values, latest readings) over 6 cycles, the last cycle's slope and ahead (lead 75 s)
LATEST = [
    # a steady rise of 2 rps/s: the latest reading is 2 x 20 = 40 above the window's mean: the same slope
    pytest.param([100.0 + 30.0 * k for k in range(6)], [140.0 + 30.0 * k for k in range(6)], 2.0, 250.0 + 150.0,
                 id="steady-rise-same-slope"),
    # a burst that has turned: the window still rises, the latest reading is below its mean
    pytest.param([100.0, 100.0, 100.0, 100.0, 160.0, 200.0], [100.0, 100.0, 100.0, 300.0, 150.0, 120.0], -4.0, 200.0,
                 id="burst-turned-no-look-ahead"),
    # a rise the window has only begun to show: the latest reading gives the slope a window sooner
    pytest.param([100.0] * 5 + [110.0], [100.0] * 5 + [170.0], 3.0, 110.0 + 225.0, id="fresh-rise-sooner"),
    # no latest reading this cycle: the window's slope
    pytest.param([100.0 + 30.0 * k for k in range(6)], [np.nan] * 6, 2.0, 250.0 + 150.0, id="missing-latest-window-slope"),
]


@pytest.mark.parametrize("ys,latest,slope,ahead", LATEST)
def test_the_slope_the_two_readings_imply(ys, latest, slope, ahead):
    res = feed_latest(RPL, ys, latest)[-1]
    assert res.slope[0] == pytest.approx(slope)
    assert res.ahead[0] == pytest.approx(ahead)


def test_no_slope_before_a_window_old_sample_even_with_a_latest_reading():
    res = feed_latest(RPL, [100.0, 200.0, 300.0], [500.0, 500.0, 500.0])
    assert all(np.isnan(r.slope[0]) and np.isnan(r.ahead[0]) for r in res)


def test_without_latest_window_the_reading_is_ignored():
    plain = dataclasses.replace(RPL, latest_window_s=0.0)
    ys = [100.0, 100.0, 100.0, 100.0, 160.0, 200.0]
    res = feed_latest(plain, ys, [0.0] * 6)[-1]
    assert res.slope[0] == pytest.approx(100.0 / 60.0)


def test_decide_reads_the_latest_from_the_observation():
    p = policy_with(RPL, tolerance_up=0.0)
    state, current = ScalingState.empty(1, p), 5.0
    # the window's value rises (a burst's tail): with the latest reading below it, no look-ahead
    for k, (y, z) in enumerate([(400.0, 400.0)] * 4 + [(460.0, 380.0), (480.0, 350.0)]):
        obs = Observation.of([current], [current], [[y]], latest=np.array([[z]]))
        d = decide(p, obs, state, T0 + k * INTERVAL)
        state, current = d.state, float(d.desired[0])
    assert d.ramps.ahead[0, 0] == pytest.approx(480.0) and d.desired[0] == 5


def with_latest(p, state, v, current, z, now):
    obs = Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None]))
    return decide(p, dataclasses.replace(obs, latest=z[:, None]), state, now)


def latest_policy(p):
    return dataclasses.replace(p, metrics=tuple(dataclasses.replace(
        m, ramp=dataclasses.replace(m.ramp, latest_window_s=0.5 * m.ramp.window_s)) for m in p.metrics))


@SETTINGS
@given(ramp_runs())
def test_a_latest_reading_never_lowers_the_reactive_proposal_nor_causes_a_scale_down(run):
    """With any latest readings (some missing), the ramp still only raises: never below the
    policy without a ramp, a scale-down only where that one scales down."""
    p, values, currents = run
    p = latest_policy(p)
    plain = dataclasses.replace(p, metrics=tuple(dataclasses.replace(m, ramp=None) for m in p.metrics))
    rng = np.random.default_rng(values.shape[0])
    state = ScalingState.empty(values.shape[1], p)
    for k, (v, current) in enumerate(zip(values, currents)):
        z = np.where(rng.random(v.shape) < 0.2, np.nan, np.nan_to_num(v, nan=0.0) * rng.uniform(0.5, 2.0, v.shape))
        now = T0 + k * INTERVAL
        with_r = with_latest(p, state, v, current, z, now)
        obs = Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None]))
        alone = decide(plain, obs, dataclasses.replace(state, ramp=()), now)
        assert (with_r.desired >= alone.desired).all()
        assert not ((with_r.desired < current) & (alone.desired >= current)).any()
        state = with_r.state


@SETTINGS
@given(ramp_runs())
def test_batched_latest_equals_row_by_row(run):
    p, values, currents = run
    p = latest_policy(p)
    latest = values * 1.1 + 3.0

    def go(rows):
        state, out = ScalingState.empty(len(rows), p), []
        for k, (v, current, z) in enumerate(zip(values[:, rows], currents[:, rows], latest[:, rows])):
            d = with_latest(p, state, v, current, z, T0 + k * INTERVAL)
            out.append(d)
            state = d.state
        return out

    batched = go(list(range(values.shape[1])))
    for i in range(values.shape[1]):
        for b, a in zip(batched, go([i])):
            assert b.desired[i] == a.desired[0]
            np.testing.assert_array_equal(b.ramps.ahead[i], a.ramps.ahead[0])
            np.testing.assert_array_equal(b.ramps.slope[i], a.ramps.slope[0])


@pytest.mark.parametrize("latest", [
    pytest.param("burst", id="bursts-with-readings-above-and-below"),
    pytest.param("gaps", id="some-readings-missing-or-inf"),
    pytest.param("none", id="no-readings-window-slope"),
])
def test_compiled_equals_numpy_with_latest_readings(latest):
    """The fused kernel's implied slope gives the numpy stages' decisions and state, bit for bit."""
    from tests.core.test_compiled import assert_same, compiled_decide

    p = policy_with(RPL, tolerance_up=0.05, max_replicas=40)
    rng = np.random.default_rng(3)
    n, steps = 4, 40
    base = 300.0 + 200.0 * np.sin(np.arange(steps) / 4.0)[:, None] + rng.normal(0, 40.0, (steps, n))
    values = np.maximum(base, 0.0)
    z = values + rng.normal(0, 80.0, (steps, n))
    if latest == "gaps":
        z[rng.random(z.shape) < 0.25] = np.nan
        z[5, 1], z[9, 2] = np.inf, -np.inf
    states = [ScalingState.empty(n, p)] * 2
    currents = [np.full(n, 3.0)] * 2
    for k in range(steps):
        decisions = []
        for path, run in enumerate((decide_numpy, compiled_decide)):
            obs = Observation.of(currents[path], currents[path], values[k][:, None])
            if latest != "none":
                obs = dataclasses.replace(obs, latest=z[k][:, None].copy())
            decisions.append(run(p, obs, states[path], T0 + k * INTERVAL))
        assert_same(decisions[0], decisions[1], f"cycle {k}")
        states = [d.state for d in decisions]
        currents = [d.norm.desired.copy() for d in decisions]
