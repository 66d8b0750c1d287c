"""A healing cycle where nothing is going on skips the work whose result it already knows.

Most cycles of the self-healing controller find no check firing, no verification window open, no
revision test running and no remedy wanted; each stage then returns what its general path would
(the state as it was, nothing proposed), without the general path. Each test below drives a stage
on such an input with a piece of the general path made to fail, so it fails if the stage takes
it; the results are the general path's (the same simulations byte for byte: docs/development.md,
bench/sim_ab.py --scenario). Then the shared pieces that replace per-cycle work: the checks'
columns, the pods kept in place, the revision sums, and IntEnum codes in numpy operations.
"""

from __future__ import annotations

import enum

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core import arbitrate as arbitrate_module
from controller.core.arbitrate import ArbitrationInput, arbitrate
from controller.core.health import remediate, revision_test, rollout_hold
from controller.core.health.checks import CheckTable, PodState
from controller.core.health.heal import heal
from controller.core.health.params import Act, Direction, HealthReason, Phase, Remedy, Scope
from controller.core.health.revision_test import Measure, RevisionTestParams, RevisionTestState, Verdict, step_tests
from controller.core.health.rollout_hold import HoldState, step_hold
from controller.model import Reason
from tests.core.healing import T0, check, drive, params, pod_check, world


def fail(*_args, **_kwargs):
    raise AssertionError("the general path ran on a quiet cycle")


def quiet_cycle(p, n: int = 2):
    """One heal() of ``n`` healthy targets with four pods each, after a first cycle."""
    w = world(p, (4,) * n)
    ds, state = drive(w, None, [T0])
    return w, state


# --- stages that return at once ----------------------------------------------------------------


@pytest.mark.parametrize("module,name", [
    pytest.param(remediate, "_judge", id="verify-with-no-window-open-judges-nothing"),
    pytest.param(remediate, "still_bad", id="propose-with-nothing-firing-reads-no-threshold"),
    pytest.param(remediate, "verify_window_for", id="remember-with-no-health-action-opens-no-window"),
    pytest.param(remediate, "firing_pod_mask", id="no-pod-restart-wanted-reads-no-pod"),
    pytest.param(arbitrate_module, "_rollback_rules", id="arbitration-with-nothing-wanted-skips-the-remedy-rules"),
    pytest.param(rollout_hold, "hold_share", id="no-rollout-held-nor-tested-no-traffic-share"),
])
def test_a_quiet_cycle_skips(monkeypatch, module, name):
    p = params(check(), pod_check())
    w, state = quiet_cycle(p)
    monkeypatch.setattr(module, name, fail)
    d = heal(p, w.observe(), state, T0 + 15.0)
    assert (d.action == Act.NONE).all() and (d.reason == HealthReason.NO_ACTION).all()


def test_verify_with_no_window_open_keeps_the_memory_as_it_was():
    p = params(check(), pod_check())
    w, state = quiet_cycle(p)
    d = heal(p, w.observe(), state, T0 + 15.0)
    rem, rev, outcome = remediate.verify(p, d.state.remedy, d.state.revisions, d.view, d.state.pods, d.pod_row,
                                         np.zeros(2, bool), T0 + 30.0)
    assert rem is d.state.remedy and rev is d.state.revisions
    assert outcome.tolist() == [-1, -1] and outcome.dtype == np.int64


def test_arbitration_with_nothing_wanted_still_passes_the_scaling_decision(monkeypatch):
    monkeypatch.setattr(arbitrate_module, "_rollback_rules", fail)
    out = arbitrate(ArbitrationInput.of(current=[3, 3, 3], desired=[5, 2, 3],
                                        held=[False, False, True], rollout=[False, True, False]))
    assert [HealthReason(int(r)).code for r in out.reason] == ["Scaling", "ScaleDownBlockedByRollout", "Held"]
    assert out.action.tolist() == [Act.SCALE, Act.NONE, Act.NONE] and out.replicas.tolist() == [5, 3, 3]


# --- revision tests and rollout holds ----------------------------------------------------------

RATIO = RevisionTestParams("errors", Measure.RATIO, worse_by=1.5, false_rate=0.005, hold_max_s=600.0)
LATENCY = RevisionTestParams("latency", Measure.LATENCY, worse_by=1.5, false_rate=0.005)


def under_test(verdict: int = Verdict.UNDECIDED) -> RevisionTestState:
    s = RevisionTestState.empty(2, 2)
    return RevisionTestState(np.array(["3", "3"], dtype=object), s.llr + 1.0, s.during + 0.5, s.new + 7.0,
                             s.old + 9.0, s.after, np.full((2, 2), verdict, np.int8), s.decided_at, s.base + 2.0,
                             s.stable, s.drifted)


@pytest.mark.parametrize("active,verdict", [
    pytest.param([False, False], Verdict.UNDECIDED, id="no-rollout-no-test-runs"),
    pytest.param([True, True], Verdict.GOOD, id="every-test-decided"),
])
def test_with_no_test_open_only_the_recent_totals_move(monkeypatch, active, verdict):
    for name in ("ratio_llr", "latency_llr", "baseline_llr"):
        monkeypatch.setattr(revision_test, name, fail)
    state = under_test(verdict)
    new = np.full((2, 2, 3), 4.0)
    out = step_tests((RATIO, LATENCY), state, np.array(["3", "3"], dtype=object), np.array(active), new,
                     np.zeros((2, 2, 3)), T0, 15.0)
    for field in ("llr", "during", "new", "old", "after", "decided_at", "stable", "drifted"):
        assert getattr(out, field) is getattr(state, field), field
    assert (out.verdict == verdict).all() and out.verdict.dtype == np.int8
    keep = np.exp(-np.log(2.0) * 15.0 / 600.0)
    assert out.base[..., 0] == pytest.approx(np.full((2, 2), 2.0 * keep + 4.0))


def test_a_rollout_neither_held_nor_tested_reads_no_traffic_share(monkeypatch):
    monkeypatch.setattr(rollout_hold, "hold_share", fail)
    hold = HoldState(np.array(["3", "4"], dtype=object), np.full(2, np.nan), np.array([False, True]))
    step = step_hold((RATIO,), hold, under_test(), np.array(["3", "5"], dtype=object), np.array([True, False]),
                     np.zeros(2, bool), np.zeros(2, bool), np.zeros((2, 1, 3)), np.zeros((2, 1, 3)), 15.0, T0)
    assert step.action.tolist() == [Act.NONE, Act.NONE] and step.reason.tolist() == [-1, -1]
    assert step.state.revision.tolist() == ["3", "5"] and step.state.over.tolist() == [False, False]


# --- what is kept between cycles ---------------------------------------------------------------


def pod_state(keys, born=None) -> PodState:
    p = params(pod_check())
    checks = tuple(p.checks[j] for j in p.pod_columns)
    table = CheckTable.empty(len(keys), checks, 15.0)
    table = CheckTable(np.full_like(table.phase, Phase.PENDING), table.active_since + T0, table.fired_at,
                       table.recovering_since, table.changed_at, table.smooth)
    return PodState(np.asarray(keys, str), np.arange(len(keys)) + T0, np.full(len(keys), np.nan), table,
                    None if born is None else np.asarray(born, np.float64))


NAN = float("nan")


@pytest.mark.parametrize("keys,born,kept,first_seen,born_after", [
    pytest.param(["a", "b", "c"], None, True, [0, 1, 2], [1.0, NAN, 3.0], id="same-pods-keep-their-rows"),
    pytest.param(["a", "b", "c"], [NAN, 5.0, 3.0], True, [0, 1, 2], [1.0, 5.0, 3.0],
                 id="a-creation-time-learnt-or-unsaid-keeps-the-pod"),
    pytest.param(["c", "a", "b"], None, False, [2, 0, 1], [3.0, 1.0, NAN], id="reordered-pods-are-matched"),
    pytest.param(["a", "b", "d"], None, False, [0, 1, 60], [1.0, NAN, NAN], id="a-new-pod-starts-now"),
    pytest.param(["a", "b", "c"], [9.0, NAN, 3.0], False, [60, 1, 2], [9.0, NAN, 3.0],
                 id="a-pod-back-under-its-name-starts-afresh"),
])
def test_reindexing_the_same_pods_keeps_their_table(keys, born, kept, first_seen, born_after):
    state = pod_state(["a", "b", "c"], [1.0, NAN, 3.0])
    out = state.reindex(np.asarray(keys, str), T0 + 60.0, None if born is None else np.asarray(born))
    assert (out.table is state.table) == kept
    assert (out.first_seen - T0).tolist() == first_seen
    assert out.keys.tolist() == keys
    assert np.array_equal(out.born, born_after, equal_nan=True)
    assert out.table.phase[:, 0].tolist() == [Phase.OK if t == 60 else Phase.PENDING for t in first_seen]


def test_duplicate_pod_keys_are_refused_even_when_unchanged():
    state = pod_state(["a", "a"])
    with pytest.raises(ValueError, match="unique"):
        state.reindex(np.array(["a", "a"]), T0)
    with pytest.raises(ValueError, match="unique"):  # its own keys object: never found unique
        state.reindex(state.keys, T0)


def test_the_keys_a_reindex_made_the_state_of_keep_its_rows_handed_back_as_they_are():
    state = pod_state(["x"]).reindex(np.asarray(["a", "b", "c"], str), T0, np.asarray([1.0, NAN, 3.0]))
    again = state.reindex(state.keys, T0 + 60.0, np.asarray([1.0, NAN, 3.0]))  # a shell that kept its pod table
    assert again.table is state.table and again.keys is state.keys and again.unique
    assert again.rows_of in (None, {"a": 0, "b": 1, "c": 2})  # the compiled match makes no dict
    assert again.first_seen.tolist() == [T0] * 3


def test_a_pod_table_of_a_shells_kept_keys_hands_the_reindex_that_object():
    from controller.core.health.checks import PodTable

    keys = np.asarray(["a", "b", "c"], str)  # a shell's (P,) keys, kept while its pods are (StatusColumns)
    state = pod_state(["x"]).reindex(PodTable.of([0, 0, 1], keys, np.zeros((3, 1))).keys, T0)
    table = PodTable.of([0, 0, 1], keys, np.zeros((3, 1)))  # the next cycle's table of the same pods
    # the same object (not a view of it): the reindex's shortcut, no compare of P strings
    assert table.keys is keys and state.keys is keys
    assert state.reindex(table.keys, T0 + 60.0).table is state.table


def test_the_checks_columns_are_built_once_and_shared_read_only():
    from controller.core.health.checks import check_columns

    p = params(check(), check("latency", direction=Direction.BELOW, unhealthy=0.5, recovered=0.7))
    first = check_columns(tuple(p.checks))
    assert check_columns(tuple(p.checks)) is first
    assert first.above.tolist() == [True, False] and first.unhealthy.tolist() == [0.05, 0.5]
    with pytest.raises(ValueError):
        first.unhealthy[0] = 1.0


SUMS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SUMS
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.booleans(),
                                   st.lists(st.floats(-1e6, 1e6), min_size=3, max_size=3)), max_size=12))))
def test_the_revision_sums_are_the_per_target_bincounts_bit_for_bit(case):
    from controller.runtime.healing import _sums_by_target_and_side

    n, pods = case
    rows = np.array([r for r, _, _ in pods], np.int64)
    current = np.array([c for _, c, _ in pods], bool)
    stats = np.array([s for _, _, s in pods], np.float64).reshape(-1, 3)
    got = _sums_by_target_and_side(n, rows, current, stats)
    for side, mask in enumerate((current, ~current)):
        for j in range(3):
            want = np.bincount(rows[mask], weights=stats[mask, j], minlength=n)[:n]
            assert got[:, side, j].tobytes() == want.tobytes()


# --- IntEnum codes in numpy operations ---------------------------------------------------------


@pytest.mark.parametrize("member", [
    pytest.param(Act.RESTART_POD, id="action-kind"), pytest.param(Remedy.ROLLBACK, id="remedy"),
    pytest.param(HealthReason.HELD, id="health-reason"), pytest.param(Phase.FIRING, id="phase"),
    pytest.param(Scope.POD, id="scope"), pytest.param(Direction.BELOW, id="direction"),
    pytest.param(Verdict.BAD, id="verdict"), pytest.param(Measure.LATENCY, id="measure"),
    pytest.param(Reason.SCALE_UP, id="scaling-reason"),
])
def test_numpy_takes_an_enum_code_for_its_int_without_asking_the_enum_class(monkeypatch, member):
    asked = []
    getattr_ = enum.EnumType.__getattr__

    def counting(cls, name):
        asked.append(name)
        return getattr_(cls, name)

    monkeypatch.setattr(enum.EnumType, "__getattr__", counting)
    codes = np.arange(12, dtype=np.int64)
    same, below = codes == member, np.maximum(codes, member)
    monkeypatch.undo()
    assert "__array_ufunc__" not in asked
    assert same.tolist() == (codes == int(member)).tolist() and below.tolist() == np.maximum(codes, int(member)).tolist()
