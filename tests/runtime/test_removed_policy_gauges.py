"""A cycle that ends after a reload removed its policy leaves no gauges behind.

Found in a day-2 drill: 150 policy files dropped into the policies folder, then removed; the
cycles of three of them were running when the reload removed them, and their gauges
(setpoint_last_cycle_timestamp_seconds, setpoint_selected_targets, ...) were set again after the
reload had dropped them. They stayed until the process restarted, so SetpointCycleStalled (and
SetpointPolicySelectsNothing) would fire for policies that no longer exist. Through a service on
sim serve's Kubernetes API (the official client): the removed policy's reconciler finishes a cycle
after the reload, as an in-flight cycle does.
"""

from __future__ import annotations

import pytest

from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import POLICY

API = POLICY.replace("name: web}", "name: api}").replace("names: [web]", "names: [api]")


@pytest.mark.parametrize("remove, gauges_left", [
    pytest.param(True, None, id="removed-while-its-cycle-ran"),
    pytest.param(False, 1.0, id="kept-as-before"),
])
def test_a_late_cycle_of_a_removed_policy_leaves_no_gauges(remove, gauges_left, server, tmp_path):  # noqa: F811
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(POLICY)
    (folder / "api.yaml").write_text(API)
    world = server.world
    metrics, cluster = controller_inputs(server, tmp_path, {"offered": "offered_rps"}, advance=3)
    telemetry = Telemetry()
    service = ControllerService([folder], metrics, cluster, telemetry, ServiceOptions(reload_settle_s=0),
                                clock=lambda: world.engine.now)
    try:
        in_flight = service.reconcilers["api"]
        if remove:
            (folder / "api.yaml").unlink()
            assert service.reload_if_changed() is True and sorted(service.policies) == ["web"]
        in_flight.cycle(world.engine.now)  # its on_cycle is the service's: as a cycle that ran across the reload
    finally:
        service.stop()
        cluster.close()
    get = telemetry.registry.get_sample_value
    assert get("setpoint_selected_targets", {"policy": "api"}) == gauges_left
    assert (get("setpoint_last_cycle_timestamp_seconds", {"policy": "api"}) is None) == remove
    assert (get("setpoint_desired_replicas", {"policy": "api", "target": "shop/api"}) is None) == remove
