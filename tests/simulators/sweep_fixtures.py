"""Tiny scenarios for the sweep and tune tests: one service, minutes long, a step in the load."""

from __future__ import annotations

from pathlib import Path

from tests.simulators.conftest_paths import POLICIES

DEFAULT_POLICY = POLICIES / "setpoint-default.yaml"
HPA_POLICY = POLICIES / "hpa-cpu.yaml"
TARGET = "spec.scaling.metrics[0].target.averagePerReplica"

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: {name}}}
spec:
  duration: {duration}
  tick: 5s
  seed: {seed}
  slo:
    latency: {{percentile: 95, below: 250ms}}
    errorRatio: 0.01
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 30
      load:
        - step: {{at: 3m, from: 250, to: {peak}}}
        - noise: {{sigma: 0.05}}
"""


def write_scenarios(folder: Path, specs: dict[str, tuple[int, int]], duration: str = "8m") -> list[str]:
    """name -> (seed, peak rps): scenario files in ``folder``; their paths."""
    out = []
    for name, (seed, peak) in specs.items():
        path = folder / f"{name}.yaml"
        path.write_text(SCENARIO.format(name=name, seed=seed, peak=peak, duration=duration), encoding="utf-8")
        out.append(str(path))
    return out
