"""CLI manners: --version, shell completion, help that reads well at 80 columns, a score table
that fits the terminal, and `run --once` whose exit status tells whether the cycle worked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from typer.testing import CliRunner

import controller
from controller.cli import app
from tests.support.cli_inproc import run_cli
from tests.support.cli_process import CliProcess
from tests.support.prometheus_server import free_port, prometheus_server

SETPOINT = [sys.executable, "-m", "controller.cli"]
REPO = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["validate"], ["schema"], ["simulate"], ["explain"], ["run"], ["resume"], ["accept"], ["sim"], ["sim", "serve"],
            ["sweep"], ["tune"], ["warm"]]


def setpoint(*args, cwd: Path, columns: int = 80, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """``setpoint *args`` as a process of its own, at a terminal ``columns`` wide: for what only a
    fresh interpreter shows (a warning given once per process)."""
    env = dict(os.environ, COLUMNS=str(columns), PYTHONPATH=str(REPO))
    return subprocess.run([*SETPOINT, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=timeout_s)


def in_process(*args, cwd: Path, columns: int = 80) -> subprocess.CompletedProcess:
    """``setpoint *args`` in this process (tests.support.cli_inproc), ``columns`` wide: what it says,
    writes and exits with, for the tests about those and not about a process."""
    return run_cli(*args, cwd=cwd, env={"COLUMNS": str(columns)})


@pytest.fixture(scope="module")
def apart():
    """A process for the commands that would serve for ever if they broke (`run` without --once,
    `sim serve`): each killed at its timeout; one process for them all (tests.support.cli_process)."""
    commands = CliProcess()
    yield commands
    commands.close()


def in_process_apart(apart: CliProcess, *args, cwd: Path, columns: int = 80) -> subprocess.CompletedProcess:
    """``setpoint *args`` as in_process does, in the ``apart`` process, within 60 s."""
    return apart.run(*args, cwd=cwd, env={"COLUMNS": str(columns)}, timeout_s=60)


def expected_version() -> str:
    try:
        return version("setpoint")
    except PackageNotFoundError:
        return controller.__version__


def test_version_prints_the_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"setpoint {expected_version()}\n"


def test_help_offers_shell_completion():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    completion = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="setpoint")
    assert completion.exit_code == 0 and "complete" in completion.stdout


def ragged_lines(text: str) -> list[str]:
    """Lines cut short although the same paragraph goes on (the next line, same indent, is prose
    starting in lower case, not a "name  description" entry): what re-wrapping a hard-wrapped
    docstring produces."""
    lines = text.splitlines()
    out = []
    for line, nxt in zip(lines, lines[1:]):
        indent = len(line) - len(line.lstrip())
        same_paragraph = (nxt.strip() and len(nxt) - len(nxt.lstrip()) == indent and nxt.strip()[0].islower()
                          and not re.match(r"^\s*\S+\s{2,}\S", nxt))
        if line.strip() and len(line) < 55 and same_paragraph:
            out.append(line)
    return out


@pytest.mark.parametrize("command", [pytest.param(c, id=" ".join(c) or "setpoint") for c in COMMANDS])
def test_help_fits_80_columns_without_cuts_or_ragged_lines(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"}, prog_name="setpoint")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert [line for line in text.splitlines() if len(line) > 80] == []
    assert "…" not in text and not re.search(r"\w\.\.\.$", text, re.M), text  # no cut short help
    assert ragged_lines(text) == [], text
    assert "site-packages" not in text and str(REPO) not in text  # defaults are named, not absolute paths


def test_ragged_lines_are_detected():
    assert ragged_lines("  Prints a score table (reversals, time\n  to mitigate each fault) and writes\n") \
        == ["  Prints a score table (reversals, time"]
    assert ragged_lines("  validate  Check policy files.\n  schema    Print the schema.\n") == []


def test_score_table_fits_80_columns(tmp_path):
    proc = in_process("simulate", "steady", "--no-report", "--out", "o", cwd=tmp_path, columns=80)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if not re.match(r"^\s*(result|decisions|report):", line)]
    assert [line for line in table if len(line) > 80] == []
    assert "…" not in proc.stdout
    for header in ("controller", "SLO viol.", "minutes", "replica-", "oracle", "rever-", "HPA @ eq."):
        assert header in proc.stdout
    assert "mitig." not in proc.stdout  # no faults in this scenario: no empty mitigation column
    # each column said in words below it (only HPA @ eq. cost was: a newcomer asked what reversals count)
    legend = " ".join(proc.stdout.split()).split("Columns: ")[1]
    for said in ("SLO viol. minutes:", "replica-hours:", "vs oracle:", "changes:", "reversals: a change the other way "
                 "within 5 min"):
        assert said in legend, legend
    rows = {line.split()[0] for line in table if line.strip()}
    assert {"policy", "hpa", "oracle"} <= rows


POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 100}
"""


@pytest.fixture
def kube(tmp_path):
    """The simulated Kubernetes API on loopback and a kubeconfig for it."""
    pytest.importorskip("kubernetes")
    from tests.adapters.kube_helpers import start_server

    server = start_server()
    yield server.write_kubeconfig(tmp_path / "kubeconfig.yaml", namespace="shop")
    server.stop()


def run_once(tmp_path: Path, prometheus: str, kubeconfig: Path) -> subprocess.CompletedProcess:
    (tmp_path / "web.yaml").write_text(POLICY)
    return in_process("run", "--once", "--policies", "web.yaml", "--prometheus", prometheus, "--kubeconfig", kubeconfig,
                      "--prometheus-timeout", "1", "--records", "decisions.jsonl", cwd=tmp_path)


def last_line(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_run_once_exits_1_naming_the_next_step_when_prometheus_is_unreachable(tmp_path, kube):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_once(tmp_path, url, kube)
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc).startswith("policy web: metric rps: ")
    assert "cannot connect" in last_line(proc) and f"check --prometheus {url}" in last_line(proc)
    assert "Traceback" not in proc.stderr


def test_run_once_exits_1_naming_the_next_step_when_kubernetes_is_unreachable(tmp_path, kube):
    dead = tmp_path / "dead-kubeconfig.yaml"
    dead.write_text(re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{free_port()}", kube.read_text()))
    proc = run_once(tmp_path, f"http://127.0.0.1:{free_port()}", dead)
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc).startswith("policy web: the cycle failed") and "check --kubeconfig" in last_line(proc)


def test_run_once_exits_0_when_the_cycle_worked(tmp_path, kube):
    with prometheus_server() as prom:  # no series: the metric is missing, which is no error
        proc = run_once(tmp_path, prom.url, kube)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "decisions.jsonl").read_text().count('"target"') == 1


def test_run_once_exits_1_when_a_policy_selects_no_workload(tmp_path, kube):
    """A misspelt name or namespace only logged a warning, and --once said 0: no pre-flight check."""
    (tmp_path / "web.yaml").write_text(POLICY.replace("names: [web]", "names: [wbe]"))
    with prometheus_server() as prom:
        proc = in_process("run", "--once", "--policies", "web.yaml", "--prometheus", prom.url, "--kubeconfig", kube,
                          "--prometheus-timeout", "1", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc) == ("policy web: selects no workload (no Deployment named wbe in namespace shop); check "
                               "its targets and the kubeconfig's context")


def test_run_compiles_no_kernels_unless_asked(tmp_path, kube):
    """The shipped image cannot keep numba's cache (read-only root): kernels would compile at every
    start, ~40 s and 520 MiB before the first decision. A cache folder of its own shows what compiled
    (with SETPOINT_COMPILED=1 it fills: checked by hand, ~45 s, so not in the suite)."""
    cache = tmp_path / "numba-cache"
    env = {k: v for k, v in os.environ.items() if k != "SETPOINT_COMPILED"}
    env.update(NUMBA_CACHE_DIR=str(cache))
    (tmp_path / "web.yaml").write_text(POLICY)
    with prometheus_server() as prom:
        proc = subprocess.run([*SETPOINT, "run", "--once", "--policies", "web.yaml", "--prometheus", prom.url,
                               "--kubeconfig", str(kube), "--records", "decisions.jsonl"], cwd=tmp_path,
                              capture_output=True, text=True, env=dict(env, PYTHONPATH=str(REPO)), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "decisions.jsonl").read_text().count('"target"') == 1
    assert not cache.exists() or not any(cache.rglob("*.nbi"))


WITHOUT_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None; from controller.cli import app; app(prog_name='setpoint')"


@pytest.mark.parametrize("args, code, says", [
    pytest.param([], 1, "report.html needs matplotlib, which is not installed: pip install matplotlib, or pass "
                        "--no-report", id="report-asks-for-matplotlib"),
    pytest.param(["--no-report"], 0, "result: ", id="no-report-needs-no-matplotlib"),
])
def test_simulate_without_matplotlib(tmp_path, args, code, says):
    """As in the controller image, which leaves the plotting stack out (deploy/Dockerfile)."""
    env = dict(os.environ, COLUMNS="80", PYTHONPATH=str(REPO))
    # 20 minutes of the 2-hour scenario: the same commands, scores and files, a third of the CPU
    proc = subprocess.run([sys.executable, "-c", WITHOUT_MATPLOTLIB, "simulate", "steady", "--out", "o",
                           "--scenario-set", "spec.duration=20m", *args],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert says in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("make, args, says", [
    pytest.param(lambda d: d / "empty", [], "no decisions.jsonl here; pass a `setpoint simulate` output folder", id="no-records"),
    pytest.param(lambda d: d / "decisions.jsonl", ["--target", "nosuch"], "no decision records of target 'nosuch'; the targets in", id="nothing-matches"),
    pytest.param(lambda d: d / "two.yaml", [], "expected exactly one scaling policy, found 2; pass a file that holds one",
                 id="two-scaling-policies"),
    pytest.param(lambda d: d / "heals.yaml", [], "policy payments-health: metric 'saturation' is not bound to a "
                 "simulated signal (", id="a-health-only-policy-s-unbound-check"),
    pytest.param(lambda d: d / "heals.yaml", [], "; pod check 'probe-failures' is not bound to a simulated per-pod "
                 "signal (pod_error_ratio, pod_errors", id="a-health-only-policy-s-unbound-pod-check-names-pod-signals"),
    pytest.param(lambda d: d / "heals.yaml", ["--scenario-set", "spec.metrics.probe-failures=pod_restarts"],
                 "bind it for this run with --scenario-set 'spec.metrics.saturation=SIGNAL'",
                 id="a-health-only-policy-with-one-check-bound"),
])
def test_errors_name_the_next_step(tmp_path, make, args, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "decisions.jsonl").write_text('{"at": 0, "target": "default/web", "current": 2, "desired": 2}\n')
    web = (REPO / "policies" / "web-rps.yaml").read_text()
    (tmp_path / "two.yaml").write_text(web + "---\n" + (REPO / "policies" / "queue-worker.yaml").read_text())
    health_only = (REPO / "policies" / "checkout-health.yaml").read_text().split("\n---\n")[1]  # payments-health
    (tmp_path / "heals.yaml").write_text(health_only)
    target = make(tmp_path)
    command = ["simulate", "steady", "--policy", target] if target.suffix == ".yaml" else ["explain", target]
    result = CliRunner().invoke(app, [str(a) for a in [*command, *args]])
    assert result.exit_code == 1, result.output
    assert says in result.stderr


def test_an_unknown_compiled_switch_is_one_warning_line_without_python_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("SETPOINT_COMPILED", "banana")
    proc = setpoint("simulate", "steady", "--no-report", "--no-frontier", "-b", "hpa", "--scenario-set",
                    "spec.duration=20m", cwd=tmp_path)  # a fresh process: the switch is read, and warned of, once
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "banana" in line]
    assert warning == ["setpoint: warning: SETPOINT_COMPILED='banana': expected 0 (numpy), 1 (the compiled kernels) "
                       "or unset (the kernels where they pay); read as unset"], proc.stderr


@pytest.mark.parametrize("args, message", [
    pytest.param(["sweep", "steady", "--no-hpa", "-o", "FILE"], "--out: FILE is a file, not a folder", id="sweep-out"),
    pytest.param(["tune", str(REPO / "policies" / "setpoint-default.yaml"), "-s", "steady", "--work", "FILE",
                  "-o", "tuned.yaml"], "--work: FILE is a file, not a folder", id="tune-work"),
])
def test_a_results_folder_that_is_a_file_is_refused_before_running(tmp_path, args, message):
    (tmp_path / "FILE").write_text("mine\n")
    proc = in_process(*args, cwd=tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (tmp_path / "FILE").read_text() == "mine\n"


DEFAULT_POLICY = str(REPO / "policies" / "setpoint-default.yaml")
HPA_MANIFEST = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: shop}\nspec:\n" \
               "  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 9\n"


@pytest.mark.parametrize("args, written", [
    pytest.param(["sweep", "tiny.yaml", "--no-hpa", "--no-report"], "out/sweep/result.json", id="sweep-default-out"),
    pytest.param(["tune", DEFAULT_POLICY, "-s", "tiny.yaml", "--set", "spec.replicas.max=10,20", "--trials", "1",
                  "--max-violation-minutes", "1000", "-o", "tuned.yaml"], "out/tune/tune.json", id="tune-default-work"),
])
def test_an_output_folder_left_to_its_default_is_used(tmp_path, args, written):
    """typer 0.29 passes an option's default (a Path) through its parser too: 'PosixPath' object has
    no attribute 'strip', exit 70, for every sweep without -o and every tune without --work."""
    from tests.simulators.sweep_fixtures import write_scenarios

    write_scenarios(tmp_path, {"tiny": (1, 300)}, duration="2m")
    proc = in_process(*args, "-j", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / written).is_file()


@pytest.mark.parametrize("args, code, message", [
    pytest.param(["simulate", "-o", ""], 2, "expected a path, got an empty string", id="simulate-out-empty"),
    pytest.param(["simulate", "-o", "  "], 2, "expected a path, got an empty string", id="simulate-out-blank"),
    pytest.param(["sweep", "steady", "--no-hpa", "-o", ""], 2, "expected a path", id="sweep-out-empty"),
    pytest.param(["tune", DEFAULT_POLICY, "-s", "steady", "--work", ""], 2, "expected a path", id="tune-work-empty"),
    pytest.param(["tune", DEFAULT_POLICY, "-s", "steady", "-o", ""], 2, "expected a path", id="tune-out-empty"),
    pytest.param(["tune", DEFAULT_POLICY, "-s", "steady", "-o", "DIR"], 2, "DIR is a folder, not a file",
                 id="tune-out-folder"),
    pytest.param(["schema", "-o", ""], 2, "expected a path", id="schema-out-empty"),
    pytest.param(["schema", "-o", "DIR"], 2, "DIR is a folder, not a file", id="schema-out-folder"),
    pytest.param(["import", "hpa.yaml", "-o", ""], 2, "expected a path", id="import-out-empty"),
    pytest.param(["import", "hpa.yaml", "--out-dir", ""], 2, "expected a path", id="import-out-dir-empty"),
    pytest.param(["import", "hpa.yaml", "--out-dir", "FILE"], 1, "--out-dir: FILE is a file, not a folder",
                 id="import-out-dir-file"),
    pytest.param(["backtest", "-p", DEFAULT_POLICY, "-o", ""], 2, "expected a path", id="backtest-out-empty"),
])
def test_an_empty_or_wrong_kind_of_output_path_is_refused_writing_nothing(tmp_path, args, code, message):
    """typer reads ``-o ''`` as Path('.'): simulate wrote result.json, report.html and decisions.jsonl
    into the working folder."""
    (tmp_path / "FILE").write_text("mine\n")
    (tmp_path / "DIR").mkdir()
    (tmp_path / "hpa.yaml").write_text(HPA_MANIFEST)
    proc = in_process(*args, cwd=tmp_path)
    assert proc.returncode == code and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR", "FILE", "hpa.yaml"]
    assert not any((tmp_path / "DIR").iterdir()) and (tmp_path / "FILE").read_text() == "mine\n"


@pytest.mark.parametrize("args, code, message", [
    pytest.param(["run", "-p", str(REPO / "policies" / "web-rps.yaml"), "--prometheus", "http://127.0.0.1:9", "--once",
                  "--log-level", "loud"], 1, "--log-level: expected debug, info, warning or error, got 'loud'",
                 id="run-log-level"),  # was exit 70: ValueError: Unknown level: 'LOUD'
    pytest.param(["sim", "serve", "--log-level", "loud"], 1, "--log-level: expected debug, info, warning or error",
                 id="sim-serve-log-level"),
    pytest.param(["run", "-p", str(REPO / "policies" / "web-rps.yaml"), "--prometheus", "http://127.0.0.1:9", "--once",
                  "--burst", "0"], 2, "--burst", id="burst"),  # was exit 70: ValueError from the token bucket
    pytest.param(["run", "-p", str(REPO / "policies" / "web-rps.yaml"), "--prometheus", "http://127.0.0.1:9", "--once",
                  "--workers", "0"], 2, "--workers", id="workers"),
    pytest.param(["sim", "serve", "--kube-listen", "127.0.0.1:99999"], 1, "a port from 0 to 65535",
                 id="sim-serve-port"),  # was exit 70: OverflowError from bind()
])
def test_a_bad_option_value_is_a_usage_error_not_a_bug(apart, tmp_path, args, code, message):
    proc = in_process_apart(apart, *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr and "bug in Setpoint" not in proc.stderr


@pytest.mark.parametrize("host, said", [
    pytest.param("127.0.0.1", "Address already in use", id="port-in-use"),
    pytest.param("192.0.2.1", "Cannot assign requested address", id="not-this-machine"),  # TEST-NET-1
])
def test_run_exits_1_naming_listen_when_it_cannot_listen(apart, tmp_path, kube, host, said):
    """--listen on a port another process holds said 'setpoint: Address already in use: check the
    path and its permissions': neither the option nor the address."""
    import socket

    (tmp_path / "web.yaml").write_text(POLICY)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = in_process_apart(apart, "run", "--dry-run", "--policies", "web.yaml", "--prometheus",
                                f"http://127.0.0.1:{free_port()}", "--kubeconfig", kube, "--listen", f"{host}:{port}",
                                "--records", "decisions.jsonl", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert last_line(proc).startswith(f"--listen {host}:{port}: cannot listen there: {said}"), proc.stderr
    assert "check the path" not in proc.stderr and "Traceback" not in proc.stderr


#: An address the port check refuses (exit 1, "--kube-listen"): an option value that passes stops there, serving nothing.
NO_PORT = ["--kube-listen", "127.0.0.1:99999"]
#: A tune that stops on its missing policy file (exit 2) once its options pass.
NO_POLICY = ["no-such-policy.yaml"]


@pytest.mark.parametrize("args, says", [
    pytest.param(["sim", "serve", "--speed", "nan", *NO_PORT], "'--speed': expected a finite number from 0.001 to 1000, "
                 "got nan", id="speed-nan"),  # said "should be less than or equal to 1000"
    pytest.param(["sim", "serve", "--speed", "inf", *NO_PORT], "'--speed': expected a finite number from 0.001 to 1000, "
                 "got inf", id="speed-inf"),
    pytest.param(["sim", "serve", "--speed", "-inf", *NO_PORT], "'--speed': expected a finite number from 0.001 to "
                 "1000, got -inf", id="speed-minus-inf"),
    pytest.param(["sim", "serve", "--speed", "-1", *NO_PORT], "'--speed': expected a number from 0.001 to 1000, got -1",
                 id="speed-negative"),
    pytest.param(["sim", "serve", "--speed", "2000", *NO_PORT], "'--speed': expected a number from 0.001 to 1000, "
                 "got 2000", id="speed-above-its-max"),
    pytest.param(["sim", "serve", "--speed", "fast", *NO_PORT], "'--speed': expected a number from 0.001 to 1000, "
                 "got 'fast'", id="speed-not-a-number"),
    pytest.param(["sim", "serve", "--read-timeout", "nan", *NO_PORT], "'--read-timeout': expected a finite number "
                 ">= 0.1, got nan", id="read-timeout-nan"),
    pytest.param(["sim", "serve", "--read-timeout", "inf", *NO_PORT], "'--read-timeout': expected a finite number "
                 ">= 0.1, got inf", id="read-timeout-inf"),  # passed its min: a server whose reads never time out
    pytest.param(["run", "-p", str(REPO / "policies" / "web-rps.yaml"), "--prometheus", "http://127.0.0.1:9", "--once",
                  "--qps", "nan"], "'--qps': expected a finite number >= 0, got nan", id="qps-nan"),
    pytest.param(["run", "-p", str(REPO / "policies" / "web-rps.yaml"), "--prometheus", "http://127.0.0.1:9", "--once",
                  "--qps", "inf"], "'--qps': expected a finite number >= 0, got inf", id="qps-inf"),
    pytest.param(["tune", "--max-violation-minutes", "nan", *NO_POLICY], "'--max-violation-minutes': expected a "
                 "finite number >= 0, got nan", id="max-violation-minutes-nan"),
    pytest.param(["tune", "--max-violation-minutes", "inf", *NO_POLICY], "'--max-violation-minutes': expected a "
                 "finite number >= 0, got inf", id="max-violation-minutes-inf"),  # passed its min
    pytest.param(["tune", "--max-violation-minutes", "-1", *NO_POLICY], "'--max-violation-minutes': expected a "
                 "number >= 0, got -1", id="max-violation-minutes-negative"),
])
def test_a_float_option_says_it_takes_a_finite_number_in_its_range(tmp_path, args, says):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and f"Invalid value for {says}" in result.stderr, result.output


TOKEN_CHARS = "expected a bearer token of letters, digits and -._~+/ (then = padding at the end)"


@pytest.mark.parametrize("token, env, code, says", [
    pytest.param("s3cr3t x", None, 2, f"{TOKEN_CHARS}, got one with a space (character 7 of 8)", id="a-space"),
    pytest.param("", None, 2, f"{TOKEN_CHARS}, got an empty string", id="empty"),  # was exit 1
    pytest.param("   ", None, 2, f"{TOKEN_CHARS}, got one with a space (character 1 of 3)", id="only-spaces"),
    pytest.param("s3cr3t\tx", None, 2, f"{TOKEN_CHARS}, got one with a control character (character 7 of 8)",
                 id="a-tab"),
    pytest.param("s3cr3t\n", None, 2, f"{TOKEN_CHARS}, got one with a control character (character 7 of 7)",
                 id="a-trailing-newline"),
    pytest.param("s3cr3t:x", None, 2, f"{TOKEN_CHARS}, got one with the character ':' (character 7 of 8)",
                 id="a-colon"),
    pytest.param("s3cr3t-é", None, 2, f"{TOKEN_CHARS}, got one with the character 'é' (character 8 of 8)",
                 id="not-ascii"),
    pytest.param("s3cr3t=x", None, 2, f"{TOKEN_CHARS}, got one with '=' before its end", id="padding-inside"),
    pytest.param("==", None, 2, f"{TOKEN_CHARS}, got one with only '='", id="only-padding"),
    pytest.param(None, "s3cr3t x", 2, f"(env var: 'SETPOINT_SIM_TOKEN'): {TOKEN_CHARS}, got one with a space",
                 id="from-the-environment"),
    # allowed: every b64token character, then padding; stops at --kube-listen, serving nothing
    pytest.param("Az09-._~+/==", None, 1, "--kube-listen: expected HOST:PORT", id="every-allowed-character"),
    pytest.param(None, "Az09-._~+/", 1, "--kube-listen: expected HOST:PORT", id="allowed-from-the-environment"),
])
def test_sim_serve_refuses_a_token_no_authorization_header_can_carry(token, env, code, says):
    """RFC 6750's b64token; the message names the option and never shows the token."""
    args = ["sim", "serve", *NO_PORT] + (["--token", token] if token is not None else [])
    result = CliRunner().invoke(app, args, env={"SETPOINT_SIM_TOKEN": env})
    assert result.exit_code == code and says in result.stderr, result.output
    if code == 2:
        assert "Invalid value for '--token'" in result.stderr
        assert "s3cr3t" not in result.output  # a token is a secret: the message says what is wrong, not what it is


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


BACKTEST_POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, name: web}
  replicas: {min: 1, max: 10}
  scaling:
    metrics: [{name: rps, query: 'sum by (namespace, deployment) (rate(x[1m]))', target: {averagePerReplica: 80}}]
"""


@pytest.mark.parametrize("patch, args, said", [
    # A long backtest stopped with Ctrl-C exited 130 with no word, its --out folder made and empty
    pytest.param("controller.runtime.backtest.stream_backtest",
                 ["backtest", "-p", "web.yaml", "--prometheus", "http://127.0.0.1:9", "--from", "now-7d", "--out",
                  "out/bt"],
                 "interrupted: nothing written to out/bt: a backtest keeps no partial results", id="backtest-out"),
    pytest.param("controller.runtime.backtest.stream_backtest",
                 ["backtest", "-p", "web.yaml", "--prometheus", "http://127.0.0.1:9", "--from", "now-7d"],
                 "interrupted: nothing written: a backtest keeps no partial results", id="backtest-no-out"),
    pytest.param("simulators.runner.simulate",
                 ["simulate", "steady", "--no-frontier", "--scenario-set", "spec.duration=10m", "--out", "out/sim"],
                 "interrupted: nothing written to out/sim: a simulation keeps no partial results", id="simulate"),
])
def test_an_interrupted_run_says_what_it_kept(tmp_path, monkeypatch, capsys, patch, args, said):
    from controller.cli import main

    (tmp_path / "web.yaml").write_text(BACKTEST_POLICY)
    monkeypatch.chdir(tmp_path)
    module, name = patch.rsplit(".", 1)
    monkeypatch.setattr(__import__(module, fromlist=[name]), name, _interrupt)
    monkeypatch.setattr("controller.cli.simulation._warm_kernels", lambda *a: None)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert said in err, err
    assert not list(tmp_path.glob("out/*/result.json"))


@pytest.mark.parametrize("compiling, said", [
    # the first backtest on a machine compiled its kernels ~45 s under a bar stuck at "0/? segments"
    # with no word of it (simulate says so)
    pytest.param(True, True, id="kernels-compile"),
    pytest.param(False, False, id="kernels-from-the-cache"),
])
def test_a_backtest_says_when_it_compiles_its_kernels(tmp_path, monkeypatch, capsys, compiling, said):
    import time as time_module

    from controller.cli import main, progress

    def slow_replay(*args, **kwargs):
        time_module.sleep(0.6)
        raise KeyboardInterrupt

    (tmp_path / "web.yaml").write_text(BACKTEST_POLICY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(progress, "COMPILE_NOTICE_S", 0.2)
    monkeypatch.setattr(progress, "COMPILE_POLL_S", 0.05)
    monkeypatch.setattr(progress, "kernels_compiling", lambda since=0: compiling)
    monkeypatch.setattr("controller.runtime.backtest.stream_backtest", slow_replay)
    with pytest.raises(SystemExit):
        main(["backtest", "-p", "web.yaml", "--prometheus", "http://127.0.0.1:9", "--from", "now-7d"])
    err = capsys.readouterr().err
    assert ("compiling the decision kernels: about 40 s" in " ".join(err.split())) == said, err



@pytest.mark.parametrize("misses, said", [
    # a worker (or an in-process caller) that compiled a kernel for an earlier command: the next
    # command that ran 3 s said "compiling" though it loaded everything (a flaky output comparison)
    pytest.param([4, 4], False, id="compiled-before-this-command-only"),
    pytest.param([4, 5], True, id="compiled-during-this-command"),
    pytest.param([0, 1], True, id="the-first-compile-of-the-process"),
    pytest.param([0, 0], False, id="everything-from-the-cache"),
])
def test_the_compile_notice_counts_only_this_commands_compiles(monkeypatch, misses, said):
    import io
    import time as time_module

    from rich.console import Console

    from controller.cli import progress

    counts = iter(misses)
    last = [misses[0]]

    def cache_misses() -> int:  # the entry count, then the later one at every look
        last[0] = next(counts, last[0])
        return last[0]

    monkeypatch.setattr(progress, "COMPILE_NOTICE_S", 0.2)
    monkeypatch.setattr(progress, "COMPILE_POLL_S", 0.05)
    monkeypatch.setattr(progress, "kernel_cache_misses", cache_misses)
    out = io.StringIO()
    with progress.compile_notice(Console(file=out, width=200), "the decision kernels"):
        time_module.sleep(0.6)
    assert ("compiling the decision kernels" in out.getvalue()) == said, out.getvalue()
