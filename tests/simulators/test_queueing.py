"""The queueing model: limits, monotonicity, drop and queue modes, bad-pod latency, utilization."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators import queueing as Q
from simulators.cluster import SimCluster
from simulators.workload import ServiceConfig
from tests.simulators.helpers import column, run

rates = st.floats(min_value=0.0, max_value=1e5, allow_nan=False)
capacities = st.floats(min_value=1.0, max_value=1e4, allow_nan=False)
base_latencies = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)


def latency(offered, capacity, base_s=0.05, backlog=0.0, dt_s=5.0, queue_limit=0.0, timeout_s=10.0,
            tails=(1.0, 1.5, 2.0)):
    """(served, dropped, new_backlog, (3,) latencies) for one service through the model."""
    lam, cap = np.array([offered], float), np.array([capacity], float)
    served, dropped, new_backlog = Q.serve(lam, cap, np.array([backlog]), dt_s, np.array([queue_limit]))
    safe = np.maximum(cap, Q.TINY_RPS)
    waits = Q.waiting_quantiles(served, safe, Q.waiting_exponent(Q.server_count(cap, np.array([base_s]))))
    base = np.array(tails)[:, None] * base_s
    no_cap = (cap == 0) & ((lam > 0) | (new_backlog > 0))
    lat = Q.latency_quantiles(base, waits, None, new_backlog / safe, np.array([timeout_s]), no_cap)
    return served[0], dropped[0], new_backlog[0], lat[:, 0]


@settings(max_examples=200, deadline=None)
@given(a=rates, b=rates, capacity=capacities, base_s=base_latencies)
def test_latency_is_non_decreasing_in_load_at_fixed_capacity(a, b, capacity, base_s):
    lo, hi = sorted((a, b))
    assert (latency(lo, capacity, base_s)[3] <= latency(hi, capacity, base_s)[3]).all()


@settings(max_examples=200, deadline=None)
@given(offered=rates, capacity=capacities, base_s=base_latencies)
def test_drop_mode_serves_at_most_capacity_and_accounts_for_every_request(offered, capacity, base_s):
    served, dropped, backlog, lat = latency(offered, capacity, base_s)
    assert 0.0 <= served <= capacity
    assert dropped >= 0.0 and backlog == 0.0
    assert served + dropped == pytest.approx(offered, rel=1e-12, abs=1e-9)
    assert (np.diff(lat) >= 0).all()  # p50 <= p95 <= p99
    assert base_s <= lat[0] and (lat <= 10.0).all()


@settings(max_examples=200, deadline=None)
@given(offered=rates, capacity=capacities, backlog=st.floats(0.0, 500.0), limit=st.floats(0.0, 500.0))
def test_queue_mode_keeps_the_backlog_within_its_limit_and_conserves_requests(offered, capacity, backlog, limit):
    backlog = min(backlog, limit)
    served, dropped, new_backlog, _ = latency(offered, capacity, backlog=backlog, queue_limit=limit)
    assert 0.0 <= new_backlog <= limit and served <= capacity and dropped >= -1e-9
    # what came in (offered over the tick plus the old backlog) went out, was dropped or waits
    assert (served + dropped) * 5.0 + new_backlog == pytest.approx(offered * 5.0 + backlog, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(served=rates, dropped=rates, pod_error=st.floats(0.0, 1.0))
def test_error_ratio_stays_in_unit_interval(served, dropped, pod_error):
    _, ratio = Q.error_ratio(np.array([served]), np.array([dropped]), np.array([pod_error]))
    assert 0.0 <= ratio[0] <= 1.0 + 1e-12


@pytest.mark.parametrize("offered, capacity, expected", [
    pytest.param(0.0, 100.0, (0.05, 0.075, 0.10), id="no-load-is-the-base-spread"),
    pytest.param(1.0, 1000.0, (0.05, 0.075, 0.10), id="light-load-many-servers-no-wait"),
    pytest.param(50.0, 0.0, (10.0, 10.0, 10.0), id="demand-without-capacity-times-out"),
])
def test_latency_at_known_points(offered, capacity, expected):
    served, dropped, backlog, lat = latency(offered, capacity)
    assert (served, dropped, backlog) == (min(offered, capacity), max(offered - capacity, 0.0), 0.0)
    assert tuple(lat) == pytest.approx(expected)


def test_saturation_gives_a_finite_latency_bounded_by_the_utilization_clamp():
    served, dropped, _, lat = latency(1e4, 100.0)
    assert served == 100.0 and dropped == 1e4 - 100.0
    # rho clamped at 0.99: W_p99 <= ln(100) / (C * 0.01)
    assert lat[2] <= 0.1 + np.log(100.0) / (100.0 * 0.01) + 1e-9 and np.isfinite(lat).all()


def test_queue_mode_backlog_fills_then_drains_and_adds_its_wait():
    cluster = SimCluster([ServiceConfig("q", initial_replicas=1, capacity_rps=100.0, overload="queue",
                                        queue_limit=300.0)], 1)
    load = lambda t: np.array([150.0 if t < 20 else 50.0])  # noqa: E731
    ticks = run(cluster, 40.0, 5.0, load=load)
    queue = column(ticks, "queue_length")
    # +250 requests per 5 s tick while overloaded, capped at 300; then -250 per tick
    assert list(queue) == [250.0, 300.0, 300.0, 300.0, 50.0, 0.0, 0.0, 0.0, 0.0]
    assert list(column(ticks, "dropped_rps")) == [0.0, 40.0, 50.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    p50 = column(ticks, "latency_p50_s")
    assert p50[1] >= 300.0 / 100.0 and p50[-1] < 0.2  # 3 s behind the backlog, then back to normal


@pytest.mark.parametrize("bad_share, expected_extra", [
    pytest.param(0.0, (0.0, 0.0, 0.0), id="no-bad-pods"),
    pytest.param(0.01, (0.0, 0.0, 0.0), id="1pct-not-above-p99-tail"),
    pytest.param(0.02, (0.0, 0.0, 0.3), id="2pct-hits-p99"),
    pytest.param(0.10, (0.0, 0.3, 0.3), id="10pct-hits-p95-and-p99"),
    pytest.param(0.60, (0.3, 0.3, 0.3), id="majority-hits-p50"),
])
def test_bad_pod_latency_reaches_a_percentile_once_their_share_exceeds_its_tail(bad_share, expected_extra):
    extra = Q.bad_pod_extra(np.array([bad_share * 1000.0]), np.array([bad_share * 1000.0 * 0.3]), np.array([1000.0]))
    assert tuple(extra[:, 0]) == pytest.approx(expected_extra)


@pytest.mark.parametrize("offered, cpu_at_capacity, expected_pct", [
    pytest.param(100.0, None, 50.0, id="half-load-is-50pct-of-request"),
    pytest.param(200.0, None, 100.0, id="full-load-100pct"),
    pytest.param(100.0, 1.0, 100.0, id="pod-uses-twice-its-request-at-capacity"),
    pytest.param(1000.0, None, 100.0, id="overload-capped-at-capacity"),
])
def test_utilization_is_percent_of_cpu_request_over_ready_pods(offered, cpu_at_capacity, expected_pct):
    cfg = ServiceConfig("u", initial_replicas=2, capacity_rps=100.0, cpu_request_cores=0.5,
                        cpu_at_capacity_cores=cpu_at_capacity)
    tick = SimCluster([cfg], 1).step(0.0, 5.0, np.array([offered]))
    assert tick.utilization_pct[0] == pytest.approx(expected_pct)


def test_utilization_is_nan_without_ready_pods():
    cluster = SimCluster([ServiceConfig("u", initial_replicas=0)], 1)
    tick = cluster.step(0.0, 5.0, np.array([10.0]))
    assert np.isnan(tick.utilization_pct[0]) and tick.error_ratio[0] == 1.0 and tick.latency_p99_s[0] == 10.0
