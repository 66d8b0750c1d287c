"""A standby says that it stands by and who holds the Lease; a take-over of a silent holder says
whose Lease it takes and why.

Found in a day-2 drill (two `setpoint run --leader-elect` replicas, the leader killed with
SIGKILL): the standby's log said "started" and nothing more for as long as it stood by, so the
on-call reading it could not tell a standby from a replica stuck before leader election; after the
kill it said "became the leader" with no word of the old holder. Through the real client and sim
serve's API server.
"""

from __future__ import annotations

import logging

import pytest

from tests.adapters.kube_helpers import server  # noqa: F401 (fixture)
from tests.adapters.test_leader_election import FakeClock, client_in, elector

STANDING_BY = "leader election: standing by, the lease shop/setpoint-leader is held by "
TAKING_OVER = "leader election: the lease shop/setpoint-leader held by pod-a has not changed for 5s: taking over"


# each row: the steps (who tries: a, b or c; "wait": the Lease duration passes; "a-stops":
# pod-a releases the Lease), and what pod-b says
@pytest.mark.parametrize("steps, said", [
    pytest.param(["a", "b", "a", "b", "a", "b"], [STANDING_BY + "pod-a"], id="a-standby-says-who-leads-once"),
    pytest.param(["a", "b", "a-stops", "c", "b"], [STANDING_BY + "pod-a", STANDING_BY + "pod-c"],
                 id="a-new-holder-is-said-again"),
    pytest.param(["a", "b", "wait", "b"], [STANDING_BY + "pod-a", TAKING_OVER], id="a-silent-holder-taken-over"),
    pytest.param(["b", "a", "b"], [], id="the-leader-says-no-standby"),
])
def test_a_standby_says_who_holds_the_lease(steps, said, server, tmp_path, caplog):  # noqa: F811
    mono = FakeClock()
    kw = dict(lease_duration_s=5, renew_deadline_s=4, retry_period_s=1, request_timeout_s=2)
    candidates = {n: elector(client_in(server, tmp_path / n), f"pod-{n}", mono, **kw) for n in "abc"}
    caplog.set_level(logging.INFO, logger="setpoint.kubernetes")
    try:
        for step in steps:
            mono.t += 1.0
            if step == "wait":
                mono.t += 5.0
            elif step == "a-stops":
                candidates["a"].stop()
            else:
                candidates[step].try_acquire_or_renew()
    finally:
        for c in candidates.values():
            c.api_client.close()
    lines = [r.getMessage() for r in caplog.records if getattr(r, "identity", None) == "pod-b"
             and (r.getMessage().startswith(STANDING_BY) or "taking over" in r.getMessage())]
    assert lines == said
