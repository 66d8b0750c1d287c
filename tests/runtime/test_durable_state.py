"""Healing budgets, the breaker and the revision memory survive the controller: restarts,
failovers and `setpoint resume` while no controller runs, against the simulated apiserver
through the official client (the state lives in a ConfigMap in the controller's namespace)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.core.health.params import HealthReason
from controller.policy import load_policy_text
from controller.runtime.dryrun import DryRunStateStore
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.service import ControllerService
from controller.runtime.telemetry import Telemetry
from simulators.ports import MemoryStateStore, SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_resume import POLICY as RESUME_POLICY

STATE_NS = "setpoint-system"
CONFIG_MAP = "setpoint-state-web-heal"
# every pod of shop/web is over the memory limit (a systemic problem): one rolling restart per
# attempt, which does not cure it; with restartsPerHour: 2
POLICY = RESUME_POLICY.replace("restartsPerHour: 1", "restartsPerHour: 2")
RESTARTS = r"/apis/apps/v1/namespaces/shop/deployments/web$"


class Lifetimes:
    """One simulated cluster; each ``start()`` is a new controller process (new client, new
    Reconciler, nothing kept in memory), sharing only what is on the cluster."""

    def __init__(self, server, tmp_path, durable: bool = True, policy: str = POLICY):
        self.server, self.tmp_path, self.durable = server, tmp_path, durable
        [self.policy] = load_policy_text(policy, "heal.yaml")
        self.world = server.world
        self.world.advance(2)
        self.metrics = SimMetrics(self.world.engine, {"mem": "memory_mib"}, window_s=15, tick_s=self.world.tick_s)
        self.metrics.push(self.world.engine.signals())
        self.clusters: list[KubernetesCluster] = []

    def start(self, store_wrapper=None) -> Reconciler:
        cluster = KubernetesCluster(official_client(self.server, self.tmp_path), qps=0, retry_backoff_s=0.01,
                                    emit_events=False)
        self.clusters.append(cluster)
        store = KubernetesStateStore(cluster, STATE_NS) if self.durable else None
        if store is not None and store_wrapper is not None:
            store = store_wrapper(store)
        return Reconciler(RuntimePolicy.of(self.policy), self.metrics, cluster, state_store=store)

    def cycle(self, rec: Reconciler):
        self.world.advance(3)  # 15 s of simulated time between cycles
        self.metrics.push(self.world.engine.signals())
        return rec.cycle(self.world.engine.now)

    def rolling_restarts(self) -> int:
        """Rolling restarts the apiserver received: distinct restartedAt values written."""
        return self.server.api.requests.count("PATCH", RESTARTS)

    def stored(self) -> dict | None:
        try:
            cm = self.server.world.store.configmaps.get(STATE_NS, CONFIG_MAP)
        except Exception:
            return None
        return json.loads(cm["data"]["state.json"])

    def close(self):
        for c in self.clusters:
            c.close()


@pytest.fixture
def lives(server, tmp_path):
    made = []

    def make(**kw):
        made.append(Lifetimes(server, tmp_path, **kw))
        return made[-1]

    yield make
    for m in made:
        m.close()


@pytest.mark.parametrize("durable,expect", [
    pytest.param(False, 3, id="memory-only-re-arms-every-lifetime"),
    pytest.param(True, 1, id="durable-budget-and-breaker-hold-across-lifetimes"),
])
def test_restart_budget_holds_across_three_controller_lifetimes(lives, durable, expect):
    """Each controller lives one minute (4 cycles): long enough to restart, too short to see the
    verification fail. Re-armed by every restart, it rolls the workload once per lifetime, more
    than restartsPerHour: 2; with the durable state the verification window carries over, fails,
    and the target stays held."""
    life = lives(durable=durable)
    for _ in range(3):
        rec = life.start()
        for _ in range(4):
            life.cycle(rec)
    assert life.rolling_restarts() == expect
    assert expect <= 2 or not durable
    if durable:
        record = life.stored()["targets"]["shop/Deployment/web"]
        assert len(record["budgets"]["restarts"]) == 1 and record["breaker"]["held"] is True


def test_budget_charged_in_one_lifetime_bounds_the_next(lives):
    """A budget of 1, spent by the first controller (which then crashes): the next one may not
    restart at all within the hour."""
    life = lives(policy=RESUME_POLICY)
    rec = life.start()
    life.cycle(rec)
    assert life.rolling_restarts() == 1
    rec = life.start()  # the first one crashed; a new process starts
    results = [life.cycle(rec) for _ in range(12)]
    assert life.rolling_restarts() == 1
    assert results[-1].healing.held.tolist() == [True]
    reasons = {HealthReason(int(r.healing.held_reason[0])) for r in results if r.healing.held[0]}
    assert reasons <= {HealthReason.VERIFY_FAILED_HELD, HealthReason.RESTART_BUDGET_EXHAUSTED}


def test_resume_while_no_controller_runs_rearms_and_stays_rearmed(lives, tmp_path):
    life = lives()
    rec = life.start()
    results = [life.cycle(rec) for _ in range(12)]
    assert results[-1].healing.held.tolist() == [True]
    assert life.stored()["targets"]["shop/Deployment/web"]["breaker"]["held"] is True
    # the controller is down; an operator resumes the target
    kubeconfig = life.server.write_kubeconfig(tmp_path / "resume.yaml", namespace="shop")
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "resume", "shop/web", "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rec = life.start()
    first = life.cycle(rec)
    assert HealthReason(int(first.healing.outcome[0])) == HealthReason.REARMED
    assert first.state_saved
    record = life.stored()["targets"]["shop/Deployment/web"]
    assert record["breaker"]["held"] is False and record["resume_seen"]
    rec = life.start()  # and a restart right after does not hold it again nor re-arm it twice
    again = life.cycle(rec)
    assert again.healing.outcome[0] != HealthReason.REARMED


def test_state_is_saved_only_when_it_changes(lives):
    life = lives()
    rec = life.start()
    telemetry = Telemetry()
    results = [life.cycle(rec) for _ in range(16)]
    for r in results:
        telemetry.observe_cycle(r)
    saved = [r.state_saved for r in results]
    assert saved[0] and sum(saved) < len(saved) // 2  # written with the action, then only on changes
    assert not any(saved[-4:])  # held, nothing moves: no writes
    assert telemetry.registry.get_sample_value("setpoint_state_saves_total", {"policy": "web-heal"}) == sum(saved)
    writes = life.server.api.requests.count("PUT", "/configmaps/") + life.server.api.requests.count("POST", "/configmaps")
    assert writes == sum(saved)


def test_dry_run_reads_the_state_and_writes_none(lives):
    life = lives()
    rec = life.start(store_wrapper=DryRunStateStore)
    result = life.cycle(rec)
    assert [a.kind.word for a in result.actions] == ["rolling-restart"]  # (the dry-run cluster is not under test)
    assert life.stored() is None and rec.state_store.would_save
    assert life.server.api.requests.count("PUT", "/configmaps") + life.server.api.requests.count("POST", "/configmaps") == 0


def test_unreadable_store_means_no_health_action_until_it_reads(lives):
    life = lives()
    life.server.api.faults.inject(r"/configmaps/", status=403, times=3)
    rec = life.start()  # the read at start-up fails (403)
    first = life.cycle(rec)  # and its retry
    assert first.actions == [] and any(e.startswith("state:") for e in first.errors)
    assert life.rolling_restarts() == 0
    life.cycle(rec)  # the third failure
    later = life.cycle(rec)  # reads now, and acts
    assert [a.kind.word for a in later.actions] == ["rolling-restart"] and later.state_saved


def test_corrupt_state_holds_back_disruptive_actions_and_is_reported(lives):
    life = lives()
    core_cm = {"metadata": {"name": CONFIG_MAP}, "data": {"state.json": "{ this is not json"}}
    with life.server.world.store.lock:
        life.server.world.store.configmaps.create(STATE_NS, core_cm)
    rec = life.start()
    telemetry = Telemetry()
    results = [life.cycle(rec) for _ in range(8)]
    for r in results:
        telemetry.observe_cycle(r)
    assert life.rolling_restarts() == 0  # the restart budget counts as spent for the next hour
    assert results[0].state_problems and "not JSON" in results[0].state_problems[0]
    assert telemetry.registry.get_sample_value("setpoint_errors_total", {"policy": "web-heal", "source": "state"}) == 1
    record = life.stored()["targets"]["shop/Deployment/web"]  # the repair is written back
    assert record["budgets"]["restarts"][0][0] == 2.0


def test_becoming_leader_rereads_what_the_other_replica_saved(tmp_path):
    """Replica B was standby while A acted: on taking over, B reads A's budgets first."""
    from simulators.cluster import SimCluster
    from simulators.ports import SimTargets
    from simulators.workload import ServiceConfig

    store = MemoryStateStore()
    policy = POLICY.replace("namespace: shop", "namespace: default")
    (tmp_path / "heal.yaml").write_text(policy)
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30)], rng=1)
    targets = SimTargets(cluster, ["web"], with_statuses=True)
    metrics = SimMetrics(cluster, {"mem": "memory_mib"}, window_s=15, tick_s=5)
    leading = {"a": True, "b": False}
    a = ControllerService([tmp_path], metrics, targets, Telemetry(), is_leader=lambda: leading["a"], state_store=store)
    b = ControllerService([tmp_path], metrics, targets, Telemetry(), is_leader=lambda: leading["b"], state_store=store)
    loads = []
    b_rec = b.reconcilers["web-heal"]
    real_restore = b_rec.restore
    b_rec.restore = lambda: (loads.append(1), real_restore())[1]
    assert b.run_cycle("web-heal") is None  # standby
    clock = iter(range(1_800_000_000, 1_800_010_000, 15))
    a.clock = b.clock = lambda: float(next(clock))

    def step():
        cluster.step(cluster.now, 15.0, [100.0])
        metrics.push(cluster.signals())

    for _ in range(200):  # A leads until it acts (and saves); bounded: a failing cycle must not hang the suite
        step()
        acted = a.run_cycle("web-heal")
        if store.saves:
            break
    assert store.saves, "A never acted"
    assert [x.kind.word for x in acted.actions] == ["rolling-restart"]
    leading.update(a=False, b=True)
    step()
    took_over = b.run_cycle("web-heal")
    assert loads == [1]  # re-read once on taking over
    assert took_over.actions == [] and took_over.healing.state.budgets.restarts_used(took_over.now).tolist() == [1]
    step()
    b.run_cycle("web-heal")
    assert loads == [1]


def test_records_of_targets_missing_from_a_list_are_kept(tmp_path):
    """A workload briefly missing from the resolved list (or a selector edit) does not wipe its
    record: it stays stored while it still matters, and comes back with the target."""
    from simulators.cluster import SimCluster
    from simulators.ports import SimTargets
    from simulators.workload import ServiceConfig

    [policy] = load_policy_text(POLICY.replace("namespace: shop", "namespace: default"), "heal.yaml")
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30)], rng=1)
    metrics = SimMetrics(cluster, {"mem": "memory_mib"}, window_s=15, tick_s=5)
    store = MemoryStateStore()
    now = 1_800_000_000.0
    held = {"schema_version": 1, "targets": {"default/Deployment/gone": {"budgets": {"restarts": [], "rollbacks": []},
                                                                          "breaker": {"held": True}}}}
    store.save("web-heal", held)
    rec = Reconciler(RuntimePolicy.of(policy), metrics, SimTargets(cluster, ["web"], with_statuses=True),
                     state_store=store)
    cluster.step(now, 15.0, [100.0])
    metrics.push(cluster.signals())
    result = rec.cycle(now)
    assert result.state_saved and result.state_problems == []
    stored = json.loads(store.load("web-heal"))["targets"]
    assert set(stored) == {"default/Deployment/web", "default/Deployment/gone"}
