"""The rollout hold (controller/core/health/rollout_hold.py): when to pause a rollout while its
revision test is undecided, when to resume it, and whose pause it is.

Table rows are one target, one ratio check that holds for at most 600 s, at fixed times; the
properties cover any inputs: no pause without a rollout, a Deployment someone else paused is
never resumed (nor paused again), nothing at all when spec.paused is not observed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.health.params import HealthReason
from controller.core.health.revision_test import RevisionTestParams, RevisionTestState, Verdict
from controller.core.health.rollout_hold import HoldState, hold_share, requests_to_verdict, step_hold
from controller.model import ActionKind

NOW = 1_800_000_000.0
MAX_S = 600.0
CHECK = RevisionTestParams("release-errors", worse_by=1.5, false_rate=0.005, hold_max_s=MAX_S)
CHECKS = (CHECK,)


def revision_tests(verdict=Verdict.UNDECIDED, baseline=(100_000.0, 200.0), llr=0.0, revision="2") -> RevisionTestState:
    """One target under test: the stable revision's baseline (requests, errors) with a 0.2% error ratio."""
    t = RevisionTestState.empty(1, 1)
    old = np.array([[[baseline[0], baseline[1], 0.0]]])
    return RevisionTestState(np.array([revision], dtype=object), np.array([[llr]]), t.during, t.new, old, t.after,
                             np.array([[int(verdict)]], np.int8), t.decided_at, t.base, t.stable, t.drifted)


def hold(revision="2", since=math.nan, over=False) -> HoldState:
    return HoldState(np.array([revision], dtype=object), np.array([since]), np.array([over]))


def step(*, h=None, verdict=Verdict.UNDECIDED, rollout=True, paused=False, active=True, new_rps=150.0,
         old_rps=450.0, revision="2", baseline=(100_000.0, 200.0), interval_s=5.0):
    """One step; per-step statistics are the requests of each revision in ``interval_s``."""
    new = np.array([[[new_rps * interval_s, 0.0, 0.0]]])
    old = np.array([[[old_rps * interval_s, 0.0, 0.0]]])
    return step_hold(CHECKS, hold() if h is None else h, revision_tests(verdict, baseline, revision=revision),
                     np.array([revision], dtype=object), np.array([rollout]),
                     None if paused is None else np.array([paused]), np.array([active]), new, old, interval_s, NOW)


PAUSE, RESUME, NONE = int(ActionKind.PAUSE), int(ActionKind.RESUME), int(ActionKind.NONE)
R = HealthReason


@pytest.mark.parametrize("kwargs, action, reason, ours_after", [
    pytest.param(dict(), PAUSE, R.ROLLOUT_PAUSED_FOR_EVIDENCE, True, id="undecided-new-pods-serve-a-quarter: pause"),
    pytest.param(dict(new_rps=0.0, old_rps=600.0), NONE, -1, False, id="no-new-pod-serves-yet: wait"),
    pytest.param(dict(new_rps=6.0, old_rps=594.0), NONE, -1, False, id="one-percent-share-too-little-to-decide-soon"),
    pytest.param(dict(rollout=False), NONE, -1, False, id="no-rollout: never pause"),
    pytest.param(dict(active=False), NONE, -1, False, id="revision-not-under-test: never pause"),
    pytest.param(dict(verdict=Verdict.GOOD), NONE, -1, False, id="already-good: no pause"),
    pytest.param(dict(verdict=Verdict.BAD), NONE, -1, False, id="already-bad: no pause (the rollback comes)"),
    pytest.param(dict(paused=True), NONE, -1, False, id="paused-by-someone-else: not ours, untouched"),
    pytest.param(dict(paused=None), NONE, -1, False, id="spec-paused-unknown: never pause"),
    pytest.param(dict(h=hold(over=True)), NONE, -1, False, id="hold-of-this-revision-over: not taken again"),
    pytest.param(dict(h=hold(revision="1", over=True)), PAUSE, R.ROLLOUT_PAUSED_FOR_EVIDENCE, True,
                 id="new-revision-after-an-old-hold: pause again"),
    pytest.param(dict(baseline=(0.0, 0.0), new_rps=1.0, old_rps=599.0), PAUSE, R.ROLLOUT_PAUSED_FOR_EVIDENCE, True,
                 id="stable-rate-unknown: hold at the first pod serving"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=True), NONE, -1, True, id="ours-undecided-within-max: keep"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=True, verdict=Verdict.GOOD), RESUME, R.ROLLOUT_RESUMED_GOOD,
                 False, id="ours-good: resume"),
    pytest.param(dict(h=hold(since=NOW - MAX_S), paused=True), RESUME, R.ROLLOUT_RESUMED_MAX_HOLD, False,
                 id="ours-max-duration-passed: resume, the test goes on"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=True, rollout=False), RESUME, R.ROLLOUT_RESUMED_NOT_TESTED,
                 False, id="ours-no-rollout-any-more: resume"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=True, active=False), RESUME, R.ROLLOUT_RESUMED_NOT_TESTED,
                 False, id="ours-revision-no-longer-tested: resume"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=True, verdict=Verdict.BAD), NONE, -1, True,
                 id="ours-bad: kept (the rollback resumes it in the same write)"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=False), NONE, -1, False,
                 id="ours-but-someone-resumed-it: theirs now, not paused again"),
    pytest.param(dict(h=hold(since=NOW - 60), paused=None), NONE, -1, True, id="ours-spec-paused-unknown: kept"),
])
def test_when_to_hold_and_resume(kwargs, action, reason, ours_after):
    out = step(**kwargs)
    assert int(out.action[0]) == action
    assert int(out.reason[0]) == int(reason)
    assert bool(out.state.ours[0]) == ours_after
    if action == PAUSE:
        assert out.state.since[0] == NOW and not out.kept.ours[0]  # without the pause applied: nothing held
    if action == RESUME:
        assert out.state.over[0] and out.kept.ours[0]  # not taken again; kept: still ours if it did not go out


def test_someone_elses_resume_ends_our_hold_for_good():
    out = step(h=hold(since=NOW - 60), paused=False)
    again = step_hold(CHECKS, out.state, revision_tests(), np.array(["2"], dtype=object), np.array([True]),
                      np.array([False]), np.array([True]), np.array([[[750.0, 0, 0]]]), np.array([[[2250.0, 0, 0]]]),
                      5.0, NOW + 5)
    assert out.state.over[0] and int(again.action[0]) == NONE


def test_requests_to_verdict_is_the_larger_of_the_two_expected_walks():
    """p0 = 0.2%, 1.5x, alpha 0.5%, beta 5%, statistic 0: towards BAD log(200) / (p0 (1.5 log 1.5 - 0.5))
    = 24.5k requests; towards GOOD log(20) / (p0 (0.5 - log 1.5)) = 15.8k: the larger."""
    need = requests_to_verdict(CHECKS, revision_tests())[0, 0]
    r = 1.5
    assert need == pytest.approx(math.log(200) / (0.002 * (r * math.log(r) - r + 1)))
    assert 24_000 < need < 25_000
    # halfway to BAD the walk towards GOOD is the longer one (which way it goes is not known yet)
    halfway = requests_to_verdict(CHECKS, revision_tests(llr=math.log(200) / 2))[0, 0]
    assert halfway == pytest.approx((math.log(200) / 2 + math.log(20)) / (0.002 * (r - 1 - math.log(r))))
    assert requests_to_verdict(CHECKS, revision_tests(baseline=(1000.0, 0.0)))[0, 0] == math.inf  # no errors: no evidence


def test_the_share_held_at_comes_from_the_sample_size_and_the_traffic():
    """600 requests/s and half of 600 s to decide: 24.5k requests need 13.6% of the traffic; a
    tenth of the traffic needs 10 times the share (capped at half the traffic)."""
    new, old = np.array([[[750.0, 0, 0]]]), np.array([[[2250.0, 0, 0]]])
    share, need = hold_share(CHECKS, revision_tests(), new, old, 5.0)
    expected = requests_to_verdict(CHECKS, revision_tests())[0, 0] / (600.0 * MAX_S / 2)
    assert share[0] == pytest.approx(0.25) and need[0] == pytest.approx(expected) and 0.13 < need[0] < 0.14
    _, need_low = hold_share(CHECKS, revision_tests(), new / 10, old / 10, 5.0)
    assert need_low[0] == pytest.approx(0.5)


def test_a_check_without_hold_never_pauses():
    plain = (RevisionTestParams("release-errors", worse_by=1.5),)
    out = step_hold(plain, hold(), revision_tests(), np.array(["2"], dtype=object), np.array([True]), np.array([False]),
                    np.array([True]), np.array([[[750.0, 0, 0]]]), np.array([[[2250.0, 0, 0]]]), 5.0, NOW)
    assert int(out.action[0]) == NONE


# --- properties ------------------------------------------------------------------------------

_rows = st.integers(1, 6)


@st.composite
def hold_inputs(draw):
    n = draw(_rows)
    bools = lambda: np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))  # noqa: E731
    since = np.array(draw(st.lists(st.one_of(st.just(math.nan), st.floats(NOW - 2000, NOW)), min_size=n,
                                   max_size=n)))
    revs = np.array(draw(st.lists(st.sampled_from(["", "1", "2"]), min_size=n, max_size=n)), dtype=object)
    h = HoldState(np.array(draw(st.lists(st.sampled_from(["", "1", "2"]), min_size=n, max_size=n)), dtype=object),
                  since, bools())
    t = RevisionTestState.empty(n, 1)
    t = RevisionTestState(revs.copy(), np.array(draw(st.lists(st.floats(-6, 6), min_size=n, max_size=n)))[:, None],
                          t.during, t.new, np.tile(np.array([100_000.0, 200.0, 0.0]), (n, 1, 1)), t.after,
                          np.array(draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n)),
                                   np.int8)[:, None],
                          t.decided_at, t.base, t.stable, t.drifted)
    new = np.array(draw(st.lists(st.floats(0, 5000), min_size=n, max_size=n)))[:, None, None] * np.array([1, 0, 0])
    old = np.array(draw(st.lists(st.floats(0, 5000), min_size=n, max_size=n)))[:, None, None] * np.array([1, 0, 0])
    paused = draw(st.one_of(st.none(), st.just(bools())))
    return h, t, revs, bools(), paused, bools(), new, old


@settings(max_examples=300, deadline=None)
@given(hold_inputs())
def test_never_pause_without_a_rollout_never_touch_someone_elses_pause(drawn):
    h, t, revs, rollout, paused, active, new, old = drawn
    out = step_hold(CHECKS, h, t, revs, rollout, paused, active, new, old, 5.0, NOW)
    paused_now = out.action == PAUSE
    assert not (paused_now & ~rollout).any()  # no rollout in progress: never paused
    if paused is None:
        assert (out.action == NONE).all()
        return
    theirs = paused & ~np.isfinite(h.since)  # paused, and not by us
    assert not (theirs & (out.action != NONE)).any()  # paused by someone else: neither resumed nor re-paused
    assert not (paused_now & paused).any() and not ((out.action == RESUME) & ~paused).any()
    assert (out.state.ours == np.where(out.action == PAUSE, True, out.state.ours)).all()
    assert not (out.state.ours & ~(paused | paused_now)).any()  # we never believe we hold an unpaused rollout


# --- through heal: the hold goes along with the remedies -------------------------------------

from controller.core.health.heal import HealthObservation, HealthState, heal  # noqa: E402
from controller.core.health.params import Act, HealthParams  # noqa: E402
from controller.core.health.revision_test import ratio_stats  # noqa: E402
from controller.model import TargetRef  # noqa: E402

T0 = NOW
WEB = TargetRef("default", "web")


def held_release(new_ratio: float, *, cycles: int = 60, rps: float = 600.0, check=CHECK):
    """Revision 1 for 10 min at 0.2% errors (its pods' totals: the baseline), then revision 2 rolls
    out, its share growing 20% per 5 s step unless paused; ``paused`` follows the decisions (as
    if every action were applied). Returns the decisions of the release steps."""
    p = HealthParams.of((), revision_checks=(check,), healthy_after_s=300.0, interval_s=5.0)
    state = HealthState.empty(1, p)
    for k in range(121):
        obs = HealthObservation.of([10], checks=0, revision=["1"], paused=[False],
                                   revision_new=ratio_stats([[rps * 5]], [[rps * 5 * 0.002]]))
        state = heal(p, obs, state, T0 + 5 * k).state
    out, paused, share = [], False, 0.0
    for k in range(cycles):
        share = share if paused else min(1.0, share + 0.2)
        n1, n0 = rps * 5 * share, rps * 5 * (1 - share)
        obs = HealthObservation.of([10], checks=0, revision=["2"], rollout=[share < 1.0], paused=[paused],
                                   revision_new=ratio_stats([[n1]], [[n1 * new_ratio]]),
                                   revision_old=ratio_stats([[n0]], [[n0 * 0.002]]))
        d = heal(p, obs, state, T0 + 605 + 5 * k)
        out.append(d)
        state = d.state
        if d.hold_action[0] == PAUSE:
            paused = True
        if d.hold_action[0] == RESUME or d.rollback_resumes[0]:
            paused = False
        if d.action[0] == Act.ROLLBACK:
            break
    return out


def test_a_subtly_bad_release_is_held_then_rolled_back_with_the_resume_in_the_same_action():
    ds = held_release(0.003)  # 1.5x the stable 0.2%
    pauses = [k for k, d in enumerate(ds) if d.hold_action[0] == PAUSE]
    assert pauses == [0], "paused at the first step with new pods serving (20% >= the share needed)"
    last = ds[-1]
    assert last.action[0] == Act.ROLLBACK and last.rollback_resumes[0] and last.hold_action[0] == NONE
    [action] = last.actions(0, WEB, "p")
    assert action.resume and action.fast
    assert [a for d in ds for a in d.hold_actions(0, WEB, "p")][0].kind is ActionKind.PAUSE
    rec = last.record(0, "p", "default/web").to_dict()
    assert rec["rollout"] == "resume" and rec["rollout_reason"] == "RollbackRevisionWorse"
    assert not rec["rollout_held"]
    # the rollback not applied: the hold is still ours (the Deployment stays paused)
    assert last.state_after(False).hold.ours[0] and not last.state_after(True).hold.ours[0]


def test_a_good_release_is_held_then_resumed_when_the_test_says_good():
    ds = held_release(0.002, cycles=120)
    kinds = [int(d.hold_action[0]) for d in ds if d.hold_action[0] != NONE]
    assert kinds == [PAUSE, RESUME] and all(d.action[0] != Act.ROLLBACK for d in ds)
    resumed = next(d for d in ds if d.hold_action[0] == RESUME)
    assert resumed.hold_reason_code[0] == HealthReason.ROLLOUT_RESUMED_GOOD
    assert resumed.now - T0 - 605 < MAX_S  # decided within the hold
    # the pause not applied (say the write failed): nothing is held, the next step decides again
    paused = next(d for d in ds if d.hold_action[0] == PAUSE)
    assert not paused.state_after(True, hold_applied=False).hold.ours[0]
    assert paused.state_after(False, hold_applied=True).hold.ours[0]


@pytest.mark.parametrize("ours", [pytest.param(False, id="not-held-yet: no pause with the rollback"),
                                  pytest.param(True, id="held: the rollback resumes, no separate resume")])
def test_a_rollback_from_another_check_goes_out_alone(ours):
    """A workload check (errors above 5%, rollback) fires at the release: the one action is the
    rollback; a pause after it would hold the rollback, a separate resume would come too late."""
    from tests.core.healing import check, params

    p = params(check("errors", for_s=0.0), revision_checks=(CHECK,), healthy_after_s=300.0, interval_s=5.0)
    state = HealthState.empty(1, p)
    for k in range(121):  # revision 1, healthy, 0.2% errors on its pods
        obs = HealthObservation.of([10], values=[[0.002]], checks=1, revision=["1"], paused=[False],
                                   revision_new=ratio_stats([[3000.0]], [[6.0]]))
        state = heal(p, obs, state, T0 + 5 * k).state
    if ours:
        state = HealthState(state.workload, state.pods, state.revisions, state.remedy, state.budgets,
                            state.revision_tests, HoldState(np.array(["2"], dtype=object), np.array([T0 + 600]),
                                                            np.array([False])))
    obs = HealthObservation.of([10], values=[[0.2]], checks=1, revision=["2"], rollout=[True], paused=[ours],
                               revision_new=ratio_stats([[750.0]], [[1.5]]),
                               revision_old=ratio_stats([[2250.0]], [[4.5]]))
    d = heal(p, obs, state, T0 + 605)  # the release's own pods look fine: its test is undecided
    assert d.state.revision_tests.verdict[0, 0] == Verdict.UNDECIDED  # alone, the hold step would pause (held: keep)
    assert d.action[0] == Act.ROLLBACK and d.hold_action[0] == NONE and d.hold_actions(0, WEB) == ()
    [rollback] = d.actions(0, WEB)
    assert rollback.resume is ours and bool(d.rollback_resumes[0]) is ours
    assert not d.state.hold.ours[0] and d.state_after(False).hold.ours[0] is np.bool_(ours)


def test_a_release_someone_else_paused_waits_for_its_resume_and_names_the_check():
    """Paused by someone else at its first new pods, a release its revision check finds worse is
    not rolled back (the cluster refuses it while paused) and its record names the check, not
    'the escalation ladder'; the first step after the resume rolls it back."""
    p = HealthParams.of((), revision_checks=(CHECK,), healthy_after_s=300.0, interval_s=5.0)
    state = HealthState.empty(1, p)
    for k in range(121):
        obs = HealthObservation.of([10], checks=0, revision=["1"], paused=[False],
                                   revision_new=ratio_stats([[3000.0]], [[6.0]]))
        state = heal(p, obs, state, T0 + 5 * k).state
    steps = []
    for k in range(40):
        paused = k < 30  # resumed at step 30
        n1, n0 = 600.0, 2400.0  # 20% of the traffic on the release's pods, 10x the errors
        obs = HealthObservation.of([10], checks=0, revision=["2"], rollout=[True], paused=[paused],
                                   revision_new=ratio_stats([[n1]], [[n1 * 0.02]]),
                                   revision_old=ratio_stats([[n0]], [[n0 * 0.002]]))
        d = heal(p, obs, state, T0 + 605 + 5 * k)
        steps.append(d)
        state = d.state
        if d.action[0] == Act.ROLLBACK:
            break
    waiting = [k for k, d in enumerate(steps) if d.reason[0] == HealthReason.ROLLBACK_BLOCKED_BY_PAUSE]
    assert waiting and waiting == list(range(waiting[0], 30))
    assert all(d.action[0] == Act.NONE and d.hold_action[0] == NONE for d in steps[:30])
    assert {steps[k].record(0, "p", "default/web").trigger for k in waiting} == {CHECK.name}
    assert len(steps) == 31 and steps[30].action[0] == Act.ROLLBACK and str(steps[30].rollback_to[0]) == "1"
