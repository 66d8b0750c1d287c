"""--scenario-set and --holdout-set: scenario variants for sweep and tune, their names, the
errors a user sees, and what they change in a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from controller.cli import main
from simulators.policy_set import SetError
from simulators.scenario import load_scenario_text
from simulators.scenario_set import check_distinct, documents_data, parse_scenario_settings, scenario_variants
from simulators.sweep import build_grid, read_scenario_input
from tests.simulators.sweep_fixtures import DEFAULT_POLICY, write_scenarios

DELAY = "spec.services[*].startupDelay"


@pytest.fixture
def scenarios(tmp_path):
    return write_scenarios(tmp_path, {"tiny-a": (1, 700), "tiny-b": (5, 1100)})


def variants(paths, *texts, option="--scenario-set"):
    return scenario_variants([read_scenario_input(p) for p in paths], parse_scenario_settings(texts, option))


def test_each_scenario_gets_every_combination_named_by_its_values(scenarios):
    out = variants(scenarios, f"{DELAY}=5s,2m", "spec.services[*].maxPods=10,20")
    assert [s.name for s in out] == [f"tiny-{x}[startupDelay={d},maxPods={m}]" for x in "ab"
                                     for d in ("5s", "2m") for m in (10, 20)]
    loaded = load_scenario_text(out[3].text, out[3].file)
    web = loaded.cluster.services[0]
    assert (web.startup_delay_s, web.max_pods) == (120.0, 20)
    assert out[3].seed == 1 and out[4].seed == 5  # each keeps its file's seed
    assert all(s.file.endswith(".yaml") for s in out)


def test_no_settings_leave_the_scenarios_as_read(scenarios):
    inputs = [read_scenario_input(p) for p in scenarios]
    assert scenario_variants(inputs, []) == inputs


@pytest.mark.parametrize("setting, words", [
    pytest.param(f"{DELAY}=-5s", ["tiny-a.yaml", "spec.services[0].startupDelay", "expected a duration",
                                  "(with --scenario-set spec.services[*].startupDelay=-5s)"], id="invalid-value"),
    pytest.param("spec.services[3].startupDelay=5s", ["tiny-a.yaml", "has 1 item(s); index [3] is out of range"],
                 id="index-out-of-range"),
    pytest.param("spec.workloads[*].x=1", ["spec.workloads is not in the file, so [*] cannot be set"],
                 id="missing-list"),
    pytest.param(f"{DELAY}=5s..1m", ["--scenario-set", "has no step"], id="no-step"),
    pytest.param("spec.services[*]startupDelay=5s", ["--scenario-set", "malformed path"], id="malformed-path"),
])
def test_errors_name_the_option_the_file_and_the_field(scenarios, setting, words):
    with pytest.raises(SetError) as info:
        variants(scenarios, setting)
    text = str(info.value)
    assert all(w in text for w in words), text


@pytest.mark.parametrize("setting, line", [
    pytest.param("spec.services[*].initialReplicas=40", 14, id="a-field-of-the-file-at-its-line"),
    pytest.param("spec.services[*].maxPods=2", 14, id="a-cross-field-rule-at-initialReplicas"),
    pytest.param(f"{DELAY}=banana", 12, id="a-field-the-file-lacks-at-its-service"),
])
def test_errors_give_the_files_own_lines(scenarios, setting, line):
    """A variant is rewritten from the file; its errors point into the file (they gave no line)."""
    with pytest.raises(SetError) as info:
        variants(scenarios[:1], setting)
    [error] = info.value.errors
    assert (error.file, error.line) == (os.path.basename(scenarios[0]), line), str(info.value)


def test_the_grid_counts_scenario_variants_before_reading_them(scenarios):
    with pytest.raises(SetError) as info:
        build_grid(scenarios, [str(DEFAULT_POLICY)], [], scenario_settings=[f"{DELAY}=1s..1000s:1s",
                                                                            "spec.seed=1..1000:1"])
    assert "combinations of the --scenario-set values" in str(info.value)


def test_a_held_out_scenario_equal_to_a_training_one_is_refused(scenarios):
    train = [read_scenario_input(scenarios[0])]
    same = variants(scenarios[:1], "spec.seed=1", option="--holdout-set")  # the file's own seed: the same scenario
    with pytest.raises(SetError, match=r"tiny-a\[seed=1\] \(the same scenario as tiny-a\) is also a training"):
        check_distinct(train, same)
    check_distinct(train, variants(scenarios[:1], "spec.seed=2", option="--holdout-set"))


def test_cli_sweep_runs_each_variant_and_slower_pods_meet_the_step_later(scenarios, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["sweep", scenarios[1], "-p", str(DEFAULT_POLICY), "--scenario-set", f"{DELAY}=5s,3m", "--no-hpa",
              "-j", "1", "--no-report", "-o", str(out)])
    assert info.value.code in (0, None)
    result = json.loads((out / "result.json").read_text())
    fast, slow = (result["by_scenario"][f"tiny-b[startupDelay={d}]"]["variants"]["setpoint-default"]
                  for d in ("5s", "3m"))
    # the same load and seed: 3-minute start-ups leave the step's first minutes to the old pods
    assert slow["slo_violation_minutes"] > fast["slo_violation_minutes"]
    assert "cell 2/2: tiny-b[startupDelay=3m]" in capsys.readouterr().err


def test_cli_tune_holds_out_the_training_scenarios_with_other_values(scenarios, tmp_path, capsys):
    tuned = tmp_path / "tuned.yaml"
    with pytest.raises(SystemExit) as info:
        main(["tune", str(DEFAULT_POLICY), "-s", scenarios[1], "--holdout-set", f"{DELAY}=3m", "--trials", "2",
              "-j", "1", "--max-violation-minutes", "60", "--work", str(tmp_path / "work"), "-o", str(tuned)])
    assert info.value.code in (0, None), capsys.readouterr().err
    report = json.loads((tmp_path / "work" / "tune.json").read_text())
    assert report["holdout_scenarios"] == ["tiny-b[startupDelay=3m]"]
    assert "tiny-b[startupDelay=3m] (tiny-b.yaml with --holdout-set spec.services[*].startupDelay=3m, seeds 5)" in tuned.read_text()


@pytest.mark.parametrize("extra, message", [
    pytest.param(["--holdout", "SCENARIO"], "--holdout: tiny-b is also a training scenario", id="same-file"),
    pytest.param(["--scenario-set", "spec.seed=6", "--holdout-set", "spec.seed=6"],
                 "--holdout: tiny-b[seed=6] is also a training scenario", id="same-values"),
    pytest.param(["--holdout-set", "spec.services[*].startupDelay=-1s"],
                 "spec.services[0].startupDelay: expected a duration", id="invalid-holdout-value"),
])
def test_cli_tune_refuses_a_holdout_it_trains_on_before_searching(scenarios, tmp_path, capsys, extra, message):
    extra = [scenarios[1] if x == "SCENARIO" else x for x in extra]
    with pytest.raises(SystemExit) as info:
        main(["tune", str(DEFAULT_POLICY), "-s", scenarios[1], *extra, "--trials", "1", "-j", "1",
              "--max-violation-minutes", "60", "--work", str(tmp_path / "work"), "-o", str(tmp_path / "t.yaml")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "work").exists() and not (tmp_path / "t.yaml").exists()


def simulate(*args: str, cwd) -> subprocess.CompletedProcess:
    """`setpoint simulate` in a subprocess, as a user runs it (in process, a short run's choice of
    the numpy stages would stay with the test worker)."""
    return subprocess.run([sys.executable, "-m", "controller.cli", "simulate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "120"})


def test_cli_simulate_runs_the_scenario_with_the_change_named_in_table_folder_and_result(tmp_path):
    proc = simulate("step", "--scenario-set", f"{DELAY}=3m", "--no-frontier", "--no-report", "-b", "hpa", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "step[startupDelay=3m]: SLO p95" in proc.stdout  # brackets kept (not read as rich markup)
    folder = tmp_path / "out" / "step-startupDelay=3m"
    result = json.loads((folder / "result.json").read_text())
    assert result["scenario"]["name"] == "step[startupDelay=3m]"
    assert "(--scenario-set spec.services[*].startupDelay=3m)" in result["scenario"]["description"]


@pytest.mark.parametrize("setting, message", [
    pytest.param(f"{DELAY}=30s,3m", "one value (this runs one scenario); setpoint sweep runs several", id="several"),
    pytest.param("spec.services[*].capacityPerPod=0", "spec.services[0].capacityPerPod", id="invalid"),
])
def test_cli_simulate_refuses_a_scenario_set_it_cannot_run(tmp_path, setting, message):
    proc = simulate("step", "--scenario-set", setting, "--no-report", cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_sweep_table_keeps_the_brackets_of_variant_names(scenarios, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CI", "1")
    other = tmp_path / "other.yaml"
    other.write_text(DEFAULT_POLICY.read_text().replace("name: setpoint-default", "name: other"))
    with pytest.raises(SystemExit) as info:
        main(["sweep", scenarios[0], "-p", str(DEFAULT_POLICY), "-p", str(other), "--set",
              "spec.scaling.metrics[0].target.averagePerReplica=80", "--no-hpa", "-j", "1", "--no-report",
              "-o", str(tmp_path / "out")])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "setpoint-default[averagePerReplica=80]" in out and "other[averagePerReplica=80]" in out


def test_a_multiple_scales_each_files_own_value(tmp_path):
    paths = write_scenarios(tmp_path, {"tiny-a": (1, 700)})
    second = tmp_path / "tiny-c.yaml"  # another file with another peak and pod cap
    second.write_text(open(paths[0]).read().replace("tiny-a", "tiny-c").replace("maxPods: 30", "maxPods: 12"))
    out = variants([paths[0], str(second)], "spec.services[*].maxPods=x0.5,x2")
    assert [s.name for s in out] == ["tiny-a[maxPods=x0.5]", "tiny-a[maxPods=x2]", "tiny-c[maxPods=x0.5]",
                                     "tiny-c[maxPods=x2]"]
    caps = [load_scenario_text(s.text, s.file).cluster.services[0].max_pods for s in out]
    assert caps == [15, 60, 6, 24]


def test_an_offset_moves_each_files_own_value(scenarios):
    out = variants(scenarios, "spec.services[*].load[0].step.at+=1m,2m")
    assert [s.name for s in out] == [f"tiny-{x}[at=+{d}]" for x in "ab" for d in ("1m", "2m")]
    assert [documents_data(s.text)[0]["spec"]["services"][0]["load"][0]["step"]["at"] for s in out] == ["4m", "5m"] * 2
    assert out[0].changes == "--scenario-set spec.services[*].load[0].step.at+=1m"


@pytest.mark.parametrize("name, expected", [
    pytest.param("step[startupDelay=3m]", "step-startupDelay=3m", id="short-as-it-was"),
    pytest.param("step[" + ",".join(f"metric{i}=requests_per_second" for i in range(12)) + "]", None,
                 id="many-settings-capped"),
])
def test_a_scenario_folder_name_fits_a_file_system(name, expected):
    """Several --scenario-set values made names past the 255 bytes a file system takes."""
    from simulators.scenario_set import MAX_FOLDER_NAME, folder_name

    folder = folder_name(name)
    if expected is not None:
        assert folder == expected
    else:
        assert len(folder) <= MAX_FOLDER_NAME and folder.startswith("step-metric0=requests_per_second")
        assert folder != folder_name(name.replace("metric11", "metric99"))  # two names, two folders
