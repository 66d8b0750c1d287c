"""A faster burst signal for the ramp (issue #9: the ramp's scale-ups on sub-minute bursts).

The ramp's input is the policy query's ``rate(x[1m])``: a burst shorter than the window shows as
a rise lasting a window, and its 60 s slope stays positive for up to two windows after the load
turned. These variants give the ramp a second, short-window reading of the same counter (in the
simulator: the mean of the last ``k`` ticks of the bound signal, ``k = round(S / tick)``; live
this would be a second query, e.g. ``irate(...)`` or ``rate(...[S])``), and a rule that uses it.
Every number is the policy's or the scrape's own: the query window ``w`` (lag w/2), the short
window ``S`` (lag S/2), the interval, the lead.

Short windows (``VARIANT:S``): ``tick`` (the increment over the last scrape, irate-like: the
simulator's tick), ``interval`` (the policy's interval: 15 s, two 10 s ticks).

- ``none``:     the policy as it is (the reference: must equal bench/quality.py);
- ``confirm``:  the ramp acts only where the short-window rate is at least the window rate (the
                latest level still at or above the window's mean: the rise goes on);
- ``slope``:    the ramp's slope is min(its window slope, the slope the two readings imply:
                (short - long) / (w/2 - S/2)). For a steady rise both are the slope; once a
                burst has turned, the short rate falls under the window's mean and the implied
                slope is negative: no look-ahead;
- ``implied``:  the ramp's slope is only the implied one (short - long) / (w/2 - S/2);
- ``cap``:      the look-ahead is capped by the short-window level carried the rest of the lead:
                ahead <= short + max(slope, 0) x (lead - (w/2 - S/2)) (equal for a steady rise);
- ``turn``:     the ramp acts only while the short-window rate is not below its value one
                interval ago (the short signal still rises).

Extras (``VARIANT+upstep``): bench/teacher_variants.py's ``upstep`` rule on top. Measured (same
columns as the table below): implied:tick+upstep bundled 0.13x none 1.45x 0.69x 42 (42/319.8); other
inputs 0.22x none 1.49x 0.70x 116 (116/523.9): better than the default on minutes and changes on
both sets at the same replica-hours, still NOT met on the two missing targets; third set not run.

Built as the policy field ``ramp.latest`` (a second PromQL query over a shorter range window; the
slope the two readings imply, as ``implied``; controller/core/scaling/ramp.py implied_slope): the
simulator reads it as the mean of its own last ticks (simulators/ports.py), so
``bench/quality.py --policy`` with ``latest: ...rate(http_requests_total[10s])`` (one 10 s tick)
is the ``implied:tick`` row on the 10 s-tick traces (checked on trace-nasa-july: 11 min, HPA at
equal cost 22.354, rh/oracle 1.66x, changes 0.89x, as the variant, numpy and compiled; flash-crowd
ticks every 5 s, so [10s] is two ticks there: 2 min, 0.65x changes, HPA at equal cost 4.429 vs the
variant's 4.427).

Measured (December 2026, 2 cores shared by three sessions; bench/quality.py's figures: summed
violation minutes / HPA at equal cost (target <= 0.33), traces lost, median replica-hours / oracle
(<= 1.25), median replica changes / HPA (<= 0.5), summed minutes; demos met on every row unless
said; bundled inputs, then --start-offset 1d --peak-scale 1.5 --startup-delay 90s):

  variant          bundled                                  other inputs
  none             0.27x none 1.47x 0.83x  84 (84/309.3)     0.31x none 1.50x 0.83x 162 (162/520.2)
  implied:tick     0.10x none 1.46x 0.81x  30 (30/304.8)     0.18x none 1.50x 0.84x  92 (92/509.8)
  cap:tick         0.32x none 1.44x 0.76x 111 (111/344.7)    0.32x none 1.50x 0.83x 173 (173/535.4)
  cap:interval     0.31x none 1.45x 0.78x 103 (103/332.8)
  turn:tick        0.32x none 1.43x 0.79x 116 (116/366.3)
  confirm:tick     0.29x none 1.46x 0.83x  95 (95/326.7)
  slope:tick       0.34x none 1.41x 0.74x 130 (130/387.6; the 1/3 target NOT met)

  per trace, implied:tick (none): minutes, rh/oracle, changes/HPA
    bundled  nasa-july 11 (14) 1.66x (1.63x) 0.89x (0.87x); nasa-august 7 (22) 1.80x (1.75x) 0.85x (0.85x);
             elb 9 (36) 1.60x (1.60x) 0.81x (0.83x); twitter 2 (11) 1.33x (1.33x) 0.75x (0.76x);
             wc98 0 (0) 1.22x->1.24x; nyc-taxi 1 (1) 1.19x 0.71x; flash-crowd 2 (2), changes 0.65x (0.71x)
    other    nasa-july 5 (10) 1.82x (1.73x) 0.84x (0.82x); nasa-august 10 (14) 2.04x (1.91x) 0.89x (0.93x);
             elb 59 (107) 1.63x (1.64x) 0.96x (0.95x); twitter 14 (27) 1.37x (1.37x) 0.74x (0.76x);
             wc98 2 (2) 1.31x (1.29x) 0.78x (0.79x); nyc-taxi 2 (2) 1.20x 0.84x

  --start-offset 2d --peak-scale 0.8 --startup-delay 45s (its HPA frontier is now in /work/hpa-cache;
  the policy as it is not re-run here: bench/change_merge.py's row for it is 0.25x none 1.46x 0.86x 69):
  implied:tick     0.10x none 1.56x 0.89x  25 (25/253.6), demos met
    nasa-july 4 min 1.70x 0.95x; nasa-august 14, 1.82x 1.11x; wc98 1, 1.27x 0.76x; nyc-taxi 1, 1.17x 0.63x;
    twitter 2, 1.59x 1.15x; elb 3, 1.53x 0.83x; flash-crowd 2 min 0.79x; diurnal 1 0.81x; step 1 0.86x
  so on the third set the faster look-ahead costs replica-hours (median 1.46x -> 1.56x: twitter's
  rh/oracle 1.59x, NASA's 1.70-1.82x) and changes (0.86x -> 0.89x; twitter and nasa-august above
  HPA's) for 69 -> 25 minutes: with lower peaks (x0.8) the minutes were already cheap and the
  earlier look-ahead adds pods the 15-minute window then holds.

What it shows. The rules that take look-ahead away (cap, turn, confirm, slope: the min of the two
slopes) move only NASA (the 1-minute traces; ELB and Twitter are 5-minute traces interpolated
linearly, taxi 30-minute: no sub-minute bursts to tell apart) and trade along the curve the earlier
filters were on: NASA changes 0.87x -> 0.74x and rh/oracle 1.63x -> 1.50x for 14 -> 24-37 minutes,
which spends the 1/3 target's slack (slope loses it) and gives nothing on the other inputs (cap:
changes 0.83x, 173 min). ``implied`` (the fresher slope replacing the window's) is different: the
look-ahead starts a window sooner on a real rise and stops when a burst turns, so the violation
minutes fall on every trace with a rise in it (bundled 84 -> 30, other inputs 162 -> 92; ELB 36 -> 9,
107 -> 59) while the median replica-hours and changes stay where they were (NASA's rh/oracle rises
3-7%: the earlier look-ahead on NASA's minute-to-minute noise holds more peaks for the 15-minute
window). So the faster signal does not meet the two missing targets by itself (and on the third set it
moves both the wrong way); it frees violation
minutes (0.10x / 0.18x against a 0.33x budget), which is what the change- and pod-saving rules
that lost the 1/3 target on the minutes needed (bench/teacher_variants.py upstep: 0.68x / 0.67x
changes, 0.36x minutes on the other inputs; bench/change_merge.py window 10m: 1.38x rh;
pending:far): the combinations are the next thing to measure.

Caveats. The simulator's traces are smooth within a minute (linear between interval midpoints), so
the short reading there is the exact current slope; a live ``rate(x[30s])`` of real traffic is
noisier (Poisson alone: ~2% at 200 rps over 20 s, carried lead / gap = 3.75x into ``ahead``). The
demos carry per-tick noise (flash-crowd 5%, step 3%) and kept their wins. ``ramp.latest`` runs on
the fused kernel too (bit-identical with the numpy stages, tests/core/test_ramp_latest.py).

Run: python bench/burst_signal.py --variant slope:tick [bench/quality.py's options, e.g. --hpa-cache DIR
     --start-offset 1d --peak-scale 1.5 --startup-delay 90s]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ["SETPOINT_COMPILED"] = "0"  # the variants wrap the numpy stages
sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

_installed: list[str] = []
_short: dict = {"v": None, "prev": None, "t": None, "window_s": None}


def install(variant: str) -> None:
    if _installed:
        return
    _installed.append(variant)
    variant, *extras = variant.split("+")
    name, _, which = variant.partition(":")
    if name != "none":
        install_short(variant, name, which)
    for extra in extras:  # rules of bench/teacher_variants.py on top (upstep, upstep:enlarge)
        import teacher_variants
        rule, _, arg = extra.partition(":")
        if rule != "upstep":
            raise SystemExit(f"unknown extra rule {extra!r}")
        teacher_variants.install_upstep(arg)


def install_short(variant: str, name: str, which: str) -> None:
    from controller.core.scaling import decide
    from controller.core.scaling.propose import propose_policy
    from controller.core.scaling.ramp import Ramps
    from simulators.ports import SimMetrics

    plain_query = SimMetrics.query

    def query(self, expr, targets, at, labels=None):
        out = plain_query(self, expr, targets, at, labels)
        if self.bindings.get(expr) == "offered_rps" and labels is None:
            short_s = self.tick_s if which in ("", "tick") else 15.0 if which == "interval" else float(which)
            k = max(1, min(self.slots, int(round(short_s / self.tick_s))))
            k = min(k, self._k)
            rows = (self._targets.selection(targets) if self._targets
                    else np.asarray([self.cluster.index(t) for t in targets]))
            ring = self._ring["offered_rps"]
            idx = [(self._k - 1 - i) % self.slots for i in range(k)]
            v = np.mean(ring[idx][:, rows], axis=0) if k else np.full(len(targets), np.nan)
            if _short["t"] is not None and at < _short["t"]:
                _short["prev"] = None
            _short["prev"] = _short["v"]
            _short["v"], _short["t"], _short["window_s"] = np.asarray(v, np.float64), at, k * self.tick_s
        return out
    SimMetrics.query = query

    plain_ramps = decide.apply_ramps

    def ramps(params, values, usable, proposals, valid, current, ready, status, states, now, startup_s=None, latest=None,
              withheld=None):
        out, res, new_states = plain_ramps(params, values, usable, proposals, valid, current, ready, status,
                                           states, now, startup_s, latest, withheld)
        short = _short["v"]
        if short is None or short.shape[0] != values.shape[0]:
            return out, res, new_states
        j = params.ramp_metrics[0]
        rp = params.metrics[j].ramp
        y = values[:, j]
        lead = rp.leads(startup_s, y.shape[0])
        slope = res.slope[:, j]
        gap = 0.5 * rp.window_s - 0.5 * _short["window_s"]  # how much later the short reading is
        with np.errstate(invalid="ignore"):
            if name == "confirm":
                ok = short >= y
                ahead = np.where(ok, res.ahead[:, j], y)
            elif name == "slope":
                implied = (short - y) / gap
                s = np.fmin(slope, implied)  # NaN slope stays NaN
                s = np.where(np.isfinite(slope), s, np.nan)
                ahead = y + np.maximum(s, 0.0) * lead
            elif name == "implied":
                implied = (short - y) / gap
                ahead = np.where(np.isfinite(slope), y + np.maximum(implied, 0.0) * lead, np.nan)
            elif name == "cap":
                capped = short + np.maximum(slope, 0.0) * np.maximum(lead - gap, 0.0)
                ahead = np.fmin(res.ahead[:, j], np.fmax(capped, y))
            elif name == "turn":
                prev = _short["prev"]
                ok = short >= prev if prev is not None and prev.shape == short.shape else np.ones(short.shape, bool)
                ahead = np.where(ok, res.ahead[:, j], y)
            else:
                raise SystemExit(f"unknown variant {variant}")
        ahead = np.where(np.isfinite(res.ahead[:, j]), ahead, np.nan)
        full = res.ahead.copy()
        full[:, j] = ahead
        ramp_prop, ramp_ok = propose_policy(params, full, current, ready, status)
        ramp_ok &= valid & np.isfinite(full)
        # the reactive proposals: recompute as the plain stage did, from the proposals it was given
        out = np.where(ramp_ok, np.fmax(proposals, ramp_prop), proposals)
        return out, Ramps(res.slope, full, np.where(ramp_ok, ramp_prop, np.nan), params.ramp_metrics), new_states

    decide.apply_ramps = ramps


def main() -> None:
    quality.main_with_variant("BURST_SIGNAL_VARIANT", install)


if __name__ == "__main__":
    main()
