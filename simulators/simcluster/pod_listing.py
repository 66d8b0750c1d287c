"""The pods of a target list as flat arrays in one compiled pass (numba), for ``ClusterPort.pod_arrays``.

The ``hpa`` preset lists every pod of its targets each control cycle (pods, then their samples:
simulators/ports.py); the numpy listing costs some twenty array calls and a sort over the
(S, K) slot arrays, and checking whether its cached listing still holds compares three (S, K)
arrays (more than listing again here). Here one loop over the targets' slots lists the live
pods in ``pod_arrays``' order (target, then serial, then slot: an insertion sort per target,
stable like the numpy path's argsort). ``ClusterPort.pod_arrays`` keeps the numpy listing as the reference and for
``SETPOINT_COMPILED=0``; tests/simulators/test_pod_listing.py checks both give the same arrays.

The preset then reads its per-pod samples (``SimMetrics.query_pods``): the running pods of the
targets whose workload value is present and finite. ``_running_kernel`` lists those in the
same pass instead of a second whole listing and a numpy filter over it
(``ClusterPort.running_pod_samples``, whose numpy path is that listing and filter).

When the preset reads its pods and their samples through the ``ListedPodMetricsSource``
capability (simulators/ports.py: both ports over one simulated cluster), ``_listed_samples_kernel``
lists the pods and joins the samples to them in one pass (``ClusterPort.listed_pod_samples``):
what the two kernels above and the join by uid give, one walk over the slot arrays instead of
two (in a simulation the walk is bound by cache misses on the (S, K) arrays, so the second walk
cost about as much as the first); tests/runtime/test_listed_pod_samples.py checks the reads are
the same. The same pass makes the workload means of those samples the reader reports (one per
target, added pod by pod as its numpy summary adds them), where a second kernel over the
listed pods' targets and values cost ~19 us a cycle for 1,000 services.

Each row's scan stops at the row's live end (``SimCluster._live_end``: one past its last pod,
kept exact where slots fill or empty): a service's pods sit in its lowest slots, mostly, and
its K slots are sized for its largest count.
"""

from __future__ import annotations

import math

import numpy as np

from controller.core.scaling import compiled, hpa_compiled
from controller.core.scaling.compiled import jit
from simulators.simcluster.slots import EMPTY, PENDING, READY, live_end_of


@jit
def _running_kernel(rows, exists, phase, serial, revision_seq, present, values, ages):
    n, k_slots = rows.shape[0], phase.shape[1]
    total = 0
    for a in range(n):
        if exists[a] and present[a] and math.isfinite(values[a]):
            r = rows[a]
            for s in range(k_slots):
                if phase[r, s] != EMPTY and phase[r, s] != PENDING:
                    total += 1
    at = np.empty(total, np.int64)
    pod_rows = np.empty(total, np.int64)
    serials = np.empty(total, np.int64)
    revision_seqs = np.empty(total, np.int64)
    uid = np.empty(total, np.int64)
    out_values = np.empty(total)
    out_ages = np.empty(total)
    slot = np.empty(k_slots, np.int64)
    p = 0
    for a in range(n):
        if not (exists[a] and present[a] and math.isfinite(values[a])):
            continue
        r = rows[a]
        m = _by_serial(phase, serial, r, k_slots, slot, True)
        for j in range(m):
            s = slot[j]
            at[p] = a
            pod_rows[p] = r
            serials[p] = serial[r, s]
            revision_seqs[p] = revision_seq[r, s]
            uid[p] = (np.int64(r) << 32) + serial[r, s]
            out_values[p] = values[a]
            out_ages[p] = ages[a]
            p += 1
    return at, pod_rows, serials, revision_seqs, uid, out_values, out_ages


def try_running_pods(rows: np.ndarray, exists: np.ndarray, phase: np.ndarray, serial: np.ndarray,
                     revision_seq: np.ndarray, present: np.ndarray, values: np.ndarray, ages: np.ndarray
                     ) -> tuple | None:
    """The running (not pending) pods of the targets at ``rows`` (N,) int64 that ``exists`` and
    whose ``present`` (N,) bool value ``values`` (N,) float is finite, from the (S, K) slot
    arrays: (at, pod rows, serials, revision seqs, uid, value, age (``ages`` (N,) of the pod's
    target)), (P,) each, by target, then serial, as ``try_list_pods`` lists them. None when the
    kernels are off."""
    if not compiled.enabled():
        return None
    try:
        return _running_kernel(rows, exists, phase, serial, revision_seq, present, values, ages)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None


def try_list_pods(rows: np.ndarray, exists: np.ndarray, phase: np.ndarray, serial: np.ndarray,
                  revision_seq: np.ndarray, created_s: np.ndarray, ready_transition_s: np.ndarray,
                  counts: np.ndarray | None = None, ends: np.ndarray | None = None) -> tuple | None:
    """The live pods of the targets at ``rows`` (N,) int64 that ``exists`` (N,) bool, from the
    (S, K) slot arrays: (at, pod rows, serials, revision seqs, uid, pending, running, ready,
    start_time, ready_transition_time), (P,) each, by target, then serial. None when the kernels
    are off: then list with numpy. The one-pass listing (try_listed_samples, ``counts`` and
    ``ends`` as there) without samples."""
    n = rows.shape[0]
    got = try_listed_samples(rows, exists, phase, serial, revision_seq, created_s, ready_transition_s,
                             np.zeros(n, np.bool_), np.full(n, np.nan), np.zeros(n), counts, ends)
    if got is None:
        return None
    at, pod_rows, serials, revision_seqs, uid, pending, ready, start_time, transition_time, *_ = got
    return at, pod_rows, serials, revision_seqs, uid, pending, ~pending, ready, start_time, transition_time


@compiled.jit_inline
def _write_pod(p, a, r, s, ph, key, sampled, v, age, revision_seq, created_s, ready_transition_s, at, pod_rows, serials,
               revision_seqs, uid, pending, ready, start_time, transition_time, pod_values, pod_ages):
    """Listing row p: the pod in slot (r, s) of target a (phase ph, serial key)."""
    at[p] = a
    pod_rows[p] = r
    serials[p] = key
    revision_seqs[p] = revision_seq[r, s]
    uid[p] = (np.int64(r) << 32) + key
    pending[p] = ph == PENDING
    ready[p] = ph == READY
    start_time[p] = created_s[r, s]
    transition_time[p] = ready_transition_s[r, s]
    if sampled and ph != PENDING:
        pod_values[p] = v
        pod_ages[p] = age
    else:
        pod_values[p] = math.nan
        pod_ages[p] = 0.0


@jit
def _workload_mean(first, end, pending, sampled, v, means, has_mean, a):
    """Target a's workload mean over its listed pods [first, end): its value as the pod table
    holds it (milli-units, / 1000) added once per running pod, in pod order, divided by their
    count; as the reader's mean of the pods' finite samples adds them (pod_samples.workload_summary:
    np.bincount's adds, 0.0 first); ``means``, ``has_mean`` (N,) are left NaN and False without a
    running pod with a sample."""
    if not sampled:
        return
    c = 0
    for k in range(first, end):
        if not pending[k]:
            c += 1
    if c > 0:
        means[a], has_mean[a] = _repeated_mean(hpa_compiled.milli(v) / 1000.0, c), True


@compiled.jit_inline
def _repeated_mean(x, c):
    """x added c times (c > 0), one by one as the reference adds each pod's sample (the same value
    for every pod), divided by c."""
    s = 0.0
    for _ in range(c):
        s += x
    return s / c


@jit
def _padded_means_kernel(rows, exists, ends, phase, present, values):
    """The workload means _listed_samples_kernel makes (_workload_mean), read from the slots
    where they sit, without listing: per target (N,) its mean, whether it has one, and its
    sample as every running pod has it (NaN: none, or the target does not exist)."""
    n = rows.shape[0]
    means = np.full(n, math.nan)
    has_mean = np.zeros(n, np.bool_)
    samples = np.full(n, math.nan)
    for a in range(n):
        v = values[a]
        if not (exists[a] and present[a] and math.isfinite(v)):
            continue
        samples[a] = v
        r, c = rows[a], 0
        for s in range(ends[r]):
            ph = phase[r, s]
            if ph != EMPTY and ph != PENDING:
                c += 1
        if c > 0:
            means[a], has_mean[a] = _repeated_mean(hpa_compiled.milli(v) / 1000.0, c), True
    return means, has_mean, samples


def try_padded_means(rows: np.ndarray, exists: np.ndarray, ends: np.ndarray, phase: np.ndarray, present: np.ndarray,
                     values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(mean (N,), has one (N,) bool, sample (N,)): ``try_listed_samples``' workload means of the
    targets at ``rows`` (N,) int64 that ``exists``, from the (S, K) slot ``phase`` scanned up to
    each row's ``ends`` (S,) (its live end), without listing the pods; and each target's
    ``values`` where it is ``present``, finite and the target exists (else NaN): what every one
    of its running pods reports. None when the kernels are off."""
    if not compiled.enabled():
        return None
    try:
        return _padded_means_kernel(rows, exists, ends, phase, np.asarray(present, np.bool_),
                                    np.asarray(values, np.float64))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None


@compiled.jit_inline
def _by_serial(phase, serial, r, end, slot, running_only):
    """Row r's live slots before ``end`` (``running_only``: not Pending either) into ``slot`` by
    serial (an insertion sort, stable: equal serials keep slot order); returns how many."""
    m = 0
    for s in range(end):
        if phase[r, s] == EMPTY or (running_only and phase[r, s] == PENDING):
            continue
        key = serial[r, s]
        q = m  # insertion: after every pod of a lower or equal serial (stable)
        while q > 0 and serial[r, slot[q - 1]] > key:
            slot[q] = slot[q - 1]
            q -= 1
        slot[q] = s
        m += 1
    return m


@jit
def _listed_samples_kernel(rows, exists, counts, ends, phase, serial, revision_seq, created_s, ready_transition_s,
                           present, values, ages):
    """The live pods by target, then serial, with _running_kernel's samples joined in the same pass: a
    running pod of a target whose value is present and finite gets that value and age, every
    other pod NaN and 0; and per target (N,) the mean of its pods' samples and whether it has
    one (_workload_mean). ``counts`` (S,): the live pods of each row, as the cluster keeps them
    (the listing is sized by them, without a counting pass); ``ends`` (S,): each row's slots
    from there on are empty (the scans stop there: most of a row's slots are). Returns the
    arrays and whether the counts held (False: they did not, or a row had fewer pods before its
    end: the arrays are not to be used)."""
    n, k_slots = rows.shape[0], phase.shape[1]
    total = 0
    for a in range(n):
        if exists[a]:
            total += counts[rows[a]]
    at = np.empty(total, np.int64)
    pod_rows = np.empty(total, np.int64)
    serials = np.empty(total, np.int64)
    revision_seqs = np.empty(total, np.int64)
    uid = np.empty(total, np.int64)
    pending = np.empty(total, np.bool_)
    ready = np.empty(total, np.bool_)
    start_time = np.empty(total)
    transition_time = np.empty(total)
    pod_values = np.empty(total)
    pod_ages = np.empty(total)
    means = np.full(n, math.nan)
    has_mean = np.zeros(n, np.bool_)
    slot = np.empty(k_slots, np.int64)
    p = 0
    held = True
    for a in range(n):
        if not exists[a]:
            continue
        r = rows[a]
        sampled = present[a] and math.isfinite(values[a])
        v, age = values[a], ages[a]
        first, last, ordered = p, -1, True
        if p + counts[r] > total:
            held = False
            break
        for s in range(ends[r]):  # in slot order while the serials ascend (the common case: no sort)
            ph = phase[r, s]
            if ph == EMPTY:
                continue
            key = serial[r, s]
            if key < last or p == first + counts[r]:  # out of order (sort), or more pods than counted
                ordered = False
                break
            last = key
            _write_pod(p, a, r, s, ph, key, sampled, v, age, revision_seq, created_s, ready_transition_s, at,
                       pod_rows, serials, revision_seqs, uid, pending, ready, start_time, transition_time,
                       pod_values, pod_ages)
            p += 1
        if ordered:
            if p != first + counts[r]:
                held = False
                break
            _workload_mean(first, p, pending, sampled, v, means, has_mean, a)
            continue
        p, m = first, _by_serial(phase, serial, r, ends[r], slot, False)
        if m != counts[r]:
            held = False
            break
        for j in range(m):
            s = slot[j]
            _write_pod(p, a, r, s, phase[r, s], serial[r, s], sampled, v, age, revision_seq, created_s,
                       ready_transition_s, at, pod_rows, serials, revision_seqs, uid, pending, ready, start_time,
                       transition_time, pod_values, pod_ages)
            p += 1
        _workload_mean(first, p, pending, sampled, v, means, has_mean, a)
    return (at, pod_rows, serials, revision_seqs, uid, pending, ready, start_time, transition_time, pod_values, pod_ages,
            means, has_mean, held and p == total)


def try_listed_samples(rows: np.ndarray, exists: np.ndarray, phase: np.ndarray, serial: np.ndarray,
                       revision_seq: np.ndarray, created_s: np.ndarray, ready_transition_s: np.ndarray,
                       present: np.ndarray, values: np.ndarray, ages: np.ndarray,
                       counts: np.ndarray | None = None, ends: np.ndarray | None = None) -> tuple | None:
    """``try_list_pods``'s listing (without its ``running`` column) and ``try_running_pods``'
    samples joined to it, in one pass: (at, pod rows, serials, revision seqs, uid, pending, ready,
    start_time, ready_transition_time, value, age), (P,) each, by target then serial; value is
    the pod's target's value (``values`` (N,)) for a running pod whose target ``exists`` and
    whose value is ``present`` and finite, else NaN, and age its target's ``ages`` (N,), else 0;
    then (mean, has one), (N,) each: the mean of each target's pods' values as the pod table
    holds them (milli-units / 1000), what the reader's workload summary of these samples is
    (NaN, False: no pod with a sample).
    ``counts`` (S,) int64: the live (not empty) slots of each row of the slot arrays, which size
    the listing; ``ends`` (S,) int64: one past each row's last live slot (slots.live_end_of), where
    the scans stop (None: counted here; counts or ends seen wrong are counted again).
    None when the kernels are off."""
    if not compiled.enabled():
        return None
    present, values, ages = np.asarray(present, np.bool_), np.asarray(values, np.float64), np.asarray(ages, np.float64)
    if counts is None or ends is None:
        counts, ends = np.count_nonzero(phase != EMPTY, axis=1).astype(np.int64), live_end_of(phase)
    try:
        *got, held = _listed_samples_kernel(rows, exists, counts, ends, phase, serial, revision_seq, created_s,
                                            ready_transition_s, present, values, ages)
        if not held:  # the counts or ends given were not the slots' (never with the cluster's own): count them
            *got, held = _listed_samples_kernel(rows, exists, np.count_nonzero(phase != EMPTY, axis=1).astype(np.int64),
                                                live_end_of(phase), phase, serial, revision_seq, created_s,
                                                ready_transition_s, present, values, ages)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return tuple(got)


@jit
def _pod_starts_kernel(rows, exists, at, counts, ends, phase, serial, created_s, ready_transition_s):
    """The live pods of services ``rows`` (D,) that ``exists``, by target then serial, as the
    start-up observer reads them: (target ``at`` of the pod's service, uid, creation, Ready
    change, Ready, runs not Ready (neither Ready nor Pending)), (P,) each, and whether the
    ``counts`` (S,) held (False: a row had another number of pods before its ``ends``)."""
    total = 0
    for a in range(rows.shape[0]):
        if exists[a]:
            total += counts[rows[a]]
    target = np.empty(total, np.int64)
    uid = np.empty(total, np.int64)
    created = np.empty(total)
    ready_s = np.empty(total)
    ready = np.empty(total, np.bool_)
    not_serving = np.empty(total, np.bool_)
    slot = np.empty(phase.shape[1], np.int64)
    p = 0
    for a in range(rows.shape[0]):
        if not exists[a]:
            continue
        r = rows[a]
        m = _by_serial(phase, serial, r, ends[r], slot, False)
        if m != counts[r]:
            return target, uid, created, ready_s, ready, not_serving, False
        for j in range(m):
            s = slot[j]
            ph = phase[r, s]
            target[p] = at[a]
            uid[p] = (np.int64(r) << 32) + serial[r, s]
            created[p] = created_s[r, s]
            ready_s[p] = ready_transition_s[r, s]
            ready[p] = ph == READY
            not_serving[p] = ph != READY and ph != PENDING
            p += 1
    return target, uid, created, ready_s, ready, not_serving, True


def try_pod_starts(rows: np.ndarray, exists: np.ndarray, at: np.ndarray, phase: np.ndarray, serial: np.ndarray,
                   created_s: np.ndarray, ready_transition_s: np.ndarray, counts: np.ndarray,
                   ends: np.ndarray) -> tuple | None:
    """The pods of the services at ``rows`` (D,) int64 that ``exists`` (D,) bool, each labelled
    with its target's ``at`` (D,) int64, in ``try_list_pods``' order: (target, uid, creation,
    Ready change (epoch s), Ready, runs but not Ready), (P,) each: the columns the start-up
    observer reads of a pod listing (controller/runtime/startup_observer.py), without the
    listing's other columns and objects. ``counts``, ``ends`` (S,): as try_listed_samples
    takes them. None when the kernels are off or the counts did not hold: then list the pods."""
    if not compiled.enabled():
        return None
    try:
        *got, held = _pod_starts_kernel(rows, exists, at, counts, ends, phase, serial, created_s, ready_transition_s)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return tuple(got) if held else None
