"""The compiled decision core (numba): the switch, the per-value helpers and the packed parameters.

The decision itself is one fused per-target kernel, core/scaling/fused.py, driven through the
in-place API of core/scaling/workspace.py (``decide`` runs it on a copy of the state). Its
numbers are those of the numpy stages (signal.py ... normalize.py, the reference):
``tests/core/test_compiled.py`` checks every output and state array is identical on scripted
and random inputs, cycle after cycle.

Covered: every metric kind, smoothing none / EWMA / mean / max, HPA legacy and behavior,
Setpoint's missing-data hold and fallback, ramp metrics, forecast metrics (their stage compiled
in core/scaling/forecast_compiled.py, run before the fused kernel). Not covered, so ``decide``
keeps numpy for the policy (see :func:`supports`): the hpa preset, median and percentile smoothing.

Switch: ``SETPOINT_COMPILED=0`` forces numpy, ``=1`` asks for the kernel (a warning if numba is
missing), unset means "the kernel when numba imports"; read once, at import (:data:`switch`;
:func:`set_switch` changes it in-process). A missing or broken numba (or a kernel that fails to
compile) gives one warning and numpy, never an error. Kernels are compiled on first use and
cached on disk (numba ``cache=True``, keyed on their helpers too: core/scaling/kernel_cache.py).
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Callable

import numpy as np

from controller.core.scaling import kernel_cache
from controller.core.scaling.limit import NOT_LIMITED
from controller.core.scaling.params import PolicyParams, RuleType, Select, Smoothing
from controller.core.scaling.propose import INT32_MAX
from controller.model import Reason

#: What a kernel that fails to compile raises (numba's typing and lowering errors); set on load.
KERNEL_ERRORS: tuple[type[BaseException], ...] = ()

ENV_SWITCH = "SETPOINT_COMPILED"
#: The switch's value ("0", "1" or "": see the module docstring), read once: not per kernel call.
switch: str = os.environ.get(ENV_SWITCH, "").strip()
_numba = None  # the numba module once loaded
_IMPORT_ERROR: BaseException | None = None
_loaded = False
_pending: list[tuple[dict, str, bool]] = []  # (module globals, name, inline) of the functions to compile on load
_warned = False
_broken: BaseException | None = None


def jit(func):
    """Mark ``func`` as a kernel: ``numba.njit(cache=True)`` with numpy's float semantics (x/0 is
    inf or NaN, no exception), made when the kernels are first needed, so that importing the
    core (every CLI command) does not import numba. The plain function while numba is not loaded
    or missing (never called then). The cache lives next to the module or, when that is
    read-only, in numba's user cache (``NUMBA_CACHE_DIR`` to choose); a kernel is recompiled
    when a jitted helper or constant of another module it uses changes (:mod:`.kernel_cache`)."""
    return _mark(func, False)


def jit_inline(func):
    """:func:`jit` for a small per-value helper that the kernels call per target: inlined into
    its callers at numba's IR level (``inline="always"``), where LLVM would keep a call (with
    numba's status-code convention) for a helper called from two places."""
    return _mark(func, True)


def _mark(func, inline: bool):
    if _loaded:
        return _njit(func, inline)
    _pending.append((func.__globals__, func.__name__, inline))
    return func


def _njit(func, inline: bool = False):
    if _numba is None:
        return func
    kernel = _numba.njit(error_model="numpy", inline="always" if inline else "never")(func)
    try:  # cache=True, keyed on the helpers of other modules too (numba watches only the kernel's file)
        kernel_cache.enable(kernel)
    except RuntimeError:  # no writable cache directory (read-only install, no home): compile per process
        pass
    return kernel


def _load() -> None:
    """Import numba and turn every marked function into a dispatcher (each kernel finds its
    helpers as module globals when it compiles)."""
    global _numba, _IMPORT_ERROR, _loaded, KERNEL_ERRORS
    if _loaded:
        return
    _loaded = True
    if switch not in ("", "0", "1"):
        warnings.warn(f"{ENV_SWITCH}={switch!r}: expected 0 (numpy), 1 (the compiled kernels) or unset (the kernels "
                      "where they pay); read as unset", RuntimeWarning, stacklevel=3)
    try:  # numba is optional: without it every policy runs on numpy
        numba = _import_numba()
    except Exception as exc:  # ImportError, or a broken install (e.g. an llvmlite mismatch)
        _IMPORT_ERROR = exc
        return
    _numba = numba
    KERNEL_ERRORS = (numba.core.errors.NumbaError,)
    for namespace, name, inline in _pending:
        namespace[name] = _njit(namespace[name], inline)
    _pending.clear()


#: What numba imports only to choose np.vdot's implementation (numba.np.arraymath's _HAVE_BLAS).
_BLAS_PROBE = "scipy.linalg.cython_blas"


def _import_numba():
    """``import numba``, without importing scipy where scipy is installed and not yet imported.

    numba.np.arraymath imports scipy.linalg when it loads (~0.16 s here, a third of a sweep
    worker's start and of every ``setpoint`` command that runs kernels) only to decide whether
    np.vdot calls BLAS; no kernel here calls it. That module is imported here, with the first
    kernel's load otherwise, and its probe's import fails for that moment (numba
    then picks its plain-loop np.vdot, as it does without scipy) and works again after: the
    process can import and use scipy as it pleases. Where the probe ran already, or scipy.linalg
    is imported already (nothing to save), numba is imported as it is."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules or _BLAS_PROBE in sys.modules:
        import numba  # noqa: PLC0415
        return numba
    sys.modules[_BLAS_PROBE] = None  # type: ignore[assignment]  # import of a None entry: ModuleNotFoundError
    try:
        import numba  # noqa: PLC0415
        import numba.np.arraymath  # noqa: F401, PLC0415 (numba loads it with the first kernel: its probe runs now)
    finally:
        del sys.modules[_BLAS_PROBE]
    return numba


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def available() -> bool:
    """numba imports and no kernel failed to compile."""
    _load()
    return _numba is not None and _broken is None


def enabled() -> bool:
    """Use the kernels: the switch allows it and numba works (warns once when asked for and absent)."""
    if _numba is not None and _broken is None and switch != "0":  # the common answer, without calls (per kernel call)
        return True
    if switch == "0":
        return False
    if not available():
        if switch == "1" or _IMPORT_ERROR is not None or _broken is not None:
            reason = _IMPORT_ERROR or _broken
            _warn_once(f"compiled kernels unavailable ({type(reason).__name__}: {reason}); using numpy")
        return False
    return True


def loaded_kernels() -> list[tuple[object, str, object]]:
    """(module, name, dispatcher) of every numba dispatcher that a module of controller/ or
    simulators/ imported so far holds as a global (none without numba)."""
    import sys  # noqa: PLC0415

    if _numba is None:
        return []
    dispatcher = _numba.core.registry.CPUDispatcher
    return [(module, name, value) for module_name, module in list(sys.modules.items())
            if module_name.startswith(("controller", "simulators"))
            for name, value in list(vars(module).items()) if isinstance(value, dispatcher)]


def set_switch(value: str) -> str:
    """Set the switch in this process ("0", "1" or "", as ``SETPOINT_COMPILED``); returns the previous value."""
    global switch
    previous, switch = switch, value.strip()
    return previous


def mark_broken(exc: BaseException) -> None:
    """A kernel failed to compile or run: numpy from now on, with one warning."""
    global _broken
    _broken = exc
    _warn_once(f"compiled kernel failed ({type(exc).__name__}: {exc}); using numpy")


def per_params(cache: dict, params: PolicyParams, make: Callable[[], object], key: object = None,
               limit: int = 256):
    """``make()``, remembered in ``cache`` per (frozen) params object and ``key`` (asked every
    cycle with the same policy): the params are kept beside the answer, so an id another object
    reuses is not taken for theirs; the cache is emptied at ``limit`` entries (a run has one or
    two policies; edited ones are new objects)."""
    hit = cache.get(id(params))
    if hit is not None and hit[0] is params and hit[1] == key:
        return hit[2]
    made = make()
    if len(cache) >= limit:
        cache.clear()
    cache[id(params)] = (params, key, made)
    return made


_SUPPORTED: dict[int, tuple] = {}


def supports(params: PolicyParams) -> bool:
    """The kernel covers this policy: not the hpa preset, no median/percentile smoothing, a mean
    over at most 128 samples (numpy sums longer ones in halves; not reproduced). Answered once per
    params object (asked every cycle)."""
    return per_params(_SUPPORTED, params, lambda: _supports(params))


def _supports(params: PolicyParams) -> bool:
    # the hpa preset proposes with HPA's pod-level calculator (core/scaling/hpa_propose.py), not compiled
    if params.hpa_semantics or params.smoothing in (Smoothing.MEDIAN, Smoothing.PERCENTILE):
        return False
    if params.pooled_metrics and params.forecast_metrics:  # the compiled forecast stage sizes per replica
        return False
    return params.smoothing != Smoothing.MEAN or params.sample_slots <= _PAIRWISE_BLOCK


# ---------------------------------------------------------------------------------------- kernel
_DISABLED, _ABOVE, _BELOW = int(Reason.SCALING_DISABLED), int(Reason.ABOVE_MAX), int(Reason.BELOW_MIN)
_MISSING, _FALLBACK = int(Reason.METRICS_MISSING), int(Reason.FALLBACK_REPLICAS)
_NOT_READY, _RECOVERING = int(Reason.TARGET_NOT_READY), int(Reason.METRICS_RECOVERING)
_STAB_UP, _STAB_DOWN = int(Reason.STABILIZED_UP), int(Reason.STABILIZED_DOWN)
_UP, _DOWN, _KEEP = int(Reason.SCALE_UP), int(Reason.SCALE_DOWN), int(Reason.WITHIN_TOLERANCE)
_RL_UP, _RL_DOWN = int(Reason.RATE_LIMITED_UP), int(Reason.RATE_LIMITED_DOWN)
_CL_MAX, _CL_MIN = int(Reason.CLAMPED_TO_MAX), int(Reason.CLAMPED_TO_MIN)
_NOT_LIMITED = int(NOT_LIMITED)
_PODS = int(RuleType.PODS)
_SEL_MAX, _SEL_DISABLED = int(Select.MAX), int(Select.DISABLED)
_S_NONE, _S_EWMA, _S_MEAN, _S_MAX = int(Smoothing.NONE), int(Smoothing.EWMA), int(Smoothing.MEAN), int(Smoothing.MAX)
_INT32_MAX = float(INT32_MAX)
_PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE: up to this many terms its pairwise sum is one block
_NAN, _INF = math.nan, math.inf

# scalar parameter vector layout (see _scalars)
(_P_STALE, _P_TOL_UP, _P_TOL_DOWN, _P_SMOOTHING, _P_WINDOW, _P_MIN, _P_MAX, _P_LEGACY, _P_FALLBACK,
 _P_HOLD, _P_UP_WIN, _P_DOWN_WIN, _P_UP_SEL, _P_DOWN_SEL, _P_UP_LONGEST, _P_DOWN_LONGEST, _P_FACTOR,
 _P_MINIMUM, _P_DOWN_MIN_STEP, _P_DOWN_LINEAR, _P_INTERVAL, _P_READ_WINDOW, _P_SIZE) = range(23)


@jit_inline
def nan_max(a, b):
    """np.maximum on scalars: NaN if either is NaN."""
    if a != a or b != b:
        return _NAN
    return a if a >= b else b


@jit_inline
def nan_min(a, b):
    """np.minimum on scalars: NaN if either is NaN."""
    if a != a or b != b:
        return _NAN
    return a if a <= b else b


@jit_inline
def precheck(cur, lo, hi):
    """normalize._precheck for one target: (forced replicas, reason) of the first pre-check that
    applies (scaling disabled at 0, above max, below min), else (NaN, -1). Shared by the kernels."""
    if cur == 0 and lo != 0:
        return 0.0, _DISABLED
    if cur > hi:
        return float(hi), _ABOVE
    if cur < lo:
        return float(lo), _BELOW
    return _NAN, -1


@jit_inline
def final_outcome(cur, proposal, stabilized, desired, limit_reason, legacy, miss_reason, pre_reason, forced, hold):
    """normalize._final_reason and the overrides for one target, shared by the kernels: later
    rules win (limit, stabilization, the move; then missing data, then the pre-checks); a forced
    count or a hold replaces desired, and then stabilized reads desired, not limited. Returns
    (stabilized, desired, limit_reason, reason)."""
    if limit_reason != _NOT_LIMITED:
        reason = limit_reason
    elif stabilized != proposal:
        reason = _STAB_DOWN if (legacy or proposal < cur) else _STAB_UP
    else:
        reason = _UP if desired > cur else (_DOWN if desired < cur else _KEEP)
    if miss_reason >= 0:
        reason = miss_reason
    if pre_reason >= 0:
        reason = pre_reason
    if forced == forced:
        desired = forced
    elif hold:
        desired = cur
    if forced == forced or hold:
        stabilized, limit_reason = desired, _NOT_LIMITED
    return stabilized, desired, limit_reason, reason


@jit_inline
def within(ratio, tol_up, tol_down):
    """The ratio lies in HPA's tolerance band [1 - tol_down, 1 + tol_up] (shared by the kernels)."""
    return ratio >= 1.0 - tol_down and ratio <= 1.0 + tol_up


@jit_inline
def _ceil_clamped(x):
    return nan_min(np.ceil(x), _INT32_MAX)


@jit_inline
def _pairwise_sum(a, start, n):
    """numpy's pairwise summation of a[start:start + n] (bit for bit, for np.sum over a
    contiguous axis)."""
    if n < 8:
        res = 0.0
        for k in range(n):
            res += a[start + k]
        return res
    if n <= _PAIRWISE_BLOCK:
        r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
        r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
        k = 8
        while k < n - (n % 8):
            r0 += a[start + k]
            r1 += a[start + k + 1]
            r2 += a[start + k + 2]
            r3 += a[start + k + 3]
            r4 += a[start + k + 4]
            r5 += a[start + k + 5]
            r6 += a[start + k + 6]
            r7 += a[start + k + 7]
            k += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while k < n:
            res += a[start + k]
            k += 1
        return res
    return _NAN  # longer windows are not compiled (see supports)


@jit_inline
def pooled_one(v, target, capacity, min_replicas, tol_up, rdy):
    """headroom.pooled_load of one value (``capacity`` 0: per-replica headroom, ``v`` itself;
    ``rdy`` ready replicas: ``v`` itself above rdy x capacity, saturated); the same operations
    in the same order."""
    if capacity <= 0.0:
        return v
    reference = max(min_replicas, 1.0) * target
    x = v / reference
    if not x > 1.0 or v > rdy * capacity:
        return v
    a = target * (1.0 + tol_up) / capacity
    return reference * (a * x + (1.0 - a) * math.sqrt(x))


@jit_inline
def propose_pooled(kind, target, capacity, v, cur, rdy, sts, withheld, min_replicas, tol_up, tol_down):
    """_propose_one of the value as the metric sizes it (pooled_one: ``capacity`` 0 is ``v``
    itself), on the ``cur - withheld`` serving replicas plus the withheld ones:
    propose.propose_policy for one value."""
    return propose_serving(kind, target, pooled_one(v, target, capacity, min_replicas, tol_up, rdy), cur, rdy, sts,
                           withheld, tol_up, tol_down)


@jit_inline
def saturated_one(v, capacity, count, tol_up):
    """saturation.saturated of one reading ``v``: it reaches what ``count`` replicas of
    ``capacity`` serve (0: no capacity stated), within the up tolerance; the same operations."""
    return capacity > 0.0 and count > 0.0 and v >= count * capacity * (1.0 - tol_up)


@jit_inline
def saturation_floor_one(p, v, latest, target, capacity, rdy, withheld, tol_up):
    """saturation.saturation_floor of one valid proposal ``p`` of value ``v`` (raised to
    ``latest`` where higher; NaN: none, saturation.saturation_values): at least
    ceil(v / target x capacity / target) plus the withheld replicas where ``v`` reaches what the
    ``rdy`` Ready pods serve (``capacity`` per replica, 0: no floor), within the up tolerance; the
    same operations."""
    if latest > v:  # np.fmax of a valid v: False for a NaN latest
        v = latest
    if saturated_one(v, capacity, rdy, tol_up):
        q = _ceil_clamped(v / target * capacity / target) + withheld
        return p if (p >= q or q != q) else q  # np.fmax
    return p


@jit_inline
def propose_serving(kind, target, v, cur, rdy, sts, withheld, tol_up, tol_down):
    """_propose_one sized on the ``cur - withheld`` serving replicas (their pods out of ``sts``
    too), the withheld ones added back (propose.propose_policy's ``withheld``)."""
    p, ready_ok = _propose_one(kind, target, v, cur - withheld, rdy, sts - withheld, tol_up, tol_down)
    return p + withheld, ready_ok


@jit_inline
def _propose_one(kind, target, v, cur, rdy, sts, tol_up, tol_down):
    """One metric's proposal (propose.py), and whether ``ready`` allows it (utilization)."""
    ready_ok = True
    if kind == 0:  # value
        ratio = v / target
        if cur == 0:
            p = np.ceil(ratio)
        elif within(ratio, tol_up, tol_down):
            p = cur
        else:
            p = _ceil_clamped(ratio * rdy)
        guide = v / target
    elif kind == 1:  # average per replica
        ratio = v / (target * cur)
        p = cur if within(ratio, tol_up, tol_down) else _ceil_clamped(v / target)
        # v / (target * max(cur, 1)): ratio's very division when cur >= 1 (one division less)
        guide = ratio if cur >= 1.0 else v / (target * nan_max(cur, 1.0))
    else:  # utilization
        ratio = v / target
        unready = nan_max(sts - rdy, 0.0)
        if unready > 0 and ratio > 1.0:
            total = rdy + unready
            diluted_usage = v * rdy / total
            diluted = diluted_usage / target
            slow = _ceil_clamped(diluted * total)
            if within(diluted, tol_up, tol_down) or diluted < 1.0 or slow < cur:
                slow = cur
            p = slow
        else:
            p = cur if within(ratio, tol_up, tol_down) else _ceil_clamped(ratio * rdy)
        guide = v / target
        ready_ok = rdy > 0
    # Setpoint's direction guard, as selects: no branch on which side of 1 the guide is, which
    # changes from target to target for loads near their target
    up, down = nan_max(p, cur), nan_min(p, cur)
    p = up if guide > 1.0 else (down if guide < 1.0 else cur)
    return p, ready_ok


# ---------------------------------------------------------------------------------------- wrapper
_PACKED: dict[int, tuple] = {}


def _rules(rules) -> np.ndarray:
    return np.ascontiguousarray(np.vstack([rules.types.astype(np.float64), rules.values, rules.periods_s])
                                .reshape(3, -1))


def _pack(params: PolicyParams) -> tuple:
    """The policy's parameters as the kernel's arrays; made once per params object."""
    return per_params(_PACKED, params, lambda: _packed(params))


def _packed(params: PolicyParams) -> tuple:
    scal = np.zeros(_P_SIZE)
    scal[_P_STALE] = params.stale_after_s
    scal[_P_TOL_UP], scal[_P_TOL_DOWN] = params.tolerance_up, params.tolerance_down
    scal[_P_SMOOTHING], scal[_P_WINDOW] = int(params.smoothing), params.window_s
    scal[_P_MIN], scal[_P_MAX], scal[_P_LEGACY] = params.min_replicas, params.max_replicas, params.legacy
    scal[_P_FALLBACK] = np.nan if params.fallback_replicas is None else params.fallback_replicas
    scal[_P_HOLD] = params.missing_hold_s
    scal[_P_UP_WIN], scal[_P_DOWN_WIN] = params.scale_up.window_s, params.scale_down.window_s
    scal[_P_UP_SEL], scal[_P_DOWN_SEL] = int(params.scale_up.select), int(params.scale_down.select)
    scal[_P_UP_LONGEST], scal[_P_DOWN_LONGEST] = params.scale_up.longest_period_s, params.scale_down.longest_period_s
    scal[_P_FACTOR], scal[_P_MINIMUM] = params.scale_up_limit_factor, params.scale_up_limit_minimum
    scal[_P_DOWN_MIN_STEP] = params.scale_down_min_step
    scal[_P_DOWN_LINEAR] = float(params.scale_down_linear_release)
    scal[_P_INTERVAL] = params.interval_s
    scal[_P_READ_WINDOW] = params.read_window_s
    metric = np.ascontiguousarray(np.vstack([params.metric_kinds.astype(np.float64), params.metric_targets,
                                             params.metric_nonnegative.astype(np.float64),
                                             params.metric_capacities, params.metric_saturation,
                                             params.metric_implausible_above]).reshape(6, -1))
    return scal, metric, _rules(params.scale_up), _rules(params.scale_down)
