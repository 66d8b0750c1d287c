"""Prometheus misbehaves: the controller never scales down because of it, holds, then applies the
policy's fallback (which only ever raises), and follows the data again once it is back.

HTTP-level faults a real server cannot be made to produce on demand (slow answers, 500s) come
from a small stub; a closed port is a real "unreachable"; empty results and NaN come from the
real Prometheus (constant PromQL expressions, no data needed), and so do negative values and
implausible ones (1e300 rps: a broken exporter; core/scaling/signal.py).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.telemetry import Telemetry
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.workload import ServiceConfig
from tests.support.prometheus_server import free_port, prometheus_server

T0 = 1_800_000_000.0

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: QUERY
        target: {averagePerReplica: 100}
    behavior:
      scaleDown: {stabilizationWindow: 0s}
    onMissingMetrics: {hold: 30s, then: {fallbackReplicas: 8}}
"""


def labelled(expr: str) -> str:
    """A constant expression as the series of Deployment default/web."""
    return f'label_replace(label_replace({expr}, "namespace", "default", "", ""), "deployment", "web", "", "")'


GOOD = labelled("vector(200)")  # 200 rps: 2 replicas would do


class Stub:
    """Answers every query with ``mode``: "slow" (longer than the client's timeout) or "error" (HTTP 500)."""

    def __init__(self, mode: str):
        outer = self
        self.mode, self.requests = mode, 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.requests += 1
                if outer.mode == "slow":
                    time.sleep(1.5)
                body = json.dumps({"status": "error", "errorType": "internal", "error": "boom"}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def prom():
    with prometheus_server() as server:
        yield server


def source(url: str) -> PrometheusSource:
    return PrometheusSource(PrometheusConfig.from_url(url, timeout_s=0.6, retries=1, backoff_s=0.05))


def reconciler(query: str, metrics) -> tuple[Reconciler, SimCluster]:
    [policy] = load_policy_text(POLICY.replace("QUERY", json.dumps(query)), "web.yaml")
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=6, max_pods=30)], rng=1)
    rp = RuntimePolicy(policy.name, policy.params, policy.targets, (query,))
    return Reconciler(rp, metrics, SimTargets(cluster, ["web"])), cluster


FAULTS = ["unreachable", "slow", "errors", "empty", "nan", "negative", "implausible"]


@pytest.mark.parametrize("fault", FAULTS)
def test_bad_metrics_hold_then_fall_back_then_recover(fault, prom):
    stub = Stub("slow" if fault == "slow" else "error") if fault in ("slow", "errors") else None
    url = {"unreachable": f"http://127.0.0.1:{free_port()}", "slow": stub and stub.url, "errors": stub and stub.url,
           "empty": prom.url, "nan": prom.url, "negative": prom.url, "implausible": prom.url}[fault]
    query = {"empty": "no_such_metric_at_all", "nan": labelled("vector(0) / 0"),
             "negative": labelled("vector(-15)"), "implausible": labelled("vector(1e300)")}.get(fault, GOOD)
    rec, cluster = reconciler(query, source(url))
    try:
        seen = []
        for k in range(4):  # t = 0, 15, 30, 45 s: hold for 30 s, then the fallback
            result = rec.cycle(T0 + 15 * k)
            seen.append(int(cluster.spec_replicas[0]))
            assert result.errors or fault in ("empty", "nan", "negative", "implausible")
        assert seen == [6, 6, 8, 8], seen  # never below 6; the fallback raises to 8 after the hold
        reasons = [r.reason for r in result.decision.records("web", ["default/web"], ("rps",))]
        assert reasons == ["FallbackReplicas"]

        rec.metrics = source(prom.url)  # Prometheus is healthy again, with real data
        rec.policy = RuntimePolicy(rec.policy.name, rec.policy.params, rec.policy.selector, (GOOD,))
        rec.cycle(T0 + 60)
        assert int(cluster.spec_replicas[0]) == 2  # 200 rps at 100 per replica: follows the data
    finally:
        if stub:
            stub.close()
    if stub:
        assert stub.requests <= 4 * 2  # bounded: one query per cycle, one retry


@pytest.mark.parametrize("expr,reason", [
    pytest.param("vector(-15)", "negative", id="negative"),
    pytest.param("vector(0) / 0", "non_finite", id="nan"),
    pytest.param("vector(1) / 0", "non_finite", id="inf"),
    pytest.param("vector(1e300)", "implausible", id="implausible"),
])
def test_invalid_samples_are_counted_by_reason(expr, reason, prom):
    rec, cluster = reconciler(labelled(expr), source(prom.url))
    telemetry = Telemetry()
    for k in range(2):
        telemetry.observe_cycle(rec.cycle(T0 + 15 * k))
    assert int(cluster.spec_replicas[0]) == 6  # held: never scaled toward min
    get = telemetry.registry.get_sample_value
    assert get("setpoint_invalid_samples_total", {"policy": "web", "metric": "rps", "reason": reason}) == 2
    for other in {"negative", "non_finite", "implausible"} - {reason}:
        assert get("setpoint_invalid_samples_total", {"policy": "web", "metric": "rps", "reason": other}) is None
