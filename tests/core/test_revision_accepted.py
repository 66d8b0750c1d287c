"""A revision judged worse by a record check, accepted on purpose by the target's
setpoint.io/accept-revision annotation.

Before, the only way to keep such a revision was to silence SetpointRevisionWorse until the next
release, and the verdict went on holding its pods' restarts. Now an annotation naming the current
revision accepts it: not said worse (revision_worse false: the gauge 0, the alert resolves, reason
no longer RevisionWorseRecorded), its firing pods restarted as any revision's, and the record
says so (revision_accepted, accept_revision). An annotation naming another revision accepts
nothing and the record says which it names. The verdict itself is unchanged: remove the annotation
and the revision is said worse again.

The world of tests/core/test_canary_recorded.py at fixed times (T0 + s, 15 s cycles): StatefulSet
web, revision 1 alone for 10 minutes, then canary revision 2 on web-2..4 (partition 2), serving with
5% errors against 0.2%; the pod check firing on one canary pod (web-4) from 10 minutes (ONE; all three
canary pods would be systemic: a rolling restart, refused at a partition); 20 minutes in all."""

from __future__ import annotations

import pytest

from controller.core.health.params import Act
from tests.core.test_canary_recorded import PODS, _run

ONE = dict(firing={PODS[4]})

ROWS = {
    # name: (accept (from s, revision) or None, run arguments, at the end (revision_worse,
    #        revision_accepted, accept_revision), a cycle reads RevisionWorseRecorded, web-4 restarted)
    "no annotation: worse, its pod held": (None, ONE, (True, False, ""), True, False),
    "accepts revision 2 from the start: never said worse, its pod restarted": (
        (0.0, "2"), ONE, (False, True, "2"), False, True),
    "accepted at 15 min, after the verdict: its pod restarted from then": (
        (900.0, "2"), ONE, (False, True, "2"), True, True),
    "names revision 3, not the current one: nothing accepted": ((0.0, "3"), ONE, (True, False, "3"), True, False),
    "no annotation, no pod firing: worse": (None, dict(firing=set()), (True, False, ""), True, False),
    "accepts revision 2, no pod firing: quiet": ((0.0, "2"), dict(firing=set()), (False, True, "2"), False, False),
    "a Deployment's record check, accepted": (
        (0.0, "2"), dict(kind="Deployment", partitioned=False, firing=set()), (False, True, "2"), False, False),
}


def _last(ds) -> tuple:
    rec = ds[-1].record(0, "p", "default/web").to_dict()
    return rec.get("revision_worse", False), rec.get("revision_accepted", False), rec.get("accept_revision", "")


@pytest.mark.parametrize("name", list(ROWS))
def test_an_acceptance_of_the_current_revision_ends_the_verdicts_effects(name):
    accept, args, end, said, restarted = ROWS[name]
    ds = _run(accept=accept, **args)
    reasons = [d.record(0, "p", "default/web").reason for d in ds]
    assert _last(ds) == end, reasons
    assert bool(ds[-1].revision_recorded[0]) == end[0] and bool(ds[-1].revision_accepted[0]) == end[1]
    assert ("RevisionWorseRecorded" in reasons) == said, reasons
    assert any(PODS[4] in d.restart_pods(0) for d in ds) == restarted, reasons


def test_the_verdict_was_said_before_a_late_acceptance():
    """Accepted at 15 minutes: said worse (and its pods held) until then, accepted after."""
    ds = _run(accept=(900.0, "2"), **ONE)
    recs = [d.record(0, "p", "default/web") for d in ds]
    before = [r for r in recs if r.at < ds[0].now + 300.0]
    after = [r for r in recs if r.at >= ds[0].now + 300.0]
    assert any(r.revision_worse for r in before) and not any(r.revision_accepted for r in before)
    assert all(r.revision_accepted and not r.revision_worse for r in after), [r.reason for r in after]
    assert not any(Act(int(d.action[0])) == Act.RESTART_POD for d in ds if d.now < ds[0].now + 300.0)
