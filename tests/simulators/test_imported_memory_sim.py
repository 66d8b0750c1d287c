"""An HPA's (or KEDA's) memory metric after `setpoint import` decides in `setpoint simulate`: it
binds by its target to what its query reads (a percent of the pods' memory requests, or the
workload's working set in bytes), not to the per-pod MiB of the ``memory`` signal, which left it
unbound (simulate refused the policy). The user's path: import, then simulate, by the CLI. A CPU
AverageValue reads cores by the same rule (it read the utilization in percent)."""

from __future__ import annotations

import json

import pytest

from controller.core.scaling.params import MetricKind
from simulators.scenario import load_scenario_text
from tests.support.cli_inproc import run_cli

# 10 pods at 600 rps: CPU 60 % of request, below the HPAs' 80 %. From 2m every pod leaks 1 MiB/s
# from 256 MiB (50 % of its 512 MiB request): memory passes 70 % (358 MiB) about 100 s later.
SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: leak}
spec:
  duration: 20m
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 10
      maxPods: 40
      load: [{constant: {rps: 600}}]
  faults:
    - {name: leak, kind: memory-leak, at: 2m, services: [web], mibPerSecond: 1}
"""


def hpa(memory: dict) -> str:
    """An autoscaling/v2 HPA of web on CPU at 80 % and ``memory`` (a metric's spec)."""
    return json.dumps({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                       "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                "minReplicas": 2, "maxReplicas": 30, "metrics": [
                                    {"type": "Resource", "resource": {"name": "cpu", "target": {
                                        "type": "Utilization", "averageUtilization": 80}}}, memory]}})


KEDA = json.dumps({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                   "metadata": {"name": "web", "namespace": "default"},
                   "spec": {"scaleTargetRef": {"name": "web"}, "minReplicaCount": 2, "maxReplicaCount": 30,
                            "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}},
                                         {"type": "memory", "metricType": "Utilization",
                                          "metadata": {"value": "70"}}]}})
UTILIZATION = {"type": "Utilization", "averageUtilization": 70}


@pytest.mark.parametrize("manifest, memory", [
    pytest.param(hpa({"type": "Resource", "resource": {"name": "memory", "target": UTILIZATION}}), "memory",
                 id="hpa-memory-utilization"),
    pytest.param(hpa({"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "350Mi"}}}), "memory", id="hpa-memory-average-value-bytes"),
    pytest.param(hpa({"type": "ContainerResource", "containerResource": {"name": "memory", "container": "web",
                                                                         "target": UTILIZATION}}),
                 "web-memory", id="hpa-container-resource-memory"),
    pytest.param(KEDA, "memory", id="keda-memory-trigger"),
])
def test_an_imported_memory_metric_decides_the_scale_up_of_a_leaking_workload(tmp_path, manifest, memory):
    (tmp_path / "hpa.yaml").write_text(manifest)
    (tmp_path / "leak.yaml").write_text(SCENARIO)
    imported = run_cli("import", "hpa.yaml", "-o", "web.yaml", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    proc = run_cli("simulate", "leak.yaml", "-p", "web.yaml", "--no-frontier", "--no-report", "--jobs", "1", "-o", "out",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    ups = [r for r in records if r.get("controller") == "policy" and r["reason"] == "ScaleUp"]
    # memory set every scale-up: its proposal is the one combined, above CPU's
    assert ups and all(r["metrics"][memory]["proposal"] == r["combined"] > r["metrics"]["cpu"]["proposal"]
                       for r in ups), [(r["at"], r["metrics"]) for r in ups]
    before = [r for r in records if r.get("controller") == "policy" and r["at"] < 120]
    assert before and all(r["desired"] <= 10 for r in before)  # no leak, no scale-up: memory reads 50 %
    result = json.loads((tmp_path / "out" / "result.json").read_text())["controllers"]
    assert result["policy"]["replica_hours"] > result["hpa"]["replica_hours"]  # the CPU-only baseline stays


def test_an_imported_cpu_average_value_reads_cores_not_percent(tmp_path):
    """An HPA's CPU AverageValue imports as sum(rate(container_cpu_usage_seconds_total)), cores,
    against cores per pod: simulate bound it to the utilization in percent (60 read as 60 cores:
    a proposal of 200 pods for 10 at 60 % CPU, scaled to the max at once)."""
    (tmp_path / "hpa.yaml").write_text(json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 30,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "AverageValue", "averageValue": "300m"}}}]}}))
    (tmp_path / "leak.yaml").write_text(SCENARIO)
    assert run_cli("import", "hpa.yaml", "-o", "web.yaml", cwd=tmp_path).returncode == 0
    proc = run_cli("simulate", "leak.yaml", "-p", "web.yaml", "--no-frontier", "--no-report", "--jobs", "1", "-o", "out",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [first] = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()[:1]]
    # 10 ready pods of 0.5 cores at 60 %: 3 cores, 10 pods of 0.3 (within HPA's tolerance: 10 stay)
    assert first["metrics"]["cpu"]["raw"] == pytest.approx(3.0, rel=0.05)
    assert first["metrics"]["cpu"]["proposal"] == first["desired"] == 10


@pytest.mark.parametrize("name, kind, bound, signal", [
    pytest.param("memory", MetricKind.UTILIZATION, None, "memory_mib:percent_of_request",
                 id="utilization-reads-percent-of-request"),
    pytest.param("memory", MetricKind.AVERAGE_PER_REPLICA, None, "memory_mib:total_bytes",
                 id="average-value-reads-workload-bytes"),
    pytest.param("app-memory", MetricKind.UTILIZATION, None, "memory_mib:percent_of_request",
                 id="container-resource-name"),
    pytest.param("memory", MetricKind.VALUE, None, None, id="a-value-target-has-no-default"),
    pytest.param("memory", None, None, None, id="no-target-kind-no-default"),
    pytest.param("heap", MetricKind.UTILIZATION, None, None, id="another-name-has-no-default"),
    pytest.param("memory", MetricKind.UTILIZATION, "memory", "memory_mib", id="the-memory-signal-keeps-its-meaning"),
    pytest.param("memory", MetricKind.AVERAGE_PER_REPLICA, "memory_bytes", "memory_mib:total_bytes",
                 id="bound-by-name"),
    pytest.param("cpu", MetricKind.UTILIZATION, None, "utilization_pct", id="cpu-utilization-reads-percent"),
    pytest.param("cpu", MetricKind.AVERAGE_PER_REPLICA, None, "utilization_pct:total_cores",
                 id="cpu-average-value-reads-cores"),
    pytest.param("cpu", MetricKind.VALUE, None, "utilization_pct", id="cpu-value-keeps-the-name-default"),
    pytest.param("cpu", None, None, "utilization_pct", id="cpu-without-a-kind-keeps-the-name-default"),
    pytest.param("web-cpu", MetricKind.UTILIZATION, None, "utilization_pct", id="container-resource-cpu"),
    pytest.param("cpu", MetricKind.AVERAGE_PER_REPLICA, "utilization", "utilization_pct",
                 id="cpu-bound-by-the-scenario-wins"),
])
def test_a_resource_metric_binds_by_its_target_unless_the_scenario_binds_it(name, kind, bound, signal):
    metrics = f"  metrics: {{{name}: {bound}}}\n" if bound else ""
    scenario = load_scenario_text(SCENARIO.replace("  services:", metrics + "  services:", 1), "leak.yaml")
    assert scenario.signal_for(name, kind) == signal


BY_POD = {"memory": 'sum by (namespace, pod) (container_memory_working_set_bytes{namespace="default", pod=~"web-.*", '
                    'container!=""})',
          "cpu": 'sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{namespace="default", pod=~"web-.*", '
                 'container!=""}[2m]))'}


@pytest.mark.parametrize("resource, average", [
    pytest.param("memory", "350Mi", id="memory"),
    pytest.param("cpu", "300m", id="cpu"),
])
def test_an_average_value_read_by_pod_reads_each_pods_share(tmp_path, resource, average):
    """With the import note's query by (namespace, pod), preset: hpa reads the metric pod by pod
    (HPA's Resource AverageValue): each pod's series is its own working set or cores, a tenth of
    the imported workload total over 10 alike pods, and before the leak it decides as the total
    does (memory 256 of 350 Mi: down to 8; cpu 0.3 of 0.3 cores: 10 stay). Each pod read the
    workload's total (memory) or its cores (cpu) instead: 10x, a proposal at the max of 30."""
    import yaml

    (tmp_path / "hpa.yaml").write_text(json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 30,
                 "metrics": [{"type": "Resource", "resource": {"name": resource, "target": {
                     "type": "AverageValue", "averageValue": average}}}]}}))
    (tmp_path / "leak.yaml").write_text(SCENARIO.replace("duration: 20m", "duration: 3m"))
    assert run_cli("import", "hpa.yaml", "-o", "web.yaml", cwd=tmp_path).returncode == 0
    policy = yaml.safe_load((tmp_path / "web.yaml").read_text())
    policy["spec"]["scaling"]["metrics"][0]["query"] = BY_POD[resource]
    (tmp_path / "by-pod.yaml").write_text(yaml.safe_dump(policy))
    runs = {}
    for name in ("web", "by-pod"):
        proc = run_cli("simulate", "leak.yaml", "-p", f"{name}.yaml", "--no-frontier", "--no-report", "-b",
                       "fixed-max", "--jobs", "1", "-o", name, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        runs[name] = [json.loads(line) for line in (tmp_path / name / "decisions.jsonl").read_text().splitlines()
                      if json.loads(line).get("controller") == "policy"]
    total, by_pod = runs["web"][0]["metrics"][resource], runs["by-pod"][0]["metrics"][resource]
    assert by_pod["raw"] == pytest.approx(total["raw"] / 10, rel=0.01)  # 10 running pods, alike
    assert by_pod["proposal"] == total["proposal"] == {"memory": 8, "cpu": 10}[resource]
    early = [[r["desired"] for r in runs[name] if r["at"] < 120] for name in ("by-pod", "web")]  # before the leak
    assert early[0] == early[1] and early[0], early
