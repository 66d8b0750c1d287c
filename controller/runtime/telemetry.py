"""Setpoint's own metrics (prometheus-client) and JSON logs.

Metric names (all prefixed ``setpoint_``): decisions_total{policy,reason},
actions_total{policy,kind}, action_failures_total{policy,kind}, errors_total{policy,source},
cycle_duration_seconds{policy} (histogram), state_saves_total{policy}, desired_replicas{policy,target},
ready_replicas{policy,target}, lost_ready_total{policy,target}, withheld_replicas{policy,target},
prometheus_requests_total{policy}, invalid_samples_total{policy,metric,reason} (reason:
negative, non_finite, implausible), policies_loaded, policy_reload_failures_total, policy_reload_ok,
policy_reload_last_success_timestamp_seconds, healing_held{policy,target}, rollout_held{policy,target}, revision_worse{policy,target},
last_cycle_timestamp_seconds{policy}, selected_targets{policy}, leader, records_write_failures_total, records_ok,
prometheus_clock_skew_seconds, external_scale_changes_total{policy,target}, hands_off{policy,target},
hands_off_shortfall_replicas{policy,target},
scale_fight{policy,target} (controller/runtime/external_scale.py), state_cleanups_total{outcome},
state_cleanups_pending (controller/runtime/state_cleanup.py).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter as PyCounter
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.model import REASON_CODES, ActionKind, jsonable
from controller.runtime.reconciler import CycleResult, RuntimePolicy
from controller.runtime.startup_observer import STARTUP_UNREAD, WITHHELD_UNREAD


#: The ``source`` labels of setpoint_errors_total (``error_source``, and ``state`` for the state store)
ERROR_SOURCES = ("state", "cluster", "metrics")

#: The reasons of setpoint_invalid_samples_total (``Telemetry._count_invalid``)
INVALID_REASONS = ("negative", "non_finite", "implausible")

#: How the errors of reads from the Kubernetes API begin: pods not listed, most often a 403 (the
#: scaling role lacks list on pods or replicasets)
CLUSTER_ERRORS = (STARTUP_UNREAD, WITHHELD_UNREAD)


def error_source(error: str) -> str:
    """The ``source`` label of one of a cycle's errors: ``state`` (the durable state's ConfigMaps),
    ``cluster`` (reads from the Kubernetes API) or ``metrics`` (Prometheus: the rest). A cluster
    read's 403 counted as metrics sent the operator to Prometheus."""
    if error.startswith("state:"):
        return "state"
    return "cluster" if error.startswith(CLUSTER_ERRORS) else "metrics"


def remove_policy_children(metric, policy: str) -> None:
    """Remove every child of a labelled ``metric`` whose first label (``policy``) is ``policy``,
    whatever its other labels (a reason, a kind, a target)."""
    keep_only_children(metric, policy, set())


def keep_only_children(metric, policy: str, children: set[tuple[str, ...]]) -> None:
    """Make the children of a labelled ``metric`` whose first label is ``policy`` exactly
    ``children`` (full label tuples): the others removed, the missing ones created at 0."""
    names = metric._labelnames  # prometheus_client keeps no public list of a metric's label names
    present = {tuple(s.labels[n] for n in names) for m in metric.collect() for s in m.samples
               if s.labels.get(names[0]) == policy and all(n in s.labels for n in names)}
    for labels in present - children:
        try:
            metric.remove(*labels)
        except KeyError:  # removed meanwhile (a concurrent forget)
            pass
    for labels in children - present:
        metric.labels(*labels)


class Telemetry:
    """The controller's metrics, in a registry of their own (no process-global state)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter("setpoint_decisions", "Target decisions, by the reason code of the outcome.",
                                 ["policy", "reason"], registry=r)
        self.actions = Counter("setpoint_actions", "Actions applied to the cluster.", ["policy", "kind"], registry=r)
        self.action_failures = Counter("setpoint_action_failures", "Actions the cluster refused or that failed.",
                                       ["policy", "kind"], registry=r)
        self.errors = Counter("setpoint_errors", "Errors in a cycle, by where they came from.", ["policy", "source"],
                              registry=r)
        self.cycle_seconds = Histogram("setpoint_cycle_duration_seconds", "Wall time of one reconcile cycle.",
                                       ["policy"], registry=r,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.desired = Gauge("setpoint_desired_replicas", "Desired replicas per target after the last cycle.",
                             ["policy", "target"], registry=r)
        self.queries = Counter("setpoint_prometheus_requests", "Queries sent to Prometheus by the cycles: scaling "
                               "metrics, ramp latest readings and health checks (whose failures count in "
                               "setpoint_errors_total{source=\"metrics\"}).", ["policy"], registry=r)
        self.ready = Gauge("setpoint_ready_replicas", "Ready pods per target as the last cycle read them; 0 with "
                           "desired replicas above 0 holds its scale-downs (reason TargetNotReady).",
                           ["policy", "target"], registry=r)
        self.lost_ready = Counter("setpoint_lost_ready", "Cycles at which a target that had Ready pods at the "
                                  "cycle before had none (every pod left the load balancer at once: a dependency down, "
                                  "or a readiness probe failing under load, the overload spiral).",
                                  ["policy", "target"], registry=r)
        self.withheld = Gauge("setpoint_withheld_replicas", "Spec replicas per target whose pods run but have not "
                              "been Ready for twice their start-up (a stuck rollout, a failing readiness probe), "
                              "added on top of the last decision.", ["policy", "target"], registry=r)
        self.invalid_samples = Counter(
            "setpoint_invalid_samples", "Metric samples that were present but unusable (they hold the target, never "
            "scale it down), by why: negative (a metric that cannot be negative), non_finite (NaN, Inf) or implausible "
            "(value / target over 1000 x replicas.max, or above the metric's implausibleAbove).",
            ["policy", "metric", "reason"], registry=r)
        self.state_saves = Counter("setpoint_state_saves", "Writes of the durable healing state (budgets, breaker, "
                                   "revisions) to the state store.", ["policy"], registry=r)
        self.policies_loaded = Gauge("setpoint_policies_loaded", "Policies currently scheduled.", registry=r)
        self.reload_failures = Counter("setpoint_policy_reload_failures",
                                       "Policy reloads rejected (the last good policies stay).", registry=r)
        self.reload_ok = Gauge("setpoint_policy_reload_ok", "1 if the policy files as they are now are the ones "
                               "running; 0 after a rejected reload (the last good policies stay).", registry=r)
        self.reload_last_success = Gauge("setpoint_policy_reload_last_success_timestamp_seconds",
                                         "When the running policies were loaded (start-up or the last good reload).",
                                         registry=r)
        self.held = Gauge("setpoint_healing_held", "1 while self-healing of a target is stopped (budget or breaker); "
                          "`setpoint resume` re-arms it.", ["policy", "target"], registry=r)
        self.rollout_held = Gauge("setpoint_rollout_held", "1 while setpoint holds a target's rollout paused "
                                  "(spec.paused) waiting for a revision test's verdict.", ["policy", "target"],
                                  registry=r)
        self.revision_worse = Gauge("setpoint_revision_worse", "1 while a target runs a revision a record revision "
                                    "check judged worse than the stable one (a StatefulSet's canary, a Deployment's "
                                    "new ReplicaSet): recorded, not acted on; 0 once that revision is rolled back or "
                                    "replaced (not when its comparison ends).", ["policy", "target"],
                                    registry=r)
        self.leader = Gauge("setpoint_leader", "1 while this replica acts (holds the leader Lease, or runs "
                            "without --leader-elect); 0 on a standby.", registry=r)
        self.records_failures = Counter("setpoint_records_write_failures", "Cycles whose decision records could "
                                        "not be written (a full disk, a folder at the path, permissions); their "
                                        "actions were applied all the same.", registry=r)
        self.records_ok = Gauge("setpoint_records_ok", "1 while decision records are written (and when none are "
                                "asked for); 0 from a failed write until one succeeds.", registry=r)
        self.contested = Gauge("setpoint_contested_targets", "Workloads a policy selects that another policy "
                               "already governs: it leaves them alone (a PolicyConflict Event says which); "
                               "narrow one of the two selectors.", ["policy"], registry=r)
        self.hpa_scaled = Gauge("setpoint_hpa_scaled_targets", "Workloads a scaling policy selects that a "
                                "HorizontalPodAutoscaler also scales, which it leaves alone (0 under --dry-run or "
                                "--shadow, which go on deciding for them); a ScaledByHPA Event names the HPA.",
                                ["policy"], registry=r)
        self.selected = Gauge("setpoint_selected_targets", "Workloads a policy's targets select (those it leaves "
                              "alone included) at its last cycle; 0: its names, namespace or labels match none.",
                              ["policy"], registry=r)
        self.clock_skew = Gauge("setpoint_prometheus_clock_skew_seconds", "This controller's clock minus "
                                "Prometheus' (from its answers' Date header, +-1 s); queries are evaluated at this "
                                "clock, so beyond a few seconds readings are off. NaN before the first answer.",
                                registry=r)
        self.clock_skew.set(float("nan"))
        self.external_changes = Counter(
            "setpoint_external_scale_changes", "Changes of a target's spec.replicas that this controller did not make "
            "(kubectl scale, a GitOps sync, a script; the ExternalScaleChange Event names the writer).",
            ["policy", "target"], registry=r)
        self.hands_off = Gauge("setpoint_hands_off", "1 while a target is left at the replicas someone else set "
                               "(scaling.onExternalScale.handsOff, reason ExternalOverride).", ["policy", "target"],
                               registry=r)
        self.hands_off_short = Gauge(
            "setpoint_hands_off_shortfall_replicas", "Replicas the policy would add to a target that a hands-off "
            "keeps at a count someone lowered (0: none, or no hands-off); the HandsOffBelowDemand Event says it "
            "once per hands-off.", ["policy", "target"], registry=r)
        self.scale_fight = Gauge("setpoint_scale_fight", "1 while another writer keeps reverting this controller's "
                                 "writes of a target's spec.replicas (3 reverts within 1h plus twice the hands-off; "
                                 "the ExternalScaleFight Event names it), until a whole such window passes without "
                                 "one.", ["policy", "target"], registry=r)
        self.last_cycle = Gauge("setpoint_last_cycle_timestamp_seconds", "When the last cycle of a policy ended.",
                                ["policy"], registry=r)
        self.state_cleanups = Counter(
            "setpoint_state_cleanups", "Removed policies' durable state (ConfigMaps setpoint-state-<policy>*), by "
            "outcome: deleted once none of it is in force any more; changed: written since it was read, left and "
            "tried again; foreign: another controller wrote it last, left for good.", ["outcome"], registry=r)
        for outcome in ("deleted", "changed", "foreign"):
            self.state_cleanups.labels(outcome)
        self.state_cleanups_pending = Gauge(
            "setpoint_state_cleanups_pending", "Removed policies whose durable state is kept until the longest "
            "period any of it is in force has passed (on the leader; 0 on a standby).", registry=r)
        self._targets: dict[str, set[str]] = {}  # policy -> target keys with a gauge, for forget_policy
        # (policy, target) -> [its setpoint_ready_replicas child, its Ready pods at its last cycle]: the
        # child kept, as labels() per target and cycle cost more than the cycle's decision (1,000 targets)
        self._ready_seen: dict[tuple[str, str], list] = {}

    def policy_loaded(self, policy: RuntimePolicy) -> None:
        """Create at 0 every labelled counter child a policy's cycles can count, from the finite
        sets of reasons, error sources, action kinds and metrics: /metrics then has as many lines
        for the policy from its load as after a week (a soak drill saw MetricsMissing and the
        metrics errors appear hours in), and ``increase()`` sees a first occurrence, which a
        child born at 1 hides (Prometheus' advice: initialise the label values you know). An
        edited policy loses the children it can no longer count (a renamed metric, health removed)."""
        p = policy.name
        reasons = REASON_CODES if policy.params.metric_names else ()  # a health-only policy counts no decision
        kinds = (ActionKind.SCALE,) if policy.health is None else tuple(k for k in ActionKind if k != ActionKind.NONE)
        words = [(kind.word,) for kind in kinds]
        expected = [(self.decisions, [(r,) for r in reasons]), (self.errors, [(s,) for s in ERROR_SOURCES]),
                    (self.actions, words), (self.action_failures, words),
                    (self.invalid_samples, [(m, r) for m in policy.params.metric_names for r in INVALID_REASONS]),
                    (self.queries, [()]), (self.state_saves, [()] if policy.health is not None else [])]
        for metric, children in expected:
            keep_only_children(metric, p, {(p, *labels) for labels in children})

    def track_leadership(self, is_leader: Callable[[], bool]) -> None:
        """``setpoint_leader`` reads ``is_leader()`` at every scrape."""
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)

    def track_clock_skew(self, skew_s: Callable[[], float | None]) -> None:
        """``setpoint_prometheus_clock_skew_seconds`` reads ``skew_s()`` at every scrape (None: NaN)."""
        self.clock_skew.set_function(lambda: float("nan") if (v := skew_s()) is None else float(v))

    def forget_policy(self, policy: str) -> None:
        """Drop every series of a policy that a reload removed: its gauges, so that no alert reads
        them as stale, and its counters and histogram, so that /metrics follows the policies loaded,
        not every policy ever loaded (a policy added again counts from 0: a counter reset, which
        rate() and increase() take as such)."""
        for target in self._targets.pop(policy, set()):
            self._forget_target(policy, target)
        for metric in (self.last_cycle, self.contested, self.hpa_scaled, self.selected, self.decisions, self.actions,
                       self.action_failures, self.errors, self.cycle_seconds, self.queries, self.invalid_samples,
                       self.state_saves):
            remove_policy_children(metric, policy)

    def _forget_target(self, policy: str, target: str) -> None:
        self._ready_seen.pop((policy, target), None)
        for gauge in (self.desired, self.ready, self.lost_ready, self.held, self.rollout_held, self.revision_worse,
                      self.withheld, self.external_changes, self.hands_off, self.hands_off_short, self.scale_fight):
            try:
                gauge.remove(policy, target)
            except KeyError:  # never set for this target
                pass

    def _observe_ready(self, policy: str, target: str, ready: float) -> None:
        """setpoint_ready_replicas, and setpoint_lost_ready_total when the target had Ready pods at
        its last cycle and has none now (created at 0 on first sight, so that increase() sees the first)."""
        seen = self._ready_seen.get((policy, target))
        if seen is None:
            self.lost_ready.labels(policy, target)
            seen = self._ready_seen[(policy, target)] = [self.ready.labels(policy, target), 0.0]
        elif ready <= 0 < seen[1]:
            self.lost_ready.labels(policy, target).inc()
        seen[0].set(ready)
        seen[1] = ready

    def _forget_gone_targets(self, policy: str, result: CycleResult) -> None:
        """Drop the gauges of targets the policy no longer selects, or whose workload is gone: a
        deleted Deployment's last values (held 1, Ready 0) would otherwise raise alerts forever.
        Only after a cycle that listed its targets (``view``); else keep them all."""
        keys = {t.key for t in result.targets}
        if result.view is None:
            self._targets.setdefault(policy, set()).update(keys)
            return
        live = {t.key for t, exists in zip(result.targets, result.view.exists.tolist()) if exists}
        for target in (self._targets.get(policy, set()) | keys) - live:
            self._forget_target(policy, target)
        self._targets[policy] = live

    def state_cleaned(self, result) -> None:
        """Count what a tend of the removed policies' state did (state_cleanup.TendResult)."""
        for outcome in ("deleted", "changed", "foreign"):
            if getattr(result, outcome):
                self.state_cleanups.labels(outcome).inc(len(getattr(result, outcome)))
        for policy in result.failed:  # a refused delete (a Role without it: 403) is a state error, alerted on
            self.errors.labels(policy, "state").inc()
        self.state_cleanups_pending.set(result.pending)

    def reload_succeeded(self, now: float) -> None:
        self.reload_ok.set(1)
        self.reload_last_success.set(now)

    def reload_failed(self) -> None:
        self.reload_failures.inc()
        self.reload_ok.set(0)

    def records_failed(self) -> None:
        self.records_failures.inc()
        self.records_ok.set(0)

    def observe_cycle(self, result: CycleResult) -> None:
        try:
            self._observe_cycle(result)
        finally:
            self._forget_gone_targets(result.policy, result)

    def _observe_cycle(self, result: CycleResult) -> None:
        p = result.policy
        self.cycle_seconds.labels(p).observe(result.duration_s)
        self.queries.labels(p).inc(result.queries)
        self.last_cycle.labels(p).set(time.time())
        self.contested.labels(p).set(result.contested)
        # left alone: a rehearsal goes on deciding for them (--shadow beside the HPA is the comparison),
        # so it counts none and the SetpointWorkloadScaledByHPA alert stays quiet through a shadow phase
        self.hpa_scaled.labels(p).set(0 if result.rehearsal else result.hpa_scaled)
        self.selected.labels(p).set(result.selected)
        for error in result.errors:
            self.errors.labels(p, error_source(error)).inc()
        for _ in result.state_problems:
            self.errors.labels(p, "state").inc()
        if result.state_saved:
            self.state_saves.labels(p).inc()
        for action in [] if result.rehearsal else result.actions:  # applied ones only: a dry run applies none
            self.actions.labels(p, action.kind.word).inc()
        for failure in result.failed:  # by its kind: a failed rollback was counted as a scale
            self.action_failures.labels(p, failure.kind).inc()
        if result.healing is not None:
            for target, held in zip(result.targets, result.healing.held.tolist()):
                self.held.labels(p, target.key).set(1 if held else 0)
            hold = result.healing.state.hold  # the rollout holds after this cycle (as the records say)
            if hold is not None:
                for target, ours in zip(result.targets, hold.ours.tolist()):
                    self.rollout_held.labels(p, target.key).set(1 if ours else 0)
            worse = result.healing.revision_recorded
            if worse is not None and result.healing.params.revision_checks:
                for target, bad in zip(result.targets, worse.tolist()):
                    self.revision_worse.labels(p, target.key).set(1 if bad else 0)
        if result.watches_external:
            self._observe_external(result)
        if result.view is not None:
            for target, ready, exists in zip(result.targets, result.view.ready.tolist(), result.view.exists.tolist()):
                if exists:  # a missing workload has no Ready count to alert on
                    self._observe_ready(p, target.key, ready)
        d = result.decision
        if d is None:
            return
        self._count_invalid(p, d, result.metric_names)
        # a health-only policy reads no scaling metric: its scaling side's MetricsMissing each cycle
        # is no decision (it filled the dashboard's decisions by reason as if Prometheus were failing)
        for code, count in PyCounter(d.reason.tolist() if result.metric_names else ()).items():
            self.decisions.labels(p, REASON_CODES[int(code)]).inc(count)
        for target, desired in zip(result.targets, d.desired.tolist()):
            self.desired.labels(p, target.key).set(desired)
        withheld = [0.0] * len(result.targets) if result.withheld is None else result.withheld.tolist()
        for target, count in zip(result.targets, withheld):
            self.withheld.labels(p, target.key).set(count)


    def _observe_external(self, result: CycleResult) -> None:
        """The external-scale counter and gauges of each target (controller/runtime/external_scale.py);
        the counter created at 0 on first sight, so that increase() sees the first change."""
        p = result.policy
        changed = PyCounter(c.target.key for c in result.external_changes)
        held = set() if result.rehearsal else {t.key for t in result.hands_off}
        fights = {t.key for t in result.fights}
        short = {t.key: max(0, wanted - result.hands_off[t].replicas) for t, wanted in result.short_of_demand.items()
                 if t in result.hands_off}
        for target in result.targets:
            key = target.key
            self.external_changes.labels(p, key).inc(changed.get(key, 0))
            self.hands_off.labels(p, key).set(1 if key in held else 0)
            self.hands_off_short.labels(p, key).set(short.get(key, 0))
            self.scale_fight.labels(p, key).set(1 if key in fights else 0)

    def _count_invalid(self, policy: str, d, metric_names: tuple[str, ...]) -> None:
        """Count negative, non-finite and implausible samples per metric of one decision."""
        names = metric_names or tuple(f"m{j}" for j in range(d.signal.values.shape[1]))
        masks = (d.signal.negative, d.signal.nonfinite, d.signal.implausible)
        for reason, mask in zip(INVALID_REASONS, masks):
            for name, count in zip(names, mask.sum(axis=0).tolist()):
                if count:
                    self.invalid_samples.labels(policy, name, reason).inc(count)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra={...}`` fields."""

    RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        out.update({k: _jsonable(v) for k, v in record.__dict__.items() if k not in self.RESERVED})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


JsonFormatter.converter = time.gmtime


def _jsonable(value):
    """A log field as JSON: numbers and containers as values, anything else as its text."""
    value = jsonable(value)
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)


def configure_json_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
