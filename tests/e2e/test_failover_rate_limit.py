"""End to end: a scale-down rate limit ("at most 1 pod a minute down") holds across a leader
change, with real processes on loopback: `setpoint sim serve`, a real Prometheus scraping it,
and two `setpoint run --leader-elect` replicas sharing the simulated API's Lease.

The load is far below what 8 pods serve from the start, so the policy wants 2 pods at once and
its rate limit (Pods 1 per 60 s, no stabilization window) lets it remove one a minute. The
leader is killed right after its first step (SIGKILL: the Lease runs out, LEASE_DURATION after its
last renewal; SIGTERM: it is released, the standby takes it within its retry period). The replicas
run with short Lease timings (5s / 4s / 1s, not client-go's 15s / 10s / 2s) so that the test does
not wait out a real 15 s Lease; the rate limit's period is still far longer than the failover. The new leader's warm start has less than its 62 s
window of history in Prometheus (the run is younger), so its targets start cold: only the scale
events the old leader wrote ahead of its step (ConfigMap setpoint-state-<policy>.scale-events)
tell it a pod went a moment ago. Without them it removes the next pod at its first cycle.

The new leader's GET /status must also show that step as web's last action, taken before it led
(read back from the old leader's Event; it showed "none").

What is asserted comes from the simulated API (spec.replicas polled every 0.2 s, the ConfigMap
writes from a watch), and from the decision records of both replicas (which replica decided
what, and why). Every wait is bounded; none assumes a speed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.test_live_loop import SETPOINT, Proc, serve_scenario, wait_until
from tests.support.prometheus_server import ScrapeTarget, free_port, http_get, prometheus_server

PERIOD_S = 60.0
# a step's time is seen by polling (0.2 s) on a loaded machine: two steps closer than the period
# by less than this are not taken for a violation (a missed limit is 15-20 s early)
TIMING_SLACK_S = 3.0
POLICY_NAME = "e2e-failover"
#: `setpoint run --lease-duration/--renew-deadline/--retry-period` of both replicas
LEASE_TIMINGS = ("--lease-duration", "5s", "--renew-deadline", "4s", "--retry-period", "1s")
EVENTS_CONFIG_MAP = f"setpoint-state-{POLICY_NAME}.scale-events"

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: e2e-failover}
spec:
  duration: 30m
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      capacityPerPod: 100
      startupDelay: 2s
      schedulingDelay: 0s
      initialReplicas: 8
      maxPods: 20
      load: [{constant: {rps: 150}}]
"""

POLICY = f"""\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {POLICY_NAME}}}
spec:
  targets: {{kind: Deployment, namespace: default, names: [web]}}
  interval: 2s
  replicas: {{min: 2, max: 20}}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total{{namespace="default"}}[10s]))
        target: {{averagePerReplica: 100}}
    tolerance: {{up: 0.05, down: 0.15}}
    behavior:
      scaleDown: {{stabilizationWindow: 0s, policies: [{{type: Pods, value: 1, period: 1m}}]}}
"""


@dataclass
class ApiWatch:
    """What the simulated API shows over time, seen from a thread: spec.replicas of web (polled:
    (wall time, replicas) at each change) and the writes of ConfigMaps (a watch: (wall time,
    name, event type))."""

    kubeconfig: Path
    replicas: list[tuple[float, int]] = field(default_factory=list)
    config_map_writes: list[tuple[float, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "ApiWatch":
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._apps, self._core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
        self._threads = [threading.Thread(target=self._poll_replicas, daemon=True),
                         threading.Thread(target=self._watch_config_maps, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _poll_replicas(self) -> None:
        while not self._stop.is_set():
            try:
                n = self._apps.read_namespaced_deployment_scale("web", "default", _request_timeout=5).spec.replicas
            except Exception as exc:  # a slow answer on a loaded machine: the next poll tells
                self.errors.append(f"replicas: {exc!r}")
            else:
                if not self.replicas or self.replicas[-1][1] != n:
                    self.replicas.append((time.time(), n))
            self._stop.wait(0.2)

    def _watch_config_maps(self) -> None:
        from kubernetes import watch

        version = self._core.list_namespaced_config_map("default", _request_timeout=5).metadata.resource_version
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self._core.list_namespaced_config_map, "default", resource_version=version,
                                      timeout_seconds=5, _request_timeout=10):
                    version = event["object"].metadata.resource_version
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.config_map_writes.append((time.time(), event["object"].metadata.name, event["type"]))
                    if self._stop.is_set():
                        break
            except Exception as exc:  # resumed from the last version seen
                self.errors.append(f"configmaps: {exc!r}")
                self._stop.wait(0.5)
            finally:
                w.stop()

    def current(self) -> int | None:
        return self.replicas[-1][1] if self.replicas else None

    def removals(self) -> list[tuple[float, int]]:
        """(time, pods removed) of each decrease of spec.replicas."""
        return [(t, before - after) for (_, before), (t, after) in zip(self.replicas, self.replicas[1:])
                if after < before]


def removed_within_a_period(removals: list[tuple[float, int]], period_s: float) -> int:
    """The most pods removed within any window shorter than ``period_s``."""
    return max((sum(n for u, n in removals if t <= u < t + period_s) for t, _ in removals), default=0)


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return [r for r in out if r.get("target") == "default/web"]


def leads(url: str) -> bool:
    status, body = http_get(url + "/status", timeout_s=5)
    return status == 200 and json.loads(body).get("leader") is True


@dataclass
class Replica:
    name: str
    proc: Proc
    url: str
    records: Path


def start_replica(name: str, tmp_path: Path, prom_url: str, kubeconfig: Path) -> Replica:
    port = free_port()
    proc = Proc([*SETPOINT, "run", "--leader-elect", *LEASE_TIMINGS, "--policies", "policies", "--prometheus", prom_url,
                 "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}", "--records", f"{name}.jsonl"],
                tmp_path / f"{name}.log", tmp_path)
    return Replica(name, proc, f"http://127.0.0.1:{port}", tmp_path / f"{name}.jsonl")


def kill(replica: Replica, how: signal.Signals) -> None:
    os.killpg(replica.proc.popen.pid, how)
    replica.proc.popen.wait(30)


def last_action(url: str) -> dict | None:
    """What GET /status shows as web's last action."""
    status, body = http_get(url + "/status", timeout_s=5)
    assert status == 200, body
    return json.loads(body)["policies"][POLICY_NAME]["targets"]["default/web"]["last_action"]


# shown: whether the new leader's status must show the old leader's step as its last action (read
# back from its Event); after a SIGKILL that Event may not have left the killed process (sent in the
# background right after the step): then none, never anything else
@pytest.mark.parametrize("how, takeover_s, shown", [
    pytest.param(signal.SIGKILL, 45.0, False, id="sigkill-the-lease-runs-out"),
    pytest.param(signal.SIGTERM, 30.0, True, id="sigterm-the-lease-is-released"),
])
def test_scale_down_rate_limit_holds_across_a_leader_change(tmp_path, how, takeover_s, shown):
    pytest.importorskip("kubernetes")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(POLICY)
    procs: list[Proc] = []
    watcher = None
    try:
        kubeconfig, metrics_port = serve_scenario(tmp_path, SCENARIO, procs)
        watcher = ApiWatch(kubeconfig).start()
        with prometheus_server([ScrapeTarget.of(f"127.0.0.1:{metrics_port}")], scrape_interval="1s") as prom:
            replicas = [start_replica(name, tmp_path, prom.url, kubeconfig) for name in ("a", "b")]
            procs += [r.proc for r in replicas]
            leader = wait_until(lambda: next((r for r in replicas if leads(r.url)), None), 60,
                                what="a replica taking the Lease")
            standby = next(r for r in replicas if r is not leader)

            wait_until(lambda: watcher.current() == 7, 90, every_s=0.1, what="the leader's first step, 8 -> 7")
            kill(leader, how)  # right after its step: its records may end before it
            killed_at = time.time()

            wait_until(lambda: leads(standby.url), takeover_s, what="the standby taking the Lease")
            took_over_at = time.time()
            # its first readings are partial (MetricsRecovering holds a scale-down for the query's 10 s range);
            # then it decides on whole readings: had it forgotten the step, it removed a pod at the first
            decided = wait_until(lambda: len(whole := [r for r in records(standby.records)
                                                      if r["reason"] != "MetricsRecovering"]) >= 3 and whole,
                                 45, what="three decisions of the new leader on whole readings")
            seen = list(watcher.replicas)
            restored = last_action(standby.url)  # the new leader has not acted: what it read back, if anything
    finally:
        if watcher is not None:
            watcher.stop()
        for p in reversed(procs):
            p.stop()

    step_at = next(t for t, n in seen if n == 7)
    timeline = [(round(t - step_at, 1), n) for t, n in seen]
    first = decided[0]
    recovering = [r for r in records(standby.records) if r["reason"] == "MetricsRecovering"]
    context = (f"replicas (s after the first step): {timeline}; killed {killed_at - step_at:.1f} s after it, "
               f"standby led {took_over_at - step_at:.1f} s after; "
               f"{len(recovering)} cycles MetricsRecovering, then {first['at'] - step_at:.1f} s after the step: "
               f"{first['current']} -> {first['desired']} ({first['reason']}); its warm start: "
               f"{(recovering or decided)[0].get('warm_start', {}).get('why', 'warm')}")
    print(context)
    writes = [(round(t - step_at, 1), name) for t, name, _ in watcher.config_map_writes]
    cycles = sorted(r["at"] for rep in replicas for r in records(rep.records))
    print(f"ConfigMap writes (s after the first step): {writes}; {len(cycles)} cycles recorded, "
          f"{sum(1 for rep in replicas for r in records(rep.records) if r['action'])} with an action")
    assert removed_within_a_period(watcher.removals(), PERIOD_S - TIMING_SLACK_S) <= 1, context
    assert restored is not None or not shown, context
    if restored is not None:
        assert (restored["action"], restored["from"], restored["to"], restored.get("before_leading")) == \
            ("scale", 8, 7, True), restored
        at = datetime.fromisoformat(restored["at"].replace("Z", "+00:00")).timestamp()
        assert abs(at - step_at) <= TIMING_SLACK_S, (restored, step_at)  # its Event's second: when it was taken
    # the test can fail: the new leader wanted the pods gone and only the rate limit kept them
    assert first["current"] == 7 and first["stabilized"] < 7 and first["reason"] == "RateLimitedDown", context
    assert all(r["desired"] == 7 for r in decided if r["at"] < step_at + PERIOD_S - TIMING_SLACK_S), context
