"""A decision's scales as arrays (core/scaling/scale_rows.py): the reference gives the rows, counts
and reasons of the Action objects the shell made one by one (the changed rows of existing
targets, counts truncated as int() does, ``every`` only when they are each change, whole), and
the compiled pass gives the reference's arrays, on named rows and generated decisions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling import scale_rows as scale_rows_module
from controller.core.scaling.scale_rows import ScaleRows, scale_rows, scale_rows_fast
from controller.model import first_by_direction


def one_by_one(desired, current, exists, spec, reason) -> ScaleRows:
    """What the shell made per changed row before (reconciler._scaling_actions, an Action each)."""
    rows = [i for i in range(len(desired)) if desired[i] != current[i] and exists[i]]
    every = all(exists[i] for i in range(len(desired)) if desired[i] != current[i])
    replicas, froms = [int(desired[i]) for i in rows], [int(spec[i]) for i in rows]
    every = every and all(n == desired[i] for n, i in zip(replicas, rows))
    scales = np.array([rows, replicas, froms, [int(reason[i]) for i in rows]], np.int64).reshape(4, -1)
    return ScaleRows(scales, every, first_by_direction(np.array(froms, np.int64), np.array(replicas, np.int64)))


def assert_same(got: ScaleRows, want: ScaleRows) -> None:
    assert got.scales.dtype == want.scales.dtype == np.int64 and got.scales.shape == want.scales.shape
    np.testing.assert_array_equal(got.scales, want.scales)
    assert type(got.every) is bool and got.every == want.every
    assert all(type(i) is int for i in got.first) and got.first == want.first


def arrays(desired, current, exists, spec=None, reason=None, spec_dtype=np.int64, reason_dtype=np.int64):
    desired = np.asarray(desired, np.float64)
    spec = np.asarray(current if spec is None else spec, spec_dtype)
    reason = np.asarray(np.arange(len(desired)) % 7 if reason is None else reason, reason_dtype)
    return desired, np.asarray(current, np.int64), np.asarray(exists, bool), spec, reason


ROWS = [
    pytest.param(arrays([3, 4, 5], [3, 4, 5], [1, 1, 1]), id="no-change"),
    pytest.param(arrays([3, 6, 2, 5], [3, 4, 5, 5], [1, 1, 1, 1]), id="up-and-down"),
    pytest.param(arrays([6, 6, 2], [4, 4, 5], [1, 0, 1]), id="a-changed-target-not-found-is-left-and-not-every"),
    pytest.param(arrays([4.5, 6], [4, 4], [1, 1]), id="a-fractional-count-truncated-to-the-current-stays"),
    pytest.param(arrays([7.9, 2], [4, 4], [1, 1]), id="a-fractional-count-is-truncated-and-not-every"),
    pytest.param(arrays([6, 2], [4, 4], [1, 1], spec=[5, 4], spec_dtype=np.float64), id="spec-as-floats"),
    pytest.param(arrays([6, 2], [4, 4], [1, 1], reason=[3, 9], reason_dtype=np.int8), id="narrow-reason-codes"),
    pytest.param(arrays([], [], []), id="no-target"),
]


@pytest.mark.parametrize("args", ROWS)
def test_the_reference_is_the_actions_made_one_by_one(args):
    assert_same(scale_rows(*args), one_by_one(*args))


def compiled_pass(*args) -> ScaleRows:
    """The kernel's own arrays (not scale_rows_fast's: it would fall back to the reference)."""
    previous = compiled.set_switch("1")
    try:
        assert compiled.enabled()
        return ScaleRows(*scale_rows_module._scale_rows_kernel(*args))
    finally:
        compiled.set_switch(previous)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("args", ROWS)
def test_the_compiled_pass_is_the_reference(args):
    assert_same(compiled_pass(*args), scale_rows(*args))


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 40), changed=st.floats(0, 1), fractional=st.booleans(),
       missing=st.floats(0, 0.3))
def test_the_compiled_pass_is_the_reference_on_generated_decisions(seed, n, changed, fractional, missing):
    rng = np.random.default_rng(seed)
    current = rng.integers(0, 30, n)
    step = np.where(rng.random(n) < changed, rng.integers(-5, 6, n), 0)
    desired = np.maximum(current + step, 0).astype(np.float64) + (rng.random(n) * fractional)
    args = (desired, current, rng.random(n) >= missing, current + rng.integers(-1, 2, n) * (rng.random(n) < 0.2),
            rng.integers(0, 20, n))
    assert_same(compiled_pass(*args), scale_rows(*args))
    assert_same(scale_rows(*args), one_by_one(*args))


@pytest.mark.parametrize("switch", [pytest.param("0", id="switched-off"), pytest.param("1", id="on")])
def test_the_fast_entry_gives_the_reference_s_arrays(monkeypatch, switch):
    monkeypatch.setattr(compiled, "switch", switch)
    for args in (arrays([6, 2], [4, 4], [1, 1]), arrays([6, 2], [4, 4], [1, 1], spec=[4.0, 4.0], spec_dtype=np.float64)):
        assert_same(scale_rows_fast(*args), scale_rows(*args))
