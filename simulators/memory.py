"""How much memory a simulation needs, worked out before it allocates anything, and the limit
it must fit in.

A run keeps (T, S) arrays (T ticks, S services) for the offered load and for each controller's
trajectory, builds more of them while scoring and drawing, and keeps one decision record per
driven service per cycle of each policy controller. :func:`estimate_peak_bytes` adds these up
from the scenario alone. The coefficients were measured (peak RSS via ``getrusage`` and
tracemalloc peaks, 1 to 1,000 services, 720 to 34,560 ticks) and rounded up, so the estimate
errs high: it was 1.2 to 1.6 times the measured peak RSS, never below it. bench/
memory_estimate.py repeats the RSS comparison; tests/simulators/test_memory_estimate.py
checks it against tracemalloc on small runs.
"""

from __future__ import annotations

import math
import os
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from controller.errors import FieldError, ScenarioError
from simulators.scenario import Scenario

GIB = 2**30
MIB = 2**20
#: The limit when ``--max-memory`` is not given.
DEFAULT_MAX_MEMORY_BYTES = 4 * GIB
#: The share of the machine's memory (RAM, cgroup limit or address-space limit) a run may use.
MACHINE_SHARE = 0.8

#: The interpreter with numpy, pydantic and matplotlib loaded, and the report's figures
#: (measured: 116 MiB RSS for a one-service scenario).
BASE_BYTES = 160 * MIB
#: (T, S) float64 arrays alive at the peak besides the controllers': the offered load while it
#: is built (per-service columns, the stacked matrix, its clipped copy) and the copies made
#: while scoring and drawing (latency and load as float, masks, diffs).
SHARED_ARRAYS = 6.0
#: Per controller: the 8 float arrays of its trajectory, its violation mask, its own scoring.
ARRAYS_PER_CONTROLLER = 10.0
#: The oracle's bisection over the whole (T, S) load at once (bounds, latencies, masks).
ORACLE_ARRAYS = 8.0
#: Per policy cycle: the cycle's result and its Python objects (measured 1.3 to 3 KiB).
CYCLE_BYTES = 4096
#: Per service a policy cycle decides on: its decision record's arrays (measured ~100 B) and its
#: HPA-style conditions (one small dict per target and cycle, ~200 B; the conditions themselves are shared).
RECORD_BYTES = 400


@dataclass(frozen=True)
class ControllerShape:
    """What of a controller drives its memory: its kind (policy | fixed | oracle), and for a
    policy its cycle interval (s) and the number of signals it reads (metrics + health checks)."""

    kind: str
    interval_s: float = 0.0
    signals: int = 0


def controller_shapes(controllers: Sequence) -> list[ControllerShape]:
    """ControllerShape of each runner.ControllerSpec."""
    out = []
    for c in controllers:
        if c.kind == "policy" and c.policy is not None:
            health = c.policy.health
            signals = len(c.policy.params.metric_names) + (len(health.checks) if health is not None else 0)
            out.append(ControllerShape("policy", c.policy.params.interval_s, signals))
        else:
            out.append(ControllerShape(c.kind))
    return out


def estimate_peak_bytes(ticks: int, services: int, controllers: Sequence[ControllerShape], *, tick_s: float,
                        metrics_window_s: float, keep_records: bool = True) -> int:
    """Peak memory (bytes) of simulating ``ticks`` x ``services`` under ``controllers``."""
    cells = float(ticks) * float(services)
    arrays = SHARED_ARRAYS + ARRAYS_PER_CONTROLLER * len(controllers)
    arrays += ORACLE_ARRAYS if any(c.kind == "oracle" for c in controllers) else 0.0
    total = BASE_BYTES + 8.0 * cells * arrays
    for c in controllers:
        if c.kind != "policy":
            continue
        slots = max(1, round(metrics_window_s / tick_s))
        total += 8.0 * slots * services * max(1, c.signals)  # SimMetrics' window of samples
        if keep_records:
            cycles = min(ticks, math.ceil(ticks * tick_s / max(c.interval_s, 1e-9)))
            total += cycles * (CYCLE_BYTES + RECORD_BYTES * services)
    return int(total)


def scenario_peak_bytes(scenario: Scenario, controllers: Sequence, keep_records: bool = True) -> int:
    """:func:`estimate_peak_bytes` for a compiled scenario and runner.ControllerSpecs."""
    return estimate_peak_bytes(scenario.tick_count, len(scenario.cluster.services), controller_shapes(controllers),
                               tick_s=scenario.tick_s, metrics_window_s=scenario.metrics_window_s,
                               keep_records=keep_records)


# --------------------------------------------------------------------------- the limit
def _cgroup_limit_bytes() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def _address_space_headroom_bytes() -> int | None:
    """What RLIMIT_AS leaves for resident memory: the limit minus the mapped but not resident
    part of this process (shared libraries, thread stacks), which the estimate does not count."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    unresident = 0
    try:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        unresident = (int(status["VmSize"].split()[0]) - int(status["VmRSS"].split()[0])) * 1024
    except (OSError, KeyError, ValueError):
        pass
    return max(0, soft - unresident)


def machine_memory_bytes() -> tuple[int | None, str]:
    """(bytes, what they are) of the memory this process can have: the smallest of physical
    RAM, the cgroup's limit and the address-space limit; None when none is known."""
    known = []
    try:
        known.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine's memory"))
    except (ValueError, OSError, AttributeError):
        pass
    cgroup = _cgroup_limit_bytes()
    if cgroup is not None:
        known.append((cgroup, "the container's memory limit"))
    address = _address_space_headroom_bytes()
    if address is not None:
        known.append((address, "the address-space limit (ulimit -v)"))
    return min(known) if known else (None, "")


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str  # for messages: where the limit comes from


def memory_limit(max_memory_bytes: int | None = None) -> MemoryLimit:
    """The smaller of ``max_memory_bytes`` (default 4 GiB) and 80% of what the machine allows."""
    asked = DEFAULT_MAX_MEMORY_BYTES if max_memory_bytes is None else int(max_memory_bytes)
    asked_source = "the default --max-memory" if max_memory_bytes is None else "--max-memory"
    machine, what = machine_memory_bytes()
    if machine is not None and MACHINE_SHARE * machine < asked:
        return MemoryLimit(int(MACHINE_SHARE * machine), f"{MACHINE_SHARE:.0%} of {what}")
    return MemoryLimit(asked, asked_source)


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``300 MiB``."""
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / MIB:.0f} MiB"


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """Bytes in ``4GiB``, ``4G``, ``512Mi``, ``512MB`` or ``1000000`` (binary units throughout).
    Raises ValueError on anything else or on zero."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"expected a size such as 4GiB, 512MiB or 2G, got {text!r}")
    value = float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "")[:1].upper()]
    if not 0 < value < 2**62:
        raise ValueError(f"must be more than 0 and less than 4 EiB, got {text!r}")
    return int(value)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def check_fits(scenario: Scenario, controllers: Sequence, limit: MemoryLimit, keep_records: bool = True) -> int:
    """The estimate (bytes) if it fits in ``limit``; else a ScenarioError saying what to change."""
    need = scenario_peak_bytes(scenario, controllers, keep_records)
    if need <= limit.bytes:
        return need
    ticks, services = scenario.tick_count, len(scenario.cluster.services)
    raise ScenarioError([FieldError(scenario.file, None, "spec", (
        f"this simulation needs about {format_bytes(need)} of memory ({_count(ticks, 'tick')} x "
        f"{_count(services, 'service')} x {_count(len(controllers), 'controller')}), "
        f"more than the limit of {format_bytes(limit.bytes)} ({limit.source}); "
        f"shorten spec.duration, raise spec.tick, use fewer services or baselines"
        f"{', or raise --max-memory' if 'max-memory' in limit.source else ''}"))])
