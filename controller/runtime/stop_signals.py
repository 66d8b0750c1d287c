"""Stop signals for a process that serves until asked to stop (``setpoint run``, ``sim serve``).

The main thread waits on a pipe that the signal handler writes a byte to; the handler takes no
lock. Setting a ``threading.Event`` from the handler, as both commands did, could deadlock: the
handler runs in the main thread between two bytecodes, and when those were inside the Event's
own ``wait()`` (which holds the Event's lock for a moment on entering and on leaving), the
handler's ``set()`` waited forever for a lock its own thread held. A ``setpoint run`` sent
SIGTERM as it entered its wait never exited (found by a CI run: killed after 20 s).
"""

from __future__ import annotations

import os
import select
import signal
import threading


class StopSignals:
    """Make ``signals`` ask for a stop: ``received`` lists them in arrival order; ``wait()``
    returns once one has arrived. Use as a context manager in the main thread (where handlers
    can be set); leaving it puts the previous handlers back and closes the pipe."""

    def __init__(self, *signals: signal.Signals):
        self.signals = signals
        self.received: list[int] = []
        self._read_fd = self._write_fd = -1
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("stop signals can be handled in the main thread only")
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # a full pipe (signals never waited for) drops bytes, not the handler
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        for fd in (self._read_fd, self._write_fd):
            os.close(fd)
        self._read_fd = self._write_fd = -1

    def _handle(self, signum: int, _frame) -> None:
        # no lock, no logging (neither is reentrant): a list append and a write to a pipe
        self.received.append(signum)
        try:
            os.write(self._write_fd, b"\0")
        except OSError:  # full (the byte already there wakes the waiter) or closed
            pass

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once a stop signal has arrived (at once if one already had); False when
        ``timeout_s`` seconds passed first (None: wait as long as it takes)."""
        if self.received:
            return True
        # poll (no FD_SETSIZE limit, unlike select) is retried after the handler runs (PEP 475):
        # by then the byte is in the pipe
        waiter = select.poll()
        waiter.register(self._read_fd, select.POLLIN)
        ready = waiter.poll(None if timeout_s is None else max(timeout_s, 0.0) * 1000.0)
        return bool(ready) or bool(self.received)
