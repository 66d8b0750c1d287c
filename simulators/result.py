"""What a simulation produces: per-controller trajectories, actions and scores.

Arrays are (T, S): T ticks, S services. Times are seconds since the scenario start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controller.model import direct_init


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
    actions: list[ActionEvent] = field(default_factory=list)
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
