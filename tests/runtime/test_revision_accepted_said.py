"""What `setpoint explain`, `setpoint status` and the RevisionWorseAccepted Event say of a revision
judged worse by a record check that the target's setpoint.io/accept-revision annotation accepts,
or that names another revision (the decisions of tests/core/test_revision_accepted.py's world).

Before, there was no acceptance: the revision was REVISION WORSE until replaced, whatever an SRE
decided. Now status reads "REVISION WORSE, accepted by annotation" (not alerted: the gauge follows
revision_worse), explain says what the acceptance changes and until when, and an acceptance of
another revision is said to accept nothing."""

from __future__ import annotations

import pytest

from controller.cli.records import _format_record, _health_cell
from controller.model import TargetRef
from controller.runtime.healing import revision_accepted_notice
from controller.runtime.status import _health_view
from tests.core.test_canary_recorded import PODS, _params, _run

WEB = TargetRef("default", "web", "StatefulSet")


def _health(accept: tuple[float, str] | None) -> dict:
    """The record's health of the last cycle (T0 + 20 min), web-4's pod check firing."""
    return _run(accept=accept, firing={PODS[4]})[-1].record(0, "db-heal", WEB.key).to_dict()


def _explain(health: dict) -> str:
    record = {"target": WEB.key, "at": 900.0, "current": 5, "ready": 5, "metrics": {}, "combined": 5,
              "stabilized": 5, "limited": 5, "desired": 5, "reason": "NoAction", "health": health}
    return _format_record(record)


SAID_ROWS = {
    # name: (accept, status cell line, an explain line)
    "accepted": ((0.0, "2"), "REVISION WORSE, accepted by annotation",
                 "revision accepted: revision 2, judged worse by canary-errors, is accepted by annotation "
                 "(setpoint.io/accept-revision=2): not said worse (setpoint_revision_worse 0), its pods restarted as "
                 "any revision's; it ends when revision 2 is replaced or the annotation removed"),
    "names another revision": ((0.0, "3"), "REVISION WORSE (accept-revision names 3: not accepted)",
                               "not accepted: setpoint.io/accept-revision names revision 3, not the current revision "
                               "2: it accepts nothing (an acceptance is of one revision, not of those after it)"),
    "no annotation": (None, "REVISION WORSE", "revision worse: revision 2, judged by canary-errors (action record)"),
}


@pytest.mark.parametrize("name", list(SAID_ROWS))
def test_status_and_explain_say_the_acceptance(name):
    accept, cell, line = SAID_ROWS[name]
    health = _health(accept)
    view = _health_view(health)
    assert cell in _health_cell(view).splitlines(), _health_cell(view)
    assert line in _explain(health), _explain(health)
    assert view["revision_worse"] == (name != "accepted") and view["revision_accepted"] == (name == "accepted")


def test_the_event_names_the_revision_the_checks_and_until_when():
    decision = _run(accept=(0.0, "2"), firing={PODS[4]})[-1]
    message = revision_accepted_notice(_params(), decision, 0, WEB, "db-heal")
    assert message == ("db-heal: revision 2 of StatefulSet web, judged worse by canary-errors, is accepted by "
                       "annotation setpoint.io/accept-revision=2: setpoint_revision_worse 0, its pods restarted as any "
                       "revision's; until revision 2 is replaced or the annotation removed"), message
