"""The installed package works without the source tree: build the wheel, install it into a fresh
virtual environment (dependencies from this machine: --system-site-packages, the wheel with
--no-deps) and run `setpoint` from a folder outside the checkout, with no PYTHONPATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "controller", "simulators", "policies")


def run(args: list, cwd: Path, timeout_s: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s, env=env)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def local_build_backend() -> bool:
    """Whether this machine can build the wheel without fetching the build requirements."""
    setuptools = _numbers(version("setuptools"))
    try:
        import wheel  # noqa: F401 - setuptools < 70.1 needs it for bdist_wheel
        has_wheel = True
    except ImportError:
        has_wheel = False
    return setuptools >= (68,) and (has_wheel or setuptools >= (70, 1))


def build_wheel(tmp: Path) -> Path:
    """The wheel, built from a copy of the sources (so no build/ folder lands in the checkout)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    isolation = ["--no-build-isolation"] if local_build_backend() else []  # else pip fetches setuptools, as `pip install .` does
    run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", *isolation, "-w", tmp / "dist", "--quiet",
         "--disable-pip-version-check"], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("setpoint-*.whl")
    return wheel


def outside_env(venv: Path) -> dict:
    """The environment of a user who installed setpoint: no PYTHONPATH, no traces folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SETPOINT_TRACES_DIR", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "80"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, a working folder outside the checkout, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp)
    env = outside_env(venv)  # as the user installs it: with the checkout on PYTHONPATH, pip finds
    # the checkout's setpoint.egg-info, says the requirement is satisfied and installs nothing
    run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--disable-pip-version-check", wheel], cwd=tmp, env=env)
    work = tmp / "work"
    work.mkdir()
    return venv, work, env


def test_the_venv_imports_the_installed_copy_not_the_checkout(installed):
    venv, work, env = installed
    proc = run([venv / "bin" / "python", "-c", "import controller, simulators, controller.bundled as b; "
                "print(controller.__file__); print(simulators.__file__); print(b.source_checkout())"], work, env=env)
    controller_file, simulators_file, checkout = proc.stdout.splitlines()
    site = venv / "lib"
    assert Path(controller_file).is_relative_to(site) and Path(simulators_file).is_relative_to(site)
    assert checkout == "None"


def test_version(installed):
    venv, work, env = installed
    proc = run([venv / "bin" / "setpoint", "--version"], work, env=env)
    assert proc.stdout == f"setpoint {tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['version']}\n"


def test_simulate_with_the_bundled_defaults_writes_its_outputs(installed):
    venv, work, env = installed
    proc = run([venv / "bin" / "setpoint", "simulate"], work, env=env)
    out = work / "out" / "flash-crowd"
    result = json.loads((out / "result.json").read_text())
    assert set(result["controllers"]) == {"policy", "hpa", "oracle"}
    assert (out / "report.html").stat().st_size > 0 and (out / "decisions.jsonl").stat().st_size > 0
    assert "policy" in proc.stdout and "oracle" in proc.stdout


def test_bundled_policies_and_schema_are_installed_and_validate(installed):
    venv, work, env = installed
    proc = run([venv / "bin" / "python", "-c", "from importlib.resources import files; "
                "print(files('setpoint_policies').joinpath('web-rps.yaml'))"], work, env=env)
    bundled = Path(proc.stdout.strip()).parent
    assert sorted(p.name for p in bundled.iterdir() if p.suffix in (".yaml", ".json")) == \
        sorted(p.name for p in (REPO / "policies").iterdir() if p.suffix in (".yaml", ".json"))
    shutil.copy(bundled / "web-rps.yaml", work / "mine.yaml")
    proc = run([venv / "bin" / "setpoint", "validate", "mine.yaml"], work, env=env)
    assert proc.stdout.startswith("mine.yaml: ok, 1 policy (web-rps:")


def test_validate_takes_a_shipped_example_by_name(installed):
    """The docs' `setpoint validate policies/...` outside a checkout (no policies/ folder here):
    the installed example of that name, as -p takes it (was: exit 2, does not exist)."""
    venv, work, env = installed
    assert not (work / "policies").exists()
    proc = run([venv / "bin" / "setpoint", "validate", "policies/setpoint-healing.yaml", "web-rps"], work, env=env)
    healing, web = proc.stdout.splitlines()
    site = venv / "lib"
    assert Path(healing.split(":")[0]).is_relative_to(site) and ": ok, 1 policy (setpoint-healing:" in healing
    assert web.split(":")[0].endswith("setpoint_policies/web-rps.yaml") and ": ok, 1 policy (web-rps:" in web


def test_a_missing_trace_names_the_environment_variable(installed):
    """Traces are never bundled: an installed copy looks in $SETPOINT_TRACES_DIR, else ../shared."""
    venv, work, env = installed
    proc = subprocess.run([venv / "bin" / "setpoint", "simulate", "trace-nasa-july", "--no-report"], cwd=work,
                          capture_output=True, text=True, timeout=120, env=env)
    if (work.parent / "shared" / "data" / "traces").is_dir():
        pytest.skip("a traces folder happens to exist next to the working folder")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(work.parent / "shared" / "data" / "traces") in proc.stderr


def test_the_package_list_names_every_package():
    """pyproject.toml lists the packages by hand (for the setpoint_policies mapping)."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(str(REPO), include=["controller*", "simulators*"])
    assert sorted(tool["packages"]) == sorted(found + ["setpoint_policies"])
    assert tool["package-dir"] == {"setpoint_policies": "policies"}


def test_the_pre_commit_hook_runs_validate_on_the_files_it_is_given():
    """.pre-commit-hooks.yaml: pre-commit appends the changed files to ``entry``; run as it would."""
    import shlex
    import subprocess

    import yaml

    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "setpoint-validate" and hook["language"] == "python" and hook["require_serial"] is True
    entry = shlex.split(hook["entry"])
    assert entry[0] == "setpoint"
    files = [str(REPO / "policies" / "web-rps.yaml"), str(REPO / "policies" / "hpa-cpu.yaml")]
    done = subprocess.run([sys.executable, "-m", "controller.cli", *entry[1:], *files], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == files
