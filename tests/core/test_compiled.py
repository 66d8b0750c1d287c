"""The compiled decision kernel (core/scaling/fused.py, run by decide through core/scaling/workspace.py) gives
the numpy stages' Decision, array for array.

Scripted rows name the path each exercises (and check the path is taken); hypothesis runs random
policies over random observation sequences (gaps, stale, negative, non-finite samples, replicas
outside the bounds, unready pods). Every output and state array must be identical (NaN where
NaN), cycle after cycle, each path fed its own previous state.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import controller.core.scaling.decide as decide_module
from controller.core.scaling import compiled, workspace
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.params import (ForecastParams, MetricKind, MetricParams, PolicyParams, RampParams,
                                            RuleType, ScalingRules, Select, Smoothing)
from controller.model import Reason
from controller.policy import load_policies
from tests.core.helpers import T0

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

COMPILED_SMOOTHING = [Smoothing.NONE, Smoothing.EWMA, Smoothing.MEAN, Smoothing.MAX]


def assert_same(a: Decision, b: Decision, where: str) -> None:
    """Every array of two Decisions (and of their states) is identical."""
    pairs = {f"signal.{k}": (getattr(a.signal, k), getattr(b.signal, k))
             for k in ("values", "missing", "stale", "nonfinite", "negative", "implausible", "usable")}
    pairs.update({k: (getattr(a, k), getattr(b, k)) for k in ("smoothed", "proposals", "valid")})
    pairs.update({f"norm.{k}": (getattr(a.norm, k), getattr(b.norm, k)) for k in
                  ("combined", "proposal", "stabilized", "desired", "limit_reason", "reason", "scaling_active")})
    pairs.update({f"smooth.{k}": (getattr(a.state.smooth, k), getattr(b.state.smooth, k))
                  for k in ("ewma", "ewma_at", "samples", "sample_at")})
    pairs.update({f"norm_state.{k}": (getattr(a.state.norm, k), getattr(b.state.norm, k))
                  for k in ("rec_values", "rec_times", "up_changes", "up_times", "down_changes", "down_times",
                            "missing_since", "usable_since")})
    assert (a.ramps is None) == (b.ramps is None), f"{where}: ramps on one path only"
    if a.ramps is not None:
        assert a.ramps.columns == b.ramps.columns, f"{where}: ramp columns"
        pairs.update({f"ramps.{k}": (getattr(a.ramps, k), getattr(b.ramps, k)) for k in ("slope", "ahead", "proposal")})
    assert len(a.state.ramp) == len(b.state.ramp), f"{where}: ramp states"
    for r, (x, y) in enumerate(zip(a.state.ramp, b.state.ramp)):
        pairs.update({f"ramp_state[{r}].values": (x.values, y.values), f"ramp_state[{r}].times": (x.times, y.times)})
    for name, (x, y) in pairs.items():
        assert x.shape == y.shape, f"{where}: {name} shape {x.shape} != {y.shape}"
        np.testing.assert_array_equal(x, y, err_msg=f"{where}: {name}")
        if x.dtype.kind == "f":  # same NaNs and same signed zeros would follow; values compare exactly
            assert x.dtype == y.dtype, f"{where}: {name} dtype"


def run_both(params: PolicyParams, values: np.ndarray, current0, ready_lag: int = 0, ages=None, present=None,
             status_extra=None, interval_s: float = 15.0, withheld: int = 0, latest=None) -> list[Decision]:
    """Feed (steps, N, M) values to both paths, each applying its own decisions; returns numpy's.
    ``withheld``: that many of the not-ready replicas are withheld (core/scaling/withheld.py);
    ``latest``: (steps, N, M) the ramps' latest readings (NaN: none), or None."""
    steps, n, _ = values.shape
    states = [ScalingState.empty(n, params)] * 2
    currents = [np.asarray(current0, dtype=float).copy()] * 2
    out = []
    for k in range(steps):
        now = T0 + k * interval_s
        decisions = []
        for path, run in enumerate((decide_numpy, compiled_decide)):
            cur = currents[path]
            ready = np.maximum(cur - ready_lag, 0.0)
            status = cur if status_extra is None else cur + status_extra
            obs = Observation.of(cur, ready, values[k], status=status,
                                 present=~np.isnan(values[k]) if present is None else present[k],
                                 sample_age_s=None if ages is None else ages[k],
                                 withheld=np.minimum(withheld, cur - ready) if withheld else None,
                                 latest=None if latest is None else latest[k])
            decisions.append(run(params, obs, states[path], now))
        assert_same(decisions[0], decisions[1], f"cycle {k}")
        states = [d.state for d in decisions]
        currents = [d.norm.desired.copy() for d in decisions]
        out.append(decisions[0])
    return out


def compiled_decide(params, obs, state, now) -> Decision:
    assert compiled.supports(params)
    return decide_module._decide_compiled(params, obs, state, now)


def metric(kind=MetricKind.AVERAGE_PER_REPLICA, target=100.0, name="rps") -> MetricParams:
    return MetricParams(name, kind, target)


def params(**overrides) -> PolicyParams:
    base = dict(name="t", metrics=(metric(),), min_replicas=1, max_replicas=50)
    base.update(overrides)
    return PolicyParams(**base)


def ramp(levels, n: int = 3, m: int = 1) -> np.ndarray:
    """(steps, n, m): each target at level * (1 + row / 10)."""
    levels = np.asarray(levels, dtype=float)
    return levels[:, None, None] * (1.0 + np.arange(n)[None, :, None] / 10.0) * np.ones((1, 1, m))


NAN = float("nan")
RAMPED = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0, ramp=RampParams(lead_s=75.0, window_s=30.0))
POOLED = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 85.0, capacity=100.0)
POOLED_RAMPED = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 85.0, capacity=100.0,
                             ramp=RampParams(lead_s=75.0, window_s=30.0))
SATURATED = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 85.0, saturation_capacity=100.0)
SATURATED_RAMPED = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 85.0, saturation_capacity=100.0,
                                ramp=RampParams(lead_s=75.0, window_s=30.0))
DOWN_RATE = ScalingRules.of(60, Select.MAX, [(RuleType.PERCENT, 20, 60), (RuleType.PODS, 2, 30)])
UP_MIN = ScalingRules.of(30, Select.MIN, [(RuleType.PODS, 1, 15), (RuleType.PERCENT, 50, 30)])

SCRIPTED = [
    pytest.param(params(), ramp([500, 900, 1500, 300, 100, 100, 100]), 5.0, {}, Reason.SCALE_UP,
                 id="average-up-and-down"),
    pytest.param(params(scale_down=DOWN_RATE), ramp([2000] * 3 + [100] * 10), 10.0, {}, Reason.RATE_LIMITED_DOWN,
                 id="rate-limited-scale-down"),
    pytest.param(params(scale_up=UP_MIN), ramp([100, 3000, 3000, 3000, 3000]), 2.0, {}, Reason.RATE_LIMITED_UP,
                 id="select-min-rate-limited-up"),
    pytest.param(params(scale_down=ScalingRules.of(0, Select.DISABLED, [])), ramp([2000, 100, 100]), 10.0, {},
                 Reason.RATE_LIMITED_DOWN, id="scale-down-disabled"),
    pytest.param(params(max_replicas=8), ramp([100, 5000, 5000]), 3.0, {}, Reason.CLAMPED_TO_MAX, id="clamped-to-max"),
    pytest.param(params(), ramp([100, 100, 100]), 0.0, {}, Reason.SCALING_DISABLED, id="zero-replicas-disabled"),
    pytest.param(params(max_replicas=4), ramp([100, 100]), 9.0, {}, Reason.ABOVE_MAX, id="above-max-forced"),
    pytest.param(params(min_replicas=3), ramp([100, 100]), 1.0, {}, Reason.BELOW_MIN, id="below-min-forced"),
    pytest.param(params(metrics=(metric(), metric(MetricKind.VALUE, 0.25, "latency"))),
                 np.stack([ramp([500] * 6)[..., 0], ramp([0.1, NAN, 0.1, NAN, 0.1, 0.1])[..., 0]], axis=2), 10.0, {},
                 Reason.METRICS_MISSING, id="missing-metric-blocks-scale-down"),
    pytest.param(params(fallback_replicas=7, missing_hold_s=30.0), ramp([300, NAN, NAN, NAN, NAN, 300]), 3.0, {},
                 Reason.FALLBACK_REPLICAS, id="fallback-after-hold"),
    pytest.param(params(metrics=(metric(MetricKind.VALUE, 0.5),)), ramp([0.0, 2.0, 0.3, 0.6]), 0.0, {},
                 Reason.SCALING_DISABLED, id="value-from-zero"),
    pytest.param(params(metrics=(metric(MetricKind.VALUE, 0.5),), min_replicas=0), ramp([2.0, 0.6, 0.1]), 0.0, {},
                 Reason.SCALE_UP, id="value-scale-from-zero-min-0"),
    pytest.param(params(metrics=(metric(MetricKind.UTILIZATION, 60.0, "cpu"),), legacy=True),
                 ramp([300, 300, 300, 10, 10]), 2.0, {}, Reason.RATE_LIMITED_UP, id="legacy-scale-up-cap"),
    pytest.param(params(legacy=True, scale_down=ScalingRules.of(60, Select.MAX, [])),
                 ramp([900, 100, 100, 100, 100, 100]),
                 9.0, {}, Reason.STABILIZED_DOWN, id="legacy-window"),
    pytest.param(params(smoothing=Smoothing.EWMA, half_life_s=40.0), ramp([100, 900, NAN, 900, 200, 200]), 2.0, {},
                 Reason.SCALE_UP, id="ewma-with-gap"),
    pytest.param(params(smoothing=Smoothing.MEAN, window_s=150.0), ramp([100, 900, 950, NAN] + [300] * 10), 2.0, {},
                 Reason.SCALE_UP, id="window-mean-11-slots-pairwise"),
    pytest.param(params(smoothing=Smoothing.MAX, window_s=45.0), ramp([1500, 100, 100, 100, 100]), 2.0, {},
                 Reason.SCALE_UP, id="window-max"),
    pytest.param(params(stale_after_s=30.0), ramp([900, 900, 900]), 4.0,
                 dict(ages=np.array([[[0.0]] * 3, [[60.0]] * 3, [[0.0]] * 3])), Reason.METRICS_MISSING,
                 id="stale-sample"),
    pytest.param(params(), ramp([500, -5.0, np.inf, 500]), 4.0, {}, Reason.METRICS_MISSING, id="negative-and-inf"),
    pytest.param(params(), ramp([500, 1e300, 1e300]), 4.0, {}, Reason.METRICS_MISSING, id="implausible"),
    pytest.param(params(metrics=(RAMPED,)), ramp([300, 300, 300, 400, 550, 750, 1000, 1300, 1300, 1300]), 3.0, {},
                 Reason.SCALE_UP, id="ramp-rising-load"),
    pytest.param(params(scale_down=ScalingRules.of(30, Select.MAX, []), tolerance_down=0.2, scale_down_min_step=0.2),
                 ramp([2000, 1900, 1800, 1700, 1500, 1300, 1200, 900, 900, 200, 200]), 20.0, {},
                 Reason.STABILIZED_DOWN, id="min-step-holds-small-scale-downs"),
    pytest.param(params(metrics=(RAMPED,), scale_down=DOWN_RATE, scale_down_min_step=0.15),
                 ramp([900, 1300, 1200, 1000, 900, 800, 700, 400, 400, 400, 400, 100]), 9.0, {},
                 Reason.RATE_LIMITED_DOWN, id="min-step-with-ramp-and-rate-limit"),
    pytest.param(params(scale_down=ScalingRules.of(60, Select.MAX, []), scale_down_linear_release=True),
                 ramp([2000, 2000, 100, 100, 100, 100, 100, 100]), 20.0, {}, Reason.STABILIZED_DOWN,
                 id="linear-release-steps-down-over-the-window"),
    pytest.param(params(metrics=(RAMPED,), scale_down=DOWN_RATE, scale_down_linear_release=True,
                        scale_down_min_step=0.15),
                 ramp([900, 1300, 1200, 1000, 900, 800, 700, 400, 400, 400, 400, 100]), 9.0, {},
                 Reason.RATE_LIMITED_DOWN, id="linear-release-with-ramp-min-step-and-rate-limit"),
    pytest.param(params(metrics=(RAMPED, metric(MetricKind.UTILIZATION, 60.0, "cpu")), smoothing=Smoothing.EWMA,
                        half_life_s=30.0),
                 np.stack([ramp([300, NAN, 500, 800, NAN, NAN, 1200, 600, 300, 300])[..., 0],
                           ramp([50, 70, 90, 80, 60, 40, 30, 30, 30, 30])[..., 0]], axis=2), 3.0, dict(ready_lag=1),
                 Reason.SCALE_UP, id="ramp-with-gaps-ewma-and-utilization"),
    pytest.param(params(metrics=(POOLED,), min_replicas=2), ramp([100, 400, 1500, 3000, 3000, 900, 150, 150]), 2.0,
                 {}, Reason.SCALE_UP, id="pooled-headroom"),
    pytest.param(params(metrics=(POOLED_RAMPED, metric(MetricKind.UTILIZATION, 60.0, "cpu")), min_replicas=0),
                 np.stack([ramp([300, NAN, 500, 800, np.inf, 1200, 1200, 600, -3.0, 300])[..., 0],
                           ramp([50, 70, 90, 80, 60, 40, 30, 30, 30, 30])[..., 0]], axis=2), 3.0, dict(ready_lag=1),
                 Reason.SCALE_UP, id="pooled-headroom-ramp-min-zero-and-utilization"),
    # ready pods lag two cycles: 430 rps meets 4 ready (saturated: per replica) and later 5 ready (pooled)
    pytest.param(params(metrics=(POOLED_RAMPED,), min_replicas=2), ramp([300, 430, 430, 430, 430, 470, 470], n=2),
                 4.0, dict(ready_lag=2), Reason.SCALE_UP, id="pooled-headroom-saturated-sizes-per-replica"),
    # two pods of each target not Ready (starting): the Ready ones read at their capacity ask for twice
    # themselves (saturation.py), then the load falls under it
    pytest.param(params(metrics=(SATURATED,), max_replicas=40), ramp([300, 400, 400, 400, 600, 600, 150, 150], n=2),
                 4.0, dict(ready_lag=2), Reason.SCALE_UP, id="saturated-asks-for-twice-the-ready-pods"),
    pytest.param(params(metrics=(SATURATED_RAMPED, metric(MetricKind.VALUE, 0.25, "latency")), min_replicas=2),
                 np.stack([ramp([300, NAN, 500, 800, 800, 800, 600, 300])[..., 0],
                           ramp([0.2, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.1])[..., 0]], axis=2), 6.0,
                 dict(ready_lag=2, withheld=1, status_extra=1), Reason.SCALE_UP,
                 id="saturated-ramped-with-withheld-and-a-second-metric"),
    # dark spells: the window averages them in (under the capacity), the latest readings between
    # them are at it (saturation.saturation_values), with gaps and a reading under the window
    pytest.param(params(metrics=(SATURATED,), max_replicas=40), ramp([750, 750, 750, 750, 600, 900], n=2),
                 10.0, dict(ready_lag=0, latest=ramp([NAN, 1000, 1000, NAN, 500, 1100], n=2)), Reason.SCALE_UP,
                 id="saturated-by-the-latest-reading"),
    # two replicas withheld (a stuck rollout): every kind sizes on the serving ones, the ramp too
    pytest.param(params(metrics=(RAMPED, metric(MetricKind.VALUE, 0.25, "latency"),
                                 metric(MetricKind.UTILIZATION, 60.0, "cpu"))),
                 np.stack([ramp([300, 300, 500, 800, 800, 800, 600, 300])[..., 0],
                           ramp([0.2, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.1])[..., 0],
                           ramp([50, 70, 90, 80, 60, 40, 30, 30])[..., 0]], axis=2), 6.0,
                 dict(ready_lag=2, withheld=2, status_extra=1), Reason.SCALE_UP, id="withheld-replicas"),
]


@pytest.mark.parametrize("policy, values, current0, options, expect", SCRIPTED)
def test_compiled_equals_numpy_on_scripted_paths(policy, values, current0, options, expect):
    decisions = run_both(policy, values, np.full(values.shape[1], current0), **options)
    seen = {int(r) for d in decisions for r in d.reason}
    assert int(expect) in seen, f"the row does not exercise {expect.name}: saw {sorted(Reason(r).name for r in seen)}"
    if policy.ramp_metrics:  # on a rising slope, the ramp stage's proposal was the one kept at least once
        assert any((d.ramps.proposal == d.proposals).any() and (d.ramps.slope > 0).any() for d in decisions)
    if "latest" in options and policy.saturation_metrics:  # saturated where only the latest reading is at the cap
        assert any((d.saturated_metrics & (d.smoothed < d.ready[:, None] * 100.0 * 0.95)).any() for d in decisions)


def test_the_default_policy_runs_on_the_kernel():
    policy = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0].params
    assert policy.ramp_metrics and policy.scale_down_linear_release and compiled.supports(policy)
    values = ramp([100, 150, 250, 400, 600, 850, 850, 850, 200, 200, 200], n=4)
    decisions = run_both(policy, values, np.full(4, 2.0))
    assert (decisions[-1].desired > 2).all() and np.isfinite(decisions[5].ramps.proposal).all()


@st.composite
def rules(draw) -> ScalingRules:
    n = draw(st.integers(0, 2))
    policies = [(draw(st.sampled_from(list(RuleType))), draw(st.integers(1, 200)), draw(st.sampled_from([15, 30, 60])))
                for _ in range(n)]
    return ScalingRules.of(draw(st.sampled_from([0, 30, 60, 120])), draw(st.sampled_from(list(Select))), policies)


def ramps():
    """No ramp stage (half the time), or one with windows that do and do not divide by the interval."""
    return st.one_of(st.none(), st.builds(RampParams, lead_s=st.sampled_from([0.0, 45.0, 120.0]),
                                          window_s=st.sampled_from([15.0, 30.0, 40.0, 60.0]),
                                          interval_s=st.sampled_from([10.0, 15.0])))


@st.composite
def policies(draw) -> PolicyParams:
    m = draw(st.integers(1, 3))
    metrics = tuple(MetricParams(f"m{j}", draw(st.sampled_from(list(MetricKind))),
                                 draw(st.sampled_from([0.5, 50.0, 100.0])), ramp=draw(ramps()),
                                 capacity=draw(st.sampled_from([0.0, 0.0, 120.0, 1000.0])),  # pooled: averages only
                                 saturation_capacity=draw(st.sampled_from([0.0, 0.0, 60.0, 150.0])),
                                 read_window_s=draw(st.sampled_from([0.0, 15.0, 40.0, 120.0])),  # recovering.py
                                 # the default bound, one inside the samples' range (signal.py), none
                                 implausible_above=draw(st.sampled_from([None, None, 1000.0, np.inf])))
                    for j in range(m))
    lo = draw(st.integers(0, 5))
    return PolicyParams(
        name="prop", metrics=metrics, min_replicas=lo, max_replicas=lo + draw(st.integers(0, 30)),
        tolerance_up=draw(st.sampled_from([0.0, 0.05, 0.1])), tolerance_down=draw(st.sampled_from([0.0, 0.1, 0.3])),
        smoothing=draw(st.sampled_from(COMPILED_SMOOTHING)), half_life_s=draw(st.sampled_from([0.0, 30.0])),
        window_s=draw(st.sampled_from([45.0, 150.0])), stale_after_s=60.0,
        scale_up=draw(rules()), scale_down=draw(rules()), legacy=draw(st.booleans()),
        scale_down_linear_release=draw(st.booleans()),
        fallback_replicas=draw(st.one_of(st.none(), st.integers(lo, lo + 5))), missing_hold_s=30.0)


SAMPLE = st.one_of(st.floats(0, 5000, allow_nan=False),
                   st.sampled_from([NAN, -1.0, np.inf, 0.0, 100.0, 50.0, 1000.0, 1e300]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policy=policies(), data=st.data(), n=st.integers(1, 4), steps=st.integers(1, 12),
       ready_lag=st.integers(0, 2), status_extra=st.integers(0, 2), withheld=st.integers(0, 2),
       with_latest=st.booleans())
def test_compiled_equals_numpy_on_random_inputs(policy, data, n, steps, ready_lag, status_extra, withheld,
                                                with_latest):
    m = len(policy.metrics)
    values = np.array(data.draw(st.lists(SAMPLE, min_size=steps * n * m, max_size=steps * n * m))).reshape(steps, n, m)
    present = np.array(data.draw(st.lists(st.booleans(), min_size=steps * n * m, max_size=steps * n * m)))
    present = present.reshape(steps, n, m) | ~np.isnan(values)  # absent series, and present NaN samples
    ages = np.array(data.draw(st.lists(st.sampled_from([0.0, 30.0, 90.0]), min_size=steps * n * m,
                                       max_size=steps * n * m))).reshape(steps, n, m)
    current0 = np.array(data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), dtype=float)
    latest = None
    if with_latest:  # as read_signal leaves them: finite and non-negative, or NaN
        latest = np.array(data.draw(st.lists(st.one_of(st.floats(0, 5000), st.just(NAN)), min_size=steps * n * m,
                                             max_size=steps * n * m))).reshape(steps, n, m)
    run_both(policy, values, current0, ready_lag=ready_lag, ages=ages, present=present,
             status_extra=float(status_extra), withheld=withheld, latest=latest)


@pytest.mark.parametrize("policy", [
    pytest.param(params(metrics=(metric(MetricKind.UTILIZATION, 60.0, "cpu"),), hpa_semantics=True),
                 id="hpa-preset-pod-level-calculator"),
    pytest.param(params(smoothing=Smoothing.MEDIAN, window_s=60.0), id="median"),
    pytest.param(params(smoothing=Smoothing.PERCENTILE, window_s=60.0, percentile=90.0), id="percentile"),
    pytest.param(params(smoothing=Smoothing.MEAN, window_s=15.0 * 200), id="mean-over-129-samples"),
    pytest.param(params(metrics=(MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 85.0, capacity=100.0,
                                              forecast=ForecastParams(horizon_s=60.0)),)),
                 id="pooled-headroom-with-forecast"),
])
def test_policies_the_kernel_does_not_cover_run_on_numpy(policy, monkeypatch):
    assert not compiled.supports(policy)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the kernel ran for a policy it does not cover")

    monkeypatch.setattr(workspace, "decide_into", refuse)
    state = ScalingState.empty(2, policy)
    obs = Observation.of([3.0, 3.0], [3.0, 3.0], [[500.0], [100.0]])
    assert decide(policy, obs, state, T0).desired.tolist() == decide_numpy(policy, obs, state, T0).desired.tolist()


def _fresh_compiled_module(monkeypatch, numba_module):
    """A separate copy of core/scaling/compiled.py imported with ``sys.modules['numba']`` replaced."""
    monkeypatch.setitem(sys.modules, "numba", numba_module)
    spec = importlib.util.spec_from_file_location("controller.core._compiled_copy", compiled.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_decision(policy):
    state = ScalingState.empty(2, policy)
    return Observation.of([3.0, 3.0], [3.0, 3.0], [[500.0], [100.0]]), state


def test_missing_numba_falls_back_to_numpy_with_one_warning(monkeypatch):
    # A failing import is a fault the real package cannot produce on demand: None in sys.modules makes it raise.
    without = _fresh_compiled_module(monkeypatch, None)
    assert not without.available()
    monkeypatch.setattr(decide_module, "compiled", without)
    policy = params()
    obs, state = _one_decision(policy)
    with pytest.warns(RuntimeWarning, match="compiled kernels unavailable") as caught:
        first = decide(policy, obs, state, T0)
        second = decide(policy, obs, first.state, T0 + 15.0)
    assert len([w for w in caught if "compiled" in str(w.message)]) == 1
    reference = decide_numpy(policy, obs, state, T0)
    assert first.desired.tolist() == reference.desired.tolist() == [5, 3]
    assert second.desired.tolist() == decide_numpy(policy, obs, reference.state, T0 + 15.0).desired.tolist()


def test_kernel_that_fails_to_compile_falls_back_to_numpy_once(monkeypatch):
    import numba  # noqa: PLC0415

    calls = []

    def broken(*_args, **_kwargs):
        calls.append(1)
        raise numba.core.errors.TypingError("simulated typing failure")

    monkeypatch.setattr(workspace, "decide_into", broken)
    monkeypatch.setattr(compiled, "_broken", None)
    monkeypatch.setattr(compiled, "_warned", False)
    policy = params()
    obs, state = _one_decision(policy)
    with pytest.warns(RuntimeWarning, match="compiled kernel failed"):
        d = decide(policy, obs, state, T0)
    assert d.desired.tolist() == [5, 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        decide(policy, obs, d.state, T0 + 15.0)
    assert calls == [1]  # numpy from then on


@pytest.mark.parametrize("switch, expect", [pytest.param("0", False, id="forced-numpy"),
                                             pytest.param("1", True, id="asked-for"),
                                             pytest.param("", True, id="default")])
def test_switch_selects_the_path(monkeypatch, switch, expect):
    monkeypatch.setattr(compiled, "switch", switch)
    assert compiled.enabled() is expect
    calls = []
    original = workspace.decide_into
    monkeypatch.setattr(workspace, "decide_into", lambda *a: calls.append(1) or original(*a))
    policy = params()
    obs, state = _one_decision(policy)
    decide(policy, obs, state, T0)
    assert bool(calls) is expect
