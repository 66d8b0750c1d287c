"""The durable health state as JSON and back: identity on the durable fields, and conservative
restores of anything unreadable (budgets charged in full, never silently re-armed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.health.heal import HealthState, heal
from controller.core.health.params import HEALTH_REASON_CODES, Act, BudgetParams, HealthReason, Remedy
from controller.core.health.state_codec import (SCHEMA_VERSION, Parsed, durable_arrays, encode, parse, restore,
                                                same_arrays, still_relevant, target_key)
from controller.core.health.remediate import BudgetState, RemedyState, RevisionState
from controller.core.health.revision_test import Measure, RevisionTestParams, RevisionTestState, Verdict
from tests.core.healing import T0, check, params, pod_check, world

RELEASE = (RevisionTestParams("release-errors"), RevisionTestParams("release-latency", Measure.LATENCY))
P = params(check("errors"), pod_check("mem"), budgets=BudgetParams(restarts_per_hour=3, rollbacks_per_day=2,
                                                                  max_unavailable_ratio=0.5), revision_checks=RELEASE)
NOW = T0 + 10_000
times = st.floats(T0 - 86_400, T0 + 86_400, allow_nan=False)
revision = st.sampled_from(["", "r1", "r2", "abc123"])


@st.composite
def history_row(draw, slots: int, value=st.integers(1, 5)):
    k = draw(st.integers(0, slots))
    at = sorted(draw(st.lists(times, min_size=k, max_size=k, unique=True)))
    values, ts = np.zeros(slots), np.full(slots, np.nan)
    for j, t in enumerate(at):
        values[j], ts[j] = draw(value), t
    return values, ts


@st.composite
def durable_states(draw) -> tuple[HealthState, list[str]]:
    n = draw(st.integers(1, 4))
    state = HealthState.empty(n, P)
    rs = [draw(history_row(P.restart_slots)) for _ in range(n)]
    rb = [draw(history_row(P.rollback_slots, st.just(1))) for _ in range(n)]
    budgets = BudgetState(np.array([r[0] for r in rs]), np.array([r[1] for r in rs]),
                          np.array([r[0] for r in rb]), np.array([r[1] for r in rb]))
    rem = {k: getattr(RemedyState.empty(n), k).copy() for k in RemedyState.__dataclass_fields__}
    rev = {k: getattr(RevisionState.empty(n), k).copy() for k in RevisionState.__dataclass_fields__}
    for i in range(n):
        if draw(st.booleans()):
            rem["verify_action"][i] = draw(st.sampled_from([Remedy.RESTART_POD, Remedy.ROLLING_RESTART, Remedy.ROLLBACK]))
            # -1: no triggering check (a rollback a revision check called for)
            rem["verify_check"][i] = draw(st.integers(-1, len(P.checks) - 1))
            rem["verify_started"][i] = draw(times)
            rem["verify_until"][i] = rem["verify_started"][i] + 300
            rem["verify_seen"][i] = draw(st.one_of(st.just(np.nan), times))
        if draw(st.booleans()):  # the second window: a pod restart another check called for
            rem["pod_verify_check"][i] = draw(st.integers(0, len(P.checks) - 1))
            rem["pod_verify_started"][i] = draw(times)
            rem["pod_verify_until"][i] = rem["pod_verify_started"][i] + 435
            rem["pod_verify_seen"][i] = draw(st.one_of(st.just(np.nan), times))
        if draw(st.booleans()):
            rem["escalation"][i] = draw(st.sampled_from([Remedy.ROLLING_RESTART, Remedy.ROLLBACK]))
            rem["escalation_check"][i] = draw(st.integers(0, len(P.checks) - 1))
        if draw(st.booleans()):
            rem["held"][i] = True
            rem["held_reason"][i] = draw(st.sampled_from(list(HealthReason)))
            rem["held_at"][i] = draw(times)
        if draw(st.booleans()):
            rem["floor"][i] = draw(st.integers(1, 50))
            rem["floor_until"][i] = draw(times)
            rem["cooldown_until"][i] = draw(times)
        for k in ("current", "healthy", "older_healthy", "rolled_back_to", "restarted"):
            rev[k][i] = draw(revision)
        for k in ("since", "rollout_done_at"):
            rev[k][i] = draw(st.one_of(st.just(np.nan), times))
        rev["trusted"][i] = draw(st.booleans())
    state = HealthState(state.workload, state.pods, RevisionState(**rev), RemedyState(**rem), budgets,
                        draw(revision_tests(n)))
    keys = [target_key("shop", "Deployment", f"w{i}") for i in range(n)]
    return state, keys


counts = st.floats(0, 1e7, allow_nan=False)
signed = st.floats(-1e4, 1e4, allow_nan=False)


@st.composite
def revision_tests(draw, n: int) -> RevisionTestState:
    """Random tests of the two revision checks of P (sums: a count, then any signed numbers)."""
    c = len(RELEASE)

    def sums():
        return np.array([[[draw(counts), draw(signed), draw(signed)] for _ in range(c)] for _ in range(n)])

    return RevisionTestState(
        np.array([draw(revision) for _ in range(n)], dtype=object),
        np.array([[draw(signed) for _ in range(c)] for _ in range(n)]),
        np.array([[draw(signed) for _ in range(c)] for _ in range(n)]),
        sums(), sums(), sums(),
        np.array([[draw(st.sampled_from(list(Verdict))) for _ in range(c)] for _ in range(n)], np.int8),
        np.array([[draw(st.one_of(st.just(np.nan), times)) for _ in range(c)] for _ in range(n)]),
        sums(), sums(), np.array([[draw(st.booleans()) for _ in range(c)] for _ in range(n)]))


def same_tests(a: RevisionTestState, b: RevisionTestState) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k), equal_nan=getattr(a, k).dtype.kind == "f")
               for k in RevisionTestState.__dataclass_fields__)


def round_trip(state: HealthState, keys: list[str], resume=None):
    text = json.dumps(encode("web", P, state, keys, resume, saved_at=NOW), allow_nan=False)
    return restore(P, HealthState.empty(len(keys), P), keys, parse(text), NOW)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(durable_states(), st.lists(st.sampled_from(["", "2026-12-01T10:00:00+00:00"]), min_size=4, max_size=4))
def test_encode_then_decode_is_identity_on_the_durable_fields(drawn, resume_values):
    state, keys = drawn
    resume = dict(zip(keys, resume_values))
    back = round_trip(state, keys, resume)
    assert back.problems == () and back.conservative == ()
    assert same_arrays(durable_arrays(back.state), durable_arrays(state))
    assert same_tests(back.state.revision_tests, state.revision_tests)  # every field, counts included
    assert back.resume_seen == resume
    np.testing.assert_array_equal(back.state.budgets.restarts_used(NOW), state.budgets.restarts_used(NOW))
    # a restored revision proves itself healthy again from the load time
    expect_clean = np.where(state.revisions.current != "", NOW, np.nan)
    np.testing.assert_array_equal(back.state.revisions.clean_since, expect_clean)


def test_absent_payload_is_a_quiet_fresh_start():
    empty = HealthState.empty(2, P)
    back = restore(P, empty, ["a", "b"], parse(None), NOW)
    assert back.problems == () and same_arrays(durable_arrays(back.state), durable_arrays(empty))


def _payload(record) -> str:
    return json.dumps({"schema_version": SCHEMA_VERSION, "policy": "web", "targets": {"shop/Deployment/w0": record}})


def _good_record() -> dict:
    state = HealthState.empty(1, P)
    return encode("web", P, state, ["shop/Deployment/w0"])["targets"]["shop/Deployment/w0"]


def _broken(path: str, value):
    record = _good_record()
    *parents, last = path.split(".")
    node = record
    for p in parents:
        node = node[p]
    node[last] = value
    return _payload(record)


@pytest.mark.parametrize("raw,scope", [
    pytest.param(b"\x00\xff not json", "all", id="binary"),
    pytest.param("{", "all", id="truncated-json"),
    pytest.param("[1, 2]", "all", id="not-an-object"),
    pytest.param('{"schema_version": 2, "targets": {}}', "all", id="newer-schema"),
    pytest.param('{"targets": {}}', "all", id="no-schema-version"),
    pytest.param('{"schema_version": 1, "targets": []}', "all", id="targets-not-an-object"),
    pytest.param("", "all", id="empty-text"),
    pytest.param("[" * 200_000 + "]" * 200_000, "all", id="nested-200000-deep"),  # RecursionError: exit 70
    pytest.param(_broken("budgets.restarts", [[[[[[[[[[[[[[[[1, T0]]]]]]]]]]]]]]]]), "all", id="nested-in-a-record"),
    pytest.param(_payload("nope"), "w0", id="record-not-an-object"),
    pytest.param(_broken("budgets.restarts", [[1, "yesterday"]]), "w0", id="restart-time-not-a-number"),
    pytest.param(_broken("budgets.restarts", [[-1, T0]]), "w0", id="negative-restart-count"),
    pytest.param(_broken("budgets.rollbacks", "many"), "w0", id="rollbacks-not-a-list"),
    pytest.param(_broken("breaker.held", "yes"), "w0", id="held-not-a-bool"),
    pytest.param(_broken("breaker.reason", "Sleepy"), "w0", id="unknown-held-reason"),
    pytest.param(_broken("floor.replicas", 1.5), "w0", id="floor-not-a-count"),
    pytest.param(_broken("revisions.trusted", None), "w0", id="trusted-missing"),
    pytest.param(_broken("revisions", None), "w0", id="revisions-missing"),
    pytest.param(_broken("revision_tests", "undecided"), "w0", id="tests-not-an-object"),
    pytest.param(_broken("revision_tests.checks", []), "w0", id="test-checks-not-an-object"),
    pytest.param(_broken("revision_tests.revision", 7), "w0", id="test-revision-not-a-string"),
    pytest.param(_broken("revision_tests.checks.release-errors.verdict", "maybe"), "w0", id="unknown-verdict"),
    pytest.param(_broken("revision_tests.checks.release-errors.llr", "NaN"), "w0", id="llr-not-a-number"),
    pytest.param(_broken("revision_tests.checks.release-errors.new", [1, 2]), "w0", id="sums-not-three"),
    pytest.param(_broken("revision_tests.checks.release-errors.old", [-5, 0, 0]), "w0", id="negative-requests"),
    pytest.param(_broken("revision_tests.checks.release-latency.decided_at", "now"), "w0", id="decided-at-not-a-time"),
    pytest.param(_broken("revision_tests.checks.release-errors.drifted", None), "w0", id="drifted-missing"),
])
def test_unreadable_state_charges_the_budgets_in_full_and_says_so(raw, scope):
    keys = ["shop/Deployment/w0", "shop/Deployment/w1"]
    back = restore(P, HealthState.empty(2, P), keys, parse(raw), NOW)
    charged = keys if scope == "all" else keys[:1]
    assert back.conservative == tuple(charged) and back.problems
    used = dict(zip(keys, back.state.budgets.restarts_used(NOW).tolist()))
    rollbacks = dict(zip(keys, back.state.budgets.rollbacks_used(NOW).tolist()))
    for k in keys:
        assert used[k] == (3 if k in charged else 0) and rollbacks[k] == (2 if k in charged else 0)
    # until the window has passed: then the charge no longer counts
    assert back.state.budgets.restarts_used(NOW + 3600).tolist() == [0, 0]
    assert not back.state.remedy.held.any()  # non-disruptive remedies still work


def test_a_window_whose_check_left_the_policy_is_closed_but_its_budget_stays():
    state = HealthState.empty(1, P)
    rem = RemedyState(**{**{k: getattr(state.remedy, k) for k in RemedyState.__dataclass_fields__},
                         "verify_action": np.array([int(Remedy.ROLLING_RESTART)]), "verify_check": np.array([1]),
                         "verify_started": np.array([T0]), "verify_until": np.array([T0 + 300])})
    budgets = state.budgets.record(np.array([1]), np.array([False]), T0)
    state = HealthState(state.workload, state.pods, state.revisions, rem, budgets)
    payload = encode("web", P, state, ["k"])
    reordered = params(pod_check("mem"), check("errors"))  # same checks, another order
    dropped = params(check("errors"))
    moved = restore(reordered, HealthState.empty(1, reordered), ["k"], parse(json.dumps(payload)), NOW)
    assert moved.state.remedy.verify_check.tolist() == [0]  # found by name
    gone = restore(dropped, HealthState.empty(1, dropped), ["k"], parse(json.dumps(payload)), T0 + 10)
    assert gone.state.remedy.verify_action.tolist() == [int(Remedy.NONE)] and gone.problems == ()
    assert gone.state.budgets.restarts_used(T0 + 10).tolist() == [1]


@pytest.mark.parametrize("action,check,policy,kept", [
    pytest.param(Remedy.ROLLBACK, -1, P, True, id="a-revision-check-rollback-window-survives-a-restart"),
    pytest.param(Remedy.ROLLBACK, 0, P, True, id="a-checked-rollback-window-survives-a-restart"),
    pytest.param(Remedy.ROLLING_RESTART, 1, params(check("errors")), False, id="a-window-whose-check-left-is-closed"),
])
def test_an_open_verification_window_is_restored(action, check, policy, kept):
    state = HealthState.empty(1, P)
    rem = RemedyState(**{**{k: getattr(state.remedy, k) for k in RemedyState.__dataclass_fields__},
                         "verify_action": np.array([int(action)]), "verify_check": np.array([check]),
                         "verify_started": np.array([T0]), "verify_until": np.array([T0 + 120])})
    payload = json.dumps(encode("web", P, HealthState(state.workload, state.pods, state.revisions, rem, state.budgets),
                                ["k"]))
    back = restore(policy, HealthState.empty(1, policy), ["k"], parse(payload), T0 + 10).state.remedy
    expect = (int(action), check, T0 + 120) if kept else (int(Remedy.NONE), -1, None)
    got = (int(back.verify_action[0]), int(back.verify_check[0]),
           None if math.isnan(back.verify_until[0]) else float(back.verify_until[0]))
    assert got == expect


def _tested(verdict: Verdict = Verdict.BAD) -> HealthState:
    """One target whose release-errors test has 5000 requests of revision r2 and a verdict."""
    state = HealthState.empty(1, P)
    t = state.revision_tests
    new = t.new.copy()
    new[0, 0] = [5000.0, 40.0, 0.0]
    verdicts = t.verdict.copy()
    verdicts[0, 0] = int(verdict)
    tests = RevisionTestState(np.array(["r2"], dtype=object), np.array([[6.1, 2.0]]), t.during, new, t.old, t.after,
                              verdicts, np.array([[T0, np.nan]]), t.base, t.stable, t.drifted)
    return HealthState(state.workload, state.pods, state.revisions, state.remedy, state.budgets, tests)


def test_revision_tests_are_found_by_check_name_and_new_checks_start_empty():
    payload = json.dumps(encode("web", P, _tested(), ["k"]))
    swapped = params(check("errors"), pod_check("mem"), revision_checks=(RELEASE[1], RevisionTestParams("slow"),
                                                                         RELEASE[0]))
    back = restore(swapped, HealthState.empty(1, swapped), ["k"], parse(payload), NOW)
    t = back.state.revision_tests
    assert back.problems == () and t.revision.tolist() == ["r2"]
    assert t.verdict.tolist() == [[int(Verdict.UNDECIDED), int(Verdict.UNDECIDED), int(Verdict.BAD)]]
    assert t.new[0, 2].tolist() == [5000.0, 40.0, 0.0] and t.new[0, 1].tolist() == [0.0, 0.0, 0.0]
    assert t.llr[0].tolist() == [2.0, 0.0, 6.1]


def test_a_record_from_before_the_tests_were_kept_starts_them_empty():
    record = json.loads(json.dumps(encode("web", P, _tested(), ["k"])))
    del record["targets"]["k"]["revision_tests"]
    back = restore(P, HealthState.empty(1, P), ["k"], parse(record), NOW)
    assert back.problems == () and back.state.revision_tests.revision.tolist() == [""]
    assert not back.state.revision_tests.verdict.any()


@pytest.mark.parametrize("change,saves", [
    pytest.param(lambda t: {"verdict": np.array([[int(Verdict.GOOD), 0]], np.int8)}, True, id="verdict"),
    pytest.param(lambda t: {"revision": np.array(["r3"], dtype=object)}, True, id="revision-under-test"),
    pytest.param(lambda t: {"llr": t.llr + 0.5, "new": t.new + 100.0, "base": t.base + 100.0}, False,
                 id="counts-only"),
])
def test_the_tests_cause_a_save_on_a_verdict_or_a_new_revision_not_on_counts(change, saves):
    state = _tested(Verdict.UNDECIDED)
    t = state.revision_tests
    moved = HealthState(state.workload, state.pods, state.revisions, state.remedy, state.budgets,
                        RevisionTestState(**{**{k: getattr(t, k) for k in RevisionTestState.__dataclass_fields__},
                                             **change(t)}))
    assert same_arrays(durable_arrays(state), durable_arrays(moved)) is not saves


def test_rows_without_a_record_keep_what_they_hold():
    mine = HealthState.empty(2, P)
    mine = HealthState(mine.workload, mine.pods, mine.revisions, mine.remedy,
                       mine.budgets.record(np.array([2, 1]), np.array([False, False]), T0))
    other = encode("web", P, HealthState.empty(1, P), ["shop/Deployment/w1"])
    back = restore(P, mine, ["shop/Deployment/w0", "shop/Deployment/w1"], parse(json.dumps(other)), NOW)
    assert back.state.budgets.restarts_used(T0 + 1).tolist() == [2, 0]


def test_payload_is_versioned_json_with_epoch_seconds():
    state = HealthState.empty(1, P)
    state = HealthState(state.workload, state.pods, state.revisions,
                        RemedyState(**{**{k: getattr(state.remedy, k) for k in RemedyState.__dataclass_fields__},
                                       "held": np.array([True]), "held_reason": np.array([16]),
                                       "held_at": np.array([T0])}),
                        state.budgets.record(np.array([1]), np.array([True]), T0))
    doc = json.loads(json.dumps(encode("web", P, state, [target_key("shop", "Deployment", "web")], saved_at=NOW),
                                allow_nan=False))
    record = doc["targets"]["shop/Deployment/web"]
    assert doc["schema_version"] == 1 and doc["saved_at"] == NOW
    assert record["budgets"] == {"restarts": [[1.0, T0]], "rollbacks": [[1.0, T0]]}
    assert record["breaker"] == {"held": True, "reason": HEALTH_REASON_CODES[16], "at": T0}
    assert record["verification"] is None and math.isnan(state.revisions.since[0]) and record["revisions"]["since"] is None


def test_parse_accepts_bytes_text_and_objects():
    doc = {"schema_version": 1, "targets": {}}
    assert parse(json.dumps(doc).encode()) == parse(json.dumps(doc)) == parse(doc) == Parsed({})


@pytest.mark.parametrize("record,keep", [
    pytest.param({"budgets": {"restarts": [], "rollbacks": []}, "breaker": {"held": True}}, True, id="held"),
    pytest.param({"budgets": {"restarts": [[1, NOW - 60]], "rollbacks": []}, "breaker": {"held": False}}, True,
                 id="restart-inside-the-hour"),
    pytest.param({"budgets": {"restarts": [[1, NOW - 3600]], "rollbacks": []}, "breaker": {"held": False}}, False,
                 id="restart-an-hour-old"),
    pytest.param({"budgets": {"restarts": [], "rollbacks": [[1, NOW - 7200]]}, "breaker": {"held": False}}, True,
                 id="rollback-inside-the-day"),
    pytest.param({"budgets": {"restarts": [], "rollbacks": []}, "breaker": {"held": False}}, False, id="nothing"),
    pytest.param("garbage", True, id="unreadable-is-kept"),
])
def test_records_of_absent_targets_are_kept_while_they_matter(record, keep):
    assert still_relevant(record, NOW) is keep


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget=st.integers(1, 3), for_s=st.sampled_from([0.0, 15.0]), bad=st.sets(st.integers(0, 3), min_size=1),
       restarts=st.lists(st.booleans(), min_size=40, max_size=40),
       resumes=st.lists(st.booleans(), min_size=40, max_size=40))
def test_budget_holds_across_random_controller_lifetimes(budget, for_s, bad, restarts, resumes):
    """Restart the controller (empty memory + the durable payload, through JSON) at random cycles
    and resume at random ones: within the hour, pods restarted (a rolling restart counts one)
    never exceed restartsPerHour."""
    p = params(pod_check("mem", for_s=for_s), budgets=BudgetParams(restarts_per_hour=budget, rollbacks_per_day=1,
                                                                    max_unavailable_ratio=0.5))
    w = world(p, pods_per_target=(4,), replace_bad=True)
    w.bad = {f"t0-p{k}" for k in bad}
    keys = ["shop/Deployment/web"]
    state, charged = HealthState.empty(1, p), 0
    for k, (restart, resume) in enumerate(zip(restarts, resumes)):
        now = T0 + 15 * k
        if restart:
            payload = json.dumps(encode("web", p, state, keys), allow_nan=False)
            state = restore(p, HealthState.empty(1, p), keys, parse(payload), now).state
        d = heal(p, w.observe(), state, now, rearm_rows=[0] if resume else None)
        w.apply(d)
        state = d.state
        act = Act(int(d.action[0]))
        charged += len(d.restart_pods(0)) if act is Act.RESTART_POD else int(act is Act.ROLLING_RESTART)
    assert charged <= budget


# --- the rollout hold: that this controller paused the Deployment survives a restart ----------

from dataclasses import replace as _replace  # noqa: E402

from controller.core.health.rollout_hold import HoldState  # noqa: E402


def _holding(since: float = T0 + 50, over: bool = False) -> HealthState:
    return _replace(HealthState.empty(1, P), hold=HoldState(np.array(["r2"], dtype=object), np.array([since]),
                                                           np.array([over])))


@pytest.mark.parametrize("state", [
    pytest.param(_holding(), id="paused-by-us"),
    pytest.param(_holding(since=math.nan, over=True), id="hold-over-not-taken-again"),
])
def test_the_rollout_hold_round_trips(state):
    payload = json.loads(json.dumps(encode("web", P, state, ["k"])))
    back = restore(P, HealthState.empty(1, P), ["k"], parse(payload), NOW)
    assert back.problems == ()
    assert same_arrays(durable_arrays(back.state), durable_arrays(state))


def test_a_pause_and_a_resume_cause_a_save():
    base = _holding(since=math.nan)
    assert not same_arrays(durable_arrays(base), durable_arrays(_holding()))
    assert not same_arrays(durable_arrays(_holding()), durable_arrays(_holding(since=math.nan, over=True)))


@pytest.mark.parametrize("hold,expect", [
    pytest.param("yes", "rollout_hold: expected an object", id="not-an-object"),
    pytest.param({"revision": "r2", "paused_at": "soon", "over": False}, "rollout_hold.paused_at", id="bad-time"),
    pytest.param({"revision": 2, "paused_at": None, "over": False}, "rollout_hold.revision", id="bad-revision"),
    pytest.param({"revision": "r2", "paused_at": None}, "rollout_hold.over", id="no-over"),
])
def test_an_unreadable_hold_is_reported_and_holds_nothing(hold, expect):
    record = json.loads(json.dumps(encode("web", P, _holding(), ["k"])))
    record["targets"]["k"]["rollout_hold"] = hold
    back = restore(P, HealthState.empty(1, P), ["k"], parse(record), NOW)
    assert any(expect in p for p in back.problems), back.problems
    assert not back.state.hold.ours.any()  # a pause we cannot prove ours is never resumed by us


def test_a_record_from_before_the_holds_holds_nothing():
    record = json.loads(json.dumps(encode("web", P, _holding(), ["k"])))
    del record["targets"]["k"]["rollout_hold"]
    back = restore(P, HealthState.empty(1, P), ["k"], parse(record), NOW)
    assert back.problems == () and not back.state.hold.ours.any()
