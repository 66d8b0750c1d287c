"""Backtests: replay past metrics through the Reconciler (pure parts, a hand-computed case) and
`setpoint backtest` against a real Prometheus loaded with history by promtool."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from controller.adapters.prometheus import RangeSeries, range_chunks
from controller.cli import app
from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.model import TargetRef
from controller.policy import load_policy_text, parse_duration
from controller.policy.counterpart import hpa_counterpart, spec_differences
from controller.runtime.backtest import (ReplayData, capacity_risk_minutes, grid_values, parse_time, rescaled,
                                         run_backtest, time_grid)
from controller.runtime.reconciler import RuntimePolicy
from tests.runtime.backtest_data import START, STEP_S, openmetrics, synthetic
from tests.support.prometheus_server import prometheus_server

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: shop}}
spec:
  targets: {{namespace: shop, names: [{names}]}}
  interval: 15s
  replicas: {{min: 2, max: 40}}
  scaling:
    metrics:
      - name: cpu
        query: app_cpu_utilization{{namespace="shop"}}
        target: {{utilization: 60%}}
      - name: rps
        query: app_rps{{namespace="shop"}}
        target: {{averagePerReplica: 90}}
    smoothing: {{ewma: {{halfLife: 45s}}}}
    tolerance: {{up: 0.05, down: 0.15}}
    behavior:
      scaleDown: {{stabilizationWindow: 3m, policies: [{{type: Percent, value: 20, period: 1m}}]}}
"""


def policy_text(names: list[str]) -> str:
    return POLICY.format(names=", ".join(names))


# --- pure parts ---------------------------------------------------------------------------------

@settings(deadline=None)  # a shared CI machine: no timing in unit tests
@given(points=st.integers(1, 30_000), max_points=st.integers(1, 12_000), step=st.sampled_from([1.0, 15.0, 60.0]))
def test_range_chunks_cover_the_grid_once_within_the_limit(points, max_points, step):
    chunks = range_chunks(1000.0, 1000.0 + (points - 1) * step, step, max_points)
    assert len(chunks) == -(-points // max_points)
    covered = np.concatenate([np.arange(lo, hi + step / 2, step) for lo, hi in chunks])
    assert covered.size == points and np.array_equal(covered, 1000.0 + step * np.arange(points))
    assert all((hi - lo) / step + 1 <= max_points for lo, hi in chunks)


@pytest.mark.parametrize("text, expected", [
    pytest.param("2026-11-01T00:00:00Z", START, id="iso-z"),
    pytest.param("2026-11-01T01:00:00+01:00", START, id="iso-offset"),
    pytest.param("2026-11-01T00:00:00", START, id="iso-naive-is-utc"),
    pytest.param("1793491200", START, id="epoch"),
    pytest.param("now-6h", START - 6 * 3600, id="relative"),
    pytest.param("now", START, id="now"),
])
def test_parse_time(text, expected):
    assert parse_time(text, START, parse_duration) == expected


def test_parse_time_rejects_with_the_forms():
    with pytest.raises(ValueError, match="now-6h"):
        parse_time("yesterday", START, parse_duration)


def test_grid_values_maps_series_to_targets_and_conflicts_to_missing():
    targets = [TargetRef("shop", "a"), TargetRef("shop", "b"), TargetRef("shop", "c")]
    t = time_grid(0.0, 45.0, 15.0)
    series = [RangeSeries({"namespace": "shop", "deployment": "a"}, np.array([0.0, 30.0]), np.array([1.0, 3.0])),
              RangeSeries({"namespace": "shop", "deployment": "b", "pod": "x"}, t, np.ones(4)),
              RangeSeries({"namespace": "shop", "deployment": "b", "pod": "y"}, t, np.ones(4)),
              RangeSeries({"namespace": "other", "deployment": "c"}, t, np.ones(4))]
    grid = grid_values(series, targets, t, 15.0, ("namespace", "deployment"))
    assert np.array_equal(grid[:, 0], [1.0, np.nan, 3.0, np.nan], equal_nan=True)
    assert np.isnan(grid[:, 1:]).all()  # b: two series (a conflict); c: another namespace


def test_grid_values_lets_successive_series_fill_their_own_times():
    """kube-state-metrics restarted: a new instance label from 30 s on. Both count, no conflict."""
    target = [TargetRef("shop", "a")]
    t = time_grid(0.0, 45.0, 15.0)
    series = [RangeSeries({"namespace": "shop", "deployment": "a", "instance": "1"}, t[:2], np.array([2.0, 2.0])),
              RangeSeries({"namespace": "shop", "deployment": "a", "instance": "2"}, t[2:], np.array([3.0, 3.0]))]
    assert grid_values(series, target, t, 15.0, ("namespace", "deployment"))[:, 0].tolist() == [2.0, 2.0, 3.0, 3.0]


def test_label_selector_targets_come_from_the_series_of_its_namespace():
    from controller.model import TargetSelector
    from controller.runtime.backtest import discover_targets

    selector = TargetSelector("Deployment", "shop", match_labels=(("tier", "web"),))
    series = [[RangeSeries({"namespace": "shop", "deployment": "b"}, np.zeros(1), np.zeros(1)),
               RangeSeries({"namespace": "other", "deployment": "x"}, np.zeros(1), np.zeros(1))],
              [RangeSeries({"namespace": "shop", "deployment": "a"}, np.zeros(1), np.zeros(1))]]
    assert discover_targets(selector, series, ("namespace", "deployment")) == [TargetRef("shop", "a"),
                                                                                TargetRef("shop", "b")]


def test_rescaled_only_where_both_counts_are_known():
    out = rescaled(np.array([60.0, 60.0, 60.0]), np.array([4.0, np.nan, 4.0]), np.array([2.0, 2.0, 0.0]))
    assert out.tolist() == [120.0, 60.0, 60.0]


@pytest.mark.parametrize("replicas, required, minutes", [
    pytest.param([[2], [2], [3], [3]], [[1.5], [2.5], [2.5], [np.nan]], 0.25, id="one-tick-short"),
    pytest.param([[2, 5], [2, 5], [2, 5], [2, 5]], [[3, 6], [3, 6], [1, 1], [1, 1]], 1.0, id="two-targets"),
    pytest.param([[4], [4]], [[4.0], [4.0]], 0.0, id="exactly-enough"),
])
def test_capacity_risk_minutes(replicas, required, minutes):
    t = 15.0 * np.arange(len(replicas))
    assert capacity_risk_minutes(t, np.array(replicas, float), np.array(required, float), 15.0) == minutes


# --- a hand-computed case -------------------------------------------------------------------------

HAND = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: hand}
spec:
  targets: {namespace: shop, name: web}
  interval: 15s
  replicas: {min: 1, max: 10}
  scaling:
    metrics:
      - {name: rps, query: rps, target: {averagePerReplica: 100}}
    tolerance: 0
    behavior:
      scaleUp: {stabilizationWindow: 0s}
      scaleDown: {stabilizationWindow: 0s}
"""


def test_hand_computed_replay_and_scores():
    """rps 250, 250, 450, 450, 150, 150 per 15 s tick, 3 replicas ran throughout: the policy
    wants ceil(rps / 100) = 3, 3, 5, 5, 2, 2 (no windows, tolerance 0, default rate limits
    allow these steps). Replica-hours (3+3+5+5+2+2) * 15 s / 3600 = 0.0833; 2 changes; 1
    reversal (up at 30 s, down at 60 s); capacity risk: the need is 2.5, 2.5, 4.5, 4.5, 1.5, 1.5
    replicas, never above the policy's; the 3 that ran were short for 2 ticks = 0.5 minutes."""
    from simulators.backtest_report import Backtest, scores

    (policy,) = load_policy_text(HAND)
    t = time_grid(0.0, 75.0, 15.0)
    data = ReplayData([TargetRef("shop", "web")], t, 15.0,
                      {"rps": np.array([[250.0], [250.0], [450.0], [450.0], [150.0], [150.0]])},
                      np.full((6, 1), 3.0))
    run = run_backtest(RuntimePolicy.of(policy), data, name="hand")
    assert run.replicas[:, 0].tolist() == [3, 3, 5, 5, 2, 2]
    got = scores(Backtest(data, [run], "hand.yaml", "http://127.0.0.1:9"))
    assert got["hand"]["replica_hours"] == pytest.approx(0.083, abs=1e-3)
    assert (got["hand"]["replica_changes"], got["hand"]["reversals"]) == (2, 1)
    assert got["hand"]["capacity_risk_minutes"] == 0.0
    assert got["actual"]["replica_hours"] == pytest.approx(0.075) and got["actual"]["capacity_risk_minutes"] == 0.5


def test_per_replica_signal_is_rescaled_to_the_counterfactual():
    """Utilization 90 % observed with 2 replicas, target 60 %: the load needs 3 replicas. Once
    the counterfactual runs 3, the replayed utilization is 90 * 2 / 3 = 60 %: it stays at 3
    (without rescaling it would keep climbing: 3 -> 5 -> 8 ...)."""
    text = HAND.replace("{name: rps, query: rps, target: {averagePerReplica: 100}}",
                        "{name: cpu, query: cpu, target: {utilization: 60}}")
    (policy,) = load_policy_text(text)
    t = time_grid(0.0, 60.0, 15.0)
    data = ReplayData([TargetRef("shop", "web")], t, 15.0, {"cpu": np.full((5, 1), 90.0)}, np.full((5, 1), 2.0))
    run = run_backtest(RuntimePolicy.of(policy), data)
    assert run.replicas[:, 0].tolist() == [3, 3, 3, 3, 3]
    assert run.required[:, 0].tolist() == [3.0] * 5


def test_segments_of_uneven_length_tick_on_the_policy_interval():
    """A 30 s policy on 15 s data fed in segments of 5, 2 and 6 samples ticks at 0, 30, 60 ... s as
    when fed at once, with the same replicas."""
    from controller.runtime.backtest import Replayer

    text = HAND.replace("interval: 15s", "interval: 30s")
    (policy,) = load_policy_text(text)
    t = time_grid(0.0, 180.0, 15.0)
    rps = np.array([[100.0 + 60 * (i % 5)] for i in range(t.size)])
    data = ReplayData([TargetRef("shop", "web")], t, 15.0, {"rps": rps}, np.full((t.size, 1), 3.0))
    whole = run_backtest(RuntimePolicy.of(policy), data)
    replayer = Replayer(RuntimePolicy.of(policy))
    for lo, hi in ((0, 5), (5, 7), (7, 13)):
        replayer.feed(ReplayData(data.targets, t[lo:hi], 15.0, {"rps": rps[lo:hi]}, data.actual[lo:hi]))
    parts = replayer.result()
    assert whole.t_s.tolist() == [0, 30, 60, 90, 120, 150, 180] and parts.t_s.tolist() == whole.t_s.tolist()
    assert np.array_equal(parts.replicas, whole.replicas) and len(set(whole.replicas[:, 0])) > 1


def test_hpa_counterpart_differs_where_hpa_has_no_field():
    (policy,) = load_policy_text(policy_text(["web"]))
    hpa = hpa_counterpart(policy)
    assert hpa.params.hpa_semantics and hpa.params.legacy and hpa.model.spec.scaling.smoothing is None
    diffs = spec_differences(policy, hpa)
    assert any(d.startswith("preset:") for d in diffs) and any(d.startswith("scaling.smoothing") for d in diffs)
    assert any(d.startswith("scaling.tolerance.up: 0.05 vs 0.1") for d in diffs)
    # as a policy file writes it, not Python's repr ({'ewma': {'halfLifeSeconds': 45.0}})
    [smoothing] = [d for d in diffs if d.startswith("scaling.smoothing")]
    assert "{" in smoothing and "'" not in smoothing and ".0" not in smoothing, smoothing


def test_the_hpa_counterpart_of_an_hpa_policy_is_that_hpa():
    """`setpoint import` of an HPA with a behavior gives a preset: hpa policy with it; its hpa
    counterpart dropped the behavior (HPA's defaults, not the HPA that ran: found by a walkthrough)."""
    text = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  preset: hpa
  targets: {namespace: shop, names: [web]}
  replicas: {min: 2, max: 40}
  scaling:
    metrics:
      - name: cpu
        query: app_cpu_utilization{namespace="shop"}
        target: {utilization: 60%}
    behavior:
      scaleDown: {stabilizationWindow: 10m, policies: [{type: Pods, value: 1, period: 1m}]}
"""
    (policy,) = load_policy_text(text)
    assert policy.params.hpa_semantics
    hpa = hpa_counterpart(policy)
    assert hpa.model.spec.scaling == policy.model.spec.scaling and hpa.params.scale_down == policy.params.scale_down
    assert spec_differences(policy, hpa) == []


# --- against a real Prometheus ----------------------------------------------------------------------

TARGETS = ["api", "web"]


def direct_core(params, data: dict, interval_every: int = 1) -> np.ndarray:
    """The decision core fed the same series directly (no Prometheus, no Reconciler): (T, N)."""
    n = len(data["targets"])
    state = ScalingState.empty(n, params)
    current = np.clip(data["replicas"][0], params.min_replicas, params.max_replicas).astype(float)
    out = []
    for k in range(0, data["t"].size, interval_every):
        actual = data["replicas"][k]
        cpu = data["cpu"][k] * actual / current  # load shared evenly
        values = np.column_stack([cpu, data["rps"][k]])
        d = decide(params, Observation.of(current, current, values), state, float(data["t"][k]))
        state, current = d.state, d.desired.astype(float)
        out.append(current.copy())
    return np.array(out)


def read_timeline(path, targets: list[str], runs: list[str], ticks: np.ndarray) -> dict[str, np.ndarray]:
    """timeline.csv (change points) back to (T, N) arrays per column."""
    from datetime import datetime

    out = {r: np.full((ticks.size, len(targets)), np.nan) for r in runs}
    with open(path) as f:
        for row in csv.DictReader(f):
            k = int((datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp() - ticks[0]) // STEP_S)
            j = targets.index(row["target"].split("/")[1])
            for r in runs:
                out[r][k:, j] = float(row[r]) if row[r] else np.nan
    return out


@pytest.fixture(scope="module")
def history_prometheus(tmp_path_factory):
    data = synthetic(TARGETS, hours=6)
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom"), history=openmetrics(data),
                           retention="3650d") as server:
        yield server, data


def test_backtest_against_prometheus_decides_as_the_core_fed_directly(history_prometheus, tmp_path):
    server, data = history_prometheus
    (policy_file := tmp_path / "shop.yaml").write_text(policy_text(TARGETS))
    end = data["t"][-1]
    result = CliRunner().invoke(app, ["backtest", "--policy", str(policy_file), "--prometheus", server.url,
                                      "--from", "2026-11-01T00:00:00Z", "--to", f"{end:.0f}", "--step", "15s",
                                      "--compare", "hpa", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (policy,) = load_policy_text(policy_text(TARGETS))
    hpa = hpa_counterpart(policy)
    got = read_timeline(tmp_path / "out" / "timeline.csv", TARGETS, ["actual", "shop", "hpa"], data["t"])
    assert np.array_equal(got["actual"], data["replicas"])
    expected = direct_core(policy.params, data)
    assert np.array_equal(got["shop"], expected)
    assert np.array_equal(got["hpa"], direct_core(hpa.params, data))
    assert len(np.unique(expected)) > 3, "the series exercise scaling"
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    assert set(report["controllers"]) == {"shop", "hpa", "actual"}
    assert report["scenario"]["services"] == ["shop/api", "shop/web"]
    assert "load shared evenly" in report["backtest"]["assumption"]
    assert any(d.startswith("preset:") for d in report["backtest"]["differences"])
    hours = float((expected.sum() * STEP_S) / 3600)
    assert report["controllers"]["shop"]["replica_hours"] == pytest.approx(hours, abs=1e-3)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "load shared evenly" in html and html.count("<img") == 2
    assert "capacity-risk" in result.stdout
    # not a terminal (as in CI): a plain line per segment, where a bar would draw nothing
    assert "backtest: segment 1/1 queried and replayed (" in result.stderr


def test_streamed_segments_replay_as_one_window(history_prometheus):
    """Fetched in 7 segments (overlapping the replay) or as one window: the same timeline."""
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
    from controller.runtime.backtest import fetch_replay_data, stream_backtest

    server, data = history_prometheus
    (policy,) = load_policy_text(policy_text(TARGETS))
    runtime = RuntimePolicy.of(policy)
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        whole, [streamed] = stream_backtest(source, [runtime], ["shop"], [""], data["t"][0], data["t"][-1], STEP_S,
                                            segment_points=211)
        one = run_backtest(runtime, fetch_replay_data(source, [runtime], data["t"][0], data["t"][-1], STEP_S))
    assert np.array_equal(whole.actual, data["replicas"])
    assert np.array_equal(streamed.replicas, one.replicas) and np.array_equal(streamed.t_s, one.t_s)
    assert np.array_equal(streamed.required, one.required, equal_nan=True)


def test_backtest_chunks_range_queries(history_prometheus):
    """6 h at 15 s is 1,440 points per series: with 500 points per chunk, 3 requests per query."""
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource

    server, data = history_prometheus
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        before = server.http_requests("/api/v1/query_range")
        series = source.query_range('app_rps{namespace="shop"}', data["t"][0], data["t"][-1], 15.0, max_points=500)
        assert server.http_requests("/api/v1/query_range") - before == 3
    by_name = {s.labels["deployment"]: s for s in series}
    assert np.array_equal(by_name["web"].times, data["t"]) and np.array_equal(by_name["web"].values, data["rps"][:, 1])


def test_backtest_compare_file_lists_the_differences(history_prometheus, tmp_path):
    server, data = history_prometheus
    (policy_file := tmp_path / "shop.yaml").write_text(policy_text(TARGETS))
    other = policy_text(TARGETS).replace("name: shop", "name: calm").replace("halfLife: 45s", "halfLife: 2m")
    (other_file := tmp_path / "calm.yaml").write_text(other)
    result = CliRunner().invoke(app, ["backtest", "-p", str(policy_file), "--prometheus", server.url,
                                      "--from", f"{data['t'][0]:.0f}", "--to", f"{data['t'][720]:.0f}",
                                      "--compare", str(other_file)])
    assert result.exit_code == 0, result.output
    assert "smoothing.ewma.halfLife: 45s vs 2m" in result.stdout
    assert "calm" in result.stdout and "actual" in result.stdout


def test_range_query_errors_are_prometheus_errors(history_prometheus):
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
    from controller.errors import PrometheusBadQuery

    server, data = history_prometheus
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        with pytest.raises(PrometheusBadQuery, match="rejected the query"):
            source.query_range("app_rps{", data["t"][0], data["t"][10], 15.0)


def test_backtest_unreachable_prometheus_is_one_line(tmp_path, capsys):
    from controller.cli import main
    from tests.support.prometheus_server import free_port

    (policy_file := tmp_path / "shop.yaml").write_text(policy_text(TARGETS))
    with pytest.raises(SystemExit) as info:
        main(["backtest", "-p", str(policy_file), "--prometheus", f"http://127.0.0.1:{free_port()}",
              "--from", "now-1h", "--prometheus-timeout", "1"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.startswith("setpoint: ") and "cannot connect" in err and err.count("\n") == 1


@pytest.mark.parametrize("times, message", [
    pytest.param(["--from", "now", "--to", "now-1h"], "--to must be after --from", id="end-before-start"),
    # these three said "--to must be after --from (got nan .. now)"
    pytest.param(["--from", "nan"], "--from: expected epoch seconds between 0 and 253402300799 (year 9999), got 'nan'",
                 id="nan"),
    pytest.param(["--from", "1e400"], "--from: expected epoch seconds between 0", id="overflows-to-inf"),
    pytest.param(["--from", "-5"], "--from: expected epoch seconds between 0", id="negative"),
    # 1e18 .. 2e18 planned ~1e14 range queries: 7.8 GB before a MemoryError; now out of range, and so is a window this long
    pytest.param(["--from", "1e11", "--to", "2e11"], "--from .. --to: a window of at most 400 days, got 1,157,407 days",
                 id="window-of-3000-years"),
    pytest.param(["--from", "now-401d"], "a window of at most 400 days, got 401 days", id="window-over-400-days"),
    pytest.param(["--from", "now-1h", "--to", "banana"], "--to: expected a time such as", id="end-not-a-time"),
    pytest.param(["--from", "now-1h", "--step", "-5s"], "--step: expected a duration", id="negative-step"),
    pytest.param(["--from", "now-1h", "--step", "0s"], "--step: expected whole seconds of at least 1s", id="zero-step"),
])
def test_backtest_bad_times_are_one_line_errors(tmp_path, times, message):
    (policy_file := tmp_path / "shop.yaml").write_text(policy_text(TARGETS))
    result = CliRunner().invoke(app, ["backtest", "--policy", str(policy_file), "--prometheus", "http://127.0.0.1:9",
                                      *times])
    assert result.exit_code == 1 and message in result.output, result.output
