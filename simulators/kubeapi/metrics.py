"""Prometheus exposition (text format 0.0.4) of the simulated workloads, under conventional names.

What a real cluster's scrape targets would show, computed from the engine tick by tick:

- application metrics, per pod, as Prometheus scraping instrumented pods (kubernetes service
  discovery, role pod) would store them: ``http_requests_total``, ``http_request_errors_total``
  and the ``http_request_duration_seconds`` histogram, labelled ``namespace``, ``deployment`` (the
  workload's name, as relabeling from the pod's owner gives it; a StatefulSet's too) and ``pod``.
  ``sum by (namespace, deployment)`` reads a workload and ``sum by (namespace, pod)`` a pod from
  the same series (what the bundled healing policy's revision checks compare). A Ready pod
  receives an even share of the workload's offered requests (client retries included), fails
  its share of the served ones at its revision's error ratio (a bad release's pods more than
  the stable ones) and rejects its share of the dropped ones (errors too): while any pod is
  Ready the pods' sums are the workload's offered requests and its errors plus drops. While none
  is, no pod receives anything and the series stand still, as an app's own counters do (the
  load balancer's rate is ``setpoint_sim_requests_per_second``). A pod's series exist from its
  creation until it is gone: a deleted pod's stay while it is listed terminating (its grace,
  simulators/kubeapi/terminating.py), as Prometheus' pod discovery keeps scraping it while its
  container runs, with the values of its last tick: out of its Service's endpoints it gets no new
  request, and the requests it had were counted whole in the tick they came;
- kube-state-metrics: ``kube_deployment_spec_replicas``, ``kube_deployment_status_replicas``,
  ``kube_deployment_status_replicas_ready`` / ``_available`` / ``_updated`` (and the
  ``kube_statefulset_*`` equivalents), ``kube_pod_status_ready{condition}``,
  ``kube_pod_container_status_restarts_total``, ``kube_pod_container_resource_requests`` (each
  pod's CPU request in cores, ``resource="cpu"``, and memory request in bytes, ``resource="memory"``),
  ``kube_pod_deletion_timestamp`` (a terminating pod's deletionTimestamp): kube-state-metrics shows
  every pod object, so a terminating pod's series stay, not Ready, until it is gone;
- cAdvisor: ``container_cpu_usage_seconds_total{namespace,pod,container}`` (ready pods share the
  service's CPU evenly) and ``container_memory_working_set_bytes`` (each running pod's memory, a
  leak included: what the bundled healing policy's memory check and `setpoint import`'s memory
  queries read); a terminating pod's container runs through its grace: its series stay, as they
  were when it was deleted (it serves nothing then);
- recording-rule-free gauges for examples: ``setpoint_sim_cpu_utilization_ratio``,
  ``setpoint_sim_requests_per_second``, ``setpoint_sim_error_ratio``,
  ``setpoint_sim_latency_seconds{percentile="50|95|99"}``.

**Speed.** Prometheus computes ``rate()`` over wall time, and at ``--speed k`` a wall second
holds k simulated seconds. So that ``rate()`` reads the simulated per-second rates at any
speed (what a real cluster would show, and what policies are written against), every counter
(requests, errors, histogram buckets, sum and count, CPU seconds) advances by the simulated
amount divided by the speed: a tick of ``dt_s`` simulated seconds adds ``rate * dt_s / speed``.
Counter *totals* are thus simulated totals over the speed; gauges are unaffected.
(``kube_pod_container_status_restarts_total`` counts the engine's restarts as they are.)

**Histogram.** Each tick, a pod's served requests are spread over the buckets with a latency
distribution whose CDF is piecewise linear through the percentiles
``(p50/2, 0), (p50, 0.5), (p95, 0.95), (p99, 0.99), (1.25 p99, 1)``: the workload's (the engine's)
without what its bad pods added (``bad_pod_latency_s``), plus the pod's own extra latency (a
latency fault of a revision, a degraded pod), so a slow revision's pods are slower and the
others are not. Buckets grow by 25 % from 5 ms (36 and +Inf, the same for every pod, so sums by
any labels are sound), so ``histogram_quantile(0.95, sum by (namespace, deployment, le)
(rate(..._bucket[1m])))`` interpolates inside the bucket that holds the engine's p95 over a steady
window: the error is below one bucket width (25 %) and in practice a few percent. ``_sum`` uses
the mean of that CDF. A workload's pods leave out the buckets below its latency floor (half its
zero-load median: they hold 0 forever, see ``exposition.first_buckets``): nothing a sum or a
``histogram_quantile`` reads changes. Cost: 32 lines a pod of a default workload (50 ms median);
at 1,000 services and ~6,100 pods a scrape is 261k lines, 32 MB (all 39: 303k, 37.5 MB; with the
histograms per workload before: 106k, 10.7 MB), rendered in ~57 ms (~78 ms; 28 ms before), and a
tick costs ~1 ms more (3.2 ms against 2.1) (``bench/sim_serve_tick.py --scrape-every 5``).

Application series follow the engine's *observed* signals: absent during a metrics outage,
frozen rates while stale, NaN gauges (and no counter increase) under a NaN fault.
kube-state-metrics and cAdvisor series come from the API state and are always present.
"""

from __future__ import annotations

import threading

import numpy as np

from simulators.kubeapi.exposition import Exposition
from simulators.kubeapi.store import KubeStore
from simulators.signals import ObservedSignals

#: Histogram bucket upper bounds (s): 5 ms * 1.25^k, k = 0..35 (5 ms .. 12.3 s).
LATENCY_BUCKETS_S = tuple(round(0.005 * 1.25 ** k, 6) for k in range(36))
_QUANTILE_KNOTS = np.array([0.0, 0.5, 0.95, 0.99, 1.0])


def latency_cdf_knots(p50: np.ndarray, p95: np.ndarray, p99: np.ndarray) -> np.ndarray:
    """(S, 5) latency knots (s) of the piecewise-linear CDF, strictly increasing per row."""
    x = np.stack([p50 * 0.5, p50, p95, p99, p99 * 1.25], axis=1)
    x = np.nan_to_num(x, nan=0.0, posinf=60.0)
    x[:, 0] = np.maximum(x[:, 0], 1e-6)
    for k in range(1, 5):  # equal percentiles (a flat latency) still need a strictly rising CDF
        x[:, k] = np.maximum(x[:, k], x[:, k - 1] * (1 + 1e-6) + 1e-9)
    return x


def bucket_shares(knots: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(S, B) share of requests at or below each bound: the CDF through ``knots`` (S, 5)."""
    cdf = np.zeros((knots.shape[0], bounds.size))
    for k in range(4):
        dq = _QUANTILE_KNOTS[k + 1] - _QUANTILE_KNOTS[k]
        lo, hi = knots[:, k:k + 1], knots[:, k + 1:k + 2]
        cdf += dq * np.clip((bounds[None, :] - lo) / (hi - lo), 0.0, 1.0)
    return cdf


def mean_latency(knots: np.ndarray) -> np.ndarray:
    """(S,) mean (s) of the piecewise-linear distribution."""
    dq = np.diff(_QUANTILE_KNOTS)
    return ((knots[:, :-1] + knots[:, 1:]) / 2.0 * dq[None, :]).sum(axis=1)


def pod_increments(observed: ObservedSignals, pods: dict, bad_latency_s: np.ndarray, bounds: np.ndarray,
                   dt_s: float) -> dict[str, np.ndarray]:
    """What each pod's application counters gain in a tick of ``dt_s`` counter seconds (the
    simulated seconds over the speed): (P,) ``requests``, ``errors``, ``served``, ``latency_sum``
    and (P, B) ``buckets`` (cumulative, per bound of ``bounds``), pods as in ``pods`` (the
    engine's ``pod_numbers`` or ``pod_signals``: row, ready, error_ratio, extra_latency_s).

    The load balancer shares a workload's offered requests evenly among its Ready pods; a pod
    fails its share of the served ones at its revision's error ratio and rejects its share of
    the dropped ones (errors too), so the pods' sums are the workload's requests and errors. Its
    latency is the workload's without what the bad pods added (``bad_latency_s``, (3, S) s of
    p50, p95, p99: the engine's ``bad_pod_latency_s``) plus its own extra latency: a slow
    revision's pods are slower, the others not. A workload whose signals are absent or NaN
    (``observed``'s masks) counts nothing."""
    v, row, ready = observed.values, pods["row"], pods["ready"]
    counted = ~observed.unavailable & ~observed.nonfinite
    n_ready = np.bincount(row[ready], minlength=counted.size)
    share = np.where(ready & counted[row], 1.0 / np.maximum(n_ready[row], 1), 0.0)
    rate = lambda name: np.nan_to_num(v[name])[row] * dt_s * share  # noqa: E731
    served = rate("served_rps")
    errors = served * np.nan_to_num(pods["error_ratio"]) + rate("dropped_rps")
    quantiles = np.stack([v["latency_p50_s"], v["latency_p95_s"], v["latency_p99_s"]], axis=1)  # (S, 3)
    knots = latency_cdf_knots(*quantiles.T)
    shares, means = np.take(bucket_shares(knots, bounds), row, axis=0), mean_latency(knots)[row]
    extra = np.asarray(pods["extra_latency_s"], dtype=np.float64)
    own = np.flatnonzero((extra != 0.0) | bad_latency_s.any(axis=0)[row])  # pods whose latency is not their row's
    if own.size:
        q = quantiles[row[own]] - bad_latency_s.T[row[own]] + extra[own, None]
        pod_knots = latency_cdf_knots(*q.T)
        shares[own], means[own] = bucket_shares(pod_knots, bounds), mean_latency(pod_knots)
    shares *= served[:, None]  # in place: (P, B) is the tick's largest array
    return {"requests": rate("offered_rps"), "errors": errors, "served": served,
            "latency_sum": served * means, "buckets": shares}


class SimMetricsExporter:
    """Accumulates counters from each engine tick and renders the exposition text.

    A tick costs numpy work only: the per-pod counters live in arrays addressed by the pods'
    slots; the counters by name (``cpu_seconds``, ``pod_requests``, ``pod_errors``,
    ``pod_served``, ``pod_latency_sum``, ``pod_buckets``, ``pod_memory``) are built from them when
    read. A scrape reads the arrays by slot (:mod:`simulators.kubeapi.exposition`), by name only
    when two pods shown share one."""

    #: the per-pod application counters (:func:`pod_increments`), kept per slot ("buckets": (B,) a pod)
    POD_COUNTERS = ("requests", "errors", "served", "latency_sum", "buckets")

    def __init__(self, store: KubeStore):
        self.store = store
        self.lock = threading.Lock()
        engine = store.engine
        S = len(store.workloads)
        self.bounds = np.array(LATENCY_BUCKETS_S)
        self.last: ObservedSignals | None = None
        self._cpu_request_cores = np.array([w.config.cpu_request_cores for w in store.workloads], dtype=np.float64)
        self._namespaces = [w.namespace for w in store.workloads]
        # per slot (row * K + slot) of the engine: the serial of the pod it held at the last tick
        # (-1: none) and that pod's counters; a pod keeps its slot for life, so the same serial in
        # the same slot is the same pod (its name is a function of row, serial and revision)
        self._K = engine.K
        self._slot_serial = np.full(S * engine.K, -1, dtype=np.int64)
        self._slot_cpu_s = np.zeros(S * engine.K)
        self._slot = {name: np.zeros(S * engine.K) for name in self.POD_COUNTERS[:-1]}
        self._slot["buckets"] = np.zeros((S * engine.K, self.bounds.size))
        #: the pods of the last tick, (P,) arrays in slot order: row, flat (row * K + slot), serial,
        #: revision_seq, running, restarts, memory_bytes, cpu_s, the POD_COUNTERS (see _count_pods),
        #: leaving (False)
        self._pods: dict[str, np.ndarray] | None = None
        #: the pods terminating at the last tick, out of the engine: the same arrays, their values
        #: frozen (leaving True); None: none (see _keep_terminating)
        self._leaving: dict[str, np.ndarray] | None = None
        self._leaving_keys: list[tuple[int, str]] = []  # their (row, name), in that order
        self._shown: dict[str, np.ndarray] | None = None  # _pods then _leaving, made on the first read
        self._named: dict[str, dict] | None = None  # the by-name dicts of _pods, built on first read
        self._text: Exposition | None = None  # made at the first scrape (a world never scraped needs none)

    def record(self, observed: ObservedSignals, dt_s: float) -> None:
        """Add one tick of ``dt_s`` simulated seconds (call after every engine step): each counter
        grows by its rate times ``dt_s / speed``, the wall seconds the tick takes (see Speed)."""
        v = observed.values
        counted = ~observed.unavailable & ~observed.nonfinite
        dt_s = dt_s / self.store.clock.speed
        cpu_cores = np.nan_to_num(v["utilization_pct"]) / 100.0
        with self.store.lock:
            pods = self.store.engine.pod_numbers()
            bad_latency_s = self.store.engine.bad_pod_latency_s()
            terminating = self.store.terminating_pods()
        gained = pod_increments(observed, pods, bad_latency_s, self.bounds, dt_s)
        with self.lock:
            before, leaving = self._pods, self._leaving
            self._count_pods(pods, gained, counted, cpu_cores, dt_s)
            self._keep_terminating(before, leaving, terminating)
            self.last = observed

    def _count_pods(self, pods: dict, gained: dict, counted: np.ndarray, cpu_cores: np.ndarray, dt_s: float) -> None:
        """Per-pod counters (CPU seconds, the application counters ``gained`` this tick:
        :func:`pod_increments`) and memory, from ``pods`` (the engine's ``pod_numbers``): a
        pod's counters go on from the last tick's while it holds the same slot, start at 0 when
        new, and go with the pod. (S,) ``counted``: the workload's application signals count
        this tick; ``cpu_cores`` (S,) its ready pods' mean cores per requested core; ``dt_s`` the
        counters' seconds of the tick."""
        row, serial = pods["row"], pods["serial"]
        flat = row * self._K + pods["slot"]
        same = self._slot_serial[flat] == serial
        live = counted[row]
        # the same operations, in the same order, as a sum per pod name: bit for bit the same totals
        counters = {}
        for name in self.POD_COUNTERS:
            counter = counters[name] = np.take(self._slot[name], flat, axis=0)  # a copy
            counter[~same] = 0.0  # a new pod in the slot starts at 0
            counter += gained[name]
        per_pod = cpu_cores[row] * self._cpu_request_cores[row] * dt_s
        cpu_s = np.where(same, self._slot_cpu_s[flat], 0.0) + np.where(pods["ready"] & live, per_pod, 0.0)
        self._slot_serial.fill(-1)
        self._slot_serial[flat] = serial
        self._slot_cpu_s[flat] = cpu_s
        for name, values in counters.items():
            self._slot[name][flat] = values
        self._pods = {"row": row, "flat": flat, "serial": serial, "revision_seq": pods["revision_seq"],
                      "running": pods["running"], "restarts": pods["restarts"],
                      "memory_bytes": pods["memory_mib"] * 2**20, "cpu_s": cpu_s,
                      **counters, "leaving": np.zeros(row.size, dtype=bool)}
        self._named = None

    def _keep_terminating(self, before: dict | None, leaving: dict | None, terminating: dict) -> None:
        """The pods terminating now (``_leaving``): of the tick before's pods (``before``) those no
        longer in their slot, and of its terminating ones (``leaving``), those listed
        ``terminating`` ((row, name) keys), their values as they were (``running``: their container
        ran then, and runs through the grace): their series stay until they are gone. Kept apart from the tick's pods: a tick copies only these few."""
        keys, self._leaving, self._leaving_keys, self._shown = self._leaving_keys, None, [], None
        if before is None or not terminating:
            return
        out = np.flatnonzero(self._slot_serial[before["flat"]] != before["serial"])
        parts = ([{name: values[out] for name, values in before.items()}] if out.size else []) + (
            [leaving] if leaving is not None else [])
        if not parts:
            return
        gone = parts[0] if len(parts) == 1 else {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        name_of = self.store.engine.pod_name_of  # named once, when they leave their slot
        keys = [(row, name_of(row, serial, seq)) for row, serial, seq in zip(
            before["row"][out].tolist(), before["serial"][out].tolist(), before["revision_seq"][out].tolist())] + (
            keys if leaving is not None else [])
        keep = np.array([key in terminating for key in keys], dtype=bool)
        if keep.any():
            self._leaving = {name: values[keep] for name, values in gone.items()}
            self._leaving["leaving"][:] = True
            self._leaving_keys = [key for key, kept in zip(keys, keep.tolist()) if kept]

    def _last_pods(self) -> dict[str, np.ndarray] | None:
        """The last tick's pods, then those terminating (what the per-pod series show)."""
        if self._leaving is None:
            return self._pods
        if self._shown is None:
            self._shown = {name: np.concatenate([values, self._leaving[name]]) for name, values in self._pods.items()}
        return self._shown

    def _by_name(self) -> dict[str, dict]:
        """The last tick's per-pod values by name, built on the first read after a tick (call
        with the store's lock, then this exporter's, held: names come from the engine's cache):
        cpu_seconds and pod_memory {(namespace, pod): value} (memory: running pods only), and
        pod_requests, pod_errors, pod_served, pod_latency_sum, pod_buckets ((B,) array)
        {(row, namespace, pod): value}."""
        if self._named is None:
            named = {"cpu_seconds": {}, "pod_memory": {}, **{f"pod_{n}": {} for n in self.POD_COUNTERS}}
            pods = self._last_pods()
            if pods is not None:
                rows, name_of = pods["row"].tolist(), self.store.engine.pod_name_of
                keys = [(self._namespaces[row], name_of(row, serial, seq)) for row, serial, seq in
                        zip(rows, pods["serial"].tolist(), pods["revision_seq"].tolist())]
                row_keys = [(row, ns, name) for row, (ns, name) in zip(rows, keys)]
                named["cpu_seconds"] = dict(zip(keys, pods["cpu_s"].tolist()))
                for name in self.POD_COUNTERS:
                    values = list(pods[name]) if name == "buckets" else pods[name].tolist()
                    named[f"pod_{name}"] = dict(zip(row_keys, values))
                named["pod_memory"] = {key: memory for key, memory, up in
                                       zip(keys, pods["memory_bytes"].tolist(), pods["running"].tolist()) if up}
            self._named = named
        return self._named

    def _named_field(self, field: str) -> dict:
        with self.store.lock, self.lock:
            return self._by_name()[field]

    @property
    def cpu_seconds(self) -> dict[tuple[str, str], float]:
        """(namespace, pod) -> cumulative CPU seconds (over the speed) of every pod of the last tick."""
        return self._named_field("cpu_seconds")

    @property
    def pod_requests(self) -> dict[tuple[int, str, str], float]:
        """(workload row, namespace, pod) -> requests the pod received (over the speed)."""
        return self._named_field("pod_requests")

    @property
    def pod_errors(self) -> dict[tuple[int, str, str], float]:
        """(workload row, namespace, pod) -> requests the pod failed or rejected (over the speed)."""
        return self._named_field("pod_errors")

    @property
    def pod_served(self) -> dict[tuple[int, str, str], float]:
        """(workload row, namespace, pod) -> requests the pod served (over the speed): its histogram's count."""
        return self._named_field("pod_served")

    @property
    def pod_latency_sum(self) -> dict[tuple[int, str, str], float]:
        """(workload row, namespace, pod) -> seconds the pod's served requests took (over the speed)."""
        return self._named_field("pod_latency_sum")

    @property
    def pod_buckets(self) -> dict[tuple[int, str, str], np.ndarray]:
        """(workload row, namespace, pod) -> (B,) its served requests at or below each latency bound."""
        return self._named_field("pod_buckets")

    @property
    def pod_memory(self) -> dict[tuple[str, str], float]:
        """(namespace, pod) -> working set (bytes) of each running pod at the last tick."""
        return self._named_field("pod_memory")

    def render(self) -> str:
        """The whole exposition, ``text/plain; version=0.0.4`` (see :mod:`simulators.kubeapi.exposition`)."""
        # the locks in the order record takes them (the store's, then this one); the store's only
        # while the pods are read and named, so that ticks and API writes wait for that, not the text
        with self.store.lock:
            self.lock.acquire()
            try:
                if self._text is None:
                    self._text = Exposition(self.store, LATENCY_BUCKETS_S)
                now = self._text.pods_now()
                last = self._text.last_tick(self._last_pods())
                leaving = self._text.terminating(now, last, self.store.terminating_pods())
                named = self._by_name() if self._text.names_collide(now, last) else None
            except BaseException:
                self.lock.release()
                raise
        try:
            return self._text.render(self, now, last, named, leaving)
        finally:
            self.lock.release()
