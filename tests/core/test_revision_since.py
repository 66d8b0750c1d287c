"""update_revisions with a revision's completion time known from the cluster (revision_since):
on first sight, a revision complete for longer than healthyAfter with no check firing is known
healthy at once; a later revision is dated by its first sight whatever the cluster says."""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.remediate import RevisionState, update_revisions
from tests.core.healing import T0, check, params

P = params(check(), healthy_after_s=300.0)
NOW = T0 + 3600.0


def one(rs: RevisionState, revision: str, since: float, *, rollout=False, firing=False, now=NOW) -> RevisionState:
    return update_revisions(P, rs, np.array([revision], dtype=object), np.array([since]), np.array([rollout]),
                            np.array([firing]), now)


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
