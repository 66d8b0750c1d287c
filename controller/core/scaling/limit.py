"""Rate limits and replica bounds, exactly as Kubernetes HPA computes them.

Shapes: current, desired (N,); event histories (N, E); rule arrays (P,). Each function
returns replica counts as float64 arrays holding whole numbers.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling.params import RuleType, ScalingRules, Select
from controller.model import Reason

_UP, _DOWN = int(Reason.RATE_LIMITED_UP), int(Reason.RATE_LIMITED_DOWN)
_MAX, _MIN = int(Reason.CLAMPED_TO_MAX), int(Reason.CLAMPED_TO_MIN)
NOT_LIMITED = -1  # limit-reason code: the stage left the value unchanged (HPA's DesiredWithinRange)


def changes_in_periods(changes: np.ndarray, times: np.ndarray, now: float, periods_s: np.ndarray) -> np.ndarray:
    """Sum of recorded replica changes with age strictly below each period, (N, P)."""
    age = now - times  # NaN for empty slots compares False
    out = np.empty((changes.shape[0], periods_s.shape[0]))
    for j, period in enumerate(periods_s):  # P is tiny (1-3 policies); rows stay vectorized
        out[:, j] = np.where(age < period, changes, 0.0).sum(axis=1)
    return out


def period_start(current: np.ndarray, added: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Replica count at the start of each policy's period, (N, P)."""
    return current[:, None] - added + removed


def _select(proposals: np.ndarray, select: Select, pick_max: bool, current: np.ndarray, unlimited: float) -> np.ndarray:
    if select == Select.DISABLED:
        return current.astype(np.float64)
    if proposals.shape[1] == 0:
        return np.full(current.shape, unlimited)
    return proposals.max(axis=1) if pick_max else proposals.min(axis=1)


def scale_up_limit(current: np.ndarray, added: np.ndarray, removed: np.ndarray, rules: ScalingRules) -> np.ndarray:
    """Highest replica count the scale-up policies allow, before the max with current, (N,).

    Pods: start + value; Percent: ceil(start * (1 + value/100)). selectPolicy Max takes the
    largest, Min the smallest, Disabled pins the limit to current.
    """
    start = period_start(current, added, removed)
    proposals = np.where(rules.types == RuleType.PODS, start + rules.values,
                         np.ceil(start * (1.0 + rules.values / 100.0)))
    return _select(proposals, rules.select, rules.select == Select.MAX, current, np.inf)


def scale_down_limit(current: np.ndarray, added: np.ndarray, removed: np.ndarray, rules: ScalingRules) -> np.ndarray:
    """Lowest replica count the scale-down policies allow, before the min with current, (N,).

    Pods: start - value; Percent: trunc(start * (1 - value/100)). selectPolicy Max takes the
    smallest (the biggest change), Min the largest, Disabled pins the limit to current.
    """
    start = period_start(current, added, removed)
    proposals = np.where(rules.types == RuleType.PODS, start - rules.values,
                         np.trunc(start * (1.0 - rules.values / 100.0)))
    return _select(proposals, rules.select, rules.select != Select.MAX, current, -np.inf)


def limit_with_behavior(current: np.ndarray, desired: np.ndarray, min_replicas, max_replicas,
                        up_limit: np.ndarray, down_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the rate limits and [min, max] in the direction of the change.

    Returns (replicas (N,), limit reason (N,) int: a Reason code or NOT_LIMITED).
    Scaling up never looks at min, scaling down never at max (the pre-checks keep current inside).
    """
    current = current.astype(np.float64)
    up_allowed_raw = np.maximum(up_limit, current)
    up_allowed = np.minimum(max_replicas, up_allowed_raw)
    up_reason = np.where(up_allowed_raw < max_replicas, _UP, _MAX)
    down_allowed_raw = np.minimum(down_limit, current)
    down_allowed = np.maximum(min_replicas, down_allowed_raw)
    down_reason = np.where(down_allowed_raw > min_replicas, _DOWN, _MIN)

    over = (desired > current) & (desired > up_allowed)
    under = (desired < current) & (desired < down_allowed)
    replicas = np.where(over, up_allowed, np.where(under, down_allowed, desired))
    reason = np.where(over, up_reason, np.where(under, down_reason, NOT_LIMITED))
    return replicas, reason


def clamp_legacy(current: np.ndarray, desired: np.ndarray, min_replicas, max_replicas,
                 factor: float, minimum: float) -> tuple[np.ndarray, np.ndarray]:
    """HPA without ``behavior``: a per-cycle scale-up cap of max(factor * current, minimum), then [min, max].

    Returns (replicas (N,), limit reason (N,)).
    """
    up_cap = np.trunc(np.maximum(factor * current, minimum))
    cap_is_tighter = max_replicas > up_cap
    upper = np.where(cap_is_tighter, up_cap, max_replicas)
    upper_reason = np.where(cap_is_tighter, _UP, _MAX)
    below = desired < min_replicas
    above = ~below & (desired > upper)
    replicas = np.where(below, min_replicas, np.where(above, upper, desired))
    reason = np.where(below, _MIN, np.where(above, upper_reason, NOT_LIMITED))
    return replicas.astype(np.float64), reason
