"""A target that cannot be rolled back (a StatefulSet) is never sent a rollback by the health side.

A policy for StatefulSets may not name rollback (refused when loaded), but arbitration also rolls
back when a firing check is explained by a new revision (NewRevision, AfterRollout), whatever the
check's own action. On a StatefulSet whose last revision had become known healthy, a leak in its
next release (a restart-pod check) was answered by a rollback every cycle, which the cluster
adapter refuses ("only Deployments can be rolled back": an error line every 5 s in the drill
through sim serve), and the firing pod was never restarted. Now the rollback is not available
there: the check falls through to the restart rules, as on a Deployment with nowhere to go back to.

Rows at fixed times (T0 + s, 5 s cycles): revision 1 clean until it is known healthy (20 s),
revision 2 at 40 s, one pod bad from 50 s (fires at 80 s).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from controller.core.health.heal import HealthState, heal
from controller.core.health.params import Act
from tests.core.healing import T0, params, pod_check, world

ROWS = {
    # name: (rollback_supported, the first health action, its reason)
    "deployment: the release is rolled back": (True, "rollback", "RollbackNewRevision"),
    "statefulset: the firing pod is restarted": (False, "restart-pod", "RestartFiringPods"),
    "unknown (None): as a deployment": (None, "rollback", "RollbackNewRevision"),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_a_release_explained_check_on_a_target_without_rollback_restarts(name):
    supported, action, reason = ROWS[name]
    p = params(pod_check("mem", for_s=30.0), healthy_after_s=20.0, new_revision_window_s=600.0,
               rollback_window_s=600.0)
    w = world(p, pods_per_target=(4,))
    state = HealthState.empty(1, p)
    first = None
    for t in range(0, 200, 5):
        if t == 40:
            w.revision[0] = "2"
        if t == 50:
            w.bad.add(w.pods[0][0])
        obs = w.observe()
        if supported is not None:
            obs = replace(obs, rollback_supported=np.full(1, supported))
        d = heal(p, obs, state, T0 + t)
        w.apply(d)
        state = d.state
        if d.action[0] != Act.NONE and first is None:
            first = (t, Act(int(d.action[0])).word, d.record(0, "p", "t").reason)
    assert first is not None and first[1:] == (action, reason), first
    assert first[0] == 80, first
