"""What ``observe_health`` (controller/runtime/healing.py) carries from the cluster's TargetStatus
into the core's HealthObservation: ``reached`` (walk_reach: the ordinals a StatefulSet's pods
reach, a pod deleted below the top not lowering it), ``ordinal_start`` (spec.ordinals.start) and
``accepted`` (the setpoint.io/accept-revision annotation, trimmed). Before these rows only the e2e
tests saw that wiring; each row fails if one field is dropped on the way.

Fixed times: T0; every pod created an hour before, Ready.
"""

from __future__ import annotations

import pytest

from controller.model import ACCEPT_REVISION_ANNOTATION, PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import HealthQueries, observe_health
from tests.policy.helpers import load_one, policy_with

T0 = 1_700_000_000.0
OLD = T0 - 3600.0
DB = TargetRef("default", "db", "StatefulSet")
WEB = TargetRef("default", "web", "Deployment")

# a hung check sends no query: the observation is the cluster's alone
HEALTH_ONLY = """\
  targets: {namespace: default, names: [db, web]}
  health:
    checks:
      - name: hung-pod
        hung: {notReadyFor: 2m, startup: 5m}
        action: restart-pod
"""


class NoQueries:
    """A metrics source that must not be asked: any query fails the test."""

    def query(self, *args, **kwargs):
        raise AssertionError(f"a hung check sent a query: {args}")


def pod(name: str) -> PodStatus:
    return PodStatus(name, phase="Running", ready=True, created_time=OLD, start_time=OLD, revision="7")


def status(ref: TargetRef, names: list[str], spec: int, **fields) -> TargetStatus:
    """``ref``'s status with pods ``names`` (status.replicas = how many are listed)."""
    return TargetStatus(ref, spec_replicas=spec, status_replicas=len(names), ready_replicas=len(names),
                        revision="7", pods=tuple(pod(n) for n in names), **fields)


def observe(statuses: dict[TargetRef, TargetStatus]):
    params = load_one(policy_with(HEALTH_ONLY)).health_params
    targets = [DB, WEB]
    view = ClusterView.from_statuses(targets, statuses)
    return observe_health(HealthQueries(params, ("",)), NoQueries(), targets, view, T0, [], None, [])


# name: (statuses of db (StatefulSet) and web (Deployment), expected (reached, ordinal_start, accepted),
# each a [db, web] list)
ROWS = {
    "ordinals from 5, all there": (
        {DB: status(DB, [f"db-{k}" for k in range(5, 10)], 5, ordinal_start=5, ordered=True),
         WEB: status(WEB, ["web-a", "web-b"], 2)},
        ([5, 2], [5, 0], ["", ""])),
    "ordinals from 5, db-7 deleted below the top: still reaches 5 of 5, status.replicas 4": (
        {DB: status(DB, ["db-5", "db-6", "db-8", "db-9"], 5, ordinal_start=5, ordered=True),
         WEB: status(WEB, ["web-a", "web-b"], 2)},
        ([5, 2], [5, 0], ["", ""])),
    "the top pod not created yet: reaches 4 of 5 (a walk up)": (
        {DB: status(DB, ["db-5", "db-6", "db-7", "db-8"], 5, ordinal_start=5, ordered=True),
         WEB: status(WEB, ["web-a", "web-b"], 2)},
        ([4, 2], [5, 0], ["", ""])),
    "accept-revision annotations, trimmed, on each kind": (
        {DB: status(DB, ["db-0", "db-1"], 2, annotations=((ACCEPT_REVISION_ANNOTATION, " db-7c9f "),)),
         WEB: status(WEB, ["web-a"], 1, annotations=(("other", "x"), (ACCEPT_REVISION_ANNOTATION, "3")))},
        ([2, 1], [0, 0], ["db-7c9f", "3"])),
    "web not listed: status.replicas of the view, start 0, nothing accepted": (
        {DB: status(DB, ["db-0"], 1)},
        ([1, 0], [0, 0], ["", ""])),
}


@pytest.mark.parametrize("statuses, expected", list(ROWS.values()), ids=list(ROWS))
def test_the_observation_carries_the_walk_the_ordinals_and_the_acceptance(statuses, expected):
    obs = observe(statuses)
    assert obs.reached is not None and obs.ordinal_start is not None and obs.accepted is not None
    assert (obs.reached.tolist(), obs.ordinal_start.tolist(), list(obs.accepted)) == expected
