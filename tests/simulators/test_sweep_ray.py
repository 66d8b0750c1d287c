"""A sweep on a local Ray instance (2 CPUs) gives the local-process numbers, cell by cell."""

from __future__ import annotations

import signal

import pytest

from simulators.sweep import CellStore, build_grid, run_grid
from simulators.sweep_result import merge, result_json
from tests.simulators.sweep_fixtures import DEFAULT_POLICY, HPA_POLICY, TARGET, write_scenarios


@pytest.fixture(scope="module")
def local_ray():
    """The ray module, initialised with 2 CPUs for the module. Imported here, not at the module's
    top: importing Ray costs ~0.5 s of CPU, which every pytest-xdist worker paid to collect two tests."""
    ray = pytest.importorskip("ray")
    # ray.init puts Ray's SIGTERM handler (it exits 15) in this test process, where it outlived the
    # module and was inherited by later tests' forked children (a stop_workers row read exit 15)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        for s, handler in handlers.items():
            signal.signal(s, handler)


def test_ray_equals_local_processes_cell_by_cell(local_ray, tmp_path):
    scenarios = write_scenarios(tmp_path, {"tiny-a": (1, 700), "tiny-b": (5, 1100)}, duration="6m")
    grid = build_grid(scenarios, [str(DEFAULT_POLICY)], [f"{TARGET}=60..90:30"], seeds=2,
                      hpa_policy=str(HPA_POLICY), hpa_targets_pct=[60.0])
    cells = grid.cells()
    local = run_grid(cells, CellStore(tmp_path / "local"), jobs=2)
    on_ray = run_grid(cells, CellStore(tmp_path / "ray"), jobs=2, ray_address="auto")  # the instance above
    assert len(cells) == 12
    for cell in cells:
        assert on_ray[cell.key]["scores"] == local[cell.key]["scores"], (cell.scenario, cell.variant, cell.seed)
    assert result_json(merge(grid, on_ray)) == result_json(merge(grid, local))


def test_a_stopped_sweep_leaves_running_the_ray_instance_its_caller_started(local_ray):
    """A stop (Ctrl-C, a failed cell) shuts down only the local instance the sweep started itself
    (--ray local): not one a test, a notebook or a script started before calling it."""
    from simulators.sweep_ray import stop_local_ray

    stop_local_ray(local_ray, within_s=1.0)
    assert local_ray.is_initialized() and local_ray.cluster_resources().get("CPU") == 2
