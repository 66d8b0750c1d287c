"""The saturation floor (core/scaling/saturation.py): a reading at what the Ready pods serve is a
lower bound on demand, sized as if the demand were capacity / target above it; the reading is
the window's or the latest one where higher. Named rows through decide on both paths, and
properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling.decide import Observation, ScalingState, decide_numpy
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.core.scaling.saturation import saturated, saturation_floor, saturation_values
from controller.model import Reason
from tests.core.helpers import T0

# the default policy's numbers: 85 rps per replica of 100, up tolerance 5%
TARGET, CAPACITY = 85.0, 100.0


def policy(capacity: float = CAPACITY, **overrides) -> PolicyParams:
    rps = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, TARGET, saturation_capacity=capacity)
    base = dict(name="sat", metrics=(rps,), min_replicas=1, max_replicas=100, tolerance_up=0.05, tolerance_down=0.2)
    base.update(overrides)
    return PolicyParams(**base)


def decide_once(params: PolicyParams, current: float, ready: float, value: float, withheld: float = 0.0,
                path: str = "numpy", latest: float | None = None):
    obs = Observation.of(np.array([current]), np.array([ready]), np.array([[value]]),
                         withheld=np.array([withheld]) if withheld else None,
                         latest=None if latest is None else np.array([[latest]]))
    state = ScalingState.empty(1, params)
    if path == "numpy":
        return decide_numpy(params, obs, state, T0)
    from controller.core.scaling import decide as decide_module
    return decide_module._decide_compiled(params, obs, state, T0)


PATHS = [pytest.param("numpy", id="numpy"),
         pytest.param("compiled", id="compiled",
                      marks=pytest.mark.skipif(not compiled.available(), reason="numba is not installed"))]

ROWS = [
    # (current, ready, value rps, withheld, capacity, expected proposal); 85 of 100: ceil(v / 85 x 100 / 85)
    pytest.param(4, 4, 400.0, 0, CAPACITY, 6, id="4-ready-read-at-capacity-ask-6-not-5"),
    pytest.param(4, 4, 430.0, 0, CAPACITY, 6, id="a-balancer-rate-above-capacity-its-demand-6-with-headroom-6"),
    pytest.param(4, 4, 1000.0, 0, CAPACITY, 14, id="far-above-the-demand-12-and-the-headroom-once-more-14"),
    pytest.param(4, 4, 380.0, 0, CAPACITY, 6, id="at-the-up-tolerance-under-capacity-saturated"),
    pytest.param(4, 4, 379.0, 0, CAPACITY, 5, id="just-under-it-sized-on-the-reading"),
    pytest.param(8, 4, 400.0, 0, CAPACITY, 6, id="4-starting-the-ready-saturated-down-to-6-not-5"),
    pytest.param(6, 4, 400.0, 2, CAPACITY, 8, id="two-withheld-kept-on-top"),
    pytest.param(4, 0, 400.0, 0, CAPACITY, 5, id="no-ready-pod-no-floor"),
    pytest.param(4, 4, 400.0, 0, 0.0, 5, id="no-capacity-no-floor"),
    pytest.param(2, 2, 150.0, 0, CAPACITY, 2, id="under-capacity-within-tolerance"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("current, ready, value, withheld, capacity, expected", ROWS)
def test_the_proposal_of_a_reading(current, ready, value, withheld, capacity, expected, path):
    d = decide_once(policy(capacity), current, ready, value, withheld, path)
    assert d.proposals[0, 0] == expected
    assert bool(saturated(policy(capacity), np.array([[value]]), np.array([ready]))[0, 0]) == (
        capacity > 0 and ready > 0 and value >= ready * capacity * 0.95)


@pytest.mark.parametrize("path", PATHS)
def test_a_start_of_run_over_capacity_gets_its_pods_a_start_up_sooner(path):
    """The WC98 window of bench/generalization.py's podswin set: 430 rps offered to 4 pods of 100,
    the rate read at the pods (400). Sized on it, 5 pods, the sixth a start-up later; with the
    floor, 6 at once (what the hpa preset asks for at 100% CPU against 70%), and the decision
    says ScaleUp and why."""
    d = decide_once(policy(), 4, 4, 400.0, path=path)
    assert d.norm.desired[0] == 6 and d.norm.reason[0] == int(Reason.SCALE_UP)
    assert d.record(0, "sat", "default/web", ("rps",)).to_dict()["saturated"] == ["rps"]
    without = decide_once(policy(0.0), 4, 4, 400.0, path=path)
    assert without.norm.desired[0] == 5


LATEST_ROWS = [
    # (current, ready, window's value, latest reading, expected proposal, saturated); 825 rps on
    # 11 pods is within the down tolerance of 85 per pod: 11
    pytest.param(11, 11, 825.0, 1100.0, 16, True,
                 id="dark-10s-in-40-the-window-reads-75-per-pod-the-latest-the-cap-16-not-11"),
    pytest.param(11, 11, 825.0, np.nan, 11, False, id="no-latest-reading-the-window-alone"),
    pytest.param(11, 11, 825.0, 990.0, 11, False, id="latest-under-the-cap-not-saturated"),
    pytest.param(11, 11, 1100.0, 900.0, 16, True, id="a-lower-latest-does-not-lower-a-saturated-window"),
    pytest.param(10, 10, 700.0, 700.0, 10, False, id="a-flapping-dependency-at-constant-load-reads-under-the-cap"),
    pytest.param(11, 0, 825.0, 1100.0, 11, False, id="no-ready-pod-no-floor"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("current, ready, value, latest, expected, is_saturated", LATEST_ROWS)
def test_the_latest_reading_where_higher(current, ready, value, latest, expected, is_saturated, path):
    """The overload spiral read at the pods (tests/simulators/test_overload_probe.py): 11 pods
    serve at their cap whenever they are Ready, but dark 10 s in every 40 s, so the [1m] rate
    averages 75 rps per pod; the [30s] reading between spells is at the cap."""
    d = decide_once(policy(), current, ready, value, path=path, latest=latest)
    assert d.proposals[0, 0] == expected
    record = d.record(0, "sat", "default/web", ("rps",)).to_dict()
    assert ("saturated" in record) == is_saturated
    # the record says when the latest reading was the one at the cap
    assert record.get("saturatedLatest") == ({"rps": latest} if is_saturated and latest > value else None)


def test_a_missing_value_is_left_alone():
    p = policy()
    proposals = np.array([[np.nan, 5.0]])
    valid = np.array([[False, True]])
    two = PolicyParams(name="two", metrics=p.metrics * 2, min_replicas=1, max_replicas=100, tolerance_up=0.05)
    out = saturation_floor(two, proposals, valid, np.array([[np.nan, 400.0]]), np.array([4.0]))
    assert np.isnan(out[0, 0]) and out[0, 1] == 6


N = 6
ROW = st.tuples(st.integers(0, 20), st.integers(0, 20), st.one_of(st.floats(0, 5000), st.just(np.nan)),
                st.integers(0, 3), st.one_of(st.floats(0, 5000), st.just(np.nan)))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(ROW, min_size=N, max_size=N), capacity=st.sampled_from([0.0, 60.0, 100.0, 150.0]),
       tol=st.sampled_from([0.0, 0.05, 0.1]))
def test_properties(rows, capacity, tol):
    """Never lowers a valid proposal, never touches an invalid one, raises only to the reading's
    pods with the headroom once more (plus the withheld ones) and only where saturated, a latest
    reading only ever raises the reading, and batched equals row by row."""
    p = policy(capacity, tolerance_up=tol)
    current = np.array([float(c) for c, *_ in rows])
    ready = np.minimum(np.array([float(r) for _, r, *_ in rows]), current)
    window = np.array([[v] for _, _, v, *_ in rows])
    latest = np.array([[x] for *_, x in rows])
    withheld = np.minimum(np.array([float(w) for *_, w, _ in rows]), current - ready)
    proposals = np.ceil(window / TARGET)
    valid = np.isfinite(window)
    values = saturation_values(window, latest)
    assert (values[valid] >= window[valid]).all() and np.array_equal(saturation_values(window, None), window, equal_nan=True)
    out = saturation_floor(p, proposals, valid, values, ready, withheld)
    unraised = saturation_floor(p, proposals, valid, window, ready, withheld)
    assert (np.where(valid, out >= unraised, True)).all()
    assert (np.where(valid, out >= proposals, True)).all()
    assert np.array_equal(out[~valid], proposals[~valid], equal_nan=True)
    raised = valid & (out > proposals)
    floor = np.ceil(values / TARGET * capacity / TARGET) + withheld[:, None]
    assert (out[raised] == floor[raised]).all()
    assert (saturated(p, values, ready) | ~raised).all()
    for i in range(N):
        one = saturation_floor(p, proposals[i:i + 1], valid[i:i + 1], values[i:i + 1], ready[i:i + 1],
                               withheld[i:i + 1])
        assert np.array_equal(one, out[i:i + 1], equal_nan=True)


def test_explain_says_which_reading_was_at_the_cap(tmp_path):
    """`setpoint explain` names the saturated metric and, where its latest reading was the one
    at the cap, that reading: why 825 rps on 11 pods (within tolerance) asked for 16."""
    import json

    from typer.testing import CliRunner

    from controller.cli import app

    d = decide_once(policy(), 11, 11, 825.0, latest=1100.0)
    path = tmp_path / "decisions.jsonl"
    path.write_text(json.dumps(d.record(0, "sat", "default/web", ("rps",)).to_dict()) + "\n", encoding="utf-8")
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "-> 16" in text and "saturated rps (its latest reading 1100 is above the window's)" in text
