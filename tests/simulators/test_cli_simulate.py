"""`setpoint simulate` and `setpoint explain` as a user runs them: a subprocess, files on disk."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SETPOINT = [sys.executable, "-m", "controller.cli"]


def setpoint(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*SETPOINT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sim")
    proc = setpoint("simulate", cwd=cwd)
    return cwd, proc


def test_simulate_with_no_arguments_scores_policy_hpa_and_oracle(default_run):
    cwd, proc = default_run
    assert proc.returncode == 0, proc.stderr
    out = cwd / "out" / "flash-crowd"
    result = json.loads((out / "result.json").read_text())
    assert result["schema_version"] == 1 and result["scenario"]["name"] == "flash-crowd"
    assert set(result["controllers"]) == {"policy", "hpa", "oracle"}
    for scores in result["controllers"].values():
        assert {"slo_violation_minutes", "replica_hours", "replica_changes", "reversals", "mitigation_seconds"} <= set(scores)
    for name in ("policy", "hpa", "oracle"):
        assert name in proc.stdout  # the score table
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3


def test_explain_prints_why_each_number(default_run):
    cwd, _ = default_run
    proc = setpoint("explain", "out/flash-crowd", "--target", "web", "--at", "25m", "--controller", "policy", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "default/web" in lines[0] and "rps: raw" in lines[0] and "[" in lines[0]
    changes = setpoint("explain", "out/flash-crowd", "--changes", cwd=cwd)
    assert all("->" in line for line in changes.stdout.splitlines())


def test_simulate_rejects_a_broken_scenario_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: setpoint/v1\nkind: Scenario\nmetadata: {name: x}\nspec:\n  duration: 5\n")
    proc = setpoint("simulate", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    assert f"{bad}:5: spec.duration" in proc.stderr and "Traceback" not in proc.stderr


def test_simulate_runs_a_named_scenario_with_every_baseline(tmp_path):
    proc = setpoint("simulate", "node-loss", "-b", "hpa", "-b", "fixed-max", "-b", "oracle", "--seed", "3",
                    "--out", "o", "--no-report", cwd=tmp_path)
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
    explained = setpoint("explain", "o", "--controller", "policy", "--at", str(rollback["at"]), cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert "health: rollback to revision 1 [RollbackRevisionWorse] trigger release-errors" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("release-errors:"))
    assert "revision 2" in line and "vs stable 1" in line and "LLR" in line and line.endswith("-> bad")
