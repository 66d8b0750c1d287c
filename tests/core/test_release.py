"""``scaleDown.release: linear`` (core/scaling/stabilize.py) and its place in decide."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.core.scaling.stabilize import linear_release_ceiling, stabilize_with_behavior
from controller.model import Reason
from tests.core.helpers import T0, draw_run, no_limits, replicas_and_reasons

INTERVAL, WINDOW = 15.0, 900.0
NOW = T0 + 3600.0
NAN = float("nan")

CEILINGS = [  # proposal, [(value, age s)], window, expected ceiling
    pytest.param(4, [(10, 60)], WINDOW, 10, id="a-recent-peak-holds-nearly-all-rounded-up"),
    pytest.param(4, [(10, 450)], WINDOW, 7, id="half-way-holds-half-the-excess"),
    pytest.param(4, [(10, 900)], WINDOW, 4, id="at-the-window-end-nothing"),
    pytest.param(4, [(5, 800)], WINDOW, 5, id="a-sliver-of-a-pod-rounds-up"),
    pytest.param(4, [(10, 850), (6, 100)], WINDOW, 6, id="the-highest-held-share-wins-not-the-highest-value"),
    pytest.param(4, [(2, 10)], WINDOW, 4, id="below-the-proposal-never-lowers-it"),
    pytest.param(4, [(NAN, NAN)], WINDOW, 4, id="an-empty-history-holds-the-proposal"),
    pytest.param(4, [(10, 60)], 0.0, 4, id="no-window-no-hold"),
]


@pytest.mark.parametrize("proposal, entries, window_s, expected", CEILINGS)
def test_linear_release_ceiling(proposal, entries, window_s, expected):
    values = np.array([[v for v, _ in entries]])
    times = np.array([[NOW - a for _, a in entries]])
    out = linear_release_ceiling(np.array([float(proposal)]), values, times, NOW, window_s)
    assert out.tolist() == [expected]


def policy(linear: bool, window_s: float = WINDOW, **overrides) -> PolicyParams:
    base = dict(name="r", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),), min_replicas=1,
                max_replicas=60, tolerance_up=0.0, tolerance_down=0.1, scale_down_linear_release=linear,
                **no_limits(window_s))
    base.update(overrides)
    return PolicyParams(**base)


def run(p: PolicyParams, values: list[float], current: float) -> list[tuple[int, Reason]]:
    return replicas_and_reasons(p, values, current, INTERVAL)


def test_a_burst_is_released_over_the_window_not_at_its_end():
    """One minute at 2,000 rps, then 400: HPA's window keeps 20 pods for 15 minutes and drops to 4
    in one step; the linear release comes down over the same window, holding fewer pod-minutes,
    and both reach 4 when the window has passed."""
    load = [400.0] * 4 + [2000.0] * 4 + [400.0] * 80
    expire = [n for n, _ in run(policy(False), load, 4.0)]
    linear_run = run(policy(True), load, 4.0)
    linear = [n for n, _ in linear_run]
    assert max(expire) == max(linear) == 20
    assert len({n for n in expire[8:]}) == 2  # 20 held, then 4: one step
    assert len({n for n in linear[8:]}) > 5  # a staircase
    assert all(a >= b for a, b in zip(linear[7:], linear[8:]))  # only ever down after the burst
    assert all(lo <= hi for lo, hi in zip(linear, expire))
    assert sum(linear) < sum(expire) and expire[-1] == linear[-1] == 4
    assert Reason.STABILIZED_DOWN in {r for _, r in linear_run}


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def runs(draw):
    lo = draw(st.integers(1, 4))
    p = policy(True, draw(st.sampled_from([0.0, 60.0, 300.0])), min_replicas=lo,
               max_replicas=lo + draw(st.integers(0, 40)), tolerance_down=draw(st.sampled_from([0.0, 0.1, 0.2])),
               scale_down_min_step=draw(st.sampled_from([0.0, 0.2])))
    return draw_run(draw, p, lo)


@SETTINGS
@given(runs())
def test_linear_release_only_ever_releases_what_the_window_holds(run_):
    """Same state and observation with and without the linear release: never more replicas, never
    below the cycle's own proposal where the plain window would not go below it either, never a
    scale-up the plain window would not make, and never a scale-down on a missing metric."""
    p, values, currents = run_
    plain = dataclasses.replace(p, scale_down_linear_release=False)
    state = ScalingState.empty(values.shape[1], p)
    for k, (v, current) in enumerate(zip(values, currents)):
        obs = Observation.of(current, current, v[:, None], present=~np.isnan(v[:, None]))
        now = T0 + k * INTERVAL
        linear, held = decide(p, obs, state, now), decide(plain, obs, state, now)
        assert (linear.desired <= held.desired).all()
        assert not ((linear.desired > current) & (held.desired <= current)).any()
        assert not ((linear.desired < current) & np.isnan(v)).any()
        floor = np.minimum(current, linear.norm.proposal)  # a scale-down stops at the proposal or above
        assert (linear.norm.stabilized >= floor).all()
        state = linear.state


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(0, 2000)), min_size=1, max_size=12),
       st.integers(0, 40), st.integers(0, 40), st.sampled_from([60.0, 300.0, 900.0]))
def test_the_linear_ceiling_lies_between_the_proposal_and_the_window_max(entries, proposal, current, window_s):
    values = np.array([[float(v) for v, _ in entries]])
    times = np.array([[NOW - a for _, a in entries]])
    p, cur = np.array([float(proposal)]), np.array([float(current)])
    ceiling = linear_release_ceiling(p, values, times, NOW, window_s)
    highest = np.maximum(p, values.max(axis=1, initial=-np.inf, where=times > NOW - window_s))
    assert p[0] <= ceiling[0] <= highest[0] and ceiling[0] == np.floor(ceiling[0])
    linear = stabilize_with_behavior(cur, p, values, times, NOW, 0.0, window_s, linear_release=True)
    expire = stabilize_with_behavior(cur, p, values, times, NOW, 0.0, window_s)
    assert min(current, proposal) <= linear[0] <= expire[0]


@pytest.mark.parametrize("path", [pytest.param(decide, id="compiled-or-default"),
                                  pytest.param(decide_numpy, id="numpy")])
def test_a_frozen_sample_releases_nothing(path):
    """After a burst the load reads 400 rps: fresh samples release the held pods cycle by cycle,
    the same value from a sample a minute old (an exporter stuck, not yet stale) holds them all,
    as the plain window does: only new evidence releases capacity."""
    p = policy(True)
    state, current = ScalingState.empty(1, p), 4.0
    for k, v in enumerate([2000.0] * 4):  # the burst: 20 pods
        d = path(p, Observation.of([current], [current], [[v]]), state, T0 + 600 + k * INTERVAL)
        state, current = d.state, float(d.desired[0])
    assert current == 20
    now = T0 + 600 + 4 * INTERVAL + 300.0  # five minutes later: a third of the window gone

    def after(age_s: float) -> float:
        obs = Observation.of([current], [current], [[400.0]], sample_age_s=[[age_s]])
        return float(path(p, obs, state, now).desired[0])

    assert after(0.0) < 20  # released part of the burst
    assert after(INTERVAL) < 20  # one interval old is still this cycle's evidence
    assert after(60.0) == 20  # frozen: held, as the plain window holds
