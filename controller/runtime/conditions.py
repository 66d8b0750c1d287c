"""HPA-style conditions of one cycle, per target, with kubectl's status and a message.

The reasons come from :func:`controller.core.scaling.hpa_conditions.hpa_conditions` (which assumes the
rescale succeeds); this shell knows what really happened: a target that was not found
(AbleToScale False / FailedGetScale), a scale that failed (FailedUpdateScale), a change that was
not applied this cycle (a health action took its place).
"""

from __future__ import annotations

import functools

from typing import Sequence

import numpy as np

from controller.core.scaling.decide import Decision
from controller.core.scaling.hpa_conditions import condition_status, hpa_conditions, metric_failure_reasons
from controller.core.scaling.params import PolicyParams
from controller.model import Action, ActionKind, ScaleActions, TargetRef

_FIXED_MESSAGES = {
    "SucceededGetScale": "the controller was able to get the target's current scale",
    "ReadyForNewScale": "recommended size matches current size",
    "ScaleDownStabilized": "recent recommendations were higher than current one, applying the highest recent "
                           "recommendation",
    "ScaleUpStabilized": "recent recommendations were lower than current one, applying the lowest recent "
                         "recommendation",
    "ScalingDisabled": "scaling is disabled since the replica count of the target is zero",
    "TargetNotReady": "no pod of the target is Ready (or none was for a whole metric window, which its readings "
                      "still average), so its metrics do not read its demand; a scale-down waits until they do, "
                      "and so does a scale-up once it had Ready pods (new ones would not get Ready either)",
    "MetricsRecovering": "a metric came back (or was first read) less than its query's range ago, so its reading "
                         "covers only part of the range and may read low; a scale-down waits until it covers all of it",
    "ExternalOverride": "someone else set the replicas (kubectl scale, a GitOps sync, a script): they are left as set "
                        "for the policy's onExternalScale.handsOff, then scaled from there",
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


def _metrics_message(reason: str, names: Sequence[str], valid: np.ndarray, implausible: np.ndarray,
                     failed_queries: dict[str, str] | None = None) -> str:
    if reason == "ValidMetricFound":
        used = [n for n, ok in zip(names, valid) if ok]
        return f"the controller was able to calculate a replica count from {', '.join(used)}"

    def why(name: str, bad: bool) -> str:
        if failed_queries and name in failed_queries:  # Prometheus down, slow or erroring: not the metric's own fault
            return f" (its query failed: {failed_queries[name]})"
        return " (an implausible sample, far above what replicas.max could serve)" if bad else ""

    missing = [n + why(n, bad) for n, ok, bad in zip(names, valid, implausible) if not ok]
    text = f"the controller was unable to compute the replica count: no usable sample for {', '.join(missing)}"
    return text + ("; a scale-down waits until every metric has one" if valid.any() else "")


def scaling_conditions(params: PolicyParams, decision: Decision, targets: Sequence[TargetRef], exists: np.ndarray,
                       applied: Sequence[Action], failed: Sequence,
                       failed_queries: dict[str, str] | None = None) -> list[dict[str, dict]]:
    """Per target, ``{condition type: {status, reason, message}}`` for the conditions this cycle
    sets (the others keep their last value, as HPA's do). Empty dicts for a policy without metrics.

    exists: (N,) the target was found; applied / failed: the cycle's actions (failed: its
    reconciler.FailedAction records; only a failed scale makes AbleToScale False); failed_queries:
    metric name -> the error of its query this cycle (ScalingActive's message says it).
    Targets in the same situation share their conditions (the same dict: read-only): each
    distinct situation (the inputs of :func:`hpa_conditions` and the message) is worked out once,
    and only the rescales, whose message names the target's action, per target (a 1,000-target
    cycle has a handful of situations; per target, this cost more than the decision itself).
    """
    if not params.metrics or not len(targets):
        return [{} for _ in targets]
    norm, valid = decision.norm, np.asarray(decision.valid, bool)
    implausible = np.asarray(decision.signal.implausible, bool)  # its own message: a situation of its own
    flags = np.concatenate([valid, implausible], axis=1) if implausible.any() else valid
    _, first, which = np.unique(_situations(decision, flags), return_index=True, return_inverse=True)
    shared = _conditions_of_rows(params, decision, first, failed_queries or {})
    rescaled = np.array([c.get("AbleToScale", {}).get("reason") == "SucceededRescale" for c in shared])
    out = [shared[k] for k in which.ravel().tolist()]
    exists = np.asarray(exists, bool)
    if rescaled.any():  # the message names this target's action
        scaled = applied.counts() if isinstance(applied, ScaleActions) else \
            {a.target: a.replicas for a in applied if a.kind == ActionKind.SCALE}
        failed_by = {f.target: f.why for f in failed if f.kind == "scale"}  # a failed rollback is no FailedUpdateScale
        for i in np.flatnonzero(rescaled[which.ravel()] & exists).tolist():
            out[i] = {**out[i], "AbleToScale": _rescale(targets[i], int(norm.desired[i]), scaled, failed_by)}
    not_found = {"AbleToScale": condition("FailedGetScale", "the controller was unable to get the target's "
                                                            "current scale: not found")}
    for i in np.flatnonzero(~exists).tolist():
        out[i] = not_found
    return out


def _situations(decision: Decision, valid: np.ndarray) -> np.ndarray:
    """(N,) int64: one code per distinct input of :func:`hpa_conditions` and of the message (the
    reason, whether scaling ran, the comparisons it makes, the limit reason, which metrics were
    valid: ``valid`` (N, K) bool, the flags of the metrics the message depends on). Reason codes < 32,
    limit reasons in [-1, 14], so 12 bits hold the scalar part."""
    norm = decision.norm
    current = np.asarray(decision.current, dtype=np.float64)
    code = np.asarray(norm.reason, dtype=np.int64) & 31
    code |= np.asarray(norm.scaling_active, dtype=np.int64) << 5
    code |= (norm.desired != current).astype(np.int64) << 6
    code |= (norm.stabilized == norm.proposal).astype(np.int64) << 7
    code |= (norm.proposal < current).astype(np.int64) << 8
    code |= ((np.asarray(norm.limit_reason, dtype=np.int64) + 1) & 15) << 9
    m = valid.shape[1]
    if m <= 48:
        return code | (valid.astype(np.int64) @ (np.int64(1) << np.arange(m, dtype=np.int64))) << 13
    # more metrics than bits: a row code per distinct valid pattern
    _, pattern = np.unique(valid, axis=0, return_inverse=True)
    return code | pattern.ravel().astype(np.int64) << 13


def _conditions_of_rows(params: PolicyParams, decision: Decision, rows: np.ndarray,
                        failed_queries: dict[str, str]) -> list[dict[str, dict]]:
    """The conditions of the given rows as :func:`hpa_conditions` sets them (a SucceededRescale
    still to be made target-specific)."""
    norm = decision.norm
    sub = type(norm)(*(np.asarray(getattr(norm, f))[rows] for f in norm.__dataclass_fields__))
    valid = np.asarray(decision.valid, bool)[rows]
    implausible = np.asarray(decision.signal.implausible, bool)[rows]
    failures = metric_failure_reasons(params.metrics, valid)
    reasons = hpa_conditions(sub, np.asarray(decision.current)[rows], failures, params.legacy)
    names = params.metric_names
    out = []
    for r, row_valid, row_implausible in zip(reasons, valid, implausible):
        conds = {}
        for kind, reason in r.items():
            message = ""
            if kind == "ScalingActive" and reason not in _FIXED_MESSAGES:
                message = _metrics_message(reason, names, row_valid, row_implausible, failed_queries)
            conds[kind] = condition(reason, message)
        out.append(conds)
    return out


def _rescale(target: TargetRef, desired: int, scaled: dict, failed_by: dict) -> dict[str, str]:
    """AbleToScale of a target the decision changed: ``scaled`` target -> the count a scale set,
    ``failed_by`` target -> why its scale failed."""
    if target in scaled:
        return condition("SucceededRescale", f"the controller was able to update the target scale to "
                                             f"{scaled[target]}")
    if target in failed_by:
        return condition("FailedUpdateScale", f"the controller was unable to update the target scale: "
                                              f"{failed_by[target]}")
    return condition("SucceededGetScale", f"the controller was able to get the target's current scale; the change "
                                          f"to {desired} was not applied this cycle")
