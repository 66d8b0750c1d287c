"""Evidence-based scale-down holds (issue #9 item 4), measured before building any of them.

The default policy holds a scale-down for the highest recommendation of the last 15 minutes
(bench/scaledown_breakdown.py: 65-80% of its replica-hours above the oracle's on NASA, ELB and
Twitter). Each variant below replaces that ceiling with one that depends on evidence, every
parameter taken from the service or the policy (the lead time is the ramp's: start-up delay +
interval + half the metric window; the window bound is the policy's scale-down window):

- ``max``:        the policy as it is (the reference; must equal a plain run);
- ``kth:K``:      the K-th highest recommendation of the window instead of the highest, so a
                  spike shorter than K cycles stops pinning capacity; ``kth:lead`` takes
                  K = lead / interval (a spike shorter than a start-up could not be met anyway);
- ``release``:    a look-ahead (ramp) recommendation older than the lead time counts only as
                  far as the load it predicted materialised: max(its observed proposal,
                  min(it, the highest observed proposal within one lead time after it));
- ``decay``:      each recommendation's excess over this cycle's proposal shrinks linearly
                  with its age, to nothing at the window's end (a gradual scale-down instead of
                  one step when the window expires);
- ``gaps:Q``:     the window shortened per target to the Q-quantile of the observed gaps
                  after which load came back (the time since the observed proposal was last as
                  high, at each rise back to a level seen before) plus one lead time, bounded by
                  the policy's window; the policy's window until 5 gaps were seen.

Measured (December 2026, default policy, bundled inputs unless said; rh = replica-hours /
oracle; minutes = SLO-violation minutes; baseline ``max``: NASA July 1.77 / 5, NASA August
1.95 / 5, ELB 1.93 / 17, Twitter 1.41 / 10; median over the 6 traces 1.59x, summed 0.28x HPA
at equal cost):
- ``kth:3``: NASA July 1.67 / 13, August 1.82 / 19: -6% pods for 3-4x the minutes;
- ``release``: NASA August 1.57 / 60, 855 changes (262): the held look-ahead spikes are what
  meets the returning bursts, as the observed-only window showed before;
- ``gaps:0.9``: NASA August 1.81 / 20, ELB 1.91 / 17, Twitter 1.39 / 10, NASA July 1.66 / 12:
  the learned gaps are mostly short (noise), so the hold shrinks where bursts do come back;
- ``decay``: median 1.44x, summed 99 / 359.6 = 0.28x, no trace lost; with --start-offset 1d
  --peak-scale 1.5 --startup-delay 90s median 1.68x -> 1.45x, summed 0.40x -> 0.31x, no trace
  lost; but 2-5x the replica changes on NASA (a pod at a time down the staircase);
- ``decay`` with the policy's ``minStep: tolerance``: median 1.47x, 0.27x; generalization 1.50x,
  0.31x; changes about as before. Built as ``behavior.scaleDown.release: linear``.

Variants run in this process only: the bench wraps the numpy stages (``stabilize_with_behavior``
and the ramp stage, SETPOINT_COMPILED=0), keeping one target's history itself; the trace
scenarios have one service. HPA at equal cost comes from bench/quality.py's ``--hpa-cache``
files when they hold the same inputs (else only the policy's own figures are printed).

Run: python bench/scaledown_holds.py --variants max,kth:lead,release,gaps:0.9 [--scenarios a,b]
     [--start-offset 1d --peak-scale 1.5 --startup-delay 90s] [--hpa-cache DIR]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

import numpy as np

os.environ["SETPOINT_COMPILED"] = "0"  # the variants wrap the numpy stages
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import (TRACES, Variation, add_variation_args,  # noqa: E402
                     baseline_cache_path, variation_of, varied_text)

REPO = Path(__file__).resolve().parents[1]
MIN_GAPS = 5


class Hold:
    """One run's scale-down ceiling under a variant; keeps one target's recommendations."""

    def __init__(self, variant: str, lead_s: float, interval_s: float):
        self.name, _, self.arg = variant.partition(":")
        self.lead_s, self.interval_s = lead_s, interval_s
        self.t: list[float] = []
        self.all: list[float] = []  # what entered stabilization (look-ahead included)
        self.obs: list[float] = []  # the observed proposal of the same cycle (no look-ahead)
        self.gaps: list[float] = []
        self.obs_now = np.nan

    def ceiling(self, now: float, proposal: float, window_s: float) -> float:
        """The highest replicas a scale-down may stop at, from the entries of age < window."""
        t, a, o = np.array(self.t), np.array(self.all), np.array(self.obs)
        inside = t > now - window_s
        if self.name == "max":
            return max(proposal, a[inside].max(initial=-np.inf))
        if self.name == "kth":
            k = int(round(self.lead_s / self.interval_s)) if self.arg == "lead" else int(self.arg)
            held = np.sort(np.append(a[inside], proposal))[::-1]
            return max(proposal, held[min(k, held.size) - 1])
        if self.name == "release":
            eff = a[inside].copy()
            for n, i in enumerate(np.flatnonzero(inside)):
                if now - t[i] >= self.lead_s:
                    after = (t > t[i]) & (t <= t[i] + self.lead_s)
                    came = o[after].max() if after.any() else o[i]
                    eff[n] = max(o[i], min(a[i], came))
            return max(proposal, eff.max(initial=-np.inf))
        if self.name == "decay":
            left = 1.0 - (now - t[inside]) / window_s
            return max(proposal, np.ceil((proposal + (a[inside] - proposal) * left).max(initial=-np.inf) - 1e-9))
        if self.name == "gaps":
            hold_s = window_s
            if len(self.gaps) >= MIN_GAPS:
                hold_s = min(window_s, float(np.quantile(self.gaps, float(self.arg))) + self.lead_s)
            return max(proposal, a[t > now - hold_s].max(initial=-np.inf))
        raise SystemExit(f"unknown variant {self.name!r}")

    def remember(self, now: float, proposal: float, window_s: float) -> None:
        obs = proposal if not np.isfinite(self.obs_now) else min(self.obs_now, proposal)
        if self.obs and obs > self.obs[-1]:  # a rise: how long ago was the load this high?
            for i in range(len(self.obs) - 1, -1, -1):
                if self.obs[i] >= obs:
                    self.gaps.append(now - self.t[i])
                    break
        self.t.append(now)
        self.all.append(proposal)
        self.obs.append(obs)
        while self.t[0] <= now - window_s:
            for xs in (self.t, self.all, self.obs):
                xs.pop(0)


def install(hold: Hold) -> None:
    """Wrap the numpy stages so that the policy's runs use ``hold``'s ceiling."""
    from controller.core.scaling import decide, normalize, ramp, stabilize

    plain_stab, plain_ramps = stabilize.stabilize_with_behavior, ramp.apply_ramps

    def ramps(params, values, usable, proposals, valid, *args, **kw):
        p = np.where(valid, proposals, -np.inf).max(axis=1)
        hold.obs_now = float(p[0]) if np.isfinite(p[0]) else np.nan
        return plain_ramps(params, values, usable, proposals, valid, *args, **kw)

    def stab(current, proposal, rec_values, rec_times, now, up_window_s, down_window_s, *args, **kw):
        # *args: the stage's later parameters (linear_release, release_rows) pass through unchanged
        out = plain_stab(current, proposal, rec_values, rec_times, now, up_window_s, down_window_s, *args, **kw)
        if current.shape[0] != 1 or up_window_s > 0:
            raise SystemExit("scaledown_holds: one target and no scale-up window only")
        c = hold.ceiling(now, float(proposal[0]), down_window_s)
        hold.remember(now, float(proposal[0]), down_window_s)
        return np.minimum(np.maximum(current, proposal), c) if hold.name != "max" else out

    decide.apply_ramps = ramps
    normalize.stabilize_with_behavior = stab


def run(name: str, policy_file: str, variant: str, v: Variation, cache_dir: str | None) -> dict:
    from controller.policy import load_policies
    from simulators.frontier import equal_cost
    from simulators.runner import simulate, standard_controllers
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    path = resolve_scenario_path(name)
    text = varied_text(path.read_text(encoding="utf-8"), v)
    scenario = load_scenario_text(text, str(path), folder=path.parent)
    policy = load_policies([policy_file])[0]
    hpa_file = REPO / "policies" / "hpa-cpu.yaml"
    from simulators.frontier import DEFAULT_TARGETS_PCT
    cache = baseline_cache_path(cache_dir, text, hpa_file.read_text(encoding="utf-8"), tuple(DEFAULT_TARGETS_PCT))
    cached = pickle.loads(cache.read_bytes()) if cache is not None and cache.is_file() else None
    p = policy.params
    rp = p.metrics[p.ramp_metrics[0]].ramp
    startup_s = scenario.cluster.services[0].startup_delay_s  # what the ramp observes from the pods
    install(Hold(variant, rp.lag_s + startup_s, p.interval_s))
    result, _ = simulate(scenario, standard_controllers(policy, [] if cached else ["oracle"], None, 20),
                         keep_records=False)
    s = result.runs["policy"].scores
    oracle = cached["scores"]["oracle"] if cached else result.runs["oracle"].scores
    eq = equal_cost("policy", s["replica_hours"], s["slo_violation_minutes"], cached["points"]) if cached else None
    return {"rh": s["replica_hours"], "oracle_rh": oracle["replica_hours"], "min": s["slo_violation_minutes"],
            "changes": s["replica_changes"], "hpa_eq": eq.hpa_slo_violation_minutes if eq else None,
            "verdict": eq.verdict if eq else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--variants", default="max,kth:lead,release,gaps:0.9")
    ap.add_argument("--scenarios", default=",".join(TRACES))
    add_variation_args(ap)
    ap.add_argument("--hpa-cache", default=None, metavar="DIR", help="bench/quality.py's cache of HPA's frontier")
    args = ap.parse_args()

    v = variation_of(args)
    print(f"inputs: {v.describe()}")
    for variant in args.variants.split(","):
        rows = {n: run(n, args.policy, variant, v, args.hpa_cache) for n in args.scenarios.split(",")}
        for n, r in rows.items():
            eq = "-" if r["hpa_eq"] is None else f"{r['hpa_eq']:.1f}"
            print(f"{variant:<12} {n:<22} rh/oracle {r['rh'] / r['oracle_rh']:5.2f}  min {r['min']:5g}  "
                  f"HPA@eq {eq:>6} {r['verdict'] or '':<5} changes {r['changes']}", flush=True)
        ratios = [r["rh"] / r["oracle_rh"] for r in rows.values()]
        summary = f"{variant:<12} median rh/oracle {np.median(ratios):.2f}x"
        if all(r["hpa_eq"] is not None for r in rows.values()):
            pol, hpa = sum(r["min"] for r in rows.values()), sum(r["hpa_eq"] for r in rows.values())
            losses = [n for n, r in rows.items() if r["verdict"] == "loss"]
            summary += f"  summed min {pol:g} / HPA@eq {hpa:.1f} = {pol / hpa:.2f}x  losses: {', '.join(losses) or 'none'}"
        print(summary, flush=True)


if __name__ == "__main__":
    main()
