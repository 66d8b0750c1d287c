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
