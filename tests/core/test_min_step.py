"""The minimum scale-down step (core/scaling/min_step.py) and its place in decide."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.min_step import hold_small_steps
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.model import Reason
from tests.core.helpers import T0, draw_run, no_limits, replicas_and_reasons

INTERVAL = 15.0

STEPS = [  # current, stabilized, share, expected
    pytest.param(10, 9, 0.2, 10, id="one-of-ten-held"),
    pytest.param(10, 8, 0.2, 8, id="two-of-ten-go"),
    pytest.param(10, 3, 0.2, 3, id="a-big-step-goes"),
    pytest.param(4, 3, 0.2, 3, id="one-pod-is-always-allowed"),
    pytest.param(6, 5, 0.2, 6, id="one-of-six-held-floor-4.8"),
    pytest.param(5, 4, 0.2, 4, id="floor-of-exactly-four"),
    pytest.param(10, 12, 0.2, 12, id="a-scale-up-untouched"),
    pytest.param(10, 10, 0.2, 10, id="no-change-untouched"),
    pytest.param(10, 9, 0.0, 9, id="share-0-any-step"),
    pytest.param(30, 26, 0.15, 30, id="four-of-thirty-under-4.5-held"),
    pytest.param(30, 25, 0.15, 25, id="five-of-thirty-over-4.5-go"),
]


@pytest.mark.parametrize("current, stabilized, share, expected", STEPS)
def test_hold_small_steps(current, stabilized, share, expected):
    out = hold_small_steps(np.array([float(current)]), np.array([float(stabilized)]), share)
    assert out[0] == expected


def policy(share: float, window_s: float = 60.0, **overrides) -> PolicyParams:
    base = dict(name="m", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),), min_replicas=1,
                max_replicas=60, tolerance_up=0.0, tolerance_down=0.1, scale_down_min_step=share, **no_limits(window_s))
    base.update(overrides)
    return PolicyParams(**base)


def run(p: PolicyParams, values: list[float], current: float) -> list[tuple[int, Reason]]:
    return replicas_and_reasons(p, values, current, INTERVAL)


def test_a_slow_decline_steps_down_in_bigger_steps():
    """20 pods as load falls 5% per minute: without a minimum step the 1-minute window lets it go a
    pod or two at a time; with 20% (the down tolerance here) every step removes at least 4."""
    load = [2000.0 * 0.95 ** (k / 4) for k in range(120)]
    free = [n for n, _ in run(policy(0.0), load, 20.0)]
    held_run = run(policy(0.2), load, 20.0)
    held = [n for n, _ in held_run]
    downs = lambda seq: [(a, b) for a, b in zip(seq, seq[1:]) if b < a]  # noqa: E731
    assert min(a - b for a, b in downs(free)) == 1  # the plain window steps a pod at a time
    assert all(b <= np.floor(a * 0.8) for a, b in downs(held))
    assert len(downs(held)) < len(downs(free))
    assert held[-1] <= free[-1] + 2  # it still follows the load down
    assert Reason.STABILIZED_DOWN in {r for _, r in held_run}  # a held step reads as stabilization


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def runs(draw):
    lo = draw(st.integers(1, 4))
    p = policy(draw(st.sampled_from([0.1, 0.2, 0.5])), draw(st.sampled_from([0.0, 60.0, 300.0])), min_replicas=lo,
               max_replicas=lo + draw(st.integers(0, 40)), tolerance_down=draw(st.sampled_from([0.0, 0.1, 0.2])))
    return draw_run(draw, p, lo)


@SETTINGS
@given(runs())
def test_the_min_step_only_ever_holds_replicas_up(run_):
    """Same state and observation with and without the minimum step: never fewer replicas, never
    a scale-down the plain policy would not make, and never a scale-down on a missing metric."""
    p, values, currents = run_
    plain = dataclasses.replace(p, scale_down_min_step=0.0)
    state = ScalingState.empty(values.shape[1], p)
    for k, (v, current) in enumerate(zip(values, currents)):
        obs = Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None]))
        now = T0 + k * INTERVAL
        held, free = decide(p, obs, state, now), decide(plain, obs, state, now)
        assert (held.desired >= free.desired).all()
        assert not ((held.desired < current) & (free.desired >= current)).any()
        assert not ((held.desired < current) & np.isnan(v)).any()
        state = held.state
