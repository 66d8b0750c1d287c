"""``setpoint tune``: search a policy's parameters for the fewest replica-hours within an SLO budget.

The search is Optuna's TPE sampler with a fixed seed, on top of the sweep runner: each trial is
one policy variant (the ``--set`` ranges, or :func:`default_space`) run as sweep cells on every
training scenario and seed (in parallel, stored, so a rerun of the same search is read back),
scored as the sum over training scenarios of the mean replica-hours over seeds. A trial is
feasible when on every training scenario its mean SLO-violation minutes are within the budget:
at most ``max_violation_minutes``, or at most HPA's at equal cost (the hpa preset swept over CPU
targets on the same scenario and seeds, interpolated at the trial's replica-hours). The chosen
variant is the feasible trial with the fewest replica-hours (ties: the earlier trial); it is
then scored on the held-out scenarios, which the search never saw, so over-fitting shows.

Trials run one after another (each trial's cells in parallel), so the search and its result do
not depend on the number of workers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from controller.errors import FieldError
from simulators.frontier import DEFAULT_TARGETS_PCT, equal_cost
from controller.policy import format_duration, parse_duration
from simulators.policy_set import (EVERY, PolicyBase, Range, SetError, Setting, apply_settings, parse_setting, policy_text,
                                   short_names)
from simulators.result import FrontierPoint
from simulators.score import DECIMALS, warnings_json
from simulators.sweep import (HPA_KIND, CellStore, Grid, OnCell, OnProgress, ScenarioInput, SweepError, Variant,
                              check_bindings_of, check_grid_size, hpa_variants, local_pool, run_grid)

#: Default search: each metric's target from this fraction of the policy's to this one.
TARGET_SPAN = (0.6, 1.4)
#: Default search of the scale-down stabilization window, seconds.
STABILIZATION_SPAN_S = (0.0, 1800.0, 60.0)
#: Minutes within this of the budget meet it (scores are rounded to 3 decimals).
BUDGET_TOLERANCE = 1e-6
TARGET_KEYS = ("averagePerReplica", "value", "utilization")


@dataclass(frozen=True)
class Budget:
    """The SLO budget per training scenario: a fixed number of minutes, or HPA at equal cost."""

    max_violation_minutes: float | None = None  # None: HPA at equal cost

    def describe(self) -> str:
        if self.max_violation_minutes is not None:
            return f"at most {self.max_violation_minutes:g} SLO-violation minutes per scenario (mean over seeds)"
        return "at most HPA's SLO-violation minutes at equal cost per scenario (mean over seeds)"


@dataclass
class Evaluation:
    """A variant's scores per scenario (means over seeds) and its budget on each."""

    per_scenario: dict[str, dict[str, float]]  # scenario -> replica_hours, slo_violation_minutes, allowed
    feasible: bool
    excess: float  # the largest (minutes - allowed) over scenarios; <= 0 when feasible

    @property
    def replica_hours(self) -> float:
        return round(sum(s["replica_hours"] for s in self.per_scenario.values()), DECIMALS)

    @property
    def violation_minutes(self) -> float:
        return round(sum(s["slo_violation_minutes"] for s in self.per_scenario.values()), DECIMALS)


@dataclass
class TuneResult:
    base: PolicyBase
    settings: list[Setting]
    budget: Budget
    trials: list[dict] = field(default_factory=list)  # number, values, replica_hours, minutes, feasible, excess
    best: dict | None = None  # the chosen trial
    best_text: str = ""  # the chosen variant's YAML
    train: Evaluation | None = None
    holdout: Evaluation | None = None
    base_holdout: Evaluation | None = None
    base_train: Evaluation | None = None
    sampler_seed: int = 0
    seeds: int = 1
    train_scenarios: list[ScenarioInput] = field(default_factory=list)
    holdout_scenarios: list[ScenarioInput] = field(default_factory=list)


def default_space(base: PolicyBase) -> list[Setting]:
    """Each metric's target from 0.6x to 1.4x of the policy's (an averagePerReplica target with a
    capacityPerReplica at most what the capacity allows: below capacity / (1 + tolerance.up),
    where a scale-up would start at the capacity itself), and the scale-down stabilization window
    from 0s to 30m by 1m."""
    out = []
    metrics = ((base.data.get("spec") or {}).get("scaling") or {}).get("metrics") or []
    tolerance_up = base.policy.params.tolerance_up
    for i, metric in enumerate(metrics):
        target = metric.get("target") if isinstance(metric, dict) else None
        for key in TARGET_KEYS:
            if isinstance(target, dict) and key in target:
                value = target[key]
                percent = isinstance(value, str) and value.endswith("%")
                x = float(value[:-1]) if percent else float(value)
                lo, hi = round(x * TARGET_SPAN[0], 3), round(x * TARGET_SPAN[1], 3)
                capacity = target.get("capacityPerReplica") if key == "averagePerReplica" else None
                if isinstance(capacity, (int, float)) and capacity > 0:  # the rule: capacity > target (1 + up)
                    hi = min(hi, math.floor(capacity / (1.0 + tolerance_up) * 1000.0 - 1.0) / 1000.0)
                path = ("spec", "scaling", "metrics", i, "target", key)
                text = f"{_path_text(path)}={lo:g}{'%' if percent else ''}..{hi:g}{'%' if percent else ''}"
                out.append(parse_setting(text, allow_continuous=True))
    lo, hi, step = STABILIZATION_SPAN_S
    out.append(parse_setting("spec.scaling.behavior.scaleDown.stabilizationWindow="
                             f"{format_duration(lo)}..{format_duration(hi)}:{format_duration(step)}"))
    return out


def _path_text(path: tuple) -> str:
    from controller.policy.messages import format_path

    return format_path(path)


@functools.cache
def _schema() -> dict:
    from controller.policy.schema_export import policy_json_schema

    return policy_json_schema()


def _schema_node(node: dict | None) -> dict | None:
    """``node`` with its ``$ref`` followed; of an ``anyOf`` / ``oneOf`` without a type of its own
    (an optional field), the option that is not null."""
    while isinstance(node, dict):
        if "$ref" in node:
            node = _schema()["$defs"].get(node["$ref"].rsplit("/", 1)[-1])
        elif ("anyOf" in node or "oneOf" in node) and "type" not in node:
            options = [o for o in node.get("anyOf", node.get("oneOf")) if o.get("type") != "null"]
            node = options[0] if len(options) == 1 else {"options": options}
        else:
            return node
    return None


def integer_field(path: tuple) -> bool:
    """Whether the policy schema types the field at ``path`` (a ``--set`` path, EVERY for ``[*]``)
    as a whole number (``spec.replicas.max``): a search draws whole numbers there, since the
    policy refuses 17.342 replicas."""
    node = _schema_node(_schema())
    for part in path:
        if node is None:
            return False
        node = _schema_node((node.get("properties") or {}).get(part) if isinstance(part, str) else node.get("items"))
    return node is not None and node.get("type") == "integer"


def whole_range(setting: Setting) -> tuple[int, int] | None:
    """(lo, hi) of a range on an integer field, its bounds rounded inward; None for other settings.
    ValueError when no whole number lies in the range, or its step is not one."""
    r = setting.range
    if r is None or not integer_field(setting.path):
        return None
    lo, hi = math.ceil(r.lo - 1e-9), math.floor(r.hi + 1e-9)
    if r.step is not None and not r.integer:
        raise ValueError("a whole number: give the range whole-number bounds and step")
    if lo > hi:
        raise ValueError("a whole number, and the range holds none")
    return lo, hi


def check_whole_ranges(settings: Sequence[Setting]) -> None:
    """SetError naming each range on an integer field that :func:`whole_range` refuses: before
    the search, which would otherwise refuse every trial after HPA's frontier had run."""
    errors = []
    for st in settings:
        try:
            whole_range(st)
        except ValueError as exc:
            errors.append(FieldError(st.option, None, st.shown_path, f"{exc} (in {st.option} {st.text})"))
    if errors:
        raise SetError(errors)


def suggest(trial, setting: Setting, name: str) -> Any:
    """The trial's value of one setting, as the policy file writes it."""
    r = setting.range
    if r is None:
        return trial.suggest_categorical(name, list(setting.values))
    whole = whole_range(setting) if r.step is None else None
    if whole is not None:
        return trial.suggest_int(name, *whole)
    if r.step is not None:
        if r.integer:
            return r.render(trial.suggest_int(name, int(r.lo), int(r.hi), step=int(r.step)))
        n = int(math.floor((r.hi - r.lo) / r.step + 1e-9))
        return r.render(r.lo + r.step * trial.suggest_int(name, 0, n))  # on the grid, whatever the float error
    x = trial.suggest_float(name, r.lo, r.hi)
    digits = 0 if r.kind == "duration" else 1 if r.kind == "percent" else 3
    return Range(r.lo, r.hi, None, r.kind, False).render(round(x, digits))


def get_value(data: Any, path: tuple) -> Any:
    """The value at ``path`` of a policy document, or None where it is absent (EVERY: the items'
    common value, None where they differ)."""
    for i, part in enumerate(path):
        if part is EVERY:
            values = [get_value(item, path[i + 1:]) for item in data] if isinstance(data, list) and data else [None]
            return values[0] if all(v == values[0] for v in values) else None
        if isinstance(part, int):
            data = data[part] if isinstance(data, list) and part < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data


def start_param(setting: Setting, value: Any) -> Any:
    """The Optuna parameter value (as :func:`suggest` draws it) that gives ``value`` of the
    policy file, or None when ``value`` is not in the setting's space."""
    r = setting.range
    if r is None:
        return value if value in setting.values else None
    try:
        if r.kind == "duration":
            x = parse_duration(value)
        elif r.kind == "percent":
            x = float(str(value).rstrip("%")) if str(value).endswith("%") else None
        else:
            x = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    except ValueError:
        return None
    if x is None or not r.lo <= x <= r.hi:
        return None
    if r.step is None:
        if whole_range(setting) is not None:
            return int(x) if float(x).is_integer() else None
        return x
    k = (x - r.lo) / r.step
    if abs(k - round(k)) > 1e-9:
        return None  # off the grid
    return int(round(x)) if r.integer else int(round(k))


def start_params(base: PolicyBase, settings: Sequence[Setting], names: Sequence[str]) -> dict | None:
    """The untuned policy as a first trial, when each of its values lies in the space."""
    params = {n: start_param(s, get_value(base.data, s.path)) for s, n in zip(settings, names)}
    return params if all(v is not None for v in params.values()) else None


def evaluate(means: dict[str, dict[str, float]], budget: Budget, hpa: dict[str, list[FrontierPoint]] | None) -> Evaluation:
    """Scores and budget per scenario of one variant's ``means`` (scenario -> scores)."""
    per, excess = {}, -math.inf
    for scenario, s in means.items():
        if budget.max_violation_minutes is not None:
            allowed = budget.max_violation_minutes
        else:
            e = equal_cost("variant", s["replica_hours"], s["slo_violation_minutes"], hpa[scenario])
            allowed = e.hpa_slo_violation_minutes
        per[scenario] = {"replica_hours": s["replica_hours"], "slo_violation_minutes": s["slo_violation_minutes"],
                         "allowed_minutes": allowed}
        excess = max(excess, s["slo_violation_minutes"] - allowed)
    return Evaluation(per, excess <= BUDGET_TOLERANCE, round(excess, DECIMALS))


class Runner:
    """Runs variants on scenarios x seeds through the sweep runner; means over seeds."""

    def __init__(self, store: CellStore, seeds: int, jobs: int, ray_address: str | None,
                 on_grid: Callable[[list, str], tuple[OnCell | None, OnProgress | None]] | None = None,
                 say: Callable[[str], None] | None = None):
        """``on_grid(cells, label)``: called as each grid starts (label: ``trial 3``, ``hpa frontier``,
        ...); gives run_grid's ``on_cell`` and ``on_progress`` for it (a progress bar). ``say``: told
        what a stop of the local workers waits for (one line, parallel.stop_workers)."""
        check_grid_size(1, 1, seeds)  # before the first trial: its grid of cells is built in memory
        self.store, self.seeds, self.jobs, self.ray_address = store, seeds, jobs, ray_address
        self.on_grid, self.say = on_grid, say
        self.pool = None  # local worker processes, started on first need, kept across trials

    def close(self, interrupted: bool = False) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True, terminate=interrupted)
            self.pool = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(interrupted=exc_type is not None)

    def means(self, scenarios: Sequence[ScenarioInput], variants: Sequence[Variant],
              label: str = "") -> dict[str, dict[str, dict]]:
        """variant -> scenario -> mean scores over the seeds."""
        grid = Grid(tuple(scenarios), tuple(variants), self.seeds)
        cells = grid.cells()
        if self.pool is None and self.jobs > 1 and self.ray_address is None:
            self.pool = local_pool(self.jobs, say=self.say)
        on_cell, on_progress = self.on_grid(cells, label) if self.on_grid else (None, None)
        records = run_grid(cells, self.store, jobs=self.jobs, ray_address=self.ray_address, pool=self.pool,
                           on_cell=on_cell, on_progress=on_progress)
        acc: dict[str, dict[str, list[dict]]] = {}
        for c in cells:
            acc.setdefault(c.variant, {}).setdefault(c.scenario, []).append(records[c.key]["scores"])
        return {v: {s: {k: round(sum(r[k] for r in runs) / len(runs), DECIMALS)
                        for k in ("replica_hours", "slo_violation_minutes")} for s, runs in by.items()}
                for v, by in acc.items()}

    def hpa_frontier(self, scenarios: Sequence[ScenarioInput], hpa: PolicyBase) -> dict[str, list[FrontierPoint]]:
        variants = hpa_variants(hpa, DEFAULT_TARGETS_PCT)
        means = self.means(scenarios, variants, "hpa frontier ")
        return {s.name: [FrontierPoint(v.target_pct, means[v.name][s.name]["replica_hours"],
                                       means[v.name][s.name]["slo_violation_minutes"]) for v in variants]
                for s in scenarios}


def tune(base: PolicyBase, settings: Sequence[Setting], train: Sequence[ScenarioInput],
         holdout: Sequence[ScenarioInput], runner: Runner, budget: Budget, *, trials: int = 30,
         sampler_seed: int = 0, hpa: PolicyBase | None = None,
         on_trial: Callable[[dict], None] | None = None) -> TuneResult:
    """Search ``settings`` (default: :func:`default_space`) on ``train``; score the chosen
    variant (and the untuned policy) on ``train`` and ``holdout``."""
    try:
        import optuna
    except ImportError:
        raise SweepError([FieldError("setpoint tune", None, "", "needs Optuna, which is not installed: "
                                                                "pip install 'setpoint[tune]'")]) from None
    if not train:
        raise SweepError([FieldError("--scenarios", None, "", "give at least one training scenario")])
    if budget.max_violation_minutes is None and hpa is None:
        raise SweepError([FieldError("--hpa-policy", None, "", "the HPA budget needs the hpa preset policy")])
    untuned = Variant("untuned", "policy", base.file, policy_text(base.data))
    check_bindings_of(Grid(tuple(train) + tuple(holdout), (untuned,)))  # before HPA's frontier and the trials
    settings = list(settings) or default_space(base)
    names = short_names(settings)
    result = TuneResult(base, settings, budget, sampler_seed=sampler_seed, seeds=runner.seeds,
                        train_scenarios=list(train), holdout_scenarios=list(holdout))
    hpa_train = runner.hpa_frontier(train, hpa) if budget.max_violation_minutes is None else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)  # constraints: trial.set_constraint
    study = optuna.create_study(direction="minimize", sampler=sampler)
    first = start_params(base, settings, names)
    if first is not None:  # start from the policy as it is: the search can only improve on it
        study.enqueue_trial(first)
    for _ in range(trials):
        trial = study.ask()
        assigned = [(s, suggest(trial, s, n)) for s, n in zip(settings, names)]
        record = {"number": trial.number, "values": {n: v for n, (_, v) in zip(names, assigned)}}
        try:
            text, _ = apply_settings(base, assigned)
        except SetError as exc:  # a combination the policy rules refuse: infeasible, never chosen
            record |= {"error": str(exc.errors[0]), "feasible": False}
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            variant = Variant(f"trial-{trial.number}", "policy", base.file, text, record["values"])
            ev = evaluate(runner.means(train, [variant], f"trial {trial.number} ")[variant.name], budget, hpa_train)
            record |= {"replica_hours": ev.replica_hours, "slo_violation_minutes": ev.violation_minutes,
                       "feasible": ev.feasible, "excess": ev.excess, "text": text, "evaluation": ev}
            trial.set_constraint("slo_budget_excess_minutes", ev.excess)
            study.tell(trial, ev.replica_hours)
        result.trials.append(record)
        if on_trial:
            on_trial(record)
    feasible = [t for t in result.trials if t["feasible"]]
    base_variant = untuned
    result.base_train = evaluate(runner.means(train, [base_variant], "untuned ")["untuned"], budget, hpa_train)
    if not feasible:
        return result
    best = min(feasible, key=lambda t: (t["replica_hours"], t["slo_violation_minutes"], t["number"]))
    result.best, result.best_text, result.train = best, best["text"], best["evaluation"]
    if holdout:
        hpa_hold = runner.hpa_frontier(holdout, hpa) if budget.max_violation_minutes is None else None
        tuned = Variant("tuned", "policy", base.file, best["text"])
        means = runner.means(holdout, [tuned, base_variant], "held out ")
        result.holdout = evaluate(means["tuned"], budget, hpa_hold)
        result.base_holdout = evaluate(means["untuned"], budget, hpa_hold)
    return result


@dataclass(frozen=True)
class Miss:
    """A held-out scenario on which the tuned policy is over its SLO budget."""

    scenario: str
    minutes: float  # the tuned policy's SLO-violation minutes (mean over seeds)
    allowed: float | None  # the budget's minutes there (None: HPA's could not be interpolated)
    untuned: float | None  # the untuned policy's minutes there, for comparison

    @property
    def excess(self) -> float | None:
        return None if self.allowed is None else round(self.minutes - self.allowed, DECIMALS)

    def describe(self) -> str:
        over = "budget unknown" if self.allowed is None else f"budget {self.allowed:g}, over by {self.excess:g}"
        untuned = "" if self.untuned is None else f"; untuned: {self.untuned:g}"
        return f"{self.scenario}: {self.minutes:g} SLO-violation minutes ({over}{untuned})"


def holdout_misses(result: TuneResult) -> list[Miss]:
    """Each held-out scenario on which the chosen parameters miss the budget the search held the
    training scenarios to (none without held-out scenarios or a choice): over-fitting, shown."""
    if result.holdout is None:
        return []
    untuned = result.base_holdout.per_scenario if result.base_holdout is not None else {}
    return [Miss(name, s["slo_violation_minutes"], s["allowed_minutes"],
                 untuned.get(name, {}).get("slo_violation_minutes"))
            for name, s in result.holdout.per_scenario.items()
            if s["allowed_minutes"] is None or s["slo_violation_minutes"] > s["allowed_minutes"] + BUDGET_TOLERANCE]


def _scores_line(ev: Evaluation) -> list[str]:
    """One line per scenario: replica-hours, violation minutes and the budget (met or not)."""
    lines = []
    for name, s in ev.per_scenario.items():
        allowed = s["allowed_minutes"]
        met = allowed is not None and s["slo_violation_minutes"] <= allowed + BUDGET_TOLERANCE
        lines.append(f"  {name}: {s['replica_hours']:g} replica-hours, {s['slo_violation_minutes']:g} SLO-violation "
                     f"minutes (budget {'-' if allowed is None else f'{allowed:g}'}{'' if met else ', NOT met'})")
    return lines


def provenance(result: TuneResult, version: str, optuna_version: str, now: datetime | None = None) -> list[str]:
    """The search's provenance, one line each (written as comments above the tuned policy)."""
    now = now or datetime.now(timezone.utc)
    best = result.best
    seeds = lambda s: ", ".join(str(s.seed + k) for k in range(result.seeds))  # noqa: E731
    lines = [f"Tuned by `setpoint tune` (setpoint {version}, optuna {optuna_version}) on "
             f"{now.strftime('%Y-%m-%dT%H:%MZ')} from {result.base.file}.",
             f"Search: {len(result.trials)} trials, TPE sampler seed {result.sampler_seed}; objective: fewest "
             f"replica-hours summed over the training scenarios; budget: {result.budget.describe()}.",
             "Parameters searched: " + "; ".join(s.text for s in result.settings) + ".",
             "Training scenarios: " + "; ".join(f"{s.name} ({s.origin}, seeds {seeds(s)})" for s in result.train_scenarios) + ".",
             f"Chosen: trial {best['number']}: " + ", ".join(f"{k}={v}" for k, v in best["values"].items()) + ".",
             f"Training scores (total {result.train.replica_hours:g} replica-hours, {result.train.violation_minutes:g} "
             f"SLO-violation minutes; untuned: {result.base_train.replica_hours:g} and {result.base_train.violation_minutes:g}):",
             *_scores_line(result.train)]
    if result.holdout is not None:
        lines += ["Held-out scenarios (not seen by the search): " +
                  "; ".join(f"{s.name} ({s.origin}, seeds {seeds(s)})" for s in result.holdout_scenarios) + ".",
                  f"Held-out scores (total {result.holdout.replica_hours:g} replica-hours, "
                  f"{result.holdout.violation_minutes:g} SLO-violation minutes; untuned: "
                  f"{result.base_holdout.replica_hours:g} and {result.base_holdout.violation_minutes:g}; budget "
                  f"{'met' if result.holdout.feasible else 'NOT met'}):", *_scores_line(result.holdout)]
    else:
        lines.append("No held-out scenarios: pass --holdout to see how the choice does on scenarios it was not tuned on.")
    return lines


def tune_json(result: TuneResult) -> dict:
    """The search as JSON: every trial's values and scores, the choice, and its scores on the
    training and held-out scenarios (with the untuned policy's beside them)."""
    def ev(e: Evaluation | None) -> dict | None:
        return None if e is None else {"replica_hours": e.replica_hours, "slo_violation_minutes": e.violation_minutes,
                                       "feasible": e.feasible, "per_scenario": e.per_scenario}

    trials = [{k: v for k, v in t.items() if k not in ("text", "evaluation")} for t in result.trials]
    return {"policy_file": result.base.file, "budget": result.budget.describe(), "sampler_seed": result.sampler_seed,
            "seeds_per_scenario": result.seeds, "settings": [s.text for s in result.settings],
            "train_scenarios": [s.name for s in result.train_scenarios],
            "holdout_scenarios": [s.name for s in result.holdout_scenarios], "trials": trials,
            "chosen": None if result.best is None else result.best["number"],
            "train": ev(result.train), "untuned_train": ev(result.base_train),
            "holdout": ev(result.holdout), "untuned_holdout": ev(result.base_holdout),
            # the scenarios' warnings, each once (as a sweep's result.json has them per scenario)
            "warnings": warnings_json(dict.fromkeys(w for s in [*result.train_scenarios, *result.holdout_scenarios]
                                                    for w in s.warnings))}


def tuned_policy_text(result: TuneResult, version: str, optuna_version: str, now: datetime | None = None) -> str:
    """The chosen variant's YAML with the provenance as comments above it."""
    lines = [f"# {line}" for line in provenance(result, version, optuna_version, now)]
    return "\n".join(lines) + "\n" + result.best_text


__all__ = ["Budget", "Evaluation", "Miss", "Runner", "TuneResult", "default_space", "evaluate", "holdout_misses",
           "provenance", "tune", "tuned_policy_text", "tune_json", "HPA_KIND"]
