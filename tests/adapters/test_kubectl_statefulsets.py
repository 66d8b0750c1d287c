"""The real kubectl against ``sim serve`` serving StatefulSets: ``web`` declared ``kind: StatefulSet``
in the scenario file (in process, the engine stepped by hand: ticks of 5 s, start-up 10 s), and the
``setpoint sim serve --statefulset`` command itself. get sts / controllerrevisions, scale sts,
rollout status / history / undo statefulset/web, describe sts. Every kubectl call is bounded by
--request-timeout and a subprocess timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.kubeapi.server import SimKubeServer
from tests.adapters.kube_helpers import TOKEN
from tests.adapters.test_kubectl import KUBECTL, KUBECTL_REQUEST_S, PROCESS_TIMEOUT_S, kubectl, table
from tests.adapters.test_statefulset_contract import STS_YAML, sts_scenario

NS = "shop"
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")


def kube_env(kubeconfig, home) -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
            "HOME": str(home)}  # a fresh discovery cache per test


@pytest.fixture
def cluster(tmp_path):
    srv = SimKubeServer(sts_scenario(), drive=False, token=TOKEN).start()
    env = kube_env(srv.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS), tmp_path)
    yield srv, env
    srv.stop()


@pytest.mark.parametrize("args, header, first", [
    pytest.param(("sts",), ["NAME", "READY", "AGE"], ["web", "2/2"], id="sts"),
    pytest.param(("statefulsets", "web"), ["NAME", "READY", "AGE"], ["web", "2/2"], id="one-statefulset"),
    pytest.param(("sts", "-o", "wide"), ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"], ["web", "2/2"],
                 id="sts-wide"),
    pytest.param(("controllerrevisions",), ["NAME", "CONTROLLER", "REVISION", "AGE"], ["web-", "statefulset.apps/web",
                                                                                      "1"], id="controllerrevisions"),
    pytest.param(("pods", "-l", "app=web"), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["web-0", "1/1", "Running"],
                 id="pods-by-ordinal"),
])
def test_get_prints_the_statefulset_columns(cluster, args, header, first):
    srv, env = cluster
    rows = table(kubectl(env, "get", *args))
    assert rows[0] == header
    assert rows[1][0].startswith(first[0]) and rows[1][1:len(first)] == first[1:]


def test_get_all_lists_the_statefulset_and_its_pods(cluster):
    out = kubectl(cluster[1], "get", "all")
    for name in ("statefulset.apps/web", "pod/web-0", "pod/web-1", "deployment.apps/api"):
        assert name in out
    assert "deployment.apps/web" not in out and "replicaset.apps/web-" not in out


def test_scale_sts_adds_pods_one_at_a_time_in_ordinal_order(cluster):
    srv, env = cluster
    assert "statefulset.apps/web scaled" in kubectl(env, "scale", "sts", "web", "--replicas=4")
    names = []
    for _ in range(5):
        names.append([row[0] for row in table(kubectl(env, "get", "pods", "-l", "app=web"))[1:]])
        srv.world.advance(1)
    assert names == [["web-0", "web-1", "web-2"], ["web-0", "web-1", "web-2"], ["web-0", "web-1", "web-2", "web-3"],
                     ["web-0", "web-1", "web-2", "web-3"], ["web-0", "web-1", "web-2", "web-3"]]
    assert table(kubectl(env, "get", "sts", "web"))[1][:2] == ["web", "4/4"]


def _restart(srv, env):
    kubectl(env, "rollout", "restart", "statefulset/web")


def _restart_then(ticks: int):
    def step(srv, env):
        _restart(srv, env)
        srv.world.advance(ticks)
    return step


def _partition_1_restart_then(ticks: int):
    def step(srv, env):
        kubectl(env, "patch", "sts", "web", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}')
        _restart_then(ticks)(srv, env)
    return step


# what kubectl rollout status statefulset/web says (its StatefulSetStatusViewer: with a
# rollingUpdate it speaks of a partitioned roll out, even at partition 0, as against a real cluster)
STATUS_ROWS = [
    pytest.param(lambda srv, env: None, "partitioned roll out complete: 2 new pods have been updated...",
                 id="settled"),
    pytest.param(_restart_then(1), "Waiting for 1 pods to be ready...", id="web-1-being-replaced"),
    pytest.param(_restart_then(18), "partitioned roll out complete: 2 new pods have been updated...",
                 id="update-done"),
    pytest.param(_partition_1_restart_then(0),
                 "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...",
                 id="partition-1-not-started"),
    pytest.param(_partition_1_restart_then(10), "partitioned roll out complete: 1 new pods have been updated...",
                 id="partition-1-done"),
]


@pytest.mark.parametrize("before, said", STATUS_ROWS)
def test_rollout_status_statefulset(cluster, before, said):
    srv, env = cluster
    before(srv, env)
    assert kubectl(env, "rollout", "status", "statefulset/web", "--watch=false").strip() == said


def test_rollout_history_and_undo_go_through_the_controller_revisions(cluster):
    srv, env = cluster
    original = srv.world.store.get_workload("StatefulSet", NS, "web")["spec"]["template"]
    history = lambda: [r[0] for r in table(kubectl(env, "rollout", "history", "statefulset/web"))[2:]]  # noqa: E731
    assert history() == ["1"]
    _restart_then(6)(srv, env)
    assert history() == ["1", "2"]
    assert "statefulset.apps/web rolled back" in kubectl(env, "rollout", "undo", "statefulset/web")
    # as the StatefulSet controller: revision 1's ControllerRevision comes back as revision 3
    assert history() == ["2", "3"]
    assert srv.world.store.get_workload("StatefulSet", NS, "web")["spec"]["template"] == original
    srv.world.advance(6)
    sts = srv.world.store.get_workload("StatefulSet", NS, "web")["status"]
    assert sts["currentRevision"] == sts["updateRevision"] and sts["updatedReplicas"] == 2
    # kubectl compares the revision's data with the StatefulSet's template, byte for byte
    assert "skipped rollback (current template already matches revision 3)" in kubectl(
        env, "rollout", "undo", "statefulset/web", "--to-revision=3")
    assert "Image:\tsim.setpoint.local/web:1" in kubectl(env, "rollout", "history", "statefulset/web", "--revision=2")


def test_describe_sts_shows_the_strategy_and_the_controllers_events(cluster):
    srv, env = cluster
    kubectl(env, "scale", "sts", "web", "--replicas=3")
    out = kubectl(env, "describe", "sts", "web")
    assert "Replicas:           3 desired | 3 total" in out
    assert "Update Strategy:    RollingUpdate" in out and "Partition:        0" in out
    assert "create Pod web-2 in StatefulSet web successful" in out


def test_sim_serve_statefulset_option_with_kubectl(tmp_path):
    """`setpoint sim serve FILE --statefulset api` (the command, on a free port, at --speed 20):
    web is a StatefulSet by the file's kind, api by the option; a rollout restart of api ends,
    as kubectl rollout status sees it, and is undone."""
    (tmp_path / "sts.yaml").write_text(STS_YAML)
    kubeconfig = tmp_path / "sim.kubeconfig"
    serve = subprocess.Popen([sys.executable, "-m", "controller.cli", "sim", "serve", str(tmp_path / "sts.yaml"),
                              "--statefulset", "api", "--speed", "20", "--kube-listen", "127.0.0.1:0",
                              "--kubeconfig-out", str(kubeconfig), "--token-file", str(tmp_path / "sim.token")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not kubeconfig.exists() and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(0.05)
        assert kubeconfig.exists(), serve.stderr.read() if serve.poll() is not None else "no kubeconfig in 20 s"
        env = kube_env(kubeconfig, tmp_path)
        kubectl(env, "config", "set-context", "--current", "--namespace", NS)
        assert [r[0] for r in table(kubectl(env, "get", "sts"))[1:]] == ["api", "web"]
        assert kubectl(env, "get", "deploy").strip() == ""  # both services are StatefulSets
        assert "statefulset.apps/api restarted" in kubectl(env, "rollout", "restart", "statefulset/api")
        # 3 pods replaced one at a time, 10 s each at --speed 20: about 2 s of wall time
        done = subprocess.run([KUBECTL, f"--request-timeout={KUBECTL_REQUEST_S}s", "rollout", "status",
                               "statefulset/api", "--timeout=20s"], env=env, capture_output=True, text=True,
                              timeout=PROCESS_TIMEOUT_S)
        assert done.returncode == 0 and "partitioned roll out complete: 3 new pods have been updated" in done.stdout, (
            done.stdout + done.stderr)
        assert "statefulset.apps/api rolled back" in kubectl(env, "rollout", "undo", "statefulset/api")
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(timeout=5)


def test_sim_serve_refuses_an_unknown_statefulset(tmp_path):
    (tmp_path / "sts.yaml").write_text(STS_YAML)
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "serve", str(tmp_path / "sts.yaml"),
                           "--statefulset", "db", "--kube-listen", "127.0.0.1:0"], capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT_S)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--statefulset db: scenario kube-test has no such service (its services: web, api)" in proc.stderr


def statefulset_walk_through() -> tuple[list[str], list[list[str]]]:
    """The StatefulSets walk-through of docs/operations.md: (the sim serve command's arguments after
    `setpoint`, the kubectl commands' arguments), comments and a trailing ``&`` dropped."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    block = doc[doc.index("```sh\nsetpoint sim serve flash-crowd --statefulset"):]
    block = block[len("```sh\n"):block.index("```", 5)].replace("\\\n", " ")
    serve, commands = [], []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip().removesuffix("&").strip()
        if line.startswith("setpoint "):
            serve = line.split()[1:]
        elif line.startswith("kubectl "):
            commands.append(line.split()[1:])
    return serve, commands


def test_the_statefulset_walk_through_works_word_for_word(tmp_path):
    """The walk-through's sim serve command (its files in the test's folder, on a free port) and
    each of its kubectl commands, in order: each succeeds, and says what the comments say."""
    serve_args, commands = statefulset_walk_through()
    assert serve_args[:4] == ["sim", "serve", "flash-crowd", "--statefulset"] and len(commands) == 7
    serve_args = [a.replace("/tmp/", f"{tmp_path}/") for a in serve_args] + ["--kube-listen", "127.0.0.1:0"]
    kubeconfig = tmp_path / "sim.kubeconfig"
    serve = subprocess.Popen([sys.executable, "-m", "controller.cli", *serve_args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not kubeconfig.exists() and time.monotonic() < deadline and serve.poll() is None:
            time.sleep(0.05)
        assert kubeconfig.exists(), serve.stderr.read() if serve.poll() is not None else "no kubeconfig in 20 s"
        env = kube_env(kubeconfig, tmp_path)
        said = {}
        for args in commands:  # rollout status waits for 2 pods, then 8 replaced: ~16 s at --speed 20
            proc = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=90)
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
            said[" ".join(args[:2])] = proc.stdout
        assert table(said["get sts"])[1][:2] == ["web", "6/6"]
        assert [row[0] for row in table(said["get pods"])[1:]] == [f"web-{k}" for k in range(6)]
        assert "statefulset.apps/web scaled" in said["scale sts"]
        assert "partitioned roll out complete: 8 new pods have been updated" in said["rollout status"]
        assert [row[0] for row in table(said["rollout history"])[2:]] == ["1", "2"]
        assert "statefulset.apps/web rolled back" in said["rollout undo"]
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(timeout=5)
