"""A rejected policy reload's PolicyReloadFailed Events come from the leader only.

Found in a day-2 drill (two `setpoint run --leader-elect` replicas, a broken edit of the policy
file): the standby sent them too, to its fence, which refused each with a warning "fenced: POST
/api/v1/namespaces/default/events not sent (not the leader)", one a workload, at every rejected
edit: on a replica that was working as designed. A standby now keeps them until it leads: its
first cycle as leader sends them if the files are still rejected then (a failover while they are,
or a start-up on the last good copy before the Lease is won). Through the real client and sim
serve's API server.
"""

from __future__ import annotations

import logging

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_service import POLICY

GOOD = POLICY.format(interval="15s", target=100).replace("namespace: default", "namespace: shop")
BROKEN = GOOD.replace("min: 2", "min: 30")


# each row: the steps ("lead", "stand-by": the fence from then on; "break", "fix": the file, then
# a reload; "cycle": one cycle of every policy) and the PolicyReloadFailed Events after each step
@pytest.mark.parametrize("steps, events", [
    pytest.param(["lead", "break"], [0, 1], id="the-leader-says-it-at-once"),
    pytest.param(["stand-by", "break", "cycle"], [0, 0, 0], id="a-standby-sends-none"),
    pytest.param(["stand-by", "break", "lead", "cycle", "cycle"], [0, 0, 0, 1, 1],
                 id="a-standby-says-it-once-when-it-leads"),
    pytest.param(["stand-by", "break", "fix", "lead", "cycle"], [0, 0, 0, 0, 0],
                 id="fixed-before-it-leads-nothing-to-say"),
])
def test_only_the_leader_announces_a_rejected_reload(steps, events, server, tmp_path, caplog):  # noqa: F811
    world = server.world
    metrics = SimMetrics(world.engine, {"rps_query": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    leading = [False]
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    cluster.fence = lambda: leading[0]
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "web.yaml"
    path.write_text(GOOD)
    service = ControllerService([folder], metrics, cluster, Telemetry(), ServiceOptions(reload_settle_s=0),
                                clock=lambda: world.engine.now, is_leader=lambda: leading[0])
    core = client.CoreV1Api(official_client(server, tmp_path))
    seen = []
    caplog.set_level(logging.WARNING, logger="setpoint.kubernetes")
    try:
        for step in steps:
            if step in ("lead", "stand-by"):
                leading[0] = step == "lead"
            elif step in ("break", "fix"):
                path.write_text(BROKEN if step == "break" else GOOD)
                service.reload_if_changed()
            else:
                service.run_all_once()
            cluster.events.flush()
            seen.append(len([e for e in core.list_namespaced_event("shop").items if e.reason == "PolicyReloadFailed"]))
    finally:
        service.stop()
        cluster.close()
    assert seen == events
    assert not [r for r in caplog.records if r.getMessage().startswith("fenced:")]
