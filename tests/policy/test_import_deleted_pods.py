"""`setpoint import`'s resource queries leave out pods being deleted, as HPA does (its replica
calculator skips pods with a deletionTimestamp): evaluated by Prometheus' own engine (`promtool
test rules`) on kube-state-metrics' and cAdvisor's series for two running pods and one
terminating after a scale-down (its request still listed, its usage through its grace, and
kube_pod_deletion_timestamp). Counted, it read utilization 1/3 low through every scale-down
and rollout.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from controller.cli import app
from controller.policy import load_policy_text

PROMTOOL = shutil.which("promtool")

HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 20
  metrics:
    - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}
    - {type: Resource, resource: {name: memory, target: {type: Utilization, averageUtilization: 80}}}
"""

#: web's pods: a and b run, c was deleted (scaled down) and is within its grace. One sample a minute.
PODS = {"web-6b7c9d8f5-aaaaa": False, "web-6b7c9d8f5-bbbbb": False, "web-6b7c9d8f5-ccccc": True}


def _series() -> list[dict]:
    out = []
    for pod, deleting in PODS.items():
        labels = f'namespace="shop",pod="{pod}"'
        # 0.5 cores busy each (a counter rising 30 s a minute), 1 core requested; 256 MiB of 512 MiB
        out += [{"series": f'container_cpu_usage_seconds_total{{{labels},container="app"}}', "values": "0+30x10"},
                {"series": f'kube_pod_container_resource_requests{{{labels},container="app",resource="cpu",unit="core"}}',
                 "values": "1x10"},
                {"series": f'container_memory_working_set_bytes{{{labels},container="app"}}', "values": "268435456x10"},
                {"series": f'kube_pod_container_resource_requests{{{labels},container="app",resource="memory",unit="byte"}}',
                 "values": "536870912x10"}]
        if deleting:
            out.append({"series": f'kube_pod_deletion_timestamp{{{labels}}}', "values": "540x10"})
    return out


def _imported_queries(tmp_path) -> dict[str, str]:
    (tmp_path / "hpa.yaml").write_text(HPA)
    result = CliRunner().invoke(app, ["import", str(tmp_path / "hpa.yaml"), "-o", str(tmp_path / "web.yaml")])
    assert result.exit_code == 0, result.output
    assert len(load_policy_text((tmp_path / "web.yaml").read_text())) == 1  # it validates
    return {m["name"]: m["query"] for m in yaml.safe_load((tmp_path / "web.yaml").read_text())["spec"]["scaling"]["metrics"]}


@pytest.mark.parametrize("metric, expected", [
    # the running pods' share of their requests; with c counted, 1.0 / 3 cores (33.3 %) and 576 / 1536 MiB (37.5 %)
    pytest.param("cpu", 50.0, id="cpu-utilization-of-the-running-pods"),
    pytest.param("memory", 50.0, id="memory-utilization-of-the-running-pods"),
])
def test_imported_utilization_leaves_out_pods_being_deleted(tmp_path, metric, expected):
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    query = _imported_queries(tmp_path)[metric]
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    series = _series()
    stopping = {"container_cpu_usage_seconds_total": "0+30x5 150x4", "container_memory_working_set_bytes": "67108864x10"}
    series = [dict(s, values=stopping[s["series"].split("{")[0]])  # c's container stops: no more CPU, 64 MiB
              if "ccccc" in s["series"] and s["series"].split("{")[0] in stopping else s for s in series]
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": query, "eval_time": "9m",
                              "exp_samples": [{"labels": '{namespace="shop", deployment="web"}', "value": expected}]}]}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
