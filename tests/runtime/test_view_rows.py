"""A Cluster adapter's view must have one row per target: ClusterView.check_rows refuses any
other shape with a message naming the arrays (the reconciler checks every view it observes)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.ports import ClusterView


def view(n: int = 3, **short) -> ClusterView:
    arrays = {"spec": np.ones(n), "status": np.ones(n), "ready": np.ones(n), "rollout": np.zeros(n, bool),
              "exists": np.ones(n, bool), "paused": np.zeros(n, bool)}
    arrays.update(short)
    return ClusterView(**arrays)


@pytest.mark.parametrize("v", [
    pytest.param(view(), id="every-array-3-rows"),
    pytest.param(view(paused=None), id="paused-unknown"),
    pytest.param(view(spec=[1.0, 1.0, 1.0], paused=[False, False, False]), id="lists-of-3"),
])
def test_a_view_of_the_targets_rows_passes(v):
    assert v.check_rows(3) is v


@pytest.mark.parametrize("v, named", [
    pytest.param(view(ready=np.ones(2)), ["ready (2,)"], id="ready-one-short"),
    pytest.param(view(spec=np.ones(4), exists=np.ones(4, bool)), ["spec (4,)", "exists (4,)"], id="two-long"),
    pytest.param(view(paused=np.zeros((3, 1), bool)), ["paused (3, 1)"], id="paused-2d"),
    pytest.param(view(n=0), ["spec (0,)", "status (0,)", "ready (0,)"], id="empty-for-3"),
    pytest.param(view(rollout=[False, False]), ["rollout (2,)"], id="a-list-one-short"),
    pytest.param(view(paused=[False] * 4), ["paused (4,)"], id="paused-a-list-one-long"),
])
def test_a_view_of_other_shapes_is_refused_naming_the_arrays(v, named):
    with pytest.raises(ValueError, match="cluster view for 3 targets") as err:
        v.check_rows(3)
    for part in named:
        assert part in str(err.value)
