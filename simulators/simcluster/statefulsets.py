"""StatefulSet rows: stable ordinal pods, ordered scaling and the RollingUpdate of the StatefulSet controller.

A row made a StatefulSet (:meth:`StatefulSets.make_statefulset`, before the first tick) keeps
the vectorized pod model but its pods are managed as kubernetes/pkg/controller/statefulset
manages them (``podManagementPolicy: OrderedReady``, the default; ``Parallel`` where said):

- each pod has an ordinal: its name is ``<service>-<ordinal>``; a pod created in the row takes
  the lowest free ordinal, so a deleted pod (or one lost with its node) comes back under its
  name, and scaling up adds the next ordinals;
- a pod lost with its node (a node-loss fault) holds its ordinal until the node is back or it
  is force-deleted (:meth:`StatefulSets._sts_lose_to_node`): its object would stay, so no pod is
  created under its name meanwhile (a Deployment's lost pod is replaced at once);
- scale-up creates one pod at a time, the next only once every lower ordinal is Ready;
  scale-down removes the highest ordinal first, one a sync, and not while a lower pod is
  unhealthy (a crash-looping pod blocks scaling, as there). ``Parallel``: every missing pod is
  created and every condemned one removed in one sync, whatever their health;
- a new revision (``rollout``, ``rollback``) is rolled out by deleting the highest ordinal not
  on it (down to ``partition``) once every pod is Ready, one at a time; the pod is recreated
  on the update revision. Pods below the partition, or recreated there, keep (are made on) the
  current revision;
- the StatefulSet's current revision (``status.currentRevision``) becomes the update revision
  when every pod is on it and Ready and none terminates (completeRollingUpdate);
- a pod it deletes (scale-down, update) or a client deletes terminates for its grace period
  (:meth:`StatefulSets.set_termination_grace`, per revision; 0 unless set, as offline, where a
  pod is gone at once) when it ran (a Pending pod is gone at once): it leaves its slot (serves
  nothing) but its ordinal stays taken until then (``_sts_leaving``), so its replacement (same
  name) is created only once it is gone; OrderedReady waits on it (no pod created above it, no
  further scale-down, no update), as stateful_set_control.go's processReplica and
  processCondemned do; Parallel waits only for that ordinal.

The engine's current revision (``_current_seq``) is the update revision; the StatefulSet's
current one is ``_sts_current_seq``. The ordinal is kept in the low bits of the pod's serial
(``serial = creation count << bits | ordinal``): serials stay unique and in creation order, and a
name is a function of the serial alone. A row with something left to do is in
``_rolling_rows`` (synced every tick, which also keeps ``step_ticks`` off), ``_rolling`` is
True while its update is not complete.

Differences from the real controller: one sync per tick (the real one syncs on every pod
event: a pod gone between two ticks is replaced at the next tick); no ``OnDelete`` strategy, no
``minReadySeconds``, no ``maxUnavailable`` (one pod at a time), no persistent volumes.
"""

from __future__ import annotations

import numpy as np

from simulators.simcluster.slots import EMPTY, PENDING, READY


class StatefulSets:
    """SimCluster's StatefulSet rows (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_statefulsets(self) -> None:
        S = self.n_services
        self._ordered = np.zeros(S, dtype=bool)  # rows served as StatefulSets
        self._parallel = np.zeros(S, dtype=bool)  # of those, podManagementPolicy: Parallel
        self._any_ordered = False
        self._sts_current_seq = np.zeros(S, dtype=np.int64)  # status.currentRevision's seq
        self._partition = np.zeros(S, dtype=np.int64)  # spec.updateStrategy.rollingUpdate.partition
        self._ordinal_bits = max(1, int(self.K).bit_length())  # ordinals < K: the low bits of a serial
        #: per StatefulSet row, its pods terminating: {ordinal: when it is gone (s)}; out of their slots
        self._sts_leaving: dict[int, dict[int, float]] = {}
        self._grace_s: dict[tuple[int, int], float] = {}  # (row, revision seq) -> its pods' grace period (s)
        #: (row, ordinal) -> the node-loss fault (its index) whose nodes took the pod: held until they are back
        self._sts_lost: dict[tuple[int, int], int] = {}

    def make_statefulset(self, i: int, parallel: bool = False) -> None:
        """Serve row ``i`` as a StatefulSet from now on: its pods get ordinals (the existing ones
        0..n-1 in creation order) and are managed as the module docstring says; ``parallel``:
        podManagementPolicy Parallel (else OrderedReady)."""
        self._flush()
        self._parallel[i] = bool(parallel)
        if self._ordered[i]:
            return
        live = np.flatnonzero(self._pod_phase[i] != EMPTY)
        live = live[np.argsort(self._pod_serial[i, live], kind="stable")]
        self._pod_serial[i, live] = (self._pod_serial[i, live] << self._ordinal_bits) | np.arange(live.size)
        self._pod_name_cache = {k: v for k, v in self._pod_name_cache.items() if k[0] != i}
        self._ordered[i] = self._any_ordered = True
        self._sts_current_seq[i] = self._current_seq[i]
        self._sts_due(i)

    def set_partition(self, i: int, partition: int) -> None:
        """``spec.updateStrategy.rollingUpdate.partition`` of StatefulSet row ``i``: only ordinals
        at or above it are updated."""
        self._flush()
        self._partition[i] = max(0, int(partition))
        self._sts_due(i)
        self._sync_statefulset(i, self.now)

    def statefulset_current_seq(self, i: int) -> int:
        """The seq of StatefulSet row ``i``'s current revision (status.currentRevision)."""
        return int(self._sts_current_seq[i])

    def set_termination_grace(self, i: int, seq: int, grace_s: float) -> None:
        """The grace period (s) of StatefulSet row ``i``'s pods of revision ``seq`` (their
        template's spec.terminationGracePeriodSeconds): how long such a pod, once deleted,
        terminates before its ordinal is free (0, the default: gone at once)."""
        self._grace_s[(int(i), int(seq))] = max(0.0, float(grace_s))

    def terminating_ordinals(self, i: int) -> dict[int, float]:
        """{ordinal: when it is gone (s)} of StatefulSet row ``i``'s pods terminating now (inf: on a
        lost node, gone once the node is back or it is force-deleted)."""
        return dict(self._sts_terminating(i, self.now))

    def end_termination_at(self, i: int, ordinal: int, gone_s: float, now: float | None = None) -> None:
        """Row ``i``'s terminating pod ``ordinal`` is gone at ``gone_s`` instead (a second DELETE
        with a shorter grace); gone already: its replacement is made now, as the controller syncs
        on the deletion."""
        self._flush()
        now = self.now if now is None else now
        leaving = self._sts_leaving.get(i, {})
        if ordinal not in leaving:
            return
        leaving[ordinal] = min(leaving[ordinal], float(gone_s))
        if leaving[ordinal] < np.inf:
            self._sts_lost.pop((i, ordinal), None)
        self._sts_due(i)
        if leaving[ordinal] <= now:
            self._sync_statefulset(i, now)

    def ordinal_of(self, i: int, serial: int) -> int:
        """The ordinal of StatefulSet row ``i``'s pod ``serial``."""
        return int(serial) & ((1 << self._ordinal_bits) - 1)

    def _sts_due(self, i: int) -> None:
        """Row ``i`` has something to sync: synced every tick until settled."""
        if i not in self._rolling_rows:
            self._rolling_rows = sorted(self._rolling_rows + [i])

    def _ordinals(self, i: int) -> np.ndarray:
        """(K,) the ordinal of each of row ``i``'s slots (meaningless for empty ones)."""
        return self._pod_serial[i] & ((1 << self._ordinal_bits) - 1)

    def _give_ordinals(self, i: int, flat: np.ndarray) -> None:
        """Pods just created in StatefulSet row ``i`` (``flat`` slots, in creation order): the
        lowest free ordinals, and the revision the StatefulSet controller makes them on (the
        update revision at or above the partition, the current one below it)."""
        slots = flat - i * self.K
        others = (self._pod_phase[i] != EMPTY)
        others[slots] = False
        used = set(self._ordinals(i)[others].tolist()) | set(self._sts_leaving.get(i, ()))
        free = (k for k in range(self.K) if k not in used)
        for slot in slots.tolist():
            ordinal = next(free)
            self._pod_serial[i, slot] = (self._pod_serial[i, slot] << self._ordinal_bits) | ordinal
            seq = int(self._current_seq[i]) if ordinal >= self._partition[i] else int(self._sts_current_seq[i])
            if seq != int(self._pod_revision_seq[i, slot]):
                self._set_pod_revision(i, slot, seq)
        self._take_sticky_ordinals(i, slots)

    def _sync_statefulset(self, i: int, now: float) -> None:
        """One sync of StatefulSet row ``i`` (StatefulSetControl.updateStatefulSet, OrderedReady):
        create the lowest missing ordinal, else delete the highest condemned one, else update the
        highest ordinal not on the update revision; then the status' current revision."""
        row = np.array([i])
        done = self._sts_create_next(i, now) or self._sts_remove_next(i, now) or self._sts_update_next(i, now)
        self._refresh(row)
        self._sts_complete(i, settled=not done and not self._sts_leaving.get(i))

    def _sts_terminating(self, i: int, now: float) -> dict[int, float]:
        """{ordinal: gone at (s)} of row ``i``'s pods still terminating at ``now`` (those gone are forgotten)."""
        leaving = self._sts_leaving.get(i)
        if not leaving:
            return {}
        for ordinal in [k for k, gone_s in leaving.items() if gone_s <= now]:
            del leaving[ordinal]
        if not leaving:
            del self._sts_leaving[i]
        return leaving

    def _sts_delete(self, i: int, slot: int, now: float, grace_s: float | None = None) -> None:
        """Delete row ``i``'s pod in ``slot``: out of its slot now; if it ran and its grace (its
        revision's, or ``grace_s``) is above 0, its ordinal terminates until now + grace."""
        grace_s = self._grace_s.get((i, int(self._pod_revision_seq[i, slot])), 0.0) if grace_s is None else grace_s
        if grace_s > 0 and self._pod_phase[i, slot] != PENDING:
            self._sts_leaving.setdefault(i, {})[int(self._ordinals(i)[slot])] = now + grace_s
        self._clear_slots(np.array([i]), np.array([i * self.K + slot]), now)

    def _sts_lose_to_node(self, rows: np.ndarray, slots: np.ndarray, fault: int) -> None:
        """StatefulSet pods (``rows``, ``slots``) whose nodes vanished with node-loss fault ``fault``
        (call before their slots are cleared): they serve nothing, but their ordinals stay taken
        until the nodes are back (:meth:`_sts_nodes_back`) or they are force-deleted. A real
        StatefulSet controller creates no pod under a name whose object exists, and a pod of an
        unreachable node stays (Terminating once evicted) until its kubelet confirms it stopped,
        it is force-deleted, or pod GC removes it with its deleted Node object."""
        for i, slot in zip(rows.tolist(), slots.tolist()):
            ordinal = int(self._ordinals(i)[slot])
            self._sts_leaving.setdefault(i, {})[ordinal] = np.inf
            self._sts_lost[(i, ordinal)] = fault
            self._sts_due(i)

    def _sts_nodes_back(self, fault: int, now: float) -> None:
        """The nodes node-loss fault ``fault`` took are back: the pods they held are gone now (their
        kubelets stop them), replaced under their names as their rows sync (now)."""
        back = [key for key, by in self._sts_lost.items() if by == fault]
        for i, ordinal in back:
            del self._sts_lost[(i, ordinal)]
            leaving = self._sts_leaving.get(i, {})
            if ordinal in leaving:
                leaving[ordinal] = min(leaving[ordinal], now)
        for i in sorted({i for i, _ in back}):
            self._sts_due(i)
            self._sync_statefulset(i, now)

    def _sts_pods(self, i: int) -> dict[int, int]:
        """{ordinal: slot} of row ``i``'s pods."""
        slots = np.flatnonzero(self._pod_phase[i] != EMPTY)
        return dict(zip(self._ordinals(i)[slots].tolist(), slots.tolist()))

    def _sts_create_next(self, i: int, now: float) -> bool:
        """Create the lowest missing ordinal below spec.replicas if every lower pod is Ready;
        True when it created one or waits for a pod to become Ready or to be gone (nothing more
        this sync). Parallel: every missing one (not terminating) at once, and nothing waits."""
        pods, leaving = self._sts_pods(i), self._sts_terminating(i, now)
        if self._parallel[i]:  # a terminating ordinal is recreated once gone
            missing = sum(1 for ordinal in range(int(self._spec_replicas[i])) if ordinal not in pods
                          and ordinal not in leaving)
            if missing:
                self._create_pods(np.array([i]), np.array([missing]), now)
            return False
        for ordinal in range(int(self._spec_replicas[i])):
            if ordinal in leaving:
                return True  # OrderedReady: wait until it is gone (then recreated)
            slot = pods.get(ordinal)
            if slot is None:
                self._create_pods(np.array([i]), np.array([1]), now)
                return True
            if self._pod_phase[i, slot] != READY:
                return True  # OrderedReady: wait for it
        return False

    def _sts_remove_next(self, i: int, now: float) -> bool:
        """Delete the highest pod at or above spec.replicas (condemned), unless it terminates
        already (wait until it is gone), or it is unhealthy and a lower condemned pod is too (it
        waits for that one); True when there was one. Parallel: every one not terminating."""
        pods, leaving = self._sts_pods(i), self._sts_terminating(i, now)
        condemned = sorted(k for k in (*pods, *leaving) if k >= self._spec_replicas[i])
        if not condemned:
            return False
        if self._parallel[i]:  # all at once, healthy or not
            for k in condemned:
                if k in pods:
                    self._sts_delete(i, pods[k], now)
            return False
        target = condemned[-1]
        if target in leaving:
            return True
        unhealthy = [k for k in condemned if k in leaving or self._pod_phase[i, pods[k]] != READY]
        if unhealthy and target in unhealthy and unhealthy[0] != target:
            return True
        self._sts_delete(i, pods[target], now)
        return True

    def _sts_update_next(self, i: int, now: float) -> bool:
        """RollingUpdate: from the highest ordinal down to the partition, delete the first pod not
        on the update revision (recreated on it once gone: at once with no grace, as the next
        sync does), waiting on any unhealthy or terminating pod met first; True when it deleted
        or waits."""
        pods = self._sts_pods(i)
        update = int(self._current_seq[i])
        for ordinal in range(int(self._spec_replicas[i]) - 1, int(self._partition[i]) - 1, -1):
            slot = pods.get(ordinal)
            if slot is None:
                return True
            if int(self._pod_revision_seq[i, slot]) != update:
                self._sts_delete(i, slot, now)
                if ordinal not in self._sts_leaving.get(i, ()):
                    self._create_pods(np.array([i]), np.array([1]), now)
                return True
            if self._pod_phase[i, slot] != READY:
                return True
        return False

    def _sts_complete(self, i: int, settled: bool) -> None:
        """completeRollingUpdate: every pod on the update revision and Ready, none terminating
        (status.replicas counts those), makes it current; the row leaves the sync list once
        nothing is left to do."""
        pods = self._sts_pods(i)
        update = int(self._current_seq[i])
        on_update = sum(1 for s in pods.values() if self._pod_revision_seq[i, s] == update)
        ready = sum(1 for s in pods.values() if self._pod_phase[i, s] == READY)
        if on_update == len(pods) == ready and not self._sts_leaving.get(i) and self._sts_current_seq[i] != update:
            self._sts_current_seq[i] = update
            self._recheck_uniform(np.array([i]))
        self._rolling[i] = bool(self._sts_current_seq[i] != update)
        if settled and not self._rolling[i] and i in self._rolling_rows:
            self._rolling_rows.remove(i)
