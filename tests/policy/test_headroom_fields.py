"""spec.scaling.metrics[].target.headroom / capacityPerReplica: compiled value and every error."""

from __future__ import annotations

import pytest

from tests.policy.helpers import BASE, FILE, edit, error_lines, hpa_preset_with, load_one

TARGET = "target: {averagePerReplica: 80}"
LINE = 12  # the target line of BASE
WHERE = f"{FILE}:{LINE}: spec.scaling.metrics[0].target"


def with_target(fields: str) -> str:
    return edit(BASE, TARGET, f"target: {{{fields}}}")


@pytest.mark.parametrize("text,capacity,pooled,saturation", [
    pytest.param(BASE, 0.0, (), 0.0, id="absent-per-replica"),
    pytest.param(with_target("averagePerReplica: 80, headroom: perReplica"), 0.0, (), 0.0, id="per-replica-explicit"),
    pytest.param(with_target("averagePerReplica: 80, headroom: pooled, capacityPerReplica: 100"), 100.0, (0,), 0.0,
                 id="pooled-keeps-the-capacity-and-its-own-saturated-rule"),
    pytest.param(with_target("averagePerReplica: 80, capacityPerReplica: 100"), 0.0, (), 100.0,
                 id="capacity-alone-is-the-saturation-floor's"),
])
def test_headroom_compiles(text, capacity, pooled, saturation):
    params = load_one(text).params
    assert params.metrics[0].capacity == capacity
    assert params.pooled_metrics == pooled
    assert params.metric_capacities.tolist() == [capacity]
    assert params.metric_saturation.tolist() == [saturation]
    assert params.saturation_metrics == ((0,) if saturation else ())


#: a capacity of 84 for a target of 80 with the default up tolerance (5%): where a scale-up starts
AT_TRIGGER = (f"{WHERE}.capacityPerReplica: must be above averagePerReplica x (1 + tolerance.up) = 80 x (1 + 0.05) "
              "= 84 (where a scale-up starts), got 84")

BROKEN = [
    pytest.param(with_target("averagePerReplica: 80, headroom: pooled"),
                 f"{WHERE}.capacityPerReplica: required with headroom: pooled (what one replica serves at 100%)",
                 id="pooled-without-capacity"),
    pytest.param(with_target("averagePerReplica: 80, headroom: pooled, capacityPerReplica: 84"),
                 AT_TRIGGER, id="capacity-at-the-scale-up-trigger"),
    pytest.param(with_target("averagePerReplica: 80, capacityPerReplica: 84"),
                 AT_TRIGGER, id="capacity-alone-at-the-scale-up-trigger"),
    pytest.param(edit(with_target("averagePerReplica: 80, capacityPerReplica: 100"), "{up: 0.05,", "{up: 5,"),
                 f"{WHERE}.capacityPerReplica: must be above averagePerReplica x (1 + tolerance.up) = 80 x (1 + 5) = "
                 "480 (where a scale-up starts), got 100", id="a-tolerance-in-percent-shows-in-the-numbers"),
    pytest.param(with_target("utilization: 60, capacityPerReplica: 100"),
                 f"{WHERE}.capacityPerReplica: capacityPerReplica needs averagePerReplica (what one replica serves "
                 "of a total such as a request rate)", id="capacity-with-utilization"),
    pytest.param(with_target("utilization: 60, headroom: pooled, capacityPerReplica: 100"),
                 f"{WHERE}.headroom: pooled needs averagePerReplica (the headroom of a total such as a request "
                 "rate shared by the replicas)", id="pooled-utilization"),
    pytest.param(with_target("value: 5, headroom: pooled, capacityPerReplica: 100"),
                 f"{WHERE}.headroom: pooled needs averagePerReplica (the headroom of a total such as a request "
                 "rate shared by the replicas)", id="pooled-value"),
    pytest.param(with_target("averagePerReplica: 80, headroom: shared, capacityPerReplica: 100"), None,
                 id="not-a-choice"),
    pytest.param(with_target("averagePerReplica: 80, headroom: pooled, capacityPerReplica: -1"), None,
                 id="negative-capacity"),
    pytest.param(with_target("averagePerReplica: 80, headroom: pooled, capacityPerReplica: lots"), None,
                 id="capacity-not-a-number"),
]


@pytest.mark.parametrize("text,expected", BROKEN)
def test_broken_headroom(text, expected):
    lines = error_lines(text)
    assert len(lines) == 1 and lines[0].startswith(f"{FILE}:{LINE}: spec.scaling.metrics[0].target")
    assert "headroom" in lines[0] or "capacityPerReplica" in lines[0]
    if expected is not None:
        assert lines == [expected]


def test_a_capacity_is_not_allowed_with_the_hpa_preset():
    text = hpa_preset_with().replace("target: {averagePerReplica: 80}",
                                     "target: {averagePerReplica: 80, capacityPerReplica: 100}")
    assert error_lines(text) == [f"{FILE}:12: spec.scaling.metrics[0].target.capacityPerReplica: not allowed with "
                                 "preset: hpa (HPA sizes every replica at its target)"]


def test_pooled_headroom_is_not_allowed_with_the_hpa_preset():
    text = hpa_preset_with().replace("target: {averagePerReplica: 80}",
                                     "target: {averagePerReplica: 80, headroom: pooled, capacityPerReplica: 100}")
    assert error_lines(text) == [f"{FILE}:12: spec.scaling.metrics[0].target.headroom: not allowed with preset: hpa "
                                 "(HPA sizes every replica at its target)"]
