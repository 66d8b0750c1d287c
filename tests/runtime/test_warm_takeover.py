"""Warm take-over: a workload that joins a policy already running (here: its HPA deleted during a
migration) gets the warm start's replay for its rows alone, instead of a cold start that holds
its scale-down for one whole stabilization window.

The run: policy ``takeover`` selects api and web in namespace shop of the simulated API server
(the real ``kubernetes`` client and adapter). An HPA scales web, so the policy governs api only,
warm-started at its first cycle; a minute later the HPA is deleted and web joins. A real
Prometheus holds, at fixed times, the load (``app_rps``: api 250 rps, its 3 pods' worth all
along; web 150 rps, 2 pods' worth) and what kube-state-metrics saw of the replicas: api 3 all
along, web only from minute 10 (a younger series) at the HPA's 15, then 12 from minute 20 (the
HPA's last step down, 20 %: the policy's whole scale-down budget for a minute). The policy's
cycles read that same Prometheus at the tick times, so every run is the same.
"""

from __future__ import annotations

import numpy as np
import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.cli.records import _format_record
from controller.model import jsonable
from controller.policy import load_policy_text
from controller.runtime.backtest import time_grid
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.backtest_data import START
from tests.runtime.test_hpa_guard import hpa
from tests.support.prometheus_server import prometheus_server

STEP_S = 15.0
MINUTES = 30
WEB_KNOWN_FROM_MIN = 10.0  # kube-state-metrics' first sample of web
HPA_STEP_MIN = 20.0  # the HPA's 15 -> 12

#: the workloads the policy selects: both by name (web joins when its HPA is deleted), or those labelled
#: migrated=yes (web joins when the label is added to it)
BY_NAME = "{kind: Deployment, namespace: shop, names: [api, web]}"
BY_LABEL = "{kind: Deployment, namespace: shop, selector: {matchLabels: {migrated: 'yes'}}}"
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: takeover}
spec:
  targets: TARGETS
  interval: 15s
  replicas: {min: 2, max: 30}
  scaling:
    metrics:
      - {name: rps, query: 'app_rps{namespace="shop"}', target: {averagePerReplica: 100}}
    smoothing: {ewma: {halfLife: 30s}}
    tolerance: 0.05
    behavior:
      scaleUp: {stabilizationWindow: 0s, policies: [{type: Pods, value: 2, period: 1m}]}
      scaleDown: {stabilizationWindow: 3m, policies: [{type: Percent, value: 20, period: 1m}]}
"""


def web_replicas(t: np.ndarray) -> np.ndarray:
    """What the HPA ran web at (NaN before kube-state-metrics' first sample of it)."""
    minute = (t - START) / 60.0
    return np.where(minute < WEB_KNOWN_FROM_MIN, np.nan, np.where(minute < HPA_STEP_MIN, 15.0, 12.0))


def openmetrics(family: str, t: np.ndarray, series: dict[str, np.ndarray]) -> str:
    """OpenMetrics text of one gauge family: {deployment: (T,) values (NaN: no sample)} at times t."""
    lines = [f"# TYPE {family} gauge"]
    for name, values in series.items():
        lines += [f'{family}{{namespace="shop",deployment="{name}"}} {v!r} {s:.0f}'
                  for v, s in zip(values.tolist(), t.tolist()) if np.isfinite(v)]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus holding the load and the replicas that ran (see the module docstring)."""
    t = time_grid(START, START + MINUTES * 60 - STEP_S, STEP_S)
    load = openmetrics("app_rps", t, {"api": np.full(t.size, 250.0), "web": np.full(t.size, 150.0)})
    ran = openmetrics("kube_deployment_spec_replicas", t, {"api": np.full(t.size, 3.0), "web": web_replicas(t)})
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom-takeover"), retention="3650d",
                           history=load) as server:
        server.stop()
        server.load_openmetrics(ran)
        server.start()
        yield server


def spec_of(server, name: str) -> int:
    engine = server.world.engine
    return int(engine.spec_replicas[engine.index(name)])


class Migration:
    """How web comes to join the running policy: its HPA deleted, or the label the selector matches added."""

    def __init__(self, how: str, api_client):
        self.how = how
        self.apps, self.autoscaling = client.AppsV1Api(api_client), client.AutoscalingV2Api(api_client)

    def policy(self) -> RuntimePolicy:
        [loaded] = load_policy_text(POLICY.replace("TARGETS", BY_NAME if self.how == "hpa" else BY_LABEL),
                                    "takeover.yaml")
        return RuntimePolicy.of(loaded)

    def before(self) -> None:
        """web under its HPA (or unlabelled), api governed by the policy."""
        if self.how == "hpa":
            self.autoscaling.create_namespaced_horizontal_pod_autoscaler("shop", hpa("web-hpa"))
        else:
            self.label("api")

    def join(self) -> None:
        if self.how == "hpa":
            self.autoscaling.delete_namespaced_horizontal_pod_autoscaler("web-hpa", "shop")
        else:
            self.label("web")

    def label(self, name: str) -> None:
        self.apps.patch_namespaced_deployment(name, "shop", {"metadata": {"labels": {"migrated": "yes"}}})


@pytest.mark.parametrize("how, join_min, web_at_join, expected, warm, why", [
    pytest.param("hpa", 22.0, 12, [9, 9, 9, 9, 7, 7], True, None,
                 id="two-minutes-after-the-hpa's-last-step-it-scales-down-at-once"),
    pytest.param("label", 22.0, 12, [9, 9, 9, 9, 7, 7], True, None,
                 id="labelled-to-match-the-selector-two-minutes-after-the-last-step-it-scales-down-at-once"),
    pytest.param("hpa", 20.5, 12, [12, 12, 9, 9, 9, 9], True, None,
                 id="30s-after-the-hpa's-step-it-waits-until-that-step-is-a-minute-old"),
    # the replay's last tick (19.75) still shows 15; the step counts from there (the replay decided it
    # too: warm_start.events_since_replay), not forgotten: without it, 12 -> 9 at once, 40 % in a minute
    pytest.param("hpa", 20.0, 12, [12, 12, 12, 9, 9, 9], True, None,
                 id="at-the-hpa's-step-before-kube-state-metrics-showed-it-the-step-still-counts"),
    pytest.param("hpa", 12.0, 15, [15] * 12 + [12], False, "younger than the window",
                 id="web's-history-younger-than-the-window-stays-cold-for-one-window"),
])
def test_a_workload_that_joins_a_running_policy_is_taken_over_warm(server, prometheus, tmp_path,  # noqa: F811
                                                                   how, join_min, web_at_join, expected, warm, why):
    """web joins at ``join_min`` after the policy ran api for a minute; ``expected``: web's replicas
    after each cycle from then on. Cold (before: always) it held its count for 12 cycles (3 m)."""
    api_client = official_client(server, tmp_path)
    migration = Migration(how, api_client)
    # the count the HPA left, written as kube-controller-manager writes it, and its pods started
    migration.apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": web_at_join}},
                                                     field_manager="kube-controller-manager")
    server.world.advance(4)
    migration.before()
    cluster = KubernetesCluster(api_client, qps=0, max_retries=1, retry_backoff_s=0.01, request_timeout_s=2.0)
    with PrometheusSource(PrometheusConfig.from_url(prometheus.url, timeout_s=10)) as source:
        rec = Reconciler(migration.policy(), source, cluster, warm_from=source)
        join = START + join_min * 60
        before = [rec.cycle(join - STEP_S * k) for k in (4, 3, 2, 1)]
        migration.join()
        after, web = [], []
        for k in range(len(expected)):
            after.append(rec.cycle(join + STEP_S * k))
            web.append(spec_of(server, "web"))
    cluster.close()

    assert [[t.name for t in r.targets] for r in before] == [["api"]] * 4, "web is not the policy's yet"
    assert before[0].warm_start.warm == ["shop/api"] and all(r.warm_start is None for r in before[1:])
    assert [t.name for t in after[0].targets] == ["api", "web"]
    assert web == expected, f"web after each cycle from its take-over at minute {join_min}: {web}"
    assert spec_of(server, "api") == 3
    info = after[0].warm_start
    assert info.joined and (info.warm, info.cold) == ((["shop/web"], []) if warm else ([], ["shop/web"]))
    assert all(r.warm_start is None for r in after[1:]), "taken over once"
    api_record, web_record = (r.to_dict() for r in cycle_records(after[0], after[0].metric_names))
    assert "warm_start" not in api_record, "api's state was not rebuilt again"
    start = web_record["warm_start"]
    assert start["warm"] is warm and start["joined"] is True
    assert (why in start["why"]) if why else "why" not in start
    assert info.summary().startswith("warm take-over of shop/web" if warm else "cold take-over of shop/web")
    explained = _format_record(jsonable(web_record))  # `setpoint explain`
    assert ("taken over warm from prometheus http://127.0.0.1" if warm else "taken over cold") in explained


def test_without_warm_start_a_joiner_is_taken_over_cold(server, prometheus, tmp_path):  # noqa: F811
    """Without a history source (``--no-warm-start``) nothing is replayed: the joiner's scale-down
    waits one whole stabilization window, as before (what the warm take-over saves)."""
    api_client = official_client(server, tmp_path)
    migration = Migration("hpa", api_client)
    migration.apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 12}},
                                                     field_manager="kube-controller-manager")
    server.world.advance(4)
    migration.before()
    cluster = KubernetesCluster(api_client, qps=0, max_retries=1, retry_backoff_s=0.01, request_timeout_s=2.0)
    with PrometheusSource(PrometheusConfig.from_url(prometheus.url, timeout_s=10)) as source:
        rec = Reconciler(migration.policy(), source, cluster)
        join = START + 22.0 * 60
        for k in (2, 1):
            rec.cycle(join - STEP_S * k)
        migration.join()
        web, results = [], []
        for k in range(13):
            results.append(rec.cycle(join + STEP_S * k))
            web.append(spec_of(server, "web"))
    cluster.close()
    assert web[:12] == [12] * 12 and web[12] < 12, web
    assert all(r.warm_start is None for r in results)



def test_a_policy_that_governed_nothing_takes_its_workload_over(server, prometheus, tmp_path):  # noqa: F811
    """An imported policy names one workload, which its HPA scales: the policy governs nothing
    until the HPA is deleted, so its first warm start comes at the take-over. It is said as one
    (log, records, `setpoint status`), not as the controller's start: before, status showed
    "state: started with the controller 21:26:33" under "controller started 21:24:55" (a drill
    against sim serve), and the log a plain "warm start"."""
    from controller.runtime.status import book_from_records
    from controller.cli.records import _warm_start_line

    api_client = official_client(server, tmp_path)
    migration = Migration("hpa", api_client)
    migration.apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 12}},
                                                     field_manager="kube-controller-manager")
    server.world.advance(4)
    migration.before()
    [loaded] = load_policy_text(POLICY.replace("TARGETS", "{kind: Deployment, namespace: shop, names: [web]}"),
                                "web.yaml")
    cluster = KubernetesCluster(api_client, qps=0, max_retries=1, retry_backoff_s=0.01, request_timeout_s=2.0)
    with PrometheusSource(PrometheusConfig.from_url(prometheus.url, timeout_s=10)) as source:
        rec = Reconciler(RuntimePolicy.of(loaded), source, cluster, warm_from=source)
        join = START + 22.0 * 60
        before = [rec.cycle(join - STEP_S * k) for k in (2, 1)]
        migration.join()
        after = [rec.cycle(join + STEP_S * k) for k in range(2)]
    cluster.close()

    assert [r.targets for r in before] == [[], []] and all(r.warm_start is None for r in before)
    info = after[0].warm_start
    assert info.joined and info.warm == ["shop/web"] and after[1].warm_start is None
    assert info.summary().startswith("warm take-over of shop/web (joined the running policy)")
    records = [jsonable(r.to_dict()) for r in cycle_records(after[0], after[0].metric_names)]
    assert records[0]["warm_start"]["joined"] is True and "cause" not in records[0]["warm_start"]
    line = _warm_start_line(book_from_records(records).view()["takeover"]["targets"], join + STEP_S)
    assert line.startswith("shop/web: taken over warm from prometheus http://127.0.0.1") and "state:" not in line
