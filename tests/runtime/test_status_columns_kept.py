"""StatusColumns keeps what it read of each status while the status at its place reads the same,
and the whole read while every one does (controller/runtime/health_columns.py): a read through a
kept StatusColumns equals a read afresh, cycle after cycle, whatever the source hands back: the
same objects (the simulated cluster's, while a workload did not change: what is kept by identity,
without a compare), new statuses of the same pods (the Kubernetes adapter's: every read makes
them anew), equal copies, changed pods, a changed status (a new object) among the same objects,
statuses reordered, a workload gone or back, every one gone, a status of a workload not among the
targets, two statuses of one workload, a new target list; the pod columns spliced where a few
workloads' pods changed (the keys' width as a whole read's). Also: the kept arrays are read-only
(a later cycle hands them out again), and a cycle whose statuses are the same objects, or read
the same, hands back the same arrays (what PodState.reindex's identity shortcut rides on)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controller.model import ACCEPT_REVISION_ANNOTATION, PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime import health_columns
from controller.runtime.health_columns import StatusColumns

WEB, API, DB = TargetRef("shop", "web"), TargetRef("shop", "api"), TargetRef("shop", "db", "StatefulSet")


def pod(name: str, **kw) -> PodStatus:
    base = dict(created_time=100.0, ready_transition_time=110.0, revision="2")
    return PodStatus(name, **{**base, **kw})


def status(ref: TargetRef, pods: tuple[PodStatus, ...], **kw) -> TargetStatus:
    return TargetStatus(ref, spec_replicas=kw.pop("spec", len(pods)), status_replicas=len(pods),
                        ready_replicas=sum(bool(p.ready) for p in pods), revision=kw.pop("revision", "2"),
                        revisions=("1", "2"), pods=pods, **kw)


WEB_PODS = (pod("web-a"), pod("web-b", ready=False, restarts=3), pod("web-c", deleted=True))
API_PODS = (pod("api-a", revision="1", ready_transition_time=None),
            pod("api-b", ready=False, waiting="CrashLoopBackOff"))
DB_PODS = (pod("db-0"), pod("db-1", ready=False, revision="1"), pod("db-2"))


def view(statuses: tuple[TargetStatus, ...], n: int) -> ClusterView:
    return ClusterView(spec=np.full(n, 3.0), status=np.arange(n, dtype=np.float64) + 1, ready=np.full(n, 2.0),
                       rollout=np.zeros(n, bool), exists=np.ones(n, bool), statuses=statuses)


def first() -> tuple[TargetStatus, ...]:
    return (status(WEB, WEB_PODS, annotations=((ACCEPT_REVISION_ANNOTATION, " 2 "),), rollout_completed_at=50.0),
            status(API, API_PODS),
            status(DB, DB_PODS, rollout_in_progress=True, spec=2, ordinal_start=0, partition=1, ordered=True))


def renewed(statuses):
    """Equal statuses, new objects (of the same pods): what a source that makes them anew hands back."""
    return tuple(dataclasses.replace(s) for s in statuses)


def copied(statuses):
    return tuple(dataclasses.replace(s, pods=tuple(dataclasses.replace(p) for p in s.pods)) for s in statuses)


def one_pod_ready(statuses):
    web, *rest = statuses
    return (dataclasses.replace(web, pods=(web.pods[0], dataclasses.replace(web.pods[1], ready=True)) + web.pods[2:]),
            *rest)


# (name, the statuses of each later cycle made from the first cycle's, the targets of each later cycle)
CYCLES = [
    ("the same objects", [lambda s: s, lambda s: s], None),
    ("new statuses of the same pods", [renewed, renewed], None),
    ("the same objects, then new ones of the same pods, then the same objects",
     [lambda s: s, renewed, lambda s: s], None),
    ("equal copies of statuses and pods", [copied, copied], None),
    ("a pod becomes Ready", [one_pod_ready, lambda s: s], None),
    ("a pod added, then gone", [lambda s: (dataclasses.replace(s[0], pods=s[0].pods + (pod("web-d"),)),) + s[1:],
                                lambda s: s], None),
    ("a pod with the longest name added, then gone (the keys' width shrinks back)",
     [lambda s: (dataclasses.replace(s[0], pods=s[0].pods + (pod("web-with-a-much-longer-name-than-any"),)),) + s[1:],
      lambda s: s], None),
    ("the first and the last workload's pods change, the middle one's kept",
     [lambda s: (one_pod_ready(s)[0], s[1], dataclasses.replace(s[2], pods=s[2].pods[:2])), lambda s: s], None),
    ("a workload's pods all gone, then back",
     [lambda s: s[:1] + (dataclasses.replace(s[1], pods=()),) + s[2:], lambda s: s], None),
    ("a status of another workload changes its pods",
     [lambda s: s + (status(TargetRef("shop", "other"), (pod("other-a"),)),),
      lambda s: s + (status(TargetRef("shop", "other"), (pod("other-a"), pod("other-b"))),)], None),
    ("a rollout completes", [lambda s: s[:1] + (dataclasses.replace(s[1], rollout_completed_at=90.0),) + s[2:]], None),
    ("statuses in another order", [lambda s: (s[2], s[0], s[1]), lambda s: s], None),
    ("a workload missing, then back", [lambda s: s[1:], lambda s: s], None),
    ("every workload missing, then back", [lambda s: (), lambda s: s, lambda s: ()], None),
    # a new object at one place among the last read's objects (each at another place): its block is
    # made again (the identity path taken for it would keep db-2 condemned, or web-b not Ready)
    ("the last status changes, the others the same objects",
     [lambda s: s[:2] + (dataclasses.replace(s[2], spec_replicas=3),), lambda s: s], None),
    ("the first status changes, then changes back to a new object",
     [one_pod_ready, lambda s: (dataclasses.replace(s[0]),) + s[1:]], None),
    ("a status of another workload", [lambda s: s + (status(TargetRef("shop", "other"), (pod("other-a"),)),)], None),
    ("two statuses of one workload", [lambda s: s + (status(WEB, (pod("web-z", revision="3"),), revision="3"),)],
     None),
    ("a new target list", [lambda s: s, lambda s: s], [[WEB, API], [API, DB, WEB]]),
    ("one workload's facts change, the others' kept",
     [lambda s: s[:1] + (dataclasses.replace(s[1], revision="3", annotations=((ACCEPT_REVISION_ANNOTATION, "3"),),
                                             partition=2, ordinal_start=1, revisions=("3",)),) + s[2:],
      lambda s: s], None),
    ("a ReplicaSet list grows, then shrinks back",
     [lambda s: s[:1] + (dataclasses.replace(s[1], revisions=("1", "2", "3")),) + s[2:], lambda s: s], None),
    ("every ReplicaSet list shrinks, then one grows back",
     [lambda s: tuple(dataclasses.replace(x, revisions=("2",)) for x in s),
      lambda s: tuple(dataclasses.replace(x, revisions=("2",)) for x in s[:2]) + s[2:]], None),
]


def assert_same_read(got, want) -> None:
    for part in ("pods", "facts"):
        a, b = getattr(got, part), getattr(want, part)
        for field in a._fields:
            x, y = getattr(a, field), getattr(b, field)
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and x.shape == y.shape, (part, field)
                assert np.array_equal(x, y, equal_nan=x.dtype != object), (part, field, x, y)
            else:
                assert x == y, (part, field)
    assert got.keys.dtype == want.keys.dtype and got.keys.tolist() == want.keys.tolist()
    assert got.deployments.tolist() == want.deployments.tolist()


@pytest.mark.parametrize("name, steps, target_lists", CYCLES, ids=[row[0] for row in CYCLES])
def test_a_kept_read_equals_a_fresh_one(name, steps, target_lists):
    kept = StatusColumns()
    base, targets = first(), [WEB, API, DB]
    assert_same_read(kept.read(view(base, 3), targets), StatusColumns().read(view(base, 3), targets))
    for k, step in enumerate(steps):
        statuses = step(base)  # each cycle's statuses made from the first cycle's objects
        if target_lists:
            targets = target_lists[k]
        v = view(statuses, len(targets))
        assert_same_read(kept.read(v, targets), StatusColumns().read(v, targets))


def test_the_facts_read_as_each_status_says():
    got = StatusColumns().read(view(first(), 3), [WEB, API, DB])
    facts = got.facts
    assert facts.accepted.tolist() == ["2", "", ""]
    assert facts.crashing.tolist() == [1, 1, 0]  # db-1: not Ready, not crashing
    assert facts.partitioned.tolist() == [False, False, True]
    assert facts.ordered.tolist() == [False, False, True]
    assert facts.reached.tolist() == [3, 2, 3]  # db: its ordinals reach 3
    assert np.array_equal(facts.since, [50.0, np.nan, np.nan], equal_nan=True)
    assert got.pods.rows.tolist() == [0, 0, 1, 1, 2, 2, 2]  # web-c terminates: left out
    assert got.keys.tolist() == ["shop/web-a", "shop/web-b", "shop/api-a", "shop/api-b", "shop/db-0", "shop/db-1",
                                 "shop/db-2"]
    assert got.pods.blocks_rollout.tolist() == [False] * 5 + [True, False]  # db-1: off the update revision
    assert got.pods.condemned.tolist() == [False] * 6 + [True]  # db-2: at or above spec.replicas 2


def test_a_target_without_status_reaches_its_status_replicas():
    got = StatusColumns().read(view(first()[:1], 3), [WEB, API, DB])
    assert got.facts.reached.tolist() == [3, 2, 3]
    assert got.facts.revision.tolist() == ["2", "", ""]


def test_kept_arrays_are_read_only_and_handed_back_while_statuses_read_the_same():
    kept = StatusColumns()
    a = kept.read(view(first(), 3), [WEB, API, DB])
    b = kept.read(view(renewed(first()), 3), [WEB, API, DB])
    assert b.keys is a.keys and b.pods.born is a.pods.born and b.facts.revisions is a.facts.revisions
    with pytest.raises(ValueError):
        a.pods.ready[0] = False


def test_the_same_objects_are_kept_without_a_compare(monkeypatch):
    """Statuses that are the last read's objects are not read again (``_READS`` not called); one
    new object among them is, alone, and its read is fresh."""
    kept, targets, base = StatusColumns(), [WEB, API, DB], first()
    a = kept.read(view(base, 3), targets)
    calls = []
    reads = health_columns._READS
    monkeypatch.setattr(health_columns, "_READS", lambda s: calls.append(s.ref) or reads(s))
    b = kept.read(view(base, 3), targets)
    assert calls == [] and b.keys is a.keys and b.pods.ready is a.pods.ready
    changed = base[:2] + (dataclasses.replace(base[2], spec_replicas=3),)
    c = kept.read(view(changed, 3), targets)
    assert calls == [DB]
    assert c.pods.condemned.tolist() == [False] * 7  # spec.replicas 3: db-2 kept
    assert_same_read(c, StatusColumns().read(view(changed, 3), targets))
