"""Benchmark setpoint sweep: 6 scenarios x 8 policy variants x 3 seeds (144 cells).

Runs the same grid from empty cell stores on 1 local worker and on 2 local workers, each in a
fresh process, and then on a local Ray instance with 2 CPUs. The target is on the sweep itself
(run_grid, from its call to its return: both runs pay starting their cell runners, i.e. importing
the simulator and numba and loading the compiled kernels, and the 2-worker run also forking its
workers); the whole process (start to exit: plus the imports and building the grid, the same for
both) is printed beside it. ``--repeat N`` runs the 1- and 2-worker pair N times and prints the
best and median speed-ups. Prints each wall time, the speed-up of 2 workers over 1, and
checks that all three give identical numbers cell by cell (and the same result.json).

Target (issue #13): >= 1.7x faster with 2 workers than with 1 on a 2-core machine, and the
same sweep on Ray gives identical numbers. The scenarios are 40 minutes of simulated time with
2 services, so the bench takes a few minutes. On a shared machine the measured speed-up is
pessimistic: with the kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled)
every session gets an equal share of the CPUs however many processes it runs, so 2 workers get
no more CPU than 1 while other sessions are busy. The bench prints the cores the cells got, and
an estimate for an idle machine from the CPU time of each worker.
Run: python bench/sweep.py [--no-ray] [--minutes 40] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

from controller.policy.summary import plural
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


def grid_of(folder: Path, minutes: int):
    return build_grid(write_scenarios(folder, minutes), [str(REPO / "policies" / "setpoint-default.yaml")],
                      VARIANTS, seeds=SEEDS)


def child(folder: Path, minutes: int, jobs: int, out: Path) -> None:
    """One timed run, in a process of its own (``--child``): everything a user's ``setpoint sweep
    -j JOBS`` pays before its cells (imports, the grid, the workers' start-up) is in it. Prints
    its CPU figures as JSON: this process's before the cells and in all, its workers'."""
    grid = grid_of(folder, minutes)
    before_s = time.process_time()  # since this process started: imports and the grid
    started = time.perf_counter()
    records = run_grid(grid.cells(), CellStore(out), jobs=jobs)
    sweep_s = time.perf_counter() - started
    children = os.times()
    print(json.dumps({"sweep_s": sweep_s, "startup_cpu_s": before_s, "cpu_s": time.process_time(),
                      "parent_pid": os.getpid(),
                      "workers_cpu_s": children.children_user + children.children_system, "cells": len(records)}))


def timed(folder: Path, minutes: int, jobs: int, out: Path) -> tuple[float, dict, dict]:
    """Wall seconds of a fresh ``--child`` process running the grid on ``jobs`` workers from an
    empty store (interpreter start to exit), its CPU figures, and the stored records."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--minutes", str(minutes), "--child", str(folder), str(jobs),
                           str(out)], check=True, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    records = run_grid(grid_of(folder, minutes).cells(), CellStore(out))  # all stored: read back
    return wall_s, figures, records


def cores(figures: dict, records: dict, wall_s: float) -> str:
    """CPU seconds the run got, and how many cores that is on average: below the worker count,
    other processes took the rest of the machine (or start-up ran on one core)."""
    cpu_s = figures["cpu_s"] + figures["workers_cpu_s"]
    cells_s = sum(r.get("cpu_s", 0.0) for r in records.values())
    return (f"{cpu_s:.1f} CPU s = {cpu_s / wall_s:.2f} cores on average, {cells_s:.1f} of them in cells, "
            f"{figures['startup_cpu_s']:.1f} before the cells")


def idle_estimate(one: tuple[dict, dict], two: tuple[dict, dict]) -> float:
    """What the sweep of 2 workers would gain with a core each, from CPU times alone: the CPU
    of the 1-worker sweep over the 2-worker sweep's critical path, taken as its main process's
    CPU in it (the first cell, warming up, collecting) plus the busier worker's cells."""
    (f1, _), (f2, r2) = one, two
    here = f":{f2['parent_pid']}"
    per_worker: dict[str, float] = {}
    for r in r2.values():
        if not r.get("worker", "").endswith(here):
            per_worker[r.get("worker", "?")] = per_worker.get(r.get("worker", "?"), 0.0) + r.get("cpu_s", 0.0)
    one_s = f1["cpu_s"] - f1["startup_cpu_s"] + f1["workers_cpu_s"]
    return one_s / (f2["cpu_s"] - f2["startup_cpu_s"] + max(per_worker.values(), default=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=40, help="simulated minutes per scenario")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--repeat", type=int, default=1, help="run the 1- and 2-worker pair this many times")
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "JOBS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.minutes, int(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        grid = grid_of(tmp, args.minutes)
        cells = grid.cells()
        print(f"grid: {plural(len(grid.scenarios), 'scenario')} x {plural(len(grid.variants), 'variant')} x "
              f"{plural(grid.seeds, 'seed')} = {plural(len(cells), 'cell')}, {plural(args.minutes, 'simulated minute')} each")
        print("each run: a fresh process from an empty cell store. 'sweep': run_grid from call to return, so both "
              "runs pay starting their cell runners (importing the simulator and numba, loading the compiled kernels; "
              "2 workers: also forking them); 'process': start to exit, adding the imports and the grid, the same "
              "for both")
        speedups = []
        for _ in range(args.repeat):
            one_s, *one = timed(tmp, args.minutes, 1, tmp / "one")
            print(f"1 worker:   sweep {one[0]['sweep_s']:5.1f} s, process {one_s:5.1f} s  "
                  f"({one[0]['sweep_s'] / len(cells) * 1000:.0f} ms per cell; {cores(*one, one_s)})")
            two_s, *two = timed(tmp, args.minutes, 2, tmp / "two")
            print(f"2 workers:  sweep {two[0]['sweep_s']:5.1f} s, process {two_s:5.1f} s  ({cores(*two, two_s)})")
            speedup = one[0]["sweep_s"] / two[0]["sweep_s"]
            speedups.append(speedup)
            print(f"speed-up 2 workers over 1: sweep {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: "
                  f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}), process {one_s / two_s:.2f}x; "
                  "pessimistic on a shared machine: see the cores")
            print(f"speed-up of the sweep estimated for an idle 2-core machine: {idle_estimate(one, two):.2f}x (CPU "
                  "seconds of the 1-worker sweep over the 2-worker sweep's critical path: its main process, then the "
                  "busier worker)")
            same = all(one[1][c.key]["scores"] == two[1][c.key]["scores"] for c in cells)
            print(f"1 vs 2 workers identical cell by cell: {'yes' if same else 'NO'}")
            for store in ("one", "two"):
                shutil.rmtree(tmp / store)
        if args.repeat > 1:
            best, median = max(speedups), statistics.median(speedups)
            print(f"sweep speed-up over {args.repeat} pairs: best {best:.2f}x, median {median:.2f}x (target >= "
                  f"{TARGET_SPEEDUP}x: best {'met' if best >= TARGET_SPEEDUP else 'NOT met'}, median "
                  f"{'met' if median >= TARGET_SPEEDUP else 'NOT met'})")
        if not args.no_ray:
            import ray

            started = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            init_s = time.perf_counter() - started
            started = time.perf_counter()
            on_ray = run_grid(cells, CellStore(tmp / "ray"), jobs=2, ray_address="auto")
            ray_s = time.perf_counter() - started
            ray.shutdown()
            identical = (all(one[1][c.key]["scores"] == on_ray[c.key]["scores"] for c in cells)
                         and result_json(merge(grid, one[1])) == result_json(merge(grid, on_ray)))
            print(f"local Ray (2 CPUs): {ray_s:5.1f} s (+{init_s:.1f} s to start Ray); identical numbers to local "
                  f"processes: {'met' if identical else 'NOT met'}")


if __name__ == "__main__":
    main()
