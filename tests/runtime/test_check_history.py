"""The checks' history at a controller's start (runtime/check_history.py), through a real
Prometheus holding the check's past values and sim serve holding a Deployment whose revision 1
has been complete for an hour.

Before, a check began at OK at every start: a release whose check fired and recovered minutes
before the start was trusted as known-healthy from its rollout's completion (a rollback target
for the next bad release), and a condition that had held for ten minutes had to hold its ``for``
once more. Now the workload checks are replayed from their own queries' history.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, its first
cycle at the scenario's start; the check's instant values from the simulator, its history from
Prometheus (``warm_from``, a PrometheusSource) at fixed times before that start.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.cli.records import _format_record
from controller.core.health.params import Phase
from controller.policy import load_policy_text
from controller.runtime.backtest import time_grid
from controller.runtime.check_history import history_window_s
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from simulators.ports import SimMetrics
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import official_client
from tests.runtime.test_rollback_target_gone import labelled_server
from tests.support.prometheus_server import free_port, prometheus_server

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: check-history}}
spec:
  duration: 1h
  tick: 5s
  seed: 3
  slo: {{latency: {{percentile: 95, below: 250ms}}}}
  services:
    - name: web
      namespace: shop
      capacityPerPod: 100
      initialReplicas: 2
      maxPods: 20
      errorRatio: {error_ratio}
      load: [{{constant: {{rps: 150}}}}]
"""
#: healthyAfter: the default 5 min; unhealthy above 0.01 for 1 min, recovered below 0.005 for 1 min
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: web-heal}}
spec:
  targets: {{kind: Deployment, namespace: shop, names: [web]}}
  interval: 15s
  health:
    checks:
      - name: error-ratio
        query: {query}
        unhealthy: {{above: 0.01, for: 1m}}
        recovered: {{below: 0.005, for: 1m}}
        action: rollback
    budgets: {{restartsPerHour: 6, rollbacksPerDay: 2, maxUnavailable: 25%}}
"""
START = load_scenario_text(SCENARIO.format(error_ratio=0.002), "s.yaml").start_s
T = time_grid(START - 1800.0, START - 15.0, 15.0)
MINUTE = (T - START) / 60.0  # negative: minutes before the start
#: per history (one metric each, the check's query): the error ratio before the start
HISTORIES = {
    # failed from 7 to 4 min before the start: fired at -6, recovered (1 min below 0.005) at -3 min
    "recovered": np.where((MINUTE >= -7) & (MINUTE < -4), 0.05, 0.001),
    "holding": np.where(MINUTE >= -7, 0.05, 0.001),  # failing for the last 7 minutes
    "clean": np.full(T.size, 0.001),
}


def openmetrics() -> str:
    lines = []
    for name, values in HISTORIES.items():
        lines.append(f"# TYPE {name} gauge")
        lines += [f'{name}{{namespace="shop",deployment="web"}} {v!r} {t:.0f}' for v, t in zip(values.tolist(), T)]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom-checks"), retention="3650d",
                           history=openmetrics()) as server:
        yield server.url


def first_cycle(tmp_path, history: str, warm_url: str | None, error_ratio: float = 0.002):
    """The first cycle's result of a controller started at the scenario's start, the check's query
    ``history`` (its instant value: the simulator's error ratio)."""
    return cycles(tmp_path, history, warm_url, error_ratio)[0]


def cycles(tmp_path, history: str, warm_url: str | None, error_ratio: float = 0.002, between=()):
    """The results of the cycles of such a controller: the first at the start, then one after each
    callable of ``between`` (called with the reconciler; the world advances a cycle first)."""
    server = labelled_server(SCENARIO.format(error_ratio=error_ratio), clock_at_start=True)
    try:
        [policy] = load_policy_text(POLICY.format(query=history), "heal.yaml")
        engine = server.world.engine
        metrics = SimMetrics(engine, {history: "error_ratio"}, window_s=15, tick_s=server.world.tick_s)
        metrics.push(engine.signals())
        cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
        warm = None if warm_url is None else PrometheusSource(PrometheusConfig.from_url(warm_url, timeout_s=5,
                                                                                          retries=0))
        try:
            rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster, warm_from=warm)
            assert engine.now == START
            results = [rec.cycle(engine.now)]
            for step in between:
                for _ in range(3):
                    server.world.advance(1)
                    metrics.push(engine.signals())
                step(rec)
                results.append(rec.cycle(engine.now))
        finally:
            cluster.close()
            if warm is not None:
                warm.close()
        return results
    finally:
        server.stop()


@pytest.mark.parametrize("history, with_history, healthy, clean_before_start_s", [
    pytest.param("recovered", False, "1", 3600.0, id="recovered-without-history-trusted-as-before"),
    pytest.param("recovered", True, "", 195.0, id="recovered-with-history-clean-only-since-it-fired"),
    pytest.param("clean", True, "1", 3600.0, id="clean-history-trusted-at-once"),
])
def test_a_revision_whose_check_fired_before_the_start(tmp_path, prometheus, history, with_history, healthy,
                                                        clean_before_start_s):
    """Revision 1 has been complete for an hour; its check fired 6 to 3 minutes before the start
    and recovered. With the history it is clean only since then: not a rollback target before
    healthyAfter (5 min) of no firing."""
    result = first_cycle(tmp_path, history, prometheus if with_history else None)
    revisions = result.healing.state.revisions
    assert result.view.statuses[0].revision == "1"
    assert str(revisions.healthy[0]) == healthy
    assert START - revisions.clean_since[0] == pytest.approx(clean_before_start_s, abs=1.0)  # whole seconds from the API
    [record] = [r.to_dict() for r in cycle_records(result, result.metric_names)]
    if not with_history:
        assert "checkHistory" not in record
        return
    said = _format_record(record)
    assert record["checkHistory"]["ticks"] == 29 and "checks replayed from their history (29 ticks over 435s)" in said
    if history == "recovered":
        assert START - record["checkHistory"]["firedUntil"] == 195.0  # OK again at -3 min: firing until the tick before
        assert "a check fired until 2026-01-04T23:56:45Z" in said
    else:
        assert record["checkHistory"]["firedUntil"] is None and "no check fired" in said


@pytest.mark.parametrize("with_history, phase", [
    pytest.param(False, Phase.PENDING, id="without-history-its-for-again"),
    pytest.param(True, Phase.FIRING, id="with-history-firing-at-once"),
])
def test_a_condition_holding_at_the_start(tmp_path, prometheus, with_history, phase):
    """The error ratio has been 5 % for 7 minutes and still is: with the history the check fires
    at the first cycle, as it would have for a controller that never stopped."""
    result = first_cycle(tmp_path, "holding", prometheus if with_history else None, error_ratio=0.05)
    assert Phase(int(result.healing.state.workload.phase[0, 0])) == phase


def test_history_unreachable(tmp_path, caplog):
    """Prometheus unreachable for the history: the checks start at OK, revision 1 is clean only
    from now (its past unknown), and the log says so once."""
    caplog.set_level(logging.WARNING, logger="setpoint.runtime")
    result = first_cycle(tmp_path, "recovered", f"http://127.0.0.1:{free_port()}")
    revisions = result.healing.state.revisions
    assert str(revisions.healthy[0]) == "" and revisions.clean_since[0] == START
    said = [r.getMessage() for r in caplog.records if "checks' history unavailable" in r.getMessage()]
    assert len(said) == 1 and "healthyAfter" in said[0]
    [record] = [r.to_dict() for r in cycle_records(result, result.metric_names)]
    assert "checks' history unavailable (" in _format_record(record)


def test_the_window_covers_a_firing_healthy_after_ago():
    [policy] = load_policy_text(POLICY.format(query="x"), "heal.yaml")
    params = RuntimePolicy.of(policy).health
    assert history_window_s(params) == 300.0 + 60.0 + 60.0 + 15.0


def test_replayed_once_per_start_and_again_on_becoming_leader(tmp_path, prometheus):
    """One replay at the first cycle, none at the next; restore() (becoming leader again) replays
    anew: its check rows may be stale from an earlier term."""
    results = cycles(tmp_path, "clean", prometheus, between=(lambda rec: None, lambda rec: rec.restore()))
    assert [sorted(r.check_history) for r in results] == [["shop/web"], [], ["shop/web"]]
