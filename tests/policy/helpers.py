"""Shared test material: a valid policy whose lines the error tables refer to by number."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.errors import PolicyError
from controller.policy import LoadedPolicy, load_policy_text

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
FILE = "policies/shop.yaml"
#: libyaml's safe dumper where PyYAML has it, for tests that write many files: dumping them in
#: Python was a third of such a test (the text differs in style only, never in values)
FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Line numbers matter: the broken-policy table names them. Keep one field per line.
BASE = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: shop}
spec:
  targets: {namespace: shop, name: web}
  interval: 15s
  replicas: {min: 2, max: 10}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 80}
    smoothing: {ewma: {halfLife: 45s}}
    tolerance: {up: 0.05, down: 0.15}
    staleAfter: 2m
    behavior:
      scaleUp: {stabilizationWindow: 0s}
      scaleDown: {stabilizationWindow: 5m, policies: [{type: Percent, value: 20, period: 1m}]}
    onMissingMetrics: {hold: 2m, then: {fallbackReplicas: 4}}
  health:
    checks:
      - name: errors
        query: sum by (namespace, deployment) (rate(http_errors_total[1m]))
        unhealthy: {above: 0.05, for: 1m}
        recovered: {below: 0.02, for: 2m}
        action: rollback
    budgets: {restartsPerHour: 6, rollbacksPerDay: 2, maxUnavailable: 25%}
"""


def edit(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced (fails loudly if the table drifts)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def error_lines(text: str, filename: str = FILE) -> list[str]:
    """Every error of ``text`` as the CLI prints it; fails if the text is valid."""
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, filename)
    return [str(e) for e in caught.value.errors]


def load_one(text: str) -> LoadedPolicy:
    (policy,) = load_policy_text(text, FILE)
    return policy


def policy_with(spec_lines: str, name: str = "p") -> str:
    """A policy document whose ``spec`` body is ``spec_lines`` (indented two spaces already)."""
    return f"apiVersion: setpoint/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n{spec_lines}"


def hpa_preset_with(metric_line: str = "", behavior_line: str = "") -> str:
    """A ``preset: hpa`` policy with one averagePerReplica metric, plus ``metric_line`` under the
    metric (line 13) or ``behavior_line`` under ``behavior`` (line 14), each one YAML line without
    its indentation."""
    text = """\
  preset: hpa
  targets: {namespace: shop, name: web}
  replicas: {min: 1, max: 10}
  scaling:
    metrics:
      - name: rps
        query: sum(rate(x[1m]))
        target: {averagePerReplica: 80}
"""
    if metric_line:
        text += f"        {metric_line}\n"
    if behavior_line:
        text += f"    behavior:\n      {behavior_line}\n"
    return policy_with(text)
