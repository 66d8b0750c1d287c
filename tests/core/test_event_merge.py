"""The union of the rate limits' scale-event history in memory (the warm start's replay, or the
process's own) with the one kept on the cluster (core/scaling/event_merge.py): rows with fixed
times, and properties (hypothesis): merging is idempotent and never loses an event within the
period (no window's sum of changes is below either history's)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling.event_merge import merge_histories

NOW = 1_765_000_000.0
PERIOD_S = 60.0
TOLERANCE_S = 15.0  # the policy's interval
SLOTS = 6


def row(events: list[tuple[float, float]], slots: int = SLOTS) -> tuple[np.ndarray, np.ndarray]:
    """(1, max(slots, events)) changes and times from (seconds before NOW, change) pairs."""
    width = max(slots, len(events))
    changes, times = np.zeros((1, width)), np.full((1, width), np.nan)
    for j, (ago, change) in enumerate(events):
        times[0, j], changes[0, j] = NOW - ago, change
    return changes, times


def events(changes: np.ndarray, times: np.ndarray) -> list[tuple[float, float]]:
    """The (seconds before NOW, change) events of row 0, oldest first."""
    keep = np.isfinite(times[0])
    return sorted(((NOW - t, c) for t, c in zip(times[0][keep].tolist(), changes[0][keep].tolist())), reverse=True)


def merged(memory, kept, slots: int = SLOTS) -> list[tuple[float, float]]:
    """Merge one row: ``memory`` in ``slots`` slots, ``kept`` as long as it is."""
    return events(*merge_histories(*row(memory, slots), *row(kept, 1), NOW, PERIOD_S, TOLERANCE_S))


@pytest.mark.parametrize("memory,kept,slots,expect", [
    pytest.param([(30, 1)], [], SLOTS, [(30, 1)], id="no-record-keeps-memory"),
    pytest.param([], [(10, 1)], SLOTS, [(10, 1)], id="record-only-a-cold-start-gets-the-old-leaders-step"),
    pytest.param([(15, 1)], [(15, 1)], SLOTS, [(15, 1)], id="same-step-in-both-counted-once"),
    pytest.param([(20, 1)], [(12, 1)], SLOTS, [(12, 1)], id="replay-off-the-grid-same-step-once-at-the-later-time"),
    pytest.param([(15, 2)], [(10, 1)], SLOTS, [(10, 2)], id="same-step-once-with-the-larger-change"),
    pytest.param([(30, 1)], [(15, 1)], SLOTS, [(30, 1), (15, 1)], id="two-steps-an-interval-apart-both-count"),
    pytest.param([], [(20, 1), (10, 1)], SLOTS, [(20, 1), (10, 1)], id="steps-of-one-history-never-paired"),
    pytest.param([(20, 1)], [(30, 1), (18, 1)], SLOTS, [(30, 1), (18, 1)], id="closest-pairs-first"),
    pytest.param([(10, 1), (10, 2)], [(10, 2)], SLOTS, [(10, 2), (10, 1)], id="a-step-seen-twice-pairs-with-itself"),
    pytest.param([], [(60, 3), (59.5, 1)], SLOTS, [(59.5, 1)], id="a-period-old-dropped"),
    pytest.param([(90, 1)], [(10, 1)], SLOTS, [(10, 1)], id="memory-older-than-the-period-dropped-too"),
    pytest.param([], [(-3600, 1)], SLOTS, [(0, 1)], id="a-time-ahead-of-now-counts-as-now"),
    pytest.param([], [(10, 0), (5, -2)], SLOTS, [], id="changes-that-are-not-positive-ignored"),
    pytest.param([(50, 1), (40, 1)], [(20, 1), (10, 1)], 2, [(50, 1), (40, 1), (20, 1), (10, 1)],
                 id="more-than-the-slots-widens-the-history"),
    pytest.param([], [(50, 1), (45, 1), (40, 1), (20, 1), (10, 1)], 2, [(45, 2), (40, 1), (20, 1), (10, 1)],
                 id="more-than-twice-the-slots-folds-the-oldest-into-the-next"),
])
def test_merge_rows(memory, kept, slots, expect):
    assert merged(memory, kept, slots) == expect


def test_rows_are_merged_each_with_its_own_record():
    """Batched: each row with its own record; a row without one keeps its events that still count."""
    changes = np.array([[1.0, 3.0], [2.0, 0.0]])
    times = np.array([[NOW - 90, NOW - 5], [NOW - 10, np.nan]])
    kept_changes, kept_times = np.array([[0.0], [1.0]]), np.array([[np.nan], [NOW - 40]])
    out_c, out_t = merge_histories(changes, times, kept_changes, kept_times, NOW, PERIOD_S, TOLERANCE_S)
    assert out_c[0].tolist() == [3.0, 0.0] and out_t[0, 0] == NOW - 5
    assert out_c[1].tolist() == [1.0, 2.0] and out_t[1].tolist() == [NOW - 40, NOW - 10]
    assert out_c.flags.f_contiguous and changes[1, 0] == 2.0  # NormState's order; the inputs untouched


history = st.lists(st.tuples(st.integers(-20, 130).map(float), st.integers(1, 4).map(float)), max_size=SLOTS)


def window_sums(ev: list[tuple[float, float]]) -> list[float]:
    """Per span p (seconds), the sum of the changes less than p old (a future time read as now)."""
    return [sum(c for ago, c in ev if max(ago, 0.0) < p) for p in np.arange(1.0, PERIOD_S + 1.0, 1.0)]


@settings(max_examples=300, deadline=None)
@given(history, history)
def test_merge_never_loses_an_event_within_the_period(memory, kept):
    """No span up to the period has a smaller sum of changes after the merge than in either
    history: the merged history never allows a step either history forbids."""
    out = merged(memory, kept)
    for before in (memory, kept):
        assert all(o >= b for o, b in zip(window_sums(out), window_sums(before)))


@settings(max_examples=300, deadline=None)
@given(history, history)
def test_merge_is_idempotent(memory, kept):
    """Merging a history with itself, or with the record again, changes nothing."""
    once = merged(memory, kept)
    as_ago = [(ago, c) for ago, c in once]
    assert merged(as_ago, as_ago) == once
    assert merged(as_ago, kept) == once


def test_a_widened_history_decides_the_same_in_place_and_pure():
    """The merged history may be wider than the policy's E slots: the compiled in-place kernel
    reads it as the pure ``decide`` does (both take the width from the arrays)."""
    from dataclasses import replace

    from controller.core.scaling.decide import Observation, ScalingState
    from controller.policy import load_policy_text
    from controller.runtime.scaling_memory import ScalingMemory
    from tests.runtime.test_durable_scale_events import POLICY

    [policy] = load_policy_text(POLICY % ("Pods", 2, "Percent", 20), "web.yaml")
    params, n = policy.params, 3
    state = ScalingState.empty(n, params)
    e = params.event_slots
    kept_c = np.ones((n, 2 * e))
    kept_t = NOW - 4.0 * np.arange(1, 2 * e + 1)[None, :].repeat(n, 0)
    kept_t[0] = np.nan  # row 0: nothing kept
    norm = state.norm
    up = merge_histories(norm.up_changes, norm.up_times, kept_c, kept_t, NOW, PERIOD_S, TOLERANCE_S)
    down = merge_histories(norm.down_changes, norm.down_times, kept_c, kept_t, NOW, PERIOD_S, TOLERANCE_S)
    assert up[0].shape == (n, 2 * e)
    state = replace(state, norm=replace(norm, up_changes=up[0], up_times=up[1], down_changes=down[0],
                                        down_times=down[1]))
    runs = []
    for in_place in (True, False):
        memory, current, out = ScalingMemory(state, in_place=in_place), np.full(n, 10.0), []
        for k in range(12):
            values = np.array([[600.0], [90.0], [600.0 if k < 6 else 30.0]])
            obs = Observation(current=current.copy(), ready=current.copy(), status=current.copy(), values=values,
                              present=np.ones((n, 1), bool), sample_age_s=np.zeros((n, 1)))
            decision = memory.decide(params, obs, NOW + 15.0 * (k + 1))
            memory.commit(decision, True, None)
            current = np.asarray(decision.norm.desired, float)
            out.append(current.tolist())
        runs.append(out)
    assert runs[0] == runs[1]
