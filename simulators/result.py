"""What a simulation produces: per-controller trajectories, actions and scores.

Arrays are (T, S): T ticks, S services. Times are seconds since the scenario start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controller.model import REASON_CODES, ActionKind, ScaleActions, direct_init


@dataclass(frozen=True)
class SLO:
    latency_percentile: float  # e.g. 95 for p95
    latency_s: float  # threshold on that percentile, seconds
    error_ratio: float  # threshold on errors / offered


@dataclass(frozen=True)
class FaultWindow:
    name: str
    kind: str
    service: str
    start_s: float
    end_s: float | None


@direct_init  # a run makes one per action applied (a few per control cycle of 1,000 targets)
@dataclass(frozen=True)
class ActionEvent:
    t_s: float
    service: str
    kind: str  # scale | restart-pod | rolling-restart | rollback | pause | resume
    from_replicas: int | None
    to_replicas: int | None
    reason: str
    policy: str = ""  # the policy that sent it (a run with a healer has two)


class ActionLog(Sequence):
    """A run's kept ActionEvents, in order. A cycle's kept scales stay arrays (:meth:`add_scales`)
    until the log is first read (a result's report, its health summary, a test), then become the
    events their ``_event`` of each would have made, once: a long run's budget keeps its first
    20,000 actions in full, and a run nobody reads (a bench, a sweep cell) makes none of them.
    Pickles as the list of its events (a parallel run's result crosses processes)."""

    __slots__ = ("_events", "_pending")

    def __init__(self, events: Sequence[ActionEvent] = ()):
        self._events: list[ActionEvent] = list(events)
        self._pending: list[tuple] = []  # (t_s, ScaleActions, kept columns' (4, K) scales) or (events,), in order

    def extend(self, events: Sequence[ActionEvent]) -> None:
        """``events`` made already, after what is logged."""
        if events:
            self._pending.append((list(events),))

    def add_scales(self, t_s: float, actions: ScaleActions, kept: list[int]) -> None:
        """The scales of ``actions`` at positions ``kept`` (ascending), at ``t_s`` (s since the
        start), as events made on first read; their (4, K) columns copied (the cycle's arrays
        are not the log's to keep)."""
        if kept:
            scales = actions.scales.copy() if len(kept) == len(actions) else actions.scales[:, kept]
            self._pending.append((t_s, actions.targets, scales, actions.policy))

    def _made(self) -> list[ActionEvent]:
        """Every event, the pending ones made now (in order) and kept."""
        if self._pending:
            events, reasons, scale = self._events, REASON_CODES, ActionKind.SCALE.word
            for part in self._pending:
                if len(part) == 1:
                    events.extend(part[0])
                    continue
                t_s, targets, scales, policy = part
                events.extend(ActionEvent(t_s, targets[i].name, scale, f, n, reasons[c], policy)
                              for i, n, f, c in zip(*scales.tolist()))
            self._pending = []
        return self._events

    def __len__(self) -> int:
        return len(self._events) + sum(len(p[0]) if len(p) == 1 else p[2].shape[1] for p in self._pending)

    def __getitem__(self, k):
        return self._made()[k]

    def __iter__(self):
        return iter(self._made())

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same events (a list of them, as runs kept before)."""
        if not isinstance(other, (list, tuple, ActionLog)):
            return NotImplemented
        return self._made() == list(other)

    __hash__ = None

    def __reduce__(self):
        return ActionLog, (self._made(),)

    def __repr__(self) -> str:
        return f"ActionLog({self._made()!r})"


@dataclass
class Trajectory:
    """Everything the plots and scores need for one controller, (T, S) arrays."""

    t_s: np.ndarray  # (T,)
    offered_rps: np.ndarray
    served_rps: np.ndarray
    dropped_rps: np.ndarray
    capacity_rps: np.ndarray  # ready pods * capacity per pod
    spec_replicas: np.ndarray
    ready_replicas: np.ndarray
    latency_s: np.ndarray  # the SLO's latency percentile
    error_ratio: np.ndarray
    violation: np.ndarray  # bool: this tick breaks the SLO


@dataclass
class ControllerRun:
    """One controller's run. A simulation keeps the whole ``trajectory`` only when it is small
    (simulators.timeline.FULL_TRAJECTORY_CELLS); ``timeline`` (a simulators.timeline.Timeline) is
    what the report draws, ``scores`` were computed online, ``replica_hours_raw`` unrounded.
    ``actions`` may be thinned on long runs (``actions_dropped`` of them not kept)."""

    name: str  # policy | hpa | fixed-max | oracle | ...
    description: str
    trajectory: Trajectory | None
    actions: Sequence[ActionEvent] = field(default_factory=list)  # a run's: an ActionLog
    scores: dict = field(default_factory=dict)
    services: tuple[str, ...] = ()  # the services this controller drove (every service of the scenario)
    note: str = ""  # why the policy was applied to other services than the ones it names ('' if it was not)
    timeline: Any = None
    replica_hours_raw: float | None = None
    actions_dropped: int = 0


@dataclass(frozen=True)
class FrontierPoint:
    """HPA at one utilization target: its cost and its violations on the scenario."""

    target_pct: float
    replica_hours: float
    slo_violation_minutes: float
    widened: bool = False  # run to bracket the policy's replica-hours, beyond the asked targets


@dataclass(frozen=True)
class EqualCost:
    """A controller's violation minutes next to HPA's interpolated at its replica-hours."""

    controller: str
    replica_hours: float
    slo_violation_minutes: float
    hpa_slo_violation_minutes: float | None
    extrapolated: str | None  # None inside the swept range; "below" / "above" it (flat)
    ratio: float | None  # minutes / HPA's; None when HPA's is 0 (see verdict)
    verdict: str | None  # win | tie | loss


@dataclass
class Frontier:
    """HPA's swept points (by target), their lower monotone envelope (by replica-hours) and
    each other controller's comparison with it."""

    hpa_policy: str
    points: list[FrontierPoint]
    envelope: list[FrontierPoint]
    equal_cost: dict[str, EqualCost]


@dataclass
class SimResult:
    scenario: str
    description: str
    duration_s: float
    tick_s: float
    seed: int
    slo: SLO
    services: list[str]
    faults: list[FaultWindow]
    runs: dict[str, ControllerRun]
    policy_file: str = ""
    extra: dict = field(default_factory=dict)
    frontier: Frontier | None = None
    warnings: tuple = ()  # the scenario's (Scenario.warnings: controller.errors.FieldError)


def shown_path(path: str | Path, cwd: str | Path | None = None) -> str:
    """``path`` as results and reports show it: relative to ``cwd`` (default: the working
    directory) when under it, its file name when absolute elsewhere, as given when relative.
    Results are shared, so they must not carry a machine's local absolute paths."""
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    try:
        return str(p.relative_to(Path(cwd) if cwd is not None else Path.cwd()))
    except ValueError:
        return p.name
