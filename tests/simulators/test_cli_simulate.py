"""`setpoint simulate` and `setpoint explain` as a user runs them: files on disk; the default run
and the kernels' first run in a subprocess, the others through tests/support/cli_inproc.py (what
a command says and writes, without a fresh interpreter's start-up each time)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_inproc import run_cli

SETPOINT = [sys.executable, "-m", "controller.cli"]


def setpoint(*args, cwd) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """`setpoint simulate` with no arguments, as a user first runs it on a fresh machine: its own
    process, SETPOINT_COMPILED unset, an empty numba cache of its own (``cwd / "numba-cache"``)."""
    cwd = tmp_path_factory.mktemp("sim")
    env = {k: v for k, v in os.environ.items() if k != "SETPOINT_COMPILED"}
    proc = subprocess.run([*SETPOINT, "simulate"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**env, "NUMBA_CACHE_DIR": str(cwd / "numba-cache")})
    return cwd, proc


def test_simulate_with_no_arguments_scores_policy_hpa_and_oracle(default_run):
    cwd, proc = default_run
    assert proc.returncode == 0, proc.stderr
    out = cwd / "out" / "flash-crowd"
    result = json.loads((out / "result.json").read_text())
    assert result["schema_version"] == 2 and result["scenario"]["name"] == "flash-crowd"
    assert set(result["controllers"]) == {"policy", "hpa", "oracle"}
    for scores in result["controllers"].values():
        assert {"slo_violation_minutes", "replica_hours", "replica_changes", "reversals", "mitigation_seconds"} <= set(scores)
    for name in ("policy", "hpa", "oracle"):
        assert name in proc.stdout  # the score table
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5  # overview, three panel sets, the cost/violation plane


CHECKOUT = Path(__file__).resolve().parents[2]


def without_images(text: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)


def test_simulate_results_carry_no_local_absolute_paths(default_run):
    # Run from a folder under /tmp with the bundled policies: they are named, not located.
    cwd, proc = default_run
    out = cwd / "out" / "flash-crowd"
    html = without_images((out / "report.html").read_text())
    result = (out / "result.json").read_text()
    for text in (html, result):
        assert str(CHECKOUT) not in text and str(cwd) not in text and "/tmp" not in text
    assert "<dd>bundled setpoint-default.yaml</dd>" in html and "HPA preset (bundled hpa-cpu.yaml)" in html
    assert json.loads(result)["scenario"]["policy_file"] == "bundled setpoint-default.yaml"


def test_simulate_shows_a_policy_path_relative_to_the_working_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    policy = tmp_path / "mine" / "p.yaml"
    policy.write_text((CHECKOUT / "policies" / "setpoint-default.yaml").read_text())
    proc = setpoint("simulate", "step", "--policy", str(policy), "--no-frontier", "--no-report", "-o", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["scenario"]["policy_file"] == "mine/p.yaml"


def test_simulate_compares_with_hpa_at_equal_cost_by_default(default_run):
    cwd, proc = default_run
    result = json.loads((cwd / "out" / "flash-crowd" / "result.json").read_text())
    frontier = result["frontier"]
    assert [p["target_pct"] for p in frontier["points"]][:5] == [40, 50, 60, 70, 80]
    hpa = result["controllers"]["hpa"]
    assert {"target_pct": 70.0, "replica_hours": hpa["replica_hours"],
            "slo_violation_minutes": hpa["slo_violation_minutes"], "widened": False} in frontier["points"]
    policy = frontier["equal_cost"]["policy"]
    assert policy["slo_violation_minutes"] == result["controllers"]["policy"]["slo_violation_minutes"]
    assert policy["verdict"] in ("win", "tie", "loss") and "hpa" not in frontier["equal_cost"]
    assert "HPA @ eq." in proc.stdout and f"{policy['verdict']}" in proc.stdout


def test_simulate_without_frontier_and_with_bad_targets(tmp_path):
    proc = setpoint("simulate", "step", "--no-frontier", "--no-report", "-o", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o" / "result.json").read_text())["frontier"] is None
    assert "HPA @ equal cost" not in proc.stdout
    bad = setpoint("simulate", "step", "--frontier-targets", "40,x", "--no-report", "-o", "o", cwd=tmp_path)
    assert bad.returncode == 1 and "--frontier-targets" in bad.stderr and "Traceback" not in bad.stderr


def test_explain_prints_why_each_number(default_run):
    cwd, _ = default_run
    proc = setpoint("explain", "out/flash-crowd", "--target", "web", "--at", "25m", "--controller", "policy", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "default/web" in lines[0] and "rps: raw" in lines[0] and "[" in lines[0]
    changes = setpoint("explain", "out/flash-crowd", "--changes", cwd=cwd)
    assert all("->" in line for line in changes.stdout.splitlines())


def test_explain_without_a_controller_shows_the_policy_under_test(default_run):
    """The last 40 records of the file were all the hpa baseline's, the policy's never shown."""
    cwd, _ = default_run
    proc = setpoint("explain", "out/flash-crowd", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 40 and all(" policy default/web:" in line for line in lines)
    assert "showing controller policy's records" in proc.stderr
    assert "this file also holds the records of hpa (--controller NAME)" in proc.stderr
    hpa = setpoint("explain", "out/flash-crowd", "-c", "hpa", cwd=cwd).stdout.strip().splitlines()
    assert hpa and all(" hpa default/web:" in line for line in hpa)


def test_status_of_a_simulation_names_each_controller_and_the_policy_it_ran(default_run):
    """It said 'policy policy:' and 'policy hpa:' (a simulation's records are kept per controller)."""
    cwd, _ = default_run
    proc = setpoint("status", "--records", "out/flash-crowd", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "controller policy (policy setpoint-default): last cycle" in proc.stdout
    assert "controller hpa (policy hpa-cpu): last cycle" in proc.stdout and "policy policy" not in proc.stdout


def test_simulate_rejects_a_broken_scenario_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: setpoint/v1\nkind: Scenario\nmetadata: {name: x}\nspec:\n  duration: 5\n")
    proc = setpoint("simulate", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert f"{bad}:5: spec.duration" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("out, message", [
    # the run finished, then writing failed: "afile: File exists", and the results were lost
    pytest.param("afile", "--out: afile is a file, not a folder", id="a-file"),
    pytest.param("afile/sub", "--out: afile/sub: cannot create the folder: Not a directory", id="under-a-file"),
    # a backtest found these only once its queries were done, and lost them; a pipe was replaced by a file
    pytest.param("res", "--out: res/result.json is a folder, where the results go", id="result-json-a-folder"),
    pytest.param("piped", "--out: piped/result.json is a device, pipe or socket, where the results go",
                 id="result-json-a-pipe"),
])
@pytest.mark.parametrize("command", [
    pytest.param(["simulate", "step", "--no-frontier", "--no-report"], id="simulate"),
    pytest.param(["backtest", "-p", "policy.yaml", "--prometheus", "http://127.0.0.1:9", "--from", "now-1h"],
                 id="backtest"),
])
def test_an_out_folder_that_cannot_be_written_is_refused_before_the_run(tmp_path, command, out, message):
    (tmp_path / "afile").write_text("kept\n")
    (tmp_path / "res" / "result.json").mkdir(parents=True)
    (tmp_path / "piped").mkdir()
    os.mkfifo(tmp_path / "piped" / "result.json")
    (tmp_path / "policy.yaml").write_text((Path(__file__).resolve().parents[2] / "policies" / "web-rps.yaml").read_text())
    proc = setpoint(*command, "--out", out, cwd=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert "ticks" not in proc.stderr and "cannot connect" not in proc.stderr  # nothing ran
    assert (tmp_path / "afile").read_text() == "kept\n"
    assert (tmp_path / "res" / "result.json").is_dir()
    assert stat.S_ISFIFO((tmp_path / "piped" / "result.json").stat().st_mode)


@pytest.mark.parametrize("command, holds, refused", [
    # `simulate --out` on a sweep's folder replaced its result.json and report.html; a sweep or a
    # backtest into a simulation's folder replaced a result no kept file could make again
    pytest.param(["simulate", "step", "--no-frontier", "--no-report"], "sweep", True, id="simulate-into-a-sweep"),
    pytest.param(["sweep", "step", "--set", "spec.interval=15s,30s"], "simulate", True,
                 id="sweep-into-a-simulation"),
    pytest.param(["backtest", "-p", "policy.yaml", "--prometheus", "http://127.0.0.1:9", "--from", "now-1h"],
                 "simulate", True, id="backtest-into-a-simulation"),
    pytest.param(["backtest", "-p", "policy.yaml", "--prometheus", "http://127.0.0.1:9", "--from", "now-1h"],
                 "sweep", True, id="backtest-into-a-sweep"),
])
def test_a_command_does_not_write_over_another_commands_results(default_run, tmp_path, command, holds, refused):
    """Each command replaces its own earlier results in an --out folder (what a rerun is for), never
    another command's: refused before anything runs, the results left as they were."""
    results = tmp_path / "res"
    results.mkdir()
    if holds == "simulate":  # the default run's real output
        cwd, proc = default_run
        assert proc.returncode == 0, proc.stderr
        written = (cwd / "out" / "flash-crowd" / "result.json").read_bytes()
    else:
        written = json.dumps({"schema_version": 1, "kind": "sweep", "seeds_per_scenario": 1}).encode()
    (results / "result.json").write_bytes(written)
    (tmp_path / "policy.yaml").write_text((Path(__file__).resolve().parents[2] / "policies" / "web-rps.yaml").read_text())
    proc = setpoint(*command, "--out", "res", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--out: res holds the results of `setpoint {holds}` (res/result.json); name another folder" in proc.stderr
    assert "ticks" not in proc.stderr and "cannot connect" not in proc.stderr  # nothing ran
    assert (results / "result.json").read_bytes() == written


def test_simulate_replaces_its_own_earlier_results(tmp_path):
    for _ in range(2):
        proc = setpoint("simulate", "step", "--no-frontier", "--no-report", "--out", "res", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "res" / "result.json").read_text())["scenario"]["name"] == "step"


@pytest.mark.parametrize("baselines", [pytest.param(["-b", "hpa", "-b", "fixed-max", "-b", "oracle"], id="repeated"),
                                       pytest.param(["-b", "hpa,fixed-max", "-b", "oracle"], id="comma-separated")])
def test_simulate_runs_a_named_scenario_with_every_baseline(tmp_path, baselines):
    proc = setpoint("simulate", "node-loss", *baselines, "--seed", "3", "--out", "o", "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert set(result["controllers"]) == {"policy", "hpa", "fixed-max", "oracle"}
    assert result["scenario"]["seed"] == 3
    assert "zone-a-down" in result["controllers"]["policy"]["mitigation_seconds"]
    assert not (tmp_path / "o" / "report.html").exists()


def test_explain_shows_the_revision_comparison_behind_a_rollback(tmp_path):
    from pathlib import Path
    policy = Path(__file__).resolve().parents[2] / "policies" / "setpoint-healing.yaml"
    proc = setpoint("simulate", "bad-rollout", "--policy", str(policy), "-b", "hpa", "--out", "o", "--no-report",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "o" / "decisions.jsonl").read_text().splitlines()]
    rollback = next(r for r in records if r.get("controller") == "policy" and (r.get("health") or {}).get("action"))
    assert rollback["health"]["at"] == rollback["at"]  # seconds since the start, both (it was an epoch)
    changes = setpoint("explain", "o", "--controller", "policy", "--changes", "--limit", "1000", cwd=tmp_path).stdout
    assert f"t={rollback['at']:>8.0f}s policy" in changes  # --changes hid it: a rollback keeps the count
    explained = setpoint("explain", "o", "--controller", "policy", "--at", str(rollback["at"]), cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert "health: rollback to revision 1 [RollbackRevisionWorse] trigger release-errors" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("release-errors:"))
    assert "revision 2" in line and "vs stable 1" in line and "LLR" in line and line.endswith("-> bad")


def test_simulate_gives_the_same_files_with_one_process_or_two(tmp_path):
    # 7 runs (policy, hpa, oracle, 4 frontier targets): shared between two processes, or all in one
    for jobs in ("1", "2"):
        proc = setpoint("simulate", "--jobs", jobs, "--no-report", "--out", f"out{jobs}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    for name in ("result.json", "decisions.jsonl"):
        assert (tmp_path / "out1" / name).read_text() == (tmp_path / "out2" / name).read_text()


def test_a_short_simulation_compiles_no_kernels(default_run):
    # the README's first command on a fresh machine: the numpy reference, not ~40 s of compiling first
    cwd, proc = default_run
    assert proc.returncode == 0, proc.stderr
    cache = cwd / "numba-cache"
    assert not cache.exists() or not any(cache.rglob("*.nbi"))


UNBOUND = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: imported}
spec:
  targets: {namespace: default, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: heap  # a metric named memory is bound by its target (tests/simulators/test_imported_memory_sim.py)
        query: sum by (namespace, deployment) (jvm_memory_used_bytes{area="heap"})
        target: {averagePerReplica: 500000000}
      - name: http_requests_per_second
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 100}
"""


def test_every_unbound_metric_is_named_at_once_with_how_to_bind_it(tmp_path):
    """An imported policy's metric names are not the scenario's: each was said in a run of its own,
    after the progress bars had drawn and the --out folder was made; the advice was to edit the
    (bundled) scenario."""
    (tmp_path / "imported.yaml").write_text(UNBOUND)
    proc = setpoint("simulate", "step", "--policy", "imported.yaml", "--no-frontier", "--no-report", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert ("policy imported: metric 'heap', metric 'http_requests_per_second' are not bound to a simulated "
            "signal (") in proc.stderr
    assert ("bind them for this run with --scenario-set 'spec.metrics.heap=SIGNAL' --scenario-set "
            "'spec.metrics.http_requests_per_second=SIGNAL'") in proc.stderr
    assert "ticks" not in proc.stderr and not (tmp_path / "out").exists()
    proc = setpoint("simulate", "step", "--policy", "imported.yaml", "--no-frontier", "--no-report",
                    "--scenario-set", "spec.metrics.heap=memory",
                    "--scenario-set", "spec.metrics.http_requests_per_second=requests_per_second", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


#: Five minutes of one service: a flash crowd at 4m, a 3-minute trace (short.csv, written beside it).
WARNED = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: warned}
spec:
  duration: 5m
  slo:
    latency: {below: 250ms}
  services:
    - name: web
      capacityPerPod: 100
      load:
        - trace: {file: short.csv, peakRps: 150}
        - flashCrowd: {at: 4m, peak: 300}
"""
SHORT_TRACE = "timestamp,value\n2020-01-01T00:00:00Z,6000\n2020-01-01T00:01:00Z,9000\n2020-01-01T00:02:00Z,7200\n"
TRACE_WARNING = ("short.csv is 3m long, shorter than the run ({run}): its last rate holds for the last {rest}; wrap: "
                 "true repeats it instead")


# (--scenario-set, the warnings on stderr and in result.json: line, field, message): said once before
# the run however many processes run it, whether the file's own or brought by a --scenario-set value
@pytest.mark.parametrize("options, expected", [
    pytest.param([], [(12, "spec.services[0].load[0].trace.file", TRACE_WARNING.format(run="5m", rest="2m"))],
                 id="the-files-own"),
    pytest.param(["--scenario-set", "spec.duration=4m"], [
        (12, "spec.services[0].load[0].trace.file",
         TRACE_WARNING.format(run="4m", rest="1m") + " (with --scenario-set spec.duration=4m)"),
        (13, "spec.services[0].load[1].flashCrowd.at",
         "at 4m, at the run's end (4m): it never happens (with --scenario-set spec.duration=4m)")],
        id="brought-by-a-scenario-set-value"),
])
def test_simulate_says_a_scenarios_warnings_once_and_keeps_them_in_result_json(tmp_path, options, expected):
    (tmp_path / "short.csv").write_text(SHORT_TRACE)
    (tmp_path / "warned.yaml").write_text(WARNED)
    proc = setpoint("simulate", "warned.yaml", *options, "-b", "hpa", "--no-frontier", "--no-report", "--jobs", "2",
                    "--out", "o", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "warning:" in line]
    assert said == [f"warned.yaml:{line}: {field}: warning: {message}" for line, field, message in expected]
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["scenario"]["warnings"] == [{"file": "warned.yaml", "line": line, "field": field, "message": message}
                                              for line, field, message in expected]


#: A queue worker's policy (metrics backlog and queue-depth) and a scenario whose spec.metrics binds {binding}.
QUEUE_POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: worker}
spec:
  targets: {namespace: jobs, name: worker}
  interval: 30s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: backlog
        query: sum by (namespace, deployment) (queue_messages_ready)
        target: {averagePerReplica: 500}
      - name: queue-depth
        query: max by (namespace, deployment) (queue_messages_ready)
        target: {averagePerReplica: 400}
"""
QUEUE_SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: jobs}}
spec:
  duration: 5m
  slo: {{latency: {{below: 30s}}}}
  services:
    - {{name: worker, capacityPerPod: 50, overload: queue, queueLimit: 10000, load: [{{constant: {{rps: 60}}}}]}}
  metrics:
    {binding}
"""


@pytest.mark.parametrize("binding, code, said", [
    pytest.param("{backlgo: requests_per_second, queue-depth: queue_length}", 0,
                 "jobs.yaml:10: spec.metrics.backlgo: warning: policy worker has no metric or check named 'backlgo', "
                 "so this binding is unused and its 'backlog' reads queue_length (the default for that name); did you "
                 "mean spec.metrics.backlog?", id="a-typo-beside-a-default-binding"),
    pytest.param("{backlog: queue_length, queue-dept: queue_length}", 1,
                 "metric 'queue-depth' is not bound to a simulated signal (", id="a-typo-leaves-a-metric-unbound"),
    pytest.param("{backlog: queue_length, queue-depth: queue_length, rps: requests_per_second}", 0, None,
                 id="a-binding-for-another-policy-is-not-said"),
])
def test_a_scenario_binding_that_names_no_metric_of_the_policy(tmp_path, binding, code, said):
    """A scenario's spec.metrics key with a typo bound nothing, silently: the metric it meant read
    its default signal (backlog: the queue) or was said to be unbound with no word of the typo."""
    (tmp_path / "worker.yaml").write_text(QUEUE_POLICY)
    (tmp_path / "jobs.yaml").write_text(QUEUE_SCENARIO.format(binding=binding))
    proc = setpoint("simulate", "jobs.yaml", "-p", "worker.yaml", "-b", "hpa", "--no-frontier", "--no-report",
                    "--jobs", "1", "--out", "o", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    if said is None:
        assert "warning:" not in proc.stderr and "meant" not in proc.stderr, proc.stderr
    else:
        assert said in proc.stderr, proc.stderr
    if code:
        assert "(it binds 'queue-dept': meant 'queue-depth'?)" in proc.stderr, proc.stderr
