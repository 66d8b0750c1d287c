"""Hands off: targets whose replicas someone else set keep them, with reason ExternalOverride.

The shell (controller/runtime/external_scale.py) tells which rows are under hands-off: the
observed spec.replicas differs from what this controller last wrote or accepted, and another
field manager wrote it, less than ``onExternalScale.handsOff`` ago. Their decision is the
current replicas, or, where someone raised the count, at least that count (a floor). Everything else the cycle computed is kept (smoothing, the recommendation
history, forecasts: the stabilization window goes on filling from the count they set), so when
the hands-off ends the next decision starts from the current replicas under the policy's own
windows and rate limits, never from the number this controller had set before.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from controller.core.scaling.decide import Decision
from controller.model import Reason


def hands_off(decision: Decision, held: np.ndarray, floors: np.ndarray | None = None) -> Decision:
    """``decision`` with the ``held`` rows ((N,) bool) kept as someone set them, reason
    ExternalOverride; the same object when no row is held.

    ``floors`` ((N,) replicas, NaN where none): a held row with a floor (someone raised the count:
    "at least this many") keeps the policy's decision where it is above the floor (a load that
    asks for more still gets it) and the floor where it is not (reason ExternalOverride);
    a held row without one (someone lowered it, or it is not known which) stays at its current
    replicas."""
    held = np.asarray(held, bool)
    if not held.any():
        return decision
    norm = decision.norm
    floor = np.full(held.shape, np.nan) if floors is None else np.asarray(floors, dtype=np.float64)
    has_floor = held & np.isfinite(floor)
    kept = np.where(has_floor, floor, np.asarray(decision.current, dtype=np.float64))
    overridden = held & ~(has_floor & (norm.desired > floor))  # at the floor: kept by the hands-off
    desired = np.where(overridden, kept, norm.desired)
    reason = np.where(overridden, np.asarray(int(Reason.EXTERNAL_OVERRIDE), dtype=np.asarray(norm.reason).dtype),
                      norm.reason)
    return replace(decision, norm=replace(norm, desired=desired, reason=reason))
