"""Scores of a simulated run, computed the same way for every controller.

Everything here is a pure numpy function of a :class:`~simulators.result.Trajectory` (arrays of
shape ``(T, S)``: T ticks, S services; times in seconds since the scenario start), the
:class:`~simulators.result.SLO` and the :class:`~simulators.result.FaultWindow` list.

Definitions (the docstrings below give the details):

- **violation** (per tick and service): latency percentile above the SLO threshold, or error
  ratio above the SLO ratio, or any request dropped. A NaN latency counts only under load.
- **SLO-violation minutes**: wall-clock minutes (bucket ``floor(t / 60)``) in which a service
  violates at some point, summed over services.
- **replica-hours**: the integral of spec replicas over time, hours, summed over services.
- **replica changes**: ticks at which a service's spec replicas differ from the previous tick.
- **reversals**: a change in the opposite direction of the same service's previous change,
  at most ``within_s`` (300 s) after it.
- **mitigation seconds** per fault: from the fault's start until its services are out of
  violation and stay out for ``hold_s`` (120 s).

The result.json layout (:func:`result_json`, ``schema_version`` 2: version 1 had no
``frontier``)::

    {"schema_version": 2,
     "scenario": {"name", "description", "duration_s", "tick_s", "seed", "policy_file",
                  "slo": {"latency_percentile", "latency_s", "error_ratio"},
                  "services": [...],
                  "faults": [{"name", "kind", "service", "start_s", "end_s"}],
                  "warnings": [{"file", "line", "field", "message"}]},  # valid, probably not meant
     "controllers": {NAME: {"description", "services": [the services it drove],
                            "note": why a policy drove other services than it names | "",
                            "slo_violation_minutes", "replica_hours",
                            "replica_changes", "reversals",
                            "mitigation_seconds": {FAULT: seconds | null},
                            "replica_hours_vs_oracle": ratio | null  # only with an oracle run
                            }},
     "frontier": null | {  # HPA swept over utilization targets (simulators/frontier.py)
        "hpa_policy": file,
        "points": [{"target_pct", "replica_hours", "slo_violation_minutes", "widened"}],  # by target
        "envelope": [same],  # lower monotone envelope, by ascending replica-hours
        "equal_cost": {NAME: {"replica_hours", "slo_violation_minutes",
                              "hpa_slo_violation_minutes": HPA's interpolated at those replica-hours,
                              "extrapolated": null | "below" | "above",
                              "ratio": minutes / HPA's | null (HPA's is 0),
                              "verdict": "win" | "tie" | "loss"}}}}
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

from controller.model import jsonable
from simulators import score_compiled
from simulators.result import SLO, ControllerRun, FaultWindow, Frontier, SimResult, Trajectory, shown_path

SCHEMA_VERSION = 2

#: Drops below this rate (requests/s) are float residue of the queue arithmetic, not drops.
DROP_TOLERANCE_RPS = 1e-9
#: Default window of a direction reversal (s) and hold time of a mitigation (s).
REVERSAL_WINDOW_S = 300.0
MITIGATION_HOLD_S = 120.0
#: Decimals of the floats in the scores.
DECIMALS = 3
#: Name of the baseline whose replica-hours are the floor.
ORACLE = "oracle"
#: Fault services meaning "every service" (FaultWindow.service is a single string).
ALL_SERVICES = ("", "*", "all")

SCORE_KEYS = ("slo_violation_minutes", "replica_hours", "replica_changes", "reversals", "mitigation_seconds")


# --- shapes and times -----------------------------------------------------------------------


def as_ticks_by_services(a: np.ndarray) -> np.ndarray:
    """View ``a`` as (T, S): a 1-d array is one service."""
    a = np.asarray(a)
    return a.reshape(-1, 1) if a.ndim == 1 else a


def tick_durations(t_s: np.ndarray, last_tick_s: float | None = None) -> np.ndarray:
    """How long each tick's state holds (s), shape (T,).

    Tick ``i`` holds until tick ``i + 1``; the last tick holds ``last_tick_s`` when given, else
    as long as the tick before it (0 for a single tick with no tick length given).
    """
    t = np.asarray(t_s, dtype=float)
    if t.size == 0:
        return np.zeros(0)
    if last_tick_s is None:
        last_tick_s = float(t[-1] - t[-2]) if t.size > 1 else 0.0
    return np.append(np.diff(t), last_tick_s)


def run_end_s(t_s: np.ndarray, last_tick_s: float | None = None) -> float:
    """End of the run (s): the last tick plus its duration."""
    t = np.asarray(t_s, dtype=float)
    return float(t[-1] + tick_durations(t, last_tick_s)[-1]) if t.size else 0.0


# --- per-tick violation ---------------------------------------------------------------------


def violation_mask(traj: Trajectory, slo: SLO) -> np.ndarray:
    """(T, S) bool: the ticks at which each service breaks the SLO.

    A tick violates when the latency percentile is above ``slo.latency_s``, or the error ratio
    is above ``slo.error_ratio``, or requests are dropped (``dropped_rps`` above a 1e-9 rps
    float tolerance). A NaN latency is a violation only when load is offered (an unanswerable
    service); with zero load there is nothing to be late, so it is not. A NaN error ratio is
    not a violation (no traffic to fail).
    """
    latency = as_ticks_by_services(traj.latency_s).astype(float, copy=False)  # read only
    offered = as_ticks_by_services(traj.offered_rps).astype(float, copy=False)
    fast = score_compiled.violation_mask(latency, offered, as_ticks_by_services(traj.error_ratio),
                                         as_ticks_by_services(traj.dropped_rps), slo.latency_s, slo.error_ratio,
                                         DROP_TOLERANCE_RPS)
    if fast is not None:  # one compiled pass, the same mask
        return fast
    with np.errstate(invalid="ignore"):
        slow = (latency > slo.latency_s) | (np.isnan(latency) & (offered > 0))
        failing = as_ticks_by_services(traj.error_ratio) > slo.error_ratio
        dropping = as_ticks_by_services(traj.dropped_rps) > DROP_TOLERANCE_RPS
    return slow | failing | dropping


# --- scores ---------------------------------------------------------------------------------


def slo_violation_minutes(t_s: np.ndarray, violation: np.ndarray, last_tick_s: float | None = None) -> float:
    """Minutes with an SLO violation, summed over services.

    ``t_s`` (T,) seconds, ``violation`` (T, S) bool. Minute ``m`` is the wall-clock bucket
    ``[60 m, 60 m + 60)``; it counts once for a service when any violating tick of that service
    falls in it. Ticks longer than a minute count every minute their state holds (tick ``i``
    holds over ``[t_i, t_{i+1})``), so a coarse tick is not under-counted; for ticks that divide
    a minute this is exactly ``floor(t / 60)`` bucketing.
    """
    v = as_ticks_by_services(violation).astype(bool)
    t = np.asarray(t_s, dtype=float)
    if t.size == 0 or not v.any():
        return 0.0
    first = np.floor(t / 60.0).astype(np.int64)
    ends = t + tick_durations(t, last_tick_s)
    # The last minute a tick touches is the one holding the instant just before its end.
    last = np.maximum(first, np.ceil(ends / 60.0).astype(np.int64) - 1)
    base = int(first.min())
    n_minutes = int(last.max()) - base + 1
    # Difference array per service: +1 where a violating span starts, -1 past where it ends.
    marks = np.zeros((n_minutes + 1, v.shape[1]), dtype=np.int64)
    ticks, services = np.nonzero(v)
    np.add.at(marks, (first[ticks] - base, services), 1)
    np.add.at(marks, (last[ticks] - base + 1, services), -1)
    return float(np.count_nonzero(np.cumsum(marks, axis=0)[:-1] > 0))


def replica_hours(t_s: np.ndarray, spec_replicas: np.ndarray, last_tick_s: float | None = None) -> float:
    """Integral of spec replicas over time, in replica-hours, summed over services.

    ``t_s`` (T,) seconds, ``spec_replicas`` (T, S). Each tick's value holds until the next
    tick; the last tick holds ``last_tick_s`` (default: the length of the tick before it).
    """
    spec = as_ticks_by_services(spec_replicas).astype(float)
    dt = tick_durations(t_s, last_tick_s)
    # an exactly rounded sum (not a dot product): the online scores get the same float
    return math.fsum((dt * spec.sum(axis=1)).tolist()) / 3600.0 if dt.size else 0.0


def replica_changes(spec_replicas: np.ndarray) -> int:
    """Ticks at which spec replicas differ from the tick before, summed over services.

    ``spec_replicas`` (T, S). The first tick is the starting point, not a change.
    """
    spec = as_ticks_by_services(spec_replicas)
    return int(np.count_nonzero(np.diff(spec, axis=0)))


def reversals(t_s: np.ndarray, spec_replicas: np.ndarray, within_s: float = REVERSAL_WINDOW_S) -> int:
    """Direction reversals: a change opposite to the service's previous change, close after it.

    ``t_s`` (T,) seconds, ``spec_replicas`` (T, S). A change at tick ``i`` (spec differs from
    tick ``i - 1``) is a reversal when the same service's previous change went the other way
    and happened at most ``within_s`` seconds earlier (``t_i - t_prev <= within_s``: 300 s
    counts, 301 s does not). Up-down-up within the window is two reversals.
    """
    spec = as_ticks_by_services(spec_replicas).astype(float)
    t = np.asarray(t_s, dtype=float)
    step = np.sign(np.diff(spec, axis=0))  # (T-1, S); change k happens at tick k + 1
    # Changes ordered by service then time, so consecutive entries of a service are neighbours.
    services, k = np.nonzero(step.T)
    direction = step[k, services]
    when = t[k + 1]
    same_service = services[1:] == services[:-1]
    opposite = direction[1:] != direction[:-1]
    close = (when[1:] - when[:-1]) <= within_s
    return int(np.count_nonzero(same_service & opposite & close))


def fault_columns(fault: FaultWindow, services: Sequence[str]) -> np.ndarray:
    """Column indices of the services a fault hits, ascending.

    ``fault.service`` is one service name, a comma-separated list, or ``""`` / ``"*"`` /
    ``"all"`` for every service. Unknown names hit nothing.
    """
    name = fault.service.strip()
    if name in ALL_SERVICES:
        return np.arange(len(services))
    wanted = {part.strip() for part in name.split(",")}
    return np.array([i for i, s in enumerate(services) if s in wanted], dtype=np.int64)


def mitigation_seconds(
    t_s: np.ndarray,
    violation: np.ndarray,
    fault: FaultWindow,
    services: Sequence[str],
    hold_s: float = MITIGATION_HOLD_S,
    last_tick_s: float | None = None,
) -> float | None:
    """Seconds from a fault's start until its services are back within the SLO for good.

    ``t_s`` (T,) seconds, ``violation`` (T, S) bool, ``services`` the S column names.
    The fault's services violate at a tick when any of them does. Definition:

    1. The fault **caused a violation** when its services violate at some tick in
       ``[start_s, end_s]`` (to the end of the run when ``end_s`` is None: a crash, a rollout
       or a leak owns every later violation of its services). If not, the result is ``0.0``.
    2. From the first such violating tick, the fault is **mitigated** at the first later tick
       ``t_m`` from which the services do not violate for ``hold_s`` seconds: every tick in
       ``[t_m, t_m + hold_s)`` is clean, and the run lasts until ``t_m + hold_s`` at least.
    3. The result is ``t_m - start_s``; ``None`` when no such tick exists before the end of the
       run (never mitigated, or recovered too late to prove the hold).
    """
    t = np.asarray(t_s, dtype=float)
    columns = fault_columns(fault, services)
    if t.size == 0 or columns.size == 0:
        return 0.0
    bad = as_ticks_by_services(violation)[:, columns].any(axis=1)
    window_end = math.inf if fault.end_s is None else fault.end_s
    in_window = (t >= fault.start_s) & (t <= window_end)
    caused = np.flatnonzero(bad & in_window)
    if caused.size == 0:
        return 0.0
    end = run_end_s(t, last_tick_s)
    # Time of the next violating tick at or after each tick (the run's end if none).
    next_bad = np.minimum.accumulate(np.where(bad, t, end)[::-1])[::-1]
    holds = ~bad & (next_bad - t >= hold_s) & (t + hold_s <= end)
    holds[: caused[0] + 1] = False
    mitigated = np.flatnonzero(holds)
    return float(t[mitigated[0]] - fault.start_s) if mitigated.size else None


# --- the same scores, online -----------------------------------------------------------------


def _exact_add(partials: list[float], values: list[float]) -> None:
    """Add ``values`` to the non-overlapping ``partials`` without rounding (Shewchuk's algorithm,
    the one math.fsum uses): ``math.fsum(partials)`` is then the exactly rounded total."""
    for x in values:
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]


class _Mitigation:
    """:func:`mitigation_seconds` of one fault, fed tick by tick in time order (chunks of ticks).

    After the first violating tick in the fault's window, a candidate is the first clean tick
    after a violating one; it is the mitigation when the next violating tick (or the run's end)
    is at least ``hold_s`` after it. Only the open candidate is kept: memory O(1)."""

    def __init__(self, fault: FaultWindow, columns: np.ndarray, hold_s: float):
        self.fault, self.columns, self.hold_s = fault, columns, hold_s
        self.window_end = math.inf if fault.end_s is None else fault.end_s
        self.caused = False
        self.previous_bad = False
        self.candidate: float | None = None
        self.mitigated_at: float | None = None

    def add(self, t: np.ndarray, violation: np.ndarray) -> None:
        if self.mitigated_at is not None or self.columns.size == 0:
            return
        bad = violation[:, self.columns].any(axis=1)
        if not self.caused:
            hits = np.flatnonzero(bad & (t >= self.fault.start_s) & (t <= self.window_end))
            if hits.size == 0:
                return
            self.caused, self.previous_bad, self.candidate = True, True, None
            t, bad = t[hits[0] + 1:], bad[hits[0] + 1:]
            if t.size == 0:
                return
        bad_at = np.flatnonzero(bad)
        if self.candidate is not None and bad_at.size:  # a clean run carried from the last chunk
            if t[bad_at[0]] - self.candidate >= self.hold_s:
                self.mitigated_at = self.candidate
                return
            self.candidate = None
        starts = np.flatnonzero(~bad & np.concatenate([[self.previous_bad], bad[:-1]]))
        nxt = np.searchsorted(bad_at, starts)
        has_next = nxt < bad_at.size
        held = has_next & (t[bad_at[np.minimum(nxt, max(bad_at.size - 1, 0))]] - t[starts] >= self.hold_s) \
            if bad_at.size else np.zeros(starts.size, dtype=bool)
        if held.any():
            self.mitigated_at = float(t[starts[np.argmax(held)]])
            return
        if starts.size and not has_next[-1]:
            self.candidate = float(t[starts[-1]])
        self.previous_bad = bool(bad[-1])

    def seconds(self, end_s: float) -> float | None:
        if self.columns.size == 0 or not self.caused:
            return 0.0
        c = self.mitigated_at
        if c is None and self.candidate is not None and end_s - self.candidate >= self.hold_s \
                and self.candidate + self.hold_s <= end_s:
            c = self.candidate
        return None if c is None else float(c - self.fault.start_s)


class OnlineScores:
    """The scores of :func:`score_run`, fed in time order by chunks of ticks: memory O(services).

    ``add(t_s (C,), violation (C, S) bool, spec_replicas (C, S))`` for consecutive chunks (the
    violation mask of :func:`violation_mask`), then ``finish()`` returns the same dict as
    :func:`score_run` on the whole run. Each tick is scored once the next one's time is known
    (a tick holds until the next); the last one holds ``tick_s`` (default: the tick before it).
    Every score is identical (replica-hours are an exactly rounded sum in both).
    """

    def __init__(self, slo: SLO, faults: Iterable[FaultWindow], services: Sequence[str], *,
                 tick_s: float | None = None, within_s: float = REVERSAL_WINDOW_S, hold_s: float = MITIGATION_HOLD_S):
        self.slo, self.tick_s, self.within_s = slo, tick_s, within_s
        S = len(services)
        self._mitigations = [_Mitigation(f, fault_columns(f, services), hold_s) for f in faults]
        # the last tick (its time, (1, S) mask, (1,) spec replicas' sum), its duration unknown
        self._pending: tuple[float, np.ndarray, np.ndarray] | None = None
        self._last_dt: float | None = None
        self._first_t: float | None = None
        self._counted_minute = np.full(S, np.iinfo(np.int64).min // 2, dtype=np.int64)  # last minute counted
        self._minutes = 0
        self._replica_s: list[float] = []  # replica-seconds, exactly: Shewchuk partials (as math.fsum's)
        self._previous_spec: np.ndarray | None = None
        self._changes = 0
        self._last_direction = np.zeros(S, dtype=np.int8)  # of each service's last change (0: none yet)
        self._last_change_s = np.zeros(S)
        self._reversals = 0
        self._ticks = 0

    def add(self, t_s: np.ndarray, violation: np.ndarray, spec_replicas: np.ndarray,
            spec_sums: np.ndarray | None = None) -> None:
        """``spec_sums`` (C,): each tick's spec replicas summed over services as numpy sums a
        contiguous row (the recorder's compiled pass has them); None: summed here."""
        t = np.asarray(t_s, dtype=float)
        if t.size == 0:
            return
        v = as_ticks_by_services(violation).astype(bool, copy=False)  # read only: no copy needed
        spec = as_ticks_by_services(spec_replicas).astype(float, copy=False)
        if spec_sums is None:  # the ticks' sums where they lie, the held-back tick's as its copy's (as before)
            spec_sums = np.concatenate([spec[:-1].sum(axis=1), spec[-1:].copy().sum(axis=1)])
        if self._first_t is None:
            self._first_t = float(t[0])
        self._ticks += t.size
        self._changes_and_reversals(t, spec)
        for m in self._mitigations:
            m.add(t, v)
        # the held-back tick, now that its successor's time is known, then this chunk's but its
        # last (scored in time order, as one chunk would be: np.diff of [pt, t...] in two parts)
        if self._pending is not None:
            pt, pv, psum = self._pending
            dt = np.array([t[0] - pt])
            self._last_dt = float(dt[-1])
            self._durations(np.array([pt]), dt, pv, psum)
        self._pending = (float(t[-1]), v[-1:].copy(), spec_sums[-1:].copy())
        if t.size > 1:
            dt = np.diff(t)
            self._last_dt = float(dt[-1])
            self._durations(t[:-1], dt, v[:-1], spec_sums[:-1])

    def _durations(self, t: np.ndarray, dt: np.ndarray, v: np.ndarray, spec_sums: np.ndarray) -> None:
        """Violation minutes and replica-hours of ticks whose durations are known (``spec_sums``
        (k,): their spec replicas summed over services)."""
        replica_s = dt * spec_sums
        if not score_compiled.exact_add(self._replica_s, replica_s):
            _exact_add(self._replica_s, replica_s.tolist())
        if not v.any():
            return
        minutes = score_compiled.violation_minutes(t, dt, v, self._counted_minute)
        if minutes is not None:  # per service in time order, the same count
            self._minutes += minutes
            return
        first = np.floor(t / 60.0).astype(np.int64)
        last = np.maximum(first, np.ceil((t + dt) / 60.0).astype(np.int64) - 1)
        floor = np.iinfo(np.int64).min // 2
        last_v = np.where(v, last[:, None], floor)
        # the last minute counted before each tick, per service (carried from earlier chunks)
        before = np.maximum.accumulate(np.vstack([self._counted_minute[None, :], last_v]), axis=0)[:-1]
        new = np.where(v, np.clip(last[:, None] - np.maximum(first[:, None], before + 1) + 1, 0, None), 0)
        self._minutes += int(new.sum())
        self._counted_minute = np.maximum(self._counted_minute, last_v.max(axis=0))

    def _changes_and_reversals(self, t: np.ndarray, spec: np.ndarray) -> None:
        t_changes = t if self._previous_spec is not None else t[1:]
        counts = score_compiled.changes_and_reversals(t_changes, self._previous_spec, spec, self._last_direction,
                                                      self._last_change_s, self.within_s)
        if counts is not None:  # per service in time order, the same counts
            self._previous_spec = spec[-1:].copy()
            self._changes += counts[0]
            self._reversals += counts[1]
            return
        spec_all = np.vstack([self._previous_spec, spec]) if self._previous_spec is not None else spec
        self._previous_spec = spec[-1:].copy()
        step = np.sign(np.diff(spec_all, axis=0)).astype(np.int8)  # row k: a change at t_changes[k]
        self._changes += int(np.count_nonzero(step))
        services, k = np.nonzero(step.T)
        if services.size == 0:
            return
        direction, when = step[k, services], t_changes[k]
        carried = np.unique(services)
        carried = carried[self._last_direction[carried] != 0]
        # each service's last change before this chunk first, then this chunk's in time order
        all_s = np.concatenate([carried, services])
        all_d = np.concatenate([self._last_direction[carried], direction])
        all_w = np.concatenate([self._last_change_s[carried], when])
        order = np.argsort(all_s, kind="stable")
        all_s, all_d, all_w = all_s[order], all_d[order], all_w[order]
        same = all_s[1:] == all_s[:-1]
        self._reversals += int(np.count_nonzero(same & (all_d[1:] != all_d[:-1]) & (all_w[1:] - all_w[:-1] <= self.within_s)))
        last = np.flatnonzero(np.append(~same, True))
        self._last_direction[all_s[last]], self._last_change_s[all_s[last]] = all_d[last], all_w[last]

    def _finish_pending(self) -> float:
        """Score the last tick; returns the run's end (s)."""
        if self._pending is None:
            return 0.0
        pt, pv, psum = self._pending
        dt = self.tick_s if self.tick_s is not None else (self._last_dt if self._last_dt is not None else 0.0)
        self._pending = None
        self._durations(np.array([pt]), np.array([dt]), pv, psum)
        self._end_s = pt + dt
        return self._end_s

    @property
    def replica_hours(self) -> float:
        """Unrounded replica-hours so far (all of them after :meth:`finish`)."""
        return math.fsum(self._replica_s) / 3600.0

    def finish(self) -> dict[str, Any]:
        """The scores (the dict of :func:`score_run`); call once, after the last chunk."""
        end_s = self._finish_pending()
        return {
            "slo_violation_minutes": _rounded(float(self._minutes)),
            "replica_hours": _rounded(self.replica_hours),
            "replica_changes": self._changes,
            "reversals": self._reversals,
            "mitigation_seconds": {m.fault.name: _rounded(m.seconds(end_s) if self._ticks else 0.0)
                                   for m in self._mitigations},
        }


# --- one run, one result --------------------------------------------------------------------


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(float(x), DECIMALS)


def score_run(
    run: ControllerRun,
    slo: SLO,
    faults: Iterable[FaultWindow],
    services: Sequence[str],
    *,
    tick_s: float | None = None,
    within_s: float = REVERSAL_WINDOW_S,
    hold_s: float = MITIGATION_HOLD_S,
) -> dict[str, Any]:
    """The scores of one controller's run, as plain Python numbers.

    Keys: ``slo_violation_minutes`` (float), ``replica_hours`` (float), ``replica_changes``
    (int), ``reversals`` (int), ``mitigation_seconds`` ({fault name: seconds or None}).
    Floats are rounded to 3 decimals. The violation mask is recomputed from ``slo`` (not read
    from ``trajectory.violation``) so that every controller is judged by the same rule.
    ``tick_s`` is how long the last tick lasts (default: the tick before it). The ratio to a
    reference run is left to the caller: :func:`replica_hours_ratio_to`.
    """
    traj = run.trajectory
    violation = violation_mask(traj, slo)
    return {
        "slo_violation_minutes": _rounded(slo_violation_minutes(traj.t_s, violation, tick_s)),
        "replica_hours": _rounded(replica_hours(traj.t_s, traj.spec_replicas, tick_s)),
        "replica_changes": replica_changes(traj.spec_replicas),
        "reversals": reversals(traj.t_s, traj.spec_replicas, within_s),
        "mitigation_seconds": {
            f.name: _rounded(mitigation_seconds(traj.t_s, violation, f, services, hold_s, tick_s)) for f in faults
        },
    }


def replica_hours_ratio_to(scores: dict[str, Any], reference: dict[str, Any]) -> float | None:
    """``scores["replica_hours"] / reference["replica_hours"]`` rounded; None if undefined."""
    ref = reference.get("replica_hours")
    if not ref:
        return None
    return _rounded(scores["replica_hours"] / ref)


def _scores_of(run: ControllerRun, result: SimResult) -> dict[str, Any]:
    """Batch scores of the whole trajectory when the run kept it, else those computed online."""
    if run.trajectory is not None:
        return score_run(run, result.slo, result.faults, result.services, tick_s=result.tick_s)
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in run.scores.items() if k in SCORE_KEYS}


def _raw_replica_hours(run: ControllerRun, tick_s: float) -> float:
    if run.trajectory is not None:
        return replica_hours(run.trajectory.t_s, run.trajectory.spec_replicas, tick_s)
    return run.replica_hours_raw if run.replica_hours_raw is not None else run.scores["replica_hours"]


def score_result(result: SimResult) -> dict[str, dict[str, Any]]:
    """Scores of every run of ``result`` by controller name (in run order), with
    ``replica_hours_vs_oracle`` added when an ``oracle`` run exists. A run without its whole
    trajectory (a long simulation) has the scores computed online while it ran."""
    scores = {name: _scores_of(run, result) for name, run in result.runs.items()}
    if ORACLE in scores:
        # The ratio from unrounded replica-hours: short runs have few replica-hours.
        raw = {name: {"replica_hours": _raw_replica_hours(run, result.tick_s)} for name, run in result.runs.items()}
        for name, s in scores.items():
            s["replica_hours_vs_oracle"] = replica_hours_ratio_to(raw[name], raw[ORACLE])
    return scores


def worst_mitigation_s(mitigations: dict[str, float | None]) -> float | None:
    """The longest mitigation time (s); ``inf`` when a fault was never mitigated, None with no
    faults. One number for a table column."""
    if not mitigations:
        return None
    values = list(mitigations.values())
    return math.inf if any(v is None for v in values) else max(values)


def score_table(result: SimResult) -> list[dict[str, Any]]:
    """Rows for the terminal table, one per controller in run order.

    Each row: ``controller``, ``description``, ``slo_violation_minutes``, ``replica_hours``,
    ``replica_hours_vs_oracle`` (None without an oracle run), ``replica_changes``,
    ``reversals``, ``worst_mitigation_s`` (None without faults; ``inf`` when a fault was never
    mitigated), ``mitigation_seconds`` ({fault: seconds or None}), ``services`` (the services it
    drove), ``note`` (why a policy drove other services than it names, or '') and, with a frontier,
    ``hpa_equal_cost`` (:class:`~simulators.result.EqualCost` or None for HPA itself).
    """
    rows = []
    equal = result.frontier.equal_cost if result.frontier is not None else {}
    for name, s in score_result(result).items():
        rows.append({
            "controller": name,
            "description": result.runs[name].description,
            "slo_violation_minutes": s["slo_violation_minutes"],
            "replica_hours": s["replica_hours"],
            "replica_hours_vs_oracle": s.get("replica_hours_vs_oracle"),
            "replica_changes": s["replica_changes"],
            "reversals": s["reversals"],
            "worst_mitigation_s": worst_mitigation_s(s["mitigation_seconds"]),
            "mitigation_seconds": s["mitigation_seconds"],
            "hpa_equal_cost": equal.get(name),
            "services": list(result.runs[name].services),
            "note": result.runs[name].note,
        })
    return rows


def driven_lines(rows: list[dict[str, Any]], services: list[str]) -> list[str]:
    """What the score table says below it about the services each controller drove."""
    every = [r["controller"] for r in rows if list(r["services"]) == list(services)]
    lines = []
    if every:
        lines.append(f"Driven services: {', '.join(services)} (by {', '.join(every)}).")
    lines += [f"{r['controller']} drives {', '.join(r['services']) or 'nothing'}." for r in rows
              if r["controller"] not in every]
    lines += [f"note: {r['controller']}: {r['note']}." for r in rows if r["note"]]
    return lines


def health_action_lines(run: ControllerRun, policy: str, limit: int, scales: bool = False) -> list[str]:
    """What a health-only ``policy`` did in ``run`` (beside a scaler, whose own scale actions are
    left out), one line per action (time since the start, target, action, reason), the first
    ``limit`` of them, under a line that counts them by kind. ``scales``: the policy scales too,
    and its scale actions (its scaling's, or a check's scale-up: one kind) are left out."""
    actions = [a for a in run.actions if a.policy == policy and not (scales and a.kind == "scale")]
    thinned = f"; {run.actions_dropped} more actions of the run not kept" if run.actions_dropped else ""
    if not actions:
        return [f"Health actions of {policy} ({run.name}): none{thinned}."]
    kinds = Counter(a.kind for a in actions)
    counted = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    lines = [f"Health actions of {policy} ({run.name}): {len(actions)} ({counted}){thinned}:"]
    for a in actions[:limit]:
        lines.append(f"  {f't={a.t_s:.0f}s':<8} {a.service}  {_action_word(a)}  {a.reason}")
    if len(actions) > limit:
        lines.append(f"  ... and {len(actions) - limit} more")
    return lines


def _action_word(a) -> str:
    """An action as the list names it: a health scale-up with its counts (``scale 10 -> 12``)."""
    if a.kind == "scale" and a.from_replicas is not None and a.to_replicas is not None:
        return f"scale {a.from_replicas} -> {a.to_replicas}"
    return a.kind


# --- result.json ----------------------------------------------------------------------------


def scenario_metadata(result: SimResult) -> dict[str, Any]:
    """The scenario part of result.json."""
    return {
        "name": result.scenario,
        "description": result.description,
        "duration_s": result.duration_s,
        "tick_s": result.tick_s,
        "seed": result.seed,
        "policy_file": result.policy_file,
        "slo": {
            "latency_percentile": result.slo.latency_percentile,
            "latency_s": result.slo.latency_s,
            "error_ratio": result.slo.error_ratio,
        },
        "services": list(result.services),
        "faults": [
            {"name": f.name, "kind": f.kind, "service": f.service, "start_s": f.start_s, "end_s": f.end_s}
            for f in result.faults
        ],
        "warnings": warnings_json(result.warnings),
    }


def warnings_json(warnings) -> list[dict[str, Any]]:
    """A scenario's warnings (FieldError) as ``setpoint validate --format json`` lists a policy's:
    file (as shown: never a local absolute path), line, field, message (without "warning: ")."""
    return [w.to_json(shown_path(w.file)) for w in warnings]


def frontier_json(frontier: Frontier) -> dict:
    """The ``frontier`` section of result.json (see the module docstring)."""
    point = lambda p: {"target_pct": p.target_pct, "replica_hours": p.replica_hours,  # noqa: E731
                       "slo_violation_minutes": p.slo_violation_minutes, "widened": p.widened}
    return {
        "hpa_policy": frontier.hpa_policy,
        "points": [point(p) for p in frontier.points],
        "envelope": [point(p) for p in frontier.envelope],
        "equal_cost": {
            name: {"replica_hours": e.replica_hours, "slo_violation_minutes": e.slo_violation_minutes,
                   "hpa_slo_violation_minutes": e.hpa_slo_violation_minutes, "extrapolated": e.extrapolated,
                   "ratio": e.ratio, "verdict": e.verdict}
            for name, e in frontier.equal_cost.items()
        },
    }


def result_json(result: SimResult) -> dict[str, Any]:
    """The machine-readable result (see the module docstring for the layout).

    Only plain JSON types: ``json.dumps(result_json(r), allow_nan=False)`` always works.
    """
    controllers = {
        name: {"description": result.runs[name].description, "services": list(result.runs[name].services),
               "note": result.runs[name].note, **scores}
        for name, scores in score_result(result).items()
    }
    return jsonable({
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario_metadata(result),
        "controllers": controllers,
        "frontier": frontier_json(result.frontier) if result.frontier is not None else None,
    })
