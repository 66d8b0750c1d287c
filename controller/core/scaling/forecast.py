"""Stage 2b, forecast: each forecast metric's value one horizon ahead, with a prediction bound.

Between smooth and propose. Per (target, forecast metric) the model is a seasonal profile per
candidate period (buckets of ``bucket_s``), a level and a damped trend on the deseasonalized
value (Holt's method for irregular intervals), and a ring of the forecast's recent absolute
errors next to those of persistence (the value at the time the forecast was made). Outputs:

- ``point``: the forecast of the value at ``now + horizon_s``;
- ``upper``: ``point + margin * q``, q the ``quantile`` of the recent absolute errors;
- ``mase``: mean absolute error over mean absolute error of persistence, on the recent window;
- ``trusted``: enough scored forecasts and ``mase <= error_bound``. An untrusted forecast is
  ignored (the reactive proposal alone counts) until its recent error is back under the bound.

Shapes: N targets; every array of one metric's state is (N,) or (N, slots). Pure numpy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from controller.core.history import take_rows, write_slot
from controller.core.scaling.params import ForecastParams

#: A period is kept when the autocorrelation of the history at that lag reaches this.
SEASON_MIN_ACF = 0.3
#: Scored forecasts needed before the forecast is trusted.
MIN_SCORED = 8
#: Limits on the seasonal ratio between the horizon and now (guards near-empty buckets).
SEASON_RATIO_RANGE = (1.0 / 3.0, 3.0)
#: Weight of one period's visit of a bucket in its profile (an EWMA across periods).
PROFILE_WEIGHT = 0.3
_UNKNOWN, _REJECTED, _ACCEPTED = 0, 1, 2


@dataclass(frozen=True)
class ForecastState:
    """One forecast metric's memory for N targets.

    level, trend (per second), at, first_at: (N,), NaN before the first sample.
    profiles: one (N, B_p) array per period (NaN for unvisited buckets), from completed visits
    of each bucket; visits: one (N, 4) array per period, the visit in progress (bucket, sum of
    values, count; NaN when none), folded into the profile when the bucket changes, so the
    profile at now and at now + horizon are both from earlier periods, and the profile's mean
    (column 3, updated on each fold: an (N, B) mean per cycle is too slow); season: (N, P) int,
    unknown / rejected / accepted per period. pend_*: (N, K) forecasts waiting for their due
    time (pend_due NaN when the slot is free). err, naive, err_at: (N, E) ring of scored errors.
    """

    level: np.ndarray
    trend: np.ndarray
    at: np.ndarray
    first_at: np.ndarray
    profiles: tuple[np.ndarray, ...]
    visits: tuple[np.ndarray, ...]
    season: np.ndarray
    pend_point: np.ndarray
    pend_base: np.ndarray
    pend_due: np.ndarray
    err: np.ndarray
    naive: np.ndarray
    err_at: np.ndarray

    @classmethod
    def empty(cls, n: int, fp: ForecastParams) -> "ForecastState":
        nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
        k, e = fp.pending_slots, fp.error_slots
        return cls(nan(n), nan(n), nan(n), nan(n), tuple(nan(n, b) for b in fp.buckets),
                   tuple(nan(n, 4) for _ in fp.buckets), np.zeros((n, len(fp.periods_s)), np.int64), nan(n, k), nan(n, k), nan(n, k),
                   np.zeros((n, e), order="F"), np.zeros((n, e), order="F"), np.full((n, e), np.nan, order="F"))

    def take(self, rows: np.ndarray) -> "ForecastState":
        """Reorder to a new target list: rows[i] is the old row of new target i, -1 if new."""
        f = lambda a, fill=np.nan: take_rows(a, rows, fill)  # noqa: E731
        return ForecastState(f(self.level), f(self.trend), f(self.at), f(self.first_at),
                             tuple(f(p) for p in self.profiles), tuple(f(v) for v in self.visits),
                             f(self.season, _UNKNOWN), f(self.pend_point),
                             f(self.pend_base), f(self.pend_due), np.asfortranarray(f(self.err, 0.0)),
                             np.asfortranarray(f(self.naive, 0.0)), np.asfortranarray(f(self.err_at)))


@dataclass(frozen=True)
class ForecastResult:
    """(N,) outputs for one metric at ``now``; NaN where the target has no forecast yet."""

    point: np.ndarray
    upper: np.ndarray
    mase: np.ndarray
    trusted: np.ndarray  # bool


# --------------------------------------------------------------------------- seasonal profile
def _bucket_pos(t, period_s: float, bucket_s: float):
    """Fractional bucket position of time(s) t (epoch s) in a period: bucket b covers
    [b, b + 1) * bucket_s of the period."""
    return np.mod(t, period_s) / bucket_s


def profile_at(profile: np.ndarray, t, period_s: float, bucket_s: float) -> np.ndarray:
    """(N,) profile value at time t (one, or (N,) one per row), linear between bucket centres
    (wrapping); NaN if unvisited."""
    n, b = profile.shape
    x = _bucket_pos(np.broadcast_to(np.asarray(t, np.float64), (n,)), period_s, bucket_s) - 0.5
    lo = np.floor(x).astype(np.int64) % b
    frac = x - np.floor(x)
    rows = np.arange(n)
    return profile[rows, lo] * (1.0 - frac) + profile[rows, (lo + 1) % b] * frac


def _seasonal_ratio(state: ForecastState, fp: ForecastParams, now: float, horizon_s: np.ndarray):
    """(s_now, s_ahead) (N,): the accepted longest period's profile at now and now + horizon
    (horizon_s (N,)), each over the profile's mean; 1 where no period applies."""
    n = state.level.shape[0]
    s_now, s_ahead, done = np.ones(n), np.ones(n), np.zeros(n, bool)
    for p in np.argsort(fp.periods_s)[::-1]:  # longest accepted period first
        prof, period, mean = state.profiles[p], fp.periods_s[p], state.visits[p][:, 3]
        with np.errstate(invalid="ignore", divide="ignore"):
            a = profile_at(prof, now, period, fp.bucket_s) / mean
            b = profile_at(prof, now + horizon_s, period, fp.bucket_s) / mean
        ok = (~done & (state.season[:, p] == _ACCEPTED) & np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
              & (mean > 0))
        s_now, s_ahead = np.where(ok, a, s_now), np.where(ok, b, s_ahead)
        done |= ok
    lo, hi = SEASON_RATIO_RANGE
    ratio = np.clip(s_ahead / s_now, lo, hi)
    return s_now, s_now * ratio


def _update_profiles(state: ForecastState, fp: ForecastParams, y: np.ndarray, ok: np.ndarray, now: float):
    """Profiles with y folded into the bucket of ``now`` (rows where ``ok``); periods that
    have been seen twice and were never judged become accepted (the error bound guards them)."""
    profiles, visits = [], []
    rows = np.arange(y.shape[0])
    for prof, visit, period in zip(state.profiles, state.visits, fp.periods_s):
        b = float(int(_bucket_pos(now, period, fp.bucket_s)) % prof.shape[1])
        same = visit[:, 0] == b
        done = ok & ~same & np.isfinite(visit[:, 0])  # the visit of another bucket ended: fold it
        if done.any():
            prof = prof.copy()
            idx = rows[done]
            col = visit[idx, 0].astype(np.int64)
            mean, old = visit[idx, 1] / visit[idx, 2], prof[idx, col]
            prof[idx, col] = np.where(np.isnan(old), mean, old + PROFILE_WEIGHT * (mean - old))
            visit = visit.copy()
            visit[idx, 3] = _row_means(prof[idx])
        zero = np.zeros_like(y)
        visit = np.where(ok[:, None], np.where(same[:, None], visit + np.stack([zero, y, zero + 1.0, zero], axis=1),
                                               np.stack([zero + b, y, zero + 1.0, visit[:, 3]], axis=1)), visit)
        profiles.append(prof)
        visits.append(visit)
    seen_s = now - state.first_at
    long_enough = seen_s[:, None] >= np.maximum(2.0 * np.asarray(fp.periods_s), fp.min_history_s)[None, :]
    season = np.where((state.season == _UNKNOWN) & long_enough, _ACCEPTED, state.season)
    return tuple(profiles), tuple(visits), season


def _row_means(profile: np.ndarray) -> np.ndarray:
    """(N,) mean of each row's visited buckets (NaN for a row with none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(profile, axis=1)


# --------------------------------------------------------------------------- one step
def _holt(state: ForecastState, fp: ForecastParams, z: np.ndarray, ok: np.ndarray, now: float,
          restart: np.ndarray, horizon_s: np.ndarray):
    """Level and trend (per s) after the deseasonalized value z at ``now`` (rows where ok).
    Rows where ``restart`` (the seasonal model changed, so z jumps) start over from z. The
    trend's half-life and damping follow each row's horizon (horizon_s (N,))."""
    first = np.isnan(state.level) | restart
    dt = np.where(first, 0.0, now - state.at)
    trend0 = np.where(np.isnan(state.trend), 0.0, state.trend)
    pred = np.where(first, z, state.level + trend0 * _damped(dt, fp.damping(horizon_s)))
    a_l = -np.expm1(-np.log(2.0) * dt / fp.level_half_life_s)
    a_t = -np.expm1(-np.log(2.0) * dt / fp.trend_half_life(horizon_s))
    level = pred + a_l * (z - pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(dt > 0, (level - np.where(first, level, state.level)) / dt, 0.0)
    trend = np.where(first, 0.0, trend0 + a_t * (slope - trend0))
    return (np.where(ok, level, state.level), np.where(ok, trend, state.trend),
            np.where(ok, now, state.at), np.where(ok & np.isnan(state.first_at), now, state.first_at))


def _damped(dt, damping_s):
    """How far a trend carries over dt seconds when it decays with time constant damping_s."""
    return damping_s * -np.expm1(-np.asarray(dt, dtype=np.float64) / damping_s)


def _score_due(state: ForecastState, fp: ForecastParams, y: np.ndarray, ok: np.ndarray, now: float):
    """Score the forecasts due by now against y (the newest due one per row), free their slots."""
    due = state.pend_due <= now + 0.5 * fp.interval_s  # NaN (free) compares False
    any_due = due.any(axis=1) & ok
    pick = np.where(due, state.pend_due, -np.inf).argmax(axis=1)
    rows = np.arange(y.shape[0])
    point, base = state.pend_point[rows, pick], state.pend_base[rows, pick]
    err, err_at = write_slot(state.err, state.err_at, np.abs(y - point), now, fp.error_window_s, rows=any_due)
    naive, _ = write_slot(state.naive, state.err_at, np.abs(y - base), now, fp.error_window_s, rows=any_due)
    clear = due & ok[:, None]
    return (err, naive, err_at, np.where(clear, np.nan, state.pend_point), np.where(clear, np.nan, state.pend_base),
            np.where(clear, np.nan, state.pend_due))


def _remember(pend_point, pend_base, pend_due, point, base, ok, now: float, horizon_s: np.ndarray):
    """Store this cycle's forecast, due at now + horizon_s (N,), in a free slot (or the oldest)
    of the rows where ok."""
    slot = np.where(np.isnan(pend_due), -np.inf, pend_due).argmin(axis=1)
    idx = np.flatnonzero(ok)
    pend_point, pend_base, pend_due = pend_point.copy(), pend_base.copy(), pend_due.copy()
    pend_point[idx, slot[idx]], pend_base[idx, slot[idx]] = point[idx], base[idx]
    pend_due[idx, slot[idx]] = now + horizon_s[idx]
    return pend_point, pend_base, pend_due


def error_stats(state: ForecastState, fp: ForecastParams, now: float,
                horizon_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q (N,) error quantile, mase (N,), scored (N,) count) over the recent error window (of
    each row's horizon horizon_s (N,); default the policy's)."""
    window_s = fp.error_window_s if horizon_s is None else fp.error_window(horizon_s)[:, None]
    recent = state.err_at > now - window_s  # NaN compares False
    count = recent.sum(axis=1)
    # the quantile by sorting (NaN-free: old slots sort last as +inf), vectorized over rows
    ranked = np.sort(np.where(recent, state.err, np.inf), axis=1)
    k = np.clip(np.floor(fp.quantile * (count - 1)).astype(np.int64), 0, max(ranked.shape[1] - 1, 0))
    q = ranked[np.arange(count.size), k] if ranked.shape[1] else np.full(count.shape, np.nan)
    q = np.where(count > 0, q, np.nan)
    # C order: each row sums alone, the same whatever the batch (batched == row by row, exactly)
    num = np.ascontiguousarray(np.where(recent, state.err, 0.0)).sum(axis=1)
    den = np.ascontiguousarray(np.where(recent, state.naive, 0.0)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mase = np.where(den > 0, num / den, np.where(num > 0, np.inf, 1.0))
    return q, np.where(count > 0, mase, np.nan), count


def forecast_step(fp: ForecastParams, state: ForecastState, y: np.ndarray, ok: np.ndarray,
                  now: float, startup_s: np.ndarray | None = None) -> tuple[ForecastResult, ForecastState]:
    """Learn from y (N,) (rows where ok: a usable sample) at ``now`` and forecast now + horizon
    (per target from the observed start-up delays ``startup_s`` (N,), see ForecastParams.horizons)."""
    horizon_s = fp.horizons(startup_s, y.shape[0])
    err, naive, err_at, pp, pb, pd = _score_due(state, fp, y, ok, now)
    profiles, visits, season = _update_profiles(state, fp, y, ok, now)
    restart = (season != state.season).any(axis=1)
    state = replace(state, err=err, naive=naive, err_at=err_at, profiles=profiles, visits=visits, season=season)
    s_now, s_ahead = _seasonal_ratio(state, fp, now, horizon_s)
    level, trend, at, first_at = _holt(state, fp, y / s_now, ok, now, restart, horizon_s)
    with np.errstate(invalid="ignore"):
        point = np.maximum((level + trend * _damped(horizon_s, fp.damping(horizon_s))) * s_ahead, 0.0)
    pp, pb, pd = _remember(pp, pb, pd, point, y, ok & np.isfinite(point), now, horizon_s)
    state = replace(state, level=level, trend=trend, at=at, first_at=first_at, pend_point=pp, pend_base=pb, pend_due=pd)
    q, mase, count = error_stats(state, fp, now, horizon_s)
    point = np.where(np.isnan(level), np.nan, point)
    upper = point + fp.margin * np.where(np.isfinite(q), q, 0.0)
    trusted = (count >= MIN_SCORED) & (mase <= fp.error_bound) & np.isfinite(point)
    return ForecastResult(point, upper, mase, trusted), state


# --------------------------------------------------------------------------- history
def detect_seasons(fp: ForecastParams, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(N, P) unknown / rejected / accepted per period from a history values (N, T) at times (T,).

    The history is averaged into buckets of ``bucket_s``; a period is accepted when the history
    covers ``max(2 periods, min_history_s)`` and the autocorrelation at the period's lag is at
    least SEASON_MIN_ACF, rejected when covered and below, unknown when not covered.
    """
    n = values.shape[0]
    out = np.zeros((n, len(fp.periods_s)), np.int64)
    if times.size < 2:
        return out
    idx = np.floor((times - times[0]) / fp.bucket_s).astype(np.int64)
    nb = int(idx[-1]) + 1
    sums = np.zeros((n, nb))
    counts = np.zeros((n, nb))
    finite = np.isfinite(values)
    np.add.at(sums.T, idx, np.where(finite, values, 0.0).T)
    np.add.at(counts.T, idx, finite.T.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        x = sums / counts
    span_s = float(times[-1] - times[0])
    for p, period in enumerate(fp.periods_s):
        lag = int(round(period / fp.bucket_s))
        if span_s < max(2.0 * period, fp.min_history_s) or lag >= nb:
            continue
        a, b = x[:, lag:], x[:, :-lag]
        both = np.isfinite(a) & np.isfinite(b)
        a, b = np.where(both, a, np.nan), np.where(both, b, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            da, db = a - np.nanmean(a, axis=1, keepdims=True), b - np.nanmean(b, axis=1, keepdims=True)
            acf = np.nansum(da * db, axis=1) / np.sqrt(np.nansum(da * da, axis=1) * np.nansum(db * db, axis=1))
        judged = both.sum(axis=1) >= lag  # a full period of pairs; otherwise it stays unknown
        out[:, p] = np.where(~judged, _UNKNOWN, np.where(acf >= SEASON_MIN_ACF, _ACCEPTED, _REJECTED))
    return out


def _history_profiles(fp: ForecastParams, values: np.ndarray, times: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
    """One (N, B_p) profile per period: bucket means of the history, each period's visit
    weighted PROFILE_WEIGHT-geometrically by its age in periods (as the online EWMA does)."""
    out = []
    finite = np.isfinite(values)
    for period, b in zip(fp.periods_s, fp.buckets):
        bucket = (np.floor(_bucket_pos(times, period, fp.bucket_s)).astype(np.int64)) % b
        age = np.floor((now - times) / period)
        w = (1.0 - PROFILE_WEIGHT) ** age
        sums, weights = np.zeros((values.shape[0], b)), np.zeros((values.shape[0], b))
        np.add.at(sums.T, bucket, (np.where(finite, values, 0.0) * w).T)
        np.add.at(weights.T, bucket, (finite * w).T)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(weights > 0, sums / weights, np.nan))
    return tuple(out)


def warm(fp: ForecastParams, state: ForecastState, values: np.ndarray, times: np.ndarray) -> ForecastState:
    """Start from history: values (N, T) of the metric at times (T,) (epoch s, increasing; NaN
    where unknown), all before the first live cycle. Seasonal profiles and period detection
    use the whole history at once; the last stretch (error window + horizon) is replayed
    through :func:`forecast_step` at the policy interval to set level, trend and errors."""
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return state
    # replay at the policy's interval, as the live loop would see it
    replay_from = times[-1] - (fp.error_window_s + fp.horizon_s + 4 * fp.interval_s)
    grid = np.arange(max(times[0], replay_from), times[-1] + 1e-9, fp.interval_s)
    early = times < grid[0]
    season = detect_seasons(fp, values, times)
    profiles = _history_profiles(fp, values[:, early], times[early], grid[0]) if early.any() else state.profiles
    first_at = np.where(np.isfinite(values).any(axis=1), times[0], np.nan)
    visits = tuple(np.concatenate([np.full((p.shape[0], 3), np.nan), _row_means(p)[:, None]], axis=1)
                   for p in profiles)
    state = replace(state, profiles=profiles, visits=visits,
                    season=np.where(season != _UNKNOWN, season, state.season),
                    first_at=np.where(np.isnan(state.first_at), first_at, state.first_at))
    pos = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, times.size - 1)
    for k, t in zip(pos, grid):
        y = values[:, k]
        _, state = forecast_step(fp, state, y, np.isfinite(y), float(t))
    return state
