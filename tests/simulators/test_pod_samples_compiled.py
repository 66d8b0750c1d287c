"""The compiled pod-sample draws (simulators/pod_samples_compiled.py) are numpy's, bit for bit, and
leave every service's Generator where numpy's calls leave it: on named regimes of each
distribution's algorithm (Poisson: none, multiplication, Hoermann's PTRS from lam = 10, where
numba's own Generator.poisson parts from numpy; binomial: none at p = 0, inversion, BTPE, p > 0.5)
and on generated snapshots, against ``SimMetrics._draw_pod_samples`` (the numpy reference)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators import pod_samples_compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def reference(generators, rows, lam, ratio):
    """SimMetrics._draw_pod_samples' draws: per service, three numpy calls over its run."""
    requests, errors, z = np.zeros(rows.size, np.int64), np.zeros(rows.size, np.int64), np.zeros(rows.size)
    firsts = np.flatnonzero(np.diff(rows, prepend=-1))
    bounds = np.append(firsts, rows.size)
    for k, row in enumerate(rows[firsts].tolist()):
        start, end = bounds[k], bounds[k + 1]
        rng = generators[row]
        drawn = requests[start:end] = rng.poisson(lam[start:end])
        if (ratio[start:end] > 0).any():
            errors[start:end] = rng.binomial(drawn, ratio[start:end])
        z[start:end] = rng.standard_normal(end - start)
    return requests, errors, z


#: Draws of each value of a named regime, per snapshot.
PODS_PER_REGIME = 200_000


@contextmanager
def kernels_on():
    previous = compiled.set_switch("1")
    try:
        yield
    finally:
        compiled.set_switch(previous)


def assert_same_draws(rows, lam, ratio, seed=5, snapshots=3):
    rows, lam, ratio = np.asarray(rows, np.int64), np.asarray(lam, float), np.asarray(ratio, float)
    services = int(rows.max()) + 1 if rows.size else 1
    numpy_side = [np.random.default_rng([seed, i]) for i in range(services)]
    kernel_side = [np.random.default_rng([seed, i]) for i in range(services)]
    with kernels_on():
        streams = pod_samples_compiled.streams_of(kernel_side)
    for _ in range(snapshots):  # the streams stay in step from one snapshot to the next
        with kernels_on():
            got = pod_samples_compiled.try_draw_pod_samples(streams, rows, lam, ratio)
        assert got is not None, "the kernel declined"
        want = reference(numpy_side, rows, lam, ratio)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g.view(np.int64), w.view(np.int64))
    assert [g.random() for g in kernel_side] == [g.random() for g in numpy_side]


@pytest.mark.parametrize("lam, ratio", [
    pytest.param([0.0, 0.0], [0.0, 0.0], id="no-requests-no-errors"),
    pytest.param([0.3, 4.0, 9.999], [0.0, 0.0, 0.0], id="poisson-by-multiplication"),
    pytest.param([10.0, 10.0, 10.0, 10.0], [0.0] * 4, id="poisson-ptrs-at-its-threshold"),
    pytest.param([10.5, 12.0, 15.0, 19.0], [0.0] * 4, id="poisson-ptrs-small-means"),
    pytest.param([350.0, 4.2e4, 3.3e7], [0.0] * 3, id="poisson-ptrs-large-means"),
    pytest.param([40.0, 40.0, 40.0], [0.0, 0.02, 0.0], id="binomial-inversion-and-p-zero"),
    pytest.param([2000.0, 9000.0], [0.2, 0.45], id="binomial-btpe"),
    pytest.param([30.0, 5000.0, 60.0], [0.7, 0.95, 1.0], id="binomial-above-one-half"),
])
def test_named_regimes(lam, ratio):
    # many draws of each: numba's own Poisson parts from numpy's about once in 1e5 draws at lam = 10
    pods = PODS_PER_REGIME * len(lam)
    assert_same_draws(np.zeros(pods, np.int64), np.repeat(lam, PODS_PER_REGIME), np.repeat(ratio, PODS_PER_REGIME),
                      snapshots=2)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_generated_snapshots(data):
    counts = data.draw(st.lists(st.integers(0, 6), min_size=1, max_size=12))
    rows = np.repeat(np.arange(len(counts)), counts)
    means = st.sampled_from([0.0, 0.5, 9.999, 10.0, 10.3, 13.0, 27.0, 800.0, 1e5])
    ratios = st.sampled_from([0.0, 0.0, 1e-3, 0.05, 0.3, 0.5, 0.8, 1.0])
    lam = data.draw(st.lists(means, min_size=rows.size, max_size=rows.size))
    ratio = data.draw(st.lists(ratios, min_size=rows.size, max_size=rows.size))
    assert_same_draws(rows, lam, ratio, seed=data.draw(st.integers(0, 2**32)))


@pytest.mark.parametrize("switch, lam, declined", [
    pytest.param("0", [1.0], True, id="kernels-off"),
    pytest.param("1", [-1.0], True, id="negative-mean-left-to-numpy-to-raise"),
    pytest.param("1", [np.nan], True, id="nan-mean-left-to-numpy-to-raise"),
    pytest.param("1", [1e19], True, id="mean-too-large-for-numpy"),
    pytest.param("1", [1.0], False, id="drawn"),
])
def test_declines_what_numpy_would_refuse(monkeypatch, switch, lam, declined):
    monkeypatch.setattr(compiled, "switch", "1")
    streams = pod_samples_compiled.streams_of([np.random.default_rng(0)])
    monkeypatch.setattr(compiled, "switch", switch)
    got = pod_samples_compiled.try_draw_pod_samples(streams, np.zeros(1, np.int64), np.array(lam), np.zeros(1))
    assert (got is None) == declined
