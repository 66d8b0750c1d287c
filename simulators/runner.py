"""Drive controllers through a scenario, tick by tick on the simulation clock (no APScheduler).

Each controller gets its own simulated cluster built from the same scenario and seed, so the
runs are independent and deterministic. A policy controller is the live Reconciler over the
simulated ports; the baselines are the ``hpa`` preset (a Reconciler too), fixed replicas at
max, and the oracle (a precomputed plan). A health-only policy runs as a ``healer`` beside
what scales the workload (the ``hpa`` preset, or fixed replicas): a second Reconciler over the
same cluster, as in production Setpoint heals beside the workload's HPA.
"""

from __future__ import annotations

import bisect
import pickle
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import IO, Callable, Sequence

import numpy as np

from controller.core.health.params import Scope
from controller.core.scaling import compiled
from controller.core.scaling.params import MetricKind
from controller.errors import FieldError, ScenarioError
from controller.model import Action, ActionKind, ScaleActions
from controller.policy import LoadedPolicy
from controller.policy.limits import MAX_REPLICAS
from controller.runtime.reconciler import CycleResult, Reconciler, RuntimePolicy, cycle_records
from controller.runtime.record_lines import cycle_lines
from controller.runtime.records import lines_text
from simulators import engine_compiled, load_compiled, parallel, pod_samples_compiled, score_compiled
from simulators.cluster import SimCluster
from simulators.memory import check_fits, format_bytes, kept_trajectory, memory_limit
from simulators.load import CHUNK_TICKS, chunk_times
from simulators.oracle import oracle_plan_rows
from simulators.ports import MemoryStateStore, SimMetrics, SimTargets
from simulators.result import ActionEvent, ActionLog, ControllerRun, FaultWindow, SimResult, Trajectory
from simulators.scenario import POD_SIGNALS, SIGNALS, Scenario
from simulators.simcluster import queue_compiled, view_compiled
from simulators.score import DROP_TOLERANCE_RPS, OnlineScores, violation_mask
from simulators.timeline import CYCLE_RECORDS, RECORDS_IN_MEMORY, ActionBudget, Timeline, aggregate, record_ticks

#: Service-ticks of all runs from which a simulation is worth the compiled kernels (compiled_pays).
COMPILED_FROM_SERVICE_TICKS = 12_000

#: A fault with no end of its own (a crash, a bad release) is blamed for violations of its
#: services for at most this long when scoring time to mitigate.
INSTANT_FAULT_BLAME_S = 1800.0

_LATENCY_FIELD = {50.0: "latency_p50_s", 95.0: "latency_p95_s", 99.0: "latency_p99_s"}


@dataclass(frozen=True)
class ControllerSpec:
    """One controller to run: ``kind`` is policy | fixed | oracle.

    ``healer``: a health-only policy (no scaling section) run beside the controller over the same
    cluster, by a Reconciler of its own: what Setpoint does in production beside a workload's own
    HPA. The controller (a ``policy`` of the ``hpa`` preset, or ``fixed`` replicas) scales; the
    healer restarts, rolls back, pauses and scales up on its checks. Its records are the run's
    records (the scaler's are not kept: in production nobody writes Setpoint records for an HPA).
    """

    name: str
    kind: str
    description: str
    policy: LoadedPolicy | None = None
    replicas: int | None = None  # for fixed; None: each service's initialReplicas, as the scenario starts it
    # the controller process restarts every this many simulated seconds (None: never): a new
    # Reconciler, nothing kept in memory, the durable healing state kept in a MemoryStateStore
    restart_every_s: float | None = None
    healer: LoadedPolicy | None = None

    @property
    def policies(self) -> tuple[LoadedPolicy, ...]:
        """The policies whose Reconcilers run in this controller's run: its scaling policy (kind
        policy) first, then its healer."""
        return tuple(p for p in (self.policy if self.kind == "policy" else None, self.healer) if p is not None)

    @property
    def cost_kind(self) -> str:
        """Its kind as parallel.KIND_COST weighs it: a run with a healer cycles a Reconciler."""
        return "policy" if self.healer is not None else self.kind


@dataclass
class CycleLog:
    """Decisions kept for ``setpoint explain`` (state dropped to keep memory small).

    Memory stays bounded on long runs: once the cycles held add up to more than
    ``in_memory_records`` records (a cycle itself counting as CYCLE_RECORDS), they are written as JSON lines (``at`` relative to
    ``start_s``) to an anonymous temporary file, and every later cycle goes there as it comes
    (disk use about 1 KiB per record). :meth:`lines` reads back all of them in order;
    :meth:`records` yields the record objects still in memory (all of them unless ``spilled``).
    """

    policy: str
    metric_names: tuple[str, ...]
    cycles: list[CycleResult] = field(default_factory=list)
    start_s: float = 0.0
    in_memory_records: int | None = None  # default RECORDS_IN_MEMORY
    spilled: int = 0  # records written to the file
    _held: int = 0
    _spool: IO[str] | None = None

    def add(self, result: CycleResult) -> None:
        if result.decision is None and result.healing is None:
            return
        # the healing decision keeps its state: its records read the revision memory
        healing = None if result.healing is None else replace(result.healing, unapplied=None)
        if result.decision is None:  # a health-only cycle: its records read the view's counts
            kept = replace(result, healing=healing, view=replace(result.view, statuses=()))
        else:
            kept = replace(result, decision=replace(result.decision, kept=None), healing=healing, view=None)
        if self._spool is not None:
            self._write(kept)
            return
        self.cycles.append(kept)
        self._held += len(kept.targets) + CYCLE_RECORDS
        limit = RECORDS_IN_MEMORY if self.in_memory_records is None else self.in_memory_records
        if self._held > limit:
            self._spool = tempfile.TemporaryFile("w+", encoding="utf-8")
            for cycle in self.cycles:
                self._write(cycle)
            self.cycles.clear()

    def _write(self, cycle: CycleResult) -> None:
        lines = cycle_lines(cycle, self.metric_names, self.start_s)
        self._spool.write(lines_text(lines))
        self.spilled += len(lines)

    def records(self, start_s: float | None = None):
        """The decision records held in memory, with ``at`` in seconds since ``start_s`` (default
        the log's); all of them unless the log spilled to its file (then read :meth:`lines`)."""
        for result in self.cycles:
            yield from cycle_records(result, self.metric_names, self.start_s if start_s is None else start_s)

    def lines(self):
        """Every decision record as a JSON text (no newline), in order: the spilled ones first."""
        for block in self.blocks():
            yield from block.split("\n")[:-1]

    def blocks(self, block_chars: int = 1 << 22):
        """Every decision record's JSON line, in order, as texts of whole lines (each ending with a
        newline; of about ``block_chars`` characters from the file, one cycle's from memory)."""
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            while lines := self._spool.readlines(block_chars):
                yield "".join(lines)
            self._spool.seek(0, 2)
        for result in self.cycles:
            lines = cycle_lines(result, self.metric_names, self.start_s)
            if lines:
                yield lines_text(lines)

    @property
    def record_count(self) -> int:
        """How many records the log holds (written to its file or not)."""
        return self.spilled + sum(len(c.targets) for c in self.cycles)

    def close(self) -> None:
        """Nothing more will be added (the file, if any, stays readable until the log is dropped)."""
        if self._spool is not None:
            self._spool.flush()


class _Recorder:
    """A run's signals, a chunk of ticks at a time: each full chunk goes to the online scores
    and the timeline (and to the whole trajectory when kept). Memory O(chunk x S)."""

    FIELDS = ("offered_rps", "served_rps", "dropped_rps", "capacity_rps", "spec_replicas", "ready_replicas",
              "error_ratio", "latency_s")
    #: The block's row of the SLO's latency (score_compiled.block_violation reads the others by FIELDS' order).
    LATENCY_ROW = FIELDS.index("latency_s")

    #: Ticks held before they are scored (at most; scores and timeline do not depend on where
    #: chunks are cut); None: timeline.record_ticks of the run's services.
    RECORD_TICKS: int | None = None

    def __init__(self, scenario: Scenario, T: int, S: int, chunk: int, keep_trajectory: bool):
        chunk = max(1, min(chunk, self.RECORD_TICKS or record_ticks(S)))
        self.slo, self.start_s, self.tick_s = scenario.slo, scenario.start_s, scenario.tick_s
        self.latency_field = _LATENCY_FIELD[scenario.slo.latency_percentile]
        # one row per field: put fills it in one call. Written whole here (np.full, not np.zeros' untouched
        # pages): numpy asks for huge pages for arrays of 4 MiB and more (1,000 services: 8 MiB), and the
        # kernel may compact memory on their first touch (up to ~15 ms on a loaded host), which then fell
        # on whichever tick first wrote each page; now on the run's set-up, where it belongs
        self._block = np.full((len(self.FIELDS), chunk, S), 0.0)
        self.chunk = {f: self._block[i] for i, f in enumerate(self.FIELDS)}
        self._compiled_put = score_compiled.enabled()
        self.t = np.zeros(chunk)
        self.n = 0
        self.whole = {f: np.zeros((T, S)) for f in self.FIELDS} if keep_trajectory else None
        self.scores = OnlineScores(scenario.slo, fault_windows(scenario), scenario.services, tick_s=scenario.tick_s)
        self.timeline = Timeline(T, S, T * scenario.tick_s)
        self.done = 0

    def put(self, now: float, sig) -> None:
        a, j = self.chunk, self.n
        self.t[j] = now - self.start_s
        if not (self._compiled_put and score_compiled.put_row(self._block, j, sig, getattr(sig, self.latency_field))):
            self._compiled_put = False
            a["offered_rps"][j], a["served_rps"][j], a["dropped_rps"][j] = sig.offered_rps, sig.served_rps, sig.dropped_rps
            a["capacity_rps"][j], a["spec_replicas"][j] = sig.capacity_rps, sig.spec_replicas
            a["ready_replicas"][j], a["error_ratio"][j] = sig.ready_replicas, sig.error_ratio
            a["latency_s"][j] = getattr(sig, self.latency_field)
        self.n += 1
        if self.n == self.t.size:
            self.flush()

    @property
    def signals(self) -> list[str]:
        """The TickSignals field each row of :meth:`sink`'s block holds (FIELDS, with the SLO's
        latency percentile for ``latency_s``)."""
        return [self.latency_field if f == "latency_s" else f for f in self.FIELDS]

    def sink(self) -> tuple[np.ndarray, int, int]:
        """Where the next ticks' signals go, for an engine that writes them itself
        (SimCluster.step_ticks): the (F, C, S) block of :attr:`signals`, the next row and how
        many rows are free; the writer then calls :meth:`written`."""
        return self._block, self.n, self.t.size - self.n

    def written(self, times: np.ndarray) -> None:
        """The block's next rows hold the ticks at ``times`` (n,) epoch s: recorded as by :meth:`put`."""
        n = times.size
        self.t[self.n:self.n + n] = times - self.start_s
        self.n += n
        if self.n == self.t.size:
            self.flush()

    def flush(self) -> None:
        """Score and downsample the ticks put since the last flush."""
        n = self.n
        if n == 0:
            return
        rows = {f: v[:n] for f, v in self.chunk.items()}
        t = self.t[:n]
        slo = self.slo
        # the mask and which ticks violate in one pass over the block; the sums over services
        # once, for the timeline and the replica-hours (they were summed twice)
        found = score_compiled.block_violation(self._block, n, self.LATENCY_ROW, slo.latency_s, slo.error_ratio,
                                               DROP_TOLERANCE_RPS)
        violation, any_violation = found if found is not None else (violation_mask(SimpleNamespace(**rows), slo), None)
        totals = aggregate(rows)
        self.scores.add(t, violation, rows["spec_replicas"], spec_sums=totals["spec_replicas"])
        self.timeline.add(t, rows, violation, totals, any_violation)
        if self.whole is not None:
            for f, v in rows.items():
                self.whole[f][self.done:self.done + n] = v
        self.done += n
        self.n = 0

    def trajectory(self, times: np.ndarray | None) -> Trajectory | None:
        if self.whole is None:
            return None
        a = self.whole
        traj = Trajectory(t_s=times - self.start_s, offered_rps=a["offered_rps"], served_rps=a["served_rps"],
                          dropped_rps=a["dropped_rps"], capacity_rps=a["capacity_rps"], spec_replicas=a["spec_replicas"],
                          ready_replicas=a["ready_replicas"], latency_s=a["latency_s"], error_ratio=a["error_ratio"],
                          violation=np.zeros(a["offered_rps"].shape, bool))
        traj.violation = violation_mask(traj, self.slo)
        return traj


def _load_chunks(scenario: Scenario, offered: np.ndarray | None, chunk: int):
    """(k0, times (C,), load (C, S)) of the scenario: generated chunk by chunk, or cut from a
    given whole (T, S) ``offered``."""
    if offered is None:
        yield from scenario.offered_chunks(chunk)
        return
    for k0 in range(0, offered.shape[0], chunk):
        k1 = min(k0 + chunk, offered.shape[0])
        yield k0, chunk_times(scenario.start_s, scenario.tick_s, k0, k1), offered[k0:k1]


def _unbound_words(unbound: list[tuple[str, bool]]) -> str:
    """``metric 'rps' is not bound to a simulated signal (SIGNALS)``, and the pod checks' with the
    per-pod signals they can bind to, for (name, per pod) pairs: each kind lists its own signals."""
    parts = []
    for per_pod, signals in ((False, SIGNALS), (True, POD_SIGNALS)):
        names = [name for name, p in unbound if p is per_pod]
        if names:
            said = ", ".join(f"{'pod check' if per_pod else 'metric'} {name!r}" for name in names)
            parts.append(f"{said} {'is' if len(names) == 1 else 'are'} not bound to a simulated "
                         f"{'per-pod ' if per_pod else ''}signal ({', '.join(sorted(signals))})")
    return "; ".join(parts)


def _names(policy: RuntimePolicy) -> list[str]:
    """The policy's metric and health check names, as a scenario's spec.metrics binds them."""
    return list(policy.params.metric_names) + ([c.name for c in policy.health.checks] if policy.health else [])


def _misspelt(scenario: Scenario, names: Sequence[str]) -> dict[str, str]:
    """spec.metrics name -> the name of ``names`` it probably meant: a binding that names none of
    them but is close to one the scenario does not bind (a typo, whose signal nothing reads)."""
    import difflib

    unbound = [n for n in names if n not in scenario.bindings]
    out = {}
    for key in scenario.bindings:
        close = [] if key in names else difflib.get_close_matches(key, unbound, n=1, cutoff=0.75)
        if close:
            out[key] = close[0]
    return out


def misspelt_bindings(scenario: Scenario, policy: RuntimePolicy) -> list[FieldError]:
    """A warning per spec.metrics name that is no metric or check of ``policy`` and reads like one
    of them: the binding is unused, and that metric reads its default signal (or none) instead."""
    out = []
    for key, meant in _misspelt(scenario, _names(policy)).items():
        per_pod = policy.health is not None and any(c.name == meant and c.scope == Scope.POD
                                                     for c in policy.health.checks)
        kind = next((m.kind for m in policy.params.metrics if m.name == meant), None)
        signal = scenario.pod_signal_for(meant) if per_pod else scenario.signal_for(meant, kind)
        reads = f"reads {signal} (the default for that name)" if signal else "is bound to nothing"
        out.append(FieldError(scenario.file, scenario.binding_lines.get(key), f"spec.metrics.{key}",
                              f"warning: policy {policy.name} has no metric or check named {key!r}, so this "
                              f"binding is unused and its {meant!r} {reads}; did you mean spec.metrics.{meant}?"))
    return out


#: A workload total's signal -> one pod's, for a metric the hpa preset reads pod by pod (HPA's
#: Resource AverageValue, a query by (namespace, pod)): each pod's series reads its share, not the total.
PER_POD_MODES = {"memory_mib:total_bytes": "memory_mib:pod_bytes", "utilization_pct:total_cores": "utilization_pct:pod_cores"}


def reads_average_by_pod(params, metric) -> bool:
    """Whether ``metric`` (of a policy with ``params``) is an averagePerReplica metric the hpa preset
    reads pod by pod (HPA's Resource AverageValue: compile.average_source)."""
    return params.hpa_semantics and metric.kind == MetricKind.AVERAGE_PER_REPLICA and metric.per_pod


def policy_bindings(scenario: Scenario, policy: RuntimePolicy, one_run: bool = True) -> dict[str, str]:
    """query expression -> simulated signal, for each metric and health check of the policy.
    ``one_run``: a metric the scenario does not bind may be bound with --scenario-set (simulate,
    sweep, tune); sim serve has no such option: its message says to bind it in the scenario file."""
    def signal_of(name: str, per_pod: bool, kind: MetricKind | None) -> str | None:
        # kind: a scaling metric's target kind (a cpu or memory metric's default is by it); None for a check
        return scenario.pod_signal_for(name) if per_pod else scenario.signal_for(name, kind)

    named = [(m.name, q, False, m.kind) for m, q in zip(policy.params.metrics, policy.queries)]
    by_pod = {q for m, q in zip(policy.params.metrics, policy.queries) if reads_average_by_pod(policy.params, m)}
    if policy.health is not None:
        # a hung-pod check has no query to bind: it reads the simulated pods' readiness, as live
        named += [(c.name, q, c.scope == Scope.POD, None)
                  for c, q in zip(policy.health.checks, policy.health_queries) if not c.is_hung]
    unbound = [(name, per_pod) for name, _, per_pod, kind in named if signal_of(name, per_pod, kind) is None]
    if unbound:  # every one at once, and how to bind them (for one run without editing the scenario)
        how = (f"under spec.metrics of scenario {scenario.name} ({', '.join(f'{name}: SIGNAL' for name, _ in unbound)})"
               f" and start sim serve again" if not one_run else
               "for this run with " + " ".join(f"--scenario-set 'spec.metrics.{name}=SIGNAL'" for name, _ in unbound)
               + f", or under spec.metrics of scenario {scenario.name}"
               + "".join(f" (it binds {key!r}: meant {meant!r}?)"
                         for key, meant in _misspelt(scenario, [n for n, _ in unbound]).items()))
        raise ValueError(f"policy {policy.name}: {_unbound_words(unbound)}; bind "
                         f"{'it' if len(unbound) == 1 else 'them'} {how}")
    out = {}
    for name, expr, per_pod, kind in named:
        signal = signal_of(name, per_pod, kind)
        signal = PER_POD_MODES.get(signal, signal) if expr in by_pod else signal
        if out.get(expr, signal) != signal:
            raise ValueError(f"policy {policy.name}: the query of {name!r} is also used for another signal")
        out[expr] = signal
    for metric, expr in zip(policy.params.metrics, policy.latest_queries):  # a ramp's latest reading
        name = metric.name
        if expr is not None:
            signal = signal_of(name, False, metric.kind)
            if out.get(expr, signal) != signal:
                raise ValueError(f"policy {policy.name}: the ramp's latest query of {name!r} is also used for "
                                 f"another signal")
            out[expr] = signal
    for exprs in policy.revision_queries:  # one series per pod, sampled with noise (SimMetrics)
        signals = ("pod_latency",) if len(exprs) == 1 else ("pod_errors", "pod_requests")
        for expr, bound in zip(exprs, signals):
            signal = POD_SIGNALS[bound]
            if out.get(expr, signal) != signal:
                raise ValueError(f"policy {policy.name}: the revision query {expr!r} is also used for another signal")
            out[expr] = signal
    return out


def run_controller(scenario: Scenario, spec: ControllerSpec, offered: np.ndarray | None = None, *,
                   on_tick: Callable[[int], None] | None = None, keep_records: bool = True,
                   keep_trajectory: bool | None = None, chunk_ticks: int = CHUNK_TICKS,
                   on_cycle: Callable[[CycleResult], None] | None = None) -> tuple[ControllerRun, CycleLog | None]:
    """Simulate the whole scenario under one controller; returns its run and decision log.
    ``on_cycle``: called with every cycle's result (policy controllers; health-only cycles too;
    the results carry HPA-style conditions only with ``keep_records``).

    ``offered``: the whole (T, S) load, or None to generate it chunk by chunk (memory O(S)).
    The run is scored online and downsampled to a timeline; ``keep_trajectory`` keeps the
    whole (T, S) trajectory too (default: when T x S <= FULL_TRAJECTORY_CELLS).
    """
    return run_controllers(scenario, [spec], offered, on_ticks=[on_tick], keep_records=keep_records,
                           keep_trajectory=keep_trajectory, chunk_ticks=chunk_ticks, on_cycle=on_cycle)[0]


def run_controllers(scenario: Scenario, specs: Sequence[ControllerSpec], offered: np.ndarray | None = None, *,
                    on_ticks: Sequence[Callable[[int], None] | None] | None = None,
                    keep_records: bool | Sequence[bool] = True, keep_trajectory: bool | None = None,
                    chunk_ticks: int = CHUNK_TICKS, on_cycle: Callable[[CycleResult], None] | None = None,
                    jobs: int = 1) -> list[tuple[ControllerRun, CycleLog | None]]:
    """:func:`run_controller` of each spec, in lockstep a chunk of ticks at a time: each chunk of
    load is generated once and stepped through by every controller in turn (each over its own
    cluster, so the runs are the same as one at a time). ``on_ticks``: each run's ``on_tick``;
    ``keep_records``: for all specs, or one per spec.

    ``jobs`` > 1: up to that many processes (this one included) share the controllers, each
    group in lockstep over load it generates itself (simulators/parallel.py); the same runs as
    ``jobs`` 1. The specs that keep records, and all of them under ``on_cycle``, run here.
    """
    T, S = scenario.tick_count, len(scenario.cluster.services)
    if offered is not None and offered.shape != (T, S):
        raise ValueError(f"offered load is {offered.shape}, expected {(T, S)}")
    ticks = list(on_ticks) if on_ticks is not None else [None] * len(specs)
    if len(ticks) != len(specs):
        raise ValueError(f"{len(ticks)} on_ticks for {len(specs)} controllers")
    records = [keep_records] * len(specs) if isinstance(keep_records, bool) else [bool(r) for r in keep_records]
    if len(records) != len(specs):
        raise ValueError(f"{len(records)} keep_records for {len(specs)} controllers")
    workers = 1 if on_cycle is not None else parallel.worker_count(T, [s.cost_kind for s in specs], jobs)
    if workers > 1:
        groups = parallel.plan_groups([parallel.KIND_COST[s.cost_kind] for s in specs], workers,
                                      [r and bool(s.policies) for s, r in zip(specs, records)])
        if len(groups) > 1:
            def here(indexes: list[int], tick_hooks: list) -> list:
                return run_controllers(scenario, [specs[i] for i in indexes], offered, on_ticks=tick_hooks,
                                       keep_records=[records[i] for i in indexes], keep_trajectory=keep_trajectory,
                                       chunk_ticks=chunk_ticks)
            try:
                return parallel.run_groups(groups, specs, here, _run_group_there,
                                           (scenario, offered, keep_trajectory, chunk_ticks, any(ticks)), ticks)
            except parallel.Unavailable as exc:
                warnings.warn(f"running the controllers in one process: no worker processes here ({exc})",
                              RuntimeWarning, stacklevel=2)
    runs = [_ControllerRun(scenario, spec, offered, tick, keep, keep_trajectory, chunk_ticks, on_cycle)
            for spec, tick, keep in zip(specs, ticks, records)]
    for k0, times, load in _load_chunks(scenario, offered, chunk_ticks):
        for run in runs:
            run.advance(k0, times, load)
    return [run.finish() for run in runs]


def _run_group_there(queue, group: int, indexes: list[int], specs: list[ControllerSpec], scenario: Scenario,
                     offered: np.ndarray | None, keep_trajectory: bool | None, chunk_ticks: int,
                     with_progress: bool) -> None:
    """A worker process's group (simulators/parallel.py): its runs without records, then
    ("done", group, runs) on ``queue``, or ("failed", group, the exception)."""
    try:
        hooks = [(lambda k, i=i: queue.put(("tick", i, k))) for i in indexes] if with_progress else None
        runs = run_controllers(scenario, specs, offered, on_ticks=hooks, keep_records=False,
                               keep_trajectory=keep_trajectory, chunk_ticks=chunk_ticks)
        queue.put(("done", group, runs))
    except BaseException as exc:  # noqa: BLE001 (sent to the parent, which raises it)
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        queue.put(("failed", group, exc))


def progress_ticks(scenario: Scenario, specs: Sequence[ControllerSpec],
                   on_progress: Callable[[str, int, int], None] | None) -> list[Callable[[int], None] | None]:
    """Each spec's ``on_tick`` for :func:`run_controllers`: ``on_progress(name, ticks done, ticks)``."""
    if on_progress is None:
        return [None] * len(specs)
    return [lambda k, name=s.name: on_progress(name, k, scenario.tick_count) for s in specs]


class _Cycles:
    """One Reconciler's schedule in a run: a full cycle every interval, health-only cycles while a
    rollout is in progress (``rollout_interval_s``), and its controller process's restarts (a new
    Reconciler over the same ports and durable state, nothing else kept)."""

    def __init__(self, reconciler: Reconciler, start_s: float, ticks: int, restart_every_s: float | None,
                 store: MemoryStateStore | None):
        self.reconciler, self.store, self.restart_every_s = reconciler, store, restart_every_s
        self.interval = reconciler.policy.params.interval_s
        self.next_cycle = start_s if ticks else 0.0
        self.next_health = np.inf  # the next health-only cycle (set by each full cycle when the policy has them)
        self.next_restart = start_s + restart_every_s if restart_every_s and ticks else np.inf

    def next_due(self) -> float:
        """The time (epoch s) of the next thing it does: a cycle of either kind, or a restart."""
        return min(self.next_cycle, self.next_restart,
                   self.next_health if self.reconciler.rollout_in_progress else np.inf)

    def act(self, now: float) -> CycleResult | None:
        """What it does at ``now`` (a restart, then a full or a health-only cycle): the cycle's
        result, or None when no cycle was due."""
        if now >= self.next_restart - 1e-9:  # a new controller process, same cluster and store
            old = self.reconciler
            reconciler = Reconciler(old.policy, old.metrics, old.cluster, on_cycle=old.on_cycle, state_store=self.store)
            reconciler.with_conditions, reconciler.in_place = old.with_conditions, old.in_place
            reconciler.keeps_results = old.keeps_results
            self.reconciler = reconciler
            self.next_restart += self.restart_every_s
        reconciler = self.reconciler
        if now >= self.next_cycle - 1e-9:
            result = reconciler.cycle(now)
            self.next_cycle += self.interval
            self.next_health = now + (reconciler.rollout_interval_s or np.inf)
            return result
        if reconciler.rollout_in_progress and now >= self.next_health - 1e-9:
            self.next_health += reconciler.rollout_interval_s
            return reconciler.health_cycle(now)  # health side only, while a rollout is in progress
        return None


class _ControllerRun:
    """One controller's run over its own simulated cluster, advanced a chunk of load at a time."""

    #: Step runs of ticks in one compiled call where nothing is due between them
    #: (SimCluster.step_ticks); False: every tick through SimCluster.step, the path the
    #: equivalence tests compare the runs with.
    TICK_RUNS = True

    def __init__(self, scenario: Scenario, spec: ControllerSpec, offered: np.ndarray | None,
                 on_tick: Callable[[int], None] | None, keep_records: bool, keep_trajectory: bool | None,
                 chunk_ticks: int, on_cycle: Callable[[CycleResult], None] | None):
        T, S = scenario.tick_count, len(scenario.cluster.services)
        self.scenario, self.spec, self.on_tick, self.on_cycle, self.T = scenario, spec, on_tick, on_cycle, T
        self.keep = kept_trajectory(T, S, keep_trajectory)
        config, self.plan_rows = scenario.cluster, None
        if spec.kind == "oracle":  # it knew the load before the start too: begin with its plan ready
            load_of = ((lambda a, b: offered[a:b]) if offered is not None else
                       (lambda a, b: scenario.offered(chunk_times(scenario.start_s, scenario.tick_s, a, b))))
            self.plan_rows = lambda a, b: oracle_plan_rows(load_of, a, b, T, scenario.cluster.services,  # noqa: E731
                                                           scenario.slo, scenario.tick_s)
            first = self.plan_rows(0, 1)[0] if T else np.zeros(S)
            config = replace(config, services=tuple(replace(s, initial_replicas=int(n))
                                                    for s, n in zip(config.services, first)))
        self.cluster = cluster = SimCluster(config, np.random.default_rng(scenario.seed), faults=scenario.faults)
        self.rec = _Recorder(scenario, T, S, chunk_ticks, self.keep)
        self.budget = ActionBudget(scenario.duration_s, S)
        self.actions = ActionLog()
        self.cycles: list[_Cycles] = []
        self.metrics, self.log = None, None
        if spec.policies:
            self._wire_reconcilers(keep_records)
        if spec.kind == "fixed" and spec.replicas is not None:
            cluster.scale(np.arange(S), np.minimum(spec.replicas, [s.max_pods for s in scenario.cluster.services]))
        # progress about 200 times a run: at the first tick at or past each mark, so that it never
        # cuts a compiled run of ticks shorter than the control cycles do (with ticks of 5 s and
        # cycles of 15 s, marks every 2 ticks halved the runs: 13% of a 40-minute sweep cell)
        self.every = max(1, T // 200)
        self.next_progress = 1
        self.run_codes = self._run_sink_codes()

    def _wire_reconcilers(self, keep_records: bool) -> None:
        """The spec's Reconcilers (its scaling policy's, then its healer's) over one set of
        simulated ports, and the log of the run's records: the healer's when it has one."""
        scenario, spec = self.scenario, self.spec
        self.targets, self.metrics = _sim_ports(scenario, spec.policies, self.cluster)
        store = MemoryStateStore() if spec.restart_every_s else None
        for policy in spec.policies:
            logged = keep_records and policy is (spec.healer or spec.policy)
            reconciler, log = _reconciler_over(scenario, policy, self.targets, self.metrics, logged, store)
            # results nobody keeps (no records, no on_cycle): _act reads their actions, before the next cycle
            reconciler.keeps_results = logged or self.on_cycle is not None
            self.log = log if logged else self.log
            self.cycles.append(_Cycles(reconciler, scenario.start_s, self.T, spec.restart_every_s, store))

    @property
    def reconciler(self) -> Reconciler | None:
        """The Reconciler of the run's records (its healer's, else its scaling policy's); None without."""
        return self.cycles[-1].reconciler if self.cycles else None

    def advance(self, k0: int, times: np.ndarray, load: np.ndarray) -> None:
        """Step through one chunk of ticks: ``times`` (C,) from tick ``k0``, ``load`` (C, S).
        Runs of ticks go through the engine in one call where they can (:meth:`_step_run`), the
        others one by one (:meth:`_step`); after each, what the run does at that tick (:meth:`_act`)."""
        plan = None
        if self.spec.kind == "oracle":  # this chunk's plan and the next tick's (the step after the last)
            plan = self.plan_rows(k0, min(k0 + times.size + 1, self.T))
        values = times.tolist()
        j = 0
        while j < len(values):
            n = self._step_run(k0 + j, j, values, times, load) if self.run_codes is not None else 0
            if n:
                j += n - 1  # the ticks before the last did nothing but step
            else:
                self._step(values[j], load[j])
            self._act(k0 + j, j, values[j], plan)
            j += 1
        self.rec.flush()

    def _step(self, now: float, load: np.ndarray) -> None:
        """One tick of the engine (``load`` (S,)), recorded and, for a policy, pushed to its metrics."""
        sig = self.cluster.step(now, self.scenario.tick_s, load)
        self.rec.put(now, sig)
        if self.cycles:
            self.metrics.push(self.cluster.signals())

    def _step_run(self, k: int, j: int, values: list[float], times: np.ndarray, load: np.ndarray) -> int:
        """Step ticks ``k``, ``k + 1``, ... (rows ``j``, ... of the chunk's ``values`` / ``times``
        (C,) and ``load`` (C, S)) in one compiled call (SimCluster.step_ticks), at most up to the
        first at which the run does more than step (:meth:`_run_length`); their signals are
        written straight into the recorder's block and the metrics' rings: the same as
        :meth:`_step` of each. Returns how many were stepped (0: none, step tick ``k`` alone)."""
        n = self._run_length(k, j, values)
        rec_codes, ring_codes = self.run_codes
        block, row, _ = self.rec.sink()
        rings, slot = self.metrics.sink() if self.cycles else engine_compiled.NO_SINK[:2]
        n = self.cluster.step_ticks(times[j:j + n], self.scenario.tick_s, load[j:j + n],
                                    ((block, row, rec_codes), (rings, slot, ring_codes)))
        if n:
            self.rec.written(times[j:j + n])
            if self.cycles:  # the last tick's observed signals made if read (the cycle's compiled reads take the masks)
                self.metrics.pushed(n, self.cluster.signals)
        return n

    def _run_length(self, k: int, j: int, values: list[float]) -> int:
        """How many ticks from tick ``k`` (row ``j`` of the chunk's ``values``) may be stepped in
        one run: up to and including the first at which :meth:`_act` does more than nothing (a
        control or health cycle, a restart; in a run without cycles, a progress mark), within the chunk and the
        recorder's free rows."""
        n = min(len(values) - j, self.rec.sink()[2])
        if self.cycles:
            acts_s = min(c.next_due() for c in self.cycles)
            n = min(n, bisect.bisect_left(values, acts_s - 1e-9, j) - j + 1)  # _act's tolerance
        elif self.on_tick:  # nothing else ends a run: end it at the next mark
            n = min(n, max(1, self.next_progress - k))
        return n

    def _act(self, k: int, j: int, now: float, plan: np.ndarray | None) -> None:
        """What the run does after the engine's step of tick ``k`` (row ``j`` of the chunk, at
        ``now``): each Reconciler's restart, control or health cycle and its actions (the
        scaler's first: in production the two are independent, and the healer then sees the
        count the scaler set this tick); the oracle's plan; progress."""
        cluster, T = self.cluster, self.T
        for cycles in self.cycles:
            result = cycles.act(now)
            if result is None:
                continue
            if self.on_cycle is not None:
                self.on_cycle(result)
            if result.actions:
                self._keep_actions(result.actions, now - self.scenario.start_s)
        if plan is not None and k + 1 < T:
            changed = np.flatnonzero(plan[j + 1] != plan[j])
            if changed.size:
                cluster.scale(changed, plan[j + 1, changed])
        if self.on_tick and (k + 1 >= self.next_progress or k == T - 1):
            self.next_progress = k + 1 + self.every
            self.on_tick(k + 1)

    def _keep_actions(self, actions: Sequence[Action], t_s: float) -> None:
        """The events of a cycle's ``actions`` at ``t_s`` (s since the start) that the run's
        ActionBudget keeps, in order (of a ScaleActions, its kept columns, made when the log is read: ActionLog)."""
        if isinstance(actions, ScaleActions) and not self.budget.per_service:
            self.actions.add_scales(t_s, actions, self.budget.admit_scales(t_s, len(actions), actions.first))
            return
        self.actions.extend(self.budget.admit_all([_event(a, t_s) for a in actions]))

    def _run_sink_codes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The codes (engine_compiled.sink_codes) of the recorder's block and the metrics' rings
        for :meth:`_step_run`; None when the run steps every tick alone: TICK_RUNS off, the
        kernels off, the oracle (it may scale at every tick) or a ring of a signal the kernel
        does not write."""
        if not self.TICK_RUNS or self.spec.kind == "oracle" or not engine_compiled.enabled():
            return None
        rec = engine_compiled.sink_codes(self.rec.signals)
        rings = engine_compiled.sink_codes(self.metrics.fields) if self.cycles else engine_compiled.NO_SINK[2]
        return None if rec is None or rings is None else (rec, rings)

    def finish(self) -> tuple[ControllerRun, CycleLog | None]:
        scenario, spec, rec, T = self.scenario, self.spec, self.rec, self.T
        if self.log is not None:
            self.log.close()
        traj = rec.trajectory(scenario.times() if self.keep else None)
        scores = rec.scores.finish()
        names = list(scenario.services)
        notes = [driven_services(p, names)[1] for p in spec.policies] + [capacity_note(p, scenario) for p in spec.policies]
        run = ControllerRun(spec.name, spec.description, traj, self.actions, scores=scores,
                            timeline=rec.timeline.finish(_run_end_s(scenario, T)),
                            replica_hours_raw=rec.scores.replica_hours, actions_dropped=self.budget.dropped,
                            services=tuple(names), note="; ".join(n for n in notes if n))
        return run, self.log


def _run_end_s(scenario: Scenario, T: int) -> float:
    """End of the run (s since the start): the last tick plus one tick, as the scores count it."""
    if T == 0:
        return 0.0
    last = chunk_times(scenario.start_s, scenario.tick_s, T - 1, T)[0] - scenario.start_s
    return float(last + scenario.tick_s)


def check_bindings(scenario: Scenario, specs: Sequence[ControllerSpec]) -> None:
    """ValueError naming every metric of the specs' policies (healers included) that
    ``scenario`` does not bind (policy_bindings'), or a query a spec's two policies read as
    different signals: said before a run starts (and before its output folder is made)."""
    for spec in specs:
        if spec.policies:
            run_bindings(scenario, [RuntimePolicy.of(p) for p in spec.policies])


def run_bindings(scenario: Scenario, policies: Sequence[RuntimePolicy]) -> dict[str, str]:
    """query expression -> simulated signal for every policy of one run (a scaler and its
    healer read the same simulated metrics); ValueError when two of them bind one query to
    different signals, or as :func:`policy_bindings`."""
    out: dict[str, str] = {}
    for policy in policies:
        for expr, signal in policy_bindings(scenario, policy).items():
            if out.get(expr, signal) != signal:
                raise ValueError(f"policy {policy.name}: its query {expr!r} is bound to {signal}, and the policy it "
                                 f"runs beside binds it to {out[expr]}; bind one of them to another name under "
                                 f"spec.metrics of scenario {scenario.name}")
            out[expr] = signal
    return out


def _sim_ports(scenario: Scenario, policies: Sequence[LoadedPolicy], cluster: SimCluster) -> tuple[SimTargets, SimMetrics]:
    """The Cluster and MetricsSource ports over ``cluster`` that the Reconcilers of ``policies``
    share (one run: a scaler and its healer read one simulated Prometheus)."""
    rps = [RuntimePolicy.of(p) for p in policies]
    targets = SimTargets(cluster, driven_services(policies[0], scenario.services)[0])
    windows = {q: w for rp in rps for q, w in latest_windows(rp).items()}
    metrics = SimMetrics(cluster, run_bindings(scenario, rps), scenario.metrics_window_s, scenario.tick_s,
                         seed=scenario.seed, windows=windows)
    metrics.attach(targets)
    return targets, metrics


def _reconciler_over(scenario: Scenario, policy: LoadedPolicy, targets: SimTargets, metrics: SimMetrics,
                     keep_records: bool, state_store: MemoryStateStore | None = None
                     ) -> tuple[Reconciler, CycleLog | None]:
    """The live Reconciler of ``policy`` over the simulated ports, and where its decisions are logged."""
    rp = RuntimePolicy.of(policy)
    log = CycleLog(policy.name, policy.params.metric_names, start_s=scenario.start_s) if keep_records else None
    reconciler = Reconciler(rp, metrics, targets, on_cycle=log.add if log else None, state_store=state_store)
    reconciler.with_conditions = keep_records  # HPA-style conditions only go into the records
    reconciler.in_place = True  # one DecisionWorkspace across cycles (controller/runtime/scaling_memory.py)
    if policy.params.forecast_metrics and scenario.history_s > 0:
        refs = targets.resolve(rp.selector)
        times = scenario.history_times()
        reconciler.warm(refs, metric_history(scenario, rp, times)[targets.rows(refs)], times)
    return reconciler, log


def _policy_reconciler(scenario: Scenario, policy: LoadedPolicy, cluster: SimCluster, keep_records: bool,
                       state_store: MemoryStateStore | None = None) -> tuple[Reconciler, SimMetrics, CycleLog | None]:
    """The live Reconciler over the simulated ports, and where its decisions are logged."""
    _, metrics = targets_metrics = _sim_ports(scenario, [policy], cluster)
    reconciler, log = _reconciler_over(scenario, policy, *targets_metrics, keep_records, state_store)
    return reconciler, metrics, log


def latest_windows(policy: RuntimePolicy) -> dict[str, float]:
    """The range window (s) of each ramp's latest query (``ramp.latest``): SimMetrics reads those
    over their own window instead of the scenario's metrics window."""
    from controller.policy.compile import query_window_s

    return {q: query_window_s(q) for q in policy.latest_queries if q is not None}


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
        labels = sel.label_selector or "namespace " + sel.namespace
        return list(services), f"policy {policy.name} selects its targets by {labels}; {every}"
    absent = [n for n in names if n not in services]
    named = f"names {', '.join(names)}" + (f" ({', '.join(absent)} not in the scenario)" if absent else "")
    return list(services), f"policy {policy.name} {named}; {every}"


#: The simulated signals that count requests per second, as a service's capacityPerPod does.
RATE_SIGNALS = (SIGNALS["requests_per_second"], SIGNALS["served_per_second"])


def capacity_note(policy: LoadedPolicy, scenario: Scenario, most: int = 3) -> str:
    """A note when a policy's per-replica request-rate target is above what one pod of a service
    serves (its ``capacityPerPod``): the pods saturate before the policy scales up, so the scores
    say more about the pairing than about the policy (the bundled default policy, at 85 rps per
    replica, on a scenario whose pods serve 50). "" when every target fits."""
    from controller.policy.durations import format_number

    notes = []
    for m in policy.params.metrics:
        if m.kind != MetricKind.AVERAGE_PER_REPLICA or scenario.signal_for(m.name) not in RATE_SIGNALS:
            continue
        over = [s for s in scenario.cluster.services if s.capacity_rps < m.target]
        if not over:
            continue
        named = ", ".join(f"{s.name} ({format_number(s.capacity_rps)})" for s in over[:most])
        more = f" and {len(over) - most} more" if len(over) > most else ""
        notes.append(f"policy {policy.name}: metric {m.name} targets {format_number(m.target)} requests/s per replica, "
                     f"more than one pod serves (capacityPerPod) in {named}{more}: its pods saturate before it "
                     f"scales up; lower the target or raise capacityPerPod")
    return "; ".join(notes)


#: ActionKind.word by kind (the property builds the string on every access; one event per action).
_KIND_WORDS = {kind: kind.word for kind in ActionKind}


def _event(action: Action, t_s: float) -> ActionEvent:
    reason = action.reason if not action.pod else f"{action.reason} ({action.pod})"
    if action.revision:
        reason = f"{reason} (to revision {action.revision})"
    return ActionEvent(t_s, action.target.name, _KIND_WORDS[action.kind], action.from_replicas, action.replicas, reason,
                       action.policy)


def fault_windows(scenario: Scenario) -> list[FaultWindow]:
    out = []
    for name, f in zip(scenario.fault_names, scenario.faults):
        start = f.at_s - scenario.start_s
        end = f.end_s - scenario.start_s if f.end_s is not None else min(start + INSTANT_FAULT_BLAME_S, scenario.duration_s)
        out.append(FaultWindow(name=name, kind=f.kind, service=",".join(f.services) if f.services else "*",
                               start_s=start, end_s=end))
    return out


def compiled_pays(scenario: Scenario, runs: int) -> bool:
    """Whether ``runs`` controllers over ``scenario`` are worth the compiled kernels: the numpy
    reference gives the same numbers, as fast on short runs (a controller's tick costs ~0.1-0.4
    ms of Python either way; flash-crowd's 7 runs of 1,080 ticks take 2.5 s on both paths, step's
    of 1,440 2.6 s vs 3.2 s, a 17,280-tick trace's 42 s vs 102 s), while compiling the kernels
    on a machine's first run (or after an upgrade) takes ~40 s before the first tick."""
    return scenario.tick_count * len(scenario.cluster.services) * runs >= COMPILED_FROM_SERVICE_TICKS


#: Ticks of a scenario the kernels' warm-up runs (the first cycle, a scale, the scores).
WARM_TICKS = 4


def warm_kernels(scenario: Scenario, specs: Sequence[ControllerSpec]) -> float:
    """Compile, or load from numba's disk cache, the kernels that runs of ``specs`` over
    ``scenario`` use, by running them over its first few ticks and scaling a cluster of it up
    and down (pods created, removed). Seconds taken; 0 when the kernels are off. Worker
    processes forked afterwards inherit the loaded kernels instead of each loading them."""
    if not compiled.enabled():
        return 0.0
    started = time.perf_counter()
    short = replace(scenario, duration_s=min(scenario.duration_s, WARM_TICKS * scenario.tick_s))
    run_controllers(short, specs, keep_records=False)
    cluster = SimCluster(short.cluster, np.random.default_rng(0))
    rows = np.arange(cluster.n_services)
    for k, replicas in enumerate((6, 12, 2)):
        cluster.scale(rows, np.minimum(replicas, [s.max_pods for s in short.cluster.services]))
        cluster.step(short.start_s + short.tick_s * k, short.tick_s, np.full(cluster.n_services, 100.0))
    warm_later_kernels()
    return time.perf_counter() - started


def warm_later_kernels() -> None:
    """Load the kernels a run first calls later than the warm-up's few ticks reach (the first
    observed pod start-up, the first violation minute), or that its few services in order never
    call (a view of targets out of the engine's order: ClusterPort.view), or that a scenario
    without load noise never calls (`setpoint warm`'s), with the argument types the run passes:
    loaded inside a timed run, they were counted as its time (bench/sim_speed.py)."""
    from controller.core.health import keys_compiled  # noqa: PLC0415
    from controller.core.scaling import startup_compiled  # noqa: PLC0415

    one = np.zeros((1, 1))
    startup_compiled.try_estimate_rows(one, one.copy(), np.zeros(1, np.int64), 0.5, 1, np.zeros(1),
                                       np.zeros(1, np.int64), np.zeros(1), np.zeros(1))
    score_compiled.violation_minutes(np.zeros(1), np.ones(1), np.ones((1, 1), bool),
                                     np.zeros(1, np.int64))
    counts, flags = np.zeros(1, np.int64), np.zeros(1, bool)
    view_compiled.try_gather_view(counts, flags, counts, counts, counts, flags, flags)
    queue_compiled.try_distinct_rows(counts, flags, counts, np.zeros(1, bool))
    load_compiled.noise_exponent(np.zeros((2, 1)), counts, np.zeros(1), 0.1, 0.005)
    pod_samples_compiled.warm()  # a pod-scope health check's first snapshot
    keys_compiled.warm()  # a pod-scope health check's first cycle where pods come or go


def simulate(scenario: Scenario, controllers: list[ControllerSpec], *, on_progress: Callable[[str, int, int], None] | None = None,
             keep_records: bool = True, policy_file: str = "", max_memory_bytes: int | None = None,
             keep_trajectories: bool | None = None, jobs: int = 1) -> tuple[SimResult, dict[str, CycleLog]]:
    """Run every controller on the scenario. Returns the result and the decision logs by controller.
    ``jobs``: processes to share the controllers (:func:`run_controllers`).

    Refuses (ScenarioError, before allocating) a run whose estimated memory exceeds
    ``max_memory_bytes`` (default 4 GiB) or what the machine allows; see simulators.memory.
    """
    result, logs, _ = simulate_with(scenario, controllers, (), on_progress=on_progress, keep_records=keep_records,
                                    policy_file=policy_file, max_memory_bytes=max_memory_bytes,
                                    keep_trajectories=keep_trajectories, jobs=jobs)
    return result, logs


def simulate_with(scenario: Scenario, controllers: list[ControllerSpec], extra: Sequence[ControllerSpec], *,
                  on_progress: Callable[[str, int, int], None] | None = None, keep_records: bool = True,
                  policy_file: str = "", max_memory_bytes: int | None = None, keep_trajectories: bool | None = None,
                  jobs: int = 1) -> tuple[SimResult, dict[str, CycleLog], list[ControllerRun]]:
    """:func:`simulate` of ``controllers``, with the ``extra`` controllers (for example HPA's
    frontier) run in the same pass, without records, and returned apart: not in the result."""
    limit = memory_limit(max_memory_bytes)
    need = check_fits(scenario, [*controllers, *extra], limit, keep_records, keep_trajectories)
    try:
        return _simulate(scenario, controllers, extra, on_progress, keep_records, policy_file, keep_trajectories, jobs)
    except MemoryError:  # the estimate is meant to prevent this; never a traceback if it does not
        raise ScenarioError([FieldError(scenario.file, None, "spec", (
            f"ran out of memory (estimated {format_bytes(need)}, limit {format_bytes(limit.bytes)} from {limit.source}); "
            "shorten spec.duration, raise spec.tick, or use fewer services or baselines"))]) from None


def _simulate(scenario: Scenario, controllers: list[ControllerSpec], extra: Sequence[ControllerSpec], on_progress,
              keep_records: bool, policy_file: str, keep_trajectories: bool | None,
              jobs: int) -> tuple[SimResult, dict[str, CycleLog], list[ControllerRun]]:
    runs, logs = {}, {}
    every = [*controllers, *extra]
    # in lockstep: each chunk of load generated once for every controller of a process (memory O(services))
    done = run_controllers(scenario, every, None, on_ticks=progress_ticks(scenario, every, on_progress),
                           keep_records=[keep_records] * len(controllers) + [False] * len(extra),
                           keep_trajectory=keep_trajectories, jobs=jobs)
    for c, (run, log) in zip(controllers, done):
        runs[c.name] = run
        if log is not None:
            logs[c.name] = log
    result = SimResult(scenario=scenario.name, description=scenario.description, duration_s=scenario.duration_s,
                       tick_s=scenario.tick_s, seed=scenario.seed, slo=scenario.slo, services=scenario.services,
                       faults=fault_windows(scenario), runs=runs, policy_file=policy_file,
                       warnings=scenario.warnings)
    return result, logs, [run for run, _ in done[len(controllers):]]


def standard_controllers(policy: LoadedPolicy | None, baselines: list[str], hpa_policy: LoadedPolicy | None,
                         max_replicas: int | None) -> list[ControllerSpec]:
    """The policy under test plus the named baselines (hpa, fixed-max, oracle), in that order."""
    out = []
    if policy is not None:
        out.append(ControllerSpec("policy", "policy", f"{policy.name} ({policy.file})", policy=policy))
    for b in baselines:
        if b == "hpa":
            out.append(ControllerSpec("hpa", "policy", f"HPA preset ({hpa_policy.file})", policy=hpa_policy))
        elif b == "fixed-max":
            if max_replicas is None:  # a health-only policy without bounds, beside fixed replicas
                out.append(ControllerSpec("fixed-max", "fixed", "fixed at each service's maxPods", replicas=MAX_REPLICAS))
            else:
                out.append(ControllerSpec("fixed-max", "fixed", f"fixed at {max_replicas} replicas", replicas=max_replicas))
        elif b == "oracle":
            out.append(ControllerSpec("oracle", "oracle", "knows the future load and start-up delay"))
        else:
            raise ValueError(f"unknown baseline {b!r}: expected hpa, fixed-max or oracle")
    return out


#: What scales the workload beside a health-only policy (healing_controllers): the hpa preset, or
#: each service's initialReplicas, changed only by the health policy's own scale-ups.
SCALERS = ("hpa", "fixed")


def healing_controllers(healer: LoadedPolicy, scaler: str, baselines: list[str], hpa_policy: LoadedPolicy | None,
                        max_replicas: int | None) -> list[ControllerSpec]:
    """A health-only policy's controllers: ``policy``, the healer beside ``scaler`` (SCALERS: the
    hpa preset ``hpa_policy``, as the hpa baseline runs it; or ``fixed`` at each service's
    initialReplicas); the same scaler alone (``hpa`` or ``fixed``), so the table says what the
    healing buys; then the other named baselines (standard_controllers', ``max_replicas`` for
    fixed-max: None, each service's maxPods)."""
    alone = scaler_alone(scaler, hpa_policy)
    scaled = (f"scaled by the HPA preset ({hpa_policy.file})" if scaler == "hpa" else
              "fixed at each service's initialReplicas but for its own scale-ups")
    healed = replace(alone, name="policy", description=f"{healer.name} ({healer.file}) heals; {scaled}", healer=healer)
    others = standard_controllers(None, [b for b in baselines if b != alone.name], hpa_policy, max_replicas)
    return [healed, alone, *others]


def scaler_alone(scaler: str, hpa_policy: LoadedPolicy | None) -> ControllerSpec:
    """What scales the workload beside a health-only policy, without it (SCALERS): ``hpa``, the
    preset ``hpa_policy``, or ``fixed`` at each service's initialReplicas; ValueError for another."""
    if scaler == "hpa":
        return ControllerSpec("hpa", "policy", f"HPA preset ({hpa_policy.file})", policy=hpa_policy)
    if scaler == "fixed":
        return ControllerSpec("fixed", "fixed", "fixed at each service's initialReplicas")
    raise ValueError(f"unknown scaler {scaler!r}: expected {' or '.join(SCALERS)}")


__all__ = ["ControllerSpec", "CycleLog", "compiled_pays", "warm_kernels", "simulate", "simulate_with", "run_controller", "run_controllers", "progress_ticks",
           "standard_controllers", "healing_controllers", "scaler_alone", "fault_windows", "SCALERS"]
