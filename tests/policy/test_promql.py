"""The structural PromQL check (controller/policy/promql.py): what a typo breaks is refused with
where it is; every query a real policy writes passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.policy import check_policies
from controller.policy.promql import query_problem
from tests.support.prometheus_server import prometheus_server

REPO = Path(__file__).resolve().parents[2]


SOUND = [
    pytest.param("sum by (namespace, deployment) (rate(http_requests_total[1m]))", id="rate-by-workload"),
    pytest.param("histogram_quantile(0.95, sum by (le, namespace, deployment) (rate(h_bucket[5m])))", id="quantile"),
    pytest.param("sum(x) by (namespace, deployment)", id="grouping-after"),
    pytest.param("sum without(pod)(x)", id="without-no-spaces"),
    pytest.param("max_over_time(rate(x[5m])[30m:1m])", id="subquery"),
    pytest.param("max_over_time(rate(x[5m])[30m:])", id="subquery-default-step"),
    pytest.param("rate(x[1h30m] offset 1h)", id="compound-duration-and-offset"),
    pytest.param('sum(rate(x{path="/a(b[", code!=\'5]x\\\'x\'}[1m]))', id="brackets-and-quotes-in-strings"),
    pytest.param("sum(rate(x{path=~`a\\(`}[1m]))", id="raw-string-no-escapes"),
    pytest.param("x # a comment with ( and [\n + y", id="comment"),
    pytest.param("count(up) > 0", id="comparison"),
    pytest.param('sum(rate(x{namespace="$namespace"}[1m]))', id="a-grafana-variable-in-a-string-is-text"),
    pytest.param('label_replace(x, "dst", "$1", "src", "(.*)")', id="a-capture-group-reference"),
    pytest.param("rate((x[5m]))", id="a-range-in-parentheses"),
    pytest.param("quantile_over_time(0.9, x[5m])", id="a-range-as-the-second-argument"),
    pytest.param("rate(sum by (pod) (x)[5m:1m])", id="a-subquery-over-an-aggregation"),
    pytest.param("predict_linear(x[1h], 3600)", id="predict-linear"),
    pytest.param("rate(x[5m] @ 100)", id="a-range-at-a-time"),
    pytest.param("sum by (namespace, deployment) (increase(kube_pod_container_status_restarts_total[10m]))",
                 id="increase"),
]


@pytest.mark.parametrize("query", SOUND)
def test_a_sound_query_passes(query):
    assert query_problem(query) is None


BROKEN = [
    pytest.param("sum by (namespace, deployment) (rate(x[1m])", "the '(' at character 32 is not closed",
                 id="unclosed-paren"),
    pytest.param("rate(x[1x])", "[1x] at character 7: a range holds a duration", id="range-unit-typo"),
    pytest.param("rate(x[$__rate_interval])", "[$__rate_interval] at character 7", id="a-grafana-variable"),
    pytest.param("rate(x[])", "[] at character 7", id="empty-range"),
    pytest.param("sum by (namespace, deployment (rate(x[1m])))", "by (...) at character 5 holds label names and commas "
                 "only, got (namespace, deployment (rate(x[1m])))", id="grouping-not-closed-before-the-expression"),
    pytest.param("sum(x))", "')' at character 7 closes nothing", id="one-close-too-many"),
    pytest.param("sum(x{a=\"b\")}", "')' at character 12 closes the '{' at character 6", id="crossed-brackets"),
    pytest.param('x{a="b}', "the string opened at character 5 (\") does not end", id="unterminated-string"),
    pytest.param("sum(rate(x{namespace=$namespace}[1m]))", "$namespace at character 22: Prometheus has no variables",
                 id="a-grafana-variable-as-a-label-value"),
    pytest.param('sum(rate(x{a="b"}[1m])) * ${factor:raw}', "${factor:raw} at character 27: Prometheus has no variables",
                 id="a-grafana-variable-in-braces"),
    pytest.param("sum by ($group) (x)", "by (...) at character 5 holds label names and commas only",
                 id="a-grafana-variable-as-a-grouping"),
    # found live in a day-2 drill: validate took them, Prometheus refused them at every cycle
    pytest.param("sum(rate(http_requests_total))", "rate(...) at character 5 reads a range of samples: its argument "
                 "needs one, e.g. rate(x[5m])", id="rate-without-a-range"),
    pytest.param("rate(sum by (pod) (x)[1m])", "[1m] at character 22: a range reads a metric's samples (x[5m]); over "
                 "an expression's result it is a subquery, with a colon: [1m:]", id="a-range-over-an-aggregation"),
    pytest.param("rate(sum(x[1m]))", "rate(...) at character 1 reads a range of samples", id="the-range-one-level-in"),
    pytest.param("avg_over_time(x)", "avg_over_time(...) at character 1 reads a range", id="over-time-without-a-range"),
    pytest.param("(x)[5m]", "[5m] at character 4: a range reads a metric's samples", id="a-range-over-parentheses"),
]


@pytest.mark.parametrize("query, problem", BROKEN)
def test_a_broken_query_is_named_with_where_it_breaks(query, problem):
    assert problem in (query_problem(query) or "")


def test_every_query_of_the_bundled_and_example_policies_passes():
    queries = []
    for path in sorted((REPO / "policies").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for m in (doc or {}).get("spec", {}).get("scaling", {}).get("metrics", []):
                queries += [m.get("query"), (m.get("ramp") or {}).get("latest")]
            for check in ((doc or {}).get("spec", {}).get("health") or {}).get("checks", []):
                queries += [check.get(k) for k in ("query", "errors", "requests")]
    queries = [q for q in queries if q]
    assert len(queries) >= 10
    assert [q for q in queries if query_problem(q)] == []


def test_validate_names_the_file_line_and_field(tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: web}\nspec:\n"
                    "  targets: {namespace: shop, names: [web]}\n  interval: 15s\n  replicas: {min: 2, max: 20}\n"
                    "  scaling:\n    metrics:\n      - name: rps\n"
                    "        query: sum by (namespace, deployment) (rate(http_requests_total[1m])\n"
                    "        target: {averagePerReplica: 85}\n")
    result = check_policies([path])
    assert not result.ok
    assert (f"{path}:11: spec.scaling.metrics[0].query: not a query Prometheus can parse: the '(' at character 32 is "
            "not closed") in [str(e) for e in result.errors]


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom")) as server:
        yield server


@pytest.mark.parametrize("query, sound", [pytest.param(p.values[0], True, id=p.id) for p in SOUND]
                         + [pytest.param(p.values[0], False, id=p.id) for p in BROKEN])
def test_the_real_prometheus_agrees(prom, query, sound):
    """Each row as the real Prometheus parses it: 200 for the sound ones, 400 (a parse error) for
    the broken: the check refuses nothing Prometheus runs, on these rows."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        assert json.loads(exc.read())["errorType"] == "bad_data"
    assert status == (200 if sound else 400)


def test_a_deeply_nested_query_is_checked_in_linear_time():
    """A policy file may hold 1 MiB: a query nested 250,000 deep read the text before each bracket
    again (quadratic: 20,000 deep took 4.7 s, this depth hours), in validate and in a live reload."""
    from controller.policy.promql import raw_counters

    depth = 250_000
    assert query_problem("(" * depth + "x_total" + ")" * depth) is None
    assert raw_counters("(" * depth + "x_total" + ")" * depth) == ["x_total"]
    assert query_problem("sum by " + "(" * depth + "x" + ")" * depth).startswith("by (...) at character 5 holds")
