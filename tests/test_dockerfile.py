"""deploy/Dockerfile, read as text (no Docker engine runs here; the image is not built in CI):
multi-stage, a pinned base, dependencies from the lock file, no plotting stack, a smoke check."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
LOCK = REPO / "deploy" / "requirements.lock"
PINNED_BASE = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$|^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def commands(self, keyword: str) -> list[str]:
        return [args for k, args in self.instructions if k == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction; comments dropped, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", joined, re.M)]


def stages(text: str) -> list[Stage]:
    out: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            out.append(Stage(m[1], m[2]))
        else:
            out[-1].instructions.append((keyword, args))
    return out


def lock_pins() -> dict[str, str]:
    lines = [line for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]
    pins = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9._-]+)==([\w.+!-]+)", line)
        assert m, f"{LOCK.name}: not an exact pin: {line!r}"
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize("base, pinned", [
    pytest.param("python:3.11.7-slim-bookworm", True, id="patch-tag"),
    pytest.param("python:3.11.7-slim-bookworm@sha256:" + "a" * 64, True, id="tag-and-digest"),
    pytest.param("python@sha256:" + "b" * 64, True, id="digest"),
    pytest.param("python:3.11-slim", False, id="minor-tag"),
    pytest.param("python:3.11-slim-bookworm@sha256:<digest>", False, id="digest-placeholder"),
    pytest.param("python:latest", False, id="latest"),
    pytest.param("python", False, id="untagged"),
])
def test_pinned_base_pattern(base, pinned):
    assert bool(PINNED_BASE.match(base)) is pinned


def test_dockerfile_instructions_are_parsed():
    text = "FROM a:1.2.3 AS one\nRUN x \\\n  y\n# c\nFROM b:4.5.6\nCOPY --from=one /o /o\n"
    assert [(s.base, s.name, s.instructions) for s in stages(text)] == [
        ("a:1.2.3", "one", [("RUN", "x    y")]), ("b:4.5.6", None, [("COPY", "--from=one /o /o")])]


def test_multi_stage_with_pinned_bases():
    found = stages(DOCKERFILE.read_text())
    assert len(found) >= 2 and found[0].name
    for stage in found:
        assert PINNED_BASE.match(stage.base), f"unpinned base image {stage.base!r}"
    final = found[-1]
    assert any(c.startswith(f"--from={found[0].name} ") for c in final.commands("COPY")), "final stage copies the build"


def test_the_build_installs_the_lock_then_setpoint_without_dependencies():
    build = stages(DOCKERFILE.read_text())[0]
    copied = " ".join(build.commands("COPY"))
    assert "deploy/requirements.lock" in copied
    runs = build.commands("RUN")
    lock_install = [i for i, r in enumerate(runs) if re.search(r"pip install .*-r \S*requirements\.lock", r)]
    own_install = [i for i, r in enumerate(runs) if re.search(r"pip install --no-deps \.(\s|$)", r)]
    assert lock_install and own_install and lock_install[0] < own_install[0]
    for source in project()["tool"]["setuptools"]["package-dir"].values():
        assert f"COPY {source} " in "\n".join(f"COPY {c}" for c in build.commands("COPY")), source
    for package in {p.split(".")[0] for p in project()["tool"]["setuptools"]["packages"]} - {"setpoint_policies"}:
        assert any(c.startswith(f"{package} ") for c in build.commands("COPY")), package


def test_the_final_stage_smoke_checks_and_runs_unprivileged():
    final = stages(DOCKERFILE.read_text())[-1]
    assert "setpoint --version" in final.commands("RUN")
    (user,) = final.commands("USER")
    assert user not in ("root", "0")
    assert final.commands("ENTRYPOINT") == ['["setpoint"]']


def test_the_lock_pins_every_runtime_dependency_but_the_plotting_stack():
    pins = lock_pins()
    assert "matplotlib" not in pins
    for text in project()["project"]["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "matplotlib":
            continue
        assert name in pins, f"{req.name} is a dependency but not in {LOCK.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{LOCK.name}: {name}=={pins[name]} vs {req}"


def test_the_lock_and_the_base_image_use_the_same_python():
    python = re.search(r"on Python (\d+\.\d+\.\d+)", LOCK.read_text())[1]
    for stage in stages(DOCKERFILE.read_text()):
        assert stage.base.startswith(f"python:{python}-"), (stage.base, python)


def test_the_controller_never_imports_matplotlib():
    """Why the image can leave it out: `setpoint run`'s modules do not load it."""
    import subprocess
    import sys

    code = ("import sys, controller.cli, controller.runtime.service, controller.runtime.dryrun, "
            "controller.runtime.http, controller.adapters.kubernetes, controller.adapters.prometheus; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'simulators')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_both_stages_run_the_python_the_lock_was_generated_with():
    """A base bumped without regenerating the lock (deploy/lock_requirements.py) ships pins
    resolved on another Python; the lock's header names the one it was made on."""
    [made_on] = re.findall(r"^# Generated by .* on Python (\d+\.\d+\.\d+)", LOCK.read_text(), re.M)
    bases = {stage.base for stage in stages(DOCKERFILE.read_text())}
    assert len(bases) == 1, f"the build and the runtime stage differ: {bases}"
    assert re.match(rf"python:{re.escape(made_on)}-", bases.pop())
