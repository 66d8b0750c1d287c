"""The resume annotations' read (Reconciler._read_resume_annotations) is skipped when the statuses
read as last time (same workloads, same annotations), the values remembered are as that read left
them, and it re-armed nothing: reading them again would change nothing. Each row's cycles re-arm
what a read of every status would: a new value after skipped cycles, a value restored in between
(a new leader's), and two statuses of one workload saying two values (re-armed at every read)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.model import RESUME_ANNOTATION, TargetRef, TargetStatus
from controller.policy import load_policy_text
from controller.ports import ClusterView
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.workload import ServiceConfig
from tests.runtime.test_durable_state import POLICY

WEB, API = TargetRef("default", "web"), TargetRef("default", "api")


def status(ref: TargetRef, resume: str | None) -> TargetStatus:
    annotations = () if resume is None else ((RESUME_ANNOTATION, resume),)
    return TargetStatus(ref, spec_replicas=2, status_replicas=2, ready_replicas=2, annotations=annotations)


def view(*statuses: TargetStatus) -> ClusterView:
    n = 2
    return ClusterView(spec=np.full(n, 2.0), status=np.full(n, 2.0), ready=np.full(n, 2.0),
                       rollout=np.zeros(n, bool), exists=np.ones(n, bool), statuses=tuple(statuses))


def reconciler() -> Reconciler:
    [policy] = load_policy_text(POLICY.replace("namespace: shop", "namespace: default"), "heal.yaml")
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=2, max_pods=10)], rng=1)
    metrics = SimMetrics(cluster, {"mem": "memory_mib"}, window_s=15, tick_s=5)
    return Reconciler(RuntimePolicy.of(policy), metrics, SimTargets(cluster, ["web"], with_statuses=True))


def restore_web(rec: Reconciler, value: str) -> None:
    """What _apply_restored does with a stored value: written in place, the next read reads all."""
    rec._resume_seen[WEB] = value
    rec._resume_read = None


# (name, per cycle: the statuses, or a callable doing something between reads; targets re-armed per read)
ROWS = [
    ("unchanged: nothing re-armed", [(status(WEB, "1"), status(API, None))] * 3, [set(), set(), set()]),
    ("a new value after skipped reads", [(status(WEB, "1"), status(API, None))] * 2 + [(status(WEB, "2"),
                                                                                         status(API, None))],
     [set(), set(), {WEB}]),
    ("new statuses, the same values", [(status(WEB, "1"), status(API, "a")),
                                       (status(WEB, "1"), status(API, "a"))],
     [set(), set()]),
    ("a value restored between two reads", [(status(WEB, "1"), status(API, None)), (status(WEB, "1"),
                                                                                     status(API, None)),
                                            lambda rec: restore_web(rec, "0"), (status(WEB, "1"), status(API, None))],
     [set(), set(), {WEB}]),
    ("two statuses of one workload disagree", [(status(WEB, "1"), status(WEB, "2"))] * 3, [{WEB}, {WEB}, {WEB}]),
]


@pytest.mark.parametrize("name, cycles, rearmed", ROWS, ids=[row[0] for row in ROWS])
def test_a_skipped_read_rearms_what_a_full_read_would(name, cycles, rearmed):
    rec = reconciler()
    got = []
    for step in cycles:
        if callable(step):
            step(rec)
            continue
        rec.rearm = set()
        rec._read_resume_annotations(view(*step), [WEB, API])
        got.append(set(rec.rearm))
    assert got == rearmed
