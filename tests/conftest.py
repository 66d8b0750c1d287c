"""Session set-up shared by every test."""

from __future__ import annotations

import collections
import gc
import os
from pathlib import Path

import numpy as np
import pytest

from tests.support.cpu_log import pytest_runtest_protocol  # noqa: F401  (a hook: SETPOINT_TEST_CPU_LOG)
from tests.support.worker_exit import pytest_sessionfinish  # noqa: F401  (a hook: xdist workers' exit)

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """Put the checkout under test first on PYTHONPATH, as an absolute path, for every subprocess
    the tests start (CLI runs, sim serve, setpoint run): with a relative ``PYTHONPATH=.`` and a
    subprocess in another working folder, or none, they imported whatever copy was installed (an
    editable install of another checkout) and tested that code instead, silently."""
    kept = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if entry and Path(entry).resolve() != REPO]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *kept])


def pytest_sessionstart(session) -> None:
    """Compile the numba kernels once (or load them from the disk cache) before any test, so
    that the CLI subprocesses the tests start load them from the cache instead of compiling
    them (seconds) inside a timeout; under pytest-xdist, in the controller before the workers
    start, so that they load them instead of each compiling the same kernels. Not for a
    ``--collect-only`` run, which runs no test (.ci/test.sh's warm-up of the rewritten modules)."""
    if session.config.option.collectonly:
        return
    from controller.core.scaling import compiled  # noqa: PLC0415

    if not compiled.enabled():
        return
    if getattr(session.config.option, "numprocesses", None) and not hasattr(session.config, "workerinput"):
        # pytest-xdist's controller, before it starts the workers (its hook runs last): compile
        # once here rather than in every worker (tests/support/kernel_warmup.py)
        from tests.support.kernel_warmup import compile_all  # noqa: PLC0415

        compile_all()
        return
    from controller.core.scaling.decide import Observation, ScalingState, decide  # noqa: PLC0415
    from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams  # noqa: PLC0415
    from simulators.cluster import SimCluster  # noqa: PLC0415
    from simulators.workload import ServiceConfig  # noqa: PLC0415

    params = PolicyParams("warm-up", (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),), 1, 10)
    decide(params, Observation.of([2.0], [2.0], [[150.0]]), ScalingState.empty(1, params), 0.0)
    SimCluster([ServiceConfig("warm-up", initial_replicas=1)], 1).step(0.0, 5.0, np.array([10.0]))


@pytest.hookimpl(wrapper=True)
def pytest_collection(session):
    """Collect with the cyclic garbage collector off, then freeze what collection left alive.

    Collecting ~7,400 tests grows the heap to ~450,000 objects: Python ran ~9 full collections over
    it on the way (~1.2 s of CPU in every pytest-xdist worker), and each full collection during the
    tests, and pytest's five at the session's end, walked it all again. Collection makes little
    cyclic garbage; once it is done one collection clears it and ``gc.freeze`` moves the survivors
    (modules, test items, loaded kernels) out of the collector's reach: later collections walk
    only what the tests make."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    finally:
        gc.collect()
        gc.freeze()
        if was_enabled:
            gc.enable()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks (its hook adds @group to node ids)
def pytest_collection_modifyitems(config, items) -> None:
    """Keep the tests that share a module-scoped fixture on one pytest-xdist worker.

    Such fixtures start something expensive once per module (a Prometheus with history, Ray, a
    built wheel, a simulation); spread over workers (``--dist loadgroup``, .ci/test.sh) each
    worker would build its own. Tests of the module that use no such fixture stay free.
    Without xdist the mark does nothing.
    """
    for item in items:
        fixture_info = getattr(item, "_fixtureinfo", None)
        if fixture_info is None:
            continue
        module_id = item.nodeid.split("::", 1)[0]
        shared = any(d.scope == "module" and d.baseid == module_id
                     for defs in fixture_info.name2fixturedefs.values() for d in defs
                     if d.argname in fixture_info.names_closure)
        if shared:
            item.add_marker(pytest.mark.xdist_group(module_id))
    if hasattr(config, "workerinput"):  # an xdist worker: every worker orders its collection alike
        items[:] = spread_waiting_tests(items)


#: Tests that mostly wait on real clocks (a simulated cluster, a real Prometheus and `setpoint run`
#: as processes: ~1 minute each at ~10 % of a core).
WAITING = "tests/e2e/"


def spread_waiting_tests(items: list) -> list:
    """``items`` with the waiting tests spread evenly over the first 85 % of the others.

    pytest-xdist hands tests out in this order (after the xdist_group units, --dist loadgroup).
    In collection order the ~30 end-to-end tests came one after another: for ~9 minutes every
    worker waited on real clocks while the 2 cores were mostly idle. Spread, one or two workers
    wait while the others keep the cores busy; none is left last (the run's tail)."""
    waiting = [item for item in items if item.nodeid.startswith(WAITING)]
    others = [item for item in items if not item.nodeid.startswith(WAITING)]
    if not waiting or not others:
        return items
    gap = 0.85 * len(others) / len(waiting)
    at = collections.defaultdict(list)  # position among the others -> the waiting tests put before it
    for k, item in enumerate(waiting):
        at[min(len(others) - 1, int(k * gap))].append(item)
    spread = []
    for n, item in enumerate(others):
        spread.extend(at.get(n, ()))
        spread.append(item)
    return spread


@pytest.fixture(autouse=True)
def _compiled_switch_as_it_was():
    """Each test leaves the compiled kernels' switch (controller.core.scaling.compiled) as it found
    it, in this process and in its environment: an in-process `setpoint simulate` of a short run
    turns them off (cli.common.numpy_unless_asked), and the in-place tests that ran next in the
    same worker found no compiled path (five CI failures, order-dependent)."""
    import os

    from controller.core.scaling import compiled

    switch, env = compiled.switch, os.environ.get(compiled.ENV_SWITCH)
    yield
    compiled.set_switch(switch)
    if env is None:
        os.environ.pop(compiled.ENV_SWITCH, None)
    else:
        os.environ[compiled.ENV_SWITCH] = env
