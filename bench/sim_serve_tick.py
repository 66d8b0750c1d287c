"""Benchmark ``sim serve``'s tick with and without the cluster's own Events (cluster_events.py).

1,000 services (bench/sim_speed.py's scenario: 6 replicas each, up to 32), stepped tick by tick
as sim serve's engine driver steps them (SimWorld.advance: the engine, its metrics, the HPA
controller with no HPA stored), and scaled as a controller would scale them: each tick
``--changes`` services get a new replica count (+-1 to 3) through the store's scale subresource
(the path of an API PATCH, with its Events), and every ``--rollout-every`` ticks one of them is
restarted (a rollout); every ``--scrape-every`` ticks (0: never) its /metrics exposition is
rendered, as a Prometheus scrape would (and outside the tick's time: the per-pod series are
named when scraped); its size is printed too (it grows with the pods: each has its own
application series, a latency histogram of 39 lines among them). Two worlds of the same seed, one with the Events and one without
(``cluster_events=False``), take turns tick by tick in one process, so that a busy machine slows
both alike; their trajectories must be the same.

Prints per tick, for each: the median and mean CPU time of the tick (the engine step with its
Events, the tick's load and its metrics), of the tick's writes and of a scrape; then the Events
written and kept (the store's Event table: its TTL and its cap, MAX_EVENTS), the correlators'
cache entries, and (``--memory``) the bytes the Events hold: a world with and one without,
``--memory-ticks`` each under tracemalloc (slow), the difference of what each still holds.
Run: python bench/sim_serve_tick.py [--services 1000] [--ticks 720] [--changes 20] [--rollout-every 12]
                                    [--scrape-every 0] [--memory [--memory-ticks 240]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.sim_speed import scenario_text  # noqa: E402
from simulators.kubeapi.server import SimWorld  # noqa: E402
from controller.policy.summary import plural  # noqa: E402
from simulators.kubeapi.store import MAX_EVENTS  # noqa: E402
from simulators.scenario import load_scenario_text  # noqa: E402


class Run:
    """One world and its writer: the same choices for the same seed."""

    def __init__(self, scenario, cluster_events: bool):
        self.world = SimWorld(scenario, wall_start_s=scenario.start_s, cluster_events=cluster_events)
        self.store, self.rng = self.world.store, np.random.default_rng(7)
        self.names = [(w.namespace, w.name) for w in self.store.workloads]
        self.tick_s: list[float] = []
        self.write_s: list[float] = []
        self.scrape_s: list[float] = []
        self.scrape_size: tuple[int, int] = (0, 0)  # the last scrape's (bytes, lines)
        self.writes = 0

    def step(self, t: int, changes: int, rollout_every: int, scrape_every: int = 0) -> None:
        store, rng = self.store, self.rng
        started = time.process_time()
        for k in rng.choice(len(self.names), size=changes, replace=False).tolist():
            ns, name = self.names[k]
            step = int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
            replicas = int(np.clip(int(store.engine.spec_replicas[k]) + step, 2, 30))
            store.update_scale("Deployment", ns, name, {"spec": {"replicas": replicas}})
            self.writes += 1
        if rollout_every and t % rollout_every == 0:
            ns, name = self.names[int(rng.integers(len(self.names)))]
            body = store.get_workload("Deployment", ns, name)
            body["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})[
                "kubectl.kubernetes.io/restartedAt"] = str(t)
            store.update_workload("Deployment", ns, name, body)
            self.writes += 1
        wrote = time.process_time()
        self.world.advance(1)
        ticked = time.process_time()
        self.tick_s.append(ticked - wrote)
        self.write_s.append(wrote - started)
        if scrape_every and t % scrape_every == 0:
            text = self.world.metrics.render()
            self.scrape_s.append(time.process_time() - ticked)
            self.scrape_size = (len(text), text.count("\n"))


def traced_bytes(scenario, args, cluster_events: bool) -> tuple[int, int]:
    """(bytes allocated since the world was made and still held after ``--memory-ticks`` ticks,
    Events kept), traced by tracemalloc: the difference with and without is what the Events hold."""
    run = Run(scenario, cluster_events)
    tracemalloc.start()
    for t in range(args.memory_ticks):
        run.step(t, args.changes, args.rollout_every)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held, len(run.store.events.items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=720, help="5 s ticks (720: an hour, the Events' TTL)")
    parser.add_argument("--changes", type=int, default=20, help="services scaled each tick")
    parser.add_argument("--rollout-every", type=int, default=12, help="a rollout every N ticks (0: none)")
    parser.add_argument("--scrape-every", type=int, default=0, help="render /metrics every N ticks (0: never)")
    parser.add_argument("--memory", action="store_true", help="also measure the bytes the Events hold")
    parser.add_argument("--memory-ticks", type=int, default=240, help="ticks of each --memory run (the cap of "
                        "10,000 Events is reached after ~130 at the default churn)")
    args = parser.parse_args()
    hours = max(1, args.ticks * 5 // 3600 + 1)
    scenario = load_scenario_text(scenario_text(args.services, hours), "wide.yaml")
    off, on = Run(scenario, False), Run(scenario, True)
    for t in range(args.ticks):  # in turns: a busy machine slows both alike
        for run in (off, on) if t % 2 else (on, off):
            run.step(t, args.changes, args.rollout_every, args.scrape_every)
    assert off.store.engine.spec_replicas.tolist() == on.store.engine.spec_replicas.tolist(), "the Events changed it"
    warm = max(1, args.ticks // 20)  # the first ticks pay for imports, kernels and caches
    print(f"{plural(args.services, 'service')}, {plural(args.ticks, 'tick')} of 5 s, {args.changes} scaled a tick, "
          f"a rollout every {plural(args.rollout_every, 'tick')} ({plural(on.writes, 'write')}); CPU ms a tick, "
          f"after {plural(warm, 'tick')}")
    for label, run in (("without Events", off), ("with Events", on)):
        ticks, writes = [1e3 * x for x in run.tick_s[warm:]], [1e3 * x for x in run.write_s[warm:]]
        total = [a + b for a, b in zip(ticks, writes)]
        print(f"  {label:15} tick median {statistics.median(ticks):7.2f}, mean {statistics.mean(ticks):7.2f}; "
              f"writes median {statistics.median(writes):6.2f}, mean {statistics.mean(writes):6.2f}; "
              f"both mean {statistics.mean(total):7.2f}")
        scrapes = [1e3 * x for x in run.scrape_s[1:]]  # the first one pays for the first names
        if scrapes:
            print(f"  {'':15} scrape median {statistics.median(scrapes):7.2f}, mean {statistics.mean(scrapes):7.2f} "
                  f"({len(scrapes)} after the first); the last {run.scrape_size[0] / 1e6:.1f} MB, "
                  f"{run.scrape_size[1]:,} lines, {int(run.store.engine.pod_count.sum()):,} pods")
    mean = lambda run: statistics.mean(run.tick_s[warm:]) + statistics.mean(run.write_s[warm:])  # noqa: E731
    recorder = on.store.cluster_events.recorder
    cache = sum(len(c.seen) + len(c.aggregates) + len(c.buckets) for c in recorder.correlators.values())
    print(f"  with / without: {mean(on) / mean(off):.3f}x")
    print(f"  Events kept at the end: {len(on.store.events.items)} (cap MAX_EVENTS {MAX_EVENTS}, TTL 1 h); "
          f"resourceVersions {on.store.resource_version} with, {off.store.resource_version} without; "
          f"correlator cache entries {cache} over {len(recorder.correlators)} sources")
    if args.memory:
        (with_bytes, kept), (without_bytes, _) = (traced_bytes(scenario, args, on) for on in (True, False))
        print(f"  held after {args.memory_ticks} ticks: {(with_bytes - without_bytes) / 2**20:.1f} MiB more with the "
              f"Events ({kept} kept) than without ({with_bytes / 2**20:.1f} vs {without_bytes / 2**20:.1f} MiB traced)")


if __name__ == "__main__":
    main()
