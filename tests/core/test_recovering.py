"""Readings at the edge of a gap (core/scaling/recovering.py): a reading taken less than its
metric's read window after the metric was last missing (or first read) may hold or raise
replicas, never lower them (reason MetricsRecovering), on the numpy stages and the compiled
kernel alike. Fixed times; 10 replicas at 1000 rps, 100 per replica, a 40 s read window
(``rate(x[40s])``), 15 s cycles and a 0 s scale-down window (an imported HPA with
``stabilizationWindowSeconds: 0``), where the gap's low readings used to scale down at once.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import controller.core.scaling.decide as decide_module
from controller.core.scaling import compiled
from controller.core.scaling.decide import Observation, ScalingState, decide_numpy
from controller.core.scaling.hpa_conditions import hpa_conditions
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, ScalingRules, Select
from controller.core.scaling.recovering import recovering
from controller.model import Reason
from controller.policy.compile import compile_metric
from controller.policy.schema import Metric
from tests.core.helpers import T0
from tests.core.test_compiled import assert_same

NAN = float("nan")
R = Reason
WINDOW = 40.0


def rps(window: float = WINDOW, name: str = "rps") -> MetricParams:
    return MetricParams(name, MetricKind.AVERAGE_PER_REPLICA, 100.0, read_window_s=window)


def policy(metrics=None, down_window_s: float = 0.0, **overrides) -> PolicyParams:
    base = dict(name="t", metrics=(rps(),) if metrics is None else metrics, min_replicas=1, max_replicas=50,
                scale_up=ScalingRules.of(0, Select.MAX, []), scale_down=ScalingRules.of(down_window_s, Select.MAX, []))
    base.update(overrides)
    return PolicyParams(**base)


def paths():
    """The decision paths: the numpy stages, and the compiled kernel when numba is installed."""
    out = [decide_numpy]
    if compiled.available():
        out.append(lambda p, obs, st, now: decide_module._decide_compiled(p, obs, st, now))
    return out


def run(params: PolicyParams, steps, current0: float = 10.0, decide=decide_numpy):
    """Feed ``[(t_s, values (M,) with NaN missing, ages (M,) or None)]`` to one target, each
    decision applied; returns [(t_s, desired, reason)]."""
    m = len(params.metrics)
    state, cur, out = ScalingState.empty(1, params), float(current0), []
    for t, values, ages in steps:
        values = np.asarray(values, float).reshape(1, m)
        obs = Observation.of([cur], [cur], values, present=~np.isnan(values),
                             sample_age_s=None if ages is None else np.asarray(ages, float).reshape(1, m))
        d = decide(params, obs, state, T0 + t)
        out.append((t, int(d.desired[0]), R(int(d.reason[0]))))
        state, cur = d.state, float(d.desired[0])
    return out


def steady(until: float, value: float = 1000.0, m: int = 1):
    """Complete readings every 15 s from 0 to ``until`` (more than a window: past the start-up)."""
    return [(t, [value] * m, None) for t in np.arange(0.0, until + 1.0, 15.0)]


GAP = [(75.0, [NAN], None)]  # the series is missing at t=75: the window counts from the next reading

# (name, policy, steps, the expected (t, desired, reason) of the last step)
ROWS = [
    ("low-reading-right-after-a-gap-is-held", policy(), steady(60) + GAP + [(90.0, [217.0], None)],
     (90.0, 10, R.METRICS_RECOVERING)),
    ("still-held-within-the-window", policy(), steady(60) + GAP + [(90.0, [217.0], None), (105.0, [600.0], None)],
     (105.0, 10, R.METRICS_RECOVERING)),
    ("the-same-reading-a-window-after-the-gap-scales-down", policy(),
     steady(60) + GAP + [(90.0, [1000.0], None), (105.0, [1000.0], None), (120.0, [1000.0], None),
                         (135.0, [500.0], None)],
     (135.0, 5, R.SCALE_DOWN)),
    ("a-window-from-the-missing-cycle-is-not-enough", policy(),
     steady(60) + GAP + [(90.0, [1000.0], None), (120.0, [500.0], None)], (120.0, 10, R.METRICS_RECOVERING)),
    ("exactly-one-window-after-the-gap-is-complete", policy(),
     steady(60) + GAP + [(90.0, [1000.0], None), (130.0, [500.0], None)], (130.0, 5, R.SCALE_DOWN)),
    ("a-higher-reading-right-after-a-gap-scales-up", policy(), steady(60) + GAP + [(90.0, [1500.0], None)],
     (90.0, 15, R.SCALE_UP)),
    ("within-tolerance-right-after-a-gap-is-plain", policy(), steady(60) + GAP + [(90.0, [1000.0], None)],
     (90.0, 10, R.WITHIN_TOLERANCE)),
    ("start-up-the-first-reading-cannot-scale-down", policy(), [(0.0, [500.0], None)],
     (0.0, 10, R.METRICS_RECOVERING)),
    ("start-up-within-the-window", policy(), [(0.0, [1000.0], None), (30.0, [500.0], None)],
     (30.0, 10, R.METRICS_RECOVERING)),
    ("start-up-after-the-window", policy(), [(0.0, [1000.0], None), (45.0, [500.0], None)],
     (45.0, 5, R.SCALE_DOWN)),
    ("start-up-the-first-reading-may-scale-up", policy(), [(0.0, [2000.0], None)], (0.0, 20, R.SCALE_UP)),
    ("a-stale-sample-is-a-gap", policy(),
     steady(60) + [(75.0, [1000.0], [600.0]), (90.0, [217.0], None)], (90.0, 10, R.METRICS_RECOVERING)),
    ("a-metric-without-a-range-has-no-hold", policy(metrics=(rps(0.0),)),
     steady(60) + GAP + [(90.0, [217.0], None)], (90.0, 3, R.SCALE_DOWN)),
    ("the-window-is-per-metric-held", policy(metrics=(rps(120.0, "slow"), rps(15.0, "fast"))),
     [(t, [1000.0, 1000.0], None) for t in (0.0, 60.0, 120.0)] + [(135.0, [1000.0, NAN], None),
                                                                  (145.0, [500.0, 400.0], None)],
     (145.0, 10, R.METRICS_RECOVERING)),
    ("the-window-is-per-metric-released", policy(metrics=(rps(120.0, "slow"), rps(15.0, "fast"))),
     [(t, [1000.0, 1000.0], None) for t in (0.0, 60.0, 120.0)] + [(135.0, [1000.0, NAN], None),
                                                                  (150.0, [1000.0, 1000.0], None),
                                                                  (165.0, [500.0, 400.0], None)],
     (165.0, 5, R.SCALE_DOWN)),
    ("a-complete-metric-low-a-recovering-one-lower-is-held", policy(metrics=(rps(name="a"), rps(name="b"))),
     steady(60, m=2) + [(75.0, [1000.0, NAN], None), (90.0, [500.0, 300.0], None)],
     (90.0, 10, R.METRICS_RECOVERING)),
    ("a-complete-metric-higher-scales-up-over-a-recovering-one", policy(metrics=(rps(name="a"), rps(name="b"))),
     steady(60, m=2) + [(75.0, [1000.0, NAN], None), (90.0, [1500.0, 300.0], None)],
     (90.0, 15, R.SCALE_UP)),
    ("a-recovering-metric-higher-scales-up-over-a-complete-one", policy(metrics=(rps(name="a"), rps(name="b"))),
     steady(60, m=2) + [(75.0, [1000.0, NAN], None), (90.0, [500.0, 1300.0], None)],
     (90.0, 13, R.SCALE_UP)),
    ("a-missing-metric-still-reads-as-missing", policy(metrics=(rps(name="a"), rps(name="b"))),
     steady(60, m=2) + [(75.0, [1000.0, NAN], None), (90.0, [300.0, NAN], None)],
     (90.0, 10, R.METRICS_MISSING)),
    ("the-hpa-preset-scales-as-hpa-does", policy(hpa_semantics=True, legacy=True),
     steady(60) + GAP + [(90.0, [217.0], None)], (90.0, 3, R.SCALE_DOWN)),
]


@pytest.mark.parametrize("decide", paths(), ids=["numpy", "compiled"][:len(paths())])
@pytest.mark.parametrize("name, params, steps, expect", ROWS, ids=[r[0] for r in ROWS])
def test_recovering_readings(name, params, steps, expect, decide):
    if decide is not decide_numpy and not compiled.supports(params):
        pytest.skip("the kernel does not cover this policy (numpy only)")
    assert run(params, steps, decide=decide)[-1] == expect


def test_the_fuzz_case_a_gap_no_longer_scales_down():
    """The live fuzz's 11 -> 3: 30 s without answers (Prometheus down) under a constant 1000 rps, then the partial
    readings 217, 625 (the data came back near t=95: the 40 s range refilling), then a complete
    one: never below 10."""
    steps = steady(60) + [(75.0, [NAN], None), (90.0, [NAN], None), (105.0, [217.0], None),
                          (120.0, [625.0], None), (135.0, [1000.0], None), (150.0, [1000.0], None)]
    for decide in paths():
        out = run(policy(), steps, current0=10.0, decide=decide)
        assert min(d for _, d, _ in out) == 10, out
        assert [r for t, _, r in out if t in (105.0, 120.0, 135.0)] == [R.METRICS_RECOVERING] * 2 + [
            R.WITHIN_TOLERANCE]
    # without the hold (a window of 0) the same readings scale down to 3
    assert min(d for _, d, _ in run(policy(metrics=(rps(0.0),)), steps)) == 3


def test_recovering_marks_the_readings_within_the_window():
    usable = np.array([[True, False, True]])
    usable_since = np.array([[100.0, 100.0, np.nan]])
    partial, new = recovering(usable, usable_since, np.array([40.0, 40.0, 40.0]), 130.0)
    np.testing.assert_array_equal(new, [[100.0, np.nan, 130.0]])  # unusable: NaN; back (or first read): now
    np.testing.assert_array_equal(partial, [[True, False, True]])
    partial, _ = recovering(usable, usable_since, np.array([30.0, 30.0, 0.0]), 130.0)
    np.testing.assert_array_equal(partial, [[False, False, False]])
    partial, new = recovering(usable, None, np.array([40.0, 40.0, 40.0]), 5.0)  # a state made before it
    np.testing.assert_array_equal(new, [[5.0, np.nan, 5.0]])
    assert partial.tolist() == [[True, False, True]]


@pytest.mark.parametrize("query, window_s", [
    pytest.param('sum(rate(http_requests_total{job="a"}[40s]))', 40.0, id="range-selector"),
    pytest.param("sum(rate(x[2m])) / sum(rate(y[30s]))", 120.0, id="longest-of-two-ranges"),
    pytest.param("job:rps:sum", 0.0, id="recording-rule-naming-no-range-no-hold"),
    pytest.param("queue_length", 0.0, id="gauge-no-hold"),
    # a rule's rate over a window a fresh Prometheus does not cover reads low like the rate itself:
    # held (0 before: a fresh Prometheus scaled 6 -> 2 through one, tests/e2e/test_partial_window_live.py)
    pytest.param("namespace_deployment:http_requests:rate20s", 20.0, id="recorded-rate-by-its-name"),
    pytest.param('sum by (namespace, deployment) (job:http_requests:irate5m{code!~"5.."})', 300.0,
                 id="recorded-irate-inside-an-aggregation"),
    pytest.param("rate(x[1m]) / ignoring(pod) job:requests:avg_rate2m", 120.0, id="longest-of-range-and-rule"),
    pytest.param('up{job="a:b:rate9m"}', 0.0, id="a-label-value-is-no-series-name"),
    pytest.param("my_requests_5m", 0.0, id="no-colon-no-rule"),
    # how far back the data reaches, not the longest range (600 before: the inner rate's minute was left out)
    pytest.param("max_over_time(rate(x[1m])[10m:30s])", 660.0, id="subquery-adds-its-inner-range"),
    pytest.param("max_over_time(job:http_requests:rate5m[10m:])", 900.0, id="subquery-over-a-recorded-rate"),
    pytest.param("avg_over_time(sum(rate(x[1m]))[5m:1m]) + rate(y[20m])", 1200.0, id="longest-of-subquery-and-range"),
    pytest.param("rate(x[5m] offset 10m)", 900.0, id="offset-reads-older-data"),
    pytest.param('rate(x{path="/a[2h]"}[1m])', 60.0, id="a-bracket-in-a-label-value-is-no-range"),
    pytest.param("rate(x[1m]) # was [2h]", 60.0, id="a-bracket-in-a-comment-is-no-range"),
])
def test_the_read_window_is_the_querys_range(query, window_s):
    metric = Metric.model_validate({"name": "rps", "query": query, "target": {"averagePerReplica": 100}})
    assert compile_metric(metric).read_window_s == window_s


def test_the_hpa_preset_has_no_read_windows():
    p = policy(hpa_semantics=True)
    assert p.metric_read_windows.tolist() == [0.0]
    assert policy().metric_read_windows.tolist() == [WINDOW]


def test_the_state_follows_the_targets():
    p = policy()
    d = decide_numpy(p, Observation.of([10.0, 10.0], [10.0, 10.0], [[1000.0], [NAN]],
                                       present=[[True], [False]]), ScalingState.empty(2, p), T0)
    taken = d.state.take(np.array([1, -1, 0]))
    np.testing.assert_array_equal(taken.norm.usable_since, [[NAN], [NAN], [T0]])


def test_the_condition_says_metrics_recovering():
    p = policy()
    d = decide_numpy(p, Observation.of([10.0], [10.0], [[500.0]]), ScalingState.empty(1, p), T0)
    assert int(d.reason[0]) == R.METRICS_RECOVERING and d.record(0, "p", "t", ("rps",)).reason == "MetricsRecovering"
    cond = hpa_conditions(d.norm, d.current, np.array([[""]]), legacy=False)
    assert cond == [{"AbleToScale": "SucceededGetScale", "ScalingActive": "MetricsRecovering"}]


# -- properties: random missing masks and values

SAMPLE = st.one_of(st.floats(0, 4000, allow_nan=False), st.just(NAN))


@st.composite
def scenarios(draw):
    m = draw(st.integers(1, 3))
    metrics = tuple(MetricParams(f"m{j}", draw(st.sampled_from([MetricKind.AVERAGE_PER_REPLICA, MetricKind.VALUE])),
                                 100.0, read_window_s=draw(st.sampled_from([0.0, 15.0, 40.0, 60.0, 120.0])))
                    for j in range(m))
    down = draw(st.sampled_from([0.0, 30.0, 300.0]))
    params = policy(metrics=metrics, down_window_s=down, min_replicas=1, max_replicas=60,
                    tolerance_down=draw(st.sampled_from([0.0, 0.1])),
                    fallback_replicas=draw(st.one_of(st.none(), st.integers(1, 20))), missing_hold_s=30.0)
    n, steps = draw(st.integers(1, 3)), draw(st.integers(1, 14))
    values = np.array(draw(st.lists(SAMPLE, min_size=steps * n * m, max_size=steps * n * m))).reshape(steps, n, m)
    gaps = draw(st.lists(st.integers(0, 15), min_size=steps, max_size=steps))  # irregular cycles: 10-25 s
    current0 = np.array(draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)), float)
    return params, values, np.cumsum(np.array(gaps, float) + 10.0), current0


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_within_the_window_after_a_gap_replicas_never_fall(scenario):
    """Cycle after cycle, from the same state: where a valid reading is partial (less than its
    window after its metric was last unusable or first read), desired >= current, and it equals
    max(the plain decision's, current) (the plain decision: the same policy with no read
    windows); elsewhere it is the plain decision. MetricsRecovering is given exactly where the
    plain decision's combined proposal was below current while every metric was valid."""
    params, values, times, current0 = scenario
    plain = dataclasses.replace(params, metrics=tuple(dataclasses.replace(m, read_window_s=0.0)
                                                      for m in params.metrics))
    n = values.shape[1]
    state, cur = ScalingState.empty(n, params), current0.copy()
    since = np.full(values.shape[1:], np.nan)  # each series' first reading since it was missing (NaN: missing)
    for k, now in enumerate(T0 + times):
        obs = Observation.of(cur, cur, values[k], present=~np.isnan(values[k]))
        d = decide_numpy(params, obs, state, now)
        p = decide_numpy(plain, obs, state, now)
        since = np.where(np.isnan(values[k]), np.nan, np.where(np.isnan(since), now, since))
        partial = (d.valid & (now - since < params.metric_read_windows)).any(axis=1)
        np.testing.assert_array_equal(d.desired[partial], np.maximum(p.desired, cur)[partial])
        np.testing.assert_array_equal(d.desired[~partial], p.desired[~partial])
        assert (d.desired[partial] >= cur[partial]).all()
        held = d.reason == R.METRICS_RECOVERING
        np.testing.assert_array_equal(held, partial & d.valid.all(axis=1) & (p.norm.combined < cur))
        state, cur = d.state, d.norm.desired.copy()


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios(), st.sampled_from([0.0, 60.0]))
def test_compiled_equals_numpy_with_gaps(scenario, stale_age):
    """The kernel's decisions and state equal the numpy stages', the recovery hold included."""
    params, values, times, current0 = scenario
    params = dataclasses.replace(params, stale_after_s=30.0)
    n = values.shape[1]
    states, currents = [ScalingState.empty(n, params)] * 2, [current0.copy()] * 2
    for k, now in enumerate(T0 + times):
        ages = np.full(values.shape[1:], stale_age * (k % 3 == 1))  # stale samples: gaps too
        decisions = []
        for path, run_one in enumerate((decide_numpy, decide_module._decide_compiled)):
            obs = Observation.of(currents[path], currents[path], values[k], present=~np.isnan(values[k]),
                                 sample_age_s=ages)
            decisions.append(run_one(params, obs, states[path], now))
        assert_same(decisions[0], decisions[1], f"cycle {k}")
        np.testing.assert_array_equal(decisions[0].state.norm.usable_since, decisions[1].state.norm.usable_since)
        states = [d.state for d in decisions]
        currents = [d.norm.desired.copy() for d in decisions]
