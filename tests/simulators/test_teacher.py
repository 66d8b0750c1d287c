"""bench/teacher.py's schedule: the cheapest schedule >= a spec with at most K changes, recovered
with back-pointers, costs what bench/change_budget.py's dynamic program says, never dips under
the spec and changes at most K times."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(_BENCH))
_spec = importlib.util.spec_from_file_location("teacher", _BENCH / "teacher.py")
teacher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(teacher)
import change_budget  # noqa: E402


@pytest.mark.parametrize("spec, changes, expect", [
    pytest.param([3, 3, 3], 0, [3, 3, 3], id="constant-stays"),
    pytest.param([2, 5, 2], 0, [5, 5, 5], id="no-change-holds-the-peak"),
    pytest.param([2, 5, 2], 2, [2, 5, 2], id="enough-changes-follow-the-spec"),
    pytest.param([2, 2, 2, 5, 2, 2, 2, 2], 1, [5, 5, 5, 5, 2, 2, 2, 2], id="one-change-drops-after-the-peak-before-the-longer-low-side"),
    pytest.param([1, 4, 1, 4, 1], 2, [1, 4, 4, 4, 1], id="two-bursts-held-between"),
])
def test_schedule_table(spec, changes, expect):
    assert teacher.teacher_schedule(np.array(spec, float), changes).tolist() == expect


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=12), st.integers(0, 8))
def test_schedule_is_feasible_and_as_cheap_as_the_floor(spec, changes):
    s = np.array(spec, float)
    out = teacher.teacher_schedule(s, changes)
    levels, lengths = change_budget.runs_of(s)
    k = min(changes, levels.size - 1)
    assert (out >= s).all()
    assert int((out[1:] != out[:-1]).sum()) <= changes
    assert out.sum() == change_budget.cheapest_costs(levels, lengths, k + 1)[k]


_vspec = importlib.util.spec_from_file_location("teacher_variants", _BENCH / "teacher_variants.py")
variants = importlib.util.module_from_spec(_vspec)
# the bench sets SETPOINT_COMPILED=0 for its own run when imported: not for the rest of this test
# process (a later test reading the switch would find numpy forced)
_switch = os.environ.get("SETPOINT_COMPILED")
_vspec.loader.exec_module(variants)
if _switch is None:
    os.environ.pop("SETPOINT_COMPILED", None)
else:
    os.environ["SETPOINT_COMPILED"] = _switch

W = 900.0


@pytest.mark.parametrize("current, proposal, recs, price, expect", [
    pytest.param(6, 3, [(6, 100)], 1, 6, id="recent-peak-holds-one-pod-less-would-not-pay"),
    pytest.param(6, 3, [(6, 800)], 1, 3, id="three-idle-pods-for-a-third-of-the-window-go"),
    pytest.param(6, 3, [(6, 200)], 1, 6, id="three-idle-pods-for-less-than-a-third-stay"),
    pytest.param(6, 3, [(6, 950), (5, 100)], 1, 5, id="a-level-out-of-the-window-goes-a-recent-one-stays"),
    pytest.param(6, 3, [(6, 500)], 1, 3, id="three-idle-pods-for-500s-pay-one-pod-window"),
    pytest.param(6, 3, [(6, 500)], 2, 6, id="a-dearer-change-waits-longer"),
    pytest.param(6, 5, [], 1, 5, id="nothing-held-the-proposal-goes"),
])
def test_ski_ceiling_table(current, proposal, recs, price, expect):
    now = 10_000.0
    values = np.array([[v for v, _ in recs] + [np.nan] * 3])
    times = np.array([[now - age for _, age in recs] + [np.nan] * 3])
    got = variants.ski_ceiling(np.array([float(current)]), np.array([float(proposal)]), values, times, now, W,
                               np.array([float(price)]))
    assert got.tolist() == [expect]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10), st.integers(1, 10), st.lists(st.tuples(st.integers(1, 12), st.floats(0, 1200)), max_size=6))
def test_ski_ceiling_between_the_proposal_and_current(current, proposal, recs):
    now = 10_000.0
    values = np.array([[float(v) for v, _ in recs] + [np.nan]])
    times = np.array([[now - a for _, a in recs] + [np.nan]])
    got = variants.ski_ceiling(np.array([float(current)]), np.array([float(proposal)]), values, times, now, W,
                               np.array([1.0]))[0]
    assert got >= proposal
    assert got <= max(current, proposal)
