"""A target list's replica counts in one compiled pass (numba), for ``ClusterPort.view``.

A policy's targets are its workloads sorted by name, which is not the engine's order of services
(``svc-10`` before ``svc-2``): each cycle's view gathered five (S,) arrays by the targets' rows
(spec, pods and Ready counts as floats, the rollout and paused flags), ten numpy calls and as many
fresh arrays, about 8 us of the ~10 the view took for 1,000 services. ``_view_kernel`` gathers
them in one loop into two blocks. ``ClusterPort.view`` keeps the numpy gathers as the reference
and for ``SETPOINT_COMPILED=0``; tests/simulators/test_pod_listing.py checks both give the same
arrays.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit


@jit
def _view_kernel(rows, exists, spec, n_pods, n_ready, rolling, paused, counts, flags):
    """Per target i (N,): ``counts`` (3, N) float64 the spec, pod and Ready counts of row
    ``rows[i]``, 0 where it does not ``exists``; ``flags`` (2, N) bool its rollout and paused
    flags, False where it does not exist (``paused`` of length 0: not read)."""
    with_paused = paused.shape[0] > 0
    for i in range(rows.shape[0]):
        r = rows[i]
        if exists[i]:
            counts[0, i], counts[1, i], counts[2, i] = spec[r], n_pods[r], n_ready[r]
            flags[0, i] = rolling[r]
            flags[1, i] = paused[r] if with_paused else False
        else:
            counts[0, i] = counts[1, i] = counts[2, i] = 0.0
            flags[0, i] = flags[1, i] = False


_NO_FLAGS = np.zeros(0, np.bool_)


def try_gather_view(rows: np.ndarray, exists: np.ndarray, spec: np.ndarray, n_pods: np.ndarray,
                    n_ready: np.ndarray, rolling: np.ndarray,
                    paused: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(3, N) float64 spec, pods and Ready counts and (2, N) bool rollout and paused flags (the
    second row False when ``paused`` is None) of the services at ``rows`` (N,) int64, zero and
    False where ``exists`` (N,) bool is False: what ``np.where(exists, a[rows], 0)`` and
    ``exists & a[rows]`` give. None when the kernels are off: then gather with numpy."""
    if not compiled.enabled():
        return None
    n = rows.shape[0]
    counts, flags = np.empty((3, n)), np.empty((2, n), np.bool_)
    try:
        _view_kernel(rows, exists, spec, n_pods, n_ready, rolling, _NO_FLAGS if paused is None else paused,
                     counts, flags)
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return counts, flags
