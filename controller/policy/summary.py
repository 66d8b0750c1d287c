"""One-line summaries of loaded policies, for ``setpoint validate``."""

from __future__ import annotations

from controller.policy.load import LoadedPolicy


def plural(count: int | float, word: str, words: str | None = None) -> str:
    """``1 policy``, ``2 policies``, ``0.5 simulated days``: ``word`` for exactly one, else
    ``words`` (default: ``word`` + s). A float is written as ``:g`` does (1.0: ``1 day``)."""
    number = f"{count:g}" if isinstance(count, float) else f"{count}"
    return f"{number} {word if count == 1 else words or word + 's'}"


def policy_summary(policy: LoadedPolicy) -> str:
    """``web-rps: 2 targets, 1 metric, 0 health checks`` (plus ``preset hpa`` when set)."""
    spec = policy.model.spec
    metrics = len(spec.scaling.metrics) if spec.scaling else 0
    checks = len(policy.health.checks) + len(policy.health.revision_checks) if policy.health else 0
    parts = [policy.targets.describe(), plural(metrics, "metric"), plural(checks, "health check")]
    if policy.preset:
        parts.append(f"preset {policy.preset}")
    return f"{policy.name}: {', '.join(parts)}"


def file_summary(file: str, policies: list[LoadedPolicy]) -> str:
    """``policies/web-rps.yaml: ok, 1 policy (web-rps: 2 targets, 1 metric, 0 health checks)``."""
    details = "; ".join(policy_summary(p) for p in policies)
    return f"{file}: ok, {plural(len(policies), 'policy', 'policies')} ({details})"
