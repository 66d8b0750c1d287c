"""Where a simulation's CPU time goes, per controller: compiled kernels vs the Python around them.

The bench/sim_speed.py scenario (1,000 services, 5 s tick, the default policy and the HPA preset in
lockstep, compiled path), timed with time.process_time: per controller its engine steps, control
cycles and the rest of its ticks (recording, metrics ring, actions), each split into the time inside
numba kernels (every kernel of controller/ and simulators/, by name) and the rest (Python and numpy
glue); shared: what is done once for both, split into the runs' set-up (clusters, reconcilers:
once per run, so its share per hour shrinks with longer runs), the load's plan (grouping the
services' shapes, once) and its chunks (the first one draws every noise term's 1,024-knot
block, about 17 h at one knot a minute), and the rest. Figures are CPU ms per simulated hour, and the
budget that 0.5 simulated days per CPU-second leaves (issue #13: 83 ms per simulated hour for both
controllers) is printed beside them: the gap a whole-loop compiled design must close.

A figure at a fraction of a call per hour is a once-a-run cost (a first touch of fresh memory,
say), not a per-tick one: its ms/h shrinks with longer runs. (The recorder's (8, C, S) block,
8 MiB for 1,000 services, is written whole at set-up for that reason: numpy asks the kernel for
huge pages from 4 MiB, and their first touch, with memory compaction on a loaded host, cost up
to ~15 ms inside whichever controller's _put_row_kernel wrote the block's first row: 6.9 ms/h
over 2 hours, shown with 0 calls per hour.)

Objects made before the run are frozen out of the garbage collector (gc.freeze), so the
totals are a little below bench/sim_speed.py's. Wrapping every kernel call adds about a microsecond per call; figures measured beside other work
vary with the machine's load (compare shares, or base and branch in the same minutes).
Run: python bench/sim_breakdown.py [--hours 2] [--services 1000] [--top 8]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import time
from collections import defaultdict
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

from controller.core.scaling import compiled
from controller.policy import load_policies
from controller.runtime import reconciler as reconciler_module
from simulators import cluster as cluster_module
from simulators import load as load_module
from simulators import runner as runner_module
from simulators.scenario import load_scenario_text

HERE = Path(__file__).resolve().parent
#: CPU ms per simulated hour, both controllers, at 0.5 simulated days per CPU-second.
BUDGET_MS_PER_HOUR = 1000.0 / (0.5 * 24.0)


def sim_speed():
    spec = importlib.util.spec_from_file_location("sim_speed", HERE / "sim_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Attribution:
    """CPU seconds by (controller, phase, what): phase is step | cycle | other | load; what is a
    kernel's name or "glue"; wrappers installed on the engine step, the control cycle, each
    controller's advance and every loaded kernel."""

    def __init__(self):
        self.cpu = defaultdict(float)
        self.calls = defaultdict(int)
        self.who, self.phase = "shared", ["load"]
        self.kernel_cpu = 0.0  # inside kernels since the current phase began (to subtract from its glue)
        self.shared = defaultdict(float)  # CPU s of what is done once for both: set-up, load plan and chunks
        self._undo = []

    def _patch(self, owner, name, wrapper):
        original = getattr(owner, name)
        setattr(owner, name, wrapper(original))
        self._undo.append((owner, name, original))

    def install(self) -> int:
        self._patch(runner_module._ControllerRun, "advance", lambda f: self._scope(f, "other", who=True))
        self._patch(cluster_module.SimCluster, "step", lambda f: self._scope(f, "step"))
        self._patch(cluster_module.SimCluster, "step_ticks", lambda f: self._scope(f, "step"))  # runs of ticks
        self._patch(reconciler_module.Reconciler, "cycle", lambda f: self._scope(f, "cycle"))
        self._patch(runner_module._ControllerRun, "__init__", lambda f: self._once(f, "set-up"))
        self._patch(load_module, "offered_function", self._load)
        kernels = compiled.loaded_kernels()
        # A kernel another kernel calls stays unwrapped: a kernel compiled after the patch (one the
        # warm-up missed) would find a Python wrapper in its globals and fail to type; its time
        # counts inside its caller.
        called = {(module, name) for module, _, k in kernels for name in k.py_func.__code__.co_names}
        wrapped = [(module, name) for module, name, _ in kernels if (module, name) not in called]
        for module, name in wrapped:
            self._patch(module, name, lambda f, name=name: self._kernel(f, name))
        return len(wrapped)

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    def _scope(self, f, phase: str, who: bool = False):
        def timed(*args, **kwargs):
            saved_who, saved_kernel = self.who, self.kernel_cpu
            if who:
                self.who = args[0].spec.name
            self.phase.append(phase)
            self.kernel_cpu = 0.0
            c = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent = time.process_time() - c
                self.cpu[(self.who, phase, "glue")] += spent - self.kernel_cpu
                self.calls[(self.who, phase, "glue")] += 1
                nested = spent  # the caller's glue excludes everything spent in here
                self.phase.pop()
                self.who, self.kernel_cpu = saved_who, saved_kernel + nested
        return timed

    def _once(self, f, name: str):
        def timed(*args, **kwargs):
            c = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                self.shared[name] += time.process_time() - c
        return timed

    def _load(self, offered_function):
        """offered_function timed: its plan, then each chunk it evaluates (the first apart)."""
        def planned(*args, **kwargs):
            evaluate = self._once(offered_function, "load plan")(*args, **kwargs)

            def chunk(t):
                name = "load chunks" if self.shared.get("load first chunk") else "load first chunk"
                return self._once(evaluate, name)(t)
            return chunk
        return planned

    def _kernel(self, f, name: str):
        def timed(*args, **kwargs):
            c = time.process_time()
            try:
                return f(*args, **kwargs)
            finally:
                spent = time.process_time() - c
                self.cpu[(self.who, self.phase[-1], name)] += spent
                self.calls[(self.who, self.phase[-1], name)] += 1
                self.kernel_cpu += spent
        return timed


def per_hour_text(count: int, hours: float) -> str:
    """``count`` calls over ``hours`` as calls per hour: whole above 10, else two significant digits (a
    kernel called once a run shows 0.5 over 2 hours, not 0)."""
    rate = count / hours
    return f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--top", type=int, default=8, help="kernels listed per controller and phase")
    args = ap.parse_args()
    bench = sim_speed()
    compiled.set_switch("1")
    if not compiled.enabled():
        raise SystemExit("numba unavailable: nothing compiled to attribute")
    policies = [load_policies([path])[0] for path in (bench.REPO / "policies" / "setpoint-default.yaml",
                                                      bench.REPO / "policies" / "hpa-cpu.yaml")]
    bench.compile_kernels(policies)
    sc = load_scenario_text(bench.scenario_text(args.services, args.hours), "wide-day.yaml")
    attribution = Attribution()
    kernels = attribution.install()
    # what exists before the run (modules, policies, compiled kernels) is frozen out of the
    # collector: a full collection walks it (~65 ms), and over a 2-hour window the one that falls
    # inside the run landed in whichever phase was running (32 ms/h added to one line, at random)
    gc.collect()
    gc.freeze()
    c = time.process_time()
    try:
        runner_module.run_controllers(sc, bench.specs(policies), keep_records=False)
    finally:
        attribution.restore()
    total_ms = (time.process_time() - c) * 1000.0 / args.hours
    per_hour = {k: v * 1000.0 / args.hours for k, v in attribution.cpu.items()}
    shared_ms = total_ms - sum(v for (who, _, _), v in per_hour.items() if who != "shared")
    print(f"{args.services} services, {args.hours:g} simulated hours, {kernels} kernels wrapped: {total_ms:.0f} CPU ms "
          f"per simulated hour = {24.0 * total_ms / 1000.0:.1f} s per simulated day "
          f"({1000.0 / (24.0 * total_ms):.3f} days per CPU-second; budget at 0.5: {BUDGET_MS_PER_HOUR:.0f} ms/h, "
          f"{total_ms / BUDGET_MS_PER_HOUR:.1f}x over)")
    print(f"{'':8} {'phase':6} {'ms/h':>7} {'kernels':>8} {'glue':>7}  top kernels (ms/h, calls/h)")
    kernel_total = 0.0
    for who in [s.name for s in bench.specs(policies)]:
        for phase in ("step", "cycle", "other"):
            rows = {what: v for (w, p, what), v in per_hour.items() if w == who and p == phase}
            glue = rows.pop("glue", 0.0)
            ks = sum(rows.values())
            kernel_total += ks
            top = sorted(rows.items(), key=lambda kv: -kv[1])[:args.top]
            calls = attribution.calls
            listed = ", ".join(f"{n} {v:.1f} ({per_hour_text(calls[(who, phase, n)], args.hours)})" for n, v in top
                               if v >= 0.5)
            print(f"{who:8} {phase:6} {glue + ks:7.1f} {ks:8.1f} {glue:7.1f}  {listed}")
    parts = {name: v * 1000.0 / args.hours for name, v in attribution.shared.items()}
    parts["rest"] = shared_ms - sum(parts.values())
    print(f"{'shared':8} {'':6} {shared_ms:7.1f} {'':>8} {'':>7}  "
          + ", ".join(f"{name} {v:.1f}" for name, v in parts.items()) + " (once for both)")
    print(f"kernels {kernel_total:.0f} ms/h ({kernel_total / total_ms:.0%}), the rest {total_ms - kernel_total:.0f} ms/h: "
          f"with no glue at all, {1000.0 / (24.0 * kernel_total):.3f} days per CPU-second")


if __name__ == "__main__":
    main()
