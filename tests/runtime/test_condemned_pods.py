"""Which pods a StatefulSet's scale-down condemns, as the health side reads them from the statuses.

The StatefulSet controller removes the pods whose ordinal is at or above spec.replicas (OrderedReady:
the highest first, once every lower pod is Ready; Parallel: at once) and never recreates them, so a
restart-pod of one would be its removal: heal leaves them out (CondemnedPodNotRestarted when the
check fires on nothing else; tests/core/test_ordered_walk.py). A Deployment's ReplicaSet picks the
pods a scale-down removes only when it does: none is condemned.
"""

from __future__ import annotations

import pytest

from controller.model import PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import health_pod_columns

ROWS = {
    # name: (ref, spec, pod names, condemned)
    "walking down 6 -> 4: web-4 and web-5": (TargetRef("default", "web", "StatefulSet"), 4,
                                             [f"web-{k}" for k in range(6)], [False] * 4 + [True] * 2),
    "at its count: none": (TargetRef("default", "web", "StatefulSet"), 3, ["web-0", "web-1", "web-2"], [False] * 3),
    "walking up: none": (TargetRef("default", "web", "StatefulSet"), 6, ["web-0", "web-1"], [False] * 2),
    "a dash in the StatefulSet's name": (TargetRef("default", "web-db", "StatefulSet"), 1, ["web-db-0", "web-db-1"],
                                         [False, True]),
    "a Deployment's pods: none": (TargetRef("default", "web", "Deployment"), 1,
                                  ["web-5d9c7b8f6-x2k4q", "web-5d9c7b8f6-8"], [False, False]),
    "scaled to zero: every pod": (TargetRef("default", "web", "StatefulSet"), 0, ["web-0"], [True]),
    "ordinals from 5 (spec.ordinals.start), 3 replicas: web-8": (TargetRef("default", "web", "StatefulSet"), 3,
                                                                 ["web-5", "web-6", "web-7", "web-8"],
                                                                 [False, False, False, True]),
}
START = {"ordinals from 5 (spec.ordinals.start), 3 replicas: web-8": 5}


@pytest.mark.parametrize("name", list(ROWS))
def test_the_pods_a_statefulset_scale_down_removes(name):
    ref, spec, names, condemned = ROWS[name]
    pods = tuple(PodStatus(n, ready=True) for n in names)
    status = TargetStatus(ref, spec, len(pods), len(pods), pods=pods, ordinal_start=START.get(name, 0))
    view = ClusterView.from_statuses([ref], {ref: status})
    assert health_pod_columns(view, [ref]).condemned.tolist() == condemned
