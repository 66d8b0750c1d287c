"""Adapter from HPA conformance cases (hpa-spec.md Appendix A) to calls of the decision core.

A case becomes arrays (a batch of one target), the core computes, and :func:`mismatches`
compares the observed numbers with ``case["expect"]``. Times: ``now = NOW`` and every age in a
case becomes ``NOW - age``; the 1e11 "zero time" is just a very old entry.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.core import hpa_replicas as hr
from controller.core.hpa_conditions import hpa_conditions, limit_condition_reason
from controller.core.limit import (changes_in_periods, clamp_legacy, limit_with_behavior, scale_down_limit,
                                   scale_up_limit)
from controller.core.normalize import NormState, normalize
from controller.core.params import MetricKind, MetricParams, PolicyParams, RuleType, ScalingRules, Select
from controller.core.stabilize import stabilize_legacy, stabilize_with_behavior

NOW = 1_000_000.0
REPO = Path(__file__).resolve().parents[2]
EXTRA_CASES = Path(__file__).resolve().parent / "cases" / "hpa-extra.json"
UNBOUNDED = float(hr.INT32_MAX)


# --- locating case files --------------------------------------------------------------------


@dataclass(frozen=True)
class BadCaseFile:
    """A case file that was named but could not be used; its test fails with ``problem``."""

    path: Path
    problem: str


def shared_dir() -> Path:
    """The shared folder: $SETPOINT_SHARED_DIR, else <repo>/../shared."""
    return Path(os.environ.get("SETPOINT_SHARED_DIR") or REPO.parent / "shared")


def case_files() -> tuple[list[Path], list[BadCaseFile]]:
    """(usable case files, named files that do not exist). Shared, then in-repo, then $SETPOINT_CONFORMANCE_CASES."""
    conformance = shared_dir() / "conformance"
    found = sorted(conformance.glob("*.json")) if conformance.is_dir() else []
    if EXTRA_CASES.is_file():
        found.append(EXTRA_CASES)
    bad = []
    for name in filter(None, os.environ.get("SETPOINT_CONFORMANCE_CASES", "").split(":")):
        path = Path(name)
        if path.is_file():
            found.append(path)
        else:
            bad.append(BadCaseFile(path, f"SETPOINT_CONFORMANCE_CASES names {path}, which does not exist"))
    unique = list({p.resolve(): p for p in found}.values())
    return unique, bad


def load_cases(path: Path) -> list[dict] | BadCaseFile:
    """The case list of one file, or a BadCaseFile saying why it cannot be read."""
    try:
        cases = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return BadCaseFile(path, f"cannot read {path}: {exc}")
    if not isinstance(cases, list) or not all(isinstance(c, dict) and "id" in c for c in cases):
        return BadCaseFile(path, f"{path} is not a JSON list of cases with an 'id'")
    return cases


# --- kind = replicas ------------------------------------------------------------------------

PHASES = {p.name.capitalize(): p for p in hr.Phase}
READINESS = {None: hr.Readiness.NONE, True: hr.Readiness.TRUE, False: hr.Readiness.FALSE,
             "True": hr.Readiness.TRUE, "False": hr.Readiness.FALSE, "Unknown": hr.Readiness.UNKNOWN}


def _age(value) -> float:
    """An age in seconds; null is Go's zero time."""
    return hr.ZERO_TIME_AGE_S if value is None else float(value)


def _start_age(pod: dict) -> float:
    """start_age_s: null = no startTime (NaN); absent = a long-running pod."""
    if "start_age_s" not in pod:
        return hr.ZERO_TIME_AGE_S
    return math.nan if pod["start_age_s"] is None else float(pod["start_age_s"])


def pod_table(pods: list[dict]) -> hr.PodTable:
    """One target's pods. start_age_s null = no startTime; ready_condition null = no Ready condition."""
    return hr.PodTable.of(
        np.zeros(len(pods), dtype=np.int64),
        phase=[PHASES[p.get("phase", "Running")] for p in pods],
        ready=[READINESS[p.get("ready_condition", True)] for p in pods],
        deleted=[bool(p.get("deleted", False)) for p in pods],
        start_age_s=[_start_age(p) for p in pods],
        ready_transition_age_s=[_age(p.get("ready_transition_age_s")) for p in pods],
        request_milli=[p.get("request_milli") or 0 for p in pods],
        has_request=[p.get("request_milli") is not None for p in pods],
        has_container=[bool(p.get("has_container", True)) for p in pods],
        usage_milli=[p.get("usage_milli") or 0 for p in pods],
        has_sample=[p.get("usage_milli") is not None for p in pods],
        metric_age_s=[_age(p.get("metric_age_s")) for p in pods],
        metric_window_s=[float(p.get("metric_window_s") or 60) for p in pods],
        names=[p.get("name", f"pod-{i}") for i, p in enumerate(pods)],
    )


def stray_samples(inp: dict) -> hr.StraySamples:
    strays = inp.get("unmatched_metrics_milli") or []
    return hr.StraySamples.of(np.zeros(len(strays)), [s["usage_milli"] for s in strays])


def tolerances(inp: dict) -> tuple[float, float]:
    """(down, up): the effective tolerance, or derived from the controller-level fields."""
    if inp.get("tolerance"):
        return float(inp["tolerance"]["scale_down"]), float(inp["tolerance"]["scale_up"])
    per_hpa = inp.get("behavior_tolerance") or {}
    if not isinstance(per_hpa, dict):
        per_hpa = {"scale_down": per_hpa, "scale_up": per_hpa}

    def per_direction(snake: str, camel: str) -> float:  # NaN = unset; Quantity strings such as "0.05"
        value = per_hpa.get(snake, per_hpa.get(camel))
        return math.nan if value is None else float(value)

    return hr.hpa_tolerances(float(inp.get("cluster_tolerance", 0.1)), per_direction("scale_down", "scaleDown"),
                             per_direction("scale_up", "scaleUp"),
                             bool(inp.get("configurable_tolerance_feature_enabled", True)))


def replica_proposal(inp: dict) -> hr.ReplicaProposal:
    """Run the calculator function that upstream runs for this metric type and target type."""
    metric, target = inp["metric_type"], inp["target"]
    current = [int(inp["current_replicas"])]
    status = [int(inp.get("status_replicas", inp["current_replicas"]))]
    down, up = tolerances(inp)
    pods = pod_table(inp.get("pods") or [])
    resource = inp.get("resource_name", "cpu")
    readiness = dict(cpu_initialization_period_s=float(inp.get("cpu_initialization_period_s", 300)),
                     initial_readiness_delay_s=float(inp.get("initial_readiness_delay_s", 30)))
    if metric in ("Resource", "ContainerResource") and target["type"] == "Utilization":
        return hr.resource_utilization_replicas(
            pods, stray_samples(inp), current, target["average_utilization"], down, up, cpu_rules=resource == "cpu",
            resource=resource, container=inp.get("container") or "" if metric == "ContainerResource" else "",
            **readiness)
    if metric in ("Resource", "ContainerResource", "Pods"):
        return hr.average_value_replicas(
            pods, stray_samples(inp), current, target["average_value_milli"], down, up,
            cpu_rules=metric != "Pods" and resource == "cpu", source="pods" if metric == "Pods" else "resource",
            resource=resource, metric_name=inp.get("metric_name", ""), **readiness)
    if metric == "Object":
        value = inp.get("object_value_milli")
        has_value = [value is not None]
        if target["type"] == "Value":
            return hr.object_value_replicas(value or 0, current, target["value_milli"], down, up, pods,
                                            has_value=has_value)
        return hr.object_average_value_replicas(value or 0, status, target["average_value_milli"], down, up,
                                                has_value=has_value)
    values = inp.get("external_values_milli") or []
    series = hr.ExternalSeries.of(np.zeros(len(values)), values)
    if target["type"] == "Value":
        return hr.external_value_replicas(series, current, target["value_milli"], down, up, pods)
    return hr.external_average_value_replicas(series, status, target["average_value_milli"], down, up)


def observe_replicas(inp: dict) -> dict:
    result = replica_proposal(inp)
    if not result.valid[0]:
        return {"error": True, "error_message": result.error_message[0]}
    usage = int(result.usage_milli[0])
    return {"error": False, "desired_replicas": int(result.replicas[0]), "utilization": int(result.utilization[0]),
            "raw_average_milli": usage, "usage_milli": usage}


# --- kind = behavior ------------------------------------------------------------------------

SELECT = {"Max": Select.MAX, "Min": Select.MIN, "Disabled": Select.DISABLED}
RULE_TYPES = {"Pods": RuleType.PODS, "Percent": RuleType.PERCENT}
DEFAULT_POLICIES = {"scaleUp": [("Pods", 4, 15), ("Percent", 100, 15)], "scaleDown": [("Percent", 100, 15)]}


def scaling_rules(behavior: dict | None, direction: str, controller: dict) -> ScalingRules:
    """One direction of ``behavior`` with the spec 12.1 defaults applied field by field."""
    rules = (behavior or {}).get(direction) or {}
    window = rules.get("stabilizationWindowSeconds")
    if window is None:
        window = 0 if direction == "scaleUp" else controller.get("downscale_stabilization_window_s", 300)
    policies = rules.get("policies")
    if policies is None:
        policies = [{"type": t, "value": v, "periodSeconds": p} for t, v, p in DEFAULT_POLICIES[direction]]
    return ScalingRules.of(window, SELECT[rules.get("selectPolicy") or "Max"],
                           [(RULE_TYPES[p["type"]], p["value"], p["periodSeconds"]) for p in policies])


def _bound(value, default: float) -> float:
    return default if value is None else float(value)


def policy_params(inp: dict, n_metrics: int) -> PolicyParams:
    """The ``hpa`` policy a behavior case describes (legacy when ``behavior`` is null)."""
    controller, behavior = inp.get("controller") or {}, inp.get("behavior")
    return PolicyParams(
        name="case",
        metrics=tuple(MetricParams(f"m{i}", MetricKind.VALUE, 1.0) for i in range(n_metrics)),
        min_replicas=int(_bound(inp.get("min_replicas"), 1)),
        max_replicas=int(_bound(inp.get("max_replicas"), UNBOUNDED)),
        scale_up=scaling_rules(behavior, "scaleUp", controller),
        scale_down=scaling_rules(behavior, "scaleDown", controller),
        legacy=behavior is None,
        scale_up_limit_factor=float(controller.get("scale_up_limit_factor", 2.0)),
        scale_up_limit_minimum=float(controller.get("scale_up_limit_minimum", 4)),
        hpa_semantics=True,
    )


def history(entries: list[dict] | None, value_key: str, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (1, S), times (1, S)) from ``[{value_key, age_s}]``; unused slots are empty (NaN time)."""
    entries = entries or []
    size = max(slots, len(entries) + 2)
    values, times = np.zeros((1, size)), np.full((1, size), np.nan)
    for j, e in enumerate(entries):
        values[0, j], times[0, j] = e[value_key], NOW - float(e["age_s"])
    return values, times


def norm_state(inp: dict, params: PolicyParams) -> NormState:
    """The controller memory a reconcile case starts from.

    recommendations null = the controller has never seen the HPA (normalize seeds it). An empty
    list is a known HPA with no entry; it is stored as one entry older than every window, which
    counts for nothing and is the first slot reused.
    """
    recs = inp.get("recommendations")
    if recs is not None and not recs:
        recs = [{"replicas": 0, "age_s": hr.ZERO_TIME_AGE_S}]
    rec = history(recs, "replicas", params.history_slots)
    up = history(inp.get("scale_up_events"), "replica_change", params.event_slots)
    down = history(inp.get("scale_down_events"), "replica_change", params.event_slots)
    return NormState(*rec, *up, *down, np.full(1, np.nan))


def _events(inp: dict, rules: ScalingRules) -> tuple[np.ndarray, np.ndarray]:
    """(added, removed) per policy of ``rules``, (1, P)."""
    up = history(inp.get("scale_up_events"), "replica_change", 0)
    down = history(inp.get("scale_down_events"), "replica_change", 0)
    return changes_in_periods(*up, NOW, rules.periods_s), changes_in_periods(*down, NOW, rules.periods_s)


def observe_behavior(inp: dict) -> dict:
    """Run the stage a behavior case names; returns the observed expectation fields."""
    stage = inp["stage"]
    current = np.array([_bound(inp.get("current_replicas"), 0)])
    desired = np.array([_bound(inp.get("prenormalized_desired_replicas"), 0)])
    proposals = inp.get("metric_proposals") or []
    params = policy_params(inp, len(proposals))
    rec = history(inp.get("recommendations"), "replicas", 0)
    if stage == "stabilize_no_behavior":
        return {"desired_replicas": stabilize_legacy(desired, *rec, NOW, params.scale_down.window_s)[0]}
    if stage == "stabilize_with_behavior":
        return {"desired_replicas": stabilize_with_behavior(current, desired, *rec, NOW, params.scale_up.window_s,
                                                            params.scale_down.window_s)[0]}
    if stage == "scale_up_limit":
        return {"desired_replicas": scale_up_limit(current, *_events(inp, params.scale_up), params.scale_up)[0]}
    if stage == "scale_down_limit":
        return {"desired_replicas": scale_down_limit(current, *_events(inp, params.scale_down), params.scale_down)[0]}
    if stage == "clamp_no_behavior":
        replicas, reason = clamp_legacy(current, desired, params.min_replicas, params.max_replicas,
                                        params.scale_up_limit_factor, params.scale_up_limit_minimum)
        return {"desired_replicas": replicas[0], "condition_reason": limit_condition_reason(reason[0])}
    if stage == "rate_limit_with_behavior":
        up_limit = scale_up_limit(current, *_events(inp, params.scale_up), params.scale_up)
        down_limit = scale_down_limit(current, *_events(inp, params.scale_down), params.scale_down)
        replicas, reason = limit_with_behavior(current, desired, params.min_replicas, params.max_replicas,
                                               up_limit, down_limit)
        return {"desired_replicas": replicas[0], "condition_reason": limit_condition_reason(reason[0])}
    if stage == "reconcile":
        return observe_reconcile(inp, params, current, proposals)
    raise ValueError(f"unknown behavior stage {stage!r}")


def observe_reconcile(inp: dict, params: PolicyParams, current: np.ndarray, proposals: list[dict]) -> dict:
    valid = np.array([[p.get("error") is None for p in proposals]], dtype=bool).reshape(1, len(proposals))
    values = np.array([[p.get("replicas") or 0 for p in proposals]], dtype=np.float64).reshape(1, len(proposals))
    failures = [[p.get("error") or "" for p in proposals]]
    result, _ = normalize(params, current, values, valid, norm_state(inp, params), NOW)
    desired = result.desired[0]
    return {"desired_replicas": desired, "rescale": bool(desired != current[0]),
            "conditions": hpa_conditions(result, current, failures, params.legacy)[0]}


# --- comparing ------------------------------------------------------------------------------


def observe(case: dict) -> dict:
    inp = case["input"]
    return observe_replicas(inp) if case["kind"] == "replicas" else observe_behavior(inp)


def mismatches(case: dict) -> dict:
    """``{field: (expected, observed)}`` for every expected field the core got wrong; {} when it conforms."""
    expect, observed = case["expect"], observe(case)
    wrong = {}
    for key, want in expect.items():
        if key == "error_contains":
            got = observed.get("error_message", "")
            if want not in got:
                wrong[key] = (want, got)
        elif key == "conditions":
            got = {k: observed.get("conditions", {}).get(k) for k in want}
            if got != want:
                wrong[key] = (want, observed.get("conditions"))
        elif observed.get(key) != want:
            wrong[key] = (want, observed.get(key, observed.get("error_message", "<not produced>")))
    if not expect.get("error") and observed.get("error"):
        wrong["error"] = (False, observed["error_message"])
    return wrong
