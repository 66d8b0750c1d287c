"""Where the fused decide kernel's time goes: variants of it with one part skipped, timed on one captured cycle.

The default policy (policies/setpoint-default.yaml) over 1,000 targets runs bench/decide.py's inputs for
``--capture`` cycles (the 15-minute recommendation window full from cycle 62); that cycle's kernel arguments
are kept. Each variant is core/scaling/fused.py with one part skipped (its text edited, compiled as its own
module in a temporary directory): the recommendation windows (_recommendation_windows: high, low, the linear
release's held maximum), the ramps (n_ramps 0), the rate limits (no limit in either direction). The
variants' decisions differ; only their time is of use. Every variant runs the same arguments, its state
restored from the capture before each call, the variants taking turns call by call, ``--calls`` times:
"warm" right after the restore (the state in the cache, as a cycle of one policy), "cold" after a 32 MB
sweep (as a cycle between simulated engine steps and other policies). Prints the median and 10th
percentile CPU time (time.process_time) per call, and for each part the full kernel's median minus the
variant's (the part's cost; LLVM compiles each variant on its own, so a negative difference says code
generation moved more than the part costs). The product's own kernel (fused.fused_kernel) runs beside
them, as a check that the unedited copy ("full kernel") is compiled alike (December 6, session 38, load
~18: 121 vs 123 us warm). Each call follows the other variants' calls, so its code and branch history
are cold: ~120 us warm here where the kernel called alone cycle after cycle takes ~70 us. Skipping the
windows made the copy slower (150 us): until that is understood, read the parts as rough. Compiling
the variants takes ~30 s each.
With ``--run-hours H``, the arguments are instead captured in a run of the policy controller over
bench/sim_speed.py's 1,000-service scenario (every ``--every``-th cycle: the ramps' latest readings and
observed start-ups as the simulator gives them, which decide.py's inputs lack), the variants taking
turns over the captured cycles; the run's own per-call kernel CPU time is printed first (December 6,
session 39, load ~8: median ~99 us, 10th percentile ~96 us; warm, alternating on 10 captured cycles:
full kernel ~114 us, the ramps' look-ahead proposal ~5 us, the implied slope ~3 us, the ramp sample
write ~3 us and read ~1 us).
``--run-only`` prints the run's figure alone: for an A/B of the kernel as a run calls it, run it from
two checkouts in turns, a process each (December 7, session 43: one variant of the kernel took ~87 us a
call in three processes and ~125 us in two, each stable within its process: compare over several processes).
Run: python bench/fused_parts.py [--capture 90] [--calls 200] [--run-hours 1 --every 24 [--run-only]]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

import decide as bench_decide  # noqa: E402 (bench/decide.py: the inputs and the default policy)
from controller.core.scaling import compiled, fused  # noqa: E402
from controller.core.scaling.decide import Observation  # noqa: E402
from controller.core.scaling.workspace import DecisionWorkspace, decide_into  # noqa: E402
from controller.policy.summary import plural  # noqa: E402

TARGETS = 1000
# the kernel's state arguments (restored before each call), by position in fused_kernel's signature
STATE_ARGS = range(12, 24)


def skip_windows(text: str) -> str:
    """The window pass replaced by the pattern's slot 0 (its call spans two lines)."""
    start = text.index("    s_star = _recommendation_windows(rec, rows[:slots + 1]")
    end = text.index("\n", text.index("\n", start) + 1)
    return text[:start] + "    s_star = 0" + text[end:]


def replace_once(old: str, new: str):
    def edit(text: str) -> str:
        if text.count(old) != 1:
            raise SystemExit(f"bench/fused_parts.py: fused.py no longer has one {old!r}: update the variant")
        return text.replace(old, new)
    return edit


VARIANTS = {
    "full kernel": lambda text: text,
    "no windows": skip_windows,
    "no ramps": replace_once("int(pv[_V_DOWN_RULES]), int(pv[_V_RAMPS])", "int(pv[_V_DOWN_RULES]), 0"),
    "no rate limits": replace_once("if up_dir or stabilized < cur:", "if False:"),
}


def load_variants(directory: Path) -> dict:
    """Each variant's fused_kernel, compiled from its edited copy of fused.py in ``directory``."""
    if not compiled.available():  # loads numba first: a module imported before marks its functions for later
        raise SystemExit("bench/fused_parts.py: the compiled kernels are unavailable (numba missing or broken)")
    text = Path(fused.__file__).read_text()
    kernels = {"fused.fused_kernel": fused.fused_kernel}  # the kernel as the product compiles it (disk cache)
    for k, (name, edit) in enumerate(VARIANTS.items()):
        path = directory / f"fused_variant_{k}.py"
        path.write_text(edit(text))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        kernels[name] = module.fused_kernel
    return kernels


def captured_arguments(cycles: int) -> list:
    """fused_kernel's arguments at cycle ``cycles`` of the default policy on bench/decide.py's inputs."""
    policy = bench_decide.default_policy()
    inputs = bench_decide.make_inputs(cycles + 1, TARGETS, 1, seed=9)
    ws = DecisionWorkspace.empty(policy, TARGETS)
    current = np.full(TARGETS, 10.0)
    present, age = np.ones((TARGETS, 1), bool), np.zeros((TARGETS, 1))
    now = 1_700_000_000.0
    for c in range(cycles):
        decide_into(policy, ws, Observation(current, current, current, inputs[c], present, age), now)
        ws.commit()
        np.copyto(current, ws.desired)
        now += 15.0
    return [inputs[cycles], present, age, current, current.copy(), current.copy(), ws.no_withheld, ws.no_startup,
            ws.floor, ws.pv, now, ws.deferred_at, ws.em, ws.win, ws.ramp, ws.rec, ws.rows, ws.up, ws.down, ws.vf,
            ws.out_f, ws.out_b2, ws.vi, ws.active, ws.buf, ws.no_latest]


def run_arguments(hours: float, every: int) -> tuple[list, list]:
    """fused_kernel's arguments in a run of the policy controller (bench/sim_speed.py's 1,000-service
    scenario, ``hours`` simulated hours): copies of every ``every``-th call's (taken before it
    runs), and the CPU time (time.process_time) of every call as the run made it."""
    import sim_speed  # noqa: PLC0415 (bench/sim_speed.py: the scenario and the controllers)
    from controller.policy import load_policies  # noqa: PLC0415
    from simulators import runner  # noqa: PLC0415
    from simulators.scenario import load_scenario_text  # noqa: PLC0415

    compiled.set_switch("1")
    policy = load_policies([sim_speed.REPO / "policies" / "setpoint-default.yaml"])[0]
    sim_speed.compile_kernels([policy, policy])
    spec = [s for s in sim_speed.specs([policy]) if s.name == "policy"]
    scenario = load_scenario_text(sim_speed.scenario_text(TARGETS, hours), "fused-parts.yaml")
    kernel, captured, spent = fused.fused_kernel, [], []

    def timed(*args):
        if len(spent) % every == every - 1:
            captured.append([a.copy() if isinstance(a, np.ndarray) else a for a in args])
        cpu = time.process_time()
        try:
            return kernel(*args)
        finally:
            spent.append(time.process_time() - cpu)

    fused.fused_kernel = timed  # workspace.decide_into calls fused.fused_kernel
    try:
        runner.run_controllers(scenario, spec, keep_records=False)
    finally:
        fused.fused_kernel = kernel
    return captured, spent


def time_variants(kernels: dict, arg_sets: list, calls: int) -> dict:
    """{(variant, "warm" or "cold"): CPU seconds per call}, the variants taking turns call by call,
    each round on the next of ``arg_sets`` (captured cycles' arguments, each restored before a call)."""
    saved = [[args[k].copy() for k in STATE_ARGS] for args in arg_sets]
    sweep = np.ones(4_000_000)  # 32 MB: more than the caches

    def restore(c: int) -> None:
        for k, kept in zip(STATE_ARGS, saved[c]):
            np.copyto(arg_sets[c][k], kept)

    for kernel in kernels.values():  # the first call of each compiled
        restore(0)
        kernel(*arg_sets[0])
    times: dict = {}
    for call in range(calls):
        c = call % len(arg_sets)
        args = arg_sets[c]
        for name, kernel in kernels.items():
            for how in ("warm", "cold"):
                restore(c)
                if how == "cold":
                    sweep += 1.0
                cpu = time.process_time()
                kernel(*args)
                times.setdefault((name, how), []).append(time.process_time() - cpu)
    for c in range(len(arg_sets)):
        restore(c)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=int, default=90, help="cycles run before the captured one")
    ap.add_argument("--calls", type=int, default=200, help="timed calls of each variant, warm and cold")
    ap.add_argument("--run-hours", type=float, default=0.0,
                    help="capture instead in a run of the policy controller over bench/sim_speed.py's scenario, "
                         "this many simulated hours (every --every-th cycle)")
    ap.add_argument("--every", type=int, default=24, help="with --run-hours: capture every this many cycles")
    ap.add_argument("--run-only", action="store_true",
                    help="with --run-hours: print the run's per-call time and stop (no variants): run it from two "
                         "checkouts in turns, a process each, for an A/B of the kernel as a run calls it")
    args = ap.parse_args()
    if args.run_hours > 0:
        arg_sets, spent = run_arguments(args.run_hours, args.every)
        print(f"default policy, {TARGETS} targets, {plural(len(arg_sets), 'cycle')} captured in a run of "
              f"{args.run_hours:g} simulated hours (sim_speed's scenario); the kernel in the run: median "
              f"{statistics.median(spent) * 1e6:.1f} us CPU over {plural(len(spent), 'call')}")
        if args.run_only:
            print(f"10th percentile {np.percentile(spent, 10) * 1e6:.1f} us")
            return
    else:
        arg_sets = [captured_arguments(args.capture)]
        print(f"default policy, {TARGETS} targets, cycle {args.capture} of bench/decide.py's inputs")
    print(f"load {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as directory:
        cpu = time.process_time()
        kernels = load_variants(Path(directory))
        times = time_variants(kernels, arg_sets, args.calls)
        print(f"variants compiled and run in {time.process_time() - cpu:.0f} CPU s")
    for how in ("warm", "cold"):
        full = statistics.median(times[("full kernel", how)])
        for name in ("fused.fused_kernel", *VARIANTS):
            spent = times[(name, how)]
            part = "" if name in ("full kernel", "fused.fused_kernel") else f"  part ~{(full - statistics.median(spent)) * 1e6:6.1f} us"
            print(f"{how} {name:15s} median {statistics.median(spent) * 1e6:6.1f} us, "
                  f"10th percentile {np.percentile(spent, 10) * 1e6:6.1f} us{part}")
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
