"""Table-driven tests of the scores, on small hand-made trajectories with worked-out numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulators.result import SLO, ControllerRun, FaultWindow, SimResult, Trajectory
from simulators.score import (
    SCHEMA_VERSION,
    mitigation_seconds,
    replica_changes,
    replica_hours,
    replica_hours_ratio_to,
    result_json,
    reversals,
    score_result,
    score_run,
    score_table,
    slo_violation_minutes,
    violation_mask,
)

SLO_P95 = SLO(latency_percentile=95, latency_s=0.5, error_ratio=0.01)
NAN = math.nan


def trajectory(t_s, *, offered=None, dropped=None, latency=None, errors=None, spec=None, services=1) -> Trajectory:
    """A (T, S) trajectory: every unspecified signal is healthy (load 10 rps, 0.1 s, no errors)."""
    t = np.asarray(t_s, dtype=float)
    shape = (t.size, services)

    def col(values, default):
        return np.full(shape, default, dtype=float) if values is None else np.asarray(values, dtype=float).reshape(shape)

    spec_arr = col(spec, 2)
    offered_arr = col(offered, 10.0)
    dropped_arr = col(dropped, 0.0)
    return Trajectory(
        t_s=t, offered_rps=offered_arr, served_rps=offered_arr - dropped_arr, dropped_rps=dropped_arr,
        capacity_rps=spec_arr * 10.0, spec_replicas=spec_arr, ready_replicas=spec_arr,
        latency_s=col(latency, 0.1), error_ratio=col(errors, 0.0), violation=np.zeros(shape, dtype=bool),
    )


def bools(*ticks):
    """(T, 1) bool column from 0/1 values."""
    return np.array(ticks, dtype=bool).reshape(-1, 1)


# --- violation mask ------------------------------------------------------------------------


@pytest.mark.parametrize("signals,expect", [
    pytest.param({}, False, id="healthy"),
    pytest.param({"latency": [0.51]}, True, id="latency-above-slo"),
    pytest.param({"latency": [0.5]}, False, id="latency-at-slo-is-fine"),
    pytest.param({"errors": [0.02]}, True, id="error-ratio-above-slo"),
    pytest.param({"errors": [0.01]}, False, id="error-ratio-at-slo-is-fine"),
    pytest.param({"dropped": [0.5]}, True, id="any-drop-violates"),
    pytest.param({"dropped": [1e-12]}, False, id="float-residue-is-not-a-drop"),
    pytest.param({"latency": [NAN], "offered": [0.0]}, False, id="nan-latency-without-load-is-fine"),
    pytest.param({"latency": [NAN], "offered": [5.0]}, True, id="nan-latency-under-load-violates"),
    pytest.param({"latency": [math.inf]}, True, id="infinite-latency-violates"),
    pytest.param({"errors": [NAN]}, False, id="nan-error-ratio-is-not-a-violation"),
])
def test_violation_mask_applies_each_rule(signals, expect):
    traj = trajectory([0.0], **signals)
    assert violation_mask(traj, SLO_P95).tolist() == [[expect]]


def test_violation_mask_is_per_tick_and_service():
    traj = trajectory([0.0, 5.0], latency=[[0.1, 0.9], [0.1, 0.1]], errors=[[0.0, 0.0], [0.5, 0.0]], services=2)
    assert violation_mask(traj, SLO_P95).tolist() == [[False, True], [True, False]]


# --- SLO-violation minutes -----------------------------------------------------------------


@pytest.mark.parametrize("t_s,violation,expect", [
    # 15 s ticks in minute 0; one bad tick makes the whole minute count.
    pytest.param([0, 15, 30, 45], bools(0, 1, 0, 0), 1.0, id="one-bad-tick-counts-its-minute"),
    # Two bad ticks in minute 0 still count one minute.
    pytest.param([0, 15, 30, 45], bools(0, 1, 0, 1), 1.0, id="same-minute-counts-once"),
    # 59 s is minute 0, 60 s is minute 1: two minutes.
    pytest.param([0, 59, 60, 61], bools(0, 1, 1, 0), 2.0, id="59-and-60-are-different-minutes"),
    # Bad at 0-45 (minute 0) and 120 (minute 2); minute 1 is clean: 2 minutes.
    pytest.param([0, 45, 60, 90, 120, 150], bools(1, 1, 0, 0, 1, 0), 2.0, id="clean-minute-in-between-is-skipped"),
    pytest.param([0, 15, 30, 45], bools(0, 0, 0, 0), 0.0, id="no-violation"),
    # 120 s ticks: the bad tick at 0 holds over [0, 120), minutes 0 and 1.
    pytest.param([0, 120, 240], bools(1, 0, 0), 2.0, id="tick-longer-than-a-minute-counts-every-minute-it-holds"),
    # Irregular: the bad tick at 50 holds over [50, 70), touching minutes 0 and 1.
    pytest.param([0, 50, 70], bools(0, 1, 0), 2.0, id="irregular-tick-spanning-a-minute-boundary"),
    # Last tick (at 60) holds one tick length (60 s): [60, 120), minute 1 only.
    pytest.param([0, 60], bools(0, 1), 1.0, id="last-tick-holds-one-tick-length"),
])
def test_slo_violation_minutes_buckets_wall_clock_minutes(t_s, violation, expect):
    assert slo_violation_minutes(np.array(t_s, dtype=float), violation) == expect


def test_slo_violation_minutes_sum_over_services():
    # Service 0 bad in minute 0; service 1 bad in minutes 0 and 1: 1 + 2 = 3.
    t = np.array([0, 30, 60, 90], dtype=float)
    v = np.array([[1, 1], [0, 0], [0, 1], [0, 0]], dtype=bool)
    assert slo_violation_minutes(t, v) == 3.0


# --- replica-hours -------------------------------------------------------------------------


@pytest.mark.parametrize("t_s,spec,last_tick_s,expect", [
    # 2 replicas over 0..3600 plus a last tick of 1800 s: 2 * 5400 s = 3 h.
    pytest.param([0, 1800, 3600], [2, 2, 2], None, 3.0, id="constant"),
    # Durations 600, 1200, and the last one repeats 1200: 1*600 + 2*1200 + 4*1200 = 7800 s.
    pytest.param([0, 600, 1800], [1, 2, 4], None, 7800 / 3600, id="irregular-last-tick-repeats-the-one-before"),
    # Same with the last tick set to 600 s: 600 + 2400 + 2400 = 5400 s = 1.5 h.
    pytest.param([0, 600, 1800], [1, 2, 4], 600.0, 1.5, id="last-tick-given"),
    # One tick of one hour at 3 replicas.
    pytest.param([0], [3], 3600.0, 3.0, id="single-tick-with-tick-length"),
    pytest.param([0], [3], None, 0.0, id="single-tick-without-length-lasts-nothing"),
    # Two services, 5 s ticks over an hour: (1 + 3) replicas * 3600 s = 4 h.
    pytest.param(np.arange(0, 3600, 5), np.tile([1, 3], (720, 1)), None, 4.0, id="sum-over-services"),
])
def test_replica_hours_integrates_spec_over_time(t_s, spec, last_tick_s, expect):
    assert replica_hours(np.asarray(t_s, dtype=float), np.asarray(spec), last_tick_s) == pytest.approx(expect)


# --- replica changes -----------------------------------------------------------------------


@pytest.mark.parametrize("spec,expect", [
    pytest.param([3, 3, 3], 0, id="steady"),
    pytest.param([1, 2, 2, 3], 2, id="two-steps-up"),
    pytest.param([1, 5], 1, id="a-jump-is-one-change"),
    pytest.param([1, 2, 1, 2], 3, id="flapping"),
    pytest.param([[1, 1], [2, 1], [2, 3]], 2, id="sum-over-services"),
])
def test_replica_changes_count_ticks_that_differ(spec, expect):
    assert replica_changes(np.asarray(spec)) == expect


# --- reversals -----------------------------------------------------------------------------


@pytest.mark.parametrize("t_s,spec,expect", [
    # Up at 10 s, down at 10 + 299 s: inside the 300 s window.
    pytest.param([0, 10, 309], [1, 2, 1], 1, id="opposite-after-299s-reverses"),
    pytest.param([0, 10, 310], [1, 2, 1], 1, id="opposite-after-300s-reverses"),
    pytest.param([0, 10, 311], [1, 2, 1], 0, id="opposite-after-301s-does-not"),
    pytest.param([0, 10, 20], [1, 2, 3], 0, id="same-direction-is-no-reversal"),
    # Up at 10, down at 20, up at 30: two reversals.
    pytest.param([0, 10, 20, 30], [1, 2, 1, 2], 2, id="up-down-up-is-two"),
    # Unchanged ticks between the two changes do not reset the window (gap 20 s).
    pytest.param([0, 10, 20, 30], [1, 2, 2, 1], 1, id="steady-ticks-between-changes"),
    # Down at 10, down at 400, up at 500: the up compares with the change at 400 (100 s).
    pytest.param([0, 10, 400, 500], [4, 3, 2, 3], 1, id="compared-with-the-previous-change-only"),
    # Service 0 goes up at 10, service 1 down at 20: different services, no reversal.
    pytest.param([0, 10, 20], [[1, 3], [2, 3], [2, 2]], 0, id="other-services-changes-do-not-count"),
])
def test_reversals_within_the_window(t_s, spec, expect):
    assert reversals(np.asarray(t_s, dtype=float), np.asarray(spec)) == expect


# --- mitigation ----------------------------------------------------------------------------

# 10 s ticks from 0 to 600 s: the run ends at 610 s. A fault on "api" at 100 s.
T_10S = np.arange(0, 601, 10, dtype=float)


def bad_between(*spans):
    """(61, 1) violation column, True on ticks within each inclusive (from_s, to_s) span."""
    v = np.zeros(T_10S.size, dtype=bool)
    for lo, hi in spans:
        v |= (T_10S >= lo) & (T_10S <= hi)
    return v.reshape(-1, 1)


def fault(start_s=100.0, end_s=None, service="api"):
    return FaultWindow(name="f", kind="pod-crash", service=service, start_s=start_s, end_s=end_s)


@pytest.mark.parametrize("violation,flt,expect", [
    pytest.param(bad_between(), fault(), 0.0, id="never-violated-is-zero"),
    # Bad 100..190, clean from 200 through the end (200 + 120 <= 610): 200 - 100 = 100 s.
    pytest.param(bad_between((100, 190)), fault(), 100.0, id="mitigated"),
    # Already bad from 50 when the fault starts; clean from 160: 160 - 100 = 60 s.
    pytest.param(bad_between((50, 150)), fault(), 60.0, id="violation-ongoing-at-start"),
    pytest.param(bad_between((100, 600)), fault(), None, id="never-mitigated"),
    # Clean from 540, but the run ends at 610 < 540 + 120: the hold is not proven.
    pytest.param(bad_between((100, 530)), fault(), None, id="recovered-too-late-to-prove-the-hold"),
    # Clean 200..250 (less than 120 s), bad at 260, clean from 270: 270 - 100 = 170 s.
    pytest.param(bad_between((100, 190), (260, 260)), fault(), 170.0, id="a-relapse-within-the-hold-restarts-it"),
    # Bad at 100, clean 110..220 (exactly 120 s), bad at 230: mitigated at 110 -> 10 s.
    pytest.param(bad_between((100, 100), (230, 230)), fault(), 10.0, id="clean-for-exactly-the-hold"),
    # Bad at 100, clean 110..210 (110 s), bad at 220, clean from 230: 230 - 100 = 130 s.
    pytest.param(bad_between((100, 100), (220, 220)), fault(), 130.0, id="clean-just-short-of-the-hold"),
    pytest.param(bad_between((50, 50)), fault(), 0.0, id="violation-before-the-fault-is-not-its-own"),
    # Fault 100..200; the violation at 300 is after its window: not caused by it.
    pytest.param(bad_between((300, 310)), fault(end_s=200.0), 0.0, id="violation-after-the-fault-window"),
    # Fault 100..200 caused a violation at 150..250; recovery after the end still counts: 160 s.
    pytest.param(bad_between((150, 250)), fault(end_s=200.0), 160.0, id="recovery-after-the-window-counts"),
    # Fault 100 s with start between ticks at 95 s: bad 100..190, mitigated at 200 -> 105 s.
    pytest.param(bad_between((100, 190)), fault(start_s=95.0), 105.0, id="start-between-ticks"),
])
def test_mitigation_seconds(violation, flt, expect):
    assert mitigation_seconds(T_10S, violation, flt, ["api"]) == expect


@pytest.mark.parametrize("service,expect", [
    pytest.param("api", 0.0, id="other-service-violations-are-not-its-own"),
    # "db" is bad 100..190, mitigated at 200: 100 s.
    pytest.param("db", 100.0, id="own-service"),
    pytest.param("*", 100.0, id="all-services"),
    pytest.param("api,db", 100.0, id="comma-separated"),
])
def test_mitigation_follows_the_faults_services(service, expect):
    violation = np.hstack([bad_between(), bad_between((100, 190))])
    assert mitigation_seconds(T_10S, violation, fault(service=service), ["api", "db"]) == expect


# --- one run and the result ----------------------------------------------------------------


def small_result() -> SimResult:
    """Two controllers on one service, 15 s ticks for 5 minutes; a fault at 60 s."""
    t = np.arange(0, 300, 15, dtype=float)  # 20 ticks
    lat_policy = np.where((t >= 60) & (t < 90), 2.0, 0.1)  # bad at 60 and 75: minute 1
    lat_oracle = np.full(t.size, 0.1)
    lat_oracle[0] = NAN  # NaN latency at zero load: must not leak into JSON
    offered = np.full(t.size, 10.0)
    offered[0] = 0.0
    spec_policy = np.where(t < 90, 2, np.where(t < 120, 4, 3))  # up at 90, down at 120: a reversal
    policy = ControllerRun("policy", "the bundled policy", trajectory(t, latency=lat_policy, offered=offered, spec=spec_policy))
    oracle = ControllerRun("oracle", "knows the future", trajectory(t, latency=lat_oracle, offered=offered, spec=np.full(t.size, 2)))
    return SimResult(
        scenario="tiny", description="a tiny scenario", duration_s=300.0, tick_s=15.0, seed=7, slo=SLO_P95,
        services=["api"], faults=[FaultWindow("crash", "pod-crash", "api", 60.0, None),
                                  FaultWindow("late", "node-loss", "api", 250.0, 260.0)],
        runs={"policy": policy, "oracle": oracle}, policy_file="policy.yaml",
    )


def test_score_run_has_exactly_the_documented_keys_and_numbers():
    r = small_result()
    scores = score_run(r.runs["policy"], r.slo, r.faults, r.services, tick_s=r.tick_s)
    assert scores == {
        "slo_violation_minutes": 1.0,  # ticks 60 and 75 are both in minute 1
        # 2 * 90 s + 4 * 30 s + 3 * 180 s = 840 s
        "replica_hours": round(840 / 3600, 3),
        "replica_changes": 2,
        "reversals": 1,  # down at 120 s, 30 s after the up at 90 s
        # bad 60..75, clean from 90 until the end at 300 (>= 120 s): 90 - 60 = 30 s; "late" saw nothing
        "mitigation_seconds": {"crash": 30.0, "late": 0.0},
    }


def test_replica_hours_ratio_to_a_reference():
    assert replica_hours_ratio_to({"replica_hours": 3.0}, {"replica_hours": 2.0}) == 1.5
    assert replica_hours_ratio_to({"replica_hours": 3.0}, {"replica_hours": 0.0}) is None


def test_score_table_has_one_row_per_controller_in_run_order():
    rows = score_table(small_result())
    assert [r["controller"] for r in rows] == ["policy", "oracle"]
    assert rows[0]["replica_hours_vs_oracle"] == 1.4  # 840 replica-seconds over the oracle's 2 * 300
    assert rows[1]["replica_hours_vs_oracle"] == 1.0
    assert rows[0]["worst_mitigation_s"] == 30.0


def test_result_json_round_trips_without_nan():
    r = small_result()
    r.runs["policy"].trajectory.latency_s[-1] = NAN  # NaN under load: a violation, not a JSON NaN
    doc = result_json(r)
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["scenario"]["name"] == "tiny" and doc["scenario"]["seed"] == 7
    assert doc["scenario"]["slo"] == {"latency_percentile": 95, "latency_s": 0.5, "error_ratio": 0.01}
    assert doc["scenario"]["faults"][1] == {"name": "late", "kind": "node-loss", "service": "api",
                                            "start_s": 250.0, "end_s": 260.0}
    policy = doc["controllers"]["policy"]
    assert set(policy) == {"description", "services", "note", "slo_violation_minutes", "replica_hours",
                           "replica_changes", "reversals", "mitigation_seconds", "replica_hours_vs_oracle"}
    # The last tick (285 s) now violates: "crash" is still mitigated at 90 s (clean 90..270 holds
    # 120 s), and "late" (250..260) saw no violation in its window.
    assert policy["mitigation_seconds"] == {"crash": 30.0, "late": 0.0}
    assert doc["controllers"]["oracle"]["replica_hours_vs_oracle"] == 1.0


def test_result_json_reports_unmitigated_faults_as_null():
    r = small_result()
    r.runs["policy"].trajectory.latency_s[4:] = 2.0  # bad from 60 s to the end
    doc = json.loads(json.dumps(result_json(r), allow_nan=False))
    assert doc["controllers"]["policy"]["mitigation_seconds"]["crash"] is None


def test_result_json_without_oracle_has_no_ratio():
    r = small_result()
    del r.runs["oracle"]
    assert "replica_hours_vs_oracle" not in result_json(r)["controllers"]["policy"]


def test_result_json_frontier_is_null_without_a_sweep_and_never_inf_with_one():
    from simulators.frontier import frontier_of
    from simulators.result import FrontierPoint

    r = small_result()
    assert result_json(r)["frontier"] is None
    # HPA never violates at any target; the policy does (x/0) and the oracle does not (0/0)
    sweep = [FrontierPoint(70.0, 0.1, 0.0), FrontierPoint(50.0, 0.2, 0.0)]
    r.frontier = frontier_of(sweep, score_result(r), "hpa.yaml")
    text = json.dumps(result_json(r), allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text
    equal = json.loads(text)["frontier"]["equal_cost"]
    assert (equal["policy"]["ratio"], equal["policy"]["verdict"]) == (None, "loss")
    assert (equal["oracle"]["ratio"], equal["oracle"]["verdict"]) == (None, "tie")
    assert equal["policy"]["extrapolated"] == "above"  # 0.233 replica-hours, dearer than both points
