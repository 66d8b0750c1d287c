"""Per-pod samples join their pods by uid (PodIndex.rows): the one-pass join of samples listed in
the pods' order (the simulator's, compiled) finds the same rows as the sorting join, and any
other order or a sample of an unlisted pod still joins (or is dropped) as before."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, hpa_compiled
from controller.ports import PodSeries
from controller.runtime.pod_samples import PodIndex


def reference_rows(uid: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The sorting join: position of each wanted uid, -1 when absent (uids unique)."""
    where = {int(u): i for i, u in enumerate(uid)}
    return np.array([where.get(int(w), -1) for w in want], dtype=np.int64)


def index_rows(uid: np.ndarray, want: np.ndarray) -> np.ndarray:
    index = PodIndex([], np.zeros(uid.size, np.int64), [""] * uid.size, uid)
    return index.rows(PodSeries((), (), np.zeros(want.size), np.zeros(want.size), uid=want))


UIDS = st.lists(st.integers(0, 2**40), unique=True, max_size=40).map(lambda v: np.array(v, dtype=np.int64))


@settings(max_examples=150, deadline=None)
@given(uid=UIDS, data=st.data(), switch=st.sampled_from(["1", "0"]))
def test_join_finds_the_same_rows_whatever_the_order(uid, data, switch):
    picked = data.draw(st.lists(st.sampled_from(range(uid.size)), unique=True) if uid.size else st.just([]))
    in_order = data.draw(st.booleans())
    rows = sorted(picked) if in_order else picked
    stray = data.draw(st.lists(st.integers(2**41, 2**42), max_size=2))  # samples of pods nobody lists
    want = np.array([int(uid[r]) for r in rows] + stray, dtype=np.int64)
    with mock.patch.object(compiled, "switch", switch):  # compiled, and numpy
        np.testing.assert_array_equal(index_rows(uid, want), reference_rows(uid, want))


@pytest.mark.skipif(not compiled.available(), reason="numba unavailable")
@pytest.mark.parametrize("uid, want, expect", [
    pytest.param([30, 10, 20], [30, 20], [0, 2], id="a-subsequence-in-list-order"),
    pytest.param([30, 10, 20], [], [], id="no-samples"),
    pytest.param([30, 10, 20], [20, 30], None, id="out-of-order-left-to-the-sorting-join"),
    pytest.param([30, 10, 20], [30, 40], None, id="an-unlisted-pod-left-to-the-sorting-join"),
])
def test_one_pass_join_takes_only_subsequences(uid, want, expect, monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    got = hpa_compiled.try_subsequence_rows(np.array(uid, np.int64), np.array(want, np.int64))
    assert (got is None) if expect is None else got.tolist() == expect
