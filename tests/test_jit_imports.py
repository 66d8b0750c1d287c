"""No module imports a compiled kernel by name from another module.

Kernels are plain functions until numba loads (controller/core/scaling/compiled.py ``jit``
replaces each module global by its dispatcher then). A name bound by ``from M import kernel``
keeps the plain function: a kernel compiled against it captures the numpy fallback instead of the
shared kernel. Shared kernels must be used as module attributes (``compiled.nan_max``). This scans
every module under controller/ and simulators/ (AST only, nothing imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "simulators")
SWITCH = "controller.core.scaling.compiled"  # defines the decorators that mark a kernel
DECORATORS = frozenset({"jit", "jit_inline"})  # a kernel; a kernel inlined into its callers


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of ``from [.]*X import ...`` written in ``module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _jit_aliases(module: str, is_package: bool, tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names the switch's decorator has in ``module`` (``jit``), and names of the switch module
    itself (``compiled``), so ``@jit`` and ``@compiled.jit`` are both recognised."""
    names, modules = (set(DECORATORS) if module == SWITCH else set()), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            for alias in node.names:
                if source == SWITCH and alias.name in DECORATORS:
                    names.add(alias.asname or alias.name)
                elif f"{source}.{alias.name}" == SWITCH:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == SWITCH and alias.asname:
                    modules.add(alias.asname)
    return names, modules


def _is_jit(decorator: ast.expr, names: set[str], modules: set[str]) -> bool:
    if isinstance(decorator, ast.Call):  # @jit(...) should it ever take options
        decorator = decorator.func
    if isinstance(decorator, ast.Name):
        return decorator.id in names
    return (isinstance(decorator, ast.Attribute) and decorator.attr in DECORATORS
            and (isinstance(decorator.value, ast.Name) and decorator.value.id in modules
                 or ast.unparse(decorator.value) == SWITCH))


Sources = dict[str, tuple[str, bool]]  # module -> (its text, is a package)


def kernels_and_imports(sources: Sources) -> tuple[dict[str, set[str]], list[tuple[str, int, str, str]]]:
    """The kernels of each module (functions decorated with the switch's ``jit``), and every
    ``from M import name`` as (module, line, M, name)."""
    kernels: dict[str, set[str]] = {}
    imports = []
    for module, (text, is_package) in sources.items():
        tree = ast.parse(text)
        names, modules = _jit_aliases(module, is_package, tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    _is_jit(d, names, modules) for d in node.decorator_list):
                kernels.setdefault(module, set()).add(node.name)
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, is_package, node)
                imports += [(module, node.lineno, source, alias.name) for alias in node.names]
    return kernels, imports


def by_name_imports(sources: Sources) -> list[str]:
    """``FILE:LINE: from M import KERNEL`` for every kernel imported by name from another module."""
    kernels, imports = kernels_and_imports(sources)
    return [f"{module}:{line}: from {source} import {name} (use {source.rsplit('.', 1)[-1]}.{name})"
            for module, line, source, name in imports if name in kernels.get(source, set()) and module != source]


def package_sources() -> Sources:
    return {module_name(p, REPO): (p.read_text(encoding="utf-8"), p.name == "__init__.py")
            for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


SWITCH_TEXT = """\
def jit(func):
    return func

@jit
def nan_max(a, b):
    return a

def jit_inline(func):
    return func

@jit_inline
def within(a, b):
    return a

def enabled():
    return True
"""
KERNELS_TEXT = """\
from controller.core.scaling.compiled import jit
from controller.core.scaling import compiled

@jit
def step(x):
    return compiled.nan_max(x, 0.0)
"""


@pytest.mark.parametrize("user, text, caught", [
    pytest.param("controller.core.scaling.user", "from controller.core.scaling.compiled import nan_max\n",
                 ["controller.core.scaling.user:1: from controller.core.scaling.compiled import nan_max "
                  "(use compiled.nan_max)"], id="by-name-import-is-caught"),
    pytest.param("controller.core.scaling.user", "from .compiled import enabled, nan_max as m\n",
                 ["controller.core.scaling.user:1: from controller.core.scaling.compiled import nan_max "
                  "(use compiled.nan_max)"], id="relative-aliased-import-is-caught"),
    pytest.param("simulators.user", "def f():\n    from simulators.kernels import step\n    return step\n",
                 ["simulators.user:2: from simulators.kernels import step (use kernels.step)"],
                 id="import-inside-a-function-of-a-kernel-marked-through-the-jit-import-is-caught"),
    pytest.param("controller.core.scaling.user", "from controller.core.scaling.compiled import within\n",
                 ["controller.core.scaling.user:1: from controller.core.scaling.compiled import within "
                  "(use compiled.within)"], id="by-name-import-of-an-inlined-kernel-is-caught"),
    pytest.param("simulators.user", "from controller.core.scaling import compiled\nx = compiled.nan_max\n", [],
                 id="module-attribute-is-allowed"),
    pytest.param("simulators.user", "from controller.core.scaling.compiled import jit, jit_inline, enabled\n", [],
                 id="the-decorator-and-plain-functions-are-allowed"),
])
def test_a_kernel_imported_by_name_is_caught(user, text, caught):
    sources = {SWITCH: (SWITCH_TEXT, False), "simulators.kernels": (KERNELS_TEXT, False), user: (text, False)}
    assert by_name_imports(sources) == caught


def test_the_scan_finds_the_packages_kernels():
    kernels, _ = kernels_and_imports(package_sources())
    assert {"nan_max", "nan_min", "within"} <= kernels[SWITCH]
    assert len(kernels) >= 4 and sum(map(len, kernels.values())) >= 10  # compiled, fused, hpa_compiled, engine


def test_no_module_imports_a_kernel_by_name():
    assert by_name_imports(package_sources()) == []
