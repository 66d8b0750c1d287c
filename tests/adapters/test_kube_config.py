"""Loading a Kubernetes configuration: every way it can be missing or wrong is one message naming
the file (or the in-cluster service account), why, and what to do; never a bug report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.adapters.kubernetes import load_api_client
from controller.errors import KubernetesConfigError

REPO = Path(__file__).resolve().parents[2]
NEXT_STEP = "pass --kubeconfig FILE (and --context NAME), run in a cluster"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: here, context: {cluster: c, user: u}}]
current-context: here
"""


@pytest.mark.parametrize("content, context, explicit, words", [
    pytest.param(None, None, False, ["no Kubernetes configuration: KUBECONFIG_PATH", "No configuration found"],
                 id="no-file-where-looked"),
    pytest.param("root:x:0:0:root:/root:/bin/bash\n", None, True, ["KUBECONFIG_PATH: not a kubeconfig (TypeError"],
                 id="a-text-file"),  # was exit 70: TypeError: 'str' object does not support item assignment
    pytest.param("[tool]\nname = 'x'\n", None, True, ["KUBECONFIG_PATH: not a kubeconfig"], id="toml"),
    pytest.param("[tool]\nname = 'x'\n", None, False, ["KUBECONFIG_PATH: Invalid kube-config file"],
                 id="toml-from-the-environment"),
    pytest.param(KUBECONFIG, "elsewhere", True, ["KUBECONFIG_PATH with context 'elsewhere'"], id="unknown-context"),
])
def test_a_kubeconfig_that_cannot_be_loaded_is_named_with_the_next_step(tmp_path, monkeypatch, content, context,
                                                                         explicit, words):
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none" if explicit else path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesConfigError) as info:
        load_api_client(path if explicit else None, context=context)
    message = str(info.value)
    for word in words:
        assert word.replace("KUBECONFIG_PATH", str(path)) in message, message
    assert NEXT_STEP in message


def test_a_good_kubeconfig_loads(tmp_path, monkeypatch):
    (tmp_path / "config").write_text(KUBECONFIG)
    client = load_api_client(tmp_path / "config")
    assert client.configuration.host == "https://127.0.0.1:6443" and client.configuration.retries is False


def test_in_cluster_without_a_service_account_says_where_it_looked(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesConfigError, match="in-cluster configuration: .*serviceaccount"):
        load_api_client(in_cluster=True)


def test_run_without_any_configuration_exits_1_with_the_next_step(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBECONFIG")}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "none"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "run", "-p", str(REPO / "policies" / "web-rps.yaml"),
                           "--prometheus", "http://127.0.0.1:9", "--once", "--dry-run"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr  # was 70, "a bug in Setpoint"
    assert "no Kubernetes configuration" in proc.stderr and NEXT_STEP in proc.stderr and "Traceback" not in proc.stderr
