"""fused._windows_of_pattern (the window pass over the common pattern of recommendation times,
its maxima and minima folded a few slots per pass: fused._fold) against fused._windows_of_target
(a scan of one target's slots), bit for bit: random windows with expired, empty (NaN) and
inside slots, values with NaN, signed zeros and ties, every group size of the fold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, fused

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba not available")

NOW = 1_700_000_000.0


def both(rec_v, rows, legacy, up_w, down_w, released, proposals):
    """(pattern results, scan results): low, high, held, slot_of of every target, as the fused
    kernel calls them (low +inf, high and held -inf before)."""
    slots, n = rec_v.shape
    keep = down_w if legacy else max(up_w, down_w)
    cuts = (NOW - keep, NOW - up_w, NOW - down_w)
    low, high, held = np.full(n, np.inf), np.full(n, -np.inf), np.full(n, -np.inf)
    slot_of = np.zeros(n, np.int64)
    s_star = fused._windows_of_pattern(rec_v, rows, NOW, *cuts, legacy, up_w, down_w, released, proposals,
                                       low, high, held, slot_of)
    rec_t = np.ascontiguousarray(np.repeat(rows[:, None], n, axis=1))
    low2, high2, held2 = np.empty(n), np.empty(n), np.empty(n)
    slot2 = np.zeros(n, np.int64)
    for i in range(n):
        fused._windows_of_target(rec_v, rec_t, i, NOW, *cuts, legacy, up_w, down_w, released, proposals[i],
                                 low2, high2, held2, slot2)
    if n:  # the pattern's slot is each target's
        assert s_star == slot2[0]
    return (low, high, held, slot_of), (low2, high2, held2, slot2)


def assert_same_bits(a, b):
    for x, y in zip(a, b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), (x, y)


VALUES = st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, 5.5, 7.0, np.nan, 100.0, -1.0])


@st.composite
def windows(draw):
    slots = draw(st.integers(0, 13))
    n = draw(st.integers(0, 9))
    # slot times: empty (NaN), inside the windows, at their edges, or expired
    ages = st.sampled_from([np.nan, 0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 89.0, 90.0, 120.0, 300.0, 301.0, 900.0])
    rows = np.array([NOW - draw(ages) for _ in range(slots)], dtype=np.float64)
    rec_v = np.array([[draw(VALUES) for _ in range(n)] for _ in range(slots)], dtype=np.float64).reshape(slots, n)
    proposals = np.array([draw(VALUES) for _ in range(n)], dtype=np.float64)
    legacy = draw(st.booleans())
    up_w = 0.0 if legacy else draw(st.sampled_from([0.0, 45.0, 90.0]))
    down_w = draw(st.sampled_from([0.0, 60.0, 90.0, 300.0]))
    released = (not legacy) and down_w > 0 and draw(st.booleans())
    return rec_v, rows, legacy, up_w, down_w, released, proposals


@settings(max_examples=400, deadline=None)
@given(windows())
def test_pattern_pass_is_the_scan(case):
    pattern, scan = both(*case)
    assert_same_bits(pattern, scan)


# named rows: how many slots fall inside the window decides the fold's groups (4, 3, 2, one alone)
@pytest.mark.parametrize("inside", [0, 1, 2, 3, 4, 5, 6, 7, 9, 11], ids=lambda k: f"{k}-inside")
@pytest.mark.parametrize("mode", ["high", "legacy", "low+high", "released"])
def test_every_group_size(inside, mode):
    rng = np.random.default_rng(inside)
    slots, n = 12, 37
    ages = np.r_[np.arange(inside) * 15.0, np.full(slots - inside, 400.0)]
    rng.shuffle(ages)
    rows = NOW - ages
    rows[rng.integers(0, slots)] = np.nan if inside < slots else rows[0]  # an empty slot somewhere
    rec_v = rng.choice([0.0, -0.0, 1.0, 4.0, 4.0, 9.0, np.nan], size=(slots, n))
    proposals = rng.choice([0.0, -0.0, 2.0, 5.0], size=n)
    legacy, up_w, released = mode == "legacy", 200.0 if mode == "low+high" else 0.0, mode == "released"
    pattern, scan = both(rec_v, rows, legacy, up_w, 300.0, released, proposals)
    assert_same_bits(pattern, scan)
