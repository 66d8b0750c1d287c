"""fused.rise, the ramp's max(slope, 0) in the fused kernel, written as one select without a
branch (a branch on a sign that changes from target to target was mispredicted about every
other target): compiled.nan_max(slope, 0.0)'s answer to the bit for every slope (NaN stays NaN,
-0.0 stays -0.0, the other negatives give 0.0), inlined into a compiled loop as the kernel uses
it (where LLVM may vectorize the select) and called alone. The decisions the ramp makes with it
are checked against the numpy stages by test_compiled.py and test_ramp_pattern.py.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, fused

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


@functools.cache
def looped():
    """A compiled loop applying fused.rise to (K,) slopes into (K,) out, and nan_max(slope, 0.0) into ref."""
    import numba  # noqa: PLC0415 (loaded by compiled.available())

    rise, nan_max = fused.rise, compiled.nan_max

    @numba.njit
    def apply(slopes, out, ref):
        for k in range(slopes.shape[0]):
            out[k] = rise(slopes[k])
            ref[k] = nan_max(slopes[k], 0.0)

    return apply


def assert_rise_is_nan_max(slopes: np.ndarray) -> None:
    """rise's answers, in a compiled loop and called alone, are nan_max(slope, 0.0)'s: NaN where it
    is NaN, else the same bits (value and the sign of zero)."""
    got, want = np.empty_like(slopes), np.empty_like(slopes)
    looped()(slopes, got, want)
    alone = np.array([fused.rise(s) for s in slopes.tolist()])
    for what, answer in (("in a compiled loop", got), ("called alone", alone)):
        np.testing.assert_array_equal(np.isnan(answer), np.isnan(want), err_msg=f"rise {what}: NaN where")
        finite = ~np.isnan(want)
        np.testing.assert_array_equal(answer[finite].view(np.int64), want[finite].view(np.int64),
                                      err_msg=f"rise {what}: the bits for slopes {slopes[finite]}")


SLOPES = [
    pytest.param(math.nan, id="no-slope-nan"),
    pytest.param(-0.0, id="negative-zero"),
    pytest.param(0.0, id="zero"),
    pytest.param(-2.5, id="falling"),
    pytest.param(3.0, id="rising"),
    pytest.param(math.inf, id="rising-infinitely"),
    pytest.param(-math.inf, id="falling-infinitely"),
    pytest.param(5e-324, id="smallest-rise"),
]


@pytest.mark.parametrize("slope", SLOPES)
def test_rise_is_the_ramps_max_of_slope_and_zero(slope):
    assert_rise_is_nan_max(np.array([slope]))


def test_rise_is_the_ramps_max_of_slope_and_zero_over_a_vectorized_loop():
    assert_rise_is_nan_max(np.tile(np.array([p.values[0] for p in SLOPES]), 9))  # 72: whole vectors and a tail


@settings(max_examples=60, deadline=None)
@given(slopes=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40))
def test_rise_is_the_ramps_max_of_slope_and_zero_on_random_slopes(slopes):
    assert_rise_is_nan_max(np.array(slopes, dtype=np.float64))
