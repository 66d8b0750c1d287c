"""The live controller: one APScheduler interval job per policy, hot reload, records, telemetry.

This module is the only one that imports APScheduler. Each job reads the clock once, runs
its policy's Reconciler, appends the decision records, and updates the metrics. A failing
cycle is logged and counted; it never stops the scheduler or the other policies.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from controller.errors import ActuationError, PolicyError, PolicyUnreadable, StateStoreError, TemporaryError
from controller.policy import LoadedPolicy, PolicyCheck, check_policies, check_policy_texts, format_duration
from controller.policy.summary import plural
from controller.model import TargetRef
from controller.ports import Cluster, MetricsSource, PriorActionReader, Rehearsal, StateStore, StopsRequests
from controller.runtime.reconciler import (CycleResult, Reconciler, RuntimePolicy, emit_event,
                                           event_recorder)
from controller.runtime.backtest import target_labels_of
from controller.runtime.claims import TargetClaims
from controller.runtime.cycle_phases import phases_words
from controller.runtime.last_good import LastGood, LastGoodCopy, PolicyTexts
from controller.runtime.record_lines import cycle_lines
from controller.runtime.records import DEFAULT_KEEP, DEFAULT_MAX_BYTES, RecordWriter
from controller.runtime.state_cleanup import RemovedStateCleanup
from controller.runtime.status import StatusBook, to_document
from controller.runtime.telemetry import Telemetry

log = logging.getLogger("setpoint.runtime")

#: What the warnings of a metric's gap say (ControllerService._say_metric_gaps), per kind of gap:
#: (when it starts, for "metric NAME: " + it % (targets hit, targets); when it ends)
_METRIC_GAP_WORDS = {
    "missing": ("the query answered no sample for %d of %d targets", "a sample for every target again"),
    "implausible": ("an implausible sample (far above what replicas.max could serve; core/scaling/signal.py) for %d "
                    "of %d targets, not used", "no implausible sample any more"),
}


def action_line(action) -> str:
    """What an action did, for the log: ``scale Deployment/shop/web: 4 -> 7 (ScaleUp)``, ``restart-pod
    Deployment/shop/web: pod web-1 (RestartFiringPods)``, ``rolling-restart Deployment/shop/web
    (SystemicNoRestart)``, ``rollback Deployment/shop/web: to revision 2 (...)``. A replica count only
    where the action writes one (other actions logged 'None -> None')."""
    detail = (f": {action.from_replicas} -> {action.replicas}" if action.replicas is not None else "") + \
        (f": pod {action.pod}" if action.pod else "") + (f": to revision {action.revision}" if action.revision else "")
    return f"{action.kind.word} {action.target}{detail} ({action.reason})"


#: How often (s) a replica under leader election looks whether it has become the leader
#: (ControllerService.cycle_on_leadership)
LEADERSHIP_POLL_S = 1.0

#: A first cycle that ran this long (s) is a warning naming where its time went (_say_first_cycle)
FIRST_CYCLE_SLOW_S = 2.0

#: Seconds between the warnings that a query still fails (ControllerService._say_query_outages)
OUTAGE_REMINDER_S = 300.0
#: What a failing query means, for a scaling metric's (False) and a health check's (True)
_OUTAGE_MEANS = {False: "its targets' replicas are held (missing data never scales down) until it answers",
                 True: "the check cannot fire (missing data never does) until it answers"}


def _api_answer(exc: BaseException) -> bool:
    """Whether a cycle's exception is the Kubernetes API's answer (an HTTP status, a timeout or a
    lost connection: TemporaryError) or a fenced request, not a bug: logged without a traceback,
    which would only show the client's frames. A PermanentError without a status (anything the
    adapter did not expect) keeps its traceback."""
    return isinstance(exc, ActuationError) and (exc.status is not None or isinstance(exc, TemporaryError)
                                                or exc.kind in ("not-leader", "stopping", "superseded"))


def runtime_policies(policies: list[LoadedPolicy]) -> dict[str, RuntimePolicy]:
    """Every policy (scaling, health or both), keyed by name."""
    return {p.name: RuntimePolicy.of(p) for p in policies}


def load_runtime_policies(paths: list[Path]) -> dict[str, RuntimePolicy]:
    """Every scaling policy under ``paths``; raises PolicyError (all errors) if any file is invalid,
    PolicyUnreadable when a file or folder could not be read. Logs the warnings of valid files
    (controller/policy/units.py)."""
    return checked_policies(check_policies(paths))


def checked_policies(check: PolicyCheck) -> dict[str, RuntimePolicy]:
    """The policies of a check (load_runtime_policies), or its errors raised."""
    if check.errors:
        raise (PolicyUnreadable if check.unreadable else PolicyError)(check.errors)
    for warning in check.warnings:  # valid, probably not what was meant: said at each load
        log.warning("%s", warning, extra={"file": warning.file, "field": warning.path})
    return runtime_policies(check.policies)


def _fingerprint(paths: list[Path]) -> tuple:
    """Names, sizes, modification times, modes and inodes of the policy files: cheap change
    detection. The mode: a chmod that makes a rejected file readable again changes nothing else;
    the inode: a file replaced by one of the same size and time (a rename over it)."""
    files = []
    for p in paths:
        for f in sorted(p.glob("*.y*ml")) if p.is_dir() else [p]:
            try:
                st = f.stat()
                files.append((str(f), st.st_size, st.st_mtime_ns, st.st_mode, st.st_ino))
            except OSError:
                files.append((str(f), None, None, None, None))
    return tuple(files)


def first_run(old_next: datetime | None, now: datetime, interval_s: float, jitter_s: float,
              rand: Callable[[], float] = random.random) -> datetime:
    """When the new job of a changed policy first runs: it keeps the phase of its old job (whose
    next run was ``old_next``) but never later than a full new interval from ``now``; an old job
    already due runs at once, within the start jitter. A new policy (no old job) runs at once,
    within the start jitter, as every policy does at start-up (ControllerService.start).

    A fresh start one interval after each reload left a policy edited more often than its
    interval without any cycle, and even one edit its targets ungoverned for an interval; a policy
    added by a reload governed nothing for its first interval (5 minutes for a 5-minute policy)."""
    if old_next is None or old_next <= now:
        return now + timedelta(seconds=jitter_s * rand())
    return min(old_next, now + timedelta(seconds=interval_s))


@dataclass
class ReloadPlan:
    """A reload ready to swap in: every policy compiled, every new reconciler and trigger built."""

    policies: dict[str, RuntimePolicy]
    reconcilers: dict[str, Reconciler]
    triggers: dict[str, IntervalTrigger] = field(default_factory=dict)  # new or changed policies only
    texts: PolicyTexts | None = None  # the files they were read from


#: Most workloads told by an Event that a reload was rejected (one Event each).
MAX_RELOAD_EVENTS = 10


@dataclass
class ServiceOptions:
    records_path: Path | None = None  # "-": standard output
    records_max_bytes: int | None = DEFAULT_MAX_BYTES  # rotate past this size; None: never
    records_keep: int = DEFAULT_KEEP  # rotated files kept
    reload_every_s: float = 10.0
    #: a policy file modified less than this long ago (wall clock) may still be being written: its
    #: reload waits until the files stand still this long or across two polls
    reload_settle_s: float = 2.0
    jitter_s: float = 2.0
    workers: int = 4
    stale_after_intervals: float = 3.0  # /readyz fails when a policy has not cycled for this many intervals
    warm_start: bool = False  # rebuild scaling state from Prometheus' history at start and on leadership
    #: invalid files at start-up run the last good copy the state store keeps (none: refuse to start)
    start_from_last_good: bool = True
    #: what its writes do, for GET /status: "live", "dry-run" or "shadow" (nothing written; an
    #: incumbent autoscaler scales the workloads)
    mode: str = "live"
    #: the leader-election Lease, "NAMESPACE/NAME" (None: no leader election), for GET /status: a
    #: standby's `setpoint status` names it in the kubectl that finds the leader
    lease: str | None = None
    #: this controller, "NAMESPACE/NAME" of its Lease (given or not --leader-elect): its index of the
    #: policies with state is kept under that name, so that two controllers sharing a state namespace
    #: never delete each other's (controller/runtime/state_cleanup.py)
    controller: str = "setpoint"


class ControllerService:
    """Schedules the reconcilers of the loaded policies and keeps them in step with the files."""

    def __init__(self, policy_paths: list[Path], metrics: MetricsSource, cluster: Cluster, telemetry: Telemetry,
                 options: ServiceOptions | None = None, clock: Callable[[], float] = time.time,
                 is_leader: Callable[[], bool] = lambda: True, state_store: StateStore | None = None,
                 leader_term: Callable[[], int] = lambda: 0):
        self.paths = [Path(p) for p in policy_paths]
        self.metrics, self.cluster, self.telemetry = metrics, cluster, telemetry
        #: what the policies' warnings judge a query's series by: the labels the metrics are read by
        self.target_labels = target_labels_of(metrics)
        if hasattr(metrics, "clock_skew_s"):  # the Prometheus adapter's estimate from its answers
            telemetry.track_clock_skew(lambda: metrics.clock_skew_s)
        self._events = event_recorder(cluster)
        self.state_store = state_store
        self.options = options or ServiceOptions()
        self.clock, self.is_leader, self.leader_term = clock, is_leader, leader_term
        self.started_at = clock()  # the controller's start, as `setpoint status` shows it (startedAt)
        self._last_good = LastGoodCopy(state_store, self.options.controller) if state_store is not None else None
        # removed policies' state is deleted once it no longer matters; not by a rehearsal (dry run,
        # shadow), which applies nothing (and whose state store deletes nothing either)
        self._removed_state = (RemovedStateCleanup(state_store, self.options.controller)
                               if state_store is not None and not isinstance(cluster, Rehearsal) else None)
        self._good_texts: PolicyTexts | None = None  # the files the running policies came from (None: the copy)
        self.running_last_good: LastGood | None = None  # the copy run at start-up while the files are invalid
        self._rejected: list[str] = []  # errors of the last rejected reload (a retry says them again only if new)
        self._announce_when_leading = False  # a rejection seen while standing by: its Events wait for leadership
        # the last reload failed because a file or folder could not be read: read again at the next
        # poll even if nothing changed (a permission fixed on a folder changes no file's stat)
        self._reread = False
        self.policies: dict[str, RuntimePolicy] = self._load_at_start()  # invalid, and no copy: refuse to start
        self.claims = TargetClaims()  # one governing policy per workload, across the reconcilers
        self.reconcilers: dict[str, Reconciler] = {n: self._reconciler(p) for n, p in self.policies.items()}
        for policy in self.policies.values():
            telemetry.policy_loaded(policy)
        # policies whose durable state must be re-read before their next cycle as leader: while
        # another replica leads, it acts and saves; what this one read at start-up goes stale
        self._standby: set[str] = set() if is_leader() else set(self.reconcilers)
        # and the leadership term of each policy's last cycle: a lease lost and won back between
        # two cycles (a long interval) is seen by no cycle as standby, but changes the term
        self._terms: dict[str, int] = {n: leader_term() for n in self.reconcilers}
        self._standby_lock = threading.Lock()
        # the actions applied before this process led, read back for the status once per leadership
        # term (_recall_prior); none for a rehearsal, whose wrapper does not offer the capability
        self._prior_reader = cluster if isinstance(cluster, PriorActionReader) else None
        self._recalled_term: int | None = None
        self._recall_when_leading = True  # False under `run --once`: nobody reads its status
        self.recall_thread: threading.Thread | None = None  # the last take-over's read (a test joins it)
        self.last_cycle_end: dict[str, float] = {}
        self.last_targets: dict[str, list[TargetRef]] = {}
        self._fingerprint = _fingerprint(self.paths)
        self._unsettled: tuple | None = None  # files seen changing at the last poll, not read yet
        self._records = (RecordWriter(self.options.records_path, self.options.records_max_bytes, self.options.records_keep)
                         if self.options.records_path else None)
        self._records_lock = threading.Lock()
        self._records_failures = 0  # cycles in a row whose records could not be written
        # (policy, metric) whose query last answered with no sample for some existing targets:
        # said once when it starts and once when every target has one again
        self._metric_gaps: set[tuple[str, str, str]] = set()  # (policy, metric, kind: _METRIC_GAP_WORDS)
        # (policy, query key) -> [since, last said (monotonic s), failed cycles]: its query fails (_say_query_outages)
        self._query_outages: dict[tuple[str, str], list] = {}
        self._selects_nothing: set[str] = set()  # policies whose targets matched no workload at their last cycle
        self._first_cycle_said: set[str] = set()  # policies whose first cycle's line was logged (_say_first_cycle)
        self._term_followed = leader_term()  # the leadership term cycle_on_leadership last acted on
        self.telemetry.records_ok.set(1)  # the writer opened the file (or none is asked for)
        self.status_book = StatusBook()  # GET /status: the last cycle of each policy, per target
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max(1, self.options.workers))},
            job_defaults={"coalesce": True, "max_instances": 1}, timezone="UTC")
        self._reload_lock = threading.Lock()
        if self.running_last_good is None:
            self.telemetry.reload_succeeded(self.clock())
        else:
            self.telemetry.reload_failed()

    def _load_at_start(self) -> dict[str, RuntimePolicy]:
        """The policies of the files; when they are invalid, those of the last good copy kept on the
        cluster (controller/runtime/last_good.py), the files' errors kept as a rejected reload's.
        Raises the files' PolicyError when there is no usable copy (or ``start_from_last_good`` is off)."""
        check = check_policies(self.paths, self.target_labels)
        try:
            policies = checked_policies(check)
        except PolicyError as exc:
            copy = self._recall_last_good() if self.options.start_from_last_good else None
            if copy is None:
                raise
            fallback = check_policy_texts(copy.texts.files, self.target_labels)
            if fallback.errors:  # a copy this version cannot load (written by another one): refuse
                log.error("the last good policy files kept on the cluster do not load either",
                          extra={"errors": [str(e) for e in fallback.errors]})
                raise exc from None
            self.running_last_good, self._rejected = copy, [str(e) for e in exc.errors]
            self._reread = isinstance(exc, PolicyUnreadable)
            log.error(f"policy files invalid at start-up: running {copy.where()} kept on the cluster until "
                      "the files are fixed", extra={"errors": self._rejected})
            return checked_policies(fallback)
        self._good_texts = PolicyTexts(tuple(check.texts))
        return policies

    def _recall_last_good(self) -> LastGood | None:
        if self._last_good is None:
            return None
        try:
            return self._last_good.recall()
        except StateStoreError as exc:
            log.error("no last good policy files to start from: %s", exc)
            return None

    def _keep_last_good(self) -> None:
        """The leader keeps the files it runs as the last good copy (a write only when they changed)."""
        if self._last_good is not None and self._good_texts is not None and self.is_leader():
            self._last_good.keep(self._good_texts, self.clock())

    def tend_removed_state(self) -> None:
        """The leader's index of the policies with state: the loaded ones recorded, removed ones'
        state deleted once it no longer matters (controller/runtime/state_cleanup.py). At start and
        at each reload poll; a failure is logged, never raised (it must not stop the reloads)."""
        if self._removed_state is None:
            return
        if not self.is_leader():
            self.telemetry.state_cleanups_pending.set(0)
            return
        try:
            result = self._removed_state.tend(self.policies, self.clock(), self.leader_term())
        except Exception:  # a bug: the reload poll and the cycles go on
            log.exception("tending the removed policies' state failed")
            return
        self.telemetry.state_cleaned(result)

    # ------------------------------------------------------------------ scheduling
    def start(self) -> None:
        """Schedule every policy, its first cycle at once (within the start jitter), and the reload poll."""
        now = datetime.now(timezone.utc)
        for policy in self.policies.values():
            # at once, not one interval from now: a 15 s policy governed nothing for its first ~20 s
            # (/readyz not ready all along), a 5 m one for 5 minutes
            trigger = self._trigger(policy)
            self._schedule(policy, trigger, now + timedelta(seconds=(trigger.jitter or 0.0) * random.random()))
        self.scheduler.add_job(self.reload_if_changed, IntervalTrigger(seconds=self.options.reload_every_s),
                               id="reload", name="policy reload")
        if self.options.lease is not None:  # leader election: cycles at once when the Lease is won
            self.scheduler.add_job(self.cycle_on_leadership, IntervalTrigger(seconds=LEADERSHIP_POLL_S),
                                   id="leadership", name="leadership")
        self.telemetry.policies_loaded.set(len(self.policies))
        self.scheduler.start()
        log.info("started", extra={"policies": sorted(self.policies)})
        if self.running_last_good is not None:
            self._announce_rejected_reload(self._rejected)
        with self._reload_lock:
            self._keep_last_good()  # a leader from the start keeps them now, not at the first poll
            self.tend_removed_state()

    def cycle_on_leadership(self) -> None:
        """Bring every policy's next cycle forward to now when this replica has become the leader (a
        new term) since the last call: a start whose first cycles came before the Lease was won, or a
        standby taking over, governs within LEADERSHIP_POLL_S instead of at its next interval."""
        term = self.leader_term()
        if term == self._term_followed or not self.is_leader():
            return
        self._term_followed = term
        now = datetime.now(timezone.utc)
        for name in list(self.policies):
            job = self.scheduler.get_job(f"policy:{name}")
            if job is not None and job.next_run_time is not None and job.next_run_time > now:
                job.modify(next_run_time=now)

    def _reconciler(self, policy: RuntimePolicy, cause: str = "start") -> Reconciler:
        """A policy's reconciler, built at the controller's start or (``cause`` "reload") by a reload."""
        warm_from = self.metrics if self.options.warm_start and hasattr(self.metrics, "query_range") else None
        reconciler = Reconciler(policy, self.metrics, self.cluster, on_cycle=self._after_cycle,
                                state_store=self.state_store, warm_from=warm_from, claims=self.claims, warm_cause=cause)
        reconciler.times_phases = True  # the first cycle's line says where its time went (_say_first_cycle)
        return reconciler

    def _trigger(self, policy: RuntimePolicy) -> IntervalTrigger:
        interval = policy.params.interval_s
        return IntervalTrigger(seconds=interval, jitter=min(self.options.jitter_s, interval / 4))

    def _schedule(self, policy: RuntimePolicy, trigger: IntervalTrigger | None = None,
                  next_run: datetime | None = None) -> None:
        """(Re)schedule a policy's job; ``next_run`` its first run (None: one interval from now)."""
        trigger = trigger or self._trigger(policy)
        when = {} if next_run is None else {"next_run_time": next_run}
        self.scheduler.add_job(self.run_cycle, trigger, args=[policy.name],
                               id=f"policy:{policy.name}", name=policy.name,
                               misfire_grace_time=max(1, int(policy.params.interval_s)), replace_existing=True,
                               **when)
        fast = Reconciler.rollout_interval_of(policy)
        if fast is not None:  # health-only cycles while a rollout is in progress (they skip otherwise)
            self.scheduler.add_job(self.run_health_cycle, IntervalTrigger(seconds=fast), args=[policy.name],
                                   id=f"health:{policy.name}", name=f"{policy.name} (rollouts)",
                                   misfire_grace_time=max(1, int(fast)), replace_existing=True)
        elif self.scheduler.get_job(f"health:{policy.name}") is not None:
            self.scheduler.remove_job(f"health:{policy.name}")

    def _unschedule(self, name: str) -> None:
        for job in (f"policy:{name}", f"health:{name}"):
            if self.scheduler.get_job(job) is not None:
                self.scheduler.remove_job(job)

    def stop_requests(self) -> None:
        """Make the ports refuse every request from now on (those that can: StopsRequests): a
        running cycle ends once its request in flight does, its remaining ones failing at once."""
        for port in (self.metrics, self.cluster):
            if isinstance(port, StopsRequests):
                port.stop_requests()

    def stop(self, wait: bool = True) -> None:
        """Graceful: running cycles finish, no new ones start, records are flushed and closed."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        with self._records_lock:
            if self._records:
                self._records.close()
                self._records = None
        log.info("stopped")

    # ------------------------------------------------------------------ cycles
    def run_cycle(self, name: str) -> CycleResult | None:
        """One cycle of one policy; exceptions are logged and counted, never raised."""
        reconciler = self.reconcilers.get(name)
        if reconciler is None:
            return None
        if not self.is_leader():
            with self._standby_lock:
                self._standby.add(name)
            return None
        term = self.leader_term()
        with self._standby_lock:
            became_leader = name in self._standby or self._terms.setdefault(name, term) != term
            self._standby.discard(name)
            self._terms[name] = term
            announce = became_leader and self._announce_when_leading and bool(self._rejected)
            if announce:
                self._announce_when_leading = False
            recall = (self._recall_when_leading and self._prior_reader is not None
                      and self._recalled_term != term)
            if recall:
                self._recalled_term = term
        if announce:
            self._announce_rejected_reload(list(self._rejected))
        if recall:
            self._recall_prior(self.clock())
        try:
            with reconciler.lock:
                if became_leader:
                    reconciler.restore()
                return reconciler.cycle(self.clock())
        except Exception as exc:  # a bug or an unexpected outage: report it, keep the loop alive
            self.telemetry.errors.labels(name, "cycle").inc()
            if _api_answer(exc):  # a 5xx burst, a timeout, a 403: the error says it all, no traceback
                log.error("cycle failed", extra={"policy": name, "error": str(exc), "kind": exc.kind})
            else:
                log.exception("cycle failed", extra={"policy": name, "error": str(exc)})
            return None

    def run_health_cycle(self, name: str) -> CycleResult | None:
        """A health-only cycle of one policy while the last cycle saw a rollout in progress
        (``spec.health.rolloutInterval``); None when there is none, when this replica is not
        the leader or has not cycled since it became one, or while a full cycle runs."""
        reconciler = self.reconcilers.get(name)
        if reconciler is None or not reconciler.rollout_in_progress or not self.is_leader():
            return None
        with self._standby_lock:
            if name in self._standby or self._terms.get(name) != self.leader_term():
                return None  # the next full cycle restores the state first
        if not reconciler.lock.acquire(blocking=False):
            return None
        try:
            return reconciler.health_cycle(self.clock())
        except Exception as exc:
            self.telemetry.errors.labels(name, "cycle").inc()
            log.exception("health cycle failed", extra={"policy": name, "error": str(exc)})
            return None
        finally:
            reconciler.lock.release()

    def _recall_prior(self, took_over_at: float) -> None:
        """Read back, on a thread of its own, the last action applied to each target before this
        process led (a previous leader's, or its own before a restart) into the status: a new
        leader's showed "last action: none" everywhere, although the old one had just scaled. The
        cycles never wait for it; a read that fails leaves "none" and says so in one log line. Only
        actions from before ``took_over_at`` count (wall clock): what this process applies itself
        is its own, and newer."""
        namespaces = sorted({p.selector.namespace for p in self.policies.values()})

        def recall() -> None:
            try:
                found = self._prior_reader.prior_actions(namespaces)
                targets = self.status_book.recall([a for a in found.actions if a.at < took_over_at])
            except Exception:  # a bug: the status keeps "none", the cycles go on
                log.exception("status: reading back the actions applied before this replica led failed")
                return
            for problem in found.problems:
                log.warning("status: the actions applied before this replica led are not all known (%s): its "
                            "targets show last action none until this replica acts", problem)
            log.info("status: the last action applied before this replica led read back for %s", plural(targets, "workload"),
                     extra={"namespaces": namespaces})

        self.recall_thread = threading.Thread(target=recall, name="setpoint-recall", daemon=True)
        self.recall_thread.start()

    def run_all_once(self) -> list[CycleResult]:
        """One cycle of every policy, in this thread (``setpoint run --once``)."""
        self._recall_when_leading = False
        return [r for r in (self.run_cycle(n) for n in sorted(self.policies)) if r is not None]

    def _after_cycle(self, result: CycleResult) -> None:
        self.telemetry.observe_cycle(result)
        self.last_cycle_end[result.policy] = time.monotonic()
        self.last_targets[result.policy] = list(result.targets)
        if result.policy not in self.policies:
            # a reload removed the policy while this cycle ran: its forget_policy came before this
            # cycle's gauges, which would stay (SetpointCycleStalled firing for a policy that is gone).
            # _swap replaces self.policies before it forgets, so one of the two forgets comes last
            self._forget_policy(result.policy)
        policy = self.policies.get(result.policy)
        if (result.decision is not None or result.healing is not None) and policy is not None:
            lines = cycle_lines(result, policy.params.metric_names)  # a record's JSON line each, made once
            self._write_records(lines)
            try:
                self.status_book.add_cycle(result.policy, result.now, map(json.loads, lines), result.left_alone)
            except Exception:  # the status view is for people; it must not cost a cycle its records or actions
                log.exception("status update failed", extra={"policy": result.policy})
        if result.warm_start is not None:
            log.info(result.warm_start.summary(), extra={"policy": result.policy})
        # a failing query is said when it starts, now and then, and when it ends: every line of what
        # sends it (a revision check sends two queries, each failing with its own line) is left out
        outages = tuple(f"{key}: " for key in result.unavailable)
        for error in result.errors:
            if not error.startswith(outages):
                log.warning(error, extra={"policy": result.policy})
        self._say_query_outages(result)
        self._say_metric_gaps(result)
        self._say_empty_selection(result)
        for problem in result.state_problems:
            log.error("durable healing state unreadable, restored conservatively: %s", problem,
                      extra={"policy": result.policy})
        for failure in result.failed:
            log.error("action failed", extra={"policy": result.policy, "target": str(failure.target),
                                              "action": failure.kind, "error": failure.why})
        done = "would" if result.rehearsal else "applied"  # a dry run never says it applied anything
        for action in result.actions:
            log.info("%s %s", done, action_line(action), extra={"policy": result.policy, "target": str(action.target)})
        self._say_first_cycle(result)
        log.debug("cycle", extra={"policy": result.policy, "targets": len(result.targets),
                                  "duration_s": round(result.duration_s, 4), "queries": result.queries})

    def _say_first_cycle(self, result: CycleResult) -> None:
        """One line at a policy's first cycle since the start: how long after the start it ended, how
        long it ran and, when that was long (FIRST_CYCLE_SLOW_S), what it spent it on. Until then the
        policy governs nothing and /readyz says not ready."""
        if result.policy in self._first_cycle_said:
            return
        self._first_cycle_said.add(result.policy)
        after_s = self.clock() - self.started_at
        spent = result.phases or {}
        slow = result.duration_s >= FIRST_CYCLE_SLOW_S
        on = f": {phases_words(spent, result.duration_s)}" if slow and spent else ""
        log.log(logging.WARNING if slow else logging.INFO,
                "first cycle of policy %s done %.1fs after the start; it ran %.1fs%s", result.policy, after_s,
                result.duration_s, on,
                extra={"policy": result.policy, "after_start_s": round(after_s, 3),
                       "duration_s": round(result.duration_s, 3), "queries": result.queries,
                       "phases_s": {p: round(s, 3) for p, s in spent.items()}})

    def _say_empty_selection(self, result: CycleResult) -> None:
        """A policy whose targets match no workload (a namespace or name misspelt, labels on none yet)
        does nothing and says nothing each cycle: warn when it starts, and when it selects some again."""
        policy = self.policies.get(result.policy)
        if policy is None:
            return
        selected = result.selected
        if not selected and result.policy not in self._selects_nothing:
            self._selects_nothing.add(result.policy)
            sel = policy.selector
            which = (f"named {', '.join(sel.names)}" if sel.by_name else f"with labels {sel.label_selector}")
            shown = sel.label_selector if not any(c in sel.label_selector for c in " (!") else f"'{sel.label_selector}'"
            look = f"kubectl get {sel.kind.lower()} -n {sel.namespace}" + ("" if sel.by_name else f" -l {shown}")
            log.warning("policy %s selects no workload: no %s %s in namespace %s (check the namespace, names and "
                        "labels: %s); it acts on nothing until one appears", result.policy, sel.kind, which,
                        sel.namespace, look, extra={"policy": result.policy})
        elif selected and result.policy in self._selects_nothing:
            self._selects_nothing.discard(result.policy)
            log.warning("policy %s selects %s again", result.policy, plural(selected, "workload"),
                        extra={"policy": result.policy})

    def _say_query_outages(self, result: CycleResult) -> None:
        """A query that fails (Prometheus down, slow, erroring): a scaling metric's holds its
        targets' replicas, a health check's never fires. Warn when it starts (the error), again
        every OUTAGE_REMINDER_S while it lasts (the error then, how long and how many cycles), and
        once when the query answers again; not at each cycle (a 15 s interval made 240 identical
        lines an hour per query and policy)."""
        now = time.monotonic()
        for key, (query, line) in result.unavailable.items():
            said = {"policy": result.policy, "query": query}
            outage = self._query_outages.get((result.policy, key))
            if outage is None:
                self._query_outages[(result.policy, key)] = [now, now, 1]
                log.warning("%s; %s", line, _OUTAGE_MEANS[key.startswith("health check")], extra=said)
                continue
            outage[2] += 1
            if now - outage[1] >= OUTAGE_REMINDER_S:
                outage[1] = now
                log.warning("%s; failing for %s (%d cycles)", line, format_duration(round(now - outage[0]), days=True),
                            outage[2], extra=said)
        for key in result.answered:
            outage = self._query_outages.pop((result.policy, key), None)
            if outage is not None:
                log.warning("%s: the query answers again, after failing for %s (%d cycles)", key,
                            format_duration(round(now - outage[0]), days=True), outage[2],
                            extra={"policy": result.policy})

    def _say_metric_gaps(self, result: CycleResult) -> None:
        """A metric whose query answers with no sample for some targets (renamed, relabeled, its
        exporter gone), or with an implausible one (core/scaling/signal.py: a broken exporter, a unit
        mix-up), holds their replicas (MetricsMissing) with no error to log: warn when it starts, for
        a (policy, metric), and when every target reads well again; not each cycle."""
        for key, (query, count, among, per_pod) in result.health_missing.items():
            self._say_gap((result.policy, key, "missing"), count,
                          ("%s: its query answered no sample for %d of %d targets%s; it cannot fire for them (missing "
                           "data never does): check the metric's name and its labels", key, count, among,
                           "' pods (none of their pods has a series)" if per_pod else ""),
                          ("%s: a sample for every target again", key),
                          {"policy": result.policy, "query": query, "targets_missing": count, "targets": among})
        for kind, counts in (("missing", result.missing), ("implausible", result.implausible)):
            started, ended = _METRIC_GAP_WORDS[kind]
            for metric, (query, count) in counts.items():
                said = {"policy": result.policy, "metric": metric, "query": query, "targets": len(result.targets)}
                self._say_gap((result.policy, metric, kind), count,
                              ("metric %s: " + started, metric, count, len(result.targets)),
                              ("metric %s: " + ended, metric), {**said, f"targets_{kind}": count} if count else said)

    def _say_gap(self, gap: tuple[str, str, str], count: int, started: tuple, ended: tuple, said: dict) -> None:
        """Warn when ``gap`` (policy, metric or check, kind) starts (``count`` > 0 targets) and when it
        ends, with the log arguments ``started`` or ``ended``; not each cycle in between."""
        if count and gap not in self._metric_gaps:
            self._metric_gaps.add(gap)
            log.warning(*started, extra=said)
        elif not count and gap in self._metric_gaps:
            self._metric_gaps.discard(gap)
            log.warning(*ended, extra=said)

    def _write_records(self, lines: list[str]) -> None:
        """Append a cycle's records (their JSON lines). A failure costs only the records: the cycle's
        actions were applied already, and its status, logs and metrics follow; the next cycle tries again."""
        with self._records_lock:
            if not self._records or not lines:  # nothing written says nothing of the file
                return
            try:
                self._records.write_lines(lines)
            except Exception as exc:  # OSError mostly (a full disk, a folder at the path); never the loop's end
                self._records_failed(exc)
            else:
                self._records_written()

    def _records_failed(self, exc: Exception) -> None:
        """Count every failed write; log only the first of a run of them (one a cycle would flood)."""
        self.telemetry.records_failed()
        self._records_failures += 1
        if self._records_failures == 1:
            log.error("decision records cannot be written; scaling goes on, each cycle tries again",
                      extra={"path": str(self.options.records_path), "error": f"{type(exc).__name__}: {exc}"})

    def _records_written(self) -> None:
        self.telemetry.records_ok.set(1)
        if self._records_failures:
            log.warning("decision records are written again", extra={
                "path": str(self.options.records_path), "cycles_without_records": self._records_failures})
            self._records_failures = 0

    # ------------------------------------------------------------------ hot reload
    def reload_if_changed(self) -> bool:
        """Reload when the files changed: all or nothing.

        Every policy is compiled and every new reconciler and trigger built before anything is
        swapped; then policies, reconcilers and jobs change together. Any failure keeps the last
        good set whole (policies, state and schedule), logs it, tells the governed workloads
        with an Event where the cluster can, and sets setpoint_policy_reload_ok to 0. Then the
        leader tends the removed policies' state (``tend_removed_state``).
        """
        with self._reload_lock:
            self._keep_last_good()
            try:
                return self._reload_locked()
            finally:  # after a reload, so that a policy it removed is recorded at once
                self.tend_removed_state()

    def _reload_locked(self) -> bool:
        """The body of ``reload_if_changed``, under its lock."""
        fingerprint = _fingerprint(self.paths)
        unchanged = fingerprint == self._fingerprint
        if (unchanged and not self._reread) or not self._settled(fingerprint):
            return False
        # a rejected version is not retried until the files change again, unless it could not be read
        self._fingerprint, self._reread = fingerprint, False
        try:
            plan = self._prepare_reload()
        except PolicyError as exc:
            errors = [str(e) for e in exc.errors]
            self._reread = isinstance(exc, PolicyUnreadable)
            if not (unchanged and errors == self._rejected):  # a retry that failed alike: said already
                self._reload_failed(errors)
            return False
        except Exception as exc:  # compiling or scheduling a validated policy failed: a bug, still keep running
            log.exception("policy reload failed")
            self._reload_failed([f"{type(exc).__name__}: {exc}"])
            return False
        try:
            self._swap(plan)
        except Exception as exc:
            log.exception("policy reload could not be applied")
            self._reload_failed([f"{type(exc).__name__}: {exc}"])
            return False
        self.telemetry.reload_succeeded(self.clock())
        self._rejected, self._good_texts, self.running_last_good = [], plan.texts, None
        log.info("policies reloaded", extra={"policies": sorted(plan.policies)})
        self._keep_last_good()
        return True

    def _settled(self, fingerprint: tuple) -> bool:
        """True when the changed files are done being written: none modified within
        ``reload_settle_s``, or the same names, sizes and times as at the previous poll (a time in
        the future, a slow copy). A half-written file can be valid YAML of another policy (a
        metric cut off): reading it mid-write would apply that."""
        newest_ns = max((f[2] for f in fingerprint if f[2] is not None), default=0)
        if time.time() - newest_ns / 1e9 >= self.options.reload_settle_s:
            return True
        stable, self._unsettled = fingerprint == self._unsettled, fingerprint
        return stable

    def _prepare_reload(self) -> ReloadPlan:
        """Compile every policy and build what a new or changed one needs; changes nothing."""
        check = check_policies(self.paths, self.target_labels)
        fresh = checked_policies(check)
        plan = ReloadPlan(fresh, {}, texts=PolicyTexts(tuple(check.texts)))
        for name, policy in fresh.items():
            if self.policies.get(name) == policy and name in self.reconcilers:
                plan.reconcilers[name] = self.reconcilers[name]  # unchanged: keeps its state
            else:  # new or changed: fresh state, and a trigger checked now rather than at swap time
                plan.reconcilers[name] = self._reconciler(policy, "reload")
                plan.triggers[name] = self._trigger(policy)
                old = self.reconcilers.get(name)
                if old is not None and old.external is not None and plan.reconcilers[name].external is not None:
                    plan.reconcilers[name].external.adopt(old.external)  # hands-offs outlive an edit
        return plan

    def _swap(self, plan: ReloadPlan) -> None:
        """Jobs first (old jobs of removed policies find no reconciler), then both maps in one step.

        If the scheduler refuses a change half-way, the jobs touched so far are put back.
        """
        old_policies = self.policies
        changed: list[str] = []
        old_next = self._next_runs(old_policies)
        try:
            if self.scheduler.running:
                for name in sorted(set(old_policies) - set(plan.policies)):
                    changed.append(name)
                    self._unschedule(name)
                now = datetime.now(timezone.utc)
                for name, trigger in plan.triggers.items():
                    changed.append(name)
                    # a changed policy keeps its old job's phase (a new one runs at once, as at start)
                    when = first_run(old_next.get(name), now, plan.policies[name].params.interval_s,
                                     trigger.jitter or 0.0)
                    self._schedule(plan.policies[name], trigger, when)
        except Exception:
            self._restore_jobs(changed, old_policies, old_next)
            raise
        self.policies, self.reconcilers = plan.policies, plan.reconcilers
        self._metric_gaps = {(p, m, k) for p, m, k in self._metric_gaps  # a gap of a metric still there stays
                             if p in plan.policies and m in plan.policies[p].params.metric_names}
        # a changed policy may no longer send a query that was failing: its outages start afresh
        self._query_outages = {(p, k): o for (p, k), o in self._query_outages.items()
                               if p in plan.policies and p not in plan.triggers}
        self.telemetry.policies_loaded.set(len(plan.policies))
        for name in plan.triggers:  # new or changed (a changed one may read other metrics)
            self.telemetry.policy_loaded(plan.policies[name])
        for name in set(old_policies) - set(plan.policies):
            self._forget_policy(name)
        # changed policies claim afresh at their next cycle too: workloads moved between policies
        # in one edit go where the edit says, not to whichever held them before
        for name in set(plan.triggers):
            self.claims.forget(name)
        self.status_book.forget(plan.policies)

    def _forget_policy(self, name: str) -> None:
        """Drop all the service keeps of a policy a reload removed (its series, claims, last cycle,
        targets, leadership term): what a controller keeps follows the policies loaded, not every
        policy it ever loaded. Called by the reload and by a cycle of the policy that ends after it."""
        self.telemetry.forget_policy(name)
        self.claims.forget(name)
        self.last_cycle_end.pop(name, None)
        self.last_targets.pop(name, None)
        self._selects_nothing.discard(name)
        with self._standby_lock:
            self._terms.pop(name, None)
            self._standby.discard(name)

    def _next_runs(self, policies: dict[str, RuntimePolicy]) -> dict[str, datetime]:
        """The next run of each scheduled policy job (a paused or ended one has none)."""
        out = {}
        for name in policies:
            job = self.scheduler.get_job(f"policy:{name}") if self.scheduler.running else None
            if job is not None and job.next_run_time is not None:
                out[name] = job.next_run_time
        return out

    def _restore_jobs(self, names: list[str], policies: dict[str, RuntimePolicy],
                      next_runs: dict[str, datetime] | None = None) -> None:
        now = datetime.now(timezone.utc)
        for name in names:
            try:
                if name in policies:
                    old = (next_runs or {}).get(name)
                    self._schedule(policies[name], next_run=None if old is None else max(old, now))
                else:
                    self._unschedule(name)
            except Exception:  # keep restoring the others
                log.exception("could not restore the job of a policy", extra={"policy": name})

    def _reload_failed(self, errors: list[str]) -> None:
        self._rejected = errors
        self.telemetry.reload_failed()
        log.error("policy reload rejected, keeping the last good policies",
                  extra={"errors": errors, "policies": sorted(self.policies)})
        self._announce_rejected_reload(errors)

    def _announce_rejected_reload(self, errors: list[str]) -> None:
        """A PolicyReloadFailed Event on (at most MAX_RELOAD_EVENTS of) the workloads still governed.
        Only the leader writes: a standby sends them at its first cycle as leader if the files are
        still rejected then (run_cycle), instead of sending them to its fence (a warning apiece)."""
        if not self.is_leader():
            self._announce_when_leading = True
            return
        self._announce_when_leading = False
        first = errors[0] if errors else "unknown error"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        for ref, policy in self._governed()[:MAX_RELOAD_EVENTS]:
            emit_event(self._events, ref, "PolicyReloadFailed",
                       f"policy reload rejected, {policy} keeps running as it was: {first}{more}"[:1000], warning=True)

    def _governed(self) -> list[tuple[TargetRef, str]]:
        """(workload, policy) for the named targets and the last resolved ones of every loaded policy."""
        seen: dict[TargetRef, str] = {}
        for name in sorted(self.policies):
            selector = self.policies[name].selector
            refs = [TargetRef(selector.namespace, n, selector.kind) for n in selector.names]
            for ref in refs + self.last_targets.get(name, []):
                seen.setdefault(ref, name)
        return list(seen.items())

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """GET /status: per policy and target, the latest status (times in UTC, RFC 3339)."""
        return to_document(self.status_book.view(self.policies), self.clock(), leader=self.is_leader(),
                           rejected=self.rejected_files(), mode=self.options.mode, lease=self.options.lease,
                           started=self.started_at)

    def rejected_files(self) -> dict | None:
        """While the policy files are rejected: their errors, and which policies run instead."""
        if not self._rejected:
            return None
        running = (f"{self.running_last_good.where()}, kept on the cluster (the files were invalid at start-up)"
                   if self.running_last_good else "the policies last loaded from the files")
        return {"errors": list(self._rejected), "running": running}

    # ------------------------------------------------------------------ probes
    def healthy(self) -> tuple[bool, str]:
        ok = self.scheduler.running
        return ok, "ok" if ok else "scheduler not running"

    def ready(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "scheduler not running"
        if not self.is_leader():
            return True, "ok (standby: not the leader)"
        now = time.monotonic()
        late = [n for n, p in self.policies.items()
                if now - self.last_cycle_end.get(n, -1e18) > self.options.stale_after_intervals * p.params.interval_s]
        return (not late), ("ok" if not late else f"no recent cycle for: {', '.join(sorted(late))}")

