"""Helpers shared by the simulator tests: run an engine over a scripted scenario."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Callable, Sequence

import numpy as np

from simulators.signals import TickSignals

#: (time_s, callable(cluster)) pairs applied right after the step at that time.
Script = Sequence[tuple[float, Callable]]


def run(cluster, until_s: float, dt_s: float = 5.0, load=100.0, script: Script = ()) -> list[TickSignals]:
    """Step ``cluster`` from t=0 to ``until_s`` inclusive; ``load`` is rps (scalar, (S,) or
    a function of t returning (S,)); ``script`` actions run after the step at their time."""
    out = []
    actions = sorted(script, key=lambda a: a[0])
    n = cluster.n_services if hasattr(cluster, "n_services") else len(cluster.services)
    for t in np.arange(0.0, until_s + 1e-9, dt_s):
        offered = load(t) if callable(load) else np.broadcast_to(np.asarray(load, dtype=float), (n,))
        out.append(cluster.step(float(t), dt_s, np.asarray(offered, dtype=float)))
        for at, action in actions:
            if at == t:
                action(cluster)
    return out


def column(ticks: Sequence[TickSignals], name: str, i: int = 0) -> np.ndarray:
    """One field of one service over the ticks."""
    return np.array([getattr(s, name)[i] for s in ticks])


def at(ticks: Sequence[TickSignals], t: float) -> TickSignals:
    return next(s for s in ticks if s.at_s == t)


def assert_same_ticks(a: Sequence[TickSignals], b: Sequence[TickSignals], rtol: float = 1e-9) -> None:
    """Integer and bool fields equal; float fields equal up to rounding (NaN == NaN)."""
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        for f in fields(TickSignals):
            va, vb = getattr(sa, f.name), getattr(sb, f.name)
            if f.name == "at_s":
                assert va == vb
                continue
            va, vb = np.asarray(va), np.asarray(vb)
            if va.dtype.kind in "iub":
                np.testing.assert_array_equal(va, vb, err_msg=f"{f.name} at t={sa.at_s}")
            else:
                np.testing.assert_allclose(va, vb, rtol=rtol, atol=1e-12, equal_nan=True,
                                           err_msg=f"{f.name} at t={sa.at_s}")


def canonical(x):
    """``x`` with arrays as lists and NaN as None (comparable with ==, NaN equal to NaN)."""
    if isinstance(x, dict):
        return {k: canonical(v) for k, v in x.items()}
    if isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
        return _numeric_list(x)
    if isinstance(x, (list, tuple, np.ndarray)):
        return [canonical(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, float) and x != x:
        return None
    return x


def _numeric_list(x: np.ndarray) -> list:
    """A numeric array as canonical() makes it, in numpy: nested lists of Python numbers, NaN as None
    (element by element, the trajectories of a run were most of the time of comparing two)."""
    if x.dtype.kind == "f" and np.isnan(x).any():
        return np.where(np.isnan(x), None, x.astype(object)).tolist()
    return x.tolist()


def run_view(run) -> dict:
    """Everything of a ControllerRun that a result holds, comparable with ==."""
    view = {"scores": run.scores, "raw": run.replica_hours_raw, "actions": [asdict(a) for a in run.actions],
            "dropped": run.actions_dropped, "services": run.services, "note": run.note}
    for column in (None, 0, 2):
        v = run.timeline.view(column)
        for name in ("offered_rps", "capacity_rps", "spec_replicas", "ready_replicas", "latency_s", "error_ratio"):
            view[f"{column}:{name}"] = (getattr(v, name).t, getattr(v, name).y)
        view[f"{column}:spans"] = v.violation_spans
    if run.trajectory is not None:
        view["trajectory"] = vars(run.trajectory)
    return canonical(view)
