"""The decision pipeline as one fused per-target kernel that updates the state in place.

signal -> smooth -> propose -> ramp -> combine -> pre-checks and missing data -> stabilize ->
limit -> history writes run target by target in one loop (core/scaling/workspace.py owns the
arrays and is the API; ``decide`` runs it too). The numbers are those of the numpy stages
(decide_numpy, the reference); compiled.py holds the per-value helpers (propose, pairwise sum,
NaN-propagating min/max) and the packed parameters. tests/core/test_compiled.py and
tests/core/test_workspace.py check every output and state array is identical.

Scale events are not written for the cycle decided: :func:`commit_kernel` writes them for the
rows whose change was applied (Decision.state_after's rule), from the pending (current, replicas)
of the cycle; a commit of every change to desired is deferred to the next call of the fused
kernel (its ``commit_at``), which records it first (:func:`_record_events`, as commit_all_kernel).

Common patterns of times: the targets of one workspace are decided in the same cycles, so their
recommendation slots (and their window samples' and ramp samples' slots) usually hold the same
times. The kernel keeps that pattern (``rows``) and flags the targets (series) whose times are
exactly it; for them each slot's window tests and the slot of the next write are made once per
cycle, and the recommendation windows read only the values of the slots inside a window
(:func:`_recommendation_windows`, :func:`_sample_pattern`); a ramp reads the slot a window ago
and writes the slot the pattern's next sample goes to (:func:`_ramp_plan`). The others (a target
that skipped a recommendation: a forced count; a series with a missing sample) are scanned as
before, and rejoin when their times match again. The arithmetic per value is the same on both
paths.

The helpers are called as ``compiled.X`` so that numba finds the dispatchers compiled.py makes
on load (a ``from`` import would bind the plain functions).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling import min_step as min_step_module
from controller.core.scaling.compiled import jit, jit_inline

_S_NONE, _S_EWMA, _S_MAX = compiled._S_NONE, compiled._S_EWMA, compiled._S_MAX
_NAN, _INF = math.nan, math.inf
_LN2 = float(np.log(2.0))  # smooth.ewma_alpha's np.log(2.0)
# ramp parameter rows (see pack_ramps)
(_R_COLUMN, _R_WINDOW, _R_TOLERANCE, _R_LEAD, _R_KEEP, _R_SLOTS, _R_OBSERVED, _R_LAG, _R_GAP, _R_MIN_STEP,
 _R_DARK, _R_SIZE) = range(12)
# the packed parameter vector (pack_params): compiled._pack's scalars, then counts, then arrays
_V_UP_RULES, _V_DOWN_RULES, _V_RAMPS, _V_METRICS = range(compiled._P_SIZE, compiled._P_SIZE + 4)
_V_ARRAYS = compiled._P_SIZE + 4
# rows of the workspace's (16, N) float array (core/scaling/workspace.py)
(_F_COMBINED, _F_PROPOSAL, _F_STABILIZED, _F_DESIRED, _F_MISSING_SINCE, _F_PENDING, _F_LOW, _F_HIGH,
 _F_SLOT_KEY, _F_HELD, _F_LOCK, _F_LAST_EVENT, _F_DARK_AT, _F_LIT_AT, _F_DARK_SINCE, _F_HOLD_UNTIL,
 _F_ROWS) = range(17)
# rows of its (3, N) int array: limit reason, reason, the slot of the cycle's recommendation
_I_LIMIT, _I_REASON, _I_SLOT, _I_ROWS = range(4)
# targets with more recommendation times off the common pattern than 1 in _SCAN_ALL_BELOW: the
# window pass scans every target's times (each such target costs ~4 targets of the full scan)
_SCAN_ALL_BELOW = 4


def pack_ramps(params) -> np.ndarray:
    """(R, 11) float rows per ramp metric: column, window_s, tolerance_s, lead_s, keep_s, slots,
    observed (1: the lead follows the observed start-up delay, see RampParams.leads), lag_s, gap_s
    (0: no latest reading; see ramp.implied_slope), min_step (0: any step; ramp.hold_small_look_ahead),
    dark_s (no slope that long after a cycle with no Ready pod; RampParams.dark_s)."""
    rows = np.zeros((len(params.ramp_metrics), _R_SIZE))
    for r, j in enumerate(params.ramp_metrics):
        rp = params.metrics[j].ramp
        rows[r] = (j, rp.window_s, 0.5 * rp.interval_s, rp.lead_s, rp.keep_s, rp.slots, float(rp.observed), rp.lag_s,
                   rp.gap_s if rp.latest_window_s > 0.0 else 0.0, rp.min_step, rp.dark_s)
    return rows


def pack_params(params) -> np.ndarray:
    """Every parameter the kernel reads as one float vector (one argument: each array argument
    costs the call ~0.15 us to unbox): compiled._pack's scalars (its _P_* positions); the
    counts of up rules, down rules, ramp metrics and metrics; then the metric rows (6, M: kind,
    target, non-negative, pooled capacity, saturation capacity, implausible above: signal.py), up
    rules (3, Ru), down rules (3, Rd), ramp rows (R, 11), each flattened in C order, and the
    metrics' read windows (M,: PolicyParams.metric_read_windows, the recovery hold's)."""
    scal, metric, up_rules, down_rules = compiled._pack(params)
    ramps = pack_ramps(params)
    counts = [up_rules.shape[1], down_rules.shape[1], ramps.shape[0], metric.shape[1]]
    return np.concatenate([scal, np.array(counts, np.float64), metric.ravel(), up_rules.ravel(),
                           down_rules.ravel(), ramps.ravel(), params.metric_read_windows])


@jit
def ewma_exponent_into(out, ewma_at, now, half_life_s, memo, odd):
    """The negated EWMA weights' exponents -ln2 * max(now - ewma_at, 0) / half_life_s into ``out``
    (N, M), the argument of smooth.ewma_alpha's expm1 (the same operations, so the same bits), or
    the weights themselves where the memo knows them; the caller applies numpy's expm1 (its SIMD
    expm1 is not libm's) to the others and the kernel negates. half_life_s <= 0: -1 everywhere
    (a weight of 1, no expm1).

    memo (3,): an age (now - ewma_at), the half-life and numpy's expm1 of their exponent from an
    earlier cycle (NaN: none). A series of that age to the bit gets the weight (no division, no
    expm1: the series sampled in the same cycles, the usual case; numpy's expm1 of 2,000 values
    cost ~15 us); a series never sampled (NaN) gets NaN (expm1 keeps it); any other gets its
    exponent, its flat index in ``odd`` (N * M,). Returns how many (0: ``out`` is final). When no
    series had the memo's age, the memo takes the first other one's age and half-life and a
    weight of NaN: the caller's expm1 fills it in."""
    flat_out, flat_at = out.reshape(-1), ewma_at.reshape(-1)
    size = flat_out.shape[0]
    if half_life_s <= 0:
        flat_out[:] = -1.0
        return 0
    age0, weight = memo[0], memo[2]
    known = memo[1] == half_life_s and weight == weight
    if known and age0 != 0.0:  # equal non-zero numbers have the same bits: selects only (vectorizes)
        answered = 0
        for k in range(size):
            d = now - flat_at[k]
            same = d == age0
            flat_out[k] = weight if same else d  # NaN (never sampled) stays: expm1 keeps it
            answered += 1 if same | (d != d) else 0
        if answered == size:
            return 0
    hits = 0
    count = 0
    for k in range(size):
        d = now - flat_at[k]
        if known and _same_bits(d, age0):
            flat_out[k] = weight
            hits += 1
        elif d != d:
            flat_out[k] = d
        else:
            flat_out[k] = (-_LN2 * compiled.nan_max(d, 0.0)) / half_life_s
            odd[count] = k
            count += 1
    if hits == 0 and count > 0:
        memo[0], memo[1], memo[2] = now - flat_at[odd[0]], half_life_s, _NAN
    return count


@jit_inline
def rise(slope):
    """The ramp's max(slope, 0) (compiled.nan_max(slope, 0.0): NaN stays NaN, -0.0 stays -0.0) as
    one select, no branch (``|`` does not short-circuit): nan_max's early return compiles to a
    branch on the slope's sign, which changes from target to target and was mispredicted about
    every other target (~5-7 us of the default policy's ~97 us cycle for 1,000 targets in a
    simulated run). A NaN slope is returned itself (its bits, not nan_max's constant NaN)."""
    return slope if (slope >= 0.0) | (slope != slope) else 0.0


@jit_inline
def _same_bits(a, b):
    """Equal numbers of the same sign (+0.0 and -0.0 differ: expm1 keeps the sign); NaN never."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@jit_inline
def _same_time(a, b):
    """Equal recommendation times, two empty (NaN) slots included."""
    return a == b or (a != a and b != b)


@jit
def _sample_pattern(win, rows, now, window_s, on):
    """The window samples' common pattern of times (every series sampled in the same cycles: the
    usual case), for the (N, M) series flagged ``on`` it: rows (3W + 1,) its times (W,), a flag
    (0.0: not known yet: series (0, 0)'s times, every series off until its times match), then
    (written here) its times after this cycle's sample (W,), then 1.0 for each slot then inside
    the window (W,). Returns (the slot of this cycle's sample: the first empty, else the first
    oldest; the number of slots inside the window)."""
    w = win.shape[3]
    if rows[w] == 0.0:
        for s in range(w):
            rows[s] = win[1, 0, 0, s] if win.shape[1] * win.shape[2] > 0 else _NAN
        rows[w] = 1.0
        on[:, :] = False
    slot, key = 0, _INF
    for s in range(w):
        t = rows[s]
        kw = -_INF if t != t else t
        if s == 0 or kw < key:
            slot, key = s, kw
    count = 0
    for s in range(w):
        t = now if s == slot else rows[s]
        rows[w + 1 + s] = t
        inside = (now - t) < window_s
        rows[2 * w + 1 + s] = 1.0 if inside else 0.0
        count += 1 if inside else 0
    return slot, count


# columns of _ramp_plan's (R, 4) answer: the pattern's slot a window ago (-1: none), the slot of
# this cycle's sample, how many series are on the pattern after the cycle, the first series off it
# that wrote a sample (-1: none)
_RP_PICK, _RP_SLOT, _RP_COUNT, _RP_FIRST = range(4)


@jit
def _ramp_plan(ramp, rows, pv, o_ramp, n_ramps, now, on):
    """The ramps' common patterns of times (every target sampled in the same cycles: the usual
    case), for the series flagged ``on`` (N, M) (the ramp's column) it. rows (R * (2K + 1),): per
    ramp (K: ramp.shape[3]) its times (its own slot count k of them), a flag (0.0: not known yet:
    series 0's times, every series off until its times match), then (written here) its times after
    this cycle's sample. Returns (R, 4) int64 (_RP_*): per ramp, window_ago's pick on the pattern
    (nearest to now - window among the slots old enough, the first; -1: none) and write_slot's
    slot (the first reusable, else the first oldest): the per-series scans' operations on the
    pattern's times, so the same slots for every series whose times are the pattern's (equal, or
    both empty). A series that missed a sample keeps its ring a slot out of step with the
    pattern's: it stays on the per-series path until a gap outdates every slot (both rings then
    refill from slot 0)."""
    k_max, n = ramp.shape[3], ramp.shape[2]
    plan = np.empty((n_ramps, 4), np.int64)
    for r in range(n_ramps):
        o = o_ramp + r * _R_SIZE
        j, k = int(pv[o + _R_COLUMN]), int(pv[o + _R_SLOTS])
        rw, rtol, rkeep = pv[o + _R_WINDOW], pv[o + _R_TOLERANCE], pv[o + _R_KEEP]
        b = r * (2 * k_max + 1)
        if rows[b + k_max] == 0.0:  # a new workspace: series 0's times, every series checked
            for s in range(k):
                rows[b + s] = ramp[1, r, 0, s] if n > 0 else _NAN
            rows[b + k_max] = 1.0
            on[:, j] = False
        best, pick = _INF, 0
        for s in range(k):
            a = now - rows[b + s]
            d = abs(a - rw) if a >= rw - rtol else _INF
            if d < best:
                best, pick = d, s
        cut, slot, key = now - rkeep, 0, _INF
        for s in range(k):
            t = rows[b + s]
            kk = t if t >= cut else -_INF
            if s == 0 or kk < key:
                slot, key = s, kk
        for s in range(k):
            rows[b + k_max + 1 + s] = now if s == slot else rows[b + s]
        plan[r, _RP_PICK] = pick if best < _INF else -1
        plan[r, _RP_SLOT] = slot
        plan[r, _RP_COUNT] = 0
        plan[r, _RP_FIRST] = -1
    return plan


@jit
def _ramp_advance(ramp, rows, pv, o_ramp, n_ramps, plan):
    """After the cycle: each ramp's pattern takes its next times; when no series follows it (its
    first series' times were never the others'), the times of the first series that wrote a
    sample off it (every series is checked against them next cycle)."""
    k_max = ramp.shape[3]
    for r in range(n_ramps):
        k = int(pv[o_ramp + r * _R_SIZE + _R_SLOTS])
        b = r * (2 * k_max + 1)
        first = plan[r, _RP_FIRST]
        for s in range(k):
            rows[b + s] = ramp[1, r, first, s] if (plan[r, _RP_COUNT] == 0 and first >= 0) else rows[b + k_max + 1 + s]


@jit
def _windows_of_pattern(rec_v, rows, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released, proposals,
                        low, high, held, slot_of):
    """The window pass for targets whose recommendation times are the common pattern ``rows``
    (H,) (every target decided in the same cycles: the usual case): each slot's time is one
    number, so its tests are made once per slot and only the values of slots inside a window are
    read (contiguous rows of rec_v (H, N)), without the times. Writes low, high, held (the linear
    release's excess before its ceil), slot_of for all N targets (the caller redoes the others);
    returns the slot the pattern's next recommendation goes to. The same operations per value as
    :func:`_windows_of_target`, each maximum or minimum taken over the slots in slot order
    (:func:`_fold`)."""
    slots, n = rec_v.shape
    s_star, best = 0, _INF
    in_high, in_low, ahead = np.empty(slots, np.int64), np.empty(slots, np.int64), np.empty(slots)
    n_high, n_low = 0, 0
    for s in range(slots):
        t = rows[s]
        key = t if t >= cut_keep else -_INF  # NaN (empty) compares False: reusable
        if key < best:
            s_star, best = s, key
        if (t >= cut_high) if legacy else (t > cut_high):  # the legacy window is inclusive
            in_high[n_high] = s
            ahead[n_high] = 1.0 - (now - t) / down_w  # the linear release's share of the window ahead
            n_high += 1
        if (not legacy) and up_w > 0 and t > cut_low:  # HPA's default up-window 0: none
            in_low[n_low] = s
            n_low += 1
    if released:  # one pass over the window's rows for both (the default policy's 15 minutes: ~0.5 MB a pass)
        _fold_released(high, held, rec_v, in_high, n_high, proposals, ahead)
    else:
        _fold(high, rec_v, in_high, n_high, 1)
    _fold(low, rec_v, in_low, n_low, 0)
    slot_of[:] = s_star
    return s_star


@jit
def _fold(acc, rec_v, at, count, kind):
    """acc[i] (N,) folded with the values of the rows at[:count] of rec_v (H, N), in that order:
    kind 1 the maximum (``v if v > acc else acc``: NaN skipped, the first of equal values kept),
    0 the minimum (:func:`_fold_released` folds the maximum together with the linear release's
    held excess). Up to four rows
    per pass over the targets, never one alone after the first pass: a pass folding one row
    stores ``v if v > acc[i] else acc[i]``, which LLVM vectorizes with masked stores
    (vmaskmovpd), ~5x slower than a max of values on AMD's cores; a stored value that selects
    among two or more rows is a plain store."""
    n = acc.shape[0]
    k = 0
    while k < count:
        left = count - k
        g = 4 if (left >= 6 or left == 4) else (3 if (left == 3 or left == 5) else left)  # 1 only alone
        r0 = rec_v[at[k]]
        r1 = rec_v[at[k + 1 if g > 1 else k]]
        r2 = rec_v[at[k + 2 if g > 2 else k]]
        r3 = rec_v[at[k + 3 if g > 3 else k]]
        if kind == 1:
            if g == 4:
                for i in range(n):
                    h = acc[i]
                    x = r0[i]
                    h = x if x > h else h
                    x = r1[i]
                    h = x if x > h else h
                    x = r2[i]
                    h = x if x > h else h
                    x = r3[i]
                    acc[i] = x if x > h else h
            elif g == 3:
                for i in range(n):
                    h = acc[i]
                    x = r0[i]
                    h = x if x > h else h
                    x = r1[i]
                    h = x if x > h else h
                    x = r2[i]
                    acc[i] = x if x > h else h
            elif g == 2:
                for i in range(n):
                    h = acc[i]
                    x = r0[i]
                    h = x if x > h else h
                    x = r1[i]
                    acc[i] = x if x > h else h
            else:
                for i in range(n):
                    h, x = acc[i], r0[i]
                    acc[i] = x if x > h else h
        else:
            if g == 4:
                for i in range(n):
                    h = acc[i]
                    x = r0[i]
                    h = x if x < h else h
                    x = r1[i]
                    h = x if x < h else h
                    x = r2[i]
                    h = x if x < h else h
                    x = r3[i]
                    acc[i] = x if x < h else h
            elif g == 3:
                for i in range(n):
                    h = acc[i]
                    x = r0[i]
                    h = x if x < h else h
                    x = r1[i]
                    h = x if x < h else h
                    x = r2[i]
                    acc[i] = x if x < h else h
            elif g == 2:
                for i in range(n):
                    h = acc[i]
                    x = r0[i]
                    h = x if x < h else h
                    x = r1[i]
                    acc[i] = x if x < h else h
            else:
                for i in range(n):
                    h, x = acc[i], r0[i]
                    acc[i] = x if x < h else h
        k += g


@jit
def _fold_released(high, held, rec_v, at, count, proposals, ahead):
    """:func:`_fold`'s maximum into ``high`` and, in the same pass over the rows (read once), the
    maximum of the linear release's held excess p + (v - p) * ahead[k] (p: proposals (N,))
    into ``held``, slot by slot in the same order."""
    n = high.shape[0]
    k = 0
    while k < count:
        left = count - k
        g = 4 if (left >= 6 or left == 4) else (3 if (left == 3 or left == 5) else left)  # 1 only alone
        r0 = rec_v[at[k]]
        r1 = rec_v[at[k + 1 if g > 1 else k]]
        r2 = rec_v[at[k + 2 if g > 2 else k]]
        r3 = rec_v[at[k + 3 if g > 3 else k]]
        a0, a1 = ahead[k], ahead[k + 1 if g > 1 else k]
        a2, a3 = ahead[k + 2 if g > 2 else k], ahead[k + 3 if g > 3 else k]
        if g == 4:
            for i in range(n):
                p, h, m = proposals[i], held[i], high[i]
                v = r0[i]
                x = p + (v - p) * a0
                h = x if x > h else h
                m = v if v > m else m
                v = r1[i]
                x = p + (v - p) * a1
                h = x if x > h else h
                m = v if v > m else m
                v = r2[i]
                x = p + (v - p) * a2
                h = x if x > h else h
                m = v if v > m else m
                v = r3[i]
                x = p + (v - p) * a3
                held[i] = x if x > h else h
                high[i] = v if v > m else m
        elif g == 3:
            for i in range(n):
                p, h, m = proposals[i], held[i], high[i]
                v = r0[i]
                x = p + (v - p) * a0
                h = x if x > h else h
                m = v if v > m else m
                v = r1[i]
                x = p + (v - p) * a1
                h = x if x > h else h
                m = v if v > m else m
                v = r2[i]
                x = p + (v - p) * a2
                held[i] = x if x > h else h
                high[i] = v if v > m else m
        elif g == 2:
            for i in range(n):
                p, h, m = proposals[i], held[i], high[i]
                v = r0[i]
                x = p + (v - p) * a0
                h = x if x > h else h
                m = v if v > m else m
                v = r1[i]
                x = p + (v - p) * a1
                held[i] = x if x > h else h
                high[i] = v if v > m else m
        else:
            for i in range(n):
                p, h, m = proposals[i], held[i], high[i]
                v = r0[i]
                x = p + (v - p) * a0
                held[i] = x if x > h else h
                high[i] = v if v > m else m
        k += g


@jit
def _windows_of_target(rec_v, rec_t, i, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released, proposal,
                       low, high, held, slot_of):
    """The window pass for target i alone (its times off the common pattern): a scan of its
    column of rec_v, rec_t (H, N)."""
    lo_i, hi_i, held_i, key_i, slot_i = _INF, -_INF, -_INF, _INF, 0
    for s in range(rec_v.shape[0]):
        t, v = rec_t[s, i], rec_v[s, i]
        if released and t > cut_high:
            h = proposal + (v - proposal) * (1.0 - (now - t) / down_w)
            held_i = h if h > held_i else held_i
        if legacy:
            hi_i = v if (t >= cut_high) & (v > hi_i) else hi_i
        else:
            hi_i = v if (t > cut_high) & (v > hi_i) else hi_i
            if up_w > 0:
                lo_i = v if (t > cut_low) & (v < lo_i) else lo_i
        key = t if t >= cut_keep else -_INF
        if key < key_i:
            slot_i, key_i = s, key
    low[i], high[i], held[i], slot_of[i] = lo_i, hi_i, held_i, slot_i


@jit
def _windows_of_all(rec_v, rec_t, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released, proposals, low,
                    high, held, slot_key, slot_of, rows, lock):
    """The window pass scanning every target's times slot by slot (contiguous rows of (H, N),
    branch-free selects, so that the inner loops vectorize); lock (N,): 1.0 where the target's
    times are the common pattern ``rows`` (H,), else 0.0. slot_key: (N,) scratch."""
    slots, n = rec_v.shape
    lock[:] = 1.0
    slot_key[:] = _INF
    for s in range(slots):
        tv, vv, r = rec_t[s], rec_v[s], rows[s]
        r_empty = r != r
        for i in range(n):  # _same_time, branch-free (vectorizes)
            t = tv[i]
            lock[i] = lock[i] if (t == r) | ((t != t) & r_empty) else 0.0
        if released:  # scaleDown.release: linear (stabilize.linear_release_ceiling before its ceil)
            for i in range(n):
                t, p = tv[i], proposals[i]
                h = p + (vv[i] - p) * (1.0 - (now - t) / down_w)
                held[i] = h if (t > cut_high) & (h > held[i]) else held[i]
        if legacy:  # the legacy window is inclusive; no up window
            for i in range(n):
                t, v = tv[i], vv[i]
                high[i] = v if (t >= cut_high) & (v > high[i]) else high[i]
                key = t if t >= cut_keep else -_INF  # NaN (empty) compares False: reusable
                better = key < slot_key[i]  # keys are finite or -inf: slot 0 beats the initial +inf
                slot_of[i] = s if better else slot_of[i]
                slot_key[i] = key if better else slot_key[i]
        elif up_w > 0:
            for i in range(n):
                t, v = tv[i], vv[i]
                high[i] = v if (t > cut_high) & (v > high[i]) else high[i]
                low[i] = v if (t > cut_low) & (v < low[i]) else low[i]
                key = t if t >= cut_keep else -_INF
                better = key < slot_key[i]
                slot_of[i] = s if better else slot_of[i]
                slot_key[i] = key if better else slot_key[i]
        else:  # HPA's default up-window 0
            for i in range(n):
                t, v = tv[i], vv[i]
                high[i] = v if (t > cut_high) & (v > high[i]) else high[i]
                key = t if t >= cut_keep else -_INF
                better = key < slot_key[i]
                slot_of[i] = s if better else slot_of[i]
                slot_key[i] = key if better else slot_key[i]


@jit
def _recommendation_windows(rec, rows, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released, proposals,
                            low, high, held, slot_key, slot_of, lock):
    """Per target: the lowest recommendation in the up window (low), the highest in the down
    window (high), the linear release's held maximum (held, when ``released``) and the slot the
    cycle's recommendation goes to (slot_of: the first reusable one, else the first oldest), of
    rec (2, H, N) (values, times). rows (H + 1,): the common pattern of times and a flag (0: not
    yet known, taken from target 0); lock (N,) 1.0 for the targets known to follow it (updated).
    Returns the pattern's slot."""
    slots, n = rec.shape[1], rec.shape[2]
    low[:] = _INF
    high[:] = -_INF
    held[:] = -_INF
    slot_of[:] = 0
    if slots == 0:
        return 0
    rec_v, rec_t = rec[0], rec[1]
    if rows[slots] == 0.0:  # not known yet (a new workspace): target 0's times, every target checked
        for s in range(slots):
            rows[s] = rec_t[s, 0] if n > 0 else _NAN
        rows[slots] = 1.0
        lock[:] = 0.0
    off = 0
    for i in range(n):
        off += 1 if lock[i] == 0.0 else 0
    if off * _SCAN_ALL_BELOW > n:
        _windows_of_all(rec_v, rec_t, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released, proposals,
                        low, high, held, slot_key, slot_of, rows, lock)
        s_star, best = 0, _INF
        for s in range(slots):
            t = rows[s]
            key = t if t >= cut_keep else -_INF
            if key < best:
                s_star, best = s, key
        return s_star
    s_star = _windows_of_pattern(rec_v, rows, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released,
                                 proposals, low, high, held, slot_of)
    for i in range(n):
        if lock[i] != 0.0:
            continue
        same = True
        for s in range(slots):
            if not _same_time(rec_t[s, i], rows[s]):
                same = False
                break
        if same:  # back on the pattern: its results are the pattern's
            lock[i] = 1.0
        else:
            _windows_of_target(rec_v, rec_t, i, now, cut_keep, cut_low, cut_high, legacy, up_w, down_w, released,
                               proposals[i], low, high, held, slot_of)
    return s_star


# One function body on purpose: a call of a compiled function taking arrays increments and
# decrements each array's reference count (atomic operations), ~150-250 ns per call with the
# 5 to 15 arrays the stages need, more than a target's whole decision. The former staged kernels
# paid it per target in their rate-limit helper (most of "norm 250 us"); here only scalar helpers
# are called per target, and they are inlined (compiled.jit_inline). The arguments are few
# (packed arrays): unboxing each costs the call from Python ~0.15 us.
@jit
def fused_kernel(values, present, age, current, ready, status, withheld, startup, floor, pv, now, commit_at, em, win,
                 ramp, rec, rows, up, down, vf, out_f, out_b, vi, active_out, buf, latest):
    """Decide for N targets, one target at a time, the state updated in place. Returns how many
    scale events committing every change to desired would record (commit_all_kernel's count).

    commit_at: the time of the previous cycle whose commit of every change (commit_all_kernel)
    was deferred to this call (NaN: none): recorded first, from vf's pending and desired rows
    (DecisionWorkspace.commit; the separate call and its Python cost ~2 us a cycle).

    Inputs (N, M) values, present, age; (N,) current, ready, status, withheld (spec replicas whose pods
    will not serve, withheld.py), startup (observed start-up delays, NaN unknown); floor (N, M) the
    forecast stage's predictive proposals (NaN: none, see forecast_compiled.py). Parameters: pv (see
    pack_params). State: em (4, N, M) the negated EWMA weights (expm1(-ln2 dt / half-life): the caller
    computes them, see ewma_exponent_into), EWMA, its time, and each metric's first usable reading
    since it was unusable (NormState.usable_since, recovering.py); win (2, N, M, W) window samples, their
    times; ramp (2, R, N, K) ramp samples, times; rec (2, H, N) recommendations, times; rows (H + 1 + 3W
    + 1 + R(2K + 1),) the common patterns of times of the recommendations (H + 1, see
    _recommendation_windows), of the window samples (see _sample_pattern) and of each ramp's samples
    (see _ramp_plan); up, down (2, E, N) scale events (changes, times), read only; vf (16, N): outputs
    combined, proposal, stabilized, desired, state missing_since, the cycle's current (pending for
    commit), scratch low, high, slot key, held, state lock (on the pattern), state latest scale event
    time (commit_kernel's), state the last cycle with no Ready pod (the ramps', RampState.dark_at),
    state the last cycle with a Ready pod, the start of a spell without one, the end of the hold
    after a long spell (NormState.lit_at, dark_since, hold_until) (_F_*). Outputs: out_f (6, N, M)
    signal values, smoothed, proposals, ramp slope, ahead, proposal (ramp columns only); out_b (9, N,
    M) missing, stale, nonfinite, negative, usable, valid, and (state) the series' window sample times
    on their pattern, its ramp sample times on theirs (ramp columns), then implausible; vi (3, N)
    limit reason, reason, scratch slot (_I_*); active_out (N,). buf: (W,) scratch. latest (N, M):
    the ramps' latest readings (NaN: none; ramp.implied_slope)."""
    if commit_at == commit_at:  # the previous cycle's deferred commit, before anything reads the events
        _record_events(vf[_F_PENDING], vf[_F_DESIRED], _NO_ROWS, True, commit_at, up, down,
                       pv[compiled._P_UP_LONGEST], pv[compiled._P_DOWN_LONGEST], vf[_F_LAST_EVENT])
    n, m = values.shape
    stale_after, tol_up, tol_down = pv[compiled._P_STALE], pv[compiled._P_TOL_UP], pv[compiled._P_TOL_DOWN]
    smoothing = int(pv[compiled._P_SMOOTHING])
    window_s = pv[compiled._P_WINDOW]
    w = win.shape[3]
    legacy = pv[compiled._P_LEGACY] != 0.0
    lo, hi = pv[compiled._P_MIN], pv[compiled._P_MAX]
    fallback, hold_s = pv[compiled._P_FALLBACK], pv[compiled._P_HOLD]
    has_fallback = fallback == fallback
    up_w, down_w = pv[compiled._P_UP_WIN], pv[compiled._P_DOWN_WIN]
    up_sel, down_sel = int(pv[compiled._P_UP_SEL]), int(pv[compiled._P_DOWN_SEL])
    factor, minimum = pv[compiled._P_FACTOR], pv[compiled._P_MINIMUM]
    min_step = pv[compiled._P_DOWN_MIN_STEP]
    linear_release = pv[compiled._P_DOWN_LINEAR] != 0.0
    interval = pv[compiled._P_INTERVAL]
    read_window = pv[compiled._P_READ_WINDOW]
    n_up, n_down, n_ramps = int(pv[_V_UP_RULES]), int(pv[_V_DOWN_RULES]), int(pv[_V_RAMPS])
    o_metric = _V_ARRAYS
    o_up = o_metric + 6 * m
    o_down = o_up + 3 * n_up
    o_ramp = o_down + 3 * n_down
    o_read = o_ramp + _R_SIZE * n_ramps  # the metrics' read windows (recovering.py)
    keep_s = down_w if legacy else max(up_w, down_w)
    slots = rec.shape[1]
    cut_keep, cut_low, cut_high = now - keep_s, now - up_w, now - down_w
    up_slots, down_slots = up.shape[1], down.shape[1]

    # each Percent rule's factor (1 +- value / 100), as the rate limit computes it, once per call
    # instead of a division per rule and target (the same operations, so the same bits)
    rule_factor = np.empty(n_up + n_down)
    for r in range(n_up):
        rule_factor[r] = 1.0 + pv[o_up + n_up + r] / 100.0
    for r in range(n_down):
        rule_factor[n_up + r] = 1.0 - pv[o_down + n_down + r] / 100.0

    if rows[slots] == 0.0:  # a new workspace: each target's latest scale event (commit_kernel keeps it)
        last = vf[_F_LAST_EVENT]
        last[:] = _NAN
        for events in (up, down):
            for s in range(events.shape[1]):
                tv = events[1, s]
                for i in range(n):  # np.fmax, branch-free (vectorizes)
                    t, e = tv[i], last[i]
                    last[i] = t if (t > e) | (e != e) else e
    # the window samples' common pattern of times (rows[slots + 1:], see _sample_pattern)
    w_slot, w_count = 0, 0
    w_next = rows[slots + 2 + w:slots + 2 + 2 * w]
    w_inside = rows[slots + 2 + 2 * w:slots + 2 + 3 * w]
    on_sample_rows = out_b[6]
    windowed = w > 0 and smoothing != _S_EWMA and smoothing != _S_NONE
    w_in = np.empty(w, np.int64)  # the slots inside the window, in order (w_count of them)
    if windowed:
        w_slot, w_count = _sample_pattern(win, rows[slots + 1:], now, window_s, on_sample_rows)
        q = 0
        for s in range(w):
            if w_inside[s] != 0.0:
                w_in[q] = s
                q += 1
    # the ramps' common patterns of times (rows[o_rr:], see _ramp_plan): per ramp, the slot a
    # window ago and the slot of this cycle's sample on the pattern, once per call
    on_ramp_rows = out_b[7]
    o_rr = slots + 2 + 3 * w
    k_max = ramp.shape[3]
    r_plan = _ramp_plan(ramp, rows[o_rr:], pv, o_ramp, n_ramps, now, on_ramp_rows)
    # the first ramp's parameters and plan as locals, read once per call: LLVM cannot tell that
    # the arrays written per target do not alias pv, so it reloads (and converts) them per target
    # (the default policy's ~4% of its kernel time); any further ramp reads pv as before
    z_j, z_k, z_kind, z_pick, z_slot = 0, 0, 0, 0, 0
    z_rw, z_rtol, z_lead, z_keep, z_lag, z_gap, z_target, z_cap, z_step, z_dark, z_sat = (
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    z_observed = False
    if n_ramps > 0:
        z_j, z_k = int(pv[o_ramp + _R_COLUMN]), int(pv[o_ramp + _R_SLOTS])
        z_rw, z_rtol, z_lead, z_keep = (pv[o_ramp + _R_WINDOW], pv[o_ramp + _R_TOLERANCE], pv[o_ramp + _R_LEAD],
                                        pv[o_ramp + _R_KEEP])
        z_observed, z_lag, z_gap = pv[o_ramp + _R_OBSERVED] != 0.0, pv[o_ramp + _R_LAG], pv[o_ramp + _R_GAP]
        z_step, z_dark = pv[o_ramp + _R_MIN_STEP], pv[o_ramp + _R_DARK]
        z_kind, z_target, z_cap = int(pv[o_metric + z_j]), pv[o_metric + m + z_j], pv[o_metric + 3 * m + z_j]
        z_sat = pv[o_metric + 4 * m + z_j]
        z_pick, z_slot = r_plan[0, _RP_PICK], r_plan[0, _RP_SLOT]
    # the first metric's parameters as locals, as the first ramp's above (the others read pv)
    a_kind, a_target, a_nonneg, a_pooled, a_saturation, a_implausible = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    if m > 0:
        a_kind, a_target, a_nonneg = int(pv[o_metric]), pv[o_metric + m], pv[o_metric + 2 * m]
        a_pooled, a_saturation, a_implausible = pv[o_metric + 3 * m], pv[o_metric + 4 * m], pv[o_metric + 5 * m]
    for i in range(n):
        cur, rdy, sts, wh = current[i], ready[i], status[i], withheld[i]
        vf[_F_PENDING, i] = cur
        # -- signal -> smooth -> propose, per metric
        for j in range(m):
            if j == 0:
                kind_j, target_j, nonneg_j = a_kind, a_target, a_nonneg
                pooled_j, saturation_j, implausible_j = a_pooled, a_saturation, a_implausible
            else:
                kind_j, target_j, nonneg_j = int(pv[o_metric + j]), pv[o_metric + m + j], pv[o_metric + 2 * m + j]
                pooled_j, saturation_j = pv[o_metric + 3 * m + j], pv[o_metric + 4 * m + j]
                implausible_j = pv[o_metric + 5 * m + j]
            x = values[i, j]
            pr = present[i, j]
            # signal.read_signal's flags, branch-free (``&`` does not short-circuit: the flags vary
            # from target to target, and their branches were mispredicted)
            finite = math.isfinite(x)
            nf = pr & (not finite)
            st = pr & (age[i, j] > stale_after)
            ng = pr & finite & (x < 0) & (nonneg_j != 0.0)
            ip = pr & finite & (x > implausible_j)  # implausible
            us = pr & (not (st | nf | ng | ip))
            out_b[0, i, j], out_b[1, i, j], out_b[2, i, j], out_b[3, i, j] = not pr, st, nf, ng
            out_b[4, i, j], out_b[8, i, j] = us, ip
            # the first usable reading since the metric was unusable (recovering.recovering)
            if not us:
                em[3, i, j] = _NAN
            elif em[3, i, j] != em[3, i, j]:
                em[3, i, j] = now
            sv = x if us else _NAN
            out_f[0, i, j] = sv
            if smoothing == _S_EWMA:
                if us:
                    e = em[1, i, j]
                    em[1, i, j] = sv if e != e else e + (-em[0, i, j]) * (sv - e)
                    em[2, i, j] = now
                sm = em[1, i, j]
            elif smoothing == _S_NONE:
                sm = sv
            elif on_sample_rows[i, j] and us:  # window mean / max, the sample times on the pattern: its
                # slot and the slots inside the window are known (the same operations as below)
                win[0, i, j, w_slot] = sv
                win[1, i, j, w_slot] = now
                best, total = -_INF, 0.0
                if smoothing == _S_MAX:
                    for q in range(w_count):
                        y = win[0, i, j, w_in[q]]
                        best = y if y > best else best
                    sm = best if w_count > 0 else _NAN
                elif w < 8:  # the slots outside add +0.0 below: an identity (a sum from +0.0 is never -0.0)
                    for q in range(w_count):
                        total += win[0, i, j, w_in[q]]
                    sm = total / w_count if w_count > 0 else _NAN
                else:
                    for s in range(w):
                        buf[s] = win[0, i, j, s] if w_inside[s] != 0.0 else 0.0
                    sm = compiled._pairwise_sum(buf, 0, w) / w_count if w_count > 0 else _NAN
            else:  # window mean / max: nanmean / nanmax of the samples with age < window
                if us and w > 0:  # the first empty slot, else the first oldest
                    slot, key = 0, _INF
                    for s in range(w):
                        t = win[1, i, j, s]
                        kw = -_INF if t != t else t
                        if s == 0 or kw < key:
                            slot, key = s, kw
                    win[0, i, j, slot] = sv
                    win[1, i, j, slot] = now
                count, best, total = 0, -_INF, 0.0
                if smoothing == _S_MAX:
                    for s in range(w):
                        if (now - win[1, i, j, s]) < window_s:
                            count += 1
                            y = win[0, i, j, s]
                            best = y if y > best else best
                    sm = best if count > 0 else _NAN
                elif w < 8:  # _pairwise_sum's short path: the terms in order, +0.0 for those outside
                    for s in range(w):
                        inside = (now - win[1, i, j, s]) < window_s
                        total += win[0, i, j, s] if inside else 0.0
                        count += 1 if inside else 0
                    sm = total / count if count > 0 else _NAN
                else:
                    for s in range(w):
                        inside = (now - win[1, i, j, s]) < window_s
                        buf[s] = win[0, i, j, s] if inside else 0.0
                        count += 1 if inside else 0
                    sm = compiled._pairwise_sum(buf, 0, w) / count if count > 0 else _NAN
                if w > 0:  # on the pattern after this cycle: its times are the pattern's next ones
                    same = True
                    for s in range(w):
                        if not _same_time(win[1, i, j, s], w_next[s]):
                            same = False
                            break
                    on_sample_rows[i, j] = same
            out_f[1, i, j] = sm
            p, ready_ok = compiled.propose_pooled(kind_j, target_j, pooled_j, sm, cur, rdy, sts, wh, lo, tol_up, tol_down)
            ok = math.isfinite(sm) and ready_ok and math.isfinite(p) and us
            if ok:  # saturation.saturation_floor: a reading at the Ready pods' capacity is a lower bound
                p = compiled.saturation_floor_one(p, sm, latest[i, j], target_j, saturation_j,
                                                  rdy, wh, tol_up)
            out_b[5, i, j] = ok
            out_f[2, i, j] = p if ok else _NAN
            # the forecast stage's predictive proposal (forecast_compiled.py; NaN: none) only adds:
            # max(reactive, predictive) where the metric is valid (decide._forecast)
            f = floor[i, j]
            if ok and f == f:
                out_f[2, i, j] = p if p >= f else f  # np.fmax

        # -- ramp: each ramp metric's slope over its window, the proposal one lead time ahead
        reactive_up = False  # a valid proposal above current, before any ramp (ramp.hold_small_look_ahead)
        for j in range(m):
            reactive_up = reactive_up or (out_b[5, i, j] and out_f[2, i, j] > cur)
        if n_ramps > 0 and cur > 0.0 and rdy <= 0.0:  # no Ready pod: no slope now, nor for dark_s (ramp.py)
            vf[_F_DARK_AT, i] = now
        dark_at = vf[_F_DARK_AT, i]
        for r in range(n_ramps):
            if r == 0:
                j, k, kind, r_pick, r_slot = z_j, z_k, z_kind, z_pick, z_slot
                rw, rtol, lead_s, rkeep, observed, lag, gap, target, cap, step, dark_s, sat = (
                    z_rw, z_rtol, z_lead, z_keep, z_observed, z_lag, z_gap, z_target, z_cap, z_step, z_dark, z_sat)
            else:
                o = o_ramp + r * _R_SIZE
                j, k = int(pv[o + _R_COLUMN]), int(pv[o + _R_SLOTS])
                kind, r_pick, r_slot = int(pv[o_metric + j]), r_plan[r, _RP_PICK], r_plan[r, _RP_SLOT]
                rw, rtol, lead_s, rkeep = pv[o + _R_WINDOW], pv[o + _R_TOLERANCE], pv[o + _R_LEAD], pv[o + _R_KEEP]
                observed, lag, gap = pv[o + _R_OBSERVED] != 0.0, pv[o + _R_LAG], pv[o + _R_GAP]
                step, dark_s = pv[o + _R_MIN_STEP], pv[o + _R_DARK]
                target, cap, sat = pv[o_metric + m + j], pv[o_metric + 3 * m + j], pv[o_metric + 4 * m + j]
            if observed and math.isfinite(startup[i]):  # RampParams.leads
                lead_s = lag + startup[i]
            y, ok = out_f[0, i, j], out_b[4, i, j]
            on = on_ramp_rows[i, j]
            if on:  # the series' times are the pattern's: its slot a window ago (-1: none) is known
                pick = r_pick
                found = pick >= 0
            else:
                best, pick = _INF, 0  # window_ago: nearest to now - window among those old enough (the first)
                for s in range(k):
                    a = now - ramp[1, r, i, s]  # NaN for empty slots: compares False
                    d = abs(a - rw) if a >= rw - rtol else _INF
                    if d < best:
                        best, pick = d, s
                found = best < _INF
            old_v = ramp[0, r, i, pick] if found else _NAN
            old_t = ramp[1, r, i, pick] if found else _NAN
            slope = (y - old_v) / (now - old_t) if (ok and now > old_t) else _NAN
            if gap > 0.0 and math.isfinite(slope) and math.isfinite(latest[i, j]):  # ramp.implied_slope
                slope = (latest[i, j] - y) / gap
            if now - dark_at < dark_s:  # NaN (never dark) compares False
                slope = _NAN
            ahead = y + rise(slope) * lead_s
            out_f[3, i, j], out_f[4, i, j] = slope, ahead
            if on:
                if ok and k > 0:  # the pattern's slot: its times stay the pattern's (next ones)
                    slot = r_slot
                    ramp[0, r, i, slot] = y
                    ramp[1, r, i, slot] = now
                    r_plan[r, _RP_COUNT] += 1
                elif not ok:  # no sample: off the pattern
                    on_ramp_rows[i, j] = False
            else:
                if ok and k > 0:  # write_slot: the first reusable slot, else the first oldest
                    cut, slot, key = now - rkeep, 0, _INF
                    for s in range(k):
                        t = ramp[1, r, i, s]
                        kk = t if t >= cut else -_INF
                        if s == 0 or kk < key:
                            slot, key = s, kk
                    ramp[0, r, i, slot] = y
                    ramp[1, r, i, slot] = now
                    if r_plan[r, _RP_FIRST] < 0:
                        r_plan[r, _RP_FIRST] = i
                # on the pattern after this cycle: its times are the pattern's next ones
                nxt = o_rr + r * (2 * k_max + 1) + k_max + 1
                same = True
                for s in range(k):
                    if not _same_time(ramp[1, r, i, s], rows[nxt + s]):
                        same = False
                        break
                on_ramp_rows[i, j] = same
                r_plan[r, _RP_COUNT] += 1 if same else 0
            p, ready_ok = compiled.propose_pooled(kind, target, cap, ahead, cur, rdy, sts, wh, lo, tol_up, tol_down)
            if out_b[5, i, j] and math.isfinite(ahead) and ready_ok and math.isfinite(p):
                out_f[5, i, j] = p  # as the look-ahead asks (the record shows a held step)
                # a step to a projected saturation is kept (ramp.apply_ramps: saturated one lead time ahead)
                if not reactive_up and not compiled.saturated_one(ahead, sat, cur, tol_up):
                    # a look-ahead-only step smaller than the min step holds current
                    p = min_step_module.hold_small_rise(cur, p, step)
                a = out_f[2, i, j]
                out_f[2, i, j] = a if (a >= p or p != p) else p  # np.fmax, signed zeros included
            else:
                out_f[5, i, j] = _NAN

        # -- combine: the max over the valid proposals (finite: NaN iff none is valid)
        combined, any_valid, all_valid, partial = -_INF, False, True, False
        for j in range(m):
            if out_b[5, i, j]:
                combined = compiled.nan_max(combined, out_f[2, i, j])
                any_valid = True
                # a valid reading less than its read window after a gap (recovering.recovering)
                partial = partial or now - em[3, i, j] < pv[o_read + j]
            else:
                all_valid = False
        combined = combined if any_valid else _NAN
        # first sight seeds the history with (current, now)
        if slots > 0 and rec[1, 0, i] != rec[1, 0, i]:
            rec[0, 0, i], rec[1, 0, i] = cur, now
        # missing data
        blocked_down = (not all_valid) and any_valid and combined < cur
        none_valid = not any_valid
        ms = vf[_F_MISSING_SINCE, i]
        ms = (now if ms != ms else ms) if none_valid else _NAN
        vf[_F_MISSING_SINCE, i] = ms
        miss_reason = compiled._MISSING if (blocked_down or none_valid) else -1
        proposal = combined if any_valid else cur
        if has_fallback and none_valid and (now - ms >= hold_s):  # the hold expired
            proposal = compiled.nan_max(cur, fallback)
            miss_reason = compiled._FALLBACK
        # no Ready pod: no scale-down, nor a scale-up once it had Ready pods, nor either way for a
        # window after a spell that long (normalize._missing_data)
        lit, since, until = vf[_F_LIT_AT, i], vf[_F_DARK_SINCE, i], vf[_F_HOLD_UNTIL, i]
        on = cur > 0.0
        unlit = ready[i] <= 0.0 and on
        went_dark = unlit and (lit == lit or since == since)
        since = (since if since == since else now) if went_dark else _NAN
        if read_window > 0.0 and went_dark and now - since >= read_window:
            until = now + read_window + interval
        if not on:
            until = _NAN
        after = (not unlit) and on and now < until
        if miss_reason == compiled._MISSING:  # hold
            proposal = cur
        elif (unlit and proposal < cur) or ((went_dark or after) and proposal != cur
                                           and miss_reason != compiled._FALLBACK):
            proposal, miss_reason = cur, compiled._NOT_READY
        elif partial and proposal < cur:  # a reading just after a gap reads low: no scale-down on it
            proposal, miss_reason = cur, compiled._RECOVERING
        vf[_F_LIT_AT, i] = now if ready[i] > 0.0 else (lit if on else _NAN)
        vf[_F_DARK_SINCE, i], vf[_F_HOLD_UNTIL, i] = since, until
        # to the second pass: combined, proposal; the missing-data reason (a hold iff _MISSING, _RECOVERING
        # or _NOT_READY)
        # where the final reasons go
        vf[_F_COMBINED, i], vf[_F_PROPOSAL, i] = combined, proposal
        vi[_I_REASON, i] = miss_reason

    # -- the recommendation windows (per target: low, high, the linear release's held maximum, the
    #    slot of this cycle's recommendation), slot by slot across targets: see
    #    _recommendation_windows (the common pattern of times, the targets off it)
    low, high, held_max, slot_of = vf[_F_LOW], vf[_F_HIGH], vf[_F_HELD], vi[_I_SLOT]
    lock = vf[_F_LOCK]
    rec_v, rec_t = rec[0], rec[1]
    # scaleDown.release: linear (stabilize.linear_release_ceiling before its ceil: each held excess
    # over the proposal scaled by the share of the window ahead)
    released = linear_release and not legacy and down_w > 0.0
    if slots > 0 and rows[slots] != 0.0 and rows[0] != rows[0]:
        rows[0] = now  # the first sight seeded slot 0 of every target on the pattern
    s_star = _recommendation_windows(rec, rows[:slots + 1], now, cut_keep, cut_low, cut_high, legacy, up_w, down_w,
                                     released, vf[_F_PROPOSAL], low, high, held_max, vf[_F_SLOT_KEY], slot_of, lock)

    events = 0
    for i in range(n):
        cur = current[i]
        proposal, combined, miss_reason = vf[_F_PROPOSAL, i], vf[_F_COMBINED, i], vi[_I_REASON, i]
        any_valid = combined == combined
        hold = (miss_reason == compiled._MISSING or miss_reason == compiled._NOT_READY
                or miss_reason == compiled._RECOVERING)
        forced, pre_reason = compiled.precheck(cur, lo, hi)
        has_forced = forced == forced
        skip = has_forced or hold
        low_i, high_i, slot_i = low[i], high[i], slot_of[i]
        if linear_release and not legacy:  # scaleDown.release: linear, instead of the window pass's max
            fresh = True  # stabilize.fresh_rows: no present sample older than an interval
            for j in range(m):
                if present[i, j] and age[i, j] > interval:
                    fresh = False
            if fresh:
                high_i = np.ceil(held_max[i]) if released else -_INF
        # -- stabilize and limit
        if legacy:
            stabilized = compiled.nan_max(proposal, high_i)
            up_cap = np.trunc(max(factor * cur, minimum))
            tighter = hi > up_cap
            upper = up_cap if tighter else hi
            if stabilized < lo:
                desired, limit_reason = lo, compiled._CL_MIN
            elif stabilized > upper:
                desired, limit_reason = upper, (compiled._RL_UP if tighter else compiled._CL_MAX)
            else:
                desired, limit_reason = stabilized, compiled._NOT_LIMITED
        else:
            up_floor = compiled.nan_min(proposal, low_i) if up_w > 0 else proposal  # HPA's default up-window 0
            stabilized = compiled.nan_min(compiled.nan_max(cur, up_floor), compiled.nan_max(proposal, high_i))
            stabilized = min_step_module.hold_small_step(cur, stabilized, min_step)
            desired, limit_reason = stabilized, compiled._NOT_LIMITED
            up_dir = stabilized > cur
            if up_dir or stabilized < cur:  # scale_up_limit / scale_down_limit (limit.py) of the direction
                select = up_sel if up_dir else down_sel
                n_rules = n_up if up_dir else n_down
                o = o_up if up_dir else o_down
                if select == compiled._SEL_DISABLED:
                    raw = cur
                elif n_rules == 0:
                    raw = _INF if up_dir else -_INF
                else:
                    raw, last_period, added, removed = 0.0, _NAN, 0.0, 0.0
                    for r in range(n_rules):
                        kind, value, period = pv[o + r], pv[o + n_rules + r], pv[o + 2 * n_rules + r]
                        if period != last_period:  # rules sharing a period share their sums
                            # branch-free masked sums: adding +0.0 for a slot outside the period is
                            # exact (a sum from +0.0 is never -0.0), as np.sum(where=) skipping it;
                            # none inside when the latest event is not (its time bounds the others')
                            added, removed = 0.0, 0.0
                            if (now - vf[_F_LAST_EVENT, i]) < period:
                                for s in range(up_slots):
                                    added += up[0, s, i] if (now - up[1, s, i]) < period else 0.0
                                for s in range(down_slots):
                                    removed += down[0, s, i] if (now - down[1, s, i]) < period else 0.0
                            last_period = period
                        start = cur - added + removed
                        pods = int(kind) == compiled._PODS
                        if up_dir:
                            p = start + value if pods else np.ceil(start * rule_factor[r])
                        else:
                            p = start - value if pods else np.trunc(start * rule_factor[n_up + r])
                        if r == 0:
                            raw = p
                        elif (select == compiled._SEL_MAX) == up_dir:  # up: Max the largest; down: Max the lowest
                            raw = compiled.nan_max(raw, p)
                        else:
                            raw = compiled.nan_min(raw, p)
                if up_dir:
                    raw = compiled.nan_max(raw, cur)
                    allowed = compiled.nan_min(hi, raw)
                    if stabilized > allowed:
                        desired, limit_reason = allowed, (compiled._RL_UP if raw < hi else compiled._CL_MAX)
                else:
                    raw = compiled.nan_min(raw, cur)
                    allowed = compiled.nan_max(lo, raw)
                    if stabilized < allowed:
                        desired, limit_reason = allowed, (compiled._RL_DOWN if raw > lo else compiled._CL_MIN)

        # remember the raw proposal (Setpoint's own mode also during a hold)
        if slots > 0:
            wrote = (not skip) or (hold and not has_forced)
            if wrote:
                rec_v[slot_i, i] = proposal
                rec_t[slot_i, i] = now
            lock[i] = 1.0 if (wrote and lock[i] != 0.0) else 0.0  # a target on the pattern writes its slot
        stabilized, desired, limit_reason, reason = compiled.final_outcome(
            cur, proposal, stabilized, desired, limit_reason, legacy, miss_reason, pre_reason, forced, hold)
        vf[_F_STABILIZED, i], vf[_F_DESIRED, i] = stabilized, desired
        vi[_I_LIMIT, i], vi[_I_REASON, i] = limit_reason, reason
        active_out[i] = (not has_forced) and any_valid and not hold
        # a change committing would record (_record_events' test): a direction that keeps events
        if not (desired == cur or desired != desired or cur != cur):
            events += 1 if (up_slots if desired > cur else down_slots) > 0 else 0
    if slots > 0:
        rows[s_star] = now
    if windowed:
        rows[slots + 1:slots + 1 + w] = w_next
    _ramp_advance(ramp, rows[o_rr:], pv, o_ramp, n_ramps, r_plan)
    return events


@jit
def commit_kernel(current, replicas, applied, now, up, down, pv, last_event):
    """normalize.record_scale_events in place: |replicas - current| (N,) per direction for the
    applied rows (N,) bool, into up, down (2, E, N) (changes, times), each kept for its
    direction's longest rate period (pv, see pack_params); last_event (N,): the latest event
    time of each target (NaN: none), raised to ``now`` where one is recorded."""
    return _record_events(current, replicas, applied, False, now, up, down, pv[compiled._P_UP_LONGEST],
                          pv[compiled._P_DOWN_LONGEST], last_event)


@jit
def commit_all_kernel(vf, now, up, down, pv):
    """commit_kernel for every row, from the desired to the pending counts, both read from vf
    (the fused kernel's rows, _F_*), as is its latest event time: fewer arguments (numba's call
    costs ~0.15 us an argument) for the common commit of every change."""
    return _record_events(vf[_F_PENDING], vf[_F_DESIRED], _NO_ROWS, True, now, up, down,
                          pv[compiled._P_UP_LONGEST], pv[compiled._P_DOWN_LONGEST], vf[_F_LAST_EVENT])


_NO_ROWS = np.zeros(0, np.bool_)  # commit_all_kernel's ``applied``: never read (every row is)


@jit
def _record_events(current, replicas, applied, every, now, up, down, up_keep_s, down_keep_s, last_event):
    """The commit loop: row i's scale event current[i] -> replicas[i] for the rows applied
    (``every``: all, ``applied`` not read) into up or down (history.write_slot's slot: the
    first reusable (empty or outdated), else the first oldest), its latest event time raised to
    ``now``; returns how many were recorded (a change in a direction that keeps events).
    Written out, without a helper taking the arrays: an inlined call increments and decrements
    its arrays' reference counts (atomic operations) on every row that changes, ~100 ns a row
    (most of a commit's time, ~10 us for 90 changes among 1,000 targets)."""
    up_slots, down_slots = up.shape[1], down.shape[1]
    up_cut, down_cut = now - up_keep_s, now - down_keep_s
    count = 0
    for i in range(current.shape[0]):
        cur, to = current[i], replicas[i]
        if cur == to or to != to or cur != cur or not (every or applied[i]):
            continue
        if to > cur:
            if up_slots == 0:
                continue
            slot, key = 0, _INF
            for s in range(up_slots):
                t = up[1, s, i]
                kk = t if t >= up_cut else -_INF  # NaN (empty) compares False: reusable
                if s == 0 or kk < key:
                    slot, key = s, kk
            up[0, slot, i] = to - cur
            up[1, slot, i] = now
        else:
            if down_slots == 0:
                continue
            slot, key = 0, _INF
            for s in range(down_slots):
                t = down[1, s, i]
                kk = t if t >= down_cut else -_INF
                if s == 0 or kk < key:
                    slot, key = s, kk
            down[0, slot, i] = cur - to
            down[1, slot, i] = now
        last = last_event[i]
        last_event[i] = last if last >= now else now  # NaN (none yet) compares False
        count += 1
    return count
