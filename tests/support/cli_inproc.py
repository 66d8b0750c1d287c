"""`setpoint ARGS` run inside the test's own process, seen as a subprocess would be.

A `setpoint` subprocess spends ~0.6 s of CPU importing and up to ~1 s more loading the compiled
kernels from their cache before it does anything; in the xdist worker both are done once. Use
this where the test is about what a command says and writes, not about its process (signals,
exit status of a real interpreter, a fresh interpreter's imports or kernel cache, resource
limits, terminals and pipes): those keep `subprocess.run`.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path


def run_cli(*args, cwd: Path | str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``setpoint *args`` through ``controller.cli.main`` in ``cwd``, with ``env`` added to the
    environment for the call: its exit code, stdout and stderr (text) as a CompletedProcess. What a
    command changes for its whole process (the working folder, os.environ, the compiled-kernels
    switch, warning filters, loggers, signal handlers: main() restores the last) is put back after it."""
    from controller.cli import main
    from controller.core.scaling import compiled

    argv = [str(arg) for arg in args]
    out, err = _stream(), _stream()
    saved_env, saved_cwd, saved_switch = dict(os.environ), os.getcwd(), compiled.switch
    code: int | str | None = 0
    try:
        os.environ.update({**_set_below_python(), **(env or {})})
        compiled.set_switch(os.environ.get(compiled.ENV_SWITCH, ""))  # as a fresh process reads it
        os.chdir(cwd)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                as_a_fresh_process_logs():
            as_a_fresh_process_warns()
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        compiled.set_switch(saved_switch)
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(code, str):  # sys.exit("message"): the message goes to stderr, as Python prints it
        err.write(code + "\n")
    return subprocess.CompletedProcess([sys.executable, "-m", "controller.cli", *argv], returncode,
                                       _text(out), _text(err))


@contextlib.contextmanager
def as_a_fresh_process_logs():
    """Logging as in a fresh ``python`` for the call: no handler on the root logger (pytest's, or
    one an earlier in-process command or test left there, bound to a stream since closed: the
    command's notices, which propagate to the root, printed "--- Logging error ---" tracebacks),
    its level WARNING; every logger's handlers, level and propagation put back after."""
    root = logging.getLogger()
    loggers = [root, *(x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger))]
    saved = [(x, x.handlers[:], x.level, x.propagate, x.disabled) for x in loggers]
    root.handlers, root.level = [], logging.WARNING
    try:
        yield
    finally:
        for logger, handlers, level, propagate, disabled in saved:
            logger.handlers[:], logger.level, logger.propagate, logger.disabled = handlers, level, propagate, disabled
        for logger in logging.Logger.manager.loggerDict.values():  # made during the call
            if isinstance(logger, logging.Logger) and all(logger is not x for x in loggers):
                logger.handlers[:] = []


def _set_below_python() -> dict[str, str]:
    """The terminal size variables a subprocess would inherit but os.environ does not show: GNU
    readline, once imported (pytest's debugger imports it), puts LINES and COLUMNS into the C
    environment (rl_change_environment), which children inherit; rich's width follows COLUMNS."""
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    found = {name: libc.getenv(name.encode()) for name in ("COLUMNS", "LINES") if name not in os.environ}
    return {name: value.decode() for name, value in found.items() if value is not None}


def _stream() -> io.TextIOWrapper:
    """A stand-in for a piped stdout or stderr: text over bytes (``.buffer`` too, which the
    records' ``--out -`` writes to), in the order written."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    """What ``subprocess.run(text=True)`` reads of it: universal newlines."""
    stream.flush()
    return stream.buffer.getvalue().decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def as_a_fresh_process_warns() -> None:
    """Warning filters and output as in a fresh ``python`` (inside a ``catch_warnings``): pytest
    records warnings instead of printing them and shows DeprecationWarnings always; and a
    registry left by an earlier command in this process would hide a warning shown once
    (changing the filters clears the registries)."""
    warnings.resetwarnings()
    for action, category, module in (("default", DeprecationWarning, "__main__"), ("ignore", DeprecationWarning, ""),
                                     ("ignore", PendingDeprecationWarning, ""), ("ignore", ImportWarning, ""),
                                     ("ignore", ResourceWarning, "")):
        warnings.filterwarnings(action, category=category, module=module, append=True)
    warnings.showwarning = _print_warning


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python's own showwarning, on the sys.stderr of the moment (the command's captured one)."""
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))
