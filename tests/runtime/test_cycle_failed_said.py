"""A cycle that fails on the Kubernetes API's answer (a 5xx burst, a 403, a timeout) is logged
as "cycle failed" with the error and no Python traceback; a bug keeps its traceback.

In a day-2 drill, six 503s from the deployments list made a JSON log line of 40 traceback lines
through the kubernetes client's frames for what the error's one line says ("list Deployment in
shop: HTTP 503: ..."), and read as a bug in Setpoint. Through sim serve's Kubernetes API (the
official client), its fault rules giving the failures.
"""

from __future__ import annotations

import logging

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.runtime.service import ControllerService
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import POLICY

LIST_PATH = r"/namespaces/shop/deployments$"


class Broken(KubernetesCluster):
    """A bug in the adapter: not an answer of the API."""

    def resolve(self, selector):
        raise TypeError("'NoneType' object is not subscriptable")


@pytest.mark.parametrize("cluster_class, status, error, traceback", [
    pytest.param(KubernetesCluster, 503, "list Deployment in shop: HTTP 503", False, id="server-unavailable"),
    pytest.param(KubernetesCluster, 403, "list Deployment in shop: HTTP 403", False, id="forbidden"),
    pytest.param(Broken, None, "'NoneType' object is not subscriptable", True, id="a-bug-keeps-its-traceback"),
])
def test_a_failed_cycle_says_the_api_error_without_a_traceback(cluster_class, status, error, traceback, server,
                                                              tmp_path, caplog):  # noqa: F811
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(POLICY)
    world = server.world
    world.advance(3)
    metrics = SimMetrics(world.engine, {"offered": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    if status is not None:
        server.api.faults.inject(LIST_PATH, status=status, times=10, method="GET", message=f"injected {status}")
    cluster = cluster_class(official_client(server, tmp_path), qps=0, max_retries=1, retry_backoff_s=0.01,
                            request_timeout_s=2.0)
    telemetry = Telemetry()
    try:
        service = ControllerService([tmp_path / "policies"], metrics, cluster, telemetry,
                                    clock=lambda: world.engine.now)
        with caplog.at_level(logging.INFO, logger="setpoint.runtime"):
            assert service.run_all_once() == []
    finally:
        cluster.close()
    [failed] = [r for r in caplog.records if r.getMessage() == "cycle failed"]
    assert failed.error.startswith(error), failed.error
    assert (failed.exc_info is not None) == traceback
    assert telemetry.registry.get_sample_value("setpoint_errors_total", {"policy": "web", "source": "cycle"}) == 1
