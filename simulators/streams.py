"""The random streams of a simulation: one per purpose and, where a draw belongs to a service,
one per (purpose, service), all derived from the scenario's seed.

A stream is ``numpy.random.SeedSequence(entropy=seed, spawn_key=(purpose, *key))``: what
``SeedSequence(seed).spawn`` produces, but addressed by name instead of by spawn order, so

- distinct (seed, purpose, key) never share a stream (the old ``seed * 1000 + i`` gave service
  ``i + 1000`` under seed ``s`` the stream of service ``i`` under seed ``s + 1``);
- a service's streams are keyed by its name (:func:`service_key`), not its position: adding,
  removing or reordering other services leaves them unchanged;
- a stream can be addressed directly at any depth (a noise term's 1,024-knot block ``b`` is
  :func:`sequence` ``(term, NOISE_BLOCK, b)``), so load generated in chunks draws exactly
  what the whole run draws.

Every key word is below 2**32: SeedSequence concatenates the 32-bit words of its key's
elements, so ``(1, 2**32)`` and ``(1, 0, 1)`` would be one stream.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import numpy as np

_WORD = 2**32


class Purpose(enum.IntEnum):
    """The first key word of every stream; never renumber (it would change every trajectory)."""

    LOAD_TERM = 1    # per service and load term (key: service_key, term index): a noise term
    NOISE_BLOCK = 2  # child of a noise term (key: block index, zigzag): 1,024 knots
    NAMING = 3       # engine: the salt of pod and revision names
    CLUSTER = 4      # engine, cluster-wide: node-loss victims (a choice across services)
    POD_CRASH = 5    # engine, per service: pod-crash victims
    POD_SAMPLES = 6  # SimMetrics, per service: per-pod request counts, errors and p95 noise


def service_key(name: str) -> tuple[int, int]:
    """Two 32-bit words of a stable 64-bit hash of a service name (Python's hash() is salted)."""
    h = int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big")
    return h >> 32, h & (_WORD - 1)


def sequence(root: int | np.random.SeedSequence, purpose: Purpose, *key: int) -> np.random.SeedSequence:
    """The stream ``(purpose, *key)`` under ``root``: a seed (int >= 0) or a parent stream."""
    words = (int(purpose), *(int(k) for k in key))
    if any(not 0 <= w < _WORD for w in words):
        raise ValueError(f"stream key words must be in [0, 2**32), got {words}")
    if isinstance(root, np.random.SeedSequence):
        return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + words, pool_size=root.pool_size)
    return np.random.SeedSequence(int(root), spawn_key=words)


def generator(root: int | np.random.SeedSequence, purpose: Purpose, *key: int) -> np.random.Generator:
    """A fresh generator on the stream ``(purpose, *key)`` under ``root``."""
    return np.random.default_rng(sequence(root, purpose, *key))


def service_generator(root: int | np.random.SeedSequence, purpose: Purpose, service: str) -> np.random.Generator:
    """A fresh generator on ``purpose``'s stream of the service named ``service``."""
    return generator(root, purpose, *service_key(service))


def load_term(seed: int, service: str, term: int) -> np.random.SeedSequence:
    """The stream of a service's ``term``-th load term (only noise terms draw)."""
    return sequence(seed, Purpose.LOAD_TERM, *service_key(service), term)


def noise_block(root: int | np.random.SeedSequence, block: int) -> np.random.SeedSequence:
    """The stream of a noise term's ``block``-th knot block; negative blocks (times before 0)
    are zigzag-encoded (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...)."""
    return sequence(root, Purpose.NOISE_BLOCK, 2 * block if block >= 0 else -2 * block - 1)


def root_of(rng: np.random.Generator | int) -> np.random.SeedSequence:
    """The root stream of an engine given a seed or a Generator (its seed sequence: the
    generator's state is not drawn from, so ``7`` and ``default_rng(7)`` give one cluster)."""
    if isinstance(rng, (int, np.integer)):
        return np.random.SeedSequence(int(rng))
    seq = getattr(rng.bit_generator, "seed_seq", None)
    if isinstance(seq, np.random.SeedSequence):
        return seq
    return np.random.SeedSequence(int(rng.integers(2**63)))  # a bit generator seeded without one


class ServiceStreams:
    """One purpose's generators, one per service (by name), each made on first use, then kept."""

    def __init__(self, root: int | np.random.SeedSequence, purpose: Purpose):
        self.root, self.purpose = root, purpose
        self._generators: dict[str, np.random.Generator] = {}

    def __call__(self, service: str) -> np.random.Generator:
        rng = self._generators.get(service)
        if rng is None:
            rng = self._generators[service] = service_generator(self.root, self.purpose, service)
        return rng


@dataclass(frozen=True)
class EngineStreams:
    """The draws of one simulated cluster; SimCluster and the reference engine draw alike.

    ``salt``: of pod and revision names. ``cluster``: cluster-wide choices (node-loss
    victims). ``pod_crash(service)``: the service's own generator of pod-crash victims.
    """

    salt: int
    cluster: np.random.Generator
    pod_crash: ServiceStreams


def engine_streams(rng: np.random.Generator | int) -> EngineStreams:
    """The streams of an engine built with ``rng`` (a seed or a Generator, see :func:`root_of`)."""
    root = root_of(rng)
    salt = int(generator(root, Purpose.NAMING).integers(2**31))
    return EngineStreams(salt, generator(root, Purpose.CLUSTER), ServiceStreams(root, Purpose.POD_CRASH))
