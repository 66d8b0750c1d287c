"""sim serve's application series per pod, as a scrape of instrumented pods gives them: what the
bundled healing policy's revision checks compare (``sum by (namespace, pod)``) and its workload
checks sum (``sum by (namespace, deployment)``), from the same series.

A release of ``web`` (4 pods, 200 rps) at 30 s, paused at 35 s by hand once its first new pods are
made (two: one surge, one for the old pod taken down), so that they serve beside the 3 stable ones;
two scrapes a simulated minute apart, from 45 s (the new pods Ready since 40 s). Each row is a
release of another kind.
"""

from __future__ import annotations

import pytest

from simulators.kubeapi.metrics import LATENCY_BUCKETS_S
from simulators.kubeapi.server import SimWorld
from simulators.scenario import load_scenario_text
from tests.adapters.test_kubeapi import histogram_quantile

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: pod-series}}
spec:
  duration: 30m
  tick: 5s
  slo: {{latency: {{percentile: 95, below: 250ms}}}}
  services:
    - {{name: web, namespace: shop, capacityPerPod: 100, initialReplicas: 4, maxPods: 8, startupDelay: 10s,
       schedulingDelay: 0s, errorRatio: 0.01, load: [{{constant: {{rps: 200}}}}]}}
  faults:
    - {{name: release, kind: bad-rollout, at: 30s, services: [web], {params}}}
"""
PREFIX = '{namespace="shop",deployment="web",pod="'


def by_pod(text: str, family: str, le: str | None = None, prefix: str = PREFIX) -> dict[str, float]:
    """web's series of ``family`` (of a histogram's buckets: those of one ``le``) by pod name;
    ``prefix``: their labels before the pod's name."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key.startswith(family + prefix) and (le is None or key.endswith(f',le="{le}"}}')):
            out[key[len(family + prefix):].split('"')[0]] = float(value)
    return out


def ready_revisions(world: SimWorld) -> dict[str, str]:
    """The Ready pods' revisions by name."""
    pods = world.engine.pod_signals()
    return {name: rev for name, rev, ready in zip(pods["name"], pods["revision"], pods["ready"]) if ready}


def released_world(params: str) -> tuple[dict[str, str], dict[str, str]]:
    """The scrapes at 45 s and a minute later, the release (its ``params``) paused beside the
    stable pods, and the revision of each Ready pod by name."""
    world = SimWorld(load_scenario_text(SCENARIO.format(params=params), "pod-series.yaml"), wall_start_s=1.7e9)
    world.advance(7)  # 35 s: the release's first pod made
    body = world.store.get_workload("Deployment", "shop", "web")
    body["spec"]["paused"] = True
    world.store.update_workload("Deployment", "shop", "web", body)
    world.advance(2)
    before, ready_before = world.metrics.render(), ready_revisions(world)
    world.advance(12)
    revision = ready_revisions(world)
    assert revision == ready_before and sorted(revision.values()) == ["1", "1", "1", "2", "2"], revision
    return {"before": before, "after": world.metrics.render()}, revision


def increases(scrapes: dict[str, str], family: str, le: str | None = None) -> dict[str, float]:
    first, second = (by_pod(scrapes[k], family, le) for k in ("before", "after"))
    return {pod: second[pod] - first.get(pod, 0.0) for pod in second}


@pytest.mark.parametrize("params, errors_new, slower_s", [
    pytest.param("errorRatioMultiplier: 4", 0.04, 0.0, id="a-release-failing-4x"),
    pytest.param("extraLatency: 200ms", 0.01, 0.2, id="a-release-200ms-slower"),
    pytest.param("errorRatioMultiplier: 1", 0.01, 0.0, id="a-good-release"),
])
def test_each_revisions_pods_show_its_errors_and_latency(params, errors_new, slower_s):
    scrapes, revision = released_world(params)
    requests = increases(scrapes, "http_requests_total")
    errors = increases(scrapes, "http_request_errors_total")
    ready = [pod for pod in requests if pod in revision]
    # an even share of the offered load (200 rps for 60 s) to each Ready pod; the sum is the workload's
    assert [requests[pod] for pod in ready] == pytest.approx([200 * 60 / 5] * 5)
    assert sum(requests.values()) == pytest.approx(200 * 60)
    for pod in ready:
        want = errors_new if revision[pod] == "2" else 0.01
        assert errors[pod] / requests[pod] == pytest.approx(want, rel=1e-6), pod
    les = [str(b) for b in LATENCY_BUCKETS_S] + ["+Inf"]
    buckets = {le: increases(scrapes, "http_request_duration_seconds_bucket", le) for le in les}
    # a pod's buckets below its workload's latency floor (half its 50 ms median) are left out: 0
    assert [le for le in les if buckets[le]][0] == "0.023842"
    assert all(buckets["0.023842"][pod] == 0 for pod in ready)  # kept: the lower end of the next bucket's range
    p95 = {pod: histogram_quantile(0.95, list(LATENCY_BUCKETS_S) + [float("inf")],
                                   [buckets[le].get(pod, 0.0) for le in les]) for pod in ready}
    stable = [p95[pod] for pod in ready if revision[pod] == "1"]
    new = [p95[pod] for pod in ready if revision[pod] == "2"]
    # the same for the pods of one revision (up to the whole requests a bucket counts)
    assert max(stable) == pytest.approx(min(stable), rel=0.01) and max(new) == pytest.approx(min(new), rel=0.01)
    assert new[0] - stable[0] == pytest.approx(slower_s, abs=0.02), (new, stable)


def test_a_statefulsets_pods_carry_its_name_as_statefulset():
    """A StatefulSet's pods' application series carry its name under ``statefulset``, the label
    kube-state-metrics gives its own series and `setpoint run` matches a StatefulSet by
    (--target-labels' default), not ``deployment`` (a Deployment's): they sum by (namespace,
    statefulset) as the kube_statefulset_* series do."""
    scenario = load_scenario_text(SCENARIO.format(params="errorRatioMultiplier: 1"), "pod-series.yaml")
    world = SimWorld(scenario, statefulsets=frozenset({"web"}), wall_start_s=1.7e9)
    world.advance(2)
    text = world.metrics.render()
    pods = world.engine.pod_signals()["name"]
    sts_prefix = PREFIX.replace("deployment=", "statefulset=")
    assert len(pods) == 4 and sorted(by_pod(text, "http_requests_total", prefix=sts_prefix)) == sorted(pods)
    assert by_pod(text, "http_requests_total") == {}  # no series names it a Deployment
    assert 'setpoint_sim_requests_per_second{namespace="shop",statefulset="web"} ' in text
    assert 'kube_statefulset_replicas{namespace="shop",statefulset="web"} 4' in text
