"""The order pytest-xdist workers hand tests out in (tests/conftest.py spread_waiting_tests): the
end-to-end tests, which mostly wait on real clocks, spread over the run instead of one after another."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import spread_waiting_tests


@dataclass
class Item:
    nodeid: str


def items(before: int, waiting: int, after: int) -> list[Item]:
    return ([Item(f"tests/adapters/test_a.py::t{k}") for k in range(before)]
            + [Item(f"tests/e2e/test_e.py::t{k}") for k in range(waiting)]
            + [Item(f"tests/simulators/test_s.py::t{k}") for k in range(after)])


@pytest.mark.parametrize("before, waiting, after", [
    pytest.param(100, 7, 20, id="a-block-in-the-middle"),
    pytest.param(0, 5, 50, id="waiting-ones-first"),
    pytest.param(3, 10, 0, id="more-waiting-than-others"),
    pytest.param(40, 0, 40, id="none-waiting"),
    pytest.param(0, 4, 0, id="only-waiting"),
])
def test_every_test_is_kept_and_the_others_keep_their_order(before, waiting, after):
    given = items(before, waiting, after)
    spread = spread_waiting_tests(given)
    assert sorted(i.nodeid for i in spread) == sorted(i.nodeid for i in given)
    is_waiting = [i.nodeid.startswith("tests/e2e/") for i in given]
    assert [i for i in spread if not i.nodeid.startswith("tests/e2e/")] == [
        i for i, w in zip(given, is_waiting) if not w]
    assert [i for i in spread if i.nodeid.startswith("tests/e2e/")] == [i for i, w in zip(given, is_waiting) if w]


def test_the_waiting_tests_are_spread_evenly_and_none_comes_last():
    spread = spread_waiting_tests(items(700, 30, 300))
    at = [k for k, item in enumerate(spread) if item.nodeid.startswith("tests/e2e/")]
    gaps = [b - a for a, b in zip(at, at[1:])]
    assert min(gaps) >= 25 and max(gaps) <= 30, gaps  # about 0.85 * 1000 / 30 others apart
    assert at[-1] < 0.9 * len(spread)
