"""A label_replace that reads the workload from the pod name with a pattern the targets' pods do
not have (controller/policy/units.py ``_pod_name_patterns``): the shipped healing policy's
Deployment pattern ``(.+)-[a-z0-9]+-[a-z0-9]{5}`` never matches a StatefulSet's ``web-0``, so a
restarts check copied to a StatefulSet is blind. `setpoint validate` says so with file, line and
field; the policy still loads."""

from __future__ import annotations

import pytest

from controller.policy.load import check_policy_texts

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: heal}}
spec:
  targets: {{kind: {kind}, namespace: shop, names: [{name}]}}
  interval: 15s
  health:
    checks:
      - name: restarts
        scope: workload
        query: sum by (namespace, {label}) (label_replace(increase(kube_pod_container_status_restarts_total[1m]), "{dst}", "$1", "{src}", "{regex}"))
        unhealthy: {{above: 2, for: 30s}}
        action: record
"""
DEPLOYMENT_PODS = "(.+)-[a-z0-9]+-[a-z0-9]{5}"
STATEFULSET_PODS = "(.+)-[0-9]+"
BLIND = "so the check sees no value at any cycle"


@pytest.mark.parametrize("kind, name, dst, src, regex, expected", [
    pytest.param("StatefulSet", "web", "statefulset", "pod", DEPLOYMENT_PODS,
                 'api.yaml:11: spec.health.checks[0].query: warning: label_replace writes statefulset from pod with the '
                 'pattern "(.+)-[a-z0-9]+-[a-z0-9]{5}", which does not match a StatefulSet\'s pod name such as web-0 '
                 f'(name-ordinal): no series gets its StatefulSet\'s name in statefulset, {BLIND} (and missing data '
                 'never fires it); for a StatefulSet write "(.+)-[0-9]+"', id="deployment-pattern-on-a-statefulset"),
    pytest.param("StatefulSet", "web", "statefulset", "pod", STATEFULSET_PODS, None, id="statefulset-pattern"),
    pytest.param("StatefulSet", "kafka-broker", "statefulset", "pod", STATEFULSET_PODS, None,
                 id="statefulset-pattern-dashed-name"),
    pytest.param("Deployment", "web", "deployment", "pod", DEPLOYMENT_PODS, None, id="deployment-pattern"),
    pytest.param("Deployment", "web", "deployment", "pod", STATEFULSET_PODS,
                 "which does not match a Deployment's pod name such as web-5d9c7b8f6-x2k4q (name-replicaset hash-pod "
                 "suffix)", id="statefulset-pattern-on-a-deployment"),
    pytest.param("Deployment", "web", "deployment", "pod", "(.+)-[a-z0-9]{5}",
                 "which reads 'web-5d9c7b8f6' from a Deployment's pod name such as web-5d9c7b8f6-x2k4q", id="keeps-the-hash"),
    pytest.param("StatefulSet", "web", "statefulset", "instance", DEPLOYMENT_PODS, None, id="not-read-from-the-pod"),
    pytest.param("StatefulSet", "web", "app", "pod", DEPLOYMENT_PODS, None, id="writes-no-workload-label"),
    pytest.param("StatefulSet", "web", "statefulset", "pod", "(.+)-[0-9", None, id="a-pattern-python-cannot-read"),
])
def test_a_pod_name_pattern_that_does_not_read_the_targets_pods(kind, name, dst, src, regex, expected):
    label = "statefulset" if kind == "StatefulSet" else "deployment"
    text = POLICY.format(kind=kind, name=name, label=label, dst=dst, src=src, regex=regex)
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1  # a warning never rejects the policy
    said = [str(w) for w in check.warnings if "label_replace writes" in str(w)]
    if expected is None:
        assert said == []
    else:
        assert len(said) == 1 and expected in said[0], said
