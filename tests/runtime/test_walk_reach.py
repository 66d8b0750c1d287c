"""How far a StatefulSet's pods reach (``walk_reach``), which arbitration reads as a walk up when
below spec.replicas (core/arbitrate.py ``ordered_walk_up``: a scale-up check OrderedScaleUpPending).

Before, the walk up was status.replicas below spec.replicas: a pod deleted below the top (restarted
by setpoint or anyone) and not recreated yet (its controller waits for every lower pod to be Ready)
dropped it, and read as a walk though nothing scales. Now the highest ordinal listed counts
(counted from spec.ordinals.start; a terminating pod is still there).
"""

from __future__ import annotations

import pytest

from controller.model import PodStatus, TargetRef, TargetStatus
from controller.runtime.health_columns import walk_reach

WEB = TargetRef("default", "web", "StatefulSet")

ROWS = {
    # name: (ref, spec, status.replicas, pods listed (name, terminating), ordinals.start, reach)
    "at its count, every pod listed": (WEB, 5, 5, [(f"web-{k}", False) for k in range(5)], 0, 5),
    "web-2 deleted, not recreated yet: no walk up": (WEB, 5, 4, [("web-0", False), ("web-1", False), ("web-3", False),
                                                                ("web-4", False)], 0, 5),
    "walking up 3 -> 5, web-3 not created yet": (WEB, 5, 3, [("web-0", False), ("web-1", False), ("web-2", False)], 0, 3),
    "web-4 terminating (restarted): still reaches it": (WEB, 5, 5, [(f"web-{k}", k == 4) for k in range(5)], 0, 5),
    "ordinals from 5, web-6 deleted: reaches web-8": (WEB, 4, 3, [("web-5", False), ("web-7", False),
                                                                 ("web-8", False)], 5, 4),
    "no pods listed: status.replicas": (WEB, 5, 4, [], 0, 4),
    "a Deployment: status.replicas": (TargetRef("default", "web", "Deployment"), 5, 4,
                                      [("web-5d9c7b8f6-x2k4q", False), ("web-5d9c7b8f6-9", False)], 0, 4),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_how_far_a_statefulsets_pods_reach(name):
    ref, spec, created, listed, start, reach = ROWS[name]
    pods = tuple(PodStatus(n, ready=True, deleted=gone) for n, gone in listed)
    status = TargetStatus(ref, spec, created, created, pods=pods, ordinal_start=start)
    assert walk_reach(status) == reach
