"""Commands that act on a cluster: ``setpoint run`` (the controller), ``setpoint resume`` (re-arm
self-healing) and ``setpoint sim serve`` (a simulated cluster behind the Kubernetes API)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, NamedTuple, Optional

import typer

from controller.cli.common import (EXAMPLES_HELP, TARGET_LABELS_HELP, bearer_token, fail, number_option, numpy_unless_asked,
                                   parse_log_level, parse_target_labels, policy_path, prometheus_config)
from controller.cli.root import app

log = logging.getLogger("setpoint.cli")


@app.command(short_help="Run the controller against Prometheus and Kubernetes.")
def run(
    policies: Annotated[list[Path], typer.Option(
        "--policies", "-p", parser=policy_path, metavar="PATH",
        help="Policy files or folders (repeatable). Reloaded when they change; an invalid change keeps the last "
             "good policies, and so does a restart: the leader keeps a copy of them on the cluster. "
             + EXAMPLES_HELP + " Running one is logged as such at start-up.")],
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
    workers: Annotated[int, typer.Option(
        min=1, max=64, help="Threads that run the policies' cycles: each policy's cycle runs in one of them, so "
                            "more policies than this whose cycles take a while queue behind each other (a "
                            "policy's cycles never overlap).")] = 4,
    prometheus_token_file: Annotated[Optional[Path], typer.Option(help="Bearer token file (re-read when it changes).")] = None,
    prometheus_ca_file: Annotated[Optional[Path], typer.Option(help="CA bundle to verify Prometheus' TLS certificate.")] = None,
    prometheus_insecure: Annotated[bool, typer.Option(help="Do not verify Prometheus' TLS certificate.")] = False,
    prometheus_timeout: Annotated[float, typer.Option(
        help="Seconds each query may take, from connecting to the last byte of its answer; retries after a "
             "transient failure (HTTP 5xx or 429, a lost connection) and the waits between them count within the "
             "same seconds (the warm start's range queries get 6x). At most 3600.")] = 5.0,
    target_labels: Annotated[Optional[list[str]], typer.Option(
        metavar="[KIND=]NS,NAME", help=TARGET_LABELS_HELP)] = None,
    qps: Annotated[float, typer.Option(
        **number_option(0), help="Kubernetes client-side rate limit (requests per second; 0: none).")] = 20.0,
    burst: Annotated[int, typer.Option(min=1, help="Kubernetes client-side burst.")] = 30,
    once: Annotated[bool, typer.Option(
        "--once", help="Run one cycle of every policy, then exit: 1 if a cycle failed or a policy selected no "
                       "workload (a pre-flight check).")] = False,
    leader_elect: Annotated[bool, typer.Option(
        "--leader-elect", help="Act only while holding a coordination.k8s.io/v1 Lease (run 2 replicas for HA).")] = False,
    lease_name: Annotated[str, typer.Option(help="Name of the leader-election Lease.")] = "setpoint",
    lease_duration: Annotated[Optional[str], typer.Option(
        metavar="DURATION", help="With --leader-elect: how long a standby waits, from the last change of the Lease it saw, before "
             "taking over a leader that stopped renewing without releasing it (killed, its node lost): the "
             "failover time. Shorter fails over sooner; a leader then loses the Lease sooner when the API server "
             "is slow. [default: 15s, as client-go]")] = None,
    renew_deadline: Annotated[Optional[str], typer.Option(
        metavar="DURATION", help="With --leader-elect: how long the leader goes on acting after its last successful renewal; then "
             "it stops writing, --lease-duration minus this before a standby may take over. Shorter than "
             "--lease-duration. [default: 10s]")] = None,
    retry_period: Annotated[Optional[str], typer.Option(
        metavar="DURATION", help="With --leader-elect: how often each replica tries to take or renew the Lease; a released Lease "
             "(SIGTERM, a rolling upgrade) is taken within this. Shorter than --renew-deadline. "
             "[default: 2s]")] = None,
    lease_namespace: Annotated[Optional[str], typer.Option(
        help="Namespace of the Lease (default: $POD_NAMESPACE, else default).")] = None,
    state_namespace: Annotated[Optional[str], typer.Option(
        help="Namespace of the ConfigMaps setpoint-state-<policy> that keep healing budgets, held targets, "
             "revision memory, hands-offs and the rate limits' scale events across restarts (default: the Lease's "
             "namespace). A removed policy's are deleted once none of it is in force any more; controllers "
             "sharing one need a --lease-name each.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    warm_start: Annotated[bool, typer.Option(
        help="At start-up and on becoming leader, rebuild each policy's smoothing, stabilization and rate-limit "
             "history by replaying the last window from Prometheus, and a workload's alone when it joins a running "
             "policy (its HPA deleted, a label added) (needs kube-state-metrics' replicas; targets without them "
             "start cold, holding scale-down for one window), and the health checks' state from their queries' history "
             "(a condition past its `for` fires at once; a revision whose check fired before first sight is no "
             "rollback target until healthyAfter).")] = True,
) -> None:
    """Run the controller: read Prometheus, decide, act on Kubernetes, on every policy's interval.

    One scheduled job per policy (no overlap, missed runs coalesced, small jitter). Logs are
    JSON lines on stderr. SIGTERM, SIGHUP or Ctrl-C stops gracefully (exit 0): running cycles
    finish (for at most 15 s), records are flushed, the Lease is released; the process is gone
    within 25 s. Exit 1 when the start-up fails (an unusable --records or --listen; invalid
    policies with no last good copy to run): the controller refuses to start and holds no Lease.

    The leader keeps the policy files it runs as a ConfigMap
    setpoint-state-<--lease-name>.last-good-policies (in the state namespace). A start-up whose files
    are invalid runs that copy and reports the files as a rejected reload (the
    SetpointPolicyReloadFailing alert, `setpoint status`) until they are fixed; --once never does.

    --shadow evaluates live without acting (no scale, Event or annotation is written) and
    exports setpoint_shadow_desired_replicas and agreement statistics against the replicas the
    incumbent (HPA, KEDA) sets.
    """
    from controller.adapters.kubernetes import KubernetesCluster
    from controller.adapters.prometheus import PrometheusSource
    from controller.errors import PolicyError
    from controller.runtime.dryrun import DryRunCluster, DryRunStateStore
    from controller.runtime.http import StatusServer, parse_listen
    from controller.runtime.records import records_path_problem
    from controller.runtime.service import ControllerService, ServiceOptions
    from controller.runtime.shadow import ShadowCluster, ShadowTelemetry
    from controller.runtime.stop_signals import StopSignals
    from controller.runtime.telemetry import Telemetry, configure_json_logging

    configure_json_logging(parse_log_level(log_level))
    log_shipped_examples(policies)
    # Live cycles decide on numpy unless SETPOINT_COMPILED=1: a cycle of 10,000 targets takes ~9 ms
    # there (bench/decide.py), small beside its queries, while the kernels would compile at every
    # start of the shipped image (read-only root: no numba cache): `run --once` measured 40.8 s and
    # 520 MiB max RSS compiled from cold, against the Deployment's 512Mi limit; 2.6 s, 99 MiB on numpy.
    numpy_unless_asked()
    records_problem = records_path_problem(records)  # before the Lease is taken: a refusal holds nothing
    if records_problem:
        fail([f"--records: {records_problem}"])
    try:
        parse_listen(listen)
        labels = parse_target_labels(target_labels)
        metrics = PrometheusSource(prometheus_config(
            prometheus, bearer_token_file=str(prometheus_token_file) if prometheus_token_file else None,
            ca_file=str(prometheus_ca_file) if prometheus_ca_file else None, verify_tls=not prometheus_insecure,
            timeout_s=prometheus_timeout, target_labels=labels))
    except ValueError as exc:
        fail([str(exc)])
    if shadow and leader_elect:
        fail(["--shadow writes nothing, leader election included: drop --leader-elect (shadow replicas "
               "all evaluate; each exports its own figures)"])
    try:
        timings = lease_timings(leader_elect, lease_duration, renew_deadline, retry_period)
    except ValueError as exc:
        fail([str(exc)])
    # Whatever fails from here on (a start-up error, a signal, a bug), everything built so far is
    # closed in reverse order: the service, the Lease (released), the status server, the clients.
    # A daemon thread left running into interpreter shutdown (the elector's) aborted it: exit 134.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(metrics.close)
        cluster = KubernetesCluster(kubeconfig=kubeconfig, context=context, qps=qps, burst=burst,
                                    **({"emit_events": False} if shadow else {}))
        cleanup.callback(cluster.close)
        target = ShadowCluster(cluster) if shadow else DryRunCluster(cluster) if dry_run else cluster
        own_namespace = lease_namespace or os.environ.get("POD_NAMESPACE", "default")
        # this controller, as its Lease names it: the owner recorded on the state it writes and the
        # name of its index of policies with state (two controllers in one state namespace have two)
        controller = f"{own_namespace}/{lease_name}"
        state = state_store(cluster, state_namespace or own_namespace, controller, rehearsal=dry_run or shadow)
        telemetry = ShadowTelemetry() if shadow else Telemetry()
        elector = None
        if leader_elect and not once:
            import socket

            from controller.adapters.kubernetes import fence_with_lease

            # every write re-checks leadership right before it is sent (state saves included); the
            # elector starts only once everything that can refuse to start is built: no Lease is
            # taken (and left to expire) by a replica that then exits
            elector = fence_with_lease(cluster, own_namespace, lease_name, f"{socket.gethostname()}_{os.getpid()}",
                                       **timings.elector_options())
        telemetry.track_leadership(elector.is_leader if elector else (lambda: True))
        try:
            service = ControllerService(policies, metrics, target, telemetry, ServiceOptions(
                records_path=records, records_max_bytes=records_max_bytes or None, records_keep=records_keep,
                warm_start=warm_start, workers=workers, start_from_last_good=not once,
                mode="shadow" if shadow else "dry-run" if dry_run else "live",
                lease=f"{own_namespace}/{lease_name}" if leader_elect else None, controller=controller),
                                        is_leader=elector.is_leader if elector else (lambda: True),
                                        leader_term=(lambda: elector.term) if elector else (lambda: 0),
                                        state_store=DryRunStateStore(state) if dry_run or shadow else state)
        except (PolicyError, OSError) as exc:
            # OSError: the records file, checked above, could not be opened a moment later
            fail(exc.errors if isinstance(exc, PolicyError) else [f"--records: cannot write {records}: {exc.strerror or exc}"])
        if once:
            try:
                results = service.run_all_once()
            finally:
                service.stop()  # its "stopped" before the problems: they are the last lines
            problems = _once_problems(service.policies, results, prometheus)
            if problems:
                fail(problems)
            return
        # from now on SIGTERM, SIGHUP (a closed terminal, a supervisor's reload: its default would
        # kill the process with the Lease held) and Ctrl-C stop gracefully
        stops = cleanup.enter_context(StopSignals(signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        try:
            server = StatusServer(listen, telemetry.registry, service.healthy, service.ready,
                                  status=service.status).start()
        except OSError as exc:  # in use, not this machine's address, no such host: before any Lease is taken
            fail([f"--listen {listen}: cannot listen there: {exc.strerror or exc} (another process listening on it? "
                  "choose another HOST:PORT)"])
        cleanup.callback(server.stop)
        if elector:
            cleanup.callback(elector.stop)  # release the Lease: the standby takes over at once
            elector.start()
        finished = []  # whether the running cycles finished within the grace period
        cleanup.callback(lambda: finished.append(_stop_within(service, SHUTDOWN_GRACE_S)))
        service.start()
        stops.wait()
        watchdog = _exit_by_deadline(SHUTDOWN_DEADLINE_S)
        log.info("stopping", extra={"signal": signal.Signals(stops.received[0]).name})
    watchdog.cancel()
    if finished != [True]:  # a cycle is stuck on a request: its worker thread would hold the exit
        _exit_now(0)


def state_store(cluster, namespace: str, controller: str, rehearsal: bool):
    """The state store of ``setpoint run``: owned by ``controller`` (its Lease), which it records on
    what it writes and is warned about when another controller wrote a ConfigMap last. A rehearsal
    (--dry-run, --shadow) writes and deletes nothing and reads the live controller's state on purpose
    (the holds and budgets it left): it owns none, so it is not told that two controllers overwrite
    each other's state (a pre-flight with --state-namespace of the installed controller was)."""
    from controller.adapters.kubernetes import KubernetesStateStore

    return KubernetesStateStore(cluster, namespace, owner="" if rehearsal else controller)


def log_shipped_examples(paths: list[Path]) -> None:
    """A warning per path that ``--policies`` resolved from the name of an example policy shipped
    with Setpoint (no such file existed): the operator must see it is not a file of theirs."""
    from controller.cli.common import RESOLVED_EXAMPLES

    for path in paths:
        if path in RESOLVED_EXAMPLES:
            log.warning("%s is the example policy %s that ships with Setpoint, not a file of yours", path, path.name,
                        extra={"file": str(path)})


class LeaseTimings(NamedTuple):
    """The leader election's timings, in seconds (``setpoint run --lease-duration`` and the others)."""

    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def elector_options(self) -> dict[str, float]:
        """LeaderElector's keyword arguments: these timings, and a request timeout inside the renew
        deadline (its default 5 s, at most half the deadline: one slow answer must not use it up)."""
        return {"lease_duration_s": self.lease_duration_s, "renew_deadline_s": self.renew_deadline_s,
                "retry_period_s": self.retry_period_s, "request_timeout_s": min(5.0, self.renew_deadline_s / 2)}


def lease_timings(leader_elect: bool, lease_duration: str | None, renew_deadline: str | None,
                  retry_period: str | None) -> LeaseTimings:
    """The Lease timings the options give (None: the default); a ValueError naming the option for a
    value that is not a positive duration, a renew deadline not shorter than the lease duration, a
    retry period not shorter than the renew deadline, or any of them without --leader-elect."""
    from controller.policy import format_duration

    given = {name: text for name, text in (("--lease-duration", lease_duration), ("--renew-deadline", renew_deadline),
                                           ("--retry-period", retry_period)) if text is not None}
    if given and not leader_elect:
        raise ValueError(f"{', '.join(given)}: the Lease's timings apply to --leader-elect only (add it, or drop them)")
    default = LeaseTimings()
    timings = LeaseTimings(*(_positive_duration(name, given[name]) if name in given else value
                             for name, value in zip(("--lease-duration", "--renew-deadline", "--retry-period"), default)))
    said = {name: format_duration(v) for name, v in zip(("--lease-duration", "--renew-deadline", "--retry-period"), timings)}
    if not timings.renew_deadline_s < timings.lease_duration_s:
        raise ValueError(f"--renew-deadline ({said['--renew-deadline']}) must be shorter than --lease-duration "
                         f"({said['--lease-duration']}): a leader that cannot renew must stop acting before a standby "
                         f"may take over")
    if not timings.retry_period_s < timings.renew_deadline_s:
        raise ValueError(f"--retry-period ({said['--retry-period']}) must be shorter than --renew-deadline "
                         f"({said['--renew-deadline']}): the leader must get to try renewing before its deadline")
    return timings


def _positive_duration(option: str, text: str) -> float:
    """Seconds in ``text`` (15s, 500ms, 1m); a ValueError naming ``option`` unless a duration above 0."""
    from controller.policy import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None
    if not seconds > 0:
        raise ValueError(f"{option}: expected a duration above 0, got {text}")
    return seconds


#: Seconds a stop (SIGTERM, SIGHUP, Ctrl-C) waits for running cycles. Kubernetes' default
#: terminationGracePeriodSeconds is 30 s, after which it kills the pod without the Lease released
#: (the standby then waits a whole lease duration): a cycle stuck on a stalled API server (4 tries
#: of 10 s per request) took 38 s. After this the Lease is released (the fence closes first, so
#: the cycle left running cannot write), and the process exits.
SHUTDOWN_GRACE_S = 15.0
#: Seconds of it a running cycle has to finish as usual (most take well under one); after this
#: its remaining requests are refused, so that it ends with its request in flight, which the
#: client's 10 s read timeout bounds (4 tries of a stalled request took 38 s).
CYCLE_GRACE_S = 5.0
#: Seconds after a stop signal when the process exits whatever it is waiting for (the Lease
#: release and the clients' close are bounded by their request timeouts, a few seconds each).
SHUTDOWN_DEADLINE_S = 25.0


def _stop_within(service, grace_s: float) -> bool:
    """Stop ``service`` (no new cycles, records closed), waiting at most ``grace_s`` seconds for
    the running cycles; True when they finished. A cycle still running after ``CYCLE_GRACE_S``
    is cut short: its remaining requests are not sent (ControllerService.stop_requests), so it
    ends with its request in flight (10 s at most) instead of after every retry."""
    stopper = threading.Thread(target=service.stop, kwargs={"wait": True}, name="service-stop", daemon=True)
    stopper.start()
    stopper.join(min(CYCLE_GRACE_S, grace_s))
    if stopper.is_alive():
        log.warning("a cycle is still running %g s after the stop: its remaining requests are not sent",
                    min(CYCLE_GRACE_S, grace_s))
        service.stop_requests()
        stopper.join(max(grace_s - CYCLE_GRACE_S, 0.0))
    if stopper.is_alive():
        log.warning("a cycle is still running %g s after the stop: exiting without it", grace_s)
        return False
    return True


def _exit_by_deadline(deadline_s: float) -> threading.Timer:
    """Exit the process ``deadline_s`` seconds from now, whatever the shutdown is waiting for,
    unless the returned timer is cancelled first."""
    def expire() -> None:
        log.error("shutdown still not done %g s after the stop: exiting", deadline_s)
        _exit_now(0)
    timer = threading.Timer(deadline_s, expire)
    timer.daemon = True  # never the reason the process stays
    timer.start()
    return timer


def _exit_now(code: int) -> None:
    """Exit at once, without joining threads (a worker stuck on a request would hold a normal
    exit until its timeouts ran out); logs and standard streams are flushed first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _once_problems(policies: dict, results: list, prometheus: str) -> list[str]:
    """One line per policy whose cycle failed, reported errors or selected no workload (``policies``:
    name -> RuntimePolicy), naming the next step: --once is a pre-flight check."""
    by_policy = {r.policy: r for r in results}
    problems = []
    for name in sorted(policies):
        result = by_policy.get(name)
        if result is None:  # run_cycle logged the exception
            problems.append(f"policy {name}: the cycle failed (see the log above); check --kubeconfig and "
                            f"--context, and that the Kubernetes API is reachable")
        elif result.errors:
            from controller.runtime.telemetry import error_source

            more = f" (+{len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
            check = {"metrics": f"check --prometheus {prometheus} and the policy's queries",
                     "cluster": "check the scaling role's list on pods and replicasets (deploy/overlays)",
                     "state": "check the controller's ConfigMaps in its namespace (--state-namespace)"}
            problems.append(f"policy {name}: {result.errors[0]}{more}; {check[error_source(result.errors[0])]}")
        elif result.failed:
            problems.append(failed_actions_problem(name, result.failed))
        elif not result.selected:
            sel = policies[name].selector
            which = f"named {', '.join(sel.names)}" if sel.by_name else f"with labels {sel.label_selector}"
            problems.append(f"policy {name}: selects no workload (no {sel.kind} {which} in namespace "
                            f"{sel.namespace}); check its targets and the kubeconfig's context")
    return problems


def failed_actions_problem(policy: str, failed: list) -> str:
    """`run --once`'s line for a policy whose cycle had actions fail (``failed``: the cycle's failed
    actions, each with kind, target and why), naming the first."""
    from controller.policy.summary import plural

    first = failed[0]
    return (f"policy {policy}: {plural(len(failed), 'action')} failed, {first.kind} {first.target}: {first.why}; "
            f"check the controller's RBAC and the workload")


@app.command(short_help="Re-arm self-healing of a held workload, or end its hands-off.")
def resume(
    target: Annotated[str, typer.Argument(help="The workload: NAMESPACE/NAME, or NAME in --namespace.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace when TARGET has none.")] = "default",
    kind: Annotated[str, typer.Option(help="Deployment or StatefulSet (any case; deploy, sts).")] = "Deployment",
    kubeconfig: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Kubeconfig file.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
) -> None:
    """Re-arm self-healing of a workload that a budget or the circuit breaker stopped.

    Writes the setpoint.io/resume annotation (the current time) on the workload; the running
    controller sees the new value on its next cycle and acts on the target again (its budget
    history is kept), and saves the re-armed state, so a restart does not hold it again. A
    resume written while no controller runs is seen by the next one. See setpoint_healing_held
    in /metrics and the HealingHeld Events.

    It also ends a hands-off (a count someone set by hand, left alone for
    onExternalScale.handsOff): the policy scales the workload again from its current replicas.
    """
    from datetime import datetime, timezone

    from controller.adapters.kubernetes import KubernetesCluster
    from controller.model import RESUME_ANNOTATION

    ref = resume_target(target, namespace, kind)
    cluster = KubernetesCluster(kubeconfig=kubeconfig, context=context, emit_events=False)
    try:
        _annotate_or_fail(cluster, ref, RESUME_ANNOTATION, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "resume")
    finally:
        cluster.close()
    typer.echo(f"{ref}: resume requested; the controller re-arms it (and ends a hands-off) on its next cycle")


@app.command(short_help="Accept a revision a record revision check judged worse (keep it on purpose).")
def accept(
    target: Annotated[str, typer.Argument(help="The workload: NAMESPACE/NAME, or NAME in --namespace.")],
    revision: Annotated[str, typer.Argument(help="The revision to accept, as the RevisionWorseRecorded Event and "
                                                 "`setpoint status` name it (e.g. 2): the workload's current one.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="Namespace when TARGET has none.")] = "default",
    kind: Annotated[str, typer.Option(help="Deployment or StatefulSet (any case; deploy, sts).")] = "Deployment",
    force: Annotated[bool, typer.Option(
        "--force", help="Write the annotation although REVISION is not the current revision (it accepts nothing "
                        "until REVISION is current: ahead of a release you know will be judged worse).")] = False,
    kubeconfig: Annotated[Optional[Path], typer.Option(exists=True, dir_okay=False, help="Kubeconfig file.")] = None,
    context: Annotated[Optional[str], typer.Option(help="Kubeconfig context.")] = None,
) -> None:
    """Accept REVISION of a workload although a record revision check judged it worse.

    Writes the setpoint.io/accept-revision annotation (REVISION) on the workload, as `kubectl
    annotate KIND/NAME setpoint.io/accept-revision=REVISION` does. While that revision is current
    the running controller no longer says it worse (setpoint_revision_worse 0, the alert
    resolves), restarts its pods as any revision's, and records the acceptance (records, status,
    one RevisionWorseAccepted Event). An acceptance names one revision: the next release is judged
    on its own. Remove it with `kubectl annotate KIND/NAME setpoint.io/accept-revision-`.

    REVISION must be the workload's current revision as the controller reads it (a Deployment's
    deployment.kubernetes.io/revision annotation, a StatefulSet's status.updateRevision): any
    other is refused (exit 1, nothing written), since it would accept nothing now; --force writes
    it anyway. Exit 1 too when the workload cannot be read or annotated.
    """
    from controller.adapters.kubernetes import KubernetesCluster
    from controller.model import ACCEPT_REVISION_ANNOTATION

    ref = resume_target(target, namespace, kind)
    if not re.fullmatch(REVISION_PATTERN, revision):
        fail([f"REVISION: expected a revision as setpoint names it (a number, or a ControllerRevision's name: "
              f"letters, digits, '-', '.', '_', at most 253), got {revision!r}"])
    cluster = KubernetesCluster(kubeconfig=kubeconfig, context=context, emit_events=False)
    try:
        current = _current_revision_or_fail(cluster, ref)
        if current != revision and not force:
            fail([not_current_refusal(ref, revision, current)])
        # written only while it is still current (unless forced): a rollout since the read must not be accepted unseen
        _annotate_or_fail(cluster, ref, ACCEPT_REVISION_ANNOTATION, revision, "accept-revision", while_current=not force)
    finally:
        cluster.close()
    typer.echo(accepted_line(ref, revision, current))


def _current_revision_or_fail(cluster, ref) -> str:
    """The workload's current revision as the controller reads it, or exit 1 naming why not."""
    from controller.errors import ActuationError

    try:
        return cluster.read_current_revision(ref)
    except ActuationError as exc:
        why = str(exc).removeprefix(f"read {ref}: ")  # the adapter names the call; say what it was for
        fail([f"{ref}: cannot read its current revision: {why}"])


def _annotate_or_fail(cluster, ref, key: str, value: str, what: str, while_current: bool = False) -> None:
    """Write one annotation on the workload, or exit 1 naming why not (``what``: the annotation's
    short name); ``while_current``: only while revision ``value`` is its current one."""
    from controller.errors import ActuationError, RevisionChanged

    try:
        if while_current:
            cluster.annotate_while_current(ref, key, value, value)
        else:
            cluster.annotate(ref, key, value)
    except RevisionChanged as exc:
        fail([revision_changed_refusal(ref, value, exc.current)])
    except ActuationError as exc:
        why = str(exc).removeprefix(f"annotate {ref}: ")  # the adapter names the call; say what it was for
        fail([f"{ref}: cannot write the {what} annotation: {why}"])


def not_current_refusal(ref, revision: str, current: str) -> str:
    """Why ``setpoint accept`` writes nothing for a ``revision`` that is not ``current`` ('' unknown)."""
    from controller.adapters.kubernetes import CURRENT_REVISION_SOURCE

    where = _accept_target_words(ref)
    now = (f"its current revision is {current}" if current else
           f"its current revision is not known yet ({CURRENT_REVISION_SOURCE[ref.kind]} is not set)")
    advice = f"accept it with `setpoint accept {where} {current}`, or " if current else ""
    return (f"{ref}: revision {revision} is not the current revision: {now}; an acceptance counts only while "
            f"its revision is current, so this one would accept nothing now; nothing written ({advice}"
            f"--force to write it for when revision {revision} is current)")


def _accept_target_words(ref) -> str:
    """The workload as `setpoint accept` takes it: NAMESPACE/NAME, with --kind unless a Deployment."""
    return f"{ref.namespace}/{ref.name}" + ("" if ref.kind == "Deployment" else f" --kind {ref.kind.lower()}")


def revision_changed_refusal(ref, revision: str, current: str) -> str:
    """Why ``setpoint accept`` wrote nothing for ``revision`` that was current when read and is not
    when written: ``current`` ('' unknown) was rolled out in between."""
    where = _accept_target_words(ref)
    now = f"revision {current} is current now" if current else "its current revision is not known now"
    advice = f"; to keep revision {current}, judge it first, then `setpoint accept {where} {current}`" if current else ""
    return (f"{ref}: revision {revision} was current when read but not when the acceptance was to be written: "
            f"a rollout came in between ({now}); nothing written, so no revision was accepted unseen{advice}")


def accepted_line(ref, revision: str, current: str) -> str:
    """What ``setpoint accept`` says once it wrote the annotation for ``revision`` (``current``:
    the workload's current revision it read, '' unknown)."""
    from controller.model import ACCEPT_REVISION_ANNOTATION

    written = f"({ACCEPT_REVISION_ANNOTATION}={revision})"
    if revision == current:
        return (f"{ref}: revision {revision}, the current one, accepted {written}; the controller stops saying it "
                f"worse on its next cycle, for as long as it is the current revision")
    now = f"now {current}" if current else "not known yet"
    return (f"{ref}: annotation written {written} with --force; it accepts nothing until revision {revision} is "
            f"current (the current revision is {now})")


#: A revision as setpoint names it: a Deployment's number, a StatefulSet's ControllerRevision name.
REVISION_PATTERN = r"(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"

#: ``--kind`` as kubectl spells the two workload kinds (any case).
WORKLOAD_KINDS = {"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
                  "statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet"}


def resume_target(target: str, namespace: str, kind: str):
    """The TargetRef of ``setpoint resume TARGET``, or exit 1 naming what is wrong (an empty or
    extra path segment went to the API server as a path: 405, or a 404 for another name)."""
    from controller.model import TargetRef
    from controller.policy.fields import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN

    parts = target.split("/")
    if len(parts) > 2 or not all(parts):
        fail([f"TARGET: expected NAMESPACE/NAME or NAME, got {target!r}"])
    ns, name = parts if len(parts) == 2 else (namespace, parts[0])
    errors = []
    if not (re.fullmatch(DNS_LABEL_PATTERN, ns) and len(ns) <= 63):
        errors.append(f"namespace {ns!r}: expected a DNS-1123 label (lowercase letters, digits and '-')")
    if not (re.fullmatch(DNS_SUBDOMAIN_PATTERN, name) and len(name) <= 253):
        errors.append(f"name {name!r}: expected a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')")
    if kind.lower() not in WORKLOAD_KINDS:
        errors.append(f"--kind: expected Deployment or StatefulSet, got {kind!r}")
    if errors:
        fail(errors)
    return TargetRef(ns, name, WORKLOAD_KINDS[kind.lower()])


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
        "--token", envvar="SETPOINT_SIM_TOKEN", show_default=False, parser=bearer_token, metavar="TEXT",
        help="The bearer token clients must send (default: a fresh random one). Prefer the environment "
             "variable: a command line is visible to other users.")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve every request without a token: anyone who can connect can change the "
                          "cluster.")] = False,
    insecure_http: Annotated[bool, typer.Option(
        "--insecure-http", help="Serve plain HTTP instead of HTTPS (default: TLS with a CA made at start-up, "
                                "carried in the kubeconfig). kubectl sends no token over plain HTTP.")] = False,
    speed: Annotated[float, typer.Option(
        "--speed", **number_option(0.001, 1000), help="Simulated seconds per wall second (2 runs the scenario twice as fast). "
                                   "Counters advance by the simulated amount divided by the speed, so "
                                   "PromQL rate() reads simulated per-second rates at any speed.")] = 1.0,
    test_hooks: Annotated[bool, typer.Option(
        "--test-hooks", help="Serve /_sim/faults and /_sim/requests (fault injection for tests; token required).")] = False,
    read_timeout: Annotated[float, typer.Option(
        "--read-timeout", **number_option(0.1), help="Seconds a client has to send a whole request; slower ones are cut off.")] = 10.0,
    max_connections: Annotated[int, typer.Option(
        "--max-connections", min=1, help="Connections served at once; more get 429 at once.")] = 128,
    event_ttl: Annotated[str, typer.Option(
        "--event-ttl", help="How long an Event is kept after its last create or update (a duration: 30m, 1h, "
                            "90s), then deleted (watchers see DELETED), as kube-apiserver's --event-ttl. Wall "
                            "time, whatever --speed: the times Events show and the controller reads are "
                            "wall-clock times.")] = "1h",
    no_hpa_controller: Annotated[bool, typer.Option(
        "--no-hpa-controller", help="Store HorizontalPodAutoscalers without acting on them (default: each one "
                                    "scales its workload every 15 simulated seconds, as kube-controller-manager "
                                    "does).")] = False,
    statefulset: Annotated[Optional[list[str]], typer.Option(
        "--statefulset", metavar="SERVICE", help="Serve this service of the scenario as a StatefulSet (repeat for "
                                                 "several), as a service's `kind: StatefulSet` in the scenario file "
                                                 "does: pods SERVICE-0..N-1, scaled one at a time in ordinal order, "
                                                 "updated from the highest ordinal down, with ControllerRevisions "
                                                 "for kubectl rollout history/undo.")] = None,
    start_paused: Annotated[bool, typer.Option(
        "--start-paused", help="Hold the scenario's clock at its start (t=0) until a start request: POST "
                               "/_sim/clock/start on the Kubernetes API's address (with the token) or SIGUSR1. "
                               "Meanwhile the initial pods are Ready, the API answers and the metrics go on at "
                               "t=0's rates, but no load change or fault happens; the scenario's times (a fault's "
                               "'at: 10s') then count from the start request. Start a controller, wait until it "
                               "runs, then start the clock. GET /_sim/clock says whether it is paused.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug logs every request.")] = "info",
) -> None:
    """Serve a scenario's simulated cluster through the Kubernetes API, driven by its load in real time.

    Deployments and StatefulSets (apps/v1, with the scale subresource; a service is a StatefulSet
    when the scenario says `kind: StatefulSet` or --statefulset names it), ReplicaSets,
    ControllerRevisions, pods, events, leases, ConfigMaps and HorizontalPodAutoscalers (autoscaling/v2 and v1) behave as the real API server's do for what Setpoint uses (resourceVersion conflicts, 404,
    422 and Status bodies). Point `setpoint run --kubeconfig FILE` or kubectl at it: it serves HTTPS
    with a CA made at start-up (in the kubeconfig), discovery short names, tables and watches. Every
    request needs the bearer token (see --kubeconfig-out, --token-file; printed when neither is
    given) unless --no-auth. As kube-controller-manager, an HPA controller runs every stored HPA
    every 15 simulated seconds (`setpoint import`'s conversion, decided by the hpa preset, written as
    kube-controller-manager, its status updated) unless --no-hpa-controller. The simulated Deployment,
    ReplicaSet and StatefulSet controllers and kubelets record their Events as a real cluster's do
    (ScalingReplicaSet, SuccessfulCreate, SuccessfulDelete, Killing, BackOff). Events are deleted
    --event-ttl after their last write, as by kube-apiserver. Runs until SIGTERM or Ctrl-C (exit 0). Exit 1 on
    an invalid scenario, a --statefulset service it does not have or a port it cannot listen on, 2 on
    an invalid option value.
    """
    import logging

    from controller.errors import ScenarioError
    from simulators.kubeapi.server import CLOCK_START_PATH, serve

    logging.basicConfig(level=parse_log_level(log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if no_auth and (token or token_file):
        fail(["--no-auth cannot be combined with --token or --token-file"])
    try:
        event_ttl_s = _positive_duration("--event-ttl", event_ttl)
    except ValueError as exc:
        fail([str(exc)])

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
        if start_paused:
            typer.echo(f"scenario clock: paused at its start; start it with POST {server.url}{CLOCK_START_PATH} "
                       f"or kill -USR1 {os.getpid()}", err=True)

    try:
        serve(scenario, kube_listen, metrics_listen, kubeconfig_out, speed, test_hooks, token=token, on_ready=ready,
              auth=not no_auth, token_file=token_file, read_timeout_s=read_timeout, max_connections=max_connections,
              tls=not insecure_http, hpa_controller=not no_hpa_controller, event_ttl_s=event_ttl_s,
              statefulsets=statefulset or (), start_paused=start_paused)
    except ScenarioError as exc:
        fail(exc.errors)
    except (OSError, ValueError) as exc:
        fail([str(exc)])
