"""What the health side reads of a cycle's workload statuses, as columns, made once per status.

``observe_health`` reads each TargetStatus's pods (a row per pod not terminating: ``HealthPods``)
and a few facts of its workload (revision, ReplicaSets listed, rollout completion, StatefulSet
shape, accepted revision, crash-looping pods). A TargetStatus is frozen, and what it gives
depends only on the fields it reads: ``StatusColumns`` keeps what it made of each status while
the status at its place is the same object or reads the same, and the whole read while every one
does. A source that keeps its statuses (the simulated cluster hands out a workload's status
again, the same object, while it did not change: a TargetStatus has no observation time) costs
an identity check per workload, and a pass over those made anew; one that makes every object
anew (the Kubernetes adapter) costs a compare of a few fields per workload (its pods compared
by value), and a pass over those that changed.
"""

from __future__ import annotations

import math
from itertools import accumulate, chain
from operator import attrgetter, is_
from typing import NamedTuple, Sequence

import numpy as np

from controller.core.health.heal import padded, revision_strings
from controller.model import ACCEPT_REVISION_ANNOTATION, PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView

#: ``_Pods.numbers``' columns (a status's pods, each (p,) as float64: bools as 0/1, times NaN unknown).
_READY, _CURRENT, _BORN, _BLOCKS, _CONDEMNED, _NOT_READY_SINCE, _RUNNING = range(7)
_COLUMNS = 7


class HealthPods(NamedTuple):
    """The pods of ``health_pods`` as columns (P,): target row, pod ref (namespace, pod name),
    Ready, on its workload's current revision, created at (epoch s, NaN unknown: a StatefulSet's
    pod deleted and recreated keeps its name, not this), blocking its workload's rollout
    (:func:`_rollout_waits`, :func:`_holds_rollout`), and condemned by a StatefulSet's scale-down
    (:func:`_condemned`); for the hung-pod checks, since when its Ready condition has been as it is
    (epoch s, NaN unknown) and whether it runs (phase Running, no container waiting to start again)."""

    rows: np.ndarray
    refs: list[TargetRef]
    ready: np.ndarray
    current: np.ndarray
    born: np.ndarray
    blocks_rollout: np.ndarray
    condemned: np.ndarray
    not_ready_since: np.ndarray | None = None
    running: np.ndarray | None = None


class TargetFacts(NamedTuple):
    """What the health observation reads of each target's status, (N,) each; a target without a
    status (not found) reads '' / () / NaN / False / 0, and ``reached`` its status replicas.
    revision: object array of str; revisions: (N, K) object array of str, its ReplicaSets ('' padding:
    ``heal.padded``);
    since: rollout completed at (epoch s); crashing: its pods not Ready because they crash
    (:func:`crashing_pods`); listed: the target has a status."""

    revision: np.ndarray
    revisions: np.ndarray
    since: np.ndarray
    partitioned: np.ndarray
    ordered: np.ndarray
    reached: np.ndarray
    ordinal_start: np.ndarray
    accepted: np.ndarray
    crashing: np.ndarray
    listed: np.ndarray


class StatusRead(NamedTuple):
    """One cycle's read of the statuses: the pods' columns, their keys ``namespace/name`` (P,) str
    (the pod table's), the targets' facts, and which targets are Deployments (N,) bool (the
    kind a rollback is for)."""

    pods: HealthPods
    keys: np.ndarray
    facts: TargetFacts
    deployments: np.ndarray


class _Pods(NamedTuple):
    """What one status's pods give: those not terminating (refs, keys (p,) str, numbers (p, 7)
    float64 in the _READY.. columns), and how many of them crash-loop."""

    refs: list[TargetRef]
    keys: np.ndarray
    numbers: np.ndarray
    crashing: int


class _Block(NamedTuple):
    """What one status object gives: its pods' part, and its workload's facts."""

    pods: _Pods
    revision: str
    revisions: tuple
    since: float
    partitioned: bool
    ordered: bool
    reached: int
    ordinal_start: int
    accepted: str


#: Every field of a TargetStatus its block reads (all but the managed-fields ones): a status equal
#: to the last one at its place in these reads the same.
_READS = attrgetter("pods", "ref", "revision", "rollout_in_progress", "spec_replicas", "ordinal_start",
                    "status_replicas", "revisions", "rollout_completed_at", "partition", "ordered", "annotations")
#: Where in ``_READS`` are those its pods' part reads (``_pod_numbers``, the pods' refs and keys):
#: ref, revision, rollout_in_progress, spec_replicas, ordinal_start.
_POD_READS = slice(1, 6)


class StatusColumns:
    """``read(view, targets)``: the statuses' columns. What a status gives is kept while the status
    at its place is the last read's object (frozen: it reads the same; no fields compared) or reads
    the same (``_READS``: equal fields, compared by identity first), and its pods' part while its
    pods are the same objects; the whole read while every status is the last read's object, or
    reads the same, and the targets are the same. A new one per call reads afresh (nothing kept
    beyond it)."""

    def __init__(self):
        self._targets: tuple = ()
        self._index: dict[TargetRef, int] = {}
        self._deployments = np.zeros(0, bool)
        self._statuses: Sequence[TargetStatus] = ()  # the statuses last read (held: their ids are not reused)
        self._reads: list[tuple] = []  # _READS of each status last read, at its place
        self._blocks: list[tuple[_Block, int]] = []  # (its block, its target's row or -1), at its place
        self._last: StatusRead | None = None  # what the statuses last read as
        self._pods: dict[int, tuple[tuple, tuple, _Pods]] = {}  # id(status.pods): (pods, its _POD_READS, part)
        self._rows: list[int] = []  # the listed statuses' target rows, in status order, at the last read
        self._widths = np.zeros(0, np.int64)  # (N,) how many ReplicaSets each target's facts list
        self._pod_refs: dict[str, dict[str, tuple[TargetRef, str]]] = {}  # namespace: {pod: (ref, key)}
        self._all_rows: list[int] = []  # every status's target row (-1: not a target), in status order, last read
        self._spliced: _Spliced | None = None  # the pod columns of the last read, for splicing the next one

    def read(self, view: ClusterView, targets: Sequence[TargetRef]) -> StatusRead:
        """The columns of ``view.statuses`` for ``targets`` (statuses of other workloads are left out)."""
        self._follow(targets)
        statuses = view.statuses
        kept = list(map(is_, statuses, self._statuses)) if len(statuses) == len(self._statuses) else None
        if self._last is None or kept is None or not all(kept):  # else every status the last read's: its read
            reads, same = self._compared(statuses, kept)
            if self._last is None or kept is None or not all(same):
                self._last = self._assemble(statuses, reads, same, len(targets))
            self._statuses = tuple(statuses)
        return self._last._replace(facts=_finish_facts(self._last.facts, view, len(targets)),
                                   deployments=self._deployments)

    def _compared(self, statuses: Sequence[TargetStatus], kept: list[bool] | None
                  ) -> tuple[list[tuple], list[bool]]:
        """(``_READS`` of each of ``statuses``, whether it reads as the last read's status at its
        place): those that are the last read's objects (``kept``; None when the count changed)
        take its reads, not compared; the others are read and compared."""
        if kept is None:
            return list(map(_READS, statuses)), [False] * len(statuses)
        reads, same = [], []
        for status, was, is_kept in zip(statuses, self._reads, kept):
            if is_kept:
                reads.append(was)
                same.append(True)
            else:
                read = _READS(status)
                reads.append(read)
                same.append(read == was)
        return reads, same

    def _follow(self, targets: Sequence[TargetRef]) -> None:
        """A new target list: every status's row is found again."""
        key = tuple(targets)
        if key != self._targets:
            self._targets, self._index = key, {t: i for i, t in enumerate(key)}
            self._deployments = _read_only(np.fromiter((t.kind == "Deployment" for t in key), bool, len(key)))
            self._statuses, self._reads, self._blocks, self._last, self._rows = (), [], [], None, []
            self._all_rows, self._spliced = [], None

    def _assemble(self, statuses: Sequence[TargetStatus], reads: list[tuple], same: list[bool], n: int
                  ) -> StatusRead:
        """The read of ``statuses``, each reading ``reads``, those ``same`` as the last ones at
        their places (and kept) given by their kept blocks."""
        kept = self._blocks
        kept_pods, self._pods = self._pods, {}
        made = []
        for k, status in enumerate(statuses):
            if same[k]:
                made.append(kept[k])
                part = kept[k][0].pods
            else:
                part = self._pod_part(status, reads[k][_POD_READS], kept_pods)
                made.append((_block(status, part), self._index.get(status.ref, -1)))
            self._pods[id(status.pods)] = (status.pods, reads[k][_POD_READS], part)
        last = self._last
        self._reads, self._blocks = reads, made
        listed = [(block, row) for block, row in made if row >= 0]
        blocks, rows = [b for b, _ in listed], [row for _, row in listed]
        counts = [len(b.pods.refs) for b in blocks]
        if sum(map(len, self._pod_refs.values())) > 2 * sum(counts) + 1024:  # pods gone for good
            self._pod_refs = {}
        facts = None
        if last is not None and rows == self._rows and len(set(rows)) == len(rows):
            facts = self._updated_facts(last.facts, [made[k] for k in range(len(made)) if not same[k] and made[k][1] >= 0])
        if facts is None:
            facts = _facts(blocks, rows, n)
            self._widths = np.zeros(n, np.int64)
            self._widths[rows] = [len(b.revisions) for b in blocks]
        fresh = self._fresh_blocks(made, same)
        self._rows = rows
        read, self._spliced = _columns(blocks, rows, counts, n, facts, self._spliced, fresh)
        return read

    def _fresh_blocks(self, made: list[tuple[_Block, int]], same: list[bool]) -> list[int] | None:
        """Where among the listed blocks of ``made`` (status order) those made anew are, when the
        others are the last read's at the same places (every status's row as before): the pod
        columns are then spliced (``_columns``); None otherwise (made whole)."""
        all_rows = [row for _, row in made]
        last_rows, self._all_rows = self._all_rows, all_rows
        if all_rows != last_rows or self._spliced is None:
            return None
        listed = [k for k, row in enumerate(all_rows) if row >= 0]
        if len(self._spliced.starts) != len(listed) + 1:
            return None
        return [j for j, k in enumerate(listed) if not same[k]]

    def _updated_facts(self, facts: TargetFacts, changed: list[tuple[_Block, int]]) -> TargetFacts | None:
        """``facts`` with the rows of the ``changed`` (block, row) made anew: what ``_facts`` makes
        of the same blocks when each target has one status (the caller checks) and the longest
        ReplicaSet list is as long as before (None otherwise: made whole)."""
        if not changed:
            return facts
        widths = self._widths.copy()
        for block, row in changed:
            widths[row] = len(block.revisions)
        width = facts.revisions.shape[1]
        if int(widths.max(initial=0)) != width:
            return None  # the padding changes width: _facts makes it
        out = {name: column.copy() for name, column in facts._asdict().items()}
        for block, row in changed:
            for name, value in zip(_FACT_NAMES, _fact_row(block)):
                out[name][row] = value
            revisions = revision_strings(block.revisions)
            out["revisions"][row] = revisions + [""] * (width - len(revisions))
        self._widths = widths
        return _read_only(TargetFacts(**out))

    def _pod_part(self, status: TargetStatus, pod_reads: tuple, kept: dict) -> _Pods:
        """The pods' part of ``status``: the one made of the same pods object, status reads alike
        (``pod_reads``, its ``_POD_READS``), or made now."""
        hit = kept.get(id(status.pods))
        if hit is not None and hit[0] is status.pods and hit[1] == pod_reads:
            return hit[2]
        return self._made_pods(status)

    def _made_pods(self, status: TargetStatus) -> _Pods:
        pods = [pod for pod in status.pods if not pod.deleted]
        namespace = status.ref.namespace
        known = self._pod_refs.get(namespace) or self._pod_refs.setdefault(namespace, {})
        named = []
        for pod in pods:
            made = known.get(pod.name)
            if made is None:
                made = known[pod.name] = (TargetRef(namespace, pod.name, "Pod"), f"{namespace}/{pod.name}")
            named.append(made)
        keys = np.asarray([key for _, key in named], dtype=str) if named else np.zeros(0, str)
        return _Pods([ref for ref, _ in named], _read_only(keys), _read_only(_pod_numbers(status, pods)),
                     sum(1 for pod in pods if not pod.ready and (pod.waiting or pod.restarts > 0)))


def _block(status: TargetStatus, pods: _Pods) -> _Block:
    """What ``status`` gives, its pods' part ``pods``."""
    done = status.rollout_completed_at
    return _Block(pods, status.revision, status.revisions, math.nan if done is None else done, status.partition > 0,
                  bool(status.ordered), walk_reach(status), status.ordinal_start, accepted_revision(status))


def _pod_numbers(status: TargetStatus, pods: list[PodStatus]) -> np.ndarray:
    """(p, 7) float64: the _READY.. columns of ``pods``, ``status``'s pods not terminating."""
    if not pods:
        return np.zeros((0, _COLUMNS))
    revision, nan = status.revision, math.nan
    sts = status.ref.kind == "StatefulSet"
    waits = _rollout_waits(status)
    return np.array([(
        bool(pod.ready), bool(pod.revision and pod.revision == revision),
        nan if pod.created_time is None else pod.created_time,
        waits and _holds_rollout(pod, revision), sts and _condemned(status, pod),
        nan if pod.ready_transition_time is None else pod.ready_transition_time,
        pod.phase == "Running" and not pod.waiting) for pod in pods], dtype=np.float64)


class _Spliced(NamedTuple):
    """The pod columns of a read, kept to splice the next one: numbers (P, 7) and keys (P,) of its
    listed blocks in status order, their refs, where each block's pods start (L + 1,), and each
    block's key width (L,) (characters: the concatenation's is the largest)."""

    numbers: np.ndarray
    keys: np.ndarray
    refs: list[TargetRef]
    starts: list[int]
    widths: list[int]


def _columns(blocks: list[_Block], rows: list[int], counts: list[int], n: int, facts: TargetFacts,
             last: _Spliced | None = None, fresh: list[int] | None = None) -> tuple[StatusRead, _Spliced]:
    """The pods' columns of ``blocks`` (in status order, ``counts`` pods each), ``rows`` their
    targets' rows (a target with two statuses: both's pods), with the targets' ``facts`` (:func:`_facts`),
    and what to splice the next read from. ``last``: the last read's, whose blocks are these but at
    ``fresh`` (indices into ``blocks``, ascending; None: not so): its columns are kept there and
    only those blocks' pods put in (a tick changes the pods of a few workloads of a thousand: a
    concatenation of a few dozen pieces, not of a thousand)."""
    widths = last.widths.copy() if fresh is not None else [b.pods.keys.dtype.itemsize // 4 for b in blocks]
    if fresh is not None:
        for j in fresh:
            widths[j] = blocks[j].pods.keys.dtype.itemsize // 4
        numbers, keys, refs = _splice(last, blocks, fresh)
    else:
        numbers = np.concatenate([b.pods.numbers for b in blocks]) if blocks else np.zeros((0, _COLUMNS))
        keys = np.concatenate([b.pods.keys for b in blocks]) if sum(counts) else np.zeros(0, str)
        refs = list(chain.from_iterable(b.pods.refs for b in blocks))
    if keys.size:  # the width a concatenation of every block's keys has (a kept piece may be wider)
        keys = keys.astype(f"<U{max(widths)}", copy=False)
    else:
        keys = np.zeros(0, str)
    flag = lambda k: numbers[:, k] != 0  # noqa: E731
    pods = HealthPods(rows=np.repeat(np.asarray(rows, dtype=np.int64), counts),
                      refs=refs, ready=flag(_READY),
                      current=flag(_CURRENT), born=numbers[:, _BORN].copy(), blocks_rollout=flag(_BLOCKS),
                      condemned=flag(_CONDEMNED), not_ready_since=numbers[:, _NOT_READY_SINCE].copy(),
                      running=flag(_RUNNING))
    starts = [0, *accumulate(counts)]
    return (StatusRead(_read_only(pods), _read_only(keys), _read_only(facts), np.zeros(n, bool)),
            _Spliced(_read_only(numbers), keys, refs, starts, widths))


def _splice(last: _Spliced, blocks: list[_Block], fresh: list[int]) -> tuple[np.ndarray, np.ndarray, list]:
    """(numbers, keys, refs) of ``blocks``: ``last``'s, with the pods of the blocks at ``fresh``
    (ascending) put in place of theirs."""
    numbers, keys, refs, at = [], [], [], 0
    for j in fresh:
        start, pods = last.starts[j], blocks[j].pods
        numbers += (last.numbers[at:start], pods.numbers)
        keys += (last.keys[at:start], pods.keys)
        refs += last.refs[at:start]
        refs += pods.refs
        at = last.starts[j + 1]
    numbers.append(last.numbers[at:])
    keys.append(last.keys[at:])
    refs += last.refs[at:]
    return np.concatenate(numbers), np.concatenate(keys), refs


def _read_only(kept):
    """``kept`` (an array, or a tuple of them), its arrays made read-only: they are handed out again
    in later cycles, so nothing may write into them (a write raises instead of changing a later read)."""
    for a in (kept if isinstance(kept, tuple) else (kept,)):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return kept


#: The facts ``_fact_row`` gives of one block, in its order, with a column's fill where a target has
#: no status and its dtype.
_FACT_COLUMNS = (("revision", "", object), ("since", math.nan, np.float64), ("partitioned", False, bool),
                 ("ordered", False, bool), ("reached", 0, np.int64), ("ordinal_start", 0, np.int64),
                 ("accepted", "", object), ("crashing", 0, np.int64))
_FACT_NAMES = tuple(name for name, _, _ in _FACT_COLUMNS)


def _fact_row(block: _Block) -> tuple:
    """One target's ``_FACT_NAMES`` facts, from its status's block."""
    return (block.revision, block.since, block.partitioned, block.ordered, block.reached, block.ordinal_start,
            block.accepted, block.pods.crashing)


def _facts(blocks: list[_Block], rows: list[int], n: int) -> TargetFacts:
    """(N,) facts of the targets, from the block of each target's last status (a target with two
    statuses reads as the last one)."""
    last = [None] * n
    for block, row in zip(blocks, rows):
        last[row] = block
    listed = np.fromiter((b is not None for b in last), bool, n)
    had = [_fact_row(b) for b in last if b is not None]
    columns = {}
    for k, (name, fill, dtype) in enumerate(_FACT_COLUMNS):
        columns[name] = np.full(n, fill, dtype=dtype)
        if had:
            columns[name][listed] = [row[k] for row in had]
    return TargetFacts(**columns, revisions=padded([b.revisions if b is not None else () for b in last], n),
                       listed=listed)


def _finish_facts(facts: TargetFacts, view: ClusterView, n: int) -> TargetFacts:
    """The facts that read the view's arrays too: a target without a status reaches its status
    replicas; the crashing pods are zeros when the view's rows are not the targets'."""
    reached = np.where(facts.listed, facts.reached, view.status.astype(np.int64)) if n == view.status.size \
        else facts.reached
    crashing = facts.crashing if n == view.spec.size else np.zeros(view.spec.size, dtype=np.int64)
    return facts._replace(reached=reached, crashing=crashing)


def _rollout_waits(status: TargetStatus) -> bool:
    """A pod of this workload can block its rollout (:func:`_holds_rollout`): a StatefulSet mid-rollout
    to a known revision. The StatefulSet controller (OrderedReady) replaces a pod off the update
    revision only once every pod is Ready, so a broken pod left on the old revision (a bad release
    undone by ``kubectl rollout undo``: its pods are now the old revision) holds the rollout for
    good; the Kubernetes docs' "forced rollback" is to delete it, and it comes back on the update
    revision (below a partition: on the current one, as any pod recreated there). A Deployment's
    rollout replaces its old pods itself: none of its pods block it."""
    return status.ref.kind == "StatefulSet" and status.rollout_in_progress and bool(status.revision)


def _holds_rollout(pod: PodStatus, revision: str) -> bool:
    """``pod`` blocks its workload's rollout to ``revision``, where one can (:func:`_rollout_waits`):
    not Ready, on another known revision."""
    return not pod.ready and bool(pod.revision) and pod.revision != revision


def _condemned(status: TargetStatus, pod: PodStatus) -> bool:
    """A StatefulSet's pod its scale-down removes: its ordinal (``<name>-<ordinal>``) is out of
    [spec.ordinals.start, start + spec.replicas). Its controller deletes it (OrderedReady: the highest first, once every lower pod
    is Ready; Parallel: at once) and never recreates it, so its restart would be its removal. A
    Deployment's ReplicaSet picks the pods a scale-down removes when it does: none is condemned."""
    if status.ref.kind != "StatefulSet":
        return False
    ordinal = ordinal_of(status, pod)
    if ordinal is None:
        return False
    return not status.ordinal_start <= ordinal < status.ordinal_start + status.spec_replicas


def ordinal_of(status: TargetStatus, pod: PodStatus) -> int | None:
    """The ordinal of a StatefulSet's pod (``<name>-<ordinal>``), None for a name not of that form."""
    prefix, _, ordinal = pod.name.rpartition("-")
    return int(ordinal) if prefix == status.ref.name and ordinal.isdigit() else None


def walk_reach(status: TargetStatus) -> int:
    """How many of a StatefulSet's ordinals its pods reach: the highest ordinal listed (a
    terminating pod too), less spec.ordinals.start, plus one; at least status.replicas (other
    kinds: status.replicas). Arbitration's walk up (``ordered_walk_up``: a scale-up check held,
    OrderedScaleUpPending) is this below spec.replicas, not status.replicas: a pod deleted below
    the top (restarted, by setpoint or anyone) and not recreated yet lowers status.replicas though
    nothing walks. The top pod deleted and not yet back still reads as a walk (a snapshot cannot
    tell it from one not created yet); the real controller recreates it in its next sync."""
    if status.ref.kind != "StatefulSet":
        return int(status.status_replicas)
    ordinals = [k for pod in status.pods if (k := ordinal_of(status, pod)) is not None]
    top = max(ordinals) - status.ordinal_start + 1 if ordinals else 0
    return max(top, int(status.status_replicas))


def accepted_revision(status: TargetStatus | None) -> str:
    """The revision the workload's setpoint.io/accept-revision annotation accepts ('' none), trimmed."""
    return "" if status is None else dict(status.annotations).get(ACCEPT_REVISION_ANNOTATION, "").strip()
