"""`setpoint status --server` says when the controller it reads writes nothing (--shadow, --dry-run).

Found in the HPA-to-Setpoint drill: reading a `setpoint run --shadow` beside the team's HPAs,
status showed `cur 11  want 14  last action none` with nothing saying that a shadow run never
acts: it read as a controller failing to scale. GET /status now says the mode, and the CLI says
on stderr what cur and want mean then. Through a controller on sim serve's Kubernetes API (the
official client), wrapped as `setpoint run` wraps it, and the CLI in a subprocess.
"""

from __future__ import annotations

import json

import pytest

from controller.runtime.dryrun import DryRunCluster
from controller.runtime.http import StatusServer
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.shadow import ShadowCluster, ShadowTelemetry
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_status_http import POLICY, T_CYCLE, cli


@pytest.mark.parametrize("mode, wrap, telemetry_kind, note", [
    pytest.param("shadow", ShadowCluster, ShadowTelemetry, "this controller runs --shadow: it writes nothing",
                 id="shadow-says-the-incumbent-scales"),
    pytest.param("dry-run", DryRunCluster, Telemetry, "this controller runs --dry-run: it writes nothing",
                 id="dry-run-says-it-writes-nothing"),
    pytest.param("live", lambda c: c, Telemetry, None, id="live-says-nothing-more"),
])
def test_status_says_when_the_controller_writes_nothing(mode, wrap, telemetry_kind, note, server, tmp_path):  # noqa: F811
    (tmp_path / "web.yaml").write_text(POLICY)
    metrics, cluster = controller_inputs(server, tmp_path, {"rps_query": "offered_rps"}, advance=2)
    telemetry = telemetry_kind()
    service = ControllerService([tmp_path / "web.yaml"], metrics, wrap(cluster), telemetry, ServiceOptions(mode=mode),
                                clock=lambda: T_CYCLE)
    http = StatusServer("127.0.0.1:0", telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    try:
        service.run_cycle("web")
        url = f"http://127.0.0.1:{http.port}"
        shown, as_json = cli("--server", url), cli("--server", url, "--json")
    finally:
        http.stop()
        service.stop()
        cluster.close()
    assert shown.returncode == 0 and as_json.returncode == 0, shown.stderr + as_json.stderr
    if note:
        assert note in shown.stderr, shown.stderr
    else:
        assert "writes nothing" not in shown.stderr, shown.stderr
    doc = json.loads(as_json.stdout)
    assert doc["mode"] == mode and sorted(doc["policies"]["web"]["targets"]) == ["shop/web"]
