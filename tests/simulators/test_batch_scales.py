"""A cycle's scale actions go to the simulated cluster in one call (BatchScaler:
SimTargets.apply_scales), all or none; a run is the same as with each action applied on its own."""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.scaling import compiled
from controller.model import Action, ActionKind, TargetRef
from simulators import runner
from simulators.cluster import SimCluster
from simulators.ports import SimTargets
from simulators.runner import run_controllers
from simulators.scenario import load_scenario_text
from tests.runtime.test_scaling_memory import CROWD  # eight services
from tests.simulators.helpers import run_view
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
