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
  what the whole run draws;
- many streams' first draws can be made at once (:func:`noise_block_normals`: numpy's
  seeding computed for all of them, one Generator), the same numbers as each stream's own.

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
    POD_HANG = 7     # engine, per service: pod-hang victims


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
    return sequence(root, Purpose.NOISE_BLOCK, _zigzag(block))


def _zigzag(block: int) -> int:
    """A block index (negative before the start) as the key word >= 0 its stream is named by."""
    return 2 * block if block >= 0 else -2 * block - 1


# --------------------------------------------------------------------------- many streams at once
# numpy's SeedSequence (numpy/random/bit_generator.pyx; its output is fixed by numpy's stream
# compatibility policy) and PCG64's seeding (pcg64.c), computed for many streams at once: a
# SeedSequence and a Generator made per stream cost more than the 1,024 normals drawn from it
# (the first load chunk of 1,000 services, which draws the block: 39 ms CPU, 24 ms this way,
# December 5). tests/simulators/test_streams.py checks every step against numpy's own.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = 0xCA01F9DD, 0x4973F715
_POOL_SIZE = 4
_PCG_MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341
_MASK128 = (1 << 128) - 1


def _words(n: int) -> list[int]:
    """The 32-bit words of an int >= 0, low first (at least one), as SeedSequence reads it."""
    out = [n & (_WORD - 1)]
    n >>= 32
    while n:
        out.append(n & (_WORD - 1))
        n >>= 32
    return out


def assembled_entropy(root: int | np.random.SeedSequence, words: tuple[int, ...]) -> list[int] | None:
    """The uint32 words SeedSequence mixes for the stream ``words`` (a spawn key's tail) under
    ``root``; None for a root this does not reproduce (entropy not one int, another pool size)."""
    if isinstance(root, np.random.SeedSequence):
        entropy, key, pool = root.entropy, tuple(root.spawn_key) + words, root.pool_size
    else:
        entropy, key, pool = root, words, _POOL_SIZE
    if not isinstance(entropy, (int, np.integer)) or entropy < 0 or pool != _POOL_SIZE:
        return None
    run = _words(int(entropy))
    run += [0] * (_POOL_SIZE - len(run))  # a spawn key follows: run entropy padded to the pool
    return run + [w for k in key for w in _words(int(k))]


def _hashmix(value: np.ndarray, const: list[int]) -> np.ndarray:
    """SeedSequence's hashmix of (N,) uint32 ``value``; ``const`` [hash constant], advanced."""
    value = value ^ np.uint32(const[0])
    const[0] = (const[0] * _MULT_A) & (_WORD - 1)
    value *= np.uint32(const[0])
    return value ^ (value >> np.uint32(16))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    result = np.uint32(_MIX_MULT_L) * x - np.uint32(_MIX_MULT_R) * y
    return result ^ (result >> np.uint32(16))


def pools(entropy: np.ndarray) -> np.ndarray:
    """(N, 4) uint32: the ``pool`` of SeedSequences whose assembled entropy is each row of
    ``entropy`` (N, L) uint32 (:func:`assembled_entropy`, L >= 4)."""
    const = [_INIT_A]
    mixer = [_hashmix(entropy[:, i], const) for i in range(_POOL_SIZE)]
    for src in range(_POOL_SIZE):
        for dst in range(_POOL_SIZE):
            if src != dst:
                mixer[dst] = _mix(mixer[dst], _hashmix(mixer[src], const))
    for src in range(_POOL_SIZE, entropy.shape[1]):
        for dst in range(_POOL_SIZE):
            mixer[dst] = _mix(mixer[dst], _hashmix(entropy[:, src], const))
    return np.stack(mixer, axis=1)


def generate_states(pool: np.ndarray, n_words32: int) -> np.ndarray:
    """(N, n_words32) uint32: ``SeedSequence.generate_state(n_words32)`` of each pool row."""
    const, out = _INIT_B, np.empty((pool.shape[0], n_words32), dtype=np.uint32)
    for i in range(n_words32):
        value = pool[:, i % _POOL_SIZE] ^ np.uint32(const)
        const = (const * _MULT_B) & (_WORD - 1)
        value *= np.uint32(const)
        out[:, i] = value ^ (value >> np.uint32(16))
    return out


def pcg64_state(words: list[int]) -> dict:
    """PCG64's ``state`` after seeding with the eight uint32 words of ``generate_state(4, uint64)``
    (low word first in each uint64): pcg64_set_seed, in Python ints (128-bit arithmetic)."""
    u = [words[2 * i] | (words[2 * i + 1] << 32) for i in range(4)]
    initstate, initseq = (u[0] << 64) | u[1], (u[2] << 64) | u[3]
    inc = ((initseq << 1) | 1) & _MASK128
    state = inc  # srandom_r: state 0, one step (0 * multiplier + inc)
    state = (((state + initstate) & _MASK128) * _PCG_MULTIPLIER + inc) & _MASK128
    return {"bit_generator": "PCG64", "state": {"state": state, "inc": inc}, "has_uint32": 0, "uinteger": 0}


def normals(roots: list[int | np.random.SeedSequence], words: tuple[int, ...], n: int) -> np.ndarray | None:
    """(N, n) float64: row j is ``default_rng(SeedSequence of (roots[j], words)).standard_normal(n)``
    (``words`` the tail of each stream's key, as :func:`sequence` makes it), bit for bit, with one
    Generator and the seeding of all N streams in a few numpy calls. None when a root is not
    reproduced here (:func:`assembled_entropy`) or the roots' keys differ in length."""
    entropy = _shared_entropy(roots, words)
    if entropy is None:
        rows = [assembled_entropy(root, words) for root in roots]
        if not rows or any(e is None or len(e) != len(rows[0]) for e in rows):
            return None
        entropy = np.array(rows, dtype=np.uint32)
    states = generate_states(pools(entropy), 8).tolist()
    rng = np.random.Generator(np.random.PCG64())
    out = np.empty((len(roots), n))
    for j, w in enumerate(states):
        rng.bit_generator.state = pcg64_state(w)
        rng.standard_normal(out=out[j])
    return out


def _shared_entropy(roots: list, words: tuple[int, ...]) -> np.ndarray | None:
    """(N, L) uint32 :func:`assembled_entropy` of roots that are streams of one seed with keys of
    one length (a scenario's load terms), built as one matrix; None otherwise (row by row)."""
    if not roots or not all(type(r) is np.random.SeedSequence for r in roots):
        return None
    entropy, pool = roots[0].entropy, roots[0].pool_size
    if any(type(r.entropy) is not int or r.entropy != entropy or r.pool_size != pool for r in roots):
        return None  # (an entropy may be a list or an array: each root's own words then)
    try:
        keys = np.array([r.spawn_key for r in roots], dtype=np.int64)
    except (ValueError, OverflowError):  # keys of different lengths, or a word past 63 bits
        return None
    if keys.ndim != 2 or keys.size == 0 or keys.min() < 0 or keys.max() >= _WORD:
        return None  # a key element of several words (SeedSequence allows it, sequence() does not)
    head = assembled_entropy(roots[0], words)
    if head is None:
        return None
    run = np.array(head[:len(head) - keys.shape[1] - len(words)], dtype=np.uint32)
    return np.hstack([np.broadcast_to(run, (len(roots), run.size)), keys.astype(np.uint32),
                      np.broadcast_to(np.array(words, dtype=np.uint32), (len(roots), len(words)))])


def noise_block_normals(roots: list[int | np.random.SeedSequence], block: int, n: int) -> np.ndarray | None:
    """(N, n): the first ``n`` normals of each root's :func:`noise_block` ``block`` (see :func:`normals`)."""
    zigzag = _zigzag(block)
    if zigzag >= _WORD:  # sequence() refuses it
        return None
    return normals(roots, (int(Purpose.NOISE_BLOCK), zigzag), n)


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
    victims). ``pod_crash(service)``, ``pod_hang(service)``: the service's own generators of
    pod-crash and pod-hang victims.
    """

    salt: int
    cluster: np.random.Generator
    pod_crash: ServiceStreams
    pod_hang: ServiceStreams


def engine_streams(rng: np.random.Generator | int) -> EngineStreams:
    """The streams of an engine built with ``rng`` (a seed or a Generator, see :func:`root_of`)."""
    root = root_of(rng)
    salt = int(generator(root, Purpose.NAMING).integers(2**31))
    return EngineStreams(salt, generator(root, Purpose.CLUSTER), ServiceStreams(root, Purpose.POD_CRASH),
                         ServiceStreams(root, Purpose.POD_HANG))
