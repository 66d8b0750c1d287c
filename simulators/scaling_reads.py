"""A cycle's scaling reads from the simulated metrics ring in one compiled call (``SimMetrics.read_scaling``).

Per cycle the Reconciler queried each policy metric (a window mean: ``metrics_compiled.window_means``),
each ramp's latest reading (``recent_means``), built a Samples of each, stacked them into (N, M)
arrays and ran the latest readings through the signal stage (``signal_compiled``): four kernel
calls and the Python between them. :func:`try_scaling_reads` makes the same arrays in one call
of :func:`_scaling_reads_kernel`, which runs those very kernels (numba calls them inside: the
same sums in the same order, so the same floats) and fills the arrays the Reconciler stacked;
of the signal stage it computes only the clean values (``signal_compiled.clean_sample``), the
one array of it the Reconciler reads.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from controller.core.scaling import compiled, signal_compiled
from controller.core.scaling.compiled import jit
from controller.ports import ScalingReads
from simulators import metrics_compiled


@jit
def _scaling_reads_kernel(rings, fields, latest_fields, slots, counts, filled, rows, sequential, nonfinite,
                          unavailable, sample_age_s, stale_after_s, checked, above, values, present, age, latest):
    n, m = values.shape
    col = np.empty(n)
    for j in range(m):  # the window mean of each query, as SimMetrics.query's
        metrics_compiled._window_means_kernel(rings[fields[j]], filled, rows, nonfinite, sequential,
                                              np.empty(filled), col)
        for i in range(n):
            r = rows[i]
            values[i, j], present[i, j], age[i, j] = col[i], not unavailable[r], sample_age_s[r]
    # the ramps' latest readings as the Reconciler's _latest_columns stacks them (NaN, absent, age 0
    # without a latest query), through the signal stage: only its clean values are read
    for j in range(m):
        if latest_fields[j] < 0:
            latest[:, j] = math.nan  # an absent sample is not usable
            continue
        k = counts[j]
        metrics_compiled._recent_means_kernel(rings[latest_fields[j]], slots[:k], rows, sequential, np.empty(k), col)
        for i in range(n):
            r = rows[i]
            latest[i, j] = signal_compiled.clean_sample(col[i], not unavailable[r], sample_age_s[r], stale_after_s,
                                                        checked[j], above[j])


class ReadPlan(NamedTuple):
    """What :func:`try_scaling_reads` reads for M queries: (M,) int64 the ring of each query's
    signal (``fields``) and of its latest query's (``latest_fields``, -1: none), how many ticks
    the latest query averages (``latest_ticks``, 0: none), and the signal stage's (M,) bounds
    (signal_compiled.signal_bounds: ``checked``, ``above``)."""

    fields: np.ndarray
    latest_fields: np.ndarray
    latest_ticks: np.ndarray
    checked: np.ndarray
    above: np.ndarray


def try_scaling_reads(plan: ReadPlan, rings: np.ndarray, k: int, rows: np.ndarray | slice, nonfinite: np.ndarray,
                      unavailable: np.ndarray, sample_age_s: np.ndarray, stale_after_s: float) -> ScalingReads | None:
    """The ScalingReads of ``plan`` over the (F, W, S) ``rings`` after ``k`` ticks (the last in
    slot (k - 1) % W): query j the mean of ring ``fields[j]``'s filled slots (window_means), its
    latest reading the mean of ring ``latest_fields[j]``'s last ``latest_ticks[j]`` (at most k)
    slots (recent_means), through the signal stage with ``stale_after_s`` and the plan's bounds;
    for the services ``rows`` (N,) int64 or ``slice(None)`` (every service in order), with the last
    tick's (S,) ``nonfinite``, ``unavailable`` and ``sample_age_s`` (s). None when the kernels are
    off or decline (a window longer than their pairwise sum covers)."""
    w = rings.shape[1]
    filled, counts = min(k, w), np.minimum(plan.latest_ticks, k)
    longest = max(filled, int(counts.max()))
    if not compiled.enabled() or longest > compiled._PAIRWISE_BLOCK:
        return None
    every = isinstance(rows, slice)
    index = metrics_compiled._every_row(rings.shape[2]) if every else rows
    return _read(plan, rings, (k - 1 - np.arange(max(longest, 1))) % w, counts, filled, index,
                 every and rings.shape[2] >= 2, nonfinite, unavailable, sample_age_s, stale_after_s, bool(counts.any()))


def _read(plan: ReadPlan, rings: np.ndarray, slots: np.ndarray, counts: np.ndarray, filled: int, index: np.ndarray,
          sequential: bool, nonfinite: np.ndarray, unavailable: np.ndarray, sample_age_s: np.ndarray,
          stale_after_s: float, any_latest: bool) -> ScalingReads | None:
    """:func:`_scaling_reads_kernel` of ``plan`` for the services ``index`` (N,) int64 (``sequential``:
    every service in order), the ring ``slots`` newest first, the latest queries' tick ``counts``
    (M,) (``any_latest``: one is not 0) and ``filled`` slots of each window: fresh (N, M) arrays;
    None when the kernel failed."""
    n, m = index.shape[0], plan.fields.shape[0]
    block, present = np.empty((3, n, m)), np.empty((n, m), np.bool_)  # values, age, latest; present
    try:
        _scaling_reads_kernel(rings, plan.fields, plan.latest_fields, slots, counts, filled, index, sequential,
                              nonfinite, unavailable, sample_age_s, float(stale_after_s), plan.checked, plan.above,
                              block[0], present, block[1], block[2])
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return ScalingReads(block[0], present, block[1], block[2] if any_latest else None)


class ScalingReader:
    """:func:`try_scaling_reads` of one ``plan`` over one ``rows`` (as there) of (F, W, S) rings,
    kept across a run's cycles: once the rings are full (``k`` >= W ticks) what the read depends
    on but the values, the slots each latest query averages, depends on ``k`` mod W alone and is
    made once per ring position; before, each read is :func:`try_scaling_reads`'s own."""

    def __init__(self, plan: ReadPlan, rows: np.ndarray | slice, rings_shape: tuple[int, int, int]):
        _, w, s = rings_shape
        self.plan, self.rows, self.w = plan, rows, w
        every = isinstance(rows, slice)
        self.index = metrics_compiled._every_row(s) if every else rows
        self.sequential = every and s >= 2
        # full rings: every window filled, each latest query over its own ticks (SimMetrics.ticks: at
        # most W); a plan that reads further back, or a window the kernels decline, reads as before
        self.counts = plan.latest_ticks
        self.steady = int(plan.latest_ticks.max(initial=0)) <= w <= compiled._PAIRWISE_BLOCK
        self.any_latest = bool(self.counts.any())
        self._slots: list[np.ndarray | None] = [None] * w  # per k mod W: (W,) the last W slots, newest first

    def read(self, rings: np.ndarray, k: int, nonfinite: np.ndarray, unavailable: np.ndarray,
             sample_age_s: np.ndarray, stale_after_s: float) -> ScalingReads | None:
        """:func:`try_scaling_reads` (``plan``, ``rings``, ``k``, ``rows``, ...): the same arrays."""
        w = self.w
        if k < w or not self.steady or not compiled.enabled():
            return try_scaling_reads(self.plan, rings, k, self.rows, nonfinite, unavailable, sample_age_s,
                                     stale_after_s)
        phase = k % w
        slots = self._slots[phase]
        if slots is None:
            slots = self._slots[phase] = (k - 1 - np.arange(w)) % w
        return _read(self.plan, rings, slots, self.counts, w, self.index, self.sequential, nonfinite, unavailable,
                     sample_age_s, stale_after_s, self.any_latest)
