"""Benchmark the whole simulation: --services (1,000) for --hours (24) or --days, two controllers.

5 s simulation tick, 15 s control interval; the default policy and the HPA baseline each run
over their own copy of the simulated cluster, through the same Reconciler as live, in lockstep
(each chunk of load generated once for both, as ``setpoint simulate`` runs them). Runs the
whole simulation twice: with the compiled kernels (core/scaling/compiled.py, simulators/engine_compiled.py;
their compile or disk-cache load timed first, separately) and forced to numpy
(SETPOINT_COMPILED=0). Prints the wall time of each controller's run, simulated days per
wall-second for both together, where the time goes (per controller: engine step vs control
cycles vs the rest of its ticks; shared: the load and set-up), and the
ratio of the two paths (the replica-hours must match: same trajectories).

Target (issues #3, #13): >= 0.5 simulated days per wall-second with both controllers (stretch
1.0), and >= 20x a straightforward per-object implementation of the same model (that ratio is
measured for the engine by bench/sim_engine.py, which also checks both give the same trajectories).
Target (issue #13): 30 simulated days x 1,000 services in under 2 GiB: the runs stream (load
in chunks, scores online, a downsampled timeline), so the peak memory printed at the end (peak
RSS of this process, getrusage) is the same for 1 day as for 30.
With more than one CPU, the compiled path runs once more with the two controllers in two
processes (``--jobs``, as ``setpoint simulate`` shares its controllers), ``--repeat`` times
(3), its target read on the median: wall time only.
Then (no target: a figure to watch) the compiled path once more with a policy that has a health
section (``--healing-policy``, policies/setpoint-healing.yaml) alone for ``--healing-hours`` (0.25): the
health side of a cycle (pod checks over every pod, revision statistics) costs far more than the
scaling side, and this line shows by how much per simulated day (0: skip).
Run: python bench/sim_speed.py [--services 1000] [--hours 24 | --days 30] [--paths compiled,numpy] [--jobs N] [--repeat 3]
     [--policy FILE] [--healing-hours 0.25] [--healing-policy FILE]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

from controller.core.scaling import compiled
from controller.policy import load_policies
from controller.policy.summary import plural
from controller.runtime import reconciler as reconciler_module
from simulators import cluster as cluster_module
from simulators import runner as runner_module
from simulators.parallel import usable_cpus
from simulators.runner import ControllerSpec, run_controllers, warm_kernels
from simulators.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[1]
#: Peak memory target of a 30-day run (issue #13).
MEMORY_TARGET_BYTES = 2 * 2**30

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: wide-day, description: "{services}, {span}"}}
spec:
  duration: {hours}h
  tick: 5s
  seed: 1
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: svc
      count: {n}
      capacityPerPod: 100
      initialReplicas: 6
      maxPods: 32
      load:
        - diurnal: {{mean: 800, amplitude: 0.6, peakHour: 16}}
        - noise: {{sigma: 0.08}}
"""


class Stopwatch:
    """Accumulates wall time (``total``) and CPU time of this process (``cpu``) spent inside a
    wrapped function, per controller: under the name ``current[0]`` holds at the call."""

    def __init__(self, owner, name: str, current: list[str]):
        self.owner, self.name, self.total, self.cpu = owner, name, {}, {}
        self.original = getattr(owner, name)

        def timed(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            try:
                return self.original(*args, **kwargs)
            finally:
                who = current[0]
                self.total[who] = self.total.get(who, 0.0) + time.perf_counter() - t
                self.cpu[who] = self.cpu.get(who, 0.0) + time.process_time() - c

        setattr(owner, name, timed)

    def restore(self) -> None:
        setattr(self.owner, self.name, self.original)


def compile_kernels(policies) -> float:
    """Seconds to compile (or load from numba's disk cache) every kernel the run uses (``warm``)."""
    return warm(specs(policies))


def warm(controllers: list[ControllerSpec]) -> float:
    """Seconds to compile or load the kernels ``controllers`` use: the runner's warm-up
    (runner.warm_kernels) on a two-service version of the scenario."""
    return warm_kernels(load_scenario_text(scenario_text(2, 1 / 60), "warm-up.yaml"), controllers)


def specs(policies) -> list[ControllerSpec]:
    return [ControllerSpec(name, "policy", "", policy=p) for name, p in zip(("policy", "hpa"), policies)]


def run_path(sc, policies) -> tuple[float, float, dict, dict]:
    """Wall and CPU seconds of both controllers' runs, in lockstep (runner.run_controllers: each
    chunk of load generated once for both, in "load"), their replica-hours and each one's own CPU
    seconds (by controller name; the shared part left out). CPU time (this
    process) is the figure to read on a shared, loaded machine: wall time there includes the time
    other processes ran."""
    current = ["load"]
    advance = runner_module._ControllerRun.advance
    watches = {w: Stopwatch(owner, name, current) for w, (owner, name) in {
        "run": (runner_module._ControllerRun, "advance"), "step": (cluster_module.SimCluster, "step"),
        "ticks": (cluster_module.SimCluster, "step_ticks"), "cycle": (reconciler_module.Reconciler, "cycle")}.items()}
    timed_advance = runner_module._ControllerRun.advance

    def attributed(run, *args):  # the time spent while a controller advances is its own
        current[0] = run.spec.name
        try:
            return timed_advance(run, *args)
        finally:
            current[0] = "load"

    runner_module._ControllerRun.advance = attributed
    t, c = time.perf_counter(), time.process_time()
    try:
        done = run_controllers(sc, specs(policies), keep_records=False)
    finally:
        for w in watches.values():
            w.restore()
        runner_module._ControllerRun.advance = advance
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    total = {w: watches[w].total for w in watches}
    cpus = {w: watches[w].cpu for w in watches}
    replica_hours, own_cpus = {}, {}
    for run, _ in done:
        name = run.name
        replica_hours[name] = round(run.scores["replica_hours"], 6)
        own, own_cpu = total["run"].get(name, 0.0), cpus["run"].get(name, 0.0)
        own_cpus[name] = own_cpu
        # engine steps: ticks stepped alone (step) and in runs (step_ticks, their signals recorded too)
        step, cycle = total["step"].get(name, 0.0) + total["ticks"].get(name, 0.0), total["cycle"].get(name, 0.0)
        step_cpu, cycle_cpu = cpus["step"].get(name, 0.0) + cpus["ticks"].get(name, 0.0), cpus["cycle"].get(name, 0.0)
        print(f"  {name:>7}: {own:6.1f} s wall, {own_cpu:6.1f} s CPU  (wall: engine steps {step:5.1f} s, "
              f"control cycles {cycle:5.1f} s, other {own - step - cycle:4.1f} s)  "
              f"replica-hours {run.scores['replica_hours']:.0f}")
        print(f"  {'':>7}  CPU: engine steps {step_cpu:5.2f} s, control cycles {cycle_cpu:5.2f} s, "
              f"other {own_cpu - step_cpu - cycle_cpu:5.2f} s")
    shared, shared_cpu = wall - sum(total["run"].values()), cpu - sum(cpus["run"].values())
    print(f"  {'shared':>7}: {shared:6.1f} s wall, {shared_cpu:6.1f} s CPU  (load generated once for both, "
          "set-up, scores' finish)")
    return wall, cpu, replica_hours, own_cpus


def shared_run(sc, policies, jobs: int, days: float, alone_rate: float, alone_hours: dict, repeat: int) -> None:
    """The compiled path with the two controllers in up to ``jobs`` processes (simulators/parallel.py),
    ``repeat`` times: wall time only (the workers' CPU is not this process's), each run's rate, and
    the target read on their median (one run swings by +-10% on this host: two processes on two
    cores share the caches and the memory bus with each other and with whatever else runs); and the
    check that every run is the same as the one-process run."""
    compiled.set_switch("1")
    rates, same = [], True
    for _ in range(repeat):
        t = time.perf_counter()
        done = run_controllers(sc, specs(policies), keep_records=False, jobs=jobs)
        rates.append(days / (time.perf_counter() - t))
        same &= {run.name: round(run.scores["replica_hours"], 6) for run, _ in done} == alone_hours
    rate = statistics.median(rates)
    runs = ", ".join(f"{r:.4g}" for r in rates)
    print(f"compiled, controllers shared by {jobs} processes: {rate:.4g} simulated days per wall-second"
          f"{f' (median of {repeat}: {runs})' if repeat > 1 else ''} "
          f"({rate / alone_rate:.2f}x one process; target >= 0.5: {met(rate >= 0.5)}; stretch 1.0: {met(rate >= 1.0)});"
          f"  same replica-hours: {same}")


def healing_line(services: int, hours: float, policy_file: str, policy_cpu_per_day: float) -> None:
    """The compiled path with ``policy_file`` (a policy with a health section) alone for ``hours`` on the
    same scenario: its CPU seconds (its kernels warmed first, not counted), simulated days per
    CPU-second, and how many times the main run's policy controller's own CPU per simulated day
    (``policy_cpu_per_day``, seconds) it costs. No target."""
    compiled.set_switch("1")
    sc = load_scenario_text(scenario_text(services, hours), "wide-healing.yaml")
    spec = [ControllerSpec("healing", "policy", "", policy=load_policies([policy_file])[0])]
    warm(spec)
    c = time.process_time()
    (run, _), = run_controllers(sc, spec, keep_records=False)
    cpu = time.process_time() - c
    days = sc.duration_s / 86400.0
    print(f"healing ({Path(policy_file).name} alone, {plural(services, 'service')}, {span_words(hours)}): {cpu:.1f} s CPU, "
          f"{days / cpu:.4g} simulated days per CPU-second ({cpu / days / policy_cpu_per_day:.0f}x the policy "
          f"controller's CPU per simulated day above; no target)  replica-hours {run.scores['replica_hours']:.0f}")


def scenario_text(services: int, hours: float) -> str:
    """The benchmark's scenario: ``services`` services for ``hours`` simulated hours, its description
    saying both (``1000 services, 30 days``; before, "one day" whatever --hours)."""
    return SCENARIO.format(services=plural(services, "service"), n=services, hours=hours, span=span_words(hours))


def span_words(hours: float) -> str:
    """``1 day``, ``30 days``, ``2 hours``, ``1 minute``: whole days, else hours, else minutes."""
    if hours >= 24 and float(hours / 24).is_integer():
        return plural(float(hours / 24), "day")
    if hours >= 1:
        return plural(float(hours), "hour")
    return plural(float(round(hours * 60, 3)), "minute")


def run_size(services: int, ticks: int, days: float) -> str:
    """The run's first line: ``1000 services x 17280 ticks (1 simulated day)``."""
    return f"{plural(services, 'service')} x {plural(ticks, 'tick')} ({plural(days, 'simulated day')})"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--days", type=float, default=None, help="simulated days (overrides --hours)")
    ap.add_argument("--paths", default="compiled,numpy", help="comma-separated: compiled, numpy")
    ap.add_argument("--jobs", type=int, default=usable_cpus(),
                    help="then the compiled path again with the controllers shared by this many processes "
                         "(setpoint simulate's default: the CPUs; 1: skip)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the shared (--jobs) path; its target is read on their median")
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"),
                    help="the policy file run beside HPA (default: the default policy)")
    ap.add_argument("--healing-hours", type=float, default=0.25,
                    help="simulated hours of the healing line (compiled, the healing policy alone; 0: skip)")
    ap.add_argument("--healing-policy", default=str(REPO / "policies" / "setpoint-healing.yaml"),
                    help="the policy of the healing line (one with a health section)")
    args = ap.parse_args()
    hours = args.days * 24.0 if args.days is not None else args.hours
    sc = load_scenario_text(scenario_text(args.services, hours), "wide-day.yaml")
    policies = [load_policies([path])[0] for path in (args.policy, REPO / "policies" / "hpa-cpu.yaml")]
    days = sc.duration_s / 86400.0
    print(run_size(args.services, sc.tick_count, days))
    rates, hours, policy_cpu = {}, {}, {}
    for path in args.paths.split(","):
        compiled.set_switch("1" if path == "compiled" else "0")
        if path == "compiled":
            if not compiled.enabled():
                print("compiled: numba unavailable, skipped")
                continue
            print(f"compiled: kernels compiled or loaded from the disk cache in {compile_kernels(policies):.1f} s "
                  "(not counted below)")
        wall, cpu, hours[path], own_cpus = run_path(sc, policies)
        policy_cpu[path] = own_cpus["policy"]
        rates[path] = days / wall
        print(f"{path}: {rates[path]:.4g} simulated days per wall-second, both controllers, load included"
              f"  (target >= 0.5: {met(rates[path] >= 0.5)}; stretch 1.0: {met(rates[path] >= 1.0)})")
        print(f"{path}: {days / cpu:.4g} simulated days per CPU-second (the same on an idle core; target >= 0.5: "
              f"{met(days / cpu >= 0.5)})")
    if len(rates) == 2:
        print(f"ratio compiled/numpy: {rates['compiled'] / rates['numpy']:.2f}x;  same replica-hours: "
              f"{hours['compiled'] == hours['numpy']}")
    if args.jobs > 1 and "compiled" in rates:
        shared_run(sc, policies, args.jobs, days, rates["compiled"], hours["compiled"], max(1, args.repeat))
    if args.healing_hours > 0 and "compiled" in rates:
        healing_line(args.services, args.healing_hours, args.healing_policy, policy_cpu["compiled"] / days)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"peak memory (RSS): {peak / 2**20:.0f} MiB for {plural(days, 'simulated day')}  "
          f"(target < {MEMORY_TARGET_BYTES / 2**30:g} GiB for 30 days: {met(peak < MEMORY_TARGET_BYTES)}"
          f"{'' if days >= 30 else '; shorter run, same per-tick memory'})")


if __name__ == "__main__":
    main()
