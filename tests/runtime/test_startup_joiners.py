"""A target that joins the start-up observer's list late is read as a first sight.

Once every target's pods were read, the observer reads only the targets whose Ready count rose,
and once every target was seen, only those short for longer than twice the start-up: a target
that joins then (a new Deployment, an HPA deleted) must still get its first read, for its
start-ups (its pods Ready long ago: no rise to wait for) and for its withheld replicas (short
since before it joined). Driven over the simulated cluster through the simulated Cluster port,
one observer cycle every 15 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.errors import TemporaryError
from controller.policy import load_policy_text
from controller.runtime.startup_observer import StartupObserver
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.workload import ServiceConfig
from tests.runtime.test_startup_dark import POLICY  # its ramp follows observed start-ups; the simulated
# port resolves every selector to every service (web and api here)

TICK_S, CYCLE_S = 1.0, 15.0
JOINS_S = 600.0  # api joins the observer's list at this cycle; web is governed from the start


class FirstListFails(SimTargets):
    """The simulated Cluster port whose first pod list of api fails (a 503)."""

    failed = False

    def list_pods(self, targets):
        if any(t.name == "api" for t in targets) and not self.failed:
            self.failed = True
            raise TemporaryError("pods: 503 Service Unavailable")
        return super().list_pods(targets)


def first_sight_of_api(api_hang: bool, first_read_fails: bool = False, after_s: float = 0.0) -> tuple[int, float]:
    """(start-ups counted for api, its withheld replicas) ``after_s`` after the cycle it joins; with
    ``first_read_fails``, the pod read of that cycle fails."""
    faults = [F.PodHang(at_s=60.0, count=2, services=("api",))] if api_hang else []
    cluster = SimCluster([ServiceConfig("web", initial_replicas=3, max_pods=20, startup_delay_s=10.0),
                          ServiceConfig("api", initial_replicas=4, max_pods=20, startup_delay_s=10.0)],
                         np.random.default_rng(1), faults=faults)
    ports = (FirstListFails if first_read_fails else SimTargets)(cluster, ["web", "api"])
    loaded = load_policy_text(POLICY, "web.yaml")[0]
    every = ports.resolve(loaded.targets)
    web = [t for t in every if t.name == "web"]
    observer, errors = StartupObserver(), []
    for k in range(int((JOINS_S + after_s) / TICK_S) + 1):
        now = k * TICK_S
        cluster.step(now, TICK_S, np.array([100.0, 100.0]))
        if now % CYCLE_S:
            continue
        targets = every if now >= JOINS_S else web
        view = ports.observe(targets)
        info = observer.observe(loaded.params, ports, targets, view, now, errors, False)
        withheld = observer.withheld(loaded.params, ports, targets, view, now, errors, False, info.estimate.delay_s)
    assert len(errors) == first_read_fails
    api = [t.name for t in every].index("api")
    return int(info.estimate.pods[api]), 0.0 if withheld is None else float(withheld[api])


@pytest.mark.parametrize("api_hang, pods, withheld", [
    # api's four pods were Ready long before it joined: their start-ups are read at its first cycle
    pytest.param(False, 4, 0.0, id="start-ups-read-at-first-sight"),
    # two of api's pods hung long before it joined: running, not Ready, they are withheld at its
    # first cycle (short since before it joined), not twice a start-up after it; the two Ready
    # pods' start-ups are read then too
    pytest.param(True, 2, 2.0, id="withheld-read-at-first-sight"),
])
def test_a_target_that_joins_late_is_read_at_its_first_cycle(api_hang, pods, withheld):
    got_pods, got_withheld = first_sight_of_api(api_hang)
    assert (got_pods, got_withheld) == (pods, withheld)


def test_a_first_read_that_failed_is_tried_again_at_the_next_cycle():
    """api's start-ups are read at the cycle after its failed first read, its Ready count unchanged."""
    assert first_sight_of_api(False, first_read_fails=True, after_s=CYCLE_S)[0] == 4
