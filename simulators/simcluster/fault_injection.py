"""Applying :mod:`simulators.faults` to the cluster at their start and end times.

Pod crashes, bad or crash-looping rollouts, node loss (capacity and victims), memory leaks,
readiness outages (a counter per service, ORed with the readiness probes' flag into
``_readiness_held``, which the lifecycle reads where a pod would get Ready), pod hangs (a
flag per pod slot, ``_pod_hung``: held not Ready until the fault ends or the pod's container
restarts or it is deleted; a readiness outage's end does not release it; a sticky hang's
victim, ``_pod_sticky``, hangs again after each restart and hands it to its replacement),
and metric faults (outage, stale, NaN: counters read by ``signals``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators import faults as F
from simulators.signals import empty_frozen, snapshot_metrics
from simulators.simcluster.slots import EMPTY, INF, READY, STARTING


class FaultInjection:
    """SimCluster's fault effects (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_faults(self, faults: Sequence[F.Fault]) -> None:
        S = self.n_services
        self._fault_timeline = F.FaultTimeline(faults)
        self._next_fault_s = self._fault_timeline.next_s
        self._capacity_lost = 0
        #: (row, serial) -> the node-loss fault (index) whose nodes took that Deployment pod: its object
        #: stays (terminating) until they are back (sim serve lists it); the engine replaced it at once
        self._lost_pods: dict[tuple[int, int], int] = {}
        # Fast-path switches (see _init_revisions)
        self._any_degraded = False  # some pod was degraded by a memory leak
        self._any_leak = False  # a memory leak is active
        self._leak_rate_mib_per_s, self._leak_start_s = np.zeros(S), np.zeros(S)
        self._leak_fault_index = np.full(S, -1, dtype=np.int64)
        # readiness outages active per service; while any is, a pod through its start-up stays
        # Starting with no end ("held": phase STARTING, phase end INF), see PodLifecycle._mark_ready
        self._readiness_down = np.zeros(S, dtype=np.int64)
        self._any_hung = False  # some pod slot was hung by a pod-hang fault (then cleared as slots free)
        self._hung_by_fault: dict[int, list[tuple[int, int]]] = {}  # fault index -> (row, serial) it hung
        # a sticky hang is active (slots in _pod_sticky, or a StatefulSet ordinal waiting to be recreated)
        self._any_sticky = False
        self._sticky_ordinals: dict[tuple[int, int], int] = {}  # (row, ordinal) deleted -> sticky fault index
        self._update_readiness_hold()  # with the probes' flags (_init_probes runs first)
        self._metric_fault_rows = 0  # rows under an active metric fault, counted per fault
        self._outage_faults, self._stale_faults, self._nan_faults = (np.zeros(S, dtype=np.int64) for _ in range(3))
        self._frozen_metrics = empty_frozen(S)
        self._stale_since_s = np.zeros(S)
        self._freeze_pending: list[int] = []

    def _apply_fault_events(self, now: float) -> None:
        for event in self._fault_timeline.pop_due(now):
            self._apply_fault(event, now)
        self._next_fault_s = self._fault_timeline.next_s

    def _apply_fault(self, event: F.FaultEvent, now: float) -> None:
        fault = event.fault
        rows = fault.service_indices(self.index_of, self.n_services)
        if isinstance(fault, F.PodCrash):
            self._pod_crash(rows, fault.count, now, fault.ordinal)
        elif isinstance(fault, (F.CrashLoopRollout, F.BadRollout)):
            for i in rows.tolist():
                self.rollout(i, fault.revision_props(), now)
        elif isinstance(fault, F.NodeLoss):
            self._node_loss(fault, event.starts, now, event.index)
        elif isinstance(fault, F.MemoryLeak):
            self._memory_leak(rows, fault, event, now)
        elif isinstance(fault, F.ReadinessOutage):
            self._readiness_outage(rows, event.starts, now)
        elif isinstance(fault, F.PodHang):
            self._pod_hang(rows, fault, event, now)
        else:
            self._metrics_fault(fault, rows, event.starts)

    def _victim_ranks(self, i: int) -> np.ndarray:
        """(K,) each slot's rank a fault's ``ordinal`` names in row ``i``: a StatefulSet row's pod
        ordinal; another row's: its creation rank among the live pods (oldest 0; -1 for empty slots)."""
        if self._ordered[i]:
            return self._ordinals(i)
        live = np.flatnonzero(self._pod_phase[i] != EMPTY)
        ranks = np.full(self.K, -1, dtype=np.int64)
        ranks[live[np.argsort(self._pod_serial[i, live], kind="stable")]] = np.arange(live.size)
        return ranks

    def _victims(self, i: int, slots: np.ndarray, stream, count: int, ordinal: int | None) -> np.ndarray:
        """Positions among row ``i``'s candidate ``slots`` (in canonical order) of a fault's victims:
        the one ``ordinal`` names (no draw), else ``count`` drawn from the service's ``stream``."""
        if ordinal is not None:
            return F.named_victim(slots, self._victim_ranks(i), ordinal)
        return F.choose_victims(stream(self.names[i]), slots.size, count)

    def _pod_crash(self, rows: np.ndarray, count: int, now: float, ordinal: int | None = None) -> None:
        for i in rows.tolist():
            phase = self._pod_phase[i]
            slots = np.flatnonzero((phase == STARTING) | (phase == READY))
            slots = slots[np.argsort(self._pod_serial[i, slots], kind="stable")]
            victims = slots[self._victims(i, slots, self.streams.pod_crash, count, ordinal)]
            self._restart_containers(np.full(victims.size, i), i * self.K + victims, np.full(victims.size, now))
        self._refresh(rows)

    def _pod_hang(self, rows: np.ndarray, fault: F.PodHang, event: F.FaultEvent, now: float) -> None:
        """Start: ``fault.count`` Ready pods of each of ``rows`` (victims as a pod crash's, from the
        service's pod-hang stream) hang: running-not-Ready (held: Starting with no end), serving
        nothing, their containers untouched; a sticky fault marks them (``_pod_sticky``). End:
        those still hung (not restarted, not deleted; a sticky victim's replacement too) get Ready
        at ``now``, unless a readiness outage or probe holds their service."""
        if event.starts:
            hung = []
            for i in rows.tolist():
                slots = np.flatnonzero(self._pod_phase[i] == READY)
                slots = slots[np.argsort(self._pod_serial[i, slots], kind="stable")]
                victims = slots[self._victims(i, slots, self.streams.pod_hang, fault.count, fault.ordinal)]
                hung += [(i, int(s)) for s in self._pod_serial[i, victims].tolist()]
                flat = i * self.K + victims
                self._flat_phase[flat] = STARTING  # phase end stays INF: held until released
                self._flat_ready_transition_s[flat] = now
                self._flat_hung[flat] = True
                if fault.sticky:
                    self._flat_sticky[flat] = event.index
            self._any_hung = self._any_hung or bool(hung)
            self._any_sticky = self._any_sticky or (fault.sticky and bool(hung))
            self._hung_by_fault[event.index] = hung
        else:
            flat = np.array([i * self.K + s for i, serial in self._hung_by_fault.pop(event.index, [])
                             for s in np.flatnonzero((self._pod_serial[i] == serial) & self._pod_hung[i]).tolist()],
                            dtype=np.int64)
            flat = np.union1d(flat, self._end_sticky_hang(event.index))
            self._flat_hung[flat] = False
            self._mark_ready(flat, np.full(flat.size, now))
        self._refresh(rows)

    def _end_sticky_hang(self, index: int) -> np.ndarray:
        """The sticky pod-hang fault ``index`` ends: its slots (victims, replacements) and waiting
        StatefulSet ordinals are no longer sticky. Returns the flat slots of those it holds hung."""
        if not self._any_sticky:
            return np.zeros(0, dtype=np.int64)
        flat = np.flatnonzero(self._flat_sticky == index)
        self._flat_sticky[flat] = -1
        self._sticky_ordinals = {k: v for k, v in self._sticky_ordinals.items() if v != index}
        self._any_sticky = bool(self._sticky_ordinals) or bool((self._flat_sticky >= 0).any())
        return flat[self._flat_hung[flat]]

    def _hang_sticky(self, flat: np.ndarray) -> np.ndarray:
        """Of the pods ``flat`` through their start-up, those a sticky hang keeps hung (not Ready:
        Starting with no end, hung) are held; returns the mask of the others."""
        sticky = self._flat_sticky[flat] >= 0
        held = flat[sticky]
        self._flat_phase[held] = STARTING
        self._flat_phase_end_s[held] = INF
        self._flat_hung[held] = True
        return ~sticky

    def _keep_sticky_ordinal(self, i: int, slot: int) -> None:
        """StatefulSet row ``i``'s pod ``slot``, a sticky hang's, is being deleted: the pod the
        StatefulSet controller recreates at its ordinal (now or later, in order) takes its place."""
        self._sticky_ordinals[(i, int(self._ordinals(i)[slot]))] = int(self._pod_sticky[i, slot])

    def _stick_to_newest(self, i: int, sticky: int) -> None:
        """Row ``i``'s newest pod, just created by its ReplicaSet in place of a deleted victim of the
        sticky hang ``sticky`` (fault index), takes its place."""
        live = np.flatnonzero(self._pod_phase[i] != EMPTY)
        self._pod_sticky[i, live[np.argmax(self._pod_serial[i, live])]] = sticky

    def _take_sticky_ordinals(self, i: int, slots: np.ndarray) -> None:
        """StatefulSet row ``i``'s pods just given ordinals (``slots``): one recreated at the ordinal
        of a deleted sticky victim takes its place in the sticky hang."""
        if not self._sticky_ordinals:
            return
        ordinals = self._ordinals(i)
        for slot in slots.tolist():
            sticky = self._sticky_ordinals.pop((i, int(ordinals[slot])), -1)
            if sticky >= 0:
                self._pod_sticky[i, slot] = sticky

    def _node_loss(self, fault: F.NodeLoss, starts: bool, now: float, index: int) -> None:
        """Nodes vanish (``starts``) with the pods on them, or come back (fault ``index``). A
        Deployment's lost pods are replaced at once (its ReplicaSet counts them out); a
        StatefulSet's are replaced only once their nodes are back (statefulsets.py)."""
        lost = self.config.lost_capacity(fault.share_ratio)
        if not starts:
            self._capacity_lost -= lost
            self._n_parked_pods = max(self._n_parked_pods, 1)  # force a scan: capacity is back
            self._unpark(now)
            self._lost_pods = {key: by for key, by in self._lost_pods.items() if by != index}
            if self._any_ordered:
                self._sts_nodes_back(index, now)
            return
        self._capacity_lost += lost
        pod_rows, pod_slots = np.nonzero(self._pod_phase >= STARTING)
        order = np.lexsort((self._pod_serial[pod_rows, pod_slots], pod_rows))  # canonical: service, then serial
        pod_rows, pod_slots = pod_rows[order], pod_slots[order]
        pick = F.choose_victims(self.rng, pod_rows.size, F.node_loss_victim_count(fault.share_ratio, pod_rows.size))
        if pick.size == 0:
            return
        victim_rows, victim_slots = pod_rows[pick], pod_slots[pick]
        victim_revisions = self._pod_revision_seq[victim_rows, victim_slots]
        stateful = self._ordered[victim_rows]
        if stateful.any():
            self._sts_lose_to_node(victim_rows[stateful], victim_slots[stateful], index)
        for i, serial in zip(victim_rows[~stateful].tolist(), self._pod_serial[victim_rows[~stateful],
                                                                             victim_slots[~stateful]].tolist()):
            self._lost_pods[(i, serial)] = index
        self._clear_slots(victim_rows, victim_rows * self.K + victim_slots, now)
        for i, revision_seq in zip(victim_rows[~stateful].tolist(), victim_revisions[~stateful].tolist()):
            self._create_pods(np.array([i]), np.array([1]), now, np.array([revision_seq]))  # the ReplicaSets' replacements
        self._refresh(np.unique(victim_rows))

    def lost_to_node(self, i: int, serial: int) -> bool:
        """Whether row ``i``'s pod ``serial``, out of the engine, went with nodes that are not back:
        its object stays (a real one: Terminating once evicted) until they are, or it is force-deleted
        (a StatefulSet's: :meth:`end_termination_at`; a Deployment's: :meth:`forget_lost_pod`)."""
        if self._ordered[i]:
            return (i, self.ordinal_of(i, serial)) in self._sts_lost
        return (i, int(serial)) in self._lost_pods

    def forget_lost_pod(self, i: int, serial: int) -> None:
        """Row ``i``'s pod ``serial`` lost with its node is force-deleted (a Deployment's: already replaced)."""
        self._lost_pods.pop((i, int(serial)), None)

    def _memory_leak(self, rows: np.ndarray, fault: F.MemoryLeak, event: F.FaultEvent, now: float) -> None:
        if event.starts:
            self._leak_rate_mib_per_s[rows], self._leak_start_s[rows] = fault.rate_mib_per_s, now
            self._leak_fault_index[rows] = event.index
        else:
            rows = rows[self._leak_fault_index[rows] == event.index]
            self._leak_rate_mib_per_s[rows], self._leak_fault_index[rows] = 0.0, -1
            self._pod_degraded[rows] = False
            self._recheck_uniform(rows)
        self._any_leak = bool((self._leak_rate_mib_per_s > 0).any())
        row_pos, pod_slots = np.nonzero(self._pod_phase[rows] != EMPTY)
        pod_rows = rows[row_pos]
        flat = pod_rows * self.K + pod_slots
        self._flat_memory_threshold_s[flat] = self._leak_next(pod_rows, flat)
        self._refresh(rows)

    def _readiness_outage(self, rows: np.ndarray, starts: bool, now: float) -> None:
        """Start: the Ready pods of ``rows`` turn running-not-Ready at ``now`` (held: Starting with
        no end; containers untouched). End, for the rows nothing else still holds (another outage,
        a failed readiness probe): the held pods (through their start-up) get Ready at ``now``;
        pods still starting keep their end."""
        rows = np.unique(rows)
        self._readiness_down[rows] += 1 if starts else -1
        self._update_readiness_hold()
        if starts:
            self._hold_ready_pods(rows, now)
        else:
            self._release_held_pods(rows[~self._readiness_held[rows]], now)

    def _update_readiness_hold(self) -> None:
        """``_readiness_held``: a service whose pods may not get Ready, under a readiness outage
        (a count per fault) or a failed readiness probe (a flag, :mod:`.readiness_probe`)."""
        self._readiness_held = (self._readiness_down > 0) | self._probe_down
        self._any_readiness_down = bool(self._readiness_held.any())

    def _hold_ready_pods(self, rows: np.ndarray, now: float) -> None:
        """The Ready pods of ``rows`` turn running-not-Ready at ``now`` (held: Starting with no end)."""
        flat = self._row_slots(rows)
        flat = flat[self._flat_phase[flat] == READY]
        self._flat_phase[flat] = STARTING  # phase end stays INF: held until released
        self._flat_ready_transition_s[flat] = now
        self._refresh(rows)

    def _release_held_pods(self, rows: np.ndarray, now: float) -> None:
        """The held pods of ``rows`` (no longer held: the caller checked) get Ready at ``now``."""
        flat = self._row_slots(rows)
        flat = flat[(self._flat_phase[flat] == STARTING) & (self._flat_phase_end_s[flat] == INF)
                    & ~self._flat_hung[flat]]  # a hung pod stays hung: its process, not a dependency
        self._mark_ready(flat, np.full(flat.size, now))
        self._refresh(rows)

    def _metrics_fault(self, fault: F.Fault, rows: np.ndarray, starts: bool) -> None:
        counters = {F.MetricsOutage: self._outage_faults, F.StaleMetrics: self._stale_faults,
                    F.NaNMetrics: self._nan_faults}
        counter = counters[type(fault)]
        if isinstance(fault, F.StaleMetrics) and starts:
            fresh = rows[counter[rows] == 0]
            if self._last_tick is not None:
                snapshot_metrics(self._last_tick, fresh, self._frozen_metrics)
                self._stale_since_s[fresh] = self._last_tick.at_s
            else:
                self._freeze_pending += fresh.tolist()
                self._stale_since_s[fresh] = self.now
        counter[rows] += 1 if starts else -1
        self._metric_fault_rows += (1 if starts else -1) * rows.size
