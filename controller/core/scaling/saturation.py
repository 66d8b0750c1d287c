"""Propose stage, saturation floor: a reading at what the Ready pods serve is a lower bound on demand.

An ``averagePerReplica`` metric with per-replica headroom and a ``capacityPerReplica`` c and
target T (pooled headroom has its own saturated rule, core/scaling/headroom.py): where its value v
reaches what the Ready pods serve (v >= ready x c x (1 - tolerance.up)), the pods are
saturated. A rate read at the pods (an app's own request counter) stops there, as CPU stops at
100%, so the demand is unknown above it, and sizing on v asks for only c / T more pods than are
Ready (1.18x for the default 85 of 100) per start-up: a window that began with 430 rps on 4
pods of 100 got 5 pods, then waited a start-up for each next one. So a saturated metric is sized
as if the demand were c / T above its reading: ceil(v / T x c / T) pods (plus the withheld ones,
whose spec slots serve nothing), the step the reading would ask for once the pods it asks for
were Ready and saturated in turn, taken a start-up sooner: (c / T)^2 = 1.38x the Ready pods
for a reading at the cap. A rate read at the load balancer is not capped, so there the floor
only adds the target's headroom once more (c / T of its demand) while the pods are saturated,
which is when that headroom is missing.

The reading tested and sized on is the larger of the window's value and the metric's latest
reading where it has one (a ramp's ``latest``, the same rate over a shorter range): a
service whose pods drop out of the load balancer in short spells (a readiness probe failing
under load: the overload spiral) serves at its cap whenever it serves, but a [1m] window
averages the dark seconds in (75% of capacity for 10 s dark in every 40), under any target;
the [30s] reading sees the cap between spells. A workload whose pods all leave together
at a constant load below capacity (a flapping dependency) reads below the cap either way.

Only ever raises a valid proposal (never causes a scale-down); a target without Ready pods,
a missing value and metrics without a capacity are left alone. Shapes: N targets, M metrics.
Pure numpy; the fused kernel applies the same test and floor (core/scaling/fused.py).
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling.propose import ceil_clamped


def saturation_values(values: np.ndarray, latest: np.ndarray | None) -> np.ndarray:
    """(N, M) the readings the saturation floor tests and sizes on: ``values`` (the window's),
    raised to ``latest`` (the ramps' latest readings, NaN: none; None: not read) where higher."""
    return values if latest is None else np.fmax(values, latest)


def saturated(params, values: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """(N, M) bool: metric j of target i reads at least what its Ready pods serve, within the
    up tolerance (``params``: PolicyParams; values (N, M): :func:`saturation_values`;
    ready (N,)). False for metrics without a capacity and targets without a Ready pod."""
    capacity = params.metric_saturation
    rdy = np.asarray(ready, np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        # (ready x c) x (1 - up): the kernel's order of the same operations
        return (capacity > 0)[None, :] & (rdy > 0) & (values >= rdy * capacity[None, :] * (1.0 - params.tolerance_up))


def saturation_floor(params, proposals: np.ndarray, valid: np.ndarray, values: np.ndarray, ready: np.ndarray,
                     withheld: np.ndarray | None = None, latest: np.ndarray | None = None) -> np.ndarray:
    """(N, M) proposals raised to ceil(v / T x c / T) + withheld where :func:`saturated` and valid
    (v (N, M): the window's ``values`` raised to ``latest`` by :func:`saturation_values`, each
    metric's target T and capacity c)."""
    if not params.saturation_metrics:
        return proposals
    values = saturation_values(values, latest)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        floor = ceil_clamped(values / params.metric_targets * params.metric_saturation / params.metric_targets)
    if withheld is not None:
        floor += np.asarray(withheld, np.float64)[:, None]
    return np.where(saturated(params, values, ready) & valid, np.fmax(proposals, floor), proposals)
