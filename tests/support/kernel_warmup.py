"""Compile the numba kernels into the disk cache before the test workers start.

From a fresh clone, every pytest-xdist worker that reaches a kernel compiled it itself: four
workers compiling the same kernels at once on two cores (the fused decision kernel ~20 s, the
forecast stage's ~15 s, the rest ~10 s), about a quarter of the suite's time. The controller
process has them compiled once instead, by two processes at a time, before it starts the
workers (tests/conftest.py), which then load them from the cache.

``python -m tests.support.kernel_warmup PART`` compiles one part:
- ``decide``: the fused decision kernel, through ``decide`` on the bundled default policy;
- ``simulation``: the simulator's, scores' and hpa preset's kernels (a warm-up run of the hpa
  preset), then the forecast stage's (``decide`` with a forecast, the fused kernel stubbed out:
  the other part compiles it).
"""

from __future__ import annotations

import os
import subprocess
import sys

PARTS = ("decide", "simulation")
#: A part that takes longer has hung (a compile normally takes well under a minute).
PART_TIMEOUT_S = 300.0


def _default_policy(forecast: bool):
    from controller.bundled import bundled_policy  # noqa: PLC0415
    from controller.policy import load_policies  # noqa: PLC0415
    from simulators.warm import with_forecast  # noqa: PLC0415

    policy = load_policies([bundled_policy("setpoint-default.yaml")])[0]
    return with_forecast(policy) if forecast else policy


def _decide_cycles(forecast: bool) -> None:
    """A few cycles of ``decide`` on the default policy, with a forecast or without."""
    from controller.core.scaling.decide import Observation, ScalingState, decide  # noqa: PLC0415

    params = _default_policy(forecast).params
    state = ScalingState.empty(2, params)
    for k in range(3):
        obs = Observation.of([5.0, 5.0], [5.0, 5.0], [[400.0] * len(params.metrics)] * 2)
        state = decide(params, obs, state, 1000.0 + 15.0 * k).state


def compile_part(part: str) -> None:
    from controller.core.scaling import compiled  # noqa: PLC0415

    compiled.set_switch("1")
    if part == "decide":
        _decide_cycles(forecast=False)
    elif part == "simulation":
        from controller.bundled import bundled_policy  # noqa: PLC0415
        from controller.policy import load_policies  # noqa: PLC0415
        from simulators.warm import warm  # noqa: PLC0415

        hpa = load_policies([bundled_policy("hpa-cpu.yaml")])[0]
        warm(hpa, hpa)
        # the forecast stage's kernels alone: the fused kernel after them would compile here too,
        # at the same time as in the ``decide`` part (this process is thrown away)
        from controller.core.scaling import fused  # noqa: PLC0415

        fused.fused_kernel = lambda *args: False
        _decide_cycles(forecast=True)
    else:
        raise SystemExit(f"unknown part {part!r}: expected one of {', '.join(PARTS)}")


def compile_all() -> None:
    """Every part in its own process, at the same time; then, here, the bundled default policy's
    whole warm-up (``setpoint warm``), which now finds its kernels in the cache. A part that
    fails only costs time: the workers compile what is missing."""
    from controller.bundled import bundled_policy  # noqa: PLC0415
    from controller.policy import load_policies  # noqa: PLC0415
    from simulators.warm import warm  # noqa: PLC0415

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.kernel_warmup", part], cwd=root)
             for part in PARTS]
    for proc in procs:
        try:
            proc.wait(PART_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    warm(_default_policy(False), load_policies([bundled_policy("hpa-cpu.yaml")])[0])


if __name__ == "__main__":
    compile_part(sys.argv[1] if len(sys.argv) > 1 else "")
