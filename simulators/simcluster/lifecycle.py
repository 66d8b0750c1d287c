"""Pod lifecycles over time: scheduling, startup, readiness, crash loops and back-off, memory thresholds.

Under a readiness outage (:class:`simulators.faults.ReadinessOutage`) or a failed readiness
probe (:mod:`.readiness_probe`) a pod through its start-up is not marked Ready but held:
Starting with no end (phase end INF), released by the fault's end or the probe's success.

Only the rows with a due event are read (``_next_event_s``, kept by the engine's ``_refresh``).
"""

from __future__ import annotations

import numpy as np

from simulators.simcluster import pods_compiled
from simulators.simcluster.slots import BACKOFF, INF, PENDING, READY, STARTING, backoff_s

MAX_LIFECYCLE_ROUNDS = 10_000


class PodLifecycle:
    """SimCluster's pod phase transitions (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _advance_lifecycles(self, now: float) -> None:
        """Apply every pod event due at ``now``, at its own event time, until none is left.

        One round (same order as ReferenceCluster.advance_lifecycles): (a) due Pending pods
        get a node while capacity lasts; (b) due Starting pods, including those just
        scheduled, get ready or crash; (c) due backed-off pods, including those that just
        crashed, start again; (d) due memory thresholds. Only rows with a due event are read.
        """
        for _ in range(MAX_LIFECYCLE_ROUNDS):
            rows = np.flatnonzero(self._next_event_s <= now)
            if rows.size == 0:
                return
            self._lifecycle_round(rows, now)
            self._refresh(rows)
        raise RuntimeError(f"pod lifecycles did not settle at now={now}")

    def _lifecycle_round(self, rows: np.ndarray, now: float) -> None:
        simple = (self._node_capacity_pods is None and not self._any_crash_loop and not self._any_leak
                  and not self._any_readiness_down and not self._any_sticky)
        if simple and pods_compiled.simple_round(self, rows, now):
            return
        pod_rows, flat, at_s = self._due_slots(rows, self._pod_phase_end_s[rows], now)
        if simple:
            self._simple_round(pod_rows, flat, at_s, now)
            return
        if flat.size:
            phase = self._flat_phase[flat]
            starting = phase == STARTING
            start_rows, start_flat, start_at_s = pod_rows[starting], flat[starting], at_s[starting]
            pending = phase == PENDING
            if pending.any():
                scheduled_rows, scheduled_flat = self._schedule(pod_rows[pending], flat[pending], at_s[pending], now)
                scheduled_end_s = self._flat_phase_end_s[scheduled_flat]
                chain = scheduled_end_s <= now  # scheduled and already through the startup delay
                if chain.any():
                    start_rows = np.concatenate((start_rows, scheduled_rows[chain]))
                    start_flat = np.concatenate((start_flat, scheduled_flat[chain]))
                    start_at_s = np.concatenate((start_at_s, scheduled_end_s[chain]))
            backoff = phase == BACKOFF
            restart_rows, restart_flat, restart_at_s = pod_rows[backoff], flat[backoff], at_s[backoff]
            if start_flat.size:
                crashed_rows, crashed_flat, backoff_end_s = self._finish_starts(start_rows, start_flat, start_at_s)
                chain = backoff_end_s <= now  # crashed and already through the backoff
                if chain.any():
                    restart_rows = np.concatenate((restart_rows, crashed_rows[chain]))
                    restart_flat = np.concatenate((restart_flat, crashed_flat[chain]))
                    restart_at_s = np.concatenate((restart_at_s, backoff_end_s[chain]))
            if restart_flat.size:
                self._start_containers(restart_rows, restart_flat, restart_at_s)
        if self._any_leak:
            self._leak_events(rows, now)

    def _simple_round(self, pod_rows: np.ndarray, flat: np.ndarray, at_s: np.ndarray, now: float) -> None:
        """The round without node capacity, crash loops, leaks or readiness outages (the common
        case), fused: due Pending pods start at their due time at_s and are ready at at_s +
        startup if that has passed too; due Starting pods are ready at their due time. Same
        result as the general round, in fewer array operations."""
        pending = self._flat_phase[flat] == PENDING
        ready_at = np.where(pending, at_s + self._startup_delay_s[pod_rows], at_s)
        ready = ready_at <= now
        self._flat_started_s[flat[pending]] = at_s[pending]
        self._flat_phase[flat] = np.where(ready, READY, STARTING)
        self._flat_phase_end_s[flat] = np.where(ready, INF, ready_at)
        self._flat_ready_transition_s[flat[ready]] = ready_at[ready]

    def _schedule(self, pod_rows: np.ndarray, flat: np.ndarray, at_s: np.ndarray, now: float):
        """Give due Pending pods a node while capacity lasts, in (due time, creation, service,
        serial) order; park the rest. Returns the (rows, slots) started."""
        if self._node_capacity_pods is not None:
            free = self._node_capacity_pods - self._capacity_lost - int(self._n_scheduled.sum())
            if free < flat.size:
                order = np.lexsort((self._flat_serial[flat], pod_rows, self._flat_created_s[flat], at_s))
                park = order[max(free, 0):]
                self._flat_phase_end_s[flat[park]] = INF  # parked until capacity frees
                self._n_parked_pods += park.size
                keep = np.sort(order[:max(free, 0)])
                pod_rows, flat, at_s = pod_rows[keep], flat[keep], at_s[keep]
        self._start_containers(pod_rows, flat, at_s)
        return pod_rows, flat

    def _finish_starts(self, pod_rows: np.ndarray, flat: np.ndarray, at_s: np.ndarray):
        """Starting pods through their startup delay get ready, or crash into backoff if
        their revision crash-loops. Returns the crashed (rows, slots, backoff end times)."""
        if self._any_crash_loop:
            crash = self._flat_crash_loops[flat]
            if crash.any():
                crashed_rows, crashed_flat, crashed_at_s = pod_rows[crash], flat[crash], at_s[crash]
                self._flat_restarts[crashed_flat] += 1
                np.add.at(self._restarts_total, crashed_rows, 1)
                self._flat_phase[crashed_flat] = BACKOFF
                backoff_end_s = crashed_at_s + backoff_s(self._flat_restarts[crashed_flat])
                self._flat_phase_end_s[crashed_flat] = backoff_end_s
                self._flat_memory_threshold_s[crashed_flat] = INF
                self._flat_degraded[crashed_flat] = False
                ok = ~crash
                self._mark_ready(flat[ok], at_s[ok])
                return crashed_rows, crashed_flat, backoff_end_s
        self._mark_ready(flat, at_s)
        return pod_rows[:0], flat[:0], at_s[:0]

    def _mark_ready(self, flat: np.ndarray, at_s: np.ndarray) -> None:
        """Pods through their start-up get Ready at ``at_s``, except under a readiness outage of
        their service or a failed readiness probe: those stay Starting with no end (held) until
        it ends, and those a sticky pod hang keeps hung (held, hung)."""
        if self._any_sticky:
            keep = self._hang_sticky(flat)
            flat, at_s = flat[keep], at_s[keep]
        if self._any_readiness_down:
            held = self._readiness_held[flat // self.K]
            if held.any():
                self._flat_phase[flat[held]] = STARTING
                self._flat_phase_end_s[flat[held]] = INF
                flat, at_s = flat[~held], at_s[~held]
        self._flat_phase[flat] = READY
        self._flat_phase_end_s[flat] = INF
        self._flat_ready_transition_s[flat] = at_s

    def _leak_events(self, rows: np.ndarray, now: float) -> None:
        pod_rows, flat, at_s = self._due_slots(rows, self._pod_memory_threshold_s[rows], now)
        if flat.size == 0:
            return
        phase = self._flat_phase[flat]
        running = (phase == STARTING) | (phase == READY)
        pod_rows, flat, at_s = pod_rows[running], flat[running], at_s[running]
        degrade = ~self._flat_degraded[flat] & self._degrade_first[pod_rows]
        if degrade.any():
            degrade_rows, degrade_flat = pod_rows[degrade], flat[degrade]
            self._any_degraded = True
            adds_latency = bool((self._degraded_extra_latency_s[degrade_rows] > 0).any())
            self._any_extra_latency = self._any_extra_latency or adds_latency
            self._flat_degraded[degrade_flat] = True
            self._flat_memory_threshold_s[degrade_flat] = self._leak_next(degrade_rows, degrade_flat)
            self._row_mixed[degrade_rows] = self._any_mixed = True
        oom = ~degrade
        if oom.any():
            self._restart_containers(pod_rows[oom], flat[oom], at_s[oom])

    def _start_containers(self, pod_rows: np.ndarray, flat: np.ndarray, at_s: np.ndarray) -> None:
        """(Re)start containers at times at_s: Starting until at_s + startup delay, memory reset."""
        was_ready = self._flat_phase[flat] == READY
        if was_ready.any():
            self._flat_ready_transition_s[flat[was_ready]] = at_s[was_ready]
        self._flat_phase[flat] = STARTING
        self._flat_started_s[flat] = at_s
        self._flat_phase_end_s[flat] = at_s + self._startup_delay_s[pod_rows]
        if self._any_degraded:
            self._flat_degraded[flat] = False
        if self._any_hung:  # a new process: the hang is over
            self._flat_hung[flat] = False
        if self._any_leak:
            self._flat_memory_threshold_s[flat] = self._leak_next(pod_rows, flat)

    def _restart_containers(self, pod_rows: np.ndarray, flat: np.ndarray, at_s: np.ndarray) -> None:
        self._flat_restarts[flat] += 1
        np.add.at(self._restarts_total, pod_rows, 1)
        self._start_containers(pod_rows, flat, at_s)

    def _leak_next(self, pod_rows: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """Next memory threshold time of running pods (soft limit first, then the limit)."""
        rate = self._leak_rate_mib_per_s[pod_rows]
        phase = self._flat_phase[flat]
        active = (rate > 0) & ((phase == STARTING) | (phase == READY))
        if not active.any():
            return np.full(pod_rows.size, INF)
        anchor = np.maximum(self._flat_started_s[flat], self._leak_start_s[pod_rows])
        degrade_first = ~self._flat_degraded[flat] & self._degrade_first[pod_rows]
        threshold = np.where(degrade_first, self._memory_soft_limit_mib[pod_rows], self._memory_limit_mib[pod_rows])
        threshold_at_s = anchor + (threshold - self._memory_base_mib[pod_rows]) / np.where(active, rate, 1.0)
        return np.where(active, threshold_at_s, INF)

    def _unpark(self, now: float) -> None:
        """Capacity freed: parked Pending pods try again at ``now``."""
        if self._n_parked_pods == 0:
            return
        parked = (self._pod_phase == PENDING) & (self._pod_phase_end_s == INF)
        self._pod_phase_end_s[parked] = now
        self._n_parked_pods = 0
        self._refresh(np.flatnonzero(parked.any(axis=1)))
