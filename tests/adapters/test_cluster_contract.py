"""One contract for every ``Cluster`` port: the in-process SimTargets over a SimCluster, and
KubernetesCluster over the simulated apiserver (same scenario, same seed, same engine).

Each subject offers the port plus two test-only handles: ``advance(ticks)`` steps its engine,
and ``pod_names(ref)`` lists a target's pods (from the port's statuses when it has them).
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.errors import NotFound
from controller.model import Action, ActionKind, ScaleActions, TargetRef, TargetSelector
from controller.ports import BatchScaler, StateDeletion
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from tests.adapters.kube_helpers import kube_scenario, official_client, start_server

NS = "shop"
WEB, API, GHOST = TargetRef(NS, "web"), TargetRef(NS, "api"), TargetRef(NS, "ghost")


class SimSubject:
    """SimTargets over a SimCluster, stepped as the runner steps it."""

    name = "sim-targets"

    def __init__(self, tmp_path):
        sc = kube_scenario()
        self.scenario = sc
        self.engine = SimCluster(sc.cluster, np.random.default_rng(sc.seed), faults=sc.faults)
        self.port = SimTargets(self.engine, sc.services, match_selectors=True)
        self.t = sc.start_s
        self.advance(1)  # the simulated apiserver steps once on start: same state

    def advance(self, ticks: int) -> None:
        for _ in range(ticks):
            self.engine.step(self.t, self.scenario.tick_s, self.scenario.offered(np.array([self.t]))[0])
            self.t += self.scenario.tick_s

    def pod_names(self, ref: TargetRef) -> list[str]:
        return self.engine.pod_names(self.engine.index(ref))

    def close(self) -> None:
        pass


class KubeSubject:
    """KubernetesCluster over the simulated apiserver, through the official client."""

    name = "kubernetes"

    def __init__(self, tmp_path):
        self.server = start_server()
        self.port = KubernetesCluster(official_client(self.server, tmp_path), qps=0, retry_backoff_s=0.01)

    def advance(self, ticks: int) -> None:
        self.server.world.advance(ticks)

    def pod_names(self, ref: TargetRef) -> list[str]:
        """Those not terminating (the engine's: a deleted pod stays listed through its grace here)."""
        return [p.name for p in self.port.observe([ref]).statuses[0].pods if not p.deleted]

    def close(self) -> None:
        self.port.close()
        self.server.stop()


@pytest.fixture(params=[SimSubject, KubeSubject], ids=lambda c: c.name)
def subject(request, tmp_path):
    s = request.param(tmp_path)
    yield s
    s.close()


# --------------------------------------------------------------------------- resolve
def test_resolve_by_names_returns_the_existing_ones_sorted(subject):
    assert subject.port.resolve(TargetSelector("Deployment", NS, names=("web", "ghost", "api"))) == [API, WEB]


def test_resolve_by_labels(subject):
    assert subject.port.resolve(TargetSelector("Deployment", NS, match_labels=(("tier", "front"),))) == [WEB]
    assert subject.port.resolve(TargetSelector("Deployment", NS, match_labels=(("app", "api"),))) == [API]
    assert subject.port.resolve(TargetSelector("Deployment", NS, match_labels=(("tier", "none"),))) == []


@pytest.mark.parametrize("labels, expressions, expected", [
    pytest.param((), (("tier", "In", ("front", "edge")),), [WEB], id="in"),
    pytest.param((), (("tier", "NotIn", ("front",)),), [API], id="notin"),
    pytest.param((), (("tier", "Exists", ()),), [API, WEB], id="exists"),
    pytest.param((), (("canary", "DoesNotExist", ()),), [API, WEB], id="does-not-exist"),
    pytest.param((("setpoint.io/autoscale", "true"),), (("app", "NotIn", ("web",)), ("tier", "Exists", ())), [API],
                 id="labels-and-expressions"),
    pytest.param((), (("tier", "In", ("front",)), ("app", "In", ("api",))), [], id="every-expression-must-hold"),
])
def test_resolve_by_label_expressions(subject, labels, expressions, expected):
    """matchExpressions: the simulated cluster matches in process, the Kubernetes adapter sends the
    set-based labelSelector (tier in (front,edge),!canary) that the apiserver evaluates."""
    selector = TargetSelector("Deployment", NS, match_labels=labels, match_expressions=expressions)
    assert subject.port.resolve(selector) == expected


def test_resolve_all_autoscaled(subject):
    selector = TargetSelector("Deployment", NS, match_labels=(("setpoint.io/autoscale", "true"),))
    assert subject.port.resolve(selector) == [API, WEB]


# --------------------------------------------------------------------------- observe
def test_observe_shapes_and_initial_values(subject):
    view = subject.port.observe([WEB, API])
    for name in ("spec", "status", "ready", "rollout", "exists"):
        assert getattr(view, name).shape == (2,), name
    assert view.spec.tolist() == [2, 3] and view.status.tolist() == [2, 3] and view.ready.tolist() == [2, 3]
    assert view.exists.tolist() == [True, True] and view.rollout.tolist() == [False, False]


def test_observe_an_unknown_target_marks_it_absent(subject):
    view = subject.port.observe([WEB, GHOST])
    assert view.exists.tolist() == [True, False] and view.spec.tolist() == [2, 0]


# --------------------------------------------------------------------------- apply
def test_scale_changes_spec_at_once_and_pods_follow(subject):
    subject.port.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=5, from_replicas=2))
    view = subject.port.observe([WEB, API])
    assert view.spec.tolist() == [5, 3] and view.status.tolist() == [5, 3]
    assert view.ready.tolist() == [2, 3] and not view.rollout.any()  # a scale is not a rollout
    subject.advance(3)  # startup delay 10 s, ticks of 5 s
    view = subject.port.observe([WEB, API])
    assert view.ready.tolist() == [5, 3]
    subject.port.apply(Action(ActionKind.SCALE, WEB, "ScaleDown", replicas=1, from_replicas=5))
    assert subject.port.observe([WEB]).spec.tolist() == [1]


def send(port, actions) -> None:
    """A cycle's scales as the Reconciler sends them: in one call where the port can
    (BatchScaler), what it hands back (or everything, without the capability) one by one."""
    left = port.apply_scales(actions) if isinstance(port, BatchScaler) else list(actions)
    for a in left:
        port.apply(a)


@pytest.mark.parametrize("targets, rows, replicas, want", [
    pytest.param([API, WEB], [0, 1], [4, 5], [4, 5], id="two-targets"),
    pytest.param([API, WEB], [1], [1], [3, 1], id="one-of-the-list"),
    pytest.param([API, WEB, GHOST], [1], [6], [3, 6], id="a-list-with-an-unknown-target-it-does-not-scale"),
])
def test_a_cycle_s_scales_as_arrays_set_each_target_s_count(subject, targets, rows, replicas, want):
    current = subject.port.observe(targets).spec
    rows = np.array(rows, dtype=np.int64)
    send(subject.port, ScaleActions.of(targets, rows, replicas, current[rows], np.full(rows.size, 1), "web-policy"))
    assert subject.port.observe([API, WEB]).spec.tolist() == want


def test_a_cycle_s_scale_of_an_unknown_target_is_not_found(subject):
    """The arrays name a target the cluster lacks: handed back and applied one by one, its own NotFound."""
    scales = ScaleActions.of([WEB, GHOST], [0, 1], [4, 3], [2, 0], [1, 1])
    with pytest.raises(NotFound):
        send(subject.port, scales)


def test_unknown_target_is_not_found(subject):
    with pytest.raises(NotFound):
        subject.port.apply(Action(ActionKind.SCALE, GHOST, "ScaleUp", replicas=3, from_replicas=2))


def test_restart_pod_recreates_it(subject):
    victim = subject.pod_names(WEB)[0]
    subject.port.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod=victim))
    pods = subject.pod_names(WEB)
    assert victim not in pods and len(pods) == 2
    assert subject.port.observe([WEB]).ready.tolist() == [1]
    subject.advance(3)
    assert subject.port.observe([WEB]).ready.tolist() == [2]


def test_rolling_restart_then_rollback(subject):
    subject.port.apply(Action(ActionKind.ROLLING_RESTART, API, "Stuck"))
    subject.advance(1)
    assert subject.port.observe([API]).rollout.tolist() == [True]
    subject.advance(30)
    view = subject.port.observe([API])
    assert view.rollout.tolist() == [False] and view.ready.tolist() == [3]
    subject.port.apply(Action(ActionKind.ROLLBACK, API, "ErrorRatioHigh"))
    subject.advance(1)
    assert subject.port.observe([API]).rollout.tolist() == [True]
    subject.advance(30)
    view = subject.port.observe([API])
    assert view.rollout.tolist() == [False] and view.spec.tolist() == [3] and view.ready.tolist() == [3]


def test_both_implementations_agree_tick_for_tick(tmp_path):
    """Same scenario, same seed, same actions: the arrays of both ports are equal."""
    sim, kube = SimSubject(tmp_path / "a"), None
    (tmp_path / "b").mkdir()
    kube = KubeSubject(tmp_path / "b")
    try:
        steps = [("scale", 6), ("advance", 2), ("restart", 0), ("advance", 1), ("rolling", 0), ("advance", 4),
                 ("scale", 3), ("advance", 8)]
        for kind, value in steps:
            oldest = sim.pod_names(WEB)[0]  # the same pod on both (the apiserver lists pods by name)
            for s in (sim, kube):
                if kind == "scale":
                    current = int(s.port.observe([WEB]).spec[0])
                    s.port.apply(Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=value, from_replicas=current))
                elif kind == "restart":
                    s.port.apply(Action(ActionKind.RESTART_POD, WEB, "PodNotReady", pod=oldest))
                elif kind == "rolling":
                    s.port.apply(Action(ActionKind.ROLLING_RESTART, WEB, "Stuck"))
                else:
                    s.advance(value)
            a, b = sim.port.observe([WEB, API]), kube.port.observe([WEB, API])
            for name in ("spec", "status", "ready", "rollout", "exists"):
                assert getattr(a, name).tolist() == getattr(b, name).tolist(), (kind, value, name)
            assert sim.pod_names(WEB) == sorted(kube.pod_names(WEB), key=sim.pod_names(WEB).index)
    finally:
        sim.close()
        kube.close()


# =========================================================================== StateStore contract
OWNER, RIVAL = "setpoint-system/setpoint", "setpoint-system/team-b"  # two controllers' Leases


class MemoryStore:
    """MemoryStateStore: what simulations restart a controller with."""

    name = "memory"

    def __init__(self, tmp_path):
        from simulators.ports import MemoryStateStore

        self.store = MemoryStateStore(OWNER)
        self.other = self.store.sharing(OWNER)  # a second process of the controller sees the same payloads
        self.foreign = self.store.sharing(RIVAL)  # another controller sharing the state namespace
        self.unowned = self.store.sharing("")  # a setpoint older than owners

    def close(self) -> None:
        pass


class KubeStore:
    """KubernetesStateStore over the simulated apiserver: ConfigMaps in the controller's namespace."""

    name = "kubernetes"

    def __init__(self, tmp_path):
        from controller.adapters.kubernetes import KubernetesStateStore

        self.server = start_server()
        self.clusters = [KubernetesCluster(official_client(self.server, tmp_path), qps=0, retry_backoff_s=0.01,
                                           emit_events=False) for _ in range(3)]
        self.store = KubernetesStateStore(self.clusters[0], "setpoint-system", owner=OWNER)
        # another process, own cache
        self.other = KubernetesStateStore(self.clusters[1], "setpoint-system", owner=OWNER)
        self.foreign = KubernetesStateStore(self.clusters[2], "setpoint-system", owner=RIVAL)
        # a setpoint older than the owner annotation (writes none)
        self.unowned = KubernetesStateStore(self.clusters[2], "setpoint-system", owner="")

    def close(self) -> None:
        for c in self.clusters:
            c.close()
        self.server.stop()


@pytest.fixture(params=[MemoryStore, KubeStore], ids=lambda c: c.name)
def store(request, tmp_path):
    s = request.param(tmp_path)
    yield s
    s.close()


def _loaded(raw):
    import json

    return None if raw is None else json.loads(raw) if isinstance(raw, (str, bytes)) else raw


PAYLOAD = {"schema_version": 1, "policy": "web", "saved_at": 1.5, "targets": {"shop/Deployment/web": {"x": [1, 2.5]}}}


def test_state_store_load_of_a_policy_never_saved_is_none(store):
    assert store.store.load("web") is None


def test_state_store_returns_what_was_saved_per_policy(store):
    store.store.save("web", PAYLOAD)
    store.store.save("api", {**PAYLOAD, "policy": "api"})
    assert _loaded(store.store.load("web")) == PAYLOAD
    assert _loaded(store.other.load("api"))["policy"] == "api"


def test_state_store_keeps_a_part_of_a_policys_state_beside_it(store):
    """The hands-offs (part "hands-off") and the health state of one policy: neither overwrites the other."""
    store.store.save("web", PAYLOAD)
    store.store.save("web", {"version": 1, "handsOff": {}}, part="hands-off")
    assert _loaded(store.other.load("web")) == PAYLOAD
    assert _loaded(store.other.load("web", "hands-off")) == {"version": 1, "handsOff": {}}
    assert store.other.load("api", "hands-off") is None
    store.other.save("web", {"version": 1, "handsOff": {"a": 1}}, part="hands-off")  # another process: 409, re-read
    store.store.save("web", {"version": 1, "handsOff": {"b": 2}}, part="hands-off")
    assert _loaded(store.other.load("web", "hands-off")) == {"version": 1, "handsOff": {"b": 2}}
    assert _loaded(store.store.load("web")) == PAYLOAD


def test_state_store_last_save_wins_across_processes(store):
    """Two controllers in turn (a failover and back): neither write is refused or lost."""
    store.store.save("web", PAYLOAD)
    store.other.save("web", {**PAYLOAD, "saved_at": 2.0})
    store.store.save("web", {**PAYLOAD, "saved_at": 3.0})  # its cached resourceVersion is stale: 409, re-read, write
    assert _loaded(store.other.load("web"))["saved_at"] == 3.0
    store.other.save("web", {**PAYLOAD, "saved_at": 4.0})
    assert _loaded(store.store.load("web"))["saved_at"] == 4.0


# --------------------------------------------------------------------------- StateStore.delete
def test_state_store_delete_of_what_was_never_saved_is_absent(store):
    assert store.store.delete("web") is StateDeletion.ABSENT
    assert store.store.delete("web", "hands-off") is StateDeletion.ABSENT


@pytest.mark.parametrize("read_first", [pytest.param(True, id="after-a-load"), pytest.param(False, id="unread")])
def test_state_store_delete_removes_what_this_controller_saved(store, read_first):
    """Saved by another process of the same controller (a previous leader): deleted, whether or not
    this store read it first (unread, it is read then); a second delete finds nothing."""
    store.other.save("web", PAYLOAD)
    if read_first:
        assert _loaded(store.store.load("web")) == PAYLOAD
    assert store.store.delete("web") is StateDeletion.DELETED
    assert store.other.load("web") is None and store.store.load("web") is None
    assert store.store.delete("web") is StateDeletion.ABSENT


def test_state_store_delete_of_a_part_leaves_the_rest(store):
    store.store.save("web", PAYLOAD)
    store.store.save("web", {"version": 1, "handsOff": {}}, part="hands-off")
    assert store.store.delete("web", "hands-off") is StateDeletion.DELETED
    assert store.other.load("web", "hands-off") is None
    assert _loaded(store.other.load("web")) == PAYLOAD


def test_state_store_delete_leaves_a_payload_written_since_it_was_read(store):
    """The delete carries what was read (a resourceVersion on the cluster): a concurrent writer's
    newer payload is not deleted; read again, it is."""
    store.store.save("web", PAYLOAD)
    assert _loaded(store.store.load("web")) == PAYLOAD
    store.other.save("web", {**PAYLOAD, "saved_at": 2.0})
    assert store.store.delete("web") is StateDeletion.CHANGED
    assert _loaded(store.other.load("web"))["saved_at"] == 2.0
    store.store.load("web")
    assert store.store.delete("web") is StateDeletion.DELETED


def test_state_store_delete_leaves_what_another_controller_wrote_last(store):
    """Two controllers sharing a state namespace (and a policy name): the one that did not write
    last deletes nothing, even with the payload unchanged since its read."""
    store.store.save("web", PAYLOAD)
    store.foreign.save("web", {**PAYLOAD, "saved_at": 2.0})
    store.store.load("web")
    assert store.store.delete("web") is StateDeletion.FOREIGN
    assert _loaded(store.other.load("web"))["saved_at"] == 2.0
    assert store.foreign.delete("web") is StateDeletion.DELETED


def test_state_store_delete_removes_a_payload_saved_before_owners_were_recorded(store):
    """A setpoint older than the owner annotation saved it (no owner): this controller's upgrade
    deletes it as its own, and says it is not foreign; another controller's never is."""
    store.unowned.save("web", PAYLOAD, part="hands-off")
    store.foreign.save("api", PAYLOAD)
    assert (store.store.foreign("web", "hands-off"), store.store.foreign("api"), store.store.foreign("ghost")) == (
        False, True, False)
    assert store.store.delete("web", "hands-off") is StateDeletion.DELETED
    assert store.other.load("web", "hands-off") is None
    assert store.store.delete("api") is StateDeletion.FOREIGN


def test_state_store_delete_after_someone_else_deleted_it_is_absent(store):
    store.store.save("web", PAYLOAD)
    store.other.load("web")
    assert store.store.delete("web") is StateDeletion.DELETED
    assert store.other.delete("web") is StateDeletion.ABSENT


def test_a_dry_run_store_deletes_nothing(store):
    """--dry-run wraps the store: its delete reads nothing, deletes nothing and says so."""
    from controller.runtime.dryrun import DryRunStateStore

    store.store.save("web", PAYLOAD)
    dry = DryRunStateStore(store.store)
    assert dry.delete("web") is StateDeletion.REHEARSED and dry.would_delete == ["web"]
    assert _loaded(store.other.load("web")) == PAYLOAD
