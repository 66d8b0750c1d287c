"""Field errors and cross-field errors in one pass: a broken policy file is not fixed in waves.

The cross-field rules (controller/policy/rules.py, and each model's own "exactly one of") run on
the parts of a document that validated (controller/policy/partial.py); a rule that reads a part
that did not is left out, so nothing is reported that cannot be decided yet."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from controller.errors import PolicyError
from controller.policy import load_policy_text
from controller.policy.messages import format_path
from tests.policy.helpers import BASE, FAST_DUMPER, FILE, edit, error_lines, policy_with

REPO = Path(__file__).resolve().parents[2]
POLICIES = sorted((REPO / "policies").glob("*.yaml"))

HEALTH_ONLY = """\
  targets: {namespace: shop, name: web}
  health:
    checks:
      - name: errors
        query: sum by (namespace, deployment) (rate(http_errors_total[1m]))
        unhealthy: {above: 0.05, for: 1m}
        recovered: {below: 0.08, for: 2m}
        action: rollback
      - name: memory
        scope: pod
        query: sum by (namespace, pod) (container_memory_working_set_bytes)
        unhealthy: {above: 100, for: 3x}
        action: restart-pod
      - name: errors
        query: sum by (namespace, deployment) (rate(http_errors_total[5m]))
        unhealthy: {above: 0.1}
        action: record
"""
RECOVERED_08 = ("spec.health.checks[0].recovered.below: must be <= unhealthy.above (0.05) so that recovery is on "
                "the healthy side, got 0.08")
FOR_3X = "expected a duration such as 30s, 5m, 1h30m or 500ms, got '3x'"


def edits(*pairs: tuple[str, str]) -> str:
    text = BASE
    for old, new in pairs:
        text = edit(text, old, new)
    return text


# (the broken file, every line `setpoint validate` prints for it, in one pass). Line numbers: BASE's.
ONE_PASS = [
    pytest.param(edits(("{up: 0.05,", "{up: -0.1,"), ("recovered: {below: 0.02,", "recovered: {below: 0.08,")), [
        "14: spec.scaling.tolerance.up: must be >= 0, got -0.1",
        "25: spec.health.checks[0].recovered.below: must be <= unhealthy.above (0.05) so that recovery is on the "
        "healthy side, got 0.08"], id="health-hysteresis-beside-a-scaling-field-error"),
    pytest.param(edits(("{min: 2, max: 10}", "{min: 5, max: 4}"), ("for: 1m}", "for: 3x}")), [
        "7: spec.replicas.min: must be <= max (4), got 5",
        f"24: spec.health.checks[0].unhealthy.for: {FOR_3X}"], id="replica-bounds-beside-a-health-field-error"),
    pytest.param(edits(("{fallbackReplicas: 4}", "{fallbackReplicas: 11}"), ("action: rollback", "action: reboot")), [
        "19: spec.scaling.onMissingMetrics.then.fallbackReplicas: must be within replicas [min 2, max 10], got 11",
        "26: spec.health.checks[0].action: expected 'restart-pod', 'rolling-restart', 'rollback', 'scale-up' or "
        "'record', got 'reboot'"], id="scaling-fallback-beside-a-health-field-error"),
    # within one check: the hysteresis reads unhealthy.above and recovered.below, both valid
    pytest.param(edits(("for: 1m}", "for: 3x}"), ("recovered: {below: 0.02,", "recovered: {below: 0.08,")), [
        f"24: spec.health.checks[0].unhealthy.for: {FOR_3X}", "25: " + RECOVERED_08],
        id="hysteresis-beside-a-field-error-of-the-same-check"),
    # a model's own rule ("exactly one of") beside a field error of the same model
    pytest.param(edit(BASE, "{above: 0.05, for: 1m}", "{above: 0.05, below: 0.01, for: 3x}"), [
        f"24: spec.health.checks[0].unhealthy.for: {FOR_3X}",
        "24: spec.health.checks[0].unhealthy: expected exactly one of above, below, got above and below"],
        id="exactly-one-beside-a-field-error-of-the-same-model"),
    pytest.param(edits(("{min: 2, max: 10}", "{min: 2, max: 10}\n  colour: blue"),
                       ("    metrics:\n      - name: rps\n        query: sum by (namespace, deployment) "
                        "(rate(http_requests_total[1m]))\n        target: {averagePerReplica: 80}\n",
                        "    metrics: []\n\n\n\n")), [
        "8: spec.colour: unknown field 'colour'; expected one of: preset, targets, interval, replicas, scaling, health",
        "10: spec.scaling.metrics: expected at least one metric, got an empty list"],
        id="no-metrics-beside-an-unknown-key"),
    pytest.param(edits(("target: {averagePerReplica: 80}", "target: {averagePerReplica: 80, capacityPerReplica: 50}\n"
                        "      - name: rps\n        query: 'rate(x[1m]'\n        target: {value: 1}")), [
        "12: spec.scaling.metrics[0].target.capacityPerReplica: must be above averagePerReplica x (1 + tolerance.up) "
        "= 80 x (1 + 0.05) = 84 (where a scale-up starts), got 50",
        "13: spec.scaling.metrics[1].name: duplicate metric name 'rps' (first at metrics[0])",
        "14: spec.scaling.metrics[1].query: not a query Prometheus can parse: the '(' at character 5 is not closed"],
        id="metric-rules-beside-a-broken-metric"),
    pytest.param(edit(BASE, "  replicas: {min: 2, max: 10}\n", "").replace("for: 1m}", "for: 3x}"), [
        "4: spec.replicas: required field is missing: a policy that scales (scaling, or a health check's scale-up) "
        "needs replicas: {min: N, max: M}",
        f"23: spec.health.checks[0].unhealthy.for: {FOR_3X}"], id="missing-replicas-beside-a-health-field-error"),
    pytest.param(policy_with(HEALTH_ONLY), [
        "11: " + RECOVERED_08,
        f"16: spec.health.checks[1].unhealthy.for: {FOR_3X}",
        "18: spec.health.checks[2].name: duplicate check name 'errors' (first at checks[0])"],
        id="one-broken-check-hides-no-other-check"),
    pytest.param(policy_with(HEALTH_ONLY.replace("      - name: memory", "      - name: Memory Leak")
                             .replace("recovered: {below: 0.08", "recovered: {below: 0.02")
                             .replace("[5m]))\n        unhealthy: {above: 0.1}", "[5m]))\n        unhealthy: {above: 0.1}\n"
                                      "        compare: {worseBy: 2x}")), [
        "13: spec.health.checks[1].name: expected a name of letters, digits, '-' and '_' that starts with a letter, "
        "got 'Memory Leak'",
        f"16: spec.health.checks[1].unhealthy.for: {FOR_3X}",
        "18: spec.health.checks[2].name: duplicate check name 'errors' (first at checks[0])",
        "21: spec.health.checks[2].compare: only for scope revision, got scope workload"],
        id="scope-rules-of-a-check-beside-another-checks-errors"),
]


@pytest.mark.parametrize("text, expected", ONE_PASS)
def test_field_and_cross_field_errors_come_in_one_pass(text, expected):
    assert error_lines(text) == [f"{FILE}:{line}" for line in expected]


# (the broken file, its only error): a rule that reads a part that did not validate is left out
NOTHING_UNDECIDED = [
    pytest.param(edit(BASE, "{min: 2, max: 10}", "{min: -1, max: 10}"), "7: spec.replicas.min: must be >= 0, got -1",
                 id="bounds-with-a-broken-min"),
    pytest.param(edit(BASE, "{min: 2, max: 10}", "{min: 12, max: ten}"),
                 "7: spec.replicas.max: expected an integer, got 'ten'", id="bounds-with-a-broken-max"),
    pytest.param(edit(BASE, "recovered: {below: 0.02,", "recovered: {below: high,"),
                 "25: spec.health.checks[0].recovered.below: expected a number, got 'high'",
                 id="hysteresis-with-a-broken-recovery"),
    pytest.param(edit(BASE, "{above: 0.05, for: 1m}", "{above: [0.05], for: 1m}"),
                 "24: spec.health.checks[0].unhealthy.above: expected a number, got a list",
                 id="hysteresis-with-a-broken-threshold"),
    pytest.param(edit(BASE, "{fallbackReplicas: 4}", "{fallbackReplicas: 40}").replace("max: 10}", "max: x}"),
                 "7: spec.replicas.max: expected an integer, got 'x'", id="fallback-with-broken-bounds"),
    pytest.param(edit(BASE, "      - name: errors\n", "      - name: 7\n"),
                 "22: spec.health.checks[0].name: expected a string, got 7", id="a-check-whose-name-is-broken"),
    pytest.param(edit(BASE, "  health:\n    checks:\n", "  health:\n    checks: oops\n    extra:\n"),
                 "21: spec.health.checks: expected a list, got 'oops'", id="checks-that-are-not-a-list"),
]


@pytest.mark.parametrize("text, expected", NOTHING_UNDECIDED)
def test_no_cross_field_rule_guesses_at_a_part_that_did_not_validate(text, expected):
    assert error_lines(text)[0] == f"{FILE}:{expected}"
    assert all("must be <=" not in line and "within replicas" not in line and "duplicate" not in line
               for line in error_lines(text)[1:]), error_lines(text)


# (the broken file, every line it gets): found by tests/policy/test_structural_fuzz.py's soundness
# property. A misspelt key stands for the field it suggests (the unknown-field error says which):
# that field is not absent to the cross-field rules, or one typo brought three wrong errors. A
# model whose own rule failed (neither above nor below) is no ground for rules that rely on it.
MISREAD = [
    pytest.param(edit(BASE, "target: {averagePerReplica: 80}", "target: {averagePerReplca: 80, capacityPerReplica: 100}\n"
                                                               "        ramp: {lead: 30s}"), [
        "12: spec.scaling.metrics[0].target.averagePerReplca: unknown field 'averagePerReplca'; did you mean "
        "'averagePerReplica'?"], id="a-misspelt-target-is-not-a-missing-one"),
    pytest.param(edit(BASE, "  replicas: {min: 2, max: 10}", "  replica: {min: 2, max: 10}"), [
        "7: spec.replica: unknown field 'replica'; did you mean 'replicas'?"], id="misspelt-replicas-are-not-missing"),
    pytest.param(edit(BASE, "{above: 0.05, for: 1m}", "{for: 3x}"), [
        f"24: spec.health.checks[0].unhealthy.for: {FOR_3X}",
        "24: spec.health.checks[0].unhealthy: expected exactly one of above, below, got none"],
        id="no-hysteresis-rule-on-a-threshold-with-neither-side"),
]


@pytest.mark.parametrize("text, expected", MISREAD)
def test_a_part_that_broke_its_own_rule_or_was_misspelt_is_not_read_as_valid(text, expected):
    assert error_lines(text) == [f"{FILE}:{line}" for line in expected]


def _nodes(value, prefix=()):
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _nodes(child, prefix + (key,))


def _under(path: str, node: str) -> bool:
    return path == node or path.startswith(node) and path[len(node)] in ".["


#: Values that break a scalar field's own rules here and there (of its kind or not)
WRONG_VALUE = ["", "x", -1, 0]


def wrong_kind(value) -> list:
    """Values of another kind than ``value``: an empty mapping is a mapping's right kind (an empty
    matchLabels is valid, its selector's own rule then speaks)."""
    return [[]] if isinstance(value, dict) else [{}] if isinstance(value, list) else [[], {}]


def breakages(value) -> list:
    """What replaces ``value``: values of another kind; a list of one empty item in a list; and
    for a scalar, values that break its own rules."""
    return wrong_kind(value) + ([[{}]] if isinstance(value, list) else [] if isinstance(value, dict) else WRONG_VALUE)


@pytest.mark.parametrize("policy", POLICIES, ids=[p.stem for p in POLICIES])
def test_every_field_of_every_example_broken_in_turn_is_reported_where_it_is(policy):
    """Each node of each example policy replaced in turn: a PolicyError naming file and line (no
    other exception: a rule handing a part that did not validate to code that checks its type
    would raise TypeError), and a value of the wrong kind reported at that node only."""
    documents = list(yaml.safe_load_all(policy.read_text(encoding="utf-8")))
    for n, data in enumerate(documents):
        for path in [p for p in _nodes(data) if len(p) > 1 and p[0] == "spec"]:
            original = data
            for part in path:
                original = original[part]
            kinds = wrong_kind(original)
            for value in breakages(original):
                broken = copy.deepcopy(documents)
                parent = broken[n]
                for part in path[:-1]:
                    parent = parent[part]
                parent[path[-1]] = value
                text = yaml.dump_all(broken, Dumper=FAST_DUMPER, sort_keys=False)
                try:
                    load_policy_text(text, "p.yaml")
                except PolicyError as exc:
                    assert exc.errors and all(e.file == "p.yaml" and e.line is not None for e in exc.errors), exc.errors
                    if value in kinds:
                        at = (f"[doc {n + 1}] " if len(documents) > 1 else "") + format_path(path)
                        assert all(_under(e.path, at) for e in exc.errors), (at, value, [str(e) for e in exc.errors])
