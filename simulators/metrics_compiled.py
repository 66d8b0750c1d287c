"""The simulated metrics source's window means as one compiled pass (numba), for ``SimMetrics.query``.

Also the plain mean of a ramp's last few ticks (``recent_means``: its ``latest`` query), which
was a gather of the window and ``np.mean`` per cycle.

A gauge query (``avg_over_time``-like: the mean of the samples present in the window) was a
gather of the (W, S) ring, a NaN mask, two sums over the window and three selects, per query
and cycle. :func:`try_window_means` gives the same numbers in one pass, summing in numpy's order
(NaN read as 0): for every service in order (a C-ordered window) the window's rows one after
the other, walked in memory order; for services picked (a gathered, F-ordered window) each
column pairwise: one loop per target for a few, and for a quarter of the services or more (a
policy's targets sorted by name pick every service, permuted) the pairwise sums' lanes as rows
added a contiguous ring row at a time for every service, then picked; so the floats are identical. :func:`window_means_numpy`
is the reference (and runs for ``SETPOINT_COMPILED=0``); tests/simulators/test_metrics_compiled.py
compares both.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit


@jit
def _window_means_kernel(ring, filled, rows, nonfinite, sequential, buf, out):
    if sequential:  # every service in order: the rows of the window one after the other
        _row_by_row_means(ring, filled, nonfinite, out)
        return
    if _gathers_most(rows, ring.shape[1]):  # the columns' pairwise sums for every service at once, then picked
        sums, counts = np.empty(ring.shape[1]), np.empty(ring.shape[1], np.int64)
        _column_pairwise_sums(ring, _first_slots(filled), True, sums, counts)
        for i in range(rows.shape[0]):
            r = rows[i]
            out[i] = sums[r] / counts[r] if filled > 0 and not nonfinite[r] and counts[r] > 0 else math.nan
        return
    for i in range(rows.shape[0]):
        r = rows[i]
        if filled == 0 or nonfinite[r]:
            out[i] = math.nan
            continue
        count = 0
        for s in range(filled):
            v = ring[s, r]
            if v == v:
                count += 1
            else:
                v = 0.0  # as nansum: a NaN reads as 0
            buf[s] = v
        total = compiled._pairwise_sum(buf, 0, filled)  # a gathered (F-ordered) window: numpy sums pairwise
        out[i] = total / count if count > 0 else math.nan


@compiled.jit_inline
def _row_by_row_means(ring, filled, nonfinite, out):
    """The window means of every service (column) of ``ring`` (W, S) into ``out`` (S,), summed
    row after row as numpy sums a C-ordered window: each service's adds are the per-target
    loop's, in the same order, but the loop walks the ring's rows in memory order (a column
    is S floats apart between slots: a cache line per slot per service) and vectorizes."""
    n = out.shape[0]
    counts = np.zeros(n, np.int64)
    out[:] = 0.0
    for s in range(filled):
        for i in range(n):
            v = ring[s, i]
            present = v == v
            counts[i] += present
            out[i] += v if present else 0.0  # as nansum: a NaN reads as 0
    for i in range(n):
        if filled == 0 or nonfinite[i] or counts[i] == 0:
            out[i] = math.nan
        else:
            out[i] = out[i] / counts[i]


#: A gathered window is summed for every service at once when it picks at least a quarter of
#: them: a pass over the ring's rows (contiguous, vectorized) costs less than a column gather
#: per target (a cache line per slot per target) from about there.
_MOST_DIVISOR = 4


@compiled.jit_inline
def _gathers_most(rows, s_count):
    """Whether the ``rows`` (N,) picked are at least 1 / _MOST_DIVISOR of the ``s_count`` services."""
    return rows.shape[0] * _MOST_DIVISOR >= s_count


@compiled.jit_inline
def _first_slots(filled):
    """(filled,) int64 0..filled-1: a window's slots in the order its means sum them."""
    return np.arange(filled)


@jit
def _column_pairwise_sums(ring, slots, nan_as_zero, sums, counts):
    """``compiled._pairwise_sum`` of every column of ``ring`` (W, S) over the rows ``slots``
    (k,) int64 in that order, into ``sums`` (S,): the same adds in the same order as the
    per-column sum of a gathered window (the per-target loops), but each add a pass over a
    contiguous row (vectorized). ``nan_as_zero``: a NaN adds 0 (as nansum) and ``counts`` (S,)
    gets each column's samples present; else NaN propagates and ``counts`` is not touched."""
    k, n = slots.shape[0], sums.shape[0]
    if nan_as_zero:
        counts[:] = 0
    if k < 8:  # numpy's short sum: from 0.0, one term after the other
        sums[:] = 0.0
        for j in range(k):
            _add_row(ring[slots[j]], nan_as_zero, sums, counts)
        return
    lanes = np.empty((8, n))  # the pairwise sum's eight partial sums, one row each
    for j in range(8):  # each starts as its first term (not 0.0 + it: a -0.0 stays -0.0)
        _set_row(ring[slots[j]], nan_as_zero, lanes[j], counts)
    for j in range(8, k - k % 8):
        _add_row(ring[slots[j]], nan_as_zero, lanes[j % 8], counts)
    for i in range(n):
        sums[i] = ((lanes[0, i] + lanes[1, i]) + (lanes[2, i] + lanes[3, i])) + (
            (lanes[4, i] + lanes[5, i]) + (lanes[6, i] + lanes[7, i]))
    for j in range(k - k % 8, k):
        _add_row(ring[slots[j]], nan_as_zero, sums, counts)


@jit
def _set_row(row, nan_as_zero, acc, counts):
    """acc = row (S,) (a -0.0 kept), a NaN read as 0 and counted out of ``counts`` with ``nan_as_zero``."""
    for i in range(acc.shape[0]):
        v = row[i]
        if nan_as_zero:
            present = v == v
            counts[i] += present
            v = v if present else 0.0
        acc[i] = v


@jit
def _add_row(row, nan_as_zero, acc, counts):
    """acc += row (S,), a NaN read as 0 and counted out of ``counts`` with ``nan_as_zero``."""
    if nan_as_zero:
        for i in range(acc.shape[0]):
            v = row[i]
            present = v == v
            counts[i] += present
            acc[i] += v if present else 0.0
    else:
        for i in range(acc.shape[0]):
            acc[i] += row[i]


@functools.lru_cache(maxsize=8)
def _every_row(s: int) -> np.ndarray:
    """(S,) int64 0..S-1, the rows of every service, made once per size (the kernels only read it)."""
    return np.arange(s, dtype=np.int64)


def try_window_means(ring: np.ndarray, filled: int, rows: np.ndarray | slice,
                     nonfinite: np.ndarray) -> np.ndarray | None:
    """(N,) mean of the samples present (not NaN) in the first ``filled`` slots of ``ring``
    (W, S) for the services ``rows`` (N,) int64, or ``slice(None)`` for every service in order;
    NaN where none is, or where ``nonfinite`` (S,) is set. None when the kernels are off or the
    window is longer than the compiled pairwise sum covers: then use numpy.

    The order of the sum follows numpy's: the window of every service (a C-ordered view) sums
    its rows one after the other; a gathered window (F-ordered) or a single column sums each
    column pairwise."""
    filled = int(filled)
    if filled > compiled._PAIRWISE_BLOCK or not compiled.enabled():
        return None
    every = isinstance(rows, slice)
    index = _every_row(ring.shape[1]) if every else np.asarray(rows, np.int64)
    out = np.empty(index.shape[0])
    try:
        _window_means_kernel(ring, filled, index, nonfinite, every and ring.shape[1] >= 2, np.empty(filled), out)
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


@jit
def _recent_means_kernel(ring, slots, rows, sequential, buf, out):
    k = slots.shape[0]
    if sequential:  # every service in order: the slots' rows added one after the other, in memory order
        out[:] = 0.0
        for s in range(k):
            row = ring[slots[s]]
            for i in range(out.shape[0]):
                out[i] += row[i]  # each service's adds as a per-service loop's, in the same order
        for i in range(out.shape[0]):
            out[i] = out[i] / k
        return
    if _gathers_most(rows, ring.shape[1]):  # the columns' pairwise sums for every service at once, then picked
        sums = np.empty(ring.shape[1])
        _column_pairwise_sums(ring, slots, False, sums, np.empty(0, np.int64))
        for i in range(rows.shape[0]):
            out[i] = sums[rows[i]] / k
        return
    for i in range(rows.shape[0]):
        r = rows[i]
        for s in range(k):
            buf[s] = ring[slots[s], r]
        out[i] = compiled._pairwise_sum(buf, 0, k) / k


def try_recent_means(ring: np.ndarray, slots: np.ndarray, rows: np.ndarray | slice) -> np.ndarray | None:
    """(N,) ``np.mean(ring[slots][:, rows], axis=0)``: the plain mean (NaN propagates) of the
    ring's slots ``slots`` (k,) int64, in that order, for the services ``rows`` (N,) int64 or
    ``slice(None)``; without gathering the (k, N) window. None when the kernels are off, no slot
    is given or the window is longer than the compiled pairwise sum covers: then use numpy.

    Summed in numpy's order: row after row when the window is a C-ordered (k, S >= 2) view
    (every service in order), pairwise down each column when it is gathered (F-ordered) or has
    a single column; numpy's mean divides that sum by k."""
    k = int(slots.shape[0])
    if k == 0 or k > compiled._PAIRWISE_BLOCK or not compiled.enabled():
        return None
    every = isinstance(rows, slice)
    index = _every_row(ring.shape[1]) if every else np.asarray(rows, np.int64)
    out = np.empty(index.shape[0])
    try:
        _recent_means_kernel(ring, np.asarray(slots, np.int64), index, every and ring.shape[1] >= 2,
                             np.empty(k), out)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return out


def recent_means_numpy(ring: np.ndarray, slots: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """:func:`try_recent_means` with numpy: the reference."""
    return np.mean(ring[np.asarray(slots, np.int64)][:, rows], axis=0)


def recent_means(ring: np.ndarray, slots: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """The mean of the ring's ``slots`` for ``rows`` (a ramp's latest reading in ``SimMetrics.query``):
    compiled, or numpy when the kernel declines."""
    fast = try_recent_means(ring, slots, rows)
    return fast if fast is not None else recent_means_numpy(ring, slots, rows)


def window_means(ring: np.ndarray, filled: int, rows: np.ndarray | slice, nonfinite: np.ndarray) -> np.ndarray:
    """The window means of ``SimMetrics.query``'s gauges: compiled, or numpy when the kernel declines.
    ``rows``: the services (N,), or ``slice(None)`` for every service in order."""
    fast = try_window_means(ring, filled, rows, nonfinite)
    return fast if fast is not None else window_means_numpy(ring, filled, rows, nonfinite)
