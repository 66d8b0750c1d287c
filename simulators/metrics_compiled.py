"""The simulated metrics source's window means as one compiled pass (numba), for ``SimMetrics.query``.

A gauge query (``avg_over_time``-like: the mean of the samples present in the window) was a
gather of the (W, S) ring, a NaN mask, two sums over the window and three selects, per query
and cycle. :func:`try_window_means` gives the same numbers in one loop per target: the sum runs
over the ring slots in storage order from 0.0 (NaN read as 0), as numpy's
``nansum`` over the outer axis does, so the floats are identical. :func:`window_means_numpy`
is the reference (and runs for ``SETPOINT_COMPILED=0``); tests/simulators/test_metrics_compiled.py
compares both.
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit


@jit
def _window_means_kernel(ring, filled, rows, nonfinite, out):
    for i in range(rows.shape[0]):
        r = rows[i]
        if filled == 0 or nonfinite[r]:
            out[i] = math.nan
            continue
        total, count = 0.0, 0  # numpy's sum starts from 0.0 too (a lone -0.0 sums to 0.0)
        for s in range(filled):
            v = ring[s, r]
            if v == v:
                total += v
                count += 1
            else:
                total += 0.0  # as nansum: the NaN reads as 0 (turns a -0.0 sum into 0.0)
        out[i] = total / count if count > 0 else math.nan


def try_window_means(ring: np.ndarray, filled: int, rows: np.ndarray, nonfinite: np.ndarray) -> np.ndarray | None:
    """(N,) mean of the samples present (not NaN) in the first ``filled`` slots of ``ring``
    (W, S) for the services ``rows`` (N,) int64; NaN where none is, or where ``nonfinite`` (S,)
    is set. None when the kernels are off, or for one service (numpy sums a single column
    pairwise): then use numpy."""
    if rows.shape[0] < 2 or not compiled.enabled():
        return None
    out = np.empty(rows.shape[0])
    try:
        _window_means_kernel(ring, int(filled), rows, nonfinite, out)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return out


def window_means_numpy(ring: np.ndarray, filled: int, rows: np.ndarray | slice, nonfinite: np.ndarray) -> np.ndarray:
    """:func:`try_window_means` with numpy (``rows`` may be a slice); the reference."""
    window = ring[:filled, rows]
    with np.errstate(invalid="ignore"):
        counts = np.sum(~np.isnan(window), axis=0)
        values = np.where(counts > 0, np.nansum(window, axis=0) / np.maximum(counts, 1), np.nan)
    return np.where(nonfinite[rows], np.nan, values)


def window_means(ring: np.ndarray, filled: int, rows: np.ndarray | slice, nonfinite: np.ndarray) -> np.ndarray:
    """The window means of ``SimMetrics.query``'s gauges: compiled, or numpy when the kernel declines.
    ``rows``: the services (N,), or ``slice(None)`` for every service in order."""
    index = np.arange(ring.shape[1]) if isinstance(rows, slice) else np.asarray(rows, np.int64)
    fast = try_window_means(ring, filled, index, nonfinite)
    return fast if fast is not None else window_means_numpy(ring, filled, rows, nonfinite)
