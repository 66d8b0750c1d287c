"""spec.scaling.metrics[].forecast: compiled values, the auto horizon, and every error."""

from __future__ import annotations

import pytest

from controller.policy.compile import auto_horizon_s, query_window_s
from tests.policy.helpers import BASE, FILE, edit, error_lines, load_one

TARGET = "target: {averagePerReplica: 80}"


def with_forecast(fields: str, target: str = TARGET) -> str:
    return edit(BASE, TARGET, f"{target}\n        forecast: {fields}")


def forecast_of(fields: str):
    return load_one(with_forecast(fields)).params.metrics[0].forecast


def test_defaults_and_auto_horizon():
    f = forecast_of("{}")
    # startupDelay 30s + interval 15s + half the query's [1m] window
    assert f.horizon_s == 75.0
    assert f.periods_s == (86400.0, 604800.0) and f.min_history_s == 86400.0
    assert (f.margin, f.quantile, f.error_bound) == (1.0, 0.8, 1.25)
    assert f.interval_s == 15.0


def test_no_forecast_by_default():
    assert load_one(BASE).params.metrics[0].forecast is None
    assert load_one(BASE).params.forecast_metrics == ()


def test_every_field():
    f = forecast_of("{horizon: 2m, seasonality: [12h], minHistory: 2d, margin: 0.5, interval: 90%, errorBound: 2}")
    assert (f.horizon_s, f.periods_s, f.min_history_s, f.margin, f.quantile, f.error_bound) == (
        120.0, (43200.0,), 172800.0, 0.5, 0.9, 2.0)
    assert forecast_of("{seasonality: []}").periods_s == ()
    assert forecast_of("{startupDelay: 90s}").horizon_s == 135.0


@pytest.mark.parametrize("fields,horizon_s,observed,max_horizon_s", [
    pytest.param("{startupDelay: 90s}", 135.0, False, 135.0, id="fixed-delay-fixed-horizon"),
    pytest.param("{startupDelay: observed}", 75.0, True, 180.0, id="observed-30s-until-a-start-up-is-seen"),
    pytest.param("{startupDelay: {observed: true, initial: 5m}}", 345.0, True, 345.0,
                 id="observed-longer-initial-raises-the-cap"),
])
def test_observed_start_up(fields, horizon_s, observed, max_horizon_s):
    f = forecast_of(fields)
    assert (f.horizon_s, f.observed, f.max_horizon_s) == (horizon_s, observed, max_horizon_s)
    assert f.lag_s == 45.0  # interval 15s + half the [1m] window


@pytest.mark.parametrize("query,window_s", [
    pytest.param("sum(rate(x[1m]))", 60.0, id="one-range"),
    pytest.param("rate(a[5m:30s]) / rate(b[2m])", 300.0, id="subquery-and-range-longest-wins"),
    pytest.param("queue_length", 60.0, id="no-range-assumes-1m"),
    pytest.param('sum(rate(x{path="/a[1h]"}[2m]))', 120.0, id="a-bracket-in-a-label-value-is-no-range"),
    pytest.param("sum(rate(x[2m])) # once [1h]", 120.0, id="a-bracket-in-a-comment-is-no-range"),
])
def test_query_window(query, window_s):
    assert query_window_s(query) == window_s


def test_auto_horizon_adds_start_up_interval_and_half_the_window():
    assert auto_horizon_s(30.0, 15.0, 60.0) == 75.0


LINE = 13  # the forecast line in BASE after with_forecast
BROKEN = [
    pytest.param("{margin: -1}", f"{LINE}: spec.scaling.metrics[0].forecast.margin: must be >= 0, got -1",
                 id="negative-margin"),
    pytest.param("{interval: 120%}", f"{LINE}: spec.scaling.metrics[0].forecast.interval: must be <= 99%, got '120%'",
                 id="interval-above-99"),
    pytest.param("{errorBound: 0}", f"{LINE}: spec.scaling.metrics[0].forecast.errorBound: must be > 0, got 0",
                 id="error-bound-zero"),
    pytest.param("{horizon: soon}", f"{LINE}: spec.scaling.metrics[0].forecast.horizon: expected a duration such as "
                                    "30s, 5m, 1h30m or 500ms, got 'soon'", id="horizon-not-a-duration"),
    pytest.param("{horizon: 2h}", f"{LINE}: spec.scaling.metrics[0].forecast.horizon: must be at most 1h, got 2h",
                 id="horizon-too-long"),
    pytest.param("{seasonality: [1m]}", f"{LINE}: spec.scaling.metrics[0].forecast.seasonality[0]: must be at least "
                                        "10m, got 1m", id="period-too-short"),
    pytest.param("{seasonality: [1d, 1d]}", f"{LINE}: spec.scaling.metrics[0].forecast.seasonality: periods must differ",
                 id="duplicate-periods"),
    pytest.param("{horizon: 2m, startupDelay: observed}", f"{LINE}: spec.scaling.metrics[0].forecast: startupDelay: "
                 "observed is used only with horizon: auto (an explicit horizon does not depend on the start-up "
                 "delay)", id="observed-start-up-with-an-explicit-horizon"),
    pytest.param("{startupDelay: soon}", f"{LINE}: spec.scaling.metrics[0].forecast.startupDelay: expected a duration "
                 "(e.g. 30s), observed (measured from the pods, 30s until then) or {observed: true, initial: 45s}, "
                 "got 'soon'", id="start-up-delay-misspelt"),
    pytest.param("{horizon: auto, colour: blue}", f"{LINE}: spec.scaling.metrics[0].forecast.colour: unknown field "
                 "'colour'; expected one of: horizon, startupDelay, seasonality, minHistory, margin, interval, "
                 "errorBound", id="unknown-field"),
]


@pytest.mark.parametrize("fields,expected", BROKEN)
def test_broken_forecast(fields, expected):
    assert error_lines(with_forecast(fields)) == [f"{FILE}:{expected}"]


def test_forecast_needs_a_total():
    lines = error_lines(with_forecast("{}", target="target: {utilization: 70}"))
    assert lines == [f"{FILE}:{LINE}: spec.scaling.metrics[0].forecast: needs target: averagePerReplica (a forecast "
                     "is of a total such as a request rate; a per-pod value or utilization changes with the replica "
                     "count)"]


def test_forecast_is_not_allowed_with_the_hpa_preset():
    from tests.policy.helpers import hpa_preset_with

    text = hpa_preset_with(metric_line="forecast: {}")
    assert error_lines(text) == [f"{FILE}:13: spec.scaling.metrics[0].forecast: not allowed with preset: hpa "
                                 "(HPA does not forecast)"]
