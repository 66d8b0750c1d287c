"""`setpoint backtest` of several policies at once (-p repeated, a folder, a file of several),
against a real Prometheus loaded with history by promtool: the set replays as `setpoint run`
runs it (each policy over its own targets, a workload two select governed by the first), the
totals are the sum of the per-policy figures, and one policy's output is what it was."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.model import TargetSelector
from controller.runtime.backtest import replicas_query
from tests.runtime.backtest_data import START, openmetrics, synthetic
from tests.support.prometheus_server import prometheus_server

TARGETS = ["api", "web", "worker"]
RPS = 'app_rps{namespace="shop"}'
FIGURES = ("replica_hours", "replica_changes", "reversals", "capacity_risk_minutes")


def policy(name: str, targets: str = "names: [web]", interval: str = "15s", rps: str = RPS,
           half_life: str = "45s") -> str:
    """A scaling policy of namespace shop: ``targets`` the YAML after the namespace."""
    return f"""\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  targets: {{namespace: shop, {targets}}}
  interval: {interval}
  replicas: {{min: 2, max: 40}}
  scaling:
    metrics:
      - name: cpu
        query: app_cpu_utilization{{namespace="shop"}}
        target: {{utilization: 60%}}
      - name: rps
        query: '{rps}'
        target: {{averagePerReplica: 90}}
    smoothing: {{ewma: {{halfLife: {half_life}}}}}
    tolerance: {{up: 0.05, down: 0.15}}
    behavior:
      scaleDown: {{stabilizationWindow: 3m, policies: [{{type: Percent, value: 20, period: 1m}}]}}
"""


HEALTH_ONLY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: heal}
spec:
  targets: {namespace: shop, names: [web]}
  interval: 15s
  health:
    checks:
      - name: errors
        query: app_errors{namespace="shop"}
        scope: workload
        unhealthy: {above: 0.05, for: 1m}
        recovered: {below: 0.02, for: 2m}
        action: record
"""

#: Three disjoint policies: other smoothing for web, another interval for worker.
THREE = {"api.yaml": policy("api", "names: [api]"),
         "web.yaml": policy("web", "names: [web]", half_life="2m"),
         "worker.yaml": policy("worker", "names: [worker]", interval="30s")}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    data = synthetic(TARGETS, hours=2)
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom"), history=openmetrics(data),
                           retention="3650d") as server:
        yield server, data


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def backtest(server, data, *args, report: bool = False) -> "CliRunner.invoke":
    """``setpoint backtest ARGS`` over ``data`` in process; report.html (its plots: about a third of
    a run's CPU) only when asked, by the tests that read it."""
    return CliRunner().invoke(app, ["backtest", *map(str, args), "--prometheus", server.url,
                                    "--from", f"{START:.0f}", "--to", f"{data['t'][-1]:.0f}",
                                    "--report" if report else "--no-report"])


def timeline(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def column(rows: list[dict], target: str, run: str) -> list[tuple[str, str]]:
    """(time, value) of one run's column at one target's change points."""
    return [(r["time"], r[run]) for r in rows if r["target"] == f"shop/{target}"]


def changes(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``steps`` without the rows where this run's value stayed (another column changed there)."""
    return [step for k, step in enumerate(steps) if k == 0 or step[1] != steps[k - 1][1]]


# --- the set: as the policies alone, and summed --------------------------------------------------

@pytest.mark.parametrize("layout", [
    pytest.param("folder", id="a-folder"),
    pytest.param("repeated", id="p-repeated"),
    pytest.param("one-file", id="one-file-of-three-documents"),
])
def test_set_totals_are_the_sum_of_the_per_policy_figures(history, tmp_path, layout):
    server, data = history
    folder = write(tmp_path / "set", THREE)
    if layout == "folder":
        args = ["-p", folder]
    elif layout == "repeated":
        args = [x for name in THREE for x in ("-p", folder / name)]
    else:
        (whole := tmp_path / "all.yaml").write_text("---\n".join(THREE.values()))
        args = ["-p", whole]
    result = backtest(server, data, *args, "--compare", "hpa", "-o", tmp_path / "out", report=True)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "result.json").read_text())
    split = report["backtest"]["policies"]
    assert list(report["controllers"]) == ["policies", "hpa", "actual"] and list(split) == ["policies", "hpa", "actual"]
    for run, by_policy in split.items():
        assert list(by_policy) == ["api", "web", "worker"]
        assert [p["targets"] for p in by_policy.values()] == [["shop/api"], ["shop/web"], ["shop/worker"]]
        for key in FIGURES:  # each rounded to 3 decimals: the sum within their rounding
            assert sum(p[key] for p in by_policy.values()) == pytest.approx(report["controllers"][run][key], abs=2e-3)
    assert split["policies"]["web"]["file"].endswith("web.yaml:1") or layout == "one-file"
    header = timeline(tmp_path / "out" / "timeline.csv")[0].keys()
    assert list(header) == ["time", "target", "actual", "policies", "hpa", "policies.policy", "hpa.policy"]
    rows = timeline(tmp_path / "out" / "timeline.csv")
    assert {(r["target"], r["policies.policy"], r["hpa.policy"]) for r in rows} == {
        ("shop/api", "api", "api"), ("shop/web", "web", "web"), ("shop/worker", "worker", "worker")}
    assert "per policy" in result.stdout and "3 policies" in result.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<h2>Per policy</h2>" in html


def test_a_set_of_disjoint_policies_decides_as_each_policy_alone(history, tmp_path):
    """Each policy governs its own workload: the set's replicas are those of each policy replayed
    alone (worker's 30 s cycles held between the set's 15 s ticks), and so are its hpa counterparts'."""
    server, data = history
    folder = write(tmp_path / "set", THREE)
    assert backtest(server, data, "-p", folder, "--compare", "hpa", "-o", tmp_path / "set-out").exit_code == 0
    together = timeline(tmp_path / "set-out" / "timeline.csv")
    for name in THREE:
        target = name.removesuffix(".yaml")
        alone = tmp_path / f"{target}-out"
        result = backtest(server, data, "-p", folder / name, "--compare", "hpa", "-o", alone)
        assert result.exit_code == 0, result.output
        single = timeline(alone / "timeline.csv")
        for run, theirs in (("policies", target), ("hpa", "hpa")):
            steps = column(single, target, theirs)
            assert len(steps) > 2 and column(together, target, run) == steps, (target, run)


#: api read through a query whose answer has no workload labels, as an imported HPA's External
#: metric reads sum(queue_messages{queue="jobs"}): live, the one series is its single target's.
LONE = {**THREE, "api.yaml": """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: api}
spec:
  preset: hpa
  targets: {namespace: shop, names: [api]}
  interval: 15s
  replicas: {min: 2, max: 40}
  scaling:
    metrics:
      - name: jobs
        query: sum(app_rps{namespace="shop", deployment="api"})
        target: {averagePerReplica: 20}
"""}


def test_a_series_without_workload_labels_is_read_as_the_single_target_policys_in_a_set(history, tmp_path):
    """In a folder, the grid has every policy's targets: the one unlabelled series was read as
    nobody's, api was 'blind' and the backtest stopped (exit 1); alone it replayed."""
    server, data = history
    folder = write(tmp_path / "set", LONE)
    result = backtest(server, data, "-p", folder, "--compare", "hpa", "-o", tmp_path / "set-out")
    assert result.exit_code == 0, result.output
    together = timeline(tmp_path / "set-out" / "timeline.csv")
    alone = backtest(server, data, "-p", folder / "api.yaml", "--compare", "hpa", "-o", tmp_path / "api-out")
    assert alone.exit_code == 0, alone.output
    single = timeline(tmp_path / "api-out" / "timeline.csv")
    for run, theirs in (("policies", "api"), ("hpa", "hpa")):
        steps = column(single, "api", theirs)
        assert len(steps) > 2 and column(together, "api", run) == steps, run


@pytest.mark.parametrize("compare_interval", [pytest.param("30s", id="a-multiple"),
                                              pytest.param("20s", id="ticks-that-interleave")])
def test_a_comparison_with_another_interval_is_held_between_its_cycles(history, tmp_path, compare_interval):
    """--compare a policy with another interval: its runs ticked at other times, and writing
    timeline.csv failed after the whole replay (column_stack of 241 and 121 rows). Every run is
    held between its own cycles on the union of the ticks: its figures and its steps are those it
    has backtested alone."""
    server, data = history
    write(tmp_path, {"a.yaml": policy("a"), "b.yaml": policy("b", interval=compare_interval)})
    both = backtest(server, data, "-p", tmp_path / "a.yaml", "--compare", tmp_path / "b.yaml", "-o", tmp_path / "both")
    assert both.exit_code == 0, both.output
    for name in ("a", "b"):
        alone = backtest(server, data, "-p", tmp_path / f"{name}.yaml", "-o", tmp_path / name)
        assert alone.exit_code == 0, alone.output
        steps = changes(column(timeline(tmp_path / name / "timeline.csv"), "web", name))
        assert len(steps) > 2 and changes(column(timeline(tmp_path / "both" / "timeline.csv"), "web", name)) == steps
        mine = json.loads((tmp_path / name / "result.json").read_text())["controllers"][name]
        together = json.loads((tmp_path / "both" / "result.json").read_text())["controllers"][name]
        assert {k: together[k] for k in FIGURES} == {k: mine[k] for k in FIGURES}, name


def test_one_policy_in_a_folder_is_the_one_policy_output(history, tmp_path):
    """A folder holding one policy replays it exactly as -p FILE: the same table, notes and files
    (no per-policy part)."""
    server, data = history
    folder = write(tmp_path / "one", {"web.yaml": THREE["web.yaml"]})
    outputs = {}
    for how, given in (("file", folder / "web.yaml"), ("folder", folder)):
        result = backtest(server, data, "-p", given, "--compare", "hpa", "-o", tmp_path / how)
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / how / "result.json").read_text())
        report["scenario"]["policy_file"] = None
        # the progress line outside a terminal says the time so far: seconds that differ run to run;
        # the first run in a worker whose kernels compile (a cache raced by another worker) says so
        said = re.sub(r"replayed \(\d+ s\)", "replayed (S s)", result.output.replace(str(tmp_path / how), "OUT"))
        said = re.sub(r"compiling the decision kernels: .*?runs without them\)\n", "", said, flags=re.S)
        outputs[how] = (said, report,
                        (tmp_path / how / "timeline.csv").read_text())
    assert outputs["file"] == outputs["folder"]
    _, report, text = outputs["file"]
    assert "policies" not in report["backtest"] and list(report["controllers"]) == ["web", "hpa", "actual"]
    assert text.splitlines()[0] == "time,target,actual,web,hpa" and "per policy" not in outputs["file"][0]


# --- conflicts, as setpoint run settles them -----------------------------------------------------

ALL = "selector: {matchLabels: {app.kubernetes.io/part-of: shop}}"


@pytest.mark.parametrize("files, governs, conflict", [
    pytest.param({"a-web.yaml": policy("a-web", "names: [web]"), "b-all.yaml": policy("b-all", ALL)},
                 {"api": "b-all", "web": "a-web", "worker": "b-all"},
                 "conflict: 1 workload selected by policies a-web and b-all (shop/web): a-web governs them, "
                 "b-all leaves them alone", id="named-first-keeps-its-workload"),
    pytest.param({"a-all.yaml": policy("a-all", ALL), "b-web.yaml": policy("b-web", "names: [web]")},
                 {"api": "a-all", "web": "a-all", "worker": "a-all"},
                 "conflict: 1 workload selected by policies a-all and b-web (shop/web): a-all governs them, "
                 "b-web leaves them alone", id="selector-first-takes-all"),
    # each label selector finds its workloads in its own queries (one discovery pass for both)
    pytest.param({"a-part.yaml": policy("a-part", ALL, rps='app_rps{namespace="shop", deployment!="worker"}')
                  .replace('app_cpu_utilization{namespace="shop"}',
                           'app_cpu_utilization{namespace="shop", deployment!="worker"}'),
                  "b-all.yaml": policy("b-all", ALL)},
                 {"api": "a-part", "web": "a-part", "worker": "b-all"},
                 "conflict: 2 workloads selected by policies a-part and b-all (shop/api, shop/web): a-part governs "
                 "them, b-all leaves them alone", id="two-selectors-each-its-own-queries"),
])
def test_a_workload_two_policies_select_is_governed_by_the_first(history, tmp_path, files, governs, conflict):
    server, data = history
    result = backtest(server, data, "-p", write(tmp_path / "set", files), "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert conflict in result.stderr
    rows = timeline(tmp_path / "out" / "timeline.csv")
    assert {r["target"].split("/")[1]: r["policies.policy"] for r in rows} == governs
    split = json.loads((tmp_path / "out" / "result.json").read_text())["backtest"]["policies"]["policies"]
    assert {t.split("/")[1]: p for p, f in split.items() for t in f["targets"]} == governs
    assert "PolicyConflict" in result.stderr and "already governs" not in result.stderr  # said once, in a note


# --- what a set refuses or skips ------------------------------------------------------------------

@pytest.mark.parametrize("files, code, says", [
    pytest.param({"api.yaml": THREE["api.yaml"], "heal.yaml": HEALTH_ONLY}, 0,
                 "heal.yaml:1: policy heal only heals (no scaling section): skipped, a backtest replays scaling only",
                 id="health-only-skipped-with-a-note"),
    pytest.param({"heal.yaml": HEALTH_ONLY}, 1, "heal.yaml:1: heal only heals (no scaling section); a backtest "
                 "replays scaling", id="nothing-scales"),
    pytest.param({"api.yaml": THREE["api.yaml"], "bad.yaml": policy("bad").replace("min: 2", "min: -1")}, 1,
                 "bad.yaml:7: spec.replicas.min: must be >= 0, got -1", id="invalid-field-named-with-file-and-line"),
    pytest.param({"api.yaml": THREE["api.yaml"], "web.yaml": THREE["web.yaml"],
                  "web-too.yaml": policy("web-too", "names: [web]")}, 1,
                 # files sorted: web-too.yaml is read first
                 "web.yaml:5: spec.targets.names[0]: Deployment shop/web is already scaled by policy 'web-too' (",
                 id="two-policies-naming-one-workload-refused-as-validate-does"),
    pytest.param({"api.yaml": THREE["api.yaml"],
                  "ghost.yaml": policy("ghost", "names: [web]", rps='app_nothing{namespace="shop"}')
                  .replace('app_cpu_utilization{namespace="shop"}', 'app_nothing_either{namespace="shop"}')}, 1,
                 "ghost.yaml:1): no usable sample of its metrics", id="a-policy-without-samples-named-with-its-file"),
])
def test_set_inputs_refused_or_skipped(history, tmp_path, files, code, says):
    server, data = history
    result = backtest(server, data, "-p", write(tmp_path / "set", files))
    assert result.exit_code == code, result.output
    assert says in result.stderr, result.stderr


GHOST = (policy("ghost", "names: [web]", rps='app_nothing{namespace="shop"}')
         .replace('app_cpu_utilization{namespace="shop"}', 'app_nothing_either{namespace="shop"}'))


@pytest.mark.parametrize("files, says, not_says", [
    pytest.param({"api.yaml": policy("api", "names: [api, gone]"), "ghost.yaml": GHOST},
                 ["metric rps: no sample for 1 target: shop/web", "metric cpu: no sample for 1 target: shop/web"],
                 # api's own gap (a workload it names that has no series) is not ghost's
                 ["shop/gone"], id="another-policys-gaps-left-out"),
    pytest.param({"ghost.yaml": GHOST}, ["metric rps: no sample for 1 target: shop/web",
                                         "metric cpu: no sample for 1 target: shop/web"], [],
                 id="a-policy-alone-as-before"),
])
def test_a_blind_policy_is_told_what_its_own_queries_gave(history, tmp_path, files, says, not_says):
    server, data = history
    result = backtest(server, data, "-p", write(tmp_path / "set", files))
    assert result.exit_code == 1, result.output
    assert "policy ghost" in result.stderr and "What the queries gave:" in result.stderr, result.stderr
    for text in says:
        assert text in result.stderr, result.stderr
    for text in not_says:
        assert text not in result.stderr, result.stderr


# --- the queries -----------------------------------------------------------------------------------

@pytest.mark.parametrize("files, compare, requests", [
    pytest.param(THREE, [], 3, id="three-policies-two-shared-queries-and-the-replicas"),
    pytest.param(THREE, ["--compare", "hpa"], 3, id="with-their-hpa-counterparts"),
    pytest.param({**THREE, "b-all.yaml": policy("b-all", ALL)}, [], 4, id="and-a-selector-one-discovery-request"),
])
def test_a_set_range_queries_each_distinct_query_once(history, tmp_path, files, compare, requests):
    """Two hours at 15 s is one segment: one range query per distinct metric query of the whole set
    (cpu and rps, shared by every policy), one for the replicas that ran, and one discovery pass
    for label selectors."""
    server, data = history
    before = server.http_requests("/api/v1/query_range")
    result = backtest(server, data, "-p", write(tmp_path / "set", files), *compare)
    assert result.exit_code == 0, result.output
    assert server.http_requests("/api/v1/query_range") - before == requests


@pytest.mark.parametrize("selectors, expected", [
    pytest.param([("Deployment", "shop")],
                 'max by (namespace, deployment) (kube_deployment_spec_replicas{namespace="shop"})', id="as-before-sets"),
    pytest.param([("Deployment", "shop"), ("Deployment", "pay")],
                 'max by (namespace, deployment) (kube_deployment_spec_replicas{namespace=~"shop|pay"})',
                 id="two-namespaces"),
    pytest.param([("StatefulSet", "db")],
                 'max by (namespace, statefulset) (kube_statefulset_replicas{namespace="db"})', id="statefulsets"),
    pytest.param([("Deployment", "shop"), ("StatefulSet", "shop")],
                 'max by (namespace, deployment) (kube_deployment_spec_replicas{namespace="shop"}) or max by '
                 '(namespace, statefulset) (kube_statefulset_replicas{namespace="shop"})', id="both-kinds"),
])
def test_replicas_query_of_a_set(history, selectors, expected):
    """The query for the replicas that ran covers every namespace and kind of the set, and
    Prometheus takes it (the workloads of namespace shop come back keyed by deployment)."""
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource

    server, data = history
    expr, _ = replicas_query([TargetSelector(kind, ns, names=("x",)) for kind, ns in selectors],
                             ("namespace", "deployment"))
    assert expr == expected
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        series = source.query_range(expr, data["t"][0], data["t"][10], 15.0)
    shop = sorted(s.labels.get("deployment", "") for s in series if s.labels.get("namespace") == "shop")
    assert shop == (TARGETS if any(ns == "shop" and kind == "Deployment" for kind, ns in selectors) else [])


def test_a_comparison_policy_that_selects_none_of_the_replayed_targets_is_named(history, tmp_path):
    """--compare FOLDER replays on the first set's targets: a policy of the folder naming none of
    them read as a row of 0 targets and 0 replica-hours, with nothing saying why (walkthrough)."""
    server, data = history
    write(tmp_path, {"web.yaml": policy("web")})
    theirs = write(tmp_path / "theirs", {"web.yaml": policy("web"), "worker.yaml": policy("worker", "names: [worker]")})
    result = backtest(server, data, "-p", tmp_path / "web.yaml", "--compare", theirs)
    assert result.exit_code == 0, result.output
    assert (f"compare: {theirs / 'worker.yaml'}:1: policy worker selects no target: it names none of the replayed "
            f"targets (worker); nothing of it is replayed") in result.output, result.output
