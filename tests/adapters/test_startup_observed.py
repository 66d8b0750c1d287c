"""Observed pod start-ups through the real kubernetes client against `setpoint sim serve`:
the adapter reads creationTimestamp and the Ready condition's lastTransitionTime, and the
runtime's StartupObserver turns them into the services' start-up delay (10 s in kube_helpers'
scenario, no scheduling delay; the API's times have second precision)."""

from __future__ import annotations

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import Action, ActionKind, TargetRef
from controller.policy import load_policy_text
from controller.errors import TemporaryError
from controller.runtime.startup_observer import StartupObserver
from simulators.workload import RevisionProps
from tests.adapters.kube_helpers import official_client, server  # noqa: F401

NS = "shop"
WEB, API = TargetRef(NS, "web"), TargetRef(NS, "api")
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: shop}
spec:
  targets: {namespace: shop, names: [web, api]}
  interval: 15s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 80}
        ramp: {startupDelay: observed}
"""


@pytest.fixture
def cluster(server, tmp_path):  # noqa: F811
    kc = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01, request_timeout_s=3.0,
                           with_pods=False)
    yield kc
    kc.close()


def test_pods_carry_their_creation_and_ready_times(cluster, server):  # noqa: F811
    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=4, from_replicas=2))
    server.world.advance(3)  # 15 s: the new pods start in 10 s
    pods = cluster.observe([WEB], with_pods=True).statuses[0].pods
    assert len(pods) == 4 and all(p.ready for p in pods)
    spans = [p.ready_transition_time - p.created_time for p in pods]
    assert all(9.0 <= s <= 11.0 for s in spans)  # the initial pods too: they started like any other
    created = sorted(p.created_time for p in pods)
    assert created[2] - created[1] >= 3600.0  # the initial pods have run for an hour before the start


def test_the_observer_learns_the_start_up_delay_through_the_client(cluster, server):  # noqa: F811
    params = load_policy_text(POLICY, "shop.yaml")[0].params
    observer, errors = StartupObserver(), []

    def cycle():
        targets = [WEB, API]
        view = cluster.observe(targets)  # no pods: the observer lists them itself when due
        now = server.world.store.wall_now()
        return observer.observe(params, cluster, targets, view, now, errors, listed_pods=False)

    first = cycle()  # a fresh controller: every target is read; the running pods show their start-ups
    assert first.estimate.pods.tolist() == [2, 3]
    assert first.record(0)["source"] == "observed" and 9.0 <= first.record(0)["delay_s"] <= 11.0
    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=5, from_replicas=2))
    server.world.advance(3)
    info = cycle()  # web's ready count rose: its pods are read again
    assert errors == []
    assert info.estimate.pods.tolist() == [5, 3]
    assert 9.0 <= info.estimate.delay_s[0] <= 11.0 and 9.0 <= info.estimate.delay_s[1] <= 11.0
    record = info.record(0)
    assert record["source"] == "observed" and record["lead_s"]["rps"] == pytest.approx(record["delay_s"] + 45.0)
    restarted = StartupObserver()  # a controller restart re-learns from the pods that exist
    view = cluster.observe([WEB, API])
    again = restarted.observe(params, cluster, [WEB, API], view, server.world.store.wall_now(), errors, False)
    assert again.estimate.delay_s[0] == info.estimate.delay_s[0]


def test_withheld_replicas_through_the_client(cluster, server):  # noqa: F811
    """A crash-looping release on web (10 s start-ups observed first): its pods run but never get
    Ready; through the client's pods (creationTimestamp, phase, Ready) the observer counts them
    as withheld once they are older than twice the observed start-up, never more than the spec
    slots neither Ready nor starting, and api (all Ready) has none."""
    params = load_policy_text(POLICY, "shop.yaml")[0].params
    observer, errors = StartupObserver(), []
    targets = [WEB, API]

    def cycle():
        view = cluster.observe(targets)
        now = server.world.store.wall_now()
        info = observer.observe(params, cluster, targets, view, now, errors, listed_pods=False)
        return view, observer.withheld(params, cluster, targets, view, now, errors, False, info.estimate.delay_s)

    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=4, from_replicas=2))
    server.world.advance(3)  # 15 s: the new pods Ready after 10 s, a start-up observed
    view, withheld = cycle()
    assert view.ready.tolist()[0] == 4 and withheld is None
    engine = server.world.engine
    engine.rollout(engine.index(WEB), RevisionProps(crash_loop=True, label="broken"))
    server.world.advance(1)  # 5 s: the new revision's pods are younger than twice the start-up
    view, withheld = cycle()
    assert view.ready.tolist()[0] < 4 and withheld is None
    server.world.advance(6)  # 30 s more: past twice the ~10 s start-up
    view, withheld = cycle()
    spec, ready = view.spec.tolist()[0], view.ready.tolist()[0]
    assert errors == []
    assert withheld is not None and withheld[1] == 0
    assert 1 <= withheld[0] <= spec - ready


class CountingPodReads:
    """The cluster, counting the observes that list pods (the observer's own pod reads)."""

    def __init__(self, cluster):
        self.cluster, self.pod_reads = cluster, 0

    def observe(self, targets, with_pods=False):
        self.pod_reads += bool(with_pods)
        return self.cluster.observe(targets, with_pods=with_pods)


def test_a_scale_up_costs_no_pod_read_for_withheld_replicas(cluster, server):  # noqa: F811
    """Pods are read for withheld replicas only for targets short of Ready pods for longer than
    twice the start-up (or first seen short): a running controller's scale-up whose pods start
    in 10 s reads none (the start-up not passed to it here: the 240 s bound)."""
    params = load_policy_text(POLICY, "shop.yaml")[0].params
    observer, errors, counting = StartupObserver(), [], CountingPodReads(cluster)
    targets = [WEB, API]
    assert observer.withheld(params, counting, targets, cluster.observe(targets), server.world.store.wall_now(),
                             errors, False, None) is None  # the controller has seen its targets
    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=6, from_replicas=2))
    short = []
    for _ in range(4):  # 20 s, one cycle a tick: short, then Ready
        view = cluster.observe(targets)
        short.append(view.ready.tolist()[0] < view.spec.tolist()[0])
        assert observer.withheld(params, counting, targets, view, server.world.store.wall_now(), errors, False,
                                 None) is None
        server.world.advance(1)
    assert short[0] and not short[-1]  # the scale-up's pods were starting, then Ready
    assert counting.pod_reads == 0 and errors == []


class FailingPodReads(CountingPodReads):
    """The cluster, whose pod listings fail as an API server that answers 503 would (the one
    fault the simulated server is not made to produce on demand)."""

    def observe(self, targets, with_pods=False):
        if with_pods:
            raise TemporaryError("pods: 503 Service Unavailable")
        return self.cluster.observe(targets)


def test_a_failed_pod_read_keeps_the_last_withheld_counts(cluster, server):  # noqa: F811
    params = load_policy_text(POLICY, "shop.yaml")[0].params
    observer, errors = StartupObserver(), []
    targets = [WEB, API]

    def cycle(through):
        view = through.observe(targets)
        now = server.world.store.wall_now()
        info = observer.observe(params, through, targets, view, now, errors, listed_pods=False)
        return observer.withheld(params, through, targets, view, now, errors, False, info.estimate.delay_s)

    cluster.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=4, from_replicas=2))
    server.world.advance(3)  # Ready: a quarter of 4 may now be unavailable during a rollout
    engine = server.world.engine
    engine.rollout(engine.index(WEB), RevisionProps(crash_loop=True, label="broken"))
    server.world.advance(8)  # 40 s: past twice the ~10 s start-up the running pods show
    counted = cycle(cluster)
    assert counted is not None and counted[0] >= 1 and errors == []
    server.world.advance(3)
    kept = cycle(FailingPodReads(cluster))
    assert kept is not None and kept.tolist() == counted.tolist()
    assert any(e.startswith("withheld replicas: pods not read") for e in errors)
