"""How much memory a simulation needs, worked out before it allocates anything, and the limit
it must fit in.

A run streams (simulators.timeline): the controllers advance in lockstep over one chunk of
generated load at a time, each scoring and downsampling its chunk of ticks, so what they hold
does not grow with the simulated time, except the whole (T, S) trajectory kept for small runs (T x S up to
``FULL_TRAJECTORY_CELLS``) and the decision records (held up to ``RECORDS_IN_MEMORY``, then
spilled to a file). :func:`estimate_peak_bytes` adds up, from the scenario alone: the
interpreter; the chunk of load; per controller, its chunk buffers and per-service state; what each
finished run keeps (timeline, actions, records, the kept trajectory); and the batch scoring of
kept trajectories. The coefficients were measured (tracemalloc peaks and peak RSS via
``getrusage``) and rounded up, so the estimate errs high. bench/memory_estimate.py repeats the
RSS comparison; tests/simulators/test_memory_estimate.py checks it against tracemalloc.
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
from simulators.load import CHUNK_TICKS
from simulators.scenario import Scenario
from simulators.timeline import (ACTIONS_IN_FULL, FULL_TRAJECTORY_CELLS, MAX_POINTS, MAX_SERVICE_MULTIPLES,
                                 CYCLE_RECORDS, RECORD_CELLS, RECORD_TICKS, RECORDS_IN_MEMORY)
from simulators.workload import MIB

GIB = 2**30
#: The limit when ``--max-memory`` is not given.
DEFAULT_MAX_MEMORY_BYTES = 4 * GIB
#: The share of the machine's memory (RAM, cgroup limit or address-space limit) a run may use.
MACHINE_SHARE = 0.8

#: The interpreter with numpy, pydantic and matplotlib loaded, and the report's figures
#: (measured: 116 MiB RSS for a one-service scenario).
BASE_BYTES = 160 * MIB
#: Per controller, whatever the size: its Reconciler and policy objects, budgets.
RUN_BYTES = 1 * MIB
#: (chunk, S) float64 arrays alive while a chunk of load is generated and held.
CHUNK_ARRAYS = 5.0
#: (record_ticks(S), S) float64 arrays alive while the ticks are recorded, scored and downsampled.
RECORD_ARRAYS = 14.0
#: Per service and controller while it runs: the simulated cluster's pod slots and aggregates,
#: the reconciler's per-target state.
SERVICE_BYTES = 16 * 1024
#: Per pod slot (services x the largest maxPods plus rollout surge) and controller: the cluster's
#: 13 (S, K) slot arrays (83 B) and the (S, K) temporaries of building and stepping them. Measured
#: about 82 B per slot (10,000 services x maxPods 1000, 1,250 slots each: 2.7 GB peak RSS for the
#: policy and fixed-max, 10 minutes); rounded up. Counted when more than SERVICE_BYTES per service
#: (about 130 slots: maxPods over 100), which covers the slots of the usual maxPods.
POD_SLOT_BYTES = 120
#: (T, S) float64 arrays of a kept trajectory: its 8 signals, its violation mask, its scoring.
ARRAYS_PER_CONTROLLER = 10.0
#: (T, S) copies made while scoring kept trajectories in batch (latency and load as float,
#: masks, diffs).
SHARED_ARRAYS = 6.0
#: The oracle's bisection over a chunk of load and its look-ahead (bounds, latencies, masks).
ORACLE_ARRAYS = 8.0
#: Per service a policy cycle decides on: its decision record's arrays (measured ~100 B) and its
#: HPA-style conditions (one small dict per target and cycle, ~200 B; the conditions themselves are
#: shared); measured 346 B. A cycle's result and its Python objects (measured 8.3 to 9.3 KiB) count
#: as CYCLE_RECORDS records.
RECORD_BYTES = 400
#: Per kept action: the ActionEvent, its reason text and the budget's keys.
ACTION_BYTES = 400
#: Policy cycles per action of a target, at the most (an action every cycle is a flapping
#: controller; measured 30 to 200 on the bundled scenarios).
CYCLES_PER_ACTION = 10


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
        policies = getattr(c, "policies", (c.policy,) if c.kind == "policy" and c.policy is not None else ())
        # a healer beside a scaler counts as one more policy controller: errs high (its run and
        # timeline are counted twice), never low
        out += [_policy_shape(p) for p in policies] or [ControllerShape(c.kind)]
    return out


def _policy_shape(policy) -> ControllerShape:
    """The ControllerShape of a Reconciler cycling ``policy`` (a controller.policy.LoadedPolicy)."""
    health = policy.health
    signals = len(policy.params.metric_names) + (len(health.checks) if health is not None else 0)
    return ControllerShape("policy", policy.params.interval_s, signals)


def kept_trajectory(ticks: int, services: int, keep_trajectories: bool | None = None) -> bool:
    """Whether a run keeps its whole (T, S) trajectory (simulators.runner.run_controller's rule)."""
    return ticks * services <= FULL_TRAJECTORY_CELLS if keep_trajectories is None else keep_trajectories


def estimate_peak_bytes(ticks: int, services: int, controllers: Sequence[ControllerShape], *, tick_s: float,
                        metrics_window_s: float, keep_records: bool = True,
                        keep_trajectories: bool | None = None, pod_slots: int = 0) -> int:
    """Peak memory (bytes) of simulating ``ticks`` x ``services`` under ``controllers``;
    ``pod_slots``: services x the most pod slots of one (the cluster's (S, K) arrays)."""
    S = float(services)
    chunk = float(min(CHUNK_TICKS, max(ticks, 1)))
    # RECORD_CELLS / S, not record_ticks' whole ticks: a bound on them that never falls as S grows
    record = float(min(max(float(RECORD_TICKS), RECORD_CELLS / max(S, 1.0)), CHUNK_TICKS, max(ticks, 1)))
    # the controllers run in lockstep (runner.run_controllers): one chunk of load, each its own buffers
    state = max(S * SERVICE_BYTES, float(pod_slots) * POD_SLOT_BYTES)  # the slots, once they outgrow the rest
    running = 8.0 * S * chunk * CHUNK_ARRAYS + len(controllers) * (8.0 * S * record * RECORD_ARRAYS + state)
    kept = 0.0
    if kept_trajectory(ticks, services, keep_trajectories):
        cells = float(ticks) * S
        kept = 8.0 * cells * (SHARED_ARRAYS + ARRAYS_PER_CONTROLLER * len(controllers))
    points = float(min(ticks, MAX_POINTS))
    # 6 signals per view: t and y per tick up to MAX_POINTS ticks, else 5 numbers per 2-point bucket
    views = 1 + min(services, MAX_SERVICE_MULTIPLES)  # the aggregate and (up to) each service: errs high, monotone
    timeline = 8.0 * 2.5 * points * 6 * views
    total = BASE_BYTES + running + kept
    for c in controllers:
        total += RUN_BYTES + timeline
        if c.kind == "oracle":
            total += 8.0 * (chunk + 64) * S * ORACLE_ARRAYS
        if c.kind != "policy":
            continue
        slots = max(1, round(metrics_window_s / tick_s))
        total += 8.0 * slots * S * max(1, c.signals)  # SimMetrics' window of samples
        cycles = min(ticks, math.ceil(ticks * tick_s / max(c.interval_s, 1e-9)))
        actions = math.ceil(cycles * S / CYCLES_PER_ACTION)
        total += ACTION_BYTES * min(actions, ACTIONS_IN_FULL + 5 * MAX_POINTS * views)
        if keep_records:  # held until they spill (a cycle counts as CYCLE_RECORDS records)
            total += RECORD_BYTES * min(cycles * (S + CYCLE_RECORDS), RECORDS_IN_MEMORY + S + CYCLE_RECORDS)
    return int(total)


def scenario_peak_bytes(scenario: Scenario, controllers: Sequence, keep_records: bool = True,
                        keep_trajectories: bool | None = None) -> int:
    """:func:`estimate_peak_bytes` for a compiled scenario and runner.ControllerSpecs."""
    services = scenario.cluster.services
    return estimate_peak_bytes(scenario.tick_count, len(services), controller_shapes(controllers),
                               tick_s=scenario.tick_s, metrics_window_s=scenario.metrics_window_s,
                               keep_records=keep_records, keep_trajectories=keep_trajectories,
                               pod_slots=len(services) * max((s.slots for s in services), default=0))


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
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n:.0f} bytes"


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


def check_fits(scenario: Scenario, controllers: Sequence, limit: MemoryLimit, keep_records: bool = True,
               keep_trajectories: bool | None = None) -> int:
    """The estimate (bytes) if it fits in ``limit``; else a ScenarioError saying what to change."""
    need = scenario_peak_bytes(scenario, controllers, keep_records, keep_trajectories)
    if need <= limit.bytes:
        return need
    ticks, services = scenario.tick_count, len(scenario.cluster.services)
    raise ScenarioError([FieldError(scenario.file, None, "spec", (
        f"this simulation needs about {format_bytes(need)} of memory ({_count(ticks, 'tick')} x "
        f"{_count(services, 'service')} x {_count(len(controllers), 'controller')}), "
        f"more than the limit of {format_bytes(limit.bytes)} ({limit.source}); "
        f"shorten spec.duration, raise spec.tick, use fewer services or baselines or a lower maxPods"
        f"{', or raise --max-memory' if 'max-memory' in limit.source else ''}"))])
