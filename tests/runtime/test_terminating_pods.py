"""A pod restarted by the health side stays listed while it terminates (its grace period: often
minutes for a StatefulSet's database), with its deletionTimestamp set and its series still the sick
pod's. It was checked like any other pod: at the end of the verification window it still fired and
counted as the restarted pod (``restarted_at``), so the restart that was under way failed its
verification and escalated to a rolling restart. Terminating pods are now left out of the pod
checks (``healing.health_pods``); the replacement (a new name, or a StatefulSet's under the same
name once the old one is gone) is checked afresh.

Rows at fixed times (T0 + s, 5 s cycles): web-0's memory check fires at 30 s and it is restarted;
it terminates for 70 s (to 100 s), past the 60 s verification window, still reading as sick; then
its replacement, healthy, is listed. The view is built here from PodStatus rows as the Kubernetes
adapter gives them, to hold a 70 s grace at fixed times (``sim serve`` lists a deleted pod through
its grace too: tests/adapters/test_sim_terminating_pods.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, HealthReason, Remedy
from controller.model import PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import health_pod_columns, pod_revisions
from tests.core.healing import T0, params, pod_check

GRACE_S = 70.0


def pods_at(t: float, restarted_at: float | None, same_name: bool) -> list[tuple[PodStatus, float]]:
    """(pod, its check value) listed at T0 + t."""
    others = [(PodStatus(f"web-{k}", created_time=T0 - 3600.0), 0.0) for k in (1, 2, 3)]
    old = PodStatus("web-0", created_time=T0 - 3600.0)
    if restarted_at is None:
        return [(old, 1.0)] + others
    if t < restarted_at + GRACE_S:
        new = [] if same_name else [(PodStatus("web-7f9c", created_time=T0 + restarted_at + 1.0), 0.0)]
        return [(PodStatus("web-0", deleted=True, ready=False, created_time=T0 - 3600.0), 1.0)] + new + others
    name = "web-0" if same_name else "web-7f9c"
    return [(PodStatus(name, created_time=T0 + restarted_at + GRACE_S), 0.0)] + others


def observe(p, kind: str, pods: list[tuple[PodStatus, float]]) -> HealthObservation:
    ref = TargetRef("default", "web", kind)
    status = TargetStatus(ref, spec_replicas=4, status_replicas=len(pods),
                          ready_replicas=sum(1 for pod, _ in pods if pod.ready and not pod.deleted),
                          pods=tuple(pod for pod, _ in pods))
    view = ClusterView.from_statuses([ref], {ref: status})
    rows, refs, ready, _ = pod_revisions(view, [ref])
    value = {pod.name: v for pod, v in pods}  # a name is listed once at a time here
    c = len(p.checks)
    values = np.array([[value[r.name]] for r in refs]).reshape(len(refs), c)
    table = PodTable.of(rows, [f"default/{r.name}" for r in refs], values, ready=ready, checks=c,
                        born=health_pod_columns(view, [ref]).born)
    return HealthObservation.of([4], [int(ready.sum())], np.full((1, c), np.nan), checks=c, revision=["1"],
                                pods=table)


@pytest.mark.parametrize("kind,same_name", [pytest.param("StatefulSet", True, id="statefulset-web-0-terminating"),
                                            pytest.param("Deployment", False, id="deployment-old-pod-terminating")])
def test_a_terminating_restarted_pod_does_not_fail_its_restart(kind, same_name):
    p = params(pod_check("mem", for_s=30.0), escalation=(Remedy.RESTART_POD, Remedy.ROLLING_RESTART))
    state, restarted_at = HealthState.empty(1, p), None
    actions, outcomes = [], []
    for t in np.arange(0.0, 180.0, 5.0):
        d = heal(p, observe(p, kind, pods_at(t, restarted_at, same_name)), state, T0 + t)
        state = d.state
        if d.action[0] != Act.NONE:
            actions.append((t, Act(int(d.action[0])).word, list(d.restart_pods(0))))
            restarted_at = t if d.action[0] == Act.RESTART_POD else restarted_at
        if d.outcome[0] >= 0:
            outcomes.append((t, HealthReason(int(d.outcome[0])).code))
    assert actions == [(30.0, "restart-pod", ["default/web-0"])], (actions, outcomes)
    assert [o for _, o in outcomes] == ["Verified"], outcomes
