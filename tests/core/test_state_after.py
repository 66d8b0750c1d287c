"""Decisions return what they would cause; ``state_after(applied)`` keeps only what happened.

Per row: an applied change records its scale event (or spends its budget and opens its
verification window); a change that was not applied leaves no trace; ``state`` is the
all-applied state. Pure: no shell involved."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.model import ActionKind
from tests.core.healing import check, params
from tests.core.helpers import T0, policy


def _events(state: ScalingState) -> np.ndarray:
    """(N,) replicas added by recorded scale-up events."""
    n = state.norm
    return np.where(np.isnan(n.up_times), 0.0, n.up_changes).sum(axis=1)


@given(applied=st.lists(st.booleans(), min_size=3, max_size=3))
@settings(max_examples=30, deadline=None)
def test_scale_events_only_for_applied_rows(applied):
    p = policy()
    d = decide(p, Observation.of([2.0, 2.0, 5.0], [2.0, 2.0, 5.0], [[400.0], [100.0], [900.0]]),
               ScalingState.empty(3, p), T0)
    assert d.desired.tolist() == [4, 2, 9]  # +2, no change, +4 (first sight: the default limits)
    mask = np.asarray(applied)
    assert _events(d.state_after(mask)).tolist() == np.where(mask, [2.0, 0.0, 4.0], 0.0).tolist()
    assert _events(d.state).tolist() == [2.0, 0.0, 4.0]
    assert _events(d.kept).tolist() == [0.0, 0.0, 0.0]


def test_scale_events_use_the_replicas_actually_set():
    p = policy()
    d = decide(p, Observation.of([2.0], [2.0], [[400.0]]), ScalingState.empty(1, p), T0)
    assert _events(d.state_after(True, replicas=np.array([3.0]))).tolist() == [1.0]


@pytest.mark.parametrize("applied, restarts_used, verifying", [
    pytest.param(True, 1, True, id="applied-spends-and-verifies"),
    pytest.param(False, 0, False, id="not-applied-leaves-no-trace"),
])
def test_a_restart_is_charged_only_when_applied(applied, restarts_used, verifying):
    hp = params(check(action=ActionKind.ROLLING_RESTART, for_s=0.0))
    obs = HealthObservation.of([3], checks=1, values=[[0.9]], revision=["1"])
    d = heal(hp, obs, HealthState.empty(1, hp), T0)
    assert ActionKind(int(d.action[0])) is ActionKind.ROLLING_RESTART
    state = d.state_after(np.array([applied]))
    assert state.budgets.restarts_used(T0 + 1).tolist() == [restarts_used]
    assert bool(state.remedy.verify_action[0] != ActionKind.NONE) is verifying
    assert d.state_after(True) is d.state
