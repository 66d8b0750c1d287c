"""`setpoint import`: HPA and KEDA manifests (fixtures typed from the Kubernetes and KEDA docs)
convert into policies that validate, and an imported HPA decides as the hand-written preset does."""

from __future__ import annotations

import copy
import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app, main
from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.params import HpaSource
from controller.errors import ManifestError, PolicyError
from controller.policy import load_policy_text
from controller.policy.import_files import import_files
from controller.policy.importer import ConversionProblem, convert, parse_quantity
from controller.policy.load import check_policy_texts
from tests.policy.helpers import BASE, FAST_DUMPER, edit

FIXTURES = Path(__file__).parent / "imports"
ALL = sorted(FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_every_fixture_converts_and_validates(path, tmp_path):
    result = CliRunner().invoke(app, ["import", str(path), "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 0, result.output
    check = CliRunner().invoke(app, ["validate", str(tmp_path / "out.yaml")])
    assert check.exit_code == 0, check.output
    policies = load_policy_text((tmp_path / "out.yaml").read_text())
    assert policies and all(p.preset == "hpa" for p in policies)


def test_stdin_list_as_kubectl_prints_it():
    text = (FIXTURES / "hpa-list.yaml").read_text()
    result = CliRunner().invoke(app, ["import", "-"], input=text)
    assert result.exit_code == 0, result.output
    names = [p.name for p in load_policy_text(result.stdout)]
    assert names == ["blue-api", "green-api"]  # same HPA name in two namespaces: made unique


def test_out_dir_writes_one_file_per_policy(tmp_path):
    result = CliRunner().invoke(app, ["import", str(FIXTURES / "hpa-list.yaml"), str(FIXTURES / "keda-prometheus.yaml"),
                                      "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blue-api.yaml", "green-api.yaml",
                                                          "prometheus-scaledobject.yaml"]


@pytest.mark.parametrize("fixture, expected", [
    pytest.param("php-apache-v1.yaml", {"utilization": 50.0}, id="v1-cpu"),
    pytest.param("multi-metric.yaml", {"cpu": ("utilization", 50.0), "packets-per-second": ("averagePerReplica", 1000.0),
                                       "requests-per-second": ("value", 10000.0)}, id="v2-multi"),
    pytest.param("keda-prometheus.yaml", {"http_requests_total": ("averagePerReplica", 100.0)}, id="keda"),
    pytest.param("behavior-disabled.yaml", {"memory": ("averagePerReplica", 512 * 2 ** 20)}, id="memory-average"),
])
def test_metric_targets(fixture, expected):
    (policy,) = load_policy_text(import_files([str(FIXTURES / fixture)]).text)
    got = {m.name: m.target for m in policy.model.spec.scaling.metrics}
    if set(expected) == {"utilization"}:
        assert got["cpu"].utilization == expected["utilization"]
        return
    for name, (kind, value) in expected.items():
        field = {"utilization": "utilization", "averagePerReplica": "average_per_replica", "value": "value"}[kind]
        assert getattr(got[name], field) == pytest.approx(value), name


def test_behavior_maps_field_by_field():
    (policy,) = load_policy_text(import_files([str(FIXTURES / "behavior-scale-down.yaml")]).text)
    p = policy.params
    assert p.scale_down.window_s == 300 and not p.legacy
    assert list(p.scale_down.values) == [4, 10] and list(p.scale_down.periods_s) == [60, 60]
    (disabled,) = load_policy_text(import_files([str(FIXTURES / "behavior-disabled.yaml")]).text)
    assert disabled.model.spec.scaling.behavior.scale_down.select_policy == "Disabled"
    assert disabled.model.spec.targets.kind == "StatefulSet"


@pytest.mark.parametrize("kind, pattern", [
    pytest.param("Deployment", "(.+)-[a-z0-9]+-[a-z0-9]{5}", id="deployment"),
    pytest.param("StatefulSet", "(.+)-[0-9]+", id="statefulset"),
])
def test_a_resource_metric_is_summed_by_the_label_its_kind_is_matched_by(kind, pattern, tmp_path):
    """Each workload's series carry its name in its kind's label (kube-state-metrics': a
    StatefulSet's ``statefulset``), the label `setpoint run` matches that kind by, and validate
    says nothing of it. The importer wrote ``deployment`` for a StatefulSet too."""
    hpa = (FIXTURES / "behavior-disabled.yaml").read_text().replace("kind: StatefulSet", f"kind: {kind}")
    (tmp_path / "hpa.yaml").write_text(hpa)
    text = import_files([str(tmp_path / "hpa.yaml")]).text
    label = kind.lower()
    (policy,) = load_policy_text(text)
    query = policy.model.spec.scaling.metrics[0].query
    assert query == (f'sum by (namespace, {label}) (label_replace((container_memory_working_set_bytes{{namespace='
                     f'"batch", pod=~"worker-.*", container!=""}} unless on (namespace, pod) kube_pod_deletion_timestamp), '
                     f'"{label}", "$1", "pod", "{pattern}"))')
    assert check_policy_texts([(text, "worker.yaml")]).warnings == []


def test_keda_differences_are_comments():
    text = import_files([str(FIXTURES / "keda-prometheus-full.yaml")]).text
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for word in ("activationThreshold", "fallback", "cooldownPeriod", "pollingInterval", "serverAddress",
                 "restoreToOriginalReplicaCount"):
        assert word in comments, word
    assert "fallback (KEDA's" in comments and "replicas after" in comments  # its numbers, said
    (policy,) = load_policy_text(text)
    assert policy.model.spec.replicas.min_replicas == 2 and policy.params.scale_down.window_s == 600


@pytest.mark.parametrize("advanced, hpa, warned", [
    pytest.param({}, "keda-hpa-q", False, id="default-hpa-name"),
    pytest.param({"horizontalPodAutoscalerConfig": {"name": "worker-hpa"}}, "worker-hpa", False, id="own-hpa-name"),
    pytest.param({"restoreToOriginalReplicaCount": False}, "keda-hpa-q", False, id="restore-false"),
    # deleting the ScaledObject for the cut-over scaled the workload back to its count from before
    # KEDA (a drop under load), and nothing said so
    pytest.param({"restoreToOriginalReplicaCount": True}, "keda-hpa-q", True, id="restore-true"),
])
def test_a_scaled_object_says_how_to_hand_its_workload_over(tmp_path, capsys, advanced, hpa, warned):
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(_edited(KEDA, ("spec", "advanced"), advanced)))
    with pytest.raises(SystemExit) as exit_info:
        main(["import", str(path), "-o", str(tmp_path / "q.yaml")])
    assert exit_info.value.code == 0
    text, err = (tmp_path / "q.yaml").read_text(), capsys.readouterr().err
    comments = " ".join(line.strip("# -") for line in text.splitlines() if line.startswith("#"))
    assert (f"cut-over: delete the ScaledObject (kubectl delete scaledobject q -n shop), not its HPA {hpa}, which "
            f"KEDA re-creates at once") in comments
    restore = ("advanced.restoreToOriginalReplicaCount true: deleting this ScaledObject scales Deployment shop/worker "
               "back to the replicas it had before KEDA scaled it")
    assert (restore in comments) == warned
    # said as validate says a warning: at the field's file and line, apart from the errors
    said = [line for line in err.splitlines() if line.startswith(f"{path}:")
            and f": spec.advanced.restoreToOriginalReplicaCount: warning: {restore}" in line]
    assert len(said) == warned and all(line.endswith(" [ScaledObject shop/q]") for line in said), err


@pytest.mark.parametrize("minimum, warned", [
    pytest.param(None, True, id="keda-default-minimum-0"),
    pytest.param(0, True, id="minimum-0"),
    pytest.param(2, False, id="minimum-2"),
])
def test_a_scaled_object_that_scales_to_zero_warns_of_a_cut_over_at_zero(tmp_path, capsys, minimum, warned):
    # replicas 0 turns autoscaling off (HPA, preset: hpa): a workload idle at 0 when its ScaledObject
    # was deleted stayed at 0 under load, though the note said the minimum 'becomes 1'
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(KEDA if minimum is None else _edited(KEDA, ("spec", "minReplicaCount"), minimum)))
    with pytest.raises(SystemExit) as exit_info:
        main(["import", str(path), "-o", str(tmp_path / "q.yaml")])
    assert exit_info.value.code == 0
    err = capsys.readouterr().err
    said = ("spec.minReplicaCount: warning: minReplicaCount 0: deleted while KEDA has Deployment shop/worker at 0 "
            "(idle), the workload stays at 0 under this policy, as under HPA (0 replicas turns autoscaling off): if it "
            "is at 0 after the cut-over, kubectl scale deployment worker -n shop --replicas=1 [ScaledObject shop/q]")
    assert (said in err) == warned, err


@pytest.mark.parametrize("minimum, warned", [
    pytest.param(0, True, id="scale-to-zero-minimum"),
    pytest.param(None, False, id="default-minimum-1"),
    pytest.param(3, False, id="minimum-3"),
])
def test_an_hpa_that_scales_to_zero_warns_of_a_cut_over_at_zero(tmp_path, capsys, minimum, warned):
    # HPAScaleToZero (alpha) lets minReplicas be 0: as with KEDA's idle workload, one at 0 when its HPA
    # is deleted stays at 0 under the imported policy (whose minimum 'becomes 1'), and nothing said so
    spec = {k: v for k, v in HPA["spec"].items() if k != "minReplicas"}
    obj = {**HPA, "spec": spec if minimum is None else {**spec, "minReplicas": minimum}}
    path = tmp_path / "hpa.yaml"
    path.write_text(yaml.safe_dump(obj))
    with pytest.raises(SystemExit) as exit_info:
        main(["import", str(path), "-o", str(tmp_path / "web.yaml")])
    assert exit_info.value.code == 0
    err = capsys.readouterr().err
    said = ("minReplicas 0: deleted while the HPA has Deployment shop/web at 0 (idle), the workload stays at 0 under "
            "this policy, as under HPA (0 replicas turns autoscaling off): if it is at 0 after the cut-over, kubectl "
            "scale deployment web -n shop --replicas=1")
    assert (said in err) == warned, err
    comments = " ".join(line.lstrip("#").strip() for line in (tmp_path / "web.yaml").read_text().splitlines())
    assert (said in comments) == warned


@pytest.mark.parametrize("annotations, held", [
    pytest.param({}, None, id="not-paused"),
    pytest.param({"autoscaling.keda.sh/paused": "false"}, None, id="paused-false"),
    # KEDA deletes a paused ScaledObject's HPA: setpoint run saw no HPA and scaled the workload the
    # team had paused at its first cycle, and the import said nothing
    pytest.param({"autoscaling.keda.sh/paused-replicas": "4"}, "holds Deployment shop/worker at 4", id="paused-replicas"),
    pytest.param({"autoscaling.keda.sh/paused": "true"}, "holds Deployment shop/worker where it is", id="paused"),
])
def test_a_paused_scaled_object_is_a_warning(tmp_path, capsys, annotations, held):
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(_edited(KEDA, ("metadata", "annotations"), annotations)))
    with pytest.raises(SystemExit) as exit_info:
        main(["import", str(path), "-o", str(tmp_path / "q.yaml")])
    assert exit_info.value.code == 0
    text, err = (tmp_path / "q.yaml").read_text(), capsys.readouterr().err
    said = [line for line in err.splitlines() if "this ScaledObject is paused" in line]
    if held is None:
        assert said == [] and "paused" not in text
    else:
        [line] = said
        assert line.startswith(f"{path}:5: metadata.annotations[") and line.endswith(" [ScaledObject shop/q]")
        assert ": warning: metadata.annotations autoscaling.keda.sh/paused" in line
        assert f"KEDA {held} and has deleted its HPA, so setpoint run (not --shadow) scales the workload" in line
        assert "this ScaledObject is paused" in text


def test_min_zero_becomes_one_with_a_comment():
    text = import_files([str(FIXTURES / "keda-prometheus.yaml")]).text
    assert "scale to zero" in text and load_policy_text(text)[0].model.spec.replicas.min_replicas == 1


def test_a_resource_metric_says_it_is_one_value_per_workload():
    """It said 'Differences from the source: none beyond the metric source', while a ratio of sums
    loses HPA's handling of missing and not-yet-Ready pods."""
    text = import_files([str(FIXTURES / "php-apache-v2.yaml")]).text
    assert "none beyond the metric source" not in text
    assert "#  - metric cpu: one cpu value per workload (a ratio of sums)" in text
    assert "needs the\n#    query by (namespace, pod)" in text or "query by (namespace, pod)" in text.replace("\n#    ", " ")


@pytest.mark.parametrize("source, resource, by_pod", [
    pytest.param({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "512Mi"}}}, "memory",
        'sum by (namespace, pod) (container_memory_working_set_bytes{namespace="shop", pod=~"web-.*", '
        'container!=""})', id="memory"),
    pytest.param({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {
        "type": "AverageValue", "averageValue": "300m"}}}, "cpu",
        'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{namespace="shop", pod=~"web-.*", '
        'container="app"}[2m]))', id="container-cpu"),
])
def test_an_average_value_resource_metric_says_the_query_preset_hpa_reads_as_hpa(source, resource, by_pod):
    """The imported query is the workload's total, which preset: hpa reads over the replicas (External
    AverageValue); the note says so (it said 'a ratio of sums, which every pod stands for') and gives
    the by-pod query that the preset reads as HPA's Resource AverageValue, pod by pod."""
    converted = convert(_metric(source))
    (note,) = [n for n in converted.notes if "total" in n]
    assert "over its replicas (as an External AverageValue)" in note and "ratio of sums" not in note
    assert f"with the query {by_pod} (live runs only" in note
    (policy,) = load_policy_text(converted.text)
    assert policy.params.metrics[0].hpa_source == HpaSource.EXTERNAL  # as imported: the total
    doc = yaml.safe_load(converted.text)
    doc["spec"]["scaling"]["metrics"][0]["query"] = by_pod
    (by_pod_policy,) = load_policy_text(yaml.safe_dump(doc))
    read = by_pod_policy.params.metrics[0]
    assert (read.hpa_source, read.per_pod, read.resource) == (HpaSource.RESOURCE, True, resource)


def test_external_and_container_resource_convert_with_comments():
    text = import_files([str(FIXTURES / "external-and-container.yaml")]).text
    assert "External metric has no query" in text and "ContainerResource" in text
    (policy,) = load_policy_text(text)
    queries = [m.query for m in policy.model.spec.scaling.metrics]
    assert 'queue_messages_ready{queue="worker_tasks"}' in queries[0]
    assert 'container="application"' in queries[1]


HPA = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
       "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": 50}}}]}}


def _with(path: tuple, value) -> dict:
    import copy

    obj = copy.deepcopy(HPA)
    here = obj
    for key in path[:-1]:
        here = here[key]
    here[path[-1]] = value
    return obj


@pytest.mark.parametrize("obj, path, words", [
    pytest.param(_with(("spec", "scaleTargetRef", "kind"), "ReplicaSet"), ("spec", "scaleTargetRef", "kind"),
                 "Deployment or StatefulSet", id="replicaset"),
    pytest.param(_with(("spec", "metrics"), [{"type": "Pods", "pods": {"metric": {"name": "x"}, "target": {
        "type": "Value", "value": 3}}}]), ("spec", "metrics", 0, "pods", "target", "type"), "AverageValue", id="pods-value"),
    pytest.param(_with(("spec", "metrics"), [{"type": "Custom"}]), ("spec", "metrics", 0, "type"), "Resource",
                 id="unknown-type"),
    pytest.param(_with(("spec", "metrics"), [{"type": "ContainerResource", "containerResource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]),
        ("spec", "metrics", 0, "containerResource", "container"), "missing", id="container-without-name"),
    pytest.param(_with(("spec", "maxReplicas"), 0), ("spec", "maxReplicas"), "min replicas", id="max-below-min"),
    pytest.param(_with(("apiVersion",), "autoscaling/v2beta1"), ("apiVersion",), "read the HPA back as v2",
                 id="v2beta1"),
    # any other apiVersion was read as v2 and said "Differences from the source: none"
    pytest.param(_with(("apiVersion",), "autoscaling/v9"), ("apiVersion",),
                 "expected autoscaling/v1, autoscaling/v2 or autoscaling/v2beta2, got 'autoscaling/v9'", id="v9"),
    pytest.param(_with(("apiVersion",), "apps/v1"), ("apiVersion",), "got 'apps/v1'", id="another-api"),
    pytest.param(_with(("apiVersion",), None), ("apiVersion",), "got null", id="null-api-version"),
    pytest.param(_with(("apiVersion",), "keda.sh/v1alpha1"), ("apiVersion",), "got 'keda.sh/v1alpha1'",
                 id="keda-api-on-an-hpa"),
    pytest.param({**_with(("apiVersion",), "keda.sh/v2"), "kind": "ScaledObject"}, ("apiVersion",),
                 "expected keda.sh/v1alpha1, got 'keda.sh/v2'", id="keda-other-version"),
    pytest.param(_with(("spec", "behavior"), {"scaleDown": {"policies": [{"type": "Pods", "value": 1,
                                                                          "periodSeconds": 0}]}}),
                 ("spec", "behavior", "scaleDown", "policies", 0, "periodSeconds"), "1..1800", id="bad-period"),
    # Fields the API does not define were dropped unseen: the policy then did something else than
    # the HPA its author wrote (kubectl apply refuses them too)
    pytest.param(_with(("spec", "behavior"), {"scaleup": {"selectPolicy": "Disabled"}}),
                 ("spec", "behavior", "scaleup"), "unknown field (kubectl apply refuses it too): expected scaleUp or "
                 "scaleDown, got 'scaleup'", id="misspelt-direction"),
    pytest.param(_with(("spec", "behavior"), {"scaleDown": {"stabilizationWindowSecond": 600}}),
                 ("spec", "behavior", "scaleDown", "stabilizationWindowSecond"), "unknown field",
                 id="misspelt-window"),
    pytest.param(_with(("spec", "behavior"), {"scaleDown": {"policies": [{"type": "Pods", "value": 1,
                                                                          "periodSeconds": 60, "period": 30}]}}),
                 ("spec", "behavior", "scaleDown", "policies", 0, "period"), "unknown field", id="rate-policy-extra"),
    pytest.param(_with(("spec", "maxReplica"), 9), ("spec", "maxReplica"), "unknown field", id="misspelt-spec-field"),
    pytest.param(_with(("spec", "scaleTargetRef", "namespace"), "other"), ("spec", "scaleTargetRef", "namespace"),
                 "expected apiVersion, kind or name", id="scale-target-namespace"),
    pytest.param(_with(("spec", "metrics"), [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilisation": 50}}}]),
        ("spec", "metrics", 0, "resource", "target", "averageUtilisation"), "unknown field", id="misspelt-target"),
    pytest.param(_with(("spec", "metrics"), [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}, "pods": {"metric": {"name": "x"}}}]),
        ("spec", "metrics", 0, "pods"), "expected type or resource", id="second-metric-source"),
    pytest.param(_with(("spec", "metrics"), [{"type": "External", "external": {"metric": {"name": "q", "selector": {
        "matchLabel": {"queue": "jobs"}}}, "target": {"type": "Value", "value": 3}}}]),
        ("spec", "metrics", 0, "external", "metric", "selector", "matchLabel"), "unknown field",
        id="misspelt-selector"),
    pytest.param(_with(("spec", "metrics"), [{"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": {
        "kind": "Ingress", "name": "main", "namespace": "edge"}, "target": {"type": "Value", "value": 3}}}]),
        ("spec", "metrics", 0, "object", "describedObject", "namespace"), "unknown field",
        id="described-object-namespace"),
    pytest.param(_with(("spec", "metrics"), [{"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {
        "type": "AverageValue", "averageValue": 3}, "selector": {}}}]),
        ("spec", "metrics", 0, "pods", "selector"), "expected metric or target", id="selector-beside-metric"),
    # autoscaling/v1 keeps the metrics and behavior it has no field for in annotations: read
    # without them the policy scaled on CPU alone, with HPA's default behavior
    pytest.param({**_with(("spec",), {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                                      "targetCPUUtilizationPercentage": 60}), "apiVersion": "autoscaling/v1",
                  "metadata": {"name": "web", "annotations": {"autoscaling.alpha.kubernetes.io/metrics":
                                                              '[{"type":"Pods"}]'}}},
                 ("metadata", "annotations", "autoscaling.alpha.kubernetes.io/metrics"),
                 "keeps its metrics in this annotation", id="v1-metrics-annotation"),
    pytest.param({**_with(("spec",), {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}),
                  "apiVersion": "autoscaling/v1",
                  "metadata": {"name": "web", "annotations": {"autoscaling.alpha.kubernetes.io/behavior":
                                                              '{"ScaleDown":{"SelectPolicy":"Disabled"}}'}}},
                 ("metadata", "annotations", "autoscaling.alpha.kubernetes.io/behavior"),
                 "kubectl get hpa.v2.autoscaling", id="v1-behavior-annotation"),
])
def test_unconvertible_objects_name_the_field(obj, path, words):
    with pytest.raises(ConversionProblem) as info:
        convert(obj)
    assert info.value.path == path and words in info.value.message


KEDA = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "q", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"name": "worker"}, "triggers": [{"type": "cpu", "metricType": "Utilization",
                                                                      "metadata": {"value": "60"}}]}}
V1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
      "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
               "targetCPUUtilizationPercentage": 60}}


def _edited(obj: dict, path: tuple, value=KeyError) -> dict:
    """``obj`` with the field at ``path`` set to ``value`` (deleted by default)."""
    obj = copy.deepcopy(obj)
    here = obj
    for key in path[:-1]:
        here = here[key]
    if value is KeyError:
        del here[path[-1]]
    else:
        here[path[-1]] = value
    return obj


def _metric(source: dict) -> dict:
    return _with(("spec", "metrics"), [source])


# Each was named at a field the object does not have: a mapping's field path counted from the
# mapping (`behavior` at line 1 for spec.behavior), a missing mapping by a field under it
# (spec.scaleTargetRef.name without spec.scaleTargetRef), autoscaling/v1's and KEDA's cpu and
# memory fields by the HPA v2 metric the import makes of them (spec.targetCPUUtilizationPercentage
# .resource.target.averageUtilization)
@pytest.mark.parametrize("obj, path, words", [
    pytest.param(_with(("spec", "behavior"), [1]), ("spec", "behavior"), "expected a mapping, got a list",
                 id="behavior-not-a-mapping"),
    pytest.param(_with(("spec", "behavior"), {"scaleDown": 5}), ("spec", "behavior", "scaleDown"),
                 "expected a mapping, got 5", id="direction-not-a-mapping"),
    pytest.param(_with(("spec", "scaleTargetRef"), "web"), ("spec", "scaleTargetRef"), "expected a mapping",
                 id="scale-target-not-a-mapping"),
    pytest.param(_metric({"type": "Resource", "resource": {"name": "cpu", "target": [50]}}),
                 ("spec", "metrics", 0, "resource", "target"), "expected a mapping", id="target-not-a-mapping"),
    pytest.param(_metric({"type": "External", "external": {"metric": {"name": "q", "selector": {"matchLabels": [1]}},
                                                            "target": {"type": "Value", "value": 3}}}),
                 ("spec", "metrics", 0, "external", "metric", "selector", "matchLabels"), "expected a mapping",
                 id="match-labels-not-a-mapping"),
    pytest.param(_with(("spec", "metrics"), [5]), ("spec", "metrics", 0), "expected a mapping, got 5",
                 id="metric-not-a-mapping"),
    pytest.param(_edited(HPA, ("metadata",)), ("metadata",), "required field is missing", id="no-metadata"),
    pytest.param(_edited(HPA, ("spec",)), ("spec",), "required field is missing", id="no-spec"),
    pytest.param(_edited(HPA, ("spec", "scaleTargetRef")), ("spec", "scaleTargetRef"), "required field is missing",
                 id="no-scale-target"),
    pytest.param(_metric({"type": "Pods"}), ("spec", "metrics", 0, "pods"), "required field is missing",
                 id="no-metric-source"),
    pytest.param(_metric({"type": "Resource", "resource": {"name": "cpu"}}), ("spec", "metrics", 0, "resource", "target"),
                 "required field is missing", id="no-target"),
    pytest.param(_metric({"type": "External", "external": {"target": {"type": "Value", "value": 3}}}),
                 ("spec", "metrics", 0, "external", "metric"), "required field is missing", id="no-metric-identifier"),
    # converted before, with the label object="" (or ingress="") in its query
    pytest.param(_metric({"type": "Object", "object": {"metric": {"name": "rps"}, "target": {"type": "Value",
                                                                                              "value": 3}}}),
                 ("spec", "metrics", 0, "object", "describedObject"), "required field is missing",
                 id="no-described-object"),
    pytest.param(_metric({"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": {
        "name": "main"}, "target": {"type": "Value", "value": 3}}}),
        ("spec", "metrics", 0, "object", "describedObject", "kind"), "required field is missing",
        id="described-object-without-kind"),
    pytest.param(_with(("metadata", "name"), 5), ("metadata", "name"), "expected a string, got 5",
                 id="name-not-a-string"),
    pytest.param(_edited(KEDA, ("spec", "advanced"), []),
                 ("spec", "advanced"), "expected a mapping, got a list", id="keda-advanced-not-a-mapping"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "metadata")), ("spec", "triggers", 0, "metadata"),
                 "required field is missing", id="keda-trigger-without-metadata"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "metricType"), "Value"), ("spec", "triggers", 0, "metricType"),
                 "expected Utilization or AverageValue for a cpu trigger, got 'Value'", id="keda-cpu-metric-type"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "metadata", "value"), "0"),
                 ("spec", "triggers", 0, "metadata", "value"), "must be > 0, got '0'", id="keda-cpu-value"),
    # a misspelt ScaledObject field was dropped unseen: minReplicaCont left KEDA's default minimum
    pytest.param(_edited(KEDA, ("spec", "minReplicaCont"), 3), ("spec", "minReplicaCont"),
                 "unknown field (kubectl apply refuses it too): expected advanced, cooldownPeriod",
                 id="keda-misspelt-spec-field"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "metaData"), {"value": "50"}), ("spec", "triggers", 0, "metaData"),
                 "unknown field", id="keda-misspelt-trigger-field"),
    # KEDA's sections below spec and triggers: a misspelt field there passed unseen (kubectl apply
    # refuses each against the CRD's schema)
    pytest.param(_edited(KEDA, ("spec", "scaleTargetRef", "nmae"), "worker"), ("spec", "scaleTargetRef", "nmae"),
                 "unknown field (kubectl apply refuses it too): expected apiVersion, envSourceContainerName, kind or "
                 "name, got 'nmae'", id="keda-misspelt-scale-target-field"),
    pytest.param(_edited(KEDA, ("spec", "advanced"), {"restoreToOriginalReplicas": True}),
                 ("spec", "advanced", "restoreToOriginalReplicas"), "unknown field", id="keda-misspelt-advanced-field"),
    pytest.param(_edited(KEDA, ("spec", "advanced"), {"scalingModifiers": {"formula": "a", "targetValue": "5"}}),
                 ("spec", "advanced", "scalingModifiers", "targetValue"), "unknown field",
                 id="keda-misspelt-scaling-modifiers-field"),
    pytest.param(_edited(KEDA, ("spec", "advanced"), {"scalingModifiers": ["a"]}),
                 ("spec", "advanced", "scalingModifiers"), "expected a mapping, got a list",
                 id="keda-scaling-modifiers-not-a-mapping"),
    pytest.param(_edited(KEDA, ("spec", "fallback"), {"failureTreshold": 3, "replicas": 6}),
                 ("spec", "fallback", "failureTreshold"), "expected behavior, failureThreshold or replicas",
                 id="keda-misspelt-fallback-field"),
    # KEDA's CRD requires both numbers of a fallback and names its behaviors: a fallback without
    # replicas, or with behavior currentReplica, was accepted though kubectl apply refuses it
    pytest.param(_edited(KEDA, ("spec", "fallback"), {"failureThreshold": 3}), ("spec", "fallback", "replicas"),
                 "required field is missing (kubectl apply refuses the ScaledObject too)",
                 id="keda-fallback-without-replicas"),
    pytest.param(_edited(KEDA, ("spec", "fallback"), {"failureThreshold": "3", "replicas": 6}),
                 ("spec", "fallback", "failureThreshold"), "expected a whole number >= 0, got '3'",
                 id="keda-fallback-threshold-text"),
    pytest.param(_edited(KEDA, ("spec", "fallback"), {"failureThreshold": 3, "replicas": 6,
                                                      "behavior": "currentReplica"}),
                 ("spec", "fallback", "behavior"), "expected static, currentReplicas, currentReplicasIfHigher or "
                 "currentReplicasIfLower, got 'currentReplica'", id="keda-fallback-unknown-behavior"),
    # KEDA's webhook refuses a fallback with only cpu and memory triggers (no scaler of its own to fall
    # back from): it was imported with a note that KEDA would run 6 replicas after 3 failed reads
    pytest.param(_edited(KEDA, ("spec", "fallback"), {"failureThreshold": 3, "replicas": 6}), ("spec", "fallback"),
                 "KEDA's admission webhook refuses a fallback when every trigger is cpu or memory (here: cpu;",
                 id="keda-fallback-with-only-a-cpu-trigger"),
    pytest.param(_edited(_edited(KEDA, ("spec", "fallback"), {"failureThreshold": 3, "replicas": 6}),
                         ("spec", "triggers"), [KEDA["spec"]["triggers"][0], {"type": "memory", "metricType":
                                                "AverageValue", "metadata": {"value": "300Mi"}}]),
                 ("spec", "fallback"), "(here: cpu, memory;", id="keda-fallback-with-cpu-and-memory-triggers"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "authenticationRef"), {"name": "a", "namespace": "b"}),
                 ("spec", "triggers", 0, "authenticationRef", "namespace"), "expected kind or name",
                 id="keda-misspelt-authentication-ref-field"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "authenticationRef"), "keda-auth"),
                 ("spec", "triggers", 0, "authenticationRef"), "expected a mapping", id="keda-authentication-ref-text"),
    # spec.advanced and its horizontalPodAutoscalerConfig were not checked: a misspelt behaviour
    # dropped the ScaledObject's scale-down window and rate limits (HPA's defaults instead)
    pytest.param(_edited(KEDA, ("spec", "advanced"), {"horizontalPodAutoscalerConfig": {"behaviour": {
        "scaleDown": {"stabilizationWindowSeconds": 60}}}}),
        ("spec", "advanced", "horizontalPodAutoscalerConfig", "behaviour"),
        "unknown field (kubectl apply refuses it too): expected behavior or name", id="keda-misspelt-behavior"),
    pytest.param(_edited(KEDA, ("spec", "advanced"), {"restoreToOriginalReplicaCount": "yes"}),
                 ("spec", "advanced", "restoreToOriginalReplicaCount"), "expected true or false, got 'yes'",
                 id="keda-restore-not-a-boolean"),
    # kubectl get hpa -A lists the HPAs KEDA makes: s0-prometheus became the query sum(s0-prometheus...),
    # and the policy's cut-over (delete the HPA) one KEDA undoes
    pytest.param(_edited(HPA, ("metadata", "ownerReferences"), [
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "orders", "controller": True,
         "uid": "6c1f0b8e-1d9a-4a4e-9a3c-2f1e5b7d9c01"}]), ("metadata", "ownerReferences", 0, "kind"),
        "this HPA is KEDA's, made for ScaledObject 'orders': import the ScaledObject instead (kubectl get "
        "scaledobject orders -n shop -o yaml | setpoint import -)", id="an-hpa-keda-made"),
    pytest.param(_edited(V1, ("spec", "targetCPUUtilizationPercentage"), 0), ("spec", "targetCPUUtilizationPercentage"),
                 "expected a positive number, got 0", id="v1-percentage"),
])
def test_a_field_is_named_where_it_is_or_where_it_is_missing(obj, path, words):
    with pytest.raises(ConversionProblem) as info:
        convert(obj)
    assert info.value.path == path and words in info.value.message, (info.value.path, info.value.message)


# Said in Python's words, a mapping whole and in its keys' order (so a file with its keys in
# another order got another message): {'b': 1, 'a': 2}, None, True
@pytest.mark.parametrize("obj, path, words", [
    pytest.param(_with(("spec", "minReplicas"), {"b": 1, "a": 2}), ("spec", "minReplicas"),
                 "expected a replica count, got a mapping", id="mapping"),
    pytest.param(_with(("spec", "maxReplicas"), [{"b": 1}]), ("spec", "maxReplicas"),
                 "expected a replica count, got a list", id="list"),
    pytest.param(_metric({"type": "Resource", "resource": {"name": "cpu", "target": {"type": None}}}),
                 ("spec", "metrics", 0, "resource", "target", "type"), "for a Resource metric, got null", id="null"),
    pytest.param(_with(("spec", "behavior"), {"scaleDown": {"selectPolicy": True}}),
                 ("spec", "behavior", "scaleDown", "selectPolicy"), "expected Max, Min or Disabled, got true",
                 id="boolean"),
    # a whole number written with a point is refused where an integer goes (as kubectl apply
    # refuses it), but was said as the integer: "expected a replica count, got 5"
    pytest.param(_with(("spec", "maxReplicas"), 5.0), ("spec", "maxReplicas"), "expected a replica count, got 5.0",
                 id="replicas-with-a-point"),
    pytest.param(_with(("spec", "behavior"), {"scaleDown": {"policies": [{"type": "Pods", "value": 4.0,
                                                                          "periodSeconds": 60}]}}),
                 ("spec", "behavior", "scaleDown", "policies", 0, "value"), "expected a positive integer, got 4.0",
                 id="rate-with-a-point"),
    # the name went through str() first: got "{'up': 0.1, 'down': 0.1}", in the keys' order
    pytest.param(_metric({"type": "Resource", "resource": {"name": {"up": 0.1, "down": 0.1}, "target": {
        "type": "Utilization", "averageUtilization": 60}}}), ("spec", "metrics", 0, "resource", "name"),
        "expected resource cpu or memory, got a mapping", id="resource-name"),
])
def test_a_value_is_said_as_yaml_writes_it(obj, path, words):
    with pytest.raises(ConversionProblem) as info:
        convert(obj)
    assert info.value.path == path and info.value.message.endswith(words), info.value.message


def test_unknown_fields_are_named_whatever_their_order():
    """The first unknown field in the file's order was named: scaleUp or scaleDown under
    scaleTargetRef, as the keys came (the same object with its keys reordered got another error)."""
    problems = set()
    for order in (("scaleUp", "scaleDown"), ("scaleDown", "scaleUp")):
        ref = {"kind": "Deployment", "name": "web", **{key: {} for key in order}}
        with pytest.raises(ConversionProblem) as info:
            convert(_with(("spec", "scaleTargetRef"), ref))
        problems.add((info.value.path, info.value.message))
    assert problems == {(("spec", "scaleTargetRef", "scaleDown"), "unknown field (kubectl apply refuses it too): "
                         "expected apiVersion, kind or name, got 'scaleDown' (and 'scaleUp')")}


@pytest.mark.parametrize("labels, query", [
    # the query's matchers followed matchLabels' order: the same HPA with its keys reordered
    # imported another policy text
    pytest.param(({"tier": "front", "app": "web"}, {"app": "web", "tier": "front"}),
                 'sum(q{app="web", tier="front"})', id="match-labels"),
])
def test_the_policy_is_the_same_whatever_the_order_of_keys(labels, query):
    texts = {convert(_metric({"type": "External", "external": {"metric": {"name": "q", "selector": {
        "matchLabels": one}}, "target": {"type": "Value", "value": 3}}})).text for one in labels}
    (text,) = texts
    assert f"query: {query}" in text


def test_two_keda_metadata_values_of_the_wrong_kind_get_one_error_whatever_their_order():
    problems = set()
    for order in (("threshold", "serverAddress"), ("serverAddress", "threshold")):
        obj = _edited(KEDA, ("spec", "triggers", 0), {"type": "prometheus", "metadata": {
            "query": "sum(q)", **{key: [key] for key in order}}})
        with pytest.raises(ConversionProblem) as info:
            convert(obj)
        problems.add((info.value.path, info.value.message))
    assert problems == {(("spec", "triggers", 0, "metadata", "serverAddress"), "expected a string, got a list")}


def test_a_skipped_kind_is_said_as_yaml_writes_it():
    from controller.policy.importer import read_manifests

    _, problems = read_manifests("kind: {b: 1, a: 2}\n")
    assert [message for _, _, message in problems] == [
        "skipped: expected kind HorizontalPodAutoscaler or ScaledObject, got a mapping"]


# Each converted, the value's Python repr written into the policy, in its keys' order: a query with
# container="{'up': 0.1, 'down': 0.1}" and a metric named up_0_1_down_0_1_-cpu, a label value
# "{'a': 1}", a trigger's mapping of a name or a server address in the policy's comments
@pytest.mark.parametrize("obj, path, words", [
    pytest.param(_metric({"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": {"up": 0.1, "down": 0.1}, "target": {"type": "Utilization", "averageUtilization": 50}}}),
        ("spec", "metrics", 0, "containerResource", "container"), "expected a string, got a mapping", id="container"),
    pytest.param(_metric({"type": "External", "external": {"metric": {"name": "q", "selector": {"matchLabels": {
        "queue": {"a": 1}}}}, "target": {"type": "Value", "value": 3}}}),
        ("spec", "metrics", 0, "external", "metric", "selector", "matchLabels", "queue"),
        "expected a label value (a string), got a mapping", id="label-value"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "metadata", "containerName"), ["app"]),
                 ("spec", "triggers", 0, "metadata", "containerName"), "expected a string, got a list",
                 id="keda-container-name"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0), {"type": "prometheus", "name": {"a": 1}, "metadata": {
        "query": "sum(q)", "threshold": "5"}}), ("spec", "triggers", 0, "name"), "expected a string, got a mapping",
        id="keda-trigger-name"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0), {"type": "prometheus", "metadata": {
        "query": "sum(q)", "threshold": "5", "serverAddress": {"host": "p", "port": 9090}}}),
        ("spec", "triggers", 0, "metadata", "serverAddress"), "expected a string, got a mapping",
        id="keda-server-address"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0), {"type": "prometheus", "metadata": {
        "query": 5, "threshold": "5"}}), ("spec", "triggers", 0, "metadata", "query"), "expected a string, got 5",
        id="keda-query-a-number"),  # was "required field is missing"
    pytest.param(_edited(KEDA, ("spec", "pollingInterval"), {"s": 30}), ("spec", "pollingInterval"),
                 "expected whole seconds, got a mapping", id="keda-polling-interval"),
])
def test_a_value_of_the_wrong_kind_is_refused_not_written_as_its_repr(obj, path, words):
    with pytest.raises(ConversionProblem) as info:
        convert(obj)
    assert info.value.path == path and words in info.value.message, (info.value.path, info.value.message)


def test_a_v1_percentage_the_policy_rules_refuse_is_named_at_its_field(tmp_path):
    """It was named at spec.metrics[0], a field of v2 the v1 object does not have (the line of spec)."""
    path = tmp_path / "v1.yaml"
    text = yaml.safe_dump(_edited(V1, ("spec", "targetCPUUtilizationPercentage"), 10 ** 7), sort_keys=False)
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        import_files([str(path)])
    (error,) = info.value.errors
    assert (error.path, error.line) == ("spec.targetCPUUtilizationPercentage", text.count("\n"))
    assert "converts to an invalid policy: spec.scaling.metrics[0].target.utilization: must be <= 10000%" in error.message


def test_objects_without_a_name_are_refused_even_when_two_share_it(tmp_path):
    """Two nameless objects were given namespace-name policy names (a-imported, b-imported), so
    neither was asked for its metadata.name, and both converted."""
    first, second = _edited(HPA, ("metadata", "name")), _edited(HPA, ("metadata", "name"))
    second["metadata"]["namespace"] = "other"
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([first, second], sort_keys=False))
    with pytest.raises(ManifestError) as info:
        import_files([str(path)])
    assert [(e.path, e.message, e.object) for e in info.value.errors] == [
        ("metadata.name", "required field is missing", "HorizontalPodAutoscaler shop/(no name)"),
        ("metadata.name", "required field is missing", "HorizontalPodAutoscaler other/(no name)")]


@pytest.mark.parametrize("obj, note", [
    # a note named its field from the selector on (metric.selector.matchExpressions), not which
    # metric nor where in the object
    pytest.param(_with(("spec", "metrics"), [HPA["spec"]["metrics"][0], {"type": "External", "external": {
        "metric": {"name": "queue_depth", "selector": {"matchExpressions": [{"key": "env", "operator": "In",
                                                                               "values": ["prod"]}]}},
        "target": {"type": "Value", "value": 3}}}]),
        "metric queue_depth: spec.metrics[1].external.metric.selector.matchExpressions is not carried into the query",
        id="match-expressions-at-their-field"),
    # helm template prints objects without a namespace: the policy silently targeted `default`
    pytest.param({**HPA, "metadata": {"name": "web"}}, "metadata.namespace is not set", id="no-namespace"),
    pytest.param({**HPA, "metadata": {"name": "web", "namespace": ""}}, "metadata.namespace is not set",
                 id="empty-namespace"),
])
def test_what_does_not_carry_over_is_noted_by_field(obj, note):
    converted = convert(obj)
    assert any(n.startswith(note) for n in converted.notes), converted.notes
    assert load_policy_text(converted.text)


def test_a_namespaced_object_has_no_namespace_note():
    assert not any("metadata.namespace" in n for n in convert(HPA).notes)


def test_keda_non_prometheus_trigger_is_rejected_with_file_and_line(tmp_path, capsys):
    path = tmp_path / "so.yaml"
    path.write_text("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: q}\nspec:\n"
                    "  scaleTargetRef: {name: q}\n  triggers:\n  - type: rabbitmq\n    metadata: {queueName: q}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["import", str(path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:7: spec.triggers[0].type: only prometheus") and err.count("\n") == 2
    assert err.endswith("[ScaledObject q]\n1 error in 1 of 1 object: nothing written\n"), err


BAD_VALUES = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  namespace: true
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 9999999999999999999999
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: q, namespace: shop}
spec:
  scaleTargetRef: {name: worker}
  minReplicaCount: 3
  maxReplicaCount: 2
  triggers:
    - type: prometheus
      metadata: {serverAddress: "http://p:9090", query: "sum(x)", threshold: "5"}
"""


def test_values_the_policy_rules_refuse_are_named_at_the_manifest_field(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_VALUES)
    with pytest.raises(ManifestError) as info:
        import_files([str(path)])
    lines = [str(e) for e in info.value.errors]
    assert lines[0] == (f"{path}:5: metadata.namespace: converts to an invalid policy: spec.targets.namespace: "
                        "expected a string, got true [HorizontalPodAutoscaler web]")
    assert lines[1].startswith(f"{path}:8: spec.maxReplicas: converts to an invalid policy: spec.replicas.max: "
                               "must be <= 100000")
    assert lines[2].startswith(f"{path}:16: spec.maxReplicaCount: ")
    with pytest.raises(SystemExit) as exit_info:  # the command prints every one, not the first
        main(["import", str(path)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines() == lines + ["3 errors in 2 of 2 objects: nothing written"]


def test_a_refused_metric_target_is_named_at_its_metric(tmp_path):
    path = tmp_path / "util.yaml"
    obj = _with(("spec", "metrics"), [{"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 1.0e-9}}}])
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    with pytest.raises(ManifestError) as info:
        import_files([str(path)])
    (error,) = info.value.errors
    assert error.path == "spec.metrics[0]" and error.line == path.read_text().splitlines().index("  - type: Resource") + 1
    assert "converts to an invalid policy: spec.scaling.metrics[0].target.utilization: expected a percentage" in error.message


def test_two_objects_scaling_one_workload_are_named_at_both(tmp_path):
    path = tmp_path / "two.yaml"
    second = copy.deepcopy(HPA)
    second["metadata"]["name"] = "web-2"
    text = yaml.safe_dump(HPA, sort_keys=False) + "---\n" + yaml.safe_dump(second, sort_keys=False)
    path.write_text(text)
    lines = text.splitlines()
    second_start = lines.index("---")
    target_line = next(i for i in range(second_start, len(lines)) if lines[i].strip() == "name: web") + 1
    with pytest.raises(ManifestError) as info:
        import_files([str(path)])
    (error,) = info.value.errors
    assert str(error).startswith(f"{path}:{target_line}: spec.scaleTargetRef.name: converts to an invalid policy: "
                                 f"spec.targets.name: Deployment shop/web is already scaled by policy 'web' ({path}:1)")


@pytest.mark.parametrize("objects, names", [
    pytest.param([("api", "blue"), ("api", "green")], ["blue-api", "green-api"], id="one-name-two-namespaces"),
    # each pair was refused whole, "duplicate policy name", though Kubernetes holds both objects:
    # a policy name is a DNS label, so web.v1 reads as web-v1, and names are cut at 63 characters
    pytest.param([("web.v1", "shop"), ("web-v1", "shop")], ["shop-web-v1", "shop-web-v1-2"], id="dot-and-dash"),
    pytest.param([("a" * 70 + "x", "shop"), ("a" * 70 + "y", "shop")],
                 ["shop-" + "a" * 58, "shop-" + "a" * 56 + "-2"], id="alike-in-63-characters"),
    pytest.param([("web", "shop"), ("web", "shop-web"), ("shop-web", "default")],
                 ["shop-web-2", "shop-web-web", "shop-web"], id="namespace-name-is-another-name"),
])
def test_every_object_gets_a_policy_name_of_its_own(tmp_path, objects, names):
    documents = []
    for i, (name, namespace) in enumerate(objects):
        obj = copy.deepcopy(HPA)
        obj["metadata"] = {"name": name, "namespace": namespace}
        obj["spec"]["scaleTargetRef"]["name"] = f"w{i}"
        documents.append(obj)
    path = tmp_path / "hpas.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    assert [p.name for p in import_files([str(path)]).policies] == names
    result = CliRunner().invoke(app, ["import", str(path), "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{n}.yaml" for n in names)


def test_other_kinds_are_skipped_with_a_note(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
                    + (FIXTURES / "php-apache-v1.yaml").read_text())
    result = import_files([str(path)])
    assert len(result.policies) == 1 and "skipped" in result.skipped[0] and "Deployment" in result.skipped[0]
    with pytest.raises(ManifestError, match="no HorizontalPodAutoscaler"):
        import_files(["-"], stdin=io.BytesIO(b"apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"))


@pytest.mark.parametrize("text, value", [("500m", 0.5), ("1k", 1000.0), ("256Mi", 256 * 2 ** 20), ("10", 10.0),
                                         ("1.5", 1.5), ("2Gi", 2 * 2 ** 30), ("5.", 5.0), (".5", 0.5), ("+5", 5.0),
                                         ("1e3", 1000.0), ("1E", 1e18),
                                         # 700 x 0.001 in floats: 0.7000000000000001, not the 0.7 of "0.7"
                                         pytest.param("700m", 0.7, id="700m-exactly-0.7")])
def test_quantities(text, value):
    assert parse_quantity(text, ()) == value


@pytest.mark.parametrize("value", [
    # each crashed the command (exit 70): float("...") raised ValueError, float(10**400) OverflowError
    pytest.param("...", id="points-only"), pytest.param("1.2.3", id="two-points"),
    pytest.param(10 ** 400, id="integer-beyond-a-float"),
    pytest.param("1e400", id="infinite"), pytest.param(".nan", id="nan"), pytest.param("1k5", id="suffix-inside"),
])
def test_a_malformed_quantity_is_refused_at_its_field(tmp_path, capsys, value):
    obj = _with(("spec", "metrics"), [{"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {
        "type": "AverageValue", "averageValue": value}}}])
    text = yaml.safe_dump(obj, sort_keys=False)
    path = tmp_path / "hpa.yaml"
    path.write_text(text.replace("'.nan'", ".nan"))
    line = text.splitlines().index(next(t for t in text.splitlines() if "averageValue" in t)) + 1
    with pytest.raises(SystemExit) as info:
        main(["import", str(path)])
    assert info.value.code == 1
    err, summary = capsys.readouterr().err.splitlines()
    assert err.startswith(f"{path}:{line}: spec.metrics[0].pods.target.averageValue: expected a quantity such as "
                          "500m, 1k or 256Mi, got "), err
    assert summary == "1 error in 1 of 1 object: nothing written"


# -- HPA field names in a Setpoint policy -------------------------------------------------------

def test_hpa_field_names_are_accepted_in_behavior():
    text = edit(BASE, "scaleDown: {stabilizationWindow: 5m, policies: [{type: Percent, value: 20, period: 1m}]}",
                "scaleDown: {stabilizationWindowSeconds: 300, selectPolicy: Min, "
                "policies: [{type: Percent, value: 20, periodSeconds: 60}]}")
    (policy,) = load_policy_text(text)
    assert policy.params.scale_down.window_s == 300 and list(policy.params.scale_down.periods_s) == [60]


@pytest.mark.parametrize("replacement, words", [
    pytest.param("scaleDown: {stabilizationWindowSeconds: 5m}", "stabilizationWindowSeconds: expected whole seconds",
                 id="seconds-with-unit"),
    pytest.param("scaleDown: {stabilizationWindowSeconds: 300, stabilizationWindow: 5m}", "keep stabilizationWindow only",
                 id="both-names"),
    pytest.param("scaleDown: {policies: [{type: Pods, value: 1, periodSeconds: 1m}]}", "write Setpoint's period",
                 id="period-with-unit"),
    pytest.param("scaleDown: {stabilizationWindowSeconds: 4000}", "stabilizationWindow: must be at most 1h",
                 id="out-of-range-names-setpoint-field"),
])
def test_hpa_field_names_rejected_with_the_setpoint_name(replacement, words):
    text = edit(BASE, "scaleDown: {stabilizationWindow: 5m, policies: [{type: Percent, value: 20, period: 1m}]}",
                replacement)
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "shop.yaml")
    assert any(words in str(e) for e in info.value.errors), info.value.errors


# -- same decisions as the hand-written preset --------------------------------------------------

PRESET = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: hand}
spec:
  preset: hpa
  targets: {namespace: shop, name: web}
  replicas: {min: 2, max: 40}
  scaling:
    metrics:
      - {name: cpu, query: cpu, target: {utilization: 60%}}
    behavior:
      scaleDown:
        stabilizationWindow: 5m
        policies: [{type: Pods, value: 4, period: 1m}, {type: Percent, value: 10, period: 1m}]
"""
LEGACY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: hand}
spec:
  preset: hpa
  targets: {namespace: default, name: php-apache}
  replicas: {min: 1, max: 10}
  scaling:
    metrics:
      - {name: cpu, query: cpu, target: {utilization: 50}}
"""


def _run(params, utilizations: list[float], start: int) -> list[int]:
    """desired replicas per tick, each tick's desired becoming the next tick's current."""
    state = ScalingState.empty(1, params)
    current, out = float(start), []
    for k, u in enumerate(utilizations):
        d = decide(params, Observation.of([current], [current], [[u]]), state, 1_000_000.0 + 15.0 * k)
        state, current = d.state, float(d.desired[0])
        out.append(int(d.desired[0]))
    return out


SERIES = {
    "flat": [60.0] * 30,
    "spike": [60.0] * 5 + [300.0] * 5 + [20.0] * 40,
    "ramp-down": [float(v) for v in np.linspace(200, 5, 60)],
    "saw": [30.0, 90.0] * 30,
}


@pytest.mark.parametrize("fixture, hand, start", [
    pytest.param("behavior-scale-down.yaml", PRESET, 8, id="behavior"),
    pytest.param("php-apache-v2.yaml", LEGACY, 3, id="legacy-v2"),
    pytest.param("php-apache-v1.yaml", LEGACY, 3, id="legacy-v1"),
])
@pytest.mark.parametrize("series", list(SERIES), ids=list(SERIES))
def test_imported_hpa_decides_as_the_preset(fixture, hand, start, series):
    (imported,) = load_policy_text(import_files([str(FIXTURES / fixture)]).text)
    (written,) = load_policy_text(hand)
    got = _run(imported.params, SERIES[series], start)
    assert got == _run(written.params, SERIES[series], start)
    assert len(set(got)) > 1 or series == "flat"  # the table exercises scaling, not a constant


def test_imported_policies_and_hpa_names_pass_the_json_schema():
    """Editors validate with the JSON Schema: it accepts what `setpoint validate` accepts."""
    import yaml

    jsonschema = pytest.importorskip("jsonschema")
    from controller.policy import policy_json_schema

    schema = policy_json_schema()
    for path in ALL:
        for document in yaml.safe_load_all(import_files([str(path)]).text):
            jsonschema.validate(document, schema)
    text = edit(BASE, "scaleDown: {stabilizationWindow: 5m, policies: [{type: Percent, value: 20, period: 1m}]}",
                "scaleDown: {stabilizationWindowSeconds: 300, policies: [{type: Percent, value: 20, periodSeconds: 60}]}")
    jsonschema.validate(yaml.safe_load(text), schema)
    both = edit(BASE, "policies: [{type: Percent, value: 20, period: 1m}]",
                "policies: [{type: Percent, value: 20, period: 1m, periodSeconds: 60}]")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(both), schema)


@pytest.mark.parametrize("target, existing", [
    pytest.param("--out", ["out.yaml"], id="out-file-exists"),
    pytest.param("--out-dir", ["blue-api.yaml"], id="one-of-three-exists"),
    pytest.param("--out-dir", ["blue-api.yaml", "prometheus-scaledobject.yaml"], id="two-exist"),
])
def test_an_existing_file_is_not_overwritten_without_force(tmp_path, target, existing):
    folder = tmp_path / "policies"
    folder.mkdir()
    for name in existing:
        (folder / name).write_text("# edited by hand and reviewed\n")
    args = ["import", str(FIXTURES / "hpa-list.yaml"), str(FIXTURES / "keda-prometheus.yaml")]
    dest = [target, str(folder / "out.yaml") if target == "--out" else str(folder)]
    refused = CliRunner().invoke(app, [*args, *dest])
    assert refused.exit_code == 1
    for name in existing:  # every one named, each left as it was
        assert f"{folder / name} exists; pass --force" in refused.output
        assert (folder / name).read_text() == "# edited by hand and reviewed\n"
    assert sorted(p.name for p in folder.iterdir()) == sorted(existing)  # nothing else written either
    forced = CliRunner().invoke(app, [*args, *dest, "--force"])
    assert forced.exit_code == 0, forced.output
    names = ["out.yaml"] if target == "--out" else ["blue-api.yaml", "green-api.yaml", "prometheus-scaledobject.yaml"]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert all(load_policy_text((folder / n).read_text()) for n in names)



@pytest.mark.parametrize("target, force", [
    pytest.param("--out", [], id="out"),
    # --force replaced the pipe (as root, /dev/null itself) with a regular file
    pytest.param("--out", ["--force"], id="out-forced"),
    pytest.param("--out-dir", ["--force"], id="out-dir-forced"),
])
def test_a_pipe_or_device_is_never_replaced(tmp_path, target, force):
    folder = tmp_path / "policies"
    folder.mkdir()
    pipe = folder / ("out.yaml" if target == "--out" else "php-apache.yaml")
    os.mkfifo(pipe)
    dest = str(pipe) if target == "--out" else str(folder)
    refused = CliRunner().invoke(app, ["import", str(FIXTURES / "php-apache-v2.yaml"), target, dest, *force])
    assert refused.exit_code == 1 and (refused.exception is None or isinstance(refused.exception, SystemExit))
    assert f"{target}: {pipe} is a device, pipe or socket, not a regular file" in refused.output, refused.output
    assert stat.S_ISFIFO(pipe.lstat().st_mode) and [p.name for p in folder.iterdir()] == [pipe.name]


def test_more_policies_than_one_file_holds_go_to_one_file_each(tmp_path, capsys):
    """500 HPAs convert (each policy is checked as a file of its own); one output file of them would
    be refused by the policy loader, so -o says so and --out-dir writes files that validate."""
    objects = []
    for i in range(500):
        obj = copy.deepcopy(HPA)
        obj["metadata"]["name"] = obj["spec"]["scaleTargetRef"]["name"] = f"web{i}"
        objects.append(yaml.dump(obj, Dumper=FAST_DUMPER, sort_keys=False))
    path = tmp_path / "many.yaml"
    path.write_text("---\n".join(objects))
    assert len(import_files([str(path)]).policies) == 500
    with pytest.raises(SystemExit) as info:
        main(["import", str(path), "-o", str(tmp_path / "all.yaml")])
    assert info.value.code == 1 and not (tmp_path / "all.yaml").exists()
    assert "500 policies are more than one policy file holds" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["import", str(path), "--out-dir", str(tmp_path / "one-each")])
    assert info.value.code in (0, None)
    assert len(list((tmp_path / "one-each").glob("*.yaml"))) == 500


ROLLOUT_HPA = """\
- apiVersion: autoscaling/v2
  kind: HorizontalPodAutoscaler
  metadata: {name: canary, namespace: blue}
  spec:
    scaleTargetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: canary}
    minReplicas: 2
    maxReplicas: 8
    metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
"""


@pytest.mark.parametrize("skip, code, written", [
    pytest.param(False, 1, [], id="one-unconvertible-object-refuses-all"),
    pytest.param(True, 0, ["blue-api.yaml", "green-api.yaml"], id="skip-invalid-converts-the-others"),
])
def test_a_cluster_list_with_an_unconvertible_object(tmp_path, skip, code, written):
    """`kubectl get hpa -A -o yaml` on a real cluster may hold an HPA of an Argo Rollout: nothing
    was written for the others, which --skip-invalid now converts, naming the one left out."""
    listed = (FIXTURES / "hpa-list.yaml").read_text() + ROLLOUT_HPA
    (tmp_path / "all.yaml").write_text(listed)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["import", str(tmp_path / "all.yaml"), "--out-dir", str(out),
                                      *(["--skip-invalid"] if skip else [])])
    assert result.exit_code == code, result.output
    assert "got 'Rollout'" in result.output
    assert sorted(p.name for p in out.glob("*.yaml")) == sorted(written)
    if skip:
        assert "(skipped: --skip-invalid)" in result.output


def test_skip_invalid_with_nothing_convertible_still_fails(tmp_path):
    (tmp_path / "one.yaml").write_text("apiVersion: v1\nkind: List\nitems:\n" + ROLLOUT_HPA)
    result = CliRunner().invoke(app, ["import", str(tmp_path / "one.yaml"), "--skip-invalid"])
    assert result.exit_code == 1 and "got 'Rollout'" in result.output


def test_a_fallback_beside_a_scaler_of_keda_s_own_is_imported_with_its_note():
    """Beside a memory trigger, a prometheus trigger's failed reads are what KEDA's fallback covers:
    the webhook accepts it, so the import does, with the note of what is not carried over."""
    prometheus = {"type": "prometheus", "metadata": {"serverAddress": "http://prom:9090", "threshold": "100",
                                                     "query": "sum(rate(http_requests_total[1m]))"}}
    obj = _edited(_edited(KEDA, ("spec", "fallback"), {"failureThreshold": 3, "replicas": 6}),
                  ("spec", "triggers"), [{"type": "memory", "metricType": "Utilization", "metadata": {"value": "70"}},
                                         prometheus])
    converted = convert(obj)
    assert any(note.startswith("fallback (KEDA's 6 replicas after 3 failed reads") for note in converted.notes)


def _metric(spec: dict) -> dict:
    return _edited(HPA, ("spec", "metrics"), [spec])


MEMORY_UTILIZATION = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization",
                                                                                     "averageUtilization": 70}}}


@pytest.mark.parametrize("obj, name, written", [
    pytest.param(HPA, "cpu", "cpu", id="resource-cpu-utilization"),
    pytest.param(_metric(MEMORY_UTILIZATION), "memory", "memory", id="resource-memory-utilization"),
    pytest.param(_metric({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "512Mi"}}}), "memory", "memory", id="resource-memory-average-value"),
    pytest.param(_metric({"type": "ContainerResource", "containerResource": {
        "name": "memory", "container": "app", "target": {"type": "Utilization", "averageUtilization": 70}}}),
        "app-memory", "memory", id="container-resource-memory"),
    pytest.param(V1, "cpu", "cpu", id="v1-cpu"),
    pytest.param(_edited(KEDA, ("spec", "triggers", 0, "type"), "memory"), "memory", "memory", id="keda-memory-trigger"),
    pytest.param(KEDA, "cpu", "cpu", id="keda-cpu-trigger"),
    pytest.param(_metric({"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {
        "type": "AverageValue", "averageValue": "10"}}}), "rps", None, id="pods-metric-writes-none"),
])
def test_a_resource_metric_is_imported_with_its_resource(obj, name, written):
    """The policy says what the metric measures, so preset: hpa leaves a starting pod's memory in
    (HPA's starting-pod rule is for cpu only); a Pods metric names no resource (HPA's Pods
    calculator has no starting-pod rule, and the preset reads such a metric as a workload value)."""
    converted = convert(obj)
    (metric,) = yaml.safe_load(converted.text)["spec"]["scaling"]["metrics"]
    assert metric["name"] == name and metric.get("resource") == written
    (policy,) = load_policy_text(converted.text)
    assert policy.params.metrics[0].resource == (written or "cpu")
