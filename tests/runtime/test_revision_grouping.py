"""Revision-scoped checks in the shell: per-pod series summed by the pods' revision."""

from __future__ import annotations

import math

import numpy as np
import pytest

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
