"""The ``hpa`` preset's one-call kernel (hpa_decide._decide_padded_kernel) and its parts, on a real cycle.

Runs bench/sim_speed.py's scenario (1,000 services, the ``hpa`` preset alone, compiled) for
``--hours``, keeps a copy of the arguments of the one call at cycle ``--cycle``, then times on
them: the whole call, and the stages it runs one after the other (the signal kernel, the
calculator on the pods where the cluster keeps them, the normalize stage and, inside it, the
scan of the recommendation history), and the simulator's read of the workload means
(pod_listing._padded_means_kernel, a pass of its own before the call). Each hot (the arrays
in cache: the call repeated) and cold (8 MiB written between calls, as a cycle meets them after
the engine's ticks; the write alone is timed and subtracted). CPU microseconds a call
(time.process_time), minimum and median of 7 blocks; the history is updated in place as a live
cycle does (the figures do not depend on its values). Run: python bench/hpa_kernel_parts.py
[--hours 1] [--cycle 200] [--reps 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code (see bench/sim_breakdown.py)

from controller.core.scaling import compiled  # noqa: E402

HERE = Path(__file__).resolve().parent
_FLUSH = np.zeros(8 * 1024 * 1024 // 8)  # 8 MiB: more than the caches a cycle's arrays could stay in


def captured_call(hours: float, cycle: int) -> list:
    """A copy of the one call's arguments at the given cycle of the hpa preset's run."""
    from controller.core.scaling import hpa_decide  # noqa: PLC0415
    from controller.policy import load_policies  # noqa: PLC0415
    from simulators import runner  # noqa: PLC0415
    from simulators.scenario import load_scenario_text  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("sim_speed", HERE / "sim_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    policies = [load_policies([bench.REPO / "policies" / name])[0] for name in ("setpoint-default.yaml", "hpa-cpu.yaml")]
    bench.compile_kernels(policies)
    specs = [s for s in bench.specs(policies) if s.name == "hpa"]
    kernel, calls, kept = hpa_decide._decide_padded_kernel, [0], []

    def keeping(*args):
        calls[0] += 1
        if calls[0] == cycle:
            kept.extend(a.copy() if isinstance(a, np.ndarray) else a for a in args)
        return kernel(*args)

    hpa_decide._decide_padded_kernel = keeping
    try:
        runner.run_controllers(load_scenario_text(bench.scenario_text(1000, hours), "wide-day.yaml"), specs,
                               keep_records=False)
    finally:
        hpa_decide._decide_padded_kernel = kernel
    if not kept:
        raise SystemExit(f"the run had {calls[0]} one-call cycles, fewer than --cycle {cycle}")
    return kept


def per_call_us(call, reps: int, cold: bool) -> list[float]:
    """CPU us a call of ``call`` over 7 blocks of ``reps`` (cold: the caches flushed before each)."""
    blocks = []
    for _ in range(7):
        c = time.process_time()
        for _ in range(reps):
            if cold:
                _FLUSH[::8] += 1.0
            call()
        blocks.append((time.process_time() - c) / reps * 1e6)
    return blocks


def parts(a: list) -> dict:
    """The whole call and its stages on the captured arguments ``a`` (the kernel's order)."""
    from controller.core.scaling import hpa_compiled, hpa_decide, hpa_normalize  # noqa: PLC0415
    from simulators.simcluster import pod_listing  # noqa: PLC0415

    current = a[34].astype(np.int64)
    cut = a[43] - a[46]  # now - the scale-down window
    present = np.ones(current.shape[0], np.bool_)
    return {
        "one call": lambda: hpa_decide._decide_padded_kernel(*a),
        " signal": lambda: hpa_decide._one_metric_signal(*a[0:13]),
        " calculator (padded pods)": lambda: hpa_compiled._padded_utilization_kernel(*a[13:28], current, *a[28:34]),
        " normalize": lambda: hpa_normalize._normalize_legacy_kernel(*a[34:-1]),  # the last: the calculator's outputs
        "  its history scan": lambda: hpa_normalize._window_scan(a[39], a[40], cut, cut),
        "workload means (read stage)": lambda: pod_listing._padded_means_kernel(a[13], a[14], a[15], a[16], present,
                                                                                a[22]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--cycle", type=int, default=200)
    ap.add_argument("--reps", type=int, default=1000)
    args = ap.parse_args()
    compiled.set_switch("1")
    a = captured_call(args.hours, args.cycle)
    flush = per_call_us(lambda: None, args.reps, cold=True)
    pods = int(np.count_nonzero(a[16][a[13]] != a[19]))
    print(f"cycle {args.cycle}: {a[34].shape[0]} targets, {pods} pods, history {a[39].shape[0]} slots; "
          "CPU us a call, min / median of 7 blocks")
    for name, call in parts(a).items():
        call()  # compiled or loaded before the timing
        hot = per_call_us(call, args.reps, cold=False)
        cold = [c - f for c, f in zip(per_call_us(call, args.reps, cold=True), flush)]
        print(f"  {name:<30} hot {min(hot):6.1f} / {statistics.median(hot):6.1f}   "
              f"cold {min(cold):6.1f} / {statistics.median(cold):6.1f}")


if __name__ == "__main__":
    main()
