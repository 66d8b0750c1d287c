"""Synthetic history for backtests: a diurnal-ish load per target and the replicas an incumbent
ran, as arrays and as OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``."""

from __future__ import annotations

import math

import numpy as np

START = 1_793_491_200.0  # 2026-11-01T00:00:00Z, a fixed time
STEP_S = 15.0


def synthetic(targets: list[str], hours: float, seed: int = 7, step_s: float = STEP_S) -> dict:
    """{"t": (T,), "rps": (T, N), "cpu": (T, N) utilization % at the actual replicas,
    "replicas": (T, N) what an incumbent ran}."""
    rng = np.random.default_rng(seed)
    t = START + step_s * np.arange(int(hours * 3600 / step_s))
    n = len(targets)
    phase = rng.uniform(0, 2 * math.pi, n)
    base = rng.uniform(100, 400, n)
    period = 6 * 3600.0  # a "day" of six hours, so a short window still has a full cycle
    rps = base * (1.0 + 0.6 * np.sin(2 * math.pi * (t[:, None] - START) / period + phase))
    rps += rng.normal(0, 0.03, rps.shape) * base
    rps = np.round(np.maximum(rps, 1.0), 3)
    # The incumbent: 80 rps per replica at 5-minute resolution, 2..40 replicas.
    coarse = np.maximum.reduceat(rps, np.arange(0, t.size, 20), axis=0)
    replicas = np.clip(np.ceil(np.repeat(coarse, 20, axis=0)[: t.size] / 80.0), 2, 40)
    cpu = np.round(100.0 * rps / (replicas * 100.0), 3)  # 100 rps saturate one replica's CPU request
    return {"t": t, "rps": rps, "cpu": cpu, "replicas": replicas, "targets": targets}


def openmetrics(data: dict, namespace: str = "shop", statefulsets: frozenset = frozenset()) -> str:
    """OpenMetrics text of the series: app_rps, app_cpu_utilization, kube_deployment_spec_replicas
    (kube_statefulset_replicas), each workload named in its kind's label as kube-state-metrics
    names it: ``deployment``, or ``statefulset`` for the targets in ``statefulsets``."""
    lines = []
    stamps = [f"{x:.0f}" for x in data["t"]]
    families = (("app_rps", "rps", ""), ("app_cpu_utilization", "cpu", ""),
                ("kube_deployment_spec_replicas", "replicas", "Deployment"),
                ("kube_statefulset_replicas", "replicas", "StatefulSet"))
    for family, key, only in families:
        kinds = {name: "StatefulSet" if name in statefulsets else "Deployment" for name in data["targets"]}
        if only and only not in kinds.values():
            continue
        lines.append(f"# TYPE {family} gauge")
        for j, name in enumerate(data["targets"]):
            if only and kinds[name] != only:
                continue
            labels = f'{{namespace="{namespace}",{kinds[name].lower()}="{name}"}}'
            column = data[key][:, j]
            lines += [f"{family}{labels} {repr(float(v))} {ts}" for v, ts in zip(column, stamps)]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
