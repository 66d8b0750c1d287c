"""A terminating pod's series on sim serve's /metrics, scraped over HTTP as Prometheus scrapes it:
with pod discovery (role: pod) a pod stays a target until it is gone, and its container still
serves /metrics while it terminates; out of its Service's endpoints it gets no new requests, so its
counters stay at what they were (the requests it had were counted in the tick they came). Before,
its series vanished at its deletion. kube_helpers' world: web 2 pods, api 3 pods at 100 rps; ticks
of 5 s, 30 s of grace unless the DELETE gives another (the pod's deletion is by the official client).
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.adapters.kube_helpers import official_client, start_server
from tests.adapters.test_kubeapi import scrape
from tests.adapters.test_sim_serve_pod_series import by_pod

NS = "shop"
API_PREFIX = '{namespace="shop",deployment="api",pod="'


@pytest.fixture
def metrics_server():
    srv = start_server(metrics_port=0)
    yield srv
    srv.stop()


def requests_by_pod(srv) -> dict[str, float]:
    return by_pod(scrape(srv), "http_requests_total", prefix=API_PREFIX)


def delete_pod(core, name: str, grace_s: int | None) -> None:
    core.delete_namespaced_pod(name, NS, grace_period_seconds=grace_s)


def scale_api_to_1(apps) -> None:
    apps.patch_namespaced_deployment_scale("api", NS, {"spec": {"replicas": 1}})


@pytest.mark.parametrize("grace_s, looks_shown", [
    pytest.param(None, 6, id="30s-grace-six-looks"),
    pytest.param(10, 2, id="10s-grace-two-looks"),
    # the scrape before the next tick shows the last tick's pods, as before
    pytest.param(0, 1, id="no-grace-gone-at-the-next-tick"),
])
def test_a_deleted_pod_s_series_stay_frozen_until_it_is_gone(metrics_server, tmp_path, grace_s, looks_shown):
    """Scraped at the deletion (20 s) and after each tick: shown as long as it is listed
    terminating (its deletion's look through the last before its grace ends), its value frozen."""
    srv = metrics_server
    core = client.CoreV1Api(official_client(srv, tmp_path))
    srv.world.advance(4)  # the pods have counted 20 s of requests
    before = requests_by_pod(srv)
    victim = sorted(before)[0]
    delete_pod(core, victim, grace_s)
    seen, others = [], []
    for _ in range(looks_shown + 2):
        now = requests_by_pod(srv)
        seen.append(now.get(victim))
        others.append(sum(v for name, v in now.items() if name != victim))
        srv.world.advance(1)
    assert seen == [before[victim]] * looks_shown + [None] * 2, seen  # frozen, then gone
    assert others == sorted(others) and others[-1] > others[0]  # the others still count


def test_the_pods_a_scale_down_removes_keep_their_series_while_they_terminate(metrics_server, tmp_path):
    srv = metrics_server
    apps = client.AppsV1Api(official_client(srv, tmp_path))
    srv.world.advance(4)
    before = requests_by_pod(srv)
    scale_api_to_1(apps)
    srv.world.advance(1)
    after = requests_by_pod(srv)
    assert set(after) == set(before)
    kept = [name for name in before if after[name] > before[name]]
    assert len(kept) == 1  # the one pod left still receives requests; the two removed are frozen
    assert all(after[name] == before[name] for name in before if name not in kept)
    srv.world.advance(5)
    assert set(requests_by_pod(srv)) == set(kept)  # gone after their 30 s (removed at 20 s, gone at 50 s)
