"""Benchmark self-healing on the simulated cluster (15 s interval, policies/setpoint-healing.yaml).

Targets (issues #5 and #11), each printed with "met" / "NOT met":
- bad rollout (error ratio x10): median time from the fault to rolled back and the SLO holding
  <= 75 s over the seeds;
- subtly bad release (x1.5 errors): detected and rolled back before its rollout completes in
  >= 80% of seeds;
- false rollbacks <= 1% over healthy noisy rollouts, a quarter of them during a traffic surge;
- memory leak: fewer SLO-violation minutes healed than without healing, within the restart
  budget; systemic overload: no restart.
Also reported (no target): a latency-only regression and a bad release during a flash crowd.
A release held for evidence (a revision check's ``hold``: the rollout paused while its test is
undecided) counts as rolled back before its rollout completed when the rollout's unpaused time
was shorter than the rollout takes unheld; healthy rollouts report how long they were held.
Run: python bench/healing.py [--seeds 20] [--healthy 200]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

from controller.policy import load_policies
from simulators.cluster import SimCluster
from simulators.runner import ControllerSpec, run_controller
from simulators.scenario import load_scenario, load_scenario_text
from simulators.workload import RevisionProps

REPO = Path(__file__).resolve().parents[1]
RELEASE_AT_S = 1200.0
ROLLOUT = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: rollout}}
spec:
  duration: {duration}
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
        - noise: {{sigma: {sigma}, every: 30s}}{surge}
  faults:
    - {{name: release, kind: bad-rollout, at: 20m, services: [web], {fault}}}
"""
# a surge during the rollout: +60% in a minute at the release, fading over 10 minutes
SURGE = "\n        - flashCrowd: {at: 20m, peak: 360, rise: 1m, decay: 10m}"


def rollout(seed: int, *, sigma: float = 0.05, fault: str = "errorRatioMultiplier: 10", surge: bool = False,
            duration: str = "40m") -> str:
    return ROLLOUT.format(seed=seed, sigma=sigma, fault=fault, surge=SURGE if surge else "", duration=duration)


def run(policy, text_or_name: str, seed: int | None = None):
    sc = load_scenario_text(text_or_name, "bench.yaml") if "\n" in text_or_name else load_scenario(text_or_name, seed)
    r, _ = run_controller(sc, ControllerSpec("policy", "policy", "", policy=policy), sc.offered(), keep_records=False)
    return r


def kinds(run_, kind: str) -> int:
    return sum(1 for a in run_.actions if a.kind == kind)


def first_rollback_s(run_) -> float | None:
    """Seconds from the release to the first rollback, None without one."""
    times = [a.t_s for a in run_.actions if a.kind == "rollback"]
    return float(min(times)) - RELEASE_AT_S if times else None


def progress_s(run_, until_s: float) -> float:
    """Seconds of rollout progress from the release to ``until_s`` (s after the release): the time
    the rollout was not held (paused) by the controller. A held rollout makes no progress, so it
    completes once this reaches the unheld rollout's duration (``rollout_duration_s``)."""
    held, since = 0.0, None
    for a in sorted(run_.actions, key=lambda a: a.t_s):
        t = a.t_s - RELEASE_AT_S
        if t >= until_s:
            break
        if a.kind == "pause" and since is None:
            since = max(t, 0.0)
        elif (a.kind == "resume" or a.kind == "rollback") and since is not None:
            held, since = held + t - since, None
    if since is not None:
        held += until_s - since
    return until_s - held


def rollout_duration_s(seed: int) -> float:
    """How long the bench's rollout takes to complete without any controller (s)."""
    sc = load_scenario_text(rollout(seed, fault="errorRatioMultiplier: 1.5"), "bench.yaml")
    cluster = SimCluster(sc.cluster, np.random.default_rng(sc.seed), faults=())
    offered = sc.offered()
    times = sc.times()
    for k, t in enumerate(times):
        if t - sc.start_s == RELEASE_AT_S:
            cluster.rollout(0, RevisionProps(error_ratio_multiplier=1.5), t)
        cluster.step(t, sc.tick_s, offered[k])
        if t - sc.start_s > RELEASE_AT_S and not cluster.rollout_in_progress[0]:
            return t - sc.start_s - RELEASE_AT_S
    return float("inf")


def new_revision_requests(seed: int, multiplier: float = 1.5) -> float:
    """Requests the new revision's pods serve from the release until its rollout completes,
    without any controller: all the evidence a test can have before the rollout completes."""
    sc = load_scenario_text(rollout(seed, fault=f"errorRatioMultiplier: {multiplier}"), "bench.yaml")
    cluster = SimCluster(sc.cluster, np.random.default_rng(sc.seed), faults=())
    offered, total = sc.offered(), 0.0
    for k, t in enumerate(sc.times()):
        if t - sc.start_s == RELEASE_AT_S:
            cluster.rollout(0, RevisionProps(error_ratio_multiplier=multiplier), t)
        cluster.step(t, sc.tick_s, offered[k])
        if t - sc.start_s >= RELEASE_AT_S:
            if not cluster.rollout_in_progress[0]:
                return total
            pods = cluster.pod_signals()
            new = np.asarray(pods["revision"]) == str(cluster.current_revision(0).number)
            total += float(np.asarray(pods["served_rps"])[new].sum()) * sc.tick_s
    return total


def poisson_at_least(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    below = sum(math.exp(-lam + j * math.log(lam) - math.lgamma(j + 1)) for j in range(max(k, 0)))
    return max(0.0, 1.0 - below)


def power_bound(requests: float, p0: float, worse_by: float, alpha: float) -> float:
    """The chance that the most powerful test there is catches a revision worse by ``worse_by``
    after ``requests``: one look at the end, the stable error ratio ``p0`` known exactly, errors
    Poisson; it flags at c errors or more, c the least with P(flag | as good) <= ``alpha``."""
    lam = requests * p0
    c = 0
    while poisson_at_least(c, lam) > alpha:
        c += 1
    return poisson_at_least(c, worse_by * lam)


def requests_for_power(p0: float, worse_by: float, alpha: float, power: float = 0.8) -> float:
    """The fewest requests (in steps of 500) at which ``power_bound`` reaches ``power``."""
    n = 500.0
    while power_bound(n, p0, worse_by, alpha) < power:
        n += 500.0
    return n


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--healthy", type=int, default=200)
    args = ap.parse_args()
    healing = load_policies([REPO / "policies" / "setpoint-healing.yaml"])[0]
    scaling_only = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0]
    started = time.perf_counter()

    times, missed, breached, rolled = [], 0, 0, []
    for seed in range(args.seeds):
        r = run(healing, rollout(seed))
        if (t := first_rollback_s(r)) is not None:
            rolled.append(t)
        m = r.scores["mitigation_seconds"]["release"]
        missed += m is None
        breached += r.scores["slo_violation_minutes"] > 0
        if m is not None:
            times.append(m)
    median = statistics.median(times) if times else float("inf")
    print(f"bad rollout (x10 errors), {args.seeds} seeds: median fault -> rolled back and SLO holding {median:.0f} s "
          f"(min {min(times, default=0):.0f}, max {max(times, default=0):.0f}; never mitigated: {missed}; "
          f"SLO breached in {breached}; 0 s: never breached; rolled back in {len(rolled)}, median "
          f"{statistics.median(rolled) if rolled else float('nan'):.0f} s after the release)   "
          f"target <= 75 s: {verdict(median <= 75 and not missed)}")

    done_s = rollout_duration_s(0)
    caught, detect, held = 0, [], []
    for seed in range(args.seeds):
        r = run(healing, rollout(seed, fault="errorRatioMultiplier: 1.5"))
        t = first_rollback_s(r)
        if t is not None:
            detect.append(t)
            held.append(t - progress_s(r, t))
        caught += t is not None and progress_s(r, t) < done_s  # a held rollout makes no progress
    share = caught / max(args.seeds, 1)
    print(f"subtly bad release (x1.5 errors), {args.seeds} seeds: rolled back before the rollout completed "
          f"({done_s:.0f} s of progress unheld) in {caught} ({100 * share:.0f}%); rolled back at all in "
          f"{len(detect)}, median {statistics.median(detect) if detect else float('nan'):.0f} s after the release "
          f"(held paused a median {statistics.median(held) if held else 0:.0f} s of it)   "
          f"target >= 80%: {verdict(share >= 0.8)}")
    check = next(c for c in healing.health.revision_checks if c.name == "release-errors")
    served = new_revision_requests(0)
    print(f"  why: the new revision serves {served:.0f} requests before its rollout completes ({served * 0.002:.0f} "
          f"errors expected at the stable 0.2%); even one look at the end with the stable ratio known exactly, at "
          f"the check's {100 * check.false_rate:g}% false-rollback rate, catches a 1.5x release with probability "
          f"{power_bound(served, 0.002, 1.5, check.false_rate):.2f}; 80% needs "
          f"{requests_for_power(0.002, 1.5, check.false_rate):.0f} requests")

    surges = args.healthy // 4
    false_rollbacks, delays, never_resumed = 0, [], 0
    for s in range(args.healthy):
        r = run(healing, rollout(1000 + s, sigma=0.15, fault="errorRatioMultiplier: 1", surge=s < surges,
                                 duration="40m"))
        false_rollbacks += kinds(r, "rollback") > 0
        pauses = sorted(a.t_s for a in r.actions if a.kind == "pause")
        if pauses:
            resumed = [a.t_s for a in r.actions if a.kind == "resume" and a.t_s >= pauses[0]]
            if resumed:
                delays.append(min(resumed) - pauses[0])
            else:
                never_resumed += 1
    rate = false_rollbacks / max(args.healthy, 1)
    print(f"healthy noisy rollouts ({surges} during a traffic surge): {false_rollbacks} of {args.healthy} rolled "
          f"back ({100 * rate:.1f}%)   target <= 1%: {verdict(rate <= 0.01)}")
    if delays:
        print(f"  cost: {len(delays)} of them held (paused) for evidence, median {statistics.median(delays):.0f} s, "
              f"max {max(delays):.0f} s (the check's maxDuration bounds it); left paused: {never_resumed}")

    lat = run(healing, "latency-regression")
    crowd = run(healing, "bad-rollout-flash-crowd")
    print(f"latency-only regression (+60 ms): rolled back {first_rollback_s(lat)} s after the release; "
          f"SLO-violation minutes {lat.scores['slo_violation_minutes']:g}")
    print(f"bad release during a flash crowd: rolled back {first_rollback_s(crowd)} s after the release, "
          f"restarts {kinds(crowd, 'restart-pod') + kinds(crowd, 'rolling-restart')}, scale-ups "
          f"{sum(1 for a in crowd.actions if a.kind == 'scale' and a.to_replicas > a.from_replicas)}")

    leak_healed, leak_plain = run(healing, "memory-leak"), run(scaling_only, "memory-leak")
    ok = leak_healed.scores["slo_violation_minutes"] < leak_plain.scores["slo_violation_minutes"]
    print(f"memory leak: SLO-violation minutes {leak_healed.scores['slo_violation_minutes']:g} healed vs "
          f"{leak_plain.scores['slo_violation_minutes']:g} without healing; pod restarts "
          f"{kinds(leak_healed, 'restart-pod')}, rolling restarts {kinds(leak_healed, 'rolling-restart')} "
          f"(budget 6 per hour), rollbacks {kinds(leak_healed, 'rollback')}   healed within budget: {verdict(ok)}")

    overload = run(healing, "systemic-overload")
    spec = overload.trajectory.spec_replicas[:, 0]
    n = kinds(overload, "restart-pod") + kinds(overload, "rolling-restart")
    print(f"systemic overload: restarts {n}, rollbacks {kinds(overload, 'rollback')}, scaled {int(spec[0])} -> "
          f"{int(spec.max())} replicas   no restart: {verdict(n == 0)}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
