"""The smallest scale-down worth a change (``behavior.scaleDown.minStep: tolerance``).

The stabilization window scales down to the highest recommendation it still holds; as the
peaks of a bursty load age out of it one by one, it steps down a pod at a time, each step a
change (and on bursty load often undone minutes later). With a minimum step, a scale-down
goes ahead only when it removes at least ``share`` of the current replicas (rounded down, so
at least one pod): the policy's own down tolerance, the change it already judges too small
to act on for the metric. Only ever holds replicas up: it can delay a scale-down, never
cause one, and never touches a scale-up.

Shapes: current and stabilized (N,) replica counts (float64 holding whole numbers).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling.compiled import jit_inline

#: Guards the floor against a product landing a rounding error under a whole number.
_EPS = 1e-9


@jit_inline
def hold_small_step(current: float, stabilized: float, share: float) -> float:
    """One target (the fused kernel's): ``stabilized``, or ``current`` where it scales down to
    above floor(current * (1 - share)), i.e. by less than ``share`` of ``current``."""
    if share > 0.0 and current > stabilized > math.floor(current * (1.0 - share) + _EPS):
        return current
    return stabilized


@jit_inline
def hold_small_rise(current: float, proposal: float, share: float) -> float:
    """One target's look-ahead proposal (the fused kernel's ramp.minStep; numpy:
    ramp.hold_small_look_ahead): ``current`` where it rises above ``current`` by less than
    max(1, ceil(current * share)) pods, else ``proposal``."""
    if share > 0.0 and current < proposal < current + max(1.0, math.ceil(current * share - _EPS)):
        return current
    return proposal


def hold_small_steps(current: np.ndarray, stabilized: np.ndarray, share: float) -> np.ndarray:
    """``stabilized`` (N,), except ``current`` where it scales down by less than ``share`` of ``current``."""
    if share <= 0.0:
        return stabilized
    highest_allowed = np.floor(current * (1.0 - share) + _EPS)
    small = (stabilized < current) & (stabilized > highest_allowed)
    return np.where(small, current, stabilized)
