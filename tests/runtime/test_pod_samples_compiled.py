"""The per-pod reader's compiled steps (core/scaling/hpa_compiled.py) give the numpy path's arrays:
the pod table of listed pods (pod_samples.pod_table_from_view), the join of samples into their
pods' rows (milli-units, has-sample, age) and the per-target means of the decision records (pod_samples.workload_summary), on named cases and generated inputs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, hpa_compiled
from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.hpa_propose import PodSamples, to_milli
from controller.model import TargetRef
from controller.ports import PodView
from controller.runtime.pod_samples import pod_table_from_view, workload_summary
from simulators.lazy_names import LazyStrings

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

P = 6


def numpy_join(rows, values, ages, usage, has, age):
    """pod_samples.PodReader.read's numpy join (the reference)."""
    found = (rows >= 0) & np.isfinite(values)
    usage[rows[found]], has[rows[found]] = to_milli(values[found]), True
    age[rows[found]] = ages[found]


def joined(join, rows, values, ages):
    usage, has, age = np.zeros((P, 2), np.int64), np.zeros((P, 2), bool), np.full(P, -1.0)
    join(np.asarray(rows, np.int64), np.asarray(values, float), np.asarray(ages, float), usage[:, 1], has[:, 1], age)
    return usage, has, age


def assert_join_same(monkeypatch, rows, values, ages):
    monkeypatch.setattr(compiled, "switch", "1")

    def fast(*args):
        assert hpa_compiled.try_join_samples(*args), "the kernel declined"

    for got, want in zip(joined(fast, rows, values, ages), joined(numpy_join, rows, values, ages)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rows, values, expect_usage", [
    pytest.param([0, 2, 5], [12.5, 0.0015, 3.0], [12500, 0, 2, 0, 0, 3000], id="milli-rounded-half-to-even"),
    pytest.param([0, -1, 1], [1.0, 2.0, 3.0], [1000, 3000, 0, 0, 0, 0], id="unlisted-pod-dropped"),
    pytest.param([0, 1, 2], [math.nan, math.inf, -math.inf], [0] * 6, id="non-finite-dropped"),
    pytest.param([3, 3], [1.0, 2.0], [0, 0, 0, 2000, 0, 0], id="a-later-sample-wins"),
    pytest.param([4], [1e300], [0, 0, 0, 0, int(9.2e18), 0], id="huge-clipped"),
    pytest.param([], [], [0] * 6, id="no-samples"),
])
def test_join_same_as_numpy_on_cases(monkeypatch, rows, values, expect_usage):
    assert_join_same(monkeypatch, rows, values, list(range(len(rows))))
    usage, _, _ = joined(numpy_join, np.asarray(rows, np.int64), np.asarray(values, float), np.zeros(len(rows)))
    assert usage[:, 1].tolist() == expect_usage


VALUES = st.one_of(st.floats(-1e4, 1e4, allow_nan=False), st.sampled_from([math.nan, math.inf, -math.inf, 0.0005,
                                                                              0.0025, -0.0015, 1e19]))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_join_same_as_numpy_on_generated_samples(data):
    k = data.draw(st.integers(0, 12))
    rows = data.draw(st.lists(st.integers(-1, P - 1), min_size=k, max_size=k))
    values = data.draw(st.lists(VALUES, min_size=k, max_size=k))
    ages = data.draw(st.lists(st.floats(0, 120), min_size=k, max_size=k))
    with pytest.MonkeyPatch.context() as mp:
        assert_join_same(mp, rows, values, ages)


def pod_samples(target, usage, has) -> PodSamples:
    table = hr.PodTable.of(np.asarray(target, np.int64))
    usage = np.asarray(usage, np.int64).reshape(-1, 1)
    return PodSamples(table, np.hstack([usage * 0, usage]), np.hstack([np.zeros_like(usage, bool),
                                                                      np.asarray(has, bool).reshape(-1, 1)]),
                      np.array([False, True]))


def summaries(monkeypatch, pods: PodSamples, n: int):
    monkeypatch.setattr(compiled, "switch", "1")
    fast = workload_summary(pods, 1, n)
    monkeypatch.setattr(compiled, "switch", "0")
    return fast, workload_summary(pods, 1, n)


@pytest.mark.parametrize("target, usage, has, n, expect", [
    pytest.param([0, 0, 1], [1000, 2000, 500], [True, True, True], 2, [1.5, 0.5], id="mean-per-target"),
    pytest.param([0, 0, 1], [1000, 2000, 500], [True, False, False], 3, [1.0, math.nan, math.nan],
                 id="pods-without-samples-skipped"),
    pytest.param([], [], [], 2, [math.nan, math.nan], id="no-pods"),
    pytest.param([1, 0, 1, 1], [1, 2, 7, 3], [True] * 4, 2, [0.002, 0.011 / 3], id="float-sums-in-pod-order"),
])
def test_means_same_as_numpy_on_cases(monkeypatch, target, usage, has, n, expect):
    fast, ref = summaries(monkeypatch, pod_samples(target, usage, has), n)
    for name in ("values", "present", "age_s", "conflict"):
        got, want = getattr(fast, name), getattr(ref, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_allclose(ref.values, expect, rtol=1e-12)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_means_same_as_numpy_on_generated_pods(data):
    n, p = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 20))
    target = data.draw(st.lists(st.integers(0, n - 1), min_size=p, max_size=p))
    usage = data.draw(st.lists(st.integers(-10**12, 10**12), min_size=p, max_size=p))
    has = data.draw(st.lists(st.booleans(), min_size=p, max_size=p))
    with pytest.MonkeyPatch.context() as mp:
        fast, ref = summaries(mp, pod_samples(target, usage, has), n)
    np.testing.assert_array_equal(fast.values, ref.values)
    np.testing.assert_array_equal(fast.present, ref.present)


NOW = 1_000_000.0


def listed_tables(monkeypatch, pending, ready, start, transition, names=None):
    """pod_samples.pod_table_from_view with the kernel, then with numpy (table_of, the reference)."""
    p = len(pending)
    view = PodView(target=np.arange(p, dtype=np.int64) % 3, names=names if names is not None else
                   tuple(f"pod-{k}" for k in range(p)), pending=np.asarray(pending, bool),
                   ready=np.asarray(ready, bool), start_time=np.asarray(start, float),
                   ready_transition_time=np.asarray(transition, float), uid=np.arange(p, dtype=np.int64))
    targets = [TargetRef("default", f"svc-{i}") for i in range(3)]
    tables = []
    for switch in ("1", "0"):
        monkeypatch.setattr(compiled, "switch", switch)
        tables.append(pod_table_from_view(targets, view, NOW))
    return tables


def assert_tables_same(fast, ref):
    (table, index), (want, want_index) = fast, ref
    for field in dataclasses.fields(hr.PodTable):
        got, expect = getattr(table, field.name), getattr(want, field.name)
        if field.name == "names":
            assert tuple(got) == tuple(expect) and type(got) is type(expect)
            continue
        assert got.dtype == expect.dtype, field.name
        np.testing.assert_array_equal(got, expect, err_msg=field.name)
    assert dict(index) == dict(want_index)


@pytest.mark.parametrize("pending, ready, start, transition", [
    pytest.param([True, False, False], [False, False, True], [NOW - 10, NOW - 300, NOW - 9e3],
                 [math.nan, NOW - 20, NOW - 8e3], id="pending-starting-ready"),
    pytest.param([False], [True], [math.nan], [math.nan], id="unset-times-nan-age-and-zero-time"),
    pytest.param([False, True], [True, True], [NOW + 5, NOW], [NOW + 1, NOW], id="times-after-now-negative-ages"),
    pytest.param([], [], [], [], id="no-pods"),
])
def test_listed_table_same_as_numpy_on_cases(monkeypatch, pending, ready, start, transition):
    fast, ref = listed_tables(monkeypatch, pending, ready, start, transition)
    assert_tables_same(fast, ref)
    table = fast[0]
    assert table.phase.tolist() == [hr.Phase.PENDING if p else hr.Phase.RUNNING for p in pending]
    assert table.ready.tolist() == [hr.Readiness.TRUE if r else hr.Readiness.FALSE for r in ready]


def test_listed_table_keeps_lazy_names_and_tuples_lists(monkeypatch):
    lazy = LazyStrings(lambda j: f"lazy-{j}", 2)
    fast, ref = listed_tables(monkeypatch, [False, False], [True, True], [NOW, NOW], [NOW, NOW], names=lazy)
    assert fast[0].names is lazy and ref[0].names is lazy
    fast, ref = listed_tables(monkeypatch, [False], [True], [NOW], [NOW], names=["a"])
    assert fast[0].names == ("a",) == ref[0].names


TIMES = st.one_of(st.floats(NOW - 1e6, NOW + 100), st.just(math.nan))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_listed_table_same_as_numpy_on_generated_pods(data):
    p = data.draw(st.integers(0, 20))
    flags = st.lists(st.booleans(), min_size=p, max_size=p)
    times = st.lists(TIMES, min_size=p, max_size=p)
    with pytest.MonkeyPatch.context() as mp:
        fast, ref = listed_tables(mp, data.draw(flags), data.draw(flags), data.draw(times), data.draw(times))
    assert_tables_same(fast, ref)
