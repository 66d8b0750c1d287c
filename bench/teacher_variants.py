"""Causal rules imitating the clairvoyant teacher (bench/teacher.py), measured with bench/quality.py
(issue #9: median replica-hours / oracle <= 1.25x and median replica changes / HPA <= 0.5x).

Each variant replaces the default policy's scale-down ceiling (the linear release of the 15m
window) inside the numpy stages (SETPOINT_COMPILED=0), every number the policy's own:

- ``none``:   the policy as it is (the reference: must equal bench/quality.py);
- ``ski``:    change-cost (ski-rental) scale-down. A change is one event whatever its size, so
              a scale-down to level c is worth it once the pods it frees would have cost, since
              the last time the held recommendations needed more than c, as much as one pod
              held for the whole window: (current - c) x (now - last time a recommendation of
              the window was above c) >= 1 pod x window. Many idle pods go soon, one idle pod
              after the window (the policy's own rule: a pod is worth removing once the load
              stayed low for the window); the teacher's big, early drops after a level shift;
- ``ski:minstep``: the same with the change's price the policy's smallest worthwhile step
              (minStep: tolerance: max(1, ceil(current x down tolerance)) pods x window).

- ``upstep``: a scale-up only the ramp asks for must add at least max(1, ceil(current x minStep
              share)) pods (the teacher's ups are half as many and 27-67% each; the policy's are
              65-99% one-pod look-ahead steps on NASA's noise); see install_upstep.

The rest of the policy is unchanged (ramp, up behaviour, minStep after the ceiling). Not-fresh
samples (release_rows False) keep the whole window's max, as the linear release does.

Measured: see bench/teacher.py's FINDINGS (bundled and other inputs).

Run: python bench/teacher_variants.py --variant ski [bench/quality.py's options, e.g. --hpa-cache DIR
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


def ski_ceiling(current: np.ndarray, proposal: np.ndarray, rec_values: np.ndarray, rec_times: np.ndarray,
                now: float, window_s: float, price_pods: np.ndarray) -> np.ndarray:
    """(N,) the lowest level c in [ceil(proposal), current] whose rent since the window's
    recommendations last asked for more than c covers the price of a change: (current - c) x
    (now - last time above c) >= price_pods x window (never above current)."""
    out = current.astype(np.float64).copy()
    inside = rec_times > now - window_s
    for i in range(current.shape[0]):
        if not proposal[i] < current[i]:
            continue
        v, t = rec_values[i][inside[i]], rec_times[i][inside[i]]
        lo = int(np.ceil(proposal[i] - 1e-9))
        for c in range(lo, int(current[i])):
            above = t[v > c + 1e-9]
            since = now - (above.max() if above.size else now - window_s)
            if (current[i] - c) * since >= price_pods[i] * window_s - 1e-9:
                out[i] = c
                break
    return np.maximum(out, proposal)


def install(variant: str) -> None:
    if _installed:
        return
    _installed.append(variant)
    if variant == "none":
        return
    from controller.core.scaling import decide, normalize

    name, _, arg = variant.partition(":")
    if name == "upstep":
        install_upstep()
        return
    if name != "ski":
        raise SystemExit(f"unknown variant {variant!r}")
    plain_stab, plain_norm = normalize.stabilize_with_behavior, normalize.normalize
    share = {"v": 0.0}

    def stab(current, proposal, rec_values, rec_times, now, up_w, down_w, linear=False, rows=None):
        out = plain_stab(current, proposal, rec_values, rec_times, now, up_w, down_w, linear, rows)
        down = proposal < current
        if rows is not None:
            down &= rows
        if not down.any() or down_w <= 0:
            return out
        price = np.ones(current.shape[0])
        if arg == "minstep" and share["v"] > 0:
            price = np.maximum(1.0, np.ceil(current * share["v"] - 1e-9))
        ceiling = ski_ceiling(current, proposal, rec_values, rec_times, now, down_w, price)
        return np.where(down, np.minimum(current, ceiling), out)

    def norm(params, *a, **kw):
        share["v"] = params.scale_down_min_step
        return plain_norm(params, *a, **kw)

    normalize.stabilize_with_behavior = stab
    defaults = list(decide.decide_numpy.__defaults__)
    defaults[-1] = norm
    decide.decide_numpy.__defaults__ = tuple(defaults)


def install_upstep() -> None:
    """``upstep``: a scale-up only the ramp asks for (no reactive proposal above current) goes
    ahead only when it adds at least max(1, ceil(current x minStep share)) pods, the size the
    policy's minStep asks of a scale-down; a smaller look-ahead step is dropped (the ramp still
    holds current: it may delay a scale-down, never cause one). Reactive scale-ups are untouched."""
    from controller.core.scaling import decide

    plain = decide.apply_ramps

    def ramps(params, values, usable, proposals, valid, current, ready, status, states, now, startup_s=None):
        out, res, new_states = plain(params, values, usable, proposals, valid, current, ready, status, states,
                                     now, startup_s)
        share = params.scale_down_min_step
        if not share > 0:
            return out, res, new_states
        reactive_up = (np.where(valid, proposals, -np.inf) > current[:, None]).any(axis=1)
        top = np.where(valid, out, -np.inf).max(axis=1)
        least = np.maximum(1.0, np.ceil(current * share - 1e-9))
        small = ~reactive_up & (top > current) & (top < current + least)
        if small.any():
            held = np.fmax(proposals, np.fmin(out, current[:, None]))
            out = np.where(small[:, None], held, out)
        return out, res, new_states

    decide.apply_ramps = ramps


def score(args):
    install(os.environ.get("TEACHER_VARIANT", "none"))
    return _plain_score(args)


_plain_score = quality.score_scenario


def main() -> None:
    argv = sys.argv[1:]
    variant = "none"
    if "--variant" in argv:
        i = argv.index("--variant")
        variant = argv[i + 1]
        del argv[i:i + 2]
    os.environ["TEACHER_VARIANT"] = variant
    sys.argv = [sys.argv[0]] + argv
    print(f"variant: {variant}")
    quality.score_scenario = score
    quality.main()


if __name__ == "__main__":
    main()
