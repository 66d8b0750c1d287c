"""Health checks' queries are counted as Prometheus requests, as their failures are counted as
metrics errors: SetpointMetricsSourceFailing divides the one by the other.

Found in a day-2 drill: with Prometheus stopped, a health-only policy showed
setpoint_errors_total{source="metrics"} growing and setpoint_prometheus_requests_total at 0, so
the alert's ratio was +Inf ("+Inf% of the queries failed"); a policy with a scaling metric and
health checks read one failing check of four as 100%, firing the alert falsely.

Through the simulated Kubernetes API (sim serve's server, the official client) and a real
Prometheus answering constant expressions (a failing one: an invalid regular expression, an
execution error Prometheus returns for every evaluation).
"""

from __future__ import annotations

import time

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.support.prometheus_server import prometheus_server


def labelled(expr: str) -> str:
    """A constant expression as the series of Deployment shop/web."""
    return f'label_replace(label_replace({expr}, "namespace", "shop", "", ""), "deployment", "web", "", "")'


GOOD = labelled("vector(1)")
# valid PromQL (setpoint validate takes it), refused by Prometheus at every evaluation
FAILING = 'label_replace(vector(1), "a", "b", "", "(")'


def check(name: str, query: str, scope: str = "workload") -> str:
    return f"""
      - name: {name}
        query: '{query}'
        scope: {scope}
        unhealthy: {{above: 100, for: 0s}}
        recovered: {{below: 50, for: 0s}}
        action: record"""


REVISION_CHECK = f"""
      - name: release
        scope: revision
        errors: '{labelled("vector(0)")}'
        requests: '{labelled("vector(1)")}'
        compare: {{worseBy: 2x, falseRollbackRate: 1%}}
        action: rollback"""

SCALING = f"""
  replicas: {{min: 1, max: 10}}
  scaling:
    metrics:
      - name: rps
        query: '{GOOD}'
        target: {{averagePerReplica: 100}}"""


def policy(checks: list[str], scaling: bool = False) -> str:
    return ("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: heal}\nspec:\n"
            "  targets: {kind: Deployment, namespace: shop, names: [web]}\n  interval: 15s"
            + (SCALING if scaling else "") + "\n  health:\n    checks:" + "".join(checks) + "\n")


CASES = [
    # (policy text, queries sent per cycle, of which failing)
    pytest.param(policy([check("errors", FAILING)]), 1, 1, id="health-only-its-check-failing"),
    pytest.param(policy([check("a", GOOD), check("b", GOOD), check("c", FAILING)], scaling=True), 4, 1,
                 id="scaling-and-three-checks-one-failing"),
    pytest.param(policy([check("workload", GOOD), check("pods", GOOD, scope="pod")]), 2, 0,
                 id="health-only-workload-and-pod-checks-answering"),
    pytest.param(policy([check("latency", GOOD), REVISION_CHECK]), 3, 0,
                 id="a-revision-check-sends-its-two-queries"),
]


@pytest.fixture(scope="module")
def prom():
    with prometheus_server() as p:
        yield p


@pytest.mark.parametrize("text,sent,failing", CASES)
def test_health_queries_count_as_prometheus_requests(text, sent, failing, prom, server, tmp_path):  # noqa: F811
    [loaded] = load_policy_text(text, "heal.yaml")
    metrics = PrometheusSource(PrometheusConfig.from_url(prom.url, timeout_s=2.0, retries=0))
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    telemetry = Telemetry()
    try:
        rec = Reconciler(RuntimePolicy.of(loaded), metrics, cluster)
        for k in range(2):
            server.world.advance(3)
            telemetry.observe_cycle(rec.cycle(time.time() + k))
    finally:
        cluster.close()
        metrics.close()
    get = telemetry.registry.get_sample_value
    requests = get("setpoint_prometheus_requests_total", {"policy": "heal"})
    errors = get("setpoint_errors_total", {"policy": "heal", "source": "metrics"}) or 0
    assert (requests, errors) == (2 * sent, 2 * failing)
    # SetpointMetricsSourceFailing's ratio: the share of the queries that failed, never above 1
    assert errors / requests == failing / sent
