"""The architecture holds: import-linter's layer contracts, and a core that never reads the clock."""

from __future__ import annotations

import ast
import datetime
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from controller.core.scaling.decide import Observation, ScalingState, decide
from tests.core.helpers import policy

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "controller" / "core"


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and " 0 broken" in proc.stdout


CLOCK_NAMES = {"time", "datetime", "monotonic", "perf_counter", "now", "utcnow", "today"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_names_no_clock(path: Path):
    """No import of time/datetime, and no call of anything named like a clock."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & {"time", "datetime"}, f"{path.name}:{node.lineno}"
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in {"time", "datetime"}, f"{path.name}:{node.lineno}"
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            assert name not in CLOCK_NAMES, f"{path.name}:{node.lineno} calls {name}()"


def test_decide_runs_with_every_clock_broken(monkeypatch):
    # numba times its own compilation (and cache loads): compile the kernels first; once they
    # are compiled, a decision reads no clock.
    p = policy()
    decide(p, Observation.of([5.0], [5.0], [[900.0]]), ScalingState.empty(1, p), now=1_700_000_000.0)

    def boom(*_a, **_k):
        raise AssertionError("the core read the clock")

    for name in ("time", "monotonic", "perf_counter", "time_ns", "gmtime", "localtime"):
        monkeypatch.setattr(time, name, boom)

    class NoClock(datetime.datetime):
        now = utcnow = today = classmethod(boom)

    monkeypatch.setattr(datetime, "datetime", NoClock)
    p = policy()
    d = decide(p, Observation.of([5.0], [5.0], [[900.0]]), ScalingState.empty(1, p), now=1_700_000_000.0)
    assert d.desired.tolist() == [9]
    assert np.isfinite(d.norm.desired).all()
