"""The shipped self-healing example (policies/setpoint-healing.yaml, unchanged) against `setpoint
sim serve` + a real Prometheus scraping it + `setpoint run`: its revision check rolls back a bad
release.

Its revision checks read the conventional per-pod series of an instrumented app
(``sum by (namespace, pod) (rate(http_request_errors_total[1m]))`` and of ``http_requests_total``);
sim serve exported them per workload only (the per-pod ones under other names), so the checks saw
no series and a release failing 4x as many requests as the stable one (0.8% against 0.2%, under
the workload check's 1% SLO at any mix of the two) was never rolled back.

Timeline (wall s since the scenario clock started, speed 1): 540 rps on 8 pods (under the example's 70 rps a
pod: no scaling); the release at 40 s; each new pod Ready 20 s after its creation, two at a time
(maxSurge and maxUnavailable 25 %); the example's error check holds the rollout (spec.paused) until
its test decides, some 30 s of the new pods' traffic: the rollback comes 90-100 s after the start.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_live_loop import running_world, wait_for_rollback

HEALING_EXAMPLE = (Path(__file__).resolve().parents[2] / "policies" / "setpoint-healing.yaml").read_text()

BAD_RELEASE = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-healing-example}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: web
      capacityPerPod: 150
      startupDelay: 20s
      schedulingDelay: 0s
      initialReplicas: 8
      maxPods: 20
      errorRatio: 0.002
      load: [{constant: {rps: 540}}]
  faults:
    - {name: release, kind: bad-rollout, at: 40s, services: [web], errorRatioMultiplier: 4}
"""


def test_the_shipped_healing_example_rolls_back_a_bad_release_through_its_revision_check(tmp_path):
    assert "scope: revision" in HEALING_EXAMPLE and "name: release-errors" in HEALING_EXAMPLE
    with running_world(tmp_path, BAD_RELEASE, HEALING_EXAMPLE) as w:
        event = wait_for_rollback(w, timeout_s=150)
    assert "RollbackRevisionWorse" in event.message, event.message
    records = [json.loads(line)["health"] for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    [rollback] = [h for h in records if h["action"] == "rollback"]
    assert rollback["reason"] == "RollbackRevisionWorse"
    check = rollback["revision_checks"]["release-errors"]
    assert check["verdict"] == "bad" and check["new_value"] > 1.5 * check["stable_value"] > 0, check
