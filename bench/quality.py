"""Benchmark decision quality: the default policy against the `hpa` preset on real traces.

Same service model and SLO for every controller (the trace scenarios in simulators/scenarios:
NASA July and August 1995, World Cup 1998 tournament, NYC taxi, Twitter AAPL, ELB request
count). Prints per trace and the median: SLO-violation minutes, replica-hours, replica changes,
reversals, and replica-hours over the oracle's; then each target of issue #3 and whether it is
met. The traces are read from $SETPOINT_TRACES_DIR or ../shared/data/traces.

Targets: SLO-violation minutes at most 1/3 of HPA's (median) and never worse on any trace;
replica-hours no higher than HPA's; within 1.25x the oracle's replica-hours; replica changes
at most half of HPA's.
Run: python bench/quality.py [--policy policies/setpoint-default.yaml] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRACES = ["trace-nasa-july", "trace-nasa-august", "trace-wc98-tournament", "trace-nyc-taxi", "trace-twitter-aapl",
          "trace-elb-requests"]
KEYS = ("slo_violation_minutes", "replica_hours", "replica_changes", "reversals")


def score_trace(args: tuple[str, str, str]) -> dict:
    """Scores of policy, hpa and oracle on one trace scenario (runs in a worker process)."""
    name, policy_file, hpa_file = args
    from controller.policy import load_policies
    from simulators.runner import simulate, standard_controllers
    from simulators.scenario import load_scenario

    policy, hpa = load_policies([policy_file])[0], load_policies([hpa_file])[0]
    result, _ = simulate(load_scenario(name), standard_controllers(policy, ["hpa", "oracle"], hpa, 20),
                         keep_records=False)
    return {c: result.runs[c].scores for c in ("policy", "hpa", "oracle")}


def ratio(a: float, b: float) -> float:
    return a / b if b else (0.0 if a == 0 else float("inf"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--hpa-policy", default=str(REPO / "policies" / "hpa-cpu.yaml"))
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    from simulators.load import traces_dir

    if not traces_dir().is_dir():
        sys.exit(f"traces not found in {traces_dir()}: set SETPOINT_TRACES_DIR")
    with ProcessPoolExecutor(args.jobs) as pool:
        scores = dict(zip(TRACES, pool.map(score_trace, [(t, args.policy, args.hpa_policy) for t in TRACES])))

    print(f"policy: {args.policy}\nbaseline: {args.hpa_policy}\n")
    head = f"{'trace':<22} {'controller':<7} " + " ".join(f"{k:>22}" for k in KEYS) + f" {'rh/oracle':>10}"
    print(head)
    rows = []
    for t, s in scores.items():
        for c in ("policy", "hpa", "oracle"):
            rh_oracle = ratio(s[c]["replica_hours"], s["oracle"]["replica_hours"])
            print(f"{t:<22} {c:<7} " + " ".join(f"{s[c][k]:>22g}" for k in KEYS) + f" {rh_oracle:>10.2f}")
        p, h, o = s["policy"], s["hpa"], s["oracle"]
        rows.append(dict(viol=ratio(p["slo_violation_minutes"], h["slo_violation_minutes"]),
                         worse=p["slo_violation_minutes"] > h["slo_violation_minutes"],
                         rh_hpa=ratio(p["replica_hours"], h["replica_hours"]),
                         rh_oracle=ratio(p["replica_hours"], o["replica_hours"]),
                         hpa_rh_oracle=ratio(h["replica_hours"], o["replica_hours"]),
                         changes=ratio(p["replica_changes"], h["replica_changes"])))
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "worse"}
    print("\nmedians over the traces (policy / hpa unless stated):")
    print(f"  SLO-violation minutes      {med['viol']:.2f}x   target <= 0.33  -> {'met' if med['viol'] <= 1 / 3 else 'NOT met'}")
    never_worse = not any(r["worse"] for r in rows)
    print(f"  never worse on any trace   {'yes' if never_worse else 'no'}     target yes   -> {'met' if never_worse else 'NOT met'}")
    print(f"  replica-hours              {med['rh_hpa']:.2f}x   target <= 1.00  -> {'met' if med['rh_hpa'] <= 1 else 'NOT met'}")
    print(f"  replica-hours / oracle     {med['rh_oracle']:.2f}x   target <= 1.25  -> {'met' if med['rh_oracle'] <= 1.25 else 'NOT met'}"
          f"   (hpa: {med['hpa_rh_oracle']:.2f}x)")
    print(f"  replica changes            {med['changes']:.2f}x   target <= 0.50  -> {'met' if med['changes'] <= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
