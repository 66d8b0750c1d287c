"""`setpoint backtest` of a StatefulSet policy beside a Deployment's, against a real Prometheus
loaded with history by promtool whose series name each workload in its kind's label, as
kube-state-metrics does (``deployment="web"``, ``statefulset="db"``): each target reads its own
series and its own replicas that ran, by the same per-kind rule as `setpoint run`; under
``--target-labels namespace,deployment`` (every kind by deployment) the StatefulSet sees nothing."""

from __future__ import annotations

import json

import pytest

from tests.runtime.backtest_data import openmetrics, synthetic
from tests.runtime.test_backtest_sets import backtest, policy, write
from tests.support.prometheus_server import prometheus_server

POLICIES = {"web.yaml": policy("web", "kind: Deployment, names: [web]"),
            "db.yaml": policy("db", "kind: StatefulSet, names: [db]").replace(
                "query: app_cpu_utilization{namespace=\"shop\"}",
                "query: max by (namespace, statefulset) (app_cpu_utilization{namespace=\"shop\"})")}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    data = synthetic(["db", "web"], hours=1)
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom"), history=openmetrics(
            data, statefulsets=frozenset({"db"})), retention="3650d") as server:
        yield server, data


def test_a_statefulset_and_a_deployment_each_read_by_their_kinds_label(history, tmp_path):
    server, data = history
    result = backtest(server, data, "-p", write(tmp_path / "set", POLICIES), "-o", tmp_path / "out", "--no-report")
    assert result.exit_code == 0, result.output
    assert "no sample" not in result.output, result.output  # neither its metrics nor its replicas
    report = json.loads((tmp_path / "out" / "result.json").read_text())["backtest"]
    assert report["actual_replicas_known"] == ["shop/db", "shop/web"]  # kube_statefulset_replicas by statefulset
    assert report["actual_coverage"]["known_ticks"] == report["actual_coverage"]["replayed_ticks"] == 240 * 2
    assert {name: p["targets"] for name, p in report["policies"]["policies"].items()} == {
        "db": ["shop/db"], "web": ["shop/web"]}
    assert all(p["replica_hours"] > 0 for p in report["policies"]["policies"].values())


def test_every_kind_by_deployment_leaves_the_statefulset_without_samples(history, tmp_path):
    server, data = history
    result = backtest(server, data, "-p", write(tmp_path / "set", POLICIES), "--target-labels", "namespace,deployment")
    assert result.exit_code == 1, result.output
    assert "policy db (" in result.output and "no usable sample of its metrics" in result.output, result.output
    assert "metric rps: no sample for 1 target(s): shop/db (240 of 240 times)" in result.output, result.output
    assert "policy web" not in result.output  # the Deployment's series carry deployment: read either way
