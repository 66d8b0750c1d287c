"""A run streamed in chunks: its downsampled timeline draws what the whole trajectory draws,
its violation spans are exact to the tick, its scores equal the batch scores, and its memory
does not grow with the number of ticks."""

from __future__ import annotations

import gc
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.model import first_by_direction
from controller.policy import load_policies
from simulators import runner as runner_module
from simulators.oracle import oracle_plan, oracle_plan_rows
from simulators.report import true_spans
from simulators.result import ActionEvent, ControllerRun
from simulators.runner import ControllerSpec, run_controller
from simulators.scenario import load_scenario, load_scenario_text
from simulators.score import run_end_s, score_run, violation_mask
from simulators.timeline import (MAX_POINTS, ActionBudget, _Buckets, _Spans, bucket_ticks, merge_spans, record_ticks,
                                 timeline_of)
from tests.simulators.conftest_paths import POLICIES


def reference_envelope(t, y, max_points=MAX_POINTS):
    """The report's min/max envelope of a whole series, written out independently."""
    n = t.size
    if n <= max_points:
        return t, y
    per = math.ceil(n / (max_points // 2))
    ts, ys = [], []
    for a in range(0, n, per):
        yb = y[a:a + per]
        finite = ~np.isnan(yb)
        if not finite.any():
            ts += [t[a], t[a]]
            ys += [yb[0], yb[0]]
            continue
        i_max = int(np.argmax(np.where(finite, yb, -np.inf)))
        i_min = int(np.argmin(np.where(finite, yb, np.inf)))
        for i in sorted((i_min, i_max)):
            ts.append(t[a + i])
            ys.append(yb[i])
    return np.array(ts), np.array(ys)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6000), chunk=st.integers(1, 900), seed=st.integers(0, 1000), nan_ratio=st.floats(0, 0.5))
def test_streamed_buckets_keep_the_envelope_of_the_whole_series(n, chunk, seed, nan_ratio):
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 5.0
    y = rng.random(n)
    y[rng.random(n) < nan_ratio] = np.nan
    b = _Buckets(bucket_ticks(n))
    for a in range(0, n, chunk):
        b.add(t[a:a + chunk], y[a:a + chunk])
    b.finish()
    rt, ry = reference_envelope(t, y)
    assert np.array_equal(b.line.t, rt) and np.array_equal(b.line.y, ry, equal_nan=True)
    per = bucket_ticks(n)
    with np.errstate(all="ignore"):
        means = [np.nanmean(y[a:a + per]) if (~np.isnan(y[a:a + per])).any() else np.nan for a in range(0, n, per)]
    np.testing.assert_allclose(b.mean, means, rtol=1e-12, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6000), k=st.integers(1, 7), chunk=st.integers(1, 900), seed=st.integers(0, 1000),
       nan_ratio=st.floats(0, 0.5), max_points=st.sampled_from([MAX_POINTS, 40]))
def test_series_bucketed_together_equal_each_bucketed_alone(n, k, chunk, seed, nan_ratio, max_points):
    """A view's signals are reduced together (_Buckets of K series): the same points and means,
    bit for bit, as one _Buckets per series."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 5.0
    y = rng.standard_normal((n, k)) * 10.0 ** rng.uniform(-3, 5, (n, k))
    y[rng.random((n, k)) < nan_ratio] = np.nan
    together, alone = _Buckets(bucket_ticks(n, max_points), k), [_Buckets(bucket_ticks(n, max_points)) for _ in range(k)]
    for a in range(0, n, chunk):
        together.add(t[a:a + chunk], y[a:a + chunk])
        for j, b in enumerate(alone):
            b.add(t[a:a + chunk], y[a:a + chunk, j])
    together.finish()
    for line, mean, b in zip(together.lines, together.means, alone):
        b.finish()
        assert line.t.tobytes() == b.line.t.tobytes() and line.y.tobytes() == b.line.y.tobytes()
        assert mean.tobytes() == b.mean.tobytes()


@settings(max_examples=60, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=300), chunk=st.integers(1, 50),
       gap=st.sampled_from([0.0, 4.0, 12.0, 60.0]), wider=st.sampled_from([0.0, 10.0, 100.0]))
def test_streamed_violation_spans_are_the_spans_of_the_whole_mask(mask, chunk, gap, wider):
    t = np.arange(len(mask)) * 5.0
    m = np.array(mask)
    end_s = float(t[-1] + 5.0)
    spans = _Spans(gap)
    for a in range(0, m.size, chunk):
        spans.add(t[a:a + chunk], m[a:a + chunk])
    kept = spans.finish(end_s)
    assert merge_spans(kept, gap) == true_spans(t, m, end_s, gap)
    # merged again at a wider gap (a smaller picture): as if merged at that gap at once
    assert merge_spans(kept, gap + wider) == true_spans(t, m, end_s, gap + wider)


def test_oracle_plan_rows_are_the_rows_of_the_whole_plan():
    sc = load_scenario("flash-crowd")
    whole = sc.offered()
    plan = oracle_plan(whole, sc.cluster.services, sc.slo, sc.tick_s)
    T = whole.shape[0]
    rows = [oracle_plan_rows(lambda a, b: whole[a:b], k0, min(k0 + 37, T), T, sc.cluster.services, sc.slo, sc.tick_s)
            for k0 in range(0, T, 37)]
    assert np.array_equal(np.concatenate(rows), plan)


LONG = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: long}}
spec:
  duration: {duration}
  tick: {tick}
  seed: 4
  slo: {{latency: {{percentile: 95, below: 250ms}}, errorRatio: 0.01}}
  services:
    - name: web
      count: {count}
      capacityPerPod: 100
      initialReplicas: 2
      maxPods: 20
      load:
        - diurnal: {{mean: 400, amplitude: 0.7, peakHour: 3}}
        - flashCrowd: {{at: 2h, peak: 900, rise: 1m, decay: 20m}}
        - noise: {{sigma: 0.15}}
{faults}"""
FAULTS = """\
  faults:
    - {name: blip, kind: pod-crash, at: 1h, services: [web], count: 2}
    - {name: release-2, kind: bad-rollout, at: 150m, services: [web], extraLatency: 200ms}
"""


def policy_spec():
    return ControllerSpec("policy", "policy", "", policy=load_policies([POLICIES / "setpoint-default.yaml"])[0])


@pytest.mark.parametrize("spec, chunk", [
    pytest.param(policy_spec(), 100, id="policy-chunk-100"),
    pytest.param(ControllerSpec("oracle", "oracle", ""), 512, id="oracle-chunk-512"),
])
def test_a_streamed_run_scores_and_draws_as_its_whole_trajectory(spec, chunk):
    """4 h at 5 s (2,880 ticks, more than the report draws: downsampled) x 3 services."""
    sc = load_scenario_text(LONG.format(duration="4h", tick="5s", count=3, faults=FAULTS))
    run, _ = run_controller(sc, spec, None, keep_records=False, keep_trajectory=True, chunk_ticks=chunk)
    whole, _ = run_controller(sc, spec, sc.offered(), keep_records=False, keep_trajectory=True)
    traj = run.trajectory
    for f in ("offered_rps", "spec_replicas", "latency_s", "error_ratio"):  # chunked load: the same run
        assert np.array_equal(getattr(traj, f), getattr(whole.trajectory, f), equal_nan=True)
    assert run.scores == score_run(ControllerRun("x", "", traj), sc.slo, runner_module.fault_windows(sc),
                                   sc.services, tick_s=sc.tick_s)
    assert run.scores["replica_changes"] > 0 and run.scores["slo_violation_minutes"] > 0  # something to compare
    violation = violation_mask(traj, sc.slo)
    end_s = run_end_s(traj.t_s, sc.tick_s)
    batch = timeline_of(traj, violation, end_s)
    assert bucket_ticks(traj.t_s.size) == 3  # downsampled: 2 points per 3 ticks
    for column in (None, 0, 2):
        got, want = run.timeline.view(column), batch.view(column)
        assert (got.start_s, got.end_s) == (want.start_s, want.end_s) == (0.0, end_s)
        for name in ("offered_rps", "capacity_rps", "spec_replicas", "ready_replicas", "latency_s", "error_ratio"):
            a, b = getattr(got, name), getattr(want, name)
            assert np.array_equal(a.t, b.t) and np.array_equal(a.y, b.y, equal_nan=True), (column, name)
        # exact at the scored events: violation spans to the tick, as from the full-resolution mask
        mask = violation.any(axis=1) if column is None else violation[:, column]
        gap = end_s / (2 * MAX_POINTS)
        assert merge_spans(got.violation_spans, gap) == true_spans(traj.t_s, mask, end_s, gap)
    # the replica line keeps every bucket's extremes: its max and min are the trajectory's
    spec_sum = traj.spec_replicas.sum(axis=1)
    line = run.timeline.view().spec_replicas
    assert line.y.max() == spec_sum.max() and line.y.min() == spec_sum.min()


def test_a_long_run_keeps_no_trajectory_and_writes_the_same_scores():
    sc = load_scenario_text(LONG.format(duration="3h", tick="5s", count=2, faults=FAULTS))
    streamed, _ = run_controller(sc, policy_spec(), keep_records=False, keep_trajectory=False)
    kept, _ = run_controller(sc, policy_spec(), keep_records=False, keep_trajectory=True)
    assert streamed.trajectory is None and kept.trajectory is not None
    assert streamed.scores == kept.scores
    assert streamed.replica_hours_raw == pytest.approx(kept.replica_hours_raw, rel=0, abs=0)


def test_decision_records_spilled_to_a_file_are_the_records_kept_in_memory(monkeypatch):
    sc = load_scenario_text(LONG.format(duration="20m", tick="5s", count=3, faults=""))
    _, in_memory = run_controller(sc, policy_spec())
    monkeypatch.setattr(runner_module, "RECORDS_IN_MEMORY", 10)
    _, spilled = run_controller(sc, policy_spec())
    assert in_memory.spilled == 0 and spilled.spilled > 200 and spilled.cycles == []
    assert list(spilled.lines()) == list(in_memory.lines())
    assert list(spilled.lines()) == list(spilled.lines())  # read again: still all there


def test_thinned_actions_draw_the_same_markers():
    """Past the budget, the first action of each kind per time bucket is kept: what the report draws."""
    from simulators.report import action_times

    rng = np.random.default_rng(2)
    duration = 86400.0
    times = np.sort(rng.uniform(0, duration, 60_000))  # over MAX_POINTS of each kind on each service
    actions = [ActionEvent(float(t), f"s{i % 3}", "scale", 3, 4 if rng.random() < 0.5 else 2, "") for i, t in
               enumerate(times)]
    budget = ActionBudget(duration, 3, in_full=1000)
    kept = [a for a in actions if budget.admit(a)]
    assert budget.dropped > 30_000 and len(kept) + budget.dropped == len(actions)
    for services in (None, ["s1"]):
        want, got = action_times(actions, services, duration), action_times(kept, services, duration, thinned=True)
        assert want.keys() == got.keys()
        for kind in want:
            assert np.array_equal(want[kind], got[kind]), (services, kind)



@settings(max_examples=60, deadline=None)
@given(services=st.sampled_from([3, 1000]), in_full=st.integers(0, 12), seed=st.integers(0, 2**16),
       batches=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6)), min_size=1, max_size=12))
def test_admitting_a_cycle_s_actions_at_once_keeps_what_admitting_each_keeps(services, in_full, seed, batches):
    """ActionBudget.admit_all of each cycle's actions (one time: gap ticks of 15 s after the
    last) keeps the actions, counts and seen keys admit of each in order does: under and across
    ACTIONS_IN_FULL, per service (3 services) or not (1,000)."""
    rng = np.random.default_rng(seed)
    one, each = ActionBudget(3600.0, services, in_full=in_full), ActionBudget(3600.0, services, in_full=in_full)
    t_s = 0.0
    for gap, count in batches:
        t_s += 15.0 * gap
        cycle = [ActionEvent(t_s, f"s{rng.integers(3)}", str(rng.choice(["scale", "restart-pod", "rollback"])), 3,
                             int(rng.integers(2, 5)), "") for _ in range(count)]
        assert one.admit_all(cycle) == [a for a in cycle if each.admit(a)]
        assert (one.kept, one.dropped, one._seen) == (each.kept, each.dropped, each._seen)


def scales_admitted_each(budget: ActionBudget, t_s: float, froms: list[int], tos: list[int]) -> list[int]:
    """The positions of the scales whose events ActionBudget.admit of each in order keeps."""
    return [i for i, (f, n) in enumerate(zip(froms, tos))
            if budget.admit(ActionEvent(t_s, f"s{i}", "scale", f, n, "ScaleUp"))]


def admitted_both_ways(in_full: int, cycles: list[tuple[float, list[int], list[int]]]) -> list:
    """Per cycle (its time, replicas before and after each scale; buckets of 1.8 s): the positions admit_scales
    keeps, after asserting they, the counts and the keys seen are admit of each's."""
    arrays, each = ActionBudget(3600.0, 1000, in_full=in_full), ActionBudget(3600.0, 1000, in_full=in_full)
    kept = []
    for t_s, froms, tos in cycles:
        kept.append(arrays.admit_scales(t_s, len(tos), first_by_direction(np.array(froms), np.array(tos))))
        assert kept[-1] == scales_admitted_each(each, t_s, froms, tos)
        assert (arrays.kept, arrays.dropped, arrays._seen) == (each.kept, each.dropped, each._seen)
    return kept


@pytest.mark.parametrize("in_full, cycles, kept", [
    pytest.param(10, [(0.0, [3, 3, 5], [4, 2, 6])], [[0, 1, 2]], id="under-the-budget-all"),
    pytest.param(2, [(0.0, [3, 3, 5, 4], [4, 5, 6, 2])], [[0, 1, 3]], id="across-the-budget-a-new-kind-after-it"),
    pytest.param(1, [(0.0, [3, 3], [4, 5]), (1.0, [3, 4], [4, 2])], [[0], [1]],
                 id="past-the-budget-the-first-of-a-kind-not-seen-in-its-bucket"),
    pytest.param(0, [(0.0, [3], [4]), (1.0, [3, 5], [4, 6])], [[0], []], id="past-the-budget-all-seen-none"),
    pytest.param(0, [(0.0, [3, 3, 3], [4, 2, 3]), (0.5, [4, 2], [5, 1]), (1.0, [3], [3]), (1.9, [3, 3], [2, 4])],
                 [[0, 1, 2], [], [], [0, 1]], id="past-the-budget-every-kind-seen-none-until-the-next-bucket"),
    pytest.param(0, [(0.0, [3, 3], [4, 3])], [[0, 1]], id="a-scale-to-its-own-count-is-another-kind"),
    pytest.param(0, [(0.0, [3, 3], [4, 2]), (0.5, [3], [4]), (1.0, [3, 3], [2, 3]), (1.5, [3], [3])],
                 [[0, 1], [], [1], []], id="past-the-budget-a-kind-not-seen-in-its-bucket-kept-when-it-comes"),
    pytest.param(0, [(0.0, [3], [4]), (1800.0, [3], [4])], [[0], [0]], id="a-new-bucket-sees-each-kind-anew"),
    pytest.param(5, [(0.0, [], [])], [[]], id="no-scale"),
])
def test_a_cycle_s_scales_are_admitted_as_admit_of_each_keeps_them(in_full, cycles, kept):
    assert admitted_both_ways(in_full, cycles) == kept


@settings(max_examples=60, deadline=None)
@given(in_full=st.integers(0, 12), seed=st.integers(0, 2**16),
       batches=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6)), min_size=1, max_size=12))
def test_admitting_a_cycle_s_scales_from_their_counts_keeps_what_admitting_each_keeps(in_full, seed, batches):
    """ActionBudget.admit_scales (a cycle's scales as counts, not per service) keeps the positions,
    counts and seen keys admit of each in order does, under and across ACTIONS_IN_FULL."""
    rng = np.random.default_rng(seed)
    t_s, cycles = 0.0, []
    for gap, count in batches:
        t_s += 0.6 * gap  # buckets of 1.8 s: several cycles in one
        cycles.append((t_s, [3] * count, rng.integers(2, 5, count).tolist()))
    admitted_both_ways(in_full, cycles)


MEMORY = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: flat}}
spec:
  duration: {duration}
  tick: 30s
  seed: 2
  slo: {{latency: {{below: 250ms}}}}
  services:
    - name: web
      count: 40
      capacityPerPod: 100
      initialReplicas: 3
      maxPods: 20
      load:
        - diurnal: {{mean: 300}}
        - noise: {{sigma: 0.1}}
"""


def traced_peak(duration: str, keep_trajectory: bool) -> int:
    sc = load_scenario_text(MEMORY.format(duration=duration))
    spec = ControllerSpec("fixed", "fixed", "", replicas=4)
    gc.collect()
    tracemalloc.start()
    try:
        run_controller(sc, spec, keep_records=False, keep_trajectory=keep_trajectory)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_the_simulated_time():
    """tracemalloc peaks (not timings): 4x the ticks costs at most 10 % more when streamed,
    while keeping the whole trajectory costs its 8 float arrays more (so the test can tell)."""
    short, long_ = traced_peak("1050m", False), traced_peak("4200m", False)  # 2,100 and 8,400 ticks x 40 services
    assert long_ <= 1.1 * short, (short, long_)
    assert traced_peak("1050m", True) > short + 2_100 * 40 * 8 * 8 * 0.9


def test_the_report_of_a_streamed_run_is_the_report_of_its_whole_trajectory():
    """The same HTML, images included, whether drawn from the timeline recorded while running
    (trajectory dropped) or from the whole trajectory (timeline dropped): 2,100 ticks (drawn
    downsampled) x 2 services."""
    from dataclasses import replace

    from simulators.report import report_html
    from simulators.runner import simulate, standard_controllers
    from simulators.score import result_json

    sc = load_scenario_text(LONG.format(duration="175m", tick="5s", count=2, faults=FAULTS))
    policy = load_policies([POLICIES / "setpoint-default.yaml"])[0]
    result, _ = simulate(sc, standard_controllers(policy, [], None, 20), keep_records=False, keep_trajectories=True)
    streamed = replace(result, runs={n: replace(r, trajectory=None) for n, r in result.runs.items()})
    whole = replace(result, runs={n: replace(r, timeline=None, scores={}) for n, r in result.runs.items()})
    assert result_json(streamed) == result_json(whole)
    assert report_html(streamed) == report_html(whole)


@pytest.mark.parametrize("services, ticks", [
    pytest.param(1, 64 * 1024, id="one-service"), pytest.param(1000, 65, id="1000-services-about-64"),
    pytest.param(2048, 32, id="2048-services-the-fewest"), pytest.param(100_000, 32, id="100000-services-the-fewest"),
])
def test_the_runner_records_about_the_same_cells_at_a_time_whatever_the_width(services, ticks):
    assert record_ticks(services) == ticks


def test_a_wide_run_records_its_ticks_in_blocks_of_about_64_at_most_a_load_chunk():
    sc = load_scenario("flash-crowd")
    assert runner_module._Recorder(sc, 2000, 1000, 512, False).sink()[2] == 65  # 131 before: a block out of cache
    assert runner_module._Recorder(sc, 2000, 3, 512, False).sink()[2] == 512  # a few services: a load chunk

