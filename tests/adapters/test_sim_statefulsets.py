"""sim serve's StatefulSets as the apiserver and the StatefulSet controller serve them, through the
official client: status during an update (currentRevision / updateRevision and their counts), the
ControllerRevisions kubectl rollout history/undo read, the partition, the fields an update may not
change, revisionHistoryLimit, the pods' labels; and the ways to declare one (the scenario's
``kind: StatefulSet``, ``--statefulset``).

``web`` (2 replicas, start-up 10 s) is a StatefulSet; the engine is stepped by hand, ticks of 5 s.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from simulators.kubeapi import server as server_module
from simulators.kubeapi.server import SimKubeServer, SimWorld
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import TOKEN, official_client
from tests.adapters.test_statefulset_contract import STS_YAML, serve_sts, sts_scenario

NS = "shop"


@pytest.fixture
def server():
    yield from serve_sts()


@pytest.fixture
def apps(server, tmp_path):
    c = official_client(server, tmp_path)
    yield client.AppsV1Api(c)
    c.close()


def restart(apps, stamp: str = "2026-01-01T00:00:00Z") -> None:
    """kubectl rollout restart's patch: a new pod-template annotation, so a new revision."""
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp}}}}})


def status(apps) -> dict:
    st = apps.read_namespaced_stateful_set("web", NS).status
    return {"replicas": st.replicas, "ready": st.ready_replicas, "current": st.current_replicas,
            "updated": st.updated_replicas, "same_revision": st.current_revision == st.update_revision}


# (ticks after a rollout restart, status): web-1 is replaced first, then web-0, each once its old
# self is gone (30 s of grace: 6 ticks) and started (10 s); a terminating pod counts in replicas,
# not in ready, current nor updated (computeReplicaStatus); currentRevision stays the old one until
# both are on the new revision and Ready (completeRollingUpdate)
UPDATE_STEPS = [
    pytest.param(0, {"replicas": 2, "ready": 2, "current": 2, "updated": None, "same_revision": False},
                 id="written-not-synced-yet"),
    pytest.param(1, {"replicas": 2, "ready": 1, "current": 1, "updated": None, "same_revision": False},
                 id="web-1-terminating-counted-in-replicas-only"),
    pytest.param(7, {"replicas": 2, "ready": 1, "current": 1, "updated": 1, "same_revision": False},
                 id="web-1-replaced-once-gone-starting"),
    pytest.param(9, {"replicas": 2, "ready": 1, "current": None, "updated": 1, "same_revision": False},
                 id="web-1-ready-web-0-terminating"),  # currentReplicas 0: omitted, as the apiserver omits it
    pytest.param(17, {"replicas": 2, "ready": 2, "current": 2, "updated": 2, "same_revision": True},
                 id="both-updated-and-ready-current-is-update"),
]


@pytest.mark.parametrize("ticks, expected", UPDATE_STEPS)
def test_status_through_a_rolling_update(server, apps, ticks, expected):
    restart(apps)
    server.world.advance(ticks)
    assert status(apps) == expected
    sts = apps.read_namespaced_stateful_set("web", NS)
    assert sts.status.observed_generation == sts.metadata.generation == 2


def test_controller_revisions_are_listed_by_the_selector_and_owned_by_the_statefulset(server, apps):
    restart(apps)
    server.world.advance(18)
    sts = apps.read_namespaced_stateful_set("web", NS)
    revisions = apps.list_namespaced_controller_revision(NS, label_selector="app=web").items
    assert sorted(r.revision for r in revisions) == [1, 2]
    newest = max(revisions, key=lambda r: r.revision)
    assert newest.metadata.name == sts.status.update_revision == sts.status.current_revision
    for r in revisions:
        [owner] = r.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("StatefulSet", "web", sts.metadata.uid, True)
        assert r.metadata.labels["controller.kubernetes.io/hash"] == r.metadata.name.removeprefix("web-")
        assert r.data["spec"]["template"]["$patch"] == "replace"
    template = {k: v for k, v in newest.data["spec"]["template"].items() if k != "$patch"}
    assert template["metadata"]["annotations"] == {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
    assert apps.read_namespaced_controller_revision(newest.metadata.name, NS).revision == 2
    assert apps.list_namespaced_controller_revision(NS, label_selector="app=api").items == []  # a Deployment's
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_controller_revision("web-nosuchhash", NS)
    assert err.value.status == 404


def test_a_pods_revision_is_its_controller_revision(server, apps, tmp_path):
    restart(apps)
    server.world.advance(7)  # web-1 back on the update revision once its old self is gone
    core = client.CoreV1Api(official_client(server, tmp_path))
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(NS, label_selector="app=web").items}
    sts = apps.read_namespaced_stateful_set("web", NS)
    assert {n: p.metadata.labels["controller-revision-hash"] for n, p in pods.items()} == {
        "web-0": sts.status.current_revision, "web-1": sts.status.update_revision}
    web1 = pods["web-1"]
    assert web1.metadata.labels["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert web1.metadata.labels["apps.kubernetes.io/pod-index"] == "1"
    assert (web1.spec.hostname, web1.spec.subdomain) == ("web-1", "web")


@pytest.mark.parametrize("partition, after, current_is_update", [
    pytest.param(1, {"web-0": "old", "web-1": "new"}, False, id="partition-1-keeps-web-0"),
    pytest.param(2, {"web-0": "old", "web-1": "old"}, False, id="partition-2-updates-none"),
    pytest.param(0, {"web-0": "new", "web-1": "new"}, True, id="partition-0-updates-all"),
])
def test_the_partition_bounds_the_update(server, apps, tmp_path, partition, after, current_is_update):
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"updateStrategy": {"rollingUpdate": {
        "partition": partition}}}})
    old = apps.read_namespaced_stateful_set("web", NS).status.current_revision
    restart(apps)
    server.world.advance(18)
    sts = apps.read_namespaced_stateful_set("web", NS)
    assert sts.spec.update_strategy.rolling_update.partition == partition
    core = client.CoreV1Api(official_client(server, tmp_path))
    revisions = {p.metadata.name: "old" if p.metadata.labels["controller-revision-hash"] == old else "new"
                 for p in core.list_namespaced_pod(NS, label_selector="app=web").items}
    assert revisions == after
    assert (sts.status.current_revision == sts.status.update_revision) is current_is_update


@pytest.mark.parametrize("patch, field, words", [
    pytest.param({"spec": {"podManagementPolicy": "Parallel"}}, "spec", "updates to statefulset spec for fields other "
                 "than 'replicas', 'ordinals', 'template', 'updateStrategy'", id="pod-management-policy-immutable"),
    pytest.param({"spec": {"serviceName": "other"}}, "spec", "are forbidden", id="service-name-immutable"),
    pytest.param({"spec": {"updateStrategy": {"rollingUpdate": {"partition": -1}}}},
                 "spec.updateStrategy.rollingUpdate.partition", "must be greater than or equal to 0",
                 id="negative-partition"),
    pytest.param({"spec": {"updateStrategy": {"rollingUpdate": {"partition": "one"}}}},
                 "spec.updateStrategy.rollingUpdate.partition", "must be an integer", id="partition-not-a-number"),
    pytest.param({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}, "spec.updateStrategy.type",
                 'the simulated cluster serves "RollingUpdate" only', id="on-delete-not-simulated"),
    pytest.param({"spec": {"updateStrategy": {"type": "Recreate"}}}, "spec.updateStrategy.type",
                 'supported values: "OnDelete", "RollingUpdate"', id="unknown-strategy"),
    pytest.param({"spec": {"minReadySeconds": 30}}, "spec.minReadySeconds", "the simulated cluster serves 0 only",
                 id="min-ready-seconds-not-simulated"),
    pytest.param({"spec": {"ordinals": {"start": 5}}}, "spec.ordinals.start", "the simulated cluster serves 0 only",
                 id="start-ordinal-not-simulated"),
])
def test_an_invalid_update_is_refused_naming_its_field(server, apps, patch, field, words):
    before = apps.read_namespaced_stateful_set("web", NS)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_stateful_set("web", NS, patch)
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["details"]["causes"][0]["field"] == field
    assert words in body["message"], body["message"]
    assert apps.read_namespaced_stateful_set("web", NS).metadata.resource_version == before.metadata.resource_version


def test_revision_history_limit_trims_the_oldest_controller_revisions(server, apps):
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"revisionHistoryLimit": 1}})
    for k in range(3):
        restart(apps, f"2026-01-01T00:00:0{k}Z")
        server.world.advance(18)
    revisions = sorted(r.revision for r in apps.list_namespaced_controller_revision(NS).items)
    assert revisions == [3, 4]  # the current one and one old one
    assert len(server.world.engine.revisions(server.world.engine.index("web"))) == 2


@pytest.mark.parametrize("declared, option, expected", [
    pytest.param("scenario", (), {"web"}, id="scenario-kind"),
    pytest.param("scenario", ("api",), {"web", "api"}, id="scenario-kind-and-the-option"),
    pytest.param("option", ("web",), {"web"}, id="the-option-alone"),
])
def test_a_statefulset_is_declared_in_the_scenario_or_by_the_option(declared, option, expected):
    from tests.adapters.kube_helpers import kube_scenario
    scenario = sts_scenario() if declared == "scenario" else kube_scenario()
    world = SimWorld(scenario, statefulsets=frozenset(option), wall_start_s=1.7e9)
    assert {w.name for w in world.store.workloads if w.kind == "StatefulSet"} == expected


def test_serve_refuses_a_statefulset_the_scenario_does_not_have(tmp_path):
    (tmp_path / "sts.yaml").write_text(STS_YAML)
    with pytest.raises(ValueError, match=r"--statefulset ghost: scenario kube-test has no such service "
                                         r"\(its services: web, api\)"):
        server_module.serve(str(tmp_path / "sts.yaml"), "127.0.0.1:0", statefulsets=["ghost"])


def test_a_parallel_statefulset_creates_every_pod_of_a_scale_up_at_once(tmp_path):
    yaml = STS_YAML.replace("      kind: StatefulSet\n", "      kind: StatefulSet\n      podManagementPolicy: Parallel\n")
    assert yaml != STS_YAML
    scenario = load_scenario_text(yaml, "parallel.yaml")
    srv = SimKubeServer(scenario, drive=False, token=TOKEN).start()
    try:
        c = official_client(srv, tmp_path)
        apps, core = client.AppsV1Api(c), client.CoreV1Api(c)
        assert apps.read_namespaced_stateful_set("web", NS).spec.pod_management_policy == "Parallel"
        apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 5}})
        assert sorted(p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="app=web").items) == [
            f"web-{k}" for k in range(5)]
        with pytest.raises(ApiException) as err:  # immutable, as OrderedReady is
            apps.patch_namespaced_stateful_set("web", NS, {"spec": {"podManagementPolicy": "OrderedReady"}})
        assert err.value.status == 422
        c.close()
    finally:
        srv.stop()
