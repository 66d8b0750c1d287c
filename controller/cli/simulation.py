"""``setpoint simulate`` (a scenario offline: score table, result.json, report.html) and
``setpoint warm`` (the simulator's kernels compiled ahead)."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.bundled import bundled_policy
from controller.cli.common import (DEFAULT_HPA_POLICY, DEFAULT_SIM_POLICY, EXAMPLES_HELP, Scaler, equal_cost_cells, fail,
                                   numpy_unless_asked, one_policy, out_folder, output_folder, policy_file,
                                   policy_under_test, said_if_interrupted, say_warnings, table_console)
from controller.cli.progress import PROGRESS_REDRAW_S, compile_notice
from controller.cli.root import app

#: Health actions listed under the score table (the rest: `setpoint explain OUT --changes`).
HEALTH_ACTIONS_SHOWN = 10


@app.command(short_help="Simulate a scenario offline and score the controllers.")
def simulate(
    scenario: Annotated[str, typer.Argument(
        help="A scenario file, or the name of a bundled one (a wrong name lists them).")] = "flash-crowd",
    policy: Annotated[Optional[Path], typer.Option(
        "--policy", "-p", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_SIM_POLICY}",
        help="The policy under test: one scaling policy, or one health-only policy (no scaling section), run "
             "beside what scales the workload (--scaler). " + EXAMPLES_HELP)] = None,
    baseline: Annotated[list[str], typer.Option(
        "--baseline", "-b", help="Baselines run in the same simulation: hpa, fixed-max, oracle. Repeat the option "
                                 "or separate them with commas for several.")] = ["hpa", "oracle"],
    hpa_policy: Annotated[Optional[Path], typer.Option(
        "--hpa-policy", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy used as the hpa baseline. " + EXAMPLES_HELP)] = None,
    scaler: Annotated[Optional[Scaler], typer.Option(
        "--scaler", case_sensitive=False, show_default="hpa",
        help="For a health-only policy, or given with a policy that also scales (its scaling section is then set aside: "
             "its health checks alone): what scales the workload while Setpoint heals it, as in production. hpa: "
             "the --hpa-policy preset, as the hpa baseline runs it; fixed: each service's initialReplicas, changed "
             "only by the policy's own scale-up actions. The table compares it with the same scaler without the "
             "healing.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the scenario's random seed.")] = None,
    scenario_set: Annotated[list[str], typer.Option(
        "--scenario-set", metavar="PATH=VALUE",
        help="Change a field of the scenario for this run, [*] for every item of a list, e.g. "
             "'spec.services[*].startupDelay=3m' (what if the pods took 3 minutes to start?). Repeat for several "
             "fields; one value each (setpoint sweep runs several).")] = [],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", parser=output_folder, metavar="FOLDER", help="Folder for result.json, report.html and decisions.jsonl (default: out/SCENARIO, with "
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
    HPA baseline and the oracle. A health-only policy (a health section, no scaling) runs beside
    the workload's scaler (--scaler: the hpa preset by default, or fixed replicas) and is
    compared with that scaler alone. The health actions of a policy with a health section are
    listed under the table (a scaling one's scale actions left out). Exit 1 on an
    invalid scenario or policy, or one whose estimated memory need is over --max-memory.
    """
    from controller.errors import InvalidInput
    from simulators.memory import parse_size

    try:
        max_memory_bytes = None if max_memory is None else parse_size(max_memory)
    except ValueError as exc:
        fail([f"--max-memory: {exc}"])
    try:
        _simulate(scenario, policy, baseline, hpa_policy, seed, out, report, frontier, frontier_targets,
                  max_memory_bytes, jobs, scenario_set, scaler)
    except InvalidInput as exc:
        fail(exc.errors)
    except MemoryError:
        fail([f"{scenario}: ran out of memory; shorten spec.duration, raise spec.tick, or use fewer services or "
               "baselines"])


def _simulate(scenario: str, policy: Path | None, baseline: list[str], hpa_policy: Path | None, seed: int | None,
              out: Path | None, report: bool, frontier: bool, frontier_targets: str,
              max_memory_bytes: int | None, jobs: int | None, scenario_set: list[str],
              scaler: Scaler | None = None) -> None:
    from importlib.util import find_spec

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from controller.policy import health_side
    from simulators.frontier import parse_targets
    from simulators.hpa_sweep import first_pass, simulate_with_frontier
    from simulators.memory import check_fits, memory_limit
    from simulators.output import OUTPUT_FILES, write_outputs
    from simulators.parallel import usable_cpus
    from simulators.result import shown_path
    from controller.runtime.reconciler import RuntimePolicy
    from simulators.runner import (check_bindings, compiled_pays, healing_controllers, misspelt_bindings,
                                   standard_controllers)
    from simulators.runner import simulate as run_simulation
    from simulators.scenario_set import folder_name, varied_scenario

    if report and find_spec("matplotlib") is None:  # e.g. in the controller image
        fail(["report.html needs matplotlib, which is not installed: pip install matplotlib, or pass --no-report"])
    # -b hpa,oracle as -b hpa -b oracle (tune --scenarios takes commas); -b hpa -b hpa: one hpa run (a
    # second drew a bar that never moved)
    baseline = list(dict.fromkeys(b.strip() for given in baseline for b in given.split(",") if b.strip()))
    sc = varied_scenario(scenario, scenario_set, seed=seed)
    say_warnings(sc.warnings)  # valid, probably not meant (a flash crowd after the end); result.json keeps them
    # Results and the report name the files as the user gave them, or by their bundled names.
    policy_shown = shown_path(policy) if policy else f"bundled {DEFAULT_SIM_POLICY}"
    hpa_shown = shown_path(hpa_policy) if hpa_policy else f"bundled {DEFAULT_HPA_POLICY}"
    policy = policy or bundled_policy(DEFAULT_SIM_POLICY)
    hpa_policy = hpa_policy or bundled_policy(DEFAULT_HPA_POLICY)
    under_test, healer = policy_under_test(policy, policy_shown)
    if healer is None and scaler is not None:
        if under_test.health is None:
            fail([f"--scaler: policy {under_test.name} ({policy_shown}) scales the workload itself and has no health "
                  "section; --scaler chooses what scales the workload beside a policy's health checks: leave it "
                  "out, or pass a policy with a health section"])
        # the team's whole policy, its healing measured alone: beside the scaler, against the scaler alone
        under_test, healer = None, health_side(under_test)
        typer.echo(f"note: --scaler {scaler.value}: policy {healer.name}'s scaling section is set aside; its health "
                   f"checks run beside the {scaler.value} scaler", err=True)
    scaler_name = (scaler or Scaler.HPA).value
    needs_hpa = "hpa" in baseline or frontier or (healer is not None and scaler_name == "hpa")
    hpa = one_policy(hpa_policy, hpa_shown, "--hpa-policy") if needs_hpa else None
    try:
        targets = parse_targets(frontier_targets) if frontier else []
    except ValueError as exc:
        fail([str(exc)])
    try:
        if healer is None:
            controllers = standard_controllers(under_test, baseline, hpa, under_test.params.max_replicas)
        else:
            controllers = healing_controllers(healer, scaler_name, baseline, hpa, _fixed_max(healer, hpa, scaler_name))
        # checked before the progress bars draw; the frontier's first targets run in the same pass
        runs = controllers + (first_pass(controllers, hpa, targets)[1] if frontier else [])
        check_bindings(sc, controllers)  # every unbound metric at once, before the bars and the --out folder
    except ValueError as exc:
        fail([str(exc)])
    say_warnings(misspelt_bindings(sc, RuntimePolicy.of(under_test or healer)))  # a typo binds nothing
    check_fits(sc, runs, memory_limit(max_memory_bytes))
    out_dir = out_folder(out or Path("out") / folder_name(sc.name), files=OUTPUT_FILES, command="simulate")
    if not compiled_pays(sc, len(runs)):  # a short run: as fast on numpy, and nothing to compile first
        numpy_unless_asked()
    console = Console(stderr=True)
    with said_if_interrupted(f"nothing written to {out_dir}: a simulation keeps no partial results"), \
            simulated_notices(sc.start_s):
        try:
            _warm_kernels(console, sc, runs)
        except ValueError as exc:
            fail([str(exc)])
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
                fail([str(exc)])
    _say_writing(console, logs, out_dir)
    paths = write_outputs(result, logs, out_dir, sc.start_s, report=report)
    _print_scores(result)
    if healer is not None:
        _print_health_actions(result, healer.name, out_dir)
    elif under_test.health is not None:  # a policy that scales and heals: its restarts and rollbacks
        _print_health_actions(result, under_test.name, out_dir, scales=True)
    for kind, path in paths.items():
        typer.echo(f"{kind:>9}: {path}")



#: Records from which `simulate` says it is writing decisions.jsonl: about a second of writing and
#: more (1,000 services under two controllers: 960,000 records and 750 MiB for 2 hours, ~10 s at load 18)
SAY_WRITING_FROM_RECORDS = 200_000


def _say_writing(console, logs: dict, out_dir: Path) -> None:
    """A line on stderr before a large decisions.jsonl is written, after the bars have finished."""
    from controller.policy.summary import plural

    records = sum(log.record_count for log in logs.values())
    if records >= SAY_WRITING_FROM_RECORDS:
        console.print(f"writing {plural(records, 'decision record')} to {out_dir / 'decisions.jsonl'}")


@contextmanager
def simulated_notices(start_s: float):
    """The simulated controllers' warnings on stderr (HealingHeld, a metric gone blind...), marked
    as the simulation's: bare, a line saying `setpoint resume default/web` re-arms a target "at
    01:16 UTC" read as a live cluster's, at a wall-clock time, where its times are the scenario's
    clock (epoch seconds from its start)."""
    from controller.runtime.external_scale import clock_time

    handler = logging.StreamHandler(sys.stderr)  # the stream of now: a test runner's, if it swapped it
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"setpoint: in the simulation (times on the scenario's clock, which "
                                           f"starts at {clock_time(start_s)}): %(message)s"))
    logger = logging.getLogger("setpoint.runtime")
    logger.addHandler(handler)  # found on the way up, so Python's bare last-resort handler stays silent
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _fixed_max(healer, hpa, scaler: str) -> int | None:
    """The replicas of the fixed-max baseline beside a health-only policy: the bound of what may
    scale the workload (the healer's replicas.max when it scales up, else the hpa preset's
    beside it); None beside fixed replicas without bounds (each service's maxPods)."""
    if healer.model.spec.replicas is not None:
        return healer.params.max_replicas
    return hpa.params.max_replicas if scaler == "hpa" and hpa is not None else None


def _print_health_actions(result, healer: str, out_dir: Path, scales: bool = False) -> None:
    """The health actions the policy ``healer`` took in the ``policy`` run (time, target, action,
    reason), the first HEALTH_ACTIONS_SHOWN of them: what the healing did, beside the table that
    says what it bought. The scaler's own scale actions are not listed (``scales``: the policy's
    own, for a policy that scales and heals)."""
    from simulators.score import health_action_lines

    lines = health_action_lines(result.runs["policy"], healer, HEALTH_ACTIONS_SHOWN, scales)
    console = table_console()
    for line in lines:
        console.print(line, highlight=False, markup=False)
    console.print(f"Each cycle's checks and why: setpoint explain {out_dir} --changes", highlight=False, markup=False)


def _warm_kernels(console, scenario, runs: list) -> None:
    """Compile, or load from the disk cache, the kernels the runs use before the progress bars
    draw and before worker processes fork (they inherit them); a line on stderr when compiling
    them takes a while (~40 s on a machine's first run, or after an upgrade)."""
    from simulators.runner import warm_kernels

    with compile_notice(console, "the simulator's kernels"):  # its watcher is joined: the workers fork warm
        warm_kernels(scenario, runs)


def _print_scores(result) -> None:
    from rich import box
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
            cells += equal_cost_cells(row["hpa_equal_cost"])
        table.add_row(*cells)
    console = table_console()
    console.print(table)
    for line in driven_lines(rows, result.services):
        console.print(line, highlight=False, markup=False)
    console.print(column_legend(with_faults), highlight=False, markup=False)
    if result.frontier is not None:
        swept = ", ".join(f"{p.target_pct:g}%: {p.replica_hours:.2f} h / {p.slo_violation_minutes:g} min"
                          for p in result.frontier.points)
        console.print(f"HPA @ eq. cost: the SLO-violation minutes of the hpa preset re-targeted to spend the row's "
                      f"replica-hours (interpolated on its sweep; * = outside the swept range, held flat). "
                      f"Swept CPU targets: {swept}.", highlight=False, markup=False)



def column_legend(with_faults: bool) -> str:
    """One line saying what the score table's columns count (simulators/score.py defines them)."""
    from simulators.score import MITIGATION_HOLD_S, REVERSAL_WINDOW_S

    worst = (f"; worst mitig.: the longest from a fault's start until its services hold the SLO for "
             f"{MITIGATION_HOLD_S:g} s") if with_faults else ""
    return ("Columns: SLO viol. minutes: minutes in which a service broke its SLO (latency, errors or drops), "
            "summed over services; replica-hours: spec replicas over time; vs oracle: those over the oracle's (it "
            "knows the load ahead and starts just enough pods in time; faults it does not foresee); changes: ticks at which spec replicas changed; "
            f"reversals: a change the other way within {REVERSAL_WINDOW_S / 60:g} min of the one before{worst}.")


@app.command(short_help="Compile the simulator's kernels ahead, into numba's disk cache.")
def warm(
    policy: Annotated[Optional[Path], typer.Option(
        "--policy", "-p", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_SIM_POLICY}",
        help="A policy whose kernels to compile too (one scaling policy). " + EXAMPLES_HELP)] = None,
    hpa_policy: Annotated[Optional[Path], typer.Option(
        "--hpa-policy", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy of the hpa baseline. " + EXAMPLES_HELP)] = None,
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

    under_test = one_policy(policy or bundled_policy(DEFAULT_SIM_POLICY))
    hpa = one_policy(hpa_policy or bundled_policy(DEFAULT_HPA_POLICY))
    try:
        done = warm_kernels(under_test, hpa)
    except RuntimeError as exc:
        fail([f"nothing warmed: {exc}"])
    typer.echo(warmed_line(done))


def warmed_line(done) -> str:
    """What `setpoint warm` says it did (``done``: simulators.warm.Warmed): kernels compiled now and
    found in the cache, seconds, and where the cache is."""
    from controller.policy.summary import plural

    where = ", ".join(done.cache_dirs) or "none (in memory only)"
    if done.compiled:
        return (f"compiled {plural(done.compiled, 'kernel')}, {done.loaded} found in the cache, in "
                f"{done.seconds:.1f} s; cache: {where}")
    every = "the 1 kernel was" if done.loaded == 1 else f"all {done.loaded} kernels were"
    return f"{every} in the cache (loaded in {done.seconds:.1f} s); cache: {where}"
