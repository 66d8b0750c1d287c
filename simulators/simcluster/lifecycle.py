"""Pod lifecycles over time: scheduling, startup, readiness, crash loops and back-off, memory thresholds.

Only the rows with a due event are read (``_next_event``, kept by the engine's ``_refresh``).
"""

from __future__ import annotations

import numpy as np

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
            rows = np.flatnonzero(self._next_event <= now)
            if rows.size == 0:
                return
            self._lifecycle_round(rows, now)
            self._refresh(rows)
        raise RuntimeError(f"pod lifecycles did not settle at t={now}")

    def _lifecycle_round(self, rows: np.ndarray, now: float) -> None:
        rr, g, t = self._due_slots(rows, self._p_until[rows], now)
        if self._capacity is None and not self._any_crash and not self._any_leak:
            self._simple_round(rr, g, t, now)
            return
        if g.size:
            ph = self._f_phase[g]
            starting = ph == STARTING
            b_rr, b_g, b_t = rr[starting], g[starting], t[starting]
            pending = ph == PENDING
            if pending.any():
                a_rr, a_g = self._schedule(rr[pending], g[pending], t[pending], now)
                a_until = self._f_until[a_g]
                chain = a_until <= now  # scheduled and already through the startup delay
                if chain.any():
                    b_rr, b_g = np.concatenate((b_rr, a_rr[chain])), np.concatenate((b_g, a_g[chain]))
                    b_t = np.concatenate((b_t, a_until[chain]))
            backoff = ph == BACKOFF
            c_rr, c_g, c_t = rr[backoff], g[backoff], t[backoff]
            if b_g.size:
                cr, cg, ct = self._finish_starts(b_rr, b_g, b_t)
                chain = ct <= now  # crashed and already through the backoff
                if chain.any():
                    c_rr, c_g = np.concatenate((c_rr, cr[chain])), np.concatenate((c_g, cg[chain]))
                    c_t = np.concatenate((c_t, ct[chain]))
            if c_g.size:
                self._start_containers(c_rr, c_g, c_t)
        if self._any_leak:
            self._leak_events(rows, now)

    def _simple_round(self, rr: np.ndarray, g: np.ndarray, t: np.ndarray, now: float) -> None:
        """The round without node capacity, crash loops or leaks (the common case), fused:
        due Pending pods start at their due time t and are ready at t + startup if that has
        passed too; due Starting pods are ready at their due time. Same result as the general
        round, in fewer array operations."""
        pending = self._f_phase[g] == PENDING
        ready_at = np.where(pending, t + self._startup[rr], t)
        ready = ready_at <= now
        self._f_started[g[pending]] = t[pending]
        self._f_phase[g] = np.where(ready, READY, STARTING)
        self._f_until[g] = np.where(ready, INF, ready_at)
        self._f_transition[g[ready]] = ready_at[ready]

    def _schedule(self, rr: np.ndarray, g: np.ndarray, t: np.ndarray, now: float):
        """Give due Pending pods a node while capacity lasts, in (due time, creation, service,
        serial) order; park the rest. Returns the (rows, slots) started."""
        if self._capacity is not None:
            free = self._capacity - self._capacity_lost - int(self._n_sched.sum())
            if free < g.size:
                order = np.lexsort((self._f_serial[g], rr, self._f_created[g], t))
                park = order[max(free, 0):]
                self._f_until[g[park]] = INF  # parked until capacity frees
                self._n_parked += park.size
                keep = np.sort(order[:max(free, 0)])
                rr, g, t = rr[keep], g[keep], t[keep]
        self._start_containers(rr, g, t)
        return rr, g

    def _finish_starts(self, rr: np.ndarray, g: np.ndarray, t: np.ndarray):
        """Starting pods through their startup delay get ready, or crash into backoff if
        their revision crash-loops. Returns the crashed (rows, slots, backoff end times)."""
        if self._any_crash:
            crash = self._f_crash[g]
            if crash.any():
                cr, cg, ct = rr[crash], g[crash], t[crash]
                self._f_restarts[cg] += 1
                np.add.at(self._restarts_total, cr, 1)
                self._f_phase[cg] = BACKOFF
                ends = ct + backoff_s(self._f_restarts[cg])
                self._f_until[cg] = ends
                self._f_leak_at[cg] = INF
                self._f_degraded[cg] = False
                ok = ~crash
                self._mark_ready(g[ok], t[ok])
                return cr, cg, ends
        self._mark_ready(g, t)
        return rr[:0], g[:0], t[:0]

    def _mark_ready(self, g: np.ndarray, t: np.ndarray) -> None:
        self._f_phase[g] = READY
        self._f_until[g] = INF
        self._f_transition[g] = t

    def _leak_events(self, rows: np.ndarray, now: float) -> None:
        rr, g, t = self._due_slots(rows, self._p_leak_at[rows], now)
        if g.size == 0:
            return
        ph = self._f_phase[g]
        running = (ph == STARTING) | (ph == READY)
        rr, g, t = rr[running], g[running], t[running]
        degrade = ~self._f_degraded[g] & self._degrade_first[rr]
        if degrade.any():
            dr, dg = rr[degrade], g[degrade]
            self._any_degraded = True
            self._any_xlat = self._any_xlat or bool((self._deg_extra[dr] > 0).any())
            self._f_degraded[dg] = True
            self._f_leak_at[dg] = self._leak_next(dr, dg)
            self._row_mixed[dr] = True
        oom = ~degrade
        if oom.any():
            self._restart_containers(rr[oom], g[oom], t[oom])

    def _start_containers(self, rr: np.ndarray, g: np.ndarray, t: np.ndarray) -> None:
        """(Re)start containers at times t: Starting until t + startup delay, memory reset."""
        was_ready = self._f_phase[g] == READY
        if was_ready.any():
            self._f_transition[g[was_ready]] = t[was_ready]
        self._f_phase[g] = STARTING
        self._f_started[g] = t
        self._f_until[g] = t + self._startup[rr]
        if self._any_degraded:
            self._f_degraded[g] = False
        if self._any_leak:
            self._f_leak_at[g] = self._leak_next(rr, g)

    def _restart_containers(self, rr: np.ndarray, g: np.ndarray, t: np.ndarray) -> None:
        self._f_restarts[g] += 1
        np.add.at(self._restarts_total, rr, 1)
        self._start_containers(rr, g, t)

    def _leak_next(self, rr: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Next memory threshold time of running pods (soft limit first, then the limit)."""
        rate = self._leak_rate[rr]
        ph = self._f_phase[g]
        active = (rate > 0) & ((ph == STARTING) | (ph == READY))
        if not active.any():
            return np.full(rr.size, INF)
        anchor = np.maximum(self._f_started[g], self._leak_start[rr])
        degrade_first = ~self._f_degraded[g] & self._degrade_first[rr]
        threshold = np.where(degrade_first, self._mem_soft[rr], self._mem_limit[rr])
        at = anchor + (threshold - self._mem_base[rr]) / np.where(active, rate, 1.0)
        return np.where(active, at, INF)

    def _unpark(self, now: float) -> None:
        """Capacity freed: parked Pending pods try again at ``now``."""
        if self._n_parked == 0:
            return
        parked = (self._p_phase == PENDING) & (self._p_until == INF)
        self._p_until[parked] = now
        self._n_parked = 0
        self._refresh(np.flatnonzero(parked.any(axis=1)))
