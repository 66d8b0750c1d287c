"""How long a removed policy's durable state still matters, from the policy's own parameters.

A policy's state on the cluster (``setpoint-state-<policy>`` and its parts) is memory with a
time limit: the scale events its rate limits count are kept for the longest rate-limit period, a
hands-off lasts ``onExternalScale.handsOff`` from the change and a fight is counted over an hour
plus twice that, a healing budget counts restarts over an hour and rollbacks over a day, a
verification, a rollout hold, a health scale-up floor and the revision windows each end after
their own duration. Written no later than the policy's last cycle, none of it is in force
``keep_s`` after that, the longest of those periods, so a policy added back sooner finds its
state as it left it, and one added back later starts as a new policy would (budgets full, no
hands-off, no rate-limit history, nothing held).

What does not end on its own is not counted: a breaker held until ``setpoint resume`` and the
revision memory (the known-healthy revisions) belong to a policy that runs; once it has been
gone longer than all of the above, re-adding it is a new start, as re-creating an HPA is.

The stabilization windows are in memory only (never written), but they are part of what the
policy remembers and are counted too. Pure: no clock, no I/O; times in epoch seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.core.health.params import HealthParams
from controller.core.health.remediate import DAY_S, HOUR_S
from controller.core.scaling.params import PolicyParams
from controller.runtime.external_scale import FIGHT_WINDOW_S

if TYPE_CHECKING:
    from controller.runtime.reconciler import RuntimePolicy


def scaling_memory_s(params: PolicyParams, hands_off_s: float) -> dict[str, float]:
    """The periods (s) a scaling policy's memory is in force, by what sets them: its stabilization
    windows, its rate limits' longest periods (the scale events kept), its hands-off and its fight
    window (external_scale.py: an hour plus twice the hands-off). {} for a policy that does not scale."""
    if not params.metrics:
        return {}
    return {"scaleUp.stabilizationWindow": params.scale_up.window_s,
            "scaleDown.stabilizationWindow": params.scale_down.window_s,
            "scaleUp rate-limit period": params.scale_up.longest_period_s,
            "scaleDown rate-limit period": params.scale_down.longest_period_s,
            "onExternalScale.handsOff": hands_off_s,
            "the external-scale fight window": FIGHT_WINDOW_S + 2 * hands_off_s}


def health_memory_s(health: HealthParams | None) -> dict[str, float]:
    """The periods (s) a health policy's memory is in force: its budgets' windows (restarts an
    hour, rollbacks a day, when it allows any), a verification with its wait for a rollout, the
    revision windows, a health scale-up's floor, and a revision check's rollout hold. {} without
    health checks."""
    if health is None:
        return {}
    holds = [c.hold_max_s for c in health.revision_checks if c.hold_max_s is not None]
    return {"budgets.restartsPerHour's window": HOUR_S if health.budgets.restarts_per_hour > 0 else 0.0,
            "budgets.rollbacksPerDay's window": DAY_S if health.budgets.rollbacks_per_day > 0 else 0.0,
            "the verification window": health.longest_verify_open_s,
            "the rollback window": health.rollback_window_s,
            "the new-revision window": health.new_revision_window_s,
            "healthyAfter": health.healthy_after_s,
            "the health scale-up hold": health.scale_up_hold_s,
            "a revision check's rollout hold": max(holds, default=0.0)}


def memory_periods_s(policy: "RuntimePolicy") -> dict[str, float]:
    """Every period (s) some of ``policy``'s memory is in force, by what sets it."""
    return {**scaling_memory_s(policy.params, policy.hands_off_s), **health_memory_s(policy.health)}


def state_keep(policy: "RuntimePolicy") -> tuple[float, str]:
    """(seconds, what sets them): how long after its last cycle a removed ``policy``'s state still
    matters, the longest of its memory periods (0 and "" when it has none)."""
    periods = memory_periods_s(policy)
    if not periods:
        return 0.0, ""
    why = max(periods, key=periods.__getitem__)  # ties: the first in memory_periods_s's order
    return max(periods[why], 0.0), why if periods[why] > 0 else ""


def cleanup_due(removed_at: float, keep_s: float, newest_save: float | None = None) -> float:
    """When (epoch s) a removed policy's state may be deleted: ``keep_s`` after the later of its
    removal and its newest save (a payload written after the removal, by a cycle that was
    running or another process still running the policy, restarts the count)."""
    last = removed_at if newest_save is None else max(removed_at, newest_save)
    return last + keep_s
