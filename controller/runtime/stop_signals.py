"""Stop signals for a process that serves until asked to stop (``setpoint run``, ``sim serve``).

The main thread waits on a pipe that the interpreter's C-level signal handler writes each signal's
number to (``signal.set_wakeup_fd``); no Python code runs in the handler, so it takes no lock.
Setting a ``threading.Event`` from a Python handler, as both commands did, could deadlock: the
handler runs in the main thread between two bytecodes, and when those were inside the Event's
own ``wait()`` (which holds the Event's lock for a moment on entering and on leaving), the
handler's ``set()`` waited forever for a lock its own thread held. A ``setpoint run`` sent
SIGTERM as it entered its wait never exited (found by a CI run: killed after 20 s). The wakeup
fd is written whichever thread the kernel delivers the signal to, so the wait ends even when it
is not the main thread's (whose blocking call a Python-level handler needs interrupted).
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time


class StopSignals:
    """Make ``signals`` ask for a stop: ``wait()`` returns once one has arrived and ``received``
    then lists those that had, in arrival order. Use as a context manager in the main thread
    (where handlers and the wakeup fd can be set); leaving it puts the previous handlers and
    wakeup fd back and closes the pipe. Other signals with Python handlers (sim serve's SIGUSR1)
    also write to the pipe: they wake the wait, which goes on."""

    def __init__(self, *signals: signal.Signals):
        self.signals = frozenset(int(sig) for sig in signals)
        self.received: list[int] = []
        self._read_fd = self._write_fd = -1
        self._previous_handlers: dict = {}
        self._previous_wakeup_fd = -1

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("stop signals can be handled in the main thread only")
        self._read_fd, self._write_fd = os.pipe()
        for fd in (self._read_fd, self._write_fd):
            os.set_blocking(fd, False)  # a full pipe drops the byte (one already there wakes the wait)
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        # a Python handler, so that the signal is caught at all (its default ends the process,
        # SIGHUP's with the Lease held); the wakeup fd carries it to the wait
        self._previous_handlers = {sig: signal.signal(sig, _carried_by_the_wakeup_fd) for sig in self.signals}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers = {}
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        for fd in (self._read_fd, self._write_fd):
            os.close(fd)
        self._read_fd = self._write_fd = -1

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once a stop signal has arrived (at once if one already had); False when
        ``timeout_s`` seconds passed first (None: wait as long as it takes)."""
        deadline = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
        waiter = select.poll()  # no FD_SETSIZE limit, unlike select; retried after a handler (PEP 475)
        waiter.register(self._read_fd, select.POLLIN)
        while True:
            self._read_arrived()
            if self.received:
                return True
            left_s = None if deadline is None else deadline - time.monotonic()
            if left_s is not None and left_s <= 0:
                return False
            waiter.poll(None if left_s is None else left_s * 1000.0)

    def _read_arrived(self) -> None:
        """Append the stop signals the pipe holds to ``received`` (other signals' bytes dropped)."""
        while True:
            try:
                arrived = os.read(self._read_fd, 512)
            except BlockingIOError:
                return
            if not arrived:
                return
            self.received.extend(sig for sig in arrived if sig in self.signals)


def _carried_by_the_wakeup_fd(_signum: int, _frame) -> None:
    """The stop signals' Python handler: nothing to do (no lock, no logging: neither is reentrant)."""
