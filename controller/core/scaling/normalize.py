"""From per-metric proposals to the desired replica count: combine, stabilize, limit.

This is HPA's ``reconcileAutoscaler`` after the metrics (pre-checks, max over metrics with
its partial-failure rules, ``normalizeDesiredReplicas[WithBehaviors]``), plus Setpoint's
missing-metrics hold and fallback. Shapes: N targets, M metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from controller.core import history
from controller.core.scaling.limit import (NOT_LIMITED, changes_in_periods, clamp_legacy, limit_with_behavior,
                                   scale_down_limit, scale_up_limit)
from controller.core.scaling.min_step import hold_small_steps
from controller.core.scaling.params import PolicyParams
from controller.core.scaling.stabilize import stabilize_legacy, stabilize_with_behavior
from controller.model import Reason

_DISABLED, _ABOVE, _BELOW = int(Reason.SCALING_DISABLED), int(Reason.ABOVE_MAX), int(Reason.BELOW_MIN)
_MISSING, _FALLBACK = int(Reason.METRICS_MISSING), int(Reason.FALLBACK_REPLICAS)
_STAB_UP, _STAB_DOWN = int(Reason.STABILIZED_UP), int(Reason.STABILIZED_DOWN)
_UP, _DOWN, _KEEP = int(Reason.SCALE_UP), int(Reason.SCALE_DOWN), int(Reason.WITHIN_TOLERANCE)


@dataclass(frozen=True)
class NormState:
    """Per-target memory of the normalization stages.

    rec_*: recommendation history (N, H); up_*/down_*: scale events (N, E) as replica changes;
    missing_since: (N,) time all metrics went missing, NaN while any metric is valid.
    """

    rec_values: np.ndarray
    rec_times: np.ndarray
    up_changes: np.ndarray
    up_times: np.ndarray
    down_changes: np.ndarray
    down_times: np.ndarray
    missing_since: np.ndarray

    @classmethod
    def empty(cls, n: int, params: PolicyParams) -> "NormState":
        rec = history.empty_history(n, params.history_slots)
        up = history.empty_history(n, params.event_slots)
        down = history.empty_history(n, params.event_slots)
        return cls(*rec, *up, *down, np.full(n, np.nan))

    def take(self, rows: np.ndarray) -> "NormState":
        """The state of the given rows (an index array; -1 means a new, empty row)."""
        def pick(a: np.ndarray, fill: float) -> np.ndarray:
            return np.asfortranarray(history.take_rows(a, rows, fill))

        return NormState(pick(self.rec_values, 0.0), pick(self.rec_times, np.nan), pick(self.up_changes, 0.0),
                         pick(self.up_times, np.nan), pick(self.down_changes, 0.0), pick(self.down_times, np.nan),
                         pick(self.missing_since, np.nan))


@dataclass(frozen=True)
class NormResult:
    """Each stage's output, (N,) arrays. Replica counts are float64 holding whole numbers."""

    combined: np.ndarray  # max of the valid proposals (NaN when none)
    proposal: np.ndarray  # what entered stabilization (after missing-data rules)
    stabilized: np.ndarray
    desired: np.ndarray
    limit_reason: np.ndarray  # Reason code of the limit stage, or NOT_LIMITED
    reason: np.ndarray  # final Reason code
    scaling_active: np.ndarray  # bool: metrics were usable and normalization ran


def combine(proposals: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max over the valid proposals of each row.

    Returns (combined (N,) NaN where no metric is valid, any_valid (N,), any_invalid (N,)).
    """
    # M is small: a loop over columns beats a reduction over a short trailing axis.
    combined = np.full(proposals.shape[0], -np.inf)
    any_valid = np.zeros(proposals.shape[0], bool)
    all_valid = np.ones(proposals.shape[0], bool)
    for j in range(proposals.shape[1]):
        ok = valid[:, j]
        combined = np.where(ok, np.maximum(combined, proposals[:, j]), combined)
        any_valid |= ok
        all_valid &= ok
    return np.where(any_valid, combined, np.nan), any_valid, ~all_valid


def _precheck(params: PolicyParams, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HPA's pre-checks: (forced replicas (N,) NaN where none applies, Reason codes (N,))."""
    lo, hi = params.min_replicas, params.max_replicas
    disabled = (current == 0) & (lo != 0)
    forced = np.where(disabled, 0.0, np.where(current > hi, hi, np.where(current < lo, lo, np.nan)))
    reason = np.where(disabled, _DISABLED,
                      np.where(current > hi, _ABOVE, np.where(current < lo, _BELOW, -1)))
    return forced, reason


def _missing_data(params: PolicyParams, current: np.ndarray, combined: np.ndarray, any_valid: np.ndarray,
                  any_invalid: np.ndarray, missing_since: np.ndarray, now: float):
    """Apply the missing-data rules. Missing data may block a scale-down, never cause one.

    Returns (proposal (N,), hold (N,) bool: skip normalization, reason (N,), missing_since (N,)).
    """
    blocked_down = any_invalid & any_valid & (combined < current)
    none_valid = ~any_valid
    missing_since = np.where(none_valid, np.where(np.isnan(missing_since), now, missing_since), np.nan)
    reason = np.full(current.shape, -1)
    reason = np.where(blocked_down | none_valid, _MISSING, reason)
    proposal = np.where(any_valid, combined, current)
    if params.fallback_replicas is not None and not params.hpa_semantics:
        expired = none_valid & (now - missing_since >= params.missing_hold_s)
        fallback = np.maximum(current, params.fallback_replicas)  # a fallback only ever raises
        proposal = np.where(expired, fallback, proposal)
        reason = np.where(expired, _FALLBACK, reason)
        hold = (blocked_down | none_valid) & ~expired
    else:
        hold = blocked_down | none_valid
    return np.where(hold, current, proposal), hold, reason, missing_since


def _final_reason(current, proposal, stabilized, desired, limit_reason, legacy: bool) -> np.ndarray:
    stab_changed = stabilized != proposal
    stab_reason = np.where(legacy | (proposal < current), _STAB_DOWN, _STAB_UP)
    move = np.where(desired > current, _UP,
                    np.where(desired < current, _DOWN, _KEEP))
    return np.where(limit_reason != NOT_LIMITED, limit_reason, np.where(stab_changed, stab_reason, move))


def normalize(params: PolicyParams, current: np.ndarray, proposals: np.ndarray, valid: np.ndarray,
              state: NormState, now: float) -> tuple[NormResult, NormState]:
    """Desired replicas for N targets from their (N, M) proposals; pure.

    current: spec replicas (N,). proposals: (N, M) replica proposals (ignored where not valid).
    Returns the stage outputs and the new state (recommendation history written). The scale
    events the desired count would cause are not in it: the shell records them with
    :func:`record_scale_events` once the change is applied (HPA's storeScaleEvent after a
    successful update).
    """
    current = np.asarray(current, dtype=np.float64)
    n = current.shape[0]
    rec_v, rec_t = state.rec_values, state.rec_times
    fresh = history.is_empty(rec_t)
    if fresh.any():  # first sight: seed with (current, now); no scale-down for one window
        rec_v, rec_t = history.write_slot(rec_v, rec_t, current, now, np.inf, rows=fresh)

    combined, any_valid, any_invalid = combine(proposals, valid)
    forced, pre_reason = _precheck(params, current)
    proposal, hold, miss_reason, missing_since = _missing_data(
        params, current, combined, any_valid, any_invalid, state.missing_since, now)
    skip = ~np.isnan(forced) | hold

    if params.legacy:
        stabilized = stabilize_legacy(proposal, rec_v, rec_t, now, params.scale_down.window_s)
        keep_s = params.scale_down.window_s
        desired, limit_reason = clamp_legacy(current, stabilized, params.min_replicas, params.max_replicas,
                                             params.scale_up_limit_factor, params.scale_up_limit_minimum)
    else:
        up_w, down_w = params.scale_up.window_s, params.scale_down.window_s
        stabilized = stabilize_with_behavior(current, proposal, rec_v, rec_t, now, up_w, down_w)
        stabilized = hold_small_steps(current, stabilized, params.scale_down_min_step)
        keep_s = max(up_w, down_w)
        added_up = changes_in_periods(state.up_changes, state.up_times, now, params.scale_up.periods_s)
        removed_up = changes_in_periods(state.down_changes, state.down_times, now, params.scale_up.periods_s)
        added_down = changes_in_periods(state.up_changes, state.up_times, now, params.scale_down.periods_s)
        removed_down = changes_in_periods(state.down_changes, state.down_times, now, params.scale_down.periods_s)
        up_limit = scale_up_limit(current, added_up, removed_up, params.scale_up)
        down_limit = scale_down_limit(current, added_down, removed_down, params.scale_down)
        desired, limit_reason = limit_with_behavior(current, stabilized, params.min_replicas, params.max_replicas,
                                                    up_limit, down_limit)

    # Store the raw proposal; HPA stores nothing when it bails out before normalizing, while
    # Setpoint's own mode remembers ``current`` during a hold so a scale-down after an outage
    # still waits out the stabilization window.
    store = ~skip | (hold & np.isnan(forced) & (not params.hpa_semantics))
    rec_v, rec_t = history.write_slot(rec_v, rec_t, proposal, now, keep_s, rows=store)

    reason = _final_reason(current, proposal, stabilized, desired, limit_reason, params.legacy)
    reason = np.where(miss_reason >= 0, miss_reason, reason)
    reason = np.where(pre_reason >= 0, pre_reason, reason)
    desired = np.where(~np.isnan(forced), forced, np.where(hold, current, desired))
    stabilized = np.where(skip, desired, stabilized)
    limit_reason = np.where(skip, NOT_LIMITED, limit_reason)

    new_state = replace(state, rec_values=rec_v, rec_times=rec_t, missing_since=missing_since)
    result = NormResult(combined=combined, proposal=proposal, stabilized=stabilized, desired=desired,
                        limit_reason=limit_reason, reason=reason,
                        scaling_active=np.isnan(forced) & any_valid & ~hold)
    assert desired.shape == (n,)
    return result, new_state


def record_scale_events(state: NormState, params: PolicyParams, current: np.ndarray, desired: np.ndarray,
                        now: float, applied: np.ndarray | None = None) -> NormState:
    """Remember |desired - current| per direction for the rate policies (HPA's storeScaleEvent),
    for the ``applied`` rows (N,) bool only (all when None). Legacy policies keep no events."""
    if params.legacy:
        return state
    up, down = desired > current, desired < current
    if applied is not None:
        up, down = up & applied, down & applied
    up_c, up_t, down_c, down_t = state.up_changes, state.up_times, state.down_changes, state.down_times
    if up.any():
        up_c, up_t = history.write_slot(up_c, up_t, desired - current, now, params.scale_up.longest_period_s, rows=up)
    if down.any():
        down_c, down_t = history.write_slot(down_c, down_t, current - desired, now,
                                            params.scale_down.longest_period_s, rows=down)
    return replace(state, up_changes=up_c, up_times=up_t, down_changes=down_c, down_times=down_t)
