"""Revision-scoped checks in the shell: per-pod series summed by the pods' revision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.health.params import HealthParams
from controller.core.health.revision_test import Measure, RevisionTestParams
from controller.model import PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import pod_revisions, revision_statistics

WEB, API = TargetRef("shop", "web"), TargetRef("shop", "api")


def view() -> ClusterView:
    """web mid-rollout (revision 3 current: two new pods, two of revision 2); api settled."""
    web = TargetStatus(WEB, 4, 4, 4, revision="3", rollout_in_progress=True, pods=(
        PodStatus("web-a", revision="2"), PodStatus("web-b", revision="2"), PodStatus("web-c", revision="3"),
        PodStatus("web-d", revision="3", ready=False)))
    api = TargetStatus(API, 1, 1, 1, revision="7", pods=(PodStatus("api-a", revision="7"),))
    return ClusterView.from_statuses([WEB, API], {WEB: web, API: api})


def test_pods_are_marked_new_when_they_run_the_current_revision():
    rows, refs, ready, current = pod_revisions(view(), [WEB, API])
    assert rows.tolist() == [0, 0, 0, 0, 1]
    assert [r.name for r in refs] == ["web-a", "web-b", "web-c", "web-d", "api-a"]
    assert current.tolist() == [False, False, True, True, True] and ready.tolist() == [1, 1, 1, 0, 1]


@pytest.mark.parametrize("present,expect_new,expect_old", [
    pytest.param([True] * 5, (10 * 15, 2 * 15), (20 * 15, 0.2 * 15), id="all-series"),
    pytest.param([True, False, True, True, True], (10 * 15, 2 * 15), (10 * 15, 0.1 * 15), id="a-missing-pod-adds-nothing"),
])
def test_ratio_checks_sum_requests_and_errors_per_revision_over_the_interval(present, expect_new, expect_old):
    p = HealthParams.of((), revision_checks=(RevisionTestParams("errors"),), interval_s=15.0)
    rows, _, _, current = pod_revisions(view(), [WEB, API])
    errors = np.array([0.1, 0.1, 2.0, 0.0, 0.5])  # per second; web-d is not serving yet
    requests = np.array([10.0, 10.0, 10.0, 0.0, 50.0])
    ok = np.array(present)
    new, old = revision_statistics(p, 2, rows, current, [(np.c_[errors, requests], np.c_[ok, ok])])
    assert tuple(new[0, 0, :2]) == pytest.approx(expect_new)
    assert tuple(old[0, 0, :2]) == pytest.approx(expect_old)
    assert tuple(new[1, 0, :2]) == pytest.approx((50 * 15, 0.5 * 15)) and old[1, 0, 0] == 0


def test_latency_checks_take_one_log_sample_per_pod():
    p = HealthParams.of((), revision_checks=(RevisionTestParams("p95", measure=Measure.LATENCY),))
    rows, _, _, current = pod_revisions(view(), [WEB, API])
    latency = np.array([[0.1], [0.1], [0.2], [np.nan], [0.05]])
    new, old = revision_statistics(p, 2, rows, current, [(latency, np.isfinite(latency))])
    assert new[0, 0, 0] == 1 and new[0, 0, 1] == pytest.approx(math.log(0.2))
    assert old[0, 0, 0] == 2 and old[0, 0, 1] == pytest.approx(2 * math.log(0.1))


def per_check_reference(params, n, rows, current, columns):
    """revision_statistics as it was: per check, the pods with usable samples picked out, their
    ratio_stats / latency_stats summed per target and side in one bincount each."""
    from controller.core.health.revision_test import latency_stats, ratio_stats
    from controller.runtime.healing import _sums_by_target_and_side

    cr = len(params.revision_checks)
    new, old = np.zeros((n, cr, 3)), np.zeros((n, cr, 3))
    for k, (check, (values, present)) in enumerate(zip(params.revision_checks, columns)):
        ok = present.all(axis=1) & np.isfinite(values).all(axis=1)
        if check.measure == Measure.RATIO:
            errors, requests = values[:, 0], values[:, 1]
            ok &= (requests >= 0) & (errors >= 0)
            stats = ratio_stats(requests * params.interval_s, np.minimum(errors, requests) * params.interval_s)
        else:
            ok &= values[:, 0] > 0
            stats = latency_stats(values[:, :1], ok[:, None])
        sums = _sums_by_target_and_side(n, rows[ok], current[ok], stats[ok])
        new[:, k], old[:, k] = sums[:, 0], sums[:, 1]
    return new, old


_sample = st.one_of(st.floats(-5.0, 1e4), st.just(0.0), st.just(-0.0), st.just(np.nan), st.just(np.inf))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.booleans(), st.lists(_sample, min_size=3, max_size=3),
                                   st.lists(st.booleans(), min_size=3, max_size=3)), max_size=14))))
def test_one_table_of_every_check_sums_as_each_check_alone_bit_for_bit(case):
    n, pods = case
    p = HealthParams.of((), revision_checks=(RevisionTestParams("errors"),
                                             RevisionTestParams("p95", measure=Measure.LATENCY)), interval_s=15.0)
    rows = np.array([r for r, _, _, _ in pods], np.int64)
    current = np.array([c for _, c, _, _ in pods], bool)
    values = np.array([v for _, _, v, _ in pods], np.float64).reshape(-1, 3)
    present = np.array([q for _, _, _, q in pods], bool).reshape(-1, 3)
    columns = [(values[:, :2], present[:, :2]), (values[:, 2:], present[:, 2:])]
    got, want = revision_statistics(p, n, rows, current, columns), per_check_reference(p, n, rows, current, columns)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.tobytes() == w.tobytes()
