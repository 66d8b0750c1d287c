"""The compiled pod key match (core/health/keys_compiled.py) gives the dict path's rows.

``PodState.reindex`` matches the pods of a cycle to the last cycle's by key; the compiled match
(a hash table over the keys' code points) must give, key for key, the row the dict path gives
(``SETPOINT_COMPILED=0``, the reference): -1 for a new key, the first row of a key the old list
holds twice, a refusal of a new list holding one twice; keys compared as numpy and ``tolist`` do
(trailing NULs, a narrower or wider array). Named rows, then generated insertions, deletions
and reorderings of key lists, then whole reindexes on both paths.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.health import keys_compiled
from controller.core.health.checks import CheckTable, PodState, _matched
from controller.core.scaling import compiled
from tests.core.healing import T0, params, pod_check

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


@contextlib.contextmanager
def switched(value: str):
    """The kernels on ("1") or off ("0") inside (whatever SETPOINT_COMPILED the suite runs with)."""
    previous = compiled.set_switch(value)
    try:
        yield
    finally:
        compiled.set_switch(previous)


@pytest.fixture(autouse=True)
def kernels_on():
    with switched("1"):
        yield


def both(old, new, old_rows=None):
    """(compiled rows, reference rows) of matching ``new`` against ``old``."""
    old, new = np.asarray(old, str), np.asarray(new, str)
    fast = keys_compiled.try_match_keys(old, new)
    with switched("0"):
        reference = _matched(old, new, old_rows)[0]
    return fast, reference


@pytest.mark.parametrize("old,new", [
    pytest.param(["a", "b", "c"], ["a", "b", "c"], id="same-keys"),
    pytest.param(["a", "b", "c"], ["a", "x", "b", "c", "y"], id="keys-inserted"),
    pytest.param(["a", "b", "c", "d"], ["b", "d"], id="keys-deleted"),
    pytest.param(["a", "b", "c"], ["c", "a", "b"], id="keys-reordered"),
    pytest.param(["a", "b", "c"], ["c", "z", "a"], id="moved-inserted-and-deleted"),
    pytest.param([], ["a", "b"], id="no-old-keys"),
    pytest.param(["a", "b"], [], id="no-new-keys"),
    pytest.param(["a", "b", "a"], ["b", "a"], id="an-old-key-twice-gives-its-first-row"),
    pytest.param(["ns/pod-1"], ["ns/pod-1", "ns/pod-10", "ns/pod-"], id="a-key-a-prefix-of-another"),
    pytest.param(["", "a"], ["a", ""], id="the-empty-key"),
    pytest.param(["pod-\u00e9", "pod-e"], ["pod-e", "pod-\u00e9", "pod-\U0001f600"], id="non-ascii-keys"),
])
def test_the_compiled_match_gives_the_dict_paths_rows(old, new):
    fast, reference = both(old, new)
    assert fast is not None and fast.dtype == reference.dtype == np.int64
    assert fast.tolist() == reference.tolist()


def test_keys_of_arrays_of_other_widths_match_as_strings():
    old = np.asarray(["ab", "abc", "a"], dtype="<U10")  # wider: NUL padding is no part of a key
    new = np.asarray(["a", "ab", "zz"], dtype="<U2")
    fast, reference = both(old, new)
    assert fast.tolist() == reference.tolist() == [2, 0, -1]
    assert keys_compiled.try_match_keys(old[::-1], new[::-1]).tolist() == [-1, 2, 0]  # not contiguous


def test_a_new_key_twice_is_left_to_the_reference_which_refuses_it():
    assert keys_compiled.try_match_keys(np.asarray(["a"]), np.asarray(["b", "a", "b"])) is None
    with pytest.raises(ValueError, match="unique"):
        _matched(np.asarray(["a"]), np.asarray(["b", "a", "b"]))


def test_off_the_kernels_the_reference_answers():
    with switched("0"):
        assert keys_compiled.try_match_keys(np.asarray(["a"]), np.asarray(["a"])) is None
        rows, rows_of = _matched(np.asarray(["a", "b"]), np.asarray(["b", "c"]))
    assert rows.tolist() == [1, -1] and rows_of == {"b": 0, "c": 1}


# --- generated edits of key lists ---------------------------------------------------------------

NAMES = st.text(alphabet="ab-/\u00e90", max_size=6)


@st.composite
def edited_keys(draw):
    """(old, new): unique old keys, and new ones made of them by deletions, insertions (fresh
    keys or old ones moved) and a reordering of a stretch, as pods come and go."""
    old = draw(st.lists(NAMES, unique=True, max_size=40))
    new = [k for k in old if not draw(st.booleans()) or draw(st.integers(0, 9)) > 1]  # ~10% deleted
    for key in draw(st.lists(NAMES, max_size=8)):  # inserted: a fresh key, or an old one (moved)
        if key not in new:
            new.insert(draw(st.integers(0, len(new))), key)
    if new and draw(st.booleans()):
        lo = draw(st.integers(0, len(new) - 1))
        hi = draw(st.integers(lo, len(new)))
        new[lo:hi] = draw(st.permutations(new[lo:hi]))
    return old, new


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_keys())
def test_generated_edits_match_as_the_dict_path(pair):
    old, new = pair
    fast, reference = both(old, new)
    assert fast.tolist() == reference.tolist()
    old_rows = {k: i for i, k in enumerate(old)}  # the reference given the last reindex's dict
    assert both(old, new, old_rows)[1].tolist() == reference.tolist()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_keys(), st.data())
def test_a_reindex_on_either_path_gives_the_same_state(pair, data):
    old, new = pair
    p = params(pod_check())
    checks = tuple(p.checks[j] for j in p.pod_columns)
    table = CheckTable.empty(len(old), checks, 15.0)
    table = CheckTable(table.phase + np.arange(len(old))[:, None] % 3, table.active_since + T0, table.fired_at,
                       table.recovering_since, table.changed_at, table.smooth)
    born_of = {k: float(data.draw(st.sampled_from([np.nan, 1.0, 2.0]))) for k in {*old, *new}}
    state = PodState(np.asarray(old, str), T0 + np.arange(len(old)), np.full(len(old), np.nan), table,
                     np.asarray([born_of[k] for k in old]))
    born = np.asarray([born_of[k] if data.draw(st.booleans()) else 3.0 for k in new])
    fast = state.reindex(np.asarray(new, str), T0 + 60.0, born)
    with switched("0"):
        reference = state.reindex(np.asarray(new, str), T0 + 60.0, born)
    assert fast.keys.tolist() == reference.keys.tolist() == new
    for name in ("first_seen", "restarted_at", "born"):
        assert np.array_equal(getattr(fast, name), getattr(reference, name), equal_nan=True), name
    for name in ("phase", "active_since", "fired_at", "recovering_since", "changed_at"):
        assert np.array_equal(getattr(fast.table, name), getattr(reference.table, name), equal_nan=True), name
    assert fast.unique and reference.unique
