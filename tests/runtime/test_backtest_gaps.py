"""Backtests over history with holes: the replicas that ran missing for a while (kube-state-metrics
not scraped), and workloads younger than the window (created mid-window, or a Prometheus holding
less history than ``--from``).

One real Prometheus holds the history (promtool backfill, fixed times from START). Backfilled
series have no staleness markers, so Prometheus itself reads a sample for 5 minutes after it
(its lookback): a raw gap of G minutes answers as a gap of G - 5 minutes.
"""

from __future__ import annotations

import csv
import html
import json
import re
import warnings
from datetime import datetime, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.cli.root import describe_error
from tests.runtime.backtest_data import START
from tests.support.prometheus_server import prometheus_server

HOUR = 3600.0
POINTS = 240  # an hour of 15 s samples
END = START + 15 * (POINTS - 1)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rows(first: int, last: int, skip: range = range(0)) -> list[int]:
    """Sample indexes (15 s apart from START) ``first`` .. ``last - 1`` without ``skip``."""
    return [k for k in range(first, last) if k not in skip]


#: namespace gaps: app_rps 200 everywhere but holed; the replicas that ran (3) with holes.
GAPS = {  # deployment: (app_rps sample indexes, kube_deployment_spec_replicas sample indexes)
    "full": (rows(0, POINTS), rows(0, POINTS)),
    "lead": (rows(0, POINTS), rows(40, POINTS)),  # kube-state-metrics from 10 min in
    "short": (rows(0, POINTS), rows(0, POINTS, range(80, 108))),  # 7 min without: 2 min answer nothing
    "long": (rows(0, POINTS), rows(0, POINTS, range(80, 160))),  # 20 min without: 15 min answer nothing
    "bare": (rows(0, POINTS), []),  # no kube-state-metrics at all
    "holed": (rows(0, POINTS, range(80, 160)), rows(0, POINTS)),  # the metric missing 20 min
}
#: namespace young: web from START for 13 h; late created 12.5 h in (after the first 12 h segment).
YOUNG = {"web": (0, 13 * 240, 2), "late": (12 * 240 + 120, 13 * 240, 5)}  # (first, last sample index, replicas)
#: namespace tardy, an hour from START: web throughout; api without app_rps for 20 min (15 min answer nothing).
TARDY = {"web": rows(0, POINTS), "api": rows(0, POINTS, range(80, 160))}  # app_rps; the replicas are all there


def history() -> str:
    lines = []
    for family in ("app_rps", "kube_deployment_spec_replicas"):
        lines.append(f"# TYPE {family} gauge")
        for name, (rps, replicas) in GAPS.items():
            labels = f'namespace="gaps",deployment="{name}"'
            value, ks = ("200", rps) if family == "app_rps" else ("3", replicas)
            lines += [f"{family}{{{labels}}} {value} {START + 15 * k:.0f}" for k in ks]
        for name, (first, last, replicas) in YOUNG.items():
            labels = f'namespace="young",deployment="{name}"'
            value = "150" if family == "app_rps" else str(replicas)
            lines += [f"{family}{{{labels}}} {value} {START + 15 * k:.0f}" for k in range(first, last)]
        for name, ks in TARDY.items():
            labels = f'namespace="tardy",deployment="{name}"'
            value, ks = ("200", ks) if family == "app_rps" else ("3", rows(0, POINTS))
            lines += [f"{family}{{{labels}}} {value} {START + 15 * k:.0f}" for k in ks]
    return "\n".join(lines + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom"), history=history(), retention="3650d") as s:
        yield s


def policy(namespace: str, targets: str) -> str:
    """app_rps at 100 per replica, every 15 s; ``targets`` the YAML after ``namespace``."""
    return (f"apiVersion: setpoint/v1\nkind: Policy\nmetadata: {{name: shop}}\nspec:\n"
            f"  targets: {{namespace: {namespace}, {targets}}}\n  interval: 15s\n  replicas: {{min: 1, max: 20}}\n"
            f"  scaling:\n    metrics:\n      - {{name: rps, query: 'app_rps{{namespace=\"{namespace}\"}}', "
            f"target: {{averagePerReplica: 100}}}}\n")


def backtest(url: str, text: str | dict[str, str], tmp_path, start: float, end: float,
             *extra: str) -> tuple[int, str, dict | None, str]:
    """(exit code, output, result.json or None, report.html or "") of ``setpoint backtest`` of a
    policy's ``text``, or of a folder of policies {file name: text}; ``extra``: more options."""
    if isinstance(text, dict):
        (path := tmp_path / "policies").mkdir()
        for name, one in text.items():
            (path / name).write_text(one)
    else:
        (path := tmp_path / "shop.yaml").write_text(text)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy warning would have reached the terminal
        result = CliRunner().invoke(app, ["backtest", "-p", str(path), "--prometheus", url, "--from", f"{start:.0f}",
                                          "--to", f"{end:.0f}", "--prometheus-timeout", "10", "--out", str(out), *extra])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += f"setpoint: {describe_error(result.exception)[1]}\n"
    written = (out / "result.json").is_file()
    return (result.exit_code, output, json.loads((out / "result.json").read_text()) if written else None,
            (out / "report.html").read_text() if written else "")


# --- 1. the replicas that ran, with gaps -----------------------------------------------------------

@pytest.mark.parametrize("deployment, known, hours, note", [
    pytest.param("full", 240, 3.0, None, id="known-throughout"),
    # was: the actual row gone (not known at every tick), from the table, result.json and report.html
    pytest.param("lead", 200, 2.5, "gaps/lead (200 of 240 ticks)", id="kube-state-metrics-starts-late"),
    pytest.param("short", 240, 3.0, None, id="a-gap-under-5-minutes-is-carried-over"),
    # was: carried over the whole gap (15 min of replicas nobody saw counted as 3)
    pytest.param("long", 200, 2.5, "gaps/long (200 of 240 ticks)", id="a-longer-gap-is-left-out-after-5-minutes"),
    pytest.param("bare", None, None, None, id="no-kube-state-metrics-no-actual-row"),
])
def test_the_actual_row_is_kept_over_what_is_known(prom, tmp_path, deployment, known, hours, note):
    """3 replicas ran; the actual's figures count the ticks at which that is known (a gap carried
    over for 5 minutes), its coverage is stated, and the policy's own scores do not move."""
    code, output, result, report = backtest(prom.url, policy("gaps", f"name: {deployment}"), tmp_path, START, END)
    assert code == 0, output
    controllers = result["controllers"]
    if known is None:
        assert "actual" not in controllers and not re.search(r"^\s*actual\s", output, re.M)
        assert "the replicas that ran are unknown for 1 target (gaps/bare)" in output
        assert result["backtest"]["actual_coverage"]["known_ticks"] == 0
        return
    assert re.search(r"^\s*actual\s", output, re.M) and '<td class="name">actual</td>' in report
    assert controllers["actual"]["replica_hours"] == hours
    (tmp_path / "full").mkdir()  # the policy decides as where the replicas that ran are known throughout
    _, _, full, _ = backtest(prom.url, policy("gaps", "name: full"), tmp_path / "full", START, END)
    assert controllers["shop"] == full["controllers"]["shop"]
    coverage = result["backtest"]["actual_coverage"]
    assert (coverage["known_ticks"], coverage["replayed_ticks"]) == (known, 240)
    share = f"known {100 * known / 240:.1f}% of the replayed time"
    if note is None:
        assert coverage["short"] == {} and "actual: scored over" not in output and share not in report
        assert controllers["actual"]["description"] == "replicas that ran (kube-state-metrics)"
        return
    line = (f"actual: scored over the ticks at which the replicas that ran are known, {100 * known / 240:.1f}% of "
            f"the replayed time (a gap of kube-state-metrics is carried over for at most 300 s, Prometheus' "
            f"lookback; longer ones are left out): 1 target known less: {note}")
    assert line in output and line in result["backtest"]["notes"]
    assert f"1 (1 with the replicas that ran, {share})" in report and share in controllers["actual"]["description"]


@pytest.mark.parametrize("deployment, line, gap", [
    # was: np.nansum drew the need as 0 replicas over the 15 minutes without a sample
    pytest.param("holed", "load at target (replicas)", slice(100, 160), id="need-without-samples"),
    pytest.param("lead", "actual", slice(0, 40), id="actual-before-kube-state-metrics"),
    pytest.param("long", "actual", slice(120, 160), id="actual-beyond-the-carried-5-minutes"),
])
def test_unknown_values_are_gaps_in_the_totals_plot(prom, deployment, line, gap):
    """The "All targets" plot's lines hold NaN (a gap) where the value is unknown, never 0."""
    pytest.importorskip("matplotlib")
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
    from controller.policy import load_policy_text
    from controller.runtime.backtest import stream_backtest
    from controller.runtime.reconciler import RuntimePolicy
    from simulators.backtest_report import Backtest, _figure_totals

    (loaded,) = load_policy_text(policy("gaps", f"name: {deployment}"))
    with PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=10)) as source:
        data, runs = stream_backtest(source, [RuntimePolicy.of(loaded)], ["shop"], [""], START, END, 15.0)
    figure = _figure_totals(Backtest(data, runs, "shop.yaml", prom.url))
    (drawn,) = [ln for ln in figure.axes[0].lines if ln.get_label() == line]
    y = np.asarray(drawn.get_ydata(), float)
    assert y.size == POINTS and np.isnan(y[gap]).all(), y
    assert np.isfinite(np.delete(y, np.arange(POINTS)[gap])).all() and not (y == 0).any()


# --- 2. workloads younger than the window ----------------------------------------------------------

LATE = START + 15 * YOUNG["late"][0]  # 2026-11-01T12:30:00Z
YOUNG_END = START + 15 * (YOUNG["web"][1] - 1)
SELECTOR = "selector: {matchLabels: {app: shop}}"


@pytest.mark.parametrize("targets, start, end, code, services, lines, requests", [
    # was: "no targets: ... came back at the start of the window", exit 1 (the first 12 h segment was empty)
    pytest.param(SELECTOR, START - 13 * HOUR, YOUNG_END, 0, ["young/late", "young/web"], [
        "history starts at 2026-11-01T00:00:00Z, 13h into the window: no sample of the queries or of the replicas "
        "that ran before it at any of the 2 targets (young/late, young/web; Prometheus' retention, or workloads "
        "younger than the window); the replay starts there, leaving out the window's first 3120 of 6240 times "
        "(50.0%), which the notes of each query do not count as missing",
        "1 target replayed from their first sample (no data before it: no replicas counted, no missing sample "
        "noted): young/late from 2026-11-01T12:30:00Z"], 3 * 2 + 1, id="history-starts-after-from"),
    # was: "... 50h into the window": a span of days is said in days (a week's window: 6d23h42m30s)
    pytest.param(SELECTOR, START - 50 * HOUR, YOUNG_END, 0, ["young/late", "young/web"], [
        "history starts at 2026-11-01T00:00:00Z, 2d2h into the window: no sample of the queries or of the replicas "
        "that ran before it at any of the 2 targets (young/late, young/web; Prometheus' retention, or workloads "
        "younger than the window); the replay starts there, leaving out the window's first 12000 of 15120 times "
        "(79.4%), which the notes of each query do not count as missing"], 6 * 2 + 1, id="history-starts-days-after-from"),
    # was: young/late never replayed (not in the first segment)
    pytest.param(SELECTOR, START, YOUNG_END, 0, ["young/late", "young/web"], [
        "1 target replayed from their first sample (no data before it: no replicas counted, no missing sample "
        "noted): young/late from 2026-11-01T12:30:00Z"], 2 * 2 + 1, id="deployment-created-mid-window"),
    pytest.param("names: [late, web]", START, YOUNG_END, 0, ["young/late", "young/web"], [
        "young/late from 2026-11-01T12:30:00Z"], 2 * 2, id="named-target-created-mid-window"),
    pytest.param(SELECTOR, START - 30 * HOUR, START - 20 * HOUR, 1, None, [
        "no targets: the policy selects by label and no series of namespace 'young' came back anywhere in the "
        "window"], 1 + 2, id="no-series-at-all-is-still-an-error"),
])
def test_targets_come_from_the_whole_window(prom, tmp_path, targets, start, end, code, services, lines, requests):
    """web ran 2 replicas from START for 13 h, late 5 from 12.5 h in; each is replayed from its
    first sample (before it: no replicas, none counted) and starts from the replicas that ran.
    ``requests``: range queries, 2 per 12 h segment (the metric, the replicas that ran) and 1 to
    find a label selector's targets over the whole window (the first segment's are already on
    their way when it finds none)."""
    before = prom.http_requests("/api/v1/query_range")
    exit_code, output, result, _ = backtest(prom.url, policy("young", targets), tmp_path, start, end)
    assert exit_code == code, output
    assert prom.http_requests("/api/v1/query_range") - before == requests
    for line in lines:
        assert line in " ".join(output.split()), output
    if code:
        return
    assert result["scenario"]["services"] == services
    assert "history starts at" not in output or start < START
    # was: a "no sample" note per query for the times before each one's start (both stated once above)
    assert not [n for n in result["backtest"]["notes"] if "no sample for" in n]
    hours = {"late": 0.5 * 5, "web": (YOUNG_END + 15 - START) / HOUR * 2}  # what ran, from each one's start
    assert result["controllers"]["actual"]["replica_hours"] == pytest.approx(sum(hours.values()), abs=1e-3)
    assert result["backtest"]["actual_coverage"]["short"] == {}  # known whenever the targets were replayed
    with open(tmp_path / "out" / "timeline.csv") as f:
        late = [(r["time"], r["actual"], r["shop"]) for r in csv.DictReader(f) if r["target"] == "young/late"]
    # nothing before its first sample; then from the 5 replicas that ran, down to the 2 its load needs
    assert late[:2] == [(iso(start), "", ""), ("2026-11-01T12:30:00Z", "5", "5")] and late[-1][2] == "2", late


# --- 3. a history that starts later than the window: said once, not once per query -----------------

TARDY_FROM = START - HOUR / 2  # 30 min before the history: 120 of the window's 360 times


def tardy_policy(name: str, names: str, metrics: dict[str, str]) -> str:
    """A policy of namespace tardy on the workloads ``names``, one metric per {name: query}."""
    lines = "".join(f"      - {{name: {m}, query: '{q}', target: {{averagePerReplica: 100}}}}\n" for m, q in metrics.items())
    return (f"apiVersion: setpoint/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n"
            f"  targets: {{namespace: tardy, names: [{names}]}}\n  interval: 15s\n  replicas: {{min: 1, max: 20}}\n"
            f"  scaling:\n    metrics:\n{lines}")


TARDY_SET = {
    "back.yaml": tardy_policy("back", "api", {"load": 'sum by (namespace, deployment) (app_rps{namespace="tardy"})'}),
    "front.yaml": tardy_policy("front", "web, ghost", {"rps": 'app_rps{namespace="tardy"}',
                                                       "peak": 'max by (namespace, deployment) (app_rps{namespace="tardy"})'}),
}
HISTORY_NOTE = ("history starts at 2026-11-01T00:00:00Z, 30m into the window: no sample of the queries or of the "
                "replicas that ran before it at any of the 3 targets (tardy/api, tardy/ghost, tardy/web; "
                "Prometheus' retention, or workloads younger than the window); the replay starts there, leaving out "
                "the window's first 120 of 360 times (33.3%), which the notes of each query do not count as missing")


@pytest.mark.parametrize("compare", [None, "hpa"])
def test_a_late_history_is_noted_once_and_real_gaps_still_named(prom, tmp_path, compare):
    """Three queries of two policies (and the hpa comparison replaying the same), the history 30 min
    into the window: one note says so, for every target; each query's notes count from there and
    name what the late start does not explain: api's 15 min without app_rps, ghost never seen."""
    code, output, result, report = backtest(prom.url, TARDY_SET, tmp_path, TARDY_FROM, END,
                                            *(["--compare", compare] if compare else []))
    assert code == 0, output
    notes = [n for n in result["backtest"]["notes"] if "no sample" in n or "history starts" in n]
    # was: the history note, then every query's "no sample" note naming every target, 120 times each
    # before the history (tardy/web (120 of 360 times), tardy/api (180 of 360 times), ...)
    assert notes == [HISTORY_NOTE,
                     "metric load: no sample for 1 target: tardy/api (60 of 240 times)",
                     "metric rps: no sample for 1 target: tardy/ghost (240 of 240 times)",
                     "metric peak: no sample for 1 target: tardy/ghost (240 of 240 times)",
                     "the replicas that ran (kube-state-metrics): no sample for 1 target: tardy/ghost "
                     "(240 of 240 times)"]
    flat = " ".join(output.split())
    assert all(" ".join(n.split()) in flat for n in notes) and flat.count("history starts at") == 1
    assert all(n in html.unescape(report) for n in notes)


def test_a_blind_policy_error_says_the_late_start_first(prom, tmp_path):
    """A policy whose metric has no series at all, in a window that starts before the history:
    the error's account of the queries starts with the history and counts from it."""
    dark = tardy_policy("dark", "web", {"missing": 'app_missing{namespace="tardy"}'})
    code, output, _, _ = backtest(prom.url, dark, tmp_path, TARDY_FROM, END)
    assert code == 1, output
    flat = " ".join(output.split())
    # was: no history note, and "(360 of 360 times)": a third of them before any data existed
    history = HISTORY_NOTE.replace("3 targets (tardy/api, tardy/ghost, tardy/web;", "1 target (tardy/web;")
    assert (f"What the queries gave: {history} metric missing: no sample for 1 target: tardy/web "
            f"(240 of 240 times)") in flat, output


@pytest.mark.parametrize("column, most, expected", [
    pytest.param([3, np.nan, np.nan, 4], 2, [3, 3, 3, 4], id="a-gap-within-the-bound"),
    pytest.param([3, np.nan, np.nan, np.nan, 4], 2, [3, 3, 3, np.nan, 4], id="beyond-the-bound-unknown"),
    pytest.param([np.nan, 2, np.nan], 5, [np.nan, 2, 2], id="nothing-before-the-first-value"),
    pytest.param([np.nan, np.nan], 5, [np.nan, np.nan], id="never-known"),
    pytest.param([3, np.nan], 0, [3, np.nan], id="no-carry"),
])
def test_carry_forward_is_bounded(column, most, expected):
    from simulators.backtest_report import carry_forward

    got = carry_forward(np.array(column, float)[:, None], most)[:, 0]
    np.testing.assert_array_equal(got, expected)
