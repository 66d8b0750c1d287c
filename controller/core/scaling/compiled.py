"""The decision pipeline as one compiled kernel (numba), fused per target.

signal -> smooth -> propose -> combine -> pre-checks and missing data -> stabilize -> limit ->
history writes run in one loop over the N targets of a policy, with the numbers of the numpy
stages (signal.py ... normalize.py, the reference): ``tests/core/test_compiled.py`` checks
every output and state array is identical on scripted and random inputs.

Covered: every metric kind, smoothing none / EWMA / mean / max, HPA legacy and behavior,
Setpoint's missing-data hold and fallback, ramp metrics (_ramp_kernel between propose and
combine, as in decide_numpy). Not covered, so ``decide`` keeps numpy for the
policy (see :func:`supports`): forecast metrics, median and percentile smoothing.

Switch: ``SETPOINT_COMPILED=0`` forces numpy, ``=1`` asks for the kernel (a warning if numba is
missing), unset means "the kernel when numba imports". A missing or broken numba (or a kernel
that fails to compile) gives one warning and numpy, never an error. Kernels are compiled on
first use and cached on disk (numba ``cache=True``); :func:`compile_now` compiles eagerly and
returns the seconds it took (the benches print it).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from controller.core.scaling.limit import NOT_LIMITED
from controller.core.scaling.params import PolicyParams, RuleType, Select, Smoothing
from controller.core.scaling.propose import INT32_MAX
from controller.model import Reason

#: What a kernel that fails to compile raises (numba's typing and lowering errors); set on load.
KERNEL_ERRORS: tuple[type[BaseException], ...] = ()

ENV_SWITCH = "SETPOINT_COMPILED"
_numba = None  # the numba module once loaded
_IMPORT_ERROR: BaseException | None = None
_loaded = False
_pending: list[tuple[dict, str, bool]] = []  # (module globals, name, inline) of the functions to compile on load
_warned = False
_broken: BaseException | None = None


def jit(func=None, *, inline: bool = False):
    """Mark ``func`` as a kernel: ``numba.njit(cache=True)`` with numpy's float semantics (x/0 is
    inf or NaN, no exception), made when the kernels are first needed, so that importing the
    core (every CLI command) does not import numba. The plain function while numba is not loaded
    or missing (never called then). The cache lives next to the module or, when that is
    read-only, in numba's user cache (``NUMBA_CACHE_DIR`` to choose).

    ``inline=True`` (``@jit(inline=True)``): numba inlines the function into its callers. For
    helpers taking arrays, called once per target: a call of a compiled function increments and
    decrements each array argument's reference count (atomic operations, tens of nanoseconds per
    call with a few arrays), which an inlined body does not."""
    if func is None:
        return lambda f: jit(f, inline=inline)
    if _loaded:
        return _njit(func, inline)
    _pending.append((func.__globals__, func.__name__, inline))
    return func


def _njit(func, inline: bool = False):
    if _numba is None:
        return func
    options = {"inline": "always"} if inline else {}
    try:
        return _numba.njit(cache=True, error_model="numpy", **options)(func)
    except RuntimeError:  # no writable cache directory (read-only install, no home): compile per process
        return _numba.njit(cache=False, error_model="numpy", **options)(func)


def _load() -> None:
    """Import numba and turn every marked function into a dispatcher (each kernel finds its
    helpers as module globals when it compiles)."""
    global _numba, _IMPORT_ERROR, _loaded, KERNEL_ERRORS
    if _loaded:
        return
    _loaded = True
    try:  # numba is optional: without it every policy runs on numpy
        import numba  # noqa: PLC0415
    except Exception as exc:  # ImportError, or a broken install (e.g. an llvmlite mismatch)
        _IMPORT_ERROR = exc
        return
    _numba = numba
    KERNEL_ERRORS = (numba.core.errors.NumbaError,)
    for namespace, name, inline in _pending:
        namespace[name] = _njit(namespace[name], inline)
    _pending.clear()


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def available() -> bool:
    """numba imports and no kernel failed to compile."""
    _load()
    return _numba is not None and _broken is None


def enabled() -> bool:
    """Use the kernels: the switch allows it and numba works (warns once when asked for and absent)."""
    switch = os.environ.get(ENV_SWITCH, "").strip()
    if switch == "0":
        return False
    if not available():
        if switch == "1" or _IMPORT_ERROR is not None or _broken is not None:
            reason = _IMPORT_ERROR or _broken
            _warn_once(f"compiled kernels unavailable ({type(reason).__name__}: {reason}); using numpy")
        return False
    return True


def mark_broken(exc: BaseException) -> None:
    """A kernel failed to compile or run: numpy from now on, with one warning."""
    global _broken
    _broken = exc
    _warn_once(f"compiled kernel failed ({type(exc).__name__}: {exc}); using numpy")


def supports(params: PolicyParams) -> bool:
    """The kernel covers this policy: not the hpa preset, no forecast, no median/percentile smoothing, a mean
    over at most 128 samples (numpy sums longer ones in halves; not reproduced)."""
    # the hpa preset proposes with HPA's pod-level calculator (core/scaling/hpa_propose.py), not compiled
    if (params.hpa_semantics or params.forecast_metrics
            or params.smoothing in (Smoothing.MEDIAN, Smoothing.PERCENTILE)):
        return False
    return params.smoothing != Smoothing.MEAN or params.sample_slots <= _PAIRWISE_BLOCK


# ---------------------------------------------------------------------------------------- kernel
_DISABLED, _ABOVE, _BELOW = int(Reason.SCALING_DISABLED), int(Reason.ABOVE_MAX), int(Reason.BELOW_MIN)
_MISSING, _FALLBACK = int(Reason.METRICS_MISSING), int(Reason.FALLBACK_REPLICAS)
_STAB_UP, _STAB_DOWN = int(Reason.STABILIZED_UP), int(Reason.STABILIZED_DOWN)
_UP, _DOWN, _KEEP = int(Reason.SCALE_UP), int(Reason.SCALE_DOWN), int(Reason.WITHIN_TOLERANCE)
_RL_UP, _RL_DOWN = int(Reason.RATE_LIMITED_UP), int(Reason.RATE_LIMITED_DOWN)
_CL_MAX, _CL_MIN = int(Reason.CLAMPED_TO_MAX), int(Reason.CLAMPED_TO_MIN)
_NOT_LIMITED = int(NOT_LIMITED)
_PODS = int(RuleType.PODS)
_SEL_MAX, _SEL_DISABLED = int(Select.MAX), int(Select.DISABLED)
_S_NONE, _S_EWMA, _S_MEAN, _S_MAX = int(Smoothing.NONE), int(Smoothing.EWMA), int(Smoothing.MEAN), int(Smoothing.MAX)
_INT32_MAX = float(INT32_MAX)
_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE: up to this many terms its pairwise sum is one block
_NAN, _INF = math.nan, math.inf

# scalar parameter vector layout (see _scalars)
(_P_STALE, _P_TOL_UP, _P_TOL_DOWN, _P_SMOOTHING, _P_WINDOW, _P_MIN, _P_MAX, _P_LEGACY, _P_FALLBACK,
 _P_HOLD, _P_UP_WIN, _P_DOWN_WIN, _P_UP_SEL, _P_DOWN_SEL, _P_UP_LONGEST, _P_DOWN_LONGEST, _P_FACTOR,
 _P_MINIMUM, _P_SIZE) = range(19)


@jit
def nan_max(a, b):
    """np.maximum on scalars: NaN if either is NaN."""
    if a != a or b != b:
        return _NAN
    return a if a >= b else b


@jit
def nan_min(a, b):
    """np.minimum on scalars: NaN if either is NaN."""
    if a != a or b != b:
        return _NAN
    return a if a <= b else b


@jit
def _within(ratio, tol_up, tol_down):
    return ratio >= 1.0 - tol_down and ratio <= 1.0 + tol_up


@jit
def _ceil_clamped(x):
    return nan_min(np.ceil(x), _INT32_MAX)


@jit
def _pairwise_sum(a, start, n):
    """numpy's pairwise summation of a[start:start + n] (bit for bit, for np.sum over a
    contiguous axis)."""
    if n < 8:
        res = 0.0
        for k in range(n):
            res += a[start + k]
        return res
    if n <= _PAIRWISE_BLOCK:
        r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
        r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
        k = 8
        while k < n - (n % 8):
            r0 += a[start + k]
            r1 += a[start + k + 1]
            r2 += a[start + k + 2]
            r3 += a[start + k + 3]
            r4 += a[start + k + 4]
            r5 += a[start + k + 5]
            r6 += a[start + k + 6]
            r7 += a[start + k + 7]
            k += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while k < n:
            res += a[start + k]
            k += 1
        return res
    return _NAN  # longer windows are not compiled (see supports)


@jit
def _propose_one(kind, target, v, cur, rdy, sts, tol_up, tol_down):
    """One metric's proposal (propose.py), and whether ``ready`` allows it (utilization)."""
    ready_ok = True
    if kind == 0:  # value
        ratio = v / target
        if cur == 0:
            p = np.ceil(ratio)
        elif _within(ratio, tol_up, tol_down):
            p = cur
        else:
            p = _ceil_clamped(ratio * rdy)
        guide = v / target
    elif kind == 1:  # average per replica
        ratio = v / (target * cur)
        p = cur if _within(ratio, tol_up, tol_down) else _ceil_clamped(v / target)
        guide = v / (target * nan_max(cur, 1.0))
    else:  # utilization
        ratio = v / target
        unready = nan_max(sts - rdy, 0.0)
        if unready > 0 and ratio > 1.0:
            total = rdy + unready
            diluted_usage = v * rdy / total
            diluted = diluted_usage / target
            slow = _ceil_clamped(diluted * total)
            if _within(diluted, tol_up, tol_down) or diluted < 1.0 or slow < cur:
                slow = cur
            p = slow
        else:
            p = cur if _within(ratio, tol_up, tol_down) else _ceil_clamped(ratio * rdy)
        guide = v / target
        ready_ok = rdy > 0
    # Setpoint's direction guard
    if guide > 1.0:
        p = nan_max(p, cur)
    elif guide < 1.0:
        p = nan_min(p, cur)
    else:
        p = cur
    return p, ready_ok


@jit(inline=True)
def _window_aggregate(samples, times, i, j, now, window_s, kind, buf):
    """nanmean / nanmax of the samples of (i, j) with age < window (NaN when none)."""
    w = samples.shape[2]
    count = 0
    best = -_INF
    for s in range(w):
        inside = (now - times[i, j, s]) < window_s
        x = samples[i, j, s] if inside else 0.0
        buf[s] = x
        if inside:
            count += 1
            if x > best:
                best = x
    if count == 0:
        return _NAN
    if kind == _S_MAX:
        return best
    return _pairwise_sum(buf, 0, w) / count


@jit(inline=True)
def _event_sums(up_c, up_t, down_c, down_t, i, now, period):
    """(replicas added, replicas removed) by the scale events of row i with age < period."""
    added, removed = 0.0, 0.0
    for s in range(up_c.shape[1]):
        if (now - up_t[i, s]) < period:
            added += up_c[i, s]
    for s in range(down_c.shape[1]):
        if (now - down_t[i, s]) < period:
            removed += down_c[i, s]
    return added, removed


@jit(inline=True)
def _rate_limit(cur, up_c, up_t, down_c, down_t, i, now, rules, select, up):
    """scale_up_limit (up) or scale_down_limit (not up) of row i: the count the rate rules allow.

    Whole-number sums are exact in any order; rules sharing a period share their sums."""
    if select == _SEL_DISABLED:
        return cur
    n_rules = rules.shape[1]
    if n_rules == 0:
        return _INF if up else -_INF
    out, last_period, added, removed = 0.0, _NAN, 0.0, 0.0
    for r in range(n_rules):
        period = rules[2, r]
        if period != last_period:
            added, removed = _event_sums(up_c, up_t, down_c, down_t, i, now, period)
            last_period = period
        start = cur - added + removed
        value = rules[1, r]
        if up:
            p = start + value if int(rules[0, r]) == _PODS else np.ceil(start * (1.0 + value / 100.0))
        else:
            p = start - value if int(rules[0, r]) == _PODS else np.trunc(start * (1.0 - value / 100.0))
        if r == 0:
            out = p
        elif (select == _SEL_MAX) == up:  # up: Max takes the largest; down: Max the biggest change, the lowest
            out = nan_max(out, p)
        else:
            out = nan_min(out, p)
    return out


@jit
def _front_kernel(values, present, age, current, ready, status, metric, scal, now, alpha, ewma, ewma_at, samples,
                  sample_at, out_f2, out_b2):
    """signal -> smooth -> propose for N targets (into out_f2: values, smoothed, proposals; out_b2:
    missing, stale, nonfinite, negative, usable, valid); the smoothing state is updated in place."""
    n, m = values.shape
    stale_after, tol_up, tol_down = scal[_P_STALE], scal[_P_TOL_UP], scal[_P_TOL_DOWN]
    smoothing = int(scal[_P_SMOOTHING])
    window_s = scal[_P_WINDOW]
    # outputs are views of blocks the caller allocates (few allocations for a Decision it keeps)
    sig_values, smoothed, proposals = out_f2[0], out_f2[1], out_f2[2]
    missing, stale, nonfinite, negative, usable, valid = out_b2[0], out_b2[1], out_b2[2], out_b2[3], out_b2[4], out_b2[5]
    buf = np.empty(samples.shape[2])

    for i in range(n):
        cur, rdy, sts = current[i], ready[i], status[i]
        for j in range(m):
            x = values[i, j]
            pr = present[i, j]
            nf = pr and not math.isfinite(x)
            st = pr and age[i, j] > stale_after
            ng = pr and not nf and x < 0 and metric[2, j] != 0.0
            us = pr and not (st or nf or ng)
            missing[i, j], stale[i, j], nonfinite[i, j], negative[i, j], usable[i, j] = not pr, st, nf, ng, us
            sv = x if us else _NAN
            sig_values[i, j] = sv
            if smoothing == _S_EWMA:
                if us:
                    e = ewma[i, j]
                    ewma[i, j] = sv if e != e else e + alpha[i, j] * (sv - e)
                    ewma_at[i, j] = now
                sm = ewma[i, j]
            elif smoothing == _S_NONE:
                sm = sv
            else:
                if us and samples.shape[2] > 0:
                    slot, key = 0, _INF
                    for s in range(samples.shape[2]):
                        t = sample_at[i, j, s]
                        k = -_INF if t != t else t
                        if s == 0 or k < key:
                            slot, key = s, k
                    samples[i, j, slot] = sv
                    sample_at[i, j, slot] = now
                sm = _window_aggregate(samples, sample_at, i, j, now, window_s, smoothing, buf)
                smoothed[i, j] = sm
            p, ready_ok = _propose_one(int(metric[0, j]), metric[1, j], sm, cur, rdy, sts, tol_up, tol_down)
            ok = math.isfinite(sm) and ready_ok and math.isfinite(p) and us
            valid[i, j] = ok
            proposals[i, j] = p if ok else _NAN
    return 0


@jit
def _norm_kernel(current, scal, up_rules, down_rules, now, old_rec_v, old_rec_t, rec_v, rec_t, up_c, up_t, down_c,
                 down_t, missing_since, proposals, valid, out_f1, out_i1, active_out):
    """combine -> pre-checks and missing data -> stabilize -> limit -> history writes for N
    targets from proposals and valid (N, M). The recommendation history is copied from
    old_rec_* into rec_* (uninitialised, same shape) on the way; outputs go to out_f1
    (combined, proposal, stabilized, desired, missing_since), out_i1 (limit reason, reason) and
    active_out."""
    n, m = proposals.shape
    legacy = scal[_P_LEGACY] != 0.0
    lo, hi = scal[_P_MIN], scal[_P_MAX]
    fallback, hold_s = scal[_P_FALLBACK], scal[_P_HOLD]
    has_fallback = fallback == fallback
    up_w, down_w = scal[_P_UP_WIN], scal[_P_DOWN_WIN]
    up_sel, down_sel = int(scal[_P_UP_SEL]), int(scal[_P_DOWN_SEL])
    keep_s = down_w if legacy else max(up_w, down_w)
    combined_out, proposal_out, stabilized_out, desired_out, new_missing = (out_f1[0], out_f1[1], out_f1[2], out_f1[3],
                                                                            out_f1[4])
    limit_out, reason_out = out_i1[0], out_i1[1]
    forced_arr = np.empty(n)
    fresh = np.empty(n, np.bool_)
    hold_arr = np.empty(n, np.bool_)
    any_valid_arr = np.empty(n, np.bool_)
    pre_arr = np.empty(n, np.int64)
    miss_arr = np.empty(n, np.int64)

    for i in range(n):
        cur = current[i]
        # -- combine: the max over the valid proposals
        combined, any_valid, all_valid = -_INF, False, True
        for j in range(m):
            if valid[i, j]:
                combined = nan_max(combined, proposals[i, j])
                any_valid = True
            else:
                all_valid = False
        combined = combined if any_valid else _NAN
        combined_out[i] = combined

        # -- normalize: first sight seeds the history with (current, now)
        # (written while the history is copied below: slot 0, the first of an empty row)
        fresh[i] = rec_t.shape[1] == 0 or old_rec_t[i, 0] != old_rec_t[i, 0]
        # pre-checks
        if cur == 0 and lo != 0:
            forced, pre_reason = 0.0, _DISABLED
        elif cur > hi:
            forced, pre_reason = hi, _ABOVE
        elif cur < lo:
            forced, pre_reason = lo, _BELOW
        else:
            forced, pre_reason = _NAN, -1
        # missing data
        blocked_down = (not all_valid) and any_valid and combined < cur
        none_valid = not any_valid
        ms = missing_since[i]
        ms = (now if ms != ms else ms) if none_valid else _NAN
        new_missing[i] = ms
        miss_reason = _MISSING if (blocked_down or none_valid) else -1
        proposal = combined if any_valid else cur
        if has_fallback:
            expired = none_valid and (now - ms >= hold_s)
            if expired:
                proposal = nan_max(cur, fallback)
                miss_reason = _FALLBACK
            hold = (blocked_down or none_valid) and not expired
        else:
            hold = blocked_down or none_valid
        if hold:
            proposal = cur
        proposal_out[i], forced_arr[i], hold_arr[i] = proposal, forced, hold
        pre_arr[i], miss_arr[i], any_valid_arr[i] = pre_reason, miss_reason, any_valid

    # -- the history windows, slot by slot across targets (contiguous columns: vectorized), and
    #    the slot each target's proposal goes to: the first reusable one, else the first oldest
    slots = rec_t.shape[1]
    cut_keep = now - keep_s
    cut_low = now - up_w
    cut_high = now - down_w
    low = np.full(n, _INF)
    high = np.full(n, -_INF)
    slot_key = np.full(n, _INF)
    slot_of = np.zeros(n, np.int64)
    for s in range(slots):  # branch-free selects, so that the inner loops vectorize
        for i in range(n):  # copy the column, seeding fresh rows (the copy and the scan share one read)
            seed = fresh[i] & (s == 0)
            rec_v[i, s] = current[i] if seed else old_rec_v[i, s]
            rec_t[i, s] = now if seed else old_rec_t[i, s]
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
        proposal, forced, hold = proposal_out[i], forced_arr[i], hold_arr[i]
        pre_reason, miss_reason, any_valid = pre_arr[i], miss_arr[i], any_valid_arr[i]
        has_forced = forced == forced
        skip = has_forced or hold
        if legacy:
            stabilized = nan_max(proposal, high[i])
            up_cap = np.trunc(max(scal[_P_FACTOR] * cur, scal[_P_MINIMUM]))
            tighter = hi > up_cap
            upper = up_cap if tighter else hi
            if stabilized < lo:
                desired, limit_reason = lo, _CL_MIN
            elif stabilized > upper:
                desired, limit_reason = upper, (_RL_UP if tighter else _CL_MAX)
            else:
                desired, limit_reason = stabilized, _NOT_LIMITED
        else:
            up_floor = nan_min(proposal, low[i]) if up_w > 0 else proposal  # HPA's default up-window 0: the proposal
            stabilized = nan_min(nan_max(cur, up_floor), nan_max(proposal, high[i]))
            desired, limit_reason = stabilized, _NOT_LIMITED
            if stabilized > cur:
                raw = nan_max(_rate_limit(cur, up_c, up_t, down_c, down_t, i, now, up_rules, up_sel, True), cur)
                allowed = nan_min(hi, raw)
                if stabilized > allowed:
                    desired, limit_reason = allowed, (_RL_UP if raw < hi else _CL_MAX)
            elif stabilized < cur:
                raw = nan_min(_rate_limit(cur, up_c, up_t, down_c, down_t, i, now, down_rules, down_sel, False), cur)
                allowed = nan_max(lo, raw)
                if stabilized < allowed:
                    desired, limit_reason = allowed, (_RL_DOWN if raw > lo else _CL_MIN)

        # remember the raw proposal (Setpoint's own mode also during a hold)
        if slots > 0 and ((not skip) or (hold and not has_forced)):
            rec_v[i, slot_of[i]] = proposal
            rec_t[i, slot_of[i]] = now

        if limit_reason != _NOT_LIMITED:
            reason = limit_reason
        elif stabilized != proposal:
            reason = _STAB_DOWN if (legacy or proposal < cur) else _STAB_UP
        else:
            reason = _UP if desired > cur else (_DOWN if desired < cur else _KEEP)
        if miss_reason >= 0:
            reason = miss_reason
        if pre_reason >= 0:
            reason = pre_reason
        if has_forced:
            desired = forced
        elif hold:
            desired = cur
        if skip:
            stabilized, limit_reason = desired, _NOT_LIMITED
        stabilized_out[i], desired_out[i] = stabilized, desired
        limit_out[i], reason_out[i] = limit_reason, reason
        active_out[i] = (not has_forced) and any_valid and not hold

    return 0


@jit
def _ramp_kernel(j, sig_values, usable, proposals, valid, current, ready, status, kind, target, tol_up, tol_down,
                 hist_v, hist_t, now, window_s, tolerance_s, lead_s, keep_s, slope_out, ahead_out, prop_out):
    """The ramp stage of metric j (ramp.py's ramp_step and apply_ramps) for N targets.

    sig_values, usable, proposals, valid: (N, M) from _front_kernel; proposals[:, j] is raised
    in place (np.fmax) where the ramp proposal is valid. hist_v, hist_t: (N, K) the metric's
    samples, written in place. slope_out, ahead_out, prop_out: (N, M), column j written (the
    caller fills them with NaN)."""
    n, k = hist_v.shape
    cut = now - keep_s
    for i in range(n):
        y, ok = sig_values[i, j], usable[i, j]
        # window_ago: the sample nearest to now - window_s among those old enough (argmin: the first)
        best, pick = _INF, 0
        for s in range(k):
            age = now - hist_t[i, s]  # NaN for empty slots: compares False
            d = abs(age - window_s) if age >= window_s - tolerance_s else _INF
            if d < best:
                best, pick = d, s
        found = best < _INF
        old_v = hist_v[i, pick] if found else _NAN
        old_t = hist_t[i, pick] if found else _NAN
        slope = (y - old_v) / (now - old_t) if (ok and now > old_t) else _NAN
        ahead = y + nan_max(slope, 0.0) * lead_s
        slope_out[i, j], ahead_out[i, j] = slope, ahead
        # write_slot: the first reusable (empty or outdated) slot, else the first oldest
        if ok and k > 0:
            slot, key = 0, _INF
            for s in range(k):
                t = hist_t[i, s]
                kk = t if t >= cut else -_INF
                if s == 0 or kk < key:
                    slot, key = s, kk
            hist_v[i, slot] = y
            hist_t[i, slot] = now
        p, ready_ok = _propose_one(kind, target, ahead, current[i], ready[i], status[i], tol_up, tol_down)
        if valid[i, j] and math.isfinite(ahead) and ready_ok and math.isfinite(p):
            prop_out[i, j] = p
            a = proposals[i, j]
            proposals[i, j] = a if (a >= p or p != p) else p  # np.fmax, signed zeros included
    return 0


@jit
def _decide_kernel(values, present, age, current, ready, status, metric, scal, up_rules, down_rules, now,
                   alpha, ewma, ewma_at, samples, sample_at, old_rec_v, old_rec_t, rec_v, rec_t,
                   up_c, up_t, down_c, down_t,
                   missing_since, out_f2, out_b2, out_f1, out_i1, active_out):
    """Decide for N targets in place of signal(...) -> normalize(...): _front_kernel then
    _norm_kernel in one call (see them for the arrays)."""
    _front_kernel(values, present, age, current, ready, status, metric, scal, now, alpha, ewma, ewma_at, samples,
                  sample_at, out_f2, out_b2)
    return _norm_kernel(current, scal, up_rules, down_rules, now, old_rec_v, old_rec_t, rec_v, rec_t, up_c, up_t,
                        down_c, down_t, missing_since, out_f2[2], out_b2[5], out_f1, out_i1, active_out)


# ---------------------------------------------------------------------------------------- wrapper
_PACKED: dict[int, tuple] = {}


def _rules(rules) -> np.ndarray:
    return np.ascontiguousarray(np.vstack([rules.types.astype(np.float64), rules.values, rules.periods_s])
                                .reshape(3, -1))


def _pack(params: PolicyParams) -> tuple:
    """The policy's parameters as the kernel's arrays; cached per params object."""
    hit = _PACKED.get(id(params))
    if hit is not None and hit[0] is params:
        return hit[1]
    scal = np.zeros(_P_SIZE)
    scal[_P_STALE] = params.stale_after_s
    scal[_P_TOL_UP], scal[_P_TOL_DOWN] = params.tolerance_up, params.tolerance_down
    scal[_P_SMOOTHING], scal[_P_WINDOW] = int(params.smoothing), params.window_s
    scal[_P_MIN], scal[_P_MAX], scal[_P_LEGACY] = params.min_replicas, params.max_replicas, params.legacy
    scal[_P_FALLBACK] = np.nan if params.fallback_replicas is None else params.fallback_replicas
    scal[_P_HOLD] = params.missing_hold_s
    scal[_P_UP_WIN], scal[_P_DOWN_WIN] = params.scale_up.window_s, params.scale_down.window_s
    scal[_P_UP_SEL], scal[_P_DOWN_SEL] = int(params.scale_up.select), int(params.scale_down.select)
    scal[_P_UP_LONGEST], scal[_P_DOWN_LONGEST] = params.scale_up.longest_period_s, params.scale_down.longest_period_s
    scal[_P_FACTOR], scal[_P_MINIMUM] = params.scale_up_limit_factor, params.scale_up_limit_minimum
    metric = np.ascontiguousarray(np.vstack([params.metric_kinds.astype(np.float64), params.metric_targets,
                                             params.metric_nonnegative.astype(np.float64)]).reshape(3, -1))
    packed = (scal, metric, _rules(params.scale_up), _rules(params.scale_down))
    if len(_PACKED) > 256:
        _PACKED.clear()
    _PACKED[id(params)] = (params, packed)
    return packed


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _ccopy(a) -> np.ndarray:
    return np.array(a, dtype=np.float64, order="C")


_EMPTY_2D = np.empty((0, 0))


_LN2 = np.log(2.0)


def _ewma_alpha(ewma_at: np.ndarray, now: float, half_life_s: float) -> np.ndarray:
    """smooth.ewma_alpha(now - ewma_at) in fewer numpy calls and numpy's own expm1 (the C
    library's differs in the last bit); NaN where there is no EWMA yet (the kernel does not
    use it there)."""
    if half_life_s <= 0:
        return np.ones_like(ewma_at)
    x = np.subtract(now, ewma_at)
    np.maximum(x, 0.0, out=x)
    np.multiply(-_LN2, x, out=x)
    np.divide(x, half_life_s, out=x)
    np.expm1(x, out=x)
    return np.negative(x, out=x)


def decide_arrays(params: PolicyParams, obs, state, now: float):
    """Run the kernel for one policy. Returns (signal arrays (6), smoothed, proposals, valid,
    norm result arrays (7), smooth state arrays (4), norm state arrays (6), the ramp stage's
    outputs (see _ramp_stage; None without ramp metrics)); the caller (decide) wraps them in
    the core's dataclasses. The input state is left untouched."""
    scal, metric, up_rules, down_rules = _pack(params)
    sm, nm = state.smooth, state.norm
    n, m = obs.values.shape
    smoothing = params.smoothing
    if smoothing == Smoothing.EWMA:
        alpha = _ewma_alpha(sm.ewma_at, now, params.half_life_s)
        ewma, ewma_at = _ccopy(sm.ewma), _ccopy(sm.ewma_at)  # the kernel writes these
    else:
        alpha, ewma, ewma_at = _EMPTY_2D, _f64(sm.ewma), _f64(sm.ewma_at)
    if smoothing in (Smoothing.MEAN, Smoothing.MAX):
        samples, sample_at = _ccopy(sm.samples), _ccopy(sm.sample_at)
    else:
        samples, sample_at = _f64(sm.samples), _f64(sm.sample_at)
    rec_v, rec_t = np.empty(nm.rec_values.shape, order="F"), np.empty(nm.rec_times.shape, order="F")
    # read only: the scale events join the state once applied (Decision.state_after)
    up_c, up_t, down_c, down_t = nm.up_changes, nm.up_times, nm.down_changes, nm.down_times
    out_f2, out_b2 = np.empty((3, n, m)), np.empty((6, n, m), dtype=np.bool_)
    out_f1, out_i1, active = np.empty((5, n)), np.empty((2, n), dtype=np.int64), np.empty(n, dtype=np.bool_)
    values, present, age = _f64(obs.values), np.ascontiguousarray(obs.present, dtype=np.bool_), _f64(obs.sample_age_s)
    current, ready, status = _f64(obs.current), _f64(obs.ready), _f64(obs.status)
    old_rec_v = np.asfortranarray(nm.rec_values, dtype=np.float64)
    old_rec_t = np.asfortranarray(nm.rec_times, dtype=np.float64)
    ramps = None
    if not params.ramp_metrics:  # one call: signal .. history writes fused
        _decide_kernel(values, present, age, current, ready, status, metric, scal, up_rules, down_rules, float(now),
                       _f64(alpha), ewma, ewma_at, samples, sample_at, old_rec_v, old_rec_t, rec_v, rec_t,
                       up_c, up_t, down_c, down_t, _f64(nm.missing_since), out_f2, out_b2, out_f1, out_i1, active)
    else:  # the ramp stage sits between propose and combine, as in decide_numpy
        _front_kernel(values, present, age, current, ready, status, metric, scal, float(now), _f64(alpha), ewma,
                      ewma_at, samples, sample_at, out_f2, out_b2)
        ramps = _ramp_stage(params, out_f2, out_b2, current, ready, status, state.ramp, float(now))
        _norm_kernel(current, scal, up_rules, down_rules, float(now), old_rec_v, old_rec_t, rec_v, rec_t,
                     up_c, up_t, down_c, down_t, _f64(nm.missing_since), out_f2[2], out_b2[5], out_f1, out_i1, active)
    smoothed = out_f2[0] if smoothing == Smoothing.NONE else (ewma if smoothing == Smoothing.EWMA else out_f2[1])
    out = (out_f2[0], *out_b2[:5], smoothed, out_f2[2], out_b2[5], *out_f1[:4], *out_i1, active, out_f1[4])
    return out, (ewma, ewma_at, samples, sample_at), (rec_v, rec_t, up_c, up_t, down_c, down_t), ramps


def _ramp_stage(params: PolicyParams, out_f2, out_b2, current, ready, status, states, now: float):
    """Run _ramp_kernel for every ramp metric (raising out_f2[2], the proposals, in place).
    Returns (slope, ahead, proposal) (N, M) NaN outside ramp metrics, and the new (values,
    times) (N, K) of each ramp metric's history; the input states are left untouched."""
    shape = out_f2[0].shape
    slope, ahead, prop = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    new_states = []
    for j, st in zip(params.ramp_metrics, states):
        rp = params.metrics[j].ramp
        hist_v = np.array(st.values, dtype=np.float64, order="F")
        hist_t = np.array(st.times, dtype=np.float64, order="F")
        _ramp_kernel(j, out_f2[0], out_b2[4], out_f2[2], out_b2[5], current, ready, status,
                     int(params.metric_kinds[j]), float(params.metric_targets[j]), float(params.tolerance_up),
                     float(params.tolerance_down), hist_v, hist_t, now, float(rp.window_s), 0.5 * rp.interval_s,
                     float(rp.lead_s), float(rp.keep_s), slope, ahead, prop)
        new_states.append((hist_v, hist_t))
    return slope, ahead, prop, tuple(new_states)
