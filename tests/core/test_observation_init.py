"""Observation's __init__ (controller/model.py's direct_init: fields written straight into the
instance dict, for speed) must take every dataclass field, in order, and store each one: a
field missing from a hand-written __init__ was once silently dropped (a merge did exactly that
with ``latest``); tests/test_model_init.py checks the same for every class that uses it."""

import dataclasses
import inspect

import numpy as np
import pytest

from controller.core.scaling.decide import Observation

FIELDS = [f.name for f in dataclasses.fields(Observation)]


def test_init_takes_every_field_in_order():
    params = list(inspect.signature(Observation.__init__).parameters)[1:]
    assert params == FIELDS


@pytest.mark.parametrize("name", FIELDS)
def test_each_field_is_stored(name):
    given = {f: np.full(2, float(i)) for i, f in enumerate(FIELDS)}
    obs = Observation(**given)
    assert getattr(obs, name) is given[name]


def test_defaults_match_the_fields():
    obs = Observation.of([1.0], [1.0], [[5.0]])
    for f in dataclasses.fields(Observation):
        if f.default is not dataclasses.MISSING:
            assert getattr(obs, f.name) is f.default, f.name


def test_stays_frozen_and_replaceable():
    obs = Observation.of([1.0, 2.0], [1.0, 2.0], [[5.0], [6.0]])
    with pytest.raises(dataclasses.FrozenInstanceError):
        obs.current = np.zeros(2)
    latest = np.full((2, 1), np.nan)
    assert dataclasses.replace(obs, latest=latest).latest is latest
