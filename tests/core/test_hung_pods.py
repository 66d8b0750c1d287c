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
    """No budget of its own: restartsPerHour holds it as any restart (held, HealingHeld)."""
    p = HealthParams.of((hung_check(),), budgets=BudgetParams(restarts_per_hour=0, rollbacks_per_day=2,
                                                              max_unavailable_ratio=0.25))
    records = run(p, pods(not_ready={"web-3": T0}), 300.0)
    assert first_action(records) == (None, None)
    assert [(t, r.reason, r.held) for t, r in records if t >= 135.0][0] == (135.0, "RestartBudgetExhausted", True)
