"""deploy/components/monitoring: the alert rules pass `promtool check rules` and fire as
tests/monitoring/alerts.test.yaml expects on synthetic series (`promtool test rules`); every
PromQL expression of the rules and of the Grafana dashboard names only series a real Telemetry
registry exports; the dashboard has the shape Grafana loads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controller.adapters.prometheus import CLOCK_SKEW_WARN_S
from controller.runtime.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "components" / "monitoring" / "prometheusrule.yaml"
ALERT_TESTS = REPO / "tests" / "monitoring" / "alerts.test.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "setpoint-dashboard.json"
README = REPO / "deploy" / "README.md"
#: An alert's runbook_url in the rule file: its anchor in deploy/README.md, after the base that
#: components/monitoring/runbooks.yaml sets when kustomize builds (tests/test_deploy.py).
RUNBOOK_URL = re.compile(r"deploy/README\.md#([a-z0-9-]+)")
PROMTOOL = shutil.which("promtool")
#: Alerts the issue asks for, by what they watch.
EXPECTED_ALERTS = {"SetpointDown", "SetpointNoLeader", "SetpointSeveralLeaders", "SetpointCycleStalled",
                   "SetpointCycleFailing", "SetpointStateFailing", "SetpointClusterReadsFailing", "SetpointMetricsSourceFailing", "SetpointActuationErrors",
                   "SetpointHealingHeld", "SetpointRolloutHeldLong", "SetpointPolicyReloadFailing", "SetpointRecordsFailing",
                   "SetpointPolicyConflict", "SetpointWorkloadScaledByHPA", "SetpointPolicySelectsNothing",
                   "SetpointReplicasWithheld", "SetpointTargetNotReady",
                   "SetpointReadinessFlapping", "SetpointScaleFight", "SetpointMetricSamplesInvalid",
                   "SetpointClockSkew", "SetpointHandsOffBelowDemand", "SetpointRevisionWorse"}
#: Grafana's variables, replaced by something PromQL parses.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$policy": ".*", "${policy}": ".*"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                "group_right", "inf", "nan", "Inf", "NaN"}


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["spec"]["groups"]


def rules() -> list[dict]:
    return [r for g in rule_groups() for r in g["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every target, and of the query variables."""
    d = dashboard()
    out = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", re.sub(r"^label_values\((\w+),.*\)$", r"\1", v["definition"])))
    return out


def as_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, keywords, labels or numbers)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', as_promql(expr))
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        follows = s[m.end():].lstrip()[:1]
        if m[0] not in PROMQL_WORDS and follows != "(":
            names.add(m[0])
    return names


def exported_series() -> set[str]:
    """Every series name a real Telemetry registry exposes, by family type."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created")}
    return {family.name + s for family in Telemetry().registry.collect() for s in suffixes[family.type]}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------------------ PromQL names
@pytest.mark.parametrize(("expr", "expected"), [
    pytest.param('sum by (policy) (rate(setpoint_actions_total{kind="scale"}[5m]))', {"setpoint_actions_total"},
                 id="aggregation"),
    pytest.param("time() - max by (p) (a_seconds) > 300", {"a_seconds"}, id="function-and-number"),
    pytest.param("x and on (job, instance) y == 1", {"x", "y"}, id="join"),
    pytest.param('histogram_quantile(0.95, sum by (le) (rate(h_bucket{policy=~"$policy"}[$__rate_interval])))',
                 {"h_bucket"}, id="grafana-variables"),
    pytest.param('absent(up{job="a b"}) or vector(0)', {"up"}, id="absent"),
])
def test_metric_names_are_read_from_promql(expr, expected):
    assert metric_names(expr) == expected


def test_the_registry_exports_the_series_the_alerts_need():
    series = exported_series()
    assert {"setpoint_leader", "setpoint_policy_reload_ok", "setpoint_healing_held",
            "setpoint_cycle_duration_seconds_count", "setpoint_action_failures_total", "setpoint_records_ok"} <= series


def test_setpoint_leader_follows_the_elector():
    telemetry = Telemetry()
    leading = [False]
    telemetry.track_leadership(lambda: leading[0])
    assert telemetry.registry.get_sample_value("setpoint_leader") == 0
    leading[0] = True
    assert telemetry.registry.get_sample_value("setpoint_leader") == 1


@pytest.mark.parametrize(("where", "expr"), [pytest.param(f"rule {r['alert']}", r["expr"], id=r["alert"]) for r in rules()]
                         + [pytest.param(f"panel {t}", e, id=f"panel-{t}") for t, e in dashboard_exprs()])
def test_every_expression_names_only_exported_series(where, expr):
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    assert names <= exported_series(), f"{where}: not exported by the controller: {names - exported_series()}"


# ------------------------------------------------------------------------------------ the rules
def test_every_alert_has_for_severity_and_its_annotations():
    alerts = {r["alert"]: r for r in rules()}
    assert set(alerts) == EXPECTED_ALERTS
    for name, r in alerts.items():
        assert re.fullmatch(r"\d+[smh]", r["for"]), name
        assert r["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description", "runbook", "runbook_url"} <= set(r["annotations"]), name


def readme_anchors() -> list[tuple[str, str]]:
    """(anchor, the first cell of its row without the anchor) of each `<a name>` in a table row of deploy/README.md."""
    out = []
    for line in (line for line in README.read_text().splitlines() if line.startswith("|")):
        cell = line.split("|")[1]
        for m in re.finditer(r'<a name="([^"]+)"></a>', line):
            out.append((m[1], re.sub(r"<a [^>]*></a>", "", cell).strip()))
    return out


@pytest.mark.parametrize("rule", [pytest.param(r, id=r["alert"]) for r in rules()])
def test_every_alert_links_its_row_of_the_readme(rule):
    url = rule["annotations"].get("runbook_url")
    assert url, f"{rule['alert']}: no runbook_url"
    link = RUNBOOK_URL.fullmatch(url)
    assert link, f"{rule['alert']}: {url!r} is not deploy/README.md#<anchor>"
    assert dict(readme_anchors()).get(link[1]) == rule["alert"], f"no row of {rule['alert']} anchored {link[1]!r}"


def test_the_readme_has_one_anchored_row_per_alert():
    anchors = readme_anchors()
    assert len({a for a, _ in anchors}) == len(anchors), "an anchor is used twice"
    assert sorted(alert for _, alert in anchors) == sorted(EXPECTED_ALERTS)


def test_the_clock_skew_alert_fires_where_the_controller_warns():
    """Its bound is the log's (CLOCK_SKEW_WARN_S), so the log line its runbook names is there."""
    [rule] = [r for r in rules() if r["alert"] == "SetpointClockSkew"]
    bound = f"{CLOCK_SKEW_WARN_S:g}"
    assert f"setpoint_prometheus_clock_skew_seconds > {bound}" in rule["expr"]
    assert f"setpoint_prometheus_clock_skew_seconds < -{bound}" in rule["expr"]


def test_promtool_accepts_the_rules(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    done = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_the_alerts_fire_as_expected_on_synthetic_series(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts.test.yaml")
    tested = {t["alertname"] for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
              for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert tested == EXPECTED_ALERTS, "every alert is seen firing in some test case"
    done = promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_parses_every_dashboard_expression(tmp_path):
    """Each panel's query as a recording rule, so that promtool parses it."""
    group = {"name": "dashboard", "rules": [{"record": f"dashboard:query_{i}", "expr": as_promql(e)}
                                            for i, (_, e) in enumerate(dashboard_exprs())]}
    (tmp_path / "dashboard.rules.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    done = promtool("check", "rules", "dashboard.rules.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------------ the dashboard
def test_the_dashboard_has_the_shape_grafana_loads():
    d = dashboard()
    assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in d["panels"]:
        assert p["type"] in {"timeseries", "stat"}, p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert p["targets"], f"{p['title']}: no query"
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]


def test_the_dashboard_covers_the_controller_s_story():
    used = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    for series in ["setpoint_cycle_duration_seconds_count", "setpoint_cycle_duration_seconds_bucket",
                   "setpoint_decisions_total", "setpoint_actions_total", "setpoint_action_failures_total",
                   "setpoint_errors_total", "setpoint_desired_replicas", "setpoint_healing_held",
                   "setpoint_policy_reload_ok", "setpoint_leader", "setpoint_ready_replicas",
                   "setpoint_lost_ready_total"]:
        assert series in used, series


def test_the_sim_serve_walk_through_prometheus_config_is_valid(tmp_path):
    """The scrape config the sim serve walk-through (docs/operations.md) writes (it was a placeholder to fill in)."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    config = readme.split("cat > /tmp/sim-prometheus.yml <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    (tmp_path / "sim-prometheus.yml").write_text(config + "\n")
    assert yaml.safe_load(config)["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9101"]
    proc = promtool("check", "config", "sim-prometheus.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------ a real Prometheus
@pytest.fixture
def telemetry_endpoint():
    """A real Telemetry registry served on 127.0.0.1 (prometheus_client's server); yields (telemetry, address)."""
    from prometheus_client import start_http_server

    from tests.support.prometheus_server import LOOPBACK, free_port

    telemetry, port = Telemetry(), free_port()
    server, thread = start_http_server(port, addr=LOOPBACK, registry=telemetry.registry)
    try:
        yield telemetry, f"{LOOPBACK}:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_prometheus_loads_the_rules_and_the_revision_worse_alert_goes_pending(tmp_path, telemetry_endpoint):
    """promtool is not installed here: a real Prometheus scrapes a real Telemetry registry with the
    rule file loaded. Every rule group loads healthy, and SetpointRevisionWorse goes pending (its
    `for` is 1m) for the target whose setpoint_revision_worse is 1 on the leader, not the one at 0."""
    from tests.support.prometheus_server import (PROMETHEUS_BIN, PrometheusServer, ScrapeTarget, http_get,
                                                 render_config)

    if not Path(PROMETHEUS_BIN).exists():
        pytest.skip(f"Prometheus is not installed at {PROMETHEUS_BIN}")
    telemetry, address = telemetry_endpoint
    telemetry.track_leadership(lambda: True)
    telemetry.revision_worse.labels("api-heal", "shop/api").set(1)
    telemetry.revision_worse.labels("api-heal", "shop/cart").set(0)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    target = ScrapeTarget(address, job="setpoint", labels={"namespace": "setpoint"})
    with PrometheusServer(tmp_path / "prom", [target]) as prom:
        config = json.loads(render_config([target], prom.scrape_interval)) | {"rule_files": [str(tmp_path / "rules.yaml")]}
        prom.config_path.write_text(json.dumps(config))
        status, body = http_get(f"{prom.url}/-/reload", timeout_s=5.0, method="POST")
        assert status == 200, body[:300]
        pending = prom.wait_for('ALERTS{alertname="SetpointRevisionWorse"}', timeout_s=20.0)
        status, body = http_get(f"{prom.url}/api/v1/rules", timeout_s=5.0)
    assert status == 200
    loaded = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
    assert len(loaded) == len(rules()) and {r["health"] for r in loaded} == {"ok"}, \
        [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert [(a["metric"]["target"], a["metric"]["policy"], a["metric"]["namespace"], a["metric"]["alertstate"])
            for a in pending] == [("shop/api", "api-heal", "setpoint", "pending")], pending
