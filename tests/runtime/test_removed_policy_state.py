"""A removed policy's state on the cluster is deleted once none of it matters, through the
simulated cluster's Kubernetes API (``setpoint sim serve``'s server in process, the official
client over loopback HTTPS): the live service's cycles write the policies' ConfigMaps, a reload
removes one, time passes its keep, and its ConfigMap is deleted by the leader; a policy added
back meanwhile keeps its state; a standby, a dry run and a replica that lost the Lease delete
nothing; a write that lands between the read and the delete (a resourceVersion conflict) leaves
the newer ConfigMap. Times are the service's clock, set by the test."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.runtime.dryrun import DryRunCluster, DryRunStateStore
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.state_cleanup import LAST_SEEN_MARGIN_S, RETRY_S, RemovedStateCleanup, utc
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, start_server

STATE_NS = "setpoint-system"
CONTROLLER = f"{STATE_NS}/setpoint"
T0 = 1_700_000_000.0
KEEP_S = 3600.0  # handsOff 0s: the external-scale fight window, an hour, is the longest memory
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  targets: {{kind: Deployment, namespace: shop, names: [{name}]}}
  interval: 15s
  replicas: {{min: 1, max: 20}}
  scaling:
    metrics: [{{name: rps, query: demand_{name}, target: {{averagePerReplica: 30}}}}]
    onExternalScale: {{handsOff: 0s}}
    behavior:
      scaleUp: {{stabilizationWindow: 0s, policies: [{{type: Pods, value: 10, period: 1m}}]}}
      scaleDown: {{stabilizationWindow: 0s, policies: [{{type: Pods, value: 1, period: 1m}}]}}
"""


class Site:
    """One simulated cluster and a policies folder; each ``controller()`` is a controller process
    (its own client, cluster, state store and service) sharing only what is on the cluster."""

    def __init__(self, tmp_path: Path):
        self.server, self.tmp_path = start_server(), tmp_path
        self.folder = tmp_path / "policies"
        self.folder.mkdir()
        self.now = T0
        world = self.server.world
        world.advance(2)
        self.metrics = SimMetrics(world.engine, {"demand_web": "offered_rps", "demand_api": "offered_rps"},
                                  window_s=15, tick_s=world.tick_s)
        self.metrics.push(world.engine.signals())
        self.clusters: list[KubernetesCluster] = []

    def write(self, *names: str) -> None:
        """The policy files are exactly ``names`` (web, api: each scales its Deployment; idle: one
        that selects nothing, so that a folder without web and api still loads)."""
        for path in self.folder.glob("*.yaml"):
            if path.stem not in names:
                path.unlink()
        for name in names:
            (self.folder / f"{name}.yaml").write_text(POLICY.format(name=name))

    def store(self, store_class=KubernetesStateStore, fence=None, **kw) -> KubernetesStateStore:
        cluster = KubernetesCluster(official_client(self.server, self.tmp_path), qps=0, retry_backoff_s=0.01,
                                    emit_events=False, fence=fence)
        self.clusters.append(cluster)
        return store_class(cluster, STATE_NS, owner=CONTROLLER, **kw)

    def controller(self, leader: bool = True, dry_run: bool = False, store=None) -> ControllerService:
        store = store or self.store()
        cluster = DryRunCluster(store.cluster) if dry_run else store.cluster
        return ControllerService([self.folder], self.metrics, cluster, Telemetry(),
                                 ServiceOptions(reload_settle_s=0, controller=CONTROLLER), clock=lambda: self.now,
                                 is_leader=lambda: leader, state_store=DryRunStateStore(store) if dry_run else store)

    def has(self, name: str) -> bool:
        """Whether the ConfigMap setpoint-state-<name> is on the cluster."""
        with self.server.world.store.lock:
            return (STATE_NS, f"setpoint-state-{name}") in self.server.world.store.configmaps.items

    def data(self, name: str) -> str:
        return self.server.world.store.configmaps.get(STATE_NS, f"setpoint-state-{name}")["data"]["state.json"]

    def deletes(self) -> int:
        """ConfigMap deletions the API server received."""
        return self.server.api.requests.count("DELETE", "/configmaps/")

    def close(self) -> None:
        for c in self.clusters:
            c.close()
        self.server.stop()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()


def run_both(site: Site) -> ControllerService:
    """A leader runs web and api once (both scale: their scale events are written to the cluster)."""
    site.write("web", "api")
    service = site.controller()
    service.tend_removed_state()  # as its start does
    for name in ("web", "api"):
        assert service.run_cycle(name).actions, name
    assert site.has("web.scale-events") and site.has("api.scale-events")
    return service


def cleanups(service: ControllerService, outcome: str) -> float:
    return service.telemetry.registry.get_sample_value("setpoint_state_cleanups_total", {"outcome": outcome})


def test_a_removed_policys_configmap_is_deleted_after_its_keep_a_re_added_one_is_kept(site, caplog):
    service = run_both(site)
    caplog.set_level(logging.INFO, logger="setpoint")
    site.write("web", "idle")
    site.now = removed_at = T0 + 60
    assert service.reload_if_changed() and set(service.policies) == {"web", "idle"}
    assert f"is deleted at {utc(removed_at + KEEP_S)}, 1h after it stopped running" in caplog.text
    site.write("idle")  # web goes too, and comes back ten minutes later (a GitOps revert)
    site.now = T0 + 120
    assert service.reload_if_changed() and set(service.policies) == {"idle"}
    site.write("web", "idle")
    site.now = T0 + 720
    assert service.reload_if_changed() and set(service.policies) == {"web", "idle"}
    site.now = removed_at + KEEP_S - 1
    service.tend_removed_state()
    assert site.has("api.scale-events") and site.deletes() == 0
    assert service.telemetry.registry.get_sample_value("setpoint_state_cleanups_pending") == 1
    site.now = removed_at + KEEP_S
    service.tend_removed_state()
    assert not site.has("api.scale-events") and site.deletes() == 1
    assert "deleted the durable state of removed policy api (setpoint-state-api.scale-events)" in caplog.text
    assert (cleanups(service, "deleted"), service.telemetry.registry.get_sample_value(
        "setpoint_state_cleanups_pending")) == (1, 0)
    site.now += 30 * 86400.0
    service.tend_removed_state()
    assert site.has("web.scale-events") and site.deletes() == 1  # loaded again: kept for good
    assert '"web"' in site.data("setpoint.policy-index") and '"api"' not in site.data("setpoint.policy-index")


def test_a_restart_without_a_policy_deletes_its_state_from_when_it_was_last_seen(site):
    run_both(site)
    site.write("web")
    site.now = T0 + 600  # a new process, on files that no longer have api
    restarted = site.controller()
    restarted.tend_removed_state()
    site.now = T0 + LAST_SEEN_MARGIN_S + KEEP_S - 1
    restarted.tend_removed_state()
    assert site.has("api.scale-events")
    site.now += 1
    restarted.tend_removed_state()
    assert not site.has("api.scale-events") and site.has("web.scale-events")


@pytest.mark.parametrize("mode", ["standby", "dry-run"])
def test_a_standby_or_a_dry_run_deletes_nothing(site, mode):
    run_both(site)
    site.write("web")
    other = site.controller(leader=mode != "standby", dry_run=mode == "dry-run")
    for now in (T0 + 60, T0 + 365 * 86400.0):
        site.now = now
        other.reload_if_changed()
        other.tend_removed_state()
    assert site.has("api.scale-events") and site.deletes() == 0


def test_a_replica_that_lost_the_lease_sends_no_delete(site):
    """Its leadership check passed, then the Lease was lost: the adapter's fence, asked right
    before each write, stops the DELETE (and the index write); nothing is deleted, tried again later."""
    run_both(site)
    leading = [True]
    cleanup = RemovedStateCleanup(site.store(fence=lambda: leading[0]), CONTROLLER)
    policies = site.controller().policies
    cleanup.tend(policies, T0 + 30)
    del policies["api"]
    cleanup.tend(policies, T0 + 60)
    leading[0] = False
    assert cleanup.tend(policies, T0 + 60 + KEEP_S).deleted == []
    assert site.has("api.scale-events") and site.deletes() == 0
    leading[0] = True
    assert cleanup.tend(policies, T0 + 60 + KEEP_S + RETRY_S).deleted == ["api"]
    assert not site.has("api.scale-events")


class RacingStore(KubernetesStateStore):
    """A state store whose first delete of scale events races with another process of the
    controller writing them (a cycle of the policy still running, another replica that still runs
    it): ``rival`` writes between this store's read and its DELETE."""

    rival: KubernetesStateStore | None = None
    rival_saves_at = 0.0

    def delete(self, policy, part=""):
        if self.rival is not None and part == "scale-events":
            self.rival.save(policy, {"version": 1, "policy": policy, "savedAt": self.rival_saves_at, "targets": {}},
                            part)
            self.rival = None
        return super().delete(policy, part)


def test_a_write_between_the_read_and_the_delete_leaves_the_newer_configmap(site):
    service = run_both(site)
    racing = site.store(RacingStore)
    cleanup = RemovedStateCleanup(racing, CONTROLLER)
    cleanup.tend(service.policies, T0 + 30)
    racing.rival, racing.rival_saves_at = site.store(), T0 + 900
    policies = {"web": service.policies["web"]}
    cleanup.tend(policies, T0 + 60)
    result = cleanup.tend(policies, T0 + 60 + KEEP_S)
    assert (result.deleted, result.changed) == ([], ["api"])  # the API server answered 409
    assert site.has("api.scale-events") and f'"savedAt":{T0 + 900}' in site.data("api.scale-events")
    # read again after the retry delay: saved after the removal, it is kept a whole keep from that save
    assert cleanup.tend(policies, T0 + 60 + KEEP_S + RETRY_S).deleted == [] and site.has("api.scale-events")
    assert cleanup.tend(policies, T0 + 900 + KEEP_S).deleted == ["api"] and not site.has("api.scale-events")
