"""The merged result of a sweep (result.json) and its report (report.html). Pure but for writing.

result.json (``schema_version`` 1)::

    {"schema_version": 1, "kind": "sweep", "seeds_per_scenario": N,
     "scenarios": {NAME: {"file", "description", "seeds": [...], "changes" (--scenario-set, when any),
                          "warnings" (when any: [{"file", "line", "field", "message"}], as simulate's)}},
     "variants": {NAME: {"kind": "policy" | "hpa", "policy_file", "settings": {PATH: VALUE},
                         "target_pct": null | percent,
                         "scaler": "hpa" | "fixed", "heals": bool}},   # these two: health-only policies only
     "cells": [{"scenario", "variant", "seed", "key", "slo_violation_minutes", "replica_hours",
                "replica_changes", "reversals", "mitigation_seconds"}],
     "by_scenario": {NAME: SUMMARY},
     "overall": SUMMARY}   # each variant's means summed over the scenarios

    SUMMARY = {"variants": {VARIANT: {"slo_violation_minutes", "replica_hours",
                                      "replica_changes", "reversals",   # means over the seeds
                                      "slo_violation_minutes_range": [min, max]}},
               "pareto": [VARIANT, ...],   # the lower-left front, by ascending replica-hours
               "frontier": null | {...}}   # HPA's frontier from the hpa@ variants, as simulate's

Nothing in it depends on where or when a cell ran (wall times stay in the cell files), so the
same sweep gives the same file on one worker, several, or a Ray cluster.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from controller.runtime.files import remove_earlier, write_text_atomic
from simulators.frontier import frontier_of, monotone_envelope
from simulators.result import FrontierPoint
from simulators.score import DECIMALS, frontier_json, warnings_json
from simulators.sweep import HPA_KIND, Grid

SCHEMA_VERSION = 1
MEAN_KEYS = ("slo_violation_minutes", "replica_hours", "replica_changes", "reversals")
CELL_KEYS = MEAN_KEYS + ("mitigation_seconds",)


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), DECIMALS) if values else 0.0


def summary(means: dict[str, dict], grid: Grid, hpa_policy: str = "") -> dict[str, Any]:
    """Pareto front and HPA's frontier of per-variant ``means`` (name -> scores)."""
    names = list(means)
    front = monotone_envelope([means[n]["replica_hours"] for n in names],
                              [means[n]["slo_violation_minutes"] for n in names])
    hpa = [v for v in grid.variants if v.kind == HPA_KIND and v.name in means]
    frontier = None
    if hpa:
        points = [FrontierPoint(v.target_pct, means[v.name]["replica_hours"], means[v.name]["slo_violation_minutes"])
                  for v in hpa]
        others = {n: s for n, s in means.items() if n not in {v.name for v in hpa}}
        frontier = frontier_of(points, others, hpa_policy)
    return {"variants": means, "pareto": [names[i] for i in front], "frontier": frontier}


def merge(grid: Grid, records: dict[str, dict]) -> dict[str, Any]:
    """The result document of ``grid`` from its cells' ``records`` (key -> stored record);
    ``frontier`` values are :class:`~simulators.result.Frontier` (see :func:`result_json`)."""
    cells, per = [], {}
    for cell in grid.cells():
        scores = records[cell.key]["scores"]
        cells.append({"scenario": cell.scenario, "variant": cell.variant, "seed": cell.seed, "key": cell.key,
                      **{k: scores[k] for k in CELL_KEYS}})
        per.setdefault(cell.scenario, {}).setdefault(cell.variant, []).append(scores)
    hpa_file = next((v.policy_file for v in grid.variants if v.kind == HPA_KIND), "")
    by_scenario = {}
    for scenario, variants in per.items():
        means = {}
        for name, runs in variants.items():
            means[name] = {k: _mean([r[k] for r in runs]) for k in MEAN_KEYS}
            minutes = [r["slo_violation_minutes"] for r in runs]
            means[name]["slo_violation_minutes_range"] = [min(minutes), max(minutes)]
        by_scenario[scenario] = summary(means, grid, hpa_file)
    totals = {}
    for v in grid.variants:
        rows = [by_scenario[s.name]["variants"][v.name] for s in grid.scenarios]
        totals[v.name] = {k: round(sum(r[k] for r in rows), DECIMALS) for k in MEAN_KEYS}
        totals[v.name]["slo_violation_minutes_range"] = [round(sum(r["slo_violation_minutes_range"][i] for r in rows),
                                                               DECIMALS) for i in (0, 1)]
    return {"schema_version": SCHEMA_VERSION, "kind": "sweep", "seeds_per_scenario": grid.seeds,
            "scenarios": {s.name: {"file": s.file, "description": s.description, "seeds": grid.seeds_of(s),
                                   **({"changes": s.changes} if s.changes else {}),
                                   **({"warnings": warnings_json(s.warnings)} if s.warnings else {})}
                          for s in grid.scenarios},
            "variants": {v.name: {"kind": v.kind, "policy_file": v.policy_file, "settings": v.settings,
                                  "target_pct": v.target_pct,
                                  # a health-only policy beside its scaler (heals), or that scaler alone
                                  **({"scaler": v.scaler, "heals": bool(v.policy_text)} if v.scaler else {})}
                         for v in grid.variants},
            **({"policy_differences": list(grid.differences)} if grid.differences else {}),
            "cells": cells, "by_scenario": by_scenario, "overall": summary(totals, grid, hpa_file)}


def result_json(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its frontiers as JSON (simulators.score.frontier_json)."""
    def plain(s: dict) -> dict:
        return {**s, "frontier": frontier_json(s["frontier"]) if s["frontier"] is not None else None}

    return {**result, "by_scenario": {n: plain(s) for n, s in result["by_scenario"].items()},
            "overall": plain(result["overall"])}


def write_result(result: dict[str, Any], out_dir: str | Path, report: bool = True) -> dict[str, Path]:
    """OUT/result.json and OUT/report.html, each written atomically; the earlier ones removed first
    and result.json written last (simulators/output.py): never one sweep's report beside
    another's result."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_earlier(out, ("result.json", "report.html"))
    report_path = write_text_atomic(out / "report.html", report_html(result)) if report else None
    paths = {"result": write_text_atomic(out / "result.json", json.dumps(result_json(result), indent=1, allow_nan=False)
                                         + "\n")}
    return paths | ({"report": report_path} if report_path else {})


# --- report ---------------------------------------------------------------------------------------


def table_rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant of a summary: its means, Pareto membership and HPA at equal cost."""
    equal = s["frontier"].equal_cost if s["frontier"] is not None else {}
    on_front = set(s["pareto"])
    return [{"variant": name, **scores, "pareto": name in on_front, "hpa_equal_cost": equal.get(name)}
            for name, scores in s["variants"].items()]


def _summary_html(title: str, s: dict[str, Any], seeds: int, note: str) -> str:
    from simulators.report import figure_png, fmt_number, img_tag, plane_figure

    rows = []
    for r in table_rows(s):
        lo, hi = r["slo_violation_minutes_range"]
        spread = f' <span class="note">({fmt_number(lo)}–{fmt_number(hi)})</span>' if seeds > 1 and lo != hi else ""
        e = r["hpa_equal_cost"]
        eq = "–" if e is None or e.hpa_slo_violation_minutes is None else (
            f"{fmt_number(e.hpa_slo_violation_minutes)}{'*' if e.extrapolated else ''}")
        verdict = "–" if e is None or e.verdict is None else (
            f"{e.ratio:.2f}x {e.verdict}" if e.ratio is not None else e.verdict)
        cls = ' class="best"' if r["pareto"] else ""
        rows.append(f"<tr{cls}><td class=\"name\">{html.escape(r['variant'])}</td>"
                    f"<td class=\"num\">{fmt_number(r['slo_violation_minutes'])}{spread}</td>"
                    f"<td class=\"num\">{fmt_number(r['replica_hours'])}</td>"
                    f"<td class=\"num\">{fmt_number(r['replica_changes'])}</td>"
                    f"<td class=\"num\">{fmt_number(r['reversals'])}</td>"
                    f"<td class=\"num\">{eq}</td><td>{html.escape(verdict)}</td>"
                    f"<td>{'yes' if r['pareto'] else ''}</td></tr>")
    head = ("<tr><th>variant</th><th>SLO-violation minutes</th><th>replica-hours</th><th>replica changes</th>"
            "<th>reversals</th><th>HPA @ equal cost (min)</th><th>vs HPA</th><th>Pareto</th></tr>")
    fig = plane_figure(s["frontier"], s["variants"], f"{title}: cost vs violations; lower left is better",
                       pareto=s["pareto"], equal_cost_notes=False)
    anchor = "-".join(title.split())
    return (f'<h2 id="{html.escape(anchor)}">{html.escape(title)}</h2><p class="note">{html.escape(note)}</p>'
            f'<table class="scores"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
            + img_tag(figure_png(fig), f"{title}: cost vs violations"))


def report_html(result: dict[str, Any]) -> str:
    """The sweep's report: the overall plane and table, then one per scenario."""
    from simulators.report import CSS

    seeds = result["seeds_per_scenario"]
    scenarios = result["scenarios"]
    variants = result["variants"]
    items = [("scenarios", ", ".join(f"{n} ({s['file']}{' with ' + s['changes'] if s.get('changes') else ''})"
                                     for n, s in scenarios.items())),
             ("variants", f"{len(variants)}: " + ", ".join(variants)),
             ("seeds", f"{seeds} per scenario (" + "; ".join(f"{n}: {', '.join(map(str, s['seeds']))}"
                                                            for n, s in scenarios.items()) + ")"),
             ("cells", str(len(result["cells"])))]
    if result.get("policy_differences"):  # a policy file and its changed copy, under review
        items.append(("policies differ in", "; ".join(result["policy_differences"])))
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
    parts = [f"<h1>Setpoint sweep</h1><dl>{dl}</dl>",
             '<p class="note">Each value is the mean over the seeds (the range over seeds in brackets). Highlighted '
             "rows are on the Pareto front: no other variant has fewer replica-hours and fewer SLO-violation "
             "minutes. HPA @ equal cost: the hpa preset's violation minutes at the variant's replica-hours, "
             "interpolated along its CPU-target sweep (* outside the swept range, held flat).</p>"]
    parts.append(_summary_html("all scenarios", result["overall"], seeds,
                               "Sums over the scenarios of each variant's means."))
    for name, s in result["by_scenario"].items():
        parts.append(_summary_html(name, s, seeds, scenarios[name]["description"] or name))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Setpoint sweep</title>'
            f"<style>{CSS}tr.best td {{ background: #d9f2d9; }}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


__all__ = ["merge", "result_json", "write_result", "report_html", "table_rows", "summary"]
