"""The normalize stage of the ``hpa`` preset without ``behavior`` as one compiled pass (numba).

The ``hpa`` preset proposes with HPA's pod-level calculator (core/scaling/hpa_propose.py), so
the fused kernel (core/scaling/fused.py) does not cover it; its normalize stage ran as numpy
stages, a few dozen array calls and two copies of the recommendation history per cycle.
:func:`try_normalize` computes what :func:`normalize.normalize` (the reference) computes for
such a policy, for the same inputs and with the same arrays: combine, pre-checks, the missing-
data rules (HPA's: no hold of its own, no fallback), the legacy max-window stabilization, the
per-cycle scale-up cap and [min, max], and the write of the proposal into the history, target
by target. ``tests/core/test_hpa_normalize.py`` checks every output and state array is identical.

Returns None (call the reference) when the kernels are off (``SETPOINT_COMPILED=0``, no numba;
see :mod:`controller.core.scaling.compiled`) or the policy is not covered (:func:`supports`).
The shared per-value helpers are called as ``compiled.X`` (a ``from`` import would bind the
plain functions: see compiled.jit).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit
from controller.core.scaling.normalize import NormResult, NormState
from controller.core.scaling.normalize import normalize as reference_normalize
from controller.core.scaling.params import PolicyParams

_NAN, _INF = math.nan, math.inf


def supports(params: PolicyParams) -> bool:
    """The kernel covers this policy: the ``hpa`` preset without ``behavior`` (legacy)."""
    return params.hpa_semantics and params.legacy


@jit
def _scan_history(old_v, old_t, rec_v, rec_t, current, now, cut_window, cut_keep, copy):
    """Copy the (H, N) history ``old_v``, ``old_t`` into ``rec_v``, ``rec_t`` (``copy``; else they
    are the old arrays, updated in place), seeding a target seen for the first time (slot 0
    empty: is_empty looks at slot 0 only) with (current, now), and per target (column) of the
    new history: the max of the values whose time is inside the window (at or after
    ``cut_window``; -inf when none, NaN when one is NaN, np.maximum's fold in slot order) and
    the slot the next write goes to: the first reusable one (empty, or before ``cut_keep``),
    else the first oldest. Returns (high (N,), slot (N,) int64).

    The copy, the seeding and the scan are separate loops: a loop that stores into arrays it
    also reads runs unvectorized where they may be the same (LLVM's overlap check: the scan
    with the stores took 45 us in place for 1,000 targets and 22 slots), and a helper taking
    the arrays, called per element, cost ~13x (NRT reference counts per call)."""
    if copy:
        for s in range(rec_v.shape[0]):
            for i in range(rec_v.shape[1]):
                rec_v[s, i], rec_t[s, i] = old_v[s, i], old_t[s, i]
    for i in range(rec_t.shape[1]):
        if rec_t[0, i] != rec_t[0, i]:
            rec_v[0, i], rec_t[0, i] = current[i], now
    return _window_scan(rec_v, rec_t, cut_window, cut_keep)


@jit
def _window_scan(rec_v, rec_t, cut_window, cut_keep):
    """_scan_history's (high, slot) of the (H, N) history, read only. Slot by slot over all
    targets, each slot's row read contiguously: a target's slots are N apart in memory, so the
    per-target scan missed the cache on every slot. Each step is written as selects, not
    branches (compiled.nan_max's result: NaN if either is NaN, else the larger, ``high`` on a
    tie; ~10.6 -> 8.8 us for 1,000 targets and 22 slots, in cache)."""
    slots, n = rec_v.shape
    high = np.full(n, -_INF)
    slot = np.zeros(n, np.int64)
    key = np.full(n, _INF)
    for s in range(slots):
        for i in range(n):
            t, v, h = rec_t[s, i], rec_v[s, i], high[i]
            m = v if v > h else h
            m = m if (v == v and h == h) else _NAN
            high[i] = m if t >= cut_window else h
            k = t if t >= cut_keep else -_INF  # NaN (empty) compares False: reusable
            first = (s == 0) | (k < key[i])
            slot[i] = s if first else slot[i]
            key[i] = k if first else key[i]
    return high, slot


@jit
def _normalize_legacy_kernel(current, proposals, valid, old_v, old_t, rec_v, rec_t, copy, missing_since, now, lo, hi,
                             window_s, factor, minimum, combined_out, proposal_out, stabilized_out, desired_out,
                             limit_out, reason_out, active_out):
    """normalize.normalize for a legacy policy with HPA's semantics, N targets, in place.

    current (N,); proposals, valid (N, M); old_v, old_t (H, N) the history (the transposes of
    NormState's Fortran-ordered (N, H) arrays); rec_v, rec_t (H, N) the new history, written
    whole (``copy``), or else the old arrays themselves, updated in place (only the slots written);
    missing_since (N,) in place.
    Outputs (N,): combined, proposal, stabilized, desired (float64), limit reason, reason
    (int64), active (bool)."""
    n, m = proposals.shape
    slots = rec_v.shape[0]
    cut_window, cut_keep = now - window_s, now - window_s  # legacy: the history is kept for the down window
    up_cap_tighter_reason, max_reason = compiled._RL_UP, compiled._CL_MAX
    # the new history (first sight seeded with (current, now)), and its windows
    highs, write_slot = _scan_history(old_v, old_t, rec_v, rec_t, current, now, cut_window, cut_keep, copy)
    for i in range(n):
        cur = current[i]
        # combine: max over the valid proposals (np.maximum: NaN propagates)
        if m == 1:  # the preset's one metric: the loop below without its loop (~1.7 us for 1,000 targets)
            any_valid = all_valid = valid[i, 0]
            combined = compiled.nan_max(-_INF, proposals[i, 0]) if any_valid else _NAN
        else:
            combined, any_valid, all_valid = -_INF, False, True
            for j in range(m):
                if valid[i, j]:
                    combined = compiled.nan_max(combined, proposals[i, j])
                    any_valid = True
                else:
                    all_valid = False
            if not any_valid:
                combined = _NAN
        forced, pre_reason = compiled.precheck(cur, lo, hi)  # the first that applies wins
        has_forced = forced == forced
        # missing data: HPA bails out (no fallback, nothing stored)
        hold = ((not all_valid) and any_valid and combined < cur) or not any_valid
        ms = missing_since[i]
        missing_since[i] = _NAN if any_valid else (now if ms != ms else ms)
        proposal = cur if hold else combined
        skip = has_forced or hold
        # stabilize (inclusive window) over the history as it was before this cycle's write
        # (_scan_history, before this loop), and the slot of that write
        high, slot = highs[i], write_slot[i]
        stabilized = compiled.nan_max(proposal, high)
        # clamp_legacy: the scale-up cap max(factor * current, minimum), then [min, max]
        up_cap = np.trunc(compiled.nan_max(factor * cur, minimum))
        tighter = hi > up_cap
        upper = up_cap if tighter else hi
        if stabilized < lo:
            desired, limit_reason = float(lo), compiled._CL_MIN
        elif stabilized > upper:
            desired, limit_reason = upper, (up_cap_tighter_reason if tighter else max_reason)
        else:
            desired, limit_reason = stabilized, compiled._NOT_LIMITED
        if slots > 0 and not skip:
            rec_v[slot, i] = proposal
            rec_t[slot, i] = now
        stabilized, desired, limit_reason, reason = compiled.final_outcome(
            cur, proposal, stabilized, desired, limit_reason, True, compiled._MISSING if hold else -1, pre_reason,
            forced, hold)
        combined_out[i], proposal_out[i], stabilized_out[i], desired_out[i] = combined, proposal, stabilized, desired
        limit_out[i], reason_out[i] = limit_reason, reason
        active_out[i] = (not has_forced) and any_valid and not hold
    return 0


def try_normalize(params: PolicyParams, current: np.ndarray, proposals: np.ndarray, valid: np.ndarray,
                  state: NormState, now: float, in_place: bool = False) -> tuple[NormResult, NormState] | None:
    """:func:`normalize.normalize` compiled (same arguments, same result, ``state`` untouched),
    or None when the kernels are off or the policy is not covered: then call the reference.
    ``in_place``: the caller gives ``state`` up (nothing else reads it again): its recommendation
    history and missing_since are updated where they are, not copied (about 0.35 MB a cycle for
    1,000 targets and 22 slots), and the state returned holds them (the same values either way)."""
    if not (supports(params) and compiled.enabled()):
        return None
    current = np.ascontiguousarray(current, dtype=np.float64)
    history = kernel_history(state, in_place)
    outputs = kernel_outputs(current.shape[0])
    try:
        _normalize_legacy_kernel(current, np.ascontiguousarray(proposals, dtype=np.float64),
                                 np.ascontiguousarray(valid, dtype=np.bool_), *history.arguments(), float(now),
                                 *kernel_params(params), *outputs)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return kernel_result(outputs), history.state_of(state)


class KernelHistory:
    """The recommendation history and missing_since as _normalize_legacy_kernel reads and writes
    them: the old (H, N) history (the transposes of NormState's Fortran-ordered (N, H) arrays),
    the new one (the old one itself when ``in_place``) and missing_since (the state's own when
    ``in_place``, else a copy)."""

    def __init__(self, old_v, old_t, rec_v, rec_t, missing_since, in_place: bool):
        self.old_v, self.old_t, self.rec_v, self.rec_t = old_v, old_t, rec_v, rec_t
        self.missing_since, self.in_place = missing_since, in_place
        self._arguments: tuple | None = None

    def arguments(self) -> tuple:
        """(old_v, old_t, rec_v, rec_t (H, N), copy, missing_since (N,)): the kernel's history
        arguments (the transposes made once: views of the same arrays)."""
        if self._arguments is None:
            self._arguments = (self.old_v.T, self.old_t.T, self.rec_v.T, self.rec_t.T, not self.in_place,
                               self.missing_since)
        return self._arguments

    def state_of(self, state: NormState) -> NormState:
        """The state after the kernel wrote this history: ``state`` itself when updated in place."""
        if self.in_place:
            return state
        return dataclasses.replace(state, rec_values=self.rec_v, rec_times=self.rec_t, missing_since=self.missing_since)


def kernel_history(state: NormState, in_place: bool) -> KernelHistory:
    """``state``'s history for the kernel: updated where it is when ``in_place`` and its arrays
    allow it (_updatable), else written into new arrays (``state`` untouched)."""
    # the history: Fortran-ordered (N, H), as history.write_slot returns it (its transposes are the
    # kernel's C-ordered (H, N) arrays); the new one filled by the kernel from the old one, or the old one
    old_v = np.asfortranarray(state.rec_values, dtype=np.float64)
    old_t = np.asfortranarray(state.rec_times, dtype=np.float64)
    missing_since = state.missing_since
    in_place = in_place and _updatable(old_v, old_t, missing_since) and old_v is state.rec_values and old_t is state.rec_times
    if in_place:
        return KernelHistory(old_v, old_t, old_v, old_t, missing_since, True)
    return KernelHistory(old_v, old_t, np.empty(old_v.shape, order="F"), np.empty(old_t.shape, order="F"),
                         np.array(missing_since, dtype=np.float64), False)


def kernel_params(params: PolicyParams) -> tuple[float, ...]:
    """(lo, hi, window_s, factor, minimum): the policy's numbers _normalize_legacy_kernel reads."""
    return (float(params.min_replicas), float(params.max_replicas), float(params.scale_down.window_s),
            float(params.scale_up_limit_factor), float(params.scale_up_limit_minimum))


def kernel_outputs(n: int) -> tuple[np.ndarray, ...]:
    """The kernel's (N,) outputs, unset: combined, proposal, stabilized, desired (rows of one
    (4, N) float64 array), limit reason, reason (int64), active (bool)."""
    f = np.empty((4, n))
    return f[0], f[1], f[2], f[3], np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.bool_)


def kernel_result(outputs: tuple[np.ndarray, ...]) -> NormResult:
    """The NormResult of the kernel's ``outputs`` (kernel_outputs, written)."""
    combined, proposal, stabilized, desired, limit_reason, reason, active = outputs
    return NormResult(combined=combined, proposal=proposal, stabilized=stabilized, desired=desired,
                      limit_reason=limit_reason, reason=reason, scaling_active=active)


def _updatable(rec_v: np.ndarray, rec_t: np.ndarray, missing_since: np.ndarray) -> bool:
    """The arrays can be updated in place as the kernel writes them: float64, writeable, the
    history Fortran-ordered, missing_since contiguous."""
    f64 = np.float64  # three arrays spelled out: a generator per cycle cost about as much as the checks
    return (rec_v.dtype == f64 and rec_t.dtype == f64 and missing_since.dtype == f64 and rec_v.flags.writeable
            and rec_t.flags.writeable and missing_since.flags.writeable and rec_v.flags.f_contiguous
            and rec_t.flags.f_contiguous and missing_since.flags.c_contiguous)


def normalize_compiled(params: PolicyParams, current: np.ndarray, proposals: np.ndarray, valid: np.ndarray,
                       state: NormState, now: float, release_rows: np.ndarray | None = None,
                       ready: np.ndarray | None = None, in_place: bool = False) -> tuple[NormResult, NormState]:
    """:func:`try_normalize` (``in_place`` as there), or the reference when the kernel declines.
    ``release_rows`` as for the reference (``scaleDown.release: linear``, which the legacy preset
    the kernel covers has not); ``ready`` unused: the ``hpa`` preset scales as HPA does."""
    fast = try_normalize(params, current, proposals, valid, state, now, in_place)
    return fast if fast is not None else reference_normalize(params, current, proposals, valid, state, now,
                                                             release_rows)


def normalize_in_place(params: PolicyParams, current: np.ndarray, proposals: np.ndarray, valid: np.ndarray,
                       state: NormState, now: float, release_rows: np.ndarray | None = None,
                       ready: np.ndarray | None = None) -> tuple[NormResult, NormState]:
    """:func:`normalize_compiled` updating ``state``'s history in place (the caller gives it up)."""
    return normalize_compiled(params, current, proposals, valid, state, now, release_rows, ready, in_place=True)
