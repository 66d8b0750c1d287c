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

#: Quantiles reported, and ln(1 - q) for each, as a (3, 1) column to broadcast over services.
QUANTILES = (0.5, 0.95, 0.99)
LN_TAIL = tuple(math.log(1.0 - q) for q in QUANTILES)
_Q_COL = np.array(QUANTILES)[:, None]
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
    available = backlog / dt_s
    available += offered_rps
    served = np.minimum(available, capacity_rps)
    excess = available
    excess -= served
    new_backlog = np.minimum(excess * dt_s, queue_limit)
    dropped = excess
    dropped -= new_backlog / dt_s
    return served, dropped, new_backlog


def serve_drop(offered_rps, capacity_rps):
    """(served_rps, dropped_rps) in drop mode: the no-backlog case of :func:`serve`."""
    served = np.minimum(offered_rps, capacity_rps)
    return served, offered_rps - served


def waiting_quantiles(served_rps, safe_capacity_rps, exponent) -> np.ndarray:
    """W_q for q in QUANTILES, seconds: a (3, S) array (rows p50, p95, p99).

    ``safe_capacity_rps`` is ``max(C, TINY_RPS)``; ``exponent`` from :func:`waiting_exponent`.
    """
    rho = served_rps / safe_capacity_rps
    np.minimum(rho, RHO_CAP, out=rho)
    np.maximum(rho, RHO_FLOOR, out=rho)
    log_p_wait = np.log(rho)
    log_p_wait *= exponent
    inv_rate = 1.0 - rho
    inv_rate *= safe_capacity_rps
    np.reciprocal(inv_rate, out=inv_rate)  # 1 / (C (1 - ρ))
    wait = np.empty((len(QUANTILES), rho.shape[0]))
    for row, ln_tail in zip(wait, LN_TAIL):  # row by row: broadcasting a (3, 1) column is slower
        np.subtract(log_p_wait, ln_tail, out=row)
        np.maximum(row, 0.0, out=row)
        row *= inv_rate
    return wait


def bad_pod_extra(bad_capacity_rps, extra_weighted, safe_capacity_rps) -> np.ndarray:
    """extra_q for q in QUANTILES, seconds: a (3, S) array.

    ``bad_capacity_rps`` = Σ over ready pods with extra latency of their capacity;
    ``extra_weighted`` = Σ c_i x_i over the same pods.
    """
    share = bad_capacity_rps / safe_capacity_rps
    mean_extra = extra_weighted / np.maximum(bad_capacity_rps, TINY_RPS)
    return np.where(share > 1.0 - _Q_COL, mean_extra, 0.0)


def latency_quantiles(base_quantiles, waits, extras, backlog_wait, timeout_s, no_capacity_demand) -> np.ndarray:
    """latency_q = min(timeout, L0 r_q + W_q + Q'/C + extra_q), (3, S) seconds; ``timeout``
    where ``no_capacity_demand`` (S,) bool (demand but no capacity).

    ``base_quantiles`` (3, S) is L0 r_q; ``waits`` (3, S) from :func:`waiting_quantiles` (updated
    in place and returned); ``extras`` (3, S) and ``backlog_wait`` (S,) may be None when absent.
    """
    lat = waits
    lat += base_quantiles
    if backlog_wait is not None:
        lat += backlog_wait
    if extras is not None:
        lat += extras
    np.minimum(lat, timeout_s, out=lat)
    if no_capacity_demand is not None:
        lat[:, no_capacity_demand] = timeout_s[no_capacity_demand]
    return lat


def error_ratio(served_rps, dropped_rps, pod_error_ratio):
    """(errors_rps, error_ratio): failures among served plus drops, over served plus dropped."""
    errors = served_rps * pod_error_ratio
    outcomes = served_rps + dropped_rps
    np.maximum(outcomes, TINY_RPS, out=outcomes)
    ratio = errors + dropped_rps
    ratio /= outcomes
    return errors, ratio


def utilization_scale(safe_capacity_rps, cpu_ratio, has_ready) -> np.ndarray:
    """Factor that turns served rps into utilization percent: 100 * cpu_ratio / C, NaN where
    no pod is ready (no series). (S,)."""
    return np.where(has_ready, (100.0 * cpu_ratio) / safe_capacity_rps, np.nan)
