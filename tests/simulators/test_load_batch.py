"""Shapes evaluated a group of services at a time give the same load, bit for bit, as one
call per service (simulators/load_batch.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators.load import Constant, Diurnal, FlashCrowd, Noise, Ramp, Shape, Step, offered_chunks, tick_times
from simulators.load_batch import ShapeBatch
from simulators.streams import load_term


def one_call_each(shapes, t) -> np.ndarray:
    """The reference: every service's shape on its own, stacked (what offered_matrix did)."""
    cols = [np.asarray(s(t), dtype=np.float64) for s in shapes]
    return np.stack([c if c.ndim == 1 else c[:, 0] for c in cols], axis=1)


def noise(service: str, term: int, sigma: float = 0.08, every_s: float = 60.0) -> Noise:
    return Noise(sigma, seed=load_term(1, service, term), interval_s=every_s)


class Doubled(Shape):
    """A shape kind load_batch does not know (not a dataclass): evaluated one service at a time."""

    def __init__(self, base: Shape):
        self.base = base

    def __call__(self, t):
        return 2.0 * self.base(t)


T0 = 1_700_000_000.0
CASES = [
    pytest.param([Diurnal(800.0, 0.6, 16.0) * noise(f"s{i}", 1) for i in range(50)], id="count-50-one-diurnal-noise"),
    pytest.param([Diurnal(100.0 + i, 0.5, 10.0) * noise(f"s{i}", 1) for i in range(7)], id="distinct-diurnals"),
    pytest.param([Diurnal(600.0) * noise("a", 1) * noise("a", 2, 0.05, 30.0),
                  (Constant(300.0) + Ramp(T0 + 3600, T0 + 18000, 0.0, 700.0)) * noise("b", 3, 0.07),
                  Diurnal(600.0) * noise("c", 1) * noise("c", 2, 0.05, 30.0),
                  Constant(250.0),
                  Diurnal(500.0, 0.3, 20.0) + FlashCrowd(T0 + 9000, 900.0, 120.0, 1200.0)],
                 id="mixed-trees-and-noise-intervals"),
    pytest.param([Step(T0 + 600, 100.0, 400.0), Step(T0 + 600, 100.0, 400.0), Step(T0 + 1200, 100.0, 400.0)],
                 id="repeated-and-distinct-leaves"),
    pytest.param([Constant(0.0), Constant(-0.0) + Constant(0.0), Constant(-5.0)], id="signed-zeros-and-negatives"),
    pytest.param([Doubled(Diurnal(10.0)), Diurnal(10.0) * noise("x", 1)], id="unknown-shape-kind"),
    pytest.param([Diurnal(np.array([10.0, 20.0])), Diurnal(30.0)], id="array-parameters"),
    pytest.param([Noise(0.1, seed=3, n_series=2), noise("y", 1)], id="several-noise-series"),
    pytest.param([Diurnal(10.0) * Noise(0.08, seed=np.random.SeedSequence([1, 2])), Diurnal(10.0) * noise("z", 1)],
                 id="a-seed-not-drawn-at-once"),  # its group draws each term's block on its own
    pytest.param([Diurnal(10.0) * Noise(0.08, seed=s) for s in (0, 2**40, 2**63 - 1)], id="int-seeds"),
]


@pytest.mark.parametrize("shapes", CASES)
@pytest.mark.parametrize("tick_s, ticks", [pytest.param(5.0, 3000, id="5s-ticks-over-a-knot-block"),
                                           pytest.param(7.5, 1, id="one-tick"), pytest.param(5.0, 0, id="no-tick")])
def test_batched_shapes_equal_one_call_per_service(shapes, tick_s, ticks):
    t = T0 - 4000.0 + tick_s * np.arange(ticks, dtype=np.float64)
    got = ShapeBatch(shapes)(t)
    assert got.shape == (ticks, len(shapes))
    assert got.tobytes() == one_call_each(shapes, t).tobytes()


def test_chunked_batched_load_equals_the_whole_per_service_matrix():
    shapes = [Diurnal(800.0, 0.6, 16.0) * noise(f"s{i}", 1) for i in range(20)] + [Constant(5.0)]
    whole = np.maximum(one_call_each(shapes, tick_times(T0, 30 * 3600.0, 5.0)), 0.0)
    got = np.concatenate([load for _, _, load in offered_chunks(shapes, T0, 30 * 3600.0, 5.0, len(shapes), 333)])
    assert got.tobytes() == whole.tobytes()


leaves = st.one_of(
    st.builds(Diurnal, st.sampled_from([100.0, 800.0]), st.floats(0, 1), st.sampled_from([0.0, 16.0])),
    st.builds(FlashCrowd, st.floats(T0, T0 + 20_000), st.floats(0, 500), st.floats(0, 600), st.floats(1, 3000)),
    st.builds(Step, st.sampled_from([T0, T0 + 900.0]), st.floats(-100, 100), st.floats(-100, 100)),
    st.builds(Ramp, st.floats(T0, T0 + 5000), st.floats(T0 + 5000, T0 + 20_000), st.floats(0, 100), st.floats(0, 100)),
    st.builds(Constant, st.sampled_from([0.0, -0.0, 3.0])),
)


@settings(max_examples=60, deadline=None)
@given(services=st.lists(st.tuples(leaves, leaves, st.sampled_from([0.05, 0.1]), st.sampled_from([30.0, 60.0]),
                                   st.booleans()), min_size=1, max_size=12),
       ticks=st.integers(0, 400), tick_s=st.sampled_from([1.0, 5.0, 7.5, 60.0]))
def test_random_per_service_shapes_batch_bit_for_bit(services, ticks, tick_s):
    shapes = [(a + b if add else a * b) * Noise(sigma, seed=load_term(2, f"s{i % 5}", 0), interval_s=every)
              for i, (a, b, sigma, every, add) in enumerate(services)]
    t = T0 - 300.0 + tick_s * np.arange(ticks, dtype=np.float64)
    assert ShapeBatch(shapes)(t).tobytes() == one_call_each(shapes, t).tobytes()


def test_a_noise_term_keeps_its_last_block_but_does_not_pickle_it():
    n = noise("svc", 1)
    first = n.knots(10, 2000).copy()  # two blocks; the second is kept
    assert np.array_equal(n.knots(10, 2000), first)
    assert np.array_equal(noise("svc", 1).knots(1500, 1600), first[1490:1591])
    copy = pickle.loads(pickle.dumps(n))
    assert "_kept_block" in vars(n) and "_kept_block" not in vars(copy)
    assert np.array_equal(copy.knots(10, 2000), first)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("sigma, every, tick_s", [
    pytest.param(0.08, 60.0, 5.0, id="the-bench-s-noise"),
    pytest.param(0.3, 30.0, 7.5, id="wider-noise-ticks-off-the-knots"),
    pytest.param(0.05, 1.0, 60.0, id="knots-finer-than-the-ticks"),
])
def test_the_compiled_noise_exponent_gives_numpy_s_load(monkeypatch, sigma, every, tick_s):
    # simulators/load_compiled.py: the noise's exponent in one pass, then numpy's exp: the same bits
    shapes = [Diurnal(800.0, 0.6, 16.0) * Noise(sigma, seed=load_term(2, f"s{i}", 0), interval_s=every)
              for i in range(7)]
    t = T0 + tick_s * np.arange(700, dtype=np.float64)
    monkeypatch.setattr(compiled, "switch", "1")
    fast = ShapeBatch(shapes)(t)
    monkeypatch.setattr(compiled, "switch", "0")
    ref = ShapeBatch(shapes)(t)
    monkeypatch.setattr(compiled, "switch", "")
    assert compiled.available(), "the kernel failed: the batch fell back to numpy"
    assert fast.tobytes() == ref.tobytes() == one_call_each(shapes, t).tobytes()
