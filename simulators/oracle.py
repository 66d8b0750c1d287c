"""The oracle baseline: knows the future load and the pod start-up delay, and provisions
exactly enough ready capacity ahead of time. Its replica-hours are the floor any controller
can reach on the same service model without breaking the SLO.
"""

from __future__ import annotations

import numpy as np

from simulators import queueing as Q
from simulators.result import SLO
from simulators.workload import ServiceConfig

_QUANTILE_ROW = {50.0: 0, 95.0: 1, 99.0: 2}


def latency_at(offered_rps: np.ndarray, replicas: np.ndarray, cfg_mu: np.ndarray, cfg_l0: np.ndarray,
               tail_ratio: np.ndarray, quantile_row: int) -> np.ndarray:
    """Latency percentile (s) of healthy services serving ``offered_rps`` with ``replicas`` ready pods.

    Arrays broadcast over (T, S); the model is simulators.queueing's, without faults.
    """
    capacity = replicas * cfg_mu
    shape = np.broadcast_shapes(np.shape(offered_rps), np.shape(capacity), np.shape(cfg_l0))
    flat = lambda a: np.broadcast_to(a, shape).ravel().astype(np.float64)  # noqa: E731 (queueing takes (S,))
    served, safe = flat(np.minimum(offered_rps, capacity)), flat(np.maximum(capacity, Q.TINY_RPS))
    waits = Q.waiting_quantiles(served, safe, Q.waiting_exponent(Q.server_count(safe, flat(cfg_l0))))
    return cfg_l0 * tail_ratio + waits[quantile_row].reshape(shape)


def required_replicas(offered_rps: np.ndarray, services: tuple[ServiceConfig, ...], slo: SLO,
                      headroom_ratio: float = 0.98) -> np.ndarray:
    """(T, S) fewest ready pods that serve ``offered_rps`` (T, S) with no drops and the SLO's latency
    percentile under ``headroom_ratio * slo.latency_s``; at least 1, at most each service's max_pods.

    Latency is non-increasing in the replica count, so a vectorized bisection finds the minimum.
    """
    mu = np.array([s.capacity_rps for s in services])
    l0 = np.array([s.base_latency_s for s in services])
    row = _QUANTILE_ROW[float(slo.latency_percentile)]
    tail = np.array([s.latency_tail_ratios[row] for s in services])
    hi = np.broadcast_to(np.array([s.max_pods for s in services], dtype=np.float64), offered_rps.shape).copy()
    lo = np.maximum(np.ceil(offered_rps / mu), 1.0)  # no drops
    lo = np.minimum(lo, hi)
    limit = headroom_ratio * slo.latency_s
    ok_lo = latency_at(offered_rps, lo, mu, l0, tail, row) <= limit
    answer = np.where(ok_lo, lo, hi)
    lo = np.where(ok_lo, lo, lo + 1)  # invariant: answer in [lo, hi], feasible(answer) or answer == max
    while True:
        active = lo < answer
        if not active.any():
            return answer
        mid = np.floor((lo + answer) / 2.0)
        ok = latency_at(offered_rps, mid, mu, l0, tail, row) <= limit
        answer = np.where(active & ok, mid, answer)
        lo = np.where(active & ~ok, mid + 1, lo)


def future_max(values: np.ndarray, ahead: int) -> np.ndarray:
    """(T, S): at each tick, the max of ``values`` over this tick and the next ``ahead`` ticks."""
    out = values.copy()
    span = 1
    while span <= ahead:  # doubling: out[t] = max(values[t : t + 2*span]) after each step
        step = min(span, ahead + 1 - span)
        out[:-step] = np.maximum(out[:-step], out[step:])
        span += step
    return out


def oracle_plan(offered_rps: np.ndarray, services: tuple[ServiceConfig, ...], slo: SLO, tick_s: float) -> np.ndarray:
    """(T, S) spec replicas to set at each tick so that enough pods are ready when the load comes."""
    return future_max(required_replicas(offered_rps, services, slo), lead_ticks(services, tick_s))


def lead_ticks(services: tuple[ServiceConfig, ...], tick_s: float) -> int:
    """How many ticks ahead the oracle looks: the slowest start (scheduling + start-up) plus 2 ticks."""
    lead_s = max(s.scheduling_delay_s + s.startup_delay_s for s in services) + 2 * tick_s
    return int(np.ceil(lead_s / tick_s))


def oracle_plan_rows(load_of, k0: int, k1: int, n_ticks: int, services: tuple[ServiceConfig, ...], slo: SLO,
                     tick_s: float) -> np.ndarray:
    """Rows ``k0 .. k1 - 1`` of :func:`oracle_plan` of the whole run, from the load of those
    ticks and the :func:`lead_ticks` after them only: ``load_of(a, b)`` is the (b - a, S)
    offered load of ticks a .. b - 1. The same numbers, in memory O((k1 - k0 + lead) x S)."""
    ahead = lead_ticks(services, tick_s)
    need = required_replicas(load_of(k0, min(k1 + ahead, n_ticks)), services, slo)
    return future_max(need, ahead)[:k1 - k0]
