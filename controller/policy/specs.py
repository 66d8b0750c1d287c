"""Compiled, typed forms of the parts of a policy that are not :class:`PolicyParams`.

Target selection and health checks, as frozen dataclasses with seconds (``*_s``) and ratios
(``*_ratio``); no pydantic, no YAML. The health core consumes these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from controller.core.health.params import BudgetParams
from controller.core.scaling.params import Smoothing
from controller.model import ActionKind, TargetSelector  # noqa: F401 (TargetSelector: re-exported by controller.policy)


#: What a firing health check proposes: the one action type (``HealthAction("scale-up")`` is
#: ``ActionKind.SCALE``); the name stays for the policy layer's readers.
HealthAction = ActionKind


class Comparison(str, enum.Enum):
    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True)
class SmoothingSpec:
    """How a signal is smoothed. ``percentile`` is in (0, 100] and used only by PERCENTILE."""

    kind: Smoothing = Smoothing.NONE
    half_life_s: float = 0.0
    window_s: float = 0.0
    percentile: float = 50.0


@dataclass(frozen=True)
class Threshold:
    """A condition ``value above/below threshold``, required to hold continuously for ``for_s``."""

    comparison: Comparison
    value: float
    for_s: float = 0.0

    def is_met(self, value: float) -> bool:
        """Strict comparison: sitting exactly on the threshold does not meet it."""
        return value > self.value if self.comparison is Comparison.ABOVE else value < self.value


@dataclass(frozen=True)
class HealthCheckSpec:
    """One health check. ``recovered`` is on the healthy side of ``unhealthy`` (hysteresis)."""

    name: str
    query: str
    scope: str  # "workload" or "pod"
    smoothing: SmoothingSpec
    unhealthy: Threshold
    recovered: Threshold
    action: HealthAction
    fire_on_missing: bool = False
    #: a hung-pod check (query ''): its start-up allowance, s; its notReadyFor is ``unhealthy.value``
    #: (seconds hung, above). None: a query's check.
    hung_startup_s: float | None = None

    @property
    def is_hung(self) -> bool:
        return self.hung_startup_s is not None


@dataclass(frozen=True)
class RevisionCheckSpec:
    """A ``scope: revision`` check: the new revision against the stable one, by a sequential test.

    A ratio check has ``errors`` and ``requests`` (per-pod rates); a latency check ``query`` (one
    latency sample per pod). Rates are per second; shares (false_rate, miss_rate) 0..1."""

    name: str
    errors: str | None
    requests: str | None
    query: str | None
    worse_by: float
    false_rate: float
    miss_rate: float
    min_requests: int | None
    action: HealthAction
    hold_max_s: float | None = None  # hold the rollout while undecided, at most this long (None: never)

    @property
    def queries(self) -> tuple[str, ...]:
        """(errors, requests) for a ratio, (query,) for a latency."""
        return (self.query,) if self.query is not None else (self.errors, self.requests)


@dataclass(frozen=True)
class BudgetSpec:
    """Limits on disruptive actions. Exactly one of the two ``max_unavailable_*`` is set."""

    restarts_per_hour: int
    rollbacks_per_day: int
    max_unavailable_pods: int | None = None
    max_unavailable_ratio: float | None = None

    def max_unavailable(self, replicas: int) -> int:
        """Pods that may be disrupted at once out of ``replicas``: the core's rule
        (``BudgetParams.max_unavailable``), so that the two never round differently."""
        params = BudgetParams(max_unavailable_pods=self.max_unavailable_pods,
                              max_unavailable_ratio=None if self.max_unavailable_pods is not None
                              else self.max_unavailable_ratio)
        return int(params.max_unavailable(np.asarray([replicas]))[0])


@dataclass(frozen=True)
class HealthSpec:
    checks: tuple[HealthCheckSpec, ...]
    budgets: BudgetSpec
    rollback_window_s: float
    escalation: tuple[HealthAction, ...] = ()
    healthy_after_s: float = 300.0
    revision_checks: tuple[RevisionCheckSpec, ...] = ()
    rollout_interval_s: float = 5.0


