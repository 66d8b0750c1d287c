"""Warnings for a threshold that reads like the other unit of its query (controller/policy/units.py):
which queries tell their unit, which values are flagged, and how `setpoint validate` and
`setpoint run`'s loads say them (never an error: the policy loads)."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.model import DEFAULT_TARGET_LABELS, TargetLabels
from controller.policy import load_policy_text
from controller.policy.load import check_policy_texts
from controller.policy.units import query_unit
from controller.runtime.service import load_runtime_policies

P95_S = "histogram_quantile(0.95, sum by (namespace, deployment, le) (rate(http_request_duration_seconds_bucket[2m])))"
P95_MS = "histogram_quantile(0.95, sum by (namespace, deployment, le) (rate(request_latency_milliseconds_bucket[2m])))"
MEAN_S = ("sum by (namespace, deployment) (rate(http_request_duration_seconds_sum[1m])) / "
          "sum by (namespace, deployment) (rate(http_request_duration_seconds_count[1m]))")


@pytest.mark.parametrize("query, unit", [
    pytest.param(P95_S, "s", id="histogram-in-seconds"),
    pytest.param(P95_MS, "ms", id="histogram-in-milliseconds"),
    pytest.param(MEAN_S, "s", id="mean-from-a-summary-sum"),
    pytest.param("histogram_quantile(0.9, rate(rpc_ms_bucket[1m]))", "ms", id="ms-suffix"),
    pytest.param("sum(rate(http_request_duration_seconds_count[1m]))", None, id="a-count-is-a-rate"),
    pytest.param("sum(rate(container_cpu_usage_seconds_total[1m]))", None, id="cpu-seconds-total-is-cores"),
    pytest.param(f"max({P95_S}, {P95_MS})", None, id="both-units-cannot-tell"),
    pytest.param("queue_depth", None, id="no-duration"),
])
def test_query_unit(query, unit):
    assert query_unit(query) == unit


HEAD = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: api}}
spec:
  targets: {{kind: Deployment, namespace: api, name: gateway}}
  replicas: {{min: 3, max: 60}}
"""
SCALING = HEAD + """\
  scaling:
    metrics:
      - name: p95
        query: {query}
        target: {{value: {value}}}
"""
HEALTH = HEAD + """\
  health:
    checks:
      - name: latency
        query: {query}
        unhealthy: {{above: {value}, for: 1m}}
        action: rolling-restart
"""


@pytest.mark.parametrize("template, query, value, expected", [
    pytest.param(SCALING, P95_S, 250, "spec.scaling.metrics[0].target.value: warning: a target of 250 seconds: the "
                 "query reads a histogram in seconds (Prometheus' base unit); if you meant 250 ms, write 0.25",
                 id="ms-written-for-seconds"),
    pytest.param(SCALING, P95_S, 0.3, None, id="seconds-as-meant"),
    pytest.param(SCALING, P95_S, 59.9, None, id="just-under-a-minute"),
    pytest.param(SCALING, P95_MS, 0.3, "spec.scaling.metrics[0].target.value: warning: a target of 0.3 "
                 "milliseconds: the query reads a histogram in milliseconds; if you meant 0.3 s, write 300",
                 id="seconds-written-for-ms"),
    pytest.param(SCALING, P95_MS, 300, None, id="milliseconds-as-meant"),
    pytest.param(SCALING, "queue_depth", 300, None, id="no-unit-no-warning"),
    pytest.param(HEALTH, MEAN_S, 500, "spec.health.checks[0].unhealthy.above: warning: a threshold of 500 seconds",
                 id="a-health-threshold"),
    pytest.param(HEALTH, MEAN_S, 0.5, None, id="a-health-threshold-as-meant"),
])
def test_warnings_name_file_line_field_and_the_value_meant(template, query, value, expected):
    text = template.format(query=query, value=value)
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1  # a warning never rejects the policy
    line = 11  # the line of the value in both templates
    assert [str(w)[:len(f"api.yaml:{line}: {expected}")] for w in check.warnings] == \
           ([] if expected is None else [f"api.yaml:{line}: {expected}"])
    assert len(load_policy_text(text, "api.yaml")) == 1


def write(tmp_path, value) -> str:
    (tmp_path / "api.yaml").write_text(SCALING.format(query=P95_S, value=value))
    return str(tmp_path / "api.yaml")


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)], ids=["warned-exit-0", "strict-exit-1"])
def test_validate_prints_warnings_after_the_summary(tmp_path, strict, code):
    path = write(tmp_path, 250)
    result = CliRunner().invoke(app, ["validate", *(["--strict"] if strict else []), path])
    assert result.exit_code == code, result.output
    assert result.stdout.splitlines() == [
        f"{path}: ok, 1 policy (api: 1 target, 1 metric, 0 health checks)",
        f"{path}:11: spec.scaling.metrics[0].target.value: warning: a target of 250 seconds: the query reads a "
        "histogram in seconds (Prometheus' base unit); if you meant 250 ms, write 0.25"]
    assert result.stderr.strip() == "1 warning"


def test_validate_strict_without_warnings_exits_0(tmp_path):
    result = CliRunner().invoke(app, ["validate", "--strict", write(tmp_path, 0.25)])
    assert result.exit_code == 0 and result.stderr == ""


def test_each_load_of_the_live_controller_logs_the_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="setpoint.runtime")
    write(tmp_path, 250)
    policies = load_runtime_policies([tmp_path / "api.yaml"])
    assert list(policies) == ["api"]
    [said] = [r for r in caplog.records if "warning: a target of 250 seconds" in r.getMessage()]
    assert said.getMessage().startswith(f"{tmp_path}/api.yaml:11: spec.scaling.metrics[0].target.value:")


OTHER = HEAD + """\
  scaling:
    metrics:
      - name: m
        query: {query}
        target: {target}
    tolerance: {{up: {up}}}
"""
RPS = "sum by (namespace, deployment) (rate(http_requests_total[1m]))"


@pytest.mark.parametrize("query, target, up, expected", [
    pytest.param(RPS, "{utilization: 0.7}", 0.05, ["api.yaml:11: spec.scaling.metrics[0].target.utilization: warning: a "
                 "utilization of 0.7%: utilization is in percent; if you meant 70%, write 70"],
                 id="utilization-as-a-fraction"),
    pytest.param(RPS, "{utilization: 70}", 0.05, [], id="utilization-in-percent"),
    pytest.param(RPS, "{utilization: 1}", 0.05, [], id="one-percent-is-as-written"),
    pytest.param(RPS, "{averagePerReplica: 85}", 5, ["api.yaml:12: spec.scaling.tolerance.up: warning: a tolerance of 5 is "
                 "500%: a scale-up only above 6x the target; if you meant 5%, write 0.05"], id="tolerance-in-percent"),
    pytest.param(RPS, "{averagePerReplica: 85}", 0.5, [], id="a-wide-tolerance-as-a-fraction"),
    pytest.param("sum by (namespace, deployment) (http_requests_total)", "{averagePerReplica: 85}", 0.05,
                 ["api.yaml:10: spec.scaling.metrics[0].query: warning: http_requests_total is a counter (it only grows) and "
                  "the query reads it without rate(): it never comes back down, so neither would the replicas; e.g. "
                  "rate(http_requests_total[1m])"], id="a-counter-without-rate"),
    pytest.param('sum by (namespace, deployment) (rate(x_total{path="y_total"}[1m])) + 0 # z_total',
                 "{averagePerReplica: 85}", 0.05, [], id="counters-in-a-rate-a-string-and-a-comment"),
    pytest.param("sum by (namespace, deployment) (increase(x_total[5m])) / on() group_left max(y_total)",
                 "{averagePerReplica: 85}", 0.05, ["y_total is a counter"], id="one-counter-of-two-without"),
    pytest.param('sum by (namespace, deployment) (rate(http_requests_total{namespace="$namespace"}[1m]))',
                 "{averagePerReplica: 85}", 0.05, ["api.yaml:10: spec.scaling.metrics[0].query: warning: $namespace in a "
                 "label matcher is a Grafana dashboard variable: Prometheus matches the text '$namespace' itself, so the "
                 "query selects no series"], id="a-grafana-variable-in-a-matcher"),
    pytest.param('sum by (namespace, deployment) (rate(x_seconds_count{pod=~"${pod:regex}", job="[[job]]"}[1m]))',
                 "{averagePerReplica: 85}", 0.05, ["${pod:regex} in a label matcher", "[[job]] in a label matcher"],
                 id="grafana-variables-braced-and-old-style"),
    pytest.param('sum by (namespace, deployment) (label_replace(rate(x{deployment=~"gateway$|api$"}[1m]), "d", "$1", '
                 '"pod", "(.+)"))', "{averagePerReplica: 85}", 0.05, [], id="regex-anchors-and-a-capture-reference"),
])
def test_numbers_valid_as_written_and_probably_meant_otherwise(query, target, up, expected):
    text = OTHER.format(query=query, target=target, up=up)
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1
    said = [str(w) for w in check.warnings]
    assert len(said) == len(expected), said
    for w, e in zip(said, expected):
        assert e in w, said


CHECKS = HEAD + """\
  health:
    checks:
      - name: crash
        scope: {scope}
        query: {query}
        unhealthy: {{above: 3, for: 0s}}
        action: {action}
    budgets: {{restartsPerHour: {restarts}, rollbacksPerDay: {rollbacks}}}
{escalation}"""
RESTARTS = "increase(kube_pod_container_status_restarts_total[10m])"


@pytest.mark.parametrize("scope, query, action, restarts, rollbacks, escalation, expected", [
    pytest.param("pod", f"sum by (namespace, deployment) ({RESTARTS})", "restart-pod", 6, 2, "",
                 ["api.yaml:11: spec.health.checks[0].query: warning: a scope: pod check whose query aggregates the "
                  "pod label away"], id="pod-check-grouped-by-deployment"),
    pytest.param("pod", f"sum by (namespace, pod) ({RESTARTS})", "restart-pod", 6, 2, "", [], id="pod-check-by-pod"),
    pytest.param("pod", f"sum({RESTARTS})", "restart-pod", 6, 2, "", ["aggregates the pod label away"],
                 id="pod-check-summed-whole"),
    pytest.param("pod", f"sum without (pod) ({RESTARTS})", "restart-pod", 6, 2, "", ["aggregates the pod label away"],
                 id="pod-check-without-pod"),
    pytest.param("pod", f"SUM BY (namespace) ({RESTARTS})", "restart-pod", 6, 2, "", ["aggregates the pod label away"],
                 id="pod-check-upper-case-by"),
    pytest.param("pod", f"sum({RESTARTS}) by (namespace, pod)", "restart-pod", 6, 2, "", [],
                 id="pod-check-grouping-after"),
    pytest.param("pod", f"sum without (container) ({RESTARTS})", "restart-pod", 6, 2, "", [],
                 id="pod-check-without-another-label"),
    pytest.param("pod", f"topk(3, {RESTARTS})", "restart-pod", 6, 2, "", [], id="pod-check-topk-keeps-labels"),
    pytest.param("pod", RESTARTS, "restart-pod", 6, 2, "", [], id="pod-check-not-aggregated"),
    pytest.param("pod", f'max by (namespace, pod) (label_replace(sum by (namespace, x) ({RESTARTS}), "pod", "$1", "x", '
                 '"(.+)"))', "restart-pod", 6, 2, "", [], id="pod-label-put-back"),
    pytest.param("pod", f'sum by (namespace, deployment) (label_replace({RESTARTS}, "deployment", "$1", "pod", '
                 '"(.+)-[a-z0-9]+-[a-z0-9]{5}"))', "restart-pod", 6, 2, "", ["aggregates the pod label away"],
                 id="pod-label-read-into-another-then-aggregated-away"),
    pytest.param("pod", f'sum by (namespace, pod) ({RESTARTS}{{q="by (deployment)"}})', "restart-pod", 6, 2, "", [],
                 id="by-inside-a-string"),
    pytest.param("workload", f"sum by (namespace, deployment) ({RESTARTS})", "restart-pod", 6, 2, "", [],
                 id="workload-check-by-deployment"),
    pytest.param("workload", f"sum by (namespace, deployment) ({RESTARTS})", "rollback", 6, 0, "",
                 ["api.yaml:14: spec.health.budgets.rollbacksPerDay: warning: rollbacksPerDay is 0, so rollback, asked "
                  "for by check crash, can never run"], id="rollback-with-no-rollback-budget"),
    pytest.param("workload", f"sum by (namespace, deployment) ({RESTARTS})", "restart-pod", 0, 2, "",
                 ["api.yaml:14: spec.health.budgets.restartsPerHour: warning: restartsPerHour is 0, so restart-pod or "
                  "rolling-restart, asked for by check crash, can never run"], id="restart-with-no-restart-budget"),
    pytest.param("workload", f"sum by (namespace, deployment) ({RESTARTS})", "record", 6, 0,
                 "    escalation: [restart-pod, rollback]\n",
                 ["rollbacksPerDay is 0, so rollback, asked for by the escalation ladder, can never run"],
                 id="the-ladder-rolls-back"),
    pytest.param("workload", f"sum by (namespace, deployment) ({RESTARTS})", "record", 0, 0, "", [],
                 id="zero-budgets-nothing-asks"),
])
def test_health_checks_that_can_never_act(scope, query, action, restarts, rollbacks, escalation, expected):
    """Valid, and never acting: a pod check that cannot see a pod, an action with no budget."""
    text = CHECKS.format(scope=scope, query=query, action=action, restarts=restarts, rollbacks=rollbacks,
                         escalation=escalation)
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1
    said = [str(w) for w in check.warnings]
    assert len(said) == len(expected), said
    for w, e in zip(said, expected):
        assert e in w, said


HEALTH_ONLY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: payments}}
spec:
  targets: {{kind: Deployment, namespace: shop, name: payments}}
  replicas: {{min: 3, max: 12}}
  health:
    checks:
      - name: saturation
        query: max by (namespace, deployment) (pool_busy_ratio)
        unhealthy: {{above: 0.9, for: 3m}}
        action: {action}
"""


@pytest.mark.parametrize("text, expected", [
    pytest.param(HEALTH_ONLY.format(action="scale-up"), ["api.yaml:12: spec.health.checks[0].action: warning: scale-up "
                 "in a policy without a scaling section: an HPA that scales the workload sets its own count back"],
                 id="health-only-scale-up"),
    pytest.param(HEALTH_ONLY.format(action="record"), [], id="health-only-record"),
    pytest.param(SCALING.format(query="histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket[1m])))",
                                value=0.25)
                 + CHECKS[len(HEAD):].format(scope="workload", query=f"sum by (namespace, deployment) ({RESTARTS})",
                                             action="scale-up", restarts=6, rollbacks=2, escalation=""), [],
                 id="scale-up-beside-the-policy-s-own-scaling"),
])
def test_a_health_only_scale_up_is_said_to_be_undone(text, expected):
    """Simulated beside the hpa preset, a health-only scale-up bought nothing and cost a reversal."""
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1
    said = [str(w) for w in check.warnings]
    assert len(said) == len(expected) and all(e in w for w, e in zip(said, expected)), said


def test_validate_prints_the_valid_files_warnings_beside_another_files_errors(tmp_path):
    path = write(tmp_path, 250)
    (tmp_path / "broken.yaml").write_text(HEAD.replace("min: 3", "min: 90").replace("name: api", "name: other"))
    result = CliRunner().invoke(app, ["validate", path, str(tmp_path / "broken.yaml")])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any("broken.yaml:" in line and "spec.replicas.min" in line for line in lines), lines
    assert lines[-1].startswith(f"{path}:11: spec.scaling.metrics[0].target.value: warning: a target of 250 seconds")
    assert result.stderr.strip().endswith(", 1 warning")


SERIES = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: jobs}}
spec:
  {preset}targets: {targets}
  replicas: {{min: 1, max: 30}}
  scaling:
    metrics:
      - name: m
        query: '{query}'
        target: {target}
{more}"""
SELECTOR = "{kind: Deployment, namespace: jobs, selector: {matchLabels: {app: worker}}}"
ONE = "{kind: Deployment, namespace: jobs, name: worker}"
STS = "{kind: StatefulSet, namespace: data, name: db}"
PER_REPLICA = "{averagePerReplica: 500}"
BY_WORKLOAD = "sum by (namespace, deployment) (queue_messages_ready)"
CPU_OF_PODS = ('100 * sum by (namespace, {label}) (label_replace(rate(container_cpu_usage_seconds_total[2m]), "{label}", '
               '"$1", "pod", "(.+)-[0-9]+")) / sum by (namespace, {label}) (label_replace('
               'kube_pod_container_resource_requests{{resource="cpu"}}, "{label}", "$1", "pod", "(.+)-[0-9]+"))')
RAMP_LATEST = "        ramp: {{latest: '{latest}'}}\n"
WORKLOAD_CHECK = """\
  health:
    checks:
      - name: memory
        query: '{check}'
        unhealthy: {{above: 3000, for: 2m}}
        action: rolling-restart
"""
NEITHER = ("the query's series keep neither namespace nor deployment (sum(...) with no grouping, or a by (...) "
           "without them): setpoint run matches a Deployment's series to it by both labels namespace and deployment "
           "(--target-labels), with several targets (names, or a selector once it selects two), so none is a "
           "target's and the metric is missing at every cycle")
ONLY_NAMESPACE = ("the query's series keep namespace but not deployment: setpoint run matches a Deployment's series "
                  "to it by both labels namespace and deployment (--target-labels), so none is a target's and")
STS_BY_DEPLOYMENT = ("the query's series keep namespace but not statefulset: setpoint run matches a StatefulSet's "
                     "series to it by both labels namespace and statefulset (--target-labels), so none is a target's "
                     "and the metric is missing at every cycle (the replicas are held, then onMissingMetrics); group "
                     "by (namespace, statefulset): a StatefulSet's series are matched by statefulset, not deployment "
                     "(kube-state-metrics' label for a StatefulSet); or run with --target-labels "
                     "statefulset=namespace,deployment to match them by deployment")


@pytest.mark.parametrize("preset, targets, query, target, more, expected", [
    pytest.param("", SELECTOR, "sum(queue_messages_ready)", PER_REPLICA, "",
                 [f"api.yaml:10: spec.scaling.metrics[0].query: warning: {NEITHER}"], id="selector-summed-whole"),
    pytest.param("", SELECTOR, "sum by (queue) (queue_messages_ready)", PER_REPLICA, "", [NEITHER],
                 id="selector-grouped-by-another-label"),
    pytest.param("", SELECTOR, BY_WORKLOAD, PER_REPLICA, "", [], id="selector-grouped-by-the-target-labels"),
    pytest.param("", "{kind: Deployment, namespace: jobs, names: [a, b]}", "max(queue_messages_ready)", PER_REPLICA,
                 "", [NEITHER], id="two-names-summed-whole"),
    pytest.param("", ONE, "sum(queue_messages_ready)", PER_REPLICA, "", [],
                 id="one-name-one-unlabelled-value-is-its-own"),
    pytest.param("", ONE, "histogram_quantile(0.95, sum by (le) (rate(x_seconds_bucket[1m])))", "{value: 0.25}", "",
                 [], id="one-name-a-quantile-by-le"),
    pytest.param("", ONE, "sum by (namespace) (queue_messages_ready)", PER_REPLICA, "",
                 [f"api.yaml:10: spec.scaling.metrics[0].query: warning: {ONLY_NAMESPACE} the metric is missing at "
                  "every cycle (the replicas are held, then onMissingMetrics); group by (namespace, deployment)"],
                 id="one-name-grouped-by-namespace-only"),
    pytest.param("", STS, CPU_OF_PODS.format(label="statefulset"), "{utilization: 70}", "", [],
                 id="statefulset-grouped-by-a-statefulset-label"),
    pytest.param("preset: hpa\n  ", STS, CPU_OF_PODS.format(label="statefulset"), "{utilization: 70}", "", [],
                 id="statefulset-hpa-preset-grouped-by-a-statefulset-label"),
    pytest.param("", STS, CPU_OF_PODS.format(label="deployment"), "{utilization: 70}", "", [STS_BY_DEPLOYMENT],
                 id="statefulset-name-written-into-deployment"),
    pytest.param("", STS, "sum by (namespace) (queue_messages_ready)", PER_REPLICA, "",
                 ["keep namespace but not statefulset", "group by (namespace, statefulset)"],
                 id="statefulset-grouped-by-namespace-only"),
    pytest.param("", ONE, "sum by (namespace, statefulset) (queue_messages_ready)", PER_REPLICA, "",
                 ["a Deployment's series are matched by deployment, not statefulset", "--target-labels "
                  "deployment=namespace,statefulset"], id="deployment-grouped-by-a-statefulset-label"),
    pytest.param("preset: hpa\n  ", STS, "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[2m]))",
                 "{utilization: 70}", "", [], id="hpa-preset-read-pod-by-pod"),
    # an averagePerReplica metric is read pod by pod (HPA's Resource AverageValue) only with its resource;
    # without, it is a workload total (a Pods/Object/External metric) that a by-pod query gives no target
    pytest.param("preset: hpa\n  ", ONE, "sum by (namespace, pod) (container_memory_working_set_bytes)",
                 PER_REPLICA, "        resource: memory\n", [], id="hpa-preset-resource-average-read-pod-by-pod"),
    pytest.param("preset: hpa\n  ", ONE, "sum by (namespace, pod) (container_memory_working_set_bytes)",
                 PER_REPLICA, "", [ONLY_NAMESPACE, "group by (namespace, deployment); or, for a pod's cpu or memory "
                                   "(HPA's Resource AverageValue, read pod by pod), name it: resource: cpu or "
                                   "resource: memory"], id="hpa-preset-average-without-resource-is-a-workload-total"),
    pytest.param("", SELECTOR, "sum(x) * on() group_left(deployment) max by (namespace, deployment) (y)",
                 PER_REPLICA, "", [], id="group-left-may-put-labels-back"),
    pytest.param("", SELECTOR, BY_WORKLOAD, PER_REPLICA, RAMP_LATEST.format(latest="sum(rate(x_total[30s]))"),
                 ["api.yaml:12: spec.scaling.metrics[0].ramp.latest: warning: " + NEITHER], id="ramp-latest-summed-whole"),
    pytest.param("", ONE, BY_WORKLOAD, PER_REPLICA, WORKLOAD_CHECK.format(check="max by (namespace) (mem)"),
                 ["api.yaml:15: spec.health.checks[0].query: warning: " + ONLY_NAMESPACE + " the check sees no value "
                  "at any cycle (and missing data never fires it)"], id="workload-check-grouped-by-namespace"),
    pytest.param("", ONE, BY_WORKLOAD, PER_REPLICA, WORKLOAD_CHECK.format(check="max by (namespace, deployment) (m)"),
                 [], id="workload-check-grouped-by-the-target-labels"),
])
def test_a_query_whose_series_no_target_can_be_matched_to(preset, targets, query, target, more, expected):
    """`setpoint run` maps each series to its workload by its kind's labels (a Deployment's
    namespace and deployment, a StatefulSet's namespace and statefulset): a query that aggregates
    one away reads nothing, and a StatefulSet's query grouped by deployment (as this file and the
    importer wrote them before per-kind labels) says how to fix it."""
    text = SERIES.format(preset=preset, targets=targets, query=query, target=target, more=more)
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1, check.errors
    said = [str(w) for w in check.warnings]
    assert len(said) == (1 if expected else 0), said
    assert all(e in said[0] for e in expected), said


STS_OLD = DEFAULT_TARGET_LABELS.replaced("StatefulSet", ("namespace", "deployment"))
EXPORTED = TargetLabels.every_kind("exported_namespace", "deployment").replaced(
    "StatefulSet", ("exported_namespace", "statefulset"))


@pytest.mark.parametrize("targets, query, labels, expected", [
    pytest.param(STS, CPU_OF_PODS.format(label="deployment"), STS_OLD, None, id="statefulset-by-deployment-overridden"),
    pytest.param(STS, CPU_OF_PODS.format(label="statefulset"), STS_OLD, "keep namespace but not deployment",
                 id="statefulset-by-statefulset-when-overridden-to-deployment"),
    pytest.param(STS, "sum by (exported_namespace, statefulset) (x)", EXPORTED, None, id="namespace-label-overridden"),
    pytest.param(ONE, "sum by (namespace, deployment) (x)", EXPORTED, "keep deployment but not exported_namespace",
                 id="namespace-label-overridden-query-keeps-namespace"),
    pytest.param(ONE, BY_WORKLOAD, TargetLabels.every_kind("namespace", "app"), "keep namespace but not app",
                 id="one-pair-for-every-kind"),
])
def test_the_warnings_judge_a_query_by_the_target_labels_setpoint_run_is_given(targets, query, labels, expected):
    """`setpoint run --target-labels` (and validate's) change what a target's series are: the
    warnings of a query that no target's series come from follow them, for each kind."""
    text = SERIES.format(preset="", targets=targets, query=query, target="{utilization: 70}", more="")
    said = [str(w) for w in check_policy_texts([(text, "api.yaml")], labels).warnings]
    assert said == [] if expected is None else (len(said) == 1 and expected in said[0]), said


def test_validate_takes_the_target_labels_of_setpoint_run(tmp_path):
    """The same warning as at `setpoint run`'s load with the same --target-labels; a bad value
    names the option and exits 1."""
    path = tmp_path / "db.yaml"
    path.write_text(SERIES.format(preset="", targets=STS, query=CPU_OF_PODS.format(label="deployment"),
                                  target="{utilization: 70}", more=""))
    warned = CliRunner().invoke(app, ["validate", str(path)])
    assert warned.exit_code == 0 and "keep namespace but not statefulset" in warned.output, warned.output
    quiet = CliRunner().invoke(app, ["validate", str(path), "--strict", "--target-labels",
                                     "statefulset=namespace,deployment"])
    assert quiet.exit_code == 0 and "warning" not in quiet.output, quiet.output
    bad = CliRunner().invoke(app, ["validate", str(path), "--target-labels", "job=namespace,job"])
    assert bad.exit_code == 1 and "--target-labels: unknown kind 'job'" in bad.output, bad.output


FOR_CHECK = HEAD + """\
  health:
    checks:
      - name: memory
        query: max by (namespace, pod) (container_memory_working_set_bytes) / 2^20
        scope: pod
        unhealthy: {unhealthy}
        action: {action}
"""


@pytest.mark.parametrize("unhealthy, action, expected", [
    pytest.param("{above: 3000}", "restart-pod", ["api.yaml:12: spec.health.checks[0].unhealthy: warning: no for: a "
                 "single reading above 3000 is enough for restart-pod (for defaults to 0s); write how long it must "
                 "hold, e.g. for: 2m, or for: 0s if one reading is meant"], id="restart-without-for"),
    pytest.param("{below: 0.5}", "rolling-restart", ["a single reading below 0.5 is enough for rolling-restart"],
                 id="below-without-for"),
    pytest.param("{above: 3000, for: 0s}", "restart-pod", [], id="for-0s-written-is-meant"),
    pytest.param("{above: 3000, for: 2m}", "restart-pod", [], id="for-given"),
    pytest.param("{above: 3000}", "record", [], id="record-only-records"),
])
def test_a_check_that_acts_on_one_reading_is_said(unhealthy, action, expected):
    """A newcomer's memory check without `for` restarted a pod at its first reading above the line
    (for defaults to 0s), and validate said nothing."""
    check = check_policy_texts([(FOR_CHECK.format(unhealthy=unhealthy, action=action), "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1, check.errors
    said = [str(w) for w in check.warnings]
    assert len(said) == len(expected) and all(e in w for w, e in zip(said, expected)), said


ERRORS_OVER_REQUESTS = ("sum by (namespace, deployment) (rate(http_request_errors_total[1m])) / "
                        "sum by (namespace, deployment) (rate(http_requests_total[1m]))")
FIVE_XX = ('sum by (namespace, deployment) (rate(http_requests_total{code=~"5.."}[1m])) / '
           'sum by (namespace, deployment) (rate(http_requests_total[1m]))')


@pytest.mark.parametrize("template, query, value, expected", [
    pytest.param(HEALTH, ERRORS_OVER_REQUESTS, 5, ["api.yaml:11: spec.health.checks[0].unhealthy.above: warning: a "
                 "threshold of 5 on an error ratio (failed requests over all of them: at most 1, so it never reaches "
                 "5); if you meant 5%, write 0.05"], id="a-percent-on-a-ratio-of-errors"),
    pytest.param(HEALTH, FIVE_XX, 2, ["a threshold of 2 on an error ratio"], id="a-percent-on-a-ratio-of-5xx"),
    pytest.param(SCALING, f"({ERRORS_OVER_REQUESTS})", 10, ["spec.scaling.metrics[0].target.value: warning: a "
                 "target of 10 on an error ratio"], id="a-target-on-a-ratio-in-parentheses"),
    pytest.param(HEALTH, ERRORS_OVER_REQUESTS, 0.05, [], id="a-ratio-as-a-fraction"),
    pytest.param(HEALTH, f"100 * {ERRORS_OVER_REQUESTS}", 5, [], id="a-ratio-in-percent"),
    pytest.param(HEALTH, f"{ERRORS_OVER_REQUESTS} * 100", 5, [], id="a-ratio-times-100"),
    pytest.param(HEALTH, "sum(rate(http_requests_total[1m])) / sum(rate(http_pods_total[1m]))", 5, [],
                 id="a-ratio-of-other-counters"),
    pytest.param(HEALTH, "sum by (namespace, deployment) (rate(http_request_errors_total[1m]))", 5, [],
                 id="errors-per-second-not-a-ratio"),
])
def test_a_percent_written_on_an_error_ratio(template, query, value, expected):
    """`unhealthy: {above: 5}` meant 5% on errors / requests, which is at most 1: the rollback
    check never fired, and validate said nothing."""
    check = check_policy_texts([(template.format(query=query, value=value), "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1, check.errors
    said = [str(w) for w in check.warnings]
    assert len(said) == len(expected) and all(e in w for w, e in zip(said, expected)), said


COPIED = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: api}}
spec:
  targets: {targets}
  replicas: {{min: 2, max: 20}}
  scaling:
    metrics:
      - name: rps
        query: '{query}'
        target: {{averagePerReplica: 80}}
{more}"""
WEB = "{kind: Deployment, namespace: web, names: [api, api-canary]}"
RATE_OF = "sum by (namespace, deployment) (rate(http_requests_total{{{matchers}}}[1m]))"
POD_CHECK = """\
  health:
    checks:
      - name: restarts
        query: 'sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total{{{matchers}}}[10m]))'
        scope: pod
        unhealthy: {{above: 3, for: 0s}}
        action: restart-pod
"""


@pytest.mark.parametrize("targets, query, more, expected", [
    pytest.param(WEB, RATE_OF.format(matchers='namespace="shop"'), "",
                 ['api.yaml:10: spec.scaling.metrics[0].query: warning: the query selects namespace="shop", and its '
                  "series keep that namespace, but the targets' namespace is web: none of its series is a target's, "
                  "so the metric is missing at every cycle (the replicas are held, then onMissingMetrics); select the "
                  "targets' namespace (a query copied from another policy?)"], id="another-namespace"),
    pytest.param(WEB, RATE_OF.format(matchers='namespace="web", deployment=~"web|web-canary"'), "",
                 ["the query selects deployment=~\"web|web-canary\", and its series keep that deployment, but the "
                  "targets' deployment is api or api-canary"], id="other-workloads-by-regex"),
    pytest.param(WEB, RATE_OF.format(matchers='namespace="web", deployment=~"api.*"'), "", [],
                 id="a-regex-that-selects-them"),
    pytest.param(WEB, RATE_OF.format(matchers='namespace=~"web|shop", deployment="api"'), "", [],
                 id="one-of-them-by-name-in-its-namespace"),
    pytest.param(WEB, RATE_OF.format(matchers='namespace!="shop"'), "", [], id="a-negative-matcher-is-not-a-choice"),
    pytest.param("{kind: Deployment, namespace: web, name: api}",
                 'sum(rate(nginx_ingress_controller_requests{namespace="ingress-nginx", exported_service="api"}[1m]))',
                 "", [], id="one-target-read-at-the-ingress-controller"),
    pytest.param(WEB, 'sum by (namespace, deployment) (label_replace(rate(x{namespace="ingress"}[1m]), "namespace", '
                 '"web", "", ""))', "", [], id="the-namespace-written-back"),
    pytest.param("{kind: Deployment, namespace: web, selector: {matchLabels: {app: api}}}",
                 RATE_OF.format(matchers='namespace="web", deployment="other"'), "", [],
                 id="a-selector-names-no-workload"),
    pytest.param(WEB, RATE_OF.format(matchers='namespace="web"'), POD_CHECK.format(matchers='namespace="shop"'),
                 ['api.yaml:15: spec.health.checks[0].query: warning: the query selects namespace="shop"',
                  "the check sees no value at any cycle"], id="a-pod-check-in-another-namespace"),
])
def test_a_query_that_selects_other_workloads_than_the_targets(targets, query, more, expected):
    """web-rps.yaml copied for namespace web kept its query's namespace="shop": every series named
    shop's workloads, none the targets', and the metric was missing at every cycle, unsaid."""
    check = check_policy_texts([(COPIED.format(targets=targets, query=query, more=more), "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1, check.errors
    said = [str(w) for w in check.warnings]
    assert len(said) == (1 if expected else 0) and all(e in said[0] for e in expected), said


HPA_METRIC = HEAD.replace("spec:\n", "spec:\n{preset}") + """\
  scaling:
    metrics:
      - name: m
        query: {query}
        target: {target}
{resource}"""
MEMORY_OF_PODS = ('100 * sum by (namespace, pod) (container_memory_working_set_bytes{{namespace="api"}}) / sum by '
                  '(namespace, pod) (kube_pod_container_resource_requests{{namespace="api", resource="memory"}})')
CPU_OF_PODS_PCT = ('100 * sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{namespace="api"}}[2m])) / '
                   'sum by (namespace, pod) (kube_pod_container_resource_requests{{namespace="api", resource="cpu"}})')
MEMORY_AS_CPU = ("api.yaml:11: spec.scaling.metrics[0].query: warning: the query reads memory "
                 "(container_memory_working_set_bytes) and the metric names no resource: preset: hpa runs it as cpu "
                 "and leaves out a starting pod's sample, which HPA keeps for memory; write resource: memory")


@pytest.mark.parametrize("preset, query, target, resource, expected", [
    pytest.param("hpa", MEMORY_OF_PODS, "{{utilization: 70}}", "", [MEMORY_AS_CPU], id="memory-query-without-resource"),
    pytest.param("hpa", MEMORY_OF_PODS, "{{utilization: 70}}", "        resource: memory\n", [],
                 id="memory-query-that-says-memory"),
    pytest.param("hpa", MEMORY_OF_PODS, "{{utilization: 70}}", "        resource: cpu\n", [],
                 id="resource-cpu-written-is-meant"),
    pytest.param("hpa", CPU_OF_PODS_PCT, "{{utilization: 70}}", "", [], id="cpu-query-without-resource"),
    pytest.param("hpa", 'sum by (namespace, pod) (container_memory_working_set_bytes{{namespace="api"}})',
                 "{{averagePerReplica: 1.0e+9}}", "", [], id="average-per-replica-is-a-workload-total-under-hpa"),
    pytest.param("", MEMORY_OF_PODS, "{{utilization: 70}}", "", [], id="not-the-hpa-preset"),
])
def test_a_memory_query_that_preset_hpa_would_run_as_cpu(preset, query, target, resource, expected):
    text = HPA_METRIC.format(preset=f"  preset: {preset}\n" if preset else "", query=query.format(), target=target.format(), resource=resource)
    check = check_policy_texts([(text, "api.yaml")])
    assert check.errors == [] and len(check.policies) == 1
    assert [str(w) for w in check.warnings if "names no resource" in str(w)] == expected
