"""The `setpoint validate` and `setpoint schema` commands: exit codes and output format."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.policy import policy_json_schema
from tests.policy.helpers import BASE, POLICIES, edit

ERROR_LINE = re.compile(r"^[^:]+:\d+: [\w.\[\] ]+: .+$")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_valid_files_exit_0_with_one_summary_line_each():
    result = run("validate", POLICIES / "web-rps.yaml", POLICIES / "checkout-health.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{POLICIES}/web-rps.yaml: ok, 1 policy (web-rps: 2 targets, 1 metric, 0 health checks)",
        f"{POLICIES}/checkout-health.yaml: ok, 2 policies (checkout: 2 targets, 1 metric, 2 health checks; "
        "payments-health: 1 target, 0 metrics, 2 health checks)",
    ]


def test_a_folder_is_validated_file_by_file():
    result = run("validate", POLICIES)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len([line for line in lines if ": ok, " in line]) == len(list(POLICIES.glob("*.yaml")))
    # the examples that select setpoint.io/autoscale=true are alternatives, not one set to run
    warned = [line for line in lines if ": ok, " not in line]
    assert warned and all("spec.targets.selector: warning: every Deployment of namespace default labelled "
                          "setpoint.io/autoscale=true is selected by this policy and by" in line for line in warned)
    assert f"{POLICIES}/hpa-cpu.yaml: ok, 1 policy (hpa-cpu: 1 target, 1 metric, 0 health checks, preset hpa)" \
        in result.stdout.splitlines()


def test_invalid_files_exit_1_with_one_error_per_line(tmp_path):
    bad = tmp_path / "shop.yaml"
    bad.write_text(edit(edit(BASE, "{up: 0.05,", "{up: -0.1,"), "interval: 15s", "interval: 15"))
    (tmp_path / "broken.yaml").write_text("a: [1,\nb: 2\n")
    result = run("validate", POLICIES / "web-rps.yaml", tmp_path)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{tmp_path}/broken.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence at line 1)",
        f"{tmp_path}/shop.yaml:6: spec.interval: expected a duration such as 30s, 5m, 1h30m or 500ms, "
        "got the bare number 15 (add a unit, e.g. 15s)",
        f"{tmp_path}/shop.yaml:14: spec.scaling.tolerance.up: must be >= 0, got -0.1",
    ]
    assert all(ERROR_LINE.match(line) for line in lines)
    assert result.stderr.strip() == "3 errors in 2 files"


def test_missing_path_exits_2():
    result = run("validate", "no/such/policy.yaml")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_no_traceback_for_garbage(tmp_path):
    (tmp_path / "x.yaml").write_bytes(b"\x00\xff{{{[[[:::")
    result = run("validate", tmp_path / "x.yaml")
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_validate_help_explains_output_and_exit_codes():
    result = run("validate", "--help")
    assert result.exit_code == 0
    for phrase in ("exit 0", "exit 1", "exit 2", "one per line", "[doc N]"):
        assert phrase in result.output


def test_schema_prints_the_json_schema():
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == policy_json_schema()


def test_schema_out_writes_the_file(tmp_path):
    out = tmp_path / "schema.json"
    result = run("schema", "--out", out)
    assert result.exit_code == 0
    assert json.loads(out.read_text()) == policy_json_schema()


@pytest.mark.parametrize("args", [pytest.param([], id="no-arguments"), pytest.param(["--help"], id="help")])
def test_top_level_help_lists_commands(args):
    result = run(*args)
    assert "validate" in result.output and "schema" in result.output


@pytest.mark.parametrize("first, second, warned", [
    pytest.param({"app": "web"}, {"app": "web"}, True, id="the-same-labels"),
    pytest.param({"app": "web"}, {"app": "web", "tier": "front"}, True, id="a-narrower-selector-inside-a-wider"),
    pytest.param({"app": "web"}, {"app": "api"}, False, id="disjoint-labels"),
    pytest.param({"app": "web", "tier": "back"}, {"app": "web", "tier": "front"}, False, id="neither-inside-the-other"),
])
def test_selectors_bound_to_meet_are_warned(tmp_path, first, second, warned):
    """Two policies whose selectors are bound to meet: at run time one of them leaves each such
    workload alone, which validate said nothing about."""
    def policy(name: str, labels: dict) -> str:
        shown = ", ".join(f"{k}: {v}" for k, v in labels.items())
        return (f"apiVersion: setpoint/v1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n"
                f"  targets: {{namespace: shop, selector: {{matchLabels: {{{shown}}}}}}}\n  interval: 15s\n"
                f"  replicas: {{min: 2, max: 20}}\n  scaling:\n    metrics:\n      - name: rps\n"
                f"        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))\n"
                f"        target: {{averagePerReplica: 85}}\n")
    (tmp_path / "a.yaml").write_text(policy("a", first))
    (tmp_path / "b.yaml").write_text(policy("b", second))
    result = run("validate", "--strict", tmp_path)
    assert result.exit_code == (1 if warned else 0), result.output
    expected = (f"{tmp_path}/b.yaml:5: spec.targets.selector: warning: every Deployment of namespace shop labelled "
                f"{','.join(f'{k}={v}' for k, v in sorted(second.items()))} is selected by this policy and by 'a' "
                f"({tmp_path}/a.yaml:5) too")
    assert any(line.startswith(expected) for line in result.stdout.splitlines()) is warned, result.output


BROKEN = ("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: bad}\nspec:\n"
          "  targets: {kind: Deployment, namespace: default, name: x}\n  replicas: {min: 5, max: 2}\n"
          "  scaling:\n    metrics:\n      - name: rps\n        query: sum by (namespace, deployment) (x_total)\n"
          "        target: {averagePerReplica: 85}\n")


@pytest.mark.parametrize("option", ["github", "GitHub"], ids=["github", "any-case"])
def test_validate_annotates_a_pull_request_on_github(tmp_path, option):
    """Workflow commands, ':' and ',' escaped in properties (GitHub's rules; a message keeps its
    ':'); the exit code is text's."""
    bad = tmp_path / "a,b.yaml"
    bad.write_text(BROKEN)
    result = run("validate", "--format", option, bad)
    assert result.exit_code == 1, result.output
    shown = str(bad).replace(",", "%2C")
    assert result.stdout.splitlines() == [
        f"::error file={shown},line=6,title=setpoint validate%3A spec.replicas.min::must be <= max (2), got 5",
        f"::warning file={shown},line=10,title=setpoint validate%3A spec.scaling.metrics[0].query::x_total is a "
        "counter (it only grows) and the query reads it without rate(): it never comes back down, so neither would "
        "the replicas; e.g. rate(x_total[1m])"]


def test_validate_on_github_names_the_valid_files_beside_a_broken_one(tmp_path):
    """The log of a CI run that failed on one file still says which files passed (before: only
    when every file was valid)."""
    good, bad = tmp_path / "a-web-rps.yaml", tmp_path / "b.yaml"
    good.write_text((POLICIES / "web-rps.yaml").read_text())
    bad.write_text(BROKEN)
    result = run("validate", "--format", "github", good, bad)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{good}: ok, 1 policy (web-rps") and lines[1].startswith(f"::error file={bad},")
    assert not any(line.startswith(f"{bad}: ok") for line in lines)


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)], ids=["warned", "strict"])
def test_validate_json_holds_every_file_error_and_warning(tmp_path, strict, code):
    good = tmp_path / "good.yaml"
    good.write_text(BROKEN.replace("min: 5", "min: 1"))
    result = run("validate", "--format", "json", *(["--strict"] if strict else []), good)
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["files"] == [{"file": str(good), "policies": ["bad"]}] and doc["errors"] == []
    [w] = doc["warnings"]
    assert (w["file"], w["line"], w["field"]) == (str(good), 10, "spec.scaling.metrics[0].query")
    assert w["message"].startswith("x_total is a counter")  # the kind is the list it is in
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN.replace("name: bad", "name: other").replace("name: x", "name: y"))
    doc = json.loads(run("validate", "--format", "json", good, bad).stdout)
    assert doc["ok"] is False and [e["field"] for e in doc["errors"]] == ["spec.replicas.min"]
    assert len(doc["warnings"]) == 2


@pytest.mark.parametrize("others, listed", [
    pytest.param({}, {}, id="alone"),
    pytest.param({"broken.yaml": "a: [1,\nb: 2\n"}, {"broken.yaml": []}, id="beside-invalid-yaml"),
    pytest.param({"empty.yaml": ""}, {"empty.yaml": []}, id="beside-an-empty-file"),
    pytest.param({"shop.yaml": BROKEN}, {"shop.yaml": []}, id="beside-a-field-error"),
    pytest.param({"web-copy.yaml": (POLICIES / "web-rps.yaml").read_text()}, {"web-copy.yaml": []},
                 id="beside-a-duplicate-name"),  # the error is the second file's: the first keeps its policy
    pytest.param({"multi.yaml": (POLICIES / "checkout-health.yaml").read_text()},
                 {"multi.yaml": ["checkout", "payments-health"]}, id="beside-a-valid-file-of-two-policies"),
])
def test_validate_json_lists_the_policies_of_each_valid_file_whatever_the_others(tmp_path, others, listed):
    """A valid file lists its policies when another file has errors (they were [] then); a file
    with an error lists none; the exit code stays 1 on any error."""
    good = tmp_path / "a-web-rps.yaml"
    good.write_text((POLICIES / "web-rps.yaml").read_text())
    for name, text in others.items():
        (tmp_path / name).write_text(text)
    result = run("validate", "--format", "json", good, *(tmp_path / name for name in others))
    doc = json.loads(result.stdout)
    assert doc["files"] == [{"file": str(good), "policies": ["web-rps"]}] + [
        {"file": str(tmp_path / name), "policies": policies} for name, policies in listed.items()]
    errors = any(not policies for policies in listed.values())
    assert result.exit_code == (1 if errors else 0) and doc["ok"] is not errors, result.output


def test_github_annotations_escape_percent_and_newlines():
    from types import SimpleNamespace

    from controller.cli.policy_files import _github_lines
    from controller.errors import FieldError

    check = SimpleNamespace(ok=False, files=["p.yaml"], policies_in=lambda f: [],
                            errors=[FieldError("p.yaml", None, "", "100% sure\nsecond line")], warnings=[])
    assert _github_lines(check) == "::error file=p.yaml,title=setpoint validate::100%25 sure%0Asecond line"
