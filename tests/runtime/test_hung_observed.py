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
