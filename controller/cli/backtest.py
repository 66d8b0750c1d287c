"""``setpoint backtest``: a policy replayed on past Prometheus data and scored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from controller.cli.common import fail, one_policy, out_folder, output_folder, prometheus_config, table_console
from controller.cli.root import app

#: --prometheus-timeout's default: Prometheus' own --query.timeout default (2 min), after which it
#: stops evaluating a query anyway.
DEFAULT_TIMEOUT_S = 120.0


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
        "--out", "-o", parser=output_folder, metavar="FOLDER", help="Folder for result.json, timeline.csv and report.html (nothing written without it).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
    target_labels: Annotated[str, typer.Option(
        help="Labels that map a series to its workload: NAMESPACE_LABEL,NAME_LABEL.")] = "namespace,deployment",
    prometheus_timeout: Annotated[float, typer.Option(
        help="Seconds each range query may take (one per metric and per 2,880 steps of the window), from "
             "connecting to the last byte of its answer; retries after a transient failure (HTTP 5xx or 429, a "
             "lost connection) and the waits between them count within the same seconds. At most 3600.")
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Replay a policy over a past window of Prometheus data, tick by tick through the same
    Reconciler the controller runs, and compare it with the replicas that actually ran
    (kube_deployment_spec_replicas / kube_statefulset_replicas) and optionally a second policy.

    Assumption (stated in the report): load is shared evenly across replicas, so per-replica
    signals (utilization and value targets) are rescaled to the counterfactual replica count;
    averagePerReplica metrics are totals and replay unchanged. Prints a score table
    (replica-hours, replica changes, reversals, capacity-risk minutes), and a note for each
    metric whose samples were unusable (none, conflicting series, NaN, outside the window). Exit
    1 on bad input, when Prometheus cannot answer, or when a policy saw no usable sample.
    """
    from importlib.util import find_spec

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from controller.adapters.prometheus import PrometheusSource
    from controller.errors import BacktestError
    from controller.policy import parse_duration
    from controller.policy.counterpart import hpa_counterpart, spec_differences
    from controller.runtime.backtest import (LOAD_ASSUMPTION, MAX_WINDOW_S, blind_policies, parse_time, sample_notes,
                                             start_notes, stream_backtest)
    from controller.runtime.reconciler import RuntimePolicy
    from simulators.backtest_report import Backtest, actual_notes, write_outputs

    if out is not None and report and find_spec("matplotlib") is None:
        fail(["report.html needs matplotlib, which is not installed: pip install matplotlib, or pass --no-report"])
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
        config = prometheus_config(prometheus, timeout_s=prometheus_timeout, target_labels=labels)
    except ValueError as exc:
        fail([str(exc)])
    if out is not None:  # before the queries: a folder where result.json goes failed once they were done
        from simulators.backtest_report import OUTPUT_FILES

        out_folder(out, files=OUTPUT_FILES, command="backtest")
    loaded = one_policy(policy)
    other = None
    if compare == "hpa":
        other = hpa_counterpart(loaded)
    elif compare is not None:
        if not Path(compare).is_file():
            fail([f"--compare: expected a policy file or hpa, got {compare!r}"])
        other = one_policy(Path(compare))
    policies = [RuntimePolicy.of(loaded)] + ([RuntimePolicy.of(other)] if other else [])
    names = [loaded.name] + ([other.name if other.name != loaded.name else "compare"] if other else [])
    descriptions = [f"policy {p.name}" + (" (preset: hpa)" if p.params.hpa_semantics else "") for p in policies]
    console = Console(stderr=True)
    with PrometheusSource(config) as source, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("segments"),
            TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("query + replay", total=None)
        data, runs = stream_backtest(source, policies, names, descriptions, start_s, end_s, step_s, labels,
                                     timeout_s=config.timeout_s,
                                     on_progress=lambda done, total: progress.update(task, completed=done,
                                                                                     total=total))
    if not data.targets:
        raise BacktestError(f"no targets: the policy selects by label and no series of namespace "
                            f"{loaded.targets.namespace!r} came back anywhere in the window; check the "
                            f"queries and the window")
    samples = sample_notes(policies, data, labels, names)
    blind = blind_policies(policies, data)
    if blind:
        fail([f"{', '.join(f'policy {p.name}' for p in blind)}: no usable sample of its metrics from {start} to "
              f"{end}, so nothing to score. What the queries gave:", *(f"  {line}" for line in samples)])
    missing = [t.key for t, known in zip(data.targets, data.has_actual) if not known]
    notes = [f"assumption: {LOAD_ASSUMPTION}"]
    for p in policies:
        if p.params.interval_s % step_s:
            notes.append(f"{p.name}: interval {p.params.interval_s:g}s is not a multiple of --step {step_s:g}s: it "
                         f"runs every {max(1, round(p.params.interval_s / step_s))} sample(s)")
    if other is not None and other.targets != loaded.targets:
        notes.append(f"{other.name} selects other targets than {loaded.name}; both are replayed on "
                     f"{loaded.name}'s ({loaded.targets.describe()})")
    notes += start_notes(data)
    notes += samples
    if missing:
        notes.append(f"the replicas that ran are unknown for {len(missing)} target(s) ({', '.join(missing[:5])}): "
                     f"their signals are replayed unscaled")
    bt = Backtest(data, runs, str(policy), config.safe_url,
                  spec_differences(loaded, other) if other else [], notes)
    notes += actual_notes(bt)  # the same list: the report's notes too
    _print_backtest(bt)
    for note in notes:
        typer.echo(note, err=True)
    if out is not None:
        for kind, path in write_outputs(bt, out, report=report).items():
            typer.echo(f"{kind:>9}: {path}")


def _print_backtest(bt) -> None:
    from rich import box
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
    table_console().print(table)
    if bt.differences:
        typer.echo(f"differences ({bt.runs[0].name} vs {bt.runs[-1].name}):")
        for line in bt.differences:
            typer.echo(f"  {line}")
