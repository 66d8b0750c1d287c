"""HPA-style conditions of one cycle, per target, with kubectl's status and a message.

The reasons come from :func:`controller.core.hpa_conditions.hpa_conditions` (which assumes the
rescale succeeds); this shell knows what really happened: a target that was not found
(AbleToScale False / FailedGetScale), a scale that failed (FailedUpdateScale), a change that was
not applied this cycle (a health action took its place).
"""

from __future__ import annotations

import functools

from typing import Sequence

import numpy as np

from controller.core.decide import Decision
from controller.core.hpa_conditions import condition_status, hpa_conditions, metric_failure_reasons
from controller.core.params import PolicyParams
from controller.model import Action, ActionKind, TargetRef

_FIXED_MESSAGES = {
    "SucceededGetScale": "the controller was able to get the target's current scale",
    "ReadyForNewScale": "recommended size matches current size",
    "ScaleDownStabilized": "recent recommendations were higher than current one, applying the highest recent "
                           "recommendation",
    "ScaleUpStabilized": "recent recommendations were lower than current one, applying the lowest recent "
                         "recommendation",
    "ScalingDisabled": "scaling is disabled since the replica count of the target is zero",
    "DesiredWithinRange": "the desired count is within the acceptable range",
    "TooFewReplicas": "the desired replica count is less than the minimum replica count",
    "TooManyReplicas": "the desired replica count is more than the maximum replica count",
    "ScaleUpLimit": "the desired replica count is increasing faster than the maximum scale rate",
    "ScaleDownLimit": "the desired replica count is decreasing faster than the maximum scale rate",
}


@functools.lru_cache(maxsize=4096)
def condition(reason: str, message: str = "") -> dict[str, str]:
    """One condition as kubectl shows it: status, reason, message. Shared between cycles (a
    simulation keeps one per target and cycle in its records): never mutate it."""
    return {"status": condition_status(reason), "reason": reason, "message": message or _FIXED_MESSAGES.get(reason, "")}


def _metrics_message(reason: str, names: Sequence[str], valid: np.ndarray) -> str:
    if reason == "ValidMetricFound":
        used = [n for n, ok in zip(names, valid) if ok]
        return f"the controller was able to calculate a replica count from {', '.join(used)}"
    missing = [n for n, ok in zip(names, valid) if not ok]
    text = f"the controller was unable to compute the replica count: no usable sample for {', '.join(missing)}"
    return text + ("; a scale-down waits until every metric has one" if valid.any() else "")


def scaling_conditions(params: PolicyParams, decision: Decision, targets: Sequence[TargetRef], exists: np.ndarray,
                       applied: Sequence[Action], failed: Sequence[tuple[TargetRef, str]]) -> list[dict[str, dict]]:
    """Per target, ``{condition type: {status, reason, message}}`` for the conditions this cycle
    sets (the others keep their last value, as HPA's do). Empty dicts for a policy without metrics.

    exists: (N,) the target was found; applied / failed: the cycle's actions.
    """
    if not params.metrics:
        return [{} for _ in targets]
    failures = metric_failure_reasons(params.metric_kinds, decision.valid)
    reasons = hpa_conditions(decision.norm, decision.current, failures, params.legacy)
    scaled = {a.target: a for a in applied if a.kind == ActionKind.SCALE}
    failed_by = dict(failed)
    out = []
    for i, (target, found) in enumerate(zip(targets, np.asarray(exists, bool))):
        if not found:
            out.append({"AbleToScale": condition("FailedGetScale", "the controller was unable to get the target's "
                                                                   "current scale: not found")})
            continue
        conds = {}
        for kind, reason in reasons[i].items():
            if kind == "ScalingActive":
                message = _metrics_message(reason, params.metric_names, decision.valid[i]) \
                    if reason != "ScalingDisabled" else ""
            else:
                message = ""
            conds[kind] = condition(reason, message)
        if reasons[i].get("AbleToScale") == "SucceededRescale":
            conds["AbleToScale"] = _rescale(target, int(decision.desired[i]), scaled, failed_by)
        out.append(conds)
    return out


def _rescale(target: TargetRef, desired: int, scaled: dict, failed_by: dict) -> dict[str, str]:
    if target in scaled:
        return condition("SucceededRescale", f"the controller was able to update the target scale to "
                                             f"{scaled[target].replicas}")
    if target in failed_by:
        return condition("FailedUpdateScale", f"the controller was unable to update the target scale: "
                                              f"{failed_by[target]}")
    return condition("SucceededGetScale", f"the controller was able to get the target's current scale; the change "
                                          f"to {desired} was not applied this cycle")
