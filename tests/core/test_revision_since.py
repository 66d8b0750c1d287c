"""update_revisions with a revision's completion time known from the cluster (revision_since):
on first sight, a revision complete for longer than healthyAfter with no check firing is known
healthy at once; a later revision is dated by its first sight whatever the cluster says."""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.remediate import RevisionState, update_revisions
from controller.core.health.params import Act, HealthReason
from tests.core.healing import T0, check, drive, params, world

P = params(check(), healthy_after_s=300.0)
NOW = T0 + 3600.0


def one(rs: RevisionState, revision: str, since: float, *, rollout=False, firing=False, pending=False,
        now=NOW) -> RevisionState:
    return update_revisions(P, rs, np.array([revision], dtype=object), np.array([since]), np.array([rollout]),
                            np.array([firing]), now, np.array([pending]))


@pytest.mark.parametrize("since, rollout, firing, healthy, clean", [
    pytest.param(NOW - 7200.0, False, False, "1", NOW - 7200.0, id="complete-for-hours-healthy-at-once"),
    pytest.param(NOW - 300.0, False, False, "1", NOW - 300.0, id="complete-exactly-healthy-after-healthy"),
    pytest.param(NOW - 7200.0, False, True, "", NOW, id="a-check-fires-not-healthy"),
    pytest.param(NOW - 120.0, False, False, "", NOW - 120.0, id="complete-too-recently-not-yet"),
    pytest.param(np.nan, False, False, "", NOW, id="unknown-first-seen-now"),
    pytest.param(NOW + 600.0, False, False, "", NOW, id="a-time-to-come-counts-as-now"),
    pytest.param(NOW - 7200.0, True, False, "", NOW, id="rolling-out-not-healthy"),
])
def test_first_sight_with_a_known_completion(since, rollout, firing, healthy, clean):
    rs = one(RevisionState.empty(1), "1", since, rollout=rollout, firing=firing)
    assert rs.current.tolist() == ["1"]
    assert rs.healthy.tolist() == [healthy]
    assert rs.clean_since.tolist() == [clean]


@pytest.mark.parametrize("pending, healthy, clean", [
    pytest.param(False, "1", NOW - 7200.0, id="no-check-pending-healthy-at-once"),
    pytest.param(True, "", NOW, id="a-check-pending-in-its-for-window-clean-from-now"),
])
def test_first_sight_with_a_check_pending(pending, healthy, clean):
    """A revision complete for hours whose check's condition already holds (inside its ``for``,
    not firing yet) may be a bad release: it is not known healthy at first sight."""
    rs = one(RevisionState.empty(1), "1", NOW - 7200.0, pending=pending)
    assert (rs.healthy.tolist(), rs.clean_since.tolist()) == ([healthy], [clean])


def test_a_check_pending_at_first_sight_then_clean_for_healthy_after():
    """Counted from first sight: known healthy after healthyAfter without a check firing, as a
    revision first seen with no completion time."""
    rs = one(RevisionState.empty(1), "1", NOW - 7200.0, pending=True)
    rs = one(rs, "1", NOW - 7200.0, now=NOW + 299.0)
    assert rs.healthy.tolist() == [""]
    rs = one(rs, "1", NOW - 7200.0, now=NOW + 300.0)
    assert rs.healthy.tolist() == ["1"]


def test_a_check_pending_after_first_sight_does_not_reset_clean():
    """Only the first sight reads pending checks; later, only firing ones void clean time (a
    condition that never lasts its ``for`` is not a failure)."""
    rs = one(RevisionState.empty(1), "1", NOW - 120.0)
    rs = one(rs, "1", NOW - 120.0, pending=True, now=NOW + 180.0)
    assert rs.healthy.tolist() == ["1"]


def test_healthy_after_counts_from_the_known_completion():
    """Complete 2 min before first sight: known healthy 3 min later, not 5."""
    rs = one(RevisionState.empty(1), "1", NOW - 120.0)
    rs = one(rs, "1", NOW - 120.0, now=NOW + 179.0)
    assert rs.healthy.tolist() == [""]
    rs = one(rs, "1", NOW - 120.0, now=NOW + 180.0)
    assert rs.healthy.tolist() == ["1"]


@pytest.mark.parametrize("since", [
    pytest.param(NOW - 7200.0, id="long-complete-per-the-cluster"),
    pytest.param(np.nan, id="unknown"),
])
def test_a_later_revision_is_dated_by_its_first_sight(since):
    """A new revision (a release, or one that came while the controller was away) is current,
    complete and clean from when it is first seen: its blame windows start then."""
    rs = one(RevisionState.empty(1), "1", NOW - 7200.0)
    rs = one(rs, "2", since, now=NOW + 60.0)
    assert (rs.current.tolist(), rs.healthy.tolist()) == (["2"], ["1"])
    assert (rs.since.tolist(), rs.rollout_done_at.tolist(), rs.clean_since.tolist()) == ([NOW + 60.0],) * 3


def test_a_bad_release_met_at_start_up_is_never_a_rollback_target():
    """The controller starts while release 1 (complete for an hour) already fails its check,
    inside the check's ``for``; the team then ships release 2, as bad. Release 1 was never
    clean: release 2 gets NoHealthyRevision, not a rollback to release 1 (it was one before)."""
    p = params(check("errors", for_s=120.0), healthy_after_s=300.0, new_revision_window_s=600.0)
    w = world(p, (3,), revision="1", revision_since=[T0 - 3600], errors=0.5)

    def release(t, w):
        if t == 600:
            w.revision[0], w.revision_since = "2", None

    ds, _ = drive(w, None, range(0, 900, 15), before=release)
    assert str(ds[0].state.revisions.healthy[0]) == ""
    assert all(d.action[0] != Act.ROLLBACK for d in ds)
    reasons = {HealthReason(int(d.reason[0])).code for d in ds if d.now - T0 > 600}
    assert "NoHealthyRevision" in reasons


def seen(since: float, fired_until: float, *, pending=False) -> RevisionState:
    return update_revisions(P, RevisionState.empty(1), np.array(["1"], dtype=object), np.array([since]),
                            np.array([False]), np.array([False]), NOW, np.array([pending]), np.array([fired_until]))


@pytest.mark.parametrize("since, fired_until, healthy, clean", [
    pytest.param(NOW - 7200.0, np.nan, "1", NOW - 7200.0, id="no-firing-in-the-history-as-without"),
    pytest.param(NOW - 7200.0, NOW - 120.0, "", NOW - 120.0, id="fired-2m-ago-clean-only-since-then"),
    pytest.param(NOW - 7200.0, NOW - 600.0, "1", NOW - 600.0, id="fired-10m-ago-clean-for-healthy-after"),
    pytest.param(NOW - 7200.0, NOW - 300.0, "1", NOW - 300.0, id="fired-exactly-healthy-after-ago"),
    pytest.param(NOW - 120.0, NOW - 600.0, "", NOW - 120.0, id="fired-before-the-revision-completed"),
    pytest.param(NOW - 7200.0, np.inf, "", NOW, id="history-unreadable-clean-from-now"),
    pytest.param(np.nan, NOW - 600.0, "", NOW, id="completion-unknown-first-seen-now"),
])
def test_first_sight_with_the_checks_history(since, fired_until, healthy, clean):
    """A check that fired and recovered before the controller first saw the revision (the checks'
    history, runtime/check_history.py): the revision is clean only since its last firing; with
    the history unreadable, only from now; with no firing in it, as the cluster says."""
    rs = seen(since, fired_until)
    assert (rs.healthy.tolist(), rs.clean_since.tolist()) == ([healthy], [clean])


def test_the_history_is_read_on_first_sight_only():
    """A later cycle's fired_until (the shell passes it once) changes nothing: clean time is the
    core's from then on."""
    rs = seen(NOW - 7200.0, np.nan)
    later = update_revisions(P, rs, np.array(["1"], dtype=object), np.array([NOW - 7200.0]), np.array([False]),
                             np.array([False]), NOW + 15.0, np.array([False]), np.array([NOW + 10.0]))
    assert (later.healthy.tolist(), later.clean_since.tolist()) == (["1"], [NOW - 7200.0])
