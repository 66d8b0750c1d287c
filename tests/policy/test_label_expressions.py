"""matchExpressions of a policy's selector: validated as Kubernetes does, rendered as the
labelSelector query the apiserver parses, and matched in process exactly as it matches."""

from __future__ import annotations

import pytest

from controller.model import TargetSelector
from controller.policy.load import check_policy_texts
from simulators.kubeapi.selectors import parse_label_selector

LABELS = [{}, {"app": "web"}, {"app": "web", "tier": "front"}, {"app": "api", "tier": "back", "legacy": "1"},
          {"tier": ""}]


@pytest.mark.parametrize("labels, expressions, rendered", [
    pytest.param((("app", "web"),), (), "app=web", id="labels-only"),
    pytest.param((), (("tier", "In", ("front", "edge")),), "tier in (front,edge)", id="in"),
    pytest.param((), (("tier", "NotIn", ("back",)),), "tier notin (back)", id="notin"),
    pytest.param((), (("tier", "Exists", ()),), "tier", id="exists"),
    pytest.param((), (("legacy", "DoesNotExist", ()),), "!legacy", id="does-not-exist"),
    pytest.param((("app", "web"),), (("tier", "In", ("front",)), ("legacy", "DoesNotExist", ())),
                 "app=web,tier in (front),!legacy", id="labels-and-two-expressions"),
])
def test_rendered_and_matched_as_the_apiserver_does(labels, expressions, rendered):
    selector = TargetSelector("Deployment", "shop", match_labels=labels, match_expressions=expressions)
    assert selector.label_selector == rendered
    apiserver = parse_label_selector(rendered)  # the simulated apiserver's parser, strict as the real one
    for workload in LABELS:
        assert selector.matches(workload) == apiserver(workload), workload


POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: web}}
spec:
  targets:
    namespace: shop
    selector: {selector}
  interval: 15s
  replicas: {{min: 2, max: 20}}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {{averagePerReplica: 85}}
"""


@pytest.mark.parametrize("selector, error", [
    pytest.param("{matchExpressions: [{key: tier, operator: In, values: [front]}]}", None, id="expressions-only"),
    pytest.param("{matchLabels: {app: web}, matchExpressions: [{key: legacy, operator: DoesNotExist}]}", None,
                 id="labels-and-expressions"),
    pytest.param("{matchExpressions: [{key: tier, operator: In}]}", "operator In needs at least one value",
                 id="in-without-values"),
    pytest.param("{matchExpressions: [{key: tier, operator: Exists, values: [x]}]}", "operator Exists takes no values",
                 id="exists-with-values"),
    pytest.param("{matchExpressions: [{key: tier, operator: Gt, values: ['1']}]}", "operator", id="unknown-operator"),
    pytest.param("{matchExpressions: [{key: 'bad key', operator: Exists}]}", "a label key", id="bad-key"),
    pytest.param("{matchExpressions: [{key: tier, operator: In, values: ['']}]}", "", id="an-empty-value"),
    pytest.param("{}", "matchLabels or matchExpressions: give at least one label", id="nothing-to-match"),
])
def test_expressions_are_validated_with_file_line_and_field(selector, error):
    check = check_policy_texts([(POLICY.format(selector=selector), "web.yaml")])
    if error is None:
        assert check.errors == [] and len(check.policies) == 1
        assert check.policies[0].targets.match_expressions
    else:
        assert check.errors and error in str(check.errors[0]), check.errors
        assert str(check.errors[0]).startswith("web.yaml:7: spec.targets.selector"), check.errors
