"""The ramps' common pattern of sample times in the fused kernel (core/scaling/fused.py, _ramp_plan):
a ramp series whose sample times are the pattern's reads the slot a window ago and writes the
slot of this cycle's sample as listed once per call; the others (a missing or stale sample, a
series never sampled, a workspace made from a state whose series differ) scan their own slots
as before and rejoin when their times match. Both paths give the numpy stages' decisions and
states, and the same as a workspace forced onto the per-series path every cycle, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling.decide import Observation, ScalingState, decide_numpy
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, RampParams, Smoothing
from controller.core.scaling.workspace import DecisionWorkspace, decide_into
from controller.policy import load_policies
from tests.core.helpers import T0
from tests.core.test_compiled import REPO, SAMPLE, metric, params
from tests.core.test_workspace import assert_outputs_equal, assert_pattern_holds, assert_states_equal

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

DEFAULT = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0].params
RAMPED_60 = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, ramp=RampParams(lead_s=75.0, window_s=60.0))
RAMPED_30 = MetricParams("req", MetricKind.VALUE, 500.0, ramp=RampParams(lead_s=45.0, window_s=30.0, interval_s=10.0))
TWO_RAMPS = params(metrics=(RAMPED_60, metric(MetricKind.VALUE, 0.5, "latency"), RAMPED_30))


def on_pattern(ws: DecisionWorkspace) -> np.ndarray:
    """(N, R) bool: the ramp series flagged on their ramp's pattern (the path of the next cycle)."""
    return ws.out_b2[7][:, list(ws.params.ramp_metrics)].copy()


def run_paths(policy: PolicyParams, values, present=None, ages=None, times=None, state=None, current0=10.0):
    """Feed (steps, N, M) values to numpy's decide_numpy, to a workspace (the pattern where the
    series follow it) and to a workspace forced onto the per-series path (every flag cleared
    before each cycle), every change committed; every output and state compared each cycle.
    ``state``: the ScalingState both workspaces start from (default: empty). Returns the flags
    (steps, N, R) after each cycle."""
    steps, n, m = values.shape
    state = ScalingState.empty(n, policy) if state is None else state
    ws, alone = DecisionWorkspace.from_state(policy, state), DecisionWorkspace.from_state(policy, state)
    current = np.full(n, current0)
    flags = []
    for k in range(steps):
        now = T0 + 15.0 * k if times is None else times[k]
        obs = Observation.of(current, current, values[k],
                             present=~np.isnan(values[k]) if present is None else present[k],
                             sample_age_s=None if ages is None else ages[k])
        d = decide_numpy(policy, obs, state, now)
        alone.out_b2[7] = False  # the per-series path for every ramp series
        decide_into(policy, ws, obs, now)
        decide_into(policy, alone, obs, now)
        where = f"cycle {k}"
        assert_pattern_holds(ws, where)
        assert_outputs_equal(d, ws, where)
        assert_outputs_equal(d, alone, where + " (per-series path)")
        assert_states_equal(d.kept, ws.state(), where)
        assert_states_equal(d.kept, alone.state(), where + " (per-series path)")
        flags.append(on_pattern(ws))
        state = d.state_after(np.ones(n, bool), d.norm.desired)
        ws.commit()
        alone.commit()
        current = d.norm.desired.copy()
    return np.array(flags)


def levels(steps: int, n: int, m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 2000, (1, n, m)) * (1 + 0.6 * np.sin(np.arange(steps) / 5.0))[:, None, None]
    return base * rng.lognormal(0, 0.2, (steps, n, m))


def _every_series(values):
    return values


def _one_missing_sample(values):
    values[5, 1, 0] = np.nan
    return values


def _one_series_never_sampled(values):
    values[:, 2, 0] = np.nan
    return values


PATTERN_ROWS = [
    # (policy, values edit, cycle after which a 400 s gap outdates every slot (None: none), the
    # series (row, off at cycle) without a sample (of the first metric), the series off the first
    # ramp's pattern after the last cycle)
    pytest.param(DEFAULT, _every_series, None, None, [], id="default-every-series-on-the-pattern"),
    # a missed sample leaves the series' ring one slot behind the pattern's: the per-series path
    pytest.param(DEFAULT, _one_missing_sample, None, (1, 5), [1], id="default-a-missing-sample-leaves-the-pattern"),
    # once a gap has outdated every slot, both rings refill from slot 0 in the same order
    pytest.param(DEFAULT, _one_missing_sample, 20, (1, 5), [], id="default-a-missing-sample-rejoins-after-a-gap"),
    pytest.param(DEFAULT, _one_series_never_sampled, None, (2, 5), [2], id="default-a-series-never-sampled-stays-off"),
    pytest.param(TWO_RAMPS, _every_series, None, None, [], id="two-ramps-of-different-slot-counts"),
    pytest.param(TWO_RAMPS, _one_missing_sample, 20, (1, 5), [],
                 id="two-ramps-a-missing-sample-rejoins-after-a-gap"),
]


@pytest.mark.parametrize("policy, edit, gap_after, missing, off_at_end", PATTERN_ROWS)
def test_ramp_series_follow_the_common_pattern_and_leave_it_exactly(policy, edit, gap_after, missing, off_at_end):
    """Regular cycles: after the first cycle every sampled series follows its ramp's pattern (the
    slots listed once per call); a series without a sample leaves it for the per-series path, and
    rejoins once its times are the pattern's again. numpy's and the per-series path's decisions
    and states throughout."""
    steps, n, m = 40, 6, len(policy.metrics)
    gaps = np.full(steps, 15.0)
    if gap_after is not None:
        gaps[gap_after + 1] = 400.0
    flags = run_paths(policy, edit(levels(steps, n, m)), times=T0 + np.cumsum(gaps))
    sampled = [i for i in range(n) if missing is None or i != missing[0]]
    assert flags[1:4, sampled].all(), "sampled series not on the pattern"
    if missing is not None:
        i, k = missing
        assert not flags[k, i, 0], "a series without a sample stayed on the pattern"  # its first metric's
    expect = np.ones((n, flags.shape[2]), bool)
    expect[off_at_end, 0] = False
    assert (flags[-1] == expect).all(), f"flags after the last cycle {flags[-1].tolist()}"


def test_stale_samples_of_differing_ages_take_the_per_series_path():
    """Samples older than stale_after are not usable: not written, the series off the pattern
    that cycle; differing ages per series and cycle."""
    steps, n = 30, 8
    rng = np.random.default_rng(3)
    ages = rng.choice([0.0, 10.0, 30.0, 200.0], (steps, n, 1), p=[0.6, 0.2, 0.1, 0.1])
    flags = run_paths(DEFAULT, levels(steps, n, 1, 3), ages=ages)
    stale = ages[:, :, 0] > DEFAULT.stale_after_s
    assert stale.any() and not flags[:, :, 0][stale].any(), "a stale series stayed on the pattern"
    assert flags[:, :, 0].any()


def test_a_workspace_from_a_state_whose_first_series_was_never_sampled_adopts_a_sampled_one():
    """A workspace made from a numpy state: the pattern starts as series 0's times. Series 0 was
    never sampled and the others were, so none matches; the pattern then takes the times of the
    first series that wrote a sample, and every sampled series is on it the cycle after."""
    steps, n = 12, 5
    values = levels(steps + 6, n, 1, 5)
    values[:, 0, 0] = np.nan
    state, current = ScalingState.empty(n, DEFAULT), np.full(n, 10.0)
    for k in range(6):  # numpy's own cycles first
        d = decide_numpy(DEFAULT, Observation.of(current, current, values[k], present=~np.isnan(values[k])), state,
                         T0 + 15.0 * k - 90.0)
        state, current = d.state, d.norm.desired.copy()
    flags = run_paths(DEFAULT, values[6:], state=state, times=T0 + 15.0 * np.arange(steps), current0=10.0)
    assert not flags[0, 1:, 0].any(), "series matched series 0's empty times"
    assert flags[1:, 1:, 0].all() and not flags[:, 0, 0].any()


def test_irregular_times_and_a_clock_stepping_back():
    """Repeated times, long gaps (every slot outdated), a clock stepping back: the pattern's slots
    are the per-series scans' on any times."""
    steps, n = 50, 6
    rng = np.random.default_rng(11)
    values = levels(steps, n, 3, 11)
    values[rng.random(values.shape) < 0.08] = np.nan
    times = T0 + np.cumsum(rng.choice([15.0] * 6 + [0.0, 7.0, 40.0, 400.0, -30.0], steps))
    flags = run_paths(TWO_RAMPS, values, times=times)
    assert flags.any() and not flags.all()


@st.composite
def ramp_policies(draw) -> PolicyParams:
    """One to three metrics, at least one with a ramp (windows that do and do not divide by the
    interval, so differing slot counts), any smoothing the kernel covers."""
    m = draw(st.integers(1, 3))
    ramped = draw(st.lists(st.booleans(), min_size=m, max_size=m).filter(any))
    metrics = tuple(MetricParams(f"m{j}", draw(st.sampled_from(list(MetricKind))), draw(st.sampled_from([0.5, 100.0])),
                                 ramp=RampParams(lead_s=draw(st.sampled_from([0.0, 75.0])),
                                                 window_s=draw(st.sampled_from([15.0, 30.0, 40.0, 60.0])),
                                                 interval_s=draw(st.sampled_from([10.0, 15.0])))
                                 if ramped[j] else None)
                    for j in range(m))
    return PolicyParams(name="ramps", metrics=metrics, min_replicas=1, max_replicas=40, stale_after_s=60.0,
                        smoothing=draw(st.sampled_from([Smoothing.NONE, Smoothing.EWMA, Smoothing.MAX])),
                        half_life_s=30.0, window_s=45.0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policy=ramp_policies(), data=st.data(), n=st.integers(1, 5), steps=st.integers(1, 16))
def test_pattern_and_per_series_paths_agree_on_random_inputs(policy, data, n, steps):
    """Random readings (NaN, inf, negative), absent series, differing ages (fresh, old, stale) and
    irregular cycle times: the pattern path, the per-series path and numpy agree bit for bit."""
    m = len(policy.metrics)
    size = steps * n * m
    values = np.array(data.draw(st.lists(SAMPLE, min_size=size, max_size=size))).reshape(steps, n, m)
    present = np.array(data.draw(st.lists(st.booleans(), min_size=size, max_size=size))).reshape(steps, n, m)
    ages = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, 30.0, 90.0]), min_size=size,
                                       max_size=size))).reshape(steps, n, m)
    gaps = np.array(data.draw(st.lists(st.sampled_from([15.0, 15.0, 15.0, 10.0, 0.0, 45.0, 300.0]), min_size=steps,
                                       max_size=steps)))
    run_paths(policy, values, present=present | ~np.isnan(values), ages=ages, times=T0 + np.cumsum(gaps))
