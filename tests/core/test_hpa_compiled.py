"""The compiled Resource Utilization calculator (core/scaling/hpa_compiled.py) gives the
reference's proposals (core/scaling/hpa_replicas.py, numpy): replicas, utilization, raw
average, error codes and error texts, on the HPA conformance cases and on generated pod sets
(several targets; missing, unready, pending, deleted and failed pods, pods inside the CPU
initialization period, stray samples, missing requests and containers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, hpa_compiled
from controller.core.scaling import hpa_replicas as hr
from tests.conformance import cases

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def both(monkeypatch, *args, **kw) -> tuple[hr.ReplicaProposal, hr.ReplicaProposal]:
    monkeypatch.setattr(compiled, "switch", "1")
    fast = hpa_compiled.try_resource_utilization_replicas(*args, **kw)
    assert fast is not None, "the kernel declined: the comparison would be numpy with itself"
    return fast, hr.resource_utilization_replicas(*args, **kw)


def assert_same(fast: hr.ReplicaProposal, ref: hr.ReplicaProposal) -> None:
    for column in ("replicas", "utilization", "usage_milli", "error"):
        got, want = getattr(fast, column), getattr(ref, column)
        assert got.dtype == want.dtype, column
        np.testing.assert_array_equal(got, want, err_msg=column)
    assert fast.error_message == ref.error_message


def utilization_cases() -> list:
    files, _ = cases.case_files()
    found = [case for path in files if not isinstance(loaded := cases.load_cases(path), cases.BadCaseFile)
             for case in loaded
             if case.get("kind") == "replicas" and case["input"]["metric_type"] in ("Resource", "ContainerResource")
             and case["input"]["target"]["type"] == "Utilization"]
    return [pytest.param(case, id=case["id"]) for case in found]


@pytest.mark.parametrize("case", utilization_cases())
def test_same_as_reference_on_conformance_cases(monkeypatch, case):
    inp = case["input"]
    table = cases.pod_table(inp.get("pods") or [])
    strays = inp.get("unmatched_metrics_milli") or []
    down, up = cases.tolerances(inp)
    container = (inp.get("container") or "") if inp["metric_type"] == "ContainerResource" else ""
    fast, ref = both(monkeypatch, table, hr.StraySamples.of([0] * len(strays), [s["usage_milli"] for s in strays]),
                     [int(inp["current_replicas"])], int(inp["target"]["average_utilization"]), down, up,
                     cpu_rules=inp.get("resource_name", "cpu") == "cpu", container=container,
                     resource=inp.get("resource_name", "cpu"),
                     cpu_initialization_period_s=float(inp.get("cpu_initialization_period_s", 300)),
                     initial_readiness_delay_s=float(inp.get("initial_readiness_delay_s", 30)))
    assert_same(fast, ref)


def test_the_conformance_cases_include_the_slow_paths():
    """The rows above cover missing and unready pods (else the generated sets carry the test alone)."""
    pods = [p for case in utilization_cases() for p in case.values[0]["input"].get("pods") or []]
    assert any(p.get("usage_milli") is None for p in pods) and any(p.get("ready_condition") is False for p in pods)


AGES = st.one_of(st.just(math.nan), st.just(hr.ZERO_TIME_AGE_S), st.just(math.inf),
                 st.floats(-30.0, 900.0, allow_nan=False))


@st.composite
def pod_sets(draw):
    """(PodTable over n targets, strays, current (n,), target utilization (n,), cpu_rules (n,))."""
    n = draw(st.integers(1, 5))
    p = draw(st.integers(0, 24))
    col = lambda elements: draw(st.lists(elements, min_size=p, max_size=p))  # noqa: E731
    usage = col(st.integers(0, 4000))
    table = hr.PodTable.of(
        np.sort(np.asarray(col(st.integers(0, n - 1)), dtype=np.int64)),
        phase=col(st.sampled_from(list(hr.Phase))), ready=col(st.sampled_from(list(hr.Readiness))),
        deleted=col(st.sampled_from([False, False, False, True])),
        start_age_s=col(AGES), ready_transition_age_s=col(AGES),
        request_milli=col(st.sampled_from([0, 100, 250, 1000, 1500])),
        has_request=col(st.booleans() | st.just(True)), has_container=col(st.booleans() | st.just(True)),
        usage_milli=usage, has_sample=col(st.booleans() | st.just(True)),
        metric_age_s=col(AGES), metric_window_s=col(st.sampled_from([15.0, 30.0, 60.0, math.nan])),
        names=[f"pod-{k}" for k in range(p)])
    s = draw(st.integers(0, 3))
    strays = hr.StraySamples.of(draw(st.lists(st.integers(0, n - 1), min_size=s, max_size=s)), [500] * s)
    current = np.asarray(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)), dtype=np.int64)
    target = np.asarray(draw(st.lists(st.integers(1, 200), min_size=n, max_size=n)), dtype=np.int64)
    cpu = np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return table, strays, current, target, cpu


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pods=pod_sets(), tolerance=st.sampled_from([(0.1, 0.1), (0.0, 0.0), (0.05, 0.2)]),
       period_s=st.sampled_from([0.0, 120.0, 300.0]), delay_s=st.sampled_from([0.0, 30.0]),
       container=st.sampled_from(["", "app"]), succeeded_is_terminal=st.booleans())
def test_same_as_reference_on_generated_pod_sets(monkeypatch, pods, tolerance, period_s, delay_s, container,
                                                 succeeded_is_terminal):
    table, strays, current, target, cpu = pods
    fast, ref = both(monkeypatch, table, strays, current, target, *tolerance, cpu_rules=cpu,
                     cpu_initialization_period_s=period_s, initial_readiness_delay_s=delay_s, container=container,
                     succeeded_is_terminal=succeeded_is_terminal)
    assert_same(fast, ref)


def test_declines_when_a_sum_could_leave_int64(monkeypatch):
    """The reference switches to Python integers there; the kernel leaves those to it."""
    monkeypatch.setattr(compiled, "switch", "1")
    table = hr.PodTable.of([0, 0], request_milli=[2**60, 2**60], usage_milli=[2**60, 1])
    assert hpa_compiled.try_resource_utilization_replicas(table, hr.StraySamples(), [2], 50, 0.1, 0.1) is None


def test_declines_when_the_kernels_are_off(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "0")
    table = hr.PodTable.of([0], request_milli=[1000], usage_milli=[500])
    assert hpa_compiled.try_resource_utilization_replicas(table, hr.StraySamples(), [2], 50, 0.1, 0.1) is None


INT64_MIN = int(np.iinfo(np.int64).min)


@pytest.mark.parametrize("usage, requests", [
    pytest.param([5, -7], [3], id="negative-largest"),
    pytest.param([0], [2**62], id="request-largest"),
    pytest.param([INT64_MIN, 5], [3], id="int64-minimum-wraps-as-numpy"),
    pytest.param([INT64_MIN], [INT64_MIN], id="only-the-minimum"),
])
def test_abs_max_same_as_numpy(monkeypatch, usage, requests):
    monkeypatch.setattr(compiled, "switch", "1")
    assert compiled.enabled()
    a, b = np.asarray(usage, np.int64), np.asarray(requests, np.int64)
    assert int(hpa_compiled._abs_max(a, b)) == max(int(np.abs(a).max()), int(np.abs(b).max()))


@settings(max_examples=150, deadline=None)
@given(usage=st.lists(st.integers(INT64_MIN, 2**63 - 1), min_size=1, max_size=8),
       requests=st.lists(st.integers(INT64_MIN, 2**63 - 1), min_size=1, max_size=8))
def test_abs_max_same_as_numpy_on_generated_values(usage, requests):
    with pytest.MonkeyPatch.context() as mp:
        test_abs_max_same_as_numpy(mp, usage, requests)


def assert_pass_fits_exact(p: int, largest: int, top: int) -> None:
    """The listed passes' bound, tested inside a kernel without forming the product, is
    p x largest x max(100, top) < 2**55 with exact integers."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiled, "switch", "1")
        assert compiled.enabled()
        assert bool(hpa_compiled.pass_fits(p, largest, top)) == (p * largest * max(100, top) < hpa_compiled._SUM_LIMIT)


@settings(max_examples=300, deadline=None)
@given(p=st.integers(0, 10**7) | st.sampled_from([1, 2, 3, 7]), largest=st.integers(0, 2**63 - 1) | st.integers(0, 2**20),
       top=st.integers(0, 2**31 - 1) | st.integers(0, 200))
def test_pass_fits_is_the_exact_int64_bound(p, largest, top):
    assert_pass_fits_exact(p, largest, top)


@pytest.mark.parametrize("p, largest, top", [
    pytest.param(1, 2**55 // 100 - 1, 0, id="one-pod-just-inside"),
    pytest.param(1, 2**55 // 100, 0, id="one-pod-at-the-bound"),
    pytest.param(3, (2**55 + 299) // 300, 100, id="three-pods-rounded-up"),
    pytest.param(3, (2**55 + 299) // 300 - 1, 100, id="three-pods-just-inside"),
    pytest.param(0, 2**63 - 1, 2**31 - 1, id="no-pods-always-fits"),
])
def test_pass_fits_at_its_edges(p, largest, top):
    assert_pass_fits_exact(p, largest, top)
