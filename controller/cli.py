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


REPO_POLICIES = Path(__file__).resolve().parents[1] / "policies"
DEFAULT_SIM_POLICY = REPO_POLICIES / "setpoint-default.yaml"
DEFAULT_HPA_POLICY = REPO_POLICIES / "hpa-cpu.yaml"


def _fail(errors: list) -> None:
    for error in errors:
        typer.echo(str(error), err=True)
    raise typer.Exit(1)


def _one_policy(path: Path):
    from controller.errors import PolicyError
    from controller.policy import load_policies

    try:
        scaling = [p for p in load_policies([path]) if p.scales]
    except PolicyError as exc:
        _fail(exc.errors)
    if len(scaling) != 1:
        _fail([f"{path}: expected exactly one scaling policy, found {len(scaling)}"])
    return scaling[0]


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(
        help="A scenario file, or the name of a bundled one (see simulators/scenarios/).")] = "flash-crowd",
    policy: Annotated[Path, typer.Option(
        "--policy", "-p", exists=True, dir_okay=False, help="The policy under test (one scaling policy).")] = DEFAULT_SIM_POLICY,
    baseline: Annotated[list[str], typer.Option(
        "--baseline", "-b", help="Baselines run in the same simulation: hpa, fixed-max, oracle. Repeat the option "
                                 "for several.")] = ["hpa", "oracle"],
    hpa_policy: Annotated[Path, typer.Option(
        "--hpa-policy", exists=True, dir_okay=False, help="The preset: hpa policy used as the hpa baseline.")] = DEFAULT_HPA_POLICY,
    seed: Annotated[Optional[int], typer.Option(help="Override the scenario's random seed.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for result.json, report.html and decisions.jsonl (default: out/SCENARIO).")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html (plots).")] = True,
    max_memory: Annotated[Optional[str], typer.Option(
        "--max-memory", help="Refuse a scenario whose estimated memory need is above this (e.g. 8GiB, 512MiB). "
                             "Default 4GiB; never more than 80% of the machine's memory.")] = None,
) -> None:
    """Simulate a scenario offline under a policy and baselines, and score them alike.

    Prints a score table (SLO-violation minutes, replica-hours, replica changes, reversals, time
    to mitigate each fault) and writes OUT/result.json, OUT/report.html (plots on a shared time
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
        _simulate(scenario, policy, baseline, hpa_policy, seed, out, report, max_memory_bytes)
    except InvalidInput as exc:
        _fail(exc.errors)
    except MemoryError:
        _fail([f"{scenario}: ran out of memory; shorten spec.duration, raise spec.tick, or use fewer services or "
               "baselines"])


def _simulate(scenario: str, policy: Path, baseline: list[str], hpa_policy: Path, seed: int | None, out: Path | None,
              report: bool, max_memory_bytes: int | None) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from simulators.memory import check_fits, memory_limit
    from simulators.output import write_outputs
    from simulators.runner import simulate as run_simulation
    from simulators.runner import standard_controllers
    from simulators.scenario import load_scenario

    sc = load_scenario(scenario, seed=seed)
    under_test = _one_policy(policy)
    hpa = _one_policy(hpa_policy) if "hpa" in baseline else None
    try:
        controllers = standard_controllers(under_test, baseline, hpa, under_test.params.max_replicas)
    except ValueError as exc:
        _fail([str(exc)])
    check_fits(sc, controllers, memory_limit(max_memory_bytes))  # before the progress bars draw
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("ticks"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        tasks = {c.name: progress.add_task(c.name, total=sc.tick_count) for c in controllers}
        try:
            result, logs = run_simulation(sc, controllers, policy_file=str(policy), max_memory_bytes=max_memory_bytes,
                                          on_progress=lambda name, k, total: progress.update(tasks[name], completed=k))
        except ValueError as exc:
            _fail([str(exc)])
    out_dir = out or Path("out") / sc.name
    paths = write_outputs(result, logs, out_dir, sc.start_s, report=report)
    _print_scores(result)
    for kind, path in paths.items():
        typer.echo(f"{kind:>9}: {path}")


def _print_scores(result) -> None:
    from rich.console import Console
    from rich.table import Table

    from simulators.score import score_table

    table = Table(title=f"{result.scenario}: SLO p{result.slo.latency_percentile:g} < {result.slo.latency_s * 1000:g} ms, "
                        f"errors < {result.slo.error_ratio:.2%}")
    for column in ("controller", "SLO-violation min", "replica-hours", "vs oracle", "changes", "reversals",
                   "worst mitigation"):
        table.add_column(column, justify="left" if column == "controller" else "right")
    for row in score_table(result):
        vs = row.get("replica_hours_vs_oracle")
        worst = row.get("worst_mitigation_s")
        table.add_row(row["controller"], f"{row['slo_violation_minutes']:g}", f"{row['replica_hours']:.2f}",
                      "-" if vs is None else f"{vs:.2f}x", str(row["replica_changes"]), str(row["reversals"]),
                      "-" if worst is None else ("never" if worst == float("inf") else f"{worst:g} s"))
    Console(width=120).print(table)


@app.command()
def explain(
    source: Annotated[Path, typer.Argument(
        exists=True, help="A simulation output folder, or a decisions .jsonl file written by `setpoint run`.")],
    target: Annotated[Optional[str], typer.Option("--target", "-t", help="Only this target (name or namespace/name).")] = None,
    at: Annotated[Optional[str], typer.Option(
        "--at", help="Only the last decision at or before this time (seconds, or 30m / 1h10m since the start).")] = None,
    controller: Annotated[Optional[str], typer.Option("--controller", "-c", help="Only this controller (policy, hpa).")] = None,
    changes: Annotated[bool, typer.Option("--changes", help="Only decisions that changed the replica count.")] = False,
    limit: Annotated[int, typer.Option(help="Print at most this many records (the last ones).")] = 40,
) -> None:
    """Print decision records: for each target and cycle, every stage's number and the reason.

    Columns: time, controller, target, current -> desired, reason, then per metric the raw and
    smoothed value and the replica proposal (a dash where the metric was missing), then the
    combined, stabilized and limited counts.
    """
    from controller.policy import parse_duration
    from controller.runtime.records import read_records, select_records

    path = source / "decisions.jsonl" if source.is_dir() else source
    if not path.exists():
        _fail([f"{source}: no decisions.jsonl here"])
    when = None
    if at is not None:
        try:
            when = float(at)
        except ValueError:
            try:
                when = parse_duration(at)
            except ValueError as exc:
                _fail([f"--at: {exc}"])
    records = [r for r in read_records(path) if controller is None or r.get("controller") == controller]
    records = select_records(records, target=target, at=when)
    if changes:
        records = [r for r in records if r.get("desired") != r.get("current")]
    if not records:
        typer.echo("no decision records match", err=True)
        raise typer.Exit(1)
    for r in records[-limit:]:
        typer.echo(_format_record(r))


def _format_record(r: dict) -> str:
    def num(v) -> str:
        return "-" if v is None else f"{v:.4g}"

    metrics = "  ".join(f"{name}: raw {num(m['raw'])} smoothed {num(m['smoothed'])} -> "
                        f"{'-' if m['proposal'] is None else m['proposal']}" for name, m in r.get("metrics", {}).items())
    at = r.get("at", 0.0)
    who = f"{r['controller']} " if "controller" in r else ""
    return (f"t={at:>8.0f}s {who}{r.get('target')}: {r.get('current')} -> {r.get('desired')} [{r.get('reason')}]  "
            f"{metrics}  | combined {r.get('combined')} stabilized {r.get('stabilized')} limited {r.get('limited')} "
            f"(ready {r.get('ready')})")


@app.command()
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
    listen: Annotated[str, typer.Option(help="Address for /metrics, /healthz and /readyz.")] = "0.0.0.0:8080",
    records: Annotated[Path, typer.Option(
        help="Decision records, appended as JSON lines (read them with `setpoint explain FILE`).")] = Path("setpoint-decisions.jsonl"),
    prometheus_token_file: Annotated[Optional[Path], typer.Option(help="Bearer token file (re-read when it changes).")] = None,
    prometheus_ca_file: Annotated[Optional[Path], typer.Option(help="CA bundle to verify Prometheus' TLS certificate.")] = None,
    prometheus_insecure: Annotated[bool, typer.Option(help="Do not verify Prometheus' TLS certificate.")] = False,
    prometheus_timeout: Annotated[float, typer.Option(help="Seconds one query may take, retries included.")] = 5.0,
    target_labels: Annotated[str, typer.Option(
        help="Labels that map a series to its workload: NAMESPACE_LABEL,NAME_LABEL.")] = "namespace,deployment",
    qps: Annotated[float, typer.Option(help="Kubernetes client-side rate limit (requests per second).")] = 20.0,
    burst: Annotated[int, typer.Option(help="Kubernetes client-side burst.")] = 30,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle of every policy, then exit.")] = False,
    leader_elect: Annotated[bool, typer.Option(
        "--leader-elect", help="Act only while holding a coordination.k8s.io/v1 Lease (run 2 replicas for HA).")] = False,
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "setpoint",
    lease_namespace: Annotated[Optional[str], typer.Option(
        help="Namespace of the Lease (default: $POD_NAMESPACE, else default).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the controller: read Prometheus, decide, act on Kubernetes, on every policy's interval.

    One scheduled job per policy (no overlap, missed runs coalesced, small jitter). Logs are
    JSON lines on stderr. SIGTERM or Ctrl-C stops gracefully: running cycles finish, records
    are flushed. Exit 1 when the policies are invalid (the controller refuses to start).
    """
    import signal
    import threading

    from controller.adapters.kubernetes import KubernetesCluster
    from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
    from controller.errors import PolicyError
    from controller.runtime.dryrun import DryRunCluster
    from controller.runtime.http import StatusServer, parse_listen
    from controller.runtime.service import ControllerService, ServiceOptions
    from controller.runtime.telemetry import Telemetry, configure_json_logging

    configure_json_logging(log_level)
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
    cluster = KubernetesCluster(kubeconfig=kubeconfig, context=context, qps=qps, burst=burst)
    target = DryRunCluster(cluster) if dry_run else cluster
    telemetry = Telemetry()
    elector = None
    if leader_elect and not once:
        import os
        import socket

        from controller.adapters.kubernetes import LeaderElector

        elector = LeaderElector(cluster.api_client, lease_namespace or os.environ.get("POD_NAMESPACE", "default"),
                                lease_name, f"{socket.gethostname()}_{os.getpid()}").start()
    try:
        service = ControllerService(policies, metrics, target, telemetry, ServiceOptions(records_path=records),
                                    is_leader=elector.is_leader if elector else (lambda: True))
    except PolicyError as exc:
        if elector:
            elector.stop()
        _fail(exc.errors)
    if once:
        service.run_all_once()
        service.stop()
        cluster.close()
        return
    server = StatusServer(listen, telemetry.registry, service.healthy, service.ready).start()
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


@app.command()
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
    history is kept). See setpoint_healing_held in /metrics and the HealingHeld Events.
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
                      no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@sim_app.command("serve")
def sim_serve(
    scenario: Annotated[str, typer.Argument(
        help="A scenario file, or the name of a bundled one (see simulators/scenarios/).")] = "flash-crowd",
    kube_listen: Annotated[str, typer.Option(
        "--kube-listen", help="HOST:PORT of the Kubernetes API (loopback by default).")] = "127.0.0.1:8001",
    metrics_listen: Annotated[Optional[str], typer.Option(
        "--metrics-listen", help="HOST:PORT of the Prometheus metrics endpoint (GET /metrics); off if not given.")] = None,
    kubeconfig_out: Annotated[Optional[Path], typer.Option(
        "--kubeconfig-out", help="Write a kubeconfig for the simulated cluster here (with a fresh bearer token).")] = None,
    speed: Annotated[float, typer.Option(
        "--speed", min=0.001, help="Simulated seconds per wall second (2 runs the scenario twice as fast).")] = 1.0,
    test_hooks: Annotated[bool, typer.Option(
        "--test-hooks", help="Serve /_sim/faults and /_sim/requests (fault injection for tests).")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug logs every request.")] = "info",
) -> None:
    """Serve a scenario's simulated cluster through the Kubernetes API, driven by its load in real time.

    Deployments (apps/v1, with the scale subresource), ReplicaSets, pods, events and leases
    behave as the real API server's do for what Setpoint uses (resourceVersion conflicts, 404,
    422 and Status bodies). Point `setpoint run --kubeconfig FILE` or kubectl at it. Runs until
    SIGTERM or Ctrl-C. Exit 1 on an invalid scenario.
    """
    import logging

    from controller.errors import ScenarioError
    from simulators.kubeapi import serve

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(server) -> None:
        typer.echo(f"Kubernetes API: {server.url}", err=True)
        if server.metrics_url:
            typer.echo(f"metrics: {server.metrics_url}", err=True)
        if kubeconfig_out:
            typer.echo(f"kubeconfig: {kubeconfig_out}", err=True)

    try:
        serve(scenario, kube_listen, metrics_listen, kubeconfig_out, speed, test_hooks, on_ready=ready)
    except ScenarioError as exc:
        _fail(exc.errors)
    except (OSError, ValueError) as exc:
        _fail([str(exc)])


if __name__ == "__main__":
    app()
