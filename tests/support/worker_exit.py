"""A pytest-xdist worker collects its garbage before it says it has finished, not after.

Once every worker has said ``workerfinished``, the xdist controller closes their gateways, and
execnet gives a worker 5 s to return; past that it sends the worker a SIGINT
(execnet/gateway_base.py, ``WorkerGateway._terminate_execution``). What a worker does after
``workerfinished`` is pytest's unconfigure, whose unraisable-exception cleanup runs
``gc.collect()`` five times (_pytest/unraisableexception.py) over the whole heap of a worker that
ran a quarter of the suite: seconds on two loaded cores. The SIGINT then lands in a gc callback
(Hypothesis registers one, the first time a property test runs) and CI's log ended, about one
full run in five, with "Exception ignored in: <function gc_cumulative_time.<locals>.gc_callback>
... KeyboardInterrupt" (exit 0: the results were in).

So a worker collects at its session's end, while the controller still waits for it (no deadline),
until a collection finds nothing, then freezes what is left (``gc.freeze``): unconfigure's
collections walk only what is allocated after, and the worker returns well within execnet's 5 s.
The garbage and the unraisable exceptions of its finalizers are still collected and reported as
before (pytest's hook is still installed). Outside a worker this does nothing.
"""

from __future__ import annotations

import gc

import pytest

#: pytest's cleanup collects five times (a finalizer may free more); no more are needed here.
MAX_COLLECTIONS = 5


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down (their objects freed)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker, before its workerfinished
        collect_then_freeze()


def collect_then_freeze() -> int:
    """Full collections until one finds nothing (at most MAX_COLLECTIONS), then ``gc.freeze()``;
    returns the objects found unreachable."""
    found = 0
    for _ in range(MAX_COLLECTIONS):
        unreachable = gc.collect()
        found += unreachable
        if not unreachable:
            break
    gc.freeze()
    return found
