"""Validated policy documents -> what the engine runs: PolicyParams, TargetSelector, HealthSpec."""

from __future__ import annotations

from controller.core.health.params import (BudgetParams, CheckParams, Direction, HealthParams, Scope,
                                           default_verify_window_s)
import dataclasses
import math
import re

from controller.core.scaling.params import (ForecastParams, HpaSource, MetricKind, MetricParams, PolicyParams,
                                            RampParams, RuleType, ScalingRules, Select, Smoothing)
from controller.core.health.revision_test import Measure, RevisionTestParams
from controller.policy.durations import parse_duration
from controller.policy.limits import MAX_REPLICAS
from controller.policy import promql
from controller.policy.promql import drops_label
from controller.policy import presets
from controller.policy.schema import (INITIAL_STARTUP_DELAY_S, Forecast, Health, HealthCheck, Metric, PolicyDocument,
                                      Ramp, RevisionCompare, Scaling, ScalingRulesModel, SmoothingModel, Targets,
                                      Threshold)
from controller.policy.specs import (BudgetSpec, Comparison, HealthAction, HealthCheckSpec, HealthSpec,
                                     RevisionCheckSpec, SmoothingSpec, TargetSelector)
from controller.policy.specs import Threshold as ThresholdSpec

_AGGREGATES = {"mean": Smoothing.MEAN, "median": Smoothing.MEDIAN, "max": Smoothing.MAX,
               "percentile": Smoothing.PERCENTILE}
_SELECT = {"Max": Select.MAX, "Min": Select.MIN, "Disabled": Select.DISABLED}
_RULE_TYPE = {"Pods": RuleType.PODS, "Percent": RuleType.PERCENT}


def compile_policy(policy: PolicyDocument) -> PolicyParams:
    """The decision core's parameters for ``policy``.

    A policy without ``scaling`` (health only) compiles to parameters with no metrics: the
    replica bounds and interval still apply to its health actions, but nothing scales it.
    """
    spec = policy.spec
    scaling = spec.scaling
    hpa = spec.preset == presets.HPA
    # a health-only policy that never scales may give no bounds (rules._scales): nothing reads them then
    low, high = (spec.replicas.min_replicas, spec.replicas.max_replicas) if spec.replicas else (0, MAX_REPLICAS)
    common = dict(name=policy.metadata.name, min_replicas=low, max_replicas=high, interval_s=spec.interval_s,
                  hpa_semantics=hpa)
    if scaling is None:
        return PolicyParams(metrics=(), **common)
    smoothing = compile_smoothing(scaling.smoothing)
    behavior = scaling.behavior
    missing_hold_s, fallback = _missing_metrics(scaling)
    return PolicyParams(
        metrics=tuple(compile_metric(m, spec.interval_s, scaling.tolerance.down) for m in scaling.metrics),
        tolerance_up=scaling.tolerance.up, tolerance_down=scaling.tolerance.down,
        smoothing=smoothing.kind, half_life_s=smoothing.half_life_s, window_s=smoothing.window_s,
        percentile=smoothing.percentile, stale_after_s=scaling.stale_after_s,
        scale_up=compile_rules(behavior.scale_up if behavior else None, presets.default_scale_up_rules()),
        scale_down=compile_rules(behavior.scale_down if behavior else None, presets.default_scale_down_rules()),
        scale_down_min_step=_scale_down_min_step(scaling),
        scale_down_linear_release=_scale_down_release(scaling) == "linear",
        legacy=presets.uses_legacy_path(spec.preset, behavior is not None),
        missing_hold_s=missing_hold_s, fallback_replicas=fallback, stated_startup_s=_stated_startup_s(scaling),
        replace_unready=scaling.replace_unready,
        read_window_s=max((query_reach_s(m.query) for m in scaling.metrics), default=0.0), **common)


def _stated_startup_s(scaling) -> float:
    """The first ramp's or forecast's ``startupDelay`` in seconds (a lead or horizon written out
    states none), else the format's default."""
    stated = [m.ramp.startup_delay.seconds for m in scaling.metrics if m.ramp is not None and m.ramp.lead_s is None]
    stated += [m.forecast.startup_delay.seconds for m in scaling.metrics
               if m.forecast is not None and m.forecast.horizon_s is None]
    return stated[0] if stated else INITIAL_STARTUP_DELAY_S


def compile_metric(metric: Metric, interval_s: float = 15.0, tolerance_down: float = 0.0) -> MetricParams:
    """The metric's parameters, with how far back its query reads as its read window (the recovery hold's)."""
    above = {None: None, "off": math.inf}.get(metric.implausible_above, metric.implausible_above)
    return dataclasses.replace(_compile_metric(metric, interval_s, tolerance_down),
                               read_window_s=query_reach_s(metric.query), implausible_above=above)


def _compile_metric(metric: Metric, interval_s: float, tolerance_down: float) -> MetricParams:
    target = metric.target
    forecast = None if metric.forecast is None else compile_forecast(metric.forecast, metric.query, interval_s)
    ramp = None if metric.ramp is None else compile_ramp(metric.ramp, metric.query, interval_s, tolerance_down)
    if target.value is not None:
        return MetricParams(metric.name, MetricKind.VALUE, target.value, forecast, ramp=ramp)
    if target.average_per_replica is not None:
        capacity = target.capacity_per_replica or 0.0
        pooled = target.headroom == "pooled" and capacity > 0
        return MetricParams(metric.name, MetricKind.AVERAGE_PER_REPLICA, target.average_per_replica, forecast,
                            ramp=ramp, capacity=capacity if pooled else 0.0, resource=metric.resource or DEFAULT_RESOURCE,
                            saturation_capacity=0.0 if pooled else capacity,  # pooled sizes saturation its own way
                            source=average_source(metric))
    return MetricParams(metric.name, MetricKind.UTILIZATION, target.utilization, forecast, ramp=ramp,
                        resource=metric.resource or DEFAULT_RESOURCE)


def average_source(metric: Metric) -> HpaSource:
    """Which HPA metric an ``averagePerReplica`` metric stands for under ``preset: hpa``: Resource
    ``AverageValue`` (a per-pod average over the pods with a sample, HPA's pod rules) when it names
    its ``resource`` and its query keeps the ``pod`` label; else External ``AverageValue`` (the
    workload's total over its replicas), as before ``resource`` existed. A query that sums the pods
    away gives a total, which no pod stands for: it stays External whatever it measures."""
    if metric.resource is not None and not drops_label(metric.query, "pod"):
        return HpaSource.RESOURCE
    return HpaSource.DEFAULT


#: A metric without ``resource`` is CPU, as the policy format has always read a utilization target:
#: existing policies keep their decisions (the query's text is not guessed from: a recording rule
#: names no series).
DEFAULT_RESOURCE = "cpu"

_RANGE = re.compile(r"\[\s*([0-9][0-9a-z.]*)\s*(?::[^\]]*)?\]")
#: Range assumed for a query without a range selector (a recording rule, a gauge).
DEFAULT_QUERY_WINDOW_S = 60.0


#: A recorded series named as Prometheus recommends, level:metric:operations, whose operations end
#: in the range they ran over: ``job:http_requests:rate5m`` (group 1: ``5m``). Read on the query
#: without its strings (promql.code_only): a matcher's value is no series name.
_RECORDED_RANGE = re.compile(r"(?<![A-Za-z0-9_:])[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]*)*:[A-Za-z_]*?"
                             r"([0-9]+(?:ms|s|m|h|d|w|y))(?![A-Za-z0-9_:(])")


def query_range_s(query: str) -> float:
    """The longest range a PromQL query reads over, or 0 if none: its range selectors'
    (``rate(x[2m])`` -> 120) and its recorded series' by their names (``job:http_requests:rate5m``
    -> 300: a rule's rate over a window Prometheus does not cover yet reads as low as the rate
    itself, and the name is all the query shows of it)."""
    code = promql.code_only(query)  # a string's or comment's brackets and names are no ranges
    spans = [m.group(1) for m in _RANGE.finditer(code)] + [m.group(1) for m in _RECORDED_RANGE.finditer(code)]
    return max((_seconds(span) for span in spans), default=0.0)


#: An offset modifier and its duration (group 1): the data it reads is that much older.
_OFFSET = re.compile(r"(?<![A-Za-z0-9_:])offset\s+([0-9][0-9a-z.]*)", re.IGNORECASE)


def query_reach_s(query: str) -> float:
    """How far back a PromQL query's data reaches, in s (0: the latest samples only): a range
    selector's range, a recorded series' by its name (as :func:`query_range_s`), a subquery's range
    plus what its inner query reaches (``max_over_time(rate(x[1m])[10m:30s])`` -> 660, where the
    longest range is 600), and the longest offset on top. The recovery hold's read window: a
    reading within it of a series' first appearance covers part of its window only."""
    code = promql.code_only(query)
    recorded = [(m.start(), _seconds(m.group(1))) for m in _RECORDED_RANGE.finditer(code)]
    reached: list[tuple[int, float]] = []  # (where the bracket opens, how far its operand's data reaches)
    for start, at, body in promql.range_brackets(code):
        inner = [r for opened, r in reached if start <= opened < at] + [r for p, r in recorded if start <= p < at]
        reached.append((at, _seconds(body.split(":", 1)[0]) + max(inner, default=0.0)))
    offset = max((_seconds(m.group(1)) for m in _OFFSET.finditer(code)), default=0.0)
    return max([r for _, r in reached] + [r for _, r in recorded], default=0.0) + offset


def _seconds(span: str) -> float:
    """A PromQL duration in s; 0 for one that does not parse (the query's check says why)."""
    try:
        return parse_duration(span)
    except ValueError:
        return 0.0


def query_window_s(query: str) -> float:
    """The longest range selector of a PromQL query (``rate(x[2m])`` -> 120), or 60 s if none."""
    return query_range_s(query) or DEFAULT_QUERY_WINDOW_S


def auto_horizon_s(startup_delay_s: float, interval_s: float, window_s: float) -> float:
    """How late a reactive decision is: new pods serve a start-up delay after the decision,
    which comes up to one interval after a sample that averages the last window (lag: half)."""
    return startup_delay_s + interval_s + 0.5 * window_s


def compile_forecast(forecast: Forecast, query: str, interval_s: float) -> ForecastParams:
    startup, window_s = forecast.startup_delay, query_window_s(query)
    common = dict(interval_s=interval_s, periods_s=tuple(forecast.seasonality), min_history_s=forecast.min_history_s,
                  margin=forecast.margin, quantile=forecast.interval / 100.0, error_bound=forecast.error_bound)
    if forecast.horizon_s is not None:  # an explicit horizon: the start-up delay is not used
        return ForecastParams(horizon_s=forecast.horizon_s, **common)
    return ForecastParams(horizon_s=auto_horizon_s(startup.seconds, interval_s, window_s), observed=startup.observed,
                          lag_s=auto_horizon_s(0.0, interval_s, window_s), **common)


def compile_ramp(ramp: Ramp, query: str, interval_s: float, tolerance_down: float = 0.0) -> RampParams:
    """The slope is measured over the query's range window (samples a window apart share no data);
    ``minStep: tolerance`` takes the policy's down tolerance as the smallest look-ahead step."""
    window_s = query_window_s(query)
    startup = ramp.startup_delay
    latest_s = 0.0 if ramp.latest is None else query_window_s(ramp.latest)
    min_step = tolerance_down if ramp.min_step == "tolerance" else 0.0
    if ramp.lead_s is not None:  # an explicit lead: the start-up delay is not used
        return RampParams(lead_s=ramp.lead_s, window_s=window_s, interval_s=interval_s, latest_window_s=latest_s,
                          min_step=min_step)
    return RampParams(lead_s=auto_horizon_s(startup.seconds, interval_s, window_s), window_s=window_s,
                      interval_s=interval_s, observed=startup.observed, latest_window_s=latest_s, min_step=min_step)


def compile_smoothing(smoothing: SmoothingModel | None) -> SmoothingSpec:
    if smoothing is None:
        return SmoothingSpec()
    if smoothing.ewma is not None:
        return SmoothingSpec(Smoothing.EWMA, half_life_s=smoothing.ewma.half_life_s)
    window = smoothing.window
    return SmoothingSpec(_AGGREGATES[window.aggregate], window_s=window.length_s,
                         percentile=window.percentile if window.percentile is not None else 50.0)


def _scale_down_min_step(scaling: Scaling) -> float:
    """``behavior.scaleDown.minStep: tolerance``: the down tolerance as the smallest scale-down share; else 0."""
    down = scaling.behavior.scale_down if scaling.behavior else None
    return scaling.tolerance.down if down is not None and down.min_step == "tolerance" else 0.0


def _scale_down_release(scaling: Scaling) -> str:
    """``behavior.scaleDown.release``: ``expire`` (HPA's, the default) or ``linear``."""
    down = scaling.behavior.scale_down if scaling.behavior else None
    return down.release if down is not None and down.release is not None else "expire"


def compile_rules(rules: ScalingRulesModel | None, default: ScalingRules) -> ScalingRules:
    """One behavior direction; unset fields take ``default``'s, a given ``policies`` list replaces it."""
    if rules is None:
        return default
    window_s = default.window_s if rules.stabilization_window_s is None else rules.stabilization_window_s
    select = default.select if rules.select_policy is None else _SELECT[rules.select_policy]
    if rules.policies is None:
        policies = [(RuleType(t), v, p) for t, v, p in zip(default.types, default.values, default.periods_s)]
    else:
        policies = [(_RULE_TYPE[p.type], p.value, p.period_s) for p in rules.policies]
    return ScalingRules.of(window_s, select, policies)


def _missing_metrics(scaling: Scaling) -> tuple[float, int | None]:
    """(hold seconds, fallback replicas or None). Absent: hold forever."""
    rule = scaling.on_missing_metrics
    if rule is None or rule.then is None:
        return float("inf"), None
    return rule.hold_s, rule.then.fallback_replicas


def compile_targets(targets: Targets) -> TargetSelector:
    names = (targets.name,) if targets.name is not None else tuple(targets.names or ())
    labels = tuple(sorted(targets.selector.match_labels.items())) if targets.selector else ()
    expressions = tuple((r.key, r.operator, tuple(r.values or ()))
                        for r in (targets.selector.match_expressions or ())) if targets.selector else ()
    return TargetSelector(kind=targets.kind, namespace=targets.namespace, names=names, match_labels=labels,
                          match_expressions=expressions)


def compile_health(health: Health | None) -> HealthSpec | None:
    if health is None:
        return None
    budgets = health.budgets
    pods, ratio = None, None
    if isinstance(budgets.max_unavailable, int):
        pods = budgets.max_unavailable
    else:
        ratio = float(budgets.max_unavailable.rstrip("%")) / 100.0
    return HealthSpec(
        checks=tuple(compile_health_check(c) for c in health.checks if c.scope != "revision"),
        revision_checks=tuple(compile_revision_check(c) for c in health.checks if c.scope == "revision"),
        budgets=BudgetSpec(budgets.restarts_per_hour, budgets.rollbacks_per_day, pods, ratio),
        rollback_window_s=health.rollback_window_s,
        escalation=tuple(HealthAction(a) for a in health.escalation or ()), healthy_after_s=health.healthy_after_s,
        rollout_interval_s=health.rollout_interval_s)


def compile_health_check(check: HealthCheck) -> HealthCheckSpec:
    if check.hung is not None:
        return compile_hung_check(check)
    unhealthy = _threshold(check.unhealthy)
    if check.recovered is not None:
        recovered = _threshold(check.recovered)
    else:  # no hysteresis band: recovered as soon as the unhealthy condition no longer holds
        opposite = Comparison.BELOW if unhealthy.comparison is Comparison.ABOVE else Comparison.ABOVE
        recovered = ThresholdSpec(opposite, unhealthy.value, 0.0)
    return HealthCheckSpec(name=check.name, query=check.query, scope=check.scope,
                           smoothing=compile_smoothing(check.smoothing), unhealthy=unhealthy,
                           recovered=recovered, action=HealthAction(check.action),
                           fire_on_missing=check.on_missing == "fire")


def compile_hung_check(check: HealthCheck) -> HealthCheckSpec:
    """A hung-pod check: a pod-scope check on the seconds each pod has been hung (computed by the
    core from the pod list: controller/core/health/hung.py), unhealthy above notReadyFor, recovered
    as soon as it is not (Ready again, or most of its peers no longer are)."""
    limit = check.hung.not_ready_for_s
    return HealthCheckSpec(name=check.name, query="", scope="pod", smoothing=compile_smoothing(None),
                           unhealthy=ThresholdSpec(Comparison.ABOVE, limit, 0.0),
                           recovered=ThresholdSpec(Comparison.BELOW, limit, 0.0), action=HealthAction(check.action),
                           hung_startup_s=check.hung.startup_s)


def compile_revision_check(check: HealthCheck) -> RevisionCheckSpec:
    cmp = check.compare or RevisionCompare()
    return RevisionCheckSpec(name=check.name, errors=check.errors, requests=check.requests, query=check.query,
                             worse_by=cmp.worse_by, false_rate=cmp.false_rollback_rate / 100.0,
                             miss_rate=cmp.miss_rate / 100.0, min_requests=cmp.min_requests,
                             action=HealthAction(check.action),
                             hold_max_s=check.hold.max_duration_s if check.hold is not None else None)


def compile_revision_params(check: RevisionCheckSpec) -> RevisionTestParams:
    return RevisionTestParams(name=check.name, measure=Measure.LATENCY if check.query is not None else Measure.RATIO,
                              worse_by=check.worse_by, false_rate=check.false_rate, miss_rate=check.miss_rate,
                              min_requests=check.min_requests, rollback=check.action is HealthAction.ROLLBACK,
                              hold_max_s=check.hold_max_s)


def _threshold(threshold: Threshold) -> ThresholdSpec:
    if threshold.above is not None:
        return ThresholdSpec(Comparison.ABOVE, threshold.above, threshold.for_s)
    return ThresholdSpec(Comparison.BELOW, threshold.below, threshold.for_s)


def compile_health_params(spec: HealthSpec, *, interval_s: float = 15.0, max_replicas: int | None = None,
                          name: str = "", scales: bool = True) -> HealthParams:
    """The health core's parameters for a compiled ``HealthSpec``.

    Fields the policy format does not have yet take defaults: the verify window is twice the
    longest ``for`` of the checks (120 s when none is set), the systemic share 0.5, and the
    new-revision window equals the rollback window. ``interval_s`` sizes the smoothing windows;
    ``max_replicas`` caps health scale-ups (pass the policy's ``replicas.max``); ``scales`` False
    (a policy without replicas bounds) makes none.
    """
    checks = tuple(compile_check_params(c) for c in spec.checks)
    b = spec.budgets
    budgets = BudgetParams(b.restarts_per_hour, b.rollbacks_per_day, b.max_unavailable_pods,
                           None if b.max_unavailable_pods is not None else b.max_unavailable_ratio)
    extra = {} if max_replicas is None else {"max_replicas": int(max_replicas)}
    return HealthParams(
        checks=checks, budgets=budgets, rollback_window_s=spec.rollback_window_s,
        escalation=tuple(spec.escalation), verify_window_s=default_verify_window_s(checks),
        systemic_share=0.5, new_revision_window_s=spec.rollback_window_s, healthy_after_s=spec.healthy_after_s,
        interval_s=interval_s, rollout_interval_s=spec.rollout_interval_s, name=name,
        revision_checks=tuple(compile_revision_params(c) for c in spec.revision_checks), scales=scales,
        **extra)


def compile_check_params(check: HealthCheckSpec) -> CheckParams:
    direction = Direction.ABOVE if check.unhealthy.comparison is Comparison.ABOVE else Direction.BELOW
    sm = check.smoothing
    return CheckParams(
        name=check.name, scope=Scope.POD if check.scope == "pod" else Scope.WORKLOAD, direction=direction,
        unhealthy=check.unhealthy.value, unhealthy_for_s=check.unhealthy.for_s, recovered=check.recovered.value,
        recovered_for_s=check.recovered.for_s, action=check.action, fire_on_missing=check.fire_on_missing,
        hung_startup_s=check.hung_startup_s,
        smoothing=sm.kind, half_life_s=sm.half_life_s, window_s=sm.window_s, percentile=sm.percentile)


def compile_policy_health(policy: PolicyDocument, spec: HealthSpec | None = None) -> HealthParams | None:
    """The health core's parameters for ``policy`` (None without ``health``), with the policy's
    interval and max replicas; ``spec``: its HealthSpec when already compiled."""
    spec = compile_health(policy.spec.health) if spec is None else spec
    if spec is None:
        return None
    bounds = policy.spec.replicas
    # without bounds (allowed only to a policy with no scaling, scale-up check or step: rules.py) it
    # never scales: an overloaded service's restart is not turned into an unbounded scale-up
    return compile_health_params(spec, interval_s=policy.spec.interval_s,
                                 max_replicas=bounds.max_replicas if bounds else None, name=policy.metadata.name,
                                 scales=bounds is not None)
