"""The start-up observer's per-cycle marks in one compiled pass each (core/scaling/startup_compiled.py):
``startup.cycle_due`` (dark spells, the Ready counts kept, the targets due a read for start-ups)
and ``withheld.short_due`` (since when each target is short, first sights, the targets due a
read for withheld replicas) give numpy's due rows and write numpy's marks, on named cycles and
generated rounds of them (NaN, unknown targets, first sights, observed and stated start-ups)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling.startup import cycle_due
from controller.core.scaling.withheld import short_due

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

NAN = float("nan")
NOW, LAST = 1_000.0, 985.0


def both(monkeypatch, call, state: dict) -> dict:
    """{switch: (due rows, the state after)} of ``call(**copies of state)`` compiled and numpy."""
    out = {}
    for switch in ("1", "0"):
        monkeypatch.setattr(compiled, "switch", switch)
        copies = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()}
        due = call(**copies)
        assert due.dtype == np.int64
        out[switch] = (due.tolist(), repr({k: v.tolist() for k, v in copies.items() if isinstance(v, np.ndarray)}))
    return out


def cycle_state(ready, exists, last_ready, dark_at, read, all_read) -> dict:
    return dict(ready=np.array(ready, float), exists=np.array(exists, bool), last_ready=np.array(last_ready, float),
                dark_at=np.array(dark_at, float), last_cycle_s=LAST, read=np.array(read, bool), all_read=all_read,
                now=NOW)


# ready, exists, last ready, dark at, read, all read; due rows; dark at after
CYCLES = [
    pytest.param([3, 3], [1, 1], [3, 3], [NAN, NAN], [1, 1], True, [], [NAN, NAN], id="nothing-changed"),
    pytest.param([4, 3], [1, 1], [3, 3], [NAN, NAN], [1, 1], True, [0], [NAN, NAN], id="ready-rose"),
    pytest.param([3, 3], [1, 1], [3, 3], [NAN, NAN], [1, 0], False, [1], [NAN, NAN], id="not-read-yet"),
    pytest.param([4, 3], [0, 1], [3, 3], [NAN, NAN], [0, 0], False, [1], [NAN, NAN], id="missing-target-never-due"),
    pytest.param([0, 2], [1, 1], [3, 2], [NAN, NAN], [1, 1], True, [], [NOW, NAN], id="went-dark"),
    pytest.param([0, 0], [1, 1], [0, 0], [LAST, NAN], [1, 1], True, [], [NOW, NAN], id="dark-then-too-not-new"),
    pytest.param([0], [0], [3], [NAN], [1], True, [], [NAN], id="missing-target-never-dark"),
    pytest.param([NAN, 2], [1, 1], [1, NAN], [NAN, NAN], [1, 1], True, [], [NAN, NAN], id="nan-counts"),
]


@pytest.mark.parametrize("ready, exists, last_ready, dark_at, read, all_read, due, dark_after", CYCLES)
def test_cycle_due(monkeypatch, ready, exists, last_ready, dark_at, read, all_read, due, dark_after):
    got = both(monkeypatch, cycle_due, cycle_state(ready, exists, last_ready, dark_at, read, all_read))
    assert got["1"] == got["0"]
    monkeypatch.setattr(compiled, "switch", "1")
    state = cycle_state(ready, exists, last_ready, dark_at, read, all_read)
    assert cycle_due(**state).tolist() == due
    np.testing.assert_array_equal(state["dark_at"], dark_after)
    np.testing.assert_array_equal(state["last_ready"], ready)


def short_state(spec, ready, exists, since, seen, all_seen, startup_s, stated_s=30.0) -> dict:
    return dict(spec=np.array(spec, float), ready=np.array(ready, float), exists=np.array(exists, bool),
                since=np.array(since, float), seen=np.array(seen, bool), all_seen=all_seen,
                startup_s=None if startup_s is None else np.array(startup_s, float), stated_s=stated_s, now=NOW)


# spec, ready, exists, since, seen, all seen, observed start-ups; due rows; since after
SHORTS = [
    pytest.param([3, 3], [3, 3], [1, 1], [NAN, 500.0], [1, 1], True, None, [], [NAN, NAN], id="none-short"),
    pytest.param([4, 3], [3, 3], [1, 1], [NAN, NAN], [1, 1], True, None, [], [NOW, NAN], id="newly-short"),
    pytest.param([4, 3], [3, 3], [1, 1], [NOW - 241.0, NAN], [1, 1], True, None, [0], [NOW - 241.0, NAN],
                 id="short-past-the-unobserved-floor"),
    pytest.param([4, 3], [3, 3], [1, 1], [NOW - 239.0, NAN], [1, 1], True, None, [], [NOW - 239.0, NAN],
                 id="short-within-the-unobserved-floor"),
    pytest.param([4, 4], [3, 3], [1, 1], [NOW - 61.0, NOW - 61.0], [1, 1], True, [30.0, NAN], [0],
                 [NOW - 61.0, NOW - 61.0], id="observed-start-up-sets-the-age"),
    pytest.param([4, 4], [3, 3], [1, 1], [NAN, NAN], [1, 0], False, [30.0, 30.0], [1], [NOW, NOW],
                 id="first-seen-short"),
    pytest.param([4, 4], [3, 3], [0, 1], [NOW - 900.0, NAN], [0, 1], False, None, [], [NAN, NOW],
                 id="missing-target-never-short"),
]


@pytest.mark.parametrize("spec, ready, exists, since, seen, all_seen, startup_s, due, since_after", SHORTS)
def test_short_due(monkeypatch, spec, ready, exists, since, seen, all_seen, startup_s, due, since_after):
    got = both(monkeypatch, short_due, short_state(spec, ready, exists, since, seen, all_seen, startup_s))
    assert got["1"] == got["0"]
    monkeypatch.setattr(compiled, "switch", "1")
    state = short_state(spec, ready, exists, since, seen, all_seen, startup_s)
    assert short_due(**state).tolist() == due
    np.testing.assert_array_equal(state["since"], since_after)
    assert state["seen"].all()


counts = st.one_of(st.integers(0, 4).map(float), st.just(NAN))
times = st.one_of(st.just(NAN), st.just(LAST), st.floats(0.0, NOW))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(0, 6))
def test_generated_cycles_compiled_equal_numpy(data, n):
    lists = lambda elements: data.draw(st.lists(elements, min_size=n, max_size=n))  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        state = cycle_state(lists(counts), lists(st.booleans()), lists(counts), lists(times), lists(st.booleans()),
                            data.draw(st.booleans()))
        got = both(mp, cycle_due, state)
        assert got["1"] == got["0"]
        startup = data.draw(st.one_of(st.none(), st.lists(st.one_of(st.just(NAN), st.floats(0.0, 600.0)),
                                                                min_size=n, max_size=n)))
        state = short_state(lists(counts), lists(counts), lists(st.booleans()), lists(times), lists(st.booleans()),
                            data.draw(st.booleans()), startup, data.draw(st.floats(0.0, 300.0)))
        got = both(mp, short_due, state)
        assert got["1"] == got["0"]
