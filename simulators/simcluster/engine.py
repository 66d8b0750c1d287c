"""The vectorized engine: per-service constants, aggregates of the pod slots, and each tick's signals.

Per-service aggregates (ready capacity, error weight, next event time, ...) are ``(S,)``
arrays: primaries recomputed only for the rows that changed (``_refresh``), derived terms of
the queueing model once per tick when anything changed (``_derive``, compiled by
:mod:`simulators.engine_compiled` when numba is on). Rows whose pods all share one revision's
properties are summed without per-pod weights; a row becomes "mixed" during a rollout to
different properties or when a pod degrades. ``step`` advances the cluster one tick.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators import engine_compiled
from simulators import queueing as Q
from simulators.signals import ObservedSignals, TickSignals, observed, observed_unfaulted, snapshot_metrics
from simulators.simcluster.slots import BACKOFF, EMPTY, INF, READY, STARTING, config_array
from simulators.workload import ServiceConfig


class QueueingEngine:
    """SimCluster's per-tick model (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_config(self, services: Sequence[ServiceConfig]) -> None:
        S = self.n_services = len(services)
        c = lambda attr, dtype=np.float64: config_array(services, attr, dtype)  # noqa: E731
        self._mu, self._sched, self._startup = c("capacity_rps"), c("scheduling_delay_s"), c("startup_delay_s")
        self._L0, self._timeout = c("base_latency_s"), c("timeout_s")
        self._L0x2 = 2.0 * self._L0
        self._queue_limit = np.array([s.queue_limit if s.overload == "queue" else 0.0 for s in services])
        self._any_queue = any(s.overload == "queue" for s in services)
        self._cpu100 = 100.0 * np.array([s.cpu_ratio for s in services])
        self._mem_base, self._mem_soft, self._mem_limit = c("memory_base_mib"), c("memory_soft_limit_mib"), c("memory_limit_mib")
        self._degrade_first = self._mem_soft < self._mem_limit
        self._deg_ratio, self._deg_extra = c("degraded_capacity_ratio"), c("degraded_extra_latency_s")
        self._max_pods, self._slots = c("max_pods", np.int64), np.array([s.slots for s in services], dtype=np.int64)
        tails = np.array([s.latency_tail_ratios for s in services], dtype=np.float64)
        self._base_q = np.ascontiguousarray((self._L0[:, None] * tails).T)  # (3, S)
        self.K = K = int(self._slots.max())
        self._slot_ok = np.arange(K)[None, :] < self._slots[:, None]
        self._row_offsets = np.arange(S, dtype=np.int64) * K  # reduceat offsets of a (R, K) block
        self._capacity = self.config.pod_capacity
        self._zeros = np.zeros(S)
        self._zeros.flags.writeable = False
        self._no_mask = np.zeros(S, dtype=bool)
        self._no_mask.flags.writeable = False

    def _init_aggregates(self) -> None:
        S = self.n_services
        self._backlog = np.zeros(S)
        self._last: TickSignals | None = None
        self._lat_p95_base: np.ndarray | None = None
        # primary aggregates (from pod slots, by _refresh) and derived ones (from primaries, by _derive)
        self._n_pods, self._n_ready, self._n_sched, self._n_running = (np.zeros(S, dtype=np.int64) for _ in range(4))
        self._cap, self._err_w, self._bad_cap, self._extra_w = np.zeros(S), np.zeros(S), np.zeros(S), np.zeros(S)
        self._next_event = np.full(S, INF)
        self._anchor_sum = np.zeros(S)  # Σ leak anchors of running pods (leaking services only)
        self._safe_cap, self._err, self._exponent = np.full(S, Q.TINY_RPS), np.zeros(S), np.zeros(S)
        self._util_scale, self._mem_idle, self._zero_cap = np.zeros(S), np.zeros(S), np.zeros(S, dtype=bool)
        self._extra_q = np.zeros((3, S))
        self._next_min = INF
        self._any_bad = self._any_zero_cap = False
        self._extra_rows: list[np.ndarray] = []  # rows whose bad-pod terms need recomputing
        self._dirty = True

    def _refresh(self, rows: np.ndarray) -> None:
        """Recompute the primary aggregates of ``rows`` from their pod slots.

        ``_n_pods`` is kept exact by ``_create`` / ``_clear_slots`` and not recomputed here.
        """
        R = rows.size
        if R == 0:
            return
        ph = self._p_phase[rows]
        offsets = self._row_offsets[:R]
        ready = ph == READY
        n_ready = np.count_nonzero(ready, axis=1)
        self._n_ready[rows] = n_ready
        scheduled = np.count_nonzero(ph >= STARTING, axis=1)
        self._n_sched[rows] = scheduled
        # running = scheduled minus backed-off; no pod backs off before a crash-looping revision exists
        self._n_running[rows] = scheduled - np.count_nonzero(ph == BACKOFF, axis=1) if self._any_crash else scheduled
        mixed = self._row_mixed[rows]
        uniform = rows
        if mixed.any():  # some rows hold pods that differ: sum per pod
            self._refresh_weighted(rows[mixed], ready[mixed], offsets[:int(mixed.sum())])
            uniform, n_ready = rows[~mixed], n_ready[~mixed]
        # uniform rows: every ready pod has the same capacity, error ratio and extra latency
        cap = n_ready * self._mu[uniform]
        self._cap[uniform] = cap
        self._err_w[uniform] = cap * self._row_err[uniform]
        if self._any_xlat:
            xlat = self._row_xlat[uniform]
            touched = (xlat > 0) | (self._bad_cap[uniform] > 0)
            if touched.any():
                self._bad_cap[uniform] = np.where(xlat > 0, cap, 0.0)
                self._extra_w[uniform] = cap * xlat
                self._extra_rows.append(uniform[touched])
        until = self._p_until[rows]
        if self._any_leak:
            np.minimum(until, self._p_leak_at[rows], out=until)
            running = (ph == STARTING) | ready
            anchor = np.maximum(self._p_started[rows], self._leak_start[rows, None])
            self._anchor_sum[rows] = np.add.reduceat(np.where(running, anchor, 0.0).ravel(), offsets)
        self._next_event[rows] = np.minimum.reduceat(until.ravel(), offsets)
        self._next_min = float(self._next_event.min())  # step() compares one float with now
        self._dirty = True

    def _refresh_weighted(self, rows: np.ndarray, ready: np.ndarray, offsets: np.ndarray) -> None:
        """Capacity, error and extra-latency sums per pod, for rows whose pods differ (degraded
        pods, revisions with other properties during a rollout)."""
        mu = self._mu[rows, None]
        if self._any_degraded:
            degraded = self._p_degraded[rows]
            pod_cap = np.where(degraded, self._deg_ratio[rows, None], 1.0) * mu
        else:
            pod_cap = np.broadcast_to(mu, ready.shape)
        ready_cap = np.where(ready, pod_cap, 0.0)
        self._cap[rows] = np.add.reduceat(ready_cap.ravel(), offsets)
        self._err_w[rows] = np.add.reduceat((ready_cap * self._p_err[rows]).ravel(), offsets)
        if self._any_xlat:
            extra = self._p_xlat[rows]
            if self._any_degraded:
                extra = extra + np.where(degraded, self._deg_extra[rows, None], 0.0)
            bad_cap = np.where(extra > 0, ready_cap, 0.0)
            self._bad_cap[rows] = np.add.reduceat(bad_cap.ravel(), offsets)
            self._extra_w[rows] = np.add.reduceat((bad_cap * extra).ravel(), offsets)
            self._extra_rows.append(rows)  # capacity changed: the bad-pod shares may have too

    def _recheck_uniform(self, rows: np.ndarray) -> None:
        """Mark ``rows`` uniform again where every pod has the current revision's properties
        and none is degraded (after a rollout completes or a leak ends)."""
        live = self._p_phase[rows] != EMPTY
        differ = ((self._p_err[rows] != self._cur_err[rows, None]) | (self._p_xlat[rows] != self._cur_xlat[rows, None])
                  | self._p_degraded[rows])
        uniform = ~(live & differ).any(axis=1)
        done = rows[uniform]
        self._row_err[done], self._row_xlat[done] = self._cur_err[done], self._cur_xlat[done]
        self._row_mixed[rows] = ~uniform

    def _derive(self) -> None:
        """Recompute the quantities the queueing model needs from the primaries, for all rows
        (same formulas as :mod:`simulators.queueing`, in fewer operations)."""
        if not engine_compiled.derive(self):  # the compiled loop, else numpy
            self._derive_numpy()
        if self._extra_rows:  # bad-pod latency terms of the rows whose bad capacity changed
            rows = np.unique(np.concatenate(self._extra_rows))
            self._extra_rows = []
            self._extra_q[:, rows] = Q.bad_pod_extra(self._bad_cap[rows], self._extra_w[rows], self._safe_cap[rows])
            self._any_bad = bool(self._bad_cap.any())
        self._dirty = False

    def _derive_numpy(self) -> None:
        cap, safe = self._cap, self._safe_cap
        np.maximum(cap, Q.TINY_RPS, out=safe)
        np.divide(self._err_w, safe, out=self._err)
        # waiting_exponent(server_count(C, L0)) = sqrt(2 max(C L0, 1) + 2) - 1, bit for bit
        servers2 = cap * self._L0x2
        np.maximum(servers2, 2.0, out=servers2)
        servers2 += 2.0
        np.sqrt(servers2, out=servers2)
        servers2 -= 1.0
        self._exponent = servers2
        util = np.divide(self._cpu100, safe)
        util[self._n_ready == 0] = np.nan  # no ready pod: no utilization series
        self._util_scale = util
        self._mem_idle = np.where(self._n_running > 0, self._mem_base, 0.0)
        np.equal(cap, 0.0, out=self._zero_cap)
        self._any_zero_cap = bool(self._zero_cap.any())

    def step(self, now: float, dt_s: float, offered_rps: np.ndarray) -> TickSignals:
        """Advance to ``now`` (epoch s) and return the truth of the tick of length ``dt_s`` (s).

        ``offered_rps``: (S,) requests/s offered to each service during the tick.
        The returned arrays are fresh (safe to keep), except ``queue_length`` in a cluster
        without queue-mode services, which is a shared read-only array of zeros.
        """
        self._flush()
        self.now = now
        if now >= self._next_fault_s:
            self._apply_fault_events(now)
        if now >= self._next_min:  # kept exact by _refresh and _create
            self._advance_lifecycles(now)
        if self._rolling_rows:
            for i in list(self._rolling_rows):
                if not self._paused[i]:
                    self._progress_rollout(i, now)
        if self._dirty:
            self._derive()
        sig = self._compute_signals(now, dt_s, np.asarray(offered_rps, dtype=np.float64))
        if self._freeze_pending:
            snapshot_metrics(sig, np.array(self._freeze_pending), self._frozen)
            self._freeze_pending = []
        self._last = sig
        return sig

    def _compute_signals(self, now: float, dt_s: float, lam: np.ndarray) -> TickSignals:
        compiled = engine_compiled.compute_signals(self, now, dt_s, lam)  # one compiled loop, or None: numpy
        if compiled is not None:
            return compiled
        cap, safe = self._cap, self._safe_cap
        if self._any_queue:
            served, dropped, backlog = Q.serve(lam, cap, self._backlog, dt_s, self._queue_limit)
            self._backlog = backlog
            backlog_wait = backlog / safe
        else:
            served, dropped = Q.serve_drop(lam, cap)
            backlog, backlog_wait = self._zeros, None
        waits = Q.waiting_quantiles(served, safe, self._exponent)
        no_capacity_demand = None
        if self._any_zero_cap:
            mask = self._zero_cap & ((lam > 0) | (backlog > 0))
            no_capacity_demand = mask if mask.any() else None
        lat = Q.latency_quantiles(self._base_q, waits, self._extra_q if self._any_bad else None,
                                  backlog_wait, self._timeout, no_capacity_demand)
        errors, ratio = Q.error_ratio(served, dropped, self._err)
        # a pod's own p95 without any bad pod's extra latency (pod_signals adds the pod's own)
        self._lat_p95_base = lat[1] - (self._extra_q[1] if self._any_bad else 0.0)
        return TickSignals(
            now, lam, served, dropped, backlog, cap.copy(), served * self._util_scale,
            lat[0], lat[1], lat[2], errors, ratio,
            self._memory(now) if self._any_leak else self._mem_idle.copy(),
            self._n_ready.copy(), self._spec.copy(), self._n_pods.copy(),
            self._restarts_total.copy(), self._revision_number.copy(), self._rolling.copy())

    def _memory(self, now: float) -> np.ndarray:
        """Mean working set (MiB) of running pods: base + rate * (now - mean leak anchor).

        A running pod's anchor (its container start or the leak start, whichever is later) is
        never after ``now``, so the mean of per-pod memory is the memory at the mean anchor.
        """
        n = np.maximum(self._n_running, 1)
        mem = self._mem_base + self._leak_rate * (now - self._anchor_sum / n)
        return np.where(self._n_running > 0, mem, 0.0)

    def signals(self, now: float | None = None) -> ObservedSignals:
        """The last tick's signals as a metrics source sees them: NaN under an outage or a NaN
        fault, frozen when stale, with the ``unavailable`` / ``stale`` / ``nonfinite`` masks.
        Reflects the state of the last :meth:`step` (``now`` is accepted for symmetry)."""
        if self._last is None:
            raise RuntimeError("signals() before the first step()")
        if self._metric_faults == 0:  # the common case, once per tick in the runner: no copies
            return observed_unfaulted(self._last, self._no_mask, self._zeros)
        return observed(self._last, self._outage > 0, self._stale > 0, self._nan > 0, self._frozen, self._stale_since)

    @property
    def last(self) -> TickSignals | None:
        """The truth of the last tick."""
        return self._last
