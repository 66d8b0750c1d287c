"""The Kubernetes API misbehaves under a running reconciler: conflicts, 5xx, timeouts and 403
are retried or reported, the loop never crashes, and no action is applied twice.

The real ``kubernetes`` client talks to the simulated API server; its fault hooks make the
next matching requests fail (a real API server cannot be made to on demand).
"""

from __future__ import annotations

import threading
import time

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.errors import Stopping, TemporaryError
from controller.model import Action, ActionKind, TargetRef
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  scaling:
    metrics:
      - name: rps
        query: offered
        target: {averagePerReplica: 30}
"""
SCALE_PATH = r"/deployments/web/scale$"


def setup(server, tmp_path, **cluster_options):
    [policy] = load_policy_text(POLICY, "web.yaml")
    world = server.world
    world.advance(3)
    metrics = SimMetrics(world.engine, {"offered": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    options = dict(qps=0, max_retries=2, retry_backoff_s=0.01, request_timeout_s=1.0)
    options.update(cluster_options)
    cluster = KubernetesCluster(official_client(server, tmp_path), **options)
    rec = Reconciler(RuntimePolicy(policy.name, policy.params, policy.targets, ("offered",)), metrics, cluster)
    return rec, cluster, world


def scale_writes(server) -> int:
    return server.api.requests.count("PATCH", SCALE_PATH) + server.api.requests.count("PUT", SCALE_PATH)


FAULTS = [  # status, times, delay_s, applied (client saw success), failure kind, spec on the server after
    pytest.param(409, 1, 0.0, True, None, 5, id="conflict-once-retried"),
    pytest.param(503, 2, 0.0, True, None, 5, id="503-twice-retried"),
    pytest.param(500, 10, 0.0, False, "temporary", 2, id="500-persisting-reported"),
    pytest.param(403, 1, 0.0, False, "permanent", 2, id="forbidden-reported-not-retried"),
    # A slow server that still applies the write: the client times out and reports it, and the
    # write did land (as with a real API server). The next cycle observes 5 and writes nothing.
    # Each try times out 2.5 s before the server answers (a 0.5 s timeout, slow_server_timeout_s),
    # and the test waits for the first write to land (3 s after it was sent) before that next cycle.
    pytest.param(None, 10, 3.0, False, "temporary", 5, id="timeouts-reported-write-landed"),
]


def slow_server_timeout_s(delay_s: float) -> float:
    """The client's request timeout against a server that holds each write ``delay_s``: a sixth
    of it, far below. With 1.0 s against 1.5 s, and the write required to land within the cycle's
    two tries, a CI run at load 12 once had a try answered (a thread starved past its timeout)
    and the scale counted as done."""
    return delay_s / 6 if delay_s else 1.0


@pytest.mark.parametrize("status,times,delay_s,applied,failure,spec_after", FAULTS)
def test_api_faults_while_scaling(server, tmp_path, status, times, delay_s, applied, failure, spec_after):
    rec, cluster, world = setup(server, tmp_path, request_timeout_s=slow_server_timeout_s(delay_s))
    server.api.faults.inject(SCALE_PATH, status=status, times=times, delay_s=delay_s, method="PATCH")
    before = scale_writes(server)
    result = rec.cycle(world.engine.now)  # 150 rps at 30 per replica: 2 -> 5 wanted
    writes = scale_writes(server) - before
    spec = world.engine.spec_replicas[world.engine.index("web")]
    if applied:
        assert [a.replicas for a in result.actions] == [5] and spec == 5 and not result.failed
    else:
        assert not result.actions and len(result.failed) == 1 and result.failed[0][1].startswith(failure)
        deadline = time.monotonic() + delay_s + 10.0  # a slow server's write lands delay_s after it was sent
        while spec != spec_after and time.monotonic() < deadline:
            time.sleep(0.05)
            spec = world.engine.spec_replicas[world.engine.index("web")]
        assert spec == spec_after
    assert writes <= 1 + 2  # bounded: the first try plus at most max_retries
    server.api.faults.clear()
    # the next cycle: applied ones are not applied again (no duplicate write); failed ones retry once
    before = scale_writes(server)
    result = rec.cycle(world.engine.now + 15)
    assert scale_writes(server) - before == (0 if spec_after == 5 else 1)
    assert world.engine.spec_replicas[world.engine.index("web")] == 5
    cluster.close()


def test_observe_failure_is_reported_and_the_next_cycle_works(server, tmp_path):
    rec, cluster, world = setup(server, tmp_path)
    server.api.faults.inject(r"/deployments$", status=503, times=10, method="GET")
    with pytest.raises(Exception) as exc:
        rec.cycle(world.engine.now)
    assert "503" in str(exc.value)
    server.api.faults.clear()
    assert [a.replicas for a in rec.cycle(world.engine.now + 15).actions] == [5]
    cluster.close()


@pytest.mark.parametrize("targets", [
    pytest.param("names: [ghost]", id="a-named-deployment-not-there-yet"),
    pytest.param("selector: {matchLabels: {app: nothing}}", id="a-selector-matching-nothing"),
])
def test_a_policy_whose_targets_resolve_to_none_cycles_quietly(server, tmp_path, targets):
    # Its empty ClusterView had float rollout/exists arrays, and the start-up observer's '&' raised
    # TypeError every cycle (/readyz went 503).
    [policy] = load_policy_text(POLICY.replace("names: [web]", targets), "ghost.yaml")
    metrics = SimMetrics(server.world.engine, {"offered": "offered_rps"}, window_s=15, tick_s=server.world.tick_s)
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, max_retries=0, request_timeout_s=1.0)
    rec = Reconciler(RuntimePolicy(policy.name, policy.params, policy.targets, ("offered",)), metrics, cluster)
    for k in range(3):
        result = rec.cycle(server.world.engine.now + 15 * k)
        assert result.targets == [] and not result.actions and not result.failed


def test_a_stopping_controller_cuts_a_retrying_read_short_and_sends_nothing_more(server, tmp_path):
    # SIGTERM during a 503 storm: the read's next retry (a 5 s back-off here) is not waited for,
    # and no request is sent after stop_requests (cli/live.py _stop_within)
    rec, cluster, world = setup(server, tmp_path, max_retries=3, retry_backoff_s=5.0)
    storm = server.api.faults.inject(r"/deployments$", status=503, times=10, method="GET")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_raised(cluster.resolve, rec.policy.selector)))
    reader.start()
    deadline = time.monotonic() + 5
    while storm.times == 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    cluster.stop_requests()
    reader.join(5)
    assert not reader.is_alive() and storm.times == 9  # one request: no retry after the stop
    assert isinstance(outcome[0], TemporaryError) and "HTTP 503" in str(outcome[0])
    before = sum(cluster.requests.values())
    with pytest.raises(Stopping, match="not sent, the controller is stopping"):
        cluster.apply(Action(ActionKind.SCALE, TargetRef("shop", "web"), "test", replicas=7, from_replicas=2))
    assert sum(cluster.requests.values()) == before and world.engine.spec_replicas[world.engine.index("web")] == 2
    cluster.close()


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # the outcome is asserted by the caller
        return exc
    return None
