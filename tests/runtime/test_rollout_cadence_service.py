"""The live service's health-only job (``spec.health.rolloutInterval``): scheduled only for a
health policy whose rollout interval is shorter than its interval, and a cycle only while the
last cycle saw a rollout in progress (simulated cluster, fixed clock)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from simulators.workload import RevisionProps
from tests.runtime.test_service import POLICY, T0, sim

HEALTH = """\
  health:
    checks:
      - name: overloaded
        query: rps_query
        unhealthy: {{above: 1000000000, for: 30s}}
        action: rollback
{extra}"""


def write(folder, health: str | None) -> None:
    text = POLICY.format(interval="15s", target=100) + ("" if health is None else HEALTH.format(extra=health))
    (folder / "web.yaml").write_text(text)


@pytest.mark.parametrize("health,job", [
    pytest.param("", 5.0, id="health-policy-default-5s"),
    pytest.param("    rolloutInterval: 2s\n", 2.0, id="health-policy-2s"),
    pytest.param("    rolloutInterval: 15s\n", None, id="not-shorter-than-the-interval"),
    pytest.param(None, None, id="scaling-only"),
])
def test_health_only_job_is_scheduled_only_when_it_can_run(tmp_path, health, job):
    _, metrics, targets = sim()
    write(tmp_path, health)
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(), clock=lambda: T0 + 20)
    service.start()
    try:
        found = service.scheduler.get_job("health:web")
        assert (found.trigger.interval.total_seconds() if found else None) == job
        assert service.scheduler.get_job("policy:web") is not None
    finally:
        service.stop()


def test_health_only_cycles_run_only_while_a_rollout_is_in_progress(tmp_path):
    cluster, metrics, targets = sim(load_rps=400.0)
    write(tmp_path, "")
    now = [T0 + 20]
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(), clock=lambda: now[0])
    try:
        assert service.run_health_cycle("web") is None  # no cycle has seen anything yet
        [full] = service.run_all_once()
        assert full.decision is not None and not full.view.rollout.any()
        assert service.run_health_cycle("web") is None  # no rollout
        cluster.rollout(0, RevisionProps(), T0 + 25)
        cluster.step(T0 + 25, 5.0, np.array([400.0, 100.0]))
        metrics.push(cluster.signals())
        now[0] = T0 + 35
        [full] = service.run_all_once()
        assert full.view.rollout[0]
        replicas = cluster.spec_replicas.tolist()
        now[0] = T0 + 40
        health_only = service.run_health_cycle("web")
        assert health_only is not None and health_only.decision is None and health_only.healing is not None
        assert not health_only.actions and cluster.spec_replicas.tolist() == replicas
        assert service.run_health_cycle("nope") is None
    finally:
        service.stop()
