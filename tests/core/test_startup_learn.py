"""``startup.learn_rows``: the start-ups a cycle's pods show (observed_startups, not across a
dark spell of their target) remembered in place, in one compiled pass (startup_compiled.try_learn)
or with numpy: the same memory, rows and object identity as observed_startups + remember_rows; and
``startup.learn_estimate`` (learning and the estimate of the rows learned in one compiled pass): the
same memory and estimate as learn_rows then update_estimate, and as a whole estimate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling import startup as su

NOW = 10_000.0
NAN = float("nan")

# (row, key, created, ready time, ready)
PODS = {
    "one-start-up": [(0, 1, 100.0, 130.0, True)],
    "not-ready": [(0, 1, 100.0, 130.0, False)],
    "ready-at-creation": [(0, 1, 100.0, 100.0, True)],
    "ready-in-the-future": [(0, 1, 100.0, NOW + 5.0, True)],
    "implausibly-long": [(0, 1, 100.0, 100.0 + 901.0, True)],
    "unset-times": [(0, 1, NAN, 130.0, True), (1, 2, 100.0, NAN, True)],
    "ready-across-its-target-dark-spell": [(2, 1, 100.0, 400.0, True), (2, 2, 350.0, 380.0, True)],
    "two-targets-and-a-known-pod-again": [(0, 7, 50.0, 60.0, True), (1, 3, 100.0, 140.0, True),
                                         (0, 7, 50.0, 90.0, True)],
    "a-row-outside-the-memory": [(5, 1, 100.0, 130.0, True), (1, 2, 100.0, 120.0, True)],
    "no-pods": [],
}
DARK = np.array([NAN, NAN, 300.0])  # target 2 lost every Ready pod at 300 s


def memory_with_one_start_up() -> su.StartupMemory:
    memory = su.StartupMemory.empty(3)
    memory.key[0, 0], memory.created_s[0, 0], memory.ready_s[0, 0] = 7, 50.0, 60.0
    return memory


def columns(pods):
    rows, keys, created, ready_s, ready = (np.array(c, dtype=d) for c, d in zip(
        zip(*pods) if pods else ([],) * 5, (np.int64, np.int64, np.float64, np.float64, bool)))
    return rows, keys, created, ready_s, ready


def reference(memory, rows, keys, created, ready_s, ready, now, dark):
    """What the observer did before learn_rows: observed_startups, the dark filter, remember_rows."""
    inside = (rows >= 0) & (rows < memory.size)
    counted = su.observed_startups(created, ready_s, ready, now)
    spans_dark = np.zeros(rows.size, bool)
    d = dark[np.where(inside, rows, 0)]
    spans_dark[inside] = ((created <= d) & (d < ready_s))[inside]
    return su.remember_rows(memory, rows, keys, created, ready_s, counted & ~spans_dark, in_place=True)


def assert_same(got, want, memory, expected):
    (got_memory, got_rows), (want_memory, want_rows) = got, want
    np.testing.assert_array_equal(got_rows, want_rows)
    assert (got_memory is memory) == (want_memory is expected)  # a new object only when a start-up counted
    for a, b in zip((got_memory.key, got_memory.created_s, got_memory.ready_s),
                    (want_memory.key, want_memory.created_s, want_memory.ready_s)):
        np.testing.assert_array_equal(a, b)


SWITCHES = [pytest.param("1", id="compiled"), pytest.param("0", id="numpy")]


def named_pods(monkeypatch, switch: str, name: str) -> list:
    """PODS[name] with the kernels on (switch "1") or off; off, only the rows inside the memory
    (numpy's dark gather needs them)."""
    monkeypatch.setattr(compiled, "switch", switch)
    return [p for p in PODS[name] if switch == "1" or 0 <= p[0] < 3]


@pytest.mark.parametrize("switch", SWITCHES)
@pytest.mark.parametrize("name", list(PODS))
def test_learn_rows_equals_observed_startups_then_remember_rows(monkeypatch, switch, name):
    pods = named_pods(monkeypatch, switch, name)
    memory, expected = memory_with_one_start_up(), memory_with_one_start_up()
    got = su.learn_rows(memory, *columns(pods), NOW, DARK)
    want = reference(expected, *columns(pods), NOW, DARK)
    assert_same(got, want, memory, expected)


def test_a_start_up_across_a_dark_spell_is_not_learned_and_one_after_it_is(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    memory, rows = su.learn_rows(su.StartupMemory.empty(3), *columns(PODS["ready-across-its-target-dark-spell"]),
                                 NOW, DARK)
    assert rows.tolist() == [2] and memory.key[2].tolist()[:2] == [2, 0]  # created at 350, after the dark cycle


pod = st.tuples(st.integers(0, 2), st.integers(1, 4), st.sampled_from([NAN, 0.0, 50.0, 100.0, 200.0]),
                st.sampled_from([NAN, 20.0, 60.0, 130.0, 250.0, 1200.0, NOW + 1.0]), st.booleans())


@settings(max_examples=60, deadline=None)
@given(rounds=st.lists(st.lists(pod, max_size=6), min_size=1, max_size=4),
       dark=st.lists(st.sampled_from([NAN, 40.0, 120.0]), min_size=3, max_size=3))
def test_rounds_of_learning_compiled_equal_numpy(rounds, dark):
    saved = compiled.switch
    try:
        out = {}
        for switch in ("1", "0"):
            compiled.switch = switch
            memory = su.StartupMemory.empty(3, su.StartupParams(pods=3))
            steps = []
            for pods in rounds:
                memory, rows = su.learn_rows(memory, *columns(pods), NOW, np.array(dark))
                steps.append((rows.tolist(), memory.key.tolist(), memory.created_s.tolist(), memory.ready_s.tolist()))
            out[switch] = repr(steps)  # repr: NaN compares equal
        assert out["1"] == out["0"]
    finally:
        compiled.switch = saved


def learned_and_estimated(memory, previous, pods, sp, dark):
    """``learn_estimate`` of ``pods`` as (memory is the one given, estimate is ``previous``, memory arrays, estimate arrays)."""
    got_memory, got = su.learn_estimate(memory, previous, *columns(pods), NOW, dark, sp)
    return (got_memory is memory, got is previous, repr((got_memory.key.tolist(), got_memory.created_s.tolist(),
                                                          got_memory.ready_s.tolist())),
            repr((got.delay_s.tolist(), got.pods.tolist(), got.pods.dtype, got.low_s.tolist(), got.high_s.tolist())))


@pytest.mark.parametrize("switch", SWITCHES)
@pytest.mark.parametrize("name", list(PODS))
def test_learn_estimate_equals_learn_rows_then_update_estimate(monkeypatch, switch, name):
    pods = named_pods(monkeypatch, switch, name)
    memory, expected = memory_with_one_start_up(), memory_with_one_start_up()
    previous = su.estimate(memory)
    got = learned_and_estimated(memory, previous, pods, su.DEFAULT_STARTUP, DARK)
    want_memory, rows = su.learn_rows(expected, *columns(pods), NOW, DARK)
    want = su.update_estimate(previous, want_memory, rows) if want_memory is not expected else previous
    assert got == (want_memory is expected, want is previous,
                   repr((want_memory.key.tolist(), want_memory.created_s.tolist(), want_memory.ready_s.tolist())),
                   repr((want.delay_s.tolist(), want.pods.tolist(), want.pods.dtype, want.low_s.tolist(),
                         want.high_s.tolist())))
    assert want is previous or not np.shares_memory(want.delay_s, previous.delay_s)  # a new estimate, never in place


@settings(max_examples=60, deadline=None)
@given(rounds=st.lists(st.lists(pod, max_size=8), min_size=1, max_size=4),
       dark=st.lists(st.sampled_from([NAN, 40.0, 120.0]), min_size=3, max_size=3))
def test_rounds_of_learning_and_estimating_compiled_equal_numpy_and_a_whole_estimate(rounds, dark):
    saved = compiled.switch
    sp = su.StartupParams(pods=3, quantile=0.7)
    try:
        out = {}
        for switch in ("1", "0"):
            compiled.switch = switch
            memory = su.StartupMemory.empty(3, sp)
            estimate = su.estimate(memory, sp)
            steps = []
            for pods in rounds:
                memory, estimate = su.learn_estimate(memory, estimate, *columns(pods), NOW, np.array(dark), sp)
                whole = su.estimate(memory, sp)
                for a, b in zip((estimate.delay_s, estimate.pods, estimate.low_s, estimate.high_s),
                                (whole.delay_s, whole.pods, whole.low_s, whole.high_s)):
                    np.testing.assert_array_equal(a, b)
                steps.append((memory.key.tolist(), memory.created_s.tolist(), estimate.delay_s.tolist()))
            out[switch] = repr(steps)  # repr: NaN compares equal
        assert out["1"] == out["0"]
    finally:
        compiled.switch = saved
