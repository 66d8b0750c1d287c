"""Load shapes, composition, noise, and trace replay (synthetic CSVs and the real traces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.errors import ScenarioError
from simulators.load import (DAY_S, Constant, Diurnal, FlashCrowd, Noise, Ramp, Step, TraceReplay, load_trace,
                             offered_matrix, tick_times, traces_dir)

H = 3600.0
MONDAY = 4 * DAY_S  # 1970-01-05 was a Monday
SATURDAY = 2 * DAY_S  # 1970-01-03


@pytest.mark.parametrize("shape, t, expected", [
    pytest.param(Constant(7.0), [0.0, 1e6], [7.0, 7.0], id="constant"),
    pytest.param(Step(100.0, 10.0, 30.0), [99.0, 100.0, 500.0], [10.0, 30.0, 30.0], id="step-at-its-time"),
    pytest.param(Ramp(100.0, 200.0, 10.0, 30.0), [0.0, 150.0, 200.0, 300.0], [10.0, 20.0, 30.0, 30.0], id="ramp"),
    pytest.param(Diurnal(100.0, 0.5, peak_hour=18.0), [MONDAY + 18 * H, MONDAY + 6 * H, MONDAY + 12 * H],
                 [150.0, 50.0, 100.0], id="diurnal-peak-trough-and-mean"),
    pytest.param(Diurnal(100.0, 0.5, peak_hour=18.0, weekend_ratio=0.6), [SATURDAY + 18 * H, MONDAY + 18 * H],
                 [90.0, 150.0], id="diurnal-weekend-modulation"),
    pytest.param(FlashCrowd(1000.0, 500.0, rise_s=100.0, decay_s=200.0), [999.0, 1050.0, 1100.0, 1300.0],
                 [0.0, 250.0, 500.0, 500.0 * np.exp(-1.0)], id="flash-crowd-rise-then-decay"),
    pytest.param(Constant(100.0) + FlashCrowd(0.0, 50.0, rise_s=10.0), [10.0], [150.0], id="sum"),
    pytest.param(Step(0.0, 1.0, 2.0) * 3.0 + 1.0, [-1.0, 1.0], [4.0, 7.0], id="numbers-act-as-constants"),
    pytest.param(Ramp(0.0, 10.0, 0.0, 10.0) * Constant(2.0), [5.0], [10.0], id="product"),
])
def test_load_shapes(shape, t, expected):
    np.testing.assert_allclose(shape(np.array(t)), expected, rtol=1e-12, atol=1e-9)


def test_shapes_with_per_service_parameters_evaluate_to_time_by_service():
    shape = Diurnal(np.array([100.0, 200.0, 300.0]), amplitude_ratio=0.0) + FlashCrowd(50.0, np.array([0.0, 10.0, 20.0]),
                                                                                      rise_s=1.0)
    out = shape(np.array([0.0, 100.0]))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[0], [100.0, 200.0, 300.0])
    assert (out[1] > out[0]).tolist() == [False, True, True]


def test_noise_is_deterministic_mean_one_and_independent_of_the_window_asked():
    noise = Noise(0.2, seed=11, interval_s=60.0, n_series=3)
    t = tick_times(0.0, 2 * DAY_S, 5.0)
    full = noise(t)
    assert full.shape == (t.size, 3) and (full > 0).all()
    assert abs(full.mean() - 1.0) < 0.02
    np.testing.assert_array_equal(noise(t[5000:6000]), full[5000:6000])
    np.testing.assert_array_equal(Noise(0.2, seed=11, interval_s=60.0, n_series=3)(t), full)
    assert not np.array_equal(Noise(0.2, seed=12, interval_s=60.0, n_series=3)(t), full)
    assert Noise(0.1, seed=1)(t).shape == t.shape


@pytest.mark.parametrize("shapes, n, expected", [
    pytest.param(Constant(3.0), 2, [[3.0, 3.0], [3.0, 3.0]], id="one-scalar-shape-repeated"),
    pytest.param([Constant(1.0), Step(5.0, 2.0, 4.0)], None, [[1.0, 2.0], [1.0, 4.0]], id="one-shape-per-service"),
    pytest.param(Constant(np.array([1.0, 2.0])), 2, [[1.0, 2.0], [1.0, 2.0]], id="vector-parameters"),
    pytest.param(Constant(-5.0) + 2.0, 1, [[0.0], [0.0]], id="clipped-at-zero"),
])
def test_offered_matrix_is_time_by_service(shapes, n, expected):
    np.testing.assert_allclose(offered_matrix(shapes, np.array([0.0, 10.0]), n), expected)


def test_tick_times_cover_the_duration_without_its_end():
    t = tick_times(100.0, 86_400.0, 5.0)
    assert t.size == 17_280 and t[0] == 100.0 and t[-1] == 100.0 + 86_395.0


# --------------------------------------------------------------------------- synthetic traces
def write_csv(path: Path, rows: list[tuple[str, float]], header: str = "timestamp,value") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


@pytest.fixture
def minute_trace(tmp_path):
    """Six 1-minute intervals: 60, 120, 180, 240, 600, 60 requests -> 1, 2, 3, 4, 10, 1 rps."""
    rows = [(f"2020-01-01T00:0{i}:00Z", v) for i, v in enumerate([60, 120, 180, 240, 600, 60])]
    return load_trace(write_csv(tmp_path / "minutes.csv", rows))


@pytest.mark.parametrize("kwargs, t, expected", [
    pytest.param(dict(interpolation="step"), [0, 59, 60, 125], [1.0, 1.0, 2.0, 3.0], id="step-holds-each-interval"),
    pytest.param(dict(interpolation="linear"), [30, 60, 90], [1.0, 1.5, 2.0], id="linear-between-midpoints"),
    pytest.param(dict(interpolation="step", multiplier=10.0), [0, 240], [10.0, 100.0], id="multiplier"),
    pytest.param(dict(interpolation="step", peak_rps=50.0), [0, 240], [5.0, 50.0], id="peak-normalized"),
    pytest.param(dict(interpolation="step", start_offset_s=120.0, duration_s=120.0), [0, 60, 500],
                 [3.0, 4.0, 4.0], id="window-then-holds-last"),
    pytest.param(dict(interpolation="step", start_offset_s=120.0, duration_s=120.0, peak_rps=8.0), [0, 60],
                 [6.0, 8.0], id="peak-of-the-window-only"),
    pytest.param(dict(interpolation="step", start_offset_s=120.0, duration_s=120.0, wrap=True), [130, 190],
                 [3.0, 4.0], id="wrap-repeats-the-window"),
    pytest.param(dict(interpolation="step", sim_start_s=1000.0), [1000, 1060], [1.0, 2.0], id="sim-start-shift"),
])
def test_trace_replay_window_scale_and_resampling(minute_trace, kwargs, t, expected):
    np.testing.assert_allclose(TraceReplay(minute_trace, **kwargs)(np.array(t, dtype=float)), expected)


def test_trace_rates_are_totals_over_the_nominal_interval_even_across_a_gap(tmp_path):
    rows = [("2020-01-01T00:00:00Z", 300), ("2020-01-01T00:05:00Z", 600), ("2020-01-01T00:15:00Z", 900)]
    trace = load_trace(write_csv(tmp_path / "gap.csv", rows))
    assert trace.interval_s == 300.0
    np.testing.assert_allclose(trace.rates_rps, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("header, rows, line", [
    pytest.param("time,count", [("2020-01-01T00:00:00Z", 1)] * 2, 1, id="wrong-header"),
    pytest.param("timestamp,value", [("2020-01-01T00:00:00Z", 1), ("2020-01-01T00:01:00", 2)], 3, id="no-Z"),
    pytest.param("timestamp,value", [("2020-01-01T00:00:00Z", 1), ("2020-01-01T00:01:00Z", "x")], 3, id="not-a-number"),
    pytest.param("timestamp,value", [("2020-01-01T00:01:00Z", 1), ("2020-01-01T00:00:00Z", 2)], 3, id="not-increasing"),
])
def test_bad_trace_files_are_rejected_with_file_and_line(tmp_path, header, rows, line):
    path = write_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(ScenarioError) as err:
        load_trace(path)
    assert err.value.errors[0].line == line and err.value.errors[0].file == str(path)


@pytest.mark.parametrize("kwargs, field", [
    pytest.param(dict(peak_rps=10.0, multiplier=2.0), "peak_rps", id="peak-and-multiplier"),
    pytest.param(dict(start_offset_s=1e9), "start_offset_s", id="offset-beyond-the-trace"),
    pytest.param(dict(interpolation="cubic"), "interpolation", id="unknown-interpolation"),
])
def test_invalid_replay_options_are_rejected(minute_trace, kwargs, field):
    with pytest.raises(ScenarioError) as err:
        TraceReplay(minute_trace, **kwargs)
    assert err.value.errors[0].path == field


def test_traces_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SETPOINT_TRACES_DIR", str(tmp_path))
    assert traces_dir() == tmp_path
    monkeypatch.delenv("SETPOINT_TRACES_DIR")
    assert traces_dir().parts[-3:] == ("shared", "data", "traces")


# --------------------------------------------------------------------------- the real traces
needs_traces = pytest.mark.skipif(not (traces_dir() / "nasa_http_1995_07_requests_1min.csv").is_file(),
                                  reason="real traces not present (../shared/data/traces or SETPOINT_TRACES_DIR)")


@needs_traces
@pytest.mark.parametrize("name, interval_s, points", [
    pytest.param("nasa_http_1995_07_requests_1min", 60.0, 39_692, id="nasa-july"),
    pytest.param("wc98_requests_1min_tournament", 60.0, 51_840, id="worldcup-tournament"),
    pytest.param("nab_elb_request_count_8c0756", 300.0, 4_032, id="elb-with-gaps"),
    pytest.param("nab_nyc_taxi_30min", 1800.0, 10_320, id="nyc-taxi"),
])
def test_real_traces_load_by_name(name, interval_s, points):
    trace = load_trace(name)
    assert (trace.interval_s, trace.values.size) == (interval_s, points)
    assert (np.diff(trace.times_s) > 0).all() and (trace.values >= 0).all()


@needs_traces
def test_nasa_launch_day_window_peaks_at_the_sts70_flash_crowd():
    trace = load_trace("nasa_http_1995_07_requests_1min")
    day_start = np.datetime64("1995-07-13T00:00:00").astype("datetime64[s]").astype(np.int64) - trace.times_s[0]
    replay = TraceReplay(trace, start_offset_s=float(day_start), duration_s=DAY_S, peak_rps=1000.0,
                         interpolation="step")
    t = tick_times(0.0, DAY_S, 5.0)
    load = replay(t)
    assert load.shape == (17_280,) and load.max() == pytest.approx(1000.0)
    peak_hour = t[np.argmax(load)] / H
    assert 13.5 < peak_hour < 14.0  # 13:49Z, 405 requests/min
    linear = TraceReplay(trace, start_offset_s=float(day_start), duration_s=DAY_S, peak_rps=1000.0)(t)
    assert abs(linear.mean() - load.mean()) / load.mean() < 0.01  # resampling keeps the volume


@needs_traces
def test_worldcup_replay_multiplier_converts_per_minute_totals_to_rps():
    trace = load_trace("wc98_requests_1min_tournament")
    replay = TraceReplay(trace, duration_s=H, multiplier=0.5, interpolation="step")
    assert replay(np.array([0.0]))[0] == pytest.approx(3726 / 60.0 * 0.5)
