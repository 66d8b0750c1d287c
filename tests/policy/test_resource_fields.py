"""spec.scaling.metrics[].resource: what a metric measures, which decides under preset: hpa whether
HPA's starting-pod rule applies (cpu only); compiled value and every error."""

from __future__ import annotations

import pytest

from tests.policy.helpers import BASE, FILE, edit, error_lines, load_one

TARGET = "        target: {averagePerReplica: 80}\n"
LINE = 13  # the line after BASE's target: where resource goes
WHERE = f"{FILE}:{LINE}: spec.scaling.metrics[0].resource"


def with_resource(value: str, target: str = TARGET) -> str:
    return edit(BASE, TARGET, f"{target}        resource: {value}\n")


UTILIZATION = "        target: {utilization: 70%}\n"


@pytest.mark.parametrize("text,resource", [
    pytest.param(BASE, "cpu", id="absent-is-cpu-as-before"),
    pytest.param(with_resource("memory"), "memory", id="memory-average-per-replica"),
    pytest.param(with_resource("memory", UTILIZATION), "memory", id="memory-utilization"),
    pytest.param(with_resource("cpu", UTILIZATION), "cpu", id="cpu-utilization"),
    pytest.param(with_resource('"memory"'), "memory", id="quoted"),
])
def test_resource_compiles(text, resource):
    assert load_one(text).params.metrics[0].resource == resource


@pytest.mark.parametrize("value,target,expected", [
    pytest.param("gpu", TARGET, f"{WHERE}: expected 'cpu' or 'memory', got 'gpu'", id="unknown-resource"),
    pytest.param("CPU", TARGET, f"{WHERE}: expected 'cpu' or 'memory', got 'CPU'", id="case-matters-as-in-kubernetes"),
    pytest.param("[cpu]", TARGET, None, id="a-list"),
    pytest.param("", TARGET, None, id="empty"),
    pytest.param("memory", "        target: {value: 80}\n",
                 f"{WHERE}: needs target: utilization or averagePerReplica (a resource metric is a percent of the "
                 "pods' requests or a usage per replica, as HPA's)", id="a-value-target-is-no-resource-metric"),
])
def test_broken_resource(value, target, expected):
    lines = error_lines(with_resource(value, target))
    assert len(lines) == 1 and lines[0].startswith(WHERE), lines
    if expected is not None:
        assert lines == [expected]


def test_an_unknown_resource_on_a_value_target_is_said_once():
    """The rule on the target reads a resource that validated only: 'gpu' is one error, not two."""
    assert error_lines(with_resource("gpu", "        target: {value: 80}\n")) == [
        f"{WHERE}: expected 'cpu' or 'memory', got 'gpu'"]
