"""HPA's per-metric replica calculator: table-driven rows per rule of hpa-spec.md, and batching.

Pod values follow upstream's replica_calculator_test.go fixtures where a row is ported from it
(two containers per pod, so a pod's request and usage are 2x the per-container numbers).
Ages are seconds before now; Z is Go's zero time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.hpa_replicas import HpaError, PodClass, Phase, Readiness

Z = hr.ZERO_TIME_AGE_S
I32, I64 = hr.INT32_MAX, hr.INT64_MAX
NO_STRAYS = hr.StraySamples()


def pod(usage=None, request=2000, *, phase=Phase.RUNNING, ready=Readiness.TRUE, start=Z, trans=Z, age=Z, window=60.0,
        deleted=False, container=True):
    """One pod row; usage None = no sample, request None = no request."""
    return dict(usage=usage, request=request, phase=phase, ready=ready, start=start, trans=trans, age=age,
                window=window, deleted=deleted, container=container)


def table(*targets: list[dict]) -> hr.PodTable:
    """A pod table from one list of pod rows per target."""
    rows = [(t, p) for t, pods in enumerate(targets) for p in pods]
    names = [f"test-pod-{j}" for pods in targets for j in range(len(pods))]
    col = (lambda key: [p[key] for _, p in rows])
    return hr.PodTable.of(
        [t for t, _ in rows], phase=col("phase"), ready=col("ready"), deleted=col("deleted"), start_age_s=col("start"),
        ready_transition_age_s=col("trans"), request_milli=[p["request"] or 0 for _, p in rows],
        has_request=[p["request"] is not None for _, p in rows], has_container=col("container"),
        usage_milli=[p["usage"] or 0 for _, p in rows], has_sample=[p["usage"] is not None for _, p in rows],
        metric_age_s=col("age"), metric_window_s=col("window"), names=names)


def strays(*usages, target=0) -> hr.StraySamples:
    return hr.StraySamples.of([target] * len(usages), list(usages))


def utilization(pods, target_pct, current, tol=(0.1, 0.1), stray=NO_STRAYS, cpu=True, **kw) -> hr.ReplicaProposal:
    return hr.resource_utilization_replicas(table(pods), stray, [current], target_pct, *tol, cpu_rules=cpu,
                                            cpu_initialization_period_s=120, initial_readiness_delay_s=10, **kw)


def average(pods, target_milli, current, tol=(0.1, 0.1), stray=NO_STRAYS, cpu=False, **kw) -> hr.ReplicaProposal:
    return hr.average_value_replicas(table(pods), stray, [current], target_milli, *tol, cpu_rules=cpu,
                                     cpu_initialization_period_s=120, initial_readiness_delay_s=10, **kw)


def outcome(result: hr.ReplicaProposal) -> tuple:
    if not result.valid[0]:
        return ("error", result.error_message[0])
    return int(result.replicas[0]), int(result.utilization[0]), int(result.usage_milli[0])


def ready_false(**kw) -> dict:
    return dict(ready=Readiness.FALSE, **kw)


# --- Resource Utilization (spec section 4) ----------------------------------------------------

UTILIZATION_ROWS = [
    # (pods, target %, current, tolerance, strays, expected (replicas, utilization, raw average))
    pytest.param([pod(600), pod(1000), pod(1400)], 30, 3, (0.1, 0.1), (), (5, 50, 1000), id="scale-up"),
    pytest.param([pod(200, **ready_false()), pod(1000), pod(1400)], 30, 3, (0.1, 0.1), (), (4, 60, 1200),
                 id="unready-pod-added-at-zero-on-scale-up"),
    pytest.param([pod(600, start=0), pod(1000, start=180), pod(1400, start=180)], 30, 3, (0.1, 0.1), (), (4, 60, 1200),
                 id="hot-cpu-pod-in-init-period-unready"),
    pytest.param([pod(800), pod(1000, **ready_false()), pod(1400, **ready_false())], 30, 3, (0.1, 0.1), (),
                 (3, 40, 800), id="unready-pods-flip-direction-keep-current"),
    pytest.param([pod(1000), pod(1400), pod(None, phase=Phase.FAILED), pod(None, phase=Phase.FAILED)], 30, 2,
                 (0.1, 0.1), (), (4, 60, 1200), id="failed-pods-ignored"),
    pytest.param([pod(1000), pod(1400), pod(None, deleted=True), pod(None, deleted=True)], 30, 2, (0.1, 0.1), (),
                 (4, 60, 1200), id="deleted-pods-ignored"),
    pytest.param([pod(1000), pod(1400), pod(None, phase=Phase.SUCCEEDED), pod(None, phase=Phase.SUCCEEDED)], 30, 2,
                 (0.1, 0.1), (), (2, 60, 1200), id="succeeded-pods-are-missing-per-spec"),
    pytest.param([pod(200), pod(600), pod(1000), pod(500), pod(500)], 50, 5, (0.1, 0.1), (), (3, 28, 560),
                 id="scale-down"),
    pytest.param([pod(200), pod(600), pod(1000), pod(500, **ready_false()), pod(500, **ready_false())], 50, 5,
                 (0.1, 0.1), (), (2, 30, 600), id="scale-down-excludes-unready"),
    pytest.param([pod(200)] + [pod(None, phase=Phase.PENDING, ready=Readiness.FALSE)] * 4, 50, 5, (0.1, 0.1), (),
                 (1, 10, 200), id="scale-down-excludes-pending"),
    pytest.param([pod(2020, 1800), pod(2060, 2000), pod(2040, 2200)], 100, 3, (0.1, 0.1), (), (3, 102, 2040),
                 id="within-default-tolerance"),
    pytest.param([pod(1818, 1800), pod(2020, 2000), pod(2222, 2200)], 100, 3, (0.0, 0.0), (), (4, 101, 2020),
                 id="outside-zero-tolerance"),
    pytest.param([pod(3780, 1800), pod(3820, 2000), pod(3800, 2200)], 100, 3, (0.1, 2.0), (), (3, 190, 3800),
                 id="within-200pct-scale-up-tolerance"),
    pytest.param([pod(2200, 1800), pod(2160, 2000), pod(2180, 2200)], 100, 3, (2.0, 0.08), (), (4, 109, 2180),
                 id="outside-8pct-up-with-huge-down-tolerance"),
    pytest.param([pod(1320, 1800), pod(1280, 2000), pod(1300, 2200)], 100, 3, (0.36, 0.1), (), (3, 65, 1300),
                 id="within-36pct-scale-down-tolerance"),
    pytest.param([pod(1320, 1800), pod(1280, 2000), pod(1300, 2200)], 100, 3, (0.34, 0.1), (), (2, 65, 1300),
                 id="outside-34pct-scale-down-tolerance"),
    pytest.param([pod(900, 1000)] * 3, 100, 3, (0.1, 0.1), (), (3, 90, 900), id="ratio-exactly-0.9-is-within"),
    pytest.param([pod(1100, 1000)] * 3, 100, 3, (0.1, 0.1), (), (3, 110, 1100), id="ratio-exactly-1.1-is-within"),
    pytest.param([pod(899, 1000)] * 10, 100, 10, (0.1, 0.1), (), (9, 89, 899), id="ratio-0.89-scales-down"),
    pytest.param([pod(333, 1000)] * 3, 30, 3, (0.1, 0.1), (), (3, 33, 333), id="truncated-percent-not-exact-percent"),
    pytest.param([pod(8000), pod(19000), pod(6000), pod(14000)], 100, 4, (0.1, 0.1), (6400, 4000), (24, 587, 11750),
                 id="stray-samples-ignored-without-request"),
    pytest.param([pod(800), pod(190), pod(None), pod(None)], 100, 4, (0.1, 0.1), (), (3, 24, 495),
                 id="missing-pods-at-100pct-on-scale-down"),
    pytest.param([pod(2000), pod(None)], 100, 2, (0.1, 0.1), (), (2, 100, 2000), id="missing-pod-at-ratio-exactly-one"),
    pytest.param([pod(3800), pod(None)], 100, 2, (0.1, 0.1), (), (2, 190, 3800), id="missing-pod-at-zero-on-scale-up"),
    pytest.param([pod(1200), pod(None)], 100, 2, (0.1, 0.1), (), (2, 60, 1200), id="missing-pod-below-target"),
    pytest.param([pod(200, **ready_false()), pod(900), pod(None)], 50, 3, (0.1, 0.1), (), (3, 45, 900),
                 id="unready-and-missing-flip-keeps-current"),
    pytest.param([pod(200, **ready_false()), pod(4000), pod(None)], 50, 3, (0.1, 0.1), (), (4, 200, 4000),
                 id="unready-and-missing-at-zero-on-scale-up"),
    pytest.param([pod(200, **ready_false()), pod(200), pod(200), pod(None)], 50, 4, (0.1, 0.1), (), (3, 10, 200),
                 id="missing-at-100pct-unready-left-out-on-scale-down"),
    pytest.param([pod(400, 2000, **ready_false()), pod(200, 2000), pod(200, 4000), pod(None, 4000)], 300, 4,
                 (0.1, 0.1), (), (2, 6, 200), id="target-300-missing-pod-at-300pct"),
    pytest.param([pod(200), pod(200), pod(None)], 50, 2, (0.1, 0.1), (), (2, 10, 200),
                 id="surge-pod-would-push-above-current-keep-current"),
    pytest.param([pod(900, 1000, start=60, trans=50, age=0, window=30), pod(900, 1000)], 50, 2, (0.1, 0.1), (),
                 (4, 90, 900), id="init-period-fresh-sample-is-ready"),
    pytest.param([pod(900, 1000, start=60, trans=50, age=30, window=30), pod(900, 1000)], 50, 2, (0.1, 0.1), (),
                 (2, 90, 900), id="init-period-sample-before-readiness-window-unready"),
    pytest.param([pod(900, 1000, start=60, ready=Readiness.FALSE, trans=50, age=0, window=30), pod(900, 1000)], 50, 2,
                 (0.1, 0.1), (), (2, 90, 900), id="init-period-ready-false-unready"),
    pytest.param([pod(900, 1000, start=600, ready=Readiness.FALSE, trans=500, age=0), pod(900, 1000)], 50, 2,
                 (0.1, 0.1), (), (4, 90, 900), id="past-init-was-ready-once-counts"),
    pytest.param([pod(900, 1000, start=600, ready=Readiness.FALSE, trans=595, age=0), pod(900, 1000)], 50, 2,
                 (0.1, 0.1), (), (2, 90, 900), id="past-init-never-ready-unready"),
    pytest.param([pod(900, 1000, start=600, ready=Readiness.FALSE, trans=590, age=0), pod(900, 1000)], 50, 2,
                 (0.1, 0.1), (), (4, 90, 900), id="past-init-delay-boundary-is-strict"),
    pytest.param([pod(900, 1000, ready=Readiness.NONE), pod(900, 1000)], 50, 2, (0.1, 0.1), (), (2, 90, 900),
                 id="no-ready-condition-unready-for-cpu"),
    pytest.param([pod(900, 1000, start=math.nan), pod(900, 1000)], 50, 2, (0.1, 0.1), (), (2, 90, 900),
                 id="no-start-time-unready-for-cpu"),
    pytest.param([pod(900, 1000, ready=Readiness.UNKNOWN, start=600, trans=599, age=0), pod(900, 1000)], 50, 2,
                 (0.1, 0.1), (), (4, 90, 900), id="ready-unknown-is-not-false-past-init"),
]


@pytest.mark.parametrize("pods,target,current,tol,stray,expected", UTILIZATION_ROWS)
def test_resource_utilization(pods, target, current, tol, stray, expected):
    assert outcome(utilization(pods, target, current, tol, strays(*stray))) == expected


def test_memory_ignores_readiness_and_start_time():
    pods = [pod(900, 1000, ready=Readiness.NONE, start=math.nan), pod(900, 1000, ready=Readiness.FALSE, start=0)]
    assert outcome(utilization(pods, 50, 2, cpu=False)) == (4, 90, 900)


def test_succeeded_pods_ignored_with_the_newest_upstream_switch():
    pods = table([pod(1000), pod(1400), pod(None, phase=Phase.SUCCEEDED)])
    got = hr.resource_utilization_replicas(pods, NO_STRAYS, [2], 30, 0.1, 0.1, succeeded_is_terminal=True)
    assert outcome(got) == (4, 60, 1200)


UTILIZATION_ERRORS = [
    pytest.param([pod(None), pod(None)], (), "unable to get metrics for resource cpu: no metrics returned from "
                 "resource metrics API", id="no-samples-at-all"),
    pytest.param([], (100,), "no pods returned by selector while calculating replica count", id="no-pods-listed"),
    pytest.param([pod(500, phase=Phase.PENDING)], (), "did not receive metrics for targeted pods", id="only-pending"),
    pytest.param([pod(500, None)], (), "missing request for cpu in container (all) of Pod test-pod-0",
                 id="missing-request"),
    pytest.param([pod(500), pod(None, None, phase=Phase.FAILED)], (), "missing request for", id="failed-pod-request"),
    pytest.param([pod(500, 1000), pod(500, container=False)], (), "container c2 not found in Pod test-pod-1",
                 id="container-not-found"),
    pytest.param([pod(None)], (200,), "no metrics returned matched known pods", id="disjoint-names"),
    pytest.param([pod(500, 0)], (), "no metrics returned matched known pods", id="zero-requests"),
]


@pytest.mark.parametrize("pods,stray,message", UTILIZATION_ERRORS)
def test_resource_utilization_errors(pods, stray, message):
    container = "c2" if "not found" in message else ""
    result = utilization(pods, 50, max(len(pods), 1), stray=strays(*stray), container=container)
    assert result.error[0] != HpaError.NONE and message in result.error_message[0]
    assert (result.replicas[0], result.utilization[0], result.usage_milli[0]) == (0, 0, 0)


def test_utilization_is_clamped_to_int32_and_sums_are_exact():
    result = utilization([pod(I64, 1), pod(I64, 1)], 1, 2)  # the usage sum is past int64: big integers upstream
    assert int(result.utilization[0]) == I32 and int(result.usage_milli[0]) == I64
    assert int(result.replicas[0]) == I32  # ceil(ratio * 2) clamped to the int32 range


# --- Resource AverageValue and Pods AverageValue (spec section 5) -------------------------------

AVERAGE_ROWS = [
    # (pods, target milli, current, tolerance, strays, cpu rules, expected (replicas, 0, usage))
    pytest.param([pod(20000), pod(10000), pod(30000)], 15000, 3, (0.1, 0.1), (), False, (4, 0, 20000), id="scale-up"),
    pytest.param([pod(50000, start=180), pod(10000, start=180), pod(30000, start=0, ready=Readiness.FALSE)], 15000, 3,
                 (0.1, 0.1), (), False, (6, 0, 30000), id="pods-metric-ignores-readiness"),
    pytest.param([pod(50000, start=180), pod(10000, start=180), pod(30000, start=0, ready=Readiness.FALSE)], 15000, 3,
                 (0.1, 0.1), (), True, (4, 0, 30000), id="cpu-average-value-applies-readiness"),
    pytest.param([pod(50000, start=0, ready=Readiness.FALSE), pod(15000, start=180),
                  pod(30000, start=0, ready=Readiness.FALSE)], 15000, 3, (0.1, 0.1), (), False, (7, 0, 31666),
                 id="integer-average-31666"),
    pytest.param([pod(12000)] * 5, 20000, 5, (0.1, 0.1), (), False, (3, 0, 12000), id="scale-down"),
    pytest.param([pod(20000), pod(21000), pod(21000)], 20000, 3, (0.1, 0.1), (), False, (3, 0, 20666),
                 id="within-default-tolerance"),
    pytest.param([pod(20000), pod(21000), pod(21000)], 20000, 3, (0.1, 0.01), (), False, (4, 0, 20666),
                 id="outside-1pct-scale-up-tolerance"),
    pytest.param([pod(20000), pod(19000), pod(21000), pod(None), pod(None)], 20000, 5, (0.1, 0.1), (), False,
                 (5, 0, 20000), id="missing-pods-at-ratio-exactly-one-not-added"),
    pytest.param([pod(10000), pod(10000), pod(None)], 17000, 2, (0.1, 0.1), (), False, (2, 0, 10000),
                 id="missing-at-target-surge-guard"),
    pytest.param([pod(30000), pod(30000), pod(None), pod(None)], 10000, 4, (0.1, 0.1), (), False, (6, 0, 30000),
                 id="missing-at-zero-on-scale-up"),
    pytest.param([pod(5000)] * 3 + [pod(None)], 10000, 4, (0.1, 0.1), (), False, (3, 0, 5000),
                 id="missing-at-target-on-scale-down"),
    pytest.param([pod(90000, phase=Phase.PENDING), pod(20000), pod(20000)], 10000, 3, (0.1, 0.1), (), False,
                 (4, 0, 20000), id="pending-unready-for-every-metric"),
    pytest.param([pod(10000), pod(10000)], 10000, 2, (0.1, 0.1), (40000,), False, (4, 0, 20000),
                 id="stray-sample-in-average-fast-path-times-ready-pods"),
    pytest.param([pod(-3001), pod(-4000)], 1000, 2, (0.1, 0.1), (), False, (-7, 0, -3500),
                 id="negative-values-truncate-toward-zero"),
]


@pytest.mark.parametrize("pods,target,current,tol,stray,cpu,expected", AVERAGE_ROWS)
def test_average_value(pods, target, current, tol, stray, cpu, expected):
    assert outcome(average(pods, target, current, tol, strays(*stray), cpu=cpu)) == expected


@pytest.mark.parametrize("pods,stray,source,message", [
    pytest.param([pod(None)], (), "pods", "unable to get metric qps: no metrics returned from custom metrics API",
                 id="pods-no-samples"),
    pytest.param([pod(None)], (), "resource", "unable to get metrics for resource cpu", id="resource-no-samples"),
    pytest.param([], (5,), "pods", "no pods returned by selector", id="no-pods"),
    pytest.param([pod(5, phase=Phase.FAILED)], (), "pods", "did not receive metrics for targeted pods",
                 id="only-failed-pods"),
])
def test_average_value_errors(pods, stray, source, message):
    result = average(pods, 1000, 1, stray=strays(*stray), source=source, metric_name="qps")
    assert message in result.error_message[0]


# --- Object and External (spec sections 6 and 7) ------------------------------------------------

RUNNING_READY = [pod()] * 3


@pytest.mark.parametrize("value,target,current,pods,tol,expected", [
    pytest.param(20000, 15000, 3, RUNNING_READY, (0.1, 0.1), (4, 0, 20000), id="ceil-of-ieee-product-is-4"),
    pytest.param(I64, 1, 3, RUNNING_READY, (0.1, 0.1), (I32, 0, I64), id="saturates-to-int32-max"),
    pytest.param(50000, 10000, 3, [pod(ready=Readiness.FALSE), pod(), pod(ready=Readiness.FALSE)], (0.1, 0.1),
                 (5, 0, 50000), id="multiplies-running-ready-count"),
    pytest.param(8600, 4400, 3, [pod(ready=Readiness.FALSE), pod(), pod(ready=Readiness.FALSE)], (0.1, 0.1),
                 (2, 0, 8600), id="metric-above-target-can-propose-fewer"),
    pytest.param(12000, 20000, 5, [pod()] * 5, (0.1, 0.1), (3, 0, 12000), id="scale-down"),
    pytest.param(20666, 20000, 3, RUNNING_READY, (0.1, 0.1), (3, 0, 20666), id="within-default-tolerance"),
    pytest.param(20666, 20000, 3, RUNNING_READY, (0.1, 0.01), (4, 0, 20666), id="outside-1pct-tolerance"),
    pytest.param(2500, 1000, 0, [], (0.1, 0.1), (3, 0, 2500), id="from-zero-ceil-ratio"),
    pytest.param(1050, 1000, 0, [], (0.1, 0.1), (2, 0, 1050), id="from-zero-ignores-tolerance"),
    pytest.param(0, 1000, 0, [], (0.1, 0.1), (0, 0, 0), id="from-zero-value-zero-stays-zero"),
    pytest.param(1050, 1000, 3, [], (0.1, 0.1), (3, 0, 1050), id="within-band-needs-no-pods"),
    pytest.param(3000, 1000, 3, [pod(phase=Phase.PENDING)] * 3, (0.1, 0.1), (0, 0, 3000), id="no-running-ready-pods"),
    pytest.param(3000, 1000, 2, [pod(deleted=True), pod(phase=Phase.SUCCEEDED)], (0.1, 0.1), (3, 0, 3000),
                 id="deleted-running-pod-still-counted"),
])
def test_object_value(value, target, current, pods, tol, expected):
    result = hr.object_value_replicas([value], [current], target, *tol, table(pods))
    assert outcome(result) == expected


def test_object_value_errors():
    missing = hr.object_value_replicas([0], [3], 1000, 0.1, 0.1, table([pod()]), has_value=[False], metric_name="qps")
    assert missing.error[0] == HpaError.NO_OBJECT_METRIC and "unable to get metric qps" in missing.error_message[0]
    no_pods = hr.object_value_replicas([3000], [3], 1000, 0.1, 0.1, table([]))
    assert "unable to calculate ready pods: no pods returned by selector" in no_pods.error_message[0]


@pytest.mark.parametrize("value,status,target,tol,expected", [
    pytest.param(I64, 1, I64, (0.1, 0.1), (1, 0, I64), id="huge-usage-huge-target-within"),
    pytest.param(20000, 3, 5000, (0.1, 0.1), (4, 0, 6667), id="scale-up"),
    pytest.param(6000, 5, 2000, (0.1, 0.1), (3, 0, 1200), id="scale-down"),
    pytest.param(20166, 4, 5000, (0.1, 0.1), (4, 0, 5042), id="within-default-tolerance"),
    pytest.param(20208, 4, 5000, (0.1, 0.01), (5, 0, 5052), id="outside-1pct-tolerance"),
    pytest.param(20000, 0, 5000, (0.1, 0.1), (4, 0, 0), id="status-zero-usage-zero"),
    pytest.param(0, 0, 5000, (0.1, 0.1), (0, 0, 0), id="status-zero-metric-zero"),
    pytest.param(I64, 1, 1, (0.1, 0.1), (I32, 0, I64), id="saturates-to-int32-max"),
])
def test_object_average_value(value, status, target, tol, expected):
    assert outcome(hr.object_average_value_replicas([value], [status], target, *tol)) == expected


def series(*values, target=0) -> hr.ExternalSeries:
    return hr.ExternalSeries.of([target] * len(values), list(values))


@pytest.mark.parametrize("values,target,current,pods,tol,expected", [
    pytest.param((8600,), 14334, 5, [pod()] * 5, (0.1, 0.1), (3, 0, 8600), id="scale-down"),
    pytest.param((8600,), 8888, 3, RUNNING_READY, (0.1, 0.1), (3, 0, 8600), id="within-default-tolerance"),
    pytest.param((8900,), 8800, 3, RUNNING_READY, (0.1, 0.01), (4, 0, 8900), id="outside-1pct-tolerance"),
    pytest.param((I64 // 2 + 1, I64 // 2 + 1), I64, 3, RUNNING_READY, (0.1, 0.1), (3, 0, I64),
                 id="sum-overflow-caps-at-int64-max"),
    pytest.param((1000, 2000, 3000), 2000, 3, [pod(), pod(), pod(phase=Phase.PENDING)], (0.1, 0.1), (6, 0, 6000),
                 id="sum-of-series-times-running-ready"),
    pytest.param((-500, 2500), 1000, 0, [], (0.1, 0.1), (2, 0, 2000), id="negative-series-from-zero"),
])
def test_external_value(values, target, current, pods, tol, expected):
    assert outcome(hr.external_value_replicas(series(*values), [current], target, *tol, table(pods))) == expected


@pytest.mark.parametrize("values,status,target,tol,expected", [
    pytest.param((I64,), 1, 1, (0.1, 0.1), (I32, 0, I64), id="replica-overflow-saturates"),
    pytest.param((I64,), 1, I64, (0.1, 0.1), (1, 0, I64), id="huge-target-within"),
    pytest.param((20000,), 0, 5000, (0.1, 0.1), (4, 0, 0), id="status-zero"),
    pytest.param((0,), 0, 5000, (0.1, 0.1), (0, 0, 0), id="status-zero-metric-zero"),
    pytest.param((8600,), 3, 2150, (0.1, 0.1), (4, 0, 2867), id="scale-up"),
    pytest.param((8600,), 5, 2867, (0.1, 0.1), (3, 0, 1720), id="scale-down"),
    pytest.param((8600,), 3, 2900, (0.1, 0.1), (3, 0, 2867), id="within-default-tolerance"),
    pytest.param((8600,), 3, 2800, (0.1, 0.01), (4, 0, 2867), id="outside-1pct-tolerance"),
    pytest.param((I64, 5), 3, 1000, (0.1, 0.1), (I32, 0, I64), id="wrapped-sum-becomes-int64-max"),
])
def test_external_average_value(values, status, target, tol, expected):
    assert outcome(hr.external_average_value_replicas(series(*values), [status], target, *tol)) == expected


def test_external_without_series_is_an_error():
    result = hr.external_value_replicas(series(), [1], 1000, 0.1, 0.1, table([pod()]), metric_name="qps")
    assert "no metrics returned from external metrics API" in result.error_message[0]
    result = hr.external_average_value_replicas(series(), [1], 1000, 0.1, 0.1)
    assert result.error[0] == HpaError.NO_EXTERNAL_METRICS


# --- shared rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio,down,up,inside", [
    pytest.param(0.9, 0.1, 0.1, True, id="lower-bound-inclusive"),
    pytest.param(1.1, 0.1, 0.1, True, id="upper-bound-inclusive"),
    pytest.param(0.8999999, 0.1, 0.1, False, id="just-below"),
    pytest.param(1.1000001, 0.1, 0.1, False, id="just-above"),
    pytest.param(0.05, 2.0, 0.1, True, id="huge-down-tolerance-never-blocks"),
    pytest.param(1.05, 0.1, 0.01, False, id="per-direction-up"),
])
def test_within_tolerance(ratio, down, up, inside):
    assert bool(hr.within_tolerance(np.array([ratio]), up, down)[0]) is inside  # (ratio, up, down), as propose.py


@pytest.mark.parametrize("cluster,down,up,gate,expected", [
    pytest.param(0.1, math.nan, math.nan, True, (0.1, 0.1), id="unset-keeps-cluster"),
    pytest.param(0.1, 0.05, math.nan, True, (0.05, 0.1), id="down-only"),
    pytest.param(0.1, math.nan, 0.02, True, (0.1, 0.02), id="up-only"),
    pytest.param(0.1, 0.05, 0.02, False, (0.1, 0.1), id="gate-off-ignores-fields"),
])
def test_hpa_tolerances(cluster, down, up, gate, expected):
    assert hr.hpa_tolerances(cluster, down, up, gate) == expected


@pytest.mark.parametrize("row,cpu,expected", [
    pytest.param(pod(1, ready=Readiness.NONE, start=0), True, PodClass.UNREADY, id="cpu-no-condition"),
    pytest.param(pod(1, start=60, trans=30, age=0, window=30), True, PodClass.READY, id="cpu-fresh-in-init"),
    pytest.param(pod(1, start=60, trans=30, age=0, window=60), True, PodClass.UNREADY, id="cpu-window-not-elapsed"),
    pytest.param(pod(1, start=600, ready=Readiness.FALSE, trans=594), True, PodClass.UNREADY, id="cpu-never-ready"),
    pytest.param(pod(1, start=180, trans=180, age=120), True, PodClass.READY, id="cpu-ready-after-init"),
    pytest.param(pod(1, start=600, ready=Readiness.FALSE, trans=540), True, PodClass.READY, id="cpu-was-ready"),
    pytest.param(pod(1, ready=Readiness.NONE, start=math.nan), False, PodClass.READY, id="memory-no-condition"),
    pytest.param(pod(None, start=180), True, PodClass.MISSING, id="missing"),
    pytest.param(pod(1, phase=Phase.PENDING), False, PodClass.UNREADY, id="pending"),
    pytest.param(pod(1, phase=Phase.PENDING, deleted=True), False, PodClass.IGNORED, id="deleted"),
    pytest.param(pod(1, phase=Phase.FAILED), False, PodClass.IGNORED, id="failed"),
    pytest.param(pod(1, phase=Phase.SUCCEEDED), False, PodClass.READY, id="succeeded-not-filtered"),
])
def test_classify_pods(row, cpu, expected):
    assert hr.classify_pods(table([row]), cpu, 120, 10)[0] == expected


def test_sum_by_target_is_exact_past_int64():
    values = np.array([I64, I64, 5, -3], dtype=np.int64)
    sums = hr.sum_by_target(values, np.array([0, 0, 1, 1]), 3)
    assert [int(s) for s in sums] == [2 * I64, 2, 0]


def test_per_pod_usage():
    got = hr.per_pod_usage(np.array([20000, 1000, I64, -7]), np.array([0, 3, 1, 2]))
    assert got.tolist() == [0, 334, I64, -3]


# --- batching: several targets at once == each target alone -------------------------------------

pod_rows = st.builds(
    pod,
    usage=st.one_of(st.none(), st.integers(0, 50_000)),
    request=st.one_of(st.none(), st.integers(0, 4000)),
    phase=st.sampled_from(list(Phase)),
    ready=st.sampled_from(list(Readiness)),
    start=st.one_of(st.just(math.nan), st.sampled_from([0.0, 60.0, 119.0, 120.0, 600.0, Z])),
    trans=st.sampled_from([0.0, 30.0, 50.0, 595.0, Z]),
    age=st.sampled_from([0.0, 30.0, Z]),
    deleted=st.booleans(),
)
targets = st.lists(st.tuples(st.lists(pod_rows, max_size=6), st.integers(0, 8), st.integers(1, 300),
                             st.lists(st.integers(0, 50_000), max_size=2), st.sampled_from([0.0, 0.1, 0.5])),
                   min_size=1, max_size=5)


def _batched_and_alone(fn, specs):
    """fn(pods table, strays, current, target, tolerance) for all targets at once and one by one."""
    pods = table(*[s[0] for s in specs])
    stray = hr.StraySamples.of([t for t, s in enumerate(specs) for _ in s[3]], [v for s in specs for v in s[3]])
    col = (lambda k: np.array([s[k] for s in specs]))
    batched = fn(pods, stray, col(1), col(2), col(4))
    alone = [fn(table(s[0]), strays(*s[3]), np.array([s[1]]), np.array([s[2]]), np.array([s[4]])) for s in specs]
    return batched, alone


def _assert_rows_equal(batched: hr.ReplicaProposal, alone: list[hr.ReplicaProposal]):
    for i, one in enumerate(alone):
        for name in ("replicas", "utilization", "usage_milli", "error"):
            assert getattr(batched, name)[i] == getattr(one, name)[0], (name, i)
        assert batched.error_message[i].split(" of Pod")[0] == one.error_message[0].split(" of Pod")[0]


@settings(max_examples=150, deadline=None)
@given(targets, st.booleans())
def test_utilization_batched_equals_each_target_alone(specs, cpu):
    def fn(pods, stray, current, target, tol):
        return hr.resource_utilization_replicas(pods, stray, current, np.maximum(target, 1), tol, tol, cpu_rules=cpu,
                                                cpu_initialization_period_s=120, initial_readiness_delay_s=10)
    _assert_rows_equal(*_batched_and_alone(fn, specs))


@settings(max_examples=150, deadline=None)
@given(targets, st.booleans())
def test_average_value_batched_equals_each_target_alone(specs, cpu):
    def fn(pods, stray, current, target, tol):
        return hr.average_value_replicas(pods, stray, current, target * 100, tol, tol, cpu_rules=cpu,
                                         cpu_initialization_period_s=120, initial_readiness_delay_s=10)
    _assert_rows_equal(*_batched_and_alone(fn, specs))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(-(2**62), 2**63 - 1), max_size=4), st.integers(0, 6),
                          st.integers(1, 10**6), st.lists(pod_rows, max_size=4)), min_size=1, max_size=5))
def test_object_and_external_batched_equal_each_target_alone(specs):
    ext = hr.ExternalSeries.of([t for t, s in enumerate(specs) for _ in s[0]], [v for s in specs for v in s[0]])
    pods = table(*[s[3] for s in specs])
    current, target = np.array([s[1] for s in specs]), np.array([s[2] for s in specs])
    batched = [hr.external_value_replicas(ext, current, target, 0.1, 0.1, pods),
               hr.external_average_value_replicas(ext, current, target, 0.1, 0.1)]
    for i, s in enumerate(specs):
        one = [hr.external_value_replicas(series(*s[0]), [s[1]], s[2], 0.1, 0.1, table(s[3])),
               hr.external_average_value_replicas(series(*s[0]), [s[1]], s[2], 0.1, 0.1)]
        for b, o in zip(batched, one):
            assert (b.replicas[i], b.usage_milli[i], b.error[i]) == (o.replicas[0], o.usage_milli[0], o.error[0])
