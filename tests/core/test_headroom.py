"""Pooled headroom (core/scaling/headroom.py): the sized load, tables and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.headroom import pooled_load, pooled_values
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.core.scaling.propose import propose
from tests.core.helpers import T0

# the default policy's numbers: 85 rps per replica of 100, min 2 replicas, up tolerance 5%
TARGET, CAPACITY, REFERENCE, UP = 85.0, 100.0, 170.0, 0.05


def replicas(load: float, ready: float = math.inf) -> int:
    return math.ceil(float(pooled_load(load, TARGET, CAPACITY, REFERENCE, UP, ready)) / TARGET)


@pytest.mark.parametrize("load, expected", [
    pytest.param(0.0, 0, id="no-load"),
    pytest.param(100.0, 2, id="below-the-reference-load-as-per-replica"),
    pytest.param(170.0, 2, id="at-the-reference-load-exactly-min-replicas"),
    pytest.param(340.0, 4, id="twice-the-reference-same-as-per-replica"),
    pytest.param(1200.0, 14, id="peak-one-replica-fewer-than-per-replica-15"),
    pytest.param(3000.0, 33, id="high-load-three-fewer-than-per-replica-36"),
])
def test_replicas_for_a_load(load, expected):
    assert replicas(load) == expected


@pytest.mark.parametrize("load", [pytest.param(1200.0, id="1200-rps"), pytest.param(3000.0, id="3000-rps")])
def test_pooled_replicas_keep_the_band_and_the_queueing_spare_of_min_replicas_scaled_by_sqrt(load):
    spare_at_min = 2 * (CAPACITY - TARGET * (1 + UP))  # 21.5 rps at the reference load
    needed = load * (1 + UP) + spare_at_min * math.sqrt(load / REFERENCE)
    assert replicas(load) * CAPACITY >= needed > (replicas(load) - 1) * CAPACITY


@pytest.mark.parametrize("value", [pytest.param(float("nan"), id="nan"), pytest.param(float("inf"), id="inf"),
                                   pytest.param(-5.0, id="negative")])
def test_unusable_values_pass_through(value):
    out = float(pooled_load(value, TARGET, CAPACITY, REFERENCE, UP, math.inf))
    assert out == value or (math.isnan(out) and math.isnan(value))


@pytest.mark.parametrize("load, ready, expected", [
    pytest.param(430.0, 4.0, 6, id="saturated-4-ready-at-430-per-replica-6"),
    pytest.param(430.0, 5.0, 5, id="5-ready-serve-430-pooled-5"),
    pytest.param(1200.0, 12.0, 14, id="at-ready-capacity-exactly-pooled"),
    pytest.param(1200.0, 11.0, 15, id="saturated-11-ready-at-1200-per-replica-15"),
    pytest.param(1200.0, float("nan"), 14, id="ready-unknown-pooled"),
    pytest.param(150.0, 1.0, 2, id="saturated-below-the-reference-load-per-replica-anyway"),
])
def test_a_saturated_service_is_sized_per_replica(load, ready, expected):
    assert replicas(load, ready) == expected


def test_a_saturated_decision_sizes_per_replica_and_a_served_one_pooled():
    policy = one_metric_policy(CAPACITY)
    current = np.array([4.0, 5.0])
    obs = Observation.of(current, current, [[430.0], [430.0]])  # ready = current: 4 ready saturated, 5 serve it
    d = decide(policy, obs, ScalingState.empty(2, policy), T0)
    assert d.desired.tolist() == [6.0, 5.0]


LOADS = st.floats(0, 1e7, allow_nan=False)
READY = st.one_of(st.integers(0, 200).map(float), st.just(math.inf))
SHAPES = st.tuples(st.sampled_from([0.5, 50.0, 85.0]), st.sampled_from([1.2, 2.0, 10.0]), st.integers(1, 6),
                   st.sampled_from([0.0, 0.05, 0.1]))


@settings(max_examples=200, deadline=None)
@given(a=LOADS, b=LOADS, shape=SHAPES, ready=READY)
def test_pooled_load_is_monotone_and_never_above_the_load(a, b, shape, ready):
    target, ratio, lo, up = shape
    capacity = target * (1 + up) * ratio
    args = (target, capacity, lo * target, up, ready)
    pa, pb = float(pooled_load(a, *args)), float(pooled_load(b, *args))
    assert pa <= a * (1 + 1e-12) and pb <= b * (1 + 1e-12)
    if a <= b:
        assert pa <= pb * (1 + 1e-12)
    if a <= lo * target or a > ready * capacity:  # at most the reference load, or saturated: per replica
        assert pa == a


@settings(max_examples=200, deadline=None)
@given(load=LOADS, shape=SHAPES, fewer=READY, more=READY)
def test_more_ready_replicas_never_size_a_load_higher(load, shape, fewer, more):
    target, ratio, lo, up = shape
    fewer, more = min(fewer, more), max(fewer, more)
    args = (target, target * (1 + up) * ratio, lo * target, up)
    assert float(pooled_load(load, *args, more)) <= float(pooled_load(load, *args, fewer))


def one_metric_policy(capacity: float, lo: int = 2) -> PolicyParams:
    return PolicyParams(name="p", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, TARGET,
                                                        capacity=capacity),), min_replicas=lo, max_replicas=60,
                        tolerance_up=UP, tolerance_down=0.2)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(LOADS, st.just(float("nan"))), min_size=1, max_size=6),
       current=st.integers(0, 60))
def test_pooled_proposal_is_never_above_the_per_replica_one(values, current):
    pooled, linear = one_metric_policy(CAPACITY), one_metric_policy(0.0)
    v = np.array(values)[:, None]
    n = v.shape[0]
    cur = np.full(n, float(current))
    args = (cur, cur, cur, UP, 0.2)
    p_pooled, ok_pooled = propose(pooled.metric_kinds, pooled.metric_targets, pooled_values(pooled, v, cur), *args)
    p_linear, ok_linear = propose(linear.metric_kinds, linear.metric_targets, pooled_values(linear, v, cur), *args)
    assert (ok_pooled == ok_linear).all()
    assert (p_pooled[ok_pooled] <= p_linear[ok_linear]).all()


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.floats(0, 20000, allow_nan=False), st.just(float("nan"))), min_size=2,
                       max_size=10),
       current0=st.integers(2, 60))
def test_pooled_headroom_never_scales_down_on_a_missing_metric(values, current0):
    policy = one_metric_policy(CAPACITY)
    state, current = ScalingState.empty(1, policy), np.array([float(current0)])
    for k, x in enumerate(values):
        obs = Observation.of(current, current, [[x]], present=np.array([[not math.isnan(x)]]))
        d = decide(policy, obs, state, T0 + 15.0 * k)
        if math.isnan(x):
            assert d.desired[0] >= current[0]
        state, current = d.state, d.norm.desired.copy()


def test_no_pooled_metric_returns_the_values_themselves():
    values = np.array([[500.0]])
    assert pooled_values(one_metric_policy(0.0), values, np.array([2.0])) is values
