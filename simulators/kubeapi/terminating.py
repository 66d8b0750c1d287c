"""Pods that terminate: what a real cluster lists for a pod's grace period after it is deleted.

On a real cluster a deleted pod (by a client, or by its ReplicaSet or StatefulSet controller on a
scale-down or a rollout) stays listed with ``metadata.deletionTimestamp`` (when it will be gone:
the deletion's time plus its grace) and ``metadata.deletionGracePeriodSeconds`` (the pod's
``spec.terminationGracePeriodSeconds``, 30 by default) while its containers stop and its
replacement is created; ``kubectl get pods`` shows it ``Terminating``; it is not Ready (out of its
Service's endpoints), and its workload's ``status.replicas`` no longer counts it. A pod never
bound to a node (Pending here) is deleted at once (the apiserver's grace 0 for an unscheduled pod).

The engine removes pods at once; :class:`Departures` finds the pods it removed by diffing its pod
slots after every tick and every API write (as :mod:`simulators.kubeapi.cluster_events` does),
with what is needed to show them: name, revision, phase, restarts, creation. The store keeps
each one listed as a :class:`TerminatingPod` until its grace has passed in simulated seconds
(with ``--speed 4``, 30 simulated seconds are 7.5 wall seconds), then it is gone (a watch sees
MODIFIED when it starts terminating, DELETED when it is gone). A DELETE's
``gracePeriodSeconds`` (:func:`delete_grace_s`) replaces the template's, and a second DELETE may
shorten it (0: gone at once), as the apiserver's BeforeDelete. A StatefulSet's pod keeps its
ordinal in the engine for the same grace (simulators/simcluster/statefulsets.py): its replacement,
under its name, comes once it is gone, as the StatefulSet controller waits for it.

Cost: one comparison of the (S, K) slot identities a tick and copies of the phases and restarts
(the other fields only of rows whose pods changed); per-pod work only for pods gone.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulators.kubeapi import objects as K
from simulators.simcluster.slots import EMPTY, PENDING

#: The grace of a pod whose template does not set spec.terminationGracePeriodSeconds (s): the API's default.
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class Departure:
    """A pod the engine removed: its workload row, serial, revision seq, phase, restarts and
    creation time (simulation s), as of the last look before it went."""

    row: int
    serial: int
    revision_seq: int
    phase: int
    restarts: int
    created_s: float

    @property
    def scheduled(self) -> bool:
        """Bound to a node (running): a pod that is not is deleted at once, with no grace."""
        return self.phase != PENDING


@dataclass
class TerminatingPod:
    """A pod listed while it terminates: the simulation time it is gone at, its grace (s), its
    deletion's wall time (epoch s), and its object as served (without resourceVersion), made from
    ``make`` (the pod as it was before) when first served (a write or tick that removes pods
    nobody lists pays nothing for them)."""

    gone_s: float
    grace_s: float
    deleted_wall_s: float
    make: Callable[[], dict]
    lost_serial: int = -1  # its engine serial when it went with a lost node (gone_s inf: until the node is back)
    _obj: dict | None = None

    @property
    def deletion_timestamp_s(self) -> int:
        """Its metadata.deletionTimestamp (epoch s, whole: the API's time has second precision):
        when it is gone, what kube-state-metrics' kube_pod_deletion_timestamp shows."""
        return int(self.deleted_wall_s + self.grace_s)

    @property
    def obj(self) -> dict:
        if self._obj is None:
            self._obj = terminating(self.make(), self.deleted_wall_s, self.grace_s)
        return self._obj

    def shortened(self, grace_s: float) -> "TerminatingPod":
        """The same pod deleted again with a shorter grace: gone that much sooner (deleted at the
        same time, as BeforeDelete moves deletionTimestamp). One on a lost node (gone_s inf) is
        gone only with no grace (a force delete): no kubelet confirms its end."""
        if math.isinf(self.gone_s):
            gone_s = -math.inf if grace_s == 0 else self.gone_s
        else:
            gone_s = self.gone_s - self.grace_s + grace_s
        return TerminatingPod(gone_s, grace_s, self.deleted_wall_s, self.make, self.lost_serial)


class Departures:
    """Finds the pods ``engine`` removed since the last look (call under the store's lock)."""

    def __init__(self, engine):
        self.engine = engine
        a = engine.slot_arrays()
        self._ident = _identities(a)  # (S, K): the serial of the pod in a slot, -1: none
        self._seq = a.revision_seq.copy()
        self._phase = a.phase.copy()
        self._restarts = a.restarts.copy()
        self._created = a.created_s.copy()

    def since_last(self, rows: list[int] | None = None) -> list[Departure]:
        """The pods gone since the last look, of ``rows`` (after an API write to them) or of every
        workload (after a tick); remembers the pods there now."""
        a = self.engine.slot_arrays()
        if rows is None:
            ident = _identities(a)
            changed = np.flatnonzero((ident != self._ident).any(axis=1)).tolist()
            gone = [d for i in changed for d in self._gone(i, ident[i])]
            self._keep(changed, a, ident[changed])
            np.copyto(self._phase, a.phase)
            np.copyto(self._restarts, a.restarts)
            return gone
        gone = []
        for i in rows:
            ident = np.where(a.phase[i] != EMPTY, a.serial[i], -1)
            gone += self._gone(i, ident)
            self._keep([i], a, ident[None, :])
            self._phase[i], self._restarts[i] = a.phase[i], a.restarts[i]
        return gone

    def _gone(self, i: int, ident: np.ndarray) -> list[Departure]:
        before = self._ident[i]
        return [Departure(i, int(before[s]), int(self._seq[i, s]), int(self._phase[i, s]), int(self._restarts[i, s]),
                          float(self._created[i, s]))
                for s in np.flatnonzero((before >= 0) & (before != ident)).tolist()]

    def _keep(self, rows: list[int], a, ident: np.ndarray) -> None:
        """Remember the pods of ``rows`` (``ident``: their identities, (len(rows), K))."""
        if not rows:
            return
        self._ident[rows] = ident
        self._seq[rows] = a.revision_seq[rows]
        self._created[rows] = a.created_s[rows]


def _identities(a) -> np.ndarray:
    return np.where(a.phase != EMPTY, a.serial, -1)


def grace_s(template: dict | None) -> float:
    """A pod's grace period (s): its template's spec.terminationGracePeriodSeconds, else 30."""
    value = ((template or {}).get("spec") or {}).get("terminationGracePeriodSeconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return DEFAULT_GRACE_S
    return float(value)


def delete_grace_s(value) -> float | None:
    """A DeleteOptions' gracePeriodSeconds (an int, or None: not given) as the grace (s) the
    apiserver uses: a negative one counts as 1 (rest.BeforeDelete: "Negative values will be
    treated as the value `1s` on the delete path"), not an error."""
    if value is None:
        return None
    return 1.0 if value < 0 else float(value)


def terminating(pod: dict, deleted_wall_s: float, grace: float) -> dict:
    """``pod`` (an object as served, not modified) as it is listed while it terminates: deleted at
    ``deleted_wall_s`` (epoch s) with ``grace`` seconds to go; not Ready since then."""
    out = copy.deepcopy(pod)
    out["metadata"]["deletionTimestamp"] = K.rfc3339(deleted_wall_s + grace)  # as deletion_timestamp_s
    out["metadata"]["deletionGracePeriodSeconds"] = int(grace)
    status = out.get("status") or {}
    since = K.rfc3339(deleted_wall_s)
    for condition in status.get("conditions") or ():
        if condition["type"] in ("Ready", "ContainersReady") and condition["status"] != "False":
            condition.update(status="False", lastTransitionTime=since)
    for container in status.get("containerStatuses") or ():
        container["ready"] = False
    return out
