"""Revisions and rolling updates: rollout, rolling restart, rollback, pause, one RollingUpdate sync.

Same rules as ``ReferenceCluster.progress_rollout`` (tests/support/reference_cluster.py: the model
in plain loops).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.simcluster.slots import EMPTY, READY, initial_pods_created_s
from simulators.workload import Revision, RevisionProps, ServiceConfig, revision_hash, rollback_target, rollout_budget


class Rollouts:
    """SimCluster's revisions and rollouts (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_revisions(self, services: Sequence[ServiceConfig]) -> None:
        S = self.n_services
        # per service, its revisions by seq, oldest first (seq is a revision's index for good: a
        # trimmed one leaves a gap, see forget_revisions); the first dates from its initial pods, not the start
        created_s = initial_pods_created_s(services, self.now)
        self._revisions: list[dict[int, Revision]] = [
            {0: Revision(1, 0, revision_hash(self.salt, s.name, 0), s.initial_revision, float(created_s[i]))}
            for i, s in enumerate(services)]
        self._next_seq = [1] * S  # per service, the seq of its next revision
        self._current_seq = np.zeros(S, dtype=np.int64)  # seq of the current revision
        self._revision_number = np.ones(S, dtype=np.int64)
        self._current_crash_loops = np.zeros(S, dtype=bool)  # properties of the current revision's pods
        self._current_error_ratio, self._current_extra_latency_s = np.zeros(S), np.zeros(S)
        for i in range(S):
            self._set_current_props(i)
        self._initial_error_ratio = self._current_error_ratio.copy()
        # Rows whose pods all share the same properties are summed without per-pod weights.
        self._uniform_error_ratio = self._current_error_ratio.copy()
        self._uniform_extra_latency_s = self._current_extra_latency_s.copy()
        self._row_mixed = np.zeros(S, dtype=bool)
        self._any_mixed = False  # _row_mixed.any(), kept where a row is marked (a run of ticks reads it)
        self._pod_error_ratio[:] = self._current_error_ratio[:, None]
        self._pod_extra_latency_s[:] = self._current_extra_latency_s[:, None]
        self._pod_crash_loops[:] = self._current_crash_loops[:, None]
        # Fast-path switches: each turns on for good the first time its case appears.
        self._error_ratio_varies = False  # some pod's error ratio differs from its service's initial one
        # some pod may add latency (revision or degraded)
        self._any_extra_latency = bool((self._current_extra_latency_s > 0).any())
        self._any_crash_loop = bool(self._current_crash_loops.any())  # some revision crash-loops
        self._rolling = np.zeros(S, dtype=bool)
        self._paused = np.zeros(S, dtype=bool)  # spec.paused: a rollout makes no progress
        self._rolling_rows: list[int] = []

    def _set_current_props(self, i: int) -> None:
        props = self._revisions[i][int(self._current_seq[i])].props
        self._current_crash_loops[i] = props.crash_loop
        self._current_error_ratio[i] = props.pod_error_ratio(self.config.services[i].base_error_ratio)
        self._current_extra_latency_s[i] = props.extra_latency_s

    def revisions(self, i: int) -> list[Revision]:
        """Revision history of service ``i`` (ReplicaSets), oldest first."""
        return list(self._revisions[i].values())

    def current_revision(self, i: int) -> Revision:
        return self._revisions[i][int(self._current_seq[i])]

    def rollout(self, i: int, props: RevisionProps | None = None, now: float | None = None) -> int:
        """Start a rolling update of service ``i`` to a new revision with ``props`` (default:
        the current one's, i.e. a restart). Returns the new revision number."""
        self._flush()
        now = self.now if now is None else now
        revisions = self._revisions[i]
        props = revisions[int(self._current_seq[i])].props if props is None else props
        revision_seq, number = self._next_seq[i], max(r.number for r in revisions.values()) + 1
        self._next_seq[i] += 1
        pod_template_hash = revision_hash(self.salt, self.names[i], revision_seq)
        revisions[revision_seq] = Revision(number, revision_seq, pod_template_hash, props, now)
        self._make_current(i, revision_seq, number)
        return number

    def rolling_restart(self, i: int, now: float | None = None) -> int:
        """A new revision with the same properties (new pod-template-hash), rolled out."""
        return self.rollout(i, None, now)

    def rollback(self, i: int, revision: int | str | None = None, now: float | None = None,
                 fast: bool = False) -> int:
        """Roll service ``i`` back to ``revision`` (number or hash; default the previous one).
        The revision gets the next number, as in Kubernetes. Returns that number.

        ``fast`` (a bad release caught during its rollout): the rollout stops at once, the pods
        of the abandoned revision that are not ready yet (serving nothing) are deleted now, so
        the stable revision's pods are recreated in the room they free, within the surge, at once
        (the Deployment controller syncs on the change); ready ones go as the stable pods become
        ready (max unavailable holds)."""
        self._flush()
        now = self.now if now is None else now
        revisions = self._revisions[i]
        target = rollback_target(list(revisions.values()), self.current_revision(i), revision, self.names[i])
        if target.seq == int(self._current_seq[i]):
            return target.number
        number = max(r.number for r in revisions.values()) + 1
        revisions[target.seq] = Revision(number, target.seq, target.hash, target.props, target.created_s)
        self._make_current(i, target.seq, number)
        if fast and not self._paused[i] and not self._ordered[i]:  # a StatefulSet updates one pod at a time
            phase = self._pod_phase[i]
            unready = (phase != EMPTY) & (phase != READY) & ~self._new_mask(i)
            if unready.any():
                self._remove_ranked(np.array([i]), np.array([int(unready.sum())]), now, unready[None, :])
                self._refresh(np.array([i]))
            self._progress_rollout(i, now)  # the Deployment controller syncs on the change, not a tick later
        return number

    def forget_revisions(self, i: int, seqs: Sequence[int]) -> None:
        """Drop revisions ``seqs`` of service ``i`` from its history (their ReplicaSets were
        deleted, see the Deployment's revisionHistoryLimit): they are no longer listed nor can be
        rolled back to. Only an old revision with no pods can go (ValueError otherwise)."""
        self._flush()
        live = self._pod_revision_seq[i][self._pod_phase[i] != EMPTY]
        for seq in seqs:
            sts_current = bool(self._ordered[i]) and seq == int(self._sts_current_seq[i])
            if seq == int(self._current_seq[i]) or sts_current or bool((live == seq).any()):
                raise ValueError(f"revision seq {seq} of {self.names[i]} is current or has pods: it cannot be forgotten")
        for seq in seqs:
            del self._revisions[i][seq]
            self._grace_s.pop((i, seq), None)

    def set_paused(self, i: int, paused: bool, now: float | None = None) -> None:
        """Pause or resume service ``i``'s rollouts (a Deployment's ``spec.paused``): while paused
        a rollout makes no progress (no pods of the new revision are created, none of the old
        ones removed; scaling still works); on resume it continues at once."""
        self._flush()
        was_paused, self._paused[i] = bool(self._paused[i]), bool(paused)
        if was_paused and not paused and self._rolling[i]:
            self._progress_rollout(i, self.now if now is None else now)

    @property
    def paused(self) -> np.ndarray:
        """(S,) bool: rollouts paused."""
        return self._paused.copy()

    def _make_current(self, i: int, revision_seq: int, number: int) -> None:
        self._current_seq[i] = revision_seq
        self._revision_number[i] = number
        self._set_current_props(i)
        # Switch off the fast paths this revision breaks (see _init_revisions).
        self._error_ratio_varies |= bool(self._current_error_ratio[i] != self._initial_error_ratio[i])
        self._any_extra_latency |= bool(self._current_extra_latency_s[i] > 0)
        self._any_crash_loop |= bool(self._current_crash_loops[i])
        if (self._current_error_ratio[i] != self._uniform_error_ratio[i]
                or self._current_extra_latency_s[i] != self._uniform_extra_latency_s[i]):
            self._row_mixed[i] = self._any_mixed = True  # new pods will differ from the old ones until the rollout ends
        self._rolling[i] = True
        if i not in self._rolling_rows:
            self._rolling_rows = sorted(self._rolling_rows + [i])

    def _progress_rollout(self, i: int, now: float) -> None:
        """One RollingUpdate sync for service ``i`` (see ReferenceCluster.progress_rollout); a
        StatefulSet's sync for a StatefulSet row (:mod:`.statefulsets`)."""
        if self._ordered[i]:
            self._sync_statefulset(i, now)
            return
        service = self.config.services[i]
        spec_replicas = int(self._spec_replicas[i])
        surge, unavailable = rollout_budget(spec_replicas, service.max_surge, service.max_unavailable)
        row = np.array([i])
        new_pods = self._new_mask(i)
        if new_pods.sum() > spec_replicas:
            self._remove_ranked(row, np.array([new_pods.sum() - spec_replicas]), now, new_pods[None, :])
        n_new = min(int(new_pods.sum()), spec_replicas)
        room = min(spec_replicas + surge - int(self._n_pods[i]), spec_replicas - n_new)
        self._create_pods(row, np.array([room]), now)
        min_available = spec_replicas - unavailable
        phase, new_pods = self._pod_phase[i], self._new_mask(i)
        new_unavailable = int((new_pods & (phase != READY)).sum())
        max_down = int(self._n_pods[i]) - min_available - new_unavailable
        old_pods = (phase != EMPTY) & ~new_pods
        if max_down > 0:
            self._remove_ranked(row, np.array([max_down]), now, (old_pods & (phase != READY))[None, :])
        phase = self._pod_phase[i]
        down = int((phase == READY).sum()) - min_available
        if down > 0:
            self._remove_ranked(row, np.array([down]), now, ((phase != EMPTY) & ~self._new_mask(i))[None, :])
        phase, new_pods = self._pod_phase[i], self._new_mask(i)
        all_new = int(new_pods.sum()) == int((phase != EMPTY).sum()) == spec_replicas
        if all_new and bool((phase[new_pods] == READY).all()):
            self._rolling[i] = False
            self._rolling_rows.remove(i)
            self._recheck_uniform(row)
        self._refresh(row)

    def _new_mask(self, i: int) -> np.ndarray:
        return (self._pod_phase[i] != EMPTY) & (self._pod_revision_seq[i] == self._current_seq[i])
