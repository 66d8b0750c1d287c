"""Scaling, pod lifecycles and pod aggregates as compiled loops (numba), for :class:`SimCluster`'s common case.

A control cycle changes the replicas of a few services out of many (about ten in a thousand
per cycle in bench/sim_speed.py), and a tick moves a few pods along; the numpy paths of
``_create_pods``, ``_remove_ranked``, ``_simple_round`` and ``_refresh`` cost tens of array
calls each whatever the row count, so one loop over the rows touched is several times
cheaper. Each kernel does what its numpy method does, operation for operation (the numpy
methods stay the reference: the state is identical bit for bit,
tests/simulators/test_pods_compiled.py; whole runs compared in
tests/simulators/test_engine_compiled.py). Covered: pods of the current revision created, pods
removed by the scale-down ranking without a candidate mask, the lifecycle round without node
capacity, crash loops, leaks or readiness holds (outages, dark readiness probes), and the aggregates of rows whose pods are
uniform when no pod adds latency or leaks memory; anything else (and ``SETPOINT_COMPILED=0``) runs numpy. Same
switch and fallback as :mod:`simulators.engine_compiled`.
"""
from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import enabled, jit, mark_broken
from simulators.simcluster.slots import BACKOFF, EMPTY, INF, PENDING, READY, STARTING

_NAN = np.nan
#: Removal-ranking key layout (simulators.simcluster.replicas): (phase rank * 2 + current) << 40 | (2**40 - 1 - serial).
_SERIAL_SPAN = 1 << 40
_NO_KEY = np.iinfo(np.int64).max


@jit
def _create_kernel(rows, counts, now, K, slot_count, n_pods, next_serial, scheduling_delay_s, current_seq,
                   set_props, current_crash_loops, current_error_ratio, current_extra_latency_s, phase, serial,
                   phase_end_s, created_s, ready_transition_s, restarts, revision_seq, crash_loops, error_ratio,
                   extra_latency_s, next_event_s, live_end):
    """``ReplicaSets._create_pods`` without ``revision_seqs``, on flat (S * K,) slot arrays
    (``live_end`` (S,) raised past each new pod). Returns (rows kept, min due time of the kept rows; NaN-propagating like ndarray.min)."""
    kept = 0
    due_min = INF
    for j in range(rows.shape[0]):
        i = rows[j]
        c = min(counts[j], slot_count[i] - n_pods[i])
        if c <= 0:
            continue
        due = now + scheduling_delay_s[i]
        if kept == 0:
            due_min = due
        else:
            due_min = compiled.nan_min(due_min, due)
        kept += 1
        rank = 0
        base = i * K
        for k in range(slot_count[i]):
            f = base + k
            if phase[f] != EMPTY:
                continue
            rank += 1
            if rank > c:
                break
            serial[f] = next_serial[i] + rank - 1
            phase[f] = PENDING
            if k >= live_end[i]:
                live_end[i] = k + 1
            phase_end_s[f] = due
            created_s[f] = now
            ready_transition_s[f] = _NAN
            restarts[f] = 0
            revision_seq[f] = current_seq[i]
            if set_props:
                crash_loops[f] = current_crash_loops[i]
                error_ratio[f] = current_error_ratio[i]
                extra_latency_s[f] = current_extra_latency_s[i]
        next_serial[i] += c
        n_pods[i] += c
        next_event_s[i] = compiled.nan_min(next_event_s[i], due)
    return kept, due_min


@jit
def _remove_kernel(rows, counts, K, n_pods, current_seq, phase, serial, revision_seq, phase_end_s,
                   clear_threshold, memory_threshold_s, clear_degraded, degraded, live_end):
    """``ReplicaSets._remove_ranked`` without candidates: per row, clear the ``counts[j]`` live
    pods of smallest ranking key (keys are unique among live pods); ``live_end`` (S,) lowered to
    one past each row's last pod left. Returns whether a removed pod was scheduled (starting,
    backed off or ready): then parked pods may start."""
    freed = False
    for j in range(rows.shape[0]):
        i = rows[j]
        c = min(counts[j], n_pods[i])
        base = i * K
        for _ in range(c):
            best, best_k = _NO_KEY, -1
            for k in range(live_end[i]):  # every pod of the row is before its end
                p = phase[base + k]
                if p == EMPTY:
                    continue
                key = (np.int64(p >= STARTING) + np.int64(p == READY)) * 2
                key += np.int64(revision_seq[base + k] == current_seq[i])
                key = (key << 40) + ((_SERIAL_SPAN - 1) - serial[base + k])
                if key < best:
                    best, best_k = key, k
            if best_k < 0:
                break
            f = base + best_k
            if phase[f] >= STARTING:
                freed = True
            phase[f] = EMPTY
            phase_end_s[f] = INF
            if clear_threshold:
                memory_threshold_s[f] = INF
            if clear_degraded:
                degraded[f] = False
            n_pods[i] -= 1
        end = live_end[i]  # past the row's last pod again
        while end > 0 and phase[base + end - 1] == EMPTY:
            end -= 1
        live_end[i] = end
    return freed


@jit
def _refresh_kernel(rows, K, phase, phase_end_s, count_backoff, pod_capacity_rps, uniform_error_ratio, n_ready,
                    n_scheduled, n_running, ready_capacity_rps, error_weight, next_event_s):
    """``QueueingEngine._refresh`` of uniform rows with no extra latency and no leak."""
    for j in range(rows.shape[0]):
        i = rows[j]
        base = i * K
        ready, scheduled, backed_off = 0, 0, 0
        due = phase_end_s[base]
        for k in range(K):
            p = phase[base + k]
            if p == READY:
                ready += 1
            if p >= STARTING:
                scheduled += 1
            if p == BACKOFF:
                backed_off += 1
            if k:
                due = compiled.nan_min(due, phase_end_s[base + k])
        n_ready[i] = ready
        n_scheduled[i] = scheduled
        n_running[i] = scheduled - backed_off if count_backoff else scheduled
        capacity = ready * pod_capacity_rps[i]
        ready_capacity_rps[i] = capacity
        error_weight[i] = capacity * uniform_error_ratio[i]
        next_event_s[i] = due


@jit
def _simple_round_kernel(rows, now, K, startup_delay_s, phase, phase_end_s, started_s, ready_transition_s):
    """``PodLifecycle._simple_round`` of the slots of ``rows`` due at ``now`` (phase end <= now):
    a due Pending pod starts at its due time and is ready after the startup delay if that has
    passed too; a due Starting pod is ready at its due time."""
    for j in range(rows.shape[0]):
        i = rows[j]
        for f in range(i * K, i * K + K):
            at = phase_end_s[f]
            if not at <= now:
                continue
            ready_at = at
            if phase[f] == PENDING:
                ready_at = at + startup_delay_s[i]
                started_s[f] = at
            if ready_at <= now:
                phase[f] = READY
                phase_end_s[f] = INF
                ready_transition_s[f] = ready_at
            else:
                phase[f] = STARTING
                phase_end_s[f] = ready_at


def _int_rows(*arrays: np.ndarray) -> bool:
    return all(a.dtype == np.int64 and a.ndim == 1 for a in arrays)


def create_pods(c, rows: np.ndarray, counts: np.ndarray, now: float) -> bool:
    """``c._create_pods(rows, counts, now)`` (current revision) compiled; False: run numpy."""
    if not enabled() or not _int_rows(rows, counts):
        return False
    try:
        kept, due_min = _create_kernel(
            rows, counts, float(now), c.K, c._slot_count, c._n_pods, c._next_serial, c._scheduling_delay_s,
            c._current_seq, bool(c._any_crash_loop or c._error_ratio_varies or c._any_extra_latency),
            c._current_crash_loops, c._current_error_ratio, c._current_extra_latency_s, c._flat_phase,
            c._flat_serial, c._flat_phase_end_s, c._flat_created_s, c._flat_ready_transition_s, c._flat_restarts,
            c._flat_revision_seq, c._flat_crash_loops, c._flat_error_ratio, c._flat_extra_latency_s,
            c._next_event_s, c._live_end)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    if kept:
        c._next_event_min_s = min(c._next_event_min_s, float(due_min))
        c._needs_derive = True
    return True


def remove_ranked(c, rows: np.ndarray, counts: np.ndarray, now: float) -> bool:
    """``c._remove_ranked(rows, counts, now)`` (no candidate mask) compiled; False: run numpy."""
    if c._any_hung or not enabled() or not _int_rows(rows, counts):  # numpy clears hung and sticky slots
        return False
    try:
        freed = _remove_kernel(rows, counts, c.K, c._n_pods, c._current_seq, c._flat_phase, c._flat_serial,
                               c._flat_revision_seq, c._flat_phase_end_s, bool(c._any_leak),
                               c._flat_memory_threshold_s, bool(c._any_degraded), c._flat_degraded, c._live_end)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    if freed:
        c._unpark(now)
    return True


def refresh(c, rows: np.ndarray) -> bool:
    """``c._refresh(rows)`` compiled when its rows are uniform and no pod adds latency or leaks
    memory (then no per-pod weights or leak anchors are summed); False: run numpy."""
    if rows.size == 0:
        return True  # as numpy: nothing to do
    if c._any_extra_latency or c._any_leak or not enabled() or not _int_rows(rows) or c._row_mixed[rows].any():
        return False
    try:
        _refresh_kernel(rows, c.K, c._flat_phase, c._flat_phase_end_s, bool(c._any_crash_loop), c._pod_capacity_rps,
                        c._uniform_error_ratio, c._n_ready, c._n_scheduled, c._n_running, c._ready_capacity_rps,
                        c._error_weight, c._next_event_s)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    c._next_event_min_s = float(c._next_event_s.min())
    c._needs_derive = True
    return True


def simple_round(c, rows: np.ndarray, now: float) -> bool:
    """``c._simple_round`` of every slot of ``rows`` due at ``now`` compiled (the caller checked
    there is no node capacity, crash loop, leak or readiness hold); False: run numpy."""
    if not enabled() or not _int_rows(rows):
        return False
    try:
        _simple_round_kernel(rows, float(now), c.K, c._startup_delay_s, c._flat_phase, c._flat_phase_end_s,
                             c._flat_started_s, c._flat_ready_transition_s)
    except compiled.KERNEL_ERRORS as exc:
        mark_broken(exc)
        return False
    return True
