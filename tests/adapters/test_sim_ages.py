"""Times of the simulated apiserver's objects, as a real cluster's relate: a workload is older
than its ReplicaSets and pods (kubectl showed a Deployment of 6s whose pods were 60m old)."""

from __future__ import annotations

from kubernetes import client

from tests.adapters.kube_helpers import api_client, server  # noqa: F401 -- the shared fixtures


def test_a_workload_is_older_than_its_replicasets_and_pods(api_client):  # noqa: F811
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    deployments = apps.list_deployment_for_all_namespaces().items
    assert deployments
    for d in deployments:
        ns, selector = d.metadata.namespace, ",".join(f"{k}={v}" for k, v in d.spec.selector.match_labels.items())
        owned = (apps.list_namespaced_replica_set(ns, label_selector=selector).items
                 + core.list_namespaced_pod(ns, label_selector=selector).items)
        assert owned, d.metadata.name
        for obj in owned:
            assert d.metadata.creation_timestamp <= obj.metadata.creation_timestamp, (d.metadata.name,
                                                                                       obj.metadata.name)


def test_a_replicaset_is_not_younger_than_its_pods(api_client):  # noqa: F811
    """A ReplicaSet creates its pods: kubectl get all showed the first ReplicaSet 5s old (created
    at the server's start) over pods 60m old (the initial pods, Ready an hour before it)."""
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    replicasets = apps.list_replica_set_for_all_namespaces().items
    assert replicasets
    for rs in replicasets:
        pods = [p for p in core.list_namespaced_pod(rs.metadata.namespace).items
                if any(o.kind == "ReplicaSet" and o.uid == rs.metadata.uid for o in p.metadata.owner_references or ())]
        assert pods, rs.metadata.name
        for pod in pods:
            assert rs.metadata.creation_timestamp <= pod.metadata.creation_timestamp, (rs.metadata.name,
                                                                                        pod.metadata.name)
