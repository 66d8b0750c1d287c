"""HPA's cost/violation frontier: the fair comparison of a policy against HPA at equal cost.

A controller that spends more replica-hours than HPA buys fewer SLO-violation minutes; so does
HPA with a lower utilization target. The fair question is how many violation minutes HPA has
when it is re-targeted to spend the *same* replica-hours as the policy. This module sweeps the
``hpa`` preset over several utilization targets on the same scenario and seed, takes the points
(replica-hours, SLO-violation minutes), and interpolates along their envelope.

The envelope is the lower monotone one: points sorted by replica-hours, keeping only those with
fewer violation minutes than every cheaper point (a point that costs more and violates no less
is dominated: a user would pick the cheaper target). Between adjacent envelope points the
frontier is linear. Outside the swept range it is extrapolated flat at the end point and flagged
``below`` (the controller spends less than HPA's cheapest target: HPA's true value is at least
this) or ``above`` (it spends more than HPA's dearest target: HPA's true value is at most this);
:func:`simulators.hpa_sweep.sweep_frontier` first widens the sweep, within a bound of extra runs, to avoid that.

Everything here is pure (numpy); simulators/hpa_sweep.py runs the simulations.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from controller.policy import LoadedPolicy
from simulators.result import EqualCost, Frontier, FrontierPoint
from simulators.score import DECIMALS

#: Utilization targets (percent) of the default sweep.
DEFAULT_TARGETS_PCT = (40.0, 50.0, 60.0, 70.0, 80.0)
#: The baseline on the frontier (not compared with itself).
HPA = "hpa"
#: Values closer than this (minutes) are equal: the scores are rounded to 3 decimals.
EQUAL_TOLERANCE = 1e-9


# --- pure: envelope, interpolation, comparison ----------------------------------------------


def monotone_envelope(replica_hours: Sequence[float], violation_minutes: Sequence[float]) -> np.ndarray:
    """Indices of the points on the lower monotone envelope, by ascending replica-hours.

    A point is kept when its violation minutes are strictly below those of every point with
    fewer replica-hours; among points with equal replica-hours only the one with the fewest
    violation minutes can be kept (the first in input order on a full tie). Along the returned
    indices replica-hours strictly increase and violation minutes strictly decrease. Empty
    input gives an empty array.
    """
    x = np.asarray(replica_hours, dtype=float)
    y = np.asarray(violation_minutes, dtype=float)
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(x.size), y, x))  # by x, then y, then input position
    ys = y[order]
    best_before = np.concatenate([[math.inf], np.minimum.accumulate(ys)[:-1]])
    return order[ys < best_before]


def interpolate(env_x: np.ndarray, env_y: np.ndarray, x: float,
                swept: tuple[float, float] | None = None) -> tuple[float | None, str | None]:
    """HPA's violation minutes at ``x`` replica-hours along the envelope (``env_x`` strictly
    increasing, ``env_y`` decreasing), and whether it was extrapolated.

    Linear between adjacent envelope points, flat beyond its ends. The flag is None when ``x``
    lies within ``swept`` (the replica-hours range of every swept point, default the
    envelope's: a dearer point off the envelope shows the frontier is flat up to it), else
    ``"below"`` or ``"above"``. (None, None) for an empty envelope or a non-finite ``x``.
    """
    if len(env_x) == 0 or not math.isfinite(x):
        return None, None
    lo, hi = swept if swept is not None else (env_x[0], env_x[-1])
    flag = "below" if x < lo else "above" if x > hi else None
    return float(np.interp(x, env_x, env_y)), flag


def compare(minutes: float, hpa_minutes: float | None) -> tuple[float | None, str | None]:
    """(ratio, verdict) of a controller's violation minutes to HPA's at equal cost.

    The verdict is ``win`` (fewer), ``tie`` (equal, including 0 and 0) or ``loss`` (more). The
    ratio is ``minutes / hpa_minutes``; None when HPA's is 0 (0/0 is a tie, x/0 a loss) or
    unknown, so that JSON never holds inf or NaN.
    """
    if hpa_minutes is None:
        return None, None
    if abs(minutes - hpa_minutes) <= EQUAL_TOLERANCE:
        verdict = "tie"
    else:
        verdict = "win" if minutes < hpa_minutes else "loss"
    ratio = round(minutes / hpa_minutes, DECIMALS) if hpa_minutes > EQUAL_TOLERANCE else None
    return ratio, verdict


def equal_cost(controller: str, replica_hours: float, minutes: float, points: Sequence[FrontierPoint]) -> EqualCost:
    """The comparison of one controller's point with HPA's swept ``points`` at its replica-hours."""
    xs = np.array([p.replica_hours for p in points], dtype=float)
    ys = np.array([p.slo_violation_minutes for p in points], dtype=float)
    env = monotone_envelope(xs, ys)
    swept = (float(xs.min()), float(xs.max())) if xs.size else None
    hpa, extrapolated = interpolate(xs[env], ys[env], replica_hours, swept)
    hpa = None if hpa is None else round(hpa, DECIMALS)
    ratio, verdict = compare(minutes, hpa)
    return EqualCost(controller=controller, replica_hours=replica_hours, slo_violation_minutes=minutes,
                     hpa_slo_violation_minutes=hpa, extrapolated=extrapolated, ratio=ratio, verdict=verdict)


def outside_side(points: Sequence[FrontierPoint], replica_hours: float) -> str | None:
    """``"dearer"`` when ``replica_hours`` is above every point's, ``"cheaper"`` when below,
    else None (also for no points)."""
    costs = [p.replica_hours for p in points]
    if not costs or min(costs) <= replica_hours <= max(costs):
        return None
    return "dearer" if replica_hours > max(costs) else "cheaper"


def frontier_of(points: Sequence[FrontierPoint], controllers: dict[str, dict], hpa_policy: str = "") -> Frontier:
    """The frontier of swept ``points`` and each controller's comparison with it.

    ``controllers``: name -> scores (``replica_hours``, ``slo_violation_minutes``); HPA's own
    run is on the frontier, so it is not compared with itself.
    """
    pts = sorted(points, key=lambda p: p.target_pct)
    env = monotone_envelope([p.replica_hours for p in pts], [p.slo_violation_minutes for p in pts])
    compared = {name: equal_cost(name, s["replica_hours"], s["slo_violation_minutes"], pts)
                for name, s in controllers.items() if name != HPA}
    return Frontier(hpa_policy=hpa_policy, points=pts, envelope=[pts[i] for i in env], equal_cost=compared)


# --- the sweep ------------------------------------------------------------------------------


def retargeted(hpa: LoadedPolicy, target_pct: float) -> LoadedPolicy:
    """The preset with its first metric's target set to ``target_pct`` (other metrics scaled by
    the same factor), named ``NAME@TARGET%``."""
    base = hpa.params.metrics[0].target
    factor = target_pct / base
    metrics = tuple(replace(m, target=m.target * factor) for m in hpa.params.metrics)
    name = f"{hpa.name}@{target_pct:g}%"
    return replace(hpa, name=name, params=replace(hpa.params, name=name, metrics=metrics))


#: Most CPU targets of a frontier: 1000 were accepted, a run of the hpa preset each (a simulation
#: of 20 minutes still running after a minute).
MAX_TARGETS = 100


def parse_targets(text: str) -> list[float]:
    """``"40,50,60"`` -> [40.0, 50.0, 60.0]; ValueError naming the bad item. Each in (0, 1000]."""
    out = []
    for item in text.split(","):
        item = item.strip().rstrip("%")
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--frontier-targets: expected numbers (percent) separated by commas, got {item!r}") from None
        if not 0 < value <= 1000 or not math.isfinite(value):
            raise ValueError(f"--frontier-targets: each target must be in (0, 1000] percent, got {item!r}")
        out.append(value)
    if not out:
        raise ValueError("--frontier-targets: expected at least one target")
    if len(set(out)) > MAX_TARGETS:  # each is a whole run of the hpa preset
        raise ValueError(f"--frontier-targets: at most {MAX_TARGETS} targets (each is one more run of the hpa "
                         f"preset), got {len(set(out)):,}")
    return sorted(set(out))


__all__ = ["DEFAULT_TARGETS_PCT", "monotone_envelope", "interpolate", "compare", "equal_cost", "frontier_of",
           "retargeted", "parse_targets"]
