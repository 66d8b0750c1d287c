"""Broken policies: every kind of error, with the exact file, line and field path."""

from __future__ import annotations

import copy

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller.errors import FieldError, PolicyError
from controller.policy import check_policies, load_policies, load_policy_text
from tests.policy.helpers import BASE, FILE, edit, error_lines, load_one, policy_with


def test_base_policy_is_valid():
    assert load_one(BASE).name == "shop"


# (old, new) edits of BASE, and the single error line expected. Line numbers refer to BASE.
BROKEN = [
    # field rules
    pytest.param("{up: 0.05,", "{up: -0.1,",
                 "14: spec.scaling.tolerance.up: must be >= 0, got -0.1", id="tolerance-negative"),
    pytest.param("    tolerance:", "    tolerence:",
                 "14: spec.scaling.tolerence: unknown field 'tolerence'; did you mean 'tolerance'?",
                 id="unknown-key-with-suggestion"),
    pytest.param("  interval: 15s", "  interval: 15s\n  colour: blue",
                 "7: spec.colour: unknown field 'colour'; expected one of: preset, targets, interval, replicas, "
                 "scaling, health", id="unknown-key-lists-valid-names"),
    pytest.param("target: {averagePerReplica: 80}", "targte: {averagePerReplica: 80}",
                 "12: spec.scaling.metrics[0].targte: unknown field 'targte'; did you mean 'target'?",
                 id="misspelt-required-key-is-one-error"),
    pytest.param("replicas: {min: 2, max: 10}", "replicas: {min: 2}",
                 "7: spec.replicas.max: required field is missing", id="missing-field-uses-parent-line"),
    pytest.param("replicas: {min: 2, max: 10}", "replicas: [2, 10]",
                 "7: spec.replicas: expected a mapping, got a list", id="list-where-mapping-belongs"),
    pytest.param("budgets: {restartsPerHour: 6, rollbacksPerDay: 2, maxUnavailable: 25%}",
                 "escalation: {first: rollback}",
                 "27: spec.health.escalation: expected a list, got a mapping", id="mapping-where-list-belongs"),
    pytest.param("max: 10}", "max: ten}",
                 "7: spec.replicas.max: expected an integer, got 'ten'", id="string-for-integer"),
    pytest.param("{up: 0.05,", "{up: 5%,",
                 "14: spec.scaling.tolerance.up: expected a number, got '5%' (a plain number goes here, not a "
                 "percentage; 5% as a fraction is 0.05)", id="percent-for-a-fraction"),
    pytest.param("tolerance: {up: 0.05, down: 0.15}", "tolerance: 10%",
                 "14: spec.scaling.tolerance: expected a number (both directions) or a mapping {up, down}, got '10%' "
                 "(a plain number goes here, not a percentage; 10% as a fraction is 0.1)",
                 id="percent-for-both-tolerances"),
    pytest.param("{above: 0.05, for: 1m}", "{above: 5 %, for: 1m}",
                 "24: spec.health.checks[0].unhealthy.above: expected a number, got '5 %' (a plain number goes here, "
                 "not a percentage; 5 % as a fraction is 0.05)", id="percent-for-a-threshold"),
    pytest.param("max: 10}", "max: 50%}",
                 "7: spec.replicas.max: expected an integer, got '50%' (a plain number goes here, not a percentage)",
                 id="percent-for-an-integer"),
    pytest.param("max: 10}", "max: 10.5}",
                 "7: spec.replicas.max: expected an integer, got 10.5", id="float-for-integer"),
    pytest.param("max: 10}", "max: '10'}",
                 "7: spec.replicas.max: expected an integer, got '10' (quoted, so text: write 10 without quotes)",
                 id="quoted-number-is-not-coerced"),
    pytest.param("max: 10}", "max: 1e1}",
                 "7: spec.replicas.max: expected an integer, got '1e1' (YAML reads 1e1 as text: a number with an "
                 "exponent needs a decimal point and a signed exponent; write 10)", id="exponent-for-integer-is-text"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: 8e1}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: expected a number, got '8e1' (YAML reads 8e1 "
                 "as text: a number with an exponent needs a decimal point and a signed exponent; write 8.0e+1)",
                 id="exponent-without-point-is-text"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: 0.8e2}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: expected a number, got '0.8e2' (YAML reads "
                 "0.8e2 as text: a number with an exponent needs a decimal point and a signed exponent; write 0.8e+2)",
                 id="exponent-without-sign-is-text"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: '80'}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: expected a number, got '80' (quoted, so "
                 "text: write 80 without quotes)", id="quoted-number-for-number"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: 'inf'}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: expected a number, got 'inf'",
                 id="quoted-infinity-gets-no-hint"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: yes}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: expected a number, got true",
                 id="bool-for-number"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: .nan}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: expected a finite number, got nan",
                 id="nan"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: 0}",
                 "12: spec.scaling.metrics[0].target.averagePerReplica: must be > 0, got 0", id="target-zero"),
    pytest.param("{averagePerReplica: 80}", "{averagePerReplica: 80, value: 3}",
                 "12: spec.scaling.metrics[0].target: expected exactly one of value, averagePerReplica, "
                 "utilization, got value and averagePerReplica", id="two-metric-targets"),
    pytest.param("{averagePerReplica: 80}", "{}",
                 "12: spec.scaling.metrics[0].target: expected exactly one of value, averagePerReplica, "
                 "utilization, got none", id="no-metric-target"),
    pytest.param("{averagePerReplica: 80}", "{utilization: 70 percent}",
                 "12: spec.scaling.metrics[0].target.utilization: expected a percentage such as 70% or 70, "
                 "got '70 percent'", id="bad-percentage"),
    pytest.param("apiVersion: setpoint/v1", "apiVersion: setpoint/v2",
                 "1: apiVersion: expected 'setpoint/v1', got 'setpoint/v2'", id="wrong-api-version"),
    pytest.param("kind: Policy", "kind: HorizontalPodAutoscaler",
                 "2: kind: expected 'Policy', got 'HorizontalPodAutoscaler'", id="wrong-kind"),
    pytest.param("kind: Policy\n", "",
                 "1: kind: required field is missing (expected 'Policy')", id="missing-kind"),
    pytest.param("{name: shop}", "{name: Shop_1}",
                 "3: metadata.name: expected a DNS-1123 label (lowercase letters, digits and '-', starting and "
                 "ending with a letter or digit), got 'Shop_1'", id="name-not-dns-label"),
    pytest.param("interval: 15s", "interval: 15",
                 "6: spec.interval: expected a duration such as 30s, 5m, 1h30m or 500ms, got the bare number 15 "
                 "(add a unit, e.g. 15s)", id="duration-bare-number"),
    pytest.param("staleAfter: 2m", "staleAfter: 2 minutes",
                 "15: spec.scaling.staleAfter: expected a duration such as 30s, 5m, 1h30m or 500ms, "
                 "got '2 minutes' (write 2m)", id="duration-in-words-says-how-to-write-it"),
    pytest.param("staleAfter: 2m", "staleAfter: soon",
                 "15: spec.scaling.staleAfter: expected a duration such as 30s, 5m, 1h30m or 500ms, "
                 "got 'soon'", id="duration-bad-text"),
    pytest.param("interval: 15s", "interval: 500ms",
                 "6: spec.interval: must be at least 1s, got 500ms", id="interval-too-short"),
    pytest.param("{namespace: shop, name: web}", "{kind: Pod, namespace: shop, name: web}",
                 "5: spec.targets.kind: expected 'Deployment' or 'StatefulSet', got 'Pod'", id="target-kind"),
    pytest.param("{namespace: shop, name: web}", "{namespace: shop, name: web, names: [api]}",
                 "5: spec.targets: expected exactly one of name, names, selector, got name and names",
                 id="targets-two-ways"),
    pytest.param("{namespace: shop, name: web}", "{namespace: shop}",
                 "5: spec.targets: expected exactly one of name, names, selector, got none", id="targets-none"),
    pytest.param("{namespace: shop, name: web}", "{namespace: shop, selector: {matchLabels: {}}}",
                 "5: spec.targets.selector: matchLabels or matchExpressions: give at least one label to select on",
                 id="empty-selector"),
    pytest.param("action: rollback", "action: reboot",
                 "26: spec.health.checks[0].action: expected 'restart-pod', 'rolling-restart', 'rollback', "
                 "'scale-up' or 'record', got 'reboot'", id="unknown-action"),
    pytest.param("{above: 0.05, for: 1m}", "{above: 0.05, below: 0.01}",
                 "24: spec.health.checks[0].unhealthy: expected exactly one of above, below, got above and below",
                 id="threshold-both-ways"),
    pytest.param("then: {fallbackReplicas: 4}", "then: fallback",
                 "19: spec.scaling.onMissingMetrics.then: expected 'hold' or {fallbackReplicas: N}, got 'fallback'",
                 id="on-missing-then"),
    pytest.param("then: {fallbackReplicas: 4}}", "then: {fallbackReplicas: 4}}\n    onExternalScale: {handsOff: 30}",
                 "20: spec.scaling.onExternalScale.handsOff: expected a duration such as 30s, 5m, 1h30m or 500ms, "
                 "got the bare number 30 (add a unit, e.g. 30s)", id="hands-off-bare-number"),
    pytest.param("then: {fallbackReplicas: 4}}", "then: {fallbackReplicas: 4}}\n    onExternalScale: {handsOff: soon}",
                 "20: spec.scaling.onExternalScale.handsOff: expected a duration such as 30s, 5m, 1h30m or 500ms, "
                 "got 'soon'", id="hands-off-bad-text"),
    pytest.param("then: {fallbackReplicas: 4}}", "then: {fallbackReplicas: 4}}\n    onExternalScale: {handsOff: 31d}",
                 "20: spec.scaling.onExternalScale.handsOff: must be at most 720h, got 31d", id="hands-off-over-30d"),
    pytest.param("then: {fallbackReplicas: 4}}", "then: {fallbackReplicas: 4}}\n    onExternalScale: {deployManagers: [\"\"]}",
                 "20: spec.scaling.onExternalScale.deployManagers[0]: must not be empty", id="deploy-managers-empty-name"),
    pytest.param("then: {fallbackReplicas: 4}}", "then: {fallbackReplicas: 4}}\n    onExternalScale: {deployManagers: spinnaker}",
                 "20: spec.scaling.onExternalScale.deployManagers: expected a list, got 'spinnaker'", id="deploy-managers-not-a-list"),
    pytest.param("then: {fallbackReplicas: 4}}", "then: {fallbackReplicas: 4}}\n    onExternalScale: {hands: 5m}",
                 "20: spec.scaling.onExternalScale.hands: unknown field 'hands'; did you mean 'handsOff'?",
                 id="hands-off-unknown-key"),
    pytest.param("maxUnavailable: 25%", "maxUnavailable: 125%",
                 "27: spec.health.budgets.maxUnavailable: expected a pod count (e.g. 2) or a percentage of pods "
                 "from 0% to 100% (e.g. 25%), got '125%'", id="max-unavailable-over-100"),
    pytest.param("{stabilizationWindow: 0s}", "{stabilizationWindow: 2h}",
                 "17: spec.scaling.behavior.scaleUp.stabilizationWindow: must be at most 1h, got 2h",
                 id="stabilization-window-over-1h"),
    pytest.param("{type: Percent, value: 20, period: 1m}", "{type: Percent, value: 0, period: 1m}",
                 "18: spec.scaling.behavior.scaleDown.policies[0].value: must be > 0, got 0", id="rate-value-zero"),
    pytest.param("{type: Percent, value: 20, period: 1m}", "{type: Percent, value: 20, period: 31m}",
                 "18: spec.scaling.behavior.scaleDown.policies[0].period: must be at most 30m, got 31m",
                 id="rate-period-over-30m"),
    pytest.param("{type: Percent, value: 20, period: 1m}", "{type: Percent, value: 20, period: 0s}",
                 "18: spec.scaling.behavior.scaleDown.policies[0].period: must be longer than 0s, got 0s",
                 id="rate-period-zero"),
    pytest.param("{type: Percent,", "{type: percent,",
                 "18: spec.scaling.behavior.scaleDown.policies[0].type: expected 'Pods' or 'Percent', got 'percent'",
                 id="rate-type-case"),
    pytest.param("policies: [{type: Percent, value: 20, period: 1m}]", "policies: []",
                 "18: spec.scaling.behavior.scaleDown.policies: expected at least 1 entry, got a list with 0",
                 id="rate-policies-empty"),
    pytest.param("{ewma: {halfLife: 45s}}", "{window: {length: 1m, aggregate: percentile, percentile: 101}}",
                 "13: spec.scaling.smoothing.window.percentile: must be <= 100, got 101", id="percentile-over-100"),
    pytest.param("{ewma: {halfLife: 45s}}", "{window: {length: 1m, aggregate: percentile, percentile: 0}}",
                 "13: spec.scaling.smoothing.window.percentile: must be > 0, got 0", id="percentile-zero"),
    pytest.param("{ewma: {halfLife: 45s}}", "{window: {length: 1m, aggregate: percentile}}",
                 "13: spec.scaling.smoothing.window: aggregate: percentile needs a percentile (e.g. percentile: 90)",
                 id="percentile-missing"),
    pytest.param("{ewma: {halfLife: 45s}}", "{ewma: {halfLife: 45s}, window: {length: 1m}}",
                 "13: spec.scaling.smoothing: expected exactly one of ewma, window, got ewma and window",
                 id="two-smoothings"),
    pytest.param("{ewma: {halfLife: 45s}}", "{ewma: {halfLife: 0s}}",
                 "13: spec.scaling.smoothing.ewma.halfLife: must be longer than 0s, got 0s", id="half-life-zero"),
    pytest.param("tolerance: {up: 0.05, down: 0.15}", "tolerance: [0.05, 0.15]",
                 "14: spec.scaling.tolerance: expected a number (both directions) or a mapping {up, down}, got a list",
                 id="tolerance-list"),
    # YAML-level problems
    pytest.param("  interval: 15s", "  replicas: {min: 1, max: 3}",
                 "7: spec.replicas: duplicate key 'replicas' (first at line 6); YAML would silently keep only "
                 "the last one", id="duplicate-key"),
    pytest.param("target: {averagePerReplica: 80}", "target: {averagePerReplica: 80",
                 "13: invalid YAML: expected ',' or '}', but got ':' (while parsing a flow mapping at line 12)",
                 id="malformed-yaml"),
    # cross-field rules
    pytest.param("{min: 2, max: 10}", "{min: 5, max: 4}",
                 "7: spec.replicas.min: must be <= max (4), got 5", id="min-above-max"),
    pytest.param("{min: 2, max: 10}", "{min: -1, max: 10}",
                 "7: spec.replicas.min: must be >= 0, got -1", id="min-negative"),
    pytest.param("{min: 2, max: 10}", "{min: 0, max: 0}",
                 "7: spec.replicas.max: must be >= 1, got 0", id="max-zero"),
    pytest.param("then: {fallbackReplicas: 4}", "then: {fallbackReplicas: 11}",
                 "19: spec.scaling.onMissingMetrics.then.fallbackReplicas: must be within replicas [min 2, max 10], "
                 "got 11", id="fallback-above-max"),
    pytest.param("recovered: {below: 0.02,", "recovered: {below: 0.08,",
                 "25: spec.health.checks[0].recovered.below: must be <= unhealthy.above (0.05) so that recovery is "
                 "on the healthy side, got 0.08", id="recovered-on-unhealthy-side"),
    pytest.param("recovered: {below: 0.02,", "recovered: {above: 0.02,",
                 "25: spec.health.checks[0].recovered.above: expected recovered.below (the opposite of "
                 "unhealthy.above), got recovered.above", id="recovered-same-comparison"),
    pytest.param("      - name: rps\n", "      - name: rps\n        query: x\n        target: {value: 1}\n"
                 "      - name: rps\n", "13: spec.scaling.metrics[1].name: duplicate metric name 'rps' "
                 "(first at metrics[0])", id="duplicate-metric-name"),
    pytest.param("    metrics:\n      - name: rps\n        query: sum by (namespace, deployment) "
                 "(rate(http_requests_total[1m]))\n        target: {averagePerReplica: 80}\n",
                 "    metrics: []\n\n\n\n", "9: spec.scaling.metrics: expected at least one metric, got an empty list",
                 id="no-metrics"),
]


@pytest.mark.parametrize("old, new, expected", BROKEN)
def test_broken_policy(old, new, expected):
    assert error_lines(edit(BASE, old, new)) == [f"{FILE}:{expected}"]


HPA_SCALING = """\
  preset: hpa
  targets: {namespace: shop, name: web}
  replicas: {min: 1, max: 10}
  scaling:
    metrics: [{name: cpu, query: x, target: {utilization: 70%}}]
"""


@pytest.mark.parametrize("extra, expected", [
    pytest.param("    smoothing: {ewma: {halfLife: 30s}}\n",
                 "10: spec.scaling.smoothing: not allowed with preset: hpa (HPA does not smooth metrics)",
                 id="smoothing"),
    pytest.param("    onMissingMetrics: {hold: 1m}\n",
                 "10: spec.scaling.onMissingMetrics: not allowed with preset: hpa "
                 "(HPA has its own missing-metrics rules)", id="on-missing-metrics"),
])
def test_preset_hpa_refuses_what_hpa_cannot_do(extra, expected):
    assert error_lines(policy_with(HPA_SCALING + extra)) == [f"{FILE}:{expected}"]


@pytest.mark.parametrize("spec, expected", [
    pytest.param(HPA_SCALING.replace("min: 1", "min: 0"), "7: spec.replicas.min: must be >= 1 with preset: hpa, got 0",
                 id="hpa-min-zero"),
    pytest.param("  preset: hpa\n  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 2}\n"
                 "  health: {checks: [{name: up, query: x, unhealthy: {below: 1}, action: record}]}\n",
                 "5: spec.preset: preset: hpa needs spec.scaling", id="hpa-without-scaling"),
    pytest.param("  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 2}\n",
                 "4: spec: nothing to do: expected scaling, health or both", id="neither-scaling-nor-health"),
    pytest.param("  targets: {namespace: shop, names: [web, api, web]}\n  replicas: {min: 1, max: 2}\n"
                 "  health: {checks: [{name: up, query: x, unhealthy: {below: 1}, action: record}]}\n",
                 "5: spec.targets.names[2]: duplicate workload name 'web' (first at names[0])", id="duplicate-target"),
    pytest.param("  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 2}\n"
                 "  health:\n    checks: []\n",
                 "8: spec.health.checks: expected at least one check, got an empty list", id="no-health-checks"),
    pytest.param("  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 2}\n"
                 "  health:\n    checks:\n"
                 "      - {name: up, query: x, unhealthy: {below: 1}, action: record}\n"
                 "      - {name: up, query: y, unhealthy: {below: 1}, action: record}\n",
                 "10: spec.health.checks[1].name: duplicate check name 'up' (first at checks[0])",
                 id="duplicate-check-name"),
    pytest.param("  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 2}\n"
                 "  health:\n    checks:\n"
                 "      - {name: up, query: x, unhealthy: {below: 1}, recovered: {above: 0.5}, action: record}\n",
                 "9: spec.health.checks[0].recovered.above: must be >= unhealthy.below (1) so that recovery is on "
                 "the healthy side, got 0.5", id="recovered-below-side"),
    pytest.param("  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 2}\n"
                 "  health:\n    checks: [{name: up, query: x, unhealthy: {below: 1}, action: record}]\n"
                 "    escalation: [restart-pod, rollback, restart-pod]\n",
                 "9: spec.health.escalation[2]: duplicate escalation step 'restart-pod' (first at escalation[0])",
                 id="duplicate-escalation-step"),
    pytest.param("  targets: {kind: StatefulSet, namespace: shop, name: db}\n  replicas: {min: 1, max: 2}\n"
                 "  health:\n    checks: [{name: errors, query: x, unhealthy: {above: 1}, action: rollback}]\n",
                 "8: spec.health.checks[0].action: rollback is for Deployments (it goes back to one of their "
                 "ReplicaSets); the targets are StatefulSets: use rolling-restart or record",
                 id="statefulset-rollback-check"),
    pytest.param("  targets: {kind: StatefulSet, namespace: shop, name: db}\n  replicas: {min: 1, max: 2}\n"
                 "  health:\n    checks: [{name: up, query: x, unhealthy: {below: 1}, action: rolling-restart}]\n"
                 "    escalation: [rolling-restart, rollback]\n",
                 "9: spec.health.escalation[1]: rollback is for Deployments (it goes back to one of their "
                 "ReplicaSets); the targets are StatefulSets: remove this step",
                 id="statefulset-rollback-escalation"),
])
def test_cross_field_rules(spec, expected):
    assert error_lines(policy_with(spec)) == [f"{FILE}:{expected}"]


STATEFULSET_REVISION_CHECK = ("  targets: {kind: StatefulSet, namespace: shop, name: db}\n  health:\n    checks:\n"
                              "      - {name: canary-errors, scope: revision, errors: e, requests: r, action: ACTION}\n")


@pytest.mark.parametrize("action, expected", [
    # a StatefulSet's canary is judged against its stable pods and said, not rolled back
    pytest.param("record", [], id="statefulset-revision-check-record-accepted"),
    pytest.param("rollback", [f"{FILE}:8: spec.health.checks[0].action: rollback is for Deployments (it goes back to "
                              "one of their ReplicaSets); the targets are StatefulSets: use record (the canary's "
                              "comparison with the stable pods is said in a Warning Event RevisionWorseRecorded, "
                              "not acted on)"], id="statefulset-revision-check-rollback-refused"),
])
def test_a_statefulset_revision_check_records(action, expected):
    text = policy_with(STATEFULSET_REVISION_CHECK.replace("ACTION", action))
    if expected:
        assert error_lines(text) == expected
    else:
        assert load_one(text).health.revision_checks[0].action.word == "record"


@pytest.mark.parametrize("text, expected", [
    pytest.param("", f"{FILE}: file is empty: expected a Policy document", id="empty"),
    pytest.param("# only a comment\n\n", f"{FILE}: file is empty: expected a Policy document", id="comments-only"),
    pytest.param("---\n---\n", f"{FILE}: file is empty: expected a Policy document", id="empty-documents"),
    pytest.param("- apiVersion: setpoint/v1\n", f"{FILE}:1: expected a Policy document (a mapping with apiVersion, "
                 "kind, metadata, spec), got a list", id="root-is-a-list"),
    pytest.param("just text\n", f"{FILE}:1: expected a Policy document (a mapping with apiVersion, kind, metadata, "
                 "spec), got 'just text'", id="root-is-text"),
    pytest.param("apiVersion: setpoint/v1\nkind: Scenario\nspec: {anything: 1}\n",
                 f"{FILE}:2: kind: expected 'Policy', got 'Scenario'", id="other-kind-is-not-checked-further"),
])
def test_file_level_errors(text, expected):
    assert error_lines(text) == [expected]


def test_multi_document_paths_name_the_document_and_lines_count_from_the_file_start():
    second = BASE.replace("{name: shop}", "{name: cart}").replace("max: 10}", "max: 0}")
    lines = error_lines(BASE + "---\n" + second)
    assert lines == [f"{FILE}:35: [doc 2] spec.replicas.max: must be >= 1, got 0"]


def test_several_errors_are_collected_in_file_order():
    text = (edit(edit(edit(BASE, "interval: 15s", "interval: 15"), "{up: 0.05,", "{up: -1,"),
                  "action: rollback", "action: reboot"))
    lines = error_lines(text)
    assert [line.split(": ")[0] for line in lines] == [f"{FILE}:6", f"{FILE}:14", f"{FILE}:26"]


def test_field_and_cross_field_errors_of_different_documents_come_together():
    bad_fields = BASE.replace("{name: shop}", "{name: one}").replace("interval: 15s", "interval: soon")
    bad_cross = BASE.replace("{name: shop}", "{name: two}").replace("name: web}", "name: api}").replace(
        "{min: 2, max: 10}", "{min: 9, max: 3}")
    lines = error_lines(bad_fields + "---\n" + bad_cross)
    assert lines == [
        f"{FILE}:6: [doc 1] spec.interval: expected a duration such as 30s, 5m, 1h30m or 500ms, got 'soon'",
        f"{FILE}:35: [doc 2] spec.replicas.min: must be <= max (3), got 9",
    ]


def write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_duplicate_policy_names_across_files(tmp_path):
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "b.yaml", BASE.replace("name: web}", "name: api}"))
    with pytest.raises(PolicyError) as caught:
        load_policies([tmp_path])
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path}/b.yaml:3: metadata.name: duplicate policy name 'shop' (first defined at {tmp_path}/a.yaml:3)"]


def test_two_scaling_policies_may_not_name_the_same_workload(tmp_path):
    write(tmp_path, "a.yaml", BASE)
    write(tmp_path, "b.yaml", BASE.replace("{name: shop}", "{name: other}"))
    check = check_policies([tmp_path])
    assert [str(e) for e in check.errors] == [
        f"{tmp_path}/b.yaml:5: spec.targets.name: Deployment shop/web is already scaled by policy 'shop' "
        f"({tmp_path}/a.yaml:5)"]


def test_errors_of_every_file_are_collected(tmp_path):
    write(tmp_path, "a.yaml", edit(BASE, "interval: 15s", "interval: 15"))
    write(tmp_path, "b.yml", "a: [\n")
    write(tmp_path, "notes.txt", "not a policy")
    check = check_policies([tmp_path, tmp_path / "missing.yaml"])
    assert [(e.file.rsplit("/", 1)[-1], e.line) for e in check.errors] == [
        ("missing.yaml", None), ("a.yaml", 6), ("b.yml", 2)]
    assert check.policies == []


def test_a_file_named_twice_is_read_once(tmp_path):
    path = write(tmp_path, "a.yaml", BASE)
    assert [p.name for p in load_policies([path, tmp_path, str(path)])] == ["shop"]


@pytest.mark.parametrize("content, message", [
    pytest.param(b"\xff\xfe\x00garbage", "not UTF-8 text", id="binary"),
])
def test_unreadable_files(tmp_path, content, message):
    (tmp_path / "x.yaml").write_bytes(content)
    (error,) = check_policies([tmp_path]).errors
    assert message in error.message


def test_empty_folder(tmp_path):
    (error,) = check_policies([tmp_path]).errors
    assert error.message == "no *.yaml or *.yml files in this folder"


@pytest.mark.parametrize("links, others", [
    pytest.param({"broken.yaml": "nowhere.yaml"}, True, id="dangling-beside-a-policy"),
    pytest.param({"loop1.yaml": "loop2.yaml", "loop2.yaml": "loop1.yaml"}, True, id="loop-beside-a-policy"),
    pytest.param({"broken.yml": "nowhere.yml"}, False, id="dangling-alone"),
])
def test_a_broken_symlink_in_a_folder_is_an_error_not_skipped(tmp_path, links, others):
    """A ConfigMap key whose link broke was skipped: the folder validated without the policy."""
    if others:
        write(tmp_path, "a.yaml", BASE)
    for name, target in links.items():
        (tmp_path / name).symlink_to(tmp_path / target)
    check = check_policies([tmp_path])
    assert sorted((Path(e.file).name, e.message) for e in check.errors) == sorted(
        (name, "a broken or looping symbolic link") for name in links)


# Any YAML value anywhere: a PolicyError or a policy, never another exception.
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100) | st.floats(allow_nan=True) | st.text(max_size=8)
    | st.sampled_from(["15s", "25%", "hpa", "Max", "rollback", "above"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, prefix + (i,))


BASE_DATA = yaml.safe_load(BASE)
BASE_PATHS = [p for p in _paths(BASE_DATA) if p]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(BASE_PATHS), value=yaml_values)
def test_any_value_anywhere_gives_a_policy_error_or_a_policy(path, value):
    data = copy.deepcopy(BASE_DATA)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    try:
        load_policy_text(yaml.safe_dump(data), FILE)
    except PolicyError as exc:
        assert exc.errors and all(isinstance(e, FieldError) and e.message for e in exc.errors)


@pytest.mark.parametrize("start", range(0, len(BASE), 97))
def test_any_damaged_text_gives_a_policy_error_or_a_policy(start):
    """Cutting characters out of a valid file, at many places, never raises anything but PolicyError."""
    for width in (1, 2, 5):
        try:
            load_policy_text(BASE[:start] + BASE[start + width:], FILE)
        except PolicyError as exc:
            assert exc.errors



@settings(max_examples=200, deadline=None)
@given(whole=st.integers(0, 10**6), fraction=st.sampled_from(["", ".", ".5", ".25"]),
       exp_sign=st.sampled_from(["", "+", "-"]), exponent=st.integers(0, 8))
def test_the_exponent_hint_is_read_back_as_the_same_number(whole, fraction, exp_sign, exponent):
    """Every exponent form YAML reads as text, written as the hint says, loads as the number
    Python reads in the text (the policy loads, with that target)."""
    text = f"{whole}{fraction}e{exp_sign}{exponent}"
    assume(isinstance(yaml.safe_load(f"x: {text}")["x"], str))  # text to YAML: the hint's case
    assume(0 < float(text) <= 1e12)  # within the field's bounds
    (message,) = error_lines(BASE.replace("{averagePerReplica: 80}", f"{{averagePerReplica: {text}}}"))
    written = message.split("; write ")[1].rstrip(")")
    loaded = load_one(BASE.replace("{averagePerReplica: 80}", f"{{averagePerReplica: {written}}}"))
    assert loaded.params.metrics[0].target == pytest.approx(float(text), rel=1e-12)
