"""The simulated cluster, vectorized across services: :class:`SimCluster`.

Same model as :mod:`simulators.reference` (read that for the rules, in plain loops); this one
keeps every service in numpy arrays so that a tick for 1,000 services costs tens of
microseconds.

Layout. ``S`` services, ``K`` pod slots per service (the largest ``ServiceConfig.slots``).
Pods live in ``(S, K)`` slot arrays (``_p_*``, with flat views ``_f_*`` addressed by
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
rollouts and per-pod reads (names, ``statuses``) are on slower paths.

Units: seconds (``_s``, epoch for times), requests/s (``_rps``), percent (``_pct``), MiB.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from controller.errors import NotFound
from controller.model import Action, ActionKind, PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView, TargetSelector
from simulators import faults as F
from simulators import engine_compiled
from simulators import queueing as Q
from simulators.reference import _rollback_target
from simulators.signals import (ObservedSignals, TickSignals, empty_frozen, observed, observed_unfaulted,
                                snapshot_metrics)
from simulators.workload import (BACKOFF_INITIAL_S, BACKOFF_MAX_S, ClusterConfig, Phase, Revision, RevisionProps,
                                 ServiceConfig, pod_name, revision_hash, rollout_budget)

INF = np.inf
MAX_LIFECYCLE_ROUNDS = 10_000
# Plain ints: numpy compares against an IntEnum member slowly (attribute probing on every call).
EMPTY, PENDING, STARTING, BACKOFF, READY = (int(p) for p in (Phase.EMPTY, Phase.PENDING, Phase.STARTING,
                                                              Phase.BACKOFF, Phase.READY))
N_PHASES = len(Phase)
#: Removal-ranking key layout: (phase rank * 2 + is current revision) << 40 | (2**40 - 1 - serial).
_SERIAL_SPAN = 1 << 40
_NO_KEY = np.iinfo(np.int64).max
#: Up to this many removals in one row, repeated argmin; beyond, sort the rows.
_ARGMIN_REMOVALS = 4


def _config_array(services: Sequence[ServiceConfig], attr: str, dtype=np.float64) -> np.ndarray:
    return np.array([getattr(s, attr) for s in services], dtype=dtype)


def _backoff(restarts: np.ndarray) -> np.ndarray:
    """Vectorized :func:`simulators.workload.backoff_s` (exact: powers of two)."""
    return np.minimum(BACKOFF_INITIAL_S * 2.0 ** np.maximum(restarts - 1, 0), BACKOFF_MAX_S)


class SimCluster:
    """A simulated cluster of ``S`` Deployments, deterministic for a given generator.

    ``SimCluster(config, rng, faults=())``: ``config`` is a :class:`ClusterConfig` or a list of
    :class:`ServiceConfig`; ``rng`` a ``numpy.random.Generator`` (or an int seed); ``faults``
    a list of :mod:`simulators.faults` faults, applied by :meth:`step` at their start and end.

    Per tick: ``step(now, dt_s, offered_rps) -> TickSignals`` (truth) and
    ``signals() -> ObservedSignals`` (what a metrics source sees). Actions: ``scale``,
    ``set_replicas``, ``delete_pod``, ``rollout``, ``rolling_restart``, ``rollback``, ``apply``.
    Reads: ``statuses``, ``view``, ``spec_replicas``, ``ready_replicas``, ``pod_count``,
    ``revisions``, ``pod_names``.
    """

    # ------------------------------------------------------------------ construction
    def __init__(self, config: ClusterConfig | Sequence[ServiceConfig], rng: np.random.Generator | int,
                 faults: Sequence[F.Fault] = ()):
        self.config = ClusterConfig.of(config).validate()
        self.rng = np.random.default_rng(rng) if isinstance(rng, (int, np.integer)) else rng
        self.salt = int(self.rng.integers(2**31))  # names depend on the seed, drawn first in both engines
        services = self.config.services
        self.names = tuple(s.name for s in services)
        self.index_of = {name: i for i, name in enumerate(self.names)}
        F.validate_faults(faults, self.index_of)
        self._timeline = F.FaultTimeline(faults)
        self._next_fault_s = self._timeline.next_s
        self.now = self.config.start_s
        self._init_config(services)
        self._init_slots(services)
        self._init_state(services)
        self._n_pods[:] = np.count_nonzero(self._p_phase != EMPTY, axis=1)  # then kept exact incrementally
        self._refresh(np.arange(self.n_services))
        self._derive()

    def _init_config(self, services: Sequence[ServiceConfig]) -> None:
        S = self.n_services = len(services)
        c = lambda attr, dtype=np.float64: _config_array(services, attr, dtype)  # noqa: E731
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
        self._block_base = np.arange(S, dtype=np.int64)[:, None] * N_PHASES  # bincount offsets per row
        self._row_offsets = np.arange(S, dtype=np.int64) * K  # reduceat offsets of a (R, K) block
        self._capacity = self.config.pod_capacity
        self._capacity_lost = 0
        self._zeros = np.zeros(S)
        self._zeros.flags.writeable = False
        self._no_mask = np.zeros(S, dtype=bool)
        self._no_mask.flags.writeable = False
        self._metric_faults = 0  # rows under an active metric fault, counted per fault

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

    def _init_state(self, services: Sequence[ServiceConfig]) -> None:
        S = self.n_services
        self._spec = np.array([s.initial_replicas for s in services], dtype=np.int64)
        self._revisions: list[list[Revision]] = [
            [Revision(1, 0, revision_hash(self.salt, s.name, 0), s.initial_revision, self.now)] for s in services]
        self._current = np.zeros(S, dtype=np.int64)  # seq of the current revision
        self._revision_number = np.ones(S, dtype=np.int64)
        self._cur_crash, self._cur_err, self._cur_xlat = np.zeros(S, dtype=bool), np.zeros(S), np.zeros(S)
        for i in range(S):
            self._set_current_props(i)
        self._err0 = self._cur_err.copy()
        # Rows whose pods all share the same properties are summed without per-pod weights.
        self._row_err, self._row_xlat = self._cur_err.copy(), self._cur_xlat.copy()
        self._row_mixed = np.zeros(S, dtype=bool)
        self._p_err[:] = self._cur_err[:, None]
        self._p_xlat[:] = self._cur_xlat[:, None]
        self._p_crash[:] = self._cur_crash[:, None]
        # Fast-path switches: each turns on for good the first time its case appears.
        self._err_varies = False  # some pod's error ratio differs from its service's initial one
        self._any_xlat = bool((self._cur_xlat > 0).any())  # some pod may add latency (revision or degraded)
        self._any_degraded = False  # some pod was degraded by a memory leak
        self._any_crash = bool(self._cur_crash.any())  # some revision crash-loops
        self._any_leak = False  # a memory leak is active
        self._rolling = np.zeros(S, dtype=bool)
        self._paused = np.zeros(S, dtype=bool)  # spec.paused: a rollout makes no progress
        self._rolling_rows: list[int] = []
        self._backlog = np.zeros(S)
        self._restarts_total = np.zeros(S, dtype=np.int64)
        self._leak_rate, self._leak_start = np.zeros(S), np.zeros(S)
        self._leak_fault = np.full(S, -1, dtype=np.int64)
        self._outage, self._stale, self._nan = (np.zeros(S, dtype=np.int64) for _ in range(3))
        self._frozen = empty_frozen(S)
        self._stale_since = np.zeros(S)
        self._freeze_pending: list[int] = []
        self._n_parked = 0
        self._queued: dict[int, int] = {}  # set_replicas calls not yet applied (service -> replicas)
        self._names: dict[tuple[int, int], str] = {}
        self._view_cache: tuple[tuple, np.ndarray] | None = None
        self._last: TickSignals | None = None
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

    def _set_current_props(self, i: int) -> None:
        props = self._revisions[i][int(self._current[i])].props
        self._cur_crash[i] = props.crash_loop
        self._cur_err[i] = props.pod_error_ratio(self.config.services[i].base_error_ratio)
        self._cur_xlat[i] = props.extra_latency_s

    # ------------------------------------------------------------------ aggregates
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

    # ------------------------------------------------------------------ the tick
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

    # ------------------------------------------------------------------ pod lifecycles
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

    # Slots are addressed by flat index g = row * K + slot into the ravelled (S, K) arrays
    # (``_f_*`` views): 1-D fancy indexing is several times cheaper than (rows, slots) pairs.
    def _due_slots(self, rows: np.ndarray, times: np.ndarray, now: float):
        """(rows, flat slots, times) of the slots of ``rows`` whose ``times`` (R, K) are <= now."""
        f = np.flatnonzero(times <= now)
        r = f // self.K
        rr = rows[r]
        return rr, f + (rr - r) * self.K, times.ravel()[f]

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
                ends = ct + _backoff(self._f_restarts[cg])
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

    # ------------------------------------------------------------------ creating and removing pods
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

    def _unpark(self, now: float) -> None:
        """Capacity freed: parked Pending pods try again at ``now``."""
        if self._n_parked == 0:
            return
        parked = (self._p_phase == PENDING) & (self._p_until == INF)
        self._p_until[parked] = now
        self._n_parked = 0
        self._refresh(np.flatnonzero(parked.any(axis=1)))

    # ------------------------------------------------------------------ actions
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

    def rollout(self, i: int, props: RevisionProps | None = None, now: float | None = None) -> int:
        """Start a rolling update of service ``i`` to a new revision with ``props`` (default:
        the current one's, i.e. a restart). Returns the new revision number."""
        self._flush()
        now = self.now if now is None else now
        revs = self._revisions[i]
        props = revs[int(self._current[i])].props if props is None else props
        seq, number = len(revs), max(r.number for r in revs) + 1
        revs.append(Revision(number, seq, revision_hash(self.salt, self.names[i], seq), props, now))
        self._make_current(i, seq, number)
        return number

    def rolling_restart(self, i: int, now: float | None = None) -> int:
        """A new revision with the same properties (new pod-template-hash), rolled out."""
        return self.rollout(i, None, now)

    def rollback(self, i: int, revision: int | str | None = None, now: float | None = None,
                 fast: bool = False) -> int:
        """Roll service ``i`` back to ``revision`` (number or hash; default the previous one).
        The revision gets the next number, as in Kubernetes. Returns that number.

        ``fast`` (a bad release caught during its rollout): the rollout stops at once, the pods
        of the abandoned revision that are not ready yet (serving nothing) are deleted now, so
        the stable revision's pods are recreated in the room they free, within the surge, at once
        (the Deployment controller syncs on the change); ready ones go as the stable pods become
        ready (max unavailable holds)."""
        self._flush()
        now = self.now if now is None else now
        revs = self._revisions[i]
        target = _rollback_target(revs, int(self._current[i]), revision, self.names[i])
        if target.seq == int(self._current[i]):
            return target.number
        number = max(r.number for r in revs) + 1
        revs[target.seq] = Revision(number, target.seq, target.hash, target.props, target.created_s)
        self._make_current(i, target.seq, number)
        if fast and not self._paused[i]:
            ph = self._p_phase[i]
            unready = (ph != EMPTY) & (ph != READY) & ~self._new_mask(i)
            if unready.any():
                self._remove_ranked(np.array([i]), np.array([int(unready.sum())]), now, unready[None, :])
                self._refresh(np.array([i]))
            self._progress_rollout(i, now)  # the Deployment controller syncs on the change, not a tick later
        return number

    def set_paused(self, i: int, paused: bool, now: float | None = None) -> None:
        """Pause or resume service ``i``'s rollouts (a Deployment's ``spec.paused``): while paused
        a rollout makes no progress (no pods of the new revision are created, none of the old
        ones removed; scaling still works); on resume it continues at once."""
        self._flush()
        was, self._paused[i] = bool(self._paused[i]), bool(paused)
        if was and not paused and self._rolling[i]:
            self._progress_rollout(i, self.now if now is None else now)

    @property
    def paused(self) -> np.ndarray:
        """(S,) bool: rollouts paused."""
        return self._paused.copy()

    def _make_current(self, i: int, seq: int, number: int) -> None:
        self._current[i] = seq
        self._revision_number[i] = number
        self._set_current_props(i)
        # Switch off the fast paths this revision breaks (see _init_state).
        self._err_varies |= bool(self._cur_err[i] != self._err0[i])
        self._any_xlat |= bool(self._cur_xlat[i] > 0)
        self._any_crash |= bool(self._cur_crash[i])
        if self._cur_err[i] != self._row_err[i] or self._cur_xlat[i] != self._row_xlat[i]:
            self._row_mixed[i] = True  # new pods will differ from the old ones until the rollout ends
        self._rolling[i] = True
        if i not in self._rolling_rows:
            self._rolling_rows = sorted(self._rolling_rows + [i])

    def apply(self, action: Action) -> None:
        """Apply a controller :class:`~controller.model.Action` (the ``Cluster`` protocol)."""
        i = self.index(action.target)
        if action.kind is ActionKind.SCALE:
            self.set_replicas(i, int(action.replicas))
        elif action.kind is ActionKind.RESTART_POD:
            self.delete_pod(i, action.pod or "")
        elif action.kind is ActionKind.ROLLING_RESTART:
            self.rolling_restart(i)
        elif action.kind is ActionKind.ROLLBACK:
            if action.resume:  # one write: the undo resumes our rollout hold (the fast path applies)
                self._paused[i] = False
            self.rollback(i, action.revision, fast=action.fast)
        elif action.kind in (ActionKind.PAUSE, ActionKind.RESUME):
            self.set_paused(i, action.kind is ActionKind.PAUSE)

    # ------------------------------------------------------------------ rollouts
    def _progress_rollout(self, i: int, now: float) -> None:
        """One RollingUpdate sync for service ``i`` (see ReferenceCluster.progress_rollout)."""
        cfg = self.config.services[i]
        spec = int(self._spec[i])
        surge, unavailable = rollout_budget(spec, cfg.max_surge, cfg.max_unavailable)
        row = np.array([i])
        new = self._new_mask(i)
        if new.sum() > spec:
            self._remove_ranked(row, np.array([new.sum() - spec]), now, new[None, :])
        n_new = min(int(new.sum()), spec)
        self._create(row, np.array([min(spec + surge - int(self._n_pods[i]), spec - n_new)]), now)
        min_available = spec - unavailable
        ph, new = self._p_phase[i], self._new_mask(i)
        new_unavailable = int((new & (ph != READY)).sum())
        max_down = int(self._n_pods[i]) - min_available - new_unavailable
        old = (ph != EMPTY) & ~new
        if max_down > 0:
            self._remove_ranked(row, np.array([max_down]), now, (old & (ph != READY))[None, :])
        ph = self._p_phase[i]
        down = int((ph == READY).sum()) - min_available
        if down > 0:
            self._remove_ranked(row, np.array([down]), now, ((ph != EMPTY) & ~self._new_mask(i))[None, :])
        ph, new = self._p_phase[i], self._new_mask(i)
        if int(new.sum()) == int((ph != EMPTY).sum()) == spec and bool((ph[new] == READY).all()):
            self._rolling[i] = False
            self._rolling_rows.remove(i)
            self._recheck_uniform(row)
        self._refresh(row)

    def _new_mask(self, i: int) -> np.ndarray:
        return (self._p_phase[i] != EMPTY) & (self._p_rev[i] == self._current[i])

    # ------------------------------------------------------------------ faults
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

    # ------------------------------------------------------------------ reads
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

    @property
    def spec_replicas(self) -> np.ndarray:
        """(S,) int: desired replicas."""
        self._flush()
        return self._spec.copy()

    @property
    def ready_replicas(self) -> np.ndarray:
        """(S,) int: ready pods."""
        self._flush()
        return self._n_ready.copy()

    @property
    def pod_count(self) -> np.ndarray:
        """(S,) int: existing pods (status.replicas)."""
        self._flush()
        return self._n_pods.copy()

    @property
    def rollout_in_progress(self) -> np.ndarray:
        """(S,) bool."""
        self._flush()
        return self._rolling.copy()

    @property
    def capacity_lost(self) -> int:
        """Pods of node capacity currently lost to node-loss faults."""
        return self._capacity_lost

    def revisions(self, i: int) -> list[Revision]:
        """Revision history of service ``i`` (ReplicaSets), oldest first."""
        return list(self._revisions[i])

    def current_revision(self, i: int) -> Revision:
        return self._revisions[i][int(self._current[i])]

    def index(self, target: TargetRef | str) -> int:
        """Service index of a TargetRef or name; NotFound when unknown."""
        name = target.name if isinstance(target, TargetRef) else target
        if name not in self.index_of or (isinstance(target, TargetRef)
                                         and target.namespace != self.config.services[self.index_of[name]].namespace):
            raise NotFound(f"no simulated workload {target}", target=str(target), status=404)
        return self.index_of[name]

    def ref(self, i: int) -> TargetRef:
        return TargetRef(self.config.services[i].namespace, self.names[i])

    def pod_names(self, i: int) -> list[str]:
        """Names of service ``i``'s pods, oldest first."""
        self._flush()
        ks = np.flatnonzero(self._p_phase[i] != EMPTY)
        return [self._pod_name(i, k) for k in ks[np.argsort(self._p_serial[i, ks])].tolist()]

    def _pod_name(self, i: int, k: int) -> str:
        serial = int(self._p_serial[i, k])
        key = (i, serial)
        if key not in self._names:
            rev_hash = self._revisions[i][int(self._p_rev[i, k])].hash
            self._names[key] = pod_name(self.salt, self.names[i], rev_hash, serial)
        return self._names[key]

    def _slot_of(self, i: int, name: str) -> int:
        for k in np.flatnonzero(self._p_phase[i] != EMPTY).tolist():
            if self._pod_name(i, k) == name:
                return k
        raise NotFound(f"pod {name!r} not found in {self.names[i]}", target=self.names[i], status=404)

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        """The workloads a selector matches (the ``Cluster`` port), sorted: same namespace
        and kind, listed by name, or carrying every ``match_labels`` pair."""
        if selector.kind != "Deployment":
            return []
        refs = []
        for cfg in self.config.services:
            if cfg.namespace != selector.namespace:
                continue
            if selector.names and cfg.name not in selector.names:
                continue
            if selector.match_labels and not set(selector.match_labels) <= set(cfg.labels):
                continue
            refs.append(TargetRef(cfg.namespace, cfg.name))
        return sorted(refs)

    def view(self, targets: Sequence[TargetRef] | None = None, with_statuses: bool = False) -> ClusterView:
        """Replica counts of ``targets`` (default: all services) as arrays: the ``Cluster``
        port's ``observe``. Fast: no per-pod objects unless ``with_statuses``."""
        self._flush()
        if targets is None:
            rows, exists = np.arange(self.n_services), np.ones(self.n_services, dtype=bool)
        else:
            rows, exists = self._rows_of(targets)
        pick = lambda a: np.where(exists, a[rows], 0).astype(np.float64)  # noqa: E731
        statuses = tuple(self._status(int(i)) for i in rows[exists]) if with_statuses else ()
        return ClusterView(spec=pick(self._spec), status=pick(self._n_pods), ready=pick(self._n_ready),
                           rollout=exists & self._rolling[rows], exists=exists, statuses=statuses)

    def _rows_of(self, targets: Sequence[TargetRef]) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(targets)
        if self._view_cache is None or self._view_cache[0] != key:
            rows, exists = [], []
            for t in key:
                i = self.index_of.get(t.name, -1)
                ok = i >= 0 and self.config.services[i].namespace == t.namespace and t.kind == "Deployment"
                rows.append(i if ok else 0)
                exists.append(ok)
            self._view_cache = (key, (np.array(rows, dtype=np.int64), np.array(exists, dtype=bool)))
        return self._view_cache[1]

    def statuses(self, targets: Sequence[TargetRef] | None = None) -> list[TargetStatus]:
        """Status of the given workloads (default: all), with their pods, at ``self.now``. (The
        Cluster port's ``observe`` returns a ClusterView: see ``view`` and simulators/ports.py.)

        Pod times (start_time, ready_transition_time) are epoch seconds; phase is Pending or
        Running; ``revision`` strings are revision numbers. Slow path: builds objects.
        """
        self._flush()
        rows = range(self.n_services) if targets is None else [self.index(t) for t in targets]
        return [self._status(i) for i in rows]

    def pod_signals(self, now: float | None = None) -> dict[str, np.ndarray | list[str]]:
        """Per-pod signals of every existing pod, for pod-scope health checks (the signals a
        per-pod PromQL query would return). Flat arrays of length P, pods in slot order:

        row (service index), name, ready (bool), running (bool: starting or ready), restarts (container restarts), memory_mib
        (working set of running pods, 0 otherwise), error_ratio (share of requests the pod's
        revision fails), extra_latency_s (added by a bad revision or a degraded pod),
        served_rps (the service's served requests shared evenly by its ready pods),
        latency_p95_s (the service's p95 without bad pods' extra latency, plus the pod's own),
        revision (the pod's revision number, as in ``statuses``).
        Slow path (builds pod names): call it only when a policy has pod-scope checks.
        """
        self._flush()
        now = self.now if now is None else now
        rr, kk = np.nonzero(self._p_phase != EMPTY)
        phase = self._p_phase[rr, kk]
        running = (phase == STARTING) | (phase == READY)
        anchor = np.maximum(self._p_started[rr, kk], self._leak_start[rr])
        memory = np.where(running, self._mem_base[rr] + self._leak_rate[rr] * np.maximum(now - anchor, 0.0), 0.0)
        degraded = self._p_degraded[rr, kk]
        extra = self._p_xlat[rr, kk] + np.where(degraded, self._deg_extra[rr], 0.0)
        ready = phase == READY
        served = self._last.served_rps if self._last is not None else np.zeros(self.n_services)
        per_pod = served / np.maximum(self._n_ready, 1)
        base = getattr(self, "_lat_p95_base", None)
        base = np.zeros(self.n_services) if base is None else base
        return {"row": rr, "name": [self._pod_name(int(i), int(k)) for i, k in zip(rr, kk)], "ready": ready,
                "running": running,
                "restarts": self._p_restarts[rr, kk].astype(np.float64), "memory_mib": memory,
                "error_ratio": np.where(running, self._p_err[rr, kk], np.nan), "extra_latency_s": extra,
                "served_rps": np.where(ready, per_pod[rr], 0.0),
                "latency_p95_s": np.where(ready, base[rr] + extra, np.nan),
                "revision": [str(self._revisions[int(i)][int(self._p_rev[i, k])].number) for i, k in zip(rr, kk)]}

    def pod_arrays(self, targets: Sequence[TargetRef]) -> dict[str, np.ndarray | list[str]]:
        """Every existing pod of ``targets`` as flat (P,) arrays, fast (no objects): at (index
        into ``targets``; unknown targets have no pods), name, pending, running (starting, in back-off or
        ready), ready, start_time and ready_transition_time (epoch s, NaN unknown), pods of a
        service in creation order as ``observe`` lists them."""
        self._flush()
        rows, exists = self._rows_of(targets)
        phase = np.where(exists[:, None], self._p_phase[rows], EMPTY)
        # pods change only with a phase or a slot's serial: a second call in the same cycle (pods
        # listed, then their samples) reuses the first one's names
        key = (tuple(targets), phase.tobytes(), self._p_serial[rows].tobytes())
        cached = getattr(self, "_pod_arrays_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        serial = np.where(phase != EMPTY, self._p_serial[rows], np.iinfo(np.int64).max)
        order = np.argsort(serial, axis=1, kind="stable")
        at, pos = np.nonzero(np.take_along_axis(phase, order, axis=1) != EMPTY)
        kk = order[at, pos]
        ii = rows[at]
        p = self._p_phase[ii, kk]
        out = {"at": at, "name": [self._pod_name(int(i), int(k)) for i, k in zip(ii, kk)], "pending": p == PENDING,
               "running": p != PENDING, "ready": p == READY, "start_time": self._p_created[ii, kk],
               "ready_transition_time": self._p_transition[ii, kk]}
        self._pod_arrays_cache = (key, out)
        return out

    def _status(self, i: int) -> TargetStatus:
        ks = np.flatnonzero(self._p_phase[i] != EMPTY)
        ks = ks[np.argsort(self._p_serial[i, ks])].tolist()
        revs = self._revisions[i]
        pods = tuple(PodStatus(
            name=self._pod_name(i, k),
            phase="Pending" if self._p_phase[i, k] == PENDING else "Running",
            ready=bool(self._p_phase[i, k] == READY),
            start_time=float(self._p_created[i, k]),
            ready_transition_time=None if np.isnan(self._p_transition[i, k]) else float(self._p_transition[i, k]),
            restarts=int(self._p_restarts[i, k]),
            revision=str(revs[int(self._p_rev[i, k])].number),
        ) for k in ks)
        return TargetStatus(
            ref=self.ref(i), spec_replicas=int(self._spec[i]), status_replicas=len(ks),
            ready_replicas=int(self._n_ready[i]), revision=str(self._revision_number[i]),
            rollout_in_progress=bool(self._rolling[i]),
            revisions=tuple(str(r.number) for r in sorted(revs, key=lambda r: r.number)),
            pods=pods, observed_at=self.now)
