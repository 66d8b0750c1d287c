"""Pod names: Kubernetes-style ``<service>-<pod-template-hash>-<suffix>``, from the cluster's salt.

The salt is drawn first from the cluster's generator (as in the reference engine), so names
depend on the seed; a name is computed once per pod and cached. The cache holds the names of the
pods that exist, and of the pods gone since its last pruning: once it reaches its bound (twice
what was left at the last pruning, at least ``MIN_POD_NAMES``) the names of gone pods are
dropped, so a long run with pod churn keeps it at about twice the live pods (amortized O(1) per
name; a name is a function of service, pod serial and revision, so a dropped one that is asked
again, e.g. by a listing taken before its pod went, is computed again, the same).
"""

from __future__ import annotations

import numpy as np

from controller.errors import NotFound
from simulators.simcluster.slots import EMPTY
from simulators.workload import pod_name, revision_hash


#: Names cached before the first pruning: a small cluster's churn never prunes more often than this.
MIN_POD_NAMES = 4096


class PodNaming:
    """SimCluster's pod names (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_naming(self) -> None:
        self._pod_name_cache: dict[tuple[int, int], str] = {}  # (service, pod serial) -> name
        self._pod_name_bound = MIN_POD_NAMES

    def pod_names(self, i: int) -> list[str]:
        """Names of service ``i``'s pods, oldest first."""
        self._flush()
        slots = np.flatnonzero(self._pod_phase[i] != EMPTY)
        return [self._pod_name(i, slot) for slot in slots[np.argsort(self._pod_serial[i, slots])].tolist()]

    def _pod_name(self, i: int, slot: int) -> str:
        return self._name_of(i, int(self._pod_serial[i, slot]), int(self._pod_revision_seq[i, slot]))

    def _name_of(self, i: int, serial: int, revision_seq: int) -> str:
        """The name of service ``i``'s pod ``serial``, of revision index ``revision_seq``."""
        key = (i, serial)
        name = self._pod_name_cache.get(key)
        if name is None and self._ordered[i]:  # a StatefulSet's pod: <service>-<ordinal>
            name = f"{self.names[i]}-{self.ordinal_of(i, serial)}"
        if name is None:
            rev = self._revisions[i].get(revision_seq)
            # a lazy listing named after its revision was forgotten (forget_revisions): the same hash
            rev_hash = rev.hash if rev is not None else revision_hash(self.salt, self.names[i], revision_seq)
            name = pod_name(self.salt, self.names[i], rev_hash, serial)
            if len(self._pod_name_cache) >= self._pod_name_bound:
                self._prune_pod_names()
            self._pod_name_cache[key] = name
        return name

    def _prune_pod_names(self) -> None:
        """Drop the cached names of pods that no longer exist; the next pruning comes when the
        cache has doubled what is left (at least ``MIN_POD_NAMES``)."""
        rows, slots = np.nonzero(self._pod_phase != EMPTY)  # (S, K) slots of the pods that exist
        live = set(zip(rows.tolist(), self._pod_serial[rows, slots].tolist()))
        self._pod_name_cache = {k: v for k, v in self._pod_name_cache.items() if k in live}
        self._pod_name_bound = max(MIN_POD_NAMES, 2 * len(self._pod_name_cache))

    def _slot_of(self, i: int, name: str) -> int:
        for slot in np.flatnonzero(self._pod_phase[i] != EMPTY).tolist():
            if self._pod_name(i, slot) == name:
                return slot
        raise NotFound(f"pod {name!r} not found in {self.names[i]}", target=self.names[i], status=404)
