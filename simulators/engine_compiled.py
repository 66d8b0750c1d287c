"""The engine's per-tick math as one compiled loop over services (numba), for :class:`SimCluster`.

``SimCluster._derive`` (queueing terms from the capacity aggregates) and
``SimCluster._compute_signals`` (throughput, waiting time, latency percentiles, errors,
utilization, memory of one tick; :mod:`simulators.queueing`) each run as one fused loop over
the S services instead of a few dozen numpy calls on (S,) arrays. ``SimCluster.step_ticks``
runs a run of ticks through one call (:mod:`simulators.simcluster.runs_compiled`): the same
tick kernel tick after tick, each tick's signals written straight into the caller's blocks
(the runner's recorder, the simulated metrics' rings, :func:`sink_codes`); a run's ticks before
its last compute only the latency percentiles those blocks keep, and skip the log where a bound
shows every waiting time asked for is 0 (the values computed are those of the full tick, bit
for bit: ``test_waits_skip_the_log_only_where_it_cannot_matter``). The numpy methods stay the
reference: ``tests/simulators/test_engine_compiled.py`` runs whole scenarios both ways and
compares every tick (integers exactly; floats to 1e-12 relative: numpy's vectorized ``log``
and the C library's differ in the last bit). Pod lifecycles run as the loops of
:mod:`simulators.simcluster.pods_compiled` in the common case; faults and rollouts stay numpy:
they run only on the rows with a due event.

Same switch and fallback as the decision kernel (``SETPOINT_COMPILED``, see
:mod:`controller.core.scaling.compiled`).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import enabled, jit, jit_inline, mark_broken
from simulators import queueing as Q
from simulators.signals import TickSignals

# The kernels call the shared helpers as ``compiled.nan_max``: numba resolves the module attribute
# when it compiles, after the helpers became dispatchers. ``from ... import nan_max`` would bind the
# plain function (the kernels are marked before numba loads), which fails to type once the
# decision kernel has compiled the dispatcher.
_TINY, _RHO_CAP, _RHO_FLOOR = Q.TINY_RPS, Q.RHO_CAP, Q.RHO_FLOOR
_LN_TAIL0, _LN_TAIL1, _LN_TAIL2 = Q.LN_TAIL
_NAN = math.nan


@jit_inline
def _derive_row(s, cap, err_w, twice_base_latency_s, cpu_pct_at_capacity, n_ready, n_running, mem_base, safe, err,
                zero_cap, exponent, util, mem_idle):
    """Service ``s``'s queueing terms, in place: safe = max(C, TINY), err = err_w / safe, the
    waiting exponent, the utilization per rps, the idle memory and zero_cap = C == 0 (returned)."""
    c = cap[s]
    sc = compiled.nan_max(c, _TINY)
    safe[s] = sc
    err[s] = err_w[s] / sc
    servers2 = compiled.nan_max(c * twice_base_latency_s[s], 2.0) + 2.0
    exponent[s] = math.sqrt(servers2) - 1.0
    util[s] = cpu_pct_at_capacity[s] / sc if n_ready[s] != 0 else _NAN
    mem_idle[s] = mem_base[s] if n_running[s] > 0 else 0.0
    z = c == 0.0
    zero_cap[s] = z
    return z


@jit
def _derive_kernel(cap, err_w, twice_base_latency_s, cpu_pct_at_capacity, n_ready, n_running, mem_base, safe, err,
                   zero_cap, exponent, util, mem_idle):
    """:func:`_derive_row` of every service (S,); returns whether a capacity is 0."""
    any_zero = False
    for s in range(cap.shape[0]):
        z = _derive_row(s, cap, err_w, twice_base_latency_s, cpu_pct_at_capacity, n_ready, n_running, mem_base, safe,
                        err, zero_cap, exponent, util, mem_idle)
        any_zero = any_zero or z
    return any_zero


@jit
def _derive_rows_kernel(rows, cap, err_w, twice_base_latency_s, cpu_pct_at_capacity, n_ready, n_running, mem_base,
                        safe, err, zero_cap, exponent, util, mem_idle):
    """:func:`_derive_row` of the services ``rows`` (R,) only, the others' inputs unchanged since
    they were derived; returns whether a capacity is 0 (of all services)."""
    for j in range(rows.shape[0]):
        _derive_row(rows[j], cap, err_w, twice_base_latency_s, cpu_pct_at_capacity, n_ready, n_running, mem_base, safe,
                    err, zero_cap, exponent, util, mem_idle)
    any_zero = False
    for s in range(zero_cap.shape[0]):
        any_zero = any_zero or zero_cap[s]
    return any_zero


#: Rows of the float block the signals kernel fills (one allocation per tick, its rows the tick's arrays).
(_O_SERVED, _O_DROPPED, _O_BACKLOG, _O_P50, _O_P95, _O_P99, _O_P95_BASE, _O_ERRORS, _O_RATIO, _O_UTIL, _O_CAPACITY,
 _O_ROWS) = range(12)
#: Rows of the int block: copies of the engine's counts (ready, spec, pods, restarts, revision).
_I_COUNTS = 5


#: All three latency percentiles (p50, p95, p99): a tick whose signals are all kept.
ALL_PERCENTILES = np.ones(3, np.bool_)
#: log(x) < 2 (x - 1) / (x + 1) on (0, 1): a waiting time is 0 when that bound times the exponent
#: is below its tail's log by this relative margin (the computed log's rounding, ~1e-15, is far inside it)
_BOUND_MARGIN = 1.0 + 1e-9


@jit
def _tick_kernel(offered_rps, cap, safe, backlog, dt_s, queue_limit, any_queue, exponent, base_q, extra_q, any_bad,
                 timeout, zero_cap, any_zero_cap, err, util_scale, out, percentiles):
    """One tick for S services, the formulas of simulators.queueing, into the rows of ``out``
    (_O_ROWS, S) that change with the load: served, dropped, new backlog (0 in drop mode),
    errors, error ratio, utilization, and the latency percentiles p50 / p95 / p99 that
    ``percentiles`` (3,) bool asks for (the others' rows are left as they were;
    :func:`_state_rows` and :func:`_p95_base_row` fill the other rows)."""
    s_count = offered_rps.shape[0]
    rho_of, log_p_wait, inv_rate = np.empty(s_count), np.empty(s_count), np.empty(s_count)
    # a loop without a call (the log's below), which the compiler vectorizes
    for s in range(s_count):
        c, sc, x = cap[s], safe[s], offered_rps[s]
        if any_queue:
            available = backlog[s] / dt_s + x
            sv = compiled.nan_min(available, c)
            excess = available - sv
            nb = compiled.nan_min(excess * dt_s, queue_limit[s])
            dr = excess - nb / dt_s
        else:
            sv = compiled.nan_min(x, c)
            dr = x - sv
            nb = 0.0
        out[_O_SERVED, s], out[_O_DROPPED, s], out[_O_BACKLOG, s] = sv, dr, nb
        rho = compiled.nan_max(compiled.nan_min(sv / sc, _RHO_CAP), _RHO_FLOOR)
        rho_of[s] = rho
        inv_rate[s] = 1.0 / ((1.0 - rho) * sc)
        e = sv * err[s]
        out[_O_ERRORS, s] = e
        out[_O_RATIO, s] = (e + dr) / compiled.nan_max(sv + dr, _TINY)
        out[_O_UTIL, s] = sv * util_scale[s]
    deepest = 0.0  # the lowest log tail of the percentiles asked for (the highest percentile's)
    for q in range(3):
        if percentiles[q]:
            deepest = _LN_TAIL0 if q == 0 else (_LN_TAIL1 if q == 1 else _LN_TAIL2)
    skip_below = deepest * _BOUND_MARGIN
    for s in range(s_count):
        rho = rho_of[s]
        # every waiting time asked for is 0 whatever the log's last bits: -inf gives those 0s
        if 2.0 * (rho - 1.0) / (rho + 1.0) * exponent[s] < skip_below:
            log_p_wait[s] = -math.inf
        else:
            log_p_wait[s] = math.log(rho) * exponent[s]
    # the percentiles in passes of their own, one row at a time: loops without a call that the
    # compiler vectorizes; each value's operations are the same, in the same order
    backlog_now = out[_O_BACKLOG]
    for q in range(3):
        if not percentiles[q]:
            continue
        ln_tail = _LN_TAIL0 if q == 0 else (_LN_TAIL1 if q == 1 else _LN_TAIL2)
        row, base, extra = out[_O_P50 + q], base_q[q], extra_q[q]
        for s in range(s_count):
            value = compiled.nan_max(log_p_wait[s] - ln_tail, 0.0) * inv_rate[s] + base[s]
            if any_queue:
                value += backlog_now[s] / safe[s]
            if any_bad:
                value += extra[s]
            t_out = timeout[s]
            value = compiled.nan_min(value, t_out)
            if any_zero_cap and zero_cap[s] and (offered_rps[s] > 0 or backlog_now[s] > 0):
                value = t_out  # demand without capacity
            row[s] = value


@jit
def _state_rows(cap, n_ready, spec, n_pods, restarts, revision, out, out_counts):
    """The rows of a tick that only the engine's state sets: ``out``'s capacity row (a copy of
    ``cap``) and ``out_counts`` (_I_COUNTS, S): copies of n_ready, spec, n_pods, restarts, revision."""
    out[_O_CAPACITY] = cap
    out_counts[0], out_counts[1], out_counts[2] = n_ready, spec, n_pods
    out_counts[3], out_counts[4] = restarts, revision


@jit
def _p95_base_row(out, extra_q, any_bad):
    """``out``'s p95 without the bad-pod extra, from its p95 row."""
    p95, p95_base, extra_p95 = out[_O_P95], out[_O_P95_BASE], extra_q[1]
    for s in range(p95.shape[0]):
        p95_base[s] = p95[s] - extra_p95[s] if any_bad else p95[s]


@jit
def _signals_kernel(offered_rps, cap, safe, backlog, dt_s, queue_limit, any_queue, exponent, base_q, extra_q, any_bad,
                    timeout, zero_cap, any_zero_cap, err, util_scale, n_ready, spec, n_pods, restarts, revision, out,
                    out_counts):
    """One tick's signals, every row: :func:`_tick_kernel`, :func:`_state_rows`, :func:`_p95_base_row`."""
    _tick_kernel(offered_rps, cap, safe, backlog, dt_s, queue_limit, any_queue, exponent, base_q, extra_q, any_bad,
                 timeout, zero_cap, any_zero_cap, err, util_scale, out, ALL_PERCENTILES)
    _state_rows(cap, n_ready, spec, n_pods, restarts, revision, out, out_counts)
    _p95_base_row(out, extra_q, any_bad)
    return 0


def derive(cluster) -> bool:
    """``SimCluster._derive`` without the bad-pod rows (the caller keeps those); False when the
    kernels are off, so the caller runs numpy."""
    if not enabled():
        return False
    c = cluster
    try:
        any_zero = _derive_kernel(c._ready_capacity_rps, c._error_weight, c._twice_base_latency_s,
                                  c._cpu_pct_at_capacity, c._n_ready, c._n_running, c._memory_base_mib,
                                  c._safe_capacity_rps, c._error_ratio, c._zero_capacity, c._wait_exponent,
                                  c._utilization_per_rps, c._idle_memory_mib)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    c._any_zero_capacity = bool(any_zero)
    return True


def compute_signals(cluster, now: float, dt_s: float, offered_rps: np.ndarray) -> TickSignals | None:
    """``SimCluster._compute_signals`` in one loop; None when the kernels are off."""
    if not enabled():
        return None
    c = cluster
    n = offered_rps.shape[0]
    out, counts = np.empty((_O_ROWS, n)), np.empty((_I_COUNTS, n), np.int64)
    try:
        _signals_kernel(offered_rps, *_engine_args(c, dt_s), out, counts)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return None
    return _tick_signals(c, now, offered_rps, out, counts)


def _engine_args(c, dt_s: float, backlog: np.ndarray | None = None) -> tuple:
    """The engine's state that ``_signals_kernel`` reads after the offered load, in its order
    (``backlog``: the queue to start from, default the engine's)."""
    return (c._ready_capacity_rps, c._safe_capacity_rps, c._backlog if backlog is None else backlog, float(dt_s), c._queue_limit, c._any_queue_mode,
            c._wait_exponent, c._base_latency_quantiles_s, c._bad_pod_latency_quantiles_s, c._any_bad_pods,
            c._timeout_s, c._zero_capacity, c._any_zero_capacity, c._error_ratio, c._utilization_per_rps,
            c._n_ready, c._spec_replicas, c._n_pods, c._restarts_total, c._revision_number)


def _tick_signals(c, now: float, offered_rps: np.ndarray, out: np.ndarray, counts: np.ndarray,
                  memory_mib: np.ndarray | None = None, rolling: np.ndarray | None = None) -> TickSignals:
    """The TickSignals of a tick whose ``out`` (_O_ROWS, S) and ``counts`` (_I_COUNTS, S) the
    signals kernel filled (their rows become its arrays; ``memory_mib`` (S,) too when the
    kernel wrote the tick's memory; ``rolling`` (S,) its rollouts in progress, default a copy of
    the engine's); keeps the engine's backlog (queue mode) and p95 without bad pods."""
    served, dropped, backlog, p50, p95, p99, p95_base, errors, ratio, util, capacity = out
    if c._any_queue_mode:
        c._backlog = backlog
    else:
        backlog = c._zeros
    c._p95_without_bad_pods_s = p95_base
    n_ready, spec, n_pods, restarts, revision = counts
    return TickSignals(
        now, offered_rps, served, dropped, backlog, capacity, util, p50, p95, p99, errors, ratio,
        memory_mib if memory_mib is not None else (c._memory(now) if c._any_leak else c._idle_memory_mib.copy()),
        n_ready, spec, n_pods, restarts, revision, c._rolling.copy() if rolling is None else rolling)


# ---------------------------------------------------------------------------- runs of ticks
#: Rows of the block the run kernel fills beside ``out``: the offered load (retries
#: included), the memory and the counts as floats (as a metrics ring and the recorder hold them).
_X_OFFERED, _X_MEMORY, _X_COUNTS, _X_ROWS = 0, 1, 2, 2 + _I_COUNTS

#: Signal name (a TickSignals field) -> its row in a tick's rows: ``out``'s, then the extra
#: block's (``_O_ROWS + x``). The names a sink of a run of ticks
#: (:mod:`simulators.simcluster.runs_compiled`) may ask for.
SIGNAL_ROWS: dict[str, int] = {
    "served_rps": _O_SERVED, "dropped_rps": _O_DROPPED, "queue_length": _O_BACKLOG, "latency_p50_s": _O_P50,
    "latency_p95_s": _O_P95, "latency_p99_s": _O_P99, "errors_rps": _O_ERRORS, "error_ratio": _O_RATIO,
    "utilization_pct": _O_UTIL, "capacity_rps": _O_CAPACITY, "offered_rps": _O_ROWS + _X_OFFERED,
    "memory_mib": _O_ROWS + _X_MEMORY,
    **{name: _O_ROWS + _X_COUNTS + i for i, name in
       enumerate(("ready_replicas", "spec_replicas", "pods", "restarts_total", "revision"))},
}

_SIGNAL_NAMES = {code: name for name, code in SIGNAL_ROWS.items()}


@jit
def _write_sink(sink, row, codes, out, extra):
    """sink[f, row] = the tick's row ``codes[f]`` (out's, then extra's), for each field f."""
    for f in range(codes.shape[0]):
        code = codes[f]
        source = out[code] if code < _O_ROWS else extra[code - _O_ROWS]
        target = sink[f, row]
        for s in range(target.shape[0]):
            target[s] = source[s]


def sink_codes(names) -> np.ndarray | None:
    """The :data:`SIGNAL_ROWS` codes (F,) of a sink's field names; None if one is not a tick signal."""
    if any(name not in SIGNAL_ROWS for name in names):
        return None
    return np.array([SIGNAL_ROWS[name] for name in names], dtype=np.int64)


#: A sink that takes nothing (a run without a metrics ring): (block (0, 1, 1), start, codes).
NO_SINK = (np.zeros((0, 1, 1)), 0, np.zeros(0, np.int64))


def write_sinks(tick: TickSignals, sinks) -> None:
    """Write one tick's signals into the next row of each sink (numpy; what the kernel writes)."""
    for block, row, codes in sinks:
        for f, code in enumerate(codes.tolist()):
            block[f, row % block.shape[1]] = getattr(tick, _SIGNAL_NAMES[code])
