"""HPA's Resource Utilization replica calculator as one compiled pass over the pods (numba).

``resource_utilization_replicas`` computes what :func:`hpa_replicas.resource_utilization_replicas`
(the reference, numpy) computes, for the same inputs and with the same result: one loop over
the P pods accumulates each target's counts and exact int64 sums (``groupPods``,
``calculateRequests``, the missing and unready pods' additions of the slow path), then one loop
over the N targets applies the checks in upstream's order and both paths of the ratio. The
numpy version costs a few dozen array calls per cycle whatever N is; this one a few
microseconds plus a pass over the pods. ``tests/core/test_hpa_compiled.py`` checks both give
identical proposals on the conformance cases and on generated pod sets.

Falls back to the reference (returns None from :func:`try_resource_utilization_replicas`) when the kernels are
off (``SETPOINT_COMPILED=0``, no numba; see :mod:`controller.core.scaling.compiled`) or when a
sum could leave int64 (the reference switches to Python integers there).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.compiled import jit

_INT32_MAX, _INT32_MIN = hr.INT32_MAX, hr.INT32_MIN
_ZERO_AGE = hr.ZERO_TIME_AGE_S
_FLOAT_MAX = float(np.finfo(np.float64).max)
_FAILED, _PENDING, _SUCCEEDED = int(hr.Phase.FAILED), int(hr.Phase.PENDING), int(hr.Phase.SUCCEEDED)
_R_NONE, _R_FALSE = int(hr.Readiness.NONE), int(hr.Readiness.FALSE)
_E_NONE, _E_NO_METRICS, _E_NO_PODS = int(hr.HpaError.NONE), int(hr.HpaError.NO_RESOURCE_METRICS), int(hr.HpaError.NO_PODS)
_E_NO_USABLE, _E_NO_MATCHED = int(hr.HpaError.NO_USABLE_SAMPLES), int(hr.HpaError.NO_MATCHED_REQUESTS)
_E_CONTAINER, _E_REQUEST = int(hr.HpaError.CONTAINER_NOT_FOUND), int(hr.HpaError.MISSING_REQUEST)
#: Largest |sum| the kernel accepts: x 100 (utilization percent) still fits int64.
_SUM_LIMIT = 2**55


@jit
def _finite_age(x):
    """np.nan_to_num(x, nan=ZERO_TIME_AGE_S) on a scalar (infinities become the largest floats)."""
    if x != x:
        return _ZERO_AGE
    if x == math.inf:
        return _FLOAT_MAX
    if x == -math.inf:
        return -_FLOAT_MAX
    return x


@jit
def _trunc_div(a, b):
    """hr.trunc_div on scalars: Go's division, b == 0 treated as 1."""
    if b == 0:
        b = 1
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


@jit
def _clamp32(v):
    return _INT32_MAX if v > _INT32_MAX else (_INT32_MIN if v < _INT32_MIN else v)


@jit
def _ceil32(x):
    """hr.ceil_to_int32 on a scalar."""
    if x != x:
        return 0
    c = np.ceil(x)
    if c > _INT32_MAX:
        return _INT32_MAX
    if c < _INT32_MIN:
        return _INT32_MIN
    return int(c)


@jit
def _utilization_kernel(target, phase, ready, deleted, start_age, transition_age, request, has_request,
                        has_container, usage, has_sample, metric_age, metric_window, n_stray, current, target_util,
                        tol_down, tol_up, cpu_rules, cpu_period_s, readiness_delay_s, succeeded_is_terminal,
                        named_container):
    """Returns (replicas, utilization, raw average, error code, first bad pod) per target, (N,) int64."""
    n, p = current.shape[0], target.shape[0]
    sums = np.zeros((_N_SUMS, n), np.int64)
    first_bad = np.full(n, p, np.int64)
    bad_code = np.zeros(n, np.int64)
    for k in range(p):
        t = target[k]
        sums[_LISTED, t] += 1
        if has_sample[k]:
            sums[_SAMPLED, t] += 1
        code = _E_NONE
        if named_container and not has_container[k]:
            code = _E_CONTAINER
        elif not has_request[k]:
            code = _E_REQUEST
        if code != _E_NONE and k < first_bad[t]:
            first_bad[t] = k
            bad_code[t] = code
        # groupPods (np.select order: ignored, pending, missing, cpu-unready, ready)
        ph = phase[k]
        if deleted[k] or ph == _FAILED or (succeeded_is_terminal and ph == _SUCCEEDED):
            continue
        if ph == _PENDING:
            _add_unready(sums, t, request[k])
        elif not has_sample[k]:
            _add_missing(sums, t, request[k], target_util[t])
        elif cpu_rules[t] and _cpu_unready(ready[k] == _R_NONE, ready[k] == _R_FALSE, start_age[k], transition_age[k],
                                           metric_age[k], metric_window[k], cpu_period_s, readiness_delay_s):
            _add_unready(sums, t, request[k])
        else:
            _add_ready(sums, t, usage[k], request[k])
    replicas, utilization, average, error = _proposals_from_sums(sums, bad_code, n_stray, current, target_util,
                                                                 tol_down, tol_up)
    return replicas, utilization, average, error, first_bad


# rows of the per-target counts and sums (N,) that the pod passes fill and _proposals_from_sums reads
(_LISTED, _SAMPLED, _READY, _MISSING, _UNREADY, _USAGE, _REQUEST, _MISSING_USAGE, _MISSING_REQUEST,
 _UNREADY_REQUEST, _N_SUMS) = range(11)


@jit
def _cpu_unready(no_condition, is_false, start_age, transition_age, metric_age, window_s, period_s, delay_s):
    """groupPods' cpu-only readiness rule for one sampled pod (ages in s; the transition's and the
    metric's as the table holds them, made finite by _finite_age here, NaN read as Go's zero time).

    The two ages are made finite only on the branch that reads them: most pods are Ready and
    started long ago, and the rule then looks at the start age alone (computing both ages first
    cost about a third of _listed_utilization_kernel's pass)."""
    if no_condition or start_age != start_age:
        return True
    if start_age < period_s:  # startTime + period is after now
        return is_false or (_finite_age(transition_age) - _finite_age(metric_age) < window_s)
    return is_false and (start_age - _finite_age(transition_age) < delay_s)


@jit
def _add_unready(sums, t, request):
    sums[_UNREADY, t] += 1
    sums[_UNREADY_REQUEST, t] += request


@jit
def _add_missing(sums, t, request, target_util):
    """A pod without a sample: counted at max(100, target)% of its request below target."""
    sums[_MISSING, t] += 1
    sums[_MISSING_REQUEST, t] += request
    sums[_MISSING_USAGE, t] += _missing_usage(request, target_util)


@jit
def _missing_usage(request, target_util):
    """What a pod without a sample counts for: max(100, target)% of its request."""
    return _trunc_div(request * (target_util if target_util > 100 else 100), 100)


@jit
def _add_ready(sums, t, usage, request):
    sums[_READY, t] += 1
    sums[_USAGE, t] += usage
    sums[_REQUEST, t] += request


@jit
def _proposals_from_sums(sums, bad_code, n_stray, current, target_util, tol_down, tol_up):
    """The per-target half of the calculator, from the pods' counts and sums ((_N_SUMS, N): see
    _utilization_kernel): _target_proposal per target.
    Returns (replicas, utilization, raw average, error code), (N,) int64 each."""
    n = current.shape[0]
    replicas = np.zeros(n, np.int64)
    utilization = np.zeros(n, np.int64)
    average = np.zeros(n, np.int64)
    error = np.zeros(n, np.int64)
    for i in range(n):
        error[i], replicas[i], utilization[i], average[i] = _target_proposal(
            sums[_LISTED, i], sums[_SAMPLED, i], sums[_READY, i], sums[_MISSING, i], sums[_UNREADY, i],
            sums[_USAGE, i], sums[_REQUEST, i], sums[_MISSING_USAGE, i], sums[_MISSING_REQUEST, i],
            sums[_UNREADY_REQUEST, i], bad_code[i], n_stray[i], current[i], target_util[i], tol_down[i], tol_up[i])
    return replicas, utilization, average, error


@compiled.jit_inline
def _target_proposal(listed, sampled, n_ready, n_missing, n_unready, usage_sum, request_sum, missing_usage,
                     missing_request, unready_request, bad_code, n_stray, cur, target_util, tol_down, tol_up):
    """One target's calculator from its pods' counts and int64 sums: upstream's checks in its
    order, then both paths of the ratio. Returns (error code, replicas, utilization, raw
    average), the last three 0 with an error."""
    error = _E_NONE
    if sampled + n_stray == 0:
        error = _E_NO_METRICS
    elif listed == 0:
        error = _E_NO_PODS
    elif n_ready + n_stray == 0:
        error = _E_NO_USABLE
    elif bad_code != _E_NONE:
        error = bad_code
    elif request_sum == 0:
        error = _E_NO_MATCHED
    if error != _E_NONE:
        return error, 0, 0, 0
    util = _clamp32(_trunc_div(usage_sum * 100, request_sum))
    ratio = float(util) / float(target_util)
    if not (n_unready > 0 and ratio > 1.0) and n_missing == 0:
        r = cur if compiled.within(ratio, tol_up, tol_down) else _ceil32(ratio * n_ready)
    else:
        new_usage, new_request, samples = usage_sum, request_sum, n_ready + n_stray
        if ratio != 1.0:
            new_request += missing_request
            samples += n_missing
            if ratio < 1.0:
                new_usage += missing_usage
        if n_unready > 0 and ratio > 1.0:
            new_request += unready_request
            samples += n_unready
        new_ratio = float(_clamp32(_trunc_div(new_usage * 100, new_request))) / float(target_util)
        flipped = (ratio < 1.0 and new_ratio > 1.0) or (ratio > 1.0 and new_ratio < 1.0)
        proposal = _ceil32(new_ratio * samples)
        wrong_way = (new_ratio < 1.0 and proposal > cur) or (new_ratio > 1.0 and proposal < cur)
        r = cur if compiled.within(new_ratio, tol_up, tol_down) or flipped or wrong_way else proposal
    return _E_NONE, r, util, _trunc_div(usage_sum, n_ready)


def _per_target(values, n: int, dtype) -> np.ndarray:
    """(n,) ``values`` of ``dtype`` as the kernels take them (read only, never written)."""
    if isinstance(values, (int, float, np.generic)):  # one value for every target (the policy's): made once
        return _same_for_all(values, n, np.dtype(dtype))
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=dtype), (n,)))


@functools.lru_cache(maxsize=32)
def _same_for_all(value, n: int, dtype: np.dtype) -> np.ndarray:
    """(n,) ``value`` of ``dtype``, shared by the calls that ask for it (the kernels only read it)."""
    return np.full(n, value, dtype=dtype)


def _no_stray_counts(n: int) -> np.ndarray:
    """(n,) int64 zeros, no stray sample per target, shared (the kernels only read it)."""
    return _same_for_all(0, n, _INT64)


_INT64 = np.dtype(np.int64)


@jit
def _abs_max(a, b):
    """max(np.abs(a).max(), np.abs(b).max()) of non-empty int64 arrays in one pass (abs of the
    int64 minimum wraps to itself in both)."""
    m = abs(a[0])
    for k in range(a.shape[0]):
        m = max(m, abs(a[k]))
    for k in range(b.shape[0]):
        m = max(m, abs(b[k]))
    return m


def _sums_fit(pods: hr.PodTable, target_utilization: np.ndarray) -> bool:
    """Every sum the kernel forms (x 100) stays inside int64, as the reference's int64 path."""
    if pods.size == 0:
        return True
    bound = pods.size * int(_abs_max(pods.usage_milli, pods.request_milli))
    return bound * max(100, int(target_utilization.max(initial=0))) < _SUM_LIMIT


def try_resource_utilization_replicas(pods: hr.PodTable, strays: hr.StraySamples, current, target_utilization,
                                      tolerance_down, tolerance_up, *, cpu_rules=True,
                                      cpu_initialization_period_s: float = 300.0,
                                      initial_readiness_delay_s: float = 30.0, resource: str = "cpu",
                                      container: str = "",
                                      succeeded_is_terminal: bool = False) -> hr.ReplicaProposal | None:
    """:func:`hpa_replicas.resource_utilization_replicas` compiled (same arguments, same
    result), or None when the kernels are off or the sums could leave int64: then call the
    reference."""
    if not compiled.enabled():
        return None
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    n = current.size
    target_util = _per_target(target_utilization, n, np.int64)
    try:
        if not _sums_fit(pods, target_util):
            return None
        n_stray = np.bincount(strays.target, minlength=n).astype(np.int64)
        replicas, utilization, average, error, first_bad = _utilization_kernel(
            pods.target, pods.phase, pods.ready, pods.deleted, pods.start_age_s, pods.ready_transition_age_s,
            pods.request_milli, pods.has_request, pods.has_container, pods.usage_milli, pods.has_sample,
            pods.metric_age_s, pods.metric_window_s, n_stray, current, target_util,
            _per_target(tolerance_down, n, np.float64), _per_target(tolerance_up, n, np.float64),
            _per_target(cpu_rules, n, np.bool_), float(cpu_initialization_period_s),
            float(initial_readiness_delay_s), bool(succeeded_is_terminal), bool(container))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None

    def pod_name(i: int) -> str:
        return pods.name(int(first_bad[i])) if first_bad[i] < pods.size else ""

    messages = hr._messages(error, resource=resource, container=container or "(all)", pod=pod_name)
    return hr.ReplicaProposal(replicas=replicas, utilization=utilization, usage_milli=average, error=error,
                              error_message=messages)



@jit
def _subsequence_rows(uid, want, out):
    i, n = 0, uid.shape[0]
    for k in range(want.shape[0]):
        w = want[k]
        while i < n and uid[i] != w:
            i += 1
        if i == n:
            return False
        out[k] = i
        i += 1
    return True


def try_subsequence_rows(uid: np.ndarray, want: np.ndarray) -> np.ndarray | None:
    """The position in ``uid`` (P,) int64 of each of ``want`` (K,) int64 when ``want`` is a
    subsequence of ``uid`` (samples listed in the pods' order, as the simulator lists them): one
    pass, O(P + K), for the per-pod join of pods and their samples. None when it is not one, or
    when the kernels are off: then join by sorting. ``uid`` holds unique values."""
    if not compiled.enabled():
        return None
    out = np.empty(want.size, dtype=np.int64)
    try:
        found = _subsequence_rows(uid, want, out)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return out if found else None


_INT64_EDGE = 9.2e18  # hpa_propose._INT64_EDGE: the largest milli value that converts without wrapping


@compiled.jit_inline
def _milli(x):
    """hpa_propose.to_milli on a scalar: x * 1000 rounded half to even, NaN -> 0, clipped to int64."""
    y = x * 1000.0
    if y != y:
        return 0
    if y > _INT64_EDGE:
        y = _INT64_EDGE
    elif y < -_INT64_EDGE:
        y = -_INT64_EDGE
    return np.int64(np.rint(y))


@compiled.jit_inline
def milli(x):
    """:func:`_milli` for the kernels of other modules (a sample as the pod table holds it)."""
    return _milli(x)


@jit
def _join_kernel(rows, values, ages, usage, has, age):
    for k in range(rows.shape[0]):
        r, v = rows[k], values[k]
        if r >= 0 and math.isfinite(v):
            usage[r] = _milli(v)
            has[r] = True
            age[r] = ages[k]


def try_join_samples(rows: np.ndarray, values: np.ndarray, ages: np.ndarray, usage: np.ndarray, has: np.ndarray,
                     age: np.ndarray) -> bool:
    """Per-pod samples (K,) into their pods' rows, in place: where ``rows[k] >= 0`` and the value
    is finite, usage[row] = to_milli(value), has[row] = True, age[row] = ages[k] (usage, has: a
    metric's (P,) columns; age (P,)); a later sample of the same row wins, as numpy's fancy
    assignment. False (nothing written) when the kernels are off: then join with numpy."""
    if not compiled.enabled():
        return False
    try:
        _join_kernel(np.asarray(rows, np.int64), np.asarray(values, np.float64), np.asarray(ages, np.float64),
                     usage, has, age)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return False
    return True


@jit
def _means_kernel(target, usage, has, values, present):
    n = values.shape[0]
    count = np.zeros(n, np.int64)
    total = np.zeros(n)
    for k in range(target.shape[0]):  # in pod order, as np.bincount adds its weights
        if has[k]:
            t = target[k]
            count[t] += 1
            total[t] += usage[k] / 1000.0
    for i in range(n):
        present[i] = count[i] > 0
        values[i] = total[i] / count[i] if count[i] > 0 else math.nan


def try_pod_means(target: np.ndarray, usage_milli: np.ndarray, has_sample: np.ndarray,
                  n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean of each target's samples in the metric's unit (n,) NaN where none, has one (n,)) from
    the pods' targets (P,), samples in milli-units (P,) and whether each pod has one (P,); None
    when the kernels are off (pod_samples.workload_summary's numpy then)."""
    if not compiled.enabled():
        return None
    values, present = np.empty(n), np.empty(n, np.bool_)
    try:
        _means_kernel(np.asarray(target, np.int64), usage_milli, has_sample, values, present)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return values, present


_RUNNING, _R_TRUE = int(hr.Phase.RUNNING), int(hr.Readiness.TRUE)


def try_listed_pod_table(target: np.ndarray, names, pending: np.ndarray, ready: np.ndarray, start_time: np.ndarray,
                         transition_time: np.ndarray, now: float, request_milli: int,
                         window_s: float) -> hr.PodTable | None:
    """The pod table of listed pods (a PodView's arrays, (P,) each: target int64, pending and
    ready bool, start and Ready-transition times epoch s, NaN unset) in one pass: phase Pending
    or Running, readiness True or False, ages at ``now`` (an unset transition is Go's zero time),
    not deleted, every pod requesting ``request_milli`` with no sample yet, a sample age of 0 over
    ``window_s``. What ``pod_samples.table_of`` builds with numpy (the reference); None when the
    kernels are off. The sampled table's kernel with no samples (one kernel for both)."""
    p = len(pending)
    got = try_sampled_pod_table(target, names, pending, ready, start_time, transition_time, np.full(p, np.nan),
                                np.zeros(p), now, request_milli, window_s)
    return None if got is None else got[0]


@jit
def _sampled_table_kernel(pending, ready, start_time, transition_time, values, ages, now, request_milli, window_s):
    p = pending.shape[0]
    phase, readiness = np.empty(p, np.int64), np.empty(p, np.int64)
    start_age, transition_age = np.empty(p), np.empty(p)
    request, window = np.empty(p, np.int64), np.empty(p)
    usage, has, metric_age = np.zeros(p, np.int64), np.zeros(p, np.bool_), np.zeros(p)
    for k in range(p):
        phase[k] = _PENDING if pending[k] else _RUNNING
        readiness[k] = _R_TRUE if ready[k] else _R_FALSE
        start_age[k] = now - start_time[k]
        t = transition_time[k]
        transition_age[k] = _ZERO_AGE if t != t else now - t
        request[k] = request_milli
        window[k] = window_s
        v = values[k]
        if math.isfinite(v):
            usage[k] = _milli(v)
            has[k] = True
            metric_age[k] = ages[k]
    return (phase, readiness, np.zeros(p, np.bool_), start_age, transition_age, request, np.ones(p, np.bool_),
            np.ones(p, np.bool_), np.zeros(p, np.int64), np.zeros(p, np.bool_), metric_age, window, usage, has)


def try_sampled_pod_table(target: np.ndarray, names, pending: np.ndarray, ready: np.ndarray, start_time: np.ndarray,
                          transition_time: np.ndarray, values: np.ndarray, ages: np.ndarray, now: float,
                          request_milli: int, window_s: float) -> tuple[hr.PodTable, np.ndarray, np.ndarray] | None:
    """:func:`try_listed_pod_table` with one metric's per-pod samples joined in the same pass:
    ``values`` (P,) the pod's sample in the metric's unit (NaN: none), ``ages`` (P,) its age.
    Returns (the table, its metric ages those of the samples (0 without) over ``window_s``;
    usage in milli-units (P,) int64, 0 without a sample; has a sample (P,) bool), as the listed
    table joined with ``try_join_samples`` gives them; None when the kernels are off."""
    if not compiled.enabled():
        return None
    try:
        (phase, readiness, deleted, start_age, transition_age, request, has_request, has_container, table_usage,
         table_has, metric_age, window, usage, has) = _sampled_table_kernel(
            np.asarray(pending, np.bool_), np.asarray(ready, np.bool_), np.asarray(start_time, np.float64),
            np.asarray(transition_time, np.float64), np.asarray(values, np.float64), np.asarray(ages, np.float64),
            float(now), int(request_milli), float(window_s))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    table = hr.PodTable(target=target, phase=phase, ready=readiness, deleted=deleted, start_age_s=start_age,
                        ready_transition_age_s=transition_age, request_milli=request, has_request=has_request,
                        has_container=has_container, usage_milli=table_usage, has_sample=table_has,
                        metric_age_s=metric_age, metric_window_s=window, names=hr.table_names(names))
    return table, usage, has


@jit
def _listed_utilization_kernel(target, pending, ready, start_time, transition_time, values, ages, now, request_milli,
                               window_s, n_stray, current, target_util, tol_down, tol_up, cpu_rules, cpu_period_s,
                               readiness_delay_s):
    """_utilization_kernel on listed pods with one metric's samples joined (``ListedPods``),
    without building their pod table: each pod's table row is what _sampled_table_kernel makes
    of it (Pending or Running, Ready True or False, not deleted, ``request_milli`` requested,
    no container named; a sample where its value is finite), read as _utilization_kernel reads
    it. Returns (replicas, utilization, raw average, error code (N,) int64, the largest |milli
    value| of the pods' usages and request and the largest target utilization (0 without a
    target), for the caller's int64 check, the number of targets with an error, the number of
    pods)."""
    n, p = current.shape[0], target.shape[0]
    sums = np.zeros((_N_SUMS, n), np.int64)
    largest = abs(request_milli)
    for k in range(p):
        t = target[k]
        sums[_LISTED, t] += 1
        v = values[k]
        has_sample = math.isfinite(v)
        usage = _milli(v) if has_sample else 0
        largest = max(largest, abs(usage))
        if has_sample:
            sums[_SAMPLED, t] += 1
        _add_listed_pod(sums, t, pending[k], ready[k], has_sample, usage, now - start_time[k], now - transition_time[k],
                        ages[k], request_milli, target_util[t], cpu_rules[t], window_s, cpu_period_s,
                        readiness_delay_s)
    return _listed_proposals(sums, n_stray, current, target_util, tol_down, tol_up) + (largest, p)


@jit
def _padded_utilization_kernel(rows, exists, ends, phase, start_time, transition_time, empty, pending_code,
                               ready_code, values, ages, now, request_milli, window_s, n_stray, current, target_util,
                               tol_down, tol_up, cpu_rules, cpu_period_s, readiness_delay_s):
    """_listed_utilization_kernel on pods in a padded per-row layout (``PaddedPods``), read where
    they sit: target a's pods are the slots of row ``rows[a]`` (of the (R, K) ``phase``,
    ``start_time``, ``transition_time``) before ``ends[row]`` whose phase is not ``empty``; a slot
    is Pending at ``pending_code``, Ready at ``ready_code``; every running pod of target a has
    the sample ``values[a]`` (NaN: none) of age ``ages[a]``. A target's pods share their request
    and sample, so each is only counted in its group (_padded_groups) and the target's sums are
    made from the counts (count x value: the int64 sums the listed pass adds pod by pod, in any
    order). One pass: each target's proposal (_padded_proposal) is made as soon as its pods are
    counted, without the (_N_SUMS, N) sums the listed pass keeps. Returns what
    _listed_utilization_kernel returns."""
    n = current.shape[0]
    replicas = np.zeros(n, np.int64)
    utilization = np.zeros(n, np.int64)
    average = np.zeros(n, np.int64)
    error = np.zeros(n, np.int64)
    largest = abs(request_milli)
    p, errors, top = 0, 0, 0
    for a in range(n):
        top = max(top, target_util[a])
        listed, pending, ready, missing, unready, with_sample, usage = 0, 0, 0, 0, 0, 0, 0
        if exists[a]:
            v = values[a]
            sampled = math.isfinite(v)
            usage = _milli(v) if sampled else 0
            listed, pending, ready, missing, unready = _padded_groups(
                rows[a], ends, phase, start_time, transition_time, empty, pending_code, ready_code, sampled, ages[a],
                now, cpu_rules[a], window_s, cpu_period_s, readiness_delay_s)
            with_sample = listed - pending if sampled else 0  # every running pod has the target's sample
            p += listed
            if with_sample:
                largest = max(largest, abs(usage))
        error[a], replicas[a], utilization[a], average[a] = _padded_proposal(
            listed, with_sample, ready, missing, unready, usage, request_milli, n_stray[a], current[a], target_util[a],
            tol_down[a], tol_up[a])
        if error[a] != _E_NONE:
            errors += 1
    return replicas, utilization, average, error, top, errors, largest, p


@compiled.jit_inline
def _padded_proposal(listed, with_sample, ready, missing, unready, usage, request_milli, n_stray, cur, target_util,
                     tol_down, tol_up):
    """_target_proposal of a target whose pods share ``usage`` and ``request_milli`` (the padded
    pass's counts). The common target (every counted pod ready, no stray sample, a request)
    takes the ratio's first path with one division: its sums are count x value, and
    trunc(ready x u x 100 / (ready x r)) = trunc(u x 100 / r), trunc(ready x u / ready) = u
    (exact integers; the caller's pass_fits bound keeps ready x u x 100 inside int64, and a pass
    that fails it is not used). Any other target: _target_proposal of the sums."""
    if missing == 0 and unready == 0 and ready > 0 and n_stray == 0 and request_milli != 0:
        util = _clamp32(_trunc_div(usage * 100, request_milli))
        ratio = float(util) / float(target_util)
        return _E_NONE, (cur if compiled.within(ratio, tol_up, tol_down) else _ceil32(ratio * ready)), util, usage
    return _target_proposal(listed, with_sample, ready, missing, unready, ready * usage, ready * request_milli,
                            missing * _missing_usage(request_milli, target_util), missing * request_milli,
                            unready * request_milli, _E_NONE, n_stray, cur, target_util, tol_down, tol_up)


@compiled.jit_inline
def _padded_groups(r, ends, phase, start_time, transition_time, empty, pending_code, ready_code, sampled, age, now,
                   cpu_rules, window_s, cpu_period_s, readiness_delay_s):
    """Row r's live pods counted in groupPods' groups, as _listed_group puts each (a Pending pod is
    unready, a running one missing without the target's sample): (listed, pending, ready, missing,
    unready, Pending pods included). The common pod, Ready and started at least ``cpu_period_s``
    ago, is ready without reading its other columns (the cpu rule then looks at its start alone)."""
    listed, pending, ready, missing, unready = 0, 0, 0, 0, 0
    for s in range(ends[r]):
        ph = phase[r, s]
        if ph == empty:
            continue
        listed += 1
        if ph == pending_code:
            pending += 1
        elif not sampled:
            missing += 1
        elif not cpu_rules:
            ready += 1
        else:
            start_age = now - start_time[r, s]
            is_ready = ph == ready_code
            if is_ready and start_age >= cpu_period_s:  # False for a NaN start: the rule below reads it unready
                ready += 1
            elif _listed_group(False, is_ready, True, start_age, now - transition_time[r, s], age, True, window_s,
                               cpu_period_s, readiness_delay_s) == _G_READY:
                ready += 1
            else:
                unready += 1
    return listed, pending, ready, missing, unready + pending


_G_UNREADY, _G_MISSING, _G_READY = 0, 1, 2  # groupPods' groups of a counted pod (ignored pods are not listed)


@compiled.jit_inline
def _listed_group(pending, ready, has_sample, start_age, transition_age, age, cpu_rules, window_s, cpu_period_s,
                  readiness_delay_s):
    """groupPods' group of one listed pod (its columns as scalars, ages at now: an unset
    transition's NaN is Go's zero time), _utilization_kernel's order of the tests."""
    if pending:
        return _G_UNREADY
    if not has_sample:
        return _G_MISSING
    if cpu_rules and _cpu_unready(False, not ready, start_age, transition_age, age, window_s, cpu_period_s,
                                  readiness_delay_s):
        return _G_UNREADY
    return _G_READY


@compiled.jit_inline
def _add_listed_pod(sums, t, pending, ready, has_sample, usage, start_age, transition_age, age, request_milli,
                    target_util, cpu_rules, window_s, cpu_period_s, readiness_delay_s):
    """One listed pod of target t into its counts and sums, in its group (_listed_group)."""
    g = _listed_group(pending, ready, has_sample, start_age, transition_age, age, cpu_rules, window_s, cpu_period_s,
                      readiness_delay_s)
    if g == _G_UNREADY:
        _add_unready(sums, t, request_milli)
    elif g == _G_MISSING:
        _add_missing(sums, t, request_milli, target_util)
    else:
        _add_ready(sums, t, usage, request_milli)


@jit
def _listed_proposals(sums, n_stray, current, target_util, tol_down, tol_up):
    """The listed passes' per-target half: (replicas, utilization, raw average, error code (N,)
    int64, the largest target utilization (0 without a target), the number of targets with an
    error). No listed pod lacks its request or container: no bad pod."""
    n = current.shape[0]
    replicas, utilization, average, error = _proposals_from_sums(sums, np.zeros(n, np.int64), n_stray, current,
                                                                 target_util, tol_down, tol_up)
    errors, top = 0, 0
    for i in range(n):
        if error[i] != _E_NONE:
            errors += 1
        top = max(top, target_util[i])
    return replicas, utilization, average, error, top, errors


def try_listed_utilization_replicas(listed, current, target_utilization, tolerance_down, tolerance_up, *,
                                    cpu_rules=True, cpu_initialization_period_s: float = 300.0,
                                    initial_readiness_delay_s: float = 30.0, resource: str = "cpu",
                                    container: str = "") -> hr.ReplicaProposal | None:
    """:func:`try_resource_utilization_replicas` of ``listed`` (hpa_propose.ListedPods: listed
    pods, one metric's samples joined, no stray sample) in one pass over the listed arrays,
    without their pod table: the same result as that function on the table
    ``try_sampled_pod_table`` builds of them. None when the kernels are off or the sums could
    leave int64: then build the table and call that function (or the reference)."""
    def run(*per_target):
        return _listed_utilization_kernel(listed.target, listed.pending, listed.ready, listed.start_time,
                                          listed.transition_time, listed.values, listed.ages, float(listed.now),
                                          int(listed.request_milli), float(listed.window_s), *per_target)
    return _utilization_of_pass(run, current, target_utilization, tolerance_down, tolerance_up, cpu_rules,
                                cpu_initialization_period_s, initial_readiness_delay_s, resource, container)


def try_padded_utilization_replicas(padded, current, target_utilization, tolerance_down, tolerance_up, *,
                                    cpu_rules=True, cpu_initialization_period_s: float = 300.0,
                                    initial_readiness_delay_s: float = 30.0, resource: str = "cpu",
                                    container: str = "") -> hr.ReplicaProposal | None:
    """:func:`try_listed_utilization_replicas` of pods in a padded per-row layout
    (hpa_propose.PaddedPods), read in place: the same result as on those pods listed (any
    order). None when the kernels are off or the sums could leave int64: then list them."""
    slots = padded.slots

    def run(*per_target):
        return _padded_utilization_kernel(slots.rows, slots.exists, slots.ends, slots.phase, slots.start_time,
                                          slots.transition_time, int(slots.empty), int(slots.pending_code),
                                          int(slots.ready_code), padded.values, padded.ages, float(padded.now),
                                          int(padded.request_milli), float(padded.window_s), *per_target)
    return _utilization_of_pass(run, current, target_utilization, tolerance_down, tolerance_up, cpu_rules,
                                cpu_initialization_period_s, initial_readiness_delay_s, resource, container)


def _utilization_of_pass(run, current, target_utilization, tolerance_down, tolerance_up, cpu_rules,
                         cpu_initialization_period_s: float, initial_readiness_delay_s: float, resource: str,
                         container: str) -> hr.ReplicaProposal | None:
    """The proposal of a listed pass ``run(n_stray, current, target_util, tol_down, tol_up,
    cpu_rules, cpu period, readiness delay)`` (a kernel returning (replicas, utilization,
    average, error, top target, errors, largest |milli|, pods)); None when the kernels are off
    or the sums could leave int64 (_sums_fit's bound)."""
    if not compiled.enabled():
        return None
    current = np.asarray(current, dtype=np.int64).reshape(-1)
    n_stray, target_util, tol_down, tol_up, cpu = pass_terms(current.size, target_utilization, tolerance_down,
                                                            tolerance_up, cpu_rules)
    try:
        replicas, utilization, average, error, top, errors, largest, p = run(
            n_stray, current, target_util, tol_down, tol_up, cpu, float(cpu_initialization_period_s),
            float(initial_readiness_delay_s))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    if not pass_fits(p, largest, top):
        return None
    return pass_proposal(replicas, utilization, average, error, errors, resource, container)


def pass_terms(n: int, target_utilization, tolerance_down, tolerance_up, cpu_rules) -> tuple[np.ndarray, ...]:
    """The per-target terms of a listed pass for n targets, (n,) arrays as the kernels take them
    (shared when one value stands for all): no stray sample (int64 zeros), target utilization
    (int64), tolerances down and up (float64), whether the cpu rules apply (bool)."""
    return (_no_stray_counts(n), _per_target(target_utilization, n, np.int64), _per_target(tolerance_down, n, np.float64),
            _per_target(tolerance_up, n, np.float64), _per_target(cpu_rules, n, np.bool_))


@compiled.jit_inline
def pass_fits(p, largest, top):
    """_sums_fit's bound for a listed pass over ``p`` pods whose largest |milli value| is
    ``largest`` with the largest target utilization ``top`` (non-negative integers): p x largest
    x max(100, top) < _SUM_LIMIT, tested without forming the product (it may leave int64 in a
    kernel): x >= ceil(L / p) for x = largest x max(100, top), then largest >= ceil of that / max(100, top)."""
    if p == 0:
        return True
    per_pod = (_SUM_LIMIT + p - 1) // p
    scale = top if top > 100 else 100
    return largest < (per_pod + scale - 1) // scale


def pass_proposal(replicas: np.ndarray, utilization: np.ndarray, average: np.ndarray, error: np.ndarray, errors: int,
                  resource: str, container: str) -> hr.ReplicaProposal:
    """The ReplicaProposal of a listed pass's (N,) int64 results with ``errors`` targets in error:
    no listed pod lacks a request or its container, so no error names a pod (most cycles: no
    error at all, the shared empty texts)."""
    messages = (hr._messages(error, resource=resource, container=container or "(all)", pod=lambda i: "") if errors
                else hr._no_messages(error.shape[0]))
    return hr.ReplicaProposal(replicas=replicas, utilization=utilization, usage_milli=average, error=error,
                              error_message=messages)
