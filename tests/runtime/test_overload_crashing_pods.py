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
