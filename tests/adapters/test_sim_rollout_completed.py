"""The Progressing condition of sim serve's Deployments dates the completion of their current
revision's rollout, as the Deployment controller does (SetDeploymentCondition sets lastUpdateTime
when the reason changes to NewReplicaSetAvailable, and leaves it while it stays): the first
revision completed when its initial pods became Ready (an hour before the start), a rollout at
the tick that completed it. The Kubernetes adapter reads it as ``rollout_completed_at``, read
through the official client."""

from __future__ import annotations

from kubernetes import client

from controller.adapters.kubernetes import rollout_completed_at
from simulators.simcluster.slots import INITIAL_PODS_AGE_S
from tests.adapters.kube_helpers import api_client, server  # noqa: F401 -- the shared fixtures

NS = "shop"


def progressing(d):
    return next(c for c in d.status.conditions if c.type == "Progressing")


def ready_times(core, name: str) -> list[float]:
    pods = core.list_namespaced_pod(NS, label_selector=f"app={name}").items
    return [next(c for c in p.status.conditions if c.type == "Ready").last_transition_time.timestamp() for p in pods]


def test_the_first_revision_completed_when_its_initial_pods_became_ready(server, api_client):  # noqa: F811
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    clock = server.world.store.clock
    for d in apps.list_namespaced_deployment(NS).items:
        cond = progressing(d)
        assert cond.reason == "NewReplicaSetAvailable"
        assert cond.last_update_time.timestamp() == int(clock.wall(clock.sim_start_s - INITIAL_PODS_AGE_S))
        assert max(ready_times(core, d.metadata.name)) <= rollout_completed_at(d) <= clock.wall(clock.sim_start_s)


def test_a_rollout_is_dated_by_the_tick_that_completed_it(server, api_client):  # noqa: F811
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    world, clock = server.world, server.world.store.clock
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-05T00:00:00Z"}}}}})
    d = apps.read_namespaced_deployment("web", NS)
    assert progressing(d).reason == "ReplicaSetUpdated" and rollout_completed_at(d) is None
    before = clock.wall(world.engine.now)
    for _ in range(60):  # 5 min of 5 s ticks, read after each
        world.advance(1)
        d = apps.read_namespaced_deployment("web", NS)
        if progressing(d).reason == "NewReplicaSetAvailable":
            break
    else:
        raise AssertionError("the rollout did not complete in 5 min")
    done = clock.wall(world.engine.now)  # completed during this tick
    assert before < done - world.tick_s <= progressing(d).last_update_time.timestamp() <= done
    assert max(ready_times(core, "web")) <= rollout_completed_at(d)
    for _ in range(12):  # a minute more: the condition stays as it was
        world.advance(1)
        later = apps.read_namespaced_deployment("web", NS)
        assert progressing(later).last_update_time == progressing(d).last_update_time
        assert rollout_completed_at(later) == rollout_completed_at(d)
