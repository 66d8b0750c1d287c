"""End to end, accepting a release judged worse by a record revision check: the world of
tests/e2e/test_deployment_revision_judged_live.py (sim serve of Deployment web, a real Prometheus,
`setpoint run`, its latency check on ``action: record``; separate processes on loopback), then
kubectl 1.32 annotates the Deployment.

First with ``setpoint.io/accept-revision=3``, a revision that is not current: nothing is
accepted, status says so. Then with the judged revision, 2: the records say revision_accepted,
``setpoint_revision_worse`` is 0 (SetpointRevisionWorse resolves), status reads "accepted by
annotation", one Normal Event RevisionWorseAccepted. Nothing is rolled back. Before, there was no
acceptance: the gauge stayed 1 until the revision was replaced. Every wait is bounded."""

from __future__ import annotations

import subprocess
import urllib.request

from tests.support.cli_inproc import run_cli
from tests.e2e.test_deployment_revision_judged_live import POLICY, SCENARIO
from tests.e2e.test_live_loop import running_world, wait_until
from tests.e2e.test_statefulset_heal_live import health_records

GAUGE = 'setpoint_revision_worse{policy="e2e-deployment-judged",target="default/web"}'


def _kubectl_annotate(kubeconfig, revision: str) -> None:
    done = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout", "5s", "annotate",
                           "--overwrite", "deployment/web", f"setpoint.io/accept-revision={revision}"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def _status(w, tmp_path) -> str:
    # wide enough that no cell wraps
    done = run_cli("status", "--server", w["status"], cwd=tmp_path, env={"COLUMNS": "300"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_release_judged_worse_is_accepted_by_annotation(tmp_path):
    from kubernetes import client, config

    with running_world(tmp_path, SCENARIO, POLICY) as w:
        kc, run = w["kubeconfig"], w["run"]
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kc)))
        apps = client.AppsV1Api(config.new_client_from_config(config_file=str(kc)))
        wait_until(lambda: [h for h in health_records(tmp_path) if h.get("revision_worse")], 60,
                   what="the release judged worse")

        _kubectl_annotate(kc, "3")
        other = wait_until(lambda: [h for h in health_records(tmp_path) if h.get("accept_revision") == "3"], 20,
                           what="a record with the annotation naming revision 3")[0]
        assert other["revision_worse"] and not other.get("revision_accepted"), other
        assert "REVISION WORSE (accept-revision names 3: not accepted)" in _status(w, tmp_path)

        _kubectl_annotate(kc, "2")
        accepted = wait_until(lambda: [h for h in health_records(tmp_path) if h.get("revision_accepted")], 20,
                              what="the release accepted")[0]
        assert (accepted["revision"], accepted["accept_revision"]) == ("2", "2") and "revision_worse" not in accepted
        assert accepted["reason"] != "RevisionWorseRecorded", accepted
        seen = len(health_records(tmp_path))
        wait_until(lambda: len(health_records(tmp_path)) >= seen + 3, 20, what="three more cycles")
        metrics = urllib.request.urlopen(w["status"] + "/metrics", timeout=5).read().decode()
        assert f"{GAUGE} 0.0" in metrics, [line for line in metrics.splitlines() if "revision_worse" in line]
        assert "REVISION WORSE, accepted by annotation" in _status(w, tmp_path)

        def accepted_events():
            return [e for e in api.list_namespaced_event("default", _request_timeout=5).items
                    if e.reason == "RevisionWorseAccepted"]

        (event,) = wait_until(accepted_events, 20, what="the Event RevisionWorseAccepted")
        assert event.type == "Normal" and event.involved_object.name == "web", event
        assert event.message.startswith("e2e-deployment-judged: revision 2 of Deployment web, judged worse by "
                                        "release-latency, is accepted by annotation"), event.message
        assert len(accepted_events()) == 1  # once, not every cycle
        deployment = apps.read_namespaced_deployment("web", "default", _request_timeout=5)
        assert int(deployment.metadata.annotations["deployment.kubernetes.io/revision"]) == 2, "rolled back"
        assert run.alive(), run.tail()
    assert not [h for h in health_records(tmp_path) if h["action"] == "rollback"]
