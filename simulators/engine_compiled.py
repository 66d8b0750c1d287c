"""The engine's per-tick math as one compiled loop over services (numba), for :class:`SimCluster`.

``SimCluster._derive`` (queueing terms from the capacity aggregates) and
``SimCluster._compute_signals`` (throughput, waiting time, latency percentiles, errors,
utilization, memory of one tick; :mod:`simulators.queueing`) each run as one fused loop over
the S services instead of a few dozen numpy calls on (S,) arrays. The numpy methods stay the
reference: ``tests/simulators/test_engine_compiled.py`` runs whole scenarios both ways and
compares every tick (integers exactly; floats to 1e-12 relative: numpy's vectorized ``log``
and the C library's differ in the last bit). Pod lifecycles, faults and rollouts stay numpy:
they run only on the rows with a due event.

Same switch and fallback as the decision kernel (``SETPOINT_COMPILED``, see
:mod:`controller.core.scaling.compiled`).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import enabled, jit, mark_broken
from simulators import queueing as Q
from simulators.signals import TickSignals

_TINY, _RHO_CAP, _RHO_FLOOR = Q.TINY_RPS, Q.RHO_CAP, Q.RHO_FLOOR
_LN_TAIL0, _LN_TAIL1, _LN_TAIL2 = Q.LN_TAIL
_NAN = math.nan


def _use_shared_helpers() -> None:
    """Bind the decision kernel's nan_max / nan_min here once numba has loaded: the kernels below
    find them as this module's globals when they compile, and an import at module load would
    bind the plain Python functions (numba turns them into dispatchers only on load), which a
    kernel cannot call (the engine kernels then failed to type and switched every kernel off)."""
    globals().update(nan_max=compiled.nan_max, nan_min=compiled.nan_min)


@jit
def _derive_kernel(cap, err_w, L0x2, cpu100, n_ready, n_running, mem_base, safe, err, zero_cap):
    """safe = max(C, TINY), err = err_w / safe, zero_cap = C == 0 (in place); returns
    (exponent, util_scale, mem_idle, any_zero_cap)."""
    s_count = cap.shape[0]
    exponent = np.empty(s_count)
    util = np.empty(s_count)
    mem_idle = np.empty(s_count)
    any_zero = False
    for s in range(s_count):
        c = cap[s]
        sc = nan_max(c, _TINY)
        safe[s] = sc
        err[s] = err_w[s] / sc
        servers2 = nan_max(c * L0x2[s], 2.0) + 2.0
        exponent[s] = math.sqrt(servers2) - 1.0
        util[s] = cpu100[s] / sc if n_ready[s] != 0 else _NAN
        mem_idle[s] = mem_base[s] if n_running[s] > 0 else 0.0
        z = c == 0.0
        zero_cap[s] = z
        any_zero = any_zero or z
    return exponent, util, mem_idle, any_zero


@jit
def _signals_kernel(lam, cap, safe, backlog, dt_s, queue_limit, any_queue, exponent, base_q, extra_q, any_bad,
                    timeout, zero_cap, any_zero_cap, err, util_scale):
    """One tick's (served, dropped, new backlog, latency (3, S), p95 without bad-pod extra,
    errors, error ratio, utilization) for S services; the formulas of simulators.queueing."""
    s_count = lam.shape[0]
    served = np.empty(s_count)
    dropped = np.empty(s_count)
    new_backlog = np.zeros(s_count)
    lat = np.empty((3, s_count))
    p95_base = np.empty(s_count)
    errors = np.empty(s_count)
    ratio = np.empty(s_count)
    util = np.empty(s_count)
    for s in range(s_count):
        c, sc, x = cap[s], safe[s], lam[s]
        if any_queue:
            available = backlog[s] / dt_s + x
            sv = nan_min(available, c)
            excess = available - sv
            nb = nan_min(excess * dt_s, queue_limit[s])
            dr = excess - nb / dt_s
            new_backlog[s] = nb
        else:
            sv = nan_min(x, c)
            dr = x - sv
            nb = 0.0
        served[s], dropped[s] = sv, dr
        rho = nan_max(nan_min(sv / sc, _RHO_CAP), _RHO_FLOOR)
        log_p_wait = math.log(rho) * exponent[s]
        inv_rate = 1.0 / ((1.0 - rho) * sc)
        demand_without_capacity = any_zero_cap and zero_cap[s] and (x > 0 or nb > 0)
        t_out = timeout[s]
        for q in range(3):
            ln_tail = _LN_TAIL0 if q == 0 else (_LN_TAIL1 if q == 1 else _LN_TAIL2)
            value = nan_max(log_p_wait - ln_tail, 0.0) * inv_rate + base_q[q, s]
            if any_queue:
                value += nb / sc
            if any_bad:
                value += extra_q[q, s]
            value = nan_min(value, t_out)
            if demand_without_capacity:
                value = t_out
            lat[q, s] = value
        p95_base[s] = lat[1, s] - extra_q[1, s] if any_bad else lat[1, s]
        e = sv * err[s]
        errors[s] = e
        ratio[s] = (e + dr) / nan_max(sv + dr, _TINY)
        util[s] = sv * util_scale[s]
    return served, dropped, new_backlog, lat, p95_base, errors, ratio, util


def derive(cluster) -> bool:
    """``SimCluster._derive`` without the bad-pod rows (the caller keeps those); False when the
    kernels are off, so the caller runs numpy."""
    if not enabled():
        return False
    _use_shared_helpers()
    try:
        c = cluster
        c._exponent, c._util_scale, c._mem_idle, any_zero = _derive_kernel(
            c._cap, c._err_w, c._L0x2, c._cpu100, c._n_ready, c._n_running, c._mem_base, c._safe_cap, c._err,
            c._zero_cap)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    c._any_zero_cap = bool(any_zero)
    return True


def compute_signals(cluster, now: float, dt_s: float, lam: np.ndarray) -> TickSignals | None:
    """``SimCluster._compute_signals`` in one loop; None when the kernels are off."""
    if not enabled():
        return None
    _use_shared_helpers()
    c = cluster
    try:
        served, dropped, backlog, lat, p95_base, errors, ratio, util = _signals_kernel(
            lam, c._cap, c._safe_cap, c._backlog, float(dt_s), c._queue_limit, c._any_queue, c._exponent, c._base_q,
            c._extra_q, c._any_bad, c._timeout, c._zero_cap, c._any_zero_cap, c._err, c._util_scale)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return None
    if c._any_queue:
        c._backlog = backlog
    else:
        backlog = c._zeros
    c._lat_p95_base = p95_base
    return TickSignals(
        now, lam, served, dropped, backlog, c._cap.copy(), util, lat[0], lat[1], lat[2], errors, ratio,
        c._memory(now) if c._any_leak else c._mem_idle.copy(),
        c._n_ready.copy(), c._spec.copy(), c._n_pods.copy(),
        c._restarts_total.copy(), c._revision_number.copy(), c._rolling.copy())
