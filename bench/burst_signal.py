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

    def ramps(params, values, usable, proposals, valid, current, ready, status, states, now, startup_s=None):
        out, res, new_states = plain_ramps(params, values, usable, proposals, valid, current, ready, status,
                                           states, now, startup_s)
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


def score(args):
    install(os.environ.get("BURST_SIGNAL_VARIANT", "none"))
    return _plain_score(args)


_plain_score = quality.score_scenario


def main() -> None:
    quality.main_with_variant("BURST_SIGNAL_VARIANT", score)


if __name__ == "__main__":
    main()
