"""The ``hpa`` preset reads per pod where the metrics source can (PodMetricsSource, checked when
the Reconciler is wired), on the simulated cluster and its metrics: the same Reconciler as live."""

from __future__ import annotations

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.policy import load_policies
from controller.ports import PodMetricsSource, PodSeries, Samples
from controller.runtime.pod_samples import pod_table, pod_table_from_view
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import policy_bindings
from simulators.scenario import load_scenario


class WorkloadOnly:
    """A MetricsSource without the per-pod capability (only ``query``)."""

    def __init__(self, inner: SimMetrics):
        self.inner = inner

    def query(self, expr, targets, at):
        return self.inner.query(expr, targets, at)


def world(policy_file: str, with_capability: bool, ticks: int = 60):
    """A Reconciler for the bundled policy over the step scenario's cluster after ``ticks`` ticks."""
    scenario = load_scenario("step")
    (policy,) = load_policies([bundled_policy(policy_file)])
    rp = RuntimePolicy.of(policy)
    cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
    targets = SimTargets(cluster, scenario.services)
    metrics = SimMetrics(cluster, policy_bindings(scenario, rp), scenario.metrics_window_s, scenario.tick_s)
    metrics.attach(targets)
    offered = scenario.offered()
    times = scenario.times()
    for k in range(ticks):
        cluster.step(times[k], scenario.tick_s, offered[k])
        metrics.push(cluster.signals())
    source = metrics if with_capability else WorkloadOnly(metrics)
    return Reconciler(rp, source, targets), metrics, float(times[ticks - 1])


@pytest.mark.parametrize("policy_file, with_capability, per_pod, pod_list", [
    pytest.param("hpa-cpu.yaml", True, True, True, id="hpa-preset-reads-per-pod-from-a-capable-source"),
    pytest.param("hpa-cpu.yaml", False, False, True, id="hpa-preset-without-capability-pods-stand-for-the-workload"),
    pytest.param("setpoint-default.yaml", True, False, False, id="setpoint-policy-reads-workload-values"),
])
def test_per_pod_reads_are_wired_once(policy_file, with_capability, per_pod, pod_list):
    rec, metrics, now = world(policy_file, with_capability)
    assert (rec.pods.source is metrics) == per_pod
    result = rec.cycle(now)
    d = result.decision
    assert not result.errors
    assert (d.hpa is not None) == pod_list  # the hpa preset always runs HPA's calculator
    if pod_list:
        assert d.valid.all() and int(d.hpa.utilization[0, 0]) == int(d.signal.values[0, 0])


def test_sim_metrics_per_pod_series_cover_the_running_pods():
    rec, metrics, now = world("hpa-cpu.yaml", True)
    assert isinstance(metrics, PodMetricsSource)
    targets = rec.cluster.resolve(rec.policy.selector)
    got = metrics.query_pods(rec.policy.queries[0], targets, now)
    view = rec.cluster.observe(targets, with_pods=True)
    running = {p.name for s in view.statuses for p in s.pods if p.phase == "Running"}
    assert isinstance(got, PodSeries) and set(got.pods) == running and len(running) > 0
    workload = metrics.query(rec.policy.queries[0], targets, now)
    assert np.allclose(got.values, workload.values[0])  # load is shared evenly by the ready pods
    other = SimMetrics(metrics.cluster, {"rps": "offered_rps"}, 60.0, 5.0)
    other.push(metrics.cluster.signals())
    assert isinstance(other.query_pods("rps", targets, now), Samples)  # not a per-pod signal: workload values


def test_pods_from_statuses_and_from_the_lister_agree():
    """The live path (full statuses, as the Kubernetes adapter gives them) and the simulated
    cluster's arrays (PodLister) build the same pod table."""
    rec, _, now = world("hpa-cpu.yaml", True, ticks=200)
    targets = rec.cluster.resolve(rec.policy.selector)
    slow, slow_index = pod_table(targets, rec.cluster.observe(targets, with_pods=True), now)
    fast, fast_index = pod_table_from_view(targets, rec.cluster.list_pods(targets), now)
    assert slow.size > 3 and slow_index == fast_index
    for column in ("target", "phase", "ready", "deleted", "start_age_s", "ready_transition_age_s", "request_milli"):
        np.testing.assert_array_equal(getattr(slow, column), getattr(fast, column), err_msg=column)


@pytest.mark.parametrize("shuffle", [pytest.param(False, id="pods-listed-in-uid-order"),
                                     pytest.param(True, id="pods-listed-in-any-order")])
def test_series_join_pods_by_uid_as_by_name(shuffle):
    """The simulated cluster's listings and series carry uids; joining by them finds the rows the
    (namespace, pod name) join finds, with pods missing from either side."""
    rec, metrics, now = world("hpa-cpu.yaml", True, ticks=200)
    targets = rec.cluster.resolve(rec.policy.selector)
    view = rec.cluster.list_pods(targets)
    got = metrics.query_pods(rec.policy.queries[0], targets, now)
    keep = np.arange(len(view.names))
    if shuffle:
        keep = np.random.default_rng(5).permutation(keep)[: max(1, keep.size - 2)]  # two pods not listed
    names, uid = [view.names[int(k)] for k in keep], view.uid[keep]
    _, by_uid = table_of_view(targets, view, keep, now, names, uid)
    _, by_name = table_of_view(targets, view, keep, now, names, None)
    series = PodSeries(tuple(got.namespaces), tuple(got.pods), got.values, got.age_s, got.window_s, got.uid)
    rows = by_uid.rows(series)
    np.testing.assert_array_equal(rows, by_name.rows(series))
    assert (rows >= 0).sum() >= 1 and (not shuffle or (rows < 0).any() or len(got.pods) < len(view.names))


def table_of_view(targets, view, keep, now, names, uid):
    from controller.runtime.pod_samples import table_of  # noqa: PLC0415
    return table_of(targets, view.target[keep], names, now, phase=np.zeros(keep.size, np.int64),
                    ready=np.ones(keep.size, np.int64), deleted=None, start_time=view.start_time[keep],
                    transition_time=view.ready_transition_time[keep], uid=uid)
