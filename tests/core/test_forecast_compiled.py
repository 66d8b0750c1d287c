"""The forecast stage on the compiled path (core/scaling/forecast_compiled.py before the fused kernel)
gives the numpy stage's Decision, forecasts and forecast state, array for array, cycle after cycle:
through decide (a workspace per call) and in place (one workspace, decide_into + commit).

Rows name what each exercises (a seasonal sine learnt from history, a constant, a step, missing,
stale, negative and non-finite samples, forecasts that are never trusted, several targets with
their own observed start-ups, two forecast metrics, a horizon whose error window needs numpy's
long pairwise sum); hypothesis draws random forecast policies and inputs; batched equals row by
row; the helpers that reproduce numpy's sums and quantile are checked against numpy directly.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import controller.core.scaling.decide as decide_module
from controller.core.scaling import compiled, workspace
from controller.core.scaling import forecast_compiled as fk
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide, decide_numpy, warm
from controller.core.scaling.params import ForecastParams, MetricKind, MetricParams, PolicyParams, RampParams, Smoothing
from controller.core.scaling.workspace import DecisionWorkspace, decide_into
from controller.policy import load_policy_text
from tests.core.helpers import T0
from tests.core.test_compiled import REPO, assert_same

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

INTERVAL = 15.0
PERIOD = 600.0  # a 10-minute season: learnt in minutes (buckets of the 15 s interval)


def fparams(**overrides) -> ForecastParams:
    base = dict(horizon_s=45.0, interval_s=INTERVAL, periods_s=(PERIOD, 3 * PERIOD), min_history_s=PERIOD)
    base.update(overrides)
    return ForecastParams(**base)


def policy(*metrics: MetricParams, **overrides) -> PolicyParams:
    base = dict(name="f", metrics=metrics, min_replicas=1, max_replicas=60)
    base.update(overrides)
    return PolicyParams(**base)


def rps(fp: ForecastParams | None = None, **kw) -> MetricParams:
    return MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, forecast=fp or fparams(), **kw)


def assert_forecasts_equal(a: Decision, b: Decision, where: str) -> None:
    """The Forecasts of two Decisions and the forecast states they keep are identical."""
    assert (a.forecasts is None) == (b.forecasts is None), f"{where}: forecasts on one path only"
    assert a.forecasts.columns == b.forecasts.columns
    for k in ("point", "upper", "error", "trusted", "reactive", "predictive"):
        x, y = getattr(a.forecasts, k), getattr(b.forecasts, k)
        assert x.dtype == y.dtype, f"{where}: forecasts.{k} dtype"
        np.testing.assert_array_equal(x, y, err_msg=f"{where}: forecasts.{k}")
    assert_forecast_states_equal(a.kept.forecast, b.kept.forecast, where)


def assert_forecast_states_equal(a: tuple, b: tuple, where: str) -> None:
    assert len(a) == len(b), f"{where}: forecast states"
    for m, (x, y) in enumerate(zip(a, b)):
        for field in dataclasses.fields(x):
            u, v = getattr(x, field.name), getattr(y, field.name)
            for k, (p, q) in enumerate(zip(u, v) if isinstance(u, tuple) else [(u, v)]):
                assert p.shape == q.shape and p.dtype == q.dtype, f"{where}: forecast[{m}].{field.name}[{k}]"
                np.testing.assert_array_equal(p, q, err_msg=f"{where}: forecast[{m}].{field.name}[{k}]")


def observation(current, values, ready_lag=0, startup=None, ages=None, present=None, withheld=0,
                latest=None) -> Observation:
    ready = np.maximum(current - ready_lag, 0.0)
    obs = Observation.of(current, ready, values, status=current,
                         present=~np.isnan(values) if present is None else present, sample_age_s=ages,
                         withheld=np.minimum(withheld, current - ready) if withheld else None, latest=latest)
    return dataclasses.replace(obs, startup_s=startup)


def run_three_ways(p: PolicyParams, values: np.ndarray, current0, history=None, startup=None, ready_lag=0,
                   ages=None, present=None, times=None, withheld=0, latest=None) -> list[Decision]:
    """Feed (steps, N, M) values to decide_numpy, to the compiled decide (each its own state) and
    to one workspace in place (decide_into, then commit); every array compared each cycle and the
    records of the first two. history: (N, T, M) values warmed in before the first cycle."""
    steps, n, _ = values.shape
    state = ScalingState.empty(n, p)
    if history is not None:
        t_hist = T0 - INTERVAL * np.arange(history.shape[1], 0, -1)
        state = warm(p, state, history, t_hist)
    states = [state, state]
    currents = [np.asarray(current0, float).copy() for _ in range(3)]
    ws = DecisionWorkspace.from_state(p, state)
    out = []
    for k in range(steps):
        now = T0 + k * INTERVAL if times is None else times[k]
        args = dict(ready_lag=ready_lag, startup=startup, ages=None if ages is None else ages[k],
                    present=None if present is None else present[k], withheld=withheld,
                    latest=None if latest is None else latest[k])
        ref = decide_numpy(p, observation(currents[0], values[k], **args), states[0], now)
        fast = decide_module._decide_compiled(p, observation(currents[1], values[k], **args), states[1], now)
        assert_same(ref, fast, f"cycle {k}")
        assert_forecasts_equal(ref, fast, f"cycle {k}")
        names = p.metric_names
        assert [r.to_dict() for r in ref.records("f", [f"t{i}" for i in range(n)], names)] == \
            [r.to_dict() for r in fast.records("f", [f"t{i}" for i in range(n)], names)], f"cycle {k}: records"
        obs = observation(currents[2], values[k], **args)
        decide_into(p, ws, obs, now)
        in_place = ws.decision(obs, now, copy=True)
        np.testing.assert_array_equal(in_place.desired, ref.desired, err_msg=f"cycle {k}: in place")
        np.testing.assert_array_equal(in_place.proposals, ref.proposals, err_msg=f"cycle {k}: in place")
        ws.commit()
        for name in ("point", "upper", "error", "trusted", "reactive", "predictive"):
            np.testing.assert_array_equal(getattr(in_place.forecasts, name), getattr(ref.forecasts, name),
                                          err_msg=f"cycle {k}: in place forecasts.{name}")
        states = [ref.state, fast.state]
        assert_forecast_states_equal(ref.state.forecast, ws.state().forecast, f"cycle {k}: in place")
        currents = [ref.norm.desired.copy(), fast.norm.desired.copy(), ws.desired.copy()]
        out.append(ref)
    return out


def waves(steps: int, n: int, mean=500.0, amp=300.0, noise=0.0, seed=0, start=T0, period=PERIOD) -> np.ndarray:
    """(steps, n): a sine of the season per target (target i at mean * (1 + i / 10)), with noise."""
    t = start + INTERVAL * np.arange(steps)
    rng = np.random.default_rng(seed)
    base = (mean + amp * np.sin(2 * np.pi * (t - T0) / period))[:, None] * (1 + np.arange(n) / 10.0)[None, :]
    return base * rng.lognormal(0.0, noise, (steps, n)) if noise else base


def history_of(steps: int, n: int, **kw) -> np.ndarray:
    """(n, steps, 1): waves before T0."""
    return waves(steps, n, start=T0 - INTERVAL * steps, **kw).T[:, :, None]


def with_gaps(values: np.ndarray, seed: int, share: float) -> np.ndarray:
    out = values.copy()
    out[np.random.default_rng(seed).random(out.shape) < share] = np.nan
    return out


# --------------------------------------------------------------------------------------- scripted rows
def _sine():
    return policy(rps()), waves(120, 3, noise=0.03)[:, :, None], dict(history=history_of(200, 3))


def _constant():
    return policy(rps()), np.full((80, 2, 1), 420.0), {}


def _step():
    v = np.concatenate([np.full(40, 300.0), np.full(50, 1500.0)])
    return policy(rps(fparams(periods_s=()))), np.stack([v, 0.5 * v], axis=1)[:, :, None], {}


def _missing_and_bad_samples():
    v = with_gaps(waves(120, 4, noise=0.05), seed=3, share=0.15)[:, :, None]
    v[30:33, 0] = -5.0  # negative
    v[50, 1] = np.inf
    v[52, 1] = 1e300  # implausible (core/scaling/signal.py)
    ages = np.zeros(v.shape)
    ages[60:64, 2] = 120.0  # stale: older than stale_after_s
    present = ~np.isnan(v)
    present[70:75, 3] = True  # present but NaN (non-finite)
    return (policy(rps(), stale_after_s=60.0), v, dict(history=history_of(120, 4), ages=ages, present=present))


def _untrusted():
    return (policy(rps(fparams(error_bound=0.01))), waves(80, 2, noise=0.3, seed=1)[:, :, None],
            dict(history=history_of(100, 2, noise=0.3)))


def _observed_startups():
    fp = fparams(observed=True, lag_s=30.0)
    return (policy(rps(fp)), waves(100, 5, noise=0.05, seed=2)[:, :, None],
            dict(history=history_of(200, 5), startup=np.array([np.nan, 15.0, 60.0, 150.0, 900.0])))


def _two_forecast_metrics_utilization():
    cpu = MetricParams("cpu", MetricKind.UTILIZATION, 60.0,
                       forecast=fparams(periods_s=(PERIOD,), margin=0.5, quantile=0.5, error_bound=2.0))
    v = np.stack([waves(100, 3, noise=0.05), waves(100, 3, mean=50.0, amp=20.0, noise=0.05, seed=4)], axis=2)
    return policy(rps(), cpu), v, dict(history=np.concatenate([history_of(150, 3), history_of(150, 3, mean=50.0,
                                                                                              amp=20.0)], axis=2),
                                       ready_lag=1)


def _long_horizon():  # error window 10 x 900 s: 601 error slots, numpy's sum over them in halves
    return policy(rps(fparams(horizon_s=900.0, periods_s=()))), waves(140, 2, noise=0.1)[:, :, None], {}


def _with_ramp_and_mean():
    ramped = rps(ramp=RampParams(lead_s=60.0, window_s=30.0))
    return (policy(ramped, smoothing=Smoothing.MEAN, window_s=45.0), waves(100, 3, noise=0.05)[:, :, None],
            dict(history=history_of(150, 3)))


def _saturated_ready_pods():  # two pods of each target starting: the Ready ones at 100 rps, capacity 100
    v = np.concatenate([np.full(30, 300.0), np.full(40, 800.0), np.full(30, 400.0)])
    return (policy(rps(saturation_capacity=100.0)), np.stack([v, 1.5 * v], axis=1)[:, :, None],
            dict(history=history_of(150, 2), ready_lag=2))


def _saturated_by_the_latest_reading():  # dark spells: the window under the cap, the latest at it
    v = np.concatenate([np.full(30, 300.0), np.full(40, 330.0), np.full(30, 200.0)])
    latest = np.where(np.arange(100) % 3 == 0, np.nan, np.where(np.arange(100) % 3 == 1, 1.35, 0.9) * v)
    return (policy(rps(saturation_capacity=100.0)), np.stack([v, 1.5 * v], axis=1)[:, :, None],
            dict(history=history_of(150, 2), latest=np.stack([latest, 1.5 * latest], axis=1)[:, :, None]))


def _irregular_times():
    gaps = np.random.default_rng(5).choice([15.0, 15.0, 5.0, 0.0, 40.0, 400.0], 90)
    return (policy(rps()), with_gaps(waves(90, 3, noise=0.1), seed=6, share=0.1)[:, :, None],
            dict(history=history_of(150, 3), times=T0 + np.cumsum(gaps)))


# (row, what it shows: "wins" the predictive proposal was above the reactive one at least once,
# "trusted" forecasts were trusted (a constant's forecast is the constant), "never" none trusted)
ROWS = [pytest.param(_sine, "wins", id="seasonal-sine-from-history"), pytest.param(_constant, "trusted", id="constant"),
        pytest.param(_step, "wins", id="step"),
        pytest.param(_missing_and_bad_samples, "wins", id="missing-stale-negative-nonfinite-implausible"),
        pytest.param(_untrusted, "never", id="never-trusted"),
        pytest.param(_observed_startups, "wins", id="observed-start-ups"),
        pytest.param(_two_forecast_metrics_utilization, "wins", id="two-forecast-metrics-utilization"),
        pytest.param(_long_horizon, "wins", id="long-horizon-long-pairwise-sum"),
        pytest.param(_with_ramp_and_mean, "wins", id="with-ramp-and-window-mean"),
        pytest.param(_irregular_times, "wins", id="irregular-times"),
        pytest.param(_saturated_ready_pods, "wins", id="saturated-ready-pods-reactive-floor"),
        pytest.param(_saturated_by_the_latest_reading, "wins", id="saturated-by-the-latest-reading-reactive-floor")]


@pytest.mark.parametrize("make, shows", ROWS)
def test_compiled_forecast_equals_numpy(make, shows):
    p, values, options = make()
    assert compiled.supports(p)
    decisions = run_three_ways(p, values, np.full(values.shape[1], 4.0), **options)
    trusted = any(d.forecasts.trusted.any() for d in decisions)
    wins = any((d.forecasts.predictive > d.forecasts.reactive).any() for d in decisions)
    assert (trusted, wins) == {"never": (False, False), "trusted": (True, False), "wins": (True, True)}[shows]


# --------------------------------------------------------------------------------------- properties
@st.composite
def forecast_policies(draw) -> PolicyParams:
    fp = ForecastParams(horizon_s=draw(st.sampled_from([15.0, 30.0, 75.0])), interval_s=INTERVAL,
                        periods_s=draw(st.sampled_from([(), (150.0,), (150.0, 300.0), (300.0, 150.0)])),
                        min_history_s=draw(st.sampled_from([0.0, 300.0])), margin=draw(st.sampled_from([0.0, 1.0])),
                        quantile=draw(st.sampled_from([0.5, 0.8, 1.0])),
                        error_bound=draw(st.sampled_from([0.5, 1.25, 5.0])), observed=draw(st.booleans()),
                        lag_s=30.0)
    kind = draw(st.sampled_from(list(MetricKind)))
    metrics = [MetricParams("a", kind, draw(st.sampled_from([0.5, 50.0, 100.0])), forecast=fp,
                            saturation_capacity=draw(st.sampled_from([0.0, 0.0, 60.0, 150.0])))]
    if draw(st.booleans()):
        metrics.append(MetricParams("b", MetricKind.VALUE, 0.25, forecast=draw(st.one_of(st.none(), st.just(fp)))))
    lo = draw(st.integers(0, 3))
    return policy(*metrics, min_replicas=lo, max_replicas=lo + draw(st.integers(0, 40)),
                  smoothing=draw(st.sampled_from([Smoothing.NONE, Smoothing.EWMA])), half_life_s=30.0,
                  tolerance_up=draw(st.sampled_from([0.0, 0.1])), stale_after_s=60.0)


SAMPLE = st.one_of(st.floats(0, 3000, allow_nan=False), st.sampled_from([np.nan, -1.0, np.inf, 0.0, 100.0]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(p=forecast_policies(), data=st.data(), n=st.integers(1, 3), steps=st.integers(1, 40))
def test_compiled_forecast_equals_numpy_on_random_inputs(p, data, n, steps):
    m = len(p.metrics)
    size = steps * n * m
    level = data.draw(st.floats(10, 2000))
    noise = np.array(data.draw(st.lists(st.floats(0.5, 1.5), min_size=size, max_size=size))).reshape(steps, n, m)
    values = level * noise  # near a level, so that forecasts get trusted; then random samples here and there
    odd = np.array(data.draw(st.lists(st.one_of(st.none(), SAMPLE), min_size=size, max_size=size)), dtype=object)
    mask = np.array([v is not None for v in odd]).reshape(values.shape)
    values[mask] = np.array([v for v in odd if v is not None], dtype=float)
    present = values == values
    present |= np.array(data.draw(st.lists(st.booleans(), min_size=size, max_size=size))).reshape(values.shape)
    ages = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, 90.0]), min_size=size, max_size=size)))
    startup = np.array(data.draw(st.lists(st.sampled_from([np.nan, 0.0, 45.0, 600.0]), min_size=n, max_size=n)))
    history = level * np.array(data.draw(st.lists(st.floats(0.5, 1.5), min_size=n * 40 * m, max_size=n * 40 * m)))
    current0 = np.array(data.draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)), dtype=float)
    run_three_ways(p, values, current0, history=history.reshape(n, 40, m) if data.draw(st.booleans()) else None,
                   startup=startup, ready_lag=data.draw(st.integers(0, 2)), ages=ages.reshape(values.shape),
                   present=present, withheld=data.draw(st.integers(0, 2)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 4), seed=st.integers(0, 1000), share=st.sampled_from([0.0, 0.2]))
def test_batched_equals_row_by_row_on_the_kernel(n, seed, share):
    p = policy(rps(fparams(observed=True, lag_s=30.0)))
    values = with_gaps(waves(60, n, noise=0.1, seed=seed), seed=seed, share=share)[:, :, None]
    history = history_of(100, n, noise=0.1, seed=seed)
    startup = np.random.default_rng(seed).choice([np.nan, 30.0, 120.0], n)

    def go(rows):
        t_hist = T0 - INTERVAL * np.arange(history.shape[1], 0, -1)
        state = warm(p, ScalingState.empty(len(rows), p), history[rows], t_hist)
        current, out = np.full(len(rows), 4.0), []
        for k in range(values.shape[0]):
            d = decide(p, observation(current, values[k, rows], startup=startup[rows]), state, T0 + k * INTERVAL)
            out.append(d)
            state, current = d.state, d.norm.desired.copy()
        return out

    batched = go(list(range(n)))
    for i in range(n):
        for k, (b, a) in enumerate(zip(batched, go([i]))):
            assert b.desired[i] == a.desired[0], f"cycle {k}, row {i}"
            for name in ("point", "upper", "error", "trusted", "predictive"):
                np.testing.assert_array_equal(getattr(b.forecasts, name)[i], getattr(a.forecasts, name)[0])


# --------------------------------------------------------------------------------------- dispatch
def test_the_default_policy_with_a_forecast_runs_on_the_kernel(monkeypatch):
    text = (REPO / "policies" / "setpoint-default.yaml").read_text()
    anchor = "        target: {averagePerReplica: 85, capacityPerReplica: 100}\n"
    p = load_policy_text(text.replace(anchor, anchor + "        forecast: {startupDelay: observed}\n"))[0].params
    assert p.forecast_metrics and p.ramp_metrics and compiled.supports(p)
    calls = []
    original = workspace.decide_into
    monkeypatch.setattr(workspace, "decide_into", lambda *a: calls.append(1) or original(*a))
    state = ScalingState.empty(2, p)
    d = decide(p, Observation.of([3.0, 3.0], [3.0, 3.0], [[500.0], [100.0]]), state, T0)
    assert calls and d.forecasts is not None and d.forecasts.columns == (0,)
    reference = decide_numpy(p, Observation.of([3.0, 3.0], [3.0, 3.0], [[500.0], [100.0]]), state, T0)
    assert_forecasts_equal(reference, d, "first cycle")


def test_decide_on_the_kernel_leaves_the_input_forecast_state_untouched():
    p = policy(rps())
    state = warm(p, ScalingState.empty(2, p), history_of(100, 2), T0 - INTERVAL * np.arange(100, 0, -1))
    before = [dataclasses.replace(f) for f in state.forecast]
    snapshot = [tuple(np.array(a, copy=True) for a in (f.level, f.err, f.pend_due, *f.profiles, *f.visits))
                for f in before]
    for k in range(25):  # folds into the profiles (buckets change every cycle)
        decide(p, Observation.of([4.0, 4.0], [4.0, 4.0], waves(1, 2, start=T0 + k * INTERVAL)[0][:, None]), state,
               T0 + k * INTERVAL)
    for f, snap in zip(state.forecast, snapshot):
        for a, b in zip((f.level, f.err, f.pend_due, *f.profiles, *f.visits), snap):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------- helpers
#: The helpers' tests call the inlined kernels from Python, signatures the suite's warm-up does not
#: compile: on a cold disk cache (CI's fresh checkout) each worker that got a row compiled them (the
#: last CI: 2-3 s of CPU on each of three workers for _pairwise). On one pytest-xdist worker, once.
HELPER_KERNELS = pytest.mark.xdist_group("tests/core/test_forecast_compiled.py-helper-kernels")


@HELPER_KERNELS
@pytest.mark.parametrize("n", [1, 7, 8, 9, 127, 128, 129, 288, 601, 2016])
@pytest.mark.parametrize("nan_share", [0.0, 0.3])
def test_pairwise_sums_are_numpys(n, nan_share):
    rng = np.random.default_rng(n)
    a = rng.lognormal(0, 4, n) * rng.choice([-1.0, 1.0], n)
    a[rng.random(n) < nan_share] = np.nan
    stack, sums = np.empty((3, fk._STACK), np.int64), np.empty(fk._STACK)
    padded = np.concatenate([[1e9, -3.0], a])  # from an offset, as rows of a flat array are read
    total, count = fk._pairwise(padded, 2, n, True, stack, sums)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row of NaN only: numpy's "mean of empty slice"
        np.testing.assert_array_equal(total / count if count else np.nan, np.nanmean(a[None, :], axis=1)[0])
    if nan_share == 0.0:
        assert fk._pairwise(padded, 2, n, False, stack, sums)[0] == np.ascontiguousarray(a[None, :]).sum(axis=1)[0]


@HELPER_KERNELS
@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.5, 7.0, np.inf]) | st.floats(0, 100), min_size=1,
                       max_size=60), quantile=st.floats(0, 1), hint=st.sampled_from([np.nan, 0.0, 2.0, 7.0, 50.0]))
def test_the_error_quantile_is_the_sorted_ones(values, quantile, hint):
    a = np.array(values)
    k = int(np.floor(quantile * (a.size - 1)))
    expect = np.sort(a)[k]
    near = fk._kth_near(a.copy(), a.size, k, hint)
    assert np.isnan(near) or near == expect
    assert fk._kth_smallest(a.copy(), a.size, k) == expect


def test_one_compiled_kernel_whatever_the_number_of_seasonal_periods():
    """0 to 4 periods run on one signature of the forecast kernel (in a fresh interpreter, whose
    dispatcher holds only what it compiled or loaded): each number of periods was a compile of
    its own, ~15 s on a machine's first run of such a policy."""
    import subprocess
    import sys

    code = """
import dataclasses
from controller.core.scaling import compiled
from controller.core.scaling import forecast_compiled as fk
from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.params import ForecastParams, MetricKind, MetricParams, PolicyParams
compiled.set_switch("1")
for periods in ((), (3600.0,), (3600.0, 86400.0), (600.0, 3600.0, 86400.0), (600.0, 3600.0, 86400.0, 604800.0)):
    fp = ForecastParams(horizon_s=60.0, interval_s=15.0, periods_s=periods, min_history_s=0.0)
    p = PolicyParams("p", (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, forecast=fp),), 1, 10)
    state = ScalingState.empty(2, p)
    for k in range(3):
        state = decide(p, Observation.of([4.0, 4.0], [4.0, 4.0], [[300.0], [500.0]]), state, 1e9 + 15.0 * k).state
print(len(fk.forecast_kernel.signatures))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
