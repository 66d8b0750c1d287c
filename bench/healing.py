"""Benchmark self-healing on the simulated cluster (15 s interval, checks with `for: 30s`).

- bad rollout (error ratio x10): time from the fault to the rollback done and the SLO holding
  again (median over seeds), and false rollbacks over healthy but noisy rollouts;
- memory leak: SLO-violation minutes with and without healing, restarts used;
- systemic overload: restarts (should be 0) and the scale-up instead.
Targets (issue #5): median <= 75 s (Flagger's default analysis takes ~300 s); <= 1% false
rollbacks over 200 healthy noisy rollouts; leak pods restarted before the SLO breaks, within
budget; zero restarts under systemic overload.
Run: python bench/healing.py [--seeds 20] [--healthy 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from controller.policy import load_policies
from simulators.runner import ControllerSpec, run_controller
from simulators.scenario import load_scenario, load_scenario_text

REPO = Path(__file__).resolve().parents[1]
ROLLOUT = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: rollout}}
spec:
  duration: 40m
  tick: 5s
  seed: {seed}
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 10
      maxPods: 40
      errorRatio: 0.002
      load:
        - constant: {{rps: 600}}
        - noise: {{sigma: {sigma}, every: 30s}}
  faults:
    - {{name: release, kind: bad-rollout, at: 20m, services: [web], errorRatioMultiplier: {multiplier}}}
"""


def run(policy, text_or_name: str, seed: int | None = None):
    sc = load_scenario_text(text_or_name, "bench.yaml") if "\n" in text_or_name else load_scenario(text_or_name, seed)
    r, _ = run_controller(sc, ControllerSpec("policy", "policy", "", policy=policy), sc.offered(), keep_records=False)
    return r


def kinds(run_, kind: str) -> int:
    return sum(1 for a in run_.actions if a.kind == kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--healthy", type=int, default=200)
    args = ap.parse_args()
    healing = load_policies([REPO / "policies" / "setpoint-healing.yaml"])[0]
    scaling_only = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0]
    started = time.perf_counter()

    times, missed = [], 0
    for seed in range(args.seeds):
        r = run(healing, ROLLOUT.format(seed=seed, sigma=0.05, multiplier=10))
        m = r.scores["mitigation_seconds"]["release"]
        missed += m is None
        if m is not None:
            times.append(m)
    print(f"bad rollout (x10 errors), {args.seeds} seeds: median fault -> rolled back and SLO holding "
          f"{statistics.median(times) if times else float('nan'):.0f} s (min {min(times, default=0):.0f}, "
          f"max {max(times, default=0):.0f}; never mitigated: {missed})   target <= 75 s")

    false_rollbacks = sum(kinds(run(healing, ROLLOUT.format(seed=1000 + s, sigma=0.15, multiplier=1)), "rollback") > 0
                          for s in range(args.healthy))
    print(f"healthy noisy rollouts: {false_rollbacks} of {args.healthy} rolled back "
          f"({100 * false_rollbacks / args.healthy:.1f}%)   target <= 1%")

    leak_healed, leak_plain = run(healing, "memory-leak"), run(scaling_only, "memory-leak")
    print(f"memory leak: SLO-violation minutes {leak_healed.scores['slo_violation_minutes']:g} healed vs "
          f"{leak_plain.scores['slo_violation_minutes']:g} without healing; pod restarts "
          f"{kinds(leak_healed, 'restart-pod')}, rolling restarts {kinds(leak_healed, 'rolling-restart')} "
          f"(budget 6 per hour)")

    overload = run(healing, "systemic-overload")
    spec = overload.trajectory.spec_replicas[:, 0]
    print(f"systemic overload: restarts {kinds(overload, 'restart-pod') + kinds(overload, 'rolling-restart')} "
          f"(target 0), rollbacks {kinds(overload, 'rollback')}, scaled {int(spec[0])} -> {int(spec.max())} replicas")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
