"""Check simulators.memory's estimate against the peak RSS of real `setpoint simulate` runs.

Each size runs in its own process (policy, hpa and oracle, report included); the peak RSS is
read with getrusage. Target: estimate / measured in [1, 2] for every size (never below).
Run: python bench/memory_estimate.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.policy import load_policies  # noqa: E402
from simulators.memory import scenario_peak_bytes  # noqa: E402
from simulators.runner import standard_controllers  # noqa: E402
from simulators.scenario import load_scenario_text  # noqa: E402

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: sized}}
spec:
  duration: {duration}
  tick: {tick}
  slo: {{latency: {{below: 250ms}}}}
  services:
    - name: web
      count: {count}
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 40
      load:
        - diurnal: {{mean: 300}}
        - noise: {{sigma: 0.1}}
"""

#: (duration, tick, services)
SIZES = [("1h", "5s", 1), ("1h", "5s", 100), ("1h", "5s", 1000), ("2d", "5s", 20), ("1d", "10s", 50)]
QUICK = SIZES[:2]


#: Runs the CLI, then prints this process's own peak RSS (KiB on Linux) on stderr.
_CHILD = ("import resource, sys\nfrom controller.cli import app\ntry:\n    app(sys.argv[1:])\n"
          "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
          "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")


def measure(path: Path, out: Path) -> float:
    """Peak RSS (bytes) of `setpoint simulate path` in a child process."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, "simulate", str(path), "--out", str(out)],
                          cwd=REPO, check=True, capture_output=True, text=True)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("MAXRSS"))
    return int(line.split()[1]) * 1024.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the two smallest sizes")
    args = parser.parse_args()
    policy = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0]
    hpa = load_policies([REPO / "policies" / "hpa-cpu.yaml"])[0]
    specs = standard_controllers(policy, ["hpa", "oracle"], hpa, policy.params.max_replicas)
    sizes = QUICK if args.quick else SIZES
    worst = []
    with tempfile.TemporaryDirectory() as tmp:
        for duration, tick, count in sizes:
            path = Path(tmp) / f"{duration}-{tick}-{count}.yaml"
            path.write_text(SCENARIO.format(duration=duration, tick=tick, count=count))
            estimate = scenario_peak_bytes(load_scenario_text(path.read_text()), specs)
            measured = measure(path, Path(tmp) / "out")
            ratio = estimate / measured
            worst.append(ratio)
            print(f"{duration:>4} at {tick:>4} x {count:>5} services: estimate {estimate / 2**20:7.0f} MiB, "
                  f"measured {measured / 2**20:7.0f} MiB, ratio {ratio:.2f}")
    met = all(1.0 <= r <= 2.0 for r in worst)
    print(f"ratios {min(worst):.2f}..{max(worst):.2f}: target [1, 2] {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
