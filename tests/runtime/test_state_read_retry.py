"""A durable health state that cannot be read is read again each cycle, and nothing else is redone.

The retry called restore(), a leadership's whole reset: every cycle while the ConfigMap read
failed (a 403 from a Role without it, an API outage) rebuilt the scaling state from Prometheus
(the warm start's range queries, the in-memory state replaced, a "warm start" log line and
`setpoint status`' "state: ..." time moved to each cycle) and re-read the hands-offs and scale
events, and once more at the cycle after the read came back. Now only the health state's read is
retried.

The run: `setpoint sim serve`'s API (shop/web) through the real client and adapter, the state in
a ConfigMap (KubernetesStateStore), a real Prometheus with the history (tests/runtime/
test_status_state_started.py's), and the API answering 403 to the first ConfigMap requests.
"""

from __future__ import annotations

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_status_state_started import FIRST_CYCLE, STEP_S, prometheus  # noqa: F401 (fixture)

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web-heal}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - {name: rps, query: 'app_rps{namespace="shop"}', target: {averagePerReplica: 100}}
  health:
    checks:
      - name: overload
        query: 'app_rps{namespace="shop"}'
        unhealthy: {above: 1000000, for: 0s}
        action: rolling-restart
    budgets: {restartsPerHour: 1, rollbacksPerDay: 1, maxUnavailable: 50%}
"""


def test_an_unreadable_health_state_is_retried_without_rebuilding_the_scaling_state(server, prometheus,  # noqa: F811
                                                                                  tmp_path):
    [policy] = load_policy_text(POLICY, "heal.yaml")
    source = PrometheusSource(PrometheusConfig.from_url(prometheus.url, timeout_s=10))
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01, emit_events=False)
    server.api.faults.inject(r"/configmaps/", status=403, times=4)
    try:
        rec = Reconciler(RuntimePolicy.of(policy), source, cluster, state_store=KubernetesStateStore(cluster, "setpoint"),
                         warm_from=source)
        results = [rec.cycle(FIRST_CYCLE + k * STEP_S) for k in range(5)]
    finally:
        cluster.close()
        source.close()
    unread = [any(e.startswith("state: ") and "no health action" in e for e in r.errors) for r in results]
    assert unread[0] and not unread[-1], unread  # the read failed, then came back
    # one warm start, at the first cycle: not one per failed read, nor one after the read came back
    assert [r.warm_start is not None for r in results] == [True, False, False, False, False]
    assert results[0].warm_start.warm == ["shop/web"]
