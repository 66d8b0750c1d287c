"""A ramp's latest reading (``ramp.latest``) in the simulator and the live reconciler: the
simulated source reads it over its own window, the reconciler queries it every cycle and the
ramp's slope is the one the two readings imply."""

from __future__ import annotations

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import latest_windows, policy_bindings
from simulators.scenario import load_scenario

QUERY = "sum by (namespace, deployment) (rate(http_requests_total[1m]))"
LATEST = "sum by (namespace, deployment) (rate(http_requests_total[{w}]))"


def default_with_latest(window: str) -> RuntimePolicy:
    text = bundled_policy("setpoint-default.yaml").read_text(encoding="utf-8")
    old = f'latest: "{LATEST.format(w="30s")}"'  # the default's own latest reading, over another window
    assert old in text
    text = text.replace(old, f'latest: "{LATEST.format(w=window)}"')
    return RuntimePolicy.of(load_policy_text(text, "default-latest.yaml")[0])


@pytest.mark.parametrize("window,ticks", [
    pytest.param("20s", 4, id="20s-over-5s-ticks"),
    pytest.param("10s", 2, id="10s-over-5s-ticks"),
])
def test_latest_reading_is_the_mean_of_its_own_last_ticks_and_drives_the_slope(window, ticks):
    scenario = load_scenario("flash-crowd")
    rp = default_with_latest(window)
    expr = LATEST.format(w=window)
    assert rp.latest_queries == (expr,) and latest_windows(rp) == {expr: float(window[:-1])}
    bindings = policy_bindings(scenario, rp)
    assert bindings[expr] == bindings[QUERY] == "offered_rps"
    cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
    targets = SimTargets(cluster, scenario.services)
    metrics = SimMetrics(cluster, bindings, scenario.metrics_window_s, scenario.tick_s, windows=latest_windows(rp))
    metrics.attach(targets)
    rec = Reconciler(rp, metrics, targets)
    offered, times = scenario.offered(), scenario.times()
    gap = rp.params.metrics[0].ramp.gap_s
    assert gap == 0.5 * (60.0 - float(window[:-1]))
    implied = 0
    for tick in range(240):
        cluster.step(times[tick], scenario.tick_s, offered[tick])
        metrics.push(cluster.signals())
        if tick % 3:  # a cycle every 15 s
            continue
        refs = targets.resolve(rp.selector)
        got = metrics.query(expr, refs, float(times[tick])).values
        k = min(ticks, tick + 1)
        np.testing.assert_allclose(got, offered[tick - k + 1:tick + 1].mean(axis=0), rtol=1e-12)
        result = rec.cycle(float(times[tick]))
        assert result.queries == 2  # the metric and its latest reading
        d = result.decision
        value, slope = d.signal.values[:, 0], d.ramps.slope[:, 0]
        known = np.isfinite(slope)
        np.testing.assert_allclose(slope[known], (got[known] - value[known]) / gap, rtol=1e-9)
        implied += int(known.sum())
    assert implied > 0
