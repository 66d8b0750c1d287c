"""Pod slots: the ``(S, K)`` arrays holding every pod of every service, and their constants.

A slot is empty, pending, starting, backed off or ready (:class:`~simulators.workload.Phase`,
as plain ints here). Each ``_p_*`` array has a flat view ``_f_*`` addressed by ``row * K + slot``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.workload import BACKOFF_INITIAL_S, BACKOFF_MAX_S, Phase, ServiceConfig

INF = np.inf
# Plain ints: numpy compares against an IntEnum member slowly (attribute probing on every call).
EMPTY, PENDING, STARTING, BACKOFF, READY = (int(p) for p in (Phase.EMPTY, Phase.PENDING, Phase.STARTING,
                                                              Phase.BACKOFF, Phase.READY))


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
        self._p_phase = np.zeros((S, K), dtype=np.int8)
        self._p_until = np.full((S, K), INF)  # end of the current phase
        self._p_leak_at = np.full((S, K), INF)  # next memory threshold; INF unless running and leaking
        self._p_created = np.full((S, K), np.nan)
        self._p_started = np.full((S, K), np.nan)  # last container start (memory-leak anchor)
        self._p_transition = np.full((S, K), np.nan)  # last readiness change
        self._p_serial = np.zeros((S, K), dtype=np.int64)
        self._p_restarts = np.zeros((S, K), dtype=np.int64)
        self._p_rev = np.zeros((S, K), dtype=np.int64)  # seq of the pod's revision
        self._p_degraded = np.zeros((S, K), dtype=bool)
        self._p_crash = np.zeros((S, K), dtype=bool)
        self._p_err = np.zeros((S, K))
        self._p_xlat = np.zeros((S, K))
        n0 = np.array([s.initial_replicas for s in services], dtype=np.int64)
        initial = np.arange(K)[None, :] < n0[:, None]
        t0 = self.now
        self._p_phase[initial] = READY
        self._p_created[initial] = self._p_started[initial] = self._p_transition[initial] = t0
        self._p_serial[:] = np.arange(K)[None, :]
        self._next_serial = n0.copy()
        self._n_parked = 0  # Pending pods waiting for node capacity
        self._make_flat_views()

    _SLOT_FIELDS = ("phase", "until", "leak_at", "created", "started", "transition", "serial", "restarts", "rev",
                    "degraded", "crash", "err", "xlat")

    def _make_flat_views(self) -> None:
        for name in self._SLOT_FIELDS:
            setattr(self, f"_f_{name}", getattr(self, f"_p_{name}").reshape(-1))  # flat views, no copies

    def __getstate__(self) -> dict:
        # copy/pickle would turn the flat views into independent arrays: rebuild them instead
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_f_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_flat_views()

    # Slots are addressed by flat index g = row * K + slot into the ravelled (S, K) arrays
    # (``_f_*`` views): 1-D fancy indexing is several times cheaper than (rows, slots) pairs.
    def _due_slots(self, rows: np.ndarray, times: np.ndarray, now: float):
        """(rows, flat slots, times) of the slots of ``rows`` whose ``times`` (R, K) are <= now."""
        f = np.flatnonzero(times <= now)
        r = f // self.K
        rr = rows[r]
        return rr, f + (rr - r) * self.K, times.ravel()[f]
