"""`setpoint status` says which health checks have no data, instead of "ok".

Found in a day-2 drill: with Prometheus stopped, a health-only policy's target read `health ok`
and its check `restarts ok - (0/4 pods)`: missing data never fires a check, so a blind check
looked healthy. Through a controller on sim serve's Kubernetes API (the official client) whose
check query is answered (bound to a simulated signal) or fails (unbound, as an unreachable
Prometheus), read with the CLI in a subprocess.
"""

from __future__ import annotations

import pytest

from controller.runtime.http import StatusServer
from controller.runtime.service import ControllerService
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_resume import POLICY as HEALING
from tests.runtime.test_status_http import cli

WORKLOAD_CHECK = HEALING.replace("scope: pod", "scope: workload")


@pytest.mark.parametrize("text, bindings, shown, absent", [
    pytest.param(HEALING, {}, ["none         no data: memory", "memory  ok     no data (0/2 pods)"],
                 ["none         ok"], id="pod-check-query-failing"),
    pytest.param(WORKLOAD_CHECK, {}, ["none         no data: memory", "memory  ok     no data  -"],
                 ["none         ok"], id="workload-check-query-failing"),
    pytest.param(WORKLOAD_CHECK, {"mem": "memory_mib"}, ["firing: memory"], ["no data"],
                 id="answered-as-before"),
])
def test_a_check_without_data_is_not_shown_ok(text, bindings, shown, absent, server, tmp_path):  # noqa: F811
    (tmp_path / "heal.yaml").write_text(text)
    world = server.world
    metrics, cluster = controller_inputs(server, tmp_path, bindings, advance=2)
    telemetry = Telemetry()
    service = ControllerService([tmp_path / "heal.yaml"], metrics, cluster, telemetry,
                                clock=lambda: world.engine.now)
    http = StatusServer("127.0.0.1:0", telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    try:
        service.run_cycle("web-heal")
        out = cli("--server", f"http://127.0.0.1:{http.port}", tz="UTC0")
    finally:
        http.stop()
        service.stop()
        cluster.close()
    assert out.returncode == 0, out.stderr
    for text_shown in shown:
        assert text_shown in out.stdout, out.stdout
    for text_absent in absent:
        assert text_absent not in out.stdout, out.stdout
