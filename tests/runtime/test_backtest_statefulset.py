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
    assert "metric rps: no sample for 1 target: shop/db (240 of 240 times)" in result.output, result.output
    assert "policy web" not in result.output  # the Deployment's series carry deployment: read either way


#: db's query as written before per-kind labels: grouped by deployment, which a StatefulSet's series lack
BY_DEPLOYMENT = {**POLICIES, "db.yaml": POLICIES["db.yaml"].replace("by (namespace, statefulset)",
                                                                    "by (namespace, deployment)")}
WARNED = ("db.yaml:11: spec.scaling.metrics[0].query: warning: the query's series keep namespace but not "
          "statefulset")


@pytest.mark.parametrize("files, args, warned", [
    pytest.param(BY_DEPLOYMENT, [], True, id="statefulset-query-grouped-by-deployment-is-warned-with-its-fixes"),
    pytest.param(BY_DEPLOYMENT, ["--target-labels", "statefulset=namespace,deployment"], False,
                 id="not-warned-under-the-labels-it-was-written-for"),
    pytest.param(POLICIES, [], False, id="grouped-by-statefulset-not-warned"),
])
def test_a_query_no_target_is_matched_to_is_warned_before_the_replay(history, tmp_path, files, args, warned):
    """An upgrade's StatefulSet policy grouped by deployment reads nothing: beside web's, the backtest
    scored db as held at its count, with a note "metric cpu: no sample for 1 target: shop/db (240
    of 240 times)" and no hint of the cause (alone: "no usable sample"); it now says validate's
    warning (file, line, field, the two fixes) first, judged by its --target-labels."""
    server, data = history
    result = backtest(server, data, "-p", write(tmp_path / "set", files), *args)
    assert (WARNED in result.output) is warned, result.output
    if warned:
        assert "group by (namespace, statefulset)" in result.output
        assert "or run with --target-labels statefulset=namespace,deployment" in result.output
        assert result.output.index(WARNED) < result.output.index("backtest: segment 1/1"), "said before the replay"
