"""The ``hpa`` preset's per-pod read of the simulator in one compiled call (simulators/pod_reads.py,
``SimMetrics.query_listed_pods``) gives what the workload query and the padded read gave one
after the other (``SimMetrics.query``, then ``ClusterPort.padded_pod_samples``): every array,
tick after tick on a cluster scaled up and down, through a metrics outage (the same error), for
every service in order and for a subset in another order; without a target-list comparison
(``ClusterPort.rows_of``) or a kernel call from Python of its own.

A cycle of the preset then takes that read as its arrays (PodReader.read_stacked, the
Reconciler's ``_read_pods``): no ``_query_all`` or ``PodReader.read``, and the same run and
cycle results as the read through Samples (read_stacked off); a read that gives no arrays (an
outage) is finished by ``PodReader.read`` with the same answer, queried once."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from controller.core.scaling import compiled, hpa_compiled
from controller.errors import MetricsUnavailable, NotFound
from controller.model import TargetRef
from controller.policy import load_policies
from controller.ports import PaddedPodSamples
from controller.runtime import reconciler as reconciler_module
from controller.runtime.pod_samples import PodReader
from simulators import metrics_compiled
from simulators.ports import SimMetrics
from simulators.runner import ControllerSpec, run_controllers
from simulators.scenario import load_scenario, load_scenario_text
from simulators.simcluster import pod_listing
from simulators.simcluster.port import ClusterPort
from tests.runtime.test_listed_pod_samples import hpa_sim_ports, scaled_ticks
from tests.simulators.helpers import canonical
from tests.simulators.test_lockstep import SCENARIO

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def two_step(metrics: SimMetrics, expr: str, targets, at: float):
    """The read as it was made: the workload query, then the padded read with its values."""
    workload = metrics.query(expr, targets, at)
    got = metrics.cluster.padded_pod_samples(targets, workload.present, workload.values)
    return workload, got


def assert_same_padded(got: PaddedPodSamples, workload, want: dict, metrics: SimMetrics, targets) -> None:
    for name in ("rows", "exists", "ends", "phase", "start_time", "transition_time"):
        a, b = getattr(got.slots, name), getattr(want["slots"], name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (got.slots.empty, got.slots.pending_code, got.slots.ready_code) == (
        want["slots"].empty, want["slots"].pending_code, want["slots"].ready_code)
    for name, a, b in (("values", got.values, want["values"]), ("age_s", got.age_s, workload.age_s),
                       ("means", got.means[0], want["means"]), ("has_mean", got.means[1], want["has_mean"])):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.window_s == metrics.slots * metrics.tick_s
    listed, listed_want = got.listed(), metrics._listed(targets, workload, got.window_s)
    for name in ("target", "pending", "ready", "start_time", "ready_transition_time", "uid"):
        np.testing.assert_array_equal(getattr(listed.pods, name), getattr(listed_want.pods, name), err_msg=name)
    for name in ("values", "age_s"):
        np.testing.assert_array_equal(getattr(listed, name), getattr(listed_want, name), err_msg=name)


@pytest.mark.parametrize("scenario_name", [
    pytest.param("metrics-outage", id="outage-stale-nan"),
    pytest.param("crash-loop", id="crash-loop"),
    pytest.param("step", id="step"),
])
@pytest.mark.parametrize("order", [pytest.param("resolved", id="every-service"),
                                   pytest.param("reversed", id="subset-in-another-order")])
def test_one_call_read_equals_the_query_then_the_padded_read(monkeypatch, scenario_name, order):
    monkeypatch.setattr(compiled, "switch", "1")
    scenario, rp, cluster, targets_port, metrics = hpa_sim_ports(scenario_name)
    targets = targets_port.resolve(rp.selector)
    if order == "reversed":
        targets = targets[::-1][: max(1, len(targets) - 1)]
    expr = rp.queries[0]
    outages = reads = 0
    for at in scaled_ticks(scenario, cluster, metrics, 5):
        try:
            workload, want = two_step(metrics, expr, targets, at)
        except MetricsUnavailable as exc:
            with pytest.raises(MetricsUnavailable, match=str(exc)):
                metrics.query_listed_pods(expr, targets, at)
            outages += 1
            continue
        got = metrics.query_listed_pods(expr, targets, at)
        assert isinstance(got, PaddedPodSamples)
        assert_same_padded(got, workload, want, metrics, targets)
        reads += 1
    assert reads > 10
    if scenario_name == "metrics-outage":
        assert outages > 0


def test_the_read_compares_no_target_list_and_calls_no_kernel_from_python(monkeypatch):
    """After the first read of a target list: no ClusterPort.rows_of (its cache compares the list
    element by element), and neither the window-mean nor the padded-means kernel called from
    Python (both run inside the one call)."""
    monkeypatch.setattr(compiled, "switch", "1")
    scenario, rp, cluster, targets_port, metrics = hpa_sim_ports("step")
    targets = targets_port.resolve(rp.selector)
    times, offered = scenario.times(), scenario.offered()
    cluster.step(times[0], scenario.tick_s, offered[0])
    metrics.push(cluster.signals())
    metrics.query_listed_pods(rp.queries[0], targets, float(times[0]))  # the list's rows found (and kept)
    called = []
    for owner, name in ((ClusterPort, "rows_of"), (metrics_compiled, "_window_means_kernel"),
                        (pod_listing, "_padded_means_kernel")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, name=name, original=original: called.append(name) or original(*a))
    for k in range(1, 6):
        cluster.step(times[k], scenario.tick_s, offered[k])
        metrics.push(cluster.signals())
        assert isinstance(metrics.query_listed_pods(rp.queries[0], targets, float(times[k])), PaddedPodSamples)
    assert called == []


def run_of(run) -> dict:
    """A run's scores, actions and trajectory, comparable with ==."""
    return canonical({"scores": run.scores, "actions": [asdict(a) for a in run.actions],
                      "trajectory": vars(run.trajectory)})


def hpa_spec() -> ControllerSpec:
    return ControllerSpec("hpa", "policy", "", policy=load_policies([POLICIES / "hpa-cpu.yaml"])[0])


def bits(a: np.ndarray) -> tuple:
    """An array as comparable bytes (NaN equal to NaN, -0.0 not to 0.0)."""
    return a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes()


def cycle_view(result) -> tuple:
    """What a cycle result says of its reads and decision, comparable with ==."""
    d = result.decision
    arrays = (d.norm.desired, d.norm.reason, d.signal.values, d.signal.usable, d.observed, d.proposals,
              d.hpa.utilization, d.hpa.error)
    return (result.queries, list(result.answered), list(result.errors), dict(result.missing), d.hpa.messages,
            *map(bits, arrays))


def counted_run(monkeypatch, sc, stacked: bool) -> tuple[dict, list, dict]:
    """The hpa preset's run with every cycle's view, and the calls of the reads per cycle."""
    calls = {"_query_all": 0, "read": 0, "query_listed_pods": 0, "pass_proposal": 0}
    for owner, name in ((reconciler_module.Reconciler, "_query_all"), (PodReader, "read"),
                        (SimMetrics, "query_listed_pods"), (hpa_compiled, "pass_proposal")):
        original = getattr(owner, name)

        def counting(*a, name=name, original=original):
            calls[name] += 1
            return original(*a)
        monkeypatch.setattr(owner, name, counting)
    if not stacked:
        monkeypatch.setattr(PodReader, "read_stacked", lambda self, targets, now: None, raising=False)
    seen = []
    run = run_controllers(sc, [hpa_spec()], keep_records=False, keep_trajectory=True,
                          on_cycle=lambda r: seen.append(cycle_view(r)))[0][0]
    monkeypatch.undo()
    monkeypatch.setattr(compiled, "switch", "1")
    return run_of(run), seen, calls


@pytest.mark.parametrize("scenario", [
    pytest.param(lambda: load_scenario_text(SCENARIO.format(duration="30m")), id="lockstep-30m"),
    pytest.param(lambda: load_scenario("metrics-outage"), id="metrics-outage"),
])
def test_a_cycle_reads_its_arrays_in_one_read_with_the_same_run(monkeypatch, scenario):
    monkeypatch.setattr(compiled, "switch", "1")
    sc = scenario()
    run, cycles, calls = counted_run(monkeypatch, sc, stacked=True)
    run_ref, cycles_ref, calls_ref = counted_run(monkeypatch, sc, stacked=False)
    assert run == run_ref and cycles == cycles_ref
    failed = sum(1 for c in cycles if c[2])  # cycles whose read failed (the outage)
    # a ReplicaProposal (its error texts) only in a one-call cycle with a target in error
    in_error = sum(1 for c in cycles if not c[2] and np.frombuffer(c[-1][2], c[-1][0]).any())
    assert calls["pass_proposal"] == in_error < len(cycles) - failed
    assert len(cycles) > 10 and calls["query_listed_pods"] == calls_ref["query_listed_pods"] == len(cycles)
    assert calls["_query_all"] == calls["read"] == failed  # only where the read gave no arrays
    assert calls_ref["_query_all"] == calls_ref["read"] == len(cycles)
    if sc.name == "metrics-outage":
        assert failed > 0


def test_a_target_the_cluster_does_not_have_is_read_as_before(monkeypatch):
    """A target list with a workload the cluster does not have: no one-call read; the query then
    the padded read, which refuse it as they did (NotFound from the workload query)."""
    monkeypatch.setattr(compiled, "switch", "1")
    scenario, rp, cluster, targets_port, metrics = hpa_sim_ports("step")
    targets = [*targets_port.resolve(rp.selector), TargetRef(rp.selector.namespace, "no-such-workload")]
    at = next(scaled_ticks(scenario, cluster, metrics, 3))
    assert targets_port.known_rows(targets) is None
    with pytest.raises(NotFound):
        metrics.query(rp.queries[0], targets, at)
    with pytest.raises(NotFound):
        metrics.query_listed_pods(rp.queries[0], targets, at)
