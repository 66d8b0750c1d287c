"""A retried read says what failed once: "list Deployment in shop: HTTP 503: ...; retry 1/2",
not "list Deployment in shop: list Deployment in shop: HTTP 503: ..." (the mapped error already
names the call; the retry line put the call's name in front of it again). Through sim serve's
Kubernetes API (the official client), its fault rules giving the failures."""

from __future__ import annotations

import logging

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import TargetSelector
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)


@pytest.mark.parametrize("status, said", [
    pytest.param(503, "list Deployment in shop: HTTP 503: injected 503; retry 1/2 in ", id="server-unavailable"),
    pytest.param(429, "list Deployment in shop: HTTP 429: injected 429; retry 1/2 in ", id="too-many-requests"),
])
def test_a_retried_read_names_the_call_once(status, said, server, tmp_path, caplog):  # noqa: F811
    server.api.faults.inject(r"/namespaces/shop/deployments$", status=status, times=1, method="GET",
                             message=f"injected {status}")
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, max_retries=2, retry_backoff_s=0.01,
                                request_timeout_s=2.0)
    try:
        with caplog.at_level(logging.INFO, logger="setpoint.kubernetes"):
            targets = cluster.resolve(TargetSelector(kind="Deployment", namespace="shop", names=("web",)))
    finally:
        cluster.close()
    assert [t.name for t in targets] == ["web"]
    [line] = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert line.startswith(said), line
    assert line.count("list Deployment in shop") == 1, line
