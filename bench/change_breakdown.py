"""What the replica changes are, per trace scenario: the policy's and HPA's, split by direction and size.

Runs the policy and the ``hpa`` preset on each scenario and, from the spec-replica trajectory
(a change is a tick at which spec replicas changed, bench/quality.py's count), prints for each
controller: scale-ups and scale-downs; each direction by step size as a share of the replicas
before the step (< 10%, 10-25%, 25-50%, >= 50%) and in pods (1, 2, 3+); "chained" scale-ups
(another scale-up within ``--chain`` seconds before: a ramp climbed in several steps) and
"reversed" scale-downs (a scale-up within ``--reversal`` seconds after).

Measured on main (December 2026, bundled inputs; the default policy / the hpa preset): the
policy's changes split about evenly into scale-ups and scale-downs (nasa-july 128/112 of 240,
HPA 194/222 of 416; elb 301/281 of 582, HPA 328/448 of 776), nearly all of one or two pods
(10-25% of the count); on the bursty traces most scale-ups are "chained" (elb 207 of 301,
twitter 46 of 108) and many scale-downs reversed (elb 124 of 281, nasa-august 66 of 119); on
nyc-taxi and wc98 neither (a smooth climb and fall, a pod at a time). Coarser steps
(``scaleDown.minStep``; replica levels a tolerance apart, tried on branch changes2 and not
merged: changes 0.79x -> 0.61x HPA but the equal-cost ratio 0.28x -> 0.38x) cut the one-pod
steps; each pod they hold costs replica-hours, which HPA's frontier turns into fewer violation
minutes at equal cost.

Run: python bench/change_breakdown.py [--policy FILE] [--hpa-policy FILE] [--scenarios a,b]
     [--start-offset 1d] [--peak-scale 1.5] [--startup-delay 90s] [--hpa-cache DIR --no-hpa]
     [--set tolerance_down=0.3] (needs $SETPOINT_TRACES_DIR)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import (TRACES, Variation, add_variation_args,  # noqa: E402
                     baseline_cache_path, cap_scale, variation_of, varied_policy, varied_text)

REPO = Path(__file__).resolve().parents[1]
SHARE_EDGES = (0.10, 0.25, 0.50)


def split_changes(times: np.ndarray, spec: np.ndarray, chain_s: float, reversal_s: float) -> dict:
    """Counts of the changes of one spec-replica series (T,) at times (T,) seconds."""
    step = np.diff(spec)
    at = np.flatnonzero(step != 0)
    before, size = spec[at], step[at]
    share = np.abs(size) / np.maximum(before, 1.0)
    t = times[at + 1]
    out = {}
    for name, sel in (("up", size > 0), ("down", size < 0)):
        s, pods = share[sel], np.abs(size[sel])
        bins = np.digitize(s, SHARE_EDGES)
        out[name] = int(sel.sum())
        out[f"{name}_share"] = [int((bins == b).sum()) for b in range(len(SHARE_EDGES) + 1)]
        out[f"{name}_pods"] = [int((pods == 1).sum()), int((pods == 2).sum()), int((pods >= 3).sum())]
    ups, downs = t[size > 0], t[size < 0]
    out["chained"] = int(sum(((ups < u) & (ups >= u - chain_s)).any() for u in ups))
    out["reversed"] = int(sum(((ups > d) & (ups <= d + reversal_s)).any() for d in downs))
    return out


def run(name: str, policy_file: str, variation: Variation, chain_s: float, reversal_s: float,
        overrides: dict | None = None) -> dict:
    import dataclasses

    from simulators.runner import ControllerSpec, run_controller
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    path = resolve_scenario_path(name)
    text = varied_text(path.read_text(encoding="utf-8"), variation)
    scenario = load_scenario_text(text, str(path), folder=path.parent)
    policy, _ = varied_policy(policy_file, cap_scale(path.read_text(encoding="utf-8"), variation))
    if overrides:  # exploring: PolicyParams fields set directly (e.g. tolerance_down=0.3)
        policy = dataclasses.replace(policy, params=dataclasses.replace(policy.params, **overrides))
    r, _ = run_controller(scenario, ControllerSpec("c", "policy", "", policy=policy), keep_records=False,
                          keep_trajectory=True)
    out = split_changes(scenario.times(), r.trajectory.spec_replicas[:, 0], chain_s, reversal_s)
    out["changes"] = r.scores["replica_changes"]
    out["text"] = text
    out["cap_scale"] = cap_scale(path.read_text(encoding="utf-8"), variation)
    out["violation_min"] = r.scores["slo_violation_minutes"]
    out["replica_hours"] = r.scores["replica_hours"]
    return out


def fmt(r: dict) -> str:
    return (f"{r['changes']:>5} {r['up']:>4} {r['down']:>4}  up%[{' '.join(f'{x:>3}' for x in r['up_share'])}] "
            f"pods[{' '.join(f'{x:>3}' for x in r['up_pods'])}]  down%[{' '.join(f'{x:>3}' for x in r['down_share'])}] "
            f"pods[{' '.join(f'{x:>3}' for x in r['down_pods'])}]  chain {r['chained']:>3} rev {r['reversed']:>3}  "
            f"{r['violation_min']:>5g} min {r['replica_hours']:>7.1f} rh")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--hpa-policy", default=str(REPO / "policies" / "hpa-cpu.yaml"))
    ap.add_argument("--scenarios", default=",".join(TRACES))
    add_variation_args(ap)
    ap.add_argument("--chain", type=float, default=120.0, help="a scale-up within this many s after another")
    ap.add_argument("--reversal", type=float, default=600.0, help="a scale-down undone within this many s")
    ap.add_argument("--no-hpa", action="store_true", help="run the policy only")
    ap.add_argument("--hpa-cache", default=None, metavar="DIR",
                    help="bench/quality.py's cache: HPA's changes and frontier from it (HPA not run), and the "
                         "policy's violation minutes against HPA at equal cost")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=NUMBER",
                    help="override a PolicyParams number of the policy (exploring; repeatable)")
    args = ap.parse_args()

    v = variation_of(args)
    edges = "/".join(f"{e:.0%}" for e in SHARE_EDGES)
    print(f"share edges {edges}; pods 1/2/3+; chain {args.chain:g} s, reversal {args.reversal:g} s")
    print(f"{'scenario':<22} {'ctl':<6} {'chg':>5} {'ups':>4} {'dns':>4}")
    totals = []
    overrides = {k: float(x) for k, x in (item.split("=", 1) for item in args.set)}
    for name in args.scenarios.split(","):
        pol = run(name, args.policy, v, args.chain, args.reversal, overrides)
        print(f"{name:<22} {'policy':<6} {fmt(pol)}", flush=True)
        cached = cached_baseline(args.hpa_cache, pol["text"], args.hpa_policy, pol["cap_scale"])
        if cached is not None:
            from simulators.frontier import equal_cost

            e = equal_cost("policy", pol["replica_hours"], pol["violation_min"], cached["points"])
            hpa_changes = cached["scores"]["hpa"]["replica_changes"]
            totals.append((pol["violation_min"], e.hpa_slo_violation_minutes or 0.0, pol["changes"] / max(hpa_changes, 1)))
            print(f"{'':<22} {'hpa':<6} {hpa_changes:>5} changes: ratio {totals[-1][2]:.2f}x; HPA @ equal cost "
                  f"{e.hpa_slo_violation_minutes:g} min ({e.verdict})", flush=True)
        elif not args.no_hpa:
            hpa = run(name, args.hpa_policy, v, args.chain, args.reversal)
            print(f"{'':<22} {'hpa':<6} {fmt(hpa)}   ratio {pol['changes'] / max(hpa['changes'], 1):.2f}x", flush=True)
    if totals:
        pol, hpa, ch = (np.array(x) for x in zip(*totals))
        print(f"summed violation minutes / HPA @ equal cost: {pol.sum():g} / {hpa.sum():g} = "
              f"{pol.sum() / max(hpa.sum(), 1e-9):.2f}x; median changes / HPA: {np.median(ch):.2f}x")


def cached_baseline(cache_dir: str | None, scenario_text: str, hpa_file: str, scale: float) -> dict | None:
    """HPA's scores and frontier points for this varied scenario from bench/quality.py's cache, if there."""
    import pickle

    from simulators.frontier import DEFAULT_TARGETS_PCT

    path = baseline_cache_path(cache_dir, scenario_text, varied_policy(hpa_file, scale)[1], DEFAULT_TARGETS_PCT)
    return pickle.loads(path.read_bytes()) if path is not None and path.is_file() else None


if __name__ == "__main__":
    main()
