"""A simulation's controllers shared between processes (simulators/parallel.py): the same runs,
records and frontier as in one process, the groups balanced, a worker's failure raised here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.policy import load_policies, load_policy_text
from simulators import parallel, runner
from simulators.hpa_sweep import simulate_with_frontier, sweep_frontier
from simulators.runner import ControllerSpec, run_controllers, simulate, standard_controllers
from simulators.scenario import load_scenario_text
from simulators.score import result_json
from tests.simulators.test_lockstep import POLICIES, SCENARIO, run_view, specs

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("costs, groups, pinned, expected", [
    pytest.param([1, 1], 2, [False, False], [[0], [1]], id="two-equal-one-each"),
    pytest.param([1, 1, 0.4, 1, 1], 2, [False] * 5, [[0, 2, 3], [1, 4]], id="costliest-first-onto-the-least-loaded"),
    pytest.param([1, 1, 0.4, 1], 2, [True, True, False, False], [[0, 1], [2, 3]], id="pinned-stay-here"),
    pytest.param([1, 1, 1], 2, [True, True, True], [[0, 1, 2]], id="all-pinned-no-worker"),
    pytest.param([1, 0.25], 4, [False, False], [[0], [1]], id="empty-groups-dropped"),
    pytest.param([0.4, 1], 1, [False, False], [[0, 1]], id="one-group"),
])
def test_plan_groups(costs, groups, pinned, expected):
    assert parallel.plan_groups(costs, groups, pinned) == expected


@pytest.mark.parametrize("ticks, kinds, jobs, expected", [
    pytest.param(2_000, ["policy", "policy"], 1, 1, id="jobs-1"),
    pytest.param(2_000, ["policy"], 4, 1, id="one-controller"),
    pytest.param(999, ["policy", "policy"], 2, 1, id="too-short-to-repay"),
    pytest.param(1_000, ["policy", "policy"], 2, 2, id="long-enough"),
    pytest.param(1_000, ["policy", "oracle", "fixed"], 8, 3, id="at-most-one-per-controller"),
])
def test_worker_count(ticks, kinds, jobs, expected):
    assert parallel.worker_count(ticks, kinds, jobs) == expected


@pytest.fixture
def every_run_parallel(monkeypatch):
    """Short test scenarios run in several processes too."""
    monkeypatch.setattr(parallel, "MIN_PARALLEL_TICKS", 0)


def test_runs_and_records_equal_one_process(every_run_parallel):
    sc = load_scenario_text(SCENARIO.format(duration="15m"), "lockstep.yaml")
    ticked: dict[int, list[int]] = {}
    hooks = [lambda k, i=i: ticked.setdefault(i, []).append(k) for i in range(len(specs()))]
    alone = run_controllers(sc, specs(), keep_records=[True, True, False, False, False])
    shared = run_controllers(sc, specs(), keep_records=[True, True, False, False, False], on_ticks=hooks, jobs=2)
    assert [run_view(r) for r, _ in shared] == [run_view(r) for r, _ in alone]
    assert [log is not None for _, log in shared] == [True, True, False, False, False]
    for (_, a), (_, b) in zip(alone, shared):
        if a is not None:
            assert list(b.lines()) == list(a.lines())
    # progress of every run arrives here, the workers' relayed, up to the last tick
    assert {i: ks[-1] for i, ks in ticked.items()} == {i: sc.tick_count for i in range(len(specs()))}


def test_frontier_in_the_same_pass_equals_after(every_run_parallel):
    sc = load_scenario_text(SCENARIO.format(duration="10m"), "lockstep.yaml")
    hpa = load_policies([POLICIES / "hpa-cpu.yaml"])[0]
    controllers = standard_controllers(load_policies([POLICIES / "setpoint-default.yaml"])[0], ["hpa", "oracle"],
                                       hpa, 12)
    before, _ = simulate(sc, controllers, keep_records=False)
    before.frontier = sweep_frontier(sc, before, hpa, [40, 55, 70, 85])
    after, logs = simulate_with_frontier(sc, controllers, hpa, [40, 55, 70, 85], jobs=2, keep_records=True)
    assert json.dumps(result_json(after), sort_keys=True) == json.dumps(result_json(before), sort_keys=True)
    assert sorted(logs) == ["hpa", "policy"]
    assert [p.target_pct for p in after.frontier.points] == [40, 55, 70, 85]


def test_a_workers_error_is_raised_here(every_run_parallel):
    sc = load_scenario_text(SCENARIO.format(duration="10m"), "lockstep.yaml")
    text = (POLICIES / "setpoint-default.yaml").read_text().replace("- name: rps", "- name: no-such-signal")
    unbound = ControllerSpec("unbound", "policy", "", policy=load_policy_text(text, "unbound.yaml")[0])
    good = specs()[0]
    with pytest.raises(ValueError, match="no-such-signal"):
        run_controllers(sc, [good, unbound], keep_records=False, jobs=2)


def _die(queue, group, *args) -> None:
    """A worker killed before it sends anything (the OOM killer, kill -9)."""
    os._exit(9)


def test_a_dead_worker_is_reported(every_run_parallel, monkeypatch):
    monkeypatch.setattr(runner, "_run_group_there", _die)
    sc = load_scenario_text(SCENARIO.format(duration="10m"), "lockstep.yaml")
    with pytest.raises(parallel.WorkerFailed, match="exit code 9"):
        run_controllers(sc, specs()[:2], keep_records=False, jobs=2)


def test_no_worker_processes_runs_here_with_a_warning(every_run_parallel, monkeypatch):
    def no_semaphores(self, *args, **kwargs):
        raise OSError(38, "Function not implemented")  # what a sandbox without /dev/shm gives
    import multiprocessing.context

    monkeypatch.setattr(multiprocessing.context.BaseContext, "Queue", no_semaphores)
    sc = load_scenario_text(SCENARIO.format(duration="10m"), "lockstep.yaml")
    with pytest.warns(RuntimeWarning, match="one process.*Function not implemented"):
        shared = run_controllers(sc, specs()[:2], keep_records=False, jobs=2)
    assert [run_view(r) for r, _ in shared] == [run_view(r) for r, _ in run_controllers(sc, specs()[:2],
                                                                                        keep_records=False)]


@pytest.mark.parametrize("name, runs, pays", [
    pytest.param("flash-crowd", 7, False, id="the-default-demo-numpy"),
    pytest.param("step", 7, False, id="step-numpy"),
    pytest.param("diurnal", 7, True, id="a-day-compiled"),
    pytest.param("diurnal", 1, True, id="a-day-alone-compiled"),
])
def test_compiled_pays_on_long_runs_only(name, runs, pays):
    from simulators.runner import compiled_pays
    from simulators.scenario import load_scenario

    assert compiled_pays(load_scenario(name), runs) is pays


def test_compiled_pays_for_many_services():
    from simulators.runner import compiled_pays

    wide = SCENARIO.format(duration="15m").replace("count: 3", "count: 1000")  # 180 ticks
    assert compiled_pays(load_scenario_text(wide, "wide.yaml"), 2)
    assert not compiled_pays(load_scenario_text(SCENARIO.format(duration="15m"), "lockstep.yaml"), 2)


WARM_CHECK = """
import sys
from controller.core.scaling import compiled
from controller.policy import load_policies
from simulators.hpa_sweep import frontier_specs
from simulators.runner import run_controllers, standard_controllers, warm_kernels
from simulators.scenario import load_scenario

def overloads():
    return {f"{m.__name__}.{k}": len(v.overloads) for m, k, v in compiled.loaded_kernels()}

policy, hpa = (load_policies([p])[0] for p in sys.argv[1:3])
specs = standard_controllers(policy, ["hpa", "oracle"], hpa, 20) + frontier_specs(hpa, [50])
scenario = load_scenario("flash-crowd")
assert compiled.enabled()
if sys.argv[3] == "warm":
    warm_kernels(scenario, specs)
before = overloads()
run_controllers(scenario, specs, keep_records=False)
print(" ".join(sorted(k for k, n in overloads().items() if n != before.get(k, 0))))
"""
#: The kernels that cost most to compile (the fused decision kernel ~30 s cold), the HPA preset's (its calculator on
#: the simulator's padded pods, in one call with the rest of its decision; its read of them, one call too,
#: ~0.5 s cold), the engine's.
COSTLY_KERNELS = {"controller.core.scaling.fused.fused_kernel", "controller.core.scaling.hpa_decide._decide_padded_kernel",
                  "simulators.pod_reads._padded_reads_kernel",
                  "simulators.engine_compiled._signals_kernel", "simulators.engine_compiled._derive_kernel"}


@pytest.mark.parametrize("warm", ["warm", "cold"])
def test_warm_kernels_loads_the_costly_kernels_before_the_run(warm):
    # a fresh process: what the run loads after the warm-up would be compiled or loaded by each forked worker
    proc = subprocess.run([sys.executable, "-c", WARM_CHECK, str(POLICIES / "setpoint-default.yaml"),
                           str(POLICIES / "hpa-cpu.yaml"), warm], capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "SETPOINT_COMPILED"})
    assert proc.returncode == 0, proc.stderr
    loaded_in_run = set(proc.stdout.split())
    if warm == "warm":
        assert not loaded_in_run & COSTLY_KERNELS
    else:  # the check can tell
        assert COSTLY_KERNELS <= loaded_in_run
