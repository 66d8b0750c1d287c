"""Stage 3, propose: one replica proposal per target and metric, with the tolerance dead band.

Shapes: value (N, M) smoothed metric values; current, ready, status (N,) replica counts;
kinds and targets (M,). Proposals are float64 arrays holding whole numbers.

Choices between two arrays are masked writes into an array of our own (np.putmask), not
np.where: the same values, and np.where costs several ufunc calls on arrays of this size.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling.headroom import pooled_values
from controller.core.scaling.params import MetricKind

_VALUE, _AVERAGE = int(MetricKind.VALUE), int(MetricKind.AVERAGE_PER_REPLICA)

INT32_MAX = float(2**31 - 1)


def within_tolerance(ratio: np.ndarray, tolerance_up: float, tolerance_down: float) -> np.ndarray:
    """HPA's dead band, inclusive on both sides: (1 - down) <= ratio <= (1 + up)."""
    return (ratio >= 1.0 - tolerance_down) & (ratio <= 1.0 + tolerance_up)


def ceil_clamped(x: np.ndarray) -> np.ndarray:
    """A new array: ceil(x), at most INT32_MAX."""
    out = np.ceil(x)
    return np.minimum(out, INT32_MAX, out=out)


def propose_value(value, target, current, ready, tol_up, tol_down):
    """The workload should hold ``value`` at ``target``: ceil(ready * value / target).

    From zero replicas: ceil(value / target), with no tolerance (HPA's scale-from-zero path).
    """
    ratio = value / target
    out = ceil_clamped(ratio * ready)
    np.putmask(out, within_tolerance(ratio, tol_up, tol_down), current)
    np.putmask(out, current == 0, np.ceil(ratio))
    return out


def propose_average(value, target, base, tol_up, tol_down):
    """``value`` is a total to share at ``target`` per replica: ceil(value / target).

    The tolerance compares value with target * base and keeps ``base`` inside the band.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = value / (target * base)
    out = ceil_clamped(value / target)
    np.putmask(out, within_tolerance(ratio, tol_up, tol_down), base)
    return out


def propose_utilization(value, target, current, ready, unready, tol_up, tol_down):
    """Mean utilization of ready pods (percent) against a target percent.

    Fast path: ceil(ratio * ready). When scaling up with unready pods, those count as idle
    (usage 0): the ratio is recomputed over ready + unready, and the result is kept at current
    if that flips the direction, lands within tolerance, or would not scale up. (The ``hpa``
    preset runs HPA's own pod-level calculator instead: core/scaling/hpa_propose.py.)
    """
    ratio = value / target
    out = ceil_clamped(ratio * ready)  # the fast path
    np.putmask(out, within_tolerance(ratio, tol_up, tol_down), current)
    diluting = (unready > 0) & (ratio > 1.0)
    if diluting.any():
        total = ready + unready
        with np.errstate(divide="ignore", invalid="ignore"):
            diluted = value * ready / total / target
        slow = ceil_clamped(diluted * total)
        keep = within_tolerance(diluted, tol_up, tol_down) | (diluted < 1.0) | (slow < current)
        np.putmask(slow, keep, current)
        np.putmask(out, diluting, slow)
    return out


def propose(kinds: np.ndarray, targets: np.ndarray, value: np.ndarray, current: np.ndarray, ready: np.ndarray,
            status: np.ndarray, tol_up: float, tol_down: float) -> tuple[np.ndarray, np.ndarray]:
    """Setpoint's proposals (N, M) and a validity mask (N, M) for every metric of every target.

    A direction guard HPA lacks: a metric above its band never proposes fewer replicas than
    current (which happens in HPA when pods are still starting), and a metric below its band
    never proposes more. The ``hpa`` preset does not come here: core/scaling/hpa_propose.py.
    """
    proposals = np.empty(value.shape)
    valid = np.isfinite(value)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, (kind, target) in enumerate(zip(kinds.tolist(), targets.tolist())):
            v = value[:, j]
            if kind == _VALUE:
                p = propose_value(v, target, current, ready, tol_up, tol_down)
                ratio = v / target
            elif kind == _AVERAGE:
                p = propose_average(v, target, current, tol_up, tol_down)
                ratio = v / (target * np.maximum(current, 1.0))
            else:
                p = propose_utilization(v, target, current, ready, np.maximum(status - ready, 0.0), tol_up, tol_down)
                ratio = v / target
                valid[:, j] &= ready > 0  # no utilization without a ready pod to measure it
            proposals[:, j] = _direction_guard(p, ratio, current)
    valid &= np.isfinite(proposals)
    np.putmask(proposals, ~valid, np.nan)
    return proposals, valid


def propose_policy(params, value: np.ndarray, current: np.ndarray, ready: np.ndarray,
                   status: np.ndarray, withheld: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`propose` with ``params``' (a PolicyParams) metric kinds, targets and tolerances, on
    ``value`` (N, M) as the policy sizes it (pooled headroom: headroom.pooled_values).

    ``withheld`` (N,): spec replicas whose pods will not serve (core/scaling/withheld.py): the
    proposals are sized on the ``current - withheld`` serving replicas (their pods also leave
    ``status``), and the withheld ones are added back, so the serving pods reach the target."""
    value = pooled_values(params, value, ready)
    if withheld is None or not withheld.any():
        return propose(params.metric_kinds, params.metric_targets, value, current, ready, status,
                       params.tolerance_up, params.tolerance_down)
    proposals, valid = propose(params.metric_kinds, params.metric_targets, value, current - withheld, ready,
                               status - withheld, params.tolerance_up, params.tolerance_down)
    proposals += withheld[:, None]  # NaN (not valid) stays NaN
    return proposals, valid


def _direction_guard(p: np.ndarray, ratio: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(N,): at least current above the band (ratio > 1), at most current below it (ratio <
    1), current at exactly 1 or an unknown ratio (NaN)."""
    out = np.maximum(p, current)
    below = ratio < 1.0
    np.putmask(out, below, np.minimum(p, current))
    np.putmask(out, ~(below | (ratio > 1.0)), current)
    return out
