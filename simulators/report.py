"""The HTML report of a simulation: one self-contained file, plots embedded as base64 PNG.

Layout: a header (scenario, SLO, seed, duration, faults, the policy file as given or by its
bundled name), the overview (every controller on the same axes: ready capacity against the
offered load, spec replicas, latency and error ratio against the SLO, violation spans with
their minutes), the oracle in one sentence, the score table (best value per column
highlighted), the cost/violation plane when HPA's frontier was swept, then one panel set per
controller on a shared time axis:

(a) offered load vs ready capacity (rps), (b) spec and ready replicas with scale actions,
(c) the SLO's latency percentile vs its threshold, (d) the error ratio vs the SLO's,
(e) SLO violations and actions by kind.

Fault windows are shaded on every panel. With several services the charts show the
aggregate (sums of load, capacity and replicas; the worst latency and error ratio; a
violation when any service violates), and with at most :data:`MAX_SERVICE_MULTIPLES` services a per-service
section follows. Figures use matplotlib's object API with the Agg canvas and never pyplot, so
rendering needs no display, touches no global backend state and is safe to call from any
program. Everything is drawn from each run's :class:`~simulators.timeline.Timeline` (recorded
while simulating, or built from a whole trajectory): at most ~:data:`MAX_POINTS` points per
line with a min/max envelope, so spikes and dips stay visible; violation spans exact to the
tick (spans closer than the picture can show merged).
"""

from __future__ import annotations

import base64
import html
import io
import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.markers import MarkerStyle
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter
from matplotlib.transforms import blended_transform_factory
from PIL import Image

from simulators.result import SLO, ActionEvent, ControllerRun, FaultWindow, Frontier, SimResult, shown_path
from simulators.score import (ORACLE, driven_lines, fault_columns, run_end_s, score_result,
                              score_table, violation_mask)
from simulators.timeline import (MAX_POINTS, MAX_SERVICE_MULTIPLES, Line, Timeline, View,  # noqa: F401 (re-exported)
                                 action_category, envelope, merge_spans, timeline_of)
#: Up to this duration the time axis is in minutes, beyond it in hours.
MINUTES_AXIS_UP_TO_S = 3 * 3600.0
DPI = 100
#: More scale actions than this in one panel are drawn small, under the spec line.
DENSE_ACTIONS = 150
#: Axes titles stand at the top of their axes (plus their pad). Given, it turns off matplotlib's
#: search for tick labels above the axes (there are none on these charts), which measured every
#: axes' ticks at each layout pass and each draw: about a fifth of a report's CPU.
TITLE_Y = 1.0
#: zlib level of the report's PNGs: 3 compresses as well as 6 here, in less CPU.
PNG_COMPRESS_LEVEL = 3

COLORS = {
    "load": "#333333", "capacity": "#1f77b4", "spec": "#ff7f0e", "ready": "#1f77b4",
    "latency": "#6a3d9a", "errors": "#e377c2", "slo": "#d62728", "violation": "#d62728", "fault": "#7f7f7f",
}
#: Action categories: (row label, marker, color), in timeline-row order.
ACTION_STYLES = {
    "scale up": ("^", "#2ca02c"),
    "scale down": ("v", "#8c564b"),
    "restart": ("o", "#17becf"),
    "rollback": ("s", "#9467bd"),
    "other": ("x", "#7f7f7f"),
}


# --- data preparation -------------------------------------------------------------------------


def run_timeline(result: SimResult, run: ControllerRun) -> Timeline:
    """The run's timeline: recorded while simulating, else built from its whole trajectory."""
    if run.timeline is not None:
        return run.timeline
    traj = run.trajectory
    return timeline_of(traj, violation_mask(traj, result.slo), run_end_s(traj.t_s, result.tick_s))


def run_view(result: SimResult, run: ControllerRun, column: int | None = None) -> View:
    """The aggregate of all services (default) or service ``column`` of a run."""
    return run_timeline(result, run).view(column)


def true_spans(t: np.ndarray, mask: np.ndarray, end_s: float, min_gap_s: float = 0.0) -> list[tuple[float, float]]:
    """Spans (start, width) in seconds where ``mask`` (T,) holds; a tick holds until the next
    one (the last until ``end_s``). Spans closer than ``min_gap_s`` are merged, so that a
    flapping signal draws as few rectangles as the picture can show."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts_i = np.flatnonzero(edges == 1)
    ends_i = np.flatnonzero(edges == -1)  # index of the first tick after the span
    t_next = np.append(t, end_s)
    starts, ends = t[starts_i], t_next[ends_i]
    if min_gap_s > 0 and starts.size > 1:
        # A span starts a new group unless it begins within min_gap_s of the previous end.
        keep = np.concatenate([[True], starts[1:] - ends[:-1] >= min_gap_s])
        starts = starts[keep]
        ends = np.maximum.reduceat(ends, np.flatnonzero(keep))
    return [(float(s), float(e - s)) for s, e in zip(starts, ends)]


def action_times(actions: Sequence[ActionEvent], services: Sequence[str] | None, duration_s: float,
                 thinned: bool = False) -> dict[str, np.ndarray]:
    """Times (s) of the actions on ``services`` (None: all) by category, thinned to at most one
    per 1/MAX_POINTS of the run so that thousands of actions stay drawable (always when the run
    kept only some of its actions, ``thinned``: see simulators.timeline.ActionBudget)."""
    wanted = None if services is None else set(services)
    by_kind: dict[str, list[float]] = {k: [] for k in ACTION_STYLES}
    for a in actions:
        if wanted is None or a.service in wanted:
            by_kind[action_category(a)].append(a.t_s)
    resolution = max(duration_s, 1.0) / MAX_POINTS
    thinned = {}
    for kind, times in by_kind.items():
        t = np.asarray(times, dtype=float)
        if t.size > MAX_POINTS or thinned:
            _, first = np.unique(np.floor(t / resolution), return_index=True)
            t = t[first]
        thinned[kind] = t
    return thinned


def value_at(t: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``y`` at the tick holding each time in ``at`` (the last point at or before it)."""
    i = np.clip(np.searchsorted(t, at, side="right") - 1, 0, t.size - 1)
    return y[i]


# --- axes and formatting ------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeAxis:
    divisor: float
    label: str

    @staticmethod
    def for_duration(duration_s: float) -> "TimeAxis":
        if duration_s <= MINUTES_AXIS_UP_TO_S:
            return TimeAxis(60.0, "time since start (min)")
        return TimeAxis(3600.0, "time since start (h)")


@dataclass(frozen=True)
class Limits:
    """Y limits shared by every controller's panels, so panel sets compare at a glance."""

    rps: float
    replicas: float
    latency_lo: float
    latency_hi: float
    log_latency: bool
    error_hi: float = 1.0
    #: Errors far above the SLO's ratio: linear up to it, logarithmic beyond (symlog), so that
    #: both the SLO line and a 100 % outage are readable.
    symlog_errors: bool = False


def shared_limits(views: Sequence[View], slo: SLO) -> Limits:
    def top(arrays: list[np.ndarray]) -> float:
        finite = [float(np.nanmax(a)) for a in arrays if a.size and np.isfinite(a).any()]
        return max(finite, default=1.0)

    rps = top([v.offered_rps.y for v in views] + [v.capacity_rps.y for v in views])
    replicas = top([v.spec_replicas.y for v in views] + [v.ready_replicas.y for v in views])
    lat = np.concatenate([v.latency_s.y for v in views] + [[slo.latency_s]])
    lat = lat[np.isfinite(lat) & (lat > 0)]
    lo, hi = (float(lat.min()), float(lat.max())) if lat.size else (1.0, 1.0)
    errors = top([v.error_ratio.y for v in views])
    symlog = errors > 30 * slo.error_ratio > 0
    error_hi = min(1.0, errors) * 1.5 if symlog else max(errors, 2 * slo.error_ratio) * 1.1 or 1.0
    common = dict(rps=rps * 1.08 or 1.0, replicas=replicas * 1.1 or 1.0, error_hi=error_hi, symlog_errors=symlog)
    # A timeout dwarfs normal latency on a linear axis; a log axis shows both.
    if hi / lo > 30:
        return Limits(latency_lo=lo / 1.5, latency_hi=hi * 1.5, log_latency=True, **common)
    return Limits(latency_lo=0.0, latency_hi=hi * 1.1, log_latency=False, **common)


def fmt_duration(seconds: float) -> str:
    """``1 d``, ``2 h 30 min``, ``45 min``, ``30 s``."""
    s = int(round(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m else "", f"{sec} s" if sec else ""]
    return " ".join(p for p in parts if p) or "0 s"


def fmt_number(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    if isinstance(x, float):
        return f"{x:,.0f}" if x.is_integer() and abs(x) >= 100 else f"{x:,.3g}" if abs(x) < 100 else f"{x:,.1f}"
    return f"{x:,}"


# --- drawing ------------------------------------------------------------------------------------


def shade_faults(ax, faults: Sequence[FaultWindow], end_s: float, axis: TimeAxis, label: bool = False) -> None:
    """Shade each fault window; a fault without an end is a dashed line at its start."""
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    for f in faults:
        x0 = f.start_s / axis.divisor
        if f.end_s is None:
            ax.axvline(x0, color=COLORS["fault"], linestyle="--", linewidth=1.6, zorder=1)
        else:
            ax.axvspan(x0, min(f.end_s, end_s) / axis.divisor, color=COLORS["fault"], alpha=0.18, linewidth=0, zorder=0)
        if label:
            ax.text(x0, 1.02, f" {f.name}", transform=trans, fontsize=8, color="#555555", va="bottom", ha="left", clip_on=False)


def fault_handles(faults: Sequence[FaultWindow]) -> list:
    """Legend entries for the two ways a fault is drawn, when present."""
    handles = []
    if any(f.end_s is not None for f in faults):
        handles.append(Patch(color=COLORS["fault"], alpha=0.3, label="fault window"))
    if any(f.end_s is None for f in faults):
        handles.append(Line2D([], [], color=COLORS["fault"], linestyle="--", label="fault (no end)"))
    return handles


def draw_load(ax, v: View, axis: TimeAxis, lim: Limits) -> None:
    for line, key, label in ((v.offered_rps, "load", "offered load"), (v.capacity_rps, "capacity", "ready capacity")):
        t, yy = line.t, line.y
        ax.plot(t / axis.divisor, yy, color=COLORS[key], linewidth=1.3 if key == "load" else 1.6,
                drawstyle="steps-post", label=label)
    ax.set_ylim(0, lim.rps)
    ax.set_ylabel("requests/s")


def draw_replicas(ax, v: View, actions: dict[str, np.ndarray], axis: TimeAxis, lim: Limits) -> None:
    for line, key, label in ((v.spec_replicas, "spec", "spec replicas"), (v.ready_replicas, "ready", "ready replicas")):
        t, yy = line.t, line.y
        ax.plot(t / axis.divisor, yy, color=COLORS[key], linewidth=1.6, drawstyle="steps-post", label=label,
                zorder=3 if key == "spec" else 2)
    # A few actions are drawn boldly on the spec line; hundreds would bury it, so they shrink
    # and go under it (panel (d) still shows every one).
    dense = sum(actions[k].size for k in ("scale up", "scale down")) > DENSE_ACTIONS
    for kind in ("scale up", "scale down"):
        at = actions[kind]
        if at.size:
            marker, color = ACTION_STYLES[kind]
            ax.scatter(at / axis.divisor, value_at(v.spec_replicas.t, v.spec_replicas.y, at), marker=marker, color=color,
                       s=14 if dense else 40, alpha=0.7 if dense else 1.0, zorder=2.5 if dense else 4, label=kind,
                       edgecolors="none" if dense else "white", linewidths=0.5)
    ax.set_ylim(0, lim.replicas)
    ax.set_ylabel("replicas")


def draw_latency(ax, v: View, slo: SLO, axis: TimeAxis, lim: Limits) -> None:
    t, yy = v.latency_s.t, v.latency_s.y
    ax.plot(t / axis.divisor, yy, color=COLORS["latency"], linewidth=1.2, label=f"p{slo.latency_percentile:g} latency")
    ax.axhline(slo.latency_s, color=COLORS["slo"], linestyle="--", linewidth=1.4,
               label=f"SLO {slo.latency_s:g} s")
    ax.set_yscale("log" if lim.log_latency else "linear")  # either way: a figure drawn again keeps its scales
    ax.set_ylim(lim.latency_lo, lim.latency_hi)
    ax.set_ylabel(f"p{slo.latency_percentile:g} latency (s)")


def draw_error_ratio(ax, v: View, slo: SLO, axis: TimeAxis, lim: Limits) -> None:
    t, yy = v.error_ratio.t, v.error_ratio.y
    ax.plot(t / axis.divisor, yy, color=COLORS["errors"], linewidth=1.2, drawstyle="steps-post", label="error ratio")
    draw_error_axis(ax, slo, lim)


def draw_error_axis(ax, slo: SLO, lim: Limits) -> None:
    """The SLO's error-ratio line, the y range and scale shared by every error-ratio panel."""
    ax.axhline(slo.error_ratio, color=COLORS["slo"], linestyle="--", linewidth=1.4, label=f"SLO {slo.error_ratio * 100:g}%")
    if lim.symlog_errors:
        ax.set_yscale("symlog", linthresh=slo.error_ratio, linscale=1.0)
    else:
        ax.set_yscale("linear")  # a figure drawn again keeps its scales
    ax.set_ylim(0, lim.error_hi)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    ax.set_ylabel("error ratio")


def draw_timeline(ax, v: View, actions: dict[str, np.ndarray], end_s: float, axis: TimeAxis, kinds: Sequence[str],
                  several: bool) -> None:
    """Violation spans on the top row, one row of markers per action kind below."""
    rows = ["SLO violation", *kinds]
    y_of = {name: len(rows) - 1 - i for i, name in enumerate(rows)}
    spans = merge_spans(v.violation_spans, (end_s - v.start_s) / (2 * MAX_POINTS))
    if spans:
        ax.broken_barh([(s / axis.divisor, w / axis.divisor) for s, w in spans], (y_of["SLO violation"] - 0.35, 0.7),
                       facecolors=COLORS["violation"], alpha=0.8)
    for kind in kinds:
        at = actions[kind]
        if at.size:
            marker, color = ACTION_STYLES[kind]
            # no edge on filled markers; an unfilled one ("x") is all edge (matplotlib warns otherwise)
            edges = {"edgecolors": "none"} if MarkerStyle(marker).is_filled() else {}
            ax.scatter(at / axis.divisor, np.full(at.size, y_of[kind]), marker=marker, color=color, s=30, zorder=3,
                       **edges)
    labels = ["SLO violation (any service)" if several else "SLO violation", *kinds]
    ax.set_yticks([y_of[r] for r in rows], labels)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.grid(False, axis="y")


def new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def style_axes(ax) -> None:
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=9)
    ax.yaxis.label.set_size(10)


def panel_set_figure(result: SimResult, name: str, *, limits: Limits | None = None,
                     redraw: Figure | None = None) -> Figure:
    """The five panels (a)-(e) of controller ``name`` on a shared time axis (aggregate of all
    services). ``limits`` share y ranges across controllers (default: this run's own).
    ``redraw``: a panel set figure of the same result and limits, or its overview, drawn anew (see
    :func:`emptied`)."""
    run = result.runs[name]
    view = run_view(result, run)
    lim = limits or shared_limits([view], result.slo)
    axis = TimeAxis.for_duration(result.duration_s)
    end_s = view.end_s
    actions = action_times(run.actions, None, result.duration_s, thinned=run.actions_dropped > 0)
    kinds = timeline_kinds(result)
    several = len(result.services) > 1

    ratios = [3, 3, 2.6, 2.6, 0.55 * (len(kinds) + 1) + 0.4]
    if redraw is not None:  # the overview's figure too: the same five axes on a shared time axis
        fig, axes = emptied(redraw, (12, 12), ratios), redraw.axes
    else:
        fig = new_figure(12, 12)
        axes = fig.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    draw_load(axes[0], view, axis, lim)
    draw_replicas(axes[1], view, actions, axis, lim)
    draw_latency(axes[2], view, result.slo, axis, lim)
    draw_error_ratio(axes[3], view, result.slo, axis, lim)
    draw_timeline(axes[4], view, actions, end_s, axis, kinds, several)
    titles = ["(a) load vs ready capacity", "(b) replicas and scale actions",
              f"(c) p{result.slo.latency_percentile:g} latency vs SLO", "(d) error ratio vs SLO",
              "(e) SLO violations and actions"]
    for i, (ax, title) in enumerate(zip(axes, titles)):
        style_axes(ax)
        shade_faults(ax, result.faults, end_s, axis, label=(i == 0))
        ax.set_title(title, loc="left", fontsize=10, pad=18 if i == 0 and result.faults else 4, y=TITLE_Y)
        if i < 4:
            handles, labels = ax.get_legend_handles_labels()
            handles += fault_handles(result.faults)
            # Outside on the right: inside, a legend hides data wherever the peak happens to be.
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    axes[4].set_xlim(view.start_s / axis.divisor, end_s / axis.divisor)
    axes[4].set_xlabel(axis.label, fontsize=10)
    scope = f"sum of {len(result.services)} services, worst latency" if several else result.services[0]
    fig.suptitle(f"{name}: {run.description}  [{scope}]", fontsize=12, fontweight="bold")
    return fig


def emptied(fig: Figure, size_in: tuple[float, float] | None = None,
            height_ratios: Sequence[float] | None = None) -> Figure:
    """``fig`` without its data, legends and texts, its constrained layout back on: its axes, their
    scales, limits and ticks kept for the next drawing of the same kind of figure (making the
    axes and their ticks is a good part of a figure's cost); ``size_in`` (width, height in
    inches) and the rows' ``height_ratios`` when given."""
    if size_in is not None:
        fig.set_size_inches(*size_in)
    if height_ratios is not None:
        fig.axes[0].get_subplotspec().get_gridspec().set_height_ratios(height_ratios)
    for ax in fig.axes:
        for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        # The layout starts from where a new figure's axes stand: the same pixels as a new figure.
        ax.set_position(ax.get_subplotspec().get_position(fig))
        ax.set_in_layout(True)  # set_position takes an axes out of the layout
    for legend in list(fig.legends):
        legend.remove()
    fig.set_layout_engine("constrained")
    return fig


def timeline_kinds(result: SimResult) -> list[str]:
    """Action rows of the timeline: the four main kinds always (so panel sets line up), plus
    ``other`` when some run has such an action."""
    kinds = ["scale up", "scale down", "restart", "rollback"]
    if any(action_category(a) == "other" for run in result.runs.values() for a in run.actions):
        kinds.append("other")
    return kinds


def service_multiples_figure(result: SimResult, name: str, *, redraw: Figure | None = None) -> Figure:
    """Per-service small multiples of controller ``name``: one column per service, rows load vs
    capacity, replicas, latency vs SLO with violations shaded. Each column has its own y range.
    ``redraw``: a figure of the same result's multiples, drawn anew (see :func:`emptied`)."""
    run = result.runs[name]
    timeline = run_timeline(result, run)
    axis = TimeAxis.for_duration(result.duration_s)
    n = len(result.services)
    if redraw is not None:
        fig, axes = emptied(redraw), np.array(redraw.axes).reshape(3, n)
    else:
        fig = new_figure(max(10.0, 3.3 * n), 7.5)
        axes = fig.subplots(3, n, sharex=True, squeeze=False)
    for j, service in enumerate(result.services):
        view = timeline.view(j)
        end_s = view.end_s
        lim = shared_limits([view], result.slo)
        actions = action_times(run.actions, [service], result.duration_s, thinned=run.actions_dropped > 0)
        draw_load(axes[0, j], view, axis, lim)
        draw_replicas(axes[1, j], view, actions, axis, lim)
        draw_latency(axes[2, j], view, result.slo, axis, lim)
        spans = merge_spans(view.violation_spans, (end_s - view.start_s) / MAX_POINTS)
        for s, w in spans:
            axes[2, j].axvspan(s / axis.divisor, (s + w) / axis.divisor, color=COLORS["violation"], alpha=0.15, linewidth=0)
        hits = [f for f in result.faults if j in fault_columns(f, result.services)]
        for i in range(3):
            style_axes(axes[i, j])
            shade_faults(axes[i, j], hits, end_s, axis, label=(i == 0))
            if j:
                axes[i, j].set_ylabel("")
        axes[0, j].set_title(service, fontsize=10, fontweight="bold", pad=18 if hits else 4, y=TITLE_Y)
        axes[2, j].set_xlabel(axis.label, fontsize=9)
        axes[2, j].set_xlim(view.start_s / axis.divisor, end_s / axis.divisor)
    handles = [
        Line2D([], [], color=COLORS["load"], label="offered load"),
        Line2D([], [], color=COLORS["capacity"], label="ready capacity / ready replicas"),
        Line2D([], [], color=COLORS["spec"], label="spec replicas"),
        Line2D([], [], color=COLORS["latency"], label="latency"),
        Line2D([], [], color=COLORS["slo"], linestyle="--", label="SLO"),
        Patch(color=COLORS["violation"], alpha=0.25, label="SLO violation"),
        *fault_handles(result.faults),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(f"{name}: per service", fontsize=12, fontweight="bold")
    return fig


#: Marker and color of each controller's point on the cost/violation plane (others: grey dots).
PLANE_STYLES = {"policy": ("*", "#ff7f0e", 260), "oracle": ("D", "#555555", 70), "fixed-max": ("s", "#8c564b", 70)}
HPA_COLOR = "#1f77b4"
#: Colors of controllers not in PLANE_STYLES (nor hpa), in order of appearance.
OTHER_CONTROLLER_COLORS = ("#2ca02c", "#9467bd", "#17becf", "#bcbd22", "#e377c2")


def controller_colors(names: Sequence[str]) -> dict[str, str]:
    """One color per controller, the same on every chart: the plane's for policy, hpa, oracle
    and fixed-max, then a cycle for the others."""
    known = {name: style[1] for name, style in PLANE_STYLES.items()} | {"hpa": HPA_COLOR}
    others = iter([c for c in OTHER_CONTROLLER_COLORS] * (1 + len(names) // len(OTHER_CONTROLLER_COLORS)))
    return {name: known.get(name) or next(others) for name in names}


def overview_figure(result: SimResult) -> Figure:
    """Every controller on the same axes, one line each (aggregate of all services): (a) offered
    load and each one's ready capacity, (b) spec replicas, (c) the latency percentile and
    (d) the error ratio against the SLO, (e) each one's SLO-violation spans with its minutes."""
    views = {n: run_view(result, r) for n, r in result.runs.items()}
    lim = shared_limits(list(views.values()), result.slo)
    axis = TimeAxis.for_duration(result.duration_s)
    colors = controller_colors(list(views))
    scores = score_result(result)
    first = next(iter(views.values()))
    end_s = first.end_s
    slo = result.slo

    fig = new_figure(12, 12.5)
    axes = fig.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": [2.6, 2.6, 2.2, 2.2, 0.45 * len(views) + 0.5]})
    ax_load, ax_rep, ax_lat, ax_err, ax_viol = axes
    t, load = first.offered_rps.t, first.offered_rps.y
    ax_load.plot(t / axis.divisor, load, color=COLORS["load"], linewidth=1.4, drawstyle="steps-post",
                 label="offered load (same for all)")
    for i, (name, v) in enumerate(views.items()):
        # Later lines are thinner and on top, so that equal values show as nested stripes.
        style = {"color": colors[name], "linewidth": 1.4 + 0.7 * (len(views) - 1 - i), "drawstyle": "steps-post",
                 "label": name, "linestyle": (0, (4, 2)) if name == ORACLE else "-", "zorder": 3 + i}
        for ax, y in ((ax_load, v.capacity_rps), (ax_rep, v.spec_replicas), (ax_lat, v.latency_s),
                      (ax_err, v.error_ratio)):
            tt, yy = y.t, y.y
            ax.plot(tt / axis.divisor, yy, **(style if ax is not ax_load else style | {"label": f"{name} capacity"}))
    ax_load.set_ylim(0, lim.rps)
    ax_load.set_ylabel("requests/s")
    ax_rep.set_ylim(0, lim.replicas)
    ax_rep.set_ylabel("spec replicas")
    ax_lat.axhline(slo.latency_s, color=COLORS["slo"], linestyle=":", linewidth=1.4, label=f"SLO {slo.latency_s:g} s")
    if lim.log_latency:
        ax_lat.set_yscale("log")
    ax_lat.set_ylim(lim.latency_lo, lim.latency_hi)
    ax_lat.set_ylabel(f"p{slo.latency_percentile:g} latency (s)")
    draw_error_axis(ax_err, slo, lim)
    ax_err.get_lines()[-1].set_linestyle(":")
    draw_violation_rows(ax_viol, views, scores, colors, end_s, axis)

    several = len(result.services) > 1
    titles = ["(a) offered load vs each controller's ready capacity", "(b) spec replicas",
              f"(c) p{slo.latency_percentile:g} latency vs SLO" + (" (worst service)" if several else ""),
              "(d) error ratio vs SLO" + (" (worst service)" if several else ""),
              "(e) SLO violations (minutes in the score table)"]
    for i, (ax, title) in enumerate(zip(axes, titles)):
        style_axes(ax)
        shade_faults(ax, result.faults, end_s, axis, label=(i == 0))
        ax.set_title(title, loc="left", fontsize=10, pad=18 if i == 0 and result.faults else 4, y=TITLE_Y)
    for ax in (ax_load, ax_lat, ax_err):  # context entries only: the controllers share one legend
        handles = [h for h, l in zip(*ax.get_legend_handles_labels()) if l.startswith(("offered", "SLO"))]
        ax.legend(handles=handles + (fault_handles(result.faults) if ax is ax_load else []), loc="upper left",
                  bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax_rep.legend(handles=[Line2D([], [], color=colors[n], linestyle=(0, (4, 2)) if n == ORACLE else "-", linewidth=2,
                                  label=n) for n in views],
                  loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False, title="controller",
                  title_fontsize=9)
    ax_viol.set_xlim(first.start_s / axis.divisor, end_s / axis.divisor)
    ax_viol.set_xlabel(axis.label, fontsize=10)
    scope = f"sum of {len(result.services)} services" if several else result.services[0]
    fig.suptitle(f"{result.scenario}: every controller on the same axes  [{scope}]", fontsize=12, fontweight="bold")
    return fig


def draw_violation_rows(ax, views: dict[str, View], scores: dict[str, dict], colors: dict[str, str], end_s: float,
                        axis: TimeAxis) -> None:
    """One row per controller (first on top): its violation spans, labelled with its minutes."""
    names = list(views)
    for row, name in enumerate(names):
        v = views[name]
        y = len(names) - 1 - row
        spans = merge_spans(v.violation_spans, (end_s - v.start_s) / (2 * MAX_POINTS))
        if spans:
            ax.broken_barh([(s / axis.divisor, w / axis.divisor) for s, w in spans], (y - 0.35, 0.7),
                           facecolors=colors[name], alpha=0.85)
    ax.set_yticks([len(names) - 1 - i for i in range(len(names))],
                  [f"{n}: {fmt_number(scores[n]['slo_violation_minutes'])} min" for n in names])
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.grid(False, axis="y")


def frontier_figure(result: SimResult) -> Figure:
    """The cost/violation plane: HPA's swept points (labelled with their CPU targets) and the
    envelope through them, every other controller's point, and for each the point of HPA at
    equal cost (a hollow circle, joined to the controller's point by a dotted line)."""
    return plane_figure(result.frontier, score_result(result),
                        f"{result.scenario}: cost vs violations; lower left is better")


#: The Pareto front's line on the plane (:func:`plane_figure`).
PARETO_COLOR = "#2ca02c"


def plane_figure(fr: Frontier | None, scores: dict[str, dict], title: str, *,
                 pareto: Sequence[str] | None = None, equal_cost_notes: bool = True) -> Figure:
    """The cost/violation plane of ``scores`` (name -> ``replica_hours``,
    ``slo_violation_minutes``): HPA's frontier ``fr`` when given (its swept points and lower
    envelope), each controller of ``fr.equal_cost`` with HPA at equal cost when
    ``equal_cost_notes``, else every score as a labelled point (a sweep's variants), and the
    ``pareto`` front (names along it) as a line."""
    fig = new_figure(12, 6)
    ax = fig.subplots()
    points = fr.points if fr is not None else []
    xs = [p.replica_hours for p in fr.envelope] if fr is not None else []
    ys = [p.slo_violation_minutes for p in fr.envelope] if fr is not None else []
    if points:
        dearest = max(p.replica_hours for p in points)
        if xs and dearest > xs[-1]:  # dearer points off the envelope: measured flat up to them
            xs, ys = xs + [dearest], ys + [ys[-1]]
        ax.plot(xs, ys, color=HPA_COLOR, linewidth=1.8, zorder=2, label="HPA frontier (lower envelope)")
        ax.scatter([p.replica_hours for p in points], [p.slo_violation_minutes for p in points], color=HPA_COLOR,
                   s=40, zorder=3, label="HPA at a CPU target")
        for p in points:
            ax.annotate(f"{p.target_pct:g}%{' (widened)' if p.widened else ''}", (p.replica_hours, p.slo_violation_minutes),
                        textcoords="offset points", xytext=(6, 6), fontsize=9, color=HPA_COLOR)
    all_x = [p.replica_hours for p in points]
    all_y = [p.slo_violation_minutes for p in points]
    notes = []
    compared = fr.equal_cost if fr is not None and equal_cost_notes else {}
    if pareto:
        front = [scores[n] for n in pareto]
        ax.plot([s["replica_hours"] for s in front], [s["slo_violation_minutes"] for s in front], color=PARETO_COLOR,
                linewidth=2.2, alpha=0.6, zorder=3.5, label="Pareto front (no variant is cheaper and better)")
    if not equal_cost_notes:
        on_front = set(pareto or ())
        for name, s in scores.items():
            if fr is not None and any(name == f"hpa@{p.target_pct:g}%" for p in points):
                continue  # drawn as HPA's points
            x, y = s["replica_hours"], s["slo_violation_minutes"]
            ax.scatter([x], [y], marker="*" if name in on_front else "o", s=160 if name in on_front else 45,
                       color=PARETO_COLOR if name in on_front else "#7f7f7f", edgecolors="white", linewidths=0.6,
                       zorder=5)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, -10), fontsize=8, color="#333333")
            all_x.append(x)
            all_y.append(y)
    for name, e in compared.items():
        marker, color, size = PLANE_STYLES.get(name, ("o", "#7f7f7f", 50))
        s = scores[name]
        ax.scatter([s["replica_hours"]], [s["slo_violation_minutes"]], marker=marker, color=color, s=size, zorder=5,
                   edgecolors="white", linewidths=0.6, label=f"{name}: {fmt_number(s['slo_violation_minutes'])} min, "
                                                              f"{fmt_number(s['replica_hours'])} replica-hours")
        all_x.append(s["replica_hours"])
        all_y.append(e.slo_violation_minutes)
        if e.hpa_slo_violation_minutes is None:
            continue
        if e.extrapolated:  # the flat extension of the envelope, dashed: not measured
            end = xs[0] if e.extrapolated == "below" else xs[-1]
            ax.plot([end, e.replica_hours], [e.hpa_slo_violation_minutes] * 2, color=HPA_COLOR, linestyle="--",
                    linewidth=1.2, zorder=2)
        ax.plot([e.replica_hours] * 2, [e.slo_violation_minutes, e.hpa_slo_violation_minutes], color=color,
                linestyle=":", linewidth=1.4, zorder=4)
        ax.scatter([e.replica_hours], [e.hpa_slo_violation_minutes], marker="o", s=90, facecolors="none",
                   edgecolors=color, linewidths=1.8, zorder=5)
        notes.append(e)
    span_x = (max(all_x, default=0.0) - min(all_x, default=0.0)) or 1.0
    ax.set_xlim(min(all_x, default=0.0) - 0.08 * span_x, max(all_x, default=1.0) + 0.25 * span_x)
    top = max(max(all_y, default=0.0), 1.0) * 1.18
    ax.set_ylim(-0.04 * top, top)
    right_half = min(all_x, default=0.0) + 0.6 * span_x
    # After the limits, so that notes near the right edge turn left; each next note (by cost)
    # one step further from its point, so that notes of nearby controllers do not overlap.
    for k, e in enumerate(sorted(notes, key=lambda e: e.replica_hours)):
        color = PLANE_STYLES.get(e.controller, ("o", "#7f7f7f", 50))[1]
        verdict = f"{e.ratio:.2f}x, {e.verdict}" if e.ratio is not None else e.verdict
        left = e.replica_hours > right_half
        low = e.hpa_slo_violation_minutes < 0.2 * top  # near the x axis: the note goes above
        ax.annotate(f"HPA @ equal cost: {fmt_number(e.hpa_slo_violation_minutes)} min"
                    f"{' (extrapolated)' if e.extrapolated else ''}\n{e.controller}: {verdict}",
                    (e.replica_hours, e.hpa_slo_violation_minutes), textcoords="offset points",
                    xytext=(-10 if left else 10, 10 + 30 * k if low else -8 - 30 * k), ha="right" if left else "left",
                    va="bottom" if low else "top", fontsize=8.5,
                    color=color, zorder=6, bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.9,
                                                 "edgecolor": "none"})
    ax.set_xlabel("cost: replica-hours (spec replicas integrated over time, summed over services)")
    ax.set_ylabel("SLO-violation minutes (summed over services)")
    style_axes(ax)
    handles, _ = ax.get_legend_handles_labels()
    if not equal_cost_notes:
        handles += [Line2D([], [], marker="*", linestyle="none", color=PARETO_COLOR, markersize=12,
                           label="variant on the Pareto front"),
                    Line2D([], [], marker="o", linestyle="none", color="#7f7f7f", markersize=7, label="other variant")]
    if notes:
        handles.append(Line2D([], [], marker="o", linestyle="none", markerfacecolor="none", markeredgecolor="#555555",
                              markersize=9, label="HPA @ equal cost (interpolated)"))
    # Outside on the right: inside, it hid the dearest HPA points.
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    ax.set_title(title, loc="left", fontsize=11, y=TITLE_Y)
    return fig


def figure_png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes at its own DPI, laid out once and drawn once.

    ``savefig`` would draw the figure twice: a dry draw that runs the layout engine, then the
    real one. Running the layout here and fixing it leaves the one real draw (same pixels)."""
    engine = fig.get_layout_engine()
    if engine is not None:
        inputs, last = layout_inputs(fig), LAYOUTS.get(fig)
        if inputs is not None and last is not None and last[0] == inputs:
            place(fig, last[1])
        else:
            engine.execute(fig)
            LAYOUTS[fig] = (inputs, placement(fig))
        fig.set_layout_engine("none")
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    # An opaque figure (a white face: every one here) loses nothing as RGB. RGB at zlib level 3
    # takes ~30% less CPU than matplotlib's RGBA at level 6 and is ~2% smaller (December 7).
    opaque = bool((rgba[..., 3] == 255).all())
    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3] if opaque else rgba).save(buf, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


#: The constrained layout each figure was last given: its inputs (:func:`layout_inputs`) and the
#: placement it made (:func:`placement`), for a figure drawn again (:func:`emptied`).
LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layout_inputs(fig: Figure) -> tuple | None:
    """What the constrained layout of a figure drawn again can depend on that its drawing may
    change: each axes' titles, axis labels, limits, scales, tick locators and formatters (fixed
    ones with their ticks), texts and legend entries, and the heights of the figure's texts (the
    suptitle). Equal inputs, equal layout; None (always lay out) with a figure legend."""
    if fig.legends:
        return None
    renderer = fig.canvas.get_renderer()

    def axis(a) -> tuple:
        locator, formatter = a.get_major_locator(), a.get_major_formatter()
        return (a.get_scale(), a.get_label_text(), type(locator).__name__, tuple(getattr(locator, "locs", ())),
                type(formatter).__name__, tuple(getattr(formatter, "seq", ())))

    def legend(ax) -> tuple | None:
        leg = ax.get_legend()
        return leg and (tuple(t.get_text() for t in leg.get_texts()), tuple(type(h).__name__ for h in leg.legend_handles),
                        leg.get_title().get_text())

    return (tuple(fig.get_size_inches()), fig.dpi,
            tuple((tuple(ax.get_title(loc=loc) for loc in ("left", "center", "right")), ax.get_xlim(), ax.get_ylim(),
                   axis(ax.xaxis), axis(ax.yaxis), legend(ax),
                   tuple((t.get_text(), t.get_position(), t.get_fontsize()) for t in ax.texts)) for ax in fig.axes),
            tuple((t.get_fontsize(), t.get_window_extent(renderer).height) for t in fig.texts))


def placement(fig: Figure) -> tuple[list, list]:
    """Where the layout put each axes and each figure text (the suptitle)."""
    return [ax.get_position().frozen() for ax in fig.axes], [t.get_position() for t in fig.texts]


def place(fig: Figure, where: tuple[list, list]) -> None:
    """Put ``fig``'s axes and texts where :func:`placement` found them."""
    for ax, position in zip(fig.axes, where[0]):
        ax.set_position(position)
    for text, position in zip(fig.texts, where[1]):
        text.set_position(position)


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


# --- HTML ---------------------------------------------------------------------------------------

#: Score table columns: (row key, header, tooltip). Lower is better for every one of them.
TABLE_COLUMNS = (
    ("slo_violation_minutes", "SLO-violation minutes", "minutes in which a service broke the SLO, summed over services"),
    ("replica_hours", "replica-hours", "integral of spec replicas over time"),
    ("replica_hours_vs_oracle", "vs oracle", "replica-hours over the oracle's"),
    ("replica_changes", "replica changes", "ticks at which spec replicas changed, summed over services"),
    ("reversals", "reversals", "changes opposite to the previous one of the same service within 5 min"),
    ("worst_mitigation_s", "worst mitigation (s)", "longest time to mitigate a fault; never = not mitigated"),
)


def sort_key(value: Any) -> float:
    """Lower is better; a missing value (never mitigated) is worst."""
    return math.inf if value is None else float(value)


def best_values(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    """Best (lowest) value per column over the contenders: the oracle is a bound, not a
    contender, unless it is the only run."""
    contenders = [r for r in rows if r["controller"] != ORACLE] or list(rows)
    best = {}
    for key in keys:
        values = [sort_key(r.get(key)) for r in contenders if r.get(key) is not None]
        if values and math.isfinite(min(values)):
            best[key] = min(values)
    return best


def score_table_html(result: SimResult) -> str:
    rows = score_table(result)
    columns = [c for c in TABLE_COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    fault_names = [f.name for f in result.faults] if len(result.faults) > 1 else []
    best = best_values(rows, [c[0] for c in columns])
    fault_best = best_values([{"controller": r["controller"], **r["mitigation_seconds"]} for r in rows], fault_names)
    head = "".join(f'<th title="{html.escape(tip)}">{html.escape(h)}</th>' for _, h, tip in columns)
    head += "".join(f'<th title="time to mitigate this fault (s)">{html.escape(n)} (s)</th>' for n in fault_names)
    body = []
    for r in rows:
        cells = [f'<td class="name">{html.escape(r["controller"])}</td><td class="desc">{html.escape(r["description"])}</td>']
        for key, _, _ in columns:
            cells.append(cell(r.get(key), best.get(key), ratio=(key == "replica_hours_vs_oracle")))
        for n in fault_names:
            cells.append(cell(r["mitigation_seconds"].get(n), fault_best.get(n), none_text="never"))
        cls = ' class="oracle"' if r["controller"] == ORACLE else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f'<table class="scores"><thead><tr><th>controller</th><th>description</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def cell(value: Any, best: float | None, none_text: str = "–", ratio: bool = False) -> str:
    is_best = value is not None and best is not None and sort_key(value) == best
    text = none_text if value is None else f"{value:.2f}" if ratio else fmt_number(value)
    return f'<td class="num{" best" if is_best else ""}">{text}</td>'


def header_html(result: SimResult) -> str:
    slo = result.slo
    items = [
        ("SLO", f"p{slo.latency_percentile:g} latency ≤ {slo.latency_s:g} s, error ratio ≤ {slo.error_ratio:.3g}, "
                f"no dropped requests"),
        ("duration", f"{fmt_duration(result.duration_s)} at a {fmt_duration(result.tick_s)} tick"),
        ("seed", str(result.seed)),
        ("services", services_text(result.services)),
    ]
    if result.policy_file:
        items.append(("policy", shown_path(result.policy_file)))
    if result.faults:
        items.append(("faults", "; ".join(fault_text(f) for f in result.faults)))
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
    return (f"<h1>{html.escape(result.scenario)}</h1><p class=\"desc\">{html.escape(result.description)}</p>"
            f"<dl>{dl}</dl>")


def services_text(services: Sequence[str], shown: int = 12) -> str:
    if len(services) <= shown:
        return ", ".join(services)
    return f"{len(services)} services: " + ", ".join(services[:shown]) + ", …"


def fault_text(f: FaultWindow) -> str:
    until = f"–{fmt_duration(f.end_s)}" if f.end_s is not None else " (no end)"
    return f"{f.name} ({f.kind}) on {f.service or 'all services'} at {fmt_duration(f.start_s)}{until}"


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1240px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } p.desc { margin-top: 0; color: #555; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
table.scores { border-collapse: collapse; margin: 1em 0; font-size: 0.95em; }
table.scores th, table.scores td { border-bottom: 1px solid #ddd; padding: 0.35em 0.7em; text-align: left; }
table.scores th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #d9f2d9; font-weight: 700; }
tr.oracle td { color: #666; font-style: italic; }
td.name { font-weight: 600; } td.desc { color: #555; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
.note { color: #666; font-size: 0.9em; }
"""


def write_report(result: SimResult, path: str | Path) -> Path:
    """Write the report of ``result`` to ``path`` (an HTML file, parents created); return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(result), encoding="utf-8")
    return path


def report_html(result: SimResult) -> str:
    """The whole report as one HTML string."""
    limits = shared_limits([run_view(result, r) for r in result.runs.values()], result.slo)
    scores = score_result(result)
    parts = [header_html(result),
             '<h2 id="overview">Overview: every controller on the same axes</h2>',
             '<p class="note">Each line is one controller (the legend of panel (b) names them; colors are the same '
             "on every chart). Panel (e) marks when each controller broke the SLO; panels (a) to (d) show why: "
             "too little ready capacity for the load, latency above the SLO, or errors above the SLO's ratio."
             f"{' Grey bands are fault windows.' if result.faults else ''}</p>",
             img_tag(figure_png(overview := overview_figure(result)), "overview: every controller on the same axes")]
    if ORACLE in result.runs:
        parts.append(f'<p class="note oracle-note">{html.escape(ORACLE_SENTENCE, quote=False)}</p>')
    parts += ["<h2>Scores</h2>", score_table_html(result),
              '<p class="note">Lower is better in every column; the best value among the controllers (the oracle is '
              "a bound, not a contender) is highlighted. A minute violates when the latency percentile exceeds the "
              "SLO, the error ratio exceeds it, or requests are dropped. Mitigation: from the fault's start until its "
              "services stay within the SLO for 2 minutes.</p>"]
    parts += [f'<p class="note driven">{html.escape(line)}</p>'
              for line in driven_lines(score_table(result), result.services)]
    if result.frontier is not None:
        parts += ['<h2 id="frontier">Cost vs violations: HPA\'s frontier</h2>',
                  '<p class="note">The hpa preset re-run at each CPU target on the same scenario and seed. '
                  "HPA @ equal cost is its violation minutes interpolated along the lower envelope at a controller's "
                  "replica-hours (flat, dashed and flagged, outside the swept range). A ratio below 1 means fewer "
                  "violations than HPA spending the same; 0 against 0 is a tie.</p>",
                  img_tag(figure_png(frontier_figure(result)), "cost vs violations: HPA's frontier")]
    parts.append('<h2 id="controllers">Each controller in detail</h2>'
                 '<p class="note">The same y ranges for every controller: load and capacity, replicas with each '
                 "scale action, latency and error ratio against the SLO, and a timeline of violations and actions "
                 "(restarts, rollbacks).</p>")
    fig = overview
    for name in result.runs:
        parts.append(f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>')
        parts.append(f'<p class="note">{html.escape(score_summary(scores[name]))}</p>')
        fig = panel_set_figure(result, name, limits=limits, redraw=fig)
        parts.append(img_tag(figure_png(fig), f"{name} panel set"))
    if 1 < len(result.services) <= MAX_SERVICE_MULTIPLES:
        parts.append("<h2>Per service</h2>")
        fig = None
        for name in result.runs:
            fig = service_multiples_figure(result, name, redraw=fig)
            parts.append(img_tag(figure_png(fig), f"{name} per service"))
    elif len(result.services) > MAX_SERVICE_MULTIPLES:
        parts.append(f'<p class="note">Per-service plots are drawn for at most {MAX_SERVICE_MULTIPLES} services; '
                     f"this scenario has {len(result.services)}.</p>")
    body = "\n".join(parts)
    title = html.escape(f"Setpoint simulation: {result.scenario}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


#: What the oracle is, in one sentence (shown when the report has an oracle run).
ORACLE_SENTENCE = (
    "The oracle knows the future load and the pods' start-up delay and has exactly enough replicas ready "
    "in time, so its replica-hours are a floor for serving this load within the SLO; it provisions for load, "
    "not for faults (it never restarts or rolls back), so a fault such as a bad rollout or a lost node can "
    "still cost it violation minutes.")


def score_summary(scores: dict[str, Any]) -> str:
    """One line of a controller's scores, for the caption of its panel set."""
    parts = [f"{fmt_number(scores['slo_violation_minutes'])} SLO-violation minutes",
             f"{fmt_number(scores['replica_hours'])} replica-hours"]
    if scores.get("replica_hours_vs_oracle") is not None:
        parts[-1] += f" ({scores['replica_hours_vs_oracle']:.2f}× oracle)"
    parts += [f"{scores['replica_changes']} replica changes", f"{scores['reversals']} reversals"]
    for fault, s in scores["mitigation_seconds"].items():
        parts.append(f"{fault} mitigated in {fmt_number(s)} s" if s is not None else f"{fault} never mitigated")
    return " · ".join(parts)
