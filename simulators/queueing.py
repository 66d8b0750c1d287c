r"""The latency and error model: load and ready capacity in, served/dropped, latency and errors out.

Every function works on arrays with one row per service (shape ``(S,)``) and is deterministic.
Units: rates in requests/s, backlog in requests, times in seconds, utilization in percent.

Notation, per service and tick of length ``dt``:

- ``λ`` offered load (rps); ``C`` ready capacity (rps): the sum over ready pods of
  ``capacity_rps`` (times ``degraded_capacity_ratio`` for a pod over its memory soft limit);
- ``Q`` backlog at the start of the tick (requests), ``Q_max`` the queue limit (0 in ``drop``
  mode); ``L0`` the base latency (median service time at zero load).

**Throughput.** Work available this tick is ``A = λ + Q/dt`` (rps).

    served   = min(A, C)
    Q'       = min((A - served) * dt, Q_max)          # new backlog, requests
    dropped  = (A - served) - Q'/dt

In ``drop`` mode (``Q = Q_max = 0``) this is ``served = min(λ, C)`` and
``served + dropped = λ``: nothing beyond capacity is held.

**Waiting time** (an M/M/N approximation). The service is treated as ``N = max(1, C * L0)``
parallel servers (by Little's law, the concurrency that serves ``C`` rps at service time
``L0``) with total rate ``C``. With utilization ``ρ = served / C``, clamped to
``[1e-12, 0.99]`` so that a saturated service has a finite latency, the probability of
waiting is Sakasegawa's approximation of Erlang C,

    P_wait = ρ ** (sqrt(2 (N + 1)) - 1)

and the waiting time of an M/M/N queue is zero with probability ``1 - P_wait`` and otherwise
exponential with rate ``C (1 - ρ)``, so its ``q``-quantile is

    W_q = max(0, ln(P_wait / (1 - q))) / (C (1 - ρ))

**Latency percentiles** ``q ∈ {0.5, 0.95, 0.99}``:

    latency_q = min(timeout, L0 * r_q + W_q + Q'/C + extra_q)

- ``r_q`` are ``latency_tail_ratios`` (default 1.0, 1.5, 2.0): the service-time spread at
  zero load;
- ``Q'/C`` is the FIFO backlog wait (queue mode only);
- ``extra_q`` is the extra latency of bad pods (a bad revision's ``extra_latency_s``, a
  degraded pod's ``degraded_extra_latency_s``): with ``b`` the share of ready capacity on
  such pods and ``x`` their capacity-weighted mean extra latency, ``extra_q = x`` when
  ``b > 1 - q`` and 0 otherwise (the q-quantile of a mixture lands in the slow part once it
  holds more than ``1 - q`` of the requests: p99 feels 2 % bad pods, p50 only a majority).
- With no ready capacity and some demand (``C = 0`` and ``λ > 0`` or ``Q' > 0``) every
  percentile is ``timeout``.

Every term is non-decreasing in ``λ`` at fixed capacity, so latency is too.

**Errors.** Each ready pod fails a share ``e_i`` of what it serves (its revision's error
ratio); the service's ``e = Σ c_i e_i / C`` weights pods by capacity (load is spread in
proportion to capacity).

    errors_rps  = served * e
    error_ratio = (errors_rps + dropped) / (served + dropped)     (0 when both are 0)

In drop mode the denominator is exactly the offered load.

**Utilization** (percent of the CPU request, mean over ready pods):
``served / C * 100 * cpu_at_capacity / cpu_request``; NaN when no pod is ready (no series).
"""

from __future__ import annotations

import math

import numpy as np

#: Quantiles reported, and ln(1 - q) for each.
QUANTILES = (0.5, 0.95, 0.99)
LN_TAIL = tuple(math.log(1.0 - q) for q in QUANTILES)
#: Utilization clamp: keeps the waiting time finite at saturation (W_q <= ~460 / C at p99).
RHO_CAP = 0.99
RHO_FLOOR = 1e-12
#: Stand-in for a zero capacity in divisions (rps); results for C = 0 are overridden.
TINY_RPS = 1e-9


def server_count(capacity_rps: np.ndarray, base_latency_s: np.ndarray) -> np.ndarray:
    """N = max(1, C * L0): the parallel servers that give capacity C at service time L0. (S,)."""
    return np.maximum(capacity_rps * base_latency_s, 1.0)


def waiting_exponent(servers: np.ndarray) -> np.ndarray:
    """Sakasegawa's exponent sqrt(2 (N + 1)) - 1, so that P_wait = ρ ** exponent. (S,)."""
    return np.sqrt(2.0 * (servers + 1.0)) - 1.0


def serve(offered_rps, capacity_rps, backlog, dt_s, queue_limit):
    """(served_rps, dropped_rps, new_backlog) for one tick; all (S,).

    ``backlog`` and ``queue_limit`` are in requests (``queue_limit`` 0 = drop mode).
    """
    available = offered_rps + backlog / dt_s
    served = np.minimum(available, capacity_rps)
    excess = available - served
    new_backlog = np.minimum(excess * dt_s, queue_limit)
    dropped = excess - new_backlog / dt_s
    return served, dropped, new_backlog


def serve_drop(offered_rps, capacity_rps):
    """(served_rps, dropped_rps) in drop mode: the no-backlog case of :func:`serve`."""
    served = np.minimum(offered_rps, capacity_rps)
    return served, offered_rps - served


def waiting_quantiles(served_rps, safe_capacity_rps, exponent):
    """W_q for q in QUANTILES: a tuple of three (S,) arrays, seconds.

    ``safe_capacity_rps`` is ``max(C, TINY_RPS)``; ``exponent`` from :func:`waiting_exponent`.
    """
    rho = np.clip(served_rps / safe_capacity_rps, RHO_FLOOR, RHO_CAP)
    log_p_wait = np.log(rho)
    log_p_wait *= exponent
    rate = safe_capacity_rps * (1.0 - rho)
    return tuple(np.maximum(log_p_wait - ln_tail, 0.0) / rate for ln_tail in LN_TAIL)


def bad_pod_extra(bad_capacity_rps, extra_weighted, safe_capacity_rps):
    """extra_q for q in QUANTILES: a tuple of three (S,) arrays, seconds.

    ``bad_capacity_rps`` = Σ over ready pods with extra latency of their capacity;
    ``extra_weighted`` = Σ c_i x_i over the same pods.
    """
    share = bad_capacity_rps / safe_capacity_rps
    mean_extra = extra_weighted / np.maximum(bad_capacity_rps, TINY_RPS)
    return tuple(np.where(share > 1.0 - q, mean_extra, 0.0) for q in QUANTILES)


def latency_quantiles(base_quantiles, waits, extras, backlog_wait, timeout_s, no_capacity_demand):
    """latency_q = min(timeout, L0 r_q + W_q + Q'/C + extra_q); timeout where there is
    demand but no capacity. ``base_quantiles``/``waits``/``extras``: tuples of three (S,)
    (``extras`` and ``backlog_wait`` may be None when absent); returns three (S,) arrays."""
    out = []
    for i in range(len(QUANTILES)):
        lat = base_quantiles[i] + waits[i]
        if backlog_wait is not None:
            lat += backlog_wait
        if extras is not None:
            lat += extras[i]
        np.minimum(lat, timeout_s, out=lat)
        if no_capacity_demand is not None:
            lat[no_capacity_demand] = timeout_s[no_capacity_demand]
        out.append(lat)
    return tuple(out)


def error_ratio(served_rps, dropped_rps, pod_error_ratio):
    """(errors_rps, error_ratio): failures among served plus drops, over served plus dropped."""
    errors = served_rps * pod_error_ratio
    outcomes = served_rps + dropped_rps
    ratio = (errors + dropped_rps) / np.maximum(outcomes, TINY_RPS)
    return errors, ratio


def utilization_pct(served_rps, safe_capacity_rps, cpu_ratio, has_ready):
    """Mean per-pod CPU utilization, percent of request; NaN where no pod is ready. (S,)."""
    util = served_rps / safe_capacity_rps * (100.0 * cpu_ratio)
    return np.where(has_ready, util, np.nan)
