"""``direct_init`` (controller/model.py): a frozen dataclass's __init__ that writes the fields
straight into the instance dict, for the records a control cycle makes many of. It must take
every field, in order, with the dataclass's defaults and default factories, store each one, and
leave the class frozen, comparable, hashable, replaceable and picklable as the dataclass made it."""

import dataclasses
import inspect
import pickle

import numpy as np
import pytest

from controller.core.scaling.decide import Decision, Observation
from controller.core.scaling.hpa_propose import HpaProposals, ListedPods
from controller.core.scaling.hpa_replicas import ReplicaProposal
from controller.core.scaling.normalize import NormResult
from controller.core.scaling.ramp import Ramps
from controller.core.scaling.signal import Signal
from controller.core.scaling.startup import StartupEstimate, StartupMemory
from controller.model import Action, ActionKind, TargetRef, direct_init
from controller.ports import ClusterView, PodView, Samples
from controller.runtime.startup_observer import StartupInfo

DIRECT = [Action, Observation, Decision, Signal, NormResult, Ramps, Samples, ClusterView, PodView, StartupInfo,
          StartupEstimate, StartupMemory, HpaProposals, ListedPods, ReplicaProposal]


@dataclasses.dataclass(frozen=True)
class Reference:
    """What the dataclass's own __init__ does, to compare with: a default, a default factory."""

    a: int
    b: str = "b"
    c: list = dataclasses.field(default_factory=list)


@direct_init
@dataclasses.dataclass(frozen=True)
class Direct:
    """The same fields, with direct_init."""

    a: int
    b: str = "b"
    c: list = dataclasses.field(default_factory=list)


@pytest.mark.parametrize("cls", DIRECT, ids=lambda c: c.__name__)
def test_init_takes_every_field_in_order_with_its_default(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in dataclasses.fields(cls)]
    for p, f in zip(params, dataclasses.fields(cls)):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert f.default_factory is not dataclasses.MISSING or p.default is expected, f.name


@pytest.mark.parametrize("cls", DIRECT, ids=lambda c: c.__name__)
def test_each_field_is_stored_and_the_instance_stays_frozen(cls):
    given = {f.name: np.full(2, float(i)) for i, f in enumerate(dataclasses.fields(cls))}
    made = cls(*given.values())
    assert all(getattr(made, name) is value for name, value in given.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, next(iter(given)), None)
    assert dataclasses.replace(made).__dict__.keys() >= given.keys()


def test_defaults_and_default_factories_as_the_dataclass_gives_them():
    for cls in (Reference, Direct):
        one, two = cls(1), cls(2, "x", [3])
        assert (one.a, one.b, one.c, two.b, two.c) == (1, "b", [], "x", [3])
        assert cls(1).c is not one.c  # a fresh list each time
    assert Direct(1, "x", [2]) == Direct(1, "x", [2]) and repr(Direct(1)) == "Direct(a=1, b='b', c=[])"


def test_action_is_equal_hashable_picklable_and_replaceable():
    target = TargetRef("shop", "web")
    a = Action(ActionKind.SCALE, target, "ScaleUp", replicas=5, from_replicas=4, policy="p")
    b = Action(ActionKind.SCALE, target, "ScaleUp", 5, 4, policy="p")
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)
    assert pickle.loads(pickle.dumps(a)) == a
    assert dataclasses.replace(a, replicas=6).replicas == 6
    assert Action(ActionKind.RESTART_POD, target, "Unhealthy").pod is None


def test_refuses_what_it_would_get_wrong():
    @dataclasses.dataclass(frozen=True)
    class Checked:
        a: int

        def __post_init__(self):
            pass

    @dataclasses.dataclass(frozen=True)
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class KeywordOnly:  # its __init__ would take them by position
        a: int

    for cls in (Checked, Derived, KeywordOnly):
        with pytest.raises(TypeError, match="direct_init"):
            direct_init(cls)


@pytest.mark.parametrize("kind, word, policy_word", [
    pytest.param(ActionKind.NONE, "", "", id="none"),
    pytest.param(ActionKind.RECORD, "record", "record", id="record"),
    pytest.param(ActionKind.SCALE, "scale", "scale-up", id="scale"),
    pytest.param(ActionKind.SCALE_UP, "scale", "scale-up", id="scale-up-alias"),
    pytest.param(ActionKind.RESTART_POD, "restart-pod", "restart-pod", id="restart-pod"),
    pytest.param(ActionKind.ROLLING_RESTART, "rolling-restart", "rolling-restart", id="rolling-restart"),
    pytest.param(ActionKind.ROLLBACK, "rollback", "rollback", id="rollback"),
    pytest.param(ActionKind.PAUSE, "pause", "pause", id="pause"),
    pytest.param(ActionKind.RESUME, "resume", "resume", id="resume"),
])
def test_each_action_kind_has_its_word(kind, word, policy_word):
    """ActionKind.word is a table made once (read for every action applied): every kind has its
    word there, and a word reads back as its kind."""
    assert kind.word == word and kind.policy_word == policy_word
    if word:
        assert ActionKind(word) is kind and ActionKind(policy_word) is kind
