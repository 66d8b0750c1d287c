"""A pod restarted under its own name (a StatefulSet's ``web-0``, deleted and recreated) is a new
pod: its pod-scope checks start afresh, as a Deployment's replacement does under a new name.

The pod-check state is keyed by pod name. Before, the recreated ``web-0`` inherited the deleted
pod's state: FIRING, its timers and its smoothing window. A replacement whose series is missing
while it starts (a scrape of an app not up yet gives none) kept that FIRING frozen, so the restart
that cured it failed its verification and escalated to a rolling restart of the whole workload;
a smoothed check kept the old pod's samples in the new pod's average, with the same outcome. A
Deployment's replacement (a new name) starts OK and the same restart is verified.

Rows: the restart's replacement under a new name (Deployment) or under the same name with a new
creation time (StatefulSet); its series missing for the first 90 s, or the 5-minute max; and the
same name with the creation time unknown (what a source that does not say gives: as before).
Fixed times from T0, a 5 s cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, HealthReason, Remedy
from controller.core.scaling.params import Smoothing
from tests.core.healing import T0, params, pod_check


@dataclass
class Pod:
    name: str
    born: float
    value_from: float = 0.0  # its series exists from this time on (NaN before: not scraped yet)
    value: float = 0.0


def observe(p, pods: list[Pod], now: float, born_known: bool = True) -> HealthObservation:
    c = len(p.checks)
    values = np.array([[pod.value if now >= pod.value_from else np.nan] for pod in pods])
    table = PodTable.of([0] * len(pods), [f"default/{pod.name}" for pod in pods], values, checks=c,
                        born=[pod.born for pod in pods] if born_known else None)
    return HealthObservation.of([len(pods)], [len(pods)], np.full((1, c), np.nan), checks=c, revision=["1"],
                                pods=table)


def run(p, same_name: bool, missing_s: float, born_known: bool = True, until_s: float = 300.0):
    """web-0 bad from T0 (value 1.0 > 0.9); the restart brings it back healthy (0.0), its series
    missing for ``missing_s``. Returns (actions by time, outcomes by time)."""
    pods = [Pod("web-0", T0 - 3600.0, value=1.0)] + [Pod(f"web-{k}", T0 - 3600.0) for k in (1, 2, 3)]
    state = HealthState.empty(1, p)
    actions, outcomes = {}, {}
    for t in np.arange(0.0, until_s, 5.0):
        now = T0 + t
        d = heal(p, observe(p, pods, now, born_known), state, now)
        state = d.state
        if d.action[0] != Act.NONE:
            actions[t] = Act(int(d.action[0])).word
        if d.outcome[0] >= 0:
            outcomes[t] = HealthReason(int(d.outcome[0])).code
        if d.action[0] == Act.RESTART_POD:
            [name] = d.restart_pods(0)
            k = next(j for j, pod in enumerate(pods) if f"default/{pod.name}" == name)
            pods[k] = Pod(pods[k].name if same_name else f"web-x{int(t)}", now + 1.0, value_from=now + missing_s)
    return actions, outcomes


MISSING = params(pod_check("mem", for_s=30.0, recovered_for_s=30.0), escalation=(Remedy.RESTART_POD,
                                                                                  Remedy.ROLLING_RESTART))
SMOOTHED = params(pod_check("mem", for_s=30.0, recovered_for_s=0.0, smoothing=Smoothing.MAX, window_s=300.0),
                  escalation=(Remedy.RESTART_POD, Remedy.ROLLING_RESTART))

ROWS = {
    # name: (params, same name, series missing for s, creation time known)
    "deployment: replacement under a new name, its series missing 90 s": (MISSING, False, 90.0, True),
    "statefulset: web-0 recreated, its series missing 90 s": (MISSING, True, 90.0, True),
    "deployment: replacement under a new name, the 5-minute max": (SMOOTHED, False, 0.0, True),
    "statefulset: web-0 recreated, the 5-minute max": (SMOOTHED, True, 0.0, True),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_a_restarted_pod_is_checked_afresh_and_its_restart_verified(name):
    p, same, missing, known = ROWS[name]
    actions, outcomes = run(p, same, missing, known)
    assert list(actions.values()) == ["restart-pod"], (actions, outcomes)
    assert list(outcomes.values()) == ["Verified"], (actions, outcomes)


def test_the_same_name_with_its_creation_time_unknown_keeps_the_old_state():
    """A source that gives no creation time (NaN): the pod is the one known before, as before
    (its inherited FIRING frozen while the series is missing fails the verification)."""
    actions, outcomes = run(MISSING, True, 90.0, born_known=False)
    assert list(actions.values())[0] == "restart-pod", (actions, outcomes)
    assert list(outcomes.values())[0] == "VerifyFailedEscalating", (actions, outcomes)
