"""Health checks as Prometheus alert state machines with hysteresis, for many rows at once.

A check's state per row (a target, or a pod) is a :class:`~controller.core.health.params.Phase`:

    OK --unhealthy holds--> PENDING --held for unhealthy_for_s--> FIRING
    PENDING --unhealthy stops holding--> OK
    FIRING --recovered held for recovered_for_s--> OK

A value in the hysteresis band (neither unhealthy nor recovered) keeps FIRING and restarts the
recovery timer; a PENDING check that sees such a value goes back to OK (the condition stopped
holding). ``unhealthy_for_s == 0`` fires on the first unhealthy sample.

Missing data (no series, or a non-finite value) never fires a check unless the check says
``fire_on_missing``, in which case a missing sample counts as unhealthy (and not recovered).
Otherwise a missing sample *freezes* that row's state machine: no transition at all, the
timers keep their start times. So a gap never clears a firing check (the "resolved" alert of
an absent series is not a recovery), never fires a pending one, and a condition seen before
and after a gap counts as having held through it.

Shapes: R rows (N targets, or P pods), C checks of one scope. Workload-scope checks read one
value per target, (N, Cw); pod-scope checks read a flat pod table, (P, Cp), whose state is
keyed by pod name so that pods may come and go between cycles (:func:`match_keys`).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from controller.core.history import put_rows, row_pick, take_rows
from controller.core.health import keys_compiled
from controller.core.health.params import CheckParams, Direction, HealthParams, Phase
from controller.core.scaling.params import Smoothing
from controller.core.scaling.smooth import SmoothState, smooth_ewma, smooth_window

_OK, _PENDING, _FIRING = int(Phase.OK), int(Phase.PENDING), int(Phase.FIRING)


def _empty_smooth(r: int, slots: int) -> SmoothState:
    return SmoothState(np.full((r, 1), np.nan), np.full((r, 1), np.nan), np.zeros((r, 1, slots)),
                       np.full((r, 1, slots), np.nan))


@dataclass(frozen=True)
class CheckTable:
    """The alert state of C checks for R rows.

    phase: (R, C) int8 Phase. active_since: (R, C) start of the current unhealthy episode
    (when it went PENDING; Prometheus' activeAt), NaN when OK. fired_at: (R, C) when it went
    FIRING, NaN otherwise. recovering_since: (R, C) since when the recovered condition has held
    while FIRING, NaN otherwise. changed_at: (R, C) time of the last phase change, NaN before
    the first. smooth: one SmoothState per check, each (R, 1[, W]).
    """

    phase: np.ndarray
    active_since: np.ndarray
    fired_at: np.ndarray
    recovering_since: np.ndarray
    changed_at: np.ndarray
    smooth: tuple[SmoothState, ...]

    @classmethod
    def empty(cls, r: int, checks: tuple[CheckParams, ...], interval_s: float) -> "CheckTable":
        c = len(checks)
        nan = np.full((r, c), np.nan)
        return cls(np.zeros((r, c), np.int8), nan, nan.copy(), nan.copy(), nan.copy(),
                   tuple(_empty_smooth(r, ch.sample_slots(interval_s)) for ch in checks))

    @property
    def rows(self) -> int:
        return self.phase.shape[0]

    def take(self, rows: np.ndarray) -> "CheckTable":
        """Reorder to a new row list: rows[i] is the old row of new row i, -1 for a new (OK) row."""
        rows = row_pick(rows)  # read once for every array
        return CheckTable(take_rows(self.phase, rows, 0), take_rows(self.active_since, rows, np.nan),
                          take_rows(self.fired_at, rows, np.nan), take_rows(self.recovering_since, rows, np.nan),
                          take_rows(self.changed_at, rows, np.nan),
                          tuple(s.take(rows) for s in self.smooth))

    def put(self, rows: np.ndarray, other: "CheckTable") -> "CheckTable":
        """This table with ``rows`` (K,) replaced by ``other``'s K rows (the same checks)."""
        return put_rows(self, other, rows)


def smooth_checks(checks: tuple[CheckParams, ...], values: np.ndarray, usable: np.ndarray,
                  states: tuple[SmoothState, ...], now: float) -> tuple[np.ndarray, tuple[SmoothState, ...]]:
    """(R, C) smoothed values, each check with its own smoothing. Unusable samples never enter."""
    out = np.array(values, dtype=np.float64, copy=True)
    new_states = []
    for j, (check, st) in enumerate(zip(checks, states)):  # C is small: one vectorized call per check
        v, u = values[:, j:j + 1], usable[:, j:j + 1]
        if check.smoothing == Smoothing.NONE:
            new_states.append(st)
            continue
        if check.smoothing == Smoothing.EWMA:
            sm, st = smooth_ewma(v, u, st, now, check.half_life_s)
        else:
            sm, st = smooth_window(v, u, st, now, check.window_s, check.smoothing, check.percentile)
        out[:, j] = sm[:, 0]
        new_states.append(st)
    return out, tuple(new_states)


class CheckColumns(NamedTuple):
    """The thresholds and durations of C checks as (C,) arrays (read-only: shared between calls)."""

    above: np.ndarray
    unhealthy: np.ndarray
    recovered: np.ndarray
    fire_on_missing: np.ndarray
    unhealthy_for_s: np.ndarray
    recovered_for_s: np.ndarray


@functools.lru_cache(maxsize=64)
def check_columns(checks: tuple[CheckParams, ...]) -> CheckColumns:
    """``checks``' columns, built once per tuple of checks (a policy's are the same every cycle)."""
    columns = CheckColumns(np.asarray([c.direction == Direction.ABOVE for c in checks], bool),
                           np.asarray([c.unhealthy for c in checks], np.float64),
                           np.asarray([c.recovered for c in checks], np.float64),
                           np.asarray([c.fire_on_missing for c in checks], bool),
                           np.asarray([c.unhealthy_for_s for c in checks], np.float64),
                           np.asarray([c.recovered_for_s for c in checks], np.float64))
    for a in columns:
        a.flags.writeable = False
    return columns


def conditions(checks: tuple[CheckParams, ...], smoothed: np.ndarray, usable: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bad, good, frozen), each (R, C) bool, from smoothed values and their usability.

    bad: the unhealthy condition holds (or the sample is missing and the check fires on
    missing data); good: the recovered condition holds; frozen: the sample is missing and the
    check ignores missing data. Comparisons are strict: sitting on a threshold meets neither.
    """
    above, unhealthy, recovered, fire_on_missing, _, _ = check_columns(tuple(checks))
    ok = usable & np.isfinite(smoothed)
    with np.errstate(invalid="ignore"):
        bad = ok & np.where(above, smoothed > unhealthy, smoothed < unhealthy)
        good = ok & np.where(above, smoothed < recovered, smoothed > recovered) & ~bad
    missing = ~ok
    bad = bad | (missing & fire_on_missing)
    return bad, good, missing & ~fire_on_missing


def step_phases(checks: tuple[CheckParams, ...], table: CheckTable, bad: np.ndarray, good: np.ndarray,
                frozen: np.ndarray, now: float) -> CheckTable:
    """One evaluation of the alert state machines of R rows and C checks; pure."""
    phase = table.phase
    ok = phase == _OK
    if ok.all() and not bad.any():  # every row OK and staying so: no transition, no timer moves
        return CheckTable(phase.astype(np.int8, copy=False), table.active_since, table.fired_at,
                          table.recovering_since, table.changed_at, table.smooth)
    pending, firing = phase == _PENDING, phase == _FIRING
    unhealthy_for, recovered_for = check_columns(tuple(checks))[4:]

    start = ok & bad
    active = np.where(start, now, table.active_since)
    to_firing = (pending | start) & bad & (now - active >= unhealthy_for)
    pending_to_ok = pending & ~bad & ~frozen

    rec = table.recovering_since
    rec = np.where(firing & good, np.where(np.isnan(rec), now, rec), np.where(firing & ~frozen, np.nan, rec))
    firing_to_ok = firing & good & (now - rec >= recovered_for)

    new_phase = np.where(to_firing, _FIRING, np.where(start, _PENDING, phase))
    cleared = pending_to_ok | firing_to_ok
    new_phase = np.where(cleared, _OK, new_phase).astype(np.int8)
    fired_at = np.where(to_firing, now, table.fired_at)
    nan = np.nan
    return CheckTable(
        phase=new_phase,
        active_since=np.where(cleared, nan, active),
        fired_at=np.where(cleared, nan, fired_at),
        recovering_since=np.where(cleared, nan, rec),
        changed_at=np.where(new_phase != phase, now, table.changed_at),
        smooth=table.smooth,
    )


def evaluate(checks: tuple[CheckParams, ...], values: np.ndarray, present: np.ndarray, table: CheckTable,
             now: float) -> tuple[np.ndarray, np.ndarray, CheckTable]:
    """Smooth and step R rows of C checks. Returns (raw (R, C) NaN where unusable, smoothed, table).

    values: (R, C) samples; present: (R, C) bool, a series existed (a non-finite value counts as
    missing too).
    """
    values = np.asarray(values, dtype=np.float64).reshape(table.rows, len(checks))
    usable = np.asarray(present, bool).reshape(values.shape) & np.isfinite(values)
    raw = np.where(usable, values, np.nan)
    smoothed, smooth_states = smooth_checks(checks, raw, usable, table.smooth, now)
    bad, good, frozen = conditions(checks, smoothed, usable)
    stepped = step_phases(checks, table, bad, good, frozen, now)
    return raw, smoothed, CheckTable(stepped.phase, stepped.active_since, stepped.fired_at,
                                     stepped.recovering_since, stepped.changed_at, smooth_states)


def replay(checks: tuple[CheckParams, ...], values: np.ndarray, present: np.ndarray, t_s: np.ndarray,
           table: CheckTable) -> tuple[CheckTable, np.ndarray]:
    """Step R rows of C checks over a history: values, present (T, R, C) at the times t_s (T,),
    from ``table``. Returns (the table after the last time, (R,) the last time any check was
    FIRING, NaN if none was). The shell's warm start of the checks (runtime/check_history.py)."""
    last = np.full(table.rows, np.nan)
    for k in range(t_s.size):
        _, _, table = evaluate(checks, values[k], present[k], table, float(t_s[k]))
        last = np.where((table.phase == _FIRING).any(axis=1), t_s[k], last)
    return table, last


# --- pod scope -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodTable:
    """The pods of a policy's targets at ``now``, as a flat table.

    row: (P,) int target index of each pod; keys: (P,) str, unique within the policy (e.g.
    ``namespace/pod-name``); ready: (P,) bool; values, present: (P, C) for all C checks of the
    policy in check order (only the pod-scope columns are read); born: (P,) epoch s the pod was
    created (metadata.creationTimestamp), NaN unknown: a pod that comes back under its name (a
    StatefulSet's) is another pod when it differs; blocks_rollout: (P,) bool, the pod's workload
    rollout waits for it and would replace it once it is Ready, which it never becomes by itself (a
    StatefulSet's pod off the update revision, not Ready); its restart is what the rollout needs.
    new_revision: (P,) bool, the pod runs its workload's current (newest: a StatefulSet's update)
    revision, the one a revision check tests; None: unknown (every pod counts as on it).
    not_ready_since: (P,) epoch s the pod's Ready condition last changed (its lastTransitionTime;
    for a pod not Ready: since when it has not been), NaN unknown (then its creation, or its first
    sighting, stands in); None: all unknown. running: (P,) bool, the pod runs (phase Running, no
    container waiting to start again: not Pending, not in CrashLoopBackOff); None: every pod runs.
    Both feed the hung-pod checks (controller/core/health/hung.py).
    condemned: (P,) bool, the pod is one its StatefulSet's scale-down removes (ordinal at or above
    spec.replicas: deleted, never recreated): restart-pod leaves it be; None: none is.
    """

    row: np.ndarray
    keys: np.ndarray
    ready: np.ndarray
    values: np.ndarray
    present: np.ndarray
    born: np.ndarray | None = None
    blocks_rollout: np.ndarray | None = None
    new_revision: np.ndarray | None = None
    not_ready_since: np.ndarray | None = None
    running: np.ndarray | None = None
    condemned: np.ndarray | None = None

    @classmethod
    def of(cls, row, keys, values, present=None, ready=None, checks: int | None = None, born=None,
           blocks_rollout=None, new_revision=None, not_ready_since=None, running=None, condemned=None
           ) -> "PodTable":
        """Build with defaults: every pod ready and running, every series present where finite,
        birth and Ready transition unknown, the revision of each pod unknown, none condemned."""
        row = np.asarray(row, dtype=np.int64).reshape(-1)
        keys = np.asarray(keys, dtype=str)
        keys = keys if keys.ndim == 1 else keys.reshape(-1)  # a shell's kept (P,) keys stay that object
        # (PodState.reindex's shortcut: the same keys object as the last cycle's is the same pods)
        c = checks if checks is not None else (np.asarray(values).shape[-1] if np.asarray(values).ndim == 2 else 0)
        values = np.asarray(values, dtype=np.float64).reshape(row.size, c)
        present = np.isfinite(values) if present is None else np.asarray(present, bool).reshape(values.shape)
        ready = np.ones(row.size, bool) if ready is None else np.asarray(ready, bool).reshape(-1)
        born = np.full(row.size, np.nan) if born is None else np.asarray(born, np.float64).reshape(-1)
        blocks = np.zeros(row.size, bool) if blocks_rollout is None else np.asarray(blocks_rollout, bool).reshape(-1)
        on_new = None if new_revision is None else np.asarray(new_revision, bool).reshape(-1)
        since = None if not_ready_since is None else np.asarray(not_ready_since, np.float64).reshape(-1)
        runs = None if running is None else np.asarray(running, bool).reshape(-1)
        condemned = None if condemned is None else np.asarray(condemned, bool).reshape(-1)
        return cls(row, keys, ready, values, present, born, blocks, on_new, since, runs, condemned)

    @classmethod
    def empty(cls, c: int) -> "PodTable":
        return cls.of(np.zeros(0, np.int64), np.zeros(0, str), np.zeros((0, c)), checks=c)

    @property
    def size(self) -> int:
        return self.row.shape[0]


def match_keys(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """(len(new),) index of each new key in ``old`` (of the first, if twice), -1 where absent. Keys
    must be unique."""
    return _matched(old, new)[0]


def _matched(old: np.ndarray, new: np.ndarray, old_rows: dict[str, int] | None = None
             ) -> tuple[np.ndarray, dict[str, int] | None]:
    """``match_keys``, and {key: row} of ``new`` (None from the compiled match, which needs none:
    ``new`` was found unique all the same). Looked up in a dict of the keys (a sort of P strings,
    or two, cost a few times more), read as numpy compares them (trailing NULs dropped):
    ``old_rows``, {key: row} of ``old`` when known (the keys of a PodState a reindex made)."""
    new = np.asarray(new, dtype=str)
    old = np.asarray(old, dtype=str)
    found = keys_compiled.try_match_keys(old, new)  # None: the kernels are off, or a key twice (raised below)
    if found is not None:
        return found, None
    wanted = new.tolist()
    rows = dict(zip(wanted, range(new.size)))
    if len(rows) != new.size:
        raise ValueError(f"pod keys must be unique within a policy, got {new.size - np.unique(new).size} duplicates")
    if old.size == 0 or new.size == 0:
        return np.full(new.size, -1, dtype=np.int64), rows
    if old_rows is None:
        known = old.tolist()
        old_rows = dict(zip(reversed(known), range(len(known) - 1, -1, -1)))  # a key twice: its first row stays
    return np.fromiter(map(old_rows.get, wanted, itertools.repeat(-1, new.size)), np.int64, new.size), rows


@dataclass(frozen=True)
class PodState:
    """Pod-scope check state keyed by pod: keys (P,), first_seen (P,) epoch s, restarted_at (P,)
    epoch s the health side last restarted the pod (NaN never; for pods that keep their name),
    table (P, Cp), born (P,) epoch s the pod was created (NaN unknown; None: all unknown);
    unique: ``keys`` were found unique by ``reindex`` (which made this state); rows_of: {key: row}
    of them when that reindex made one (the dict path), None otherwise (the next reindex finds them
    if it needs them)."""

    keys: np.ndarray
    first_seen: np.ndarray
    restarted_at: np.ndarray
    table: CheckTable
    born: np.ndarray | None = None
    rows_of: dict[str, int] | None = field(default=None, repr=False, compare=False)
    unique: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def empty(cls, checks: tuple[CheckParams, ...], interval_s: float) -> "PodState":
        return cls(np.zeros(0, str), np.zeros(0), np.zeros(0), CheckTable.empty(0, checks, interval_s), np.zeros(0))

    def reindex(self, keys: np.ndarray, now: float, born: np.ndarray | None = None) -> "PodState":
        """The state of the pods ``keys`` (P,) created at ``born`` (P,) epoch s (NaN, or None:
        unknown): known pods keep theirs, new pods start OK, gone pods go. A pod that came back
        under a known name (a StatefulSet's, deleted and recreated) is a new pod when both
        creation times are known and differ: its checks start afresh (OK, no smoothing history),
        as a Deployment's replacement does under its new name; only ``restarted_at`` carries over
        (the verification of the restart that replaced it reads it)."""
        keys = np.asarray(keys, dtype=str)
        kept = self._same_pods(keys, born)  # the common cycle: the same pods as the last one
        if kept is not None:
            return kept
        rows, rows_of = _matched(self.keys, keys, self.rows_of)
        n = rows.size
        born = np.full(n, np.nan) if born is None else np.asarray(born, np.float64).reshape(n)
        known = rows >= 0
        safe = np.maximum(rows, 0)
        old_born = self.born[safe] if self.born is not None and self.born.size else np.full(n, np.nan)
        reborn = known & np.isfinite(born) & np.isfinite(old_born) & (born != old_born)
        same = known & ~reborn
        first = np.where(same, self.first_seen[safe] if self.first_seen.size else now, now)
        restarted = np.where(known, self.restarted_at[safe] if self.restarted_at.size else np.nan, np.nan)
        # an unknown creation time keeps the one known before (a source that stops saying)
        born = np.where(same & np.isnan(born), old_born, born)
        return PodState(keys, first.astype(np.float64), restarted.astype(np.float64),
                        self.table.take(np.where(same, rows, -1)), born, rows_of, True)

    def _same_pods(self, keys: np.ndarray, born: np.ndarray | None) -> "PodState | None":
        """``reindex`` where ``keys`` (unique) are this state's own, in its order and every pod
        the same (none came back under its name): each keeps its row, no match nor reordering
        (the table is shared, never written in place); None otherwise (``reindex`` matches them)."""
        n = keys.size
        if self.keys.size != n or self.first_seen.size != n or self.restarted_at.size != n or (
                self.born is not None and self.born.size not in (0, n)):
            return None
        # the keys of a state a reindex made were found unique then: the same array object (a shell that
        # kept its pod table), or equal ones, are; others are checked
        if not (keys is self.keys and self.unique) and not (
                (self.keys == keys).all() and (self.unique or len(set(keys.tolist())) == n)):
            return None
        born = np.full(n, np.nan) if born is None else np.asarray(born, np.float64).reshape(n)
        old_born = self.born if self.born is not None and self.born.size else np.full(n, np.nan)
        if (np.isfinite(born) & np.isfinite(old_born) & (born != old_born)).any():
            return None
        return PodState(keys, self.first_seen.astype(np.float64), self.restarted_at.astype(np.float64), self.table,
                        np.where(np.isnan(born), old_born, born), self.rows_of, True)


# --- the target-level view -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckView:
    """Every check of a policy seen per target, (N, C) in check order.

    phase: a pod-scope check is FIRING on a target when any of its pods fires, else PENDING
    when any is pending. active_since / fired_at: for pod checks, the earliest among the pods
    in that phase. changed_at: for pod checks, the latest among the pods of their last change, or
    of their state's start when none (``_last_change``). raw / smoothed: for pod checks, the worst
    pod's (max for above, min for below). firing / pending: pods (or 1 for a workload check) in
    that phase; pods: the target's pods in the pod table (0 for workload checks).
    recovering_since: a firing workload check's clear in progress (its recovered condition
    holding since then), NaN otherwise and for pod checks.
    """

    phase: np.ndarray
    active_since: np.ndarray
    fired_at: np.ndarray
    changed_at: np.ndarray
    recovering_since: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray
    firing: np.ndarray
    pending: np.ndarray
    pods: np.ndarray

    @property
    def share_firing(self) -> np.ndarray:
        """(N, C) share of the target's pods firing (0 for workload checks)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.pods > 0, self.firing / np.maximum(self.pods, 1), 0.0)


def _reduce_at(ufunc, n: int, row: np.ndarray, values: np.ndarray, mask: np.ndarray | None, init: float
               ) -> np.ndarray:
    """(n,) ``ufunc`` of ``values`` (P,) over each target's pods (``row`` (P,)) where ``mask`` (P,)
    (None: every pod), ``init`` where none."""
    out = np.full(n, init)
    if mask is None:
        ufunc.at(out, row, values)
    elif mask.any():
        ufunc.at(out, row[mask], values[mask])
    return out


def _last_change(changed_at: np.ndarray, first_seen: np.ndarray | None) -> np.ndarray:
    """(P,) each pod's last phase change, epoch s; a pod whose state never changed since it
    started (a new pod, or one come back under its name: its checks start afresh) changed when it
    started. The latest over a target's pods is then since when every one of them has been in its
    phase: the firing pod restarted, its check reads ok since its replacement was first seen, not
    "-" (its own change left with it)."""
    if first_seen is None or first_seen.size != changed_at.size:
        return changed_at
    return np.where(np.isnan(changed_at), first_seen, changed_at)


def pod_view(checks: tuple[CheckParams, ...], n: int, row: np.ndarray, table: CheckTable, raw: np.ndarray,
             smoothed: np.ndarray, first_seen: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-target aggregates of the pod-scope checks, each (N, Cp). ``first_seen``: (P,) epoch s
    each pod's check state started (PodState.first_seen; None: unknown)."""
    cp = len(checks)
    out = {k: np.full((n, cp), np.nan) for k in ("active_since", "fired_at", "changed_at", "raw", "smoothed")}
    out["firing"] = np.zeros((n, cp), np.int64)
    out["pending"] = np.zeros((n, cp), np.int64)
    pods = np.bincount(row, minlength=n)[:n] if row.size else np.zeros(n, np.int64)
    for j, check in enumerate(checks):
        ph = table.phase[:, j]
        fire, pend = ph == _FIRING, ph == _PENDING
        out["firing"][:, j] = np.bincount(row[fire], minlength=n)[:n] if fire.any() else 0
        out["pending"][:, j] = np.bincount(row[pend], minlength=n)[:n] if pend.any() else 0
        active = fire | pend
        out["active_since"][:, j] = _reduce_at(np.fmin, n, row, table.active_since[:, j], active, np.nan)
        out["fired_at"][:, j] = _reduce_at(np.fmin, n, row, table.fired_at[:, j], fire, np.nan)
        out["changed_at"][:, j] = _reduce_at(np.fmax, n, row, _last_change(table.changed_at[:, j], first_seen),
                                             None, np.nan)
        worst = np.fmax if check.direction == Direction.ABOVE else np.fmin
        out["raw"][:, j] = _reduce_at(worst, n, row, raw[:, j], None, np.nan)
        out["smoothed"][:, j] = _reduce_at(worst, n, row, smoothed[:, j], None, np.nan)
    phase = np.where(out["firing"] > 0, _FIRING, np.where(out["pending"] > 0, _PENDING, _OK)).astype(np.int8)
    out["phase"] = phase
    out["pods"] = np.repeat(pods[:, None], cp, axis=1).astype(np.int64)
    return out


def check_view(params: HealthParams, n: int, wtable: CheckTable, wraw: np.ndarray, wsmoothed: np.ndarray,
               pods: dict[str, np.ndarray]) -> CheckView:
    """Assemble the (N, C) view from the workload table (N, Cw) and the pod aggregates (N, Cp)."""
    c = len(params.checks)
    wc, pc = params.workload_columns, params.pod_columns
    fields = {}
    for name, fill, dtype in (("phase", 0, np.int8), ("active_since", np.nan, float), ("fired_at", np.nan, float),
                              ("changed_at", np.nan, float), ("raw", np.nan, float), ("smoothed", np.nan, float),
                              ("firing", 0, np.int64), ("pending", 0, np.int64), ("pods", 0, np.int64)):
        fields[name] = np.full((n, c), fill, dtype=dtype)
        fields[name][:, pc] = pods[name]
    fields["recovering_since"] = np.full((n, c), np.nan)
    fields["recovering_since"][:, wc] = wtable.recovering_since
    fields["phase"][:, wc] = wtable.phase
    fields["active_since"][:, wc] = wtable.active_since
    fields["fired_at"][:, wc] = wtable.fired_at
    fields["changed_at"][:, wc] = wtable.changed_at
    fields["raw"][:, wc] = wraw
    fields["smoothed"][:, wc] = wsmoothed
    fields["firing"][:, wc] = wtable.phase == _FIRING
    fields["pending"][:, wc] = wtable.phase == _PENDING
    return CheckView(**fields)


def firing_pod_mask(params: HealthParams, pods: PodState, row: np.ndarray, trigger: np.ndarray) -> np.ndarray:
    """(P,) bool: the pod fires the pod-scope check ``trigger[row]`` of its target.

    trigger: (N,) check index per target, -1 for none or a workload check.
    """
    if row.size == 0:
        return np.zeros(0, bool)
    pod_col = np.full(len(params.checks) + 1, -1, dtype=np.int64)  # last entry: trigger -1
    pod_col[params.pod_columns] = np.arange(params.pod_columns.size)
    col = pod_col[trigger[row]]
    has = col >= 0
    phase = np.zeros(row.size, np.int8)
    phase[has] = pods.table.phase[np.flatnonzero(has), col[has]]
    return has & (phase == _FIRING)
