"""A health check whose query answers, but with nothing for a target, is said: it cannot fire there.

Found by the self-healing walkthrough: the shipped setpoint-healing policy's revision checks read
http_requests_total and http_request_errors_total by (namespace, pod), which sim serve exported
per pod under other names then (http_pod_requests_total): Prometheus answered with no series, the
comparison of a bad release stayed "undecided" on "0 requests" (as if it had no traffic), the
rollout was never held, and nothing in the log, status or explain said the check saw nothing.
A scaling metric in that state is warned of ("the query answered no sample for N of M targets");
a health check was not. The rollback came 1m50s after the release, from the workload error check.

The controller's service over the simulated cluster; the check's query answers with no series
while ``empty`` holds it (as Prometheus does for a metric name it has no series of).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.ports import Samples
from controller.runtime.service import ControllerService
from controller.runtime.telemetry import Telemetry
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.workload import ServiceConfig
from tests.runtime.test_service import T0

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 15s
  health:
    checks:
      - name: errors
        query: err_query
        unhealthy: {above: 0.5, for: 1m}
        action: record
      - name: memory
        query: mem_pods
        scope: pod
        unhealthy: {above: 600, for: 30s}
        action: restart-pod
      - name: release
        scope: revision
        errors: err_pods
        requests: req_pods
        compare: {worseBy: 2x, falseRollbackRate: 1%}
        action: rollback
"""
BINDINGS = {"err_query": "error_ratio", "mem_pods": "memory_mib", "err_pods": "errors_rps", "req_pods": "requests_rps"}


class Empty:
    """The simulated metrics, but the queries in ``empty`` answer with no series at all."""

    def __init__(self, inner):
        self.inner, self.empty = inner, set()

    def query(self, expr, targets, at, **kwargs):
        if expr in self.empty:
            return Samples.missing(len(targets))
        return self.inner.query(expr, targets, at, **kwargs)


@pytest.mark.parametrize("queries, said", [
    pytest.param({"err_pods", "req_pods"}, "health check release: its query answered no sample for 1 of 1 targets' "
                 "pods (none of their pods has a series); it cannot fire for them (missing data never does): check "
                 "the metric's name and its labels", id="a-revision-check-with-no-per-pod-series"),
    pytest.param({"req_pods"}, "health check release: its query answered no sample for 1 of 1 targets' pods",
                 id="one-of-a-revision-checks-two-queries-empty-blinds-it"),
    pytest.param({"mem_pods"}, "health check memory: its query answered no sample for 1 of 1 targets' pods",
                 id="a-pod-check-with-no-per-pod-series"),
    pytest.param({"err_query"}, "health check errors: its query answered no sample for 1 of 1 targets; it cannot "
                 "fire", id="a-workload-check-with-no-series"),
])
def test_a_check_that_sees_nothing_is_said_once_and_its_return_once(tmp_path, caplog, queries, said):
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30)], rng=1)
    metrics = SimMetrics(cluster, BINDINGS, window_s=60, tick_s=5)
    targets = SimTargets(cluster, ["web"])
    metrics.attach(targets)
    for k in range(4):
        cluster.step(T0 + 5 * k, 5.0, np.array([300.0]))
        metrics.push(cluster.signals())
    (tmp_path / "web.yaml").write_text(POLICY)
    source = Empty(metrics)
    service = ControllerService([tmp_path], source, targets, Telemetry(), clock=lambda: T0 + 20)
    lines = []
    for k, empty in enumerate([False, True, True, True, False, False]):
        source.empty = queries if empty else set()
        caplog.clear()
        with caplog.at_level("WARNING", logger="setpoint.runtime"):
            service.run_all_once()
        lines += [(k, r.getMessage()) for r in caplog.records if r.getMessage().startswith("health check")]
    [(start, first), (end, again)] = lines
    assert (start, end) == (1, 4) and first.startswith(said)
    assert again == said.split(":")[0] + ": a sample for every target again"
