"""Microseconds per call of chosen functions inside bench/sim_speed.py's run, for sizing a cycle's glue.

A tight loop over one call understates what it costs in a run, where the kernels between the
calls evict the caches (a microsecond of Python in a loop is about two in a run), and cProfile
inflates Python about fourfold. This wraps each named function (``module:attribute`` or
``module:Class.method``) with a time.perf_counter accumulator and runs the 1,000-service
scenario (``--controllers``: hpa, policy or both, compiled path) for ``--blocks`` blocks of
``--hours``, printing per block each function's calls and mean microseconds per call (the
first block includes compiling any kernel the checkout's cache lacks: read the later ones).
Times nest: a wrapped caller includes its wrapped callees, and each wrapper adds ~0.2 us to
its callers. A kernel replaced by a wrapper still runs (the wrapper calls the dispatcher).
Run from the checkout to measure (its code comes first on the path, whatever the editable
install points at):
  python bench/call_laps.py --calls controller.runtime.startup_observer:StartupObserver.observe,\\
      controller.core.scaling.startup_compiled:_learn_estimate_kernel [--controllers policy]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code (see the docstring)

import sim_speed  # noqa: E402 (bench/sim_speed.py: this script's directory is on the path)


def wrap(target: str, laps: dict[str, list]) -> None:
    """Replace ``module:attribute`` or ``module:Class.method`` with a wrapper that adds each
    call's count and perf_counter seconds to ``laps[target]``."""
    module_name, _, path = target.partition(":")
    try:
        owner = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        func = getattr(owner, name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SystemExit(f"--calls {target!r}: no such function ({exc}); "
                         "expected module:attribute or module:Class.method") from None
    tally = laps.setdefault(target, [0, 0.0])

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            tally[0] += 1
            tally[1] += time.perf_counter() - t

    setattr(owner, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", required=True, help="comma-separated module:attribute or module:Class.method")
    ap.add_argument("--controllers", default="policy", help="comma-separated: hpa, policy")
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours per block")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--services", type=int, default=1000)
    args = ap.parse_args()
    from controller.core.scaling import compiled  # noqa: PLC0415
    from controller.policy import load_policies  # noqa: PLC0415
    from simulators import runner  # noqa: PLC0415
    from simulators.scenario import load_scenario_text  # noqa: PLC0415

    compiled.set_switch("1")
    policies = [load_policies([sim_speed.REPO / "policies" / name])[0]
                for name in ("setpoint-default.yaml", "hpa-cpu.yaml")]
    sim_speed.compile_kernels(policies)  # the kernels exist as dispatchers before they are wrapped
    laps: dict[str, list] = {}
    for target in args.calls.split(","):
        wrap(target.strip(), laps)
    wanted = args.controllers.split(",")
    specs = [s for s in sim_speed.specs(policies) if s.name in wanted]
    scenario = load_scenario_text(sim_speed.scenario_text(args.services, args.hours), "wide-day.yaml")
    gc.collect()
    gc.freeze()
    for block in range(args.blocks):
        for tally in laps.values():
            tally[:] = [0, 0.0]
        runner.run_controllers(scenario, specs, keep_records=False)
        print(f"block {block + 1} ({args.hours:g} h, {args.controllers}):")
        for target, (calls, seconds) in laps.items():
            mean = seconds / calls * 1e6 if calls else 0.0
            print(f"  {target:>70} {calls:7d} calls {mean:9.2f} us a call", flush=True)


if __name__ == "__main__":
    main()
