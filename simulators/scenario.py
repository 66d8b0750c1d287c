"""Scenario files: services, load, faults, SLO and metric bindings, validated like policies.

A scenario is YAML (``apiVersion: setpoint/v1``, ``kind: Scenario``). Every error names the
file, line and field path, what was expected and what was found; all of them come in one pass
(the rules across fields run on the parts that validated, as a policy's do). What is valid but
silently never happens (a load event after the end, a trace shorter than the run) is a warning,
carried by the compiled :class:`Scenario`. See
simulators/scenarios/*.yaml for examples; docs/simulation.md documents the format.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from controller.bundled import package_path
from controller.core.scaling.params import MetricKind
from controller.errors import FieldError, ScenarioError
from controller.policy.durations import describe_value, format_duration
from controller.policy.fields import DnsLabel, Duration, Percent, StrictModel, field_error
from controller.policy.messages import clean_loc, format_path, validation_problems
from controller.policy.partial import UNCHECKED, error_trie, guarded, partial_model, read
from controller.policy.yamlsrc import read_documents, read_yaml_file
from simulators import faults as F
from simulators import load as L
from simulators import streams
from simulators.result import SLO
from simulators.workload import MAX_RETRY_RATIO, ClusterConfig, ReadinessProbe, ServiceConfig

#: Simulations start on a Monday at 00:00 UTC so diurnal and weekly shapes line up.
SIM_EPOCH_S = float(calendar.timegm((2026, 1, 5, 0, 0, 0)))

#: Names a policy metric may be bound to, and the simulated signal each one reads.
SIGNALS: dict[str, str] = {
    "requests_per_second": "offered_rps",
    "served_per_second": "served_rps",
    "utilization": "utilization_pct",
    "latency_p50": "latency_p50_s",
    "latency_p95": "latency_p95_s",
    "latency_p99": "latency_p99_s",
    "error_ratio": "error_ratio",
    "ready_replicas": "ready_replicas",
    "restarts": "restarts_total",
    "queue_length": "queue_length",
    "memory": "memory_mib",
    "restarts_per_minute": "restarts_total:rate",  # like PromQL increase(...[window]) per minute
    # what `setpoint import` writes for an HPA memory metric, read at the last tick as PromQL reads
    # a gauge: sum(working set) / sum(memory requests), percent; and sum(working set) in bytes
    "memory_utilization": "memory_mib:percent_of_request",
    "memory_bytes": "memory_mib:total_bytes",
    # what `setpoint import` writes for an HPA CPU AverageValue: sum(rate(cpu seconds)), cores
    "cpu_cores": "utilization_pct:total_cores",
}

#: Per-pod signals (SimCluster.pod_signals) a pod-scope health check may be bound to.
POD_SIGNALS: dict[str, str] = {
    "pod_memory": "memory_mib",
    "pod_error_ratio": "error_ratio",
    "pod_restarts": "restarts",
    "pod_extra_latency": "extra_latency_s",
    # sampled per cycle by SimMetrics (Poisson requests, binomial errors, log-normal p95)
    "pod_requests": "requests_rps",
    "pod_errors": "errors_rps",
    "pod_latency": "latency_s",
}

#: Bindings used when a scenario does not bind a policy metric of that name.
DEFAULT_BINDINGS: dict[str, str] = {
    "rps": "requests_per_second", "requests": "requests_per_second", "cpu": "utilization",
    "utilization": "utilization", "latency": "latency_p95", "p95": "latency_p95", "p99": "latency_p99",
    "errors": "error_ratio", "error-ratio": "error_ratio", "backlog": "queue_length", "queue": "queue_length",
    "restarts": "restarts_per_minute", "crash-loop": "restarts_per_minute",
}

#: Bindings, by resource and target, of a metric named ``cpu`` or ``memory`` (or ``<container>-cpu``,
#: ``<container>-memory``: a ContainerResource's) the scenario does not bind: `setpoint import`
#: names an HPA's resource metrics so and writes a Utilization target over a percent of the pods'
#: requests, an AverageValue one over the workload's usage (CPU cores, memory bytes). A memory
#: value target has no default (bind it); a cpu one reads utilization (DEFAULT_BINDINGS).
RESOURCE_BINDINGS: dict[tuple[str, MetricKind], str] = {
    ("cpu", MetricKind.UTILIZATION): "utilization", ("cpu", MetricKind.AVERAGE_PER_REPLICA): "cpu_cores",
    ("memory", MetricKind.UTILIZATION): "memory_utilization",
    ("memory", MetricKind.AVERAGE_PER_REPLICA): "memory_bytes",
}

#: Bindings of pod-scope health checks by name, when the scenario does not bind them.
DEFAULT_POD_BINDINGS: dict[str, str] = {
    "memory": "pod_memory", "error-ratio": "pod_error_ratio", "errors": "pod_error_ratio",
    "restarts": "pod_restarts", "latency": "pod_extra_latency",
}



def resource_named(metric_name: str) -> str | None:
    """The resource a metric is named after as `setpoint import` names an HPA's resource metric:
    ``cpu`` / ``memory`` (Resource, or a KEDA cpu / memory trigger) or ``<container>-cpu`` /
    ``<container>-memory`` (ContainerResource); None for another name."""
    resource = metric_name.rpartition("-")[2]
    return resource if resource in ("cpu", "memory") else None


SCENARIO_FOLDER = package_path("simulators", "scenarios")  # package data, also in an installed wheel

Signal = Literal[tuple(SIGNALS) + tuple(POD_SIGNALS)]  # type: ignore[valid-type]

# Bounds: what the engine can execute without overflow or absurd allocations, so that a
# scenario that validates always simulates (or is refused by its memory estimate).
#: Longest scenario, and the bound of every time offset and duration in it.
MAX_DURATION_S = 400 * 86400.0
#: Shortest tick: finer ticks multiply the (ticks x services) arrays without adding meaning.
MIN_TICK_S = 0.1
#: Longest metrics window: SimMetrics keeps window / tick samples per service.
MAX_METRICS_WINDOW_S = 3600.0
#: Bound of load rates and capacities (requests/s); far above any real service.
MAX_RPS = 1e9
#: Services after expanding ``count``; pods per service.
MAX_SERVICES = 10_000
MAX_PODS = 1000
#: MiB a memory leak may add to a pod per tick: what takes a pod from its working set to its
#: memory limit (OOM), so that a container is restarted at most once per tick.
MAX_LEAK_MIB_PER_TICK = ServiceConfig.memory_limit_mib - ServiceConfig.memory_base_mib


def SimDuration(*, gt: float | None = None, ge: float | None = 0.0, le: float = MAX_DURATION_S,
                latency: bool = False):
    """A scenario duration: a policy Duration bounded above (default :data:`MAX_DURATION_S`);
    ``latency``: a bare number's hint says ms (``below: 250`` -> ``250ms``), not s."""
    return Duration(gt=gt, ge=ge, le=le, latency=latency)


# --------------------------------------------------------------------------- load shapes
class ConstantLoad(StrictModel):
    rps: float = Field(ge=0, le=MAX_RPS)


class StepLoad(StrictModel):
    """Terms add up, so a step may go down (``to`` below ``from``); the total is clipped at 0."""

    at: SimDuration()
    from_: float = Field(alias="from", ge=-MAX_RPS, le=MAX_RPS)
    to: float = Field(ge=-MAX_RPS, le=MAX_RPS)


class RampLoad(StrictModel):
    start: SimDuration()
    end: SimDuration()
    from_: float = Field(alias="from", ge=-MAX_RPS, le=MAX_RPS)
    to: float = Field(ge=-MAX_RPS, le=MAX_RPS)

    @model_validator(mode="after")
    def _ordered(self):
        if self.end <= self.start:
            raise field_error(f"end must be after start, got start {self.start:g}s and end {self.end:g}s")
        return self


class DiurnalLoad(StrictModel):
    mean: float = Field(ge=0, le=MAX_RPS, description="mean requests/s over a day")
    amplitude: float = Field(0.5, ge=0, le=1, description="daily swing as a share of the mean")
    peak_hour: float = Field(18.0, ge=0, lt=24, description="UTC hour of the daily peak")
    weekend: float = Field(1.0, ge=0, le=1000, description="multiplier on Saturdays and Sundays")


class FlashCrowdLoad(StrictModel):
    at: SimDuration()
    peak: float = Field(gt=0, le=MAX_RPS, description="extra requests/s at the top")
    rise: SimDuration(gt=0) = 60.0
    decay: SimDuration(gt=0) = 600.0


class NoiseLoad(StrictModel):
    sigma: float = Field(gt=0, le=2, description="log-normal sigma of the multiplicative noise")
    every: SimDuration(gt=0) = 60.0


class TraceLoad(StrictModel):
    file: str = Field(min_length=1, description="CSV timestamp,value; a relative path is read next to the scenario "
                                                "file, else in the traces folder ($SETPOINT_TRACES_DIR)")
    start: SimDuration() = 0.0
    duration: SimDuration(gt=0) | None = None
    peak_rps: float | None = Field(None, gt=0, le=MAX_RPS)
    multiplier: float = Field(1.0, gt=0, le=1e6)
    interpolation: Literal["linear", "step"] = "linear"
    wrap: bool = False


class LoadTerm(StrictModel):
    """One term of a service's load: terms are summed, noise terms multiply the sum."""

    constant: ConstantLoad | None = None
    step: StepLoad | None = None
    ramp: RampLoad | None = None
    diurnal: DiurnalLoad | None = None
    flash_crowd: FlashCrowdLoad | None = None
    noise: NoiseLoad | None = None
    trace: TraceLoad | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(given) != 1:
            names = ", ".join(type(self).model_fields[k].alias or k for k in type(self).model_fields)
            raise field_error(f"expected exactly one of {names}, got {len(given) or 'none'}")
        return self


# --------------------------------------------------------------------------- services, faults
class ReadinessProbeModel(StrictModel):
    """A readiness probe that fails while the service is saturated (the overload spiral, see
    :class:`simulators.workload.ReadinessProbe`): probes every ``period`` (at least the tick),
    ``failureThreshold`` failures in a row take every pod out of the load balancer,
    ``successThreshold`` successes in a row (it is idle then) put them back."""

    period: SimDuration(gt=0) = Field(10.0, description="time between probes; at least the scenario's tick")
    failure_threshold: int = Field(3, ge=1, le=1000, description="failed probes in a row that make the pods not Ready")
    success_threshold: int = Field(1, ge=1, le=1000, description="passed probes in a row that make them Ready again")


class ServiceModel(StrictModel):
    name: DnsLabel
    namespace: DnsLabel = "default"
    kind: Literal["Deployment", "StatefulSet"] = Field("Deployment", description=(
        "the workload `setpoint sim serve` serves it as: a StatefulSet has pods NAME-0..N-1, scales one pod at a "
        "time in ordinal order and updates from the highest ordinal down (simulators/simcluster/statefulsets.py); "
        "offline runs (simulate, sweep, tune) model every service as a Deployment"))
    pod_management_policy: Literal["OrderedReady", "Parallel"] | None = Field(None, description=(
        "a StatefulSet's: OrderedReady (the default) creates and removes pods one at a time in ordinal order, "
        "Parallel all at once"))
    count: int = Field(1, ge=1, le=MAX_SERVICES, description="copies of this service, named name-0, name-1, ...")
    capacity_per_pod: float = Field(gt=0, le=MAX_RPS, description="requests/s one ready pod serves at 100% utilization")
    scheduling_delay: SimDuration() = 2.0
    startup_delay: SimDuration() = 30.0
    base_latency: SimDuration(gt=0, latency=True) = 0.05
    overload: Literal["drop", "queue"] = "drop"
    queue_limit: float = Field(1000.0, ge=0, le=1e12)
    timeout: SimDuration(gt=0) = 10.0
    initial_replicas: int = Field(2, ge=0, le=MAX_PODS)
    max_pods: int = Field(50, ge=1, le=MAX_PODS)
    cpu_request: float = Field(0.5, gt=0, le=1e6, description="cores")
    memory_request: float = Field(512.0, gt=0, le=1e9, description=(
        "MiB: a pod's memory request, what a memory utilization is a percent of (a pod's working set is 256 MiB "
        "without a memory leak)"))
    termination_grace_period: SimDuration(le=86400.0) = Field(30.0, description=(
        "the pods' terminationGracePeriodSeconds (whole seconds), as `setpoint sim serve` serves them: how long "
        "a deleted pod is listed terminating, and a StatefulSet's replacement (same name) or next scale-down "
        "waits for it (a real pod is gone once its app exits, at the latest then); 30s, the API's default"))
    error_ratio: float = Field(0.0, ge=0, le=1, description="errors of a healthy revision")
    retry_ratio: float = Field(0.0, ge=0, le=MAX_RETRY_RATIO,
                               description="share of the requests dropped in a tick that clients retry in the next")
    readiness_probe: ReadinessProbeModel | None = Field(None, description=(
        "a readiness probe that fails while the service is saturated (dropped or queued requests): after "
        "failureThreshold failed probes every pod leaves the load balancer, idle they pass successThreshold probes "
        "and return, are swamped again (the overload spiral); omitted: readiness ignores load"))
    load: list[LoadTerm] = Field(min_length=1)
    # initialReplicas <= maxPods is a cross-field rule (_service_rules): it is said beside the file's other errors


class FaultBase(StrictModel):
    name: str | None = None
    at: SimDuration()
    services: list[str] | None = Field(None, description="the services it hits; omit for all")

    @field_validator("services")
    @classmethod
    def _some_services(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:  # it would hit none: a fault that silently does nothing
            raise ValueError("an empty list hits no service; omit services to hit every service")
        return value


class VictimFault(FaultBase):
    """A fault on chosen pods: ``pod`` names its victim, instead of ``count`` drawn at random."""

    pod: int | str | None = Field(None, description=(
        "the victim, instead of count drawn at random: an ordinal (3: pod web-3 of each StatefulSet hit) or a "
        "StatefulSet's pod name (web-3); not there or not a candidate then (not Ready for a hang, not running for "
        "a crash): none. Offline runs (every service a Deployment): the pod of that creation rank, oldest 0"))

    @field_validator("pod", mode="before")
    @classmethod
    def _ordinal_or_name(cls, value):
        ok = (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_PODS) or (
            isinstance(value, str) and 0 < len(value) <= 253) or value is None
        if not ok:
            raise ValueError(f"must be an ordinal (0 to {MAX_PODS - 1}) or a pod name (web-3), got {value!r}")
        return value


class PodCrashFault(VictimFault):
    kind: Literal["pod-crash"]
    count: int = Field(1, ge=1, le=MAX_PODS)


class CrashLoopFault(FaultBase):
    kind: Literal["crash-loop"]


class BadRolloutFault(FaultBase):
    kind: Literal["bad-rollout"]
    error_ratio_multiplier: float = Field(1.0, ge=0, le=1e6)
    extra_error_ratio: float = Field(0.0, ge=0, le=1)
    extra_latency: SimDuration(latency=True) = 0.0


class NodeLossFault(FaultBase):
    kind: Literal["node-loss"]
    duration: SimDuration(gt=0) | None = None
    share: Percent(gt=0, le=100) = 25.0


class MemoryLeakFault(FaultBase):
    kind: Literal["memory-leak"]
    duration: SimDuration(gt=0) | None = None
    mib_per_second: float = Field(0.1, gt=0, le=1e9, description="working-set growth of every running pod")


class ReadinessOutageFault(FaultBase):
    """Every pod of the services fails its readiness probe (a dependency they all check is down)."""

    kind: Literal["readiness-outage"]
    duration: SimDuration(gt=0) | None = Field(None, description="how long; omitted: until the end of the run")


class PodHangFault(VictimFault):
    """``count`` Ready pods of each service hang (a stuck process): not Ready, serving nothing,
    while the others serve; cured by a restart of the pod, or by the fault's end."""

    kind: Literal["pod-hang"]
    count: int = Field(1, ge=1, le=MAX_PODS, description="pods of each service that hang")
    duration: SimDuration(gt=0) | None = Field(None, description="how long; omitted: until the pod is restarted")
    sticky: bool = Field(False, description=(
        "the pod hangs again after every restart (a poison node or volume): its restarted container, or the pod "
        "created in its place when it is deleted, hangs as its start-up ends, until the fault's duration ends; "
        "omitted: a restart cures it"))


class MetricsFault(FaultBase):
    kind: Literal["metrics-outage", "stale-metrics", "nan-metrics"]
    duration: SimDuration(gt=0)


FaultModel = Annotated[Union[PodCrashFault, CrashLoopFault, BadRolloutFault, NodeLossFault, MemoryLeakFault,
                             ReadinessOutageFault, PodHangFault, MetricsFault], Field(discriminator="kind")]


class LatencySLO(StrictModel):
    percentile: Literal[50, 95, 99] = 95
    below: SimDuration(gt=0, latency=True)


class SLOModel(StrictModel):
    latency: LatencySLO
    error_ratio: float = Field(0.01, ge=0, le=1)


class Nodes(StrictModel):
    count: int = Field(ge=1, le=100_000)
    pods_per_node: int = Field(ge=1, le=MAX_PODS)


class ScenarioSpec(StrictModel):
    duration: SimDuration(gt=0)
    tick: SimDuration(ge=MIN_TICK_S, le=300.0) = 5.0
    seed: int = Field(0, ge=0, le=2**63 - 1)
    slo: SLOModel
    services: list[ServiceModel] = Field(min_length=1)
    nodes: Nodes | None = None
    faults: list[FaultModel] = Field(default_factory=list)
    metrics: dict[str, Signal] = Field(default_factory=dict, description="policy metric name -> simulated signal")
    metrics_window: SimDuration(gt=0, le=MAX_METRICS_WINDOW_S) = 60.0
    history: SimDuration(ge=0, le=35 * 86400.0) = Field(0.0, description=(
        "load before the start fed to forecasting policies as history (a trace's history is the trace before "
        "its window, so at most its start)"))


class Metadata(StrictModel):
    name: DnsLabel
    description: str = ""


class ScenarioDocument(StrictModel):
    api_version: Literal["setpoint/v1"]
    kind: Literal["Scenario"]
    metadata: Metadata
    spec: ScenarioSpec


# --------------------------------------------------------------------------- compiled scenario
@dataclass(frozen=True)
class Scenario:
    """A validated scenario, ready to run. Times are epoch seconds from ``start_s``."""

    name: str
    description: str
    file: str
    start_s: float
    duration_s: float
    tick_s: float
    seed: int
    slo: SLO
    cluster: ClusterConfig
    shapes: tuple[L.Shape, ...]  # one per service
    faults: tuple[F.Fault, ...]
    fault_names: tuple[str, ...]
    bindings: dict[str, str]  # metric name -> signal name (SIGNALS key)
    metrics_window_s: float
    history_s: float = 0.0
    #: valid, but probably not what was meant (a load event after the run's end, a trace shorter
    #: than the run): ``FILE:LINE: FIELD.PATH: warning: ...`` as a policy's (controller/policy/units.py).
    #: ``setpoint simulate``, ``sweep`` and ``tune`` print them once before the run, and their results keep them.
    warnings: tuple[FieldError, ...] = ()
    #: the services of ``kind: StatefulSet`` (expanded names): ``setpoint sim serve`` serves them as StatefulSets
    statefulsets: frozenset[str] = frozenset()
    #: of those, the ones with ``podManagementPolicy: Parallel``
    parallel_statefulsets: frozenset[str] = frozenset()
    #: each ``spec.metrics`` name -> its line in the file (None when not known): where a binding a
    #: policy does not use is said (runner.misspelt_bindings)
    binding_lines: dict[str, int | None] = dataclass_field(default_factory=dict)

    def history_times(self) -> np.ndarray:
        """(H,) tick times of the history before the start, epoch seconds (empty without history)."""
        return self.start_s - self.history_s + self.tick_s * np.arange(int(math.floor(self.history_s / self.tick_s)))

    @property
    def services(self) -> list[str]:
        return [s.name for s in self.cluster.services]

    @property
    def tick_count(self) -> int:
        """T, the number of ticks (without building the (T,) array of their times)."""
        return L.tick_count(self.duration_s, self.tick_s)

    def times(self) -> np.ndarray:
        """(T,) tick times, epoch seconds."""
        return L.tick_times(self.start_s, self.duration_s, self.tick_s)

    def offered(self, times: np.ndarray | None = None) -> np.ndarray:
        """(T, S) offered load, requests/s."""
        return L.offered_matrix(list(self.shapes), self.times() if times is None else times, len(self.shapes))

    def offered_function(self):
        """``times (T,) -> (T, S)``, the same numbers as :meth:`offered` (see
        :func:`simulators.load.offered_function`): to evaluate the load one tick at a time."""
        return L.offered_function(list(self.shapes), len(self.shapes))

    def offered_chunks(self, chunk_ticks: int = L.CHUNK_TICKS):
        """The rows of :meth:`offered` in chunks: ``(k0, times (C,), load (C, S))``, see
        :func:`simulators.load.offered_chunks` (memory O(chunk x S), the same numbers)."""
        return L.offered_chunks(list(self.shapes), self.start_s, self.duration_s, self.tick_s, len(self.shapes),
                                chunk_ticks)

    def signal_for(self, metric_name: str, kind: MetricKind | None = None) -> str | None:
        """The simulated signal (TickSignals field, ``:mode`` after it) a policy metric reads, or
        None if unbound. ``kind``: the metric's target kind, which picks a memory metric's default."""
        bound = (self.bindings.get(metric_name) or RESOURCE_BINDINGS.get((resource_named(metric_name), kind))
                 or DEFAULT_BINDINGS.get(metric_name))
        return SIGNALS.get(bound) if bound else None

    def pod_signal_for(self, check_name: str) -> str | None:
        """The per-pod signal (a SimCluster.pod_signals key) a pod-scope check reads, or None."""
        bound = self.bindings.get(check_name) or DEFAULT_POD_BINDINGS.get(check_name)
        return POD_SIGNALS.get(bound) if bound else None


def _shape(term: LoadTerm, start_s: float, stream: np.random.SeedSequence, history_s: float = 0.0,
           folder: Path | None = None) -> tuple[L.Shape, bool]:
    """(shape, multiplicative) for one load term; ``stream`` is the term's own (only noise draws);
    a trace's relative path is read in ``folder`` (load.trace_path)."""
    if term.constant:
        return L.Constant(term.constant.rps), False
    if term.step:
        return L.Step(start_s + term.step.at, term.step.from_, term.step.to), False
    if term.ramp:
        r = term.ramp
        return L.Ramp(start_s + r.start, start_s + r.end, r.from_, r.to), False
    if term.diurnal:
        d = term.diurnal
        return L.Diurnal(d.mean, d.amplitude, d.peak_hour, d.weekend), False
    if term.flash_crowd:
        f = term.flash_crowd
        return L.FlashCrowd(start_s + f.at, f.peak, f.rise, f.decay), False
    if term.noise:
        return L.Noise(term.noise.sigma, seed=stream, interval_s=term.noise.every), True
    t = term.trace
    trace = L.load_trace(t.file, relative_to=folder)
    return L.TraceReplay(trace, start_offset_s=t.start, duration_s=t.duration, multiplier=t.multiplier,
                         peak_rps=t.peak_rps, interpolation=t.interpolation, sim_start_s=start_s, wrap=t.wrap,
                         history_s=min(history_s, t.start)), False


#: The trace replay's (load.TraceReplay) fields by the names a scenario file gives them.
TRACE_FIELDS = {"start_offset_s": "start", "duration_s": "duration", "peak_rps": "peakRps",
                "interpolation": "interpolation"}


def _checked_shape(term: LoadTerm, start_s: float, stream: np.random.SeedSequence | None, history_s: float,
                   folder: Path | None, where: tuple, errors: list[tuple[tuple, str]]) -> tuple[L.Shape, bool] | None:
    """:func:`_shape`, or None with its trace's problems in ``errors`` (``where``: the term's path)."""
    try:
        return _shape(term, start_s, stream, history_s, folder)
    except FileNotFoundError as exc:
        errors.append((where + ("trace", "file"), str(exc)))
    except ScenarioError as exc:
        for e in exc.errors:
            if e.line is None and e.path in TRACE_FIELDS:  # the replay's checks: its YAML field
                errors.append((where + ("trace", TRACE_FIELDS[e.path]), f"{e.file}: {e.message}"))
            else:
                errors.append((where + ("trace",), str(e)))  # names the CSV file and line
    return None


def _service_shape(terms: list[LoadTerm], start_s: float, seed: int, service: str, where: tuple,
                   errors: list[tuple[tuple, str]], history_s: float = 0.0, folder: Path | None = None,
                   duration_s: float | None = None, warnings: list[tuple[tuple, str]] | None = None) -> L.Shape:
    """The sum of a service's load terms times its noise terms; trace problems go to ``errors``,
    and a trace shorter than ``duration_s`` (the run) to ``warnings``.
    Term ``k`` draws from the stream (seed, service name, k): other services never shift it.
    Relative trace paths are read in ``folder`` (the scenario file's; None: the working directory)."""
    added, multiplied = [], []
    for k, term in enumerate(terms):
        built = _checked_shape(term, start_s, streams.load_term(seed, service, k), history_s, folder, where + (k,),
                               errors)
        if built is None:
            continue
        shape, multiplicative = built
        if warnings is not None and duration_s is not None and isinstance(shape, L.TraceReplay):
            warnings += _short_trace(term.trace, shape, duration_s, where + (k, "trace"))
        (multiplied if multiplicative else added).append(shape)
    total = added[0] if added else L.Constant(0.0)
    for s in added[1:]:
        total = total + s
    for m in multiplied:
        total = total * m
    return total


def _short_trace(t: TraceLoad, replay: L.TraceReplay, duration_s: float, where: tuple) -> list[tuple[tuple, str]]:
    """A warning when the replayed window ends before the run does and does not wrap: its last rate
    held for the rest of the run, silently (a week's run on a day of trace was a flat line for six days)."""
    window = replay.window_s
    if t.wrap or window >= duration_s:
        return []
    rest = f"its last rate holds for the last {_said(duration_s - window)}; wrap: true repeats it instead"
    if t.duration is not None and window >= t.duration:  # the window asked for is the short one
        return [(where + ("duration",), f"warning: a window of {_said(window)} of {t.file}, shorter than the run "
                                        f"({_said(duration_s)}): {rest}")]
    length = f"{t.file} is {_said(replay.trace.duration_s)} long"
    if t.start:
        length += f": replayed from {_said(t.start)} into it, it ends {_said(window)} into the run"
    return [(where + ("file",), f"warning: {length}, shorter than the run ({_said(duration_s)}): {rest}")]


def _said(seconds: float) -> str:
    """A duration as a scenario file writes it (``2d``, ``45m``)."""
    return format_duration(seconds, days=True)


def _load_warnings(spec: ScenarioSpec) -> list[tuple[tuple, str]]:
    """A warning per load event at or after the run's end: it never happens. Not an error, as a
    fault there is: a shorter ``duration`` (a test, ``--scenario-set spec.duration=10m``) should
    not make a file invalid."""
    out = []
    for i, s in enumerate(spec.services):
        for k, term in enumerate(s.load):
            for kind, field, at in (("flashCrowd", "at", term.flash_crowd and term.flash_crowd.at),
                                    ("step", "at", term.step and term.step.at),
                                    ("ramp", "start", term.ramp and term.ramp.start)):
                if at is not None and at >= spec.duration:
                    when = "after" if at > spec.duration else "at"
                    out.append((("spec", "services", i, "load", k, kind, field),
                                f"warning: at {_said(at)}, {when} the run's end ({_said(spec.duration)}): it never "
                                "happens"))
    return out



FAULT_CLASSES = {
    "pod-crash": F.PodCrash, "crash-loop": F.CrashLoopRollout, "bad-rollout": F.BadRollout,
    "node-loss": F.NodeLoss, "memory-leak": F.MemoryLeak, "readiness-outage": F.ReadinessOutage,
    "pod-hang": F.PodHang, "metrics-outage": F.MetricsOutage,
    "stale-metrics": F.StaleMetrics, "nan-metrics": F.NaNMetrics,
}


def _fault(model, start_s: float, service_names: dict[str, list[str]]) -> F.Fault:
    services = None if model.services is None else tuple(n for s in model.services for n in service_names.get(s, [s]))
    common = dict(at_s=start_s + model.at, services=services)
    duration = getattr(model, "duration", None)
    if duration is not None:
        common["duration_s"] = duration
    kind = model.kind
    if kind in ("pod-crash", "pod-hang"):
        ordinal = None
        if isinstance(model.pod, str):  # a pod name: its service alone, at its ordinal (_victim_rules)
            service, _, k = model.pod.rpartition("-")
            common["services"], ordinal = tuple(service_names.get(service, [service])), int(k)
        elif model.pod is not None:
            ordinal = model.pod
        if kind == "pod-hang":
            common["sticky"] = model.sticky
        cls = F.PodCrash if kind == "pod-crash" else F.PodHang
        return cls(count=1 if ordinal is not None else model.count, ordinal=ordinal, **common)
    if kind == "bad-rollout":
        return F.BadRollout(error_ratio_multiplier=model.error_ratio_multiplier, extra_error_ratio=model.extra_error_ratio,
                            extra_latency_s=model.extra_latency, **common)
    if kind == "node-loss":
        return F.NodeLoss(share_ratio=model.share / 100.0, **common)
    if kind == "memory-leak":
        return F.MemoryLeak(rate_mib_per_s=model.mib_per_second, **common)
    return FAULT_CLASSES[kind](**common)


def _probe(model: ReadinessProbeModel | None) -> ReadinessProbe | None:
    if model is None:
        return None
    return ReadinessProbe(period_s=model.period, failure_threshold=model.failure_threshold,
                          success_threshold=model.success_threshold)


def _expand_services(spec: ScenarioSpec) -> tuple[list[ServiceConfig], list[ServiceModel], dict[str, list[str]]]:
    configs, models, names = [], [], {}
    for s in spec.services:
        copies = [s.name] if s.count == 1 else [f"{s.name}-{i}" for i in range(s.count)]
        names[s.name] = copies
        for name in copies:
            configs.append(ServiceConfig(
                name=name, namespace=s.namespace, capacity_rps=s.capacity_per_pod,
                scheduling_delay_s=s.scheduling_delay, startup_delay_s=s.startup_delay, base_latency_s=s.base_latency,
                overload=s.overload, queue_limit=s.queue_limit, timeout_s=s.timeout,
                initial_replicas=s.initial_replicas, max_pods=s.max_pods, cpu_request_cores=s.cpu_request,
                memory_request_mib=s.memory_request, termination_grace_s=float(round(s.termination_grace_period)),
                base_error_ratio=s.error_ratio, retry_ratio=s.retry_ratio, readiness_probe=_probe(s.readiness_probe)))
            models.append(s)
    return configs, models, names


def _cross_field_errors(spec: ScenarioSpec, raw_faults: object = None) -> list[tuple[tuple, str]]:
    """(path, message) of the rules across fields. ``spec`` may be a partial model (controller/policy/partial.py:
    the parts that validated, UNCHECKED for the others) beside field errors: each rule says what it can
    decide from the parts that did, so a file's errors come in one pass, not field errors first and these
    after. ``raw_faults``: the file's faults, each validated on its own when the list as a whole did not."""
    if spec is UNCHECKED:
        return []
    errors: list[tuple[tuple, str]] = []
    services = read(lambda: list(spec.services))
    services = [] if services is UNCHECKED else services
    for i, s in enumerate(services):
        errors += _service_rules(spec, i, s)
    names = read(lambda: _service_names(services)) if services else UNCHECKED
    errors += _duplicate_services(services)
    for i, f in enumerate(_faults(spec, raw_faults)):
        errors += _fault_rules(spec, i, f, names)
    errors += guarded(_spec_rules, spec)
    errors += guarded(_total_services, services)
    return errors


def _service_names(services: list) -> dict[str, int]:
    """Each service name -> its first index (Unchecked when a name did not validate: unknown)."""
    names: dict[str, int] = {}
    for i, s in enumerate(services):
        names.setdefault(s.name, i)
    return names


def _duplicate_services(services: list):
    seen: dict[str, int] = {}
    for i, s in enumerate(services):
        name = read(lambda: s.name)
        if name is UNCHECKED:
            continue
        if name in seen:
            yield ("spec", "services", i, "name"), f"duplicate service name {name!r} (also services[{seen[name]}])"
        seen.setdefault(name, i)


def _faults(spec, raw: object) -> list:
    """The faults: the spec's, or where the list did not validate as a whole, each one that does on its own."""
    faults = read(lambda: list(spec.faults))
    if faults is not UNCHECKED:
        return faults
    if not isinstance(raw, list):
        return []
    out = []
    for item in raw:
        try:
            out.append(_FAULT.validate_python(item))
        except ValidationError:
            out.append(UNCHECKED)
    return out


_FAULT = TypeAdapter(FaultModel)


def _service_rules(spec, i: int, s):
    """A service's rules, each decided on its own (one that reads a part that did not validate is skipped)."""
    where = ("spec", "services", i)

    def replicas():
        if s.initial_replicas > s.max_pods:
            yield (where + ("initialReplicas",),
                   f"initialReplicas must be <= maxPods ({s.max_pods}), got {s.initial_replicas}")

    def probe():  # one probe per tick at most: a shorter period would skip probes silently
        if s.readiness_probe is not None and s.readiness_probe.period < spec.tick:
            yield (where + ("readinessProbe", "period"),
                   f"must be at least the tick ({spec.tick:g}s), got {s.readiness_probe.period:g}s")

    def noise(k: int, term):  # noise draws one value per `every`: finer than the tick is never seen, and costs memory
        if term.noise is not None and term.noise.every < spec.tick:
            yield (where + ("load", k, "noise", "every"),
                   f"must be at least the tick ({spec.tick:g}s), got {term.noise.every:g}s")

    def pod_management():  # a Deployment's pods have no ordinals to manage
        if s.pod_management_policy is not None and s.kind != "StatefulSet":
            yield (where + ("podManagementPolicy",),
                   f"is a StatefulSet's; this service is a {s.kind}: add kind: StatefulSet or remove it")

    yield from guarded(replicas)
    yield from guarded(probe)
    yield from guarded(pod_management)
    terms = read(lambda: list(s.load))
    for k, term in enumerate([] if terms is UNCHECKED else terms):
        yield from guarded(noise, k, term)


def _fault_rules(spec, i: int, f, names):
    """A fault's rules, each decided on its own."""
    where = ("spec", "faults", i)

    def services():
        for j, name in enumerate(f.services or []):
            if names is not UNCHECKED and name not in names:
                yield (where + ("services", j),
                       f"must name a service of this scenario ({', '.join(names)}), got {name!r}")

    def at():
        if f.at >= spec.duration:
            yield where + ("at",), f"must be before the end of the scenario ({spec.duration:g}s), got {f.at:g}s"

    def nodes():
        if f.kind == "node-loss" and spec.nodes is None:
            yield where + ("kind",), "node-loss needs spec.nodes (the cluster's node capacity)"

    def leak():
        if f.kind == "memory-leak" and f.mib_per_second > MAX_LEAK_MIB_PER_TICK / spec.tick:
            # Faster, a container would be OOM-killed and restarted several times per tick (the
            # engine settles every restart within the tick: thousands per tick never finish).
            yield (where + ("mibPerSecond",),
                   f"must be at most {MAX_LEAK_MIB_PER_TICK / spec.tick:g} with a {spec.tick:g}s tick (a pod "
                   f"must run at least one tick before the leak takes it the {MAX_LEAK_MIB_PER_TICK:g} MiB "
                   f"from its working set to its memory limit), got {f.mib_per_second:g}")

    for rule in (services, at, nodes, leak):
        yield from guarded(rule)
    yield from guarded(_victim_rules, spec, where, f, names)


def _victim_rules(spec, where: tuple, f, names):
    """A fault naming its victim (``pod``): one victim, a StatefulSet's pod it hits, below maxPods."""
    if f.kind not in ("pod-crash", "pod-hang") or f.pod is None:
        return
    if f.count != 1:
        yield where + ("count",), f"must be 1 (or omitted) with pod, which names one victim, got {f.count}"
    if names is UNCHECKED:
        return
    hit = list(f.services) if f.services is not None else list(names)
    ordinal = f.pod
    if isinstance(f.pod, str):
        service, _, k = f.pod.rpartition("-")
        statefulsets = [n for n in names if spec.services[names[n]].kind == "StatefulSet"]
        if service not in names or not k.isdigit():
            yield (where + ("pod",), f"must be an ordinal (0, 1, ...) or a StatefulSet's pod name SERVICE-ORDINAL "
                                     f"({', '.join(f'{n}-0' for n in statefulsets) or 'none: no service is a StatefulSet'}),"
                                     f" got {f.pod!r}")
            return
        if service not in hit:
            yield where + ("pod",), f"names a pod of {service}, which services ({', '.join(hit)}) leaves out"
            return
        hit, ordinal = [service], int(k)
    for name in hit:
        if name not in names:
            continue  # said by the services rule
        s = spec.services[names[name]]
        if s.kind != "StatefulSet":
            yield (where + ("pod",), f"names a StatefulSet's pod by its ordinal; {name} is a {s.kind}: add kind: "
                                     "StatefulSet to it, or omit pod (a victim drawn at random)")
        elif ordinal >= s.max_pods:
            yield where + ("pod",), f"ordinal {ordinal} is beyond {name}'s maxPods ({s.max_pods}): no such pod"


def _spec_rules(spec):
    if spec.tick > spec.duration:
        yield ("spec", "tick"), f"must be at most the duration ({spec.duration:g}s), got {spec.tick:g}s"


def _total_services(services: list):
    total = sum(s.count for s in services)
    if total > MAX_SERVICES:
        yield ("spec", "services"), f"at most {MAX_SERVICES:,} services in all (counting each count), got {total:,}"


def _trace_errors(spec, folder: Path | None) -> list[tuple[tuple, str]]:
    """The problems of each trace term that validated (found, readable, its window), for a file with
    other errors: said with them, not once they are fixed (the terms' shapes are built for nothing)."""
    errors: list[tuple[tuple, str]] = []
    history = read(lambda: float(spec.history))
    services = read(lambda: list(spec.services))
    for i, s in enumerate([] if services is UNCHECKED else services):
        terms = read(lambda: list(s.load))
        for k, term in enumerate([] if terms is UNCHECKED else terms):
            trace = read(lambda: term.trace)  # built field by field around a field error: not checked
            if isinstance(trace, TraceLoad) and all(getattr(trace, f) is not UNCHECKED for f in TraceLoad.model_fields):
                _checked_shape(term, SIM_EPOCH_S, None, 0.0 if history is UNCHECKED else history, folder,
                               ("spec", "services", i, "load", k), errors)
    return errors


def _compile(doc: ScenarioDocument, file: str, line_of, folder: Path | None = None) -> Scenario:
    spec = doc.spec
    start = SIM_EPOCH_S
    configs, models, names = _expand_services(spec)
    nodes = spec.nodes
    cluster = ClusterConfig(services=tuple(configs), nodes=nodes.count if nodes else None,
                            pods_per_node=nodes.pods_per_node if nodes else None, start_s=start)
    errors: list[tuple[tuple, str]] = []
    warnings = _load_warnings(spec)
    first_copy = {m.name: j for j, m in reversed(list(enumerate(spec.services)))}
    shapes = tuple(_service_shape(m.load, start, spec.seed, c.name, ("spec", "services", first_copy[m.name], "load"),
                                  errors, spec.history, folder, spec.duration, warnings) for c, m in zip(configs, models))
    if errors:
        unique = list(dict.fromkeys(errors))
        raise ScenarioError([FieldError(file, line_of(loc), format_path(loc), msg) for loc, msg in unique])
    faults = tuple(_fault(f, start, names) for f in spec.faults)
    fault_names = tuple(f.name or f"{f.kind}@{f.at:g}s" for f in spec.faults)
    slo = SLO(latency_percentile=float(spec.slo.latency.percentile), latency_s=spec.slo.latency.below,
              error_ratio=spec.slo.error_ratio)
    return Scenario(name=doc.metadata.name, description=doc.metadata.description, file=file, start_s=start,
                    duration_s=spec.duration, tick_s=spec.tick, seed=spec.seed, slo=slo, cluster=cluster, shapes=shapes,
                    faults=faults, fault_names=fault_names, bindings=dict(spec.metrics), metrics_window_s=spec.metrics_window,
                    history_s=spec.history,
                    statefulsets=frozenset(c.name for c, m in zip(configs, models) if m.kind == "StatefulSet"),
                    parallel_statefulsets=frozenset(c.name for c, m in zip(configs, models)
                                                    if m.pod_management_policy == "Parallel"),
                    binding_lines={name: line_of(("spec", "metrics", name)) for name in spec.metrics},
                    warnings=tuple(sorted((FieldError(file, line_of(loc), format_path(loc), msg)
                                           for loc, msg in dict.fromkeys(warnings)), key=lambda w: w.line or 0)))


def load_scenario_text(text: str, file: str = "<text>", seed: int | None = None,
                       folder: str | Path | None = None, lines: str | None = None) -> Scenario:
    """Validate and compile one scenario (``seed`` overrides the file's). Raises ScenarioError
    with every problem found: field errors, then in the same pass the rules across fields on the
    parts that validated and each trace's problems. ``file`` names it in messages; ``folder`` is
    where it was read (its relative trace paths are read there, as kustomize and docker compose
    read theirs); None for a scenario that is no file's: relative to the working directory. The
    scenario's ``warnings``: what is valid but probably not meant (a load event after the end).
    ``lines``: the text whose lines messages give, when ``text`` was rewritten from it (a
    ``--scenario-set`` variant: the same fields, other values, at other lines)."""
    documents, problems = read_documents(text)
    errors = [FieldError(file, p.line, format_path(p.path), p.message) for p in problems]
    present = [d for d in documents if d.data is not None]
    if not present and not problems:
        raise ScenarioError([FieldError(file, None, "", "file is empty: expected a Scenario document")])
    if len(present) > 1:
        errors.append(FieldError(file, present[1].line, "", "a scenario file holds one document, found several"))
    if errors or not present:
        raise ScenarioError(errors)
    yaml_doc = present[0]
    errors += [FieldError(file, p.line, format_path(p.path), p.message) for p in yaml_doc.problems]
    if not isinstance(yaml_doc.data, dict):
        raise ScenarioError(errors + [FieldError(file, yaml_doc.line, "", "expected a Scenario document (a mapping with "
                                                 f"apiVersion, kind, metadata, spec), got {describe_value(yaml_doc.data)}")])
    folder = None if folder is None else Path(folder)
    line_of = yaml_doc.line_of
    if lines is not None:  # a variant: its messages give the lines of the file it was rewritten from
        written = [d for d in read_documents(lines)[0] if d.data is not None]
        line_of = written[0].line_of if written else line_of
    try:
        doc = ScenarioDocument.model_validate(yaml_doc.data)
        spec, found = doc.spec, []
    except ValidationError as exc:
        raw = exc.errors(include_url=False)
        found = validation_problems(raw, ScenarioDocument)
        partial, built = partial_model(ScenarioDocument, yaml_doc.data, error_trie(clean_loc(e["loc"]) for e in raw))
        doc, spec, found = None, read(lambda: partial.spec), found + built
    found += _cross_field_errors(spec, _raw_faults(yaml_doc.data))
    if errors or found:
        found += _trace_errors(spec, folder)
        raise ScenarioError(errors + [FieldError(file, line_of(loc), format_path(loc), msg)
                                      for loc, msg in dict.fromkeys(found)])
    if seed is not None:
        if not 0 <= seed < 2**63:
            raise ScenarioError([FieldError(file, None, "spec.seed", f"--seed must be in [0, 2**63), got {seed}")])
        doc = doc.model_copy(update={"spec": doc.spec.model_copy(update={"seed": int(seed)})})
    return _compile(doc, file, line_of, folder)


def _raw_faults(data: dict) -> object:
    spec = data.get("spec")
    return spec.get("faults") if isinstance(spec, dict) else None


def bundled_scenarios() -> list[Path]:
    return sorted(SCENARIO_FOLDER.glob("*.yaml"))


def resolve_scenario_path(name_or_path: str) -> Path:
    """A file path, or the name of a bundled scenario (``flash-crowd``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = SCENARIO_FOLDER / f"{name_or_path}.yaml"
    if bundled.is_file():  # also when a folder of that name (e.g. an output folder) is in the way
        return bundled
    if path.exists():
        return path
    known = ", ".join(p.stem for p in bundled_scenarios())
    raise ScenarioError([FieldError(name_or_path, None, "", f"no such file, and no bundled scenario of that name "
                                                            f"(bundled: {known})")])


def load_scenario(name_or_path: str | Path, seed: int | None = None) -> Scenario:
    path = resolve_scenario_path(str(name_or_path))
    text, problem = read_yaml_file(path)
    if problem is not None:
        raise ScenarioError([FieldError(str(path), problem.line, "", problem.message)])
    return load_scenario_text(text, str(path), seed, folder=path.parent)
