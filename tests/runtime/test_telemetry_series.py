"""Every counter series a policy can count exists at 0 from the moment the policy loads.

Found in a 150-minute soak drill: /metrics grew from 96 to 104 lines as label values were first
used hours in (decisions for MetricsMissing and RateLimitedDown, errors from metrics when
Prometheus was stopped). Besides failing the drill's rule that the series count follows the
policies, a counter child born at 1 hides its first increment from ``increase()``, so an alert on
the first metrics error of a policy could not fire. Through a service on sim serve's Kubernetes
API (the official client), as in production.
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from controller.model import REASON_CODES
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import ERROR_SOURCES, INVALID_REASONS, Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import POLICY as SCALING
from tests.runtime.test_resume import POLICY as HEALING

HEALTH_KINDS = ("record", "scale", "restart-pod", "rolling-restart", "rollback", "pause", "resume")


def series(telemetry: Telemetry) -> list[str]:
    """The /metrics sample lines without their values."""
    text = generate_latest(telemetry.registry).decode()
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#"))


def value(telemetry: Telemetry, name: str, **labels) -> float | None:
    return telemetry.registry.get_sample_value(name, labels)


@pytest.fixture
def running(server, tmp_path):  # noqa: F811
    """A service on sim serve with the scaling policy ``web`` loaded; yields (service, telemetry,
    metrics, folder) and stops it after."""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(SCALING)
    metrics, cluster = controller_inputs(server, tmp_path, {"offered": "offered_rps", "mem": "memory_mib"},
                                         advance=3)
    telemetry = Telemetry()
    service = ControllerService([folder], metrics, cluster, telemetry, ServiceOptions(reload_settle_s=0),
                                clock=lambda: server.world.engine.now)
    try:
        yield service, telemetry, metrics, folder
    finally:
        service.stop()
        cluster.close()


def test_a_loaded_policy_has_every_counter_at_zero_before_its_first_cycle(running):
    _, telemetry, _, _ = running
    for reason in REASON_CODES:
        assert value(telemetry, "setpoint_decisions_total", policy="web", reason=reason) == 0.0, reason
    for source in ERROR_SOURCES:
        assert value(telemetry, "setpoint_errors_total", policy="web", source=source) == 0.0, source
    for reason in INVALID_REASONS:
        assert value(telemetry, "setpoint_invalid_samples_total", policy="web", metric="rps", reason=reason) == 0.0
    assert value(telemetry, "setpoint_actions_total", policy="web", kind="scale") == 0.0
    assert value(telemetry, "setpoint_action_failures_total", policy="web", kind="scale") == 0.0
    assert value(telemetry, "setpoint_prometheus_requests_total", policy="web") == 0.0
    # a scaling-only policy takes no health action and saves no healing state
    assert value(telemetry, "setpoint_actions_total", policy="web", kind="rollback") is None
    assert value(telemetry, "setpoint_state_saves_total", policy="web") is None


@pytest.mark.parametrize("outage", [
    pytest.param(False, id="a-normal-cycle"),
    pytest.param(True, id="prometheus-down-MetricsMissing-and-a-metrics-error"),
])
def test_cycles_add_no_counter_series_after_the_first(outage, running, server):  # noqa: F811
    service, telemetry, metrics, _ = running
    reconciler, now = service.reconcilers["web"], server.world.engine.now
    reconciler.cycle(now)  # creates the per-target gauges and the cycle histogram: once
    first = series(telemetry)
    if outage:  # the query answers nothing: as Prometheus stopped
        metrics.bindings = {}
    result = reconciler.cycle(now + 15)
    assert bool(result.errors) == outage
    assert series(telemetry) == first
    missing = value(telemetry, "setpoint_decisions_total", policy="web", reason="MetricsMissing")
    assert (missing, value(telemetry, "setpoint_errors_total", policy="web", source="metrics")) == (
        (1.0, 1.0) if outage else (0.0, 0.0))


def test_a_reload_creates_the_series_of_an_added_policy_and_drops_a_renamed_metrics(running):
    service, telemetry, _, folder = running
    (folder / "heal.yaml").write_text(HEALING)
    (folder / "web.yaml").write_text(SCALING.replace("name: rps", "name: offered-rps"))
    assert service.reload_if_changed() is True
    for kind in HEALTH_KINDS:
        assert value(telemetry, "setpoint_actions_total", policy="web-heal", kind=kind) == 0.0, kind
    assert value(telemetry, "setpoint_state_saves_total", policy="web-heal") == 0.0
    for source in ERROR_SOURCES:
        assert value(telemetry, "setpoint_errors_total", policy="web-heal", source=source) == 0.0
    # a health-only policy counts no decision (its scaling side decides nothing)
    assert value(telemetry, "setpoint_decisions_total", policy="web-heal", reason="MetricsMissing") is None
    renamed = [value(telemetry, "setpoint_invalid_samples_total", policy="web", metric=m, reason="negative")
               for m in ("rps", "offered-rps")]
    assert renamed == [None, 0.0]


def test_a_removed_policy_leaves_none_of_its_zero_series(running):
    service, telemetry, _, folder = running
    (folder / "web.yaml").write_text(HEALING)
    assert service.reload_if_changed() is True
    assert not [line for line in series(telemetry) if 'policy="web"' in line]


def test_an_edit_keeps_only_the_series_the_policy_can_still_count(running):
    """web, a scaling policy, edited into a health-only one: its decisions go (it counts none any
    more), its health actions come at 0, its scale counters stay."""
    service, telemetry, _, folder = running
    service.reconcilers["web"].cycle(service.clock())
    scaled = value(telemetry, "setpoint_actions_total", policy="web", kind="scale")
    (folder / "web.yaml").write_text(HEALING.replace("name: web-heal", "name: web"))
    assert service.reload_if_changed() is True
    assert value(telemetry, "setpoint_decisions_total", policy="web", reason="ScaleUp") is None
    assert value(telemetry, "setpoint_invalid_samples_total", policy="web", metric="rps", reason="negative") is None
    assert value(telemetry, "setpoint_actions_total", policy="web", kind="rollback") == 0.0
    assert value(telemetry, "setpoint_actions_total", policy="web", kind="scale") == scaled == 1.0
