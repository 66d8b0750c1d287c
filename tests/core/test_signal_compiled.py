"""The compiled signal stage (core/scaling/signal_compiled.py) gives signal.read_signal's Signal,
array for array (NaN where unusable, every mask: implausible too), on named rows and generated samples; it declines
what it does not cover (other shapes, dtypes) and the kernels switched off."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled, signal_compiled
from controller.core.scaling.signal import read_signal

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

FIELDS = ("values", "missing", "stale", "nonfinite", "negative", "implausible", "usable")


def assert_same(got, want) -> None:
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
        if name == "values":
            np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


def both(monkeypatch, values, present, age, stale_after_s, nonnegative=None, above=None):
    monkeypatch.setattr(compiled, "switch", "1")
    args = (np.asarray(values, float), np.asarray(present, bool), np.asarray(age, float), stale_after_s, nonnegative,
            above)
    fast = signal_compiled.try_read_signal(*args)
    assert fast is not None, "the kernel declined"
    return fast, read_signal(*args)


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize("values, present, age, nonnegative, above", [
    pytest.param([[5.0, 5.0, 5.0]], [[True, False, True]], [[0.0, 0.0, 121.0]], None, None, id="usable-missing-stale"),
    pytest.param([[NAN, INF, -INF]], [[True, True, True]], [[0.0, 0.0, 0.0]], None, None, id="nonfinite"),
    pytest.param([[-0.0, 0.0, -1e-9]], [[True, True, True]], [[0.0, 0.0, 0.0]], None, None, id="zeros-and-negative"),
    pytest.param([[-3.0, -3.0]], [[True, True]], [[0.0, 0.0]], [True, False], None, id="sign-checked-per-metric"),
    pytest.param([[-15.0, NAN]], [[True, False]], [[121.0, NAN]], None, None, id="stale-negative-and-nan-age"),
    pytest.param([[1e300, 1e300, 1e300]], [[True, True, True]], [[0.0, 0.0, 0.0]], None, [1e6, INF, 1e300],
                 id="implausible-per-metric-inf-is-none-at-the-bound-is-plausible"),
    pytest.param([[INF, 2e6, 2e6]], [[True, False, True]], [[0.0, 0.0, 121.0]], None, [1e6, 1e6, 1e6],
                 id="inf-is-nonfinite-absent-is-missing-stale-and-implausible-is-both"),
    pytest.param(np.zeros((0, 2)), np.zeros((0, 2), bool), np.zeros((0, 2)), None, None, id="no-targets"),
])
def test_same_as_read_signal_on_cases(monkeypatch, values, present, age, nonnegative, above):
    nonnegative = None if nonnegative is None else np.array(nonnegative)
    above = None if above is None else np.array(above, float)
    fast, want = both(monkeypatch, values, present, age, 120.0, nonnegative, above)
    assert_same(fast, want)
    if above is not None:
        finite_above = np.isfinite(np.asarray(values, float)) & (np.asarray(values, float) > above)
        assert (want.implausible == (finite_above & np.asarray(present, bool))).all()


SAMPLES = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([NAN, INF, -INF, -0.0, 0.0, 1e300]))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_same_as_read_signal_on_generated_samples(data):
    n, m = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 3))
    values = np.array(data.draw(st.lists(SAMPLES, min_size=n * m, max_size=n * m))).reshape(n, m)
    present = np.array(data.draw(st.lists(st.booleans(), min_size=n * m, max_size=n * m))).reshape(n, m)
    age = np.array(data.draw(st.lists(st.sampled_from([0.0, 30.0, 120.0, 121.0, NAN]), min_size=n * m,
                                      max_size=n * m))).reshape(n, m)
    nonnegative = data.draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=m, max_size=m).map(np.array)))
    above = data.draw(st.one_of(st.none(), st.lists(st.sampled_from([0.0, 1e3, 1e6, INF]), min_size=m,
                                                    max_size=m).map(np.array)))
    with pytest.MonkeyPatch.context() as mp:
        assert_same(*both(mp, values, present, age, 120.0, nonnegative, above))


def test_declines_what_it_does_not_cover(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    ok = (np.zeros((2, 1)), np.ones((2, 1), bool), np.zeros((2, 1)), 120.0)
    assert signal_compiled.try_read_signal(*ok) is not None
    assert signal_compiled.try_read_signal(np.zeros(2), np.ones(2, bool), np.zeros(2), 120.0) is None  # 1-D
    assert signal_compiled.try_read_signal(np.zeros((2, 1), np.float32), *ok[1:]) is None
    assert signal_compiled.try_read_signal(ok[0], np.ones((2, 1), int), *ok[2:]) is None
    monkeypatch.setattr(compiled, "switch", "0")
    assert signal_compiled.try_read_signal(*ok) is None
    assert_same(signal_compiled.read_signal_fast(*ok), read_signal(*ok))
