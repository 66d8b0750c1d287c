"""A pytest-xdist worker's exit stays within execnet's 5 s (tests/support/worker_exit.py): a run
of two tests on one worker whose full collections are slow (a gc callback sleeps 4 s in each
collection of a large oldest generation, as a worker's heap after a share of the suite makes
them on two loaded cores) ends without the SIGINT execnet sends a worker still busy 5 s after
its gateway is closed. Without the hook, pytest's five collections at unconfigure (20 s here:
well over 5 s past the close, even when the controller is slow to close it on a loaded machine;
12.5 s was not, twice, with two CI runs side by side at load 15-20)
outlast those 5 s and the SIGINT interrupts one (in CI, in Hypothesis' gc callback: the log ended
with "Exception ignored in ... gc_callback ... KeyboardInterrupt", exit 0, about one full run in
five). Each row runs pytest in a subprocess, bounded."""

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


def walk_slowly(phase, info):
    """A full collection of a large heap takes 4 s; one interrupted leaves a file saying so."""
    if phase == "start" and info["generation"] == 2 and len(gc.get_objects(2)) > LARGE:
        try:
            time.sleep(4.0)
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
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "1", *extra,
                           "test_slow_collections.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=_own_run_env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "2 passed" in out, out
    assert (tmp_path / "interrupted").exists() is interrupted, out
