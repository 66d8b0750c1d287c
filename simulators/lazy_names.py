"""Per-pod strings made on access, for the simulator's fast pod listings.

The simulated cluster lists every pod of every target each control cycle (the ``hpa`` preset
reads per-pod samples); the controller joins those samples to pods by integer uid and needs a
pod's name only for an error message or a record. Building thousands of names per cycle was
most of a simulation's time, so listings carry these sequences instead of tuples of strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


class LazyStrings(Sequence):
    """An immutable sequence of ``size`` strings; item ``j`` is ``make(j)``, made when read
    (and kept). Equal to any sequence with the same items."""

    def __init__(self, make: Callable[[int], str], size: int):
        self._make, self._size = make, int(size)
        self._made: dict[int, str] = {}

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, j):
        if isinstance(j, slice):
            return tuple(self[k] for k in range(*j.indices(self._size)))
        j = int(j)
        if j < 0:
            j += self._size
        if not 0 <= j < self._size:
            raise IndexError(j)
        if j not in self._made:
            self._made[j] = self._make(j)
        return self._made[j]

    def take(self, rows: np.ndarray) -> "LazyStrings":
        """The items at ``rows`` (an index array), still made on access."""
        rows = np.asarray(rows, dtype=np.int64)
        return LazyStrings(lambda j: self[int(rows[j])], rows.size)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LazyStrings({self._size} items)"

