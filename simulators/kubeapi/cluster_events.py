"""The simulated cluster's own Events: what a real cluster's controllers and kubelets record as
the engine's workloads scale, roll out and lose pods (``kubectl describe deployment``, ``kubectl
get events``), with upstream's reasons, types, sources and messages.

:class:`ClusterEvents` diffs the engine's pod slots (:meth:`SimCluster.slot_arrays`) after every
tick and after every API write that changed a workload, and records through
:class:`~simulators.kubeapi.event_recorder.EventRecorder` (client-go's correlation: repeats
counted on one Event, alike ones combined, a spam filter):

- the Deployment controller (``deployment-controller``), on the Deployment: ``ScalingReplicaSet``
  "Scaled up replica set NAME to B from A" / "Scaled down replica set NAME to B from A"
  (pkg/controller/deployment/sync.go, scaleReplicaSet, Kubernetes 1.32) whenever a ReplicaSet's
  spec.replicas as the store shows it changes (the current one's is the Deployment's outside a
  rollout; during one, and for old ones, their pods); a ReplicaSet it has just created (a new
  revision) "Scaled up replica set NAME to B", without a "from", as getNewReplicaSet words it (an
  old one scaled up again from 0, by a rollback, says "to B from 0");
- the ReplicaSet controller (``replicaset-controller``), on the ReplicaSet: ``SuccessfulCreate``
  "Created pod: NAME" for every pod the engine creates, ``SuccessfulDelete`` "Deleted pod: NAME"
  for every pod it removes to scale a ReplicaSet down (pkg/controller/controller_utils.go,
  RealPodControl); for a StatefulSet the StatefulSet controller (``statefulset-controller``), on
  the StatefulSet: "create Pod NAME in StatefulSet SET successful", "delete Pod ... successful"
  (stateful_pod_control.go, recordPodEvent);
- the kubelet (``kubelet``, its node ``sim-node-N`` as source host), on the pod's container
  (fieldPath ``spec.containers{NAME}``): ``Killing`` "Stopping container NAME" when a pod whose
  container runs is deleted (by its controller or a client), and Warning ``BackOff`` "Back-off
  restarting failed container NAME in pod POD_NAMESPACE(UID)" each time a crash-looping pod's
  container crashes into its back-off (kuberuntime_manager.go, doBackOff).

Who removed a pod is told apart without hooks into the engine: a pod deleted through the API is
named by :meth:`ClusterEvents.deleted_by_client` (its ReplicaSet recreates it: a create, no
delete); a pod gone and replaced within the same revision in the same tick went with a lost node
(no delete, no Killing: its kubelet is gone; its replacement is a create); any other pod gone was
deleted by its controller. Not modelled, so not recorded: scheduling (``Scheduled``,
``FailedScheduling``), image pulls and container starts (``Pulled``, ``Created``, ``Started``),
readiness probe failures (``Unhealthy``: the engine's probe is per service, with no probe output).

Cost: a tick compares the (S, K) slots with the last tick's (a few array operations, ~0.1 ms for
1,000 services) and does per-pod work only for the rows that changed.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np

from simulators.kubeapi import objects as K
from simulators.kubeapi.event_recorder import Source
from simulators.simcluster.slots import EMPTY, READY, STARTING

#: The slot arrays (SlotArrays fields) a sync compares with the last one's.
_KEPT = ("phase", "revision_seq", "restarts", "current_seq", "spec_replicas", "rolling", "restarts_total",
         "created_s")
DEPLOYMENT_CONTROLLER = Source("deployment-controller")
REPLICASET_CONTROLLER = Source("replicaset-controller")
STATEFULSET_CONTROLLER = Source("statefulset-controller")
KUBELET = "kubelet"


class ClusterEvents:
    """The Events of ``store``'s controllers and kubelets (a KubeStore; call under its lock)."""

    def __init__(self, store):
        self.store = store
        self.engine = store.engine
        self.recorder = store.event_recorder
        a = self.engine.slot_arrays()
        self._ident = np.where(a.phase != EMPTY, a.serial, -1)  # (S, K): the serial of the pod in a slot, -1: none
        self._last = SimpleNamespace(**{f: getattr(a, f).copy() for f in _KEPT})  # the slot arrays as last synced
        self._sizes = [_replicaset_sizes(a, i) for i in range(self.engine.n_services)]
        # per workload, the revision seqs whose ReplicaSet existed at the start or was scaled up since
        # (the Deployment controller creates a new revision's with its first pods): a first scale-up
        # of any other is its creation
        self._scaled_before = [set(sizes) | {int(a.current_seq[i])} for i, sizes in enumerate(self._sizes)]
        self._client_deleted: set[tuple[int, str]] = set()  # (row, pod name) deleted through the API, not yet seen gone
        # (row, kind) -> {name: resourceVersion} within one sync (the engine does not move during one)
        self._versions: dict[tuple[int, str], object] = {}  # a dict, or the store's PodVersions

    def deleted_by_client(self, row: int, pod: str) -> None:
        """Pod ``pod`` of workload ``row`` is deleted through the API (before the engine deletes it)."""
        self._client_deleted.add((row, pod))

    def sync(self, rows: list[int] | None = None) -> None:
        """Record what changed since the last sync: in ``rows`` (after an API write to them), or
        in every workload (after a tick)."""
        self._versions = {}
        a = self.engine.slot_arrays()
        if rows is not None:
            for i in rows:
                ident = np.where(a.phase[i] != EMPTY, a.serial[i], -1)
                self._sizes[i] = self._sync_row(i, a, ident)
                self._keep_row(i, a, ident)
            return
        ident = np.where(a.phase != EMPTY, a.serial, -1)
        last = self._last
        changed = ((ident != self._ident).any(axis=1) | (a.spec_replicas != last.spec_replicas)
                   | (a.rolling != last.rolling) | (a.current_seq != last.current_seq)
                   | (a.restarts_total != last.restarts_total))
        for i in np.flatnonzero(changed).tolist():
            self._sizes[i] = self._sync_row(i, a, ident[i])
        self._ident = ident
        for f in _KEPT:
            np.copyto(getattr(last, f), getattr(a, f))

    def _keep_row(self, i: int, a, ident: np.ndarray) -> None:
        self._ident[i] = ident
        for f in _KEPT:
            getattr(self._last, f)[i] = getattr(a, f)[i]

    def _sync_row(self, i: int, a, ident: np.ndarray) -> dict[int, int]:
        """The Events of workload ``i``: its ReplicaSets scaled, pods created and deleted, containers
        stopped, crashes into back-off (in that order, as the controllers act on one change).
        Returns its ReplicaSets' sizes now."""
        w = self.store.workloads[i]
        before = self._ident[i]
        gone = np.flatnonzero((before >= 0) & (before != ident)).tolist()
        new = np.flatnonzero((ident >= 0) & (ident != before)).tolist()
        sizes = _replicaset_sizes(a, i)
        if w.kind == "Deployment":
            self._scaled(w, self._sizes[i], sizes, self._scaled_before[i])
            self._scaled_before[i].update(sizes)
        created = Counter()
        for s in sorted(new, key=lambda s: ident[s]):
            seq = int(a.revision_seq[i, s])
            created[seq] += 1
            self._pod_changed(w, self.engine.pod_name_of(i, int(ident[s]), seq), seq, True)
        last = self._last
        gone_pods = [(int(before[s]), int(last.revision_seq[i, s]), int(last.phase[i, s])) for s in gone]
        born = {self.engine.pod_name_of(i, int(before[s]), int(last.revision_seq[i, s])): float(last.created_s[i, s])
                for s in gone}
        by_controller, running = self._who_deleted(i, gone_pods, created)
        for name, seq in by_controller:
            self._pod_changed(w, name, seq, False)
        for name, seq in running:
            self._kubelet(w, name, born[name], seq, "Normal", "Killing",
                          f"Stopping container {self._container(w, seq)}")
        if a.restarts_total[i] != last.restarts_total[i]:
            same = (before >= 0) & (before == ident)
            crashed = np.flatnonzero(same & (a.restarts[i] > last.restarts[i]) & a.crash_loops[i]).tolist()
            for s in crashed:
                seq = int(a.revision_seq[i, s])
                name = self.engine.pod_name_of(i, int(ident[s]), seq)
                container, uid = self._container(w, seq), K.pod_uid(w.namespace, name, a.created_s[i, s])
                self._kubelet(w, name, a.created_s[i, s], seq, "Warning", "BackOff",
                              f"Back-off restarting failed container {container} in pod {name}_{w.namespace}({uid})")
        return sizes

    def _who_deleted(self, i: int, gone: list[tuple[int, int, int]], created: Counter):
        """Of the pods gone (serial, revision seq, phase before): those their controller deleted, and
        of those and the ones a client deleted, those whose container ran (Killing): (name, seq) each. In
        each revision, as many of the others as it got pods beyond the clients' replacements went
        with a lost node (replaced, neither deleted nor stopped by anyone); a StatefulSet's pods whose
        names a lost node holds went with it too (replaced only once the node is back)."""
        stateful = self.store.workloads[i].kind == "StatefulSet"
        by_seq: dict[int, list[tuple[str, int]]] = {}
        for serial, seq, phase in sorted(gone):
            if stateful and self.engine.lost_to_node(i, serial):
                continue
            by_seq.setdefault(seq, []).append((self.engine.pod_name_of(i, serial, seq), phase))
        by_controller, running = [], []
        for seq, pods in by_seq.items():
            clients = [(n, p) for n, p in pods if (i, n) in self._client_deleted]
            others = [(n, p) for n, p in pods if (i, n) not in self._client_deleted]
            lost = min(len(others), max(0, created[seq] - len(clients)))
            deleted = others[lost:]
            by_controller += [(n, seq) for n, _ in deleted]
            running += [(n, seq) for n, p in clients + deleted if p in (STARTING, READY)]
        self._client_deleted = {key for key in self._client_deleted if key[0] != i}
        return by_controller, running

    # ------------------------------------------------------------------ the recorders
    def _scaled(self, w, before: dict[int, int], after: dict[int, int], existed: set[int]) -> None:
        """The Deployment controller's ScalingReplicaSet Events for the ReplicaSets whose size went
        from ``before`` to ``after`` (revision seq -> replicas); ``existed``: the seqs whose
        ReplicaSet had pods before (any other is a new revision's, created now: no "from")."""
        changes = [(seq, before.get(seq, 0), after.get(seq, 0)) for seq in sorted(set(before) | set(after))]
        for up in (True, False):  # as a rolling sync: the new ReplicaSet up, then the old ones down
            for seq, old, new in changes:
                if new != old and (new > old) == up:
                    self.recorder.record(self._ref(w, "Deployment", w.name, w.uid), "Normal",
                                         "ScalingReplicaSet",
                                         scaling_message(self._replicaset(w, seq), old, new, seq in existed),
                                         DEPLOYMENT_CONTROLLER)

    def _pod_changed(self, w, pod: str, seq: int, created: bool) -> None:
        """The ReplicaSet's (a Deployment's pod) or the StatefulSet controller's Event for a pod it
        created or deleted, in each controller's words."""
        reason = "SuccessfulCreate" if created else "SuccessfulDelete"
        if w.kind == "Deployment":
            self.recorder.record(self._replicaset_ref(w, seq), "Normal", reason,
                                 f"{'Created' if created else 'Deleted'} pod: {pod}", REPLICASET_CONTROLLER)
        else:
            self.recorder.record(self._ref(w, w.kind, w.name, w.uid), "Normal", reason,
                                 f"{'create' if created else 'delete'} Pod {pod} in StatefulSet {w.name} successful",
                                 STATEFULSET_CONTROLLER)

    def _kubelet(self, w, pod: str, created_s: float, seq: int, event_type: str, reason: str, message: str) -> None:
        """The kubelet's Event on the container of pod ``pod`` created at ``created_s`` (simulation s)."""
        ref = {**self._ref(w, "Pod", pod, K.pod_uid(w.namespace, pod, created_s), "v1"),
               "fieldPath": f"spec.containers{{{self._container(w, seq)}}}"}
        self.recorder.record(ref, event_type, reason, message, Source(KUBELET, K.node_name(pod)))

    def _replicaset(self, w, seq: int) -> str:
        return f"{w.name}-{self.engine.revision_hash_of(w.index, seq)}"

    def _replicaset_ref(self, w, seq: int) -> dict:
        name = self._replicaset(w, seq)
        return self._ref(w, "ReplicaSet", name, K.uid_for("ReplicaSet", w.namespace, name))

    def _ref(self, w, kind: str, name: str, uid: str, api_version: str = "apps/v1") -> dict:
        """The ObjectReference client-go's GetReference makes of ``w``'s object ``kind``/``name``:
        kind, apiVersion, namespace, name, uid and its resourceVersion now (the store's, memoized
        for the sync; a pod gone before it was ever served has none to show)."""
        versions = self._versions.get((w.index, kind))
        if versions is None:
            versions = self._versions[(w.index, kind)] = self.store.versions_of(w, kind)
        ref = {"kind": kind, "namespace": w.namespace, "name": name, "uid": uid, "apiVersion": api_version}
        version = versions.get(name)
        if version is not None:
            ref["resourceVersion"] = version
        return ref

    @staticmethod
    def _container(w, seq: int) -> str:
        """The container of the pods of ``w``'s revision ``seq`` (its template's first; the
        workload's name once the template is forgotten)."""
        template = w.templates.get(seq) or {}
        containers = (template.get("spec") or {}).get("containers") or [{}]
        return containers[0].get("name") or w.name


def scaling_message(replicaset: str, old: int, new: int, existed: bool = True) -> str:
    """The Deployment controller's ScalingReplicaSet message (Kubernetes 1.32): scaleReplicaSet's
    "Scaled up replica set NAME to NEW from OLD", getNewReplicaSet's "Scaled up replica set NAME
    to NEW" for a ReplicaSet it has just created (``existed`` False)."""
    if not existed:
        return f"Scaled up replica set {replicaset} to {new}"
    return f"Scaled {'up' if new > old else 'down'} replica set {replicaset} to {new} from {old}"


def _replicaset_sizes(a, i: int) -> dict[int, int]:
    """spec.replicas of workload ``i``'s ReplicaSets with any, by revision seq, as the store shows
    them: the current one's is the Deployment's outside a rollout, any other's its pods."""
    live = a.phase[i] != EMPTY
    sizes = Counter(a.revision_seq[i][live].tolist())
    if not a.rolling[i]:
        sizes[int(a.current_seq[i])] = int(a.spec_replicas[i])
    return {seq: n for seq, n in sizes.items() if n}
