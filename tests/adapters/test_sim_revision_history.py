"""sim serve trims old ReplicaSets as the Deployment controller's cleanupDeployment does: once a
rollout is complete (or while the Deployment is paused), the oldest revisions beyond
spec.revisionHistoryLimit (default 10) that are scaled down are deleted, watchers see DELETED, and
they can no longer be rolled back to. Without it every rollout added a ReplicaSet for good.

The world is stepped by hand (``drive=False``, 5 s ticks); restarts carry fixed restartedAt stamps.
"""

from __future__ import annotations

import queue
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from controller.adapters.kubernetes import KubernetesCluster
from controller.errors import NotFound
from controller.model import Action, ActionKind, TargetRef
from simulators.kubeapi.store import REVISION_HISTORY_LIMIT
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)

NS = "shop"
WEB = TargetRef(NS, "web")
REVISION = "deployment.kubernetes.io/revision"
#: Ticks (5 s each) a rollout of web's 2 pods may take before a test gives up on it.
ROLLOUT_TICKS = 30


@pytest.fixture
def apps(server, tmp_path):
    c = official_client(server, tmp_path)
    yield client.AppsV1Api(c)
    c.close()


def restart(apps, n: int) -> None:
    """A rolling restart of web, as ``kubectl rollout restart`` writes it (stamp ``n``)."""
    stamp = f"2026-01-05T00:{n // 60:02d}:{n % 60:02d}Z"
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp}}}}})


def complete(server, apps) -> None:
    """Step the world until web's rollout is complete (all its pods updated and available)."""
    for _ in range(ROLLOUT_TICKS):
        d = apps.read_namespaced_deployment("web", NS)
        if d.status.updated_replicas == d.status.replicas == d.status.available_replicas == d.spec.replicas:
            return
        server.world.advance(1)
    raise AssertionError(f"web's rollout did not complete in {ROLLOUT_TICKS} ticks")


def rollouts(server, apps, count: int, first: int = 1) -> None:
    for n in range(first, first + count):
        restart(apps, n)
        server.world.advance(1)
        complete(server, apps)


def revisions(apps) -> list[int]:
    """The revision numbers of web's ReplicaSets, sorted."""
    rss = apps.list_namespaced_replica_set(NS, label_selector="app=web").items
    return sorted(int(rs.metadata.annotations[REVISION]) for rs in rss)


def set_limit(apps, limit) -> None:
    apps.patch_namespaced_deployment("web", NS, {"spec": {"revisionHistoryLimit": limit}})


@pytest.mark.parametrize("limit, kept", [
    pytest.param(None, list(range(4, 15)), id="default-limit-keeps-10-old-after-13-rollouts"),
    pytest.param(2, [12, 13, 14], id="limit-2-keeps-the-2-newest-old"),
    pytest.param(0, [14], id="limit-0-keeps-only-the-current"),
])
def test_old_replicasets_beyond_the_limit_are_deleted(server, apps, limit, kept):
    if limit is not None:
        set_limit(apps, limit)
    rollouts(server, apps, 13)
    assert revisions(apps) == kept
    assert apps.read_namespaced_deployment("web", NS).spec.revision_history_limit == (
        REVISION_HISTORY_LIMIT if limit is None else limit)
    # the engine's history is the same: a trimmed revision is gone there too
    engine = server.world.engine
    assert [r.number for r in engine.revisions(engine.index("web"))] == kept


def test_no_cleanup_while_the_rollout_runs(server, apps):
    set_limit(apps, 0)
    restart(apps, 1)
    server.world.advance(1)
    assert revisions(apps) == [1, 2]  # revision 1 still serves: nothing is trimmed mid-rollout
    complete(server, apps)
    assert revisions(apps) == [2]


def test_an_old_replicaset_still_scaled_up_is_not_deleted(server, apps):
    set_limit(apps, 1)
    rollouts(server, apps, 3)
    assert revisions(apps) == [3, 4]
    restart(apps, 4)
    server.world.advance(1)  # mid-rollout: revision 4 still has its pods
    rs4 = [rs for rs in apps.list_namespaced_replica_set(NS, label_selector="app=web").items
           if rs.metadata.annotations[REVISION] == "4"][0]
    assert rs4.status.replicas > 0
    # a paused Deployment's sync cleans up: 2 old over a limit of 0, the oldest two looked at,
    # revision 3 (scaled down) deleted, revision 4 (scaled up) kept, as cleanupDeployment skips it
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": True, "revisionHistoryLimit": 0}})
    assert revisions(apps) == [4, 5]
    apps.patch_namespaced_deployment("web", NS, {"spec": {"paused": False}})
    complete(server, apps)
    assert revisions(apps) == [5]


def test_lowering_the_limit_of_a_complete_deployment_trims_at_once(server, apps):
    rollouts(server, apps, 4)
    assert revisions(apps) == [1, 2, 3, 4, 5]
    set_limit(apps, 1)
    assert revisions(apps) == [4, 5]


def test_a_watch_sees_the_trimmed_replicasets_deleted(server, apps):
    set_limit(apps, 2)
    rollouts(server, apps, 2)
    names = {int(rs.metadata.annotations[REVISION]): rs.metadata.name
             for rs in apps.list_namespaced_replica_set(NS, label_selector="app=web").items}
    events: queue.Queue = queue.Queue()

    def follow():
        for e in watch.Watch().stream(apps.list_namespaced_replica_set, NS, label_selector="app=web",
                                      timeout_seconds=10):
            events.put((e["type"], e["object"].metadata.name))

    threading.Thread(target=follow, daemon=True).start()
    assert {events.get(timeout=5) for _ in names} == {("ADDED", n) for n in names.values()}
    rollouts(server, apps, 2, first=3)  # revisions 4 and 5: 1 and 2 go
    deleted = set()
    while len(deleted) < 2:
        kind, name = events.get(timeout=5)
        if kind == "DELETED":
            deleted.add(name)
    assert deleted == {names[1], names[2]}
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_replica_set(names[1], NS)
    assert err.value.status == 404


def test_a_rollback_to_a_trimmed_revision_fails_cleanly(server, apps, tmp_path):
    set_limit(apps, 2)
    rollouts(server, apps, 4)
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    try:
        with pytest.raises(NotFound, match=r"no revision '1' \(have \[3, 4, 5\]\)"):
            cluster.apply(Action(ActionKind.ROLLBACK, WEB, "ErrorRatioHigh", revision="1"))
        cluster.apply(Action(ActionKind.ROLLBACK, WEB, "ErrorRatioHigh", revision="3"))  # a kept one works
        assert cluster.observe([WEB]).statuses[0].revision == "6"
        complete(server, apps)
        set_limit(apps, 0)
        with pytest.raises(NotFound, match="no revision before 6 to roll back to"):
            cluster.apply(Action(ActionKind.ROLLBACK, WEB, "ErrorRatioHigh"))
    finally:
        cluster.close()


@pytest.mark.parametrize("value", [
    pytest.param(-1, id="negative"),
    pytest.param("10", id="string"),
    pytest.param(2**31, id="above-int32"),
])
def test_an_invalid_limit_is_422(apps, value):
    with pytest.raises(ApiException) as err:
        set_limit(apps, value)
    assert err.value.status == 422 and "spec.revisionHistoryLimit" in err.value.body
    assert apps.read_namespaced_deployment("web", NS).spec.revision_history_limit == REVISION_HISTORY_LIMIT


def test_many_rollouts_keep_the_history_bounded(server, apps):
    # the soak's finding: every rollout added a ReplicaSet (and its template, fingerprint and
    # engine revision) for good
    store, engine = server.world.store, server.world.engine
    w, i = store.by_key[("Deployment", NS, "web")], engine.index("web")
    most = 0
    for n in range(1, 41):
        rollouts(server, apps, 1, first=n)
        most = max(most, len(revisions(apps)))
    assert most == REVISION_HISTORY_LIMIT + 1
    assert len(engine.revisions(i)) == len(w.templates) == REVISION_HISTORY_LIMIT + 1
    assert sum(1 for key in store._fingerprints if key[0] == "ReplicaSet" and key[2].startswith("web-")) \
        == REVISION_HISTORY_LIMIT + 1
