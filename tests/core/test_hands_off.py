"""core/scaling/external.py's hands_off at fixed inputs: a held target keeps the count someone set,
or, where they raised it, at least that count (the policy may scale above, never below)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.external import hands_off
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.model import Reason
from tests.core.helpers import T0, no_limits

RPS = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0)
PARAMS = PolicyParams("p", (RPS,), min_replicas=1, max_replicas=50, **no_limits())
NAN = math.nan

# (name, current, rps, held, floor, desired, reason)
ROWS = [
    ("not held: the policy's decision", 10, 500.0, False, NAN, 5, Reason.SCALE_DOWN),
    ("held, lowered by someone: kept as set, even under load", 3, 2000.0, True, NAN, 3, Reason.EXTERNAL_OVERRIDE),
    ("held, raised: not below the floor", 30, 500.0, True, 30.0, 30, Reason.EXTERNAL_OVERRIDE),
    ("held, raised: more when the load asks for it", 30, 4000.0, True, 30.0, 40, Reason.SCALE_UP),
    ("held, raised, above it since: down to the floor", 40, 500.0, True, 30.0, 30, Reason.EXTERNAL_OVERRIDE),
    ("held, raised, above it since: between floor and current", 40, 3500.0, True, 30.0, 35, Reason.SCALE_DOWN),
    ("held, raised: a decision at the floor is the hands-off's", 30, 3000.0, True, 30.0, 30, Reason.EXTERNAL_OVERRIDE),
]


@pytest.mark.parametrize("name, current, rps, held, floor, desired, reason", ROWS, ids=[r[0] for r in ROWS])
def test_hands_off_keeps_the_count_or_its_floor(name, current, rps, held, floor, desired, reason):
    obs = Observation.of([float(current)], [float(current)], [[rps]])
    d = hands_off(decide(PARAMS, obs, ScalingState.empty(1, PARAMS), T0), np.array([held]), np.array([floor]))
    assert (int(d.desired[0]), Reason(int(d.reason[0]))) == (desired, reason)


def test_nothing_held_is_the_same_decision():
    obs = Observation.of([10.0, 10.0], [10.0, 10.0], [[500.0], [2000.0]])
    d = decide(PARAMS, obs, ScalingState.empty(2, PARAMS), T0)
    assert hands_off(d, np.array([False, False]), np.array([30.0, NAN])) is d
