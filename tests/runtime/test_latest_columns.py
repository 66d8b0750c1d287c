"""The ramps' latest readings as (N, M) columns (reconciler._latest_columns): the one-metric
policy's column is its Samples' own arrays, viewed (no fill of fresh arrays each cycle); every
row of this table gives what the general fill gives, value for value and dtype for dtype, and the
signal read of it (read_signal_fast, as Reconciler._query_latest reads it) is the same."""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.scaling.signal_compiled import read_signal_fast
from controller.ports import Samples
from controller.runtime.reconciler import _latest_columns

NAN = np.nan


def samples(values, present=None, age=None, conflict=None) -> Samples:
    n = len(values)
    return Samples(np.asarray(values), np.ones(n, bool) if present is None else np.asarray(present, bool),
                   np.zeros(n) if age is None else np.asarray(age), np.zeros(n, bool) if conflict is None
                   else np.asarray(conflict, bool))


def filled(got: dict, n: int, m: int):
    """The general fill, column by column (what every policy got before the one-metric view)."""
    values, present, age = np.full((n, m), NAN), np.zeros((n, m), bool), np.zeros((n, m))
    for j, s in got.items():
        values[:, j], present[:, j], age[:, j] = s.values, s.present & ~s.conflict, s.age_s
    return values, present, age


ROWS = [
    pytest.param({0: samples([10.0, 20.0, 30.0])}, 3, 1, id="one-metric-answered"),
    pytest.param({0: samples([10.0, NAN, -1.0], present=[True, False, True], age=[0.0, 5.0, 90.0])}, 3, 1,
                 id="one-metric-missing-stale-negative"),
    pytest.param({0: samples([10.0, 20.0, 30.0], conflict=[False, True, False])}, 3, 1, id="one-metric-a-conflict"),
    pytest.param({0: samples(np.array([10, 20, 30], np.int64), age=np.array([0, 1, 2], np.int64))}, 3, 1,
                 id="one-metric-integer-arrays"),
    pytest.param({}, 3, 1, id="one-metric-unanswered"),
    pytest.param({1: samples([1.0, 2.0, 3.0])}, 3, 2, id="two-metrics-second-answered"),
    pytest.param({0: samples([1.0, 2.0]), 1: samples([3.0, NAN], present=[True, False])}, 2, 2, id="two-answered"),
    pytest.param({0: samples(np.zeros(0))}, 0, 1, id="no-targets"),
]


@pytest.mark.parametrize("got, n, m", ROWS)
def test_the_columns_are_the_general_fills(got, n, m):
    want, have = filled(got, n, m), _latest_columns(got, n, m)
    for w, h in zip(want, have):
        assert h.shape == w.shape and h.dtype == w.dtype
        np.testing.assert_array_equal(h, w)
    read = [read_signal_fast(*arrays, 60.0, np.array([True] * m), np.full(m, 1e6)).values for arrays in (want, have)]
    np.testing.assert_array_equal(read[1], read[0])


def test_the_one_metric_column_leaves_the_samples_as_they_were():
    s = samples([10.0, -1.0, NAN], present=[True, True, False], age=[0.0, 0.0, 120.0])
    before = [a.copy() for a in (s.values, s.present, s.age_s, s.conflict)]
    read_signal_fast(*_latest_columns({0: s}, 3, 1), 60.0, np.array([True]), np.array([1e6]))
    for a, b in zip((s.values, s.present, s.age_s, s.conflict), before):
        np.testing.assert_array_equal(a, b)
