"""Offered load: synthetic shapes and replay of real traces, evaluated over arrays of times.

A :class:`Shape` maps simulation times ``t`` (epoch seconds, shape ``(T,)``) to offered load in
requests/s. Parameters may be scalars (result ``(T,)``) or ``(S,)`` arrays, one value per
service (result ``(T, S)``). Shapes compose: ``a + b`` sums them, ``a * b`` multiplies them
(``Noise`` is meant to multiply), and numbers act as constants: ``Diurnal(100) * 1.5 + 10``.

Use :func:`offered_matrix` to turn one shape per service (or one shape for all) into the
``(T, S)`` matrix a simulation runs on.

Traces: CSV files ``timestamp,value`` with ISO-8601 UTC timestamps (``...Z``), one row per
interval, values are totals per interval (requests per minute, per 5 minutes ...).
:class:`TraceReplay` divides by the interval to get requests/s, cuts a window, scales it
(``multiplier`` or ``peak_rps``) and resamples it onto the simulation times (step or linear
interpolation). A scenario's relative trace path is read next to the scenario file
(:func:`trace_path`), else in :func:`traces_dir`, where the real traces are read in place
(``$SETPOINT_TRACES_DIR``, else ``../shared/data/traces`` next to the checkout or the working
directory); never copy or bundle them.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from controller.bundled import source_checkout
from controller.errors import FieldError, ScenarioError
from controller.policy.durations import clip
from simulators.streams import noise_block

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S
#: 1970-01-01 (epoch day 0) was a Thursday: weekday index 3 with Monday = 0.
EPOCH_WEEKDAY = 3


def _grid(t, *params):
    """Times as float array, broadcast against per-service parameters when any is (S,)."""
    t = np.asarray(t, dtype=np.float64)
    params = [np.asarray(p, dtype=np.float64) for p in params]
    if any(p.ndim > 0 for p in params):
        t = t[..., None]
    return (t, *params)


class Shape:
    """Offered load (requests/s) as a function of time (epoch s). Subclasses define ``__call__``."""

    def __call__(self, t) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __add__(self, other) -> "Shape":
        return Sum((self, as_shape(other)))

    __radd__ = __add__

    def __mul__(self, other) -> "Shape":
        return Product((self, as_shape(other)))

    __rmul__ = __mul__


def as_shape(value) -> Shape:
    """A Shape as is; a number or (S,) array as a :class:`Constant`."""
    return value if isinstance(value, Shape) else Constant(value)


@dataclass(frozen=True)
class Sum(Shape):
    """The sum of shapes (e.g. a base plus flash crowds)."""

    shapes: tuple[Shape, ...]

    def __call__(self, t) -> np.ndarray:
        return functools.reduce(np.add, (s(t) for s in self.shapes))


@dataclass(frozen=True)
class Product(Shape):
    """The product of shapes (e.g. a base times multiplicative noise)."""

    shapes: tuple[Shape, ...]

    def __call__(self, t) -> np.ndarray:
        return functools.reduce(np.multiply, (s(t) for s in self.shapes))


@dataclass(frozen=True)
class Constant(Shape):
    """``rps`` at all times."""

    rps: float | np.ndarray

    def __call__(self, t) -> np.ndarray:
        t, rps = _grid(t, self.rps)
        return np.broadcast_to(rps, np.broadcast_shapes(t.shape, rps.shape)).astype(np.float64)


@dataclass(frozen=True)
class Step(Shape):
    """``before_rps`` until ``at_s``, ``after_rps`` from ``at_s`` on."""

    at_s: float | np.ndarray
    before_rps: float | np.ndarray
    after_rps: float | np.ndarray

    def __call__(self, t) -> np.ndarray:
        t, at, before, after = _grid(t, self.at_s, self.before_rps, self.after_rps)
        return np.where(t < at, before, after) + 0.0 * t


@dataclass(frozen=True)
class Ramp(Shape):
    """``from_rps`` until ``start_s``, linear to ``to_rps`` at ``end_s``, then ``to_rps``."""

    start_s: float | np.ndarray
    end_s: float | np.ndarray
    from_rps: float | np.ndarray
    to_rps: float | np.ndarray

    def __call__(self, t) -> np.ndarray:
        t, start, end, lo, hi = _grid(t, self.start_s, self.end_s, self.from_rps, self.to_rps)
        frac = np.clip((t - start) / np.maximum(end - start, 1e-9), 0.0, 1.0)
        return lo + (hi - lo) * frac


@dataclass(frozen=True)
class Diurnal(Shape):
    """A daily cosine with weekly modulation, on the UTC clock of ``t`` (epoch seconds).

    ``mean_rps * (1 + amplitude_ratio * cos(2π (t / 1 day - peak_hour / 24))) * week(t)``,
    where ``week(t)`` is ``weekend_ratio`` on Saturdays and Sundays (UTC) and 1 otherwise.
    ``amplitude_ratio`` in [0, 1] keeps the load non-negative.
    """

    mean_rps: float | np.ndarray
    amplitude_ratio: float | np.ndarray = 0.5
    peak_hour: float | np.ndarray = 18.0
    weekend_ratio: float | np.ndarray = 1.0

    def __call__(self, t) -> np.ndarray:
        t, mean, amp, peak, weekend = _grid(t, self.mean_rps, self.amplitude_ratio, self.peak_hour, self.weekend_ratio)
        daily = 1.0 + amp * np.cos(2.0 * np.pi * (t / DAY_S - peak / 24.0))
        weekday = (np.floor(t / DAY_S) + EPOCH_WEEKDAY) % 7
        return mean * daily * np.where(weekday >= 5, weekend, 1.0)


@dataclass(frozen=True)
class FlashCrowd(Shape):
    """Extra load (add it to a base): 0 before ``at_s``, a linear rise to ``peak_rps`` over
    ``rise_s``, then exponential decay with time constant ``decay_s``."""

    at_s: float | np.ndarray
    peak_rps: float | np.ndarray
    rise_s: float | np.ndarray = 60.0
    decay_s: float | np.ndarray = 600.0

    def __call__(self, t) -> np.ndarray:
        t, at, peak, rise, decay = _grid(t, self.at_s, self.peak_rps, self.rise_s, self.decay_s)
        since = t - at
        rising = peak * np.clip(since / np.maximum(rise, 1e-9), 0.0, 1.0)
        decaying = peak * np.exp(-np.maximum(since - rise, 0.0) / np.maximum(decay, 1e-9))
        return np.where(since < 0, 0.0, np.where(since < rise, rising, decaying))


@dataclass(frozen=True)
class Noise(Shape):
    """Multiplicative log-normal noise with mean 1: multiply a shape by it.

    ``exp(sigma_ratio * z(t) - sigma_ratio² / 2)`` where ``z`` is standard normal at every
    multiple of ``interval_s`` and linear in between. Values depend only on (seed, time),
    never on which times are asked for, so any window of a run sees the same noise.
    ``seed``: an int or the term's stream (:func:`simulators.streams.load_term`); knot block
    ``b`` draws from its own child stream (:func:`simulators.streams.noise_block`).
    ``n_series``: None for one series (T,), or S independent series (T, S).
    """

    sigma_ratio: float = 0.1
    seed: int | np.random.SeedSequence = 0
    interval_s: float = 60.0
    n_series: int | None = None

    BLOCK = 1024

    def knots(self, first: int, last: int) -> np.ndarray:
        """Standard normals for buckets first..last inclusive, (n, max(1, n_series)).

        The last block drawn is kept (read-only): a run asks for its load a chunk of ticks at
        a time, and a block spans many chunks (1,024 knots, 17 h at one a minute)."""
        blocks = range(first // self.BLOCK, last // self.BLOCK + 1)
        parts = [self._block(b) for b in blocks]
        z = parts[0] if len(parts) == 1 else np.concatenate(parts)
        offset = first - blocks[0] * self.BLOCK
        return z[offset:offset + last - first + 1]

    def _block(self, b: int) -> np.ndarray:
        kept = self.__dict__.get("_kept_block")
        if kept is not None and kept[0] == b:
            return kept[1]
        z = self.block(b)
        z.flags.writeable = False
        self.__dict__["_kept_block"] = (b, z)  # not a field: equality, hash and repr ignore it
        return z

    def block(self, b: int) -> np.ndarray:
        """(BLOCK, max(1, n_series)) standard normals of knot block ``b`` (knots b * BLOCK ...)."""
        return np.random.default_rng(noise_block(self.seed, b)).standard_normal((self.BLOCK, self.n_series or 1))

    def __getstate__(self) -> dict:
        """Pickled without the kept block (a scenario sent to a sweep worker stays small)."""
        return {k: v for k, v in self.__dict__.items() if k != "_kept_block"}

    def __call__(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        pos = t / self.interval_s
        idx = np.floor(pos).astype(np.int64)
        if idx.size == 0:
            return np.ones(t.shape if self.n_series is None else t.shape + (self.n_series,))
        first, last = int(idx.min()), int(idx.max()) + 1
        z = self.knots(first, last)
        frac = (pos - idx)[..., None]
        zt = z[idx - first] * (1.0 - frac) + z[idx - first + 1] * frac
        factor = np.exp(self.sigma_ratio * zt - 0.5 * self.sigma_ratio**2)
        return factor[..., 0] if self.n_series is None else factor


# --------------------------------------------------------------------------- traces
def traces_dir() -> Path:
    """Where the real traces are: ``$SETPOINT_TRACES_DIR``; else the first existing of
    ``../shared/data/traces`` next to the source checkout (when running from one) and
    ``../shared/data/traces`` relative to the working directory. Traces are never bundled.

    The directory may not exist (a fresh clone without the shared data): check ``.is_dir()``.
    """
    env = os.environ.get("SETPOINT_TRACES_DIR")
    if env:
        return Path(env)
    checkout = source_checkout()
    candidates = ([checkout.parent] if checkout else []) + [Path.cwd().parent]
    found = [c / "shared" / "data" / "traces" for c in candidates]
    return next((f for f in found if f.is_dir()), found[-1])


@dataclass(frozen=True, eq=False)
class Trace:
    """A trace: ``times_s`` (N,) epoch seconds of each interval's start, ``values`` (N,) totals
    per interval, ``interval_s`` the nominal interval (the most common step; a longer step is
    a missing row, not a longer interval: replay holds the previous rate over it)."""

    name: str
    times_s: np.ndarray
    values: np.ndarray
    interval_s: float
    digest: str = ""  # of the file's text: a sweep cell's key changes when the trace does

    @property
    def rates_rps(self) -> np.ndarray:
        """(N,) per-second rates: value / interval."""
        return self.values / self.interval_s

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1] - self.times_s[0] + self.interval_s)


def _csv_error(path: Path, line: int | None, message: str) -> ScenarioError:
    return ScenarioError([FieldError(str(path), line, "", message)])


#: Largest trace file read (the biggest shared trace is 1.4 MB, a year of minutes 14 MB):
#: bounds the memory and time a scenario's trace costs before anything is simulated.
MAX_TRACE_BYTES = 32 * 2**20
#: Largest value of a row (requests per interval): scaled and summed, it stays finite.
MAX_TRACE_VALUE = 1e12


def _line_at(data: bytes, offset: int) -> int:
    """1-based line of byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1


def _trace_text(p: Path) -> str:
    """The file's text, once it is known to be a bounded, non-empty, UTF-8 text file."""
    try:
        size = p.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise _csv_error(p, None, f"is {size / 2**20:.0f} MiB, more than the {MAX_TRACE_BYTES // 2**20} MiB a trace "
                                      "may be; cut it to the window you replay")
        with p.open("rb") as fh:
            data = fh.read(MAX_TRACE_BYTES + 1)
    except OSError as exc:
        raise _csv_error(p, None, f"cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise _csv_error(p, None, "file is empty: expected the header 'timestamp,value' and at least 2 rows")
    nul = data.find(b"\0")
    if nul >= 0:
        raise _csv_error(p, _line_at(data, nul), "is a binary file (NUL byte): expected a CSV 'timestamp,value'")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _csv_error(p, _line_at(data, exc.start), f"is not UTF-8 text (byte 0x{data[exc.start]:02x}): "
                                                       "expected a CSV 'timestamp,value'") from None


def _parse_stamp(stamp: str, p: Path, line: int) -> float:
    try:
        return float(np.datetime64(stamp, "s").astype(np.int64))
    except ValueError:
        raise _csv_error(p, line, f"timestamp must be ISO-8601 UTC such as 2020-01-01T00:00:00Z, got {stamp + 'Z'!r}") from None


@functools.lru_cache(maxsize=32)
def _read_trace(path: str, mtime: float) -> Trace:
    p = Path(path)
    text = _trace_text(p)
    lines = text.splitlines()
    header = lines[0].strip()
    if header != "timestamp,value":
        raise _csv_error(p, 1, f"expected the header 'timestamp,value', got {header[:80]!r}")
    stamps, values, numbers = [], [], []
    for n, line in enumerate(lines[1:], start=2):
        line = line.strip()
        if not line:
            continue
        stamp, sep, value = line.partition(",")
        if not sep or not stamp.endswith("Z"):
            raise _csv_error(p, n, f"expected '<ISO-8601 UTC timestamp ending in Z>,<number>', got {line[:80]!r}")
        try:
            number = float(value)
        except ValueError:
            raise _csv_error(p, n, f"value must be a number, got {value[:80]!r}") from None
        if not math.isfinite(number):
            raise _csv_error(p, n, f"value must be a finite number, got {value!r}")
        if not 0 <= number <= MAX_TRACE_VALUE:
            raise _csv_error(p, n, f"value must be in [0, {MAX_TRACE_VALUE:g}] (requests per interval), got {value}")
        stamps.append(stamp[:-1])
        values.append(number)
        numbers.append(n)
    if len(stamps) < 2:
        raise _csv_error(p, None, f"needs at least 2 rows, got {len(stamps)}")
    try:
        times = np.array(stamps, dtype="datetime64[s]").astype(np.int64).astype(np.float64)
    except ValueError:  # find the row
        times = np.array([_parse_stamp(s, p, n) for s, n in zip(stamps, numbers)])
    nat = np.flatnonzero(times == float(np.iinfo(np.int64).min))  # "NaT" parses, as the smallest int64
    if nat.size:
        n = numbers[int(nat[0])]
        raise _csv_error(p, n, f"timestamp must be ISO-8601 UTC such as 2020-01-01T00:00:00Z, got {stamps[int(nat[0])][:40] + 'Z'!r}")
    steps = np.diff(times)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        truncated = " (timestamps are read to the whole second)" if stamps[i] != stamps[i - 1] and steps[i - 1] == 0 else ""
        raise _csv_error(p, numbers[i], f"timestamps must strictly increase: {stamps[i][:40]}Z is not after "
                                        f"{stamps[i - 1][:40]}Z of line {numbers[i - 1]}{truncated}")
    values_arr, times.flags.writeable = np.array(values), False
    if not values_arr.any():
        raise _csv_error(p, None, f"every value is 0 ({values_arr.size} rows): replaying it offers no load")
    values_arr.flags.writeable = False  # shared through the cache
    return Trace(p.stem, times, values_arr, nominal_interval_s(steps), hashlib.sha256(text.encode()).hexdigest()[:32])


def traces_digest(shapes: Sequence[Shape]) -> str:
    """A digest of the contents of every trace the shapes replay ("" when none): what a scenario
    file's text does not say about its load (the CSV it names may change, or differ on another
    machine)."""
    found: list[str] = []

    def walk(shape: Shape) -> None:
        if isinstance(shape, (Sum, Product)):
            for s in shape.shapes:
                walk(s)
        elif isinstance(shape, TraceReplay):
            found.append(shape.trace.digest)

    for shape in shapes:
        walk(shape)
    return hashlib.sha256(",".join(found).encode()).hexdigest()[:32] if found else ""


def nominal_interval_s(steps: np.ndarray) -> float:
    """The most common step between rows (the smallest on a tie): a longer step is a gap."""
    lengths, counts = np.unique(steps, return_counts=True)
    return float(lengths[np.argmax(counts)])


class TraceNotFound(FileNotFoundError):
    """No trace at any place a name was looked up; ``looked`` lists them, in order."""

    def __init__(self, message: str, looked: Sequence[Path]):
        super().__init__(message)
        self.looked = tuple(looked)

    def __str__(self) -> str:
        return self.args[0]


def _candidates(path: Path, named: bool = True) -> list[Path]:
    """``path``, and for a name without a suffix ``path`` + ``.csv`` too; only ``path`` where
    what was written names no file (``named`` False: ``/``, ``.``, ``..``)."""
    return [path] if path.suffix or not named else [path, path.with_suffix(".csv")]


def _found(candidate: Path, named: bool = True) -> bool:
    """Something is there (a name without a suffix: a file; else ``.csv`` is meant; what names no
    file: anything, a folder that load_trace refuses as one)."""
    return candidate.exists() if candidate.suffix or not named else candidate.is_file()


def _names_a_file(path: Path) -> bool:
    """Whether ``path`` as written ends in a name (``/``, ``.`` and ``..`` name folders: there is
    nothing to add ``.csv`` to)."""
    return path.name not in ("", ".", "..")


def trace_path(name_or_path: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> Path:
    """Where a trace is. An absolute path as it is; a relative one next to what names it
    (``relative_to``: a scenario file's folder, as kustomize and docker compose read relative
    paths; None: the working directory), else in :func:`traces_dir` (the shared traces, which
    the bundled scenarios name bare). ``.csv`` may be left out. The first place where something
    exists wins (a folder there is refused by :func:`load_trace`, not skipped).

    :class:`TraceNotFound` names every place looked at. Relative to a scenario's folder, a file
    the path names only from the working directory (where scenarios' trace paths were read
    before) is not taken: the message says where it is and what to write instead."""
    path = Path(name_or_path)
    folder = Path(relative_to) if relative_to is not None else None
    if path.is_absolute():
        places = [path]
    else:
        places = [folder / path if folder is not None else path, traces_dir() / path]
    looked = []
    named = _names_a_file(path)
    for place in places:
        for candidate in _candidates(place, named):
            looked.append(candidate)
            try:
                found = _found(candidate, named)
            except OSError as exc:  # a path no file can have here (a name over 255 bytes): not found, and why
                raise TraceNotFound(f"trace not found: {clip(str(candidate))}: {exc.strerror or exc}", looked) from None
            if found:
                return candidate
    where = "next to the scenario file" if folder is not None else "relative to the working directory"
    message = f"trace not found: {places[0]}" + ("" if path.is_absolute() else
                                                  f" ({where}), nor {places[1]} (the traces folder: "
                                                  "$SETPOINT_TRACES_DIR, else ../shared/data/traces)")
    raise TraceNotFound(message + _working_directory_hint(path, folder), looked)


def _working_directory_hint(path: Path, folder: Path | None) -> str:
    """Where a scenario's relative trace ``path`` not found next to it (in ``folder``) is a file
    from the working directory (where such paths were read before): that it is not taken, and the
    path to write instead; "" otherwise."""
    if folder is None or path.is_absolute():
        return ""
    try:
        here = next((c for c in _candidates(Path.cwd() / path, _names_a_file(path)) if c.is_file()), None)
    except OSError:  # a path no file can have from here either
        return ""
    if here is None:  # (nor is the folder the working directory: it would have been found)
        return ""
    fix = Path(os.path.relpath(here.absolute(), folder.absolute())).as_posix()
    return (f". {path} is a file relative to the working directory ({Path.cwd()}), but a scenario's trace paths "
            f"are read next to the scenario file, wherever setpoint runs: write file: {fix}")


def load_trace(name_or_path: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> Trace:
    """Read a trace CSV found by :func:`trace_path` (a bare name such as
    ``nasa_http_1995_07_requests_1min`` is looked up in :func:`traces_dir`). Cached per file and
    modification time."""
    path = trace_path(name_or_path, relative_to)
    if path.is_dir() or path.exists() and not path.is_file():  # was "not found", pointing at SETPOINT_TRACES_DIR
        raise _csv_error(path, None, f"is {'a folder' if path.is_dir() else 'a device, pipe or socket'}, not a CSV "
                                     "file 'timestamp,value'")
    try:
        return _read_trace(str(path.resolve()), path.stat().st_mtime)
    except OSError as exc:
        raise _csv_error(path, None, f"cannot read: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class TraceReplay(Shape):
    """Replay a window of a trace as requests/s on the simulation clock.

    The window starts ``start_offset_s`` after the trace's first timestamp and lasts
    ``duration_s`` (default: to the end). Simulation time ``sim_start_s`` maps to the window
    start. Rates (value / interval) are scaled by ``multiplier``, or so that the window's
    peak rate equals ``peak_rps`` (then ``multiplier`` must stay 1).

    ``interpolation``: ``step`` holds each interval's rate over the interval; ``linear``
    interpolates between interval midpoints. Outside the window the edge value holds, or the
    window repeats when ``wrap`` is true.
    """

    trace: Trace
    start_offset_s: float = 0.0
    duration_s: float | None = None
    multiplier: float = 1.0
    peak_rps: float | None = None
    interpolation: Literal["linear", "step"] = "linear"
    sim_start_s: float = 0.0
    wrap: bool = False
    history_s: float = 0.0  # before sim_start_s, replay this much of the trace before the window

    def __post_init__(self):
        errors = []
        if self.peak_rps is not None and self.multiplier != 1.0:
            errors.append(("peak_rps", f"give peak_rps or multiplier, not both (multiplier={self.multiplier})"))
        if self.peak_rps is not None and self.peak_rps <= 0:
            errors.append(("peak_rps", f"must be > 0, got {self.peak_rps}"))
        if self.interpolation not in ("linear", "step"):
            errors.append(("interpolation", f"must be 'linear' or 'step', got {self.interpolation!r}"))
        if not 0 <= self.start_offset_s < self.trace.duration_s:
            errors.append(("start_offset_s", f"must be in [0, {self.trace.duration_s:g}) for {self.trace.name}, "
                                             f"got {self.start_offset_s:g}"))
        if not 0 <= self.history_s <= self.start_offset_s:
            errors.append(("history_s", f"must be in [0, start offset {self.start_offset_s:g}] (the trace before "
                                        f"the window), got {self.history_s:g}"))
        if self.duration_s is not None and self.duration_s <= 0:
            errors.append(("duration_s", f"must be > 0, got {self.duration_s:g}"))
        if not errors and not self.window[0].size:  # a window shorter than the clock's resolution
            errors.append(("duration_s", f"the window of {self.trace.name} ({self.duration_s:g}s from offset "
                                         f"{self.start_offset_s:g}s) holds no row of the trace: replay a longer one"))
        if not errors and self.peak_rps is not None and not self.window[1].any():
            errors.append(("peak_rps", f"the replayed window of {self.trace.name} is all 0: nothing to scale to a peak"))
        if errors:
            raise ScenarioError([FieldError(self.trace.name, None, f, m) for f, m in errors])

    @functools.cached_property
    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """(times relative to the window start (s), scaled rates (rps)) of the rows in the window."""
        tr = self.trace
        start = tr.times_s[0] + self.start_offset_s
        end = tr.times_s[-1] + tr.interval_s if self.duration_s is None else start + self.duration_s
        # keep the interval that contains the window start (and the history before it)
        keep = (tr.times_s + tr.interval_s > start - self.history_s) & (tr.times_s < end)
        rel, rates = tr.times_s[keep] - start, tr.rates_rps[keep]
        scale = self.multiplier
        if self.peak_rps is not None:  # the window's peak, history excluded
            inside = rates[rel + tr.interval_s > 0]
            peak = float(inside.max()) if inside.size else 0.0
            scale = self.peak_rps / peak if peak > 0 else 0.0
        return rel, rates * scale

    @property
    def window_s(self) -> float:
        """Length of the replayed window (s)."""
        rel, _ = self.window
        full = float(rel[-1] + self.trace.interval_s)
        return full if self.duration_s is None else min(self.duration_s, full)

    def __call__(self, t) -> np.ndarray:
        rel, rates = self.window
        u = np.asarray(t, dtype=np.float64) - self.sim_start_s
        u = np.mod(u, self.window_s) if self.wrap else np.clip(u, -self.history_s, self.window_s)
        if self.interpolation == "step":
            i = np.clip(np.searchsorted(rel, u, side="right") - 1, 0, rel.size - 1)
            return rates[i]
        return np.interp(u, rel + 0.5 * self.trace.interval_s, rates)


def offered_matrix(shapes: Shape | Sequence[Shape], times_s, n_services: int | None = None) -> np.ndarray:
    """(T, S) offered load (rps, clipped at 0) for ``times_s`` (T,).

    ``shapes``: one shape per service, or one shape whose parameters are (S,) arrays, or one
    scalar shape repeated for ``n_services``.
    """
    return offered_function(shapes, n_services)(np.asarray(times_s, dtype=np.float64))


def offered_function(shapes: Shape | Sequence[Shape], n_services: int | None):
    """``t -> offered_matrix(shapes, t, n_services)``; one shape per service is grouped once
    (:class:`simulators.load_batch.ShapeBatch`), then each call evaluates the groups: keep it to
    evaluate many times (a fresh one per call regroups the shapes and redraws the noise knots)."""
    if isinstance(shapes, Shape):
        def whole(t):
            out = np.asarray(shapes(t), dtype=np.float64)
            return _clipped(np.repeat(out[:, None], n_services or 1, axis=1) if out.ndim == 1 else out, n_services)
        return whole
    from simulators.load_batch import ShapeBatch  # it builds on this module's shapes
    batch = ShapeBatch(shapes)

    def grouped(t):
        out, fresh = batch.evaluate(t)
        return _clipped(out, n_services, fresh)
    return grouped


def _clipped(out: np.ndarray, n_services: int | None, fresh: bool = False) -> np.ndarray:
    """``out`` clipped at 0 (in place when ``fresh``: a new array nobody else holds)."""
    if n_services is not None and out.shape[1] != n_services:
        raise ValueError(f"load has {out.shape[1]} services, expected {n_services}")
    return np.maximum(out, 0.0, out=out if fresh else None)


def tick_times(start_s: float, duration_s: float, tick_s: float) -> np.ndarray:
    """(T,) tick times start, start + tick, ... strictly before start + duration."""
    return start_s + tick_s * np.arange(tick_count(duration_s, tick_s))


def tick_count(duration_s: float, tick_s: float) -> int:
    """T, the number of ticks of :func:`tick_times`."""
    return int(math.ceil(duration_s / tick_s - 1e-9))


#: Ticks per chunk of :func:`offered_chunks`: (chunk, S) float64 is 4 MiB for 1,000 services.
CHUNK_TICKS = 512


def offered_chunks(shapes: Shape | Sequence[Shape], start_s: float, duration_s: float, tick_s: float,
                   n_services: int | None = None, chunk_ticks: int = CHUNK_TICKS):
    """The rows of ``offered_matrix(shapes, tick_times(start_s, duration_s, tick_s), n_services)``
    in chunks of at most ``chunk_ticks`` ticks: yields ``(k0, times (C,), load (C, S))`` with
    ``k0`` the index of the chunk's first tick. The same numbers as the whole matrix (every
    shape is a function of each time alone; :class:`Noise` depends only on seed and time), in
    memory O(chunk_ticks x S) instead of O(T x S)."""
    if chunk_ticks < 1:
        raise ValueError(f"chunk_ticks must be >= 1, got {chunk_ticks}")
    total = tick_count(duration_s, tick_s)
    evaluate = offered_function(shapes, n_services)
    for k0 in range(0, total, chunk_ticks):
        times = chunk_times(start_s, tick_s, k0, min(k0 + chunk_ticks, total))
        yield k0, times, evaluate(times)


def chunk_times(start_s: float, tick_s: float, k0: int, k1: int) -> np.ndarray:
    """Ticks ``k0 .. k1 - 1`` of :func:`tick_times`, the same floats as slicing the whole array."""
    return start_s + tick_s * np.arange(k0, k1, dtype=np.float64)
