"""Drive controllers through a scenario, tick by tick on the simulation clock (no APScheduler).

Each controller gets its own simulated cluster built from the same scenario and seed, so the
runs are independent and deterministic. A policy controller is the live Reconciler over the
simulated ports; the baselines are the ``hpa`` preset (a Reconciler too), fixed replicas at
max, and the oracle (a precomputed plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from controller.core.health_params import Scope
from controller.errors import FieldError, ScenarioError
from controller.model import Action
from controller.policy import LoadedPolicy
from controller.runtime.reconciler import CycleResult, Reconciler, RuntimePolicy, cycle_records
from simulators.cluster import SimCluster
from simulators.memory import check_fits, format_bytes, memory_limit
from simulators.oracle import oracle_plan
from simulators.ports import MemoryStateStore, SimMetrics, SimTargets
from simulators.result import ActionEvent, ControllerRun, FaultWindow, SimResult, Trajectory
from simulators.scenario import POD_SIGNALS, Scenario
from simulators.score import score_run, violation_mask

#: A fault with no end of its own (a crash, a bad release) is blamed for violations of its
#: services for at most this long when scoring time to mitigate.
INSTANT_FAULT_BLAME_S = 1800.0

_LATENCY_FIELD = {50.0: "latency_p50_s", 95.0: "latency_p95_s", 99.0: "latency_p99_s"}


@dataclass(frozen=True)
class ControllerSpec:
    """One controller to run: ``kind`` is policy | fixed | oracle."""

    name: str
    kind: str
    description: str
    policy: LoadedPolicy | None = None
    replicas: int | None = None  # for fixed
    # the controller process restarts every this many simulated seconds (None: never): a new
    # Reconciler, nothing kept in memory, the durable healing state kept in a MemoryStateStore
    restart_every_s: float | None = None


@dataclass
class CycleLog:
    """Decisions kept for ``setpoint explain`` (state dropped to keep memory small)."""

    policy: str
    metric_names: tuple[str, ...]
    cycles: list[CycleResult] = field(default_factory=list)

    def add(self, result: CycleResult) -> None:
        if result.decision is not None:
            # the healing decision keeps its state: its records read the revision memory
            healing = None if result.healing is None else replace(result.healing, unapplied=None)
            self.cycles.append(replace(result, decision=replace(result.decision, kept=None), healing=healing,
                                       view=None))

    def records(self, start_s: float = 0.0):
        """Every decision record, with ``at`` in seconds since the scenario start."""
        for result in self.cycles:
            yield from cycle_records(result, self.metric_names, start_s)


@dataclass
class _Recorder:
    """(T, S) arrays filled tick by tick."""

    T: int
    S: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    FIELDS = ("offered_rps", "served_rps", "dropped_rps", "capacity_rps", "spec_replicas", "ready_replicas",
              "error_ratio", "latency")

    def __post_init__(self):
        self.arrays = {f: np.zeros((self.T, self.S)) for f in self.FIELDS}

    def put(self, k: int, sig, latency_field: str) -> None:
        a = self.arrays
        a["offered_rps"][k], a["served_rps"][k], a["dropped_rps"][k] = sig.offered_rps, sig.served_rps, sig.dropped_rps
        a["capacity_rps"][k], a["spec_replicas"][k] = sig.capacity_rps, sig.spec_replicas
        a["ready_replicas"][k], a["error_ratio"][k] = sig.ready_replicas, sig.error_ratio
        a["latency"][k] = getattr(sig, latency_field)


def policy_bindings(scenario: Scenario, policy: RuntimePolicy) -> dict[str, str]:
    """query expression -> simulated signal, for each metric and health check of the policy."""
    named = list(zip(policy.params.metric_names, policy.queries, [False] * len(policy.queries)))
    if policy.health is not None:
        named += [(c.name, q, c.scope == Scope.POD) for c, q in zip(policy.health.checks, policy.health_queries)]
    out = {}
    for name, expr, per_pod in named:
        signal = scenario.pod_signal_for(name) if per_pod else scenario.signal_for(name)
        if signal is None:
            raise ValueError(f"policy {policy.name}: {'pod check' if per_pod else 'metric'} {name!r} is not bound to "
                             f"a simulated signal; add it under spec.metrics of scenario {scenario.name}")
        if out.get(expr, signal) != signal:
            raise ValueError(f"policy {policy.name}: the query of {name!r} is also used for another signal")
        out[expr] = signal
    for exprs in policy.revision_queries:  # one series per pod, sampled with noise (SimMetrics)
        signals = ("pod_latency",) if len(exprs) == 1 else ("pod_errors", "pod_requests")
        for expr, bound in zip(exprs, signals):
            signal = POD_SIGNALS[bound]
            if out.get(expr, signal) != signal:
                raise ValueError(f"policy {policy.name}: the revision query {expr!r} is also used for another signal")
            out[expr] = signal
    return out


def run_controller(scenario: Scenario, spec: ControllerSpec, offered: np.ndarray, *,
                   on_tick: Callable[[int], None] | None = None, keep_records: bool = True) -> tuple[ControllerRun, CycleLog | None]:
    """Simulate the whole scenario under one controller; returns its run and decision log."""
    times = scenario.times()
    T, S = offered.shape
    config, plan = scenario.cluster, None
    if spec.kind == "oracle":  # it knew the load before the start too: begin with its plan ready
        plan = oracle_plan(offered, scenario.cluster.services, scenario.slo, scenario.tick_s)
        config = replace(config, services=tuple(replace(s, initial_replicas=int(n))
                                                for s, n in zip(config.services, plan[0])))
    cluster = SimCluster(config, np.random.default_rng(scenario.seed), faults=scenario.faults)
    rec = _Recorder(T, S)
    latency_field = _LATENCY_FIELD[scenario.slo.latency_percentile]
    actions: list[ActionEvent] = []
    reconciler, log = None, None
    names = scenario.services

    if spec.kind == "policy":
        store = MemoryStateStore() if spec.restart_every_s else None
        reconciler, metrics, log = _policy_reconciler(scenario, spec.policy, cluster, keep_records, store)
        interval = spec.policy.params.interval_s
        next_restart = times[0] + spec.restart_every_s if spec.restart_every_s and len(times) else np.inf
    elif spec.kind == "fixed":
        cluster.scale(np.arange(S), np.minimum(spec.replicas, [s.max_pods for s in scenario.cluster.services]))

    next_cycle = times[0] if len(times) else 0.0
    every = max(1, T // 200)
    for k, now in enumerate(times):
        sig = cluster.step(now, scenario.tick_s, offered[k])
        rec.put(k, sig, latency_field)
        if reconciler is not None:
            metrics.push(cluster.signals())
            if now >= next_restart - 1e-9:  # a new controller process, same cluster and store
                reconciler = Reconciler(reconciler.policy, metrics, reconciler.cluster, on_cycle=reconciler.on_cycle,
                                        state_store=store)
                next_restart += spec.restart_every_s
            if now >= next_cycle - 1e-9:
                result = reconciler.cycle(now)
                actions += [_event(a, now - scenario.start_s) for a in result.actions]
                next_cycle += interval
        elif plan is not None and k + 1 < T:
            changed = np.flatnonzero(plan[k + 1] != plan[k])
            if changed.size:
                cluster.scale(changed, plan[k + 1, changed])
        if on_tick and (k % every == 0 or k == T - 1):
            on_tick(k + 1)
    a = rec.arrays
    traj = Trajectory(t_s=times - scenario.start_s, offered_rps=a["offered_rps"], served_rps=a["served_rps"],
                      dropped_rps=a["dropped_rps"], capacity_rps=a["capacity_rps"], spec_replicas=a["spec_replicas"],
                      ready_replicas=a["ready_replicas"], latency_s=a["latency"], error_ratio=a["error_ratio"],
                      violation=np.zeros((T, S), bool))
    traj.violation = violation_mask(traj, scenario.slo)
    services, note = driven_services(spec.policy, names) if spec.kind == "policy" else (list(names), "")
    run = ControllerRun(spec.name, spec.description, traj, actions, services=tuple(services), note=note)
    run.scores = score_run(run, scenario.slo, fault_windows(scenario), names, tick_s=scenario.tick_s)
    return run, log


def _policy_reconciler(scenario: Scenario, policy: LoadedPolicy, cluster: SimCluster, keep_records: bool,
                       state_store: MemoryStateStore | None = None) -> tuple[Reconciler, SimMetrics, CycleLog | None]:
    """The live Reconciler over the simulated ports, and where its decisions are logged."""
    rp = RuntimePolicy.of(policy)
    targets = SimTargets(cluster, driven_services(policy, scenario.services)[0])
    metrics = SimMetrics(cluster, policy_bindings(scenario, rp), scenario.metrics_window_s, scenario.tick_s,
                         seed=scenario.seed)
    metrics.attach(targets)
    log = CycleLog(policy.name, policy.params.metric_names) if keep_records else None
    reconciler = Reconciler(rp, metrics, targets, on_cycle=log.add if log else None, state_store=state_store)
    if policy.params.forecast_metrics and scenario.history_s > 0:
        refs = targets.resolve(rp.selector)
        times = scenario.history_times()
        reconciler.warm(refs, metric_history(scenario, rp, times)[targets.rows(refs)], times)
    return reconciler, metrics, log


def metric_history(scenario: Scenario, policy: RuntimePolicy, times: np.ndarray) -> np.ndarray:
    """(S, T, M) what each policy metric read before the start: the offered load averaged over
    the scenario's metrics window for metrics bound to the request rate; NaN for the others
    (they depend on how the cluster was run, which the history does not say)."""
    bindings = policy_bindings(scenario, policy)
    offered = scenario.offered(times)  # (T, S)
    k = max(1, int(round(scenario.metrics_window_s / scenario.tick_s)))
    csum = np.cumsum(np.vstack([np.zeros((1, offered.shape[1])), offered]), axis=0)
    lo = np.maximum(np.arange(1, offered.shape[0] + 1) - k, 0)
    windowed = (csum[1:] - csum[lo]) / (np.arange(1, offered.shape[0] + 1) - lo)[:, None]
    out = np.full((offered.shape[1], times.size, len(policy.queries)), np.nan)
    for j, expr in enumerate(policy.queries):
        if bindings[expr] == "offered_rps":
            out[:, :, j] = windowed.T
    return out


def driven_services(policy: LoadedPolicy, services: list[str]) -> tuple[list[str], str]:
    """(the services a policy drives in a simulation, a note saying why when they are not the
    ones it selects). Every service is scored, so a policy drives every service of the scenario,
    whatever it names: a policy naming some of them would leave the others unscaled yet scored.
    """
    sel = policy.targets
    names = list(sel.names)
    if names and sorted(names) == sorted(services):
        return list(services), ""
    every = f"applied to every service of the scenario ({', '.join(services)})"
    if not names:
        labels = ", ".join(f"{k}={v}" for k, v in sel.match_labels) or "namespace " + sel.namespace
        return list(services), f"policy {policy.name} selects its targets by {labels}; {every}"
    absent = [n for n in names if n not in services]
    named = f"names {', '.join(names)}" + (f" ({', '.join(absent)} not in the scenario)" if absent else "")
    return list(services), f"policy {policy.name} {named}; {every}"


def _event(action: Action, t_s: float) -> ActionEvent:
    reason = action.reason if not action.pod else f"{action.reason} ({action.pod})"
    if action.revision:
        reason = f"{reason} (to revision {action.revision})"
    return ActionEvent(t_s=t_s, service=action.target.name, kind=action.kind.word,
                       from_replicas=action.from_replicas, to_replicas=action.replicas, reason=reason)


def fault_windows(scenario: Scenario) -> list[FaultWindow]:
    out = []
    for name, f in zip(scenario.fault_names, scenario.faults):
        start = f.at_s - scenario.start_s
        end = f.end_s - scenario.start_s if f.end_s is not None else min(start + INSTANT_FAULT_BLAME_S, scenario.duration_s)
        out.append(FaultWindow(name=name, kind=f.kind, service=",".join(f.services) if f.services else "*",
                               start_s=start, end_s=end))
    return out


def simulate(scenario: Scenario, controllers: list[ControllerSpec], *, on_progress: Callable[[str, int, int], None] | None = None,
             keep_records: bool = True, policy_file: str = "",
             max_memory_bytes: int | None = None) -> tuple[SimResult, dict[str, CycleLog]]:
    """Run every controller on the scenario. Returns the result and the decision logs by controller.

    Refuses (ScenarioError, before allocating) a run whose estimated memory exceeds
    ``max_memory_bytes`` (default 4 GiB) or what the machine allows; see simulators.memory.
    """
    limit = memory_limit(max_memory_bytes)
    need = check_fits(scenario, controllers, limit, keep_records)
    try:
        return _simulate(scenario, controllers, on_progress, keep_records, policy_file)
    except MemoryError:  # the estimate is meant to prevent this; never a traceback if it does not
        raise ScenarioError([FieldError(scenario.file, None, "spec", (
            f"ran out of memory (estimated {format_bytes(need)}, limit {format_bytes(limit.bytes)} from {limit.source}); "
            "shorten spec.duration, raise spec.tick, or use fewer services or baselines"))]) from None


def _simulate(scenario: Scenario, controllers: list[ControllerSpec], on_progress, keep_records: bool,
              policy_file: str) -> tuple[SimResult, dict[str, CycleLog]]:
    offered = scenario.offered()
    runs, logs = {}, {}
    for c in controllers:
        tick = (lambda k, name=c.name: on_progress(name, k, offered.shape[0])) if on_progress else None
        run, log = run_controller(scenario, c, offered, on_tick=tick, keep_records=keep_records)
        runs[c.name] = run
        if log is not None:
            logs[c.name] = log
    result = SimResult(scenario=scenario.name, description=scenario.description, duration_s=scenario.duration_s,
                       tick_s=scenario.tick_s, seed=scenario.seed, slo=scenario.slo, services=scenario.services,
                       faults=fault_windows(scenario), runs=runs, policy_file=policy_file)
    return result, logs


def standard_controllers(policy: LoadedPolicy | None, baselines: list[str], hpa_policy: LoadedPolicy | None,
                         max_replicas: int) -> list[ControllerSpec]:
    """The policy under test plus the named baselines (hpa, fixed-max, oracle), in that order."""
    out = []
    if policy is not None:
        out.append(ControllerSpec("policy", "policy", f"{policy.name} ({policy.file})", policy=policy))
    for b in baselines:
        if b == "hpa":
            out.append(ControllerSpec("hpa", "policy", f"HPA preset ({hpa_policy.file})", policy=hpa_policy))
        elif b == "fixed-max":
            out.append(ControllerSpec("fixed-max", "fixed", f"fixed at {max_replicas} replicas", replicas=max_replicas))
        elif b == "oracle":
            out.append(ControllerSpec("oracle", "oracle", "knows the future load and start-up delay"))
        else:
            raise ValueError(f"unknown baseline {b!r}: expected hpa, fixed-max or oracle")
    return out


__all__ = ["ControllerSpec", "CycleLog", "simulate", "run_controller", "standard_controllers", "fault_windows"]
