"""`setpoint run --leader-elect` as a process, against the simulated API server on loopback:
a start-up error exits 1 with one line and holds no Lease; SIGTERM, SIGHUP and Ctrl-C stop it
gracefully with the Lease released; a cycle stuck on a stalled API server does not hold the exit
past Kubernetes' termination grace period.

Found by fuzzing the live controller: a start-up error after the elector started died by
SIGABRT (exit 134), SIGHUP killed it with the Lease held (the standby waited a lease duration),
and SIGTERM during a stalled request took 38 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.cli.live import CYCLE_GRACE_S, SHUTDOWN_DEADLINE_S, SHUTDOWN_GRACE_S
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
NS, LEASE = "shop", "setpoint"
#: Seconds any process of these tests may take to start, or to exit once asked.
START_TIMEOUT_S, EXIT_TIMEOUT_S = 60.0, 20.0

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: pol}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 1s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total[1m]))
        target: {averagePerReplica: 100}
"""


@pytest.fixture
def leases(server, tmp_path):
    (tmp_path / "reader").mkdir()
    api = official_client(server, tmp_path / "reader")
    yield client.CoordinationV1Api(api)
    api.close()


def holder(leases) -> str | None:
    """The Lease's holderIdentity now (None: none, or no Lease)."""
    try:
        return leases.read_namespaced_lease(LEASE, NS, _request_timeout=5).spec.holder_identity
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_run(server, folder: Path, *extra: str, policy: str = POLICY, listen: str | None = None) -> subprocess.Popen:
    """`setpoint run --leader-elect` on the simulated server; its output goes to folder/run.log.
    Prometheus is a closed loopback port: cycles fail their queries, which these tests ignore."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "policies" / "pol.yaml").write_text(policy)
    kubeconfig = server.write_kubeconfig(folder / "kubeconfig.yaml", namespace=NS)
    args = [sys.executable, "-m", "controller.cli", "run", "--policies", str(folder / "policies"),
            "--prometheus", f"http://127.0.0.1:{free_port()}", "--prometheus-timeout", "1",
            "--kubeconfig", str(kubeconfig), "--listen", listen or f"127.0.0.1:{free_port()}",
            "--records", str(folder / "records.jsonl"), "--leader-elect", "--lease-namespace", NS,
            "--no-warm-start", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    log = open(folder / "run.log", "wb")
    try:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env,
                                start_new_session=True)
    finally:
        log.close()


def wait_exit(proc: subprocess.Popen, timeout_s: float) -> int:
    """The exit code; the process is killed (and the test fails, with the end of its log) if it
    has not exited in time."""
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        log = Path(proc.args[proc.args.index("--records") + 1]).parent / "run.log"
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise AssertionError(f"setpoint run did not exit within {timeout_s:g} s; its log ended:\n" + "\n".join(tail)) from None


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def plain_lines(folder: Path) -> list[str]:
    """The lines of run.log that are not JSON log records (what a user reads on the terminal)."""
    text = (folder / "run.log").read_text(errors="replace")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]


# ------------------------------------------------------------------------------ start-up errors
def _records_under_a_file(folder: Path, _: contextlib.ExitStack) -> tuple[list[str], dict]:
    (folder / "a-file").write_text("x")
    return ["--records", str(folder / "a-file" / "records.jsonl")], {}


def _invalid_policy(folder: Path, _: contextlib.ExitStack) -> tuple[list[str], dict]:
    return [], {"policy": POLICY.replace("interval: 1s", "interval: soon")}


def _listen_address_in_use(folder: Path, held: contextlib.ExitStack) -> tuple[list[str], dict]:
    taken = held.enter_context(socket.socket())
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return [], {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}


STARTUP_ERRORS = [  # (how to break the start-up, a word the one-line message must contain)
    pytest.param(_records_under_a_file, "a-file", id="records-path-under-a-file"),
    pytest.param(_invalid_policy, "interval", id="invalid-policy"),
    pytest.param(_listen_address_in_use, "in use", id="listen-address-in-use"),
]


@pytest.mark.parametrize(("breakage", "word"), STARTUP_ERRORS)
def test_a_start_up_error_exits_1_with_one_line_and_holds_no_lease(server, leases, tmp_path, breakage, word):
    folder = tmp_path / "run"
    folder.mkdir()
    with contextlib.ExitStack() as held:  # what the breakage holds while the process runs
        extra, options = breakage(folder, held)
        code = wait_exit(start_run(server, folder, *extra, **options), START_TIMEOUT_S)
    lines = plain_lines(folder)
    assert code == 1, (code, lines)
    assert len(lines) == 1 and word in lines[0], lines
    assert holder(leases) is None


# ------------------------------------------------------------------------------ stop signals
STOPS = [  # (signal, exit code): every stop signal ends as SIGTERM does
    pytest.param(signal.SIGTERM, 0, id="sigterm"),
    pytest.param(signal.SIGHUP, 0, id="sighup"),
    pytest.param(signal.SIGINT, 0, id="sigint"),
]


@pytest.mark.parametrize(("sig", "code"), STOPS)
def test_a_stop_signal_releases_the_lease(server, leases, tmp_path, sig, code):
    proc = start_run(server, tmp_path)
    try:
        wait_until(lambda: holder(leases) is not None, START_TIMEOUT_S, "the Lease to be taken")
        proc.send_signal(sig)
        assert wait_exit(proc, EXIT_TIMEOUT_S) == code, plain_lines(tmp_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert holder(leases) is None  # released: a standby takes over at once
    assert plain_lines(tmp_path) == []


def test_a_cycle_stuck_on_a_stalled_api_server_does_not_hold_the_exit(server, leases, tmp_path):
    """Every Deployment list stalls 60 s (the client's read timeout is 10 s, 4 tries: 38 s): after
    CYCLE_GRACE_S the stop refuses the cycle's remaining requests, so the cycle ends with its
    request in flight, within SHUTDOWN_GRACE_S (it was abandoned there, by os._exit); the Lease
    is released, and the exit is well within Kubernetes' default 30 s grace period."""
    proc = start_run(server, tmp_path)
    try:
        wait_until(lambda: holder(leases) is not None, START_TIMEOUT_S, "the Lease to be taken")
        stall = server.api.faults.inject(r"/namespaces/shop/deployments$", delay_s=60, times=100, method="GET")
        wait_until(lambda: stall.times < 100, 10, "a cycle to stall")
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = wait_exit(proc, SHUTDOWN_DEADLINE_S + 5)
        took_s = time.monotonic() - asked
    finally:
        server.api.faults.clear()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert code == 0, plain_lines(tmp_path)
    assert CYCLE_GRACE_S <= took_s < SHUTDOWN_GRACE_S, took_s
    assert holder(leases) is None
    log = (tmp_path / "run.log").read_text()
    assert "its remaining requests are not sent" in log and "exiting without it" not in log, log[-3000:]
