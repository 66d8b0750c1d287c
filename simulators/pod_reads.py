"""The ``hpa`` preset's per-pod read of the simulated metrics ring in one compiled call (``SimMetrics.query_listed_pods``).

Per cycle the preset's reader queried its metric as a workload value (``SimMetrics.query``: the
window mean of the ring, ``metrics_compiled.window_means``, and a Samples of it), then read the
pods where the cluster keeps them with that value as each running pod's sample
(``ClusterPort.padded_pod_samples``: ``rows_of``, whose cache compares the target list element
by element, and ``pod_listing._padded_means_kernel``): two kernel calls and the Python around
them. :func:`try_padded_reads` makes the same arrays in one call of :func:`_padded_reads_kernel`,
which runs those very kernels (the same sums in the same order, so the same floats), for targets
whose rows the caller keeps (``SimTargets``' cache: no list comparison).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit
from simulators import metrics_compiled
from simulators.simcluster import pod_listing


@jit
def _padded_reads_kernel(ring, filled, rows, sequential, nonfinite, unavailable, sample_age_s, exists, ends, phase,
                         window, present, age):
    """``SimMetrics.query``'s window mean of ``ring`` (W, S) into ``window`` (N,), present (N,) and
    age (N,) of the targets at ``rows`` (N,) int64, then ``_padded_means_kernel`` on them. Returns
    (every target unavailable (a metrics outage), means, has_mean, samples (N,))."""
    n = rows.shape[0]
    metrics_compiled._window_means_kernel(ring, filled, rows, nonfinite, sequential, np.empty(filled), window)
    outage = n > 0
    for i in range(n):
        r = rows[i]
        present[i] = not unavailable[r]
        age[i] = sample_age_s[r]
        outage = outage and unavailable[r]
    means, has_mean, samples = pod_listing._padded_means_kernel(rows, exists, ends, phase, present, window)
    return outage, means, has_mean, samples


class PaddedReads(NamedTuple):
    """What :func:`try_padded_reads` read for N targets: the workload query's values, present and
    age_s (N,) (``SimMetrics.query``'s Samples), and ``_padded_means_kernel``'s means, has_mean and
    samples (N,); ``outage``: no target's series is available (the query raises then)."""

    values: np.ndarray
    present: np.ndarray
    age_s: np.ndarray
    means: np.ndarray
    has_mean: np.ndarray
    samples: np.ndarray
    outage: bool


def try_padded_reads(ring: np.ndarray, filled: int, rows: np.ndarray, exists: np.ndarray, every: bool,
                     nonfinite: np.ndarray, unavailable: np.ndarray, sample_age_s: np.ndarray, ends: np.ndarray,
                     phase: np.ndarray) -> PaddedReads | None:
    """The PaddedReads of the targets at ``rows`` (N,) int64 (each exists: ``exists`` (N,) all True; ``every``: they are
    every service in order) over the first ``filled`` slots of ``ring`` (W, S), with the last
    tick's (S,) ``nonfinite``, ``unavailable`` and ``sample_age_s`` (s) and the cluster's live
    ends (S,) and (S, K) slot phases. None when the kernels are off or decline (a window longer
    than their pairwise sum covers)."""
    filled = int(filled)
    if filled > compiled._PAIRWISE_BLOCK or not compiled.enabled():
        return None
    n = rows.shape[0]
    window, present, age = np.empty(n), np.empty(n, np.bool_), np.empty(n)
    try:
        outage, means, has_mean, samples = _padded_reads_kernel(
            ring, filled, rows, every and ring.shape[1] >= 2, nonfinite, unavailable, sample_age_s,
            exists, ends, phase, window, present, age)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return PaddedReads(window, present, age, means, has_mean, samples, bool(outage))
