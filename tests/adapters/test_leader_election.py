"""Leader election on a Lease and the write fence, through the real client and the simulated
API server.

Time is injected: every candidate shares one fake monotonic clock (replicas' monotonic clocks
run at the same rate) and has its own wall clock, skewed by minutes where a test says so.
Expiry must depend on the monotonic clock only, as in client-go.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kubernetes import WRITE_METHODS, KubernetesCluster, LeaderElector, fence_with_lease
from controller.errors import ActuationError, NotLeader
from controller.model import Action, ActionKind, TargetRef
from controller.runtime.actuate import RetryPolicy, apply_with_retries
from tests.adapters.kube_helpers import api_client, official_client, server  # noqa: F401 (fixtures)

NS, LEASE = "shop", "setpoint-leader"
LEASE_PATH = rf"/leases/{LEASE}$"
EPOCH = 1_800_000_000.0
WEB = TargetRef(NS, "web")


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def client_in(server, folder):
    folder.mkdir(parents=True, exist_ok=True)
    return official_client(server, folder)


def elector(api, identity, mono, skew_s=0.0, **kw):
    """A candidate whose wall clock is ``skew_s`` off the true time."""
    return LeaderElector(api, NS, LEASE, identity, clock=lambda: EPOCH + skew_s + mono.t, monotonic=mono, **kw)


def lease_reader(server, folder, lease=LEASE):
    """The Lease's holder identity now (a function); its ``api_client`` to close."""
    api = client.CoordinationV1Api(client_in(server, folder))

    def read() -> str | None:
        try:
            return api.read_namespaced_lease(lease, NS).spec.holder_identity
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    read.api_client = api.api_client
    return read


# ------------------------------------------------------------------------------ election
def test_one_candidate_wins_and_the_other_stands_by(server, tmp_path):
    mono = FakeClock()
    a, b = elector(client_in(server, tmp_path / "a"), "pod-a", mono), elector(client_in(server, tmp_path / "b"), "pod-b", mono)
    assert a.try_acquire_or_renew() and a.is_leader()
    assert not b.try_acquire_or_renew() and not b.is_leader()
    mono.t += 5
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()  # renewed: still a's


def test_is_leader_ends_at_the_renew_deadline_and_takeover_waits_a_lease_duration(server, tmp_path):
    mono = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", mono, lease_duration_s=15, renew_deadline_s=10)
    b = elector(client_in(server, tmp_path / "b"), "pod-b", mono, lease_duration_s=15, renew_deadline_s=10)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()  # b sees the record now
    mono.t += 9.999
    assert a.is_leader()
    mono.t += 0.001
    assert not a.is_leader()  # no renewal within its deadline: a stops acting first
    mono.t += 4.999
    assert not b.try_acquire_or_renew()  # the record has not been unchanged for 15 s yet
    mono.t += 0.001
    assert b.try_acquire_or_renew() and b.is_leader()
    lease = b.api.read_namespaced_lease(LEASE, NS)
    assert lease.spec.holder_identity == "pod-b" and lease.spec.lease_transitions == 1
    assert not a.try_acquire_or_renew() and not a.is_leader()


def test_a_candidate_that_starts_late_waits_a_full_lease_duration(server, tmp_path):
    """It cannot know how long the record has been unchanged: it times from its first sight."""
    mono = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", mono)
    assert a.try_acquire_or_renew()
    mono.t += 3600  # a died long ago by the Lease's renewTime
    b = elector(client_in(server, tmp_path / "b"), "pod-b", mono)
    assert not b.try_acquire_or_renew()
    mono.t += 15
    assert b.try_acquire_or_renew()


SKEWS = [  # wall clock offsets (s) of the holder a and the standby b
    pytest.param(0, 0, id="same-clocks"),
    pytest.param(0, 300, id="standby-5-min-ahead"),
    pytest.param(0, -300, id="standby-5-min-behind"),
    pytest.param(-300, 300, id="holder-behind-standby-ahead"),
    pytest.param(600, -600, id="holder-ahead-standby-behind"),
]


@pytest.mark.parametrize(("skew_a", "skew_b"), SKEWS)
def test_skewed_wall_clocks_neither_make_two_leaders_nor_delay_takeover(server, tmp_path, skew_a, skew_b):
    mono = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", mono, skew_a)
    b = elector(client_in(server, tmp_path / "b"), "pod-b", mono, skew_b)
    for _ in range(30):  # a renews every 2 s for a minute: b never takes over
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
        mono.t += 2
    last_seen_change = mono.t - 2  # b read a's last renewal right after it was written
    taken_at = None
    while taken_at is None and mono.t < last_seen_change + 60:  # a is gone; b retries every 0.5 s
        if b.try_acquire_or_renew():
            taken_at = mono.t
        mono.t += 0.5
    assert taken_at == last_seen_change + 15  # exactly one lease duration of b's own time


def test_racing_writers_get_one_winner(server, tmp_path):
    """Both read the expired lease, both write with that resourceVersion: one gets 409."""
    mono = FakeClock()
    a = elector(client_in(server, tmp_path / "a"), "pod-a", mono)
    b = elector(client_in(server, tmp_path / "b"), "pod-b", mono)
    c = elector(client_in(server, tmp_path / "c"), "pod-c", mono)
    assert a.try_acquire_or_renew() and not c.try_acquire_or_renew()
    mono.t += 60
    stale = b.api.read_namespaced_lease(LEASE, NS)
    assert c.try_acquire_or_renew()
    stale.spec.holder_identity = "pod-b"
    with pytest.raises(ApiException) as exc:
        b.api.replace_namespaced_lease(LEASE, NS, stale, _request_timeout=5)
    assert exc.value.status == 409


def test_lease_duration_must_exceed_the_renew_deadline(api_client):
    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElector(api_client, NS, LEASE, "pod-a", lease_duration_s=10, renew_deadline_s=10)


def test_release_on_stop_hands_over_at_once(server, tmp_path):
    a = LeaderElector(client_in(server, tmp_path / "a"), NS, "handover", "pod-a", retry_period_s=0.2).start()
    b = LeaderElector(client_in(server, tmp_path / "b"), NS, "handover", "pod-b", retry_period_s=0.2)
    deadline = time.monotonic() + 5
    while not a.is_leader() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert a.is_leader()
    a.stop()
    assert b.try_acquire_or_renew()  # released: no need to wait for the 15 s expiry
    assert not a.is_leader()


# ------------------------------------------------------------------------------ the fence
def fenced_cluster(server, folder, fence=None) -> KubernetesCluster:
    return KubernetesCluster(client_in(server, folder), qps=0, retry_backoff_s=0.01, request_timeout_s=3.0,
                             max_retries=3, fence=fence)


ACTIONS = [
    pytest.param(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=5, from_replicas=2), "PATCH", id="scale"),
    pytest.param(Action(ActionKind.ROLLING_RESTART, WEB, "Unhealthy"), "PATCH", id="rolling-restart"),
    pytest.param(Action(ActionKind.RESTART_POD, WEB, "Unhealthy", pod="web-0"), "DELETE", id="restart-pod"),
]


@pytest.mark.parametrize(("action", "method"), ACTIONS)
def test_a_fenced_write_is_not_sent_and_not_retried(server, tmp_path, action, method):
    cluster = fenced_cluster(server, tmp_path, fence=lambda: False)
    try:
        with pytest.raises(NotLeader) as exc:
            cluster.apply(action)
        assert exc.value.kind == "not-leader" and isinstance(exc.value, ActuationError)
        cluster.record_event(WEB, "HealingHeld", "held")
        assert cluster.events.flush()
        assert cluster.fenced == 2 and cluster.events.fenced == 1  # once each: never retried
        assert server.api.requests.count(method) == 0 and server.api.requests.count("POST") == 0
    finally:
        cluster.close()


def test_writes_go_out_while_the_fence_allows_them(server, tmp_path):
    allowed = [True]
    cluster = fenced_cluster(server, tmp_path, fence=lambda: allowed[0])
    try:
        cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=5, from_replicas=2))
        assert cluster.events.flush() and cluster.events.sent == 1
        allowed[0] = False
        with pytest.raises(NotLeader):
            cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=6, from_replicas=5))
        assert server.api.requests.count("PATCH", r"/deployments/web/scale$") == 1 and cluster.fenced == 1
        assert cluster.observe([WEB]).spec.tolist() == [5]  # reads are never fenced
    finally:
        cluster.close()


class Replica:
    """One controller replica: an adapter fenced by its elector, as `setpoint run --leader-elect`
    wires them (fence_with_lease), with its wall clock ``skew_s`` off."""

    def __init__(self, server, folder, identity, mono, lease=LEASE, skew_s=0.0):
        self.identity = identity
        self.cluster = fenced_cluster(server, folder)
        self.elector = fence_with_lease(self.cluster, NS, lease, identity, clock=lambda: EPOCH + skew_s + mono.t,
                                        monotonic=mono, lease_duration_s=15, renew_deadline_s=10)

    def elect(self) -> None:
        try:
            self.elector.try_acquire_or_renew()
        except ActuationError:
            pass  # as the elector's loop does: is_leader() expires on its own

    def scale(self, replicas: int) -> None:
        """As the Reconciler applies a scale (runtime/actuate.py): a conflict is re-read and retried
        (a new leader's last read of the Deployment may predate the old leader's writes)."""
        error, _ = apply_with_retries(self.cluster.apply, Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=replicas),
                                      RetryPolicy(), sleep=lambda s: None)
        assert error is None or isinstance(error, NotLeader), error
        try:
            self.cluster.events.flush()
        except NotLeader:
            pass


def test_a_leader_whose_renewals_fail_stops_writing_before_another_can_acquire(server, tmp_path):
    """a's Lease requests fail from second 5 on (injected 503s); b keeps its access. Every write
    in the server's request log comes from the Lease's holder at that moment, a's last write is
    before b's takeover, and a's writes stop at its renew deadline."""
    mono = FakeClock()
    a, b = Replica(server, tmp_path / "a", "pod-a", mono), Replica(server, tmp_path / "b", "pod-b", mono)
    holder = lease_reader(server, tmp_path / "reader")
    log = server.api.requests.recent
    writes = []  # (second, replica, lease holder right before, method, path)
    leading = {"pod-a": [], "pod-b": []}  # seconds in which each replica believed it led
    for second in range(40):
        for r in (a, b):
            if r is a and second >= 5:
                server.api.faults.inject(LEASE_PATH, status=503, times=1)  # consumed by a's next request
            r.elect()
            if r.elector.is_leader():
                leading[r.identity].append(second)
        for r in (a, b):
            at = holder()
            before = len(log)
            r.scale(2 + second % 5)  # a new value every second: the leader always writes
            writes += [(second, r.identity, at, m, p) for _, m, p in list(log)[before:] if m in WRITE_METHODS]
        mono.t += 1
    assert writes and all(who == at for _, who, at, _, _ in writes), [w for w in writes if w[1] != w[2]]
    a_writes = [s for s, who, *_ in writes if who == "pod-a"]
    b_writes = [s for s, who, *_ in writes if who == "pod-b"]
    # a renewed last at second 4: it writes until 4 + 10 (renew deadline); b, which saw that
    # renewal at second 4, takes over at 4 + 15 (lease duration)
    assert max(a_writes) == max(leading["pod-a"]) == 13 and min(b_writes) == min(leading["pod-b"]) == 19
    assert {m for _, _, _, m, _ in writes} == {"PATCH", "POST"}  # scale and its Event
    assert a.cluster.fenced > 0 and b.cluster.fenced > 0  # b was fenced while standing by
    assert holder() == "pod-b"
    for r in (a, b):
        r.cluster.close()
        r.elector.api_client.close()
    holder.api_client.close()


LEASES = iter(range(10**6))  # a Lease name of its own per example and row


@contextlib.contextmanager
def refused(api_client):
    """Requests of ``api_client`` go to a loopback port nothing listens on: connection refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = api_client.configuration
    # the kubeconfig loader's refresh hook would set the host back before each request
    host, hook = config.host, config.refresh_api_key_hook
    config.host, config.refresh_api_key_hook = f"http://127.0.0.1:{port}", None
    try:
        yield
    finally:
        config.host, config.refresh_api_key_hook = host, hook


def lease_fault(server, lease, fault) -> None:
    """Make the next request on the Lease ``lease`` fail as ``fault`` says: None (no fault),
    "get-503"/"get-429"/"put-503"/"put-429" (that method answered with that status, nothing
    done), "put-lost" (the PUT is applied but only after the client gave up: its answer is lost);
    "refused" is done by the caller (:func:`refused`)."""
    if fault in (None, "refused"):
        return
    method, kind = fault.split("-")
    if kind == "lost":
        server.api.faults.inject(rf"/leases/{lease}$", status=None, delay_s=LOST_DELAY_S, method="PUT")
    else:
        server.api.faults.inject(rf"/leases/{lease}$", status=int(kind), method=method.upper())


#: Seconds: the elector's request timeout in the fault tables, and how long a "lost" PUT is held
#: back by the server before it is applied (longer, so the client has given up by then).
SHORT_TIMEOUT_S, LOST_DELAY_S = 0.5, 0.8


class Pair:
    """Candidates a and b (lease 15 s, renew deadline 10 s) on a Lease of their own, each with an
    own client, and a reader; ``close()`` closes every client. ``frozen_wall_a``: a's wall clock
    stands still (so its renewals write the same renewTime)."""

    def __init__(self, server, folder, lease, mono, frozen_wall_a=False):
        self.server, self.lease, self.mono = server, lease, mono
        self.clients = [client_in(server, folder / n) for n in ("a", "b", "reader")]
        options = dict(lease_duration_s=15, renew_deadline_s=10, request_timeout_s=SHORT_TIMEOUT_S, monotonic=mono)
        wall_a = (lambda: EPOCH) if frozen_wall_a else (lambda: EPOCH + mono.t)
        self.by_name = {"a": LeaderElector(self.clients[0], NS, lease, "pod-a", clock=wall_a, **options),
                        "b": LeaderElector(self.clients[1], NS, lease, "pod-b", clock=lambda: EPOCH + mono.t, **options)}
        self.reader = client.CoordinationV1Api(self.clients[2])

    def stored(self):
        """The Lease as stored now: (resourceVersion, holder), (None, None) when absent."""
        try:
            lease = self.reader.read_namespaced_lease(self.lease, NS)
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        return lease.metadata.resource_version, lease.spec.holder_identity

    def step(self, who, fault) -> None:
        """One try of ``who`` with ``fault`` on its Lease requests; a lost PUT is waited for."""
        rv_before = self.stored()[0]
        lease_fault(self.server, self.lease, fault)
        elector = self.by_name[who]
        try:
            with refused(elector.api_client) if fault == "refused" else contextlib.nullcontext():
                elector.try_acquire_or_renew()
        except ActuationError:
            pass  # as the elector's loop does
        if fault == "put-lost":  # bounded wait until the server has applied it
            deadline = time.monotonic() + 5
            while self.stored()[0] == rv_before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert self.stored()[0] != rv_before, "the delayed PUT was never applied"
        self.server.api.faults.clear()

    def leaders(self) -> list[str]:
        return [e.identity for e in self.by_name.values() if e.is_leader()]

    def check_safe(self) -> None:
        """At most one candidate believes it leads, and the stored Lease names it."""
        leaders = self.leaders()
        assert len(leaders) <= 1, leaders
        assert not leaders or self.stored()[1] == leaders[0], (leaders, self.stored())

    def close(self) -> None:
        for c in self.clients:
            c.close()


def every(period_s, until_s, *steps):
    """``steps`` ((who, fault), ...) repeated every ``period_s`` seconds for ``until_s`` seconds."""
    return [(period_s, who, fault) for _ in range(int(until_s / period_s)) for who, fault in steps]


#: Rows: after a acquired and b saw it at t=0 (then 1 s passes), steps (seconds to advance
#: after it, who tries, fault), and who leads at the end.
FAULT_SEQUENCES = [
    pytest.param(every(1, 30, ("a", "get-503"), ("b", None)), "pod-b", id="holder-reads-503-standby-takes-over"),
    pytest.param(every(1, 30, ("a", "get-429"), ("b", None)), "pod-b", id="holder-reads-429-standby-takes-over"),
    pytest.param(every(1, 30, ("a", "put-503"), ("b", None)), "pod-b", id="holder-writes-503-standby-takes-over"),
    pytest.param(every(1, 30, ("a", "put-429"), ("b", None)), "pod-b", id="holder-writes-429-standby-takes-over"),
    pytest.param(every(1, 30, ("a", "refused"), ("b", None)), "pod-b", id="holder-refused-standby-takes-over"),
    pytest.param(every(2, 30, ("a", None), ("b", "refused")) + [(1, "b", None)], "pod-a",
                 id="standby-refused-while-holder-renews"),
    pytest.param(every(2, 16, ("a", "put-lost"), ("b", None)) + [(1, "a", None), (1, "b", None)], "pod-a",
                 id="holder-renewals-land-answers-lost"),
    pytest.param(every(2, 30, ("a", None), ("b", "get-503")) + [(1, "b", None)], "pod-a",
                 id="standby-blind-while-holder-renews"),
    pytest.param(every(2, 30, ("a", None), ("b", "get-429")) + [(1, "b", None)], "pod-a",
                 id="standby-throttled-while-holder-renews"),
    pytest.param(every(1, 14, ("b", None)) + [(1, "b", "put-lost"), (1, "a", None), (1, "b", None), (1, "a", None)],
                 "pod-b", id="takeover-lands-answer-lost"),
    pytest.param(every(1, 14, ("b", None)) + [(0, "a", "get-503"), (1, "b", "put-429"), (1, "a", None), (1, "b", None)],
                 "pod-a", id="holder-back-before-takeover-write-succeeds"),
    pytest.param(every(2, 16, ("a", "put-lost"), ("b", "get-503"), ("a", None), ("b", "put-503")), "pod-a",
                 id="alternating-lost-answers-and-errors"),
    pytest.param(every(3, 15, ("b", "get-429"), ("a", "put-lost"), ("b", None)) + [(1, "a", None)], "pod-a",
                 id="standby-throttled-while-holder-answers-lost"),
]


@pytest.mark.parametrize(("steps", "final"), FAULT_SEQUENCES)
def test_fault_sequences_never_make_two_leaders(server, tmp_path, steps, final):
    """After every try: at most one candidate believes it leads and the stored Lease names it."""
    run_sequence(Pair(server, tmp_path, f"seq-{next(LEASES)}", FakeClock()), steps, final)


def run_sequence(pair: Pair, steps, final) -> None:
    try:
        pair.step("a", None)
        pair.step("b", None)
        assert pair.leaders() == ["pod-a"]
        pair.mono.t += 1
        for advance_s, who, fault in steps:
            pair.step(who, fault)
            pair.check_safe()
            pair.mono.t += advance_s
        assert pair.leaders() == [final]
    finally:
        pair.close()


def test_renewals_that_change_nothing_do_not_extend_leadership(server, tmp_path):
    """a's wall clock stands still: each renewal writes the same renewTime, the server keeps the
    resourceVersion (a no-op update) and b sees no change, so b takes over 15 s after a's
    acquisition; a must not count those renewals, or it would lead until 10 s after the last."""
    steps = every(1, 20, ("a", None), ("b", None))
    run_sequence(Pair(server, tmp_path, f"seq-{next(LEASES)}", FakeClock(), frozen_wall_a=True), steps, "pod-b")


def test_the_electors_own_client_never_resends_a_write(server, tmp_path):
    """urllib3's default retries would resend a PUT after a read timeout though the first was
    applied: the elector's client (fresh_client) has none, whatever the cluster client has, and
    leaves the cluster client's configuration alone."""
    api = client_in(server, tmp_path)
    api.configuration.retries = None  # urllib3's default: 3 retries, PUT counted as idempotent
    cluster = fenced_cluster(server, tmp_path)
    cluster.api_client = api
    elector = fence_with_lease(cluster, NS, "no-resend", "pod-a", monotonic=FakeClock(),
                               request_timeout_s=SHORT_TIMEOUT_S)
    try:
        assert elector.try_acquire_or_renew()
        server.api.faults.inject(r"/leases/no-resend$", delay_s=LOST_DELAY_S, method="PUT")
        with pytest.raises(ActuationError):
            elector.try_acquire_or_renew()
        time.sleep(LOST_DELAY_S)  # let the server finish the held-back PUT before counting
        assert server.api.requests.count("PUT", r"/leases/no-resend$") == 1
        assert api.configuration.retries is None
    finally:
        elector.api_client.close()
        cluster.close()
        api.close()


def test_the_request_timeout_must_be_shorter_than_the_renew_deadline(api_client):
    with pytest.raises(ValueError, match="request timeout"):
        LeaderElector(api_client, NS, LEASE, "pod-a", lease_duration_s=15, renew_deadline_s=5, request_timeout_s=5)


#: A status for the next Lease request (whoever sends it), or "refused": this replica's Lease client
#: cannot connect for this step.
PROPERTY_FAULTS = [None, 503, 429, "refused"]
STEP = st.tuples(st.sampled_from([0.5, 1.0, 2.0, 3.0, 6.0, 20.0]),  # seconds to the next step (20: a long pause)
                 st.sampled_from(PROPERTY_FAULTS), st.sampled_from(PROPERTY_FAULTS),  # a's / b's Lease requests fail so
                 st.booleans())  # b goes first


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=5, max_size=20), skew_a=st.sampled_from([-600, -30, 0, 30, 600]),
       skew_b=st.sampled_from([-600, -30, 0, 30, 600]))
def test_never_two_leaders_and_never_a_write_without_the_lease(server, tmp_path, steps, skew_a, skew_b):
    """Across random Lease faults (503, 429, connection refused), pauses, orders and wall-clock skews: never two
    replicas that believe they lead, and every write in the server's request log comes from the
    holder. A fault is injected for the next Lease request whoever sends it (an unconsumed one
    may hit the other replica): the invariant does not depend on which replica gets it."""
    lease = f"prop-{next(LEASES)}"
    mono = FakeClock()
    a = Replica(server, tmp_path / "a", "pod-a", mono, lease, skew_a)
    b = Replica(server, tmp_path / "b", "pod-b", mono, lease, skew_b)
    holder = lease_reader(server, tmp_path / "reader", lease)
    log = server.api.requests.recent
    try:
        for i, (advance_s, a_fails, b_fails, b_first) in enumerate(steps):
            order = (b, a) if b_first else (a, b)
            for r, fault in ((r, a_fails if r is a else b_fails) for r in order):
                if isinstance(fault, int):
                    server.api.faults.inject(rf"/leases/{lease}$", status=fault, times=1)
                with refused(r.elector.api_client) if fault == "refused" else contextlib.nullcontext():
                    r.elect()
                assert not (a.elector.is_leader() and b.elector.is_leader())
            server.api.faults.clear()  # the reader below must see the Lease
            for r in order:
                at, believed = holder(), r.elector.is_leader()
                before = len(log)
                r.scale(2 + i % 5)
                sent = [(m, p) for _, m, p in list(log)[before:] if m in WRITE_METHODS]
                assert not sent or (believed and at == r.identity), (r.identity, at, sent)
            mono.t += advance_s
    finally:
        server.api.faults.clear()
        for r in (a, b):  # every client of the example, so that none keeps a connection open
            r.cluster.close()
            r.elector.api_client.close()
        holder.api_client.close()
