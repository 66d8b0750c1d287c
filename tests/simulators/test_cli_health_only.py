"""`setpoint simulate` of a health-only policy (a health section, no scaling) as a user runs it:
files on disk (the commands through tests/support/cli_inproc.py); then `setpoint explain` and
`setpoint status --records` on its folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.simulators.test_health_only_sim import HEADER, MEMORY, RESTARTS
from tests.support.cli_inproc import run_cli

REPO = Path(__file__).resolve().parents[2]


def setpoint(*args, cwd) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd)


def write_policies(folder: Path) -> None:
    """The policy files the rows name, in ``folder``."""
    (folder / "memory.yaml").write_text(HEADER.format(name="web-memory", checks=MEMORY, replicas=""))
    (folder / "restarts.yaml").write_text(HEADER.format(name="web-restarts", checks=RESTARTS, replicas=""))
    # policies/checkout-health.yaml's second document: "payments is scaled by its own HPA, Setpoint only heals it"
    (folder / "payments.yaml").write_text((REPO / "policies" / "checkout-health.yaml").read_text().split("\n---\n")[1])
    (folder / "two.yaml").write_text((folder / "memory.yaml").read_text() + "---\n"
                                     + (folder / "restarts.yaml").read_text())
    (folder / "bad.yaml").write_text((folder / "memory.yaml").read_text().replace("below: 400", "below: 900"))


@pytest.mark.parametrize("args, controllers, alone, acted, healer", [
    pytest.param(["memory-leak", "-p", "memory.yaml", "--no-report"], ["policy", "hpa", "oracle"], "hpa",
                 "rolling-restart", "web-memory", id="memory-leak-beside-hpa-by-default-with-the-frontier"),
    pytest.param(["crash-loop", "-p", "restarts.yaml", "--scaler", "fixed", "--no-frontier", "--no-report",
                  "--scenario-set", "spec.services[0].initialReplicas=7"], ["policy", "fixed", "hpa", "oracle"],
                 "fixed", "rollback", "web-restarts", id="crash-loop-beside-fixed-replicas"),
    # a policy that also scales, its health checks alone beside --scaler (docs/simulation.md)
    pytest.param(["crash-loop-ramp", "-p", REPO / "policies" / "setpoint-healing.yaml", "--scaler", "hpa",
                  "--no-frontier", "--no-report"], ["policy", "hpa", "oracle"],
                 "hpa", "rollback", "setpoint-healing", id="bundled-healing-on-crash-loop-ramp-beside-hpa"),
])
def test_a_health_only_policy_is_scored_against_its_scaler_alone(tmp_path, args, controllers, alone, acted, healer):
    write_policies(tmp_path)
    proc = setpoint("simulate", *args, "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    scores = result["controllers"]
    assert list(scores) == controllers
    assert " heals; " in scores["policy"]["description"]
    assert scores["policy"]["slo_violation_minutes"] < scores[alone]["slo_violation_minutes"]
    # the health actions, listed under the table: time, target, action, reason
    listed = [line.split() for line in proc.stdout.splitlines() if line.startswith("  t=")]
    assert listed and all(row[1] == "web" and row[2] == acted for row in listed), proc.stdout
    assert f"Health actions of {healer} (policy): " in proc.stdout
    if "--no-frontier" not in args:
        assert result["frontier"]["equal_cost"]["policy"]["verdict"] in {"win", "tie", "loss"}
    explained = setpoint("explain", "out", "--changes", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert f"health: {acted}" in explained.stdout
    status = setpoint("status", "--records", "out", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"controller policy (policy {healer}" in status.stdout


def test_checks_bound_with_scenario_set_run_the_bundled_health_only_example(tmp_path):
    write_policies(tmp_path)
    proc = setpoint("simulate", "steady", "-p", "payments.yaml", "--no-frontier", "--no-report", "-o", "out",
                    "--scenario-set", "spec.metrics.probe-failures=pod_restarts",
                    "--scenario-set", "spec.metrics.saturation=utilization", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Health actions of payments-health (policy): " in proc.stdout
    records = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    assert {r["policy"] for r in records if r["controller"] == "policy"} == {"payments-health"}


def test_a_file_with_a_scaling_and_a_health_only_policy_simulates_the_scaling_one_as_before(tmp_path):
    proc = setpoint("simulate", "steady", "-p", REPO / "policies" / "checkout-health.yaml", "--no-frontier",
                    "--no-report", "-o", "out", "--scenario-set", "spec.metrics.crash-loops=pod_restarts", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((tmp_path / "out" / "result.json").read_text())["controllers"]
    assert list(scores) == ["policy", "hpa", "oracle"]
    assert scores["policy"]["description"].startswith("checkout (") and "heals" not in scores["policy"]["description"]
    # the scaling policy's own health actions are listed (it heals too), not the health-only one's
    assert "Health actions of checkout (policy): none." in proc.stdout and "payments-health" not in proc.stdout


@pytest.mark.parametrize("args, code, says", [
    pytest.param(["-p", REPO / "policies" / "web-rps.yaml", "--scaler", "fixed"], 1,
                 "--scaler: policy web-rps (web-rps.yaml) scales the workload itself and has no health section",
                 id="scaler-beside-a-scaling-policy-without-health-checks"),
    pytest.param(["-p", "memory.yaml", "--scaler", "keda"], 2, "'keda' is not one of 'hpa', 'fixed'",
                 id="unknown-scaler"),
    pytest.param(["-p", "two.yaml"], 1, "two.yaml: expected one policy to simulate, found 2 health-only policies "
                 "(web-memory, web-restarts) and no scaling one", id="two-health-only-policies"),
    pytest.param(["-p", "payments.yaml"], 1, "policy payments-health: metric 'saturation' is not bound to a "
                 "simulated signal (", id="unbound-checks"),
    pytest.param(["-p", "payments.yaml", "--scenario-set", "spec.metrics.probe-failures=nosuch"], 1,
                 "spec.metrics.probe-failures: expected 'requests_per_second'", id="a-binding-to-no-signal"),
    pytest.param(["-p", "bad.yaml"], 1, "bad.yaml:13: spec.health.checks[0].recovered.below: must be <= "
                 "unhealthy.above (600)", id="invalid-health-only-policy"),
    pytest.param(["-p", "memory.yaml", "-b", "bogus"], 1, "unknown baseline 'bogus'", id="unknown-baseline"),
    pytest.param(["-p", "memory.yaml", "--hpa-policy", "memory.yaml"], 1,
                 "--hpa-policy: memory.yaml: expected exactly one scaling policy, found 0: web-memory only heals",
                 id="a-health-only-hpa-policy"),
])
def test_bad_input_is_one_clear_error(tmp_path, args, code, says):
    write_policies(tmp_path)
    proc = setpoint("simulate", "steady", *args, "-o", "out", "--no-report", cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "result.json").exists()


@pytest.mark.parametrize("args, variants, alone, note", [
    pytest.param(["memory-leak", "-p", "memory.yaml", "--no-hpa"], ["web-memory", "hpa"], "hpa", None,
                 id="beside-hpa-by-default"),
    pytest.param(["crash-loop", "-p", "restarts.yaml", "--scaler", "fixed", "--no-hpa",
                  "--scenario-set", "spec.services[0].initialReplicas=7"], ["web-restarts", "fixed"], "fixed", None,
                 id="beside-fixed-replicas"),
    # a policy that also scales: its health checks alone beside --scaler, as simulate --scaler runs it (and says)
    pytest.param(["crash-loop-ramp", "-p", REPO / "policies" / "setpoint-healing.yaml", "--scaler", "hpa", "--no-hpa"],
                 ["setpoint-healing", "hpa"], "hpa",
                 "note: --scaler hpa: policy setpoint-healing's scaling section is set aside; its health checks run "
                 "beside the hpa scaler", id="a-scaling-policy-s-health-checks-beside-hpa"),
])
def test_sweep_scores_a_health_only_policy_against_its_scaler_alone(tmp_path, args, variants, alone, note):
    write_policies(tmp_path)
    proc = setpoint("sweep", *args, "-o", "sweep", "--no-report", "--jobs", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (note in proc.stderr) if note else ("set aside" not in proc.stderr), proc.stderr
    result = json.loads((tmp_path / "sweep" / "result.json").read_text())
    assert list(result["variants"]) == variants
    assert result["variants"][variants[0]] | result["variants"][alone] == result["variants"][alone]  # same keys
    assert (result["variants"][variants[0]]["heals"], result["variants"][alone]["heals"]) == (True, False)
    means = result["overall"]["variants"]
    assert means[variants[0]]["slo_violation_minutes"] < means[alone]["slo_violation_minutes"]
    again = setpoint("sweep", *args, "-o", "sweep", "--no-report", "--jobs", "1", cwd=tmp_path)
    assert again.returncode == 0 and json.loads((tmp_path / "sweep" / "result.json").read_text()) == result


@pytest.mark.parametrize("args, says", [
    pytest.param(["-p", REPO / "policies" / "web-rps.yaml", "--scaler", "fixed"],
                 "--scaler: chooses what scales the workload beside a policy's health checks, and no --policy here "
                 "has a health section", id="scaler-beside-scaling-policies-without-health-checks"),
    pytest.param(["-p", "two.yaml"], "two.yaml: expected one policy to simulate, found 2 health-only policies",
                 id="two-health-only-policies"),
    pytest.param(["-p", "payments.yaml"], "metric 'saturation' is not bound to a simulated signal (",
                 id="unbound-checks"),
    pytest.param(["-p", REPO / "policies" / "setpoint-healing.yaml", "--scaler", "hpa",
                  "--set", "spec.scaling.metrics[0].target.averagePerReplica=50,70"],
                 "--scaler sets the scaling section of policy setpoint-healing aside (its health checks alone run "
                 "beside the hpa scaler), so there is no spec.scaling.metrics[0].target.averagePerReplica to vary",
                 id="set-of-a-scaling-section-the-scaler-sets-aside"),
])
def test_sweep_refuses_bad_health_only_input(tmp_path, args, says):
    write_policies(tmp_path)
    proc = setpoint("sweep", "steady", *args, "--no-hpa", "-o", "sweep", "--no-report", "--jobs", "1", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


def test_tune_refuses_a_health_only_policy(tmp_path):
    write_policies(tmp_path)
    proc = setpoint("tune", "memory.yaml", "-s", "steady", "-o", "tuned.yaml", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "web-memory only heals (no scaling section), and tune searches scaling parameters" in proc.stderr


@pytest.mark.parametrize("policy, listed", [
    pytest.param("setpoint-healing.yaml", "Health actions of setpoint-healing (policy): 6 (6 rolling-restart):",
                 id="a-policy-that-scales-and-heals"),
    pytest.param("setpoint-default.yaml", None, id="a-policy-that-only-scales"),
])
def test_a_policy_that_scales_and_heals_lists_its_health_actions(tmp_path, policy, listed):
    """A policy with both sections (the team's StatefulSet on CPU with a memory check) printed the
    score table and nothing of the restarts it made: only a health-only policy's were listed."""
    proc = setpoint("simulate", "memory-leak", "-p", REPO / "policies" / policy, "--no-frontier", "--no-report",
                    "--jobs", "1", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("  t=")]
    if listed is None:
        assert "Health actions" not in proc.stdout and not rows, proc.stdout
        return
    assert listed in proc.stdout, proc.stdout
    assert len(rows) == 6 and all(row[1:3] == ["web", "rolling-restart"] for row in rows), rows
    assert "Each cycle's checks and why: setpoint explain out --changes" in proc.stdout
    # the budget runs out: its notice read as a live cluster's, "resume ... at 01:16 UTC" by the wall clock
    held = [line for line in proc.stderr.splitlines() if "self-healing stopped" in line]
    assert held and all(line.startswith("setpoint: in the simulation (times on the scenario's clock, which starts "
                                        "at ") for line in held), proc.stderr
