"""The pod key match of ``PodState.reindex`` (core/health/checks.py ``_matched``) in one compiled loop (numba).

On a cycle where pods came and went (~40% of cycles at 1,000 services: a few new pods among
~8,900) the reference matches the keys through Python: the new keys' ``tolist``, a dict of them
(their uniqueness, and the next match's lookup table) and a lookup of each in the old keys'
dict, ~1.2 ms for 8,900 keys. Here the keys are read as what numpy stores, (P, width) uint32
code points (a string's trailing NULs, numpy's padding, are not part of it: ``tolist`` and ``==``
drop them too), hashed, and matched through an open-addressing table of the new keys: ~0.35 ms,
for any order of the keys (no assumption that the pods kept their order). Same rows as the dict
path, which stays the reference and the path for ``SETPOINT_COMPILED=0``: tests/core/test_pod_keys.py
compares both on named rows and generated insertions, deletions and reorderings of key lists.
"""

from __future__ import annotations

import functools

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.compiled import jit

_MIX = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's multiplier: spreads the sum's high bits to the low ones


@functools.lru_cache(maxsize=8)
def _multipliers(width: int) -> np.ndarray:
    """(width,) odd uint64 multipliers of a key's code points, one per position (fixed: a seeded
    generator; any values give the same match, only the number of hash collisions changes)."""
    seeds = np.random.default_rng(0x5E7901).integers(0, 2 ** 63, max(width, 1), dtype=np.uint64)
    return seeds * np.uint64(2) + np.uint64(1)


def code_points(keys: np.ndarray) -> np.ndarray:
    """(P, width) uint32 view of a (P,) '<U{width}' array (a copy only when not contiguous),
    read-only: one kernel signature for the shells' read-only keys and any others."""
    keys = np.ascontiguousarray(keys)
    codes = keys.view(np.uint32).reshape(keys.shape[0], keys.dtype.itemsize // 4)
    codes.flags.writeable = False
    return codes


@jit
def _hashes(codes, mult):
    """(P,) uint64 hash of each row of the (P, w) code points: a sum of code x multiplier over the
    positions (a NUL adds nothing: the padding of a wider array changes no hash), mixed."""
    n, w = codes.shape
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = np.uint64(0)
        for k in range(w):
            h += np.uint64(codes[i, k]) * mult[k]
        h ^= h >> np.uint64(29)
        h *= _MIX
        h ^= h >> np.uint64(32)
        out[i] = h
    return out


@compiled.jit_inline
def _same_key(a, i, b, j):
    """Row i of the code points ``a`` is row j of ``b`` as strings: equal where both have
    positions, NULs beyond (the wider array's padding)."""
    wa, wb = a.shape[1], b.shape[1]
    m = min(wa, wb)
    for k in range(m):
        if a[i, k] != b[j, k]:
            return False
    for k in range(m, wa):
        if a[i, k] != 0:
            return False
    for k in range(m, wb):
        if b[j, k] != 0:
            return False
    return True


@jit
def _match_kernel(old, new, mult):
    """(P,) int64 row in ``old`` (M, wo) of each key of ``new`` (P, wn) (the first, if twice), -1
    where absent; and False (rows unfinished) when ``new`` holds a key twice."""
    p = new.shape[0]
    size = 8
    while size < 2 * p:  # at most half full: short probe runs
        size *= 2
    mask = np.uint64(size - 1)
    slot_row = np.full(size, -1, np.int64)
    slot_hash = np.zeros(size, np.uint64)  # beside the row: a probe reads no key of another hash
    hashes = _hashes(new, mult)
    rows = np.full(p, -1, np.int64)
    for i in range(p):
        h = hashes[i]
        s = h & mask
        while slot_row[s] >= 0:
            if slot_hash[s] == h and _same_key(new, slot_row[s], new, i):
                return rows, False
            s = (s + np.uint64(1)) & mask
        slot_row[s], slot_hash[s] = i, h
    old_hashes = _hashes(old, mult)
    for j in range(old.shape[0]):
        h = old_hashes[j]
        s = h & mask
        while slot_row[s] >= 0:
            q = slot_row[s]
            if slot_hash[s] == h and _same_key(new, q, old, j):
                if rows[q] < 0:  # an old key twice: its first row
                    rows[q] = j
                break
            s = (s + np.uint64(1)) & mask
    return rows, True


def try_match_keys(old: np.ndarray, new: np.ndarray) -> np.ndarray | None:
    """``checks.match_keys(old, new)`` of two '<U' arrays: (P,) int64 row in ``old`` of each new
    key (of the first, if twice), -1 where absent. None when the kernels are off, or when ``new``
    holds a key twice (the reference raises, saying how many)."""
    if not compiled.enabled():
        return None
    old_codes, new_codes = code_points(old), code_points(new)
    try:
        rows, unique = _match_kernel(old_codes, new_codes, _multipliers(max(old_codes.shape[1], new_codes.shape[1])))
    except compiled.KERNEL_ERRORS as exc:
        compiled.mark_broken(exc)
        return None
    return rows if unique else None


def warm() -> None:
    """Load the kernel with the argument types a run passes (the first cycle where pods change)."""
    keys = np.asarray(["a/b"], dtype=str)
    try_match_keys(keys, keys)
