"""Warnings, not errors: a latency threshold that reads like the other unit of its query, and
other numbers valid as written and probably meant otherwise (a utilization of 0.7%, a scale-up
tolerance of 500%, a counter read without a rate, a Grafana variable in a label matcher).

Prometheus exposes durations in seconds (``http_request_duration_seconds``); a team used to
milliseconds writes ``target: {value: 250}`` for "p95 under 250 ms". The policy is valid, and
wrong by 1000x: p95 is never above 250 seconds, so the policy never scales up on latency (and a
health check on it never fires). The other way round (``0.25`` over a ``_milliseconds``
histogram) it always reads far above target and scales to replicas.max. Neither can be told
from the samples (a latency of 0.3 is as plausible as 300 until the unit is known), but the
query names its unit: the histogram a ``histogram_quantile`` reads, or the ``_sum`` of a mean.

So ``setpoint validate`` (and ``setpoint run`` at each load) warns where a threshold on a query
in seconds is a minute or more, or one in milliseconds is below one millisecond, naming the
file, line and field and the value it probably meant. A minute is not a request latency an
autoscaler targets, but it may be a batch job's duration: a warning, which ``setpoint validate
--strict`` turns into a failure for teams that want it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from controller.model import DEFAULT_TARGET_LABELS, TargetLabels
from controller.policy.durations import format_number
from controller.policy.promql import (drops_label, error_ratio, label_matchers, label_replaces, matcher_variables,
                                      raw_counters, relabels)
from controller.policy.schema import PolicyDocument

#: A query in seconds with a threshold at or above this many (s) is probably in milliseconds.
SECONDS_AT_LEAST = 60.0
#: A query in milliseconds with a threshold below this many (ms) is probably in seconds.
MILLISECONDS_BELOW = 1.0

# the histogram (or summary _sum) a latency query reads; a _count or _total is a rate, not a duration
_SECONDS = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*_seconds_(?:bucket|sum)\b")
_MILLISECONDS = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*_(?:milliseconds|ms)_(?:bucket|sum)\b")

Warning_ = tuple[tuple, str]


def query_unit(query: str) -> str | None:
    """"s" or "ms" when the query reads a duration histogram (or summary sum) in that unit and
    none in the other; None when it cannot tell."""
    seconds, milliseconds = bool(_SECONDS.search(query)), bool(_MILLISECONDS.search(query))
    if seconds == milliseconds:
        return None
    return "s" if seconds else "ms"


def unit_warnings(policy: PolicyDocument, labels: TargetLabels = DEFAULT_TARGET_LABELS) -> list[Warning_]:
    """(path, message) of every threshold that reads like the other unit of its query, every
    utilization written as a fraction, a scale-up tolerance written in percent, every
    counter a query reads without a rate, every Grafana variable in a query's label matchers, and
    every query whose series no target is matched to by ``labels`` (``--target-labels``)."""
    spec = policy.spec
    out: list[Warning_] = []
    if spec.scaling is not None:
        for i, metric in enumerate(spec.scaling.metrics):
            path = ("spec", "scaling", "metrics", i)
            if metric.target.value is not None:
                out += _check(metric.query, metric.target.value, (*path, "target", "value"), "target")
            if metric.target.utilization is not None and metric.target.utilization < 1.0:
                u = format_number(metric.target.utilization)
                out.append(((*path, "target", "utilization"),
                            f"warning: a utilization of {u}%: utilization is in percent; if you meant "
                            f"{format_number(round(metric.target.utilization * 100.0, 9))}%, write "
                            f"{format_number(round(metric.target.utilization * 100.0, 9))}"))
            out += _query_warnings(metric.query, (*path, "query"))
            if spec.preset == "hpa":
                out += _memory_read_as_cpu(metric, path)
            out += _pod_name_patterns(metric.query, spec.targets, (*path, "query"), _MISSING_METRIC, labels)
            per_pod = spec.preset == "hpa" and _read_per_pod(metric)  # HPA's per-pod reading
            out += _no_target_series(metric.query, spec.targets, (*path, "query"), _MISSING_METRIC, labels,
                                     not per_pod, _resource_hint(spec, metric))
            if metric.ramp is not None and metric.ramp.latest is not None:
                out += _query_warnings(metric.ramp.latest, (*path, "ramp", "latest"))
                out += _no_target_series(metric.ramp.latest, spec.targets, (*path, "ramp", "latest"), _MISSING_METRIC,
                                         labels)
        if spec.scaling.tolerance is not None and spec.scaling.tolerance.up >= 1.0:
            up = spec.scaling.tolerance.up
            out.append((("spec", "scaling", "tolerance", "up"),
                        f"warning: a tolerance of {format_number(up)} is {format_number(round(up * 100.0, 9))}%: a "
                        f"scale-up only above {format_number(round(1.0 + up, 9))}x the target; if you meant "
                        f"{format_number(up)}%, write {format_number(round(up / 100.0, 9))}"))
    if spec.health is not None:
        for i, check in enumerate(spec.health.checks):
            for field in ("query", "errors", "requests"):
                if getattr(check, field) is not None:
                    out += _query_warnings(getattr(check, field), ("spec", "health", "checks", i, field))
                    out += _pod_name_patterns(getattr(check, field), spec.targets, ("spec", "health", "checks", i, field),
                                              _BLIND_CHECK, labels)
                    out += _other_workloads(getattr(check, field), spec.targets, ("spec", "health", "checks", i, field),
                                            _BLIND_CHECK, labels, names=check.scope == "workload")
            out += _instant_firing(check, ("spec", "health", "checks", i, "unhealthy"))
            if check.scope == "workload" and check.query is not None:
                out += _unmatched_series(check.query, spec.targets, ("spec", "health", "checks", i, "query"),
                                         _BLIND_CHECK, labels)
            if check.scope == "pod" and check.query is not None and drops_label(check.query, "pod"):
                out.append((("spec", "health", "checks", i, "query"),
                            "warning: a scope: pod check whose query aggregates the pod label away (by (...) "
                            "without pod, without (pod), or sum(...) with no grouping): no sample names a pod, so the check never fires; group by (namespace, "
                            "pod), or use scope: workload"))
            for side in ("unhealthy", "recovered"):
                threshold = getattr(check, side)
                for bound in ("above", "below"):
                    value = None if threshold is None else getattr(threshold, bound)
                    if check.query is not None and value is not None:
                        out += _check(check.query, value, ("spec", "health", "checks", i, side, bound), "threshold")
        out += _budget_warnings(spec.health)
        if spec.scaling is None:
            out += _health_only_scale_ups(spec.health)
    return out


#: Why a value with neither label is no target's: it is only a single target's (a selector's, while it selects one).
HOW_SEVERAL = ", with several targets (names, or a selector once it selects two)"
_MISSING_METRIC = "the metric is missing at every cycle (the replicas are held, then onMissingMetrics)"
_BLIND_CHECK = "the check sees no value at any cycle (and missing data never fires it)"


def _read_per_pod(metric) -> bool:
    """Whether ``preset: hpa`` reads the metric pod by pod (its series matched to the targets by
    their pods): a utilization metric, or an averagePerReplica one with its ``resource`` (HPA's
    Resource metrics; compile.average_source), whose query keeps the ``pod`` label. Any other is
    one value per workload."""
    resource_metric = metric.target.utilization is not None or (
        metric.target.average_per_replica is not None and metric.resource is not None)
    return resource_metric and not drops_label(metric.query, "pod")


def _resource_hint(spec, metric) -> str:
    """The other fix of a by-pod ``averagePerReplica`` query under ``preset: hpa`` that names no
    resource (read as a workload total, which such a query gives no target): naming its resource
    makes it HPA's Resource AverageValue, read pod by pod (compile.average_source)."""
    if (spec.preset == "hpa" and metric.target.average_per_replica is not None and metric.resource is None
            and not drops_label(metric.query, "pod")):
        return ("; or, for a pod's cpu or memory (HPA's Resource AverageValue, read pod by pod), name it: "
                "resource: cpu or resource: memory")
    return ""


def _no_target_series(query: str, targets, path: tuple, consequence: str, labels: TargetLabels,
                      by_workload: bool = True, also: str = "") -> list[Warning_]:
    """A scaling metric's query whose series are no target's: they select other namespaces or
    workloads (:func:`_other_workloads`), or (``by_workload``: read a value per workload, not per
    pod) group away a label they are matched by (:func:`_unmatched_series`, ``also`` said after its
    fix)."""
    out = list(_other_workloads(query, targets, path, consequence, labels))
    return out + list(_unmatched_series(query, targets, path, consequence, labels, also)) if by_workload else out


def _unmatched_series(query: str, targets, path: tuple, consequence: str, labels: TargetLabels,
                      also: str = "") -> Iterator[Warning_]:
    """A query whose aggregation leaves out a label its series are matched to their workload by
    (the targets' kind's in ``labels``, by default a StatefulSet's ``statefulset``): none is any
    target's. One value with neither label is a single named target's (the adapter gives it to
    that target), so only several targets (names, a selector) need both labels. A StatefulSet's
    query that keeps ``deployment`` instead (this release's change) is said as such."""
    kind_labels = labels.for_kind(targets.kind)
    dropped = [label for label in kind_labels if drops_label(query, label)]
    several = targets.selector is not None or len(targets.names or ()) > 1
    if not dropped or (len(dropped) == len(kind_labels) and not several):
        return
    kept = [label for label in kind_labels if label not in dropped]
    ns_label, name_label = kind_labels
    result = (f"keep {kept[0]} but not {dropped[0]}" if kept else
              f"keep neither {ns_label} nor {name_label} (sum(...) with no grouping, or a by (...) without them)")
    how = f"group by ({ns_label}, {name_label})"
    other = [label for kind, (_, label) in labels.pairs
             if kind != targets.kind and label != name_label and not drops_label(query, label)
             and re.search(rf"\b{label}\b", query)]
    if other:  # a StatefulSet's name written into deployment, as before per-kind labels
        how += (f": a {targets.kind}'s series are matched by {name_label}, not {other[0]} (kube-state-metrics' "
                f"label for a {targets.kind}); or run with --target-labels "
                f"{targets.kind.lower()}={ns_label},{other[0]} to match them by {other[0]}")
    yield path, (f"warning: the query's series {result}: setpoint run matches a {targets.kind}'s series to it by "
                 f"both labels {ns_label} and {name_label} (--target-labels){HOW_SEVERAL if not kept else ''}, so "
                 f"none is a target's and {consequence}; {how}{also}")


#: kind -> (a pod name of its workload ``{name}``, how it is formed, a label_replace pattern that reads it back)
POD_NAMES = {"Deployment": ("{name}-5d9c7b8f6-x2k4q", "name-replicaset hash-pod suffix", "(.+)-[a-z0-9]+-[a-z0-9]{5}"),
             "StatefulSet": ("{name}-0", "name-ordinal", "(.+)-[0-9]+")}


def _pod_name_patterns(query: str, targets, path: tuple, consequence: str, labels: TargetLabels) -> Iterator[Warning_]:
    """A ``label_replace`` that writes a workload label (``deployment``, ``statefulset``) from the
    pod name with a pattern that does not read the targets' kind's pod names back to their
    workload: a Deployment's pattern (``(.+)-[a-z0-9]+-[a-z0-9]{5}``) never matches a
    StatefulSet's ``web-0``, so no series gets the label. Tried on a pod name of the first named
    target (``web`` for a selector); a pattern Python cannot read is not judged."""
    if targets.kind not in POD_NAMES:
        return
    workload_labels = {name for _, (_, name) in labels.pairs} | {labels.for_kind(targets.kind)[1]}
    name = targets.name or next(iter(targets.names or ()), None) or "web"
    form, shape, pattern = POD_NAMES[targets.kind]
    pod = form.format(name=name)
    for dst, replacement, src, regex in label_replaces(query):
        if src != "pod" or dst not in workload_labels:
            continue
        try:
            m = re.fullmatch(regex, pod)  # Prometheus anchors its regexes at both ends
            got = None if m is None else re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda g: _group(m, g.group(1) or g.group(2)),
                                                replacement)
        except (re.error, IndexError):
            continue
        if got == name:
            continue
        said = (f"does not match a {targets.kind}'s pod name such as {pod} ({shape})" if m is None else
                f"reads {got!r} from a {targets.kind}'s pod name such as {pod} ({shape}), not {name!r}")
        yield path, (f"warning: label_replace writes {dst} from pod with the pattern \"{regex}\", which {said}: no "
                     f"series gets its {targets.kind}'s name in {dst}, so {consequence}; for a {targets.kind} write "
                     f"\"{pattern}\" (or a scope: pod check grouped by (namespace, pod), which needs no label_replace)")


def _group(m: re.Match, ref: str) -> str:
    """A label_replace replacement's $1 / ${name}: the group's text, "" when it did not take part."""
    return m.group(int(ref) if ref.isdigit() else ref) or ""


def _other_workloads(query: str, targets, path: tuple, consequence: str, labels: TargetLabels,
                     names: bool = True) -> Iterator[Warning_]:
    """A query whose series keep the namespace (or workload name) label, and whose matchers on it
    select only other namespaces (other workloads) than the targets': none of its series is a
    target's (a query copied from another policy, its namespace="shop" left as it was). Only the
    name label where the targets are named and the series are matched by it (``names``)."""
    ns_label, name_label = labels.for_kind(targets.kind)
    wanted = [(ns_label, [targets.namespace])]
    if names and targets.selector is None:
        wanted.append((name_label, [targets.name] if targets.name else list(targets.names or ())))
    matchers = label_matchers(query)
    for label, ours in wanted:
        chosen = [(op, value) for name, op, value in matchers if name == label and op in ("=", "=~")
                  and not matcher_variables(f'{{{name}="{value}"}}')]  # a Grafana variable is said on its own
        if not chosen or drops_label(query, label) or relabels(query, label):
            continue
        if any(_selects(op, value, mine) for op, value in chosen for mine in ours):
            continue
        said = ", ".join(f'{label}{op}"{value}"' for op, value in dict.fromkeys(chosen))
        yield path, (f"warning: the query selects {said}, and its series keep that {label}, but the targets' "
                     f"{label} is {' or '.join(ours)}: none of its series is a target's, so {consequence}; select "
                     f"the targets' {label} (a query copied from another policy?)")


def _selects(op: str, value: str, name: str) -> bool:
    """Whether the matcher ``op value`` selects ``name``; a regex Python cannot read selects anything."""
    if op == "=":
        return value == name
    try:
        return re.fullmatch(value, name) is not None  # Prometheus anchors its regexes at both ends
    except re.error:
        return True


def _instant_firing(check, path: tuple) -> Iterator[Warning_]:
    """An ``unhealthy`` threshold without ``for`` on a check that acts: ``for`` defaults to 0s, so
    one reading past it (a GC pause, a scrape of a pod mid-start) restarts or rolls back. Written
    ``for: 0s`` it is what the author meant, and is not said."""
    threshold = check.unhealthy
    if threshold is None or check.action == "record" or "for_s" in threshold.model_fields_set:
        return
    side, value = ("above", threshold.above) if threshold.above is not None else ("below", threshold.below)
    yield path, (f"warning: no for: a single reading {side} {format_number(value)} is enough for {check.action} "
                 f"(for defaults to 0s); write how long it must hold, e.g. for: 2m, or for: 0s if one reading "
                 f"is meant")


def _health_only_scale_ups(health) -> Iterator[Warning_]:
    """A health-only policy's ``scale-up``: it writes the replicas of a workload something else
    scales. An HPA sets its own count back at its next sync (15 s; simulated beside the hpa preset
    it bought nothing and cost a reversal), and a workload nothing scales keeps the added pods
    after the overload (no scaling side scales it back down)."""
    for i, check in enumerate(health.checks):
        if check.action == "scale-up":
            yield (("spec", "health", "checks", i, "action"),
                   "warning: scale-up in a policy without a scaling section: an HPA that scales the workload "
                   "sets its own count back at its next sync (15 s), and without one nothing scales the added "
                   "pods back down; beside an HPA raise its minReplicas or target instead, or give this policy "
                   "the scaling (setpoint import of the HPA) so one controller owns the count")


#: Budget (YAML name, model field) -> the actions it pays for.
_BUDGETS = {("rollbacksPerDay", "rollbacks_per_day"): ("rollback",),
            ("restartsPerHour", "restarts_per_hour"): ("restart-pod", "rolling-restart")}


def _budget_warnings(health) -> Iterator[Warning_]:
    """A budget of 0 for an action a check or the escalation ladder takes: the action never runs
    (the target is held at its first firing), which a 0 meant to switch it off says better with
    ``action: record``."""
    budgets = health.budgets
    for (name, field), actions in _BUDGETS.items():
        if getattr(budgets, field):
            continue
        checks = [c.name for c in health.checks if c.action in actions]
        ladder = any(a in actions for a in health.escalation or ())
        takers = ([f"check{'s' if len(checks) > 1 else ''} {', '.join(checks)}"] if checks else []) + \
            (["the escalation ladder"] if ladder else [])
        if takers:
            yield (("spec", "health", "budgets", name),
                   f"warning: {name} is 0, so {' or '.join(actions)}, asked for by {' and '.join(takers)}, can "
                   "never run (the target is held at the first firing instead); raise the budget, or give those "
                   "checks action: record")


# what a query reads memory or CPU from: cAdvisor's series, kube-state-metrics' requests of that resource
_MEMORY_SERIES = re.compile(r"\bcontainer_memory_[a-zA-Z0-9_]+|\bresource\s*=~?\s*\"memory\"")
_CPU_SERIES = re.compile(r"\bcontainer_cpu_[a-zA-Z0-9_]+|\bresource\s*=~?\s*\"cpu\"")


def _memory_read_as_cpu(metric, path: tuple) -> Iterator[Warning_]:
    """Under preset: hpa, a utilization metric without ``resource`` whose query reads memory and no
    CPU: it is run as cpu (the default keeps older policies' decisions), so a starting pod's sample
    is left out, which HPA keeps for memory."""
    if metric.resource is not None or metric.target.utilization is None:
        return
    memory = _MEMORY_SERIES.search(metric.query)
    if memory and not _CPU_SERIES.search(metric.query):
        yield (*path, "query"), (f"warning: the query reads memory ({memory.group(0)}) and the metric names no "
                                 f"resource: preset: hpa runs it as cpu and leaves out a starting pod's sample, "
                                 f"which HPA keeps for memory; write resource: memory")


def _query_warnings(query: str, path: tuple) -> Iterator[Warning_]:
    """A counter read without a rate, and a Grafana variable inside a label matcher (the other
    warnings about the query itself, besides its unit)."""
    for variable in matcher_variables(query):
        yield path, (f"warning: {variable} in a label matcher is a Grafana dashboard variable: Prometheus "
                     f"matches the text {variable!r} itself, so the query selects no series (a metric missing "
                     f"at every cycle, a check that never fires); write the value it stands for")
    for counter in raw_counters(query):
        yield path, (f"warning: {counter} is a counter (it only grows) and the query reads it without rate(): "
                     f"it never comes back down, so neither would the replicas; e.g. rate({counter}[1m])")


def _check(query: str, value: float, path: tuple, what: str) -> Iterator[Warning_]:
    if 1.0 < abs(value) <= 100.0 and error_ratio(query):
        v = format_number(value)
        yield path, (f"warning: a {what} of {v} on an error ratio (failed requests over all of them: at most 1, so "
                     f"it never reaches {v}); if you meant {v}%, write {format_number(round(value / 100.0, 9))}")
        return
    unit = query_unit(query)
    if unit == "s" and value >= SECONDS_AT_LEAST:
        yield path, (f"warning: a {what} of {format_number(value)} seconds: the query reads a histogram in seconds "
                     f"(Prometheus' base unit); if you meant {format_number(value)} ms, write "
                     f"{format_number(round(value / 1000.0, 9))}")
    elif unit == "ms" and 0 < abs(value) < MILLISECONDS_BELOW:
        meant = format_number(round(value * 1000.0, 9))
        yield path, (f"warning: a {what} of {format_number(value)} milliseconds: the query reads a histogram in "
                     f"milliseconds; if you meant {format_number(value)} s, write {meant}")
