"""Replicas someone else set are left alone for ``onExternalScale.handsOff``, then scaled from there;
a writer that keeps reverting the controller's writes is a fight, said out loud.

Real components: the real ``kubernetes`` client (and the real kubectl) against the simulated API
server, which keeps metadata.managedFields as the real one does; the reconciler writes as field
manager ``setpoint``. Times are the simulation's: the engine is stepped by hand, 15 s per cycle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest
from kubernetes import client

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.errors import StateStoreError
from controller.policy import load_policy_text
from controller.runtime.dryrun import DryRunCluster
from controller.runtime.external_scale import FIGHT_REVERTS
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, start_server

KUBECTL = shutil.which("kubectl")
CYCLE_S = 15.0
STATE_NAMESPACE = "setpoint-system"

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
    behavior:
      scaleDown: {stabilizationWindow: 0s, policies: [{type: Pods, value: 1, period: 1m}]}
%s"""


class Loop:
    """A reconciler on sim serve, one cycle per 15 simulated seconds (the engine stepped in between)."""

    def __init__(self, server, tmp_path, hands_off: str | None = "2m", rehearse: bool = False,
                 deploy_managers: str | None = None, store: bool = False):
        fields = ([f"handsOff: {hands_off}"] if hands_off is not None else []) + (
            [f"deployManagers: [{deploy_managers}]"] if deploy_managers else [])
        extra = f"    onExternalScale: {{{', '.join(fields)}}}\n" if fields else ""
        [policy] = load_policy_text(POLICY % extra, "web.yaml")
        self.server, self.world = server, server.world
        self.world.advance(3)
        self.metrics = SimMetrics(self.world.engine, {"offered": "offered_rps"}, window_s=15, tick_s=self.world.tick_s)
        self.metrics.push(self.world.engine.signals())
        self.api_client = official_client(server, tmp_path)
        self.cluster = KubernetesCluster(self.api_client, qps=0, max_retries=1, retry_backoff_s=0.01,
                                         request_timeout_s=2.0)
        self.telemetry = Telemetry()
        self.store = KubernetesStateStore(self.cluster, STATE_NAMESPACE) if store else None
        self.rec = Reconciler(RuntimePolicy.of(policy), self.metrics,
                              DryRunCluster(self.cluster) if rehearse else self.cluster,
                              on_cycle=self.telemetry.observe_cycle, state_store=self.store)
        self.apps = client.AppsV1Api(self.api_client)

    def cycle(self):
        result = self.rec.cycle(self.world.engine.now)
        for _ in range(int(CYCLE_S / self.world.tick_s)):
            self.world.advance(1)
            self.metrics.push(self.world.engine.signals())
        return result

    def spec(self) -> int:
        engine = self.world.engine
        return int(engine.spec_replicas[engine.index("web")])

    def scale_by(self, manager: str, replicas: int, scale_subresource: bool = True) -> None:
        if scale_subresource:
            self.apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": replicas}},
                                                        field_manager=manager)
        else:  # a GitOps sync: the Deployment itself
            self.apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": replicas}},
                                                  field_manager=manager)

    def events(self, reason: str) -> list[dict]:
        assert self.cluster.events.flush(), "events not sent in 10 s"  # sent in the background
        return [e for e in self.server.world.store.events.items.values() if e.get("reason") == reason]

    def sample(self, name: str, **labels) -> float | None:
        return self.telemetry.registry.get_sample_value(name, {"policy": "web", **labels})

    def close(self):
        self.cluster.close()


@pytest.fixture
def server():
    """sim serve (TLS, token), its engine stepped by hand."""
    srv = start_server()
    yield srv
    srv.stop()


def sim_ports(server, tmp_path, query: str, advance_s: int):
    """(metrics, api_client, cluster) on sim serve: ``query`` reads the offered rps over 15 s, the
    engine stepped ``advance_s`` first; the real client, as field manager setpoint."""
    world = server.world
    world.advance(advance_s)
    metrics = SimMetrics(world.engine, {query: "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    api_client = official_client(server, tmp_path)
    return metrics, api_client, KubernetesCluster(api_client, qps=0, retry_backoff_s=0.01)


def record(result) -> dict:
    [r] = cycle_records(result, ("rps",))
    return r.to_dict()


@pytest.fixture
def loop_factory(server, tmp_path):
    loops = []

    def make(**kwargs) -> Loop:
        loops.append(Loop(server, tmp_path, **kwargs))
        return loops[-1]

    yield make
    for loop in loops:
        loop.close()


@pytest.mark.parametrize("writer, manager, subresource", [
    pytest.param("kubectl-patch", "kubectl", True, id="scale-subresource-as-kubectl"),
    pytest.param("kubectl-edit", "kubectl-edit", False, id="deployment-edited-by-a-person"),
])
def test_hands_off_after_an_external_scale_then_resume_from_the_current_count(loop_factory, caplog, writer, manager,
                                                                                 subresource):
    loop = loop_factory(hands_off="2m")
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    first = loop.cycle()  # 150 rps at 30 per replica: 2 -> 5
    assert [a.replicas for a in first.actions] == [5] and loop.spec() == 5
    loop.scale_by(manager, 9, subresource)  # the on-call engineer (or a sync) sets 9
    seen_at = loop.world.engine.now
    held = [loop.cycle() for _ in range(8)]  # 2 minutes: cycles at +0 s .. +105 s after the change
    assert all(not r.actions for r in held) and loop.spec() == 9
    reasons = [record(r)["reason"] for r in held]
    assert reasons == ["ExternalOverride"] * 8
    first_held = record(held[0])
    assert first_held["externalScale"] == {"by": manager, "replicas": 9, "from": 5, "at": seen_at,
                                           "until": seen_at + 120.0, "floor": True}
    assert first_held["desired"] == 9 and first_held["stabilized"] == 5  # what it would have set, kept in the record
    assert held[0].conditions[0]["ScalingActive"]["reason"] == "ExternalOverride"
    [event] = loop.events("ExternalScaleChange")
    assert event["type"] == "Normal"
    assert event["message"].startswith(f"replicas of Deployment shop/web set to 9 by {manager} (from 5): policy web "
                                       f"keeps web at 9 replicas or more until ")
    assert loop.sample("setpoint_external_scale_changes_total", target="shop/web") == 1
    assert loop.sample("setpoint_hands_off", target="shop/web") == 1
    assert loop.sample("setpoint_hands_off_shortfall_replicas", target="shop/web") == 0  # a floor: never short
    # 120 s after the change: scaled again, from 9, one pod a minute (the policy's own limit), not back to 5
    resumed = [loop.cycle() for _ in range(5)]
    assert [a.replicas for a in resumed[0].actions] == [8] and record(resumed[0])["reason"] == "RateLimitedDown"
    assert "externalScale" not in record(resumed[0])
    assert [a.replicas for r in resumed for a in r.actions] == [8, 7]
    assert loop.sample("setpoint_hands_off", target="shop/web") == 0
    assert len(loop.events("ExternalScaleChange")) == 1  # said once; its own writes are not external
    assert loop.sample("setpoint_external_scale_changes_total", target="shop/web") == 1
    assert any("scales Deployment shop/web again, from its current replicas" in r.getMessage() for r in caplog.records)


def test_a_count_lowered_below_the_load_is_said_once_and_measured(loop_factory, server, tmp_path):
    """Someone lowered the count (a load shed, or a count set during another incident) while the
    load still asks for more: kept as set, but said, gauged and shown, so an alert can call."""
    loop = loop_factory(hands_off="2m")
    assert [a.replicas for a in loop.cycle().actions] == [5]  # 150 rps at 30 per replica
    loop.scale_by("kubectl", 2)
    held = [loop.cycle() for _ in range(4)]
    assert all(not r.actions for r in held) and loop.spec() == 2
    assert [record(r)["externalScale"].get("wanted") for r in held] == [5] * 4
    assert loop.sample("setpoint_hands_off_shortfall_replicas", target="shop/web") == 3
    [event] = loop.events("HandsOffBelowDemand")  # once per hands-off, not per cycle
    assert event["type"] == "Warning"
    assert event["message"].startswith("policy web would scale Deployment shop/web to 5 replicas, but leaves it at 2 "
                                       "(set by kubectl at ")
    assert "`setpoint resume shop/web` hands it back now" in event["message"]
    from controller.runtime.status import hands_off_line

    line = hands_off_line("shop/web", {"by": "kubectl", "replicas": 2, "until": loop.world.engine.now + 60,
                                       "wanted": 5})
    assert line.endswith("(replicas set to 2 by kubectl); the policy would set 5 (`setpoint resume shop/web`)")
    after = [loop.cycle() for _ in range(5)]  # the hands-off ends 120 s after the change
    assert [a.replicas for r in after for a in r.actions] == [5]
    assert loop.sample("setpoint_hands_off_shortfall_replicas", target="shop/web") == 0
    loop.scale_by("kubectl", 3)  # a second hands-off below the load: said again
    loop.cycle()
    assert len(loop.events("HandsOffBelowDemand")) == 2


@pytest.mark.parametrize("kept", [True, False], ids=["kept-on-the-cluster", "in-memory-only"])
def test_a_restart_during_a_hands_off_after_a_kubectl_edit_keeps_it(loop_factory, kept):
    """A person edits the Deployment (the replicas and an annotation: its managedFields entry owns
    more than the replicas, so its time does not date the count), then the controller restarts
    (a new process: client, cluster, reconciler). With the store, the hands-off goes on after the
    restart, said in no new Event; in memory only it was lost and the count came down."""
    loop = loop_factory(hands_off="10m", store=True)
    assert [a.replicas for a in loop.cycle().actions] == [5]  # 150 rps at 30 per replica
    loop.apps.patch_namespaced_deployment("web", "shop", {"metadata": {"annotations": {"incident": "INC-7"}},
                                                          "spec": {"replicas": 9}}, field_manager="kubectl-edit")
    seen_at = loop.world.engine.now
    assert not loop.cycle().actions and loop.spec() == 9
    stored = client.CoreV1Api(loop.api_client).read_namespaced_config_map("setpoint-state-web.hands-off",
                                                                          STATE_NAMESPACE)
    assert json.loads(stored.data["state.json"])["handsOff"] == {
        "shop/Deployment/web": {"by": "kubectl-edit", "replicas": 9, "from": 5, "at": seen_at, "floor": True}}
    [said] = loop.events("ExternalScaleChange")
    loop.close()
    restarted = loop_factory(hands_off="10m", store=kept)
    after = [restarted.cycle() for _ in range(3)]
    if kept:
        assert not any(r.actions for r in after) and restarted.spec() == 9
        assert record(after[0])["reason"] == "ExternalOverride"
        assert record(after[0])["externalScale"]["until"] == seen_at + 600.0
        assert restarted.events("ExternalScaleChange") == [said]  # the one from before the restart
        assert restarted.sample("setpoint_hands_off", target="shop/web") == 1
    else:
        assert [a.replicas for r in after for a in r.actions] == [8]  # one pod a minute, from 9 back toward 5


def test_a_standby_that_becomes_leader_reads_the_hands_offs_the_leader_kept(loop_factory):
    """Two replicas: the standby's reconciler was made (and read the store) before the on-call's
    change; on becoming leader it reads the store again (restore) and holds the target."""
    leader = loop_factory(hands_off="10m", store=True)
    standby = loop_factory(hands_off="10m", store=True)  # built first: nothing stored yet
    assert [a.replicas for a in leader.cycle().actions] == [5]
    leader.apps.patch_namespaced_deployment("web", "shop", {"metadata": {"annotations": {"incident": "INC-9"}},
                                                            "spec": {"replicas": 9}}, field_manager="kubectl-edit")
    assert not leader.cycle().actions
    leader.close()  # the leader's node is lost
    standby.rec.restore()  # what the live service does when this replica takes the Lease
    after = [standby.cycle() for _ in range(3)]
    assert not any(r.actions for r in after) and standby.spec() == 9
    assert record(after[0])["reason"] == "ExternalOverride"


class BrokenStore:
    """The ConfigMap store while the API server refuses it (RBAC missing, 503s): a fault the
    simulated API server does not produce on demand, so it is raised here around the real store."""

    def __init__(self, inner):
        self.inner, self.broken = inner, True

    def load(self, policy, part=""):
        if self.broken:
            raise StateStoreError("read ConfigMap: 403 Forbidden")
        return self.inner.load(policy, part)

    def save(self, policy, payload, part=""):
        if self.broken:
            raise StateStoreError("replace ConfigMap: 403 Forbidden")
        self.inner.save(policy, payload, part)


def test_a_hands_off_store_that_fails_never_stops_scaling_and_is_caught_up(loop_factory):
    loop = loop_factory(hands_off="10m", store=True)
    store = loop.rec.hands_off_store = BrokenStore(loop.store)
    loop.rec.restore()
    first = loop.cycle()
    assert [a.replicas for a in first.actions] == [5]  # scaling goes on
    assert first.errors == ["state: hands-offs: read ConfigMap: 403 Forbidden; read again next cycle"]
    assert loop.telemetry.registry.get_sample_value("setpoint_errors_total", {"policy": "web", "source": "state"}) == 1
    loop.scale_by("kubectl", 9)
    held = loop.cycle()
    assert not held.actions and loop.spec() == 9  # the hands-off holds in memory; nothing saved over the unread state
    store.broken = False
    caught_up = loop.cycle()
    assert caught_up.errors == [] and not caught_up.actions
    assert json.loads(loop.store.load("web", "hands-off"))["handsOff"]["shop/Deployment/web"]["replicas"] == 9


@pytest.mark.parametrize("manager", ["argocd-controller", "helm"])
def test_a_deploy_that_carries_replicas_is_said_and_not_held(loop_factory, manager):
    # a release at the peak whose manifest says replicas: 2: held for the hands-off, the service would
    # stay at 2 pods for 30 minutes; the policy takes its count back at its next decision, as HPA would
    loop = loop_factory(hands_off="30m")
    assert [a.replicas for a in loop.cycle().actions] == [5]
    loop.scale_by(manager, 2, scale_subresource=False)
    result = loop.cycle()
    assert [a.replicas for a in result.actions] == [5] and loop.spec() == 5
    assert record(result)["externalScale"] == {"by": manager, "replicas": 2, "from": 5, "at": record(result)["at"],
                                               "until": record(result)["at"], "deploy": True}
    [event] = loop.events("ExternalScaleChange")
    assert event["type"] == "Warning" and "a deploy that carries spec.replicas" in event["message"]
    assert "take spec.replicas out of the manifest" in event["message"]
    assert loop.sample("setpoint_hands_off", target="shop/web") == 0
    assert loop.sample("setpoint_external_scale_changes_total", target="shop/web") == 1
    assert result.hands_off == {}


def test_a_release_by_an_unknown_pipeline_that_resets_the_count_is_not_held(loop_factory):
    """A team's pipeline writes the Deployment through client-go (field manager 'my-deployer', no known
    deploy tool's): a new image and the manifest's replicas: 2 in one write. The pod template changed
    with the count: a release, not a person's decision about capacity; the count is taken back."""
    loop = loop_factory(hands_off="30m")
    assert [a.replicas for a in loop.cycle().actions] == [5]
    loop.apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 2, "template": {"spec": {
        "containers": [{"name": "web", "image": "sim.setpoint.local/web:2"}]}}}}, field_manager="my-deployer")
    result = loop.cycle()
    assert [a.replicas for a in result.actions] == [5] and result.hands_off == {}
    assert record(result)["externalScale"]["release"] is True
    [event] = loop.events("ExternalScaleChange")
    assert event["type"] == "Warning"
    assert "set to 2 by my-deployer (from 5), a deploy that carries spec.replicas (the pod template changed with " \
           "it: a release)" in event["message"]


@pytest.mark.parametrize("same_cycle", [pytest.param(True, id="in-the-same-interval"),
                                        pytest.param(False, id="an-interval-later")])
def test_an_on_calls_edit_seen_with_someone_elses_release_keeps_its_hands_off(loop_factory, same_cycle):
    """An on-call edits the replicas and an annotation (``kubectl edit``: its managedFields entry
    owns more than the replicas, but no pod-template field); a pipeline ('my-deployer') rolls out a
    new image within the same interval, or the next. The new revision is the pipeline's, not the
    edit's: the count stays a person's, held for the hands-off."""
    loop = loop_factory(hands_off="30m")
    assert [a.replicas for a in loop.cycle().actions] == [5]
    loop.apps.patch_namespaced_deployment("web", "shop", {"metadata": {"annotations": {"oncall": "paged"}},
                                                          "spec": {"replicas": 12}}, field_manager="kubectl-edit")
    release = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "sim.setpoint.local/web:2"}]}}}}
    if same_cycle:
        loop.apps.patch_namespaced_deployment("web", "shop", release, field_manager="my-deployer")
    results = [loop.cycle()]
    if not same_cycle:
        loop.apps.patch_namespaced_deployment("web", "shop", release, field_manager="my-deployer")
    results += [loop.cycle() for _ in range(2)]
    assert all(r.actions == [] for r in results) and loop.spec() == 12
    assert list(results[-1].hands_off) and "release" not in record(results[0])["externalScale"]
    [event] = loop.events("ExternalScaleChange")
    assert event["type"] == "Normal" and "set to 12 by kubectl-edit" in event["message"]


def test_a_deploy_pipeline_named_in_the_policy_is_not_held(loop_factory):
    loop = loop_factory(hands_off="30m", deploy_managers="spinnaker")
    assert loop.rec.policy.deploy_managers == ("spinnaker",)
    assert [a.replicas for a in loop.cycle().actions] == [5]
    loop.scale_by("spinnaker", 2, scale_subresource=False)
    result = loop.cycle()
    assert [a.replicas for a in result.actions] == [5] and record(result)["externalScale"]["deploy"] is True
    [event] = loop.events("ExternalScaleChange")
    assert event["type"] == "Warning" and "a deploy that carries spec.replicas" in event["message"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (CI has /usr/bin/kubectl)")
def test_kubectl_scale_during_a_live_loop_is_held_and_named(loop_factory, server, tmp_path):
    loop = loop_factory(hands_off="30m")
    loop.cycle()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubectl-config", namespace="shop")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KUBE")}, "KUBECONFIG": str(kubeconfig),
           "HOME": str(tmp_path)}
    proc = subprocess.run([KUBECTL, "--request-timeout=5s", "scale", "deploy/web", "--replicas=12"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    results = [loop.cycle() for _ in range(4)]
    assert loop.spec() == 12 and not any(r.actions for r in results)
    assert {record(r)["externalScale"]["by"] for r in results} == {"kubectl"}  # kubectl 1.32: its User-Agent's
    [event] = loop.events("ExternalScaleChange")
    assert "set to 12 by kubectl (from 5)" in event["message"] and "handsOff 30m" in event["message"]


def test_setpoint_resume_hands_a_held_workload_back(loop_factory, server, tmp_path):
    # the on-call is done before the 30 minutes are up: `setpoint resume` (the real command, through
    # the real client) gives the workload back; the next cycle scales it from there
    loop = loop_factory(hands_off="30m")
    loop.cycle()
    loop.scale_by("kubectl", 9)
    held = [loop.cycle() for _ in range(5)]  # its own 2 -> 5 leaves the one-minute rate period
    assert {record(r)["reason"] for r in held} == {"ExternalOverride"} and loop.spec() == 9
    [event] = loop.events("ExternalScaleChange")
    assert "`setpoint resume shop/web` hands it back sooner" in event["message"]
    kubeconfig = server.write_kubeconfig(tmp_path / "resume-config", namespace="shop")
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "resume", "shop/web", "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = loop.cycle()
    assert record(result)["reason"] != "ExternalOverride" and "externalScale" not in record(result)
    assert [a.replicas for a in result.actions] == [8]  # from 9, one pod a minute: the policy's own limit
    assert loop.sample("setpoint_hands_off", target="shop/web") == 0


def test_hands_off_0s_sets_the_policy_count_again_and_says_so(loop_factory):
    loop = loop_factory(hands_off="0s")
    loop.cycle()
    loop.scale_by("kubectl", 9)
    result = loop.cycle()
    # today's behaviour: its own count written back at once (HPA's period arithmetic: its own 2 -> 5 a cycle
    # ago is in the 1-minute period, so the one-pod limit reads from 9 - 3 added = 6 - 1: 5)
    assert [a.replicas for a in result.actions] == [5]
    assert record(result)["reason"] != "ExternalOverride" and "externalScale" not in record(result)
    [event] = loop.events("ExternalScaleChange")
    assert event["message"].endswith("policy web sets its own count again (onExternalScale.handsOff is 0s)")
    assert loop.sample("setpoint_hands_off", target="shop/web") == 0


def test_the_default_hands_off_is_30_minutes(loop_factory):
    loop = loop_factory(hands_off=None)
    assert loop.rec.policy.hands_off_s == 1800.0
    loop.cycle()
    loop.scale_by("kubectl", 9)
    result = loop.cycle()
    assert record(result)["externalScale"]["until"] - record(result)["externalScale"]["at"] == 1800.0


def test_a_writer_that_keeps_reverting_is_a_fight(loop_factory, caplog):
    loop = loop_factory(hands_off="1m")
    caplog.set_level(logging.WARNING, logger="setpoint.runtime")
    reverts = 0
    for _ in range(40):  # 10 minutes: a sync that puts 2 back after each of the controller's writes
        result = loop.cycle()
        if result.actions and reverts < FIGHT_REVERTS:
            assert [a.replicas for a in result.actions] == [5]
            loop.scale_by("argocd-controller", 2, scale_subresource=False)
            reverts += 1
    assert reverts == FIGHT_REVERTS
    [fight] = loop.events("ExternalScaleFight")
    assert fight["type"] == "Warning"
    assert fight["message"].startswith("argocd-controller and policy web are fighting over the replicas of "
                                       "Deployment shop/web: argocd-controller reverted 3 of its writes within 1h2m")
    assert loop.sample("setpoint_scale_fight", target="shop/web") == 1
    assert loop.sample("setpoint_external_scale_changes_total", target="shop/web") == 3
    assert len(loop.events("ExternalScaleChange")) == 3
    assert result.fights == {next(iter(result.targets)): "argocd-controller"}


def test_one_change_after_a_write_is_not_a_fight(loop_factory):
    loop = loop_factory(hands_off="1m")
    loop.cycle()
    loop.scale_by("kubectl", 9)
    for _ in range(10):
        loop.cycle()
    assert loop.events("ExternalScaleFight") == [] and loop.sample("setpoint_scale_fight", target="shop/web") == 0


def test_its_own_writes_are_never_external_even_when_not_seen_to_land(loop_factory):
    """A write that timed out client-side but landed: the next cycle sees a count it did not
    record writing, whose writer managedFields names as setpoint: accepted, no hands-off."""
    loop = loop_factory(hands_off="2m")
    loop.cycle()  # 2 -> 5
    loop.apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 6}}, field_manager="setpoint")
    result = loop.cycle()
    assert result.external_changes == [] and not result.hands_off and loop.events("ExternalScaleChange") == []


@pytest.mark.parametrize("change, said", [
    pytest.param(None, False, id="its-own-undone-decisions-are-not-external"),
    pytest.param(("kubectl", 9), True, id="a-real-change-is-seen-once-not-held"),
])
def test_a_dry_run_is_not_confused(loop_factory, caplog, change, said):
    loop = loop_factory(hands_off="2m", rehearse=True)
    caplog.set_level(logging.INFO, logger="setpoint.runtime")
    results = [loop.cycle() for _ in range(3)]  # would scale 2 -> 5 every cycle; nothing is written
    assert all([a.replicas for a in r.actions] == [5] for r in results) and loop.spec() == 2
    assert all(r.external_changes == [] for r in results)
    if change:
        loop.scale_by(*change)
    after = [loop.cycle() for _ in range(3)]
    changes = [c for r in after for c in r.external_changes]
    assert len(changes) == int(said)
    assert all(record(r)["reason"] != "ExternalOverride" for r in after)  # a rehearsal goes on deciding
    if said:
        assert [a.replicas for a in after[0].actions] == [8]  # from 9, as a real run after its hands-off
        assert record(after[0])["externalScale"]["rehearsal"] is True
        [line] = [r.getMessage() for r in caplog.records if "set to 9 by kubectl" in r.getMessage()]
        assert "a real run of policy web would leave them alone until" in line
    assert loop.events("ExternalScaleChange") == []  # a rehearsal records no Event
    assert loop.sample("setpoint_hands_off", target="shop/web") == 0


def test_status_says_hands_off_until_when_and_who(server, tmp_path):
    from datetime import datetime

    from controller.runtime.http import StatusServer
    from controller.runtime.service import ControllerService
    from tests.runtime.test_status_http import POLICY as STATUS_POLICY
    from tests.runtime.test_status_http import T_CYCLE, XST, cli

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(STATUS_POLICY)  # 150 rps at 50 per replica: 2 -> 3
    metrics, api_client, cluster = sim_ports(server, tmp_path, "rps_query", advance_s=2)
    now = [T_CYCLE]
    service = ControllerService([tmp_path / "policies"], metrics, cluster, Telemetry(), clock=lambda: now[0])
    http = StatusServer("127.0.0.1:0", service.telemetry.registry, service.healthy, service.ready,
                        status=service.status).start()
    try:
        [first] = service.run_all_once()
        assert [a.replicas for a in first.actions] == [3]
        client.AppsV1Api(api_client).patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 12}},
                                                                       field_manager="kubectl")
        now[0] = T_CYCLE + 30
        [second] = service.run_all_once()
        assert not second.actions
        url = f"http://127.0.0.1:{http.port}"
        with urllib.request.urlopen(url + "/status", timeout=5) as response:
            web = json.loads(response.read())["policies"]["web"]["targets"]["shop/web"]
        assert web["reason"] == "ExternalOverride"
        assert web["hands_off"] == {"by": "kubectl", "replicas": 12, "at": "2026-05-28T20:27:10Z",
                                    "until": "2026-05-28T20:57:10Z", "rehearsal": False, "floor": True}
        proc = cli("--server", url)
        assert proc.returncode == 0, proc.stderr
        until = datetime.fromtimestamp(T_CYCLE + 30 + 1800, XST).strftime("%H:%M")
        assert f"shop/web: hands off until {until}, at 12 or more (replicas set to 12 by kubectl)" in proc.stdout, \
            proc.stdout
    finally:
        http.stop()
        cluster.close()


def test_a_policy_edit_keeps_the_hands_off_with_its_new_duration(server, tmp_path):
    """An SRE who edits the policy during the incident does not end the hands-off by doing so."""
    from controller.runtime.service import ControllerService, ServiceOptions

    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(POLICY % "    onExternalScale: {handsOff: 30m}\n")
    metrics, api_client, cluster = sim_ports(server, tmp_path, "offered", advance_s=3)
    now = [server.world.engine.now]
    service = ControllerService([folder], metrics, cluster, Telemetry(),
                                ServiceOptions(reload_every_s=3600, reload_settle_s=0), clock=lambda: now[0])
    try:
        assert [a.replicas for a in service.run_all_once()[0].actions] == [5]
        client.AppsV1Api(api_client).patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": 9}},
                                                                       field_manager="kubectl")
        now[0] += 15
        [held] = service.run_all_once()
        assert not held.actions and next(iter(held.hands_off.values())).until == now[0] + 1800
        (folder / "web.yaml").write_text(POLICY % "    onExternalScale: {handsOff: 10m}\n")
        assert service.reload_if_changed() is True
        now[0] += 15
        [after] = service.run_all_once()
        [change] = after.hands_off.values()
        assert not after.actions and (change.by, change.until) == ("kubectl", now[0] - 15 + 600)
        now[0] += 600
        [resumed] = service.run_all_once()
        assert [a.replicas for a in resumed.actions] == [8]  # from 9, one pod a minute
    finally:
        cluster.close()


HEALING = """\
  health:
    checks:
      - name: overloaded
        query: offered
        unhealthy: {above: 100, for: 0s}
        action: %s
"""


@pytest.mark.parametrize("action, set_to, applied", [
    pytest.param("rolling-restart", 9, "rolling-restart", id="a-restart-goes-out-during-hands-off"),
    pytest.param("scale-up", 3, None, id="a-health-scale-up-of-a-lowered-count-is-held"),
    pytest.param("scale-up", 9, "scale", id="a-health-scale-up-above-a-raised-count-goes-out"),
])
def test_health_actions_during_hands_off(server, tmp_path, action, set_to, applied):
    text = POLICY % "    onExternalScale: {handsOff: 10m}\n" + HEALING % action
    [policy] = load_policy_text(text, "web.yaml")
    world = server.world
    world.advance(3)
    metrics = SimMetrics(world.engine, {"offered": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster)
    apps = client.AppsV1Api(cluster.api_client)
    try:
        now = world.engine.now
        rec.cycle(now)  # scaled, or healed: whatever arbitration chose; then someone sets 9
        rec.cycle(now + 15)
        apps.patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": set_to}}, field_manager="kubectl")
        for _ in range(120):  # 10 minutes: the new pods ready (not an overload: restarts are not replaced by a scale)
            world.advance(1)
            metrics.push(world.engine.signals())
        result = rec.cycle(world.engine.now)  # inside the 10-minute hands-off (seen at this cycle)
        assert result.hands_off and record(result)["reason"] == "ExternalOverride"
        assert [a.kind.word for a in result.actions] == ([applied] if applied else [])
        health = record(result)["health"]
        engine = world.engine
        if applied == "scale":  # a count someone raised is a floor: more pods are what they asked for too
            [scale] = result.actions
            assert health["action"] == "scale" and scale.replicas > set_to
            assert int(engine.spec_replicas[engine.index("web")]) == scale.replicas
            return
        assert all(a.kind.word != "scale" for a in result.actions)
        if applied:
            assert health["action"] == applied
            for _ in range(3):
                world.advance(1)
                metrics.push(world.engine.signals())
            after = rec.cycle(world.engine.now)  # its own restart's revision: no release of someone else's
            assert after.hands_off and record(after)["reason"] == "ExternalOverride"
        else:  # what the health side asked for, held: not the record's action (nor the status's last action)
            assert health["action"] is None and health["heldByHandsOff"]["action"] == "scale"
            assert health["heldByHandsOff"]["replicas"] > set_to
        assert int(engine.spec_replicas[engine.index("web")]) == set_to
    finally:
        cluster.close()
