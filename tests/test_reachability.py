"""Every production module runs in the product: each module of controller/ and simulators/ is
reachable by imports from the ``setpoint`` console script (pyproject [project.scripts]) or
``python -m controller.cli``. A
module that only tests import is code the product never runs (the exact-HPA calculator once
was such a module, tested but never used by the ``hpa`` preset).

Imports are read statically (ast), anywhere in a module, including the lazy imports inside the
CLI's commands; importing ``a.b.c`` also runs ``a`` and ``a.b``.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "simulators")


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{dotted module name: file} of every module of the packages under ``root``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported_names(path: Path, module: str) -> set[str]:
    """Dotted names a module imports (``from a import b`` yields a and a.b, b may be a module)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[:len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def reachable(entries: list[str], modules: dict[str, Path]) -> set[str]:
    """Modules run by importing ``entries``, following imports transitively."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # a.b.c runs a, a.b and a.b.c
            prefix = ".".join(parts[:k])
            if prefix in modules and prefix not in seen:
                seen.add(prefix)
                todo.extend(imported_names(modules[prefix], prefix))
    return seen


def entry_modules() -> list[str]:
    """The console scripts' modules, and each package's ``__main__`` (what ``python -m PACKAGE`` runs)."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    mains = {name for name in MODULES if name.endswith(".__main__")}
    return sorted({target.split(":")[0] for target in scripts.values()} | mains)


MODULES = module_files(REPO)


@pytest.fixture(scope="module")
def reached() -> set[str]:
    """The modules reachable from the entry points, read once per module's run: not at import,
    where parsing every module (~1.4 s of CPU) was paid by each pytest-xdist worker to collect;
    module-scoped, the tests below run on one worker (tests/conftest.py's xdist_group)."""
    return reachable(entry_modules(), MODULES)


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_production_module_is_reachable_from_the_entry_points(module, reached):
    assert module in reached, (f"{MODULES[module].relative_to(REPO)} is not imported from the entry points "
                               f"{entry_modules()}: only tests use it. Wire it into the product or delete it.")


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("files, expect", [
    pytest.param({"app/__init__.py": "", "app/cli.py": "from app import used\n", "app/used.py": "",
                  "app/orphan.py": ""}, {"app", "app.cli", "app.used"}, id="module-only-tests-import-is-unreached"),
    pytest.param({"app/__init__.py": "", "app/cli.py": "def main():\n    from .sub.deep import f\n",
                  "app/sub/__init__.py": "", "app/sub/deep.py": "from ..used import g\n", "app/used.py": ""},
                 {"app", "app.cli", "app.sub", "app.sub.deep", "app.used"},
                 id="lazy-and-relative-imports-are-followed"),
    pytest.param({"app/__init__.py": "", "app/cli.py": "import app.a.b\n", "app/a/__init__.py": "import app.c\n",
                  "app/a/b.py": "", "app/c.py": ""}, {"app", "app.cli", "app.a", "app.a.b", "app.c"},
                 id="importing-a-submodule-runs-its-packages"),
])
def test_reachability_walk(tmp_path, files, expect):
    _write(tmp_path, files)
    assert reachable(["app.cli"], module_files(tmp_path, ("app",))) == expect
