"""Small builders shared by the core tests: policies and observations at fixed times."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, RuleType, ScalingRules, Select

T0 = 1_700_000_000.0  # fixed time origin for every test


def policy(**overrides) -> PolicyParams:
    """A one-metric policy (average 100 per replica) in [1, 50] with HPA default behavior."""
    base = dict(name="t", metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),),
                min_replicas=1, max_replicas=50)
    base.update(overrides)
    return PolicyParams(**base)


def without_forecast(p: PolicyParams) -> PolicyParams:
    """The policy with no forecast stage."""
    return dataclasses.replace(p, metrics=tuple(dataclasses.replace(m, forecast=None) for m in p.metrics))


def no_limits(window_down_s: float = 0.0) -> dict:
    """Behavior with no rate policies and the given scale-down window."""
    return dict(scale_up=ScalingRules.of(0, Select.MAX, []), scale_down=ScalingRules.of(window_down_s, Select.MAX, []))


def run(params: PolicyParams, steps: list[tuple[float, list[float] | np.ndarray, float]], current0: float,
        ready=None):
    """Feed ``[(t_offset_s, values (M,) or (N, M), ...)]`` through decide, applying each decision.

    Returns the list of Decisions. Values NaN mean the series is missing.
    """
    values0 = np.atleast_2d(np.asarray(steps[0][1], dtype=float))
    n = values0.shape[0]
    state = ScalingState.empty(n, params)
    current = np.full(n, float(current0))
    out = []
    for t, values, *_ in steps:
        v = np.atleast_2d(np.asarray(values, dtype=float))
        obs = Observation.of(current, current if ready is None else ready, v, present=~np.isnan(v))
        d = decide(params, obs, state, T0 + t)
        out.append(d)
        state, current = d.state, d.norm.desired.copy()
    return out


def replicas_and_reasons(p: PolicyParams, values: list[float], current: float, interval_s: float):
    """One target fed ``values`` (one metric) a cycle ``interval_s`` apart from T0 + 600 s, each
    decision applied: [(desired replicas, Reason)] per cycle."""
    from controller.model import Reason  # noqa: PLC0415

    state, out = ScalingState.empty(1, p), []
    for k, v in enumerate(values):
        d = decide(p, Observation.of([current], [current], [[v]]), state, T0 + 600 + k * interval_s)
        state, current = d.state, float(d.desired[0])
        out.append((int(current), Reason(int(d.reason[0]))))
    return out


__all__ = ["T0", "policy", "no_limits", "run", "RuleType", "Select", "ScalingRules", "MetricKind", "MetricParams"]


def draw_run(draw, p: PolicyParams, lo: int) -> tuple[PolicyParams, np.ndarray, np.ndarray]:
    """A hypothesis-drawn run for policy ``p``: 1-3 targets x 1-24 cycles of metric values (T, N)
    (0-3000 or NaN: missing) and current replicas (T, N) in [lo, p.max_replicas]."""
    n, steps = draw(st.integers(1, 3)), draw(st.integers(1, 24))
    level = st.floats(0, 3000, allow_nan=False)
    values = draw(st.lists(st.lists(st.one_of(level, st.just(float("nan"))), min_size=n, max_size=n),
                           min_size=steps, max_size=steps))
    currents = draw(st.lists(st.lists(st.integers(lo, p.max_replicas), min_size=n, max_size=n),
                             min_size=steps, max_size=steps))
    return p, np.array(values, dtype=float), np.array(currents, dtype=float)
