"""Where the policy's replica-hours above the oracle's come from, per trace scenario.

Runs the policy (and the oracle) on each scenario and splits, tick by tick, the policy's spec
replicas above the oracle's plan into layers, from the bottom up (replica-hours each; together
they are the policy's replica-hours above the oracle's; hours below it are shown apart):

- need:          ceil(rate / target) over the oracle's fewest pods that meet the SLO (the
                 target's headroom, and timing: the oracle sizes on the future load);
- band:          the down tolerance kept ``current`` although the need was lower;
- ramp:          the ramp's look-ahead of this cycle above that;
- window(obs):   the scale-down window holding the highest proposal from the observed value
                 (the need with its band, no look-ahead) of the window;
- window(ahead): the window holding a look-ahead (ramp) proposal of an earlier cycle;
- other:         rate limits, min replicas, start-up (the rest).

Also counts scale-ups and scale-downs, scale-downs undone within ``--reversal`` seconds, and
the oracle's changes. Measured on main (December 2026; the default policy, 15-minute window):
on the bursty traces (NASA, ELB, Twitter) the window holds 70-80% of the excess: on the NASA
traces about half of that is look-ahead (ramp) spikes held for the window, on ELB and Twitter
the observed proposals. The held spikes are where the bursts come back (counting them only in their own cycle cut replica-hours by a fifth on the NASA traces but
more than tripled violation minutes and changes; see the reverted commit 43ce1c9).

Run: python bench/scaledown_breakdown.py [--policy FILE] [--scenarios a,b] [--start-offset 1d]
     [--peak-scale 1.5] [--startup-delay 90s] (needs $SETPOINT_TRACES_DIR for the traces)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import TRACES, Variation, add_variation_args, variation_of, varied_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

REPO = Path(__file__).resolve().parents[1]


def window_max(times: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """(C,) at each cycle, the highest of ``values`` over the cycles with age < window_s (itself included)."""
    out = np.empty_like(values)
    start = 0
    for k in range(len(values)):
        while times[k] - times[start] >= window_s:
            start += 1
        out[k] = values[start:k + 1].max()
    return out


def breakdown(name: str, policy_file: str, variation: Variation, reversal_s: float) -> dict:
    from controller.core.scaling.propose import propose
    from controller.policy import load_policies
    from simulators.runner import ControllerSpec, run_controller
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    path = resolve_scenario_path(name)
    scenario = load_scenario_text(varied_text(path.read_text(encoding="utf-8"), variation), str(path), folder=path.parent)
    policy = load_policies([policy_file])[0]
    target = float(policy.params.metric_targets[0])
    cycles = []

    def on_cycle(res):
        d = res.decision
        if d is None:
            return
        cycles.append((res.now, d.current[0], d.smoothed[0, 0], d.norm.proposal[0], d.norm.combined[0],
                       d.norm.stabilized[0], d.norm.desired[0], d.ready[0]))

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
    p = policy.params
    # per cycle: the proposal from the observed value (the band included, no look-ahead) and the
    # highest of them over the scale-down window before each cycle
    c_cur, c_rate, c_ready = c[:, 1], c[:, 2], c[:, 7]
    observed, valid = propose(p.metric_kinds[:1], p.metric_targets[:1], c_rate[:, None], c_cur, c_ready, c_cur,
                              p.tolerance_up, p.tolerance_down)
    observed = np.where(valid[:, 0], observed[:, 0], c_cur)
    held_obs = window_max(c[:, 0], observed, p.scale_down.window_s)
    cur, rate, comb, stab = c[idx, 1], c[idx, 2], c[idx, 4], c[idx, 5]
    obs_now, obs_held = observed[idx], held_obs[idx]
    comb = np.where(np.isfinite(comb), comb, cur)
    need = np.maximum(np.ceil(rate / target), p.min_replicas)
    need = np.where(np.isfinite(need), need, cur)
    dt_h = scenario.tick_s / 3600.0
    above = np.maximum(spec - ospec, 0.0)
    levels = [ospec]  # each layer is the part of spec between two successive levels
    for top in (need, np.maximum(need, obs_now), np.maximum(obs_now, comb), np.maximum(comb, obs_held), stab, spec):
        levels.append(np.maximum(levels[-1], np.minimum(top, spec)))
    names = ["need", "band", "ramp", "window(obs)", "window(ahead)", "other"]
    layers = {k: levels[n + 1] - levels[n] for n, k in enumerate(names)}
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
    add_variation_args(ap)
    ap.add_argument("--reversal", type=float, default=600.0, help="a scale-down undone within this many s")
    args = ap.parse_args()

    v = variation_of(args)
    keys = ["need", "band", "ramp", "window(obs)", "window(ahead)", "other"]
    print(f"{'scenario':<22} {'pol rh':>7} {'orc rh':>7} {'ratio':>6} {'below':>6} " + " ".join(f"{k:>13}" for k in keys)
          + f" {'ups':>5} {'downs':>5} {'rev':>5} {'orc ch':>6} {'viol':>5}")
    for name in args.scenarios.split(","):
        r = breakdown(name, args.policy, v, args.reversal)
        print(f"{name:<22} {r['policy_rh']:>7.1f} {r['oracle_rh']:>7.1f} {r['policy_rh'] / r['oracle_rh']:>6.2f} "
              f"{r['below_rh']:>6.1f} " + " ".join(f"{r[k]:>7.1f} ({r[k] / max(r['above_rh'], 1e-9):>3.0%})" for k in keys)
              + f" {r['ups']:>5} {r['downs']:>5} {r['reversed']:>5} {r['oracle_changes']:>6} {r['violation_min']:>5g}", flush=True)


if __name__ == "__main__":
    main()
