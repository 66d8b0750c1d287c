"""The forecast stage (core/scaling/forecast.py) and its place in decide: tables and properties."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import forecast as fc
from controller.core.scaling.decide import Observation, ScalingState, decide, warm
from controller.core.scaling.params import ForecastParams, MetricKind, MetricParams, PolicyParams
from tests.core.helpers import T0, no_limits, without_forecast

HOUR = 3600.0
INTERVAL = 15.0


def fparams(**overrides) -> ForecastParams:
    """An hourly season (fast to learn), a 2-minute horizon, no history needed to judge it."""
    base = dict(horizon_s=120.0, interval_s=INTERVAL, periods_s=(HOUR,), min_history_s=0.0)
    base.update(overrides)
    return ForecastParams(**base)


def feed(fp: ForecastParams, ys: np.ndarray, state: fc.ForecastState | None = None, t0: float = T0,
         startup_s: np.ndarray | None = None):
    """Run forecast_step over ys (T, N) every interval; returns (results, final state)."""
    state = fc.ForecastState.empty(ys.shape[1], fp) if state is None else state
    out = []
    for k, y in enumerate(ys):
        ok = np.isfinite(y)
        res, state = fc.forecast_step(fp, state, np.where(ok, y, np.nan), ok, t0 + k * fp.interval_s, startup_s)
        out.append(res)
    return out, state


def ticks(periods: float, period_s: float = HOUR) -> np.ndarray:
    return T0 + INTERVAL * np.arange(int(periods * period_s / INTERVAL))


def sine(t: np.ndarray, mean=500.0, amp=300.0, period_s=HOUR) -> np.ndarray:
    return mean + amp * np.sin(2 * np.pi * (t - T0) / period_s)


# --------------------------------------------------------------------------- tables
@pytest.mark.parametrize("mean,amp", [pytest.param(500.0, 300.0, id="deep-swing"),
                                      pytest.param(100.0, 20.0, id="shallow-swing")])
def test_a_pure_sine_is_forecast_within_a_small_error_after_two_periods(mean, amp):
    fp = fparams()
    t = ticks(3)
    results, _ = feed(fp, sine(t, mean, amp)[:, None])
    after = t >= T0 + 2 * HOUR
    points = np.array([r.point[0] for r in results])[after[:len(results)]]
    truth = sine(t[after] + fp.horizon_s, mean, amp)
    assert np.abs(points - truth).max() <= 0.02 * amp
    assert results[-1].trusted[0] and results[-1].mase[0] < 0.2


@pytest.mark.parametrize("level", [pytest.param(0.0, id="zero"), pytest.param(1.0, id="one"),
                                   pytest.param(750.0, id="hundreds")])
def test_a_constant_stays_constant(level):
    results, _ = feed(fparams(), np.full((int(HOUR / INTERVAL), 1), level))
    last = results[-1]
    assert last.point[0] == pytest.approx(level, abs=1e-9)
    assert last.upper[0] == pytest.approx(level, abs=1e-9)  # no error, no margin
    assert last.trusted[0]


def test_no_forecast_before_the_first_sample_and_none_trusted_before_enough_are_scored():
    fp = fparams()
    results, _ = feed(fp, np.array([[np.nan], [np.nan], [100.0], [100.0]]))
    assert np.isnan(results[0].point[0]) and np.isnan(results[1].point[0])
    assert results[2].point[0] == 100.0 and not results[3].trusted[0]


def test_a_sustained_ramp_is_forecast_ahead_of_persistence():
    fp = fparams(periods_s=())
    y = 100.0 + 0.5 * np.arange(400.0)  # +2 rps per minute
    results, _ = feed(fp, y[:, None])
    assert results[-1].point[0] > y[-1] and results[-1].mase[0] < 1.0


def test_the_error_bound_switches_the_forecast_off_and_back_on():
    """A learned hourly sine, then its phase flips: the profile forecasts the wrong direction
    (errors above the bound: ignored), and once it has relearned the season the forecast
    counts again."""
    fp = fparams(error_bound=0.8)
    t = ticks(9)
    flip = T0 + 3 * HOUR
    y = np.where(t < flip, sine(t), sine(t + HOUR / 2))
    results, _ = feed(fp, y[:, None])
    trusted = np.array([r.trusted[0] for r in results])
    at_flip = int(np.searchsorted(t, flip))
    assert trusted[at_flip - 1]
    off = at_flip + int(np.argmin(trusted[at_flip:]))
    assert not trusted[off] and off - at_flip < HOUR / INTERVAL
    assert trusted[off:].any() and trusted[-1]


def test_batched_equals_row_by_row():
    rng = np.random.default_rng(5)
    t = ticks(2.5)
    ys = np.stack([sine(t), np.full(t.size, 40.0), 300 + rng.normal(0, 30, t.size), sine(t, 80, 10)], axis=1)
    ys[rng.random(ys.shape) < 0.05] = np.nan
    fp = fparams()
    batched, _ = feed(fp, ys)
    for i in range(ys.shape[1]):
        alone, _ = feed(fp, ys[:, i:i + 1])
        for b, a in zip(batched, alone):
            for name in ("point", "upper", "mase", "trusted"):
                np.testing.assert_array_equal(getattr(b, name)[i], getattr(a, name)[0])


OBSERVED = dict(horizon_s=75.0, observed=True, lag_s=45.0)  # startupDelay: observed, 30s until one is seen


@pytest.mark.parametrize("startup_s,horizon_s", [
    pytest.param(np.nan, 75.0, id="unknown-initial-horizon"),
    pytest.param(90.0, 135.0, id="observed-plus-lag"),
    pytest.param(600.0, 180.0, id="capped-at-the-layout-maximum"),
])
def test_an_observed_start_up_sets_the_horizon(startup_s, horizon_s):
    fp = fparams(**OBSERVED)
    _, state = feed(fp, np.full((3, 1), 100.0), startup_s=np.array([startup_s]))
    assert np.nanmax(state.pend_due[0]) == T0 + 2 * INTERVAL + horizon_s
    assert state.pend_due.shape[1] == fp.pending_slots == 14  # 180 s / 15 s + 2


def test_a_horizon_following_the_start_up_forecasts_a_sine_as_a_fixed_one():
    """Observed 90 s behaves as a fixed 135 s horizon; a target with none observed as the initial 75 s."""
    t = ticks(3)
    ys = np.stack([sine(t), sine(t, 100.0, 20.0)], axis=1)
    observed, _ = feed(fparams(**OBSERVED), ys, startup_s=np.array([90.0, np.nan]))
    for i, horizon_s in enumerate((135.0, 75.0)):
        fixed, _ = feed(fparams(horizon_s=horizon_s), ys[:, i:i + 1])
        for o, f in zip(observed, fixed):
            for name in ("point", "upper", "mase", "trusted"):
                np.testing.assert_allclose(getattr(o, name)[i], getattr(f, name)[0], rtol=1e-12)


@pytest.mark.parametrize("shape,accepted", [
    pytest.param("sine", True, id="seasonal-history-accepts-the-period"),
    pytest.param("noise", False, id="white-noise-rejects-it"),
])
def test_warm_detects_seasonality_from_history(shape, accepted):
    fp = fparams()
    t = ticks(3)
    y = sine(t) if shape == "sine" else np.random.default_rng(1).normal(500, 50, t.size)
    state = fc.warm(fp, fc.ForecastState.empty(1, fp), y[None, :], t)
    assert (state.season[0, 0] == 2) == accepted


def test_warm_starts_as_good_as_learning_online():
    fp = fparams()
    t = ticks(3)
    history = sine(t)
    state = fc.warm(fp, fc.ForecastState.empty(1, fp), history[None, :], t)
    now = t[-1] + INTERVAL
    res, _ = fc.forecast_step(fp, state, sine(np.array([now])), np.ones(1, bool), now)
    assert res.trusted[0]
    assert res.point[0] == pytest.approx(sine(np.array([now + fp.horizon_s]))[0], abs=0.02 * 300)


def test_state_reorders_with_the_target_list():
    fp = fparams()
    _, state = feed(fp, np.stack([np.full(50, 10.0), np.full(50, 20.0)], axis=1))
    moved = state.take(np.array([1, -1, 0]))
    assert moved.level.tolist()[0] == 20.0 and np.isnan(moved.level[1]) and moved.level[2] == 10.0
    assert moved.season[1].tolist() == [0]


# --------------------------------------------------------------------------- in decide
def policy_with(forecast: ForecastParams | None, **overrides) -> PolicyParams:
    base = dict(name="f", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, forecast),),
                min_replicas=1, max_replicas=60, **no_limits(60.0))
    base.update(overrides)
    return PolicyParams(**base)


def test_decide_records_both_proposals_and_the_error():
    p = policy_with(fparams(periods_s=()))
    state = ScalingState.empty(1, p)
    current = 5.0
    for k in range(40):  # a ramp: the forecast leads
        obs = Observation.of([current], [current], [[400.0 + 10.0 * k]])
        d = decide(p, obs, state, T0 + k * INTERVAL)
        state, current = d.state, float(d.desired[0])
    rec = d.record(0, "f", "default/web", ("rps",)).to_dict()
    f = rec["forecast"]["rps"]
    assert f["trusted"] and f["error"] < 1.0 and f["forecast"] > 790.0
    assert f["predictive"] >= f["reactive"] and rec["metrics"]["rps"]["proposal"] == max(f["predictive"], f["reactive"])


def test_warm_through_decide_state():
    p = policy_with(fparams())
    t = ticks(3)
    state = warm(p, ScalingState.empty(2, p), np.stack([sine(t), np.full(t.size, np.nan)])[:, :, None], t)
    assert state.forecast[0].season[:, 0].tolist() == [2, 0]
    d = decide(p, Observation.of([5, 5], [5, 5], [[sine(t[-1:] + INTERVAL)[0]], [500.0]]), state, t[-1] + INTERVAL)
    assert d.forecasts.trusted[:, 0].tolist() == [True, False]


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def forecast_runs(draw):
    """A random history (warm) then random live values, replica counts and policy fields."""
    fp = ForecastParams(horizon_s=draw(st.sampled_from([15.0, 45.0, 75.0])), interval_s=INTERVAL,
                        periods_s=draw(st.sampled_from([(), (600.0,)])), min_history_s=0.0,
                        margin=draw(st.sampled_from([0.0, 1.0, 3.0])), quantile=0.8,
                        error_bound=draw(st.sampled_from([0.5, 1.25, 5.0])))
    lo = draw(st.integers(1, 4))
    p = policy_with(fp, min_replicas=lo, max_replicas=lo + draw(st.integers(0, 40)),
                    tolerance_up=draw(st.sampled_from([0.0, 0.05, 0.1])),
                    tolerance_down=draw(st.sampled_from([0.0, 0.1])), **no_limits(draw(st.sampled_from([0.0, 60.0]))))
    n, steps = draw(st.integers(1, 3)), draw(st.integers(1, 20))
    level = st.floats(0, 3000, allow_nan=False)
    history = np.array(draw(st.lists(st.lists(level, min_size=n, max_size=n), min_size=60, max_size=60))).T
    values = draw(st.lists(st.lists(st.one_of(level, st.just(float("nan"))), min_size=n, max_size=n),
                           min_size=steps, max_size=steps))
    currents = draw(st.lists(st.lists(st.integers(lo, p.max_replicas), min_size=n, max_size=n),
                             min_size=steps, max_size=steps))
    return p, history, np.array(values, dtype=float), np.array(currents, dtype=float)


@SETTINGS
@given(forecast_runs())
def test_the_predictive_side_never_lowers_a_scale_up_nor_causes_a_scale_down(run):
    """Same state and observation, with and without the forecast: the forecast's desired count
    is never lower, and it scales down only where the reactive decision does too."""
    p, history, values, currents = run
    plain = without_forecast(p)
    n = history.shape[0]
    t_hist = T0 - INTERVAL * np.arange(history.shape[1], 0, -1)
    state = warm(p, ScalingState.empty(n, p), history[:, :, None], t_hist)
    for k, (v, current) in enumerate(zip(values, currents)):
        obs = Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None]))
        now = T0 + k * INTERVAL
        with_f = decide(p, obs, state, now)
        alone = decide(plain, obs, dataclasses.replace(state, forecast=()), now)
        assert (with_f.desired >= alone.desired).all()
        assert not ((with_f.desired < current) & (alone.desired >= current)).any()
        ok = with_f.valid[:, 0]
        assert (with_f.proposals[ok, 0] >= alone.proposals[ok, 0]).all()
        state = with_f.state


@SETTINGS
@given(forecast_runs())
def test_batched_decide_with_forecast_equals_row_by_row(run):
    p, history, values, currents = run
    t_hist = T0 - INTERVAL * np.arange(history.shape[1], 0, -1)

    def go(rows):
        state = warm(p, ScalingState.empty(len(rows), p), history[rows][:, :, None], t_hist)
        out = []
        for k, (v, current) in enumerate(zip(values[:, rows], currents[:, rows])):
            d = decide(p, Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None])), state,
                       T0 + k * INTERVAL)
            out.append(d)
            state = d.state
        return out

    batched = go(list(range(history.shape[0])))
    for i in range(history.shape[0]):
        for b, a in zip(batched, go([i])):
            assert b.desired[i] == a.desired[0]
            np.testing.assert_array_equal(b.forecasts.upper[i], a.forecasts.upper[0])
            np.testing.assert_array_equal(b.forecasts.trusted[i], a.forecasts.trusted[0])
