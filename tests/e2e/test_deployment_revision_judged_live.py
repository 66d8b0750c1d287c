"""End to end, a Deployment's release judged worse by a record revision check, as an operator
runs it before trusting the check with a rollback: `setpoint sim serve` of a Deployment (8 pods),
a real Prometheus scraping it, `setpoint run` with a health-only policy whose latency revision
check says ``action: record``; separate processes on loopback.

The release (a bad-rollout at 10 s: its pods 300 ms slower) rolls out over a few seconds, the new
ReplicaSet's pods beside the old one's. Setpoint compares the new revision's pods with the old
ones' p95 and says it is worse: reason RevisionWorseRecorded in the records and ``setpoint status``,
one Warning Event RevisionWorseRecorded on the Deployment naming both ReplicaSets' revisions and
the ``kubectl rollout undo`` to run, and ``setpoint_revision_worse`` = 1. Nothing is rolled back.
Every wait is bounded.
"""

from __future__ import annotations

import urllib.request

from tests.support.cli_inproc import run_cli
from tests.e2e.test_live_loop import running_world, wait_until
from tests.e2e.test_statefulset_heal_live import health_records

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-deployment-judged}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      capacityPerPod: 100
      startupDelay: 3s
      schedulingDelay: 0s
      initialReplicas: 8
      maxPods: 20
      errorRatio: 0.002
      load: [{constant: {rps: 400}}]
  faults:
    - {name: release, kind: bad-rollout, at: 10s, services: [web], extraLatency: 300ms}
"""

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: e2e-deployment-judged}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 2s
  health:
    checks:
      - name: release-latency
        scope: revision
        query: >-
          histogram_quantile(0.95, sum by (namespace, pod, le)
          (rate(http_request_duration_seconds_bucket{namespace="default"}[10s])))
        compare: {worseBy: 2x, falseRollbackRate: 1%}
        action: record
    budgets: {restartsPerHour: 6, rollbacksPerDay: 2, maxUnavailable: 25%}
"""


def test_a_slower_release_of_a_deployment_is_judged_worse_and_said(tmp_path):
    from kubernetes import client, config

    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kc)))
        apps = client.AppsV1Api(config.new_client_from_config(config_file=str(kc)))

        def judged():
            return [h for h in health_records(tmp_path) if h["reason"] == "RevisionWorseRecorded"]

        first = wait_until(judged, 60, what="the release judged worse (RevisionWorseRecorded)")[0]
        assert (first["action"], first["trigger"]) == (None, "release-latency"), first
        rc = first["revision_checks"]["release-latency"]
        assert rc["verdict"] == "bad" and rc["new_value"] > 2 * rc["stable_value"], rc

        def worse_events():
            events = api.list_namespaced_event("default", _request_timeout=5).items
            return [e for e in events if e.reason == "RevisionWorseRecorded"]

        (event,) = wait_until(worse_events, 20, what="the Warning Event RevisionWorseRecorded")
        assert event.type == "Warning", event
        assert (event.involved_object.kind, event.involved_object.name) == ("Deployment", "web"), event
        message = event.message
        assert first["revision"] and f"the new ReplicaSet's revision {first['revision']} (" in message, message
        assert "of Deployment web is worse than the old ReplicaSet's revision 1 by release-latency; " in message, message
        assert "`kubectl rollout undo deployment/web -n default` goes back to revision 1" in message, message

        seen = len(health_records(tmp_path))
        wait_until(lambda: len(health_records(tmp_path)) >= seen + 3, 20, what="three more cycles")
        metrics = urllib.request.urlopen(w["status"] + "/metrics", timeout=5).read().decode()
        assert 'setpoint_revision_worse{policy="e2e-deployment-judged",target="default/web"} 1.0' in metrics, metrics
        status = run_cli("status", "--server", w["status"], cwd=tmp_path)
        assert status.returncode == 0 and "REVISION WORSE" in status.stdout, status.stdout + status.stderr
        assert len(worse_events()) == 1, worse_events()  # once per revision, not every cycle
        deployment = apps.read_namespaced_deployment("web", "default", _request_timeout=5)
        assert int(deployment.metadata.annotations["deployment.kubernetes.io/revision"]) == 2, "rolled back"
        assert run.alive(), run.tail()
    records = health_records(tmp_path)
    assert not [h for h in records if h["action"]], [h for h in records if h["action"]]
    assert "action failed" not in (tmp_path / "run.log").read_text()
