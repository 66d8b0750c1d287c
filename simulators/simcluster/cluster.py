"""The simulated cluster, vectorized across services: :class:`SimCluster`.

Same model as ``tests/support/reference_cluster.py`` (read that for the rules, in plain loops);
this one keeps every service in numpy arrays so that a tick for 1,000 services costs tens of
microseconds.

Layout. ``S`` services, ``K`` pod slots per service (the largest ``ServiceConfig.slots``).
Pods live in ``(S, K)`` slot arrays (``_pod_*``, with flat views ``_flat_*`` addressed by
``row * K + slot``); a slot is empty, pending, starting, backed off or ready
(:class:`~simulators.workload.Phase`). Per-service aggregates (ready capacity, error weight,
next event time, ...) are ``(S,)`` arrays: primaries recomputed only for the rows that
changed (``_refresh``), derived terms of the queueing model once per tick when anything
changed (``_derive``). Rows whose pods all share one revision's properties are summed
without per-pod weights; a row becomes "mixed" during a rollout to different properties or
when a pod degrades.

Hot path. ``step`` touches ``(S,)`` arrays only: a float compare decides whether any fault
event is due; a cached minimum decides whether any pod event (end of a scheduling, startup or
backoff delay, a memory threshold) is due, and only the rows with a due event are processed;
then the queueing model runs on ``(S,)`` arrays. ``set_replicas`` / ``apply`` calls are queued
and applied as one vectorized ``scale`` before the cluster is next read or changed. Faults,
rollouts and per-pod reads (names, ``statuses``) are on slower paths. ``step_ticks`` steps a
run of ticks in one compiled call (the simulation runner's ticks between control cycles), the
replica changes and pod lifecycle events due at them included in the common case
(:mod:`.runs_compiled`), writing their signals where the caller keeps them.

Code. One object whose state every method shares; the methods are grouped by concern in
mixins, one module each (listed in :mod:`simulators.simcluster`). The constructor derives its
random streams (naming salt, cluster-wide and per-service draws) from ``rng``'s seed sequence as
the reference engine does, then builds the state concern by concern.

Units: seconds (``_s``, epoch for times), requests/s (``_rps``), percent (``_pct``), MiB.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators import faults as F
from simulators.simcluster.engine import QueueingEngine
from simulators.simcluster.fault_injection import FaultInjection
from simulators.simcluster.lifecycle import PodLifecycle
from simulators.simcluster.naming import PodNaming
from simulators.simcluster.port import ClusterPort
from simulators.simcluster.readiness_probe import ReadinessProbes
from simulators.simcluster.replicas import ReplicaSets
from simulators.simcluster.rollouts import Rollouts
from simulators.simcluster.slots import EMPTY, PodSlots
from simulators.simcluster.statefulsets import StatefulSets
from simulators.streams import engine_streams
from simulators.workload import ClusterConfig, ServiceConfig


class SimCluster(QueueingEngine, PodLifecycle, ReplicaSets, Rollouts, StatefulSets, FaultInjection, ReadinessProbes,
                 PodNaming, ClusterPort, PodSlots):
    """A simulated cluster of ``S`` Deployments, deterministic for a given generator.

    ``SimCluster(config, rng, faults=())``: ``config`` is a :class:`ClusterConfig` or a list of
    :class:`ServiceConfig`; ``rng`` an int seed or a ``numpy.random.Generator`` whose seed
    sequence roots the cluster's streams (:mod:`simulators.streams`); ``faults``
    a list of :mod:`simulators.faults` faults, applied by :meth:`step` at their start and end.

    Per tick: ``step(now, dt_s, offered_rps) -> TickSignals`` (truth) and
    ``signals() -> ObservedSignals`` (what a metrics source sees). Actions: ``scale``,
    ``set_replicas``, ``delete_pod``, ``rollout``, ``rolling_restart``, ``rollback``, ``apply``.
    Reads: ``statuses``, ``view``, ``spec_replicas``, ``ready_replicas``, ``pod_count``,
    ``revisions``, ``pod_names``.
    """

    def __init__(self, config: ClusterConfig | Sequence[ServiceConfig], rng: np.random.Generator | int,
                 faults: Sequence[F.Fault] = ()):
        self.config = ClusterConfig.of(config).validate()
        self.streams = engine_streams(rng)  # naming salt, cluster-wide and per-service draws, as in the reference
        self.rng, self.salt = self.streams.cluster, self.streams.salt
        services = self.config.services
        self.names = tuple(s.name for s in services)
        self.index_of = {name: i for i, name in enumerate(self.names)}
        F.validate_faults(faults, self.index_of)
        self.now = self.config.start_s
        self._init_config(services)
        self._init_slots(services)
        self._init_replicas(services)
        self._init_revisions(services)
        self._init_probes(services)
        self._init_faults(faults)
        self._init_aggregates()
        self._init_naming()
        self._init_statefulsets()
        self._init_port()
        self._n_pods[:] = np.count_nonzero(self._pod_phase != EMPTY, axis=1)  # then kept exact incrementally
        self._refresh(np.arange(self.n_services))
        self._derive()
