"""Runs of ticks stepped in one compiled call (SimCluster.step_ticks, taken by the runner between
its control cycles; the replica changes and pod events due at a run's ticks done inside it in the
common case, simulators/simcluster/runs_compiled.py) give the runs of the per-tick path bit for bit: scores,
timelines, trajectories, actions and decision records, for every kind of controller, over
scripted scenarios (faults, client retries, queue mode, readiness probes, rollouts mid-run,
controller restarts) and random ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.policy import load_policies
from simulators import engine_compiled
from simulators.cluster import SimCluster
from simulators.runner import ControllerSpec, _ControllerRun, run_controllers
from simulators.scenario import load_scenario_text
from simulators.simcluster import runs_compiled
from tests.simulators.helpers import run_view
from tests.simulators.test_lockstep import POLICIES

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: tick-runs}}
spec:
  duration: {duration}
  tick: {tick}
  seed: {seed}
  slo: {{latency: {{percentile: {percentile}, below: 250ms}}, errorRatio: 0.01}}
{nodes}  services:
    - name: web
      count: 2
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 16
      errorRatio: 0.002
      startupDelay: {startup}
{service}      load:
        - diurnal: {{mean: 450, amplitude: 0.5, peakHour: 1}}
        - flashCrowd: {{at: 6m, peak: {peak}, rise: 1m, decay: 8m}}
        - noise: {{sigma: 0.1}}
    - name: api
      capacityPerPod: 60
      initialReplicas: 2
      maxPods: 12
      load:
        - constant: {{rps: 150}}
        - noise: {{sigma: 0.2}}
  faults: [{faults}]
"""

NODES = "  nodes: {count: 12, podsPerNode: 4}\n"


def scenario(*, duration="30m", tick="5s", seed=3, percentile=95, nodes="", startup="20s", service="", peak=600,
             faults=""):
    return load_scenario_text(SCENARIO.format(duration=duration, tick=tick, seed=seed, percentile=percentile,
                                              nodes=nodes, startup=startup, service=service, peak=peak, faults=faults))


def policy(name: str):
    return load_policies([POLICIES / name])[0]


def controllers() -> list[ControllerSpec]:
    """Every kind the runner steps in runs: a policy, HPA, one with healing (rollbacks and
    restarts mid-rollout), one restarted every 10 minutes, fixed replicas; and the oracle (tick by tick)."""
    default = policy("setpoint-default.yaml")
    return [ControllerSpec("policy", "policy", "", policy=default),
            ControllerSpec("hpa", "policy", "", policy=policy("hpa-cpu.yaml")),
            ControllerSpec("healing", "policy", "", policy=policy("setpoint-healing.yaml")),
            ControllerSpec("restarting", "policy", "", policy=default, restart_every_s=600.0),
            ControllerSpec("fixed", "fixed", "", replicas=5),
            ControllerSpec("oracle", "oracle", "")]


def runs_of(monkeypatch, sc, specs, tick_runs: bool, chunk_ticks: int = 64) -> tuple[list, int]:
    """(each run's view and decision lines, ticks stepped in runs of two or more) with the
    runner's tick runs on or off."""
    monkeypatch.setattr(_ControllerRun, "TICK_RUNS", tick_runs)
    in_runs = []
    step_ticks = SimCluster.step_ticks

    def counted(self, *args):
        n = step_ticks(self, *args)
        in_runs.append(n if n > 1 else 0)
        return n

    monkeypatch.setattr(SimCluster, "step_ticks", counted)
    done = run_controllers(sc, specs, keep_trajectory=True, chunk_ticks=chunk_ticks)
    return [(run_view(run), list(log.lines()) if log else None) for run, log in done], sum(in_runs)


def assert_same_runs(monkeypatch, sc, specs=None, chunk_ticks: int = 64, min_share: float = 0.1) -> None:
    specs = controllers() if specs is None else specs
    together, in_runs = runs_of(monkeypatch, sc, specs, True, chunk_ticks)
    alone, none = runs_of(monkeypatch, sc, specs, False, chunk_ticks)
    assert none == 0
    for spec, a, b in zip(specs, together, alone):
        assert a == b, spec.name
    # the runs were taken (else this compares the per-tick path with itself)
    assert in_runs >= min_share * sc.tick_count * sum(s.kind != "oracle" for s in specs), in_runs


ROWS = [
    pytest.param({}, id="drop-mode"),
    pytest.param(dict(service="      overload: queue\n      queueLimit: 3000\n", peak=900), id="queue-mode"),
    pytest.param(dict(service="      retryRatio: 0.4\n", peak=900), id="client-retries"),
    pytest.param(dict(service="      retryRatio: 0.3\n      readinessProbe: {period: 10s, failureThreshold: 2}\n",
                      peak=900), id="readiness-probes-and-retries"),
    pytest.param(dict(faults="{kind: pod-crash, at: 3m, count: 2}, "
                             "{kind: node-loss, at: 9m, duration: 4m, share: 30}", nodes=NODES), id="crash-and-node-loss"),
    pytest.param(dict(faults="{kind: bad-rollout, at: 4m, services: [api], errorRatioMultiplier: 20, "
                             "extraLatency: 100ms}, {kind: crash-loop, at: 12m, services: [web]}"),
                 id="rollouts-mid-run"),
    pytest.param(dict(faults="{kind: memory-leak, at: 2m, mibPerSecond: 2}"), id="memory-leak"),
    pytest.param(dict(faults="{kind: metrics-outage, at: 5m, duration: 1m}, "
                             "{kind: stale-metrics, at: 10m, duration: 2m, services: [api]}, "
                             "{kind: nan-metrics, at: 15m, duration: 1m, services: [web]}"), id="metric-faults"),
    pytest.param(dict(faults="{kind: readiness-outage, at: 7m, duration: 90s, services: [api]}"),
                 id="readiness-outage"),
    pytest.param(dict(tick="2s", percentile=99, startup="45s"), id="tick-not-dividing-the-interval"),
]


@pytest.mark.parametrize("changes", ROWS)
def test_tick_runs_equal_the_per_tick_path(monkeypatch, changes):
    monkeypatch.setattr(compiled, "switch", "1")
    assert_same_runs(monkeypatch, scenario(**changes))


@pytest.mark.parametrize("chunk_ticks", [pytest.param(7, id="chunks-of-7"), pytest.param(1000, id="one-chunk")])
def test_tick_runs_do_not_depend_on_where_chunks_are_cut(monkeypatch, chunk_ticks):
    monkeypatch.setattr(compiled, "switch", "1")
    assert_same_runs(monkeypatch, scenario(duration="20m"), controllers()[:2], chunk_ticks=chunk_ticks)


def progress_of(monkeypatch, sc, spec, on: bool) -> tuple[list[int], int]:
    """(the ticks of the progress calls, the compiled step calls) of ``spec``'s run."""
    calls, steps = [], []
    step_ticks = SimCluster.step_ticks

    def counted(self, *args):
        steps.append(1)
        return step_ticks(self, *args)

    monkeypatch.setattr(SimCluster, "step_ticks", counted)
    run_controllers(sc, [spec], on_ticks=[calls.append if on else None], keep_records=False)
    return calls, len(steps)


@pytest.mark.parametrize("index", [pytest.param(0, id="policy"), pytest.param(4, id="fixed")])
def test_progress_comes_about_200_times_in_order_and_never_cuts_a_run(monkeypatch, index):
    """Progress is called at the first tick at or past each mark (every T // 200 ticks), the
    last tick included; with control cycles (every 3 ticks here, marks every 2) it rides on the
    runs the cycles make instead of cutting them: as many compiled steps as without progress.
    A run without cycles (fixed replicas) ends its runs at the marks, so its calls are exact."""
    monkeypatch.setattr(compiled, "switch", "1")
    sc = scenario(duration="40m")
    every = sc.tick_count // 200
    assert every == 2  # the case that cut the runs in half
    spec = controllers()[index]
    calls, steps = progress_of(monkeypatch, sc, spec, True)
    _, steps_without = progress_of(monkeypatch, sc, spec, False)
    assert calls[0] == 1 and calls[-1] == sc.tick_count
    gaps = np.diff(calls)
    assert (gaps[:-1] >= every).all() and (gaps > 0).all(), calls
    assert (gaps <= every + 2).all(), calls  # each within a run (3 ticks at most) of its mark
    if spec.kind == "fixed":
        assert calls == list(range(1, sc.tick_count, every)) + [sc.tick_count]
    else:
        assert steps == steps_without and 100 <= len(calls) <= 201, (steps, steps_without, len(calls))


def run_lengths(monkeypatch, sc, spec) -> list[tuple[int, int]]:
    """(ticks offered, ticks stepped) of each SimCluster.step_ticks call of ``spec``'s run."""
    calls = []
    step_ticks = SimCluster.step_ticks

    def counted(self, times, *args):
        calls.append((len(times), step_ticks(self, times, *args)))
        return calls[-1][1]

    monkeypatch.setattr(SimCluster, "step_ticks", counted)
    run_controllers(sc, [spec], keep_records=False)
    return calls


@pytest.mark.parametrize("changes", [
    pytest.param({}, id="startup-ending-between-cycles"),
    pytest.param(dict(tick="2s", startup="45s"), id="tick-not-dividing-the-interval"),
    pytest.param(dict(service="      overload: queue\n      queueLimit: 3000\n", peak=900), id="queue-mode"),
    pytest.param(dict(service="      retryRatio: 0.4\n", peak=900), id="client-retries"),
])
@pytest.mark.parametrize("index", [pytest.param(0, id="policy"), pytest.param(1, id="hpa")])
def test_a_run_takes_the_pod_events_due_at_its_ticks(monkeypatch, changes, index):
    """Without faults or probes every run of ticks goes on to the next control cycle: the replica
    changes and the pod lifecycle events due at its ticks (scheduling, start-ups ending between
    two cycles) do not cut it; the trajectories are the per-tick path's (tests above)."""
    monkeypatch.setattr(compiled, "switch", "1")
    sc = scenario(**changes)
    calls = run_lengths(monkeypatch, sc, controllers()[index])
    assert calls[0] == (calls[0][0], 0)  # the first tick is stepped alone (nothing before it)
    assert all(n == offered for offered, n in calls[1:]), [c for c in calls if c[0] != c[1]][:5]
    assert sum(n for _, n in calls) == sc.tick_count - 1


def test_the_numpy_path_steps_every_tick_alone(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "0")
    sc = scenario(duration="10m")
    _, in_runs = runs_of(monkeypatch, sc, controllers()[:2], True)
    assert in_runs == 0


def test_a_failing_kernel_falls_back_to_the_same_ticks(monkeypatch):
    """The run kernel fails (as a kernel that does not compile): that tick is stepped in numpy,
    and from then on every tick; the runs are the per-tick path's (numpy after the failure)."""
    monkeypatch.setattr(compiled, "switch", "1")
    monkeypatch.setattr(compiled, "_broken", None)  # restored after the test: the failure stays here
    monkeypatch.setattr(compiled, "_warned", True)

    class Failed(Exception):
        pass

    def fail(*args):
        raise Failed("no such kernel")

    sc = scenario(duration="15m")
    monkeypatch.setattr(compiled, "KERNEL_ERRORS", (*compiled.KERNEL_ERRORS, Failed))
    monkeypatch.setattr(runs_compiled, "_run_kernel", fail)
    failed = run_controllers(sc, controllers()[:1], keep_trajectory=True)
    assert compiled._broken is not None
    monkeypatch.setattr(compiled, "switch", "0")
    reference = run_controllers(sc, controllers()[:1], keep_trajectory=True)
    tick_s, first = sc.tick_s, failed[0][0].trajectory
    # the first tick of the first run is the kernel's failure, stepped by the compiled per-tick
    # loop; the numpy loop differs from it in the last bit of a log: compare the integers exactly
    np.testing.assert_array_equal(first.spec_replicas, reference[0][0].trajectory.spec_replicas)
    np.testing.assert_array_equal(first.ready_replicas, reference[0][0].trajectory.ready_replicas)
    assert first.t_s[1] - first.t_s[0] == tick_s


def test_step_ticks_declines_without_changing_the_cluster(monkeypatch):
    """0 means nothing was done (the runner then steps the tick alone): before the first step, with
    a fault due at the first tick, during a rollout, and with the kernels off."""
    monkeypatch.setattr(compiled, "switch", "1")
    sc = scenario(faults="{kind: pod-crash, at: 10s, count: 1}")
    cluster = SimCluster(sc.cluster, np.random.default_rng(1), faults=sc.faults)
    times = sc.start_s + np.arange(4) * sc.tick_s
    load = np.full((4, 3), 300.0)
    sinks = (engine_compiled.NO_SINK, engine_compiled.NO_SINK)

    def declines(k: int) -> None:
        before = (cluster.now, cluster.last, cluster.statuses())
        assert cluster.step_ticks(times[k:], sc.tick_s, load[k:], sinks) == 0
        assert (cluster.now, cluster.last, cluster.statuses()) == before

    declines(0)  # no tick before
    cluster.step(float(times[0]), sc.tick_s, load[0])
    declines(2)  # the crash is due at the first of these
    monkeypatch.setattr(compiled, "switch", "0")
    declines(1)
    monkeypatch.setattr(compiled, "switch", "1")
    assert cluster.step_ticks(times[1:], sc.tick_s, load[1:], sinks) == 1  # the crash is due at the next
    cluster.rolling_restart(0)
    declines(2)


FAULTS = st.sampled_from([
    "", "{kind: pod-crash, at: 2m, count: 3}", "{kind: crash-loop, at: 3m, services: [api]}",
    "{kind: bad-rollout, at: 1m, errorRatioMultiplier: 30}", "{kind: memory-leak, at: 1m, mibPerSecond: 5}",
    "{kind: stale-metrics, at: 2m, duration: 1m}", "{kind: readiness-outage, at: 4m, duration: 1m}",
])
SERVICES = st.sampled_from(["", "      overload: queue\n      queueLimit: 500\n", "      retryRatio: 0.5\n",
                            "      retryRatio: 0.2\n      readinessProbe: {period: 15s, failureThreshold: 1}\n"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(faults=FAULTS, service=SERVICES, tick=st.sampled_from(["1s", "3s", "5s", "15s"]), seed=st.integers(0, 99),
       peak=st.integers(1, 1500), startup=st.sampled_from(["0s", "5s", "40s"]), chunk_ticks=st.integers(1, 90))
def test_tick_runs_equal_the_per_tick_path_on_random_scenarios(monkeypatch, faults, service, tick, seed, peak,
                                                               startup, chunk_ticks):
    monkeypatch.setattr(compiled, "switch", "1")
    sc = scenario(duration="8m", tick=tick, seed=seed, startup=startup, service=service, peak=peak, faults=faults)
    assert_same_runs(monkeypatch, sc, controllers(), chunk_ticks=chunk_ticks, min_share=0.0)


@pytest.mark.parametrize("changes", [pytest.param({}, id="idle-memory"),
                                     pytest.param(dict(faults="{kind: memory-leak, at: 0s, mibPerSecond: 2}"),
                                                  id="leaking-memory")])
def test_a_runs_last_tick_reads_as_the_per_tick_paths(monkeypatch, changes):
    """After a run of ticks, the last tick's truth and the metrics' view of it (the counts as
    floats, shared from the rows the run wrote for its sinks) are those of the ticks stepped
    one by one, values and dtypes; a later step's view converts its own counts."""
    monkeypatch.setattr(compiled, "switch", "1")
    sc = scenario(**changes)
    times = sc.start_s + np.arange(6) * sc.tick_s
    load = np.tile([300.0, 280.0, 150.0], (6, 1))
    sinks = (engine_compiled.NO_SINK, engine_compiled.NO_SINK)
    clusters = [SimCluster(sc.cluster, np.random.default_rng(1), faults=sc.faults) for _ in range(2)]
    for cluster in clusters:
        cluster.step(float(times[0]), sc.tick_s, load[0])
    in_run, alone = clusters
    in_run.set_replicas(0, 5)
    alone.set_replicas(0, 5)
    k = 1
    while k < 6:  # as the runner steps: runs where it can (a leak's runs stop before each pod event)
        n = in_run.step_ticks(times[k:], sc.tick_s, load[k:], sinks)
        k += n or 1
        if not n:
            in_run.step(float(times[k - 1]), sc.tick_s, load[k - 1])
    assert n, "the last tick was not stepped by step_ticks"
    for k in range(1, 6):
        alone.step(float(times[k]), sc.tick_s, load[k])
    assert in_run.last.row(0) == alone.last.row(0) and in_run.last.row(2) == alone.last.row(2)
    ours, theirs = in_run.signals(), alone.signals()
    assert ours.values.keys() == theirs.values.keys()
    for name, value in ours.values.items():
        assert value.dtype == np.float64 and value.tobytes() == theirs[name].tobytes(), name
    assert ours["memory_mib"].tobytes() == in_run.last.memory_mib.tobytes()
    in_run.step(float(times[-1]) + sc.tick_s, sc.tick_s, load[0])
    assert in_run.signals()["ready_replicas"].tobytes() == in_run.last.ready_replicas.astype(np.float64).tobytes()


@pytest.mark.parametrize("name", ["hpa-cpu.yaml", "setpoint-default.yaml"])
def test_a_runs_last_tick_is_made_only_when_read(monkeypatch, name):
    # most runs end at a control cycle whose compiled reads take the metrics' rings and masks only
    # (SimMetrics._masks): their last tick's TickSignals and observed signals (some 16 array views
    # and two dicts a run) are made only when something reads them
    monkeypatch.setattr(compiled, "switch", "1")
    made, runs = [], []
    tick_signals, run_ticks = engine_compiled._tick_signals, runs_compiled.run_ticks
    monkeypatch.setattr(engine_compiled, "_tick_signals", lambda *a, **k: made.append(1) or tick_signals(*a, **k))
    monkeypatch.setattr(runs_compiled, "run_ticks", lambda *a, **k: runs.append(1) or run_ticks(*a, **k))
    run_controllers(scenario(duration="20m"), [ControllerSpec("p", "policy", "", policy=policy(name))],
                    keep_records=False)
    assert len(runs) > 50 and len(made) <= 0.05 * len(runs), (len(made), len(runs))
