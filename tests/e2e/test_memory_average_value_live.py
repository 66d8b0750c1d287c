"""End to end: HPA's Resource AverageValue on memory (``averagePerReplica`` with ``resource:
memory`` and a query kept by pod, under ``preset: hpa``) scales a Deployment through `setpoint run`
against `setpoint sim serve` with a real Prometheus scraping it (separate processes on loopback).

The rule worked by hand (Kubernetes' replica calculator, ``calcPlainMetricReplicas``): each
pod's working set is 256 MiB (the sim's base, no leak) and the target 200 MiB a pod, so the
per-pod mean over the pods with a sample reads 1.28 of the target, whatever the replica count.

- 4 Running pods: ceil(1.28 x 4) = ceil(5.12) = 6 (within the legacy limit max(2 x 4, 4) = 8).
- 6 Running pods: ceil(1.28 x 6) = ceil(7.68) = 8. The one node holds 6 pods: 2 stay Pending.
- 6 Running + 2 Pending: a scale-up with unready pods counts them 0, so the ratio is
  (6 x 256) / (8 x 200) = 0.96, within the 10 % tolerance: 8 replicas, held.

(A scale-up seen while the new pods have no sample yet counts them 0 too: (4 x 256) / (6 x 200)
= 0.85 is below 1 where the samples read above it, and HPA then holds: the same 6, one cycle
later.) Every wait is bounded.
"""

from __future__ import annotations

import json

from tests.e2e.test_live_loop import running_world, spec_replicas, wait_until

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-memory-average-value}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  nodes: {count: 1, podsPerNode: 6}
  services:
    - name: web
      capacityPerPod: 100
      startupDelay: 1s
      schedulingDelay: 0s
      initialReplicas: 4
      maxPods: 20
      load: [{constant: {rps: 200}}]
"""

MIB = 2 ** 20

POLICY = f"""\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: e2e-memory-average-value}}
spec:
  preset: hpa
  targets: {{kind: Deployment, namespace: default, name: web}}
  interval: 2s
  replicas: {{min: 2, max: 20}}
  scaling:
    metrics:
      - name: memory
        query: sum by (namespace, pod) (container_memory_working_set_bytes{{namespace="default", pod=~"web-.*", container!=""}})
        target: {{averagePerReplica: {200 * MIB}}}
        resource: memory
"""


def test_a_by_pod_memory_average_value_scales_as_hpas_resource_rule(tmp_path):
    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]
        # no check of 4 replicas here: the first cycle, before the hand-over, may read the samples
        # already (a loaded machine) and scale to 6; the records below show 4 -> 6 -> 8 either way
        wait_until(lambda: spec_replicas(kc) == 8, 30, what="the scale-up to 8 replicas (4 -> 6 -> 8)")

        def records() -> list[dict]:
            return [json.loads(line) for line in (w["tmp"] / "decisions.jsonl").read_text().splitlines()]

        seen = len(records())
        held = []
        # four more cycles at 8: 6 Running and 2 Pending pods read 0.96 of the target
        wait_until(lambda: held.append(spec_replicas(kc)) or len(records()) >= seen + 4, 20,
                   what="four more cycles")
        assert set(held) == {8}, held
        assert run.alive(), run.tail()
        assert run.stop() == 0, run.tail()
        decided = records()
    ups = [(r["current"], r["desired"]) for r in decided if r["reason"] == "ScaleUp"]
    assert ups == [(4, 6), (6, 8)], [(r["at"], r["reason"], r["current"], r["desired"], r["metrics"]) for r in decided]
    # what was read is the per-pod mean (256 MiB), not the workload's total (4 x 256 MiB)
    read = {r["metrics"]["memory"]["raw"] for r in decided if r["metrics"]["memory"]["raw"] is not None}
    assert read == {256 * MIB}, read
