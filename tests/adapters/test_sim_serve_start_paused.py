"""``sim serve --start-paused``: the scenario clock holds at t=0 until a start request (``POST
/_sim/clock/start`` or SIGUSR1), so that a scenario's times count from a controller that runs.

While it holds, the world is as at t=0 (pods Ready, no load change, no fault) and the API
answers, and the metrics' counters go on at t=0's rates (Prometheus reads that load, not a stop);
the start lines the ticks up with the wall clock; a second start is a no-op. The driver runs on
fake clocks first (``step_due``: no thread, no sleep), then the real server over HTTP and the
real command with a real signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from simulators.kubeapi.server import EngineDriver, SimKubeServer, SimWorld
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import REQUEST_TIMEOUT_S, TOKEN
from tests.adapters.test_sim_serve_pause import WALL_START_S, FakeClocks, pod_times

# A load step and a bad release at 2 s: either shows at once if the clock runs.
SCENARIO_YAML = """
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: start-paused}
spec:
  duration: 1h
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      namespace: shop
      capacityPerPod: 100
      startupDelay: 2s
      schedulingDelay: 0s
      initialReplicas: 3
      maxPods: 20
      load: [{step: {at: 2s, from: 100, to: 250}}]
  faults:
    - {name: release, kind: bad-rollout, at: 2s, services: [web], errorRatioMultiplier: 10}
"""
SPEED = 5.0  # 1 s ticks every 0.2 wall s
REVISION = "deployment.kubernetes.io/revision"


def web_requests(world: SimWorld) -> float:
    """web's http_requests_total, summed over its pods, as a scrape shows it."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in world.metrics.render().splitlines()
               if line.startswith("http_requests_total{") and 'deployment="web"' in line)


def web_revision(world: SimWorld) -> str:
    return world.store.get_workload("Deployment", "shop", "web")["metadata"]["annotations"][REVISION]


def scenario():
    return load_scenario_text(SCENARIO_YAML, "start-paused.yaml")


def held_world(paused: bool = True) -> tuple[SimWorld, EngineDriver, FakeClocks]:
    """The scenario at SPEED, its driver (paused) on fake clocks."""
    world = SimWorld(scenario(), speed=SPEED, wall_start_s=WALL_START_S)
    clocks = FakeClocks()
    return world, EngineDriver(world, monotonic=clocks.monotonic, wall=clocks.wall, paused=paused), clocks


@dataclass(frozen=True)
class Hold:
    """The driver wakes ``wakes`` times, each ``late_s`` past the tick due: the ticks it holds."""

    wakes: int
    late_s: float
    held: int


HOLDS = [
    pytest.param(Hold(1, 0.0, 1), id="one-tick"),
    pytest.param(Hold(50, 0.0, 50), id="ten-seconds-tick-by-tick"),
    pytest.param(Hold(1, 0.5, 3), id="a-late-wake-holds-the-ticks-due"),
    # as a stepped lag: at most MAX_CATCH_UP_S of wall time's ticks at once, the rest let go
    pytest.param(Hold(1, 600.0, 5), id="sigstop-10min-is-not-counted-in-a-burst"),
]


@pytest.mark.parametrize("hold", HOLDS)
def test_a_paused_clock_holds_the_world_at_t0_and_the_metrics_go_on_at_its_rates(hold):
    world, driver, clocks = held_world()
    requests, revision, pods = web_requests(world), web_revision(world), world.store.pod_statuses()
    created = pod_times(world)
    for _ in range(hold.wakes):
        clocks.now = driver.due + hold.late_s
        assert driver.step_due(clocks.now) == 0  # no tick stepped
    assert (world.ticks, world.scenario_s, web_revision(world)) == (1, 0.0, revision)
    assert world.store.pod_statuses() == pods and pod_times(world) == created
    # what a client writes now shows the wall clock's time (before: the server's start, the hold behind)
    assert world.store.wall_now() == pytest.approx(clocks.wall(), abs=1e-6)
    assert world.metrics.last.values["offered_rps"][0] == 100.0  # the step at 2 s did not come
    # each tick held counts t=0's 100 rps for its wall time (1 s / SPEED): rate() reads 100
    assert web_requests(world) - requests == pytest.approx(100.0 * hold.held / SPEED)
    assert driver.paused and driver.due > clocks.now


def test_the_start_lines_the_ticks_up_with_the_wall_clock_and_the_scenario_counts_from_it(caplog):
    world, driver, clocks = held_world()
    clocks.now = driver.due + 30.0  # held for 30 s
    driver.step_due(clocks.now)
    with caplog.at_level(logging.INFO, "setpoint.sim.kubeapi"):
        assert driver.start_clock("a test") is True
    assert not driver.paused and driver.due == clocks.now + driver.interval_s
    clocks.now = driver.due
    assert driver.step_due(clocks.now) == 1
    assert world.scenario_s == 1.0 and world.store.wall_now() == clocks.wall()  # in line, not 30 s behind
    assert web_revision(world) == "1"
    clocks.now = driver.due
    driver.step_due(clocks.now)  # t=2: the load step and the release, 2 ticks after the start
    assert world.metrics.last.values["offered_rps"][0] == 250.0 and web_revision(world) == "2"
    started = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scenario clock started")]
    assert started == ["scenario clock started (a test) after 30.2s paused at its start: the load and faults of "
                       "scenario start-paused count from now"], started


def test_a_second_start_is_a_no_op(caplog):
    world, driver, clocks = held_world()
    driver.start_clock("the first")
    for _ in range(3):
        clocks.now = driver.due
        driver.step_due(clocks.now)
    due, skips = driver.due, list(world.store.clock.skips)
    caplog.clear()  # the first start's line is caught too where an earlier test left the logger at INFO
    with caplog.at_level(logging.INFO, "setpoint.sim.kubeapi"):
        assert driver.start_clock("the second") is False
    assert (driver.due, world.store.clock.skips, world.scenario_s) == (due, skips, 3.0)  # nothing re-aligned
    assert [r.getMessage() for r in caplog.records] == [
        "start request (the second): the scenario clock is already running, at 3s; nothing to do"]


def test_a_server_not_started_paused_runs_at_once():
    world, driver, clocks = held_world(paused=False)
    clocks.now = driver.due
    assert not driver.paused and driver.step_due(clocks.now) == 1 and world.scenario_s == 1.0


# --------------------------------------------------------------------------- over HTTP
def call(server: SimKubeServer, path: str, method: str = "GET", token: str | None = TOKEN) -> tuple[int, dict]:
    """(status, JSON body) of a request to the server's own path."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(server.url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S, context=server.client_ssl_context()) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def paused_server():
    server = SimKubeServer(scenario(), token=TOKEN, speed=SPEED,
                           metrics_port=0, start_paused=True).start()
    yield server
    server.stop()


def test_paused_over_http_until_the_start_request_then_a_second_is_a_no_op(paused_server):
    server = paused_server
    first = call(server, "/_sim/clock")
    requests = web_requests(server.world)
    time.sleep(2.0)  # 10 simulated seconds had the clock run: past the step and the release at 2 s
    assert call(server, "/_sim/clock") == first == (200, {"paused": True, "scenarioSeconds": 0.0})
    assert web_revision(server.world) == "1" and server.world.metrics.last.values["offered_rps"][0] == 100.0
    assert web_requests(server.world) > requests  # served, and counting t=0's load
    assert server.world.ticks == 1

    status, body = call(server, "/_sim/clock/start", "POST")
    assert (status, body["started"], body["paused"]) == (200, True, False)
    deadline = time.monotonic() + 10
    while web_revision(server.world) != "2" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert web_revision(server.world) == "2"  # the release came, the clock runs

    status, body = call(server, "/_sim/clock/start", "POST")
    assert (status, body["started"], body["paused"]) == (200, False, False)
    assert body["scenarioSeconds"] >= 2.0  # not set back


@pytest.mark.parametrize("path, method, token, code", [
    pytest.param("/_sim/clock/start", "GET", TOKEN, 405, id="start-is-a-post"),
    pytest.param("/_sim/clock", "POST", TOKEN, 405, id="the-state-is-a-get"),
    pytest.param("/_sim/clock/start", "POST", None, 401, id="start-needs-the-token"),
    pytest.param("/_sim/clock", "GET", "wrong", 401, id="state-needs-the-token"),
])
def test_clock_requests_that_are_refused(paused_server, path, method, token, code):
    status, body = call(paused_server, path, method, token)
    assert (status, body["kind"], body["code"]) == (code, "Status", code), body
    assert paused_server.driver.paused


def test_a_world_stepped_by_hand_has_no_clock_to_start():
    with pytest.raises(ValueError, match="start_paused needs drive"):
        SimKubeServer(scenario(), drive=False, start_paused=True)
    server = SimKubeServer(scenario(), token=TOKEN, drive=False).start()
    try:
        status, body = call(server, "/_sim/clock/start", "POST")
        assert status == 409 and "stepped by hand" in body["message"]
        assert call(server, "/_sim/clock") == (200, {"paused": False, "scenarioSeconds": 0.0})
    finally:
        server.stop()


# --------------------------------------------------------------------------- the command
@contextlib.contextmanager
def sim_serve(tmp_path, *flags: str):
    """`setpoint sim serve` of the scenario with ``flags``, its output in sim.log: (Popen, a
    function that waits up to 30 s for a text in that output); stopped with SIGTERM (exit 0)."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO_YAML)
    log = tmp_path / "sim.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "sim", "serve", "scenario.yaml",
                                 "--kube-listen", "127.0.0.1:0", "--speed", str(SPEED), *flags], cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)

    def logged(text: str) -> str:
        deadline = time.monotonic() + 30
        while text not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert text in log.read_text(), log.read_text()
        return log.read_text()

    try:
        logged("Kubernetes API: https://127.0.0.1:")
        yield proc, logged
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_the_command_starts_paused_and_sigusr1_starts_the_clock_once(tmp_path):
    with sim_serve(tmp_path, "--start-paused") as (proc, logged):
        said = logged("scenario clock: paused at its start; start it with POST https://127.0.0.1:")
        assert f"/_sim/clock/start or kill -USR1 {proc.pid}" in said
        assert "its clock paused at its start until POST /_sim/clock/start or SIGUSR1" in said
        proc.send_signal(signal.SIGUSR1)
        logged("scenario clock started (SIGUSR1) after ")
        proc.send_signal(signal.SIGUSR1)  # a second: logged, nothing else
        logged("start request (SIGUSR1): the scenario clock is already running")


def test_sigusr1_without_start_paused_is_logged_and_the_server_serves_on(tmp_path):
    """Before --start-paused, SIGUSR1's default action ended sim serve (exit -10)."""
    with sim_serve(tmp_path) as (proc, logged):
        assert "scenario clock" not in logged("Kubernetes API")
        proc.send_signal(signal.SIGUSR1)
        logged("start request (SIGUSR1): the scenario clock is already running")
