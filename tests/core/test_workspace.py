"""The in-place API (core/scaling/workspace.py): one workspace carried over many cycles gives the
numpy stages' decisions and states, array for array, with scale events joining the state only
for the rows the caller commits as applied (Decision.state_after's rule)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, fused
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, ScalingRules, Select, Smoothing
from controller.core.scaling.workspace import DecisionWorkspace, decide_into
from controller.model import Reason
from controller.policy import load_policies
from tests.core.helpers import T0
from tests.core.test_compiled import (DOWN_RATE, NAN, RAMPED, REPO, SAMPLE, SCRIPTED, UP_MIN, metric, params, policies,
                                      ramp)

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def assert_outputs_equal(d: Decision, ws: DecisionWorkspace, where: str) -> None:
    """The workspace's outputs are the Decision's arrays (NaN where NaN)."""
    pairs = {f"signal.{k}": (getattr(d.signal, k), getattr(ws.signal(), k))
             for k in ("values", "missing", "stale", "nonfinite", "negative", "implausible", "usable")}
    pairs.update(smoothed=(d.smoothed, ws.out_f2[1]), proposals=(d.proposals, ws.out_f2[2]),
                 valid=(d.valid, ws.out_b2[5]))
    pairs.update({f"norm.{k}": (getattr(d.norm, k), getattr(ws.norm_result(), k)) for k in
                  ("combined", "proposal", "stabilized", "desired", "limit_reason", "reason", "scaling_active")})
    if d.ramps is not None:
        pairs.update({f"ramps.{k}": (getattr(d.ramps, k), getattr(ws.ramps(), k))
                      for k in ("slope", "ahead", "proposal")})
    else:
        assert ws.ramps() is None
    for name, (x, y) in pairs.items():
        np.testing.assert_array_equal(x, y, err_msg=f"{where}: {name}")


def assert_states_equal(a: ScalingState, b: ScalingState, where: str) -> None:
    for part, fields in (("smooth", ("ewma", "ewma_at", "samples", "sample_at")),
                         ("norm", ("rec_values", "rec_times", "up_changes", "up_times", "down_changes", "down_times",
                                   "missing_since"))):
        for k in fields:
            x, y = getattr(getattr(a, part), k), getattr(getattr(b, part), k)
            assert x.shape == y.shape, f"{where}: {part}.{k} shape"
            np.testing.assert_array_equal(x, y, err_msg=f"{where}: {part}.{k}")
    assert len(a.ramp) == len(b.ramp)
    for r, (x, y) in enumerate(zip(a.ramp, b.ramp)):
        np.testing.assert_array_equal(x.values, y.values, err_msg=f"{where}: ramp[{r}].values")
        np.testing.assert_array_equal(x.times, y.times, err_msg=f"{where}: ramp[{r}].times")


def assert_pattern_holds(ws: DecisionWorkspace, where: str) -> None:
    """The kernel's derived state: every target flagged on the common pattern of recommendation
    times (vf's lock row) has exactly those times (empty slots included); every series flagged on
    the window samples' pattern (plane 6 of out_b2) has its times, and every ramp series flagged
    on its ramp's pattern (plane 7, the ramp's column) its times."""
    slots, w = ws.rec_times.shape[1], ws.sample_at.shape[2]

    def check(times, pattern, what):
        same = ((times == pattern) | (np.isnan(times) & np.isnan(pattern))).all(axis=-1)
        assert same.all(), f"{where}: {what} flagged on the pattern are not: {np.argwhere(~same).tolist()}"

    if slots and ws.rows[slots] != 0.0:
        check(ws.rec_times[ws.vf[fused._F_LOCK] != 0.0], ws.rows[:slots], "targets")
    if w and ws.rows[slots + 1 + w] != 0.0:
        check(ws.sample_at[ws.out_b2[6]], ws.rows[slots + 1:slots + 1 + w], "series")
    k_max = ws.ramp_times.shape[2]
    for r, j in enumerate(ws.params.ramp_metrics):
        b = slots + 2 + 3 * w + r * (2 * k_max + 1)
        if ws.rows[b + k_max] != 0.0:
            k = ws.params.metrics[j].ramp.slots
            check(ws.ramp_times[r, ws.out_b2[7, :, j], :k], ws.rows[b:b + k], f"ramp {r} series")


def run_in_place(policy: PolicyParams, values: np.ndarray, current0, applied=None, replicas_delta=None, ages=None,
                 present=None, ready_lag: int = 0, status_extra: float = 0.0, times=None, each=None,
                 withheld: int = 0, latest=None) -> list[Decision]:
    """Feed (steps, N, M) values to numpy's decide (its state carried through state_after) and to
    one workspace (decide_into, then commit), with the same applied rows (steps, N) and counts
    set (desired + replicas_delta), at ``times`` (steps,) (default every 15 s); every output and
    state compared each cycle. ``each(ws)``: called after each decide_into. ``withheld``: that
    many of the not-ready replicas are withheld (core/scaling/withheld.py); ``latest``: (steps, N, M)
    the ramps' latest readings (NaN: none), or None."""
    steps, n, _ = values.shape
    applied = np.ones((steps, n), bool) if applied is None else applied
    state, ws = ScalingState.empty(n, policy), DecisionWorkspace.empty(policy, n)
    current = np.asarray(current0, dtype=float).copy()
    out = []
    for k in range(steps):
        now = T0 + k * 15.0 if times is None else times[k]
        ready = np.maximum(current - ready_lag, 0.0)
        obs = Observation.of(current, ready, values[k], status=current + status_extra,
                             present=~np.isnan(values[k]) if present is None else present[k],
                             sample_age_s=None if ages is None else ages[k],
                             withheld=np.minimum(withheld, current - ready) if withheld else None,
                             latest=None if latest is None else latest[k])
        d = decide_numpy(policy, obs, state, now)
        decide_into(policy, ws, obs, now)
        assert_pattern_holds(ws, f"cycle {k}")
        if each is not None:
            each(ws)
        assert_outputs_equal(d, ws, f"cycle {k}")
        assert_states_equal(d.kept, ws.state(), f"cycle {k}, before the commit")
        replicas = d.norm.desired if replicas_delta is None else np.maximum(d.norm.desired + replicas_delta[k], 0.0)
        state = d.state_after(applied[k], replicas)
        ws.commit(applied[k], None if replicas_delta is None else replicas)
        assert_states_equal(state, ws.state(), f"cycle {k}, committed")
        current = np.where(applied[k], replicas, current)
        out.append(d)
    return out


@pytest.mark.parametrize("policy, values, current0, options, expect", SCRIPTED)
def test_workspace_equals_numpy_over_cycles_on_scripted_paths(policy, values, current0, options, expect):
    n = values.shape[1]
    applied = np.ones((values.shape[0], n), bool)
    applied[1::3, 0] = False  # target 0's action fails every third cycle: no event for it then
    decisions = run_in_place(policy, values, np.full(n, current0), applied=applied, **options)
    assert int(expect) in {int(r) for d in decisions for r in d.reason}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policy=policies(), data=st.data(), n=st.integers(1, 4), steps=st.integers(1, 14),
       ready_lag=st.integers(0, 2), status_extra=st.integers(0, 2))
def test_workspace_equals_numpy_over_cycles_on_random_inputs(policy, data, n, steps, ready_lag, status_extra):
    m = len(policy.metrics)
    size = steps * n * m
    values = np.array(data.draw(st.lists(SAMPLE, min_size=size, max_size=size))).reshape(steps, n, m)
    present = np.array(data.draw(st.lists(st.booleans(), min_size=size, max_size=size))).reshape(steps, n, m)
    ages = np.array(data.draw(st.lists(st.sampled_from([0.0, 30.0, 90.0]), min_size=size, max_size=size)))
    applied = np.array(data.draw(st.lists(st.booleans(), min_size=steps * n, max_size=steps * n))).reshape(steps, n)
    delta = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, -1.0, 1.0]), min_size=steps * n,
                                        max_size=steps * n))).reshape(steps, n)  # arbitration changed the count
    current0 = np.array(data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), dtype=float)
    run_in_place(policy, values, current0, applied=applied, replicas_delta=delta, ages=ages.reshape(steps, n, m),
                 present=present | ~np.isnan(values), ready_lag=ready_lag, status_extra=float(status_extra))


LONG_RUN_POLICIES = [
    pytest.param(params(smoothing=Smoothing.MAX, window_s=45.0, scale_down=DOWN_RATE, scale_up=UP_MIN), id="max-rates"),
    pytest.param(params(smoothing=Smoothing.MEAN, window_s=60.0, scale_up=ScalingRules.of(30, Select.MAX, [])),
                 id="mean-up-window"),
    pytest.param(params(smoothing=Smoothing.EWMA, half_life_s=30.0, fallback_replicas=4, missing_hold_s=30.0),
                 id="ewma-fallback"),
    pytest.param(params(metrics=(metric(MetricKind.UTILIZATION, 60.0, "cpu"),), legacy=True), id="legacy"),
    pytest.param(params(metrics=(RAMPED, metric(MetricKind.VALUE, 0.5, "latency"))), id="ramp-two-metrics"),
]


@pytest.mark.parametrize("policy", LONG_RUN_POLICIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_workspace_equals_numpy_over_long_irregular_runs(policy, seed):
    """Many more cycles than history slots (every ring wraps), at irregular times (cycles closer
    than planned overwrite entries still in their window; long gaps empty them; a repeated time),
    with missing series, failed actions and arbitrated counts."""
    rng = np.random.default_rng(seed)
    steps, n, m = 90, 6, len(policy.metrics)
    levels = rng.uniform(50, 3000, (1, n, m)) * (1 + 0.8 * np.sin(np.arange(steps) / 7.0))[:, None, None]
    values = levels * rng.lognormal(0, 0.3, (steps, n, m))
    values[rng.random((steps, n, m)) < 0.1] = np.nan
    gaps = rng.choice([15.0, 15.0, 15.0, 5.0, 0.0, 40.0, 400.0], steps)
    times = T0 + np.cumsum(gaps)
    applied = rng.random((steps, n)) < 0.85
    delta = rng.choice([0.0, 0.0, 0.0, 1.0, -1.0], (steps, n))
    run_in_place(policy, values, rng.integers(1, 30, n).astype(float), applied=applied, replicas_delta=delta,
                 times=times)


PATTERN_POLICIES = LONG_RUN_POLICIES[:3] + [
    pytest.param(params(metrics=(metric(MetricKind.UTILIZATION, 60.0, "cpu"),), legacy=True,
                        scale_down=ScalingRules.of(60, Select.MAX, [])), id="legacy-window"),
    pytest.param(load_policies([REPO / "policies" / "setpoint-default.yaml"])[0].params, id="default-linear-release"),
]


@pytest.mark.parametrize("policy", PATTERN_POLICIES)
@pytest.mark.parametrize("n, off, path", [pytest.param(40, 3, "some targets alone", id="few-off-the-pattern"),
                                          pytest.param(8, 5, "every target", id="most-off-the-pattern")])
def test_targets_leaving_the_common_pattern_of_times(policy, n, off, path):
    """The window pass tests each slot's time once for the targets whose recommendation times are
    the common pattern (all decided in the same cycles): targets that skip a recommendation
    (pushed above the maximum by arbitration: a forced count, no recommendation) leave it and are
    scanned alone, or every target is scanned when many are off; irregular times (a repeated time,
    long gaps), missing series and failed actions; numpy's decisions and states throughout."""
    rng = np.random.default_rng(n)
    steps, m = 70, len(policy.metrics)
    levels = rng.uniform(50, 3000, (1, n, m)) * (1 + 0.8 * np.sin(np.arange(steps) / 7.0))[:, None, None]
    values = levels * rng.lognormal(0, 0.3, (steps, n, m))
    values[rng.random((steps, n, m)) < 0.05] = np.nan
    times = T0 + np.cumsum(rng.choice([15.0] * 8 + [0.0, 40.0, 400.0], steps))
    delta = np.zeros((steps, n))
    pushed = rng.choice(n, off, replace=False)
    delta[rng.random((steps, n)) < 0.08] = 1000.0
    delta[:, np.setdiff1d(np.arange(n), pushed)] = 0.0
    applied = rng.random((steps, n)) < 0.95
    seen = []

    def record(ws):
        lock = ws.vf[fused._F_LOCK]
        if ws.rec_times.shape[1] and 0 < (lock == 0).sum():
            seen.append("every target" if (lock == 0).sum() * fused._SCAN_ALL_BELOW > n else "some targets alone")

    run_in_place(policy, values, rng.integers(2, 30, n).astype(float), applied=applied, replicas_delta=delta,
                 times=times, each=record)
    assert path in seen, f"the row does not exercise {path!r}: saw {sorted(set(seen))}"


@pytest.mark.parametrize("policy", PATTERN_POLICIES)
def test_a_clock_that_steps_back_keeps_the_patterns_exact(policy):
    """Cycle times that step back (a clock correction) and repeat: the common patterns of times
    hold whatever the order (the same comparisons as each target's own), numpy's decisions."""
    rng = np.random.default_rng(7)
    steps, n, m = 40, 12, len(policy.metrics)
    values = rng.uniform(50, 3000, (1, n, m)) * rng.lognormal(0, 0.4, (steps, n, m))
    values[rng.random((steps, n, m)) < 0.05] = np.nan
    times = T0 + np.cumsum(rng.choice([15.0, 15.0, 15.0, -20.0, -200.0, 0.0], steps))
    run_in_place(policy, values, rng.integers(2, 30, n).astype(float), times=times)


def _scaling_up(policy: PolicyParams) -> tuple[DecisionWorkspace, Observation]:
    ws = DecisionWorkspace.empty(policy, 2)
    return ws, Observation.of([3.0, 3.0], [3.0, 3.0], [[900.0], [100.0]])


def test_events_join_the_state_only_when_committed():
    policy = params()
    ws, obs = _scaling_up(policy)
    decide_into(policy, ws, obs, T0)
    assert ws.desired.tolist() == [7.0, 3.0]  # HPA's default rate: +4 pods per 15 s
    assert np.isnan(ws.up_times).all(), "decide_into recorded a scale event before any commit"
    decide_into(policy, ws, obs, T0 + 15.0)  # the previous cycle was never committed: dropped
    assert np.isnan(ws.up_times).all()
    assert ws.commit(np.array([True, True])) == 1  # row 1 keeps 3: no event
    assert ws.up_changes[0][np.isfinite(ws.up_times[0])].tolist() == [4.0]
    assert ws.commit() == 0, "a second commit of the same cycle recorded again"
    assert np.isfinite(ws.up_times).sum() == 1


def test_commit_of_unapplied_rows_and_other_counts():
    policy = params()
    ws, obs = _scaling_up(policy)
    decide_into(policy, ws, obs, T0)
    assert ws.commit(False) == 0 and np.isnan(ws.up_times).all()
    decide_into(policy, ws, obs, T0 + 15.0)
    assert ws.commit([True, False], replicas=np.array([5.0, 3.0])) == 1  # arbitration set 5, not 7
    assert ws.up_changes[0][np.isfinite(ws.up_times[0])].tolist() == [2.0]


@pytest.mark.parametrize("policy, values, current0, options, expect", SCRIPTED)
def test_the_default_commit_equals_committing_every_row_to_desired(policy, values, current0, options, expect):
    """commit() (its own kernel, commit_all_kernel) records what commit(all rows, desired) does:
    the same events and counts each cycle, up and down, on the scripted paths."""
    n = values.shape[1]
    ws, explicit = DecisionWorkspace.empty(policy, n), DecisionWorkspace.empty(policy, n)
    current = np.full(n, float(current0))
    for k in range(values.shape[0]):
        obs = Observation.of(current, current, values[k], present=~np.isnan(values[k]))
        decide_into(policy, ws, obs, T0 + 15.0 * k)
        decide_into(policy, explicit, obs, T0 + 15.0 * k)
        counts = ws.commit(), explicit.commit(np.ones(n, bool), explicit.desired.copy())
        assert counts[0] == counts[1], f"cycle {k}: events recorded {counts}"
        assert_states_equal(explicit.state(), ws.state(), f"cycle {k}")
        np.testing.assert_array_equal(ws.vf[fused._F_LAST_EVENT], explicit.vf[fused._F_LAST_EVENT])
        current = ws.desired.copy()


@pytest.mark.parametrize("policy, values, current0, options, expect", SCRIPTED)
def test_a_deferred_commit_recorded_by_the_next_decision_equals_the_commit_at_once(policy, values, current0, options,
                                                                                    expect):
    """commit() records its events in the next decide_into's kernel call (nothing reads them in
    between: no flush): the decisions (rate limits read the events), counts, latest event times
    and final state are those of committing every row to desired at once (commit_kernel)."""
    n = values.shape[1]
    ws, explicit = DecisionWorkspace.empty(policy, n), DecisionWorkspace.empty(policy, n)
    current = np.full(n, float(current0))
    for k in range(values.shape[0]):
        obs = Observation.of(current, current, values[k], present=~np.isnan(values[k]))
        decide_into(policy, ws, obs, T0 + 15.0 * k)
        decide_into(policy, explicit, obs, T0 + 15.0 * k)
        assert np.isnan(ws.deferred_at), f"cycle {k}: the kernel left the deferred commit"
        for name in ("desired", "reason"):
            np.testing.assert_array_equal(getattr(ws, name), getattr(explicit, name), err_msg=f"cycle {k}: {name}")
        np.testing.assert_array_equal(ws.out_i1, explicit.out_i1, err_msg=f"cycle {k}: limit reasons")
        counts = ws.commit(), explicit.commit(np.ones(n, bool), explicit.desired.copy())
        assert counts[0] == counts[1], f"cycle {k}: events recorded {counts}"
        assert np.isnan(ws.deferred_at) == (counts[0] == 0 and policy.legacy), f"cycle {k}: deferred"
        current = ws.desired.copy()
    np.testing.assert_array_equal(explicit.vf[fused._F_LAST_EVENT], ws.flush().vf[fused._F_LAST_EVENT])
    assert_states_equal(explicit.state(), ws.state(), "end")


@pytest.mark.parametrize("read", [
    pytest.param(lambda ws: ws.up_times, id="up-times"),
    pytest.param(lambda ws: ws.down_changes, id="down-changes"),
    pytest.param(lambda ws: ws.state().norm.up_times, id="state"),
    pytest.param(lambda ws: ws.flush().up[1].T, id="flush"),
])
def test_reading_the_events_records_a_deferred_commit_first(read):
    """Events read between commit() and the next decide_into include the deferred ones, once."""
    policy = params()
    ws, obs = _scaling_up(policy)
    decide_into(policy, ws, obs, T0)
    assert ws.commit() == 1 and not np.isnan(ws.deferred_at)
    read(ws)
    assert np.isnan(ws.deferred_at) and (ws.up[1] == T0).sum() == 1  # the raw array: recorded by the read
    decide_into(policy, ws, obs, T0 + 15.0)  # nothing deferred any more: nothing recorded twice
    assert np.isfinite(ws.up_times).sum() == 1


def test_legacy_policies_keep_no_events():
    policy = params(metrics=(MetricParams("cpu", MetricKind.UTILIZATION, 60.0),), legacy=True)
    ws, obs = _scaling_up(policy)
    decide_into(policy, ws, obs, T0)
    assert ws.desired[0] > 3 and ws.commit() == 0


@pytest.mark.parametrize("policy, split", [
    pytest.param(params(metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),),
                        scale_down=ScalingRules.of(60, Select.MAX, [])), 3, id="down-window"),
    pytest.param(params(scale_down=DOWN_RATE), 8, id="rates-over-the-numpy-events"),
])
def test_state_round_trip_and_continuing_from_a_numpy_state(policy, split):
    """The workspace made from a numpy state after ``split`` cycles continues as numpy does (its
    scale events, still inside their rate periods, limit the next cycles)."""
    values = ramp([300, 900, 100, NAN] + [100] * 8, n=3)
    state = ScalingState.empty(3, policy)
    current = np.full(3, 4.0)
    for k in range(split):  # cycles on numpy, then the rest in place from its state
        d = decide_numpy(policy, Observation.of(current, current, values[k]), state, T0 + 15.0 * k)
        state, current = d.state, d.norm.desired.copy()
    ws = DecisionWorkspace.from_state(policy, state)
    assert_states_equal(state, ws.state(), "round trip")
    limited = []
    for k in range(split, values.shape[0]):
        obs = Observation.of(current, current, values[k], present=~np.isnan(values[k]))
        d = decide_numpy(policy, obs, state, T0 + 15.0 * k)
        decide_into(policy, ws, obs, T0 + 15.0 * k)
        assert_outputs_equal(d, ws, f"cycle {k}")
        ws.commit()
        state, current = d.state, d.norm.desired.copy()
        assert_states_equal(state, ws.state(), f"cycle {k}")
        limited += [int(r) for r in d.norm.limit_reason]
    if policy.scale_down.types.size:
        assert int(Reason.RATE_LIMITED_DOWN) in limited, "the numpy events did not limit the rate"


def test_a_policy_the_kernel_does_not_cover_gets_no_workspace():
    policy = params(smoothing=Smoothing.MEDIAN, window_s=60.0)
    with pytest.raises(ValueError, match="not covered by the compiled kernel"):
        DecisionWorkspace.empty(policy, 2)


@pytest.mark.parametrize("which", [pytest.param("policy", id="another-policy"), pytest.param("size", id="other-size")])
def test_a_workspace_of_another_policy_or_size_is_refused(which):
    policy = params()
    ws = DecisionWorkspace.empty(policy, 2)
    obs = Observation.of([3.0, 3.0], [3.0, 3.0], [[900.0], [100.0]])
    if which == "policy":
        with pytest.raises(ValueError, match="workspace of policy"):
            decide_into(params(name="other"), ws, obs, T0)
    else:
        with pytest.raises(ValueError, match="shape"):
            decide_into(policy, ws, Observation.of([3.0], [3.0], [[900.0]]), T0)


def forecast_policy() -> PolicyParams:
    from tests.core.test_forecast_compiled import fparams, policy, rps  # noqa: PLC0415

    return policy(rps(fparams()))


@pytest.mark.parametrize("make_policy", [pytest.param(params, id="ewma"),
                                         pytest.param(forecast_policy, id="forecast")])
@pytest.mark.parametrize("field, bad", [
    pytest.param("present", np.ones((2, 1), bool), id="present-one-row-short"),
    pytest.param("sample_age_s", np.zeros((3, 2)), id="ages-one-column-too-many"),
    pytest.param("ready", np.full(2, 3.0), id="ready-one-short"),
    pytest.param("status", np.full(4, 3.0), id="status-one-too-many"),
    pytest.param("startup_s", np.full(2, 30.0), id="startup-one-short"),
])
def test_an_observation_of_the_wrong_shape_is_refused_before_the_state_is_touched(make_policy, field, bad):
    """The kernels do not check bounds: every array is checked first, so that a workspace kept
    across cycles (the live reconciler's) is never left half-stepped by a bad observation."""
    policy = make_policy()
    ws = DecisionWorkspace.empty(policy, 3)
    good = Observation.of(np.full(3, 3.0), np.full(3, 3.0), [[900.0], [100.0], [400.0]])
    for k in range(3):
        decide_into(policy, ws, good, T0 + 15.0 * k)
        ws.commit()
    before = ws.state()
    bad_obs = copy.copy(good)
    object.__setattr__(bad_obs, field, bad)
    with pytest.raises(ValueError, match=f"{field} \\({', '.join(map(str, bad.shape))},?\\)"):
        decide_into(policy, ws, bad_obs, T0 + 45.0)
    assert ws.pending_at is None
    assert_states_equal(before, ws.state(), "after the refused observation")
    if ws.forecast is not None:
        from tests.core.test_forecast_compiled import assert_forecast_states_equal  # noqa: PLC0415

        assert_forecast_states_equal(before.forecast, ws.state().forecast, "after the refused observation")


def test_decide_on_the_kernel_leaves_its_input_state_untouched():
    policy = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0].params
    assert compiled.supports(policy)
    values = ramp([100, 300, 700, 700, 100], n=3)
    state, current = ScalingState.empty(3, policy), np.full(3, 2.0)
    for k in range(values.shape[0]):
        before = copy.deepcopy(state)
        d = decide(policy, Observation.of(current, current, values[k]), state, T0 + 15.0 * k)
        assert_states_equal(before, state, f"cycle {k}: the input state")
        state, current = d.state, d.norm.desired.copy()
    assert (current > 2).any()



@pytest.mark.parametrize("policy, values, current0, options, expect", SCRIPTED[:3])
def test_a_decision_without_copies_shows_each_cycle_s_outputs(policy, values, current0, options, expect):
    """decision(copy=False) keeps its views of the workspace's arrays from one cycle to the next
    (made once): each cycle's Decision holds that cycle's outputs, those of decision(copy=True)."""
    n = values.shape[1]
    ws, current = DecisionWorkspace.empty(policy, n), np.full(n, float(current0))
    for k in range(values.shape[0]):
        obs = Observation.of(current, current, values[k], present=~np.isnan(values[k]))
        decide_into(policy, ws, obs, T0 + 15.0 * k)
        shared, copied = ws.decision(obs, T0 + 15.0 * k), ws.decision(obs, T0 + 15.0 * k, copy=True)
        for part in ("signal", "norm", "ramps"):
            a, b = getattr(shared, part), getattr(copied, part)
            for name in () if a is None else a.__dataclass_fields__:
                x = getattr(a, name)
                if isinstance(x, np.ndarray):
                    np.testing.assert_array_equal(x, getattr(b, name), err_msg=f"cycle {k}: {part}.{name}")
        for name in ("smoothed", "proposals", "valid"):
            np.testing.assert_array_equal(getattr(shared, name), getattr(copied, name), err_msg=f"cycle {k}: {name}")
        assert shared.now == T0 + 15.0 * k and shared.current is obs.current
        ws.commit()
        current = ws.desired.copy()
