"""`-p` takes a policy file, or the name of an example that ships with Setpoint, so the docs'
commands (`-p policies/setpoint-healing.yaml`) work from an installed wheel as from a checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from controller.bundled import bundled_policy, bundled_policy_names
from controller.cli import app
from controller.cli.common import policy_file, policy_path


@pytest.mark.parametrize("given, expected", [
    pytest.param("setpoint-healing", "bundled:setpoint-healing.yaml", id="a-bare-name"),
    pytest.param("setpoint-healing.yaml", "bundled:setpoint-healing.yaml", id="a-file-name"),
    pytest.param("policies/web-rps.yaml", "bundled:web-rps.yaml", id="as-the-docs-write-it"),
    pytest.param("web-rps.yaml", "here:web-rps.yaml", id="a-file-here-wins"),
    pytest.param("mine/web-rps.yaml", "error", id="another-folder-is-never-the-bundled-one"),
    pytest.param("setpoint-healing.yml", "error", id="no-example-of-that-name"),
    pytest.param("nosuch", "error", id="a-wrong-name"),
])
def test_a_policy_option_takes_a_file_or_a_shipped_example(tmp_path, monkeypatch, given, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web-rps.yaml").write_text("# a team's own copy\n")
    if expected == "error":
        with pytest.raises(typer.BadParameter) as caught:
            policy_file(given)
        assert str(caught.value) == (f"{given} does not exist, and no example policy that ships with Setpoint is "
                                     f"named so (they are: {', '.join(bundled_policy_names())})")
        return
    where, name = expected.split(":")
    found = policy_file(given)
    assert found.resolve() == (bundled_policy(name) if where == "bundled" else tmp_path / name).resolve()


def test_a_folder_is_a_policy_path_not_a_policy_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies").mkdir()
    assert policy_path("policies") == Path("policies")
    with pytest.raises(typer.BadParameter, match="policies is a folder: give one policy file"):
        policy_file("policies")


@pytest.mark.parametrize("given", ["policies/", "policies", "./policies"])
def test_the_docs_policies_folder_where_there_is_none_says_where_the_examples_are(tmp_path, monkeypatch, given):
    """The README's first command, `setpoint validate policies/`, from a wheel (no policies/ here):
    the error said no example is named so, listing the files; it says where they are and how to copy them."""
    monkeypatch.chdir(tmp_path)
    folder = bundled_policy("")
    with pytest.raises(typer.BadParameter) as caught:
        policy_path(given)
    assert str(caught.value) == (f"{given} does not exist here. The example policies that ship with Setpoint are in "
                                 f"{folder}: name one ({', '.join(bundled_policy_names())}), or copy them to edit: "
                                 f"cp -r {folder} policies")
    result = CliRunner().invoke(app, ["validate", given], env={"COLUMNS": "1000"})
    assert result.exit_code == 2 and f"cp -r {folder} policies" in " ".join(result.output.split()), result.output


def test_simulate_takes_a_shipped_example_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no policies/ folder here
    result = CliRunner().invoke(app, ["simulate", "steady", "-p", "web-rps", "-b", "oracle", "--no-frontier",
                                      "--no-report", "-o", "out"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "result.json").is_file()
    wrong = CliRunner().invoke(app, ["simulate", "steady", "-p", "web-rpss"])
    assert wrong.exit_code == 2 and "web-rpss does not exist, and no example policy" in wrong.output


# --- every command that takes policy files resolves names alike ------------------------------------

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = ["--prometheus", "http://127.0.0.1:9"]
#: Every option and argument that takes policy files: (command, its command line with {P} for the
#: policy given to it, the parameter that receives it).
POLICY_PARAMETERS = [
    ("validate", ["validate", "{P}"], "paths"),
    ("run", ["run", "--policies", "{P}", *PROMETHEUS], "policies"),
    ("simulate", ["simulate", "-p", "{P}"], "policy"),
    ("simulate", ["simulate", "--hpa-policy", "{P}"], "hpa_policy"),
    ("warm", ["warm", "-p", "{P}"], "policy"),
    ("warm", ["warm", "--hpa-policy", "{P}"], "hpa_policy"),
    ("sweep", ["sweep", "steady", "-p", "{P}"], "policy"),
    ("sweep", ["sweep", "steady", "--hpa-policy", "{P}"], "hpa_policy"),
    ("tune", ["tune", "{P}", "-s", "steady"], "policy"),
    ("tune", ["tune", "web-rps", "-s", "steady", "--hpa-policy", "{P}"], "hpa_policy"),
    ("backtest", ["backtest", "-p", "{P}", *PROMETHEUS, "--from", "now-1h"], "policy"),
    ("backtest", ["backtest", "-p", "web-rps", *PROMETHEUS, "--from", "now-1h", "--compare", "{P}"], "compare"),
]
PARAMETER_IDS = [f"{c}-{p}" for c, _, p in POLICY_PARAMETERS]
WHERE = [pytest.param(True, id="from-the-repo"), pytest.param(False, id="elsewhere-no-policies-folder")]


def command_of(name: str):
    import click
    import typer.main

    group = typer.main.get_command(app)
    return group.get_command(click.Context(group), name)


def parsed(args: list[str], given: str) -> dict:
    """The parameters of the command line ``args`` (``{P}``: ``given``), parsed and not run."""
    args = [given if a == "{P}" else a for a in args]
    return command_of(args[0]).make_context(args[0], args[1:]).params


def in_folder(monkeypatch, tmp_path, repo: bool) -> None:
    """Work from the repository (its policies/ folder there) or from an empty folder (a wheel's case)."""
    monkeypatch.chdir(REPO if repo else tmp_path)
    assert (Path("policies") / "web-rps.yaml").is_file() == repo


@pytest.mark.parametrize("repo", WHERE)
@pytest.mark.parametrize("given", ["web-rps", "web-rps.yaml", "policies/web-rps.yaml"])
@pytest.mark.parametrize("command, args, parameter", POLICY_PARAMETERS, ids=PARAMETER_IDS)
def test_every_policy_parameter_takes_a_shipped_example_by_name(tmp_path, monkeypatch, repo, given, command, args,
                                                                 parameter):
    """validate, run --policies and backtest --compare refused these names (validate, run: exit 2,
    'does not exist'; --compare: exit 1) while -p of simulate, sweep and backtest took them."""
    in_folder(monkeypatch, tmp_path, repo)
    value = parsed(args, given)[parameter]
    value = value[0] if isinstance(value, list) else value
    assert Path(value).resolve() == bundled_policy("web-rps.yaml").resolve()


@pytest.mark.parametrize("repo", WHERE)
@pytest.mark.parametrize("command, args, parameter", POLICY_PARAMETERS, ids=PARAMETER_IDS)
def test_a_wrong_name_gets_the_same_usage_error_everywhere(tmp_path, monkeypatch, repo, command, args, parameter):
    in_folder(monkeypatch, tmp_path, repo)
    line = [a.replace("{P}", "web-rpss") for a in args]
    result = CliRunner().invoke(app, line, env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    assert ("web-rpss does not exist, and no example policy that ships with Setpoint is named so (they are: "
            f"{', '.join(bundled_policy_names())})") in " ".join(result.output.split())


def test_the_table_holds_every_parameter_that_takes_policy_files():
    """A parameter naming policies (or --compare) without the one resolver would take no names."""
    import click
    import typer.main

    from controller.cli.backtest import compare_option

    group = typer.main.get_command(app)
    found, unresolved = set(), []
    for name in group.list_commands(click.Context(group)):
        for param in getattr(command_of(name), "params", []):
            parser = getattr(param.type_descriptor.parameter_info, "parser", None)
            if parser in (policy_path, policy_file, compare_option):
                found.add((name, param.name))
            elif "polic" in param.name or param.name == "compare":
                unresolved.append((name, param.name))
    assert found == {(c, p) for c, _, p in POLICY_PARAMETERS} and not unresolved, unresolved


@pytest.mark.parametrize("command", sorted({c for c, _, _ in POLICY_PARAMETERS}))
def test_help_says_that_a_shipped_example_name_is_taken(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    text = " ".join(result.output.split())
    assert text.count("the name of an example that ships with Setpoint") == \
        sum(c == command for c, _, _ in POLICY_PARAMETERS), text


@pytest.mark.parametrize("repo, shown", [pytest.param(True, "policies/setpoint-healing.yaml", id="from-the-repo"),
                                         pytest.param(False, str(bundled_policy("setpoint-healing.yaml")),
                                                      id="elsewhere-no-policies-folder")])
def test_validate_checks_a_shipped_example_by_name(tmp_path, monkeypatch, repo, shown):
    in_folder(monkeypatch, tmp_path, repo)
    result = CliRunner().invoke(app, ["validate", "policies/setpoint-healing.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{shown}: ok, 1 policy (setpoint-healing:")


@pytest.mark.parametrize("given, example", [
    pytest.param("setpoint-healing", True, id="a-shipped-example"),
    pytest.param("mine.yaml", False, id="a-file-of-ones-own"),
    # a path to the shipped file, given as it is: the user chose that file (tests run the checkout's)
    pytest.param(str(bundled_policy("setpoint-healing.yaml")), False, id="the-examples-file-by-its-path")])
def test_run_logs_that_it_runs_a_shipped_example(tmp_path, given, example):
    """An operator must see at start-up that the policy running is a shipped example, not theirs.
    (The run then stops at the kubeconfig: nothing else is needed here.) In-process, after a
    command that resolved the example by name: what one command resolved is not the next one's."""
    import json
    import os

    from tests.support.cli_inproc import run_cli

    (tmp_path / "mine.yaml").write_text(bundled_policy("setpoint-healing.yaml").read_text())
    run_once = ("run", "--once", *PROMETHEUS, "--kubeconfig", os.devnull)
    earlier = run_cli(*run_once, "--policies", "setpoint-healing", cwd=tmp_path)
    assert "ships with Setpoint" in earlier.stderr, earlier.stderr
    proc = run_cli(*run_once, "--policies", given, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    first = json.loads(proc.stderr.splitlines()[0]) if proc.stderr.startswith("{") else {}
    shipped = bundled_policy("setpoint-healing.yaml")
    if example:
        assert first["level"] == "warning" and first["file"] == str(shipped), proc.stderr
        assert first["message"] == (f"{shipped} is the example policy setpoint-healing.yaml that ships with Setpoint, "
                                    "not a file of yours")
    else:
        assert "ships with Setpoint" not in proc.stderr, proc.stderr
