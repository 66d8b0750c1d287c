"""Withheld replicas: spec replicas whose pods stay not Ready long after a start-up should end.

A stuck rollout (a crash-looping release held at maxUnavailable) or a pod that never passes its
readiness probe counts in the Deployment's spec replicas, but serves nothing. Setpoint's
proposals say how many pods must *serve* (the load over the per-replica target, or the ready
pods' value over the target), so the spec must hold those plus the withheld ones; otherwise the
serving pods run above target for as long as the fault lasts, and a load-sized proposal may even
scale down beneath them. (HPA does neither: its ``averageValue`` divides by spec replicas.)
propose.py sizes on the ``current - withheld`` serving replicas and adds the withheld ones back.

A pod counts when it runs (the shell leaves Pending pods out: more replicas do not help a
cluster without room), is not Ready, and was created more than ``after_s`` ago: STARTUP_MARGIN
times the target's start-up delay (the observed one, a high quantile of its recent start-ups,
else PolicyParams.stated_startup_s but at least UNOBSERVED_FLOOR_S), so that a slow ordinary
start is not taken for a fault. Per target the count is capped at the spec replicas neither
Ready nor starting (``spec - ready - starting``): a rollout's surge pods are beyond spec, and a
scale-up's new pods are coming. A pod that becomes Ready stops counting; the proposals follow.

Nor are more replicas withheld than there are Ready pods. When most of a workload's pods are
stuck, the cause is the workload's (a dependency down, a setting every pod shares), and the new
pods get stuck too: counted in turn, each round of them would ask for another, up to
``replicas.max`` (every pod not Ready with the request rate still read at the load balancer: 10 ->
18 -> 20 replicas in 75 s, and in a shared dependency's outage every workload at once). Capped
at the Ready pods, replacement at most doubles a workload's serving pods, and a workload with no
Ready pod is sized on its spec replicas, as HPA sizes it (and does not scale down, nor up once it
had Ready pods: normalize.py's TargetNotReady hold).

Shapes: P pods (flat, ``rows`` their target), N targets; times in epoch seconds. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import startup_compiled

#: A pod not Ready after this many start-up delays is withheld, not starting: start-ups spread
#: (image pulls, node pressure), and a margin of 2x the high quantile keeps an ordinary slow
#: start out of the count; the cost of waiting one more start-up is one start-up of lost capacity.
STARTUP_MARGIN = 2.0

#: Until a target's start-up has been observed, it is taken to be at least this long (s): the
#: policy's stated delay is often the format's 30 s default, and a service that starts slower
#: than stated must not have its first scale-up's pods counted as withheld (they would be asked
#: for twice). Two minutes covers most start-ups (image pulls, JIT warm-up); a slower service is
#: counted right from its first observed start-up on.
UNOBSERVED_FLOOR_S = 120.0


def unobserved_after_s(stated_s: float) -> float:
    """The age (s) past which a not-Ready pod of a target with no observed start-up is withheld:
    STARTUP_MARGIN x max(``stated_s``, UNOBSERVED_FLOOR_S)."""
    return STARTUP_MARGIN * max(stated_s, UNOBSERVED_FLOOR_S)


def withheld_after_s(startup_s: np.ndarray | None, stated_s: float, n: int) -> np.ndarray:
    """(N,) age (s) past which a not-Ready pod is withheld: STARTUP_MARGIN x the observed start-up
    delay (N,) where known (finite), else x max(``stated_s``, UNOBSERVED_FLOOR_S)."""
    unobserved = unobserved_after_s(stated_s)
    if startup_s is None:
        return np.full(n, unobserved)
    startup_s = np.asarray(startup_s, np.float64)
    return np.where(np.isfinite(startup_s), STARTUP_MARGIN * startup_s, unobserved)


def withheld_replicas(rows: np.ndarray, created_s: np.ndarray, not_ready: np.ndarray, after_s: np.ndarray,
                      current: np.ndarray, ready_count: np.ndarray, now: float) -> np.ndarray:
    """(N,) float64 withheld replicas per target: the stuck pods, at most the open spec slots and
    the Ready pods.

    rows, created_s, not_ready: (P,) the pods' target row, creation time (NaN: unknown, never
    counted) and whether it runs but is not Ready (a pod being deleted is neither: it is
    leaving); after_s: (N,) withheld_after_s; current, ready_count: (N,) spec replicas and Ready
    pods as the cluster reports them."""
    rows = np.asarray(rows, np.int64)
    created_s = np.asarray(created_s, np.float64)
    not_ready = np.asarray(not_ready, bool)
    n = np.asarray(current).shape[0]
    with np.errstate(invalid="ignore"):
        old = now - created_s > after_s[rows]  # NaN creation compares False: taken as starting
    stuck = np.bincount(rows[not_ready & old], minlength=n).astype(np.float64)
    starting = np.bincount(rows[not_ready & ~old], minlength=n).astype(np.float64)
    ready_count = np.asarray(ready_count, np.float64)
    # the spec slots neither Ready nor starting; a rollout's surge pods are beyond spec
    open_slots = np.asarray(current, np.float64) - ready_count - starting
    # never more than the Ready pods: a fault most pods share would be replaced round after round
    return np.minimum(np.minimum(stuck, np.maximum(open_slots, 0.0)), np.maximum(ready_count, 0.0))


def short_due(spec: np.ndarray, ready: np.ndarray, exists: np.ndarray, since: np.ndarray, seen: np.ndarray,
              all_seen: bool, startup_s: np.ndarray | None, stated_s: float, now: float) -> np.ndarray:
    """The targets whose pods are due a read for withheld replicas, with the marks of the cycle
    ``now`` set in place.

    spec, ready: (N,) float spec replicas and Ready pods; exists: (N,) bool; since: (N,) since
    when each target has had fewer Ready pods than spec (NaN: not short), kept for the short
    ones (set to ``now`` where newly short), NaN for the others; seen: (N,) bool, the target was
    observed before (``all_seen``: all were), then all set; startup_s, stated_s: as
    :func:`withheld_after_s`. Returns (D,) int64 ascending: the short targets short for longer
    than withheld_after_s (a pod withheld now has kept its target short that long), and those
    first seen short (their past is unknown). In one compiled pass where the kernels run
    (startup_compiled.try_short_due), else numpy."""
    due = startup_compiled.try_short_due(spec, ready, exists, since, seen, all_seen, startup_s, STARTUP_MARGIN,
                                         unobserved_after_s(stated_s), now)
    if due is not None:
        return due
    is_short = exists & (ready < spec)
    if not is_short.any():  # the common cycle: every target has its Ready pods
        since.fill(np.nan)
        seen[:] = True
        return np.zeros(0, np.int64)
    since[~is_short] = np.nan
    since[is_short & np.isnan(since)] = now
    overdue = now - since > withheld_after_s(startup_s, stated_s, spec.shape[0])
    due = np.flatnonzero(overdue if all_seen else overdue | (is_short & ~seen))
    seen[:] = True
    return due
