"""The forecast stage (core/scaling/forecast.py, the numpy reference) compiled: one kernel over targets.

Runs before the fused decision kernel (core/scaling/fused.py): per forecast metric it reads the
metric's raw sample (signal.py's rules), scores the forecasts due, folds the sample into the
seasonal profiles, updates level and trend, forecasts one horizon ahead, updates the error ring
and its statistics, and writes the predictive proposal of a trusted forecast (its ``upper``
proposed like the reactive value) into ``floor`` (N, M), which the fused kernel takes as a
floor of that metric's proposal where the metric is valid: decide._forecast's
max(reactive, predictive). After the fused kernel, :func:`forecast_finish` adds what the decision
records need (the reactive proposal, what counted). tests/core/test_forecast_compiled.py checks
every output and state array is those of the numpy stage.

The stage's four exponentials (the level's and trend's weights, the trend's damping over the
elapsed time and over the horizon) come from numpy's ``expm1`` applied in place between
:func:`forecast_prepare` and :func:`forecast_kernel`: numpy's SIMD expm1 is not libm's, and the
numbers must be the reference's, bit for bit (as workspace._ewma_alpha_into does for the EWMA).

State of one forecast metric (:class:`MetricForecast`), N targets: hold (5, N) level, trend, at,
first_at, a guess of the error quantile; profiles, a tuple of each period's (N, B_p); visits
(P, N, 4); season (N, P); pend (3, N, K) pending point, base, due; ring (3, N, E) errors, naive
errors, their times (per target contiguous; ForecastState keeps (N, E) in Fortran order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling import forecast as fc
from controller.core.scaling.compiled import jit, jit_inline
from controller.core.scaling.params import (ERROR_WINDOW_HORIZONS, MAX_SEASONAL_PERIODS, MIN_ERROR_WINDOW_S,
                                           ForecastParams, PolicyParams)

_NAN, _INF = math.nan, math.inf
_LN2 = float(np.log(2.0))  # forecast._holt's np.log(2.0)
_MIN_SCORED = fc.MIN_SCORED
_RATIO_LO, _RATIO_HI = float(fc.SEASON_RATIO_RANGE[0]), float(fc.SEASON_RATIO_RANGE[1])
_PROFILE_WEIGHT = fc.PROFILE_WEIGHT
_ACCEPTED, _UNKNOWN = fc._ACCEPTED, fc._UNKNOWN
_MIN_WINDOW, _WINDOW_HORIZONS = MIN_ERROR_WINDOW_S, ERROR_WINDOW_HORIZONS
_PAIRWISE_BLOCK = compiled._PAIRWISE_BLOCK
_STACK = 130  # pairwise sums' stacks: each level at least halves the size
_HINT_STEPS = 2

# the packed parameters of one forecast metric (pack_forecast): scalars, then 4 per period
# (period_s, buckets, history it needs to be accepted),
# then the periods' indices longest first (forecast._seasonal_ratio's order)
(_Q_COLUMN, _Q_HORIZON, _Q_OBSERVED, _Q_LAG, _Q_MAX_HORIZON, _Q_INTERVAL, _Q_HALF_INTERVAL, _Q_BUCKET, _Q_LEVEL_HL,
 _Q_ERR_WINDOW, _Q_MARGIN, _Q_QUANTILE, _Q_BOUND, _Q_KIND, _Q_TARGET, _Q_NONNEG, _Q_STALE, _Q_TOL_UP, _Q_TOL_DOWN,
 _Q_PERIODS, _Q_ABOVE, _Q_SIZE) = range(22)
_QP_PERIOD, _QP_BUCKETS, _QP_SEEN, _QP_SIZE = range(4)
# rows of hold (5, N), of the prepared (5, N) array, of the outputs (6, N, M) and (2, N, M)
_H_LEVEL, _H_TREND, _H_AT, _H_FIRST_AT, _H_HINT, _H_ROWS = range(6)
_E_LEVEL, _E_TREND, _E_DAMP_DT, _E_DAMP_H, _E_HORIZON, _E_ROWS = range(6)
_O_POINT, _O_UPPER, _O_ERROR, _O_FLOOR, _O_REACTIVE, _O_PREDICTIVE, _O_ROWS = range(7)
_B_RAW, _B_TRUSTED, _B_ROWS = range(3)  # _B_RAW: trusted before the metric's validity


def pack_forecast(params: PolicyParams, j: int) -> np.ndarray:
    """Metric j's forecast parameters, and what the stage reads of the policy, as one float vector."""
    fp = params.metrics[j].forecast
    scal = np.zeros(_Q_SIZE)
    scal[_Q_COLUMN], scal[_Q_HORIZON], scal[_Q_OBSERVED], scal[_Q_LAG] = j, fp.horizon_s, float(fp.observed), fp.lag_s
    scal[_Q_MAX_HORIZON], scal[_Q_INTERVAL] = fp.max_horizon_s, fp.interval_s
    scal[_Q_HALF_INTERVAL] = 0.5 * fp.interval_s
    scal[_Q_BUCKET], scal[_Q_LEVEL_HL], scal[_Q_ERR_WINDOW] = fp.bucket_s, fp.level_half_life_s, fp.error_window_s
    scal[_Q_MARGIN], scal[_Q_QUANTILE], scal[_Q_BOUND] = fp.margin, fp.quantile, fp.error_bound
    scal[_Q_KIND], scal[_Q_TARGET] = int(params.metric_kinds[j]), params.metric_targets[j]
    scal[_Q_NONNEG], scal[_Q_STALE] = float(params.metric_nonnegative[j]), params.stale_after_s
    scal[_Q_ABOVE] = params.metric_implausible_above[j]
    scal[_Q_TOL_UP], scal[_Q_TOL_DOWN], scal[_Q_PERIODS] = params.tolerance_up, params.tolerance_down, len(fp.periods_s)
    periods = np.zeros((len(fp.periods_s), _QP_SIZE))
    for p, (period, b) in enumerate(zip(fp.periods_s, fp.buckets)):
        periods[p] = (period, b, max(2.0 * period, fp.min_history_s))
    order = np.argsort(fp.periods_s)[::-1].astype(np.float64)  # the reference's order, ties included
    return np.concatenate([scal, periods.ravel(), order])


# ---------------------------------------------------------------------------------------- helpers
@jit_inline
def _horizon(startup, qv):
    """ForecastParams.horizons for one target (startup: its observed start-up delay, NaN unknown)."""
    if qv[_Q_OBSERVED] != 0.0 and math.isfinite(startup):
        return min(qv[_Q_LAG] + startup, qv[_Q_MAX_HORIZON])
    return qv[_Q_HORIZON]


@jit_inline
def _np_mod(a, b):
    """np.mod on floats: Python's float %, numpy's divmod remainder (fmod, then the divisor's sign)."""
    return a % b


@jit_inline
def _bucket_x(t, period, bucket_s):
    """forecast.profile_at's position of time t: (first bucket, weight of the next), between
    bucket centres, wrapping (nb buckets)."""
    x = _np_mod(t, period) / bucket_s - 0.5
    fl = math.floor(x)
    return int(fl), x - fl


@jit_inline
def _profile_value(prof, i, nb, lo, frac):
    """forecast.profile_at for row i of prof (N, nb) at a position from _bucket_x."""
    lo = lo % nb
    return prof[i, lo] * (1.0 - frac) + prof[i, (lo + 1) % nb] * frac


@jit_inline
def _block_sum(a, start, n, nan_zero):
    """compiled._pairwise_sum of a[start:start + n] (n <= 128), NaN taken as 0 when ``nan_zero``
    (np.nansum's terms); and the count of non-NaN terms."""
    count = 0
    if n < 8:
        res = 0.0
        for k in range(n):
            v = a[start + k]
            count += 1 if v == v else 0
            res += v if (v == v or not nan_zero) else 0.0
        return res, count
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    if nan_zero:
        count = ((r0 == r0) + (r1 == r1) + (r2 == r2) + (r3 == r3) + (r4 == r4) + (r5 == r5) + (r6 == r6)
                 + (r7 == r7))
        r0, r1, r2, r3 = (r0 if r0 == r0 else 0.0), (r1 if r1 == r1 else 0.0), (r2 if r2 == r2 else 0.0), \
            (r3 if r3 == r3 else 0.0)
        r4, r5, r6, r7 = (r4 if r4 == r4 else 0.0), (r5 if r5 == r5 else 0.0), (r6 if r6 == r6 else 0.0), \
            (r7 if r7 == r7 else 0.0)
    k = 8
    while k < n - (n % 8):
        v0, v1, v2, v3 = a[start + k], a[start + k + 1], a[start + k + 2], a[start + k + 3]
        v4, v5, v6, v7 = a[start + k + 4], a[start + k + 5], a[start + k + 6], a[start + k + 7]
        if nan_zero:
            count += ((v0 == v0) + (v1 == v1) + (v2 == v2) + (v3 == v3) + (v4 == v4) + (v5 == v5) + (v6 == v6)
                      + (v7 == v7))
            v0, v1, v2, v3 = (v0 if v0 == v0 else 0.0), (v1 if v1 == v1 else 0.0), (v2 if v2 == v2 else 0.0), \
                (v3 if v3 == v3 else 0.0)
            v4, v5, v6, v7 = (v4 if v4 == v4 else 0.0), (v5 if v5 == v5 else 0.0), (v6 if v6 == v6 else 0.0), \
                (v7 if v7 == v7 else 0.0)
        r0 += v0
        r1 += v1
        r2 += v2
        r3 += v3
        r4 += v4
        r5 += v5
        r6 += v6
        r7 += v7
        k += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while k < n:
        v = a[start + k]
        count += 1 if v == v else 0
        res += v if (v == v or not nan_zero) else 0.0
        k += 1
    return res, count


@jit_inline
def _pairwise(a, start, n, nan_zero, stack, sums):
    """numpy's pairwise sum of a[start:start + n] for any n (np.sum over a contiguous row, bit for
    bit; with ``nan_zero`` np.nansum's, and the count of non-NaN terms): its recursion (halves, the
    first a multiple of 8, down to blocks of at most 128) with explicit stacks (numba's disk cache
    crashes loading a recursive kernel). stack (3, S) int64 and sums (S,) scratch, S >= 130."""
    if n <= _PAIRWISE_BLOCK:
        return _block_sum(a, start, n, nan_zero)
    starts, sizes, stage = stack[0], stack[1], stack[2]
    top, done, count = 1, 0, 0
    starts[0], sizes[0], stage[0] = start, n, 0
    while top > 0:
        s, m = starts[top - 1], sizes[top - 1]
        if m <= _PAIRWISE_BLOCK:
            total, c = _block_sum(a, s, m, nan_zero)
            sums[done] = total
            count += c
            done += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if stage[top - 1] == 0:  # the first half
            stage[top - 1] = 1
            starts[top], sizes[top], stage[top] = s, half, 0
            top += 1
        elif stage[top - 1] == 1:  # the second half
            stage[top - 1] = 2
            starts[top], sizes[top], stage[top] = s + half, m - half, 0
            top += 1
        else:  # both halves summed: their sum replaces them
            sums[done - 2] = sums[done - 2] + sums[done - 1]
            done -= 1
            top -= 1
    return sums[0], count


@jit_inline
def _kth_smallest(a, n, k):
    """The k-th smallest (0-based) of a[:n], reordering a (Wirth's selection): np.sort(...)[k]."""
    lo, hi = 0, n - 1
    while lo < hi:
        x = a[k]
        i, j = lo, hi
        while True:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
            if i > j:
                break
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@jit_inline
def _kth_near(a, n, k, hint):
    """The k-th smallest of a[:n] (np.sort(a[:n])[k]) found from a guess (last cycle's value): in
    one counting pass when it still is, else within _HINT_STEPS distinct values of it, two passes
    each; NaN when further (or no guess): the caller selects from scratch. Exact either way."""
    if hint != hint:
        return _NAN
    less, equal = 0, 0
    for s in range(n):
        x = a[s]
        less += 1 if x < hint else 0
        equal += 1 if x == hint else 0
    if less <= k < less + equal:
        return hint
    below = k < less
    need = (less - k) if below else (k - less - equal + 1)  # the need-th value from the hint outwards
    bound = hint
    for _ in range(_HINT_STEPS):
        best = -_INF if below else _INF
        for s in range(n):
            x = a[s]
            if below:
                best = x if (x < bound and x > best) else best
            else:
                best = x if (x > bound and x < best) else best
        count = 0
        for s in range(n):
            count += 1 if a[s] == best else 0
        if count >= need:
            return best
        need -= count
        bound = best
    return _NAN


# ---------------------------------------------------------------------------------------- kernels
@jit
def forecast_prepare(startup, qv, now, hold, pre):
    """Per target: the horizon (pre[_E_HORIZON]) and the arguments of the stage's expm1s
    (pre[:4]: level and trend weights and the trend's damping over now - at, its damping over the
    horizon), the reference's operations; the caller applies numpy's expm1 to pre[:4] in place."""
    interval, level_hl = qv[_Q_INTERVAL], qv[_Q_LEVEL_HL]
    for i in range(hold.shape[1]):
        h = _horizon(startup[i], qv)
        damping = max(interval, 0.5 * h)  # ForecastParams.damping
        dt = now - hold[_H_AT, i]
        pre[_E_LEVEL, i] = -_LN2 * dt / level_hl
        pre[_E_TREND, i] = -_LN2 * dt / (4.0 * h)  # ForecastParams.trend_half_life
        pre[_E_DAMP_DT, i] = -dt / damping
        pre[_E_DAMP_H, i] = -h / damping
        pre[_E_HORIZON, i] = h
    return 0


@jit
def forecast_kernel(values, present, age, current, ready, status, withheld, qv, now, hold, profs, visits, season, pend,
                    ring, pre, out_f, out_b, buf, stack):
    """forecast.forecast_step for N targets of one forecast metric, the state updated in place,
    and the predictive proposal of its trusted forecasts into out_f[_O_FLOOR].

    Inputs (N, M) values, present, age; (N,) current, ready, status, withheld; qv (pack_forecast); pre
    (5, N) from forecast_prepare after numpy's expm1. State: see the module docstring (hold's
    row _H_HINT: last cycle's error quantile, a guess that speeds up the next). Outputs (this
    metric's column of) out_f (6, N, M) point, upper, error (MASE), floor; out_b (2, N, M)
    trusted before the metric's validity. Scratch: buf (3, max(E, longest B, _STACK)), stack
    (3, _STACK) int64."""
    n = hold.shape[1]
    j = int(qv[_Q_COLUMN])
    n_per = int(qv[_Q_PERIODS])
    k_slots, e_slots = pend.shape[2], ring.shape[2]
    stale_after, nonneg, above = qv[_Q_STALE], qv[_Q_NONNEG] != 0.0, qv[_Q_ABOVE]
    interval, bucket_s = qv[_Q_INTERVAL], qv[_Q_BUCKET]
    due_by = now + qv[_Q_HALF_INTERVAL]
    err_cut = now - qv[_Q_ERR_WINDOW]
    margin, quantile, bound = qv[_Q_MARGIN], qv[_Q_QUANTILE], qv[_Q_BOUND]
    kind, target, tol_up, tol_down = int(qv[_Q_KIND]), qv[_Q_TARGET], qv[_Q_TOL_UP], qv[_Q_TOL_DOWN]
    o_per = _Q_SIZE
    o_order = o_per + _QP_SIZE * n_per
    scratch, ranked, sums = buf[0], buf[1], buf[2]
    # per period, the same for every target: the bucket of now, its position for profile_at
    now_bucket, now_lo, now_frac = np.empty(n_per), np.empty(n_per, np.int64), np.empty(n_per)
    for p in range(n_per):
        o = o_per + _QP_SIZE * p
        period, nb = qv[o + _QP_PERIOD], int(qv[o + _QP_BUCKETS])
        now_bucket[p] = float(int(_np_mod(now, period) / bucket_s) % nb)
        now_lo[p], now_frac[p] = _bucket_x(now, period, bucket_s)

    for i in range(n):
        # -- the sample (signal.read_signal)
        x = values[i, j]
        ok = (present[i, j] and math.isfinite(x) and not (age[i, j] > stale_after) and not (x < 0 and nonneg)
              and not x > above)
        y = x if ok else _NAN
        h = pre[_E_HORIZON, i]

        # -- score the forecasts due (forecast._score_due)
        any_due, pick, newest = False, 0, -_INF
        for s in range(k_slots):
            d = pend[2, i, s]
            if d <= due_by:
                any_due = True
                if d > newest:
                    newest, pick = d, s
        if ok and any_due:
            if e_slots > 0:  # history.write_slot: the first reusable slot, else the first oldest
                slot = -1
                for s in range(e_slots):
                    if not (ring[2, i, s] >= err_cut):
                        slot = s
                        break
                if slot < 0:
                    slot, oldest = 0, ring[2, i, 0]
                    for s in range(1, e_slots):
                        if ring[2, i, s] < oldest:
                            slot, oldest = s, ring[2, i, s]
                ring[0, i, slot] = abs(y - pend[0, i, pick])
                ring[1, i, slot] = abs(y - pend[1, i, pick])
                ring[2, i, slot] = now
            for s in range(k_slots):
                if pend[2, i, s] <= due_by:
                    pend[0, i, s], pend[1, i, s], pend[2, i, s] = _NAN, _NAN, _NAN

        # -- the seasonal profiles (forecast._update_profiles)
        restart = False
        seen_s = now - hold[_H_FIRST_AT, i]
        for p in range(n_per):
            o = o_per + _QP_SIZE * p
            nb = int(qv[o + _QP_BUCKETS])
            if ok:
                b = now_bucket[p]
                v0 = visits[p, i, 0]
                if v0 == b:
                    visits[p, i, 0] = v0 + 0.0
                    visits[p, i, 1] = visits[p, i, 1] + y
                    visits[p, i, 2] = visits[p, i, 2] + 1.0
                    visits[p, i, 3] = visits[p, i, 3] + 0.0
                else:
                    if v0 == v0:  # the visit of another bucket ended: fold it into the profile
                        prof, col = profs[p], int(v0)
                        mean, old = visits[p, i, 1] / visits[p, i, 2], prof[i, col]
                        prof[i, col] = mean if old != old else old + _PROFILE_WEIGHT * (mean - old)
                        total, count = _pairwise(prof[i], 0, nb, True, stack, sums)  # np.nanmean of the row
                        visits[p, i, 3] = total / count if count > 0 else _NAN
                    visits[p, i, 0] = 0.0 + b
                    visits[p, i, 1] = y
                    visits[p, i, 2] = 0.0 + 1.0
            if season[i, p] == _UNKNOWN and seen_s >= qv[o + _QP_SEEN]:
                season[i, p] = _ACCEPTED
                restart = True

        # -- the seasonal ratio between now and the horizon (forecast._seasonal_ratio)
        s_now, s_ahead = 1.0, 1.0
        for q in range(n_per):
            p = int(qv[o_order + q])
            if season[i, p] != _ACCEPTED:
                continue
            o = o_per + _QP_SIZE * p
            nb, prof = int(qv[o + _QP_BUCKETS]), profs[p]
            mean = visits[p, i, 3]
            a = _profile_value(prof, i, nb, now_lo[p], now_frac[p]) / mean
            lo, frac = _bucket_x(now + h, qv[o + _QP_PERIOD], bucket_s)
            c = _profile_value(prof, i, nb, lo, frac) / mean
            if math.isfinite(a) and math.isfinite(c) and a > 0 and c > 0 and mean > 0:
                s_now, s_ahead = a, c
                break
        ratio = s_ahead / s_now
        ratio = min(max(ratio, _RATIO_LO), _RATIO_HI)
        s_ahead = s_now * ratio

        # -- level and damped trend (forecast._holt)
        level0, trend_old = hold[_H_LEVEL, i], hold[_H_TREND, i]
        damping = max(interval, 0.5 * h)
        first = level0 != level0 or restart
        trend0 = 0.0 if trend_old != trend_old else trend_old
        if first:  # dt = 0: the weights are -expm1(-0.0) = 0
            dt, a_l, a_t = 0.0, 0.0, 0.0
        else:
            dt = now - hold[_H_AT, i]
            a_l, a_t = -pre[_E_LEVEL, i], -pre[_E_TREND, i]
        z = y / s_now
        pred = z if first else level0 + trend0 * (damping * -pre[_E_DAMP_DT, i])
        level = pred + a_l * (z - pred)
        slope = (level - (level if first else level0)) / dt if dt > 0 else 0.0
        trend = 0.0 if first else trend0 + a_t * (slope - trend0)
        if ok:
            hold[_H_LEVEL, i], hold[_H_TREND, i], hold[_H_AT, i] = level, trend, now
            if hold[_H_FIRST_AT, i] != hold[_H_FIRST_AT, i]:
                hold[_H_FIRST_AT, i] = now
        else:
            level, trend = level0, trend_old
        point = (level + trend * (damping * -pre[_E_DAMP_H, i])) * s_ahead
        point = point if (point > 0.0 or point != point) else 0.0  # np.maximum(point, 0.0)

        # -- remember this forecast (forecast._remember): a free slot, else the first due soonest
        if ok and math.isfinite(point) and k_slots > 0:
            slot, key = 0, _INF
            for s in range(k_slots):
                d = pend[2, i, s]
                kk = -_INF if d != d else d
                if kk < key:
                    slot, key = s, kk
            pend[0, i, slot], pend[1, i, slot], pend[2, i, slot] = point, y, now + h

        # -- the recent errors (forecast.error_stats): masked terms, their pairwise sums, the quantile
        cut = now - max(_MIN_WINDOW, _WINDOW_HORIZONS * h)
        count = 0
        for s in range(e_slots):
            recent = ring[2, i, s] > cut
            e = ring[0, i, s]
            scratch[s] = e if recent else 0.0
            ranked[count] = e  # kept only when recent: the next write goes to the same place otherwise
            count += 1 if recent else 0
        num = _pairwise(scratch, 0, e_slots, False, stack, sums)[0]
        for s in range(e_slots):
            scratch[s] = ring[1, i, s] if ring[2, i, s] > cut else 0.0
        den = _pairwise(scratch, 0, e_slots, False, stack, sums)[0]
        q = _NAN
        if count > 0:
            k = min(max(int(math.floor(quantile * (count - 1))), 0), max(e_slots - 1, 0))
            if k < count:
                q = _kth_near(ranked, count, k, hold[_H_HINT, i])
                if q != q:
                    q = _kth_smallest(ranked, count, k)
            else:  # past the recent errors: numpy's sorted row holds +inf there
                q = _INF
        hold[_H_HINT, i] = q
        mase = (num / den if den > 0 else (_INF if num > 0 else 1.0)) if count > 0 else _NAN
        if level != level:
            point = _NAN
        upper = point + margin * (q if math.isfinite(q) else 0.0)
        trusted = count >= _MIN_SCORED and mase <= bound and math.isfinite(point)
        out_f[_O_POINT, i, j], out_f[_O_UPPER, i, j], out_f[_O_ERROR, i, j] = point, upper, mase
        out_b[_B_RAW, i, j] = trusted
        floor = _NAN
        if trusted:  # the predictive proposal (decide._forecast: propose on upper)
            p, ready_ok = compiled.propose_serving(kind, target, upper, current[i], ready[i], status[i], withheld[i],
                                                   tol_up, tol_down)
            if ready_ok and math.isfinite(p):
                floor = p
        out_f[_O_FLOOR, i, j] = floor
    return 0


@jit
def forecast_finish(smoothed, valid, latest, current, ready, status, withheld, mv, out_f, out_b):
    """After the fused kernel (smoothed, valid (N, M) its outputs; latest (N, M) its input), what the records show
    (decide.Forecasts): every metric's reactive proposal where valid; the forecast metrics'
    predictive proposal where valid, trusted only there. mv: pack_metrics."""
    m = smoothed.shape[1]
    tol_up, tol_down = mv[0], mv[1]
    for i in range(valid.shape[0]):
        for j in range(m):
            v = valid[i, j]
            p, _ = compiled.propose_serving(int(mv[2 + j]), mv[2 + m + j], smoothed[i, j], current[i], ready[i],
                                            status[i], withheld[i], tol_up, tol_down)
            if v:
                p = compiled.saturation_floor_one(p, smoothed[i, j], latest[i, j], mv[2 + m + j], mv[2 + 3 * m + j],
                                                  ready[i], withheld[i], tol_up)
            out_f[_O_REACTIVE, i, j] = p if v else _NAN
            if mv[2 + 2 * m + j] != 0.0:  # a forecast metric
                f = out_f[_O_FLOOR, i, j]
                out_f[_O_PREDICTIVE, i, j] = f if (v and f == f) else _NAN
                out_b[_B_TRUSTED, i, j] = v and out_b[_B_RAW, i, j]
    return 0


def pack_metrics(params: PolicyParams) -> np.ndarray:
    """forecast_finish's parameters: tolerance up and down, then per metric its kind, target,
    whether it has a forecast (1.0) and its saturation capacity (0: none)."""
    forecast = np.isin(np.arange(len(params.metrics)), params.forecast_metrics).astype(np.float64)
    return np.concatenate([[params.tolerance_up, params.tolerance_down], params.metric_kinds.astype(np.float64),
                           params.metric_targets, forecast, params.metric_saturation])


# ---------------------------------------------------------------------------------------- state
@dataclass(eq=False)
class MetricForecast:
    """One forecast metric's state for the kernels (see the module docstring), and its parameters."""

    qv: np.ndarray
    hold: np.ndarray
    profiles: tuple[np.ndarray, ...]
    visits: np.ndarray
    season: np.ndarray
    pend: np.ndarray
    ring: np.ndarray
    fp: ForecastParams
    shared: list[bool]  # per period: the profile is still the input state's (copied before a write)
    pad: np.ndarray | None = None  # (N, 1) the placeholder of the unused profile slots (kernel_profiles)

    @classmethod
    def of(cls, params: PolicyParams, j: int, st: fc.ForecastState, share: bool = False) -> "MetricForecast":
        """A copy of ``st`` (metric j's ForecastState) in the kernels' layout; ``share``: its
        seasonal profiles (the bulk of it) are only copied when a step is about to write them."""
        n = st.level.shape[0]
        fp = params.metrics[j].forecast
        hold = np.empty((_H_ROWS, n))
        hold[_H_LEVEL], hold[_H_TREND], hold[_H_AT], hold[_H_FIRST_AT] = st.level, st.trend, st.at, st.first_at
        hold[_H_HINT] = np.nan  # no guess of the error quantile yet
        shared = [share and p.flags.c_contiguous and p.dtype == np.float64 for p in st.profiles]
        profiles = tuple(p if keep else np.array(p, np.float64, order="C") for p, keep in zip(st.profiles, shared))
        visits = np.empty((len(st.visits), n, 4))
        for p, v in enumerate(st.visits):
            visits[p] = v
        pend = np.empty((3, *st.pend_due.shape))
        pend[0], pend[1], pend[2] = st.pend_point, st.pend_base, st.pend_due
        ring = np.empty((3, *st.err.shape))
        ring[0], ring[1], ring[2] = st.err, st.naive, st.err_at
        return cls(pack_forecast(params, j), hold, profiles, visits, np.array(st.season, np.int64, order="C"), pend,
                   ring, fp, shared)

    def kernel_profiles(self, now: float) -> tuple[np.ndarray, ...]:
        """The profiles as the kernel takes them, each shared one copied first if a target may
        fold a visit into it at ``now`` (its visit is of another bucket: forecast._update_profiles's
        test, without the sample's). Always MAX_SEASONAL_PERIODS arrays, the unused ones an (N, 1)
        placeholder the kernel never reads (it loops over the metric's own periods): a tuple's
        length is part of its numba type, so each number of periods compiled the kernel again
        (~15 s on a machine's first run of a policy with, say, ``seasonality: [1d]``)."""
        fp = self.fp
        for p, (period, b) in enumerate(zip(fp.periods_s, fp.buckets)):
            if self.shared[p]:
                bucket = float(int(np.mod(now, period) / fp.bucket_s) % b)
                visit = self.visits[p, :, 0]
                if ((visit != bucket) & np.isfinite(visit)).any():
                    self.profiles = (*self.profiles[:p], self.profiles[p].copy(), *self.profiles[p + 1:])
                    self.shared[p] = False
        missing = MAX_SEASONAL_PERIODS - len(self.profiles)
        if missing <= 0:
            return self.profiles
        if self.pad is None:
            self.pad = np.zeros((self.hold.shape[1], 1))
        return (*self.profiles, *(self.pad,) * missing)

    def state(self, copy: bool = True) -> fc.ForecastState:
        """The ForecastState (the numpy stage's layout: error rings in Fortran order)."""
        c = (lambda a: a.copy()) if copy else (lambda a: a)
        profiles = [p if shared else c(p) for p, shared in zip(self.profiles, self.shared)]  # shared: never written
        f = lambda a: np.array(a, order="F")  # noqa: E731 (always a copy: the ring is C-ordered here)
        return fc.ForecastState(c(self.hold[_H_LEVEL]), c(self.hold[_H_TREND]), c(self.hold[_H_AT]),
                                c(self.hold[_H_FIRST_AT]), tuple(profiles), tuple(c(v) for v in self.visits),
                                c(self.season), c(self.pend[0]), c(self.pend[1]), c(self.pend[2]),
                                f(self.ring[0]), f(self.ring[1]), f(self.ring[2]))


@dataclass(eq=False)
class CompiledForecasts:
    """The forecast stage of one policy's N targets on the compiled path: every forecast metric's
    state, and the outputs (decide.Forecasts' arrays, (N, M), NaN / False outside the forecast
    metrics but the reactive proposals): out_f (6, N, M) point, upper, error, floor (the
    predictive proposal the fused kernel takes, NaN where none), reactive, predictive; out_b
    (2, N, M) trusted before and after the metric's validity. ``floor`` is out_f[_O_FLOOR]."""

    params: PolicyParams
    metrics: tuple[MetricForecast, ...]
    out_f: np.ndarray
    out_b: np.ndarray
    pre: np.ndarray
    buf: np.ndarray
    stack: np.ndarray
    mv: np.ndarray

    @classmethod
    def from_states(cls, params: PolicyParams, states: tuple, n: int, share: bool = False) -> "CompiledForecasts":
        """A copy of the forecast states (``share``: see MetricForecast.of) and empty outputs."""
        metrics = tuple(MetricForecast.of(params, j, st, share) for j, st in zip(params.forecast_metrics, states))
        m = len(params.metrics)
        width = max([_STACK] + [mf.ring.shape[2] for mf in metrics] + [b for mf in metrics for b in mf.fp.buckets])
        out_f = np.full((_O_ROWS, n, m), np.nan)
        return cls(params, metrics, out_f, np.zeros((_B_ROWS, n, m), np.bool_), np.empty((_E_ROWS, n)),
                   np.empty((3, width)), np.empty((3, _STACK), np.int64), pack_metrics(params))

    @property
    def floor(self) -> np.ndarray:
        return self.out_f[_O_FLOOR]

    def step(self, values, present, age, current, ready, status, withheld, startup, now: float) -> None:
        """Every forecast metric's step at ``now`` (arrays as fused.fused_kernel's): state in
        place, point / upper / error / floor written."""
        for mf in self.metrics:
            forecast_prepare(startup, mf.qv, now, mf.hold, self.pre)
            np.expm1(self.pre[:_E_HORIZON], out=self.pre[:_E_HORIZON])  # numpy's, as the reference
            forecast_kernel(values, present, age, current, ready, status, withheld, mf.qv, now, mf.hold,
                            mf.kernel_profiles(now), mf.visits, mf.season, mf.pend, mf.ring, self.pre, self.out_f,
                            self.out_b, self.buf, self.stack)

    def finish(self, smoothed, valid, latest, current, ready, status, withheld) -> None:
        """The records' outputs once the fused kernel gave ``smoothed`` and ``valid`` (N, M) from
        ``latest`` (N, M; NaN: none)."""
        forecast_finish(smoothed, valid, latest, current, ready, status, withheld, self.mv, self.out_f, self.out_b)

    def forecasts(self, copy: bool = False):
        """decide.Forecasts of the last step (``copy``: arrays that outlive the next step)."""
        from controller.core.scaling.decide import Forecasts  # noqa: PLC0415 (decide imports the workspace)

        f = self.out_f.copy() if copy else self.out_f
        trusted = self.out_b[_B_TRUSTED].copy() if copy else self.out_b[_B_TRUSTED]
        return Forecasts(f[_O_POINT], f[_O_UPPER], f[_O_ERROR], trusted, f[_O_REACTIVE], f[_O_PREDICTIVE],
                         self.params.forecast_metrics)

    def states(self, copy: bool = True) -> tuple:
        return tuple(mf.state(copy) for mf in self.metrics)
