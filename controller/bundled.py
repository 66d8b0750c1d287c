"""Files that ship with Setpoint, found the same way in a source checkout, an editable install
and an installed wheel (never next to ``site-packages``).

The repository's top-level ``policies/`` folder (example policies and the JSON Schema) is
installed as the data-only package ``setpoint_policies`` (see ``[tool.setuptools.package-dir]``
in pyproject.toml: a distinctive name, because a top-level ``policies`` package could clash
with another distribution or with a user's own ``policies/`` folder). The scenarios are
package data of ``simulators`` (``simulators/scenarios/``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

POLICY_PACKAGE = "setpoint_policies"


def package_path(package: str, *parts: str) -> Path:
    """A file or folder of package data as a filesystem path (Setpoint is not run from a zip)."""
    found = resources.files(package).joinpath(*parts)
    if not isinstance(found, Path):
        raise RuntimeError(f"{package}: package data must be installed as files, found {found!r}")
    return found


def source_checkout() -> Path | None:
    """The repository root when ``controller`` is imported from a source checkout, else None."""
    root = package_path("controller").parent
    return root if (root / "pyproject.toml").is_file() and (root / "policies").is_dir() else None


def bundled_policy_names() -> list[str]:
    """The example policies that ship with Setpoint (``setpoint-default.yaml``, ...), sorted."""
    return sorted(p.name for p in bundled_policy("").iterdir() if p.suffix in (".yaml", ".yml"))


def bundled_policy(name: str) -> Path:
    """A file of ``policies/`` (e.g. ``hpa-cpu.yaml``): the checkout's when running from one (so
    the data matches the code), else the installed ``setpoint_policies``'s."""
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "policies" / name
    try:
        return package_path(POLICY_PACKAGE, name)
    except ModuleNotFoundError:
        raise RuntimeError(f"the bundled policies ({POLICY_PACKAGE}) are not installed; reinstall setpoint") from None
