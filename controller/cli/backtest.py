"""``setpoint backtest``: a policy replayed on past Prometheus data and scored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.cli.common import (EXAMPLES_HELP, TARGET_LABELS_HELP, fail, out_folder, output_folder, parse_target_labels,
                                   policy_path, prometheus_config, said_if_interrupted, table_console)
from controller.cli.progress import bars_wanted, compile_notice
from controller.cli.root import app

#: --prometheus-timeout's default: Prometheus' own --query.timeout default (2 min), after which it
#: stops evaluating a query anyway.
DEFAULT_TIMEOUT_S = 120.0


def compare_option(value: str) -> str:
    """``--compare``: ``hpa``, or a policy file or folder as ``-p`` takes it (an example's name too)."""
    return value if value == "hpa" else str(policy_path(value))


@app.command(short_help="Replay policies on past Prometheus data and score them.")
def backtest(
    policy: Annotated[list[Path], typer.Option(
        "--policy", "-p", parser=policy_path, metavar="PATH",
        help="A policy file, a file of several, or a folder (every *.yaml / *.yml in it, as run --policies "
             "reads it); repeat for more. Several scaling policies replay together as setpoint run runs them; "
             "health-only policies are skipped (a backtest replays scaling). " + EXAMPLES_HELP)],
    prometheus: Annotated[str, typer.Option(help="Prometheus base URL holding the history.")],
    start: Annotated[str, typer.Option(
        "--from", help="Start: 2026-11-30T12:00:00Z, epoch seconds, or now-7d.")],
    end: Annotated[str, typer.Option("--to", help="End, in the same forms (now for now).")] = "now",
    step: Annotated[str, typer.Option(help="Resolution of the range queries, e.g. 15s.")] = "15s",
    compare: Annotated[Optional[str], typer.Option(
        parser=compare_option, metavar="hpa|PATH",
        help="hpa (each policy as HPA would run it, together as a set), or a second policy file or folder "
             "replayed side by side. " + EXAMPLES_HELP)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", parser=output_folder, metavar="FOLDER", help="Folder for result.json, timeline.csv and report.html (nothing written without it).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
    target_labels: Annotated[Optional[list[str]], typer.Option(
        metavar="[KIND=]NS,NAME", help=TARGET_LABELS_HELP)] = None,
    prometheus_timeout: Annotated[float, typer.Option(
        help="Seconds each range query may take (one per metric and per 2,880 steps of the window), from "
             "connecting to the last byte of its answer; retries after a transient failure (HTTP 5xx or 429, a "
             "lost connection) and the waits between them count within the same seconds. At most 3600.")
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Replay scaling policies over a past window of Prometheus data, tick by tick through the
    same Reconciler the controller runs, and compare them with the replicas that actually ran
    (kube_deployment_spec_replicas / kube_statefulset_replicas) and optionally a second policy or
    set of policies.

    Several policies (-p repeated, a folder, a file of several) replay together as setpoint run
    runs them: each over its own targets (its names, or the workloads of its namespace seen in
    its queries over the window), and a workload two of them select governed by the first to
    select it (the set's order: files sorted, documents in order) while the other leaves it
    alone, as setpoint run does (a note names each). One range query per distinct metric query
    of the whole set. The table sums each run over all targets and, for several policies, a
    second table splits it per policy.

    Assumption (stated in the report): load is shared evenly across replicas, so per-replica
    signals (utilization and value targets) are rescaled to the counterfactual replica count;
    averagePerReplica metrics are totals and replay unchanged. Prints a score table
    (replica-hours, replica changes, reversals, capacity-risk minutes), and a note for each
    metric whose samples were unusable (none, conflicting series, NaN, outside the window); the
    policies' warnings, as setpoint validate --target-labels says them, come first on stderr. Exit
    1 on bad input, when Prometheus cannot answer, or when a policy saw no usable sample.
    """
    from importlib.util import find_spec

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from controller.adapters.prometheus import PrometheusSource
    from controller.errors import BacktestError
    from controller.policy import parse_duration
    from controller.policy.summary import plural
    from controller.runtime.backtest import (MAX_WINDOW_S, blind_policies, history_notes, parse_time, sample_notes,
                                             stream_backtest)
    from controller.runtime.reconciler import RuntimePolicy
    from simulators.backtest_report import Backtest, actual_notes, write_outputs

    if out is not None and report and find_spec("matplotlib") is None:
        fail(["report.html needs matplotlib, which is not installed: pip install matplotlib, or pass --no-report"])
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
        labels = parse_target_labels(target_labels)
        if step_s < 1 or step_s != int(step_s):
            raise ValueError(f"--step: expected whole seconds of at least 1s, got {step}")
        if not end_s > start_s:
            raise ValueError(f"--to must be after --from (got {start} .. {end})")
        if end_s - start_s > MAX_WINDOW_S:
            raise ValueError(f"--from .. --to: a window of at most {MAX_WINDOW_S / 86400:.0f} days, got "
                             f"{(end_s - start_s) / 86400:,.0f} days ({start} .. {end})")
        config = prometheus_config(prometheus, timeout_s=prometheus_timeout, target_labels=labels)
    except ValueError as exc:
        fail([str(exc)])
    if out is not None:  # before the queries: a folder where result.json goes failed once they were done
        from simulators.backtest_report import OUTPUT_FILES

        out_folder(out, files=OUTPUT_FILES, command="backtest")
    mine, skipped = scaling_set(policy, labels=labels)
    theirs = _compare_set(compare, mine, labels)
    sets = [[RuntimePolicy.of(p) for p in mine]] + ([[RuntimePolicy.of(p) for p in theirs]] if theirs else [])
    names = run_names(mine, theirs, compare)
    descriptions = [set_description(s) for s in sets]
    console = Console(stderr=True)
    kept = f"nothing written to {out}" if out is not None else "nothing written"
    bars = bars_wanted(console)
    started = time.monotonic()

    def segment_line(done: int, total: int) -> None:  # in CI and into a file: a line per segment
        typer.echo(f"backtest: segment {done}/{total} queried and replayed ({time.monotonic() - started:.0f} s)",
                   err=True)

    with said_if_interrupted(f"{kept}: a backtest keeps no partial results (run it again, or over a shorter "
                             f"--from .. --to)"), PrometheusSource(config) as source, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("segments"),
            TimeElapsedColumn(), console=console, transient=True, disable=not bars) as progress, \
            compile_notice(console, "the decision kernels"):
        task = progress.add_task("query + replay", total=None)
        data, runs = stream_backtest(source, sets, names, descriptions, start_s, end_s, step_s, labels,
                                     timeout_s=config.timeout_s,
                                     on_progress=(lambda done, total: progress.update(task, completed=done,
                                                                                      total=total))
                                     if bars else segment_line)
    if not data.targets:
        raise BacktestError(no_targets(mine))
    flat = [p for one in sets for p in one]
    selects = [row for run in runs for row in (run.selects if run.selects is not None else [None] * len(run.policies))]
    named = [n for r, run in enumerate(runs) for n in policy_labels(run, r)]
    samples = sample_notes(flat, data, labels, named, selects, owners=sets[0])
    unseeing = blind_policies(flat, data, selects)
    blind = blind_named(unseeing, flat, runs, [mine, theirs or []], compare == "hpa")
    if blind:
        # what the blind policies' own queries gave: not the other policies' (a set's), whose
        # gaps at their own workloads would read as this policy's
        at = [i for i, p in enumerate(flat) if any(p is q for q in unseeing)]
        # the late start first: the query notes below leave out the times before it
        gave = history_notes(data) + sample_notes([flat[i] for i in at], data, labels, [named[i] for i in at],
                                                  [selects[i] for i in at], owners=sets[0], replicas_of_selected=True)
        fail([f"{', '.join(blind)}: no usable sample of its metrics from {start} to "
              f"{end}, so nothing to score. What the queries gave:", *(f"  {line}" for line in gave)])
    notes = replay_notes(data, runs, flat, mine, theirs, step_s) + skipped
    notes += samples
    missing = [t.key for t, known in zip(data.targets, data.has_actual) if not known]
    if missing:
        notes.append(f"the replicas that ran are unknown for {plural(len(missing), 'target')} ({', '.join(missing[:5])}): "
                     f"their signals are replayed unscaled")
    bt = Backtest(data, runs, ", ".join(str(p) for p in policy), config.safe_url, set_differences(mine, theirs),
                  notes, {run.name: {p.name: f"{p.file}:{p.line}" for p in loaded}
                          for run, loaded in zip(runs, [mine, theirs or []])})
    notes += actual_notes(bt)  # the same list: the report's notes too
    _print_backtest(bt)
    for note in notes:
        typer.echo(note, err=True)
    if out is not None:
        for kind, path in write_outputs(bt, out, report=report).items():
            typer.echo(f"{kind:>9}: {path}")


# --- the policies replayed --------------------------------------------------------------------------

#: The name of a run of several policies (one policy's run is named after it), and of the
#: comparison's when it is not ``hpa``.
SET_RUN, COMPARE_RUN = "policies", "compare"


def scaling_set(paths: list[Path], option: str = "--policy", labels=None) -> tuple[list, list[str]]:
    """(the scaling policies of ``paths``: files and folders read as ``setpoint run --policies``
    and ``setpoint validate`` read them, in their order; a note per health-only policy, skipped).
    Exit 1 with every error of every file (file, line, field), as ``validate`` names them, or when
    nothing scales. Health-only policies are skipped rather than refused: a backtest replays
    scaling only (their checks act on pods, which a replay does not have), and the folder a team
    runs holds them beside the scaling ones. The check's warnings (a query's series judged by
    ``labels``, --target-labels) go to stderr, as ``setpoint run`` logs them at each load."""
    from controller.policy import check_policies

    check = check_policies(paths, *([] if labels is None else [labels]))
    if check.errors:
        fail(check.errors)
    for warning in check.warnings:  # as validate and run say them, before the queries: a StatefulSet's query
        typer.echo(str(warning), err=True)  # grouped by deployment reads nothing, and this says the fixes
    scaling = [p for p in check.policies if p.scales]
    healers = [p for p in check.policies if not p.scales]
    shown = ", ".join(str(p) for p in paths)
    if not scaling:
        fail([f"{option}: {shown}: expected a scaling policy, found 0: "
              + "; ".join(f"{p.file}:{p.line}: {p.name} only heals (no scaling section)" for p in healers)
              + "; a backtest replays scaling"])
    return scaling, [f"{p.file}:{p.line}: policy {p.name} only heals (no scaling section): skipped, a backtest "
                     f"replays scaling only" for p in healers]


def _compare_set(compare: str | None, mine: list, labels=None) -> list | None:
    """The comparison's policies: ``hpa``, each of ``mine`` as HPA would run it (one alone is
    named ``hpa``, as before sets; several keep their names: they make up the run ``hpa``); a
    file or folder, its scaling policies; None without ``--compare``."""
    from controller.policy.counterpart import hpa_counterpart

    if compare is None:
        return None
    if compare == "hpa":
        return [hpa_counterpart(p) if len(mine) == 1 else hpa_counterpart(p, name=p.name) for p in mine]
    theirs, skipped = scaling_set([Path(compare)], "--compare", labels)
    for note in skipped:
        typer.echo(f"--compare: {note}", err=True)
    return theirs


def run_names(mine: list, theirs: list | None, compare: str | None) -> list[str]:
    """One policy's run is named after it, a set's ``policies``; the comparison's ``hpa``, its one
    policy's name (``compare`` when the same), or ``compare`` for a set."""
    first = mine[0].name if len(mine) == 1 else SET_RUN
    if theirs is None:
        return [first]
    if compare == "hpa":
        return [first, "hpa"]
    return [first, theirs[0].name if len(theirs) == 1 and theirs[0].name != first else COMPARE_RUN]


def set_description(policies: list) -> str:
    """``policy web (preset: hpa)``, or ``3 policies: api, web, worker (preset: hpa)``."""
    hpa = " (preset: hpa)" if all(p.params.hpa_semantics for p in policies) else ""
    if len(policies) == 1:
        return f"policy {policies[0].name}{hpa}"
    return f"{len(policies)} policies: {', '.join(p.name for p in policies)}{hpa}"


def policy_labels(run, index: int) -> list[str]:
    """How notes name the policies of ``run`` (the ``index``-th): a run of one by the run's name,
    as before sets; the first set's by theirs; a comparison set's as ``RUN/POLICY``."""
    if len(run.policies) == 1:
        return [run.name]
    return list(run.policies) if index == 0 else [f"{run.name}/{p}" for p in run.policies]


def blind_named(blind: list, flat: list, runs: list, loaded: list[list], hpa: bool) -> list[str]:
    """The policies that saw no usable sample (``blind``, among ``flat``: the runs' policies in
    order, as ``loaded``), as the error names them: ``policy web`` in a run of one policy (as
    before sets); ``policy web (imported/web.yaml:1)`` in a set, ``compare/policy web (...)`` in a
    comparison set. An ``hpa`` comparison set reads the first set's queries: its policies are
    blind with theirs, and left unnamed."""
    chosen = {id(p) for p in blind}
    names, i = [], 0
    for r, (run, policies) in enumerate(zip(runs, loaded)):
        for p in policies:
            if id(flat[i]) in chosen and not (r and hpa and len(policies) > 1):
                names.append(f"policy {p.name}" if len(policies) == 1 else
                             f"{'' if r == 0 else run.name + '/'}policy {p.name} ({p.file}:{p.line})")
            i += 1
    return names


def off_step_note(policy: str, interval_s: float, step_s: float) -> str:
    """The note for a policy whose interval (s) is not a multiple of the replay's --step (s): how
    many samples apart its cycles run."""
    from controller.policy.summary import plural

    every = max(1, round(interval_s / step_s))
    return (f"{policy}: interval {interval_s:g}s is not a multiple of --step {step_s:g}s: it runs every "
            f"{'sample' if every == 1 else plural(every, 'sample')}")


def replay_notes(data, runs: list, flat: list, mine: list, theirs: list | None, step_s: float) -> list[str]:
    """The notes of a replay before those of the samples: the assumption, policies that select no
    target, intervals off the step, a comparison on other targets, the conflicts of each set and
    the targets a comparison set leaves out, and where the history starts."""
    from controller.runtime.backtest import LOAD_ASSUMPTION, conflict_notes, start_notes, unselected_notes

    notes = [f"assumption: {LOAD_ASSUMPTION}", *idle_notes(runs[0], mine)]
    if theirs and len(runs) > 1:  # the comparison replays on the first set's targets
        notes += idle_notes(runs[1], theirs, f"{runs[1].name}: ")
    for p in dict((p.name, p) for p in flat).values():
        if p.params.interval_s % step_s:
            notes.append(off_step_note(p.name, p.params.interval_s, step_s))
    if len(mine) == 1 and theirs and len(theirs) == 1 and theirs[0].targets != mine[0].targets:
        notes.append(f"{theirs[0].name} selects other targets than {mine[0].name}; both are replayed on "
                     f"{mine[0].name}'s ({mine[0].targets.describe()})")
    for r, run in enumerate(runs):
        notes += conflict_notes(run, data.targets, f"{run.name}: " if r else "")
    if len(runs) > 1:
        notes += unselected_notes(runs[1], data.targets)
    return notes + start_notes(data)


def idle_notes(run, policies: list, prefix: str = "") -> list[str]:
    """A note per policy of a set that selects no target over the window: a label selector whose
    namespace showed no series of its queries, or (a comparison's, replayed on the first set's
    targets) names none of them; nothing of it is replayed, and its row reads 0."""
    if run.selects is None:
        return []
    out = []
    for p, row in zip(policies, run.selects):
        if row.any():
            continue
        why = (f"it names none of the replayed targets ({', '.join(p.targets.names)})" if p.targets.names
               else f"no series of its queries in namespace {p.targets.namespace!r} in the window")
        out.append(f"{prefix}{p.file}:{p.line}: policy {p.name} selects no target: {why}; nothing of it is replayed")
    return out


def no_targets(mine: list) -> str:
    """The error when the window showed no target at all."""
    if len(mine) == 1:
        return (f"no targets: the policy selects by label and no series of namespace {mine[0].targets.namespace!r} "
                f"came back anywhere in the window; check the queries and the window")
    return ("no targets: the policies select by label and no series of their namespaces ("
            + ", ".join(dict.fromkeys(p.targets.namespace for p in mine))
            + ") came back anywhere in the window; check the queries and the window")


def set_differences(mine: list, theirs: list | None) -> list[str]:
    """``field: A vs B`` between the two runs' policies: one pair as before sets; for sets, each
    policy with its namesake (``web: field: A vs B``; the ``hpa`` counterparts keep the names) and
    the names only one side holds."""
    from controller.policy.counterpart import spec_differences

    if not theirs:
        return []
    if len(mine) == 1 and len(theirs) == 1:
        return spec_differences(mine[0], theirs[0])
    other = {p.name: p for p in theirs}
    paired = [p for p in mine if p.name in other]
    whose: dict[str, list[str]] = {}  # a difference -> the policies it holds for (one line for all)
    for p in paired:
        for d in spec_differences(p, other[p.name]):
            whose.setdefault(d, []).append(p.name)
    lines = [f"{'every policy' if len(names) == len(paired) else ', '.join(names)}: {d}" for d, names in whose.items()]
    only = [p.name for p in mine if p.name not in other], [p.name for p in theirs if p.name not in
                                                           {q.name for q in mine}]
    lines += [f"only in {side}: {', '.join(names)}" for side, names in zip(("the policies", "the comparison"), only)
              if names]
    return lines


def _print_backtest(bt) -> None:
    """The score table (a row per run, summed over all targets), the per-policy table when a run
    replays several policies, and the differences between the runs' policies."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from simulators.backtest_report import policy_rows, table_rows

    policies = f", {len(bt.runs[0].policies)} policies" if len(bt.runs[0].policies) > 1 else ""
    from controller.policy.summary import plural

    table = Table(title=f"backtest: {plural(len(bt.data.targets), 'target')}{policies}, "
                        f"{plural(int(bt.data.t_s.size), 'sample')}",
                  box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    for column in ("run", "replica-\nhours", "changes", "reversals", "capacity-risk\nminutes"):
        table.add_column(column, justify="left" if column == "run" else "right", overflow="fold")
    for row in table_rows(bt):
        table.add_row(escape(row["controller"]), *_figures(row))
    table_console().print(table)
    if bt.per_policy:
        split = Table(title="per policy (each target counted for the policy that governed it)", box=box.SIMPLE_HEAD,
                      show_edge=False, collapse_padding=True)
        for column in ("run", "policy", "targets", "replica-\nhours", "changes", "reversals", "capacity-risk\nminutes"):
            split.add_column(column, justify="left" if column in ("run", "policy") else "right", overflow="fold")
        for row in policy_rows(bt):
            split.add_row(escape(row["run"]), escape(row["policy"]), str(len(row["targets"])), *_figures(row))
        table_console().print(split)
    if bt.differences:
        typer.echo(f"differences ({bt.runs[0].name} vs {bt.runs[-1].name}):")
        for line in bt.differences:
            typer.echo(f"  {line}")


def _figures(row: dict) -> tuple[str, str, str, str]:
    """A table row's replica-hours, changes, reversals and capacity-risk minutes, as printed."""
    return (f"{row['replica_hours']:.2f}", str(row["replica_changes"]), str(row["reversals"]),
            f"{row['capacity_risk_minutes']:g}")
