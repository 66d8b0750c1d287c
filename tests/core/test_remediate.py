"""Remediation through ``heal``: which pods, which revision, budgets, verification and the ladder,
at fixed times with a tiny world that applies each decision; then properties over random runs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, BudgetParams, HealthReason, OverloadParams, Remedy
from tests.core.healing import T0, check, drive, params, pod_check, world
from tests.core.helpers import no_limits, policy

R = HealthReason
LADDER = (Remedy.RESTART_POD, Remedy.ROLLING_RESTART, Remedy.ROLLBACK)


def code(d, i: int = 0) -> str:
    return R(int(d.reason[i])).code


def outcome(d, i: int = 0) -> str | None:
    return R(int(d.outcome[i])).code if d.outcome[i] >= 0 else None


def first(ds, act: Act, i: int = 0):
    return next(d for d in ds if d.action[i] == act)


# --- pods ----------------------------------------------------------------------------------


def test_only_the_bad_pods_are_restarted():
    p = params(pod_check(for_s=30.0))
    w = world(p, (4, 3), bad={"t0-p1", "t1-p2"})
    ds, _ = drive(w, None, [0, 15, 30])
    d = ds[-1]
    assert [code(x) for x in ds] == ["NoAction", "NoAction", "RestartFiringPods"]
    assert d.restart_pods(0) == ("t0-p1",) and d.restart_pods(1) == ("t1-p2",)
    assert [a.pod for a in d.actions(0, SimpleNamespace(key="t0"))] == ["t0-p1"]
    assert w.pods[0] == ["t0-p0", "t0-new0001", "t0-p2", "t0-p3"]


@pytest.mark.parametrize("bad,unready,budgets,expect", [
    pytest.param({0, 1, 2}, set(), dict(max_unavailable_ratio=0.5), ("RestartFiringPods", [0, 1]),
                 id="capped-by-max-unavailable"),
    pytest.param({0, 1, 2}, {3}, dict(max_unavailable_ratio=0.5), ("RestartFiringPods", [0]),
                 id="unready-pods-count-against-max-unavailable"),
    pytest.param({0, 1, 2}, {1, 2}, dict(max_unavailable_ratio=0.5), ("RestartFiringPods", [1, 2]),
                 id="unready-firing-pods-restart-first-disrupting-nothing-more"),
    pytest.param({0}, {3}, dict(max_unavailable_pods=1), ("MaxUnavailable", []),
                 id="no-room-left-the-restart-waits"),
    pytest.param({0, 1, 2}, set(), dict(max_unavailable_pods=4, restarts_per_hour=2), ("RestartFiringPods", [0, 1]),
                 id="capped-by-the-restart-budget"),
])
def test_restart_caps(bad, unready, budgets, expect):
    b = dict(restarts_per_hour=6, rollbacks_per_day=2, max_unavailable_ratio=None)
    b.update(budgets)
    p = params(pod_check(for_s=0.0), budgets=BudgetParams(**b), systemic_share=1.01)
    w = world(p, (4,), bad={f"t0-p{k}" for k in bad}, unready={f"t0-p{k}" for k in unready})
    (d,), _ = drive(w, None, [0])
    assert (code(d), sorted(int(k[-1]) for k in d.restart_pods(0))) == expect


def test_replaced_pods_pass_verification():
    p = params(pod_check(for_s=30.0))
    w = world(p, (4,), bad={"t0-p0"})
    ds, _ = drive(w, None, range(0, 106, 15))
    assert [(code(d), outcome(d)) for d in ds][2:] == [
        ("RestartFiringPods", None), ("Verifying", None), ("Verifying", None), ("Verifying", None),
        ("NoAction", "Verified"), ("NoAction", None)]


def test_a_replacement_that_fails_again_escalates_up_the_ladder_to_rollback():
    """restart-pod -> rolling-restart -> rollback to the last healthy revision -> verified."""
    p = params(pod_check(for_s=30.0), escalation=LADDER, healthy_after_s=300.0, new_revision_window_s=120.0,
               rollback_window_s=120.0)
    w = world(p, (4,), revision="1", revision_since=[T0 - 3600], replace_bad=True)

    def before(t, w):
        if t == 15:  # a release that proves healthy, then starts leaking at t=405, past its windows
            w.revision[0], w.revision_since = "2", None
        if t == 405:
            w.bad.add(w.pods[0][0])

    ds, _ = drive(w, None, range(0, 700, 15), before=before)
    acted = [(d.now - T0, Act(int(d.action[0])).word, code(d), outcome(d)) for d in ds
             if d.action[0] != Act.NONE or d.outcome[0] >= 0]
    assert acted == [(435, "restart-pod", "RestartFiringPods", None),
                     (495, "rolling-restart", "Escalated", "VerifyFailedEscalating"),
                     (555, "rollback", "Escalated", "VerifyFailedEscalating"),
                     (615, "", "NoAction", "Verified")]
    assert str(first(ds, Act.ROLLBACK).rollback_to[0]) == "1" and w.revision == ["1"]


def test_verification_failing_at_the_top_of_the_ladder_holds_until_rearmed():
    p = params(pod_check(for_s=30.0))  # no ladder
    w = world(p, (4,), replace_bad=True, bad={"t0-p0"})
    ds, st_ = drive(w, None, range(0, 200, 15), rearm=lambda t: [0] if t == 180 else None)
    trace = [(d.now - T0, code(d), outcome(d), bool(d.held[0])) for d in ds]
    assert trace[2] == (30, "RestartFiringPods", None, False)
    assert trace[6] == (90, "Held", "VerifyFailedHeld", True)
    assert all(x[1] == "Held" and x[3] for x in trace[7:12])
    assert trace[12] == (180, "RestartFiringPods", "Rearmed", False)
    assert R(int(ds[6].held_reason[0])) == R.VERIFY_FAILED_HELD


# --- budgets -------------------------------------------------------------------------------


def test_restarts_per_hour_exhausted_holds_and_rearm_waits_for_the_budget():
    p = params(pod_check(for_s=0.0), budgets=BudgetParams(2, 2, max_unavailable_pods=1), verify_window_s=15.0)
    w = world(p, (4,))

    def before(t, w):
        if t in (0, 60, 120):  # a different pod goes bad each time, a replacement is healthy
            w.bad.add(w.pods[0][int(t // 60)])

    rearm_at = {150, 3600, 3615}
    ds, _ = drive(w, None, [0, 15, 30, 60, 75, 120, 135, 150, 165, 3600, 3615],
                  rearm=lambda t: [0] if t in rearm_at else None, before=before)
    trace = [(d.now - T0, code(d), outcome(d), bool(d.held[0])) for d in ds]
    assert trace == [
        (0, "RestartFiringPods", None, False), (15, "NoAction", "Verified", False), (30, "NoAction", None, False),
        (60, "RestartFiringPods", None, False), (75, "NoAction", "Verified", False),
        (120, "RestartBudgetExhausted", None, True), (135, "Held", None, True),
        (150, "RestartBudgetExhausted", "Rearmed", True),  # re-armed, but the hour is not over
        (165, "Held", None, True),
        (3600, "RestartFiringPods", "Rearmed", False),  # the first restart left the window
        (3615, "NoAction", "Verified", False)]


def test_rollbacks_per_day_exhausted_holds():
    p = params(check("errors", action=Remedy.ROLLING_RESTART, for_s=0.0, recovered_for_s=0.0),
               budgets=BudgetParams(6, 1), healthy_after_s=60.0, verify_window_s=30.0)
    w = world(p, (2,), revision="1", revision_since=[T0 - 3600])

    def release(at: float, rev: str):
        def before(t, w):
            if t == at:
                w.revision[0], w.revision_since, w.errors[0] = rev, None, 0.5
        return before

    ds, st_ = drive(w, None, [0, 15, 30], before=release(15, "2"))
    assert code(ds[1]) == "RollbackNewRevision" and str(ds[1].rollback_to[0]) == "1"
    ds2, st_ = drive(w, st_, [60, 75, 90], before=release(75, "3"))
    assert code(ds2[1]) == "RollbackBudgetExhausted" and ds2[1].held[0]
    assert code(ds2[2]) == "Held"
    ds3, _ = drive(w, st_, [86400 + 15], rearm=lambda t: [0])
    assert code(ds3[0]) == "RollbackNewRevision" and outcome(ds3[0]) == "Rearmed"


# --- revisions -----------------------------------------------------------------------------


def _release_world(errors_after: float, action=Remedy.ROLLING_RESTART, **kw):
    p = params(check("errors", action=action, for_s=30.0), healthy_after_s=300.0, **kw)
    return p, world(p, (3,), revision="1", revision_since=[T0 - 3600])


@pytest.mark.parametrize("errors_after,expect", [
    pytest.param(0.5, "RollbackNewRevision", id="bad-release-rolls-back-to-the-last-healthy-revision"),
    pytest.param(0.01, "NoAction", id="healthy-release-is-left-alone"),
    pytest.param(0.03, "NoAction", id="release-in-the-band-does-not-fire"),
])
def test_new_revision(errors_after, expect):
    p, w = _release_world(errors_after)

    def before(t, w):
        if t == 60:
            w.revision[0], w.revision_since, w.errors[0] = "2", None, errors_after

    ds, _ = drive(w, None, range(0, 151, 15), before=before)
    codes = [code(d) for d in ds]
    assert (expect in codes) if expect != "NoAction" else set(codes) == {"NoAction"}
    if expect == "RollbackNewRevision":
        d = first(ds, Act.ROLLBACK)
        assert d.now - T0 == 90 and str(d.rollback_to[0]) == "1"
        assert d.actions(0, SimpleNamespace())[0].revision == "1"


def test_a_check_already_firing_before_the_release_is_not_blamed_on_it():
    p, w = _release_world(0.5, action=Remedy.RECORD)
    w.errors[0] = 0.5

    def before(t, w):
        if t == 60:
            w.revision[0], w.revision_since = "2", None

    ds, _ = drive(w, None, range(0, 151, 15), before=before)
    assert Act.ROLLBACK not in [Act(int(d.action[0])) for d in ds]
    assert code(ds[-1]) == "RecordOnly"


def test_the_guard_rolls_back_after_the_rollout_completed_even_once_the_revision_proved_healthy():
    p = params(check("errors", action=Remedy.ROLLING_RESTART, for_s=30.0), healthy_after_s=300.0,
               new_revision_window_s=300.0, rollback_window_s=1800.0)
    w = world(p, (3,), revision="1", revision_since=[T0 - 7200])
    w.rollout = np.array([False])

    def before(t, w):
        if t == 15:
            w.revision[0], w.revision_since, w.rollout = "2", None, np.array([True])
        if t == 600:
            w.rollout = np.array([False])
        if t == 1200:  # after the new-revision window, within the guard
            w.errors[0] = 0.5

    ds, _ = drive(w, None, range(0, 1300, 15), before=before)
    d = first(ds, Act.ROLLBACK)
    assert code(d) == "RollbackAfterRollout" and d.now - T0 == 1230
    assert str(ds[1200 // 15].state.revisions.healthy[0]) == "2"  # proven healthy at 900 s, still guarded
    assert str(d.rollback_to[0]) == "1"


def test_a_revision_rolled_back_to_is_never_blamed_so_no_second_rollback():
    p = params(check("errors", action=Remedy.ROLLBACK, for_s=30.0, recovered_for_s=30.0), healthy_after_s=300.0)
    w = world(p, (3,), revision="1", revision_since=[T0 - 3600])

    def before(t, w):
        if t == 15:
            w.revision[0], w.revision_since = "2", None
        if t == 60 or t == 135:  # errors that are not the release's fault persist after the rollback
            w.errors[0] = 0.5

    ds, _ = drive(w, None, range(0, 400, 15), before=before)
    acts = [(d.now - T0, code(d), outcome(d)) for d in ds if d.action[0] != Act.NONE or d.outcome[0] >= 0]
    assert acts == [(90, "RollbackNewRevision", None), (150, "Held", "VerifyFailedHeld")]
    assert (code(ds[-1]), bool(ds[-1].held[0])) == ("Held", True)
    assert R(int(ds[-1].held_reason[0])) == R.VERIFY_FAILED_HELD


def test_past_the_guard_a_firing_check_takes_its_own_action():
    p = params(check("errors", action=Remedy.ROLLING_RESTART, for_s=30.0), healthy_after_s=3000.0,
               new_revision_window_s=300.0, rollback_window_s=600.0)
    w = world(p, (3,), revision="1", revision_since=[T0 - 7200])

    def before(t, w):
        if t == 15:
            w.revision[0], w.revision_since = "2", None
        if t == 1200:
            w.errors[0] = 0.5

    ds, _ = drive(w, None, range(0, 1300, 15), before=before)
    assert Act.ROLLBACK not in {Act(int(d.action[0])) for d in ds}
    assert code(first(ds, Act.ROLLING_RESTART)) == "RollingRestart"


def test_a_revision_rolled_back_to_inherits_its_health_under_new_numbers():
    """Deployments renumber the revision a rollback returns to: 1 comes back as 3."""
    p, w = _release_world(0.5)

    def before(t, w):
        if t == 60:
            w.revision[0], w.revision_since, w.errors[0] = "2", None, 0.5
        if t == 105:  # the rollback (at 90) came back as revision 3
            w.revision[0] = "3"

    ds, _ = drive(w, None, range(0, 200, 15), before=before)
    rev = ds[-1].state.revisions
    assert str(rev.current[0]) == "3" and str(rev.healthy[0]) == "3" and not rev.suspect[0]


# --- overload, systemic, scaling -----------------------------------------------------------


@pytest.mark.parametrize("bad,utilization,expect", [
    pytest.param({0}, 0.5, ("RestartFiringPods", 4), id="one-bad-pod-not-overloaded-restart"),
    pytest.param({0}, 1.2, ("ScaleUpOverloaded", 5), id="one-bad-pod-overloaded-scale-up"),
    pytest.param({0, 1, 2}, 0.5, ("SystemicNoRestart", 4), id="systemic-not-overloaded-record"),
    pytest.param({0, 1, 2}, 1.2, ("ScaleUpOverloaded", 5), id="systemic-overload-scale-up-never-restarts"),
])
def test_overload_and_systemic(bad, utilization, expect):
    p = params(pod_check(for_s=0.0), overload=OverloadParams(utilization_above=1.0))
    w = world(p, (4,), bad={f"t0-p{k}" for k in bad}, utilization=np.array([utilization]))
    (d,), _ = drive(w, None, [0])
    assert (code(d), int(d.replicas[0])) == expect
    assert d.restart_pods(0) == () or expect[0] == "RestartFiringPods"


def test_scaling_side_wanting_more_counts_as_overload():
    p = params(pod_check(for_s=0.0))
    w = world(p, (4,), bad={"t0-p0"})
    (d,), _ = drive(w, None, [0], scaling=SimpleNamespace(desired=np.array([7])))
    assert (code(d), int(d.replicas[0]), bool(d.overloaded[0])) == ("ScaleUpOverloaded", 7, True)


def test_no_scale_down_during_a_rollout_with_a_real_decision():
    sp = policy(**no_limits(0.0))
    dec = decide(sp, Observation.of([5.0], [5.0], [[100.0]]), ScalingState.empty(1, sp), T0)
    assert dec.desired.tolist() == [1]
    p = params(pod_check())
    obs = HealthObservation.of([5], checks=1, rollout=[True])
    d = heal(p, obs, HealthState.empty(1, p), T0, dec)
    assert (Act(int(d.action[0])), code(d)) == (Act.NONE, "ScaleDownBlockedByRollout")
    d2 = heal(p, HealthObservation.of([5], checks=1), HealthState.empty(1, p), T0, dec)
    assert (Act(int(d2.action[0])), int(d2.replicas[0])) == (Act.SCALE, 1)


def test_health_scale_up_holds_a_floor_against_the_scaling_side():
    p = params(check("latency", action=Remedy.SCALE_UP, for_s=0.0, recovered_for_s=0.0), scale_up_hold_s=300.0)
    w = world(p, (4,), errors=0.5)
    ds, st_ = drive(w, None, [0], scaling=SimpleNamespace(desired=np.array([4])))
    assert (code(ds[0]), int(ds[0].replicas[0])) == ("ScaleUpCheck", 5)
    w.errors[0] = 0.0
    ds, _ = drive(w, st_, [15, 400], scaling=SimpleNamespace(desired=np.array([3])))
    assert code(ds[0]) == "ScaleDownBlockedByFloor" and ds[0].action[0] == Act.NONE
    assert (code(ds[1]), int(ds[1].replicas[0])) == ("Scaling", 3)


def test_records_name_every_check_and_the_outcome():
    p = params(check("errors", for_s=0.0, action=Remedy.RECORD), pod_check("mem", for_s=30.0))
    w = world(p, (2,), errors=0.5, bad={"t0-p1"})
    (d,), _ = drive(w, None, [0])
    rec = d.records("pol", ["shop/web"])[0].to_dict()
    assert rec["reason"] == "RecordOnly" and rec["trigger"] == "errors" and rec["action"] is None
    assert rec["checks"]["errors"] == dict(scope="workload", raw=0.5, smoothed=0.5, phase="firing", since=T0,
                                           firing_pods=1, pods=0)
    assert rec["checks"]["mem"]["phase"] == "pending" and rec["checks"]["mem"]["pods"] == 2


def test_state_follows_targets_through_take():
    p = params(pod_check(for_s=0.0), budgets=BudgetParams(1, 1, max_unavailable_pods=4))
    w = world(p, (2, 2), bad={"t0-p0"})
    (d,), st_ = drive(w, None, [0])
    assert st_.budgets.restarts_used(T0).tolist() == [1, 0]
    moved = st_.take(np.array([1, -1, 0]))
    assert moved.budgets.restarts_used(T0).tolist() == [0, 0, 1] and moved.size == 3


# --- properties ----------------------------------------------------------------------------

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def runs(draw, n: int = 2):
    steps = draw(st.integers(4, 14))
    return dict(
        restarts=draw(st.integers(0, 3)), rollbacks=draw(st.integers(0, 2)), max_unav=draw(st.integers(0, 2)),
        ladder=draw(st.sampled_from([(), LADDER, (Remedy.RESTART_POD, Remedy.ROLLBACK)])),
        replace_bad=draw(st.booleans()),
        pods=draw(st.lists(st.integers(1, 5), min_size=n, max_size=n)),
        gaps=draw(st.lists(st.sampled_from([15, 15, 15, 60, 900, 3600]), min_size=steps, max_size=steps)),
        bad=draw(st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=steps, max_size=steps)),
        unready=draw(st.lists(st.lists(st.integers(0, 5), max_size=2), min_size=steps, max_size=steps)),
        errors=draw(st.lists(st.sampled_from([0.0, 0.03, 0.5]), min_size=steps, max_size=steps)),
        release=draw(st.lists(st.booleans(), min_size=steps, max_size=steps)),
        rollout=draw(st.lists(st.booleans(), min_size=steps, max_size=steps)),
        desired=draw(st.lists(st.integers(-2, 2), min_size=steps, max_size=steps)),
        rearm=draw(st.lists(st.booleans(), min_size=steps, max_size=steps)),
        trim=draw(st.lists(st.booleans(), min_size=steps, max_size=steps)),
    )


def _run(r, targets=None):
    """Drive a random run; return the decisions with the observation each was made on."""
    p = params(check("errors", action=Remedy.ROLLING_RESTART, for_s=15.0, recovered_for_s=15.0),
               pod_check("mem", for_s=0.0),
               budgets=BudgetParams(r["restarts"], r["rollbacks"], max_unavailable_pods=r["max_unav"]),
               escalation=r["ladder"], healthy_after_s=60.0, verify_window_s=30.0)
    idx = list(range(len(r["pods"]))) if targets is None else targets
    w = world(p, tuple(r["pods"][i] for i in idx), revision="1", revision_since=[T0 - 3600] * len(idx),
              replace_bad=r["replace_bad"])
    state, t, out = HealthState.empty(w.n, p), 0.0, []
    for k, gap in enumerate(r["gaps"]):
        t += gap
        w.unready = set()
        for j, i in enumerate(idx):
            names = w.pods[j]
            w.bad |= {names[b % len(names)] for b in r["bad"][k] if names and (b + i) % 2 == 0}
            w.unready |= {names[u % len(names)] for u in r["unready"][k] if names and (u + i) % 3 == 0}
            w.errors[j] = r["errors"][k] if (k + i) % 2 else 0.0
            if r["release"][k] and i == 0:
                w.revision[j] = f"r{k}"
        w.revision_since = None
        w.rollout = np.array([r["rollout"][k] and (i + k) % 2 == 0 for i in idx])
        # the cluster keeps only the current revision (revisionHistoryLimit 0), or does not say
        w.listed = [[w.revision[j]] if r["trim"][k] and i != 1 else [] for j, i in enumerate(idx)]
        obs = w.observe()
        desired = np.maximum(0, obs.current + r["desired"][k])
        d = heal(p, obs, state, T0 + t, SimpleNamespace(desired=desired),
                 rearm_rows=np.array([r["rearm"][k]] * w.n))
        out.append((obs, d))
        state = d.state
        w.apply(d)
    return p, out


@SETTINGS
@given(runs())
def test_budgets_are_never_exceeded(r):
    p, out = _run(r)
    b = p.budgets
    restarts, rollbacks = [[] for _ in r["pods"]], [[] for _ in r["pods"]]
    for obs, d in out:
        now = d.now
        for i in range(obs.current.size):
            act = Act(int(d.action[i]))
            if act is Act.RESTART_POD:
                pods = d.restart_pods(i)
                restarts[i].append((now, len(pods)))
                # ready pods restarted never push unavailability past max-unavailable
                ready = {str(k) for k, row, ok in zip(obs.pods.keys, obs.pods.row, obs.pods.ready) if row == i and ok}
                unavailable = max(0, int(obs.current[i]) - int(obs.ready[i]))
                assert len(ready & set(pods)) <= max(0, int(b.max_unavailable(obs.current[i:i + 1])[0]) - unavailable)
            elif act is Act.ROLLING_RESTART:
                restarts[i].append((now, 1))
            elif act is Act.ROLLBACK:
                rollbacks[i].append((now, 1))
            assert sum(c for at, c in restarts[i] if now - at < 3600) <= b.restarts_per_hour
            assert sum(c for at, c in rollbacks[i] if now - at < 86400) <= b.rollbacks_per_day


@SETTINGS
@given(runs())
def test_one_action_per_target_and_no_scale_down_during_a_rollout(r):
    _, out = _run(r)
    for obs, d in out:
        for i in range(obs.current.size):
            kinds = {a.kind for a in d.actions(i, SimpleNamespace())}
            assert len(kinds) <= 1
            if d.action[i] == Act.SCALE and obs.rollout[i]:
                assert d.replicas[i] > obs.current[i]
            if d.reason[i] in (R.HELD, R.VERIFYING) or d.held[i]:
                assert not d.from_health[i]  # an open circuit or window: no health action
            listed = [str(v) for v in obs.revisions[i] if v] if obs.revisions is not None else []
            if d.action[i] == Act.ROLLBACK and listed:  # only to a revision the cluster still has
                assert str(d.rollback_to[i]) in listed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs(n=3))
def test_heal_batched_equals_row_by_row(r):
    _, batch = _run(r)
    for i in range(3):
        _, alone = _run(r, targets=[i])
        for (_, db), (_, da) in zip(batch, alone):
            assert (db.action[i], db.reason[i], db.outcome[i], db.replicas[i], db.held[i], db.rollback_gone[i]) == \
                   (da.action[0], da.reason[0], da.outcome[0], da.replicas[0], da.held[0], da.rollback_gone[0])
            assert len(db.restart_pods(i)) == len(da.restart_pods(0))


def test_a_stuck_rollout_delays_verification_only_up_to_rollout_wait():
    p = params(check("errors", action=Remedy.ROLLBACK, for_s=0.0), healthy_after_s=60.0, verify_window_s=60.0,
               rollout_wait_s=120.0)
    w = world(p, (2,), revision="1", revision_since=[T0 - 3600])

    def before(t, w):
        if t == 15:
            w.revision[0], w.revision_since, w.errors[0] = "2", None, 0.5
        if t == 30:  # the rollback's rollout never finishes, and the errors stay
            w.rollout, w.errors[0] = np.array([True]), 0.5

    ds, _ = drive(w, None, range(0, 300, 15), before=before)
    trace = {d.now - T0: (code(d), outcome(d)) for d in ds}
    assert trace[15] == ("RollbackNewRevision", None)
    assert all(trace[t] == ("Verifying", None) for t in range(30, 195, 15))
    assert trace[195] == ("Held", "VerifyFailedHeld")  # 15 + 60 s window + 120 s rollout wait


def _errors_after_rollback(low: float, low_at: float, then: float | None = None, then_at: float = 1e9):
    """A release at 15 s failing 0.5 until ``low_at``, ``low`` from there, ``then`` from ``then_at``."""
    def before(t, w):
        if t == 15:
            w.revision[0], w.revision_since = "2", None
        if t >= 15:
            w.errors[0] = 0.5 if t < low_at else (low if t < then_at else then)
    return before


@pytest.mark.parametrize("before,expect", [
    # the rollback at 45 s opens a window to 105 s; the reading (a query's range, the rollback's
    # own rollout) comes back under `recovered` only at 90 s, 15 s into its 30 s recovered `for`
    pytest.param(_errors_after_rollback(0.01, 90), (120, "Verified", False),
                 id="clearing-at-the-deadline-is-given-its-recovered-for"),
    pytest.param(_errors_after_rollback(0.03, 90), (105, "VerifyFailedHeld", True),
                 id="in-the-hysteresis-band-at-the-deadline-fails"),
    pytest.param(_errors_after_rollback(0.01, 90, then=0.5, then_at=110), (120, "VerifyFailedHeld", True),
                 id="a-clear-that-breaks-off-fails"),
    pytest.param(_errors_after_rollback(0.01, 90, then=np.nan, then_at=105), (120, "VerifyFailedHeld", True),
                 id="a-clear-frozen-by-missing-data-is-judged-when-its-for-ends"),
    pytest.param(_errors_after_rollback(0.01, 60), (90, "Verified", False),
                 id="cleared-before-the-deadline-passes-at-once"),
])
def test_a_trigger_clearing_at_the_deadline_is_judged_when_its_recovery_ends(before, expect):
    p = params(check("errors", action=Remedy.ROLLBACK, for_s=30.0, recovered_for_s=30.0), healthy_after_s=60.0,
               verify_window_s=60.0)
    w = world(p, (2,), revision="1", revision_since=[T0 - 3600])
    ds, _ = drive(w, None, range(0, 240, 15), before=before)
    assert code(ds[3]) == "RollbackNewRevision"
    judged = [(d.now - T0, outcome(d), bool(d.held[0])) for d in ds if outcome(d) is not None]
    assert judged[0] == expect


def _release_during_window(at: float | None, revision: str = "4"):
    """A bad release at 15 s (rolled back at 45 s); at ``at`` someone else puts ``revision`` in
    place (a deploy, a kubectl rollout undo back to the bad release): it fails 0.5 too."""
    def before(t, w):
        if t == 15:
            w.revision[0], w.revision_since = "2", None
        if at is not None and t == at:
            w.revision[0] = revision
        if t >= 15:
            w.errors[0] = 0.0 if w.revision[0] == "1" else 0.5
    return before


@pytest.mark.parametrize("before,expect", [
    pytest.param(_release_during_window(75),
                 [(45, "rollback", "RollbackNewRevision", None), (75, "rollback", "RollbackCheck", "VerifySuperseded"),
                  (120, "", "NoAction", "Verified")],
                 id="a-release-by-someone-else-in-the-window-ends-it-and-is-judged-at-once"),
    pytest.param(_release_during_window(None),
                 [(45, "rollback", "RollbackNewRevision", None), (90, "", "NoAction", "Verified")],
                 id="our-own-rollback-changes-the-revision-and-is-verified"),
])
def test_a_revision_someone_else_puts_in_place_supersedes_the_verification(before, expect):
    p = params(check("errors", action=Remedy.ROLLBACK, for_s=30.0, recovered_for_s=30.0), healthy_after_s=60.0,
               verify_window_s=60.0)
    w = world(p, (2,), revision="1", revision_since=[T0 - 3600])
    ds, _ = drive(w, None, range(0, 240, 15), before=before)
    acted = [(d.now - T0, Act(int(d.action[0])).word, code(d), outcome(d)) for d in ds
             if d.action[0] != Act.NONE or d.outcome[0] >= 0]
    assert acted == expect
    assert not any(d.held[0] for d in ds)


def test_pods_without_data_are_never_restarted():
    p = params(pod_check(for_s=0.0))
    w = world(p, (3,))
    obs = w.observe()
    obs.pods.values[:, 0] = np.nan
    d = heal(p, obs, HealthState.empty(1, p), T0)
    assert (code(d), d.restart_pods(0)) == ("NoAction", ())
