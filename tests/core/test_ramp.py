"""The ramp stage (core/scaling/ramp.py) and its place in decide: tables and properties."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import ramp as rm
from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, RampParams
from tests.core.helpers import T0, draw_run, no_limits

INTERVAL = 15.0
RP = RampParams(lead_s=75.0, window_s=60.0, interval_s=INTERVAL)


def feed(rp: RampParams, ys: np.ndarray, times: np.ndarray | None = None):
    """Run ramp_step over ys (T, N) (NaN: not usable) every interval; returns the results."""
    state = rm.RampState.empty(ys.shape[1], rp)
    times = T0 + rp.interval_s * np.arange(ys.shape[0]) if times is None else times
    out = []
    for y, t in zip(ys, times):
        ok = np.isfinite(y)
        res, state = rm.ramp_step(rp, state, np.where(ok, y, np.nan), ok, float(t))
        out.append(res)
    return out


RAMPS = [
    pytest.param([100.0] * 8, 0.0, 100.0, id="flat-no-headroom"),
    pytest.param([100.0 + 10.0 * INTERVAL * k for k in range(8)], 10.0, 1150.0 + 750.0, id="rising-10-per-s"),
    pytest.param([1000.0 - 5.0 * INTERVAL * k for k in range(8)], -5.0, 475.0, id="falling-counts-as-flat"),
]


@pytest.mark.parametrize("ys,slope,ahead", RAMPS)
def test_slope_over_the_window_carried_one_lead_ahead(ys, slope, ahead):
    res = feed(RP, np.array(ys)[:, None])[-1]
    assert res.slope[0] == pytest.approx(slope)
    assert res.ahead[0] == pytest.approx(ahead)


def test_no_slope_until_a_sample_one_window_old():
    res = feed(RP, np.array([100.0, 200.0, 300.0, 400.0, 500.0])[:, None])
    # samples at 0, 15, 30, 45 s are younger than the 60 s window; the one at 60 s has a partner
    assert [np.isnan(r.slope[0]) for r in res] == [True, True, True, True, False]
    assert res[-1].slope[0] == pytest.approx(400.0 / 60.0)


def test_a_missing_sample_gives_no_slope_and_is_not_remembered():
    ys = np.array([100.0, 100.0, np.nan, 100.0, 100.0, 400.0])[:, None]
    res = feed(RP, ys)
    assert np.isnan(res[2].slope[0]) and np.isnan(res[2].ahead[0])
    # at 75 s the nearest sample to 60 s ago is the one at 15 s (the one at 30 s was missing)
    assert res[-1].slope[0] == pytest.approx(300.0 / 60.0)


def test_uneven_cycles_pick_the_sample_nearest_one_window_ago():
    times = T0 + np.array([0.0, 20.0, 50.0, 55.0, 110.0])
    res = feed(RP, np.array([0.0, 100.0, 200.0, 300.0, 700.0])[:, None], times)
    assert res[-1].slope[0] == pytest.approx((700.0 - 200.0) / 60.0)  # the sample at 50 s is 60 s old


def policy_with(rp: RampParams | None, **overrides) -> PolicyParams:
    base = dict(name="r", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, ramp=rp),),
                min_replicas=1, max_replicas=60, **no_limits(60.0))
    base.update(overrides)
    return PolicyParams(**base)


def without_ramp(p: PolicyParams) -> PolicyParams:
    return dataclasses.replace(p, metrics=tuple(dataclasses.replace(m, ramp=None) for m in p.metrics))


def test_decide_sizes_a_ramp_ahead_and_records_why():
    p = policy_with(RP, tolerance_up=0.0)
    state, current = ScalingState.empty(1, p), 5.0
    for k in range(6):  # +10 rps/s
        obs = Observation.of([current], [current], [[400.0 + 10.0 * INTERVAL * k]])
        d = decide(p, obs, state, T0 + k * INTERVAL)
        state, current = d.state, float(d.desired[0])
    rec = d.record(0, "r", "default/web", ("rps",)).to_dict()
    r = rec["ramp"]["rps"]
    assert r["slope"] == pytest.approx(10.0) and r["ahead"] == pytest.approx(1150.0 + 750.0)
    assert r["proposal"] == 19 and rec["metrics"]["rps"]["proposal"] == 19 and d.desired[0] == 19


def test_no_ramp_record_without_a_ramp_metric():
    p = policy_with(None)
    d = decide(p, Observation.of([5.0], [5.0], [[400.0]]), ScalingState.empty(1, p), T0)
    assert "ramp" not in d.record(0, "r", "default/web", ("rps",)).to_dict()
    assert d.ramps is None


def test_missing_metric_never_scales_down_with_a_ramp():
    p = policy_with(RP)
    state = ScalingState.empty(1, p)
    for k in range(8):
        d = decide(p, Observation.of([10.0], [10.0], [[np.nan]], present=[[False]]), state, T0 + 300 + k * INTERVAL)
        state = d.state
        assert d.desired[0] == 10


def test_state_reorders_with_the_target_list():
    p = policy_with(RP)
    state = ScalingState.empty(2, p)
    for k in range(6):
        state = decide(p, Observation.of([5, 5], [5, 5], [[100.0 * k], [7.0]]), state, T0 + k * INTERVAL).state
    moved = state.take(np.array([1, -1, 0]))
    assert moved.ramp[0].values.shape[0] == 3
    np.testing.assert_array_equal(moved.ramp[0].times[2], state.ramp[0].times[0])
    assert np.isnan(moved.ramp[0].times[1]).all()


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def ramp_runs(draw):
    """Random live values (some missing), replica counts and policy fields."""
    rp = RampParams(lead_s=draw(st.sampled_from([15.0, 75.0, 300.0])), window_s=draw(st.sampled_from([30.0, 60.0])),
                    interval_s=INTERVAL)
    lo = draw(st.integers(1, 4))
    p = policy_with(rp, min_replicas=lo, max_replicas=lo + draw(st.integers(0, 40)),
                    tolerance_up=draw(st.sampled_from([0.0, 0.05, 0.1])),
                    tolerance_down=draw(st.sampled_from([0.0, 0.1])), **no_limits(draw(st.sampled_from([0.0, 60.0]))))
    return draw_run(draw, p, lo)


@SETTINGS
@given(ramp_runs())
def test_the_ramp_never_lowers_a_scale_up_nor_causes_a_scale_down(run):
    """Same state and observation, with and without the ramp: never a lower desired count, and
    a scale-down only where the reactive decision scales down too."""
    p, values, currents = run
    plain = without_ramp(p)
    state = ScalingState.empty(values.shape[1], p)
    for k, (v, current) in enumerate(zip(values, currents)):
        obs = Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None]))
        now = T0 + k * INTERVAL
        with_r = decide(p, obs, state, now)
        alone = decide(plain, obs, dataclasses.replace(state, ramp=()), now)
        assert (with_r.desired >= alone.desired).all()
        assert not ((with_r.desired < current) & (alone.desired >= current)).any()
        ok = with_r.valid[:, 0]
        assert (with_r.proposals[ok, 0] >= alone.proposals[ok, 0]).all()
        state = with_r.state


@SETTINGS
@given(ramp_runs())
def test_batched_decide_with_ramp_equals_row_by_row(run):
    p, values, currents = run

    def go(rows):
        state, out = ScalingState.empty(len(rows), p), []
        for k, (v, current) in enumerate(zip(values[:, rows], currents[:, rows])):
            d = decide(p, Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None])), state,
                       T0 + k * INTERVAL)
            out.append(d)
            state = d.state
        return out

    batched = go(list(range(values.shape[1])))
    for i in range(values.shape[1]):
        for b, a in zip(batched, go([i])):
            assert b.desired[i] == a.desired[0]
            np.testing.assert_array_equal(b.ramps.ahead[i], a.ramps.ahead[0])
            np.testing.assert_array_equal(b.ramps.slope[i], a.ramps.slope[0])


def test_explain_prints_the_ramp():
    from controller.cli import _format_record

    p = policy_with(RP, tolerance_up=0.0)
    state, current = ScalingState.empty(1, p), 5.0
    for k in range(6):
        d = decide(p, Observation.of([current], [current], [[400.0 + 10.0 * INTERVAL * k]]), state, T0 + k * INTERVAL)
        state, current = d.state, float(d.desired[0])
    line = _format_record(d.record(0, "r", "default/web", ("rps",)).to_dict())
    assert "| ramp rps: slope 10/s ahead 1900 -> 19" in line
