"""The simulated cluster's statuses and per-pod signals, kept across reads, are those made afresh.

SimCluster's ``view(with_statuses=True)`` keeps each workload's TargetStatus (its pods) and each
slot's pod name and revision number from one read to the next, and makes again only those of the
rows whose slots, counts or revisions changed (simcluster/port.py ``_note_changes``); SimMetrics
draws a per-pod snapshot's samples service by service over slices (simulators/ports.py
``_draw_pod_samples``). Each row of ``STEPS`` changes the cluster one way, then reads it: the
kept answers must equal those of a cluster that made everything anew.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from controller.model import TargetRef
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics
from simulators.workload import RevisionProps, ServiceConfig

TICK_S = 5.0
NAMES = ("web", "api", "db")
TARGETS = [TargetRef("default", n) for n in NAMES]


def cluster() -> SimCluster:
    c = SimCluster([ServiceConfig(n, initial_replicas=3, scheduling_delay_s=1, startup_delay_s=9) for n in NAMES], 3)
    c.make_statefulset(2)
    return c


def tick(c: SimCluster, ticks: int = 1) -> None:
    for _ in range(ticks):
        c.step(c.now + TICK_S, TICK_S, np.full(len(NAMES), 10.0))


def made_afresh(c: SimCluster):
    """(statuses, pod_signals' names and revisions) with every cache of the port dropped first."""
    c._seen_pods = None
    statuses = c.view(TARGETS, with_statuses=True).statuses
    signals = c.pod_signals()
    return statuses, signals["name"], signals["revision"]


def kept(c: SimCluster):
    statuses = c.view(TARGETS, with_statuses=True).statuses
    signals = c.pod_signals()
    return statuses, signals["name"], signals["revision"]


STEPS = [
    pytest.param(lambda c: None, id="nothing-changed"),
    pytest.param(lambda c: tick(c), id="a-tick-that-moves-nothing"),
    pytest.param(lambda c: c.set_replicas(0, 6), id="scale-up-pending-pods"),
    pytest.param(lambda c: tick(c, 3), id="ticks-pods-become-ready"),
    pytest.param(lambda c: c.set_replicas(0, 2), id="scale-down"),
    pytest.param(lambda c: c.rollout(1, RevisionProps(crash_loop=True)), id="rollout-of-a-crash-looping-revision"),
    pytest.param(lambda c: tick(c, 8), id="ticks-crashes-and-back-off"),
    pytest.param(lambda c: c.rollback(1, fast=True), id="rollback-renumbers-the-old-revision"),
    pytest.param(lambda c: tick(c, 6), id="ticks-rollback-completes"),
    pytest.param(lambda c: c.forget_revisions(1, [1]), id="forgotten-revision-same-pods"),
    pytest.param(lambda c: c.delete_pod(0, c.pod_names(0)[0]), id="a-pod-deleted"),
    pytest.param(lambda c: c.set_replicas(2, 5), id="statefulset-scale-up"),
    pytest.param(lambda c: tick(c, 4), id="ticks-statefulset-ordinals"),
    pytest.param(lambda c: c.rolling_restart(2), id="statefulset-rolling-restart"),
    pytest.param(lambda c: tick(c, 10), id="ticks-statefulset-update"),
]


def test_every_step_reads_as_made_afresh():
    c, fresh = cluster(), cluster()
    for step in STEPS:
        for each in (c, fresh):
            step.values[0](each)
        got, want = kept(c), made_afresh(fresh)
        assert got == want, step.id


def test_kept_pods_are_the_same_objects_when_nothing_moved():
    c = cluster()
    first = c.view(TARGETS, with_statuses=True).statuses
    again = c.view(TARGETS, with_statuses=True).statuses
    assert all(a.pods is b.pods for a, b in zip(first, again))


# (name, what changes the cluster between two reads, whether each workload's status is the same object)
KEPT = [
    ("nothing changed", lambda c: None, [True, True, True]),
    ("a tick that moves nothing (a status has no observation time)", lambda c: tick(c), [True, True, True]),
    ("web scaled up: its status made again", lambda c: c.set_replicas(0, 6), [False, True, True]),
    ("an api pod deleted", lambda c: c.delete_pod(1, c.pod_names(1)[0]), [True, False, True]),
    ("the db scaled up", lambda c: c.set_replicas(2, 4), [True, True, False]),
]


@pytest.mark.parametrize("name, change, same", KEPT, ids=[row[0] for row in KEPT])
def test_a_status_is_the_same_object_while_its_workload_did_not_change(name, change, same):
    c = cluster()
    before = c.view(TARGETS, with_statuses=True).statuses
    change(c)
    after = c.view(TARGETS, with_statuses=True).statuses
    assert [a is b for a, b in zip(before, after)] == same
    assert after == made_afresh(cluster_after(change))[0]


def cluster_after(change) -> SimCluster:
    c = cluster()
    change(c)
    return c


def test_a_kept_status_takes_a_new_target_lists_refs_once():
    c = cluster()
    before = c.view(TARGETS, with_statuses=True).statuses
    targets = [TargetRef("default", n) for n in NAMES]  # equal refs, other objects
    once = c.view(targets, with_statuses=True).statuses
    again = c.view(targets, with_statuses=True).statuses
    assert once == before and all(s.ref is t for s, t in zip(once, targets))
    assert all(a is b for a, b in zip(once, again))


def test_statuses_carry_the_callers_refs():
    c = cluster()
    targets = [TargetRef("default", n) for n in NAMES]
    assert all(s.ref is t for s, t in zip(c.view(targets, with_statuses=True).statuses, targets))


def reference_draws(metrics: SimMetrics, rows: np.ndarray, lam: np.ndarray, ratio: np.ndarray):
    """The draws as SimMetrics._sample made them before: pods grouped by service (stable), three calls each."""
    requests, errors, z = np.zeros(rows.size, np.int64), np.zeros(rows.size, np.int64), np.zeros(rows.size)
    order = np.argsort(rows, kind="stable")
    for pods in np.split(order, np.flatnonzero(np.diff(rows[order])) + 1) if order.size else ():
        rng = metrics._rngs(metrics.cluster.names[rows[pods[0]]])
        requests[pods] = rng.poisson(lam[pods])
        errors[pods] = rng.binomial(requests[pods], ratio[pods])
        z[pods] = rng.standard_normal(pods.size)
    return requests, errors, z


@pytest.mark.parametrize("rows, ratio", [
    pytest.param([0, 0, 1, 2, 2, 2], [0.0] * 6, id="no-pod-fails-binomials-skipped"),
    pytest.param([0, 0, 1, 2, 2, 2], [0.0, 0.1, 0.0, 0.0, 0.0, 0.5], id="some-services-fail"),
    pytest.param([2, 0, 2, 1, 0], [0.2, 0.0, 0.0, 0.3, 0.0], id="rows-out-of-order"),
    pytest.param([], [], id="no-pods"),
])
def test_pod_samples_are_the_reference_draws(rows, ratio):
    rows, ratio = np.array(rows, dtype=np.int64), np.array(ratio)
    served, p95 = np.linspace(0.0, 8.0, rows.size), np.full(rows.size, 0.1)
    got_m, want_m = (SimMetrics(cluster(), {}, window_s=60.0, tick_s=TICK_S, seed=11) for _ in range(2))
    for k in range(3):  # the streams stay in step from one snapshot to the next
        got_m.pushed(1, lambda: SimpleNamespace(at_s=TICK_S * (k + 1)))
        got = got_m._sample({"row": rows, "served_rps": served, "error_ratio": ratio, "latency_p95_s": p95})
        requests, errors, z = reference_draws(want_m, rows, served * TICK_S, ratio)
        assert np.array_equal(got["requests_rps"], requests / TICK_S)
        assert np.array_equal(got["errors_rps"], errors / TICK_S)
        assert np.array_equal(got["latency_s"], p95 * np.exp(SimMetrics.POD_LATENCY_SIGMA * z))


def test_a_changed_workload_keeps_its_unchanged_pods():
    c = cluster()
    before = c.view(TARGETS, with_statuses=True).statuses[0].pods
    c.delete_pod(0, before[0].name)
    after = c.view(TARGETS, with_statuses=True).statuses[0].pods
    kept_names = {p.name for p in before[1:]}
    assert before[0].name not in {p.name for p in after}  # its replacement is a new pod
    assert [p for p in after if p.name in kept_names] == list(before[1:])
    assert all(p is q for p, q in zip([p for p in after if p.name in kept_names], before[1:]))


POD = ("namespace", "pod")


def pod_refs(names) -> list[TargetRef]:
    return [TargetRef("default", name, "Pod") for name in names]


def read_by_name(c: SimCluster, field: str, pods: list[TargetRef]) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of ``field`` for ``pods`` as made afresh: each pod found by name in a
    snapshot whose names were made anew (NaN, absent: no such pod)."""
    c._seen_pods = c._signal_names = None
    signals = c.pod_signals()
    row = {name: k for k, name in enumerate(signals["name"])}
    values = np.asarray(signals[field], np.float64)
    present = np.array([p.name in row for p in pods], bool)
    return np.array([values[row[p.name]] if p.name in row else np.nan for p in pods]), present


# Each row changes the cluster, then asks for a list of pods: ``kept`` (the list last asked, the
# same object), ``copy`` (an equal new list), ``reversed`` (the same pods in another order),
# ``array`` (an equal object array) or ``listed`` (the pods as listed now, plus one that never existed).
ASKS = [
    pytest.param(lambda c: tick(c), "listed", id="first-read"),
    pytest.param(lambda c: tick(c), "copy", id="a-tick-an-equal-list-same-names"),
    pytest.param(lambda c: None, "reversed", id="same-names-pods-in-another-order"),
    pytest.param(lambda c: c.delete_pod(0, c.pod_names(0)[0]), "kept", id="same-list-a-pod-replaced"),
    pytest.param(lambda c: tick(c, 3), "listed", id="ticks-replacement-ready"),
    pytest.param(lambda c: c.set_replicas(1, 1), "kept", id="same-list-pods-gone"),
    pytest.param(lambda c: c.set_replicas(1, 4), "copy", id="equal-list-pods-added-since"),
    pytest.param(lambda c: c.rollout(0, RevisionProps()), "kept", id="same-list-mid-rollout"),
    pytest.param(lambda c: tick(c, 6), "kept", id="same-list-rollout-done"),
    pytest.param(lambda c: None, "array", id="the-same-pods-as-an-array"),
]


def test_pod_queries_read_as_found_afresh():
    """SimMetrics keeps each pod's row from one snapshot to the next while the pods asked and the
    cluster's pod names are the same (ports.py ``_picked``, ``_name_index``): each read must find
    the pods as a lookup by name in names made anew does."""
    c, fresh = cluster(), cluster()
    metrics = SimMetrics(c, {"ready": "ready", "restarts": "restarts"}, window_s=60.0, tick_s=TICK_S)
    pods: list[TargetRef] = []
    for ask in ASKS:
        change, which = ask.values
        change(c), change(fresh)
        metrics.push(c.signals())
        listed = pod_refs(c.pod_signals()["name"]) + pod_refs(["web-gone"])
        array = np.empty(len(pods), dtype=object)
        array[:] = pods
        pods = {"kept": pods, "copy": list(pods), "reversed": pods[::-1], "array": array, "listed": listed}[which]
        for field in ("ready", "restarts"):
            got = metrics.query(field, pods, c.now, labels=POD)
            values, present = read_by_name(fresh, field, pods)
            assert np.array_equal(got.present, present), (ask.id, field)
            assert np.array_equal(got.values, values, equal_nan=True), (ask.id, field)


def test_pod_signals_keep_their_name_lists_while_no_pod_came_or_went():
    c = cluster()
    first = c.pod_signals()
    tick(c)  # moves no pod
    again = c.pod_signals()
    assert again["name"] is first["name"] and again["revision"] is first["revision"]
    c.set_replicas(0, 4)
    assert c.pod_signals()["name"] is not first["name"]
