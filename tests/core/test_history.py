"""history.write_slot's slot choice: the first reusable slot (empty or outdated), else the
oldest. ``slots_to_write`` finds it without an argmin over a float key; these tests hold it to
that definition on random histories, ties and full rows included. Also take_rows (ndarray.take,
new rows filled by index) held to the fancy index it replaced: same bytes, dtype and layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core import history
from tests.core.helpers import T0


def _by_key(times: np.ndarray, cutoff: float) -> np.ndarray:
    """The definition: argmin over -inf for reusable slots and the time otherwise."""
    return np.where(~(times >= cutoff), -np.inf, times).argmin(axis=1)


# slot times as offsets before T0 in whole intervals (ties are common), or empty (None)
_slot = st.one_of(st.none(), st.integers(0, 40).map(lambda k: T0 - 15.0 * k))


@given(rows=st.lists(st.lists(_slot, min_size=1, max_size=8), min_size=1, max_size=12),
       keep_s=st.sampled_from([0.0, 15.0, 60.0, 299.0, 300.0, 1e9, np.inf]))
@settings(max_examples=300, deadline=None)
def test_slot_is_the_first_reusable_else_the_first_oldest(rows, keep_s):
    width = max(len(r) for r in rows)
    times = np.full((len(rows), width), np.nan, order="F")
    for i, r in enumerate(rows):
        times[i, :len(r)] = [np.nan if t is None else t for t in r]
    times = np.asfortranarray(times)
    assert history.slots_to_write(times, T0 - keep_s).tolist() == _by_key(times, T0 - keep_s).tolist()


@pytest.mark.parametrize("slots", [pytest.param(3, id="few-slots"), pytest.param(300, id="more-slots-than-a-byte")])
def test_write_slot_writes_only_the_selected_rows_at_their_slot(slots):
    rng = np.random.default_rng(7)
    values, times = history.empty_history(50, slots)
    for k in range(slots + 5):  # fills every row, then overwrites the oldest entries
        rows, now = rng.random(50) < 0.7, T0 + 15.0 * k
        inputs = (values, times)
        before_v, before_t = values.copy(), times.copy()
        values, times = history.write_slot(values, times, np.arange(50.0) + 1000 * k, now, 30.0, rows=rows)
        assert np.array_equal(inputs[0], before_v) and np.array_equal(inputs[1], before_t, equal_nan=True)
        written = times == now  # each cycle writes a new time
        expect = np.zeros(written.shape, bool)
        expect[np.flatnonzero(rows), _by_key(before_t, now - 30.0)[rows]] = True
        assert np.array_equal(written, expect)
        assert np.array_equal(values[written], (np.arange(50.0) + 1000 * k)[rows])  # row order: one per row
        assert np.array_equal(values[~written], before_v[~written])
        assert times.flags.f_contiguous and values.flags.f_contiguous


N = np.nan


@pytest.mark.parametrize("values, times, slots, want_values, want_times", [
    pytest.param([[1, 2, 3]], [[10, 30, 20]], 5, [[2, 3, 1, 0, 0]], [[30, 20, 10, N, N]], id="wider-keeps-all-newest-first"),
    pytest.param([[1, 2, 3]], [[10, 30, 20]], 2, [[2, 3]], [[30, 20]], id="narrower-keeps-the-newest"),
    pytest.param([[1, 0, 3]], [[10, N, 20]], 2, [[3, 1]], [[20, 10]], id="empty-slots-go-last"),
    pytest.param([[0, 0]], [[N, N]], 3, [[0, 0, 0]], [[N, N, N]], id="an-empty-row-stays-empty"),
    pytest.param([[1, 2]], [[10, 20]], 0, np.zeros((1, 0)), np.zeros((1, 0)), id="no-slots"),
])
def test_refit_keeps_each_rows_newest_entries_in_the_new_slot_count(values, times, slots, want_values, want_times):
    got_values, got_times = history.refit(np.array(values, float), np.array(times, float), slots)
    np.testing.assert_array_equal(got_values, want_values)
    np.testing.assert_array_equal(got_times, want_times)
    assert got_values.flags.f_contiguous and got_times.flags.f_contiguous
    if slots:  # slot 0 holds a row's entry whenever it has one (is_empty looks there)
        np.testing.assert_array_equal(history.is_empty(got_times), np.isnan(np.array(times, float)).all(axis=1))


def _fancy_take(a: np.ndarray, rows: np.ndarray, fill) -> np.ndarray:
    """take_rows as a fancy index and a boolean mask wrote it (the reference)."""
    new = rows < 0
    out = a[np.where(new, 0, rows)] if a.shape[0] else np.full((rows.size,) + a.shape[1:], fill, dtype=a.dtype)
    out[new] = fill
    return out


_F_ORDER = np.asfortranarray(np.arange(60.0).reshape(5, 3, 4))


@pytest.mark.parametrize("a, rows, fill", [
    pytest.param(np.arange(10.0).reshape(5, 2), np.array([4, -1, 0, 0, 2, -1]), np.nan, id="rows-of-two-new-filled"),
    pytest.param(np.arange(5, dtype=np.int8), np.array([3, 1]), 0, id="no-new-row"),
    pytest.param(np.zeros((0, 2)), np.array([-1, -1]), np.nan, id="from-no-rows"),
    pytest.param(np.arange(10.0).reshape(5, 2), np.zeros(0, np.int64), np.nan, id="to-no-rows"),
    pytest.param(np.array(["a", "b", "c"], dtype=object), np.array([2, -1]), "", id="objects"),
    pytest.param(np.zeros((5, 1, 0)), np.array([1, -1]), 0.0, id="an-empty-inner-axis"),
    pytest.param(_F_ORDER, np.array([4, -1, 1]), 0.0, id="an-inner-axis-not-in-c-order-kept-so"),
])
def test_take_rows_gives_the_fancy_index_rows_bytes_and_layout(a, rows, fill):
    want = _fancy_take(a, rows, fill)
    for got in (history.take_rows(a, rows, fill), history.take_rows(a, history.row_pick(rows), fill)):  # rows, or one reading shared
        assert got.dtype == want.dtype and got.shape == want.shape and got.strides == want.strides
        assert got.tolist() == want.tolist() if a.dtype == object else got.tobytes() == want.tobytes()
        assert got.flags.writeable and not np.shares_memory(got, a)
