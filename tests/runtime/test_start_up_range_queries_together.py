"""A policy's first cycle sends its range queries to Prometheus together
(PrometheusSource.query_range_many, at most its max_concurrency at once), where they went one
after another: the warm start's (each scaling metric's and the replicas that ran) and the
checks' history (one per workload check). With a Prometheus answering in 0.3 s a policy of three
metrics held its first cycle 1.2 s, a healing policy of four checks 1.2 s more. What comes back
is the same either way; the first failure in the queries' order is the one said; a source without
``query_range_many`` is asked one at a time as before.

The Prometheus here is a loopback stub (tests/adapters/test_prometheus.py's): a real one cannot be
made to answer slowly, or refuse one query of a batch, on demand.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.model import TargetRef
from controller.runtime.check_history import check_history
from controller.runtime.reconciler import RuntimePolicy
from controller.runtime.warm_start import warm_start
from tests.adapters.test_prometheus import Reply, fast, stub
from tests.policy.helpers import load_one, policy_with

NOW = 1_700_000_000.0
WEB = TargetRef("shop", "web", "Deployment")
DELAY_S = 0.3

SCALING = """\
  targets: {namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 10}
  scaling:
    metrics:
""" + "".join(f"""\
      - name: m{k}
        query: sum by (namespace, deployment) (q{k})
        target: {{averagePerReplica: 10}}
""" for k in (1, 2, 3))

HEALING = """\
  targets: {namespace: shop, names: [web]}
  interval: 15s
  health:
    checks:
""" + "".join(f"""\
      - name: c{k}
        query: sum by (namespace, deployment) (q{k})
        scope: workload
        unhealthy: {{above: 100, for: 30s}}
        action: rollback
""" for k in (1, 2, 3, 4))


def matrix(refused: str | None):
    """A range answer: q{k} reads k over the whole range, the replicas 2; ``refused`` (a query's
    text fragment) is a query Prometheus refuses (bad_data)."""
    def body(params: dict) -> dict:
        query = params["query"]
        if refused and refused in query:
            return {"status": "error", "errorType": "bad_data", "error": "parse error"}
        value = "2" if "replicas" in query else next(c for c in query if c.isdigit())
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"].rstrip("s"))
        points = [[t, value] for t in np.arange(start, end + step / 2, step).tolist()]
        return {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"namespace": "shop", "deployment": "web"}, "values": points}]}}
    return body


class OneAtATime:
    """The source's query_range alone (no query_range_many): one query at a time."""

    def __init__(self, source):
        self.source, self.config = source, source.config

    def query_range(self, *args, **kwargs):
        return self.source.query_range(*args, **kwargs)


WAYS = [pytest.param(True, id="query-range-many-sends-them-together"),
        pytest.param(False, id="a-plain-source-is-asked-one-at-a-time")]


def in_flight_as_expected(s, together: bool) -> bool:
    return (s.max_in_flight >= 2) if together else (s.max_in_flight == 1)


@pytest.mark.parametrize("together", WAYS)
def test_the_warm_starts_range_queries_go_together(together):
    policy = RuntimePolicy.of(load_one(policy_with(SCALING)))
    with stub(Reply(body=matrix(None), delay_s=DELAY_S)) as s, fast(s.url, max_concurrency=4, timeout_s=10.0) as prom:
        state, info = warm_start(policy, prom if together else OneAtATime(prom), [WEB], NOW)
    assert len(s.requests) == 4  # three metrics and the replicas that ran
    assert in_flight_as_expected(s, together), s.max_in_flight
    assert info.error is None and info.warm == ["shop/web"], info
    assert state is not None and info.last_replicas is not None


@pytest.mark.parametrize("together", WAYS)
def test_a_refused_warm_start_query_leaves_the_targets_cold_and_is_said(together):
    policy = RuntimePolicy.of(load_one(policy_with(SCALING)))
    with stub(Reply(body=matrix("q2"), delay_s=DELAY_S)) as s, fast(s.url, max_concurrency=4, timeout_s=10.0) as prom:
        state, info = warm_start(policy, prom if together else OneAtATime(prom), [WEB], NOW)
    assert state is None and info.cold == ["shop/web"]
    assert info.error.startswith("history unavailable: ") and "q2" in info.error, info.error
    # together, every query was sent before q2's refusal was known; one at a time, none after it
    assert len(s.requests) == (4 if together else 2)


@pytest.mark.parametrize("together", WAYS)
def test_the_checks_history_range_queries_go_together(together):
    policy = RuntimePolicy.of(load_one(policy_with(HEALING)))
    with stub(Reply(body=matrix(None), delay_s=DELAY_S)) as s, fast(s.url, max_concurrency=4, timeout_s=10.0) as prom:
        history = check_history(policy.health, policy.health_queries, prom if together else OneAtATime(prom),
                                [WEB], NOW)
    assert len(s.requests) == 4
    assert in_flight_as_expected(s, together), s.max_in_flight
    assert history.error is None and history.ticks > 0
    assert history.record(0)["firedUntil"] is None  # every check read 1..4, under its threshold of 100


@pytest.mark.parametrize("refused", ["q1", "q3"])
def test_the_first_refused_check_query_is_the_one_said(refused):
    policy = RuntimePolicy.of(load_one(policy_with(HEALING)))
    with stub(Reply(body=matrix(refused), delay_s=DELAY_S)) as s, fast(s.url, max_concurrency=4, timeout_s=10.0) as prom:
        history = check_history(policy.health, policy.health_queries, prom, [WEB], NOW)
    assert history.table is None and f"({refused})" in history.error, history.error
    assert len(s.requests) == 4
