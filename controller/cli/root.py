"""The ``setpoint`` Typer app and its entry point: global options, and every error that reaches
the top turned into one line and an exit code (1: bad input; 70: a bug; the others below)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Annotated

import typer

from controller.errors import STOPS_DEFERRED, Terminated, ask_stop, clear_stop

app = typer.Typer(
    name="setpoint",
    help="Setpoint: an autoscaling and self-healing controller driven by YAML policies.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

#: Exit codes (README "Exit codes"): 0 done; 1 bad input, or a check that failed with nothing to
#: show for it (run --once, validate --strict, tune with no trial within budget); 2 a usage error
#: (Click's: an unknown option, a bad value); 3 done and written, but the result failed its check
#: (tune: the tuned policy misses the SLO budget on a held-out scenario); 70 a bug; 130 / 143
#: interrupted (Ctrl-C / SIGTERM).
EXIT_INVALID = 1  # bad input: the message says what to change
EXIT_HOLDOUT_MISSED = 3  # tune: the tuned policy and tune.json are written, but over-fitting shows
EXIT_BUG = 70  # EX_SOFTWARE: an exception Setpoint did not expect
_options = {"debug": False, "terminated": False, "pid": 0}

#: Where this process called os.fork: (code, instruction) of each calling frame, noted by the audit
#: hook below. os.fork runs its at-fork hooks, in Python for some (logging's take its module lock
#: before the fork and release it after): a handler's raise inside one is lost ("Exception ignored in:
#: <function _releaseLock>" and a traceback on stderr, the lock left held). A frame stopped at one of
#: these calls is inside os.fork (_inside_fork). The audit event comes before any hook runs, so
#: this holds whichever module registered its hooks first (a flag kept by hooks of the command's own
#: guarded only the hooks registered before them).
_FORK_CALLS: set[tuple] = set()


def _note_fork_call(event: str, args: tuple) -> None:
    """sys.addaudithook's hook: note the frame calling os.fork (called from C inside it: frame 1)."""
    if event in ("os.fork", "os.forkpty"):
        caller = sys._getframe(1)
        _FORK_CALLS.add((caller.f_code, caller.f_lasti))


if hasattr(os, "register_at_fork"):  # where os.fork runs Python hooks
    sys.addaudithook(_note_fork_call)


def _inside_fork(frame) -> bool:
    """The signal came inside os.fork, in one of its Python at-fork hooks: a frame that called
    ``frame`` (the frame the handler interrupted) is stopped at a call of os.fork."""
    caller = frame.f_back if frame is not None else None
    while caller is not None:
        if (caller.f_code, caller.f_lasti) in _FORK_CALLS:
            return True
        caller = caller.f_back
    return False


def main(argv: list[str] | None = None) -> None:
    """The ``setpoint`` command: any error becomes one line on stderr (``--debug``: the traceback)."""
    import warnings

    _options["debug"] = _options["terminated"] = False
    _options["pid"] = os.getpid()  # the command's process: its forked workers do not raise (_terminated)
    clear_stop()
    from controller.cli.common import RESOLVED_EXAMPLES

    RESOLVED_EXAMPLES.clear()  # this command's: an earlier main() in this process (the tests') resolved its own
    # restored on the way out: main() may run inside another program (the tests), whose later
    # warnings would read "setpoint: warning:" too
    previous_format, warnings.formatwarning = warnings.formatwarning, _warning_line
    # SIGTERM (kill, timeout(1), a CI job cancelled) ends a command as Ctrl-C does: worker
    # processes stopped, finished work kept; commands that serve (run, sim serve) set their own.
    # Ctrl-C's handler is Python's default but for where it may not raise (_interrupted); left
    # alone where it is not the default (ignored: a background job's)
    main_thread = threading.current_thread() is threading.main_thread()  # where handlers can be set
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    own_sigint = main_thread and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if own_sigint:
        signal.signal(signal.SIGINT, _interrupted)
    try:
        app(args=argv, prog_name="setpoint")
    except KeyboardInterrupt:  # outside Typer's handling (it exits 130 itself)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130 and _options["terminated"]:  # 128 + SIGTERM, as a shell reports a process it ended
            sys.exit(143)
        raise
    except Exception as exc:  # the last line of defence: no traceback for users
        if _options["debug"]:
            raise
        code, line = describe_error(exc)
        print(f"setpoint: {line}", file=sys.stderr)
        sys.exit(code)
    finally:
        warnings.formatwarning = previous_format
        if main_thread:  # as it was: main() may run inside another program (the tests)
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if own_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _terminated(signum, frame) -> None:
    """The command's SIGTERM handler: Terminated raised where the command is (see _stop)."""
    if os.getpid() != _options["pid"]:
        # a worker forked from the command that has not set its own handler yet (a simulation's,
        # stopped by the command as it ends): it dies as by default, no Terminated traceback of
        # its own under the command's "interrupted" line
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _options["terminated"] = True
    _stop(Terminated, frame)


def _interrupted(signum, frame) -> None:
    """The command's SIGINT (Ctrl-C) handler: KeyboardInterrupt raised where the command is (see
    _stop). In a worker forked from the command that has not set its own handlers yet, nothing:
    Ctrl-C at a terminal reaches the command too, which stops its workers (a KeyboardInterrupt
    there printed a traceback from the worker's bootstrap)."""
    if os.getpid() == _options["pid"]:
        _stop(KeyboardInterrupt, frame)


def _stop(kind: type[KeyboardInterrupt], frame) -> None:
    """Ask the command to stop (TERMINATION, read by long waits: a raise is lost where it lands in
    a __del__), and raise ``kind`` in ``frame`` unless inside a fork's hooks (_inside_fork) or where
    the code that starts workers defers stops (STOPS_DEFERRED): that code raises it after
    (raise_if_terminated)."""
    ask_stop(kind)
    if not STOPS_DEFERRED and not _inside_fork(frame):
        raise kind()


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the command's other messages read: ``setpoint: warning: ...`` (``--debug``:
    with where it was raised)."""
    where = f" ({category.__name__} at {filename}:{lineno})" if _options["debug"] else ""
    return f"setpoint: warning: {message}{where}\n"


def describe_error(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception that reached the top: bad input is 1, a bug is 70."""
    from controller.errors import InvalidInput, SetpointError

    if isinstance(exc, InvalidInput) and exc.errors:
        more = len(exc.errors) - 1
        return EXIT_INVALID, _one_line(str(exc.errors[0])) + (f" (and {more} more)" if more else "")
    if isinstance(exc, SetpointError):
        return EXIT_INVALID, _one_line(str(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_INVALID, _one_line(f"{where}{exc.strerror or exc}: check the path and its permissions")
    if isinstance(exc, UnicodeError):
        return EXIT_INVALID, _one_line(f"not UTF-8 text ({exc}): save the file as UTF-8")
    if isinstance(exc, MemoryError):
        return EXIT_INVALID, "out of memory: the input asks for more than this machine has; make it smaller"
    return EXIT_BUG, _one_line(f"unexpected error {type(exc).__name__}: {exc}. This is a bug in Setpoint; "
                               "rerun with --debug (setpoint --debug ...) and report the traceback")


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("setpoint")
        except PackageNotFoundError:  # a source checkout that was never installed
            from controller import __version__ as number
        typer.echo(f"setpoint {number}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the Python traceback of any error.")] = False,
) -> None:
    """Setpoint: an autoscaling and self-healing controller driven by YAML policies."""
    _options["debug"] = debug
