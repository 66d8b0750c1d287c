"""`setpoint ARGS` in a process apart from the test's, many commands in one process.

For commands that need a process of their own but not a fresh interpreter each (~1 s of CPU
importing before they read their files): a hostile input tested under a memory limit (RLIMIT_AS:
a refusal, never an out-of-memory death), or a command that would serve for ever if the product
broke (`sim serve`, `run` without --once) and so needs a timeout that can kill it. `CliProcess`
starts one ``python -m tests.support.cli_process`` (under the limit, if any) and runs each command
there with `tests.support.cli_inproc.run_cli` (its exit code, stdout and stderr as a subprocess's,
plus what native code wrote to the file descriptors). A command that kills that process, or
outlives its timeout (killed), fails as its own subprocess would have; the next command starts
a new process.
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]



def _close_quietly(pipe) -> None:
    """Close a pipe to a process that may have died (its unread data then cannot be flushed)."""
    try:
        pipe.close()
    except BrokenPipeError:
        pass

class CliProcess:
    """One ``setpoint`` process at a time, under ``limit_bytes`` of address space if given, started
    at the first command; ``env``: its environment (PYTHONPATH set to this checkout). Close it after."""

    def __init__(self, limit_bytes: int | None = None, env: dict[str, str] | None = None):
        self.limit_bytes = limit_bytes
        self.env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
        self._proc: subprocess.Popen | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="cli-process-")

    def run(self, *args, cwd: Path | str, env: dict[str, str] | None = None,
            timeout_s: float = 60) -> subprocess.CompletedProcess:
        """``setpoint *args`` in ``cwd`` with ``env`` added for the call, within ``timeout_s``
        (subprocess.TimeoutExpired past it, as subprocess.run raises)."""
        argv = [str(arg) for arg in args]
        native = [Path(self._folder.name) / name for name in ("fd1", "fd2")]
        proc = self._started()
        request = {"args": argv, "cwd": str(cwd), "env": env or {}, "fds": [str(p) for p in native]}
        try:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:  # it died before reading the command (could not start, under the limit)
            line = None
        else:
            line = self._reply(proc, argv, timeout_s)
        out, err = (p.read_text(errors="replace") if p.exists() else "" for p in native)
        if line is None:  # the process died with the command: its status as a subprocess's
            _close_quietly(proc.stdin)
            returncode = proc.wait()
            self._proc = None
            return subprocess.CompletedProcess(argv, returncode, out, err)
        reply = json.loads(line)
        return subprocess.CompletedProcess(argv, reply["code"], reply["stdout"] + out, reply["stderr"] + err)

    def close(self) -> None:
        """Ends the process (waited for: its CPU counts as the caller's children's) and its files."""
        if self._proc is not None:
            _close_quietly(self._proc.stdin)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._folder.cleanup()

    def _started(self) -> subprocess.Popen:
        if self._proc is None:
            self._proc = subprocess.Popen([sys.executable, "-m", "tests.support.cli_process"], cwd=REPO, env=self.env,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=self._limit)
        return self._proc

    def _limit(self) -> None:
        """In the child before it runs Python: the address-space limit."""
        if self.limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit_bytes, self.limit_bytes))

    def _reply(self, proc: subprocess.Popen, argv: list[str], timeout_s: float) -> bytes | None:
        """The reply line, or None at end of file (the process died); killed past ``timeout_s``."""
        fd, got = proc.stdout.fileno(), b""
        while not got.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                proc.kill()
                proc.wait()
                self._proc = None
                raise subprocess.TimeoutExpired(["setpoint", *argv], timeout_s)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            got += chunk
        return got


def serve() -> None:
    """The limited process: one JSON request a line on stdin, one JSON reply a line on stdout.
    Native writes to fds 1 and 2 go to the files the request names (the replies use a copy of fd 1)."""
    from tests.support.cli_inproc import run_cli

    replies = os.fdopen(os.dup(1), "w")
    for line in sys.stdin:
        request = json.loads(line)
        saved = [os.dup(1), os.dup(2)]
        targets = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for path in request["fds"]]
        for fd, target in zip((1, 2), targets):
            os.dup2(target, fd)
            os.close(target)
        try:
            proc = run_cli(*request["args"], cwd=request["cwd"], env=request["env"])
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except BaseException:  # noqa: BLE001 - what an uncaught exception does to a process: a traceback, exit 1
            code, out, err = 1, "", traceback.format_exc()
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
        replies.write(json.dumps({"code": code, "stdout": out, "stderr": err}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
