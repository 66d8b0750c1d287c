"""A metric whose query fails (Prometheus down, slow, erroring) is said when it starts, every
OUTAGE_REMINDER_S while it lasts, and once when the query answers again.

In a day-2 drill (Prometheus stopped under a running controller) the same warning came at every
cycle (a 15 s interval: 240 lines an hour per metric and policy), and nothing said that Prometheus
answered again: the outage's end had to be read from the warnings stopping. The failing query is
the real Prometheus adapter's against a loopback port nothing listens on (connection refused);
the answering one the simulated cluster's metrics.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.runtime import service as service_module
from controller.runtime.service import ControllerService
from controller.runtime.telemetry import Telemetry
from simulators.cluster import SimCluster
from simulators.workload import ServiceConfig
from simulators.ports import SimMetrics, SimTargets
from tests.runtime.test_service import T0, sim, write_policy
from tests.support.prometheus_server import free_port


class Switched:
    """The simulated metrics while ``down`` is False; a real Prometheus adapter whose server is
    gone (nothing listens on its port) while it is True."""

    def __init__(self, inner, gone: PrometheusSource):
        self.inner, self.gone, self.down = inner, gone, False

    def query(self, expr, targets, at, **kwargs):
        return (self.gone if self.down else self.inner).query(expr, targets, at, **kwargs)


HELD = "; its targets' replicas are held (missing data never scales down) until it answers"


# each row: the query's state at each cycle (True: down), the reminder period, and the warnings
# about the metric's query: (cycle, how the line starts, how it ends)
@pytest.mark.parametrize("downs, reminder_s, said", [
    pytest.param([False, True, True, True, False, False], 300.0,
                 [(1, "metric rps: query 'rps_query' at http://127.0.0.1:", HELD),
                  (4, "metric rps: the query answers again, after failing for ", " (3 cycles)")],
                 id="said-when-it-starts-and-when-it-ends"),
    pytest.param([True, True, True], 0.0,
                 [(0, "metric rps: query 'rps_query' at http://127.0.0.1:", HELD),
                  (1, "metric rps: query 'rps_query' at http://127.0.0.1:", " (2 cycles)"),
                  (2, "metric rps: query 'rps_query' at http://127.0.0.1:", " (3 cycles)")],
                 id="reminded-while-it-lasts"),
    pytest.param([False, False], 300.0, [], id="nothing-said-while-it-answers"),
    pytest.param([True, False, True, False], 300.0,
                 [(0, "metric rps: query", HELD), (1, "metric rps: the query answers again", " (1 cycles)"),
                  (2, "metric rps: query", HELD), (3, "metric rps: the query answers again", " (1 cycles)")],
                 id="each-outage-its-own"),
])
def test_a_failing_query_is_said_when_it_starts_and_ends(downs, reminder_s, said, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(service_module, "OUTAGE_REMINDER_S", reminder_s)
    cluster, metrics, targets = sim()
    write_policy(tmp_path)
    gone = PrometheusSource(PrometheusConfig.from_url(f"http://127.0.0.1:{free_port()}", timeout_s=1.0))
    source = Switched(metrics, gone)
    service = ControllerService([tmp_path], source, targets, Telemetry(), clock=lambda: T0 + 20)
    lines = []
    try:
        for k, down in enumerate(downs):
            source.down = down
            caplog.clear()
            with caplog.at_level("WARNING", logger="setpoint.runtime"):
                [result] = service.run_all_once()
            assert bool(result.unavailable) == down
            # kubectl describe's ScalingActive says why there is no sample: not the metric, the query
            active = result.conditions[0]["ScalingActive"]
            assert (active["reason"] == "FailedGetExternalMetric") == down
            assert ("no usable sample for rps (its query failed: query 'rps_query' at http://127.0.0.1:"
                    in active["message"]) == down
            lines += [(k, r.getMessage()) for r in caplog.records if r.getMessage().startswith("metric rps")]
    finally:
        gone.close()
    assert len(lines) == len(said), lines
    for (k, line), (cycle, start, end) in zip(lines, said):
        assert k == cycle and line.startswith(start) and line.endswith(end), (k, line)


HEALTH_AND_RAMP = """\
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
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 100}
        ramp: {lead: 60s, latest: "sum by (namespace, deployment) (rate(http_requests_total[30s]))"}
  health:
    checks:
      - name: errors
        query: err_query
        unhealthy: {above: 0.5, for: 1m}
        recovered: {below: 0.1, for: 1m}
        action: record
      - name: release
        scope: revision
        errors: err_pods
        requests: req_pods
        compare: {worseBy: 2x, falseRollbackRate: 1%}
        action: rollback
"""


def test_every_failing_query_of_a_policy_is_said_once_and_its_return_once(tmp_path, caplog):
    """The scaling metric's, its ramp's latest reading's and the health checks': in the same
    drill the last two still warned at every cycle (three lines a cycle in all), and a revision
    check's first query (errors, beside requests) at every health step, 5 s apart in a rollout."""
    rate = "sum by (namespace, deployment) (rate(http_requests_total[{}]))"
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30)], rng=1)
    metrics = SimMetrics(cluster, {rate.format("1m"): "offered_rps", rate.format("30s"): "offered_rps",
                                   "err_query": "error_ratio", "err_pods": "errors_rps", "req_pods": "requests_rps"},
                         window_s=60, tick_s=5, windows={rate.format("30s"): 30})
    targets = SimTargets(cluster, ["web"])
    metrics.attach(targets)
    for k in range(4):
        cluster.step(T0 + 5 * k, 5.0, np.array([300.0]))
        metrics.push(cluster.signals())
    (tmp_path / "web.yaml").write_text(HEALTH_AND_RAMP)
    gone = PrometheusSource(PrometheusConfig.from_url(f"http://127.0.0.1:{free_port()}", timeout_s=1.0))
    source = Switched(metrics, gone)
    service = ControllerService([tmp_path], source, targets, Telemetry(), clock=lambda: T0 + 20)
    said = []
    try:
        for k, down in enumerate([False, True, True, True, False, False]):
            source.down = down
            caplog.clear()
            with caplog.at_level("WARNING", logger="setpoint.runtime"):
                [result] = service.run_all_once()
            assert set(result.unavailable) == ({"metric rps", "metric rps (ramp latest)", "health check errors",
                                                "health check release"} if down else set())
            said += [(k, r.getMessage().split(":")[0], "answers again" in r.getMessage()) for r in caplog.records
                     if r.getMessage().startswith(("metric rps", "health check errors", "health check release"))]
    finally:
        gone.close()
    keys = ["health check errors", "health check release", "metric rps", "metric rps (ramp latest)"]
    assert sorted(said) == sorted([(1, key, False) for key in keys] + [(4, key, True) for key in keys])
