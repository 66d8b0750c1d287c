"""Stage 2c, ramp: a rising metric's value one lead time ahead, from its recent slope.

A reactive controller sizes for the value it sees, but new pods serve only after the lead
time (start-up delay + interval + the metric window's lag): during a ramp the load has grown
by ``slope * lead_s`` by then. This stage measures each metric's slope over its own window
(the value now against the value one window ago: a ``rate(x[w])`` sample is a window average,
so samples a window apart do not share data) and returns ``ahead = value + max(slope, 0) *
lead_s``. With a latest reading (``ramp.latest``: the same rate over a shorter range window,
e.g. the last two scrapes), the slope is the one the two readings imply, ``(latest - value) /
gap`` (gap: how much later the latest reading is centred, half the difference of the windows):
for a steady rise it is the slope, a window sooner; once a burst shorter than the window has
turned, the latest reading is below the window's mean and nothing is carried ahead (the window
slope stays positive for up to two windows after a burst). Only a rising slope counts, so the proposal from ``ahead`` is never below the
reactive one: it can raise a scale-up or hold a scale-down, never cause one.

No slope is used for a target that has no Ready pod (spec replicas > 0), nor for ``dark_s``
(two windows and an interval) after the last cycle at which it had none: what its metric read
then is not its demand, and when the pods get Ready again a rate read at the pods refills its
window from 0 to the load in one window. Taken as a slope, that refill ran a 10-replica service
at a constant load to replicas.max the moment a 20-minute dependency outage ended.

Shapes: N targets; the state keeps a ring of the last ``slots`` usable samples per target,
(N, K) values and times (Fortran order, see history.py), and (N,) the last cycle at which the
target had no Ready pod. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.core.history import empty_history, take_rows, write_slot
from controller.core.scaling import min_step
from controller.core.scaling.params import RampParams
from controller.core.scaling.propose import propose_policy
from controller.core.scaling.saturation import saturated
from controller.model import direct_init


@dataclass(frozen=True)
class RampState:
    """One ramp metric's recent samples for N targets: (N, K) values and times (NaN: empty);
    dark_at (N,) the last cycle (epoch s) at which the target had no Ready pod (NaN: none)."""

    values: np.ndarray
    times: np.ndarray
    dark_at: np.ndarray

    @classmethod
    def empty(cls, n: int, rp: RampParams) -> "RampState":
        return cls(*empty_history(n, rp.slots), np.full(n, np.nan))

    def take(self, rows: np.ndarray) -> "RampState":
        """Reorder to a new target list: rows[i] is the old row of new target i, -1 if new."""
        return RampState(np.asfortranarray(take_rows(self.values, rows, 0.0)),
                         np.asfortranarray(take_rows(self.times, rows, np.nan)), take_rows(self.dark_at, rows, np.nan))


@dataclass(frozen=True)
class RampResult:
    """(N,) outputs at ``now``: slope (units per second, NaN where no sample a window ago or
    no usable value now) and ahead (value + max(slope, 0) * lead_s; NaN where slope is NaN)."""

    slope: np.ndarray
    ahead: np.ndarray


def window_ago(values: np.ndarray, times: np.ndarray, now: float, window_s: float,
               tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(value, time) (N,) of the sample nearest to ``now - window_s`` among those at least
    ``window_s - tolerance_s`` old; NaN where there is none."""
    n = values.shape[0]
    if values.shape[1] == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    age = now - times  # NaN for empty slots
    old_enough = age >= window_s - tolerance_s  # NaN compares False
    distance = np.where(old_enough, np.abs(age - window_s), np.inf)
    # the picked (row, slot) as one flat index into the transposed (K, N) arrays, cheaper than
    # fancy indexing with two index arrays (and free of copies: the state is in Fortran order)
    flat = distance.argmin(axis=1) * n + np.arange(n)
    missing = ~np.isfinite(np.take(distance.T, flat))
    v = np.take(values.T, flat)
    t = np.take(times.T, flat)
    v[missing] = np.nan
    t[missing] = np.nan
    return v, t


def implied_slope(rp: RampParams, y: np.ndarray, latest: np.ndarray | None, slope: np.ndarray) -> np.ndarray:
    """(N,) the ramp's slope with a latest reading: (latest - y) / gap where both the window slope
    (``slope``, NaN: none yet) and ``latest`` (NaN: not read) are known, the window slope elsewhere."""
    if rp.latest_window_s <= 0.0 or latest is None:
        return slope
    latest = np.asarray(latest, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(latest) & np.isfinite(slope), (latest - y) / rp.gap_s, slope)


def ramp_step(rp: RampParams, state: RampState, y: np.ndarray, ok: np.ndarray,
              now: float, startup_s: np.ndarray | None = None,
              latest: np.ndarray | None = None, dark: np.ndarray | None = None) -> tuple[RampResult, RampState]:
    """Learn y (N,) (rows where ok: a usable sample) at ``now``; the slope over the last window
    and the value one lead time ahead (per target with the observed start-up delays
    ``startup_s`` (N,), see RampParams.leads). ``latest`` (N,): the latest reading (NaN: none),
    used when the ramp has one (RampParams.latest_window_s; see implied_slope). ``dark`` (N,):
    the target has no Ready pod now (no slope then, nor for ``rp.dark_s`` after)."""
    y = np.asarray(y, dtype=np.float64)
    lead_s = rp.leads(startup_s, y.shape[0])
    dark_at = state.dark_at if dark is None else np.where(dark, now, state.dark_at)
    old_v, old_t = window_ago(state.values, state.times, now, rp.window_s, 0.5 * rp.interval_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = (y - old_v) / (now - old_t)
        slope[~(ok & (now > old_t))] = np.nan
        slope = implied_slope(rp, y, latest, slope)
        slope[now - dark_at < rp.dark_s] = np.nan  # NaN (never dark) compares False
        ahead = y + np.maximum(slope, 0.0) * lead_s
    values, times = write_slot(state.values, state.times, y, now, rp.keep_s, rows=ok)  # only rows where ok
    return RampResult(slope, ahead), RampState(values, times, dark_at)


@direct_init
@dataclass(frozen=True)
class Ramps:
    """The ramp stage's outputs, (N, M) arrays, NaN for metrics without a ramp stage.

    slope: per second over the metric's window; ahead: the value one lead time ahead;
    proposal: the replica proposal from ``ahead`` (NaN where not valid), as the look-ahead asks
    for it: where ``ramp.minStep`` dropped the step (hold_small_look_ahead), the metric's
    proposal after the stage is below it (see :meth:`record`'s ``held``).
    """

    slope: np.ndarray
    ahead: np.ndarray
    proposal: np.ndarray
    columns: tuple[int, ...]  # the ramp metrics

    def record(self, i: int, metric_names: tuple[str, ...], current: float, proposals: np.ndarray) -> dict:
        """Row i for the decision record: per ramp metric, slope, ahead, its proposal and whether
        ``ramp.minStep`` held it (a scale-up above ``current`` that the metric's proposal after
        the stage, ``proposals`` (M,) of row i (NaN: not valid), does not carry)."""
        def opt(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        def held(j: int) -> bool:
            p = self.proposal[i, j]
            return bool(np.isfinite(p) and p > current and proposals[j] < p)

        return {name: {"slope": opt(self.slope[i, j]), "ahead": opt(self.ahead[i, j]),
                       "proposal": None if not np.isfinite(self.proposal[i, j]) else int(self.proposal[i, j]),
                       "held": held(j)}
                for j, name in enumerate(metric_names) if j in self.columns}


def apply_ramps(params, values: np.ndarray, usable: np.ndarray, proposals: np.ndarray, valid: np.ndarray,
                current: np.ndarray, ready: np.ndarray, status: np.ndarray, states: tuple[RampState, ...],
                now: float, startup_s: np.ndarray | None = None, latest: np.ndarray | None = None,
                withheld: np.ndarray | None = None) -> tuple[np.ndarray, Ramps, tuple[RampState, ...]]:
    """Run the ramp stage of every ramp metric of ``params`` (a PolicyParams).

    values, usable: (N, M) the signal; proposals, valid: (N, M) so far. Returns (proposals
    (N, M) = max(proposals, from ahead) where the ramp proposal is valid, the outputs, the new
    states). Only the max is taken, so the stage never lowers a proposal. startup_s: (N,)
    observed start-up delays (NaN unknown; None: none observed) for leads that follow them.
    latest: (N, M) the ramps' latest readings (Observation.latest; NaN: none; None: not read).
    withheld: (N,) as propose.propose_policy's.
    """
    shape = values.shape
    slope, ahead = np.full(shape, np.nan), np.full(shape, np.nan)
    new_states = []
    dark = (current > 0) & (ready <= 0)  # no Ready pod: what the metrics read is not the demand
    for j, st in zip(params.ramp_metrics, states):
        res, st = ramp_step(params.metrics[j].ramp, st, values[:, j], usable[:, j], now, startup_s,
                            None if latest is None else latest[:, j], dark)
        slope[:, j], ahead[:, j] = res.slope, res.ahead
        new_states.append(st)
    # never the hpa preset (policy/rules.py)
    ramp_prop, ramp_ok = propose_policy(params, ahead, current, ready, status, withheld)
    ramp_ok &= valid & np.isfinite(ahead)
    shares = np.array([0.0 if m.ramp is None else m.ramp.min_step for m in params.metrics])
    if (shares > 0).any():  # a step whose look-ahead saturates the current replicas is kept whatever its size:
        # without it the pods would saturate before a later step's pods could start
        short = saturated(params, ahead, current)
        taken = np.where(short, ramp_prop, hold_small_look_ahead(current, proposals, valid, ramp_prop, ramp_ok, shares))
    else:
        taken = ramp_prop
    out = np.where(ramp_ok, np.fmax(proposals, taken), proposals)
    return out, Ramps(slope, ahead, np.where(ramp_ok, ramp_prop, np.nan), params.ramp_metrics), tuple(new_states)


def hold_small_look_ahead(current: np.ndarray, proposals: np.ndarray, valid: np.ndarray, ramp_prop: np.ndarray,
                          ramp_ok: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """``ramp.minStep: tolerance``: the ramp proposals (N, M), each at most ``current`` (N,) where
    it is a look-ahead-only scale-up smaller than its metric's min step: above current by less
    than max(1, ceil(current * share)) pods (shares (M,), 0: any step), on a row where no valid
    reactive proposal (N, M) is above current. The look-ahead then still holds current (it may
    delay a scale-down, never cause one); a larger step and every reactive scale-up are kept.

    apply_ramps keeps whatever their size the steps whose look-ahead saturates the current
    replicas (saturation.saturated of the look-ahead, on ``current`` rather than the Ready pods).

    One-pod look-ahead steps are what a ramp on a noisy rate mostly takes (bench/change_merge.py:
    65-99% of the default policy's scale-ups on the traces, most not needed), each a change and a
    recommendation the scale-down window then holds; the clairvoyant schedule with half of HPA's
    changes scales up half as often, by 27-67% a step (bench/teacher.py)."""
    reactive_up = (np.where(valid, proposals, -np.inf) > current[:, None]).any(axis=1)
    least = np.maximum(1.0, np.ceil(current[:, None] * shares[None, :] - min_step._EPS))
    small = ((shares > 0)[None, :] & ramp_ok & ~reactive_up[:, None] & (ramp_prop > current[:, None])
             & (ramp_prop < current[:, None] + least))
    return np.where(small, np.minimum(ramp_prop, current[:, None]), ramp_prop)
