"""Health checks: the alert state machine with hysteresis, missing data, smoothing, and pod scope."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.health.checks import CheckTable, PodState, PodTable, evaluate, match_keys
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Direction, Phase, Remedy, Scope
from controller.core.scaling.params import Smoothing
from tests.core.healing import T0, check, params, pod_check

OK, PENDING, FIRING = "ok", "pending", "firing"
NAN = math.nan
_NAMES = {int(p): p.name.lower() for p in Phase}


def phases(c, samples: list[tuple[float, float]]) -> list[str]:
    """Feed ``[(t, value)]`` to one workload check on one target; the phase after each sample."""
    table = CheckTable.empty(1, (c,), 15.0)
    out = []
    for t, v in samples:
        _, _, table = evaluate((c,), np.array([[v]]), np.array([[not math.isnan(v)]]), table, T0 + t)
        out.append(_NAMES[int(table.phase[0, 0])])
    return out


ABOVE = check(unhealthy=0.05, for_s=30.0, recovered=0.02, recovered_for_s=30.0)


@pytest.mark.parametrize("c,samples,expect", [
    pytest.param(ABOVE, [(0, 0.01), (15, 0.01)], [OK, OK], id="healthy-stays-ok"),
    pytest.param(ABOVE, [(0, 0.1), (15, 0.1), (30, 0.1)], [PENDING, PENDING, FIRING],
                 id="pending-then-firing-after-for"),
    pytest.param(ABOVE, [(0, 0.1), (15, 0.1), (29, 0.1)], [PENDING, PENDING, PENDING],
                 id="not-firing-before-for-has-elapsed"),
    pytest.param(ABOVE, [(0, 0.1), (15, 0.01), (30, 0.1)], [PENDING, OK, PENDING],
                 id="pending-that-stops-holding-goes-back-to-ok"),
    pytest.param(ABOVE, [(0, 0.1), (15, 0.03), (30, 0.1)], [PENDING, OK, PENDING],
                 id="pending-in-the-band-goes-back-to-ok"),
    pytest.param(check(for_s=0.0), [(0, 0.1)], [FIRING], id="zero-for-fires-on-the-first-sample"),
    pytest.param(ABOVE, [(0, 0.1), (30, 0.1), (45, 0.03), (60, 0.03), (300, 0.03)],
                 [PENDING, FIRING, FIRING, FIRING, FIRING], id="hysteresis-band-keeps-firing"),
    pytest.param(ABOVE, [(0, 0.1), (30, 0.1), (45, 0.01), (60, 0.01), (75, 0.01)],
                 [PENDING, FIRING, FIRING, FIRING, OK], id="clears-after-recovered-for"),
    pytest.param(ABOVE, [(0, 0.1), (30, 0.1), (45, 0.01), (60, 0.03), (75, 0.01), (90, 0.01), (105, 0.01)],
                 [PENDING, FIRING, FIRING, FIRING, FIRING, FIRING, OK], id="band-restarts-the-recovery-timer"),
    pytest.param(check(recovered_for_s=0.0), [(0, 0.1), (30, 0.1), (45, 0.01)], [PENDING, FIRING, OK],
                 id="zero-recovered-for-clears-at-once"),
    pytest.param(ABOVE, [(0, 0.05), (30, 0.05)], [OK, OK], id="exactly-on-the-threshold-is-not-unhealthy"),
    pytest.param(ABOVE, [(0, NAN), (15, NAN), (30, NAN), (600, NAN)], [OK, OK, OK, OK],
                 id="missing-data-never-fires"),
    pytest.param(ABOVE, [(0, 0.1), (15, NAN), (30, NAN), (45, NAN)], [PENDING, PENDING, PENDING, PENDING],
                 id="missing-data-freezes-a-pending-check"),
    pytest.param(ABOVE, [(0, 0.1), (15, NAN), (45, 0.1)], [PENDING, PENDING, FIRING],
                 id="condition-seen-on-both-sides-of-a-gap-has-held-through-it"),
    pytest.param(ABOVE, [(0, 0.1), (30, 0.1), (45, NAN), (600, NAN)], [PENDING, FIRING, FIRING, FIRING],
                 id="missing-data-never-clears-a-firing-check"),
    pytest.param(check(fire_on_missing=True), [(0, NAN), (15, NAN), (30, NAN)], [PENDING, PENDING, FIRING],
                 id="fire-on-missing-fires-after-for"),
    pytest.param(check(fire_on_missing=True), [(0, 0.1), (30, 0.1), (45, NAN), (60, 0.01), (90, 0.01)],
                 [PENDING, FIRING, FIRING, FIRING, OK], id="fire-on-missing-blocks-recovery-while-missing"),
    pytest.param(check(direction=Direction.BELOW, unhealthy=0.5, recovered=0.8),
                 [(0, 0.4), (30, 0.4), (45, 0.7), (60, 0.9), (90, 0.9)], [PENDING, FIRING, FIRING, FIRING, OK],
                 id="below-direction-with-its-band"),
    pytest.param(ABOVE, [(0, math.inf), (30, math.inf)], [OK, OK], id="non-finite-counts-as-missing"),
])
def test_state_machine(c, samples, expect):
    assert phases(c, samples) == expect


def test_times_of_each_phase_are_kept():
    table = CheckTable.empty(1, (ABOVE,), 15.0)
    for t, v in [(0, 0.1), (15, 0.1), (30, 0.1), (45, 0.01)]:
        _, _, table = evaluate((ABOVE,), np.array([[v]]), np.array([[True]]), table, T0 + t)
    assert table.active_since[0, 0] == T0 and table.fired_at[0, 0] == T0 + 30
    assert table.recovering_since[0, 0] == T0 + 45 and table.changed_at[0, 0] == T0 + 30


@pytest.mark.parametrize("smoothing,samples,expect", [
    pytest.param(dict(smoothing=Smoothing.EWMA, half_life_s=60.0),
                 [(0, 0.0), (15, 0.2), (30, 0.0), (45, 0.0)], [OK, OK, OK, OK],
                 id="ewma-one-spike-does-not-fire"),
    pytest.param(dict(smoothing=Smoothing.EWMA, half_life_s=60.0),
                 [(0, 0.0), (15, 0.2), (30, 0.2), (45, 0.2), (60, 0.2)], [OK, OK, PENDING, PENDING, FIRING],
                 id="ewma-sustained-fires-later"),
    pytest.param(dict(smoothing=Smoothing.MAX, window_s=45.0),
                 [(0, 0.0), (15, 1.0), (30, 0.0), (45, 0.0), (60, 0.0)], [OK, PENDING, PENDING, FIRING, OK],
                 id="window-max-holds-a-spike-for-the-window"),
    pytest.param(dict(smoothing=Smoothing.MEDIAN, window_s=45.0),
                 [(0, 0.0), (15, 0.0), (30, 1.0), (45, 0.0)], [OK, OK, OK, OK], id="window-median-ignores-a-spike"),
])
def test_smoothing_per_check(smoothing, samples, expect):
    c = check(for_s=30.0, recovered_for_s=0.0, **smoothing)
    assert phases(c, samples) == expect


# --- pod scope -----------------------------------------------------------------------------


@pytest.mark.parametrize("old,new,expect", [
    pytest.param([], ["a", "b"], [-1, -1], id="all-new"),
    pytest.param(["a", "b", "c"], ["c", "a"], [2, 0], id="reordered-and-one-gone"),
    pytest.param(["a", "b"], ["b", "x"], [1, -1], id="one-replaced-by-a-new-name"),
    pytest.param(["pod-10", "pod-1"], ["pod-1", "pod-10", "pod-100"], [1, 0, -1], id="prefixes-do-not-match"),
    pytest.param(["a"], [], [], id="no-pods-left"),
    pytest.param(["a", "b", "a"], ["a", "b"], [0, 1], id="a-key-twice-before-is-matched-to-its-first-row"),
])
def test_match_keys(old, new, expect):
    assert match_keys(np.asarray(old, dtype=str), np.asarray(new, dtype=str)).tolist() == expect


def test_duplicate_pod_keys_are_refused():
    with pytest.raises(ValueError, match="unique"):
        match_keys(np.asarray(["a"]), np.asarray(["b", "b"]))


def _pods(names, values, rows=None):
    rows = [0] * len(names) if rows is None else rows
    return PodTable.of(rows, names, np.asarray(values, float).reshape(-1, 1), checks=1)


def test_pod_state_follows_the_pod_not_the_row():
    c = pod_check(for_s=30.0)
    p = params(c)
    state = HealthState.empty(1, p)
    seq = [(0, ["a", "b", "c"], [1.0, 0.0, 0.0]), (15, ["c", "a", "b"], [0.0, 1.0, 0.0]),
           (30, ["b", "a", "c"], [0.0, 1.0, 0.0])]
    for t, names, vals in seq:
        d = heal(p, HealthObservation.of([3], checks=1, pods=_pods(names, vals)), state, T0 + t)
        state = d.state
    assert d.firing_pods(0, "mem") == ("a",)
    assert d.view.firing[0, 0] == 1 and d.view.pods[0, 0] == 3


def test_a_replacement_pod_starts_ok():
    c = pod_check(for_s=0.0)
    p = params(c)
    d = heal(p, HealthObservation.of([2], checks=1, pods=_pods(["a", "b"], [1.0, 0.0])), HealthState.empty(1, p), T0)
    assert d.firing_pods(0, 0) == ("a",)
    d2 = heal(p, HealthObservation.of([2], checks=1, pods=_pods(["x", "b"], [NAN, 0.0])), d.state, T0 + 15)
    assert d2.firing_pods(0, 0) == () and d2.state.pods.keys.tolist() == ["x", "b"]
    assert d2.state.pods.first_seen.tolist() == [T0 + 15, T0]


def test_pod_view_aggregates_per_target():
    c = pod_check(for_s=0.0)
    p = params(c)
    names, vals, rows = ["a", "b", "c", "d", "e"], [1.0, 0.95, 0.1, NAN, 0.85], [0, 0, 0, 1, 1]
    d = heal(p, HealthObservation.of([3, 2], checks=1, pods=_pods(names, vals, rows)), HealthState.empty(2, p), T0)
    v = d.view
    assert v.phase[:, 0].tolist() == [Phase.FIRING, Phase.OK]
    assert v.firing[:, 0].tolist() == [2, 0] and v.pods[:, 0].tolist() == [3, 2]
    assert v.share_firing[0, 0] == pytest.approx(2 / 3)
    assert v.raw[:, 0].tolist() == [1.0, 0.85]  # the worst pod; a missing pod is ignored
    assert set(d.firing_pods(0, "mem")) == {"a", "b"}


def test_workload_and_pod_checks_side_by_side():
    p = params(check("errors", for_s=0.0), pod_check("mem", for_s=0.0))
    vals = np.array([[0.2, NAN], [0.0, NAN]])
    pods = PodTable.of([1], ["z"], [[NAN, 1.0]], checks=2)
    d = heal(p, HealthObservation.of([1, 1], values=vals, checks=2, pods=pods), HealthState.empty(2, p), T0)
    assert d.view.phase.tolist() == [[Phase.FIRING, Phase.OK], [Phase.OK, Phase.FIRING]]


# --- batched == row by row -----------------------------------------------------------------

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
value = st.one_of(st.floats(0, 0.2, allow_nan=False), st.just(NAN))


@SETTINGS
@given(st.lists(st.lists(st.lists(value, min_size=2, max_size=2), min_size=3, max_size=3), min_size=1, max_size=8),
       st.sampled_from([Smoothing.NONE, Smoothing.EWMA, Smoothing.MEAN]), st.booleans())
def test_checks_batched_equal_row_by_row(steps, smoothing, fire_on_missing):
    """Three targets, two checks: evaluating them together equals evaluating each alone."""
    checks = (check("a", smoothing=smoothing, half_life_s=30.0, window_s=45.0, fire_on_missing=fire_on_missing),
              check("b", for_s=15.0, recovered_for_s=0.0, direction=Direction.BELOW, unhealthy=0.05, recovered=0.1))
    vals = np.asarray(steps, dtype=float)  # (T, N, C)
    batch = CheckTable.empty(3, checks, 15.0)
    alone = [CheckTable.empty(1, checks, 15.0) for _ in range(3)]
    for k, v in enumerate(vals):
        now = T0 + 15 * k
        _, sb, batch = evaluate(checks, v, ~np.isnan(v), batch, now)
        for i in range(3):
            _, si, alone[i] = evaluate(checks, v[i:i + 1], ~np.isnan(v[i:i + 1]), alone[i], now)
            assert np.array_equal(batch.phase[i], alone[i].phase[0])
            assert np.allclose(sb[i], si[0], equal_nan=True)
            assert np.array_equal(batch.active_since[i], alone[i].active_since[0], equal_nan=True)


def test_scope_and_remedy_codes_are_stable():
    """Stored in arrays and state: the integer values must not move."""
    assert [int(s) for s in Scope] == [0, 1] and int(Remedy.ROLLBACK) == 5
    assert PodState.empty((), 15.0).keys.size == 0
