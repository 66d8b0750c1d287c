"""Tiny scenarios for the sweep and tune tests: one service, minutes long, a step in the load."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.simulators.conftest_paths import POLICIES

DEFAULT_POLICY = POLICIES / "setpoint-default.yaml"
HPA_POLICY = POLICIES / "hpa-cpu.yaml"
TARGET = "spec.scaling.metrics[0].target.averagePerReplica"

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: {name}}}
spec:
  duration: {duration}
  tick: 5s
  seed: {seed}
  slo:
    latency: {{percentile: 95, below: 250ms}}
    errorRatio: 0.01
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 30
      load:
        - step: {{at: 3m, from: 250, to: {peak}}}
        - noise: {{sigma: 0.05}}
"""


def write_scenarios(folder: Path, specs: dict[str, tuple[int, int]], duration: str = "8m") -> list[str]:
    """name -> (seed, peak rps): scenario files in ``folder``; their paths."""
    out = []
    for name, (seed, peak) in specs.items():
        path = folder / f"{name}.yaml"
        path.write_text(SCENARIO.format(name=name, seed=seed, peak=peak, duration=duration), encoding="utf-8")
        out.append(str(path))
    return out


#: ``python -c SIGNAL_AT_FORK SIGNUM N setpoint-args...``: the command, with SIGNUM sent to itself from
#: inside its Nth fork, as a signal that comes while it forks its workers: by kill(2) through ctypes in
#: a before-fork hook registered ahead of logging's, so no Python runs between it and logging's own
#: hooks (os.kill would run the handler itself, at once). Unpatched, the handler ran inside logging's
#: after-fork _releaseLock: its raise lost, with "Exception ignored" and a traceback on stderr.
SIGNAL_AT_FORK = """
import ctypes, functools, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal, even if inherited ignored
kill, pid, sig, nth = ctypes.CDLL(None).kill, os.getpid(), int(sys.argv.pop(1)), int(sys.argv.pop(1))
os.register_at_fork(before=functools.partial(next, map(kill, [pid] * nth, [0] * (nth - 1) + [sig]), None))
sys.argv[0] = "setpoint"
from controller.cli import main
main()
"""


#: ``python -c STUCK_CELL MARKER setpoint-args...``: the command, whose local workers get stuck on the
#: cells of a scenario file named ``stuck*.yaml``, as one blocked in native code: such a worker
#: ignores SIGTERM, touches MARKER and sleeps (at most 120 s, so nothing outlives a broken test by
#: long). A cell of a ``slow*.yaml`` is a long cell, without its CPU: the worker touches MARKER and
#: sleeps, SIGTERM left as it was. Patched in this process, so forked workers (the sweep's start
#: method without other threads) inherit it; the cells elsewhere, and any cell run in the command
#: itself, run as usual.
STUCK_CELL = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal, even if inherited ignored
marker, command = sys.argv.pop(1), os.getpid()
from simulators import sweep
real_run_cell = sweep.run_cell
def run_cell(payload, on_fraction=None):
    name = os.path.basename(payload["scenario_path"])
    if os.getpid() != command and name.startswith(("stuck", "slow")):
        if name.startswith("stuck"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(marker, "w").close()
        time.sleep(120)
    return real_run_cell(payload, on_fraction)
sweep.run_cell = run_cell
sys.argv[0] = "setpoint"
from controller.cli import main
main()
"""


class CtrlCWhenLoaded:
    """Sends SIGINT to its process group where it is unpickled: passed to a worker process, a Ctrl-C
    that comes while the worker starts (multiprocessing's bootstrap, before its own handlers)."""

    def __reduce__(self):
        import os
        import signal

        return os.kill, (0, signal.SIGINT)


def done_at_once(queue, group: int, indexes, specs) -> None:
    """A simulation worker's ``run_there`` (simulators.parallel.run_groups) that runs nothing."""
    queue.put(("done", group, []))


def stop_command(proc: subprocess.Popen, sig: int, within_s: float, again_after_s: float | None = None) -> tuple[str, float]:
    """Stop a command started in a session of its own: Ctrl-C (SIGINT) to its whole process group, as
    a terminal sends it, other signals to the command alone, as kill(1) or a service manager sends
    them; ``again_after_s``: the same again that much later (an impatient user). Its stderr and the
    seconds it took to end; the test fails if it runs on past ``within_s``."""
    sent = time.monotonic()
    send = (lambda: os.killpg(proc.pid, sig)) if sig == signal.SIGINT else (lambda: proc.send_signal(sig))
    send()
    if again_after_s is not None:
        time.sleep(again_after_s)
        send()
    try:
        _, err = proc.communicate(timeout=within_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the command still running {within_s:.0f} s after {signal.Signals(sig).name}")
    return err, time.monotonic() - sent


def kill_group(proc: subprocess.Popen) -> None:
    """What a failed test leaves running of a command started in a session of its own: killed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
