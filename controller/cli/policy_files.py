"""Commands on policy files: ``validate``, ``schema`` and ``import``."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from controller.cli.common import (EXAMPLES_HELP, TARGET_LABELS_HELP, Refusal, fail, folder_refusals, make_out_folder,
                                   output_file, output_folder, overwrite_refusals, parse_target_labels, policy_path)
from controller.cli.root import app
from controller.policy import check_policies, policy_json_schema_text
from controller.policy.schema_export import SCHEMA_FILE
from controller.policy.summary import file_summary, plural


class ValidateFormat(str, Enum):
    """``setpoint validate --format`` and ``setpoint import --format``."""

    TEXT = "text"
    GITHUB = "github"
    JSON = "json"


@app.command(short_help="Check policy files and report every error.")
def validate(
    paths: Annotated[list[Path], typer.Argument(
        parser=policy_path, metavar="PATH",
        help="Policy files, or folders whose *.yaml and *.yml files are read (not recursively). " + EXAMPLES_HELP)],
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 on warnings too (a value that reads like the other unit of its query).")] = False,
    output: Annotated[ValidateFormat, typer.Option(
        "--format", case_sensitive=False,
        help="text: one line per problem; github: GitHub Actions annotations (each error and warning shows at "
             "its line in a pull request's diff); json: one document with every file, error and warning.")] = ValidateFormat.TEXT,
    target_labels: Annotated[Optional[list[str]], typer.Option(
        metavar="[KIND=]NS,NAME",
        help="As setpoint run's, for the warnings of a query whose series no target is matched to. "
             + TARGET_LABELS_HELP)] = None,
) -> None:
    """Check policy files: every field, every cross-field rule, and unique names across all files.

    All valid: exit 0 and print one line per file on stdout, e.g.

    \b
      web-rps.yaml: ok, 1 policy (web-rps: 2 targets, 1 metric, 0 health checks)

    Any invalid: exit 1 and print every error on stdout, one per line (then the
    valid documents' warnings), as

    \b
      FILE:LINE: FIELD.PATH: what was expected, got what was found

    in a file with several documents the path starts with "[doc N]". The error
    count goes to stderr.

    Warnings (valid, probably not what was meant: a latency target of 250 on a
    query in seconds) print after the summary lines as

    \b
      FILE:LINE: FIELD.PATH: warning: what looks wrong, and what was meant

    and leave the exit status 0, or 1 with --strict.

    A PATH that is neither a file, a folder nor the name of a shipped example: exit
    2 (usage error), listing the examples. --format github and json keep these exit
    codes.
    """
    try:
        labels = parse_target_labels(target_labels)
    except ValueError as exc:
        fail([str(exc)])
    check = check_policies(paths, labels)
    if output != ValidateFormat.TEXT:
        typer.echo(_github_lines(check) if output == ValidateFormat.GITHUB else _json_document(check))
        if check.errors or (strict and check.warnings):
            raise typer.Exit(1)
        return
    if check.errors:
        for error in check.errors:
            typer.echo(str(error))
        for warning in check.warnings:  # the valid documents' (an error elsewhere does not hide them)
            typer.echo(str(warning))
        files = len({e.file for e in check.errors})
        warned = f", {plural(len(check.warnings), 'warning')}" if check.warnings else ""
        typer.echo(f"{plural(len(check.errors), 'error')} in {plural(files, 'file')}{warned}", err=True)
        raise typer.Exit(1)
    for file in check.files:
        typer.echo(file_summary(file, check.policies_in(file)))
    for warning in check.warnings:
        typer.echo(str(warning))
    if check.warnings:
        typer.echo(plural(len(check.warnings), "warning"), err=True)
        if strict:
            raise typer.Exit(1)


def problems_json(errors, warnings) -> dict:
    """``{"errors": [...], "warnings": [...]}``: each FieldError as ``{file, line, field, message}``
    (and ``object`` where it is in one): validate's and import's --format json share these lists."""
    return {"errors": [e.to_json() for e in errors], "warnings": [w.to_json() for w in warnings]}


def github_commands(errors, warnings, command: str) -> list[str]:
    """GitHub Actions workflow commands, ``::error file=F,line=L,title=T::MESSAGE`` per error and
    ``::warning ...`` per warning; the title is ``setpoint COMMAND: FIELD``, the message names the
    object the problem is in, if any, as the text line does (``... [KIND NAMESPACE/NAME]``)."""
    def escape(text: str, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    def annotation(kind: str, p: dict) -> str:
        props = [f"file={escape(p['file'], True)}"] + ([f"line={p['line']}"] if p["line"] else [])
        title = f"setpoint {command}: {p['field']}" if p["field"] else f"setpoint {command}"
        props.append("title=" + escape(title, True))
        message = f"{p['message']} [{p['object']}]" if p.get("object") else p["message"]
        return f"::{kind} {','.join(props)}::{escape(message)}"

    both = problems_json(errors, warnings)
    return [annotation("error", p) for p in both["errors"]] + [annotation("warning", p) for p in both["warnings"]]


def _json_document(check) -> str:
    """Every file, error and warning of ``check`` as one JSON document (``ok``: no error). A valid
    file lists its policies whether or not another file has errors; a file with an error lists none."""
    import json

    return json.dumps({"ok": check.ok, "files": [{"file": f, "policies": check.names_in(f)} for f in check.files],
                       **problems_json(check.errors, check.warnings)}, indent=1)


def _github_lines(check) -> str:
    """Validate's --format github: the ok lines of valid files (whatever the others) as they are,
    then an annotation per error and warning (github_commands)."""
    def ok_line(f: str) -> str:  # beside another file's errors no policy is loaded: their names only
        if check.ok:
            return file_summary(f, check.policies_in(f))
        names = check.names_in(f)
        return f"{f}: ok, {plural(len(names), 'policy', 'policies')} ({', '.join(names)})"

    broken = {e.file for e in check.errors}
    lines = [ok_line(f) for f in check.files if f not in broken]
    return "\n".join(lines + github_commands(check.errors, check.warnings, "validate"))


@app.command(short_help="Print the JSON Schema of policy files.")
def schema(
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", parser=output_file, metavar="FILE", help=f"Write the schema to this file (the repository keeps it in {SCHEMA_FILE}).")] = None,
) -> None:
    """Print the JSON Schema of policy files (draft 2020-12), generated from the policy models.

    Point your editor at it, e.g. with a first line
    "# yaml-language-server: $schema=./setpoint-policy.schema.json".
    """
    text = policy_json_schema_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)


@app.command("import", short_help="Convert HPA and KEDA ScaledObject manifests into policies.")
def import_(
    files: Annotated[list[str], typer.Argument(
        metavar="FILE...", help="Manifest files or folders (their *.yaml and *.yml files); - reads stdin (kubectl get hpa -A -o yaml | setpoint import -).")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", parser=output_file, metavar="FILE", help="Write all policies to this file (default: stdout).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", parser=output_folder, metavar="FOLDER", help="Write one NAME.yaml per policy into this folder.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite files that exist (without it, nothing is written when one does).")] = False,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Convert the objects that can be and leave out each that cannot, saying why on "
                               "stderr (a cluster's `kubectl get hpa -A` may hold one that scales an Argo Rollout).")
    ] = False,
    output: Annotated[ValidateFormat, typer.Option(
        "--format", case_sensitive=False,
        help="As validate's, for CI. text: one line per problem on stderr; github: GitHub Actions annotations "
             "on stderr (each error and warning shows at its line in a pull request's diff); json: one document "
             "on stdout with every error, warning, skipped object and file written (needs --out or "
             "--out-dir: the policies do not share stdout with it).")] = ValidateFormat.TEXT,
) -> None:
    """Convert HorizontalPodAutoscalers (autoscaling/v1, v2) and KEDA ScaledObjects (prometheus,
    cpu and memory triggers) into Setpoint policies with preset: hpa.

    Lists (kind: List, as kubectl get -o yaml prints) are expanded; other kinds are skipped
    with a note on stderr. Every difference from the source is written as a comment above its
    policy. The output passes `setpoint validate`.

    Any object that cannot be converted: exit 1, nothing written, and every error of every
    object (each field at fault) on stderr, sorted by file and line, as validate prints them,
    then a count:

    \b
      FILE:LINE: FIELD.PATH: what was expected, got what was found [KIND NAMESPACE/NAME]
      4 errors in 3 of 40 objects: nothing written (--skip-invalid writes the 37 others)

    With --skip-invalid the others are written and each error is a note (it still refuses all
    when none converts, or a file cannot be read or is not YAML). What converts but would harm the cut-over (a ScaledObject whose
    deletion restores its workload's count from before KEDA) is a warning on stderr, after any
    errors, that leaves the exit status:

    \b
      FILE:LINE: FIELD.PATH: warning: what to do before the cut-over [KIND NAMESPACE/NAME]

    Exit 1 too when a file to write exists and --force is not given (nothing is written then: an
    imported file over a policy a team has since edited and reviewed would lose that work).

    --format github says each error and warning above as an annotation on stderr
    (::error file=F,line=L,title=setpoint import%3A FIELD::MESSAGE [KIND NAMESPACE/NAME]),
    the rest as in text. --format json prints one document on stdout and nothing on
    stderr: "ok", "files" (each file written, with its "policies"), "errors",
    "warnings" and "skipped", each problem {"file", "line", "field", "message",
    "object"}. Exit statuses are the same in every format. A refusal of where to write (a file that
    exists without --force, the -o file's folder missing) is a line on stderr in text and github, and
    in json one of the document's errors, its field the option, no line ("file": the path, or null).
    """
    from controller.errors import InvalidInput
    from controller.policy.import_files import ImportRefused, import_files
    from controller.runtime.files import write_text_atomic

    if out is not None and out_dir is not None:
        _refuse_where([Refusal("pass --out or --out-dir, not both", "--out-dir")], output)
    if output == ValidateFormat.JSON and out is None and out_dir is None:  # stdout holds the report
        raise typer.BadParameter("prints one JSON document on stdout: write the policies with --out FILE or "
                                 "--out-dir FOLDER", param_hint="'--format json'")
    if out is not None:
        _refuse_where(folder_refusals(out, "--out", out), output)
    try:
        result = import_files(files, stdin=sys.stdin.buffer, skip_invalid=skip_invalid)
    except ImportRefused as exc:  # every field at fault of every object, each at its file and line
        _refuse_import(exc.errors, exc.warnings, _refused_summary(exc, skip_invalid), output)
    except InvalidInput as exc:  # a file that cannot be read
        _refuse_import(exc.errors, [], None, output)
    if output != ValidateFormat.JSON:
        for note in result.skipped:
            typer.echo(f"note: {note}", err=True)
        # a harm at the cut-over: said here too, not only in the file's comments
        _say_on_stderr([], result.warnings, output)
    if out_dir is None:  # one file: it must stay within what the policy loader reads
        from controller.policy.yamlsrc import read_documents

        _, problems = read_documents(result.text)
        if problems:
            _refuse_where([Refusal(
                f"{plural(len(result.policies), 'policy', 'policies')} are more than one policy file holds "
                f"({problems[0].message.split(' (')[0]}); write one file per policy with --out-dir DIR, or "
                "import fewer objects at a time", "--out", None if out is None else str(out))], output, result)
    said = output != ValidateFormat.JSON  # json: the files written are in its document
    if out_dir is not None:
        paths = [out_dir / f"{policy.name}.yaml" for policy in result.policies]
        _refuse_where(overwrite_refusals(paths, force, "--out-dir"), output, result)
        _refuse_where(make_out_folder(out_dir, "--out-dir"), output, result)
        for path, policy in zip(paths, result.policies):
            write_text_atomic(path, policy.text)
            if said:
                typer.echo(f"wrote {path} ({policy.source})", err=True)
        written = [{"file": str(path), "policies": [policy.name]} for path, policy in zip(paths, result.policies)]
    elif out is not None:
        _refuse_where(overwrite_refusals([out], force, "--out"), output, result)
        write_text_atomic(out, result.text)
        if said:
            typer.echo(f"wrote {out}: {plural(len(result.policies), 'policy', 'policies')}", err=True)
        written = [{"file": str(out), "policies": [policy.name for policy in result.policies]}]
    else:
        typer.echo(result.text, nl=False)
    if output == ValidateFormat.JSON:
        typer.echo(_import_json(written, [], result.warnings, result.other_kinds + result.left_out))


def _refuse_where(refusals: list[Refusal], output: ValidateFormat, result=None) -> None:
    """Exit 1 on any refusal of where to write (nothing written): each a line on stderr (text,
    github: no file line to annotate), or json's one document on stdout with them as its errors,
    and ``result``'s warnings and skipped objects once the manifests were read (None: before)."""
    if not refusals:
        return
    if output != ValidateFormat.JSON:
        fail(refusals)
    warnings, skipped = ([], []) if result is None else (result.warnings, result.other_kinds + result.left_out)
    typer.echo(_import_json([], refusals, warnings, skipped))
    raise typer.Exit(1)


def _say_on_stderr(errors, warnings, output: ValidateFormat) -> None:
    """``errors`` then ``warnings`` on stderr: a line each (text), or an annotation each (github)."""
    if output == ValidateFormat.GITHUB:
        lines = github_commands(errors, warnings, "import")
    else:
        lines = [str(problem) for problem in [*errors, *warnings]]
    for line in lines:
        typer.echo(line, err=True)


def _refuse_import(errors, warnings, summary: str | None, output: ValidateFormat) -> NoReturn:
    """Exit 1 saying every error and warning in ``output``'s form: on stderr then ``summary`` (text,
    github), or one document on stdout (json)."""
    if output == ValidateFormat.JSON:
        typer.echo(_import_json([], errors, warnings, []))
    else:
        _say_on_stderr(errors, warnings, output)
        if summary:
            typer.echo(summary, err=True)
    raise typer.Exit(1)


def _import_json(written: list[dict], errors, warnings, skipped) -> str:
    """Import's --format json: validate's document (``ok``; ``files``: each file written with the
    policies in it; ``errors``; ``warnings``) and ``skipped``: what was left out (another kind, an
    object --skip-invalid left out), each entry as an error's."""
    import json

    return json.dumps({"ok": not errors, "files": written, **problems_json(errors, warnings),
                       "skipped": [s.to_json() for s in skipped]}, indent=1)


def _refused_summary(refused, skip_invalid: bool) -> str:
    """The last line of a refused import: ``5 errors in 2 of 40 objects: nothing written
    (--skip-invalid writes the 38 others)`` (the hint only where --skip-invalid would write some),
    or ``3 errors (2 in 1 of 4 objects, 1 outside them): nothing written``."""
    where = f"{refused.refused} of {plural(refused.objects, 'object')}"
    if refused.outside and refused.refused:
        where = f" ({len(refused.errors) - refused.outside} in {where}, {refused.outside} outside them)"
    else:
        where = f" in {where}" if refused.refused else ""
    warned = f", {plural(len(refused.warnings), 'warning')}" if refused.warnings else ""
    others = refused.skip_invalid_would_write
    hint = f" (--skip-invalid writes the {plural(others, 'other')})" if others and not skip_invalid else ""
    return f"{plural(len(refused.errors), 'error')}{where}{warned}: nothing written{hint}"
