"""The leader's cleanup of removed policies' state (controller/runtime/state_cleanup.py) over the
in-memory store (the same JSON text, versions and owners as ConfigMaps): when it deletes, what it
never deletes, and what it does when the store fails. Times are passed in."""

from __future__ import annotations

import json
import logging

import pytest

from controller.errors import StateStoreError
from controller.policy import load_policy_text
from controller.runtime.reconciler import RuntimePolicy
from controller.runtime.state_cleanup import (INDEX_REFRESH_S, LAST_SEEN_MARGIN_S, MAX_DELETIONS_PER_TEND, RETRY_S,
                                              RemovedStateCleanup, utc)
from controller.runtime.state_index import PART
from simulators.ports import MemoryStateStore

T0 = 1_700_000_000.0
CONTROLLER = "setpoint-system/setpoint"
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  targets: {{kind: Deployment, namespace: shop, names: [{name}]}}
  replicas: {{min: 1, max: 20}}
  scaling:
    metrics: [{{name: rps, query: demand, target: {{averagePerReplica: 30}}}}]
    onExternalScale: {{handsOff: {hands_off}}}
"""
KEEP_S = 3600.0 + 2 * 600.0  # handsOff 10m: the fight window, an hour plus twice that


def policies(*names: str, hands_off: str = "10m") -> dict[str, RuntimePolicy]:
    out = {}
    for name in names:
        [loaded] = load_policy_text(POLICY.format(name=name, hands_off=hands_off), f"{name}.yaml")
        out[name] = RuntimePolicy.of(loaded)
    return out


def save_state(store: MemoryStateStore, name: str, at: float) -> None:
    """A policy's health state and scale events, as its cycle at ``at`` wrote them."""
    store.save(name, {"schema_version": 1, "policy": name, "saved_at": at, "targets": {}})
    store.save(name, {"version": 1, "policy": name, "savedAt": at, "targets": {}}, "scale-events")


def has_state(store: MemoryStateStore, name: str) -> bool:
    return store.sharing().load(name) is not None or store.sharing().load(name, "scale-events") is not None


def index(store: MemoryStateStore) -> dict:
    return json.loads(store.sharing().load("setpoint", PART))["policies"]


@pytest.fixture
def store():
    s = MemoryStateStore(CONTROLLER)
    for name in ("web", "api"):
        save_state(s, name, T0)
    return s


def test_a_removed_policys_state_is_deleted_once_its_keep_has_passed(store, caplog):
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    removed_at = T0 + 60
    caplog.set_level(logging.INFO, logger="setpoint")
    assert cleanup.tend(policies("web"), removed_at).pending == 1  # a reload without api
    said = [r.getMessage() for r in caplog.records if "is deleted at" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"policy api no longer loaded: its durable state "
                                                 f"(setpoint-state-api*) is deleted at {utc(removed_at + KEEP_S)}, 1h20m")
    assert index(store)["api"]["removedAt"] == removed_at
    assert cleanup.tend(policies("web"), removed_at + KEEP_S - 1).deleted == []
    assert has_state(store, "api")
    result = cleanup.tend(policies("web"), removed_at + KEEP_S)
    assert (result.deleted, result.pending) == (["api"], 0)
    assert not has_state(store, "api") and has_state(store, "web")
    assert set(index(store)) == {"web"}
    assert any("deleted the durable state of removed policy api (setpoint-state-api, setpoint-state-api.scale-events)"
               in r.getMessage() for r in caplog.records)


def test_a_policy_loaded_again_before_then_keeps_its_state(store):
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    cleanup.tend(policies("web"), T0 + 60)
    cleanup.tend(policies("web", "api"), T0 + 600)  # added back (a GitOps revert)
    for now in (T0 + 60 + KEEP_S, T0 + 30 * 86400.0):
        assert cleanup.tend(policies("web", "api"), now).deleted == []
    assert has_state(store, "api") and "removedAt" not in index(store)["api"]


def test_an_edited_policy_is_kept_for_its_latest_parameters(store):
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    cleanup.tend({**policies("web"), **policies("api", hands_off="1h")}, T0 + 30)  # handsOff 10m -> 1h
    cleanup.tend(policies("web"), T0 + 60)
    assert index(store)["api"]["keepS"] == 3 * 3600.0
    assert cleanup.tend(policies("web"), T0 + 60 + KEEP_S).deleted == []
    assert cleanup.tend(policies("web"), T0 + 60 + 3 * 3600.0).deleted == ["api"]


def test_a_start_without_a_policy_deletes_from_when_it_was_last_seen(store):
    """A new process (a restart) whose files no longer have api: the index says when api was last
    seen running; it ran until at most LAST_SEEN_MARGIN_S after that (the index is refreshed)."""
    RemovedStateCleanup(store, CONTROLLER).tend(policies("web", "api"), T0)
    restarted = RemovedStateCleanup(store.sharing(CONTROLLER), CONTROLLER)
    restarted.tend(policies("web"), T0 + 600)
    due = T0 + LAST_SEEN_MARGIN_S + KEEP_S
    assert index(store)["api"]["removedAt"] == T0 + LAST_SEEN_MARGIN_S
    assert restarted.tend(policies("web"), due - 1).deleted == [] and has_state(store, "api")
    assert restarted.tend(policies("web"), due).deleted == ["api"] and not has_state(store, "api")


def test_state_saved_after_the_removal_restarts_the_count(store):
    """A cycle still running at the reload, or another process still running the policy, saved it
    after it was removed: it is kept a whole keep from that save."""
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    cleanup.tend(policies("web"), T0 + 60)
    store.sharing(CONTROLLER).save("api", {"version": 1, "policy": "api", "savedAt": T0 + 900, "targets": {}},
                                   "scale-events")
    assert cleanup.tend(policies("web"), T0 + 60 + KEEP_S).deleted == [] and has_state(store, "api")
    assert index(store)["api"]["removedAt"] == T0 + 900
    assert cleanup.tend(policies("web"), T0 + 900 + KEEP_S).deleted == ["api"]


def test_state_another_controller_wrote_last_is_left_and_forgotten(store, caplog):
    """Another controller runs a policy of that name in the same state namespace: its payload is
    never deleted, and the name leaves this controller's index."""
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    cleanup.tend(policies("web"), T0 + 60)
    store.sharing("setpoint-system/team-b").save("api", {"schema_version": 1, "saved_at": T0 + 30})
    result = cleanup.tend(policies("web"), T0 + 60 + KEEP_S)
    assert (result.deleted, result.foreign, result.pending) == ([], ["api"], 0)
    assert store.sharing().load("api") is not None and set(index(store)) == {"web"}
    assert "kubectl delete configmap --ignore-not-found setpoint-state-api setpoint-state-api.hands-off" in caplog.text
    caplog.clear()
    store.namespace = "setpoint-system"  # a store that says its namespace (the Kubernetes one): kubectl gets -n
    cleanup.tend(policies("web", "api"), T0 + 2 * KEEP_S)
    cleanup.tend(policies("web"), T0 + 2 * KEEP_S + 60)
    assert cleanup.tend(policies("web"), T0 + 3 * KEEP_S + 60).foreign == ["api"]
    assert "kubectl -n setpoint-system delete configmap --ignore-not-found setpoint-state-api " in caplog.text


@pytest.mark.parametrize("writer, part, deleted", [
    pytest.param("setpoint-system/team-b", "scale-events", False, id="another-controllers-last-part-keeps-every-part"),
    pytest.param("setpoint-system/team-b", "", False, id="another-controllers-first-part-keeps-every-part"),
    pytest.param("", "scale-events", True, id="a-part-saved-before-owners-is-deleted-as-ours"),
    pytest.param("", "", True, id="a-health-state-saved-before-owners-is-deleted-as-ours"),
])
def test_every_part_or_none_is_deleted(writer, part, deleted, store):
    """A policy's state is deleted whole or not at all: a part another controller wrote last keeps
    the parts this one wrote (a half-deleted state is neither's); a part with no owner recorded (a
    setpoint older than owners wrote it) is this controller's, the index proving it ran the policy."""
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    cleanup.tend(policies("web"), T0 + 60)
    payload = {"version": 1, "policy": "api", "savedAt": T0, "targets": {}} if part else {
        "schema_version": 1, "policy": "api", "saved_at": T0, "targets": {}}
    store.sharing(writer).save("api", payload, part)
    result = cleanup.tend(policies("web"), T0 + 60 + KEEP_S)
    assert (result.deleted, result.foreign) == ((["api"], []) if deleted else ([], ["api"]))
    left = [store.sharing().load("api", p) is not None for p in ("", "scale-events")]
    assert left == ([False, False] if deleted else [True, True])


def test_a_second_writer_of_the_index_stops_every_deletion(store, caplog):
    """Two processes keep one index (two controllers with the same Lease in one state namespace, each
    without leader election): neither may trust it, so neither deletes anything."""
    ours = RemovedStateCleanup(store, CONTROLLER)
    ours.tend(policies("web", "api"), T0)
    ours.tend(policies("web"), T0 + 60)
    RemovedStateCleanup(store.sharing(CONTROLLER), CONTROLLER).tend(policies("api"), T0 + 120)  # the other one
    with caplog.at_level(logging.ERROR, logger="setpoint"):
        for now in (T0 + 60 + KEEP_S, T0 + 365 * 86400.0):
            assert ours.tend(policies("web"), now).deleted == []
    assert has_state(store, "api") and has_state(store, "web")
    assert ours.doubt and len([r for r in caplog.records if "not only this controller's" in r.getMessage()]) == 1


def test_a_new_leadership_term_reads_the_index_afresh(store):
    """What another leader did meanwhile (it removed api) is read when this process leads again."""
    a, b = RemovedStateCleanup(store, CONTROLLER), RemovedStateCleanup(store.sharing(CONTROLLER), CONTROLLER)
    a.tend(policies("web", "api"), T0, term=1)
    b.tend(policies("web", "api"), T0 + 30, term=1)  # b leads now
    b.tend(policies("web"), T0 + 60, term=1)  # and a reload drops api
    assert a.tend(policies("web"), T0 + 60 + KEEP_S - 1, term=2).deleted == []  # a leads again
    assert a.tend(policies("web"), T0 + 60 + KEEP_S, term=2).deleted == ["api"]


class FailingStore(MemoryStateStore):
    """A store whose calls fail while ``failing`` (an API server outage: a fault the in-memory store
    cannot have)."""

    failing = False

    def _fail(self):
        if self.failing:
            raise StateStoreError("load: the API server is unavailable")

    def load(self, policy, part=""):
        self._fail()
        return super().load(policy, part)

    def save(self, policy, payload, part=""):
        self._fail()
        super().save(policy, payload, part)

    def delete(self, policy, part=""):
        self._fail()
        return super().delete(policy, part)


def test_store_failures_are_retried_never_raised():
    store = FailingStore(CONTROLLER)
    save_state(store, "api", T0)
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    store.failing = True
    assert cleanup.tend(policies("web"), T0).pending == 0  # the index cannot be read: nothing done
    store.failing = False
    cleanup.tend(policies("web", "api"), T0 + 10)
    cleanup.tend(policies("web"), T0 + 60)
    store.failing = True
    assert cleanup.tend(policies("web"), T0 + 60 + KEEP_S).deleted == []
    store.failing = False
    assert cleanup.tend(policies("web"), T0 + 60 + KEEP_S + 10).deleted == ["api"]


def test_a_failed_deletion_waits_before_it_is_tried_again():
    class FailingDeletes(MemoryStateStore):
        def delete(self, policy, part=""):
            raise StateStoreError("delete: 503")

    flaky = FailingDeletes(CONTROLLER)
    save_state(flaky, "api", T0)
    cleanup = RemovedStateCleanup(flaky, CONTROLLER)
    cleanup.tend(policies("web", "api"), T0)
    cleanup.tend(policies("web"), T0 + 60)
    due = T0 + 60 + KEEP_S
    assert cleanup.tend(policies("web"), due).failed == ["api"]  # counted as a state error (telemetry)
    deletes = []
    flaky.delete = lambda policy, part="": deletes.append(policy) or MemoryStateStore.delete(flaky, policy, part)
    assert cleanup.tend(policies("web"), due + RETRY_S - 1).deleted == [] and deletes == []
    assert cleanup.tend(policies("web"), due + RETRY_S).deleted == ["api"] and not has_state(flaky, "api")


def test_the_index_is_refreshed_every_refresh_period(store):
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    key = f"setpoint.{PART}"
    cleanup.tend(policies("web"), T0)
    cleanup.tend(policies("web"), T0 + INDEX_REFRESH_S - 1)
    assert store.saves[key] == 1
    cleanup.tend(policies("web"), T0 + INDEX_REFRESH_S)
    assert store.saves[key] == 2 and index(store)["web"]["seenAt"] == T0 + INDEX_REFRESH_S


def test_each_call_deletes_a_bounded_number_of_policies():
    store = MemoryStateStore(CONTROLLER)
    names = [f"p{i}" for i in range(5)]
    for name in names:
        save_state(store, name, T0)
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    cleanup.tend(policies(*names), T0)
    cleanup.tend({}, T0 + 60)
    done = [cleanup.tend({}, T0 + 60 + KEEP_S + k).deleted for k in range(3)]
    assert [len(d) for d in done] == [MAX_DELETIONS_PER_TEND, MAX_DELETIONS_PER_TEND, 1]
    assert sorted(sum(done, [])) == names and not any(has_state(store, n) for n in names)
