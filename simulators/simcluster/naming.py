"""Pod names: Kubernetes-style ``<service>-<pod-template-hash>-<suffix>``, from the cluster's salt.

The salt is drawn first from the cluster's generator (as in the reference engine), so names
depend on the seed; a name is computed once per pod and cached.
"""

from __future__ import annotations

import numpy as np

from controller.errors import NotFound
from simulators.simcluster.slots import EMPTY
from simulators.workload import pod_name, revision_hash


class PodNaming:
    """SimCluster's pod names (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_naming(self) -> None:
        self._pod_name_cache: dict[tuple[int, int], str] = {}

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
        if key not in self._pod_name_cache:
            rev = self._revisions[i].get(revision_seq)
            # a lazy listing named after its revision was forgotten (forget_revisions): the same hash
            rev_hash = rev.hash if rev is not None else revision_hash(self.salt, self.names[i], revision_seq)
            self._pod_name_cache[key] = pod_name(self.salt, self.names[i], rev_hash, serial)
        return self._pod_name_cache[key]

    def _slot_of(self, i: int, name: str) -> int:
        for slot in np.flatnonzero(self._pod_phase[i] != EMPTY).tolist():
            if self._pod_name(i, slot) == name:
                return slot
        raise NotFound(f"pod {name!r} not found in {self.names[i]}", target=self.names[i], status=404)
