"""with_rows: a joiner's rows rebuilt from history are written into the running policy's state,
and every other row stays as it was, bit for bit (controller/core/scaling/rows.py).

The states are the default policy's with a forecast (smoothing, normalization, one forecast and
one ramp metric: every kind of part a ScalingState has), every array filled with distinct values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from controller.core.scaling.decide import ScalingState
from controller.core.scaling.rows import with_rows
from controller.policy import load_policy_text

REPO = Path(__file__).resolve().parents[2]
N = 5


def params():
    """The default policy with a forecast on its metric (it has a ramp already)."""
    text = (REPO / "policies" / "setpoint-default.yaml").read_text()
    anchor = "        target: {averagePerReplica: 85, capacityPerReplica: 100}\n"
    p = load_policy_text(text.replace(anchor, anchor + "        forecast: {startupDelay: observed}\n"))[0].params
    assert p.forecast_metrics and p.ramp_metrics
    return p


def leaves(part, path: str = "state"):
    """(path, array) for every array of a state, depth first."""
    if isinstance(part, np.ndarray):
        yield path, part
    elif isinstance(part, tuple):
        for i, x in enumerate(part):
            yield from leaves(x, f"{path}[{i}]")
    elif dataclasses.is_dataclass(part):
        for f in dataclasses.fields(part):
            yield from leaves(getattr(part, f.name), f"{path}.{f.name}")


def filled(state: ScalingState, offset: float) -> ScalingState:
    """``state`` with every array's elements numbered from ``offset`` (same shapes, dtypes, orders)."""
    def fill(part):
        if isinstance(part, np.ndarray):
            out = part.copy(order="K")
            out[...] = (offset + np.arange(part.size)).reshape(part.shape).astype(part.dtype)
            return out
        if isinstance(part, tuple):
            return tuple(fill(x) for x in part)
        if dataclasses.is_dataclass(part):
            return dataclasses.replace(part, **{f.name: fill(getattr(part, f.name)) for f in dataclasses.fields(part)})
        return part
    return fill(state)


@pytest.mark.parametrize("rows", [
    pytest.param([2], id="one-joiner-in-the-middle"),
    pytest.param([0, 4], id="the-first-and-the-last"),
    pytest.param([3, 1], id="joiners-in-another-order"),
    pytest.param([], id="no-joiner-nothing-changes"),
    pytest.param([0, 1, 2, 3, 4], id="every-row"),
])
def test_the_joiners_rows_are_replaced_and_the_others_kept(rows):
    p = params()
    base = filled(ScalingState.empty(N, p), 0.0)
    other = filled(ScalingState.empty(len(rows), p), 1e6)
    before = [(path, a.copy()) for path, a in leaves(base)]
    out = with_rows(base, np.array(rows, dtype=np.int64), other)
    kept = np.setdiff1d(np.arange(N), rows)
    for (path, a), (_, b), (_, o), (_, was) in zip(leaves(base), leaves(other), leaves(out), before, strict=True):
        np.testing.assert_array_equal(a, was, err_msg=f"{path}: the base state was written to")
        np.testing.assert_array_equal(o[kept], a[kept], err_msg=f"{path}: another target's row changed")
        np.testing.assert_array_equal(o[rows], b, err_msg=f"{path}: a joiner's row is not the replayed one")
        assert o.dtype == a.dtype and o.flags.f_contiguous == a.flags.f_contiguous, path


@pytest.mark.parametrize("rows, other_n, message", [
    pytest.param([1, 2], 1, "2 rows to replace, 1 rows given", id="fewer-replayed-rows-than-joiners"),
    pytest.param([1, 1], 2, "distinct rows", id="a-row-twice"),
    pytest.param([5], 1, "distinct rows", id="a-row-past-the-end"),
    pytest.param([-1], 1, "distinct rows", id="a-negative-row"),
])
def test_rows_that_do_not_fit_are_refused(rows, other_n, message):
    p = params()
    with pytest.raises(ValueError, match=message):
        with_rows(ScalingState.empty(N, p), np.array(rows), ScalingState.empty(other_n, p))
