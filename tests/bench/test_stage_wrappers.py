"""The benches that measure a variant by wrapping the decision core's numpy stages still run.

They replace a stage (stabilize_with_behavior, apply_ramps, decide_numpy's default stages) with a
wrapper of their own; when a stage gained a parameter the wrappers broke with a TypeError at the
first cycle (scaledown_holds, change_merge, burst_signal, found by the hold experiment of session
25), unnoticed because nothing ran them. Each runs here on the bundled step scenario (no traces),
one worker, with a variant that exercises its wrappers. HPA's frontier, the same for every bench
(the step scenario, the hpa-cpu policy), is run by the first and read from their shared
``--hpa-cache`` by the others, as when the benches are used to explore variants."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hpa_cache(tmp_path_factory) -> Path:
    """bench/quality.py's cache of HPA's frontier runs, shared by the module's benches."""
    return tmp_path_factory.mktemp("hpa-cache")


@pytest.mark.parametrize("bench, args", [
    pytest.param("scaledown_holds.py", ["--variants", "max,kth:3,decay"], id="scaledown-holds"),
    pytest.param("change_merge.py", ["--variant", "pair"], id="change-merge-pair"),
    pytest.param("change_merge.py", ["--variant", "rawhold"], id="change-merge-rawhold"),
    pytest.param("burst_signal.py", ["--variant", "slope:tick"], id="burst-signal"),
    pytest.param("headroom_hold.py", ["--variant", "vol"], id="headroom-hold"),
])
def test_a_stage_wrapping_bench_runs(bench, args, tmp_path, hpa_cache):
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / bench), *args, "--scenarios", "step",
                           "--hpa-cache", hpa_cache,
                           *(["--jobs", "1"] if bench != "scaledown_holds.py" else [])],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "step" in proc.stdout
