"""HPA's cost/violation frontier: the envelope, the interpolation at equal cost, the verdicts, and
the sweep on a real (short) bundled scenario through result.json and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policy import load_policies
from simulators.frontier import compare, equal_cost, monotone_envelope, parse_targets, retargeted
from simulators.hpa_sweep import sweep_frontier, widened_target
from simulators.report import report_html
from simulators.result import FrontierPoint
from simulators.runner import ControllerSpec, simulate, standard_controllers
from simulators.scenario import load_scenario
from simulators.score import frontier_json, result_json, score_table
from tests.simulators.conftest_paths import POLICIES


def points(*rows) -> list[FrontierPoint]:
    """FrontierPoints from (target %, replica-hours, violation minutes) rows."""
    return [FrontierPoint(float(t), float(x), float(y)) for t, x, y in rows]


# HPA at 80 / 70 / 60 / 50 %: cost rises, violations fall.
SWEEP = points((80, 10, 8), (70, 12, 6), (60, 14, 2), (50, 18, 1))


# --- the envelope ---------------------------------------------------------------------------


@pytest.mark.parametrize("xs,ys,expect", [
    pytest.param([10, 12, 14], [8, 6, 2], [0, 1, 2], id="already-monotone"),
    pytest.param([14, 10, 12], [2, 8, 6], [1, 2, 0], id="unsorted-input-comes-back-by-cost"),
    pytest.param([10, 12, 14, 16], [8, 9, 2, 3], [0, 2], id="non-monotone-points-dropped"),
    pytest.param([10, 12, 12, 14], [8, 5, 6, 2], [0, 1, 3], id="duplicate-replica-hours-keep-the-fewest-minutes"),
    pytest.param([10, 12, 12], [8, 5, 5], [0, 1], id="duplicate-points-kept-once"),
    pytest.param([10, 12, 14], [3, 3, 3], [0], id="flat-sweep-is-its-cheapest-point"),
    pytest.param([10], [4], [0], id="single-point"),
    pytest.param([], [], [], id="empty"),
])
def test_monotone_envelope(xs, ys, expect):
    assert monotone_envelope(xs, ys).tolist() == expect


# --- HPA at equal cost ----------------------------------------------------------------------


@pytest.mark.parametrize("sweep,cost,minutes,hpa,extrapolated,ratio,verdict", [
    pytest.param(SWEEP, 13.0, 2.0, 4.0, None, 0.5, "win", id="bracketed-linear-between-neighbours"),
    pytest.param(SWEEP, 14.0, 2.0, 2.0, None, 1.0, "tie", id="exactly-on-a-point-equal-is-a-tie"),
    pytest.param(SWEEP, 16.0, 3.0, 1.5, None, 2.0, "loss", id="bracketed-loss"),
    pytest.param(SWEEP, 8.0, 4.0, 8.0, "below", 0.5, "win", id="extrapolated-low-flat-at-the-cheapest"),
    pytest.param(SWEEP, 25.0, 0.5, 1.0, "above", 0.5, "win", id="extrapolated-high-flat-at-the-dearest"),
    pytest.param(points((80, 10, 0), (50, 18, 0)), 12.0, 0.0, 0.0, None, None, "tie", id="ties-0-0-are-not-a-win"),
    pytest.param(points((80, 10, 0), (50, 18, 0)), 12.0, 1.0, 0.0, None, None, "loss", id="x-against-0-is-a-loss-no-inf"),
    pytest.param(points((80, 10, 8), (70, 12, 9), (60, 14, 2)), 12.0, 5.0, 5.0, None, 1.0, "tie",
                 id="non-monotone-point-skipped-by-the-line"),
    pytest.param(points((80, 10, 8), (70, 12, 4), (60, 12, 6), (50, 14, 2)), 12.0, 2.0, 4.0, None, 0.5, "win",
                 id="duplicate-replica-hours-use-the-better-point"),
    pytest.param(points((60, 14, 2), (40, 20, 3)), 18.0, 1.0, 2.0, None, 0.5, "win",
                 id="dearer-point-off-the-envelope-makes-it-flat-not-extrapolated"),
    pytest.param([], 12.0, 1.0, None, None, None, None, id="no-points-no-comparison"),
])
def test_equal_cost(sweep, cost, minutes, hpa, extrapolated, ratio, verdict):
    e = equal_cost("policy", cost, minutes, sweep)
    assert (e.hpa_slo_violation_minutes, e.extrapolated, e.ratio, e.verdict) == (hpa, extrapolated, ratio, verdict)


@pytest.mark.parametrize("minutes,hpa,expect", [
    pytest.param(1.0, 4.0, (0.25, "win"), id="fewer"),
    pytest.param(4.0, 4.0, (1.0, "tie"), id="equal"),
    pytest.param(0.0, 0.0, (None, "tie"), id="zero-zero"),
    pytest.param(2.0, 0.0, (None, "loss"), id="more-than-zero"),
    pytest.param(0.0, 3.0, (0.0, "win"), id="zero-against-some"),
    pytest.param(1.0, None, (None, None), id="unknown"),
])
def test_compare(minutes, hpa, expect):
    assert compare(minutes, hpa) == expect


finite = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=8), finite)
def test_equal_cost_is_never_worse_than_a_swept_point_at_no_more_cost(rows, cost):
    """HPA @ equal cost is at most the best swept point costing no more (the frontier is the
    best HPA can do), at least the best point overall, and never inf or NaN."""
    sweep = points(*[(i, x, y) for i, (x, y) in enumerate(rows)])
    e = equal_cost("policy", cost, 1.0, sweep)
    cheaper = [p.slo_violation_minutes for p in sweep if p.replica_hours <= cost]
    if cheaper:
        assert e.hpa_slo_violation_minutes <= round(min(cheaper), 3) + 1e-9
    assert e.hpa_slo_violation_minutes >= round(min(p.slo_violation_minutes for p in sweep), 3) - 1e-9
    assert e.ratio is None or np.isfinite(e.ratio)
    env = monotone_envelope([p.replica_hours for p in sweep], [p.slo_violation_minutes for p in sweep])
    xs = np.array([sweep[i].replica_hours for i in env])
    ys = np.array([sweep[i].slo_violation_minutes for i in env])
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) < 0)


# --- targets and widening -------------------------------------------------------------------


@pytest.mark.parametrize("text,expect", [
    pytest.param("40,50,60,70,80", [40, 50, 60, 70, 80], id="default"),
    pytest.param("70%, 40% ,55", [40, 55, 70], id="percent-signs-spaces-sorted"),
    pytest.param("60,60", [60], id="duplicates-once"),
    pytest.param(",".join(["50"] * 500 + [str(i) for i in range(1, 101)]), list(range(1, 101)),
                 id="a-hundred-distinct-among-repeats"),
])
def test_parse_targets(text, expect):
    assert parse_targets(text) == expect


@pytest.mark.parametrize("text,message", [
    pytest.param("40,abc", "'abc'", id="not-a-number"),
    pytest.param("0,50", "(0, 1000]", id="zero"),
    pytest.param("-5", "(0, 1000]", id="negative"),
    pytest.param("nan", "(0, 1000]", id="nan"),
    pytest.param(",".join(str(i) for i in range(1, 1001)), "at most 100 targets (each is one more run of the hpa preset), "
                 "got 1,000", id="a-thousand-targets"),
])
def test_parse_targets_rejects(text, message):
    with pytest.raises(ValueError, match="--frontier-targets") as exc:
        parse_targets(text)
    assert message in str(exc.value)


@pytest.mark.parametrize("targets,side,expect", [
    pytest.param([40, 80], "dearer", 30.0, id="dearer-steps-below-the-lowest"),
    pytest.param([10, 80], "dearer", 5.0, id="dearer-halves-near-zero"),
    pytest.param([1, 80], "dearer", None, id="dearer-nothing-left"),
    pytest.param([40, 80], "cheaper", 90.0, id="cheaper-steps-above-the-highest"),
    pytest.param([40, 95], "cheaper", 100.0, id="cheaper-capped-at-100"),
    pytest.param([40, 100], "cheaper", None, id="cheaper-nothing-left"),
    pytest.param([40, 80], None, None, id="bracketed"),
])
def test_widened_target(targets, side, expect):
    assert widened_target(targets, side) == expect


def test_retargeted_changes_only_the_target_and_name():
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    at_50 = retargeted(hpa, 50.0)
    assert [m.target for m in at_50.params.metrics] == [50.0]
    assert at_50.name == "hpa-cpu@50%" and at_50.params.interval_s == hpa.params.interval_s
    assert hpa.params.metrics[0].target == 70.0  # the original is untouched


# --- the sweep on a bundled scenario --------------------------------------------------------


@pytest.fixture(scope="module")
def step_run():
    """The step scenario (2 h): the default policy, hpa, fixed-max and oracle, and the frontier."""
    scenario = load_scenario("step")
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    result, _ = simulate(scenario, standard_controllers(policy, ["hpa", "fixed-max", "oracle"], hpa, 20),
                         keep_records=False)
    result.frontier = sweep_frontier(scenario, result, hpa, [50.0, 70.0, 80.0])
    return scenario, hpa, result


def test_sweep_reuses_hpa_and_is_deterministic(step_run):
    scenario, hpa, result = step_run
    fr = result.frontier
    by_target = {p.target_pct: p for p in fr.points}
    assert set(by_target) >= {50.0, 70.0, 80.0}
    own = result.runs["hpa"].scores
    assert (by_target[70.0].replica_hours, by_target[70.0].slo_violation_minutes) == (
        own["replica_hours"], own["slo_violation_minutes"])
    # a lower target spends more on the same load
    assert by_target[50.0].replica_hours > by_target[70.0].replica_hours > by_target[80.0].replica_hours
    again = sweep_frontier(scenario, result, hpa, [50.0, 70.0, 80.0])
    assert again.points == fr.points
    assert set(fr.equal_cost) == {"policy", "fixed-max", "oracle"}


def test_sweep_takes_known_points_without_running_them(step_run):
    """Known points (a bench's cache) are used as given: a made-up point for 50 % comes back
    unchanged, which a run of the scenario at 50 % could not produce."""
    scenario, hpa, result = step_run
    made_up = FrontierPoint(50.0, 1234.5, 67.0)
    fr = sweep_frontier(scenario, result, hpa, [50.0, 70.0, 80.0], known=[made_up])
    by_target = {p.target_pct: p for p in fr.points}
    assert by_target[50.0] == made_up
    assert by_target[80.0] == {p.target_pct: p for p in result.frontier.points}[80.0]


def test_result_json_and_table_carry_the_frontier(step_run):
    _, _, result = step_run
    text = json.dumps(result_json(result), allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text
    doc = json.loads(text)
    assert doc["schema_version"] == 2
    fr = doc["frontier"]
    assert [p["target_pct"] for p in fr["points"]] == sorted(p["target_pct"] for p in fr["points"])
    assert {"target_pct", "replica_hours", "slo_violation_minutes", "widened"} == set(fr["points"][0])
    env = fr["envelope"]
    assert all(a["replica_hours"] < b["replica_hours"] and a["slo_violation_minutes"] > b["slo_violation_minutes"]
               for a, b in zip(env, env[1:]))
    policy = fr["equal_cost"]["policy"]
    assert policy["replica_hours"] == doc["controllers"]["policy"]["replica_hours"]
    assert policy["verdict"] in ("win", "tie", "loss")
    rows = {r["controller"]: r for r in score_table(result)}
    assert rows["hpa"]["hpa_equal_cost"] is None and rows["policy"]["hpa_equal_cost"].controller == "policy"


def test_report_has_the_cost_violation_plane(step_run):
    _, _, result = step_run
    html = report_html(result)
    assert "HPA&#x27;s frontier" in html or "HPA's frontier" in html
    assert 'alt="cost vs violations: HPA&#x27;s frontier"' in html
    assert report_html(_without_frontier(result)).count("<img") == html.count("<img") - 1


def _without_frontier(result):
    from dataclasses import replace
    return replace(result, frontier=None)


def test_sweep_widens_to_bracket_a_dearer_policy():
    """A "policy" fixed at 20 replicas spends more than HPA at 70 and 80 %: the sweep adds lower
    targets, at most two, flagged as widened."""
    scenario = load_scenario("step")
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    result, _ = simulate(scenario, [ControllerSpec("policy", "fixed", "fixed at 20", replicas=20)], keep_records=False)
    fr = sweep_frontier(scenario, result, hpa, [70.0, 80.0], max_extra_runs=2)
    widened = [p.target_pct for p in fr.points if p.widened]
    assert widened == [50.0, 60.0]  # 60 first, then 50; listed by target
    assert len(fr.points) == 4
    assert fr.equal_cost["policy"].hpa_slo_violation_minutes is not None
    assert frontier_json(fr)["points"][0]["widened"] is True
