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

from dataclasses import dataclass

import numpy as np
import pytest

from controller.adapters.kubernetes import KubernetesCluster, KubernetesStateStore
from controller.adapters.prometheus import RangeSeries
from controller.policy import load_policy_text
from controller.ports import Samples
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
        self.rps.append((self.world.engine.now, rps))

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

    def start(self, warm: bool = False, store_wrapper=None) -> Reconciler:
        cluster = KubernetesCluster(official_client(self.server, self.tmp_path), qps=0, retry_backoff_s=0.01,
                                    emit_events=False)
        self.clusters.append(cluster)
        store = KubernetesStateStore(cluster, STATE_NS) if self.durable else None
        if store is not None and store_wrapper is not None:
            store = store_wrapper(store)
        return Reconciler(RuntimePolicy.of(self.policy), self.demand, cluster, state_store=store,
                          warm_from=self.demand if warm else None)

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


@pytest.mark.parametrize("takeover", [
    pytest.param("restart", id="restart-new-process-15s-later"),
    pytest.param("leader-change", id="standby-takes-the-lease-15s-later"),
    pytest.param("rolling-upgrade-warm", id="rolling-upgrade-warm-start-first-cycle-5s-later"),
])
def test_scale_down_rate_limit_holds_across_lifetimes(lives, takeover):
    """Pods 1 per 1m down: whoever takes over right after the old leader's step removes no pod
    until that step's minute has passed."""
    life = lives(policy=pods_policy())
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
    assert removed <= 1, f"{removed} pods removed within 1m (limit 1): {life.steps}"
    later = [s for s in life.steps if s.life > 1]
    assert later and later[0].at >= last + 60  # and it does scale down once the minute has passed


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
