"""What the RevisionWorseRecorded Event and log line, `setpoint explain` and `setpoint status` say of
a StatefulSet's canary judged worse by a record revision check (the decision from the core table
of tests/core/test_canary_recorded.py; the same, end to end through sim serve, in
tests/e2e/test_statefulset_canary_judged_live.py).

Before, nothing was said: the verdict was in the records' revision_checks only. A Deployment's record
check (a rollback check put on record first, to watch what it would do) is said the same way, in a
Deployment's words: its new ReplicaSet's revision against the old one's, `kubectl rollout undo
deployment/NAME` as the way back; before, nothing was said of it either."""

from __future__ import annotations

import numpy as np
import pytest

from controller.cli.records import _format_record, _health_cell
from controller.model import PodStatus, TargetRef, TargetStatus
from controller.runtime.healing import revision_worse_notice
from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import HealthParams
from controller.core.health.revision_test import RevisionTestParams, ratio_stats
from tests.core.healing import T0, pod_check
from tests.core.test_canary_recorded import PODS, STABLE_RATIO, _params, _reasons, _run

WEB = TargetRef("default", "web", "StatefulSet")
API = TargetRef("default", "api", "Deployment")


def _status(partition: int) -> TargetStatus:
    """web-0, web-1 on revision 1; web-2..4 on the canary's revision 2."""
    pods = tuple(PodStatus(f"web-{k}", revision="2" if k >= 2 else "1") for k in range(5))
    return TargetStatus(WEB, 5, 5, 5, revision="2", pods=pods, partition=partition)


def _judged(**kw):
    ds = _run(firing=set(), **kw)
    return ds[_reasons(ds).index("RevisionWorseRecorded")]


#: two record checks with names as long as a team's (the notice of both passes 1 KB)
TWO_CHECKS = ("canary-error-ratio-against-stable-pods", "canary-upstream-gateway-5xx-ratio-against-stable-pods")
LONG = TargetRef("payments-production", "payments-ledger-writer", "StatefulSet")


def two_checks_judged() -> tuple[HealthParams, object]:
    """Both TWO_CHECKS judge canary revision 2 (web's pods 2..4, 5% errors against 0.2%) worse:
    the params and the decision of the cycle at T0 + 20 min (15 s cycles from T0)."""
    params = HealthParams.of((pod_check("pod-errors", for_s=30.0),), healthy_after_s=300.0, rollback_window_s=600.0,
                             revision_checks=tuple(RevisionTestParams(n, rollback=False) for n in TWO_CHECKS))
    state = HealthState.empty(1, params)
    for k in range(80):
        t, on = 15.0 * k, k >= 40
        pods = PodTable.of(np.zeros(5, np.int64), PODS, np.zeros((5, 1)), checks=1,
                           new_revision=np.array([not on or j >= 2 for j in range(5)]))
        n1, n0 = (540.0, 360.0) if on else (900.0, 0.0)
        obs = HealthObservation.of([5], checks=1, revision=["2" if on else "1"], pods=pods,
                                   revision_new=ratio_stats([[n1, n1]], [[n1 * (0.05 if on else STABLE_RATIO)] * 2]),
                                   revision_old=ratio_stats([[n0, n0]], [[n0 * STABLE_RATIO] * 2]),
                                   rollback_supported=[False], partitioned=[on])
        decision = heal(params, obs, state, T0 + t)
        state = decision.state
    return params, decision


def long_status() -> TargetStatus:
    """LONG's pods as _status(2)'s: 0..1 on revision 1, 2..4 on the canary's 2, partition 2."""
    pods = tuple(PodStatus(f"{LONG.name}-{k}", revision="2" if k >= 2 else "1") for k in range(5))
    return TargetStatus(LONG, 5, 5, 5, revision="2", pods=pods, partition=2)


def _deployment(pods_on: dict[str, int]) -> TargetStatus:
    """Deployment api, its ReplicaSets' revisions 1 and 2 (the new one); ``pods_on``: revision -> pods."""
    pods = tuple(PodStatus(f"api-{rev}-{k}", revision=rev) for rev, count in pods_on.items() for k in range(count))
    return TargetStatus(API, 5, 5, 5, revision="2", revisions=("1", "2"), pods=pods)


def test_the_event_names_both_revisions_the_comparison_and_the_undo():
    """The key facts first (revisions, the check, the verdict, the undo, until when), then the
    comparison and what is not done: an Event's message is cut to 1 KB at its end."""
    message = revision_worse_notice(_params(), _judged(), 0, _status(2), WEB, "db-heal")
    assert message.startswith("db-heal: canary revision 2 (3 of 5 pods, partition 2) of StatefulSet web is worse "
                              "than the stable revision 1 by canary-errors; recorded only: `kubectl rollout undo "
                              "statefulset/web -n default` puts them back on 1; setpoint_revision_worse stays 1 "
                              "until revision 2 is rolled back or replaced. canary-errors: error ratio 5.00% over "
                              ), message
    assert "against 0.20% over " in message and ", worse by 2x at a 1.00% false rate (statistic " in message, message
    assert message.endswith(". Setpoint does not roll back a StatefulSet, nor restart that revision's "
                            "pods while the stable revision's pods serve beside them (they come back on it), nor "
                            "roll-restart it (a new revision of the same code); running alone, a failing pod of it is "
                            "restarted as on any revision"), message


def test_two_checks_are_named_before_either_comparison():
    """Before, each check's name came with its comparison: the second one's past the first 1 KB
    (where an Event's message is cut)."""
    params, judged = two_checks_judged()
    message = revision_worse_notice(params, judged, 0, long_status(), LONG, "payments-ledger-healing")
    assert len(message.encode()) > 1024, len(message.encode())
    head = message.encode()[:400].decode()
    assert head.startswith("payments-ledger-healing: canary revision 2 (3 of 5 pods, partition 2) of StatefulSet "
                           "payments-ledger-writer is worse than the stable revision 1 by "
                           f"{TWO_CHECKS[0]}, {TWO_CHECKS[1]}; recorded only: `kubectl rollout undo "
                           "statefulset/payments-ledger-writer -n payments-production` puts them back on 1"), head


def test_a_rolling_update_without_a_partition_is_a_new_revision_not_a_canary():
    message = revision_worse_notice(_params(), _judged(), 0, _status(0), WEB, "db-heal")
    assert "new revision 2 (3 of 5 pods) of StatefulSet web is worse than the stable revision 1" in message, message


def test_explain_and_status_say_it():
    health = _judged().record(0, "db-heal", WEB.key).to_dict()
    record = {"target": WEB.key, "at": 900.0, "current": 5, "ready": 5, "metrics": {}, "combined": 5,
              "stabilized": 5, "limited": 5, "desired": 5, "reason": "NoAction", "health": health}
    text = _format_record(record)
    assert "health: no action [RevisionWorseRecorded] trigger canary-errors" in text, text
    assert ("revision worse: revision 2, judged by canary-errors (action record); its comparison runs: said until "
            "revision 2 is rolled back or replaced") in text, text
    assert ("not acted on: no rollback for a record check (nor of a StatefulSet at all), no rolling restart (a new "
            "revision of the same code), no restart of its pods while the stable revision's pods serve beside them "
            "(they come back on it); running alone, its firing pods are restarted as any revision's") in text, text
    assert "REVISION WORSE" in _health_cell({**health, "checks": []}).splitlines()


DEPLOYMENT_ROWS = {
    # name: (pods per revision, the new revision's words, the old revision named)
    "mid-rollout: the old ReplicaSet's pods name it": ({"1": 2, "2": 3}, "revision 2 (3 of 5 pods)", "1"),
    "rollout done: the ReplicaSet kubectl rollout undo goes to": ({"2": 5}, "revision 2 (5 of 5 pods)", "1"),
}


@pytest.mark.parametrize("name", list(DEPLOYMENT_ROWS))
def test_a_deployments_record_check_is_said_in_a_deployments_words(name):
    pods_on, what, old = DEPLOYMENT_ROWS[name]
    judged = _judged(kind="Deployment", partitioned=False)
    message = revision_worse_notice(_params(), judged, 0, _deployment(pods_on), API, "api-heal")
    assert message.startswith(f"api-heal: the new ReplicaSet's revision 2 ({what.split('(')[1]} of Deployment api is "
                              f"worse than the old ReplicaSet's revision {old} by canary-errors; recorded only (the "
                              "check's action is record): `kubectl rollout undo deployment/api -n default` goes back "
                              f"to revision {old}; setpoint_revision_worse stays 1 until revision 2 is rolled back or "
                              "replaced. canary-errors: error ratio 5.00% over "), message
    assert message.endswith(". Setpoint does not roll back for it, nor restart that revision's pods while the stable "
                            "revision's pods serve beside them (they come back on it), nor roll-restart it (a new "
                            "revision of the same code); running alone, a failing pod of it is restarted as on any "
                            "revision"), message
    assert "StatefulSet" not in message and "partition" not in message, message


def test_pods_terminating_do_not_name_the_old_revision():
    """Mid-rollout to revision 2 (1 pod of revision 1 left), while 2 pods of an earlier revision 0
    still terminate: the old ReplicaSet is revision 1 (where `kubectl rollout undo` goes), not the
    revision of the most pods listed (before: 0)."""
    pods = (*(PodStatus(f"api-2-{k}", revision="2") for k in range(3)), PodStatus("api-1-0", revision="1"),
            *(PodStatus(f"api-0-{k}", revision="0", ready=False, deleted=True) for k in range(2)))
    status = TargetStatus(API, 4, 6, 4, revision="2", revisions=("0", "1", "2"), pods=pods)
    message = revision_worse_notice(_params(), _judged(kind="Deployment", partitioned=False), 0, status, API, "api-heal")
    assert message.startswith("api-heal: the new ReplicaSet's revision 2 (3 of 4 pods) of Deployment api is worse "
                              "than the old ReplicaSet's revision 1 by canary-errors"), message


def test_a_deployments_explain_and_status_say_it():
    health = _judged(kind="Deployment", partitioned=False).record(0, "api-heal", API.key).to_dict()
    record = {"target": API.key, "at": 900.0, "current": 5, "ready": 5, "metrics": {}, "combined": 5,
              "stabilized": 5, "limited": 5, "desired": 5, "reason": "NoAction", "health": health}
    text = _format_record(record)
    assert "health: no action [RevisionWorseRecorded] trigger canary-errors" in text, text
    assert "REVISION WORSE" in _health_cell({**health, "checks": []}).splitlines()


# past rollbackWindow (tests/core/test_revision_worse_lasts.py's table): the comparison has ended,
# revision 2 still runs; a quiet cycle, and a cycle that restarts a leaking pod of it (it runs alone)
PAST_WINDOW_ROWS = {
    "quiet, the comparison ended": ("nothing", 1695.0, "health: no action [RevisionWorseRecorded] trigger errors"),
    "a leaking pod of it restarted": ("leak", None, "health: restart-pod [RestartFiringPods] trigger pod-mem"),
}


@pytest.mark.parametrize("name", list(PAST_WINDOW_ROWS))
def test_explain_and_status_say_a_revision_judged_worse_past_its_window(name):
    """Before, past rollbackWindow nothing was said (the flag was off: status without REVISION WORSE,
    explain without a line), although revision 2 still ran; and on a cycle with another reason
    (a restart) neither said it even inside the window."""
    from controller.runtime.status import _health_view
    from tests.core.test_revision_worse_lasts import WINDOW_END_S, _run

    then, at, health_line = PAST_WINDOW_ROWS[name]
    ds = _run(then)
    d = ds[at] if at is not None else next(d for t, d in ds.items() if d.restart_pods(0))
    assert d.now - 1_700_000_000.0 > WINDOW_END_S and not d.revision_active[0]
    health = d.record(0, "api-heal", API.key).to_dict()
    record = {"target": API.key, "at": d.now, "current": 5, "ready": 5, "metrics": {}, "combined": 5,
              "stabilized": 5, "limited": 5, "desired": 5, "reason": "NoAction", "health": health}
    text = _format_record(record)
    assert health_line in text, text
    assert ("revision worse: revision 2, judged by errors (action record); its comparison has ended (rollbackWindow "
            "after the rollout), the verdict stands (final for the pair): said until revision 2 is rolled back or "
            "replaced") in text, text
    view = _health_view(health)
    assert view["revision_worse"] is True, view
    assert "REVISION WORSE" in _health_cell(view).splitlines()
