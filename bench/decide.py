"""Benchmark the decision core: compiled kernel, numpy stages, and a per-target loop.

10,000 targets in 10 policies (2 metrics each, and policies/setpoint-default.yaml with its
ramp stage on 1 metric), 100 cycles (15 s apart). Prints target-decisions per second for the
compiled kernel (core/scaling/fused.py; its first-run compile or cache-load time separately)
in place (core/scaling/workspace.py: decide_into + commit, the state updated in place) and
through the pure ``decide`` (a copy of the state and a Decision per call), for the batched
numpy stages, and for a loop that calls the numpy ``decide`` once per target (a batch of one),
and the ratios; then the default policy alone on each path, without and with a forecast stage
(``forecast: {startupDelay: observed}``; on the kernel path core/scaling/forecast_compiled.py),
and through the live runtime's ScalingMemory (decide + commit, what Reconciler.cycle calls), pure
(a copy of the state per cycle) and in place (the live default: one workspace kept).
The ``hpa`` preset proposes with HPA's pod-level calculator, which only numpy runs: its variants
here are HPA's behavior and legacy rules in Setpoint's own mode.

Targets: compiled (in place) >= 10,000,000 target-decisions/s on one core (issue #13); numpy >=
1,000,000/s and >= 50x the per-target loop (issue #2). Rates are per second of the process's CPU time (what
one core does; the wall-time rate, also printed, counts waiting for a core on a shared machine).
Last, ``--live-cycles`` whole Reconciler cycles (the live runtime's, with a forecast) over a
simulated 1,000-service cluster, pure vs in place (the live default since issue #13).
Run: python bench/decide.py [--cycles 100] [--loop-cycles 2] [--live-cycles 40]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

from controller.core.scaling import compiled, fused
from controller.core.scaling.decide import Observation, ScalingState, decide_numpy
from controller.core.scaling.decide import decide as decide_dispatch
from controller.policy.summary import plural
from controller.core.scaling.params import (MetricKind, MetricParams, PolicyParams, RuleType, ScalingRules, Select,
                                    Smoothing)
from controller.core.scaling.workspace import DecisionWorkspace, _ewma_alpha_into, decide_into
from controller.policy import load_policies, load_policy_text

N_POLICIES, TARGETS_PER_POLICY = 10, 1000
REPO = Path(__file__).resolve().parents[1]


def default_policy() -> PolicyParams:
    return load_policies([REPO / "policies" / "setpoint-default.yaml"])[0].params


def make_policies() -> list[PolicyParams]:
    """Ten policies covering the kernel's paths: EWMA and window smoothing, HPA legacy and
    behavior rules, the ramp stage (the default policy)."""
    metrics = (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 80.0), MetricParams("latency", MetricKind.VALUE, 0.25))
    util = (MetricParams("cpu", MetricKind.UTILIZATION, 70.0), MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 80.0))
    down = ScalingRules.of(300, Select.MAX, [(RuleType.PERCENT, 20, 60), (RuleType.PODS, 2, 60)])
    variants = [
        dict(metrics=metrics, smoothing=Smoothing.EWMA, half_life_s=45.0),
        dict(metrics=metrics, smoothing=Smoothing.EWMA, half_life_s=90.0, scale_down=down, tolerance_down=0.2),
        dict(metrics=metrics, smoothing=Smoothing.MEAN, window_s=60.0),
        dict(metrics=metrics, smoothing=Smoothing.MAX, window_s=120.0, fallback_replicas=6, missing_hold_s=120.0),
        dict(metrics=util, legacy=True),
        dict(metrics=util),
        dict(metrics=util, smoothing=Smoothing.EWMA, half_life_s=30.0),
        dict(metrics=metrics, scale_down=down),
        dict(metrics=util, scale_down=down),
    ]
    return [PolicyParams(name=f"p{i}", min_replicas=2, max_replicas=200, **v)
            for i, v in enumerate(variants)] + [default_policy()]


def make_inputs(cycles: int, n: int, m: int, seed: int) -> np.ndarray:
    """(cycles, n, m) metric values: a per-target base level with noise and a slow wave."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(200, 2000, (1, n, 1)) * np.array([1.0, 0.0005])[None, None, :m]
    wave = 1 + 0.5 * np.sin(np.arange(cycles) / 15.0)[:, None, None]
    values = base * wave * rng.lognormal(0, 0.1, (cycles, n, m))
    values[:, ::97, m - 1] = np.nan  # some series missing
    return values


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def run_batched(policies, inputs, cycles, decide=decide_numpy) -> float:
    """Wall seconds of ``cycles`` cycles (the CPU seconds go to ``run_batched.cpu_s``)."""
    def step(state, p, obs, now):
        d = decide(p, obs, state, now)
        return d.state, d.norm.desired
    return timed_cycles(policies, inputs, cycles, lambda p: ScalingState.empty(TARGETS_PER_POLICY, p), step)


def timed_cycles(policies, inputs, cycles, first, step) -> float:
    """Wall seconds of ``cycles`` cycles of every policy, its state from ``first(policy)`` and each
    cycle ``step(state, policy, observation, now) -> (state, desired replicas (N,))``; the CPU
    seconds go to ``run_batched.cpu_s``."""
    states = [first(p) for p in policies]
    current = [np.full(TARGETS_PER_POLICY, 10.0) for _ in policies]
    now = 1_700_000_000.0
    cpu = time.process_time()
    start = time.perf_counter()
    for c in range(cycles):
        for j, p in enumerate(policies):
            obs = Observation.of(current[j], current[j], inputs[j][c])
            states[j], current[j] = step(states[j], p, obs, now)
        now += 15.0
    run_batched.cpu_s = time.process_time() - cpu
    return time.perf_counter() - start


def run_in_place(policies, inputs, cycles) -> float:
    """run_batched with one workspace per policy: decide_into, then commit (every change
    applied); the observation's arrays are reused, as a simulator's would be."""
    spaces = [DecisionWorkspace.empty(p, TARGETS_PER_POLICY) for p in policies]
    current = [np.full(TARGETS_PER_POLICY, 10.0) for _ in policies]
    present = [np.ones(x.shape[1:], bool) for x in inputs]
    age = [np.zeros(x.shape[1:]) for x in inputs]
    now = 1_700_000_000.0
    cpu = time.process_time()
    start = time.perf_counter()
    for c in range(cycles):
        for j, p in enumerate(policies):
            cur = current[j]
            ws = decide_into(p, spaces[j], Observation(cur, cur, cur, inputs[j][c], present[j], age[j]), now)
            ws.commit()
            np.copyto(cur, ws.desired)
        now += 15.0
    run_batched.cpu_s = time.process_time() - cpu
    return time.perf_counter() - start


def run_kernel_only(policies, inputs, cycles) -> float:
    """CPU seconds (in ``run_batched.cpu_s``) of run_in_place's fused_kernel calls alone (not the
    wrapper, the EWMA weights; the commit of every change, deferred to the next call, included):
    the kernel's share of the in-place figure."""
    spaces = [DecisionWorkspace.empty(p, TARGETS_PER_POLICY) for p in policies]
    current = [np.full(TARGETS_PER_POLICY, 10.0) for _ in policies]
    present = [np.ones(x.shape[1:], bool) for x in inputs]
    age = [np.zeros(x.shape[1:]) for x in inputs]
    now, cpu_s = 1_700_000_000.0, 0.0
    start = time.perf_counter()
    for c in range(cycles):
        for j, ws in enumerate(spaces):
            cur, p = current[j], policies[j]
            if p.smoothing == Smoothing.EWMA:  # the weights, as decide_into computes them (not timed)
                _ewma_alpha_into(ws.alpha, ws.ewma_at, now, p.half_life_s, ws.ewma_memo, ws.ewma_odd)
            cpu = time.process_time()
            ws.events_if_all = fused.fused_kernel(inputs[j][c], present[j], age[j], cur, cur, cur, ws.no_withheld,
                                                  ws.no_startup,
                                                  ws.floor, ws.pv, now, ws.deferred_at, ws.em, ws.win, ws.ramp, ws.rec,
                                                  ws.rows, ws.up, ws.down, ws.vf, ws.out_f, ws.out_b2, ws.vi, ws.active,
                                                  ws.buf, ws.no_latest)
            cpu_s += time.process_time() - cpu
            ws.deferred_at, ws.pending_at = math.nan, now
            ws.commit()
            np.copyto(cur, ws.desired)
        now += 15.0
    run_batched.cpu_s = cpu_s
    return time.perf_counter() - start


def rates(targets: int, cycles: int, wall_s: float) -> tuple[float, str]:
    """(rate by CPU time, text with both rates): on a shared machine the wall time counts the
    time spent waiting for a core; the CPU time is what one core needs."""
    cpu_rate = targets * cycles / run_batched.cpu_s
    return cpu_rate, (f"{cpu_rate:>12,.0f} target-decisions/s of CPU time ({targets * cycles / wall_s:,.0f}/s wall; "
                      f"{run_batched.cpu_s / cycles * 1e3:.2f} ms CPU per cycle of {plural(targets, 'target')})")


def run_per_target(policies, inputs, cycles, decide=decide_numpy) -> float:
    states = [[ScalingState.empty(1, p) for _ in range(TARGETS_PER_POLICY)] for p in policies]
    current = [[np.array([10.0]) for _ in range(TARGETS_PER_POLICY)] for _ in policies]
    now = 1_700_000_000.0
    start = time.perf_counter()
    for c in range(cycles):
        for j, p in enumerate(policies):
            for i in range(TARGETS_PER_POLICY):
                obs = Observation.of(current[j][i], current[j][i], inputs[j][c, i:i + 1])
                d = decide(p, obs, states[j][i], now)
                states[j][i], current[j][i] = d.state, d.norm.desired
        now += 15.0
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--loop-cycles", type=int, default=2, help="cycles for the (slow) per-target loop")
    ap.add_argument("--live-cycles", type=int, default=40,
                    help="whole Reconciler cycles over a simulated 1,000-service cluster, pure and in place (0: none)")
    args = ap.parse_args()
    policies = make_policies()
    inputs = [make_inputs(args.cycles, TARGETS_PER_POLICY, len(p.metrics), seed=j) for j, p in enumerate(policies)]
    targets = N_POLICIES * TARGETS_PER_POLICY
    print(f"targets={targets} policies={N_POLICIES} metrics/policy=2 (the default policy: 1, ramp) "
          f"cycles={args.cycles} cores=1 pid={os.getpid()}")
    compiled_rate = None
    if compiled.enabled() and all(compiled.supports(p) for p in policies):
        t = time.perf_counter()
        run_in_place(policies, inputs, 1)  # compiles, or loads the kernels from the disk cache
        stats = getattr(fused.fused_kernel, "stats", None)
        how = "loaded from the disk cache" if stats and sum(stats.cache_hits.values()) else "compiled"
        print(f"compiled first call: {time.perf_counter() - t:.2f} s (kernel {how}; not counted below)")
        run_in_place(policies, inputs, 3)  # warm up
        compiled_rate, text = rates(targets, args.cycles, run_in_place(policies, inputs, args.cycles))
        print(f"compiled, in place: {text}  target >= 10,000,000/s: {met(compiled_rate >= 10e6)}")
        _, text = rates(targets, args.cycles, run_kernel_only(policies, inputs, args.cycles))
        print(f"  of which the kernel calls: {text}")
        one_at_a_time = 0.0
        for p, x in zip(policies, inputs):
            run_in_place([p], [x], args.cycles)
            one_at_a_time += run_batched.cpu_s
        print(f"  one policy at a time (its state stays in the cache): {targets * args.cycles / one_at_a_time:>12,.0f} "
              f"target-decisions/s of CPU time")
        run_batched(policies, inputs, 3, decide_dispatch)  # warm up
        _, text = rates(targets, args.cycles, run_batched(policies, inputs, args.cycles, decide_dispatch))
        print(f"compiled, decide(): {text}")
    else:
        print("compiled:   unavailable (numba missing or SETPOINT_COMPILED=0): NOT met")
    run_batched(policies, inputs, 3)  # warm up
    batched_rate, text = rates(targets, args.cycles, run_batched(policies, inputs, args.cycles))
    print(f"numpy:      {text}  target >= 1,000,000/s: {met(batched_rate >= 1e6)}")
    cpu = time.process_time()
    run_per_target(policies, inputs, args.loop_cycles)
    loop_rate = targets * args.loop_cycles / (time.process_time() - cpu)
    print(f"per-target: {loop_rate:>12,.0f} target-decisions/s of CPU time ({plural(args.loop_cycles, 'cycle')}, numpy)")
    if compiled_rate is not None:
        print(f"ratio compiled (in place)/numpy: {compiled_rate / batched_rate:.1f}x")
    ratio = batched_rate / loop_rate
    print(f"ratio numpy/per-target: {ratio:.0f}x  target >= 50x: {met(ratio >= 50)}")
    default_alone(policies[-1:], inputs[-1:], args.cycles)
    if args.live_cycles and compiled.enabled():
        live_cycle(args.live_cycles)


def default_with_forecast() -> PolicyParams:
    """The default policy with ``forecast: {startupDelay: observed}`` on its rate metric (issue #9's
    candidate: the forecast one observed start-up ahead beside the ramp)."""
    return load_policy_text(_default_with_forecast_text(), "setpoint-default+forecast.yaml")[0].params


def _default_with_forecast_text() -> str:
    text = (REPO / "policies" / "setpoint-default.yaml").read_text()
    anchor = "        target: {averagePerReplica: 85, capacityPerReplica: 100}\n"
    if anchor not in text:
        raise SystemExit(f"bench/decide.py: the default policy has no line {anchor.strip()!r} to add the forecast to")
    return text.replace(anchor, anchor + "        forecast: {startupDelay: observed}\n")


def default_alone(policies, inputs, cycles: int) -> None:
    """The default policy (ramp stage) alone, 1,000 targets, on each path; then with a forecast."""
    for label, policy in (("default policy (ramp)", policies[0]), ("default + forecast", default_with_forecast())):
        paths = [("numpy", lambda *a: run_batched(*a, decide_numpy))]
        if compiled.enabled() and compiled.supports(policy):
            paths[:0] = [("in place", run_in_place), ("decide()", lambda *a: run_batched(*a, decide_dispatch)),
                         ("live pure", lambda *a: run_live(*a, in_place=False)),
                         ("live", lambda *a: run_live(*a, in_place=True))]
        cpu_ms = {}
        for name, run in paths:
            run([policy], inputs, 3)  # warm up (and compile)
            _, text = rates(TARGETS_PER_POLICY, cycles, run([policy], inputs, cycles))
            cpu_ms[name] = run_batched.cpu_s / cycles * 1e3
            print(f"{label}, {name + ':':<10} {text}")
        if "live" in cpu_ms:
            print(f"{label}, live cycle's decision (controller/runtime/scaling_memory.py, 1,000 targets): "
                  f"{cpu_ms['live pure']:.2f} ms CPU pure (before: a copy of the state per cycle) -> "
                  f"{cpu_ms['live']:.2f} ms in place ({cpu_ms['live pure'] / cpu_ms['live']:.1f}x less)")


def run_live(policies, inputs, cycles, in_place: bool) -> float:
    """run_batched through the live runtime's ScalingMemory (what Reconciler.cycle calls: decide,
    then commit the changed rows as applied at their desired counts): ``in_place`` the live
    default (one workspace kept across cycles), else the pure ``decide`` with a copy of the state
    per cycle (the live path before issue #13's item)."""
    from controller.runtime.scaling_memory import ScalingMemory  # noqa: PLC0415 (the runtime, only for these rows)

    def step(memory, p, obs, now):
        d = memory.decide(p, obs, now)
        memory.commit(d, d.changed, d.norm.desired)
        return memory, d.norm.desired.copy()
    return timed_cycles(policies, inputs, cycles,
                        lambda p: ScalingMemory(ScalingState.empty(TARGETS_PER_POLICY, p), in_place=in_place), step)



LIVE_SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: live-cycle, description: "1,000 services on a diurnal load"}
spec:
  duration: 4h
  tick: 5s
  seed: 5
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: svc
      count: 1000
      capacityPerPod: 100
      initialReplicas: 5
      maxPods: 40
      load:
        - diurnal: {mean: 500, amplitude: 0.5, peakHour: 2}
        - noise: {sigma: 0.1}
"""


def live_cycle(cycles: int) -> None:
    """Whole Reconciler cycles (resolve, observe, query, decide, act, commit) of the default policy
    with a forecast over a simulated cluster of 1,000 services, one every 15 s: CPU ms per cycle
    (the simulated cluster's steps not counted), pure (the live path before) and in place."""
    from simulators.cluster import SimCluster  # noqa: PLC0415 (the simulated ports, only for these rows)
    from simulators.runner import _policy_reconciler  # noqa: PLC0415 (the simulator's wiring of a live Reconciler)
    from simulators.scenario import load_scenario_text  # noqa: PLC0415

    scenario = load_scenario_text(LIVE_SCENARIO, "live-cycle.yaml")
    policy = load_policy_text(_default_with_forecast_text(), "setpoint-default+forecast.yaml")[0]
    cpu_ms = {}
    for label, in_place in (("pure", False), ("in place", True)):
        cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed))
        rec, metrics, _ = _policy_reconciler(scenario, policy, cluster, keep_records=False)
        rec.with_conditions, rec.in_place = True, in_place  # conditions computed, as live
        offered, times = scenario.offered(), scenario.times()
        spent, done = 0.0, 0
        for k in range(times.size):
            cluster.step(times[k], scenario.tick_s, offered[k])
            metrics.push(cluster.signals())
            if k % 3 == 2:
                cpu = time.process_time()
                rec.cycle(float(times[k]))
                if done >= 3:  # the first cycles warm up (and compile)
                    spent += time.process_time() - cpu
                done += 1
                if done == cycles + 3:
                    break
        cpu_ms[label] = spent / cycles * 1e3
        print(f"live Reconciler.cycle, default + forecast, 1,000 targets, {label + ':':<9} "
              f"{cpu_ms[label]:.2f} ms CPU per cycle ({plural(cycles, 'cycle')})")
    print(f"live Reconciler.cycle: {cpu_ms['pure']:.2f} -> {cpu_ms['in place']:.2f} ms CPU per cycle "
          f"({cpu_ms['pure'] - cpu_ms['in place']:.2f} ms less)")


if __name__ == "__main__":
    main()
