"""``setpoint sweep`` (scenarios x policy variants x seeds, one merged report) and ``setpoint
tune`` (a policy's parameters searched within an SLO budget)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.bundled import bundled_policy
from controller.cli.common import (DEFAULT_HPA_POLICY, DEFAULT_SIM_POLICY, EXAMPLES_HELP, Scaler, equal_cost_cells, fail,
                                   file_folder_writable, number_option, out_folder, output_file, output_folder, policy_file,
                                   refuse_overwrite, say_warnings, table_console, worker_count)
from controller.cli.root import app
from controller.policy.summary import plural


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
        "--policy", "-p", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_SIM_POLICY}",
        help="A policy file (one scaling policy, or one health-only policy run beside --scaler); repeat for "
             "several. " + EXAMPLES_HELP)] = [],
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
        "--hpa-policy", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy of the frontier. " + EXAMPLES_HELP)] = None,
    frontier_targets: Annotated[str, typer.Option(
        "--frontier-targets", help="CPU utilization targets (percent) of HPA's frontier.")] = "40,50,60,70,80",
    out: Annotated[Path, typer.Option(
        "--out", "-o", parser=output_folder, metavar="FOLDER", help="Folder for result.json, report.html and cells/ (finished cells; a rerun skips them).")]
        = Path("out/sweep"),
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
    scaler: Annotated[Optional[Scaler], typer.Option(
        "--scaler", case_sensitive=False, show_default="hpa",
        help="For health-only policies: what scales the workload while they heal it (hpa: the --hpa-policy preset; "
             "fixed: each service's initialReplicas), also run alone as the variant they are compared with. Given "
             "with a policy that also scales, its scaling section is set aside: its health checks alone.")] = None,
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

    from controller.errors import InvalidInput
    from simulators.frontier import parse_targets
    from simulators.sweep import build_grid, ray_address_from

    try:
        targets = parse_targets(frontier_targets)
    except ValueError as exc:
        fail([str(exc)])
    try:
        grid = build_grid(scenarios, [str(p) for p in policy] or [str(bundled_policy(DEFAULT_SIM_POLICY))], set_,
                          seeds=seeds, hpa_policy=(hpa_policy or bundled_policy(DEFAULT_HPA_POLICY)) if hpa else None,
                          hpa_targets_pct=targets, scenario_settings=scenario_set,
                          scaler=scaler.value if scaler is not None else None,
                          scaler_policy=hpa_policy or bundled_policy(DEFAULT_HPA_POLICY))
        if scaler is not None:  # as simulate says it: the variant named after the policy is its healing alone
            from simulators.policy_set import read_policy_base

            for read in (read_policy_base(p).policy for p in policy):
                if read.health is not None and read.scales:
                    typer.echo(f"note: --scaler {scaler.value}: policy {read.name}'s scaling section is set aside; "
                               f"its health checks run beside the {scaler.value} scaler", err=True)
        result = _run_sweep(grid, out_folder(out, files=("result.json", "report.html"), folders=("cells",), command="sweep"),
                            worker_count(jobs), ray_address_from(ray))
    except InvalidInput as exc:
        fail(exc.errors)
    from simulators.sweep_result import write_result

    _print_sweep(result)
    for kind, path in write_result(result, out, report=report).items():
        typer.echo(f"{kind:>9}: {path}")


def _run_sweep(grid, out: Path, jobs: int, ray_address: str | None):
    """Run ``grid``'s cells with a progress bar on a terminal, plain lines otherwise (CI)."""
    from rich.console import Console

    from controller.cli.progress import GridBar, bars_wanted
    from simulators.sweep import CellStore, run_grid
    from simulators.sweep_result import merge

    cells = grid.cells()
    store = CellStore(out / "cells")
    where = f"Ray ({ray_address})" if ray_address else plural(jobs, "local worker")
    console = Console(stderr=True)
    typer.echo(f"sweep: {plural(len(grid.scenarios), 'scenario')} x {plural(len(grid.variants), 'variant')} x "
               f"{plural(grid.seeds, 'seed')} = {plural(len(cells), 'cell')} on {where}", err=True)
    say_warnings(w for s in grid.scenarios for w in s.warnings)  # once per file, not per cell or worker
    if grid.differences:
        typer.echo("the policies differ from the first file's in:\n" + "\n".join(f"  {d}" for d in grid.differences),
                   err=True)
    try:
        if bars_wanted(console):
            with GridBar(console) as bar:
                on_cell, on_progress = bar.grid(cells)
                records = run_grid(cells, store, jobs=jobs, ray_address=ray_address, on_cell=on_cell,
                                   on_progress=on_progress, say=bar.print)
        else:
            def line(c, done, total, cached) -> None:
                typer.echo(f"cell {done}/{total}: {c.scenario} / {c.variant} / seed {c.seed}"
                           f"{' (stored)' if cached else ''}", err=True)

            records = run_grid(cells, store, jobs=jobs, ray_address=ray_address, on_cell=line, say=_stderr_line)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the finished cells are kept in {store.folder}; the same command resumes there",
                   err=True)
        raise
    return merge(grid, records)


def _stderr_line(line: str) -> None:
    typer.echo(line, err=True)


def _print_sweep(result: dict) -> None:
    """The overall table: every variant's sums over the scenarios, Pareto front marked."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from simulators.sweep_result import table_rows

    table = Table(title=sweep_title(len(result['scenarios']), result['seeds_per_scenario']), box=box.SIMPLE_HEAD, show_edge=False,
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
                      *(equal_cost_cells(r["hpa_equal_cost"]) if with_hpa else []), "*" if r["pareto"] else "")
    table_console().print(table)


def sweep_title(scenarios: int, seeds: int) -> str:
    """The sweep table's title: how many scenarios, seeds each, and what its numbers are."""
    return (f"sweep: {plural(scenarios, 'scenario')}, {plural(seeds, 'seed')} each; sums over scenarios of the means "
            "over seeds")


def tune_banner(trials: int, train: int, seeds: int, frontier: str, held: int) -> str:
    """tune's first line: the trials on ``train`` scenarios x ``seeds``, ``frontier`` ('' or its
    '; first HPA's ...' part), then the ``held`` held-out scenarios (none: not said)."""
    return (f"tune: {plural(trials, 'trial')} on {plural(train, 'training scenario')} x {plural(seeds, 'seed')}"
            f"{frontier}" + (f"; then {plural(held, 'held-out scenario')}" if held else ""))


def holdout_missed_line(budget: str, missed: int, held: int) -> str:
    """What tune says when the tuned policy misses ``budget`` on ``missed`` of ``held`` held-out scenarios."""
    return (f"setpoint tune: the tuned policy misses the SLO budget ({budget}) on {missed} of "
            f"{plural(held, 'held-out scenario')}, which the search never saw: it may be over-fitted to the "
            "training scenarios")


def trial_line(t: dict) -> str:
    """The progress line of one finished tune trial (``on_trial``'s dict)."""
    what = ", ".join(f"{k}={v}" for k, v in t["values"].items())
    if "error" in t:
        return f"trial {t['number']}: {what}: invalid ({t['error']})"
    # the budget is per scenario (HPA's minutes at the trial's own cost, by default): say the margin. A trial
    # exactly at it (or over by less than the tolerance) has 0 to spare, not "-0"
    margin = (f"within budget ({max(0.0, -t['excess']) + 0.0:g} min to spare on the tightest scenario)"
              if t["feasible"] else f"over budget by {t['excess']:g} min on a scenario")
    return (f"trial {t['number']}: {what}: {t['replica_hours']:g} replica-hours, "
            f"{t['slo_violation_minutes']:g} min, {margin}")


@app.command(short_help="Search a policy's parameters for the fewest replica-hours within an SLO budget.")
def tune(
    policy: Annotated[Path, typer.Argument(parser=policy_file, metavar="POLICY", help="The policy to tune (one scaling policy). " + EXAMPLES_HELP)],
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
        "--set", metavar="PATH=RANGE", help="A parameter to search: PATH=LO..HI (continuous; whole numbers on an "
                                            "integer field such as spec.replicas.max), PATH=LO..HI:STEP or "
                                            "PATH=A,B,C. Default: each metric's target from 0.6x to 1.4x and the "
                                            "scale-down stabilization window from 0s to 30m.")] = [],
    max_violation_minutes: Annotated[Optional[float], typer.Option(
        "--max-violation-minutes", **number_option(0), help="Budget: at most this many SLO-violation minutes on each training "
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
        "--hpa-policy", parser=policy_file, metavar="FILE", show_default=f"bundled {DEFAULT_HPA_POLICY}",
        help="The preset: hpa policy of the HPA budget. " + EXAMPLES_HELP)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", parser=output_file, metavar="FILE", help="The tuned policy file (default: POLICY-tuned.yaml in the working "
                                            "directory).")] = None,
    work: Annotated[Path, typer.Option(
        "--work", parser=output_folder, metavar="FOLDER", help="Folder of the finished cells (rerunning the same search reads them back) and tune.json "
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
    when no trial meets the budget (nothing written). Exit 3 when the tuned policy misses the
    budget on a held-out scenario (over-fitting): the policy and tune.json are written all the
    same, and each such scenario is named on stderr with its minutes and how far over it is.
    """
    from contextlib import nullcontext

    from rich.console import Console

    from controller.cli.progress import GridBar, bars_wanted
    from controller.errors import InvalidInput
    from simulators.policy_set import parse_setting, read_policy_base
    from simulators.result import shown_path
    from simulators.scenario_set import check_distinct, parse_scenario_settings, scenario_variants
    from simulators.sweep import CellStore, PolicyBase, ray_address_from, read_scenario_input
    from simulators.frontier import DEFAULT_TARGETS_PCT
    from simulators.tune import Budget, Runner, check_whole_ranges
    from simulators.tune import tune as run_tune

    def names(values: list[str]) -> list[str]:
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    try:
        base = read_policy_base(policy)
        if not base.policy.scales:  # a health-only policy: nothing of it decides the replica-hours tune minimizes
            fail([f"{policy}: expected exactly one scaling policy, found 0: {base.policy.name} only heals (no scaling "
                  "section), and tune searches scaling parameters; score it with setpoint simulate or sweep, beside "
                  "its scaler (--scaler)"])
        base = PolicyBase(shown_path(policy), base.data, base.policy)
        settings = [parse_setting(t, allow_continuous=True) for t in set_]
        check_whole_ranges(settings)
        given = [read_scenario_input(n) for n in names(scenarios)]
        train = scenario_variants(given, parse_scenario_settings(scenario_set))
        held = [read_scenario_input(n) for n in names(holdout)] if holdout or not holdout_set else given
        held = scenario_variants(held, parse_scenario_settings(holdout_set, "--holdout-set"))
        check_distinct(train, held)
        say_warnings(w for s in [*train, *held] for w in s.warnings)  # once per file, before the search
        hpa = read_policy_base(hpa_policy or bundled_policy(DEFAULT_HPA_POLICY)) if max_violation_minutes is None else None
        # where the tuned policy goes, checked before the search (it failed after it, the search's end lost)
        target = out or Path(f"{policy.stem}-tuned.yaml")
        file_folder_writable(target, "--out", out)
        if target.is_dir():
            fail([f"--out: {target} is a folder; name the tuned policy's file"])
        trials_file = work / "tune.json"  # every trial's values and scores
        if trials_file.is_dir() or trials_file.absolute() == target.absolute():
            fail([f"--work: the search writes every trial to {trials_file}, which is "
                  f"{'a folder' if trials_file.is_dir() else 'the --out file'}; name another --work folder"])
        refuse_overwrite([target], force, "--out")  # the policy given, or a tuned file since edited
        console = Console(stderr=True)
        # a transient bar per grid (the HPA frontier, each trial, ...) on a terminal; lines above it
        bar = GridBar(console, transient=True) if bars_wanted(console) else None
        work = out_folder(work, "--work", files=("tune.json",), folders=("cells",))
        say = bar.print if bar else _stderr_line
        runner = Runner(CellStore(work / "cells"), seeds, worker_count(jobs),
                        ray_address_from(ray), on_grid=bar.grid if bar else None, say=say)
        frontier = "" if hpa is None else f"; first HPA's frontier on them ({len(DEFAULT_TARGETS_PCT)} CPU targets, the budget)"
        say(tune_banner(trials, len(train), seeds, frontier, len(held)))

        def progress(t: dict) -> None:
            say(trial_line(t))

        try:
            with runner, bar or nullcontext():
                result = run_tune(base, settings, train, held, runner, Budget(max_violation_minutes), trials=trials,
                                  sampler_seed=sampler_seed, hpa=hpa, on_trial=progress)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: the finished cells are kept in {runner.store.folder}; the same command (same "
                       "--sampler-seed) reruns the search from them", err=True)
            raise
    except InvalidInput as exc:
        fail(exc.errors)
    import json

    from importlib.metadata import version as dist_version

    from controller import __version__
    from controller.runtime.files import write_text_atomic
    from simulators.tune import holdout_misses, provenance, tune_json, tuned_policy_text

    if result.best is not None:  # first: the search's result is never lost to a later write
        write_text_atomic(target, tuned_policy_text(result, __version__, dist_version("optuna")))
    write_text_atomic(trials_file, json.dumps(tune_json(result), indent=1, allow_nan=False) + "\n")
    refused = [t for t in result.trials if "error" in t]
    if result.trials and len(refused) == len(result.trials):  # not a budget to raise: the --set cannot apply
        every = "the one trial was" if len(refused) == 1 else f"every one of the {len(refused)} trials was"
        fail([f"{every} refused by the policy's rules, so no budget was "
              f"tried; check the --set paths and ranges. The first: {refused[0]['error']}"])
    if result.best is None:
        fail([f"no trial met the budget ({result.budget.describe()}) in {plural(trials, 'trial')}; raise the budget, widen "
              f"the --set ranges or run more --trials"])
    for line in provenance(result, __version__, dist_version("optuna"))[2:]:
        typer.echo(line)
    typer.echo(f"wrote {target}")
    misses = holdout_misses(result)
    if misses:  # written all the same: the search is not lost; CI sees the over-fitting in the exit code
        from controller.cli.root import EXIT_HOLDOUT_MISSED

        typer.echo(holdout_missed_line(result.budget.describe(), len(misses), len(result.holdout.per_scenario)),
                   err=True)
        for miss in misses:
            typer.echo(f"  {miss.describe()}", err=True)
        typer.echo(f"{target} and {trials_file} are written; exit {EXIT_HOLDOUT_MISSED} (held-out scenarios over "
                   "budget)", err=True)
        raise typer.Exit(EXIT_HOLDOUT_MISSED)
