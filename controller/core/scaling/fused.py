"""The decision pipeline as one fused per-target kernel that updates the state in place.

signal -> smooth -> propose -> ramp -> combine -> pre-checks and missing data -> stabilize ->
limit -> history writes run target by target in one loop (core/scaling/workspace.py owns the
arrays and is the API). The numbers are those of the numpy stages (decide_numpy, the
reference) and of compiled.py's staged kernels, whose per-value helpers it reuses:
tests/core/test_workspace.py checks every output and state array is identical.

Scale events are not written here: :func:`_commit_kernel` writes them for the rows whose change
was applied (Decision.state_after's rule), from the pending (current, replicas) of the cycle.

The helpers are called as ``compiled.X`` so that numba finds the dispatchers compiled.py makes
on load (a ``from`` import would bind the plain functions).
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit

_S_NONE, _S_EWMA = compiled._S_NONE, compiled._S_EWMA
_NAN, _INF = math.nan, math.inf
# ramp parameter rows (see pack_ramps)
_R_COLUMN, _R_WINDOW, _R_TOLERANCE, _R_LEAD, _R_KEEP, _R_SLOTS, _R_SIZE = range(7)


def pack_ramps(params) -> np.ndarray:
    """(R, 6) float rows per ramp metric: column, window_s, tolerance_s, lead_s, keep_s, slots."""
    rows = np.zeros((len(params.ramp_metrics), _R_SIZE))
    for r, j in enumerate(params.ramp_metrics):
        rp = params.metrics[j].ramp
        rows[r] = (j, rp.window_s, 0.5 * rp.interval_s, rp.lead_s, rp.keep_s, rp.slots)
    return rows


@jit
def _front_row(i, values, present, age, current, ready, status, metric, scal, now, alpha, ewma, ewma_at, samples,
               sample_at, out_f2, out_b2, buf):
    """signal -> smooth -> propose for row i (compiled._front_kernel's body); out_f2[1] gets the
    smoothed value for every smoothing."""
    m = values.shape[1]
    stale_after, tol_up, tol_down = scal[compiled._P_STALE], scal[compiled._P_TOL_UP], scal[compiled._P_TOL_DOWN]
    smoothing = int(scal[compiled._P_SMOOTHING])
    window_s = scal[compiled._P_WINDOW]
    w = samples.shape[2]
    cur, rdy, sts = current[i], ready[i], status[i]
    for j in range(m):
        x = values[i, j]
        pr = present[i, j]
        nf = pr and not math.isfinite(x)
        st = pr and age[i, j] > stale_after
        ng = pr and not nf and x < 0 and metric[2, j] != 0.0
        us = pr and not (st or nf or ng)
        out_b2[0, i, j], out_b2[1, i, j], out_b2[2, i, j], out_b2[3, i, j], out_b2[4, i, j] = not pr, st, nf, ng, us
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
        else:
            if us and w > 0:
                slot, key = 0, _INF
                for s in range(w):
                    t = sample_at[i, j, s]
                    k = -_INF if t != t else t
                    if s == 0 or k < key:
                        slot, key = s, k
                samples[i, j, slot] = sv
                sample_at[i, j, slot] = now
            sm = compiled._window_aggregate(samples, sample_at, i, j, now, window_s, smoothing, buf)
        out_f2[1, i, j] = sm
        p, ready_ok = compiled._propose_one(int(metric[0, j]), metric[1, j], sm, cur, rdy, sts, tol_up, tol_down)
        ok = math.isfinite(sm) and ready_ok and math.isfinite(p) and us
        out_b2[5, i, j] = ok
        out_f2[2, i, j] = p if ok else _NAN


@jit
def _ramp_row(i, r, ramp_p, metric, scal, current, ready, status, ramp_v, ramp_t, now, out_f2, out_b2, ramp_out):
    """The ramp stage of ramp metric r for row i (compiled._ramp_kernel's body): ramp_out
    (slope, ahead, proposal) at its column, the proposal raised (np.fmax) in out_f2[2]."""
    j = int(ramp_p[r, _R_COLUMN])
    window_s, tolerance_s, lead_s = ramp_p[r, _R_WINDOW], ramp_p[r, _R_TOLERANCE], ramp_p[r, _R_LEAD]
    k = int(ramp_p[r, _R_SLOTS])
    y, ok = out_f2[0, i, j], out_b2[4, i, j]
    best, pick = _INF, 0
    for s in range(k):
        age = now - ramp_t[r, i, s]  # NaN for empty slots: compares False
        d = abs(age - window_s) if age >= window_s - tolerance_s else _INF
        if d < best:
            best, pick = d, s
    found = best < _INF
    old_v = ramp_v[r, i, pick] if found else _NAN
    old_t = ramp_t[r, i, pick] if found else _NAN
    slope = (y - old_v) / (now - old_t) if (ok and now > old_t) else _NAN
    ahead = y + compiled.nan_max(slope, 0.0) * lead_s
    ramp_out[0, i, j], ramp_out[1, i, j] = slope, ahead
    if ok and k > 0:
        _write_slot_row(ramp_v[r], ramp_t[r], i, k, y, now, ramp_p[r, _R_KEEP])
    p, ready_ok = compiled._propose_one(int(metric[0, j]), metric[1, j], ahead, current[i], ready[i], status[i],
                                        scal[compiled._P_TOL_UP], scal[compiled._P_TOL_DOWN])
    if out_b2[5, i, j] and math.isfinite(ahead) and ready_ok and math.isfinite(p):
        ramp_out[2, i, j] = p
        a = out_f2[2, i, j]
        out_f2[2, i, j] = a if (a >= p or p != p) else p  # np.fmax, signed zeros included
    else:
        ramp_out[2, i, j] = _NAN


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


@jit
def _norm_row(i, current, scal, up_rules, down_rules, now, rec_v, rec_t, up_c, up_t, down_c, down_t, missing_since,
              out_f2, out_b2, out_f1, out_i1, active_out):
    """combine -> pre-checks and missing data -> stabilize -> limit -> history write for row i
    (compiled._norm_kernel's numbers), the recommendation history and missing_since in place."""
    m = out_f2.shape[2]
    legacy = scal[compiled._P_LEGACY] != 0.0
    lo, hi = scal[compiled._P_MIN], scal[compiled._P_MAX]
    fallback, hold_s = scal[compiled._P_FALLBACK], scal[compiled._P_HOLD]
    up_w, down_w = scal[compiled._P_UP_WIN], scal[compiled._P_DOWN_WIN]
    keep_s = down_w if legacy else max(up_w, down_w)
    slots = rec_t.shape[1]
    cur = current[i]
    # -- combine: the max over the valid proposals
    combined, any_valid, all_valid = -_INF, False, True
    for j in range(m):
        if out_b2[5, i, j]:
            combined = compiled.nan_max(combined, out_f2[2, i, j])
            any_valid = True
        else:
            all_valid = False
    combined = combined if any_valid else _NAN
    # -- first sight seeds the history with (current, now)
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
    if fallback == fallback:
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
    # -- the history windows and the slot this proposal goes to
    cut_keep, cut_low, cut_high = now - keep_s, now - up_w, now - down_w
    low, high, slot_key, slot_of = _INF, -_INF, _INF, 0
    for s in range(slots):
        t, v = rec_t[i, s], rec_v[i, s]
        if legacy:  # the legacy window is inclusive
            high = v if (t >= cut_high) & (v > high) else high
        else:
            high = v if (t > cut_high) & (v > high) else high
            low = v if (t > cut_low) & (v < low) else low
        key = t if t >= cut_keep else -_INF  # NaN (empty) compares False: reusable
        if key < slot_key:
            slot_of, slot_key = s, key
    # -- stabilize and limit
    if legacy:
        stabilized = compiled.nan_max(proposal, high)
        up_cap = np.trunc(max(scal[compiled._P_FACTOR] * cur, scal[compiled._P_MINIMUM]))
        tighter = hi > up_cap
        upper = up_cap if tighter else hi
        if stabilized < lo:
            desired, limit_reason = lo, compiled._CL_MIN
        elif stabilized > upper:
            desired, limit_reason = upper, (compiled._RL_UP if tighter else compiled._CL_MAX)
        else:
            desired, limit_reason = stabilized, compiled._NOT_LIMITED
    else:
        up_floor = compiled.nan_min(proposal, low) if up_w > 0 else proposal  # HPA's default up-window 0
        stabilized = compiled.nan_min(compiled.nan_max(cur, up_floor), compiled.nan_max(proposal, high))
        desired, limit_reason = stabilized, compiled._NOT_LIMITED
        if stabilized > cur:
            raw = compiled.nan_max(compiled._rate_limit(cur, up_c, up_t, down_c, down_t, i, now, up_rules,
                                                        int(scal[compiled._P_UP_SEL]), True), cur)
            allowed = compiled.nan_min(hi, raw)
            if stabilized > allowed:
                desired, limit_reason = allowed, (compiled._RL_UP if raw < hi else compiled._CL_MAX)
        elif stabilized < cur:
            raw = compiled.nan_min(compiled._rate_limit(cur, up_c, up_t, down_c, down_t, i, now, down_rules,
                                                        int(scal[compiled._P_DOWN_SEL]), False), cur)
            allowed = compiled.nan_max(lo, raw)
            if stabilized < allowed:
                desired, limit_reason = allowed, (compiled._RL_DOWN if raw > lo else compiled._CL_MIN)
    # remember the raw proposal (Setpoint's own mode also during a hold)
    if slots > 0 and ((not skip) or (hold and not has_forced)):
        rec_v[i, slot_of] = proposal
        rec_t[i, slot_of] = now
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


@jit
def fused_kernel(values, present, age, current, ready, status, metric, scal, up_rules, down_rules, ramp_p, now,
                 alpha, ewma, ewma_at, samples, sample_at, ramp_v, ramp_t, rec_v, rec_t, up_c, up_t, down_c, down_t,
                 missing_since, out_f2, out_b2, ramp_out, out_f1, out_i1, active_out, buf):
    """Decide for N targets, one target at a time, the state updated in place.

    Inputs (N, M) values, present, age; (N,) current, ready, status. Parameters: metric (3, M),
    scal (see compiled._pack), rules (3, R), ramp_p (R, 6) (pack_ramps). State: ewma, ewma_at
    (N, M); samples, sample_at (N, M, W); ramp_v, ramp_t (R, N, K); rec_v, rec_t (N, H); scale
    events (N, E), read only; missing_since (N,). Outputs: out_f2 (3, N, M) signal values,
    smoothed, proposals; out_b2 (6, N, M) missing, stale, nonfinite, negative, usable, valid;
    ramp_out (3, N, M) slope, ahead, proposal (ramp columns only); out_f1 (4, N) combined,
    proposal, stabilized, desired; out_i1 (2, N) limit reason, reason; active_out (N,).
    alpha: (N, M) EWMA weights from the state's times (the caller computes them with numpy's
    expm1); buf: (W,) scratch."""
    n = values.shape[0]
    for i in range(n):
        _front_row(i, values, present, age, current, ready, status, metric, scal, now, alpha, ewma, ewma_at,
                   samples, sample_at, out_f2, out_b2, buf)
        for r in range(ramp_p.shape[0]):
            _ramp_row(i, r, ramp_p, metric, scal, current, ready, status, ramp_v, ramp_t, now, out_f2, out_b2,
                      ramp_out)
        _norm_row(i, current, scal, up_rules, down_rules, now, rec_v, rec_t, up_c, up_t, down_c, down_t,
                  missing_since, out_f2, out_b2, out_f1, out_i1, active_out)
    return 0


@jit
def commit_kernel(current, replicas, applied, now, up_c, up_t, down_c, down_t, up_keep_s, down_keep_s):
    """record_scale_events in place: |replicas - current| per direction for the applied rows."""
    k = up_c.shape[1]
    if k == 0:
        return 0
    count = 0
    for i in range(current.shape[0]):
        if not applied[i]:
            continue
        cur, to = current[i], replicas[i]
        if to > cur:
            _write_slot_row(up_c, up_t, i, k, to - cur, now, up_keep_s)
            count += 1
        elif to < cur:
            _write_slot_row(down_c, down_t, i, k, cur - to, now, down_keep_s)
            count += 1
    return count
