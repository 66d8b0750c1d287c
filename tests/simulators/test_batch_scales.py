"""A cycle's scale actions go to the simulated cluster in one call (BatchScaler:
SimTargets.apply_scales), all or none; a run is the same as with each action applied on its own."""

from __future__ import annotations

import pickle
from dataclasses import asdict

import numpy as np
import pytest

from controller.core.scaling import compiled
from controller.model import REASON_CODES, Action, ActionKind, ScaleActions, TargetRef
from simulators import timeline
from simulators import runner
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.runner import run_controllers
from simulators.scenario import load_scenario_text
from tests.runtime.test_scaling_memory import CROWD  # eight services
from tests.simulators.helpers import canonical, run_view
from tests.simulators.test_lockstep import SCENARIO
from tests.simulators.test_results_kept import SPECS  # the default policy, forecast, hpa, with a healer, restarted


class OneByOne(SimTargets):
    """SimTargets without the BatchScaler capability: every action through ``apply``."""

    apply_scales = None


class Refusing(SimTargets):
    """A SimTargets that writes its own way (as sim serve's store, a test's refusals)."""

    def apply(self, action):
        super().apply(action)


@pytest.mark.parametrize("make", SPECS)
def test_a_run_scaling_in_one_call_equals_the_run_applying_each(monkeypatch, make):
    monkeypatch.setattr(compiled, "switch", "1")
    sc = load_scenario_text(SCENARIO.format(duration="30m"))
    batches = []
    original = SimTargets.apply_scales

    def counted(self, actions):
        left = original(self, actions)
        batches.append((len(actions), len(left)))
        return left

    monkeypatch.setattr(SimTargets, "apply_scales", counted)
    batched, batched_log = run_controllers(sc, [make()], keep_records=True, keep_trajectory=True)[0]
    monkeypatch.setattr(runner, "SimTargets", OneByOne)
    each, each_log = run_controllers(sc, [make()], keep_records=True, keep_trajectory=True)[0]
    assert run_view(batched) == run_view(each)
    assert list(batched_log.lines()) == list(each_log.lines())
    # the scaling policy's scales in one call each cycle, every one taken (a healer's actions,
    # arbitrated with health, one by one)
    assert batches and all(left == 0 for _, left in batches) and sum(n for n, _ in batches) > 5


def cluster_and_targets(cls=SimTargets):
    sc = load_scenario_text(CROWD)
    a, b = (SimCluster(sc.cluster, np.random.default_rng(0)) for _ in range(2))
    return (a, cls(a, sc.services)), (b, cls(b, sc.services))


def scale(name: str, n: int, kind: ActionKind = ActionKind.SCALE) -> Action:
    return Action(kind, TargetRef("default", name), "ScaleUp", replicas=n, from_replicas=4)


@pytest.mark.parametrize("actions, taken", [
    pytest.param([scale("svc-1", 7), scale("svc-3", 2)], True, id="two-targets"),
    pytest.param([scale("svc-1", 7), scale("svc-1", 9)], True, id="one-target-twice-the-last-wins"),
    pytest.param([scale("svc-1", 7), scale("nope", 9)], False, id="an-unknown-target-hands-all-back"),
    pytest.param([scale("svc-1", 7), scale("svc-2", 0, ActionKind.ROLLING_RESTART)], False,
                 id="another-kind-hands-all-back"),
])
def test_apply_scales_is_apply_of_each_in_order_or_takes_none(actions, taken):
    (batched, targets), (each, reference) = cluster_and_targets()
    left = targets.apply_scales(actions)
    assert left == ([] if taken else actions)
    for a in actions if taken else ():
        reference.apply(a)
    for c in (batched, each):
        c.step(0.0, 5.0, np.full(c.n_services, 300.0))
    np.testing.assert_array_equal(batched.spec_replicas, each.spec_replicas)


def test_a_subclass_writing_its_own_way_applies_each_scale_itself(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    sc = load_scenario_text(SCENARIO.format(duration="20m"))
    make = SPECS[0].values[0]  # the default policy
    monkeypatch.setattr(runner, "SimTargets", OneByOne)
    each = run_controllers(sc, [make()], keep_trajectory=True)[0][0]
    writes = []
    monkeypatch.setattr(Refusing, "apply", lambda self, action: (writes.append(action), SimTargets.apply(self, action)))
    monkeypatch.setattr(runner, "SimTargets", Refusing)
    own = run_controllers(sc, [make()], keep_trajectory=True)[0][0]
    assert run_view(own) == run_view(each)
    assert len(writes) == len(own.actions) > 5  # each scale through its own apply


SERVICES = [TargetRef("default", f"svc-{i}") for i in range(8)]  # CROWD's, in the order SimTargets resolves them


def scale_arrays(rows: list[int], replicas: list[int], targets=SERVICES) -> ScaleActions:
    rows_a = np.array(rows, dtype=np.int64)
    return ScaleActions.of(targets, rows_a, replicas, np.full(rows_a.size, 4), np.full(rows_a.size, REASON_CODES.index(
        "ScaleUp")), "crowd")


def test_a_cycle_s_scales_as_arrays_are_the_actions_made_one_by_one():
    """A ScaleActions reads as the list of Action the cycle made before (same fields, same
    objects at every read), equal to it either way round, and pickles as itself."""
    scales = scale_arrays([1, 3], [7, 2])
    made = [Action(ActionKind.SCALE, SERVICES[1], "ScaleUp", 7, 4, None, None, "crowd"),
            Action(ActionKind.SCALE, SERVICES[3], "ScaleUp", 2, 4, None, None, "crowd")]
    assert scales == made and made == scales and len(scales) == 2 and scales[1] == made[1]
    assert all(a is b for a, b in zip(scales, scales.actions)) and list(scales)[0] is scales[0]
    assert all(type(a.replicas) is int and type(a.from_replicas) is int for a in scales)
    assert pickle.loads(pickle.dumps(scales)) == made and scales.counts() == {SERVICES[1]: 7, SERVICES[3]: 2}


@pytest.mark.parametrize("queued, rows, replicas", [
    pytest.param([], [1, 3], [7, 2], id="distinct-rows-at-once"),
    pytest.param([], [1, 1], [7, 9], id="one-row-twice-the-last-wins"),
    pytest.param([(3, 6)], [1, 3], [7, 2], id="a-row-queued-before-flushes-as-set-replicas-does"),
    pytest.param([(5, 6)], [1, 3], [7, 2], id="other-rows-queued-before"),
    pytest.param([], [], [], id="none"),
])
def test_set_replicas_rows_is_set_replicas_of_each_in_order(queued, rows, replicas):
    (rowwise, _), (each, _) = cluster_and_targets()
    for c in (rowwise, each):
        for i, n in queued:
            c.set_replicas(i, n)
    rowwise.set_replicas_rows(np.array(rows, dtype=np.int64), np.array(replicas, dtype=np.int64))
    for i, n in zip(rows, replicas):
        each.set_replicas(i, n)
    assert list(rowwise.queued().items()) == list(each.queued().items())
    for c in (rowwise, each):
        c.step(0.0, 5.0, np.full(c.n_services, 300.0))
    np.testing.assert_array_equal(rowwise.spec_replicas, each.spec_replicas)


@pytest.mark.parametrize("targets, rows, handed_back", [
    pytest.param(SERVICES, [1, 3], False, id="the-cycle-s-targets"),
    pytest.param([SERVICES[5], SERVICES[2]], [0, 1], False, id="a-list-in-another-order"),
    pytest.param(SERVICES + [TargetRef("default", "nope")], [1, 8], True, id="an-unknown-target-hands-all-back"),
])
def test_apply_scales_of_arrays_is_apply_of_each_in_order_or_takes_none(targets, rows, handed_back):
    (batched, port), (each, reference) = cluster_and_targets()
    scales = scale_arrays(rows, [7, 2], targets)
    port.observe(targets)  # as a cycle does before it scales
    left = port.apply_scales(scales)
    assert left == (list(scales) if handed_back else [])
    for a in () if handed_back else scales:
        reference.apply(a)
    for c in (batched, each):
        c.step(0.0, 5.0, np.full(c.n_services, 300.0))
    np.testing.assert_array_equal(batched.spec_replicas, each.spec_replicas)


def test_a_subclass_writing_its_own_way_is_handed_the_arrays_back_as_actions():
    (_, port), _ = cluster_and_targets(Refusing)
    scales = scale_arrays([1, 3], [7, 2])
    assert port.apply_scales(scales) == list(scales)


@pytest.mark.parametrize("policy", [pytest.param("setpoint-default.yaml", id="default-policy"),
                                    pytest.param("hpa-cpu.yaml", id="hpa-preset")])
def test_a_wide_run_carries_its_scales_as_arrays_and_keeps_the_same_actions(monkeypatch, policy):
    """Eight services (more than a per-service budget's): each cycle that scales keeps its
    scales as a ScaleActions, no Action made of them (the cluster port and the run's action log
    read the arrays), and the run, its action log thinned past a budget of 5, equals the run
    applying each action (a list of them, each event admitted on its own)."""
    monkeypatch.setattr(compiled, "switch", "1")
    monkeypatch.setattr(timeline.ActionBudget.__init__, "__defaults__", (5,))
    sc = load_scenario_text(CROWD.replace("duration: 1h", "duration: 30m"))
    from tests.simulators.test_results_kept import spec

    seen = []
    arrays = run_controllers(sc, [spec(policy)], keep_trajectory=True, on_cycle=seen.append)[0][0]
    scaled = [r.actions for r in seen if r.actions]
    as_arrays = [isinstance(a, ScaleActions) and a._actions is None for a in scaled]
    assert len(scaled) > 5 and all(as_arrays)
    monkeypatch.setattr(runner, "SimTargets", OneByOne)
    each = run_controllers(sc, [spec(policy)], keep_trajectory=True)[0][0]
    assert wide_run_view(arrays) == wide_run_view(each)
    assert arrays.actions_dropped > 5 and len(arrays.actions) > 5


def wide_run_view(run) -> dict:
    """run_view's parts of a run of more services than its per-service views keep."""
    return canonical({"scores": run.scores, "raw": run.replica_hours_raw, "actions": [asdict(a) for a in run.actions],
                      "dropped": run.actions_dropped, "trajectory": vars(run.trajectory)})


@pytest.mark.parametrize("switch", [pytest.param("1", id="compiled"), pytest.param("0", id="numpy")])
@pytest.mark.parametrize("queued, rows, exists, picks, replicas, taken", [
    pytest.param([], [4, 1, 6], [True, True, True], [0, 2], [7, 2], True, id="distinct-rows-queued"),
    pytest.param([], [4, 1, 6], [True, True, True], [], [], True, id="none-queued-nothing"),
    pytest.param([], [4, 1, 4], [True, True, True], [0, 2], [7, 2], True, id="one-row-twice-the-last-wins"),
    pytest.param([], [4, 0, 6], [True, False, True], [0, 1], [7, 2], False, id="a-missing-target-queues-none"),
    pytest.param([(5, 6)], [4, 1, 6], [True, True, True], [0, 2], [7, 2], False, id="a-queue-before-declines"),
])
def test_queue_distinct_rows_is_set_replicas_of_each_picked_row_in_order(monkeypatch, switch, queued, rows, exists,
                                                                       picks, replicas, taken):
    # compiled: checked, gathered and queued in one pass; numpy (kernels off): declined, the
    # caller queues with set_replicas_rows
    monkeypatch.setattr(compiled, "switch", switch)
    (rowwise, _), (each, _) = cluster_and_targets()
    for c in (rowwise, each):
        for i, n in queued:
            c.set_replicas(i, n)
    rows_a, picks_a = np.array(rows, np.int64), np.array(picks, np.int64)
    replicas_a = np.array(replicas, np.int64)
    done = rowwise.queue_distinct_rows(rows_a, np.array(exists), picks_a, replicas_a)
    assert done is (taken and switch == "1")
    if not done and all(exists):
        rowwise.set_replicas_rows(rows_a[picks_a], replicas_a)
    if all(exists):
        for p, n in zip(picks, replicas):
            each.set_replicas(rows[p], n)
    assert not rowwise._row_seen.any()
    assert list(rowwise.queued().items()) == list(each.queued().items())
    for c in (rowwise, each):
        c.step(0.0, 5.0, np.full(c.n_services, 300.0))
    np.testing.assert_array_equal(rowwise.spec_replicas, each.spec_replicas)


@pytest.mark.parametrize("switch", [pytest.param("1", id="compiled"), pytest.param("0", id="numpy")])
@pytest.mark.parametrize("targets, rows", [
    pytest.param(SERVICES, [1, 3], id="the-cycle-s-targets"),
    pytest.param([SERVICES[5], SERVICES[2], SERVICES[5]], [0, 2], id="a-target-listed-twice"),
])
def test_a_run_of_ticks_applies_the_queued_rows_as_each_set_replicas(monkeypatch, switch, targets, rows):
    # the run kernel takes the queue (set by the cycle's arrays) and applies it as the one-by-one queue
    monkeypatch.setattr(compiled, "switch", switch)
    (batched, port), (each, reference) = cluster_and_targets()
    scales = scale_arrays(rows, [7, 2], targets)
    port.observe(targets)
    assert port.apply_scales(scales) == []
    for a in scales:
        reference.apply(a)
    for c in (batched, each):
        c.step(0.0, 5.0, np.full(c.n_services, 300.0))
    assert not batched.has_queued() and not each.has_queued()
    np.testing.assert_array_equal(batched.spec_replicas, each.spec_replicas)
