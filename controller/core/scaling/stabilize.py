"""Stabilization over the recommendation history, exactly as Kubernetes HPA does it.

Shapes: proposal and current (N,); history values and times (N, H). Windows in seconds.
"""

from __future__ import annotations

import numpy as np


def stabilize_legacy(proposal: np.ndarray, rec_values: np.ndarray, rec_times: np.ndarray, now: float,
                     window_s: float) -> np.ndarray:
    """HPA without ``behavior``: max of the proposal and every entry with age <= window.

    The legacy window is inclusive (an entry is dropped only when strictly older).
    """
    # Comparing times with a cutoff (not ages with the window) saves an (N, H) subtraction; a
    # masked reduction saves an (N, H) float temporary and np.where, slow on (N, H) arrays.
    return np.maximum(proposal, rec_values.max(axis=1, initial=-np.inf, where=rec_times >= now - window_s))


def stabilize_with_behavior(current: np.ndarray, proposal: np.ndarray, rec_values: np.ndarray,
                            rec_times: np.ndarray, now: float, up_window_s: float,
                            down_window_s: float, linear_release: bool = False,
                            release_rows: np.ndarray | None = None) -> np.ndarray:
    """HPA with ``behavior``: clamp ``current`` into [min over the up-window, max over the down-window].

    Both windows are strict (age < window) and the new proposal takes part in both, so the
    result never crosses ``current`` against the direction of the proposal. With
    ``linear_release`` the down-window holds :func:`linear_release_ceiling` instead of its max,
    on the rows of ``release_rows`` (N,) bool (None: all): the others (samples older than an
    interval) hold the whole window, so a frozen signal never releases capacity.
    """
    # masked reductions, as in stabilize_legacy
    up_floor = proposal
    if up_window_s > 0:  # HPA's default scale-up window is 0: only the proposal counts
        up_floor = np.minimum(proposal, rec_values.min(axis=1, initial=np.inf, where=rec_times > now - up_window_s))
    if linear_release and (release_rows is None or release_rows.all()):
        down_ceiling = linear_release_ceiling(proposal, rec_values, rec_times, now, down_window_s)
    else:
        down_ceiling = np.maximum(proposal, rec_values.max(axis=1, initial=-np.inf,
                                                           where=rec_times > now - down_window_s))
        if linear_release and release_rows.any():
            released = linear_release_ceiling(proposal, rec_values, rec_times, now, down_window_s)
            np.putmask(down_ceiling, release_rows, released)
    return np.minimum(np.maximum(current, up_floor), down_ceiling)


def fresh_rows(present: np.ndarray, sample_age_s: np.ndarray, interval_s: float) -> np.ndarray:
    """(N,) bool: every present sample of the target's (N, M) is at most one interval old (this
    cycle brought new evidence). ``scaleDown.release: linear`` releases capacity only on these."""
    return ~(present & (sample_age_s > interval_s)).any(axis=1)


def linear_release_ceiling(proposal: np.ndarray, rec_values: np.ndarray, rec_times: np.ndarray, now: float,
                           window_s: float) -> np.ndarray:
    """The scale-down ceiling (N,) of ``scaleDown.release: linear``: each recommendation of age
    < window holds its excess over this cycle's ``proposal`` scaled by the share of the window
    still ahead of it (all of it when new, nothing at the window's end), rounded up to whole
    replicas; never below ``proposal``. HPA's window holds the whole excess until it expires:
    the replicas then fall in one step, here over the window, a little each cycle."""
    if window_s <= 0:
        return proposal.copy()
    p = proposal[:, None]
    ahead = 1.0 - (now - rec_times) / window_s  # the fused kernel computes it in the same order
    held = p + (rec_values - p) * ahead
    return np.maximum(proposal, np.ceil(held.max(axis=1, initial=-np.inf, where=rec_times > now - window_s)))
