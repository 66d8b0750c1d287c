"""Benchmark the simulation engine: vectorized SimCluster vs the per-object ReferenceCluster.

1,000 services, one simulated day at a 5 s tick (17,280 ticks). Load: a diurnal cycle with
per-service levels and phases, multiplicative noise and a flash crowd on a tenth of the
services. A toy proportional controller rescales every service every 15 s (so pods keep
going pending -> starting -> ready), and the run carries a pod crash, a bad rollout and a
memory leak so that the slower paths are exercised too.

Prints the cost of one ``step`` and of one ``scale`` (all services), ticks/s, simulated days
per wall-second for the engine alone, the same for the reference over a shorter run, the
ratio, and whether both engines agreed on the overlapping ticks.

Targets (issue #3): the whole simulation >= 0.5 simulated days/s with two controllers, so
one step for 1,000 services well under 100 us; >= 20x the reference.
Run: python bench/sim_engine.py [--services 1000] [--ticks 17280] [--ref-ticks 240] [--repeat 1]
Times are wall-clock: run it on a quiet machine (or with --repeat) for stable figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# bench/ is run as a script: make the repository root importable for tests.support.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.policy.summary import plural  # noqa: E402
from simulators import faults as F  # noqa: E402
from simulators.cluster import SimCluster  # noqa: E402
from simulators.load import Diurnal, FlashCrowd, Noise, offered_matrix, tick_times  # noqa: E402
from simulators.workload import ServiceConfig  # noqa: E402
from tests.support.reference_cluster import ReferenceCluster  # noqa: E402

TICK_S, CONTROL_EVERY = 5.0, 3  # 15 s control interval
CHUNK = 720  # ticks of load generated at a time (keeps memory small)


def make_services(n: int, seed: int) -> list[ServiceConfig]:
    rng = np.random.default_rng(seed)
    return [ServiceConfig(name=f"svc-{i:04d}", capacity_rps=float(rng.choice([50, 100, 200])),
                          startup_delay_s=float(rng.choice([10, 30, 60])), scheduling_delay_s=2.0,
                          base_latency_s=float(rng.choice([0.02, 0.05, 0.1])), initial_replicas=4, max_pods=32,
                          overload="queue" if i % 5 == 0 else "drop", base_error_ratio=0.001)
            for i in range(n)]


def make_load(n: int, seed: int):
    rng = np.random.default_rng(seed)
    cap = np.array([s.capacity_rps for s in make_services(n, seed)])
    base = Diurnal(mean_rps=cap * rng.uniform(3, 12, n), amplitude_ratio=0.6, peak_hour=rng.uniform(12, 20, n))
    flash = FlashCrowd(at_s=np.where(np.arange(n) % 10 == 0, 14 * 3600.0, 1e12), peak_rps=cap * 8, rise_s=120, decay_s=1200)
    return (base + flash) * Noise(0.08, seed=seed, interval_s=60, n_series=n)


def make_faults(n: int) -> list[F.Fault]:
    names = lambda step: tuple(f"svc-{i:04d}" for i in range(0, n, step))  # noqa: E731
    return [F.PodCrash(3600, count=2, services=names(7)),
            F.BadRollout(6 * 3600, services=names(50), error_ratio_multiplier=20, extra_latency_s=0.2),
            F.MemoryLeak(2 * 3600, duration_s=4 * 3600, services=names(25), rate_mib_per_s=0.2)]


class Controller:
    """Toy proportional rule with HPA's 10 % tolerance: pods for the offered load at 70 %
    utilization, unchanged while the ratio to the current count is within [0.9, 1.1]; with
    ``stabilize_down_s`` > 0, scale-down takes the max recommendation over that window, as
    HPA's default 300 s scale-down stabilization does."""

    def __init__(self, capacity_rps: np.ndarray, stabilize_down_s: float):
        self.capacity_rps = capacity_rps
        self.window = max(1, int(stabilize_down_s / (TICK_S * CONTROL_EVERY)))
        self.history = np.zeros((self.window, capacity_rps.size), dtype=np.int64)
        self.changes = 0
        self.calls = 0

    def __call__(self, signals) -> np.ndarray:
        spec = signals.spec_replicas
        wanted = np.ceil(signals.offered_rps / (0.7 * self.capacity_rps)).astype(np.int64).clip(1, None)
        ratio = signals.offered_rps / (0.7 * self.capacity_rps * np.maximum(spec, 1))
        rec = np.where(np.abs(ratio - 1.0) <= 0.1, spec, wanted)
        self.history[self.calls % self.window] = rec
        desired = np.where(rec < spec, np.minimum(self.history.max(axis=0), spec), rec)
        self.changes += int((desired != spec).sum())
        self.calls += 1
        return desired


def run(cls, n: int, ticks: int, seed: int, record: int = 0, stabilize_down_s: float = 0.0):
    services = make_services(n, seed)
    cluster = cls(services, np.random.default_rng(seed), make_faults(n))
    shape, idx = make_load(n, seed), np.arange(n)
    controller = Controller(np.array([s.capacity_rps for s in services]), stabilize_down_s)
    times = tick_times(0.0, ticks * TICK_S, TICK_S)
    step_s = scale_s = 0.0
    trace = []
    for c0 in range(0, ticks, CHUNK):
        load = offered_matrix(shape, times[c0:c0 + CHUNK], n)
        for j in range(load.shape[0]):
            tick = c0 + j
            t0 = time.perf_counter()
            sig = cluster.step(times[tick], TICK_S, load[j])
            t1 = time.perf_counter()
            if tick % CONTROL_EVERY == 0:
                desired = controller(sig)
                t1 = time.perf_counter()  # the toy controller's own time is not the engine's
                if cls is SimCluster:
                    cluster.scale(idx, desired)
                else:
                    for i, r in enumerate(desired):
                        cluster.set_replicas(i, int(r))
            t2 = time.perf_counter()
            step_s += t1 - t0
            scale_s += t2 - t1
            if tick < record:
                trace.append((sig.ready_replicas.copy(), sig.served_rps.copy(), sig.latency_p99_s.copy()))
    return step_s, scale_s, trace, controller.changes / max(controller.calls, 1)


def hot_path(n: int, ticks: int, seed: int, repeat: int) -> float:
    """Seconds per step with no actions and no faults (the floor), best of ``repeat``."""
    services = make_services(n, seed)
    load = offered_matrix(make_load(n, seed), tick_times(0.0, ticks * TICK_S, TICK_S), n)
    best = float("inf")
    for _ in range(repeat):
        cluster = SimCluster(services, np.random.default_rng(seed))
        t0 = time.perf_counter()
        for k in range(ticks):
            cluster.step(k * TICK_S, TICK_S, load[k])
        best = min(best, (time.perf_counter() - t0) / ticks)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=17_280)
    ap.add_argument("--ref-ticks", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="runs of the vectorized engine; the fastest counts")
    args = ap.parse_args()
    n, T, R = args.services, args.ticks, args.ref_ticks

    floor = hot_path(n, min(T, 2000), args.seed, max(args.repeat, 3))
    print(f"SimCluster hot path (no actions, no faults): {floor * 1e6:.1f} us/step for {plural(n, 'service')}")
    controls = (T + CONTROL_EVERY - 1) // CONTROL_EVERY
    for label, stabilize in (("HPA-like (300 s scale-down stabilization)", 300.0), ("churny (no stabilization)", 0.0)):
        runs = [run(SimCluster, n, T, args.seed, stabilize_down_s=stabilize) for _ in range(args.repeat)]
        step_s, scale_s, _, changes = min(runs, key=lambda r: r[0] + r[1])
        total = step_s + scale_s
        print(f"SimCluster, {label}: {plural(n, 'service')} x {plural(T, 'tick')} ({T * TICK_S / 86400:.2f} simulated days), "
              f"{changes:.0f} replica changes per 15 s")
        print(f"  step:  {step_s / T * 1e6:8.1f} us/tick   ({T / step_s:,.0f} ticks/s)")
        print(f"  scale: {scale_s / controls * 1e6:8.1f} us/call  (all {plural(n, 'service')}, every {CONTROL_EVERY} ticks)")
        print(f"  engine total: {total / T * 1e6:.1f} us/tick, {T * TICK_S / 86400 / total:.2f} simulated days per wall-second")

    # the ratio on the churny run, where the reference does the most work per tick too
    fast_step, fast_scale, fast_trace, _ = run(SimCluster, n, R, args.seed, record=R)
    rstep_s, rscale_s, ref_trace, _ = run(ReferenceCluster, n, R, args.seed, record=R)
    rcontrols = (R + CONTROL_EVERY - 1) // CONTROL_EVERY
    print(f"ReferenceCluster (churny): {plural(n, 'service')} x {plural(R, 'tick')}")
    print(f"  step:  {rstep_s / R * 1e6:8.1f} us/tick   scale: {rscale_s / rcontrols * 1e6:8.1f} us/call")
    print(f"ratio over the same {plural(R, 'tick')} (step + scale): {(rstep_s + rscale_s) / (fast_step + fast_scale):.0f}x   "
          f"(step alone: {rstep_s / fast_step:.0f}x)")
    same = all(np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], rtol=1e-9) and np.allclose(a[2], b[2], rtol=1e-9)
               for a, b in zip(fast_trace, ref_trace))
    print(f"trajectories agree on the first {R} ticks: {same}")


if __name__ == "__main__":
    main()
