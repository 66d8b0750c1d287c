"""bench/change_budget.py's floor: the cheapest schedule never below a spec with at most K
changes, computed over the spec's runs, equals a brute force over every schedule of the ticks."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_PATH = Path(__file__).resolve().parents[2] / "bench" / "change_budget.py"
_spec = importlib.util.spec_from_file_location("change_budget", _PATH)
change_budget = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(change_budget)


def brute_force(spec: list[float], changes: int) -> float:
    """Fewest replica-ticks over every split of the ticks into at most changes + 1 segments."""
    t, best = len(spec), np.inf
    for k in range(0, min(changes, t - 1) + 1):
        for cuts in itertools.combinations(range(1, t), k):
            edges = (0, *cuts, t)
            best = min(best, sum(max(spec[a:b]) * (b - a) for a, b in zip(edges, edges[1:])))
    return best


def floor(spec: list[float], changes: int) -> float:
    levels, lengths = change_budget.runs_of(np.array(spec))
    return float(change_budget.cheapest_costs(levels, lengths, changes + 1)[changes])


@pytest.mark.parametrize("spec, changes, expect", [
    pytest.param([3, 3, 3], 0, 9, id="constant-needs-no-change"),
    pytest.param([2, 5, 2], 0, 15, id="no-change-holds-the-peak"),
    pytest.param([2, 5, 2], 1, 12, id="one-change-drops-after-the-peak"),
    pytest.param([2, 5, 2], 2, 9, id="two-changes-follow-the-spec"),
    pytest.param([2, 2, 2, 5, 2, 2, 2, 2], 1, 28, id="one-change-drops-after-the-peak-before-the-longer-low-side"),
    pytest.param([1, 4, 1, 4, 1], 2, 14, id="two-bursts-two-changes-hold-between"),
])
def test_floor_table(spec, changes, expect):
    assert floor(spec, changes) == expect == brute_force(spec, changes)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=9), st.integers(0, 8))
def test_floor_is_the_brute_force_minimum(spec, changes):
    """Runs, not ticks: an optimal schedule changes only where the spec does."""
    got = floor([float(v) for v in spec], min(changes, len(spec) - 1))
    assert got == brute_force(spec, changes)


@given(st.lists(st.integers(1, 6), min_size=2, max_size=9))
@settings(max_examples=30, deadline=None)
def test_more_changes_never_cost_more_and_enough_reach_the_spec(spec):
    levels, lengths = change_budget.runs_of(np.array(spec, dtype=float))
    costs = change_budget.cheapest_costs(levels, lengths, levels.size)
    assert (np.diff(costs) <= 0).all()
    assert costs[-1] == sum(spec)  # one segment per run: the spec itself
