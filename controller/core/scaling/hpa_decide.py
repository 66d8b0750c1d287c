"""The ``hpa`` preset's decision in one compiled call per cycle, in the common case (numba).

``decide`` runs the preset as stages, each a compiled kernel with numpy glue between them:
the signal (core/scaling/signal_compiled.py), HPA's calculator on the pods where the cluster
keeps them (hpa_propose -> hpa_compiled._padded_utilization_kernel), the proposals' validity,
and the normalize stage with its reason codes (hpa_normalize._normalize_legacy_kernel). The
glue cost about as much as the kernels for 1,000 targets (argument conversions, per-target
term arrays, result objects). :func:`try_decide` makes one call of :func:`_decide_padded_kernel`,
which runs the same kernels one after the other inside numba, and builds the stages' results
from its outputs: the same arrays (``tests/core/test_hpa_decide.py`` compares every output and
state array with the numpy stages, the reference, on generated cycles).

The common case (:func:`covers`): the preset without ``behavior``, no smoothing, forecast or
ramp, one Utilization metric read per pod from pods in the cluster's padded layout
(``PaddedPods``, the simulator's). Anything else (and the kernels off: ``SETPOINT_COMPILED=0``,
no numba, with compiled.enabled()'s one warning) returns None: ``decide`` runs the stages.
HPA's status conditions are made from the decision in the shell (runtime/conditions.py), only
where a cycle reports them.
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled, hpa_compiled, hpa_normalize, hpa_propose, signal_compiled
from controller.core.scaling.compiled import jit
from controller.core.scaling.hpa_propose import HpaProposals, JoinedPodSamples, PaddedPods
from controller.core.scaling.normalize import NormResult, NormState
from controller.core.scaling.params import MetricKind, PolicyParams, Smoothing
from controller.core.scaling.signal import Signal

_INT64_BOUND = 2.0**63  # |current| below it converts to int64 as numpy's cast does


def covers(params: PolicyParams, obs) -> bool:
    """One call decides this cycle: the kernels on, the ``hpa`` preset without ``behavior`` and
    without smoothing, forecast or ramp, its one metric a Utilization metric whose pods
    ``obs.pods`` holds where the cluster keeps them (column 0 of a PaddedPods)."""
    if not (compiled.enabled() and _covered(params)):
        return False
    pods = obs.pods
    return isinstance(pods, JoinedPodSamples) and isinstance(pods.listed, PaddedPods) and pods.listed.column == 0


_COVERED: dict[int, tuple] = {}  # _covered's answers (compiled.per_params)


def _covered(params: PolicyParams) -> bool:
    """:func:`_policy_covered`, answered once per (frozen) params."""
    return compiled.per_params(_COVERED, params, lambda: _policy_covered(params), limit=_TERMS_KEPT)


def _policy_covered(params: PolicyParams) -> bool:
    """The policy half of :func:`covers`: the preset without ``behavior``, smoothing, forecast or
    ramp, its one metric a Utilization metric read per pod."""
    if not (hpa_normalize.supports(params) and params.smoothing == Smoothing.NONE and not params.forecast_metrics
            and not params.ramp_metrics and len(params.metrics) == 1):
        return False
    m = params.metrics[0]
    return m.kind == MetricKind.UTILIZATION and m.per_pod


@jit
def _decide_padded_kernel(values, present, age, stale_after_s, checked, above, clean, missing, stale, nonfinite,
                          negative, implausible, usable, rows, exists, ends, phase, start_time, transition_time, empty,
                          pending_code, ready_code, pod_values, pod_ages, pod_now, request_milli, window_s, n_stray,
                          target_util, tol_down, tol_up, cpu_rules, cpu_period_s, readiness_delay_s, current,
                          proposals, valid, old_v, old_t, rec_v, rec_t, copy, missing_since, now, lo, hi,
                          down_window_s, factor, minimum, combined_out, proposal_out, stabilized_out, desired_out,
                          limit_out, reason_out, active_out, calculator_out):
    """The ``hpa`` preset's cycle for N targets and its one metric: signal (_one_metric_signal;
    outputs (N, 1): clean values and the six masks), calculator (pods in the padded layout: see
    hpa_compiled._padded_utilization_kernel), proposals (N, 1) float64 (NaN where not valid) and
    valid (N, 1) bool, then normalize (hpa_normalize._normalize_legacy_kernel: the history and
    missing_since written, its (N,) outputs). current (N,) float64. The calculator's replicas,
    utilization, raw average and error code go into the rows of ``calculator_out`` (4, N) int64
    (written here, not returned: returned arrays are boxed one by one). Returns (done, targets
    in error); done False (nothing of the state written) where the stages would leave the
    kernels: a count of current replicas that is not an int64, or the calculator's sums could
    leave int64."""
    n = current.shape[0]
    declined = (False, 0)
    cur = np.empty(n, np.int64)
    for i in range(n):
        if not abs(current[i]) < _INT64_BOUND:  # NaN too
            return declined
        cur[i] = np.int64(current[i])
    _one_metric_signal(values, present, age, stale_after_s, checked, above, clean, missing, stale, nonfinite,
                       negative, implausible, usable)
    replicas, utilization, average, error, top, errors, largest, p = hpa_compiled._padded_utilization_kernel(
        rows, exists, ends, phase, start_time, transition_time, empty, pending_code, ready_code, pod_values, pod_ages,
        pod_now, request_milli, window_s, n_stray, cur, target_util, tol_down, tol_up, cpu_rules, cpu_period_s,
        readiness_delay_s)
    if not hpa_compiled.pass_fits(p, largest, top):
        return declined
    for i in range(n):  # a metric read per pod is valid where the calculator found usable samples
        ok = error[i] == 0
        valid[i, 0] = ok
        proposals[i, 0] = float(replicas[i]) if ok else math.nan
        calculator_out[0, i], calculator_out[1, i] = replicas[i], utilization[i]
        calculator_out[2, i], calculator_out[3, i] = average[i], error[i]
    hpa_normalize._normalize_legacy_kernel(current, proposals, valid, old_v, old_t, rec_v, rec_t, copy,
                                           missing_since, now, lo, hi, down_window_s, factor, minimum, combined_out,
                                           proposal_out, stabilized_out, desired_out, limit_out, reason_out,
                                           active_out)
    return True, errors


@compiled.jit_inline
def _one_metric_signal(values, present, age, stale_after_s, checked, above, clean, missing, stale, nonfinite, negative,
                       implausible, usable):
    """signal_compiled._signal_kernel for the one metric of the preset ((N, 1) arrays, (1,)
    bounds): the same flags per sample (sample_flags), with the column fixed. The general
    kernel's loop over an unknown number of metrics cost ~9 us for 1,000 targets; this one ~2."""
    checked0, above0 = checked[0], above[0]
    for i in range(values.shape[0]):
        x, pr = values[i, 0], present[i, 0]
        nf, st, ng, ip, us = signal_compiled.sample_flags(x, pr, age[i, 0], stale_after_s, checked0, above0)
        missing[i, 0], stale[i, 0], nonfinite[i, 0], negative[i, 0] = not pr, st, nf, ng
        implausible[i, 0], usable[i, 0] = ip, us
        clean[i, 0] = x if us else math.nan


class OneCallOutputs:
    """The one call's output arrays for N targets and the results made of them (the signal, the
    normalize result): made for the first call of each N, then written by every call. Kept by a
    caller that reads each decision before the next (ScalingMemory without copies: the arrays
    of a decision are overwritten by the next one); a new one per call otherwise."""

    def __init__(self):
        self.n = -1
        self._history: hpa_normalize.KernelHistory | None = None  # history_of's last in-place history

    def sized(self, n: int) -> "OneCallOutputs":
        """These outputs for ``n`` targets (made again for another n)."""
        if n != self.n:
            self.clean, masks = signal_compiled.kernel_outputs((n, 1))
            self.masks = tuple(masks)  # the six (N, 1) views, made once (not unpacked from the array per call)
            self.proposals, self.valid = np.empty((n, 1)), np.empty((n, 1), np.bool_)
            self.outputs = hpa_normalize.kernel_outputs(n)
            self.calculator = np.empty((4, n), np.int64)  # replicas, utilization, raw average, error code
            self.calculator_rows = tuple(self.calculator)
            self.calculator_columns = tuple(row.reshape(n, 1) for row in self.calculator_rows)  # HpaProposals' (N, 1)
            self.signal, self.result = Signal(self.clean, *self.masks), hpa_normalize.kernel_result(self.outputs)
            self.error_free = hpa_propose.error_free(self.calculator_columns)  # a cycle without an error: these
            self.n = n
        return self

    def history_of(self, state: NormState, own_state: bool) -> hpa_normalize.KernelHistory:
        """hpa_normalize.kernel_history(state, own_state), the last one again when it updates the
        very arrays ``state`` holds in place and they are still writeable (a kept state's cycles:
        the same arrays every cycle; their dtype and order cannot change, only the flag)."""
        last = self._history
        if (own_state and last is not None and state.rec_values is last.rec_v and state.rec_times is last.rec_t
                and state.missing_since is last.missing_since and last.rec_v.flags.writeable
                and last.rec_t.flags.writeable and last.missing_since.flags.writeable):
            return last
        history = hpa_normalize.kernel_history(state, own_state)
        self._history = history if history.in_place else None
        return history


def try_decide(params: PolicyParams, obs, state: NormState, now: float, own_state: bool = False,
               kept: OneCallOutputs | None = None
               ) -> tuple[Signal, np.ndarray, np.ndarray, HpaProposals, NormResult, NormState] | None:
    """The ``hpa`` preset's stages for ``obs`` (a decide.Observation) in one compiled call:
    (signal, proposals (N, 1) NaN where not valid, valid (N, 1), the calculator's result, the
    normalize result, the normalize state after it), the arrays the stages give; None when
    :func:`covers` says no or the kernel declines: then run the stages. ``own_state``: the
    caller gives ``state`` up, its history is updated in place (hpa_normalize.try_normalize's
    ``in_place``); a decline leaves it untouched. ``kept``: the output arrays to write (reused
    from call to call: see OneCallOutputs), else new ones."""
    if not covers(params, obs):
        return None
    current = np.ascontiguousarray(obs.current, dtype=np.float64)
    n = current.shape[0]
    terms, stale_after_s, calculator, normalize, bounds = _policy_terms(params, n)
    inputs = _column_inputs(obs.values, obs.present, obs.sample_age_s, n, bounds)
    if inputs is None or inputs[0].shape != (n, 1):
        return None
    padded = obs.pods.listed
    slots = padded.slots
    out = (OneCallOutputs() if kept is None else kept).sized(n)
    clean, masks, proposals, valid, outputs = out.clean, out.masks, out.proposals, out.valid, out.outputs
    history = out.history_of(state, own_state) if kept is not None else hpa_normalize.kernel_history(state, own_state)
    try:
        done, errors = _decide_padded_kernel(
            *inputs[:3], stale_after_s, *inputs[3:], clean, *masks,
            slots.rows, slots.exists, slots.ends, slots.phase, slots.start_time, slots.transition_time,
            int(slots.empty), int(slots.pending_code), int(slots.ready_code), padded.values, padded.ages,
            float(padded.now), int(padded.request_milli), float(padded.window_s), *calculator,
            current, proposals, valid, *history.arguments(), float(now), *normalize, *outputs, out.calculator)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    if not done:
        return None
    if errors:  # error texts by target
        proposal = hpa_compiled.pass_proposal(*out.calculator_rows, errors, terms["resource"], terms["container"])
        hpa = hpa_propose.proposals_of([proposal], n)
    else:  # most cycles: proposals_of's arrays, as columns, and the shared empty texts (made once per size)
        hpa = out.error_free
    return out.signal, proposals, valid, hpa, out.result, history.state_of(state)


_F64, _BOOL = np.dtype(np.float64), np.dtype(np.bool_)


def _column_inputs(values, present, age, n: int, bounds: tuple[np.ndarray, np.ndarray] | None) -> tuple | None:
    """signal_compiled.kernel_inputs(values, present, age, bounds=bounds) for the one metric's
    (n, 1) columns: the read's own arrays as they are when they are already what the kernel takes
    (the common cycle, without the conversions and checks of the general case), else that call."""
    if (bounds is not None and type(values) is np.ndarray and type(present) is np.ndarray and type(age) is np.ndarray
            and values.shape == (n, 1) and present.shape == (n, 1) and age.shape == (n, 1) and values.dtype == _F64
            and present.dtype == _BOOL):
        return values, present, age, *bounds
    return signal_compiled.kernel_inputs(values, present, age, bounds=bounds)


_TERMS: dict[int, tuple] = {}  # _policy_terms' answers (compiled.per_params)
_TERMS_KEPT = 16  # policies remembered (a run has one or two; edited policies replace them)


def _policy_terms(params: PolicyParams, n: int) -> tuple:
    """What the kernel reads of ``params`` for n targets, made once per (frozen) params and n:
    (the calculator's terms by name (hpa_propose.utilization_terms), stale_after_s, the
    calculator's arguments (pass_terms' five (n,) arrays, the cpu initialization period and the
    readiness delay), normalize's numbers (hpa_normalize.kernel_params), the signal stage's
    bounds (signal_compiled.signal_bounds))."""
    return compiled.per_params(_TERMS, params, lambda: _made_terms(params, n), key=n, limit=_TERMS_KEPT)


def _made_terms(params: PolicyParams, n: int) -> tuple:
    terms = hpa_propose.utilization_terms(params, params.metrics[0])
    calculator = (*hpa_compiled.pass_terms(n, terms["target_utilization"], terms["tolerance_down"],
                                           terms["tolerance_up"], terms["cpu_rules"]),
                  float(terms["cpu_initialization_period_s"]), float(terms["initial_readiness_delay_s"]))
    return (terms, float(params.stale_after_s), calculator, hpa_normalize.kernel_params(params),
            signal_compiled.signal_bounds(1, params.metric_nonnegative, params.metric_implausible_above))
