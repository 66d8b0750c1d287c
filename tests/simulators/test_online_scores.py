"""Scores computed online, chunk by chunk, equal the batch scores of the whole trajectory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.result import SLO, ControllerRun, FaultWindow
from simulators.score import OnlineScores, score_run, violation_mask
from tests.simulators.test_score import trajectory

SLO_P95 = SLO(latency_percentile=95, latency_s=0.5, error_ratio=0.01)
SERVICES = ["a", "b", "c"]


def online(traj, faults, services, tick_s, cuts) -> dict:
    scores = OnlineScores(SLO_P95, faults, services, tick_s=tick_s)
    v = violation_mask(traj, SLO_P95)
    bounds = [0, *sorted(set(cuts)), traj.t_s.size]
    for a, b in zip(bounds[:-1], bounds[1:]):
        scores.add(traj.t_s[a:b], v[a:b], traj.spec_replicas[a:b])
    return scores.finish()


def batch(traj, faults, services, tick_s) -> dict:
    return score_run(ControllerRun("x", "", traj), SLO_P95, faults, services, tick_s=tick_s)


FAULTS = [FaultWindow("crash", "pod-crash", "a", 30.0, None), FaultWindow("late", "node-loss", "b,c", 250.0, 400.0),
          FaultWindow("all", "metrics-outage", "*", 0.0, 100.0)]


@pytest.mark.parametrize("cuts", [
    pytest.param([], id="one-chunk"),
    pytest.param(list(range(1, 40)), id="one-tick-chunks"),
    pytest.param([7, 8, 21], id="uneven-chunks"),
])
@pytest.mark.parametrize("tick_s", [pytest.param(None, id="last-tick-as-before"), pytest.param(15.0, id="tick-15s")])
def test_scripted_run_online_equals_batch(cuts, tick_s):
    t = np.arange(40) * 15.0
    latency = np.full((40, 3), 0.1)
    latency[3:6, 0] = 0.9  # a: bad 45..75 s, then clean: mitigated at 90 s
    latency[20:22, 1] = 0.9  # b: bad twice, the second time too close to hold
    latency[27:30, 1] = 0.9
    latency[38:, 2] = 0.9  # c: bad at the end
    spec = np.tile([2.0, 3.0, 4.0], (40, 1))
    spec[5:, 0], spec[8:, 0], spec[30:, 0] = 3, 2, 5  # up, down within 300 s (a reversal), up much later
    spec[10:, 1] = 1
    traj = trajectory(t, latency=latency, spec=spec, services=3)
    assert online(traj, FAULTS, SERVICES, tick_s, cuts) == batch(traj, FAULTS, SERVICES, tick_s)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), T=st.integers(1, 120), S=st.integers(1, 3), tick=st.sampled_from([5.0, 7.0, 60.0, 90.0]),
       last=st.sampled_from([None, 5.0, 61.0]), p_bad=st.floats(0, 1))
def test_random_runs_online_equal_batch(data, T, S, tick, last, p_bad):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    t = np.cumsum(np.concatenate([[rng.uniform(0, 100)], rng.choice([tick, tick, tick * 0.5, tick * 3], T - 1)]))
    latency = np.where(rng.random((T, S)) < p_bad, 0.9, 0.1)
    latency[rng.random((T, S)) < 0.05] = np.nan
    offered = np.where(rng.random((T, S)) < 0.1, 0.0, 10.0)
    spec = np.cumsum(rng.choice([-1, 0, 0, 0, 1], (T, S)), axis=0) + 10.0
    traj = trajectory(t, latency=latency, spec=spec, offered=offered, services=S)
    services = SERVICES[:S]
    faults = [FaultWindow(f"f{i}", "x", data.draw(st.sampled_from(["a", "b", "*", "a,c", "zz"])),
                          float(rng.uniform(0, t[-1] + 50)), data.draw(st.sampled_from([None, 60.0, 600.0])))
              for i in range(3)]
    faults = [FaultWindow(f.name, f.kind, f.service, f.start_s, None if f.end_s is None else f.start_s + f.end_s)
              for f in faults]
    cuts = data.draw(st.lists(st.integers(1, max(1, T - 1)), max_size=6)) if T > 1 else []
    assert online(traj, faults, services, last, cuts) == batch(traj, faults, services, last)
