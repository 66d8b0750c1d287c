"""Leader election on a Lease through the real client and the simulated API server."""

from __future__ import annotations

import time

import pytest

from controller.adapters.kubernetes import LeaderElector
from tests.adapters.kube_helpers import api_client, official_client, server  # noqa: F401 (fixtures)


class FakeClock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def client_in(server, folder):
    folder.mkdir(parents=True, exist_ok=True)
    return official_client(server, folder)


def elector(client, identity, clock=None, **kw):
    clock = clock or FakeClock()
    return LeaderElector(client, "shop", "setpoint-leader", identity, clock=clock, monotonic=clock, **kw)


def test_one_candidate_wins_and_the_other_stands_by(server, tmp_path):
    a_client, b_client = client_in(server, tmp_path / "a"), client_in(server, tmp_path / "b")
    clock = FakeClock()
    a, b = elector(a_client, "pod-a", clock), elector(b_client, "pod-b", clock)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert not b.try_acquire_or_renew() and not b.is_leader()
    clock.t += 5
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()  # renewed: still a's


def test_an_expired_lease_is_taken_over(server, tmp_path):
    clock = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", clock, lease_duration_s=15, renew_deadline_s=10)
    b = elector(client_in(server, tmp_path / "b"), "pod-b", clock, lease_duration_s=15, renew_deadline_s=10)
    assert a.try_acquire_or_renew()
    clock.t += 11
    assert not a.is_leader()  # a could not renew within its deadline: it stops acting first
    assert not b.try_acquire_or_renew()  # the lease itself is still valid (15 s)
    clock.t += 5
    assert b.try_acquire_or_renew() and b.is_leader()
    lease = b.api.read_namespaced_lease("setpoint-leader", "shop")
    assert lease.spec.holder_identity == "pod-b" and lease.spec.lease_transitions == 1


def test_racing_writers_get_one_winner(server, tmp_path):
    """Both read the expired lease, both write with that resourceVersion: one gets 409."""
    clock = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", clock)
    b = elector(client_in(server, tmp_path / "b"), "pod-b", clock)
    c = elector(client_in(server, tmp_path / "c"), "pod-c", clock)
    assert a.try_acquire_or_renew()
    clock.t += 60
    stale = b.api.read_namespaced_lease("setpoint-leader", "shop")
    assert c.try_acquire_or_renew()
    stale.spec.holder_identity = "pod-b"
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as exc:
        b.api.replace_namespaced_lease("setpoint-leader", "shop", stale)
    assert exc.value.status == 409


def test_release_on_stop_hands_over_at_once(server, tmp_path):
    a = LeaderElector(client_in(server, tmp_path / "a"), "shop", "handover", "pod-a", retry_period_s=0.2).start()
    b = LeaderElector(client_in(server, tmp_path / "b"), "shop", "handover", "pod-b", retry_period_s=0.2)
    deadline = time.monotonic() + 5
    while not a.is_leader() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a.is_leader()
    a.stop()
    assert b.try_acquire_or_renew()  # released: no need to wait for the 15 s expiry
    assert not a.is_leader()
