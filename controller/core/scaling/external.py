"""Hands off: targets whose replicas someone else set keep them, with reason ExternalOverride.

The shell (controller/runtime/external_scale.py) tells which rows are under hands-off: the
observed spec.replicas differs from what this controller last wrote or accepted, and another
field manager wrote it, less than ``onExternalScale.handsOff`` ago. Their decision is the
current replicas. Everything else the cycle computed is kept (smoothing, the recommendation
history, forecasts: the stabilization window goes on filling from the count they set), so when
the hands-off ends the next decision starts from the current replicas under the policy's own
windows and rate limits, never from the number this controller had set before.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from controller.core.scaling.decide import Decision
from controller.model import Reason


def hands_off(decision: Decision, held: np.ndarray) -> Decision:
    """``decision`` with the ``held`` rows ((N,) bool) at their current replicas, reason
    ExternalOverride; the same object when no row is held."""
    held = np.asarray(held, bool)
    if not held.any():
        return decision
    norm = decision.norm
    desired = np.where(held, np.asarray(decision.current, dtype=np.float64), norm.desired)
    reason = np.where(held, np.asarray(int(Reason.EXTERNAL_OVERRIDE), dtype=np.asarray(norm.reason).dtype),
                      norm.reason)
    return replace(decision, norm=replace(norm, desired=desired, reason=reason))
