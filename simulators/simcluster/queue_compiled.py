"""A cycle's scaled rows checked and gathered in one compiled pass (numba), for the replica queue.

A cycle's scales (controller.model.ScaleActions) come as positions in the cycle's target list;
queuing them took a check that each target exists, a gather of their rows and a dict of the rows
(to find a row scaled twice), ~25 us a cycle for 1,000 services in numpy and Python.
``_distinct_rows_kernel`` does the three in one loop. ReplicaSets.queue_distinct_rows calls it
(``SETPOINT_COMPILED=0``: None, and SimTargets gathers with numpy); tests/simulators/test_batch_scales.py
checks both paths queue the same.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit

_DONE, _MISSING, _REPEATED, _OUTSIDE = 0, 1, 2, 3

#: try_distinct_rows' answer when a row is picked twice (then queue them one by one, in order).
REPEATED = np.zeros(0, np.int64)


@jit
def _distinct_rows_kernel(rows, exists, picks, seen, out):
    """``out[k] = rows[picks[k]]`` (K,) for each pick; returns _DONE, or at the first pick that
    is outside ``rows``, a target that does not ``exists`` or a row already picked, _OUTSIDE,
    _MISSING or _REPEATED. ``seen`` (S,) bool: all False on entry, and again on return."""
    status, done = _DONE, 0
    n = rows.shape[0]
    for k in range(picks.shape[0]):
        p = picks[k]
        if p < 0 or p >= n:
            status = _OUTSIDE
            break
        if not exists[p]:
            status = _MISSING
            break
        r = rows[p]
        if seen[r]:
            status = _REPEATED
            break
        seen[r] = True
        out[k] = r
        done = k + 1
    for k in range(done):
        seen[out[k]] = False
    return status


def try_distinct_rows(rows: np.ndarray, exists: np.ndarray, picks: np.ndarray, seen: np.ndarray) -> np.ndarray | None:
    """``rows[picks]`` (K,) int64 when each picked target ``exists`` and their rows are distinct;
    REPEATED when they exist but a row repeats; None when one does not exist, a pick is outside
    ``rows`` (N,) or the kernels are off. ``seen`` (S,) bool scratch, all False."""
    if not compiled.enabled():
        return None
    out = np.empty(picks.shape[0], np.int64)
    try:
        status = _distinct_rows_kernel(rows, exists, picks, seen, out)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    if status == _REPEATED:
        return REPEATED
    return out if status == _DONE else None
