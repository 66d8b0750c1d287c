"""KubernetesCluster against the simulated apiserver: writes only on change, one attempt per
action (the reconciler's retry owner, controller/runtime/actuate.py, retries conflicts and
temporary errors), API errors mapped to the project's classes, a client-side rate limit, events
on every action."""

from __future__ import annotations

import json
import threading
import time

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.adapters.kubernetes import KubernetesCluster, TokenBucket, map_error
from controller.errors import ConflictError, Forbidden, NotFound, PermanentError, Superseded, TemporaryError
from controller.model import Action, ActionKind, TargetRef, TargetSelector
from controller.runtime.actuate import RetryPolicy, apply_with_retries
from simulators.simcluster.slots import INITIAL_PODS_AGE_S
from tests.adapters.kube_helpers import api_client, official_client, server, start_server  # noqa: F401

NS = "shop"
WEB = TargetRef(NS, "web")
API = TargetRef(NS, "api")
SCALE_PATH = r"/deployments/web/scale$"


def make_cluster(srv, folder, **options) -> KubernetesCluster:
    settings = dict(qps=0, retry_backoff_s=0.01, request_timeout_s=3.0)
    settings.update(options)
    return KubernetesCluster(official_client(srv, folder), **settings)


@pytest.fixture
def cluster(server, tmp_path):
    """A KubernetesCluster that has observed web, as a reconciler's cycle has before it acts
    (its scale writes carry the observed resourceVersion); the request log starts after it."""
    kc = make_cluster(server, tmp_path)
    kc.observe([WEB])
    server.api.requests.reset()
    yield kc
    kc.close()


def scale(replicas: int, from_replicas: int | None, target: TargetRef = WEB) -> Action:
    return Action(ActionKind.SCALE, target, "ScaleUp", replicas=replicas, from_replicas=from_replicas, policy="web-rps")


def retried(kc: KubernetesCluster, action: Action, **policy):
    """Apply as the reconciler does, through the one retry owner, on a fake clock (no sleeping).
    Returns (error or None, attempts, the waits asked for)."""
    now, waits = [0.0], []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    error, attempts = apply_with_retries(kc.apply, action, RetryPolicy(**policy), lambda: now[0], sleep)
    return error, attempts, waits


def events(srv, tmp_path) -> list:
    """The Events this controller recorded (source setpoint: not the simulated cluster's own)."""
    return client.CoreV1Api(official_client(srv, tmp_path)).list_namespaced_event(
        NS, field_selector="source=setpoint").items


# --------------------------------------------------------------------------- resolve and observe
def test_resolve_by_names_keeps_those_that_exist(cluster):
    selector = TargetSelector("Deployment", NS, names=("web", "ghost", "api"))
    assert cluster.resolve(selector) == [API, WEB]


def test_resolve_by_labels_lists_with_a_selector(cluster, server):
    assert cluster.resolve(TargetSelector("Deployment", NS, match_labels=(("tier", "front"),))) == [WEB]
    assert server.api.requests.count("GET", r"/deployments$") == 1


def test_observe_reads_replicas_pods_and_revisions(cluster, server):
    view = cluster.observe([WEB, API, TargetRef(NS, "ghost")])
    assert view.spec.tolist() == [2, 3, 0] and view.ready.tolist() == [2, 3, 0]
    assert view.exists.tolist() == [True, True, False] and not view.rollout.any()
    web = view.statuses[0]
    assert web.revision == "1" and web.revisions == ("1",) and len(web.pods) == 2
    pod = web.pods[0]
    assert pod.ready and pod.phase == "Running" and pod.revision == "1" and pod.restarts == 0
    # the scenario's initial pods have run an hour, started in 10 s (no scheduling delay)
    ready_at = server.world.store.clock.wall(server.world.scenario.start_s - INITIAL_PODS_AGE_S)
    assert pod.ready_transition_time == pytest.approx(ready_at, abs=1)
    assert pod.start_time == pytest.approx(ready_at - 10.0, abs=1)
    assert server.api.requests.count("GET") == 3  # deployments, replicasets, pods: one list each


@pytest.mark.parametrize("selector, then_observe, lists", [
    pytest.param(TargetSelector("Deployment", NS, names=("web", "api")), None, 1, id="by-names-one-list"),
    pytest.param(TargetSelector("Deployment", NS, match_labels=(("tier", "front"),)), None, 1, id="by-labels-one-list"),
    pytest.param(TargetSelector("Deployment", NS, match_labels=(("tier", "front"),)), [WEB, API], 2,
                 id="a-target-the-labelled-list-lacks-lists-again"),
    pytest.param(TargetSelector("StatefulSet", NS, names=("db",)), [WEB], 2, id="another-kind-lists-its-own"),
])
def test_a_cycle_lists_its_workloads_once(cluster, server, selector, then_observe, lists):
    """resolve() then observe(), as every cycle does: the observe reads the list resolve just made
    (a second list of the same namespace was a third of a scaling cycle's requests)."""
    targets = cluster.resolve(selector)
    observed = then_observe if then_observe is not None else targets
    view = cluster.observe(observed, with_pods=False)
    assert server.api.requests.count("GET", r"/(deployments|statefulsets)$") == lists
    assert view.exists.all() and view.spec.tolist() == [{"web": 2, "api": 3}[t.name] for t in observed]
    cluster.observe([WEB], with_pods=False)  # the list is read once: the next observe lists afresh
    assert server.api.requests.count("GET", r"/(deployments|statefulsets)$") == lists + 1


def test_observe_after_a_scale_and_during_a_rolling_restart(cluster, server):
    cluster.apply(scale(5, 2))
    server.world.advance(3)
    view = cluster.observe([WEB])
    assert (view.spec[0], view.status[0], view.ready[0], view.rollout[0]) == (5, 5, 5, False)
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "ErrorRatioHigh"))
    server.world.advance(1)
    view = cluster.observe([WEB])
    assert view.rollout[0] and view.statuses[0].revisions == ("1", "2") and view.statuses[0].revision == "2"
    server.world.advance(30)
    view = cluster.observe([WEB])
    assert not view.rollout[0] and {p.revision for p in view.statuses[0].pods} == {"2"}


# --------------------------------------------------------------------------- writes only on change
def test_scale_writes_once_when_changed_and_never_when_unchanged(cluster, server):
    cluster.apply(scale(6, 2))
    assert server.api.requests.count("PATCH", SCALE_PATH) == 1
    assert server.api.requests.count("GET") == 0  # the observed value and version: no read first
    cluster.apply(scale(6, 6))
    assert server.api.requests.count() == 1
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 6


def test_a_scale_the_workload_changed_under_is_refused_not_applied(cluster, server, tmp_path):
    # A write that reaches the API server after the workload changed (a deposed leader's late
    # request, a person's kubectl scale) must not undo the newer change: 409, as HPA's Update.
    (tmp_path / "other").mkdir()
    other = KubernetesCluster(official_client(server, tmp_path / "other"), qps=0)
    other.apply(scale(9, 2))  # the newer change
    server.api.requests.reset()
    with pytest.raises(ConflictError):
        cluster.apply(scale(3, 2))
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 9
    cluster.apply(scale(3, 2))  # the retry reads afresh: then it is a decision on what is there now
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 3
    assert server.api.requests.count("GET", SCALE_PATH) == 1
    other.close()


def test_scale_without_from_replicas_uses_the_last_observation(cluster, server):
    cluster.observe([WEB])
    server.api.requests.reset()
    cluster.apply(scale(2, None))  # observed 2: nothing to write
    cluster.apply(scale(4, None))
    assert server.api.requests.count() == 1 and server.api.requests.count("PATCH", SCALE_PATH) == 1


def test_a_late_scale_write_does_not_undo_a_newer_one(cluster, server, tmp_path):
    # A's write is held 1.5 s by the server (a slow API server, or A paused after its fence
    # check and deposed meanwhile); B scales in that time. A blind patch landed after B's and
    # undid it (found by a live fuzz: the new leader's scale-up replaced by the old one's
    # scale-down); with the observed resourceVersion as a precondition it is a 409.
    rule = server.api.faults.inject(SCALE_PATH, delay_s=1.5, times=1, method="PATCH")
    outcome = []
    late = threading.Thread(target=lambda: outcome.append(_raised(cluster.apply, scale(3, 2))))
    late.start()
    deadline = time.monotonic() + 5
    while rule.times and time.monotonic() < deadline:  # A's request has reached the server
        time.sleep(0.01)
    (tmp_path / "b").mkdir()
    b = KubernetesCluster(official_client(server, tmp_path / "b"), qps=0)
    b.observe([WEB])
    b.apply(scale(9, 2))
    late.join(10)
    assert [type(e) for e in outcome] == [ConflictError]
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 9
    b.close()


def _raised(call, *args) -> Exception | None:
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 -- the test looks at which
        return exc
    return None


def test_scale_of_an_unseen_target_reads_the_scale_first(server, tmp_path):
    cluster = make_cluster(server, tmp_path)
    cluster.apply(scale(2, None))
    assert server.api.requests.count("GET", SCALE_PATH) == 1 and server.api.requests.count("PATCH") == 0


# --------------------------------------------------------------------------- conflicts and errors
def test_apply_makes_one_attempt_and_raises_the_conflict(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=409, times=1, method="PATCH")
    with pytest.raises(ConflictError):
        cluster.apply(scale(7, 2))
    assert server.api.requests.count("PATCH", SCALE_PATH) == 1


def test_a_conflict_is_retried_at_once_by_the_retry_owner(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=409, times=1, method="PATCH")
    error, attempts, waits = retried(cluster, scale(7, 2))
    assert error is None and attempts == 2 and waits == []  # a conflict: no wait
    assert server.api.requests.count("PATCH", SCALE_PATH) == 2
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 7


def test_persistent_conflict_is_a_conflict_error_after_bounded_attempts(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=409, times=100, method="PATCH")
    error, attempts, _ = retried(cluster, scale(7, 2), max_attempts=3)
    assert isinstance(error, ConflictError) and error.kind == "conflict" and error.status == 409
    assert attempts == 3 and server.api.requests.count("PATCH", SCALE_PATH) == 3


def test_5xx_is_retried_with_backoff_then_temporary_error(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=503, times=100)
    error, attempts, waits = retried(cluster, scale(7, 2), max_attempts=3, backoff_s=0.1, deadline_s=10.0)
    assert isinstance(error, TemporaryError) and error.status == 503 and "HTTP 503" in str(error)
    assert server.api.requests.count("PATCH", SCALE_PATH) == 3 and waits == [0.1, 0.2]


def test_a_transient_500_is_absorbed_by_a_retry(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=500, times=1)
    error, _, _ = retried(cluster, scale(3, 2))
    assert error is None
    assert server.world.engine.spec_replicas[server.world.engine.index("web")] == 3
    assert server.api.requests.count("PATCH", SCALE_PATH) == 2


def test_429_is_temporary(server, tmp_path):
    kc = make_cluster(server, tmp_path, max_retries=0)
    server.api.faults.inject(SCALE_PATH, status=429, times=1)
    with pytest.raises(TemporaryError):
        kc.apply(scale(3, 2))
    kc.close()


def test_403_is_forbidden_and_not_retried(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=403, times=100)
    with pytest.raises(Forbidden) as err:
        cluster.apply(scale(3, 2))
    assert err.value.kind == "permanent" and err.value.status == 403
    assert server.api.requests.count("PATCH", SCALE_PATH) == 1


def test_422_is_permanent(cluster, server):
    server.api.faults.inject(SCALE_PATH, status=422, times=1)
    with pytest.raises(PermanentError) as err:
        cluster.apply(scale(3, 2))
    assert not isinstance(err.value, (NotFound, Forbidden)) and err.value.status == 422


def test_unknown_target_is_not_found(cluster):
    with pytest.raises(NotFound):
        cluster.apply(scale(3, 2, TargetRef(NS, "ghost")))


def test_timeout_is_temporary(server, tmp_path):
    kc = make_cluster(server, tmp_path, request_timeout_s=0.3, max_retries=1)
    server.api.faults.inject(SCALE_PATH, delay_s=1.0, times=2)
    started = time.monotonic()
    with pytest.raises(TemporaryError) as err:
        kc.apply(scale(3, 2))
    assert "Timeout" in str(err.value) and time.monotonic() - started < 3.0
    kc.close()


def test_server_gone_is_temporary(tmp_path):
    srv = start_server()
    kc = make_cluster(srv, tmp_path, max_retries=1)
    srv.stop()
    with pytest.raises(TemporaryError):
        kc.observe([WEB])
    kc.close()


@pytest.mark.parametrize("exc, expected", [
    pytest.param(ApiException(status=409, reason="Conflict"), ConflictError, id="409"),
    pytest.param(ApiException(status=404, reason="Not Found"), NotFound, id="404"),
    pytest.param(ApiException(status=403, reason="Forbidden"), Forbidden, id="403"),
    pytest.param(ApiException(status=401, reason="Unauthorized"), PermanentError, id="401"),
    pytest.param(ApiException(status=422, reason="Invalid"), PermanentError, id="422"),
    pytest.param(ApiException(status=429, reason="Too Many"), TemporaryError, id="429"),
    pytest.param(ApiException(status=504, reason="Timeout"), TemporaryError, id="504"),
    pytest.param(urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"), TemporaryError, id="read-timeout"),
    pytest.param(urllib3.exceptions.MaxRetryError(None, "/x"), TemporaryError, id="max-retry"),
    pytest.param(ConnectionRefusedError(111, "refused"), TemporaryError, id="refused"),
])
def test_error_mapping_table(exc, expected):
    error = map_error(exc, "scale web", "Deployment/shop/web")
    assert type(error) is expected and error.target == "Deployment/shop/web"


# --------------------------------------------------------------------------- the other actions
def test_restart_pod_deletes_it_and_the_replicaset_recreates_it(cluster, server):
    pod = cluster.observe([WEB]).statuses[0].pods[0].name
    cluster.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod=pod))
    listed = cluster.observe([WEB]).statuses[0].pods
    pods = [p.name for p in listed if not p.deleted]
    assert pod not in pods and len(pods) == 2
    assert [(p.name, p.ready) for p in listed if p.deleted] == [(pod, False)]  # terminating through its grace
    server.world.advance(6)  # 30 s: gone
    with pytest.raises(NotFound):
        cluster.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod=pod))


def test_rollback_goes_to_the_previous_revision_like_kubectl_undo(cluster, server):
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    server.world.advance(30)
    first_hash = server.world.engine.revisions(server.world.engine.index("web"))[0].hash
    cluster.apply(Action(ActionKind.ROLLBACK, WEB, "ErrorRatioHigh"))
    status = cluster.observe([WEB]).statuses[0]
    assert status.revision == "3" and status.revisions == ("2", "3") and status.rollout_in_progress
    assert server.world.engine.current_revision(server.world.engine.index("web")).hash == first_hash
    server.world.advance(30)
    assert {p.revision for p in cluster.observe([WEB]).statuses[0].pods} == {"3"}


def test_rollback_to_a_named_revision_and_to_an_unknown_one(cluster, server):
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    with pytest.raises(NotFound):
        cluster.apply(Action(ActionKind.ROLLBACK, WEB, "BadRelease", revision="9"))
    cluster.apply(Action(ActionKind.ROLLBACK, WEB, "BadRelease", revision="1"))
    assert cluster.observe([WEB]).statuses[0].revision == "3"


def test_rollback_conflict_is_re_read_and_retried(cluster, server):
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    server.api.requests.reset()
    server.api.faults.inject(r"/deployments/web$", status=409, times=1, method="PATCH")
    assert retried(cluster, Action(ActionKind.ROLLBACK, WEB, "BadRelease"))[0] is None
    assert server.api.requests.count("PATCH", r"/deployments/web$") == 2
    assert server.api.requests.count("GET", r"/deployments/web$") == 2  # read again after the conflict
    assert cluster.observe([WEB]).statuses[0].revision == "3"


def test_rollback_with_a_stale_resource_version_is_a_real_409(cluster, server, monkeypatch):
    """The rollback patch carries the resourceVersion it read: a change in between is a conflict."""
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    original = cluster._rollback_source
    calls = []

    def read_then_someone_scales(ref, revision):
        result = original(ref, revision)
        if not calls:  # between our read and our write, someone else changes the Deployment
            server.world.store.update_scale("Deployment", NS, "web", {"spec": {"replicas": 4}})
        calls.append(1)
        return result

    monkeypatch.setattr(cluster, "_rollback_source", read_then_someone_scales)
    server.api.requests.reset()
    assert retried(cluster, Action(ActionKind.ROLLBACK, WEB, "BadRelease"))[0] is None
    assert len(calls) == 2 and server.api.requests.count("PATCH", r"/deployments/web$") == 2


# A restart, pause or rollback decided on an observation that is stale by the time it is sent:
# another leader (a failover's overlap) or a person changed the Deployment in between. A change
# of the pod template or spec.paused supersedes the action (nothing sent, decided again next
# cycle); a change of replicas or status only does not (re-read after the 409, then sent).
# Rows: (name, what this controller sends, what another client did first, superseded?).
T_RELEASE, T_OURS, T_OTHERS = 1_799_999_400.0, 1_800_000_000.0, 1_800_000_060.0  # distinct restartedAt stamps


def _restart(kc):
    kc.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))


def _scale_to_5(kc):
    kc.apply(scale(5, None))


def _pause(kc):
    kc.apply(Action(ActionKind.PAUSE, WEB, "RolloutPausedForEvidence"))


STALE_ROWS = [
    ("restart after another leader's restart", ActionKind.ROLLING_RESTART, _restart, True),
    ("restart after a scale only", ActionKind.ROLLING_RESTART, _scale_to_5, False),
    ("restart after a person's pause", ActionKind.ROLLING_RESTART, _pause, True),
    ("pause after a deploy", ActionKind.PAUSE, _restart, True),
    ("pause after a scale only", ActionKind.PAUSE, _scale_to_5, False),
    ("rollback after a deploy", ActionKind.ROLLBACK, _restart, True),
    ("rollback after a scale only", ActionKind.ROLLBACK, _scale_to_5, False),
]


@pytest.mark.parametrize("name, kind, other_did, superseded", STALE_ROWS, ids=[r[0] for r in STALE_ROWS])
def test_a_disruptive_action_decided_on_a_stale_view_is_not_sent(name, kind, other_did, superseded, server,
                                                                 tmp_path):
    (tmp_path / "release").mkdir()
    release = make_cluster(server, tmp_path / "release", clock=lambda: T_RELEASE)
    release.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Release"))  # revision 2: something to roll back
    release.close()
    server.world.advance(60)
    ours = make_cluster(server, tmp_path, clock=lambda: T_OURS)
    ours.observe([WEB])  # the decision's view
    (tmp_path / "other").mkdir()
    other = make_cluster(server, tmp_path / "other", clock=lambda: T_OTHERS)
    other.observe([WEB])
    other_did(other)
    before = server.world.store.workload_object(server.world.store.workload("Deployment", NS, "web"))
    server.api.requests.reset()
    error, _, _ = retried(ours, Action(kind, WEB, "Stale"))
    after = server.world.store.workload_object(server.world.store.workload("Deployment", NS, "web"))
    if superseded:
        assert isinstance(error, Superseded) and "decided again next cycle" in str(error)
        assert after["spec"] == before["spec"]  # nothing of ours landed
        # a restart or pause sent its stale write (a 409), then read; a rollback reads before writing
        assert server.api.requests.count("PATCH", r"/deployments/web$") == (kind is not ActionKind.ROLLBACK)
    else:
        assert error is None and after["spec"] != before["spec"]
        assert after["spec"]["replicas"] == 5  # the other's change stays
    ours.close()
    other.close()


def test_a_late_rolling_restart_is_one_rollout_not_two(server, tmp_path):
    # Two leaders in a failover's overlap both decided a restart on the same view: the first
    # one's rollout goes ahead, the second is superseded, so the pods roll once.
    a, b = (make_cluster(server, tmp_path / n, clock=lambda t=t: t) for n, t in (("a", T_OURS), ("b", T_OTHERS))
            if (tmp_path / n).mkdir() is None)
    a.observe([WEB]), b.observe([WEB])
    i = server.world.engine.index("web")
    revisions = len(server.world.engine.revisions(i))
    assert retried(a, Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))[0] is None
    assert isinstance(retried(b, Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))[0], Superseded)
    assert len(server.world.engine.revisions(i)) == revisions + 1
    a.close()
    b.close()


def test_rollback_of_a_statefulset_is_permanent_error(cluster):
    with pytest.raises(PermanentError):
        cluster.apply(Action(ActionKind.ROLLBACK, TargetRef(NS, "web", "StatefulSet"), "BadRelease"))


def test_every_action_records_an_event_with_its_reason(cluster, server, tmp_path):
    pod = cluster.observe([WEB]).statuses[0].pods[0].name
    cluster.apply(scale(4, 2))
    cluster.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod=pod))
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    cluster.apply(Action(ActionKind.ROLLBACK, WEB, "ErrorRatioHigh"))
    cluster.apply(scale(4, 4))  # unchanged: no write, no event
    assert cluster.events.flush(5)
    got = {e.reason: e for e in events(server, tmp_path)}
    assert set(got) == {"SuccessfulRescale", "PodRestarted", "RolloutRestarted", "RolledBack"}
    rescale = got["SuccessfulRescale"]
    assert "ScaleUp" in rescale.message and "2 -> 4" in rescale.message
    assert rescale.involved_object.kind == "Deployment" and rescale.involved_object.name == "web"
    assert rescale.source.component == "setpoint"
    assert "ErrorRatioHigh" in got["RolledBack"].message


# --------------------------------------------------------------------------- rate limit
def test_token_bucket_allows_a_burst_then_paces():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(qps=20, burst=5, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(25)]
    assert waits[:5] == [0.0] * 5
    assert now[0] == pytest.approx(20 / 20)  # 20 tokens beyond the burst at 20/s
    assert all(w == pytest.approx(0.05) for w in waits[5:])


def test_rate_limiter_bounds_the_request_rate(server, tmp_path):
    kc = make_cluster(server, tmp_path, qps=20, burst=5)
    selector = TargetSelector("Deployment", NS, names=("web",))
    started = time.monotonic()
    for _ in range(25):
        kc.resolve(selector)
    elapsed = time.monotonic() - started
    assert elapsed >= (25 - 5) / 20 - 0.05
    assert elapsed < 2.5
    stamps = [t for t, m, p in server.api.requests.recent]
    assert len(stamps) == 25
    for i in range(len(stamps)):  # any window holds at most burst + qps * its length (+1: arrival jitter)
        for j in range(i + 1, len(stamps)):
            assert j - i + 1 <= 5 + 20 * (stamps[j] - stamps[i]) + 1
    kc.close()


def test_loads_a_kubeconfig_itself(server, tmp_path):
    path = server.write_kubeconfig(tmp_path / "config.yaml")
    kc = KubernetesCluster(kubeconfig=path, context="setpoint-sim", qps=50, burst=10)
    try:
        assert kc.api_client.configuration.retries is False
        assert kc.resolve(TargetSelector("Deployment", NS, names=("web",))) == [WEB]
    finally:
        kc.close()


def test_no_op_lease_update_keeps_its_resource_version(api_client):
    leases = client.CoordinationV1Api(api_client)
    created = leases.create_namespaced_lease(NS, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})
    again = leases.replace_namespaced_lease("l", NS, created)
    assert again.metadata.resource_version == created.metadata.resource_version


# --------------------------------------------------------------------------- durable state (ConfigMaps)
STATE_PATH = r"/api/v1/namespaces/setpoint-system/configmaps"


def _state_store(server, tmp_path):
    from controller.adapters.kubernetes import KubernetesStateStore

    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01, emit_events=False)
    return cluster, KubernetesStateStore(cluster, "setpoint-system")


def test_state_store_calls_read_create_then_replace_with_the_read_version(server, tmp_path):
    cluster, store = _state_store(server, tmp_path)
    log = server.api.requests
    assert store.load("web") is None
    store.save("web", {"schema_version": 1, "targets": {}})
    assert (log.count("GET", STATE_PATH + "/setpoint-state-web$"), log.count("POST", STATE_PATH + "$")) == (1, 1)
    store.save("web", {"schema_version": 1, "targets": {"a": {}}})
    assert log.count("PUT", STATE_PATH + "/setpoint-state-web$") == 1 and log.count() == 3  # no read before a replace
    cm = server.world.store.configmaps.get("setpoint-system", "setpoint-state-web")
    assert json.loads(cm["data"]["state.json"]) == {"schema_version": 1, "targets": {"a": {}}}
    assert cm["metadata"]["labels"]["setpoint.io/policy"] == "web"
    cluster.close()


def test_state_store_conflict_rereads_and_writes_once_more_then_gives_up(server, tmp_path):
    from controller.errors import StateStoreError

    cluster, store = _state_store(server, tmp_path)
    store.save("web", {"schema_version": 1, "n": 1})
    server.api.requests.reset()
    server.api.faults.inject(r"/configmaps/setpoint-state-web$", status=409, times=1, method="PUT")
    store.save("web", {"schema_version": 1, "n": 2})
    assert server.api.requests.count("PUT") == 2 and server.api.requests.count("GET") == 1
    assert json.loads(store.load("web"))["n"] == 2
    server.api.faults.inject(r"/configmaps/setpoint-state-web$", status=409, times=2, method="PUT")
    with pytest.raises(StateStoreError, match="409"):
        store.save("web", {"schema_version": 1, "n": 3})
    assert json.loads(store.load("web"))["n"] == 2
    cluster.close()


def test_state_another_controller_wrote_is_said_once(server, tmp_path, caplog):
    """Two controllers (their Leases) with a policy named web and one state namespace share
    setpoint-state-web: the second to read it logs a warning naming both, once; the same
    controller after a failover (same Lease) does not."""
    from controller.adapters.kubernetes import KubernetesStateStore

    cluster, _ = _state_store(server, tmp_path)
    ours = KubernetesStateStore(cluster, "setpoint-system", owner="setpoint-system/setpoint")
    ours.save("web", {"schema_version": 1})
    again = KubernetesStateStore(cluster, "setpoint-system", owner="setpoint-system/setpoint")
    with caplog.at_level("WARNING", logger="setpoint.kubernetes"):
        again.load("web")
        assert not caplog.records
        theirs = KubernetesStateStore(cluster, "setpoint-system", owner="shop/setpoint-shop")
        theirs.load("web")
        theirs.save("web", {"schema_version": 1})
        theirs._versions.clear()  # read afresh, as after a restart: its own write now, nothing to say
        theirs.load("web")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "setpoint-system/setpoint" in said[0] and "shop/setpoint-shop" in said[0], said
    assert "--state-namespace" in said[0]
    cluster.close()


@pytest.mark.parametrize("rehearsal", [pytest.param(True, id="dry-run-or-shadow"), pytest.param(False, id="live")])
def test_a_rehearsal_reading_the_live_controllers_state_is_not_warned(server, tmp_path, caplog, rehearsal):
    """`setpoint run --dry-run` or `--shadow` reads the installed controller's state on purpose and
    writes none: a pre-flight given that controller's --state-namespace (its Lease's namespace
    another, so another owner) was warned that two controllers overwrite each other's budgets."""
    from controller.adapters.kubernetes import KubernetesStateStore
    from controller.cli.live import state_store
    from controller.runtime.dryrun import DryRunStateStore

    cluster, _ = _state_store(server, tmp_path)
    KubernetesStateStore(cluster, "setpoint-system", owner="setpoint-system/setpoint").save("web", {"schema_version": 1})
    store = state_store(cluster, "setpoint-system", "default/setpoint", rehearsal=rehearsal)
    with caplog.at_level("WARNING", logger="setpoint.kubernetes"):
        assert (DryRunStateStore(store) if rehearsal else store).load("web") is not None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == (0 if rehearsal else 1), said
    cluster.close()


def test_state_store_errors_are_state_store_errors(server, tmp_path):
    from controller.errors import StateStoreError

    cluster, store = _state_store(server, tmp_path)
    server.api.faults.inject(r"/configmaps/", status=403, times=1)
    with pytest.raises(StateStoreError, match="403"):
        store.load("web")
    cluster.close()


# --------------------------------------------------------------------------- spec.paused
def pause(srv, tmp_path, paused) -> dict:
    apps = client.AppsV1Api(official_client(srv, tmp_path))
    return apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": paused}})


def revisions_of_pods(cluster) -> list[str]:
    """The revisions of web's pods but those terminating."""
    return sorted(p.revision for p in cluster.observe([WEB]).statuses[0].pods if not p.deleted)


def test_a_paused_deployment_makes_no_rollout_progress_until_resumed(cluster, server, tmp_path):
    """sim serve's Deployment controller honours spec.paused as Kubernetes does: a template
    change while paused waits; the Progressing condition says DeploymentPaused."""
    deployment = pause(server, tmp_path, True)
    assert deployment.spec.paused is True
    progressing = [c for c in deployment.status.conditions if c.type == "Progressing"][0]
    assert (progressing.status, progressing.reason) == ("Unknown", "DeploymentPaused")
    cluster.observe([WEB])  # a restart is decided on what is there (it would not be sent on a stale view)
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    server.world.advance(60)
    assert revisions_of_pods(cluster) == ["1", "1"]  # nothing of revision 2 yet
    assert pause(server, tmp_path, False).spec.paused is None  # omitted when false, as the apiserver does
    server.world.advance(60)
    assert revisions_of_pods(cluster) == ["2", "2"] and not cluster.observe([WEB]).rollout[0]


def test_pausing_mid_rollout_holds_both_revisions_where_they_are(cluster, server, tmp_path):
    cluster.apply(scale(8, 2))
    server.world.advance(60)
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    server.world.advance(1)
    pause(server, tmp_path, True)
    held = revisions_of_pods(cluster)
    assert "1" in held and "2" in held
    server.world.advance(120)
    assert revisions_of_pods(cluster) == held


def test_a_paused_deployment_is_not_rolled_back_and_nothing_changes(cluster, server, tmp_path):
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    server.world.advance(30)
    pause(server, tmp_path, True)
    before = server.world.store.workload_object(server.world.store.workload("Deployment", NS, "web"))
    with pytest.raises(PermanentError, match="paused"):
        cluster.apply(Action(ActionKind.ROLLBACK, WEB, "RollbackRevisionWorse", fast=True))
    after = server.world.store.workload_object(server.world.store.workload("Deployment", NS, "web"))
    assert after["spec"]["template"] == before["spec"]["template"] and cluster.observe([WEB]).statuses[0].revision == "2"


def test_spec_paused_must_be_a_boolean(server, tmp_path):
    with pytest.raises(ApiException) as err:
        pause(server, tmp_path, "yes")
    assert err.value.status == 422 and "spec.paused" in err.value.body


def test_pause_and_resume_actions_patch_spec_paused_and_observe_reports_it(cluster, server, tmp_path):
    """The rollout hold's actions: PAUSE sets spec.paused (the rollout stops where it is), observe
    reports it (TargetStatus.paused, ClusterView.paused), RESUME clears it and the rollout goes on."""
    cluster.apply(scale(8, 2))
    server.world.advance(60)
    assert not cluster.observe([WEB]).paused[0]
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Release"))
    server.world.advance(1)
    cluster.apply(Action(ActionKind.PAUSE, WEB, "RolloutPausedForEvidence"))
    view = cluster.observe([WEB])
    assert view.paused[0] and view.statuses[0].paused and view.rollout[0]
    held = revisions_of_pods(cluster)
    server.world.advance(120)
    assert revisions_of_pods(cluster) == held and "1" in held and "2" in held
    cluster.apply(Action(ActionKind.RESUME, WEB, "RolloutResumedGood"))
    server.world.advance(120)
    view = cluster.observe([WEB])
    assert not view.paused[0] and not view.rollout[0] and set(revisions_of_pods(cluster)) == {"2"}
    reasons = [e.reason for e in events(server, tmp_path)]
    assert "RolloutPaused" in reasons and "RolloutResumed" in reasons


def test_a_rollback_that_resumes_our_hold_undoes_and_resumes_in_one_write(cluster, server, tmp_path):
    """A Deployment this controller paused is rolled back with ``resume``: the template goes back
    and spec.paused is cleared by the same patch, and the rollout back to revision 1 completes."""
    cluster.apply(scale(8, 2))
    server.world.advance(60)
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Release"))
    server.world.advance(1)
    cluster.apply(Action(ActionKind.PAUSE, WEB, "RolloutPausedForEvidence"))
    patches_before = cluster.requests.get("PATCH", 0)
    cluster.apply(Action(ActionKind.ROLLBACK, WEB, "RollbackRevisionWorse", fast=True, resume=True))
    assert cluster.requests.get("PATCH", 0) == patches_before + 1
    server.world.advance(120)
    view = cluster.observe([WEB])
    assert not view.paused[0] and not view.rollout[0] and view.statuses[0].revision == "3"
    assert len(set(p.revision for p in view.statuses[0].pods)) == 1
