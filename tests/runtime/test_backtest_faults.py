"""Backtests on history that is not usable as it stands: no series, several series per target,
NaN, negative or implausible values, samples stamped outside the window, null values. Each is named in a note
per metric and target; a policy that saw no usable sample at all is an error, not a score.

The real Prometheus (history loaded by promtool) gives the empty answers, the conflicting series,
NaN, +Inf, negative and implausible (1e300) values; the stub of test_prometheus gives only what it cannot: absurd
timestamps and null values.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from controller.adapters.prometheus import RangeSeries, map_vector
from controller.cli import app
from controller.cli.root import describe_error
from controller.model import TargetRef
from controller.runtime.backtest import ReplayCluster, ReplayMetrics, grid_series, replay_segment, time_grid
from tests.adapters.test_prometheus import Reply, stub
from tests.runtime.backtest_data import START
from tests.support.prometheus_server import prometheus_server

LABELS = ("namespace", "deployment")
POINTS = 240  # an hour of 15 s samples
END = START + 15 * (POINTS - 1)
WINDOW = ["--from", f"{START:.0f}", "--to", f"{END:.0f}"]


def labelled(deployment: str, **extra: str) -> dict:
    return {"namespace": "shop", "deployment": deployment, **extra}


# --- the grid and the replay's samples ------------------------------------------------------------

def test_samples_off_the_window_are_dropped_and_counted_without_a_cast_warning():
    """1e300 made ``invalid value encountered in cast`` (a warning on the terminal) and rows from
    garbage; now such samples are dropped and counted."""
    t = time_grid(0.0, 45.0, 15.0)
    times = np.array([0.0, 1e300, np.inf, np.nan, -1e300, 60.0, 30.0])
    series = [RangeSeries(labelled("a"), times, np.arange(7.0))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = grid_series(series, [TargetRef("shop", "a")], t, 15.0, LABELS)
    np.testing.assert_array_equal(grid.values[:, 0], [0.0, np.nan, 6.0, np.nan])
    assert grid.outside.tolist() == [5] and grid.count[:, 0].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("series", [
    pytest.param([], id="no-series"),
    pytest.param([({}, "12")], id="one-series"),
    pytest.param([({}, "NaN")], id="nan-is-a-sample-the-core-masks"),
    pytest.param([({}, "+Inf")], id="inf-is-a-sample-the-core-masks"),
    pytest.param([({"pod": "a"}, "1"), ({"pod": "b"}, "2")], id="two-series-are-a-conflict"),
])
def test_the_replay_answers_as_the_live_source(series):
    """One target at one instant: the Samples the replay gives the Reconciler are the live
    source's (map_vector) for the same series."""
    target, at = [TargetRef("shop", "web")], float(START)
    live = map_vector([{"metric": labelled("web", **m), "value": [at, v]} for m, v in series], target, at)
    fetched = {"q": [RangeSeries(labelled("web", **m), np.array([at]), np.array([float(v)])) for m, v in series],
               "replicas": []}
    data = replay_segment(fetched, (["q"], "replicas", LABELS), LABELS, target, time_grid(at, at, 15.0), 15.0, {})
    replay = ReplayMetrics(data, ReplayCluster(target, np.ones(1)), set()).query("q", target, at)
    for name in ("values", "present", "conflict"):
        np.testing.assert_array_equal(getattr(replay, name), getattr(live, name), err_msg=name)


# --- `setpoint backtest` against a real Prometheus ------------------------------------------------

FAMILIES = {  # metric: {deployment or (deployment, pod): value}
    "ok_rps": {"web": "200", "api": "100"},
    "pod_rps": {("web", "web-a"): "100", ("web", "web-b"): "100", "api": "100"},
    "nan_rps": {"web": "NaN", "api": "NaN"},
    "inf_rps": {"web": "+Inf", "api": "100"},
    "neg_rps": {"web": "-5", "api": "-5"},
    "wild_rps": {"web": "1e300", "api": "100"},  # a broken exporter: implausible (core/scaling/signal.py)
    "kube_deployment_spec_replicas": {"web": "3", "api": "3"},
}


def history() -> str:
    lines = []
    for family, values in FAMILIES.items():
        lines.append(f"# TYPE {family} gauge")
        for key, value in values.items():
            deployment, pod = key if isinstance(key, tuple) else (key, None)
            labels = f'namespace="shop",deployment="{deployment}"' + (f',pod="{pod}"' if pod else "")
            lines += [f"{family}{{{labels}}} {value} {START + 15 * k:.0f}" for k in range(POINTS)]
    return "\n".join(lines + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom"), history=history(), retention="3650d") as s:
        yield s


def policy(*metrics: tuple[str, str], names: str = "web, api") -> str:
    listed = "\n".join(f"      - {{name: {n}, query: '{q}{{namespace=\"shop\"}}', target: {{averagePerReplica: 100}}}}"
                       for n, q in metrics)
    return (f"apiVersion: setpoint/v1\nkind: Policy\nmetadata: {{name: shop}}\nspec:\n"
            f"  targets: {{namespace: shop, names: [{names}]}}\n  interval: 15s\n  replicas: {{min: 1, max: 20}}\n"
            f"  scaling:\n    metrics:\n{listed}\n")


def backtest(url: str, text: str, tmp_path) -> tuple[int, str]:
    """(exit code, output) of ``setpoint backtest`` over the window; an error that reaches the top
    is worded as ``main`` words it."""
    (path := tmp_path / "shop.yaml").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning would have reached the terminal
        result = CliRunner().invoke(app, ["backtest", "-p", str(path), "--prometheus", url, *WINDOW,
                                          "--prometheus-timeout", "10"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code, line = describe_error(result.exception)
        return code, f"{result.output}setpoint: {line}\n"
    return result.exit_code, result.output


ALL = f"({POINTS} of {POINTS} times)"


@pytest.mark.parametrize("metrics, names, code, lines", [
    pytest.param([("rps", "ok_rps")], "web, api", 0, [], id="usable-history-has-no-notes"),
    pytest.param([("rps", "absent_rps")], "web, api", 1, [
        "policy shop: no usable sample of its metrics from",
        f"metric rps: no sample for 2 targets: shop/api {ALL}, shop/web {ALL}"], id="empty-answer"),
    pytest.param([("rps", "pod_rps")], "web, api", 0, [
        f"metric rps: 2 conflicting series differing in pod for 1 target: shop/web {ALL}: a conflict is never "
        "averaged; aggregate them, e.g. sum by (namespace, deployment) (...)"], id="two-series-for-one-target"),
    pytest.param([("rps", "pod_rps")], "web", 1, [
        "policy shop: no usable sample", f"metric rps: 2 conflicting series differing in pod for 1 target: "
        f"shop/web {ALL}"], id="two-series-for-every-target"),
    pytest.param([("rps", "nan_rps")], "web, api", 1, [
        f"metric rps: NaN or infinite values (not usable) for 2 targets: shop/api {ALL}, shop/web {ALL}"],
        id="nan-everywhere"),
    pytest.param([("rps", "inf_rps")], "web, api", 0, [
        f"metric rps: NaN or infinite values (not usable) for 1 target: shop/web {ALL}"], id="inf-for-one-target"),
    pytest.param([("rps", "neg_rps")], "web, api", 1, ["metric rps: negative values (not usable) for 2 targets"],
                 id="negative-everywhere"),
    pytest.param([("rps", "wild_rps")], "web, api", 0, [
        f"metric rps: implausible values above 2e+06 (not usable) for 1 target: shop/web {ALL}"],
        id="implausible-for-one-target"),
    pytest.param([("rps", "ok_rps"), ("cpu", "absent_rps")], "web, api", 0, [
        f"metric cpu: no sample for 2 targets: shop/api {ALL}, shop/web {ALL}"], id="one-usable-metric-is-enough"),
])
def test_unusable_history_is_named_per_metric_and_target(prom, tmp_path, metrics, names, code, lines):
    exit_code, output = backtest(prom.url, policy(*metrics, names=names), tmp_path)
    assert exit_code == code, output
    for line in lines:
        assert line in output, output
    assert ("replica-" in output) == (code == 0), "a score table only for a policy that saw data"
    assert "kube-state-metrics" not in output  # the replicas that ran are known for every target here
    if not lines:
        assert "metric rps" not in output


def test_a_target_without_data_is_named_with_what_it_lacked(prom, tmp_path):
    """The note said "no kube-state-metrics series" whatever was missing; it names what is."""
    exit_code, output = backtest(prom.url, policy(("rps", "ok_rps"), names="web, api, cart"), tmp_path)
    assert exit_code == 0, output
    assert f"metric rps: no sample for 1 target: shop/cart {ALL}" in output
    assert f"the replicas that ran (kube-state-metrics): no sample for 1 target: shop/cart {ALL}" in output
    assert "the replicas that ran are unknown for 1 target (shop/cart): their signals are replayed unscaled" \
        in output


# --- what a real Prometheus cannot be made to answer ----------------------------------------------

def matrix_for(shape) -> Reply:
    """A range-query stub: the replicas query answers 3 at every step; the metric query's samples
    are ``shape(t)`` [timestamp, value] pairs."""
    def body(params: dict) -> dict:
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"].rstrip("s"))
        times = np.arange(start, end + step / 2, step)
        replicas = "kube_deployment_spec_replicas" in params["query"]
        values = [[t, "3"] for t in times] if replicas else [shape(t) for t in times]
        return {"status": "success", "data": {"resultType": "matrix",
                                              "result": [{"metric": labelled("web"), "values": values}]}}
    return Reply(body=lambda params: json.dumps(body(params)))


@pytest.mark.parametrize("shape, lines", [
    pytest.param(lambda t: [1e300, "100"], [
        f"metric rps: samples stamped outside the window (dropped) for 1 target: shop/web ({POINTS} samples)",
        f"metric rps: no sample for 1 target: shop/web {ALL}"], id="timestamps-of-1e300"),
    pytest.param(lambda t: [t, None], ["expected a sample value such as \"12\", \"NaN\" or \"+Inf\", got None",
                                       "query 'ok_rps{namespace=\"shop\"}' at http://127.0.0.1:"], id="null-values"),
])
def test_answers_only_a_broken_server_gives_are_rejected_cleanly(tmp_path, shape, lines):
    with stub(matrix_for(shape)) as server:
        exit_code, output = backtest(server.url, policy(("rps", "ok_rps"), names="web"), tmp_path)
    assert exit_code == 1, output
    for line in lines:
        assert line in output, output
    assert "warning" not in output and "Traceback" not in output


def compared(url: str, text: str, other: str, tmp_path) -> tuple[int, str]:
    """(exit code, output) of ``setpoint backtest`` of ``text`` with ``--compare`` ``other``."""
    (path := tmp_path / "shop.yaml").write_text(text)
    (other_path := tmp_path / "other.yaml").write_text(other)
    result = CliRunner().invoke(app, ["backtest", "-p", str(path), "--compare", str(other_path),
                                      "--prometheus", url, *WINDOW, "--prometheus-timeout", "10"])
    return result.exit_code, result.output


def bounded(above: int, name: str) -> str:
    """The ok_rps policy named ``name``, its metric implausible above ``above`` (its target 2 per
    replica: a bound must be above target x replicas.max, 40)."""
    return policy(("rps", "ok_rps")).replace("metadata: {name: shop}", f"metadata: {{name: {name}}}").replace(
        "target: {averagePerReplica: 100}", f"target: {{averagePerReplica: 2}}, implausibleAbove: {above}")


@pytest.mark.parametrize("other, code, lines, absent", [
    pytest.param(bounded(150, "tight"), 0, [
        f"metric rps: implausible values above 150 for policy tight (not usable) for 1 target: shop/web {ALL}"],
        ["implausible values above 2e+06"], id="the-second-policy-bound-is-its-own"),
    pytest.param(bounded(50, "tighter"), 1, [
        "policy tighter: no usable sample of its metrics",
        "metric rps: implausible values above 50 for policy tighter (not usable) for 2 targets"],
        ["policy shop: no usable"], id="blind-under-its-own-bound-only"),
    pytest.param(bounded(2_000_000, "same"), 0, [], ["implausible values", "for policy"], id="one-bound-no-policy-named"),
])
def test_policies_sharing_a_query_are_counted_against_their_own_bounds(prom, tmp_path, other, code, lines, absent):
    """Two policies read ok_rps (web 200, api 100); the first bounds it at 2e6 (its default), the
    second at its own ``implausibleAbove``: the notes and the blind check use each policy's bound."""
    exit_code, output = compared(prom.url, policy(("rps", "ok_rps")), other, tmp_path)
    assert exit_code == code, output
    for line in lines:
        assert line in output, output
    for text in absent:
        assert text not in output, output
