"""Injected faults: what goes wrong, when, and to which services.

A fault is a frozen dataclass with a start time ``at_s`` (simulation epoch seconds), an
optional ``duration_s`` (``None``: until the end of the run, or until the controller cures
it) and the services it hits (``None``: all). The cluster engines turn a list of faults into a
:class:`FaultTimeline` of start and end events and apply each event at the first tick at or
after its time (ends before starts at the same instant, so windows are ``[start, end)``).

| fault | at start | at end |
|---|---|---|
| :class:`PodCrash` | ``count`` running pods per service crash: their container restarts (restart count + 1, Starting again) | - |
| :class:`CrashLoopRollout` | a rollout to a new revision whose pods never get ready and restart with backoff | - (a rollback cures it) |
| :class:`BadRollout` | a rollout to a new revision with an error multiplier / extra error ratio / extra latency | - (a rollback cures it) |
| :class:`NodeLoss` | a share of all scheduled pods vanish (recreated Pending) and, if the cluster has node capacity, it drops by that share of nodes (whole nodes); pods that no longer fit stay Pending | capacity returns; Pending pods get scheduled |
| :class:`MemoryLeak` | per-pod memory grows at ``rate_mib_per_s`` with container age: degraded above the soft limit, OOM-restart at the limit; a restart resets it | leak fixed: memory back to base |
| :class:`ReadinessOutage` | every pod of the services fails its readiness probe (a dependency they all check is down): Ready pods turn running-not-Ready (no restart), pods finishing their start-up (new ones too) stay not Ready | the pods through their start-up are Ready at once; the others when it completes |
| :class:`PodHang` | ``count`` Ready pods per service hang (a stuck process): running-not-Ready (no restart), they serve nothing (their application counters stand still) while the others serve; a readiness outage's end does not release them; ``sticky``: each restart or replacement of a victim hangs again at the end of its start-up (never Ready) | those still hung are Ready again, a sticky victim's replacement too (without ``duration``: only a restart or a deletion of the pod cures it; ``sticky`` without ``duration``: nothing does) |
| :class:`MetricsOutage` | the services' signals are unavailable | available again |
| :class:`StaleMetrics` | the services' signals freeze at their last value | fresh again |
| :class:`NaNMetrics` | the services' signals read NaN | finite again |

Not a fault but the same effect, driven by load instead of a schedule: a service's
``readiness_probe`` (:class:`simulators.workload.ReadinessProbe`, scenario ``readinessProbe``)

| service field | when it fails | when it recovers |
|---|---|---|
| ``readiness_probe`` (``period_s``, ``failure_threshold``, ``success_threshold``) | ``failure_threshold`` probes in a row find the service saturated (it dropped or queued requests in the tick before): Ready pods turn running-not-Ready (no restart), pods finishing their start-up stay not Ready, as under a :class:`ReadinessOutage` (the same hold, ORed with it) | dark, it gets no traffic: ``success_threshold`` probes in a row pass and the held pods are Ready at once (unless an outage still holds them); then it is swamped again (the overload spiral) |

Randomness: only victim choice (which pods crash or vanish) draws from the cluster's
generator, through :func:`choose_victims`, over candidates in a canonical order
(service index, then pod serial), so the vectorized and the reference engine draw the same.
A :class:`PodCrash` or :class:`PodHang` that names its victim (``ordinal``) draws nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping, Sequence

import numpy as np

from controller.errors import FieldError, ScenarioError
from simulators.workload import RevisionProps


@dataclass(frozen=True)
class Fault:
    """Base: ``at_s`` start (s), ``duration_s`` (s or None), ``services`` names (None = all)."""

    at_s: float
    duration_s: float | None = None
    services: tuple[str, ...] | None = None

    kind: ClassVar[str] = "fault"
    #: Faults that happen once (no end event).
    instantaneous: ClassVar[bool] = False

    @property
    def end_s(self) -> float | None:
        """When the fault stops (s), or None if it does not end by itself."""
        if self.instantaneous or self.duration_s is None:
            return None
        return self.at_s + self.duration_s

    def service_indices(self, index_of: Mapping[str, int], n_services: int) -> np.ndarray:
        """Indices of the services hit, ascending. (n,) int64."""
        if self.services is None:
            return np.arange(n_services)
        return np.array(sorted(index_of[name] for name in self.services), dtype=np.int64)

    def field_errors(self, index_of: Mapping[str, int], where: str) -> list[FieldError]:
        """Problems with this fault given the cluster's service names."""
        errors = []
        if self.duration_s is not None and self.duration_s <= 0:
            errors.append(FieldError(where, None, f"{where}.duration_s", f"must be > 0, got {self.duration_s}"))
        for name in self.services or ():
            if name not in index_of:
                errors.append(FieldError(where, None, f"{where}.services",
                                         f"must name a service of the cluster, got {name!r}"))
        return errors


@dataclass(frozen=True)
class PodCrash(Fault):
    """``count`` running pods of each service crash at ``at_s`` (container restart)."""

    count: int = 1
    #: the victim named (scenario ``pod``): the pod of this ordinal (a StatefulSet row's; another
    #: row's: its pod of this creation rank, oldest 0), when it is a candidate; no draw
    ordinal: int | None = None
    kind: ClassVar[str] = "pod-crash"
    instantaneous: ClassVar[bool] = True


@dataclass(frozen=True)
class CrashLoopRollout(Fault):
    """A rollout at ``at_s`` to a revision whose pods crash before getting ready, forever."""

    kind: ClassVar[str] = "crash-loop"
    instantaneous: ClassVar[bool] = True

    def revision_props(self) -> RevisionProps:
        return RevisionProps(crash_loop=True, label=self.kind)


@dataclass(frozen=True)
class BadRollout(Fault):
    """A rollout at ``at_s`` to a revision with more errors and/or more latency."""

    error_ratio_multiplier: float = 1.0
    extra_error_ratio: float = 0.0
    extra_latency_s: float = 0.0
    kind: ClassVar[str] = "bad-rollout"
    instantaneous: ClassVar[bool] = True

    def revision_props(self) -> RevisionProps:
        return RevisionProps(error_ratio_multiplier=self.error_ratio_multiplier,
                             extra_error_ratio=self.extra_error_ratio,
                             extra_latency_s=self.extra_latency_s, label=self.kind)


@dataclass(frozen=True)
class NodeLoss(Fault):
    """``share_ratio`` of the nodes vanish for ``duration_s``: their pods with them."""

    share_ratio: float = 0.25
    kind: ClassVar[str] = "node-loss"


@dataclass(frozen=True)
class MemoryLeak(Fault):
    """Per-pod memory grows by ``rate_mib_per_s`` per second of container age while active."""

    rate_mib_per_s: float = 0.1
    kind: ClassVar[str] = "memory-leak"


@dataclass(frozen=True)
class ReadinessOutage(Fault):
    """Every pod of the services fails its readiness probe for ``duration_s`` (None: to the end
    of the run), as when a dependency they all check (a database, a downstream API) is down.

    The pods keep running (no restart, restart counts and container ages unchanged); with no
    Ready pod a service serves nothing (its ready capacity is 0: requests are dropped or queued).
    """

    kind: ClassVar[str] = "readiness-outage"


@dataclass(frozen=True)
class PodHang(Fault):
    """``count`` Ready pods of each service hang at ``at_s`` (a stuck process: it answers neither
    its readiness probe nor requests) for ``duration_s`` (None: until the pod restarts).

    A hung pod keeps running (no restart, restart count and container age unchanged), is not
    Ready and serves nothing; the other pods serve. A container restart or the pod's deletion
    cures it (the new process does not hang), unless ``sticky``: then the cause stays with the
    victim (a poison node or volume) while the fault lasts: its restarted container, or the pod
    its ReplicaSet (StatefulSet: same ordinal) creates in its place when it is deleted, hangs
    again as its start-up ends (never Ready); a scale-down that removes it ends it. Victims: as
    :class:`PodCrash`'s, from the service's own pod-hang stream, or the one ``ordinal`` names
    (as :class:`PodCrash`'s).
    """

    count: int = 1
    ordinal: int | None = None
    sticky: bool = False
    kind: ClassVar[str] = "pod-hang"


@dataclass(frozen=True)
class MetricsOutage(Fault):
    """Signals of the services are unavailable (no series / source down)."""

    kind: ClassVar[str] = "metrics-outage"


@dataclass(frozen=True)
class StaleMetrics(Fault):
    """Signals of the services stay frozen at their value just before ``at_s``."""

    kind: ClassVar[str] = "stale-metrics"


@dataclass(frozen=True)
class NaNMetrics(Fault):
    """Signals of the services read NaN."""

    kind: ClassVar[str] = "nan-metrics"


FAULT_KINDS: dict[str, type[Fault]] = {cls.kind: cls for cls in (
    PodCrash, CrashLoopRollout, BadRollout, NodeLoss, MemoryLeak, ReadinessOutage, PodHang, MetricsOutage,
    StaleMetrics, NaNMetrics)}


@dataclass(frozen=True)
class FaultEvent:
    """A fault starting (``starts``) or ending at ``at_s``; ``index`` is its place in the list."""

    at_s: float
    starts: bool
    index: int
    fault: Fault


class FaultTimeline:
    """The start and end events of a list of faults, in the order they apply.

    Each engine owns one and pops what is due with :meth:`pop_due`; ``next_s`` is the time of
    the next event (inf when none) so that the hot path checks a single float.
    """

    def __init__(self, faults: Sequence[Fault]):
        events = []
        for i, f in enumerate(faults):
            events.append(FaultEvent(f.at_s, True, i, f))
            if f.end_s is not None:
                events.append(FaultEvent(f.end_s, False, i, f))
        # Ends before starts at the same time: a window is [start, end).
        events.sort(key=lambda e: (e.at_s, e.starts, e.index))
        self.faults = tuple(faults)
        self._events = events
        self._pos = 0

    @property
    def next_s(self) -> float:
        return self._events[self._pos].at_s if self._pos < len(self._events) else float("inf")

    def pop_due(self, now: float) -> list[FaultEvent]:
        """Events with ``at_s <= now`` not yet applied, in order."""
        due = []
        while self._pos < len(self._events) and self._events[self._pos].at_s <= now:
            due.append(self._events[self._pos])
            self._pos += 1
        return due


def validate_faults(faults: Sequence[Fault], index_of: Mapping[str, int]) -> None:
    """Raise :class:`ScenarioError` listing every fault that names an unknown service or is malformed."""
    errors = [e for i, f in enumerate(faults) for e in f.field_errors(index_of, f"faults[{i}]")]
    for i, f in enumerate(faults):
        if isinstance(f, NodeLoss) and not 0 <= f.share_ratio <= 1:
            errors.append(FieldError(f"faults[{i}]", None, f"faults[{i}].share_ratio",
                                     f"must be in [0, 1], got {f.share_ratio}"))
        if isinstance(f, MemoryLeak) and f.rate_mib_per_s <= 0:
            errors.append(FieldError(f"faults[{i}]", None, f"faults[{i}].rate_mib_per_s",
                                     f"must be > 0, got {f.rate_mib_per_s}"))
        if isinstance(f, PodHang) and f.count < 1:
            errors.append(FieldError(f"faults[{i}]", None, f"faults[{i}].count", f"must be >= 1, got {f.count}"))
        if isinstance(f, PodCrash) and f.count < 0:
            errors.append(FieldError(f"faults[{i}]", None, f"faults[{i}].count", f"must be >= 0, got {f.count}"))
    if errors:
        raise ScenarioError(errors)


def named_victim(candidates: np.ndarray, ranks: np.ndarray, ordinal: int) -> np.ndarray:
    """Positions (0 or 1) among ``candidates`` of the one whose rank (ordinal, or creation rank)
    is ``ordinal``: a fault that names its victim (no draw). None such: none (it is not a
    candidate: not Ready for a hang, not running for a crash, or not there)."""
    return np.flatnonzero(ranks[candidates] == ordinal)[:1]


def choose_victims(rng: np.random.Generator, n_candidates: int, count: int) -> np.ndarray:
    """Positions (ascending) of ``count`` victims among ``n_candidates`` in canonical order.

    Draws from ``rng`` only when there is a real choice to make, identically in both engines.
    """
    count = max(0, min(count, n_candidates))
    if count == n_candidates:
        return np.arange(n_candidates)
    return np.sort(rng.choice(n_candidates, size=count, replace=False))


def node_loss_victim_count(share_ratio: float, n_scheduled: int) -> int:
    """How many of ``n_scheduled`` pods vanish with ``share_ratio`` of the nodes (half up)."""
    return int(np.floor(share_ratio * n_scheduled + 0.5))
