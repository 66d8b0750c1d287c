"""SimCluster as the controller's ``Cluster`` port: targets, views, statuses, per-pod arrays, actions.

See :mod:`simulators.ports` for the port adapters built on it.
"""

from __future__ import annotations

import math
from itertools import repeat
from typing import NamedTuple, Sequence

import numpy as np

from controller.core.scaling.hpa_propose import PodSlots
from controller.errors import NotFound
from controller.model import Action, ActionKind, PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView, TargetSelector
from simulators.lazy_names import LazyStrings
from simulators.simcluster import pod_listing, view_compiled
from simulators.simcluster.slots import BACKOFF, EMPTY, PENDING, READY, STARTING
from simulators.workload import revision_hash


#: Target lists whose rows ``rows_of`` keeps.
ROWS_CACHE = 2

#: The (S, K) slot arrays a pod's PodStatus is made of, and the (S,) ones its workload's TargetStatus
#: reads besides: a row whose values in these are as they were keeps its statuses (see ``_note_changes``).
POD_STATUS_FIELDS = ("_pod_phase", "_pod_created_s", "_pod_ready_transition_s", "_pod_restarts", "_pod_serial",
                     "_pod_revision_seq")
ROW_STATUS_FIELDS = ("_spec_replicas", "_n_ready", "_revision_number", "_rolling")


class SlotArrays(NamedTuple):
    """Read-only views of the pod slots and the per-service state a reader diffs between ticks
    (``SimCluster.slot_arrays``): (S, K) ``phase`` (:data:`~.slots.EMPTY`: no pod), ``serial``
    (a pod is its service's row and serial), ``revision_seq``, ``restarts``, ``crash_loops``
    (its revision crash-loops); (S,) ``current_seq``, ``spec_replicas``, ``rolling``,
    ``restarts_total``; (S, K) ``created_s`` (the slot's pod's creation, simulation s). Views: they change as
    the cluster does; copy what you keep."""

    phase: np.ndarray
    serial: np.ndarray
    revision_seq: np.ndarray
    restarts: np.ndarray
    crash_loops: np.ndarray
    current_seq: np.ndarray
    spec_replicas: np.ndarray
    rolling: np.ndarray
    restarts_total: np.ndarray
    created_s: np.ndarray


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


class ClusterPort:
    """SimCluster's reads and the ``Cluster`` port (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_port(self) -> None:
        self._view_cache: tuple[list, tuple] | None = None  # the last rows_of entry used
        self._rows_cache: list[tuple[list, tuple]] = []  # rows_of's entries (a copy of the list), most recent first
        self._pod_arrays_cache: tuple[tuple, tuple, dict] | None = None  # (targets, pod arrays, pod_arrays)
        self._every_cache: tuple[np.ndarray, np.ndarray, tuple[bool, bool]] | None = None  # _every_service's last answer
        # what the statuses and pod names were last made of, made on the first read (_note_changes):
        # the slot and row arrays as seen (bit copies: NaN equals NaN), (S,) rows changed since
        # their status was made, per row (its revisions' count, its last TargetStatus), and per
        # slot (S * K,) the name, revision number (str) and PodStatus of its pod, kept where it exists
        self._seen_pods: tuple[np.ndarray, ...] | None = None
        self._seen_rows: tuple[np.ndarray, ...] = ()
        self._status_stale = np.zeros(0, dtype=bool)
        self._status_cache: list[tuple[int, TargetStatus] | None] = []
        self._slot_names = self._slot_revisions = self._slot_pods = np.zeros(0, dtype=object)
        self._pod_stale = np.zeros(0, dtype=bool)  # (S * K,) slots whose kept PodStatus is out of date
        # bumped by _note_changes when a pod came, went or was named anew (equal counts: the same pods with
        # the same names, in the same slots); pod_signals' names and revision numbers as lists, kept for the
        # count they were made at
        self._pods_generation = 0
        self._signal_names: tuple[int, list[str], list[str]] | None = None

    def slot_arrays(self) -> SlotArrays:
        """The pod slots and per-service state as read-only views, queued changes applied first
        (sim serve diffs them after every tick and write to tell what the controllers did)."""
        self._flush()
        return SlotArrays(*(_read_only(a) for a in (
            self._pod_phase, self._pod_serial, self._pod_revision_seq, self._pod_restarts, self._pod_crash_loops,
            self._current_seq, self._spec_replicas, self._rolling, self._restarts_total, self._pod_created_s)))

    def pod_name_of(self, i: int, serial: int, revision_seq: int) -> str:
        """The name of service ``i``'s pod ``serial`` of revision seq ``revision_seq`` (gone or not)."""
        return self._name_of(i, serial, revision_seq)

    def revision_hash_of(self, i: int, revision_seq: int) -> str:
        """The pod-template-hash of service ``i``'s revision seq ``revision_seq`` (forgotten or not)."""
        rev = self._revisions[i].get(revision_seq)
        return rev.hash if rev is not None else revision_hash(self.salt, self.names[i], revision_seq)

    @property
    def spec_replicas(self) -> np.ndarray:
        """(S,) int: desired replicas."""
        self._flush()
        return self._spec_replicas.copy()

    @property
    def ready_replicas(self) -> np.ndarray:
        """(S,) int: ready pods."""
        self._flush()
        return self._n_ready.copy()

    @property
    def pod_count(self) -> np.ndarray:
        """(S,) int: existing pods (status.replicas)."""
        self._flush()
        return self._n_pods.copy()

    @property
    def running_pods(self) -> np.ndarray:
        """(S,) int: running (starting or ready) pods as of the last tick: those whose containers
        report a working set (cAdvisor's container_memory_working_set_bytes)."""
        return self._n_running.copy()

    @property
    def rollout_in_progress(self) -> np.ndarray:
        """(S,) bool."""
        self._flush()
        return self._rolling.copy()

    @property
    def capacity_lost(self) -> int:
        """Pods of node capacity currently lost to node-loss faults."""
        return self._capacity_lost

    def index(self, target: TargetRef | str) -> int:
        """Service index of a TargetRef or name; NotFound when unknown."""
        name = target.name if isinstance(target, TargetRef) else target
        if name not in self.index_of or (isinstance(target, TargetRef)
                                         and target.namespace != self.config.services[self.index_of[name]].namespace):
            raise NotFound(f"no simulated workload {target}", target=str(target), status=404)
        return self.index_of[name]

    def ref(self, i: int) -> TargetRef:
        return TargetRef(self.config.services[i].namespace, self.names[i])

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        """The workloads a selector matches (the ``Cluster`` port), sorted: same namespace
        and kind, listed by name, or matching the label selector (TargetSelector.matches)."""
        if selector.kind != "Deployment":
            return []
        refs = []
        for cfg in self.config.services:
            if cfg.namespace != selector.namespace:
                continue
            if selector.names and cfg.name not in selector.names:
                continue
            if not selector.names and not selector.matches(dict(cfg.labels)):
                continue
            refs.append(TargetRef(cfg.namespace, cfg.name))
        return sorted(refs)

    def view(self, targets: Sequence[TargetRef] | None = None, with_statuses: bool = False,
             with_paused: bool = False, rows: tuple[np.ndarray, np.ndarray] | None = None) -> ClusterView:
        """Replica counts of ``targets`` (default: all services) as arrays: the ``Cluster``
        port's ``observe``. Fast: no per-pod objects unless ``with_statuses``. ``paused`` (rollouts
        paused; False for unknown targets) only ``with_paused``, else None. ``rows``: what
        ``rows_of(targets)`` gave, kept by the caller (None: found here)."""
        self._flush()
        if targets is None:
            rows, exists = np.arange(self.n_services), np.ones(self.n_services, dtype=bool)
        else:
            rows, exists = self.rows_of(targets) if rows is None else rows
        every, all_exist = self._every_service(rows, exists)
        statuses = () if not with_statuses else self._statuses(
            rows[exists], None if targets is None else [t for t, ok in zip(targets, exists.tolist()) if ok])
        if every:  # every service, in order (each cycle of a simulation): the same values without the gathers
            f64 = np.float64
            return ClusterView(spec=self._spec_replicas.astype(f64), status=self._n_pods.astype(f64),
                               ready=self._n_ready.astype(f64), rollout=self._rolling.copy(), exists=exists,
                               statuses=statuses, paused=self._paused.copy() if with_paused else None)
        gathered = view_compiled.try_gather_view(rows, exists, self._spec_replicas, self._n_pods, self._n_ready,
                                                 self._rolling, self._paused if with_paused else None)
        if gathered is not None:  # the gathers below in one compiled pass (a policy's targets: sorted by name)
            counts, flags = gathered  # (rows by index: unpacking an array row by row costs ~3x)
            return ClusterView(spec=counts[0], status=counts[1], ready=counts[2], rollout=flags[0], exists=exists,
                               statuses=statuses, paused=flags[1] if with_paused else None)
        if all_exist:  # np.where(exists, ..., 0) would keep every value: the gather alone
            pick = lambda a: a[rows].astype(np.float64)  # noqa: E731
            flag = lambda a: a[rows]  # noqa: E731
        else:
            pick = lambda a: np.where(exists, a[rows], 0).astype(np.float64)  # noqa: E731
            flag = lambda a: exists & a[rows]  # noqa: E731
        return ClusterView(spec=pick(self._spec_replicas), status=pick(self._n_pods), ready=pick(self._n_ready),
                           rollout=flag(self._rolling), exists=exists, statuses=statuses,
                           paused=flag(self._paused) if with_paused else None)

    def _every_service(self, rows: np.ndarray, exists: np.ndarray) -> tuple[bool, bool]:
        """(``rows`` is every service in order and each exists, every target exists), kept for
        the last ``rows`` object asked about: rows_of hands the same arrays back for the same targets."""
        if self._every_cache is None or self._every_cache[0] is not rows or self._every_cache[1] is not exists:
            all_exist = bool(exists.all())
            every = rows.size == self.n_services and all_exist and bool(np.array_equal(rows, np.arange(rows.size)))
            self._every_cache = (rows, exists, (every, all_exist))
        return self._every_cache[2]

    def rows_of(self, targets: Sequence[TargetRef]) -> tuple[np.ndarray, np.ndarray]:
        """(service index of each target, 0 where unknown; whether it exists), both (N,); kept
        for the last ROWS_CACHE target lists (a cycle reads its whole list and, for the start-up
        observer, a subset: one entry would rebuild the whole list's rows every cycle)."""
        key = targets if isinstance(targets, list) else list(targets)  # compared as it is: no copy per call
        for k, entry in enumerate(self._rows_cache):
            if entry[0] == key:  # same TargetRef objects: an identity check per element
                if k:
                    self._rows_cache.insert(0, self._rows_cache.pop(k))
                self._view_cache = entry
                return entry[1]
        rows, exists = [], []
        for t in key:
            i = self.index_of.get(t.name, -1)
            ok = i >= 0 and self.config.services[i].namespace == t.namespace and t.kind == "Deployment"
            rows.append(i if ok else 0)
            exists.append(ok)
        self._view_cache = (list(key), (np.array(rows, dtype=np.int64), np.array(exists, dtype=bool)))  # a copy: lists may change
        self._rows_cache.insert(0, self._view_cache)
        del self._rows_cache[ROWS_CACHE:]
        return self._view_cache[1]

    def statuses(self, targets: Sequence[TargetRef] | None = None) -> list[TargetStatus]:
        """Status of the given workloads (default: all), with their pods, at ``self.now``. (The
        Cluster port's ``observe`` returns a ClusterView: see ``view`` and simulators/ports.py.)

        Pod times (start_time, ready_transition_time) are epoch seconds; phase is Pending or
        Running; ``revision`` strings are revision numbers. Slow path: builds objects.
        """
        self._flush()
        rows = range(self.n_services) if targets is None else [self.index(t) for t in targets]
        return list(self._statuses(np.asarray(rows, dtype=np.int64)))

    def _statuses(self, rows: np.ndarray, refs: Sequence[TargetRef] | None = None) -> tuple[TargetStatus, ...]:
        """The TargetStatus of each service at ``rows`` (R,) int, at ``self.now`` (queued changes
        flushed), its ``ref`` the one of ``refs`` (R,) at its place (the caller's own objects, of
        the same value: a dict keyed by them finds a status's ref by identity, without an
        ``__eq__``; default ``ref(i)``). A row whose pods, counts and revisions are as when its
        status was last made keeps that status, the same object (a TargetStatus has no
        observation time to restamp): most rows of a cycle, as a tick moves the pods of a few;
        the others are made again (``_status``). A kept status whose ref is not the caller's
        object is copied with it (the first read of a target list, or of a status made again; the
        copy is kept)."""
        self._note_changes()
        self._refresh_pods()
        cache, revisions = self._status_cache, self._revisions
        for i in rows[self._status_stale[rows]].tolist():  # made again first: the loop below only reads
            cache[i] = (len(revisions[i]), self._status(i))
        self._status_stale[rows] = False
        out = []
        for i, ref in zip(rows.tolist(), repeat(None) if refs is None else refs):
            count, status = cache[i]
            if count != len(revisions[i]):  # forget_revisions changes only the count
                count, status = cache[i] = (len(revisions[i]), self._status(i))
            if ref is not None and status.ref is not ref:
                status = _with_ref(status, ref)
                cache[i] = (count, status)
            out.append(status)
        return tuple(out)

    def _note_changes(self) -> None:
        """Compare the arrays the statuses are made of with those last seen: each row that changed
        is marked for a new status, each slot that changed for a new PodStatus, and the pods of
        the slots filled since, or whose serial or revision changed, get their name and revision
        number made again (every pod of a row whose revision number changed: a rollback
        renumbers the revision it returns to). Cost: a few (S, K) compares."""
        pods = tuple(_bits(getattr(self, name)) for name in POD_STATUS_FIELDS)
        counts = tuple(getattr(self, name) for name in ROW_STATUS_FIELDS)
        seen = self._seen_pods
        if seen is None:
            S, K = self.n_services, self.K
            rows, renamed = np.arange(S), np.ones((S, K), dtype=bool)
            self._status_stale, self._status_cache = np.ones(S, dtype=bool), [None] * S
            self._slot_names, self._slot_revisions, self._slot_pods = (np.full(S * K, None, dtype=object)
                                                                       for _ in range(3))
            self._pod_stale = np.ones(S * K, dtype=bool)
            self._seen_pods = tuple(a.copy() for a in pods)
            self._seen_rows = tuple(a.copy() for a in counts)
            went = True
        else:
            renamed = (pods[4] != seen[4]) | (pods[5] != seen[5])
            moved = renamed.copy()
            for now_a, seen_a in zip(pods[:4], seen[:4]):
                moved |= now_a != seen_a
            renumbered = counts[2] != self._seen_rows[2]
            changed = moved.any(axis=1) | renumbered
            for now_a, seen_a in zip(counts, self._seen_rows):
                changed |= now_a != seen_a
            rows = np.flatnonzero(changed)
            if rows.size == 0:
                return
            renamed |= seen[0] == EMPTY  # a pod named anew: a slot filled may keep the serial it had
            renamed[renumbered] = moved[renumbered] = True
            went = bool(((seen[0][rows] != EMPTY) & (pods[0][rows] == EMPTY)).any())
            self._pod_stale |= moved.ravel()
            for now_a, seen_a in zip(pods, seen):
                seen_a[rows] = now_a[rows]
            for now_a, seen_a in zip(counts, self._seen_rows):
                seen_a[rows] = now_a[rows]
        self._status_stale[rows] = True
        named = np.flatnonzero(renamed & (self._pod_phase != EMPTY))
        if went or named.size:
            self._pods_generation += 1
        self._name_slots(named)

    def _name_slots(self, flat: np.ndarray) -> None:
        """Make the name and revision number (str) of the pods at the flat slot indices ``flat`` (F,)."""
        if flat.size == 0:
            return
        pod_rows, serials, seqs = flat // self.K, self._pod_serial.ravel()[flat], self._pod_revision_seq.ravel()[flat]
        names, numbers = [], []
        for i, serial, seq in zip(pod_rows.tolist(), serials.tolist(), seqs.tolist()):
            names.append(self._name_of(i, serial, seq))
            numbers.append(str(self._revisions[i][seq].number))
        self._slot_names[flat] = names
        self._slot_revisions[flat] = numbers

    def _refresh_pods(self) -> None:
        """Make again, in one pass, the PodStatus of every pod whose slot changed (``_note_changes``)."""
        stale = np.flatnonzero(self._pod_stale)
        stale = stale[self._pod_phase.ravel()[stale] != EMPTY]
        if stale.size:
            self._slot_pods[stale] = self._pod_statuses(stale)
            self._pod_stale[stale] = False

    def _status(self, i: int) -> TargetStatus:
        """Service ``i``'s TargetStatus made anew, its pods those kept per slot where the slot has
        not changed (``_note_changes`` marks them and names the pods)."""
        slots = np.flatnonzero(self._pod_phase[i] != EMPTY)
        flat = slots[np.argsort(self._pod_serial[i, slots])] + i * self.K
        stale = flat[self._pod_stale[flat]]
        if stale.size:
            self._slot_pods[stale] = self._pod_statuses(stale)
            self._pod_stale[stale] = False
        revisions = self._revisions[i]
        pods = tuple(self._slot_pods[flat].tolist())
        return TargetStatus(
            ref=self.ref(i), spec_replicas=int(self._spec_replicas[i]), status_replicas=len(flat),
            ready_replicas=int(self._n_ready[i]), revision=str(self._revision_number[i]),
            rollout_in_progress=bool(self._rolling[i]),
            revisions=tuple(str(r.number) for r in sorted(revisions.values(), key=lambda r: r.number)),
            pods=pods)

    def _pod_statuses(self, flat: np.ndarray) -> list[PodStatus]:
        """The PodStatus of the pods at the flat slot indices ``flat`` (F,), named (``_name_slots``)."""
        # each field of the pods read at once as Python numbers (a numpy scalar read per pod and
        # field cost more than the PodStatus it fills)
        phase, created, ready_at, restarts, names, numbers = (a[flat].tolist() for a in (
            self._pod_phase.ravel(), self._pod_created_s.ravel(), self._pod_ready_transition_s.ravel(),
            self._pod_restarts.ravel(), self._slot_names, self._slot_revisions))
        return [PodStatus(
            name=names[k],
            phase="Pending" if phase[k] == PENDING else "Running",
            ready=phase[k] == READY,
            start_time=float(created[k]),
            ready_transition_time=None if math.isnan(ready_at[k]) else float(ready_at[k]),
            restarts=int(restarts[k]),
            revision=numbers[k],
            created_time=float(created[k]),
            waiting="CrashLoopBackOff" if phase[k] == BACKOFF else "",
        ) for k in range(len(flat))]

    def pod_signals(self, now: float | None = None) -> dict[str, np.ndarray | list[str]]:
        """Per-pod signals of every existing pod, for pod-scope health checks (the signals a
        per-pod PromQL query would return). Flat arrays of length P, pods in slot order:

        row (service index), name, ready (bool), running (bool: starting or ready), restarts
        (container restarts), memory_mib (working set of running pods, 0 otherwise), error_ratio
        (share of requests the pod's revision fails), extra_latency_s (added by a bad revision or a degraded pod),
        served_rps (the service's served requests shared evenly by its ready pods),
        latency_p95_s (the service's p95 without bad pods' extra latency, plus the pod's own),
        revision (the pod's revision number, as in ``statuses``).
        Slow path (builds pod names): call it only when a policy has pod-scope checks. Its ``name``
        and ``revision`` lists are the same objects from one call to the next while no pod came,
        went or was named anew (``_pods_generation``): read them, never change them.
        """
        numbers = self.pod_numbers(now)
        self._note_changes()
        rows = numbers.pop("row")
        slots = numbers.pop("slot")
        del numbers["serial"], numbers["revision_seq"]
        names, revisions = self._named_pods(rows, slots)
        return {"row": rows, "name": names, **numbers, "revision": revisions}

    def _named_pods(self, rows: np.ndarray, slots: np.ndarray) -> tuple[list[str], list[str]]:
        """The names and revision numbers of the pods at ``rows``, ``slots`` (P,) (every pod, in
        slot order), as lists: those made for the same ``_pods_generation`` (the same pods in the
        same slots), else made now (two gathers and two lists of P strings)."""
        kept = self._signal_names
        if kept is not None and kept[0] == self._pods_generation:
            return kept[1], kept[2]
        flat = rows * self.K + slots
        names, revisions = self._slot_names[flat].tolist(), self._slot_revisions[flat].tolist()
        self._signal_names = (self._pods_generation, names, revisions)
        return names, revisions

    def pod_numbers(self, now: float | None = None) -> dict[str, np.ndarray]:
        """``pod_signals`` without its strings (no names, no revision numbers): cheap enough for
        every tick (sim serve's per-pod counters). Flat (P,) arrays, pods in slot order: row,
        slot (the pod's slot in its row: a pod keeps its slot for life), serial and revision_seq
        (name it with :meth:`pod_name_of`), and ``pod_signals``' ready, running, restarts,
        memory_mib, error_ratio, extra_latency_s, served_rps, latency_p95_s."""
        self._flush()
        now = self.now if now is None else now
        flat = np.flatnonzero(self._pod_phase.ravel() != EMPTY)  # the pods' flat slots, row by row
        pod_rows, pod_slots = np.divmod(flat, self._pod_phase.shape[1])

        def at(a: np.ndarray) -> np.ndarray:  # (S, K) -> (P,): one take of the raveled slots (a 2-D gather costs ~2x)
            return a.ravel().take(flat)

        phase = at(self._pod_phase)
        running = (phase == STARTING) | (phase == READY)
        anchor = np.maximum(at(self._pod_started_s), self._leak_start_s.take(pod_rows))
        leaked_mib = self._leak_rate_mib_per_s.take(pod_rows) * np.maximum(now - anchor, 0.0)
        memory = np.where(running, self._memory_base_mib.take(pod_rows) + leaked_mib, 0.0)
        degraded = at(self._pod_degraded)
        degraded_extra = np.where(degraded, self._degraded_extra_latency_s.take(pod_rows), 0.0)
        extra = at(self._pod_extra_latency_s) + degraded_extra
        ready = phase == READY
        served = self._last_tick.served_rps if self._last_tick is not None else np.zeros(self.n_services)
        per_pod = served / np.maximum(self._n_ready, 1)
        base = self._p95_without_bad_pods_s
        base = np.zeros(self.n_services) if base is None else base
        return {"row": pod_rows, "slot": pod_slots, "serial": at(self._pod_serial),
                "revision_seq": at(self._pod_revision_seq), "ready": ready, "running": running,
                "restarts": at(self._pod_restarts).astype(np.float64), "memory_mib": memory,
                "error_ratio": np.where(running, at(self._pod_error_ratio), np.nan),
                "extra_latency_s": extra,
                "served_rps": np.where(ready, per_pod.take(pod_rows), 0.0),
                "latency_p95_s": np.where(ready, base.take(pod_rows) + extra, np.nan)}

    def bad_pod_latency_s(self) -> np.ndarray:
        """(3, S) seconds the ready pods with extra latency (a bad revision's, degraded ones) added to
        each service's p50, p95 and p99 at the last tick (0: none): the service's quantiles less
        these are its other pods' (sim serve's per-pod latency histograms)."""
        return self._bad_pod_latency_quantiles_s.copy() if self._any_bad_pods else np.zeros((3, self.n_services))

    def pod_arrays(self, targets: Sequence[TargetRef]) -> dict[str, np.ndarray | list[str]]:
        """Every existing pod of ``targets`` as flat (P,) arrays, fast (no objects): at (index
        into ``targets``; unknown targets have no pods), name (made on access), uid (service index
        * 2**32 + the pod's serial), pending, running (starting, in back-off or ready), ready,
        start_time and ready_transition_time (epoch s, NaN unknown), pods of a service in creation
        order as ``observe`` lists them."""
        self._flush()
        rows, exists = self.rows_of(targets)
        state = (self._pod_phase, self._pod_serial, self._pod_revision_seq)
        fast = pod_listing.try_list_pods(rows, exists, *state, self._pod_created_s, self._pod_ready_transition_s,
                                         self._n_pods, self._live_end)  # kept exact: size and bound the listing
        if fast is not None:  # one compiled pass: cheaper than checking the cache below
            return self._pod_dict(*fast)
        # pods change only with a phase, a slot's serial or revision: a second call in the same
        # cycle (pods listed, then their samples) reuses the first one's arrays and names.
        # (rows_of keeps one tuple per target list: the same object means the same targets)
        cached = self._pod_arrays_cache
        if (cached is not None and cached[0] is self._view_cache[0]
                and all(np.array_equal(a, b) for a, b in zip(cached[1], state))):
            return cached[2]
        out = self._list_pods_numpy(rows, exists)
        self._pod_arrays_cache = (self._view_cache[0], tuple(a.copy() for a in state), out)
        return out

    def pod_starts(self, rows: np.ndarray, exists: np.ndarray, at: np.ndarray) -> tuple | None:
        """The pods of the services at ``rows`` (D,) int64 that ``exists`` (D,) bool, each with its
        target ``at`` (D,) int64: (target, uid, creation, Ready change, Ready, runs but not
        Ready), (P,) each, the columns of ``pod_arrays`` the start-up observer reads, in its order
        (simcluster/pod_listing.py try_pod_starts). None when the kernels are off."""
        self._flush()
        return pod_listing.try_pod_starts(rows, exists, at, self._pod_phase, self._pod_serial, self._pod_created_s,
                                          self._pod_ready_transition_s, self._n_pods, self._live_end)

    def running_pod_samples(self, targets: Sequence[TargetRef], present: np.ndarray, values: np.ndarray,
                            age_s: np.ndarray) -> dict[str, np.ndarray | LazyStrings]:
        """The running pods (``pod_arrays``' ``running``) of the targets whose ``present`` (N,) bool
        value ``values`` (N,) float is finite, each with its target's value and ``age_s`` (N,):
        {at, name (made on access), uid, values, age_s}, (P,) each, in ``pod_arrays``' order. One
        compiled pass (simcluster/pod_listing.py), else ``pod_arrays`` filtered with numpy."""
        self._flush()
        rows, exists = self.rows_of(targets)
        fast = pod_listing.try_running_pods(rows, exists, self._pod_phase, self._pod_serial, self._pod_revision_seq,
                                            present, values, age_s)
        if fast is not None:
            at, pod_rows, serials, revision_seqs, uid, pod_values, pod_ages = fast
            names = LazyStrings(lambda j: self._name_of(int(pod_rows[j]), int(serials[j]), int(revision_seqs[j])),
                                pod_rows.size)
            return {"at": at, "name": names, "uid": uid, "values": pod_values, "age_s": pod_ages}
        pods = self.pod_arrays(targets)
        t = np.asarray(pods["at"], dtype=np.int64)
        keep = np.flatnonzero(pods["running"] & present[t] & np.isfinite(values[t]))
        return {"at": t[keep], "name": pods["name"].take(keep), "uid": pods["uid"][keep], "values": values[t[keep]],
                "age_s": age_s[t[keep]]}

    def padded_pod_samples(self, targets: Sequence[TargetRef], present: np.ndarray,
                           values: np.ndarray) -> dict[str, PodSlots | np.ndarray] | None:
        """``listed_pod_samples``' pods and samples where the cluster keeps them, unlisted:
        ``slots`` (PodSlots: ``rows_of``'s rows and exists, each row's live end, the slot arrays
        themselves (read them before the cluster changes) and their phase codes), ``values`` (N,)
        (the sample every running pod of a target reports: its value where ``present`` and
        finite, else NaN) and their ``means``, ``has_mean`` (N,) as there, from one compiled pass
        over the slot phases (simcluster/pod_listing.py). None when the kernels are off."""
        rows, exists = self.rows_of(targets)
        slots = self.padded_slots(rows, exists)
        got = pod_listing.try_padded_means(rows, exists, slots.ends, slots.phase, present, values)
        if got is None:
            return None
        means, has_mean, samples = got
        return {"slots": slots, "values": samples, "means": means, "has_mean": has_mean}

    def padded_slots(self, rows: np.ndarray, exists: np.ndarray) -> PodSlots:
        """Where the pods of the targets at ``rows`` (N,) (``rows_of``'s, with ``exists``) sit, at
        ``self.now``: the cluster's own slot arrays (read them before it changes) and phase codes."""
        self._flush()
        return PodSlots(rows, exists, self._live_end, self._pod_phase, self._pod_created_s,
                        self._pod_ready_transition_s, EMPTY, PENDING, READY)

    def listed_pod_samples(self, targets: Sequence[TargetRef], present: np.ndarray, values: np.ndarray,
                           age_s: np.ndarray) -> dict[str, np.ndarray | LazyStrings] | None:
        """``pod_arrays(targets)`` (without ``running``) with ``running_pod_samples``' samples
        joined to its pods, in one compiled pass (simcluster/pod_listing.py): its fields plus
        ``values`` (P,) (the pod's sample, NaN for a pod without one) and ``age_s`` (P,) (0
        without one), and per target ``means`` (N,) (the mean of its pods' samples in milli-units
        / 1000, NaN without one) and ``has_mean`` (N,) bool. None when the kernels are off: then
        call the two."""
        self._flush()
        rows, exists = self.rows_of(targets)
        fast = pod_listing.try_listed_samples(rows, exists, self._pod_phase, self._pod_serial, self._pod_revision_seq,
                                              self._pod_created_s, self._pod_ready_transition_s, present, values, age_s,
                                              self._n_pods, self._live_end)
        if fast is None:
            return None
        (at, pod_rows, serials, revision_seqs, uid, pending, ready, start_time, transition_time, pod_values, ages,
         means, has_mean) = fast
        names = LazyStrings(lambda j: self._name_of(int(pod_rows[j]), int(serials[j]), int(revision_seqs[j])),
                            pod_rows.size)
        return {"at": at, "name": names, "uid": uid, "pending": pending, "ready": ready, "start_time": start_time,
                "ready_transition_time": transition_time, "values": pod_values, "age_s": ages, "means": means,
                "has_mean": has_mean}

    def _list_pods_numpy(self, rows: np.ndarray, exists: np.ndarray) -> dict:
        """pod_arrays' listing with numpy (the reference of simcluster/pod_listing.py's kernel)."""
        live = self._pod_phase[rows] != EMPTY
        live &= exists[:, None]
        at, pod_slots = np.divmod(np.flatnonzero(live), live.shape[1])  # by target, then slot
        flat = rows[at] * live.shape[1] + pod_slots  # into the (S, K) slot arrays, raveled
        serials = self._pod_serial.ravel().take(flat)
        order = _by_target_then_serial(at, serials)
        at, flat, serials = at.take(order), flat.take(order), serials.take(order)
        pod_rows = rows.take(at)
        pod_phase = self._pod_phase.ravel().take(flat)
        revision_seqs = self._pod_revision_seq.ravel().take(flat)
        return self._pod_dict(at, pod_rows, serials, revision_seqs, (pod_rows.astype(np.int64) << 32) + serials,
                              pod_phase == PENDING, pod_phase != PENDING, pod_phase == READY,
                              self._pod_created_s.ravel().take(flat), self._pod_ready_transition_s.ravel().take(flat))

    def _pod_dict(self, at, pod_rows, serials, revision_seqs, uid, pending, running, ready, start_time,
                  ready_transition_time) -> dict:
        names = LazyStrings(lambda j: self._name_of(int(pod_rows[j]), int(serials[j]), int(revision_seqs[j])),
                            pod_rows.size)
        return {"at": at, "name": names, "uid": uid, "pending": pending, "running": running, "ready": ready,
                "start_time": start_time, "ready_transition_time": ready_transition_time}

    def apply(self, action: Action) -> None:
        """Apply a controller :class:`~controller.model.Action` (the ``Cluster`` protocol)."""
        i = self.index(action.target)
        if action.kind is ActionKind.SCALE:
            self.set_replicas(i, int(action.replicas))
        elif action.kind is ActionKind.RESTART_POD:
            self.delete_pod(i, action.pod or "")
        elif action.kind is ActionKind.ROLLING_RESTART:
            self.rolling_restart(i)
        elif action.kind is ActionKind.ROLLBACK:
            if action.resume:  # one write: the undo resumes our rollout hold (the fast path applies)
                self._paused[i] = False
            self.rollback(i, action.revision, fast=action.fast)
        elif action.kind in (ActionKind.PAUSE, ActionKind.RESUME):
            self.set_paused(i, action.kind is ActionKind.PAUSE)


def _bits(a: np.ndarray) -> np.ndarray:
    """``a`` as integers of its width where it holds floats (compared bit for bit: NaN equals NaN)."""
    return a.view(np.int64) if a.dtype == np.float64 else a


def _with_ref(status: TargetStatus, ref: TargetRef) -> TargetStatus:
    """``status`` with ``ref`` (of the same value) its ref: a copy of its fields (the same pods),
    ~5x cheaper than ``dataclasses.replace`` (no ``__init__``: TargetStatus has no
    ``__post_init__`` to skip)."""
    copy = object.__new__(TargetStatus)
    fields = copy.__dict__
    fields.update(status.__dict__)
    fields["ref"] = ref
    return copy


def _by_target_then_serial(at: np.ndarray, serial: np.ndarray) -> np.ndarray:
    """Stable order of pods (P,) by target row ``at`` (ascending already), then serial: one sort
    of a packed key (nearly sorted: cheap), or a lexsort when the numbers do not fit in it."""
    if at.size == 0:
        return np.zeros(0, np.int64)
    if int(at[-1]) < 1 << 22 and 0 <= int(serial.min()) and int(serial.max()) < 1 << 40:
        return np.argsort((at.astype(np.int64) << 40) | serial, kind="stable")
    return np.lexsort((serial, at))
