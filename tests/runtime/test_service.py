"""The live runtime over the simulated ports: cycles, records, metrics, dry-run, hot reload."""

from __future__ import annotations

import logging
import json
import time
import urllib.request

import numpy as np
import pytest

from controller.errors import MetricsUnavailable, PolicyError
from controller.model import REASON_CODES
from controller.ports import Samples
from controller.runtime.dryrun import DryRunCluster
from controller.runtime.http import StatusServer, parse_listen
from controller.runtime.records import read_records
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from simulators import faults as F
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.workload import RevisionProps, ServiceConfig

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: web}}
spec:
  targets: {{kind: Deployment, namespace: default, names: [web]}}
  interval: {interval}
  replicas: {{min: 2, max: 20}}
  scaling:
    metrics:
      - name: rps
        query: rps_query
        target: {{averagePerReplica: {target}}}
    behavior:
      scaleUp: {{policies: [{{type: Percent, value: 1000, period: 15s}}]}}
      scaleDown: {{stabilizationWindow: 0s}}
"""
T0 = 1_700_000_000.0


def sim(load_rps: float = 1000.0):
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30),
                          ServiceConfig("api", capacity_rps=100, initial_replicas=3)], rng=1)
    metrics = SimMetrics(cluster, {"rps_query": "offered_rps"}, window_s=60, tick_s=5)
    targets = SimTargets(cluster, ["web"])
    metrics.attach(targets)
    for k in range(4):
        cluster.step(T0 + 5 * k, 5.0, np.array([load_rps, 100.0]))
        metrics.push(cluster.signals())
    return cluster, metrics, targets


def write_policy(folder, interval="15s", target=100):
    path = folder / "web.yaml"
    path.write_text(POLICY.format(interval=interval, target=target))
    return path


def test_one_cycle_scales_writes_records_and_counts(tmp_path):
    cluster, metrics, targets = sim()
    write_policy(tmp_path)
    telemetry = Telemetry()
    service = ControllerService([tmp_path], metrics, targets, telemetry,
                                ServiceOptions(records_path=tmp_path / "decisions.jsonl"), clock=lambda: T0 + 20)
    [result] = service.run_all_once()
    service.stop()
    assert [(a.target.name, a.from_replicas, a.replicas) for a in result.actions] == [("web", 4, 10)]
    assert cluster.spec_replicas.tolist() == [10, 3]
    [record] = list(read_records(tmp_path / "decisions.jsonl"))
    assert record["target"] == "default/web" and record["desired"] == 10 and record["reason"] == "ScaleUp"
    assert telemetry.registry.get_sample_value("setpoint_actions_total", {"policy": "web", "kind": "scale"}) == 1
    assert telemetry.registry.get_sample_value("setpoint_desired_replicas", {"policy": "web", "target": "default/web"}) == 10


def test_dry_run_decides_the_same_and_applies_nothing(tmp_path, caplog):
    cluster, metrics, targets = sim()
    write_policy(tmp_path)
    dry = DryRunCluster(targets)
    service = ControllerService([tmp_path], metrics, dry, Telemetry(), clock=lambda: T0 + 20)
    caplog.set_level(logging.INFO, logger="setpoint")
    [result] = service.run_all_once()
    assert cluster.spec_replicas.tolist() == [4, 3]
    assert [(a.target.name, a.replicas) for a in dry.would_apply] == [("web", 10)]
    assert result.decision.desired.tolist() == [10]
    # one line per action it would take, with its counts and reason (it logged two, one bare)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "would" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("would scale Deployment/default/web: 4 -> 10 ("), said


def test_invalid_policies_refuse_to_start(tmp_path):
    _, metrics, targets = sim()
    (tmp_path / "bad.yaml").write_text(POLICY.format(interval="15", target=100))
    with pytest.raises(PolicyError) as exc:
        ControllerService([tmp_path], metrics, targets, Telemetry())
    assert "bad.yaml:6: spec.interval" in str(exc.value)


def test_broken_reload_keeps_the_last_good_policies(tmp_path):
    _, metrics, targets = sim()
    path = write_policy(tmp_path)
    telemetry = Telemetry()
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(reload_settle_s=0),
                                clock=lambda: T0 + 20)
    path.write_text(path.read_text().replace("averagePerReplica: 100", "averagePerReplica: -1"))
    assert service.reload_if_changed() is False
    assert service.policies["web"].params.metrics[0].target == 100.0
    assert telemetry.registry.get_sample_value("setpoint_policy_reload_failures_total") == 1
    path.write_text(POLICY.format(interval="15s", target=50))
    assert service.reload_if_changed() is True
    assert service.policies["web"].params.metrics[0].target == 50.0
    [result] = service.run_all_once()
    assert result.decision.desired.tolist() == [20]


def test_a_failing_cycle_is_reported_and_the_loop_goes_on(tmp_path):
    _, metrics, targets = sim()
    write_policy(tmp_path)
    telemetry = Telemetry()

    class Exploding:
        def resolve(self, selector):
            raise RuntimeError("api exploded")

    service = ControllerService([tmp_path], metrics, Exploding(), telemetry, clock=lambda: T0)
    assert service.run_all_once() == []
    assert telemetry.registry.get_sample_value("setpoint_errors_total", {"policy": "web", "source": "cycle"}) == 1


def test_scheduler_runs_cycles_and_serves_metrics_and_probes(tmp_path):
    cluster, metrics, targets = sim()
    write_policy(tmp_path, interval="1s")
    telemetry = Telemetry()
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(jitter_s=0.1),
                                clock=lambda: T0 + 20)
    server = StatusServer("127.0.0.1:0", telemetry.registry, service.healthy, service.ready).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert not_ready.value.code == 503
        service.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not service.ready()[0]:
            time.sleep(0.2)
        assert urllib.request.urlopen(base + "/readyz", timeout=5).status == 200
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        body = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert 'setpoint_decisions_total{policy="web",reason="ScaleUp"}' in body
        assert "setpoint_cycle_duration_seconds_bucket" in body
    finally:
        service.stop()
        server.stop()
    assert not service.scheduler.running and cluster.spec_replicas[0] == 10


@pytest.mark.parametrize("listen,expect", [
    pytest.param("0.0.0.0:8080", ("0.0.0.0", 8080), id="host-and-port"),
    pytest.param(":9000", ("0.0.0.0", 9000), id="port-only"),
    pytest.param("[::1]:8080", ("::1", 8080), id="ipv6-literal"),
])
def test_parse_listen(listen, expect):
    assert parse_listen(listen) == expect


def test_the_simulated_cluster_listens_on_loopback_by_default_and_refuses_the_same_ports():
    from simulators.kubeapi.server import parse_listen as sim_listen

    assert sim_listen(":8001") == ("127.0.0.1", 8001)
    with pytest.raises(ValueError, match="a port from 0 to 65535"):  # bind() raised OverflowError: exit 70
        sim_listen("127.0.0.1:99999")


@pytest.mark.parametrize("listen", ["8080", "host:", "host:99999", "host:http"])
def test_parse_listen_rejects(listen):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(listen)


def test_json_log_lines(caplog_json=None):
    import logging

    from controller.runtime.telemetry import JsonFormatter

    record = logging.LogRecord("setpoint.runtime", logging.INFO, __file__, 1, "applied %s", ("scale",), None)
    record.policy = "web"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "applied scale" and line["policy"] == "web" and line["level"] == "info"
    assert line["time"].endswith("Z")


def test_withheld_replicas_are_exported_per_target(tmp_path):
    """A rollout to a crash-looping release holds one of web's 4 pods unready (maxUnavailable
    25%). The policy states no start-up, so a pod counts as withheld once it has run unready for
    twice the 120 s floor, with web short of Ready pods that long: from then on the cycle sizes on
    top of it and setpoint_withheld_replicas says so (0 before)."""
    cluster, metrics, targets = sim(load_rps=300.0)
    write_policy(tmp_path)
    cluster.rollout(0, RevisionProps(crash_loop=True, label="broken"))
    telemetry, now = Telemetry(), [T0 + 20]
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(), clock=lambda: now[0])
    seen = []
    try:
        for k in range(4, 80):  # 6 minutes of 5 s ticks, a cycle every 15 s
            cluster.step(T0 + 5 * k, 5.0, np.array([300.0, 100.0]))
            metrics.push(cluster.signals())
            if k % 3 == 0:
                now[0] = T0 + 5 * k
                [result] = service.run_all_once()
                gauge = telemetry.registry.get_sample_value("setpoint_withheld_replicas",
                                                            {"policy": "web", "target": "default/web"})
                seen.append((now[0] - T0, gauge, result.decision.desired.tolist()[0]))
    finally:
        service.stop()
    assert all(gauge == 0 for t, gauge, _ in seen if t < 240)
    assert seen[-1][1:] == (1.0, 4)  # 300 rps at 100 per replica: 3 serving + 1 withheld


def test_ready_replicas_are_exported_per_target_and_read_0_through_a_readiness_outage(tmp_path):
    """Every pod of web fails its readiness probe from 60 s to 240 s (a dependency they check is
    down): setpoint_ready_replicas reads web's 4 Ready pods before, 0 through the outage (what
    SetpointTargetNotReady alerts on, with desired replicas above 0) and 4 again after."""
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30)], rng=1,
                         faults=[F.ReadinessOutage(at_s=T0 + 60, duration_s=180.0)])
    metrics = SimMetrics(cluster, {"rps_query": "offered_rps"}, window_s=60, tick_s=5)
    targets = SimTargets(cluster, ["web"])
    metrics.attach(targets)
    write_policy(tmp_path, target=75)  # 300 rps: 4 replicas
    telemetry, now = Telemetry(), [T0]
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(), clock=lambda: now[0])
    seen = {}
    try:
        for k in range(0, 72):  # 6 minutes of 5 s ticks, a cycle every 15 s
            cluster.step(T0 + 5 * k, 5.0, np.array([300.0]))
            metrics.push(cluster.signals())
            if k % 3 == 0 and k > 0:
                now[0] = T0 + 5 * k
                service.run_all_once()
                labels = {"policy": "web", "target": "default/web"}
                seen[5 * k] = (telemetry.registry.get_sample_value("setpoint_ready_replicas", labels),
                               telemetry.registry.get_sample_value("setpoint_desired_replicas", labels))
    finally:
        service.stop()
    assert {t: ready for t, (ready, _) in seen.items() if t < 60} == {15: 4, 30: 4, 45: 4}
    assert {ready for t, (ready, _) in seen.items() if 60 <= t < 240} == {0}
    assert {desired for t, (_, desired) in seen.items()} == {4}  # held through it: no scale-down
    assert seen[345][0] == 4


def test_a_controller_started_during_a_stuck_rollout_counts_the_withheld_pod_at_once(tmp_path):
    """Five minutes into a stuck rollout a controller starts (a restart, a leader change): its
    first cycle reads web's pods (first seen short) and counts the one past twice the 120 s
    floor, so it holds 4 replicas instead of sizing 300 rps onto 3 and scaling down beneath the
    stall."""
    cluster, metrics, targets = sim(load_rps=300.0)
    write_policy(tmp_path)
    cluster.rollout(0, RevisionProps(crash_loop=True, label="broken"))
    for k in range(4, 64):
        cluster.step(T0 + 5 * k, 5.0, np.array([300.0, 100.0]))
        metrics.push(cluster.signals())
    now = [T0 + 320]
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(), clock=lambda: now[0])
    try:
        for k in range(64, 70):  # its next cycles too: the pod keeps counting
            cluster.step(T0 + 5 * k, 5.0, np.array([300.0, 100.0]))
            metrics.push(cluster.signals())
            if k % 3 == 1:
                now[0] = T0 + 5 * k
                [result] = service.run_all_once()
                assert result.withheld is not None and result.withheld.tolist() == [1.0], k
                assert result.decision.desired.tolist() == [4], k
    finally:
        service.stop()


class Gappy:
    """A metrics source whose answers can lose the series of some targets (``gone``: a renamed
    metric, a relabeling), read 1e300 for some (``wild``: a broken exporter) or fail whole (``down``)."""

    def __init__(self, inner):
        self.inner, self.gone, self.wild, self.down = inner, set(), set(), False

    def query(self, expr, targets, at, **kwargs):
        if self.down:
            raise MetricsUnavailable("connection refused")
        s = self.inner.query(expr, targets, at, **kwargs)
        keep = np.array([t.name not in self.gone for t in targets], bool)
        wild = np.array([t.name in self.wild for t in targets], bool)
        values = np.where(wild, 1e300, np.where(keep, s.values, np.nan))
        return Samples(values, s.present & keep, s.age_s, s.conflict)


def test_a_metric_with_no_sample_is_warned_once_and_its_recovery_once(tmp_path, caplog):
    cluster, metrics, targets = sim()
    write_policy(tmp_path)
    source = Gappy(metrics)
    service = ControllerService([tmp_path], source, targets, Telemetry(), clock=lambda: T0 + 20)
    steps = [("gap", {"web"}, False), ("gap", {"web"}, False), ("query fails", {"web"}, True),
             ("gap", {"web"}, False), ("back", set(), False), ("back", set(), False),
             ("query fails", set(), True)]
    said = []
    for name, gone, down in steps:
        source.gone, source.down = gone, down
        caplog.clear()
        with caplog.at_level("WARNING", logger="setpoint.runtime"):
            [result] = service.run_all_once()
        # the gap lines (they count targets), not the failing query's (tests/runtime/test_metric_outage_said.py)
        said.append((name, [r for r in caplog.records if getattr(r, "metric", None) == "rps" and hasattr(r, "targets")]))
        assert (REASON_CODES[int(result.decision.reason[0])] == "MetricsMissing") is (bool(gone) or down)
    lines = [(name, r.getMessage()) for name, records in said for r in records]
    assert lines == [("gap", "metric rps: the query answered no sample for 1 of 1 targets"),
                     ("back", "metric rps: a sample for every target again")]
    first = said[0][1][0]
    assert (first.policy, first.metric, first.query, first.targets_missing, first.targets) == (
        "web", "rps", "rps_query", 1, 1)


def test_an_implausible_reading_is_held_and_warned_once_and_its_end_once(tmp_path, caplog):
    cluster, metrics, targets = sim()
    write_policy(tmp_path)
    source = Gappy(metrics)
    service = ControllerService([tmp_path], source, targets, Telemetry(), clock=lambda: T0 + 20)
    steps = [("plausible", set(), False), ("1e300", {"web"}, False), ("1e300", {"web"}, False),
             ("query fails", {"web"}, True), ("1e300", {"web"}, False), ("plausible", set(), False),
             ("plausible", set(), False)]
    said, desired = [], []
    for name, wild, down in steps:
        source.wild, source.down = wild, down
        caplog.clear()
        with caplog.at_level("WARNING", logger="setpoint.runtime"):
            [result] = service.run_all_once()
        said.append((name, [r for r in caplog.records if getattr(r, "metric", None) == "rps" and hasattr(r, "targets")]))
        desired.append(int(result.decision.desired[0]))
        assert (REASON_CODES[int(result.decision.reason[0])] == "MetricsMissing") is (bool(wild) or down), name
    assert desired == [10] * 7  # 1000 rps at 100 per replica; 1e300 never took it to replicas.max (20)
    lines = [(name, r.getMessage()) for name, records in said for r in records]
    assert lines == [("1e300", "metric rps: an implausible sample (far above what replicas.max could serve; "
                               "core/scaling/signal.py) for 1 of 1 targets, not used"),
                     ("plausible", "metric rps: no implausible sample any more")]
    first = said[1][1][0]
    assert (first.policy, first.metric, first.query, first.targets_implausible, first.targets) == (
        "web", "rps", "rps_query", 1, 1)
    service.stop()


def test_a_policy_that_selects_no_workload_is_warned_once_and_its_end_once(tmp_path, caplog):
    # a misspelt name (or namespace, or labels on no workload yet): the policy does nothing, and
    # said nothing, each cycle
    cluster, metrics, _ = sim()
    targets = SimTargets(cluster, ["web", "api"], match_selectors=True)  # selectors matched as the real API
    path = tmp_path / "web.yaml"
    path.write_text(POLICY.format(interval="15s", target=100).replace("names: [web]", "names: [wbe]"))
    telemetry = Telemetry()
    service = ControllerService([tmp_path], metrics, targets, telemetry, clock=lambda: T0 + 20)
    with caplog.at_level("WARNING", logger="setpoint.runtime"):
        for _ in range(3):
            [result] = service.run_all_once()
            assert result.targets == []
    said = [r.getMessage() for r in caplog.records if "selects" in r.getMessage()]
    assert said == ["policy web selects no workload: no Deployment named wbe in namespace default (check the "
                    "namespace, names and labels: kubectl get deployment -n default); it acts on nothing until one "
                    "appears"]
    assert telemetry.registry.get_sample_value("setpoint_selected_targets", {"policy": "web"}) == 0
    caplog.clear()
    path.write_text(POLICY.format(interval="15s", target=100))
    deadline = time.monotonic() + 10
    while not service.reload_if_changed() and time.monotonic() < deadline:  # waits for the file to settle
        time.sleep(0.5)
    with caplog.at_level("WARNING", logger="setpoint.runtime"):
        [result] = service.run_all_once()
    assert [t.name for t in result.targets] == ["web"]
    assert [r.getMessage() for r in caplog.records if "selects" in r.getMessage()] == [
        "policy web selects 1 workload again"]
    assert telemetry.registry.get_sample_value("setpoint_selected_targets", {"policy": "web"}) == 1


@pytest.mark.parametrize("workers", [1, 7])
def test_the_scheduler_runs_cycles_on_as_many_threads_as_workers(tmp_path, workers):
    """ServiceOptions.workers (setpoint run --workers): the scheduler's pool size, read from
    APScheduler's executor (its internals: no public accessor)."""
    _, metrics, targets = sim()
    write_policy(tmp_path)
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(workers=workers),
                                clock=lambda: T0 + 20)
    assert service.scheduler._executors["default"]._pool._max_workers == workers
    service.stop()


class _LabelledMetrics:
    """The simulator's metrics with a Prometheus source's ``config.target_labels`` (what
    ``setpoint run --target-labels`` sets)."""

    def __init__(self, metrics, target_labels):
        self._metrics = metrics
        self.config = type("Config", (), {"target_labels": target_labels})()

    def __getattr__(self, name):
        return getattr(self._metrics, name)


@pytest.mark.parametrize("target_labels, warned", [
    pytest.param(None, True, id="default-labels-namespace-deployment"),
    pytest.param(("namespace", "app"), False, id="run-with-target-labels-namespace-app"),
])
def test_the_warnings_at_load_judge_queries_by_the_labels_the_metrics_are_read_by(tmp_path, caplog, target_labels,
                                                                                 warned):
    """A query grouped by (namespace, app) is no target's under the default labels, and a
    target's under --target-labels namespace,app: the warning said at each load follows them."""
    from controller.model import TargetLabels

    _, metrics, targets = sim()
    (tmp_path / "web.yaml").write_text(POLICY.format(interval="15s", target=100).replace(
        "query: rps_query", "query: sum by (namespace, app) (rps_query)"))
    source = metrics if target_labels is None else _LabelledMetrics(metrics, TargetLabels.of(target_labels))
    caplog.set_level(logging.WARNING, logger="setpoint")
    ControllerService([tmp_path], source, targets, Telemetry(), clock=lambda: T0 + 20).stop()
    said = [r.getMessage() for r in caplog.records if "keep namespace but not" in r.getMessage()]
    assert len(said) == (1 if warned else 0), said
