"""A restart with invalid policy files runs the last good copy the leader kept; without one it
refuses to start. Over the simulated ports with the in-memory store (the same JSON text as a
ConfigMap), and through the simulated apiserver with the real client."""

from __future__ import annotations

import json

import pytest

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.errors import PolicyError, StateStoreError
from controller.ports import state_name
from controller.runtime.last_good import PART, LastGoodCopy, PolicyTexts, parse, payload
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from simulators.ports import MemoryStateStore
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_service import POLICY, T0, sim, write_policy

KEPT_AS = "setpoint"  # the default Lease's name names the copy
KEY = state_name(KEPT_AS, PART)
BROKEN = POLICY.format(interval="15s", target=100).replace("averagePerReplica: 100", "averagePerReplica: lots")


def start(folder, store, leader=True, **options) -> tuple[ControllerService, Telemetry]:
    _, metrics, targets = sim()
    telemetry = Telemetry()
    service = ControllerService([folder], metrics, targets, telemetry,
                                ServiceOptions(reload_every_s=3600, reload_settle_s=0, **options),
                                clock=lambda: T0, is_leader=lambda: leader, state_store=store)
    return service, telemetry


def reload_ok(telemetry: Telemetry) -> float:
    return telemetry.registry.get_sample_value("setpoint_policy_reload_ok")


def stored_files(store: MemoryStateStore) -> list[str]:
    return [f["text"] for f in json.loads(store.load(KEPT_AS, PART))["files"]]


@pytest.fixture
def kept(tmp_path):
    """A store holding the copy a first controller kept of a valid web policy (target 100)."""
    store = MemoryStateStore()
    write_policy(tmp_path, target=100)
    first, _ = start(tmp_path, store)
    first.start()
    first.stop()
    assert store.saves[KEY] == 1
    return store


def test_a_restart_with_invalid_files_runs_the_copy_and_reports_the_files(tmp_path, kept):
    (tmp_path / "web.yaml").write_text(BROKEN)
    service, telemetry = start(tmp_path, kept)
    assert service.policies["web"].params.metrics[0].target == 100.0  # the copy's
    assert service.running_last_good is not None
    assert reload_ok(telemetry) == 0
    rejected = service.status()["rejectedPolicyFiles"]
    assert "web.yaml" in rejected["errors"][0] and "averagePerReplica" in rejected["errors"][0]
    assert "kept on the cluster" in rejected["running"]
    assert service.run_cycle("web").decision.desired.tolist() == [10]  # 1,000 rps at 100 per replica
    service.start()
    try:
        assert kept.saves[KEY] == 1  # the copy is not re-written from itself
    finally:
        service.stop()


def test_fixed_files_replace_the_copy_and_become_the_new_copy(tmp_path, kept):
    (tmp_path / "web.yaml").write_text(BROKEN)
    service, telemetry = start(tmp_path, kept)
    write_policy(tmp_path, target=50)
    assert service.reload_if_changed() is True
    assert service.policies["web"].params.metrics[0].target == 50.0
    assert (service.running_last_good, reload_ok(telemetry)) == (None, 1)
    assert "rejectedPolicyFiles" not in service.status()
    assert "averagePerReplica: 50" in stored_files(kept)[0] and kept.saves[KEY] == 2


@pytest.mark.parametrize("case", [
    pytest.param("no-copy", id="no-copy-refuses-to-start"),
    pytest.param("once", id="start-from-last-good-off-refuses-(run --once)"),
    pytest.param("tampered", id="a-copy-whose-digest-fails-refuses"),
    pytest.param("not-json", id="a-copy-that-is-not-json-refuses"),
    pytest.param("unloadable", id="a-copy-this-version-cannot-load-refuses"),
])
def test_invalid_files_without_a_usable_copy_refuse_to_start(tmp_path, kept, case):
    store, options = kept, {}
    if case == "no-copy":
        store = MemoryStateStore()
    elif case == "once":
        options = {"start_from_last_good": False}
    elif case == "tampered":
        body = json.loads(kept.load(KEPT_AS, PART))
        body["files"][0]["text"] = body["files"][0]["text"].replace("max: 20", "max: 2000")
        kept.save(KEPT_AS, body, PART)
    elif case == "not-json":
        kept._texts[KEY] = "{not json"
    elif case == "unloadable":  # e.g. kept by a newer version with a field this one does not know
        kept.save(KEPT_AS, payload(PolicyTexts(((BROKEN, "web.yaml"),)), T0), PART)
    (tmp_path / "web.yaml").write_text(BROKEN)
    with pytest.raises(PolicyError) as raised:
        start(tmp_path, store, **options)
    assert "averagePerReplica" in str(raised.value.errors[0])  # the files' own errors


def test_controllers_sharing_a_state_namespace_each_restart_from_their_own_copy(tmp_path):
    """Two controllers (Leases setpoint and shop) in one state namespace: each keeps its copy
    under its Lease's name, and a restart of either with broken files runs its own policies,
    never the other's (one shared copy was the last writer's)."""
    store = MemoryStateStore()
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for folder, target, controller in ((ours, 100, "setpoint-system/setpoint"), (theirs, 40, "shop/shop")):
        folder.mkdir()
        write_policy(folder, target=target)
        first, _ = start(folder, store, controller=controller)
        first.start()
        first.stop()
    assert store.saves[state_name("setpoint", PART)] == 1 and store.saves[state_name("shop", PART)] == 1
    for folder, target, controller in ((ours, 100, "setpoint-system/setpoint"), (theirs, 40, "shop/shop")):
        (folder / "web.yaml").write_text(BROKEN)
        service, _ = start(folder, store, controller=controller)
        assert service.running_last_good is not None
        assert service.policies["web"].params.metrics[0].target == float(target), controller


def test_a_standby_keeps_nothing_and_the_leader_writes_only_changes(tmp_path):
    store = MemoryStateStore()
    write_policy(tmp_path)
    standby, _ = start(tmp_path, store, leader=False)
    standby.start()
    standby.reload_if_changed()
    standby.stop()
    assert KEY not in store.saves
    leader, _ = start(tmp_path, store)
    leader.start()
    try:
        for _ in range(3):
            leader.reload_if_changed()
        assert store.saves[KEY] == 1
    finally:
        leader.stop()


def test_a_rejected_hot_reload_keeps_the_copy_of_the_running_files(tmp_path, kept):
    service, telemetry = start(tmp_path, kept)
    (tmp_path / "web.yaml").write_text(BROKEN)
    assert service.reload_if_changed() is False
    assert reload_ok(telemetry) == 0 and "averagePerReplica: 100" in stored_files(kept)[0]
    assert service.status()["rejectedPolicyFiles"]["running"] == "the policies last loaded from the files"


@pytest.mark.parametrize("body,why", [
    pytest.param({"version": 2, "files": []}, "not a version 1", id="other-version"),
    pytest.param({"version": 1, "files": [{"name": "a.yaml"}]}, "not a list of {name, text}", id="file-without-text"),
    pytest.param({"version": 1, "files": [{"name": "a.yaml", "text": "x"}], "digest": "0"}, "digest does not match",
                 id="wrong-digest"),
])
def test_unsound_copies_are_named(body, why):
    with pytest.raises(ValueError, match=why):
        parse(body)


def test_a_copy_round_trips_through_a_configmap(server, tmp_path):  # noqa: F811
    """The copy as the real client writes and reads it through the simulated apiserver."""
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01, emit_events=False)
    try:
        texts = PolicyTexts(((POLICY.format(interval="15s", target=100), "/etc/setpoint/web.yaml"),))
        assert LastGoodCopy(KubernetesStateStore(cluster, "setpoint-system")).keep(texts, T0) is True
        cm = server.world.store.configmaps.get("setpoint-system", "setpoint-state-setpoint.last-good-policies")
        assert json.loads(cm["data"]["state.json"])["savedAt"] == "2023-11-14T22:13:20Z"
        again = LastGoodCopy(KubernetesStateStore(cluster, "setpoint-system")).recall()
        assert again.texts == texts
    finally:
        cluster.close()


def test_an_unreadable_store_is_named_at_recall():
    class Failing(MemoryStateStore):
        def load(self, policy, part=""):
            raise StateStoreError("read ConfigMap: 403 Forbidden")

    with pytest.raises(StateStoreError, match="403"):
        LastGoodCopy(Failing()).recall()
