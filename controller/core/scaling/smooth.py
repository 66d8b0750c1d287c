"""Stage 2, smooth: EWMA by half-life (irregular intervals) or a time-window aggregate.

State per (target, metric): the EWMA and the time of its last update, or a ring of raw
samples (N, M, W) with their times. Unusable samples never enter the state.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from controller.core.history import take_rows
from controller.core.scaling.params import PolicyParams, Smoothing


@dataclass(frozen=True)
class SmoothState:
    ewma: np.ndarray  # (N, M), NaN before the first usable sample
    ewma_at: np.ndarray  # (N, M) time of the last usable sample, NaN before it
    samples: np.ndarray  # (N, M, W) raw usable samples
    sample_at: np.ndarray  # (N, M, W) their times, NaN for empty slots

    @classmethod
    def empty(cls, n: int, m: int, params: PolicyParams) -> "SmoothState":
        w = params.sample_slots
        return cls(np.full((n, m), np.nan), np.full((n, m), np.nan), np.zeros((n, m, w)), np.full((n, m, w), np.nan))

    def take(self, rows: np.ndarray) -> "SmoothState":
        return SmoothState(take_rows(self.ewma, rows, np.nan), take_rows(self.ewma_at, rows, np.nan),
                           take_rows(self.samples, rows, 0.0), take_rows(self.sample_at, rows, np.nan))


def ewma_alpha(dt_s: np.ndarray, half_life_s: float) -> np.ndarray:
    """Weight of a new sample after dt seconds: 1 - 2^(-dt/half_life). Correct for any spacing."""
    if half_life_s <= 0:
        return np.ones_like(dt_s)
    return -np.expm1(-np.log(2.0) * np.maximum(dt_s, 0.0) / half_life_s)


def smooth_ewma(values: np.ndarray, usable: np.ndarray, state: SmoothState, now: float,
                half_life_s: float) -> tuple[np.ndarray, SmoothState]:
    """(N, M) EWMA; rows without a usable sample keep their previous value."""
    first = np.isnan(state.ewma)
    dt = now - state.ewma_at
    dt[first] = 0.0
    # masked writes into the new arrays rather than np.where chains: the same values, fewer passes
    ewma = state.ewma + ewma_alpha(dt, half_life_s) * (values - state.ewma)
    np.putmask(ewma, first, values)  # the first sample starts the average
    np.putmask(ewma, ~usable, state.ewma)
    ewma_at = np.array(state.ewma_at, dtype=np.float64)
    ewma_at[usable] = now
    return ewma, SmoothState(ewma, ewma_at, state.samples, state.sample_at)


def _aggregate(samples: np.ndarray, in_window: np.ndarray, kind: Smoothing, percentile: float) -> np.ndarray:
    """(N, M) aggregate over the last axis of the (N, M, W) samples where in_window; NaN where
    none is. Mean and max are spelled out as np.nanmean and np.nanmax compute them (the same
    sums, the same fmax reduction) without their extra copies and NaN checks."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, on purpose
        if kind == Smoothing.MEAN:
            counted = in_window & ~np.isnan(samples)
            return np.where(counted, samples, 0.0).sum(axis=2) / counted.sum(axis=2, dtype=np.intp)
        window = np.where(in_window, samples, np.nan)
        if kind == Smoothing.MEDIAN:
            return np.nanmedian(window, axis=2)
        if kind == Smoothing.MAX:
            return np.fmax.reduce(window, axis=2)
        return np.nanpercentile(window, percentile, axis=2)


def smooth_window(values: np.ndarray, usable: np.ndarray, state: SmoothState, now: float, window_s: float,
                  kind: Smoothing, percentile: float) -> tuple[np.ndarray, SmoothState]:
    """(N, M) aggregate of the usable samples with age < window_s, the new one included."""
    samples, times = state.samples.copy(), state.sample_at.copy()
    if samples.shape[2]:
        slot = times.argmin(axis=2)  # the first empty slot (argmin stops at a NaN), else the oldest
        # one flat index per usable (target, metric) into the C-order (N, M, W) copies
        at = np.flatnonzero(usable)
        flat = at * samples.shape[2] + slot.reshape(-1)[at]
        samples.put(flat, values.reshape(-1)[at])
        times.put(flat, now)
    in_window = (now - times) < window_s
    smoothed = _aggregate(samples, in_window, kind, percentile)
    return smoothed, SmoothState(state.ewma, state.ewma_at, samples, times)


def smooth(params: PolicyParams, values: np.ndarray, usable: np.ndarray, state: SmoothState,
           now: float) -> tuple[np.ndarray, SmoothState]:
    """Dispatch on the policy's smoothing. Returns (smoothed (N, M), new state)."""
    if params.smoothing == Smoothing.NONE:
        return values, state
    if params.smoothing == Smoothing.EWMA:
        return smooth_ewma(values, usable, state, now, params.half_life_s)
    return smooth_window(values, usable, state, now, params.window_s, params.smoothing, params.percentile)
