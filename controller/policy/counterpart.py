"""The ``hpa`` counterpart of a policy (``setpoint backtest --compare hpa``): the same targets,
replica bounds, metrics and interval under ``preset: hpa``, with everything HPA lacks removed."""

from __future__ import annotations

from dataclasses import replace

from controller.policy import presets
from controller.policy.compile import compile_policy
from controller.policy.load import LoadedPolicy
from controller.policy.schema import Tolerance


def hpa_counterpart(loaded: LoadedPolicy, name: str = "hpa") -> LoadedPolicy:
    """``loaded`` as Kubernetes HPA would run it: no smoothing, no missing-metrics rule, HPA's
    default tolerance, and no ``behavior`` (HPA's legacy path), min replicas at least 1. A policy
    that already runs as HPA (``preset: hpa``, e.g. `setpoint import`'s of an HPA with its
    ``behavior``) keeps its scaling as it is: that is the HPA that ran, not HPA's defaults."""
    model = loaded.model
    spec = model.spec
    scaling = spec.scaling if spec.preset == presets.HPA else spec.scaling.model_copy(update={
        "smoothing": None, "on_missing_metrics": None, "behavior": None,
        "tolerance": Tolerance(up=presets.DEFAULT_TOLERANCE, down=presets.DEFAULT_TOLERANCE)})
    replicas = spec.replicas.model_copy(update={"min_replicas": max(1, spec.replicas.min_replicas)})
    new_spec = spec.model_copy(update={"preset": presets.HPA, "scaling": scaling, "replicas": replicas,
                                       "health": None})
    new_model = model.model_copy(update={"spec": new_spec, "metadata": model.metadata.model_copy(
        update={"name": name})})
    return replace(loaded, name=name, model=new_model, params=compile_policy(new_model), health=None,
                   health_params=None)


def spec_differences(a: LoadedPolicy, b: LoadedPolicy, whole: bool = False) -> list[str]:
    """``field: A vs B`` for every field of the two policies' specs that differs, targets aside,
    and health aside unless one of them only heals (then it is all they differ in; YAML names;
    durations as a file writes them). Metrics and checks are compared by name. ``whole``: targets
    and health too (a review of a change, where a changed selector or check must not read as no
    change)."""
    aside = set() if whole else {"targets"} if not (a.scales and b.scales) else {"health", "targets"}

    def spec(p: LoadedPolicy) -> dict:
        data = durations_written(p.model.spec.model_dump(by_alias=True, exclude=aside, exclude_none=True),
                                 p.model.spec.model_dump(exclude=aside, exclude_none=True))
        if "scaling" in data:
            data["scaling"]["metrics"] = {m["name"]: m for m in data["scaling"]["metrics"]}
        if "checks" in data.get("health", {}):
            data["health"]["checks"] = {c["name"]: c for c in data["health"]["checks"]}
        return data

    return differences(spec(a), spec(b))


def durations_written(aliased, plain, duration: bool = False):
    """``aliased`` (a model dump by YAML names) with its durations as a policy file writes them
    (``5m``, not ``300.0``), told by ``plain`` (the same dump by field names: a duration's ends in
    ``_s``); the two dumps have the same shape and order."""
    from controller.policy.durations import format_duration

    if isinstance(aliased, dict) and isinstance(plain, dict):
        return {k: durations_written(v, pv, pk.endswith("_s"))
                for (k, v), (pk, pv) in zip(aliased.items(), plain.items())}
    if isinstance(aliased, list) and isinstance(plain, list):
        return [durations_written(v, pv, duration) for v, pv in zip(aliased, plain)]
    if duration and isinstance(aliased, (int, float)) and not isinstance(aliased, bool):
        return format_duration(aliased)
    return aliased


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """``path: A vs B`` for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        here = f"{prefix}.{key}" if prefix else str(key)
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += differences(x, y, here)
        elif x != y:
            out.append(f"{here}: {_show(x)} vs {_show(y)}")
    return out


def _show(value) -> str:
    """A value as a policy file would write it: a mapping or list in YAML's flow style, whole
    floats as integers (it printed Python's repr: {'stabilizationWindow': 0.0, ...})."""
    if value is None:
        return "(not set)"
    if isinstance(value, (dict, list)):
        import yaml

        return yaml.safe_dump(_whole(value), default_flow_style=True, sort_keys=False, width=10**9).strip()
    return str(_whole(value))


def _whole(value):
    """``value`` with whole floats as integers, nested."""
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
