"""LazyStrings: the simulator's pod names made on access behave as the tuple they replace."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.lazy_names import LazyStrings


def test_items_are_made_once_on_access_and_equal_the_eager_tuple():
    made = []
    names = LazyStrings(lambda j: made.append(j) or f"pod-{j}", 4)
    assert made == []
    assert names[2] == "pod-2" and names[2] == "pod-2" and made == [2]
    assert names[-1] == "pod-3" and names[1:3] == ("pod-1", "pod-2")
    assert len(names) == 4 and list(names) == [f"pod-{j}" for j in range(4)] and names == tuple(list(names))
    assert names.take(np.array([3, 0])) == ("pod-3", "pod-0")


@pytest.mark.parametrize("index", [pytest.param(4, id="past-the-end"), pytest.param(-5, id="before-the-start")])
def test_out_of_range_raises_index_error(index):
    with pytest.raises(IndexError):
        LazyStrings(str, 4)[index]
