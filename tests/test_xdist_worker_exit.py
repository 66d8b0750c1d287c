"""A pytest-xdist worker's exit stays within execnet's 5 s (tests/support/worker_exit.py): a run
of two tests on one worker whose full collections turn slow once its session ends (a gc callback
sleeps 6 s in each collection of a large oldest generation, as a worker's heap after a share of
the suite makes them on two loaded cores) ends without the SIGINT execnet sends a worker still
busy 5 s after its gateway is closed. Without the hook, pytest's five collections at unconfigure
(30 s here) outlast those 5 s however late the controller closes the gateway (up to 25 s) and the
SIGINT interrupts one (in CI, in Hypothesis' gc callback: the log ended with "Exception ignored in
... gc_callback ... KeyboardInterrupt", exit 0, about one full run in five). Each row runs pytest
in a subprocess, bounded.

The collections are slow only from the session's end (the run's conftest.py sets the flag first
thing in pytest_sessionfinish): slow from the start, as before, the session itself took 12-15 s
of collections, and with two CI runs side by side the control row (without the hook) was not
interrupted in three runs of four (at 2.5 s and at 4 s a collection)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SLOW_COLLECTIONS = '''\
import gc
import time

#: a generation 2 this large is a worker's heap (thousands of objects are pytest's own)
LARGE = 20_000
#: set by conftest.py when the session ends: the collections after it are the slow ones
slow = False


def walk_slowly(phase, info):
    """A full collection of a large heap takes 6 s once the session ended; one interrupted leaves
    a file saying so."""
    if slow and phase == "start" and info["generation"] == 2 and len(gc.get_objects(2)) > LARGE:
        try:
            time.sleep(6.0)
        except KeyboardInterrupt:
            with open("interrupted", "a") as f:
                f.write("a collection interrupted by SIGINT\\n")
            raise


gc.callbacks.append(walk_slowly)
HEAP = [[k] for k in range(2 * LARGE)]


def test_one():
    assert len(HEAP) == 2 * LARGE


def test_two():
    assert HEAP[-1] == [2 * LARGE - 1]
'''

#: The run's conftest.py: from its session's end on, a worker's full collections are slow (the test
#: module is imported in the workers only: the controller's collections stay fast).
SLOW_FROM_THE_END = '''\
import sys

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    module = sys.modules.get("test_slow_collections")
    if module is not None:
        module.slow = True
'''

ROWS = {
    # name: (extra pytest arguments, whether execnet's SIGINT interrupts the worker)
    "the-hook-collects-before-workerfinished": (["-p", "tests.support.worker_exit"], False),
    "without-it-execnet-interrupts-unconfigure": ([], True),
}


def _own_run_env() -> dict[str, str]:
    """This environment without the outer pytest-xdist worker's variables: the run is its own."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("name", list(ROWS))
def test_a_workers_slow_collections_end_before_execnet_interrupts_it(tmp_path, name):
    extra, interrupted = ROWS[name]
    (tmp_path / "test_slow_collections.py").write_text(SLOW_COLLECTIONS)
    (tmp_path / "conftest.py").write_text(SLOW_FROM_THE_END)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "1", *extra,
                           "test_slow_collections.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=_own_run_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "2 passed" in out, out
    assert (tmp_path / "interrupted").exists() is interrupted, out
