"""The engine's pod-name cache stays bounded under pod churn, and names are what they were.

Found reading simulators/simcluster/naming.py: every pod ever named kept an entry, so a long
``sim serve`` soak with churn grew it without end. Now the names of gone pods are dropped once the
cache reaches twice what was left at its last pruning (at least ``MIN_POD_NAMES``).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.model import TargetRef
from simulators.cluster import SimCluster
from simulators.simcluster import naming
from simulators.workload import ServiceConfig, pod_name, revision_hash

SERVICES = ("web", "api")
LOW, HIGH = 2, 20  # each round adds HIGH - LOW new pods per service and removes as many


def cluster(seed: int = 7) -> SimCluster:
    return SimCluster([ServiceConfig(name=n, initial_replicas=LOW) for n in SERVICES], seed)


def churn(c: SimCluster, rounds: int):
    """Scale every service LOW -> HIGH -> LOW ``rounds`` times, listing the pods at HIGH; yields the
    names listed (per service) and a lazy listing taken at HIGH, read once its pods are gone."""
    targets = [TargetRef("default", n) for n in SERVICES]
    for _ in range(rounds):
        for i in range(len(SERVICES)):
            c.set_replicas(i, HIGH)
        names = [c.pod_names(i) for i in range(len(SERVICES))]
        lazy = c.pod_arrays(targets)["name"]  # names made on access
        for i in range(len(SERVICES)):
            c.set_replicas(i, LOW)
        c.pod_names(0)  # applies the scale-down: the listed pods beyond LOW are gone
        yield names, [lazy[j] for j in range(len(lazy))]


def test_cache_stays_bounded_under_churn():
    c = cluster()
    named = 0
    for names, _ in churn(c, rounds=150):  # 150 x 2 x 18 = 5400 new pods, more than MIN_POD_NAMES
        named += sum(len(n) for n in names)
        assert len(c._pod_name_cache) <= naming.MIN_POD_NAMES
    assert named > 1.3 * naming.MIN_POD_NAMES  # without pruning every one of them stays cached
    live = {(i, s) for i in range(len(SERVICES)) for s in c._pod_serial[i, c._pod_phase[i] != 0].tolist()}
    assert live <= set(c._pod_name_cache)  # the pods that exist keep their names


@pytest.mark.parametrize("bound, prunes", [pytest.param(8, True, id="pruning-every-few-names"),
                                           pytest.param(naming.MIN_POD_NAMES, False, id="default-bound-not-reached")])
def test_names_are_identical_to_an_unbounded_cache(monkeypatch, bound, prunes):
    monkeypatch.setattr(naming, "MIN_POD_NAMES", bound)
    pruned, kept = cluster(), cluster()
    kept._pod_name_bound = np.inf  # the cache as it was: never pruned
    for (a, lazy_a), (b, lazy_b) in zip(churn(pruned, rounds=40), churn(kept, rounds=40)):
        assert a == b and lazy_a == lazy_b
    assert (len(kept._pod_name_cache) > len(pruned._pod_name_cache)) == prunes
    # and each is the pure function of (seed's salt, service, revision, pod serial)
    for i, service in enumerate(SERVICES):
        for slot in np.flatnonzero(pruned._pod_phase[i] != 0).tolist():
            serial, seq = int(pruned._pod_serial[i, slot]), int(pruned._pod_revision_seq[i, slot])
            expect = pod_name(pruned.salt, service, revision_hash(pruned.salt, service, seq), serial)
            assert pruned._pod_name(i, slot) == expect
