"""The simulated metrics source's compiled window means (simulators/metrics_compiled.py) equal the
numpy reference float for float (sign of zero included) on named cases and generated rings:
NaN gaps, a partly filled ring, repeated services, nonfinite series, every service in order
(row by row, as numpy sums a C-ordered window) or gathered (pairwise, as numpy sums an F-ordered one)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators import metrics_compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def assert_identical(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def both(monkeypatch, ring, filled, rows, nonfinite):
    monkeypatch.setattr(compiled, "switch", "1")
    ring, nonfinite = np.asarray(ring, float), np.asarray(nonfinite, bool)
    rows = rows if isinstance(rows, slice) else np.asarray(rows, np.int64)
    fast = metrics_compiled.try_window_means(ring, filled, rows, nonfinite)
    assert fast is not None, "the kernel declined"
    return fast, metrics_compiled.window_means_numpy(ring, filled, rows, nonfinite)


NAN = math.nan


@pytest.mark.parametrize("ring, filled, rows, nonfinite, expect", [
    pytest.param([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]], 2, [0, 1], [False, False], [2.0, 3.0], id="first-slots-only"),
    pytest.param([[NAN, 2.0], [3.0, NAN]], 2, [0, 1], [False, False], [3.0, 2.0], id="nan-gaps-skipped"),
    pytest.param([[NAN, 2.0], [NAN, NAN]], 2, [0, 1], [False, True], [NAN, NAN], id="none-present-or-nonfinite"),
    pytest.param([[-0.0, 1.0], [NAN, 1.0]], 2, [0, 1], [False, False], [0.0, 1.0], id="lone-negative-zero"),
    pytest.param([[-0.0, 1.0], [NAN, 1.0]], 1, [0, 1], [False, False], [0.0, 1.0], id="negative-zero-alone"),
    pytest.param([[1.0, 2.0]], 0, [1, 0], [False, False], [NAN, NAN], id="empty-window"),
    pytest.param([[1.0, 2.0, 3.0]], 1, slice(None), [False, False, False], [1.0, 2.0, 3.0], id="every-service"),
    pytest.param([[1.0, 2.0, 3.0]], 1, [2, 2, 0], [False, False, False], [3.0, 3.0, 1.0], id="repeated-services"),
    # every service in order: the kernel walks the window row by row (_row_by_row_means)
    pytest.param([[NAN, 2.0, -0.0], [3.0, NAN, NAN], [5.0, 4.0, 9.0]], 2, slice(None), [False, False, False],
                 [3.0, 2.0, 0.0], id="every-service-nan-gaps-and-negative-zero"),
    pytest.param([[NAN, 2.0, 1.0], [NAN, 4.0, 1.0]], 2, slice(None), [False, True, False], [NAN, NAN, 1.0],
                 id="every-service-none-present-or-nonfinite"),
    pytest.param([[1.0, 2.0], [3.0, 4.0]], 0, slice(None), [False, False], [NAN, NAN], id="every-service-empty-window"),
    pytest.param([[0.1, 1e300], [0.2, -1e300], [0.3, 5.0]], 3, slice(None), [False, False],
                 [(0.1 + 0.2 + 0.3) / 3, (1e300 - 1e300 + 5.0) / 3], id="every-service-sum-in-row-order"),
])
def test_same_as_numpy_on_cases(monkeypatch, ring, filled, rows, nonfinite, expect):
    fast, ref = both(monkeypatch, ring, filled, rows, nonfinite)
    assert_identical(fast, ref)
    assert_identical(ref, np.array(expect))


SAMPLES = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([NAN, -0.0, 0.1, 1e300, -1e300]))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_same_as_numpy_on_generated_rings(data):
    w, s = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 6))
    ring = np.array(data.draw(st.lists(SAMPLES, min_size=w * s, max_size=w * s))).reshape(w, s)
    filled = data.draw(st.integers(0, w))
    every = data.draw(st.booleans())
    rows = slice(None) if every else data.draw(st.lists(st.integers(0, s - 1), min_size=1, max_size=40))
    nonfinite = data.draw(st.lists(st.booleans(), min_size=s, max_size=s))
    with pytest.MonkeyPatch.context() as mp:
        assert_identical(*both(mp, ring, filled, rows, nonfinite))


@pytest.mark.parametrize("rows", [pytest.param(slice(None), id="one-service-in-order"),
                                  pytest.param([0], id="one-service-picked"),
                                  pytest.param([1, 0], id="picked-services")])
def test_long_windows_in_numpys_order(monkeypatch, rows):
    """numpy sums a single column or a gathered window pairwise, the whole ring in order row by row:
    13 slots of values whose sum depends on the order."""
    ring = (np.linspace(0.1, 1.3, 26) ** 3 * 1e5).reshape(13, 2)
    ring = ring[:, :1] if isinstance(rows, slice) else ring
    assert_identical(*both(monkeypatch, ring, 13, rows, np.zeros(ring.shape[1], bool)))


def recent_both(monkeypatch, ring, slots, rows):
    monkeypatch.setattr(compiled, "switch", "1")
    ring, slots = np.asarray(ring, float), np.asarray(slots, np.int64)
    rows = rows if isinstance(rows, slice) else np.asarray(rows, np.int64)
    fast = metrics_compiled.try_recent_means(ring, slots, rows)
    assert fast is not None, "the kernel declined"
    return fast, metrics_compiled.recent_means_numpy(ring, slots, rows)


@pytest.mark.parametrize("ring, slots, rows, expect", [
    pytest.param([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]], [1, 0], [0, 1], [2.0, 3.0], id="newest-first"),
    pytest.param([[NAN, 2.0], [3.0, 4.0]], [0, 1], [0, 1], [NAN, 3.0], id="nan-propagates"),
    pytest.param([[-0.0, 1.0], [-0.0, 1.0]], [1, 0], slice(None), [0.0, 1.0], id="negative-zeros-sum-from-zero"),
    pytest.param([[1.0, 2.0, 3.0]], [0], [2, 2, 0], [3.0, 3.0, 1.0], id="repeated-services"),
    # every service in order: the kernel adds the slots' rows one after the other
    pytest.param([[0.1, 1e300, NAN], [0.2, -1e300, 1.0], [0.3, 5.0, 2.0]], [2, 1, 0], slice(None),
                 [(0.3 + 0.2 + 0.1) / 3, (5.0 - 1e300 + 1e300) / 3, NAN], id="every-service-newest-first-nan-propagates"),
    pytest.param([[-0.0, -0.0], [-0.0, 1.0]], [0, 1], slice(None), [0.0, 0.5], id="every-service-negative-zeros"),
])
def test_recent_means_same_as_numpy_on_cases(monkeypatch, ring, slots, rows, expect):
    fast, ref = recent_both(monkeypatch, ring, slots, rows)
    assert_identical(fast, ref)
    assert_identical(ref, np.array(expect))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_recent_means_same_as_numpy_on_generated_rings(data):
    w, s = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 6))
    ring = np.array(data.draw(st.lists(SAMPLES, min_size=w * s, max_size=w * s))).reshape(w, s)
    k, last = data.draw(st.integers(1, w)), data.draw(st.integers(0, 40))
    slots = (last - np.arange(k)) % w
    rows = slice(None) if data.draw(st.booleans()) else data.draw(st.lists(st.integers(0, s - 1), min_size=1, max_size=40))
    with pytest.MonkeyPatch.context() as mp:
        assert_identical(*recent_both(mp, ring, slots, rows))


@pytest.mark.parametrize("rows", [pytest.param(slice(None), id="every-service"),
                                  pytest.param(slice(None), id="one-service-in-order"),
                                  pytest.param([1, 0], id="picked-services")])
def test_recent_means_long_windows_in_numpys_order(monkeypatch, rows, request):
    """13 slots whose sum depends on the order: row by row over every service (two or more),
    pairwise down a single or gathered column."""
    ring = (np.linspace(0.1, 1.3, 26) ** 3 * 1e5).reshape(13, 2)
    ring = ring[:, :1] if request.node.callspec.id == "one-service-in-order" else ring
    assert_identical(*recent_both(monkeypatch, ring, (12 - np.arange(13)) % 13, rows))



@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_most_services_gathered_sum_each_column_pairwise(data):
    """A gathered window that picks a quarter of the services or more is summed for every service
    at once, a row at a time (_column_pairwise_sums): the same floats as numpy's pairwise sum down
    each gathered column, for window means and recent means alike, windows shorter and longer
    than the pairwise sum's eight lanes; terms of magnitudes 1e-3..1e8 (sums that depend on the
    order), with NaN and -0.0 terms (a window of -0.0 only: see the test below)."""
    w, s = data.draw(st.integers(1, 24)), data.draw(st.integers(1, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    ring = rng.normal(size=(w, s)) * 10.0 ** rng.integers(-3, 9, size=(w, s))
    nan_share, zero_share = data.draw(st.sampled_from([0.0, 0.3])), data.draw(st.sampled_from([0.0, 0.3]))
    ring[rng.random((w, s)) < zero_share] = -0.0
    ring[rng.random((w, s)) < nan_share] = NAN
    rows = data.draw(st.lists(st.integers(0, s - 1), min_size=max(1, -(-s // metrics_compiled._MOST_DIVISOR)),
                              max_size=2 * s))
    nonfinite = data.draw(st.lists(st.booleans(), min_size=s, max_size=s))
    k, last = data.draw(st.integers(1, w)), data.draw(st.integers(0, 40))
    with pytest.MonkeyPatch.context() as mp:
        assert_identical(*both(mp, ring, data.draw(st.integers(0, w)), rows, nonfinite))
        assert_identical(*recent_both(mp, ring, (last - np.arange(k)) % w, rows))


@pytest.mark.parametrize("slots", [pytest.param(7, id="short-sum-from-zero"), pytest.param(8, id="eight-lanes"),
                                   pytest.param(13, id="lanes-then-rest")])
def test_a_window_of_negative_zeros_reads_alike_picked_or_mostly_gathered(monkeypatch, slots):
    """A window of -0.0 only: the column sums give the sign the per-target pairwise sum gives
    (0.0 from the short sum, -0.0 from the eight lanes, as compiled._pairwise_sum); numpy gives
    0.0 either way (its sum adds to 0.0), a difference of the compiled sums that predates them."""
    monkeypatch.setattr(compiled, "switch", "1")
    ring, nonfinite = np.full((slots, 8), -0.0), np.zeros(8, bool)
    picked = metrics_compiled.try_window_means(ring, slots, np.array([3], np.int64), nonfinite)  # 1 of 8: per target
    most = metrics_compiled.try_window_means(ring, slots, np.arange(8)[::-1].copy(), nonfinite)  # all 8, permuted
    recent = metrics_compiled.try_recent_means(ring, np.arange(slots)[::-1].copy(), np.arange(8)[::-1].copy())
    assert np.signbit(picked[0]) == (slots >= 8)
    assert np.signbit(most).tolist() == np.signbit(recent).tolist() == [slots >= 8] * 8
