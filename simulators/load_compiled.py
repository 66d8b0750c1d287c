"""A load chunk's noise terms interpolated in one compiled pass (numba), for :mod:`simulators.load_batch`.

``_Noises`` evaluates a group's log-normal noise over a chunk of ticks: each tick's knots
gathered twice, weighted, summed, scaled and shifted (six numpy passes over a (T, G) array,
~4 MiB for a 512-tick chunk of 1,000 services), then exponentiated. Here the exponent is
computed in one pass reading the knots where they are; the exponential stays numpy's (its
vectorized ``exp`` and the C library's differ in the last bit for ~5% of values), so the load
is the same bit for bit: every element goes through the same multiplications, addition and
subtraction, in the same order (tests/simulators/test_load_batch.py).

Same switch and fallback as the other kernels (``SETPOINT_COMPILED``, see
:mod:`controller.core.scaling.compiled`).
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import enabled, jit, mark_broken


@jit
def _noise_exponent_kernel(z, rows, frac, sigma, shift, out):
    """out[k, g] = (z[rows[k], g] * (1 - frac[k]) + z[rows[k] + 1, g] * frac[k]) * sigma - shift
    for the (T,) knot ``rows`` and fractions ``frac`` of the (K, G) knots ``z``: out (T, G)."""
    for k in range(rows.shape[0]):
        r, f = rows[k], frac[k]
        below = 1.0 - f
        for g in range(z.shape[1]):
            out[k, g] = (z[r, g] * below + z[r + 1, g] * f) * sigma - shift
    return out


def noise_exponent(z: np.ndarray, rows: np.ndarray, frac: np.ndarray, sigma: float,
                   shift: float) -> np.ndarray | None:
    """The (T, G) exponent of a group's noise (:func:`_noise_exponent_kernel`) of float64 knots
    ``z`` (K, G), int64 ``rows`` (T,) and float64 ``frac`` (T,); None: use numpy."""
    if not enabled():
        return None
    try:
        return _noise_exponent_kernel(np.ascontiguousarray(z), rows, frac, float(sigma), float(shift),
                                      np.empty((rows.shape[0], z.shape[1])))
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return None


__all__ = ["noise_exponent"]
