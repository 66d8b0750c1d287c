"""The Kubernetes adapter's contract for StatefulSet targets, against ``sim serve`` serving ``web``
as a StatefulSet because its scenario says ``kind: StatefulSet``: resolve by kind, observe (pods
web-0..N-1, the update revision), scale through the scale subresource (pods follow one at a time
in ordinal order), restart a pod (it comes back under its name), rolling restart (from the
highest ordinal down, rollout in progress until currentRevision = updateRevision), the
resourceVersion preconditions of its writes, and no rollback (Setpoint rolls back Deployments only).

The engine does not run on its own (``drive=False``): tests step it (ticks of 5 s, start-up 10 s).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from kubernetes import client as kube_client

from controller.adapters.kubernetes import (KubernetesCluster, rollout_in_progress, statefulset_ordered,
                                            statefulset_ordinal_start)
from controller.errors import ConflictError, PermanentError, Superseded
from controller.model import Action, ActionKind, TargetRef, TargetSelector
from controller.runtime.actuate import RetryPolicy, apply_with_retries
from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import SCENARIO_YAML, SERVICE_LABELS, TOKEN, official_client

NS = "shop"
WEB = TargetRef(NS, "web", "StatefulSet")
API = TargetRef(NS, "api")
SCALE_PATH = r"/statefulsets/web/scale$"
#: kube_helpers' scenario with web declared a StatefulSet, as a user's scenario file declares it
STS_YAML = SCENARIO_YAML.replace("    - name: web\n      namespace: shop\n",
                                 "    - name: web\n      namespace: shop\n      kind: StatefulSet\n")


def sts_scenario(yaml: str = STS_YAML):
    sc = load_scenario_text(yaml, "sts-test.yaml")
    services = tuple(dataclasses.replace(s, labels=(("app", s.name), ("setpoint.io/autoscale", "true"))
                                         + SERVICE_LABELS.get(s.name, ())) for s in sc.cluster.services)
    return dataclasses.replace(sc, cluster=dataclasses.replace(sc.cluster, services=services))


def serve_sts(yaml: str = STS_YAML):
    """sim serve over ``yaml``'s scenario (web a StatefulSet), stepped by hand; stopped after (a fixture's body)."""
    srv = SimKubeServer(sts_scenario(yaml), drive=False, token=TOKEN).start()
    yield srv
    srv.stop()


@pytest.fixture
def server():
    yield from serve_sts()


def make_cluster(srv, folder, **options) -> KubernetesCluster:
    return KubernetesCluster(official_client(srv, folder), **{"qps": 0, "retry_backoff_s": 0.01,
                                                              "request_timeout_s": 3.0, **options})


@pytest.fixture
def cluster(server, tmp_path):
    """An adapter that has observed web (its writes carry the observed resourceVersion)."""
    kc = make_cluster(server, tmp_path)
    kc.observe([WEB])
    server.api.requests.reset()
    yield kc
    kc.close()


def pods(kc: KubernetesCluster) -> list[tuple[str, str, bool]]:
    """web's pods as the adapter observes them: (name, revision, ready), by name; not those terminating."""
    return [(p.name, p.revision, p.ready) for p in kc.observe([WEB], with_pods=True).statuses[0].pods if not p.deleted]


def retried(kc: KubernetesCluster, action: Action):
    """Apply as the reconciler does, through the retry owner, on a fake clock."""
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    return apply_with_retries(kc.apply, action, RetryPolicy(), lambda: now[0], sleep)


def test_scenario_kind_serves_a_statefulset_that_resolves_by_its_kind(cluster):
    assert cluster.resolve(TargetSelector("StatefulSet", NS, names=("web", "api"))) == [WEB]
    assert cluster.resolve(TargetSelector("Deployment", NS, names=("web", "api"))) == [API]
    assert cluster.resolve(TargetSelector("StatefulSet", NS, match_labels=(("tier", "front"),))) == [WEB]


def test_observe_reads_ordinal_pods_on_the_update_revision(cluster, server):
    status = cluster.observe([WEB], with_pods=True).statuses[0]
    revision = server.world.store.get_workload("StatefulSet", NS, "web")["status"]["updateRevision"]
    assert (status.spec_replicas, status.status_replicas, status.ready_replicas) == (2, 2, 2)
    assert status.revision == revision and not status.rollout_in_progress
    assert [(p.name, p.revision, p.ready) for p in status.pods] == [("web-0", revision, True), ("web-1", revision, True)]


#: web a StatefulSet with podManagementPolicy Parallel
PARALLEL_YAML = STS_YAML.replace("      kind: StatefulSet\n", "      kind: StatefulSet\n      podManagementPolicy: Parallel\n")
assert PARALLEL_YAML != STS_YAML


@pytest.mark.parametrize("yaml, ref, ordered", [
    pytest.param(STS_YAML, WEB, True, id="statefulset-ordered-ready-by-default"),
    pytest.param(PARALLEL_YAML, WEB, False, id="statefulset-parallel"),
    pytest.param(STS_YAML, API, False, id="deployment"),
])
def test_observe_says_whether_pods_are_created_one_at_a_time(tmp_path, yaml, ref, ordered):
    """TargetStatus.ordered: an OrderedReady StatefulSet, whose scale-up arbitration does not answer
    with more replicas (core/arbitrate.py); read from spec.podManagementPolicy."""
    srv = SimKubeServer(sts_scenario(yaml), drive=False, token=TOKEN).start()
    try:
        kc = make_cluster(srv, tmp_path)
        assert kc.observe([ref]).statuses[0].ordered is ordered
        kc.close()
    finally:
        srv.stop()


def test_an_unset_pod_management_policy_is_ordered_ready():
    """The apiserver defaults it; an object read without it (an older server, a fake) is OrderedReady."""
    assert statefulset_ordered(SimpleNamespace(spec=SimpleNamespace(pod_management_policy=None))) is True
    assert statefulset_ordered(SimpleNamespace(spec=SimpleNamespace())) is True


@pytest.mark.parametrize("spec, start", [
    pytest.param(SimpleNamespace(ordinals=kube_client.V1StatefulSetOrdinals(start=5)), 5, id="ordinals-start-5"),
    pytest.param(SimpleNamespace(ordinals=kube_client.V1StatefulSetOrdinals()), 0, id="ordinals-without-start"),
    pytest.param(SimpleNamespace(ordinals=None), 0, id="no-ordinals"),
])
def test_the_first_ordinal_is_read(spec, start):
    """spec.ordinals.start numbers the pods from it: the condemned pods are those out of
    [start, start + replicas) (runtime/healing.py), not all of them."""
    assert statefulset_ordinal_start(SimpleNamespace(spec=spec)) == start


@pytest.mark.parametrize("to, ticks, expected", [
    # OrderedReady: web-2 at once, web-3 only once web-2 is Ready (10 s: 2 ticks)
    pytest.param(4, 0, [("web-0", True), ("web-1", True), ("web-2", False)], id="up-at-the-write"),
    pytest.param(4, 2, [("web-0", True), ("web-1", True), ("web-2", True), ("web-3", False)], id="up-then-the-next"),
    pytest.param(4, 4, [("web-0", True), ("web-1", True), ("web-2", True), ("web-3", True)], id="up-all-ready"),
    pytest.param(0, 0, [("web-0", True)], id="down-highest-first"),
    pytest.param(0, 5, [("web-0", True)], id="down-the-next-waits-for-the-first-to-be-gone"),  # its 30 s grace
    pytest.param(0, 6, [], id="down-then-the-next"),
])
def test_scale_through_the_scale_subresource_and_pods_follow_in_ordinal_order(cluster, server, to, ticks, expected):
    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=to, from_replicas=2))
    assert server.api.requests.count("PATCH", SCALE_PATH) == 1
    server.world.advance(ticks)
    view = cluster.observe([WEB])
    assert view.spec.tolist() == [to] and not view.rollout.any()  # a scale is not a rollout
    assert [(name, bool(ready)) for name, _, ready in pods(cluster)] == expected  # Pending: no Ready condition


@pytest.mark.parametrize("partition", [pytest.param(0, id="unpartitioned"), pytest.param(1, id="partitioned")])
def test_an_ordered_ready_scale_up_after_a_revision_change_is_no_rollout(cluster, server, tmp_path, partition):
    """A revision change (a rolling restart, held at ``partition``) is a rollout until its pods are
    updated; the scale-up 2 -> 4 after it is not, at any tick, though its pods start one at a
    time (kubectl rollout status: "Waiting for 1 pods to be ready..."). Read as a rollout, it held
    every restart and scale-down of a partitioned StatefulSet for the whole scale-up."""
    apps = kube_client.AppsV1Api(official_client(server, tmp_path))
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": partition}}}})
    cluster.observe([WEB])  # the adapter writes at the resourceVersion it read
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    assert cluster.observe([WEB]).rollout.tolist() == [True]
    for _ in range(18):  # each pod replaced once its old self is gone (30 s) and Ready (10 s)
        server.world.advance(1)
    assert cluster.observe([WEB]).rollout.tolist() == [False]  # the pods at or above the partition updated
    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=4, from_replicas=2))
    seen = []
    for _ in range(6):
        view = cluster.observe([WEB])
        seen.append((int(view.ready[0]), bool(view.rollout[0])))
        server.world.advance(1)
    assert [ready for ready, _ in seen] == [2, 2, 3, 3, 4, 4], seen  # web-2, then web-3, each starting 2 ticks
    assert not [rolling for _, rolling in seen if rolling], seen
    sts = apps.read_namespaced_stateful_set("web", NS).status
    assert (sts.updated_replicas, sts.current_revision == sts.update_revision) == (4 - partition, not partition)


def test_a_scale_the_statefulset_changed_under_is_refused_not_applied(cluster, server, tmp_path):
    (tmp_path / "other").mkdir()
    other = make_cluster(server, tmp_path / "other")
    other.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=5, from_replicas=2))
    with pytest.raises(ConflictError):
        cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleDown", replicas=1, from_replicas=2))
    assert server.world.store.get_workload("StatefulSet", NS, "web")["spec"]["replicas"] == 5
    other.close()


def test_restart_pod_comes_back_under_its_name(cluster, server):
    before = {p.name: p.created_time for p in cluster.observe([WEB], with_pods=True).statuses[0].pods}
    cluster.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod="web-1"))
    after = {p.name: p for p in cluster.observe([WEB], with_pods=True).statuses[0].pods}
    assert sorted(after) == ["web-0", "web-1"] and after["web-1"].deleted  # terminating for its 30 s
    server.world.advance(6)
    after = {p.name: p for p in cluster.observe([WEB], with_pods=True).statuses[0].pods}
    assert sorted(after) == ["web-0", "web-1"]  # the StatefulSet recreates web-1 once gone, not a new name
    assert after["web-1"].created_time > before["web-1"] and not after["web-1"].ready and not after["web-1"].deleted
    server.world.advance(2)
    assert cluster.observe([WEB]).ready.tolist() == [2]


def test_rolling_restart_updates_from_the_highest_ordinal_and_ends(cluster, server):
    old = cluster.observe([WEB]).statuses[0].revision
    cluster.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
    template = server.world.store.get_workload("StatefulSet", NS, "web")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    status = cluster.observe([WEB]).statuses[0]
    new = status.revision
    assert new != old and status.rollout_in_progress
    updated_in_order = []
    for _ in range(18):  # each pod replaced once its old self is gone (30 s) and Ready (10 s)
        server.world.advance(1)
        for name, revision, _ in pods(cluster):
            if revision == new and name not in updated_in_order:
                updated_in_order.append(name)
    assert updated_in_order == ["web-1", "web-0"]
    sts = server.world.store.get_workload("StatefulSet", NS, "web")["status"]
    assert (sts["currentRevision"], sts["updateRevision"]) == (new, new)
    assert not cluster.observe([WEB]).rollout.any()


def test_a_late_rolling_restart_of_a_statefulset_is_one_rollout_not_two(server, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = make_cluster(server, tmp_path / "a"), make_cluster(server, tmp_path / "b")
    a.observe([WEB]), b.observe([WEB])
    i = server.world.engine.index("web")
    revisions = len(server.world.engine.revisions(i))
    assert retried(a, Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))[0] is None
    assert isinstance(retried(b, Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))[0], Superseded)
    assert len(server.world.engine.revisions(i)) == revisions + 1
    a.close()
    b.close()


def test_a_rollback_of_a_statefulset_is_refused_before_any_request(cluster, server):
    with pytest.raises(PermanentError, match="only Deployments can be rolled back"):
        cluster.apply(Action(ActionKind.ROLLBACK, WEB, "BadRelease"))
    assert server.api.requests.count() == 0


def sts_object(spec: int, replicas: int, updated: int, current: str, update: str, generation: int = 2,
               observed: int = 2, partition: int | None = None, ready: int | None = None,
               strategy: str = "RollingUpdate") -> SimpleNamespace:
    """The fields of a read StatefulSet that rollout_in_progress reads (as the client's model names
    them); ``partition``: spec.updateStrategy.rollingUpdate.partition (None: no rollingUpdate);
    ``ready``: status.readyReplicas (None: every pod)."""
    rolling = None if partition is None else SimpleNamespace(partition=partition, max_unavailable=None)
    return SimpleNamespace(metadata=SimpleNamespace(name="web", generation=generation),
                           spec=SimpleNamespace(replicas=spec, update_strategy=SimpleNamespace(
                               type=strategy, rolling_update=rolling)),
                           status=SimpleNamespace(replicas=replicas, updated_replicas=updated, current_revision=current,
                                                  update_revision=update, observed_generation=observed,
                                                  ready_replicas=replicas if ready is None else ready))


#: One rule for every row (adapters/kubernetes.rollout_in_progress): spec not observed, pods left to
#: replace (existing pods at or above the partition off the update revision), or no completion mark
#: (currentRevision != updateRevision; a partition never gets it). Readiness counts only through the
#: mark, so a scale-up's starting pods are no rollout, partitioned or not (kubectl rollout status
#: waits for them: "Waiting for 1 pods to be ready...").
@pytest.mark.parametrize("workload, rolling", [
    # --- unpartitioned
    pytest.param(sts_object(3, 3, 3, "web-a", "web-a"), False, id="unpartitioned-settled"),
    pytest.param(sts_object(3, 3, 3, "web-a", "web-a", generation=3), True, id="unpartitioned-spec-not-observed-yet"),
    pytest.param(sts_object(4, 4, 4, "web-a", "web-a", partition=0), False, id="unpartitioned-partition-zero-settled"),
    # --- unpartitioned, scaling (OrderedReady: one pod at a time, each on the update revision)
    pytest.param(sts_object(4, 3, 3, "web-a", "web-a"), False, id="unpartitioned-scale-up-pods-being-created"),
    pytest.param(sts_object(4, 4, 4, "web-a", "web-a", ready=3), False, id="unpartitioned-scale-up-pod-starting"),
    pytest.param(sts_object(1, 3, 3, "web-a", "web-a"), False, id="unpartitioned-scale-down-pods-being-removed"),
    # status.replicas counts a terminating pod, updatedReplicas does not (computeReplicaStatus)
    pytest.param(sts_object(2, 3, 2, "web-a", "web-a", ready=2), False,
                 id="unpartitioned-scale-down-pod-terminating-counted-in-replicas-only"),
    # --- unpartitioned, revision change
    pytest.param(sts_object(3, 3, 1, "web-a", "web-b"), True, id="unpartitioned-revision-change-one-pod-done"),
    pytest.param(sts_object(3, 3, 3, "web-a", "web-b", ready=2), True,
                 id="unpartitioned-revision-change-all-updated-not-all-ready-yet"),
    pytest.param(sts_object(4, 4, 2, "web-a", "web-b", partition=0), True,
                 id="unpartitioned-revision-change-partition-zero-half-updated"),
    pytest.param(sts_object(5, 4, 2, "web-a", "web-b", ready=3), True,
                 id="unpartitioned-revision-change-while-scaling-up"),
    pytest.param(sts_object(4, 4, 2, "web-a", "web-b", partition=2, strategy="OnDelete"), True,
                 id="unpartitioned-on-delete-ignores-the-partition"),
    # --- partitioned (a canary): complete once the pods at or above it are on the update revision
    # (currentRevision stays behind for good: the pods below the partition keep it)
    pytest.param(sts_object(4, 4, 2, "web-a", "web-b", partition=2), False, id="partitioned-roll-out-complete"),
    pytest.param(sts_object(4, 4, 2, "web-a", "web-b", partition=2, generation=3), True,
                 id="partitioned-spec-not-observed-yet"),
    pytest.param(sts_object(4, 4, 0, "web-a", "web-b", partition=4), False, id="partitioned-at-replicas-none-updated"),
    # --- partitioned, revision change
    pytest.param(sts_object(4, 4, 1, "web-a", "web-b", partition=2), True, id="partitioned-revision-change-one-of-two"),
    pytest.param(sts_object(3, 3, 1, "web-a", "web-b", partition=1), True,
                 id="partitioned-revision-change-holds-for-the-next-pod"),
    # its last canary pod starting reads as a scale-up's would (below), so neither is a rollout: a
    # restart waits for it as for any starting pod (the overload rule), not as for a rollout
    pytest.param(sts_object(4, 4, 2, "web-a", "web-b", partition=2, ready=3), False,
                 id="partitioned-revision-change-last-canary-pod-starting"),
    # --- partitioned, scaling (kubectl: "Waiting for 1 pods to be ready...", as the rows above it)
    pytest.param(sts_object(6, 5, 3, "web-a", "web-b", partition=2, ready=4), False,
                 id="partitioned-scale-up-pods-being-created"),
    pytest.param(sts_object(5, 5, 3, "web-a", "web-b", partition=2, ready=4), False,
                 id="partitioned-scale-up-pod-starting"),
    pytest.param(sts_object(3, 5, 3, "web-a", "web-b", partition=2), False, id="partitioned-scale-down-pods-being-removed"),
])
def test_what_a_statefulset_rollout_in_progress_is(workload, rolling):
    assert rollout_in_progress(workload, "StatefulSet") is rolling


@pytest.mark.parametrize("workload, terminating, rolling", [
    # web-0, web-1 below the partition (old), web-2 updated, web-3 (condemned) terminating
    pytest.param(sts_object(3, 4, 1, "web-a", "web-b", partition=2, ready=3), 1, False,
                 id="partitioned-scale-down-pod-terminating-seen"),
    pytest.param(sts_object(3, 4, 1, "web-a", "web-b", partition=2, ready=3), 0, True,
                 id="partitioned-scale-down-pod-terminating-not-seen"),
    # the update deleted web-2 (terminating): its replacement is still to come
    pytest.param(sts_object(3, 3, 0, "web-a", "web-b", ready=2), 1, True, id="update-pod-terminating-still-rolling"),
])
def test_a_statefulset_s_terminating_pods_are_not_pods_left_to_replace(workload, terminating, rolling):
    assert rollout_in_progress(workload, "StatefulSet", terminating) is rolling
