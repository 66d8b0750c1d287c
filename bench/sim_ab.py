"""A/B of one controller's simulated run (bench/sim_speed.py's scenario) between two checkouts, for a noisy host.

Each checkout runs in its own process (PYTHONPATH=checkout: its own code and kernel cache; a
bench script run as ``python bench/x.py`` imports the editable install's code otherwise, whatever
the working directory), kernels warmed first; the two take turns block by block, each block a
whole run of the controller (``--controllers``: hpa, policy, or both as ``hpa,policy``, in
lockstep as run_controllers runs them) over ``--hours`` of the 1,000-service scenario, the order swapped
every round. Per block: the CPU time (time.process_time) of each controller's own advance
(engine steps, control cycles, the rest of its ticks; not the load both share), per simulated
hour, and of its parts: its engine steps ("policy step": SimCluster.step and step_ticks), its
control cycles ("policy cycle": Reconciler.cycle and health_cycle) and what is neither ("policy
other": recording, scoring, the metrics' rings, actions, the loop); and the
controllers' replica-hours, which must be the same on both sides (same trajectories). Prints each side's median and best CPU ms per simulated hour and the median and
quartiles of the per-round ratio B/A (< 1: B is cheaper). A checkout against itself gives ~1.0.
``--scenario`` runs a bundled scenario (or a scenario file) instead, with its own services and
duration, and ``--policy`` gives the policy controller another policy file: a healing run is
``--scenario crash-loop --policy policies/setpoint-healing.yaml --controllers policy``.
Run: python bench/sim_ab.py --base /path/to/base [--branch .] [--rounds 10] [--hours 2] [--controllers hpa]
     [--scenario NAME --policy FILE]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from decide_ab import ab_arguments, start  # bench/decide_ab.py: a checkout's child process (this script's directory is on the path)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

HERE = Path(__file__).resolve()


def child(checkout: Path, services: int, hours: float, controllers: str, scenario_name: str = "",
          policy: str = "") -> None:
    """Run blocks on request (a line on stdin each): print {controller: CPU s of its advance},
    {controller: replica-hours} as one JSON line per block. ``scenario_name``: that scenario instead
    of sim_speed's; ``policy``: the policy controller's file instead of setpoint-default.yaml."""
    import gc  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415 (the child loads the checkout's bench/sim_speed.py by path)

    spec = importlib.util.spec_from_file_location("checkout_sim_speed", checkout / "bench" / "sim_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from controller.core.scaling import compiled  # noqa: PLC0415
    from controller.policy import load_policies  # noqa: PLC0415
    from simulators import runner  # noqa: PLC0415
    from simulators.scenario import load_scenario, load_scenario_text  # noqa: PLC0415

    compiled.set_switch("1")
    policies = [load_policies([path])[0] for path in (Path(policy) if policy else
                                                      bench.REPO / "policies" / "setpoint-default.yaml",
                                                      bench.REPO / "policies" / "hpa-cpu.yaml")]
    bench.compile_kernels(policies)
    wanted = controllers.split(",")
    specs = [s for s in bench.specs(policies) if s.name in wanted]
    scenario = (load_scenario(scenario_name, None) if scenario_name else
                load_scenario_text(bench.scenario_text(services, hours), "wide-day.yaml"))
    cpu: dict[str, float] = {}
    current = [""]  # the controller whose advance is running
    advance = runner._ControllerRun.advance

    def timed(run, *args):
        c = time.process_time()
        current[0] = run.spec.name
        try:
            return advance(run, *args)
        finally:
            cpu[run.spec.name] = cpu.get(run.spec.name, 0.0) + time.process_time() - c

    def timed_part(method, part: str):  # a part of an advance: the engine step (ticks alone, runs of ticks), cycles
        def timed_method(*args):
            c = time.process_time()
            try:
                return method(*args)
            finally:
                key = f"{current[0]} {part}"
                cpu[key] = cpu.get(key, 0.0) + time.process_time() - c
        return timed_method

    runner._ControllerRun.advance = timed
    runner.SimCluster.step, runner.SimCluster.step_ticks = (timed_part(runner.SimCluster.step, "step"),
                                                            timed_part(runner.SimCluster.step_ticks, "step"))
    runner.Reconciler.cycle = timed_part(runner.Reconciler.cycle, "cycle")
    runner.Reconciler.health_cycle = timed_part(runner.Reconciler.health_cycle, "cycle")
    gc.collect()
    gc.freeze()  # what exists before the runs is never walked by a collection inside them
    print("ready", flush=True)
    for _ in sys.stdin:
        cpu.clear()
        done = runner.run_controllers(scenario, specs, keep_records=False)
        hours_of = {run.name: round(run.scores["replica_hours"], 6) for run, _ in done}
        print(json.dumps([cpu, hours_of]), flush=True)


def scenario_hours(name: str) -> float:
    """Simulated hours of scenario ``name`` (bundled, or a file)."""
    from simulators.scenario import load_scenario  # noqa: PLC0415

    sc = load_scenario(name, None)
    return float(sc.times()[-1] - sc.start_s + sc.tick_s) / 3600.0


def main() -> None:
    ap = ab_arguments(__doc__, 10)
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours per block")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--controllers", default="hpa", help="comma-separated: hpa, policy")
    ap.add_argument("--scenario", default="", help="a bundled scenario or a scenario file (its services and duration)")
    ap.add_argument("--policy", default="", help="the policy controller's policy file (default setpoint-default.yaml)")
    args = ap.parse_args()
    if args.child:
        child(args.child.resolve(), args.services, args.hours, args.controllers, args.scenario, args.policy)
        return
    if args.base is None:
        ap.error("--base is required")
    unknown = sorted(set(args.controllers.split(",")) - {"hpa", "policy"})
    if unknown:  # a name no block runs would time nothing and compare empty replica-hours as equal
        ap.error(f"--controllers: {', '.join(unknown)} is not a controller (hpa, policy, or both as hpa,policy)")
    if args.scenario:
        args.hours = scenario_hours(args.scenario)
        if Path(args.scenario).is_file():
            args.scenario = str(Path(args.scenario).resolve())
    policy = str(Path(args.policy).resolve()) if args.policy else ""
    child_args = ("--services", str(args.services), "--hours", str(args.hours), "--controllers", args.controllers,
                  "--scenario", args.scenario, "--policy", policy)
    sides = {side: start(checkout.resolve(), *child_args, script=HERE)
             for side, checkout in (("A", args.base), ("B", args.branch))}
    ms_per_hour: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    replica_hours: dict[str, dict] = {}
    for r in range(args.rounds):
        for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
            sides[side].stdin.write("run\n")
            cpu, hours_of = json.loads(sides[side].stdout.readline())
            for name in [n for n in cpu if " " not in n]:  # what is neither step nor cycle: the rest of its ticks
                cpu[f"{name} other"] = cpu[name] - cpu.get(f"{name} step", 0.0) - cpu.get(f"{name} cycle", 0.0)
            for name, seconds in cpu.items():
                ms_per_hour[side].setdefault(name, []).append(seconds * 1000.0 / args.hours)
            replica_hours[side] = hours_of
    for proc in sides.values():
        proc.stdin.close()
        proc.wait()
    print(f"{args.scenario or f'{args.services} services'}, {args.hours:g} simulated hours per block, "
          f"{args.rounds} rounds; "
          f"load average at the end: {os.getloadavg()[0]:.2f}")
    for name in ms_per_hour["A"]:
        for side, checkout in (("A", args.base), ("B", args.branch)):
            s = ms_per_hour[side][name]
            print(f"  {name:>7} {side} {checkout}: median {statistics.median(s):6.1f}, best {min(s):6.1f} CPU ms per "
                  "simulated hour")
        ratio = [b / a for a, b in zip(ms_per_hour["A"][name], ms_per_hour["B"][name])]
        q = statistics.quantiles(ratio, n=4) if len(ratio) > 1 else ratio * 3
        print(f"  {name:>7} CPU B/A per round: median {statistics.median(ratio):.3f} (quartiles {q[0]:.3f} .. "
              f"{q[2]:.3f})")
    print(f"same replica-hours: {replica_hours['A'] == replica_hours['B']} ({replica_hours['B']})")


if __name__ == "__main__":
    main()
