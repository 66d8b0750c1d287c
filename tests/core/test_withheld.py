"""Withheld replicas (core/scaling/withheld.py) and the proposals sized on top of them (propose.py).

Table rows name the pod situation; hypothesis checks that withholding never lowers a proposal
(so it never causes a scale-down) and that none withheld is the old proposal exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams
from controller.core.scaling.propose import propose_policy
from controller.core.scaling.withheld import (STARTUP_MARGIN, UNOBSERVED_FLOOR_S, withheld_after_s,
                                             withheld_replicas)

NOW = 1_700_000_000.0
NAN = float("nan")


def pods(*groups):
    """(rows, created, not_ready) from groups (row, count, age_s, ready)."""
    rows, created, not_ready = [], [], []
    for row, count, age, ready in groups:
        rows += [row] * count
        created += [NOW - age] * count
        not_ready += [not ready] * count
    return np.array(rows, np.int64), np.array(created), np.array(not_ready, bool)


WITHHELD = [
    pytest.param(pods((0, 6, 1200, True), (0, 4, 90, False)), [8], [6], [2], id="stuck-rollout-surge-beyond-spec"),
    pytest.param(pods((0, 6, 1200, True), (0, 4, 20, False)), [10], [6], [0], id="scale-up-pods-starting"),
    pytest.param(pods((0, 6, 1200, True), (0, 4, 90, False), (0, 3, 10, False)), [10], [6], [1],
                 id="stuck-and-starting-open-slots-only"),
    pytest.param(pods((0, 8, 1200, True)), [8], [8], [0], id="all-ready"),
    pytest.param(pods((0, 5, 1200, True), (0, 3, NAN, False)), [8], [5], [0], id="unknown-creation-not-counted"),
    pytest.param(pods((0, 3, 1200, True), (0, 2, 61, False), (1, 4, 1200, True), (1, 1, 59, False)), [5, 5], [3, 4],
                 [2, 0], id="two-targets-either-side-of-the-bound"),
    pytest.param(pods((0, 4, 1200, True), (1, 2, 300, False), (1, 2, 1200, True)), [4, 4], [4, 2], [0, 2],
                 id="a-target-without-pods-read"),
    pytest.param(pods((0, 10, 1200, False)), [10], [0], [0], id="every-pod-stuck-a-shared-fault-none-replaced"),
    pytest.param(pods((0, 3, 1200, True), (0, 7, 1200, False)), [10], [3], [3], id="most-stuck-at-most-the-ready"),
    pytest.param(pods((0, 5, 1200, True), (0, 5, 1200, False)), [10], [5], [5], id="half-stuck-all-replaced"),
]


@pytest.mark.parametrize("pod_arrays, spec, ready, expect", WITHHELD)
def test_withheld_replicas(pod_arrays, spec, ready, expect):
    rows, created, not_ready = pod_arrays
    after = np.full(len(spec), 60.0)
    got = withheld_replicas(rows, created, not_ready, after, np.array(spec, float), np.array(ready, float), NOW)
    np.testing.assert_array_equal(got, np.array(expect, float))


def test_the_bound_follows_observed_start_ups_else_the_policys_at_least_the_floor():
    after = withheld_after_s(np.array([20.0, NAN, 150.0]), 45.0, 3)
    np.testing.assert_array_equal(after, STARTUP_MARGIN * np.array([20.0, UNOBSERVED_FLOOR_S, 150.0]))
    np.testing.assert_array_equal(withheld_after_s(None, 45.0, 2), [STARTUP_MARGIN * UNOBSERVED_FLOOR_S] * 2)
    np.testing.assert_array_equal(withheld_after_s(np.array([NAN]), 300.0, 1), [STARTUP_MARGIN * 300.0])


def policy(kind: MetricKind, target: float, tolerance_down: float = 0.2) -> PolicyParams:
    return PolicyParams(name="w", metrics=(MetricParams("m", kind, target),), min_replicas=1, max_replicas=100,
                        tolerance_up=0.05, tolerance_down=tolerance_down)


AVG, VALUE, UTIL = MetricKind.AVERAGE_PER_REPLICA, MetricKind.VALUE, MetricKind.UTILIZATION
# (params, value, current, ready, status, withheld, proposal with, proposal without)
PROPOSALS = [
    pytest.param(policy(AVG, 85.0), 600.0, 8, 6, 10, 2, 10, 8, id="average-sized-on-serving-pods"),
    pytest.param(policy(AVG, 85.0), 600.0, 10, 8, 12, 2, 10, 8, id="average-within-band-on-serving-holds"),
    pytest.param(policy(AVG, 85.0), 300.0, 10, 8, 10, 2, 6, 4, id="average-scale-down-keeps-withheld-on-top"),
    pytest.param(policy(VALUE, 0.85), 1.0, 8, 6, 10, 2, 10, 8, id="value-ready-pods-plus-withheld"),
    pytest.param(policy(UTIL, 60.0), 90.0, 8, 6, 10, 2, 11, 8, id="utilization-withheld-not-diluting"),
]


@pytest.mark.parametrize("params, value, current, ready, status, withheld, with_w, without", PROPOSALS)
def test_proposals_size_the_serving_pods_and_add_the_withheld(params, value, current, ready, status, withheld,
                                                              with_w, without):
    args = (params, np.array([[value]]), np.array([float(current)]), np.array([float(ready)]),
            np.array([float(status)]))
    got, valid = propose_policy(*args, np.array([float(withheld)]))
    base, _ = propose_policy(*args)
    assert valid.all()
    assert (got[0, 0], base[0, 0]) == (with_w, without)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([AVG, VALUE, UTIL]), target=st.sampled_from([0.5, 60.0, 85.0]),
       value=st.one_of(st.floats(0, 5000), st.just(NAN)), current=st.integers(0, 40), lag=st.integers(0, 5),
       extra=st.integers(0, 3), withheld=st.integers(0, 5), tolerance=st.sampled_from([0.0, 0.1, 0.3]))
def test_withholding_never_lowers_a_proposal(kind, target, value, current, lag, extra, withheld, tolerance):
    p = policy(kind, target, tolerance)
    ready = max(current - lag, 0)
    w = min(withheld, current - ready)
    args = (p, np.array([[value]]), np.array([float(current)]), np.array([float(ready)]),
            np.array([float(current + extra)]))
    base, base_ok = propose_policy(*args)
    got, ok = propose_policy(*args, np.array([float(w)]))
    np.testing.assert_array_equal(ok, base_ok)
    if w == 0:
        np.testing.assert_array_equal(got, base)
    elif ok.all():
        assert got[0, 0] >= base[0, 0]
        assert got[0, 0] >= min(base[0, 0], current)  # never a scale-down the proposal without did not make


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 4), p=st.integers(0, 30))
def test_withheld_counts_are_bounded_by_the_stuck_pods_and_the_open_slots(data, n, p):
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=p, max_size=p)), np.int64)
    ages = np.array(data.draw(st.lists(st.one_of(st.floats(0, 3600), st.just(NAN)), min_size=p, max_size=p)))
    not_ready = np.array(data.draw(st.lists(st.booleans(), min_size=p, max_size=p)), bool)
    spec = np.array(data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), float)
    ready = np.array(data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), float)
    after = np.array(data.draw(st.lists(st.sampled_from([20.0, 60.0, 240.0]), min_size=n, max_size=n)))
    got = withheld_replicas(rows, NOW - ages, not_ready, after, spec, ready, NOW)
    old_unready = np.bincount(rows[not_ready & (ages > after[rows])], minlength=n)
    assert got.shape == (n,) and (got >= 0).all()
    assert (got <= old_unready).all() and (got <= np.maximum(spec - ready, 0)).all() and (got <= ready).all()
    assert (got[ready >= spec] == 0).all()


def run_outage(minutes: float, rps: float = 600.0, spec: float = 10.0) -> list[float]:
    """Spec replicas, cycle by cycle, of the default policy over a workload none of whose pods
    get Ready (a dependency down: old and new pods alike), its request rate still read (at the
    load balancer); the withheld count from the pods as the shell would read them (2 x a 32 s
    start-up bound), new pods created when spec rises."""
    from controller.core.scaling.decide import Observation, ScalingState, decide
    from controller.policy import load_policies
    from tests.simulators.conftest_paths import POLICIES

    params = load_policies([POLICIES / "setpoint-default.yaml"])[0].params
    state, created, specs = ScalingState.empty(1, params), [NOW - 3600.0] * int(spec), []
    for k in range(int(minutes * 60 / params.interval_s)):
        now = NOW + k * params.interval_s
        c = np.array(created)
        w = withheld_replicas(np.zeros(c.size, np.int64), c, np.ones(c.size, bool), np.array([64.0]),
                              np.array([spec]), np.array([0.0]), now)
        decision = decide(params, Observation.of([spec], [0.0], [[rps]], withheld=w), state, now)
        state, new = decision.state, float(decision.desired[0])
        created = created + [now] * int(new - spec) if new > spec else created[:int(new)]
        spec = new
        specs.append(spec)
    return specs


def test_a_fault_every_pod_shares_is_not_replaced_round_after_round():
    """Every pod stuck, the load still measured: counted as withheld, each round of replacements
    (stuck in turn) asked for another, 10 -> 18 -> 20 replicas (replicas.max) in 75 s. Capped at
    the Ready pods (none), none is withheld; and with no Ready pod the policy does not scale down
    either (test_no_ready_pods.py): 10 replicas throughout."""
    assert run_outage(minutes=30) == [10.0] * 120
