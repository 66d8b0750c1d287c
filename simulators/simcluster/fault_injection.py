"""Applying :mod:`simulators.faults` to the cluster at their start and end times.

Pod crashes, bad or crash-looping rollouts, node loss (capacity and victims), memory leaks, and
metric faults (outage, stale, NaN: counters read by ``signals``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators import faults as F
from simulators.signals import empty_frozen, snapshot_metrics
from simulators.simcluster.slots import EMPTY, READY, STARTING


class FaultInjection:
    """SimCluster's fault effects (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_faults(self, faults: Sequence[F.Fault]) -> None:
        S = self.n_services
        self._timeline = F.FaultTimeline(faults)
        self._next_fault_s = self._timeline.next_s
        self._capacity_lost = 0
        # Fast-path switches (see _init_revisions)
        self._any_degraded = False  # some pod was degraded by a memory leak
        self._any_leak = False  # a memory leak is active
        self._leak_rate, self._leak_start = np.zeros(S), np.zeros(S)
        self._leak_fault = np.full(S, -1, dtype=np.int64)
        self._metric_faults = 0  # rows under an active metric fault, counted per fault
        self._outage, self._stale, self._nan = (np.zeros(S, dtype=np.int64) for _ in range(3))
        self._frozen = empty_frozen(S)
        self._stale_since = np.zeros(S)
        self._freeze_pending: list[int] = []

    def _apply_fault_events(self, now: float) -> None:
        for event in self._timeline.pop_due(now):
            self._apply_fault(event, now)
        self._next_fault_s = self._timeline.next_s

    def _apply_fault(self, event: F.FaultEvent, now: float) -> None:
        f = event.fault
        rows = f.service_indices(self.index_of, self.n_services)
        if isinstance(f, F.PodCrash):
            self._pod_crash(rows, f.count, now)
        elif isinstance(f, (F.CrashLoopRollout, F.BadRollout)):
            for i in rows.tolist():
                self.rollout(i, f.revision_props(), now)
        elif isinstance(f, F.NodeLoss):
            self._node_loss(f, event.starts, now)
        elif isinstance(f, F.MemoryLeak):
            self._memory_leak(rows, f, event, now)
        else:
            self._metrics_fault(f, rows, event.starts)

    def _pod_crash(self, rows: np.ndarray, count: int, now: float) -> None:
        for i in rows.tolist():
            ph = self._p_phase[i]
            ks = np.flatnonzero((ph == STARTING) | (ph == READY))
            ks = ks[np.argsort(self._p_serial[i, ks], kind="stable")]
            victims = ks[F.choose_victims(self.rng, ks.size, count)]
            self._restart_containers(np.full(victims.size, i), i * self.K + victims, np.full(victims.size, now))
        self._refresh(rows)

    def _node_loss(self, f: F.NodeLoss, starts: bool, now: float) -> None:
        lost = self.config.lost_capacity(f.share_ratio)
        if not starts:
            self._capacity_lost -= lost
            self._n_parked = max(self._n_parked, 1)  # force a scan: capacity is back
            self._unpark(now)
            return
        self._capacity_lost += lost
        rr, kk = np.nonzero(self._p_phase >= STARTING)
        order = np.lexsort((self._p_serial[rr, kk], rr))  # canonical: service, then serial
        rr, kk = rr[order], kk[order]
        pick = F.choose_victims(self.rng, rr.size, F.node_loss_victim_count(f.share_ratio, rr.size))
        if pick.size == 0:
            return
        vr, vk = rr[pick], kk[pick]
        revs = self._p_rev[vr, vk]
        self._clear_slots(vr, vr * self.K + vk, now)
        for i, rev in zip(vr.tolist(), revs.tolist()):  # the ReplicaSets recreate them
            self._create(np.array([i]), np.array([1]), now, np.array([rev]))
        self._refresh(np.unique(vr))

    def _memory_leak(self, rows: np.ndarray, f: F.MemoryLeak, event: F.FaultEvent, now: float) -> None:
        if event.starts:
            self._leak_rate[rows], self._leak_start[rows], self._leak_fault[rows] = f.rate_mib_per_s, now, event.index
        else:
            rows = rows[self._leak_fault[rows] == event.index]
            self._leak_rate[rows], self._leak_fault[rows] = 0.0, -1
            self._p_degraded[rows] = False
            self._recheck_uniform(rows)
        self._any_leak = bool((self._leak_rate > 0).any())
        r, k = np.nonzero(self._p_phase[rows] != EMPTY)
        rr = rows[r]
        self._f_leak_at[rr * self.K + k] = self._leak_next(rr, rr * self.K + k)
        self._refresh(rows)

    def _metrics_fault(self, f: F.Fault, rows: np.ndarray, starts: bool) -> None:
        counter = {F.MetricsOutage: self._outage, F.StaleMetrics: self._stale, F.NaNMetrics: self._nan}[type(f)]
        if isinstance(f, F.StaleMetrics) and starts:
            fresh = rows[counter[rows] == 0]
            if self._last is not None:
                snapshot_metrics(self._last, fresh, self._frozen)
                self._stale_since[fresh] = self._last.at_s
            else:
                self._freeze_pending += fresh.tolist()
                self._stale_since[fresh] = self.now
        counter[rows] += 1 if starts else -1
        self._metric_faults += (1 if starts else -1) * rows.size
