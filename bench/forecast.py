"""Benchmark the forecast stage: its skill on the diurnal traces, and what it does to scaling.

1. Forecast skill: on the diurnal traces (NASA July and August 1995, World Cup 1998), replayed
   as their trace scenarios replay them (the request rate averaged over the scenario's metrics
   window, sampled every policy interval), the forecaster starts from the scenario's history and
   forecasts online, one default horizon ahead, over the scenario's window. Its mean absolute
   error over that of the seasonal-naive forecast (the value one day before the target time):
   target <= 0.8 on each trace.
2. With prediction on, never worse than the same policy without it: every bundled scenario
   under the default policy with and without a forecast on its metrics; violation minutes and
   replica-hours of both. "Never worse" is judged twice: no more violation minutes, and no
   more than 2% more replica-hours, on any scenario (a forecast that only buys pods is not a win).

The forecast fields are those of policies/web-forecast.yaml (the defaults plus the example's
choices) unless the default policy forecasts itself. Traces: $SETPOINT_TRACES_DIR or
../shared/data/traces (the trace rows are skipped when absent).
Run: python bench/forecast.py [--skill-only] [--scenarios a,b] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "policies" / "setpoint-default.yaml"
FORECAST_POLICY = REPO / "policies" / "web-forecast.yaml"
DIURNAL = ["trace-nasa-july", "trace-nasa-august", "trace-wc98-tournament"]
SKILL_TARGET = 0.8
COST_SLACK = 1.02  # "never worse" allows 2% more replica-hours (a pod more for an hour on a 2-day run)
DAY_S = 86_400.0


def forecast_params():
    """The forecast parameters of the default policy's first forecast metric, else the example's."""
    from controller.policy import load_policies

    for path in (DEFAULT_POLICY, FORECAST_POLICY):
        for m in load_policies([path])[0].params.metrics:
            if m.forecast is not None:
                return m.forecast
    raise SystemExit("no forecast metric in the default or the example policy")


def metric_series(scenario, times: np.ndarray) -> np.ndarray:
    """(T,) the request rate a policy reads at ``times``: offered load averaged over the metrics window."""
    fine = np.arange(times[0] - scenario.metrics_window_s, times[-1] + scenario.tick_s, scenario.tick_s)
    offered = scenario.offered(fine)[:, 0]
    csum = np.concatenate([[0.0], np.cumsum(offered)])
    k = max(1, int(round(scenario.metrics_window_s / scenario.tick_s)))
    end = np.searchsorted(fine, times, side="right")
    return (csum[end] - csum[np.maximum(end - k, 0)]) / np.minimum(end, k)


def skill(name: str) -> dict:
    """MAE of the forecast and of seasonal-naive on one trace scenario's window."""
    from controller.core.scaling import forecast as fc
    from simulators.scenario import load_scenario

    fp = forecast_params()
    s = load_scenario(name)
    if s.history_s < DAY_S:
        raise SystemExit(f"{name}: needs at least 1d of history for seasonal-naive")
    hist_t = np.arange(s.start_s - s.history_s, s.start_s, fp.interval_s)
    live_t = np.arange(s.start_s, s.start_s + s.duration_s - fp.horizon_s, fp.interval_s)
    state = fc.warm(fp, fc.ForecastState.empty(1, fp), metric_series(s, hist_t)[None, :], hist_t)
    y = metric_series(s, live_t)
    actual = metric_series(s, live_t + fp.horizon_s)
    snaive = metric_series(s, live_t + fp.horizon_s - DAY_S)
    points = np.empty(live_t.size)
    for k, t in enumerate(live_t):
        res, state = fc.forecast_step(fp, state, y[k:k + 1], np.ones(1, bool), float(t))
        points[k] = res.point[0]
    persistence = np.abs(actual - y).mean()
    return {"mae": float(np.abs(actual - points).mean()), "snaive": float(np.abs(actual - snaive).mean()),
            "persistence": float(persistence), "horizon_s": fp.horizon_s}


def with_and_without(policy):
    """(policy with a forecast on every averagePerReplica metric, the same without any)."""
    from controller.core.scaling.params import MetricKind

    fp = forecast_params()
    on = tuple(dataclasses.replace(m, forecast=m.forecast or (fp if m.kind == MetricKind.AVERAGE_PER_REPLICA else None))
               for m in policy.params.metrics)
    off = tuple(dataclasses.replace(m, forecast=None) for m in policy.params.metrics)
    return (dataclasses.replace(policy, params=dataclasses.replace(policy.params, metrics=on)),
            dataclasses.replace(policy, params=dataclasses.replace(policy.params, metrics=off)))


def compare(name: str) -> dict:
    """Scores of the default policy with and without the forecast on one bundled scenario."""
    from controller.policy import load_policies
    from simulators.runner import ControllerSpec, run_controller
    from simulators.scenario import load_scenario

    s = load_scenario(name)
    offered = s.offered()
    on, off = with_and_without(load_policies([DEFAULT_POLICY])[0])
    out = {}
    for label, p in (("on", on), ("off", off)):
        run, _ = run_controller(s, ControllerSpec(label, "policy", label, policy=p), offered, keep_records=False)
        out[label] = run.scores
    return out


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skill-only", action="store_true")
    ap.add_argument("--scenarios", default="", help="comma-separated bundled scenarios (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    from simulators.load import traces_dir
    from simulators.scenario import bundled_scenarios

    have_traces = traces_dir().is_dir()
    fp = forecast_params()
    print(f"forecast: horizon {fp.horizon_s:g} s, periods {[f'{p:g}s' for p in fp.periods_s]}, margin {fp.margin:g}, "
          f"interval {fp.quantile:.0%}, errorBound {fp.error_bound:g}\n")
    names = [n for n in (args.scenarios.split(",") if args.scenarios else [p.stem for p in bundled_scenarios()])
             if have_traces or not n.startswith("trace-")]
    with ProcessPoolExecutor(args.jobs) as pool:
        skills = dict(zip(DIURNAL, pool.map(skill, DIURNAL))) if have_traces else {}
        runs = {} if args.skill_only else dict(zip(names, pool.map(compare, names)))

    if skills:
        print("1. forecast skill, MAE / seasonal-naive MAE (same time yesterday), default horizon")
        print(f"{'trace':24s} {'MAE':>8s} {'s-naive':>8s} {'persist.':>8s} {'ratio':>6s}")
        for name, r in skills.items():
            print(f"{name:24s} {r['mae']:8.2f} {r['snaive']:8.2f} {r['persistence']:8.2f} {r['mae'] / r['snaive']:6.3f}")
        worst = max(r["mae"] / r["snaive"] for r in skills.values())
        print(f"target: MASE ratio <= {SKILL_TARGET} on each diurnal trace: worst {worst:.3f}: {met(worst <= SKILL_TARGET)}\n")
    else:
        print("1. forecast skill: traces not found, skipped\n")
    if runs:
        print("2. default policy with the forecast on vs off")
        print(f"{'scenario':24s} {'viol on':>8s} {'viol off':>8s} {'rh on':>8s} {'rh off':>8s} {'ratio':>6s}")
        more_violations, more_cost = [], []
        for name, r in runs.items():
            on, off = r["on"], r["off"]
            if on["slo_violation_minutes"] > off["slo_violation_minutes"]:
                more_violations.append(name)
            if on["replica_hours"] > COST_SLACK * off["replica_hours"]:
                more_cost.append(name)
            print(f"{name:24s} {on['slo_violation_minutes']:8.1f} {off['slo_violation_minutes']:8.1f} "
                  f"{on['replica_hours']:8.2f} {off['replica_hours']:8.2f} {on['replica_hours'] / off['replica_hours']:6.3f}")

        def listed(names):
            return "" if not names else " (" + ", ".join(names) + ")"

        print(f"target: with prediction on, violation minutes never more than without, on any of {len(runs)} "
              f"scenarios: {met(not more_violations)}{listed(more_violations)}")
        print(f"target: with prediction on, replica-hours never more than {COST_SLACK:g}x without: "
              f"{met(not more_cost)}{listed(more_cost)}")

if __name__ == "__main__":
    main()
