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


# --- one selector inside another (validate's warning of policies bound to meet) --------------

import itertools  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYS, VALUES = ("app", "tier"), ("x", "y", "z")
# every state of the two keys: absent, a value the selectors name, or one they never name ("w"
# stands for all of those): a selector can tell no two unnamed values apart
ALL_LABELS = [{k: v for k, v in zip(KEYS, states) if v is not None}
              for states in itertools.product((None, *VALUES, "w"), repeat=len(KEYS))]


def sel(*requirements, labels=()) -> TargetSelector:
    return TargetSelector("Deployment", "shop", match_labels=tuple(labels), match_expressions=tuple(requirements))


@pytest.mark.parametrize("a, b, within", [
    pytest.param(sel(labels=[("app", "x")]), sel(labels=[("app", "x")]), True, id="same-labels"),
    pytest.param(sel(labels=[("app", "x"), ("tier", "y")]), sel(labels=[("app", "x")]), True, id="more-labels-inside"),
    pytest.param(sel(labels=[("app", "x")]), sel(labels=[("app", "x"), ("tier", "y")]), False, id="fewer-labels-not"),
    pytest.param(sel(labels=[("app", "x")]), sel(("app", "In", ("x", "y"))), True, id="a-value-inside-its-set"),
    pytest.param(sel(("app", "In", ("x", "y"))), sel(labels=[("app", "x")]), False, id="a-set-not-inside-one-value"),
    pytest.param(sel(("app", "In", ("x",))), sel(("app", "NotIn", ("y",))), True, id="in-x-inside-notin-y"),
    pytest.param(sel(("app", "NotIn", ("y",))), sel(("app", "Exists", ())), False, id="notin-allows-absent"),
    pytest.param(sel(("app", "Exists", ())), sel(("app", "NotIn", ("y",))), False, id="exists-allows-y"),
    pytest.param(sel(("app", "NotIn", ("x", "y"))), sel(("app", "NotIn", ("y",))), True, id="notin-more-inside-fewer"),
    pytest.param(sel(("app", "DoesNotExist", ())), sel(("app", "NotIn", ("y",))), True, id="absent-is-notin"),
    pytest.param(sel(("app", "In", ("x",)), ("app", "In", ("y",))), sel(labels=[("tier", "z")]), True,
                 id="a-selector-of-nothing"),
    pytest.param(sel(labels=[("app", "x")]), TargetSelector("Deployment", "other", match_labels=(("app", "x"),)),
                 False, id="another-namespace"),
])
def test_one_selector_within_another(a, b, within):
    assert a.within(b) is within


requirement = st.one_of(
    st.tuples(st.sampled_from(KEYS), st.sampled_from(("In", "NotIn")),
              st.lists(st.sampled_from(VALUES), min_size=1, max_size=3, unique=True).map(tuple)),
    st.tuples(st.sampled_from(KEYS), st.sampled_from(("Exists", "DoesNotExist")), st.just(())))
selector = st.builds(lambda labels, reqs: sel(*reqs, labels=labels),
                     st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2).map(
                         lambda d: tuple(sorted(d.items()))),
                     st.lists(requirement, max_size=3))


@settings(max_examples=400, deadline=None)
@given(selector, selector)
def test_within_is_exactly_every_selected_workload_selected_by_the_other(a, b):
    """Over every state of the keys the selectors name (so exact, not sampled): within says yes
    exactly when each labels a matches, b matches too."""
    assert a.within(b) == all(b.matches(labels) for labels in ALL_LABELS if a.matches(labels))


@pytest.mark.parametrize("first, second, warning", [
    pytest.param("{matchLabels: {app: web}}", "{matchExpressions: [{key: app, operator: In, values: [web, api]}]}",
                 "web2.yaml:7: spec.targets.selector: warning: every Deployment of namespace shop labelled app=web is "
                 "selected by this policy and by 'web'", id="labels-inside-a-set"),
    pytest.param("{matchLabels: {app: web}}", "{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}", None,
                 id="disjoint"),
    pytest.param("{matchLabels: {app: web}}", "{matchExpressions: [{key: app, operator: In, values: [web]}, "
                 "{key: app, operator: DoesNotExist}]}", "web2.yaml:7: spec.targets.selector: warning: no workload can "
                 "meet every requirement of this selector (app in (web),!app)", id="a-selector-of-nothing"),
])
def test_selectors_with_expressions_bound_to_meet_are_warned(first, second, warning):
    texts = [(POLICY.format(selector=first), "web.yaml"),
             (POLICY.format(selector=second).replace("name: web}", "name: web2}"), "web2.yaml")]
    check = check_policy_texts(texts)
    assert check.errors == []
    said = [str(w) for w in check.warnings]
    assert said == [] if warning is None else (len(said) == 1 and said[0].startswith(warning)), said
