"""Session set-up shared by every test."""

from __future__ import annotations

import numpy as np


def pytest_sessionstart(session) -> None:
    """Compile the numba kernels once (or load them from the disk cache) before any test, so
    that the CLI subprocesses the tests start load them from the cache instead of compiling
    them (seconds) inside a timeout."""
    from controller.core.scaling import compiled  # noqa: PLC0415

    if not compiled.enabled():
        return
    from controller.core.scaling.decide import Observation, ScalingState, decide  # noqa: PLC0415
    from controller.core.scaling.params import MetricKind, MetricParams, PolicyParams  # noqa: PLC0415
    from simulators.cluster import SimCluster  # noqa: PLC0415
    from simulators.workload import ServiceConfig  # noqa: PLC0415

    params = PolicyParams("warm-up", (MetricParams("rps", MetricKind.AVERAGE_PER_REPLICA, 100.0),), 1, 10)
    decide(params, Observation.of([2.0], [2.0], [[150.0]]), ScalingState.empty(1, params), 0.0)
    SimCluster([ServiceConfig("warm-up", initial_replicas=1)], 1).step(0.0, 5.0, np.array([10.0]))
