"""The policy file format: load, validate, apply defaults and presets, compile for the core.

Public API::

    load_policies(paths) -> list[LoadedPolicy]      # raises controller.errors.PolicyError
    load_policy_text(text, filename) -> list[LoadedPolicy]
    check_policies(paths) -> PolicyCheck           # same, without raising
    check_policy_texts([(text, filename)]) -> PolicyCheck  # of texts in memory
    compile_policy(PolicyDocument) -> PolicyParams
    health_side(LoadedPolicy) -> LoadedPolicy      # its health checks alone (scaling set aside)
    policy_json_schema() -> dict
"""

from controller.policy.compile import compile_health, compile_policy, compile_targets
from controller.policy.durations import format_duration, parse_duration, parse_percent
from controller.policy.load import (LoadedPolicy, PolicyCheck, check_policies, check_policy_texts, health_side,
                                   load_policies, load_policy_text)
from controller.policy.schema import PolicyDocument
from controller.policy.schema_export import policy_json_schema, policy_json_schema_text
from controller.policy.specs import (BudgetSpec, Comparison, HealthAction, HealthCheckSpec, HealthSpec,
                                     SmoothingSpec, TargetSelector, Threshold)

__all__ = [
    "BudgetSpec", "Comparison", "HealthAction", "HealthCheckSpec", "HealthSpec", "LoadedPolicy", "PolicyCheck",
    "PolicyDocument", "SmoothingSpec", "TargetSelector", "Threshold", "check_policies", "check_policy_texts",
    "compile_health",
    "compile_policy", "compile_targets", "format_duration", "health_side", "load_policies", "load_policy_text", "parse_duration",
    "parse_percent", "policy_json_schema", "policy_json_schema_text",
]
