"""SimMetrics' per-pod sample draws in one compiled pass (numba), for a health cycle's pod queries.

Each snapshot of the pods' signals (``SimMetrics._sample``) draws, per service from its own
numpy Generator, a Poisson count of each pod's requests, the binomial errors among them and a
standard normal for its latency noise: three numpy calls per service (~10 us: 10 ms a health
pass at 1,000 services). :func:`try_draw_pod_samples` makes every service's draws in one
kernel call over a numba typed list of the same Generator objects: numba draws from their bit
generators' state with the algorithms of numpy's distributions.c (its Generator support), so
each stream advances as numpy's calls advance it and the values are numpy's, bit for bit
(tests/simulators/test_pod_samples_compiled.py compares them). ``SimMetrics._draw_pod_samples`` is the
reference (and runs for ``SETPOINT_COMPILED=0``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit

#: The largest Poisson mean numpy's Generator.poisson takes (it raises beyond, "lam value too
#: large"): a mean beyond it is left to numpy, to fail as it fails.
POISSON_LAM_MAX = float(np.iinfo(np.int64).max - np.sqrt(np.iinfo(np.int64).max) * 10)


@jit
def _draws_kernel(streams, rows, firsts, lam, ratio, requests, errors, z):
    for k in range(firsts.shape[0] - 1):
        start, end = firsts[k], firsts[k + 1]
        rng = streams[rows[start]]
        for j in range(start, end):  # numpy's rng.poisson(lam[start:end]): one draw per pod, in order
            requests[j] = _poisson(rng, lam[j])
        failing = False
        for j in range(start, end):
            failing |= ratio[j] > 0
        if failing:  # as the reference: no binomial call where no pod fails (numpy draws nothing at p = 0)
            for j in range(start, end):
                errors[j] = rng.binomial(requests[j], ratio[j])
        for j in range(start, end):
            z[j] = rng.standard_normal()


# numba's Generator.poisson casts PTRS's candidate with int() (truncation) where numpy's
# distributions.c takes floor(): a candidate in (-1, 0) is kept as 0 instead of rejected, and
# the stream parts from numpy's (numba 0.68.1; seen at lam = 10). numpy's random_poisson, then,
# drawing its uniforms with rng.random() (next_double, as numpy's).
@compiled.jit_inline
def _poisson(rng, lam):
    if lam >= 10:
        return _poisson_ptrs(rng, lam)
    if lam == 0:
        return 0
    enlam = math.exp(-lam)  # random_poisson_mult
    x, prod = 0, 1.0
    while True:
        prod *= rng.random()
        if prod > enlam:
            x += 1
        else:
            return x


@compiled.jit_inline
def _poisson_ptrs(rng, lam):
    """numpy's random_poisson_ptrs (Hoermann's transformed rejection), line for line."""
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - math.fabs(u)
        k = np.int64(math.floor((2 * a / us + b) * u + lam + 0.43))
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)) <= (-lam + k * loglam - _loggam(k + 1.0)):
            return k


#: numpy's random_loggam coefficients.
_LOGGAM_A = (8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04, -5.952380952380952e-04,
             8.417508417508418e-04, -1.917526917526918e-03, 6.410256410256410e-03, -2.955065359477124e-02,
             1.796443723688307e-01, -1.39243221690590e+00)


@compiled.jit_inline
def _loggam(x):
    """numpy's random_loggam: log(gamma(x)) by Stirling's series, shifted up below 7."""
    if x == 1.0 or x == 2.0:
        return 0.0
    n = np.int64(7 - x) if x < 7.0 else np.int64(0)
    x0 = x + n
    x2 = (1.0 / x0) * (1.0 / x0)
    gl0 = _LOGGAM_A[9]
    for k in range(8, -1, -1):
        gl0 *= x2
        gl0 += _LOGGAM_A[k]
    gl = gl0 / x0 + 0.5 * 1.8378770664093453e+00 + (x0 - 0.5) * math.log(x0) - x0
    if x < 7.0:
        for _ in range(n):
            gl -= math.log(x0 - 1.0)
            x0 -= 1.0
    return gl


def streams_of(generators: Sequence[np.random.Generator]):
    """A numba typed list of ``generators`` (the same objects: draws from it advance them), for
    :func:`try_draw_pod_samples`; None when the kernels are off."""
    if not compiled.enabled():
        return None
    from numba import typed  # noqa: PLC0415 (numba is imported only with the kernels)

    return typed.List(generators)


def try_draw_pod_samples(streams, rows: np.ndarray, lam: np.ndarray, ratio: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(requests (P,) int64, errors (P,) int64, z (P,) float64) of the pods of ``rows`` (P,)
    int64 (ascending: each service's pods a run), at Poisson means ``lam`` (P,) and error
    ratios ``ratio`` (P,) in [0, 1], each service drawing from ``streams[row]`` (:func:`streams_of`)
    as ``SimMetrics._draw_pod_samples`` does. None when the kernels are off, ``streams`` is
    None or a mean is one numpy refuses (negative, NaN, too large): then the reference, to raise as numpy does."""
    if streams is None or not compiled.enabled():
        return None
    if lam.size and not (float(lam.min()) >= 0.0 and float(lam.max()) < POISSON_LAM_MAX):  # NaN fails too
        return None
    n = rows.shape[0]
    requests, errors, z = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n)
    firsts = np.flatnonzero(np.diff(rows, prepend=-1)).astype(np.int64)  # where each service's run starts
    try:
        _draws_kernel(streams, np.ascontiguousarray(rows, np.int64), np.append(firsts, n).astype(np.int64),
                      np.ascontiguousarray(lam, np.float64), np.ascontiguousarray(ratio, np.float64), requests, errors, z)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return requests, errors, z


def warm() -> None:
    """Load the kernel with the argument types a run passes (runner.warm_later_kernels)."""
    streams = streams_of([np.random.default_rng(0)])
    rows, values = np.zeros(1, np.int64), np.zeros(1)
    try_draw_pod_samples(streams, rows, values, values)
