"""Runs of ticks in one compiled call (numba), for :meth:`SimCluster.step_ticks`.

The simulation runner steps the ticks between two control cycles as one run. Each tick's signals
come from ``_tick_kernel`` (:mod:`simulators.engine_compiled`) and go straight into the caller's
blocks (the recorder's, the simulated metrics' rings); the ticks before the last compute only
the latency percentiles those blocks keep (the last one's TickSignals has all three). In the common case (no node capacity,
StatefulSet, crash loop, leak, readiness hold, hung pod, extra latency or mixed row) the kernel
also does what ``SimCluster._begin_tick`` does at each tick of the run: the queued replica
changes at the first, the pod lifecycle events due at any (scheduling, start-up) with the
aggregates of their rows and the queueing terms, by the compiled loops of
:mod:`.pods_compiled` and ``_derive_kernel``, in the same order as the Python methods call them.
Otherwise the caller does the first tick's work in Python and the run stops before the next
due event. Either way the run stops before a fault event or a readiness probe is due.

The kernels are those the per-tick path runs, so the runs give its numbers bit for bit
(tests/simulators/test_tick_runs.py). Same switch and fallback as the other kernels.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import enabled, jit, mark_broken
from simulators import engine_compiled
from simulators.engine_compiled import (_I_COUNTS, _O_BACKLOG, _O_DROPPED, _O_P50, _O_P95_BASE, _O_ROWS, _X_COUNTS, _X_MEMORY,
                                        _X_OFFERED, _X_ROWS)
from simulators.signals import COUNT_SIGNALS, TickSignals
from simulators.simcluster import pods_compiled
from simulators.simcluster.lifecycle import MAX_LIFECYCLE_ROUNDS

#: What the run kernel returns in its status: all ticks asked for done or stopped before a due
#: time, or pod lifecycles that did not settle at the tick it stopped at.
_SETTLED, _UNSETTLED = 0, 1
#: The ``memory`` of a run whose memory is the engine's idle memory (no leak).
_NO_MEMORY = np.empty((0, 0))
#: No queued replica changes.
_NO_ROWS = np.zeros(0, np.int64)


@jit
def _min_of(a):
    """ndarray.min of a non-empty (n,) float array (NaN if any is NaN)."""
    m = a[0]
    for i in range(1, a.shape[0]):
        m = compiled.nan_min(m, a[i])
    return m


@jit
def _touch(rows, touched, touched_rows, n):
    """Add ``rows`` (R,) to the ``n`` first ``touched_rows`` (S,) not there yet (``touched`` (S,)
    marks them); returns the new count."""
    for j in range(rows.shape[0]):
        i = rows[j]
        if not touched[i]:
            touched[i] = True
            touched_rows[n] = i
            n += 1
    return n


@jit
def _scale_kernel(q_rows, q_replicas, now, next_event_min, max_pods, spec, K, slot_count, n_pods, next_serial,
                  scheduling_delay_s, current_seq, set_props, current_crash_loops, current_error_ratio,
                  current_extra_latency_s, phase, serial, phase_end_s, created_s, ready_transition_s, pod_restarts,
                  revision_seq, crash_loops, error_ratio, extra_latency_s, next_event_s, live_end, clear_threshold,
                  memory_threshold_s, clear_degraded, degraded, count_backoff, pod_capacity_rps, uniform_error_ratio,
                  n_ready, n_scheduled, n_running, ready_capacity_rps, error_weight, touched, touched_rows, n_touched):
    """``ReplicaSets._scale`` of the queued (rows, replicas) (unique rows) without StatefulSets or
    rollouts: spec replicas clamped to [0, max_pods], pods created for the rows scaled up, removed
    by the ranking then refreshed for those scaled down (each added to the touched rows, see
    :func:`_touch`). Returns (the next event's time, whether the aggregates changed: derive, the
    touched rows' count)."""
    m = q_rows.shape[0]
    up_rows, up_counts = np.empty(m, np.int64), np.empty(m, np.int64)
    down_rows, down_counts = np.empty(m, np.int64), np.empty(m, np.int64)
    n_up = n_down = 0
    for j in range(m):
        i = q_rows[j]
        replicas = min(max(q_replicas[j], 0), max_pods[i])
        delta = replicas - spec[i]
        if delta == 0:
            continue
        spec[i] = replicas
        if delta > 0:
            up_rows[n_up], up_counts[n_up] = i, delta
            n_up += 1
        else:
            down_rows[n_down], down_counts[n_down] = i, -delta
            n_down += 1
    changed = False
    kept, due_min = pods_compiled._create_kernel(
        up_rows[:n_up], up_counts[:n_up], now, K, slot_count, n_pods, next_serial, scheduling_delay_s, current_seq,
        set_props, current_crash_loops, current_error_ratio, current_extra_latency_s, phase, serial, phase_end_s,
        created_s, ready_transition_s, pod_restarts, revision_seq, crash_loops, error_ratio, extra_latency_s,
        next_event_s, live_end)
    n_touched = _touch(up_rows[:n_up], touched, touched_rows, n_touched)
    if kept:
        if due_min < next_event_min:  # Python's min(next, due): the first unless the second is smaller
            next_event_min = due_min
        changed = True
    if n_down:  # no pod is parked without node capacity: nothing to unpark
        rows = down_rows[:n_down]
        pods_compiled._remove_kernel(rows, down_counts[:n_down], K, n_pods, current_seq, phase, serial, revision_seq,
                                     phase_end_s, clear_threshold, memory_threshold_s, clear_degraded, degraded,
                                     live_end)
        pods_compiled._refresh_kernel(rows, K, phase, phase_end_s, count_backoff, pod_capacity_rps,
                                      uniform_error_ratio, n_ready, n_scheduled, n_running, ready_capacity_rps,
                                      error_weight, next_event_s)
        next_event_min = _min_of(next_event_s)
        changed = True
        n_touched = _touch(rows, touched, touched_rows, n_touched)
    return next_event_min, changed, n_touched


@jit
def _lifecycles_kernel(now, next_event_min, K, startup_delay_s, phase, phase_end_s, started_s, ready_transition_s,
                       count_backoff, pod_capacity_rps, uniform_error_ratio, n_ready, n_scheduled, n_running,
                       ready_capacity_rps, error_weight, next_event_s, touched, touched_rows, n_touched):
    """``PodLifecycle._advance_lifecycles`` with only simple rounds: the rows with an event due
    at ``now`` (epoch s) get a round then a refresh, until none is due (each added to the
    touched rows, see :func:`_touch`). Returns (the next event's time: ``next_event_min`` if no
    row was due, else the minimum after the last refresh; rounds run; settled: False after
    MAX_LIFECYCLE_ROUNDS rounds; the touched rows' count)."""
    rows = np.empty(next_event_s.shape[0], np.int64)
    for rounds in range(MAX_LIFECYCLE_ROUNDS + 1):
        m = 0
        lowest = next_event_s[0]
        for i in range(next_event_s.shape[0]):  # the rows due, and _min_of(next_event_s) in the same pass
            at = next_event_s[i]
            if at <= now:
                rows[m] = i
                m += 1
            if i:
                lowest = compiled.nan_min(lowest, at)
        if rounds:
            next_event_min = lowest  # as after the last round's refresh
        if m == 0:
            return next_event_min, rounds, True, n_touched
        if rounds == MAX_LIFECYCLE_ROUNDS:
            break
        due = rows[:m]
        pods_compiled._simple_round_kernel(due, now, K, startup_delay_s, phase, phase_end_s, started_s,
                                           ready_transition_s)
        pods_compiled._refresh_kernel(due, K, phase, phase_end_s, count_backoff, pod_capacity_rps, uniform_error_ratio,
                                      n_ready, n_scheduled, n_running, ready_capacity_rps, error_weight, next_event_s)
        n_touched = _touch(due, touched, touched_rows, n_touched)
    return next_event_min, MAX_LIFECYCLE_ROUNDS, False, n_touched


@jit
def _percentiles_kept(codes_a, codes_b):
    """(3,) bool: whether the sinks' codes (F,) name the p50, p95, p99 rows."""
    kept = np.zeros(3, np.bool_)
    for codes in (codes_a, codes_b):
        for f in range(codes.shape[0]):
            q = codes[f] - _O_P50
            if 0 <= q < 3:
                kept[q] = True
    return kept


@jit
def _run_kernel(times, load, stop_s, manage, q_rows, q_replicas, flush_now, next_event_min, needs_derive, any_zero_cap,
                max_pods, spec, K, slot_count, n_pods, next_serial, scheduling_delay_s, startup_delay_s, current_seq,
                set_props, current_crash_loops, current_error_ratio, current_extra_latency_s, phase, serial,
                phase_end_s, created_s, started_s, ready_transition_s, pod_restarts, revision_seq, crash_loops,
                error_ratio, extra_latency_s, next_event_s, live_end, clear_threshold, memory_threshold_s,
                clear_degraded, degraded, count_backoff, pod_capacity_rps, uniform_error_ratio, n_ready, n_scheduled,
                n_running, cap, error_weight, twice_base_latency_s, cpu_pct_at_capacity, mem_base, safe, err, zero_cap,
                exponent, util_scale, mem_idle, retry_ratio, any_retries, dropped0, memory, backlog, dt_s, queue_limit,
                any_queue, base_q, extra_q, any_bad, timeout, restarts, revision, out, counts, extra, sink_a, start_a,
                codes_a, sink_b, start_b, codes_b):
    """The ticks ``times`` (n,) with ``load`` (n, S), up to the first after the first at or past
    ``stop_s``. With ``manage``, what is due at each tick first (the queued ``q_rows`` /
    ``q_replicas`` at ``flush_now`` before the first, the pod events at or before the tick's
    time, then the queueing terms if the aggregates changed); without, the engine's state is
    that of the whole run. Each tick: its offered load (plus ``retry_ratio`` times the previous
    tick's drops, the first tick's ``dropped0``), its signals into ``out`` / ``counts`` /
    ``extra``, its memory (``memory[t]`` ((n, S)), or the idle memory when ``memory`` has no
    rows), written into row ``start + t`` (modulo the rows) of each sink (F, R, S) as the fields
    ``codes`` (F,) of :data:`~simulators.engine_compiled.SIGNAL_ROWS`. ``backlog`` (S,) carries
    the queue from tick to tick. Returns (ticks done, the next pod event's time, whether the
    queueing terms are still to derive, whether a ready capacity is 0, status)."""
    s_count = load.shape[1]
    n = 1
    while n < load.shape[0] and times[n] < stop_s:
        n += 1
    offered = extra[_X_OFFERED]
    # the latency percentiles the sinks keep; the last tick's TickSignals has all three
    kept_percentiles, every_percentile = _percentiles_kept(codes_a, codes_b), np.ones(3, np.bool_)
    state_changed = True  # the rows only the engine's state sets are to copy
    derive_all = needs_derive  # changed before the run: which rows is not known
    touched, touched_rows, n_touched = np.zeros(s_count, np.bool_), np.empty(s_count, np.int64), 0
    for t in range(n):
        now = times[t]
        if manage:
            if t == 0 and q_rows.shape[0]:
                next_event_min, changed, n_touched = _scale_kernel(
                    q_rows, q_replicas, flush_now, next_event_min, max_pods, spec, K, slot_count, n_pods, next_serial,
                    scheduling_delay_s, current_seq, set_props, current_crash_loops, current_error_ratio,
                    current_extra_latency_s, phase, serial, phase_end_s, created_s, ready_transition_s, pod_restarts,
                    revision_seq, crash_loops, error_ratio, extra_latency_s, next_event_s, live_end, clear_threshold,
                    memory_threshold_s, clear_degraded, degraded, count_backoff, pod_capacity_rps, uniform_error_ratio,
                    n_ready, n_scheduled, n_running, cap, error_weight, touched, touched_rows, n_touched)
                needs_derive = needs_derive or changed
                state_changed = True  # spec replicas changed, whether or not a pod did
            if now >= next_event_min:
                next_event_min, rounds, settled, n_touched = _lifecycles_kernel(
                    now, next_event_min, K, startup_delay_s, phase, phase_end_s, started_s, ready_transition_s,
                    count_backoff, pod_capacity_rps, uniform_error_ratio, n_ready, n_scheduled, n_running, cap,
                    error_weight, next_event_s, touched, touched_rows, n_touched)
                if not settled:
                    return t, next_event_min, True, any_zero_cap, _UNSETTLED
                needs_derive = needs_derive or rounds > 0
            if needs_derive and derive_all:
                any_zero_cap = engine_compiled._derive_kernel(cap, error_weight, twice_base_latency_s,
                                                              cpu_pct_at_capacity, n_ready, n_running, mem_base, safe,
                                                              err, zero_cap, exponent, util_scale, mem_idle)
            elif needs_derive:  # the other rows' terms are those of their unchanged aggregates
                any_zero_cap = engine_compiled._derive_rows_kernel(
                    touched_rows[:n_touched], cap, error_weight, twice_base_latency_s, cpu_pct_at_capacity, n_ready,
                    n_running, mem_base, safe, err, zero_cap, exponent, util_scale, mem_idle)
            if needs_derive:
                touched[touched_rows[:n_touched]] = False
                n_touched = 0
                derive_all = needs_derive = False
                state_changed = True
        for s in range(s_count):
            x = load[t, s]
            if any_retries:  # clients retry part of the previous tick's drops (SimCluster.step)
                x = x + retry_ratio[s] * (dropped0[s] if t == 0 else out[_O_DROPPED, s])
            offered[s] = x
        if state_changed:  # the same until the state changes again
            engine_compiled._state_rows(cap, n_ready, spec, n_pods, restarts, revision, out, counts)
            extra[_X_COUNTS:] = counts
            if memory.shape[0] == 0:
                extra[_X_MEMORY] = mem_idle
            state_changed = False
        if memory.shape[0] > 0:
            extra[_X_MEMORY] = memory[t]
        engine_compiled._tick_kernel(offered, cap, safe, backlog, dt_s, queue_limit, any_queue, exponent, base_q,
                                     extra_q, any_bad, timeout, zero_cap, any_zero_cap, err, util_scale, out,
                                     every_percentile if t == n - 1 else kept_percentiles)
        if any_queue:
            backlog[:] = out[_O_BACKLOG]
        engine_compiled._write_sink(sink_a, (start_a + t) % sink_a.shape[1], codes_a, out, extra)
        engine_compiled._write_sink(sink_b, (start_b + t) % sink_b.shape[1], codes_b, out, extra)
    engine_compiled._p95_base_row(out, extra_q, any_bad)  # the last tick's, as TickSignals keeps it
    return n, next_event_min, needs_derive, any_zero_cap, _SETTLED


def run_ticks(c, times: np.ndarray, dt_s: float, load: np.ndarray, sinks, manage: bool, stop_s: float) -> int:
    """Step ``c`` (a SimCluster) through ``times`` (n,) with ``load`` (n, S) up to the first tick
    after the first at or past ``stop_s`` (epoch s) in one call (see :func:`_run_kernel`;
    ``manage``: what is due at the ticks too, the caller checked the common case; else the
    caller did the first tick's and ``stop_s`` is the next due time). Every tick's signals go
    into the two ``sinks`` ((F, R, S) block, first row, codes (F,) from
    ``engine_compiled.sink_codes``). Returns the ticks done, the cluster at the last one (its
    ``now``; its truth made on first read: :func:`_last_tick_maker`); 0 when the kernels are off
    or failed (nothing changed)."""
    if not enabled():
        return 0
    s_count = load.shape[1]
    rows = np.empty((_O_ROWS + _X_ROWS, s_count))  # the last tick's: its TickSignals' arrays
    out, extra, counts = rows[:_O_ROWS], rows[_O_ROWS:], np.empty((_I_COUNTS, s_count), np.int64)
    # with a leak (manage is off then: the state is that of the whole run) the memory of each tick
    memory = np.stack([c._memory(now) for now in times.tolist()]) if c._any_leak else _NO_MEMORY
    # the queue is the kernel's to apply when it manages the ticks: taken (emptied) here, put back
    # if the kernel fails (nothing changed then)
    queued = c.take_queued() if manage else None
    q_rows, q_replicas = queued if queued is not None else (_NO_ROWS, _NO_ROWS)
    dropped0 = c._last_tick.dropped_rps if c._any_retries else c._zeros
    (sink_a, start_a, codes_a), (sink_b, start_b, codes_b) = sinks
    try:
        done, next_event_min, needs_derive, any_zero, status = _run_kernel(
            times, np.ascontiguousarray(load, dtype=np.float64), float(stop_s), manage, q_rows, q_replicas,
            float(c.now), float(c._next_event_min_s), bool(c._needs_derive), bool(c._any_zero_capacity),
            *_pod_args(c), c._twice_base_latency_s, c._cpu_pct_at_capacity, c._memory_base_mib, c._safe_capacity_rps,
            c._error_ratio, c._zero_capacity, c._wait_exponent, c._utilization_per_rps, c._idle_memory_mib,
            c._retry_ratio, c._any_retries, dropped0, memory, c._backlog.copy(), float(dt_s), c._queue_limit,
            c._any_queue_mode, c._base_latency_quantiles_s, c._bad_pod_latency_quantiles_s, c._any_bad_pods,
            c._timeout_s, c._restarts_total, c._revision_number, out, counts, extra,
            sink_a, start_a, codes_a, sink_b, start_b, codes_b)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        if queued is not None:
            c.requeue(queued)
        return 0
    if manage:
        c._next_event_min_s, c._needs_derive, c._any_zero_capacity = float(next_event_min), bool(needs_derive), bool(any_zero)
    if status == _UNSETTLED:
        c.now = float(times[done])
        raise RuntimeError(f"pod lifecycles did not settle at now={c.now}")
    c.now = float(times[done - 1])
    # what _tick_signals sets on the engine besides the tick: now, for the ticks to come
    c._p95_without_bad_pods_s = out[_O_P95_BASE]
    if c._any_queue_mode:
        c._backlog = out[_O_BACKLOG]
    c._last_tick_made_by(_last_tick_maker(c, c.now, out, counts, extra, c._rolling.copy()))
    return done


def _last_tick_maker(c, now: float, out: np.ndarray, counts: np.ndarray, extra: np.ndarray, rolling: np.ndarray):
    """What makes the TickSignals of a run's last tick at ``now`` from the rows the kernel wrote
    (``out``, ``counts``, ``extra``: its memory and its counts as floats, which the metrics' view
    of that tick shares) and its ``rolling`` (S,) copy, when first read; the rest of the engine's
    state it reads does not change before the next tick."""
    def make() -> TickSignals:
        tick = engine_compiled._tick_signals(c, now, extra[_X_OFFERED], out, counts, extra[_X_MEMORY], rolling)
        c._count_floats = (tick, {name: extra[row] for name, row in _COUNT_ROWS})
        return tick
    return make


#: Each of COUNT_SIGNALS with its row in the run's extra block (its counts as floats).
_COUNT_ROWS = tuple((name, engine_compiled.SIGNAL_ROWS[name] - _O_ROWS) for name in COUNT_SIGNALS)


def _pod_args(c) -> tuple:
    """``_run_kernel``'s arguments from ``max_pods`` to ``error_weight``: the pod slots and the
    aggregates the replica changes and pod lifecycles read and write."""
    return (c._max_pods, c._spec_replicas, c.K, c._slot_count, c._n_pods, c._next_serial, c._scheduling_delay_s,
            c._startup_delay_s, c._current_seq, bool(c._any_crash_loop or c._error_ratio_varies or c._any_extra_latency),
            c._current_crash_loops, c._current_error_ratio, c._current_extra_latency_s, c._flat_phase, c._flat_serial,
            c._flat_phase_end_s, c._flat_created_s, c._flat_started_s, c._flat_ready_transition_s, c._flat_restarts,
            c._flat_revision_seq, c._flat_crash_loops, c._flat_error_ratio, c._flat_extra_latency_s, c._next_event_s,
            c._live_end, bool(c._any_leak), c._flat_memory_threshold_s, bool(c._any_degraded), c._flat_degraded,
            bool(c._any_crash_loop), c._pod_capacity_rps, c._uniform_error_ratio, c._n_ready, c._n_scheduled,
            c._n_running, c._ready_capacity_rps, c._error_weight)
