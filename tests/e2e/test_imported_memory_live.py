"""End to end: an HPA with a memory metric, through `setpoint import`, run by `setpoint run`
against `setpoint sim serve` with a real Prometheus scraping it (separate processes on loopback).
The imported queries read sim serve's cAdvisor and kube-state-metrics series unchanged
(container_memory_working_set_bytes, and kube_pod_container_resource_requests{resource="memory"}
for a Utilization target), so memory decides the scale-up of a workload whose pods leak memory.
Before, sim serve exported no memory request (the Utilization query had no series) and the
migration guide said memory never decides in the rehearsal.

Timeline (simulated seconds = wall seconds since the scenario clock started): 4 pods at 200 rps (CPU 50 %
of request, under the HPA's 80 %); from 5 s each pod leaks 4 MiB/s from 256 MiB (50 % of its
512 MiB request), so memory passes the 70 % target about 25 s later. Every wait is bounded.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_live_loop import running_world, spec_replicas, wait_until
from tests.support.cli_inproc import run_cli

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-leak}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      capacityPerPod: 100
      startupDelay: 2s
      schedulingDelay: 0s
      initialReplicas: 4
      maxPods: 20
      load: [{constant: {rps: 200}}]
  faults:
    - {name: leak, kind: memory-leak, at: 5s, services: [web], mibPerSecond: 4}
"""


def hpa(memory_target: dict) -> str:
    return json.dumps({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                       "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                "minReplicas": 2, "maxReplicas": 20, "metrics": [
                                    {"type": "Resource", "resource": {"name": "cpu", "target": {
                                        "type": "Utilization", "averageUtilization": 80}}},
                                    {"type": "Resource", "resource": {"name": "memory", "target": memory_target}}]}})


def imported(tmp_path, manifest: str) -> str:
    """The policy `setpoint import` writes for ``manifest``, at a 2 s interval (HPA's 15 s would
    make the test a minute longer)."""
    (tmp_path / "hpa.yaml").write_text(manifest)
    proc = run_cli("import", "hpa.yaml", cwd=tmp_path)  # in this process: what it writes is what counts here
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("interval: 15s") == 1
    return proc.stdout.replace("interval: 15s", "interval: 2s")


@pytest.mark.parametrize("memory_target", [
    pytest.param({"type": "Utilization", "averageUtilization": 70}, id="utilization-of-the-memory-requests"),
    pytest.param({"type": "AverageValue", "averageValue": "360Mi"}, id="average-value-in-bytes"),
])
def test_an_imported_hpas_memory_metric_decides_against_sim_serve_and_prometheus(tmp_path, memory_target):
    with running_world(tmp_path, SCENARIO, imported(tmp_path, hpa(memory_target))) as w:
        kc, run = w["kubeconfig"], w["run"]
        assert spec_replicas(kc) == 4
        try:
            wait_until(lambda: spec_replicas(kc) > 4, 90, what="memory's scale-up")
        except AssertionError as exc:  # what the controller said meanwhile: why it did not scale
            written = w["tmp"] / "decisions.jsonl"
            decisions = written.read_text().splitlines()[-3:] if written.exists() else ["(none written)"]
            raise AssertionError(f"{exc}\nsetpoint run's log ended:\n{run.tail()}\nits last records:\n"
                                 + "\n".join(decisions)) from None
        assert run.alive(), run.tail()
        assert run.stop() == 0, run.tail()
        records = [json.loads(line) for line in (w["tmp"] / "decisions.jsonl").read_text().splitlines()]
    ups = [r for r in records if r["reason"] == "ScaleUp"]
    # memory set the scale-up: its proposal is the one combined, above CPU's (which reads 50 %: no more pods)
    assert ups and all(r["metrics"]["memory"]["proposal"] == r["combined"] > r["metrics"]["cpu"]["proposal"]
                       for r in ups), [(r["at"], r["metrics"]) for r in ups]
    first = [r for r in records if r["metrics"]["memory"]["raw"] is not None][0]["metrics"]["memory"]["raw"]
    # what the query read before the leak grew: 4 pods at 256 MiB each, of 512 MiB requested
    expected = 50.0 if "averageUtilization" in memory_target else 4 * 256 * 2 ** 20
    assert first == pytest.approx(expected, rel=0.1)
