"""Pooled headroom: the load a metric with ``target.headroom: pooled`` is sized for (stage 3's input).

An ``averagePerReplica`` target T below a replica's capacity c keeps c - T spare per replica:
headroom in proportion to the load. The policy's up tolerance ``up`` lets the rate drift to
T (1 + up) per replica before a scale-up: that share is a reaction margin, and load grows in
proportion during a reaction, so it stays per replica. The rest, c - T (1 + up) per replica at
min replicas (where the target was derived from the SLO), is queueing headroom, which a service
needs less of per replica the more replicas share its load (more servers queue less at the same
latency: square-root staffing; a Poisson rate's spread also grows as the square root). Pooled:
the capacity for load v is v (1 + up) + Hq sqrt(v / L0), with L0 = max(min replicas, 1) x T the
reference load and Hq = max(min replicas, 1) (c - T (1 + up)) the queueing spare there; at L0 it
is exactly the per-replica rule's.

The proposal stage keeps its rule ceil(v / T) and its tolerance band against T x current: it is
fed the equivalent load v' = T (capacity for v) / c = L0 (a x + (1 - a) sqrt(x)), x = v / L0,
a = T (1 + up) / c, where v > L0, and v itself at or below L0 (pooled headroom only ever sizes
at or below the per-replica rule).

Saturated: where v is above what the ready replicas serve (ready x c), the service is not a
queue in steady state (it drops or backs up, and while it is saturated the load a start-up
ahead is unknown: the signal is only a lower bound of demand). Square-root staffing is the
spare of a stationary queue, so there v is sized per replica (v itself: the target's full
headroom) until the ready pods catch up. This is where pooled sizing lost to HPA at equal cost
(World Cup 1998 with 90 s start-ups: 4 ready pods at 430 rps got 5, not 6, and the load rose
15% before they were Ready). Pure numpy, elementwise.
"""

from __future__ import annotations

import numpy as np


def pooled_load(value, target: float, capacity: float, reference: float, tolerance_up: float, ready):
    """The load (``value``'s shape, broadcast with ``ready``) the per-replica rule at ``target``
    sizes like pooled headroom: ``value`` where it is at most ``reference`` (or NaN) or above
    ``ready`` x ``capacity`` (saturated), else reference (a x + (1 - a) sqrt(x)), x = value /
    reference, a = target (1 + tolerance_up) / capacity. ``ready``: the ready replicas (NaN: not
    known, never saturated). Requires capacity > target (1 + tolerance_up) > 0 and reference > 0."""
    value = np.asarray(value, dtype=np.float64)
    a = target * (1.0 + tolerance_up) / capacity
    with np.errstate(invalid="ignore", over="ignore"):
        x = value / reference
        pooled = reference * (a * x + (1.0 - a) * np.sqrt(np.maximum(x, 1.0)))
        steady = (x > 1.0) & ~(value > np.asarray(ready, dtype=np.float64) * capacity)
    return np.where(steady, pooled, value)


def pooled_values(params, values: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """(N, M) values with each pooled metric's column replaced by its :func:`pooled_load`
    (``params``: a PolicyParams; ``ready`` (N,) the ready replicas); ``values`` itself (not a
    copy) when no metric is pooled."""
    columns = params.pooled_metrics
    if not columns:
        return values
    out = np.array(values, dtype=np.float64, copy=True)
    reference = float(max(params.min_replicas, 1))
    for j in columns:
        m = params.metrics[j]
        out[:, j] = pooled_load(out[:, j], m.target, m.capacity, reference * m.target, params.tolerance_up, ready)
    return out
