"""A pod that crashes is not a pod that starts: it does not make the service look overloaded.

The health side answers an overloaded service with a scale-up instead of restarts, and "pods
still starting" (fewer Ready than spec.replicas) was that signal whatever kept them from Ready.
A crash-looping pod is not Ready, so it was the evidence against its own restart: in the
StatefulSet drill through sim serve (a health-only policy, web-3 crash-looping) every cycle said
AtMaxReplicas and nothing was restarted; a policy that scales would have scaled up instead, a step
per cooldown. Now the pods that crash (a container waiting to run again: CrashLoopBackOff, an image
it cannot pull; or one restarted before and not Ready yet) do not count as starting; pods of a
scale-up, pods not created yet and pods failing their readiness probe under load still do.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.model import PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import overload_signal

STS = TargetRef("default", "web", "StatefulSet")


def ready(name):
    return PodStatus(name, ready=True)


ROWS = {
    # name: (spec, pods, overloaded)
    "all Ready": (4, [ready(f"web-{k}") for k in range(4)], False),
    "a scale-up's pod starting": (4, [ready(f"web-{k}") for k in range(3)] + [PodStatus("web-3", ready=False)], True),
    "a scale-up's pod not created yet (OrderedReady)": (4, [ready(f"web-{k}") for k in range(3)], True),
    "a pod failing readiness under load (never restarted)":
        (4, [ready(f"web-{k}") for k in range(3)] + [PodStatus("web-3", ready=False, restarts=0)], True),
    "a pod in CrashLoopBackOff":
        (4, [ready(f"web-{k}") for k in range(3)] + [PodStatus("web-3", ready=False, restarts=3,
                                                                waiting="CrashLoopBackOff")], False),
    "a crash-looping pod between two crashes (running, not Ready)":
        (4, [ready(f"web-{k}") for k in range(3)] + [PodStatus("web-3", ready=False, restarts=3)], False),
    "a pod that cannot pull its image": (4, [ready(f"web-{k}") for k in range(3)]
                                         + [PodStatus("web-3", ready=False, waiting="ImagePullBackOff")], False),
    "a crash-looping pod and a pod starting":
        (5, [ready(f"web-{k}") for k in range(3)] + [PodStatus("web-3", ready=False, restarts=3),
                                                     PodStatus("web-4", ready=False)], True),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_crashing_pods_are_not_starting_pods(name):
    spec, pods, overloaded = ROWS[name]
    status = TargetStatus(STS, spec_replicas=spec, status_replicas=len(pods),
                          ready_replicas=sum(1 for p in pods if p.ready), pods=tuple(pods))
    view = ClusterView.from_statuses([STS], {STS: status})
    assert overload_signal(view, None, [STS]).tolist() == [overloaded]


def test_without_the_targets_or_pods_it_is_ready_against_spec():
    """A source without pod statuses (or a caller without targets): Ready below spec, as before."""
    view = ClusterView(spec=np.array([4.0]), status=np.array([4.0]), ready=np.array([3.0]),
                       rollout=np.zeros(1, bool), exists=np.ones(1, bool))
    assert overload_signal(view, None).tolist() == [True]
    assert overload_signal(view, None, [STS]).tolist() == [True]


DEP = TargetRef("default", "web", "Deployment")


def hung_view(spec: int = 4, restarts: int = 0) -> ClusterView:
    """3 pods Ready, one running not Ready (a hung process, or a probe failing under load)."""
    pods = [ready(f"web-{k}") for k in range(spec - 1)] + [PodStatus("web-hung", ready=False, restarts=restarts)]
    status = TargetStatus(DEP, spec_replicas=spec, status_replicas=spec, ready_replicas=spec - 1, pods=tuple(pods))
    return ClusterView.from_statuses([DEP], {DEP: status})


def metric(proposal: float, valid: bool = True):
    """What overload_signal reads of a decision: (N, M) proposals and valid."""
    from types import SimpleNamespace
    return SimpleNamespace(proposals=np.array([[proposal]]), valid=np.array([[valid]]))


# name: (decision, withheld, overloaded). A pod not Ready long past its start-up is withheld (its
# replica sized on top of the proposals); when the metric reads the demand and asks for no more, that
# pod is stuck (a hung process), for a restart: before, it counted as starting, the health side
# answered its not-Ready check with a scale-up, then ScaleUpCooldown, and never restarted it.
STUCK_ROWS = {
    "a hung pod, the metric asking for no more": (metric(4), [1.0], False),
    "the same pod under load: the metric asks for more": (metric(6), [1.0], True),
    "a hung pod, no metric read (missing): taken for load, as before": (metric(np.nan, valid=False), [1.0], True),
    "a health-only policy (no decision): taken for load, as before": (None, [1.0], True),
    "not withheld yet (young): starting": (metric(4), [0.0], True),
}


@pytest.mark.parametrize("name", list(STUCK_ROWS))
def test_a_pod_stuck_past_its_start_up_is_not_starting_where_the_metric_reads_the_demand(name):
    decision, withheld, overloaded = STUCK_ROWS[name]
    assert overload_signal(hung_view(), decision, [DEP], np.array(withheld)).tolist() == [overloaded]


def test_a_crash_looping_pod_also_withheld_counts_once():
    """4 pods: 2 Ready, one crash-looping (withheld too), one starting: still starting."""
    pods = [ready("web-0"), ready("web-1"), PodStatus("web-2", ready=False, restarts=3), PodStatus("web-3", ready=False)]
    status = TargetStatus(DEP, spec_replicas=4, status_replicas=4, ready_replicas=2, pods=tuple(pods))
    view = ClusterView.from_statuses([DEP], {DEP: status})
    assert overload_signal(view, metric(4), [DEP], np.array([1.0])).tolist() == [True]
