"""A terminating pod's series on sim serve's /metrics, scraped over HTTP as Prometheus scrapes it:
with pod discovery (role: pod) a pod stays a target until it is gone, and its container still
serves /metrics while it terminates; out of its Service's endpoints it gets no new requests, so its
counters stay at what they were (the requests it had were counted in the tick they came). Before,
its series vanished at its deletion. kube_helpers' world: web 2 pods, api 3 pods at 100 rps; ticks
of 5 s, 30 s of grace unless the DELETE gives another (the pod's deletion is by the official client).

kube-state-metrics lists pods from the API: a terminating pod's series stay until its object is
gone (kube_pod_status_ready with condition "false", its restarts and requests, and
kube_pod_deletion_timestamp, its deletionTimestamp); cAdvisor's container series stay while its
container runs, through the grace (CPU seconds no longer growing: it serves nothing). A pod
deleted with no grace is gone at once from both. No series is shown twice: a StatefulSet's pod
recreated under its name shows the new pod's only.
"""

from __future__ import annotations

from collections import Counter

import pytest
from kubernetes import client

from simulators.kubeapi.server import SimKubeServer
from tests.adapters.kube_helpers import TOKEN, official_client, start_server
from tests.adapters.test_statefulset_contract import sts_scenario
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


def pod_series(text: str, pod: str) -> dict[str, float]:
    """The kube-state-metrics and cAdvisor series of ``pod``: family{condition|resource} -> value."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if f'pod="{pod}"' in key and key.startswith(("kube_pod", "container_")):
            family, labels = key.split("{", 1)
            extra = [part for part in labels.rstrip("}").split(",") if part.startswith(("condition=", "resource="))]
            out[family + "".join(f"{{{e}}}" for e in extra)] = float(value)
    return out


def listed_deletion_s(core, name: str) -> float | None:
    pod = next((p for p in core.list_namespaced_pod(NS).items if p.metadata.name == name), None)
    return None if pod is None or pod.metadata.deletion_timestamp is None else pod.metadata.deletion_timestamp.timestamp()


@pytest.mark.parametrize("grace_s, looks_shown", [
    pytest.param(None, 6, id="30s-grace-six-looks"),
    pytest.param(10, 2, id="10s-grace-two-looks"),
    pytest.param(0, 0, id="no-grace-gone-at-once"),
])
def test_a_deleted_pod_s_kube_state_and_cadvisor_series_stay_until_it_is_gone(metrics_server, tmp_path, grace_s,
                                                                               looks_shown):
    """Scraped at the deletion (20 s) and after each tick: not Ready, its deletionTimestamp as
    listed, its restarts and requests, its container's CPU seconds frozen and its working set,
    while it is listed terminating; then none."""
    srv = metrics_server
    core = client.CoreV1Api(official_client(srv, tmp_path))
    srv.world.advance(4)
    victim = sorted(requests_by_pod(srv))[0]
    running = pod_series(scrape(srv), victim)
    assert running["kube_pod_status_ready{condition=\"true\"}"] == 1.0
    delete_pod(core, victim, grace_s)
    deletion_s = listed_deletion_s(core, victim)
    looks = []
    for _ in range(looks_shown + 2):
        looks.append(pod_series(scrape(srv), victim) or None)
        srv.world.advance(1)
    expected = {**running, "kube_pod_status_ready{condition=\"true\"}": 0.0,
                "kube_pod_status_ready{condition=\"false\"}": 1.0, "kube_pod_deletion_timestamp": deletion_s}
    assert looks == [expected] * looks_shown + [None] * 2, looks


def series_shown_twice(text: str) -> list[str]:
    keys = [line.rpartition(" ")[0] for line in text.splitlines() if line and not line.startswith("#")]
    return sorted(k for k, n in Counter(keys).items() if n > 1)


@pytest.fixture
def sts_server():
    """web a StatefulSet of 2 pods (web-0, web-1), /metrics served."""
    srv = SimKubeServer(sts_scenario(), drive=False, token=TOKEN, metrics_port=0).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("grace_s", [pytest.param(None, id="recreated-once-gone"),
                                     pytest.param(0, id="force-deleted-recreated-at-once")])
def test_a_statefulset_pod_recreated_under_its_name_is_shown_once(sts_server, tmp_path, grace_s):
    """web-0 deleted: terminating, then recreated under its name; at each look one pod web-0 in
    every family (the terminating one, then the new one: Ready 10 s after it is created)."""
    srv = sts_server
    core = client.CoreV1Api(official_client(srv, tmp_path))
    srv.world.advance(2)
    delete_pod(core, "web-0", grace_s)
    ready = []
    for _ in range(10):
        text = scrape(srv)
        assert series_shown_twice(text) == []
        series = pod_series(text, "web-0")
        ready.append((series.get('kube_pod_status_ready{condition="true"}'), "kube_pod_deletion_timestamp" in series))
        srv.world.advance(1)
    terminating = 0 if grace_s == 0 else 6
    assert ready[:terminating] == [(0.0, True)] * terminating
    assert ready[terminating:] == [(0.0, False)] * 2 + [(1.0, False)] * (8 - terminating), ready
