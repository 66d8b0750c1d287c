"""Fixed-size per-target histories of (value, time) pairs, as two (N, S) arrays.

An empty slot has time NaN. Writing prefers an outdated slot, then an empty one, then the
oldest, so a history sized for its window never loses an entry that still counts.

Histories are kept in Fortran order: every reduction runs over the short slot axis, which
numpy does an order of magnitude faster when each slot's column is contiguous.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


def empty_history(n: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, times), both (n, slots); all slots empty."""
    return np.zeros((n, slots), order="F"), np.full((n, slots), np.nan, order="F")


def write_slot(
    values: np.ndarray, times: np.ndarray, new: np.ndarray, now: float, outdated_after_s: float,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return copies of the history with ``new[i]`` stored at ``now`` for each selected row.

    values, times: (N, S). new: (N,). rows: bool (N,) selecting the rows to write (all if None).
    A slot is reusable when empty or strictly older than ``outdated_after_s``.
    """
    values = np.array(values, dtype=np.float64, order="F")
    times = np.array(times, dtype=np.float64, order="F")
    if values.shape[1] == 0:
        return values, times
    slot = slots_to_write(times, now - outdated_after_s)
    n = values.shape[0]
    idx = np.arange(n) if rows is None else np.flatnonzero(rows)
    # (row, slot) as one flat index into the transposed (S, N) views, cheaper than two fancy indices
    flat = slot[idx] * n + idx
    values.T.put(flat, np.asarray(new, dtype=np.float64)[idx])
    times.T.put(flat, now)
    return values, times


def slots_to_write(times: np.ndarray, cutoff: float) -> np.ndarray:
    """(N,) slot per row of (N, S) times: the first reusable one (empty, or older than
    ``cutoff``), else the oldest (the first of equal times).

    The same as ``argmin`` over a key of -inf for reusable slots and the time otherwise, but
    cheaper: numpy's argmin along the short axis runs row by row, and the key would be an
    (N, S) float temporary. The first True of a row is the largest of the reusable mask times
    a descending rank (bytes); only rows with no reusable slot need an argmin.
    """
    s = times.shape[1]
    reusable = ~(times >= cutoff)  # NaN (empty) compares False
    if s < 256:  # as bytes (a view, no cast)
        first = (reusable.view(np.uint8) * np.arange(s, 0, -1, dtype=np.uint8)).max(axis=1)
    else:
        first = (reusable * np.arange(s, 0, -1)).max(axis=1)
    slot = s - first.astype(np.intp)  # s: no reusable slot
    full = (slot == s).nonzero()[0]
    if full.size:
        slot[full] = times[full].argmin(axis=1)
    return slot


def refit(values: np.ndarray, times: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """The history in ``slots`` slots (a policy edited to another window): each row's newest
    entries kept, newest first, as many as fit; the other slots empty."""
    out_values, out_times = empty_history(values.shape[0], slots)
    keep = min(slots, times.shape[1])
    if keep == 0 or times.shape[0] == 0:
        return out_values, out_times
    newest_first = np.argsort(-np.where(np.isnan(times), -np.inf, times), axis=1, kind="stable")[:, :keep]
    out_values[:, :keep] = np.take_along_axis(np.asarray(values, np.float64), newest_first, axis=1)
    out_times[:, :keep] = np.take_along_axis(np.asarray(times, np.float64), newest_first, axis=1)
    return out_values, out_times


class RowPick(NamedTuple):
    """``take_rows``' reading of ``rows`` (K,), made once for the many arrays of one state: the
    old row of each new row (0 for a new one), and the new rows' indices (a few of K)."""

    safe: np.ndarray
    new: np.ndarray


def row_pick(rows) -> RowPick:
    """``rows`` (K,) (the old row of each new row, -1 new) read once for ``take_rows``."""
    if isinstance(rows, RowPick):
        return rows
    rows = np.asarray(rows, dtype=np.int64)
    new = rows < 0
    return RowPick(np.where(new, 0, rows), np.flatnonzero(new))


def take_rows(a: np.ndarray, rows, fill) -> np.ndarray:
    """Rows of ``a`` in a new order: ``rows[i]`` is the old row of new row i, -1 for a new row
    (filled with ``fill``); ``rows`` may be a ``row_pick`` of them, shared by the arrays of one
    state (a pod table's dozen take one reading of its ~10k rows). Used to carry per-target
    state over when the target list changes."""
    pick = row_pick(rows)
    if not a.shape[0]:
        return np.full((pick.safe.size,) + a.shape[1:], fill, dtype=a.dtype)
    # ndarray.take gathers whole rows, and the new rows are filled by index: numpy's fancy index
    # (or boolean mask) of rows of a few values costs ~40 times more (~250 us for 9k rows of 2).
    # A fancy index keeps an inner axis' order other than C: such an array is taken so still
    out = a.take(pick.safe, axis=0) if a.ndim <= 2 or a.flags.c_contiguous else a[pick.safe]
    if pick.new.size:
        out[pick.new] = fill
    return out


def is_empty(times: np.ndarray) -> np.ndarray:
    """bool (N,): rows with no entry at all.

    ``write_slot`` always fills the first reusable slot, so slot 0 is the first written and
    never emptied again: looking at it alone is enough (and saves an (N, S) reduction).
    """
    if times.shape[1] == 0:
        return np.ones(times.shape[0], bool)
    return np.isnan(times[:, 0])


def put_rows(a, b, rows: np.ndarray):
    """``a`` (an array of N rows, a tuple or dataclass of them, or None) with ``b``'s rows at
    ``rows`` (K,): copies, ``a`` is not written to (the inverse of :func:`take_rows`' new rows)."""
    if a is None or b is None:  # a part a state made before it lacks (NormState.usable_since)
        return a
    if isinstance(a, np.ndarray):
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"rows of shape {b.shape[1:]} cannot replace rows of shape {a.shape[1:]}")
        out = a.copy(order="K")  # keeps each array's memory order (the kernels want some in Fortran order)
        out[rows] = b
        return out
    if isinstance(a, tuple):
        return tuple(put_rows(x, y, rows) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a):
        return dataclasses.replace(a, **{f.name: put_rows(getattr(a, f.name), getattr(b, f.name), rows)
                                         for f in dataclasses.fields(a)})
    raise TypeError(f"cannot splice rows of a {type(a).__name__}")
