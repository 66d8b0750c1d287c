"""Chunked lists through sim serve (simulators/kubeapi/pages.py): ``limit`` and ``continue`` as the
apiserver serves them, through the official client and kubectl (which lists in chunks of 500 by
default and follows the tokens), and the apiserver's errors for a bad, misused or expired token."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from simulators.kubeapi import pages
from tests.adapters.kube_helpers import api_client, server  # noqa: F401  (fixtures)

NS = "shop"
KUBECTL = shutil.which("kubectl")


def names(items) -> list[str]:
    return [i.metadata.name for i in items]


def all_chunks(core: client.CoreV1Api, limit: int, **kw) -> tuple[list[str], list]:
    """Every pod name over the chunks of ``limit``, and each chunk's metadata."""
    out, metas, token = [], [], None
    for _ in range(20):  # bounded: 5 pods
        page = core.list_namespaced_pod(NS, limit=limit, _continue=token, **kw)
        out += names(page.items)
        metas.append(page.metadata)
        token = page.metadata._continue
        if not token:
            return out, metas
    raise AssertionError("the chunks never ended")


@pytest.mark.parametrize("limit", [pytest.param(1, id="one-by-one"), pytest.param(2, id="by-two"),
                                   pytest.param(4, id="by-four"), pytest.param(5, id="exactly-all"),
                                   pytest.param(500, id="kubectl-default")])
def test_chunks_cover_the_list_once_in_order(api_client, limit):  # noqa: F811
    core = client.CoreV1Api(api_client)
    whole = names(core.list_namespaced_pod(NS).items)
    assert len(whole) == 5
    got, metas = all_chunks(core, limit)
    assert got == whole
    assert len(metas) == -(-len(whole) // limit)
    for k, meta in enumerate(metas[:-1]):  # unfiltered: the rest counted, as the apiserver does
        assert meta._continue and meta.remaining_item_count == len(whole) - limit * (k + 1)
    assert metas[-1]._continue is None and metas[-1].remaining_item_count is None


def test_a_filtered_list_does_not_count_the_rest(api_client):  # noqa: F811
    core = client.CoreV1Api(api_client)
    got, metas = all_chunks(core, 1, label_selector="app=api")
    assert len(got) == 3 and all(m.remaining_item_count is None for m in metas)
    assert all(m._continue for m in metas[:-1])


def token(rv: int, start: str = "shop/a\x00", version: str = "meta.k8s.io/v1") -> str:
    raw = json.dumps({"v": version, "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("query, says", [
    pytest.param({"_continue": "garbage"}, "invalid continue token: continue key is not valid", id="not-base64-json"),
    pytest.param({"_continue": token(5, version="v2")}, "server does not recognize this encoded version",
                 id="another-version"),
    pytest.param({"_continue": token(0)}, "incorrect encoded start resourceVersion", id="no-resource-version"),
    pytest.param({"_continue": token(5), "resource_version": "5"},
                 "specifying resource version is not allowed when using continue", id="with-a-resource-version"),
])
def test_a_bad_continue_is_400(api_client, query, says):  # noqa: F811
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api_client).list_namespaced_pod(NS, limit=2, **query)
    assert err.value.status == 400 and says in json.loads(err.value.body)["message"]


def test_resource_version_0_with_continue_is_allowed(api_client, server):  # noqa: F811
    first = client.CoreV1Api(api_client).list_namespaced_pod(NS, limit=2)
    rest = client.CoreV1Api(api_client).list_namespaced_pod(NS, limit=10, _continue=first.metadata._continue,
                                                             resource_version="0")
    assert len(rest.items) == 3


def test_an_expired_continue_is_410_with_a_token_to_go_on(api_client, server):  # noqa: F811
    """A token older than the history kept: 410 Expired in the apiserver's words, and a token
    in the Status's metadata that goes on (inconsistently) from the same place."""
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    first = core.list_namespaced_pod(NS, limit=2)
    server.world.store.history.limit = 1  # keep one change: the first of the two writes is forgotten
    for replicas in (3, 4):
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": replicas}})
    assert server.world.store.oldest_watchable_rv() > int(first.metadata.resource_version)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS, limit=2, _continue=first.metadata._continue)
    status = json.loads(err.value.body)
    assert err.value.status == 410 and status["reason"] == "Expired" and pages.TOO_OLD == status["message"]
    rest = core.list_namespaced_pod(NS, _continue=status["metadata"]["continue"])
    assert names(rest.items) == names(core.list_namespaced_pod(NS).items)[2:]


def test_kubectl_follows_the_chunks(server, tmp_path):  # noqa: F811
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (CI has /usr/bin/kubectl)")
    kubeconfig = server.write_kubeconfig(tmp_path / "kubectl-config", namespace=NS)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(tmp_path)}
    out = {}
    for size in ("2", "500"):
        done = subprocess.run([KUBECTL, "--request-timeout=5s", "get", "pods", "-o", "name", f"--chunk-size={size}",
                               "-v=6"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out[size] = done.stdout.split()
        requests = [line for line in done.stderr.splitlines() if "/api/v1/namespaces/shop/pods" in line]
        assert len(requests) == (3 if size == "2" else 1), requests
    assert out["2"] == out["500"] and len(out["2"]) == 5
