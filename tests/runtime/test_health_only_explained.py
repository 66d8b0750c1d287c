"""A health-only policy's cycles are explained by its health side, not as missing metrics.

Found in a day-2 drill: every record of a health-only policy read `cache: 4 -> 4 [MetricsMissing]
| combined 4 stabilized 4 limited 4` in `setpoint explain` (its scaling side has no metric), and
setpoint_decisions_total{reason="MetricsMissing"} grew by one per target and cycle, so the
dashboard's decisions by reason showed a metrics outage that was not there. A scaling policy's
records and counts are unchanged. A live service through the simulated Kubernetes API (sim
serve's server, the official client) writes the records; `setpoint explain` reads them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import POLICY as SCALING
from tests.runtime.test_resume import POLICY as HEALING


@pytest.mark.parametrize("text, name, first_line, decisions", [
    pytest.param(HEALING, "web-heal", "shop/web: 2 replicas [SystemicNoRestart]  health only (ready 2)", None,
                 id="health-only-policy"),
    pytest.param(SCALING, "web", "shop/web: 2 -> 5 [ScaleUp]  rps: raw 150 smoothed 150 -> 5", 1.0,
                 id="scaling-policy-as-before"),
])
def test_health_only_records_and_counts(text, name, first_line, decisions, server, tmp_path):  # noqa: F811
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "p.yaml").write_text(text)
    world = server.world
    metrics, cluster = controller_inputs(server, tmp_path, {"mem": "memory_mib", "offered": "offered_rps"}, advance=3)
    telemetry = Telemetry()
    records = tmp_path / "decisions.jsonl"
    service = ControllerService([folder], metrics, cluster, telemetry, ServiceOptions(records_path=records),
                                clock=lambda: world.engine.now)
    try:
        service.run_cycle(name)
    finally:
        service.stop()
        cluster.close()
    explained = subprocess.run([sys.executable, "-m", "controller.cli", "explain", str(records)],
                               capture_output=True, text=True, timeout=60)
    assert explained.returncode == 0, explained.stderr
    line = explained.stdout.splitlines()[0]
    assert line.split(" ", 1)[1].startswith(first_line), line
    assert "MetricsMissing" not in explained.stdout
    get = telemetry.registry.get_sample_value
    # a scaling policy's reasons exist at 0 from its load; a health-only policy counts no decision
    missing = get("setpoint_decisions_total", {"policy": name, "reason": "MetricsMissing"})
    assert missing == (None if decisions is None else 0.0)
    reason = first_line.split("[")[1].split("]")[0]
    assert get("setpoint_decisions_total", {"policy": name, "reason": reason}) == decisions


@pytest.mark.parametrize("record, line", [
    # Reconciler.health_cycle's records: the scaling side is not evaluated, so its stages mean nothing
    pytest.param({"controller": "policy", "target": "default/web", "at": 1265.0, "current": 9, "ready": 7,
                  "metrics": {}, "combined": 9, "stabilized": 9, "limited": 9, "desired": 9, "reason": "HealthOnly",
                  "health": {"reason": "RollbackNewRevision", "action": "rollback"}},
                 "t=    1265s policy default/web: 9 replicas [HealthOnly]  the health side alone while a rollout runs; "
                 "scaling not evaluated (ready 7)", id="a-health-cycle-during-a-rollout"),
    pytest.param({"target": "default/web", "at": 30.0, "current": 4, "ready": 4, "metrics": {}, "combined": 4,
                  "stabilized": 4, "limited": 4, "desired": 4, "reason": "NoAction",
                  "health": {"reason": "NoAction"}},
                 "t=      30s default/web: 4 replicas [NoAction]  health only (ready 4)", id="a-health-only-policy"),
])
def test_explain_says_what_a_health_cycle_is(record, line):
    from controller.cli.records import _format_record

    assert _format_record(record).splitlines()[0] == line
