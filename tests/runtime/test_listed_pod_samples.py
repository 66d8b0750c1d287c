"""The ``hpa`` preset's per-pod read in one pass (ListedPodMetricsSource: the simulator lists the
pods and joins a per-pod metric's samples to them, core/scaling/hpa_compiled.try_sampled_pod_table
builds the table) gives what listing the pods, querying their series and joining by uid gives:
every array of the PodSamples and of the workload summaries, tick after tick on a cluster scaled
up and down, through a metrics outage, stale and NaN metrics (scenario metrics-outage), with the
kernels on; and the numpy table (kernels off) equals the compiled one. With the kernels the read
is a JoinedPodSamples: the calculator reads its pods in one pass without their table, where the
simulator keeps them (PaddedPods, hpa_compiled.try_padded_utilization_replicas) or listed
(ListedPods, try_listed_utilization_replicas); its proposals equal those of the table, compiled
and numpy, on the same scenarios and on generated pods."""

from __future__ import annotations

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.core.scaling import compiled
from controller.errors import MetricsUnavailable
from controller.policy import load_policies
from controller.ports import ListedPodMetricsSource, ListedPodSamples, PodMetricsSource
from controller.core.scaling import hpa_compiled
from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.hpa_propose import (JoinedPodSamples, ListedPods, PaddedPods, PodSamples, PodSlots,
                                                 hpa_propose)
from controller.runtime.pod_samples import PodReader, sampled_pod_table
from controller.runtime.reconciler import RuntimePolicy
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import policy_bindings
from simulators.scenario import load_scenario

#: On one pytest-xdist worker: these tests call kernels from Python with signatures the suite's
#: warm-up does not compile; on a cold disk cache (CI's fresh checkout) the first test of each kind
#: compiles them (1-2.5 s each), and spread over three workers in the last CI, each compiled them.
pytestmark = [pytest.mark.skipif(not compiled.available(), reason="numba is not installed"),
              pytest.mark.xdist_group("tests/runtime/test_listed_pod_samples.py")]


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


def assert_same_proposals(params, view, got, want) -> None:
    """hpa_propose on the joined read (listed pods, no table) equals it on the separate read's table."""
    (pods, summaries), (pods_want, _) = got, want  # the same summaries: assert_same_read checks them
    m = len(params.metrics)
    values = np.column_stack([summaries[j].values if j in summaries else np.full(len(view.spec), np.nan)
                              for j in range(m)])
    usable = np.column_stack([summaries[j].present if j in summaries else np.zeros(len(view.spec), bool)
                              for j in range(m)])
    a = hpa_propose(params, view.spec, view.ready, view.status, values, usable, pods)
    b = hpa_propose(params, view.spec, view.ready, view.status, values, usable, pods_want)
    for name in ("replicas", "utilization", "usage_milli", "error"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.messages == b.messages


def hpa_sim_ports(scenario_name: str) -> tuple:
    """(scenario, the hpa-cpu RuntimePolicy, its SimCluster, SimTargets and SimMetrics, attached)."""
    scenario = load_scenario(scenario_name)
    (policy,) = load_policies([bundled_policy("hpa-cpu.yaml")])
    rp = RuntimePolicy.of(policy)
    cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
    targets_port = SimTargets(cluster, scenario.services)
    metrics = SimMetrics(cluster, policy_bindings(scenario, rp), scenario.metrics_window_s, scenario.tick_s)
    metrics.attach(targets_port)
    return scenario, rp, cluster, targets_port, metrics


def scaled_ticks(scenario, cluster: SimCluster, metrics: SimMetrics, seed: int):
    """Every third tick of ``scenario`` stepped and pushed to ``metrics``, half the services scaled
    to 1-11 replicas every 30 ticks (pods pending, starting, ready, removed): yields each tick's time."""
    rng = np.random.default_rng(seed)
    times, offered = scenario.times(), scenario.offered()
    for k in range(0, times.size, 3):
        if k % 30 == 0:
            for i in rng.choice(cluster.n_services, size=max(1, cluster.n_services // 2), replace=False):
                cluster.set_replicas(int(i), int(rng.integers(1, 12)))
        cluster.step(times[k], scenario.tick_s, offered[k])
        metrics.push(cluster.signals())
        yield float(times[k])


@pytest.mark.parametrize("scenario_name", [
    pytest.param("metrics-outage", id="outage-stale-nan"),
    pytest.param("crash-loop", id="crash-loop"),
    pytest.param("step", id="step"),
])
def test_one_pass_read_equals_list_query_and_join(monkeypatch, scenario_name):
    monkeypatch.setattr(compiled, "switch", "1")
    scenario, rp, cluster, targets_port, metrics = hpa_sim_ports(scenario_name)
    joined = PodReader(rp.params, rp.queries, metrics, targets_port)
    separate = PodReader(rp.params, rp.queries, PodsOnly(metrics), targets_port)
    assert joined.joined is metrics and separate.joined is None and isinstance(separate.source, PodMetricsSource)
    targets = targets_port.resolve(rp.selector)
    names = rp.params.metric_names
    failures = joined_reads = 0
    for at in scaled_ticks(scenario, cluster, metrics, 7):
        view = targets_port.observe(targets)
        errors_joined, errors_separate = [], []
        got = joined.read(targets, view, at, errors_joined, names)
        want = separate.read(targets, view, at, errors_separate, names)
        assert errors_joined == errors_separate
        failures += bool(errors_joined)
        joined_reads += isinstance(got[0], JoinedPodSamples)  # not when the query failed
        if isinstance(got[0], JoinedPodSamples):  # the simulator's pods read where it keeps them
            assert isinstance(got[0].listed, PaddedPods)
        assert_same_proposals(rp.params, view, got, want)  # before the table is built (by the next line)
        assert_same_read(got, want)
    assert joined_reads > 0
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


def random_listed(rng, n: int, now: float, huge: bool = False) -> ListedPods:
    """Generated listed pods of n targets: pending or running, Ready or not, start and transition
    times around ``now`` (some unset or infinite), samples missing, NaN, infinite or huge."""
    counts = rng.integers(0, 6, n)
    target = np.repeat(np.arange(n), counts).astype(np.int64)
    p = target.size
    start = now - rng.choice([0.0, 10.0, 200.0, 299.0, 301.0, 5000.0, np.nan, np.inf], p)
    transition = now - rng.choice([0.0, 5.0, 25.0, 31.0, 290.0, 4000.0, np.nan, -np.inf], p)
    values = rng.choice([0.0, 12.5, 50.0, 79.99, 80.0, 100.0, 250.0, np.nan, np.inf, 0.0004], p)
    if huge:  # sums that could leave int64: declined, as the table's compiled path declines
        values = np.where(rng.random(p) < 0.05, 1e17, values)
    ages = rng.choice([0.0, 15.0, 30.0, 60.0, np.nan, np.inf], p)
    return ListedPods(target, rng.random(p) < 0.15, rng.random(p) < 0.7, start, transition, values, ages,
                      tuple(f"p{k}" for k in range(p)), now, 100_000, float(rng.choice([30.0, 60.0])), 0)


def table_samples(listed: ListedPods) -> PodSamples:
    """The PodSamples of ``listed`` with its table built as PodReader builds it without the one-pass path."""
    from controller.ports import PodView
    view = PodView(target=listed.target, names=listed.names, pending=listed.pending, ready=listed.ready,
                   start_time=listed.start_time, ready_transition_time=listed.transition_time,
                   uid=np.arange(listed.target.size, dtype=np.int64))
    got = ListedPodSamples(view, listed.values, listed.ages, listed.window_s)
    table, usage, has = sampled_pod_table([], got, listed.now)
    return PodSamples(table, usage.reshape(-1, 1), has.reshape(-1, 1), np.array([True]))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cpu_rules", [True, False], ids=["cpu", "not-cpu"])
def test_listed_utilization_equals_table_compiled_and_numpy(monkeypatch, seed, cpu_rules):
    monkeypatch.setattr(compiled, "switch", "1")
    rng = np.random.default_rng(seed)
    n, now = 40, 10_000.0
    listed = random_listed(rng, n, now, huge=seed % 4 == 3)
    current = rng.integers(0, 12, n)
    target = rng.choice([1, 50, 80, 150], n)
    args = (current, target, 0.1, 0.1)
    kw = dict(cpu_rules=cpu_rules, cpu_initialization_period_s=300.0, initial_readiness_delay_s=30.0)
    got = hpa_compiled.try_listed_utilization_replicas(listed, *args, **kw)
    pods = table_samples(listed)
    table = hr.PodTable(**{**pods.pods.__dict__, "usage_milli": pods.usage_milli[:, 0],
                           "has_sample": pods.has_sample[:, 0]})
    want = hr.resource_utilization_replicas(table, hr.StraySamples(), *args, **kw)  # numpy, the reference
    compiled_table = hpa_compiled.try_resource_utilization_replicas(table, hr.StraySamples(), *args, **kw)
    if seed % 4 == 3:  # declined (int64 sums): the table's path declines too
        assert got is None and compiled_table is None
        return
    for name in ("replicas", "utilization", "usage_milli", "error"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        np.testing.assert_array_equal(getattr(got, name), getattr(compiled_table, name), err_msg=name)
    assert got.error_message == want.error_message


def random_padded(rng, n: int, now: float, huge: bool = False) -> tuple[PaddedPods, ListedPods]:
    """Generated pods of n targets in a padded (R, K) slot layout (phases empty, pending,
    starting, backed off, Ready; serials out of slot order; times around ``now``, some unset or
    infinite; targets that do not exist, rows read by two targets; samples absent, NaN,
    infinite, huge), and the same pods listed (simcluster/pod_listing.try_listed_samples)."""
    from simulators.simcluster import pod_listing
    from simulators.simcluster.slots import BACKOFF, EMPTY, PENDING, READY, STARTING, live_end_of
    r_count, k = n // 2 + 1, 8
    phase = rng.choice(np.array([EMPTY, EMPTY, PENDING, STARTING, BACKOFF, READY, READY, READY], np.int8), (r_count, k))
    serial = np.argsort(rng.random((r_count, k)), axis=1).astype(np.int64)
    start = now - rng.choice([0.0, 10.0, 200.0, 299.0, 301.0, 5000.0, np.nan, np.inf], (r_count, k))
    transition = now - rng.choice([0.0, 5.0, 25.0, 31.0, 290.0, 4000.0, np.nan, -np.inf], (r_count, k))
    rows, exists = rng.integers(0, r_count, n).astype(np.int64), rng.random(n) < 0.9
    present = rng.random(n) < 0.85
    values = rng.choice([0.0, 12.5, 50.0, 79.99, 80.0, 100.0, 250.0, np.nan, np.inf, 0.0004], n)
    if huge:  # sums that could leave int64: both passes decline
        values = np.where(rng.random(n) < 0.2, 1e17, values)
    ages = rng.choice([0.0, 15.0, 30.0, 60.0, np.nan, np.inf], n)
    window_s = float(rng.choice([30.0, 60.0]))
    ends = live_end_of(phase)
    means, has_mean, sample = pod_listing.try_padded_means(rows, exists, ends, phase, present, values)
    padded = PaddedPods(PodSlots(rows, exists, ends, phase, start, transition, EMPTY, PENDING, READY), sample, ages,
                        now, 100_000, window_s, 0)
    at, _, _, _, _, pending, ready, start_time, transition_time, pod_values, pod_ages, *_ = pod_listing.try_listed_samples(
        rows, exists, phase, serial, np.zeros_like(serial), start, transition, present, values, ages)
    listed = ListedPods(at, pending, ready, start_time, transition_time, pod_values, pod_ages,
                        tuple(f"p{j}" for j in range(at.size)), now, 100_000, window_s, 0)
    return padded, listed


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cpu_rules", [True, False], ids=["cpu", "not-cpu"])
def test_padded_utilization_equals_listed_and_numpy(monkeypatch, seed, cpu_rules):
    """The calculator on pods read where the cluster keeps them equals it on the same pods listed
    (compiled) and on their table (numpy, the reference); both decline the same int64 risks."""
    monkeypatch.setattr(compiled, "switch", "1")
    rng = np.random.default_rng(100 + seed)
    n, now = 40, 10_000.0
    padded, listed = random_padded(rng, n, now, huge=seed % 4 == 3)
    current = rng.integers(0, 12, n)
    target = rng.choice([1, 50, 80, 150], n)
    args = (current, target, 0.1, 0.1)
    kw = dict(cpu_rules=cpu_rules, cpu_initialization_period_s=300.0, initial_readiness_delay_s=30.0)
    got = hpa_compiled.try_padded_utilization_replicas(padded, *args, **kw)
    listed_got = hpa_compiled.try_listed_utilization_replicas(listed, *args, **kw)
    if seed % 4 == 3 and listed_got is None:
        assert got is None
        return
    pods = table_samples(listed)
    table = hr.PodTable(**{**pods.pods.__dict__, "usage_milli": pods.usage_milli[:, 0],
                           "has_sample": pods.has_sample[:, 0]})
    want = hr.resource_utilization_replicas(table, hr.StraySamples(), *args, **kw)  # numpy, the reference
    for name in ("replicas", "utilization", "usage_milli", "error"):
        np.testing.assert_array_equal(getattr(got, name), getattr(listed_got, name), err_msg=name)
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.error_message == want.error_message


def test_joined_samples_build_their_table_on_demand(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    listed = random_listed(np.random.default_rng(3), 10, 500.0)
    want = table_samples(listed)
    built = []
    joined = JoinedPodSamples(listed, 2, lambda: built.append(1) or (want.pods, want.usage_milli[:, 0],
                                                                     want.has_sample[:, 0]))
    assert not built and list(joined.per_pod) == [True, False]
    assert joined.pods is want.pods and joined.usage_milli.shape == (want.pods.size, 2)
    np.testing.assert_array_equal(joined.usage_milli[:, 0], want.usage_milli[:, 0])
    assert not joined.has_sample[:, 1].any() and built == [1]  # built once


# One sampled running pod per row, now = 10,000 s, the cpu rule's period 300 s and delay 30 s, a
# 60 s metric window: the branches of hpa_compiled._cpu_unready, which makes the transition's and
# the sample's ages finite only where it reads them (an unset transition is Go's zero time).
CPU_RULE_ROWS = [
    pytest.param(100.0, np.nan, 0.0, True, id="young-unset-transition"),
    pytest.param(100.0, 9_990.0, np.inf, True, id="young-infinite-sample-age"),
    pytest.param(100.0, 9_990.0, np.nan, True, id="young-nan-sample-age"),
    pytest.param(100.0, -np.inf, 5.0, True, id="young-transition-at-minus-infinity"),
    pytest.param(100.0, np.inf, 5.0, False, id="young-not-ready-transition-at-infinity"),
    pytest.param(9_000.0, np.nan, 0.0, False, id="old-not-ready-unset-transition"),
    pytest.param(9_000.0, 9_995.0, 0.0, False, id="old-not-ready-recent-transition"),
    pytest.param(9_000.0, -np.inf, 0.0, False, id="old-not-ready-transition-at-minus-infinity"),
    pytest.param(9_000.0, np.nan, 0.0, True, id="old-ready-unset-transition"),
    pytest.param(np.nan, 9_000.0, 0.0, True, id="unset-start"),
]


@pytest.mark.parametrize("start, transition, age, ready", CPU_RULE_ROWS)
def test_listed_cpu_rule_equals_numpy(monkeypatch, start, transition, age, ready):
    monkeypatch.setattr(compiled, "switch", "1")
    # two pods of one target: the row's pod, and a Ready one started long ago that always counts
    listed = ListedPods(np.zeros(2, np.int64), np.zeros(2, bool), np.array([ready, True]), np.array([start, 0.0]),
                        np.array([transition, np.nan]), np.array([95.0, 40.0]), np.array([age, 0.0]), ("a", "b"),
                        10_000.0, 100_000, 60.0, 0)
    args = (np.array([2]), 50, 0.1, 0.1)
    kw = dict(cpu_rules=True, cpu_initialization_period_s=300.0, initial_readiness_delay_s=30.0)
    got = hpa_compiled.try_listed_utilization_replicas(listed, *args, **kw)
    pods = table_samples(listed)
    table = hr.PodTable(**{**pods.pods.__dict__, "usage_milli": pods.usage_milli[:, 0],
                           "has_sample": pods.has_sample[:, 0]})
    want = hr.resource_utilization_replicas(table, hr.StraySamples(), *args, **kw)  # numpy, the reference
    compiled_table = hpa_compiled.try_resource_utilization_replicas(table, hr.StraySamples(), *args, **kw)
    for name in ("replicas", "utilization", "usage_milli", "error"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        np.testing.assert_array_equal(getattr(compiled_table, name), getattr(want, name), err_msg=name)


# One pod whose usage, times the largest target utilization (at least 100), is just below or
# at the int64 bound the kernels keep every sum (x 100) under (hpa_compiled._SUM_LIMIT): the
# listed pass declines exactly where the table's compiled path does (the listed pass takes the
# largest target from its kernel).
_NEAR_LIMIT = hpa_compiled._SUM_LIMIT // 150  # milli-units: x 150 reaches the limit, x 100 does not


@pytest.mark.parametrize("targets, declined", [
    pytest.param([100, 100], False, id="at-100-fits"),
    pytest.param([80, 150], True, id="one-target-at-150-declines"),
    pytest.param([149, 20], False, id="149-fits"),
    pytest.param(150, True, id="the-policy's-150-declines"),
])
def test_listed_pass_declines_where_the_table_does(monkeypatch, targets, declined):
    monkeypatch.setattr(compiled, "switch", "1")
    listed = ListedPods(np.array([0], np.int64), np.zeros(1, bool), np.ones(1, bool), np.array([0.0]),
                        np.array([np.nan]), np.array([(_NEAR_LIMIT + 1) / 1000.0]), np.zeros(1), ("a",), 10_000.0,
                        100_000, 60.0, 0)
    args = (np.array([1, 1]), targets if np.isscalar(targets) else np.array(targets), 0.1, 0.1)
    got = hpa_compiled.try_listed_utilization_replicas(listed, *args)
    pods = table_samples(listed)
    table = hr.PodTable(**{**pods.pods.__dict__, "usage_milli": pods.usage_milli[:, 0],
                           "has_sample": pods.has_sample[:, 0]})
    compiled_table = hpa_compiled.try_resource_utilization_replicas(table, hr.StraySamples(), *args)
    assert (got is None) == (compiled_table is None) == declined
