"""The in-place path's EWMA weights (workspace._ewma_alpha_into, fused.ewma_exponent_into): with
the workspace's memo of the last shared age, the weights are smooth.ewma_alpha's bit for bit
(signed zeros included) cycle after cycle, whether the memo answers (every series the same age,
or never sampled), numpy's expm1 runs on every series (none of the memo's age) or on the few of
other ages only (the others from the memo)."""

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


def status(out: np.ndarray, ewma_at: np.ndarray, now: float, half_life_s: float, memo: np.ndarray) -> int:
    """The kernel's answer on copies: how many series numpy's expm1 must run on (0: the memo answered)."""
    return int(fused.ewma_exponent_into(out.copy(), ewma_at, now, half_life_s, memo.copy(),
                                        np.empty(out.size, np.int64)))


def run_cycles(ages_s: list[list[float]], half_life_s: float, cycles: int, memo: np.ndarray | None = None,
               odd: np.ndarray | None = None) -> list[int]:
    """Each cycle the series' last samples are ``ages_s`` (N, M) seconds old (NaN: never sampled),
    or ``ages_s[k]`` in cycle k when a list of such; checks the weights with the memo against the
    reference; returns the kernel's status per cycle (0: the memo answered, else how many series
    numpy's expm1 ran on)."""
    per_cycle = np.array(ages_s, dtype=np.float64)
    if per_cycle.ndim == 2:
        per_cycle = np.broadcast_to(per_cycle, (cycles, *per_cycle.shape))
    out, statuses = np.empty_like(per_cycle[0]), []
    memo = np.full(3, NAN) if memo is None else memo
    for k in range(cycles):
        now = T0 + INTERVAL_S * k
        ewma_at = now - per_cycle[k]
        statuses.append(status(out, ewma_at, now, half_life_s, memo))
        _ewma_alpha_into(out, ewma_at, now, half_life_s, memo, odd)
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


@pytest.mark.parametrize("ages_s, expm1_on", [
    pytest.param([[[15.0, 15.0], [15.0, 15.0]], [[15.0, 30.0], [15.0, 15.0]], [[15.0, 15.0], [15.0, 15.0]]],
                 [4, 1, 0], id="one-series-behind-once-only-it-through-expm1"),
    pytest.param([[[15.0, 15.0], [15.0, 15.0]], [[30.0, 15.0], [15.0, 45.0]], [[30.0, 15.0], [15.0, 45.0]]],
                 [4, 2, 2], id="two-behind-the-memo-keeps-the-majoritys-age"),
    pytest.param([[[15.0, NAN], [15.0, 15.0]], [[30.0, NAN], [15.0, 15.0]]],
                 [3, 1], id="a-series-never-sampled-and-one-behind"),
    pytest.param([[[15.0, 15.0]], [[30.0, 30.0]], [[30.0, 30.0]]],
                 [2, 2, 0], id="every-series-a-new-age-the-memo-moves"),
    pytest.param([[[-30.0, -15.0]], [[-30.0, -15.0]]],
                 [2, 1], id="ahead-of-the-clock-two-ages-one-exponent-minus-zero"),
])
def test_series_of_other_ages_only_go_through_expm1(ages_s, expm1_on):
    """The memo answers for the series of its age; the others (and only they) get numpy's expm1,
    in place of the whole array's; the memo moves only when no series has its age."""
    assert run_cycles(ages_s, 45.0, len(expm1_on)) == expm1_on


@pytest.mark.parametrize("half_life_s", [pytest.param(45.0, id="same"), pytest.param(90.0, id="other")])
def test_a_memo_of_another_half_life_does_not_answer(half_life_s):
    """The memo's weight is for its half-life: the same age under another half-life is recomputed."""
    memo = np.full(3, NAN)
    run_cycles([[15.0, 15.0]], 45.0, 1, memo)
    assert run_cycles([[15.0, 15.0]], half_life_s, 1, memo) == [0 if half_life_s == 45.0 else 2]


def test_a_series_falling_behind_once_gets_numpys_weights_and_the_memo_returns():
    """Cycle 2: one series missed a sample (older); its weight from numpy's expm1, the others'
    from the memo; cycle 3: all the same age again, the memo answers."""
    out, memo = np.empty((3, 2)), np.full(3, NAN)
    ewma_at = np.full((3, 2), T0 - INTERVAL_S)
    for k, behind in enumerate([None, None, (1, 0), None]):
        now = T0 + INTERVAL_S * k
        ewma_at[:] = now - INTERVAL_S
        if behind is not None:
            ewma_at[behind] -= INTERVAL_S
        answer = status(out, ewma_at, now, 45.0, memo)
        _ewma_alpha_into(out, ewma_at, now, 45.0, memo, np.empty(out.size, np.int64))
        assert_same_bits(reference(ewma_at, now, 45.0), out, f"cycle {k}")
        assert answer == {0: 6, 1: 0, 2: 1, 3: 0}[k], f"cycle {k}: status {answer}"


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
