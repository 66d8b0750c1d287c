"""`setpoint status` tells when the controller started from when a policy's state was rebuilt.

A policy reload that adds a target gives the policy a fresh reconciler, whose first cycle rebuilds
every target's state from Prometheus' history (web's too); a replica that becomes the leader
rebuilds its state the same way. Status printed that time as "state: started 15:10:00 ...": read
as the controller's start, and for web, after its last action (before the reload). Now it says
why and when ("state: rebuilt at a policy reload 15:10:00", "... when this replica became leader"),
and its first line says when the controller started ("controller started 15:06:00").

The run: `setpoint sim serve`'s API (web 2 replicas, api 3, namespace shop) through the real
client and adapter; a real Prometheus holding the history (app_rps and kube-state-metrics'
replicas, at fixed times); the ControllerService with warm start, its clock fixed; `setpoint
status --server` in a subprocess reading its GET /status, in the zone XST (UTC+05:30).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.runtime.backtest import time_grid
from controller.runtime.http import StatusServer
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.backtest_data import START
from tests.runtime.test_warm_takeover import openmetrics
from tests.support.prometheus_server import prometheus_server

REPO = Path(__file__).resolve().parents[2]
XST = timezone(timedelta(hours=5, minutes=30))
STEP_S = 15.0
STARTED = START + 20 * 60  # the controller's start (its clock), with 20 minutes of history behind
FIRST_CYCLE = STARTED + 15
LATER = STARTED + 4 * 60  # the reload, or the leadership
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: shop}
spec:
  targets: {kind: Deployment, namespace: shop, names: NAMES}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - {name: rps, query: 'app_rps{namespace="shop"}', target: {averagePerReplica: 100}}
    behavior:
      scaleDown: {stabilizationWindow: 1m}
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """The load (web 250 rps, api 300) and the replicas that ran (web 2, api 3) over 30 minutes."""
    t = time_grid(START, START + 30 * 60, STEP_S)
    load = openmetrics("app_rps", t, {"web": np.full(t.size, 250.0), "api": np.full(t.size, 300.0)})
    ran = openmetrics("kube_deployment_spec_replicas", t, {"web": np.full(t.size, 2.0), "api": np.full(t.size, 3.0)})
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom-started"), retention="3650d",
                           history=load) as prom:
        prom.stop()
        prom.load_openmetrics(ran)
        prom.start()
        yield prom


def local(epoch_s: float) -> str:
    """How status prints a time of another day in XST."""
    return datetime.fromtimestamp(epoch_s, XST).strftime("%Y-%m-%d %H:%M")


def status_cli(url: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TZ": "XST-05:30", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "status", "--server", url], capture_output=True,
                          text=True, timeout=60, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("later, state_line", [
    # the edit adds api: a changed policy, a fresh reconciler, every target's state rebuilt (web's too)
    pytest.param("reload-adds-a-target", f"state: rebuilt at a policy reload {local(LATER)}", id="reload-adds-a-target"),
    # a standby since the start, leader 4 minutes later: its first cycle as leader rebuilds the state
    pytest.param("becomes-leader", f"state: rebuilt when this replica became leader {local(LATER)}",
                 id="becomes-leader"),
])
def test_status_says_why_the_state_was_rebuilt_and_when_the_controller_started(server, prometheus, tmp_path,  # noqa: F811
                                                                                later, state_line):
    (tmp_path / "policies").mkdir()
    policy_file = tmp_path / "policies" / "shop.yaml"
    policy_file.write_text(POLICY.replace("NAMES", "[web]" if later == "reload-adds-a-target" else "[web, api]"))
    now, leading = [STARTED], [later != "becomes-leader"]
    source = PrometheusSource(PrometheusConfig.from_url(prometheus.url, timeout_s=10))
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    telemetry = Telemetry()
    service = ControllerService([tmp_path / "policies"], source, cluster, telemetry,
                                ServiceOptions(warm_start=True, reload_every_s=3600, reload_settle_s=0),
                                clock=lambda: now[0], is_leader=lambda: leading[0])
    http = StatusServer("127.0.0.1:0", telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    try:
        now[0] = FIRST_CYCLE
        first = service.run_all_once()
        now[0] = LATER
        if later == "reload-adds-a-target":
            assert [r.warm_start.warm for r in first] == [["shop/web"]]
            policy_file.write_text(POLICY.replace("NAMES", "[web, api]"))
            assert service.reload_if_changed() is True
        else:
            assert first == []  # a standby runs no cycle
            leading[0] = True
        [result] = service.run_all_once()
        assert sorted(result.warm_start.warm) == ["shop/api", "shop/web"], result.warm_start
        out = status_cli(f"http://127.0.0.1:{http.port}")
    finally:
        service.stop()
        http.stop()
        cluster.close()
        source.close()
    assert "state: started" not in out, out  # read as the controller's start, 4 minutes after it
    assert f"{state_line} (" in out, out
    assert ", warm from prometheus http://127.0.0.1:" in out, out
    assert f"controller started {local(STARTED)} (" in out.splitlines()[0], out
