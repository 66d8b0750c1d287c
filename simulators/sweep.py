"""Sweeps: a grid of scenarios x policy variants x seeds, run cell by cell in parallel.

A **cell** is one controller (a policy variant, or the hpa preset at one CPU target) on one
scenario with one seed, run by :func:`simulators.runner.run_controller`. Everything a cell
needs travels with it as text (:class:`Cell`: the scenario's and policy's YAML, the seed), so
it runs the same in this process, in a local worker process or on a Ray node, and its numbers
depend only on the cell: the seed is the scenario's own plus the seed's index, the same for
every variant (common random numbers: variants differ only by the policy).

Cells are stored one JSON file per cell under ``OUT/cells/KEY.json`` (KEY: a hash of the
cell's content), written atomically as each finishes, by the local worker that ran it (else by
the process that collects them), and read back by the collecting process; a rerun skips stored
cells, so an interrupted sweep loses at most the cells running.

Executors: ``jobs == 1`` runs in this process; ``jobs > 1`` a pool of local worker processes
(:class:`LocalPool`: forked from this process once it is warm); ``ray`` an existing Ray cluster (``ray.init(address)``,
the optional extra ``setpoint[ray]``). The merge (:mod:`simulators.sweep_result`) is pure.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import multiprocessing
import os
import queue as queue_module
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Sequence

from controller.errors import FieldError, InvalidInput, raise_if_terminated
from controller.model import finite_number
from simulators.frontier import DEFAULT_TARGETS_PCT
from simulators.load import traces_digest
from simulators.parallel import heap_frozen_for_forks, start_method, stop_signals_held, stop_workers, take_worker_signals
from simulators.policy_set import (PolicyBase, Setting, apply_settings, grid, policy_text, read_policy_base,
                                   variant_label)
from simulators.result import shown_path

#: Bump when what a cell computes changes, so stored cells of an older Setpoint are re-run.
#: 2: the traces' digest is in the key, the files' shown paths are not.
CELL_FORMAT = 2
#: Payload fields that only name things in messages, or say where the scenario was read (its
#: relative trace paths are read there; the traces' digest stands for them): left out of a
#: cell's key, which is the same from any folder or machine.
SHOWN_ONLY = frozenset({"scenario_path", "policy_file", "scenario_folder"})
#: Most cells of one grid (scenarios x variants x seeds): each is a simulation, and the grid's
#: cells are built in memory before the first runs (a billion seeds took all memory).
MAX_CELLS = 100_000
#: Seeds are below this (numpy's generators take 64-bit seeds; the scenario format checks its own).
MAX_SEED = 2**63
#: The variant kind of the hpa preset re-targeted to a CPU utilization (HPA's frontier).
HPA_KIND = "hpa"
POLICY_KIND = "policy"


class SweepError(InvalidInput):
    """A sweep cannot run as asked (empty grid, a cell failed, Ray missing)."""


@dataclass(frozen=True)
class ScenarioInput:
    """A scenario of the grid: its name, its file as shown, its text, and its own seed."""

    name: str
    file: str
    text: str
    path: str  # as read
    seed: int
    description: str = ""
    work: int = 1  # ticks x services: a cell's relative cost, to start the longest cells first
    changes: str = ""  # what --scenario-set changed in the file (simulators.scenario_set), "" for the file as it is
    traces: str = ""  # digest of the traces it replays (load.traces_digest): part of its cells' keys
    #: the scenario's warnings (Scenario.warnings, FieldError), said once before the grid runs; a
    #: --scenario-set variant's own (not the file's) say which values brought them
    warnings: tuple = field(default=(), compare=False)

    @property
    def folder(self) -> str:
        """The folder the scenario was read from, absolute (a worker process or a Ray node reads its
        relative trace paths there, whatever its own working directory)."""
        return str(Path(self.path).absolute().parent)

    @property
    def origin(self) -> str:
        """The file as shown, with what was changed in it: ``step.yaml with --scenario-set ...``."""
        return f"{self.file} with {self.changes}" if self.changes else self.file


@dataclass(frozen=True)
class Variant:
    """A controller of the grid: a policy (file, or file with --set values) or HPA at a target."""

    name: str
    kind: str  # policy | hpa
    policy_file: str  # as shown
    policy_text: str
    settings: dict = field(default_factory=dict)  # path -> value, for --set variants
    target_pct: float | None = None  # for hpa
    # a health-only policy runs beside what scales the workload (runner.healing_controllers): hpa
    # (``scaler_text``, the preset's YAML) or fixed; with an empty ``policy_text``, that scaler alone
    scaler: str = ""
    scaler_text: str = ""


@dataclass(frozen=True)
class Cell:
    """One run: a variant on a scenario with a seed. ``payload`` is all a worker needs."""

    scenario: str
    variant: str
    seed: int
    payload: dict
    work: int = 1  # relative cost (the scenario's ticks x services); not part of the key

    @cached_property
    def key(self) -> str:
        """A hash of what the cell computes (not of names, nor of the files' paths as shown, which
        depend on the working directory): equal cells share one stored file."""
        computed = {k: v for k, v in self.payload.items() if k not in SHOWN_ONLY}
        text = json.dumps({"format": CELL_FORMAT, **computed}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# --- the grid -------------------------------------------------------------------------------------


def read_scenario_input(name_or_path: str) -> ScenarioInput:
    """A scenario file or bundled name, validated (ScenarioError with every problem)."""
    from simulators.scenario import load_scenario, resolve_scenario_path

    path = resolve_scenario_path(name_or_path)
    sc = load_scenario(path)
    return ScenarioInput(sc.name, shown_path(path), path.read_text(encoding="utf-8"), str(path), sc.seed,
                         sc.description, sc.tick_count * len(sc.services), traces=traces_digest(sc.shapes),
                         warnings=sc.warnings)


def policy_variants(bases: Sequence[PolicyBase], settings: Sequence[Setting]) -> list[Variant]:
    """Every policy file with every combination of the settings (each validated; SetError).

    Names: the policy's name for a lone file without settings; with settings, the settings
    (``averagePerReplica=50``), prefixed by the policy's name when several files are swept. Files
    whose policies share a name (a policy and its changed copy, under review) are told apart by
    their files (``base_labels``).
    """
    out = []
    for base, name in zip(bases, base_labels(bases)):
        combos = grid(settings) if settings else [()]
        for assigned in combos:
            text = apply_settings(base, assigned)[0] if assigned else policy_text(base.data)
            label = variant_label(settings, assigned) if assigned else ""
            if len(bases) > 1 or not label:
                label = f"{name}[{label}]" if label else name
            out.append(Variant(label, POLICY_KIND, base.file, text,
                               {s.shown_path: v for s, v in assigned}))
    names = [v.name for v in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SweepError([FieldError("--policy", None, "", f"two variants are named {dup[0]!r}: the same policy "
                                                           "file is given twice")])
    return out


def base_labels(bases: Sequence[PolicyBase]) -> list[str]:
    """Each file's policy name, or where several files' policies share it, ``name (file)``: the
    file's stem, or its path as shown where the stems are alike too."""
    names = [b.policy.name for b in bases]
    stems = [Path(b.file).stem for b in bases]
    out = []
    for b, name, stem in zip(bases, names, stems):
        if names.count(name) == 1:
            out.append(name)
            continue
        alike = [s for n, s in zip(names, stems) if n == name]
        out.append(f"{name} ({stem if alike.count(stem) == 1 else b.file})")
    return out


def hpa_variants(hpa: PolicyBase, targets_pct: Iterable[float] = DEFAULT_TARGETS_PCT) -> list[Variant]:
    """The hpa preset at each CPU target (``hpa@70%``): HPA's frontier on every scenario."""
    text = policy_text(hpa.data)
    return [Variant(f"hpa@{t:g}%", HPA_KIND, hpa.file, text, {}, float(t)) for t in targets_pct]


@dataclass(frozen=True)
class Grid:
    scenarios: tuple[ScenarioInput, ...]
    variants: tuple[Variant, ...]
    seeds: int = 1  # per scenario: its own seed, then seed + 1, ...
    differences: tuple[str, ...] = ()  # how each policy file's spec differs from the first's

    def __post_init__(self):
        check_grid_size(len(self.scenarios), len(self.variants), self.seeds)
        for s in self.scenarios:  # before any cell runs: the last seed failed as the grid's last cells ran
            if s.seed + self.seeds - 1 >= MAX_SEED:
                raise SweepError([FieldError("--seeds", None, "", f"{s.file}: its seed {s.seed} plus {self.seeds - 1} "
                                                                  f"is beyond the largest seed, {MAX_SEED - 1}; give the "
                                                                  "scenario a smaller seed or fewer --seeds")])

    def seeds_of(self, scenario: ScenarioInput) -> list[int]:
        return [scenario.seed + k for k in range(self.seeds)]

    def cells(self) -> list[Cell]:
        """Every cell, scenario by scenario, seed by seed, variant by variant."""
        return [Cell(s.name, v.name, seed, cell_payload(s, v, seed), s.work)
                for s in self.scenarios for seed in self.seeds_of(s) for v in self.variants]


def _count(n: int, word: str) -> str:
    """``1 seed``, ``1,200 seeds``: plural() with thousands separators (a grid's counts run large)."""
    from controller.policy.summary import plural

    return plural(n, word).replace(str(n), f"{n:,}", 1)


def check_grid_size(scenarios: int, variants: int, seeds: int) -> None:
    """SweepError naming --seeds (or the grid) when scenarios x variants x seeds > MAX_CELLS."""
    cells = scenarios * variants * seeds
    if seeds > MAX_CELLS:
        raise SweepError([FieldError("--seeds", None, "", f"at most {MAX_CELLS:,} seeds, got {seeds:,}")])
    if cells > MAX_CELLS:
        raise SweepError([FieldError("--seeds" if seeds > 1 else "sweep", None, "",
                                     f"{_count(scenarios, 'scenario')} x {_count(variants, 'variant')} x {_count(seeds, 'seed')} = "
                                     f"{cells:,} cells, more than {MAX_CELLS:,}; use fewer seeds, --set values "
                                     "or scenarios")])


def build_grid(scenarios: Sequence[str], policies: Sequence[str | Path], settings: Sequence[str], *, seeds: int = 1,
               hpa_policy: str | Path | None = None, hpa_targets_pct: Iterable[float] = DEFAULT_TARGETS_PCT,
               scenario_settings: Sequence[str] = (), scaler: str | None = None,
               scaler_policy: str | Path | None = None) -> Grid:
    """The grid of ``scenarios`` (files or bundled names, each with every combination of the
    ``scenario_settings``, :mod:`simulators.scenario_set`) x ``policies`` with every combination
    of the ``settings`` (``PATH=VALUES`` texts) x ``seeds``, plus the hpa preset at each target
    when ``hpa_policy`` is given. A health-only policy runs beside ``scaler`` (hpa, the default:
    the preset ``scaler_policy``; or fixed), and that scaler alone is one more variant
    (:func:`beside_scaler`). Raises SetError, PolicyError, ScenarioError or SweepError naming
    what is wrong, before anything runs."""
    from simulators.policy_set import parse_setting
    from simulators.scenario_set import parse_scenario_settings, scenario_variants

    if seeds < 1:
        raise SweepError([FieldError("--seeds", None, "", f"must be at least 1, got {seeds}")])
    scenario_parsed = parse_scenario_settings(scenario_settings)
    per_scenario = math.prod(len(s.values) for s in scenario_parsed)
    check_grid_size(len(scenarios) * per_scenario, 1, seeds)  # before reading anything; the whole grid once it is known
    if not scenarios:
        raise SweepError([FieldError("SCENARIO", None, "", "give at least one scenario (a file or a bundled name)")])
    parsed = [parse_setting(t) for t in settings]
    inputs = scenario_variants([read_scenario_input(s) for s in scenarios], scenario_parsed)
    names = [s.name for s in inputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SweepError([FieldError("SCENARIO", None, "", f"scenario {dup[0]!r} is given twice")])
    bases = [read_policy_base(p) for p in policies]
    if scaler is not None:  # as simulate --scaler: a policy that also scales runs its health checks alone
        aside = [b.policy.name for b in bases if b.policy.health is not None and b.policy.scales]
        scaling = [s for s in parsed if s.path[:2] == ("spec", "scaling")]
        if aside and scaling:  # else: "spec.scaling is not in the file", of a file that has it
            raise SweepError([FieldError("--set", None, s.shown_path,
                                         f"--scaler sets the scaling section of policy {', '.join(aside)} aside (its "
                                         f"health checks alone run beside the {scaler} scaler), so there is no "
                                         f"{s.shown_path} to vary; vary spec.health, or leave --scaler out to sweep "
                                         f"the policy's own scaling (in --set {s.text})") for s in scaling])
        bases = [health_side_base(b) for b in bases]
    variants = policy_variants([PolicyBase(shown_path(b.file), b.data, b.policy) for b in bases], parsed)
    variants = beside_scaler(variants, bases, scaler, scaler_policy)
    if hpa_policy is not None:
        hpa = read_policy_base(hpa_policy)
        if not hpa.policy.params.metrics:
            raise SweepError([FieldError(str(hpa_policy), None, "", "the hpa policy needs a scaling metric to re-target")])
        variants += hpa_variants(PolicyBase(shown_path(hpa.file), hpa.data, hpa.policy), hpa_targets_pct)
    out = Grid(tuple(inputs), tuple(variants), seeds, file_differences(bases))
    check_bindings_of(out)
    return out


def health_side_base(base: PolicyBase) -> PolicyBase:
    """``base`` with its ``scaling`` section set aside when it also has a health section
    (controller.policy.health_side): its health checks alone, run beside ``--scaler``."""
    from controller.policy import health_side

    if base.policy.health is None or not base.policy.scales:
        return base
    spec = {k: v for k, v in base.data["spec"].items() if k != "scaling"}
    return PolicyBase(base.file, {**base.data, "spec": spec}, health_side(base.policy))


def beside_scaler(variants: list[Variant], bases: Sequence[PolicyBase], scaler: str | None,
                  scaler_policy: str | Path | None) -> list[Variant]:
    """``variants`` with each health-only policy's set beside ``scaler`` (SCALERS; default hpa,
    the preset ``scaler_policy``), then that scaler alone as one more variant, named ``hpa`` or
    ``fixed``: the row a healing variant is compared with. SweepError for ``scaler`` given
    without a health-only policy, or an unknown one."""
    from simulators.runner import SCALERS

    heals = {b.policy.name for b in bases if not b.policy.scales}
    if not heals:
        if scaler is not None:
            raise SweepError([FieldError("--scaler", None, "", "chooses what scales the workload beside a policy's "
                                                               "health checks, and no --policy here has a health "
                                                               "section; leave it out")])
        return variants
    scaler = scaler or "hpa"
    if scaler not in SCALERS:
        raise SweepError([FieldError("--scaler", None, "", f"expected {' or '.join(SCALERS)}, got {scaler!r}")])
    text, file = "", ""
    if scaler == "hpa":
        hpa = read_policy_base(scaler_policy)
        if not hpa.policy.params.metrics:
            raise SweepError([FieldError(str(scaler_policy), None, "", "the hpa policy needs a scaling metric")])
        text, file = policy_text(hpa.data), shown_path(hpa.file)
    healing = {shown_path(b.file) for b in bases if not b.policy.scales}
    out = [replace(v, scaler=scaler, scaler_text=text) if v.policy_file in healing else v for v in variants]
    out.append(Variant(scaler, POLICY_KIND, file, "", scaler=scaler, scaler_text=text))
    if len({v.name for v in out}) < len(out):
        raise SweepError([FieldError("--policy", None, "", f"a policy is named {scaler!r}, as the scaler the "
                                                           "health-only policies are compared with; rename it")])
    return out


def file_differences(bases: Sequence[PolicyBase]) -> tuple[str, ...]:
    """``LABEL: field: A vs B`` for each field of each later file's spec that differs from the
    first file's (controller.policy.counterpart.spec_differences): what a reviewer of a policy
    change compares the two rows by."""
    from controller.policy.counterpart import spec_differences

    labels = base_labels(bases)
    return tuple(f"{labels[i]}: {d}{TARGETS_NOT_SIMULATED if d.startswith('targets.') else ''}"
                 for i in range(1, len(bases))
                 for d in spec_differences(bases[0].policy, bases[i].policy, whole=True) or ["(no difference)"])


#: Said after a difference in targets: the scores cannot show it (it said "no difference in scaling").
TARGETS_NOT_SIMULATED = " (not in the scores: a simulated policy drives every service of the scenario)"


def cell_payload(scenario: ScenarioInput, variant: Variant, seed: int) -> dict:
    """Plain data (picklable, JSON-able) a worker runs a cell from."""
    # the files as shown (for messages); the key leaves them out: the same from any folder or machine
    return {"scenario_text": scenario.text, "scenario_path": scenario.file, "scenario_folder": scenario.folder,
            "seed": int(seed), "traces": scenario.traces, **variant_payload(variant)}


def variant_payload(variant: Variant) -> dict:
    """The part of a cell's payload that says what controller it runs (:func:`cell_spec` reads
    only this): the same for the variant on every scenario and seed."""
    payload = {"policy_text": variant.policy_text, "policy_file": variant.policy_file,
               "retarget_pct": variant.target_pct}
    if variant.scaler:  # only then: the keys of every other cell stay as they were (their stored cells too)
        payload |= {"scaler": variant.scaler, "scaler_text": variant.scaler_text}
    return payload


# --- running one cell ----------------------------------------------------------------------------


def run_cell(payload: dict, on_fraction: Callable[[float], None] | None = None) -> dict:
    """Run one cell; its scores (simulators.score.score_run), wall and CPU time, and which worker
    (host:pid) ran it. Runs in a worker. ``on_fraction``: called with the share of the cell's
    ticks done (0..1], about 200 times a cell."""
    from simulators.runner import run_controller

    started, cpu = time.perf_counter(), time.process_time()
    sc = _scenario_of(payload["scenario_text"], payload["scenario_path"], payload["seed"],
                      payload.get("scenario_folder"), payload.get("traces", ""))
    if traces_digest(sc.shapes) != payload.get("traces", ""):  # its key promised other load than this
        raise RuntimeError(f"{payload['scenario_path']}: a trace it replays is not the one the sweep started with "
                           "(edited since, or another copy on this machine); run the sweep again")
    spec = _spec_of(tuple(payload.get(k) for k in SPEC_FIELDS))
    ticks = sc.tick_count
    on_tick = (lambda k: on_fraction(k / ticks)) if on_fraction is not None and ticks else None
    # the load chunk by chunk and no trajectory (only the scores are kept): memory O(services), the
    # same numbers as the whole (T, S) load at once (tests/simulators: chunk sizes)
    run, _ = run_controller(sc, spec, None, keep_records=False, keep_trajectory=False, on_tick=on_tick)
    return {"scores": run.scores, "elapsed_s": round(time.perf_counter() - started, 3),
            "cpu_s": round(time.process_time() - cpu, 3), "worker": f"{os.uname().nodename}:{os.getpid()}"}


#: The payload fields :func:`cell_spec` reads (variant_payload's): a cell's controller is a function of these.
SPEC_FIELDS = ("policy_text", "policy_file", "retarget_pct", "scaler", "scaler_text")


# A process runs many cells of one scenario and seed (one per variant) and of one variant (one per
# scenario and seed): each was parsed and validated again for every cell (YAML in Python, ~2 ms a
# scenario, ~3 ms a policy: a quarter to a third of a 40-minute cell's CPU). Both are frozen
# dataclasses that a run only reads (it builds its own cluster and controller from them: the same
# numbers on reuse, tests/simulators/test_sweep.py), so each process keeps the last few. A
# scenario's entry is keyed by the digest of the traces its cells' keys promise: a hit replays the
# load read when that digest was current (what the key stands for); a miss reads the files again,
# and a cell whose trace changed since its grid was built refuses to run (run_cell), as before.
@functools.lru_cache(maxsize=4)  # a few scenarios: one with long traces holds them in memory
def _scenario_of(text: str, file: str, seed: int, folder: str | None, traces: str):
    from simulators.scenario import load_scenario_text

    return load_scenario_text(text, file, seed=seed, folder=folder)


@functools.lru_cache(maxsize=64)  # a grid's variants: small (a policy each)
def _spec_of(fields: tuple):
    return cell_spec(dict(zip(SPEC_FIELDS, fields)))


def cell_spec(payload: dict):
    """The runner.ControllerSpec a cell runs: its policy (re-targeted for an hpa variant), or its
    health-only policy beside its scaler."""
    from controller.policy import load_policy_text
    from simulators.frontier import retargeted
    from simulators.runner import ControllerSpec

    if payload.get("scaler"):
        return scaler_spec(payload)
    policy = [p for p in load_policy_text(payload["policy_text"], payload["policy_file"]) if p.scales][0]
    if payload.get("retarget_pct") is not None:
        policy = retargeted(policy, payload["retarget_pct"])
    return ControllerSpec(policy.name, "policy", policy.name, policy=policy)


def check_bindings_of(grid: "Grid") -> None:
    """SweepError naming what a scenario does not bind of what a variant's policy reads (a metric,
    a check: runner.check_bindings, with how to bind it), each said once, before any cell runs:
    it was said by the first cell that ran it, after the output folder was made."""
    from simulators.runner import check_bindings
    from simulators.scenario import load_scenario_text

    specs = [cell_spec(variant_payload(v)) for v in grid.variants]  # each policy loaded once, not per scenario
    problems: dict[str, str] = {}  # message -> the scenario it was first found in
    for s in grid.scenarios:
        scenario = load_scenario_text(s.text, s.path, folder=s.folder)
        for spec in specs:
            try:
                check_bindings(scenario, [spec])
            except ValueError as exc:
                problems.setdefault(str(exc), s.origin)
    if problems:
        raise SweepError([FieldError(origin, None, "", message) for message, origin in problems.items()])


def scaler_spec(payload: dict):
    """The runner.ControllerSpec of a cell with a ``scaler``: its health-only policy beside it
    (runner.healing_controllers' first), or with no policy text, the scaler alone (its second)."""
    from controller.policy import load_policy_text
    from simulators.runner import healing_controllers, scaler_alone

    hpa = load_policy_text(payload["scaler_text"], "hpa preset")[0] if payload["scaler_text"] else None
    if not payload["policy_text"]:
        return scaler_alone(payload["scaler"], hpa)
    [healer] = load_policy_text(payload["policy_text"], payload["policy_file"])
    return healing_controllers(healer, payload["scaler"], [], hpa, None)[0]


# --- storing cells -------------------------------------------------------------------------------


class CellStore:
    """Finished cells, one JSON file each under ``folder`` (created), written atomically.

    A stored file that cannot be read back as a cell (truncated, edited, another program's) is
    not overwritten: it is renamed to ``KEY.json.unreadable`` (``.unreadable.1``, ... if taken),
    ``note`` is told what was wrong and where the file went, and the cell runs again.
    """

    def __init__(self, folder: str | Path, note: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.note = note or (lambda message: print(f"setpoint: {message}", file=sys.stderr))

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored record, or None: not stored, or unreadable (set aside, then re-run)."""
        path = self.path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, not JSON
            return self._set_aside(path, f"{exc.strerror or exc}" if isinstance(exc, OSError) else f"not JSON ({exc})")
        except RecursionError:  # thousands of nested [[[: json.loads recurses
            return self._set_aside(path, "not JSON (nested too deep)")
        problem = record_problem(record, key)
        return record if problem is None else self._set_aside(path, problem)

    def _set_aside(self, path: Path, problem: str) -> None:
        kept = path.with_name(f"{path.name}.unreadable")
        n = 0
        while kept.exists():
            n += 1
            kept = path.with_name(f"{path.name}.unreadable.{n}")
        try:
            os.replace(path, kept)
        except OSError as exc:
            self.note(f"{shown_path(path)}: unreadable stored cell ({problem}) and it cannot be renamed "
                      f"({exc.strerror or exc}); running the cell again")
            return None
        self.note(f"{shown_path(path)}: unreadable stored cell ({problem}); kept as {kept.name}, running the cell again")
        return None

    def put(self, cell: Cell, outcome: dict) -> None:
        write_cell(self.folder, cell, outcome)


def write_cell(folder: str | Path, cell: Cell, outcome: dict) -> None:
    """``cell``'s record (its names and ``outcome``) as ``folder/KEY.json``, atomically: written whole
    to a file of this process's own, then renamed (a reader sees the whole record or none)."""
    record = {"key": cell.key, "scenario": cell.scenario, "variant": cell.variant, "seed": cell.seed, **outcome}
    target = Path(folder) / f"{cell.key}.json"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)


#: Scores that count events: whole numbers in a cell's record (means over seeds come later).
COUNT_SCORES = ("replica_changes", "reversals")


def record_problem(record: object, key: str | None = None) -> str | None:
    """What makes a stored cell unusable by the merge, or None: it must be the cell of ``key``
    (a file copied over another is another cell's), with its scores there, numbers that can be
    (not negative; counts whole)."""
    from simulators.score import SCORE_KEYS

    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if key is not None and record.get("key") != key:
        return f"it holds the record of another cell (key {str(record.get('key'))[:40]!r})"
    scores = record.get("scores")
    if not isinstance(scores, dict):
        return "no scores object"
    for name in SCORE_KEYS:
        value = scores.get(name)
        if name == "mitigation_seconds":
            if not isinstance(value, dict) or not all(v is None or (finite_number(v) and v >= 0) for v in value.values()):
                return f"scores.{name}: expected an object of seconds (>= 0) or nulls"
        elif not finite_number(value) or value < 0:
            return f"scores.{name}: expected a number >= 0, got {json.dumps(value)[:40]}"
        elif name in COUNT_SCORES and value != int(value):
            return f"scores.{name}: expected a whole number, got {json.dumps(value)[:40]}"
    return None


# --- executors ---------------------------------------------------------------------------------------

#: on_cell(cell, done, total, cached): called once per cell, in the collecting process.
OnCell = Callable[[Cell, int, int, bool], None]
#: on_progress(cell, fraction): a running cell's share of its ticks done (0..1], in the collecting
#: process; from this process and local workers (not from Ray, whose cells report when they end).
OnProgress = Callable[[Cell, float], None]
#: Seconds between reads of the local workers' progress while cells run.
PROGRESS_POLL_S = 0.25
#: A worker sends a cell's progress at most this often (s). A cell reports about 200 times, and
#: sent each time (pickled, through the queue's pipe, read here) that cost a 40 ms cell 10% of
#: its CPU, plus this process's reads competing with the workers for the cores; the bar is
#: redrawn every PROGRESS_POLL_S anyway.
PROGRESS_SEND_S = 0.1


class GridProgress:
    """How far a grid's run is, in its cells' work (ticks x services): finished cells whole,
    running ones by their share of ticks done. Fed by :func:`run_grid`'s ``on_cell`` and
    ``on_progress``; what a progress bar shows (a long cell moves it too, not only its end)."""

    def __init__(self, cells: Sequence[Cell]):
        self.total = float(sum(c.work for c in cells)) or 1.0
        self.cells = len(cells)
        self.done_cells = 0
        self._done = 0.0
        self._running: dict[str, tuple[Cell, float]] = {}

    def cell_done(self, cell: Cell, done: int, total: int, cached: bool) -> None:
        self._running.pop(cell.key, None)
        self._done += cell.work
        self.done_cells = done

    def cell_progress(self, cell: Cell, fraction: float) -> None:
        self._running[cell.key] = (cell, min(max(fraction, 0.0), 1.0))

    @property
    def completed(self) -> float:
        """Work done, 0..total."""
        return min(self.total, self._done + sum(c.work * f for c, f in self._running.values()))

    def running(self, most: int = 2) -> str:
        """The running cells, e.g. ``nasa-july setpoint-default 45%, step hpa@50% 10%``."""
        shown = [f"{c.scenario} {c.variant or 'policy'} {f:.0%}" for c, f in list(self._running.values())[:most]]
        more = len(self._running) - len(shown)
        return ", ".join(shown) + (f" (+{more})" if more > 0 else "")


def run_grid(cells: Sequence[Cell], store: CellStore, *, jobs: int = 1, ray_address: str | None = None,
             on_cell: OnCell | None = None, limit: int | None = None,
             pool: LocalPool | None = None, on_progress: OnProgress | None = None,
             say: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Run every cell not in ``store`` and store it; return key -> record for every cell.

    ``limit``: stop after running this many new cells (what an interrupted run leaves).
    ``pool``: local worker processes to reuse (:func:`local_pool`; default: one for this call, which
    tells ``say`` what a stop waits for: one line, parallel.stop_workers).
    Cells with equal keys run once. A failing cell raises SweepError after the cells already
    finished are stored.
    """
    records: dict[str, dict] = {}
    pending: dict[str, Cell] = {}
    total = len(cells)
    done = 0
    for cell in cells:
        stored = records.get(cell.key) or store.get(cell.key)
        if stored is not None:
            records[cell.key] = stored
            done += 1
            if on_cell:
                on_cell(cell, done, total, True)
        else:
            pending.setdefault(cell.key, cell)
    todo = list(pending.values())[:limit] if limit is not None else list(pending.values())
    twins = {}  # cells sharing a key with one that runs: reported when it finishes
    for cell in cells:
        if cell.key in pending and cell is not pending[cell.key]:
            twins.setdefault(cell.key, []).append(cell)

    def finished(cell: Cell, outcome: dict, stored: bool = False) -> None:
        """``cell``'s ``outcome`` stored (``stored``: by the worker that ran it) and read back: what
        a rerun reads, and a check that the file is whole."""
        nonlocal done
        if not stored:
            store.put(cell, outcome)
        record = store.get(cell.key)
        if record is None and stored:  # gone since (or set aside): stored here, as before
            store.put(cell, outcome)
            record = store.get(cell.key)
        records[cell.key] = record or outcome
        for c in [cell] + twins.get(cell.key, []):
            done += 1
            if on_cell:
                on_cell(c, done, total, c is not cell)

    if not todo:
        pass
    elif ray_address is not None:
        from simulators.sweep_ray import run_on_ray  # imports this module

        run_on_ray(todo, ray_address, jobs, finished)
    elif jobs <= 1 or len(todo) <= 1:
        for cell in todo:
            raise_if_terminated()
            finished(cell, _guarded(cell, on_progress))
    elif pool is not None:
        _run_pool(todo, pool, finished, store.folder, on_progress)
    else:  # no more workers than cells: each worker is a process of its own (memory, start-up)
        with local_pool(min(jobs, len(todo)), say=say) as new_pool:
            _run_pool(todo, new_pool, finished, store.folder, on_progress)
    return records


def _guarded(cell: Cell, on_progress: OnProgress | None = None) -> dict:
    """``cell`` run in this process."""
    try:
        return run_cell(cell.payload, (lambda f: on_progress(cell, f)) if on_progress is not None else None)
    except Exception as exc:
        raise _cell_failed(cell, exc) from exc


#: In a local worker process: where its cells report their progress (set by the pool's initializer).
_worker_progress = None


def _init_worker(queue) -> None:
    """A local worker's initializer: report progress on ``queue`` (a multiprocessing.Queue), with
    its own signal handling (parallel.take_worker_signals: ends at SIGTERM, ignores SIGINT, ends
    with the command).

    Ctrl-C at a terminal sends SIGINT to the whole process group: the command stops the workers
    (SIGTERM, LocalPool.shutdown). A worker's own KeyboardInterrupt, raised while it waited for a
    cell, ended it with multiprocessing's "Process ForkProcess-2:" and a traceback on stderr."""
    global _worker_progress
    queue.cancel_join_thread()  # progress is advisory: a worker never waits at exit to deliver it
    _worker_progress = queue
    # forked with both held (_run_pool): a SIGTERM sent before now (shutdown's terminate) ends it here
    take_worker_signals()


def _run_cell_in_worker(key: str, payload: dict) -> dict:
    """:func:`run_cell` in a local worker, its progress sent as (key, fraction) at most every
    PROGRESS_SEND_S."""
    queue = _worker_progress
    if queue is None:
        return run_cell(payload, None)
    last_sent = time.monotonic()  # nothing before the first PROGRESS_SEND_S of a cell

    def report(fraction: float) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= PROGRESS_SEND_S:
            last_sent = now
            queue.put((key, fraction))

    return run_cell(payload, report)


def _run_cells_in_worker(cells: Sequence[Cell], folder: str) -> tuple[list[tuple[dict, bool]], BaseException | None]:
    """A task of a local worker: ``cells`` in turn (:func:`_run_cell_in_worker`), each stored under
    ``folder`` as it finishes (:func:`write_cell`; a stop loses only the cell running). Returns each
    finished cell's (outcome, stored here), and the exception of the cell that failed (the next
    one; the rest not run) or None. Not stored (OSError): the collecting process stores it, and
    says why if it cannot either."""
    done: list[tuple[dict, bool]] = []
    for cell in cells:
        try:
            outcome = _run_cell_in_worker(cell.key, cell.payload)
        except Exception as exc:
            return done, _sendable(exc)
        try:
            write_cell(folder, cell, outcome)
            done.append((outcome, True))
        except OSError:
            done.append((outcome, False))
    return done, None


def _sendable(exc: Exception) -> Exception:
    """``exc``, or where it cannot be pickled back to the collecting process, a RuntimeError saying it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


#: A task of a local worker holds at most this many cells, and this much work (ticks x services:
#: 8 cells of 40 simulated minutes, 2 services, ~0.15 s): the executor's cost per task (pickling,
#: its threads here waking; ~0.2-0.6 ms, a few % of a short cell) is paid once for them. A cell
#: of more work is a task alone.
CHUNK_CELLS = 8
CHUNK_WORK = 8_000
#: A task holds at most 1/CHUNK_SHARE of each worker's share of the cells not handed out yet, so
#: the tasks shrink to single cells at the end and the workers finish together.
CHUNK_SHARE = 4


def next_chunk(rest: deque, jobs: int) -> list[Cell]:
    """The next task's cells, taken from the left of ``rest`` (costliest first): at least one, at
    most CHUNK_CELLS, CHUNK_WORK and ``len(rest) / (CHUNK_SHARE * jobs)`` of them."""
    most = max(1, min(CHUNK_CELLS, len(rest) // (CHUNK_SHARE * jobs)))
    chunk = [rest.popleft()]
    work = chunk[0].work
    while rest and len(chunk) < most and work + rest[0].work <= CHUNK_WORK:
        work += rest[0].work
        chunk.append(rest.popleft())
    return chunk


def _cell_failed(cell: Cell, exc: BaseException) -> SweepError:
    return SweepError([FieldError(cell.scenario, None, "", f"cell {cell.variant} seed {cell.seed} failed: "
                                                           f"{type(exc).__name__}: {exc}")])


class LocalPool:
    """``jobs`` local worker processes for :func:`run_grid`, started on first use, reusable.

    Small cells scale only if the workers start warm: a cold process spends about a second of
    CPU importing the simulator, numpy and numba and loading the compiled kernels from the disk
    cache. So the workers are forked from this process once it is warm (the first cell runs
    here, loading all that, and every worker inherits it: no second import, no second load).
    Forking is safe only while this process runs no other thread (a lock another thread holds at
    the fork stays held in the child forever), so when other threads are alive (a progress bar,
    a Ray client, a test runner) the workers come from a forkserver that imports the simulator,
    and each warms up on its first cell. ``start_method`` forces one ("fork" or "forkserver").
    """

    def __init__(self, jobs: int, start_method: str | None = None, say: Callable[[str], None] | None = None):
        self.jobs = max(1, jobs)
        self.start_method = start_method
        self.say = say  # told what a stop waits for (parallel.stop_workers)
        self.executor: ProcessPoolExecutor | None = None
        self.progress = None  # the workers' (key, fraction) messages: a multiprocessing.Queue

    def method(self) -> str:
        """How the workers start if started now: fork when this process has no other thread."""
        return self.start_method or start_method()

    def start(self) -> ProcessPoolExecutor:
        if self.executor is None:
            ctx = multiprocessing.get_context(self.method())
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload(["simulators.sweep", "simulators.runner"])
            self.progress = ctx.Queue()  # no thread in this process: only the workers put
            self.executor = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx,
                                                initializer=_init_worker, initargs=(self.progress,))
        return self.executor

    def progress_messages(self) -> list[tuple[str, float]]:
        """The (cell key, fraction) messages the workers sent since the last call."""
        out: list[tuple[str, float]] = []
        while self.progress is not None:
            try:
                out.append(self.progress.get_nowait())
            except queue_module.Empty:
                break
        return out

    def shutdown(self, cancel_futures: bool = False, terminate: bool = False) -> None:
        """Stop the workers: after the cells they run (``terminate``: at once, what they run lost,
        as when the command is interrupted; finished cells are stored already). Terminated, they
        end within about parallel.STOP_GRACE_S (SIGTERM, then SIGKILL), whatever they run."""
        if self.executor is not None:
            if terminate:
                # SIGTERM, SIGKILL to any still alive STOP_GRACE_S later, each reaped: a worker stuck
                # in native code (or ignoring SIGTERM) outlived terminate(), and the wait below, on
                # an executor that joins its workers without a limit, hung the command for ever
                stop_workers(list((getattr(self.executor, "_processes", None) or {}).values()), say=self.say)
            # Waited for even after terminate: the workers are gone, so the executor's manager thread
            # ends at once, where left running it raced the interpreter's exit (concurrent.futures'
            # _python_exit woke it through a pipe already closed: "OSError: Bad file descriptor").
            self.executor.shutdown(wait=True, cancel_futures=cancel_futures or terminate)
            self.executor = None
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.shutdown(cancel_futures=True, terminate=exc_type is not None)


def local_pool(jobs: int, start_method: str | None = None, say: Callable[[str], None] | None = None) -> LocalPool:
    """``jobs`` local worker processes, started warm on first use (see :class:`LocalPool`)."""
    return LocalPool(jobs, start_method, say)


def _run_pool(cells: Sequence[Cell], pool: LocalPool, finished: Callable[..., None], folder: str | Path,
              on_progress: OnProgress | None = None) -> None:
    """Run ``cells`` on ``pool``'s workers, the costliest first (the cheap ones then fill the
    tail), in tasks of a few cells (:func:`next_chunk`); a few tasks in flight per worker, so the
    queue never holds the whole grid. The workers store each cell under ``folder`` as it finishes
    (``finished(cell, outcome, stored)`` reads it back). The workers' progress is read every
    PROGRESS_POLL_S while they run."""
    todo = sorted(cells, key=lambda c: -c.work)  # stable: grid order among equals
    if pool.executor is None and pool.method() == "fork":
        first, todo = todo[0], todo[1:]
        finished(first, _guarded(first, on_progress))  # warms this process; the workers fork from it
        if not todo:
            return
    fresh = pool.executor is None  # the first submit starts every worker (forked here, or by a forkserver)
    executor = pool.start()
    rest = deque(todo)
    futures: dict = {}  # future -> its cells

    def submit(n: int) -> None:
        for _ in range(n):
            if not rest:
                return
            chunk = next_chunk(rest, pool.jobs)
            futures[executor.submit(_run_cells_in_worker, chunk, str(folder))] = chunk

    # the first submit forks the workers (fresh): heap frozen for them
    with heap_frozen_for_forks() if fresh else contextlib.nullcontext():
        with stop_signals_held():  # a Ctrl-C or SIGTERM meanwhile raises after the workers start, here
            submit(2 * pool.jobs)
        raise_if_terminated()  # one another thread took during a fork: its handler left it to us
    try:
        while futures:
            ready, _ = wait(futures, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
            submit(len(ready))
            for f in ready:
                chunk = futures.pop(f)
                try:
                    done, failure = f.result()
                except Exception as exc:  # the worker ended (BrokenProcessPool): what it stored is kept
                    raise _cell_failed(chunk[0], exc) from exc
                for cell, (outcome, stored) in zip(chunk, done):
                    finished(cell, outcome, stored)
                if failure is not None:
                    raise _cell_failed(chunk[len(done)], failure) from failure
            messages = pool.progress_messages()  # read even when not shown: the pipe never fills
            if on_progress is not None and messages:  # after the finished cells: their late messages drop
                running = {c.key: c for chunk in futures.values() for c in chunk}
                for key, fraction in messages:
                    if key in running:
                        on_progress(running[key], fraction)
            raise_if_terminated()  # after the finished cells are stored
    finally:
        for f in futures:
            f.cancel()


def ray_address_from(option: str | None) -> str | None:
    """``--ray`` if given, else $RAY_ADDRESS, else None (local processes)."""
    return option or os.environ.get("RAY_ADDRESS") or None


__all__ = ["build_grid", "Cell", "CellStore", "Grid", "GridProgress", "ScenarioInput", "SweepError", "Variant", "cell_payload", "hpa_variants",
           "policy_variants", "read_policy_base", "read_scenario_input", "run_cell", "run_grid", "local_pool",
           "LocalPool", "ray_address_from"]
