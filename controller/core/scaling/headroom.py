"""Pooled headroom: the load a metric with ``target.capacityPerReplica`` is sized for (stage 3's input).

An ``averagePerReplica`` target T below a replica's capacity c keeps c - T spare per replica:
headroom in proportion to the load. What the spare is for, queueing and the noise of the
measured rate, grows only as the square root of the load (more servers queue less at the same
latency, square-root staffing; a Poisson rate's spread is its square root). ``headroom: pooled``
keeps the policy's target at the reference load L0 = max(min replicas, 1) x T (where the target
was derived from the SLO) and above it lets the spare grow as sqrt(load / L0): the replicas for
load v are ceil((v + H0 sqrt(v / L0)) / c), H0 = L0 (c - T) / T the spare at L0.

The proposal stage keeps its rule ceil(v / T) (and its tolerance band against T x current): it
is fed the equivalent load v' = T (v + H0 sqrt(v / L0)) / c = L0 (u x + (1 - u) sqrt(x)),
x = v / L0, u = T / c, where v > L0, and v itself at or below L0 (never more than v: pooled
headroom only ever sizes at or below the per-replica rule). Pure numpy, elementwise.
"""

from __future__ import annotations

import numpy as np


def pooled_load(value, target: float, capacity: float, reference: float):
    """The load (same shape as ``value``) the per-replica rule at ``target`` sizes to
    ceil((v + H0 sqrt(v / reference)) / capacity) replicas: ``value`` where it is at most
    ``reference`` (or NaN), else reference (u x + (1 - u) sqrt(x)), x = value / reference,
    u = target / capacity. Requires capacity > target > 0 and reference > 0."""
    value = np.asarray(value, dtype=np.float64)
    u = target / capacity
    with np.errstate(invalid="ignore", over="ignore"):
        x = value / reference
        pooled = reference * (u * x + (1.0 - u) * np.sqrt(np.maximum(x, 1.0)))
    return np.where(x > 1.0, pooled, value)


def pooled_values(params, values: np.ndarray) -> np.ndarray:
    """(N, M) values with each pooled metric's column replaced by its :func:`pooled_load`
    (``params``: a PolicyParams); ``values`` itself (not a copy) when no metric is pooled."""
    columns = params.pooled_metrics
    if not columns:
        return values
    out = np.array(values, dtype=np.float64, copy=True)
    reference = float(max(params.min_replicas, 1))
    for j in columns:
        m = params.metrics[j]
        out[:, j] = pooled_load(out[:, j], m.target, m.capacity, reference * m.target)
    return out
