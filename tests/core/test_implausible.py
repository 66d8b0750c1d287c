"""Implausible samples (core/scaling/signal.py): a finite reading whose value / target exceeds
1000 x replicas.max (or the metric's implausibleAbove) is unusable like NaN: it may block a
scale-down, never cause a change; a genuine surge, however large, is still acted on. Named rows
at a fixed time, on the numpy stages and the compiled kernel alike; then properties: one
implausible sample decides exactly as a NaN would, never raises replicas, and both paths agree."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from controller.core.scaling.decide import Observation, ScalingState, decide, decide_numpy
from controller.core.scaling.params import IMPLAUSIBLE_FACTOR, MetricKind, MetricParams, PolicyParams
from controller.model import Reason
from tests.core.helpers import T0, no_limits
from tests.core.test_compiled import SAMPLE, policies

AVG, VALUE, UTIL = MetricKind.AVERAGE_PER_REPLICA, MetricKind.VALUE, MetricKind.UTILIZATION
RPS = MetricParams("rps", AVG, 100.0)
CPU = MetricParams("cpu", UTIL, 60.0)


def policy(*metrics: MetricParams, max_replicas: int = 20, **overrides) -> PolicyParams:
    return PolicyParams("p", metrics, min_replicas=1, max_replicas=max_replicas, **{**no_limits(), **overrides})


BOUND = IMPLAUSIBLE_FACTOR * 20 * 100.0  # RPS under policy(RPS): 2e6, what asks for 1000 x 20 replicas
ABOVE = math.nextafter(BOUND, math.inf)

ROWS = [
    # (policy, current, samples (M,), desired, reason, implausible (M,))
    pytest.param(policy(RPS), 4, [1e300], 4, Reason.METRICS_MISSING, [True], id="1e300-rps-held"),
    pytest.param(policy(MetricParams("rps", AVG, 10.0), max_replicas=3), 1, [1e9], 1, Reason.METRICS_MISSING, [True],
                 id="1e9-on-a-small-service-held"),
    pytest.param(policy(RPS), 4, [50 * 400.0], 20, Reason.CLAMPED_TO_MAX, [False], id="real-50x-surge-acted-on"),
    pytest.param(policy(RPS), 4, [BOUND], 20, Reason.CLAMPED_TO_MAX, [False], id="at-the-bound-acted-on"),
    pytest.param(policy(RPS), 4, [ABOVE], 4, Reason.METRICS_MISSING, [True], id="just-above-the-bound-held"),
    pytest.param(policy(MetricParams("latency", VALUE, 0.5)), 10, [1e4], 20, Reason.CLAMPED_TO_MAX, [False],
                 id="per-replica-value-at-its-bound-acted-on"),  # 1e4 / 0.5 = 1000 x 20 from one replica
    pytest.param(policy(MetricParams("latency", VALUE, 0.5)), 10, [1.0001e4], 10, Reason.METRICS_MISSING, [True],
                 id="per-replica-value-above-its-bound-held"),
    pytest.param(policy(CPU), 4, [1000.0], 20, Reason.CLAMPED_TO_MAX, [False],
                 id="utilization-1000-percent-is-load"),  # requests far below limits: not a broken reading
    pytest.param(policy(CPU), 4, [1.3e6], 4, Reason.METRICS_MISSING, [True], id="utilization-above-its-bound-held"),
    pytest.param(policy(RPS, CPU), 10, [1e300, 30.0], 10, Reason.METRICS_MISSING, [True, False],
                 id="one-of-two-implausible-blocks-the-others-scale-down"),
    pytest.param(policy(RPS, CPU), 10, [1e300, 90.0], 15, Reason.SCALE_UP, [True, False],
                 id="one-of-two-implausible-the-other-still-scales-up"),
    pytest.param(policy(dataclasses.replace(RPS, implausible_above=math.inf)), 4, [1e300], 20, Reason.CLAMPED_TO_MAX,
                 [False], id="implausible-above-off-acts-on-anything"),
    pytest.param(policy(dataclasses.replace(RPS, implausible_above=5000.0)), 4, [6000.0], 4, Reason.METRICS_MISSING,
                 [True], id="implausible-above-a-lower-bound"),
    pytest.param(policy(RPS, hpa_semantics=True), 4, [1e300], 20, Reason.CLAMPED_TO_MAX, [False],
                 id="hpa-preset-scales-as-hpa-does"),
]


def decide_both(params: PolicyParams, obs: Observation, state: ScalingState, now: float):
    """decide (the compiled kernel where it covers the policy) and the numpy stages: the same decision."""
    fast, ref = decide(params, obs, state, now), decide_numpy(params, obs, state, now)
    for name in ("values", "usable", "implausible"):
        np.testing.assert_array_equal(getattr(fast.signal, name), getattr(ref.signal, name), err_msg=name)
    np.testing.assert_array_equal(fast.norm.desired, ref.norm.desired)
    np.testing.assert_array_equal(fast.norm.reason, ref.norm.reason)
    return ref


@pytest.mark.parametrize("params, current, samples, desired, reason, implausible", ROWS)
def test_implausible_samples_are_held_and_real_surges_acted_on(params, current, samples, desired, reason,
                                                               implausible):
    obs = Observation.of([float(current)], [float(current)], [samples])
    d = decide_both(params, obs, ScalingState.empty(1, params), T0)
    assert d.signal.implausible[0].tolist() == implausible
    assert (int(d.desired[0]), Reason(int(d.reason[0]))) == (desired, reason)
    record = d.record(0, "p", "default/web", params.metric_names)
    flagged = {name: {"value": v, "above": float(params.metric_implausible_above[j])}
               for j, (name, v, bad) in enumerate(zip(params.metric_names, samples, implausible)) if bad}
    assert record.extra.get("implausible", {}) == flagged
    assert record.to_dict()["metrics"][params.metric_names[0]]["missing"] is implausible[0]


def test_the_bound_is_derived_from_the_policy():
    params = policy(RPS, CPU, MetricParams("latency", VALUE, 0.5), dataclasses.replace(RPS, name="lag",
                                                                                         implausible_above=1e9))
    assert params.metric_implausible_above.tolist() == [2e6, 1.2e6, 1e4, 1e9]  # 1000 x 20 x target, or as stated
    assert dataclasses.replace(params, hpa_semantics=True).metric_implausible_above.tolist() == [math.inf] * 4


def _run(params: PolicyParams, values: np.ndarray, current0: np.ndarray, run=decide) -> list:
    """(steps, N, M) samples, every series present, each decision applied; the Decisions."""
    state, current, out = ScalingState.empty(values.shape[1], params), current0.copy(), []
    for k in range(values.shape[0]):
        d = run(params, Observation.of(current, current, values[k]), state, T0 + 15.0 * k)
        state, current = d.state, d.norm.desired.copy()
        out.append(d)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(params=policies(), data=st.data(), n=st.integers(1, 3), steps=st.integers(1, 6))
def test_one_implausible_sample_decides_as_nan_and_never_raises_replicas(params, data, n, steps):
    m = len(params.metrics)
    values = np.array(data.draw(st.lists(SAMPLE, min_size=steps * n * m, max_size=steps * n * m))).reshape(steps, n, m)
    values[values > params.metric_implausible_above] = math.nan  # the others: plausible or non-finite
    k, i, j = data.draw(st.integers(0, steps - 1)), data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, m - 1))
    bound = float(params.metric_implausible_above[j])
    assume(math.isfinite(bound))
    wild = data.draw(st.sampled_from([1e300, math.nextafter(bound, math.inf), 10.0 * bound]))
    current0 = np.array(data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), dtype=float)
    with_wild, with_nan = values.copy(), values.copy()
    with_wild[k, i, j], with_nan[k, i, j] = wild, math.nan
    got, nan = _run(params, with_wild, current0), _run(params, with_nan, current0)
    for a, b in zip(got, nan):  # exactly as harmless as a NaN: it may block a scale-down, never cause a change
        np.testing.assert_array_equal(a.norm.desired, b.norm.desired)
        np.testing.assert_array_equal(a.norm.reason, b.norm.reason)
    unbounded = dataclasses.replace(params, metrics=tuple(dataclasses.replace(x, implausible_above=math.inf)
                                                          for x in params.metrics))
    acted = _run(unbounded, with_wild[:k + 1], current0)[k]  # the same history, the bound off
    assert (got[k].norm.desired <= acted.norm.desired).all()  # the bound never raised a count
    assert got[k].signal.implausible[i, j]
    if compiled.available() and compiled.supports(params):  # the compiled kernel and the numpy stages agree
        ref = _run(params, with_wild, current0, run=decide_numpy)
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a.norm.desired, b.norm.desired)
            np.testing.assert_array_equal(a.signal.implausible, b.signal.implausible)


def test_explain_shows_the_implausible_sample_and_its_bound(tmp_path):
    """`setpoint explain` says why a target held at 1e300 rps: the record keeps the sample as read
    (its raw value is a dash, like a missing one's) and the bound it is above."""
    import json

    from typer.testing import CliRunner

    from controller.cli import app

    params = policy(RPS)
    d = decide_numpy(params, Observation.of([4.0], [4.0], [[1e300]]), ScalingState.empty(1, params), T0)
    path = tmp_path / "decisions.jsonl"
    path.write_text(json.dumps(d.record(0, "p", "default/web", ("rps",)).to_dict()) + "\n", encoding="utf-8")
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "4 -> 4 [MetricsMissing]" in text and "rps: raw - smoothed - -> -" in text
    assert "implausible rps 1e+300 (above 2e+06)" in text
