"""Issue #9's targets on many input sets at once: how the policy holds up off the bundled inputs.

The policy's parameters were chosen on the bundled trace windows; the figures are checked on
other windows, peaks and start-up delays. This bench runs bench/quality.py's scoring (policy,
the hpa preset's frontier, the oracle) on each input set below and prints one row per set
(summed violation minutes / HPA at equal cost, traces lost, median replica-hours / oracle,
median changes / HPA, the demos), then per target on how many sets it is met.

Input sets (``--sets`` picks some by name): ``bundled``; ``windows`` (+1d, peaks x1.5, 90 s
start-ups); ``low`` (+2d, peaks x0.8, 45 s); ``quiet`` (+12h, peaks x0.6, 30 s); ``peaks2``
(peaks x2, with maxPods and replicas.max scaled alike, see bench/quality.py); ``slow120`` and
``slow180`` (every pod starts in 120 s / 180 s); ``noisy`` (+5d, peaks x1.2, 60 s, per-tick
noise sigma 0.05); ``noisyslow`` (+4d, 150 s, per-tick noise sigma 0.1: noise the rate windows
average away, with a long lead to amplify what is left); ``noise10`` (the bundled windows and
start-ups, per-tick noise sigma 0.1: the noise alone); ``pods`` and ``podswin``: ``bundled`` and ``windows`` with the rate read at the
pods (bench/quality.py's ``--rps-at-pods``: what an app's own request counter counts, which stops
at capacity as CPU does). Each set's HPA runs are cached with ``--hpa-cache DIR`` as in quality.py
(without it a set takes 2-3 minutes on 2 cores).

Measured (December 2026, the default policy; minutes / HPA @ equal cost, lost, rh / oracle,
changes / HPA, demos): bundled 0.16x none 1.45x 0.69x met; windows 0.22x none 1.50x 0.73x met;
low 0.14x none 1.56x 0.75x met; quiet 0.15x none 1.43x 0.82x met; peaks2 0.16x none 1.51x
0.53x met; slow120 0.31x none 1.50x 0.91x step lost by 0.03 min; slow180 0.42x (NOT met) none
1.53x 1.07x step lost by 0.04 min; noisy 0.24x none 1.57x 0.82x met. With the forecast
(`forecast: {startupDelay: observed}` added to the default): bundled 0.14x 1.56x 0.64x;
windows 0.18x 1.75x 0.61x; low 0.11x 1.67x 0.63x; quiet 0.11x 1.52x 0.69x; peaks2 0.09x 1.64x
0.50x (met); slow120 0.27x 1.75x 0.74x; slow180 0.32x (met) 1.77x 0.90x; noisy 0.26x 1.72x 0.63x;
none lost, the step demo lost at 120 and 180 s as above: the 1/3 target on all 8 sets, for
replica-hours 0.1-0.25x the oracle's more than without. Read at the pods (December 3):
pods 0.17x none 1.45x 0.69x met; podswin 0.26x, **WC98 lost** (4 vs 2 minutes), 1.51x 0.72x,
demos met. WC98's minutes are the run's first two: that window starts with 430 rps on 4 pods
(400 rps of capacity) and a saturated pods' rate reads 400, so the policy's first step is 400/85
-> 5 pods and the next waits for them (90 s); the hpa preset reads 100% CPU against 70% and
asks for 6 at once. A capped reading is a lower bound on demand: sizing on it climbs by
capacity / target (1.18x here) per start-up. Fixed by the saturation floor (the default policy's
``capacityPerReplica: 100``, core/scaling/saturation.py): with it, on all ten sets, bundled 0.16x
none 1.45x 0.69x met; pods 54 / 318.9 0.17x none; podswin 133 / 521.6 0.25x **none lost**
1.51x 0.72x; windows 0.22x none; low 37 / 260.9 0.14x WC98 lost (3 vs 1.9 minutes, as without
it: two single ticks at rises where it runs tighter than HPA, 322 vs 334 replica-hours); quiet
0.15x; peaks2 0.16x; slow120 0.31x; slow180 0.42x NOT met; noisy 0.24x; every figure the same
as without it on eight sets. With the floor reading the higher of the window and the ramp's
latest reading (December 3, evening; it ends the overload spiral read at the pods): bundled 52 /
317.1 0.16x none 1.46x 0.69x met; pods 53 / 317.6; podswin 133 / 521.3 none lost; windows 116 /
531.1; low 36 / 260.8 (WC98 still lost); quiet 29 / 188.6; peaks2 88 / 520.5 0.17x (86 / 529.4
before: 2 minutes more, for more pods); slow120, slow180 and noisy unchanged.
With ramp.minStep keeping the look-ahead steps projected to reach what the current pods serve
(ramp.apply_ramps, saturation.saturated of the look-ahead; December 3, late evening): bundled 44 / 316.8 0.14x none 1.46x 0.70x;
windows 103 / 535.7 0.19x 0.76x; low 33 / 260.2 0.13x (WC98 still lost) 0.80x; quiet 22 / 189.6
0.12x 0.81x; peaks2 69 / 517.5 0.13x 0.59x; slow120 133 / 444.9 0.30x **WC98 lost** (3 vs 0.03
minutes) 0.95x; slow180 202 / 484.5 0.42x NOT met 1.12x; noisy 61 / 294.0 0.21x 0.84x; podswin
121 / 527.5 0.23x none 0.75x; pods 46 / 317.1 0.15x none 0.70x.
noisyslow (added December 4): 84 / 229.1 0.37x NOT met, none lost, 1.92x, 1.68x, demos met.
The ramp's slope is the difference of its 30 s and 1-minute rates (both ending now) over the 15 s
between their centres, carried a lead (about 195 s) ahead: 13x the readings' noise, so on this set
the policy steps 25-50% up and down on noise (World Cup 1998: 172 changes, HPA 63). Those pods are
also its protection against the per-tick noise the windows hide (HPA at 70% has 317 minutes on
NASA July here, 148 at 60%): with the slope soft-thresholded at twice its measured noise the set
goes to 0.97x, and with 2-minute/1-minute windows to 1.01x. The candidate fix is an explicit
headroom for noise with the slope thresholded by its noise (not built: the per-tick noise the
windows average away is not measurable from them without a noise model).
noise10 (added December 4): 105 / 246.0 0.43x NOT met, World Cup 1998 (1 vs 0) and NYC taxi (2 vs
1) lost, 1.57x, 0.88x, demos met. The losses are single ticks at +35-50% of the mean (3.5-4 sigma
of the log-normal draws over 17k ticks), where HPA at equal cost sits at a 40-50% target; a lower
target does not remove them (80%: 0.35x, WC98 lost, 1.65x; 75%: 0.26x, WC98 and Twitter lost,
1.75x), pooled headroom neither (0.56x, none lost, 1.39x).
Re-run December 5 (757 s on 2 workers, the same policy): every set as above to within 0.2 of HPA's
interpolated minutes; the demos met on all 12 sets but slow180's step (4 vs 3.69 minutes), slow120's
step now met. Per target: 1/3 on 9 of 12, none lost on 9 of 12, replica-hours and changes on 0.

Run: python bench/generalization.py [--policy FILE] [--sets bundled,slow180] [--hpa-cache DIR] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

#: name -> (start offset s, peak scale, start-up delay s or None, noise sigma[, rps read at the pods])
SETS: dict[str, tuple] = {
    "bundled": (0.0, 1.0, None, 0.0),
    "windows": (86400.0, 1.5, 90.0, 0.0),
    "low": (2 * 86400.0, 0.8, 45.0, 0.0),
    "quiet": (43200.0, 0.6, 30.0, 0.0),
    "peaks2": (0.0, 2.0, None, 0.0),
    "slow120": (0.0, 1.0, 120.0, 0.0),
    "slow180": (0.0, 1.0, 180.0, 0.0),
    "noisy": (5 * 86400.0, 1.2, 60.0, 0.05),
    "noisyslow": (4 * 86400.0, 1.0, 150.0, 0.1),
    "noise10": (0.0, 1.0, None, 0.1),
    "pods": (0.0, 1.0, None, 0.0, True),
    "podswin": (86400.0, 1.5, 90.0, 0.0, True),
}
TARGETS = (("third", "minutes <= 1/3 HPA @ equal cost"), ("none_lost", "no trace lost"),
           ("rh", "median rh <= 1.25x oracle"), ("changes", "median changes <= 0.5x HPA"))


def row(name: str, f: dict) -> str:
    if not f["traces"]:
        return f"{name:<9} (no trace scored)"
    demos = ", ".join(f"{d} {e.slo_violation_minutes:g} vs {e.hpa_slo_violation_minutes:g}"
                      for d, e in f["demos"].items() if not f["ok"][d])
    return (f"{name:<9} {f['policy_sum']:>6g} / {f['hpa_sum']:<8.1f} {quality.fmt_ratio(f['share'], f['policy_sum']):>6} "
            f"{quality.verdict(f['ok']['third']):<8} {(', '.join(f['losses']) or 'none'):<22} "
            f"{f['median_rh']:>5.2f}x {f['median_changes']:>7.2f}x  {('lost: ' + demos) if demos else 'met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(quality.REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--hpa-policy", default=str(quality.REPO / "policies" / "hpa-cpu.yaml"))
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated input sets ({', '.join(SETS)})")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (scenarios run in parallel)")
    ap.add_argument("--hpa-cache", default=None, metavar="DIR", help="as bench/quality.py's")
    args = ap.parse_args()
    from simulators.frontier import DEFAULT_TARGETS_PCT
    from simulators.load import traces_dir

    if not traces_dir().is_dir():
        sys.exit(f"traces not found in {traces_dir()}: set SETPOINT_TRACES_DIR")
    names = quality.scenario_names(args.sets)
    unknown = [n for n in names if n not in SETS]
    if unknown:
        sys.exit(f"unknown input set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    print(f"policy: {args.policy}\n")
    print(f"{'set':<9} {'minutes / HPA@eq':>17} {'ratio':>6} {'1/3':<8} {'lost':<22} {'rh/or':>6} {'changes':>8}  demos")
    figures: dict[str, dict] = {}
    began = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        for name in names:
            v = quality.Variation(*SETS[name])
            jobs = [(s, args.policy, args.hpa_policy, DEFAULT_TARGETS_PCT, v, args.hpa_cache)
                    for s in quality.TRACES + quality.DEMOS]
            results = dict(zip(quality.TRACES + quality.DEMOS, pool.map(quality.score_scenario, jobs)))
            errors = [f"{s}: {r['error']}" for s, r in results.items() if "error" in r]
            for e in errors:
                print(f"  {name}: {e}")
            figures[name] = quality.target_figures(results)
            print(row(name, figures[name]), flush=True)
    print(f"\nper target, over {len(figures)} input sets ({v.describe() if len(figures) == 1 else 'see above'}):")
    for key, text in TARGETS + tuple((d, f"{d}: fewer minutes than HPA at no more rh") for d in quality.DEMOS):
        missed = [n for n, f in figures.items() if not f["ok"].get(key, False)]
        print(f"  {text:<48} met on {len(figures) - len(missed)} of {len(figures)}"
              + (f" (NOT met: {', '.join(missed)})" if missed else ""))
    print(f"\n{time.monotonic() - began:.0f} s with {args.jobs} worker(s)")


if __name__ == "__main__":
    main()
