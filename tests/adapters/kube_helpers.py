"""Shared pieces of the Kubernetes tests: a small scenario, the simulated apiserver on a free
loopback port, and official clients pointed at it (with a timeout on every request).

The engine does not run on its own here (``drive=False``): tests step it with
``server.world.advance(ticks)`` so that every state they assert on is deterministic.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from kubernetes import client, config

from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import Scenario, load_scenario_text

TOKEN = "test-token"
#: Seconds; every request the tests make is bounded by this.
REQUEST_TIMEOUT_S = 5.0

SCENARIO_YAML = """
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: kube-test}
spec:
  duration: 1h
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      namespace: shop
      capacityPerPod: 100
      startupDelay: 10s
      schedulingDelay: 0s
      initialReplicas: 2
      maxPods: 20
      load: [{constant: {rps: 150}}]
    - name: api
      namespace: shop
      capacityPerPod: 50
      startupDelay: 10s
      schedulingDelay: 0s
      initialReplicas: 3
      maxPods: 20
      load: [{constant: {rps: 100}}]
"""

#: Extra labels per service, so that label selectors have something to tell apart.
SERVICE_LABELS = {"web": (("tier", "front"),), "api": (("tier", "back"),)}


def kube_scenario() -> Scenario:
    """Two Deployments in namespace ``shop``: web (2 replicas, tier=front) and api (3, tier=back)."""
    sc = load_scenario_text(SCENARIO_YAML, "kube-test.yaml")
    services = tuple(dataclasses.replace(s, labels=(("app", s.name), ("setpoint.io/autoscale", "true"))
                                         + SERVICE_LABELS.get(s.name, ())) for s in sc.cluster.services)
    return dataclasses.replace(sc, cluster=dataclasses.replace(sc.cluster, services=services))


def start_server(**kwargs) -> SimKubeServer:
    options = dict(drive=False, token=TOKEN, max_connections=128)
    options.update(kwargs)
    return SimKubeServer(kube_scenario(), **options).start()


def with_default_timeout(api_client: client.ApiClient, timeout_s: float = REQUEST_TIMEOUT_S) -> client.ApiClient:
    """Give every request of ``api_client`` a timeout unless the call sets its own."""
    call_api = api_client.call_api

    def timed(*args, _request_timeout=None, **kwargs):
        return call_api(*args, _request_timeout=_request_timeout or timeout_s, **kwargs)

    api_client.call_api = timed
    return api_client


def official_client(server: SimKubeServer, folder: Path) -> client.ApiClient:
    """An ApiClient loaded the way users load one: from a kubeconfig the server wrote."""
    path = server.write_kubeconfig(folder / "kubeconfig.yaml", namespace="shop")
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    configuration.retries = False  # no hidden retries: each request the test makes is one request
    return with_default_timeout(client.ApiClient(configuration))


def controller_inputs(server: SimKubeServer, folder: Path, bindings: dict[str, str], advance: int = 2):
    """What a live controller reads and writes through sim serve, ready for a first cycle: the
    engine advanced ``advance`` ticks, a SimMetrics with ``bindings`` (query -> signal) holding
    that tick's signals, and the Kubernetes adapter on an official client. Returns (metrics,
    cluster)."""
    from controller.adapters.kubernetes import KubernetesCluster
    from simulators.ports import SimMetrics

    world = server.world
    world.advance(advance)
    metrics = SimMetrics(world.engine, bindings, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    return metrics, KubernetesCluster(official_client(server, folder), qps=0, retry_backoff_s=0.01)


@pytest.fixture
def server():
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture
def api_client(server, tmp_path):
    c = official_client(server, tmp_path)
    yield c
    c.close()
