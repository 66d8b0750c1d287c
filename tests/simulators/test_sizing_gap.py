"""bench/sizing_gap.py's layer arithmetic: the stacked layers add up to the policy's replicas,
each rule's layer is never negative, and each layer holds what its rule adds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_PATH = Path(__file__).resolve().parents[2] / "bench" / "sizing_gap.py"
_spec = importlib.util.spec_from_file_location("sizing_gap", _PATH)
sizing_gap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sizing_gap)


@pytest.mark.parametrize("load, need, actual, expect", [
    pytest.param([100.0] * 4, [1.0] * 4, [2.0] * 4, {"min replicas": 1, "target headroom": 0, "rest": 0},
                 id="floor-only"),
    pytest.param([171.0] * 4, [2.0] * 4, [3.0] * 4, {"min replicas": 0, "target headroom": 1, "rest": 0},
                 id="target-85-needs-one-more"),
    pytest.param([171.0, 171.0, 85.0, 85.0], [2.0] * 4, [3.0, 3.0, 3.0, 3.0],
                 {"target headroom": 0, "down window": 1, "rest": 0}, id="window-holds-after-a-fall"),
    pytest.param([85.0] * 4, [2.0] * 4, [4.0] * 4, {"target headroom": 0, "rest": 2}, id="overshoot-is-rest"),
])
def test_layers_table(load, need, actual, expect):
    out = sizing_gap.layers(np.array(load), np.array(need), np.array(actual), target=85.0, min_replicas=2,
                            max_replicas=20, lead=0, window=3)
    for name, replicas in expect.items():
        assert out[name][-1] == replicas, name


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 2000), st.integers(1, 25), st.integers(0, 25)), min_size=1, max_size=40),
       st.integers(0, 5), st.integers(1, 10))
def test_layers_add_up_and_rules_never_negative(rows, lead, window):
    load, need, actual = (np.array(c, dtype=float) for c in zip(*rows))
    out = sizing_gap.layers(load, need, actual, 85.0, 2, 20, lead, window)
    np.testing.assert_allclose(sum(out.values()), actual)
    for name in sizing_gap.LAYERS[1:-1]:
        assert (out[name] >= 0).all(), name


def test_phases():
    need = np.array([1.0, 2.0, 2.0, 2.0, 1.0])
    assert sizing_gap.phases(need, 1).tolist() == [0, 2, 2, 1, 2]
