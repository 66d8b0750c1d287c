"""The start-up observer reads the same pods through the simulator's PodStartLister capability
(SimTargets.pod_starts: the columns it reads, straight from the slots) as through its PodLister
(list_pods of the due targets): cycle by cycle the same estimates and withheld replicas, on a
simulated cluster whose services scale up, start slowly, hang and lose every Ready pod."""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.scaling import compiled
from controller.policy import load_policy_text
from controller.runtime.startup_observer import StartupObserver
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.workload import ServiceConfig
from tests.runtime.test_startup_dark import POLICY  # its ramp follows observed start-ups

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

TICK_S, CYCLE_S, END_S = 1.0, 15.0, 900.0


class ListedPods(SimTargets):
    """The simulated Cluster port read through ``list_pods`` (pod_starts declines for a subclass that lists its own way)."""

    def list_pods(self, targets):
        return super().list_pods(targets)


def observed_cycles(port_class: type[SimTargets]) -> list[tuple]:
    """Per observer cycle: (estimate arrays, withheld replicas) over a run of three services."""
    faults = [F.PodHang(at_s=200.0, count=2, services=("api",)), F.ReadinessOutage(at_s=400.0, duration_s=60.0,
                                                                                    services=("db",))]
    cluster = SimCluster([ServiceConfig("web", initial_replicas=2, max_pods=20, startup_delay_s=10.0),
                          ServiceConfig("api", initial_replicas=4, max_pods=20, startup_delay_s=25.0),
                          ServiceConfig("db", initial_replicas=3, max_pods=20, startup_delay_s=40.0)],
                         np.random.default_rng(5), faults=faults)
    ports = port_class(cluster, ["web", "api", "db"])
    loaded = load_policy_text(POLICY, "web.yaml")[0]
    targets = ports.resolve(loaded.targets)
    observer, errors, out = StartupObserver(), [], []
    for k in range(int(END_S / TICK_S) + 1):
        now = k * TICK_S
        if now in (100.0, 300.0, 500.0):  # scale-ups: new pods start up
            for i in range(3):
                cluster.set_replicas(i, int(cluster.spec_replicas[i]) + 3)
        cluster.step(now, TICK_S, np.array([100.0, 100.0, 100.0]))
        if now % CYCLE_S:
            continue
        view = ports.observe(targets)
        info = observer.observe(loaded.params, ports, targets, view, now, errors, False)
        withheld = observer.withheld(loaded.params, ports, targets, view, now, errors, False, info.estimate.delay_s)
        e = info.estimate
        out.append((e.delay_s.tolist(), e.pods.tolist(), e.low_s.tolist(), e.high_s.tolist(),
                    None if withheld is None else withheld.tolist()))
    assert not errors
    return out


def test_pod_starts_and_list_pods_give_the_same_start_ups_and_withheld_replicas(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    got, want = observed_cycles(SimTargets), observed_cycles(ListedPods)
    assert got == want
    assert max(max(pods) for _, pods, *_ in got) >= 3  # start-ups were learned
    assert any(w is not None and any(w) for *_, w in got)  # and hung pods withheld


class Forwarding:
    """A Cluster wrapper that lists pods its own way and forwards the rest (__getattr__), as
    wrappers that intercept some calls do: its list_pods must not be read around."""

    def __init__(self, inner: SimTargets):
        self.inner, self.listed = inner, 0

    def list_pods(self, targets):
        self.listed += 1
        return self.inner.list_pods(targets)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_a_wrapper_that_forwards_pod_starts_is_read_through_its_own_list_pods(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    cluster = SimCluster([ServiceConfig("web", initial_replicas=2, max_pods=20, startup_delay_s=10.0)],
                         np.random.default_rng(5))
    wrapper = Forwarding(SimTargets(cluster, ["web"]))
    loaded = load_policy_text(POLICY, "web.yaml")[0]
    targets = wrapper.resolve(loaded.targets)
    cluster.step(0.0, TICK_S, np.array([100.0]))
    StartupObserver().observe(loaded.params, wrapper, targets, wrapper.observe(targets), 0.0, [], False)
    assert wrapper.listed == 1  # the first sight of web: its pods read through the wrapper's list_pods
