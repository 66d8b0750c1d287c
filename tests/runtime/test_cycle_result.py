"""A CycleResult is made every cycle, and a simulation that keeps its results keeps thousands:
its fields are slots (no per-result dict), each result with containers of its own."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from controller.runtime.reconciler import CycleResult


def fresh(now: float = 1_700_000_000.0) -> CycleResult:
    return CycleResult("web", now, [], None, None, metric_names=("rps",))


def test_a_cycle_result_keeps_its_fields_without_a_per_result_dict():
    result = fresh()
    assert not hasattr(result, "__dict__")
    with pytest.raises(AttributeError):
        result.not_a_field = 1  # a misspelt field fails loudly instead of adding an attribute
    assert sys.getsizeof(result) < 400  # (with a dict: ~1,600 bytes per result)


CONTAINERS = [f.name for f in dataclasses.fields(CycleResult) if f.default_factory is not dataclasses.MISSING]


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in CONTAINERS])
def test_each_result_has_its_own_empty_containers(name):
    a, b = fresh(), fresh(1_700_000_015.0)
    assert getattr(a, name) is not getattr(b, name)
    assert len(getattr(a, name)) == 0


def test_the_selected_count_reads_the_slots():
    result = fresh()
    result.left_alone = {"shop/web": "an HPA scales it"}
    assert result.selected == 1
