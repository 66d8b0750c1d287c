"""The ``hpa`` preset's per-pod read in one pass (ListedPodMetricsSource: the simulator lists the
pods and joins a per-pod metric's samples to them, core/scaling/hpa_compiled.try_sampled_pod_table
builds the table) gives what listing the pods, querying their series and joining by uid gives:
every array of the PodSamples and of the workload summaries, tick after tick on a cluster scaled
up and down, through a metrics outage, stale and NaN metrics (scenario metrics-outage), with the
kernels on; and the numpy table (kernels off) equals the compiled one."""

from __future__ import annotations

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.core.scaling import compiled
from controller.errors import MetricsUnavailable
from controller.policy import load_policies
from controller.ports import ListedPodMetricsSource, ListedPodSamples, PodMetricsSource
from controller.runtime.pod_samples import PodReader, sampled_pod_table
from controller.runtime.reconciler import RuntimePolicy
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import policy_bindings
from simulators.scenario import load_scenario

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


class PodsOnly:
    """The simulated metrics with the PodMetricsSource capability only (list, then query and join)."""

    def __init__(self, inner: SimMetrics):
        self.inner = inner

    def query(self, expr, targets, at):
        return self.inner.query(expr, targets, at)

    def query_pods(self, expr, targets, at):
        return self.inner.query_pods(expr, targets, at)


def assert_same_read(got, want) -> None:
    (pods, summaries), (pods_want, summaries_want) = got, want
    for name, value in pods.pods.__dict__.items():
        expected = pods_want.pods.__dict__[name]
        if name == "names":
            assert list(value) == list(expected)
            continue
        assert value.dtype == expected.dtype, name
        np.testing.assert_array_equal(value, expected, err_msg=name)
    for name in ("usage_milli", "has_sample", "per_pod", "stray_target", "stray_metric", "stray_usage_milli"):
        value, expected = getattr(pods, name), getattr(pods_want, name)
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        np.testing.assert_array_equal(value, expected, err_msg=name)
    assert list(summaries) == list(summaries_want)
    for j, s in summaries.items():
        for name in ("values", "present", "age_s", "conflict"):
            np.testing.assert_array_equal(getattr(s, name), getattr(summaries_want[j], name), err_msg=f"{j}: {name}")


@pytest.mark.parametrize("scenario_name", [
    pytest.param("metrics-outage", id="outage-stale-nan"),
    pytest.param("crash-loop", id="crash-loop"),
    pytest.param("step", id="step"),
])
def test_one_pass_read_equals_list_query_and_join(monkeypatch, scenario_name):
    monkeypatch.setattr(compiled, "switch", "1")
    scenario = load_scenario(scenario_name)
    (policy,) = load_policies([bundled_policy("hpa-cpu.yaml")])
    rp = RuntimePolicy.of(policy)
    cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
    targets_port = SimTargets(cluster, scenario.services)
    metrics = SimMetrics(cluster, policy_bindings(scenario, rp), scenario.metrics_window_s, scenario.tick_s)
    metrics.attach(targets_port)
    joined = PodReader(rp.params, rp.queries, metrics, targets_port)
    separate = PodReader(rp.params, rp.queries, PodsOnly(metrics), targets_port)
    assert joined.joined is metrics and separate.joined is None and isinstance(separate.source, PodMetricsSource)
    targets = targets_port.resolve(rp.selector)
    rng = np.random.default_rng(7)
    times, offered = scenario.times(), scenario.offered()
    names = rp.params.metric_names
    failures = 0
    for k in range(0, times.size, 3):
        if k % 30 == 0:  # scale some services: pods pending, starting, ready, removed
            for i in rng.choice(cluster.n_services, size=max(1, cluster.n_services // 2), replace=False):
                cluster.set_replicas(int(i), int(rng.integers(1, 12)))
        cluster.step(times[k], scenario.tick_s, offered[k])
        metrics.push(cluster.signals())
        view = targets_port.observe(targets)
        errors_joined, errors_separate = [], []
        got = joined.read(targets, view, float(times[k]), errors_joined, names)
        want = separate.read(targets, view, float(times[k]), errors_separate, names)
        assert errors_joined == errors_separate
        failures += bool(errors_joined)
        assert_same_read(got, want)
    if scenario_name == "metrics-outage":
        assert failures > 0  # the outage was read through


@pytest.mark.parametrize("values, ages", [
    pytest.param([40.0, np.nan, 12.5, np.inf], [3.0, 0.0, 7.5, 1.0], id="nan-and-infinite-have-no-sample"),
    pytest.param([], [], id="no-pods"),
    pytest.param([0.0004, 1e300, -2.0], [0.0, 60.0, 5.0], id="rounding-and-clipping"),
])
def test_sampled_table_compiled_equals_numpy(monkeypatch, values, ages):
    from controller.ports import PodView
    p = len(values)
    pods = PodView(target=np.arange(p, dtype=np.int64) // 2, names=tuple(f"p{k}" for k in range(p)),
                   pending=np.arange(p) % 3 == 1, ready=np.arange(p) % 2 == 0,
                   start_time=np.linspace(0.0, 50.0, p), ready_transition_time=np.where(np.arange(p) % 2, np.nan, 20.0),
                   uid=np.arange(p, dtype=np.int64))
    got = ListedPodSamples(pods, np.array(values, float), np.array(ages, float), 60.0)
    targets = list(range((p + 1) // 2))
    out = {}
    for switch in ("1", "0"):
        monkeypatch.setattr(compiled, "switch", switch)
        out[switch] = sampled_pod_table(targets, got, 100.0)
    (table, usage, has), (table_np, usage_np, has_np) = out["1"], out["0"]
    for name, value in table.__dict__.items():
        if name != "names":
            assert value.dtype == table_np.__dict__[name].dtype, name
            np.testing.assert_array_equal(value, table_np.__dict__[name], err_msg=name)
    np.testing.assert_array_equal(usage, usage_np)
    np.testing.assert_array_equal(has, has_np)
    assert usage.dtype == usage_np.dtype and has.dtype == has_np.dtype


def test_capability_only_for_its_own_cluster():
    scenario = load_scenario("step")
    cluster = SimCluster(scenario.cluster, np.random.default_rng(1))
    other = SimCluster(scenario.cluster, np.random.default_rng(1))
    metrics = SimMetrics(cluster, {"cpu": "utilization_pct"}, 60.0, 5.0)
    assert isinstance(metrics, ListedPodMetricsSource)
    assert metrics.lists_pods_of(SimTargets(cluster, scenario.services))
    assert not metrics.lists_pods_of(SimTargets(other, scenario.services))
    assert not metrics.lists_pods_of(object())


def test_outage_raises_like_query_pods():
    scenario = load_scenario("step")
    cluster = SimCluster(scenario.cluster, np.random.default_rng(1))
    metrics = SimMetrics(cluster, {"cpu": "utilization_pct"}, 60.0, 5.0)
    with pytest.raises(MetricsUnavailable):
        metrics.query_listed_pods("cpu", [cluster.ref(0)], 0.0)  # no samples yet
