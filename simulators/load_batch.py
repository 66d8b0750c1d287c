"""One load shape per service, evaluated a group of services at a time (the same numbers).

``offered_matrix`` with one shape per service called every shape on the chunk's times: for
1,000 services with a diurnal base and noise, thousands of small numpy calls and 1,000 fresh
noise generators per chunk (a fifth of a simulation's time). Here services whose shapes have
the same tree (:class:`Sum` / :class:`Product` of the same leaf kinds; noise terms with the same
sigma and interval) are evaluated together, as (T, G) arrays:

- a leaf equal across the group (``count: 1000`` services with one diurnal) is evaluated once,
  distinct leaves once each; their (T,) results become the group's columns;
- the group's noise terms interpolate and exponentiate their knots in one (T, G) operation;
  the knots are each term's own stream (:meth:`Noise.block`), drawn once per 1,024-knot
  block for all terms at once (:func:`simulators.streams.noise_block_normals`: the streams
  seeded in a few numpy calls, one Generator) and kept by the group as one (1024, G) matrix
  while chunks use it;
- sums and products combine the columns elementwise, in the order of the tree.

Every element goes through the same floating-point operations as the per-service call, so the
matrix is the same bit for bit (tests/simulators/test_load_batch.py). Anything else (parameters
that are arrays, several noise series per term, a shape kind not listed here) is evaluated one
service at a time, as before.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from simulators import load as L
from simulators import load_compiled, streams


class _PerService(Exception):
    """A shape this module does not batch: evaluate every service on its own."""


class ShapeBatch:
    """One shape per service, grouped once (the plan), then evaluated on any times.

    ``ShapeBatch(shapes)(t)`` is ``np.stack([s(t) for s in shapes], axis=1)`` (column 0 of a
    2-D result), unclipped, bit for bit."""

    def __init__(self, shapes: Sequence[L.Shape]):
        self.shapes = list(shapes)
        self._groups: list[tuple[list[int], _Node]] | None = None
        try:
            groups: dict[tuple, list[int]] = {}
            for i, shape in enumerate(self.shapes):
                groups.setdefault(_signature(shape), []).append(i)
            self._groups = [(members, _plan([self.shapes[i] for i in members])) for members in groups.values()]
        except _PerService:
            self._groups = None

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """(T, S) float64 for (T,) float64 times ``t`` (epoch s)."""
        return self.evaluate(t)[0]

    def evaluate(self, t: np.ndarray) -> tuple[np.ndarray, bool]:
        """(the (T, S) of :meth:`__call__`, whether it is a new array the caller may overwrite)."""
        if self._groups is not None:
            try:
                if len(self._groups) == 1:  # every service alike (count: N): no copy
                    node = self._groups[0][1]
                    block = node(t)
                    if block.shape[1] == len(self.shapes):
                        return block, node.fresh
                    return np.repeat(block, len(self.shapes), axis=1), True
                out = np.empty((t.size, len(self.shapes)))
                for members, node in self._groups:
                    out[:, members] = node(t)  # broadcasts a (T, 1) block
                return out, True
            except _PerService:
                self._groups = None
        cols = [np.asarray(s(t), dtype=np.float64) for s in self.shapes]
        return np.stack([c if c.ndim == 1 else c[:, 0] for c in cols], axis=1), True


def _signature(shape: L.Shape) -> tuple:
    """What must be equal for shapes to be evaluated together: the tree, the leaf kinds, and
    each noise term's sigma and interval (they enter the formula as scalars)."""
    if isinstance(shape, (L.Sum, L.Product)):
        return (type(shape), tuple(_signature(s) for s in shape.shapes))
    if isinstance(shape, L.Noise):
        if shape.n_series is not None:
            raise _PerService
        return (L.Noise, _exact(shape.sigma_ratio), _exact(shape.interval_s))
    return (type(shape),)


def _exact(value):
    """A key equal only for values that compute alike: floats by their bits (0.0 vs -0.0)."""
    if type(value) is float:  # most parameters: one check instead of three (1,000 services: ~6,000 calls)
        return value.hex()
    if isinstance(value, (float, np.floating)):
        return float(value).hex()
    if isinstance(value, np.ndarray):
        raise TypeError("array parameter")
    return value


class _Node:
    """A node of a group's plan: ``node(t)`` is (T, G), or (T, 1) when every member agrees;
    ``fresh``: it is a new array, which the node's caller may compute into."""

    fresh = False

    def __call__(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class _Combine(_Node):
    """The parts combined left to right by ``op`` (np.add or np.multiply), into a fresh part's
    array where it has the result's shape (IEEE addition and multiplication are commutative:
    the same bits as a new array) instead of a new (T, G) array per operation."""

    def __init__(self, op, parts: list[_Node]):
        self.op, self.parts = op, parts
        self.fresh = len(parts) > 1 or parts[0].fresh

    def __call__(self, t):
        first = self.parts[0]
        acc, fresh = first(t), first.fresh
        for part in self.parts[1:]:
            value = part(t)
            shape = np.broadcast_shapes(acc.shape, value.shape)
            if fresh and acc.shape == shape:
                acc = self.op(acc, value, out=acc)
            elif part.fresh and value.shape == shape:
                acc = self.op(acc, value, out=value)
            else:
                acc = self.op(acc, value)
            fresh = True
        return acc


class _Leaves(_Node):
    """Deterministic leaves: each distinct one evaluated once; ``column`` maps members to them."""

    def __init__(self, distinct: list[L.Shape], column: list[int] | None):
        self.distinct, self.column = distinct, column

    def __call__(self, t):
        values = []
        for s in self.distinct:
            v = np.asarray(s(t), dtype=np.float64)
            if v.shape != t.shape:  # parameters with a service axis of their own
                raise _PerService
            values.append(v)
        if len(values) == 1:
            return values[0][:, None]
        stacked = np.stack(values, axis=1)
        return stacked if self.column is None else stacked[:, self.column]


class _Noises(_Node):
    """``Noise.__call__`` of terms with one sigma and interval, a column per term. The group
    keeps its last knot block as one (BLOCK, G) matrix: a block spans many chunks."""

    fresh = True  # np.exp into the gathered knots

    def __init__(self, terms: list[L.Noise]):
        self.terms = terms
        self._kept: tuple[int, np.ndarray] | None = None

    def _block(self, b: int) -> np.ndarray:
        if self._kept is None or self._kept[0] != b:
            z = streams.noise_block_normals([n.seed for n in self.terms], b, L.Noise.BLOCK)  # all streams at once
            # (G, BLOCK) -> (BLOCK, G) once: each chunk gathers whole rows of knots
            z = np.concatenate([n.block(b) for n in self.terms], axis=1) if z is None else np.ascontiguousarray(z.T)
            self._kept = (b, z)
        return self._kept[1]

    def _knots(self, first: int, last: int) -> np.ndarray:
        """(last - first + 1, G) knots, as ``Noise.knots`` of each term side by side."""
        blocks = range(first // L.Noise.BLOCK, last // L.Noise.BLOCK + 1)
        z = np.concatenate([self._block(b) for b in blocks]) if len(blocks) > 1 else self._block(blocks[0])
        offset = first - blocks[0] * L.Noise.BLOCK
        return z[offset:offset + last - first + 1]

    def __call__(self, t):
        sigma = self.terms[0].sigma_ratio
        pos = t / self.terms[0].interval_s
        idx = np.floor(pos).astype(np.int64)
        if idx.size == 0:
            return np.ones((0, len(self.terms)))
        lo, hi = int(idx.min()), int(idx.max()) + 1
        z = self._knots(lo, hi)
        i = idx - lo
        fast = load_compiled.noise_exponent(z, i, pos - idx, sigma, 0.5 * sigma**2)
        if fast is not None:  # the exponent in one compiled pass, the same bits
            return np.exp(fast, out=fast)
        frac = (pos - idx)[..., None]
        # Noise.__call__'s formula, in place: the same operations on every element
        zt = z[i]
        zt *= 1.0 - frac
        upper = z[i + 1]
        upper *= frac
        zt += upper
        zt *= sigma
        zt -= 0.5 * sigma**2
        return np.exp(zt, out=zt)


def _plan(shapes: list[L.Shape]) -> _Node:
    """The plan of shapes of one signature."""
    first = shapes[0]
    if isinstance(first, (L.Sum, L.Product)):
        op = np.add if isinstance(first, L.Sum) else np.multiply
        return _Combine(op, [_plan([s.shapes[k] for s in shapes]) for k in range(len(first.shapes))])
    if isinstance(first, L.Noise):
        return _Noises(shapes)
    return _leaves(shapes)


def _leaves(shapes: list[L.Shape]) -> _Leaves:
    try:
        index: dict[tuple, int] = {}
        column = [index.setdefault(_leaf_key(s), len(index)) for s in shapes]
    except TypeError:  # unhashable parameters: one call each
        return _Leaves(shapes, None)
    firsts = {}
    for s, k in zip(shapes, column):
        firsts.setdefault(k, s)
    distinct = [firsts[k] for k in range(len(firsts))]
    return _Leaves(distinct, None if len(distinct) == len(shapes) else column)


def _leaf_key(shape: L.Shape) -> tuple:
    """Equal for leaves that compute the same numbers: same class, same field values (floats
    by their bits); a shape that is not a dataclass is only equal to itself."""
    names = _FIELD_NAMES.get(type(shape))
    if names is None:
        if not dataclasses.is_dataclass(shape):
            return (id(shape),)
        names = _FIELD_NAMES[type(shape)] = tuple(f.name for f in dataclasses.fields(shape))
    return (type(shape),) + tuple(_exact(getattr(shape, name)) for name in names)


#: Field names of each leaf dataclass, looked up once per class, not once per service.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
