"""`setpoint accept TARGET REVISION` writes the setpoint.io/accept-revision annotation through the
Kubernetes adapter (against sim serve, with the official client reading it back), as `kubectl
annotate` does; what names no workload or no revision is refused in one line, nothing written.
(What the annotation does: tests/core/test_revision_accepted.py, tests/e2e/test_revision_accepted_live.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest
from kubernetes import client

from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)

ANNOTATION = "setpoint.io/accept-revision"


def _accept(server, tmp_path, *args) -> subprocess.CompletedProcess:  # noqa: F811
    kubeconfig = server.write_kubeconfig(tmp_path / "accept.yaml", namespace="shop")
    return subprocess.run([sys.executable, "-m", "controller.cli", "accept", *args, "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)


def _annotations(server, tmp_path) -> dict:  # noqa: F811
    folder = tmp_path / "read"
    folder.mkdir(exist_ok=True)
    apps = client.AppsV1Api(official_client(server, folder))
    return apps.read_namespaced_deployment("web", "shop", _request_timeout=5).metadata.annotations or {}


def test_accept_writes_the_annotation(server, tmp_path):  # noqa: F811
    proc = _accept(server, tmp_path, "shop/web", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Deployment/shop/web: revision 2 accepted (setpoint.io/accept-revision=2)")
    assert _annotations(server, tmp_path)[ANNOTATION] == "2"
    assert _accept(server, tmp_path, "shop/web", "3").returncode == 0  # another revision replaces it
    assert _annotations(server, tmp_path)[ANNOTATION] == "3"


@pytest.mark.parametrize("args, message", [
    pytest.param(["shop/web", ""], "REVISION: expected a revision as setpoint names it", id="empty-revision"),
    pytest.param(["shop/web", "2 3"], "REVISION: expected a revision as setpoint names it", id="two-words"),
    pytest.param(["shop/web", "-"], "REVISION: expected a revision as setpoint names it", id="a-dash"),
    pytest.param(["shop/", "2"], "TARGET: expected NAMESPACE/NAME or NAME, got 'shop/'", id="empty-name"),
    pytest.param(["shop/nope", "2"], "Deployment/shop/nope: cannot write the accept-revision annotation: HTTP 404: "
                                     "deployments.apps \"nope\" not found", id="no-such-deployment"),
])
def test_accept_refuses_in_one_line(server, tmp_path, args, message):  # noqa: F811
    proc = _accept(server, tmp_path, *args)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(message), proc.stderr
    assert ANNOTATION not in _annotations(server, tmp_path)
