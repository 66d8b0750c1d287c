"""How far the ramp's look-ahead may reach on its evidence (issue #9: long pod start-ups).

The ramp sizes for ``ahead = value + max(slope, 0) x lead``, lead = start-up + interval + half
the window. With ``ramp.latest`` the slope is (latest - value) / gap over a 15 s gap, so the
projection carries the two readings' difference ~lead / gap times: 5x with 30 s start-ups,
15x with 180 s. On noisy bursts the look-ahead follows the noise further the longer pods take
(bench/quality.py --startup-delay 180s: 0.42x HPA at equal cost, 1.07x its changes). These
variants bound the projected rise above the latest level (``ref``: the latest reading, else
the value) by the rise already observed, every number the policy's own:

- ``none``:        the policy as it is (the reference: must equal bench/quality.py);
- ``reach:window``: ahead <= ref + max(0, ref - the value one window ago) (the ring the ramp
                   already keeps): a steady rise is untouched while lead - gap <= window + gap
                   (start-ups up to 45 s with the default's windows), and carried at most one
                   window's rise beyond (a rise is assumed to go on at most as far as the
                   evidence of it reaches);
- ``reach:lead``:  ahead <= ref + max(0, ref - the value one lead ago) (a rise is assumed to go
                   on at most as long as it has lasted; needs samples one lead back, which the
                   ramp's ring does not keep: the bench keeps its own).

Measured (December 2026, --startup-delay 180s, bench/quality.py's figures: summed violation
minutes / HPA at equal cost, traces lost, median rh / oracle, median changes / HPA):

  variant        180 s start-ups
  none           0.42x (204 / 487.7)  none lost  1.53x  1.07x
  reach:window   0.76x (598 / 787.7)  WC98 lost  1.34x  0.74x
  reach:lead     0.70x (446 / 635.1)  none lost  1.41x  0.82x

Both cut pods and changes and lose far more minutes than HPA gains at the lower replica-hours
(ELB 151 -> 397 / 274, Twitter 43 -> 105 / 72 minutes): the long projections on these traces
are mostly rises that come, not noise. Not built; the hypothesis that the look-ahead's reach
is what costs at long start-ups is rejected.

Variants run in this process only: the bench wraps the numpy ramp stage (SETPOINT_COMPILED=0)
and keeps one target's history itself; the trace scenarios have one service.

Run: python bench/reach.py --variant reach:window [bench/quality.py's options, e.g. --hpa-cache DIR
     --startup-delay 180s]
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout


def install(variant: str) -> None:
    if variant == "none":
        return
    from controller.core.scaling import ramp
    from controller.core.scaling.ramp import RampResult, window_ago

    name, _, which = variant.partition(":")
    if name != "reach" or which not in ("window", "lead"):
        raise SystemExit(f"unknown variant {variant!r}")
    plain = ramp.ramp_step
    seen: deque = deque()  # (now, values) of this process's current run, newest last

    def bounded(rp, state, y, ok, now, startup_s=None, latest=None):
        res, new_state = plain(rp, state, y, ok, now, startup_s, latest)
        y = np.asarray(y, dtype=np.float64)
        if seen and now <= seen[-1][0]:  # a new run in this worker
            seen.clear()
        lead = rp.leads(startup_s, y.shape[0])
        if which == "window":
            old_v, _ = window_ago(state.values, state.times, now, rp.window_s, 0.5 * rp.interval_s)
        else:
            old_v = np.full(y.shape, np.nan)
            for t, v in reversed(seen):
                if t <= now - lead.max() + 0.5 * rp.interval_s:
                    old_v = v
                    break
        seen.append((now, y.copy()))
        while seen and seen[0][0] < now - 3600.0:
            seen.popleft()
        ref = y if latest is None else np.where(np.isfinite(latest), latest, y)
        with np.errstate(invalid="ignore"):
            cap = ref + np.maximum(ref - old_v, 0.0)
            ahead = np.where(np.isfinite(cap), np.fmin(res.ahead, np.fmax(cap, y)), res.ahead)
        return RampResult(res.slope, ahead), new_state

    ramp.ramp_step = bounded


def main() -> None:
    quality.main_with_variant("REACH_VARIANT", install)


if __name__ == "__main__":
    main()
