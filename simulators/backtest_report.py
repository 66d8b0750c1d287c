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
from controller.runtime.backtest import LOAD_ASSUMPTION, BacktestRun, ReplayData, capacity_risk_minutes
from simulators.score import DECIMALS, SCHEMA_VERSION, replica_changes, replica_hours, reversals

ACTUAL = "actual"
MAX_TARGET_PLOTS = 8


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

    @property
    def tick_s(self) -> float:
        t = self.runs[0].t_s
        return float(t[1] - t[0]) if t.size > 1 else self.data.step_s

    def actual_on_ticks(self) -> np.ndarray:
        """(K, N) actual replicas at the first run's ticks, carried forward over gaps."""
        rows = np.searchsorted(self.data.t_s, self.runs[0].t_s)
        return _carry_forward(self.data.actual)[rows]

    def all_runs(self) -> list[BacktestRun]:
        """The policy runs, then the replicas that actually ran (if known for every target)."""
        runs = list(self.runs)
        actual = self.actual_on_ticks()
        if actual.size and np.isfinite(actual).all():
            first = self.runs[0]
            runs.append(BacktestRun(ACTUAL, "replicas that ran (kube-state-metrics)", first.t_s, actual,
                                    np.full(actual.shape, -1), first.required))  # the load's need, whoever ran
        return runs


def _carry_forward(a: np.ndarray) -> np.ndarray:
    """NaN gaps filled with the last value before them (leading NaN stay)."""
    out = a.copy()
    for j in range(out.shape[1]):
        col = out[:, j]
        ok = np.isfinite(col)
        if ok.any():
            idx = np.where(ok, np.arange(col.size), 0)
            np.maximum.accumulate(idx, out=idx)
            filled = col[idx]
            filled[: int(np.argmax(ok))] = np.nan
            out[:, j] = filled
    return out


def score_run(run: BacktestRun, tick_s: float) -> dict[str, Any]:
    """replica_hours, replica_changes, reversals (the simulator's definitions) and
    capacity_risk_minutes, as plain numbers."""
    return {
        "slo_violation_minutes": None,
        "replica_hours": round(replica_hours(run.t_s, run.replicas, tick_s), DECIMALS),
        "replica_changes": replica_changes(run.replicas),
        "reversals": reversals(run.t_s, run.replicas),
        "capacity_risk_minutes": round(capacity_risk_minutes(run.t_s, run.replicas, run.required, tick_s), DECIMALS),
        "mitigation_seconds": {},
    }


def scores(bt: Backtest) -> dict[str, dict[str, Any]]:
    return {run.name: {"description": run.description, **score_run(run, bt.tick_s)} for run in bt.all_runs()}


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
                     "differences": bt.differences, "notes": bt.notes,
                     "errors": {r.name: r.errors for r in bt.runs if r.errors}},
    })


def timeline_csv(bt: Backtest) -> str:
    """``time,target,actual,RUN...``: one row per target at the first tick and whenever any of
    the values changes (a step function, lossless)."""
    runs = bt.runs
    actual = bt.actual_on_ticks()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "target", ACTUAL] + [r.name for r in runs])
    t = runs[0].t_s
    for j, target in enumerate(bt.data.targets):
        columns = np.column_stack([actual[:, j]] + [r.replicas[:, j] for r in runs])
        same = np.all((columns[1:] == columns[:-1]) | (np.isnan(columns[1:]) & np.isnan(columns[:-1])), axis=1)
        for k in np.concatenate([[0], np.flatnonzero(~same) + 1]):
            writer.writerow([_iso(t[k]), target.key] + ["" if np.isnan(v) else int(v) for v in columns[k]])
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
    need = np.nansum(runs[0].required, axis=1)
    ex, ey = envelope(x, need)
    ax.plot(ex, ey, color=COLORS["need"], linewidth=0.8, alpha=0.6, label="load at target (replicas)")
    for i, run in enumerate(runs):
        ex, ey = envelope(x, run.replicas.sum(axis=1))
        ax.step(ex, ey, where="post", linewidth=1.4, color=COLORS.get(run.name, PALETTE[i % len(PALETTE)]),
                label=run.name)
    ax.set_ylabel("replicas (all targets)")
    ax.set_xlabel(axis.label)
    ax.legend(loc="upper left", fontsize=9)
    style_axes(ax)
    return fig


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
             ("targets", f"{len(bt.data.targets)} ({int(bt.data.has_actual.sum())} with the replicas that ran)"),
             ("assumption", LOAD_ASSUMPTION)]
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    parts = ["<h1>Backtest</h1>", f"<dl>{dl}</dl>", "<h2>Scores</h2>",
             f'<table class="scores"><thead><tr><th>run</th><th>description</th>{head}</tr></thead>'
             f"<tbody>{body}</tbody></table>",
             '<p class="note">Capacity-risk minutes: minutes (summed over targets) in which the replicas were below '
             "what the observed load needs at the policy's targets. Reversals: a change opposite to the previous "
             "one of the same target within 5 minutes.</p>"]
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
