"""Per-target rows of a scaling state written over by another state's rows. Pure.

A target that joins a policy already running (its HPA deleted for a migration, a label added so
the selector matches it) starts with an empty row; the runtime rebuilds that row alone from
Prometheus' history (controller/runtime/warm_start.py) and writes it into the policy's state
with :func:`with_rows`, leaving every other row as it was, bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

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
    return _spliced(state, other, rows)


def _spliced(a, b, rows: np.ndarray):
    """``a`` (an array of N rows, a tuple or dataclass of them, or None) with ``b``'s rows at ``rows``."""
    if a is None or b is None:  # a part a state made before it lacks (NormState.usable_since)
        return a
    if isinstance(a, np.ndarray):
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"rows of shape {b.shape[1:]} cannot replace rows of shape {a.shape[1:]}")
        out = a.copy(order="K")  # keeps each array's memory order (the kernels want some in Fortran order)
        out[rows] = b
        return out
    if isinstance(a, tuple):
        return tuple(_spliced(x, y, rows) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a):
        return dataclasses.replace(a, **{f.name: _spliced(getattr(a, f.name), getattr(b, f.name), rows)
                                         for f in dataclasses.fields(a)})
    raise TypeError(f"cannot splice rows of a {type(a).__name__}")
