"""From per-metric proposals to the desired replica count: combine, stabilize, limit.

This is HPA's ``reconcileAutoscaler`` after the metrics (pre-checks, max over metrics with
its partial-failure rules, ``normalizeDesiredReplicas[WithBehaviors]``), plus Setpoint's
missing-metrics hold and fallback. Shapes: N targets, M metrics.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from controller.core import history
from controller.core.scaling.limit import (NOT_LIMITED, changes_in_periods, clamp_legacy, limit_with_behavior,
                                   scale_down_limit, scale_up_limit)
from controller.core.scaling.min_step import hold_small_steps
from controller.core.scaling.params import PolicyParams
from controller.core.scaling.stabilize import stabilize_legacy, stabilize_with_behavior
from controller.model import Reason, direct_init

_DISABLED, _ABOVE, _BELOW = int(Reason.SCALING_DISABLED), int(Reason.ABOVE_MAX), int(Reason.BELOW_MIN)
_MISSING, _FALLBACK = int(Reason.METRICS_MISSING), int(Reason.FALLBACK_REPLICAS)
_NOT_READY, _RECOVERING = int(Reason.TARGET_NOT_READY), int(Reason.METRICS_RECOVERING)
_STAB_UP, _STAB_DOWN = int(Reason.STABILIZED_UP), int(Reason.STABILIZED_DOWN)
_UP, _DOWN, _KEEP = int(Reason.SCALE_UP), int(Reason.SCALE_DOWN), int(Reason.WITHIN_TOLERANCE)


@direct_init  # a new one every cycle (dataclasses.replace): its own __init__ cost ~3 us
@dataclass(frozen=True)
class NormState:
    """Per-target memory of the normalization stages.

    rec_*: recommendation history (N, H); up_*/down_*: scale events (N, E) as replica changes;
    missing_since: (N,) time all metrics went missing, NaN while any metric is valid.
    lit_at: (N,) the last cycle at which the target had a Ready pod; NaN: none seen since the
    controller started, or the target is at 0 replicas (scaled to zero is off, not unready).
    dark_since: (N,) the first cycle of the target's spell without a Ready pod after it had some
    (NaN: not in one); hold_until: (N,) after a spell at least PolicyParams.read_window_s long, the
    time until which its readings still average the spell (NaN: none).
    usable_since: (N, M) per metric, its first usable reading since it was last unusable (NaN:
    unusable, never read; None: a state made before it, read as never): core/scaling/recovering.py.
    """

    rec_values: np.ndarray
    rec_times: np.ndarray
    up_changes: np.ndarray
    up_times: np.ndarray
    down_changes: np.ndarray
    down_times: np.ndarray
    missing_since: np.ndarray
    lit_at: np.ndarray
    dark_since: np.ndarray
    hold_until: np.ndarray
    usable_since: np.ndarray | None = None

    @classmethod
    def empty(cls, n: int, params: PolicyParams) -> "NormState":
        rec = history.empty_history(n, params.history_slots)
        up = history.empty_history(n, params.event_slots)
        down = history.empty_history(n, params.event_slots)
        return cls(*rec, *up, *down, *(np.full(n, np.nan) for _ in range(4)), np.full((n, len(params.metrics)), np.nan))

    def refit(self, params: PolicyParams) -> "NormState":
        """This state for another policy's ``params`` over the same targets (an edited policy): the
        recommendation history and the scale events in its slot counts (the newest entries kept,
        history.refit), the per-target times as they are, the per-metric ones when the metrics are
        as many (else unread, as a new policy's)."""
        metrics = len(params.metrics)
        usable = (self.usable_since if self.usable_since is not None and self.usable_since.shape[1] == metrics
                  else np.full((self.rec_values.shape[0], metrics), np.nan))
        return NormState(*history.refit(self.rec_values, self.rec_times, params.history_slots),
                         *history.refit(self.up_changes, self.up_times, params.event_slots),
                         *history.refit(self.down_changes, self.down_times, params.event_slots),
                         self.missing_since.copy(), self.lit_at.copy(), self.dark_since.copy(), self.hold_until.copy(),
                         usable.copy())

    def take(self, rows: np.ndarray) -> "NormState":
        """The state of the given rows (an index array; -1 means a new, empty row)."""
        def pick(a: np.ndarray, fill: float) -> np.ndarray:
            return np.asfortranarray(history.take_rows(a, rows, fill))

        return NormState(pick(self.rec_values, 0.0), pick(self.rec_times, np.nan), pick(self.up_changes, 0.0),
                         pick(self.up_times, np.nan), pick(self.down_changes, 0.0), pick(self.down_times, np.nan),
                         pick(self.missing_since, np.nan), pick(self.lit_at, np.nan), pick(self.dark_since, np.nan),
                         pick(self.hold_until, np.nan),
                         None if self.usable_since is None else np.ascontiguousarray(history.take_rows(self.usable_since, rows, np.nan)))


@direct_init
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
    held = np.where(valid, proposals, -np.inf)  # one pass; the loop below works in place
    combined = np.full(proposals.shape[0], -np.inf)
    any_valid = np.zeros(proposals.shape[0], bool)
    all_valid = np.ones(proposals.shape[0], bool)
    for j in range(proposals.shape[1]):
        np.maximum(combined, held[:, j], out=combined)
        any_valid |= valid[:, j]
        all_valid &= valid[:, j]
    combined[~any_valid] = np.nan
    return combined, any_valid, ~all_valid


def _precheck(params: PolicyParams, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HPA's pre-checks: (forced replicas (N,) NaN where none applies, Reason codes (N,))."""
    lo, hi = params.min_replicas, params.max_replicas
    forced, reason = np.full(current.shape, np.nan), np.full(current.shape, -1)
    # the first check that applies wins (disabled, above max, below min): written in reverse
    for check, value, code in ((current < lo, lo, _BELOW), (current > hi, hi, _ABOVE),
                               ((current == 0) & (lo != 0), 0.0, _DISABLED)):
        forced[check], reason[check] = value, code
    return forced, reason


def _missing_data(params: PolicyParams, current: np.ndarray, combined: np.ndarray, any_valid: np.ndarray,
                  any_invalid: np.ndarray, missing_since: np.ndarray, dark: tuple, now: float,
                  ready: np.ndarray | None = None, partial: np.ndarray | None = None):
    """Apply the missing-data rules. Missing data may block a scale-down, never cause one; nor
    may the load of a target with no Ready pod (``ready`` (N,); not applied when None, nor for
    the ``hpa`` preset, which scales as HPA does): what it reads is what nothing served, not its
    demand (a dependency down, every pod failing its readiness probe), and a scale-down would meet
    the load's return with too few pods.

    A target that had Ready pods and lost them all does not scale up either, except to a fallback:
    its pods turned unready together, so the cause is the workload's (a dependency down) and new
    pods would not get Ready; a rate read at the load balancer with client retries kept rising, and
    every workload of a shared dependency ran towards replicas.max until it came back. In an
    overload spiral (a probe that fails under load) the spells last seconds and the cycles between
    them still scale up. After a spell at least ``params.read_window_s`` long, the target holds its
    replicas both ways for that window and an interval once it is Ready again: its readings still
    average the spell (the retries' swell at the balancer, a pods' rate refilling from 0).

    A scale-down proposed while a valid metric's reading is partial (``partial`` (N, M): read
    less than its window after a gap, of the valid metrics only: core/scaling/recovering.py;
    None: none) is held at current,
    reason MetricsRecovering: such a reading reads low, so it may raise replicas, never lower them.

    ``dark``: (lit_at, dark_since, hold_until) (N,) each, NormState's. Returns (proposal (N,),
    hold (N,) bool: skip normalization, reason (N,), missing_since (N,), the new ``dark``).
    """
    # Masked writes into fresh arrays (np.putmask, a[mask] = x) instead of np.where chains:
    # the same values, fewer passes (few rows are ever held).
    blocked_down = any_invalid & any_valid & (combined < current)
    none_valid = ~any_valid
    missing = blocked_down | none_valid
    missing_since = np.where(np.isnan(missing_since), now, missing_since)
    missing_since[any_valid] = np.nan
    reason = np.full(current.shape, -1)
    reason[missing] = _MISSING
    proposal = combined.copy()  # NaN where no metric is valid
    np.putmask(proposal, none_valid, current)
    hold = missing
    if params.fallback_replicas is not None and not params.hpa_semantics:
        expired = none_valid & (now - missing_since >= params.missing_hold_s)
        fallback = np.maximum(current, params.fallback_replicas)  # a fallback only ever raises
        np.putmask(proposal, expired, fallback)
        reason[expired] = _FALLBACK
        hold = missing & ~expired
    if ready is not None and not params.hpa_semantics:
        ready = np.asarray(ready)
        lit_at, dark_since, hold_until = dark
        on = current > 0
        unlit = (ready <= 0) & on
        went_dark = unlit & (np.isfinite(lit_at) | np.isfinite(dark_since))  # a spell after Ready pods
        dark_since = np.where(went_dark, np.fmin(dark_since, now), np.nan)
        window = params.read_window_s
        if window > 0:  # a spell as long as the window: the readings until one window after it hold it
            hold_until = np.where(went_dark & (now - dark_since >= window), now + window + params.interval_s,
                                  hold_until)
        hold_until = np.where(on, hold_until, np.nan)
        after = ~unlit & on & (now < hold_until)
        free = ~hold & (reason != _FALLBACK)
        unserved = ((unlit & (proposal < current)) | ((went_dark | after) & (proposal != current) & free)) & ~hold
        reason[unserved] = _NOT_READY
        hold = hold | unserved
        lit_at = np.where(ready > 0, now, np.where(on, lit_at, np.nan))
        dark = (lit_at, dark_since, hold_until)
    if partial is not None:  # no scale-down on a reading that covers part of its window (after the
        # holds above: a target without Ready pods reads TargetNotReady, a missing metric MetricsMissing)
        recovering = partial.any(axis=1) & (combined < current) & ~hold
        reason[recovering] = _RECOVERING
        hold = hold | recovering
    np.putmask(proposal, hold, current)
    return proposal, hold, reason, missing_since, dark


def _final_reason(current, proposal, stabilized, desired, limit_reason, legacy: bool) -> np.ndarray:
    # Later writes win: the move, then stabilization, then the limit stage's reason.
    reason = np.full(current.shape, _KEEP)
    reason[desired > current] = _UP
    reason[desired < current] = _DOWN
    stab_changed = stabilized != proposal
    reason[stab_changed] = _STAB_DOWN if legacy else _STAB_UP
    if not legacy:
        reason[stab_changed & (proposal < current)] = _STAB_DOWN
    np.putmask(reason, limit_reason != NOT_LIMITED, limit_reason)
    return reason


def normalize(params: PolicyParams, current: np.ndarray, proposals: np.ndarray, valid: np.ndarray,
              state: NormState, now: float, release_rows: np.ndarray | None = None,
              ready: np.ndarray | None = None, partial: np.ndarray | None = None) -> tuple[NormResult, NormState]:
    """Desired replicas for N targets from their (N, M) proposals; pure.

    current: spec replicas (N,). proposals: (N, M) replica proposals (ignored where not valid).
    Returns the stage outputs and the new state (recommendation history written). The scale
    events the desired count would cause are not in it: the shell records them with
    :func:`record_scale_events` once the change is applied (HPA's storeScaleEvent after a
    successful update). release_rows (N,) bool: where ``scaleDown.release: linear`` may release
    (stabilize.fresh_rows; None: all). ready (N,): Ready pods; a target with none does not scale
    down, nor up once it had Ready pods, nor either way for a window after a long spell without
    (reason TargetNotReady; None: not applied; _missing_data). partial (N, M) bool: the readings
    taken less than their metric's read window after a gap (core/scaling/recovering.py): a
    scale-down proposed while a valid one is partial is held (reason MetricsRecovering; None: none).
    """
    current = np.asarray(current, dtype=np.float64)
    n = current.shape[0]
    rec_v, rec_t = state.rec_values, state.rec_times
    fresh = history.is_empty(rec_t)
    if fresh.any():  # first sight: seed with (current, now); no scale-down for one window
        rec_v, rec_t = history.write_slot(rec_v, rec_t, current, now, np.inf, rows=fresh)

    combined, any_valid, any_invalid = combine(proposals, valid)
    forced, pre_reason = _precheck(params, current)
    proposal, hold, miss_reason, missing_since, dark = _missing_data(
        params, current, combined, any_valid, any_invalid, state.missing_since,
        (state.lit_at, state.dark_since, state.hold_until), now, ready, None if partial is None else partial & valid)
    is_forced = ~np.isnan(forced)
    skip = is_forced | hold

    if params.legacy:
        stabilized = stabilize_legacy(proposal, rec_v, rec_t, now, params.scale_down.window_s)
        keep_s = params.scale_down.window_s
        desired, limit_reason = clamp_legacy(current, stabilized, params.min_replicas, params.max_replicas,
                                             params.scale_up_limit_factor, params.scale_up_limit_minimum)
    else:
        up_w, down_w = params.scale_up.window_s, params.scale_down.window_s
        stabilized = stabilize_with_behavior(current, proposal, rec_v, rec_t, now, up_w, down_w,
                                             params.scale_down_linear_release, release_rows)
        stabilized = hold_small_steps(current, stabilized, params.scale_down_min_step)
        keep_s = max(up_w, down_w)
        # each event history scanned once for the periods of both directions' rules
        n_up = params.scale_up.periods_s.shape[0]
        periods = np.concatenate([params.scale_up.periods_s, params.scale_down.periods_s])
        added = changes_in_periods(state.up_changes, state.up_times, now, periods)
        removed = changes_in_periods(state.down_changes, state.down_times, now, periods)
        up_limit = scale_up_limit(current, added[:, :n_up], removed[:, :n_up], params.scale_up)
        down_limit = scale_down_limit(current, added[:, n_up:], removed[:, n_up:], params.scale_down)
        desired, limit_reason = limit_with_behavior(current, stabilized, params.min_replicas, params.max_replicas,
                                                    up_limit, down_limit)

    # Store the raw proposal; HPA stores nothing when it bails out before normalizing, while
    # Setpoint's own mode remembers ``current`` during a hold so a scale-down after an outage
    # still waits out the stabilization window (a MetricsRecovering hold too: its partial reading
    # would cap a scale-up window; and the targets stay on the kernel's common pattern of times).
    store = ~skip | (hold & ~is_forced & (not params.hpa_semantics))
    rec_v, rec_t = history.write_slot(rec_v, rec_t, proposal, now, keep_s, rows=store)

    # The stages' arrays are this call's own: the pre-checks and holds overwrite them in place.
    reason = _final_reason(current, proposal, stabilized, desired, limit_reason, params.legacy)
    np.putmask(reason, miss_reason >= 0, miss_reason)
    np.putmask(reason, pre_reason >= 0, pre_reason)
    np.putmask(desired, hold, current)
    np.putmask(desired, is_forced, forced)
    np.putmask(stabilized, skip, desired)
    np.putmask(limit_reason, skip, NOT_LIMITED)

    new_state = NormState(rec_v, rec_t, state.up_changes, state.up_times, state.down_changes, state.down_times,
                          missing_since, *dark, state.usable_since)
    result = NormResult(combined=combined, proposal=proposal, stabilized=stabilized, desired=desired,
                        limit_reason=limit_reason, reason=reason,
                        scaling_active=~is_forced & any_valid & ~hold)
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
    return dataclasses.replace(state, up_changes=up_c, up_times=up_t, down_changes=down_c, down_times=down_t)
