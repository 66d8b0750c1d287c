"""End to end: a controller restarted while its policy files are broken runs the copy the
previous one kept on the cluster, scales with it, and says so; fixed files take over.

`setpoint sim serve` + a real Prometheus + `setpoint run`, all on loopback, as test_live_loop.
Simulated seconds are wall seconds since sim serve started: 100 rps, then 800 from 15 s.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.e2e.kube_reads import api_client
from tests.e2e.test_live_loop import POLICY, SCENARIO, SETPOINT, Proc, serve_scenario, spec_replicas, wait_until
from tests.support.cli_inproc import run_cli
from tests.support.prometheus_server import ScrapeTarget, free_port, prometheus_server

# the step comes down at 120 s here, not 60 s: the first controller runs and stops before the
# second one has to see it
SCENARIO_LONG_STEP = SCENARIO.replace("step: {at: 60s, from: 0, to: -700}", "step: {at: 120s, from: 0, to: -700}")
BROKEN = POLICY.replace("averagePerReplica: 100", "averagePerReplica: lots")
KEPT = "setpoint-state-setpoint.last-good-policies"


def kept_copy(kubeconfig) -> dict | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.CoreV1Api(api_client(kubeconfig))
    try:
        cm = api.read_namespaced_config_map(KEPT, "default", _request_timeout=5)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(cm.data["state.json"])


def status_document(url: str) -> dict:
    with urllib.request.urlopen(url + "/status", timeout=5) as answer:
        return json.loads(answer.read())


def test_a_restart_with_broken_files_runs_the_kept_copy(tmp_path):
    pytest.importorskip("kubernetes")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "web.yaml").write_text(POLICY)
    procs: list[Proc] = []
    try:
        kubeconfig, metrics_port = serve_scenario(tmp_path, SCENARIO_LONG_STEP, procs)
        with prometheus_server([ScrapeTarget.of(f"127.0.0.1:{metrics_port}")], scrape_interval="1s") as prom:
            def controller(name: str) -> tuple[Proc, str]:
                port = free_port()
                proc = Proc([*SETPOINT, "run", "--policies", "policies", "--prometheus", prom.url, "--kubeconfig",
                             str(kubeconfig), "--listen", f"127.0.0.1:{port}", "--records", f"{name}.jsonl"],
                            tmp_path / f"{name}.log", tmp_path)
                procs.append(proc)
                return proc, f"http://127.0.0.1:{port}"

            first, _ = controller("first")
            copy = wait_until(lambda: kept_copy(kubeconfig), 30, what="the first controller's copy of its policies")
            assert [f["text"] for f in copy["files"]] == [POLICY]
            assert first.stop() == 0, first.tail()

            (policies / "web.yaml").write_text(BROKEN)
            # in this process (run_cli): what the commands say and their exit codes are what count here
            once = run_cli("run", "--policies", "policies", "--prometheus", prom.url, "--kubeconfig", kubeconfig,
                           "--once", "--records", "once.jsonl", cwd=tmp_path)
            assert once.returncode == 1 and "averagePerReplica" in once.stderr  # a pre-flight check never falls back

            second, url = controller("second")
            wait_until(lambda: spec_replicas(kubeconfig) >= 8, 60, what="the step scaled by the kept policy")
            assert second.alive(), second.tail()
            rejected = wait_until(lambda: status_document(url).get("rejectedPolicyFiles"), 10, what="/status")
            assert "web.yaml" in rejected["errors"][0] and "averagePerReplica" in rejected["errors"][0]
            told = run_cli("status", "--server", url, cwd=tmp_path)
            assert told.returncode == 0, told.stderr
            assert "policy files are invalid" in told.stderr and "kept on the cluster" in told.stderr
            with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
                assert "setpoint_policy_reload_ok 0.0" in answer.read().decode()
            assert "policy files invalid at start-up" in second.log.read_text()

            (policies / "web.yaml").write_text(POLICY.replace("max: 20", "max: 19"))
            wait_until(lambda: "rejectedPolicyFiles" not in status_document(url), 40, what="the fixed files loaded")
            fixed = wait_until(lambda: (kept_copy(kubeconfig) or {}).get("files", [{}])[0].get("text", "")
                               .count("max: 19"), 20, what="the fixed files kept as the new copy")
            assert fixed == 1
    finally:
        for p in reversed(procs):
            p.stop()
