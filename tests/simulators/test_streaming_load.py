"""Load generated in chunks is the same load as the whole (T, S) matrix, row for row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.load import Diurnal, FlashCrowd, Noise, Ramp, Step, offered_chunks, offered_matrix, tick_times
from simulators.scenario import load_scenario


def stitched(chunks) -> np.ndarray:
    rows, expected_k0 = [], 0
    for k0, times, load in chunks:
        assert k0 == expected_k0 and times.shape[0] == load.shape[0]
        rows.append(load)
        expected_k0 += load.shape[0]
    return np.concatenate(rows)


@pytest.mark.parametrize("name, chunk", [
    pytest.param("step", 1, id="step-chunk-1"),
    pytest.param("flash-crowd", 97, id="flash-crowd-chunk-97"),
    pytest.param("diurnal", 512, id="diurnal-chunk-512"),
    pytest.param("metrics-outage", 1000, id="metrics-outage-chunk-1000"),
])
def test_bundled_scenarios_chunked_load_equals_the_whole(name, chunk):
    sc = load_scenario(name, seed=3)
    whole = sc.offered()
    assert np.array_equal(stitched(sc.offered_chunks(chunk)), whole)
    times = np.concatenate([t for _, t, _ in sc.offered_chunks(chunk)])
    assert np.array_equal(times, sc.times())


shapes = st.one_of(
    st.builds(Diurnal, st.floats(1, 1000), st.floats(0, 1), st.floats(0, 24), st.floats(0.2, 1)),
    st.builds(FlashCrowd, st.floats(0, 20_000), st.floats(0, 500), st.floats(0, 600), st.floats(1, 3000)),
    st.builds(Step, st.floats(0, 20_000), st.floats(0, 100), st.floats(0, 100)),
    st.builds(Ramp, st.floats(0, 5000), st.floats(5000, 20_000), st.floats(0, 100), st.floats(0, 100)),
)


@settings(max_examples=40, deadline=None)
@given(services=st.lists(st.tuples(shapes, st.floats(0, 0.5), st.integers(0, 99)), min_size=1, max_size=4),
       duration_s=st.floats(5, 30_000), tick_s=st.sampled_from([1.0, 5.0, 7.5, 60.0]),
       chunk=st.integers(1, 700), start_s=st.sampled_from([0.0, 1_700_000_000.0]))
def test_random_shapes_chunked_load_equals_the_whole(services, duration_s, tick_s, chunk, start_s):
    per_service = [shape * Noise(sigma, seed) + 0.0 for shape, sigma, seed in services]
    whole = offered_matrix(per_service, tick_times(start_s, duration_s, tick_s), len(per_service))
    got = stitched(offered_chunks(per_service, start_s, duration_s, tick_s, len(per_service), chunk))
    assert np.array_equal(got, whole)


def test_a_chunk_size_below_one_is_refused():
    with pytest.raises(ValueError, match="chunk_ticks"):
        next(offered_chunks(Diurnal(10.0), 0.0, 60.0, 5.0, 1, 0))
