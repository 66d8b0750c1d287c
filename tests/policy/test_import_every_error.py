"""`setpoint import` says every error of every object in one run, as `setpoint validate` does:
each at its file, line and field, naming its object, sorted by file (in the order given) and
line, then one summary line; nothing is written unless every object converts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.policy.importer import ConversionProblem, convert

# kubectl get hpa -A -o yaml: an HPA on a resource HPA has no query for (line 13), and one of an
# Argo Rollout (line 18)
TWO_BAD_IN_A_LIST = """\
apiVersion: v1
kind: List
items:
- apiVersion: autoscaling/v2
  kind: HorizontalPodAutoscaler
  metadata: {name: web, namespace: shop}
  spec:
    scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
    minReplicas: 2
    maxReplicas: 8
    metrics:
    - type: Resource
      resource: {name: gpu, target: {type: Utilization, averageUtilization: 70}}
- apiVersion: autoscaling/v2
  kind: HorizontalPodAutoscaler
  metadata: {name: canary, namespace: blue}
  spec:
    scaleTargetRef: {apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: canary}
    minReplicas: 2
    maxReplicas: 8
"""
TWO_BAD_SAID = [
    "{f}:13: items[0].spec.metrics[0].resource.name: expected resource cpu or memory, got 'gpu' "
    "[HorizontalPodAutoscaler shop/web]",
    "{f}:18: items[1].spec.scaleTargetRef.kind: Setpoint scales Deployment or StatefulSet, got 'Rollout': scale "
    "the workload behind it instead [HorizontalPodAutoscaler blue/canary]",
]

# one HPA, four fields at fault: max below min (line 7), a window over HPA's hour (line 11), and a
# rate policy's value and period (line 13)
FOUR_BAD_FIELDS = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 5
  maxReplicas: 2
  behavior:
    scaleDown:
      selectPolicy: Max
      stabilizationWindowSeconds: 7200
      policies:
      - {type: Pods, value: 0, periodSeconds: 4000}
"""
FOUR_BAD_SAID = [
    "{f}:7: spec.maxReplicas: must be >= min replicas (5), got 2 [HorizontalPodAutoscaler shop/api]",
    "{f}:11: spec.behavior.scaleDown.stabilizationWindowSeconds: expected 0..3600 seconds, got 7200 "
    "[HorizontalPodAutoscaler shop/api]",
    "{f}:13: spec.behavior.scaleDown.policies[0].value: expected a positive integer, got 0 "
    "[HorizontalPodAutoscaler shop/api]",
    "{f}:13: spec.behavior.scaleDown.policies[0].periodSeconds: expected 1..1800 seconds, got 4000 "
    "[HorizontalPodAutoscaler shop/api]",
]

# a ScaledObject with a threshold that is not a quantity (line 10) and a pollingInterval that is
# not whole seconds (line 6)
KEDA_TWO_BAD_FIELDS = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: orders, namespace: shop}
spec:
  scaleTargetRef: {name: orders}
  pollingInterval: 2.5
  triggers:
  - type: prometheus
    metadata:
      threshold: lots
      query: sum(rate(orders_total[1m]))
"""
KEDA_TWO_BAD_SAID = [
    "{f}:6: spec.pollingInterval: expected whole seconds, got 2.5 [ScaledObject shop/orders]",
    "{f}:10: spec.triggers[0].metadata.threshold: expected a quantity such as 500m, 1k or 256Mi, got 'lots' "
    "[ScaledObject shop/orders]",
]

GOOD = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: cart, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: cart}
  minReplicas: 2
  maxReplicas: 6
"""

# converts, with a warning at line 7: deleting it for the cut-over scales its workload back
KEDA_RESTORES = """\
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: queue, namespace: shop}
spec:
  scaleTargetRef: {name: queue}
  minReplicaCount: 1
  advanced: {restoreToOriginalReplicaCount: true}
  triggers:
  - type: cpu
    metricType: Utilization
    metadata: {value: "60"}
"""
RESTORES_SAID = ("{f}:{line}: spec.advanced.restoreToOriginalReplicaCount: warning: advanced.restoreToOriginalReplicaCount "
                 "true: deleting this ScaledObject scales Deployment shop/queue back to the replicas it had before KEDA "
                 "scaled it, not the count KEDA left, before Setpoint takes it over: set it to false (kubectl apply) "
                 "before the cut-over [ScaledObject shop/queue]")

# a bad object in the first document (line 7), a document that does not parse in the second (its
# error was said first, before any object's)
BAD_THEN_BROKEN = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 5
  maxReplicas: 2
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: [unclosed
"""


@dataclass
class Case:
    files: dict[str, str]  # name -> text, written in the test's folder
    args: list[str]  # after `import`; - reads ``stdin``
    said: list[str]  # stderr, every line ({f}: the file's name as said)
    stdin: str | None = None
    written: list[str] = field(default_factory=list)  # files in out/ afterwards
    code: int = 1


CASES = [
    pytest.param(Case({"all.yaml": TWO_BAD_IN_A_LIST}, ["all.yaml", "--out-dir", "out"],
                      [s.format(f="all.yaml") for s in TWO_BAD_SAID]
                      + ["2 errors in 2 of 2 objects: nothing written"]),
                 id="two-bad-objects-in-one-list-give-both-errors"),
    pytest.param(Case({"api.yaml": FOUR_BAD_FIELDS}, ["api.yaml", "--out-dir", "out"],
                      [s.format(f="api.yaml") for s in FOUR_BAD_SAID]
                      + ["4 errors in 1 of 1 object: nothing written"]),
                 id="four-bad-fields-in-one-hpa-give-all-four"),
    pytest.param(Case({"orders.yaml": KEDA_TWO_BAD_FIELDS}, ["orders.yaml", "--out-dir", "out"],
                      [s.format(f="orders.yaml") for s in KEDA_TWO_BAD_SAID]
                      + ["2 errors in 1 of 1 object: nothing written"]),
                 id="two-bad-fields-in-one-scaled-object-give-both"),
    pytest.param(Case({"mixed.yaml": GOOD + "---\n" + FOUR_BAD_FIELDS}, ["mixed.yaml", "--out-dir", "out"],
                      [s.format(f="mixed.yaml").replace(":7:", ":15:").replace(":11:", ":19:").replace(":13:", ":21:")
                       for s in FOUR_BAD_SAID]
                      + ["4 errors in 1 of 2 objects: nothing written (--skip-invalid writes the 1 other)"]),
                 id="a-good-and-a-bad-object-write-nothing"),
    pytest.param(Case({"mixed.yaml": GOOD + "---\n" + FOUR_BAD_FIELDS}, ["mixed.yaml", "--out-dir", "out",
                                                                          "--skip-invalid"],
                      [f"note: {s} (skipped: --skip-invalid)".format(f="mixed.yaml").replace(":7:", ":15:")
                       .replace(":11:", ":19:").replace(":13:", ":21:") for s in FOUR_BAD_SAID]
                      + ["wrote out/cart.yaml (HorizontalPodAutoscaler shop/cart (autoscaling/v2))"],
                      written=["cart.yaml"], code=0),
                 id="skip-invalid-writes-the-good-one-naming-every-error-of-the-other"),
    pytest.param(Case({}, ["-", "--out-dir", "out"], [s.format(f="<stdin>") for s in TWO_BAD_SAID]
                      + ["2 errors in 2 of 2 objects: nothing written"], stdin=TWO_BAD_IN_A_LIST),
                 id="stdin-list-gives-both-errors"),
    pytest.param(Case({"z.yaml": FOUR_BAD_FIELDS, "a.yaml": TWO_BAD_IN_A_LIST}, ["z.yaml", "a.yaml", "-o", "policies.yaml"],
                      [s.format(f="z.yaml") for s in FOUR_BAD_SAID] + [s.format(f="a.yaml") for s in TWO_BAD_SAID]
                      + ["6 errors in 3 of 3 objects: nothing written"]),
                 id="files-in-the-order-given-each-by-line"),
    pytest.param(Case({"two.yaml": BAD_THEN_BROKEN}, ["two.yaml"],
                      [FOUR_BAD_SAID[0].format(f="two.yaml"),
                       "two.yaml:12: invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a "
                       "flow sequence at line 11)",
                       "2 errors (1 in 1 of 1 object, 1 outside them): nothing written"]),
                 id="a-broken-document-is-said-at-its-line-after-an-earlier-object"),
    pytest.param(Case({"mixed.yaml": FOUR_BAD_FIELDS + "---\n" + KEDA_RESTORES}, ["mixed.yaml"],
                      [s.format(f="mixed.yaml") for s in FOUR_BAD_SAID] + [RESTORES_SAID.format(f="mixed.yaml", line=21)]
                      + ["4 errors in 1 of 2 objects, 1 warning: nothing written (--skip-invalid writes the 1 other)"]),
                 id="a-warning-is-said-apart-after-the-errors"),
    pytest.param(Case({"queue.yaml": KEDA_RESTORES}, ["queue.yaml", "--out-dir", "out"],
                      [RESTORES_SAID.format(f="queue.yaml", line=7), "wrote out/queue.yaml (ScaledObject shop/queue)"],
                      written=["queue.yaml"], code=0),
                 id="a-warning-alone-is-said-at-its-field-and-the-policy-written"),
    pytest.param(Case({"hpa/z.yaml": FOUR_BAD_FIELDS, "hpa/a.yaml": TWO_BAD_IN_A_LIST, "hpa/README.txt": "not read"},
                      ["hpa", "--out-dir", "out"],
                      [s.format(f="hpa/a.yaml") for s in TWO_BAD_SAID] + [s.format(f="hpa/z.yaml") for s in FOUR_BAD_SAID]
                      + ["6 errors in 3 of 3 objects: nothing written"]),
                 id="a-folder-is-read-as-its-yaml-files-in-name-order"),
    pytest.param(Case({"empty/README.txt": "not read"}, ["empty", "-o", "policies.yaml"],
                      ["empty: no *.yaml or *.yml files in this folder", "1 error: nothing written"]),
                 id="a-folder-without-yaml-files-is-said"),
]


@pytest.mark.parametrize("case", CASES)
def test_import_says_every_error_at_once(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    for name, text in case.files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", *case.args], input=case.stdin)
    assert result.exit_code == case.code, result.output
    assert result.stderr.splitlines() == case.said
    written = sorted(p.name for p in (tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert written == case.written
    if case.code:
        assert result.stdout == "" and not (tmp_path / "policies.yaml").exists()


def test_an_output_file_in_a_missing_folder_is_refused_before_anything_is_read(tmp_path, monkeypatch):
    """-o into a folder that does not exist: said as tune says it, naming the folder (it named the
    writer's temporary file, nodir/.all.yaml.<hex>.tmp, after the whole import had run)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cart.yaml").write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "cart.yaml", "-o", "nodir/all.yaml"])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"--out: nodir/all.yaml: no such folder {tmp_path}/nodir; create it or name another file\n"
    assert ".tmp" not in result.stderr and not (tmp_path / "nodir").exists()


HPA = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "namespace": "shop"},
       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2,
                "maxReplicas": 8}}
KEDA = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "q", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"name": "worker"}, "triggers": [{"type": "cpu", "metadata": {"value": "60"}}]}}


def _spec(obj: dict, **fields) -> dict:
    return {**obj, "spec": {**obj["spec"], **fields}}


@pytest.mark.parametrize("obj, problems", [
    pytest.param(_spec(HPA, maxReplicas=1, metrics=[
        {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "Utilization"}}},
        {"type": "External", "external": {"metric": {}, "target": {"type": "Value", "value": "3"}}}]), [
        (("spec", "maxReplicas"), "must be >= min replicas (2), got 1"),
        (("spec", "metrics", 0, "pods", "target", "type"), "expected AverageValue for a Pods metric, got 'Utilization'"),
        (("spec", "metrics", 1, "external", "metric", "name"), "required field is missing")],
        id="replicas-and-each-of-two-metrics"),
    pytest.param({**_spec(HPA, minReplicas=-1, scaleTargetRef={"kind": "Rollout", "name": "web"}),
                  "metadata": {"namespace": "shop"}}, [
        (("metadata", "name"), "required field is missing"),
        (("spec", "scaleTargetRef", "kind"), "Setpoint scales Deployment or StatefulSet, got 'Rollout': scale the "
                                             "workload behind it instead"),
        (("spec", "minReplicas"), "expected a replica count, got -1")],
        id="a-missing-name-stops-nothing-else"),
    pytest.param(_spec(HPA, metrics=[{"type": "Resource", "resource": {
        "name": "gpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]), [
        (("spec", "metrics", 0, "resource", "target", "averageUtilization"), "expected a positive number, got 0"),
        (("spec", "metrics", 0, "resource", "name"), "expected resource cpu or memory, got 'gpu'")],
        id="a-resource-metric-s-name-and-target"),
    pytest.param(_spec(KEDA, pollingInterval=-5, triggers=[
        {"type": "prometheus", "metricType": "Utilization", "metadata": {"threshold": "lots"}}]), [
        (("spec", "triggers", 0, "metadata", "query"), "required field is missing: the PromQL query"),
        (("spec", "triggers", 0, "metadata", "threshold"), "expected a quantity such as 500m, 1k or 256Mi, got 'lots'"),
        (("spec", "triggers", 0, "metricType"), "expected AverageValue or Value for a prometheus trigger, got "
                                                "'Utilization'"),
        (("spec", "pollingInterval"), "expected whole seconds, got -5")],
        id="a-keda-trigger-s-three-fields-and-the-polling-interval"),
    pytest.param(_spec(KEDA, triggers=[{"type": "prometheus", "metadata": {"query": ["q"], "threshold": {"v": 1}}}]), [
        (("spec", "triggers", 0, "metadata", "query"), "expected a string, got a list"),
        (("spec", "triggers", 0, "metadata", "threshold"), "expected a string, got a mapping")],
        id="every-trigger-metadata-value-that-is-not-a-string"),
    # a rate policy without its type (value and period read): was KeyError 'type', exit 70
    pytest.param(_spec(HPA, behavior={"scaleDown": {"policies": [{"value": 4, "periodSeconds": 60}]}}),
                 [(("spec", "behavior", "scaleDown", "policies", 0, "type"), "expected Pods or Percent, got null")],
                 id="a-rate-policy-without-its-type"),
    # nothing below a spec that is not a mapping reads: one problem, not one per field under it
    pytest.param({**HPA, "spec": 5}, [(("spec",), "expected a mapping, got 5")], id="a-spec-that-is-no-mapping-stops"),
])
def test_convert_keeps_every_problem_of_an_object(obj, problems):
    """Each part of an object that reads on its own is checked, whatever another part's problem;
    ``path`` and ``message`` stay the first's (what sim serve's HPA controller logs)."""
    with pytest.raises(ConversionProblem) as info:
        convert(obj)
    assert [(p.path, p.message) for p in info.value.problems] == problems
    assert (info.value.path, info.value.message) == problems[0]
