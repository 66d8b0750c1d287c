"""The per-chunk scoring and recording of a run as compiled loops (numba), for the runner's recorder
and :class:`simulators.score.OnlineScores`.

Each function here returns None (or False) when the kernels are off or one failed to compile,
and the caller runs its numpy code, which stays the reference:
``tests/simulators/test_score_compiled.py`` checks both give the same bytes on scripted and
random chunks. Every output is a copy, a comparison or an integer count, so the two paths are
identical bit for bit (no float sum is reordered).

- :func:`put_row`: one tick's eight recorded signals into row ``j`` of the recorder's
  (F, C, S) block, in one call instead of eight numpy assignments;
- :func:`violation_mask`: the (C, S) SLO violation mask of :func:`simulators.score.violation_mask`
  in one pass;
- :func:`block_violation`: that mask of the recorder's block read in place, with each tick's
  "any service violates" (the timeline's) from the same pass;
- :func:`changes_and_reversals`: replica changes and direction reversals, per service in time
  order (the numpy reference sorts the changes by service);
- :func:`violation_minutes`: minutes newly counted as violating, per service in time order (the
  numpy reference takes a running maximum over the chunk);
- :func:`exact_add`: the replica-seconds' exact running sum (Shewchuk's partials), the Python
  loop's steps over a chunk's ticks in one call.

Same switch and fallback as the other kernels (``SETPOINT_COMPILED``, see
:mod:`controller.core.scaling.compiled`).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import enabled, jit, mark_broken


@jit
def _put_row_kernel(block, j, offered, served, dropped, capacity, spec, ready, ratio, latency):
    """block[:, j] = the eight (S,) signals, in the recorder's FIELDS order."""
    for s in range(block.shape[2]):
        block[0, j, s] = offered[s]
        block[1, j, s] = served[s]
        block[2, j, s] = dropped[s]
        block[3, j, s] = capacity[s]
        block[4, j, s] = spec[s]
        block[5, j, s] = ready[s]
        block[6, j, s] = ratio[s]
        block[7, j, s] = latency[s]


@jit
def _violation_kernel(latency, offered, error_ratio, dropped, latency_s, error_ratio_max, drop_tolerance):
    """((C, S) bool: slow (latency above, or NaN under load), failing or dropping; (C,) bool:
    whether any service violates at each tick, the timeline's, from the same pass)."""
    n, s_count = latency.shape
    out = np.empty((n, s_count), dtype=np.bool_)
    any_violation = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        for s in range(s_count):
            lat = latency[i, s]
            slow = lat > latency_s or (math.isnan(lat) and offered[i, s] > 0)
            out[i, s] = slow or error_ratio[i, s] > error_ratio_max or dropped[i, s] > drop_tolerance
        for s in range(s_count):
            if out[i, s]:
                any_violation[i] = True
                break
    return out, any_violation


@jit
def _changes_kernel(t_changes, previous, has_previous, spec, last_direction, last_change_s, within_s):
    """(changes, reversals) of the (C, S) ``spec`` after the (S,) ``previous`` row (when
    ``has_previous``; else the first row starts); ``t_changes[k]``: the time of the change into
    the k-th compared row. Updates ``last_direction`` / ``last_change_s`` (S,) in place.
    Row by row (each service's changes still in time order: the same counts), reading ``spec``
    in memory order: down each column it took ~1.3 ns a cell, 158 us a 120-tick chunk of 1,000."""
    n, s_count = spec.shape
    changes, reversals = 0, 0
    first = 0 if has_previous else 1
    if n == 0:
        return changes, reversals
    before = previous.copy() if has_previous else spec[0].copy()
    for i in range(first, n):
        w = t_changes[i - first]
        for s in range(s_count):
            now = spec[i, s]
            diff = now - before[s]
            before[s] = now
            if diff == 0.0 or diff != diff:  # np.sign: 0 for no change, NaN (cast to 0) for NaN
                continue
            d = 1 if diff > 0 else -1
            changes += 1
            d_last = last_direction[s]
            if d_last != 0 and d != d_last and w - last_change_s[s] <= within_s:
                reversals += 1
            last_direction[s], last_change_s[s] = d, w
    return changes, reversals


@jit
def _minutes_kernel(t, dt, v, counted_minute):
    """Minutes newly counted as violating over the (C,) ticks ``t`` lasting ``dt`` with the (C, S)
    mask ``v``; ``counted_minute`` (S,) the last minute counted per service, updated in place."""
    n, s_count = v.shape
    minutes = 0
    for i in range(n):
        first = np.int64(math.floor(t[i] / 60.0))
        last = max(first, np.int64(math.ceil((t[i] + dt[i]) / 60.0)) - 1)
        for s in range(s_count):
            if v[i, s]:
                counted = counted_minute[s]
                new = last - max(first, counted + 1) + 1
                if new > 0:
                    minutes += new
                if last > counted:
                    counted_minute[s] = last
    return minutes


@jit
def _exact_add_kernel(partials, n, values):
    """:func:`simulators.score._exact_add` of ``values`` (V,) to the ``n`` first ``partials``
    (P,), in place: the same steps, so the same partials. Returns their new count; -1 when
    they would need more than P (then partials are spoilt: the caller adds in Python)."""
    for k in range(values.shape[0]):
        x = values[k]
        i = 0
        for j in range(n):
            y = partials[j]
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo != 0.0:  # Python's ``if lo``: NaN is true too
                partials[i] = lo
                i += 1
            x = hi
        if i == partials.shape[0]:
            return -1
        partials[i] = x
        n = i + 1
    return n


#: Room for partials: a sum of doubles needs at most ~40 (Shewchuk); more sends it to Python.
_PARTIALS = 64


def _run(kernel, *args):
    """``kernel(*args)``, or None when the kernels are off or it failed (then numpy from now on)."""
    if not enabled():
        return None
    try:
        return kernel(*args)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return None


def put_row(block: np.ndarray, j: int, sig, latency: np.ndarray) -> bool:
    """Write one tick's signals (a TickSignals ``sig``, its SLO ``latency`` percentile) into row
    ``j`` of ``block`` (8, C, S); False when the kernels are off (the caller assigns in numpy).
    Not switch-checked per call: the caller decides once per run with :func:`enabled`."""
    try:
        _put_row_kernel(block, j, sig.offered_rps, sig.served_rps, sig.dropped_rps, sig.capacity_rps,
                        sig.spec_replicas, sig.ready_replicas, sig.error_ratio, latency)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    return True


def violation_mask(latency: np.ndarray, offered: np.ndarray, error_ratio: np.ndarray, dropped: np.ndarray,
                   latency_s: float, error_ratio_max: float, drop_tolerance: float) -> np.ndarray | None:
    """The (C, S) violation mask of float64 (C, S) arrays; None: use numpy."""
    arrays = (latency, offered, error_ratio, dropped)
    if any(a.dtype != np.float64 or a.ndim != 2 for a in arrays):
        return None
    found = _run(_violation_kernel, *arrays, float(latency_s), float(error_ratio_max), float(drop_tolerance))
    return None if found is None else found[0]


#: Rows of the recorder's block that the SLO reads besides its latency (_put_row_kernel's order,
#: runner._Recorder.FIELDS).
_ROW_OFFERED, _ROW_DROPPED, _ROW_ERROR_RATIO = 0, 2, 6


def block_violation(block: np.ndarray, n: int, latency_row: int, latency_s: float, error_ratio_max: float,
                    drop_tolerance: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The violation mask (n, S) of the first ``n`` ticks of the recorder's float64 (F, C, S)
    ``block`` (its rows read in place: each (n, S) view is contiguous) and (n,) whether any
    service violates at each, in one pass (:func:`_violation_kernel`); None: use numpy."""
    return _run(_violation_kernel, block[latency_row, :n], block[_ROW_OFFERED, :n], block[_ROW_ERROR_RATIO, :n],
                block[_ROW_DROPPED, :n], float(latency_s), float(error_ratio_max), float(drop_tolerance))


def changes_and_reversals(t_changes: np.ndarray, previous: np.ndarray | None, spec: np.ndarray,
                          last_direction: np.ndarray, last_change_s: np.ndarray, within_s: float
                          ) -> tuple[int, int] | None:
    """(changes, reversals) of a float64 (C, S) ``spec`` chunk; None: use numpy."""
    prev = previous.reshape(-1) if previous is not None else last_change_s  # any (S,) float array when absent
    out = _run(_changes_kernel, np.ascontiguousarray(t_changes, dtype=np.float64), prev, previous is not None, spec,
               last_direction, last_change_s, float(within_s))
    return None if out is None else (int(out[0]), int(out[1]))


def violation_minutes(t: np.ndarray, dt: np.ndarray, v: np.ndarray, counted_minute: np.ndarray) -> int | None:
    """Minutes newly counted over a chunk (``counted_minute`` updated in place); None: use numpy."""
    out = _run(_minutes_kernel, np.ascontiguousarray(t, dtype=np.float64), np.ascontiguousarray(dt, dtype=np.float64),
               np.ascontiguousarray(v, dtype=np.bool_), counted_minute)
    return None if out is None else int(out)


def exact_add(partials: list[float], values: np.ndarray) -> bool:
    """:func:`simulators.score._exact_add` of float64 ``values`` (V,) in one compiled loop (the same
    partials, in place); False when the kernels are off or the partials outgrow the kernel's room
    (``partials`` unchanged: the caller adds in Python)."""
    room = np.empty(_PARTIALS)
    room[:len(partials)] = partials
    n = _run(_exact_add_kernel, room, len(partials), np.ascontiguousarray(values, dtype=np.float64))
    if n is None or n < 0:
        return False
    partials[:] = room[:n].tolist()
    return True


__all__ = ["block_violation", "changes_and_reversals", "exact_add", "put_row", "violation_minutes", "violation_mask"]
