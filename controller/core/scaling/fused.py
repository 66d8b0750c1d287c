"""The decision pipeline as one fused per-target kernel that updates the state in place.

signal -> smooth -> propose -> ramp -> combine -> pre-checks and missing data -> stabilize ->
limit -> history writes run target by target in one loop (core/scaling/workspace.py owns the
arrays and is the API; ``decide`` runs it too). The numbers are those of the numpy stages
(decide_numpy, the reference); compiled.py holds the per-value helpers (propose, pairwise sum,
NaN-propagating min/max) and the packed parameters. tests/core/test_compiled.py and
tests/core/test_workspace.py check every output and state array is identical.

Scale events are not written here: :func:`commit_kernel` writes them for the rows whose change
was applied (Decision.state_after's rule), from the pending (current, replicas) of the cycle.

The helpers are called as ``compiled.X`` so that numba finds the dispatchers compiled.py makes
on load (a ``from`` import would bind the plain functions).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit

_S_NONE, _S_EWMA, _S_MAX = compiled._S_NONE, compiled._S_EWMA, compiled._S_MAX
_NAN, _INF = math.nan, math.inf
# ramp parameter rows (see pack_ramps)
_R_COLUMN, _R_WINDOW, _R_TOLERANCE, _R_LEAD, _R_KEEP, _R_SLOTS, _R_OBSERVED, _R_LAG, _R_SIZE = range(9)


def pack_ramps(params) -> np.ndarray:
    """(R, 8) float rows per ramp metric: column, window_s, tolerance_s, lead_s, keep_s, slots,
    observed (1: the lead follows the observed start-up delay, see RampParams.leads), lag_s."""
    rows = np.zeros((len(params.ramp_metrics), _R_SIZE))
    for r, j in enumerate(params.ramp_metrics):
        rp = params.metrics[j].ramp
        rows[r] = (j, rp.window_s, 0.5 * rp.interval_s, rp.lead_s, rp.keep_s, rp.slots, float(rp.observed), rp.lag_s)
    return rows


@jit
def _write_slot_row(values, times, i, k, value, now, outdated_after_s):
    """history.write_slot for row i of (N, >=k) arrays: the first reusable (empty or outdated)
    slot among the first k, else the first oldest."""
    cut = now - outdated_after_s
    slot, key = 0, _INF
    for s in range(k):
        t = times[i, s]
        kk = t if t >= cut else -_INF  # NaN (empty) compares False: reusable
        if s == 0 or kk < key:
            slot, key = s, kk
    values[i, slot] = value
    times[i, slot] = now


# One function body on purpose: a call of a compiled function taking arrays increments and
# decrements each array's reference count (atomic operations), ~150-250 ns per call with the
# 5 to 15 arrays the stages need, more than a target's whole decision. The former staged kernels
# paid it per target in their rate-limit helper (most of "norm 250 us"); here only scalar helpers
# are called per target.
@jit
def fused_kernel(values, present, age, current, ready, status, startup, metric, scal, up_rules, down_rules, ramp_p, now,
                 alpha, ewma, ewma_at, samples, sample_at, ramp_v, ramp_t, rec_v, rec_t, up_c, up_t, down_c, down_t,
                 missing_since, out_f2, out_b2, ramp_out, out_f1, out_i1, active_out, buf):
    """Decide for N targets, one target at a time, the state updated in place.

    Inputs (N, M) values, present, age; (N,) current, ready, status, startup (observed start-up
    delays, NaN unknown). Parameters: metric (3, M), scal (see compiled._pack), rules (3, R),
    ramp_p (R, 8) (pack_ramps). State: ewma, ewma_at (N, M); samples, sample_at (N, M, W);
    ramp_v, ramp_t (R, N, K); rec_v, rec_t (N, H); scale events (N, E), read only;
    missing_since (N,). Outputs: out_f2 (3, N, M) signal values,
    smoothed, proposals; out_b2 (6, N, M) missing, stale, nonfinite, negative, usable, valid;
    ramp_out (3, N, M) slope, ahead, proposal (ramp columns only); out_f1 (4, N) combined,
    proposal, stabilized, desired; out_i1 (2, N) limit reason, reason; active_out (N,).
    alpha: (N, M) EWMA weights from the state's times (the caller computes them with numpy's
    expm1); buf: (W,) scratch."""
    n, m = values.shape
    stale_after, tol_up, tol_down = scal[compiled._P_STALE], scal[compiled._P_TOL_UP], scal[compiled._P_TOL_DOWN]
    smoothing = int(scal[compiled._P_SMOOTHING])
    window_s = scal[compiled._P_WINDOW]
    w = samples.shape[2]
    legacy = scal[compiled._P_LEGACY] != 0.0
    lo, hi = scal[compiled._P_MIN], scal[compiled._P_MAX]
    fallback, hold_s = scal[compiled._P_FALLBACK], scal[compiled._P_HOLD]
    has_fallback = fallback == fallback
    up_w, down_w = scal[compiled._P_UP_WIN], scal[compiled._P_DOWN_WIN]
    up_sel, down_sel = int(scal[compiled._P_UP_SEL]), int(scal[compiled._P_DOWN_SEL])
    factor, minimum = scal[compiled._P_FACTOR], scal[compiled._P_MINIMUM]
    keep_s = down_w if legacy else max(up_w, down_w)
    slots = rec_t.shape[1]
    cut_keep, cut_low, cut_high = now - keep_s, now - up_w, now - down_w
    n_ramps = ramp_p.shape[0]
    proposal_arr, forced_arr, combined_arr = np.empty(n), np.empty(n), np.empty(n)
    hold_arr, any_valid_arr = np.empty(n, np.bool_), np.empty(n, np.bool_)
    pre_arr, miss_arr = np.empty(n, np.int64), np.empty(n, np.int64)
    up_slots, down_slots = up_c.shape[1], down_c.shape[1]

    for i in range(n):
        cur, rdy, sts = current[i], ready[i], status[i]
        # -- signal -> smooth -> propose, per metric
        for j in range(m):
            x = values[i, j]
            pr = present[i, j]
            nf = pr and not math.isfinite(x)
            st = pr and age[i, j] > stale_after
            ng = pr and not nf and x < 0 and metric[2, j] != 0.0
            us = pr and not (st or nf or ng)
            out_b2[0, i, j], out_b2[1, i, j], out_b2[2, i, j], out_b2[3, i, j] = not pr, st, nf, ng
            out_b2[4, i, j] = us
            sv = x if us else _NAN
            out_f2[0, i, j] = sv
            if smoothing == _S_EWMA:
                if us:
                    e = ewma[i, j]
                    ewma[i, j] = sv if e != e else e + alpha[i, j] * (sv - e)
                    ewma_at[i, j] = now
                sm = ewma[i, j]
            elif smoothing == _S_NONE:
                sm = sv
            else:  # window mean / max: nanmean / nanmax of the samples with age < window
                if us and w > 0:
                    slot, key = 0, _INF
                    for s in range(w):
                        t = sample_at[i, j, s]
                        kw = -_INF if t != t else t
                        if s == 0 or kw < key:
                            slot, key = s, kw
                    samples[i, j, slot] = sv
                    sample_at[i, j, slot] = now
                count, best = 0, -_INF
                for s in range(w):
                    inside = (now - sample_at[i, j, s]) < window_s
                    y = samples[i, j, s] if inside else 0.0
                    buf[s] = y
                    if inside:
                        count += 1
                        if y > best:
                            best = y
                if count == 0:
                    sm = _NAN
                elif smoothing == _S_MAX:
                    sm = best
                else:
                    sm = compiled._pairwise_sum(buf, 0, w) / count
            out_f2[1, i, j] = sm
            p, ready_ok = compiled._propose_one(int(metric[0, j]), metric[1, j], sm, cur, rdy, sts, tol_up, tol_down)
            ok = math.isfinite(sm) and ready_ok and math.isfinite(p) and us
            out_b2[5, i, j] = ok
            out_f2[2, i, j] = p if ok else _NAN

        # -- ramp: each ramp metric's slope over its window, the proposal one lead time ahead
        for r in range(n_ramps):
            j = int(ramp_p[r, _R_COLUMN])
            rw, rtol = ramp_p[r, _R_WINDOW], ramp_p[r, _R_TOLERANCE]
            lead_s, rkeep = ramp_p[r, _R_LEAD], ramp_p[r, _R_KEEP]
            if ramp_p[r, _R_OBSERVED] != 0.0 and math.isfinite(startup[i]):  # RampParams.leads
                lead_s = ramp_p[r, _R_LAG] + startup[i]
            k = int(ramp_p[r, _R_SLOTS])
            y, ok = out_f2[0, i, j], out_b2[4, i, j]
            best, pick = _INF, 0  # window_ago: nearest to now - window among those old enough (the first)
            for s in range(k):
                a = now - ramp_t[r, i, s]  # NaN for empty slots: compares False
                d = abs(a - rw) if a >= rw - rtol else _INF
                if d < best:
                    best, pick = d, s
            found = best < _INF
            old_v = ramp_v[r, i, pick] if found else _NAN
            old_t = ramp_t[r, i, pick] if found else _NAN
            slope = (y - old_v) / (now - old_t) if (ok and now > old_t) else _NAN
            ahead = y + compiled.nan_max(slope, 0.0) * lead_s
            ramp_out[0, i, j], ramp_out[1, i, j] = slope, ahead
            if ok and k > 0:  # write_slot: the first reusable slot, else the first oldest
                cut, slot, key = now - rkeep, 0, _INF
                for s in range(k):
                    t = ramp_t[r, i, s]
                    kk = t if t >= cut else -_INF
                    if s == 0 or kk < key:
                        slot, key = s, kk
                ramp_v[r, i, slot] = y
                ramp_t[r, i, slot] = now
            p, ready_ok = compiled._propose_one(int(metric[0, j]), metric[1, j], ahead, cur, rdy, sts, tol_up,
                                                tol_down)
            if out_b2[5, i, j] and math.isfinite(ahead) and ready_ok and math.isfinite(p):
                ramp_out[2, i, j] = p
                a = out_f2[2, i, j]
                out_f2[2, i, j] = a if (a >= p or p != p) else p  # np.fmax, signed zeros included
            else:
                ramp_out[2, i, j] = _NAN

        # -- combine: the max over the valid proposals
        combined, any_valid, all_valid = -_INF, False, True
        for j in range(m):
            if out_b2[5, i, j]:
                combined = compiled.nan_max(combined, out_f2[2, i, j])
                any_valid = True
            else:
                all_valid = False
        combined = combined if any_valid else _NAN
        # first sight seeds the history with (current, now)
        if slots > 0 and rec_t[i, 0] != rec_t[i, 0]:
            rec_v[i, 0], rec_t[i, 0] = cur, now
        # pre-checks
        if cur == 0 and lo != 0:
            forced, pre_reason = 0.0, compiled._DISABLED
        elif cur > hi:
            forced, pre_reason = hi, compiled._ABOVE
        elif cur < lo:
            forced, pre_reason = lo, compiled._BELOW
        else:
            forced, pre_reason = _NAN, -1
        # missing data
        blocked_down = (not all_valid) and any_valid and combined < cur
        none_valid = not any_valid
        ms = missing_since[i]
        ms = (now if ms != ms else ms) if none_valid else _NAN
        missing_since[i] = ms
        miss_reason = compiled._MISSING if (blocked_down or none_valid) else -1
        proposal = combined if any_valid else cur
        if has_fallback:
            expired = none_valid and (now - ms >= hold_s)
            if expired:
                proposal = compiled.nan_max(cur, fallback)
                miss_reason = compiled._FALLBACK
            hold = (blocked_down or none_valid) and not expired
        else:
            hold = blocked_down or none_valid
        if hold:
            proposal = cur
        has_forced = forced == forced
        skip = has_forced or hold

        proposal_arr[i], forced_arr[i], hold_arr[i] = proposal, forced, hold
        pre_arr[i], miss_arr[i], any_valid_arr[i], combined_arr[i] = pre_reason, miss_reason, any_valid, combined

    # -- the recommendation windows, slot by slot across targets (the histories are Fortran-
    #    ordered: contiguous columns, branch-free selects, so that the inner loops vectorize),
    #    and the slot each target's proposal goes to: the first reusable one, else the first oldest
    low = np.full(n, _INF)
    high = np.full(n, -_INF)
    slot_key = np.full(n, _INF)
    slot_of = np.zeros(n, np.int64)
    for s in range(slots):
        if legacy:  # the legacy window is inclusive
            for i in range(n):
                t, v = rec_t[i, s], rec_v[i, s]
                high[i] = v if (t >= cut_high) & (v > high[i]) else high[i]
        else:
            for i in range(n):
                t, v = rec_t[i, s], rec_v[i, s]
                high[i] = v if (t > cut_high) & (v > high[i]) else high[i]
            if up_w > 0:
                for i in range(n):
                    t, v = rec_t[i, s], rec_v[i, s]
                    low[i] = v if (t > cut_low) & (v < low[i]) else low[i]
        for i in range(n):  # keys are finite or -inf: slot 0 always beats the initial +inf
            t = rec_t[i, s]
            key = t if t >= cut_keep else -_INF  # NaN (empty) compares False: reusable
            better = key < slot_key[i]
            slot_of[i] = s if better else slot_of[i]
            slot_key[i] = key if better else slot_key[i]

    for i in range(n):
        cur = current[i]
        proposal, forced, hold = proposal_arr[i], forced_arr[i], hold_arr[i]
        pre_reason, miss_reason, any_valid, combined = pre_arr[i], miss_arr[i], any_valid_arr[i], combined_arr[i]
        has_forced = forced == forced
        skip = has_forced or hold
        low_i, high_i, slot_i = low[i], high[i], slot_of[i]
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
            desired, limit_reason = stabilized, compiled._NOT_LIMITED
            up = stabilized > cur
            if up or stabilized < cur:  # scale_up_limit / scale_down_limit (limit.py) of the direction
                select = up_sel if up else down_sel
                n_rules = up_rules.shape[1] if up else down_rules.shape[1]
                if select == compiled._SEL_DISABLED:
                    raw = cur
                elif n_rules == 0:
                    raw = _INF if up else -_INF
                else:
                    raw, last_period, added, removed = 0.0, _NAN, 0.0, 0.0
                    for r in range(n_rules):
                        kind = up_rules[0, r] if up else down_rules[0, r]
                        value = up_rules[1, r] if up else down_rules[1, r]
                        period = up_rules[2, r] if up else down_rules[2, r]
                        if period != last_period:  # rules sharing a period share their sums
                            added, removed = 0.0, 0.0
                            for s in range(up_slots):
                                if (now - up_t[i, s]) < period:
                                    added += up_c[i, s]
                            for s in range(down_slots):
                                if (now - down_t[i, s]) < period:
                                    removed += down_c[i, s]
                            last_period = period
                        start = cur - added + removed
                        pods = int(kind) == compiled._PODS
                        if up:
                            p = start + value if pods else np.ceil(start * (1.0 + value / 100.0))
                        else:
                            p = start - value if pods else np.trunc(start * (1.0 - value / 100.0))
                        if r == 0:
                            raw = p
                        elif (select == compiled._SEL_MAX) == up:  # up: Max the largest; down: Max the lowest
                            raw = compiled.nan_max(raw, p)
                        else:
                            raw = compiled.nan_min(raw, p)
                if up:
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
        if slots > 0 and ((not skip) or (hold and not has_forced)):
            rec_v[i, slot_i] = proposal
            rec_t[i, slot_i] = now
        if limit_reason != compiled._NOT_LIMITED:
            reason = limit_reason
        elif stabilized != proposal:
            reason = compiled._STAB_DOWN if (legacy or proposal < cur) else compiled._STAB_UP
        else:
            reason = compiled._UP if desired > cur else (compiled._DOWN if desired < cur else compiled._KEEP)
        if miss_reason >= 0:
            reason = miss_reason
        if pre_reason >= 0:
            reason = pre_reason
        if has_forced:
            desired = forced
        elif hold:
            desired = cur
        if skip:
            stabilized, limit_reason = desired, compiled._NOT_LIMITED
        out_f1[0, i], out_f1[1, i], out_f1[2, i], out_f1[3, i] = combined, proposal, stabilized, desired
        out_i1[0, i], out_i1[1, i] = limit_reason, reason
        active_out[i] = (not has_forced) and any_valid and not hold
    return 0


@jit
def commit_kernel(current, replicas, applied, now, up_c, up_t, down_c, down_t, scal):
    """normalize.record_scale_events in place: |replicas - current| (N,) per direction for the
    applied rows (N,) bool, each kept for its direction's longest rate period (scal)."""
    up_keep_s, down_keep_s = scal[compiled._P_UP_LONGEST], scal[compiled._P_DOWN_LONGEST]
    count = 0
    for i in range(current.shape[0]):
        if not applied[i]:
            continue
        cur, to = current[i], replicas[i]
        if to > cur and up_c.shape[1] > 0:
            _write_slot_row(up_c, up_t, i, up_c.shape[1], to - cur, now, up_keep_s)
            count += 1
        elif to < cur and down_c.shape[1] > 0:
            _write_slot_row(down_c, down_t, i, down_c.shape[1], cur - to, now, down_keep_s)
            count += 1
    return count
