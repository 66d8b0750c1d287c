"""A/B of bench/decide.py's "compiled, in place" row between two checkouts, for a noisy host.

Whole runs of bench/decide.py one after the other compare badly on a shared machine: its speed
swings ~2x for seconds to minutes. Here each checkout runs the row's loop (run_in_place: one
workspace per policy, Observation + decide_into + commit + the desired counts copied back, the
10 policies x 1,000 targets) in its own process (PYTHONPATH=checkout, its own code and kernel
cache), the two taking turns block by block (``--block`` cycles each, the order swapped every
round); per block the CPU time of the process. Both see the same host within milliseconds, so
the per-round ratio B/A is steady where the rates are not. Prints each side's best and median
rate (target-decisions/s of CPU time) and the median and quartiles of the ratio (< 1: B is
faster). A checkout against itself gives ~0.98-1.0.
Run: python bench/decide_ab.py --base /path/to/base [--branch .] [--rounds 200] [--block 5] [--policies 3,9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

HERE = Path(__file__).resolve()


def child(checkout: Path, only: str = "") -> None:
    """Serve blocks: read a cycle count per line, run that many cycles, answer the CPU seconds.
    ``only``: comma-separated indices of bench/decide.py's policies to run (default: all)."""
    import importlib.util  # noqa: PLC0415 (the child loads the checkout's bench/decide.py by path)

    import numpy as np  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("checkout_bench_decide", checkout / "bench" / "decide.py")
    bd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bd)
    from controller.core.scaling.decide import Observation  # noqa: PLC0415
    from controller.core.scaling.workspace import DecisionWorkspace, decide_into  # noqa: PLC0415

    cycles, n = 100, bd.TARGETS_PER_POLICY
    policies = bd.make_policies()
    inputs = [bd.make_inputs(cycles, n, len(p.metrics), seed=j) for j, p in enumerate(policies)]
    if only:  # a subset, each policy with its own inputs as in the whole run
        keep = [int(k) for k in only.split(",")]
        policies, inputs = [policies[k] for k in keep], [inputs[k] for k in keep]
    bd.run_in_place(policies, inputs, 3)  # compiles, or loads the kernels from the disk cache
    present = [np.ones(x.shape[1:], bool) for x in inputs]
    age = [np.zeros(x.shape[1:]) for x in inputs]
    spaces, current, c, now = None, None, cycles, 1_700_000_000.0
    print("ready", flush=True)
    for line in sys.stdin:
        if c == cycles:  # as bench/decide.py: 100 cycles from empty workspaces
            spaces = [DecisionWorkspace.empty(p, n) for p in policies]
            current = [np.full(n, 10.0) for _ in policies]
            c = 0
        todo, done = int(line), 0
        cpu = time.process_time()
        # the cycle loop is bench/decide.py's run_batched loop, written out rather than imported: the
        # base checkout's bench/decide.py may predate any helper this one could share
        while done < todo and c < cycles:
            for j, p in enumerate(policies):
                cur = current[j]
                ws = decide_into(p, spaces[j], Observation(cur, cur, cur, inputs[j][c], present[j], age[j]), now)
                ws.commit()
                np.copyto(cur, ws.desired)
            now += 15.0
            c += 1
            done += 1
        print(f"{(time.process_time() - cpu) / done} {len(policies) * n}", flush=True)  # per cycle


def start(checkout: Path, *child_args: str, script: Path = HERE) -> subprocess.Popen:
    """``script --child checkout *child_args`` in its own process on ``checkout``'s code
    (PYTHONPATH), talking through its stdin and stdout, once it says it is ready (also
    bench/sim_ab.py's children)."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    proc = subprocess.Popen([sys.executable, str(script), "--child", str(checkout), *child_args], cwd=checkout,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{checkout}: the child did not start")
    return proc


def ab_arguments(doc: str, rounds: int) -> argparse.ArgumentParser:
    """The options of an A/B bench (this one, bench/sim_ab.py): the two checkouts, the rounds,
    the hidden --child; described by the first line of ``doc``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--base", type=Path, help="checkout A")
    ap.add_argument("--branch", type=Path, default=HERE.parents[1], help="checkout B (default: this one)")
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return ap


def main() -> None:
    ap = ab_arguments(__doc__, 200)
    ap.add_argument("--block", type=int, default=5, help="cycles per block")
    ap.add_argument("--policies", default="", help="comma-separated indices of bench/decide.py's policies (default: "
                                                   "all ten; e.g. 3: the window maximum alone)")
    args = ap.parse_args()
    if args.child:
        child(args.child.resolve(), args.policies)
        return
    if args.base is None:
        ap.error("--base is required")
    sides = {side: start(checkout.resolve(), "--policies", args.policies)
             for side, checkout in (("A", args.base), ("B", args.branch))}
    per_cycle: dict[str, list[float]] = {"A": [], "B": []}  # CPU seconds per cycle, block by block
    targets = 0  # per cycle
    for r in range(args.rounds):
        for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
            proc = sides[side]
            proc.stdin.write(f"{args.block}\n")
            cpu_s, decided = proc.stdout.readline().split()
            per_cycle[side].append(float(cpu_s))
            targets = int(decided)
    for proc in sides.values():
        proc.stdin.close()
        proc.wait()
    a, b = per_cycle["A"], per_cycle["B"]
    for side, name in (("A", args.base), ("B", args.branch)):
        s = per_cycle[side]
        print(f"{side} {name}: best {targets / min(s):,.0f}, median {targets / statistics.median(s):,.0f} "
              f"target-decisions/s of CPU time ({len(s)} blocks of {args.block} cycles)")
    ratio = [y / x for x, y in zip(a, b)]
    q = statistics.quantiles(ratio, n=4)
    print(f"CPU time B/A per round: median {statistics.median(ratio):.3f} (quartiles {q[0]:.3f} .. {q[2]:.3f}), "
          f"total {sum(b) / sum(a):.3f}")


if __name__ == "__main__":
    main()
