"""Benchmark one reconcile cycle's metric reads: one query per policy metric vs one per target.

10,000 targets in 10 policies (1,000 each; even policies have 2 metrics, odd ones 1: 15 policy
metrics), against a REAL Prometheus (/usr/bin/prometheus on 127.0.0.1) holding 10 minutes of
history for every target (a counter and a gauge per deployment, 20,000 series), backfilled with
``promtool tsdb create-blocks-from openmetrics``.

Measured per cycle (all 10 policies, one after the other):
- batched: PrometheusSource.query_many per policy (one request per policy metric, vector
  mapped onto the 1,000 targets): wall time of the queries + mapping, and HTTP requests as
  counted by the client AND by Prometheus (prometheus_http_requests_total);
- per-target (the approach to avoid): one request per target per metric, run for a SAMPLE of
  targets and EXTRAPOLATED to all 10,000 (labelled as such in the output);
- the decision core (controller.core.scaling.decide.decide) on the batched results, for the budget of
  the whole cycle.

Targets (issue #4): requests per cycle = number of policy metrics, >= 100x fewer than per
target; cycle < 1 s and >= 10x faster than per-target queries.
Run: python bench/cycle.py [--cycles 5] [--sample 300] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# bench/ is run as a script: make the repository root importable for tests.support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.adapters.prometheus import PrometheusConfig, PrometheusSource  # noqa: E402
from controller.policy.summary import plural  # noqa: E402
from controller.core.scaling.decide import Observation, ScalingState, decide  # noqa: E402
from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams, Smoothing  # noqa: E402
from controller.model import TargetRef  # noqa: E402
from tests.support.prometheus_server import Family, PrometheusServer, write_openmetrics  # noqa: E402

N_POLICIES, TARGETS_PER_POLICY = 10, 1000
HISTORY_S, STEP_S = 600, 15
RPS = MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 80.0)
LATENCY = MetricParams("latency", MetricKind.VALUE, 0.25)


def namespace(p: int) -> str:
    return f"team-{p:02d}"


def deployment(i: int) -> str:
    return f"d-{i:04d}"


def policy_targets(p: int) -> list[TargetRef]:
    return [TargetRef(namespace(p), deployment(i)) for i in range(TARGETS_PER_POLICY)]


def policy_metrics(p: int) -> tuple[MetricParams, ...]:
    """Even policies scale on rps and latency, odd ones on rps only."""
    return (RPS, LATENCY) if p % 2 == 0 else (RPS,)


def metric_query(metric: MetricParams, selector: str) -> str:
    """The policy's PromQL for one metric; ``selector`` is the label matchers inside {...}."""
    if metric is RPS:
        return f"sum by (namespace, deployment) (rate(http_requests_total{{{selector}}}[1m]))"
    return f"max by (namespace, deployment) (app_latency_seconds{{{selector}}})"


def history_families(end_s: float, seed: int = 1) -> list[Family]:
    """A counter (steady per-deployment rate) and a gauge for every target, every STEP_S up to ``end_s``."""
    rng = np.random.default_rng(seed)
    stamps = end_s - np.arange(HISTORY_S // STEP_S, -1, -1) * STEP_S  # ascending, ends at end_s
    keys = [(namespace(p), deployment(i)) for p in range(N_POLICIES) for i in range(TARGETS_PER_POLICY)]
    rates = rng.uniform(50, 500, len(keys))
    latency = rng.uniform(0.05, 0.5, len(keys))

    def counter():
        for (ns, d), rate in zip(keys, rates):
            labels = f'{{namespace="{ns}",deployment="{d}"}}'
            for k, ts in enumerate(stamps):
                yield labels, float(rate * STEP_S * k), float(ts)

    def gauge():
        for (ns, d), lat in zip(keys, latency):
            labels = f'{{namespace="{ns}",deployment="{d}"}}'
            for ts in stamps:
                yield labels, float(lat), float(ts)

    return [Family("http_requests", "counter", counter()), Family("app_latency_seconds", "gauge", gauge())]


def make_params(p: int) -> PolicyParams:
    return PolicyParams(name=f"p{p}", metrics=policy_metrics(p), min_replicas=2, max_replicas=200,
                        smoothing=Smoothing.EWMA, half_life_s=45.0)


TARGETS = [policy_targets(p) for p in range(N_POLICIES)]  # resolved once, as the reconciler has them
QUERIES = [[metric_query(m, f'namespace="{namespace(p)}"') for m in policy_metrics(p)] for p in range(N_POLICIES)]


def run_batched_cycle(src: PrometheusSource, at: float) -> tuple[float, list[list]]:
    """Every policy's metrics, one request each; returns (wall seconds, Samples per policy)."""
    started = time.perf_counter()
    results = [src.query_many(QUERIES[p], TARGETS[p], at) for p in range(N_POLICIES)]
    return time.perf_counter() - started, results


def run_per_target_sample(src: PrometheusSource, at: float, sample: int, seed: int = 2) -> tuple[float, int]:
    """One request per (target, metric) for ``sample`` random targets; returns (seconds, requests)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(N_POLICIES * TARGETS_PER_POLICY, size=sample, replace=False)
    requests = 0
    started = time.perf_counter()
    for flat in picks:
        p, i = divmod(int(flat), TARGETS_PER_POLICY)
        target = [TargetRef(namespace(p), deployment(i))]
        for m in policy_metrics(p):
            s = src.query(metric_query(m, f'namespace="{namespace(p)}",deployment="{deployment(i)}"'), target, at)
            assert s.present.all(), f"per-target query found no series for {target[0]}"
            requests += 1
    return time.perf_counter() - started, requests


def time_decide(results: list[list], now: float) -> float:
    """Seconds for ``decide`` on all 10 policies with the batched results (10 replicas each)."""
    started = time.perf_counter()
    for p, samples in enumerate(results):
        params = make_params(p)
        values = np.stack([s.values for s in samples], axis=1)
        present = np.stack([s.present & ~s.conflict for s in samples], axis=1)
        age = np.stack([s.age_s for s in samples], axis=1)
        current = np.full(TARGETS_PER_POLICY, 10.0)
        obs = Observation.of(current, current, values, present=present, sample_age_s=age)
        decide(params, obs, ScalingState.empty(TARGETS_PER_POLICY, params), now)
    return time.perf_counter() - started


def start_prometheus(workdir: Path, end_s: float) -> PrometheusServer:
    server = PrometheusServer(workdir, scrape_targets=(), retention="30d", ready_timeout_s=60)
    t = time.perf_counter()
    path = write_openmetrics(workdir / "history.om.txt", history_families(end_s))
    print(f"history: {path.stat().st_size / 1e6:.0f} MB OpenMetrics for {2 * N_POLICIES * TARGETS_PER_POLICY:,} "
          f"series x {HISTORY_S // STEP_S + 1} samples, written in {time.perf_counter() - t:.1f}s", flush=True)
    t = time.perf_counter()
    server.load_openmetrics(path, timeout_s=900)
    path.unlink()
    print(f"promtool create-blocks-from openmetrics: {time.perf_counter() - t:.1f}s", flush=True)
    t = time.perf_counter()
    server.start()
    print(f"prometheus ready at {server.url} in {time.perf_counter() - t:.1f}s", flush=True)
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=5, help="batched cycles to time (the best and median are shown)")
    ap.add_argument("--sample", type=int, default=300, help="targets queried one by one (then extrapolated)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (data, log)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="setpoint-bench-cycle-"))
    end_s = float(int(time.time()) // STEP_S * STEP_S)
    at = end_s  # evaluate at the last sample: every rate() window is full
    server = start_prometheus(workdir, end_s)
    try:
        report(server, at, args)
    finally:
        server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(server: PrometheusServer, at: float, args) -> None:
    n_targets = N_POLICIES * TARGETS_PER_POLICY
    n_metrics = sum(len(policy_metrics(p)) for p in range(N_POLICIES))
    per_target_requests = sum(TARGETS_PER_POLICY * len(policy_metrics(p)) for p in range(N_POLICIES))

    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10.0)) as src:
        run_batched_cycle(src, at)  # warm up (Prometheus' caches, connections)
        sent_before, server_before = src.requests_sent, server.http_requests()
        times, results = [], []
        for _ in range(args.cycles):
            wall, results = run_batched_cycle(src, at)
            times.append(wall)
        client_requests = (src.requests_sent - sent_before) / args.cycles
        server_requests = (server.http_requests() - server_before) / args.cycles
        found = np.mean([s.present.mean() for policy in results for s in policy])
        decide_s = time_decide(results, at)

    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10.0, max_concurrency=1)) as seq:
        seq_times = [run_batched_cycle(seq, at)[0] for _ in range(args.cycles)]
        sample_s, sample_requests = run_per_target_sample(seq, at, args.sample)
    per_request_s = sample_s / sample_requests
    per_target_cycle_s = per_request_s * per_target_requests  # EXTRAPOLATED

    best, median = min(times), float(np.median(times))
    seq_median = float(np.median(seq_times))
    print(f"\ntargets={n_targets:,} policies={N_POLICIES} policy metrics={n_metrics} cycles={args.cycles} "
          f"cores={os.cpu_count()} series found={found:.1%}")
    print(f"batched     requests/cycle: {client_requests:.0f} by the client, {server_requests:.0f} by Prometheus' "
          f"own counter (expected {n_metrics})")
    print(f"batched     queries+mapping per cycle: median {median * 1e3:.0f} ms, best {best * 1e3:.0f} ms "
          f"(query_many, max_concurrency=4); sequential (max_concurrency=1): median {seq_median * 1e3:.0f} ms")
    print(f"per-target  requests/cycle: {per_target_requests:,} (one per target per metric)")
    print(f"per-target  measured on a sample of {plural(args.sample, 'target')} ({plural(sample_requests, 'request')}, sequential): "
          f"{per_request_s * 1e3:.2f} ms/request")
    print(f"per-target  cycle EXTRAPOLATED to {n_targets:,} targets: {per_target_cycle_s:.1f} s")
    print(f"decide      10 policies x {TARGETS_PER_POLICY} targets: {decide_s * 1e3:.1f} ms")
    print(f"whole cycle budget (queries+mapping+decide, median): {(median + decide_s) * 1e3:.0f} ms (target < 1000 ms)")
    print(f"ratio requests per-target/batched: {per_target_requests / client_requests:,.0f}x   (target >= 100x)")
    print(f"ratio time per-target(extrapolated)/batched: {per_target_cycle_s / median:,.0f}x concurrent, "
          f"{per_target_cycle_s / seq_median:,.0f}x both sequential   (target >= 10x)")


if __name__ == "__main__":
    main()
