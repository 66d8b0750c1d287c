"""The HTML report: one self-contained file with a panel set per controller."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.artist import Artist
from PIL import Image

import simulators

from simulators.report import (ORACLE_SENTENCE, action_category, envelope, figure_png, overview_figure,
                               panel_set_figure, report_html, run_view, service_multiples_figure, shared_limits,
                               true_spans, write_report)
from simulators.result import SLO, ActionEvent, ControllerRun, FaultWindow, SimResult, Trajectory, shown_path

PNG_IMG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"')
CAPACITY_PER_POD_RPS = 10.0


def follow(load: np.ndarray, lag_ticks: int, headroom: float, floor: int = 1) -> np.ndarray:
    """Replicas a controller with ``lag_ticks`` of delay and ``headroom`` would ask for. (T, S)."""
    want = np.maximum(floor, np.ceil(load * headroom / CAPACITY_PER_POD_RPS))
    return np.vstack([np.repeat(want[:1], lag_ticks, axis=0), want[:-lag_ticks]]) if lag_ticks else want


def synthetic_run(name: str, description: str, t: np.ndarray, load: np.ndarray, spec: np.ndarray,
                  services: list[str], startup_ticks: int, lost: np.ndarray | None = None) -> ControllerRun:
    """A plausible trajectory: ready replicas lag spec by the startup delay, latency blows up
    near saturation, load beyond capacity is dropped."""
    ready = np.vstack([spec[:1].repeat(startup_ticks, axis=0), spec[:-startup_ticks]]) if startup_ticks else spec.copy()
    ready = np.minimum(spec, ready)
    if lost is not None:
        ready = np.maximum(0, ready - lost)
    capacity = ready * CAPACITY_PER_POD_RPS
    served = np.minimum(load, capacity)
    dropped = load - served
    rho = np.clip(np.divide(served, capacity, out=np.ones_like(served), where=capacity > 0), 0, 0.99)
    latency = np.where(capacity > 0, 0.05 + 0.02 / (1 - rho), 30.0)
    errors = np.divide(dropped, load, out=np.zeros_like(load), where=load > 0)
    changes = np.flatnonzero(np.diff(spec, axis=0).any(axis=1)) + 1
    actions = [
        ActionEvent(float(t[i]), services[j], "scale", int(spec[i - 1, j]), int(spec[i, j]), "load")
        for i in changes for j in range(len(services)) if spec[i, j] != spec[i - 1, j]
    ]
    traj = Trajectory(t_s=t, offered_rps=load, served_rps=served, dropped_rps=dropped, capacity_rps=capacity,
                      spec_replicas=spec, ready_replicas=ready, latency_s=latency, error_ratio=errors,
                      violation=np.zeros(load.shape, dtype=bool))
    return ControllerRun(name, description, traj, actions)


def synthetic_result(duration_s: float = 3600.0, tick_s: float = 5.0, services=("api", "web")) -> SimResult:
    """A flash crowd at 40 % of the run on a diurnal-ish base, a node loss on ``api`` at 70 %
    (cured by a restart and a rollback for the policy), policy vs HPA vs oracle."""
    services = list(services)
    t = np.arange(0.0, duration_s, tick_s)
    rng = np.random.default_rng(3)
    base = 60 + 25 * np.sin(2 * np.pi * t / duration_s)
    crowd = 120 * np.exp(-0.5 * ((t - 0.4 * duration_s) / (0.03 * duration_s)) ** 2)
    load = np.column_stack([(base + crowd) * (1 + 0.3 * j) + rng.normal(0, 3, t.size) for j in range(len(services))])
    load = np.maximum(load, 0.0)
    startup = max(1, int(60 / tick_s))
    fault_at = 0.7 * duration_s
    lost = np.zeros(load.shape)
    lost[(t >= fault_at) & (t < fault_at + 0.05 * duration_s), 0] = 4
    runs = {
        "policy": synthetic_run("policy", "bundled flash-crowd policy", t, load, follow(load, 2, 1.3), services, startup, lost),
        "hpa": synthetic_run("hpa", "the hpa preset", t, load, follow(load, 12, 1.1), services, startup, lost),
        "oracle": synthetic_run("oracle", "knows the future load", t, load, follow(load, 0, 1.05), services, 0, lost),
    }
    runs["policy"].actions += [
        ActionEvent(fault_at + 40, services[0], "restart-pod", None, None, "not ready"),
        ActionEvent(fault_at + 90, services[0], "rollback", None, None, "error ratio"),
    ]
    faults = [FaultWindow("node-a", "node-loss", services[0], fault_at, fault_at + 0.05 * duration_s),
              FaultWindow("crash", "pod-crash", services[-1], 0.2 * duration_s, None)]
    return SimResult(scenario="flash-crowd-sample", description="A flash crowd and a node loss (synthetic).",
                     duration_s=duration_s, tick_s=tick_s, seed=42, slo=SLO(95, 0.3, 0.01), services=services,
                     faults=faults, runs=runs, policy_file="policies/default.yaml")


def test_report_is_one_html_file_with_a_panel_set_per_controller(tmp_path):
    result = synthetic_result(duration_s=1800.0, tick_s=5.0)
    path = write_report(result, tmp_path / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # The overview, one panel set per controller plus, with 2 services, one per-service figure per controller.
    assert len(PNG_IMG.findall(text)) == 1 + 2 * len(result.runs)
    for name in result.runs:
        assert f'alt="{name} panel set"' in text and f'alt="{name} per service"' in text
        assert f'<td class="name">{name}</td>' in text
    assert "flash-crowd-sample" in text
    assert '<table class="scores">' in text and "SLO-violation minutes" in text and 'class="num best"' in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "<script" not in text


def test_report_of_a_single_service_has_no_per_service_section(tmp_path):
    result = synthetic_result(duration_s=600.0, tick_s=5.0, services=("api",))
    text = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    assert len(PNG_IMG.findall(text)) == 1 + len(result.runs) and "Per service" not in text


def test_report_renders_a_day_at_five_second_ticks(tmp_path):
    # 17,280 ticks per run, downsampled to a few thousand points per line.
    result = synthetic_result(duration_s=86400.0, tick_s=5.0)
    assert result.runs["policy"].trajectory.t_s.size == 17_280
    text = write_report(result, tmp_path / "day.html").read_text(encoding="utf-8")
    assert len(PNG_IMG.findall(text)) == 1 + 2 * len(result.runs)


# --- the overview, the error-ratio and latency panels, the oracle, paths ----------------------


def lines_labelled(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_overview_puts_every_controller_on_the_same_axes():
    result = synthetic_result(duration_s=1800.0, tick_s=5.0)
    fig = overview_figure(result)
    capacity, replicas, latency, errors, violations = fig.axes[:5]
    names = list(result.runs)
    # One series per controller on the replicas, latency and error-ratio axes, in run order.
    for ax in (replicas, latency, errors):
        assert [n for n in lines_labelled(ax) if n in names] == names
    assert [n for n in lines_labelled(capacity) if n.endswith(" capacity")] == [f"{n} capacity" for n in names]
    # Each controller's replicas line is its own trajectory (sum over services), not a copy.
    for name in names:
        y = lines_labelled(replicas)[name].get_ydata()
        assert np.array_equal(y, result.runs[name].trajectory.spec_replicas.sum(axis=1))
    # The SLO lines sit at the SLO's thresholds.
    assert lines_labelled(latency)["SLO 0.3 s"].get_ydata()[0] == pytest.approx(0.3)
    assert lines_labelled(errors)["SLO 1%"].get_ydata()[0] == pytest.approx(0.01)
    # One violation row per controller, labelled with its minutes.
    assert [t.get_text().split(":")[0] for t in violations.get_yticklabels()] == names
    assert all(t.get_text().endswith(" min") for t in violations.get_yticklabels())


def test_each_panel_set_has_an_error_ratio_panel_against_the_slo():
    result = synthetic_result(duration_s=600.0, tick_s=5.0, services=("api",))
    fig = panel_set_figure(result, "policy")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert "(c) p95 latency vs SLO" in titles and "(d) error ratio vs SLO" in titles
    errors = fig.axes[titles.index("(d) error ratio vs SLO")]
    assert np.array_equal(lines_labelled(errors)["error ratio"].get_ydata(),
                          result.runs["policy"].trajectory.error_ratio[:, 0])
    assert lines_labelled(errors)["SLO 1%"].get_ydata()[0] == pytest.approx(0.01)


def test_report_opens_with_the_overview_and_explains_the_oracle():
    text = report_html(synthetic_result(duration_s=600.0, tick_s=5.0))
    overview = text.index('alt="overview: every controller on the same axes"')
    assert overview < text.index("<h2>Scores</h2>") < text.index('alt="policy panel set"')
    assert ORACLE_SENTENCE in text
    for words in ("knows the future load", "floor", "provisions for load, not for faults", "violation minutes"):
        assert words in ORACLE_SENTENCE


def test_report_without_an_oracle_run_does_not_explain_one():
    result = synthetic_result(duration_s=600.0, tick_s=5.0)
    del result.runs["oracle"]
    assert ORACLE_SENTENCE not in report_html(result)


def without_images(text: str) -> str:
    """The report without its base64 images (whose letters could spell anything)."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)


def test_report_shows_an_absolute_policy_path_relative_to_the_working_directory(tmp_path, monkeypatch):
    checkout = Path(simulators.__file__).resolve().parents[1]
    monkeypatch.chdir(checkout)
    result = synthetic_result(duration_s=600.0, tick_s=5.0)
    result.policy_file = str(checkout / "policies" / "hpa-cpu.yaml")
    text = without_images(write_report(result, tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "<dd>policies/hpa-cpu.yaml</dd>" in text
    assert str(checkout) not in text and "/tmp" not in text and str(tmp_path) not in text


@pytest.mark.parametrize("path,cwd,expect", [
    pytest.param("policies/a.yaml", "/work/x", "policies/a.yaml", id="relative-as-given"),
    pytest.param("/work/x/policies/a.yaml", "/work/x", "policies/a.yaml", id="absolute-under-cwd"),
    pytest.param("/elsewhere/b.yaml", "/work/x", "b.yaml", id="absolute-elsewhere-name-only"),
    pytest.param("bundled hpa-cpu.yaml", "/work/x", "bundled hpa-cpu.yaml", id="bundled-name"),
])
def test_shown_path(path, cwd, expect):
    assert shown_path(path, cwd) == expect


# --- helpers --------------------------------------------------------------------------------


def test_envelope_keeps_a_one_tick_spike_and_dip():
    t = np.arange(10_000, dtype=float)
    y = np.ones_like(t)
    y[4321], y[7777] = 50.0, -3.0
    tt, yy = envelope(t, y, max_points=200)
    assert tt.size <= 200 and yy.max() == 50.0 and yy.min() == -3.0
    assert np.all(np.diff(tt) >= 0)


@pytest.mark.parametrize("mask,min_gap,expect", [
    pytest.param([0, 0, 0, 0], 0.0, [], id="none"),
    # Ticks of 10 s; bad at 10 and 20 -> [10, 30); bad at the last tick (30) runs to the end (45).
    pytest.param([0, 1, 1, 1], 0.0, [(10.0, 35.0)], id="runs-to-the-end"),
    pytest.param([1, 0, 1, 0], 0.0, [(0.0, 10.0), (20.0, 10.0)], id="two-spans"),
    # The 10 s gap between them is below the 15 s merge distance: one span.
    pytest.param([1, 0, 1, 0], 15.0, [(0.0, 30.0)], id="close-spans-merge"),
])
def test_true_spans(mask, min_gap, expect):
    t = np.array([0.0, 10.0, 20.0, 30.0])
    assert true_spans(t, np.array(mask, dtype=bool), 45.0, min_gap) == expect


@pytest.mark.parametrize("kind,from_r,to_r,expect", [
    pytest.param("scale", 2, 3, "scale up", id="up"),
    pytest.param("scale", 3, 2, "scale down", id="down"),
    pytest.param("scale", 3, 3, "other", id="no-change"),
    pytest.param("restart-pod", None, None, "restart", id="restart-pod"),
    pytest.param("rolling-restart", None, None, "restart", id="rolling-restart"),
    pytest.param("rollback", None, None, "rollback", id="rollback"),
])
def test_action_category(kind, from_r, to_r, expect):
    assert action_category(ActionEvent(0.0, "api", kind, from_r, to_r, "")) == expect


def test_every_action_marker_draws_without_a_warning(tmp_path):
    """Each action kind's marker, "x" (other: a paused rollout, say) included: matplotlib warned
    on the terminal of every `setpoint simulate` with such an action (an edge colour given to an
    unfilled marker)."""
    import warnings

    result = synthetic_result(duration_s=600.0, tick_s=5.0, services=("api",))
    result.runs["policy"].actions.append(ActionEvent(100.0, "api", "pause-rollout", None, None, "evidence"))
    assert {action_category(a) for a in result.runs["policy"].actions} >= {"scale up", "restart", "rollback", "other"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_report(result, tmp_path / "r.html")


# --- rendering: one draw a figure, one figure for every controller's panel set ------------------


def with_fixed_run(result: SimResult) -> SimResult:
    """``result`` plus a controller that never scales: no scale actions in its legends."""
    policy = result.runs["policy"].trajectory
    spec = np.full_like(policy.spec_replicas, policy.spec_replicas.max())
    result.runs["fixed"] = synthetic_run("fixed", "fixed replicas", policy.t_s, policy.offered_rps, spec,
                                         result.services, 0)
    return result


class DrawCount(Artist):
    """An invisible artist that counts how many times its figure draws it."""

    def __init__(self):
        super().__init__()
        self.draws = 0

    def draw(self, renderer):
        self.draws += 1


def test_figure_png_draws_a_figure_once():
    """savefig drew every figure twice (a dry draw to run the constrained layout, then the real one)."""
    result = synthetic_result(duration_s=600.0, tick_s=5.0, services=("api",))
    fig = panel_set_figure(result, "policy")
    counter = DrawCount()
    fig.axes[0].add_artist(counter)
    figure_png(fig)
    assert counter.draws == 1


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def saved_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


@pytest.mark.parametrize("draw", [
    pytest.param(lambda r: panel_set_figure(r, "hpa"), id="panel-set"),
    pytest.param(lambda r: service_multiples_figure(r, "policy"), id="per-service"),
])
def test_figure_png_is_the_picture_savefig_draws(draw):
    result = synthetic_result(duration_s=900.0, tick_s=5.0)
    assert np.array_equal(pixels(figure_png(draw(result))), pixels(saved_png(draw(result))))


@pytest.mark.parametrize("draw,first,then", [
    pytest.param(lambda r, n, f: panel_set_figure(r, n, redraw=f), "policy", "fixed", id="panel-set-losing-actions"),
    pytest.param(lambda r, n, f: panel_set_figure(r, n, redraw=f), "fixed", "hpa", id="panel-set-gaining-actions"),
    pytest.param(lambda r, n, f: service_multiples_figure(r, n, redraw=f), "oracle", "fixed", id="per-service"),
    # the same legends and y ranges: the last layout is used again, not made anew
    pytest.param(lambda r, n, f: panel_set_figure(r, n, limits=shared_limits([run_view(r, run) for run in r.runs.values()],
                                                                             r.slo), redraw=f),
                 "hpa", "policy", id="panel-set-same-layout"),
])
def test_a_figure_drawn_again_for_another_controller_is_that_controllers_new_figure(draw, first, then):
    """The report draws each controller's panel set (and per-service figure) on the previous
    one's figure, emptied: the picture must be the one a new figure gives, legends, layout and all."""
    result = with_fixed_run(synthetic_result(duration_s=900.0, tick_s=5.0))
    used = draw(result, first, None)
    figure_png(used)
    assert figure_png(draw(result, then, used)) == figure_png(draw(result, then, None))


def test_a_panel_set_drawn_on_the_overview_figure_is_a_new_panel_set():
    """The report draws the first panel set on the overview's figure (the same five axes, resized)."""
    result = synthetic_result(duration_s=900.0, tick_s=5.0)
    overview = overview_figure(result)
    figure_png(overview)
    assert figure_png(panel_set_figure(result, "policy", redraw=overview)) == figure_png(panel_set_figure(result, "policy"))
