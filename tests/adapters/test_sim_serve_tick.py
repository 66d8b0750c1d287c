"""sim serve's tick does numpy work only, and what clients read is the same as when it built
every workload's status, every pod's name and a fresh load evaluator each tick.

The reference (:class:`EagerExporter`) is the exporter as it was: each tick it built every
workload's status and named every pod to key the per-pod counters by name, and a scrape wrote
each line from the statuses and those counters (tests/support/reference_exposition.py). Two
worlds of one scenario take the same writes (scales, rollouts, rollbacks, pod deletions, pauses,
through the store as the API routes call it) and ticks; every scrape and every listing must be
identical, byte for byte, and the per-pod counters equal bit for bit.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from simulators import load as load_module
from simulators.kubeapi import objects as K
from simulators.kubeapi import server as server_module
from simulators.kubeapi.exposition import first_buckets
from simulators.kubeapi.metrics import LATENCY_BUCKETS_S, SimMetricsExporter, pod_increments
from simulators.kubeapi.server import SimWorld
from simulators.load_batch import ShapeBatch
from simulators.scenario import load_scenario_text
from tests.support.reference_exposition import reference_render

#: Four services in two namespaces, every fault kind the exporter shows within the first minutes:
#: application series absent (outage), frozen (stale) and NaN; a memory leak, crashes, a crash
#: loop, a bad release (per-pod error ratios and latency), node loss (pods left Pending).
SCENARIO = """
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: tick-equivalence}
spec:
  duration: 1h
  tick: 5s
  seed: 11
  slo: {latency: {percentile: 95, below: 250ms}}
  nodes: {count: 10, podsPerNode: 5}
  services:
    - {name: web, namespace: shop, capacityPerPod: 100, initialReplicas: 4, maxPods: 16, startupDelay: 10s,
       load: [{constant: {rps: 350}}, {noise: {sigma: 0.2, every: 10s}}]}
    - {name: api, namespace: shop, capacityPerPod: 50, initialReplicas: 3, maxPods: 16,
       load: [{diurnal: {mean: 120, amplitude: 0.5, peakHour: 3}}]}
    - {name: cart, namespace: store, capacityPerPod: 80, initialReplicas: 2, maxPods: 12,
       load: [{step: {at: 2m, from: 60, to: 260}}]}
    - {name: db, namespace: store, capacityPerPod: 200, initialReplicas: 3, maxPods: 8,
       load: [{constant: {rps: 300}}]}
  faults:
    - {name: leak, kind: memory-leak, at: 30s, services: [web], mibPerSecond: 1}
    - {name: prometheus-down, kind: metrics-outage, at: 1m, duration: 1m}
    - {name: blip, kind: pod-crash, at: 2m, services: [web], count: 2}
    - {name: exporter-stuck, kind: stale-metrics, at: 2m30s, duration: 1m}
    - {name: release-42, kind: bad-rollout, at: 3m, services: [api], errorRatioMultiplier: 10, extraLatency: 150ms}
    - {name: exporter-nan, kind: nan-metrics, at: 4m, duration: 1m}
    - {name: release-43, kind: crash-loop, at: 5m, services: [cart]}
    - {name: zone-a-down, kind: node-loss, at: 6m, duration: 2m, share: 25%}
"""
TICKS = 120  # 10 simulated minutes: every fault above starts (and most end) within them


class EagerExporter(SimMetricsExporter):
    """The reference: the exporter's record as it was, keying the per-pod counters by name every
    tick (every workload's status, every pod's signals with its name), and its render."""

    def __init__(self, store):
        super().__init__(store)
        self.eager = {"cpu_seconds": {}, "pod_memory": {}, **{f"pod_{n}": {} for n in self.POD_COUNTERS}}
        #: (namespace, pod) -> its creation time at the last tick: a StatefulSet's pod recreated under
        #: its name (web-1 again) is another pod, whose counters start again from 0
        self.born: dict[tuple[str, str], float] = {}

    def _by_name(self) -> dict[str, dict]:
        return self.eager

    def render(self) -> str:
        return reference_render(self)

    def record(self, observed, dt_s: float) -> None:
        v = observed.values
        counted = ~observed.unavailable & ~observed.nonfinite
        dt_s = dt_s / self.store.clock.speed
        cpu_cores = np.nan_to_num(v["utilization_pct"]) / 100.0
        statuses = self.store.pod_statuses()
        with self.store.lock:
            pods = self.store.engine.pod_signals()
            bad_latency_s = self.store.engine.bad_pod_latency_s()
            terminating = self.store.terminating_pods()
        gained = pod_increments(observed, pods, bad_latency_s, self.bounds, dt_s)
        with self.lock:
            before = self.eager
            born = {(w.namespace, p.name): p.created_time for w, st in statuses for p in st.pods}
            self.eager = {field: {key: value for key, value in values.items()
                                  if self.born.get(key[-2:]) == born.get(key[-2:])}
                          for field, values in self.eager.items()}
            self.born = born
            self._count_pods_by_name(pods, gained, statuses)
            alive = {}
            for w, st in statuses:
                per_pod = cpu_cores[w.index] * w.config.cpu_request_cores * dt_s
                for p in st.pods:
                    key = (w.namespace, p.name)
                    alive[key] = (self.eager["cpu_seconds"].get(key, 0.0)
                                  + (per_pod if p.ready and counted[w.index] else 0.0))
            self.eager["cpu_seconds"] = alive
            self._keep_terminating_by_name(before, terminating)
            self.last = observed

    def _keep_terminating_by_name(self, before: dict, terminating: dict) -> None:
        """The pods gone from the engine that are listed terminating ((row, name) keys) keep their
        counters, CPU seconds and memory (their container ran) as they were at the tick before
        (their series stay)."""
        kept = [key for key in before["pod_requests"] if key not in self.eager["pod_requests"]
                and (key[0], key[2]) in terminating]
        for key in kept:
            for counter in self.POD_COUNTERS:
                self.eager[f"pod_{counter}"][key] = before[f"pod_{counter}"][key]
            self.eager["cpu_seconds"].setdefault(key[1:], before["cpu_seconds"][key[1:]])
            if key[1:] in before["pod_memory"]:
                self.eager["pod_memory"].setdefault(key[1:], before["pod_memory"][key[1:]])

    def _count_pods_by_name(self, pods: dict, gained: dict, statuses) -> None:
        ns = {w.index: w.namespace for w, _ in statuses}
        counters, memory = {name: {} for name in self.POD_COUNTERS}, {}
        for k, (row, name) in enumerate(zip(np.asarray(pods["row"]).tolist(), pods["name"])):
            key = (row, ns.get(row, ""), name)
            for counter, by_name in counters.items():
                by_name[key] = self.eager[f"pod_{counter}"].get(key, 0.0) + gained[counter][k]
            if pods["running"][k]:
                memory[(ns.get(row, ""), name)] = float(pods["memory_mib"][k]) * 2**20
        self.eager.update({f"pod_{name}": by_name for name, by_name in counters.items()}, pod_memory=memory)


class EagerWorld(SimWorld):
    """SimWorld as it was: its reference exporter, and the load of each tick from a fresh
    evaluator (the scenario's offered matrix of that one time)."""

    def offered(self, t_s: float) -> np.ndarray:
        return self.scenario.offered(np.array([t_s]))[0]


def worlds(monkeypatch, speed: float, statefulsets: frozenset[str]) -> tuple[SimWorld, SimWorld]:
    scenario = load_scenario_text(SCENARIO, "tick-equivalence.yaml")
    lazy = SimWorld(scenario, speed=speed, statefulsets=statefulsets, wall_start_s=1.7e9)
    with monkeypatch.context() as m:
        m.setattr(server_module, "SimMetricsExporter", EagerExporter)
        eager = EagerWorld(scenario, speed=speed, statefulsets=statefulsets, wall_start_s=1.7e9)
    assert isinstance(eager.metrics, EagerExporter) and not isinstance(lazy.metrics, EagerExporter)
    return lazy, eager


def write(world: SimWorld, rng: np.random.Generator) -> None:
    """One client write, chosen by ``rng``: a scale, a rollout, a rollback to an older
    ReplicaSet's template, a pod deletion, a pause or resume, or nothing."""
    store = world.store
    w = store.workloads[int(rng.integers(len(store.workloads)))]
    action = rng.random()
    if action < 0.25:
        store.update_scale(w.kind, w.namespace, w.name, {"spec": {"replicas": int(rng.integers(1, 9))}})
    elif action < 0.32:
        body = store.get_workload(w.kind, w.namespace, w.name)
        body["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})[
            "kubectl.kubernetes.io/restartedAt"] = str(rng.integers(10**6))
        store.update_workload(w.kind, w.namespace, w.name, body)
    elif action < 0.38 and w.kind == "Deployment":  # kubectl rollout undo: an older ReplicaSet's template
        body = store.get_workload(w.kind, w.namespace, w.name)
        current = body["metadata"]["annotations"][K.REVISION_ANNOTATION]
        older = [rs for rs in store.list_replicasets(w.namespace, lambda labels: labels.get("app") == w.name)
                 if rs["metadata"]["annotations"][K.REVISION_ANNOTATION] != current]
        if older:
            template = copy.deepcopy(older[0]["spec"]["template"])
            del template["metadata"]["labels"][K.TEMPLATE_HASH_LABEL]
            body["spec"]["template"] = template
            store.update_workload(w.kind, w.namespace, w.name, body)
    elif action < 0.46:
        pods = [p["metadata"]["name"] for p in store.list_pods(w.namespace, lambda labels: labels.get("app") == w.name)]
        if pods:
            store.delete_pod(w.namespace, pods[int(rng.integers(len(pods)))])
    elif action < 0.50 and w.kind == "Deployment":
        body = store.get_workload(w.kind, w.namespace, w.name)
        body["spec"]["paused"] = not body["spec"].get("paused", False)
        store.update_workload(w.kind, w.namespace, w.name, body)


def listing(world: SimWorld) -> list:
    """Every engine-backed object as the API lists it."""
    store, every = world.store, lambda labels: True
    return [store.list_workloads("Deployment", None, every), store.list_workloads("StatefulSet", None, every),
            store.list_replicasets(None, every), store.list_pods(None, every)]


@pytest.mark.parametrize("speed, statefulsets, scrape_every, list_every", [
    pytest.param(1.0, frozenset(), 1, 5, id="scraped-every-tick"),
    pytest.param(1.0, frozenset(), 9, 13, id="scraped-every-9-ticks-the-names-of-the-last"),
    pytest.param(4.0, frozenset({"db"}), 4, 7, id="speed-4-with-a-statefulset"),
    pytest.param(0.5, frozenset({"cart"}), 6, 1, id="half-speed-listed-every-tick"),
])
def test_scrapes_and_listings_equal_the_eager_paths_across_writes_and_faults(
        monkeypatch, speed, statefulsets, scrape_every, list_every):
    lazy, eager = worlds(monkeypatch, speed, statefulsets)
    first = first_buckets([w.config for w in lazy.store.workloads], LATENCY_BUCKETS_S)
    assert first.min() > 0  # every workload's pods leave some out
    rng_lazy, rng_eager = np.random.default_rng(4), np.random.default_rng(4)
    seen = set()  # what the exposition shows differently, met along the run
    for t in range(TICKS):
        for world, rng in ((lazy, rng_lazy), (eager, rng_eager)):
            if rng.random() < 0.6:
                write(world, rng)
        if t % scrape_every == scrape_every // 2:  # between a write and the next tick: its new pods, its gone ones
            assert lazy.metrics.render() == eager.metrics.render(), f"after the writes before tick {t}"
        lazy.advance(1)
        eager.advance(1)
        last = lazy.metrics.last
        seen |= {"absent"} if last.unavailable.any() else set()
        seen |= {"nan"} if last.nonfinite.any() else set()
        if t % scrape_every == 0:
            assert lazy.metrics.render() == eager.metrics.render(), f"tick {t}"
            pods = lazy.metrics._pods  # the buckets a scrape leaves out (below a workload's floor) hold nothing
            cut = np.arange(len(LATENCY_BUCKETS_S))[None, :] < first[pods["row"]][:, None]
            assert not pods["buckets"][cut].any(), f"tick {t}"
            if len(lazy.metrics.pod_memory) < len(lazy.metrics.cpu_seconds):
                seen.add("not-running")
        if t % list_every == 0:
            assert listing(lazy) == listing(eager), f"tick {t}"
    for name in ("cpu_seconds", "pod_requests", "pod_errors", "pod_served", "pod_latency_sum", "pod_memory"):
        assert getattr(lazy.metrics, name) == eager.metrics.eager[name], name  # exact: the same float operations
    buckets = lazy.metrics.pod_buckets
    assert buckets.keys() == eager.metrics.eager["pod_buckets"].keys()
    assert all(np.array_equal(buckets[k], b) for k, b in eager.metrics.eager["pod_buckets"].items())
    assert lazy.engine.spec_replicas.tolist() == eager.engine.spec_replicas.tolist()
    assert lazy.store.resource_version == eager.store.resource_version
    assert seen == {"absent", "nan", "not-running"}


@pytest.mark.parametrize("load", [
    pytest.param("[{constant: {rps: 100}}, {noise: {sigma: 0.3, every: 5s}}]", id="noise-across-knot-blocks"),
    pytest.param("[{diurnal: {mean: 500, amplitude: 0.8, peakHour: 1}}, {flashCrowd: {at: 10m, peak: 900}}]",
                 id="diurnal-with-a-flash-crowd"),
    pytest.param("[{ramp: {start: 1m, end: 30m, from: 10, to: 900}}]", id="ramp"),
])
def test_the_load_of_each_tick_is_the_scenario_s_offered_load(load):
    """The world keeps one load evaluator (its noise knots drawn once a block of 1,024 knots, 85
    simulated minutes at one every 5 s) where it built one a tick: the same numbers, bit for bit,
    at the times advance() computes (each the last plus the tick)."""
    text = SCENARIO.split("  nodes:")[0] + f"""  services:
    - {{name: a, count: 3, capacityPerPod: 100, initialReplicas: 2, maxPods: 8, load: {load}}}
    - {{name: b, capacityPerPod: 100, initialReplicas: 2, maxPods: 8, load: [{{constant: {{rps: 40}}}}]}}
"""
    scenario = load_scenario_text(text, "load.yaml")
    world = SimWorld(scenario, wall_start_s=1.7e9)
    t = world.next_tick_s
    for _ in range(1024 + 7):  # into the second knot block of the 5 s noise
        assert world.offered(t).tobytes() == scenario.offered(np.array([t]))[0].tobytes(), t
        t += world.tick_s


@pytest.mark.parametrize("ticks", [pytest.param(1, id="one-tick"), pytest.param(30, id="pods-start-and-turn-ready")])
def test_a_tick_builds_no_status_and_names_no_pod(monkeypatch, ticks):
    """Without the cluster's own Events (which name the pods they are about), a tick touches no
    per-workload object: statuses and names are built when a client reads them; and it evaluates
    the load with the world's evaluator, not a new one (which regrouped the shapes)."""
    scenario = load_scenario_text(SCENARIO, "tick-equivalence.yaml")
    world = SimWorld(scenario, wall_start_s=1.7e9, cluster_events=False)
    for w in world.store.workloads:  # pods to create, start and make Ready during the ticks
        world.store.update_scale(w.kind, w.namespace, w.name, {"spec": {"replicas": 7}})
    before = world.metrics.render()

    def built(*args, **kwargs):
        raise AssertionError("a tick built what only reads need (a status, a pod name) or a load evaluator")

    with monkeypatch.context() as m:
        for name in ("statuses", "pod_signals", "pod_name_of", "_name_of"):
            m.setattr(world.engine, name, built)
        m.setattr(load_module, "offered_function", built)
        m.setattr(ShapeBatch, "__init__", built)
        world.advance(ticks)
    after = world.metrics.render()
    assert after != before and 'pod="web-' in after
