"""Run HPA's frontier: the ``hpa`` preset at several utilization targets on one scenario and seed.

Each target is an independent run of the same scenario (same seed, same load), so the points
differ only by the target; the first targets run in lockstep over one generated load
(runner.run_controllers). The math of the comparison is in simulators/frontier.py.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from controller.policy import LoadedPolicy
from simulators.frontier import DEFAULT_TARGETS_PCT, HPA, frontier_of, outside_side, retargeted
from simulators.result import Frontier, FrontierPoint, SimResult
from simulators.runner import ControllerSpec, progress_ticks, run_controllers, simulate_with
from simulators.scenario import Scenario

#: Widening steps (percentage points): below the lowest target run when the policy spends more
#: than every point (lower targets cost more), above the highest when it spends less, up to
#: :data:`HIGHEST_TARGET_PCT` (CPU utilization does not exceed 100%).
WIDEN_STEP_PCT = 10.0
HIGHEST_TARGET_PCT = 100.0
#: At most this many extra runs to bracket the policy's replica-hours.
MAX_EXTRA_RUNS = 2
#: The controller whose replica-hours the sweep is widened to bracket.
POLICY = "policy"


def widened_target(targets_pct: Sequence[float], side: str | None) -> float | None:
    """The next target to run to reach a ``dearer`` or ``cheaper`` point than any of
    ``targets_pct``; None when ``side`` is None or no such target is left."""
    if side == "dearer":
        low = min(targets_pct)
        return low - WIDEN_STEP_PCT if low > WIDEN_STEP_PCT else (low / 2 if low > 1 else None)
    if side == "cheaper":
        high = max(targets_pct)
        return min(high + WIDEN_STEP_PCT, HIGHEST_TARGET_PCT) if high < HIGHEST_TARGET_PCT else None
    return None


def sweep_frontier(scenario: Scenario, result: SimResult, hpa: LoadedPolicy,
                   targets_pct: Sequence[float] = DEFAULT_TARGETS_PCT, *, max_extra_runs: int = MAX_EXTRA_RUNS,
                   offered: np.ndarray | None = None,
                   on_progress: Callable[[str, int, int], None] | None = None,
                   known: Sequence[FrontierPoint] = (), jobs: int = 1) -> Frontier:
    """Run the ``hpa`` preset at each target on ``scenario`` and compare ``result``'s runs.

    The ``hpa`` run of ``result`` is reused for the preset's own target. When the policy's
    replica-hours fall outside the swept range, up to ``max_extra_runs`` more targets are run
    (:func:`widened_target`) until they are bracketed. ``known``: points already run on this
    scenario (for example cached by a bench), not run again. ``jobs``: processes to share a
    pass's runs (runner.run_controllers).
    ``on_progress(name, ticks_done, ticks_total)`` as for :func:`simulators.runner.simulate`.
    """
    own = own_target(hpa)
    # offered None: each run generates the load chunk by chunk (memory O(services))
    done: dict[float, FrontierPoint] = {p.target_pct: p for p in known}
    if HPA in result.runs:
        done[own] = point_of(own, result.runs[HPA])

    def run(targets: list[float], widened: bool) -> None:
        """The preset at each of ``targets``, in lockstep (each chunk of load generated once)."""
        specs = frontier_specs(hpa, targets)
        runs = run_controllers(scenario, specs, offered, on_ticks=progress_ticks(scenario, specs, on_progress),
                               keep_records=False, jobs=jobs)
        for target, (r, _) in zip(targets, runs):
            done[target] = point_of(target, r, widened)

    first = list(dict.fromkeys(float(t) for t in targets_pct if float(t) not in done))
    if first:
        run(first, False)
    if POLICY in result.runs:
        cost = result.runs[POLICY].scores["replica_hours"]
        extra = 0
        while extra < max_extra_runs:
            target = widened_target(list(done), outside_side(list(done.values()), cost))
            if target is None:
                break
            run([target], True)
            extra += 1
    scores = {name: r.scores for name, r in result.runs.items()}
    return frontier_of(list(done.values()), scores, hpa.file)


def own_target(hpa: LoadedPolicy) -> float:
    """The preset's own target (percent): its first metric's; ValueError when it has none."""
    if not hpa.params.metrics:
        raise ValueError(f"policy {hpa.name}: the frontier needs a scaling metric to re-target")
    return float(hpa.params.metrics[0].target)


def first_pass(controllers: Sequence[ControllerSpec], hpa: LoadedPolicy,
               targets_pct: Sequence[float]) -> tuple[list[float], list[ControllerSpec]]:
    """The frontier's targets that run beside ``controllers`` and their specs: each of
    ``targets_pct`` once, but the preset's own target when ``controllers`` run the ``hpa``
    baseline (:func:`sweep_frontier` reuses that run)."""
    reused = own_target(hpa) if any(c.name == HPA for c in controllers) else None
    first = [t for t in dict.fromkeys(float(t) for t in targets_pct) if t != reused]
    return first, frontier_specs(hpa, first)


def frontier_specs(hpa: LoadedPolicy, targets_pct: Sequence[float]) -> list[ControllerSpec]:
    """The ``hpa`` preset re-targeted to each of ``targets_pct`` (percent), named hpa@T%."""
    return [ControllerSpec(f"{HPA}@{t:g}%", "policy", f"HPA preset at {t:g}% ({hpa.file})", policy=retargeted(hpa, t))
            for t in targets_pct]


def point_of(target_pct: float, run, widened: bool = False) -> FrontierPoint:
    """The frontier point of the preset's run at ``target_pct``."""
    return FrontierPoint(target_pct, run.scores["replica_hours"], run.scores["slo_violation_minutes"], widened)


def simulate_with_frontier(scenario: Scenario, controllers: list[ControllerSpec], hpa: LoadedPolicy,
                           targets_pct: Sequence[float] = DEFAULT_TARGETS_PCT, *, jobs: int = 1,
                           on_progress: Callable[[str, int, int], None] | None = None,
                           **simulate_options) -> tuple[SimResult, dict]:
    """runner.simulate of ``controllers`` with ``result.frontier`` (:func:`sweep_frontier`): the
    frontier's first targets run in the same pass as the controllers (so ``jobs`` processes
    share all of them), the widening runs after it. ``simulate_options``: runner.simulate's."""
    first, specs = first_pass(controllers, hpa, targets_pct)
    result, logs, runs = simulate_with(scenario, controllers, specs, on_progress=on_progress, jobs=jobs,
                                       **simulate_options)
    known = [point_of(t, r) for t, r in zip(first, runs)]
    result.frontier = sweep_frontier(scenario, result, hpa, targets_pct, on_progress=on_progress, known=known, jobs=jobs)
    return result, logs


__all__ = ["sweep_frontier", "simulate_with_frontier", "first_pass", "frontier_specs", "widened_target", "MAX_EXTRA_RUNS"]
