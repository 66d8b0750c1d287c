"""compiled.nan_max and nan_min, the kernels' np.maximum and np.minimum of two floats, written as
selects without a branch (a branch on a sign that changes from target to target, the ramp's
max(slope, 0), was mispredicted about every other target): NaN when either is NaN, else the
larger (smaller) one, the first of two equal values (-0.0 and 0.0 keep their order), to the bit.
Checked inlined into a compiled loop, as the fused kernel uses them (where LLVM may vectorize the
selects), and called alone, against the rule they have always followed.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

NAN, INF = math.nan, math.inf


def reference(name: str, a: float, b: float) -> float:
    """The rule (the helpers' former early-return form): NaN if either is NaN, else a if a >= b (a <= b) else b."""
    if a != a or b != b:
        return NAN
    return a if (a >= b if name == "nan_max" else a <= b) else b


@functools.cache
def looped(name: str):
    """A compiled loop applying compiled.<name> to (K,) pairs into (K,) out: the helper inlined."""
    import numba  # noqa: PLC0415 (loaded by compiled.available())

    helper = getattr(compiled, name)

    @numba.njit
    def apply(a, b, out):
        for k in range(a.shape[0]):
            out[k] = helper(a[k], b[k])

    return apply


def assert_same_bits(name: str, a: np.ndarray, b: np.ndarray) -> None:
    """The compiled loop's and the single call's answers are the reference's: NaN where it is NaN,
    else the same bits (value and the sign of zero)."""
    want = np.array([reference(name, x, y) for x, y in zip(a.tolist(), b.tolist())])
    got = np.empty_like(a)
    looped(name)(a, b, got)
    alone = np.array([getattr(compiled, name)(x, y) for x, y in zip(a.tolist(), b.tolist())])
    for what, answer in (("in a compiled loop", got), ("called alone", alone)):
        np.testing.assert_array_equal(np.isnan(answer), np.isnan(want), err_msg=f"{name} {what}: NaN where")
        finite = ~np.isnan(want)
        np.testing.assert_array_equal(answer[finite].view(np.int64), want[finite].view(np.int64),
                                      err_msg=f"{name} {what}: bits of {a[finite]}, {b[finite]}")


PAIRS = [
    pytest.param(NAN, 1.0, id="nan-first"),
    pytest.param(1.0, NAN, id="nan-second"),
    pytest.param(NAN, NAN, id="both-nan"),
    pytest.param(-0.0, 0.0, id="negative-zero-first"),
    pytest.param(0.0, -0.0, id="positive-zero-first"),
    pytest.param(-2.5, 0.0, id="negative-slope-against-zero"),
    pytest.param(3.0, 0.0, id="positive-slope-against-zero"),
    pytest.param(INF, -INF, id="infinities"),
    pytest.param(-INF, NAN, id="minus-infinity-and-nan"),
    pytest.param(7.0, 7.0, id="equal"),
]


@pytest.mark.parametrize("name", ["nan_max", "nan_min"])
@pytest.mark.parametrize("a, b", PAIRS)
def test_the_selects_follow_the_rule_on_the_edge_values(name, a, b):
    assert_same_bits(name, np.array([a]), np.array([b]))


@pytest.mark.parametrize("name", ["nan_max", "nan_min"])
def test_the_selects_follow_the_rule_on_every_edge_pair_at_once(name):
    values = np.array([p.values[0] for p in PAIRS] + [p.values[1] for p in PAIRS])
    a, b = np.repeat(values, values.size), np.tile(values, values.size)  # every ordered pair, a vectorizable loop
    assert_same_bits(name, a, b)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                                st.floats(allow_nan=True, allow_infinity=True)), max_size=40),
       name=st.sampled_from(["nan_max", "nan_min"]))
def test_the_selects_follow_the_rule_on_random_pairs(pairs, name):
    a = np.array([p[0] for p in pairs], dtype=np.float64)
    b = np.array([p[1] for p in pairs], dtype=np.float64)
    assert_same_bits(name, a, b)
