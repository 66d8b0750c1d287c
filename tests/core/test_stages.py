"""Table-driven tests of each decision stage, at fixed times with explicit histories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.core import history
from controller.core.scaling.limit import NOT_LIMITED, changes_in_periods, clamp_legacy, limit_with_behavior, scale_down_limit, scale_up_limit
from controller.core.scaling.params import MetricKind, RuleType, ScalingRules, Select, Smoothing
from controller.core.scaling.propose import propose, within_tolerance
from controller.core.scaling.signal import read_signal
from controller.core.scaling.smooth import SmoothState, ewma_alpha, smooth
from controller.core.scaling.stabilize import stabilize_legacy, stabilize_with_behavior
from controller.model import Reason
from tests.core.helpers import T0, MetricParams, no_limits, policy, run

# --- signal -------------------------------------------------------------------------------


@pytest.mark.parametrize("value,present,age,expect", [
    pytest.param(5.0, True, 0.0, "usable", id="fresh-sample-is-usable"),
    pytest.param(5.0, False, 0.0, "missing", id="no-series-is-missing"),
    pytest.param(5.0, True, 121.0, "stale", id="older-than-bound-is-stale"),
    pytest.param(5.0, True, 120.0, "usable", id="exactly-at-bound-is-usable"),
    pytest.param(math.nan, True, 0.0, "nonfinite", id="nan-is-nonfinite"),
    pytest.param(math.inf, True, 0.0, "nonfinite", id="plus-inf-is-nonfinite"),
    pytest.param(-math.inf, True, 0.0, "nonfinite", id="minus-inf-is-nonfinite"),
    pytest.param(0.0, True, 0.0, "usable", id="zero-is-a-value-not-missing"),
    pytest.param(-0.0, True, 0.0, "usable", id="minus-zero-is-zero-not-negative"),
    pytest.param(-15.0, True, 0.0, "negative", id="negative-is-invalid"),
    pytest.param(-1e-9, True, 0.0, "negative", id="tiny-negative-is-invalid"),
    pytest.param(-15.0, False, 0.0, "missing", id="no-series-is-missing-not-negative"),
    pytest.param(-15.0, True, 121.0, "stale+negative", id="stale-negative-is-both"),
])
def test_signal_marks_each_sample(value, present, age, expect):
    sig = read_signal(np.array([[value]]), np.array([[present]]), np.array([[age]]), stale_after_s=120.0)
    flags = {"missing": sig.missing[0, 0], "stale": sig.stale[0, 0], "nonfinite": sig.nonfinite[0, 0],
             "negative": sig.negative[0, 0], "usable": sig.usable[0, 0]}
    assert [k for k, v in flags.items() if v] == expect.split("+")
    assert (sig.values[0, 0] == value) if expect == "usable" else np.isnan(sig.values[0, 0])


def test_signal_checks_sign_only_for_metrics_that_cannot_be_negative():
    values = np.array([[-3.0, -3.0]])
    sig = read_signal(values, np.ones((1, 2), bool), np.zeros((1, 2)), 120.0, nonnegative=np.array([True, False]))
    assert sig.negative.tolist() == [[True, False]] and sig.usable.tolist() == [[False, True]]


def test_every_policy_metric_kind_is_nonnegative():
    """Targets are > 0 for every kind the policy format has: all of them measure >= 0 quantities."""
    p = policy(metrics=tuple(MetricParams(k.name, k, 10.0) for k in MetricKind))
    assert p.metric_nonnegative.tolist() == [True] * len(MetricKind)


# --- smoothing ----------------------------------------------------------------------------


@pytest.mark.parametrize("dt,half_life,alpha", [
    pytest.param(45.0, 45.0, 0.5, id="one-half-life-moves-halfway"),
    pytest.param(90.0, 45.0, 0.75, id="two-half-lives-move-three-quarters"),
    pytest.param(0.0, 45.0, 0.0, id="no-time-no-move"),
    pytest.param(15.0, 0.0, 1.0, id="zero-half-life-is-no-smoothing"),
])
def test_ewma_alpha_follows_the_half_life(dt, half_life, alpha):
    assert ewma_alpha(np.array([dt]), half_life)[0] == pytest.approx(alpha)


def test_ewma_is_correct_for_irregular_intervals():
    """Two steps of 10 s and 35 s toward a constant equal one step of 45 s."""
    p = policy(smoothing=Smoothing.EWMA, half_life_s=45.0)
    state = SmoothState.empty(1, 1, p)
    ok = np.array([[True]])
    _, state = smooth(p, np.array([[0.0]]), ok, state, T0)
    a, s2 = smooth(p, np.array([[100.0]]), ok, state, T0 + 10)
    b, _ = smooth(p, np.array([[100.0]]), ok, s2, T0 + 45)
    c, _ = smooth(p, np.array([[100.0]]), ok, state, T0 + 45)
    assert b[0, 0] == pytest.approx(c[0, 0]) == pytest.approx(50.0)


def test_ewma_keeps_its_value_when_a_sample_is_missing():
    p = policy(smoothing=Smoothing.EWMA, half_life_s=30.0)
    state = SmoothState.empty(1, 1, p)
    _, state = smooth(p, np.array([[10.0]]), np.array([[True]]), state, T0)
    out, state2 = smooth(p, np.array([[np.nan]]), np.array([[False]]), state, T0 + 15)
    assert out[0, 0] == 10.0 and state2.ewma_at[0, 0] == T0


@pytest.mark.parametrize("kind,pct,expect", [
    pytest.param(Smoothing.MEAN, 50, 25.0, id="mean"),
    pytest.param(Smoothing.MEDIAN, 50, 20.0, id="median"),
    pytest.param(Smoothing.MAX, 50, 50.0, id="max"),
    pytest.param(Smoothing.PERCENTILE, 100, 50.0, id="p100-is-max"),
    pytest.param(Smoothing.PERCENTILE, 50, 20.0, id="p50-is-median"),
])
def test_window_aggregates_only_samples_inside_the_window(kind, pct, expect):
    """Samples 1000 (too old), 10, 20, 50, 20 (0..60 s), window 60 s: the old one drops out."""
    p = policy(smoothing=kind, window_s=60.0, percentile=pct, interval_s=15.0)
    state = SmoothState.empty(1, 1, p)
    out = None
    for t, v in [(-60, 1000.0), (0, 10.0), (15, 20.0), (30, 50.0), (45, 20.0)]:
        out, state = smooth(p, np.array([[v]]), np.array([[True]]), state, T0 + t)
    assert out[0, 0] == pytest.approx(expect)


# --- propose ------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio,up,down,within", [
    pytest.param(1.1, 0.1, 0.1, True, id="upper-edge-inclusive"),
    pytest.param(0.9, 0.1, 0.1, True, id="lower-edge-inclusive"),
    pytest.param(1.1000001, 0.1, 0.1, False, id="just-above-band"),
    pytest.param(0.8999999, 0.1, 0.1, False, id="just-below-band"),
    pytest.param(1.04, 0.05, 0.2, True, id="asymmetric-up-inside"),
    pytest.param(0.85, 0.05, 0.2, True, id="asymmetric-down-inside"),
    pytest.param(0.79, 0.05, 0.2, False, id="asymmetric-down-outside"),
])
def test_tolerance_band(ratio, up, down, within):
    assert within_tolerance(np.array([ratio]), up, down)[0] == within


# kind, target, value, current, ready, status, hpa, expected proposal
PROPOSE_ROWS = [
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, 100, 1000, 5, 5, 5, 10, id="average-total-divided-by-target"),
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, 100, 520, 5, 5, 5, 5, id="average-within-band-keeps-current"),
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, 100, 250, 5, 5, 5, 3, id="average-scale-down"),
    pytest.param(MetricKind.VALUE, 0.2, 0.4, 4, 4, 4, 8, id="value-doubles-replicas"),
    pytest.param(MetricKind.VALUE, 0.2, 0.4, 4, 1, 4, 4, id="setpoint-value-never-proposes-down-above-target"),
    pytest.param(MetricKind.VALUE, 0.2, 0.4, 0, 0, 0, 2, id="value-from-zero-is-ceil-ratio"),
    pytest.param(MetricKind.UTILIZATION, 50, 100, 4, 4, 4, 8, id="utilization-fast-path"),
    pytest.param(MetricKind.UTILIZATION, 50, 100.9, 4, 4, 4, 9, id="setpoint-keeps-the-exact-percentage"),
    pytest.param(MetricKind.UTILIZATION, 50, 100, 4, 2, 4, 4, id="unready-pods-count-idle-flip-to-current"),
    pytest.param(MetricKind.UTILIZATION, 50, 200, 4, 2, 4, 8, id="unready-pods-count-idle-scale-up"),
]


@pytest.mark.parametrize("kind,target,value,current,ready,status,expect", PROPOSE_ROWS)
def test_propose(kind, target, value, current, ready, status, expect):
    p, ok = propose(np.array([int(kind)]), np.array([float(target)]), np.array([[float(value)]]),
                    np.array([float(current)]), np.array([float(ready)]), np.array([float(status)]), 0.1, 0.1)
    assert ok[0, 0]
    assert p[0, 0] == expect


def test_utilization_without_ready_pods_is_not_a_valid_proposal():
    _, ok = propose(np.array([int(MetricKind.UTILIZATION)]), np.array([50.0]), np.array([[80.0]]),
                    np.array([3.0]), np.array([0.0]), np.array([3.0]), 0.1, 0.1)
    assert not ok[0, 0]


# --- stabilize and limit ------------------------------------------------------------------


def _hist(entries: list[tuple[float, float]], slots: int = 8):
    v, t = history.empty_history(1, slots)
    for replicas, age in entries:
        v, t = history.write_slot(v, t, np.array([replicas]), T0 - age, np.inf)
    return v, t


@pytest.mark.parametrize("proposal,entries,window,expect", [
    pytest.param(3, [(8, 100)], 300, 8, id="recent-high-recommendation-holds"),
    pytest.param(3, [(8, 300)], 300, 8, id="legacy-window-is-inclusive"),
    pytest.param(3, [(8, 301)], 300, 3, id="older-than-window-forgotten"),
    pytest.param(9, [(8, 100)], 300, 9, id="no-scale-up-stabilization"),
])
def test_stabilize_legacy(proposal, entries, window, expect):
    v, t = _hist(entries)
    assert stabilize_legacy(np.array([float(proposal)]), v, t, T0, window)[0] == expect


@pytest.mark.parametrize("current,proposal,entries,up_w,down_w,expect", [
    pytest.param(5, 3, [(8, 100)], 0, 300, 5, id="down-held-at-current-not-raised-to-window-max"),
    pytest.param(5, 3, [(4, 100)], 0, 300, 4, id="down-to-window-max"),
    pytest.param(5, 3, [(4, 300)], 0, 300, 3, id="behavior-window-is-strict"),
    pytest.param(5, 9, [(6, 30)], 60, 0, 6, id="up-limited-to-window-min"),
    pytest.param(5, 9, [(4, 30)], 60, 0, 5, id="up-never-crosses-current"),
])
def test_stabilize_with_behavior(current, proposal, entries, up_w, down_w, expect):
    v, t = _hist(entries)
    out = stabilize_with_behavior(np.array([float(current)]), np.array([float(proposal)]), v, t, T0, up_w, down_w)
    assert out[0] == expect


def test_history_write_reuses_outdated_slot_then_empty_then_oldest():
    v, t = history.empty_history(1, 2)
    v, t = history.write_slot(v, t, np.array([1.0]), T0 - 500, 300)
    v, t = history.write_slot(v, t, np.array([2.0]), T0 - 100, 300)
    v, t = history.write_slot(v, t, np.array([3.0]), T0, 300)  # slot of the 500 s old entry
    assert sorted(v[0].tolist()) == [2.0, 3.0]
    v, t = history.write_slot(v, t, np.array([4.0]), T0 + 1, 300)  # full, none outdated: oldest goes
    assert sorted(v[0].tolist()) == [3.0, 4.0]


@pytest.mark.parametrize("rules,current,added,removed,expect", [
    pytest.param([(RuleType.PODS, 4, 15), (RuleType.PERCENT, 100, 15)], 10, 0, 0, 20, id="default-max-of-pods-and-percent"),
    pytest.param([(RuleType.PODS, 4, 15), (RuleType.PERCENT, 100, 15)], 2, 0, 0, 6, id="default-small-pods-wins"),
    pytest.param([(RuleType.PERCENT, 50, 60)], 10, 4, 0, 9, id="period-start-subtracts-recent-growth"),
    pytest.param([(RuleType.PERCENT, 10, 60)], 11, 0, 0, 13, id="percent-up-rounds-up"),
])
def test_scale_up_limit(rules, current, added, removed, expect):
    r = ScalingRules.of(0, Select.MAX, rules)
    p = len(rules)
    out = scale_up_limit(np.array([float(current)]), np.full((1, p), float(added)), np.full((1, p), float(removed)), r)
    assert out[0] == expect


@pytest.mark.parametrize("select,expect", [
    pytest.param(Select.MAX, 5, id="max-allows-biggest-change"),
    pytest.param(Select.MIN, 8, id="min-allows-smallest-change"),
    pytest.param(Select.DISABLED, 10, id="disabled-pins-current"),
])
def test_scale_down_limit_select(select, expect):
    r = ScalingRules.of(300, select, [(RuleType.PODS, 2, 60), (RuleType.PERCENT, 50, 60)])
    out = scale_down_limit(np.array([10.0]), np.zeros((1, 2)), np.zeros((1, 2)), r)
    assert out[0] == expect


def test_changes_in_periods_counts_only_strictly_younger_events():
    v, t = _hist([(3, 59.0), (4, 60.0), (5, 10.0)])
    out = changes_in_periods(v, t, T0, np.array([60.0, 15.0]))
    assert out.tolist() == [[8.0, 5.0]]


@pytest.mark.parametrize("current,desired,up,down,expect,reason", [
    pytest.param(10, 30, 20, 0, 20, Reason.RATE_LIMITED_UP, id="rate-limited-up"),
    pytest.param(10, 60, 80, 0, 50, Reason.CLAMPED_TO_MAX, id="max-before-rate"),
    pytest.param(10, 2, 0, 5, 5, Reason.RATE_LIMITED_DOWN, id="rate-limited-down"),
    pytest.param(10, 2, 0, 1, 3, Reason.CLAMPED_TO_MIN, id="min-bound"),
    pytest.param(10, 12, 20, 0, 12, NOT_LIMITED, id="within-limits"),
    pytest.param(10, 30, 5, 0, 10, Reason.RATE_LIMITED_UP, id="limit-below-current-never-scales-down"),
])
def test_limit_with_behavior(current, desired, up, down, expect, reason):
    out, why = limit_with_behavior(np.array([float(current)]), np.array([float(desired)]), 3, 50,
                                   np.array([float(up)]), np.array([float(down)]))
    assert (out[0], why[0]) == (expect, reason)


@pytest.mark.parametrize("current,desired,expect,reason", [
    pytest.param(3, 20, 6, Reason.RATE_LIMITED_UP, id="legacy-cap-twice-current"),
    pytest.param(1, 20, 4, Reason.RATE_LIMITED_UP, id="legacy-cap-at-least-four"),
    pytest.param(30, 80, 50, Reason.CLAMPED_TO_MAX, id="legacy-max"),
    pytest.param(5, 1, 2, Reason.CLAMPED_TO_MIN, id="legacy-min"),
])
def test_clamp_legacy(current, desired, expect, reason):
    out, why = clamp_legacy(np.array([float(current)]), np.array([float(desired)]), 2, 50, 2.0, 4.0)
    assert (out[0], why[0]) == (expect, reason)


# --- decide, end to end -------------------------------------------------------------------


NAN = float("nan")
# name, policy overrides, [(t, values)], current0, expected desired per step, final reason
DECIDE_ROWS = [
    pytest.param({}, [(0, [1000.0])], 5, [10], Reason.SCALE_UP, id="scale-up"),
    pytest.param({}, [(0, [520.0])], 5, [5], Reason.WITHIN_TOLERANCE, id="within-tolerance"),
    pytest.param({}, [(0, [200.0])], 5, [5], Reason.STABILIZED_DOWN, id="first-sight-seeds-history-no-scale-down"),
    pytest.param(no_limits(), [(0, [200.0])], 5, [2], Reason.SCALE_DOWN, id="no-window-scale-down"),
    pytest.param({}, [(0, [8000.0])], 40, [50], Reason.CLAMPED_TO_MAX, id="clamped-to-max"),
    pytest.param(no_limits(), [(0, [10.0])], 5, [1], Reason.SCALE_DOWN, id="down-to-min-exactly"),
    pytest.param({}, [(0, [NAN])], 5, [5], Reason.METRICS_MISSING, id="missing-holds"),
    pytest.param(dict(fallback_replicas=8, missing_hold_s=30.0), [(0, [NAN]), (15, [NAN]), (30, [NAN])], 5, [5, 5, 8],
                 Reason.FALLBACK_REPLICAS, id="fallback-after-hold"),
    pytest.param(dict(fallback_replicas=3, missing_hold_s=0.0), [(0, [NAN])], 5, [5], Reason.FALLBACK_REPLICAS,
                 id="fallback-never-scales-down"),
    pytest.param({}, [(0, [1000.0]), (15, [NAN])], 5, [10, 10], Reason.METRICS_MISSING, id="hold-after-data-stops"),
    pytest.param(dict(min_replicas=2, **no_limits()), [(0, [-5.0])], 15, [15], Reason.METRICS_MISSING,
                 id="negative-holds-not-clamped-to-min"),
    pytest.param(no_limits(), [(0, [1000.0]), (15, [-1000.0])], 5, [10, 10], Reason.METRICS_MISSING,
                 id="negative-after-data-holds"),
    pytest.param(dict(fallback_replicas=8, missing_hold_s=30.0), [(0, [-1.0]), (15, [-1.0]), (30, [-1.0])], 5,
                 [5, 5, 8], Reason.FALLBACK_REPLICAS, id="negative-like-missing-then-fallback"),
    pytest.param(dict(fallback_replicas=3, missing_hold_s=0.0), [(0, [-1.0])], 5, [5], Reason.FALLBACK_REPLICAS,
                 id="negative-fallback-never-scales-down"),
    pytest.param(dict(hpa_semantics=True, **no_limits()), [(0, [-5.0])], 15, [15], Reason.METRICS_MISSING,
                 id="negative-holds-under-hpa-semantics"),
    pytest.param(dict(min_replicas=3), [(0, [100.0])], 1, [3], Reason.BELOW_MIN, id="below-min-jumps-to-min"),
    pytest.param(dict(max_replicas=4), [(0, [100.0])], 9, [4], Reason.ABOVE_MAX, id="above-max-jumps-to-max"),
    pytest.param({}, [(0, [100.0])], 0, [0], Reason.SCALING_DISABLED, id="zero-replicas-is-disabled"),
]


@pytest.mark.parametrize("overrides,steps,current0,expect,reason", DECIDE_ROWS)
def test_decide(overrides, steps, current0, expect, reason):
    decisions = run(policy(**overrides), steps, current0)
    assert [int(d.desired[0]) for d in decisions] == expect
    assert Reason(int(decisions[-1].reason[0])) == reason


def test_missing_metric_blocks_scale_down_but_not_scale_up():
    two = (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0), MetricParams("q", MetricKind.AVERAGE_PER_REPLICA, 10.0))
    p = policy(metrics=two, **no_limits())
    down = run(p, [(0, [100.0, NAN])], 5)[0]
    up = run(p, [(0, [1000.0, NAN])], 5)[0]
    assert (int(down.desired[0]), Reason(int(down.reason[0]))) == (5, Reason.METRICS_MISSING)
    assert (int(up.desired[0]), Reason(int(up.reason[0]))) == (10, Reason.SCALE_UP)


@pytest.mark.parametrize("kind,target", [
    pytest.param(MetricKind.VALUE, 10.0, id="value"),
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, 100.0, id="average-per-replica"),
    pytest.param(MetricKind.UTILIZATION, 70.0, id="utilization"),
])
def test_negative_metric_blocks_scale_down_but_not_scale_up(kind, target):
    two = (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0), MetricParams("bad", kind, target))
    p = policy(metrics=two, **no_limits())
    down = run(p, [(0, [100.0, -50.0])], 5)[0]
    up = run(p, [(0, [1000.0, -50.0])], 5)[0]
    assert (int(down.desired[0]), Reason(int(down.reason[0]))) == (5, Reason.METRICS_MISSING)
    assert (int(up.desired[0]), Reason(int(up.reason[0]))) == (10, Reason.SCALE_UP)
    assert down.record(0, "p", "t", ("rps", "bad")).missing == (False, True)


def test_scale_down_waits_for_the_window_then_follows():
    p = policy(scale_down=ScalingRules.of(60, Select.MAX, []))
    steps = [(t, [200.0]) for t in range(0, 91, 15)]
    got = [int(d.desired[0]) for d in run(p, steps, 5)]
    assert got == [5, 5, 5, 5, 2, 2, 2]  # the seeded 5 is 60 s old at t=60: out (strict window)


def test_decision_record_explains_every_number():
    d = run(policy(**no_limits()), [(0, [1000.0])], 5)[0]
    r = d.record(0, "web", "shop/web", ("rps",))
    assert (r.current, r.raw, r.proposals, r.combined, r.stabilized, r.desired, r.reason, r.action) == \
        (5, (1000.0,), (10,), 10, 10, 10, "ScaleUp", "scale")
    assert r.to_dict()["metrics"]["rps"]["proposal"] == 10
