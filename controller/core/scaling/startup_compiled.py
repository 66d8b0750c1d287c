"""The observed start-up memory and estimate (core/scaling/startup.py) in compiled loops (numba).

Every control cycle of a policy whose ramps follow observed start-ups adds the start-ups of the
pods that became Ready to their targets' memory (``remember_rows``: two lexsorts over the rows'
entries) and estimates those rows again (``update_estimate``: a sort per row and a quantile):
some thirty numpy calls on small arrays per cycle. Here each changed row is merged and
estimated in one loop over its K entries. Same numbers as the numpy functions, which stay the
reference and the path for ``SETPOINT_COMPILED=0``: tests/core/test_startup.py compares both,
array for array, on named rows and generated rounds of start-ups.
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit


@compiled.jit_inline
def _before(r_a, c_a, p_a, r_b, c_b, p_b):
    """Entry a sorts before entry b: newest Ready first, then creation, then key (ascending;
    a NaN creation last, as numpy's lexsort puts it)."""
    if r_a != r_b:
        return r_a > r_b
    nan_a, nan_b = c_a != c_a, c_b != c_b
    if nan_a != nan_b:
        return nan_b
    if not nan_a and c_a != c_b:
        return c_a < c_b
    return p_a < p_b


@jit
def _remember_kernel(key, created_s, ready_s, target, p_new, c_new, r_new, changed):
    """Merge the (P,) new start-ups into the rows of ``target`` of the (N, K) memory, in place;
    ``changed`` (N,) bool is set on those rows. Returns the number of rows changed."""
    n, k = key.shape
    count = np.zeros(n + 1, np.int64)  # new pods per row, then (prefix) each row's first
    for q in range(target.shape[0]):
        count[target[q] + 1] += 1
    for i in range(n):
        count[i + 1] += count[i]
    order = np.empty(target.shape[0], np.int64)  # new pods by row, given order kept
    fill = count[:n].copy()
    for q in range(target.shape[0]):
        order[fill[target[q]]] = q
        fill[target[q]] += 1
    cap = k + target.shape[0]
    ek, ec, er = np.empty(cap, np.int64), np.empty(cap), np.empty(cap)
    rank = np.empty(cap, np.int64)
    rows_changed = 0
    for i in range(n):
        lo, hi = count[i], count[i + 1]
        if lo == hi:
            continue
        changed[i] = True
        rows_changed += 1
        _merge_row(key, created_s, ready_s, i, order, lo, hi, p_new, c_new, r_new, ek, ec, er, rank)
    return rows_changed


@compiled.jit_inline
def _merge_row(key, created_s, ready_s, i, order, lo, hi, p_new, c_new, r_new, ek, ec, er, rank):
    """Row i of the (N, K) memory with the new pods ``order[lo:hi]`` merged in, in place: the
    newest K by Ready time, a key seen again keeping its earliest Ready. ek, ec, er, rank:
    scratch of at least K + hi - lo entries."""
    k = key.shape[1]
    m = 0  # candidates: the kept entries, then the new pods; a key seen again keeps its earliest Ready
    for j in range(k + hi - lo):
        if j < k:
            p, c, r = key[i, j], created_s[i, j], ready_s[i, j]
        else:
            q = order[lo + j - k]
            p, c, r = p_new[q], c_new[q], r_new[q]
        if not math.isfinite(r):
            continue
        seen = -1
        for e in range(m):
            if ek[e] == p:
                seen = e
                break
        if seen >= 0:
            if r < er[seen]:  # an earlier Ready of the same pod (ties: the first seen stays)
                ec[seen], er[seen] = c, r
            continue
        ek[m], ec[m], er[m] = p, c, r
        m += 1
    for e in range(m):  # insertion sort of the candidates (distinct keys: a strict order)
        x = e
        while x > 0 and _before(er[e], ec[e], ek[e], er[rank[x - 1]], ec[rank[x - 1]], ek[rank[x - 1]]):
            rank[x] = rank[x - 1]
            x -= 1
        rank[x] = e
    for j in range(k):
        if j < m:
            e = rank[j]
            key[i, j], created_s[i, j], ready_s[i, j] = ek[e], ec[e], er[e]
        else:
            key[i, j], created_s[i, j], ready_s[i, j] = 0, np.nan, np.nan


@jit
def _estimate_kernel(created_s, ready_s, rows, quantile, min_pods, delay_s, pods, low_s, high_s):
    """Estimate ``rows`` of the (N, K) memory into the (N,) outputs, in place."""
    ranked = np.empty(created_s.shape[1])
    for i in rows:
        _estimate_row(created_s, ready_s, i, quantile, min_pods, ranked, delay_s, pods, low_s, high_s)


@compiled.jit_inline
def _estimate_row(created_s, ready_s, i, quantile, min_pods, ranked, delay_s, pods, low_s, high_s):
    """Estimate row i of the (N, K) memory into the (N,) outputs; ``ranked``: (K,) scratch."""
    k = created_s.shape[1]
    count = 0
    for j in range(k):
        span = ready_s[i, j] - created_s[i, j]
        x = span if math.isfinite(span) else np.inf
        if math.isfinite(span):
            count += 1
        y = j  # insertion: ascending (empty slots, inf, last)
        while y > 0 and ranked[y - 1] > x:
            ranked[y] = ranked[y - 1]
            y -= 1
        ranked[y] = x
    top = max(count - 1, 0)
    pos = quantile * top
    lo = np.int64(math.floor(pos))
    hi = min(lo + 1, top)
    a, b = ranked[min(lo, k - 1)], ranked[min(hi, k - 1)]
    frac = pos - lo
    if hi > lo:
        value = a + (b - a) * frac
        value = min(max(value, a), b)  # np.clip: rounding never leaves [a, b]
    else:
        value = a
    pods[i] = count
    delay_s[i] = value if count >= max(min_pods, 1) else np.nan
    low_s[i] = ranked[0] if count > 0 else np.nan
    high_s[i] = ranked[top] if count > 0 else np.nan


def try_remember(key: np.ndarray, created_s: np.ndarray, ready_s: np.ndarray, target: np.ndarray, p_new: np.ndarray,
                 c_new: np.ndarray, r_new: np.ndarray) -> np.ndarray | None:
    """``startup.remember_rows`` on copies of the memory: merges the (P,) counted start-ups
    (rows ``target`` in [0, N), keys, creation and Ready times) into the (N, K) ``key``,
    ``created_s``, ``ready_s`` in place; returns the rows changed, (R,) int64 ascending. None
    (nothing written) when the kernels are off or K is 0: then use numpy."""
    if not compiled.enabled() or key.shape[1] == 0:
        return None
    changed = np.zeros(key.shape[0], np.bool_)
    try:
        _remember_kernel(key, created_s, ready_s, target, p_new, c_new, r_new, changed)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return np.flatnonzero(changed)


@compiled.jit_inline
def _counted_pods(rows, c_new, r_new, ready, now, max_plausible_s, dark_at, n):
    """(pick, m): the first m of pick (P,) are the pods that show a start-up (startup.observed_startups)
    in a row in [0, n), not across their target's last dark cycle (``dark_at``), in the given order."""
    pick = np.empty(rows.shape[0], np.int64)
    m = 0
    for i in range(rows.shape[0]):
        c, r, t = c_new[i], r_new[i], rows[i]
        span = r - c
        counted = ready[i] and math.isfinite(span) and span > 0 and span <= max_plausible_s and r <= now
        if counted and 0 <= t < n:
            dark = dark_at[t]
            counted = not (c <= dark and dark < r)
            if counted:
                pick[m] = i
                m += 1
    return pick, m


@jit
def _learn_kernel(key, created_s, ready_s, rows, p_new, c_new, r_new, ready, now, max_plausible_s, dark_at, changed):
    """The pods that show a start-up (startup.observed_startups) and became Ready after their
    target last went dark (``dark_at`` (N,): not one while its target had lost every Ready pod),
    merged into the memory as _remember_kernel merges them. Returns how many pods counted."""
    n = key.shape[0]
    pick, m = _counted_pods(rows, c_new, r_new, ready, now, max_plausible_s, dark_at, n)
    if m == 0:
        return 0
    target, p, cs, rs = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m), np.empty(m)
    for j in range(m):
        i = pick[j]
        target[j], p[j], cs[j], rs[j] = rows[i], p_new[i], c_new[i], r_new[i]
    _remember_kernel(key, created_s, ready_s, target, p, cs, rs, changed)
    return m


def try_learn(key: np.ndarray, created_s: np.ndarray, ready_s: np.ndarray, rows: np.ndarray, p_new: np.ndarray,
              c_new: np.ndarray, r_new: np.ndarray, ready: np.ndarray, now: float, max_plausible_s: float,
              dark_at: np.ndarray) -> tuple[int, np.ndarray] | None:
    """``startup.learn_rows`` in one compiled pass over the (P,) pods (rows, keys, creation and
    Ready times, Ready): the (N, K) memory ``key``, ``created_s``, ``ready_s`` written in place;
    returns (how many pods counted, the rows changed (R,) int64 ascending). None (nothing
    written) when the kernels are off or K is 0: then use numpy."""
    if not compiled.enabled() or key.shape[1] == 0:
        return None
    changed = np.zeros(key.shape[0], np.bool_)
    try:
        counted = _learn_kernel(key, created_s, ready_s, np.asarray(rows, np.int64), np.asarray(p_new, np.int64),
                                np.asarray(c_new, np.float64), np.asarray(r_new, np.float64),
                                np.asarray(ready, np.bool_), float(now), float(max_plausible_s),
                                np.asarray(dark_at, np.float64), changed)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return int(counted), np.flatnonzero(changed)


@jit
def _learn_estimate_kernel(key, created_s, ready_s, rows, p_new, c_new, r_new, ready, now, max_plausible_s, dark_at,
                           quantile, min_pods, delay_s, pods, low_s, high_s):
    """_learn_kernel's pods merged into the memory in place, then the rows changed estimated
    into copies of the (N,) estimate arrays, in one pass over the counted pods grouped by row
    (no pass over the N rows where they come by row, as a listing gives them: a cycle reads a
    few targets' pods).
    Returns (pods counted, the rows changed (R,) ascending, the four (N,) estimate arrays: the
    given ones when none counted)."""
    n, k = key.shape
    pick, m = _counted_pods(rows, c_new, r_new, ready, now, max_plausible_s, dark_at, n)
    if m == 0:
        return 0, np.zeros(0, np.int64), delay_s, pods, low_s, high_s
    order = _by_row(rows, pick, m, n)
    changed = np.empty(m, np.int64)
    out_delay, out_pods, out_low, out_high = delay_s.copy(), pods.copy(), low_s.copy(), high_s.copy()
    ek, ec, er = np.empty(k + m, np.int64), np.empty(k + m), np.empty(k + m)
    rank = np.empty(k + m, np.int64)
    ranked = np.empty(k)
    n_changed, lo = 0, 0
    while lo < m:
        i = rows[order[lo]]
        hi = lo + 1
        while hi < m and rows[order[hi]] == i:
            hi += 1
        _merge_row(key, created_s, ready_s, i, order, lo, hi, p_new, c_new, r_new, ek, ec, er, rank)
        _estimate_row(created_s, ready_s, i, quantile, min_pods, ranked, out_delay, out_pods, out_low, out_high)
        changed[n_changed] = i
        n_changed += 1
        lo = hi
    return m, changed[:n_changed].copy(), out_delay, out_pods, out_low, out_high


@compiled.jit_inline
def _by_row(rows, pick, m, n):
    """(m,) the pods ``pick[:m]`` by their ``rows`` (each in [0, n)) ascending, a row's pods in
    their given order: as given where they already are (a listing's order), else counted by row."""
    ascending = True
    for j in range(1, m):
        if rows[pick[j]] < rows[pick[j - 1]]:
            ascending = False
            break
    if ascending:
        return pick[:m]
    first = np.zeros(n + 1, np.int64)  # pods per row, then (prefix) each row's first
    for j in range(m):
        first[rows[pick[j]] + 1] += 1
    for i in range(n):
        first[i + 1] += first[i]
    order = np.empty(m, np.int64)
    for j in range(m):
        t = rows[pick[j]]
        order[first[t]] = pick[j]
        first[t] += 1
    return order


def try_learn_estimate(key: np.ndarray, created_s: np.ndarray, ready_s: np.ndarray, rows: np.ndarray,
                       p_new: np.ndarray, c_new: np.ndarray, r_new: np.ndarray, ready: np.ndarray, now: float,
                       max_plausible_s: float, dark_at: np.ndarray, quantile: float, min_pods: int,
                       estimate: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> tuple | None:
    """``try_learn`` then ``try_estimate_rows`` of the rows changed into copies of ``estimate``
    ((N,) delay_s, pods (int64), low_s, high_s of the memory before), in one compiled pass:
    (pods counted, rows changed (R,) int64 ascending, the four (N,) arrays: ``estimate``'s own
    when none counted). None (nothing written) when the kernels are off or K is 0: then use numpy."""
    if not compiled.enabled() or key.shape[1] == 0:
        return None
    try:
        return _learn_estimate_kernel(key, created_s, ready_s, np.asarray(rows, np.int64), np.asarray(p_new, np.int64),
                                      np.asarray(c_new, np.float64), np.asarray(r_new, np.float64),
                                      np.asarray(ready, np.bool_), float(now), float(max_plausible_s),
                                      np.asarray(dark_at, np.float64), float(quantile), int(min_pods), *estimate)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None


def try_estimate_rows(created_s: np.ndarray, ready_s: np.ndarray, rows: np.ndarray, quantile: float, min_pods: int,
                      delay_s: np.ndarray, pods: np.ndarray, low_s: np.ndarray, high_s: np.ndarray) -> bool:
    """``startup.estimate`` of ``rows`` (R,) of the (N, K) memory written into the (N,)
    ``delay_s``, ``pods`` (int64), ``low_s``, ``high_s``. False (nothing written) when the kernels
    are off or K is 0: then use numpy."""
    if not compiled.enabled() or created_s.shape[1] == 0:
        return False
    try:
        _estimate_kernel(created_s, ready_s, rows, float(quantile), int(min_pods), delay_s, pods, low_s, high_s)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return False
    return True


@jit
def _cycle_due_kernel(ready, exists, last_ready, dark_at, last_cycle_s, read, all_read, now):
    """startup.cycle_due's marks and due rows, in one pass over the (N,) targets."""
    n = ready.shape[0]
    due = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        r, before = ready[i], last_ready[i]
        if exists[i]:
            if r == 0 and (before > 0 or dark_at[i] == last_cycle_s):
                dark_at[i] = now
            if r > before or not (all_read or read[i]):
                due[m] = i
                m += 1
        last_ready[i] = r
    return due[:m].copy()


def try_cycle_due(ready: np.ndarray, exists: np.ndarray, last_ready: np.ndarray, dark_at: np.ndarray,
                  last_cycle_s: float, read: np.ndarray, all_read: bool, now: float) -> np.ndarray | None:
    """``startup.cycle_due`` (its (N,) arrays as it takes them: float64 ``ready``, ``last_ready``
    and ``dark_at``, bool ``exists`` and ``read``), compiled: the due rows (D,) int64, the marks
    written in place. None (nothing written) when the kernels are off: then use numpy."""
    if not compiled.enabled():
        return None
    try:
        return _cycle_due_kernel(ready, exists, last_ready, dark_at, float(last_cycle_s), read, bool(all_read),
                                 float(now))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None


@jit
def _short_due_kernel(spec, ready, exists, since, seen, all_seen, startup_s, observed, margin, unobserved, now):
    """withheld.short_due's marks and due rows, in one pass over the (N,) targets."""
    n = spec.shape[0]
    due = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if not (exists[i] and ready[i] < spec[i]):
            since[i] = np.nan
        else:
            if since[i] != since[i]:
                since[i] = now
            after = unobserved
            if observed and math.isfinite(startup_s[i]):
                after = margin * startup_s[i]
            if now - since[i] > after or not (all_seen or seen[i]):
                due[m] = i
                m += 1
        seen[i] = True
    return due[:m].copy()


def try_short_due(spec: np.ndarray, ready: np.ndarray, exists: np.ndarray, since: np.ndarray, seen: np.ndarray,
                  all_seen: bool, startup_s: np.ndarray | None, margin: float, unobserved: float,
                  now: float) -> np.ndarray | None:
    """``withheld.short_due`` compiled (float64 ``spec``, ``ready``, ``since``; bool ``exists``,
    ``seen``; the withheld age past which a pod is withheld: ``margin`` x ``startup_s`` where that
    is given and finite, else ``unobserved``): the due rows (D,) int64, the marks written in
    place. None (nothing written) when the kernels are off: then use numpy."""
    if not compiled.enabled():
        return None
    observed = startup_s is not None
    try:
        return _short_due_kernel(spec, ready, exists, since, seen, bool(all_seen),
                                 startup_s if observed else _NO_STARTUP, observed, float(margin), float(unobserved),
                                 float(now))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None


_NO_STARTUP = np.zeros(0)  # startup_s when none is observed (the kernel never reads it then)
