"""controller.runtime.stop_signals: a stop signal ends the wait whenever it arrives, and the handler
takes no lock (an Event set from the handler deadlocked `setpoint run` when SIGTERM landed inside
the Event's own wait)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from controller.runtime.stop_signals import StopSignals

REPO = Path(__file__).resolve().parents[2]


def test_no_signal_waits_out_the_timeout():
    with StopSignals(signal.SIGUSR1) as stops:
        started = time.monotonic()
        assert stops.wait(0.05) is False
        assert time.monotonic() - started >= 0.05
        assert stops.received == []


@pytest.mark.parametrize("sent", [
    pytest.param([signal.SIGUSR1], id="one"),
    pytest.param([signal.SIGUSR2, signal.SIGUSR1], id="two-in-order"),
])
def test_a_signal_before_the_wait_ends_it_at_once(sent):
    with StopSignals(signal.SIGUSR1, signal.SIGUSR2) as stops:
        for sig in sent:
            os.kill(os.getpid(), sig)  # a signal to this thread's own process: handled before kill returns
        assert stops.wait(5) is True
        assert stops.wait() is True  # and stays asked: no timeout needed
        assert stops.received == sent


def test_a_signal_during_the_wait_ends_it():
    with StopSignals(signal.SIGUSR1) as stops:
        timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        started = time.monotonic()
        try:
            assert stops.wait(10) is True
        finally:
            timer.cancel()
        assert time.monotonic() - started < 5
        assert stops.received == [signal.SIGUSR1]


def test_a_signal_another_thread_takes_ends_the_wait():
    """The kernel delivers a process's signal to any thread not blocking it; the main thread's
    wait must end all the same (a Python-level handler runs only once the main thread does)."""
    with StopSignals(signal.SIGUSR1) as stops:
        def signal_this_thread():
            time.sleep(0.1)
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        thread = threading.Thread(target=signal_this_thread)
        thread.start()
        started = time.monotonic()
        try:
            assert stops.wait(20) is True
        finally:
            thread.join(5)
        assert time.monotonic() - started < 10
        assert stops.received == [signal.SIGUSR1]


def test_another_signal_with_a_handler_wakes_the_wait_which_goes_on():
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, _: seen.append(signum))
    try:
        with StopSignals(signal.SIGUSR1) as stops:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert stops.wait(0.2) is False
            assert stops.received == [] and seen == [signal.SIGUSR2]  # its own handler ran too
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_leaving_puts_the_previous_handlers_and_wakeup_fd_back_and_closes_the_pipe():
    def mine(*_):
        pass
    previous = signal.signal(signal.SIGUSR1, mine)
    try:
        before = set(os.listdir("/proc/self/fd"))
        wakeup_before = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup_before)
        with StopSignals(signal.SIGUSR1):
            assert signal.getsignal(signal.SIGUSR1) is not mine
        assert signal.getsignal(signal.SIGUSR1) is mine
        assert signal.set_wakeup_fd(wakeup_before) == wakeup_before
        assert set(os.listdir("/proc/self/fd")) == before
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_outside_the_main_thread_it_refuses():
    raised = []
    thread = threading.Thread(target=lambda: raised.append(_enter_refused()))
    thread.start()
    thread.join(5)
    assert raised == [True]


def _enter_refused() -> bool:
    try:
        with StopSignals(signal.SIGUSR1):
            return False
    except RuntimeError:
        return True


# A process entering and leaving waits while signals arrive as fast as they can be sent: every
# signal lands somewhere in a wait, its entry and its exit included. An Event set from the handler
# hung or died here within a second (the handler blocked on the lock its own thread held).
HAMMERED = """
import signal, sys, time
from controller.runtime.stop_signals import StopSignals
signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # between two waits
print("ready", flush=True)
woken = 0
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    with StopSignals(signal.SIGUSR1) as stops:
        woken += stops.wait(0.0005)
print(woken, flush=True)
"""


def test_signals_at_any_moment_never_hang_the_waiter():
    child = subprocess.Popen([sys.executable, "-c", HAMMERED, "2.0"], stdout=subprocess.PIPE, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout.readline() == "ready\n"
        sent = 0
        while child.poll() is None and sent < 20_000:
            os.kill(child.pid, signal.SIGUSR1)
            sent += 1
            time.sleep(0.0001)
        out, _ = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    assert child.returncode == 0
    assert sent >= 1000  # the child was alive for that many signals
    assert int(out) > 0  # some of them woke a wait
