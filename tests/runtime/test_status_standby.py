"""`setpoint status --server` says when the replica it reads is a standby.

Found in a day-2 drill with two `setpoint run --leader-elect` replicas: the standby's status read
`policy web: last cycle -` and `(no target yet)` with nothing saying why, while the leader
governed every target (`kubectl port-forward deploy/setpoint` may pick either pod). GET /status
now says whether the replica leads, and the CLI says so on stderr. Through a controller on sim
serve's Kubernetes API (the official client) and the CLI in a subprocess.
"""

from __future__ import annotations

import json

import pytest

from controller.runtime.http import StatusServer
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_status_http import POLICY, T_CYCLE, cli

STANDBY_NOTE = "this replica is a standby (it does not hold the leader Lease)"


@pytest.mark.parametrize("leader, note, targets", [
    pytest.param(False, True, [], id="standby-says-so"),
    pytest.param(True, False, ["shop/web"], id="leader-as-before"),
])
def test_status_says_whether_the_replica_leads(leader, note, targets, server, tmp_path):  # noqa: F811
    (tmp_path / "web.yaml").write_text(POLICY)
    metrics, cluster = controller_inputs(server, tmp_path, {"rps_query": "offered_rps"}, advance=2)
    telemetry = Telemetry()
    service = ControllerService([tmp_path / "web.yaml"], metrics, cluster, telemetry, clock=lambda: T_CYCLE,
                                is_leader=lambda: leader, options=ServiceOptions(lease="ops/setpoint-shop"))
    http = StatusServer("127.0.0.1:0", telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    try:
        service.run_cycle("web")  # a standby's cycle returns at once
        url = f"http://127.0.0.1:{http.port}"
        shown, as_json = cli("--server", url), cli("--server", url, "--json")
    finally:
        http.stop()
        service.stop()
        cluster.close()
    assert shown.returncode == 0 and as_json.returncode == 0, shown.stderr + as_json.stderr
    assert (STANDBY_NOTE in shown.stderr) == note, shown.stderr
    # the kubectl that names the leader's pod, with the Lease the replica runs (was: -n NAMESPACE ... setpoint)
    assert ("`kubectl -n ops get lease setpoint-shop -o jsonpath=" in shown.stderr) == note, shown.stderr
    doc = json.loads(as_json.stdout)
    assert (doc["leader"], doc["lease"], sorted(doc["policies"]["web"]["targets"])) == (leader, "ops/setpoint-shop",
                                                                                        targets)
