"""Where a policy's replica-hours above the oracle's come from, per scenario (issue #9).

Runs the policy and the oracle on each scenario (same seed and service model) and splits the
policy's replica-hours into stacked counterfactual layers, each the max of the one below and
one more rule of a rate-sized policy, all computed from the offered load:

1. oracle: the fewest ready pods that meet the SLO, one start-up ahead (simulators/oracle.py);
2. + min replicas: the policy's floor;
3. + target headroom: ceil(load / target) over the same look-ahead as the oracle (what a
   perfect-foresight policy sized at ``target`` per replica would run);
4. + scale-down window: the highest of layer 3 over the trailing stabilization window;
5. actual: the rest (tolerance band, ramp overshoot, reaction lag; negative when the policy
   ran fewer pods than layer 4, e.g. late on a rise).

Each layer's excess is split by phase of the load: rising / falling (the oracle's need 5
minutes later above / below now) or steady. The layers are stacked, so a layer's share depends
on the ones below it (a window holds the target's headroom too), and they describe where the
pods are, not what removing a rule would save (the rules also prevent violations): to price a
rule, run a variant policy through this script or bench/quality.py. Run:

  SETPOINT_TRACES_DIR=... python bench/sizing_gap.py --scenarios trace-nasa-july,... [--policy FILE]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

REPO = Path(__file__).resolve().parents[1]
TRACES = ["trace-nasa-july", "trace-nasa-august", "trace-wc98-tournament", "trace-nyc-taxi", "trace-twitter-aapl",
          "trace-elb-requests"]
LAYERS = ("oracle", "min replicas", "target headroom", "down window", "rest")


def trailing_max(x: np.ndarray, n: int) -> np.ndarray:
    """(T,) max of x over this tick and the n - 1 before it."""
    from numpy.lib.stride_tricks import sliding_window_view
    padded = np.concatenate([np.full(n - 1, -np.inf), x])
    return sliding_window_view(padded, n).max(axis=1)


def layers(load: np.ndarray, need: np.ndarray, actual: np.ndarray, target: float, min_replicas: int,
           max_replicas: int, lead: int, window: int) -> dict[str, np.ndarray]:
    """(T,) replicas per layer (see the module docstring), stacked: they sum to ``actual``.

    load: offered rps (T,); need: the oracle's plan (T,); actual: the policy's spec replicas (T,);
    target: the policy's rate per replica; lead: the oracle's look-ahead in ticks; window: the
    scale-down window in ticks. Every layer but the last is >= 0.
    """
    from simulators.oracle import future_max

    floor = np.maximum(need, min_replicas)
    sized = np.maximum(floor, np.minimum(future_max(np.ceil(load / target)[:, None], lead)[:, 0], max_replicas))
    held = trailing_max(sized, window)
    return dict(zip(LAYERS, (need, floor - need, sized - floor, held - sized, actual - held)))


def phases(need: np.ndarray, ahead: int) -> np.ndarray:
    """(T,) 0 rising / 1 falling / 2 steady: the need ``ahead`` ticks later above / below / at now."""
    later = np.concatenate([need[ahead:], np.full(min(ahead, need.size), need[-1] if need.size else 0.0)])
    return np.where(later > need, 0, np.where(later < need, 1, 2))


def analyse(args: tuple[str, str]) -> dict:
    name, policy_file = args
    from controller.policy import load_policies
    from simulators.oracle import future_max, lead_ticks, required_replicas
    from simulators.runner import run_controller, standard_controllers
    from simulators.scenario import load_scenario

    began = time.monotonic()
    scenario = load_scenario(name)
    policy = load_policies([policy_file])[0]
    specs = {s.name: s for s in standard_controllers(policy, ["oracle"], None, 20)}
    runs = {n: run_controller(scenario, specs[n], keep_records=False, keep_trajectory=True)[0] for n in ("policy", "oracle")}
    tick = scenario.tick_s
    services = scenario.cluster.services
    load = runs["oracle"].trajectory.offered_rps
    lead = lead_ticks(services, tick)
    need = future_max(required_replicas(load, services, scenario.slo), lead)[:, 0]
    p = policy.params
    actual = runs["policy"].trajectory.spec_replicas[:, 0].astype(float)
    oracle_actual = runs["oracle"].trajectory.spec_replicas[:, 0].astype(float)
    stacked = layers(load[:, 0], need, actual, p.metrics[0].target, p.min_replicas, p.max_replicas, lead,
                     max(1, int(round(p.scale_down.window_s / tick))))
    phase = phases(need, int(round(300 / tick)))
    h = tick / 3600.0
    return {"name": name, "seconds": time.monotonic() - began, "oracle_rh": float(oracle_actual.sum() * h),
            "policy_rh": float(actual.sum() * h), "need_rh": float(need.sum() * h),
            "layers": {k: [float(v[phase == ph].sum() * h) for ph in range(3)] for k, v in stacked.items()},
            "violation_min": runs["policy"].scores["slo_violation_minutes"],
            "util_policy": float(load.sum() / (actual * services[0].capacity_rps).sum()),
            "util_oracle": float(load.sum() / (oracle_actual * services[0].capacity_rps).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--scenarios", default=",".join(TRACES))
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(analyse, [(n, args.policy) for n in names]))
    print(f"policy: {args.policy}; replica-hours by layer (rising / falling / steady load)\n")
    print(f"{'scenario':<22} {'oracle':>7} {'policy':>7} {'ratio':>6} {'viol':>5} {'util p/o':>9}  "
          + "  ".join(f"{k:>22}" for k in LAYERS[1:]))
    for r in results:
        cells = "  ".join(f"{sum(v):6.1f} ({v[0]:4.1f}/{v[1]:4.1f}/{v[2]:5.1f})" for k, v in r["layers"].items()
                          if k != "oracle")
        print(f"{r['name']:<22} {r['oracle_rh']:7.1f} {r['policy_rh']:7.1f} {r['policy_rh'] / r['oracle_rh']:6.2f} "
              f"{r['violation_min']:5g} {r['util_policy']:4.2f}/{r['util_oracle']:4.2f}  {cells}")
    print("\n(the oracle column is its simulated run; layer 1 is its plan from the load, which equals it up to the "
          "first tick)")


if __name__ == "__main__":
    main()
