"""The tests' subprocesses run the checkout under test (tests/conftest.py's PYTHONPATH)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_subprocess_in_another_folder_imports_this_checkout(tmp_path):
    # with PYTHONPATH=. and an editable install of another checkout, a CLI subprocess started in a
    # temporary folder imported that other checkout: its tests passed or failed on code not under test
    out = subprocess.run([sys.executable, "-c", "import controller, simulators; "
                          "print(controller.__file__); print(simulators.__file__)"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert [Path(p).resolve().parents[1] for p in out] == [REPO, REPO]
