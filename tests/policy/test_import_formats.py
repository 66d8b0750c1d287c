"""`setpoint import --format text|json|github`, for CI: the errors and warnings `import` says,
in validate's JSON entries and GitHub Actions annotations (one formatter for both commands),
each naming its object; json alone on stdout, the exit status as in text."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from controller.cli import app
from tests.policy.test_import_every_error import FOUR_BAD_FIELDS, GOOD, KEDA_RESTORES

API = "HorizontalPodAutoscaler shop/api"
QUEUE = "ScaledObject shop/queue"
RESTORES = ("advanced.restoreToOriginalReplicaCount true: deleting this ScaledObject scales Deployment shop/queue "
            "back to the replicas it had before KEDA scaled it, not the count KEDA left, before Setpoint takes it "
            "over: set it to false (kubectl apply) before the cut-over")
# FOUR_BAD_FIELDS's problems: (line, field, message)
FOUR = [(7, "spec.maxReplicas", "must be >= min replicas (5), got 2"),
        (11, "spec.behavior.scaleDown.stabilizationWindowSeconds", "expected 0..3600 seconds, got 7200"),
        (13, "spec.behavior.scaleDown.policies[0].value", "expected a positive integer, got 0"),
        (13, "spec.behavior.scaleDown.policies[0].periodSeconds", "expected 1..1800 seconds, got 4000")]


def entry(file: str, line: int, field_: str, message: str, obj: str) -> dict:
    return {"file": file, "line": line, "field": field_, "message": message, "object": obj}


def shifted(file: str, by: int) -> list[dict]:
    """FOUR as JSON entries of ``file``, ``by`` lines further down."""
    return [entry(file, line + by, f, m, API) for line, f, m in FOUR]


def annotation(kind: str, file: str, line: int, field_: str, message: str, obj: str) -> str:
    return f"::{kind} file={file},line={line},title=setpoint import%3A {field_}::{message} [{obj}]"


@dataclass
class JsonCase:
    files: dict[str, str]
    args: list[str]  # after `import --format json`
    document: dict  # stdout, parsed
    code: int = 1
    stdin: str | None = None
    written: list[str] = field(default_factory=list)  # files in out/ afterwards


JSON_CASES = [
    pytest.param(JsonCase({"mixed.yaml": FOUR_BAD_FIELDS + "---\n" + KEDA_RESTORES}, ["mixed.yaml", "--out-dir", "out"],
                          {"ok": False, "files": [], "errors": shifted("mixed.yaml", 0),
                           "warnings": [entry("mixed.yaml", 21, "spec.advanced.restoreToOriginalReplicaCount",
                                              RESTORES, QUEUE)], "skipped": []}),
                 id="errors-and-a-warning-each-naming-its-object-nothing-written"),
    pytest.param(JsonCase({"queue.yaml": KEDA_RESTORES}, ["queue.yaml", "--out-dir", "out"],
                          {"ok": True, "files": [{"file": "out/queue.yaml", "policies": ["queue"]}], "errors": [],
                           "warnings": [entry("queue.yaml", 7, "spec.advanced.restoreToOriginalReplicaCount",
                                              RESTORES, QUEUE)], "skipped": []}, code=0, written=["queue.yaml"]),
                 id="a-warning-only-and-the-file-written"),
    pytest.param(JsonCase({}, ["-", "-o", "out/all.yaml"],
                          {"ok": True, "files": [{"file": "out/all.yaml", "policies": ["cart", "queue"]}],
                           "errors": [], "warnings": [entry("<stdin>", 15, "spec.advanced.restoreToOriginalReplicaCount",
                                                            RESTORES, QUEUE)], "skipped": []},
                          code=0, stdin=GOOD + "---\n" + KEDA_RESTORES, written=["all.yaml"]),
                 id="stdin-into-one-file-lists-its-policies"),
    pytest.param(JsonCase({"mixed.yaml": GOOD + "---\n" + FOUR_BAD_FIELDS + "---\nkind: Service\n"},
                          ["mixed.yaml", "--out-dir", "out", "--skip-invalid"],
                          {"ok": True, "files": [{"file": "out/cart.yaml", "policies": ["cart"]}], "errors": [],
                           "warnings": [],
                           "skipped": [{"file": "mixed.yaml", "line": 23, "field": "",
                                        "message": "skipped: expected kind HorizontalPodAutoscaler or ScaledObject, "
                                                   "got 'Service'"}] + shifted("mixed.yaml", 8)},
                          code=0, written=["cart.yaml"]),
                 id="skip-invalid-lists-what-it-left-out"),
]


@pytest.mark.parametrize("case", JSON_CASES)
def test_import_format_json_is_one_document_on_stdout(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()  # for -o out/all.yaml too
    for name, text in case.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "--format", "json", *case.args], input=case.stdin)
    assert result.exit_code == case.code, result.output
    assert json.loads(result.stdout) == case.document
    assert result.stderr == ""  # a tool reads stdout; nothing else is said
    assert sorted(p.name for p in (tmp_path / "out").glob("*")) == case.written


@dataclass
class GithubCase:
    files: dict[str, str]
    args: list[str]  # after `import --format github`
    said: list[str]  # stderr, every line
    code: int = 1
    stdout_starts: str = ""  # "" : stdout empty


GITHUB_CASES = [
    pytest.param(GithubCase({"mixed.yaml": FOUR_BAD_FIELDS + "---\n" + KEDA_RESTORES}, ["mixed.yaml"], [
        annotation("error", "mixed.yaml", 7, "spec.maxReplicas", "must be >= min replicas (5), got 2", API),
        annotation("error", "mixed.yaml", 11, "spec.behavior.scaleDown.stabilizationWindowSeconds",
                   "expected 0..3600 seconds, got 7200", API),
        annotation("error", "mixed.yaml", 13, "spec.behavior.scaleDown.policies[0].value",
                   "expected a positive integer, got 0", API),
        annotation("error", "mixed.yaml", 13, "spec.behavior.scaleDown.policies[0].periodSeconds",
                   "expected 1..1800 seconds, got 4000", API),
        annotation("warning", "mixed.yaml", 21, "spec.advanced.restoreToOriginalReplicaCount", RESTORES, QUEUE),
        "4 errors in 1 of 2 objects, 1 warning: nothing written (--skip-invalid writes the 1 other)"]),
        id="errors-then-the-warning-annotated-then-the-count"),
    pytest.param(GithubCase({"queue.yaml": KEDA_RESTORES}, ["queue.yaml"], [
        annotation("warning", "queue.yaml", 7, "spec.advanced.restoreToOriginalReplicaCount", RESTORES, QUEUE)],
        code=0, stdout_starts="# Imported from ScaledObject shop/queue by `setpoint import`."),
        id="a-warning-only-annotated-the-policy-on-stdout"),
]


@pytest.mark.parametrize("case", GITHUB_CASES)
def test_import_format_github_annotates_each_error_and_warning(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    for name, text in case.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", "--format", "github", *case.args])
    assert result.exit_code == case.code, result.output
    assert result.stderr.splitlines() == case.said
    assert result.stdout.startswith(case.stdout_starts) and bool(result.stdout) == bool(case.stdout_starts)


def test_import_format_json_needs_a_file_for_the_policies(tmp_path, monkeypatch):
    """Policy YAML and the JSON report never share stdout: refused before anything is read."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["import", "--format", "json", "missing.yaml"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "'--format json': prints one JSON document on stdout: write the policies with --out FILE or " \
           "--out-dir FOLDER" in result.stderr


def test_validate_json_has_no_object_field():
    """One formatter for both: an entry names an object only where the problem is in one."""
    from controller.cli.policy_files import github_commands, problems_json
    from controller.errors import FieldError

    plain, in_object = FieldError("p.yaml", 3, "spec.x", "bad"), FieldError("m.yaml", 4, "spec.y", "worse", object="K a/b")
    assert problems_json([plain], [in_object]) == {
        "errors": [{"file": "p.yaml", "line": 3, "field": "spec.x", "message": "bad"}],
        "warnings": [{"file": "m.yaml", "line": 4, "field": "spec.y", "message": "worse", "object": "K a/b"}]}
    assert github_commands([plain], [in_object], "validate") == [
        "::error file=p.yaml,line=3,title=setpoint validate%3A spec.x::bad",
        "::warning file=m.yaml,line=4,title=setpoint validate%3A spec.y::worse [K a/b]"]


def refused(field_: str, file: str | None, message: str) -> dict:
    """A refusal of where to write as a --format json error: the option its field, no line."""
    return {"file": file, "line": None, "field": field_, "message": message}


RESTORED = entry("queue.yaml", 7, "spec.advanced.restoreToOriginalReplicaCount", RESTORES, QUEUE)
# name: (files made first ({path: text}; a path ending in / is a folder), args after `import --format json`,
#        the errors ({TMP}: the test's folder), the warnings)
WHERE_ROWS = {
    "the-o-files-folder-missing": ({"cart.yaml": GOOD}, ["cart.yaml", "-o", "missing/all.yaml"],
                                   [refused("--out", "missing/all.yaml", "missing/all.yaml: no such folder "
                                            "{TMP}/missing; create it or name another file")], []),
    "the-o-file-exists": ({"cart.yaml": GOOD, "all.yaml": "kept\n"}, ["cart.yaml", "-o", "all.yaml"],
                          [refused("--out", "all.yaml", "all.yaml exists; pass --force to overwrite it, or name "
                                   "another file")], []),
    "o-beside-out-dir": ({"cart.yaml": GOOD}, ["cart.yaml", "-o", "all.yaml", "--out-dir", "out"],
                         [refused("--out-dir", None, "pass --out or --out-dir, not both")], []),
    "a-policy-file-in-out-dir-exists-the-warning-kept": (
        {"queue.yaml": KEDA_RESTORES, "out/": "", "out/queue.yaml": "kept\n"}, ["queue.yaml", "--out-dir", "out"],
        [refused("--out-dir", "out/queue.yaml", "out/queue.yaml exists; pass --force to overwrite it, or name "
                 "another folder")], [RESTORED]),
    "out-dir-is-a-file": ({"cart.yaml": GOOD, "taken": "kept\n"}, ["cart.yaml", "--out-dir", "taken"],
                          [refused("--out-dir", "taken", "taken is a file, not a folder; name a folder for the "
                                   "results")], []),
}


@pytest.mark.parametrize("name", list(WHERE_ROWS))
def test_import_format_json_says_a_refusal_of_where_to_write_in_its_document(tmp_path, monkeypatch, name):
    """Refusals of where to write were text on stderr, stdout empty, whatever --format said."""
    made, args, errors, warnings = WHERE_ROWS[name]
    monkeypatch.chdir(tmp_path)
    for path, text in made.items():
        if path.endswith("/"):
            (tmp_path / path).mkdir()
        else:
            (tmp_path / path).write_text(text, encoding="utf-8")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["import", "--format", "json", *args])
    assert result.exit_code == 1, result.output
    assert result.stderr == "", result.stderr
    errors = [{**e, "message": e["message"].replace("{TMP}", str(tmp_path))} for e in errors]
    assert json.loads(result.stdout) == {"ok": False, "files": [], "errors": errors, "warnings": warnings,
                                         "skipped": []}
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written
    assert all((tmp_path / p).read_text() == t for p, t in made.items() if not p.endswith("/"))


@pytest.mark.parametrize("name", list(WHERE_ROWS))
def test_import_format_text_says_the_same_refusal_on_stderr(tmp_path, monkeypatch, name):
    made, args, errors, _ = WHERE_ROWS[name]
    monkeypatch.chdir(tmp_path)
    for path, text in made.items():
        if path.endswith("/"):
            (tmp_path / path).mkdir()
        else:
            (tmp_path / path).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", *args])
    assert result.exit_code == 1 and result.stdout == "", result.output
    said = [(f"{e['field']}: " if e["file"] else "") + e["message"].replace("{TMP}", str(tmp_path)) for e in errors]
    assert result.stderr.splitlines()[-len(said):] == said, result.stderr
