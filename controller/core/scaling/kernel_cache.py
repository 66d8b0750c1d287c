"""numba's disk cache for the kernels, keyed also on what a kernel compiles in from other modules.

numba keys a cached kernel on its own bytecode and its own file's time stamp. A kernel that
inlines or calls a jitted helper of another module (``compiled.nan_max``, ``min_step``, ...), or
freezes another module's constant, kept its old machine code after that helper changed: wrong
numbers until the cache files were deleted. :func:`enable` gives a dispatcher numba's own
``FunctionCache`` whose index key also carries :func:`fingerprint`: the bytecode and constants of
every jitted function the kernel reaches (through its module's globals or a module's attributes,
transitively) and the values of the global constants they read. Where the cache lives stays
numba's choice (``NUMBA_CACHE_DIR``, else next to the source, else the user cache directory when
the install is read-only). Only in-memory code objects are read: no source file is opened.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import types
import warnings

import numpy as np


def enable(dispatcher) -> None:
    """Cache ``dispatcher`` (a ``numba.njit`` dispatcher made without ``cache=True``) on disk, as
    ``cache=True`` does but keyed on :func:`fingerprint` too. Raises numba's RuntimeError when no
    cache directory is writable."""
    dispatcher._cache = _cache_class()(dispatcher.py_func)  # what Dispatcher.enable_caching() sets


@functools.cache
def _cache_class() -> type:
    from numba.core.caching import FunctionCache  # noqa: PLC0415 (numba loads only when the kernels are needed)

    class DependencyCache(FunctionCache):
        """numba's per-function cache whose index key ends with the kernel's :func:`fingerprint`
        (computed at the first load or save, when every helper module is imported)."""

        _fingerprint: str | None = None

        def _index_key(self, sig, codegen):
            if self._fingerprint is None:
                self._fingerprint = fingerprint(self._py_func)
            return (*super()._index_key(sig, codegen), self._fingerprint)

    return DependencyCache


def fingerprint(func: types.FunctionType) -> str:
    """sha256 (hex) of what ``func`` compiles in: its code and that of the jitted functions it
    reaches, and the global constants they read (numbers, strings, enums, tuples, arrays)."""
    digest = hashlib.sha256()
    _function(func, digest, set())
    return digest.hexdigest()


def _function(func, digest, seen: set[int]) -> None:
    if id(func) in seen:
        return
    seen.add(id(func))
    digest.update(f"\0def {func.__module__}.{func.__qualname__}".encode())
    names: set[str] = set()
    _code(func.__code__, digest, names)
    digest.update(f"\0defaults {_constant(func.__defaults__)}".encode())
    namespace = func.__globals__
    for name in sorted(names):
        if name in namespace:
            _global(name, namespace[name], names, digest, seen)


def _code(code: types.CodeType, digest, names: set[str]) -> None:
    """Bytecode, constants and the global or attribute names read, nested functions included."""
    digest.update(code.co_code)
    names.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code(const, digest, names)
        else:
            digest.update(f"\0const {_constant(const)}".encode())


def _global(name: str, value, names: set[str], digest, seen: set[int]) -> None:
    if isinstance(value, types.ModuleType):  # module.attribute: the attribute names the code reads
        for attr in sorted(names):
            with warnings.catch_warnings():  # a module's __getattr__ may warn (deprecated names)
                warnings.simplefilter("ignore")
                member = getattr(value, attr, None)
            if member is not None and not isinstance(member, types.ModuleType):
                _member(f"{value.__name__}.{attr}", member, digest, seen)
    else:
        _member(name, value, digest, seen)


def _member(name: str, value, digest, seen: set[int]) -> None:
    py_func = getattr(value, "py_func", None)  # a numba dispatcher: its Python function
    if isinstance(py_func, types.FunctionType):
        _function(py_func, digest, seen)
        return
    const = _constant(value)
    if const is not None:
        digest.update(f"\0{name}={const}".encode())


def _constant(value) -> str | None:
    """A stable text for a value numba would freeze as a compile-time constant; None otherwise."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}={value.value!r}"
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return repr(value)
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {value.shape} {hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(_constant(v)) for v in value) + ")"
    if isinstance(value, frozenset):  # set order depends on the hash seed
        return "frozenset(" + ", ".join(sorted(str(_constant(v)) for v in value)) + ")"
    return None
