"""The compiled scoring and recording kernels (simulators/score_compiled.py) give the bytes the
numpy reference gives: the violation mask, the online scores' state after every chunk, and the
recorder's chunk rows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.core.scaling import compiled
from simulators.result import SLO, FaultWindow
from simulators.runner import _Recorder
from simulators.scenario import load_scenario_text
from simulators import score_compiled
from simulators.score import OnlineScores, _exact_add, violation_mask

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

SLO_P95 = SLO(latency_percentile=95, latency_s=0.5, error_ratio=0.01)
NAN = math.nan


def both(monkeypatch, fn):
    """(fn() with the kernels, fn() with numpy); fails if a kernel fell back to numpy."""
    monkeypatch.setattr(compiled, "switch", "1")
    fast = fn()
    monkeypatch.setattr(compiled, "switch", "0")
    ref = fn()
    monkeypatch.setattr(compiled, "switch", "")
    assert compiled.available(), "a kernel failed: the run fell back to numpy"
    return fast, ref


def signals(latency, offered, error_ratio, dropped):
    return SimpleNamespace(latency_s=np.array(latency, dtype=float), offered_rps=np.array(offered, dtype=float),
                           error_ratio=np.array(error_ratio, dtype=float), dropped_rps=np.array(dropped, dtype=float))


@pytest.mark.parametrize("sig, expected", [
    pytest.param(signals([[0.1, 0.6]], [[5, 5]], [[0, 0]], [[0, 0]]), [[False, True]], id="latency-above"),
    pytest.param(signals([[0.5, 0.5000001]], [[5, 5]], [[0, 0]], [[0, 0]]), [[False, True]], id="latency-at-bound"),
    pytest.param(signals([[NAN, NAN]], [[0, 3]], [[0, 0]], [[0, 0]]), [[False, True]], id="nan-latency-only-under-load"),
    pytest.param(signals([[0.1, 0.1]], [[5, 5]], [[0.01, 0.0100001]], [[0, 0]]), [[False, True]], id="error-ratio"),
    pytest.param(signals([[0.1, 0.1]], [[5, 5]], [[NAN, 0]], [[1e-9, 2e-9]]), [[False, True]],
                 id="nan-error-ratio-and-drop-tolerance"),
])
def test_violation_mask_rows(monkeypatch, sig, expected):
    fast, ref = both(monkeypatch, lambda: violation_mask(sig, SLO_P95))
    assert fast.tolist() == ref.tolist() == expected


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 30), S=st.integers(1, 5))
def test_violation_mask_random(seed, T, S):
    rng = np.random.default_rng(seed)
    def draw(scale):  # values near the bounds, with NaN and zeros
        a = rng.choice([0.0, NAN, scale * 0.5, scale, scale * 1.5], (T, S))
        return np.where(rng.random((T, S)) < 0.5, a, rng.uniform(0, 2 * scale, (T, S)))
    sig = signals(draw(0.5), draw(1.0), draw(0.01), draw(1e-9))
    with pytest.MonkeyPatch.context() as mp:
        fast, ref = both(mp, lambda: violation_mask(sig, SLO_P95))
    assert fast.dtype == ref.dtype == bool and fast.tobytes() == ref.tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), C=st.integers(1, 12), S=st.integers(1, 5), n=st.integers(1, 12))
def test_block_violation_is_the_mask_of_the_recorders_rows(seed, C, S, n):
    # the recorder's (F, C, S) block read in place: the mask of its first n rows as violation_mask
    # computes it from the rows, and each tick's "any service violates" as the timeline takes it
    rng = np.random.default_rng(seed)
    n = min(n, C)
    block = rng.choice([0.0, NAN, 5e-10, 0.005, 0.01, 0.5, 1.0], (len(_Recorder.FIELDS), C, S))
    block = np.where(rng.random(block.shape) < 0.5, block, rng.uniform(0, 1.0, block.shape))
    rows = {f: block[i, :n] for i, f in enumerate(_Recorder.FIELDS)}
    mask, any_violation = score_compiled.block_violation(block, n, _Recorder.LATENCY_ROW, SLO_P95.latency_s,
                                                         SLO_P95.error_ratio, 1e-9)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiled, "switch", "0")
        ref = violation_mask(SimpleNamespace(**rows), SLO_P95)
    assert mask.dtype == bool and mask.tobytes() == ref.tobytes()
    assert any_violation.tolist() == ref.any(axis=1).tolist()


STATE = ("_changes", "_reversals", "_minutes", "_counted_minute", "_last_direction", "_last_change_s",
         "_previous_spec", "_last_dt", "_ticks")


def score_states(t, violation, spec, cuts, faults=()):
    """The scores' state after each chunk, then the finished scores."""
    scores = OnlineScores(SLO_P95, faults, ["a", "b", "c"][:spec.shape[1]], tick_s=5.0)
    states = []
    bounds = [0, *sorted(set(cuts)), t.size]
    for a, b in zip(bounds[:-1], bounds[1:]):
        scores.add(t[a:b], violation[a:b], spec[a:b])
        states.append({k: np.asarray(getattr(scores, k)).tobytes() for k in STATE}
                      | {"replica_s": math.fsum(scores._replica_s), "partials": list(scores._replica_s)})
    return states, scores.finish()


def scripted():
    t = np.arange(40) * 15.0
    v = np.zeros((40, 3), bool)
    v[3:6, 0] = v[20:22, 1] = v[27:30, 1] = v[38:, 2] = True
    spec = np.tile([2.0, 3.0, 4.0], (40, 1))
    spec[5:, 0], spec[8:, 0], spec[30:, 0] = 3, 2, 5  # up, down within 300 s (a reversal), up much later
    spec[10:, 1] = 1
    return t, v, spec


@pytest.mark.parametrize("cuts", [
    pytest.param([], id="one-chunk"),
    pytest.param(list(range(1, 40)), id="one-tick-chunks"),
    pytest.param([7, 8, 21], id="uneven-chunks"),
])
def test_online_scores_same_state_after_every_chunk(monkeypatch, cuts):
    t, v, spec = scripted()
    faults = [FaultWindow("crash", "pod-crash", "a", 30.0, None)]
    fast, ref = both(monkeypatch, lambda: score_states(t, v, spec, cuts, faults))
    assert fast == ref
    assert fast[1]["replica_changes"] == 4 and fast[1]["reversals"] == 1  # the script's changes, counted


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 80), S=st.integers(1, 3), p_bad=st.floats(0, 1),
       n_cuts=st.integers(0, 6))
def test_online_scores_random(seed, T, S, p_bad, n_cuts):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([5.0, 5.0, 2.5, 15.0, 61.0], T))
    v = rng.random((T, S)) < p_bad
    spec = np.cumsum(rng.choice([0, 0, 0, 1, -1], (T, S)), axis=0).astype(float) + 10.0
    cuts = rng.integers(1, T, n_cuts).tolist() if T > 1 else []
    with pytest.MonkeyPatch.context() as mp:
        fast, ref = both(mp, lambda: score_states(t, v, spec, cuts))
    assert fast == ref


def added(values: list[float], start: list[float], in_kernel: bool) -> list[float]:
    partials = list(start)
    if in_kernel:
        assert score_compiled.exact_add(partials, np.array(values)), "the kernel declined"
    else:
        _exact_add(partials, values)
    return partials


magnitudes = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(magnitudes, st.sampled_from([0.0, -0.0, 1e-300, 5.0, 2.0**53, 1e16 + 1.0])),
                       max_size=60),
       start=st.lists(magnitudes, max_size=3))
def test_exact_add_keeps_the_partials_python_keeps(values, start):
    """The replica-seconds' running sum (Shewchuk's partials) in one kernel call: the Python
    loop's partials, whatever the magnitudes' spread, so math.fsum gives the same total."""
    start = added(start, [], in_kernel=False)  # partials, as the scores hold them
    assert added(values, start, in_kernel=True) == added(values, start, in_kernel=False)


def test_exact_add_declines_when_the_partials_outgrow_its_room(monkeypatch):
    monkeypatch.setattr(score_compiled, "_PARTIALS", 2)
    partials = [1.0]
    assert not score_compiled.exact_add(partials, np.array([1e100, 1e-100, 1e50]))
    assert partials == [1.0]  # unchanged: the caller adds in Python


SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: rec, description: "recorder"}
spec:
  duration: 1m
  tick: 5s
  seed: 1
  slo: {latency: {percentile: 99, below: 250ms}, errorRatio: 0.01}
  services:
    - {name: a, capacityPerPod: 100, initialReplicas: 2, load: [{constant: {rps: 50}}]}
    - {name: b, capacityPerPod: 100, initialReplicas: 2, load: [{constant: {rps: 50}}]}
"""


def test_recorder_rows_are_the_signals(monkeypatch):
    """put writes each tick's signals (ints as floats, the SLO's percentile) into its chunk rows."""
    sc = load_scenario_text(SCENARIO, "rec.yaml")
    rng = np.random.default_rng(3)
    ticks = [SimpleNamespace(offered_rps=rng.random(2), served_rps=rng.random(2), dropped_rps=rng.random(2),
                             capacity_rps=rng.random(2), spec_replicas=rng.integers(0, 9, 2),
                             ready_replicas=rng.integers(0, 9, 2), error_ratio=rng.random(2),
                             latency_p95_s=rng.random(2), latency_p99_s=rng.random(2)) for _ in range(3)]

    def rows():
        rec = _Recorder(sc, 12, 2, 4, keep_trajectory=False)
        for k, sig in enumerate(ticks):
            rec.put(sc.start_s + 5.0 * k, sig)
        return {f: v[:3].tobytes() for f, v in rec.chunk.items()}

    fast, ref = both(monkeypatch, rows)
    assert fast == ref
    expected = np.array([tick.latency_p99_s for tick in ticks])
    assert fast["latency_s"] == expected.tobytes()
    assert fast["spec_replicas"] == np.array([tick.spec_replicas for tick in ticks], dtype=float).tobytes()


CUTS = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: cuts, description: "scores and timeline whatever the recorder's chunk"}
spec:
  duration: 3h
  tick: 5s
  seed: 4
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: web
      count: %d
      capacityPerPod: 100
      startupDelay: 30s
      initialReplicas: 2
      maxPods: 12
      load:
        - diurnal: {mean: 400, amplitude: 0.6, peakHour: 1}
        - flashCrowd: {at: 20m, peak: 500, rise: 2m, decay: 10m}
        - noise: {sigma: 0.1}
"""


def run_bytes(sc, record_ticks: int, chunk_ticks: int) -> dict:
    """The run's scores and every timeline line kept (aggregate, and per service when kept), as bytes."""
    from simulators.runner import ControllerSpec, run_controller
    _Recorder.RECORD_TICKS = record_ticks
    run, _ = run_controller(sc, ControllerSpec("oracle", "oracle", ""), keep_records=False, keep_trajectory=False,
                            chunk_ticks=chunk_ticks)
    columns = [None] + run.timeline.columns
    lines = {}
    for c in columns:
        view = run.timeline.view(c)
        for name in ("offered_rps", "capacity_rps", "spec_replicas", "ready_replicas", "latency_s", "error_ratio"):
            line = getattr(view, name)
            lines[(c, name)] = (line.t.tobytes(), line.y.tobytes(), view.means[name].tobytes())
        lines[(c, "violation")] = view.violation_spans.tobytes()
    return {"scores": repr(run.scores), "replica_hours": run.replica_hours_raw, **lines}


@pytest.mark.parametrize("services", [pytest.param(3, id="per-service-lines"), pytest.param(20, id="aggregate-only")])
@pytest.mark.parametrize("record_ticks, chunk_ticks", [
    pytest.param(1, 512, id="every-tick"),
    pytest.param(7, 512, id="uneven"),
    pytest.param(32, 100, id="load-chunk-not-a-multiple"),
])
def test_recorder_chunk_does_not_change_the_run(monkeypatch, services, record_ticks, chunk_ticks):
    """Where the recorder cuts its chunks (RECORD_TICKS, the load's chunk) changes no score and no
    timeline byte: compared with one chunk for the whole run."""
    monkeypatch.setattr(_Recorder, "RECORD_TICKS", _Recorder.RECORD_TICKS)  # restored after the test
    sc = load_scenario_text(CUTS % services, "cuts.yaml")
    whole = run_bytes(sc, 10_000, 10_000)
    assert run_bytes(sc, record_ticks, chunk_ticks) == whole
    assert whole["scores"] != repr({}) and len(whole) > 2
    assert sc.tick_count > 2000  # buckets of several ticks, not every tick
