"""Cross-field rules of one policy document, run on the parts whose field rules pass.

Each rule returns ``(path, message)`` problems; ``path`` uses YAML names so the loader can find
the line. Rules that span documents (duplicate names) live in ``load.py``.

A document with field errors is checked too, in the same pass: the loader gives these rules the
parts that validated (controller/policy/partial.py), each other part :data:`UNCHECKED`. Each
rule runs :func:`guarded`, and so does each item of a list whose items are checked one by one (a
metric, a health check): a rule that reads a part that did not validate is left out, the others
report, so one broken check never hides another check's problems.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.policy import presets
from controller.policy.durations import format_duration, format_number
from controller.policy.limits import MAX_REPLICAS, MAX_WINDOW_SAMPLES
from controller.policy.partial import UNCHECKED, guarded, known, read
from controller.policy.schema import Health, HealthCheck, PolicyDocument, SmoothingModel, Spec

Problem = tuple[tuple, str]

SPEC = ("spec",)
SCALING = SPEC + ("scaling",)
HEALTH = SPEC + ("health",)


def document_problems(policy: PolicyDocument) -> list[Problem]:
    """Every cross-field problem of ``policy`` (which may hold parts that did not validate: each
    rule that reads one is left out), in file order as far as practical."""
    spec = policy.spec
    problems = [problem for rule in (_something_to_do, _unique_target_names, _replica_bounds, _preset_restrictions,
                                     _replicas_needed)
                for problem in guarded(rule, spec)]
    if spec.scaling is not None and spec.replicas is not None:  # the scaling rules read the bounds
        for rule in (_scaling_metrics, _fallback_within_bounds, _pods_rates_within_bounds, _min_step):
            problems += guarded(rule, spec)
        problems += guarded(lambda: _window_fits(spec.scaling.smoothing, spec.interval_s, SCALING + ("smoothing",)))
    if spec.health is not None:
        problems += guarded(_health_rules, spec)
    return problems


def _replicas_needed(spec: Spec) -> Iterator[Problem]:
    if spec.replicas is None and _scales(spec):
        yield (SPEC + ("replicas",), "required field is missing: a policy that scales (scaling, or a health check's "
                                     "scale-up) needs replicas: {min: N, max: M}")


def _something_to_do(spec: Spec) -> Iterator[Problem]:
    if spec.scaling is None and spec.health is None:
        yield SPEC, "nothing to do: expected scaling, health or both"


def _unique_target_names(spec: Spec) -> Iterator[Problem]:
    yield from _duplicates(spec.targets.names or [], SPEC + ("targets", "names"), "workload name")


def _scales(spec: Spec) -> bool:
    """Whether the policy writes replica counts: it scales, or a health check (or the escalation) scales up."""
    checks = spec.health.checks if spec.health is not None else []
    return (spec.scaling is not None or any(c.action == "scale-up" for c in checks)
            or spec.health is not None and "scale-up" in (spec.health.escalation or ()))


def _replica_bounds(spec: Spec) -> Iterator[Problem]:
    if spec.replicas is None:
        return
    low, high = spec.replicas.min_replicas, spec.replicas.max_replicas
    if low > high:
        yield SPEC + ("replicas", "min"), f"must be <= max ({high}), got {low}"
    if spec.preset == presets.HPA and low < 1:
        # HPA accepts minReplicas 0 only behind the alpha HPAScaleToZero gate.
        yield SPEC + ("replicas", "min"), f"must be >= 1 with preset: hpa, got {low}"


def _preset_restrictions(spec: Spec) -> Iterator[Problem]:
    if spec.preset != presets.HPA:
        return
    if spec.scaling is None:
        yield SPEC + ("preset",), "preset: hpa needs spec.scaling"
        return
    given = {"smoothing": spec.scaling.smoothing, "onMissingMetrics": spec.scaling.on_missing_metrics}
    for key, why in presets.HPA_UNSUPPORTED.items():
        if given[key] is not None:
            yield SCALING + (key,), f"not allowed with preset: hpa ({why})"


def _min_step(spec: Spec) -> Iterator[Problem]:
    """``minStep`` and ``release`` are scale-down rules, and not HPA's."""
    behavior = spec.scaling.behavior
    if behavior is None:
        return
    where = SCALING + ("behavior",)
    if behavior.scale_up is not None and behavior.scale_up.min_step is not None:
        yield where + ("scaleUp", "minStep"), "only under scaleDown (a scale-up is never held back by its size)"
    down = behavior.scale_down
    if spec.preset == presets.HPA and down is not None and down.min_step not in (None, "none"):
        yield where + ("scaleDown", "minStep"), "not allowed with preset: hpa (HPA scales down by any step)"
    if behavior.scale_up is not None and behavior.scale_up.release is not None:
        yield where + ("scaleUp", "release"), "only under scaleDown (the scale-up window holds its lowest, HPA's rule)"
    if spec.preset == presets.HPA and down is not None and down.release not in (None, "expire"):
        yield where + ("scaleDown", "release"), "not allowed with preset: hpa (HPA releases a window's peak when it expires)"


def _scaling_metrics(spec: Spec) -> Iterator[Problem]:
    metrics = spec.scaling.metrics
    if not metrics:
        yield SCALING + ("metrics",), "expected at least one metric, got an empty list"
    yield from _duplicates(_names(metrics), SCALING + ("metrics",), "metric name", field="name")
    for i, m in enumerate(metrics):
        yield from guarded(_metric_rules, spec, m, SCALING + ("metrics", i))


def _metric_rules(spec: Spec, m, where: tuple) -> Iterator[Problem]:
    yield from guarded(_headroom_rules, spec, m.target, where + ("target",))
    yield from guarded(_implausible_rules, spec, m, where + ("implausibleAbove",))
    yield from guarded(_resource_rules, m, where + ("resource",))
    if m.ramp is not None:
        yield from guarded(_ramp_rules, spec, m, where + ("ramp",))
    if m.forecast is None:
        return
    where += ("forecast",)
    if spec.preset == presets.HPA:
        yield where, "not allowed with preset: hpa (HPA does not forecast)"
    elif m.target.average_per_replica is None:
        yield where, ("needs target: averagePerReplica (a forecast is of a total such as a request rate; "
                      "a per-pod value or utilization changes with the replica count)")
    if len(set(m.forecast.seasonality)) != len(m.forecast.seasonality):
        yield where + ("seasonality",), "periods must differ"


def _resource_rules(metric, where: tuple) -> Iterator[Problem]:
    """``resource`` names what a Resource metric of HPA's measures: its targets are Utilization and
    AverageValue, never Value."""
    if known(metric.resource) is not None and known(metric.target).value is not None:
        yield where, ("needs target: utilization or averagePerReplica (a resource metric is a percent of the "
                      "pods' requests or a usage per replica, as HPA's)")


def _implausible_rules(spec: Spec, metric, where: tuple) -> Iterator[Problem]:
    """``implausibleAbove`` (core/scaling/signal.py) must leave every reading the policy acts on usable:
    above the one that asks for replicas.max from one replica (max x target)."""
    above = metric.implausible_above
    if above is None:
        return
    if spec.preset == presets.HPA:
        yield where, "not allowed with preset: hpa (HPA has no bound on a reading)"
        return
    target = metric.target
    t = next(x for x in (target.value, target.average_per_replica, target.utilization) if x is not None)
    most = t * spec.replicas.max_replicas
    if above != "off" and above <= most:
        yield where, (f"must be above target x replicas.max ({most:g}: a reading there asks for replicas.max), "
                      f"got {above:g}")


def _headroom_rules(spec: Spec, target, where: tuple) -> Iterator[Problem]:
    """``headroom: pooled`` sizes a total per replica against a capacity above the target; a
    ``capacityPerReplica`` with per-replica headroom marks a reading at the Ready pods' capacity as
    saturated (core/scaling/saturation.py), so it too must lie above the target's band."""
    capacity = target.capacity_per_replica
    if target.headroom != "pooled" and capacity is None:
        return
    field = "headroom" if target.headroom == "pooled" else "capacityPerReplica"
    if spec.preset == presets.HPA:
        yield where + (field,), "not allowed with preset: hpa (HPA sizes every replica at its target)"
    elif target.average_per_replica is None:
        yield where + (field,), ("pooled needs averagePerReplica (the headroom of a total such as a request rate "
                                 "shared by the replicas)" if field == "headroom" else
                                 "capacityPerReplica needs averagePerReplica (what one replica serves of a total "
                                 "such as a request rate)")
    elif capacity is None:
        yield where + ("capacityPerReplica",), "required with headroom: pooled (what one replica serves at 100%)"
    elif capacity <= target.average_per_replica * (1.0 + spec.scaling.tolerance.up):
        up = spec.scaling.tolerance.up
        trigger = target.average_per_replica * (1.0 + up)
        # the numbers, so that a tolerance written in percent (up: 5 for 5%) shows where it went
        yield where + ("capacityPerReplica",), (f"must be above averagePerReplica x (1 + tolerance.up) = "
                                                f"{target.average_per_replica:g} x (1 + {up:g}) = {trigger:g} (where a "
                                                f"scale-up starts), got {target.capacity_per_replica:g}")


def _ramp_rules(spec: Spec, m, where: tuple) -> Iterator[Problem]:
    if spec.preset == presets.HPA:
        yield where, "not allowed with preset: hpa (HPA sizes for the value it sees)"
    elif m.target.average_per_replica is None:
        yield where, ("needs target: averagePerReplica (the slope of a total such as a request rate; a per-pod "
                      "value or utilization falls as replicas are added)")
    if m.ramp.latest is not None:
        from controller.policy.compile import query_window_s

        window, latest = query_window_s(known(m.query)), query_window_s(known(m.ramp.latest))
        if not latest < window:
            yield where + ("latest",), (f"must read over a shorter range window than the metric's query "
                                        f"({window:g}s), got {latest:g}s")


def _fallback_within_bounds(spec: Spec) -> Iterator[Problem]:
    rule = spec.scaling.on_missing_metrics
    if rule is None or rule.then is None:
        return
    low, high, fallback = spec.replicas.min_replicas, spec.replicas.max_replicas, rule.then.fallback_replicas
    if low <= high and not low <= fallback <= high:  # min > max is reported on its own
        yield (SCALING + ("onMissingMetrics", "then", "fallbackReplicas"),
               f"must be within replicas [min {low}, max {high}], got {fallback}")


def _pods_rates_within_bounds(spec: Spec) -> Iterator[Problem]:
    behavior = spec.scaling.behavior
    for key, rules in (("scaleUp", behavior and behavior.scale_up), ("scaleDown", behavior and behavior.scale_down)):
        for i, rate in enumerate((rules.policies or []) if rules else []):
            if rate.type == "Pods" and rate.value > MAX_REPLICAS:
                yield (SCALING + ("behavior", key, "policies", i, "value"),
                       f"must be <= {MAX_REPLICAS} with type: Pods, got {rate.value}")


def _window_fits(smoothing: SmoothingModel | None, interval_s: float, path: tuple) -> list[Problem]:
    """A smoothing window keeps one raw sample per interval and target: bound the memory it takes."""
    if smoothing is None or smoothing.window is None:
        return []
    longest_s = MAX_WINDOW_SAMPLES * interval_s
    if smoothing.window.length_s <= longest_s:
        return []
    return [(path + ("window", "length"),
             f"must be <= {format_duration(longest_s)} ({MAX_WINDOW_SAMPLES} samples of the "
             f"{format_duration(interval_s)} interval), got {format_duration(smoothing.window.length_s)}")]


def _health_rules(spec: Spec) -> list[Problem]:
    """The health section's rules; each check's on its own, so one that did not validate hides
    nothing of the others."""
    health = spec.health
    problems: list[Problem] = list(guarded(_some_checks, health))
    problems += guarded(lambda: _duplicates(_names(health.checks), HEALTH + ("checks",), "check name", field="name"))
    problems += guarded(_each_check, spec)
    problems += guarded(lambda: _duplicates(health.escalation or [], HEALTH + ("escalation",), "escalation step"))
    problems += guarded(_deployment_only_remedies, spec)
    return problems


#: Why a StatefulSet target cannot take a rollback.
_NOT_FOR_STATEFULSETS = ("rollback is for Deployments (it goes back to one of their ReplicaSets); the targets are "
                         "StatefulSets")


def _deployment_only_remedies(spec: Spec) -> Iterator[Problem]:
    """A rollback (a check's action, an escalation step; a rollout hold comes only with one) on
    StatefulSet targets: the cluster would refuse it at every cycle the check fires, so the file is
    refused instead."""
    if known(spec.targets).kind != "StatefulSet":
        return
    for i, check in enumerate(spec.health.checks):
        action = read(lambda check=check: check.action)
        if action is not UNCHECKED and action == "rollback":
            yield HEALTH + ("checks", i, "action"), f"{_NOT_FOR_STATEFULSETS}: {_instead_of_rollback(check)}"
    escalation = read(lambda: spec.health.escalation)
    for j, step in enumerate(() if escalation is None or escalation is UNCHECKED else escalation):
        if step is not UNCHECKED and step == "rollback":
            yield HEALTH + ("escalation", j), f"{_NOT_FOR_STATEFULSETS}: remove this step"


def _instead_of_rollback(check: HealthCheck) -> str:
    """What a StatefulSet's check says instead of rollback: a revision check (a canary's comparison)
    only records its verdict; the others may restart."""
    if read(lambda: check.scope) == "revision":
        return ("use record (the canary's comparison with the stable pods is said in a Warning Event "
                "RevisionWorseRecorded, not acted on)")
    return "use rolling-restart or record"


def _each_check(spec: Spec) -> Iterator[Problem]:
    health = spec.health
    for i, check in enumerate(health.checks):
        path = HEALTH + ("checks", i)
        yield from guarded(_check_fields_for_scope, check, path)
        yield from guarded(_recovery_on_healthy_side, check, path)
        # health steps come every interval, and every rolloutInterval during a rollout
        yield from guarded(lambda: _window_fits(check.smoothing, min(spec.interval_s, health.rollout_interval_s),
                                                path + ("smoothing",)))


def _some_checks(health: Health) -> Iterator[Problem]:
    if not health.checks:
        yield HEALTH + ("checks",), "expected at least one check, got an empty list"


def _names(items: list) -> list:
    """Each item's name; UNCHECKED where the item or its name did not validate."""
    return [read(lambda item=item: item.name) for item in items]


def _check_fields_for_scope(check: HealthCheck, path: tuple) -> Iterator[Problem]:
    """A revision check names errors and requests (a ratio) or a query (a latency sample per pod)
    and a rollback or record action, without thresholds; other checks a query and unhealthy."""
    if check.hung is not None:
        yield from _hung_check_fields(check, path)
        return
    if check.scope != "revision":
        if check.query is None:
            yield path + ("query",), "expected a query, got none"
        if check.unhealthy is None:
            yield path + ("unhealthy",), "expected unhealthy (above or below a value), got none"
        for name in ("errors", "requests", "compare", "hold"):
            if getattr(check, name) is not None:
                yield path + (name,), f"only for scope revision, got scope {check.scope}"
        return
    ratio = check.errors is not None or check.requests is not None
    if ratio and check.query is not None:
        yield path + ("query",), "expected either errors and requests (a ratio) or query (a latency), got both"
    elif ratio and (check.errors is None or check.requests is None):
        missing = "errors" if check.errors is None else "requests"
        yield path + (missing,), f"expected {missing} too: a ratio check needs errors and requests per pod"
    elif not ratio and check.query is None:
        yield path, "expected errors and requests (a ratio) or query (a latency sample per pod), got neither"
    for name in ("unhealthy", "recovered", "smoothing"):
        if getattr(check, name) is not None:
            yield path + (name,), "not used by scope revision (the test compares the revisions), remove it"
    if check.action not in ("rollback", "record"):
        yield path + ("action",), f"must be rollback or record for scope revision, got {check.action}"
    elif check.hold is not None and check.action != "rollback":
        yield path + ("hold",), f"only with action rollback (a hold waits for the verdict that rolls back), " \
                                f"got action {check.action}"
    if check.on_missing != "ignore":
        yield path + ("onMissing",), "must be ignore for scope revision: missing data never fires"


def _hung_check_fields(check: HealthCheck, path: tuple) -> Iterator[Problem]:
    """A hung check reads the pods' Ready condition (no query, no thresholds: notReadyFor is its
    threshold) and acts on the hung pods themselves: restart-pod, or record to watch it first."""
    if "scope" in check.model_fields_set and check.scope != "pod":
        yield path + ("scope",), f"must be pod for a hung check (it judges each pod), got {check.scope}"
    for name in ("query", "errors", "requests", "compare", "hold", "smoothing", "unhealthy", "recovered"):
        if getattr(check, name) is not None:
            yield path + (name,), ("not used by a hung check (it reads the pods' Ready condition; hung.notReadyFor "
                                   "is its threshold), remove it")
    if check.action not in ("restart-pod", "record"):
        yield path + ("action",), f"must be restart-pod or record for a hung check, got {check.action}"
    if check.on_missing != "ignore":
        yield path + ("onMissing",), "must be ignore for a hung check: the pod list is never missing"


def _recovery_on_healthy_side(check: HealthCheck, path: tuple) -> Iterator[Problem]:
    """Unhealthy above X needs recovered below Y <= X (and the mirror image): a hysteresis band."""
    unhealthy, recovered = check.unhealthy, check.recovered
    if unhealthy is None or recovered is None:
        return
    if unhealthy.above is not None:
        bad, good, limit, sign = "above", "below", unhealthy.above, "<="
        value = recovered.below
    else:
        bad, good, limit, sign = "below", "above", unhealthy.below, ">="
        value = recovered.above
    if value is None:
        yield (path + ("recovered", bad),
               f"expected recovered.{good} (the opposite of unhealthy.{bad}), got recovered.{bad}")
    elif (value > limit) if good == "below" else (value < limit):
        yield (path + ("recovered", good),
               f"must be {sign} unhealthy.{bad} ({format_number(limit)}) so that recovery is on the "
               f"healthy side, got {format_number(value)}")


def _duplicates(values: list, path: tuple, what: str, field: str | None = None) -> Iterator[Problem]:
    """Each value equal to an earlier one; UNCHECKED values (items that did not validate) are left out."""
    first: dict = {}
    for i, value in enumerate(values):
        if value is UNCHECKED:
            continue
        if value in first:
            where = path + (i, field) if field else path + (i,)
            yield where, f"duplicate {what} '{value}' (first at {path[-1]}[{first[value]}])"
        else:
            first[value] = i
