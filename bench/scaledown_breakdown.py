"""Where the policy's replica-hours above the oracle's come from, per trace scenario.

Runs the policy (and the oracle) on each scenario and splits, tick by tick, the policy's spec
replicas above the oracle's plan into layers (replica-hours each; they add up to policy -
oracle where the policy is above; ticks below the oracle are reported apart):

- need:        ceil(rate / target) vs the oracle's fewest pods meeting the SLO (target headroom
               and timing: the oracle sizes on the future load, the policy on the past minute);
- ramp:        the ramp's lead above the plain need;
- tolerance:   the down band kept ``current`` although the need was lower;
- window:      stabilization held the highest recommendation of the window;
- other:       rate limits, min replicas, the up-side of the (past) cycles not yet undone.

Also counts scale-ups and scale-downs, and scale-downs undone within ``--reversal`` seconds.
Run: python bench/scaledown_breakdown.py [--policy FILE] [--scenarios a,b] [--start-offset 1d] ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import TRACES, Variation, varied_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def breakdown(name: str, policy_file: str, variation: Variation, reversal_s: float) -> dict:
    from controller.policy import load_policies
    from simulators.runner import run_controller, ControllerSpec
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    path = resolve_scenario_path(name)
    scenario = load_scenario_text(varied_text(path.read_text(encoding="utf-8"), variation), str(path))
    policy = load_policies([policy_file])[0]
    target = float(policy.params.metric_targets[0])
    cycles = []

    def on_cycle(res):
        d = res.decision
        if d is None:
            return
        cycles.append((res.now, d.current[0], d.smoothed[0, 0], d.norm.proposal[0], d.norm.combined[0],
                       d.norm.stabilized[0], d.norm.desired[0]))

    pol, _ = run_controller(scenario, ControllerSpec("policy", "policy", "", policy=policy), keep_records=False,
                            keep_trajectory=True, on_cycle=on_cycle)
    orc, _ = run_controller(scenario, ControllerSpec("oracle", "oracle", ""), keep_records=False, keep_trajectory=True)
    t = scenario.times()
    spec, ospec = pol.trajectory.spec_replicas[:, 0], orc.trajectory.spec_replicas[:, 0]
    c = np.array(cycles)
    # the cycle in force at each tick
    idx = np.searchsorted(c[:, 0], t, side="right") - 1
    ok = idx >= 0
    idx = np.maximum(idx, 0)
    cur, rate, prop, comb, stab, des = (c[idx, k] for k in range(1, 7))
    need = np.maximum(np.ceil(rate / target), policy.params.min_replicas)
    plain = np.where(rate / (target * cur) < 1.0, np.minimum(need, cur), np.maximum(need, cur))  # no band
    plain = np.where(np.isfinite(rate), plain, cur)
    dt_h = scenario.tick_s / 3600.0
    above = np.maximum(spec - ospec, 0.0)
    # layers from the bottom: oracle -> need -> ramp (combined vs proposal w/o ramp is not kept:
    # use combined - max(need, band)) -> band -> window -> rest
    lvl0 = ospec
    lvl_need = np.maximum(lvl0, np.minimum(need, spec))
    band = np.where(prop >= cur, cur, prop)  # what the band kept (prop == cur in band)
    lvl_band = np.maximum(lvl_need, np.minimum(np.maximum(need, np.where(prop == cur, cur, need)), spec))
    lvl_comb = np.maximum(lvl_band, np.minimum(comb, spec))
    lvl_stab = np.maximum(lvl_comb, np.minimum(stab, spec))
    lvl_all = np.maximum(lvl_stab, spec)
    layers = {"need": lvl_need - lvl0, "band": lvl_band - lvl_need, "ramp/combined": lvl_comb - lvl_band,
              "window": lvl_stab - lvl_comb, "other": lvl_all - lvl_stab}
    out = {k: float((v * ok).sum() * dt_h) for k, v in layers.items()}
    ch = np.diff(spec)
    ups, downs = np.flatnonzero(ch > 0), np.flatnonzero(ch < 0)
    rev = 0
    for k in downs:
        later = ups[(ups > k) & (t[ups] - t[k] <= reversal_s)]
        rev += bool(later.size)
    out.update(policy_rh=float(spec.sum() * dt_h), oracle_rh=float(ospec.sum() * dt_h),
               above_rh=float(above.sum() * dt_h), below_rh=float(np.maximum(ospec - spec, 0).sum() * dt_h),
               ups=len(ups), downs=len(downs), reversed=rev, oracle_changes=int((np.diff(ospec) != 0).sum()),
               violation_min=pol.scores["slo_violation_minutes"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--scenarios", default=",".join(TRACES))
    ap.add_argument("--start-offset", default="0s")
    ap.add_argument("--peak-scale", type=float, default=1.0)
    ap.add_argument("--startup-delay", default=None)
    ap.add_argument("--reversal", type=float, default=600.0, help="a scale-down undone within this many s")
    args = ap.parse_args()
    from controller.policy.durations import parse_duration

    v = Variation(parse_duration(args.start_offset), args.peak_scale,
                  parse_duration(args.startup_delay) if args.startup_delay else None)
    keys = ["need", "band", "ramp/combined", "window", "other"]
    print(f"{'scenario':<22} {'pol rh':>7} {'orc rh':>7} {'ratio':>6} {'below':>6} " + " ".join(f"{k:>13}" for k in keys)
          + f" {'ups':>5} {'downs':>5} {'rev':>5} {'orc ch':>6} {'viol':>5}")
    for name in args.scenarios.split(","):
        r = breakdown(name, args.policy, v, args.reversal)
        print(f"{name:<22} {r['policy_rh']:>7.1f} {r['oracle_rh']:>7.1f} {r['policy_rh'] / r['oracle_rh']:>6.2f} "
              f"{r['below_rh']:>6.1f} " + " ".join(f"{r[k]:>7.1f} ({r[k] / max(r['above_rh'], 1e-9):>3.0%})" for k in keys)
              + f" {r['ups']:>5} {r['downs']:>5} {r['reversed']:>5} {r['oracle_changes']:>6} {r['violation_min']:>5g}", flush=True)


if __name__ == "__main__":
    main()
