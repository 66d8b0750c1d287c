"""Creating and removing pods, as the ReplicaSets do: scaling, pod deletion, the removal ranking.

``set_replicas`` calls are queued and applied as one vectorized ``scale`` before the cluster is
next read or changed (``_flush``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.simcluster import pods_compiled, queue_compiled
from simulators.simcluster.slots import EMPTY, INF, PENDING, READY, STARTING, live_end_of
from simulators.workload import ServiceConfig, proportional_sizes

#: Removal-ranking key layout: (phase rank * 2 + is current revision) << 40 | (2**40 - 1 - serial).
_SERIAL_SPAN = 1 << 40
_NO_KEY = np.iinfo(np.int64).max
#: Up to this many removals in one row, repeated argmin; beyond, sort the rows.
_ARGMIN_REMOVALS = 4


class ReplicaSets:
    """SimCluster's pod creation and removal (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_replicas(self, services: Sequence[ServiceConfig]) -> None:
        self._spec_replicas = np.array([s.initial_replicas for s in services], dtype=np.int64)
        self._queued_replicas: dict[int, int] = {}  # set_replicas calls not yet applied (service -> replicas)
        # or a cycle's scales queued at once (set_replicas_rows, queue_distinct_rows): their distinct
        # rows and counts, (K,) int64 each, in order, kept as arrays (a dict of them cost ~10 us a
        # cycle for 1,000 services); never both: a set_replicas moves them into the dict first
        self._queued_rows: tuple[np.ndarray, np.ndarray] | None = None
        self._row_seen = np.zeros(len(services), dtype=bool)  # queue_compiled's scratch: False between calls
        self._restarts_total = np.zeros(self.n_services, dtype=np.int64)

    def _create_pods(self, rows: np.ndarray, counts: np.ndarray, now: float,
                     revision_seqs: np.ndarray | None = None) -> None:
        """Create ``counts[j]`` Pending pods in ``rows[j]`` (unique rows), of the current
        revision or of the revision with seq ``revision_seqs[j]``, within each row's slots."""
        if revision_seqs is None and not (self._any_ordered and self._ordered[rows].any()) \
                and pods_compiled.create_pods(self, rows, counts, now):
            return
        counts = np.minimum(counts, self._slot_count[rows] - self._n_pods[rows])
        keep = counts > 0
        if not keep.all():
            rows, counts = rows[keep], counts[keep]
            revision_seqs = None if revision_seqs is None else revision_seqs[keep]
        if rows.size == 0:
            return
        empty = self._pod_phase[rows] == EMPTY
        empty &= self._slot_exists[rows]
        rank = np.cumsum(empty, axis=1)
        empty &= rank <= counts[:, None]
        block_flat = np.flatnonzero(empty)
        row_pos = block_flat // self.K
        pod_rows = rows[row_pos]
        flat = block_flat + (pod_rows - row_pos) * self.K
        self._flat_serial[flat] = self._next_serial[pod_rows] + rank.ravel()[block_flat] - 1
        self._next_serial[rows] += counts
        self._flat_phase[flat] = PENDING
        np.maximum.at(self._live_end, pod_rows, flat - pod_rows * self.K + 1)
        due = now + self._scheduling_delay_s[rows]
        self._flat_phase_end_s[flat] = due[row_pos]
        self._flat_created_s[flat] = now
        self._flat_ready_transition_s[flat] = np.nan
        self._flat_restarts[flat] = 0
        # memory_threshold_s (INF) and degraded (False) are already reset in an empty slot;
        # started_s is set when the pod starts.
        pod_revision_seqs = self._current_seq[rows] if revision_seqs is None else revision_seqs
        self._flat_revision_seq[flat] = pod_revision_seqs[row_pos]
        if revision_seqs is None or (revision_seqs == self._current_seq[rows]).all():
            if self._any_crash_loop or self._error_ratio_varies or self._any_extra_latency:
                # otherwise every revision so far has the initial properties, already in every slot
                self._flat_crash_loops[flat] = self._current_crash_loops[pod_rows]
                self._flat_error_ratio[flat] = self._current_error_ratio[pod_rows]
                self._flat_extra_latency_s[flat] = self._current_extra_latency_s[pod_rows]
        else:  # slow path: recreating pods of an older revision (node loss, pod deletion)
            for row, flat_index, revision_seq in zip(pod_rows.tolist(), flat.tolist(),
                                                     pod_revision_seqs[row_pos].tolist()):
                self._set_pod_revision(row, flat_index - row * self.K, revision_seq)
        if self._any_ordered:  # a StatefulSet's pods: their ordinals, and the revision of each
            for row in np.unique(pod_rows[self._ordered[pod_rows]]).tolist():
                self._give_ordinals(row, flat[pod_rows == row])
        # Creation only adds Pending pods: update the counters and timers without a refresh.
        self._n_pods[rows] += counts
        self._next_event_s[rows] = np.minimum(self._next_event_s[rows], due)
        self._next_event_min_s = min(self._next_event_min_s, float(due.min()))
        self._needs_derive = True

    def _set_pod_revision(self, row: int, slot: int, revision_seq: int) -> None:
        props = self._revisions[row][revision_seq].props
        self._pod_revision_seq[row, slot] = revision_seq
        self._pod_crash_loops[row, slot] = props.crash_loop
        self._pod_error_ratio[row, slot] = props.pod_error_ratio(self.config.services[row].base_error_ratio)
        self._pod_extra_latency_s[row, slot] = props.extra_latency_s

    def _remove_ranked(self, rows: np.ndarray, counts: np.ndarray, now: float,
                       candidates: np.ndarray | None = None) -> None:
        """Remove ``counts[j]`` pods of ``rows[j]`` (unique) by the scale-down ranking (among
        ``candidates``, an (R, K) mask): not ready first, then old revisions, then newest."""
        if rows.size == 0:
            return
        if candidates is None and pods_compiled.remove_ranked(self, rows, counts, now):
            return
        phase = self._pod_phase[rows]
        live = phase != EMPTY
        if candidates is not None:
            live &= candidates
            counts = np.minimum(counts, np.count_nonzero(live, axis=1))
        else:
            counts = np.minimum(counts, self._n_pods[rows])
        most = int(counts.max())
        if most <= 0:
            return
        rank = (phase >= STARTING).astype(np.int64)
        rank += phase == READY
        rank *= 2
        rank += self._pod_revision_seq[rows] == self._current_seq[rows, None]
        rank <<= 40
        rank += (_SERIAL_SPAN - 1) - self._pod_serial[rows]
        key = np.where(live, rank, _NO_KEY)
        if most <= _ARGMIN_REMOVALS:  # a few per row (the usual case): repeated row minimum
            flat_key = key.reshape(-1)
            picked_pos, picked_slots = [], []
            for removed in range(most):
                row_pos = np.flatnonzero(counts > removed) if removed else np.flatnonzero(counts)
                pod_slots = key[row_pos].argmin(axis=1)
                flat_key[row_pos * self.K + pod_slots] = _NO_KEY
                picked_pos.append(row_pos)
                picked_slots.append(pod_slots)
            if most == 1:
                row_pos, pod_slots = picked_pos[0], picked_slots[0]
            else:
                row_pos, pod_slots = np.concatenate(picked_pos), np.concatenate(picked_slots)
        else:  # keys are unique among live pods, so any sort order picks the same pods
            order = np.argsort(key, axis=1).reshape(-1)
            block_flat = np.flatnonzero(np.arange(self.K)[None, :] < counts[:, None])
            row_pos, pod_slots = block_flat // self.K, order[block_flat]
        pod_rows = rows[row_pos]
        self._clear_slots(pod_rows, pod_rows * self.K + pod_slots, now)

    def _clear_slots(self, pod_rows: np.ndarray, flat: np.ndarray, now: float) -> None:
        freed = bool((self._flat_phase[flat] >= STARTING).any())
        self._flat_phase[flat] = EMPTY
        emptied = np.unique(pod_rows)
        self._live_end[emptied] = live_end_of(self._pod_phase[emptied])
        self._flat_phase_end_s[flat] = INF
        if self._any_leak:
            self._flat_memory_threshold_s[flat] = INF  # (INF anyway while no leak is active)
        if self._any_degraded:
            self._flat_degraded[flat] = False
        if self._any_hung:
            self._flat_hung[flat] = False
        if self._any_sticky:
            self._flat_sticky[flat] = -1
        self._n_pods -= np.bincount(pod_rows, minlength=self.n_services)
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
        delta = replicas - self._spec_replicas[idx]
        changed = delta != 0
        if not changed.any():
            return
        idx, delta, replicas = idx[changed], delta[changed], replicas[changed]
        if self._any_ordered and self._ordered[idx].any():  # StatefulSets: one pod at a time, in order
            ordered = self._ordered[idx]
            for i, spec in zip(idx[ordered].tolist(), replicas[ordered].tolist()):
                self._spec_replicas[i] = spec
                self._sts_due(i)
                self._sync_statefulset(i, now)
            idx, delta, replicas = idx[~ordered], delta[~ordered], replicas[~ordered]
        rolling = self._rolling[idx]
        if rolling.any():  # rare: a Deployment scaled during a rollout
            for i, spec in zip(idx[rolling].tolist(), replicas[rolling].tolist()):
                self._scale_proportionally(i, spec, now)
            idx, delta, replicas = idx[~rolling], delta[~rolling], replicas[~rolling]
        self._spec_replicas[idx] = replicas
        up = delta > 0
        self._create_pods(idx[up], delta[up], now)  # keeps the aggregates exact by itself
        down = idx[~up]
        if down.size:
            self._remove_ranked(down, -delta[~up], now)
            self._refresh(down)

    def _scale_proportionally(self, i: int, replicas: int, now: float) -> None:
        """Scale service ``i`` during a rollout as the Deployment controller does: the change is
        spread over the revisions' ReplicaSets in proportion to their sizes
        (:func:`~simulators.workload.proportional_sizes`), not all put on the newest one."""
        service, current = self.config.services[i], int(self._current_seq[i])
        live = self._pod_phase[i] != EMPTY
        sizes = np.bincount(self._pod_revision_seq[i][live], minlength=self._next_seq[i]).tolist()
        order = [seq for seq in self._revisions[i] if seq != current] + [current]  # current last
        targets = proportional_sizes([sizes[seq] for seq in order], int(self._spec_replicas[i]), replicas,
                                     service.max_surge, service.max_unavailable)
        self._spec_replicas[i] = replicas
        row = np.array([i])
        for seq, target in zip(order, targets):
            if target > sizes[seq]:
                self._create_pods(row, np.array([target - sizes[seq]]), now, np.array([seq]))
            elif target < sizes[seq]:
                of_revision = (self._pod_phase[i] != EMPTY) & (self._pod_revision_seq[i] == seq)
                self._remove_ranked(row, np.array([sizes[seq] - target]), now, of_revision[None, :])
        self._refresh(row)

    def set_replicas(self, i: int, replicas: int, now: float | None = None) -> None:
        """Set one service's spec replicas (see :meth:`scale`).

        Controllers send one action per target; these are queued and applied together, as
        one vectorized :meth:`scale`, before anything reads or changes the cluster. That is
        exactly equivalent to applying them one by one (rows are independent and share the
        time), and much cheaper. A second change to a queued service flushes the queue first.
        """
        queue = self.queued()
        if (now is not None and now != self.now) or i in queue:
            self._flush()
        if now is not None and now != self.now:
            self.scale(np.array([i]), np.array([replicas]), now)
            return
        self._queued_replicas[int(i)] = int(replicas)

    def queued(self) -> dict[int, int]:
        """The queue as a dict (service -> replicas, in order): a queue of rows moved into it."""
        if self._queued_rows is not None:
            rows, replicas = self._queued_rows
            self._queued_rows = None
            self._queued_replicas = dict(zip(rows.tolist(), replicas.tolist()))
        return self._queued_replicas

    def set_replicas_rows(self, rows: np.ndarray, replicas: np.ndarray) -> None:
        """``set_replicas(i, n)`` of each of ``rows`` (K,) and ``replicas`` (K,) in order, at
        ``self.now``: queued at once when the queue holds none of the rows and they are distinct
        (a cycle's scales: the common case), else one by one as the loop would."""
        rows, replicas = np.asarray(rows, np.int64), np.asarray(replicas, np.int64)
        if not self.has_queued() and len(set(rows.tolist())) == len(rows):
            self._queue_rows(rows, replicas)
            return
        for i, n in zip(rows.tolist(), replicas.tolist()):
            self.set_replicas(i, n)

    def queue_distinct_rows(self, rows: np.ndarray, exists: np.ndarray, picks: np.ndarray,
                            replicas: np.ndarray) -> bool:
        """``set_replicas_rows(rows[picks], replicas)`` in one compiled pass, when the queue is
        empty and the picked rows (K,) are distinct and ``exists`` (True: queued, the common cycle);
        False, nothing queued, when one does not exist or the kernels are off. ``rows``,
        ``exists`` (N,): a target list's rows (rows_of), ``picks`` (K,) int64 positions in it."""
        if self.has_queued():
            return False
        got = queue_compiled.try_distinct_rows(rows, exists, picks, self._row_seen)
        if got is None:
            return False
        if got is queue_compiled.REPEATED:
            self.set_replicas_rows(rows[picks], replicas)
        else:
            self._queue_rows(got, np.asarray(replicas, np.int64))
        return True

    def _queue_rows(self, rows: np.ndarray, replicas: np.ndarray) -> None:
        """Queue distinct ``rows`` (K,) int64 at ``replicas`` (K,) int64 on an empty queue."""
        if rows.size:
            self._queued_rows = (rows, replicas)

    def has_queued(self) -> bool:
        """Whether a replica change is queued."""
        return self._queued_rows is not None or bool(self._queued_replicas)

    def take_queued(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The queued changes as (rows, replicas) (K,) int64 in order, the queue emptied; None if empty."""
        if self._queued_rows is not None:
            taken, self._queued_rows = self._queued_rows, None
            return taken
        if not self._queued_replicas:
            return None
        queued, self._queued_replicas = self._queued_replicas, {}
        return np.fromiter(queued.keys(), np.int64, len(queued)), np.fromiter(queued.values(), np.int64, len(queued))

    def requeue(self, taken: tuple[np.ndarray, np.ndarray]) -> None:
        """Put back what :meth:`take_queued` took (a run of ticks that failed: nothing applied), on
        the queue it left empty: distinct rows in order, as arrays."""
        self._queued_rows = taken

    def _flush(self) -> None:
        """Apply the queued set_replicas calls (at ``self.now``) as one vectorized scale."""
        if self._queued_rows is not None or self._queued_replicas:
            self._scale(*self.take_queued(), self.now)

    def delete_pod(self, i: int, name: str, now: float | None = None, grace_s: float | None = None) -> None:
        """Delete pod ``name`` of service ``i``; its ReplicaSet recreates it (Pending, same
        revision, new name). Counts one restart of the workload. NotFound if no such pod.
        A StatefulSet's pod terminates for ``grace_s`` (default its revision's grace) before the
        StatefulSet controller recreates it under its name (:mod:`.statefulsets`)."""
        self._flush()
        now = self.now if now is None else now
        slot = self._slot_of(i, name)
        revision_seq, sticky = int(self._pod_revision_seq[i, slot]), int(self._pod_sticky[i, slot])
        if self._ordered[i]:  # the StatefulSet controller recreates it, same ordinal, in order, once gone
            if sticky >= 0:
                self._keep_sticky_ordinal(i, slot)
            self._sts_delete(i, slot, now, grace_s)
            self._restarts_total[i] += 1
            self._sts_due(i)
            self._sync_statefulset(i, now)
            return
        self._clear_slots(np.array([i]), np.array([i * self.K + slot]), now)
        self._restarts_total[i] += 1
        self._create_pods(np.array([i]), np.array([1]), now, np.array([revision_seq]))
        if sticky >= 0:  # a poison node or volume: its replacement hangs too
            self._stick_to_newest(i, sticky)
        self._refresh(np.array([i]))
