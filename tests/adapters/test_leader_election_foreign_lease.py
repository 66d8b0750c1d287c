"""A Lease left by another holder with an absurd record (a huge leaseDurationSeconds, a renewTime
in the future, no duration at all) delays a takeover by a bounded time, through the real client
and the simulated API server.

Found by fuzzing `setpoint run --leader-elect`: a Lease with leaseDurationSeconds 2**31-1 meant
no leader for 68 years.
"""

from __future__ import annotations

import itertools
import time

import pytest
from kubernetes import client

from controller.adapters.kubernetes import FOREIGN_LEASE_FACTOR, LeaderElector
from tests.adapters.kube_helpers import api_client, server  # noqa: F401 (fixtures)

NS = "shop"
OWN_S = 15.0  # the candidate's own lease duration in the fake-clock tests
CAP_S = FOREIGN_LEASE_FACTOR * OWN_S
LEASES = (f"foreign-{i}" for i in itertools.count())


@pytest.fixture
def api(api_client):
    """A client of the simulated API server (not driven: nothing changes unless a test writes)."""
    return api_client


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def ghost_lease(api: client.ApiClient, name: str, **spec) -> None:
    """Create Lease ``name`` held by "ghost", who never renews it."""
    body = client.V1Lease(metadata=client.V1ObjectMeta(name=name, namespace=NS),
                          spec=client.V1LeaseSpec(holder_identity="ghost", **spec))
    client.CoordinationV1Api(api).create_namespaced_lease(NS, body, _request_timeout=5)


def takeover_after_s(api: client.ApiClient, name: str, limit_s: float, step_s: float = 0.5) -> float | None:
    """Seconds of fake monotonic time until a candidate (own lease OWN_S) takes the Lease over,
    trying every ``step_s``; None if it has not within ``limit_s``."""
    mono = FakeClock()
    candidate = LeaderElector(api, NS, name, "pod-a", lease_duration_s=OWN_S, renew_deadline_s=10, monotonic=mono)
    start = mono.t
    while mono.t - start <= limit_s:
        if candidate.try_acquire_or_renew():
            return mono.t - start
        mono.t += step_s
    return None


RECORDS = [  # (spec of the ghost's Lease, seconds until the takeover)
    pytest.param({"lease_duration_seconds": 10**9}, CAP_S, id="huge-duration-capped"),
    pytest.param({"lease_duration_seconds": 2**31 - 1}, CAP_S, id="int32-max-duration-capped"),
    pytest.param({"lease_duration_seconds": 100}, 100.0, id="longer-than-ours-within-the-cap-honoured"),
    pytest.param({"lease_duration_seconds": 5}, 5.0, id="shorter-than-ours-honoured"),
    pytest.param({}, OWN_S, id="no-duration-waits-our-own"),
    pytest.param({"lease_duration_seconds": 15, "renew_time": "2099-01-01T00:00:00Z"}, 15.0,
                 id="renew-time-in-the-future-ignored"),
    pytest.param({"lease_duration_seconds": 10**9, "renew_time": "2099-01-01T00:00:00Z"}, CAP_S,
                 id="huge-duration-and-future-renew-time-capped"),
]


@pytest.mark.parametrize(("spec", "expected_s"), RECORDS)
def test_a_foreign_lease_is_taken_over_within_a_bounded_time(api, spec, expected_s):
    name = next(LEASES)
    ghost_lease(api, name, **spec)
    assert takeover_after_s(api, name, limit_s=CAP_S + 10) == expected_s
    held = client.CoordinationV1Api(api).read_namespaced_lease(name, NS, _request_timeout=5).spec
    assert held.holder_identity == "pod-a" and held.lease_duration_seconds == 15 and held.lease_transitions == 1


DURATIONS = [  # (the record's leaseDurationSeconds, seconds honoured by a candidate whose own is 15 s)
    pytest.param(None, 15.0, id="missing"),
    pytest.param(0, 15.0, id="zero"),
    pytest.param(-30, 15.0, id="negative"),
    pytest.param(True, 15.0, id="not-a-number"),
    pytest.param(1, 1.0, id="one-second"),
    pytest.param(150, 150.0, id="at-the-cap"),
    pytest.param(151, 150.0, id="just-over-the-cap"),
    pytest.param(2**31 - 1, 150.0, id="int32-max"),
]


@pytest.mark.parametrize(("record_s", "honoured_s"), DURATIONS)
def test_the_honoured_duration_is_bounded_by_ours(api, record_s, honoured_s):
    """Durations the API server refuses to store (0, negative) cannot be put in a Lease here:
    they are checked on the function that reads the record."""
    candidate = LeaderElector(api, NS, "unused", "pod-a", lease_duration_s=OWN_S, renew_deadline_s=10)
    assert candidate.honoured_duration_s(record_s) == honoured_s


def test_a_running_elector_takes_over_a_lease_with_a_huge_duration(api):
    """In real time: own lease 1 s, so the int32-max record is honoured FOREIGN_LEASE_FACTOR s."""
    own_s = 1.0
    cap_s = FOREIGN_LEASE_FACTOR * own_s
    ghost_lease(api, "huge", lease_duration_seconds=2**31 - 1)
    elector = LeaderElector(api, NS, "huge", "pod-a", lease_duration_s=own_s, renew_deadline_s=0.8,
                            retry_period_s=0.1, request_timeout_s=0.5)
    started = time.monotonic()
    elector.start()
    try:
        time.sleep(cap_s / 2)
        assert not elector.is_leader()  # the record is honoured up to the cap
        while not elector.is_leader() and time.monotonic() - started < cap_s + 5:
            time.sleep(0.05)
        took_s = time.monotonic() - started
        assert elector.is_leader() and cap_s <= took_s < cap_s + 5, took_s
        lease = client.CoordinationV1Api(api).read_namespaced_lease("huge", NS, _request_timeout=5).spec
        assert lease.holder_identity == "pod-a" and lease.lease_duration_seconds == 1  # own 1 s, whole seconds
    finally:
        elector.stop()
