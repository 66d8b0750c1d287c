"""A backtest's scores, result.json, timeline.csv and report.html, in the simulator's shapes.

The runs come from :mod:`controller.runtime.backtest`; scores reuse the simulator's functions
(replica-hours, replica changes, reversals) plus capacity-risk minutes. result.json has the
simulator's layout (``schema_version``, ``scenario``, ``controllers``) with the backtest's own
facts under ``backtest``; ``slo_violation_minutes`` is null (a backtest has no latency model).
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from controller.model import jsonable
from controller.policy.summary import plural
from controller.runtime.backtest import LOAD_ASSUMPTION, BacktestRun, ReplayData, capacity_risk_minutes
from simulators.score import DECIMALS, SCHEMA_VERSION, replica_changes, replica_hours, reversals

ACTUAL = "actual"
MAX_TARGET_PLOTS = 8
#: How long the replicas that ran are carried forward over a gap in kube-state-metrics' series:
#: Prometheus' own lookback (an instant query reads a series up to 5 minutes old). A gap comes
#: from failed scrapes (their staleness markers end the series at once; where Prometheus itself
#: was down, its lookback has carried the last sample 5 minutes already) while spec replicas
#: change only when someone scales; beyond that the time is left out of the actual's figures
#: (its coverage says how much).
ACTUAL_CARRY_S = 300.0


@dataclass
class Backtest:
    """Everything a backtest report shows. ``runs`` in display order; the actual replicas are
    scored as the run named ``actual`` when known for every target."""

    data: ReplayData
    runs: list[BacktestRun]
    policy_file: str
    prometheus: str
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: {run: {policy: where it is defined (``file:line``)}}, for the per-policy figures of a set
    policy_files: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def per_policy(self) -> bool:
        """Some run replays several policies together: the figures are split per policy too."""
        return any(len(r.policies) > 1 for r in self.runs)

    @property
    def tick_s(self) -> float:
        t = self.runs[0].t_s
        return float(t[1] - t[0]) if t.size > 1 else self.data.step_s

    def actual_on_ticks(self) -> np.ndarray:
        """(K, N) actual replicas at the first run's ticks, carried forward over gaps of at most
        ``ACTUAL_CARRY_S``; NaN where unknown."""
        rows = np.searchsorted(self.data.t_s, self.runs[0].t_s)
        return carry_forward(self.data.actual, int(ACTUAL_CARRY_S // self.data.step_s))[rows]

    def actual_coverage(self) -> tuple[np.ndarray, np.ndarray]:
        """((N,) ticks at which the actual replicas are known, (N,) ticks at which the first policy
        was replayed): the actual's figures cover the first of the second."""
        return np.isfinite(self.actual_on_ticks()).sum(axis=0), np.isfinite(self.runs[0].replicas).sum(axis=0)

    def all_runs(self) -> list[BacktestRun]:
        """The policy runs, then the replicas that actually ran (if known at some tick), scored
        over the ticks at which they are known."""
        runs = list(self.runs)
        actual = self.actual_on_ticks()
        if np.isfinite(actual).any():
            first = self.runs[0]
            runs.append(BacktestRun(ACTUAL, f"replicas that ran (kube-state-metrics){self.coverage_text()}",
                                    first.t_s, actual, np.full(actual.shape, -1),
                                    first.required,  # the load's need, whoever ran
                                    policies=first.policies, owners=first.owners))  # split as the first run
        return runs

    def coverage_text(self) -> str:
        """`` , known 81.0% of the replayed time`` (nothing when known all of it)."""
        known, replayed = (int(x.sum()) for x in self.actual_coverage())
        return f", known {100 * known / replayed:.1f}% of the replayed time" if known < replayed else ""


def carry_forward(a: np.ndarray, most: int) -> np.ndarray:
    """(T, N) ``a`` with each NaN filled by the last finite value of its column at most ``most``
    rows before it; NaN elsewhere (before the first value, and further into longer gaps)."""
    rows = np.arange(a.shape[0])[:, None]
    last = np.where(np.isfinite(a), rows, -1)
    np.maximum.accumulate(last, axis=0, out=last)
    filled = a[np.maximum(last, 0), np.arange(a.shape[1])]
    return np.where((last >= 0) & (rows - last <= most), filled, np.nan)


def actual_notes(bt: "Backtest") -> list[str]:
    """How much of the replayed time the actual's figures cover, naming the targets with time left
    out (a gap of the replicas that ran longer than ``ACTUAL_CARRY_S``); none when all of it."""
    known, replayed = bt.actual_coverage()
    short = np.flatnonzero(known < replayed)
    if not short.size or not known.any():
        return []
    shown = ", ".join(f"{bt.data.targets[i].key} ({known[i]} of {replayed[i]} ticks)" for i in short[:5])
    more = f" and {short.size - 5} more" if short.size > 5 else ""
    return [f"actual: scored over the ticks at which the replicas that ran are known, "
            f"{100 * known.sum() / replayed.sum():.1f}% of the replayed time (a gap of kube-state-metrics is "
            f"carried over for at most {ACTUAL_CARRY_S:g} s, Prometheus' lookback; longer ones are left out): "
            f"{plural(int(short.size), 'target')} known less: {shown}{more}"]


def score_run(run: BacktestRun, tick_s: float) -> dict[str, Any]:
    """replica_hours, replica_changes, reversals (the simulator's definitions) and
    capacity_risk_minutes, as plain numbers, over the ticks at which the replicas are known (NaN:
    the replicas that ran unknown, or a target before its first sample)."""
    known = np.nan_to_num(run.replicas, nan=0.0)  # unknown ticks hold no replica-hours
    changes, turns = (known_changes(run.t_s, run.replicas) if np.isnan(run.replicas).any()
                      else (replica_changes(run.replicas), reversals(run.t_s, run.replicas)))
    return {
        "slo_violation_minutes": None,
        "replica_hours": round(replica_hours(run.t_s, known, tick_s), DECIMALS),
        "replica_changes": changes,
        "reversals": turns,
        "capacity_risk_minutes": round(capacity_risk_minutes(run.t_s, run.replicas, run.required, tick_s), DECIMALS),
        "mitigation_seconds": {},
    }


def known_changes(t_s: np.ndarray, replicas: np.ndarray) -> tuple[int, int]:
    """(replica changes, reversals) of ``replicas`` (K, N) over each target's known ticks: a gap is
    skipped, and a value after it that differs from the one before it is one change (made unseen)."""
    changes = turns = 0
    for j in range(replicas.shape[1]):
        ok = np.isfinite(replicas[:, j])
        column = replicas[ok, j][:, None]
        changes += replica_changes(column)
        turns += reversals(t_s[ok], column)
    return changes, turns


def scores(bt: Backtest) -> dict[str, dict[str, Any]]:
    return {run.name: {"description": run.description, **score_run(run, bt.tick_s)} for run in bt.all_runs()}


def policy_scores(bt: Backtest) -> dict[str, dict[str, dict[str, Any]]]:
    """{run: {policy: its scores over the targets it governed, with ``targets`` and ``file``}} for
    every run (the replicas that ran split as the first run's policies governed them). The
    figures add up to the run's (each target counts for the one policy that governed it; a target
    no policy governed, one never sampled, counts for none and holds no figure)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in bt.all_runs():
        out[run.name] = {}
        files = bt.policy_files.get(bt.runs[0].name if run.name == ACTUAL else run.name, {})
        for i, (policy, part) in enumerate(run.split().items()):
            mine = bt.data.targets if run.owners is None or len(run.policies) < 2 else \
                [t for t, o in zip(bt.data.targets, run.owners) if o == i]
            out[run.name][policy] = {"file": files.get(policy), "targets": [t.key for t in mine],
                                     **score_run(part, bt.tick_s)}
    return out


def policy_rows(bt: Backtest) -> list[dict[str, Any]]:
    """The per-policy table: one row per run and policy (``run``, ``policy`` and the scores)."""
    return [{"run": run, "policy": policy, **figures}
            for run, by_policy in policy_scores(bt).items() for policy, figures in by_policy.items()]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def result_json(bt: Backtest) -> dict[str, Any]:
    t = bt.data.t_s
    duration = float(t[-1] - t[0] + bt.data.step_s) if t.size else 0.0
    return jsonable({
        "schema_version": SCHEMA_VERSION,
        "scenario": {"name": "backtest", "description": f"backtest {_iso(t[0])} to {_iso(t[-1])}" if t.size else "",
                     "duration_s": duration, "tick_s": bt.tick_s, "seed": None, "policy_file": bt.policy_file,
                     "slo": None, "services": [tg.key for tg in bt.data.targets], "faults": []},
        "controllers": scores(bt),
        "backtest": {"from": _iso(t[0]) if t.size else None, "to": _iso(t[-1]) if t.size else None,
                     "step_s": bt.data.step_s, "prometheus": bt.prometheus, "assumption": LOAD_ASSUMPTION,
                     "actual_replicas_known": [tg.key for tg, k in zip(bt.data.targets, bt.data.has_actual) if k],
                     "actual_coverage": coverage_json(bt),
                     "differences": bt.differences, "notes": bt.notes,
                     "errors": {r.name: r.errors for r in bt.runs if r.errors},
                     # several policies replayed together: {run: {policy: scores, targets, file}}
                     **({"policies": policy_scores(bt)} if bt.per_policy else {})},
    })


def coverage_json(bt: Backtest) -> dict[str, Any]:
    """The ticks the actual's scores cover: in all, and per target where fewer than replayed."""
    known, replayed = bt.actual_coverage()
    return {"known_ticks": int(known.sum()), "replayed_ticks": int(replayed.sum()),
            "carried_over_gaps_up_to_s": ACTUAL_CARRY_S,
            "short": {tg.key: {"known_ticks": int(k), "replayed_ticks": int(r)}
                      for tg, k, r in zip(bt.data.targets, known, replayed) if k < r}}


def timeline_csv(bt: Backtest) -> str:
    """``time,target,actual,RUN...``: one row per target at the first tick and whenever any of
    the values changes (a step function, lossless). A run of several policies adds a last column
    ``RUN.policy``: the policy that governed the target (empty: none did)."""
    runs = bt.runs
    actual = bt.actual_on_ticks()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    sets = [r for r in runs if len(r.policies) > 1 and r.owners is not None]
    writer.writerow(["time", "target", ACTUAL] + [r.name for r in runs] + [f"{r.name}.policy" for r in sets])
    t = runs[0].t_s
    for j, target in enumerate(bt.data.targets):
        columns = np.column_stack([actual[:, j]] + [r.replicas[:, j] for r in runs])
        same = np.all((columns[1:] == columns[:-1]) | (np.isnan(columns[1:]) & np.isnan(columns[:-1])), axis=1)
        governed = [r.policies[r.owners[j]] if r.owners[j] >= 0 else "" for r in sets]
        for k in np.concatenate([[0], np.flatnonzero(~same) + 1]):
            writer.writerow([_iso(t[k]), target.key] + ["" if np.isnan(v) else int(v) for v in columns[k]] + governed)
    return out.getvalue()


def table_rows(bt: Backtest) -> list[dict[str, Any]]:
    return [{"controller": name, **s} for name, s in scores(bt).items()]


# --- report.html --------------------------------------------------------------------------------

COLORS = {ACTUAL: "#333333", "need": "#d62728"}
PALETTE = ("#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd")


def _figure_totals(bt: Backtest):
    from simulators.report import TimeAxis, envelope, new_figure, style_axes

    runs = bt.all_runs()
    t = runs[0].t_s
    axis = TimeAxis.for_duration(float(t[-1] - t[0]) if t.size else 0.0)
    x = (t - t[0]) / axis.divisor
    fig = new_figure(12, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ex, ey = envelope(x, total(runs[0].required))
    ax.plot(ex, ey, color=COLORS["need"], linewidth=0.8, alpha=0.6, label="load at target (replicas)")
    for i, run in enumerate(runs):
        ex, ey = envelope(x, total(run.replicas))
        ax.step(ex, ey, where="post", linewidth=1.4, color=COLORS.get(run.name, PALETTE[i % len(PALETTE)]),
                label=run.name)
    ax.set_ylabel("replicas (all targets)")
    ax.set_xlabel(axis.label)
    ax.legend(loc="upper left", fontsize=9)
    style_axes(ax)
    return fig


def total(a: np.ndarray) -> np.ndarray:
    """(K,) the sum over targets of ``a`` (K, N), each counted from its first known value to its
    last; NaN where one is unknown within that span, or none is in it (a gap, never a dip to 0)."""
    ok = np.isfinite(a)
    alive = np.logical_or.accumulate(ok, axis=0) & np.logical_or.accumulate(ok[::-1], axis=0)[::-1]
    out = np.where(ok, a, 0.0).sum(axis=1)
    out[(alive & ~ok).any(axis=1) | ~alive.any(axis=1)] = np.nan
    return out


def _interesting_targets(bt: Backtest, limit: int = MAX_TARGET_PLOTS) -> list[int]:
    """Targets whose counterfactual differs most from what ran (replica-ticks), at most ``limit``."""
    actual = bt.actual_on_ticks()
    diff = np.nansum(np.abs(bt.runs[0].replicas - np.nan_to_num(actual, nan=0.0)), axis=0)
    return [int(j) for j in np.argsort(-diff, kind="stable")[:limit]]


def _figure_targets(bt: Backtest, columns: Sequence[int]):
    from simulators.report import TimeAxis, envelope, new_figure, style_axes

    runs = bt.all_runs()
    t = runs[0].t_s
    axis = TimeAxis.for_duration(float(t[-1] - t[0]) if t.size else 0.0)
    x = (t - t[0]) / axis.divisor
    fig = new_figure(12, 2.2 * len(columns))
    for i, j in enumerate(columns):
        ax = fig.add_subplot(len(columns), 1, i + 1)
        ex, ey = envelope(x, runs[0].required[:, j])
        ax.plot(ex, ey, color=COLORS["need"], linewidth=0.8, alpha=0.6, label="load at target")
        for r, run in enumerate(runs):
            ex, ey = envelope(x, run.replicas[:, j])
            ax.step(ex, ey, where="post", linewidth=1.2, color=COLORS.get(run.name, PALETTE[r % len(PALETTE)]),
                    label=run.name)
        ax.set_ylabel(bt.data.targets[j].key, fontsize=8)
        style_axes(ax)
        if i == 0:
            ax.legend(loc="upper left", fontsize=8, ncol=len(runs) + 1)
    fig.axes[-1].set_xlabel(axis.label)
    return fig


def report_html(bt: Backtest) -> str:
    from simulators.report import CSS, figure_png, fmt_number, img_tag

    rows = table_rows(bt)
    keys = (("replica_hours", "replica-hours"), ("replica_changes", "replica changes"), ("reversals", "reversals"),
            ("capacity_risk_minutes", "capacity-risk minutes"))
    head = "".join(f"<th>{h}</th>" for _, h in keys)
    body = "".join(
        f'<tr><td class="name">{html.escape(r["controller"])}</td><td class="desc">{html.escape(r["description"])}'
        f'</td>{"".join(f"<td class=num>{fmt_number(r[k])}</td>" for k, _ in keys)}</tr>' for r in rows)
    t = bt.data.t_s
    facts = [("window", f"{_iso(t[0])} to {_iso(t[-1])} every {bt.data.step_s:g} s" if t.size else "empty"),
             ("Prometheus", bt.prometheus), ("policy", bt.policy_file),
             ("targets", f"{len(bt.data.targets)} ({int(bt.data.has_actual.sum())} with the replicas that ran"
                         f"{bt.coverage_text()})"),
             ("assumption", LOAD_ASSUMPTION)]
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    parts = ["<h1>Backtest</h1>", f"<dl>{dl}</dl>", "<h2>Scores</h2>",
             f'<table class="scores"><thead><tr><th>run</th><th>description</th>{head}</tr></thead>'
             f"<tbody>{body}</tbody></table>",
             '<p class="note">Capacity-risk minutes: minutes (summed over targets) in which the replicas were below '
             "what the observed load needs at the policy's targets. Reversals: a change opposite to the previous "
             "one of the same target within 5 minutes.</p>"]
    if bt.per_policy:
        parts += ["<h2>Per policy</h2>", _policy_table(bt, keys)]
    if bt.differences:
        items = "".join(f"<li><code>{html.escape(d)}</code></li>" for d in bt.differences)
        parts.append(f"<h2>Differences between {html.escape(bt.runs[0].name)} and {html.escape(bt.runs[-1].name)}"
                     f"</h2><ul>{items}</ul>")
    if bt.notes:
        parts.append("<ul>" + "".join(f'<li class="note">{html.escape(n)}</li>' for n in bt.notes) + "</ul>")
    if bt.data.targets and t.size:
        parts += ["<h2>All targets</h2>", img_tag(figure_png(_figure_totals(bt)), "replicas of all targets")]
        chosen = _interesting_targets(bt)
        parts += [f"<h2>Targets that differ most ({len(chosen)} of {len(bt.data.targets)})</h2>",
                  img_tag(figure_png(_figure_targets(bt, chosen)), "replicas per target")]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Setpoint backtest</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _policy_table(bt: Backtest, keys: Sequence[tuple[str, str]]) -> str:
    """report.html's per-policy table: a row per run and policy, with the targets it governed."""
    from simulators.report import fmt_number

    head = "".join(f"<th>{h}</th>" for _, h in keys)
    body = "".join(
        f'<tr><td class="name">{html.escape(r["run"])}</td><td class="name">{html.escape(r["policy"])}</td>'
        f'<td class="desc">{len(r["targets"])}</td>'
        f'{"".join(f"<td class=num>{fmt_number(r[k])}</td>" for k, _ in keys)}</tr>' for r in policy_rows(bt))
    return (f'<table class="scores"><thead><tr><th>run</th><th>policy</th><th>targets</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


#: A backtest's files (an earlier run's are removed before a run writes its own).
OUTPUT_FILES = ("result.json", "timeline.csv", "report.html")


def write_outputs(bt: Backtest, out_dir: str | Path, report: bool = True) -> dict[str, Path]:
    """OUT/result.json, OUT/timeline.csv and OUT/report.html (with ``report``), after an earlier
    run's are removed: a rerun with --no-report left the earlier run's report beside its results."""
    from controller.runtime.files import remove_earlier, write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_earlier(out, OUTPUT_FILES)
    paths = {"result": write_text_atomic(out / "result.json", json.dumps(result_json(bt), indent=2, allow_nan=False) + "\n"),
             "timeline": write_text_atomic(out / "timeline.csv", timeline_csv(bt))}
    if report:
        paths["report"] = write_text_atomic(out / "report.html", report_html(bt))
    return paths
