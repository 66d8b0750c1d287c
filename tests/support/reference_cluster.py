"""The simulated-cluster model written plainly: Python objects and loops, one pod at a time.

This is the executable specification of :class:`simulators.cluster.SimCluster`. It is slow on
purpose (no numpy in the model) and the tests check that both engines produce the same
trajectories. Read this file to learn what the model does; read :mod:`simulators.simcluster` to
see it fast. It lives with the tests: the product never runs it, tests and bench/sim_engine.py do.

One tick, ``step(now, dt_s, offered_rps)``:

1. apply the fault events due at ``now`` (see :mod:`simulators.faults`);
2. advance pod lifecycles: repeat until nothing changes: (a) Pending pods whose scheduling
   delay has passed get a node, in (due time, creation time, service, serial) order while the
   cluster has capacity; the others are parked until capacity frees; (b) Starting pods whose
   startup delay has passed get ready (or, while a readiness outage holds their service, stay
   Starting with no end: "held"), or crash into backoff if their revision crash-loops;
   (c) backed-off pods start again; (d) leaking pods cross the memory soft limit (degraded) or
   the limit (OOM restart). Each transition happens at its own event time (not the tick's),
   so that a pod created at t is ready at exactly t + scheduling + startup delay;
3. readiness probes (services with a ``readiness_probe``, see
   :class:`simulators.workload.ReadinessProbe`): probes due at ``now`` (times start + k period,
   at most one per step) fail when the service has a Ready pod and dropped or queued requests in
   the previous step, else succeed; after failure_threshold failures in a row every Ready pod
   turns running-not-Ready and pods through their start-up are held (as under a readiness
   outage); after success_threshold successes in a row they are Ready again;
4. advance rolling updates (Kubernetes' RollingUpdate: scale the new revision up within
   maxSurge, scale old revisions down within maxUnavailable);
5. client retries: each service is offered its load plus ``retry_ratio`` times the rate it
   dropped in the previous step (nothing at the first step); retries of retries compound;
6. compute signals with the queueing model (see :mod:`simulators.queueing`) from that offered rate.

Actions (``set_replicas``, ``delete_pod``, ``rollout``, ``rollback``, ``rolling_restart``)
take effect at the time of the last step (or an explicit ``now``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from controller.errors import NotFound
from controller.model import PodStatus, TargetRef, TargetStatus
from simulators import faults as F
from simulators.queueing import LN_TAIL, QUANTILES, RHO_CAP, RHO_FLOOR, TINY_RPS
from simulators.signals import ObservedSignals, TickSignals, empty_frozen, observed, snapshot_metrics
from simulators.simcluster.slots import INITIAL_PODS_AGE_S
from simulators.streams import engine_streams
from simulators.workload import (ClusterConfig, Phase, Revision, RevisionProps, ServiceConfig, backoff_s, pod_name,
                                 proportional_sizes, removal_key, revision_hash, rollback_target, rollout_budget)

INF = float("inf")
MAX_LIFECYCLE_ROUNDS = 10_000


@dataclass
class Pod:
    """One pod. Times are simulation epoch seconds."""

    serial: int
    rev_seq: int
    phase: Phase
    until: float  # end of the current phase (inf for Ready, and Starting held by a readiness outage)
    created_s: float
    started_s: float = math.nan  # last container start: the memory-leak anchor
    transition_s: float | None = None  # last readiness change
    restarts: int = 0
    degraded: bool = False
    leak_at: float = INF  # next memory event (soft limit or OOM)

    @property
    def running(self) -> bool:
        return self.phase in (Phase.STARTING, Phase.READY)

    @property
    def scheduled(self) -> bool:
        return self.phase >= Phase.STARTING


@dataclass
class Leak:
    rate_mib_per_s: float
    start_s: float
    fault_index: int


class Service:
    """One Deployment: its config, revision history, pods and fault state."""

    def __init__(self, index: int, config: ServiceConfig, salt: int, start_s: float):
        self.index, self.config, self.salt = index, config, salt
        created_at = start_s - INITIAL_PODS_AGE_S - (config.scheduling_delay_s + config.startup_delay_s)
        # the first revision (ReplicaSet) dates from its initial pods' creation (SimCluster's, the same)
        self.revisions = [Revision(1, 0, revision_hash(salt, config.name, 0), config.initial_revision, created_at)]
        self.current_seq = 0
        self.spec = config.initial_replicas
        self.pods: list[Pod] = []
        self.next_serial = 0
        self.rolling = False
        self.backlog = 0.0
        self.restarts_total = 0
        self.leak: Leak | None = None
        self.outage = self.stale = self.nan = 0
        self.readiness_down = 0  # readiness outages active on this service
        # load-sensitive readiness probe (the overload spiral): next probe k, consecutive counts, dark
        self.probe = config.readiness_probe
        self.probe_k = 1
        self.probe_failures = self.probe_successes = 0
        self.probe_down = False
        ready_at = start_s - INITIAL_PODS_AGE_S  # they have run a while (SimCluster's slots, the same)
        for _ in range(config.initial_replicas):
            self.pods.append(Pod(self._serial(), 0, Phase.READY, INF, created_at, start_s, ready_at))

    @property
    def held(self) -> bool:
        """Pods through their start-up may not get Ready: a readiness outage or a failed probe."""
        return self.readiness_down > 0 or self.probe_down

    def _serial(self) -> int:
        self.next_serial += 1
        return self.next_serial - 1

    # --- pods ---------------------------------------------------------------------------
    def props(self, pod: Pod) -> RevisionProps:
        return self.revisions[pod.rev_seq].props

    def pod_name(self, pod: Pod) -> str:
        return pod_name(self.salt, self.config.name, self.revisions[pod.rev_seq].hash, pod.serial)

    def create(self, count: int, now: float, rev_seq: int | None = None) -> int:
        """Create up to ``count`` Pending pods (within the slots); return how many."""
        count = max(0, min(count, self.config.slots - len(self.pods)))
        seq = self.current_seq if rev_seq is None else rev_seq
        for _ in range(count):
            self.pods.append(Pod(self._serial(), seq, Phase.PENDING, now + self.config.scheduling_delay_s, now))
        return count

    def ranked(self, pods: list[Pod]) -> list[Pod]:
        return sorted(pods, key=lambda p: removal_key(p.phase, p.rev_seq == self.current_seq, p.serial))

    def remove(self, pods: list[Pod]) -> int:
        """Remove pods; return how many of them held a node."""
        gone = {id(p) for p in pods}
        self.pods = [p for p in self.pods if id(p) not in gone]
        return sum(p.scheduled for p in pods)

    def start_container(self, pod: Pod, t: float) -> None:
        """(Re)start the container at t: Starting until t + startup delay, memory reset."""
        if pod.phase == Phase.READY:
            pod.transition_s = t
        pod.phase, pod.started_s, pod.until = Phase.STARTING, t, t + self.config.startup_delay_s
        pod.degraded = False
        pod.leak_at = self.leak_next(pod)

    def restart_container(self, pod: Pod, t: float) -> None:
        pod.restarts += 1
        self.restarts_total += 1
        self.start_container(pod, t)

    def leak_next(self, pod: Pod) -> float:
        """Time the pod's memory reaches its next threshold (soft limit, then limit)."""
        if self.leak is None or not pod.running:
            return INF
        c = self.config
        anchor = max(pod.started_s, self.leak.start_s)
        degrade_first = (not pod.degraded) and c.memory_soft_limit_mib < c.memory_limit_mib
        threshold = c.memory_soft_limit_mib if degrade_first else c.memory_limit_mib
        return anchor + (threshold - c.memory_base_mib) / self.leak.rate_mib_per_s

    def memory(self, pod: Pod, now: float) -> float:
        c = self.config
        if self.leak is None:
            return c.memory_base_mib
        return c.memory_base_mib + self.leak.rate_mib_per_s * max(0.0, now - max(pod.started_s, self.leak.start_s))


class ReferenceCluster:
    """Per-object simulated cluster; same constructor and API as :class:`SimCluster`."""

    def __init__(self, config: ClusterConfig | Sequence[ServiceConfig], rng: np.random.Generator | int,
                 faults: Sequence[F.Fault] = ()):
        self.config = ClusterConfig.of(config).validate()
        self.streams = engine_streams(rng)  # naming salt, cluster-wide and per-service draws, as in SimCluster
        self.rng, self.salt = self.streams.cluster, self.streams.salt
        self.now = self.config.start_s
        self.services = [Service(i, c, self.salt, self.now) for i, c in enumerate(self.config.services)]
        self.index_of = {c.name: i for i, c in enumerate(self.config.services)}
        F.validate_faults(faults, self.index_of)
        self.timeline = F.FaultTimeline(faults)
        self.capacity_lost = 0
        self.last: TickSignals | None = None
        self.frozen = empty_frozen(len(self.services))
        self.stale_since = np.zeros(len(self.services))
        self.freeze_pending: list[int] = []

    # --- capacity -------------------------------------------------------------------------
    @property
    def pod_capacity(self) -> float:
        cap = self.config.pod_capacity
        return INF if cap is None else cap - self.capacity_lost

    def scheduled_total(self) -> int:
        return sum(p.scheduled for s in self.services for p in s.pods)

    def unpark(self, now: float) -> None:
        """Capacity freed: parked Pending pods try again at ``now``."""
        if self.config.pod_capacity is None:
            return  # nothing is ever parked
        for s in self.services:
            for p in s.pods:
                if p.phase == Phase.PENDING and p.until == INF:
                    p.until = now

    def remove(self, svc: Service, pods: list[Pod], now: float) -> None:
        if svc.remove(pods):
            self.unpark(now)

    # --- tick -----------------------------------------------------------------------------
    def step(self, now: float, dt_s: float, offered_rps) -> TickSignals:
        """Advance to ``now`` (s) and return the signals of the tick of length ``dt_s`` (s)."""
        self.now = now
        for event in self.timeline.pop_due(now):
            self.apply_fault(event, now)
        self.advance_lifecycles(now)
        self.run_probes(now)
        for svc in self.services:
            if svc.rolling:
                self.progress_rollout(svc, now)
        offered = [float(lam) for lam in offered_rps]
        if self.last is not None:
            for svc in self.services:
                offered[svc.index] += svc.config.retry_ratio * float(self.last.dropped_rps[svc.index])
        rows = [self.service_signals(svc, now, dt_s, lam) for svc, lam in zip(self.services, offered)]
        sig = TickSignals(now, *(np.array(col) for col in zip(*rows)))
        if self.freeze_pending:
            snapshot_metrics(sig, np.array(self.freeze_pending), self.frozen)
            self.freeze_pending = []
        self.last = sig
        return sig

    def advance_lifecycles(self, now: float) -> None:
        for _ in range(MAX_LIFECYCLE_ROUNDS):
            changed = self.schedule_pending(now)
            for svc in self.services:
                changed |= self.finish_starts(svc, now)
                changed |= self.finish_backoffs(svc, now)
                changed |= self.leak_events(svc, now)
            if not changed:
                return
        raise RuntimeError(f"pod lifecycles did not settle at t={now}")

    def schedule_pending(self, now: float) -> bool:
        due = [(p.until, p.created_s, s.index, p.serial, s, p) for s in self.services for p in s.pods
               if p.phase == Phase.PENDING and p.until <= now]
        if not due:
            return False
        free = self.pod_capacity - self.scheduled_total()
        for t, _, _, _, svc, pod in sorted(due, key=lambda d: d[:4]):
            if free > 0:
                free -= 1
                svc.start_container(pod, t)
            else:
                pod.until = INF  # parked until capacity frees
        return True

    def finish_starts(self, svc: Service, now: float) -> bool:
        changed = False
        for pod in svc.pods:
            if pod.phase == Phase.STARTING and pod.until <= now:
                t = pod.until
                if svc.props(pod).crash_loop:
                    pod.restarts += 1
                    svc.restarts_total += 1
                    pod.phase, pod.until, pod.leak_at, pod.degraded = Phase.BACKOFF, t + backoff_s(pod.restarts), INF, False
                elif svc.held:  # its readiness probe fails: held, running, until the outage or overload ends
                    pod.until = INF
                else:
                    pod.phase, pod.until, pod.transition_s = Phase.READY, INF, t
                changed = True
        return changed

    def finish_backoffs(self, svc: Service, now: float) -> bool:
        changed = False
        for pod in svc.pods:
            if pod.phase == Phase.BACKOFF and pod.until <= now:
                svc.start_container(pod, pod.until)
                changed = True
        return changed

    def leak_events(self, svc: Service, now: float) -> bool:
        changed = False
        c = svc.config
        for pod in svc.pods:
            if pod.running and pod.leak_at <= now:
                t = pod.leak_at
                if not pod.degraded and c.memory_soft_limit_mib < c.memory_limit_mib:
                    pod.degraded = True
                    pod.leak_at = svc.leak_next(pod)
                else:
                    svc.restart_container(pod, t)  # OOM-killed
                changed = True
        return changed

    def progress_rollout(self, svc: Service, now: float) -> None:
        """One RollingUpdate sync, in Kubernetes' order: scale new up, old unhealthy down, old down."""
        spec = svc.spec
        surge, unavailable = rollout_budget(spec, svc.config.max_surge, svc.config.max_unavailable)
        new = [p for p in svc.pods if p.rev_seq == svc.current_seq]
        if len(new) > spec:
            self.remove(svc, svc.ranked(new)[:len(new) - spec], now)
        new_count = min(len(new), spec)
        svc.create(min(spec + surge - len(svc.pods), spec - new_count), now)
        min_available = spec - unavailable
        new = [p for p in svc.pods if p.rev_seq == svc.current_seq]
        new_unavailable = sum(p.phase != Phase.READY for p in new)
        max_down = len(svc.pods) - min_available - new_unavailable
        old_unready = svc.ranked([p for p in svc.pods if p.rev_seq != svc.current_seq and p.phase != Phase.READY])
        if max_down > 0 and old_unready:
            self.remove(svc, old_unready[:max_down], now)
        ready = sum(p.phase == Phase.READY for p in svc.pods)
        old = svc.ranked([p for p in svc.pods if p.rev_seq != svc.current_seq])
        if ready - min_available > 0 and old:
            self.remove(svc, old[:ready - min_available], now)
        new = [p for p in svc.pods if p.rev_seq == svc.current_seq]
        if len(new) == len(svc.pods) == spec and all(p.phase == Phase.READY for p in new):
            svc.rolling = False

    def service_signals(self, svc: Service, now: float, dt_s: float, lam: float) -> tuple:
        c = svc.config
        cap = err_w = bad_cap = extra_w = 0.0
        n_ready = 0
        for pod in svc.pods:
            if pod.phase != Phase.READY:
                continue
            n_ready += 1
            props = svc.props(pod)
            ci = c.capacity_rps * (c.degraded_capacity_ratio if pod.degraded else 1.0)
            xi = props.extra_latency_s + (c.degraded_extra_latency_s if pod.degraded else 0.0)
            cap += ci
            err_w += ci * props.pod_error_ratio(c.base_error_ratio)
            if xi > 0:
                bad_cap += ci
                extra_w += ci * xi
        # throughput
        queue_limit = c.queue_limit if c.overload == "queue" else 0.0
        available = lam + svc.backlog / dt_s
        served = min(available, cap)
        excess = available - served
        backlog = min(excess * dt_s, queue_limit)
        dropped = excess - backlog / dt_s
        svc.backlog = backlog
        # latency
        safe = max(cap, TINY_RPS)
        rho = min(max(served / safe, RHO_FLOOR), RHO_CAP)
        servers = max(cap * c.base_latency_s, 1.0)
        log_p_wait = math.log(rho) * (math.sqrt(2.0 * (servers + 1.0)) - 1.0)
        share = bad_cap / safe
        mean_extra = extra_w / max(bad_cap, TINY_RPS)
        lat = []
        for q, ln_tail, ratio in zip(QUANTILES, LN_TAIL, c.latency_tail_ratios):
            wait = max(log_p_wait - ln_tail, 0.0) * (1.0 / (safe * (1.0 - rho)))
            value = c.base_latency_s * ratio + wait
            if c.overload == "queue":
                value += backlog / safe
            if share > 1.0 - q:
                value += mean_extra
            value = min(value, c.timeout_s)
            if cap == 0 and (lam > 0 or backlog > 0):
                value = c.timeout_s
            lat.append(value)
        errors = served * (err_w / safe)
        ratio = (errors + dropped) / max(served + dropped, TINY_RPS)
        util = served * ((100.0 * c.cpu_ratio) / safe) if n_ready else math.nan
        running = [p for p in svc.pods if p.running]
        memory = sum(svc.memory(p, now) for p in running) / len(running) if running else 0.0
        revision = svc.revisions[svc.current_seq].number
        return (lam, served, dropped, backlog, cap, util, lat[0], lat[1], lat[2], errors, ratio, memory,
                n_ready, svc.spec, len(svc.pods), svc.restarts_total, revision, svc.rolling)

    # --- faults ---------------------------------------------------------------------------
    def apply_fault(self, event: F.FaultEvent, now: float) -> None:
        f = event.fault
        rows = f.service_indices(self.index_of, len(self.services))
        if isinstance(f, F.PodCrash):
            for i in rows:
                svc = self.services[i]
                running = sorted((p for p in svc.pods if p.running), key=lambda p: p.serial)
                for k in F.choose_victims(self.streams.pod_crash(svc.config.name), len(running), f.count):
                    svc.restart_container(running[k], now)
        elif isinstance(f, (F.CrashLoopRollout, F.BadRollout)):
            for i in rows:
                self.rollout(int(i), f.revision_props(), now)
        elif isinstance(f, F.NodeLoss):
            self.node_loss(f, event.starts, now)
        elif isinstance(f, F.MemoryLeak):
            for i in rows:
                self.memory_leak(self.services[i], f, event, now)
        elif isinstance(f, F.ReadinessOutage):
            for i in sorted(set(rows.tolist())):
                self.readiness_outage(self.services[i], event.starts, now)
        else:
            self.metrics_fault(f, rows, event.starts, now)

    def node_loss(self, f: F.NodeLoss, starts: bool, now: float) -> None:
        lost = self.config.lost_capacity(f.share_ratio)
        if not starts:
            self.capacity_lost -= lost
            self.unpark(now)
            return
        self.capacity_lost += lost
        scheduled = [(s, p) for s in self.services for p in sorted(s.pods, key=lambda p: p.serial) if p.scheduled]
        victims = F.choose_victims(self.rng, len(scheduled), F.node_loss_victim_count(f.share_ratio, len(scheduled)))
        for k in victims:
            svc, pod = scheduled[k]
            svc.remove([pod])
        if len(victims):
            self.unpark(now)
        for k in victims:  # the ReplicaSets recreate them
            svc, pod = scheduled[k]
            svc.create(1, now, pod.rev_seq)

    def memory_leak(self, svc: Service, f: F.MemoryLeak, event: F.FaultEvent, now: float) -> None:
        if event.starts:
            svc.leak = Leak(f.rate_mib_per_s, now, event.index)
        elif svc.leak is not None and svc.leak.fault_index == event.index:
            svc.leak = None
            for pod in svc.pods:
                pod.degraded = False
        else:
            return
        for pod in svc.pods:
            pod.leak_at = svc.leak_next(pod)

    def readiness_outage(self, svc: Service, starts: bool, now: float) -> None:
        """Start: every Ready pod turns running-not-Ready (held: Starting, no end; its container
        runs on). End of the last outage on the service: held pods get Ready at once."""
        svc.readiness_down += 1 if starts else -1
        if starts:
            self.hold_ready_pods(svc, now)
        elif not svc.held:
            self.release_held_pods(svc, now)

    @staticmethod
    def hold_ready_pods(svc: Service, now: float) -> None:
        for pod in svc.pods:
            if pod.phase == Phase.READY:
                pod.phase, pod.transition_s = Phase.STARTING, now  # until stays inf: held

    @staticmethod
    def release_held_pods(svc: Service, now: float) -> None:
        for pod in svc.pods:
            if pod.phase == Phase.STARTING and pod.until == INF:
                pod.phase, pod.transition_s = Phase.READY, now

    def run_probes(self, now: float) -> None:
        """Readiness probes due at ``now`` (at most one per service per step): a probe fails when
        the service has a Ready pod and dropped or queued requests in the last step; after
        failure_threshold failures in a row its Ready pods turn running-not-Ready (held), after
        success_threshold successes in a row (dark, it gets no traffic) they are Ready again."""
        start = self.config.start_s
        for svc in self.services:
            probe = svc.probe
            if probe is None or start + svc.probe_k * probe.period_s > now:
                continue
            svc.probe_k = max(svc.probe_k + 1, math.floor((now - start) / probe.period_s) + 1)
            last = self.last
            saturated = last is not None and (last.dropped_rps[svc.index] > 0 or last.queue_length[svc.index] > 0)
            ready = any(p.phase == Phase.READY for p in svc.pods)
            if saturated and ready and not svc.probe_down:
                svc.probe_failures, svc.probe_successes = svc.probe_failures + 1, 0
            else:
                svc.probe_failures, svc.probe_successes = 0, svc.probe_successes + 1
            if not svc.probe_down and svc.probe_failures >= probe.failure_threshold:
                svc.probe_down, svc.probe_failures, svc.probe_successes = True, 0, 0
                self.hold_ready_pods(svc, now)
            elif svc.probe_down and svc.probe_successes >= probe.success_threshold:
                svc.probe_down, svc.probe_failures, svc.probe_successes = False, 0, 0
                if not svc.held:
                    self.release_held_pods(svc, now)

    def metrics_fault(self, f: F.Fault, rows: np.ndarray, starts: bool, now: float) -> None:
        attr = {F.MetricsOutage: "outage", F.StaleMetrics: "stale", F.NaNMetrics: "nan"}[type(f)]
        for i in rows:
            svc = self.services[i]
            before = getattr(svc, attr)
            setattr(svc, attr, before + (1 if starts else -1))
            if attr == "stale" and starts and before == 0:
                if self.last is not None:
                    snapshot_metrics(self.last, np.array([i]), self.frozen)
                    self.stale_since[i] = self.last.at_s
                else:
                    self.freeze_pending.append(int(i))
                    self.stale_since[i] = now

    # --- actions --------------------------------------------------------------------------
    def set_replicas(self, i: int, replicas: int, now: float | None = None) -> None:
        """Set spec replicas (clamped to [0, max_pods]); pods are created or removed at once."""
        now = self.now if now is None else now
        svc = self.services[i]
        replicas = max(0, min(int(replicas), svc.config.max_pods))
        if svc.rolling and replicas != svc.spec:  # proportional scaling across the revisions
            order = [seq for seq in range(len(svc.revisions)) if seq != svc.current_seq] + [svc.current_seq]
            sizes = [sum(p.rev_seq == seq for p in svc.pods) for seq in order]  # the current revision last
            targets = proportional_sizes(sizes, svc.spec, replicas, svc.config.max_surge, svc.config.max_unavailable)
            svc.spec = replicas
            for seq, size, target in zip(order, sizes, targets):
                if target > size:
                    svc.create(target - size, now, seq)
                elif target < size:
                    self.remove(svc, svc.ranked([p for p in svc.pods if p.rev_seq == seq])[:size - target], now)
            return
        delta, svc.spec = replicas - svc.spec, replicas
        if delta > 0:
            svc.create(delta, now)
        elif delta < 0:
            self.remove(svc, svc.ranked(svc.pods)[:-delta], now)

    def delete_pod(self, i: int, name: str, now: float | None = None) -> None:
        """Delete a pod by name; its ReplicaSet recreates it (Pending). Counts one restart."""
        now = self.now if now is None else now
        svc = self.services[i]
        pod = next((p for p in svc.pods if svc.pod_name(p) == name), None)
        if pod is None:
            raise NotFound(f"pod {name!r} not found in {svc.config.name}", target=svc.config.name, status=404)
        self.remove(svc, [pod], now)
        svc.restarts_total += 1
        svc.create(1, now, pod.rev_seq)

    def rollout(self, i: int, props: RevisionProps | None = None, now: float | None = None) -> int:
        """Start a rolling update to a new revision with ``props``; return its number."""
        now = self.now if now is None else now
        svc = self.services[i]
        props = svc.revisions[svc.current_seq].props if props is None else props
        seq = len(svc.revisions)
        number = max(r.number for r in svc.revisions) + 1
        svc.revisions.append(Revision(number, seq, revision_hash(self.salt, svc.config.name, seq), props, now))
        svc.current_seq, svc.rolling = seq, True
        return number

    def rolling_restart(self, i: int, now: float | None = None) -> int:
        """A new revision with the same properties (a new pod-template-hash), rolled out."""
        return self.rollout(i, None, now)

    def rollback(self, i: int, revision: int | str | None = None, now: float | None = None,
                 fast: bool = False) -> int:
        """Roll back to revision ``revision`` (default: the previous one); return its new number.
        ``fast``: also delete the abandoned revisions' pods that are not ready, at once."""
        svc = self.services[i]
        target = rollback_target(svc.revisions, svc.revisions[svc.current_seq], revision, svc.config.name)
        if target.seq == svc.current_seq:
            return target.number
        number = max(r.number for r in svc.revisions) + 1
        svc.revisions[target.seq] = replace(target, number=number)
        svc.current_seq, svc.rolling = target.seq, True
        if fast:
            unready = svc.ranked([p for p in svc.pods if p.rev_seq != svc.current_seq and p.phase != Phase.READY])
            if unready:
                self.remove(svc, unready, self.now if now is None else now)
            self.progress_rollout(svc, self.now if now is None else now)
        return number

    # --- reads ----------------------------------------------------------------------------
    def signals(self, now: float | None = None) -> ObservedSignals:
        """The last tick's signals through the metric faults (outage / stale / NaN masks)."""
        if self.last is None:
            raise RuntimeError("signals() before the first step()")
        flags = lambda attr: np.array([getattr(s, attr) > 0 for s in self.services])  # noqa: E731
        return observed(self.last, flags("outage"), flags("stale"), flags("nan"), self.frozen, self.stale_since)

    @property
    def spec_replicas(self) -> np.ndarray:
        return np.array([s.spec for s in self.services])

    @property
    def ready_replicas(self) -> np.ndarray:
        return np.array([sum(p.phase == Phase.READY for p in s.pods) for s in self.services])

    @property
    def n_services(self) -> int:
        return len(self.services)

    def pod_names(self, i: int) -> list[str]:
        svc = self.services[i]
        return [svc.pod_name(p) for p in sorted(svc.pods, key=lambda p: p.serial)]

    def statuses(self, targets: Sequence[TargetRef] | None = None) -> list[TargetStatus]:
        """Status of the workloads (default: all) with their pods, as SimCluster.statuses."""
        rows = range(len(self.services)) if targets is None else [self.index_of[t.name] for t in targets]
        return [self._status(self.services[i]) for i in rows]

    def _status(self, svc: Service) -> TargetStatus:
        pods = tuple(PodStatus(
            name=svc.pod_name(p), phase="Pending" if p.phase == Phase.PENDING else "Running",
            ready=p.phase == Phase.READY, start_time=p.created_s, ready_transition_time=p.transition_s,
            restarts=p.restarts, revision=str(svc.revisions[p.rev_seq].number), created_time=p.created_s,
            waiting="CrashLoopBackOff" if p.phase == Phase.BACKOFF else "")
            for p in sorted(svc.pods, key=lambda p: p.serial))
        return TargetStatus(
            ref=TargetRef(svc.config.namespace, svc.config.name), spec_replicas=svc.spec,
            status_replicas=len(svc.pods), ready_replicas=sum(p.phase == Phase.READY for p in svc.pods),
            revision=str(svc.revisions[svc.current_seq].number), rollout_in_progress=svc.rolling,
            revisions=tuple(str(r.number) for r in sorted(svc.revisions, key=lambda r: r.number)),
            pods=pods)

