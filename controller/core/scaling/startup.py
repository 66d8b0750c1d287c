"""Observed pod start-up delay per target: how long new pods take from creation to Ready.

A scale-up serves only once its pods are Ready, so the ramp's lead (core/scaling/ramp.py) is
start-up delay + interval + half the metric window. A start-up delay written in a policy is a
guess that goes stale (a bigger image, a slower node pool); this module measures it from the
pods instead: each pod that became Ready gives one start-up, ``ready_at - created_at``; per
target the last ``StartupParams.pods`` start-ups are remembered and the estimate is their
``quantile`` (a high one: a lead too short costs violation minutes, one too long only a little
headroom while the load rises). Linear interpolation keeps it within [min, max] of the
remembered start-ups.

A start-up that is not one is skipped: not Ready, a time unset, Ready at or before its creation
(nothing observed: e.g. pods that existed before a simulation began), Ready after ``now``
(clock skew), or longer than ``max_plausible_s`` (a pod Ready again after a restart or a long
stay unready: its last readiness change is not its start).

Shapes: P pods (flat, ``target`` their row, ``key`` an int64 identity), N targets, memory
(N, K) keys, creation and Ready times (epoch seconds, NaN: empty), newest Ready first. Pure
numpy; the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.core.history import take_rows
from controller.core.scaling import startup_compiled
from controller.model import direct_init


@dataclass(frozen=True)
class StartupParams:
    """pods: start-ups remembered per target (the last ones by Ready time); quantile (0..1) of
    them is the estimate; min_pods: start-ups needed before the estimate replaces the fallback;
    max_plausible_s: longer creation -> Ready spans are not counted as start-ups."""

    pods: int = 20
    quantile: float = 0.9
    min_pods: int = 1
    max_plausible_s: float = 900.0


DEFAULT_STARTUP = StartupParams()


@direct_init
@dataclass(frozen=True)
class StartupMemory:
    """The last start-ups of N targets: (N, K) pod keys (int64 identities), creation and Ready
    times, newest Ready first, NaN-padded (key 0 where empty)."""

    key: np.ndarray
    created_s: np.ndarray
    ready_s: np.ndarray

    @classmethod
    def empty(cls, n: int, sp: StartupParams = DEFAULT_STARTUP) -> "StartupMemory":
        return cls(np.zeros((n, sp.pods), np.int64), np.full((n, sp.pods), np.nan), np.full((n, sp.pods), np.nan))

    @property
    def size(self) -> int:
        return self.created_s.shape[0]

    def take(self, rows: np.ndarray) -> "StartupMemory":
        """Reorder to a new target list: rows[i] is the old row of new target i, -1 if new."""
        return StartupMemory(take_rows(self.key, rows, 0), take_rows(self.created_s, rows, np.nan),
                             take_rows(self.ready_s, rows, np.nan))

def observed_startups(created_s: np.ndarray, ready_s: np.ndarray, ready: np.ndarray, now: float,
                      sp: StartupParams = DEFAULT_STARTUP) -> np.ndarray:
    """(P,) bool: which pods show a start-up (see the module docstring for what is skipped).

    created_s, ready_s: (P,) creation time and last Ready change, epoch s (NaN unset); ready:
    (P,) the Ready condition is True."""
    created_s, ready_s = np.asarray(created_s, np.float64), np.asarray(ready_s, np.float64)
    with np.errstate(invalid="ignore"):
        span = ready_s - created_s
        return (np.asarray(ready, bool) & np.isfinite(span) & (span > 0) & (span <= sp.max_plausible_s)
                & (ready_s <= now))


def cycle_due(ready: np.ndarray, exists: np.ndarray, last_ready: np.ndarray, dark_at: np.ndarray, last_cycle_s: float,
              read: np.ndarray, all_read: bool, now: float) -> np.ndarray:
    """One observer cycle's marks, in place, and the targets whose pods are due a read for start-ups.

    ready, exists: (N,) this cycle's Ready pods (float) and whether each target exists;
    last_ready: (N,) the Ready pods at the previous cycle (``last_cycle_s``), set to ``ready``;
    dark_at: (N,) the last cycle at which each target had lost every Ready pod: set to ``now`` for
    the existing targets with none now that had some at the last cycle, or were dark then too;
    read: (N,) bool, the target's pods were read before (``all_read``: all were). Returns (D,)
    int64 ascending: the existing targets whose Ready count rose, or not read yet. In one
    compiled pass where the kernels run (startup_compiled.try_cycle_due), else numpy."""
    due = startup_compiled.try_cycle_due(ready, exists, last_ready, dark_at, last_cycle_s, read, all_read, now)
    if due is not None:
        return due
    no_ready = ready == 0
    if no_ready.any():  # most cycles every target has a Ready pod: nothing can be dark
        dark = exists & no_ready & ((last_ready > 0) | (dark_at == last_cycle_s))
        dark_at[dark] = now
    rose = ready > last_ready
    due = np.flatnonzero(exists & (rose if all_read else ~read | rose))
    last_ready[:] = ready
    return due


def remember(memory: StartupMemory, target: np.ndarray, key: np.ndarray, created_s: np.ndarray,
             ready_s: np.ndarray, counted: np.ndarray) -> StartupMemory:
    """See :func:`remember_rows` (which also says which rows it recomputed)."""
    return remember_rows(memory, target, key, created_s, ready_s, counted)[0]


def remember_rows(memory: StartupMemory, target: np.ndarray, key: np.ndarray, created_s: np.ndarray,
                  ready_s: np.ndarray, counted: np.ndarray, *, in_place: bool = False
                  ) -> tuple[StartupMemory, np.ndarray]:
    """The memory with the counted pods' start-ups added: per target the newest K by Ready time.
    A pod (same target and key) counts once, with its earliest Ready time: its first start-up,
    not a later return to Ready.

    target: (P,) row of each pod; key: (P,) int64 pod identities; created_s, ready_s: (P,)
    epoch s; counted: (P,) bool (``observed_startups``). Only the rows of counted pods are
    recomputed (rows are independent; a cycle usually sees new pods of a few targets): they
    are returned too, (R,) int64 ascending (the memory itself when there are none).
    ``in_place``: write the rows into ``memory``'s own arrays (no (N, K) copies: its owner
    keeps no other view of them); the memory returned is still a new object over them."""
    n = memory.created_s.shape[0]
    pick = np.flatnonzero(counted)  # the counted pods of a row in [0, N): one gather per array below
    target = np.asarray(target, np.int64)[pick]
    inside = (target >= 0) & (target < n)
    if not inside.all():
        pick, target = pick[inside], target[inside]
    if not pick.size:
        return memory, np.zeros(0, np.int64)
    key, created_s, ready_s = (np.asarray(key, np.int64)[pick], np.asarray(created_s, np.float64)[pick],
                               np.asarray(ready_s, np.float64)[pick])
    out = (StartupMemory(memory.key, memory.created_s, memory.ready_s) if in_place else
           StartupMemory(memory.key.copy(), memory.created_s.copy(), memory.ready_s.copy()))
    rows = startup_compiled.try_remember(out.key, out.created_s, out.ready_s, target, key, created_s, ready_s)
    if rows is not None:  # the compiled merge (None: kernels off)
        return out, rows
    rows = np.unique(target)
    sub = _merge(StartupMemory(memory.key[rows], memory.created_s[rows], memory.ready_s[rows]),
                 np.searchsorted(rows, target), key, created_s, ready_s)
    out.key[rows], out.created_s[rows], out.ready_s[rows] = sub.key, sub.created_s, sub.ready_s
    return out, rows


def learn_rows(memory: StartupMemory, target: np.ndarray, key: np.ndarray, created_s: np.ndarray,
               ready_s: np.ndarray, ready: np.ndarray, now: float, dark_at: np.ndarray,
               sp: StartupParams = DEFAULT_STARTUP) -> tuple[StartupMemory, np.ndarray]:
    """``remember_rows(memory, ..., in_place=True)`` of the pods that show a start-up
    (:func:`observed_startups`) and became Ready after their target last went dark: not one
    whose creation -> Ready spans ``dark_at[target]`` (N,) (epoch s, NaN: never dark), the cycle
    at which its target had lost every Ready pod (a dependency down, not a slow start-up). In
    one compiled pass where the kernels run (core/scaling/startup_compiled.py), else numpy."""
    got = startup_compiled.try_learn(memory.key, memory.created_s, memory.ready_s, target, key, created_s, ready_s,
                                     ready, now, sp.max_plausible_s, dark_at)
    if got is not None:
        counted, rows = got
        return (StartupMemory(memory.key, memory.created_s, memory.ready_s), rows) if counted else (memory, rows)
    counted = observed_startups(created_s, ready_s, ready, now, sp)
    dark = dark_at[target]
    counted &= ~((created_s <= dark) & (dark < ready_s))
    return remember_rows(memory, target, key, created_s, ready_s, counted, in_place=True)


def learn_estimate(memory: StartupMemory, previous: StartupEstimate, target: np.ndarray, key: np.ndarray,
                   created_s: np.ndarray, ready_s: np.ndarray, ready: np.ndarray, now: float, dark_at: np.ndarray,
                   sp: StartupParams = DEFAULT_STARTUP) -> tuple[StartupMemory, StartupEstimate]:
    """:func:`learn_rows` (the memory written in place), then :func:`update_estimate` of the rows
    it changed, ``previous`` being ``estimate(memory, sp)`` of the memory before: the memory
    (the same object when no start-up counted) and its estimate (``previous`` itself then). A
    cycle's learning in one compiled pass where the kernels run, else numpy."""
    got = startup_compiled.try_learn_estimate(memory.key, memory.created_s, memory.ready_s, target, key, created_s,
                                              ready_s, ready, now, sp.max_plausible_s, dark_at, sp.quantile,
                                              sp.min_pods, (previous.delay_s, previous.pods, previous.low_s,
                                                            previous.high_s))
    if got is not None:
        counted, _, *arrays = got
        if not counted:
            return memory, previous
        return StartupMemory(memory.key, memory.created_s, memory.ready_s), StartupEstimate(*arrays)
    learned, rows = learn_rows(memory, target, key, created_s, ready_s, ready, now, dark_at, sp)
    return learned, (previous if learned is memory else update_estimate(previous, learned, rows, sp))


def _merge(memory: StartupMemory, t_new: np.ndarray, p_new: np.ndarray, c_new: np.ndarray,
           r_new: np.ndarray) -> StartupMemory:
    """``remember`` over every row of ``memory`` with the (P,) pods of rows ``t_new``."""
    n, k = memory.created_s.shape
    t = np.concatenate([np.repeat(np.arange(n), k), t_new])
    p = np.concatenate([memory.key.ravel(), p_new])
    c = np.concatenate([memory.created_s.ravel(), c_new])
    r = np.concatenate([memory.ready_s.ravel(), r_new])
    keep = np.isfinite(r) & (t >= 0) & (t < n)
    t, p, c, r = t[keep], p[keep], c[keep], r[keep]
    first = np.lexsort((r, p, t))  # per (target, pod) the earliest Ready first
    t, p, c, r = t[first], p[first], c[first], r[first]
    again = np.zeros(t.size, bool)
    again[1:] = (t[1:] == t[:-1]) & (p[1:] == p[:-1])
    t, p, c, r = t[~again], p[~again], c[~again], r[~again]
    order = np.lexsort((p, c, -r, t))  # by target, newest Ready first (ties: creation, key)
    t, p, c, r = t[order], p[order], c[order], r[order]
    start = np.searchsorted(t, np.arange(n))  # each target's first entry
    rank = np.arange(t.size) - start[t] if t.size else np.zeros(0, np.int64)
    fits = rank < k
    out_p, out_c, out_r = np.zeros((n, k), np.int64), np.full((n, k), np.nan), np.full((n, k), np.nan)
    out_p[t[fits], rank[fits]], out_c[t[fits], rank[fits]], out_r[t[fits], rank[fits]] = p[fits], c[fits], r[fits]
    return StartupMemory(out_p, out_c, out_r)


@direct_init
@dataclass(frozen=True)
class StartupEstimate:
    """(N,) per target: delay_s, the estimated start-up delay (s; NaN: fewer than min_pods
    start-ups seen); pods: start-ups it is computed from; low_s, high_s: their min and max."""

    delay_s: np.ndarray
    pods: np.ndarray
    low_s: np.ndarray
    high_s: np.ndarray


def estimate(memory: StartupMemory, sp: StartupParams = DEFAULT_STARTUP) -> StartupEstimate:
    """The ``sp.quantile`` of each target's remembered start-ups (linear interpolation between
    order statistics, so within [min, max] of them); NaN below ``sp.min_pods``."""
    spans = memory.ready_s - memory.created_s  # NaN for empty slots
    count = np.isfinite(spans).sum(axis=1)
    ranked = np.sort(np.where(np.isfinite(spans), spans, np.inf), axis=1)  # empty slots sort last
    n = count.size
    pos = sp.quantile * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    rows = np.arange(n)
    if ranked.shape[1] == 0 or n == 0:
        nan = np.full(n, np.nan)
        return StartupEstimate(nan, count, nan, nan.copy())
    a, b = ranked[rows, np.minimum(lo, ranked.shape[1] - 1)], ranked[rows, np.minimum(hi, ranked.shape[1] - 1)]
    frac = pos - lo
    with np.errstate(invalid="ignore"):
        value = np.where(hi > lo, np.clip(a + (b - a) * frac, a, b), a)  # clip: rounding never leaves [a, b]
    enough = (count >= max(sp.min_pods, 1))
    low = np.where(count > 0, ranked[:, 0], np.nan)
    high = np.where(count > 0, ranked[rows, np.maximum(count - 1, 0)], np.nan)
    return StartupEstimate(np.where(enough, value, np.nan), count, low, high)


def update_estimate(previous: StartupEstimate, memory: StartupMemory, rows: np.ndarray,
                    sp: StartupParams = DEFAULT_STARTUP) -> StartupEstimate:
    """``estimate(memory, sp)`` when only ``rows`` (R,) of ``memory`` changed since ``previous``
    was estimated (of the memory before, same targets): those rows are estimated again, the
    others copied (each row's estimate depends on that row only). A cycle usually adds start-ups
    to a few targets: estimating every target each cycle was most of the observer's time."""
    rows = np.asarray(rows, np.int64)
    if rows.size == 0:
        return previous
    out = StartupEstimate(previous.delay_s.copy(), previous.pods.copy(), previous.low_s.copy(), previous.high_s.copy())
    if startup_compiled.try_estimate_rows(memory.created_s, memory.ready_s, rows, sp.quantile, sp.min_pods,
                                          out.delay_s, out.pods, out.low_s, out.high_s):
        return out  # the compiled estimate (else: kernels off)
    sub = estimate(StartupMemory(memory.key[rows], memory.created_s[rows], memory.ready_s[rows]), sp)
    out.delay_s[rows], out.pods[rows], out.low_s[rows], out.high_s[rows] = sub.delay_s, sub.pods, sub.low_s, sub.high_s
    return out
