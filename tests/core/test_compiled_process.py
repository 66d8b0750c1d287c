"""compiled.py per process: the SETPOINT_COMPILED switch is read at import, and the kernels' disk
cache follows edits of the helpers they inline from other files (core/scaling/kernel_cache.py).

Each run is a fresh interpreter, as a developer's next test run or CLI command is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.core.scaling import compiled

REPO = Path(__file__).resolve().parents[2]

SWITCH_PROBE = """
import sys
from controller.core.scaling import compiled
print(compiled.enabled(), "numba" in sys.modules)
"""


def _python(code: str, env: dict, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (compiled.ENV_SWITCH, "NUMBA_CACHE_DIR")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", **extra}


@pytest.mark.parametrize("value, expect", [
    pytest.param("0", "False False", id="0-forces-numpy-and-never-imports-numba"),
    pytest.param("1", "True True", id="1-asks-for-the-kernels"),
    pytest.param(None, "True True", id="unset-means-the-kernels-when-numba-imports"),
])
def test_the_environment_switch_is_read_at_import(value, expect):
    if expect.startswith("True") and not compiled.available():
        pytest.skip("numba unavailable")
    extra = {} if value is None else {compiled.ENV_SWITCH: value}
    assert _python(SWITCH_PROBE, _env(PYTHONPATH=str(REPO), **extra), REPO) == expect


def test_set_switch_changes_the_switch_in_process(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "")
    assert compiled.set_switch(" 0 ") == ""
    assert not compiled.enabled()
    assert compiled.set_switch("") == "0"


# A throwaway package: a kernel in one file inlines a helper and reads a constant of another file.
HELPER = """
from controller.core.scaling import compiled

OFFSET = 1.0


@compiled.jit_inline
def bump(x):
    return x + 1.0
"""
KERNEL = """
from controller.core.scaling import compiled
from cachepkg import helper


@compiled.jit
def twice_bumped(x):
    return 2.0 * helper.bump(x) + helper.OFFSET
"""
RUN = """
from controller.core.scaling import compiled
from cachepkg import kernel
assert compiled.enabled(), "numba unavailable"
print(kernel.twice_bumped(1.0), sum(kernel.twice_bumped.stats.cache_hits.values()))
"""


@pytest.mark.skipif(not compiled.available(), reason="numba unavailable")
def test_a_kernel_is_recompiled_when_a_helper_in_another_file_changes(tmp_path):
    """numba alone keys the cache on the kernel's own file: it would print 5.0 after each edit."""
    package = tmp_path / "cachepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    helper = package / "helper.py"
    helper.write_text(HELPER)
    (package / "kernel.py").write_text(KERNEL)
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), **{compiled.ENV_SWITCH: "1"})

    assert _python(RUN, env, tmp_path) == "5.0 0"  # compiled, and saved next to the source
    assert list((package / "__pycache__").glob("kernel.twice_bumped-*.nbi")), "not cached next to the source"
    assert _python(RUN, env, tmp_path) == "5.0 1"  # loaded from the disk cache
    helper.write_text(HELPER.replace("x + 1.0", "x + 3.0"))  # the inlined helper's body
    assert _python(RUN, env, tmp_path) == "9.0 0"
    helper.write_text(HELPER.replace("x + 1.0", "x + 3.0").replace("OFFSET = 1.0", "OFFSET = 7.0"))  # a constant
    assert _python(RUN, env, tmp_path) == "15.0 0"


@pytest.mark.skipif(not compiled.available(), reason="numba unavailable")
def test_a_kernel_beside_an_unwritable_folder_is_cached_in_the_user_cache(tmp_path):
    """As from a read-only install: numba's user cache directory (XDG_CACHE_HOME here) instead."""
    package = tmp_path / "cachepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text(HELPER)
    (package / "kernel.py").write_text(KERNEL)
    (package / "__pycache__").write_text("")  # a file: the cache folder next to the source cannot be made
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]), XDG_CACHE_HOME=str(tmp_path / "user"),
               **{compiled.ENV_SWITCH: "1"})

    assert _python(RUN, env, tmp_path) == "5.0 0"
    assert list((tmp_path / "user").rglob("kernel.twice_bumped-*.nbi")), "not cached in the user cache"
    assert _python(RUN, env, tmp_path) == "5.0 1"


# What loading the kernels imports: scipy.linalg stays out (numba imports it only for np.vdot's BLAS
# choice) unless the process imported it first; scipy itself still imports and works after.
SCIPY_PROBE = """
import sys
{first}
from controller.core.scaling import compiled
from controller.core.scaling.fused import fused_kernel
assert compiled.enabled()
import numpy as np
from numba.np import arraymath
loaded = "scipy.linalg" in sys.modules
import scipy.linalg
print(loaded, arraymath._HAVE_BLAS, float(scipy.linalg.norm(np.array([3.0, 4.0]))))
"""


@pytest.mark.parametrize("first, expect", [
    pytest.param("", "False False 5.0", id="kernels-loaded-without-scipy-linalg-which-imports-after"),
    pytest.param("import scipy.linalg", "True True 5.0", id="scipy-linalg-imported-first-keeps-numba-blas"),
])
def test_loading_the_kernels_leaves_scipy_linalg_unimported(first, expect):
    if not compiled.available():
        pytest.skip("numba unavailable")
    pytest.importorskip("scipy.linalg")
    assert _python(SCIPY_PROBE.format(first=first), _env(PYTHONPATH=str(REPO)), REPO) == expect
