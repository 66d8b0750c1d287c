"""The start-up observer does not take a readiness outage for slow start-ups.

A target that had Ready pods and lost them all (a dependency every pod checks is down) gets its
pods Ready again when the dependency is back: a pod created before or during the outage shows a
creation -> Ready span that measures the outage, not a start-up (counted, the ramp's lead became
the outage's length). Driven over the simulated cluster (its readiness-outage fault) through
the simulated Cluster port, one observer cycle every 15 s; start-up 10 s (+ 2 s scheduling).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.policy import load_policy_text
from controller.runtime.startup_observer import StartupObserver
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.workload import ServiceConfig

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {namespace: default, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 80}
        ramp: {startupDelay: observed}
"""
STARTUP_S = 12.0  # scheduling 2 s + start-up 10 s
TICK_S, CYCLE_S = 1.0, 15.0


def run(initial: int, scale_ups: dict[float, int], outage: tuple[float, float] | None, until_s: float):
    """The observed start-up delay (s) and how many start-ups it rests on after ``until_s``."""
    faults = [] if outage is None else [F.ReadinessOutage(at_s=outage[0], duration_s=outage[1] - outage[0])]
    cluster = SimCluster([ServiceConfig("web", initial_replicas=initial, max_pods=20, startup_delay_s=10.0)],
                         np.random.default_rng(1), faults=faults)
    targets = SimTargets(cluster, ["web"])
    params = load_policy_text(POLICY, "web.yaml")[0].params
    refs = targets.resolve(load_policy_text(POLICY, "web.yaml")[0].targets)
    observer, errors, info = StartupObserver(), [], None
    for k in range(int(until_s / TICK_S) + 1):
        now = k * TICK_S
        cluster.step(now, TICK_S, np.array([100.0]))
        if now in scale_ups:
            cluster.scale(np.array([0]), np.array([scale_ups[now]]))
        if now % CYCLE_S == 0:
            info = observer.observe(params, targets, refs, targets.observe(refs), now, errors, False)
    assert errors == []
    return float(info.estimate.delay_s[0]), int(info.estimate.pods[0])


@pytest.mark.parametrize("initial, scale_ups, outage, pods", [
    # no outage: every pod's start-up counts (the initial pods' too)
    pytest.param(2, {60.0: 5}, None, 5, id="no-outage"),
    # a new target, no Ready pod yet at its first cycles (scaled up from 0): not an outage
    pytest.param(0, {30.0: 3}, None, 3, id="scaled-up-from-zero-is-not-dark"),
    # pods created during an outage are Ready at its end, 10 minutes later: not counted
    pytest.param(2, {300.0: 6}, (120.0, 720.0), 2, id="created-during-the-outage"),
    # pods created just before it, still starting when it began: not counted either
    pytest.param(2, {115.0: 6}, (120.0, 720.0), 2, id="starting-when-it-began"),
    # after the outage, new pods count again
    pytest.param(2, {300.0: 4, 900.0: 7}, (120.0, 720.0), 5, id="start-ups-after-it-count"),
])
def test_pods_ready_late_because_of_an_outage_are_not_start_ups(initial, scale_ups, outage, pods):
    """``pods``: the start-ups counted; the delay stays the start-up's (within a cycle)."""
    delay, counted = run(initial, scale_ups, outage, until_s=1200.0)
    assert counted == pods
    assert abs(delay - STARTUP_S) <= CYCLE_S, delay
