"""The ``setpoint`` command: the composition root. Commands parse arguments, call the layers
below and print; no logic of their own lives here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.policy import check_policies, policy_json_schema_text
from controller.policy.schema_export import SCHEMA_FILE
from controller.policy.summary import file_summary, plural

app = typer.Typer(
    name="setpoint",
    help="Setpoint: an autoscaling and self-healing controller driven by YAML policies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(
        exists=True, metavar="PATH",
        help="Policy files, or folders whose *.yaml and *.yml files are read (not recursively).")],
) -> None:
    """Check policy files: every field, every cross-field rule, and unique names across all files.

    All valid: exit 0 and print one line per file on stdout, e.g.
    "policies/web-rps.yaml: ok, 1 policy (web-rps: 2 targets, 1 metric, 0 health checks)".

    Any invalid: exit 1 and print every error on stdout, one per line, as
    "FILE:LINE: FIELD.PATH: what was expected, got what was found";
    in a file with several documents the path starts with "\\[doc N]".
    The error count goes to stderr.

    A PATH that does not exist: exit 2 (usage error).
    """
    check = check_policies(paths)
    if check.errors:
        for error in check.errors:
            typer.echo(str(error))
        files = len({e.file for e in check.errors})
        typer.echo(f"{plural(len(check.errors), 'error')} in {plural(files, 'file')}", err=True)
        raise typer.Exit(1)
    for file in check.files:
        typer.echo(file_summary(file, check.policies_in(file)))


@app.command()
def schema(
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help=f"Write the schema to this file (the repository keeps it in {SCHEMA_FILE}).")] = None,
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


if __name__ == "__main__":
    app()
