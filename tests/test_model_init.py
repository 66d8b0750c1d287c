"""Action's hand-written __init__ (fields written straight into the instance dict, for speed,
as Observation's: tests/core/test_observation_init.py) must take every dataclass field, in
order, with the dataclass's defaults, and store each one."""

import dataclasses
import inspect

import pytest

from controller.model import Action, ActionKind, TargetRef

FIELDS = [f.name for f in dataclasses.fields(Action)]


def test_init_takes_every_field_in_order_with_its_default():
    params = list(inspect.signature(Action.__init__).parameters.values())[1:]
    assert [p.name for p in params] == FIELDS
    for p, f in zip(params, dataclasses.fields(Action)):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected, f.name


@pytest.mark.parametrize("name", FIELDS)
def test_each_field_is_stored(name):
    given = {f: object() for f in FIELDS}
    action = Action(**given)
    assert getattr(action, name) is given[name]


def test_equal_hashable_frozen_and_replaceable():
    target = TargetRef("shop", "web")
    a = Action(ActionKind.SCALE, target, "ScaleUp", replicas=5, from_replicas=4, policy="p")
    b = Action(ActionKind.SCALE, target, "ScaleUp", 5, 4, policy="p")
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.replicas = 6
    assert dataclasses.replace(a, replicas=6).replicas == 6
    assert Action(ActionKind.RESTART_POD, target, "Unhealthy").pod is None
