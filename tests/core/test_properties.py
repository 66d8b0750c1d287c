"""Hypothesis properties of the decision core, over random policies and metric histories."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, RuleType, ScalingRules, Select, Smoothing
from tests.core.helpers import T0

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def rules(draw, min_window: int = 0) -> ScalingRules:
    n = draw(st.integers(0, 2))
    policies = [(draw(st.sampled_from(list(RuleType))), draw(st.integers(1, 200)), draw(st.sampled_from([15, 30, 60])))
                for _ in range(n)]
    window = draw(st.sampled_from([w for w in (0, 30, 60, 120) if w >= min_window]))
    return ScalingRules.of(window, draw(st.sampled_from(list(Select))), policies)


@st.composite
def policies(draw, legacy: bool | None = None, min_window: int = 0) -> PolicyParams:
    m = draw(st.integers(1, 3))
    metrics = tuple(MetricParams(f"m{j}", draw(st.sampled_from(list(MetricKind))), draw(st.sampled_from([0.5, 50.0, 100.0])),
                                 capacity=draw(st.sampled_from([0.0, 0.0, 200.0])),  # pooled headroom (averages)
                                 saturation_capacity=draw(st.sampled_from([0.0, 0.0, 60.0, 150.0])))
                    for j in range(m))
    lo = draw(st.integers(1, 5))
    smoothing = draw(st.sampled_from(list(Smoothing)))
    return PolicyParams(
        name="prop", metrics=metrics, min_replicas=lo, max_replicas=lo + draw(st.integers(0, 30)),
        tolerance_up=draw(st.sampled_from([0.0, 0.05, 0.1])), tolerance_down=draw(st.sampled_from([0.0, 0.1, 0.3])),
        smoothing=smoothing, half_life_s=30.0, window_s=45.0, percentile=90.0,
        scale_up=draw(rules(min_window)), scale_down=draw(rules(min_window)),
        legacy=draw(st.booleans()) if legacy is None else legacy,
        hpa_semantics=draw(st.booleans()),
        fallback_replicas=draw(st.one_of(st.none(), st.integers(lo, lo + 5))), missing_hold_s=30.0,
    )


def series(n: int, m: int, steps: int):
    """(steps, n, m) metric values spanning far below to far above any target, with gaps."""
    value = st.one_of(st.floats(0, 5000, allow_nan=False), st.just(float("nan")))
    return st.lists(st.lists(st.lists(value, min_size=m, max_size=m), min_size=n, max_size=n),
                    min_size=steps, max_size=steps).map(lambda x: np.array(x, dtype=float))


def simulate(params: PolicyParams, values: np.ndarray, current0: np.ndarray, interval_s: float = 15.0):
    """Run decide over (steps, N, M) values, applying each decision; yields (now, obs, decision)."""
    n = values.shape[1]
    state, current = ScalingState.empty(n, params), current0.astype(float)
    for k, v in enumerate(values):
        obs = Observation.of(current, current, v, present=~np.isnan(v))
        now = T0 + k * interval_s
        d = decide(params, obs, state, now)
        yield now, obs, d
        state, current = d.state, d.norm.desired.copy()


@st.composite
def runs(draw, legacy: bool | None = None, min_window: int = 0):
    p = draw(policies(legacy, min_window))
    n, steps = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    values = draw(series(n, len(p.metrics), steps))
    current0 = np.array([draw(st.integers(p.min_replicas, p.max_replicas)) for _ in range(n)], dtype=float)
    return p, values, current0


@SETTINGS
@given(runs())
def test_desired_always_within_bounds(run):
    p, values, current0 = run
    for _, _, d in simulate(p, values, current0):
        assert (d.desired >= p.min_replicas).all() and (d.desired <= p.max_replicas).all()


@SETTINGS
@given(runs())
def test_no_scale_down_while_any_metric_is_missing(run):
    p, values, current0 = run
    for _, obs, d in simulate(p, values, current0):
        missing = np.isnan(obs.values).any(axis=1)
        assert not (missing & (d.desired < obs.current)).any()


def with_negatives(values: np.ndarray, draw) -> np.ndarray:
    """The same values with some samples made negative (a broken exporter or query)."""
    mask = np.array(draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size)),
                    dtype=bool).reshape(values.shape)
    return np.where(mask, -np.abs(np.nan_to_num(values, nan=1.0)) - draw(st.sampled_from([1e-9, 1.0, 1e6])), values)


@st.composite
def runs_with_negatives(draw):
    p, values, current0 = draw(runs())
    return p, with_negatives(values, draw), current0


@SETTINGS
@given(runs_with_negatives())
def test_no_scale_down_caused_by_a_negative_sample(run):
    p, values, current0 = run
    for _, obs, d in simulate(p, values, current0):
        negative = (obs.values < 0).any(axis=1)
        assert not (negative & (d.desired < obs.current)).any()
        assert not (d.signal.usable & (obs.values < 0)).any()  # never used as a value


@SETTINGS
@given(runs(legacy=False, min_window=60))
def test_no_direction_reversal_inside_a_stabilization_window(run):
    p, values, current0 = run
    last_up = np.full(values.shape[1], -np.inf)
    last_down = np.full(values.shape[1], -np.inf)
    for now, obs, d in simulate(p, values, current0):
        up, down = d.desired > obs.current, d.desired < obs.current
        assert not (down & (now - last_up < p.scale_down.window_s)).any()
        assert not (up & (now - last_down < p.scale_up.window_s)).any()
        last_up, last_down = np.where(up, now, last_up), np.where(down, now, last_down)


@SETTINGS
@given(runs())
def test_batched_equals_row_by_row(run):
    p, values, current0 = run
    batched = list(simulate(p, values, current0))
    for i in range(values.shape[1]):
        alone = list(simulate(p, values[:, i:i + 1], current0[i:i + 1]))
        for (_, _, b), (_, _, a) in zip(batched, alone):
            assert b.desired[i] == a.desired[0]
            assert b.reason[i] == a.reason[0]
            np.testing.assert_array_equal(b.proposals[i], a.proposals[0])
            np.testing.assert_array_equal(b.smoothed[i], a.smoothed[0])
