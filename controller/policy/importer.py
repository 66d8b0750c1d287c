"""HorizontalPodAutoscaler and KEDA ScaledObject manifests -> Setpoint policy YAML (``setpoint import``).

Pure: a manifest as a dict in, a :class:`Converted` (policy name, YAML text, notes) out; reading
files is the caller's (``read_manifests`` works on text already read with the bounded reader).

Every object becomes a ``preset: hpa`` policy: the preset reproduces HPA's algorithm exactly
(proposals, tolerance, stabilization, rate policies, legacy path without ``behavior``). What
cannot be carried over exactly is written as a comment above the policy:

- HPA reads metrics from the metrics APIs; Setpoint reads PromQL. Resource metrics get the
  cAdvisor / kube-state-metrics queries of ``policies/hpa-cpu.yaml`` (ratio of sums, as HPA
  computes utilization); Pods, Object and External metrics get a query on a Prometheus series of
  the same name, which is what prometheus-adapter usually serves: check it.
- minReplicas 0 (HPA alpha, KEDA's default) becomes 1: the preset does not scale to zero.
- KEDA's activationThreshold, cooldownPeriod, fallback and pollingInterval have no equivalent.
- A ScaledObject's policy says how to hand its workload over (delete the ScaledObject, not the HPA
  KEDA re-creates), and warns when deleting it restores the workload's count from before KEDA, and
  when it is paused (no HPA then: a real run scales the held workload at once), and when it scales
  to zero (a workload left at 0 replicas has autoscaling off).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, Overflow, localcontext
from typing import Callable, TypeVar

import yaml

from controller.core.scaling.params import DEFAULT_TOLERANCE
from controller.model import DEFAULT_TARGET_LABELS, WORKLOAD_KINDS
from controller.policy.durations import describe_value, format_duration, format_number
from controller.policy.messages import format_path
from controller.policy.yamlsrc import YamlDocument, read_documents

T = TypeVar("T")

HPA_KIND = "HorizontalPodAutoscaler"
KEDA_KIND = "ScaledObject"
#: API versions read (v2beta2 has v2's fields; an object without apiVersion is read as v2).
HPA_VERSIONS = ("autoscaling/v1", "autoscaling/v2", "autoscaling/v2beta2")
KEDA_VERSION = "keda.sh/v1alpha1"
#: What autoscaling/v1 has no field for, kept in annotations by the API server's v2 -> v1 conversion.
V1_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
V1_BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
HPA_DEFAULT_V1_CPU = 80  # autoscaling/v1 without targetCPUUtilizationPercentage
KEDA_DEFAULT_MIN, KEDA_DEFAULT_MAX = 0, 100
#: A ScaledObject's spec and trigger fields (keda.sh/v1alpha1, KEDA 2.x). Its CRD's schema keeps no
#: unknown field, so kubectl apply refuses a misspelt one as well; read silently it changed the
#: policy (a misspelt minReplicaCount became KEDA's default minimum).
KEDA_SPEC_FIELDS = ("advanced", "cooldownPeriod", "fallback", "idleReplicaCount", "initialCooldownPeriod",
                    "maxReplicaCount", "minReplicaCount", "pollingInterval", "scaleTargetRef", "triggers")
KEDA_TRIGGER_FIELDS = ("authenticationRef", "metadata", "metricType", "name", "type", "useCachedMetrics")
#: The sections below a ScaledObject's spec and triggers, by path (the same CRD schema: KEDA 2.x,
#: fallback.behavior since 2.15). A misspelt field there is refused as above, though Setpoint carries
#: none of these sections over: kubectl apply would refuse the manifest, so it describes no object
#: that runs in a cluster.
KEDA_NESTED_FIELDS = {
    ("scaleTargetRef",): ("apiVersion", "envSourceContainerName", "kind", "name"),
    ("advanced",): ("horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount", "scalingModifiers"),
    ("advanced", "horizontalPodAutoscalerConfig"): ("behavior", "name"),
    ("advanced", "scalingModifiers"): ("activationTarget", "formula", "metricType", "target"),
    ("fallback",): ("behavior", "failureThreshold", "replicas"),
}
KEDA_AUTHENTICATION_REF_FIELDS = ("kind", "name")
#: KEDA's fallback: the fields its CRD requires, and the behaviors it takes (the first is the default).
KEDA_FALLBACK_REQUIRED = ("failureThreshold", "replicas")
KEDA_FALLBACK_BEHAVIORS = ("static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower")
#: Annotations that pause a ScaledObject: KEDA deletes its HPA while paused (paused-replicas: after
#: scaling the workload to that count), so no HPA tells setpoint run to leave the workload alone.
KEDA_PAUSE_ANNOTATIONS = ("autoscaling.keda.sh/paused-replicas", "autoscaling.keda.sh/paused")

# How a pod name maps to its workload (the label Setpoint's Prometheus adapter matches on).
_POD_PATTERN = {"Deployment": "(.+)-[a-z0-9]+-[a-z0-9]{5}", "StatefulSet": "(.+)-[0-9]+"}
def _live_pods(series: str) -> str:
    """``series`` without the pods being deleted (kube-state-metrics' kube_pod_deletion_timestamp,
    there from the DELETE until the object is gone): HPA's resource metrics leave deleted pods out,
    where a sum over them counted a terminating pod's request (and its usage through its grace), so
    utilization read low through every scale-down and rollout."""
    return f"({series} unless on (namespace, pod) kube_pod_deletion_timestamp)"


_USAGE = {"cpu": "rate(container_cpu_usage_seconds_total{%s}[2m])",
          "memory": "container_memory_working_set_bytes{%s}"}
# Kubernetes' quantity grammar: a signed decimal (``5``, ``5.``, ``.5``, ``1e3``) and a suffix.
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {None: Decimal(1), "m": Decimal("1e-3"), "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
           "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"), "Ki": Decimal(2 ** 10),
           "Mi": Decimal(2 ** 20), "Gi": Decimal(2 ** 30), "Ti": Decimal(2 ** 40), "Pi": Decimal(2 ** 50),
           "Ei": Decimal(2 ** 60)}


class ConversionProblem(Exception):
    """An object cannot be converted; ``path`` is the field (tuple of keys and indexes) at fault."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message

    @property
    def problems(self) -> list[ConversionProblem]:
        """Every problem of the object: this one alone (:class:`ConversionProblems` holds several)."""
        return [self]


class ConversionProblems(ConversionProblem):
    """Every problem found in one object (several fields at fault); ``path`` and ``message`` are
    the first one's, in the order the object is read, so a caller that says one says the first."""

    def __init__(self, problems: list[ConversionProblem]):
        super().__init__(problems[0].path, problems[0].message)
        self._problems = list(problems)

    @property
    def problems(self) -> list[ConversionProblem]:
        return list(self._problems)


@dataclass
class Converted:
    """One policy: its name, the YAML text (comments included) and the differences noted."""

    name: str
    text: str
    notes: list[str] = field(default_factory=list)
    source: str = ""  # "HorizontalPodAutoscaler ns/name"
    #: notes that must reach the person (stderr) too: (the field of the object it is about, the note)
    warnings: list[tuple[tuple, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Manifest:
    """One object found in the input: its data, the field path to it (for ``kind: List``) and its document."""

    data: dict
    prefix: tuple
    document: YamlDocument


def read_manifests(text: str) -> tuple[list[Manifest], list[tuple[int | None, tuple, str]]]:
    """Every HPA / ScaledObject in a YAML stream (``kind: List`` items expanded) and the problems
    found as (line, path, message): YAML errors, and documents of other kinds."""
    documents, problems = read_documents(text)
    found: list[Manifest] = []
    out = [(p.line, p.path, p.message) for p in problems]
    for document in documents:
        out += [(p.line, p.path, p.message) for p in document.problems]
        data = document.data
        if data is None:
            continue
        if isinstance(data, dict) and isinstance(data.get("items"), list) and str(data.get("kind", "")).endswith("List"):
            objects = [(item, ("items", i)) for i, item in enumerate(data["items"])]
        else:
            objects = [(data, ())]
        for obj, prefix in objects:
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind in (HPA_KIND, KEDA_KIND):
                found.append(Manifest(obj, prefix, document))
            else:
                out.append((document.line_of(prefix), prefix, f"skipped: expected kind {HPA_KIND} or "
                                                                f"{KEDA_KIND}, got {describe_value(kind)}"))
    return found, out


def convert(obj: dict, name: str | None = None, kedas: bool = False) -> Converted:
    """One HPA (autoscaling/v1 or v2) or KEDA ScaledObject -> one Setpoint policy.

    ``name`` overrides the policy name (the object's name by default); ``kedas``: convert an HPA
    KEDA made too (sim serve runs every HPA, as kube-controller-manager does; an import refuses
    it). Raises ConversionProblem.
    """
    kind = obj.get("kind")
    if kind == HPA_KIND:
        conversion = _Conversion(obj, name)
        return conversion._whole(lambda: conversion.hpa(kedas))
    if kind == KEDA_KIND:
        conversion = _Conversion(obj, name)
        return conversion._whole(conversion.keda)
    raise ConversionProblem(("kind",), f"expected {HPA_KIND} or {KEDA_KIND}, got {describe_value(kind)}")


def v1_fields(obj: dict) -> bool:
    """Whether the HPA ``obj`` is read with autoscaling/v1's fields (targetCPUUtilizationPercentage)."""
    spec = obj.get("spec")
    return obj.get("apiVersion") == "autoscaling/v1" or (isinstance(spec, dict)
                                                         and "targetCPUUtilizationPercentage" in spec)


def join_policies(converted: list[Converted]) -> str:
    return "---\n".join(c.text for c in converted)


# ------------------------------------------------------------------------------------------------

def _dict(obj: dict, path: tuple, at: tuple = (), required: bool = False) -> dict:
    """The mapping at ``path`` in ``obj``, which is at ``at`` in the manifest (errors name
    ``at + path``): {} when absent or null, unless ``required``."""
    value = obj
    for i, key in enumerate(path):
        value = value.get(key) if isinstance(value, dict) else None
        if value is None and required:
            raise ConversionProblem(at + path[:i + 1], "required field is missing")
    return {} if value is None else _mapping(value, at + path)


def _mapping(value: object, path: tuple) -> dict:
    """``value``, the field at ``path``, which must be a mapping."""
    if not isinstance(value, dict):
        raise ConversionProblem(path, f"expected a mapping, got {describe_value(value)}")
    return value


#: The fields the Kubernetes API defines at each place of an HPA (autoscaling/v2 and v2beta2; v1's
#: spec): any other field is refused by name, as ``kubectl apply`` refuses it, instead of being
#: dropped unseen (a misspelt ``stabilizationWindowSecond`` or ``scaleup`` changes what HPA does).
_HPA_SPEC_FIELDS = ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior")
_HPA_V1_SPEC_FIELDS = ("scaleTargetRef", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage")
_SCALE_TARGET_FIELDS = ("apiVersion", "kind", "name")
_METRIC_SOURCE_FIELDS = {"Resource": ("name", "target"), "ContainerResource": ("name", "container", "target"),
                         "Pods": ("metric", "target"), "External": ("metric", "target"),
                         "Object": ("describedObject", "metric", "target")}
_METRIC_TARGET_FIELDS = ("type", "averageUtilization", "averageValue", "value")
_METRIC_ID_FIELDS = ("name", "selector")
_SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
_DESCRIBED_OBJECT_FIELDS = ("apiVersion", "kind", "name")
_BEHAVIOR_FIELDS = ("scaleUp", "scaleDown")
_RULES_FIELDS = ("stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance")
_RATE_POLICY_FIELDS = ("type", "value", "periodSeconds")


def _known_fields(value: dict, path: tuple, allowed: tuple[str, ...]) -> None:
    """Raise ConversionProblem at the first key of ``value`` not in ``allowed``, in sorted order
    (not the file's: the same keys in another order get the same error), naming the others."""
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        others = f" (and {', '.join(map(describe_value, unknown[1:]))})" if unknown[1:] else ""
        raise ConversionProblem(path + (unknown[0],), f"unknown field (kubectl apply refuses it too): expected "
                                                      f"{', '.join(allowed[:-1])} or {allowed[-1]}, "
                                                      f"got {describe_value(unknown[0])}{others}")


def _section(spec: dict, section: tuple) -> dict:
    """The mapping at ``spec``'s ``section`` path ({} where absent; ConversionProblem where not a mapping)."""
    value = spec
    for depth, key in enumerate(section):
        value = _dict(value, (key,), ("spec",) + section[:depth])
    return value


def _keda_fallback(spec: dict) -> dict:
    """A ScaledObject's spec.fallback ({} where absent), checked as KEDA's CRD checks it: kubectl
    apply refuses one without failureThreshold or replicas, or with another behavior, so such a
    manifest describes no object that runs (the fallback itself is not carried over)."""
    fallback = _dict(spec, ("fallback",), ("spec",))
    if not fallback:
        return {}
    for key in KEDA_FALLBACK_REQUIRED:
        value = fallback.get(key)
        if value is None:
            raise ConversionProblem(("spec", "fallback", key), "required field is missing (kubectl apply refuses the "
                                                               "ScaledObject too)")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConversionProblem(("spec", "fallback", key), f"expected a whole number >= 0, got {_integer_said(value)}")
    behavior = fallback.get("behavior", KEDA_FALLBACK_BEHAVIORS[0])
    if behavior not in KEDA_FALLBACK_BEHAVIORS:
        raise ConversionProblem(("spec", "fallback", "behavior"), f"expected {', '.join(KEDA_FALLBACK_BEHAVIORS[:-1])} "
                                                                  f"or {KEDA_FALLBACK_BEHAVIORS[-1]}, got "
                                                                  f"{describe_value(behavior)}")
    _fallback_has_a_scaler(spec)
    return fallback


def _fallback_has_a_scaler(spec: dict) -> None:
    """KEDA's fallback stands in for a scaler's failed reads, and cpu and memory triggers have no
    scaler of KEDA's (the HPA reads metrics-server): with only those, KEDA's admission webhook
    refuses the ScaledObject (every KEDA 2.x: "fallback ... not supported by the CPU & memory
    scalers"), so the manifest describes no object that runs."""
    types = [t.get("type") for t in spec.get("triggers") or [] if isinstance(t, dict)]
    if types and all(kind in ("cpu", "memory") for kind in types):
        raise ConversionProblem(("spec", "fallback"), f"KEDA's admission webhook refuses a fallback when every "
                                                      f"trigger is cpu or memory (here: {', '.join(types)}; KEDA "
                                                      f"has no scaler of its own to fall back from there): remove "
                                                      f"spec.fallback, which is not carried over anyway")


def _integer_said(value: object) -> str:
    """describe_value for a field that takes an integer: 5.0 with its point (not 5, which it refuses)."""
    return repr(value) if isinstance(value, float) and value.is_integer() else describe_value(value)


def _text(mapping: dict, key: str, path: tuple, what: str = "") -> str:
    """``mapping[key]``, a required non-empty string (``path``: the key's field; ``what`` it names)."""
    value = mapping.get(key)
    if value is None or value == "":
        raise ConversionProblem(path, "required field is missing" + (f": {what}" if what else ""))
    if not isinstance(value, str):
        raise ConversionProblem(path, f"expected a string, got {describe_value(value)}")
    return value


def dns_label(text: str) -> str:
    """``text`` as a DNS-1123 label (a policy name): lowercase, other characters as ``-``."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "imported"


def _identifier(text: str, taken: set[str]) -> str:
    ident = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_-") or "metric"
    if not ident[0].isalpha():
        ident = "m_" + ident
    ident = ident[:60]
    base, i = ident, 2
    while ident in taken:
        ident, i = f"{base}{i}", i + 1
    taken.add(ident)
    return ident


def parse_quantity(value: object, path: tuple) -> float:
    """A Kubernetes quantity (``500m``, ``1k``, ``256Mi``, ``10``) -> the nearest float to its exact
    value (``1100m`` is 1.1, as ``1.1`` is). Not a quantity, or beyond a float: ConversionProblem."""
    number = None
    with localcontext() as exact:  # wide enough for any quantity a float holds; beyond it: Infinity
        exact.prec, exact.Emax, exact.Emin, exact.traps[Overflow] = 60, 10 ** 6, -10 ** 6, False
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = Decimal(value)
        elif isinstance(value, str) and (match := _QUANTITY.match(value.strip())):
            number = Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    if number is None or not math.isfinite(float(number)):
        raise ConversionProblem(path, f"expected a quantity such as 500m, 1k or 256Mi, got {describe_value(value)}")
    return float(number)


def _promql_regex(name: str) -> str:
    """A DNS name as a literal inside a PromQL regex string: ``.`` escaped (``\\.`` in the string)."""
    return name.replace(".", "\\\\.")


def _labels(pairs: dict) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in pairs.items())


def _selector(obj: dict, path: tuple, notes: list[str], where: tuple = (), metric: str = "") -> dict:
    """``obj``'s label selector at ``path`` as {label: value}; matchExpressions are noted, named at
    their field in the object (``where``, the path to ``obj``) and by ``metric``."""
    selector = _dict(obj, path, where)
    if selector.get("matchExpressions"):
        notes.append(f"metric {metric}: {format_path(where + path + ('matchExpressions',))} is not carried into "
                     f"the query, which reads every series of the metric: add the matching label filters by hand")
    labels = _dict(selector, ("matchLabels",), where + path)
    labels = {str(k): labels[k] for k in sorted(labels, key=str)}  # the query's matchers in one order
    for key, value in labels.items():
        if not isinstance(value, str):  # a label value is a string (kubectl apply refuses another value)
            raise ConversionProblem(where + path + ("matchLabels", key),
                                    f"expected a label value (a string), got {describe_value(value)}")
    return labels


class _Conversion:
    """One object's conversion. Each part that reads on its own (a field, a metric, a rate policy)
    keeps its problem in ``problems`` and the conversion goes on with a stand-in, so that every
    field at fault is said in one run; the object is refused with all of them at the end."""

    def __init__(self, obj: dict, name: str | None):
        self.obj = obj
        self.problems: list[ConversionProblem] = []
        meta = self._kept(lambda: _dict(obj, ("metadata",), required=True), None)
        # the name is required even where another is given (two objects of one name); not asked
        # again where metadata itself is missing or not a mapping
        self.own_name = self._kept(lambda: dns_label(_text(meta, "name", ("metadata", "name"))), "imported") \
            if meta is not None else "imported"
        meta = meta or {}
        self.object_name = meta.get("name")
        self.name = name or self.own_name
        self.namespace = meta.get("namespace") or "default"
        self.notes: list[str] = []
        self.warnings: list[tuple[tuple, str]] = []  # (field, note): said on stderr too (a harm at the cut-over)
        if not meta.get("namespace"):
            self.notes.append('metadata.namespace is not set (helm template leaves it out), so this policy and its '
                              'queries use namespace default, as kubectl apply without -n in a default context '
                              'would: change each namespace="default" below if the object runs elsewhere')
        self.metric_names: set[str] = set()

    def _kept(self, check: Callable[[], T], stand_in: T) -> T:
        """``check()``; where it raises ConversionProblem, the problem is kept and ``stand_in``
        returned, for the rest of the object to be read (and its other problems found)."""
        try:
            return check()
        except ConversionProblem as problem:
            self.problems += problem.problems
            return stand_in

    def _whole(self, convert_object: Callable[[], Converted]) -> Converted:
        """``convert_object()``, refused with every problem kept on the way: raises ConversionProblem
        (ConversionProblems for several, in the order read, each field once)."""
        converted = self._kept(convert_object, None)  # a raise: what follows did not read (spec not a mapping)
        said = {(p.path, p.message): p for p in self.problems}  # a field read twice (as a section, then its keys)
        problems = list(said.values())
        if problems:
            raise problems[0] if len(problems) == 1 else ConversionProblems(problems)
        return converted

    # -- the target ------------------------------------------------------------------------
    def _target(self, path: tuple) -> tuple[str, str]:
        ref = _dict(self.obj, path, required=True)
        kind = ref.get("kind", "Deployment")
        name = _text(ref, "name", path + ("name",), "the workload to scale")
        if kind not in WORKLOAD_KINDS:
            raise ConversionProblem(path + ("kind",), f"Setpoint scales Deployment or StatefulSet, got "
                                                      f"{describe_value(kind)}: scale the workload behind it instead")
        return kind, name

    def _replicas(self, low, high, low_path: tuple, high_path: tuple, low_default: int) -> tuple[int, int]:
        """(min, max) replicas; a problem of either is kept, and (1, 1) stands in."""
        low = low_default if low is None else low
        counted = True
        for value, path in ((low, low_path), (high, high_path)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                self.problems.append(ConversionProblem(path, f"expected a replica count, got {_integer_said(value)}"))
                counted = False
        if not counted:
            return 1, 1
        if low < 1:
            self.notes.append(f"min replicas {low} (scale to zero) becomes 1: preset: hpa does not scale to zero")
            low = 1
        if high < low:
            self.problems.append(ConversionProblem(high_path, f"must be >= min replicas ({low}), got {high}"))
        return low, high

    # -- queries -----------------------------------------------------------------------------
    @staticmethod
    def _by_workload(kind: str, inner: str) -> str:
        """``inner`` summed per workload, its name taken from the pod label into its kind's label
        (``deployment``, a StatefulSet's ``statefulset``: kube-state-metrics' labels), the one
        `setpoint run` matches a target of that kind by (--target-labels)."""
        ns_label, name_label = DEFAULT_TARGET_LABELS.for_kind(kind)
        return (f'sum by ({ns_label}, {name_label}) (label_replace({inner}, "{name_label}", "$1", "pod", '
                f'"{_POD_PATTERN[kind]}"))')

    def _usage_matchers(self, workload: str, container: str | None) -> str:
        """The label matchers of the workload's pods' usage series (one container's, or every container's)."""
        return (f'namespace="{self.namespace}", pod=~"{_promql_regex(workload)}-.*", '
                + (f'container="{container}"' if container else 'container!=""'))

    def _resource_query(self, kind: str, workload: str, resource: object, container: str | None,
                        utilization: bool, path: tuple) -> str:
        if not isinstance(resource, str) or resource not in _USAGE:
            raise ConversionProblem(path, f"expected resource cpu or memory, got {describe_value(resource)}")
        pods = f'pod=~"{_promql_regex(workload)}-.*"'
        usage = self._by_workload(kind, _live_pods(_USAGE[resource] % self._usage_matchers(workload, container)))
        if not utilization:
            return usage
        requests = self._by_workload(kind, _live_pods(f'kube_pod_container_resource_requests{{namespace='
                                                                f'"{self.namespace}", {pods}, resource="{resource}"'
                                                                + (f', container="{container}"' if container else '')
                                                                + '}'))
        return f"100 * {usage} / {requests}"

    def _per_workload_note(self, name: str, resource: str, workload: str, container: str | None,
                           utilization: bool) -> str:
        """What a Resource metric's imported query (one value per workload) loses of HPA's pod-by-pod
        reading, and the query that keeps it (an AverageValue one's, written out)."""
        # HPA leaves out a not-yet-Ready pod's sample for cpu only; for memory, a Pending pod's
        held_out = "not-yet-Ready" if resource == "cpu" else "Pending"
        live = "(live runs only: a backtest reads workload series)"
        if utilization:
            return (f"metric {name}: one {resource} value per workload (a ratio of sums), which every pod stands "
                    f"for: HPA's pod-by-pod handling of missing and {held_out} pods needs the query by (namespace, "
                    f"pod) {live}")
        by_pod = f"sum by (namespace, pod) ({_USAGE[resource] % self._usage_matchers(workload, container)})"
        return (f"metric {name}: the workload's {resource} total, over its replicas (as an External AverageValue); "
                f"HPA's AverageValue is the mean of the pods with a sample, with its handling of missing and "
                f"{held_out} pods: preset: hpa reads it so with the query {by_pod} {live}")

    # -- one HPA metric ------------------------------------------------------------------------
    def _hpa_metric(self, spec: dict, path: tuple, kind: str, workload: str) -> dict:
        """One HPA metric (``spec``, at ``path``) as a policy metric; the problems of its source
        and of its target are kept apart (a raise: the metric does not read at all)."""
        mtype = spec.get("type")
        if mtype in ("Resource", "ContainerResource"):
            key = "resource" if mtype == "Resource" else "containerResource"
            self._kept(lambda: _known_fields(spec, path, ("type", key)), None)
            source = _dict(spec, (key,), path, required=True)
            self._kept(lambda: _known_fields(source, path + (key,), _METRIC_SOURCE_FIELDS[mtype]), None)
            resource = source.get("name")
            container = self._kept(lambda: _text(source, "container", path + (key, "container")), "-") \
                if mtype == "ContainerResource" else None
            target = self._kept(lambda: _dict(source, ("target",), path + (key,), required=True), None)
            out = {} if target is None else self._kept(lambda: self._resource_target(target, path + (key, "target"),
                                                                                     mtype), {})
            utilization = target is not None and target.get("type") == "Utilization"
            query = self._kept(lambda: self._resource_query(kind, workload, resource, container, utilization,
                                                            path + (key, "name")), "")
            name = f"{resource}" if not container else f"{container}-{resource}"
            if query:
                self.notes.append(self._per_workload_note(name, resource, workload, container, utilization))
            if mtype == "ContainerResource":
                self.notes.append(f"metric {name}: ContainerResource ({resource} of container {container} only) is "
                                  f"read from cAdvisor and kube-state-metrics series filtered on container=\"{container}\"")
            # the resource, so that preset: hpa leaves out a starting pod's sample only for cpu, as HPA does
            return {"name": _identifier(name, self.metric_names), "query": query, "target": out, "resource": resource}
        if mtype in ("Pods", "Object", "External"):
            key = mtype.lower()
            self._kept(lambda: _known_fields(spec, path, ("type", key)), None)
            source = _dict(spec, (key,), path, required=True)
            self._kept(lambda: _known_fields(source, path + (key,), _METRIC_SOURCE_FIELDS[mtype]), None)
            # the metric's name and selector, then its target: each read (and refused) on its own
            mname, selector = self._kept(lambda: self._metric_id(source, path + (key,)), ("-", {}))
            out = self._kept(lambda: self._value_target(source, path + (key,), mtype), {})
            series = re.sub(r"[^A-Za-z0-9_:]", "_", mname)
            if mtype == "Pods":
                where = _labels({"namespace": self.namespace, **selector})
                query = self._by_workload(kind, f"{series}{{{where}}}")
                self.notes.append(f"metric {mname}: a Pods metric from the custom metrics API, read here as the "
                                  f"Prometheus series {series} summed over the workload's pods: check the query")
            elif mtype == "Object":
                okind, oname = self._kept(lambda: self._described_object(source, path + (key,)), ("-", "-"))
                where = _labels({"namespace": self.namespace, okind.lower(): oname, **selector})
                query = f"sum({series}{{{where}}})"
                self.notes.append(f"metric {mname}: an Object metric of {okind} {oname}, read here as the Prometheus "
                                  f"series {series} with label {okind.lower()}=\"{oname}\": check the query")
            else:
                query = f"sum({series}{{{_labels(selector)}}})" if selector else f"sum({series})"
                self.notes.append(f"metric {mname}: an External metric has no query in the HPA; read here as the "
                                  f"Prometheus series {series}: replace the query with the one the external "
                                  f"metrics adapter runs")
            return {"name": _identifier(mname, self.metric_names), "query": query, "target": out}
        raise ConversionProblem(path + ("type",), f"expected Resource, ContainerResource, Pods, Object or External, "
                                                  f"got {describe_value(mtype)}")

    def _metric_id(self, source: dict, path: tuple) -> tuple[str, dict]:
        """(name, matchLabels) of a Pods, Object or External metric's ``metric`` (``source`` at ``path``)."""
        metric = _dict(source, ("metric",), path, required=True)
        _known_fields(metric, path + ("metric",), _METRIC_ID_FIELDS)
        _known_fields(_dict(metric, ("selector",), path + ("metric",)), path + ("metric", "selector"), _SELECTOR_FIELDS)
        mname = _text(metric, "name", path + ("metric", "name"))
        return mname, _selector(source, ("metric", "selector"), self.notes, path, mname)

    def _value_target(self, source: dict, path: tuple, mtype: str) -> dict:
        """A Pods, Object or External metric's ``target`` (``source`` at ``path``) as a policy target."""
        target = _dict(source, ("target",), path, required=True)
        self._kept(lambda: _known_fields(target, path + ("target",), _METRIC_TARGET_FIELDS), None)
        ttype = target.get("type")
        if ttype == "AverageValue":
            return {"averagePerReplica": parse_quantity(target.get("averageValue"), path + ("target", "averageValue"))}
        if ttype == "Value" and mtype != "Pods":
            return {"value": parse_quantity(target.get("value"), path + ("target", "value"))}
        allowed = "AverageValue" if mtype == "Pods" else "Value or AverageValue"
        raise ConversionProblem(path + ("target", "type"),
                                f"expected {allowed} for a {mtype} metric, got {describe_value(ttype)}")

    @staticmethod
    def _described_object(source: dict, path: tuple) -> tuple[str, str]:
        """(kind, name) of an Object metric's ``describedObject`` (``source`` at ``path``)."""
        described = _dict(source, ("describedObject",), path, required=True)
        _known_fields(described, path + ("describedObject",), _DESCRIBED_OBJECT_FIELDS)
        return (_text(described, "kind", path + ("describedObject", "kind")),
                _text(described, "name", path + ("describedObject", "name")))

    def _resource_target(self, target: dict, path: tuple, mtype: str) -> dict:
        """A Resource or ContainerResource metric's ``target`` (at ``path``) as a policy target."""
        self._kept(lambda: _known_fields(target, path, _METRIC_TARGET_FIELDS), None)
        ttype = target.get("type")
        if ttype == "Utilization":
            value = self._number(target.get("averageUtilization"), path + ("averageUtilization",))
            return {"utilization": f"{format_number(value)}%"}
        if ttype == "AverageValue":
            return {"averagePerReplica": parse_quantity(target.get("averageValue"), path + ("averageValue",))}
        raise ConversionProblem(path + ("type",), f"expected Utilization or AverageValue for a {mtype} metric, "
                                                  f"got {describe_value(ttype)}")

    @staticmethod
    def _number(value: object, path: tuple) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf:
            return float(min(value, 10 ** 300))  # the policy rules refuse a percentage this large, by its field
        raise ConversionProblem(path, f"expected a positive number, got {describe_value(value)}")

    # -- behavior --------------------------------------------------------------------------------
    def _behavior(self, behavior: dict, path: tuple) -> tuple[dict, dict]:
        """(Setpoint behavior, tolerance) from HPA behavior; each field's problem is kept."""
        out: dict = {}
        tolerance: dict = {}
        self._kept(lambda: _known_fields(behavior, path, _BEHAVIOR_FIELDS), None)
        for direction in ("scaleUp", "scaleDown"):
            rules = self._kept(lambda d=direction: _dict(behavior, (d,), path), {})
            if direction not in behavior:
                continue
            here = path + (direction,)
            self._kept(lambda h=here, r=rules: _known_fields(r, h, _RULES_FIELDS), None)
            one: dict = {}
            if rules.get("stabilizationWindowSeconds") is not None:
                window = rules["stabilizationWindowSeconds"]
                if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 3600:
                    self.problems.append(ConversionProblem(here + ("stabilizationWindowSeconds",),
                                                           f"expected 0..3600 seconds, got {_integer_said(window)}"))
                else:
                    one["stabilizationWindow"] = format_duration(window)
            if rules.get("selectPolicy") is not None:
                if rules["selectPolicy"] not in ("Max", "Min", "Disabled"):
                    self.problems.append(ConversionProblem(here + ("selectPolicy",),
                                                           f"expected Max, Min or Disabled, "
                                                           f"got {describe_value(rules['selectPolicy'])}"))
                else:
                    one["selectPolicy"] = rules["selectPolicy"]
            if rules.get("policies") is not None:
                policies = rules["policies"]
                if not isinstance(policies, list) or not policies:
                    self.problems.append(ConversionProblem(here + ("policies",), "expected a non-empty list"))
                else:
                    one["policies"] = [self._kept(lambda p=p, at=here + ("policies", i): self._rate_policy(p, at), {})
                                       for i, p in enumerate(policies)]
            if rules.get("tolerance") is not None:  # Kubernetes 1.33+ (HPAConfigurableTolerance)
                tolerance["up" if direction == "scaleUp" else "down"] = self._kept(
                    lambda h=here, r=rules: parse_quantity(r["tolerance"], h + ("tolerance",)), DEFAULT_TOLERANCE)
            out[direction] = one
        return out, tolerance

    def _rate_policy(self, policy: object, path: tuple) -> dict:
        """One HPA rate policy {type, value, periodSeconds}; each field's problem is kept."""
        if not isinstance(policy, dict):
            raise ConversionProblem(path, "expected a mapping {type, value, periodSeconds}")
        self._kept(lambda: _known_fields(policy, path, _RATE_POLICY_FIELDS), None)
        bad_type = policy.get("type") not in ("Pods", "Percent")
        if bad_type:
            self.problems.append(ConversionProblem(path + ("type",), f"expected Pods or Percent, "
                                                                     f"got {describe_value(policy.get('type'))}"))
        value, period = policy.get("value"), policy.get("periodSeconds")
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            self.problems.append(ConversionProblem(path + ("value",),
                                                   f"expected a positive integer, got {_integer_said(value)}"))
        if not isinstance(period, int) or isinstance(period, bool) or not 0 < period <= 1800:
            self.problems.append(ConversionProblem(path + ("periodSeconds",),
                                                   f"expected 1..1800 seconds, got {_integer_said(period)}"))
            return {}
        if bad_type:  # its problem is kept: the other fields were checked, nothing to convert
            return {}
        return {"type": policy["type"], "value": value, "period": format_duration(period)}

    # -- whole objects -----------------------------------------------------------------------------
    def hpa(self, kedas: bool = False) -> Converted:
        """The policy of an HPA; each problem of a part that reads on its own is kept (``_kept``)."""
        obj = self.obj
        spec = _dict(obj, ("spec",), required=True)
        version = str(obj.get("apiVersion", "autoscaling/v2"))
        if version == "autoscaling/v2beta1":
            raise ConversionProblem(("apiVersion",), "autoscaling/v2beta1 is not read (its metric fields differ): "
                                                     "read the HPA back as v2 with kubectl get hpa NAME -o yaml, "
                                                     "or convert it to autoscaling/v2")
        if version not in HPA_VERSIONS:  # another API's fields would be read as v2's
            raise ConversionProblem(("apiVersion",), f"expected {', '.join(HPA_VERSIONS[:-1])} or {HPA_VERSIONS[-1]}, "
                                                     f"got {describe_value(obj.get('apiVersion'))}")
        v1_shape = v1_fields(obj)
        self._kept(lambda: _known_fields(spec, ("spec",), _HPA_V1_SPEC_FIELDS if v1_shape else _HPA_SPEC_FIELDS), None)
        self._kept(lambda: _known_fields(_dict(spec, ("scaleTargetRef",), ("spec",)), ("spec", "scaleTargetRef"),
                                         _SCALE_TARGET_FIELDS), None)
        if version == "autoscaling/v1":
            self._kept(self._v1_annotations, None)
        if not kedas:
            self._kept(self._not_kedas, None)
        kind, workload = self._kept(lambda: self._target(("spec", "scaleTargetRef")), ("Deployment", "-"))
        low, high = self._replicas(spec.get("minReplicas"), spec.get("maxReplicas"), ("spec", "minReplicas"),
                                   ("spec", "maxReplicas"), 1)
        if spec.get("minReplicas") == 0:  # HPAScaleToZero (alpha): the same cut-over as KEDA's idle workload
            self._warn_stays_at_zero("minReplicas", "the HPA has", kind, workload)
        if v1_shape:
            percent = spec.get("targetCPUUtilizationPercentage", HPA_DEFAULT_V1_CPU)
            # named at v1's own field (then not again at the metric made from it)
            percent = self._kept(lambda: self._number(percent, ("spec", "targetCPUUtilizationPercentage")),
                                 HPA_DEFAULT_V1_CPU)
            metrics_in = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": percent}}}]
            paths = [("spec", "targetCPUUtilizationPercentage")]
        else:
            metrics_in = spec.get("metrics")
            if metrics_in is None:  # autoscaling/v2 default: 80 % CPU
                metrics_in = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": HPA_DEFAULT_V1_CPU}}}]
            if not isinstance(metrics_in, list) or not metrics_in:
                self.problems.append(ConversionProblem(("spec", "metrics"), "expected a non-empty list of metrics"))
                metrics_in = []
            paths = [("spec", "metrics", i) for i in range(len(metrics_in))]
        metrics = [self._kept(lambda m=m, p=p: self._hpa_metric(_mapping(m, p), p, kind, workload), {})
                   for m, p in zip(metrics_in, paths)]
        scaling: dict = {"metrics": metrics}
        if "behavior" in spec and spec["behavior"] is not None:
            behavior, tolerance = self._kept(lambda: self._behavior(_dict(spec, ("behavior",), ("spec",)),
                                                                    ("spec", "behavior")), ({}, {}))
            if tolerance:
                scaling["tolerance"] = {"up": tolerance.get("up", DEFAULT_TOLERANCE),
                                        "down": tolerance.get("down", DEFAULT_TOLERANCE)}
            scaling["behavior"] = behavior
        source = f"{HPA_KIND} {self.namespace}/{self.object_name} ({version})"
        return self._render(source, kind, workload, low, high, 15.0, scaling)

    def _not_kedas(self) -> None:
        """Refuse an HPA KEDA made for a ScaledObject (its controller ownerReference), as kubectl get
        hpa -A lists it: its External metrics (s0-prometheus) are KEDA's adapter's, not queries, and
        KEDA re-creates it when deleted; the ScaledObject is what imports and what is deleted."""
        owners = _dict(self.obj, ("metadata",)).get("ownerReferences")
        for i, owner in enumerate(owners if isinstance(owners, list) else ()):
            if isinstance(owner, dict) and owner.get("kind") == KEDA_KIND and owner.get("controller"):
                name = owner.get("name")
                raise ConversionProblem(("metadata", "ownerReferences", i, "kind"), (
                    f"this HPA is KEDA's, made for ScaledObject {describe_value(name)}: import the ScaledObject "
                    f"instead (kubectl get scaledobject {name} -n {self.namespace} -o yaml | setpoint import -)"))

    def _v1_annotations(self) -> None:
        """autoscaling/v1 holds what v1 has no field for in annotations (the API server writes them
        when an HPA made as v2 is read as v1): its other metrics and its behavior. Refused by name:
        read as v1 alone, the policy would scale on CPU only, with the default behavior."""
        annotations = _dict(self.obj, ("metadata", "annotations"))
        for what, key in (("metrics", V1_METRICS_ANNOTATION), ("behavior", V1_BEHAVIOR_ANNOTATION)):
            if annotations.get(key) is not None:
                raise ConversionProblem(("metadata", "annotations", key),
                                        f"this autoscaling/v1 HPA keeps its {what} in this annotation, which is not "
                                        f"read: read it back as v2 (kubectl get hpa.v2.autoscaling NAME -o yaml) "
                                        f"and import that")

    def keda(self) -> Converted:
        obj = self.obj
        version = obj.get("apiVersion", KEDA_VERSION)
        if version != KEDA_VERSION:
            raise ConversionProblem(("apiVersion",), f"expected {KEDA_VERSION}, got {describe_value(version)}")
        spec = _dict(obj, ("spec",), required=True)
        self._kept(lambda: _known_fields(spec, ("spec",), KEDA_SPEC_FIELDS), None)
        for section, allowed in KEDA_NESTED_FIELDS.items():
            self._kept(lambda s=section, a=allowed: _known_fields(_section(spec, s), ("spec",) + s, a), None)
        kind, workload = self._kept(lambda: self._target(("spec", "scaleTargetRef")), ("Deployment", "-"))
        low, high = self._replicas(spec.get("minReplicaCount"), spec.get("maxReplicaCount", KEDA_DEFAULT_MAX),
                                   ("spec", "minReplicaCount"), ("spec", "maxReplicaCount"), KEDA_DEFAULT_MIN)
        triggers = spec.get("triggers")
        if not isinstance(triggers, list) or not triggers:
            self.problems.append(ConversionProblem(("spec", "triggers"), "expected a non-empty list of triggers"))
            triggers = []
        metrics = [self._kept(lambda t=t, at=("spec", "triggers", i): self._keda_trigger(_mapping(t, at), at, kind,
                                                                                          workload), {})
                   for i, t in enumerate(triggers)]
        scaling: dict = {"metrics": metrics}
        advanced = self._kept(lambda: _dict(spec, ("advanced",), ("spec",)), {})
        hpa_config = self._kept(lambda: _dict(advanced, ("horizontalPodAutoscalerConfig",), ("spec", "advanced")), {})
        if hpa_config.get("behavior") is not None:
            behavior, tolerance = self._kept(lambda: self._behavior(
                _dict(hpa_config, ("behavior",), ("spec", "advanced", "horizontalPodAutoscalerConfig")),
                ("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior")), ({}, {}))
            if tolerance:
                scaling["tolerance"] = {"up": tolerance.get("up", DEFAULT_TOLERANCE),
                                        "down": tolerance.get("down", DEFAULT_TOLERANCE)}
            scaling["behavior"] = behavior
        if advanced.get("scalingModifiers"):
            self.notes.append("advanced.scalingModifiers (a formula over triggers) is not carried over: each trigger "
                              "is its own metric and the largest proposal wins, as in HPA")
        fallback = self._kept(lambda: _keda_fallback(spec), {})
        if fallback:
            self.notes.append(f"fallback (KEDA's {fallback['replicas']} replicas after {fallback['failureThreshold']} "
                              f"failed reads of a scaler) is not carried over: preset: hpa holds the current replicas "
                              f"when metrics are missing")
        for key in ("pollingInterval", "cooldownPeriod"):  # only said in a note: still KEDA's whole seconds
            value = spec.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                self.problems.append(ConversionProblem(("spec", key), f"expected whole seconds, got "
                                                                      f"{_integer_said(value)}"))
        if spec.get("cooldownPeriod") is not None:
            self.notes.append(f"cooldownPeriod {spec['cooldownPeriod']}s (the wait before scaling to zero) has no "
                              f"equivalent: this policy never scales to zero")
        if spec.get("idleReplicaCount") is not None:
            self.notes.append("idleReplicaCount is not carried over: this policy never goes idle")
        self.notes.append(f"pollingInterval {spec.get('pollingInterval', 30)}s: KEDA polls for activation only; "
                          f"the HPA KEDA creates evaluates every 15s, as this policy does")
        self._kept(lambda: self._keda_cut_over(spec, advanced, hpa_config, kind, workload), None)
        source = f"{KEDA_KIND} {self.namespace}/{self.object_name}"
        return self._render(source, kind, workload, low, high, 15.0, scaling)

    def _keda_cut_over(self, spec: dict, advanced: dict, hpa_config: dict, kind: str, workload: str) -> None:
        """Notes on handing a ScaledObject's workload over: KEDA re-creates the HPA it owns when
        that alone is deleted, and with restoreToOriginalReplicaCount deleting the ScaledObject
        scales the workload back to its count from before KEDA (a drop at the cut-over)."""
        self._keda_paused(kind, workload)
        restore = advanced.get("restoreToOriginalReplicaCount")
        if restore is not None and not isinstance(restore, bool):
            raise ConversionProblem(("spec", "advanced", "restoreToOriginalReplicaCount"),
                                    f"expected true or false, got {describe_value(restore)}")
        hpa = _text(hpa_config, "name", ("spec", "advanced", "horizontalPodAutoscalerConfig", "name")) \
            if hpa_config.get("name") not in (None, "") else f"keda-hpa-{self.own_name}"
        scaled_object = f"kubectl delete scaledobject {self.own_name} -n {self.namespace}"
        self.notes.append(f"cut-over: delete the ScaledObject ({scaled_object}), not its HPA {hpa}, which KEDA "
                          f"re-creates at once")
        if spec.get("minReplicaCount", KEDA_DEFAULT_MIN) == 0:  # checked a replica count by _replicas
            self._warn_stays_at_zero("minReplicaCount", "KEDA has", kind, workload)
        if restore:
            warning = (f"advanced.restoreToOriginalReplicaCount true: deleting this ScaledObject scales {kind} "
                       f"{self.namespace}/{workload} back to the replicas it had before KEDA scaled it, not the count "
                       f"KEDA left, before Setpoint takes it over: set it to false (kubectl apply) before the "
                       f"cut-over")
            self._warn(("spec", "advanced", "restoreToOriginalReplicaCount"), warning)

    def _warn_stays_at_zero(self, field: str, owner_has: str, kind: str, workload: str) -> None:
        """A warning for a source that scales to zero: a workload it leaves at 0 stays there."""
        # 0 replicas turns autoscaling off in HPA, and so in preset: hpa: the minimum of 1 is never reached
        self._warn(("spec", field), f"{field} 0: deleted while {owner_has} {kind} {self.namespace}/{workload} at 0 "
                                    f"(idle), the workload stays at 0 under this policy, as under HPA (0 replicas "
                                    f"turns autoscaling off): if it is at 0 after the cut-over, kubectl scale "
                                    f"{kind.lower()} {workload} -n {self.namespace} --replicas=1")

    def _warn(self, path: tuple, text: str) -> None:
        """A note said on stderr too, at the object's field ``path``: it would harm the cut-over
        unseen in a comment."""
        self.notes.append(text)
        self.warnings.append((path, text))

    def _keda_paused(self, kind: str, workload: str) -> None:
        """A warning for a paused ScaledObject: the team holds the workload on purpose, and with
        its HPA deleted by KEDA, a real run of this policy would scale it at its first cycle."""
        annotations = _dict(self.obj, ("metadata", "annotations"))
        for key in KEDA_PAUSE_ANNOTATIONS:
            value = annotations.get(key)
            if value is None or (key.endswith("/paused") and str(value).lower() != "true"):
                continue
            held = f"holds {kind} {self.namespace}/{workload} at {value}" if key.endswith("-replicas") else \
                f"holds {kind} {self.namespace}/{workload} where it is"
            warning = (f"metadata.annotations {key}: {describe_value(value)}: this ScaledObject is paused: KEDA {held} "
                       f"and has deleted its HPA, so setpoint run (not --shadow) scales the workload from its first "
                       f"cycle, with no ScaledByHPA to stop it: run this policy only when the pause is meant to end")
            self._warn(("metadata", "annotations", key), warning)
            return

    def _keda_trigger(self, trigger: dict, path: tuple, kind: str, workload: str) -> dict:
        """One KEDA trigger (at ``path``) as a policy metric; each of its fields' problems is kept."""
        self._kept(lambda: _known_fields(trigger, path, KEDA_TRIGGER_FIELDS), None)
        self._kept(lambda: _known_fields(_dict(trigger, ("authenticationRef",), path), path + ("authenticationRef",),
                                         KEDA_AUTHENTICATION_REF_FIELDS), None)
        ttype = trigger.get("type")
        if ttype not in ("prometheus", "cpu", "memory"):
            raise ConversionProblem(path + ("type",), f"only prometheus, cpu and memory triggers convert (Setpoint "
                                                      f"reads Prometheus), got {describe_value(ttype)}")
        meta = _dict(trigger, ("metadata",), path, required=True)
        # KEDA's trigger metadata is a map of strings: every value of another kind is said (sorted:
        # the same errors whatever the file's order), and the trigger reads no further
        not_strings = [ConversionProblem(path + ("metadata", key), f"expected a string, got {describe_value(value)}")
                       for key, value in sorted(meta.items(), key=lambda kv: str(kv[0]))
                       if isinstance(value, (dict, list))]
        if not_strings:
            raise ConversionProblems(not_strings)
        metric_type = trigger.get("metricType", "AverageValue")
        if ttype in ("cpu", "memory"):  # checked here, at the trigger's fields, then converted as HPA's metric
            metric_type = trigger.get("metricType", meta.get("type", "Utilization"))
            if metric_type not in ("Utilization", "AverageValue"):
                self.problems.append(ConversionProblem(
                    path + (("metricType",) if "metricType" in trigger else ("metadata", "type")),
                    f"expected Utilization or AverageValue for a {ttype} trigger, got {describe_value(metric_type)}"))
            value = self._kept(lambda: self._positive_quantity(meta, "value", path), None)
            if value is None or metric_type not in ("Utilization", "AverageValue"):
                return {}
            target = ({"type": "Utilization", "averageUtilization": value} if metric_type == "Utilization"
                      else {"type": "AverageValue", "averageValue": value})
            source = {"name": ttype, "target": target}
            if meta.get("containerName") not in (None, ""):
                container = _text(meta, "containerName", path + ("metadata", "containerName"))
                return self._hpa_metric({"type": "ContainerResource", "containerResource": {
                    **source, "container": container}}, path, kind, workload)
            return self._hpa_metric({"type": "Resource", "resource": source}, path, kind, workload)
        query = self._kept(lambda: _text(meta, "query", path + ("metadata", "query"), "the PromQL query"), "")
        if query and not query.strip():
            self.problems.append(ConversionProblem(path + ("metadata", "query"),
                                                   "required field is missing: the PromQL query"))
        threshold = self._kept(lambda: self._positive_quantity(meta, "threshold", path), 1.0)
        if trigger.get("name") not in (None, ""):
            name = self._kept(lambda: _text(trigger, "name", path + ("name",)), "-")
        else:
            name = str(meta.get("metricName") or "prometheus")
        if metric_type == "AverageValue":
            target = {"averagePerReplica": threshold}
        elif metric_type == "Value":
            target = {"value": threshold}
        else:
            self.problems.append(ConversionProblem(path + ("metricType",), f"expected AverageValue or Value for a "
                                                                           f"prometheus trigger, got "
                                                                           f"{describe_value(metric_type)}"))
            target = {}
        if meta.get("activationThreshold") is not None:
            self.notes.append(f"trigger {name}: activationThreshold {meta['activationThreshold']} (KEDA's 0 <-> 1 "
                              f"switch) has no equivalent")
        server = meta.get("serverAddress")
        if server:
            self.notes.append(f"trigger {name}: serverAddress {server}: pass it to setpoint run --prometheus")
        if meta.get("namespace"):
            self.notes.append(f"trigger {name}: Prometheus tenant namespace {meta['namespace']} is not carried over")
        if meta.get("ignoreNullValues") in ("false", False):
            self.notes.append(f"trigger {name}: ignoreNullValues false (an empty result is an error) becomes "
                              f"Setpoint's rule: a missing metric holds the current replicas")
        return {"name": _identifier(str(name), self.metric_names), "query": " ".join(query.split()),
                "target": target}

    @staticmethod
    def _positive_quantity(meta: dict, key: str, path: tuple) -> float:
        """A trigger's ``metadata[key]`` (the trigger at ``path``), a quantity > 0."""
        value = parse_quantity(meta.get(key), path + ("metadata", key))
        if value <= 0:
            raise ConversionProblem(path + ("metadata", key), f"must be > 0, got {describe_value(meta.get(key))}")
        return value

    # -- output ---------------------------------------------------------------------------------
    def _render(self, source: str, kind: str, workload: str, low: int, high: int, interval_s: float,
                scaling: dict) -> Converted:
        policy = {
            "apiVersion": "setpoint/v1",
            "kind": "Policy",
            "metadata": {"name": self.name},
            "spec": {
                "preset": "hpa",
                "targets": {"kind": kind, "namespace": self.namespace, "name": workload},
                "interval": format_duration(interval_s),
                "replicas": {"min": low, "max": high},
                "scaling": scaling,
            },
        }
        body = yaml.safe_dump(policy, sort_keys=False, width=110, default_flow_style=None)
        header = [f"# Imported from {source} by `setpoint import`.",
                  "# preset: hpa runs HPA's algorithm exactly (proposals, tolerance, stabilization, rate limits).",
                  "# Metrics are read from Prometheus with the queries below instead of the metrics APIs."]
        if "behavior" not in scaling:
            header.append("# No behavior in the source: HPA's legacy path (300s scale-down window, max(2x, 4) up).")
        if self.notes:
            header.append("# Differences from the source:")
            header += [line for note in self.notes for line in _comment(note)]
        else:
            header.append("# Differences from the source: none beyond the metric source.")
        return Converted(self.name, "\n".join(header) + "\n" + body, list(self.notes), source, list(self.warnings))


def _comment(text: str, width: int = 100) -> list[str]:
    """A note as comment lines: ``#  - first line`` then ``#    more``."""
    lines, line = [], "#  -"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line.strip("#- "):
            lines.append(line)
            line = "#   "
        line = f"{line} {word}"
    return lines + [line]
