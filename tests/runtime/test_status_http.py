"""GET /status of a running controller against `setpoint sim serve`'s Kubernetes API, and
`setpoint status --server` reading it in a subprocess (times in the local zone of TZ)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import jsonable
from controller.policy import load_policy_text
from controller.runtime.http import StatusServer
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from controller.runtime.service import ControllerService
from controller.errors import StatusUnreachable
from controller.runtime.status import book_from_records, fetch_status
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, official_client, server  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
T_CYCLE = 1_780_000_000.0  # the controller's clock: 2026-05-28 20:26:40 UTC
XST = timezone(timedelta(hours=5, minutes=30))

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 30s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: rps_query
        target: {averagePerReplica: 50}
"""


def cli(*args: str, tz: str = "XST-05:30") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TZ": tz, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "controller.cli", "status", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=REPO)


@pytest.fixture
def controller(server, tmp_path):  # noqa: F811 (fixture)
    """A started ControllerService on sim serve (web: 2 replicas, 150 rps) after one cycle, and
    its HTTP port."""
    (tmp_path / "web.yaml").write_text(POLICY)
    world = server.world
    world.advance(2)
    metrics = SimMetrics(world.engine, {"rps_query": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    telemetry = Telemetry()
    service = ControllerService([tmp_path / "web.yaml"], metrics, cluster, telemetry, clock=lambda: T_CYCLE)
    http = StatusServer("127.0.0.1:0", telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    service.start()  # its first cycle runs at once (within the start jitter) on the scheduler's thread
    web = None
    deadline = time.monotonic() + 30  # bounded wait for that one cycle, not a speed figure
    while web is None and time.monotonic() < deadline:
        time.sleep(0.05)
        web = service.status()["policies"].get("web", {}).get("targets", {}).get("shop/web")
    service.scheduler.pause()  # that cycle alone: the next (30 s on, sooner on a slow host) must not replace it
    assert web is not None and web["last_action"]["from"] == 2 and web["last_action"]["to"] == 3, web
    yield f"http://127.0.0.1:{http.port}"
    service.stop()
    http.stop()
    cluster.close()


def test_status_endpoint_serves_the_last_cycle_per_policy_and_target(controller):
    with urllib.request.urlopen(controller + "/status", timeout=REQUEST_TIMEOUT_S) as response:
        assert response.headers["Content-Type"] == "application/json"
        doc = json.loads(response.read())
    assert doc["kind"] == "SetpointStatus"
    web = doc["policies"]["web"]["targets"]["shop/web"]
    at = datetime.fromtimestamp(T_CYCLE, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (web["current"], web["desired"], web["reason"], web["at"]) == (2, 3, "ScaleUp", at)
    assert web["last_action"] == {"action": "scale", "reason": "ScaleUp", "from": 2, "to": 3, "at": at}
    assert {k: (c["status"], c["reason"]) for k, c in web["conditions"].items()} == {
        "AbleToScale": ("True", "SucceededRescale"), "ScalingActive": ("True", "ValidMetricFound"),
        "ScalingLimited": ("False", "DesiredWithinRange")}
    assert web["conditions"]["AbleToScale"]["message"] == "the controller was able to update the target scale to 3"
    assert web["conditions"]["AbleToScale"]["last_transition"] == at


def test_setpoint_status_server_prints_local_wall_clock_times(controller):
    proc = cli("--server", controller)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    local = datetime.fromtimestamp(T_CYCLE, XST).strftime("%Y-%m-%d %H:%M")  # not today: with the date
    assert f"policy web: last cycle {local} (" in out, out
    assert "UTC+05:30" in out
    assert "shop/web" in out and "scale 2->3 (ScaleUp)" in out and "SucceededRescale" in out, out
    assert max(len(line) for line in out.splitlines()) <= 80, out

    proc = cli("--server", controller, "--json")
    assert proc.returncode == 0, proc.stderr
    web = json.loads(proc.stdout)["policies"]["web"]["targets"]["shop/web"]
    assert web["at"] == datetime.fromtimestamp(T_CYCLE, XST).isoformat(timespec="seconds")  # ...+05:30


@pytest.mark.parametrize("args, message", [
    pytest.param(["--server", "http://127.0.0.1:9"], "cannot reach the controller at http://127.0.0.1:9", id="refused"),
    pytest.param(["--server", "127.0.0.1:8080"], "--server: expected a URL", id="not a URL"),
    # urllib's own errors reached the top as bugs (exit 70)
    pytest.param(["--server", "http://[::1"], "--server: expected a URL such as http://127.0.0.1:8080, got "
                                               "'http://[::1' (Invalid IPv6 URL)", id="broken IPv6 literal"),
    pytest.param(["--server", "http://127.0.0.1:abc"], "got 'http://127.0.0.1:abc' (Port could not be cast",
                 id="port not a number"),
    pytest.param(["--server", "http://127.0.0.1:99999"], "(Port out of range 0-65535)", id="port out of range"),
    pytest.param(["--records", "/nonexistent/decisions.jsonl"], "no such file", id="no records file"),
    pytest.param(["--records", "x.jsonl", "--server", "http://127.0.0.1:9"], "not both", id="both sources"),
    pytest.param(["--timeout", "inf"], "--timeout: expected seconds above 0 and at most 3600, got inf", id="timeout inf"),
    pytest.param(["--timeout", "nan"], "--timeout: expected seconds above 0 and at most 3600, got nan", id="timeout nan"),
    pytest.param(["--timeout", "0"], "--timeout: expected seconds above 0 and at most 3600, got 0", id="timeout 0"),
])
def test_bad_input_is_one_line_naming_the_next_step(args, message):
    proc = cli(*args)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("setpoint: ") and message in lines[0], proc.stderr
    if "refused" in message or "reach" in message:
        assert "kubectl port-forward" in lines[0]


def test_a_scale_the_api_refuses_is_able_to_scale_false(server, tmp_path):  # noqa: F811
    """A scale the API refuses (403) is AbleToScale False / FailedUpdateScale, with the API's answer."""
    [policy] = load_policy_text(POLICY, "web.yaml")
    world = server.world
    world.advance(2)
    metrics = SimMetrics(world.engine, {"rps_query": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, max_retries=0, retry_backoff_s=0.01)
    server.api.faults.inject(r"/deployments/web/scale$", status=403, times=1, method="PATCH")
    result = Reconciler(RuntimePolicy.of(policy), metrics, cluster).cycle(world.engine.now)
    cluster.close()
    assert not result.actions and len(result.failed) == 1
    records = [jsonable(r.to_dict()) for r in cycle_records(result, policy.params.metric_names)]
    web = book_from_records(records).view()["web"]["targets"]["shop/web"]
    able = web["conditions"]["AbleToScale"]
    assert (able["status"], able["reason"]) == ("False", "FailedUpdateScale")
    assert able["message"].startswith("the controller was unable to update the target scale: permanent")
    assert web["conditions"]["ScalingActive"]["reason"] == "ValidMetricFound"


class _Dribble(http.server.BaseHTTPRequestHandler):
    """Answers 200 with a JSON body one byte every 0.2 s (a stalled proxy, a wedged controller)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            if self.server.stop.wait(0.2):
                return
            self.wfile.write(b" ")
            self.wfile.flush()

    def log_message(self, *args):
        pass


def test_status_timeout_bounds_the_whole_answer_not_each_read():
    # urllib's timeout bounds each read: this answer would take 20 s at --timeout 1.
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Dribble)
    httpd.stop = threading.Event()
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(StatusUnreachable, match=r"no complete answer within 1s \(--timeout\)"):
            fetch_status(f"http://127.0.0.1:{httpd.server_address[1]}", timeout_s=1.0)
        assert time.monotonic() - started < 10
    finally:
        httpd.stop.set()
        httpd.shutdown()
        httpd.server_close()


WIDE = POLICY.replace("{name: web}", "{name: wide}").replace(
    "names: [web]", 'selector: {matchLabels: {"setpoint.io/autoscale": "true"}}')


def test_status_says_which_selected_workloads_a_policy_leaves_alone_and_why(server, tmp_path):  # noqa: F811
    # an operator's first question, "why is Setpoint not scaling api?", answered by `setpoint status`
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(POLICY)
    (tmp_path / "policies" / "wide.yaml").write_text(WIDE)  # selects web (policy web's) and api (an HPA's)
    world = server.world
    world.advance(2)
    metrics = SimMetrics(world.engine, {"rps_query": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    api_client = official_client(server, tmp_path)
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler("shop", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api-hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "maxReplicas": 9}})
    cluster = KubernetesCluster(api_client, qps=0, retry_backoff_s=0.01)
    service = ControllerService([tmp_path / "policies"], metrics, cluster, Telemetry(), clock=lambda: T_CYCLE)
    http = StatusServer("127.0.0.1:0", service.telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    try:
        results = {r.policy: r for r in service.run_all_once()}
        assert [t.key for t in results["wide"].targets] == []
        url = f"http://127.0.0.1:{http.port}"
        with urllib.request.urlopen(url + "/status", timeout=REQUEST_TIMEOUT_S) as response:
            policies = json.loads(response.read())["policies"]
        assert "left_alone" not in policies["web"]
        assert policies["wide"]["left_alone"] == {"shop/api": "HorizontalPodAutoscaler shop/api-hpa scales it",
                                                  "shop/web": "policy web governs it"}
        proc = cli("--server", url)
        assert proc.returncode == 0, proc.stderr
        assert "shop/api: left alone, HorizontalPodAutoscaler shop/api-hpa scales it" in proc.stdout, proc.stdout
        assert "shop/web: left alone, policy web governs it" in proc.stdout
        # it selects two workloads and governs neither: not "(no target yet)" (found in the HPA drill)
        assert "(none governed: see below)" in proc.stdout and "(no target yet)" not in proc.stdout
    finally:
        http.stop()
        cluster.close()


@pytest.mark.parametrize("listen, connect", [
    pytest.param("127.0.0.1:0", "127.0.0.1", id="ipv4"),
    # an IPv6-only cluster's pod listens on [::]: it raised socket.gaierror (HTTPServer binds IPv4 only)
    pytest.param("[::1]:0", "[::1]", id="ipv6-loopback"),
])
def test_the_status_server_listens_on_ipv4_and_ipv6(listen, connect):
    import socket

    from prometheus_client import CollectorRegistry

    from controller.runtime.http import StatusServer

    if ":" in connect:
        try:
            socket.socket(socket.AF_INET6).close()
        except OSError:
            pytest.skip("no IPv6 on this machine")
    http = StatusServer(listen, CollectorRegistry(), lambda: (True, "ok"), lambda: (True, "ok")).start()
    try:
        with urllib.request.urlopen(f"http://{connect}:{http.port}/healthz", timeout=REQUEST_TIMEOUT_S) as response:
            assert response.status == 200 and response.read() == b"ok\n"
    finally:
        http.stop()
