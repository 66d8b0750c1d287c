"""A StatefulSet's rollout that waits for a broken pod gets that pod restarted.

The StatefulSet controller (OrderedReady) replaces a pod off the update revision only once every
pod is Ready. A crash-looping release undone with ``kubectl rollout undo`` leaves its broken pod on
what is now the old revision: the rollout waits for it forever (the Kubernetes docs' "forced
rollback": delete it, it comes back on the update revision). Restarts waited for every rollout
(RolloutInProgress), so setpoint waited for a rollout that waited for the restart. Now restart-pod
goes ahead for the firing pods that block the rollout (``PodTable.blocks_rollout``), and only for
them; a pod of the release itself (on the update revision) still waits, as does a rolling restart.

Rows at fixed times (T0 + s, 5 s cycles); web-3 not Ready and firing from T0 (fires at 30 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act
from tests.core.healing import T0, params, pod_check

ROWS = {
    # name: ({pod: (bad, blocks_rollout)}, rollout, (action, reason, restarted pods) at 30 s)
    "web-3 left on the old revision after an undo: restarted": (
        {"web-3": (True, True)}, True, ("restart-pod", "RestartFiringPods", ["default/web-3"])),
    "web-3 of the release itself (update revision): waits for the rollout": (
        {"web-3": (True, False)}, True, (None, "RolloutInProgress", [])),
    "web-3 blocks, web-1 fires on the update revision: only web-3": (
        {"web-3": (True, True), "web-1": (True, False)}, True, ("restart-pod", "RestartFiringPods", ["default/web-3"])),
    "no rollout: any firing pod, as before": (
        {"web-3": (True, False)}, False, ("restart-pod", "RestartFiringPods", ["default/web-3"])),
}


def observe(p, pods: dict, rollout: bool) -> HealthObservation:
    names = [f"web-{k}" for k in range(5)]  # 2 of 5 firing is not systemic
    c = len(p.checks)
    values = np.array([[1.0 if pods.get(n, (False, False))[0] else 0.0] for n in names])
    ready = [n != "web-3" for n in names]
    blocks = [pods.get(n, (False, False))[1] for n in names]
    table = PodTable.of([0] * 5, [f"default/{n}" for n in names], values, ready=ready, checks=c,
                        born=[T0 - 600.0] * 5, blocks_rollout=blocks)
    return HealthObservation.of([5], [4], np.full((1, c), np.nan), checks=c, revision=["web-good"], pods=table,
                                rollout=[rollout], rollback_supported=[False])


@pytest.mark.parametrize("name", list(ROWS))
def test_a_rollout_that_waits_for_a_broken_pod_gets_it_restarted(name):
    pods, rollout, (action, reason, restarted) = ROWS[name]
    p = params(pod_check("not-ready", for_s=30.0))
    state = HealthState.empty(1, p)
    for t in range(0, 35, 5):
        d = heal(p, observe(p, pods, rollout), state, T0 + t)
        state = d.state
        if t < 30:
            assert d.action[0] == Act.NONE, (t, d.record(0, "p", "t"))
    record = d.record(0, "p", "StatefulSet/default/web")
    assert (record.action, record.reason, list(record.restart_pods)) == (action, reason, restarted)
