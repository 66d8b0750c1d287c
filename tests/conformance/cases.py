"""Adapter from HPA conformance cases (hpa-spec.md Appendix A) to ``decide()``, end to end.

A case becomes a ``preset: hpa`` policy and an observation of one target (its pods, samples and
controller memory), ``decide()`` runs the whole pipeline, and :func:`mismatches` compares the
output of the stage the case is about with ``case["expect"]``. Times: ``now = NOW`` and every age in a
case becomes ``NOW - age``; the 1e11 "zero time" is just a very old entry.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide
from controller.core.scaling.hpa_conditions import hpa_conditions, limit_condition_reason
from controller.core.scaling.hpa_propose import PodSamples
from controller.core.scaling.normalize import NormState
from controller.core.scaling.params import HpaSource, MetricKind, MetricParams, PolicyParams, RuleType, ScalingRules, Select

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


SOURCES = {"Resource": HpaSource.RESOURCE, "ContainerResource": HpaSource.CONTAINER_RESOURCE,
           "Pods": HpaSource.PODS, "Object": HpaSource.OBJECT, "External": HpaSource.EXTERNAL}


def metric_params(inp: dict) -> MetricParams:
    """The policy metric a replicas case describes: its HPA source, kind and target."""
    target = inp["target"]
    if target["type"] == "Utilization":
        kind, value = MetricKind.UTILIZATION, float(target["average_utilization"])
    elif target["type"] == "AverageValue":
        kind, value = MetricKind.AVERAGE_PER_REPLICA, target["average_value_milli"] / 1000.0
    else:
        kind, value = MetricKind.VALUE, target["value_milli"] / 1000.0
    container = (inp.get("container") or "") if inp["metric_type"] == "ContainerResource" else ""
    return MetricParams(inp.get("metric_name") or "m", kind, value, source=SOURCES[inp["metric_type"]],
                        resource=inp.get("resource_name", "cpu"), container=container)


def workload_value(inp: dict) -> tuple[float, bool]:
    """(value in the metric's unit, present) for Object and External metrics: an External
    metric's series are summed, as the metrics adapter would in one PromQL vector."""
    if inp["metric_type"] == "Object":
        value = inp.get("object_value_milli")
        return (0.0, False) if value is None else (value / 1000.0, True)
    values = inp.get("external_values_milli") or []
    return sum(values) / 1000.0, bool(values)


def pod_samples(inp: dict, table: hr.PodTable) -> PodSamples:
    """The case's pods with their samples (one metric, read per pod) and its stray samples."""
    strays = inp.get("unmatched_metrics_milli") or []
    return PodSamples(table, table.usage_milli.reshape(-1, 1), table.has_sample.reshape(-1, 1),
                      np.array([inp["metric_type"] in ("Resource", "ContainerResource", "Pods")]),
                      stray_target=np.zeros(len(strays), np.int64), stray_metric=np.zeros(len(strays), np.int64),
                      stray_usage_milli=np.array([s["usage_milli"] for s in strays], dtype=np.int64))


def replica_decision(inp: dict) -> Decision:
    """decide() for one target with the case's metric, pods and tolerances (the hpa preset)."""
    down, up = tolerances(inp)
    params = PolicyParams(name="case", metrics=(metric_params(inp),), min_replicas=0, max_replicas=hr.INT32_MAX,
                          tolerance_up=up, tolerance_down=down, hpa_semantics=True,
                          cpu_initialization_period_s=float(inp.get("cpu_initialization_period_s", 300)),
                          initial_readiness_delay_s=float(inp.get("initial_readiness_delay_s", 30)))
    table = pod_table(inp.get("pods") or [])
    current = int(inp["current_replicas"])
    value, present = workload_value(inp) if inp["metric_type"] in ("Object", "External") else (math.nan, False)
    obs = Observation.of([current], [int(hr.running_ready_counts(table, 1)[0])], [[value]], present=[[present]],
                         status=[int(inp.get("status_replicas", current))], pods=pod_samples(inp, table))
    return decide(params, obs, ScalingState.empty(1, params), NOW)


def observe_replicas(inp: dict) -> dict:
    hpa = replica_decision(inp).hpa
    if not hpa.valid[0, 0]:
        return {"error": True, "error_message": hpa.messages[0][0]}
    usage = int(hpa.usage_milli[0, 0])
    return {"error": False, "desired_replicas": int(hpa.replicas[0, 0]), "utilization": int(hpa.utilization[0, 0]),
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


#: Each metric proposal of a behavior case is an External AverageValue metric with target 1 and
#: no tolerance: its value is the proposal (HPA: ceil(value / target), or status replicas when
#: equal to them).
PROPOSAL_METRIC = dict(kind=MetricKind.AVERAGE_PER_REPLICA, target=1.0, source=HpaSource.EXTERNAL)

#: Stage cases test one step of normalization; the others are made neutral: no stabilization
#: window (and no recommendation) for the limit steps, no limit for the stabilization steps.
LIMIT_STAGES = {"scale_up_limit", "scale_down_limit", "clamp_no_behavior", "rate_limit_with_behavior"}


def policy_params(inp: dict, n_metrics: int) -> PolicyParams:
    """The ``hpa`` policy a behavior case describes (legacy when ``behavior`` is null)."""
    controller, behavior = inp.get("controller") or {}, inp.get("behavior")
    up, down = scaling_rules(behavior, "scaleUp", controller), scaling_rules(behavior, "scaleDown", controller)
    if inp["stage"] in LIMIT_STAGES:
        up, down = replace(up, window_s=0.0), replace(down, window_s=0.0)
    return PolicyParams(
        name="case",
        metrics=tuple(MetricParams(f"m{i}", **PROPOSAL_METRIC) for i in range(n_metrics)),
        min_replicas=int(_bound(inp.get("min_replicas"), 1 if inp["stage"] != "scale_down_limit" else 0)),
        max_replicas=int(_bound(inp.get("max_replicas"), UNBOUNDED)),
        scale_up=up, scale_down=down, legacy=behavior is None,
        tolerance_up=0.0, tolerance_down=0.0,
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
    """The controller memory a behavior case starts from.

    recommendations null = the controller has never seen the HPA (normalize seeds it). An empty
    list is a known HPA with no entry; it is stored as one entry older than every window, which
    counts for nothing and is the first slot reused. The limit stages start with no entry.
    """
    recs = inp.get("recommendations")
    if inp["stage"] in LIMIT_STAGES or (recs is not None and not recs):
        recs = [{"replicas": 0, "age_s": hr.ZERO_TIME_AGE_S}]
    rec = history(recs, "replicas", params.history_slots)
    up = history(inp.get("scale_up_events"), "replica_change", params.event_slots)
    down = history(inp.get("scale_down_events"), "replica_change", params.event_slots)
    return NormState(*rec, *up, *down, *(np.full(1, np.nan) for _ in range(4)))


def stage_proposals(inp: dict) -> list[dict]:
    """The metric proposals that drive a stage to the output it is tested on."""
    stage = inp["stage"]
    if stage == "reconcile":
        return inp.get("metric_proposals") or []
    if stage == "scale_up_limit":  # asks for as many as possible: the limit decides
        return [{"replicas": UNBOUNDED}]
    if stage == "scale_down_limit":  # asks for none: the limit decides
        return [{"replicas": 0}]
    return [{"replicas": _bound(inp.get("prenormalized_desired_replicas"), 0)}]


def behavior_decision(inp: dict) -> tuple[Decision, PolicyParams, list[dict]]:
    """decide() for one target whose metrics propose the case's replica counts."""
    proposals = stage_proposals(inp)
    params = policy_params(inp, len(proposals))
    desired = _bound(inp.get("prenormalized_desired_replicas"), 0)
    current = _bound(inp.get("current_replicas"), max(desired, 1))  # a stabilization case without one
    ok = [[p.get("error") is None for p in proposals]]
    values = [[float(p.get("replicas") or 0) if p.get("error") is None else math.nan for p in proposals]]
    obs = Observation.of([current], [current], np.array(values).reshape(1, len(proposals)),
                         present=np.array(ok).reshape(1, len(proposals)))
    state = replace(ScalingState.empty(1, params), norm=norm_state(inp, params))
    return decide(params, obs, state, NOW), params, proposals


def observe_behavior(inp: dict) -> dict:
    """decide() end to end; returns the output of the stage the case names."""
    stage = inp["stage"]
    decision, params, proposals = behavior_decision(inp)
    norm = decision.norm
    if stage.startswith("stabilize"):
        return {"desired_replicas": norm.stabilized[0]}
    if stage in ("scale_up_limit", "scale_down_limit"):
        return {"desired_replicas": norm.desired[0]}
    if stage in LIMIT_STAGES:
        return {"desired_replicas": norm.desired[0], "condition_reason": limit_condition_reason(norm.limit_reason[0])}
    if stage == "reconcile":
        desired = norm.desired[0]
        failures = [[p.get("error") or "" for p in proposals]]
        return {"desired_replicas": desired, "rescale": bool(desired != decision.current[0]),
                "conditions": hpa_conditions(norm, decision.current, failures, params.legacy)[0]}
    raise ValueError(f"unknown behavior stage {stage!r}")


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
