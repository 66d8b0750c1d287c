"""When the forecast's predictive side should act (issue #9: the forecast at short and long start-ups).

The forecast stage sizes for ``upper = point + margin x q`` (q: a quantile of its recent
absolute errors) wherever it is trusted, so on a flat load it holds about q of standing
headroom. These variants let it act only where it predicts a rise, every number the stage's own
(wrapped around the numpy forecast stage, SETPOINT_COMPILED=0; run with a policy that forecasts,
e.g. the default plus ``forecast: {startupDelay: observed}``):

- ``none``:      as built (the reference: must equal bench/quality.py);
- ``rise``:      only where the point forecast is above the current value;
- ``confident``: only where the predicted rise exceeds the error margin (point - margin x q > value).

Measured (December 2026; summed violation minutes / HPA at equal cost, median rh / oracle,
median changes / HPA; bundled inputs, then --startup-delay 180s):

  variant      bundled                      180 s start-ups
  (no forecast) 52  0.16x 1.45x 0.69x       204 0.42x 1.53x 1.07x (NOT met)
  none          26  0.14x 1.56x 0.64x       110 0.32x 1.77x 0.90x
  rise          31  0.13x 1.52x 0.70x       169 0.40x 1.63x 1.04x (NOT met)
  confident     52  0.16x 1.46x 0.69x       204 0.42x 1.53x 1.07x (NOT met: it never acts)

What the forecast buys at long start-ups is mostly its error margin: headroom as large as the
load's recent unpredictability one horizon ahead, which grows with the start-up. Gating it to
predicted rises gives back part of the pods and most of the minutes. Not built.

Run: python bench/forecast_gate.py --variant rise --policy FILE [bench/quality.py's options]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout


def install(variant: str) -> None:
    if variant == "none":
        return
    if variant not in ("rise", "confident"):
        raise SystemExit(f"unknown variant {variant!r}")
    from controller.core.scaling import forecast as fc

    plain = fc.forecast_step

    def gated(fp, state, y, ok, now, startup_s=None):
        res, new_state = plain(fp, state, y, ok, now, startup_s)
        y = np.asarray(y, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            margin = res.upper - res.point  # margin x q
            act = res.point > y if variant == "rise" else res.point - margin > y
        return fc.ForecastResult(res.point, res.upper, res.mase, res.trusted & act), new_state

    fc.forecast_step = gated


def main() -> None:
    quality.main_with_variant("FORECAST_GATE_VARIANT", install)


if __name__ == "__main__":
    main()
