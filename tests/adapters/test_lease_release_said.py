"""A replica that stops says whether it released the leader Lease.

Found in a day-2 drill (SIGTERM to the leader, a rolling upgrade): its log said "stopping" and
"stopped", nothing of the Lease, so the on-call could not tell from it whether the standby would
take over at once or after the 15 s expiry. Through the real client and sim serve's API server.
"""

from __future__ import annotations

import logging

import pytest

from controller.adapters.kubernetes import LeaderElector
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.adapters.test_leader_election import NS, FakeClock, client_in, elector, lease_reader

RELEASED = "leader election: released the lease"


@pytest.mark.parametrize("leads, said, holder_after", [
    pytest.param(True, True, None, id="a-leader-releases-and-says-so"),
    pytest.param(False, False, "pod-b", id="a-standby-has-nothing-to-release"),
])
def test_stop_says_the_lease_was_released(leads, said, holder_after, server, tmp_path, caplog):  # noqa: F811
    folders = {n: tmp_path / n for n in "ab"}
    for f in folders.values():
        f.mkdir()
    a = LeaderElector(official_client(server, folders["a"]), NS, "handover", "pod-a", retry_period_s=0.2)
    b = LeaderElector(official_client(server, folders["b"]), NS, "handover", "pod-b", retry_period_s=0.2)
    first, second = (a, b) if leads else (b, a)
    assert first.try_acquire_or_renew() and not second.try_acquire_or_renew()
    caplog.set_level(logging.INFO, logger="setpoint.kubernetes")
    a.stop()
    said_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(RELEASED)]
    assert bool(said_lines) == said, said_lines
    read = lease_reader(server, tmp_path / "reader", lease="handover")
    assert read() == holder_after
    read.api_client.close()
    b.stop()


SAID = ("leader election: became the leader", "leader election: lost the lease")


@pytest.mark.parametrize("waits, said", [
    pytest.param([1.0, 1.0], [SAID[0]], id="renewed-in-time-said-once"),
    # the deadline passed while the loop waited (a slow API server, a paused process): fenced
    # in between, so the loss is said before the renewal that wins the lease back
    pytest.param([1.0, 4.5], [SAID[0], SAID[1], SAID[0]], id="lapsed-between-tries-lost-then-won-back"),
    pytest.param([6.0], [SAID[0], SAID[1], SAID[0]], id="lapsed-after-the-first-try"),
])
def test_each_change_of_leadership_is_said(waits, said, server, tmp_path, caplog):  # noqa: F811
    mono = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", mono, lease_duration_s=5, renew_deadline_s=4,
                retry_period_s=1, request_timeout_s=2)
    caplog.set_level(logging.INFO, logger="setpoint.kubernetes")
    held = a.round(False)
    for wait in waits:  # the loop's waits between tries, on the candidate's monotonic clock
        mono.t += wait
        held = a.round(held)
    assert held
    assert [r.getMessage() for r in caplog.records if r.getMessage() in SAID] == said
    a.api_client.close()
