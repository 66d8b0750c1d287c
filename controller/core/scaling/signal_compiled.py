"""Stage 1, signal (core/scaling/signal.py), as one compiled pass (numba).

``read_signal`` is about a dozen numpy operations over the (N, M) samples, each a pass and a
temporary; the paths that run it every cycle outside the fused kernel (the ``hpa`` preset's
numpy stages, a ramp's latest reading in the Reconciler) pay them per cycle. :func:`try_read_signal`
gives the same Signal, array for array, in one loop; ``signal.read_signal`` stays the reference
(and runs for ``SETPOINT_COMPILED=0``); tests/core/test_signal_compiled.py compares both.
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit
from controller.core.scaling.signal import Signal, read_signal


@compiled.jit_inline
def sample_flags(x, pr, age, stale_after_s, checked, above):
    """One sample's (nonfinite, stale, negative, implausible, usable): ``x`` its value, ``pr``
    present, ``age`` s; ``checked`` / ``above`` its metric's bounds."""
    nf = pr and not math.isfinite(x)
    st = pr and age > stale_after_s
    ng = pr and not nf and x < 0 and checked  # NaN < 0 and -0.0 < 0 are False
    ip = pr and not nf and x > above
    return nf, st, ng, ip, pr and not (st or nf or ng or ip)


@compiled.jit_inline
def clean_sample(x, pr, age, stale_after_s, checked, above):
    """One sample's clean value (the Signal's ``clean``): ``x`` if usable, else NaN."""
    return x if sample_flags(x, pr, age, stale_after_s, checked, above)[4] else math.nan


@jit
def _signal_kernel(values, present, age, stale_after_s, checked, above, clean, missing, stale, nonfinite, negative,
                   implausible, usable):
    n, m = values.shape
    for i in range(n):
        for j in range(m):
            x = values[i, j]
            pr = present[i, j]
            nf, st, ng, ip, us = sample_flags(x, pr, age[i, j], stale_after_s, checked[j], above[j])
            missing[i, j], stale[i, j], nonfinite[i, j], negative[i, j] = not pr, st, nf, ng
            implausible[i, j], usable[i, j] = ip, us
            clean[i, j] = x if us else math.nan


def signal_bounds(m: int, nonnegative: np.ndarray | None, implausible_above: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """The kernel's per-metric bounds of ``m`` metrics: (M,) bool which are checked for negative
    values (all when ``nonnegative`` is None) and (M,) float64 above which a value is implausible
    (inf when None); None when either is not (M,)."""
    checked = np.ones(m, np.bool_) if nonnegative is None else np.asarray(nonnegative, np.bool_)
    above = (np.full(m, math.inf) if implausible_above is None
             else np.ascontiguousarray(implausible_above, np.float64).reshape(-1))
    if checked.shape != (m,) or above.shape != (m,):
        return None
    return checked, above


def try_read_signal(values: np.ndarray, present: np.ndarray, sample_age_s: np.ndarray, stale_after_s: float,
                    nonnegative: np.ndarray | None = None, implausible_above: np.ndarray | None = None
                    ) -> Signal | None:
    """:func:`signal.read_signal` compiled (same arguments and arrays), or None when the kernels
    are off or the arrays are not (N, M) alike (values float64, present bool): then call the reference."""
    if not compiled.enabled():
        return None
    inputs = kernel_inputs(values, present, sample_age_s, nonnegative, implausible_above)
    if inputs is None:
        return None
    clean, masks = kernel_outputs(inputs[0].shape)
    try:
        _signal_kernel(*inputs[:3], float(stale_after_s), *inputs[3:], clean, *masks)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return Signal(clean, *masks)


def kernel_inputs(values: np.ndarray, present: np.ndarray, sample_age_s: np.ndarray,
                  nonnegative: np.ndarray | None = None, implausible_above: np.ndarray | None = None,
                  bounds: tuple[np.ndarray, np.ndarray] | None = None) -> tuple | None:
    """(values, present, age (N, M), checked, above (M,)) as _signal_kernel takes them (its
    stale_after_s goes between the two groups), or None when the arrays are not (N, M) alike
    (values float64, present bool): then the reference. ``bounds``: signal_bounds' answer for
    these M metrics, made by the caller once (else made here of the two)."""
    values, present, age = np.asarray(values), np.asarray(present), np.asarray(sample_age_s)
    if (values.ndim != 2 or values.dtype != np.float64 or present.dtype != np.bool_
            or present.shape != values.shape or age.shape != values.shape):
        return None
    if bounds is None:
        bounds = signal_bounds(values.shape[1], nonnegative, implausible_above)
    if bounds is None or bounds[0].shape != (values.shape[1],):
        return None
    checked, above = bounds
    return (np.ascontiguousarray(values, np.float64), np.ascontiguousarray(present, np.bool_),
            np.ascontiguousarray(age, np.float64), checked, above)


def kernel_outputs(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """_signal_kernel's outputs, unset: the clean values (N, M) float64 and its six (N, M) masks
    (missing, stale, nonfinite, negative, implausible, usable) as one (6, N, M) bool array."""
    return np.empty(shape), np.empty((6, *shape), np.bool_)


def read_signal_fast(values: np.ndarray, present: np.ndarray, sample_age_s: np.ndarray, stale_after_s: float,
                     nonnegative: np.ndarray | None = None, implausible_above: np.ndarray | None = None) -> Signal:
    """:func:`try_read_signal`, or the reference when the kernel declines."""
    args = (values, present, sample_age_s, stale_after_s, nonnegative, implausible_above)
    fast = try_read_signal(*args)
    return fast if fast is not None else read_signal(*args)
