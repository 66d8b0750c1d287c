"""Pod slots: the ``(S, K)`` arrays holding every pod of every service, and their constants.

A slot is empty, pending, starting, backed off or ready (:class:`~simulators.workload.Phase`,
as plain ints here). A starting slot whose phase end is INF is held by a readiness outage or a
failed readiness probe (:mod:`.readiness_probe`): through its start-up, running, not Ready (as a
pending slot with INF is parked until node capacity frees). Each ``_pod_*`` array has a flat view
``_flat_*`` addressed by ``row * K + slot``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.workload import BACKOFF_INITIAL_S, BACKOFF_MAX_S, Phase, ServiceConfig

INF = np.inf
# Plain ints: numpy compares against an IntEnum member slowly (attribute probing on every call).
EMPTY, PENDING, STARTING, BACKOFF, READY = (int(p) for p in (Phase.EMPTY, Phase.PENDING, Phase.STARTING,
                                                              Phase.BACKOFF, Phase.READY))


#: How long before a simulation's start its initial pods became Ready (s).
INITIAL_PODS_AGE_S = 3600.0


def initial_pods_created_s(services: Sequence[ServiceConfig], start_s: float) -> np.ndarray:
    """(S,) when each service's initial pods were created: Ready :data:`INITIAL_PODS_AGE_S` before
    the start, one start-up (scheduling + start) after their creation. Their first revision (the
    ReplicaSet that made them) dates from then too: a ReplicaSet is never younger than its pods."""
    took = config_array(services, "scheduling_delay_s") + config_array(services, "startup_delay_s")
    return start_s - INITIAL_PODS_AGE_S - took


def live_end_of(phase: np.ndarray) -> np.ndarray:
    """(R,) int64: per row of the (R, K) slot phases, one past its last slot that holds a pod (0:
    none). Every slot from it on is empty: a pass over a row's pods stops there."""
    live = np.asarray(phase) != EMPTY
    last = live.shape[1] - np.argmax(live[:, ::-1], axis=1)
    return np.where(live.any(axis=1), last, 0).astype(np.int64)


def config_array(services: Sequence[ServiceConfig], attr: str, dtype=np.float64) -> np.ndarray:
    """(S,) array of one :class:`ServiceConfig` attribute."""
    return np.array([getattr(s, attr) for s in services], dtype=dtype)


def backoff_s(restarts: np.ndarray) -> np.ndarray:
    """Vectorized :func:`simulators.workload.backoff_s` (exact: powers of two)."""
    return np.minimum(BACKOFF_INITIAL_S * 2.0 ** np.maximum(restarts - 1, 0), BACKOFF_MAX_S)


class PodSlots:
    """SimCluster's pod slot arrays (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_slots(self, services: Sequence[ServiceConfig]) -> None:
        S, K = self.n_services, self.K
        self._pod_phase = np.zeros((S, K), dtype=np.int8)
        self._pod_phase_end_s = np.full((S, K), INF)  # end of the current phase
        self._pod_memory_threshold_s = np.full((S, K), INF)  # next memory threshold; INF unless running and leaking
        self._pod_created_s = np.full((S, K), np.nan)
        self._pod_started_s = np.full((S, K), np.nan)  # last container start (memory-leak anchor)
        self._pod_ready_transition_s = np.full((S, K), np.nan)  # last readiness change
        self._pod_serial = np.zeros((S, K), dtype=np.int64)
        self._pod_restarts = np.zeros((S, K), dtype=np.int64)
        self._pod_revision_seq = np.zeros((S, K), dtype=np.int64)  # seq of the pod's revision
        self._pod_degraded = np.zeros((S, K), dtype=bool)
        self._pod_hung = np.zeros((S, K), dtype=bool)  # hung by a pod-hang fault: not Ready until it ends or restarts
        # the index of the sticky pod-hang fault whose victim (or replacement) the slot's pod is, -1: none
        self._pod_sticky = np.full((S, K), -1, dtype=np.int64)
        self._pod_crash_loops = np.zeros((S, K), dtype=bool)
        self._pod_error_ratio = np.zeros((S, K))
        self._pod_extra_latency_s = np.zeros((S, K))
        initial_replicas = np.array([s.initial_replicas for s in services], dtype=np.int64)
        initial = np.arange(K)[None, :] < initial_replicas[:, None]
        start_s = self.now
        self._pod_phase[initial] = READY
        # the initial pods have run a while, as a live cluster's pods have when a controller starts:
        # Ready an hour before the start, created one start-up (scheduling + start) before that, so
        # that their start-up shows as in a real cluster (creationTimestamp -> Ready); their
        # containers' memory-leak anchor stays the start
        self._pod_ready_transition_s[initial] = start_s - INITIAL_PODS_AGE_S
        self._pod_created_s[:] = np.where(initial, initial_pods_created_s(services, start_s)[:, None], np.nan)
        self._pod_started_s[initial] = start_s
        self._pod_serial[:] = np.arange(K)[None, :]
        self._next_serial = initial_replicas.copy()
        # kept exact where a slot fills (creation) or empties (removal); the pod listing scans no further
        self._live_end = live_end_of(self._pod_phase)
        self._n_parked_pods = 0  # Pending pods waiting for node capacity
        self._make_flat_views()

    _SLOT_FIELDS = ("phase", "phase_end_s", "memory_threshold_s", "created_s", "started_s", "ready_transition_s",
                    "serial", "restarts", "revision_seq", "degraded", "hung", "sticky", "crash_loops", "error_ratio", "extra_latency_s")

    def _make_flat_views(self) -> None:
        for name in self._SLOT_FIELDS:
            setattr(self, f"_flat_{name}", getattr(self, f"_pod_{name}").reshape(-1))  # flat views, no copies

    def __getstate__(self) -> dict:
        # copy/pickle would turn the flat views into independent arrays: rebuild them instead
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_flat_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_flat_views()

    # Slots are addressed by flat index ``row * K + slot`` into the ravelled (S, K) arrays
    # (``_flat_*`` views): 1-D fancy indexing is several times cheaper than (rows, slots) pairs.
    def _row_slots(self, rows: np.ndarray) -> np.ndarray:
        """The flat index of every slot of ``rows`` (R * K,), row by row."""
        return (rows[:, None] * self.K + np.arange(self.K)[None, :]).ravel()

    def _due_slots(self, rows: np.ndarray, times: np.ndarray, now: float):
        """(row, flat slot index, time) of each slot of ``rows`` whose ``times`` (R, K) are <= now."""
        block_flat = np.flatnonzero(times <= now)
        row_pos = block_flat // self.K
        pod_rows = rows[row_pos]
        return pod_rows, block_flat + (pod_rows - row_pos) * self.K, times.ravel()[block_flat]
