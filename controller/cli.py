"""The ``setpoint`` command: the composition root. Commands parse arguments, call the layers
below and print; no logic of their own lives here."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.bundled import bundled_policy
from controller.policy import check_policies, policy_json_schema_text
from controller.policy.schema_export import SCHEMA_FILE
from controller.policy.summary import file_summary, plural

app = typer.Typer(
    name="setpoint",
    help="Setpoint: an autoscaling and self-healing controller driven by YAML policies.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

EXIT_INVALID = 1  # bad input: the message says what to change
EXIT_BUG = 70  # EX_SOFTWARE: an exception Setpoint did not expect
_options = {"debug": False}


def main(argv: list[str] | None = None) -> None:
    """The ``setpoint`` command: any error becomes one line on stderr (``--debug``: the traceback)."""
    import warnings

    _options["debug"] = False
    warnings.formatwarning = _warning_line
    try:
        app(args=argv, prog_name="setpoint")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: no traceback for users
        if _options["debug"]:
            raise
        code, line = describe_error(exc)
        print(f"setpoint: {line}", file=sys.stderr)
        sys.exit(code)


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the command's other messages read: ``setpoint: warning: ...`` (``--debug``:
    with where it was raised)."""
    where = f" ({category.__name__} at {filename}:{lineno})" if _options["debug"] else ""
    return f"setpoint: warning: {message}{where}\n"


def describe_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception that reached the top: bad input is 1, a bug is 70."""
    from controller.errors import InvalidInput, SetpointError

    if isinstance(exc, InvalidInput) and exc.errors:
        more = len(exc.errors) - 1
        return EXIT_INVALID, _one_line(str(exc.errors[0])) + (f" (and {more} more)" if more else "")
    if isinstance(exc, SetpointError):
        return EXIT_INVALID, _one_line(str(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_INVALID, _one_line(f"{where}{exc.strerror or exc}: check the path and its permissions")
    if isinstance(exc, UnicodeError):
        return EXIT_INVALID, _one_line(f"not UTF-8 text ({exc}): save the file as UTF-8")
    if isinstance(exc, MemoryError):
        return EXIT_INVALID, "out of memory: the input asks for more than this machine has; make it smaller"
    return EXIT_BUG, _one_line(f"unexpected error {type(exc).__name__}: {exc}. This is a bug in Setpoint; "
                               "rerun with --debug (setpoint --debug ...) and report the traceback")


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("setpoint")
        except PackageNotFoundError:  # a source checkout that was never installed
            from controller import __version__ as number
        typer.echo(f"setpoint {number}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the Python traceback of any error.")] = False,
) -> None:
    """Setpoint: an autoscaling and self-healing controller driven by YAML policies."""
    _options["debug"] = debug


@app.command(short_help="Check policy files and report every error.")
def validate(
    paths: Annotated[list[Path], typer.Argument(
        exists=True, metavar="PATH",
        help="Policy files, or folders whose *.yaml and *.yml files are read (not recursively).")],
) -> None:
    """Check policy files: every field, every cross-field rule, and unique names across all files.

    All valid: exit 0 and print one line per file on stdout, e.g.

    \b
      web-rps.yaml: ok, 1 policy (web-rps: 2 targets, 1 metric, 0 health checks)

    Any invalid: exit 1 and print every error on stdout, one per line, as

    \b
      FILE:LINE: FIELD.PATH: what was expected, got what was found

    in a file with several documents the path starts with "[doc N]". The error
    count goes to stderr.

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


@app.command(short_help="Print the JSON Schema of policy files.")
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


@app.command("import", short_help="Convert HPA and KEDA ScaledObject manifests into policies.")
def import_(
    files: Annotated[list[str], typer.Argument(
        metavar="FILE...", help="Manifest files; - reads stdin (kubectl get hpa -A -o yaml | setpoint import -).")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", dir_okay=False, help="Write all policies to this file (default: stdout).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out-dir", file_okay=False, help="Write one NAME.yaml per policy into this folder.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite files that exist (without it, nothing is written when one does).")] = False,
) -> None:
    """Convert HorizontalPodAutoscalers (autoscaling/v1, v2) and KEDA ScaledObjects (prometheus,
    cpu and memory triggers) into Setpoint policies with preset: hpa.

    Lists (kind: List, as kubectl get -o yaml prints) are expanded; other kinds are skipped
    with a note on stderr. Every difference from the source is written as a comment above its
    policy. The output passes `setpoint validate`. Exit 1 when an object cannot be converted, or
    when a file to write exists and --force is not given (nothing is written then: an imported
    file over a policy a team has since edited and reviewed would lose that work).
    """
    from controller.errors import InvalidInput
    from controller.policy.import_files import import_files
    from controller.runtime.files import write_text_atomic

    if out is not None and out_dir is not None:
        _fail(["pass --out or --out-dir, not both"])
    try:
        result = import_files(files, stdin=sys.stdin.buffer)
    except InvalidInput as exc:  # every object that cannot be converted, each at its file and line
        _fail(exc.errors)
    for note in result.skipped:
        typer.echo(f"note: {note}", err=True)
    if out_dir is None:  # one file: it must stay within what the policy loader reads
        from controller.policy.yamlsrc import read_documents

        _, problems = read_documents(result.text)
        if problems:
            _fail([f"{plural(len(result.policies), 'policy', 'policies')} are more than one policy file holds "
                   f"({problems[0].message.split(' (')[0]}); write one file per policy with --out-dir DIR, or "
                   "import fewer objects at a time"])
    if out_dir is not None:
        paths = [out_dir / f"{policy.name}.yaml" for policy in result.policies]
        _refuse_overwrite(paths, force, "--out-dir")
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, policy in zip(paths, result.policies):
            write_text_atomic(path, policy.text)
            typer.echo(f"wrote {path} ({policy.source})", err=True)
    elif out is not None:
        _refuse_overwrite([out], force, "--out")
        write_text_atomic(out, result.text)
        typer.echo(f"wrote {out}: {plural(len(result.policies), 'policy', 'policies')}", err=True)
    else:
        typer.echo(result.text, nl=False)


DEFAULT_SIM_POLICY = "setpoint-default.yaml"  # bundled policies (controller.bundled)
DEFAULT_HPA_POLICY = "hpa-cpu.yaml"
#: Seconds between redraws of `setpoint simulate`'s progress bars.
PROGRESS_REDRAW_S = 0.1
#: `setpoint simulate` says it is compiling its kernels when loading them takes longer than this.
COMPILE_NOTICE_S = 3.0


def _fail(errors: list) -> None:
    for error in errors:
        typer.echo(str(error), err=True)
    raise typer.Exit(1)


def _refuse_overwrite(paths: list[Path], force: bool, option: str) -> None:
    """Exit 1 naming each of ``paths`` that exists, unless ``force``: called before anything is
    written (or computed), so that a refusal leaves every file as it was."""
    existing = [] if force else [p for p in paths if p.exists() or p.is_symlink()]
    if existing:
        _fail([f"{option}: {p} exists; pass --force to overwrite it, or name another "
               f"{'folder' if option == '--out-dir' else 'file'}" for p in existing])


def _out_folder(out: Path, option: str = "--out") -> Path:
    """``out``, created, or exit 1 saying why it cannot hold the results: checked before a run,
    whose results would otherwise be lost after it finished."""
    import os

    if out.exists() and not out.is_dir():
        _fail([f"{option}: {out} is a file, not a folder; name a folder for the results"])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail([f"{option}: {out}: cannot create the folder: {exc.strerror or exc}"])
    if not os.access(out, os.W_OK | os.X_OK):
        _fail([f"{option}: {out}: cannot write in this folder"])
    return out


LOG_LEVELS = ("debug", "info", "warning", "error")


def _log_level(value: str) -> str:
    """``--log-level`` as logging reads it (``INFO``), or exit 1 naming the levels."""
    if value.strip().lower() not in LOG_LEVELS:
        _fail([f"--log-level: expected {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}, got {value!r}"])
    return value.strip().upper()


def _one_policy(path: Path, shown: str | None = None):
    """The one scaling policy of ``path``; ``shown`` replaces its file name in what the results
    show (the bundled name, or the path relative to the working directory)."""
    from dataclasses import replace

    from controller.errors import PolicyError
    from controller.policy import load_policies

    try:
        scaling = [p for p in load_policies([path]) if p.scales]
    except PolicyError as exc:
        _fail(exc.errors)
    if len(scaling) != 1:
        _fail([f"{path}: expected exactly one scaling policy, found {len(scaling)}; pass a file that holds one"])
    return replace(scaling[0], file=shown) if shown else scaling[0]


@app.command(short_help="Simulate a scenario offline and score the controllers.")
def simulate(
    scenario: Annotated[str, typer.Argument(
        help="A scenario file, or the name of a bundled one (a wrong name lists them).")] = "flash-crowd",
    policy: Annotated[Optional[Path], typer.Option(
        "--policy", "-p", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_SIM_POLICY}",
        help="The policy under test (one scaling policy).")] = None,
    baseline: Annotated[list[str], typer.Option(
        "--baseline", "-b", help="Baselines run in the same simulation: hpa, fixed-max, oracle. Repeat the option "
                                 "for several.")] = ["hpa", "oracle"],
    hpa_policy: Annotated[Optional[Path], typer.Option(
        "--hpa-policy", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy used as the hpa baseline.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the scenario's random seed.")] = None,
    scenario_set: Annotated[list[str], typer.Option(
        "--scenario-set", metavar="PATH=VALUE",
        help="Change a field of the scenario for this run, [*] for every item of a list, e.g. "
             "'spec.services[*].startupDelay=3m' (what if the pods took 3 minutes to start?). Repeat for several "
             "fields; one value each (setpoint sweep runs several).")] = [],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for result.json, report.html and decisions.jsonl (default: out/SCENARIO, with "
                            "the --scenario-set values).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
    frontier: Annotated[bool, typer.Option(
        help="Also run the hpa preset at several CPU targets (HPA's cost/violation frontier) and compare each "
             "controller with HPA at equal replica-hours.")] = True,
    frontier_targets: Annotated[str, typer.Option(
        "--frontier-targets", help="CPU utilization targets (percent) of the frontier, comma-separated.")] = "40,50,60,70,80",
    max_memory: Annotated[Optional[str], typer.Option(
        "--max-memory", help="Refuse a scenario whose estimated memory need is above this (e.g. 8GiB, 512MiB). "
                             "Default 4GiB; never more than 80% of the machine's memory.")] = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, show_default="number of CPUs",
        help="Processes that share the controllers' runs (the numbers do not depend on it). Short runs stay in one, "
             "and run without the compiled kernels unless SETPOINT_COMPILED=1.")
    ] = None,
) -> None:
    """Simulate a scenario offline under a policy and baselines, and score them alike.

    Prints a score table (SLO-violation minutes, replica-hours, replica changes, reversals, time
    to mitigate each fault, and HPA's violation minutes at the same replica-hours: the hpa
    preset swept over CPU targets, interpolated along its frontier) and writes OUT/result.json, OUT/report.html (plots on a shared time
    axis, one panel set per controller) and OUT/decisions.jsonl (read it with `setpoint explain
    OUT`). With no arguments: the bundled flash-crowd scenario, the bundled default policy, the
    HPA baseline and the oracle. Exit 1 on an invalid scenario or policy, or one whose estimated
    memory need is over --max-memory.
    """
    from controller.errors import InvalidInput
    from simulators.memory import parse_size

    try:
        max_memory_bytes = None if max_memory is None else parse_size(max_memory)
    except ValueError as exc:
        _fail([f"--max-memory: {exc}"])
    try:
        _simulate(scenario, policy, baseline, hpa_policy, seed, out, report, frontier, frontier_targets,
                  max_memory_bytes, jobs, scenario_set)
    except InvalidInput as exc:
        _fail(exc.errors)
    except MemoryError:
        _fail([f"{scenario}: ran out of memory; shorten spec.duration, raise spec.tick, or use fewer services or "
               "baselines"])


def _simulate(scenario: str, policy: Path | None, baseline: list[str], hpa_policy: Path | None, seed: int | None,
              out: Path | None, report: bool, frontier: bool, frontier_targets: str,
              max_memory_bytes: int | None, jobs: int | None, scenario_set: list[str]) -> None:
    from importlib.util import find_spec

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from simulators.frontier import parse_targets
    from simulators.hpa_sweep import first_pass, simulate_with_frontier
    from simulators.memory import check_fits, memory_limit
    from simulators.output import write_outputs
    from simulators.parallel import usable_cpus
    from simulators.result import shown_path
    from simulators.runner import compiled_pays, standard_controllers
    from simulators.runner import simulate as run_simulation
    from simulators.scenario_set import folder_name, varied_scenario

    if report and find_spec("matplotlib") is None:  # e.g. in the controller image
        _fail(["report.html needs matplotlib, which is not installed: pip install matplotlib, or pass --no-report"])
    sc = varied_scenario(scenario, scenario_set, seed=seed)
    # Results and the report name the files as the user gave them, or by their bundled names.
    policy_shown = shown_path(policy) if policy else f"bundled {DEFAULT_SIM_POLICY}"
    hpa_shown = shown_path(hpa_policy) if hpa_policy else f"bundled {DEFAULT_HPA_POLICY}"
    policy = policy or bundled_policy(DEFAULT_SIM_POLICY)
    hpa_policy = hpa_policy or bundled_policy(DEFAULT_HPA_POLICY)
    under_test = _one_policy(policy, policy_shown)
    hpa = _one_policy(hpa_policy, hpa_shown) if "hpa" in baseline or frontier else None
    try:
        targets = parse_targets(frontier_targets) if frontier else []
    except ValueError as exc:
        _fail([str(exc)])
    try:
        controllers = standard_controllers(under_test, baseline, hpa, under_test.params.max_replicas)
        # checked before the progress bars draw; the frontier's first targets run in the same pass
        runs = controllers + (first_pass(controllers, hpa, targets)[1] if frontier else [])
    except ValueError as exc:
        _fail([str(exc)])
    check_fits(sc, runs, memory_limit(max_memory_bytes))
    out_dir = _out_folder(out or Path("out") / folder_name(sc.name))
    if not compiled_pays(sc, len(runs)):  # a short run: as fast on numpy, and nothing to compile first
        _numpy_unless_asked()
    console = Console(stderr=True)
    try:
        _warm_kernels(console, sc, runs)
    except ValueError as exc:
        _fail([str(exc)])
    # Redrawn from advance(), not by rich's refresh thread: with no other thread alive, the
    # simulation's worker processes can be forked warm (simulators/parallel.py).
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("ticks"),
                  TimeElapsedColumn(), console=console, transient=False, auto_refresh=False) as progress:
        tasks = {c.name: progress.add_task(c.name, total=sc.tick_count) for c in controllers}
        drawn = [0.0]

        def advance(name: str, k: int, total: int) -> None:
            if name not in tasks:  # a frontier run
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=k)
            if time.monotonic() - drawn[0] >= PROGRESS_REDRAW_S or k == total:
                drawn[0] = time.monotonic()
                progress.refresh()

        options = dict(policy_file=policy_shown, max_memory_bytes=max_memory_bytes, on_progress=advance,
                       jobs=jobs or usable_cpus())
        try:
            if frontier:
                result, logs = simulate_with_frontier(sc, controllers, hpa, targets, **options)
            else:
                result, logs = run_simulation(sc, controllers, **options)
        except ValueError as exc:
            _fail([str(exc)])
    paths = write_outputs(result, logs, out_dir, sc.start_s, report=report)
    _print_scores(result)
    for kind, path in paths.items():
        typer.echo(f"{kind:>9}: {path}")


def _numpy_unless_asked() -> None:
    """Decide on the numpy stages unless SETPOINT_COMPILED asks for the kernels (or for numpy).
    Set in the environment too, for worker processes that start from a forkserver."""
    import os

    from controller.core.scaling import compiled

    if compiled.switch == "":
        compiled.set_switch("0")
        os.environ[compiled.ENV_SWITCH] = "0"


def _warm_kernels(console, scenario, runs: list) -> None:
    """Compile, or load from the disk cache, the kernels the runs use before the progress bars
    draw and before worker processes fork (they inherit them); a line on stderr when that takes
    a while: compiling them on a machine's first run (or after an upgrade) takes ~40 s."""
    import threading

    from simulators.runner import warm_kernels

    notice = threading.Timer(COMPILE_NOTICE_S, lambda: console.print(
        "compiling the simulator's kernels: about 40 s on a machine's first run or after an upgrade; "
        "cached for the next runs (`setpoint warm` does it ahead; SETPOINT_COMPILED=0 runs without them)"))
    notice.start()
    try:
        warm_kernels(scenario, runs)
    finally:
        notice.cancel()
        notice.join()  # no other thread left: the workers can be forked warm


def _print_scores(result) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from simulators.score import driven_lines, score_table

    # Two-line headers, no rules between columns: fits 80 columns; narrower, cells fold (never cut).
    # names are text, not rich markup: step[startupDelay=3m] lost its brackets
    table = Table(title=f"{escape(result.scenario)}: SLO p{result.slo.latency_percentile:g} < {result.slo.latency_s * 1000:g} ms, "
                        f"errors < {result.slo.error_ratio:.2%}", box=box.SIMPLE_HEAD, show_edge=False,
                  collapse_padding=True)
    rows = score_table(result)
    with_faults = any(row.get("worst_mitigation_s") is not None for row in rows)  # else an empty column
    columns = ["controller", "SLO viol.\nminutes", "replica-\nhours", "vs\noracle", "changes", "rever-\nsals"]
    columns += ["worst\nmitig."] if with_faults else []
    columns += ["HPA @ eq.\ncost min", "ratio"] if result.frontier is not None else []
    for column in columns:
        first = column == "controller"
        table.add_column(column, justify="left" if first else "right", overflow="fold", no_wrap=first)
    for row in rows:
        vs = row.get("replica_hours_vs_oracle")
        worst = row.get("worst_mitigation_s")
        cells = [escape(row["controller"]), f"{row['slo_violation_minutes']:g}", f"{row['replica_hours']:.2f}",
                 "-" if vs is None else f"{vs:.2f}x", str(row["replica_changes"]), str(row["reversals"])]
        if with_faults:
            cells.append("-" if worst is None else ("never" if worst == float("inf") else f"{worst:g} s"))
        if result.frontier is not None:
            cells += _equal_cost_cells(row["hpa_equal_cost"])
        table.add_row(*cells)
    console = Console()  # the terminal's width (80 columns when not a terminal and $COLUMNS is unset)
    console.print(table)
    for line in driven_lines(rows, result.services):
        console.print(line, highlight=False, markup=False)
    if result.frontier is not None:
        swept = ", ".join(f"{p.target_pct:g}%: {p.replica_hours:.2f} h / {p.slo_violation_minutes:g} min"
                          for p in result.frontier.points)
        console.print(f"HPA @ eq. cost: the SLO-violation minutes of the hpa preset re-targeted to spend the row's "
                      f"replica-hours (interpolated on its sweep; * = outside the swept range, held flat). "
                      f"Swept CPU targets: {swept}.", highlight=False, markup=False)


def _equal_cost_cells(e) -> list[str]:
    """The two frontier cells of a score-table row: HPA's violation minutes at the row's
    replica-hours (``*`` when extrapolated beyond the sweep) and the ratio with its verdict."""
    if e is None or e.hpa_slo_violation_minutes is None:
        return ["-", "-"]
    flag = "*" if e.extrapolated else ""
    ratio = f"{e.ratio:.2f}x" if e.ratio is not None else "-"
    return [f"{e.hpa_slo_violation_minutes:g}{flag}", f"{ratio} {e.verdict}"]


@app.command(short_help="Compile the simulator's kernels ahead, into numba's disk cache.")
def warm(
    policy: Annotated[Optional[Path], typer.Option(
        "--policy", "-p", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_SIM_POLICY}",
        help="A policy whose kernels to compile too (one scaling policy).")] = None,
    hpa_policy: Annotated[Optional[Path], typer.Option(
        "--hpa-policy", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy of the hpa baseline.")] = None,
) -> None:
    """Compile (or load from numba's disk cache) every kernel that simulations, sweeps, tuning and
    backtests use, by running a five-minute, two-service scenario through the policy, the same
    policy with a forecast stage, the hpa preset, the oracle and a fixed baseline.

    A machine's first long simulation (every trace scenario), and the first after an upgrade
    (the cache is keyed on the code), otherwise spends about 40-80 s compiling before its first
    tick. Run this once in an image build or a CI step, as the user that runs the simulations
    (the cache is NUMBA_CACHE_DIR, else next to the installed code, else the user's cache
    folder). Prints how many kernels were compiled or found in the cache, and where it is.
    Exit 1 when the kernels are off (SETPOINT_COMPILED=0) or numba is unavailable.
    """
    from simulators.warm import warm as warm_kernels

    under_test = _one_policy(policy or bundled_policy(DEFAULT_SIM_POLICY))
    hpa = _one_policy(hpa_policy or bundled_policy(DEFAULT_HPA_POLICY))
    try:
        done = warm_kernels(under_test, hpa)
    except RuntimeError as exc:
        _fail([f"nothing warmed: {exc}"])
    where = ", ".join(done.cache_dirs) or "none (in memory only)"
    if done.compiled:
        typer.echo(f"compiled {done.compiled} kernel(s), {done.loaded} found in the cache, in {done.seconds:.1f} s; "
                   f"cache: {where}")
    else:
        typer.echo(f"all {done.loaded} kernel(s) were in the cache (loaded in {done.seconds:.1f} s); cache: {where}")


SCENARIO_SET_FORM = ("PATH=VALUES as for --set (x1.5: the file's own value times 1.5; PATH+=1d: plus 1d), [*] "
                     "for every item of a list, e.g. "
                     "'spec.services[*].startupDelay=30s,3m' (pods slower to start) or a trace's start (another "
                     "window of it); each combination is one more scenario, named after the file's with its "
                     "values. Repeat: every combination is run.")
SCENARIO_SET_HELP = "Vary a field of every scenario: " + SCENARIO_SET_FORM


@app.command(short_help="Run scenarios x policy variants x seeds in parallel; one merged report.")
def sweep(
    scenarios: Annotated[list[str], typer.Argument(
        metavar="SCENARIO...", help="Scenario files or bundled names.")],
    policy: Annotated[list[Path], typer.Option(
        "--policy", "-p", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_SIM_POLICY}",
        help="A policy file (one scaling policy); repeat for several.")] = [],
    set_: Annotated[list[str], typer.Option(
        "--set", metavar="PATH=VALUES", help="Vary a field of the policy: PATH=50..90:10 (both ends included), "
                                             "PATH=5m,10m,20m, PATH=x0.8,x1.2 (the file's value times each) or "
                                             "PATH=70, PATH as validation errors print it, e.g. "
                                             "spec.scaling.metrics[0].target.averagePerReplica. Repeat: every "
                                             "combination is run.")] = [],
    scenario_set: Annotated[list[str], typer.Option(
        "--scenario-set", metavar="PATH=VALUES", help=SCENARIO_SET_HELP)] = [],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per scenario: its own, then +1, +2, ...")] = 1,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, show_default="number of CPUs", help="Local worker processes (or CPUs of --ray local).")] = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", envvar="RAY_ADDRESS", metavar="ADDRESS",
        help="Run the cells on this Ray cluster (auto, ray://HOST:10001; local starts one here). Needs "
             "pip install 'setpoint[ray]'.")] = None,
    hpa: Annotated[bool, typer.Option(
        help="Also run the hpa preset at each --frontier-targets CPU target: HPA's frontier on every scenario.")] = True,
    hpa_policy: Annotated[Optional[Path], typer.Option(
        "--hpa-policy", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy of the frontier.")] = None,
    frontier_targets: Annotated[str, typer.Option(
        "--frontier-targets", help="CPU utilization targets (percent) of HPA's frontier.")] = "40,50,60,70,80",
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for result.json, report.html and cells/ (finished cells; a rerun skips them).")]
        = Path("out/sweep"),
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
) -> None:
    """Run a grid of scenarios x policy variants x seeds, each cell an independent simulation, in
    parallel on local worker processes (--jobs) or a Ray cluster (--ray or $RAY_ADDRESS).

    Writes OUT/result.json and OUT/report.html: per scenario and over all of them, a table of
    every variant (means over the seeds), the cost/violation plane and the Pareto front, and
    each variant against HPA at equal cost. Finished cells are kept in OUT/cells/, so an
    interrupted sweep resumes where it stopped; a cell gives the same numbers wherever it ran.
    --scenario-set varies the scenarios as --set varies the policy (slower pods, other peaks,
    another window of a trace: what the policy meets after the scenario it was tuned on).
    Exit 1 on an invalid scenario, policy, --set or --scenario-set (nothing runs).
    """
    import os

    from controller.errors import InvalidInput
    from simulators.frontier import parse_targets
    from simulators.sweep import build_grid, ray_address_from

    try:
        targets = parse_targets(frontier_targets)
    except ValueError as exc:
        _fail([str(exc)])
    try:
        grid = build_grid(scenarios, [str(p) for p in policy] or [str(bundled_policy(DEFAULT_SIM_POLICY))], set_,
                          seeds=seeds, hpa_policy=(hpa_policy or bundled_policy(DEFAULT_HPA_POLICY)) if hpa else None,
                          hpa_targets_pct=targets, scenario_settings=scenario_set)
        result = _run_sweep(grid, _out_folder(out), jobs or os.cpu_count() or 1, ray_address_from(ray))
    except InvalidInput as exc:
        _fail(exc.errors)
    from simulators.sweep_result import write_result

    _print_sweep(result)
    for kind, path in write_result(result, out, report=report).items():
        typer.echo(f"{kind:>9}: {path}")


def _run_sweep(grid, out: Path, jobs: int, ray_address: str | None):
    """Run ``grid``'s cells with a progress bar on a terminal, plain lines otherwise (CI)."""
    import os

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from simulators.sweep import CellStore, run_grid
    from simulators.sweep_result import merge

    cells = grid.cells()
    store = CellStore(out / "cells")
    where = f"Ray ({ray_address})" if ray_address else f"{jobs} local worker{'s' if jobs > 1 else ''}"
    console = Console(stderr=True)
    typer.echo(f"sweep: {len(grid.scenarios)} scenario(s) x {len(grid.variants)} variant(s) x {grid.seeds} seed(s) = "
               f"{len(cells)} cells on {where}", err=True)
    if console.is_terminal and not os.environ.get("CI"):
        # redrawn per cell, not by a refresh thread: local workers fork only from a process without threads
        with Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), TextColumn("{task.description}"), console=console,
                      auto_refresh=False) as progress:
            task = progress.add_task("", total=len(cells))
            records = run_grid(cells, store, jobs=jobs, ray_address=ray_address, on_cell=lambda c, done, total, cached:
                               progress.update(task, completed=done, description=escape(f"{c.scenario} {c.variant}"),
                                               refresh=True))
    else:
        def line(c, done, total, cached) -> None:
            typer.echo(f"cell {done}/{total}: {c.scenario} / {c.variant} / seed {c.seed}"
                       f"{' (stored)' if cached else ''}", err=True)

        records = run_grid(cells, store, jobs=jobs, ray_address=ray_address, on_cell=line)
    return merge(grid, records)


def _print_sweep(result: dict) -> None:
    """The overall table: every variant's sums over the scenarios, Pareto front marked."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from simulators.sweep_result import table_rows

    table = Table(title=f"sweep: {len(result['scenarios'])} scenario(s), {result['seeds_per_scenario']} seed(s) each; "
                        "sums over scenarios of the means over seeds", box=box.SIMPLE_HEAD, show_edge=False,
                  collapse_padding=True)
    with_hpa = result["overall"]["frontier"] is not None
    columns = ["variant", "SLO viol.\nminutes", "replica-\nhours", "changes", "rever-\nsals"]
    columns += ["HPA @ eq.\ncost min", "ratio"] if with_hpa else []
    for column in columns + ["Pareto"]:
        table.add_column(column, justify="left" if column == "variant" else "right", overflow="fold",
                         no_wrap=column == "variant")
    for r in table_rows(result["overall"]):
        table.add_row(escape(r["variant"]), f"{r['slo_violation_minutes']:g}", f"{r['replica_hours']:.2f}",
                      f"{r['replica_changes']:g}", f"{r['reversals']:g}",
                      *(_equal_cost_cells(r["hpa_equal_cost"]) if with_hpa else []), "*" if r["pareto"] else "")
    Console().print(table)


@app.command(short_help="Search a policy's parameters for the fewest replica-hours within an SLO budget.")
def tune(
    policy: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The policy to tune (one scaling policy).")],
    scenarios: Annotated[list[str], typer.Option(
        "--scenarios", "-s", help="Training scenarios (files or bundled names); repeat, or separate with commas.")],
    holdout: Annotated[list[str], typer.Option(
        "--holdout", help="Held-out scenarios, scored with the chosen parameters only (the search never sees "
                          "them); repeat, or separate with commas.")] = [],
    scenario_set: Annotated[list[str], typer.Option(
        "--scenario-set", metavar="PATH=VALUES", help="Vary a field of every training scenario: " + SCENARIO_SET_FORM)] = [],
    holdout_set: Annotated[list[str], typer.Option(
        "--holdout-set", metavar="PATH=VALUES",
        help="Vary the held-out scenarios as --scenario-set does; without --holdout, the training scenarios (before "
             "--scenario-set) are held out with these values, e.g. spec.services[*].startupDelay=90s,180s: "
             "tuned on one start-up delay, checked on others.")] = [],
    set_: Annotated[list[str], typer.Option(
        "--set", metavar="PATH=RANGE", help="A parameter to search: PATH=LO..HI (continuous), PATH=LO..HI:STEP or "
                                            "PATH=A,B,C. Default: each metric's target from 0.6x to 1.4x and the "
                                            "scale-down stabilization window from 0s to 30m.")] = [],
    max_violation_minutes: Annotated[Optional[float], typer.Option(
        "--max-violation-minutes", min=0, help="Budget: at most this many SLO-violation minutes on each training "
                                               "scenario (mean over seeds). Default: at most HPA's at equal cost.")] = None,
    trials: Annotated[int, typer.Option(min=1, help="Trials (policy variants) the search runs.")] = 30,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per scenario: its own, then +1, +2, ...")] = 1,
    sampler_seed: Annotated[int, typer.Option(
        "--sampler-seed", min=0, help="Seed of the TPE sampler: the same seed gives the same search.")] = 0,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, show_default="number of CPUs", help="Local worker processes (or CPUs of --ray local).")] = None,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", envvar="RAY_ADDRESS", metavar="ADDRESS", help="Run the cells on this Ray cluster (see sweep).")] = None,
    hpa_policy: Annotated[Optional[Path], typer.Option(
        "--hpa-policy", exists=True, dir_okay=False, show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy of the HPA budget.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", dir_okay=False, help="The tuned policy file (default: POLICY-tuned.yaml in the working "
                                            "directory).")] = None,
    work: Annotated[Path, typer.Option(
        "--work", help="Folder of the finished cells (rerunning the same search reads them back) and tune.json "
                       "(every trial's values and scores).")] = Path("out/tune"),
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite the tuned policy file if it exists (checked before the search).")] = False,
) -> None:
    """Search a policy's parameters (Optuna's TPE sampler, a fixed seed) for the fewest
    replica-hours on the training scenarios, subject to an SLO budget on each of them, then
    score the chosen parameters on the held-out scenarios separately (over-fitting shows).

    Writes the tuned policy (it passes `setpoint validate`) with the search's provenance as
    comments: the trials, the budget, the scenarios and seeds, the chosen values and the scores
    of the tuned and untuned policy on the training and held-out scenarios. Exit 1 on bad input,
    when the tuned policy's file exists and --force is not given (checked before the search), or
    when no trial meets the budget (nothing written).
    """
    import os

    from controller.errors import InvalidInput
    from simulators.policy_set import parse_setting, read_policy_base
    from simulators.result import shown_path
    from simulators.scenario_set import check_distinct, parse_scenario_settings, scenario_variants
    from simulators.sweep import CellStore, PolicyBase, ray_address_from, read_scenario_input
    from simulators.tune import Budget, Runner
    from simulators.tune import tune as run_tune

    def names(values: list[str]) -> list[str]:
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    try:
        base = read_policy_base(policy)
        base = PolicyBase(shown_path(policy), base.data, base.policy)
        settings = [parse_setting(t, allow_continuous=True) for t in set_]
        given = [read_scenario_input(n) for n in names(scenarios)]
        train = scenario_variants(given, parse_scenario_settings(scenario_set))
        held = [read_scenario_input(n) for n in names(holdout)] if holdout or not holdout_set else given
        held = scenario_variants(held, parse_scenario_settings(holdout_set, "--holdout-set"))
        check_distinct(train, held)
        hpa = read_policy_base(hpa_policy or bundled_policy(DEFAULT_HPA_POLICY)) if max_violation_minutes is None else None
        # where the tuned policy goes, checked before the search (it failed after it, the search's end lost)
        target = out or Path(f"{policy.stem}-tuned.yaml")
        folder = target.absolute().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            _fail([f"--out: {out or folder}: {'cannot write in' if folder.is_dir() else 'no such'} folder "
                   f"{folder}; create it or name another file"])
        _refuse_overwrite([target], force, "--out")  # the policy given, or a tuned file since edited
        runner = Runner(CellStore(_out_folder(work, "--work") / "cells"), seeds, jobs or os.cpu_count() or 1,
                        ray_address_from(ray))

        def progress(t: dict) -> None:
            what = ", ".join(f"{k}={v}" for k, v in t["values"].items())
            if "error" in t:
                typer.echo(f"trial {t['number']}: {what}: invalid ({t['error']})", err=True)
            else:
                typer.echo(f"trial {t['number']}: {what}: {t['replica_hours']:g} replica-hours, "
                           f"{t['slo_violation_minutes']:g} min, {'within' if t['feasible'] else 'over'} budget", err=True)

        with runner:
            result = run_tune(base, settings, train, held, runner, Budget(max_violation_minutes), trials=trials,
                              sampler_seed=sampler_seed, hpa=hpa, on_trial=progress)
    except InvalidInput as exc:
        _fail(exc.errors)
    import json

    from controller.runtime.files import write_text_atomic
    from simulators.tune import tune_json

    write_text_atomic(work / "tune.json", json.dumps(tune_json(result), indent=1, allow_nan=False) + "\n")
    refused = [t for t in result.trials if "error" in t]
    if result.trials and len(refused) == len(result.trials):  # not a budget to raise: the --set cannot apply
        _fail([f"every one of the {len(refused)} trials was refused by the policy's rules, so no budget was "
               f"tried; check the --set paths and ranges. The first: {refused[0]['error']}"])
    if result.best is None:
        _fail([f"no trial met the budget ({result.budget.describe()}) in {trials} trials; raise the budget, widen "
               f"the --set ranges or run more --trials"])
    from importlib.metadata import version as dist_version

    from controller import __version__
    from simulators.tune import provenance, tuned_policy_text

    write_text_atomic(target, tuned_policy_text(result, __version__, dist_version("optuna")))
    for line in provenance(result, __version__, dist_version("optuna"))[2:]:
        typer.echo(line)
    typer.echo(f"wrote {target}")


@app.command(short_help="Replay a policy on past Prometheus data and score it.")
def backtest(
    policy: Annotated[Path, typer.Option(
        "--policy", "-p", exists=True, dir_okay=False, help="The policy to replay (one scaling policy).")],
    prometheus: Annotated[str, typer.Option(help="Prometheus base URL holding the history.")],
    start: Annotated[str, typer.Option(
        "--from", help="Start: 2026-11-30T12:00:00Z, epoch seconds, or now-7d.")],
    end: Annotated[str, typer.Option("--to", help="End, in the same forms (now for now).")] = "now",
    step: Annotated[str, typer.Option(help="Resolution of the range queries, e.g. 15s.")] = "15s",
    compare: Annotated[Optional[str], typer.Option(
        help="A second policy file to replay side by side, or hpa (the same policy as HPA would run it).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for result.json, timeline.csv and report.html (nothing written without it).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
    target_labels: Annotated[str, typer.Option(
        help="Labels that map a series to its workload: NAMESPACE_LABEL,NAME_LABEL.")] = "namespace,deployment",
    prometheus_timeout: Annotated[float, typer.Option(help="Seconds one range query may take.")] = 60.0,
) -> None:
    """Replay a policy over a past window of Prometheus data, tick by tick through the same
    Reconciler the controller runs, and compare it with the replicas that actually ran
    (kube_deployment_spec_replicas / kube_statefulset_replicas) and optionally a second policy.

    Assumption (stated in the report): load is shared evenly across replicas, so per-replica
    signals (utilization and value targets) are rescaled to the counterfactual replica count;
    averagePerReplica metrics are totals and replay unchanged. Prints a score table
    (replica-hours, replica changes, reversals, capacity-risk minutes). Exit 1 on bad input or
    when Prometheus cannot answer.
    """
    from importlib.util import find_spec

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
    from controller.errors import BacktestError
    from controller.policy import parse_duration
    from controller.policy.counterpart import hpa_counterpart, spec_differences
    from controller.runtime.backtest import LOAD_ASSUMPTION, MAX_WINDOW_S, parse_time, stream_backtest
    from controller.runtime.reconciler import RuntimePolicy
    from simulators.backtest_report import Backtest, write_outputs

    if out is not None and report and find_spec("matplotlib") is None:
        _fail(["report.html needs matplotlib, which is not installed: pip install matplotlib, or pass --no-report"])
    labels = tuple(x.strip() for x in target_labels.split(","))
    now = time.time()
    def option(name: str, parse, text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None

    try:
        step_s = option("--step", parse_duration, step)
        start_s, end_s = (option(name, lambda x: parse_time(x, now, parse_duration), x)
                          for name, x in (("--from", start), ("--to", end)))
        if len(labels) != 2 or not all(labels):
            raise ValueError(f"--target-labels: expected NAMESPACE_LABEL,NAME_LABEL, got {target_labels!r}")
        if step_s < 1 or step_s != int(step_s):
            raise ValueError(f"--step: expected whole seconds of at least 1s, got {step}")
        if not end_s > start_s:
            raise ValueError(f"--to must be after --from (got {start} .. {end})")
        if end_s - start_s > MAX_WINDOW_S:
            raise ValueError(f"--from .. --to: a window of at most {MAX_WINDOW_S / 86400:.0f} days, got "
                             f"{(end_s - start_s) / 86400:,.0f} days ({start} .. {end})")
        config = PrometheusConfig.from_url(prometheus, timeout_s=prometheus_timeout, target_labels=labels)
    except ValueError as exc:
        _fail([str(exc)])
    if out is not None:
        _out_folder(out)
    loaded = _one_policy(policy)
    other = None
    if compare == "hpa":
        other = hpa_counterpart(loaded)
    elif compare is not None:
        if not Path(compare).is_file():
            _fail([f"--compare: expected a policy file or hpa, got {compare!r}"])
        other = _one_policy(Path(compare))
    policies = [RuntimePolicy.of(loaded)] + ([RuntimePolicy.of(other)] if other else [])
    names = [loaded.name] + ([other.name if other.name != loaded.name else "compare"] if other else [])
    descriptions = [f"policy {p.name}" + (" (preset: hpa)" if p.params.hpa_semantics else "") for p in policies]
    console = Console(stderr=True)
    with PrometheusSource(config) as source, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("segments"),
            TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("query + replay", total=None)
        data, runs = stream_backtest(source, policies, names, descriptions, start_s, end_s, step_s, labels,
                                     on_progress=lambda done, total: progress.update(task, completed=done,
                                                                                     total=total))
    if not data.targets:
        raise BacktestError(f"no targets: the policy selects by label and no series of namespace "
                            f"{loaded.targets.namespace!r} came back at the start of the window; check the "
                            f"queries and the window")
    missing = [t.key for t, known in zip(data.targets, data.has_actual) if not known]
    notes = [f"assumption: {LOAD_ASSUMPTION}"]
    for p in policies:
        if p.params.interval_s % step_s:
            notes.append(f"{p.name}: interval {p.params.interval_s:g}s is not a multiple of --step {step_s:g}s: it "
                         f"runs every {max(1, round(p.params.interval_s / step_s))} sample(s)")
    if other is not None and other.targets != loaded.targets:
        notes.append(f"{other.name} selects other targets than {loaded.name}; both are replayed on "
                     f"{loaded.name}'s ({loaded.targets.describe()})")
    if missing:
        notes.append(f"the replicas that ran are unknown for {len(missing)} target(s) ({', '.join(missing[:5])}): "
                     f"no kube-state-metrics series; their signals are replayed unscaled")
    bt = Backtest(data, runs, str(policy), config.safe_url,
                  spec_differences(loaded, other) if other else [], notes)
    _print_backtest(bt)
    for note in notes:
        typer.echo(note, err=True)
    if out is not None:
        for kind, path in write_outputs(bt, out, report=report).items():
            typer.echo(f"{kind:>9}: {path}")


def _print_backtest(bt) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from simulators.backtest_report import table_rows

    table = Table(title=f"backtest: {len(bt.data.targets)} target(s), {bt.data.t_s.size} samples", box=box.SIMPLE_HEAD,
                  show_edge=False, collapse_padding=True)
    for column in ("run", "replica-\nhours", "changes", "reversals", "capacity-risk\nminutes"):
        table.add_column(column, justify="left" if column == "run" else "right", overflow="fold")
    for row in table_rows(bt):
        table.add_row(escape(row["controller"]), f"{row['replica_hours']:.2f}", str(row["replica_changes"]),
                      str(row["reversals"]), f"{row['capacity_risk_minutes']:g}")
    Console().print(table)
    if bt.differences:
        typer.echo(f"differences ({bt.runs[0].name} vs {bt.runs[-1].name}):")
        for line in bt.differences:
            typer.echo(f"  {line}")


@app.command(short_help="Print decision records and the reason for each.")
def explain(
    source: Annotated[Path, typer.Argument(
        exists=True, help="A simulation output folder, or a decisions .jsonl file written by `setpoint run` (its rotated "
                          "FILE.1, FILE.2, ... are read too).")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Only this target (name or namespace/name).")] = None,
    at: Annotated[Optional[str], typer.Option(
        "--at", help="Only the last decision at or before this time (seconds, or 30m / 1h10m since the start).")] = None,
    controller: Annotated[Optional[str], typer.Option("--controller", "-c", help="Only this controller (policy, hpa).")] = None,
    changes: Annotated[bool, typer.Option("--changes", help="Only decisions that changed the replica count.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Print at most this many records (the last ones).")] = 40,
) -> None:
    """Print decision records: for each target and cycle, every stage's number and the reason.

    Columns: time, controller, target, current -> desired, reason, then per metric the raw and
    smoothed value and the replica proposal (a dash where the metric was missing); for a
    forecast metric, the forecast, its upper bound, its recent error (MASE against persistence;
    "ignored" above the policy's errorBound) and the reactive and predictive proposals; then
    the combined, stabilized and limited counts.
    """
    import json

    from controller.policy import parse_duration
    from controller.runtime.records import read_all_records, select_records

    path = source / "decisions.jsonl" if source.is_dir() else source
    if not path.exists():
        _fail([f"{source}: no decisions.jsonl here; pass a `setpoint simulate` output folder or the --records "
               f"file of `setpoint run`"])
    if not path.is_file():  # a device or pipe: /dev/zero is one endless line
        _fail([f"{path}: not a regular file; pass a `setpoint simulate` output folder or a decisions .jsonl file"])
    when = None
    if at is not None:
        try:
            when = float(at)
        except ValueError:
            try:
                when = parse_duration(at)
            except ValueError as exc:
                _fail([f"--at: {exc}"])
    skipped: list[str] = []
    read = [0]  # records of the controller asked for, counted as they stream by

    def of_controller():
        for r in read_all_records(path, lambda f, n, why: skipped.append(f"{f}:{n}: {why}")):
            if controller is None or r.get("controller") == controller:
                read[0] += 1
                yield r

    # streamed: the last --limit records (or one per target with --at) are held, not the file
    records = select_records(of_controller(), target=target, at=when, changed_only=changes, last=limit)
    if skipped:
        more = f" (and {len(skipped) - 1} more such lines)" if len(skipped) > 1 else ""
        if not read[0]:
            _fail([f"no decision records: {skipped[0]}{more}; is this a decisions .jsonl file?"])
        typer.echo(f"setpoint: skipped {skipped[0]}{more}", err=True)
    if not records:
        typer.echo("no decision records match; drop --target, --at, --controller or --changes to see more", err=True)
        raise typer.Exit(1)
    printed = 0
    for r in records:
        try:
            typer.echo(_format_record(r))
            printed += 1
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # edited or another program's JSON
            typer.echo(f"setpoint: skipped a record that is not a decision record ({type(exc).__name__}: {exc}): "
                       f"{json.dumps(r)[:120]}", err=True)
    if not printed:
        raise typer.Exit(1)


def _format_record(r: dict) -> str:
    def num(v) -> str:
        return "-" if v is None else f"{v:.4g}"

    metrics = "  ".join(f"{name}: raw {num(m['raw'])} smoothed {num(m['smoothed'])} -> "
                        f"{'-' if m['proposal'] is None else m['proposal']}" for name, m in r.get("metrics", {}).items())
    forecasts = "  ".join(
        f"{name}: forecast {num(f['forecast'])} (upper {num(f['upper'])}, error {num(f['error'])}"
        f"{'' if f['trusted'] else ', ignored'}) reactive {'-' if f['reactive'] is None else f['reactive']} "
        f"predictive {'-' if f['predictive'] is None else f['predictive']}" for name, f in r.get("forecast", {}).items())
    if forecasts:
        metrics = f"{metrics}  | {forecasts}"
    ramps = "  ".join(f"{name}: slope {num(g['slope'])}/s ahead {num(g['ahead'])} -> "
                      f"{'-' if g['proposal'] is None else g['proposal']}"
                      f"{' held (a look-ahead step under ramp.minStep)' if g.get('held') else ''}"
                      for name, g in r.get("ramp", {}).items())
    if ramps:
        metrics = f"{metrics}  | ramp {ramps}"
    if r.get("saturated"):  # core/scaling/saturation.py
        latest = "".join(f" ({name}: latest reading {num(v)}, above the window's)"
                         for name, v in r.get("saturatedLatest", {}).items())
        metrics = (f"{metrics}  | saturated {', '.join(r['saturated'])}{latest}: read at what the Ready pods serve, "
                   f"a lower bound on demand: sized with the target's headroom once more")
    at = r.get("at", 0.0)
    who = f"{r['controller']} " if "controller" in r else ""
    line = (f"t={at:>8.0f}s {who}{r.get('target')}: {r.get('current')} -> {r.get('desired')} [{r.get('reason')}]  "
            f"{metrics}  | combined {r.get('combined')} stabilized {r.get('stabilized')} limited {r.get('limited')} "
            f"(ready {r.get('ready')})")
    if r.get("withheld"):  # core/scaling/withheld.py
        line += (f"  | withheld {r['withheld']}: pods not Ready long past their start-up, sized on top "
                 f"of the proposals")
    warm = r.get("warm_start")
    if warm:
        line += f"  | {_format_warm_start(warm)}"
    if r.get("startup"):
        line += f"  | {_format_startup(r['startup'])}"
    health = r.get("health") or (r.get("extra") or {}).get("health")
    return line + _format_health(health) if health else line


def _format_startup(s: dict) -> str:
    """The start-up delay a ramp's lead used (startupDelay: observed) and where it came from."""
    seen = s.get("range_s")
    source = (f"observed over {s.get('pods')} pod start-up(s), {seen[0]:.0f}-{seen[1]:.0f}s" if s.get("source") == "observed"
              else f"policy's initial value, {s.get('pods', 0)} start-up(s) observed")
    leads = ", ".join(f"{name} {v:.0f}s" for name, v in (s.get("lead_s") or {}).items())
    return f"start-up {s.get('delay_s', 0):.0f}s ({source}); lead {leads}"


def _format_warm_start(w: dict) -> str:
    """The first cycle after a start or a leadership change: how its state was rebuilt."""
    if w.get("warm"):
        return f"warm-started from {w.get('source')} ({w.get('ticks')} ticks over {w.get('window_s', 0):.0f}s)"
    return f"cold start: {w.get('why')}"


def _format_health(h: dict) -> str:
    """The health side of a record: its action and reason, and each revision check that ran
    (both revisions' values and traffic, the test statistic against its thresholds, the verdict)."""
    def num(v) -> str:
        return "-" if v is None else f"{v:.4g}"

    out = ""
    if h.get("action") or h.get("reason") not in (None, "NoAction", "Scaling"):
        to = f" to revision {h['rollback_to']}" if h.get("rollback_to") else ""
        out += (f"\n    health: {h.get('action') or 'no action'}{to} [{h.get('reason')}]"
                f"{' trigger ' + h['trigger'] if h.get('trigger') else ''}")
    if h.get("rollout"):  # a rollout hold: paused while its revision test is undecided, or resumed
        out += f"\n    rollout: {h['rollout']} [{h.get('rollout_reason')}]"
    elif h.get("rollout_held"):
        out += "\n    rollout: held (paused by setpoint until its revision test decides)"
    for name, c in (h.get("revision_checks") or {}).items():
        if not c.get("active") and c.get("verdict") == "undecided":
            continue
        unit = "pod samples" if c.get("measure") == "latency" else "requests"
        out += (f"\n    {name}: revision {c['new_revision']} {num(c['new_value'])} ({num(c['new_requests'])} {unit}) vs "
                f"stable {c.get('stable_revision') or '-'} {num(c['stable_value'])} ({num(c['stable_requests'])}); "
                f"LLR {c['statistic']:.3g} (bad >= {c['bad_at']:.3g}, good <= {c['good_at']:.3g}, worse by "
                f"{c['worse_by']:g}x{'; with its recorded baseline' if c.get('compared_with') == 'baseline' else ''}) "
                f"-> {c['verdict']}")
    return out


DEFAULT_STATUS_SERVER = "http://127.0.0.1:8080"  # `setpoint run --listen`'s default port


@app.command(short_help="Show each target's replicas, conditions and health.")
def status(
    server: Annotated[Optional[str], typer.Option(
        "--server", "-s", metavar="URL", show_default=DEFAULT_STATUS_SERVER,
        help="Base URL of a running controller's HTTP port (its --listen); GET /status is read.")] = None,
    records: Annotated[Optional[Path], typer.Option(
        "--records", "-r", metavar="FILE", help="Build the view from a decisions .jsonl file instead (its rotated FILE.1, FILE.2, "
                                "... are read too), e.g. the --records file of `setpoint run`, or a `setpoint "
                                "simulate` output folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status document as JSON.")] = False,
    timeout: Annotated[float, typer.Option(metavar="SECONDS", help="Seconds to wait for --server.")] = 5.0,
) -> None:
    """Show per target: current and desired replicas, the reason, the last action, the
    HPA-style conditions (AbleToScale, ScalingActive, ScalingLimited: type, status, reason,
    message, as kubectl describe hpa shows them), health checks and held targets.

    Times print in local wall-clock time (set TZ to change the zone) with how long ago.
    The view comes from a running controller (--server, default http://127.0.0.1:8080) or
    from its decision records (--records: the latest record of each target). With --json,
    the document GET /status serves, times in RFC 3339 with the local offset.
    """
    from controller.errors import StatusError
    from controller.runtime.records import read_all_records, record_files
    from controller.runtime.status import book_from_records, fetch_status, to_document

    if server is not None and records is not None:
        raise StatusError("give --server or --records, not both")
    now = time.time()
    if records is not None:
        if records.is_dir():  # a `setpoint simulate` output folder
            records = records / "decisions.jsonl"
        if not record_files(records):
            raise StatusError(f"{records}: no such file (nor rotated {records.name}.1, ...); pass the --records "
                              f"file of `setpoint run`")
        skipped: list[str] = []
        book = book_from_records(read_all_records(records), on_skip=skipped.append)
        if skipped:
            typer.echo(f"note: {records}: {plural(len(skipped), 'record')} skipped, not decision records "
                       f"(the first: {skipped[0]})", err=True)
        if not len(book):
            raise StatusError(f"{records}: no decision records in it; pass the --records file of `setpoint run`")
        policies = book.view()
    else:
        policies = fetch_status(server or DEFAULT_STATUS_SERVER, timeout_s=timeout)
    if as_json:
        import json

        typer.echo(json.dumps(to_document(policies, now, tz=None), indent=1))
        return
    _print_status(policies, now)


def _print_status(policies: dict, now: float) -> None:
    """Per policy: a table of its targets, then each target's conditions and health checks."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from controller.runtime.status import wall_clock, zone_name

    console = Console(highlight=False)  # the terminal's width (80 columns when not a terminal)

    def table(title: str, columns: list[str], fold: tuple[int, ...] = ()) -> Table:
        t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
        for i, column in enumerate(columns):
            t.add_column(column, overflow="fold", no_wrap=i not in fold)
        return t

    console.print(f"times in local time, {zone_name(now)}; now {wall_clock(now, now).split(' ')[0]}", markup=False)
    for name, policy in policies.items():
        targets = policy["targets"]
        summary = table(f"policy {name}: last cycle {wall_clock(policy['at'], now)}",
                        ["target", "cur", "want", "reason", "last action", "health"], fold=(4, 5))
        for key, s in targets.items():
            summary.add_row(key, _num(s.get("current")), _num(s.get("desired")), s.get("reason") or "-",
                            _action_cell(s.get("last_action"), now), _health_cell(s.get("health")))
        if not targets:
            summary.add_row("(no target yet)", "", "", "", "", "")
        console.print(summary)
        started = _warm_start_line(targets, now)
        if started:
            console.print(started, markup=False)
        for key, s in targets.items():
            if s.get("withheld"):
                console.print(f"{key}: {s['withheld']} replica(s) withheld (pods running but not Ready past twice "
                              "their start-up), sized on top of the decision", markup=False)
            conditions = s.get("conditions") or {}
            if conditions:
                t = table(f"{key} conditions", ["type", "status", "reason", "message"], fold=(3,))
                for kind, c in conditions.items():
                    t.add_row(kind, c.get("status", ""), c.get("reason", ""), c.get("message", ""))
                console.print(t)
            health = s.get("health")
            if health and health.get("checks"):
                t = table(f"{key} health checks", ["check", "phase", "value", "since"], fold=(3,))
                for c in health["checks"]:
                    pods = f" ({c['firing_pods']}/{c['pods']} pods)" if c.get("scope") == "pod" else ""
                    t.add_row(c["name"], c.get("phase") or "-", _num(c.get("value")) + pods,
                              wall_clock(c.get("since"), now))
                console.print(t)
            line = _rollout_line(key, (health or {}).get("rollout"), now)
            if line:
                console.print(line, markup=False)


def _rollout_line(key: str, rollout: dict | None, now: float) -> str:
    """One line on a target's rollout hold: paused by Setpoint since when, or its last pause/resume."""
    from controller.runtime.status import wall_clock

    if not rollout:
        return ""
    last = rollout.get("last") or {}
    if rollout.get("held"):
        return (f"{key} rollout: paused by setpoint since {wall_clock(rollout.get('since'), now)}, "
                f"waiting for its revision test's verdict ({last.get('reason') or 'hold'})")
    if last:
        return f"{key} rollout: last {last.get('action')} {wall_clock(last.get('at'), now)} ({last.get('reason')})"
    return ""


def _warm_start_line(targets: dict, now: float) -> str:
    """How the policy's state started: warm from Prometheus' history (when, over what window), and
    the targets that started cold."""
    from controller.runtime.status import wall_clock

    starts = {k: s["warm_start"] for k, s in targets.items() if s.get("warm_start")}
    if not starts:
        return ""
    w = next(iter(starts.values()))
    cold = [k for k, x in starts.items() if not x.get("warm")]
    line = f"state: started {wall_clock(w.get('at'), now)}"
    if len(cold) < len(starts):
        line += f", warm from {w.get('source')} ({w.get('ticks')} ticks over {w.get('window_s', 0):.0f}s)"
    if cold:
        line += f"; cold (scale-down held one window): {', '.join(cold)} ({starts[cold[0]].get('why')})"
    return line


def _num(v) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _action_cell(action: dict | None, now: float) -> str:
    if not action:
        return "none"
    from controller.runtime.status import wall_clock

    what = action["action"]
    if action.get("to") is not None:
        what += f" {action.get('from')}->{action['to']}"
    reason = action.get("reason")
    if reason:
        what += f" ({reason})" if len(what) + len(reason) <= 20 else f"\n{reason}"
    return f"{what}\n{wall_clock(action.get('at'), now)}"


def _health_cell(health: dict | None) -> str:
    if not health:
        return "-"
    firing = [c["name"] for c in health.get("checks", []) if c.get("phase") == "firing"]
    parts = ["HELD", health.get("held_reason") or ""] if health.get("held") else []
    if (health.get("rollout") or {}).get("held"):  # spec.paused by us until the revision test decides
        parts.append("ROLLOUT PAUSED")
    parts.append(f"firing: {', '.join(firing)}" if firing else "ok")
    return "\n".join(p for p in parts if p)


@app.command(short_help="Run the controller against Prometheus and Kubernetes.")
def run(
    policies: Annotated[list[Path], typer.Option(
        "--policies", "-p", exists=True, help="Policy files or folders (repeatable). Reloaded when they change; "
                                              "an invalid change keeps the last good policies.")],
    prometheus: Annotated[str, typer.Option(help="Prometheus base URL, e.g. http://prometheus.monitoring:9090")],
    kubeconfig: Annotated[Optional[Path], typer.Option(
        exists=True, dir_okay=False, help="Kubeconfig file (default: in-cluster config, else ~/.kube/config).")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Decide and record, apply nothing (logs what would have been done).")] = False,
    shadow: Annotated[bool, typer.Option(
        "--shadow", help="Run beside the incumbent autoscaler: decide and record, write nothing to the cluster, "
                         "and export setpoint_shadow_* metrics comparing with the replicas it sets.")] = False,
    listen: Annotated[str, typer.Option(
        help="Address for /metrics, /healthz, /readyz and /status (read by `setpoint status`).")] = "0.0.0.0:8080",
    records: Annotated[Path, typer.Option(
        help="Decision records, appended as JSON lines (read them with `setpoint explain FILE`); "
             "- for standard output.")] = Path("setpoint-decisions.jsonl"),
    records_max_bytes: Annotated[int, typer.Option(
        min=0, help="Rotate the records file before it grows past this many bytes (0: never).")] = 50 * 1024 * 1024,
    records_keep: Annotated[int, typer.Option(
        min=0, help="Rotated records files kept (FILE.1 is the newest); disk use is at most "
                    "(1 + this) x --records-max-bytes.")] = 3,
    prometheus_token_file: Annotated[Optional[Path], typer.Option(help="Bearer token file (re-read when it changes).")] = None,
    prometheus_ca_file: Annotated[Optional[Path], typer.Option(help="CA bundle to verify Prometheus' TLS certificate.")] = None,
    prometheus_insecure: Annotated[bool, typer.Option(help="Do not verify Prometheus' TLS certificate.")] = False,
    prometheus_timeout: Annotated[float, typer.Option(help="Seconds one query may take, retries included.")] = 5.0,
    target_labels: Annotated[str, typer.Option(
        help="Labels that map a series to its workload: NAMESPACE_LABEL,NAME_LABEL.")] = "namespace,deployment",
    qps: Annotated[float, typer.Option(
        min=0.0, help="Kubernetes client-side rate limit (requests per second; 0: none).")] = 20.0,
    burst: Annotated[int, typer.Option(min=1, help="Kubernetes client-side burst.")] = 30,
    once: Annotated[bool, typer.Option(
        "--once", help="Run one cycle of every policy, then exit (1 if a cycle failed).")] = False,
    leader_elect: Annotated[bool, typer.Option(
        "--leader-elect", help="Act only while holding a coordination.k8s.io/v1 Lease (run 2 replicas for HA).")] = False,
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "setpoint",
    lease_namespace: Annotated[Optional[str], typer.Option(
        help="Namespace of the Lease (default: $POD_NAMESPACE, else default).")] = None,
    state_namespace: Annotated[Optional[str], typer.Option(
        help="Namespace of the ConfigMaps setpoint-state-<policy> that keep healing budgets, held targets and "
             "revision memory across restarts (default: the Lease's namespace).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    warm_start: Annotated[bool, typer.Option(
        help="At start-up and on becoming leader, rebuild each policy's smoothing, stabilization and rate-limit "
             "history by replaying the last window from Prometheus (needs kube-state-metrics' replicas; "
             "targets without them start cold, holding scale-down for one window).")] = True,
) -> None:
    """Run the controller: read Prometheus, decide, act on Kubernetes, on every policy's interval.

    One scheduled job per policy (no overlap, missed runs coalesced, small jitter). Logs are
    JSON lines on stderr. SIGTERM or Ctrl-C stops gracefully: running cycles finish, records
    are flushed. Exit 1 when the policies are invalid (the controller refuses to start).

    --shadow evaluates live without acting (no scale, Event or annotation is written) and
    exports setpoint_shadow_desired_replicas and agreement statistics against the replicas the
    incumbent (HPA, KEDA) sets.
    """
    import signal
    import threading

    import os

    from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
    from controller.errors import PolicyError
    from controller.runtime.dryrun import DryRunCluster, DryRunStateStore
    from controller.runtime.http import StatusServer, parse_listen
    from controller.runtime.service import ControllerService, ServiceOptions
    from controller.runtime.shadow import ShadowCluster, ShadowTelemetry
    from controller.runtime.telemetry import Telemetry, configure_json_logging

    configure_json_logging(_log_level(log_level))
    if not math.isfinite(qps):  # inf passes the option's min
        _fail([f"--qps: expected a number of requests per second >= 0, got {qps}"])
    # Live cycles decide on numpy unless SETPOINT_COMPILED=1: a cycle of 10,000 targets takes ~9 ms
    # there (bench/decide.py), small beside its queries, while the kernels would compile at every
    # start of the shipped image (read-only root: no numba cache): `run --once` measured 40.8 s and
    # 520 MiB max RSS compiled from cold, against the Deployment's 512Mi limit; 2.6 s, 99 MiB on numpy.
    _numpy_unless_asked()
    labels = tuple(x.strip() for x in target_labels.split(","))
    try:
        parse_listen(listen)
        if len(labels) != 2 or not all(labels):
            raise ValueError(f"--target-labels: expected NAMESPACE_LABEL,NAME_LABEL, got {target_labels!r}")
        metrics = PrometheusSource(PrometheusConfig.from_url(
            prometheus, bearer_token_file=str(prometheus_token_file) if prometheus_token_file else None,
            ca_file=str(prometheus_ca_file) if prometheus_ca_file else None, verify_tls=not prometheus_insecure,
            timeout_s=prometheus_timeout, target_labels=labels))
    except ValueError as exc:
        _fail([str(exc)])
    if shadow and leader_elect:
        _fail(["--shadow writes nothing, leader election included: drop --leader-elect (shadow replicas "
               "all evaluate; each exports its own figures)"])
    cluster = KubernetesCluster(kubeconfig=kubeconfig, context=context, qps=qps, burst=burst,
                                **({"emit_events": False} if shadow else {}))
    target = ShadowCluster(cluster) if shadow else DryRunCluster(cluster) if dry_run else cluster
    own_namespace = lease_namespace or os.environ.get("POD_NAMESPACE", "default")
    state = KubernetesStateStore(cluster, state_namespace or own_namespace)
    telemetry = ShadowTelemetry() if shadow else Telemetry()
    elector = None
    if leader_elect and not once:
        import socket

        from controller.adapters.kubernetes import fence_with_lease

        # every write re-checks leadership right before it is sent (state saves included)
        elector = fence_with_lease(cluster, own_namespace, lease_name, f"{socket.gethostname()}_{os.getpid()}").start()
    telemetry.track_leadership(elector.is_leader if elector else (lambda: True))
    try:
        service = ControllerService(policies, metrics, target, telemetry, ServiceOptions(
            records_path=records, records_max_bytes=records_max_bytes or None, records_keep=records_keep,
            warm_start=warm_start),
                                    is_leader=elector.is_leader if elector else (lambda: True),
                                    leader_term=(lambda: elector.term) if elector else (lambda: 0),
                                    state_store=DryRunStateStore(state) if dry_run or shadow else state)
    except PolicyError as exc:
        if elector:
            elector.stop()
        _fail(exc.errors)
    if once:
        results = service.run_all_once()
        service.stop()
        cluster.close()
        metrics.close()
        problems = _once_problems(sorted(service.policies), results, prometheus)
        if problems:
            _fail(problems)
        return
    server = StatusServer(listen, telemetry.registry, service.healthy, service.ready, status=service.status).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    stop.wait()
    service.stop(wait=True)
    if elector:
        elector.stop()  # release the Lease: the standby takes over at once
    server.stop()
    cluster.close()
    metrics.close()


def _once_problems(names: list[str], results: list, prometheus: str) -> list[str]:
    """One line per policy whose cycle failed or reported errors, naming the next step."""
    by_policy = {r.policy: r for r in results}
    problems = []
    for name in names:
        result = by_policy.get(name)
        if result is None:  # run_cycle logged the exception
            problems.append(f"policy {name}: the cycle failed (see the log above); check --kubeconfig and "
                            f"--context, and that the Kubernetes API is reachable")
        elif result.errors:
            more = f" (+{len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
            problems.append(f"policy {name}: {result.errors[0]}{more}; check --prometheus {prometheus} and the "
                            f"policy's queries")
        elif result.failed:
            target, why = result.failed[0]
            problems.append(f"policy {name}: {len(result.failed)} action(s) failed, {target}: {why}; check the "
                            f"controller's RBAC and the workload")
    return problems


@app.command(short_help="Re-arm self-healing of a held workload.")
def resume(
    target: Annotated[str, typer.Argument(help="The workload: NAMESPACE/NAME, or NAME in --namespace.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace when TARGET has none.")] = "default",
    kind: Annotated[str, typer.Option(help="Deployment or StatefulSet.")] = "Deployment",
    kubeconfig: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Kubeconfig file.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
) -> None:
    """Re-arm self-healing of a workload that a budget or the circuit breaker stopped.

    Writes the setpoint.io/resume annotation (the current time) on the workload; the running
    controller sees the new value on its next cycle and acts on the target again (its budget
    history is kept), and saves the re-armed state, so a restart does not hold it again. A
    resume written while no controller runs is seen by the next one. See setpoint_healing_held
    in /metrics and the HealingHeld Events.
    """
    from datetime import datetime, timezone

    from controller.adapters.kubernetes import KubernetesCluster
    from controller.errors import ActuationError
    from controller.model import RESUME_ANNOTATION, TargetRef

    ns, _, name = target.rpartition("/")
    ref = TargetRef(ns or namespace, name, kind)
    cluster = KubernetesCluster(kubeconfig=kubeconfig, context=context, emit_events=False)
    try:
        cluster.annotate(ref, RESUME_ANNOTATION, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    except ActuationError as exc:
        _fail([f"{ref}: {exc}"])
    finally:
        cluster.close()
    typer.echo(f"{ref}: resume requested; the controller re-arms it on its next cycle")


sim_app = typer.Typer(help="Serve a simulated cluster to real clients: its Kubernetes API and its metrics.",
                      no_args_is_help=True, rich_markup_mode=None)
app.add_typer(sim_app, name="sim", short_help="Serve a simulated cluster: Kubernetes API and metrics.")


@sim_app.command("serve", short_help="Serve a simulated cluster through the Kubernetes API.")
def sim_serve(
    scenario: Annotated[str, typer.Argument(
        help="A scenario file, or the name of a bundled one (a wrong name lists them).")] = "flash-crowd",
    kube_listen: Annotated[str, typer.Option(
        "--kube-listen", help="HOST:PORT of the Kubernetes API (loopback by default).")] = "127.0.0.1:8001",
    metrics_listen: Annotated[Optional[str], typer.Option(
        "--metrics-listen", help="HOST:PORT of the Prometheus metrics endpoint (GET /metrics); off if not given.")] = None,
    kubeconfig_out: Annotated[Optional[Path], typer.Option(
        "--kubeconfig-out", help="Write a kubeconfig for the simulated cluster here, with the bearer token (mode 0600).")] = None,
    token_file: Annotated[Optional[Path], typer.Option(
        "--token-file", help="Write the bearer token here (one line, mode 0600).")] = None,
    token: Annotated[Optional[str], typer.Option(
        "--token", envvar="SETPOINT_SIM_TOKEN", show_default=False,
        help="The bearer token clients must send (default: a fresh random one). Prefer the environment "
             "variable: a command line is visible to other users.")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve every request without a token: anyone who can connect can change the "
                          "cluster.")] = False,
    insecure_http: Annotated[bool, typer.Option(
        "--insecure-http", help="Serve plain HTTP instead of HTTPS (default: TLS with a CA made at start-up, "
                                "carried in the kubeconfig). kubectl sends no token over plain HTTP.")] = False,
    speed: Annotated[float, typer.Option(
        "--speed", min=0.001, help="Simulated seconds per wall second (2 runs the scenario twice as fast). "
                                   "Counters advance by the simulated amount divided by the speed, so "
                                   "PromQL rate() reads simulated per-second rates at any speed.")] = 1.0,
    test_hooks: Annotated[bool, typer.Option(
        "--test-hooks", help="Serve /_sim/faults and /_sim/requests (fault injection for tests; token required).")] = False,
    read_timeout: Annotated[float, typer.Option(
        "--read-timeout", min=0.1, help="Seconds a client has to send a whole request; slower ones are cut off.")] = 10.0,
    max_connections: Annotated[int, typer.Option(
        "--max-connections", min=1, help="Connections served at once; more get 429 at once.")] = 128,
    log_level: Annotated[str, typer.Option("--log-level", help="debug logs every request.")] = "info",
) -> None:
    """Serve a scenario's simulated cluster through the Kubernetes API, driven by its load in real time.

    Deployments (apps/v1, with the scale subresource), ReplicaSets, pods, events, leases and ConfigMaps
    behave as the real API server's do for what Setpoint uses (resourceVersion conflicts, 404,
    422 and Status bodies). Point `setpoint run --kubeconfig FILE` or kubectl at it: it serves HTTPS
    with a CA made at start-up (in the kubeconfig), discovery short names, tables and watches. Every
    request needs the bearer token (see --kubeconfig-out, --token-file; printed when neither is
    given) unless --no-auth. Runs until SIGTERM or Ctrl-C. Exit 1 on an invalid scenario.
    """
    import logging

    from controller.errors import ScenarioError
    from simulators.kubeapi.server import serve

    logging.basicConfig(level=_log_level(log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if no_auth and (token or token_file):
        _fail(["--no-auth cannot be combined with --token or --token-file"])
    if token is not None and not token.strip():
        _fail(["--token must not be empty"])

    def ready(server) -> None:
        typer.echo(f"Kubernetes API: {server.url}", err=True)
        if server.metrics_url:
            typer.echo(f"metrics: {server.metrics_url}", err=True)
        if kubeconfig_out:
            typer.echo(f"kubeconfig: {kubeconfig_out}", err=True)
        if token_file:
            typer.echo(f"token file: {token_file}", err=True)
        if no_auth:
            typer.echo(f"WARNING: --no-auth: {server.url} accepts every request without a token; "
                       "anyone who can connect can change the cluster", err=True)
        elif not (kubeconfig_out or token_file or token):
            typer.echo(f"token: {server.token}  (send it as 'Authorization: Bearer TOKEN'; "
                       "--kubeconfig-out or --token-file write it to a file instead)", err=True)

    try:
        serve(scenario, kube_listen, metrics_listen, kubeconfig_out, speed, test_hooks, token=token, on_ready=ready,
              auth=not no_auth, token_file=token_file, read_timeout_s=read_timeout, max_connections=max_connections,
              tls=not insecure_http)
    except ScenarioError as exc:
        _fail(exc.errors)
    except (OSError, ValueError) as exc:
        _fail([str(exc)])


if __name__ == "__main__":
    main()
