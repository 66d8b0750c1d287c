"""A cycle's health queries go to Prometheus together (PrometheusSource.query_many, at most its
max_concurrency at once: one batch for the workloads' checks, one for the pods'), where they
went one after another: with a Prometheus answering in 0.3 s, four checks held every cycle for
1.2 s. What is said of them keeps the checks' order (the first failure of a check is the one
said), and a source that cannot send several at once is asked one at a time as before.

The Prometheus here is a loopback stub (tests/adapters/test_prometheus.py's): a real one cannot be
made to answer slowly, or fail one query of a batch, on demand.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.model import PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import HealthQueries, observe_health
from controller.runtime.reconciler import RuntimePolicy
from tests.adapters.test_prometheus import Reply, fast, stub
from tests.policy.helpers import load_one, policy_with

T0 = 1_700_000_000.0
WEB = TargetRef("shop", "web", "Deployment")
PODS = ("web-6b7c9d8f5-aaaaa", "web-6b7c9d8f5-bbbbb")
DELAY_S = 0.3

CHECKS = """\
  targets: {namespace: shop, names: [web]}
  health:
    checks:
"""
#: four workload checks and one pod check, each query answering its own number (q1 .. q5)
CHECK = """\
      - name: c{k}
        query: sum by (namespace, deployment) (q{k})
        scope: workload
        unhealthy: {{above: 100, for: 30s}}
        action: rollback
"""
POD_CHECK = """\
      - name: c5
        query: max by (namespace, pod) (q5)
        scope: pod
        unhealthy: {above: 100, for: 30s}
        action: restart-pod
"""


def health_queries() -> HealthQueries:
    policy = RuntimePolicy.of(load_one(policy_with(CHECKS + "".join(CHECK.format(k=k) for k in range(1, 5)) + POD_CHECK)))
    return HealthQueries(policy.health, policy.health_queries, policy.revision_queries)


def answer(params: dict) -> dict:
    """q{k} reads k for each target or pod; q3 is a query Prometheus refuses (bad_data)."""
    query = params["query"]
    k = next(int(c) for c in query if c.isdigit())
    if k == 3:
        return {"status": "error", "errorType": "bad_data", "error": "parse error"}
    if "pod)" in query:
        series = [{"metric": {"namespace": "shop", "pod": p}, "value": [T0, str(k)]} for p in PODS]
    else:
        series = [{"metric": {"namespace": "shop", "deployment": "web"}, "value": [T0, str(k)]}]
    return {"status": "success", "data": {"resultType": "vector", "result": series}}


def view() -> ClusterView:
    pods = tuple(PodStatus(p, phase="Running", ready=True, created_time=T0 - 3600, start_time=T0 - 3600, revision="7")
                 for p in PODS)
    return ClusterView.from_statuses([WEB], {WEB: TargetStatus(WEB, spec_replicas=2, status_replicas=2,
                                                                ready_replicas=2, revision="7", pods=pods)})


def observe(source):
    errors, sent, outcomes = [], [], {}
    hobs = observe_health(health_queries(), source, [WEB], view(), T0, errors, None, sent, outcomes)
    return hobs, errors, sent, outcomes


class OneAtATime:
    """The source's query alone (no query_many): a source that cannot send several at once."""

    def __init__(self, source):
        self.source = source

    def query(self, *args, **kwargs):
        return self.source.query(*args, **kwargs)


@pytest.mark.parametrize("together", [pytest.param(True, id="query-many-sends-them-together"),
                                      pytest.param(False, id="a-plain-source-is-asked-one-at-a-time")])
def test_health_queries_go_together_and_keep_their_order(together):
    with stub(Reply(body=answer, delay_s=DELAY_S)) as s, fast(s.url, max_concurrency=4) as prometheus:
        hobs, errors, sent, outcomes = observe(prometheus if together else OneAtATime(prometheus))
    assert len(s.requests) == 5
    # several in flight at once (the stub holds each 0.3 s), or never more than one
    assert (s.max_in_flight >= 2) if together else (s.max_in_flight == 1), s.max_in_flight
    np.testing.assert_array_equal(hobs.values[0], [1.0, 2.0, np.nan, 4.0, np.nan])  # c3 refused; c5 reads pods
    np.testing.assert_array_equal(hobs.present[0], [True, True, False, True, False])
    assert hobs.pods.values[:, 4].tolist() == [5.0, 5.0]
    assert sent == [f"sum by (namespace, deployment) (q{k})" for k in range(1, 5)] + ["max by (namespace, pod) (q5)"]
    assert len(errors) == 1 and errors[0].startswith("health check c3: ")
    assert [k for k, (_, error) in outcomes.items() if error] == ["health check c3"]
    assert list(outcomes) == [f"health check c{k}" for k in range(1, 6)]
