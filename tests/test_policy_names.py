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


def test_simulate_takes_a_shipped_example_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no policies/ folder here
    result = CliRunner().invoke(app, ["simulate", "steady", "-p", "web-rps", "-b", "oracle", "--no-frontier",
                                      "--no-report", "-o", "out"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "result.json").is_file()
    wrong = CliRunner().invoke(app, ["simulate", "steady", "-p", "web-rpss"])
    assert wrong.exit_code == 2 and "web-rpss does not exist, and no example policy" in wrong.output
