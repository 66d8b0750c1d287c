"""A decision's scale actions as arrays: the rows the shell scales, with their counts and reasons.

A cycle scales every existing target whose desired count differs from its current one. The
shell carries these as arrays (controller.model.ScaleActions) to the cluster port and the
records, where a per-target Action each cost a Python object per change. :func:`scale_rows`
is the reference (about a dozen numpy calls, each a few microseconds on a cycle's small
arrays); :func:`scale_rows_fast` gives the same arrays from one compiled pass when the kernels
are on (tests/core/test_scale_rows.py compares both).

Shapes: N targets, K scaled (the changed rows of existing targets, ascending).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit
from controller.model import first_by_direction


class ScaleRows(NamedTuple):
    """The scales of a decision: ``scales`` (4, K) int64, a column per scale (as
    controller.model.ScaleActions holds them): the changed rows of existing targets, ascending;
    their desired counts truncated as ``int()`` does; the spec counts they replace (truncated
    alike); their reason codes. ``every``: these are every change the decision makes (every
    changed row exists and its desired count is whole); ``first``: the position of the first
    scale down, to the same count, up (controller.model.first_by_direction)."""

    scales: np.ndarray
    every: bool
    first: tuple[int, int, int]


def scale_rows(desired: np.ndarray, current: np.ndarray, exists: np.ndarray, spec: np.ndarray,
               reason: np.ndarray) -> ScaleRows:
    """The scales of a decision with ``desired`` (N,) float64 counts for targets at ``current``
    (N,) counts (the decision's), of which ``exists`` (N,) bool were found, at ``spec`` (N,)
    replicas (the cluster's), with ``reason`` (N,) codes. The numpy reference."""
    rows = np.flatnonzero(desired != current)
    on_existing = exists[rows]
    every = bool(on_existing.all())
    rows = rows[on_existing]
    wanted = desired[rows]
    replicas = wanted.astype(np.int64)
    from_replicas = spec[rows].astype(np.int64)
    scales = np.stack([rows.astype(np.int64), replicas, from_replicas, reason[rows].astype(np.int64)])
    return ScaleRows(scales, every and bool(np.array_equal(replicas, wanted)), first_by_direction(from_replicas, replicas))


@jit
def _scale_rows_kernel(desired, current, exists, spec, reason):
    n = desired.shape[0]
    k = 0
    every = True
    for i in range(n):
        if desired[i] != current[i]:
            if exists[i]:
                k += 1
            else:
                every = False
    scales = np.empty((4, k), np.int64)
    first = np.full(3, -1, np.int64)
    j = 0
    for i in range(n):
        if desired[i] != current[i] and exists[i]:
            r = np.int64(desired[i])
            f = np.int64(spec[i])
            if r != desired[i]:
                every = False
            scales[0, j], scales[1, j], scales[2, j], scales[3, j] = i, r, f, np.int64(reason[i])
            direction = (1 if r > f else 0) - (1 if r < f else 0) + 1
            if first[direction] < 0:
                first[direction] = j
            j += 1
    return scales, every, (first[0], first[1], first[2])


def scale_rows_fast(desired: np.ndarray, current: np.ndarray, exists: np.ndarray, spec: np.ndarray,
                    reason: np.ndarray) -> ScaleRows:
    """:func:`scale_rows` in one compiled pass when the kernels are on and the arrays are (N,)
    alike (desired float64, exists bool); else the reference."""
    if (compiled.enabled() and desired.dtype == np.float64 and exists.dtype == np.bool_
            and desired.shape == current.shape == exists.shape == spec.shape == reason.shape):
        try:
            return ScaleRows(*_scale_rows_kernel(desired, current, exists, spec, reason))
        except compiled.KERNEL_ERRORS as exc:
            compiled.mark_broken(exc)
    return scale_rows(desired, current, exists, spec, reason)
