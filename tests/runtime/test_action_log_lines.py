"""The log line of each applied action says what it did; a replica count only for a scale.

Found in a day-2 drill: `applied rolling-restart Deployment/default/cache: None -> None
(SystemicNoRestart)`, every health action logged with 'None -> None' (the replica fields of a
scale). Rows per kind of action, and the line of a rolling restart a live service made through
the simulated Kubernetes API (sim serve's server, the official client).
"""

from __future__ import annotations

import logging

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.model import Action, ActionKind, TargetRef
from controller.runtime.service import ControllerService, ServiceOptions, action_line
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_resume import POLICY as HEALING

WEB = TargetRef("shop", "web", "Deployment")


@pytest.mark.parametrize("action, line", [
    pytest.param(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=7, from_replicas=4),
                 "scale Deployment/shop/web: 4 -> 7 (ScaleUp)", id="scale"),
    pytest.param(Action(ActionKind.RESTART_POD, WEB, "RestartFiringPods", pod="web-abc-1"),
                 "restart-pod Deployment/shop/web: pod web-abc-1 (RestartFiringPods)", id="restart-pod"),
    pytest.param(Action(ActionKind.ROLLING_RESTART, WEB, "SystemicNoRestart"),
                 "rolling-restart Deployment/shop/web (SystemicNoRestart)", id="rolling-restart"),
    pytest.param(Action(ActionKind.ROLLBACK, WEB, "RollbackRevisionWorse", revision="2"),
                 "rollback Deployment/shop/web: to revision 2 (RollbackRevisionWorse)", id="rollback"),
    pytest.param(Action(ActionKind.PAUSE, WEB, "HoldForEvidence"),
                 "pause Deployment/shop/web (HoldForEvidence)", id="rollout-pause"),
])
def test_action_lines(action, line):
    assert action_line(action) == line


def test_a_live_rolling_restart_is_logged_without_replica_counts(server, tmp_path, caplog):  # noqa: F811
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "heal.yaml").write_text(HEALING)
    world = server.world
    world.advance(2)
    metrics = SimMetrics(world.engine, {"mem": "memory_mib"}, window_s=15, tick_s=world.tick_s)
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    service = ControllerService([folder], metrics, cluster, Telemetry(), ServiceOptions(),
                                clock=lambda: world.engine.now)
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    try:
        for _ in range(3):
            world.advance(3)
            metrics.push(world.engine.signals())
            service.run_cycle("web-heal")
    finally:
        service.stop()
        cluster.close()
    applied = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applied ")]
    # every pod over the limit: a systemic problem, one rolling restart (the budget: 1 per hour)
    assert applied == ["applied rolling-restart Deployment/shop/web (SystemicNoRestart)"]
