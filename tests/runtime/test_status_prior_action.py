"""After a failover the new leader's status shows the last action its predecessor applied.

Found in an operator walkthrough: the new leader's `setpoint status` (and GET /status) read "last
action: none" for every target although the old leader had scaled a minute before; status lives
in each process's memory, so an operator paged during an incident read it as if Setpoint had
never acted. At a take-over the new leader now reads Setpoint's action Events back (once, on a
thread of its own) and shows each target's last applied one, marked as taken before it led.

A failover drill through sim serve's Kubernetes API with the official client: two replicas wired
as `setpoint run --leader-elect` wires them (a KubernetesCluster fenced by its LeaderElector on
the Lease, the state store, a ControllerService and its GET /status). The first leads and runs
its cycles, then releases the Lease (SIGTERM); the second takes it and runs one cycle. The
metrics source is a stand-in whose rps each cycle sets (2 replicas of web, 50 rps a replica).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore, fence_with_lease
from controller.ports import Samples
from controller.runtime.http import StatusServer
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.status import fetch_status
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_status_http import cli

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 10}
  scaling:
    metrics:
      - name: rps
        query: rps
        target: {averagePerReplica: 50}
"""
SCALE = r"/namespaces/shop/deployments/web/scale$"
EVENTS = r"/namespaces/shop/events$"
FORBIDDEN_EVENTS = ('events is forbidden: User "system:serviceaccount:setpoint:setpoint" cannot list resource '
                    '"events" in API group "" in the namespace "shop"')


class Rps:
    """The MetricsSource of both replicas: the rps the step sets, for every target."""

    def __init__(self):
        self.rps = 100.0

    def query(self, expr, targets, at, labels=None) -> Samples:
        n = len(targets)
        return Samples(np.full(n, self.rps), np.ones(n, bool), np.zeros(n), np.zeros(n, bool))


class Replica:
    """One `setpoint run --leader-elect` process: fenced adapter, elector, state store, service, GET /status."""

    def __init__(self, server, folder, identity: str, policy_file, metrics):
        folder.mkdir()
        self.cluster = KubernetesCluster(official_client(server, folder), qps=0, retry_backoff_s=0.01)
        self.elector = fence_with_lease(self.cluster, "shop", "setpoint", identity, lease_duration_s=15,
                                        renew_deadline_s=10, request_timeout_s=5)
        self.telemetry = Telemetry()
        self.service = ControllerService([policy_file], metrics, self.cluster, self.telemetry,
                                         ServiceOptions(lease="shop/setpoint"), is_leader=self.elector.is_leader,
                                         leader_term=lambda: self.elector.term,
                                         state_store=KubernetesStateStore(self.cluster, "shop"))
        self.http = StatusServer("127.0.0.1:0", self.telemetry.registry, self.service.healthy, self.service.ready,
                                 status=self.service.status).start()
        self.url = f"http://127.0.0.1:{self.http.port}"

    def lead(self) -> None:
        assert self.elector.try_acquire_or_renew() and self.elector.is_leader()

    def cycle(self):
        return self.service.run_cycle("web")

    def close(self) -> None:
        self.http.stop()
        self.service.stop(wait=False)
        self.elector.stop()  # SIGTERM: the Lease is released
        self.cluster.close()  # the queued Events are sent first


# each row: the first leader's cycles (rps, its scale refused: a 403), the second's one cycle
# (rps, refused), whether the second cannot list Events (403), and what its status shows as the
# last action: (action, from, to, reason, before it led), or None
@pytest.mark.parametrize("first, second, events_refused, shown", [
    pytest.param([(150, False)], (150, False), False, ("scale", 2, 3, "ScaleUp", True),
                 id="the-previous-leaders-scale-shown-as-its"),
    pytest.param([(100, False)], (100, False), False, None, id="no-prior-action-none"),
    pytest.param([(150, False), (250, True)], (250, True), False, ("scale", 2, 3, "ScaleUp", True),
                 id="a-refused-scale-is-not-restored-the-applied-one-is"),
    pytest.param([(150, True)], (150, True), False, None, id="only-a-refused-scale-none"),
    pytest.param([(150, False)], (150, False), True, None, id="events-unreadable-403-none-and-a-log-line"),
    pytest.param([(150, False)], (250, False), False, ("scale", 3, 5, "ScaleUp", False),
                 id="the-new-leaders-own-action-is-its-own"),
])
def test_a_new_leader_shows_the_last_action_applied_before_it_led(first, second, events_refused, shown,
                                                                   server, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    server.world.advance(2)
    policy = tmp_path / "web.yaml"
    policy.write_text(POLICY)
    metrics = Rps()
    a = Replica(server, tmp_path / "a", "pod-a", policy, metrics)
    b = Replica(server, tmp_path / "b", "pod-b", policy, metrics)
    faults = server.api.faults
    try:
        a.lead()
        started = time.time()
        for rps, refused in first:
            metrics.rps = rps
            if refused:
                faults.inject(SCALE, status=403, times=1, method="PATCH")
            assert a.cycle() is not None
            faults.clear()
        applied_by_a = time.time()
        a.close()  # a rolling upgrade's old pod: its Events sent, the Lease released

        b.lead()
        metrics.rps, refused = second
        if refused:
            faults.inject(SCALE, status=403, times=1, method="PATCH")
        if events_refused:
            faults.inject(EVENTS, status=403, times=1, method="GET", message=FORBIDDEN_EVENTS)
        result = b.cycle()
        assert result is not None and result.errors == []  # the read back never fails the cycle
        if b.service.recall_thread is not None:  # the take-over's read back, which the cycle did not wait for
            b.service.recall_thread.join(10)
        view = fetch_status(b.url)
        text = cli("--server", b.url) if shown else None
    finally:
        b.close()
        a.close()

    last = view["web"]["targets"]["shop/web"]["last_action"]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("status: ")]
    if shown is None:
        assert last is None, last
    else:
        assert (last["action"], last["from"], last["to"], last["reason"], bool(last.get("before_leading"))) == shown
        if shown[-1]:  # the old leader's: when it applied it (an Event's second), by whom
            assert int(started) <= last["at"] <= applied_by_a and last["by"], last
            assert "before this replica led" in " ".join(text.stdout.split()), text.stdout
    refusal = [line for line in said if "403" in line and "not all known" in line]
    assert bool(refusal) == events_refused, said
