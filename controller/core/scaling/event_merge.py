"""The union of two scale-event histories of the same targets, for the rate limits.

After a restart or a failover the rate limits' history (NormState.up_* / down_*: per target,
replica changes and their times) comes from two places: what the new leader rebuilt or kept in
memory (the warm start's replay of Prometheus, or its own events from an earlier leadership),
and the events the leaders applied as kept on the cluster (controller/runtime/scale_events_state.py).
Each may miss events the other has: the replay misses the old leader's last steps, the record
misses a step whose save failed. The rate limits need every step of the last period, so the
history is their union, with each change seen in both counted once.

Rules (per target and direction; pure, no clock: ``now`` is given):

- an event is a positive change at a time; a time after ``now`` (a leader's clock ahead, a bad
  record) counts as ``now`` (it still binds for one period, no longer); an event ``period_s`` or
  more old is dropped (the rate limits count ages strictly below a period, limit.py);
- two events, one from each history, less than ``tolerance_s`` apart (the policy's interval: a
  replay ticks on its own grid, up to one interval off the step it re-decides) are the same
  change: it is kept once, at the later of the two times and the larger of the two changes, so
  the merge never allows more than either history alone; pairs are made closest first, each event
  in at most one pair; events of the same history are never paired (two steps);
- the history grows to hold the union (up to twice its E slots: two full histories); beyond
  that (a record with more events than any leader makes), the oldest is folded into the next one
  (their changes summed, at the later time), which again never allows more in the direction.

Shapes: changes and times (N, E) and (N, K), NaN times for empty slots; out (N, E') with
E <= E' <= 2E, the events of a row in its first slots, oldest first.
"""

from __future__ import annotations

import numpy as np


def live_events(changes: np.ndarray, times: np.ndarray, now: float, period_s: float) -> list[tuple[float, float]]:
    """(time, change) of one row's (E,) history that still count at ``now``: a positive change
    less than ``period_s`` old (a future time read as ``now``), oldest first."""
    times = np.minimum(np.asarray(times, np.float64), now)  # NaN stays NaN
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(times) & (now - times < period_s) & (np.asarray(changes) > 0)
    return sorted(zip(times[keep].tolist(), np.asarray(changes, np.float64)[keep].tolist()))


def pair_closest(a: list[tuple[float, float]], b: list[tuple[float, float]],
                 tolerance_s: float) -> list[tuple[int, int]]:
    """The pairs (i, j) of events of ``a`` and ``b`` less than ``tolerance_s`` apart, closest
    in time first, then closest in change (a step seen twice pairs with itself), then the
    earlier events; each event in at most one pair."""
    candidates = sorted((abs(ta - tb), abs(ca - cb), i, j) for i, (ta, ca) in enumerate(a)
                        for j, (tb, cb) in enumerate(b) if abs(ta - tb) < tolerance_s)
    used_a, used_b, pairs = set(), set(), []
    for _, _, i, j in candidates:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return pairs


def union_events(a: list[tuple[float, float]], b: list[tuple[float, float]],
                 tolerance_s: float) -> list[tuple[float, float]]:
    """The events of ``a`` and ``b`` with each pair (``pair_closest``) once, at the later time
    and the larger change; oldest first."""
    pairs = pair_closest(a, b, tolerance_s)
    paired_a, paired_b = {i for i, _ in pairs}, {j for _, j in pairs}
    out = [(max(a[i][0], b[j][0]), max(a[i][1], b[j][1])) for i, j in pairs]
    out += [e for i, e in enumerate(a) if i not in paired_a] + [e for j, e in enumerate(b) if j not in paired_b]
    return sorted(out)


def fold_oldest(events: list[tuple[float, float]], slots: int) -> list[tuple[float, float]]:
    """At most ``slots`` events (oldest first): the oldest folded into the next while too many
    (their sum at the later time: every period's sum stays at least what it was)."""
    events = list(events)
    while len(events) > max(slots, 0) and len(events) > 1:
        (_, c0), (t1, c1) = events[0], events[1]
        events[:2] = [(t1, c0 + c1)]
    return events if slots > 0 else []


def merge_histories(changes: np.ndarray, times: np.ndarray, kept_changes: np.ndarray, kept_times: np.ndarray,
                    now: float, period_s: float, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The union (module docstring) of each row of ``changes``/``times`` (N, E) with the same row
    of ``kept_changes``/``kept_times`` (N, K): new (N, E') arrays, Fortran order as NormState's,
    each row's events that still count in its first slots, oldest first. E' is E, or more when a
    row's union needs more slots, at most 2E (two full histories; the rate limits read any width).
    Called once per start or leadership: a Python loop over the rows."""
    slots = np.shape(changes)[1]
    rows = [fold_oldest(union_events(live_events(changes[i], times[i], now, period_s),
                                     live_events(kept_changes[i], kept_times[i], now, period_s), tolerance_s),
                        2 * slots)
            for i in range(np.shape(changes)[0])]
    width = max([slots] + [len(r) for r in rows])
    out_c, out_t = np.zeros((len(rows), width), order="F"), np.full((len(rows), width), np.nan, order="F")
    for i, merged in enumerate(rows):
        if merged:
            t, c = zip(*merged)
            out_t[i, :len(merged)], out_c[i, :len(merged)] = t, c
    return out_c, out_t
