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
    out = np.empty((changes.shape[0], periods_s.shape[0]), order="F")
    periods = periods_s.tolist()
    for j, period in enumerate(periods):  # P is tiny (1-3 policies); rows stay vectorized
        first = periods.index(period)
        if first < j:  # rules often share a period (HPA's default scale-up: Pods and Percent per 15 s)
            out[:, j] = out[:, first]
        else:
            out[:, j] = changes.sum(axis=1, where=age < period)  # masked sum: no np.where temporary
    return out


def _select(limits: list[np.ndarray], pick_max: bool, current: np.ndarray, unlimited: float) -> np.ndarray:
    """The max (or min) of the rules' (N,) limits; a loop over the few rules beats building an
    (N, P) array and reducing its short axis."""
    if not limits:
        return np.full(current.shape, unlimited)
    out = limits[0]
    for limit in limits[1:]:
        out = np.maximum(out, limit) if pick_max else np.minimum(out, limit)
    return out


def _rule_limits(current: np.ndarray, added: np.ndarray, removed: np.ndarray, rules: ScalingRules,
                 sign: float) -> list[np.ndarray]:
    """Per rule (N,): Pods: start + sign * value; Percent: start * (1 + sign * value/100),
    ceil up (sign 1) or trunc down (sign -1); start: the replica count at the start of the
    rule's period (added, removed: (N, P) changes within each rule's period)."""
    limits = []
    for j, (kind, value) in enumerate(zip(rules.types.tolist(), rules.values.tolist())):
        start = current - added[:, j] + removed[:, j]
        if kind == RuleType.PODS:
            limits.append(start + value if sign > 0 else start - value)
        elif sign > 0:
            limits.append(np.ceil(start * (1.0 + value / 100.0)))
        else:
            limits.append(np.trunc(start * (1.0 - value / 100.0)))
    return limits


def scale_up_limit(current: np.ndarray, added: np.ndarray, removed: np.ndarray, rules: ScalingRules) -> np.ndarray:
    """Highest replica count the scale-up policies allow, before the max with current, (N,).

    Pods: start + value; Percent: ceil(start * (1 + value/100)). selectPolicy Max takes the
    largest, Min the smallest, Disabled pins the limit to current.
    """
    if rules.select == Select.DISABLED:
        return current.astype(np.float64)
    return _select(_rule_limits(current, added, removed, rules, 1.0), rules.select == Select.MAX, current, np.inf)


def scale_down_limit(current: np.ndarray, added: np.ndarray, removed: np.ndarray, rules: ScalingRules) -> np.ndarray:
    """Lowest replica count the scale-down policies allow, before the min with current, (N,).

    Pods: start - value; Percent: trunc(start * (1 - value/100)). selectPolicy Max takes the
    smallest (the biggest change), Min the largest, Disabled pins the limit to current.
    """
    if rules.select == Select.DISABLED:
        return current.astype(np.float64)
    return _select(_rule_limits(current, added, removed, rules, -1.0), rules.select != Select.MAX, current, -np.inf)


def limit_with_behavior(current: np.ndarray, desired: np.ndarray, min_replicas, max_replicas,
                        up_limit: np.ndarray, down_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the rate limits and [min, max] in the direction of the change.

    Returns (replicas (N,), limit reason (N,) int: a Reason code or NOT_LIMITED).
    Scaling up never looks at min, scaling down never at max (the pre-checks keep current inside).
    """
    current = np.asarray(current, dtype=np.float64)
    up_allowed_raw = np.maximum(up_limit, current)
    up_allowed = np.minimum(max_replicas, up_allowed_raw)
    down_allowed_raw = np.minimum(down_limit, current)
    down_allowed = np.maximum(min_replicas, down_allowed_raw)

    over = (desired > current) & (desired > up_allowed)  # over and under exclude each other
    under = (desired < current) & (desired < down_allowed)
    # few rows are limited: masked writes into a copy, cheaper than np.where chains
    replicas = np.array(desired, dtype=np.float64)
    np.putmask(replicas, over, up_allowed)
    np.putmask(replicas, under, down_allowed)
    reason = np.full(current.shape, NOT_LIMITED)
    if over.any():
        reason[over] = np.where(up_allowed_raw[over] < max_replicas, _UP, _MAX)
    if under.any():
        reason[under] = np.where(down_allowed_raw[under] > min_replicas, _DOWN, _MIN)
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
