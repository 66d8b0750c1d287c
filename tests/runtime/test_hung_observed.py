"""The hung-pod check through the shell (controller/runtime/healing.py): the pod list's Ready
condition, its lastTransitionTime and whether the pod runs feed the core; the check sends no query;
a hung pod is not taken for a pod still starting (overload), so a health-only policy restarts it
instead of waiting for it; `setpoint explain` says why.

Fixed times: T0; pods created an hour before unless said.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.heal import HealthState, heal
from controller.model import PodStatus, TargetRef, TargetStatus
from controller.ports import ClusterView
from controller.runtime.healing import HealthQueries, observe_health
from tests.policy.helpers import load_one, policy_with

T0 = 1_700_000_000.0
OLD = T0 - 3600.0
DEP = TargetRef("default", "web", "Deployment")

HEALTH_ONLY = """\
  targets: {namespace: default, name: web}
  health:
    checks:
      - name: hung-pod
        hung: {notReadyFor: 2m, startup: 5m}
        action: restart-pod
"""


class NoQueries:
    """A metrics source for a policy that must send none: any query fails the test."""

    def query(self, *args, **kwargs):
        raise AssertionError(f"a hung check sent a query: {args}")


def pod(name: str, ready: bool = True, since: float | None = None, born: float = OLD, phase: str = "Running",
        waiting: str = "") -> PodStatus:
    return PodStatus(name, phase=phase, ready=ready, ready_transition_time=since, created_time=born,
                     start_time=born, revision="7", waiting=waiting)


def observed(pods: list[PodStatus], now: float):
    loaded = load_one(policy_with(HEALTH_ONLY))
    params = loaded.health_params
    status = TargetStatus(DEP, spec_replicas=len(pods), status_replicas=len(pods),
                          ready_replicas=sum(1 for p in pods if p.ready), revision="7", pods=tuple(pods))
    view = ClusterView.from_statuses([DEP], {DEP: status})
    sent: list[str] = []
    obs = observe_health(HealthQueries(params, ("",)), NoQueries(), [DEP], view, now, [], None, sent)
    return params, obs, sent


ROWS = [
    pytest.param([pod(f"web-{k}") for k in range(4)] + [pod("web-4", ready=False, since=T0 - 200.0)],
                 False, ("restart-pod", "RestartHungPod", ["default/web-4"]), id="hung-200s-restarted-not-overload"),
    pytest.param([pod(f"web-{k}") for k in range(4)] + [pod("web-4", ready=False, since=T0 - 60.0, born=T0 - 60.0)],
                 True, (None, "NoAction", []), id="a-pod-starting-is-still-load"),
    pytest.param([pod(f"web-{k}") for k in range(4)] + [pod("web-4", ready=False, since=T0 - 900.0, phase="Pending")],
                 True, (None, "NoAction", []), id="a-pending-pod-is-not-hung"),
    pytest.param([pod(f"web-{k}", ready=False, since=T0 - 900.0) for k in range(5)],
                 True, (None, "NoAction", []), id="a-readiness-outage-is-not-hung"),
]


@pytest.mark.parametrize("pods, overloaded, expected", ROWS)
def test_the_pod_list_feeds_the_hung_check(pods, overloaded, expected):
    params, obs, sent = observed(pods, T0)
    assert sent == []
    d = heal(params, obs, HealthState.empty(1, params), T0)
    assert d.overloaded.tolist() == [overloaded]  # the core's signal, from its own evaluation of the check
    r = d.record(0, "p", DEP.key)
    assert (r.action, r.reason, list(r.restart_pods)) == expected


def test_the_columns_read_from_the_pods():
    pods = [pod("web-0"), pod("web-1", ready=False, since=T0 - 30.0), pod("web-2", ready=False, phase="Pending"),
            pod("web-3", ready=False, waiting="CrashLoopBackOff")]
    _, obs, _ = observed(pods, T0)
    table = obs.pods
    assert np.array_equal(table.not_ready_since, [np.nan, T0 - 30.0, np.nan, np.nan], equal_nan=True)
    assert table.running.tolist() == [True, True, False, False]


def test_explain_says_the_pod_is_hung_not_an_outage():
    from controller.cli.records import _format_record

    health = {"action": "restart-pod", "reason": "RestartHungPod", "trigger": "hung-pod",
              "restart_pods": ["default/web-4"], "checks": {"hung-pod": {"raw": 200.0, "phase": "firing"}}}
    record = {"target": "default/web", "at": 705.0, "current": 5, "ready": 4, "metrics": {}, "combined": 5,
              "stabilized": 5, "limited": 5, "desired": 5, "reason": "NoAction", "health": health}
    assert _format_record(record).splitlines()[1:] == [
        "    health: restart-pod [RestartHungPod] trigger hung-pod",
        "    hung: web-4 not Ready past start-up (the longest 200s) while most pods of their revision are Ready: a "
        "stuck process, restarted; a readiness outage (most pods not Ready: a dependency down) restarts none"]


def metric(proposal: float, valid: bool = True):
    """What the overload signal reads of a scaling decision: (N, M) proposals and valid."""
    from types import SimpleNamespace
    return SimpleNamespace(proposals=np.array([[proposal]]), valid=np.array([[valid]]))


FIVE = [pod(f"web-{k}") for k in range(4)]
# name: (pods, decision, withheld). The hung rule is evaluated once, in the core (heal), and the overload
# signal fed from it; these rows hold its answer equal to the shell's own second evaluation before
EQUAL_ROWS = {
    "a hung pod, health-only": (FIVE + [pod("web-4", ready=False, since=T0 - 200.0)], None, None),
    "a pod 1 s past notReadyFor": (FIVE + [pod("web-4", ready=False, since=T0 - 121.0)], None, None),
    "at notReadyFor exactly: not hung": (FIVE + [pod("web-4", ready=False, since=T0 - 120.0)], None, None),
    "a pod starting": (FIVE + [pod("web-4", ready=False, since=T0 - 60.0, born=T0 - 60.0)], None, None),
    "a crash-looping pod": (FIVE + [pod("web-4", ready=False, since=T0 - 900.0, waiting="CrashLoopBackOff")], None,
                            None),
    "an outage": ([pod(f"web-{k}", ready=False, since=T0 - 900.0) for k in range(5)], None, None),
    "a hung pod, the metric asking for no more": (FIVE + [pod("web-4", ready=False, since=T0 - 200.0)], metric(5),
                                                  [0.0]),
    "a hung pod, the metric asking for more": (FIVE + [pod("web-4", ready=False, since=T0 - 200.0)], metric(7),
                                               [0.0]),
    "two not Ready, one withheld, one hung": (FIVE[:3] + [pod("web-3", ready=False, since=T0 - 200.0),
                                                          pod("web-4", ready=False, since=T0 - 30.0)], metric(5), [1.0]),
}


@pytest.mark.parametrize("name", list(EQUAL_ROWS))
def test_the_overload_signal_from_the_cores_hung_evaluation_equals_the_shells_own(name):
    from controller.core.health.hung import hung_seconds
    from controller.runtime.healing import overload_signal

    pods, decision, withheld = EQUAL_ROWS[name]
    params = load_one(policy_with(HEALTH_ONLY)).health_params
    status = TargetStatus(DEP, spec_replicas=5, status_replicas=len(pods),
                          ready_replicas=sum(1 for p in pods if p.ready), revision="7", pods=tuple(pods))
    view = ClusterView.from_statuses([DEP], {DEP: status})
    w = None if withheld is None else np.array(withheld)
    obs = observe_health(HealthQueries(params, ("",)), NoQueries(), [DEP], view, T0, [], decision, [], withheld=w)
    # the shell's second evaluation, as it was (runtime/healing.hung_pods): seconds past notReadyFor
    seconds = hung_seconds(obs.pods, np.full(obs.pods.size, T0), [300.0], T0)
    before = overload_signal(view, decision, [DEP], w, np.array([int((seconds[:, 0] > 120.0).sum())]))
    d = heal(params, obs, HealthState.empty(1, params), T0)
    assert d.overloaded.tolist() == before.tolist()


def test_held_for_a_hung_pod_says_its_restarts_did_not_cure_it_and_nothing_stronger_follows():
    """The HealingHeld Event and log line of HungPodRestartsExhausted: the pod, the budget spent by its
    restarts, that no rolling restart or rollback follows, and what to do."""
    from controller.runtime.healing import held_notice
    from tests.core.test_hung_pods import drive, restarting_policy

    p, decisions = restarting_policy(restarts_per_hour=2), []
    drive(p, {"web-3"}, set(), False, 700.0, decisions)
    d = next(d for d in decisions if d.held[0])
    assert held_notice(p, d, None, 0, DEP, "web-heal") == (
        "web-heal: self-healing stopped (HungPodRestartsExhausted): hung-pod check hung-pod finds web-3.375 hung "
        "(not Ready past start-up while most pods of their revision are Ready), but restartsPerHour 2 allows no "
        "more (2 in the last hour): its restarts did not cure it; nothing stronger follows (no rolling restart, "
        "no rollback: one pod's fault, not the release's); see why the pod hangs (kubectl describe pod, its "
        "logs); `setpoint resume default/web` re-arms it once the budget has room, at 23:14 UTC")


def explained(pods: list[PodStatus], reason_only: bool = False) -> list[str]:
    """`setpoint explain`'s lines of the health side of one cycle over ``pods`` (spec 5) at T0."""
    from controller.cli.records import _format_record

    params, obs, _ = observed(pods, T0)
    d = heal(params, obs, HealthState.empty(1, params), T0)
    health = d.record(0, "p", DEP.key).to_dict()
    record = {"target": "default/web", "at": 705.0, "current": 5, "ready": 1, "metrics": {}, "combined": 5,
              "stabilized": 5, "limited": 5, "desired": 5, "reason": "NoAction", "health": health}
    return _format_record(record).splitlines()[1:]


EXPLAIN_ROWS = {
    "four of five not Ready: held back, an outage": (
        [pod("web-0")] + [pod(f"web-{k}", ready=False, since=T0 - 900.0) for k in range(1, 5)],
        ["    hung check 'hung-pod': 4 of 5 pods not Ready past 2m, held back: most of revision 7's pods are not "
         "Ready (an outage, not a hung pod)"]),
    "one hung pod restarted: the RestartHungPod line and when its restart is judged": (
        [pod(f"web-{k}") for k in range(4)] + [pod("web-4", ready=False, since=T0 - 200.0)],
        ["    health: restart-pod [RestartHungPod] trigger hung-pod",
         "    hung: web-4 not Ready past start-up (the longest 200s) while most pods of their revision are Ready: a "
         "stuck process, restarted; a readiness outage (most pods not Ready: a dependency down) restarts none",
         "    verification: judged 7m15s on at the earliest, the replacement's start-up + notReadyFor + a cycle "
         "counted from when it is first seen running (the first it could be seen hung; no rolling restart or "
         "rollback meanwhile, another check's pod restart may go)"]),
    "all Ready: nothing said": ([pod(f"web-{k}") for k in range(5)], []),
}


@pytest.mark.parametrize("name", list(EXPLAIN_ROWS))
def test_explain_says_when_the_peer_rule_holds_a_hung_check_back(name):
    pods, lines = EXPLAIN_ROWS[name]
    assert explained(pods) == lines


def test_explain_says_a_hung_pods_failed_restart_and_its_hold():
    from controller.cli.records import _format_health

    again = {"action": "restart-pod", "reason": "RestartHungPod", "outcome": "HungPodHungAgain", "trigger": "hung-pod",
             "restart_pods": ["default/web-3b"], "checks": {"hung-pod": {"raw": 105.0, "phase": "firing", "pods": 5,
                                                                        "hung": {"past": 1, "not_ready_for": 60.0,
                                                                                 "held_back": 0}}}}
    assert _format_health(again).splitlines()[3] == (
        "    verification: the hung pod's restart did not cure it (it hangs again) [HungPodHungAgain]: restarted "
        "again while restartsPerHour allows, never escalated (no rolling restart, no rollback)")
    held = {"action": None, "reason": "HungPodRestartsExhausted", "trigger": "hung-pod", "held": True,
            "held_reason": "HungPodRestartsExhausted",
            "checks": {"hung-pod": {"pods": 5, "hung": {"past": 1, "not_ready_for": 60.0, "held_back": 0}}}}
    assert _format_health(held).splitlines()[1:] == [
        "    health: no action [HungPodRestartsExhausted] trigger hung-pod",
        "    held: restartsPerHour allows no more restarts of pods the hung-pod check finds hung; nothing stronger "
        "follows (one pod's fault, not the release's): see why the pod hangs, then `setpoint resume`",
        "    hung check 'hung-pod': 1 of 5 pods not Ready past 1m"]


def test_explain_names_the_open_windows_and_a_replacement_not_yet_judged():
    from controller.cli.records import _format_health

    hung = {"action": "restart-pod", "check": "hung-pod", "started": 135.0, "until": 570.0, "seen": None}
    memory = {"action": "restart-pod", "check": "memory", "started": 240.0, "until": 360.0}
    beside = {"action": "restart-pod", "reason": "RestartFiringPods", "trigger": "memory",
              "restart_pods": ["default/web-1"], "verifying": [hung, memory]}
    assert _format_health(beside).splitlines()[2] == (
        "    verifying: restart-pod by hung-pod until t=570s (its replacement not yet seen running: not judged yet); "
        "restart-pod by memory until t=360s")
    waiting = {"action": None, "reason": "Verifying", "verifying": [{**hung, "seen": 150.0}]}
    assert _format_health(waiting).splitlines()[2] == "    verifying: restart-pod by hung-pod until t=570s"
    unjudged = {"action": None, "reason": "NoAction", "outcome": "HungReplacementNotJudged"}
    assert _format_health(unjudged).splitlines()[1] == (
        "    verification: the hung pod's replacement was never seen running (Pending: unschedulable, an image "
        "pull) [HungReplacementNotJudged]: closed with no verdict; a hang once it runs is a new fault")


def test_status_says_what_each_open_window_verifies():
    from controller.cli.records import _health_cell
    from controller.runtime.status import _health_view

    windows = [{"action": "restart-pod", "check": "hung-pod", "started": 135.0, "until": 570.0, "seen": 150.0},
               {"action": "restart-pod", "check": "memory", "started": 240.0, "until": 360.0}]
    view = _health_view({"action": None, "reason": "Verifying", "verifying": windows,
                         "checks": {"memory": {"phase": "ok", "raw": 0.1}}})
    assert view["verifying"] == [{"action": "restart-pod", "check": "hung-pod"},
                                 {"action": "restart-pod", "check": "memory"}]
    assert _health_cell(view).splitlines() == ["verifying restart-pod (hung-pod)", "verifying restart-pod (memory)",
                                               "ok"]
    assert "verifying" not in _health_cell(_health_view({"action": None, "reason": "NoAction", "checks": {}}))
