"""The policy file format (``apiVersion: setpoint/v1``, ``kind: Policy``) as pydantic models.

Field rules live here (types, ranges, "exactly one of"); rules that relate several fields of a
document live in ``rules.py`` and run once these pass. Durations are float seconds (``*_s``),
percentages float percent, tolerances ratios.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Callable, Literal, Optional, Union

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from controller.core.scaling.params import DEFAULT_TOLERANCE, MAX_SEASONAL_PERIODS
from controller.policy.durations import DURATION_PATTERN, describe_value
from controller.policy.fields import (LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, CountOrPercent, DnsLabel,
                                      DnsSubdomain, Duration, Identifier, PromQL,
                                      Percent, StrictModel, duration_field, exactly_one, field_error,
                                      one_of_required)
from controller.policy.messages import _number_as_text_hint
from controller.policy.limits import (MAX_BUDGET, MAX_DURATION_S, MAX_INTERVAL_S, MAX_RATE_PERCENT, MAX_REPLICAS,
                                      MAX_UTILIZATION_PCT, MAX_VALUE)

API_VERSION = "setpoint/v1"
KIND = "Policy"

PositiveDuration = Duration(gt=0, le=MAX_DURATION_S)
NonNegativeDuration = Duration(ge=0, le=MAX_DURATION_S)
Interval = Duration(ge=1, le=MAX_INTERVAL_S)  # shorter makes no sense against Prometheus scrape intervals
StabilizationWindow = Duration(ge=0, le=3600)  # HPA: 0..3600 s
RatePeriod = Duration(gt=0, le=1800)  # HPA: periodSeconds 1..1800
PositivePercent = Percent(gt=0, le=MAX_UTILIZATION_PCT)
ForecastHorizon = Duration(gt=0, le=3600)
StartupDelay = Duration(ge=0, le=3600)
SeasonalPeriod = Duration(ge=600, le=35 * 86400.0)
HistoryLength = Duration(ge=0, le=35 * 86400.0)
IntervalPercent = Percent(ge=50, le=99)

HealthActionName = Literal["restart-pod", "rolling-restart", "rollback", "scale-up", "record"]


class Metadata(StrictModel):
    name: DnsLabel = Field(description="Policy name, unique across all loaded files (DNS-1123 label).")
    labels: dict[str, str] = Field(default_factory=dict)


class LabelRequirement(StrictModel):
    """One of a selector's ``matchExpressions``, as Kubernetes' LabelSelectorRequirement."""

    key: str = Field(min_length=1, max_length=316, pattern=LABEL_KEY_PATTERN, description="The label's key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    # not empty: a labelSelector query cannot carry "" in a set (the apiserver refuses "tier in ()")
    values: Optional[list[Annotated[str, StringConstraints(min_length=1, max_length=63,
                                                           pattern=LABEL_VALUE_PATTERN)]]] = Field(
        None, description="In, NotIn: the values (at least one, none empty); Exists, DoesNotExist: none.")

    @model_validator(mode="after")
    def _values_as_the_operator_needs(self) -> "LabelRequirement":
        if self.operator in ("In", "NotIn") and not self.values:
            raise field_error(f"values: operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise field_error(f"values: operator {self.operator} takes no values, got {len(self.values)}")
        return self


class LabelSelector(StrictModel):
    """Workloads carrying all of ``matchLabels`` and meeting every one of ``matchExpressions``
    (at least one of the two), as a Kubernetes label selector."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Workloads carrying all these labels.")
    match_expressions: Optional[list[LabelRequirement]] = Field(
        None, min_length=1, description="Set-based requirements (In, NotIn, Exists, DoesNotExist), all met.")

    @model_validator(mode="after")
    def _something_to_match(self) -> "LabelSelector":
        if not self.match_labels and not self.match_expressions:
            raise field_error("matchLabels or matchExpressions: give at least one label to select on")
        return self


class Targets(StrictModel):
    """Which workloads the policy governs: exactly one of name, names, selector."""

    model_config = ConfigDict(json_schema_extra=one_of_required("name", "names", "selector"))

    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    namespace: DnsLabel
    name: Optional[DnsSubdomain] = None
    names: Optional[list[DnsSubdomain]] = Field(None, min_length=1)
    selector: Optional[LabelSelector] = None

    @model_validator(mode="after")
    def _one_way_of_selecting(self) -> "Targets":
        exactly_one(self, ("name", "names", "selector"))
        return self


class Replicas(StrictModel):
    min_replicas: int = Field(alias="min", ge=0, le=MAX_REPLICAS)
    max_replicas: int = Field(alias="max", ge=1, le=MAX_REPLICAS)


class MetricTarget(StrictModel):
    """``value``: hold the metric at X; ``averagePerReplica``: X per replica; ``utilization``: X %."""

    model_config = ConfigDict(json_schema_extra=one_of_required("value", "averagePerReplica", "utilization"))

    value: Optional[float] = Field(None, gt=0, le=MAX_VALUE)
    average_per_replica: Optional[float] = Field(None, gt=0, le=MAX_VALUE)
    utilization: Optional[PositivePercent] = None
    headroom: Literal["perReplica", "pooled"] = Field("perReplica", description=(
        "averagePerReplica only. perReplica: every replica keeps capacityPerReplica - averagePerReplica spare. "
        "pooled: the target holds at min replicas (where it was derived from the SLO); above that load only the "
        "up tolerance's share stays per replica, the rest of the spare (queueing headroom) grows as the square "
        "root of the load (more replicas queue less), except while the load is above what the ready replicas "
        "serve (saturated: sized per replica; core/scaling/headroom.py)."))
    capacity_per_replica: Optional[float] = Field(None, gt=0, le=MAX_VALUE, description=(
        "What one replica serves at 100% (same unit as averagePerReplica); required by headroom: pooled. With "
        "per-replica headroom, a reading at what the Ready pods serve (within tolerance.up; the window's value or "
        "the ramp's latest reading, whichever is higher) counts as saturated: a rate read at the pods stops "
        "there, so demand is unknown above it: the proposal is sized as if demand were capacityPerReplica / "
        "averagePerReplica above the reading (core/scaling/saturation.py)."))

    @model_validator(mode="after")
    def _one_target(self) -> "MetricTarget":
        exactly_one(self, ("value", "average_per_replica", "utilization"))
        return self


def _auto_or_duration(value: object) -> object:
    """``auto`` (None: derived) or the duration as written; an empty value is refused, as the JSON
    Schema does (editors flagged ``lead:`` that validate took for auto)."""
    if value is None:
        raise ValueError("expected auto or a duration such as 90s, got an empty value")
    if value == "auto":
        return None
    return value


#: The start-up delay ``startupDelay: observed`` uses until a pod of the target has been seen starting.
INITIAL_STARTUP_DELAY_S = 30.0


@dataclasses.dataclass(frozen=True)
class StartupDelaySetting:
    """``startupDelay`` as compiled: seconds (fixed, or the initial value while nothing is
    observed) and whether the delay is measured from the targets' pods (creation -> Ready)."""

    seconds: float = INITIAL_STARTUP_DELAY_S
    observed: bool = False


class ObservedStartupDelay(StrictModel):
    """``startupDelay: {observed: true, initial: 45s}``: measured from the pods, ``initial`` until then."""

    observed: Literal[True] = Field(description="Measure the delay from each target's pods (creation -> Ready).")
    initial_s: StartupDelay = duration_field(
        INITIAL_STARTUP_DELAY_S, "initial", "Used until a pod of the target has been seen starting.")


_STARTUP_DELAY_FORM = ("a duration (e.g. 30s), observed (measured from the pods, 30s until then) or "
                       "{observed: true, initial: 45s}")
_startup_duration = StartupDelay.__metadata__[0].func  # the duration check of StartupDelay


def _startup_delay(value: object) -> StartupDelaySetting:
    """``30s`` -> fixed 30 s; ``observed`` -> measured, 30 s until then; ``{observed: true,
    initial: 45s}`` -> measured, 45 s until then."""
    if isinstance(value, StartupDelaySetting):
        return value
    if value == "observed":
        return StartupDelaySetting(INITIAL_STARTUP_DELAY_S, True)
    if isinstance(value, dict):
        if value.get("observed") is False and set(value) <= {"observed", "initial"}:
            raise field_error(f"observed: false is a fixed delay: write startupDelay: {value.get('initial', '30s')}")
        try:
            model = ObservedStartupDelay.model_validate(value)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e["loc"])
            why = {"literal_error": "must be true", "missing": "required",
                   "extra_forbidden": "unknown field; expected one of: observed, initial"}.get(e["type"], e["msg"])
            raise field_error(f"{where + ': ' if where else ''}{why} (expected {_STARTUP_DELAY_FORM})") from None
        return StartupDelaySetting(model.initial_s, True)
    if isinstance(value, str) and not any(c.isdigit() for c in value):
        raise field_error(f"expected {_STARTUP_DELAY_FORM}, got {describe_value(value)}")
    return StartupDelaySetting(_startup_duration(value), False)


StartupDelayValue = Annotated[StartupDelaySetting, BeforeValidator(
    _startup_delay, json_schema_input_type=Union[Literal["observed"], Annotated[str, Field(
        pattern=DURATION_PATTERN)], ObservedStartupDelay])]


class Forecast(StrictModel):
    """Predictive scaling on this metric: the proposal is max(reactive, from the forecast's
    upper bound); the forecast can raise a scale-up or delay a scale-down, never cause one."""

    horizon_s: Annotated[Optional[ForecastHorizon], BeforeValidator(
        _auto_or_duration, json_schema_input_type=Literal["auto"] | str)] = Field(
        None, alias="horizon", json_schema_extra={"default": "auto"},
        description="How far ahead; auto: startupDelay + interval + half the query's range window.")
    startup_delay: StartupDelayValue = Field(
        StartupDelaySetting(), alias="startupDelay", json_schema_extra={"default": "30s"}, description=(
            "Time from a scale-up to new pods serving (used by horizon: auto): a duration, or observed: measured "
            "per target from its pods as for a ramp, 30s (or {observed: true, initial: 45s}) until a start-up has "
            "been seen; an observed horizon stops at 3 minutes (or the initial horizon if longer)."))
    seasonality: list[SeasonalPeriod] = Field(
        default_factory=lambda: [86400.0, 604800.0], max_length=MAX_SEASONAL_PERIODS,
        json_schema_extra={"default": ["1d", "7d"]},
        description="Candidate seasonal periods, each kept only if the history shows it (autocorrelation).")
    min_history_s: HistoryLength = duration_field(
        86400.0, "minHistory", "History needed before a seasonal period is judged.")
    margin: float = Field(1.0, ge=0, le=10, description="Multiplier of the prediction interval added to the forecast.")
    interval: IntervalPercent = Field(
        80.0, description="Prediction interval: this quantile of the recent absolute forecast errors.")
    error_bound: float = Field(1.25, gt=0, le=10, description=(
        "Ignore the forecast while its recent mean absolute error exceeds this multiple of persistence's "
        "(the error of assuming the value stays as it is)."))

    @model_validator(mode="after")
    def _observed_needs_auto_horizon(self) -> "Forecast":
        if self.horizon_s is not None and self.startup_delay.observed:
            raise field_error("startupDelay: observed is used only with horizon: auto (an explicit horizon does not "
                              "depend on the start-up delay)")
        return self


class Ramp(StrictModel):
    """Burst-aware scale-up: size for the value one lead time ahead when the metric rises,
    value + slope * lead (slope over the query's range window); never causes a scale-down."""

    lead_s: Annotated[Optional[ForecastHorizon], BeforeValidator(
        _auto_or_duration, json_schema_input_type=Literal["auto"] | str)] = Field(
        None, alias="lead", json_schema_extra={"default": "auto"},
        description="How far the slope is carried; auto: startupDelay + interval + half the query's range window.")
    startup_delay: StartupDelayValue = Field(
        StartupDelaySetting(), alias="startupDelay", json_schema_extra={"default": "30s"}, description=(
            "Time from a scale-up to new pods serving (used by lead: auto): a duration, or observed: measured per "
            "target from its pods (creation -> Ready, a high quantile of the last 20), 30s (or "
            "{observed: true, initial: 45s}) until a start-up has been seen."))
    latest: Optional[PromQL] = Field(None, description=(
        "PromQL reading the same rate over a shorter range window than the metric's query (e.g. "
        "rate(http_requests_total[30s]), two scrapes or more). The slope is then the one the two readings "
        "imply, (latest - value) / half the difference of the windows: a burst shorter than the query's "
        "window that has already turned is not carried ahead. Missing: the window's slope."))
    min_step: Optional[Literal["none", "tolerance"]] = Field(None, alias="minStep", description=(
        "none (default): any scale-up the look-ahead asks for. tolerance: a scale-up only the look-ahead asks "
        "for (no metric's reactive proposal above the current replicas) goes ahead only when it adds at least "
        "tolerance.down of the current replicas (rounded up, at least one pod), the step scaleDown.minStep asks "
        "of a scale-down: one-pod look-ahead steps on a noisy rate are dropped (the ramp still holds the current "
        "replicas), a reactive scale-up is never held back, nor (with capacityPerReplica) a step whose look-ahead "
        "reaches what the current replicas serve within tolerance.up."))

    @model_validator(mode="after")
    def _observed_needs_auto_lead(self) -> "Ramp":
        if self.lead_s is not None and self.startup_delay.observed:
            raise field_error("startupDelay: observed is used only with lead: auto (an explicit lead does not "
                              "depend on the start-up delay)")
        return self


def _number_or_off(value: object) -> float | str:
    """``implausibleAbove``: a number in (0, MAX_VALUE] (as a float), or ``off`` (YAML 1.1 reads a bare off
    as false: both mean off)."""
    if value == "off" or value is False:
        return "off"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_VALUE:
        return float(value)
    raise field_error(f"expected a number above 0 (at most {MAX_VALUE:g}) or off, got {describe_value(value)}"
                      f"{_number_as_text_hint(value)}")


ImplausibleAbove = Annotated[Union[float, str], BeforeValidator(
    _number_or_off,
    json_schema_input_type=Union[Annotated[float, Field(gt=0, le=MAX_VALUE)], Literal["off"], Literal[False]])]


class Metric(StrictModel):
    name: Identifier
    query: PromQL = Field(description="PromQL returning one series per (namespace, workload).")
    target: MetricTarget
    # not Optional: an empty ``resource:`` is an error (as an empty lead is), not the default
    resource: Literal["cpu", "memory"] = Field(None, description=(
        "The resource the metric measures, as HPA's Resource metric names it; utilization and averagePerReplica "
        "targets only. preset: hpa reads a utilization metric pod by pod and leaves out a starting pod's sample "
        "only for cpu, as HPA does (its CPU initialization period and initial readiness delay); memory keeps "
        "it. With it, an averagePerReplica metric whose query keeps the pod label is HPA's Resource AverageValue "
        "under preset: hpa (a per-pod mean over the pods with a sample), not a workload total. Default: cpu (a "
        "utilization target is CPU unless it says otherwise)."),
        # no "default": null in the JSON Schema: null is not a value the field takes (an editor
        # completing the field would insert it, and the schema's own enum refuses it)
        json_schema_extra=lambda schema: schema.pop("default", None))
    forecast: Optional[Forecast] = None
    ramp: Optional[Ramp] = None
    implausible_above: Optional[ImplausibleAbove] = Field(
        None, description=(
            "A sample above this (the metric's unit) is implausible: a broken exporter, a unit mix-up; it is not used "
            "(it may hold replicas, never change them). Default: the reading that asks for 1000 x replicas.max from "
            "one replica (1000 x max x target). Raise it, or turn it off, for a metric that may grow without bound, "
            "such as a backlog after an outage (core/scaling/signal.py). Not with preset: hpa (HPA has no bound)."))


class Ewma(StrictModel):
    half_life_s: PositiveDuration = Field(alias="halfLife")


class Window(StrictModel):
    length_s: PositiveDuration = Field(alias="length")
    aggregate: Literal["mean", "median", "max", "percentile"] = "mean"
    percentile: Optional[float] = Field(None, gt=0, le=100, description="Required with aggregate: percentile.")

    @model_validator(mode="after")
    def _percentile_iff_aggregate(self) -> "Window":
        if self.aggregate == "percentile" and self.percentile is None:
            raise field_error("aggregate: percentile needs a percentile (e.g. percentile: 90)")
        if self.aggregate != "percentile" and self.percentile is not None:
            raise field_error(f"percentile is only used with aggregate: percentile, got aggregate: {self.aggregate}")
        return self


class SmoothingModel(StrictModel):
    model_config = ConfigDict(title="Smoothing", json_schema_extra=one_of_required("ewma", "window"))

    ewma: Optional[Ewma] = None
    window: Optional[Window] = None

    @model_validator(mode="after")
    def _one_method(self) -> "SmoothingModel":
        exactly_one(self, ("ewma", "window"))
        return self


class Tolerance(StrictModel):
    up: float = Field(DEFAULT_TOLERANCE, ge=0, le=10, description="Scale up only above target * (1 + up).")
    down: float = Field(DEFAULT_TOLERANCE, ge=0, le=1, description="Scale down only below target * (1 - down); 1: never.")


def _tolerance_from_number(value: object) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"up": value, "down": value}
    if isinstance(value, dict):
        return value
    raise field_error(f"expected a number (both directions) or a mapping {{up, down}}, got {describe_value(value)}"
                      f"{_number_as_text_hint(value)}")


def _hpa_seconds(data: object, hpa_name: str, name: str) -> object:
    """Accept HPA's ``<name>Seconds: N`` (whole seconds, as pasted from an HPA) as ``<name>: Ns``."""
    if not isinstance(data, dict) or hpa_name not in data:
        return data
    if name in data:
        raise field_error(f"{hpa_name} (HPA's name) and {name} (Setpoint's) both given: keep {name} only")
    value = data[hpa_name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise field_error(f"{hpa_name}: expected whole seconds as in HPA (e.g. 300), got {describe_value(value)}; "
                          f"or write Setpoint's {name} with a unit (e.g. {name}: 5m)")
    data = {k: v for k, v in data.items() if k != hpa_name}
    data[name] = f"{value}s"
    return data


def _hpa_seconds_schema(hpa_name: str, name: str, maximum: int, required: bool) -> Callable[[dict], None]:
    """JSON Schema: HPA's ``<name>Seconds`` as an alternative to ``<name>`` (editors accept it too)."""

    def extra(schema: dict) -> None:
        schema["properties"][hpa_name] = {"type": "integer", "minimum": 0, "maximum": maximum,
                                          "description": f"HPA's name for {name}, in whole seconds."}
        if required:
            schema["required"] = [r for r in schema.get("required", []) if r != name]
            schema["oneOf"] = [{"required": [name]}, {"required": [hpa_name]}]
        else:
            schema["not"] = {"required": [name, hpa_name]}

    return extra


class RatePolicy(StrictModel):
    """HPA's ``periodSeconds: 60`` is accepted for ``period: 60s``."""

    model_config = ConfigDict(json_schema_extra=_hpa_seconds_schema("periodSeconds", "period", 1800, True))

    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, le=MAX_RATE_PERCENT, description=f"Pods (at most {MAX_REPLICAS}) or percent.")
    period_s: RatePeriod = Field(alias="period")

    @model_validator(mode="before")
    @classmethod
    def _hpa_period(cls, data: object) -> object:
        return _hpa_seconds(data, "periodSeconds", "period")


class ScalingRulesModel(StrictModel):
    """One direction of HPA-style ``behavior``; unset fields take the HPA defaults.

    HPA's ``stabilizationWindowSeconds: 300`` is accepted for ``stabilizationWindow: 300s``.
    """

    model_config = ConfigDict(title="ScalingRules", json_schema_extra=_hpa_seconds_schema(
        "stabilizationWindowSeconds", "stabilizationWindow", 3600, False))

    stabilization_window_s: Optional[StabilizationWindow] = Field(None, alias="stabilizationWindow")
    select_policy: Optional[Literal["Max", "Min", "Disabled"]] = None
    policies: Optional[list[RatePolicy]] = Field(
        None, min_length=1, description="Replaces the default list entirely.")
    min_step: Optional[Literal["none", "tolerance"]] = Field(None, alias="minStep", description=(
        "scaleDown only. none (default, HPA): any scale-down the window allows. tolerance: only a scale-down "
        "removing at least tolerance.down of the current replicas (rounded down, at least one pod), so peaks "
        "ageing out of the window do not make a change per pod."))
    release: Optional[Literal["expire", "linear"]] = Field(None, description=(
        "scaleDown only. expire (default, HPA): the window holds its highest recommendation until that ages out, "
        "then the replicas fall in one step. linear: each recommendation's excess over the current one shrinks "
        "with its age, to nothing at the window's end, so the replicas come down over the window."))

    @model_validator(mode="before")
    @classmethod
    def _hpa_window(cls, data: object) -> object:
        return _hpa_seconds(data, "stabilizationWindowSeconds", "stabilizationWindow")


class Behavior(StrictModel):
    scale_up: Optional[ScalingRulesModel] = None
    scale_down: Optional[ScalingRulesModel] = None


class Fallback(StrictModel):
    fallback_replicas: int = Field(ge=0, le=MAX_REPLICAS)


def _hold_or_fallback(value: object) -> object:
    if value == "hold":
        return None  # keep holding: the same as leaving `then` out
    if isinstance(value, dict):
        return value
    raise field_error(f"expected 'hold' or {{fallbackReplicas: N}}, got {describe_value(value)}")


class OnMissingMetrics(StrictModel):
    hold_s: NonNegativeDuration = Field(alias="hold", description="Keep the current replicas this long.")
    then: Annotated[Optional[Fallback], BeforeValidator(
        _hold_or_fallback, json_schema_input_type=Literal["hold"] | Fallback)] = Field(
        None, json_schema_extra={"default": "hold"})


#: A field manager's name as the API server accepts it: 1 to 128 printable characters.
FieldManagerName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$")]

#: What an SRE expects after scaling by hand during an incident: the count stays for half an hour.
DEFAULT_HANDS_OFF_S = 1800.0


class OnExternalScale(StrictModel):
    """What to do when someone else sets spec.replicas (kubectl scale, a GitOps sync, a script)."""

    hands_off_s: NonNegativeDuration = duration_field(
        DEFAULT_HANDS_OFF_S, "handsOff",
        "Leave the replicas as they were set this long (reason ExternalOverride, an ExternalScaleChange Event), then "
        "scale from that count under the policy's own windows and rate limits. 0s: set the policy's count again at "
        "the next cycle (an HPA's behaviour). Health actions (restart, rollback) are not affected.")
    deploy_managers: list[FieldManagerName] = Field(default_factory=list, max_length=64, description=(
        "Field managers (metadata.managedFields) of your own deploy pipelines, beside the known ones (kubectl apply, "
        "kubectl replace, Helm, Argo CD, Flux): a count they reset comes with a manifest, not a decision about "
        "capacity, so it gets no hands-off (a Warning Event says to take spec.replicas out of the manifest)."))


class Scaling(StrictModel):
    metrics: list[Metric]
    smoothing: Optional[SmoothingModel] = None
    tolerance: Annotated[Tolerance, BeforeValidator(
        _tolerance_from_number, json_schema_input_type=float | Tolerance)] = Field(
        default_factory=Tolerance, json_schema_extra={"default": DEFAULT_TOLERANCE})
    stale_after_s: PositiveDuration = duration_field(120.0, "staleAfter", "A sample older than this counts as missing.")
    behavior: Optional[Behavior] = None
    on_missing_metrics: Optional[OnMissingMetrics] = None
    on_external_scale: Optional[OnExternalScale] = Field(None, json_schema_extra={"default": {"handsOff": "30m"}})
    replace_unready: bool = Field(True, description=(
        "Size on the serving pods: a pod that runs but has not been Ready for twice its start-up (a stuck rollout, "
        "a failing readiness probe) is withheld and added on top of the proposals, never more than the Ready pods "
        "(a fault most pods share is not replaced round after round). false: size on spec replicas "
        "as HPA does (pods held unready on purpose, e.g. by a readiness gate)."))


class Threshold(StrictModel):
    """``above`` or ``below`` a value, continuously ``for`` a duration."""

    model_config = ConfigDict(json_schema_extra=one_of_required("above", "below"))

    above: Optional[float] = Field(None, ge=-MAX_VALUE, le=MAX_VALUE)
    below: Optional[float] = Field(None, ge=-MAX_VALUE, le=MAX_VALUE)
    for_s: NonNegativeDuration = duration_field(0.0, "for", "How long the condition must hold.")

    @model_validator(mode="after")
    def _one_comparison(self) -> "Threshold":
        exactly_one(self, ("above", "below"))
        return self


def _worse_by(value: object) -> float:
    """``2x``, ``1.5x`` or a number: how much worse the new revision must be to matter (> 1)."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.endswith("x"):
        text = text[:-1]
    try:
        factor = float(text) if isinstance(text, (str, int, float)) and not isinstance(text, bool) else None
    except ValueError:
        factor = None
    if factor is None or not factor == factor:
        raise field_error(f"expected a factor like 2x or 1.5x, got {describe_value(value)}")
    if not 1.0 < factor <= 1000.0:
        raise field_error(f"must be > 1x and <= 1000x, got {describe_value(value)}")
    return factor


WorseBy = Annotated[float, BeforeValidator(_worse_by, json_schema_input_type=Union[str, float])]


class RevisionCompare(StrictModel):
    """How a revision check compares the new revision with the stable one (a sequential test)."""

    worse_by: WorseBy = Field(2.0, description="The effect that matters: the new revision's error ratio (or "
                                               "median latency) this many times the stable one's, e.g. 2x.")
    false_rollback_rate: Percent(gt=0, le=50) = Field(
        1.0, description="Accepted chance that an equally good revision is rolled back, per rollout.")
    miss_rate: Percent(gt=0, le=50) = Field(
        5.0, description="Accepted chance that a revision worse by worseBy is called good.")
    min_requests: Optional[int] = Field(
        None, ge=0, le=10**12, description="Requests the new revision serves before any verdict. "
                                          "Default: ceil(log(1/falseRollbackRate) / log(worseBy)).")


class RolloutHold(StrictModel):
    """Hold the rollout while the revision test is undecided (a scope: revision check)."""

    max_duration_s: PositiveDuration = duration_field(
        600.0, "maxDuration", "The longest this check holds a rollout (spec.paused); then it resumes and the "
        "test goes on.")


class HungPod(StrictModel):
    """A hung-pod check: a pod not Ready this long, past its start-up, while most of its revision's
    pods are Ready (read from the pod list: no query)."""

    not_ready_for_s: PositiveDuration = duration_field(
        120.0, "notReadyFor", "How long a pod is not Ready (past its start-up, with most pods of its revision "
        "Ready) before the check fires on it.")
    startup_s: NonNegativeDuration = duration_field(
        300.0, "startup", "A pod this young is starting, not hung: its not-Ready time counts from its creation "
        "plus this.")


class HealthCheck(StrictModel):
    name: Identifier
    hung: Optional[HungPod] = Field(
        None, description="A hung-pod check (scope pod, no query): a pod that runs but is not Ready for "
                          "notReadyFor while more than half of the other pods of its workload and revision are "
                          "Ready (a readiness outage, most pods not Ready, never fires it). Action restart-pod "
                          "or record.")
    query: Optional[PromQL] = Field(
        None, description="PromQL. scope revision: one latency sample per pod (e.g. its p95), compared by revision.")
    scope: Literal["workload", "pod", "revision"] = "workload"
    errors: Optional[PromQL] = Field(
        None, description="scope revision: failed requests per second, one series per pod.")
    requests: Optional[PromQL] = Field(
        None, description="scope revision: requests per second, one series per pod.")
    compare: Optional[RevisionCompare] = Field(None, description="scope revision: the sequential test.")
    hold: Optional[RolloutHold] = Field(
        None, description="scope revision, action rollback: pause the rollout (spec.paused) once the new revision "
                          "serves enough traffic to decide, until the test decides or maxDuration passes.")
    smoothing: Optional[SmoothingModel] = None
    unhealthy: Optional[Threshold] = Field(None, description="Required unless scope is revision or the check is "
                                                             "a hung check.")
    recovered: Optional[Threshold] = Field(
        None, description="Opposite comparison, on the healthy side of unhealthy. Default: not unhealthy.")
    action: HealthActionName
    on_missing: Literal["ignore", "fire"] = Field("ignore", description="ignore: missing data never fires.")


class Budgets(StrictModel):
    restarts_per_hour: int = Field(6, ge=0, le=MAX_BUDGET)
    rollbacks_per_day: int = Field(2, ge=0, le=MAX_BUDGET)
    max_unavailable: CountOrPercent = Field("25%", description="Pods disrupted at once: a count or a percentage.")


class Health(StrictModel):
    checks: list[HealthCheck]
    budgets: Budgets = Field(default_factory=Budgets)
    rollback_window_s: PositiveDuration = duration_field(1800.0, "rollbackWindow",
                                                       "How far back a revision counts for rollback.")
    healthy_after_s: PositiveDuration = duration_field(
        300.0, "healthyAfter", "A revision current this long with no firing check is known healthy: a rollback target.")
    rollout_interval_s: Interval = duration_field(
        5.0, "rolloutInterval", "How often the health side is evaluated while a target's rollout is in progress "
        "(between the interval's full cycles; scaling keeps the interval).")
    escalation: Optional[list[HealthActionName]] = Field(None, min_length=1)


class Spec(StrictModel):
    preset: Optional[Literal["hpa"]] = Field(None, description="hpa: behave exactly like Kubernetes HPA.")
    targets: Targets
    interval_s: Interval = duration_field(15.0, "interval", "How often the policy is evaluated.")
    replicas: Optional[Replicas] = Field(
        None, description="The bounds of the replica count: required to scale (scaling, or a health check's "
                          "scale-up); a health-only policy that never scales may leave it out.")
    scaling: Optional[Scaling] = None
    health: Optional[Health] = None


class PolicyDocument(StrictModel):
    """One ``kind: Policy`` document."""

    model_config = ConfigDict(title="Setpoint Policy")

    api_version: Literal["setpoint/v1"]
    kind: Literal["Policy"]
    metadata: Metadata
    spec: Spec
