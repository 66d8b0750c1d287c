"""Creating and removing pods, as the ReplicaSets do: scaling, pod deletion, the removal ranking.

``set_replicas`` calls are queued and applied as one vectorized ``scale`` before the cluster is
next read or changed (``_flush``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.simcluster.slots import EMPTY, INF, PENDING, READY, STARTING
from simulators.workload import ServiceConfig

#: Removal-ranking key layout: (phase rank * 2 + is current revision) << 40 | (2**40 - 1 - serial).
_SERIAL_SPAN = 1 << 40
_NO_KEY = np.iinfo(np.int64).max
#: Up to this many removals in one row, repeated argmin; beyond, sort the rows.
_ARGMIN_REMOVALS = 4


class ReplicaSets:
    """SimCluster's pod creation and removal (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_replicas(self, services: Sequence[ServiceConfig]) -> None:
        self._spec = np.array([s.initial_replicas for s in services], dtype=np.int64)
        self._queued: dict[int, int] = {}  # set_replicas calls not yet applied (service -> replicas)
        self._restarts_total = np.zeros(self.n_services, dtype=np.int64)

    def _create(self, rows: np.ndarray, counts: np.ndarray, now: float, revs: np.ndarray | None = None) -> None:
        """Create ``counts[j]`` Pending pods in ``rows[j]`` (unique rows), of the current
        revision or of revision seq ``revs[j]``, within each row's slots."""
        counts = np.minimum(counts, self._slots[rows] - self._n_pods[rows])
        keep = counts > 0
        if not keep.all():
            rows, counts = rows[keep], counts[keep]
            revs = None if revs is None else revs[keep]
        if rows.size == 0:
            return
        empty = self._p_phase[rows] == EMPTY
        empty &= self._slot_ok[rows]
        rank = np.cumsum(empty, axis=1)
        empty &= rank <= counts[:, None]
        f = np.flatnonzero(empty)
        r = f // self.K
        rr = rows[r]
        g = f + (rr - r) * self.K
        self._f_serial[g] = self._next_serial[rr] + rank.ravel()[f] - 1
        self._next_serial[rows] += counts
        self._f_phase[g] = PENDING
        due = now + self._sched[rows]
        self._f_until[g] = due[r]
        self._f_created[g] = now
        self._f_transition[g] = np.nan
        self._f_restarts[g] = 0
        # leak_at (INF) and degraded (False) are already reset in an empty slot; started is
        # set when the pod starts.
        seqs = self._current[rows] if revs is None else revs
        self._f_rev[g] = seqs[r]
        if revs is None or (revs == self._current[rows]).all():
            if self._any_crash or self._err_varies or self._any_xlat:
                # otherwise every revision so far has the initial properties, already in every slot
                self._f_crash[g], self._f_err[g], self._f_xlat[g] = self._cur_crash[rr], self._cur_err[rr], self._cur_xlat[rr]
        else:  # slow path: recreating pods of an older revision (node loss, pod deletion)
            for i, gj, seq in zip(rr.tolist(), g.tolist(), seqs[r].tolist()):
                self._set_pod_revision(i, gj - i * self.K, seq)
        # Creation only adds Pending pods: update the counters and timers without a refresh.
        self._n_pods[rows] += counts
        self._next_event[rows] = np.minimum(self._next_event[rows], due)
        self._next_min = min(self._next_min, float(due.min()))
        self._dirty = True

    def _set_pod_revision(self, i: int, k: int, seq: int) -> None:
        props = self._revisions[i][seq].props
        self._p_rev[i, k] = seq
        self._p_crash[i, k] = props.crash_loop
        self._p_err[i, k] = props.pod_error_ratio(self.config.services[i].base_error_ratio)
        self._p_xlat[i, k] = props.extra_latency_s

    def _remove_ranked(self, rows: np.ndarray, counts: np.ndarray, now: float,
                       candidates: np.ndarray | None = None) -> None:
        """Remove ``counts[j]`` pods of ``rows[j]`` (unique) by the scale-down ranking (among
        ``candidates``, an (R, K) mask): not ready first, then old revisions, then newest."""
        if rows.size == 0:
            return
        ph = self._p_phase[rows]
        live = ph != EMPTY
        if candidates is not None:
            live &= candidates
            counts = np.minimum(counts, np.count_nonzero(live, axis=1))
        else:
            counts = np.minimum(counts, self._n_pods[rows])
        most = int(counts.max())
        if most <= 0:
            return
        rank = (ph >= STARTING).astype(np.int64)
        rank += ph == READY
        rank *= 2
        rank += self._p_rev[rows] == self._current[rows, None]
        rank <<= 40
        rank += (_SERIAL_SPAN - 1) - self._p_serial[rows]
        key = np.where(live, rank, _NO_KEY)
        if most <= _ARGMIN_REMOVALS:  # a few per row (the usual case): repeated row minimum
            flat_key = key.reshape(-1)
            picked_r, picked_k = [], []
            for c in range(most):
                r = np.flatnonzero(counts > c) if c else np.flatnonzero(counts)
                k = key[r].argmin(axis=1)
                flat_key[r * self.K + k] = _NO_KEY
                picked_r.append(r)
                picked_k.append(k)
            r, k = (picked_r[0], picked_k[0]) if most == 1 else (np.concatenate(picked_r), np.concatenate(picked_k))
        else:  # keys are unique among live pods, so any sort order picks the same pods
            order = np.argsort(key, axis=1).reshape(-1)
            f = np.flatnonzero(np.arange(self.K)[None, :] < counts[:, None])
            r, k = f // self.K, order[f]
        rr = rows[r]
        self._clear_slots(rr, rr * self.K + k, now)

    def _clear_slots(self, rr: np.ndarray, g: np.ndarray, now: float) -> None:
        freed = bool((self._f_phase[g] >= STARTING).any())
        self._f_phase[g] = EMPTY
        self._f_until[g] = INF
        if self._any_leak:
            self._f_leak_at[g] = INF  # (INF anyway while no leak is active)
        if self._any_degraded:
            self._f_degraded[g] = False
        self._n_pods -= np.bincount(rr, minlength=self.n_services)
        if freed:
            self._unpark(now)

    def scale(self, idx: np.ndarray, replicas: np.ndarray, now: float | None = None) -> None:
        """Set spec replicas of services ``idx`` (unique indices) to ``replicas``, clamped to
        [0, max_pods]. Pods are created (Pending) or removed (ranking: not ready, old revision,
        newest first) at once. Vectorized: the runner's hot path."""
        self._flush()
        self._scale(np.asarray(idx, dtype=np.int64).reshape(-1), np.asarray(replicas, dtype=np.int64).reshape(-1),
                    self.now if now is None else now)

    def _scale(self, idx: np.ndarray, replicas: np.ndarray, now: float) -> None:
        replicas = np.minimum(np.maximum(replicas, 0), self._max_pods[idx])
        delta = replicas - self._spec[idx]
        changed = delta != 0
        if not changed.any():
            return
        idx, delta, replicas = idx[changed], delta[changed], replicas[changed]
        self._spec[idx] = replicas
        up = delta > 0
        self._create(idx[up], delta[up], now)  # keeps the aggregates exact by itself
        down = idx[~up]
        if down.size:
            self._remove_ranked(down, -delta[~up], now)
            self._refresh(down)

    def set_replicas(self, i: int, replicas: int, now: float | None = None) -> None:
        """Set one service's spec replicas (see :meth:`scale`).

        Controllers send one action per target; these are queued and applied together, as
        one vectorized :meth:`scale`, before anything reads or changes the cluster. That is
        exactly equivalent to applying them one by one (rows are independent and share the
        time), and much cheaper. A second change to a queued service flushes the queue first.
        """
        if (now is not None and now != self.now) or i in self._queued:
            self._flush()
        if now is not None and now != self.now:
            self.scale(np.array([i]), np.array([replicas]), now)
            return
        self._queued[int(i)] = int(replicas)

    def _flush(self) -> None:
        """Apply the queued set_replicas calls (at ``self.now``) as one vectorized scale."""
        if self._queued:
            queued, self._queued = self._queued, {}
            self._scale(np.fromiter(queued.keys(), np.int64, len(queued)),
                        np.fromiter(queued.values(), np.int64, len(queued)), self.now)

    def delete_pod(self, i: int, name: str, now: float | None = None) -> None:
        """Delete pod ``name`` of service ``i``; its ReplicaSet recreates it (Pending, same
        revision, new name). Counts one restart of the workload. NotFound if no such pod."""
        self._flush()
        now = self.now if now is None else now
        k = self._slot_of(i, name)
        rev = int(self._p_rev[i, k])
        self._clear_slots(np.array([i]), np.array([i * self.K + k]), now)
        self._restarts_total[i] += 1
        self._create(np.array([i]), np.array([1]), now, np.array([rev]))
        self._refresh(np.array([i]))
