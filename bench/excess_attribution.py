"""Where the policy's replica-hours above the oracle's go, from the policy's own decisions (issue #9).

bench/sizing_gap.py stacks counterfactual layers computed from the load; this one reads what
the policy decided each cycle (the same run bench/quality.py scores) and splits its spec
replicas D above the oracle's O (its simulated run, same seed and inputs) into:

- sizing:  need - O, with need = ceil(observed rate / target) (at least min replicas; the rate
           as ``headroom: pooled`` sizes it, core/scaling/headroom.py): the target's headroom
           against the oracle's exact sizing, minus the oracle's look-ahead
           (negative where the oracle already holds pods for load a start-up ahead);
- ramp:    the ramp's proposal above need (the lead, while the rate rises);
- band:    D above max(need, ramp) on cycles that kept ``current`` inside the tolerance band
           (reason WithinTolerance: the rate between (1 - down) and (1 + up) of target x current);
- window:  the same on cycles the scale-down window or minStep held (reason StabilizedDown);
- other:   the rest (scale-ups under way, limits; negative when D lags below need).

The five add up to D - O per cycle; each is summed over cycles x interval into replica-hours.
Run: python bench/excess_attribution.py [--policy FILE] [--scenarios a,b] [--start-offset 1d
     --peak-scale 1.5 --startup-delay 90s] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import (TRACES, Variation, add_variation_args, cap_scale, scenario_names,  # noqa: E402
                     variation_of, varied_policy, varied_text)

REPO = Path(__file__).resolve().parents[1]
PARTS = ("sizing", "ramp", "band", "window", "other")


def attribute(args: tuple[str, str, Variation]) -> dict:
    name, policy_file, variation = args
    from controller.core.scaling.headroom import pooled_values
    from controller.model import Reason
    from simulators.runner import run_controller, standard_controllers
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    path = resolve_scenario_path(name)
    scenario = load_scenario_text(varied_text(path.read_text(encoding="utf-8"), variation), str(path), folder=path.parent)
    policy, _ = varied_policy(policy_file, cap_scale(path.read_text(encoding="utf-8"), variation))
    p = policy.params
    specs = {s.name: s for s in standard_controllers(policy, ["oracle"], None, 20)}
    rows: list[tuple[float, float, float, float, int]] = []

    def on_cycle(result) -> None:
        d = result.decision
        if d is None or d.current.shape[0] != 1:
            return
        j = p.ramp_metrics[0] if p.ramp_metrics else 0
        value = float(pooled_values(p, d.signal.values, d.ready)[0, j])  # the load sized (pooled: below the rate)
        need = max(float(p.min_replicas), float(np.ceil(value / p.metrics[j].target))) if np.isfinite(value) else np.nan
        # the ramp's proposal as taken: a step ramp.minStep held is not in the metric's proposal
        ramp = np.nan if d.ramps is None else float(np.fmin(d.ramps.proposal[0, j], d.proposals[0, j]))
        rows.append((result.now, need, ramp, float(d.norm.desired[0]), int(d.norm.reason[0])))

    oracle, _ = run_controller(scenario, specs["oracle"], keep_records=False, keep_trajectory=True)
    run, _ = run_controller(scenario, specs["policy"], keep_records=False, on_cycle=on_cycle)
    times = scenario.times()
    o_spec = oracle.trajectory.spec_replicas[:, 0].astype(float)
    t, need, ramp, desired, reason = (np.array(x) for x in zip(*rows))
    o = o_spec[np.clip(np.searchsorted(times, t, side="right") - 1, 0, times.size - 1)]
    need = np.where(np.isfinite(need), need, desired)
    sized = np.fmax(need, ramp)
    above = desired - sized
    band = np.where(reason == int(Reason.WITHIN_TOLERANCE), above, 0.0)
    window = np.where(reason == int(Reason.STABILIZED_DOWN), above, 0.0)
    parts = {"sizing": need - o, "ramp": sized - need, "band": band, "window": window,
             "other": above - band - window}
    h = np.diff(np.append(t, t[-1] + p.interval_s)) / 3600.0
    return {"name": name, "policy_rh": run.scores["replica_hours"], "oracle_rh": oracle.scores["replica_hours"],
            "parts": {k: float((v * h).sum()) for k, v in parts.items()},
            "cycles": {k: int(((v != 0) & (v > 0)).sum()) for k, v in (("band", band), ("window", window))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--scenarios", default=",".join(TRACES))
    add_variation_args(ap)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    v = variation_of(args)
    names = scenario_names(args.scenarios)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(attribute, [(n, args.policy, v) for n in names]))
    print(f"policy: {args.policy}; inputs: {v.describe()}; replica-hours above the oracle's, by cause\n")
    print(f"{'scenario':<22} {'oracle':>7} {'policy':>7} {'ratio':>6}  " + "  ".join(f"{k:>7}" for k in PARTS)
          + "   (share of the excess)")
    for r in results:
        excess = r["policy_rh"] - r["oracle_rh"]
        cells = "  ".join(f"{r['parts'][k]:7.1f}" for k in PARTS)
        shares = " ".join(f"{r['parts'][k] / excess:+.0%}" if excess else "-" for k in PARTS)
        print(f"{r['name']:<22} {r['oracle_rh']:7.1f} {r['policy_rh']:7.1f} {r['policy_rh'] / r['oracle_rh']:6.2f}  "
              f"{cells}   ({shares})")
    print("\n(the parts sum the desired counts per cycle; the rh columns are the runs' scores, which count pods "
          "as the simulator does: the two totals differ by start-up and termination timing)")


if __name__ == "__main__":
    main()
