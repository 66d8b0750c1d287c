"""A policy's rate limits hold across controller lifetimes: a restart, a leader change, a
rolling upgrade whose new leader warm-starts from Prometheus.

The rate limits (``behavior.scaleUp/scaleDown.policies``) are computed from the scale events of
the last period. A new process (or a standby taking the Lease) had only the warm start's replay
of Prometheus to rebuild them from, which misses the steps the old leader took after the
replay's last tick (its grid ends one interval before the new leader's first cycle; a rolling
upgrade's new leader cycles 3 s after the old one's last step) and everything when it is off or
kube-state-metrics is missing: a whole period's budget was spent again at once (a day-2 drill saw
it). Real components: the official ``kubernetes`` client against the simulated API server, the
state in a ConfigMap through KubernetesStateStore; each lifetime is a new client, cluster and
Reconciler sharing only what is on the cluster. Times are the simulation's (a 5 s engine tick,
one cycle per 15 s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.adapters.prometheus import RangeSeries
from controller.errors import StateStoreError
from controller.policy import load_policy_text
from controller.ports import Samples
from controller.runtime.dryrun import DryRunCluster, DryRunStateStore
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)

STATE_NS = "setpoint-system"
CONFIG_MAP = "setpoint-state-web.scale-events"
TICK_S = 5.0  # the engine's tick (kube_helpers' scenario)

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: rps
        query: demand
        target: {averagePerReplica: 30}
    tolerance: 0.05
    behavior:
      scaleUp: {stabilizationWindow: 0s, policies: [{type: %s, value: %d, period: 1m}]}
      scaleDown: {stabilizationWindow: 0s, policies: [{type: %s, value: %d, period: 1m}]}
"""


class Demand:
    """The policy's metric (``demand``: the rps the test sets) as Prometheus serves it, instant
    and over a range: a perfect Prometheus (every value known at every time up to now, the
    replicas as kube-state-metrics saw them), so what a warm start misses is what any replay
    misses."""

    def __init__(self, world):
        self.world = world
        self.rps: list[tuple[float, float]] = []  # (from time, rps) steps
        self.replicas: list[tuple[float, float]] = []  # (time, spec replicas) as scraped

    def set(self, rps: float) -> None:
        """The load from just after now (a cycle at this instant has read the one before)."""
        self.rps.append((self.world.engine.now + 0.5, rps))

    def scrape(self) -> None:
        engine = self.world.engine
        self.replicas.append((engine.now, float(engine.spec_replicas[engine.index("web")])))

    @staticmethod
    def _at(steps: list[tuple[float, float]], t: float) -> float:
        known = [v for since, v in steps if since <= t]
        return known[-1] if known else float("nan")

    def query(self, expr, targets, at, *, labels=None) -> Samples:
        values = np.array([self._at(self.rps, at) for _ in targets])
        n = len(targets)
        return Samples(values, np.isfinite(values), np.zeros(n), np.zeros(n, bool))

    def query_range(self, expr, lo, hi, step_s, **_) -> list[RangeSeries]:
        times = np.arange(lo, hi + step_s / 2, step_s)
        steps = self.replicas if "kube_deployment_spec_replicas" in expr else self.rps
        values = np.array([self._at(steps, t) for t in times])
        ok = np.isfinite(values)
        return [RangeSeries({"namespace": "shop", "deployment": "web"}, times[ok], values[ok])]


@dataclass
class Step:
    """One applied scale: when (engine s), from, to, and which lifetime made it."""

    at: float
    before: int
    after: int
    life: int


class Lifetimes:
    """One simulated cluster; each ``start()`` is a new controller process (a new client, cluster
    and Reconciler), sharing only what is on the cluster."""

    def __init__(self, server, tmp_path, policy: str, durable: bool = True):
        [self.policy] = load_policy_text(policy, "web.yaml")
        self.server, self.tmp_path, self.durable = server, tmp_path, durable
        self.world = server.world
        self.world.advance(2)
        self.demand = Demand(self.world)
        self.clusters: list[KubernetesCluster] = []
        self.steps: list[Step] = []
        self.lifetime: dict[int, int] = {}  # id(reconciler) -> 1, 2, ... in the order they first cycle

    def start(self, warm: bool = False, store_wrapper=None, dry_run: bool = False) -> Reconciler:
        cluster = KubernetesCluster(official_client(self.server, self.tmp_path), qps=0, retry_backoff_s=0.01,
                                    emit_events=False)
        self.clusters.append(cluster)
        store = KubernetesStateStore(cluster, STATE_NS) if self.durable else None
        if store is not None and store_wrapper is not None:
            store = store_wrapper(store)
        return Reconciler(RuntimePolicy.of(self.policy), self.demand, DryRunCluster(cluster) if dry_run else cluster,
                          state_store=store, warm_from=self.demand if warm else None)

    def stored(self) -> dict | None:
        """The scale-event payload on the cluster, None without one."""
        try:
            cm = self.server.world.store.configmaps.get(STATE_NS, CONFIG_MAP)
        except Exception:
            return None
        return json.loads(cm["data"]["state.json"])

    def store_text(self, text: str) -> None:
        """Put ``text`` in the scale-event ConfigMap, as a previous leader (or a hand edit) left it."""
        with self.server.world.store.lock:
            self.server.world.store.configmaps.create(STATE_NS, {"metadata": {"name": CONFIG_MAP},
                                                                 "data": {"state.json": text}})

    def writes(self) -> int:
        """Writes of the scale-event ConfigMap the API server received."""
        api = self.server.api.requests
        return api.count("PUT", f"/configmaps/{CONFIG_MAP}") + api.count("POST", "/configmaps")

    def cycle(self, rec: Reconciler, after_s: float = 15.0):
        """A cycle ``after_s`` after the last (kube-state-metrics scraped each engine tick)."""
        for _ in range(int(after_s / TICK_S)):
            self.world.advance(1)
            self.demand.scrape()
        result = rec.cycle(self.world.engine.now)
        life = self.lifetime.setdefault(id(rec), len(self.lifetime) + 1)
        self.steps += [Step(result.now, a.from_replicas, a.replicas, life)
                       for a in result.actions if a.replicas is not None]
        return result

    def spec(self) -> int:
        engine = self.world.engine
        return int(engine.spec_replicas[engine.index("web")])

    def close(self):
        for c in self.clusters:
            c.close()


def most_in_a_period(steps: list[Step], up: bool, period_s: float = 60.0) -> int:
    """The most replicas added (``up``) or removed within any span shorter than ``period_s``."""
    moves = [(s.at, (s.after - s.before) if up else (s.before - s.after)) for s in steps]
    moves = [(t, d) for t, d in moves if d > 0]
    return max((sum(d for u, d in moves if t - period_s < u <= t) for t, _ in moves), default=0)


@pytest.fixture
def lives(server, tmp_path):
    made = []

    def make(**kw):
        made.append(Lifetimes(server, tmp_path, **kw))
        return made[-1]

    yield make
    for m in made:
        m.close()


def pods_policy(up: int = 10, down: int = 1) -> str:
    return POLICY % ("Pods", up, "Pods", down)


def scale_down_then_die(life: Lifetimes, rec: Reconciler) -> float:
    """Lifetime 1: up to 10 replicas (300 rps at 30 a replica), held there 75 s (the scale-up's
    period passes), then the load drops to 90 rps (3 replicas) 5 s before a cycle: that cycle
    removes one pod (1 a minute) and the process dies right after. Returns the step's time."""
    life.demand.set(300.0)
    for _ in range(6):
        life.cycle(rec)
    assert life.spec() == 10
    life.world.advance(2)
    life.demand.scrape()
    life.demand.set(90.0)
    life.cycle(rec, after_s=5.0)
    assert life.spec() == 9 and life.steps[-1].life == 1
    return life.steps[-1].at


@pytest.mark.parametrize("takeover,durable,most", [
    pytest.param("restart", True, 1, id="restart-new-process-15s-later"),
    pytest.param("leader-change", True, 1, id="standby-takes-the-lease-15s-later"),
    pytest.param("rolling-upgrade-warm", True, 1, id="rolling-upgrade-warm-start-first-cycle-5s-later"),
    pytest.param("restart", False, 2, id="no-store-as-before-the-step-is-taken-again"),
])
def test_scale_down_rate_limit_holds_across_lifetimes(lives, takeover, durable, most):
    """Pods 1 per 1m down: whoever takes over right after the old leader's step removes no pod
    until that step's minute has passed (on main: 2 pods within 15 s, or 5 s warm-started)."""
    life = lives(policy=pods_policy(), durable=durable)
    standby = life.start() if takeover == "leader-change" else None  # built (and read the store) first
    last = scale_down_then_die(life, life.start())
    if takeover == "leader-change":
        standby.restore()  # what the live service does when this replica takes the Lease
        rec, first_after = standby, 15.0
    elif takeover == "restart":
        rec, first_after = life.start(), 15.0
    else:  # its warm start's grid ends 15 s before its first cycle: 10 s before the old leader's step
        rec, first_after = life.start(warm=True), 5.0
    life.cycle(rec, after_s=first_after)
    while life.world.engine.now < last + 120:
        life.cycle(rec)
    removed = most_in_a_period(life.steps, up=False)
    assert removed == most, f"{removed} pods removed within 1m (limit 1): {life.steps}"
    later = [s for s in life.steps if s.life > 1]
    assert later and (later[0].at >= last + 60 or not durable)  # and it scales down once the minute has passed
    if durable:
        assert life.stored()["targets"]["shop/Deployment/web"]["down"][-1] == [later[-1].at, 1]


def test_scale_up_rate_limit_holds_across_a_restart(lives):
    """Pods 2 per 1m up: a restart 15 s after the old leader added 2 pods adds none for a minute."""
    life = lives(policy=pods_policy(up=2, down=1))
    rec = life.start()
    life.demand.set(300.0)
    life.cycle(rec)
    assert [(s.before, s.after) for s in life.steps] == [(2, 4)]
    rec = life.start()
    while life.world.engine.now < life.steps[0].at + 120:
        life.cycle(rec)
    added = most_in_a_period(life.steps, up=True)
    assert added <= 2, f"{added} pods added within 1m (limit 2): {life.steps}"


def scale_up_once_then_die(life: Lifetimes) -> float:
    """Lifetime 1 holds 2 replicas at 60 rps for 75 s (kube-state-metrics has the whole window),
    then 120 rps: one cycle adds 2 pods and the process dies. Returns the step's time."""
    rec = life.start()
    life.demand.set(60.0)
    for _ in range(5):
        life.cycle(rec)
    life.demand.set(120.0)
    life.cycle(rec)
    assert [(s.before, s.after) for s in life.steps] == [(2, 4)]
    return life.steps[-1].at


@pytest.mark.parametrize("durable,warm", [
    pytest.param(True, True, id="warm-start-and-record-hold-the-same-step-counted-once"),
    pytest.param(True, False, id="record-alone"),
    pytest.param(False, True, id="warm-start-alone"),
])
def test_a_step_in_the_record_and_in_the_warm_start_counts_once(lives, durable, warm):
    """Pods 4 per 1m up: the old leader added 2; the new one (first cycle 15 s later: its replay's
    last tick re-decides that step at the same time) may add 2 more, not 0 (counted twice) nor 4."""
    life = lives(policy=pods_policy(up=4, down=1), durable=durable)
    last = scale_up_once_then_die(life)
    rec = life.start(warm=warm)
    life.world.advance(1)
    life.demand.scrape()
    life.demand.set(300.0)  # after the replay's last tick: it re-decides the old leader's step as it was
    first = life.cycle(rec, after_s=10.0)
    assert first.now == last + 15
    if warm:
        assert first.warm_start.warm == ["shop/web"]
    # (failed once in a loaded CI with no step at all: the cycle's own account, to tell a refused
    # write from a decision to hold)
    assert [(s.before, s.after) for s in life.steps if s.life == 2] == [(4, 6)], (
        first.failed, first.errors, first.unavailable,
        first.decision.norm.desired.tolist() if first.decision is not None else None,
        first.decision.norm.reason.tolist() if first.decision is not None else None, life.steps)


@pytest.mark.parametrize("ago_s,first", [
    pytest.param(61.0, [(2, 4)], id="a-step-61s-old-no-longer-counts"),
    pytest.param(50.0, [], id="a-step-50s-old-still-counts"),
])
def test_entries_older_than_the_period_are_dropped(lives, ago_s, first):
    """A record left by an earlier leader: +2 pods ``ago_s`` before the new leader's first cycle,
    under Pods 2 per 1m up. Older than the period it neither binds nor is written again."""
    life = lives(policy=pods_policy(up=2, down=1))
    at = life.world.engine.now + 15.0  # the first cycle's time
    life.store_text(json.dumps({"version": 1, "policy": "web", "savedAt": at - ago_s,
                                "targets": {"shop/Deployment/web": {"up": [[at - ago_s, 2]], "down": []}}}))
    rec = life.start()
    life.demand.set(300.0)
    result = life.cycle(rec)
    assert result.now == at and [(s.before, s.after) for s in life.steps] == first
    if first:
        assert life.stored()["targets"] == {"shop/Deployment/web": {"up": [[at, 2]], "down": []}}


@pytest.mark.parametrize("text,problem", [
    pytest.param("{ this is not json", "scale-event state is not JSON", id="not-json"),
    pytest.param('{"version": 9, "targets": {}}', "not a version 1 payload", id="unknown-version"),
    pytest.param(json.dumps({"version": 1, "targets": {"shop/Deployment/web": {"up": [[1e300, 2]]}}}),
                 None, id="an-absurd-time-counts-as-now-for-one-period-not-forever"),
    pytest.param(json.dumps({"version": 1, "targets": {"shop/Deployment/web": {"up": [["soon", 2]]},
                                                       "shop/Deployment/api": {"up": [[1, 1]]}}}),
                 "scale-event state of 'shop/Deployment/web': up: soon is not a time; ignored",
                 id="an-unreadable-entry-is-ignored-and-named"),
])
def test_a_corrupt_record_never_stops_scaling(lives, text, problem):
    """The new leader scales (Pods 2 per 1m up: 2 -> 4), names the problem, and writes the
    record anew with its step; an absurd time reads as now: it holds the first period only."""
    life = lives(policy=pods_policy(up=2, down=1))
    life.store_text(text)
    rec = life.start()
    life.demand.set(300.0)
    results = [life.cycle(rec) for _ in range(6)]
    if problem is None:
        assert [(s.before, s.after) for s in life.steps] == [(2, 4)] and life.steps[0].at == results[4].now
        return
    assert [(s.before, s.after) for s in life.steps][:1] == [(2, 4)] and life.steps[0].at == results[0].now
    assert any(problem in p for p in results[0].state_problems), results[0].state_problems
    assert life.stored()["targets"]["shop/Deployment/web"]["up"] == [[life.steps[-1].at, 2]]  # the first step aged out


class FlakyStore:
    """The ConfigMap store while the API server refuses it (RBAC missing, 503s) for the first
    ``loads`` reads and ``saves`` writes of the scale events (the other parts go through)."""

    def __init__(self, inner, loads: int = 0, saves: int = 0):
        self.inner, self.loads, self.saves = inner, loads, saves

    def load(self, policy, part=""):
        if part == "scale-events" and self.loads > 0:
            self.loads -= 1
            raise StateStoreError("read ConfigMap: 403 Forbidden")
        return self.inner.load(policy, part)

    def save(self, policy, payload, part=""):
        if part == "scale-events" and self.saves > 0:
            self.saves -= 1
            raise StateStoreError("replace ConfigMap: 503 Service Unavailable")
        self.inner.save(policy, payload, part)


def test_a_store_that_fails_on_save_never_holds_a_scale_and_is_retried(lives):
    """Pods 2 per 1m up: the write ahead of the first step fails, the step goes out anyway and the
    write is tried once a cycle until it succeeds (two failures); a restart after that holds."""
    life = lives(policy=pods_policy(up=2, down=1))
    rec = life.start(store_wrapper=lambda s: FlakyStore(s, saves=2))
    life.demand.set(300.0)
    first, second, third = (life.cycle(rec) for _ in range(3))
    assert [(s.before, s.after) for s in life.steps] == [(2, 4)]  # scaling went on
    assert first.errors == ["state: scale events: replace ConfigMap: 503 Service Unavailable; retried next cycle"]
    assert second.errors == first.errors and third.errors == [] and life.stored() is not None
    assert life.stored()["targets"]["shop/Deployment/web"]["up"] == [[first.now, 2]]
    restarted = life.start()
    for _ in range(2):
        life.cycle(restarted)
    assert [s.at - first.now for s in life.steps] == [0.0, 60.0]  # not before the step's minute has passed


def test_a_save_that_failed_before_a_crash_loses_at_most_that_step(lives):
    """The write ahead of the step fails and the process dies before it is retried: the next one
    may take that step again (one step over the limit, as before this record existed), no more."""
    life = lives(policy=pods_policy(up=2, down=1))
    life.demand.set(300.0)
    life.cycle(life.start(store_wrapper=lambda s: FlakyStore(s, saves=1)))
    rec = life.start()
    while life.world.engine.now < life.steps[0].at + 120:
        life.cycle(rec)
    assert most_in_a_period(life.steps, up=True) == 4  # 2 over the 2 a minute: the lost step, once


def test_a_record_that_cannot_be_read_is_not_written_over_until_it_is(lives):
    """The first two reads fail: scaling goes on (the read named, tried again next cycle) and the
    old leader's record stays as it was; once read, it is merged and the step made meanwhile saved."""
    life = lives(policy=pods_policy(up=2, down=1))
    old = {"version": 1, "policy": "web", "savedAt": 0.0,
           "targets": {"shop/Deployment/api": {"up": [[life.world.engine.now, 1]], "down": []}}}
    life.store_text(json.dumps(old))
    rec = life.start(store_wrapper=lambda s: FlakyStore(s, loads=2))
    life.demand.set(300.0)
    first, second, third = (life.cycle(rec) for _ in range(3))
    assert [(s.before, s.after) for s in life.steps] == [(2, 4)]
    assert first.errors == ["state: scale events: read ConfigMap: 403 Forbidden; read again next cycle"]
    assert second.errors == first.errors and third.errors == []
    assert life.stored()["targets"] == {"shop/Deployment/web": {"up": [[first.now, 2]], "down": []}}


def test_dry_run_reads_and_writes_no_scale_events(lives):
    """A rehearsal applies no step: it keeps none, reads none and writes none (not even to the
    dry-run store's would_save)."""
    life = lives(policy=pods_policy(up=2, down=1))
    store = []
    rec = life.start(dry_run=True, store_wrapper=lambda s: store.append(DryRunStateStore(s)) or store[-1])
    life.demand.set(300.0)
    results = [life.cycle(rec) for _ in range(3)]
    assert [a.replicas for a in results[0].actions] == [4] and life.spec() == 2
    assert life.stored() is None and life.writes() == 0 and store[0].would_save == {}
