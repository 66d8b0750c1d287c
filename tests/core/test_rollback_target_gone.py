"""A rollback goes only to a known-healthy revision the cluster still lists.

Found with sim serve trimming old ReplicaSets beyond spec.revisionHistoryLimit: with a limit of 0
(or after enough rollouts) the known-healthy revision's ReplicaSet is gone once the bad release's
rollout completes, and the core proposed a rollback to it every cycle, each one refused by the
API as NotFound (``no revision '1' (have [2])``). The revisions the cluster lists are an input
of the observation (``HealthObservation.revisions``); a row that lists none is unknown (as
before). Fixed times, a tiny world that applies each decision (tests/core/healing.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.params import Act, HealthReason, Remedy
from controller.core.health.remediate import RevisionState, listed
from tests.core.healing import T0, check, drive, params, world

R = HealthReason


def _release(listed_after, *, two_healthy: bool = False, **kw):
    """Revision 1 healthy for an hour; with ``two_healthy`` a good release 2 at 15 s proves healthy
    at 315 s; then a bad release (3 at 405 s, or 2 at 60 s) whose rollback check fires 30 s later. From the
    release on, the cluster lists ``listed_after`` (None: the source does not say)."""
    p = params(check("errors", action=Remedy.ROLLBACK, for_s=30.0), healthy_after_s=300.0, **kw)
    w = world(p, (3,), revision="1", revision_since=[T0 - 3600])
    w.listed = [["1"]]
    at, bad = (405, "3") if two_healthy else (60, "2")

    def before(t, w):
        if two_healthy and t == 15:
            w.revision[0], w.revision_since, w.listed = "2", None, [["1", "2"]]
        if t == at:
            w.revision[0], w.revision_since, w.errors[0] = bad, None, 0.5
            w.listed = None if listed_after is None else [list(listed_after)]

    ds, _ = drive(w, None, range(0, at + 300, 15), before=before)
    return [d for d in ds if d.now - T0 > at]


def _summary(ds):
    """(reasons seen after the release, rollbacks sent with their target, revisions named gone)."""
    reasons = sorted({R(int(d.reason[0])).code for d in ds})
    sent = [str(d.rollback_to[0]) for d in ds if d.action[0] == Act.ROLLBACK]
    gone = sorted({str(d.rollback_gone[0]) for d in ds if d.rollback_gone[0]})
    return reasons, sent, gone


@pytest.mark.parametrize("listed_after, two_healthy, expect", [
    pytest.param(["1", "2"], False, (["NoAction", "RollbackNewRevision", "Verifying"], ["1"], []),
                 id="healthy-revision-listed-is-rolled-back-to"),
    pytest.param(["2"], False, (["NoAction", "RollbackTargetGone"], [], ["1"]),
                 id="limit-0-healthy-revision-trimmed-no-rollback-sent"),
    pytest.param(None, False, (["NoAction", "RollbackNewRevision", "Verifying"], ["1"], []),
                 id="source-that-lists-nothing-trusts-the-memory"),
    pytest.param([], False, (["NoAction", "RollbackNewRevision", "Verifying"], ["1"], []),
                 id="target-that-lists-no-revision-is-unknown"),
    pytest.param(["1", "3"], True, (["NoAction", "RollbackNewRevision", "Verifying"], ["1"], []),
                 id="newest-healthy-trimmed-falls-back-to-the-older-listed-one"),
    pytest.param(["2", "3"], True, (["NoAction", "RollbackNewRevision", "Verifying"], ["2"], []),
                 id="limit-1-newest-healthy-kept-is-rolled-back-to"),
    pytest.param(["3"], True, (["NoAction", "RollbackTargetGone"], [], ["2"]),
                 id="both-healthy-revisions-trimmed-names-the-newest"),
])
def test_rollback_only_to_a_listed_revision(listed_after, two_healthy, expect):
    ds = _release(listed_after, two_healthy=two_healthy)
    assert _summary(ds) == expect
    if not expect[1]:  # nothing was sent: no budget spent, no verification window, not held
        last = ds[-1].state
        assert last.budgets.rollbacks_used(ds[-1].now).tolist() == [0]
        assert last.remedy.verify_action.tolist() == [0] and not ds[-1].held[0]
        record = ds[-1].record(0, "p", "shop/web").to_dict()
        assert (record["reason"], record["action"], record["rollback_gone"]) == ("RollbackTargetGone", None,
                                                                                  expect[2][0])


def test_an_escalated_rollback_to_a_trimmed_revision_holds():
    """The ladder's rollback step with nowhere to go stops there (held), as with no healthy revision."""
    p = params(check("errors", action=Remedy.ROLLING_RESTART, for_s=30.0, recovered_for_s=30.0),
               escalation=(Remedy.ROLLING_RESTART, Remedy.ROLLBACK), healthy_after_s=3000.0,
               new_revision_window_s=300.0, rollback_window_s=600.0, verify_window_s=60.0)
    w = world(p, (3,), revision="1", revision_since=[T0 - 7200])
    w.listed = [["1"]]

    def before(t, w):
        if t == 15:  # a release, not blamed later (past its windows), that the cluster keeps alone
            w.revision[0], w.revision_since, w.listed = "2", None, [["2"]]
        if t == 1200:
            w.errors[0] = 0.5  # persists through the rolling restart

    ds, _ = drive(w, None, range(0, 1500, 15), before=before)
    acts = [(int(d.now - T0), R(int(d.reason[0])).code) for d in ds if d.from_health[0] or d.held[0]][:2]
    assert acts == [(1230, "RollingRestart"), (1290, "RollbackTargetGone")]
    assert [Act(int(d.action[0])) for d in ds].count(Act.ROLLBACK) == 0
    assert R(int(ds[-1].held_reason[0])) == R.ROLLBACK_TARGET_GONE


@pytest.mark.parametrize("healthy, older, current, available, expect", [
    pytest.param(["1"], [""], ["2"], [["1", "2"]], (["1"], [""]), id="listed"),
    pytest.param(["1"], [""], ["2"], [["2", ""]], ([""], ["1"]), id="trimmed-with-padding"),
    pytest.param(["3"], ["1"], ["4"], [["1", "4"]], (["1"], [""]), id="older-listed"),
    pytest.param(["1"], [""], ["1"], [["1"]], ([""], [""]), id="current-is-the-healthy-one-nothing-gone"),
    pytest.param(["1"], [""], ["2"], [["", ""]], (["1"], [""]), id="row-listing-none-is-unknown"),
    pytest.param(["1", "1"], ["", ""], ["2", "2"], [["2", ""], ["1", "2"]], (["", "1"], ["1", ""]),
                 id="batched-rows-are-independent"),
])
def test_rollback_choice(healthy, older, current, available, expect):
    n = len(healthy)
    rs = RevisionState.empty(n)
    rs = RevisionState(np.asarray(current, object), *(getattr(rs, k) for k in ("since", "rollout_done_at",
                       "clean_since")), np.asarray(healthy, object), np.asarray(older, object),
                       rs.rolled_back_to, rs.restarted, rs.trusted)
    target, gone = rs.rollback_choice(np.asarray(available, object))
    assert (target.tolist(), gone.tolist()) == expect
    for i in range(n):  # row by row
        t1, g1 = RevisionState(*(getattr(rs, k)[i:i + 1] for k in rs.__dataclass_fields__)).rollback_choice(
            np.asarray(available, object)[i:i + 1])
        assert (t1[0], g1[0]) == (target[i], gone[i])


def test_unknown_listing_lists_everything():
    assert listed(np.asarray(["1", "2"], object), None).tolist() == [True, True]
    assert listed(np.asarray(["1"], object), np.zeros((1, 0), object)).tolist() == [True]
