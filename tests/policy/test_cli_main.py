"""The top-level handler of the `setpoint` command: one line on stderr, never a traceback (unless --debug)."""

from __future__ import annotations

import pytest

from controller import cli
from controller.cli import policy_files
from controller.errors import FieldError, PolicyError, PrometheusUnreachable
from tests.policy.helpers import POLICIES

VALID = str(POLICIES / "web-rps.yaml")


def _raise(exc: BaseException):
    def fail(*_args, **_kwargs):
        raise exc
    return fail


@pytest.mark.parametrize("exc, code, line", [
    pytest.param(RuntimeError("boom"), 70, "setpoint: unexpected error RuntimeError: boom. This is a bug in Setpoint; "
                 "rerun with --debug (setpoint --debug ...) and report the traceback", id="bug"),
    pytest.param(PolicyError([FieldError("p.yaml", 3, "spec.interval", "must be at least 1s, got 0s"),
                              FieldError("p.yaml", 7, "spec.replicas.max", "must be <= 100000, got 1e+19")]),
                 1, "setpoint: p.yaml:3: spec.interval: must be at least 1s, got 0s (and 1 more)", id="invalid-input"),
    pytest.param(PrometheusUnreachable("http://prom:9090: connection refused"), 1,
                 "setpoint: http://prom:9090: connection refused", id="setpoint-error"),
    pytest.param(PermissionError(13, "Permission denied", "/etc/setpoint/p.yaml"), 1,
                 "setpoint: /etc/setpoint/p.yaml: Permission denied: check the path and its permissions", id="os-error"),
    pytest.param(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 1,
                 "setpoint: not UTF-8 text ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte): "
                 "save the file as UTF-8", id="unicode-error"),
    pytest.param(RuntimeError("line one\nline two\n" + "x" * 1000), 70, None, id="multi-line-message"),
])
def test_an_escaping_exception_becomes_one_line(monkeypatch, capsys, exc, code, line):
    monkeypatch.setattr(policy_files, "check_policies", _raise(exc))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["validate", VALID])
    assert exit_.value.code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if line is not None:
        assert err == line + "\n"
    assert len(err) <= len("setpoint: ") + 401


def test_debug_shows_the_exception(monkeypatch):
    monkeypatch.setattr(policy_files, "check_policies", _raise(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", "validate", VALID])


def test_debug_does_not_stick_to_the_next_call(monkeypatch, capsys):
    monkeypatch.setattr(policy_files, "check_policies", _raise(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "validate", VALID])
    with pytest.raises(SystemExit) as exit_:
        cli.main(["validate", VALID])
    assert exit_.value.code == 70


def test_the_module_entry_point_handles_an_os_error():
    import os
    import subprocess
    import sys

    from tests.policy.helpers import REPO

    # /proc takes no new file, even from root: the write itself fails
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "schema", "-o", "/proc/schema.json"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["setpoint: /proc/schema.json: No such file or directory: "
                                        "check the path and its permissions"]


def test_the_console_script_is_main():
    from tomllib import loads

    from tests.policy.helpers import REPO

    scripts = loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["setpoint"] == "controller.cli:main"



def _format_then(seen: list[str], exc: BaseException | None, real_check):
    """A check_policies that formats a warning (what a warning raised there would print) into
    ``seen``, then raises ``exc`` (None: ``real_check``'s answer, the command goes on)."""
    def check(*args, **kwargs):
        import warnings

        seen.append(warnings.formatwarning("a policy says something odd", UserWarning, "p.py", 3))
        if exc is not None:
            raise exc
        return real_check(*args, **kwargs)
    return check


FORMAT_ROWS = {
    # name: (what the command meets after the warning, None: nothing, it finishes (exit 0); --debug)
    "the-command-finishes": (None, False),
    "bad-input-exit-1": (PolicyError([FieldError("p.yaml", 3, "spec.interval", "must be at least 1s, got 0s")]),
                         False),
    "a-bug-exit-70": (RuntimeError("boom"), False),
    "ctrl-c-exit-130": (KeyboardInterrupt(), False),
    "debug-reraises-the-bug": (RuntimeError("boom"), True),
}


@pytest.mark.parametrize("name", list(FORMAT_ROWS))
def test_warnings_read_setpoint_warning_inside_main_and_the_callers_way_after_it(monkeypatch, name):
    """main() formats warnings as the command's lines, and gives the caller's formatter back
    however it ends: tests call it in-process, and their later warnings read "setpoint: warning:"."""
    import warnings

    exc, debug = FORMAT_ROWS[name]

    def callers_format(message, category, filename, lineno, line=None):
        return f"caller's: {message}\n"

    seen: list[str] = []
    monkeypatch.setattr(policy_files, "check_policies", _format_then(seen, exc, policy_files.check_policies))
    monkeypatch.setattr(warnings, "formatwarning", callers_format)
    with pytest.raises((SystemExit, RuntimeError)) as ended:
        cli.main([*(["--debug"] if debug else []), "validate", VALID])
    where = " (UserWarning at p.py:3)" if debug else ""
    assert seen == [f"setpoint: warning: a policy says something odd{where}\n"]
    assert warnings.formatwarning is callers_format, name
    assert warnings.formatwarning("after main", UserWarning, "t.py", 1) == "caller's: after main\n"
    codes = {"the-command-finishes": 0, "bad-input-exit-1": 1, "a-bug-exit-70": 70, "ctrl-c-exit-130": 130}
    assert getattr(ended.value, "code", None) == codes.get(name), ended.value
