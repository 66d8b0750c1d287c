"""A policy's first cycle runs at the controller's start, not one interval later, and says how
long it took and, when that was long, where the time went (controller/runtime/cycle_phases.py)."""

from __future__ import annotations

import logging
import time

import pytest

from controller.runtime.cycle_phases import CyclePhases, phases_words
from controller.runtime.reconciler import CycleResult
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.runtime.test_service import T0, sim, write_policy


@pytest.mark.parametrize("interval", [
    pytest.param("1h", id="hourly-policy"),
    pytest.param("10m", id="ten-minute-policy"),
])
def test_the_first_cycle_runs_at_the_start_whatever_the_interval(tmp_path, interval, caplog):
    """Before: a policy's first cycle came one interval after the start (the shipped 15 s policies'
    after ~20 s, /readyz not ready all along); an hourly one governed nothing for an hour."""
    cluster, metrics, targets = sim()
    write_policy(tmp_path, interval=interval)
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(jitter_s=0.5),
                                clock=lambda: T0 + 20)
    caplog.set_level(logging.INFO, "setpoint.runtime")
    try:
        assert not service.ready()[0]
        service.start()
        deadline = time.monotonic() + 20  # bounded: not a speed figure (bench/first_cycle.py has those)
        while time.monotonic() < deadline and not service.ready()[0]:
            time.sleep(0.1)
        assert service.ready() == (True, "ok")
    finally:
        service.stop()
    assert cluster.spec_replicas[0] == 10  # it scaled up at its first cycle
    [line] = [r for r in caplog.records if r.getMessage().startswith("first cycle of policy web")]
    assert set(line.phases_s) >= {"workloads", "pods", "metric queries", "decide", "act"}, line.phases_s


def _result(duration_s: float, phases: dict[str, float] | None) -> CycleResult:
    result = CycleResult("web", T0, [], None, None, queries=8, duration_s=duration_s)
    result.phases = phases
    return result


@pytest.mark.parametrize("duration_s, phases, level, said", [
    pytest.param(0.4, {"workloads": 0.1, "metric queries": 0.3}, logging.INFO,
                 "first cycle of policy web done 5.0s after the start; it ran 0.4s", id="quick-no-detail"),
    pytest.param(6.0, {"workloads": 0.2, "warm start": 4.0, "metric queries": 1.5, "decide": 0.001, "act": 0.4},
                 logging.WARNING, "first cycle of policy web done 5.0s after the start; it ran 6.0s: "
                 "warm start 4.0s, metric queries 1.5s, act 0.4s", id="slow-names-its-phases-longest-first"),
    pytest.param(3.0, None, logging.WARNING, "first cycle of policy web done 5.0s after the start; it ran 3.0s",
                 id="slow-without-phases"),
])
def test_the_first_cycle_line(tmp_path, caplog, duration_s, phases, level, said):
    _, metrics, targets = sim()
    write_policy(tmp_path)
    now = [T0]
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), clock=lambda: now[0])
    now[0] = T0 + 5
    caplog.set_level(logging.INFO, "setpoint.runtime")
    service._say_first_cycle(_result(duration_s, phases))
    service._say_first_cycle(_result(duration_s, phases))  # once per policy
    service.stop()
    [line] = [r for r in caplog.records if r.getMessage().startswith("first cycle")]
    assert (line.levelno, line.getMessage()) == (level, said)


def test_laps_add_up_per_phase_in_the_order_first_seen():
    ticks = iter([0.0, 1.0, 1.5, 4.0, 4.25])
    laps = CyclePhases(clock=lambda: next(ticks))
    for phase in ("queries", "decide", "queries", "act"):
        laps.lap(phase)
    assert laps.spent == {"queries": 3.5, "decide": 0.5, "act": 0.25}
    assert phases_words(laps.spent, 4.25) == "queries 3.5s, decide 0.5s, act 0.2s"


@pytest.mark.parametrize("leading_at_start", [
    pytest.param(False, id="lease-won-after-the-first-cycle-was-due"),
    pytest.param(True, id="lease-won-before"),
])
def test_a_replica_that_becomes_leader_cycles_at_once(tmp_path, leading_at_start):
    """Under leader election a cycle due while this replica stands by does nothing; before, the
    next came one interval later: a start whose first cycles were due before the Lease was won
    (its first round under way), or a standby taking over, governed nothing for an interval."""
    cluster, metrics, targets = sim()
    write_policy(tmp_path, interval="1h")
    term = [1 if leading_at_start else 0]
    service = ControllerService([tmp_path], metrics, targets, Telemetry(),
                                ServiceOptions(jitter_s=0.1, lease="default/setpoint"), clock=lambda: T0 + 20,
                                is_leader=lambda: term[0] > 0, leader_term=lambda: term[0])
    try:
        service.start()
        if not leading_at_start:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and "web" not in service._standby:  # the first cycle, skipped
                time.sleep(0.05)
            assert "web" in service._standby and cluster.spec_replicas[0] == 4
            term[0] = 1  # the Lease is won
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not service.ready()[0]:
            time.sleep(0.1)
        assert service.ready() == (True, "ok")
    finally:
        service.stop()
    assert cluster.spec_replicas[0] == 10
