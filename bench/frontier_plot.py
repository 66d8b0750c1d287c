"""Draw the cost/violation plane of a bundled scenario for the README: docs/frontier-<scenario>.png.

Runs the default policy (the one `setpoint simulate` uses), the `hpa` preset and the oracle on
the scenario, sweeps HPA's frontier over CPU targets (simulators/hpa_sweep.py), and saves the
report's frontier figure (simulators/report.py) as a small PNG.

Run: python bench/frontier_plot.py [--scenario flash-crowd] [--out docs/frontier-flash-crowd.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="flash-crowd")
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--hpa-policy", default=str(REPO / "policies" / "hpa-cpu.yaml"))
    ap.add_argument("--out", default=None, help="PNG path (default docs/frontier-<scenario>.png)")
    ap.add_argument("--dpi", type=int, default=75)
    args = ap.parse_args()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from controller.policy import load_policies
    from simulators.frontier import DEFAULT_TARGETS_PCT
    from simulators.hpa_sweep import sweep_frontier
    from simulators.report import frontier_figure
    from simulators.runner import simulate, standard_controllers
    from simulators.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    policy, hpa = load_policies([args.policy])[0], load_policies([args.hpa_policy])[0]
    result, _ = simulate(scenario, standard_controllers(policy, ["hpa", "oracle"], hpa, policy.params.max_replicas),
                         keep_records=False)
    result.frontier = sweep_frontier(scenario, result, hpa, DEFAULT_TARGETS_PCT)
    fig = frontier_figure(result)
    out = Path(args.out or REPO / "docs" / f"frontier-{scenario.name}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=args.dpi)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
