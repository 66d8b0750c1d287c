"""The clairvoyant budgeted schedule as a teacher (issue #9: median replica-hours <= 1.25x the
oracle's AND median replica changes <= 0.5x HPA's).

bench/change_budget.py finds the cheapest schedule s(t) >= the oracle's spec o(t) with at most
K changes. This bench recovers the schedule itself (the dynamic program with back-pointers) at
K = 0.5x HPA's changes, runs the default policy beside it, and prints what the teacher does
differently: how long it holds a level, where it scales down relative to recent peaks of the
need, how far it overshoots the need on a scale-up, how it rides bursts. ``--dump DIR`` writes
per trace an .npz with t, offered load, the need (required_replicas), the oracle's spec, the
teacher's and the default policy's spec replicas.

Findings: see FINDINGS below (printed at the end of every run).

Run: python bench/teacher.py [--scenarios a,b] [--start-offset 1d --peak-scale 1.5
     --startup-delay 90s] [--jobs 2] [--dump DIR]
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from change_budget import cover_pointers, runs_of  # noqa: E402
from quality import TRACES, Variation, add_variation_args, scenario_names, variation_of, varied_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

REPO = Path(__file__).resolve().parents[1]
BUDGET = 0.5
#: past windows (s) the scale-down level is compared with (the policy's own 15m among them)
WINDOWS_S = (300.0, 900.0, 1800.0, 3600.0)

FINDINGS = """\
Findings (December 2026, bundled inputs; teacher = the cheapest schedule >= the oracle's spec with
<= 0.5x HPA's changes; policy = policies/setpoint-default.yaml; the table above has the figures):

1. The gap is the level, not the timing. The policy is above the teacher on 92-93% of NASA's
   ticks (by 2.2-2.7 pods on average, ~40%), below it on 1.5%; ELB 73% / 8%, taxi 72% / 5%.
   Slack (replica-ticks above the oracle): teacher 12-15% on NASA, policy 39-43%.
2. The teacher sits at the recent envelope of the need. Its level is <= the past-15-minute max
   of the oracle's spec on 98% of NASA's ticks (93-97% elsewhere, taxi 80%), equal to it on
   42-83%. It is even <= the 15-minute max of the policy's own reactive count ceil(rate[1m] /
   target) on 97% / 95% of NASA's ticks (median ratio 0.83), where the policy sits at 1.20-1.25x
   that envelope (the held look-ahead spikes of the ramp: value + slope x lead on NASA's noise).
   So a causal hold of the reactive envelope would cover the teacher ~95% of the time: what the
   teacher has and a controller lacks is knowing WHEN the other 3-5% come (new highs above the
   envelope). The policy buys them by holding a ~20-25% margin (ramp spikes) all the time.
3. Dwell: median 10.7 / 8.3 min on NASA July / August (policy 6.2 / 5.0), 76 / 70 min on WC98 /
   taxi (20 / 35), 20 min Twitter (8.7), 5.8 min ELB (2.5); 10th percentile 2.2-2.4 min on NASA.
   It does not ride bursts flat for long: with half of HPA's changes it still changes level
   every ~10 minutes on NASA, following the slow component of the bursts (their 10-min envelope).
4. Scale-downs: immediately when the need falls (median 1 tick after the oracle's spec was last
   at the old level on NASA, WC98, Twitter: it knows the load will not come back), to 0.64-0.88
   of the past-15-minute peak (0.67-0.75 on NASA), in steps of 20-40% (median 25%: one pod of
   four, the same as the policy's minStep). The policy cannot know the load will stay down: it
   waits the window, and its level then is 1.0x the past-15-minute peak.
5. Scale-ups: half as many as the policy's (104 vs 219 on NASA July, 48 vs 92 on taxi, 18 vs 37 on
   WC98), bigger (median +27-67% vs +12-25%), overshooting the oracle's spec by only 5-14% at the
   change (ELB 25%, Twitter 0%) where the policy's overshoot 40% on NASA (the ramp's projection).
Other inputs (--start-offset 1d --peak-scale 1.5 --startup-delay 90s): the same pattern. Teacher rh
1.04-1.11x the oracle (policy 1.20-1.91x), slack 4-10% (policy 16-48%); at or below the past-15-
minute envelope of the oracle's spec on 92-97% of the ticks (taxi 71%; policy 4-56%); half the
policy's scale-ups (132 vs 263 NASA July, 51 vs 128 taxi, 246 vs 613 ELB), +20-50% a step (policy
+9-20%), overshoot 0-25% (policy 60-73% on NASA); dwell 9.2 / 7.8 min on NASA (policy 4.5 / 4.0);
scale-downs to 0.56-0.91 of the past-15-minute peak, within a tick or two of the need falling.

6. The oracle may go to 1 pod, the policy not below min 2: flooring the oracle at 2 adds 8% on ELB,
   4.5% on Twitter, 0-0.5% elsewhere (the median figure is barely affected).

What that means for a causal rule (bench/teacher_proxy.py screens rules in seconds on the dumped
loads: its model of the policy gives NASA July rh 1.62 / 330 changes / 0.19% under-provisioned
ticks vs the simulator's 1.63 / 363 / 0.24%): every rule tried lies on the policy's own
window-length trade-off (10m 1.40x / 0.92x, 15m 1.48x / 0.76x, 20m 1.52x / 0.67x, 30m 1.60x /
0.59x proxy median rh / changes), none moves it: holding only the reactive envelope (no ramp
spikes) takes NASA to 1.44x but quadruples its under-provisioned ticks; ski-rental scale-downs
(price of a change = 1 pod x window, or minStep pods x window) trade along the same curve; a
learned margin over the envelope (quantile of how far the load went above it within a lead)
is 1.0 on these traces; trend-sized (window slope x window) scale-ups take taxi's changes 0.70x
-> 0.61x for +1% rh but do nothing on NASA. The teacher's advantage is clairvoyance about new
highs on NASA and ELB (unpredictable from the slope there: bench/change_merge.py's hit rate < 1/2),
not a decision structure a causal controller can copy.

Measured with the simulator (bench/teacher_variants.py, both input sets): ski-rental scale-downs
lose: ski already on the bundled inputs (0.35x, NASA August lost to HPA at equal cost; rh 1.43x,
changes 0.77x), ski:minstep on the other inputs (0.46x, NASA August lost; bundled 0.30x, rh
1.52x, changes 0.66x: the 20-minute window's trade, not a new one); the
teacher's "fewer, bigger scale-ups" (upstep: a look-ahead-only step must add the policy's down
tolerance, at least one pod) is the one rule that moved off the window curve: bundled 0.30x,
none lost, rh 1.46x, changes 0.68x (base 0.27x / 1.47x / 0.83x), other inputs 0.36x (1/3 lost),
1.49x, 0.67x (base 0.31x / 1.50x / 0.83x). Neither NOT-met target comes within reach: the
changes target needs the clairvoyant schedule's knowledge of which rises are real.
"""


def teacher_schedule(spec: np.ndarray, changes: int) -> np.ndarray:
    """(T,) the cheapest schedule >= ``spec`` (T,) with at most ``changes`` changes."""
    levels, lengths = runs_of(spec)
    segments = min(levels.size, changes + 1)
    arg = cover_pointers(levels, lengths, segments)
    bounds, k, j = [], levels.size, segments - 1
    while k > 0:
        i = arg[j, k]
        bounds.append((i, k))
        k, j = i, j - 1
    starts = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    out = np.empty(spec.size)
    for i, k in bounds:
        out[starts[i]:starts[k]] = levels[i:k].max()
    return out


def past_max(x: np.ndarray, n: int) -> np.ndarray:
    """(T,) max of x over the n ticks before each tick (this one excluded; x[0] at 0)."""
    from numpy.lib.stride_tricks import sliding_window_view
    pad = np.r_[np.full(n, x[0]), x]
    return sliding_window_view(pad, n)[:-1].max(axis=1) if n > 0 else x


def analyse(args: tuple[str, Variation, str | None]) -> dict:
    name, variation, dump = args
    from controller.policy import load_policies
    from simulators.oracle import required_replicas
    from simulators.runner import run_controller, standard_controllers
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    path = resolve_scenario_path(name)
    scenario = load_scenario_text(varied_text(path.read_text(encoding="utf-8"), variation), str(path), folder=path.parent)
    hpa = load_policies([REPO / "policies" / "hpa-cpu.yaml"])[0]
    pol = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0]
    specs = {s.name: s for s in standard_controllers(pol, ["hpa", "oracle"], hpa, 20)}
    runs = {k: run_controller(scenario, specs[k], keep_records=False, keep_trajectory=True)[0]
            for k in ("oracle", "hpa", "policy")}
    tr = runs["oracle"].trajectory
    o = tr.spec_replicas[:, 0].astype(np.float64)
    load = tr.offered_rps[:, 0]
    need = required_replicas(tr.offered_rps, scenario.cluster.services, scenario.slo)[:, 0]
    p = runs["policy"].trajectory.spec_replicas[:, 0].astype(np.float64)
    hpa_ch = int(runs["hpa"].scores["replica_changes"])
    k = int(np.floor(BUDGET * hpa_ch))
    s = teacher_schedule(o, k)
    tick = float(tr.t_s[1] - tr.t_s[0])
    svc = scenario.cluster.services[0]
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(dump) / f"{name}.npz", t_s=tr.t_s, offered_rps=load, need=need, oracle=o,
                            teacher=s, policy=p, hpa=runs["hpa"].trajectory.spec_replicas[:, 0])
    return {"name": name, "tick": tick, "startup": svc.startup_delay_s + svc.scheduling_delay_s,
            "o": o, "need": need, "s": s, "p": p, "hpa_ch": hpa_ch, "k": k}


def changes_of(x: np.ndarray) -> np.ndarray:
    return np.flatnonzero(x[1:] != x[:-1]) + 1


def describe(r: dict) -> dict:
    """The teacher's and the policy's change structure on one trace (figures for the table)."""
    o, s, p, tick = r["o"], r["s"], r["p"], r["tick"]
    out = {"name": r["name"]}
    for key, x in (("s", s), ("p", p)):
        ch = changes_of(x)
        up = ch[x[ch] > x[ch - 1]]
        down = ch[x[ch] < x[ch - 1]]
        dwell = np.diff(np.r_[0, ch, x.size]) * tick
        out[key] = {"changes": ch.size, "up": up.size, "down": down.size, "rh": x.sum() / o.sum(),
                    "dwell_med_min": np.median(dwell) / 60, "dwell_q10_min": np.quantile(dwell, 0.1) / 60,
                    "down_step": np.median((x[down - 1] - x[down]) / x[down - 1]) if down.size else np.nan,
                    "up_step": np.median((x[up] - x[up - 1]) / x[up - 1]) if up.size else np.nan}
        # a scale-down's new level against the highest oracle spec of the past window
        for w in WINDOWS_S:
            n = int(round(w / tick))
            pm = past_max(o, n)
            out[key][f"down/peak{int(w // 60)}m"] = np.median(x[down] / pm[down]) if down.size else np.nan
        # how long the load stayed down before the scale-down: ticks since o was last >= the old level
        since = []
        for d in down:
            above = np.flatnonzero(o[:d] >= x[d - 1])
            since.append((d - (above[-1] if above.size else 0)) * tick / 60)
        out[key]["down_after_min"] = np.median(since) if since else np.nan
        # on a scale-up: the new level over the oracle's spec at the change (overshoot)
        out[key]["up_over"] = np.median(x[up] / o[up]) if up.size else np.nan
        # slack: share of the replica-ticks above the oracle
        out[key]["slack"] = (x - o).sum() / x.sum()
    # does the teacher sit at the recent envelope? share of ticks where s == past max of o over W
    for w in WINDOWS_S:
        n = int(round(w / tick))
        env = np.maximum(past_max(o, n), o)
        out[f"s<=env{int(w // 60)}m"] = float(np.mean(s <= env))
        out[f"p<=env{int(w // 60)}m"] = float(np.mean(p <= env))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(TRACES))
    add_variation_args(ap)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--dump", default=None, metavar="DIR", help="write each trace's schedules as DIR/<name>.npz")
    args = ap.parse_args()
    v = variation_of(args)
    names = scenario_names(args.scenarios)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(analyse, [(n, v, args.dump) for n in names]))
    print(f"inputs: {v.describe()}; teacher = cheapest schedule >= the oracle's spec with <= {BUDGET:g}x HPA's changes; "
          f"policy = the default policy\n")
    rows = [describe(r) for r in results]
    keys = ["changes", "up", "down", "rh", "slack", "dwell_med_min", "dwell_q10_min", "down_after_min", "down_step",
            "up_step", "up_over"] + [f"down/peak{int(w // 60)}m" for w in WINDOWS_S]
    print(f"{'figure':<16}" + "".join(f"{r['name'][6:18]:>26}" for r in rows))
    print(f"{'':<16}" + "".join(f"{'teacher':>13}{'policy':>13}" for _ in rows))
    for key in keys:
        print(f"{key:<16}" + "".join(f"{r['s'][key]:>13.3g}{r['p'][key]:>13.3g}" for r in rows))
    for w in WINDOWS_S:
        key = f"env{int(w // 60)}m"
        print(f"{'<= ' + key:<16}" + "".join(f"{r['s<=' + key]:>13.3g}{r['p<=' + key]:>13.3g}" for r in rows))
    print("\nHPA changes: " + ", ".join(f"{r['name']} {r['hpa_ch']} (K={r['k']})" for r in results))
    print(FINDINGS)


if __name__ == "__main__":
    main()
