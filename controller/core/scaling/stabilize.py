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
                            down_window_s: float) -> np.ndarray:
    """HPA with ``behavior``: clamp ``current`` into [min over the up-window, max over the down-window].

    Both windows are strict (age < window) and the new proposal takes part in both, so the
    result never crosses ``current`` against the direction of the proposal.
    """
    # masked reductions, as in stabilize_legacy
    up_floor = proposal
    if up_window_s > 0:  # HPA's default scale-up window is 0: only the proposal counts
        up_floor = np.minimum(proposal, rec_values.min(axis=1, initial=np.inf, where=rec_times > now - up_window_s))
    down_ceiling = np.maximum(proposal, rec_values.max(axis=1, initial=-np.inf, where=rec_times > now - down_window_s))
    return np.minimum(np.maximum(current, up_floor), down_ceiling)
