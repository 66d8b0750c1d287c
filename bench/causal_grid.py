"""A grid of causal scale rules against both of issue #9's NOT-met cost targets at once (median
replica-hours <= 1.25x the oracle's, median replica changes <= 0.5x HPA's), scored on the minutes
it would pay for them, against HPA at equal cost.

bench/teacher_proxy.py screens named rules one by one; this one sweeps a family wide enough to
hold both the policy's shape and a "typical level" controller, on bench/teacher.py's dumps of the
six trace scenarios (offered load per 10 s tick, the oracle's need). The rule, every 15 s:

- value = the load's mean over the last minute (rate[1m]); need = value / T;
- scale-up when need (or the ramp's look-ahead, value + max(slope, 0) x 75 s x L) is above the up
  band (5%), to ceil(max(need, look-ahead) x (1 + B));
- else scale-down to max(the Q-quantile of the need over the last W minutes, the need's max over
  the last M minutes), at least 2, once that removes at least D of the current replicas (>= 1 pod).

Grid: T 85 | 90 | 95 rps per pod (of 100), M 0 | 2 | 5, W 5 | 15 | 30, Q 0.8 | 0.9 | 0.95,
D 0.2 | 1/3, L 0 | 1, B 0 | 0.15: 648 rules. Scored per trace: replica-ticks / the oracle's,
changes / HPA's (the dumps' hpa run), under-provisioned minutes (a wall-clock minute with a tick
whose ready pods, one 30 s start-up after a scale-up, are below the oracle's need: the proxy
for SLO-violation minutes of bench/teacher_proxy.py, which over-counts the simulator's minutes by
~1.1-2x) and HPA's violation minutes at the same replica-hours, interpolated on HPA's sweep as
bench/quality.py prints it (--quality: that bench's output on the bundled inputs; held flat
outside the sweep).

Measured (December 7, bundled inputs): 12 of the 648 rules meet both cost targets (T 90 or 95,
D 1/3, no look-ahead); their summed minutes are 1.22-2.19x HPA's at equal cost (target <= 0.33x)
and each loses five or six of the six traces to HPA at equal cost. Over every rule with median
replica-hours <= 1.32x and changes <= 0.6x, the lowest summed ratio is 1.02x. The policy sits at
0.14x, 1.46x, 0.70x (bench/quality.py). On other windows of the traces (--start-offset 1d for
both benches): 19 rules meet both cost targets, at 1.22-2.50x HPA's minutes at equal cost, the
best near them 1.02x again; the teacher 1.04-1.17x the oracle's; the policy 0.12x, 1.45x, 0.69x. A level held for few
changes at the oracle's cost pays for the load's spikes above it at about HPA's rate or worse:
what would meet all three targets at once is the teacher's knowledge of which spikes come
(bench/teacher.py), not a rule over the past load.

Run: python bench/teacher.py --dump DIR && python bench/quality.py > Q.txt &&
     python bench/causal_grid.py --dumps DIR --quality Q.txt [--show all|near|both]
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

sys.path.insert(0, str(Path(__file__).resolve().parent))
from teacher_proxy import INTERVAL_S, MIN_R, TICK_S, score, trailing_mean  # noqa: E402

CYCLES_PER_MINUTE = int(60.0 / INTERVAL_S)
UP = 0.05
LEAD_S = 75.0  # the default policy's ramp lead: 30 s start-up + 15 s interval + half the 1m window
GRID = {"T": (85.0, 90.0, 95.0), "M": (0, 2, 5), "W": (5, 15, 30), "Q": (0.8, 0.9, 0.95), "D": (0.2, 1 / 3),
        "L": (0.0, 1.0), "B": (0.0, 0.15)}


def hpa_sweeps(quality_text: str) -> dict[str, tuple[float, float, list[tuple[float, float]]]]:
    """Per trace scenario in bench/quality.py's output: (policy replica-hours, their ratio to the
    oracle's, HPA's sweep as (replica-hours, violation minutes) points)."""
    out = {}
    for line in quality_text.splitlines():
        if not line.startswith("trace-"):
            continue
        # ... policy rh, rh/oracle, hpa rh/oracle, changes/hpa, hpa min, then the sweep
        costs = re.search(r"([\d.]+)\s+([\d.]+)x\s+[\d.]+x\s+[\d.]+x\s+[\d.]+\s+\d+%:", line)
        points = [tuple(float(x) for x in m.groups()) for m in re.finditer(r"\d+%:([\d.]+)/([\d.]+)", line)]
        if costs and points:
            out[line.split()[0]] = (float(costs[1]), float(costs[2]), sorted(points))
    return out


def trailing(x: np.ndarray, n: int, q: float) -> np.ndarray:
    """(C,) the q-quantile (1.0: the max) of x over its last n values, this one included."""
    windows = sliding_window_view(np.r_[np.full(max(n, 1) - 1, x[0]), x], max(n, 1))
    return windows.max(axis=1) if q >= 1.0 else np.quantile(windows, q, axis=1)


class Trace:
    """One dump's cycles: the value each 15 s cycle reads and the window statistics the rules share."""

    def __init__(self, d) -> None:
        self.d = d
        ticks = np.arange(d["offered_rps"].size) * TICK_S
        rate = trailing_mean(d["offered_rps"], int(60.0 / TICK_S))
        self.cycle_of_tick = (ticks // INTERVAL_S).astype(np.int64)
        self.value = rate[np.searchsorted(ticks, np.arange(self.cycle_of_tick[-1] + 1) * INTERVAL_S)]
        back = CYCLES_PER_MINUTE  # the value one 1m window ago
        self.slope = np.r_[np.zeros(back), (self.value[back:] - self.value[:-back]) / 60.0]
        self._stats: dict[tuple, np.ndarray] = {}

    def stat(self, target: float, minutes: int, q: float) -> np.ndarray:
        key = (target, minutes, q)
        if key not in self._stats:
            self._stats[key] = trailing(self.value / target, minutes * CYCLES_PER_MINUTE, q)
        return self._stats[key]

    def run(self, T: float, M: int, W: int, Q: float, D: float, L: float, B: float) -> np.ndarray:
        """(ticks,) spec replicas of the rule."""
        need = self.value / T
        ahead = (self.value + np.maximum(self.slope, 0.0) * LEAD_S * L) / T
        up_to = np.ceil(np.maximum(need, ahead) * (1.0 + B) - 1e-9)
        low = np.maximum(self.stat(T, W, Q), self.stat(T, M, 1.0) if M else 0.0)
        down_to = np.maximum(np.ceil(low - 1e-9), MIN_R)
        spec, cur = np.empty(self.value.size), 4.0
        for i in range(self.value.size):
            if max(need[i], ahead[i]) > cur * (1.0 + UP):
                cur = max(cur, up_to[i])
            elif cur - down_to[i] >= max(1.0, np.ceil(cur * D - 1e-9)):
                cur = down_to[i]
            spec[i] = cur
        return spec[self.cycle_of_tick]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dumps", required=True, help="bench/teacher.py --dump's directory (the six trace scenarios)")
    ap.add_argument("--quality", required=True, help="bench/quality.py's output on the same inputs")
    ap.add_argument("--show", choices=("all", "near", "both"), default="near",
                    help="rules to print: every one, those near both cost targets (default), or those meeting both")
    args = ap.parse_args()
    sweeps = hpa_sweeps(Path(args.quality).read_text())
    traces = {f.stem: Trace(np.load(f)) for f in sorted(Path(args.dumps).glob("*.npz")) if f.stem in sweeps}
    if not traces:
        sys.exit(f"no dump in {args.dumps} matches a trace scenario of {args.quality}")
    both, near_best = [], None
    for params in itertools.product(*GRID.values()):
        rows = []
        for name, tr in traces.items():
            ratio, changes, _, minutes = score(tr.run(*params), tr.d)
            policy_rh, policy_ratio, points = sweeps[name]
            hpa_at = float(np.interp(ratio * policy_rh / policy_ratio, *zip(*points)))
            rows.append((ratio, changes / int(np.count_nonzero(np.diff(tr.d["hpa"]))), minutes, hpa_at))
        a = np.array(rows)
        rh, ch, summed = np.median(a[:, 0]), np.median(a[:, 1]), a[:, 2].sum() / max(a[:, 3].sum(), 1e-9)
        lost = int(np.count_nonzero(a[:, 2] > a[:, 3] + 1e-9))
        meets, near = rh <= 1.25 and ch <= 0.5, rh <= 1.32 and ch <= 0.6
        both += [summed] if meets else []
        near_best = min(near_best or summed, summed) if near else near_best
        if args.show == "all" or (args.show == "near" and near) or (args.show == "both" and meets):
            label = " ".join(f"{k}={v:.3g}" for k, v in zip(GRID, params))
            print(f"{label:<44} rh {rh:.2f}x changes {ch:.2f}x minutes/HPA@eq {summed:.2f}x lost {lost}/{len(rows)}",
                  flush=True)
    n = np.prod([len(v) for v in GRID.values()])
    print(f"\n{len(both)} of {n} rules meet both cost targets (median rh <= 1.25x the oracle's, changes <= 0.5x HPA's)"
          + (f"; their summed minutes are {min(both):.2f}-{max(both):.2f}x HPA's at equal cost (target <= 0.33x)"
             if both else ""))
    if near_best is not None:
        print(f"lowest summed minutes / HPA at equal cost with rh <= 1.32x and changes <= 0.6x: {near_best:.2f}x")


if __name__ == "__main__":
    main()
