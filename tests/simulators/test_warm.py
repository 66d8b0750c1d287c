"""`setpoint warm` (simulators/warm.py): after it, a simulation compiles nothing more.

Each check runs in a fresh process (a process that already ran kernels would pass vacuously):
the first may compile every kernel (~1-2 min on a cold cache, as a first trace simulation
would), the others load them from numba's disk cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.core.scaling import compiled

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

#: In a fresh process: warm, then simulate two bundled scenarios on the kernels with the default
#: policy and the same with a forecast, the baselines and HPA's frontier, with decision records;
#: prints the kernels that gained a compiled signature after the warm-up.
AFTER_WARM = """
import json, sys
from controller.core.scaling import compiled
compiled.set_switch("1")
from controller.policy import load_policies
from simulators.hpa_sweep import simulate_with_frontier
from simulators.runner import standard_controllers
from simulators.scenario import load_scenario
from simulators.warm import _signatures, warm, with_forecast
policy, hpa = (load_policies([f"{sys.argv[1]}/policies/{f}"])[0] for f in ("setpoint-default.yaml", "hpa-cpu.yaml"))
done = warm(policy, hpa)
before = _signatures()
for name in ("flash-crowd", "crash-loop"):
    for p in (policy, with_forecast(policy)):
        controllers = standard_controllers(p, ["hpa", "oracle", "fixed-max"], hpa, 20)
        simulate_with_frontier(load_scenario(name), controllers, hpa, [40, 60, 80], keep_records=True)
after = _signatures()
print(json.dumps({"warmed": done.compiled + done.loaded,
                  "new": sorted(k for k, v in after.items() if v > before.get(k, 0))}))
"""


def python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})), cwd=REPO)


def test_after_warm_a_simulation_compiles_nothing():
    proc = python(AFTER_WARM, str(REPO))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["warmed"] >= 10  # the check can tell: the warm-up did bring kernels in
    assert out["new"] == []


def test_warm_says_what_it_did_and_where_the_cache_is():
    proc = python("from controller.cli import main; main()", "warm")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert ("compiled " in line or "were in the cache" in line) and "cache: " in line
    assert "__pycache__" in line or os.environ.get("NUMBA_CACHE_DIR", "\0") in line


def test_warm_with_the_kernels_off_exits_1_saying_why():
    proc = python("from controller.cli import main; main()", "warm", env={"SETPOINT_COMPILED": "0"})
    assert proc.returncode == 1
    assert proc.stderr.strip() == "nothing warmed: SETPOINT_COMPILED=0: the kernels are off, nothing to compile"


#: In a fresh process: the runner's warm-up (benches, worker processes) on a one-minute scenario,
#: then whether the kernels a run first calls later (a start-up observed, a violation minute) loaded.
RUNNER_WARM = """
import json, sys
from controller.core.scaling import compiled, startup_compiled
compiled.set_switch("1")
from controller.policy import load_policies
from simulators import score_compiled
from simulators.runner import ControllerSpec, warm_kernels
from simulators.simcluster import queue_compiled, view_compiled
from simulators.scenario import load_scenario
policy = load_policies([f"{sys.argv[1]}/policies/setpoint-default.yaml"])[0]
warm_kernels(load_scenario("flash-crowd"), [ControllerSpec("policy", "policy", "", policy=policy)])
print(json.dumps({k.__name__: len(k.signatures) for k in (startup_compiled._estimate_kernel,
                                                          score_compiled._minutes_kernel, view_compiled._view_kernel,
                                                          queue_compiled._distinct_rows_kernel)}))
"""


def test_the_runners_warm_up_loads_the_kernels_a_run_reaches_late():
    # the runner's few warm-up ticks observe no start-up and count no violation minute, and its
    # services in order never gather a view: these loaded inside the benches' timed runs instead
    proc = python(RUNNER_WARM, str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"_estimate_kernel": 1, "_minutes_kernel": 1,
                                                                "_view_kernel": 1, "_distinct_rows_kernel": 1}
