"""Benchmark setpoint sweep: 6 scenarios x 8 policy variants x 3 seeds (144 cells).

Runs the same grid three times from empty cell stores: 1 local worker, 2 local workers, and a
local Ray instance with 2 CPUs. Prints each wall time, the speed-up of 2 workers over 1, and
checks that all three give identical numbers cell by cell (and the same result.json).

Target (issue #13): >= 1.7x faster with 2 workers than with 1 on a 2-core machine, and the
same sweep on Ray gives identical numbers. The scenarios are 40 minutes of simulated time with
2 services, so the bench takes a few minutes. On a shared machine the measured speed-up is
pessimistic: with the kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled)
every session gets an equal share of the CPUs however many processes it runs, so 2 workers get
no more CPU than 1 while other sessions are busy. The bench prints the cores the cells got, and
an estimate for an idle machine from the CPU time of each worker.
Run: python bench/sweep.py [--no-ray] [--minutes 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from simulators.sweep import CellStore, build_grid, run_grid
from simulators.sweep_result import merge, result_json

REPO = Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 1.7
VARIANTS = ["spec.scaling.metrics[0].target.averagePerReplica=50..80:10",
            "spec.scaling.behavior.scaleDown.stabilizationWindow=5m,20m"]  # 4 x 2 = 8 variants
SEEDS = 3

HEAD = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: {name}}}
spec:
  duration: {minutes}m
  tick: 5s
  seed: {seed}
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
"""
SERVICE = """\
    - name: {name}
      capacityPerPod: 100
      initialReplicas: 4
      maxPods: 40
      load:
{load}        - noise: {{sigma: 0.05}}
"""
LOADS = {  # scenario -> one load per service (YAML list items, indented)
    "step": ["        - step: {at: 10m, from: 400, to: 1000}\n", "        - step: {at: 20m, from: 200, to: 500}\n"],
    "ramp": ["        - ramp: {start: 5m, end: 30m, from: 200, to: 1200}\n",
             "        - ramp: {start: 0s, end: 20m, from: 600, to: 150}\n"],
    "flash": ["        - constant: {rps: 300}\n        - flashCrowd: {at: 10m, peak: 900, rise: 1m, decay: 10m}\n",
              "        - constant: {rps: 500}\n"],
    "diurnal": ["        - diurnal: {mean: 600, amplitude: 0.6, peakHour: 12}\n",
                "        - diurnal: {mean: 300, amplitude: 0.3, peakHour: 0}\n"],
    "burst": ["        - constant: {rps: 250}\n        - step: {at: 8m, from: 0, to: 700}\n"
              "        - step: {at: 14m, from: 0, to: -700}\n", "        - constant: {rps: 800}\n"],
    "noisy": ["        - constant: {rps: 700}\n        - noise: {sigma: 0.3, every: 30s}\n",
              "        - ramp: {start: 0s, end: 40m, from: 100, to: 600}\n"],
}


def write_scenarios(folder: Path, minutes: int) -> list[str]:
    paths = []
    for seed, (name, loads) in enumerate(LOADS.items(), start=1):
        text = HEAD.format(name=name, minutes=minutes, seed=seed * 10)
        text += "".join(SERVICE.format(name=f"svc{i}", load=load) for i, load in enumerate(loads))
        path = folder / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def timed(grid, folder: Path, **how) -> tuple[float, dict]:
    started = time.perf_counter()
    records = run_grid(grid.cells(), CellStore(folder), **how)
    return time.perf_counter() - started, records


def cores(records: dict, wall_s: float) -> str:
    """CPU seconds the cells got, and how many cores that is on average over the run: below
    the worker count, other processes took the rest of the machine."""
    cpu_s = sum(r.get("cpu_s", 0.0) for r in records.values())
    return f"cells used {cpu_s:.1f} CPU s = {cpu_s / wall_s:.2f} cores on average"


def idle_estimate(one: dict, two: dict) -> float:
    """What 2 workers would gain with a core each: the CPU time of the serial run over the CPU
    time of the busier worker of the parallel run (its critical path)."""
    per_worker: dict[str, float] = {}
    for r in two.values():
        per_worker[r.get("worker", "?")] = per_worker.get(r.get("worker", "?"), 0.0) + r.get("cpu_s", 0.0)
    return sum(r.get("cpu_s", 0.0) for r in one.values()) / max(per_worker.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=40, help="simulated minutes per scenario")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grid = build_grid(write_scenarios(tmp, args.minutes), [str(REPO / "policies" / "setpoint-default.yaml")],
                          VARIANTS, seeds=SEEDS)
        cells = grid.cells()
        print(f"grid: {len(grid.scenarios)} scenarios x {len(grid.variants)} variants x {grid.seeds} seeds = "
              f"{len(cells)} cells, {args.minutes} simulated minutes each")
        one_s, one = timed(grid, tmp / "one", jobs=1)
        print(f"1 worker:   {one_s:7.1f} s  ({one_s / len(cells) * 1000:.0f} ms per cell; {cores(one, one_s)})")
        two_s, two = timed(grid, tmp / "two", jobs=2)
        speedup = one_s / two_s
        print(f"2 workers:  {two_s:7.1f} s  ({cores(two, two_s)})")
        print(f"speed-up 2 workers over 1: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: "
              f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}; pessimistic on a shared machine: see the cores)")
        print(f"speed-up estimated for an idle 2-core machine: {idle_estimate(one, two):.2f}x (CPU seconds of the "
              "1-worker run over those of the busier of the 2 workers: overhead and load balance, not wall time)")
        same = all(one[c.key]["scores"] == two[c.key]["scores"] for c in cells)
        print(f"1 vs 2 workers identical cell by cell: {'yes' if same else 'NO'}")
        if not args.no_ray:
            import ray

            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            init_s = time.perf_counter() - started
            ray_s, on_ray = timed(grid, tmp / "ray", jobs=2, ray_address="auto")
            ray.shutdown()
            identical = (all(one[c.key]["scores"] == on_ray[c.key]["scores"] for c in cells)
                         and result_json(merge(grid, one)) == result_json(merge(grid, on_ray)))
            print(f"local Ray (2 CPUs): {ray_s:5.1f} s (+{init_s:.1f} s to start Ray); identical numbers to local "
                  f"processes: {'met' if identical else 'NOT met'}")


if __name__ == "__main__":
    main()
