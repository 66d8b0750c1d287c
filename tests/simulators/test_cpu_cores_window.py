"""The rehearsal's CPU in cores (SIGNALS["cpu_cores"], what `setpoint import` writes for an HPA's CPU
AverageValue: sum(rate(container_cpu_usage_seconds_total[w]))) is PromQL's: the window mean of each
tick's total, utilization x Ready pods x a pod's request, not the mean utilization times the last
tick's Ready pods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.cluster import SimCluster
from simulators.ports import SimMetrics
from simulators.scenario import SIGNALS, load_scenario
from simulators.signals import METRIC_SIGNALS, ObservedSignals

TICK_S = 5.0
NAN = math.nan


def tick(at: float, n: int, utilization: float, ready: float) -> ObservedSignals:
    """One tick's observed signals: service 0 at ``utilization`` % with ``ready`` Ready pods."""
    values = {name: np.full(n, NAN) for name in METRIC_SIGNALS}
    values["utilization_pct"][0], values["ready_replicas"][0] = utilization, ready
    no = np.zeros(n, bool)
    return ObservedSignals(at, values, no, no, no, np.zeros(n))


@pytest.mark.parametrize("utilization,ready,cores", [
    # a pod requests 0.5 cores; four 5 s ticks in the window
    pytest.param([60, 60, 60, 60], [2, 2, 4, 4], (0.6 + 0.6 + 1.2 + 1.2) / 4,
                 id="pods-double-mid-window-each-tick-its-own-pods"),
    pytest.param([30, 30, 60, 60], [4, 4, 2, 2], 0.6, id="pods-halve-mid-window-same-cores"),
    pytest.param([40, 50, 60, 70], [3, 3, 3, 3], 0.55 * 3 * 0.5, id="steady-pods-mean-utilization-x-pods"),
    pytest.param([50, 50, NAN, NAN], [2, 2, 0, 0], (0.5 + 0.5) / 4, id="no-ready-pod-at-the-last-tick-ran-before"),
    pytest.param([NAN, NAN, NAN, NAN], [0, 0, 0, 0], NAN, id="no-ready-pod-in-the-window-no-series"),
])
def test_cpu_cores_average_each_ticks_total_over_the_window(utilization, ready, cores):
    scenario = load_scenario("flash-crowd")
    cluster = SimCluster(scenario.cluster, np.random.default_rng(0))
    assert cluster.config.services[0].cpu_request_cores == 0.5  # the table's cores assume it
    metrics = SimMetrics(cluster, {"q": SIGNALS["cpu_cores"]}, window_s=4 * TICK_S, tick_s=TICK_S)
    for k, (u, r) in enumerate(zip(utilization, ready)):
        metrics.push(tick(1000.0 + k * TICK_S, cluster.n_services, u, r))
    [read] = metrics.query("q", [cluster.ref(0)], 1000.0 + 3 * TICK_S).values
    if math.isnan(cores):
        assert math.isnan(read)
    else:
        assert read == pytest.approx(cores, rel=1e-12)
