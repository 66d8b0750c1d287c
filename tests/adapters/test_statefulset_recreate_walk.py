"""A StatefulSet's pod deleted and not recreated yet, through ``sim serve`` and the real kubernetes
client: no walk up for arbitration, though status.replicas drops below spec.replicas.

The StatefulSet controller (OrderedReady) recreates a deleted pod under its name only once every
lower pod is Ready (stateful_set_control.go: processReplica stops at the first pod not Running and
Ready); meanwhile status.replicas counts one pod less. Here web-1 hangs (a pod-hang fault naming
it) and web-3 is deleted (a restart): web-3 stays missing, status.replicas 4 of 5. Before, that
read as a walk up (status.replicas below spec.replicas: a scale-up check OrderedScaleUpPending);
now the pods reach web-4 (runtime/healing.py walk_reach): no walk. A real walk up (a scale-up
the StatefulSet has not created yet) still is one.

The engine does not run on its own (``drive=False``): ticks of 5 s, start-up 10 s.
"""

from __future__ import annotations

import pytest
from kubernetes import client as kube_client

from controller.core.arbitrate import ArbitrationInput, ordered_walk_up
from controller.model import Action, ActionKind
from controller.runtime.health_columns import walk_reach
from tests.adapters.kube_helpers import official_client
from tests.adapters.test_statefulset_contract import NS, STS_YAML, WEB, make_cluster, serve_sts

#: web 5 pods, web-1 hung from 5 s (named: not drawn at random)
HUNG_YAML = STS_YAML.replace("      initialReplicas: 2\n      maxPods: 20\n      load: [{constant: {rps: 150}}]\n",
                             "      initialReplicas: 5\n      maxPods: 20\n      load: [{constant: {rps: 150}}]\n", 1
                             ) + "  faults:\n    - {name: stuck, kind: pod-hang, at: 5s, pod: web-1}\n"
assert HUNG_YAML.count("initialReplicas: 5") == 1


@pytest.fixture
def server():
    yield from serve_sts(HUNG_YAML)


def walk(status) -> tuple[int, int, bool]:
    """(status.replicas, the pods' reach, arbitration reads a walk up) of an observed status."""
    inp = ArbitrationInput.of([status.spec_replicas], ordered=[status.ordered], created=[status.status_replicas],
                              reached=[walk_reach(status)])
    return status.status_replicas, walk_reach(status), bool(ordered_walk_up(inp)[0])


def test_a_pod_deleted_behind_a_hung_one_is_no_walk_up(server, tmp_path):
    kc = make_cluster(server, tmp_path)
    server.world.advance(2)  # 5 s: web-1 hangs
    status = kc.observe([WEB], with_pods=True).statuses[0]
    assert [(p.name, p.ready) for p in status.pods] == [("web-0", True), ("web-1", False), ("web-2", True),
                                                        ("web-3", True), ("web-4", True)]
    core = kube_client.CoreV1Api(official_client(server, tmp_path))
    core.delete_namespaced_pod("web-3", NS, _request_timeout=5)
    server.world.advance(2)
    status = kc.observe([WEB], with_pods=True).statuses[0]
    # web-3 terminates (its 30 s grace: counted in status.replicas meanwhile), then, gone, waits for
    # web-1 to be recreated
    assert [(p.name, p.deleted) for p in status.pods] == [("web-0", False), ("web-1", False), ("web-2", False),
                                                          ("web-3", True), ("web-4", False)]
    assert (status.spec_replicas, walk(status)) == (5, (5, 5, False))
    server.world.advance(5)
    status = kc.observe([WEB], with_pods=True).statuses[0]
    assert [p.name for p in status.pods] == ["web-0", "web-1", "web-2", "web-4"]
    assert (status.spec_replicas, walk(status)) == (5, (4, 5, False))
    # web-1 restarted: gone 30 s later, recreated, Ready 10 s after that, then web-3 is recreated under its name
    kc.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod="web-1"))
    server.world.advance(11)
    status = kc.observe([WEB], with_pods=True).statuses[0]
    assert [p.name for p in status.pods] == [f"web-{k}" for k in range(5)] and walk(status) == (5, 5, False)
    kc.close()


def test_a_real_walk_up_is_still_one(server, tmp_path):
    """Scaled 5 -> 7 while web-1 hangs: web-5 is not created (it waits for web-1): a walk up."""
    kc = make_cluster(server, tmp_path)
    server.world.advance(2)
    kc.observe([WEB])
    kc.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=7, from_replicas=5))
    server.world.advance(2)
    status = kc.observe([WEB], with_pods=True).statuses[0]
    assert (status.spec_replicas, walk(status)) == (7, (5, 5, True))
    kc.close()
