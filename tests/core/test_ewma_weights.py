"""The in-place path's EWMA weights (workspace._ewma_alpha_into, fused.ewma_exponent_into): with
the workspace's memo of the last shared exponent, the weights are smooth.ewma_alpha's bit for bit
(signed zeros included) cycle after cycle, whether the memo answers (every series the same age,
or never sampled) or numpy's expm1 runs (series of other ages)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, fused
from controller.core.scaling.smooth import ewma_alpha
from controller.core.scaling.workspace import _ewma_alpha_into
from tests.core.helpers import T0

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
NAN = np.nan
INTERVAL_S = 15.0


def reference(ewma_at: np.ndarray, now: float, half_life_s: float) -> np.ndarray:
    """The negated weights of the numpy stages (NaN where the series was never sampled)."""
    weights = -ewma_alpha(now - ewma_at, half_life_s)
    weights[np.isnan(ewma_at)] = NAN
    return weights


def assert_same_bits(expected: np.ndarray, got: np.ndarray, where: str) -> None:
    """Bit for bit where the series was sampled (the fused kernel reads no other weight)."""
    sampled = ~np.isnan(expected)
    assert expected[sampled].view(np.uint64).tolist() == got[sampled].view(np.uint64).tolist(), where


def run_cycles(ages_s: list[list[float]], half_life_s: float, cycles: int) -> list[int]:
    """Each cycle the series' last samples are ``ages_s`` (N, M) seconds old (NaN: never sampled);
    checks the weights with the memo against the reference; returns the kernel's status per cycle
    (0: the memo answered, else numpy's expm1 ran)."""
    ages = np.array(ages_s, dtype=np.float64)
    out, memo, statuses = np.empty_like(ages), np.full(2, NAN), []
    for k in range(cycles):
        now = T0 + INTERVAL_S * k
        ewma_at = now - ages
        statuses.append(int(fused.ewma_exponent_into(out.copy(), ewma_at, now, half_life_s, memo.copy())))
        _ewma_alpha_into(out, ewma_at, now, half_life_s, memo)
        assert_same_bits(reference(ewma_at, now, half_life_s), out, f"cycle {k}")
    return statuses


@pytest.mark.parametrize("ages_s, half_life_s, memo_answers", [
    pytest.param([[15.0, 15.0], [15.0, 15.0]], 45.0, [False, True, True], id="every-series-the-same-age"),
    pytest.param([[15.0, NAN], [15.0, 15.0]], 45.0, [False, True, True], id="a-series-never-sampled"),
    pytest.param([[NAN, NAN]], 45.0, [True, True, True], id="no-series-sampled-yet"),
    pytest.param([[15.0, 30.0], [15.0, 15.0]], 45.0, [False, False, False], id="a-series-one-sample-behind"),
    pytest.param([[-30.0, -30.0]], 45.0, [False, True, True], id="samples-ahead-of-the-clock-weight-minus-zero"),
    pytest.param([[0.0, 0.0]], 45.0, [False, True, True], id="sampled-this-instant"),
    pytest.param([[15.0, 15.0]], 0.0, [True, True, True], id="no-half-life-weight-one"),
])
def test_weights_equal_numpys_with_and_without_the_memo(ages_s, half_life_s, memo_answers):
    statuses = run_cycles(ages_s, half_life_s, len(memo_answers))
    assert [s == 0 for s in statuses] == memo_answers


def test_a_series_falling_behind_once_gets_numpys_weights_and_the_memo_returns():
    """Cycle 2: one series missed a sample (older); its weight, and every other, from numpy's
    expm1; cycle 3: all the same age again, the memo answers."""
    out, memo = np.empty((3, 2)), np.full(2, NAN)
    ewma_at = np.full((3, 2), T0 - INTERVAL_S)
    for k, behind in enumerate([None, None, (1, 0), None]):
        now = T0 + INTERVAL_S * k
        ewma_at[:] = now - INTERVAL_S
        if behind is not None:
            ewma_at[behind] -= INTERVAL_S
        status = int(fused.ewma_exponent_into(out.copy(), ewma_at, now, 45.0, memo.copy()))
        _ewma_alpha_into(out, ewma_at, now, 45.0, memo)
        assert_same_bits(reference(ewma_at, now, 45.0), out, f"cycle {k}")
        assert (status == 0) == (k in (1, 3)), f"cycle {k}: status {status}"


@settings(max_examples=60, deadline=None)
@given(ages=st.lists(st.lists(st.sampled_from([NAN, -15.0, 0.0, 15.0, 15.0, 15.0, 30.0, 47.5]), min_size=1,
                              max_size=3), min_size=1, max_size=6).filter(lambda a: len({len(r) for r in a}) == 1),
       half_life_s=st.sampled_from([0.0, 7.5, 45.0, 90.0]))
def test_weights_equal_numpys_on_random_ages(ages, half_life_s):
    run_cycles(ages, half_life_s, 3)


@pytest.mark.parametrize("size", [pytest.param(1, id="one"), pytest.param(7, id="shorter-than-a-vector"),
                                  pytest.param(17, id="vectors-and-a-tail"), pytest.param(2000, id="a-workspace")])
def test_numpys_expm1_of_a_value_does_not_depend_on_its_place(size):
    """What the memo relies on: the weight remembered from one element of a whole-array expm1
    is what expm1 gives that exponent anywhere in an array (SIMD body or scalar tail)."""
    exponents = -np.random.default_rng(size).uniform(0.0, 2.0, size)
    weights = np.expm1(exponents)
    for k in range(0, size, max(1, size // 50)):
        alone, spread = np.expm1(exponents[k:k + 1]), np.expm1(np.full(size, exponents[k]))
        assert {alone[0], *spread.tolist()} == {weights[k]}, f"element {k}"
