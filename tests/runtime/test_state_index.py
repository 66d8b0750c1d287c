"""The index of the policies with state (controller/runtime/state_index.py) read from damaged and
hostile payloads: it never raises, skips what it cannot read with the problem named, and what it
skips is never deleted (checked through the cleanup over an in-memory store holding that state)."""

from __future__ import annotations

import json

import pytest

from controller.ports import state_name
from controller.runtime.state_cleanup import RemovedStateCleanup
from controller.runtime.state_index import MAX_ENTRIES, PART, IndexEntry, decode, encode
from simulators.ports import MemoryStateStore

T0 = 1_700_000_000.0
CONTROLLER = "setpoint-system/setpoint"
GOOD = {"seenAt": T0, "keepS": 3600.0, "why": "the external-scale fight window", "removedAt": T0 + 60}


def payload(policies, **envelope) -> str:
    doc = {"version": 1, "controller": CONTROLLER, "writer": "w1", "savedAt": T0 + 60, "policies": policies}
    doc.update(envelope)
    return json.dumps(doc)


def test_an_index_reads_back_as_written():
    entries = {"web": IndexEntry(T0, 3600.0, "the external-scale fight window"),
               "old": IndexEntry(T0 - 600, 86400.0, "budgets.rollbacksPerDay's window", removed_at=T0 - 60)}
    read = decode(json.dumps(encode(CONTROLLER, "w1", entries, T0)))
    assert (read.entries, read.stamp, read.controller, read.problems) == (entries, ("w1", T0), CONTROLLER, [])


def test_nothing_stored_is_an_empty_index_without_a_problem():
    read = decode(None)
    assert (read.entries, read.stamp, read.problems) == ({}, None, [])


@pytest.mark.parametrize("raw, problem", [
    pytest.param("{not json", "not JSON", id="not-json"),
    pytest.param("[1, 2]", "not a version 1 payload", id="a-list"),
    pytest.param(payload({}, version=2), "not a version 1 payload", id="another-version"),
    pytest.param(payload([]), "not a version 1 payload", id="policies-not-an-object"),
    pytest.param(payload({}, controller=""), "controller: not a text", id="no-controller"),
    pytest.param(payload({}, writer=["x"]), "writer: not a text", id="writer-not-a-text"),
    pytest.param(payload({}, savedAt=-1), "savedAt: not a time", id="negative-saved-at"),
    pytest.param(payload({}, savedAt=True), "savedAt: not a time", id="boolean-saved-at"),
    pytest.param("[" * 100_000 + "]" * 100_000, "not JSON", id="nested-too-deep"),
    pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
])
def test_an_unreadable_index_is_ignored_with_its_problem(raw, problem):
    read = decode(raw)
    assert read.entries == {} and read.stamp is None
    assert len(read.problems) == 1 and problem in read.problems[0], read.problems


@pytest.mark.parametrize("name, record, problem", [
    pytest.param("web.hands-off", GOOD, "not a policy name", id="a-part-of-another-policys-state"),
    pytest.param("../web", GOOD, "not a policy name", id="a-path"),
    pytest.param("Web", GOOD, "not a policy name", id="upper-case"),
    pytest.param("web\n", GOOD, "not a policy name", id="trailing-newline"),
    pytest.param("", GOOD, "not a policy name", id="empty"),
    pytest.param("a" * 64, GOOD, "not a policy name", id="too-long"),
    pytest.param("web", "gone", "not an object", id="not-an-object"),
    pytest.param("web", {**GOOD, "keepS": -1}, "keepS", id="negative-keep"),
    pytest.param("web", {**GOOD, "keepS": float("nan")}, "keepS", id="nan-keep"),
    pytest.param("web", {**GOOD, "keepS": float("inf")}, "keepS", id="infinite-keep"),
    pytest.param("web", {**GOOD, "keepS": 1e300}, "keepS", id="absurd-keep"),
    pytest.param("web", {**GOOD, "keepS": "1h"}, "keepS", id="keep-a-text"),
    pytest.param("web", {**GOOD, "keepS": True}, "keepS", id="keep-a-boolean"),
    pytest.param("web", {k: v for k, v in GOOD.items() if k != "seenAt"}, "seenAt", id="no-seen-at"),
    pytest.param("web", {**GOOD, "removedAt": "yesterday"}, "removedAt", id="removed-at-a-text"),
    pytest.param("web", {**GOOD, "removedAt": -5}, "removedAt", id="negative-removed-at"),
    pytest.param("web", {**GOOD, "why": "x" * 10_000}, "why", id="endless-reason"),
])
def test_an_unreadable_entry_is_skipped_and_named_the_rest_read(name, record, problem):
    read = decode(payload({name: record, "api": GOOD}))
    assert set(read.entries) == {"api"} and read.stamp == ("w1", T0 + 60)
    assert len(read.problems) == 1 and problem in read.problems[0] and "never deleted" in read.problems[0]


def test_a_huge_index_is_read_up_to_its_bound():
    policies = {f"p{i}": GOOD for i in range(MAX_ENTRIES + 50)}
    read = decode(payload(policies))
    assert len(read.entries) == MAX_ENTRIES and "more than" in read.problems[-1]


def test_encode_keeps_the_loaded_first_then_the_removed_soonest_due():
    entries = {f"r{i}": IndexEntry(T0, 60.0 * i, removed_at=T0) for i in range(MAX_ENTRIES)}
    entries["live"] = IndexEntry(T0, 10.0)
    kept = encode(CONTROLLER, "w1", entries, T0)["policies"]
    assert len(kept) == MAX_ENTRIES and "live" in kept and f"r{MAX_ENTRIES - 1}" not in kept and "r0" in kept


# ----------------------------------------------------------------- a damaged index deletes nothing
def stored_state(store: MemoryStateStore, names: list[str]) -> None:
    """Each policy's state as it ran: its health state and scale events, saved at T0 - 1h."""
    for name in names:
        store.save(name, {"schema_version": 1, "policy": name, "saved_at": T0 - 3600, "targets": {}})
        store.save(name, {"version": 1, "policy": name, "savedAt": T0 - 3600, "targets": {}}, "scale-events")


@pytest.mark.parametrize("raw", [
    pytest.param(payload({"web.scale-events": GOOD, "api": {**GOOD, "keepS": "0"}}), id="entries-unreadable"),
    pytest.param(payload({"web": GOOD, "api": GOOD}, controller="team-b/setpoint"), id="another-controllers-index"),
    pytest.param(payload({"web": GOOD, "api": GOOD}, version=7), id="unreadable-index"),
    pytest.param("\x00" * 1000, id="garbage"),
])
def test_a_damaged_or_foreign_index_never_causes_a_deletion(raw):
    """A start-up (no policy loaded now) that reads such an index, a year later: every payload is
    still there, the index it writes holds nothing it could not read."""
    store = MemoryStateStore(CONTROLLER)
    stored_state(store, ["web", "api"])
    store._texts[state_name("setpoint", PART)] = raw  # as a previous process, or a hand edit, left it
    cleanup = RemovedStateCleanup(store, CONTROLLER)
    for now in (T0, T0 + 365 * 86400.0):
        result = cleanup.tend({}, now)
        assert result.deleted == [] and result.pending == 0
    for name in ("web", "api"):
        assert store.load(name) is not None and store.load(name, "scale-events") is not None
    assert json.loads(store.load("setpoint", PART))["policies"] == {}
