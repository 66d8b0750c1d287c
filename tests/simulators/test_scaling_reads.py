"""The Reconciler reads a cycle's scaling metrics as arrays where the source holds them so
(ArrayMetricsSource: SimMetrics.read_scaling, one compiled read of the metrics ring) and
queries them one by one elsewhere (the live path, and the simulator's cycles it declines):
the same runs, records and cycle results both ways."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from controller.core.scaling import compiled
from controller.core.scaling.signal_compiled import read_signal_fast
from controller.errors import MetricsUnavailable
from controller.policy import load_policies
from controller.ports import ArrayMetricsSource
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators import runner
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import run_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.helpers import canonical, run_view
from tests.runtime.test_scaling_memory import CROWD  # eight services
from tests.simulators.test_lockstep import SCENARIO
from tests.simulators.test_results_kept import SPECS  # the default policy, forecast, hpa, with a healer, restarted

POLICIES = Path(__file__).resolve().parents[2] / "policies"


class QueryByQuery(SimMetrics):
    """SimMetrics without the ArrayMetricsSource capability: every read a query."""

    read_scaling = None


def results_view(results) -> list:
    """What a cycle result says of its reads, comparable with ==."""
    return [canonical({"queries": r.queries, "answered": r.answered, "unavailable": r.unavailable,
                       "missing": r.missing, "implausible": r.implausible, "errors": r.errors,
                       "desired": None if r.decision is None else r.decision.norm.desired,
                       "latest": None if r.decision is None else asdict(r.decision.signal)})
            for r in results]


@pytest.mark.parametrize("make", SPECS)
def test_a_run_reading_arrays_equals_the_run_querying_one_by_one(monkeypatch, make):
    monkeypatch.setattr(compiled, "switch", "1")
    sc = load_scenario_text(SCENARIO.format(duration="30m"))  # an outage in it: those cycles query
    reads = []
    original = SimMetrics.read_scaling

    def counted(self, *args):
        got = original(self, *args)
        reads.append(got is not None)
        return got

    monkeypatch.setattr(SimMetrics, "read_scaling", counted)
    seen_arrays: list = []
    arrays, arrays_log = run_controllers(sc, [make()], keep_records=True, keep_trajectory=True,
                                         on_cycle=seen_arrays.append)[0]
    monkeypatch.setattr(runner, "SimMetrics", QueryByQuery)
    seen_queries: list = []
    queried, queried_log = run_controllers(sc, [make()], keep_records=True, keep_trajectory=True,
                                           on_cycle=seen_queries.append)[0]
    assert run_view(arrays) == run_view(queried)
    assert list(arrays_log.lines()) == list(queried_log.lines())
    assert results_view(seen_arrays) == results_view(seen_queries)
    assert len(arrays.actions) > 5  # something to compare
    if make().policy.params.pod_metrics:  # the hpa preset reads its metric per pod: never as arrays
        assert not reads
    else:
        assert any(reads) and not all(reads)  # the outage's cycles query (and fail) one by one


WINDOW = "sum by (namespace, deployment) (rate(http_requests_total[1m]))"
LATEST = "sum by (namespace, deployment) (rate(http_requests_total[30s]))"
READY = "kube_deployment_status_replicas_ready"


def ports(ticks: int, bindings: dict[str, str], picked: slice = slice(None)):
    """Ports over the CROWD scenario's cluster after ``ticks`` ticks, and its targets ``picked``
    (every service in engine order, or some of them: the reads gather)."""
    sc = load_scenario_text(CROWD)
    cluster = SimCluster(sc.cluster, np.random.default_rng(0))
    targets = SimTargets(cluster, sc.services)
    metrics = SimMetrics(cluster, bindings, 60.0, sc.tick_s, windows={LATEST: 30.0})
    metrics.attach(targets)
    rng = np.random.default_rng(1)
    for k in range(ticks):
        cluster.step(5.0 * k, 5.0, rng.uniform(50, 900, cluster.n_services))
        metrics.push(cluster.signals())
    refs = [cluster.ref(i) for i in range(cluster.n_services)][picked]
    return metrics, refs


BOUND = {WINDOW: "offered_rps", LATEST: "offered_rps", READY: "ready_replicas"}


@pytest.mark.parametrize("ticks, picked, latest", [
    pytest.param(1, slice(None), (LATEST,), id="first-tick-every-service"),
    pytest.param(30, slice(None), (LATEST,), id="full-window-every-service-in-order"),
    pytest.param(30, slice(None, None, -2), (LATEST,), id="some-services-gathered"),
    pytest.param(30, slice(None, None, -1), (LATEST,), id="every-service-permuted"),  # as sorted names pick them
    pytest.param(30, slice(None), (None,), id="no-latest-query"),
    pytest.param(4, slice(3, 4), (LATEST,), id="one-service-window-not-yet-full"),
])
def test_read_scaling_gives_what_the_queries_give_stacked(monkeypatch, ticks, picked, latest):
    monkeypatch.setattr(compiled, "switch", "1")
    metrics, refs = ports(ticks, BOUND, picked)
    nonnegative, above = np.array([True]), np.array([400.0])  # some latest readings implausible
    got = metrics.read_scaling((WINDOW,), latest, refs, 0.0, 20.0, nonnegative, above)
    window = metrics.query(WINDOW, refs, 0.0)
    assert isinstance(metrics, ArrayMetricsSource)
    np.testing.assert_array_equal(got.values, window.values[:, None])  # bit for bit (NaN equal)
    np.testing.assert_array_equal(got.present, window.present[:, None])
    np.testing.assert_array_equal(got.age_s, window.age_s[:, None])
    if latest[0] is None:
        assert got.latest is None
        return
    s = metrics.query(LATEST, refs, 0.0)
    expected = read_signal_fast(s.values[:, None], s.present[:, None], s.age_s[:, None], 20.0, nonnegative, above)
    np.testing.assert_array_equal(got.latest, expected.values)
    if len(refs) > 1:  # some implausible readings judged so, not all
        assert np.isnan(got.latest).any() and not np.isnan(got.latest).all()


@pytest.mark.parametrize("picked", [pytest.param(slice(None), id="every-service"),
                                    pytest.param(slice(None, None, -2), id="some-services-gathered")])
def test_a_source_read_every_tick_across_ring_wraps_gives_what_the_queries_give(monkeypatch, picked):
    """The reader SimMetrics keeps for the same arguments (its slots made once per ring position)
    reads what the queries read at every tick, before the window fills and through two wraps."""
    monkeypatch.setattr(compiled, "switch", "1")
    metrics, refs = ports(1, BOUND, picked)
    cluster, rng = metrics.cluster, np.random.default_rng(2)
    nonnegative, above = np.array([True]), np.array([400.0])
    readers = set()
    for k in range(1, 2 * metrics.slots + 5):
        got = metrics.read_scaling((WINDOW,), (LATEST,), refs, 0.0, 20.0, nonnegative, above)
        window, s = metrics.query(WINDOW, refs, 0.0), metrics.query(LATEST, refs, 0.0)
        expected = read_signal_fast(s.values[:, None], s.present[:, None], s.age_s[:, None], 20.0, nonnegative, above)
        np.testing.assert_array_equal(got.values, window.values[:, None], err_msg=f"after {k} ticks")
        np.testing.assert_array_equal(got.latest, expected.values, err_msg=f"after {k} ticks")
        cluster.step(5.0 * k, 5.0, rng.uniform(50, 900, cluster.n_services))
        metrics.push(cluster.signals())
        readers.add(id(metrics._reader[1]))
    assert len(readers) == 1  # one reader for the whole run: its slots reused at each ring position


@pytest.mark.parametrize("queries, latest, switch", [
    pytest.param((READY,), (None,), "1", id="an-instant-gauge-queries"),
    pytest.param((LATEST,), (None,), "1", id="a-query-over-its-own-window-queries"),
    pytest.param((WINDOW,), (WINDOW,), "1", id="a-latest-over-the-metrics-window-queries"),
    pytest.param(("up",), (None,), "1", id="an-unbound-query-raises-when-queried"),
    pytest.param((WINDOW,), (LATEST,), "0", id="kernels-off"),
])
def test_read_scaling_declines_what_it_does_not_read_as_a_window_mean(monkeypatch, queries, latest, switch):
    monkeypatch.setattr(compiled, "switch", switch)
    metrics, refs = ports(5, BOUND)
    assert metrics.read_scaling(queries, latest, refs, 0.0, 20.0, np.array([True]), np.array([np.inf])) is None


def test_read_scaling_declines_before_the_first_tick_and_in_an_outage(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    metrics, refs = ports(0, BOUND)
    args = ((WINDOW,), (LATEST,), refs, 0.0, 20.0, np.array([True]), np.array([np.inf]))
    assert metrics.read_scaling(*args) is None
    metrics, refs = ports(3, BOUND)
    # a metrics outage on every service: query raises
    metrics._last = replace(metrics._last, unavailable=np.ones(len(refs), bool))
    with pytest.raises(MetricsUnavailable):
        metrics.query(WINDOW, refs, 0.0)
    assert metrics.read_scaling(*args) is None


class Intercepting:
    """A source in front of SimMetrics that intercepts its queries (sim serve's BlindedMetrics,
    a test's faulty metrics) and forwards the rest (__getattr__): read_scaling among them."""

    def __init__(self, inner: SimMetrics):
        self.inner = inner

    def query(self, expr, targets, at, labels=None):
        raise MetricsUnavailable("blinded")

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("make, reads_arrays", [
    pytest.param(lambda c: SimMetrics(c, BOUND, 60.0, 5.0), True, id="sim-metrics"),
    pytest.param(lambda c: QueryByQuery(c, BOUND, 60.0, 5.0), False, id="without-the-capability"),
    pytest.param(lambda c: Intercepting(SimMetrics(c, BOUND, 60.0, 5.0)), False, id="a-wrapper-forwarding-it"),
])
def test_only_a_source_whose_class_declares_it_is_read_as_arrays(make, reads_arrays):
    policy = RuntimePolicy.of(load_policies([POLICIES / "setpoint-default.yaml"])[0])
    sc = load_scenario_text(CROWD)
    cluster = SimCluster(sc.cluster, np.random.default_rng(0))
    rec = Reconciler(policy, make(cluster), SimTargets(cluster, sc.services))
    assert (rec._arrays is rec.metrics) is reads_arrays
