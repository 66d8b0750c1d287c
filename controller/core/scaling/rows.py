"""Per-target rows of a scaling state written over by another state's rows. Pure.

A target that joins a policy already running (its HPA deleted for a migration, a label added so
the selector matches it) starts with an empty row; the runtime rebuilds that row alone from
Prometheus' history (controller/runtime/warm_start.py) and writes it into the policy's state
with :func:`with_rows`, leaving every other row as it was, bit for bit.
"""

from __future__ import annotations

import numpy as np

from controller.core.history import put_rows
from controller.core.scaling.decide import ScalingState


def with_rows(state: ScalingState, rows: np.ndarray, other: ScalingState) -> ScalingState:
    """``state`` with its rows ``rows`` ((K,) int, distinct) replaced by the K rows of ``other``,
    in that order; every other row is left as it was. Both states come from the same policy
    parameters (same slots per row); the arrays are copies (``state`` is not written to)."""
    rows = np.asarray(rows, dtype=np.int64)
    if other.size != rows.size:
        raise ValueError(f"{rows.size} rows to replace, {other.size} rows given")
    if rows.size and (rows.min() < 0 or rows.max() >= state.size or np.unique(rows).size != rows.size):
        raise ValueError(f"rows must be distinct rows of the state's {state.size}, got {rows.tolist()}")
    return put_rows(state, other, rows)
