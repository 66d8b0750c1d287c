"""The HTML report's rendering (simulators/report.py: report_html) of two checkouts, in one process.

Simulates a scenario once (``--scenario``: flash-crowd by default, as ``setpoint simulate`` with
no arguments: the default policy, hpa, the oracle and HPA's frontier), then renders its report
with this checkout's report.py and with ``--base``'s (loaded under another module name; both
use this checkout's data preparation: timeline, score), taking turns, the order swapped every
round. Per side: the CPU time (time.process_time) of report_html, median and best over
``--rounds``; the ratio of the medians (target: at most 0.5, "met" / "NOT met"); and whether
both sides embed the same pictures (decoded RGBA pixels). Figures are noisy on a shared host:
look at the load (printed).
Run: python bench/report_ab.py --base /path/to/base/checkout [--scenario trace-nasa-july] [--baseline hpa,oracle]
[--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code, whatever the editable install points at

TARGET_RATIO = 0.5


def simulated(scenario: str, baselines: str):
    """The SimResult `setpoint simulate SCENARIO` hands to its report (caught on its way there)."""
    import simulators.report
    from controller.cli import main

    caught, render = [], simulators.report.report_html
    simulators.report.report_html = lambda result: caught.append(result) or render(result)
    try:
        with tempfile.TemporaryDirectory() as out:
            try:
                main(["simulate", scenario, "-b", baselines, "-o", out])
            except SystemExit as e:
                if e.code:
                    raise
    finally:
        simulators.report.report_html = render
    return caught[0]


def report_module(checkout: Path, name: str):
    """``checkout``'s simulators/report.py as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, checkout / "simulators" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cpu_s(render, result) -> tuple[float, str]:
    start = time.process_time()
    page = render(result)
    return time.process_time() - start, page


def pictures(page: str) -> list[np.ndarray]:
    """The RGBA pixels of each PNG ``page`` embeds."""
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))
            for data in re.findall(r'data:image/png;base64,([^"]+)"', page)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path, help="the checkout to compare with (e.g. a main worktree)")
    ap.add_argument("--scenario", default="flash-crowd")
    ap.add_argument("--baseline", default="hpa,oracle", help="baselines, as simulate's -b (default: its own)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    result = simulated(args.scenario, args.baseline)
    sides = {"base": report_module(args.base.resolve(), "base_report"),
             "branch": report_module(Path(__file__).resolve().parents[1], "branch_report")}
    pages = {side: m.report_html(result) for side, m in sides.items()}  # warm: fonts, caches
    times: dict[str, list[float]] = {side: [] for side in sides}
    for r in range(args.rounds):
        for side in (("base", "branch") if r % 2 == 0 else ("branch", "base")):
            t, pages[side] = cpu_s(sides[side].report_html, result)
            times[side].append(t)
    for side, ts in times.items():
        print(f"{side:>6}: report_html CPU median {statistics.median(ts):.3f} s, best {min(ts):.3f} s "
              f"({len(ts)} rounds: {' '.join(f'{t:.3f}' for t in ts)})")
    ratio = statistics.median(times["branch"]) / statistics.median(times["base"])
    base, branch = pictures(pages["base"]), pictures(pages["branch"])
    same = len(base) == len(branch) and all(a.shape == b.shape and (a == b).all() for a, b in zip(base, branch))
    print(f"branch/base {ratio:.2f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'}); "
          f"{len(branch)} figures, {'the same pixels' if same else 'pixels DIFFER'}; "
          f"scenario {args.scenario}; load {Path('/proc/loadavg').read_text().split()[0]}")


if __name__ == "__main__":
    main()
