"""The vectorized engine: per-service constants, aggregates of the pod slots, and each tick's signals.

Per-service aggregates (ready capacity, error weight, next event time, ...) are ``(S,)``
arrays: primaries recomputed only for the rows that changed (``_refresh``), derived terms of
the queueing model once per tick when anything changed (``_derive``, compiled by
:mod:`simulators.engine_compiled` when numba is on). Rows whose pods all share one revision's
properties are summed without per-pod weights; a row becomes "mixed" during a rollout to
different properties or when a pod degrades. ``step`` advances the cluster one tick;
``step_ticks`` a run of ticks in one compiled call.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from simulators import engine_compiled
from simulators import queueing as Q
from simulators.simcluster import pods_compiled, runs_compiled
from simulators.signals import ObservedSignals, TickSignals, observed, observed_unfaulted, snapshot_metrics
from simulators.simcluster.slots import BACKOFF, EMPTY, INF, READY, STARTING, config_array
from simulators.workload import ServiceConfig


class QueueingEngine:
    """SimCluster's per-tick model (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_config(self, services: Sequence[ServiceConfig]) -> None:
        S = self.n_services = len(services)
        column = lambda attr, dtype=np.float64: config_array(services, attr, dtype)  # noqa: E731
        self._pod_capacity_rps = column("capacity_rps")
        self._scheduling_delay_s, self._startup_delay_s = column("scheduling_delay_s"), column("startup_delay_s")
        self._base_latency_s, self._timeout_s = column("base_latency_s"), column("timeout_s")
        self._twice_base_latency_s = 2.0 * self._base_latency_s
        self._queue_limit = np.array([s.queue_limit if s.overload == "queue" else 0.0 for s in services])
        self._any_queue_mode = any(s.overload == "queue" for s in services)
        self._cpu_pct_at_capacity = 100.0 * np.array([s.cpu_ratio for s in services])
        self._memory_base_mib = column("memory_base_mib")
        self._memory_soft_limit_mib = column("memory_soft_limit_mib")
        self._memory_limit_mib = column("memory_limit_mib")
        self._degrade_first = self._memory_soft_limit_mib < self._memory_limit_mib
        self._degraded_capacity_ratio = column("degraded_capacity_ratio")
        self._degraded_extra_latency_s = column("degraded_extra_latency_s")
        self._max_pods, self._slot_count = column("max_pods", np.int64), column("slots", np.int64)
        tails = np.array([s.latency_tail_ratios for s in services], dtype=np.float64)
        self._base_latency_quantiles_s = np.ascontiguousarray((self._base_latency_s[:, None] * tails).T)  # (3, S)
        self.K = K = int(self._slot_count.max())
        self._slot_exists = np.arange(K)[None, :] < self._slot_count[:, None]
        self._row_offsets = np.arange(S, dtype=np.int64) * K  # reduceat offsets of a (R, K) block
        self._node_capacity_pods = self.config.pod_capacity
        self._zeros = np.zeros(S)
        self._zeros.flags.writeable = False
        self._no_mask = np.zeros(S, dtype=bool)
        self._no_mask.flags.writeable = False
        self._retry_ratio = column("retry_ratio")
        self._any_retries = bool((self._retry_ratio > 0).any())  # the default path skips retries entirely

    def _init_aggregates(self) -> None:
        S = self.n_services
        self._backlog = np.zeros(S)
        self._tick: TickSignals | None = None  # the last tick's truth (_last_tick), once made
        # or what makes it, when a run of ticks ended it and nobody read it yet (runs_compiled.run_ticks)
        self._tick_maker: Callable[[], TickSignals] | None = None
        self._stepped = False  # a tick was stepped (_last_tick is not None)
        # (a tick, its ready_replicas and restarts_total as floats): the copies a run of ticks made for
        # its sinks, which the metrics' view of that tick shares instead of converting the counts again
        self._count_floats: tuple[TickSignals, dict[str, np.ndarray]] | None = None
        self._p95_without_bad_pods_s: np.ndarray | None = None
        # primary aggregates (from pod slots, by _refresh) and derived ones (from primaries, by _derive)
        self._n_pods, self._n_ready = np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.int64)
        self._n_scheduled, self._n_running = np.zeros(S, dtype=np.int64), np.zeros(S, dtype=np.int64)
        self._ready_capacity_rps, self._error_weight = np.zeros(S), np.zeros(S)
        self._bad_capacity_rps, self._extra_latency_weight = np.zeros(S), np.zeros(S)
        self._next_event_s = np.full(S, INF)
        self._leak_anchor_sum_s = np.zeros(S)  # Σ leak anchors of running pods (leaking services only)
        self._safe_capacity_rps = np.full(S, Q.TINY_RPS)  # max(ready capacity, TINY_RPS): safe to divide by
        self._error_ratio, self._wait_exponent = np.zeros(S), np.zeros(S)
        self._utilization_per_rps, self._idle_memory_mib = np.zeros(S), np.zeros(S)
        self._zero_capacity = np.zeros(S, dtype=bool)
        self._bad_pod_latency_quantiles_s = np.zeros((3, S))
        self._next_event_min_s = INF
        self._any_bad_pods = self._any_zero_capacity = False
        self._bad_term_rows: list[np.ndarray] = []  # rows whose bad-pod terms need recomputing
        self._needs_derive = True

    @property
    def _last_tick(self) -> TickSignals | None:
        """The truth of the last tick (None before the first), made on first read after a run of
        ticks (most runs end at a control cycle that reads only the metrics' rings: their last
        tick's ~16 array views and TickSignals went unread)."""
        if self._tick_maker is not None:
            self._tick, self._tick_maker = self._tick_maker(), None
        return self._tick

    @_last_tick.setter
    def _last_tick(self, tick: TickSignals | None) -> None:
        self._tick, self._tick_maker, self._stepped = tick, None, tick is not None

    def _last_tick_made_by(self, maker: Callable[[], TickSignals]) -> None:
        """The last tick's truth is ``maker()``, called on first read (it must not depend on state
        that changes before the next tick: runs_compiled.run_ticks binds its arrays)."""
        self._tick, self._tick_maker, self._stepped = None, maker, True

    def _refresh(self, rows: np.ndarray) -> None:
        """Recompute the primary aggregates of ``rows`` from their pod slots.

        ``_n_pods`` is kept exact by ``_create_pods`` / ``_clear_slots`` and not recomputed here.
        """
        n_rows = rows.size
        if n_rows == 0 or pods_compiled.refresh(self, rows):  # the compiled loop for the common case
            return
        phase = self._pod_phase[rows]
        offsets = self._row_offsets[:n_rows]
        ready = phase == READY
        n_ready = np.count_nonzero(ready, axis=1)
        self._n_ready[rows] = n_ready
        scheduled = np.count_nonzero(phase >= STARTING, axis=1)
        self._n_scheduled[rows] = scheduled
        # running = scheduled minus backed-off; no pod backs off before a crash-looping revision exists
        backed_off = np.count_nonzero(phase == BACKOFF, axis=1) if self._any_crash_loop else 0
        self._n_running[rows] = scheduled - backed_off
        mixed = self._row_mixed[rows]
        uniform = rows
        if mixed.any():  # some rows hold pods that differ: sum per pod
            self._refresh_weighted(rows[mixed], ready[mixed], offsets[:int(mixed.sum())])
            uniform, n_ready = rows[~mixed], n_ready[~mixed]
        # uniform rows: every ready pod has the same capacity, error ratio and extra latency
        capacity = n_ready * self._pod_capacity_rps[uniform]
        self._ready_capacity_rps[uniform] = capacity
        self._error_weight[uniform] = capacity * self._uniform_error_ratio[uniform]
        if self._any_extra_latency:
            extra_latency_s = self._uniform_extra_latency_s[uniform]
            touched = (extra_latency_s > 0) | (self._bad_capacity_rps[uniform] > 0)
            if touched.any():
                self._bad_capacity_rps[uniform] = np.where(extra_latency_s > 0, capacity, 0.0)
                self._extra_latency_weight[uniform] = capacity * extra_latency_s
                self._bad_term_rows.append(uniform[touched])
        due_s = self._pod_phase_end_s[rows]
        if self._any_leak:
            np.minimum(due_s, self._pod_memory_threshold_s[rows], out=due_s)
            running = (phase == STARTING) | ready
            anchor = np.maximum(self._pod_started_s[rows], self._leak_start_s[rows, None])
            self._leak_anchor_sum_s[rows] = np.add.reduceat(np.where(running, anchor, 0.0).ravel(), offsets)
        self._next_event_s[rows] = np.minimum.reduceat(due_s.ravel(), offsets)
        self._next_event_min_s = float(self._next_event_s.min())  # step() compares one float with now
        self._needs_derive = True

    def _refresh_weighted(self, rows: np.ndarray, ready: np.ndarray, offsets: np.ndarray) -> None:
        """Capacity, error and extra-latency sums per pod, for rows whose pods differ (degraded
        pods, revisions with other properties during a rollout)."""
        pod_capacity = self._pod_capacity_rps[rows, None]
        if self._any_degraded:
            degraded = self._pod_degraded[rows]
            capacity = np.where(degraded, self._degraded_capacity_ratio[rows, None], 1.0) * pod_capacity
        else:
            capacity = np.broadcast_to(pod_capacity, ready.shape)
        ready_capacity = np.where(ready, capacity, 0.0)
        self._ready_capacity_rps[rows] = np.add.reduceat(ready_capacity.ravel(), offsets)
        self._error_weight[rows] = np.add.reduceat((ready_capacity * self._pod_error_ratio[rows]).ravel(), offsets)
        if self._any_extra_latency:
            extra = self._pod_extra_latency_s[rows]
            if self._any_degraded:
                extra = extra + np.where(degraded, self._degraded_extra_latency_s[rows, None], 0.0)
            bad_capacity = np.where(extra > 0, ready_capacity, 0.0)
            self._bad_capacity_rps[rows] = np.add.reduceat(bad_capacity.ravel(), offsets)
            self._extra_latency_weight[rows] = np.add.reduceat((bad_capacity * extra).ravel(), offsets)
            self._bad_term_rows.append(rows)  # capacity changed: the bad-pod shares may have too

    def _recheck_uniform(self, rows: np.ndarray) -> None:
        """Mark ``rows`` uniform again where every pod has the current revision's properties
        and none is degraded (after a rollout completes or a leak ends)."""
        live = self._pod_phase[rows] != EMPTY
        differ = ((self._pod_error_ratio[rows] != self._current_error_ratio[rows, None])
                  | (self._pod_extra_latency_s[rows] != self._current_extra_latency_s[rows, None])
                  | self._pod_degraded[rows])
        uniform = ~(live & differ).any(axis=1)
        done = rows[uniform]
        self._uniform_error_ratio[done] = self._current_error_ratio[done]
        self._uniform_extra_latency_s[done] = self._current_extra_latency_s[done]
        self._row_mixed[rows] = ~uniform
        self._any_mixed = bool(self._row_mixed.any())

    def _derive(self) -> None:
        """Recompute the quantities the queueing model needs from the primaries, for all rows
        (same formulas as :mod:`simulators.queueing`, in fewer operations)."""
        if not engine_compiled.derive(self):  # the compiled loop, else numpy
            self._derive_numpy()
        if self._bad_term_rows:  # bad-pod latency terms of the rows whose bad capacity changed
            rows = np.unique(np.concatenate(self._bad_term_rows))
            self._bad_term_rows = []
            self._bad_pod_latency_quantiles_s[:, rows] = Q.bad_pod_extra(
                self._bad_capacity_rps[rows], self._extra_latency_weight[rows], self._safe_capacity_rps[rows])
            self._any_bad_pods = bool(self._bad_capacity_rps.any())
        self._needs_derive = False

    def _derive_numpy(self) -> None:
        capacity, safe_capacity = self._ready_capacity_rps, self._safe_capacity_rps
        np.maximum(capacity, Q.TINY_RPS, out=safe_capacity)
        np.divide(self._error_weight, safe_capacity, out=self._error_ratio)
        # waiting_exponent(server_count(C, L0)) = sqrt(2 max(C L0, 1) + 2) - 1, bit for bit
        servers2 = capacity * self._twice_base_latency_s
        np.maximum(servers2, 2.0, out=servers2)
        servers2 += 2.0
        np.sqrt(servers2, out=servers2)
        servers2 -= 1.0
        self._wait_exponent = servers2
        util = np.divide(self._cpu_pct_at_capacity, safe_capacity)
        util[self._n_ready == 0] = np.nan  # no ready pod: no utilization series
        self._utilization_per_rps = util
        self._idle_memory_mib = np.where(self._n_running > 0, self._memory_base_mib, 0.0)
        np.equal(capacity, 0.0, out=self._zero_capacity)
        self._any_zero_capacity = bool(self._zero_capacity.any())

    def step(self, now: float, dt_s: float, offered_rps: np.ndarray) -> TickSignals:
        """Advance to ``now`` (epoch s) and return the truth of the tick of length ``dt_s`` (s).

        ``offered_rps``: (S,) requests/s offered to each service during the tick, before client
        retries: a service with ``retry_ratio`` > 0 is offered ``retry_ratio`` times its previous
        tick's dropped rate on top (the returned ``offered_rps`` includes them). Readiness probes
        due at ``now`` run after the pod lifecycles (:mod:`.readiness_probe`).
        The returned arrays are fresh (safe to keep), except ``queue_length`` in a cluster
        without queue-mode services, which is a shared read-only array of zeros.
        """
        self._begin_tick(now)
        tick = self._compute_signals(now, dt_s, self._offered_with_retries(offered_rps))
        if self._freeze_pending:
            snapshot_metrics(tick, np.array(self._freeze_pending), self._frozen_metrics)
            self._freeze_pending = []
        self._last_tick = tick
        return tick

    def _begin_tick(self, now: float) -> None:
        """What happens at ``now`` before the tick's signals: the queued replica changes, then
        whatever is due (fault events, pod lifecycle events, readiness probes, rollouts'
        progress), then the queueing terms of the state that results."""
        self._flush()
        self.now = now
        if now >= self._next_fault_s:
            self._apply_fault_events(now)
        if now >= self._next_event_min_s:  # kept exact by _refresh and _create_pods
            self._advance_lifecycles(now)
        if now >= self._probe_next_min_s:  # INF without readiness probes
            self._run_probes(now)
        if self._rolling_rows:
            for i in list(self._rolling_rows):
                if not self._paused[i]:
                    self._progress_rollout(i, now)
        if self._needs_derive:
            self._derive()

    def _offered_with_retries(self, offered_rps: np.ndarray) -> np.ndarray:
        """(S,) float64 ``offered_rps`` plus the clients' retries of the last tick's drops."""
        offered_rps = np.asarray(offered_rps, dtype=np.float64)
        if self._any_retries and self._last_tick is not None:
            offered_rps = offered_rps + self._retry_ratio * self._last_tick.dropped_rps
        return offered_rps

    def step_ticks(self, times: np.ndarray, dt_s: float, offered_rps: np.ndarray, sinks) -> int:
        """:meth:`step` of the first ``n`` of ``times`` (epoch s, ascending) with ``offered_rps``
        (n, S), in one compiled call (:mod:`.runs_compiled`), their signals written into the two
        ``sinks`` instead of returned: in the common case (:meth:`_runs_take_events`) up to the
        first tick at which a fault event or a readiness probe is due, everything due at each
        tick done by the kernel as :meth:`step` does it (replica changes, pod lifecycles);
        otherwise the first tick's as :meth:`step` does it, then the following ones while
        nothing is due. Returns ``n``; 0 when it declines and changed nothing (then
        :meth:`step`): the kernels off, before the first step, a fault event due at the first
        tick, a rollout in progress or a metric fault active (the observed signals then differ
        from the truth the sinks take). :attr:`last` is the last tick's truth, as after :meth:`step`."""
        if (not self._stepped or self._rolling_rows or self._metric_fault_rows or self._freeze_pending
                or times[0] >= self._next_fault_s or not engine_compiled.enabled()):
            return 0
        if self._runs_take_events(float(times[0])):
            n = runs_compiled.run_ticks(self, times, dt_s, offered_rps, sinks, True,
                                        min(self._next_fault_s, self._probe_next_min_s))
            if n:
                return n
        now = float(times[0])
        self._begin_tick(now)  # lifecycles and probes: they start no rollout and no metric fault
        due_s = min(self._next_fault_s, self._next_event_min_s, self._probe_next_min_s)
        n = 1 + int(np.searchsorted(times[1:], due_s, side="left"))  # then the ticks before the next due time
        n = runs_compiled.run_ticks(self, times[:n], dt_s, offered_rps[:n], sinks, False, INF)
        if not n:  # the kernel failed (numpy from now on): this tick as step does it
            tick = self._compute_signals(now, dt_s, self._offered_with_retries(offered_rps[0]))
            engine_compiled.write_sinks(tick, sinks)
            self.now, self._last_tick = tick.at_s, tick
            n = 1
        return n

    def _runs_take_events(self, first_s: float) -> bool:
        """Whether a run of ticks from ``first_s`` (epoch s) may do what is due at its ticks in the
        kernel (:mod:`.runs_compiled`): the replica changes and pod lifecycles of the common case,
        where every pod of a row is alike and the compiled loops of :mod:`.pods_compiled` cover
        them (no node capacity, StatefulSet, crash loop, memory leak, readiness hold, hung pod
        or extra latency), and no readiness probe is due at the first tick."""
        return not (self._node_capacity_pods is not None or self._any_ordered or self._any_crash_loop
                    or self._any_leak or self._any_readiness_down or self._any_sticky or self._any_hung
                    or self._any_extra_latency or self._n_parked_pods or self._bad_term_rows
                    or first_s >= self._probe_next_min_s or self._any_mixed)

    def _compute_signals(self, now: float, dt_s: float, offered_rps: np.ndarray) -> TickSignals:
        compiled = engine_compiled.compute_signals(self, now, dt_s, offered_rps)  # one compiled loop, or None: numpy
        if compiled is not None:
            return compiled
        capacity, safe_capacity = self._ready_capacity_rps, self._safe_capacity_rps
        if self._any_queue_mode:
            served, dropped, backlog = Q.serve(offered_rps, capacity, self._backlog, dt_s, self._queue_limit)
            self._backlog = backlog
            backlog_wait = backlog / safe_capacity
        else:
            served, dropped = Q.serve_drop(offered_rps, capacity)
            backlog, backlog_wait = self._zeros, None
        waits = Q.waiting_quantiles(served, safe_capacity, self._wait_exponent)
        no_capacity_demand = None
        if self._any_zero_capacity:
            mask = self._zero_capacity & ((offered_rps > 0) | (backlog > 0))
            no_capacity_demand = mask if mask.any() else None
        bad_pod_latency_s = self._bad_pod_latency_quantiles_s if self._any_bad_pods else None
        latency_s = Q.latency_quantiles(self._base_latency_quantiles_s, waits, bad_pod_latency_s, backlog_wait,
                                        self._timeout_s, no_capacity_demand)
        errors, ratio = Q.error_ratio(served, dropped, self._error_ratio)
        # a pod's own p95 without any bad pod's extra latency (pod_signals adds the pod's own)
        self._p95_without_bad_pods_s = latency_s[1] - (bad_pod_latency_s[1] if self._any_bad_pods else 0.0)
        return TickSignals(
            now, offered_rps, served, dropped, backlog, capacity.copy(), served * self._utilization_per_rps,
            latency_s[0], latency_s[1], latency_s[2], errors, ratio,
            self._memory(now) if self._any_leak else self._idle_memory_mib.copy(),
            self._n_ready.copy(), self._spec_replicas.copy(), self._n_pods.copy(),
            self._restarts_total.copy(), self._revision_number.copy(), self._rolling.copy())

    def _memory(self, now: float) -> np.ndarray:
        """Mean working set (MiB) of running pods: base + rate * (now - mean leak anchor).

        A running pod's anchor (its container start or the leak start, whichever is later) is
        never after ``now``, so the mean of per-pod memory is the memory at the mean anchor.
        """
        n_running = np.maximum(self._n_running, 1)
        memory_mib = self._memory_base_mib + self._leak_rate_mib_per_s * (now - self._leak_anchor_sum_s / n_running)
        return np.where(self._n_running > 0, memory_mib, 0.0)

    def signals(self, now: float | None = None) -> ObservedSignals:
        """The last tick's signals as a metrics source sees them: NaN under an outage or a NaN
        fault, frozen when stale, with the ``unavailable`` / ``stale`` / ``nonfinite`` masks.
        Reflects the state of the last :meth:`step` (``now`` is accepted for symmetry)."""
        if self._last_tick is None:
            raise RuntimeError("signals() before the first step()")
        if self._metric_fault_rows == 0:  # the common case, once per tick in the runner: no copies
            floats = self._count_floats
            return observed_unfaulted(self._last_tick, self._no_mask, self._zeros,
                                      floats[1] if floats is not None and floats[0] is self._last_tick else None)
        return observed(self._last_tick, self._outage_faults > 0, self._stale_faults > 0, self._nan_faults > 0,
                        self._frozen_metrics, self._stale_since_s)

    def observed_masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unavailable, nonfinite, sample_age_s) of :meth:`signals`, without its values: the
        shared masks (read-only) when no metric fault is active."""
        if self._metric_fault_rows == 0:
            return self._no_mask, self._no_mask, self._zeros
        obs = self.signals()
        return obs.unavailable, obs.nonfinite, obs.sample_age_s

    @property
    def last(self) -> TickSignals | None:
        """The truth of the last tick."""
        return self._last_tick
