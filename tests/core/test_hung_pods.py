"""Hung pods (controller/core/health/hung.py): a pod not Ready past its start-up for longer than a
hung check's notReadyFor, while most of its revision's peers are Ready, is restarted; a readiness
outage (most pods not Ready) fires nothing and escalates nothing.

Rows at fixed times: 15 s cycles from T0 to ``until``; a hung check with notReadyFor 2m and a
start-up allowance of 5m; pods created an hour before T0 unless said; "not Ready since" is the
pod's Ready condition's lastTransitionTime.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.hung import hung_seconds, most_peers_ready
from controller.core.health.params import Act, BudgetParams, CheckParams, Direction, HealthParams, Remedy, Scope
from tests.core.healing import T0, pod_check

OLD = T0 - 3600.0


def hung_check(action: Remedy = Remedy.RESTART_POD, not_ready_for_s: float = 120.0,
               startup_s: float = 300.0) -> CheckParams:
    """As the policy compiles ``hung: {notReadyFor: 2m, startup: 5m}`` (controller/policy/compile.py)."""
    return CheckParams("hung-pod", Scope.POD, Direction.ABOVE, not_ready_for_s, 0.0, not_ready_for_s, 0.0, action,
                       hung_startup_s=startup_s)


def policy(*checks: CheckParams, escalation=(Remedy.ROLLING_RESTART, Remedy.ROLLBACK)) -> HealthParams:
    return HealthParams.of(checks or (hung_check(),), escalation=tuple(escalation),
                           budgets=BudgetParams(restarts_per_hour=6, rollbacks_per_day=2, max_unavailable_ratio=0.25))


def pods(n: int = 5, not_ready: dict | None = None, born: dict | None = None, new: set | None = None,
         running: dict | None = None) -> dict:
    """web-0 .. web-{n-1}: not_ready {name: since (epoch s)}, born {name: epoch s}, new: the pods on
    the new revision (None: revisions unknown), running {name: bool}."""
    return dict(names=[f"web-{k}" for k in range(n)], not_ready=not_ready or {}, born=born or {}, new=new,
                running=running or {})


def observe(p: HealthParams, world: dict, rollout: bool = False) -> HealthObservation:
    names, c = world["names"], len(p.checks)
    ready = [n not in world["not_ready"] for n in names]
    since = [world["not_ready"].get(n, np.nan) for n in names]
    table = PodTable.of([0] * len(names), [f"default/{n}" for n in names], np.zeros((len(names), c)), ready=ready,
                        checks=c, born=[world["born"].get(n, OLD) for n in names],
                        new_revision=None if world["new"] is None else [n in world["new"] for n in names],
                        not_ready_since=since, running=[world["running"].get(n, True) for n in names])
    return HealthObservation.of([len(names)], [sum(ready)], checks=c, revision=["web-2"], pods=table,
                                rollout=[rollout])


def run(p: HealthParams, world: dict, until_s: float, rollout: bool = False) -> list:
    """Every cycle's record, 15 s apart from T0; the world does not change (a restart is not applied)."""
    state, out = HealthState.empty(1, p), []
    for t in np.arange(0.0, until_s + 1.0, 15.0):
        d = heal(p, observe(p, world, rollout), state, T0 + t)
        state = d.state_after(False)  # nothing applied: the same pods, cycle after cycle
        out.append((t, d.record(0, "p", "Deployment/default/web")))
    return out


def first_action(records: list):
    return next(((t, r) for t, r in records if r.action), (None, None))


ROWS = [
    pytest.param(pods(not_ready={"web-3": T0}), False, 300.0,
                 (135.0, "restart-pod", "RestartHungPod", ["default/web-3"]), id="one-hung-pod-among-five-restarted"),
    pytest.param(pods(not_ready={f"web-{k}": T0 for k in range(5)}), False, 900.0,
                 (None, None, None, []), id="all-five-not-ready-an-outage-no-restart"),
    pytest.param(pods(not_ready={f"web-{k}": T0 for k in range(3)}), False, 900.0,
                 (None, None, None, []), id="three-of-five-not-ready-most-peers-not-ready-no-restart"),
    pytest.param(pods(not_ready={"web-4": T0 - 10.0}, born={"web-4": T0 - 10.0}), False, 240.0,
                 (None, None, None, []), id="a-starting-pod-within-its-startup-is-not-hung"),
    pytest.param(pods(not_ready={"web-4": T0 - 10.0}, born={"web-4": T0 - 10.0}), False, 600.0,
                 (420.0, "restart-pod", "RestartHungPod", ["default/web-4"]),
                 id="a-pod-never-ready-past-startup-plus-not-ready-for-restarted"),
    pytest.param(pods(not_ready={"web-3": T0}, running={"web-3": False}), False, 600.0,
                 (None, None, None, []), id="a-pending-or-crash-looping-pod-is-not-hung"),
    pytest.param(pods(n=4, not_ready={"web-2": T0, "web-3": T0}), False, 300.0,
                 (135.0, "restart-pod", "RestartHungPod", ["default/web-2", "default/web-3"]),
                 id="two-hung-of-four-restarted-not-systemic"),
    pytest.param(pods(n=6, not_ready={"web-5": T0}, new={"web-3", "web-4", "web-5"}), True, 300.0,
                 (135.0, "restart-pod", "RestartHungPod", ["default/web-5"]),
                 id="hung-pod-of-the-new-revision-during-a-rollout-restarted"),
    pytest.param(pods(n=6, not_ready={"web-0": T0}, new={"web-3", "web-4", "web-5"}), True, 300.0,
                 (None, None, None, []), id="hung-pod-of-the-old-revision-waits-for-the-rollout"),
    pytest.param(pods(n=6, not_ready={"web-4": T0, "web-5": T0}, new={"web-3", "web-4", "web-5"}), True, 300.0,
                 (None, None, None, []), id="most-new-revision-pods-not-ready-a-bad-release-not-hung"),
    pytest.param(pods(n=1, not_ready={"web-0": T0}), False, 600.0,
                 (None, None, None, []), id="a-pod-alone-has-no-peers-never-hung"),
]


@pytest.mark.parametrize("world, rollout, until_s, expected", ROWS)
def test_hung_pods_table(world, rollout, until_s, expected):
    records = run(policy(), world, until_s, rollout)
    t, r = first_action(records)
    got = (t, r.action, r.reason, list(r.restart_pods)) if r else (None, None, None, [])
    assert got == expected, [(t, x.reason, x.checks[0].phase) for t, x in records]
    assert not any(x.systemic for _, x in records)
    assert not any(x.action in ("rolling-restart", "rollback") for _, x in records)


def test_the_hung_pod_of_a_new_revision_during_a_rollout_is_not_made_to_wait():
    """Named apart: restarts otherwise wait for a rollout (RolloutInProgress) until it is done."""
    records = run(policy(), pods(n=6, not_ready={"web-0": T0}, new={"web-3", "web-4", "web-5"}), 300.0, True)
    assert {r.reason for t, r in records if t >= 135.0} == {"RolloutInProgress"}


def test_a_readiness_outage_neither_fires_nor_escalates_where_a_per_pod_not_ready_check_does():
    """The outage row against what the shipped workaround (a per-pod not-Ready query check) does with
    the same pods: every pod fires, which is systemic (a rolling restart of the whole workload)."""
    outage = pods(not_ready={f"web-{k}": T0 for k in range(5)})
    hung = run(policy(), outage, 900.0)
    assert {r.checks[0].phase for _, r in hung} == {"ok"} and {r.reason for _, r in hung} == {"NoAction"}
    query = policy(pod_check("not-ready", for_s=120.0))
    p, state = query, HealthState.empty(1, query)
    for t in np.arange(0.0, 136.0, 15.0):
        obs = observe(p, outage)
        obs.pods.values[:, 0] = (~obs.pods.ready).astype(float)  # kube_pod_status_ready{condition="false"}
        d = heal(p, obs, state, T0 + t)
        state = d.state_after(False)
    record = d.record(0, "p", "Deployment/default/web")
    assert (record.action, record.reason, record.systemic) == ("rolling-restart", "SystemicNoRestart", True)


HUNG_SECONDS = [
    # pods: (ready, not ready since, born, running); startup 300 s; now = T0
    pytest.param([(False, T0 - 200, OLD, True)] + [(True, np.nan, OLD, True)] * 2, [200.0, 0.0, 0.0],
                 id="hung-200s-peers-ready"),
    pytest.param([(False, T0 - 200, T0 - 350, True)] + [(True, np.nan, OLD, True)] * 2, [50.0, 0.0, 0.0],
                 id="counted-from-the-end-of-startup"),
    pytest.param([(False, np.nan, T0 - 400, True)] + [(True, np.nan, OLD, True)] * 2, [100.0, 0.0, 0.0],
                 id="transition-unknown-counts-from-creation"),
    pytest.param([(False, T0 - 200, OLD, True), (False, T0 - 200, OLD, True), (True, np.nan, OLD, True)],
                 [0.0, 0.0, 0.0], id="one-of-two-peers-ready-is-not-most"),
]


@pytest.mark.parametrize("rows, expected", HUNG_SECONDS)
def test_hung_seconds(rows, expected):
    ready, since, born, running = map(list, zip(*rows))
    table = PodTable.of([0] * len(rows), [f"p{k}" for k in range(len(rows))], np.zeros((len(rows), 0)), ready=ready,
                        born=born, not_ready_since=since, running=running)
    got = hung_seconds(table, np.full(len(rows), T0), [300.0], T0)
    assert got[:, 0].tolist() == pytest.approx(expected)


def test_peers_are_counted_per_target_and_revision_and_batched_equals_row_by_row():
    # target 0: 4 old pods (1 not Ready), 2 new (1 not Ready); target 1: 3 pods, 2 not Ready
    row = [0, 0, 0, 0, 0, 0, 1, 1, 1]
    ready = [False, True, True, True, False, True, False, False, True]
    new = [False] * 4 + [True] * 2 + [False] * 3
    table = PodTable.of(row, [f"p{k}" for k in range(9)], np.zeros((9, 0)), ready=ready, new_revision=new)
    both = most_peers_ready(table)
    assert both.tolist() == [True, True, True, True, True, False, False, False, False]
    for target in (0, 1):
        rows = np.flatnonzero(np.asarray(row) == target)
        alone = PodTable.of([0] * rows.size, [f"p{k}" for k in rows], np.zeros((rows.size, 0)),
                            ready=np.asarray(ready)[rows], new_revision=np.asarray(new)[rows])
        assert most_peers_ready(alone).tolist() == both[rows].tolist()


def test_a_hung_pod_soon_after_a_release_is_restarted_not_blamed_on_the_release():
    """A check that begins within the new-revision window of a release blames it (a rollback to the
    last healthy revision); a hung pod, whose revision's other pods are Ready, is not the release's."""
    p = policy()
    world = pods(not_ready={"web-3": T0 + 60.0}, new={f"web-{k}" for k in range(5)})
    state = HealthState.empty(1, p)
    for t in np.arange(0.0, 301.0, 15.0):
        revision = "web-1" if t < 30 else "web-2"  # web-2 released at T0+30, its rollout done at once
        ready = [n not in world["not_ready"] or T0 + t < world["not_ready"][n] for n in world["names"]]
        table = PodTable.of([0] * 5, [f"default/{n}" for n in world["names"]], np.zeros((5, 1)), ready=ready, checks=1,
                            born=[OLD] * 5, new_revision=[True] * 5, not_ready_since=[T0 + 60.0 if not r else np.nan
                                                                                      for r in ready])
        obs = HealthObservation.of([5], [sum(ready)], checks=1, revision=[revision], pods=table, rollout=[False],
                                   revision_since=[T0 - 10_000.0], revisions=[["web-1", "web-2"]])
        d = heal(p, obs, state, T0 + t)
        state = d.state
        if d.action[0] != Act.NONE:
            break
    record = d.record(0, "p", "Deployment/default/web")
    assert (t, record.action, record.reason, list(record.restart_pods)) == (
        195.0, "restart-pod", "RestartHungPod", ["default/web-3"])


def test_a_hung_pod_restart_is_bounded_by_the_restart_budget():
    """No budget of its own: restartsPerHour holds it as any restart (held, HealingHeld), with its own
    reason: nothing stronger follows a hung pod's restarts."""
    p = HealthParams.of((hung_check(),), budgets=BudgetParams(restarts_per_hour=0, rollbacks_per_day=2,
                                                              max_unavailable_ratio=0.25))
    records = run(p, pods(not_ready={"web-3": T0}), 300.0)
    assert first_action(records) == (None, None)
    assert [(t, r.reason, r.held) for t, r in records if t >= 135.0][0] == (135.0, "HungPodRestartsExhausted", True)


# --- a failed verification of a hung-pod restart -------------------------------------------------
#
# The pods are replaced as a restart would replace them: the restarted pod goes and a new one comes
# (created now, not Ready: it hangs again, or Ready once started: cured). Start-up 30 s and notReadyFor
# 60 s, so a replacement that hangs fires 105 s after its restart, well inside a 300 s verification
# window (the window of a policy whose other checks have a `for` of 2m30s).

def restarting_policy(*extra: CheckParams, restarts_per_hour: int = 6) -> HealthParams:
    return HealthParams.of((hung_check(not_ready_for_s=60.0, startup_s=30.0),) + extra,
                           escalation=(Remedy.ROLLING_RESTART, Remedy.ROLLBACK), verify_window_s=300.0,
                           budgets=BudgetParams(restarts_per_hour=restarts_per_hour, rollbacks_per_day=2,
                                                max_unavailable_ratio=0.25))


def drive(p: HealthParams, hung: set, bad: set, cured: bool, until_s: float, decisions: list | None = None) -> list:
    """Cycles 15 s apart from T0 with restarts applied, 5 pods (web-0 .. web-4): ``hung`` not Ready
    since T0, ``bad`` report 1.0 on every query check; a replacement inherits its pod's fault unless
    ``cured`` (then Ready from its start-up on). The revision is known healthy (two rollback targets
    listed). Returns what each cycle said: (t, action, reason, outcome, held, held_reason); each cycle's
    HealingDecision is appended to ``decisions``."""
    names = [f"web-{k}" for k in range(5)]
    born = {n: OLD for n in names}
    faulty = {n: (n in hung, n in bad) for n in names}
    state, out = HealthState.empty(1, p), []
    for t in np.arange(0.0, until_s + 1.0, 15.0):
        now = T0 + t
        stuck = [faulty[n][0] and not (cured and born[n] > OLD and now - born[n] >= 30.0) for n in names]
        table = PodTable.of([0] * 5, [f"default/{n}" for n in names],
                            np.asarray([[0.0] + [1.0 if faulty[n][1] else 0.0] * (len(p.checks) - 1) for n in names]),
                            ready=[not s for s in stuck], checks=len(p.checks), born=[born[n] for n in names],
                            not_ready_since=[max(T0, born[n]) if s else np.nan for n, s in zip(names, stuck)])
        obs = HealthObservation.of([5], [5 - sum(stuck)], checks=len(p.checks), revision=["web-2"], pods=table,
                                   revision_since=[T0 - 10_000.0], revisions=[["web-1", "web-2"]])
        d = heal(p, obs, state, now)
        state = d.state
        if decisions is not None:
            decisions.append(d)
        r = d.record(0, "p", "Deployment/default/web")
        out.append((t, r.action, r.reason, r.outcome, r.held, r.held_reason))
        for key in r.restart_pods:  # the replacement: a new pod, created now, with its pod's fault
            old = key.split("/", 1)[1]
            new = f"{old.split('.')[0]}.{int(t)}"
            names[names.index(old)] = new
            born[new], faulty[new] = now, faulty.pop(old)
        if r.action == "rolling-restart":  # every pod replaced, each with its fault
            born = {n: now for n in names}
    return out


def said(rows: list) -> list:
    """The cycles that did or concluded something, or held."""
    return [row for row in rows if row[1] or row[3] or row[4]][:8]


AGAIN_ROWS = [
    pytest.param(restarting_policy(), {"web-3"}, set(), False, 700.0,
                 [(75.0, "restart-pod", "RestartHungPod", None, False, None),
                  (375.0, "restart-pod", "RestartHungPod", "HungPodHungAgain", False, None),
                  (675.0, "restart-pod", "RestartHungPod", "HungPodHungAgain", False, None)],
                 id="replacement-hangs-again-another-pod-restart-not-a-rolling-restart"),
    pytest.param(restarting_policy(restarts_per_hour=2), {"web-3"}, set(), False, 900.0,
                 [(75.0, "restart-pod", "RestartHungPod", None, False, None),
                  (375.0, "restart-pod", "RestartHungPod", "HungPodHungAgain", False, None),
                  (675.0, None, "HungPodRestartsExhausted", "HungPodHungAgain", True, "HungPodRestartsExhausted"),
                  (690.0, None, "Held", None, True, "HungPodRestartsExhausted")],
                 id="restart-budget-spent-held-with-its-own-reason-no-rollback"),
    pytest.param(restarting_policy(), {"web-3"}, set(), True, 400.0,
                 [(75.0, "restart-pod", "RestartHungPod", None, False, None),
                  (375.0, None, "NoAction", "Verified", False, None)],
                 id="replacement-ready-verified"),
    pytest.param(restarting_policy(pod_check("mem", for_s=150.0)), set(), {"web-1"}, False, 500.0,
                 [(150.0, "restart-pod", "RestartFiringPods", None, False, None),
                  (450.0, "rolling-restart", "Escalated", "VerifyFailedEscalating", False, None)],
                 id="a-non-hung-check-beside-it-still-escalates"),
]


@pytest.mark.parametrize("p, hung, bad, cured, until_s, expected", AGAIN_ROWS)
def test_a_hung_pod_restart_that_fails_is_retried_never_escalated(p, hung, bad, cured, until_s, expected):
    rows = drive(p, hung, bad, cured, until_s)
    got = said(rows)
    assert got[:len(expected)] == expected, got
    if hung:
        assert not any(row[1] in ("rolling-restart", "rollback") for row in rows)
        assert "VerifyFailedEscalating" not in {row[3] for row in rows}


# --- what the records say of a hung check's pods -------------------------------------------------

HUNG_RECORD_ROWS = [
    pytest.param(pods(not_ready={f"web-{k}": T0 - 600.0 for k in range(4)}), False,
                 {"past": 4, "not_ready_for": 120.0, "held_back": 4, "revision": "web-2"},
                 id="four-of-five-past-notReadyFor-held-back-an-outage"),
    pytest.param(pods(not_ready={f"web-{k}": T0 - 600.0 for k in range(2)}, running={"web-1": False}), False,
                 {"past": 1, "not_ready_for": 120.0, "held_back": 0},
                 id="one-hung-one-not-running-not-counted"),
    pytest.param(pods(n=6, not_ready={"web-0": T0 - 600.0, "web-1": T0 - 600.0, "web-4": T0 - 600.0},
                      new={"web-3", "web-4", "web-5"}), True,
                 {"past": 3, "not_ready_for": 120.0, "held_back": 2},
                 id="the-old-revisions-pods-held-back-during-a-rollout-no-revision-named"),
    pytest.param(pods(not_ready={"web-3": T0 - 60.0}), False, None, id="inside-notReadyFor-nothing-said"),
    pytest.param(pods(), False, None, id="all-ready-nothing-said"),
]


@pytest.mark.parametrize("world, rollout, expected", HUNG_RECORD_ROWS)
def test_the_record_counts_the_pods_past_notReadyFor_and_those_the_peer_rule_held_back(world, rollout, expected):
    p = policy()
    d = heal(p, observe(p, world, rollout), HealthState.empty(1, p), T0)
    check = d.record(0, "p", "Deployment/default/web").to_dict()["checks"]["hung-pod"]
    assert check.get("hung") == expected
    assert ("hung" in check) == (expected is not None)  # compact: only when the check has something to say


def test_the_hung_counts_are_the_same_evaluation_as_the_checks_values():
    """One evaluation (hung.evaluate_hung): a pod counted hung is one whose value is past notReadyFor."""
    from controller.core.health.hung import evaluate_hung
    world = pods(n=6, not_ready={"web-0": T0 - 600.0, "web-1": T0 - 600.0, "web-4": T0 - 130.0},
                 new={"web-3", "web-4", "web-5"})
    table = observe(policy(), world).pods
    found = evaluate_hung(table, np.full(6, T0), [300.0], [120.0], T0, 1)
    assert found.hung.tolist() == [int((found.seconds[:, 0] > 120.0).sum())] == [1]
    assert (found.past.tolist(), found.held_back.tolist()) == ([[3]], [[2]])


# --- the verification window of a hung-pod restart, with the shipped policy's numbers ------------
#
# policies/setpoint-healing.yaml: hung {notReadyFor: 2m, startup: 5m}, 15 s cycles, every other
# `for` at most 1m (verify window 120 s). web-3 hangs at T0, fires at 135 s (past 2m) and is
# restarted; its replacement (created at 135 s) can only be judged hung 5m + 2m later, at 555 s, and
# is seen firing at 570 s: the window is 300 + 120 + 15 = 435 s, so the verdict is at 135 + 435.

def shipped_hung_policy() -> HealthParams:
    return HealthParams.of((hung_check(not_ready_for_s=120.0, startup_s=300.0),),
                           escalation=(Remedy.RESTART_POD, Remedy.ROLLING_RESTART, Remedy.ROLLBACK),
                           verify_window_s=120.0, interval_s=15.0,
                           budgets=BudgetParams(restarts_per_hour=6, rollbacks_per_day=2, max_unavailable_ratio=0.25))


SHIPPED_WINDOW_ROWS = [
    pytest.param(False, 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, False, None),
                  (570.0, "restart-pod", "RestartHungPod", "HungPodHungAgain", False, None)],
                 id="replacement-hangs-again-HungPodHungAgain-at-570s"),
    pytest.param(True, 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, False, None),
                  (570.0, None, "NoAction", "Verified", False, None)],
                 id="replacement-ready-verified-at-570s"),
]


@pytest.mark.parametrize("cured, until_s, expected", SHIPPED_WINDOW_ROWS)
def test_a_hung_pod_restart_is_verified_over_the_replacements_startup_and_notReadyFor(cured, until_s, expected):
    """A 120 s window passed every hung-pod restart (Verified at 255 s) before its replacement could
    hang, and a replacement that hung again was a fresh RestartHungPod, never HungPodHungAgain."""
    got = said(drive(shipped_hung_policy(), {"web-3"}, set(), cured, until_s))
    assert got == expected, got


def test_the_shipped_policy_gives_its_hung_check_a_window_from_startup_and_notReadyFor():
    from controller.bundled import bundled_policy
    from controller.policy import load_policies
    (policy,) = load_policies([bundled_policy("setpoint-healing.yaml")])
    health = policy.health_params
    windows = dict(zip(health.check_names, health.verify_windows_s.tolist()))
    assert (health.verify_window_s, windows["hung-pod"], windows["memory"]) == (120.0, 435.0, 120.0)
